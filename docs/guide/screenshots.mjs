// `cargo xtask guide`: the performer's guide's pictures (docs/guide/*.png), taken from the real
// window: the app under Xvfb on Mesa's software Vulkan, driven through `--control` (key, tap,
// widget, screenshot), with headless Masters and Followers on loopback where a picture needs a
// session. Nothing here is drawn by hand: run it again after the UI changes.
//
// Needs MAESTRAL_BIN (the app) and MAESTRAL_PDFIUM (`cargo xtask guide` sets both), Xvfb, Mesa's
// lavapipe and xdotool (checked below, with what to install).

import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..');
const bin = process.env.MAESTRAL_BIN;
if (!bin) throw new Error('MAESTRAL_BIN must name the maestral binary (cargo xtask guide sets it)');
const score = join(root, 'assets', 'scores', 'lanterns-on-the-water.pdf');
const library = join(root, 'assets', 'scores');
const INSTALL = 'Debian: apt-get install --no-install-recommends xvfb mesa-vulkan-drivers xdotool';
const ICD_DIR = '/usr/share/vulkan/icd.d';
const lavapipe = existsSync(ICD_DIR) && readdirSync(ICD_DIR).find((f) => /^lvp_icd.*\.json$/.test(f));
if (!lavapipe) throw new Error(`Mesa's lavapipe Vulkan driver (lvp_icd*.json) not found: ${INSTALL}`);
for (const tool of ['Xvfb', 'xdotool']) {
  try {
    execFileSync('sh', ['-c', `command -v ${tool}`]);
  } catch (e) {
    throw new Error(`${tool} not found: ${INSTALL}`);
  }
}
const ICD = join(ICD_DIR, lavapipe);
const WAIT_MS = 180000; // software rendering, and shaders compiled on a cold start

// An app process (window or headless) read by its JSON event lines.
class App {
  constructor(name, args, env) {
    this.name = name;
    this.state = mkdtempSync(join(tmpdir(), 'maestral-guide-'));
    this.child = spawn(bin, [...args, '--state-dir', this.state], {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: Object.assign({}, process.env, { MAESTRAL_LOCATE: 'off' }, env),
    });
    this.events = [];
    this.waiters = [];
    this.log = '';
    this.child.stderr.on('data', (d) => { this.log = (this.log + d).slice(-4000); });
    createInterface({ input: this.child.stdout }).on('line', (line) => {
      let event;
      try { event = JSON.parse(line); } catch (e) { return; }
      this.events.push(event);
      this.waiters = this.waiters.filter((w) => !w(event));
    });
    this.exited = new Promise((resolve) => this.child.on('exit', resolve));
    this.display = env.DISPLAY;
  }

  send(line) {
    this.child.stdin.write(line + '\n');
  }

  // The first event `test` accepts, among those seen so far or to come.
  next(test, what, fromStart) {
    if (fromStart) {
      const found = this.events.find(test);
      if (found) return Promise.resolve(found);
    }
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(new Error(`${this.name} never said ${what}; its log ends:\n${this.log.slice(-1500)}`));
      }, WAIT_MS);
      this.waiters.push((e) => {
        if (!test(e)) return false;
        clearTimeout(timer);
        resolve(e);
        return true;
      });
    });
  }

  event(name, fromStart) {
    return this.next((e) => e.event === name, name, fromStart);
  }

  // Waits until the UI draws the widget `label` in view at the same place twice running (a
  // panel just opened settles, one scrolled to the widget moves it), and says where it is.
  async drawn(label) {
    const deadline = Date.now() + WAIT_MS;
    let last = null;
    for (;;) {
      this.send('widget ' + label);
      const e = await this.next((e) => e.event === 'widget' && e.label === label, `where "${label}" is`);
      if (e.drawn && last && last.x === e.x && last.y === e.y && last.width === e.width && last.height === e.height) return e;
      last = e.drawn ? e : null;
      if (Date.now() > deadline) throw new Error(`${this.name} never drew "${label}"`);
    }
  }

  // Waits until the UI no longer draws the widget `label`.
  async gone(label) {
    const deadline = Date.now() + WAIT_MS;
    for (;;) {
      this.send('widget ' + label);
      const e = await this.next((e) => e.event === 'widget' && e.label === label, `whether "${label}" is drawn`);
      if (!e.drawn) return;
      if (Date.now() > deadline) throw new Error(`${this.name} still draws "${label}"`);
    }
  }

  // Clicks the middle of the widget `label` with the real pointer (xdotool), as a finger would.
  async click(label) {
    const w = await this.drawn(label);
    const display = { env: Object.assign({}, process.env, { DISPLAY: this.display }) };
    const id = execFileSync('xdotool', ['search', '--onlyvisible', '--pid', String(this.child.pid)], display)
      .toString().trim().split('\n')[0];
    const at = [String(Math.round(w.x + w.width / 2)), String(Math.round(w.y + w.height / 2))];
    execFileSync('xdotool', ['mousemove', '--window', id, ...at], display);
    execFileSync('xdotool', ['click', '1'], display);
  }

  // A screenshot of the window once its pages are drawn (the app waits for that itself).
  async shot(file) {
    const path = join(here, file);
    this.send('screenshot ' + path);
    await this.next((e) => e.event === 'screenshot' && e.path === path, 'screenshot ' + file);
    console.log('guide: ' + join('docs', 'guide', file));
  }

  async close() {
    this.send('quit');
    const t = setTimeout(() => this.child.kill('SIGKILL'), 10000);
    await this.exited;
    clearTimeout(t);
    rmSync(this.state, { recursive: true, force: true });
  }
}

