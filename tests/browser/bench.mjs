// `cargo xtask bench browser`: browser Followers (headless Chromium, as phones) against a real
// headless Master, in a network namespace of their own. Writes target/bench/browser.json.
//
// - scan → first page: a tab throttled 4× (a phone's CPU) at a phone's screen opens the code,
//   taps Join as soon as it can, and the Master's page is on screen (median and worst of 5);
// - 30 at once: 30 tabs loaded, all tap Join together, until every one shows the Master's page;
// - turn → shown: the Master turns 50 times; each tab stamps when it swapped the new page in
//   (its own clock, this machine's), against the moment the turn was sent: p50 / p99 / max
//   over every (turn, tab), the Master turning forward through the score and back;
// - the Master's CPU per browser per turn, and the bytes of each page image at 1170 px.

import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { Browser } from './cdp.mjs';
import { ADDRESS, Lan } from './lan.mjs';
import { Master } from './master.mjs';

const ROOT = resolve(fileURLToPath(new URL('.', import.meta.url)), '..', '..');
const SCORE = resolve(ROOT, 'assets', 'scores', 'lanterns-on-the-water.pdf');
const TABS = Number(process.env.BENCH_TABS || 30);
const TURNS = 50;
const READY = "!!document.getElementById('join-button') && !document.getElementById('join-button').disabled";
const SHOWN = `(() => { const i = [...document.querySelectorAll('img.page')].find((i) => !i.hidden && i.dataset.song);
  return i ? { song: i.dataset.song, page: Number(i.dataset.page), at: Number(i.dataset.shownAt) } : null; })()`;

function pct(sorted, p) {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

function cpuMs(pid) {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return ((Number(f[11]) + Number(f[12])) * 1000) / 100; // utime + stime in clock ticks (100 Hz)
}

async function shows(tab, song, page, timeoutMs) {
  return tab.until(`(() => { const s = ${SHOWN}; return s && s.song === ${JSON.stringify(song)} && s.page === ${page} ? s : null; })()`, 'page ' + page, timeoutMs);
}

async function main() {
  const lan = new Lan();
  const master = new Master(lan.ns, ADDRESS + ':0', resolve(ROOT, 'assets', 'scores'));
  const browser = new Browser(lan.ns);
  const report = { tool: 'bench browser', tabs: TABS, turns: TURNS, build: process.env.MAESTRAL_BUILD || 'unknown' };
  try {
    const ready = await master.next((e) => e.event === 'ready', 'ready', 120000, true);
    const code = ready.join_code;
    master.send('song ' + SCORE);
    const song = (await master.next((e) => e.event === 'show' && e.song_id !== null, 'the song', 60000)).song_id;

    // Scan → first page, as a phone.
    const firsts = [];
    for (let i = 0; i < 5; i++) {
      const tab = await browser.tab({ ownContext: true });
      await tab.send('Emulation.setCPUThrottlingRate', { rate: 4 });
      await tab.send('Emulation.setDeviceMetricsOverride', { width: 390, height: 844, deviceScaleFactor: 3, mobile: true });
      const start = Date.now();
      await tab.navigate(code);
      await tab.until(READY, 'the page', 30000);
      await tab.eval("document.getElementById('join-button').click()");
      await shows(tab, song, 0, 30000);
      firsts.push(Date.now() - start);
      await browser.send('Target.closeTarget', { targetId: tab.targetId });
    }
    firsts.sort((a, b) => a - b);
    report.scan_to_first_page_ms = { median: pct(firsts, 50), max: firsts[firsts.length - 1], samples: firsts, goal: 1500 };

    // 30 at once.
    const tabs = [];
    for (let i = 0; i < TABS; i++) {
      const tab = await browser.tab({ ownContext: true });
      await tab.navigate(code);
      await tab.until(READY, 'the page', 30000);
      tabs.push(tab);
    }
    const tapped = Date.now();
    await Promise.all(tabs.map((t) => t.eval("document.getElementById('join-button').click()")));
    await Promise.all(tabs.map((t) => shows(t, song, 0, 60000)));
    report.all_joined_ms = { value: Date.now() - tapped, goal: 3000 };

    // Turns.
    const pid = master.child.pid;
    const cpu0 = cpuMs(pid);
    const lat = [];
    let missed = 0;
    for (let k = 1; k <= TURNS; k++) {
      // Forward through the score and back, as a conductor turns (never a jump).
      const page = 10 - Math.abs((k % 20) - 10);
      const sent = Date.now();
      master.send('page ' + page);
      const seen = await Promise.all(tabs.map((t) => shows(t, song, page, 10000).catch(() => null)));
      seen.forEach((s) => { if (s === null) missed++; else lat.push(s.at - sent); });
      await new Promise((r) => setTimeout(r, 100));
    }
    const cpu = cpuMs(pid) - cpu0;
    lat.sort((a, b) => a - b);
    report.turn_to_shown_ms = { p50: pct(lat, 50), p99: pct(lat, 99), max: lat[lat.length - 1], samples: lat.length, missed, goal_p99: 100 };
    report.master_cpu_ms_per_browser_per_turn = Number((cpu / (TURNS * TABS)).toFixed(3));

    // Bytes per page image.
    const token = await tabs[0].eval("JSON.parse(localStorage.getItem('maestral.session')).token");
    const sizes = [];
    for (let p = 0; p < 11; p++) {
      sizes.push(await tabs[0].eval(`fetch('/v1/page?song=${song}&page=${p}&width=1170', {headers: {Authorization: 'Bearer ${token}'}}).then((r) => r.arrayBuffer()).then((b) => b.byteLength)`));
    }
    report.page_image_bytes_1170px = { format: 'png, grey', pages: sizes, mean: Math.round(sizes.reduce((a, b) => a + b, 0) / sizes.length), max: Math.max.apply(null, sizes) };
  } finally {
    await browser.close();
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
