// The browser Follower's page: reads the join code from the address's fragment, joins the
// Master over WebRTC (POST /v1/join, then the protocol of docs/protocol.md on `maestral-sync`), and shows the pages
// the Master renders as images. The protocol's rules are follower.mjs's; this file is the
// transport, the storage and the screen.
//
// Written for Safari on iOS 15 and Chrome on Android 9 (Chrome 69 and later): ES2019, no class fields, no top-level
// await; nothing loaded from elsewhere.

import { create } from './follower.mjs';
import { HEARTBEAT_MS, receivedCount, Silence, Ticks } from './heartbeat.mjs';

const KEYS = { session: 'maestral.session', device: 'maestral.device', name: 'maestral.name' };
// Where this phone's identity (its device id and certificate) is kept: IndexedDB, which can hold
// an RTCCertificate (localStorage holds only text) and works on a plain http:// page.
const IDENTITY_DB = 'maestral';
const IDENTITY_STORE = 'identity';
// A certificate is made to last a year (browsers default to 30 days) and replaced, with a new
// device id, when it has less than a day left.
const CERT_LIFE_MS = 365 * 24 * 3600 * 1000;
const DAY_MS = 24 * 3600 * 1000;
const IDENTITY_WAIT_MS = 3000;
// A join attempt that has not opened its channel by then has failed.
const JOIN_TIMEOUT_MS = 10000;
// Two taps or key presses closer than this are one (a pedal's key repeat, a bouncing switch).
const DEBOUNCE_MS = 250;
// A swipe is a horizontal move of at least this many CSS pixels.
const SWIPE_PX = 50;
// Pages fetched ahead of the one shown.
const AHEAD = 2;

const $ = (id) => document.getElementById(id);
const now = () => Date.now();

function store(key, value) {
  try {
    if (value === null) localStorage.removeItem(key);
    else localStorage.setItem(key, JSON.stringify(value));
  } catch (e) { /* private mode: kept for this page only */ }
}

function stored(key) {
  try {
    const text = localStorage.getItem(key);
    return text === null ? null : JSON.parse(text);
  } catch (e) {
    return null;
  }
}

function randomHex(bytes) {
  const b = crypto.getRandomValues(new Uint8Array(bytes));
  return Array.prototype.map.call(b, (x) => (x < 16 ? '0' : '') + x.toString(16)).join('');
}

// RFC 4648 base32 (the fingerprint in the code) to `AB:CD:…`, or null.
function fingerprintFromBase32(text) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let acc = 0;
  let bits = 0;
  const out = [];
  for (let i = 0; i < text.length; i++) {
    const v = alphabet.indexOf(text[i].toUpperCase());
    if (v < 0) return null;
    acc = ((acc << 5) | v) & 0xfff;
    bits += 5;
    if (bits >= 8) {
      bits -= 8;
      const byte = (acc >> bits) & 0xff;
      out.push((byte < 16 ? '0' : '') + byte.toString(16).toUpperCase());
    }
  }
  return out.length === 32 ? out.join(':') : null;
}

