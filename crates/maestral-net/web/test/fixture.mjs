// Helpers for the unit tests: a Follower with fixed randomness, envelopes, a joined Follower.
// A library: importing it runs nothing.

import { create } from '../follower.mjs';

export const T = 1735689600000;

export function env(type, payload, o) {
  const x = o || {};
  return JSON.stringify({
    v: 1,
    session_id: x.sid === undefined ? 'S' : x.sid,
    sender_id: x.from === undefined ? 'M' : x.from,
    type,
    ts: x.ts === undefined ? T : x.ts,
    payload,
  });
}

export function snap(epoch, page, rev, song, sid) {
  return { session_id: sid || 'S', song_id: song === undefined ? 'hymn' : song, song_epoch: epoch, page_index: page, page_revision: rev };
}

export function setPage(epoch, rev, page, o) {
  return env('SET_PAGE', { song_epoch: epoch, page_revision: rev, page_index: page }, o);
}

export function setSong(epoch, song, o) {
  return env('SET_SONG', { song_id: song, song_epoch: epoch }, o);
}

// A Follower whose backoff jitter is always `r` (0: the shortest delay, near 1: the longest).
export function follower(r, options) {
  const f = create(Object.assign({ deviceId: 'F', appVersion: '9.9.9', random: () => (r === undefined ? 0 : r) }, options || {}));
  f.takeOutputs();
  return f;
}

// Joined Master M in session S at epoch 2, page 4, revision 7 (song "hymn"), outputs drained.
export function joined(r, options) {
  const f = follower(r, options);
  f.local(T, { kind: 'join', master: 'M', session_id: 'S', token: 'tok' });
  f.link(T + 10, 'M', 'up');
  f.recv(T + 20, 'M', env('JOIN_ACCEPT', { snapshot: snap(2, 4, 7) }));
  f.takeOutputs();
  return f;
}

// The messages sent since the last drain, decoded: [{to, type, payload, ts, session_id}].
export function sent(f) {
  return f.takeSent().map((s) => {
    const m = JSON.parse(s.text);
    return { to: s.to, type: m.type, payload: m.payload, ts: m.ts, session_id: m.session_id };
  });
}

export function types(f) {
  return sent(f).map((m) => m.type);
}
