// `cargo xtask bench browser`: browser Followers (headless Chromium, as phones) against a real
// headless Master. Each phone is a Chromium of its own in a network namespace of its own with an
// address of its own on one bridge (a room's phones are separate devices: the Master's
// per-address limits see one phone per address, as they would). Writes target/bench/browser.json.
//
// - scan → first page: a tab throttled 4× (a phone's CPU) at a phone's screen opens the code,
//   taps Join as soon as it can, and the Master's page is on screen (median and worst of 5),
//   with no other phone running;
// - 30 at once: 30 phones loaded, all tap Join together, until every one shows the Master's page;
// - turn → shown: the Master turns 50 times; each phone stamps when it learned of the turn and
//   when it swapped the new page in (its own clock, this machine's), against the moment the
//   turn was sent: p50 / p99 / max over every (turn, phone), the Master turning forward through
//   the score and back. All 30 phones decode on this machine's 2 cores, where a room has 30 CPUs:
//   "heard" is the link's share, "shown" adds each phone's decode and swap;
// - the same with 10 % of the UDP packets toward each phone dropped (nftables in its namespace);
// - the Master's CPU per browser per turn, and the bytes of each page image at 1170 px;
// - while joining and turning: how busy the machine's cores were and the Master's share of
//   them (the rest is the phones' Chromium processes).

import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { Browser } from './cdp.mjs';
import { ADDRESS, Lan, loss } from './lan.mjs';
import { Master } from './master.mjs';
import { READY, showing } from './page.mjs';

const ROOT = resolve(fileURLToPath(new URL('.', import.meta.url)), '..', '..');
const SCORE = resolve(ROOT, 'assets', 'scores', 'lanterns-on-the-water.pdf');
const TABS = Number(process.env.BENCH_TABS || 30);
const TURNS = 50;