// The join code in the fragment (`#1.SESSION.TOKEN.FINGERPRINT`): {session, token, fp}, or an
// {error} to show, or null when there is none.
export function readCode(hash) {
  const text = (hash || '').replace(/^#/, '');
  if (text === '') return null;
  const fields = text.split('.');
  if (fields[0] !== '1' || fields.length < 4) {
    return { error: 'This link is not a Maestral join code. Scan the QR code on the conductor\u2019s screen again.' };
  }
  let session;
  let token;
  try {
    session = decodeURIComponent(fields[1]);
    token = decodeURIComponent(fields[2]);
  } catch (e) {
    return { error: 'This join code is damaged. Scan the QR code again.' };
  }
  const fp = fingerprintFromBase32(fields[3]);
  if (session === '' || token === '' || fp === null) {
    return { error: 'This join code is damaged. Scan the QR code again.' };
  }
  return { session: session, token: token, fp: fp };
}

// The `sha-256` fingerprint an SDP states, upper case, or null.
export function sdpFingerprint(sdp) {
  const m = /^a=fingerprint:sha-256 ([0-9A-Fa-f:]+)\s*$/m.exec(sdp || '');
  return m ? m[1].toUpperCase() : null;
}

// ---- the session this page belongs to -----------------------------------------------------

const fragment = readCode(location.hash);
// The fragment leaves the address bar and the history at once.
if (location.hash) history.replaceState(null, '', location.pathname);
let code = fragment && !fragment.error ? fragment : stored(KEYS.session);
if (fragment && !fragment.error) store(KEYS.session, fragment);

// ---- this phone's identity -------------------------------------------------------------------

// The Master binds a device id to the certificate it first joined with, for the whole session
// (a token holder cannot take a singer's place): every link this page makes uses the same
// certificate, kept with the id, so a reload or a phone that slept rejoins as itself. Where
// they cannot be kept (storage refused), this page makes a new id with its new certificate:
// it never asks for a place it cannot prove.
let deviceId = null;
let certificate = null;

function request(r) {
  return new Promise((resolve) => {
    r.onsuccess = () => resolve(r.result);
    r.onerror = () => resolve(null);
  });
}

// The identity database, or null where there is none, it lacks the store, or it does not open
// within IDENTITY_WAIT_MS (some browsers never settle the request): the page joins anyway.
function openIdentityDb() {
  let opened;
  try {
    const open = indexedDB.open(IDENTITY_DB, 1);
    open.onupgradeneeded = () => open.result.createObjectStore(IDENTITY_STORE);
    opened = request(open);
  } catch (e) {
    return Promise.resolve(null);
  }
  const late = new Promise((resolve) => setTimeout(() => resolve(null), IDENTITY_WAIT_MS));
  return Promise.race([opened, late]).then((db) => (db && db.objectStoreNames.contains(IDENTITY_STORE) ? db : null));
}

function identityStore(db, mode) {
  return db.transaction(IDENTITY_STORE, mode).objectStore(IDENTITY_STORE);
}

// A kept identity, if it is whole and its certificate has time left.
function usable(r) {
  return r !== null && typeof r === 'object' && typeof r.deviceId === 'string' &&
    /^web-[0-9a-f]{16}$/.test(r.deviceId) && r.cert instanceof RTCCertificate &&
    r.cert.expires > now() + DAY_MS;
}

async function loadIdentity() {
  const db = await openIdentityDb();
  let kept = null;
  if (db !== null) {
    try {
      kept = await request(identityStore(db, 'readonly').get('me'));
    } catch (e) {
      kept = null;
    }
  }
  if (usable(kept)) return kept;
  const cert = await RTCPeerConnection.generateCertificate({ name: 'ECDSA', namedCurve: 'P-256', expires: CERT_LIFE_MS });
  const made = { deviceId: 'web-' + randomHex(8), cert: cert };
  if (db !== null) {
    try {
      await request(identityStore(db, 'readwrite').put(made, 'me'));
    } catch (e) { /* not kept: this page's identity only */ }
  }
  return made;
}

// The id was kept in localStorage, without its certificate, before.
store(KEYS.device, null);

const nameInput = $('name');

// Made by the Join tap, with the name the singer gave (its HELLO carries it to the roster).
let engine = null;

// ---- the link --------------------------------------------------------------------------------

let link = null; // {pc, dc, copy, peer, attempt, open, byCode, silence}
let leaving = false; // this page sent LEAVE_SESSION: its link closes gently
let attempts = 0;
let timer = null;

// Drops the link. `gently`: what was just sent on it (a LEAVE_SESSION) must arrive first, and
// closing at once would throw it away (the Master's stack may see the close before the data
// that came with it; a browser cannot tell when the Master has acknowledged its bytes). The
// Master closes the link itself once it has read a LEAVE_SESSION: the page waits for that, a
// second at most.
function closeLink(gently) {
  if (link === null) return;
  const old = link;
  link = null;
  const close = () => { try { old.pc.close(); } catch (e) { /* already closed */ } };
  if (!gently || old.dc.readyState !== 'open') {
    close();
    return;
  }
  old.dc.onclose = close;
  setTimeout(close, 1000);
}

function lost(which, why) {
  if (link !== which) return;
  const peer = which.peer;
  const opened = which.open;
  closeLink();
  if (opened && peer !== null) engine.link(now(), peer, 'down');
  else if (which.byCode) engine.joinFailed(now(), false);
  else if (peer !== null) engine.link(now(), peer, 'down');
  setLinkText(why);
  pump();
}

async function connect(byCode, peer) {
  closeLink();
  if (code === null) return;
  const me = { pc: null, dc: null, copy: null, peer: peer, attempt: ++attempts, open: false, byCode: byCode, silence: null };
  const pc = new RTCPeerConnection({ iceServers: [], certificates: [certificate] });
  me.pc = pc;
  link = me;
  me.dc = pc.createDataChannel('maestral-sync');
  // Copies of page and song updates: unordered, never retransmitted, so a lost packet on the
  // Wi-Fi costs the next copy's delay, not SCTP's one-second retransmission.
  me.copy = pc.createDataChannel('maestral-copy', { negotiated: true, id: 1001, ordered: false, maxRetransmits: 0 });
  const giveUp = setTimeout(() => lost(me, 'Could not reach the conductor\u2019s device'), JOIN_TIMEOUT_MS);
  me.dc.onopen = () => {
    clearTimeout(giveUp);
    me.open = true;
    me.silence = new Silence(now());
    if (me.peer !== null) {
      engine.link(now(), me.peer, 'up');
      pump();
    }
  };
  me.dc.onmessage = (e) => {
    if (link !== me || typeof e.data !== 'string') return;
    me.silence.heard(now());
    if (me.peer === null) {
      // The Master's first message (its HELLO) names it.
      let sender = null;
      try { sender = JSON.parse(e.data).sender_id; } catch (err) { sender = null; }
      if (typeof sender !== 'string') return;
      me.peer = sender;
      engine.link(now(), sender, 'up');
    }
    engine.recv(now(), me.peer, e.data);
    pump();
  };
  me.copy.onmessage = (e) => {
    if (link !== me || me.peer === null || typeof e.data !== 'string') return;
    engine.handleCopy(now(), me.peer, e.data);
    pump();
  };
  me.dc.onclose = () => lost(me, 'Connection lost');
  pc.onconnectionstatechange = () => {
    if (pc.connectionState === 'failed' || pc.connectionState === 'closed') lost(me, 'Connection lost');
  };
  try {
    await pc.setLocalDescription(await pc.createOffer());
    // Posted at once: a browser offers only `.local` candidates, if any; the Master learns the
    // phone's address from its connectivity checks.
    const res = await fetch('/v1/join', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      cache: 'no-store',
      body: JSON.stringify({ session_id: code.session, token: code.token, device_id: deviceId, offer: pc.localDescription.sdp }),
    });
    const body = await res.json().catch(() => ({}));
    if (link !== me) return;
    if (res.status === 403) {
      clearTimeout(giveUp);
      closeLink();
      const reason = body.reason === 'session_ended' || body.reason === 'device_in_use' ? body.reason : 'invalid_token';
      engine.joinRefused(now(), reason === 'device_in_use' ? 'other' : reason);
      pump();
      // A rejoin refused over HTTP is not the Master's authenticated word (any device could
      // answer for its address): the rules keep trying for minutes, and the page says what it
      // was told meanwhile.
      if (code !== null) setLinkText(REFUSAL_TEXT[reason]);
      return;
    }
    if (!res.ok || typeof body.answer !== 'string') throw new Error('the conductor\u2019s device is busy');
    if (sdpFingerprint(body.answer) !== code.fp) {
      clearTimeout(giveUp);
      lost(me, 'Another device answered: scan the conductor\u2019s QR code again');
      return;
    }
    await pc.setRemoteDescription({ type: 'answer', sdp: body.answer });
  } catch (err) {
    clearTimeout(giveUp);
    lost(me, 'Could not reach the conductor\u2019s device');
  }
}

