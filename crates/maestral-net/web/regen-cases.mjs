#!/usr/bin/env node
// Writes the expectations of the shared Follower conformance cases from the Rust driver, the
// reference: each case's `lines` are run through it several times, the output must be the same
// every time (a case must not depend on backoff jitter), and becomes the case's `expect` (the
// text of an `error` line replaced by {"$type": "string"}: each driver words its own errors).
//
//   node crates/maestral-net/web/regen-cases.mjs PATH/TO/maestral-conformance [case.json ...]

import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { CASES_DIR, runDriver } from './test/cases.mjs';

const RUNS = 10;

function expectationOf(output) {
  if (output !== null && typeof output === 'object' && Object.prototype.hasOwnProperty.call(output, 'error')) {
    return { error: { $type: 'string' } };
  }
  return output;
}

// One entry of `lines` and `expect` per line of the file, so a diff shows what changed.
function format(c) {
  const list = (xs) => '[\n' + xs.map((x) => '    ' + JSON.stringify(x)).join(',\n') + '\n  ]';
  const head = Object.keys(c)
    .filter((k) => k !== 'lines' && k !== 'expect')
    .map((k) => '  ' + JSON.stringify(k) + ': ' + JSON.stringify(c[k]));
  return '{\n' + head.concat(['  "lines": ' + list(c.lines), '  "expect": ' + list(c.expect)]).join(',\n') + '\n}\n';
}

function main() {
  const rust = process.argv[2];
  if (!rust) {
    process.stderr.write('usage: regen-cases.mjs PATH/TO/maestral-conformance [case.json ...]\n');
    process.exitCode = 2;
    return;
  }
  let files = process.argv.slice(3);
  if (files.length === 0) {
    files = readdirSync(CASES_DIR)
      .filter((f) => f.endsWith('.json'))
      .sort()
      .map((f) => CASES_DIR + f);
  }
  let failed = false;
  files.forEach((file) => {
    const c = JSON.parse(readFileSync(file, 'utf8'));
    let first = null;
    for (let i = 0; i < RUNS; i++) {
      const r = runDriver(rust, c.device_id, c.lines);
      const text = JSON.stringify(r.outputs);
      if (r.status !== 0 || r.outputs.length !== c.lines.length) {
        process.stderr.write(file + ': the driver failed (status ' + r.status + ')\n');
        failed = true;
        return;
      }
      if (first === null) first = text;
      else if (text !== first) {
        process.stderr.write(file + ': the output differs between runs (backoff jitter?); not written\n');
        failed = true;
        return;
      }
    }
    c.expect = JSON.parse(first).map(expectationOf);
    writeFileSync(file, format(c));
    process.stdout.write('wrote ' + file + '\n');
  });
  if (failed) process.exitCode = 1;
}

main();
