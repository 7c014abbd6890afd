// A Chromium driven over the DevTools protocol on a pipe (`--remote-debugging-pipe`: commands
// on fd 3, answers and events on fd 4, each JSON text ended by a NUL), started inside a network
// namespace, so that the page it opens comes from a LAN address (not a secure context, as on a
// phone) and whatever it sends stays in that namespace.

import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export class Browser {
  constructor(ns) {
    this.profile = mkdtempSync(join(tmpdir(), 'maestral-chromium-'));
    const args = [
      'netns', 'exec', ns, 'chromium', '--headless=new', '--no-sandbox', '--disable-gpu',
      '--remote-debugging-pipe', '--user-data-dir=' + this.profile,
      '--no-first-run', '--no-default-browser-check', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--disable-extensions',
      '--disable-features=Translate,MediaRouter,OptimizationHints,AutofillServerCommunication',
      'about:blank',
    ];
    // A process group of its own: closing kills its helper processes too.
    this.child = spawn('ip', args, { stdio: ['ignore', 'ignore', 'pipe', 'pipe', 'pipe'], detached: true });
    this.stderr = '';
    this.child.stderr.on('data', (d) => { this.stderr = (this.stderr + d).slice(-4000); });
    this.nextId = 1;
    this.waiting = new Map();
    this.listeners = [];
    let buf = '';
    this.child.stdio[4].on('data', (chunk) => {
      buf += chunk.toString('utf8');
      let end;
      while ((end = buf.indexOf('\0')) >= 0) {
        const msg = JSON.parse(buf.slice(0, end));
        buf = buf.slice(end + 1);
        if (msg.id !== undefined && this.waiting.has(msg.id)) {
          const { resolve, reject } = this.waiting.get(msg.id);
          this.waiting.delete(msg.id);
          if (msg.error) reject(new Error(msg.error.message + ' ' + (msg.error.data || '')));
          else resolve(msg.result);
        } else {
          this.listeners.forEach((l) => l(msg));
        }
      }
    });
    this.exited = new Promise((resolve) => this.child.on('exit', resolve));
  }

  send(method, params, sessionId) {
    const id = this.nextId++;
    const msg = { id, method, params: params || {} };
    if (sessionId) msg.sessionId = sessionId;
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve, reject });
      this.child.stdio[3].write(JSON.stringify(msg) + '\0');
    });
  }

  // A tab of its own (a browser context of its own: its own storage, as another phone).
  async tab(options) {
    const own = options && options.ownContext;
    const context = own ? (await this.send('Target.createBrowserContext')).browserContextId : undefined;
    const { targetId } = await this.send('Target.createTarget', { url: 'about:blank', browserContextId: context });
    const { sessionId } = await this.send('Target.attachToTarget', { targetId, flatten: true });
    const tab = new Tab(this, sessionId, targetId);
    await tab.send('Page.enable');
    await tab.send('Runtime.enable');
    return tab;
  }

  async close() {
    try { await Promise.race([this.send('Browser.close'), new Promise((r) => setTimeout(r, 3000))]); } catch (e) { /* gone */ }
    try { process.kill(-this.child.pid, 'SIGKILL'); } catch (e) { /* gone already */ }
    await this.exited;
    for (let tries = 0; ; tries++) {
      try {
        rmSync(this.profile, { recursive: true, force: true, maxRetries: 10, retryDelay: 100 });
        return;
      } catch (e) {
        // A helper process still dying may write there for a moment more.
        if (tries >= 20) {
          console.error('could not remove ' + this.profile + ': ' + e.message);
          return;
        }
        await new Promise((r) => setTimeout(r, 250));
      }
    }
  }
}

export class Tab {
  constructor(browser, sessionId, targetId) {
    this.browser = browser;
    this.sessionId = sessionId;
    this.targetId = targetId;
  }

  send(method, params) {
    return this.browser.send(method, params, this.sessionId);
  }

  async navigate(url) {
    await this.send('Page.navigate', { url });
  }

  // The value of `expression` in the page (awaited if it is a promise).
  async eval(expression) {
    const r = await this.send('Runtime.evaluate', { expression, returnByValue: true, awaitPromise: true });
    if (r.exceptionDetails) throw new Error('in the page: ' + JSON.stringify(r.exceptionDetails).slice(0, 400));
    return r.result.value;
  }

  // Waits until `expression` is truthy in the page (asked every `everyMs`); its value.
  async until(expression, what, timeoutMs, everyMs) {
    const deadline = Date.now() + (timeoutMs || 20000);
    let last;
    for (;;) {
      try {
        last = await this.eval(expression);
        if (last) return last;
      } catch (e) {
        last = e.message; // navigating: the context is being replaced
      }
      if (Date.now() > deadline) throw new Error('timed out waiting for ' + what + ' (last: ' + JSON.stringify(last) + ')');
      await new Promise((r) => setTimeout(r, everyMs || 50));
    }
  }
}