const REFUSAL_TEXT = {
  session_ended: 'The session seems to have ended',
  invalid_token: 'The conductor\u2019s device refused this phone',
  device_in_use: 'Another device joined under this phone\u2019s name',
};

// The heartbeat (heartbeat.mjs says why): a link silent too long is lost; a page that was
// frozen rejoins at once if its browser knows the link is gone, and otherwise gives the link
// WOKEN_MS to show it still lives.
const ticks = new Ticks(now());

function heartbeat() {
  const t = now();
  const late = ticks.late(t);
  const me = link;
  if (me === null || !me.open) return;
  if (late) {
    me.silence.woke(t);
    wake();
    return;
  }
  me.pc.getStats().then((stats) => {
    if (link !== me) return;
    const count = receivedCount(stats);
    document.body.dataset.linkIn = String(count); // for whoever looks from outside (tests)
    if (me.silence.silent(now(), count)) {
      document.body.dataset.lostBy = 'silence';
      lost(me, 'Connection lost');
    }
  }).catch(() => { /* closed meanwhile */ });
}

function send(to, text) {
  if (link !== null && link.open && link.peer === to && link.dc.readyState === 'open') link.dc.send(text);
}

// Runs what the engine asked for, then waits for its next timer.
function pump() {
  const outputs = engine.takeOutputs();
  for (let i = 0; i < outputs.length; i++) {
    const o = outputs[i];
    if (o.kind === 'send') send(o.to, o.text);
    else if (o.kind === 'event') handle(o.event);
  }
  if (timer !== null) clearTimeout(timer);
  timer = null;
  const due = engine.nextTimeout();
  if (due !== null) {
    timer = setTimeout(() => {
      timer = null;
      engine.tick(now());
      pump();
    }, Math.max(0, due - now()));
  }
}

