// The page's heartbeat: when a link to the Master counts as dead without any close event.
//
// Safari fires no `close` on a dead DataChannel (before its December 2025 fix), and a locked
// iPhone's sockets die without one, so the page cannot wait to be told. It looks every
// HEARTBEAT_MS at how much has come in over the link (the selected candidate pair's and the
// transport's counters: the Master's messages and the connectivity checks its WebRTC stack sends
// every couple of seconds) and counts the link as lost once nothing at all has arrived for
// SILENT_MS. A tick that comes much later than asked means the page was frozen (a sleeping
// phone, a background tab): the link gets only WOKEN_MS from then to show that it still lives
// (a locked iPhone's sockets are dead while the browser may still say "connected"), not from
// before the sleep. A browser whose statistics count nothing at all never has its links
// dropped by this (it would drop every idle link).
//
// No DOM here: node's test runner checks these rules (test/heartbeat.test.mjs).

export const HEARTBEAT_MS = 2000;
export const SILENT_MS = 8000;
export const WOKEN_MS = 2 * HEARTBEAT_MS;

// One number that grows whenever anything arrives on the link, from an RTCStatsReport (or any
// iterable with forEach over stats objects).
export function receivedCount(stats) {
  let n = 0;
  stats.forEach((r) => {
    if (r.type === 'candidate-pair' && (r.nominated || r.selected)) {
      n += (r.bytesReceived || 0) + (r.requestsReceived || 0) + (r.responsesReceived || 0);
    } else if (r.type === 'transport') {
      n += r.bytesReceived || 0;
    }
  });
  return n;
}

// The page's clock: whether a tick came too late to have run on time.
export class Ticks {
  constructor(now) {
    this.last = now;
  }

  // A tick at `now`: true when the page was frozen since the last one.
  late(now) {
    const late = now - this.last > 3 * HEARTBEAT_MS;
    this.last = now;
    return late;
  }
}

// One link's silence.
export class Silence {
  constructor(now) {
    this.heardAt = now;
    this.count = -1;
  }

  // Something came in at `now` (a message).
  heard(now) {
    this.heardAt = now;
  }

  // The page was frozen until `now`: the link has WOKEN_MS from now to show it still lives.
  woke(now) {
    this.heardAt = now - (SILENT_MS - WOKEN_MS);
  }

  // The link's `receivedCount` at `now`: whether it has been silent too long.
  silent(now, count) {
    if (count !== this.count) {
      this.count = count;
      this.heardAt = now;
      return false;
    }
    return count > 0 && now - this.heardAt >= SILENT_MS;
  }
}
