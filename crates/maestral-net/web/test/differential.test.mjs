// Random inputs through both drivers (seeded, so a failure replays): sequences of links,
// messages, local actions and ticks for the rules, and mutated messages for the decoder. Runs
// only when MAESTRAL_CONFORMANCE_RUST names the Rust driver binary.
//
// Backoff jitter is random in the Rust driver, so a sequence only keeps an input whose outcome
// no draw can change: the Follower module is run beside it with several fixed random sources,
// and an input on which they disagree (or a tick that spans two draws) is replaced.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { create } from '../follower.mjs';
import { JS_DRIVER, comparable, runDriver } from './cases.mjs';
import { BASES, mutate, rng } from './mutate.mjs';

const rust = process.env.MAESTRAL_CONFORMANCE_RUST || '';
const skip = rust === '' ? 'MAESTRAL_CONFORMANCE_RUST is not set' : false;
const T = 1735689600000;

const env = (from, sid, type, payload) => ({ v: 1, session_id: sid, sender_id: from, type, ts: T, payload });

function message(r) {
  const from = r.pick(['M', 'M', 'M', 'X']);
  const sid = r.pick(['S', 'S', 'S', 'T']);
  const e = r.int(0, 3);
  const rev = r.int(0, 6);
  const page = r.int(0, 9);
  const song = r.pick(['a', 'b', null]);
  const kinds = [
    () => env(from, sid, 'JOIN_ACCEPT', { snapshot: { session_id: r.pick(['S', 'S', 'T']), song_id: song, song_epoch: e, page_index: page, page_revision: rev } }),
    () => env(from, sid, 'JOIN_REJECT', { reason: r.pick(['invalid_token', 'session_ended', 'later']) }),
    () => env(from, sid, 'SESSION_END', {}),
    () => env(from, sid, 'STATE_SNAPSHOT', { session_id: sid, song_id: song, song_epoch: e, page_index: page, page_revision: rev }),
    () => env(from, sid, 'SET_SONG', { song_id: song, song_epoch: e }),
    () => env(from, sid, 'SET_PAGE', { song_epoch: e, page_revision: rev, page_index: page }),
    () => env(from, sid, 'SET_PAGE', { song_epoch: e, page_revision: rev, page_index: page }),
    () => env(from, sid, 'STREAM_CLEAR', { song_id: song }),
    () => env(from, sid, 'FUTURE', { x: 1 }),
  ];
  return { from: r.pick([from, from, 'Z']), msg: r.pick(kinds)() };
}

function input(r, t) {
  const k = r.int(0, 20);
  if (k <= 2) return { do: 'link', t, peer: r.pick(['M', 'M', 'X', 'F']), state: r.pick(['up', 'up', 'down', 'degraded']) };
  if (k <= 9) return Object.assign({ do: 'recv', t }, message(r));
  if (k <= 14) {
    const actions = [
      { kind: 'join', master: 'M', session_id: r.pick(['S', 'S', 'T']), token: r.pick(['tok', 'tok', '']) },
      { kind: 'join', session_id: 'S', token: 'tok' },
      { kind: 'leave' },
      { kind: 'next_page' },
      { kind: 'set_page', page: r.int(0, 9) },
      { kind: 'set_song', song_id: r.pick(['a', null]) },
      { kind: 'set_follow_mode', mode: r.pick(['follow', 'free']) },
    ];
    return { do: 'local', t, action: r.pick(actions) };
  }
  if (k <= 18) return { do: 'tick', t };
  if (k === 19) return { do: 'join_refused', t, reason: r.pick(['invalid_token', 'session_ended']) };
  return { do: 'join_failed', t, for_good: r() < 0.3 };
}

