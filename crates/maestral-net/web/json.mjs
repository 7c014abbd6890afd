// A JSON reader that keeps what JSON.parse throws away and the Rust decoder (serde_json) looks at:
// repeated keys, whether a number was written as an integer, escapes that leave lone UTF-16
// surrogates. The envelope decoder needs these to accept and refuse exactly what the Rust one
// does. No DOM, no recursion (a 64 KiB message may nest 30 000 levels deep), ES2018 syntax only.

// An object as read: keys in order of first appearance (a repeated key keeps its place and takes
// the last value, as serde_json's ordered map does), plus the keys that were repeated.
export class JsonObject {
  constructor() {
    this.map = new Map();
    this.dups = null;
  }

  set(key, value) {
    if (this.map.has(key)) {
      if (this.dups === null) this.dups = [];
      this.dups.push(key);
    }
    this.map.set(key, value);
  }

  has(key) {
    return this.map.has(key);
  }

  get(key) {
    return this.map.get(key);
  }
}

// A number that is not a plain integer within Number.MAX_SAFE_INTEGER: a fraction, an exponent,
// `-0`, or an integer too big to hold exactly. serde_json never reads one of these as a u64, so
// the decoder can refuse it without knowing its value; the text is kept for writing it out again.
export class JsonNumber {
  constructor(text, integer) {
    this.text = text;
    this.integer = integer;
  }
}

export class JsonError extends Error {
  constructor(message, at) {
    super(message + ' at character ' + at);
    this.at = at;
  }
}

// A UTF-16 surrogate without its partner: serde_json refuses such a string wherever it reads one
// into a Rust string (it skips over them in values it ignores).
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?:^|[^\uD800-\uDBFF])[\uDC00-\uDFFF]/;

export function hasLoneSurrogate(s) {
  return LONE_SURROGATE.test(s);
}

const NUMBER = /-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?/y;
const PLAIN_INTEGER = /^-?(?:0|[1-9][0-9]*)$/;

