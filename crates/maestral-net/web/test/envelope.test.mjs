// The validating decoder: what it accepts and refuses is what the Rust decoder does (each case
// below was checked against the Rust conformance driver), never a throw.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decode, encode, registerOf, MAX_MESSAGE_BYTES } from '../envelope.mjs';
import { parseJson, utf8Length, compareCodePoints, JsonObject, writeJson } from '../json.mjs';

const GOOD_PAGE = '{"v":1,"session_id":"S","sender_id":"M","type":"SET_PAGE","ts":1,"payload":{"song_epoch":1,"page_revision":5,"page_index":9}}';

function ok(text) {
  const d = decode(text);
  assert.ok(d.ok, 'expected accepted: ' + text.slice(0, 200) + ' — ' + (d.error && d.error.message));
  return d.envelope;
}

function refused(text, code) {
  const d = decode(text);
  assert.ok(!d.ok, 'expected refused: ' + String(text).slice(0, 200));
  if (code) assert.equal(d.error.code, code, d.error.message);
  return d.error;
}

const page = (payload, rest) => GOOD_PAGE.replace('{"song_epoch":1,"page_revision":5,"page_index":9}', payload) + (rest || '');

test('every message of the catalog decodes to its kind and fields', () => {
  const e = ok(GOOD_PAGE);
  assert.deepEqual(e, { session_id: 'S', sender_id: 'M', ts: 1, type: 'SET_PAGE', message: { kind: 'CHOIR_SET_PAGE', song_epoch: 1, page_revision: 5, page_index: 9 } });
  const m = (type, payload) => ok(JSON.stringify({ v: 1, session_id: 'S', sender_id: 'M', type, ts: 1, payload })).message;
  assert.deepEqual(m('HELLO', { mode: 'choir_master', device_name: 'Piano', app_version: '1', capabilities: ['webrtc'] }), { kind: 'HELLO', hello: { mode: 'choir_master', device_name: 'Piano', app_version: '1', capabilities: ['webrtc'] } });
  assert.equal(m('JOIN_REQUEST', { session_token: 't', follow_mode: 'free', song_epoch: 0 }).follow_mode, 'free');
  assert.equal(m('JOIN_ACCEPT', { snapshot: { session_id: 'S', song_id: null, song_epoch: 0, page_index: 0, page_revision: 0 } }).snapshot.song_id, null);
  assert.equal(m('JOIN_REJECT', { reason: 'session_ended' }).reason, 'session_ended');
  assert.equal(m('LEAVE_SESSION', {}).kind, 'LEAVE_SESSION');
  assert.equal(m('SESSION_END', { later: 1 }).kind, 'SESSION_END');
  assert.equal(m('STATE_SNAPSHOT', { session_id: 'S', song_id: 'a', song_epoch: 1, page_index: 2, page_revision: 3 }).kind, 'CHOIR_SNAPSHOT');
  const solo = m('STATE_SNAPSHOT', { song_id: 'a', page_index: 2, layout: { leader_device_id: 'A', parity: 'even' }, last_page_change: { sender_id: 'A', ts: 3 } });
  assert.equal(solo.kind, 'SOLO_SNAPSHOT');
  assert.deepEqual(solo.last_layout_change, { sender_id: '', ts: 0 });
  assert.equal(m('SET_SONG', { song_id: 'a', song_epoch: 2 }).kind, 'CHOIR_SET_SONG');
  assert.equal(m('SET_SONG', { song_id: 'a' }).kind, 'SOLO_SET_SONG');
  assert.equal(m('SET_PAGE', { song_id: null, page_index: 2 }).kind, 'SOLO_SET_PAGE');
  assert.equal(m('SET_LAYOUT_PARITY', { leader_device_id: 'A', parity: 'odd' }).parity, 'odd');
  assert.equal(m('SET_FOLLOW_MODE', { mode: 'follow' }).mode, 'follow');
  const prep = m('STREAM_PREPARE', { song_id: 'a', song_epoch: 1, size_bytes: 10, sha256: 'ab', channel: 'maestral-stream', title: null });
  assert.deepEqual(prep.prepare, { song_id: 'a', song_epoch: 1, size_bytes: 10, sha256: 'ab', channel: 'maestral-stream' });
  assert.equal(m('STREAM_PREPARE', { song_id: 'a', song_epoch: 1, size_bytes: 10, sha256: 'ab', channel: 'c', title: 'Ave' }).prepare.title, 'Ave');
  assert.equal(m('STREAM_PREPARE', { song_id: 'a', song_epoch: 1, size_bytes: 10, sha256: 'ab', channel: 'c', next: true }).prepare.next, true);
  assert.equal(m('STREAM_PREPARE', { song_id: 'a', song_epoch: 1, size_bytes: 10, sha256: 'ab', channel: 'c', next: false }).prepare.next, undefined);
  refused(JSON.stringify({ v: 1, session_id: 'S', sender_id: 'M', type: 'STREAM_PREPARE', ts: 1, payload: { song_id: 'a', song_epoch: 1, size_bytes: 10, sha256: 'ab', channel: 'c', next: null } }), 'wrong_type');
  assert.equal(m('STREAM_CLEAR', { song_id: null }).song_id, null);
  assert.equal(m('PAIR_INFO', { host: '1.2.3.4:5', proof_key: 'k' }).kind, 'PAIR_INFO');
  assert.equal(m('SHOWING', { song_id: null, song_epoch: 0, page_index: 1 }).kind, 'SHOWING');
  assert.deepEqual(m('SOMETHING_LATER', [1, 2]), { kind: 'UNKNOWN', type: 'SOMETHING_LATER' });
});

