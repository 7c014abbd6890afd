// What the Follower engine is built on, ported from the Rust engine's core: timing, the retry
// and backoff bookkeeping, per-peer link states, the rate limit of SHOWING, and the output queue.
// No clock and no randomness of its own: time is the `t` of each input, jitter comes from the
// `random` function the caller passes.

import { compareCodePoints } from './json.mjs';

// Values for a local network (the Rust engine's Timing::LAN; see there for the reasons).
export const LAN_TIMING = Object.freeze({
  backoffInitialMs: 100,
  backoffMaxMs: 800,
  attemptTimeoutMs: 3000,
  degradedTimeoutMs: 2500,
  showingIntervalMs: 100,
  refusedRejoinBackoffMs: 5000,
  refusedRejoinGiveUpMs: 5 * 60 * 1000,
});

export const LINK = Object.freeze({
  IDLE: 'IDLE',
  CONNECTING: 'CONNECTING',
  CONNECTED: 'CONNECTED',
  DEGRADED: 'DEGRADED',
  RECONNECTING: 'RECONNECTING',
  ENDED: 'ENDED',
});

const MAX_TIME = Number.MAX_SAFE_INTEGER;

// Rust adds times with saturation; here a sum past 2^53 would lose precision instead.
export function later(t, ms) {
  return Math.min(t + ms, MAX_TIME);
}

export function isUp(state) {
  return state === LINK.CONNECTED || state === LINK.DEGRADED;
}

// The page's own inputs: a wrong type there is a bug in the page, so it throws (bytes from a
// peer never do).
export function checkTime(t) {
  if (!Number.isSafeInteger(t) || t < 0) throw new TypeError('t must be Unix ms, a non-negative safe integer');
}

export function checkPeer(peer) {
  if (typeof peer !== 'string') throw new TypeError('a peer is its device id, a string');
}

export function sameView(a, b) {
  return a !== null && b !== null && a.song_id === b.song_id && a.page_index === b.page_index;
}

// Why an input was refused: {code, message}, returned rather than thrown.
export function rejection(code, message) {
  return { code, message };
}

export class Core {
  constructor(config) {
    this.config = config;
    this.timing = config.timing;
    this.out = [];
    // peer -> {state, degradedAt}
    this.links = new Map();
  }

  // ---- links ---------------------------------------------------------------------------

  link(peer) {
    const l = this.links.get(peer);
    return l === undefined ? LINK.IDLE : l.state;
  }

  // Peers in the order the Rust engine keeps them (sorted by id).
  peers() {
    return Array.from(this.links.keys()).sort(compareCodePoints);
  }

  setLink(now, peer, state) {
    const degradedAt = state === LINK.DEGRADED ? now : null;
    const l = this.links.get(peer);
    if (l !== undefined && l.state === state) return;
    if (l !== undefined) {
      l.state = state;
      l.degradedAt = degradedAt;
    } else {
      this.links.set(peer, { state, degradedAt });
    }
    this.event({ type: 'link', peer, state });
  }

  // A peer the role no longer cares about (reported as IDLE).
  forgetLink(peer) {
    const l = this.links.get(peer);
    if (l === undefined) return;
    this.links.delete(peer);
    if (l.state !== LINK.IDLE) this.event({ type: 'link', peer, state: LINK.IDLE });
  }

  // Links DEGRADED for the timeout or longer at `now`.
  expiredDegraded(now) {
    const t = this.timing.degradedTimeoutMs;
    return this.peers().filter((p) => {
      const at = this.links.get(p).degradedAt;
      return at !== null && now >= later(at, t);
    });
  }

  nextDegradedDeadline() {
    let min = null;
    this.links.forEach((l) => {
      if (l.degradedAt === null) return;
      const d = later(l.degradedAt, this.timing.degradedTimeoutMs);
      if (min === null || d < min) min = d;
    });
    return min;
  }

  // ---- outputs ---------------------------------------------------------------------------

  event(e) {
    this.out.push({ kind: 'event', event: e });
  }

  // Transport requests travel with the events, in order (e.g. LEAVE_SESSION before the close).
  request(type, peer) {
    const e = peer === undefined ? { type } : { type, peer };
    this.out.push({ kind: 'event', event: e });
  }