// The module driven as the driver drives it; returns its output lines and the random draws the
// last input made.
function mirror(lines, random) {
  let draws = 0;
  const f = create({ deviceId: 'F', random: () => { draws++; return random(); } });
  f.takeOutputs();
  const out = [];
  let last = 0;
  lines.forEach((l) => {
    const before = draws;
    let err = null;
    if (l.do === 'link') f.link(l.t, l.peer, l.state);
    else if (l.do === 'recv') f.recv(l.t, l.from, JSON.stringify(l.msg));
    else if (l.do === 'local') err = f.local(l.t, l.action);
    else if (l.do === 'tick') f.tick(l.t);
    else if (l.do === 'join_refused') f.joinRefused(l.t, l.reason);
    else f.joinFailed(l.t, l.for_good === true);
    out.push(err ? 'error' : JSON.stringify([f.snapshot(), f.takeSent()]));
    if (err === null) f.takeOutputs();
    last = draws - before;
  });
  return { out: out.join('\n'), last, deadline: f._session && f._session.retry ? f._session.retry.deadline() : null };
}

const SOURCES = [() => () => 0, () => () => 0.999999, () => () => 0.5, () => rng(7), () => rng(99), () => rng(12345), () => rng(31337)];

function sequence(r) {
  const lines = [];
  let t = T;
  if (r() < 0.7) {
    lines.push({ do: 'local', t, action: { kind: 'join', master: 'M', session_id: 'S', token: 'tok' } }, { do: 'link', t: t + 1, peer: 'M', state: 'up' });
    lines.push({ do: 'recv', t: t + 2, from: 'M', msg: env('M', 'S', 'JOIN_ACCEPT', { snapshot: { session_id: 'S', song_id: 'a', song_epoch: 1, page_index: 2, page_revision: 3 } }) });
    t += 2;
  }
  while (lines.length < 40) {
    let taken = false;
    for (let tries = 0; tries < 20 && !taken; tries++) {
      const cand = input(r, t + r.pick([0, 1, 10, 49, 60, 100, 150, 500, 1000, 2500, 3000, 5000, 20000, 300000]));
      const before = SOURCES.map((s) => mirror(lines, s()).deadline);
      if (cand.do === 'tick' && !before.every((d) => d === before[0]) && cand.t >= Math.min.apply(null, before.filter((d) => d !== null))) continue;
      const after = SOURCES.map((s) => mirror(lines.concat([cand]), s()));
      if (after.some((m) => m.last > 1) || !after.every((m) => m.out === after[0].out)) continue;
      lines.push(cand);
      t = cand.t;
      taken = true;
    }
    if (!taken) break;
  }
  return lines;
}

function agree(lines) {
  const a = runDriver(rust, 'F', lines);
  const b = runDriver(JS_DRIVER, 'F', lines);
  assert.equal(a.outputs.length, lines.length);
  for (let i = 0; i < lines.length; i++) {
    assert.deepEqual(comparable(b.outputs[i]), comparable(a.outputs[i]), 'line ' + (i + 1) + ': ' + JSON.stringify(lines[i]) + '\nafter ' + JSON.stringify(lines.slice(Math.max(0, i - 6), i)));
  }
}

test('random sequences: the Rust and JS drivers agree line by line', { skip }, () => {
  const r = rng(20240601);
  for (let n = 0; n < 25; n++) agree(sequence(r));
});

test('mutated messages: the Rust and JS decoders take and refuse the same ones', { skip }, () => {
  const r = rng(4242);
  const lines = [];
  for (let i = 0; i < 600; i++) {
    const sid = 'S' + i;
    lines.push({ do: 'local', t: T + i * 10, action: { kind: 'join', master: 'M', session_id: sid, token: 'tok' } });
    lines.push({ do: 'link', t: T + i * 10 + 1, peer: 'M', state: 'up' });
    if (r() < 0.5) lines.push({ do: 'recv', t: T + i * 10 + 2, from: 'M', msg: env('M', sid, 'JOIN_ACCEPT', { snapshot: { session_id: sid, song_id: 'a', song_epoch: 1, page_index: 2, page_revision: 3 } }) });
    let text = r.pick(BASES).split('S#').join(sid);
    for (let n = r.int(1, 3); n > 0; n--) text = mutate(r, text);
    lines.push({ do: 'recv', t: T + i * 10 + 3, from: 'M', raw: text });
  }
  agree(lines);
});
