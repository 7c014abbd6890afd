// A phone's browser as a Choir Follower: headless Chromium in a network namespace opens the
// join code a real headless Master prints (a LAN address, not a secure context), joins over
// WebRTC, shows the pages the Master renders, follows, goes free and back, rejoins after a
// reload, follows a song change and learns that the session ended. Run by `cargo xtask test`
// (root: it makes its namespaces), with MAESTRAL_BIN naming the app.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { Browser } from './cdp.mjs';
import { ADDRESS, Lan, loss } from './lan.mjs';
import { Master } from './master.mjs';
import { READY, SHOWN, showing } from './page.mjs';

const ROOT = resolve(fileURLToPath(new URL('.', import.meta.url)), '..', '..');
const SCORES = resolve(ROOT, 'assets', 'scores');
const FIRST = resolve(SCORES, 'lanterns-on-the-water.pdf');
const SECOND = resolve(SCORES, 'harbour-lights-jig.pdf');

let lan;
let master;
let browser;
let code;

before(async () => {
  lan = new Lan();
  master = new Master(lan.ns, ADDRESS + ':0', SCORES);
  const ready = await master.next((e) => e.event === 'ready', 'ready', 60000, true);
  code = ready.join_code;
  browser = new Browser(lan.ns);
});

after(async () => {
  if (browser) await browser.close();
  if (master) await master.close();
  if (lan) lan.close();
});


// What the page keeps of its identity in IndexedDB: {id, cert: whether it is an RTCCertificate}.
const IDENTITY = `new Promise((resolve) => {
  const open = indexedDB.open('maestral', 1);
  open.onerror = () => resolve(null);
  open.onsuccess = () => {
    const get = open.result.transaction('identity', 'readonly').objectStore('identity').get('me');
    get.onsuccess = () => resolve(get.result ? { id: get.result.deviceId, cert: get.result.cert instanceof RTCCertificate } : null);
    get.onerror = () => resolve(null);
  };
})`;

// Every visible control (button, text field) smaller than a finger (56 CSS px, about 9 mm on
// a phone), as "id: w×h".
const SMALL_CONTROLS = `[...document.querySelectorAll('button, input')]
  .filter((e) => !e.hidden && e.offsetParent !== null && getComputedStyle(e).visibility !== 'hidden')
  .map((e) => [e.id || e.textContent, e.getBoundingClientRect()])
  .filter(([, r]) => r.width < 56 || r.height < 56)
  .map(([id, r]) => id + ': ' + Math.round(r.width) + 'x' + Math.round(r.height))`;

// A phone's screen: 390×844 CSS px at three device pixels each, touch.
const PHONE = { width: 390, height: 844, deviceScaleFactor: 3, mobile: true };

async function masterShows(song) {
  master.send('song ' + song);
  const shown = await master.next((e) => e.event === 'show' && e.song_id !== null, 'the song shown');
  return shown.song_id;
}

