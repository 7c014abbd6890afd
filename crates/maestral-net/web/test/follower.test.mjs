// The Follower's rules, events, timers (with fixed randomness) and API, beyond what the shared
// conformance cases can see (events and transport requests are not in the driver's output).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { create, PHASE, LAN_TIMING } from '../follower.mjs';
import { T, env, snap, setPage, setSong, follower, joined, sent, types } from './fixture.mjs';

const evts = (f) => f.takeEvents();
const only = (events, type) => events.filter((e) => e.type === type);

test('a new Follower is local, shows nothing, and says so once', () => {
  const f = create({ deviceId: 'F', random: () => 0 });
  assert.deepEqual(f.takeEvents(), [
    { type: 'phase', phase: 'FOLLOWER_IDLE_LOCAL' },
    { type: 'show', view: { song_id: null, page_index: 0 }, navigations: 0 },
  ]);
  assert.deepEqual(f.snapshot(), {
    phase: 'FOLLOWER_IDLE_LOCAL',
    links: {},
    state: { session_id: null, follow_mode: 'follow', song_id: null, song_epoch: 0, page_index: 0, last_token: null, page_revision: 0 },
    view: { song_id: null, page_index: 0 },
  });
  assert.deepEqual(Object.keys(f.state()), ['session_id', 'follow_mode', 'song_id', 'song_epoch', 'page_index', 'last_token', 'page_revision']);
  assert.equal(f.nextTimeout(), null);
  f.tick(T);
  assert.deepEqual(f.takeOutputs(), []);
});

test('options: random is required, time and peers are checked', () => {
  assert.throws(() => create({ deviceId: 'F' }), TypeError);
  assert.throws(() => create({ random: () => 0 }), TypeError);
  const f = follower();
  assert.throws(() => f.tick(-1), TypeError);
  assert.throws(() => f.tick(1.5), TypeError);
  assert.throws(() => f.tick(Number.MAX_SAFE_INTEGER + 1), TypeError);
  assert.throws(() => f.link(T, 'M', 'sideways'), TypeError);
  assert.throws(() => f.recv(T, 5, '{}'), TypeError);
});

test('join by master id: CONNECTING, HELLO then JOIN_REQUEST on the link, accept, SHOWING', () => {
  const f = create({ deviceId: 'F', deviceName: 'Alto 3', appVersion: '1.2.3', capabilities: ['webrtc'], random: () => 0 });
  f.takeOutputs();
  assert.equal(f.local(T, { kind: 'join', master: 'M', session_id: 'S', token: 'tok' }), null);
  assert.deepEqual(f.takeOutputs(), [
    { kind: 'event', event: { type: 'link', peer: 'M', state: 'CONNECTING' } },
    { kind: 'event', event: { type: 'connect', peer: 'M' } },
    { kind: 'event', event: { type: 'phase', phase: 'FOLLOWER_JOINING' } },
  ]);
  f.link(T + 10, 'M', 'up');
  assert.deepEqual(sent(f), [
    { to: 'M', type: 'HELLO', ts: T + 10, session_id: 'S', payload: { mode: 'choir_follower', device_name: 'Alto 3', app_version: '1.2.3', capabilities: ['webrtc'] } },
    { to: 'M', type: 'JOIN_REQUEST', ts: T + 10, session_id: 'S', payload: { session_token: 'tok', follow_mode: 'follow', song_epoch: 0 } },
  ]);
  assert.deepEqual(evts(f), [{ type: 'link', peer: 'M', state: 'CONNECTED' }]);
  assert.equal(f.recv(T + 20, 'M', env('JOIN_ACCEPT', { snapshot: snap(2, 4, 7) })), null);
  const out = f.takeOutputs();
  assert.deepEqual(out.map((o) => (o.kind === 'send' ? 'send ' + JSON.parse(o.text).type : o.event.type)), ['phase', 'show', 'send SHOWING', 'master_view']);
  assert.deepEqual(out[3].event, { type: 'master_view', view: { song_id: 'hymn', page_index: 4 } });
  assert.equal(f.phase(), PHASE.CONNECTED_FOLLOW);
  assert.equal(f.master(), 'M');
  assert.deepEqual(f.masterPosition(), { song_id: 'hymn', page_index: 4, song_epoch: 2, page_revision: 7 });
});

