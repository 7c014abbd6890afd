// handleCopy: copies of register updates from the unordered copy channel. A copy applies by the
// same rules as the original, so a duplicate, stale or reordered one never moves a Follower
// back; anything that is not a register update is refused; a copy is never answered.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PHASE } from '../follower.mjs';
import { T, env, snap, setPage, setSong, joined, types } from './fixture.mjs';

const position = (f) => {
  const s = f.state();
  return [s.song_epoch, s.page_revision];
};

test('a copy applies like the original; a duplicate or the late original changes nothing', () => {
  const f = joined();
  assert.equal(f.handleCopy(T + 30, 'M', setPage(2, 8, 5)), null);
  assert.deepEqual(f.view(), { song_id: 'hymn', page_index: 5 });
  assert.deepEqual(types(f), [], 'a copy is never answered');
  const before = JSON.stringify(f.snapshot());
  assert.equal(f.handleCopy(T + 31, 'M', setPage(2, 8, 5)), null);
  assert.equal(f.recv(T + 32, 'M', setPage(2, 8, 5)), null);
  assert.equal(JSON.stringify(f.snapshot()), before);
  assert.deepEqual(types(f), []);
});

test('a stale or reordered copy never moves the Follower back', () => {
  const f = joined();
  f.recv(T + 30, 'M', setPage(2, 10, 6));
  f.handleCopy(T + 31, 'M', setPage(2, 9, 3));
  f.handleCopy(T + 32, 'M', setPage(2, 8, 2));
  assert.deepEqual(f.view(), { song_id: 'hymn', page_index: 6 });
  assert.deepEqual(position(f), [2, 10]);
  f.handleCopy(T + 33, 'M', setPage(2, 12, 8));
  f.handleCopy(T + 34, 'M', setPage(2, 11, 7));
  assert.equal(f.view().page_index, 8);
});

test('copies across a song change: a page of the next song waits for it; the old song\'s are dropped', () => {
  const f = joined();
  f.handleCopy(T + 30, 'M', setPage(3, 1, 2));
  assert.deepEqual(f.view(), { song_id: 'hymn', page_index: 4 });
  f.handleCopy(T + 31, 'M', setSong(3, 'b'));
  assert.deepEqual(f.view(), { song_id: 'b', page_index: 2 });
  assert.deepEqual(position(f), [3, 1]);
  f.handleCopy(T + 32, 'M', setPage(2, 20, 9));
  f.handleCopy(T + 33, 'M', setSong(2, 'hymn'));
  f.recv(T + 34, 'M', setSong(3, 'b'));
  assert.deepEqual(f.view(), { song_id: 'b', page_index: 2 });
  assert.deepEqual(position(f), [3, 1]);
});

test('a free Follower records a copied page but keeps its own', () => {
  const f = joined();
  f.local(T + 25, { kind: 'set_follow_mode', mode: 'free' });
  f.handleCopy(T + 30, 'M', setPage(2, 8, 9));
  assert.equal(f.view().page_index, 4);
  assert.equal(f.masterPosition().page_index, 9);
  f.handleCopy(T + 40, 'M', setSong(3, 'next'));
  assert.deepEqual(f.view(), { song_id: 'next', page_index: 0 }, 'song changes reach free Followers');
});

test('copies from a peer that is not the Master, or of another session, change nothing', () => {
  const f = joined();
  f.link(T + 25, 'X', 'up');
  const before = JSON.stringify(f.snapshot());
  assert.equal(f.handleCopy(T + 30, 'X', setPage(2, 8, 1, { from: 'X' })), null);
  assert.equal(f.handleCopy(T + 31, 'X', setSong(9, 'evil', { from: 'X' })), null);
  assert.equal(f.handleCopy(T + 32, 'M', setPage(2, 8, 1, { sid: 'OTHER' })), null);
  // A Solo-form copy is a register update, but not one a Follower keeps.
  assert.equal(f.handleCopy(T + 33, 'M', env('SET_PAGE', { song_id: 'x', page_index: 3 })), null);
  assert.equal(JSON.stringify(f.snapshot()), before);
  const forged = f.handleCopy(T + 34, 'X', setPage(2, 8, 1));
  assert.equal(forged.code, 'sender_mismatch');
  assert.equal(JSON.stringify(f.snapshot()), before);
});