test('text that is not a JSON object is refused', () => {
  refused('not json', 'not_json');
  refused('', 'not_json');
  refused('[1]', 'not_an_object');
  refused('"x"', 'not_an_object');
  refused('\u0000\u0001 binary', 'not_json');
  refused(GOOD_PAGE + ' x', 'not_json');
  refused(GOOD_PAGE + '{}', 'not_json');
  refused('\ufeff' + GOOD_PAGE, 'not_json');
  ok(' \n\t' + GOOD_PAGE + '\r\n ');
});

test('a binary message is refused', () => {
  refused(new Uint8Array([123, 125]), 'binary');
  refused(new ArrayBuffer(2), 'binary');
  refused(null, 'binary');
});

test('the 64 KiB limit counts UTF-8 bytes', () => {
  const sized = (size, ch) => {
    const head = GOOD_PAGE.slice(0, -1) + ',"pad":"';
    const need = size - utf8Length(head + '"}');
    const w = utf8Length(ch);
    return head + ch.repeat(Math.floor(need / w)) + 'x'.repeat(need % w) + '"}';
  };
  ['x', 'é', '€', '😀'].forEach((ch) => {
    assert.equal(utf8Length(sized(MAX_MESSAGE_BYTES, ch)), MAX_MESSAGE_BYTES);
    ok(sized(MAX_MESSAGE_BYTES, ch));
    refused(sized(MAX_MESSAGE_BYTES + 1, ch), 'too_large');
  });
});

test('the envelope: version, missing, mistyped and repeated fields', () => {
  refused(GOOD_PAGE.replace('"v":1', '"v":2'), 'version');
  refused(GOOD_PAGE.replace('"v":1', '"v":0'), 'version');
  refused(GOOD_PAGE.replace('"v":1', '"v":"1"'), 'wrong_type');
  refused(GOOD_PAGE.replace('"v":1', '"v":1.0'), 'wrong_type');
  refused(GOOD_PAGE.replace('"v":1,', ''), 'missing_field');
  refused(GOOD_PAGE.replace('"v":1', '"v":null'), 'wrong_type');
  refused(GOOD_PAGE.replace('"sender_id":"M",', ''), 'missing_field');
  refused(GOOD_PAGE.replace('"session_id":"S"', '"session_id":5'), 'wrong_type');
  refused(GOOD_PAGE.replace('"type":"SET_PAGE"', '"type":null'), 'wrong_type');
  refused(GOOD_PAGE.replace('"ts":1', '"ts":-1'), 'wrong_type');
  refused(GOOD_PAGE.replace('"ts":1', '"ts":1.5'), 'wrong_type');
  refused(GOOD_PAGE.replace('"ts":1', '"ts":-0'), 'wrong_type');
  refused(GOOD_PAGE.replace(',"payload":{"song_epoch":1,"page_revision":5,"page_index":9}', ''), 'missing_field');
  refused(GOOD_PAGE.replace('"v":1,', '"v":1,"v":1,'), 'wrong_type');
  refused(GOOD_PAGE.replace('"v":1,', '"\\u0076":1,"v":1,'), 'wrong_type');
  // Repeated unknown fields are no one's business.
  ok(GOOD_PAGE.replace('"v":1,', '"x":1,"x":2,"v":1,'));
});