test('join by code: the transport is asked to join; the first link names the Master', () => {
  const f = follower();
  f.local(T, { kind: 'join', session_id: 'S', token: 'tok' });
  assert.deepEqual(evts(f), [{ type: 'join_by_code' }, { type: 'phase', phase: 'FOLLOWER_JOINING' }]);
  assert.equal(f.master(), null);
  f.link(T + 5, 'M2', 'up');
  assert.equal(f.master(), 'M2');
  assert.deepEqual(types(f), ['HELLO', 'JOIN_REQUEST']);
  // Leaving before the join was answered abandons it.
  const g = follower();
  g.local(T, { kind: 'join', session_id: 'S', token: 'tok' });
  g.takeOutputs();
  g.local(T + 1, { kind: 'leave' });
  assert.deepEqual(evts(g), [{ type: 'cancel_join' }, { type: 'phase', phase: 'FOLLOWER_IDLE_LOCAL' }]);
  assert.deepEqual(types(g), []);
});

test('follow / free: free keeps its page and records the Master; follow jumps back', () => {
  const f = joined();
  f.local(T + 30, { kind: 'set_follow_mode', mode: 'free' });
  assert.deepEqual(sent(f).map((m) => [m.type, m.payload]), [['SET_FOLLOW_MODE', { mode: 'free' }]]);
  assert.equal(f.phase(), PHASE.CONNECTED_FREE);
  f.recv(T + 40, 'M', setPage(2, 8, 9));
  assert.deepEqual(f.view(), { song_id: 'hymn', page_index: 4 });
  const e = evts(f);
  assert.deepEqual(only(e, 'master_view'), [{ type: 'master_view', view: { song_id: 'hymn', page_index: 9 } }]);
  assert.deepEqual(only(e, 'show'), []);
  f.local(T + 400, { kind: 'set_follow_mode', mode: 'follow' });
  assert.deepEqual(f.view(), { song_id: 'hymn', page_index: 9 });
  assert.deepEqual(types(f), ['SET_FOLLOW_MODE', 'SHOWING']);
  assert.deepEqual(evts(f).map((x) => x.type), ['phase', 'show']);
  // The same mode again does nothing.
  f.local(T + 500, { kind: 'set_follow_mode', mode: 'follow' });
  assert.deepEqual(f.takeOutputs(), []);
});

test('revisions and epochs: stale pages dropped, a newer epoch\'s page waits for its song', () => {
  const f = joined();
  f.recv(T + 30, 'M', setPage(2, 7, 1));
  f.recv(T + 31, 'M', setPage(2, 6, 1));
  f.recv(T + 32, 'M', setPage(1, 99, 1));
  assert.deepEqual(f.view(), { song_id: 'hymn', page_index: 4 });
  f.recv(T + 33, 'M', setPage(3, 2, 8));
  f.recv(T + 34, 'M', setPage(3, 1, 5));
  assert.deepEqual(f.view(), { song_id: 'hymn', page_index: 4 });
  f.recv(T + 35, 'M', setSong(3, 'b'));
  assert.deepEqual(f.state(), { session_id: 'S', follow_mode: 'follow', song_id: 'b', song_epoch: 3, page_index: 8, last_token: 'tok', page_revision: 2 });
  f.recv(T + 36, 'M', setSong(2, 'old'));
  f.recv(T + 37, 'M', setSong(3, 'dup'));
  assert.equal(f.view().song_id, 'b');
});

