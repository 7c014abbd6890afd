// Seeded randomness and message mutations shared by the differential and hostile tests (a
// failure replays from its seed).

export function rng(seed) {
  let s = seed;
  const next = () => {
    s = (s * 48271) % 2147483647;
    return s / 2147483647;
  };
  next.pick = (a) => a[Math.floor(next() * a.length)];
  next.int = (a, b) => a + Math.floor(next() * (b - a + 1));
  return next;
}

export const BASES = [
  '{"v":1,"session_id":"S#","sender_id":"M","type":"SET_PAGE","ts":5,"payload":{"song_epoch":1,"page_revision":9,"page_index":7}}',
  '{"v":1,"session_id":"S#","sender_id":"M","type":"SET_SONG","ts":5,"payload":{"song_id":"b","song_epoch":2}}',
  '{"v":1,"session_id":"S#","sender_id":"M","type":"STATE_SNAPSHOT","ts":5,"payload":{"session_id":"S#","song_id":"c","song_epoch":1,"page_index":6,"page_revision":9}}',
  '{"v":1,"session_id":"S#","sender_id":"M","type":"JOIN_ACCEPT","ts":5,"payload":{"snapshot":{"session_id":"S#","song_id":"d","song_epoch":3,"page_index":5,"page_revision":1}}}',
  '{"v":1,"session_id":"S#","sender_id":"M","type":"SESSION_END","ts":5,"payload":{}}',
  '{"v":1,"session_id":"S#","sender_id":"M","type":"JOIN_REJECT","ts":5,"payload":{"reason":"invalid_token"}}',
];
// Counters up to 2^53 - 1 only: past that the module refuses what Rust takes (documented).
const VALUES = ['1.0', '1e0', '-1', '-0', '4294967296', '4294967295', '"1"', 'null', 'true', '[]', '{}', '0', '01', '1E400', '"\\ud800"', '"\\u0041"', '{"x":null}', '{"invalid_token":null}', '{"a":1,"a":2}', '"\\x"', '[[[[[[[[]]]]]]]]'];
const KEYS = ['"zz"', '"v"', '"\\u0076"', '"\\ud800"', '"type"', '"payload"', '"snapshot"', '"layout"', '"song_epoch"', '"page_revision"', '"song_id"', '"reason"'];

export function mutate(r, text) {
  const k = r.int(0, 5);
  const spots = [];
  const re = /:(-?\d+|"[^"]*"|null)/g;
  let m;
  while ((m = re.exec(text)) !== null) spots.push(m);
  if (k <= 1 && spots.length) {
    const s = r.pick(spots);
    return text.slice(0, s.index + 1) + r.pick(VALUES) + text.slice(s.index + s[0].length);
  }
  if (k <= 3) {
    const opens = [];
    for (let i = 0; i < text.length; i++) if (text[i] === '{' && text[i + 1] === '"') opens.push(i);
    const o = r.pick(opens);
    return text.slice(0, o + 1) + r.pick(KEYS) + ':' + r.pick(VALUES) + ',' + text.slice(o + 1);
  }
  if (k === 4) return text.replace(/"type":"[A-Z_]+"/, '"type":"' + r.pick(['SET_PAGE', 'SET_SONG', 'STATE_SNAPSHOT', 'JOIN_ACCEPT', 'SHOWING', 'HELLO', 'STREAM_PREPARE', 'FOO']) + '"');
  return ' \n' + text + r.pick(['', ' ', 'x', '}']);
}

