// Every shared Follower conformance case against the browser Follower's driver, and, when
// MAESTRAL_CONFORMANCE_RUST names the Rust driver binary, both drivers side by side.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { JS_DRIVER, comparable, loadCases, match, runCase, runDriver } from './cases.mjs';

const cases = loadCases();
const rust = process.env.MAESTRAL_CONFORMANCE_RUST || '';

test('there are shared cases to run', () => {
  assert.ok(cases.length >= 15, 'found ' + cases.length + ' case files');
  cases.forEach(({ file, case: c }) => {
    assert.equal(typeof c.name, 'string', file);
    assert.equal(typeof c.device_id, 'string', file);
    assert.ok(Array.isArray(c.lines) && Array.isArray(c.expect), file);
    assert.equal(c.expect.length, c.lines.length, file + ': one expectation per line');
  });
});

cases.forEach(({ file, case: c }) => {
  test('case ' + file + ' (JS driver)', () => {
    const r = runCase(JS_DRIVER, c);
    assert.deepEqual(r.mismatches, [], c.name + ': ' + (c.about || ''));
  });
});

cases.forEach(({ file, case: c }) => {
  test('case ' + file + ' (Rust and JS drivers agree)', { skip: rust === '' ? 'MAESTRAL_CONFORMANCE_RUST is not set' : false }, () => {
    const a = runDriver(rust, c.device_id, c.lines);
    const b = runDriver(JS_DRIVER, c.device_id, c.lines);
    assert.equal(a.status, 0, a.stderr);
    assert.equal(b.status, 0, b.stderr);
    // The case's expectations hold for the reference too (they were written from it).
    const expected = [];
    c.expect.forEach((e, i) => match(e, a.outputs[i], 'line ' + (i + 1)).forEach((m) => expected.push(m)));
    assert.deepEqual(expected, [], 'the Rust driver no longer meets the case: regenerate it?');
    assert.deepEqual(b.outputs.map(comparable), a.outputs.map(comparable));
  });
});

test('the matcher: objects as subsets, arrays exactly, $type wildcards', () => {
  assert.deepEqual(match({ a: 1 }, { a: 1, b: 2 }), []);
  assert.equal(match({ a: 1, c: 3 }, { a: 1 }).length, 1);
  assert.deepEqual(match({ a: { b: [1, { c: 2 }] } }, { a: { b: [1, { c: 2, d: 4 }], e: 5 } }), []);
  assert.equal(match([1, 2], [1, 2, 3]).length, 1);
  assert.equal(match([1, 2], [2, 1]).length, 2);
  assert.deepEqual(match({ error: { $type: 'string' } }, { error: 'anything' }), []);
  assert.equal(match({ error: { $type: 'string' } }, { error: 5 }).length, 1);
  assert.equal(match({ v: null }, { v: 0 }).length, 1);
  assert.equal(match({ v: 1 }, { v: '1' }).length, 1);
  assert.equal(match({ a: {} }, { a: [] }).length, 1);
});

test('the JS driver answers one line per input line, and exits 0 at the end of input', () => {
  const r = runDriver(JS_DRIVER, 'F', ['{"do":"tick","t":1}', 'garbage', '', '{"do":"tick","t":2}']);
  assert.equal(r.status, 0);
  assert.equal(r.outputs.length, 4);
  assert.equal(typeof r.outputs[1].error, 'string');
  assert.equal(typeof r.outputs[2].error, 'string');
  assert.equal(r.outputs[3].phase, 'FOLLOWER_IDLE_LOCAL');
});

test('the JS driver refuses other roles and bad arguments with a usage error (exit 2)', () => {
  const run = (args) => spawnSync(JS_DRIVER[0], [JS_DRIVER[1]].concat(args), { input: '' });
  ['master', 'solo'].forEach((role) => {
    const r = run(['--role', role, '--device-id', 'A']);
    assert.equal(r.status, 2);
    assert.match(r.stderr.toString(), /only \(--role follower\)/);
    assert.match(r.stderr.toString(), /usage/);
  });
  assert.equal(run(['--role', 'follower']).status, 2);
  assert.equal(run(['--role', 'jester', '--device-id', 'A']).status, 2);
  assert.equal(run(['--role', 'follower', '--device-id', 'A', '--loud']).status, 2);
  assert.equal(run(['--role', 'follower', '--device-id', 'A']).status, 0);
});
