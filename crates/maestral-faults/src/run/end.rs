//! The last faults of a run: the join storm, and the end of the session with the checks that
//! only the end can make (the old code, every state file).

use std::time::{Duration, Instant};

use anyhow::Result;
use serde_json::Value;

use super::{CONVERGE, Row, Run};
use crate::proc::{Device, is_show};

impl Run {
    /// `n` Followers started within the same second on hosts of their own: the time until the
    /// last of them follows the Master, then a turn to all of them (its latencies), then they
    /// quit. Each must come in, none may die.
    pub(super) fn storm(&mut self, n: usize, row: &mut Row) -> Result<()> {
        let first = self.cfg.followers + 3;
        anyhow::ensure!(self.lan.hosts.len() >= first + n, "no hosts kept for {n} Followers");
        let started = Instant::now();
        let mut crowd = Vec::new();
        for k in 0..n {
            let host = &self.lan.hosts[first + k];
            let name = format!("crowd-{k}");
            let args = vec!["--join".to_owned(), self.code.clone()];
            let state = self._dir.0.join(&name);
            crowd.push(Device::start(&self.cfg.bin, &host.ns, &name, &state, &args)?);
        }
        let (song, page) = (self.song.clone(), self.page);
        let mut last = started;
        let deadline = started + Duration::from_secs(180);
        for d in &mut crowd {
            let left = deadline.saturating_duration_since(Instant::now());
            match d.wait(started, left, |e| is_show(e, &song, page)) {
                Some((_, at)) => last = last.max(at),
                None => row.violations.push(format!("{} never joined", d.name)),
            }
        }
        row.converge_ms = Some(last.saturating_duration_since(started).as_secs_f64() * 1e3);
        let at = self.turn()?;
        let (song, page) = (self.song.clone(), self.page);
        // One bound for the whole crowd (a Follower that never joined does not add 30 s each).
        let until = Instant::now() + Duration::from_secs(30);
        for d in &mut crowd {
            let left = until.saturating_duration_since(Instant::now());
            match d.wait(at, left, |e| is_show(e, &song, page)) {
                Some((_, shown)) => {
                    let ms = shown.saturating_duration_since(at).as_secs_f64() * 1e3;
                    row.latencies_ms.push(ms);
                    row.samples.push((at.duration_since(self.began).as_secs_f64(), ms));
                }
                None => row.lost += 1,
            }
        }
        for d in crowd {
            if !d.quit() {
                row.violations.push("a Follower of the crowd did not quit cleanly".into());
            }
        }
        Ok(())
    }

    /// The end of the session: every Follower goes local, and the old code joins no more.
    pub fn end(mut self) -> Result<Row> {
        let mut row = Row { fault: "end, then the old code".into(), ..Row::default() };
        let since = Instant::now();
        self.master.send("end");
        // A Follower connected at the end is told (SESSION_END) and goes local. One that was
        // away finds its rejoins refused; over HTTP those keep its membership for minutes
        // (issue 16), so it is only required never to be connected to the ended session.
        let mut told = 0;
        for f in &mut self.followers {
            let idle = f.wait(since, CONVERGE, |e| {
                e["event"] == "phase" && e["phase"] == "FOLLOWER_IDLE_LOCAL"
            });
            told += usize::from(idle.is_some());
            let back = f.seen.iter().any(|(e, at)| {
                *at > since + Duration::from_millis(500)
                    && e["event"] == "phase"
                    && e["phase"].as_str().is_some_and(|p| p.starts_with("FOLLOWER_CONNECTED"))
            });
            if back {
                row.violations.push(format!("{} is connected to the ended session", f.name));
            }
        }
        row.converge_ms = Some(since.elapsed().as_secs_f64() * 1e3);
        let all = self.followers.len();
        eprintln!("faults: {told} of {all} Followers left the ended session at once");
        let host = &self.lan.hosts[1];
        let state = self._dir.0.join("late");
        let args = vec!["--join".to_owned(), self.code.clone()];
        let mut late = Device::start(&self.cfg.bin, &host.ns, "late-singer", &state, &args)?;
        let joined = late.wait(since, Duration::from_secs(8), |e| {
            e["event"] == "phase" && e["phase"] == "FOLLOWER_CONNECTED_FOLLOW"
        });
        if joined.is_some() {
            row.violations.push("the old code joined an ended session".into());
        }
        // State files: every one still parses.
        for d in std::iter::once(&self.master).chain(&self.followers).chain(self.solo.devices()) {
            for entry in std::fs::read_dir(&d.state).into_iter().flatten().flatten() {
                let path = entry.path();
                if path.extension().is_some_and(|x| x == "json")
                    && std::fs::read(&path)
                        .ok()
                        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
                        .is_none()
                {
                    row.violations.push(format!("{} is damaged", path.display()));
                }
            }
        }
        let _ = late.quit();
        for name in self.solo.quit() {
            row.violations.push(format!("{name} did not quit cleanly"));
        }
        for f in self.followers.drain(..) {
            let name = f.name.clone();
            if !f.quit() {
                row.violations.push(format!("{name} did not quit cleanly"));
            }
        }
        Ok(row)
    }
}