// Reads one JSON text. `strict` is serde_json reading into a `Value` (the conformance driver's
// input lines): lone surrogates and numbers beyond f64 are errors, and at most `maxDepth` arrays
// and objects nest. Otherwise it is serde_json skipping values it ignores (the envelope decoder
// then checks the fields it reads): any depth, any lone surrogate, any number. Throws JsonError.
export function parseJson(src, strict, maxDepth) {
  if (typeof src !== 'string') throw new JsonError('not text', 0);
  const n = src.length;
  let i = 0;
  const stack = [];

  function fail(msg) {
    throw new JsonError(msg, i);
  }

  function skipWs() {
    while (i < n) {
      const c = src.charCodeAt(i);
      if (c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d) i++;
      else break;
    }
  }

  function readString() {
    // src[i] is the opening quote.
    i++;
    let out = '';
    let start = i;
    for (;;) {
      if (i >= n) fail('EOF while parsing a string');
      const c = src.charCodeAt(i);
      if (c === 0x22) {
        out += src.slice(start, i);
        i++;
        break;
      }
      if (c < 0x20) fail('control character in a string');
      if (c !== 0x5c) {
        i++;
        continue;
      }
      out += src.slice(start, i);
      const e = src.charAt(i + 1);
      i += 2;
      switch (e) {
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case '/': out += '/'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          const hex = src.slice(i, i + 4);
          if (!/^[0-9a-fA-F]{4}$/.test(hex)) fail('invalid \\u escape');
          out += String.fromCharCode(parseInt(hex, 16));
          i += 4;
          break;
        }
        default:
          i -= 1;
          fail('invalid escape');
      }
      start = i;
    }
    if (strict && hasLoneSurrogate(out)) fail('lone surrogate in a string');
    return out;
  }

  function readNumber() {
    NUMBER.lastIndex = i;
    const m = NUMBER.exec(src);
    if (m === null) fail('invalid number');
    const text = m[0];
    i += text.length;
    const integer = PLAIN_INTEGER.test(text) && text !== '-0';
    if (integer) {
      const v = Number(text);
      if (Number.isSafeInteger(v)) return v;
    }
    if (strict && !isFinite(Number(text))) fail('number out of range');
    return new JsonNumber(text, integer);
  }

  function readLiteral(word, value) {
    if (src.startsWith(word, i)) {
      i += word.length;
      return value;
    }
    return fail('expected a value');
  }

  function readKey() {
    skipWs();
    if (src.charCodeAt(i) !== 0x22) fail('expected a key');
    const key = readString();
    skipWs();
    if (src.charCodeAt(i) !== 0x3a) fail('expected `:`');
    i++;
    return key;
  }

  function open() {
    if (maxDepth && stack.length >= maxDepth) fail('recursion limit exceeded');
  }

  skipWs();
  for (;;) {
    // One value starts at i.
    skipWs();
    let v;
    const c = src.charCodeAt(i);
    if (c === 0x7b) {
      open();
      i++;
      const o = new JsonObject();
      skipWs();
      if (src.charCodeAt(i) === 0x7d) {
        i++;
        v = o;
      } else {
        stack.push({ c: o, key: readKey() });
        continue;
      }
    } else if (c === 0x5b) {
      open();
      i++;
      const a = [];
      skipWs();
      if (src.charCodeAt(i) === 0x5d) {
        i++;
        v = a;
      } else {
        stack.push({ c: a, key: null });
        continue;
      }
    } else if (c === 0x22) {
      v = readString();
    } else if (c === 0x2d || (c >= 0x30 && c <= 0x39)) {
      v = readNumber();
    } else if (c === 0x74) {
      v = readLiteral('true', true);
    } else if (c === 0x66) {
      v = readLiteral('false', false);
    } else if (c === 0x6e) {
      v = readLiteral('null', null);
    } else {
      fail(i >= n ? 'EOF while parsing a value' : 'expected a value');
    }
    // Hand the value to its container; close containers that end here.
    for (;;) {
      if (stack.length === 0) {
        skipWs();
        if (i !== n) fail('trailing characters');
        return v;
      }
      const top = stack[stack.length - 1];
      if (top.key === null) top.c.push(v);
      else top.c.set(top.key, v);
      skipWs();
      const d = src.charCodeAt(i);
      if (d === 0x2c) {
        i++;
        if (top.key !== null) top.key = readKey();
        break;
      }
      if ((top.key === null && d === 0x5d) || (top.key !== null && d === 0x7d)) {
        i++;
        stack.pop();
        v = top.c;
        continue;
      }
      fail(i >= n ? 'EOF while parsing a list or object' : 'expected `,` or a closing bracket');
    }
  }
}

// Writes a value read by parseJson (or plain JS data) as compact JSON, keys in their order.
export function writeJson(v) {
  if (v === null) return 'null';
  if (typeof v === 'string') return JSON.stringify(v);
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  if (v instanceof JsonNumber) return v.text;
  if (Array.isArray(v)) return '[' + v.map(writeJson).join(',') + ']';
  const parts = [];
  if (v instanceof JsonObject) {
    v.map.forEach((value, key) => {
      parts.push(JSON.stringify(key) + ':' + writeJson(value));
    });
  } else {
    Object.keys(v).forEach((key) => {
      if (v[key] !== undefined) parts.push(JSON.stringify(key) + ':' + writeJson(v[key]));
    });
  }
  return '{' + parts.join(',') + '}';
}

// Bytes of the UTF-8 encoding (a lone surrogate counts 3, as U+FFFD would).
export function utf8Length(s) {
  let len = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) len += 1;
    else if (c < 0x800) len += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        len += 4;
        i++;
      } else len += 3;
    } else len += 3;
  }
  return len;
}

// Orders strings as Rust orders them (by UTF-8 bytes, that is by code point), which differs
// from JS's UTF-16 order for characters above U+FFFF.
export function compareCodePoints(a, b) {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.codePointAt(i);
    const y = b.codePointAt(i);
    if (x !== y) return x < y ? -1 : 1;
    if (x > 0xffff) i++;
  }
  return a.length === b.length ? 0 : a.length < b.length ? -1 : 1;
}
