// The heartbeat's rules: a link is lost after SILENT_MS with nothing coming in, never while
// anything does, and a page that was frozen times the silence from its waking.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HEARTBEAT_MS, receivedCount, SILENT_MS, Silence, Ticks, WOKEN_MS } from '../heartbeat.mjs';

test('a link whose counters keep moving is never silent', () => {
  const s = new Silence(0);
  for (let t = 0, n = 0; t < 10 * SILENT_MS; t += HEARTBEAT_MS, n += 90) {
    assert.equal(s.silent(t, n), false, 'at ' + t);
  }
});

test('a link with nothing coming in is lost once SILENT_MS have passed, not before', () => {
  const s = new Silence(0);
  assert.equal(s.silent(0, 500), false);
  assert.equal(s.silent(SILENT_MS - 1, 500), false);
  assert.equal(s.silent(SILENT_MS, 500), true);
});

test('a message that came in counts as something heard', () => {
  const s = new Silence(0);
  s.silent(0, 500);
  s.heard(SILENT_MS - 1000);
  assert.equal(s.silent(SILENT_MS, 500), false);
  assert.equal(s.silent(2 * SILENT_MS - 1000, 500), true);
});

test('a page that woke gives its link a short time to show it lives, and lost it if not', () => {
  const s = new Silence(0);
  s.silent(0, 500);
  s.woke(60000); // a minute asleep
  assert.equal(s.silent(60000 + HEARTBEAT_MS, 500), false);
  assert.equal(s.silent(60000 + WOKEN_MS, 500), true, 'nothing since the wake');
  const alive = new Silence(0);
  alive.silent(0, 500);
  alive.woke(60000);
  assert.equal(alive.silent(60000 + HEARTBEAT_MS, 640), false);
  assert.equal(alive.silent(60000 + WOKEN_MS, 700), false, 'checks came in after the wake');
});

test('a browser whose statistics count nothing never has its links dropped', () => {
  const s = new Silence(0);
  for (let t = 0; t < 5 * SILENT_MS; t += HEARTBEAT_MS) assert.equal(s.silent(t, 0), false);
});

test('a tick much later than asked tells that the page was frozen', () => {
  const ticks = new Ticks(0);
  assert.equal(ticks.late(HEARTBEAT_MS), false);
  assert.equal(ticks.late(2 * HEARTBEAT_MS + 50), false, 'a little late is still on time');
  assert.equal(ticks.late(2 * HEARTBEAT_MS + 60000), true, 'a minute asleep');
  assert.equal(ticks.late(3 * HEARTBEAT_MS + 60000), false);
});

test('what came in is counted on the selected candidate pair and the transport only', () => {
  const report = new Map([
    ['a', { type: 'candidate-pair', nominated: true, bytesReceived: 100, requestsReceived: 3, responsesReceived: 4 }],
    ['b', { type: 'candidate-pair', nominated: false, bytesReceived: 1000000, requestsReceived: 9 }],
    ['c', { type: 'transport', bytesReceived: 50 }],
    ['d', { type: 'data-channel', messagesReceived: 7 }],
  ]);
  assert.equal(receivedCount(report), 157);
  report.get('a').requestsReceived = 4; // one connectivity check from the Master
  assert.equal(receivedCount(report), 158);
  assert.equal(receivedCount(new Map()), 0);
});
