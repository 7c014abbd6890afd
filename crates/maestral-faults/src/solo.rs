//! A Solo pair on two hosts of the LAN, put through the same kinds of faults: after each, both
//! devices show the two halves of one spread, the spread of the latest page change made on
//! either (docs/behaviour.md §11.1: the latest change wins), and neither died.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::lan::Lan;
use crate::proc::{Device, is_phase, is_show};
use crate::run::Row;

/// What the seed chose to do to the pair (`side` 0 is the offering device, 1 the answering one).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SoloFault {
    /// `side`'s link down for `secs`; both turn while apart, `side` last.
    Apart { secs: u64, side: usize },
    /// `side` SIGKILLed; its partner turns; `side` started again with its state directory.
    Kill { side: usize },
    /// `side` drops `percent` % of the UDP it receives; both turn in turn.
    Loss { percent: u32, side: usize },
}

impl SoloFault {
    pub fn label(&self) -> String {
        match self {
            SoloFault::Apart { secs, .. } => format!("solo: apart {secs} s, both turn"),
            SoloFault::Kill { .. } => "solo: SIGKILL + restart".into(),
            SoloFault::Loss { percent, .. } => format!("solo: loss {percent}%"),
        }
    }
}

/// Bounded waits, as in run.rs.
const CONVERGE: Duration = Duration::from_secs(30);

pub struct Pair {
    /// Hosts of the two devices.
    hosts: [usize; 2],
    devices: [Device; 2],
    /// Which page of a spread each shows (0 the first, 1 the second).
    half: [u64; 2],
    song: String,
    /// The latest change: the spread both must show.
    spread: u64,
    /// Spreads of the song.
    spreads: u64,
}

impl Pair {
    /// Pairs two devices by codes on `hosts`, then opens `score` on the offering one.
    pub fn start(
        lan: &Lan,
        hosts: [usize; 2],
        bin: &Path,
        dir: &Path,
        score: &Path,
    ) -> Result<Pair> {
        let since = Instant::now();
        let host = |i: usize| &lan.hosts[hosts[i]].ns;
        let offer_args = vec!["--solo-offer".to_owned()];
        let mut a = Device::start(bin, host(0), "solo-left", &dir.join("solo-left"), &offer_args)?;
        let (ready, _) = a.expect(since, CONVERGE, "its offer", |e| e["event"] == "ready")?;
        let offer = ready["pair_code"].as_str().context("an offer code")?.to_owned();
        let answer_args = vec!["--solo-answer".to_owned(), offer];
        let mut b =
            Device::start(bin, host(1), "solo-right", &dir.join("solo-right"), &answer_args)?;
        let (ready, _) = b.expect(since, CONVERGE, "its answer", |e| e["event"] == "ready")?;
        a.send(ready["pair_code"].as_str().context("an answer code")?);
        for d in [&mut a, &mut b] {
            d.expect(since, CONVERGE, "its pairing", |e| is_phase(e, "SOLO_PAIRED_CONNECTED"))?;
        }
        a.send(&format!("song {}", score.display()));
        let (shown, _) = a.expect(since, CONVERGE, "the song", |e| {
            e["event"] == "show" && e["song_id"].is_string()
        })?;
        let song = shown["song_id"].as_str().context("an id")?.to_owned();
        let count = shown["page_count"].as_u64().unwrap_or(2).max(2);
        let ha = shown["page_index"].as_u64().context("a page")? % 2;
        let s = song.clone();
        b.expect(since, CONVERGE, "its half", move |e| is_show(e, &s, 1 - ha))?;
        Ok(Pair {
            hosts,
            devices: [a, b],
            half: [ha, 1 - ha],
            song,
            spread: 0,
            // Whole spreads only (an odd count's last spread has one page, shown on both).
            spreads: (count / 2).max(1),
        })
    }

    /// Another spread than the latest and than the one device `side` shows (a turn to the
    /// page it shows changes nothing), seeded by `pick`, as a `page N` on that device.
    fn change(&mut self, side: usize, pick: u64) -> (u64, Instant) {
        let shows = self.devices[side].shown().map(|(_, p)| p / 2);
        let mut spread = pick % self.spreads;
        for _ in 0..self.spreads {
            if spread != self.spread && Some(spread) != shows {
                break;
            }
            spread = (spread + 1) % self.spreads;
        }
        let at = Instant::now();
        // Any page of the spread moves both: the device's own half of it, here.
        self.devices[side].send(&format!("page {}", 2 * spread + self.half[side]));
        (spread, at)
    }

