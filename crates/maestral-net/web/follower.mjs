// The Choir Follower of docs/behaviour.md and docs/protocol.md, as the browser runs it: the rules of the Rust sans-IO
// engine (Role::Follower) ported line for line, with no DOM, no clock and no randomness of its
// own. Time is the `t` (Unix ms) of every input; what the engine wants done is drained with
// takeSent() / takeEvents() / takeOutputs(); nextTimeout() says when to call tick().
//
// Must run unchanged in Safari on iOS 15 and Chrome 69: ES2018 syntax, no class fields, no
// optional chaining or `??` (Chrome 80), no Object.fromEntries (Chrome 73).

import { Core, LAN_TIMING, LINK, Retry, ShowingReport, checkPeer, checkTime, isUp, rejection, sameView } from './core.mjs';
import { decode, encode, registerOf } from './envelope.mjs';
import { parseAction } from './actions.mjs';
import { Position } from './position.mjs';
import { resume, resumeRecord } from './resume.mjs';

export { LAN_TIMING, LINK, parseAction };

export const PHASE = Object.freeze({
  IDLE_LOCAL: 'FOLLOWER_IDLE_LOCAL',
  JOINING: 'FOLLOWER_JOINING',
  CONNECTED_FOLLOW: 'FOLLOWER_CONNECTED_FOLLOW',
  CONNECTED_FREE: 'FOLLOWER_CONNECTED_FREE',
  DISCONNECTED_LOCAL: 'FOLLOWER_DISCONNECTED_LOCAL',
  REJOINING: 'FOLLOWER_REJOINING',
});

// `tick` fires every timer due by `t` in order; this bounds a pathological jump.
const MAX_TIMERS_PER_TICK = 100000;
const REASONS = ['invalid_token', 'session_ended', 'version_mismatch', 'other'];

export class Follower {
  // `random` returns a number in [0, 1) (e.g. from crypto.getRandomValues): backoff jitter.
  constructor(options) {
    const o = options || {};
    if (typeof o.deviceId !== 'string') throw new TypeError('deviceId (a string) is required');
    if (typeof o.random !== 'function') throw new TypeError('random (a function returning [0, 1)) is required');
    this._core = new Core({
      deviceId: o.deviceId,
      deviceName: typeof o.deviceName === 'string' ? o.deviceName : o.deviceId,
      appVersion: typeof o.appVersion === 'string' ? o.appVersion : '0.0.0',
      capabilities: Array.isArray(o.capabilities) ? o.capabilities.slice() : [],
      random: o.random,
      timing: Object.freeze(Object.assign({}, LAN_TIMING, o.timing || {})),
    });
    // The membership while in a session (see _join); null in local mode.
    this._session = null;
    this._followMode = 'follow';
    // The newest Master position seen and the page shown (the §11 rules).
    this._pos = new Position();
    // The session the epochs belong to (kept after leaving, so rejoining the same session keeps
    // its context).
    this._sessionIdSeen = null;
    this._report = new ShowingReport();
    // What the app was last told (events are sent on change only).
    this._told = { phase: null, view: null, master: null };
    this._navigations = 0;
    this._settle(0);
  }

  // ---- reading -----------------------------------------------------------------------------

  deviceId() {
    return this._core.config.deviceId;
  }

  phase() {
    const s = this._session;
    if (s === null) return PHASE.IDLE_LOCAL;
    if (s.joined && s.master !== null && isUp(this._core.link(s.master))) {
      return this._followMode === 'follow' ? PHASE.CONNECTED_FOLLOW : PHASE.CONNECTED_FREE;
    }
    // A first join stays "joining" through its retries: it never had a link to lose.
    if (s.retry !== null && !s.everJoined) return PHASE.JOINING;
    if (s.retry !== null && s.retry.isRunning()) return PHASE.REJOINING;
    return PHASE.DISCONNECTED_LOCAL;
  }

  view() {
    return this._pos.view();
  }

  // Every peer the engine knows with its link state, sorted by id.
  links() {
    const out = {};
    this._core.peers().forEach((p) => {
      out[p] = this._core.link(p);
    });
    return out;
  }

  // docs/behaviour.md §9.3 plus page_revision (the last Master revision applied), fields in driver order.
  state() {
    const s = this._session;
    return {
      session_id: s === null ? null : s.id,
      follow_mode: this._followMode,
      song_id: this._pos.shownSong,
      song_epoch: this._pos.songEpoch,
      page_index: this._pos.shownPage,
      last_token: s === null ? null : s.token,
      page_revision: this._pos.pageRevision,
    };
  }