function pct(sorted, p) {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

// The whole machine's busy and total CPU time so far, in ms (every core), from /proc/stat.
function machineMs() {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  const idle = f[3] + f[4];
  const total = f.slice(0, 8).reduce((a, b) => a + b, 0);
  return { busy: ((total - idle) * 1000) / 100, total: (total * 1000) / 100 };
}

// Of the machine's CPU time between `m0` and now, the share in use and the Master's share.
function shares(m0, masterMs) {
  const m1 = machineMs();
  const total = m1.total - m0.total;
  return { machine_busy_pct: Math.round((100 * (m1.busy - m0.busy)) / total), master_pct: Math.round((100 * masterMs) / total) };
}

function cpuMs(pid) {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return ((Number(f[11]) + Number(f[12])) * 1000) / 100; // utime + stime in clock ticks (100 Hz)
}

function shows(tab, song, page, timeoutMs, everyMs) {
  return showing(tab, song, page, 'page ' + page, timeoutMs, everyMs);
}

function summary(sorted, extra) {
  return Object.assign({ p50: pct(sorted, 50), p99: pct(sorted, 99), max: sorted[sorted.length - 1], samples: sorted.length }, extra);
}

// The Master turns `turns` times, forward through the score and back, as a conductor turns
// (never a jump); each phone's own stamps against the moment each turn was sent.
async function turns(master, tabs, song, turns) {
  const shown = [];
  const heard = [];
  let missed = 0;
  for (let k = 1; k <= turns; k++) {
    const page = 10 - Math.abs((k % 20) - 10);
    const sent = Date.now();
    master.send('page ' + page);
    const seen = await Promise.all(tabs.map((t) => shows(t, song, page, 10000, 200).catch(() => null)));
    seen.forEach((s) => {
      if (s === null) { missed++; return; }
      shown.push(s.at - sent);
      if (s.heard !== null) heard.push(s.heard - sent);
    });
    await new Promise((r) => setTimeout(r, 300));
  }
  shown.sort((a, b) => a - b);
  heard.sort((a, b) => a - b);
  return { shown, heard, missed };
}

async function main() {
  const lan = new Lan();
  const master = new Master(lan.ns, ADDRESS + ':0', resolve(ROOT, 'assets', 'scores'));
  const phones = [];
  const report = { tool: 'bench browser', phones: TABS, turns: TURNS, build: process.env.MAESTRAL_BUILD || 'unknown' };
  try {
    const ready = await master.next((e) => e.event === 'ready', 'ready', 120000, true);
    const code = ready.join_code;
    master.send('song ' + SCORE);
    const song = (await master.next((e) => e.event === 'show' && e.song_id !== null, 'the song', 60000)).song_id;

    // Scan → first page, as a phone (the only one running).
    const scanner = new Browser(lan.phone());
    phones.push(scanner);
    const firsts = [];
    for (let i = 0; i < 5; i++) {
      const tab = await scanner.tab({ ownContext: true });
      await tab.send('Emulation.setCPUThrottlingRate', { rate: 4 });
      await tab.send('Emulation.setDeviceMetricsOverride', { width: 390, height: 844, deviceScaleFactor: 3, mobile: true });
      const start = Date.now();
      await tab.navigate(code);
      await tab.until(READY, 'the page', 30000);
      await tab.eval("document.getElementById('join-button').click()");
      await shows(tab, song, 0, 30000);
      firsts.push(Date.now() - start);
      await scanner.send('Target.closeTarget', { targetId: tab.targetId });
    }
    firsts.sort((a, b) => a - b);
    report.scan_to_first_page_ms = { median: pct(firsts, 50), max: firsts[firsts.length - 1], samples: firsts, goal: 1500 };

    // 30 at once, each a phone of its own.
    const tabs = [];
    const ns = [];
    for (let i = 0; i < TABS; i++) {
      const where = i === 0 ? scanner : new Browser(lan.phone());
      if (i > 0) phones.push(where);
      ns.push(lan.phones[i]);
      const tab = await where.tab({ ownContext: true });
      await tab.navigate(code);
      await tab.until(READY, 'the page', 60000);
      tabs.push(tab);
    }
    await new Promise((r) => setTimeout(r, 3000)); // 30 browsers started: let the machine settle
    const mark = master.mark();
    const joinCpu0 = cpuMs(master.child.pid);
    const joinMachine0 = machineMs();
    const tapped = Date.now();
    await Promise.all(tabs.map((t) => t.eval("document.getElementById('join-button').click()")));
    const firstShown = await Promise.all(tabs.map((t) => shows(t, song, 0, 60000, 100)));
    const done = Date.now();
    // The Master's side of it: when each browser's link opened and when each was a member.
    const links = master.events.slice(mark).filter((e) => e.event === 'link' && e.state === 'CONNECTED').map((e) => e.seenAt - tapped);
    report.all_joined_ms = {
      value: done - tapped,
      last_link_open: links.length ? Math.max.apply(null, links) : null,
      links_open: links.length,
      last_page_shown: Math.max.apply(null, firstShown.map((s) => s.at - tapped)),
      master_cpu_ms: cpuMs(master.child.pid) - joinCpu0,
      cpu: shares(joinMachine0, cpuMs(master.child.pid) - joinCpu0),
      goal: 3000,
    };

    const pid = master.child.pid;
    const cpu0 = cpuMs(pid);
    const machine0 = machineMs();
    const clean = await turns(master, tabs, song, TURNS);
    const cpu = cpuMs(pid) - cpu0;
    report.turns_cpu = shares(machine0, cpu);
    report.turn_to_heard_ms = summary(clean.heard);
    report.turn_to_shown_ms = summary(clean.shown, { missed: clean.missed, goal_p99: 100 });
    report.master_cpu_ms_per_browser_per_turn = Number((cpu / (TURNS * TABS)).toFixed(3));

    ns.forEach((n) => loss(n, 10));
    const lossy = await turns(master, tabs, song, TURNS);
    ns.forEach((n) => loss(n, 0));
    report.loss_10pct_turn_to_heard_ms = summary(lossy.heard);
    report.loss_10pct_turn_to_shown_ms = summary(lossy.shown, { missed: lossy.missed, goal_p99: 300 });

    // Bytes per page image.
    const token = await tabs[0].eval("JSON.parse(localStorage.getItem('maestral.session')).token");
    const sizes = [];
    for (let p = 0; p < 11; p++) {
      sizes.push(await tabs[0].eval(`fetch('/v1/page?song=${song}&page=${p}&width=1170', {headers: {Authorization: 'Bearer ${token}'}}).then((r) => r.arrayBuffer()).then((b) => b.byteLength)`));
    }
    const type = await tabs[0].eval(`fetch('/v1/page?song=${song}&page=0&width=1170', {headers: {Authorization: 'Bearer ${token}'}}).then((r) => r.headers.get('content-type'))`);
    report.page_image_bytes_1170px = { format: type, pages: sizes, mean: Math.round(sizes.reduce((a, b) => a + b, 0) / sizes.length), max: Math.max.apply(null, sizes) };
  } finally {
    await Promise.all(phones.map((b) => b.close()));
    await master.close();
    lan.close();
  }
  const out = resolve(ROOT, 'target', 'bench');
  mkdirSync(out, { recursive: true });
  writeFileSync(resolve(out, 'browser.json'), JSON.stringify(report, null, 2) + '\n');
  console.log(JSON.stringify(report, null, 2));
}

main().catch((e) => {
  console.error('bench browser: ' + e.message);
  process.exit(1);
});