test('snapshots bring a follow-mode Follower back, even at a revision it has seen', () => {
  const f = joined();
  f.local(T + 30, { kind: 'set_page', page: 9 });
  f.recv(T + 200, 'M', env('STATE_SNAPSHOT', snap(2, 4, 7)));
  assert.equal(f.view().page_index, 4);
  f.recv(T + 300, 'M', env('STATE_SNAPSHOT', snap(2, 1, 6)));
  assert.equal(f.state().page_revision, 7);
  f.recv(T + 400, 'M', env('STATE_SNAPSHOT', snap(2, 5, 8, 'hymn', 'OTHER')));
  assert.equal(f.view().page_index, 4);
});

test('authority: other peers, other sessions and forged senders change nothing', () => {
  const f = joined();
  f.link(T + 25, 'X', 'up');
  const before = JSON.stringify(f.snapshot());
  f.takeOutputs();
  assert.equal(f.recv(T + 30, 'X', setPage(2, 8, 1, { from: 'X' })), null);
  assert.equal(f.recv(T + 31, 'X', env('SESSION_END', {}, { from: 'X' })), null);
  assert.equal(f.recv(T + 32, 'M', setPage(2, 8, 2, { sid: 'OTHER' })), null);
  assert.equal(f.recv(T + 33, 'M', setPage(2, 8, 3, { from: 'X' })).code, 'sender_mismatch');
  assert.equal(JSON.stringify(f.snapshot()), before);
  // A HELLO from anyone is still introduced to the page.
  f.recv(T + 34, 'X', env('HELLO', { mode: 'choir_follower', device_name: 'x', app_version: '1', capabilities: [] }, { from: 'X' }));
  assert.deepEqual(evts(f), [{ type: 'peer_hello', peer: 'X', hello: { mode: 'choir_follower', device_name: 'x', app_version: '1', capabilities: [] } }]);
  assert.deepEqual(types(f), []);
});

test('rejected input changes nothing and is reported, never thrown', () => {
  const f = joined();
  const before = JSON.stringify(f.snapshot());
  ['garbage', '', '[]', setPage(2, 9, 9).replace('"v":1', '"v":2'), 'x'.repeat(70000)].forEach((text) => {
    const r = f.recv(T + 30, 'M', text);
    assert.ok(r && typeof r.code === 'string' && typeof r.message === 'string');
  });
  assert.equal(f.recv(T + 30, 'M', new Uint8Array([1, 2])).code, 'binary');
  assert.equal(JSON.stringify(f.snapshot()), before);
  assert.deepEqual(f.takeOutputs(), []);
  assert.equal(f.recv(T + 31, 'M', env('NEW_FEATURE', { x: 1 })), null);
  assert.deepEqual(f.takeOutputs(), []);
});

test('JOIN_REJECT while joining: local mode with the reason; ignored once joined', () => {
  const f = follower();
  f.local(T, { kind: 'join', master: 'M', session_id: 'S', token: 'tok' });
  f.link(T + 10, 'M', 'up');
  f.takeOutputs();
  f.recv(T + 20, 'M', env('JOIN_REJECT', { reason: 'invalid_token' }));
  assert.deepEqual(evts(f), [
    { type: 'link', peer: 'M', state: 'ENDED' },
    { type: 'disconnect', peer: 'M' },
    { type: 'join_rejected', reason: 'invalid_token' },
    { type: 'phase', phase: 'FOLLOWER_IDLE_LOCAL' },
  ]);
  assert.equal(f.state().last_token, null);
  const g = joined();
  g.recv(T + 30, 'M', env('JOIN_REJECT', { reason: 'session_ended' }));
  assert.equal(g.phase(), PHASE.CONNECTED_FOLLOW);
  assert.deepEqual(g.takeOutputs(), []);
});

test('SESSION_END: streams cleared, the session ended, the page kept', () => {
  const f = joined();
  f.recv(T + 30, 'M', env('SESSION_END', {}));
  assert.deepEqual(evts(f), [
    { type: 'link', peer: 'M', state: 'ENDED' },
    { type: 'disconnect', peer: 'M' },
    { type: 'stream_clear', song_id: null },
    { type: 'session_ended' },
    { type: 'phase', phase: 'FOLLOWER_IDLE_LOCAL' },
  ]);
  assert.deepEqual(f.view(), { song_id: 'hymn', page_index: 4 });
  assert.equal(f.state().session_id, null);
});

