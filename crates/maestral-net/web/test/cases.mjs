// Shared conformance cases: run one through any conformance driver (the Rust one, the browser
// Follower's) and match its output lines against the case's partial expectations. The matching
// rule is documented in the cases' README.md. A library: importing it runs nothing.

import { spawnSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

// crates/maestral-sync/tests/conformance/follower, from crates/maestral-net/web/test.
export const CASES_DIR = fileURLToPath(new URL('../../../maestral-sync/tests/conformance/follower/', import.meta.url));
export const JS_DRIVER = ['node', fileURLToPath(new URL('../conformance.mjs', import.meta.url))];

// Every case file of a folder, sorted by name: [{file, case}].
export function loadCases(dir) {
  const d = dir || CASES_DIR;
  return readdirSync(d)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((f) => ({ file: f, case: JSON.parse(readFileSync(d + '/' + f, 'utf8')) }));
}

// An input line as the driver reads it: an object is written as JSON, a string as it is (to
// feed a driver lines that are not JSON objects).
export function lineText(line) {
  return typeof line === 'string' ? line : JSON.stringify(line);
}

// Runs a driver (`[program, ...args]` or a program path) with `--role follower --device-id ID`
// on these input lines; returns {outputs: [parsed line], status, stderr}. An output line that is
// not JSON is kept as {"$unparsed": text}, so it fails any expectation.
export function runDriver(driverCommand, deviceId, lines) {
  const cmd = typeof driverCommand === 'string' ? [driverCommand] : driverCommand;
  const input = lines.map((l) => lineText(l) + '\n').join('');
  const r = spawnSync(cmd[0], cmd.slice(1).concat(['--role', 'follower', '--device-id', deviceId]), {
    input,
    maxBuffer: 256 * 1024 * 1024,
  });
  if (r.error) throw r.error;
  const text = r.stdout.toString('utf8');
  const rows = text.length === 0 ? [] : text.replace(/\n$/, '').split('\n');
  const outputs = rows.map((row) => {
    try {
      return JSON.parse(row);
    } catch (e) {
      return { $unparsed: row };
    }
  });
  return { outputs, status: r.status, stderr: r.stderr.toString('utf8') };
}

function typeName(v) {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  return typeof v === 'number' ? 'number' : typeof v;
}

function isWildcard(e) {
  return e !== null && typeof e === 'object' && !Array.isArray(e) && Object.keys(e).length === 1 && typeof e.$type === 'string';
}

// Where `actual` fails the partial expectation `expected`: a list of "path: why" (empty: it
// matches). Objects are matched as subsets (every key given must match), arrays element by
// element with the same length, scalars exactly; {"$type": T} matches any value of JSON type T.
export function match(expected, actual, path) {
  const at = path || '$';
  if (isWildcard(expected)) {
    return typeName(actual) === expected.$type ? [] : [at + ': expected any ' + expected.$type + ', got ' + JSON.stringify(actual)];
  }
  if (Array.isArray(expected)) {
    if (!Array.isArray(actual)) return [at + ': expected an array, got ' + JSON.stringify(actual)];
    if (actual.length !== expected.length) {
      return [at + ': expected ' + expected.length + ' elements, got ' + actual.length + ': ' + JSON.stringify(actual)];
    }
    const out = [];
    expected.forEach((e, i) => {
      match(e, actual[i], at + '[' + i + ']').forEach((m) => out.push(m));
    });
    return out;
  }
  if (expected !== null && typeof expected === 'object') {
    if (actual === null || typeof actual !== 'object' || Array.isArray(actual)) {
      return [at + ': expected an object, got ' + JSON.stringify(actual)];
    }
    const out = [];
    Object.keys(expected).forEach((k) => {
      if (!Object.prototype.hasOwnProperty.call(actual, k)) out.push(at + '.' + k + ': missing');
      else match(expected[k], actual[k], at + '.' + k).forEach((m) => out.push(m));
    });
    return out;
  }
  return expected === actual ? [] : [at + ': expected ' + JSON.stringify(expected) + ', got ' + JSON.stringify(actual)];
}

// Runs one case through a driver: {name, outputs, mismatches}. There must be exactly one output
// line per input line, and the driver must exit 0.
export function runCase(driverCommand, c) {
  const r = runDriver(driverCommand, c.device_id, c.lines);
  const mismatches = [];
  if (r.status !== 0) mismatches.push('exit status ' + r.status + ': ' + r.stderr.trim());
  if (r.outputs.length !== c.lines.length) {
    mismatches.push(c.lines.length + ' input lines but ' + r.outputs.length + ' output lines');
  }
  c.expect.forEach((e, i) => {
    match(e, r.outputs[i], 'line ' + (i + 1)).forEach((m) => mismatches.push(m));
  });
  if (c.expect.length !== c.lines.length) mismatches.push('the case has ' + c.expect.length + ' expectations for ' + c.lines.length + ' lines');
  return { name: c.name, outputs: r.outputs, mismatches };
}

// An output line without what may legitimately differ between two drivers: the text of an
// `error` line (each driver words its own parse errors). Nothing else is removed.
export function comparable(output) {
  if (output !== null && typeof output === 'object' && Object.prototype.hasOwnProperty.call(output, 'error')) {
    return { error: typeof output.error };
  }
  return output;
}