  // `{phase, links, state, view}`: a conformance driver output line without `sent`.
  snapshot() {
    return { phase: this.phase(), links: this.links(), state: this.state(), view: this.view() };
  }

  followMode() {
    return this._followMode;
  }

  // The Master's device id while in a session (null before a join by code reaches it).
  master() {
    return this._session === null ? null : this._session.master;
  }

  // The newest Master position seen.
  masterPosition() {
    const p = this._pos;
    return { song_id: p.masterSong, page_index: p.masterPage, song_epoch: p.songEpoch, page_revision: p.pageRevision };
  }

  // When tick() should be called next (Unix ms), or null if no timer runs.
  nextTimeout() {
    const s = this._session;
    const times = [s !== null && s.retry !== null ? s.retry.deadline() : null, this._report.deadline(), this._core.nextDegradedDeadline()];
    let min = null;
    times.forEach((d) => {
      if (d !== null && (min === null || d < min)) min = d;
    });
    return min;
  }

  // ---- draining --------------------------------------------------------------------------

  // Messages to send on `maestral-sync`, in order: [{to, text}].
  takeSent() {
    return this._core.take('send').map((o) => ({ to: o.to, text: o.text }));
  }

  // Events for the page and requests to the transport, in order. Events: phase, show, link,
  // master_view, peer_hello, session_ended, join_rejected, stream_prepare, stream_clear.
  // Requests: connect {peer}, disconnect {peer}, join_by_code, cancel_join.
  takeEvents() {
    return this._core.take('event').map((o) => o.event);
  }

  // Everything in one ordered list: {kind: 'send', to, text} | {kind: 'event', event}.
  takeOutputs() {
    return this._core.takeAll();
  }

  // ---- inputs ------------------------------------------------------------------------------

  // The transport reports the DataChannel to `peer` opened ('up'), is unhealthy ('degraded'),
  // or closed ('down').
  link(t, peer, state) {
    checkTime(t);
    checkPeer(peer);
    if (state !== 'up' && state !== 'degraded' && state !== 'down') {
      throw new TypeError('link state must be up, degraded or down');
    }
    if (peer === this._core.config.deviceId) return;
    this._onLink(t, peer, state);
    this._settle(t);
  }

  // A message from `from` on `maestral-sync` (a string; anything else is a binary message,
  // dropped). Returns null when taken, or {code, message} when refused; state is unchanged then.
  recv(t, from, text) {
    checkTime(t);
    checkPeer(from);
    // A binary message never reaches the rules (the transport drops it).
    if (typeof text !== 'string') return decode(text).error;
    const d = decode(text);
    if (!d.ok) {
      this._settle(t);
      return d.error;
    }
    return this._receive(t, from, d.envelope);
  }

  // A copy of a register update from `from`'s copy channel: applied by the same rules (a
  // duplicate or stale copy changes nothing), never answered. Anything else is refused.
  handleCopy(t, from, text) {
    checkTime(t);
    checkPeer(from);
    const d = decode(text);
    if (!d.ok) return d.error;
    if (registerOf(d.envelope.message) === null) {
      return rejection('not_a_copy', 'a ' + d.envelope.type + ' came on the copy channel, which carries only page, song and layout changes');
    }
    return this._receive(t, from, d.envelope);
  }

  _receive(t, from, env) {
    // The link is bound to the peer's device id.
    if (env.sender_id !== from) {
      return rejection('sender_mismatch', 'message from ' + from + ' claims to be from ' + env.sender_id);
    }
    this._onMessage(t, from, env);
    this._settle(t);
    return null;
  }

  // The local user did something (an action object as in the conformance driver's `local`
  // lines, e.g. {kind: 'next_page'}). Returns null, or {code, message} when it could not be
  // done (nothing changed).
  local(t, action) {
    checkTime(t);
    const a = parseAction(action);
    if (a.error) return rejection('bad_action', a.error);
    const r = this._applyLocal(t, a.action);
    this._settle(t);
    return r;
  }

