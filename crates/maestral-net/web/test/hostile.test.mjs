// A hostile Master, or anyone on its link: mutated, replayed and reordered messages into the
// browser Follower's rules, on `maestral-sync` and as copies, over many sessions (seeded, so a
// failure replays). None may throw, and no copy may move the Follower back: within a session,
// the Master position it knows never goes to an older song epoch or page revision.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { create } from '../follower.mjs';
import { BASES, mutate, rng } from './mutate.mjs';

const T = 1735689600000;
const INPUTS = 20000;
// A new Follower and session every so many inputs.
const PER_SESSION = 200;

// Mostly position updates, now and then an end or a refusal (each ends the session).
const ENDINGS = BASES.filter((b) => /SESSION_END|JOIN_REJECT/.test(b));
const UPDATES = BASES.filter((b) => ENDINGS.indexOf(b) < 0);

const older = (a, b) => a.song_epoch < b.song_epoch || (a.song_epoch === b.song_epoch && a.page_revision < b.page_revision);

test('a hostile Master\u2019s messages and copies never throw and never move a Follower back', () => {
  const r = rng(32);
  let f = null;
  let sid = null;
  let t = T;
  let taken = 0;
  let checked = 0;
  for (let i = 0; i < INPUTS; i++) {
    if (i % PER_SESSION === 0) {
      f = create({ deviceId: 'F', deviceName: 'F', appVersion: 'test', random: r });
      sid = 'S' + i;
      f.local(t, { kind: 'join', master: 'M', session_id: sid, token: 'tok' });
      f.link(t, 'M', 'up');
      f.recv(t, 'M', JSON.stringify({ v: 1, session_id: sid, sender_id: 'M', type: 'JOIN_ACCEPT', ts: t, payload: { snapshot: { session_id: sid, song_id: 'a', song_epoch: 2, page_index: 3, page_revision: 4 } } }));
    }
    t += r.int(0, 40);
    let text = (r() < 0.02 ? r.pick(ENDINGS) : r.pick(UPDATES)).split('S#').join(sid);
    for (let n = r.int(0, 3); n > 0; n--) text = mutate(r, text);
    const copy = r() < 0.5;
    const session = f.state().session_id;
    if (copy && session !== null) checked++;
    const before = f.masterPosition();
    const refused = copy ? f.handleCopy(t, 'M', text) : f.recv(t, 'M', text);
    if (refused === null) taken++;
    if (copy && session !== null && f.state().session_id === session) {
      const after = f.masterPosition();
      assert.ok(!older(after, before), `input ${i}: a copy moved the Follower back: ${JSON.stringify(before)} -> ${JSON.stringify(after)} on ${text}`);
    }
    f.takeOutputs();
    if (r() < 0.05) f.link(t, 'M', r.pick(['up', 'degraded', 'down']));
    if (r() < 0.1) f.tick(t);
  }
  console.log(`${INPUTS} inputs from a hostile Master, ${taken} taken, ${checked} copies checked in a session`);
  assert.ok(checked > INPUTS / 4, 'most copies arrive in a session');
  assert.ok(taken > INPUTS / 20, 'the mutations leave enough valid messages to exercise the rules');
});