test('payload fields: counters are unsigned integers, pages fit u32, strings are text', () => {
  refused(page('{"song_epoch":1,"page_revision":5,"page_index":9.0}'), 'wrong_type');
  refused(page('{"song_epoch":1,"page_revision":5,"page_index":1e1}'), 'wrong_type');
  refused(page('{"song_epoch":1,"page_revision":5,"page_index":-1}'), 'wrong_type');
  refused(page('{"song_epoch":1,"page_revision":5,"page_index":4294967296}'), 'wrong_type');
  ok(page('{"song_epoch":1,"page_revision":5,"page_index":4294967295}'));
  refused(page('{"song_epoch":1,"page_revision":"5","page_index":9}'), 'wrong_type');
  refused(page('{"song_epoch":1,"page_index":9}'), 'missing_field');
  refused(page('{"song_epoch":1,"page_revision":5,"page_index":9,"page_index":9}'), 'wrong_type');
  refused(page('[1,5,9]'), 'wrong_type');
  // Past 2^53 a JS number cannot hold the counter exactly: refused (the Rust engine takes up to
  // u64::MAX; no real session gets near either).
  ok(page('{"song_epoch":1,"page_revision":9007199254740991,"page_index":9}'));
  refused(page('{"song_epoch":1,"page_revision":9007199254740992,"page_index":9}'), 'wrong_type');
  refused(page('{"song_epoch":1,"page_revision":18446744073709551615,"page_index":9}'), 'wrong_type');
});

test('what the decoder reads must be valid text; what it skips need only be JSON', () => {
  const snapshotWith = (song) => '{"v":1,"session_id":"S","sender_id":"M","type":"STATE_SNAPSHOT","ts":1,"payload":{"session_id":"S","song_id":' + song + ',"song_epoch":1,"page_revision":5,"page_index":9}}';
  refused(snapshotWith('"x\\ud800"'), 'wrong_type');
  refused(snapshotWith('"\\udc00"'), 'wrong_type');
  assert.equal(ok(snapshotWith('"x\\ud83d\\ude00"')).message.song_id, 'x😀');
  // Skipped values: lone surrogates, huge numbers, repeated keys, any depth.
  ok(GOOD_PAGE.slice(0, -1) + ',"zz":"\\ud800","yy":1e400,"xx":{"a":1,"a":2},"ww":{"\\ud800":0}}');
  ok(page('{"song_epoch":1,"page_revision":5,"page_index":9,"zz":' + '['.repeat(30000) + ']'.repeat(30000) + '}'));
  // A key the decoder reads (every key of an object it decodes) must be text too.
  refused(GOOD_PAGE.slice(0, -1) + ',"\\ud800":1}', 'wrong_type');
  refused(page('{"song_epoch":1,"page_revision":5,"page_index":9,"\\udfff":1}'), 'wrong_type');
  // Still JSON: bad escapes and raw control characters are not.
  refused(GOOD_PAGE.slice(0, -1) + ',"zz":"\\x"}', 'not_json');
  refused(GOOD_PAGE.slice(0, -1) + ',"zz":"\t"}', 'not_json');
  refused(GOOD_PAGE.slice(0, -1) + ',"zz":01}', 'not_json');
  refused(GOOD_PAGE.slice(0, -1) + ',"zz":tru}', 'not_json');
});

test('the Choir and Solo forms are told apart by the fields present', () => {
  // song_epoch null still means the Choir form, then mistyped.
  refused(page('{"song_epoch":null,"page_revision":5,"page_index":9}'), 'wrong_type');
  assert.equal(ok(page('{"song_id":"a","page_index":9}')).message.kind, 'SOLO_SET_PAGE');
  refused(page('{"page_revision":5,"page_index":9}'), 'missing_field');
  // The fields that tell the forms apart may not repeat even in a message that ignores them.
  refused(page('{"song_epoch":1,"page_revision":5,"page_index":9,"snapshot":1,"snapshot":1}'), 'wrong_type');
  ok(page('{"song_epoch":1,"page_revision":5,"page_index":9,"song_id":1,"song_id":1}'));
  const snap = (extra) => '{"v":1,"session_id":"S","sender_id":"M","type":"STATE_SNAPSHOT","ts":1,"payload":{"session_id":"S","song_id":"c","song_epoch":1,"page_index":6,"page_revision":9' + extra + '}}';
  refused(snap(',"layout":null'), 'wrong_type');
  assert.equal(ok(snap(',"last_layout_change":null')).message.kind, 'CHOIR_SNAPSHOT');
  const accept = (s) => '{"v":1,"session_id":"S","sender_id":"M","type":"JOIN_ACCEPT","ts":1,"payload":' + s + '}';
  refused(accept('{"snapshot":["S","a",1,2,3]}'), 'wrong_type');
  refused(accept('{"snapshot":null}'), 'wrong_type');
  refused(accept('{}'), 'missing_field');
  ok(accept('{"snapshot":{"session_id":"S","song_id":null,"song_epoch":1,"page_index":2,"page_revision":3},"layout":null}'));
});