test('anything but a register update is refused on the copy channel, and changes nothing', () => {
  const f = joined();
  f.link(T + 25, 'M', 'up');
  f.recv(T + 26, 'M', env('JOIN_ACCEPT', { snapshot: snap(2, 4, 7) }));
  f.takeOutputs();
  const before = JSON.stringify(f.snapshot());
  const refused = [
    env('SESSION_END', {}),
    env('JOIN_REJECT', { reason: 'invalid_token' }),
    env('JOIN_ACCEPT', { snapshot: snap(5, 9, 9) }),
    env('STATE_SNAPSHOT', snap(5, 9, 9)),
    env('STREAM_CLEAR', { song_id: null }),
    env('STREAM_PREPARE', { song_id: 'a', song_epoch: 2, size_bytes: 1, sha256: 'ab', channel: 'c' }),
    env('HELLO', { mode: 'choir_master', device_name: 'M', app_version: '1', capabilities: [] }),
    env('SOMETHING_NEW', {}),
  ];
  refused.forEach((text) => {
    const r = f.handleCopy(T + 30, 'M', text);
    assert.equal(r.code, 'not_a_copy', text);
  });
  assert.equal(f.phase(), PHASE.CONNECTED_FOLLOW);
  assert.equal(JSON.stringify(f.snapshot()), before);
  assert.deepEqual(f.takeOutputs(), [], 'no event, no message, no transport request');
  assert.equal(f.handleCopy(T + 31, 'M', 'not json').code, 'not_json');
  assert.equal(f.handleCopy(T + 31, 'M', new Uint8Array(3)).code, 'binary');
});

test('a refused copy does not even flush a report that is due; an accepted one does', () => {
  const f = joined();
  f.local(T + 30, { kind: 'next_page' });
  assert.equal(f.nextTimeout(), T + 120);
  f.handleCopy(T + 200, 'M', env('SESSION_END', {}));
  f.handleCopy(T + 200, 'X', setPage(2, 8, 1));
  f.handleCopy(T + 200, 'M', 'garbage');
  assert.deepEqual(types(f), []);
  f.handleCopy(T + 200, 'M', setPage(2, 5, 1));
  assert.deepEqual(types(f), ['SHOWING'], 'the rate-limited report of the earlier turn, nothing else');
});

test('any order of originals and copies ends on the newest position, never going back', () => {
  const msgs = [];
  for (let r = 8; r <= 12; r++) msgs.push(setPage(2, r, r));
  msgs.push(setSong(3, 'b'));
  for (let r = 1; r <= 3; r++) msgs.push(setPage(3, r, 20 + r));
  let seed = 42;
  const rnd = () => {
    seed = (seed * 48271) % 2147483647;
    return seed / 2147483647;
  };
  for (let run = 0; run < 200; run++) {
    const f = joined();
    // Every message once reliably and once or twice as a copy, shuffled.
    const deliveries = [];
    msgs.forEach((m) => {
      deliveries.push({ copy: false, m });
      deliveries.push({ copy: true, m });
      if (rnd() < 0.5) deliveries.push({ copy: true, m });
    });
    for (let i = deliveries.length - 1; i > 0; i--) {
      const j = Math.floor(rnd() * (i + 1));
      const x = deliveries[i];
      deliveries[i] = deliveries[j];
      deliveries[j] = x;
    }
    let last = position(f);
    deliveries.forEach((d, i) => {
      const t = T + 100 + i;
      const r = d.copy ? f.handleCopy(t, 'M', d.m) : f.recv(t, 'M', d.m);
      assert.equal(r, null);
      const now = position(f);
      assert.ok(now[0] > last[0] || (now[0] === last[0] && now[1] >= last[1]), 'moved back from ' + last + ' to ' + now);
      last = now;
    });
    assert.deepEqual(position(f), [3, 3]);
    assert.deepEqual(f.view(), { song_id: 'b', page_index: 23 });
    f.takeSent().forEach((s) => assert.equal(JSON.parse(s.text).type, 'SHOWING', 'only reports go out'));
  }
});