function handle(event) {
  switch (event.type) {
    case 'join_by_code': connect(true, null); break;
    case 'connect': connect(false, event.peer); break;
    case 'disconnect': case 'cancel_join': closeLink(leaving); break;
    case 'show': show(event.view); break;
    case 'master_view': showMaster(); break;
    case 'phase': phase(event.phase); break;
    case 'join_rejected': end(event.reason === 'session_ended' ? 'The session has ended.' : 'The conductor\u2019s device refused this code. Scan its QR code again.'); break;
    case 'session_ended': end('The session has ended.'); break;
    default: break;
  }
}

// ---- the screen --------------------------------------------------------------------------

const images = new Map(); // "song|page|width" → {promise of an object URL or null, url once known}
let shown = null; // the view on screen
let front = $('page-a');
let back = $('page-b');

function width() {
  return Math.round(Math.min(2560, Math.max(160, window.innerWidth * (window.devicePixelRatio || 1))));
}

// Fetches a page image: its object URL, null when not fetched (try again), or REFUSED when the
// Master refused the token (no retry: the link learns why and says so).
const REFUSED = 'refused';

function image(song, page) {
  if (code === null) return Promise.resolve(REFUSED);
  const key = song + '|' + page + '|' + width();
  if (!images.has(key)) {
    const url = '/v1/page?song=' + encodeURIComponent(song) + '&page=' + page + '&width=' + width();
    const entry = { promise: null, url: undefined };
    entry.promise = fetch(url, { headers: { Authorization: 'Bearer ' + code.token }, cache: 'no-store' })
      .then((res) => (res.ok ? res.blob() : res.status === 403 ? REFUSED : null))
      .then((blob) => (blob === null || blob === REFUSED ? blob : URL.createObjectURL(blob)))
      .catch(() => null)
      .then((u) => {
        entry.url = u;
        if ((u === null || u === REFUSED) && images.get(key) === entry) images.delete(key);
        return u;
      });
    images.set(key, entry);
    forgetOld();
  }
  return images.get(key).promise;
}

// Pages kept ready in memory: the ones around the turn, not a whole evening's.
const KEPT_IMAGES = 16;

// Forgets the oldest fetched pages past KEPT_IMAGES, freeing their memory: only pages already
// fetched (a turn may be waiting for one still in flight) and never one on screen.
function forgetOld() {
  const onScreen = [front.getAttribute('src'), back.getAttribute('src')];
  const keys = Array.from(images.keys());
  for (let i = 0; i < keys.length && images.size > KEPT_IMAGES; i++) {
    const entry = images.get(keys[i]);
    if (typeof entry.url !== 'string' || entry.url === REFUSED || onScreen.indexOf(entry.url) >= 0) continue;
    images.delete(keys[i]);
    URL.revokeObjectURL(entry.url);
  }
}

// A page that could not be fetched is asked for again after this long (doubling, capped).
const RETRY_MS = 250;

let showing = 0; // which call of show() is the latest (a rotation shows the same view again)