test('enums: the names, serde\'s {"name": null} form, and a later reason', () => {
  const reject = (r) => '{"v":1,"session_id":"S","sender_id":"M","type":"JOIN_REJECT","ts":1,"payload":{"reason":' + r + '}}';
  assert.equal(ok(reject('"invalid_token"')).message.reason, 'invalid_token');
  assert.equal(ok(reject('"version_mismatch"')).message.reason, 'version_mismatch');
  assert.equal(ok(reject('"banned_for_singing_flat"')).message.reason, 'other');
  assert.equal(ok(reject('{"session_ended":null}')).message.reason, 'session_ended');
  assert.equal(ok(reject('{"later":null}')).message.reason, 'other');
  refused(reject('{"invalid_token":1}'), 'wrong_type');
  refused(reject('{"invalid_token":null,"x":null}'), 'wrong_type');
  refused(reject('{}'), 'wrong_type');
  refused(reject('5'), 'wrong_type');
  refused(reject('"\\ud800"'), 'wrong_type');
  const mode = (m) => '{"v":1,"session_id":"S","sender_id":"F","type":"SET_FOLLOW_MODE","ts":1,"payload":{"mode":' + m + '}}';
  refused(mode('"sideways"'), 'wrong_type');
  assert.equal(ok(mode('{"free":null}')).message.mode, 'free');
});

test('registers: only page, song and layout changes may come as copies', () => {
  const kinds = { SET_PAGE: 'page', SET_SONG: 'song' };
  assert.equal(registerOf(ok(GOOD_PAGE).message), 'page');
  assert.equal(registerOf({ kind: 'CHOIR_SET_SONG' }), kinds.SET_SONG);
  assert.equal(registerOf({ kind: 'SOLO_SET_PAGE' }), 'page');
  assert.equal(registerOf({ kind: 'SET_LAYOUT_PARITY' }), 'layout');
  ['SESSION_END', 'JOIN_ACCEPT', 'JOIN_REJECT', 'CHOIR_SNAPSHOT', 'HELLO', 'UNKNOWN', 'STREAM_CLEAR'].forEach((kind) => {
    assert.equal(registerOf({ kind }), null, kind);
  });
});

test('encode writes the documented envelope, fields in order', () => {
  const text = encode('S', 'F', 7, 'SHOWING', { song_id: null, song_epoch: 2, page_index: 3 });
  assert.equal(text, '{"v":1,"session_id":"S","sender_id":"F","type":"SHOWING","ts":7,"payload":{"song_id":null,"song_epoch":2,"page_index":3}}');
  assert.equal(ok(text).message.kind, 'SHOWING');
});

test('the JSON reader keeps repeated keys, number kinds and order; strict mode is serde_json\'s Value', () => {
  const o = parseJson('{"b":1,"a":2,"b":3,"n":1.0,"m":-0,"big":9007199254740993}', false, 0);
  assert.ok(o instanceof JsonObject);
  assert.deepEqual(Array.from(o.map.keys()), ['b', 'a', 'n', 'm', 'big']);
  assert.equal(o.get('b'), 3);
  assert.deepEqual(o.dups, ['b']);
  assert.equal(writeJson(o), '{"b":3,"a":2,"n":1.0,"m":-0,"big":9007199254740993}');
  assert.throws(() => parseJson('{"x":"\\ud800"}', true, 127));
  assert.throws(() => parseJson('{"x":1e400}', true, 127));
  parseJson('['.repeat(127) + ']'.repeat(127), true, 127);
  assert.throws(() => parseJson('['.repeat(128) + ']'.repeat(128), true, 127), /recursion/);
  assert.equal(compareCodePoints('\uffff', '😀') < 0, true);
  assert.equal(compareCodePoints('a', 'ab') < 0, true);
  assert.equal(compareCodePoints('b', 'a') > 0, true);
});