test('STREAM_PREPARE and STREAM_CLEAR are events for the page', () => {
  const f = joined();
  const prepare = { song_id: 'hymn', song_epoch: 2, size_bytes: 1234, sha256: 'ab'.repeat(32), channel: 'maestral-stream', title: 'Hymn' };
  f.recv(T + 30, 'M', env('STREAM_PREPARE', prepare));
  f.recv(T + 31, 'M', env('STREAM_CLEAR', { song_id: 'hymn' }));
  assert.deepEqual(evts(f), [{ type: 'stream_prepare', prepare }, { type: 'stream_clear', song_id: 'hymn' }]);
  assert.deepEqual(types(f), []);
});

test('leave: LEAVE_SESSION, the link ended; leaving again is refused', () => {
  const f = joined();
  assert.equal(f.local(T + 30, { kind: 'leave' }), null);
  assert.deepEqual(types(f), ['LEAVE_SESSION']);
  assert.equal(f.phase(), PHASE.IDLE_LOCAL);
  assert.equal(f.local(T + 40, { kind: 'leave' }).code, 'not_in_session');
});

test('local actions: errors are reported and other roles\' actions refused', () => {
  const f = follower();
  assert.equal(f.local(T, { kind: 'set_parity', parity: 'odd' }).code, 'not_for_role');
  assert.equal(f.local(T, { kind: 'start_session' }).code, 'not_for_role');
  assert.equal(f.local(T, { kind: 'join', master: 'M', session_id: 'S', token: '' }).code, 'empty_token');
  assert.equal(f.local(T, { kind: 'warp' }).code, 'bad_action');
  assert.equal(f.local(T, { kind: 'set_page', page: -1 }).code, 'bad_action');
  assert.equal(f.local(T, 'next_page').code, 'bad_action');
  f.local(T, { kind: 'set_page', page: 4294967295 });
  f.local(T, { kind: 'next_page' });
  assert.equal(f.view().page_index, 4294967295);
  f.local(T, { kind: 'set_page', page: 0 });
  f.local(T, { kind: 'prev_page' });
  assert.equal(f.view().page_index, 0);
  f.local(T, { kind: 'set_song', song_id: 'mine' });
  assert.deepEqual(f.view(), { song_id: 'mine', page_index: 0 });
});

test('backoff: exponential, capped at 800 ms, drawn from [d/2, d] by the random function', () => {
  const delays = (r) => {
    const f = joined(r);
    f.link(T + 1000, 'M', 'down');
    assert.equal(f.phase(), PHASE.DISCONNECTED_LOCAL);
    const out = [f.nextTimeout() - (T + 1000)];
    let now = f.nextTimeout();
    for (let i = 0; i < 5; i++) {
      f.tick(now); // the attempt starts
      assert.equal(f.phase(), PHASE.REJOINING);
      assert.equal(f.nextTimeout(), now + LAN_TIMING.attemptTimeoutMs);
      now = f.nextTimeout();
      f.tick(now); // and times out
      assert.equal(f.phase(), PHASE.DISCONNECTED_LOCAL);
      out.push(f.nextTimeout() - now);
      now = f.nextTimeout();
    }
    return out;
  };
  assert.deepEqual(delays(0), [50, 100, 200, 400, 400, 400]);
  assert.deepEqual(delays(0.999999), [100, 200, 400, 800, 800, 800]);
  assert.deepEqual(delays(0.5), [75, 150, 300, 600, 600, 600]);
});