async function show(view, attempt) {
  shown = view;
  const mine = ++showing;
  // When this page learned what to show (a benchmark tells the link's share from the decode's).
  if (!attempt) document.body.dataset.heard = view.song_id + ' ' + view.page_index + ' ' + now();
  if (view.song_id === null) {
    $('waiting').hidden = false;
    front.hidden = true;
    return;
  }
  const url = await image(view.song_id, view.page_index);
  if (mine !== showing) return; // a later turn came meanwhile
  // The token refused (the session ended while this phone slept?): no retry; the link is
  // checked instead, and a rejoin learns why.
  if (url === REFUSED) {
    wake();
    return;
  }
  if (url === null) {
    // Not rendered (yet) or not reached: the page on screen stays (with none, the words say
    // why), and it is asked for again.
    if (front.hidden || !front.getAttribute('src')) $('waiting').hidden = false;
    const n = attempt || 0;
    setTimeout(() => { if (mine === showing) show(view, n + 1); }, Math.min(4000, RETRY_MS << Math.min(n, 4)));
    return;
  }
  // The new page is decoded before it replaces the old one: never a blank or half-drawn page.
  back.src = url;
  try { if (back.decode) await back.decode(); } catch (e) { /* shown as it is */ }
  if (mine !== showing) return;
  // What is on screen, for whoever looks at the page from outside (tests, accessibility).
  back.dataset.song = view.song_id;
  back.dataset.page = String(view.page_index);
  back.dataset.shownAt = String(Date.now());
  back.alt = 'Page ' + (view.page_index + 1);
  back.hidden = false;
  front.hidden = true;
  const t = front;
  front = back;
  back = t;
  $('waiting').hidden = true;
  for (let i = 1; i <= AHEAD; i++) image(view.song_id, view.page_index + i);
}

function showMaster() {
  const free = engine.followMode() === 'free';
  const m = engine.masterPosition();
  const marker = $('master-page');
  marker.hidden = !free || m.song_id === null;
  marker.textContent = 'Master: p. ' + (m.page_index + 1);
  $('follow').textContent = free ? 'Follow' : 'Free';
}

function phase(p) {
  document.body.dataset.phase = p;
  showMaster();
  const words = {
    FOLLOWER_JOINING: 'Joining\u2026',
    FOLLOWER_CONNECTED_FOLLOW: '',
    FOLLOWER_CONNECTED_FREE: '',
    FOLLOWER_DISCONNECTED_LOCAL: 'Connection lost',
    FOLLOWER_REJOINING: 'Reconnecting\u2026',
  };
  if (p in words) setLinkText(words[p]);
}

function setLinkText(text) {
  $('link').textContent = text || '';
  $('join-status').textContent = text || '';
}

function end(text) {
  store(KEYS.session, null);
  $('wake').pause();
  if (wakeLock !== null) wakeLock.release().catch(() => {});
  code = null;
  closeLink();
  $('stage').hidden = true;
  $('join').hidden = true;
  $('ended').hidden = false;
  $('ended-text').textContent = text;
}

let lastTurn = 0;
function turn(step) {
  if (engine === null) return;
  const t = now();
  if (t - lastTurn < DEBOUNCE_MS) return;
  lastTurn = t;
  engine.local(t, { kind: step > 0 ? 'next_page' : 'prev_page' });
  pump();
}

function setupStage() {
  const pages = $('pages');
  let start = null;
  pages.addEventListener('pointerdown', (e) => { start = { x: e.clientX, y: e.clientY }; });
  pages.addEventListener('pointerup', (e) => {
    if (start === null) return;
    const dx = e.clientX - start.x;
    start = null;
    if (Math.abs(dx) >= SWIPE_PX) turn(dx < 0 ? 1 : -1);
    else turn(e.clientX > window.innerWidth / 2 ? 1 : -1);
  });
  document.addEventListener('keydown', (e) => {
    if (e.repeat) return;
    if (['PageDown', 'ArrowRight', 'ArrowDown', ' '].indexOf(e.key) >= 0) { e.preventDefault(); turn(1); }
    if (['PageUp', 'ArrowLeft', 'ArrowUp'].indexOf(e.key) >= 0) { e.preventDefault(); turn(-1); }
  });
  $('follow').addEventListener('click', () => {
    if (engine === null) return;
    engine.local(now(), { kind: 'set_follow_mode', mode: engine.followMode() === 'free' ? 'follow' : 'free' });
    pump();
  });
  $('leave').addEventListener('click', () => {
    if (engine === null || !window.confirm('Leave the conductor\u2019s session?')) return;
    leaving = true;
    engine.local(now(), { kind: 'leave' });
    pump();
    end('You left the session.');
  });
  $('master-page').addEventListener('click', () => {
    if (engine === null) return;
    engine.local(now(), { kind: 'set_follow_mode', mode: 'follow' });
    pump();
  });
  window.addEventListener('resize', () => { if (shown !== null) show(shown); });
}