  // The page navigated and already shows `shown` ({song_id, page_index}): the action is applied
  // the same way, and a 'show' event comes only if the engine's view differs (a correction).
  navigate(t, action, shown) {
    checkTime(t);
    const a = parseAction(action);
    if (a.error) return rejection('bad_action', a.error);
    const r = this._applyLocal(t, a.action);
    this._told.view = { song_id: shown.song_id, page_index: shown.page_index };
    this._settle(t);
    return r;
  }

  // Time passed: every timer due by `t` fires, in order, at its own time.
  tick(t) {
    checkTime(t);
    for (let n = 0; n < MAX_TIMERS_PER_TICK; n++) {
      const due = this.nextTimeout();
      if (due === null || due > t) break;
      this._timeout(due);
    }
    this._timeout(t);
  }

  // The Master's signaling listener refused the join before any link opened (HTTP 403).
  joinRefused(t, reason) {
    checkTime(t);
    if (REASONS.indexOf(reason) < 0) return rejection('bad_reason', 'unknown reason `' + reason + '`');
    this._onJoinRefused(t, reason);
    this._settle(t);
    return null;
  }

  // A first join by the join code failed before any link opened: retried on the backoff, or,
  // `forGood` (e.g. the answer's fingerprint does not match the code), back to local mode.
  joinFailed(t, forGood) {
    checkTime(t);
    this._onJoinFailed(t, forGood === true);
    this._settle(t);
  }

  // What to keep across a reload (null outside a session accepted once).
  resumeRecord() {
    return resumeRecord(this);
  }

  // A reloaded page takes back its kept session (a resumeRecord()): it shows the page it showed
  // and rejoins its Master by itself, as after a drop-out.
  resume(t, saved) {
    checkTime(t);
    resume(this, t, saved);
    this._settle(t);
  }

  // ---- the rules -----------------------------------------------------------------------------

  _membership(t, master, id, token, everJoined) {
    return {
      // null while a first join by the join code has not reached the Master yet.
      master,
      id,
      token,
      // JOIN_ACCEPT received on the current link.
      joined: false,
      // Accepted at least once in this session: a later attempt is a rejoin.
      everJoined,
      // Attempts and backoff while not joined.
      retry: Retry.running(t, this._core),
      // The follow mode the last JOIN_REQUEST carried.
      requestedMode: this._followMode,
      // Since when rejoins have been refused over HTTP (null since the last accept).
      refusedSince: null,
    };
  }

  _onLink(t, peer, signal) {
    const core = this._core;
    const s = this._session;
    // The first link of a join by code is the Master's: it names the Master.
    if (signal === 'up' && s !== null && s.master === null) s.master = peer;
    if (s === null || s.master !== peer) {
      // Not our Master: nothing to do with it beyond reporting the link.
      if (signal === 'up') core.setLink(t, peer, LINK.CONNECTED);
      else if (signal === 'down') core.forgetLink(peer);
      return;
    }
    if (signal === 'up') {
      core.setLink(t, peer, LINK.CONNECTED);
      s.joined = false;
      // The attempt now waits for JOIN_ACCEPT, within the attempt timeout.
      if (s.retry === null) s.retry = Retry.running(t, core);
      else if (!s.retry.isRunning()) s.retry.start(t, core);
      s.requestedMode = this._followMode;
      const c = core.config;
      this._send(t, peer, 'HELLO', {
        mode: 'choir_follower',
        device_name: c.deviceName,
        app_version: c.appVersion,
        capabilities: c.capabilities.slice(),
      });
      this._send(t, peer, 'JOIN_REQUEST', {
        session_token: s.token,
        follow_mode: this._followMode,
        song_epoch: this._pos.songEpoch,
      });
    } else if (signal === 'degraded') {
      if (isUp(core.link(peer))) core.setLink(t, peer, LINK.DEGRADED);
    } else {
      s.joined = false;
      core.setLink(t, peer, s.everJoined ? LINK.RECONNECTING : LINK.CONNECTING);
      if (s.retry === null) s.retry = Retry.afterLoss(t, core);
      else if (s.retry.isRunning()) s.retry.failed(t, core);
    }
  }

  _timeout(t) {
    const core = this._core;
    // A link DEGRADED for too long is treated as lost, and the transport told to drop it.
    core.expiredDegraded(t).forEach((peer) => {
      core.request('disconnect', peer);
      this._onLink(t, peer, 'down');
    });
    this._onTimeout(t);
    this._settle(t);
  }

