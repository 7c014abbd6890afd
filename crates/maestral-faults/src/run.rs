//! One seeded run: a Master and its Followers on the simulated LAN, then a sequence of faults,
//! each followed by the checks of issue 17. Every wait is bounded; a failed check is a violation
//! in the report (and makes the run fail), never a hang.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::lan::Lan;
pub use crate::plan::Fault;
use crate::proc::{Device, is_show, names_host};
use crate::solo::Pair;

/// What to run.
#[derive(Debug, Clone)]
pub struct Config {
    /// The `maestral` binary.
    pub bin: PathBuf,
    /// The demo scores the Master switches between.
    pub scores: [PathBuf; 2],
    pub followers: usize,
    /// Hosts kept for a join storm (beyond the Master's and the Followers').
    pub storm: usize,
    /// Short outages and few turns (the bounded form in `cargo xtask test`).
    pub quick: bool,
}

/// What one fault did.
#[derive(Debug, Clone, Default)]
pub struct Row {
    pub fault: String,
    pub host: Option<usize>,
    /// From the fault to the first sign of it in the Follower's events (link or phase).
    pub notice_ms: Option<f64>,
    /// From the heal (or the restart's spawn) to every follow-mode Follower on the Master's page.
    pub converge_ms: Option<f64>,
    /// Page-update latencies during the fault, Master's show → Follower's show.
    pub latencies_ms: Vec<f64>,
    /// Page updates that never reached a follow-mode Follower.
    pub lost: u64,
    pub violations: Vec<String>,
    /// What the fault layer said of itself (the delay relay's packet counts).
    pub detail: Option<String>,
    /// (time since the run began, latency) of every page update, for the plot.
    pub samples: Vec<(f64, f64)>,
}

pub struct Run {
    cfg: Config,
    lan: Lan,
    master: Device,
    followers: Vec<Device>,
    /// The Solo pair, on the two hosts after the Followers'.
    solo: Pair,
    /// The Follower in free mode (index into `followers`) and the page it keeps.
    free: usize,
    free_page: u64,
    song: String,
    /// Every song the Master set, in order, with when it was asked to.
    songs: Vec<(String, Instant)>,
    page: u64,
    /// The Master's song's page count.
    count: u64,
    score: usize,
    code: String,
    /// Addresses the Master's host was given (`Fault::MasterMoves`).
    moves: u32,
    began: Instant,
    _dir: TempDir,
}

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::env::var_os("MAESTRAL_FAULTS_KEEP").is_some() {
            eprintln!("faults: kept the state and logs in {}", self.0.display());
            return;
        }
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// How long a Follower may take to be back on the Master's page once a fault is over: the
/// 1 s of docs/behaviour.md §2 plus the backoff cap (800 ms) and ICE's own timers, generous for 2
/// cores.
const CONVERGE: Duration = Duration::from_secs(30);

