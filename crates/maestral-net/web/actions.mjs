// Local actions, in the shape of the conformance driver's `local` lines ({kind, ...fields}),
// checked as the Rust driver checks them. Kinds of other roles are accepted here and refused by
// the Follower itself (as the Rust engine refuses them), so both answer the same way.

const U32_MAX = 4294967295;

function own(o, name) {
  return Object.prototype.hasOwnProperty.call(o, name) ? o[name] : undefined;
}

function isU64(v) {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

function strField(o, name) {
  const v = own(o, name);
  if (typeof v !== 'string') throw new Error('`' + name + '` (string) is required');
  return v;
}

function optStr(o, name) {
  const v = own(o, name);
  if (v === undefined || v === null) return null;
  if (typeof v !== 'string') throw new Error('`' + name + '` must be a string');
  return v;
}

function oneOf(o, name, names, what) {
  const v = strField(o, name);
  if (names.indexOf(v) < 0) throw new Error('unknown ' + what + ' `' + v + '` (' + names.join(', ') + ')');
  return v;
}

const KINDS = {
  set_song(a) {
    const v = own(a, 'song_id');
    if (v !== null && typeof v !== 'string') throw new Error('`song_id` (string or null) is required');
    return { kind: 'set_song', song_id: v };
  },
  set_page(a) {
    const page = own(a, 'page');
    if (!isU64(page)) throw new Error('`page` (u32) is required');
    if (page > U32_MAX) throw new Error('`page` must fit in u32');
    return { kind: 'set_page', page };
  },
  next_page: () => ({ kind: 'next_page' }),
  prev_page: () => ({ kind: 'prev_page' }),
  set_parity: (a) => ({ kind: 'set_parity', parity: oneOf(a, 'parity', ['odd', 'even'], 'parity') }),
  start_session: (a) => ({ kind: 'start_session', session_id: optStr(a, 'session_id'), token: optStr(a, 'token') }),
  end_session: () => ({ kind: 'end_session' }),
  // Without `master`: a join by the join code, which does not name the Master; the first link
  // that opens does.
  join(a) {
    const session_id = strField(a, 'session_id');
    const token = strField(a, 'token');
    return { kind: 'join', master: optStr(a, 'master'), session_id, token };
  },
  leave: () => ({ kind: 'leave' }),
  unpair: () => ({ kind: 'unpair' }),
  set_follow_mode: (a) => ({ kind: 'set_follow_mode', mode: oneOf(a, 'mode', ['follow', 'free'], 'mode') }),
  offer_stream(a) {
    const song_id = strField(a, 'song_id');
    const size_bytes = own(a, 'size_bytes');
    if (!isU64(size_bytes)) throw new Error('`size_bytes` (u64) is required');
    return { kind: 'offer_stream', song_id, size_bytes, title: optStr(a, 'title') };
  },
};

// `{action}` normalised, or `{error}` (a message) for an action that is malformed.
export function parseAction(a) {
  if (a === null || typeof a !== 'object' || Array.isArray(a)) return { error: '`action` object is required' };
  try {
    const kind = strField(a, 'kind');
    if (!Object.prototype.hasOwnProperty.call(KINDS, kind)) throw new Error('unknown action kind `' + kind + '`');
    return { action: KINDS[kind](a) };
  } catch (e) {
    return { error: e.message };
  }
}