// Xvfb on a free display number.
async function display() {
  for (let n = 170; n < 200; n++) {
    if (existsSync(`/tmp/.X11-unix/X${n}`) || existsSync(`/tmp/.X${n}-lock`)) continue;
    const xvfb = spawn('Xvfb', [`:${n}`, '-screen', '0', '1600x1000x24', '-nolisten', 'tcp'], { stdio: 'ignore' });
    for (let i = 0; i < 100 && !existsSync(`/tmp/.X11-unix/X${n}`); i++) {
      await new Promise((r) => setTimeout(r, 100));
    }
    if (existsSync(`/tmp/.X11-unix/X${n}`)) return { xvfb, env: { DISPLAY: `:${n}`, VK_ICD_FILENAMES: ICD } };
    xvfb.kill();
  }
  throw new Error('could not start Xvfb on any display from :170 to :199');
}

function window(name, args, x) {
  return new App(name, [...args, '--control', '--window-size', '1280x800'], x.env);
}

async function solo(x) {
  const app = window('the Solo window', [score], x);
  await app.event('presented');
  await app.shot('performing.png');
  app.send('key Tab');
  await app.drawn('Pair with another device');
  await app.shot('panel.png');
  await app.click('Pair with another device');
  await app.gone('Pair with another device');
  await app.shot('pair.png');
  await app.close();

  const spread = new App('the two-up window', [score, '--control', '--window-size', '1600x1000', '--layout', 'two-up'], x.env);
  await spread.event('presented');
  spread.send('next');
  await spread.next((e) => e.event === 'show' && e.page_index > 0, 'the second spread');
  await spread.shot('two-up.png');
  await spread.close();
}

async function choir(x) {
  // A conductor's window and two singers' devices (headless, as automated peers are).
  const master = window('the Master window', [library, '--choir-master', '--listen', '127.0.0.1:0', '--device-name', 'Conductor'], x);
  const ready = await master.event('ready', true);
  master.send('song ' + score);
  await master.event('presented');
  master.send('key Tab');
  await master.click('Show to the room');
  await master.drawn('room view');
  await master.shot('room.png');
  await master.click('room view');
  await master.gone('room view');
  const singers = ['Alto 1', 'Tenor 2'].map((name, i) => new App(name, ['--headless', score, '--join', ready.join_code,
    '--device-id', `singer-${i}`, '--device-name', name], {}));
  await master.next((e) => e.event === 'roster' && e.members.length === 2 && e.members.every((m) => m.shows), 'two singers on its roster');
  master.send('next');
  await master.next((e) => e.event === 'roster' && e.members.every((m) => m.shows && m.shows.page_index === 1), 'the singers on page 2');
  await master.shot('master.png');
  master.send('key Tab');
  await master.drawn('End the session');
  await master.shot('master-panel.png');

  // A singer's window joined to the same session, following and then browsing freely.
  const singer = window('the Follower window', [score, '--join', ready.join_code, '--device-name', 'Soprano 3'], x);
  await singer.next((e) => e.event === 'show' && e.page_index === 1, 'the Master\'s page');
  await singer.shot('follower.png');
  singer.send('free');
  singer.send('next');
  await singer.next((e) => e.event === 'show' && e.page_index === 2, 'its own page');
  await singer.shot('follower-free.png');
  await singer.close();
  await Promise.all(singers.map((s) => s.close()));
  await master.close();
}

const x = await display();
try {
  await solo(x);
  await choir(x);
} finally {
  x.xvfb.kill();
}
