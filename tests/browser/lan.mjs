// A network namespace of the test's own with a LAN address (10.253.0.1/24) and a default route
// into a second namespace that forwards nothing: a phone's view of the Master is a LAN address
// (not a secure context), and nothing the browser or the Master sends leaves the namespaces.

import { execFileSync } from 'node:child_process';

export const ADDRESS = '10.253.0.1';

function ip(args) {
  execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

export class Lan {
  constructor() {
    this.ns = 'maestral-browser-' + process.pid;
    this.sink = 'maestral-bsink-' + process.pid;
    try {
      ip(['netns', 'add', this.ns]);
      ip(['netns', 'add', this.sink]);
      ip(['-n', this.ns, 'link', 'set', 'lo', 'up']);
      ip(['-n', this.ns, 'link', 'add', 'lan0', 'type', 'veth', 'peer', 'name', 'lan1']);
      ip(['-n', this.ns, 'link', 'set', 'lan1', 'netns', this.sink]);
      ip(['-n', this.sink, 'link', 'set', 'lan1', 'up']);
      ip(['-n', this.ns, 'addr', 'add', ADDRESS + '/24', 'dev', 'lan0']);
      ip(['-n', this.ns, 'link', 'set', 'lan0', 'up']);
      ip(['-n', this.ns, 'route', 'add', 'default', 'via', '10.253.0.2', 'dev', 'lan0']);
    } catch (e) {
      this.close();
      throw new Error('the browser test needs network namespaces (root and iproute2): ' + (e.stderr || e.message));
    }
  }

  close() {
    for (const ns of [this.ns, this.sink]) {
      try { ip(['netns', 'del', ns]); } catch (e) { /* not made */ }
    }
  }
}