impl Run {
    pub fn start(cfg: Config) -> Result<Run> {
        // A failure that is `lan::NoNamespaces` means the run cannot be tried here (skipped).
        let lan = Lan::new(cfg.followers + 3 + cfg.storm).context("making the LAN's namespaces")?;
        let dir = std::env::temp_dir().join(format!("maestral-faults-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        let listen = format!("{}:0", lan.hosts[0].ip);
        let args = vec!["--choir-master".into(), "--listen".into(), listen];
        let mut master =
            Device::start(&cfg.bin, &lan.hosts[0].ns, "conductor", &dir.join("m"), &args)?;
        let began = Instant::now();
        let (ready, _) = master.expect(began, CONVERGE, "ready", |e| e["event"] == "ready")?;
        let code = ready["join_code"].as_str().context("a join code")?.to_owned();
        let mut followers = Vec::new();
        for i in 1..=cfg.followers {
            let name = format!("singer-{i}");
            let args = vec!["--join".to_owned(), code.clone()];
            followers.push(Device::start(
                &cfg.bin,
                &lan.hosts[i].ns,
                &name,
                &dir.join(&name),
                &args,
            )?);
        }
        for f in &mut followers {
            f.expect(began, CONVERGE, "its join", |e| {
                e["event"] == "phase" && e["phase"] == "FOLLOWER_CONNECTED_FOLLOW"
            })?;
        }
        let hosts = [cfg.followers + 1, cfg.followers + 2];
        let solo = Pair::start(&lan, hosts, &cfg.bin, &dir, &cfg.scores[0])?;
        let mut run = Run {
            cfg,
            lan,
            master,
            followers,
            solo,
            free: 0,
            free_page: 0,
            song: String::new(),
            songs: Vec::new(),
            page: 0,
            count: 1,
            score: 1,
            code,
            moves: 0,
            began,
            _dir: TempDir(dir),
        };
        run.change_song()?;
        // The last Follower browses freely.
        run.free = run.followers.len() - 1;
        let free = &mut run.followers[run.free];
        free.send("free");
        free.send("page 5");
        let song = run.song.clone();
        free.expect(began, CONVERGE, "its own page", |e| is_show(e, &song, 5))?;
        run.free_page = 5;
        Ok(run)
    }

    /// The Master's next song (the two scores in turn); every Follower, free ones too, shows
    /// its first page.
    fn change_song(&mut self) -> Result<()> {
        self.score = 1 - self.score;
        let since = Instant::now();
        let line = format!("song {}", self.cfg.scores[self.score].display());
        self.master.send(&line);
        let (shown, _) = self.master.expect(since, CONVERGE, "its song", |e| {
            e["event"] == "show" && e["song_id"].is_string() && e["page_index"] == 0
        })?;
        self.song = shown["song_id"].as_str().context("an id")?.to_owned();
        self.songs.push((self.song.clone(), since));
        self.count = shown["page_count"].as_u64().unwrap_or(1).max(1);
        self.page = 0;
        self.free_page = 0;
        let song = self.song.clone();
        for f in &mut self.followers {
            f.expect(since, CONVERGE, "the new song", |e| is_show(e, &song, 0))?;
        }
        Ok(())
    }

    /// One turn of the Master, once it shows it: the time its command was sent, from which
    /// page latencies count. Not the time its own show line came: that line comes from its main
    /// loop, which on a loaded machine prints it after the sync thread has sent the turn and
    /// Followers have shown it (their lines then came before it).
    fn turn(&mut self) -> Result<Instant> {
        let since = Instant::now();
        let next = self.page_after_turn();
        let line = if next < self.page { "prev" } else { "next" };
        self.master.send(line);
        let song = self.song.clone();
        self.master.expect(since, CONVERGE, "its turn", |e| is_show(e, &song, next))?;
        self.page = next;
        Ok(since)
    }

    fn follow_mode(&self) -> impl Iterator<Item = usize> + use<'_> {
        (0..self.followers.len()).filter(|i| *i != self.free)
    }

    /// Turns `n` times, `gap` apart; for each, how long every follow-mode Follower took to
    /// show it (`None`: never, within `limit`).
    fn turns(&mut self, n: usize, gap: Duration, row: &mut Row, skip: Option<usize>) -> Result<()> {
        let mut made = Vec::new();
        for _ in 0..n {
            made.push((self.page_after_turn(), self.turn()?));
            std::thread::sleep(gap);
        }
        let song = self.song.clone();
        let who: Vec<usize> = self.follow_mode().filter(|i| Some(*i) != skip).collect();
        for i in who {
            let f = &mut self.followers[i];
            for (k, (_, at)) in made.iter().enumerate() {
                // Delivered when the Follower shows this page, or a later turn's page (several
                // updates arriving together are shown once, as the latest).
                let later: Vec<u64> = made[k..].iter().map(|(p, _)| *p).collect();
                let shown = f.wait(*at, Duration::from_secs(10), |e| {
                    e["event"] == "show"
                        && e["song_id"] == song.as_str()
                        && e["page_index"].as_u64().is_some_and(|p| later.contains(&p))
                });
                // Or superseded: a later turn went back to the page the Follower still showed
                // (an update overtaken by the next one, on a two-page bounce, shows nothing).
                let kept = made[k + 1..].iter().map(|(p, t)| (*p, *t)).find(|(p, t)| {
                    f.shown_at(*t).is_some_and(|(s, shown)| s == song && shown == *p)
                });
                let delivered = match (shown.map(|(_, t)| t), kept.map(|(_, t)| t)) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
                match delivered {
                    Some(shown) => {
                        let ms = shown.saturating_duration_since(*at).as_secs_f64() * 1e3;
                        row.latencies_ms.push(ms);
                        row.samples.push((at.duration_since(self.began).as_secs_f64(), ms));
                    }
                    None => {
                        eprintln!("faults: {} never showed turn {k} (page {})", f.name, made[k].0);
                        row.lost += 1;
                    }
                }
            }
        }
        Ok(())
    }

    /// Forward through the song, back from its last page.
    fn page_after_turn(&self) -> u64 {
        if self.page + 1 >= self.count.max(2) { self.page.saturating_sub(1) } else { self.page + 1 }
    }

    /// Every follow-mode Follower shows the Master's page (from `since`); the time the last did.
    fn converged(&mut self, since: Instant, row: &mut Row) -> Option<Instant> {
        let (song, page) = (self.song.clone(), self.page);
        let mut last = since;
        let who: Vec<usize> = self.follow_mode().collect();
        for i in who {
            let f = &mut self.followers[i];
            match f.shown() {
                Some((s, p)) if s == song && p == page => {}
                _ => match f.wait(since, CONVERGE, |e| is_show(e, &song, page)) {
                    Some((_, at)) => last = last.max(at),
                    None => {
                        row.violations.push(format!("{} never came back to page {page}", f.name));
                        return None;
                    }
                },
            }
        }
        Some(last)
    }

    /// The Master's next address after a move (a DHCP renewal), one never used before.
    fn next_address(&mut self) -> std::net::Ipv4Addr {
        self.moves += 1;
        let n = self.moves;
        std::net::Ipv4Addr::new(10, 77, 200 + (n / 250 % 50) as u8, (n % 250 + 1) as u8)
    }

    /// The checks after every fault (issue 17, "Checks after each fault").
    fn check(&mut self, row: &mut Row) {
        let free = self.free;
        let (song, page) = (self.song.clone(), self.free_page);
        match self.followers[free].shown() {
            Some((s, p)) if s == song && p == page => {}
            other => row.violations.push(format!("the free Follower moved: shows {other:?}")),
        }
        if !self.master.alive() {
            row.violations.push("the Master died".into());
        }
        for f in &mut self.followers {
            if !f.alive() {
                row.violations.push(format!("{} died", f.name));
            }
            let shows: Vec<(&str, Instant)> = f
                .seen
                .iter()
                .filter(|(e, _)| e["event"] == "show")
                .filter_map(|(e, at)| Some((e["song_id"].as_str()?, *at)))
                .collect();
            if let Some(back) = older_song_after_newer(&shows, &self.songs) {
                row.violations.push(format!("{}: {back}", f.name));
            }
        }
    }

    /// The first sign of trouble in Follower `i`'s events after `since`.
    fn noticed(&mut self, i: usize, since: Instant, limit: Duration) -> Option<f64> {
        let f = &mut self.followers[i];
        f.wait(since, limit, |e| {
            (e["event"] == "link" && e["state"] != "CONNECTED")
                || (e["event"] == "phase" && e["phase"] != "FOLLOWER_CONNECTED_FOLLOW")
        })
        .map(|(_, at)| at.saturating_duration_since(since).as_secs_f64() * 1e3)
    }

    pub fn fault(&mut self, fault: Fault) -> Result<Row> {
        let mut row = Row { fault: fault.label(), ..Row::default() };
        let turns = if self.cfg.quick { 8 } else { 20 };
        match fault {
            Fault::Loss { percent, inbound, host } => {
                row.host = Some(host);
                self.lan.set_loss(host, percent, inbound)?;
                self.turns(turns, Duration::from_millis(150), &mut row, None)?;
                self.lan.set_loss(host, 0, inbound)?;
            }
            Fault::LinkDown { secs, host } => {
                row.host = Some(host);
                let i = host - 1;
                let down = Instant::now();
                self.lan.set_link(host, false)?;
                let away = Duration::from_secs(secs);
                let half = away / 2;
                std::thread::sleep(half);
                // One turn while it is away: the page it must come back to differs from the one
                // it showed (two turns on a two-page song would come back to it).
                self.turn()?;
                std::thread::sleep(away.saturating_sub(half));
                row.notice_ms = self.noticed(i, down, Duration::ZERO);
                self.lan.set_link(host, true)?;
                let healed = Instant::now();
                if let Some(at) = self.converged(healed, &mut row) {
                    row.converge_ms =
                        Some(at.saturating_duration_since(healed).as_secs_f64() * 1e3);
                }
            }
            Fault::KillFollower { host } => {
                row.host = Some(host);
                let i = host - 1;
                self.wait_kept(i)?;
                self.followers[i].kill();
                self.turn()?;
                let spawned = Instant::now();
                let bin = self.cfg.bin.clone();
                self.followers[i].restart(&bin)?;
                if let Some(at) = self.converged(spawned, &mut row) {
                    row.converge_ms =
                        Some(at.saturating_duration_since(spawned).as_secs_f64() * 1e3);
                }
                if i == self.free {
                    // A restarted free Follower comes back free, on the page it kept.
                    let (song, page) = (self.song.clone(), self.free_page);
                    let _ = self.followers[i].wait(spawned, CONVERGE, |e| is_show(e, &song, page));
                }
            }
            Fault::KillMaster => {
                let page = self.page;
                self.master.wait_state("master-session.json", CONVERGE, "its page", |v| {
                    v["state"]["page_index"] == page
                })?;
                let down = Instant::now();
                self.master.kill();
                row.notice_ms = self.noticed(0, down, CONVERGE);
                let spawned = Instant::now();
                let bin = self.cfg.bin.clone();
                self.master.restart(&bin)?;
                self.master.expect(spawned, CONVERGE, "its return", |e| e["event"] == "ready")?;
                // Back in step: every follow-mode Follower joined again (each notices the old
                // link gone on its own ICE timers) and on the Master's page.
                let mut last = spawned;
                let who: Vec<usize> = self.follow_mode().collect();
                for i in who {
                    let f = &mut self.followers[i];
                    match f.wait(spawned, CONVERGE, |e| {
                        e["event"] == "phase" && e["phase"] == "FOLLOWER_CONNECTED_FOLLOW"
                    }) {
                        Some((_, at)) => last = last.max(at),
                        None => row.violations.push(format!("{} never rejoined", f.name)),
                    }
                }
                if let Some(at) = self.converged(last, &mut row) {
                    let at = at.max(last);
                    row.converge_ms =
                        Some(at.saturating_duration_since(spawned).as_secs_f64() * 1e3);
                }
                self.turns(2, Duration::from_millis(100), &mut row, None)?;
            }
            Fault::MasterMovesWhileDown => {
                let page = self.page;
                self.master.wait_state("master-session.json", CONVERGE, "its page", |v| {
                    v["state"]["page_index"] == page
                })?;
                let to = self.next_address();
                self.master.kill();
                self.lan.readdress(0, to)?;
                let spawned = Instant::now();
                let bin = self.cfg.bin.clone();
                self.master.restart(&bin)?;
                // Its saved session resumes where the host's address is now.
                let (ready, _) = self
                    .master
                    .expect(spawned, CONVERGE, "its return", |e| e["event"] == "ready")?;
                let code = ready["join_code"].as_str().unwrap_or_default().to_owned();
                if !names_host(&code, to) {
                    row.violations.push(format!("the join code names another address: {code}"));
                }
                self.code = code;
                let mut last = spawned;
                let who: Vec<usize> = self.follow_mode().collect();
                for i in who {
                    let f = &mut self.followers[i];
                    match f.wait(spawned, CONVERGE, |e| {
                        e["event"] == "phase" && e["phase"] == "FOLLOWER_CONNECTED_FOLLOW"
                    }) {
                        Some((_, at)) => last = last.max(at),
                        None => row.violations.push(format!("{} never found it again", f.name)),
                    }
                }
                if let Some(at) = self.converged(last, &mut row) {
                    row.converge_ms =
                        Some(at.max(last).saturating_duration_since(spawned).as_secs_f64() * 1e3);
                }
                self.turns(2, Duration::from_millis(100), &mut row, None)?;
            }
            Fault::MasterMoves => {
                let to = self.next_address();
                let at = Instant::now();
                self.lan.readdress(0, to)?;
                // The Master sees its address gone and says its new join code.
                let (said, seen) = self
                    .master
                    .expect(at, CONVERGE, "a new join code", |e| e["event"] == "join_code")?;
                row.notice_ms = Some(seen.saturating_duration_since(at).as_secs_f64() * 1e3);
                let code = said["join_code"].as_str().unwrap_or_default().to_owned();
                if !names_host(&code, to) {
                    row.violations.push(format!("the new join code names another address: {code}"));
                }
                self.code = code;
                // One turn while they cannot reach it (two on a two-page song would come back
                // to the page they show). Singers holding the old code find the Master (locate)
                // and rejoin on their own.
                self.turn()?;
                if let Some(done) = self.converged(at, &mut row) {
                    row.converge_ms = Some(done.saturating_duration_since(at).as_secs_f64() * 1e3);
                }
                self.turns(2, Duration::from_millis(100), &mut row, None)?;
            }
            Fault::StopFollower { secs, host } => {
                row.host = Some(host);
                let i = host - 1;
                self.followers[i].signal("STOP")?;
                std::thread::sleep(Duration::from_secs(secs) / 2);
                self.turn()?;
                std::thread::sleep(Duration::from_secs(secs) / 2);
                self.followers[i].signal("CONT")?;
                let woke = Instant::now();
                if let Some(at) = self.converged(woke, &mut row) {
                    row.converge_ms = Some(at.saturating_duration_since(woke).as_secs_f64() * 1e3);
                }
            }
            Fault::JoinStorm { n } => self.storm(n, &mut row)?,
            Fault::Solo { what, pick } => {
                let bin = self.cfg.bin.clone();
                self.solo.fault(&self.lan, &bin, what, pick, &mut row)?;
            }
            Fault::Delay { min_ms, max_ms, inbound, host, seed } => {
                row.host = Some(host);
                let delay = self.lan.delay(host, min_ms, max_ms, inbound, seed)?;
                let turned = self.turns(turns, Duration::from_millis(150), &mut row, None);
                let (packets, reordered) = delay.stop()?;
                turned?;
                if packets == 0 {
                    row.violations
                        .push("the delay layer held no packet: nothing was delayed".into());
                }
                row.detail = Some(format!("{packets} packets delayed, {reordered} overtaken"));
            }
            Fault::SongChange => {
                let since = Instant::now();
                self.change_song()?;
                row.converge_ms = Some(since.elapsed().as_secs_f64() * 1e3);
                // The free Follower took the song change; it browses again.
                let free = self.free;
                self.followers[free].send("page 1");
                let song = self.song.clone();
                self.followers[free]
                    .expect(since, CONVERGE, "its own page", |e| is_show(e, &song, 1))?;
                self.free_page = 1;
            }
        }
        self.check(&mut row);
        Ok(row)
    }

    /// Waits until Follower `i` has written its session with the Master's current page.
    fn wait_kept(&self, i: usize) -> Result<()> {
        let page = self.page;
        self.followers[i].wait_state("follower-session.json", CONVERGE, "its session", |v| {
            v["session"]["master_page"] == page
        })
    }
}

/// Whether a device's shows (song id, when) went back to an older song after a newer one: each
/// show is of the latest of the Master's songs (`songs`, in order, with when each was set) that
/// has its id and was set by then, and those must never go back. `None`: they never did.
fn older_song_after_newer(
    shows: &[(&str, Instant)],
    songs: &[(String, Instant)],
) -> Option<String> {
    let mut newest: Option<usize> = None;
    for (song, at) in shows {
        let Some(k) = songs.iter().rposition(|(s, set)| s == song && set <= at) else {
            // A song the Master never set (its own library's, before it joined): not a change.
            continue;
        };
        match newest {
            Some(n) if k < n => {
                return Some(format!("showed song change {k} ({song}) after change {n}"));
            }
            _ => newest = Some(newest.map_or(k, |n| n.max(k))),
        }
    }
    None
}

mod end;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_device_that_goes_back_to_the_song_before_is_caught_and_one_that_follows_is_not() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        // A, then B at 100 ms, then A again at 200 ms.
        let songs =
            vec![("a".to_owned(), at(0)), ("b".to_owned(), at(100)), ("a".to_owned(), at(200))];
        let follows = [("a", at(10)), ("b", at(120)), ("a", at(230)), ("a", at(300))];
        assert_eq!(older_song_after_newer(&follows, &songs), None);
        let late_copy = [("a", at(10)), ("b", at(120)), ("a", at(150))];
        assert!(older_song_after_newer(&late_copy, &songs).is_some(), "A again before it was set");
        let unknown = [("mine", at(5)), ("a", at(10)), ("b", at(120))];
        assert_eq!(older_song_after_newer(&unknown, &songs), None);
    }
}