test('a phone joins from the code, follows, goes free and back, rejoins, and sees the end', async () => {
  assert.match(code, /^HTTP:\/\/10\.253\.0\.1:\d+\/#1\./, 'the code is the web address');
  const first = await masterShows(FIRST);
  const tab = await browser.tab({ ownContext: true });
  await tab.send('Emulation.setDeviceMetricsOverride', PHONE);
  await tab.navigate(code.toLowerCase().slice(0, 7) + code.slice(7));
  await tab.until(READY, 'the page');
  assert.deepEqual(await tab.eval(SMALL_CONTROLS), [], 'the join screen: every control finger-sized');
  assert.equal(await tab.eval('window.isSecureContext'), false, 'a LAN page, as on a phone');
  assert.equal(await tab.eval('location.hash'), '', 'the code leaves the address bar at once');
  const name = await tab.eval("document.getElementById('name').value");
  assert.match(name, /^Singer /, 'a name is already there');
  await tab.eval("document.getElementById('name').value = 'Alto 2'; document.getElementById('join-button').click()");

  await showing(tab, first, 0, "the Master's page");
  const seen = await master.next((e) => e.event === 'roster' && e.members.some((m) => m.name === 'Alto 2' && m.shows && m.shows.page_index === 0), 'the browser in its roster', 20000, true);
  assert.ok(seen);
  assert.equal(await tab.eval("document.body.dataset.phase"), 'FOLLOWER_CONNECTED_FOLLOW');
  // No Wake Lock on a LAN page: the screen is kept on by the looping video the tap started.
  assert.equal(await tab.eval("'wakeLock' in navigator"), false);
  await tab.until("document.body.dataset.awake === 'video' && !document.getElementById('wake').paused", 'the wake video');

  master.send('next');
  await showing(tab, first, 1, 'the turn');

  // Free: the Master turns, the phone stays; the marker says where the Master is.
  await tab.eval("document.getElementById('follow').click()");
  await tab.until("document.body.dataset.phase === 'FOLLOWER_CONNECTED_FREE'", 'free');
  master.send('next');
  await tab.until("document.getElementById('master-page').textContent === 'Master: p. 3' && !document.getElementById('master-page').hidden", 'the marker');
  assert.deepEqual(await tab.eval(SMALL_CONTROLS), [], 'performing, free: Follow, the marker, Leave finger-sized');
  const held = await tab.eval(SHOWN);
  assert.deepEqual({ song: held.song, page: held.page }, { song: first, page: 1 }, 'free holds the page');
  await tab.eval("document.getElementById('master-page').click()");
  await showing(tab, first, 2, 'following again');

  // A reload (a phone that slept, a tab reopened) is back in step with no tap, as the same
  // member: the Master binds its device id to the certificate it joined with, which the page
  // keeps in IndexedDB (a new certificate under the same id would be refused, 403).
  const me = seen.members.find((m) => m.name === 'Alto 2').device_id;
  assert.match(me, /^web-[0-9a-f]{16}$/);
  const reloaded = master.events.length;
  await tab.send('Page.reload');
  await showing(tab, first, 2, 'the page after a reload');
  await tab.until("document.body.dataset.phase === 'FOLLOWER_CONNECTED_FOLLOW'", 'joined again');
  const kept = await tab.eval(IDENTITY);
  assert.equal(kept.id, me, 'the same device id');
  assert.ok(kept.cert, 'with its certificate');
  const back = await master.next((e) => e.event === 'roster' && e.members.some((m) => m.device_id === me && m.link === 'CONNECTED'), 'the same member back', 20000, reloaded);
  assert.equal(back.members.filter((m) => m.name === 'Alto 2').length, 1, 'one member, not a second one');

  // A song change.
  const second = await masterShows(SECOND);
  await showing(tab, second, 0, 'the new song');

  // Images need the token, in a header.
  const token = await tab.eval("JSON.parse(localStorage.getItem('maestral.session')).token");
  const url = `/v1/page?song=${second}&page=0&width=400`;
  assert.equal(await tab.eval(`fetch('${url}').then((r) => r.status)`), 403);
  assert.equal(await tab.eval(`fetch('${url}', {headers: {Authorization: 'Bearer ${token}'}}).then((r) => r.status)`), 200);

  master.send('end');
  await tab.until("document.getElementById('ended-text').textContent === 'The session has ended.'", 'the end');
  assert.equal(await tab.eval("localStorage.getItem('maestral.session')"), null, 'the token is forgotten');
  assert.equal(await tab.eval(`fetch('${url}', {headers: {Authorization: 'Bearer ${token}'}}).then((r) => r.status)`), 403);
});

test('a code with a wrong token is refused in words', async () => {
  master.send('start');
  const ready = await master.next((e) => e.event === 'join_code' || (e.event === 'ready' && e.join_code), 'a new session', 20000);
  const fresh = ready.join_code;
  const fields = fresh.split('.');
  fields[fields.length - 2] = 'WRONGTOKEN';
  const tab = await browser.tab({ ownContext: true });
  await tab.navigate(fields.join('.'));
  await tab.until(READY, 'the page');
  await tab.eval("document.getElementById('join-button').click()");
  const words = await tab.until("document.getElementById('ended').hidden === false && document.getElementById('ended-text').textContent", 'the refusal');
  assert.match(words, /refused this code/);
  code = fresh;
});

test('ten phones that tap Join at once all show the Master page', async () => {
  const song = await masterShows(FIRST);
  master.send('page 1');
  await master.next((e) => e.event === 'show' && e.page_index === 1, 'page 1');
  // The pages are opened one after another: every tab here shares one address, and the
  // listener serves one address at most 8 connections at once (a phone's browser opens 6).
  const tabs = [];
  for (let i = 0; i < 10; i++) {
    const tab = await browser.tab({ ownContext: true });
    await tab.navigate(code);
    await tab.until(READY, 'the page');
    tabs.push(tab);
  }
  await Promise.all(tabs.map((tab, i) => tab.eval(`document.getElementById('name').value = 'Phone ${i}'; document.getElementById('join-button').click()`)));
  await Promise.all(tabs.map((tab, i) => showing(tab, song, 1, 'phone ' + i, 30000)));
});

test('a phone whose link goes silent says so, is back in step when it returns, and can leave', async () => {
  const song = await masterShows(FIRST);
  const ns = lan.phone();
  const phone = new Browser(ns);
  try {
    const tab = await phone.tab({ ownContext: true });
    await tab.navigate(code);
    await tab.until(READY, 'the page');
    await tab.eval("document.getElementById('name').value = 'Tenor 1'; document.getElementById('join-button').click()");
    const at = (await master.next((e) => e.event === 'roster' && e.members.some((m) => m.name === 'Tenor 1' && m.shows), 'the phone in its roster', 30000, true))
      .members.find((m) => m.name === 'Tenor 1').shows.page_index;
    await showing(tab, song, at, "the Master's page");

    // An idle link is not a silent one: what comes in keeps growing with no message sent
    // (the Master's connectivity checks), so the heartbeat never drops a quiet rehearsal.
    const idle = Number(await tab.until('document.body.dataset.linkIn', 'the heartbeat', 10000));
    await tab.until(`Number(document.body.dataset.linkIn) > ${idle}`, 'something coming in on an idle link', 20000);
    assert.equal(await tab.eval("document.body.dataset.phase"), 'FOLLOWER_CONNECTED_FOLLOW');

    // Nothing reaches the phone any more (a locked iPhone, a Wi-Fi gone quiet): no close event
    // comes (Chromium's own ICE checks give up only after about 30 s), and the heartbeat notices.
    loss(ns, 100);
    await tab.until("document.body.dataset.phase === 'FOLLOWER_REJOINING'", 'the silence noticed', 25000);
    assert.equal(await tab.eval('document.body.dataset.lostBy'), 'silence', 'the heartbeat noticed, no close event');
    master.send('page ' + (at + 1));
    loss(ns, 0);
    await showing(tab, song, at + 1, 'the page turned while it was away', 40000);
    await tab.until("document.body.dataset.phase === 'FOLLOWER_CONNECTED_FOLLOW'", 'joined again', 30000);

    // Leaving: the roster loses it at once, and the page forgets the session.
    const before = master.mark();
    await tab.eval("window.confirm = () => true; document.getElementById('leave').click()");
    await tab.until("document.getElementById('ended-text').textContent === 'You left the session.'", 'left');
    assert.equal(await tab.eval("localStorage.getItem('maestral.session')"), null, 'the token is forgotten');
    await master.next((e) => e.event === 'roster' && !e.members.some((m) => m.name === 'Tenor 1'), 'the roster without it', 20000, before);
  } finally {
    await phone.close();
  }
});