  _onTimeout(t) {
    const core = this._core;
    const s = this._session;
    if (s === null || s.retry === null) return;
    const r = s.retry;
    const state = s.everJoined ? LINK.RECONNECTING : LINK.CONNECTING;
    const due = r.due(t);
    if (due === 'start') {
      r.start(t, core);
      if (s.master !== null) {
        core.setLink(t, s.master, state);
        core.request('connect', s.master);
      } else {
        core.request('join_by_code');
      }
    } else if (due === 'timed_out') {
      r.failed(t, core);
      s.joined = false;
      // A first join by code that timed out is simply started again on the backoff; one that
      // answers late is still welcome.
      if (s.master !== null) {
        core.setLink(t, s.master, state);
        core.request('disconnect', s.master);
      }
    }
  }

  _onMessage(t, from, env) {
    const core = this._core;
    const s = this._session;
    const m = env.message;
    if (s === null) return;
    // Authority: only our Master, on an open link, for our session. State that arrives before
    // JOIN_ACCEPT on that link is applied too (the Master only sends it to members).
    if (s.master !== from || !isUp(core.link(from)) || env.session_id !== s.id) {
      if (m.kind === 'HELLO') core.event({ type: 'peer_hello', peer: from, hello: m.hello });
      return;
    }
    const joined = s.joined;
    switch (m.kind) {
      case 'JOIN_ACCEPT':
        if (m.snapshot.session_id !== s.id) return;
        s.joined = true;
        s.everJoined = true;
        s.retry = null;
        s.refusedSince = null;
        // A (re)join: the Master hears what this device shows right after the accept.
        this._report.reset();
        // The mode changed while the join was in flight: tell the Master now.
        if (s.requestedMode !== this._followMode) {
          s.requestedMode = this._followMode;
          this._send(t, from, 'SET_FOLLOW_MODE', { mode: this._followMode });
        }
        this._pos.applySnapshot(m.snapshot, this._followMode === 'follow');
        return;
      case 'JOIN_REJECT':
        if (joined) return;
        this._exitToLocal(t);
        core.event({ type: 'join_rejected', reason: m.reason });
        return;
      case 'SESSION_END':
        this._exitToLocal(t);
        core.event({ type: 'stream_clear', song_id: null });
        core.event({ type: 'session_ended' });
        return;
      case 'CHOIR_SNAPSHOT':
        if (m.session_id === env.session_id) this._pos.applySnapshot(m, this._followMode === 'follow');
        return;
      case 'CHOIR_SET_SONG':
        this._pos.applySetSong(m.song_id, m.song_epoch, this._followMode === 'follow');
        return;
      case 'CHOIR_SET_PAGE':
        this._pos.applySetPage({ song_epoch: m.song_epoch, page_revision: m.page_revision, page_index: m.page_index }, this._followMode === 'follow');
        return;
      case 'STREAM_PREPARE':
        core.event({ type: 'stream_prepare', prepare: m.prepare });
        return;
      case 'STREAM_CLEAR':
        core.event({ type: 'stream_clear', song_id: m.song_id });
        return;
      case 'HELLO':
        core.event({ type: 'peer_hello', peer: from, hello: m.hello });
        return;
      default:
    }
  }

  // A rejoin refused over HTTP is not authenticated (any device can answer for the Master's
  // address), so the membership holds: retried on a longer backoff, ended only by refusals
  // repeated over minutes (or by the pinned link's own word). A first join simply goes local.
  _onJoinRefused(t, reason) {
    const core = this._core;
    const s = this._session;
    if (s === null || s.joined) return;
    if (!s.everJoined) {
      this._exitToLocal(t);
      core.event({ type: 'join_rejected', reason });
      return;
    }
    if (s.refusedSince === null) s.refusedSince = t;
    if (t - s.refusedSince >= core.timing.refusedRejoinGiveUpMs) {
      this._exitToLocal(t);
      core.event({ type: 'join_rejected', reason });
      return;
    }
    if (s.retry !== null) s.retry.failedWaiting(t, core, core.timing.refusedRejoinBackoffMs);
  }

  _onJoinFailed(t, forGood) {
    const s = this._session;
    if (s === null || s.master !== null) return;
    if (forGood) this._exitToLocal(t);
    else if (s.retry !== null && s.retry.isRunning()) s.retry.failed(t, this._core);
  }

  // Rejected, ended or left: back to local mode, the session forgotten. The page shown stays.
  _exitToLocal(t) {
    const s = this._session;
    if (s !== null) {
      this._session = null;
      this._close(t, s.master);
    }
    this._pos.pending = null;
  }