    /// Both show their half of `spread` (from `since`): when the later did.
    fn halves(&mut self, since: Instant, spread: u64, limit: Duration) -> Option<Instant> {
        let mut last = since;
        for side in 0..2 {
            let page = 2 * spread + self.half[side];
            let d = &mut self.devices[side];
            let song = self.song.clone();
            match d.shown() {
                Some((s, p)) if s == song && p == page => {}
                _ => last = last.max(d.wait(since, limit, |e| is_show(e, &song, page))?.1),
            }
        }
        Some(last)
    }

    pub fn fault(
        &mut self,
        lan: &Lan,
        bin: &Path,
        fault: SoloFault,
        seed: u64,
        row: &mut Row,
    ) -> Result<()> {
        match fault {
            SoloFault::Apart { secs, side } => {
                row.host = Some(self.hosts[side]);
                lan.set_link(self.hosts[side], false)?;
                let third = Duration::from_secs(secs) / 3;
                std::thread::sleep(third);
                // The partner turns first, the device that is away later: its change wins.
                let (first, _) = self.change(1 - side, seed);
                self.spread = first;
                std::thread::sleep(third);
                let (latest, _) = self.change(side, seed >> 8);
                self.spread = latest;
                std::thread::sleep(third);
                lan.set_link(self.hosts[side], true)?;
                let healed = Instant::now();
                self.converge(healed, row);
            }
            SoloFault::Kill { side } => {
                row.host = Some(self.hosts[side]);
                self.kept(side)?;
                self.devices[side].kill();
                // What the partner does while it is gone is the latest change.
                std::thread::sleep(Duration::from_millis(300));
                let (spread, _) = self.change(1 - side, seed);
                self.spread = spread;
                std::thread::sleep(Duration::from_millis(300));
                let spawned = Instant::now();
                self.devices[side].restart(bin)?;
                self.converge(spawned, row);
            }
            SoloFault::Loss { percent, side } => {
                row.host = Some(self.hosts[side]);
                lan.set_loss(self.hosts[side], percent, true)?;
                for k in 0..12u64 {
                    let by = (k % 2) as usize;
                    let (spread, at) = self.change(by, seed.rotate_left(k as u32 * 5));
                    self.spread = spread;
                    match self.halves(at, spread, Duration::from_secs(10)) {
                        Some(shown) => {
                            let ms = shown.saturating_duration_since(at).as_secs_f64() * 1e3;
                            row.latencies_ms.push(ms);
                        }
                        None => row.lost += 1,
                    }
                    std::thread::sleep(Duration::from_millis(150));
                }
                lan.set_loss(self.hosts[side], 0, true)?;
            }
        }
        for d in &mut self.devices {
            if !d.alive() {
                row.violations.push(format!("{} died", d.name));
            }
        }
        Ok(())
    }

    /// Both on the latest change's spread, timed from `since`.
    fn converge(&mut self, since: Instant, row: &mut Row) {
        let spread = self.spread;
        match self.halves(since, spread, CONVERGE) {
            Some(at) => {
                row.converge_ms = Some(at.saturating_duration_since(since).as_secs_f64() * 1e3)
            }
            None => {
                let shown: Vec<_> = self.devices.iter_mut().map(|d| d.shown()).collect();
                row.violations.push(format!(
                    "the pair is not on the latest change's spread {spread}: {shown:?}"
                ));
            }
        }
    }

    /// Waits until device `side` has written its pairing (with the way back to its partner).
    fn kept(&self, side: usize) -> Result<()> {
        self.devices[side].wait_state("solo-pairing.json", CONVERGE, "its pairing", |v| {
            v["partner"]["their_key"].is_string()
        })
    }

    /// Both devices, for the end's checks.
    pub fn devices(&self) -> impl Iterator<Item = &Device> {
        self.devices.iter()
    }

    /// Quits both; the names of those that did not quit cleanly.
    pub fn quit(self) -> Vec<String> {
        let mut bad = Vec::new();
        for d in self.devices {
            let name = d.name.clone();
            if !d.quit() {
                bad.push(name);
            }
        }
        bad
    }
}
