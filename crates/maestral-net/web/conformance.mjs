#!/usr/bin/env node
// The conformance driver for the browser Follower (follower.mjs): JSON lines in, exactly one
// JSON line out per input line, like the Rust driver (maestral-conformance) and with the same
// inputs and outputs for `--role follower`, so one set of cases tests both.
//
//   node crates/maestral-net/web/conformance.mjs --role follower --device-id ID
//
// Node only (it reads stdin); the module it drives is the one the page loads.

import { readFileSync } from 'node:fs';
import { webcrypto } from 'node:crypto';
import { create } from './follower.mjs';
import { JsonObject, compareCodePoints, parseJson, writeJson } from './json.mjs';

const USAGE = 'usage: conformance.mjs --role follower --device-id ID [--app-version V]';
// serde_json's nesting limit for the Rust driver's input lines.
const MAX_LINE_DEPTH = 127;

// The Rust driver's HELLO carries the workspace's version; read it so both say the same.
function workspaceVersion() {
  try {
    const toml = readFileSync(new URL('../../../Cargo.toml', import.meta.url), 'utf8');
    const section = toml.split(/^\[workspace\.package\]\s*$/m)[1];
    const m = section && /^version\s*=\s*"([^"]*)"/m.exec(section.split(/^\[/m)[0]);
    if (m) return m[1];
  } catch (e) {
    // Outside the repository: the fallback below.
  }
  return '0.1.0';
}

function parseArgs(argv) {
  let role = null;
  let id = null;
  let version = null;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--role') {
      role = argv[++i];
      if (role !== 'solo' && role !== 'master' && role !== 'follower') throw new Error('unknown role ' + JSON.stringify(role === undefined ? null : role));
    } else if (a === '--device-id') {
      id = argv[++i] === undefined ? null : argv[i];
    } else if (a === '--app-version') {
      version = argv[++i] === undefined ? null : argv[i];
    } else if (a === '--help' || a === '-h') {
      throw new Error('help');
    } else {
      throw new Error('unknown argument `' + a + '`');
    }
  }
  if (role === null) throw new Error('--role is required');
  if (id === null) throw new Error('--device-id is required');
  if (role !== 'follower') throw new Error('role `' + role + '` is not implemented here: this driver plays the browser Follower only (--role follower)');
  return { id, version: version === null ? workspaceVersion() : version };
}

// Randomness comes from the OS, as in the Rust driver (backoff jitter only).
function osRandom() {
  const b = new Uint32Array(1);
  webcrypto.getRandomValues(b);
  return b[0] / 4294967296;
}

// What Rust's str::trim removes (Unicode White_Space): a line of only these is "empty".
const RUST_WHITE_SPACE = /^[\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*$/;

// A parsed line's value as plain data for the module: objects without a prototype (a key such
// as `__proto__` stays a key), numbers that are not plain integers kept as they are.
function plain(v) {
  if (v instanceof JsonObject) {
    const o = Object.create(null);
    v.map.forEach((value, key) => {
      o[key] = plain(value);
    });
    return o;
  }
  if (Array.isArray(v)) return v.map(plain);
  return v;
}

function strField(obj, name) {
  const v = obj.get(name);
  if (typeof v !== 'string') throw new Error('`' + name + '` (string) is required');
  return v;
}

// One input line: the messages sent in response, or throws Error(text of the error line).
function step(engine, line) {
  let v;
  try {
    v = parseJson(line, true, MAX_LINE_DEPTH);
  } catch (e) {
    throw new Error('input is not JSON: ' + e.message);
  }
  if (!(v instanceof JsonObject)) throw new Error('input line must be a JSON object');
  const t = v.get('t');
  if (typeof t !== 'number' || t < 0) throw new Error('`t` (Unix ms, unsigned integer) is required');
  const what = strField(v, 'do');
  switch (what) {
    case 'link': {
      const peer = strField(v, 'peer');
      const state = strField(v, 'state');
      if (state !== 'up' && state !== 'degraded' && state !== 'down') {
        throw new Error('unknown link state `' + state + '` (up, degraded, down)');
      }
      engine.link(t, peer, state);
      break;
    }
    case 'recv': {
      const from = strField(v, 'from');
      let text;
      if (v.has('msg') && !v.has('raw')) text = writeJson(v.get('msg'));
      else if (!v.has('msg') && v.has('raw')) {
        text = v.get('raw');
        if (typeof text !== 'string') throw new Error('`raw` must be a string');
      } else throw new Error('`recv` needs exactly one of `msg` or `raw`');
      // A message the engine refuses is not a driver error: the line shows nothing changed.
      engine.recv(t, from, text);
      break;
    }
    case 'local': {
      const action = v.get('action');
      if (!(action instanceof JsonObject)) throw new Error('`action` object is required');
      const err = engine.local(t, plain(action));
      if (err !== null) throw new Error(err.message);
      break;
    }
    case 'tick':
      engine.tick(t);
      break;
    // Extensions: how a first join by the join code ended before any link opened.
    case 'join_refused': {
      const reason = strField(v, 'reason');
      if (reason !== 'invalid_token' && reason !== 'session_ended') throw new Error('unknown reason `' + reason + '`');
      engine.joinRefused(t, reason);
      break;
    }
    case 'join_failed':
      engine.joinFailed(t, v.get('for_good') === true);
      break;
    default:
      throw new Error('unknown `do`: `' + what + '` (link, recv, local, tick, join_refused, join_failed)');
  }
  // Everything the engine queued goes; only the messages are reported.
  return engine.takeOutputs().filter((o) => o.kind === 'send');
}

function report(engine, sent) {
  const s = engine.snapshot();
  const links = Object.keys(s.links)
    .sort(compareCodePoints)
    .map((p) => JSON.stringify(p) + ':' + JSON.stringify(s.links[p]));
  const msgs = sent.map((m) => '{"to":' + JSON.stringify(m.to) + ',"msg":' + m.text + '}');
  return '{"phase":' + JSON.stringify(s.phase) + ',"links":{' + links.join(',') + '},"state":' + writeJson(s.state) + ',"view":' + writeJson(s.view) + ',"sent":[' + msgs.join(',') + ']}';
}

function answer(engine, bytes) {
  let line;
  try {
    line = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch (e) {
    return JSON.stringify({ error: 'input line is not UTF-8' });
  }
  if (RUST_WHITE_SPACE.test(line)) return JSON.stringify({ error: 'empty input line' });
  try {
    return report(engine, step(engine, line.replace(/[\r\n]+$/, '')));
  } catch (e) {
    return JSON.stringify({ error: e.message });
  }
}

function main() {
  let args;
  try {
    args = parseArgs(process.argv.slice(2));
  } catch (e) {
    process.stderr.write('conformance.mjs: ' + e.message + '\n' + USAGE + '\n');
    process.exitCode = 2;
    return;
  }
  const engine = create({ deviceId: args.id, deviceName: args.id, appVersion: args.version, random: osRandom });
  engine.takeOutputs();
  let pending = Buffer.alloc(0);
  const out = process.stdout;
  out.on('error', () => process.exit(0));
  process.stdin.on('data', (chunk) => {
    let buf = pending.length ? Buffer.concat([pending, chunk]) : chunk;
    let nl;
    while ((nl = buf.indexOf(0x0a)) >= 0) {
      out.write(answer(engine, buf.subarray(0, nl + 1)) + '\n');
      buf = buf.subarray(nl + 1);
    }
    pending = Buffer.from(buf);
  });
  process.stdin.on('end', () => {
    // A last line without a newline is still a line.
    if (pending.length) out.write(answer(engine, pending) + '\n');
  });
}

main();
