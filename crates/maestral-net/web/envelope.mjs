// The envelope and payloads of docs/protocol.md: a validating decoder that accepts and refuses exactly
// what the Rust decoder (maestral-protocol) does, and the encoder for what a Follower sends.
// A refused message is reported, never thrown: bytes from a peer must not break the page.

import { JsonObject, hasLoneSurrogate, parseJson, utf8Length } from './json.mjs';

export const PROTOCOL_VERSION = 1;
export const MAX_MESSAGE_BYTES = 64 * 1024;
const U32_MAX = 4294967295;

function refuse(code, message) {
  const e = new Error(message);
  e.code = code;
  throw e;
}

// Counters are u64 on the wire; this port holds them in JS numbers, so anything past
// Number.MAX_SAFE_INTEGER counts as mistyped (the parser already made those JsonNumbers).
function isU64(v) {
  return typeof v === 'number' && v >= 0;
}

function isStr(v) {
  return typeof v === 'string' && !hasLoneSurrogate(v);
}

// A JSON object read as a Rust struct with these fields: every key is read (so none may hold a
// lone surrogate), a known field may not repeat, unknown fields are ignored.
function struct(v, name, fields) {
  if (!(v instanceof JsonObject)) refuse('wrong_type', '`' + name + '` must be an object');
  v.map.forEach((_, key) => {
    if (hasLoneSurrogate(key)) refuse('wrong_type', 'a key of `' + name + '` is not valid text');
  });
  if (v.dups !== null) {
    v.dups.forEach((key) => {
      if (fields.indexOf(key) >= 0) refuse('wrong_type', 'duplicate field `' + key + '`');
    });
  }
  return v;
}

function need(o, field) {
  if (!o.has(field)) refuse('missing_field', 'missing field `' + field + '`');
  return o.get(field);
}

function u64(o, field) {
  const v = need(o, field);
  if (!isU64(v)) refuse('wrong_type', '`' + field + '` must be an unsigned integer');
  return v;
}

function u32(o, field) {
  const v = u64(o, field);
  if (v > U32_MAX) refuse('wrong_type', '`' + field + '` must fit in u32');
  return v;
}

function str(o, field) {
  const v = need(o, field);
  if (!isStr(v)) refuse('wrong_type', '`' + field + '` must be a string');
  return v;
}

// `str|null`, present either way.
function nullableStr(o, field) {
  const v = need(o, field);
  if (v !== null && !isStr(v)) refuse('wrong_type', '`' + field + '` must be a string or null');
  return v;
}

// A unit-only Rust enum: the variant's name, or serde's other form `{"name": null}`. With
// `other`, an unknown name is that catch-all variant (a reason added by a later version).
function enumOf(o, field, names, other) {
  const v = need(o, field);
  let name = null;
  if (isStr(v)) {
    name = v;
  } else if (v instanceof JsonObject && v.map.size === 1 && v.dups === null) {
    const key = v.map.keys().next().value;
    if (!hasLoneSurrogate(key) && v.get(key) === null) name = key;
  }
  if (name !== null && names.indexOf(name) >= 0) return name;
  if (name !== null && other) return other;
  return refuse('wrong_type', '`' + field + '` must be one of ' + names.join(', '));
}

// The fields whose presence tells the Choir and Solo forms of a message apart.
const SHAPE = ['song_epoch', 'page_revision', 'layout', 'last_page_change', 'last_layout_change', 'snapshot'];

function shape(p) {
  return struct(p, 'payload', SHAPE);
}

function mustBeObject(o, field) {
  if (o.has(field) && !(o.get(field) instanceof JsonObject)) {
    refuse('wrong_type', '`' + field + '` must be an object');
  }
}

function choirSnapshot(v, name) {
  const o = struct(v, name, ['session_id', 'song_id', 'song_epoch', 'page_index', 'page_revision']);
  return {
    session_id: str(o, 'session_id'),
    song_id: nullableStr(o, 'song_id'),
    song_epoch: u64(o, 'song_epoch'),
    page_index: u32(o, 'page_index'),
    page_revision: u64(o, 'page_revision'),
  };
}

function layout(v, name) {
  const o = struct(v, name, ['leader_device_id', 'parity']);
  return { leader_device_id: str(o, 'leader_device_id'), parity: enumOf(o, 'parity', ['odd', 'even']) };
}

function stamp(v, name) {
  const o = struct(v, name, ['sender_id', 'ts']);
  return { sender_id: str(o, 'sender_id'), ts: u64(o, 'ts') };
}