  _applyLocal(t, a) {
    switch (a.kind) {
      // Local navigation never waits for, nor tells, the Master.
      case 'set_page':
      case 'next_page':
      case 'prev_page':
      case 'set_song':
        this._navigations++;
        this._pos.navigate(a);
        return null;
      case 'set_follow_mode':
        this._setFollowMode(t, a.mode);
        return null;
      case 'join':
        return this._join(t, a.master, a.session_id, a.token);
      case 'leave': {
        const s = this._session;
        if (s === null) return rejection('not_in_session', 'this device is not in a Choir session');
        this._session = null;
        this._leave(t, s);
        return null;
      }
      default:
        return rejection('not_for_role', '`' + a.kind + '` is not an action for the follower role');
    }
  }

  _setFollowMode(t, mode) {
    if (mode === this._followMode) return;
    this._followMode = mode;
    if (mode === 'follow') this._pos.showMaster();
    const s = this._session;
    if (s !== null && s.joined && s.master !== null && isUp(this._core.link(s.master))) {
      this._send(t, s.master, 'SET_FOLLOW_MODE', { mode });
    }
  }

  // A new session (`master` null: by the join code, the Master's id still unknown).
  _join(t, master, sessionId, token) {
    const core = this._core;
    if (token === '') return rejection('empty_token', 'a session token must not be empty');
    if (this._session !== null) {
      const old = this._session;
      this._session = null;
      this._leave(t, old);
    }
    // Another session: its epochs start from scratch.
    if (this._sessionIdSeen !== sessionId) this._pos.forgetMaster();
    this._sessionIdSeen = sessionId;
    this._session = this._membership(t, master, sessionId, token, false);
    if (master === null) {
      core.request('join_by_code');
    } else if (isUp(core.link(master))) {
      // The link is already open: join on it at once.
      this._onLink(t, master, 'up');
    } else {
      core.setLink(t, master, LINK.CONNECTING);
      core.request('connect', master);
    }
    return null;
  }

  _leave(t, s) {
    if (s.joined && s.master !== null && isUp(this._core.link(s.master))) {
      this._sendIn(t, s.id, s.master, 'LEAVE_SESSION', {});
    }
    this._close(t, s.master);
    this._pos.pending = null;
  }

  // The session's link is over: ended, and the transport told to close it (or to abandon a
  // first join that has not reached the Master).
  _close(t, master) {
    if (master !== null) {
      this._core.setLink(t, master, LINK.ENDED);
      this._core.request('disconnect', master);
    } else {
      this._core.request('cancel_join');
    }
  }

  _send(t, to, type, payload) {
    this._sendIn(t, this._session.id, to, type, payload);
  }

  _sendIn(t, sessionId, to, type, payload) {
    this._core.send(to, encode(sessionId, this._core.config.deviceId, t, type, payload));
  }

  // After every input: tell the page what changed, and the Master what this device shows.
  _settle(t) {
    const core = this._core;
    const told = this._told;
    const phase = this.phase();
    if (told.phase !== phase) {
      told.phase = phase;
      core.event({ type: 'phase', phase });
    }
    const view = this.view();
    if (!sameView(told.view, view)) {
      told.view = view;
      core.event({ type: 'show', view, navigations: this._navigations });
    }
    this._reportShowing(t);
    const master = this._pos.masterView();
    if (!(master === null && told.master === null) && !sameView(told.master, master)) {
      if (master !== null) core.event({ type: 'master_view', view: master });
      told.master = master;
    }
  }

  // SHOWING (docs/protocol.md, browser Followers included): what this device shows, told to the
  // Master within the rate limit, only while joined on a link that is up.
  _reportShowing(t) {
    const s = this._session;
    if (s === null || !s.joined || s.master === null || !isUp(this._core.link(s.master))) {
      this._report.pause();
      return;
    }
    const shown = { song_epoch: this._pos.songEpoch, song_id: this._pos.shownSong, page_index: this._pos.shownPage };
    const msg = this._report.update(t, this._core.timing.showingIntervalMs, shown);
    if (msg !== null) this._send(t, s.master, 'SHOWING', msg);
  }
}

// A Follower: create({deviceId, deviceName, appVersion, random, capabilities?, timing?}).
export function create(options) {
  return new Follower(options);
}
