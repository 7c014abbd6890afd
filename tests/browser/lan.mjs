// A network namespace of the test's own with a LAN address (10.253.0.1/24) on a bridge, and a
// default route into a second namespace that forwards nothing: a phone's view of the Master is
// a LAN address (not a secure context), and nothing the browser or the Master sends leaves the
// namespaces. `phone()` adds a namespace of its own on the same bridge with an address of its
// own (10.253.0.10 and up), as a phone in the room is a device with its own address.

import { execFileSync } from 'node:child_process';

export const ADDRESS = '10.253.0.1';

function ip(args) {
  execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

// Drops `percent` % of the UDP packets coming into namespace `ns` (its WebRTC links; 100: a
// silent link), or stops dropping (0).
export function loss(ns, percent) {
  // The table made (if missing) and emptied first: calling this again replaces the rule.
  let rules = 'table inet maestral_loss\ndelete table inet maestral_loss\n';
  if (percent > 0) {
    rules += 'table inet maestral_loss {\n chain input {\n  type filter hook input priority 0;\n' +
      `  meta l4proto udp ${percent >= 100 ? '' : `numgen random mod 100 < ${percent} `}drop\n }\n}\n`;
  }
  try {
    execFileSync('ip', ['netns', 'exec', ns, 'nft', '-f', '-'], { input: rules, stdio: ['pipe', 'ignore', 'pipe'] });
  } catch (e) {
    throw new Error('dropping packets needs nftables (nft) in the namespace: ' + String(e.stderr || e.message).trim());
  }
}

export class Lan {
  constructor() {
    this.ns = 'maestral-browser-' + process.pid;
    this.sink = 'maestral-bsink-' + process.pid;
    this.phones = [];
    try {
      ip(['netns', 'add', this.ns]);
      ip(['netns', 'add', this.sink]);
      ip(['-n', this.ns, 'link', 'set', 'lo', 'up']);
      ip(['-n', this.ns, 'link', 'add', 'br0', 'type', 'bridge']);
      ip(['-n', this.ns, 'link', 'add', 'lan0', 'type', 'veth', 'peer', 'name', 'lan1']);
      ip(['-n', this.ns, 'link', 'set', 'lan1', 'netns', this.sink]);
      ip(['-n', this.sink, 'link', 'set', 'lan1', 'up']);
      ip(['-n', this.ns, 'link', 'set', 'lan0', 'master', 'br0']);
      ip(['-n', this.ns, 'link', 'set', 'lan0', 'up']);
      ip(['-n', this.ns, 'addr', 'add', ADDRESS + '/24', 'dev', 'br0']);
      ip(['-n', this.ns, 'link', 'set', 'br0', 'up']);
      ip(['-n', this.ns, 'route', 'add', 'default', 'via', '10.253.0.2', 'dev', 'br0']);
    } catch (e) {
      this.close();
      throw new Error('the browser test needs network namespaces (root and iproute2): ' + (e.stderr || e.message));
    }
  }

  // A phone: a namespace with its own address on the bridge (routed to the Master's namespace,
  // which forwards nothing). Its name, for `ip netns exec`.
  phone() {
    const i = this.phones.length;
    if (i >= 200) throw new Error('at most 200 phones');
    const ns = `maestral-phone-${process.pid}-${i}`;
    this.phones.push(ns);
    const host = 'ph' + i;
    ip(['netns', 'add', ns]);
    ip(['-n', ns, 'link', 'set', 'lo', 'up']);
    ip(['-n', this.ns, 'link', 'add', host, 'type', 'veth', 'peer', 'name', 'eth0']);
    ip(['-n', this.ns, 'link', 'set', 'eth0', 'netns', ns]);
    ip(['-n', this.ns, 'link', 'set', host, 'master', 'br0']);
    ip(['-n', this.ns, 'link', 'set', host, 'up']);
    ip(['-n', ns, 'addr', 'add', `10.253.0.${10 + i}/24`, 'dev', 'eth0']);
    ip(['-n', ns, 'link', 'set', 'eth0', 'up']);
    ip(['-n', ns, 'route', 'add', 'default', 'via', ADDRESS, 'dev', 'eth0']);
    return ns;
  }

  close() {
    for (const ns of [...this.phones, this.ns, this.sink]) {
      try { ip(['netns', 'del', ns]); } catch (e) { /* not made */ }
    }
  }
}