// ---- keeping the screen on ------------------------------------------------------------------

const TIP_AWAKE = 'Tip: set your phone\u2019s Auto-Lock (screen timeout) to Never for the rehearsal.';
let wakeLock = null;

// While joined, the screen stays on where the browser allows it: the Wake Lock (a secure context
// only, so not on a LAN page today), else a tiny looping video, which must be started by a tap;
// where neither works, a one-line tip. Says which: 'lock', 'video' or 'tip'.
function keepAwake() {
  const video = $('wake');
  // Started at once, within the tap (a later start is refused without one).
  const playing = Promise.resolve(video.play ? video.play() : Promise.reject(new Error('no video')));
  playing.catch(() => {}); // decided below
  const locked = 'wakeLock' in navigator
    ? navigator.wakeLock.request('screen').then((l) => { wakeLock = l; return 'lock'; })
    : Promise.reject(new Error('no Wake Lock'));
  return locked
    .then((how) => { video.pause(); return how; })
    .catch(() => playing.then(() => 'video'))
    .catch(() => {
      $('tip').textContent = TIP_AWAKE;
      $('tip').hidden = false;
      setTimeout(() => { $('tip').hidden = true; }, 15000);
      return 'tip';
    })
    .then((how) => { document.body.dataset.awake = how; return how; });
}

// Back in view: a Wake Lock was released when the page was hidden, and a video may have stopped.
function stayAwake() {
  if (engine === null || code === null) return;
  if (wakeLock !== null && wakeLock.released && 'wakeLock' in navigator) {
    navigator.wakeLock.request('screen').then((l) => { wakeLock = l; }).catch(() => {});
  } else if (document.body.dataset.awake === 'video') {
    $('wake').play().catch(() => {});
  }
}

function join() {
  if (code === null || engine !== null || deviceId === null || (fragment && fragment.error)) return;
  keepAwake();
  const name = nameInput.value.trim() || 'Singer ' + deviceId.slice(4, 8).toUpperCase();
  store(KEYS.name, name);
  engine = create({
    deviceId: deviceId,
    deviceName: name,
    appVersion: 'web-1',
    random: () => crypto.getRandomValues(new Uint32Array(1))[0] / 4294967296,
  });
  $('join').hidden = true;
  $('stage').hidden = false;
  $('waiting').hidden = false;
  engine.local(now(), { kind: 'join', session_id: code.session, token: code.token });
  pump();
}

// Back from sleep, a hidden tab or a lost network: try again at once rather than at the next
// backoff step.
function wake() {
  if (code === null || engine === null) return;
  const state = link === null ? 'closed' : link.pc.connectionState;
  if (state !== 'connected' && state !== 'connecting' && state !== 'new') {
    const master = engine.master();
    if (master !== null) connect(false, master);
  }
}
document.addEventListener('visibilitychange', () => {
  if (document.visibilityState === 'visible') {
    wake();
    stayAwake();
  }
});
window.addEventListener('pageshow', wake);
window.addEventListener('online', wake);
// No LEAVE_SESSION when the page goes away (a closed tab): a browser tears the connection down
// with the page, before the message is out (tried: the Master saw the close, never the leave).
// The roster shows such a phone as reconnecting until the Master forgets it.
setInterval(heartbeat, HEARTBEAT_MS);

setupStage();
$('join-button').addEventListener('click', join);
nameInput.addEventListener('keydown', (e) => { if (e.key === 'Enter') join(); });
loadIdentity().then((identity) => {
  deviceId = identity.deviceId;
  certificate = identity.cert;
  start();
}, () => {
  $('join-status').textContent = 'This browser cannot make a secure connection. Try another browser.';
  $('join-button').disabled = true;
});

// Once this phone's identity is known.
function start() {
  if (!nameInput.value) nameInput.value = stored(KEYS.name) || 'Singer ' + deviceId.slice(4, 8).toUpperCase();
  // Enabled once the page can join: a tap before that would do nothing.
  $('join-button').disabled = false;
  if (fragment && fragment.error) {
    $('join-status').textContent = fragment.error;
    $('join-button').disabled = true;
  } else if (code === null) {
    $('join-status').textContent = 'Scan the QR code on the conductor\u2019s screen with your camera.';
    $('join-button').disabled = true;
  } else if (!fragment && stored(KEYS.name)) {
    // A reload or a phone that slept: back in with no tap.
    join();
  }
}