const PAYLOADS = {
  HELLO(p) {
    const o = struct(p, 'payload', ['mode', 'device_name', 'app_version', 'capabilities']);
    const mode = enumOf(o, 'mode', ['solo', 'choir_master', 'choir_follower']);
    const device_name = str(o, 'device_name');
    const app_version = str(o, 'app_version');
    const caps = need(o, 'capabilities');
    if (!Array.isArray(caps) || !caps.every(isStr)) {
      refuse('wrong_type', '`capabilities` must be a list of strings');
    }
    return { kind: 'HELLO', hello: { mode, device_name, app_version, capabilities: caps.slice() } };
  },
  JOIN_REQUEST(p) {
    const o = struct(p, 'payload', ['session_token', 'follow_mode', 'song_epoch']);
    return {
      kind: 'JOIN_REQUEST',
      session_token: str(o, 'session_token'),
      follow_mode: enumOf(o, 'follow_mode', ['follow', 'free']),
      song_epoch: u64(o, 'song_epoch'),
    };
  },
  JOIN_ACCEPT(p) {
    mustBeObject(shape(p), 'snapshot');
    const o = struct(p, 'payload', ['snapshot']);
    return { kind: 'JOIN_ACCEPT', snapshot: choirSnapshot(need(o, 'snapshot'), 'snapshot') };
  },
  JOIN_REJECT(p) {
    const o = struct(p, 'payload', ['reason']);
    const names = ['invalid_token', 'session_ended', 'version_mismatch', 'other'];
    return { kind: 'JOIN_REJECT', reason: enumOf(o, 'reason', names, 'other') };
  },
  LEAVE_SESSION(p) {
    struct(p, 'payload', []);
    return { kind: 'LEAVE_SESSION' };
  },
  SESSION_END(p) {
    struct(p, 'payload', []);
    return { kind: 'SESSION_END' };
  },
  STATE_SNAPSHOT(p) {
    const s = shape(p);
    if (!s.has('layout') && !s.has('last_page_change')) {
      return Object.assign({ kind: 'CHOIR_SNAPSHOT' }, choirSnapshot(p, 'payload'));
    }
    mustBeObject(s, 'layout');
    mustBeObject(s, 'last_page_change');
    mustBeObject(s, 'last_layout_change');
    const fields = ['song_id', 'page_index', 'layout', 'last_page_change', 'last_layout_change'];
    const o = struct(p, 'payload', fields);
    return {
      kind: 'SOLO_SNAPSHOT',
      song_id: nullableStr(o, 'song_id'),
      page_index: u32(o, 'page_index'),
      layout: layout(need(o, 'layout'), 'layout'),
      last_page_change: stamp(need(o, 'last_page_change'), 'last_page_change'),
      last_layout_change: o.has('last_layout_change')
        ? stamp(o.get('last_layout_change'), 'last_layout_change')
        : { sender_id: '', ts: 0 },
    };
  },
  SET_SONG(p) {
    if (shape(p).has('song_epoch')) {
      const o = struct(p, 'payload', ['song_id', 'song_epoch']);
      return { kind: 'CHOIR_SET_SONG', song_id: nullableStr(o, 'song_id'), song_epoch: u64(o, 'song_epoch') };
    }
    const o = struct(p, 'payload', ['song_id']);
    return { kind: 'SOLO_SET_SONG', song_id: nullableStr(o, 'song_id') };
  },
  SET_PAGE(p) {
    const s = shape(p);
    if (s.has('song_epoch') || s.has('page_revision')) {
      const o = struct(p, 'payload', ['song_epoch', 'page_revision', 'page_index']);
      return {
        kind: 'CHOIR_SET_PAGE',
        song_epoch: u64(o, 'song_epoch'),
        page_revision: u64(o, 'page_revision'),
        page_index: u32(o, 'page_index'),
      };
    }
    const o = struct(p, 'payload', ['song_id', 'page_index']);
    return { kind: 'SOLO_SET_PAGE', song_id: nullableStr(o, 'song_id'), page_index: u32(o, 'page_index') };
  },
  SET_LAYOUT_PARITY(p) {
    return Object.assign({ kind: 'SET_LAYOUT_PARITY' }, layout(p, 'payload'));
  },
  SET_FOLLOW_MODE(p) {
    const o = struct(p, 'payload', ['mode']);
    return { kind: 'SET_FOLLOW_MODE', mode: enumOf(o, 'mode', ['follow', 'free']) };
  },
  STREAM_PREPARE(p) {
    const o = struct(p, 'payload', ['song_id', 'song_epoch', 'size_bytes', 'sha256', 'channel', 'title', 'next']);
    const prepare = {
      song_id: str(o, 'song_id'),
      song_epoch: u64(o, 'song_epoch'),
      size_bytes: u64(o, 'size_bytes'),
      sha256: str(o, 'sha256'),
      channel: str(o, 'channel'),
    };
    // `title` came later: absent and null both mean none.
    if (o.has('title') && o.get('title') !== null) prepare.title = str(o, 'title');
    // `next` (the Master's next piece, offered ahead) came later too: absent means false, and
    // anything but a boolean is refused, as the native decoder does.
    if (o.has('next')) {
      if (typeof o.get('next') !== 'boolean') refuse('wrong_type', '`next` must be a boolean');
      if (o.get('next')) prepare.next = true;
    }
    return { kind: 'STREAM_PREPARE', prepare };
  },
  STREAM_CLEAR(p) {
    const o = struct(p, 'payload', ['song_id']);
    return { kind: 'STREAM_CLEAR', song_id: nullableStr(o, 'song_id') };
  },
  PAIR_INFO(p) {
    const o = struct(p, 'payload', ['host', 'proof_key']);
    return { kind: 'PAIR_INFO', host: str(o, 'host'), proof_key: str(o, 'proof_key') };
  },
  SHOWING(p) {
    const o = struct(p, 'payload', ['song_id', 'song_epoch', 'page_index']);
    return {
      kind: 'SHOWING',
      song_id: nullableStr(o, 'song_id'),
      song_epoch: u64(o, 'song_epoch'),
      page_index: u32(o, 'page_index'),
    };
  },
};