test('a retry asks the transport to connect, a timed-out attempt to disconnect', () => {
  const f = joined(0);
  f.link(T + 1000, 'M', 'down');
  f.takeOutputs();
  f.tick(T + 1049);
  assert.deepEqual(f.takeOutputs(), []);
  f.tick(T + 1050);
  assert.deepEqual(evts(f), [{ type: 'connect', peer: 'M' }, { type: 'phase', phase: 'FOLLOWER_REJOINING' }]);
  f.tick(T + 4050);
  assert.deepEqual(evts(f), [{ type: 'disconnect', peer: 'M' }, { type: 'phase', phase: 'FOLLOWER_DISCONNECTED_LOCAL' }]);
  f.link(T + 4060, 'M', 'up');
  assert.deepEqual(types(f), ['HELLO', 'JOIN_REQUEST']);
  f.recv(T + 4070, 'M', env('JOIN_ACCEPT', { snapshot: snap(2, 6, 9) }));
  assert.equal(f.phase(), PHASE.CONNECTED_FOLLOW);
  assert.equal(f.view().page_index, 6);
  assert.equal(f.nextTimeout(), null);
});

test('tick fires every timer due by t in order, each at its own time', () => {
  const f = joined(0);
  f.link(T + 1000, 'M', 'down');
  f.takeOutputs();
  // Start at 1050, time out at 4050, start again at 4150, still running at 5000.
  f.tick(T + 5000);
  assert.deepEqual(evts(f).map((e) => e.type), ['connect', 'phase', 'disconnect', 'phase', 'connect', 'phase']);
  assert.equal(f.nextTimeout(), T + 4150 + 3000);
});

test('DEGRADED for 2.5 s counts as lost; coming back up is a new link', () => {
  const f = joined(0);
  f.link(T + 1000, 'M', 'degraded');
  assert.equal(f.phase(), PHASE.CONNECTED_FOLLOW);
  assert.equal(f.nextTimeout(), T + 3500);
  f.link(T + 2000, 'M', 'degraded');
  assert.equal(f.nextTimeout(), T + 3500, 'a repeated report does not restart the clock');
  f.takeOutputs();
  f.tick(T + 3500);
  assert.deepEqual(evts(f), [
    { type: 'disconnect', peer: 'M' },
    { type: 'link', peer: 'M', state: 'RECONNECTING' },
    { type: 'phase', phase: 'FOLLOWER_DISCONNECTED_LOCAL' },
  ]);
  const g = joined(0);
  g.link(T + 1000, 'M', 'degraded');
  g.link(T + 1100, 'M', 'up');
  assert.deepEqual(types(g), ['HELLO', 'JOIN_REQUEST']);
  assert.equal(g.phase(), PHASE.REJOINING);
});

test('a rejoin refused over HTTP keeps the membership for 5 minutes of refusals', () => {
  const f = joined(0);
  f.link(T + 1000, 'M', 'down');
  f.tick(T + 1050);
  assert.equal(f.joinRefused(T + 1200, 'session_ended'), null);
  assert.equal(f.phase(), PHASE.DISCONNECTED_LOCAL);
  assert.equal(f.nextTimeout(), T + 6200);
  f.takeOutputs();
  f.joinRefused(T + 1200 + 299999, 'session_ended');
  assert.equal(f.state().session_id, 'S');
  f.joinRefused(T + 1200 + 300000, 'session_ended');
  assert.equal(f.phase(), PHASE.IDLE_LOCAL);
  assert.deepEqual(only(evts(f), 'join_rejected'), [{ type: 'join_rejected', reason: 'session_ended' }]);
  assert.equal(f.joinRefused(T, 'because').code, 'bad_reason');
});

test('a first join by code: refused goes local, failed is retried, failed for good goes local', () => {
  const f = follower(0);
  f.local(T, { kind: 'join', session_id: 'S', token: 'tok' });
  f.joinFailed(T + 10, false);
  assert.equal(f.phase(), PHASE.JOINING);
  assert.equal(f.nextTimeout(), T + 110);
  f.takeOutputs();
  f.tick(T + 110);
  assert.deepEqual(evts(f), [{ type: 'join_by_code' }]);
  f.joinFailed(T + 120, true);
  assert.equal(f.phase(), PHASE.IDLE_LOCAL);
  assert.deepEqual(evts(f), [{ type: 'cancel_join' }, { type: 'phase', phase: 'FOLLOWER_IDLE_LOCAL' }]);
  const g = follower(0);
  g.local(T, { kind: 'join', session_id: 'S', token: 'tok' });
  g.takeOutputs();
  g.joinRefused(T + 10, 'invalid_token');
  assert.deepEqual(evts(g), [{ type: 'cancel_join' }, { type: 'join_rejected', reason: 'invalid_token' }, { type: 'phase', phase: 'FOLLOWER_IDLE_LOCAL' }]);
});