  send(to, text) {
    this.out.push({ kind: 'send', to, text });
  }

  // Takes the outputs of one kind ('send' or 'event'), leaving the others queued in order.
  take(kind) {
    const keep = [];
    const taken = [];
    this.out.forEach((o) => (o.kind === kind ? taken : keep).push(o));
    this.out = keep;
    return taken;
  }

  takeAll() {
    const out = this.out;
    this.out = [];
    return out;
  }

  // ---- randomness ------------------------------------------------------------------------

  // A backoff delay for the `attempt`-th retry (0-based): exponential, capped, "equal jitter"
  // (drawn from [d/2, d]) so that many Followers do not retry in the same instant.
  backoff(attempt) {
    const t = this.timing;
    const d = Math.max(Math.min(t.backoffInitialMs * Math.pow(2, Math.min(attempt, 32)), t.backoffMaxMs), 1);
    const half = Math.floor(d / 2);
    let r = Number(this.config.random());
    if (!(r >= 0)) r = 0;
    const span = d - half + 1;
    const pick = Math.min(Math.floor(r * span), span - 1);
    return Math.max(half + pick, 1);
  }
}

// Retry bookkeeping while not joined: when the next attempt starts, and when a running attempt
// is given up.
export class Retry {
  constructor(failures, nextAt, runningUntil, since) {
    this.failures = failures;
    this.nextAt = nextAt;
    this.runningUntil = runningUntil;
    this.since = since;
  }

  // Lost at `now`: the first attempt is one backoff away.
  static afterLoss(now, core) {
    return new Retry(0, later(now, core.backoff(0)), null, now);
  }

  // An attempt starts at `now` (the first join, or a timer).
  static running(now, core) {
    return new Retry(0, null, later(now, Math.max(core.timing.attemptTimeoutMs, 1)), now);
  }

  deadline() {
    return this.runningUntil !== null ? this.runningUntil : this.nextAt;
  }

  // 'timed_out', 'start' or null.
  due(now) {
    if (this.runningUntil !== null && now >= this.runningUntil) return 'timed_out';
    if (this.nextAt !== null && now >= this.nextAt) return 'start';
    return null;
  }

  start(now, core) {
    this.nextAt = null;
    this.runningUntil = later(now, Math.max(core.timing.attemptTimeoutMs, 1));
  }

  isRunning() {
    return this.runningUntil !== null;
  }

  // The running attempt failed (or timed out): schedule the next one.
  failed(now, core) {
    this.failures += 1;
    this.runningUntil = null;
    this.nextAt = later(now, core.backoff(this.failures));
  }

  // As failed(), with the next attempt at least `wait` away.
  failedWaiting(now, core, wait) {
    this.failed(now, core);
    this.nextAt = Math.max(this.nextAt, later(now, wait));
  }
}

// Rate limit of SHOWING: a change goes out at once unless one went out less than an interval
// ago; then it goes out when the interval ends (the latest change only), unless the view is
// back to what was last reported by then.
export class ShowingReport {
  constructor() {
    this.reset();
  }

  // Accepted on a new link: the Master's record may be stale, report at once.
  reset() {
    this.reported = null;
    this.sentAt = null;
    this.due = null;
  }

  // Not joined, or the link is down: nothing is held back for later (a rejoin reports afresh).
  pause() {
    this.due = null;
  }

  deadline() {
    return this.due;
  }

  // The SHOWING payload to send at `now` for `current` ({song_epoch, song_id, page_index}), or null.
  update(now, intervalMs, current) {
    const r = this.reported;
    if (r !== null && r.song_epoch === current.song_epoch && r.song_id === current.song_id && r.page_index === current.page_index) {
      this.due = null;
      return null;
    }
    if (this.sentAt !== null && now < later(this.sentAt, intervalMs)) {
      this.due = later(this.sentAt, intervalMs);
      return null;
    }
    this.reported = current;
    this.sentAt = now;
    this.due = null;
    return { song_id: current.song_id, song_epoch: current.song_epoch, page_index: current.page_index };
  }
}