const ENVELOPE = ['v', 'session_id', 'sender_id', 'type', 'ts', 'payload'];

// Decodes one message from a peer. Returns `{ok: true, envelope}` with
// `envelope = {session_id, sender_id, ts, type, message: {kind, ...}}`, or `{ok: false, error}`
// with `error = {code, message}`; code is one of binary, too_large, not_json, not_an_object,
// missing_field, wrong_type, version. A `type` this version does not know decodes to kind
// UNKNOWN (to be ignored); unknown fields are ignored.
export function decode(text) {
  if (typeof text !== 'string') {
    return failed('binary', 'a binary message on the sync channel; dropped');
  }
  const len = text.length > MAX_MESSAGE_BYTES ? text.length : utf8Length(text);
  if (len > MAX_MESSAGE_BYTES) {
    return failed('too_large', 'message of ' + len + ' bytes is over the 64 KiB limit; dropped unread');
  }
  let tree;
  try {
    tree = parseJson(text, false, 0);
  } catch (e) {
    return failed('not_json', 'message is not JSON (' + e.message + '); dropped');
  }
  if (!(tree instanceof JsonObject)) return failed('not_an_object', 'message is JSON but not an object; dropped');
  try {
    const o = struct(tree, 'envelope', ENVELOPE);
    const v = need(o, 'v');
    if (!isU64(v)) refuse('wrong_type', '`v` must be an unsigned integer');
    if (v !== PROTOCOL_VERSION) {
      refuse('version', 'message speaks protocol version ' + v + ', this device speaks 1');
    }
    const session_id = str(o, 'session_id');
    const sender_id = str(o, 'sender_id');
    const type = str(o, 'type');
    const ts = u64(o, 'ts');
    const payload = need(o, 'payload');
    const read = Object.prototype.hasOwnProperty.call(PAYLOADS, type) ? PAYLOADS[type] : null;
    const message = read === null ? { kind: 'UNKNOWN', type } : read(payload);
    return { ok: true, envelope: { session_id, sender_id, ts, type, message } };
  } catch (e) {
    if (!e.code) throw e;
    return failed(e.code, e.message + '; dropped');
  }
}

function failed(code, message) {
  return { ok: false, error: { code, message } };
}

// The register a message updates, if any: only these may travel on the copy channel.
export function registerOf(message) {
  switch (message.kind) {
    case 'CHOIR_SET_SONG':
    case 'SOLO_SET_SONG':
      return 'song';
    case 'CHOIR_SET_PAGE':
    case 'SOLO_SET_PAGE':
      return 'page';
    case 'SET_LAYOUT_PARITY':
      return 'layout';
    default:
      return null;
  }
}

// One envelope as text, fields in the documented order (the payload object's own order is kept).
export function encode(sessionId, senderId, ts, type, payload) {
  return JSON.stringify({ v: PROTOCOL_VERSION, session_id: sessionId, sender_id: senderId, type, ts, payload });
}