test('SHOWING: at most one per 100 ms, the latest change at the end of the interval', () => {
  const f = joined(0);
  f.local(T + 30, { kind: 'next_page' });
  f.local(T + 40, { kind: 'next_page' });
  assert.deepEqual(types(f), []);
  assert.equal(f.nextTimeout(), T + 120);
  f.tick(T + 120);
  assert.deepEqual(sent(f).map((m) => [m.type, m.ts, m.payload]), [['SHOWING', T + 120, { song_id: 'hymn', song_epoch: 2, page_index: 6 }]]);
  f.local(T + 150, { kind: 'prev_page' });
  f.local(T + 160, { kind: 'next_page' });
  assert.equal(f.nextTimeout(), null, 'back to what the Master has: nothing due');
  // Not joined: nothing reported, nothing held back.
  f.link(T + 170, 'M', 'down');
  f.local(T + 180, { kind: 'next_page' });
  assert.deepEqual(types(f), []);
});

test('navigate: a turn the page already shows is not echoed; a different one is corrected', () => {
  const f = joined(0);
  f.takeOutputs();
  f.navigate(T + 30, { kind: 'next_page' }, { song_id: 'hymn', page_index: 5 });
  assert.deepEqual(only(evts(f), 'show'), []);
  f.navigate(T + 40, { kind: 'next_page' }, { song_id: 'hymn', page_index: 9 });
  assert.deepEqual(only(evts(f), 'show'), [{ type: 'show', view: { song_id: 'hymn', page_index: 6 }, navigations: 2 }]);
});

test('resume after a reload: the page shown at once, then a rejoin with the stored token', () => {
  const f = joined(0);
  f.local(T + 30, { kind: 'set_follow_mode', mode: 'free' });
  f.local(T + 40, { kind: 'set_page', page: 1 });
  const saved = JSON.parse(JSON.stringify(f.resumeRecord()));
  assert.deepEqual(saved, {
    master: 'M', session_id: 'S', token: 'tok', follow_mode: 'free', song_epoch: 2, page_revision: 7,
    master_song: 'hymn', master_page: 4, shown_song: 'hymn', shown_page: 1,
  });
  assert.equal(follower().resumeRecord(), null);
  const g = follower(0);
  g.resume(T + 5000, saved);
  assert.deepEqual(g.snapshot().view, { song_id: 'hymn', page_index: 1 });
  assert.equal(g.phase(), PHASE.REJOINING);
  assert.deepEqual(evts(g).filter((e) => e.type !== 'show' && e.type !== 'master_view'), [
    { type: 'link', peer: 'M', state: 'RECONNECTING' },
    { type: 'connect', peer: 'M' },
    { type: 'phase', phase: 'FOLLOWER_REJOINING' },
  ]);
  g.link(T + 5010, 'M', 'up');
  assert.deepEqual(sent(g)[1].payload, { session_token: 'tok', follow_mode: 'free', song_epoch: 2 });
  g.recv(T + 5020, 'M', env('JOIN_ACCEPT', { snapshot: snap(2, 6, 9) }));
  assert.equal(g.phase(), PHASE.CONNECTED_FREE);
  assert.equal(g.view().page_index, 1);
});

test('takeSent and takeEvents each leave the other kind queued, in order', () => {
  const f = follower();
  f.local(T, { kind: 'join', master: 'M', session_id: 'S', token: 'tok' });
  f.link(T + 10, 'M', 'up');
  assert.equal(f.takeSent().length, 2);
  assert.deepEqual(f.takeEvents().map((e) => e.type), ['link', 'connect', 'phase', 'link']);
  assert.deepEqual(f.takeOutputs(), []);
});
