// A headless Maestral Master (the real binary, real PDFium) in the test's namespace, driven by
// line commands and read by its JSON event lines.

import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

export class Master {
  constructor(ns, listen, library) {
    const bin = process.env.MAESTRAL_BIN;
    if (!bin) throw new Error('MAESTRAL_BIN must name the maestral binary (cargo xtask test sets it)');
    this.state = mkdtempSync(join(tmpdir(), 'maestral-master-'));
    const args = ['netns', 'exec', ns, bin, '--headless', library, '--choir-master', '--listen', listen,
      '--state-dir', this.state, '--device-id', 'M', '--device-name', 'Conductor'];
    this.child = spawn('ip', args, {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: Object.assign({}, process.env, { MAESTRAL_LOCATE: 'off' }),
    });
    this.events = [];
    this.waiters = [];
    this.log = '';
    this.child.stderr.on('data', (d) => { this.log = (this.log + d).slice(-8000); });
    createInterface({ input: this.child.stdout }).on('line', (line) => {
      let event;
      try { event = JSON.parse(line); } catch (e) { return; }
      event.seenAt = Date.now(); // when this process read it (benchmarks split a join by it)
      this.events.push(event);
      this.waiters = this.waiters.filter((w) => !w(event));
    });
    this.exited = new Promise((resolve) => this.child.on('exit', resolve));
  }

  // Where the events seen so far end (for `next`).
  mark() {
    return this.events.length;
  }

  send(line) {
    this.child.stdin.write(line + '\n');
  }

  // The first event that `test` accepts: from now on, or among those already seen when `seen`
  // is true (or those seen since `mark()` gave `seen`).
  next(test, what, timeoutMs, seen) {
    if (seen === true || typeof seen === 'number') {
      const found = this.events.slice(seen === true ? 0 : seen).find(test);
      if (found) return Promise.resolve(found);
    }
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        const last = this.events.slice(-6).map((e) => JSON.stringify(e).slice(0, 300)).join('\n');
        reject(new Error('the Master never said ' + what + '; its last events:\n' + last));
      }, timeoutMs || 20000);
      this.waiters.push((e) => {
        if (!test(e)) return false;
        clearTimeout(timer);
        resolve(e);
        return true;
      });
    });
  }

  async close() {
    this.send('quit');
    const t = setTimeout(() => this.child.kill('SIGKILL'), 5000);
    await this.exited;
    clearTimeout(t);
    rmSync(this.state, { recursive: true, force: true });
  }
}
