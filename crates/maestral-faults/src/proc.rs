//! One headless `maestral` on a host of the LAN: its JSON events, each stamped when read.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::Value;

/// Whether a join code (either form: `HTTP://IP:PORT/#…` or `maestral://join?host=IP:PORT&…`)
/// names the Master at `ip`.
pub fn names_host(code: &str, ip: std::net::Ipv4Addr) -> bool {
    code.contains(&format!("host={ip}:"))
        || code.to_ascii_lowercase().starts_with(&format!("http://{ip}:"))
}

/// A `show` event of `song`'s page `page`.
pub fn is_show(e: &Value, song: &str, page: u64) -> bool {
    e["event"] == "show" && e["song_id"] == song && e["page_index"] == page
}

/// A `phase` event naming `phase`.
pub fn is_phase(e: &Value, phase: &str) -> bool {
    e["event"] == "phase" && e["phase"] == phase
}

pub struct Device {
    pub name: String,
    pub ns: String,
    pub state: PathBuf,
    child: Child,
    stdin: Option<ChildStdin>,
    events: Receiver<(Value, Instant)>,
    /// Every event so far, in order.
    pub seen: Vec<(Value, Instant)>,
    /// Killed on purpose (a death the checks expect).
    pub killed: bool,
}

impl Device {
    /// Starts `maestral --headless ARGS` in namespace `ns`, with its own state directory.
    pub fn start(
        bin: &Path,
        ns: &str,
        name: &str,
        state: &Path,
        args: &[String],
    ) -> Result<Device> {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", ns]).arg(bin).arg("--headless");
        command.args(["--device-id", name, "--device-name", name, "--state-dir"]).arg(state);
        command.args(args);
        // Locate as singers' devices have it: broadcast on each namespace's LAN, which is where
        // it is tested (whatever the harness itself was given).
        command.env("MAESTRAL_LOCATE", "lan");
        // Its log beside its state directory (kept with `MAESTRAL_FAULTS_KEEP=1`), a restart's
        // after the one before.
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(state.with_extension("log"))
            .map(Stdio::from)
            .unwrap_or_else(|_| Stdio::null());
        command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(log);
        let mut child = command.spawn().with_context(|| format!("could not start {name}"))?;
        let stdout = child.stdout.take().context("stdout")?;
        let stdin = child.stdin.take();
        let (tx, events) = std::sync::mpsc::channel();
        // Its events too, beside its log (kept with `MAESTRAL_FAULTS_KEEP=1`).
        let mut record = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(state.with_extension("events"))
            .ok();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if let Some(f) = record.as_mut() {
                    let _ = writeln!(f, "{:?} {line}", std::time::SystemTime::now());
                }
                if let Ok(v) = serde_json::from_str::<Value>(&line)
                    && tx.send((v, Instant::now())).is_err()
                {
                    return;
                }
            }
        });
        Ok(Device {
            name: name.into(),
            ns: ns.into(),
            state: state.into(),
            child,
            stdin,
            events,
            seen: Vec::new(),
            killed: false,
        })
    }

    pub fn send(&mut self, line: &str) {
        if let Some(stdin) = self.stdin.as_mut() {
            let _ = writeln!(stdin, "{line}");
            let _ = stdin.flush();
        }
    }

    /// Takes in what has come so far.
    pub fn pump(&mut self) {
        while let Ok(e) = self.events.try_recv() {
            self.seen.push(e);
        }
    }

    /// Waits up to `limit` for an event `want` accepts (one already seen counts only if it
    /// came at or after `since`).
    pub fn wait(
        &mut self,
        since: Instant,
        limit: Duration,
        want: impl Fn(&Value) -> bool,
    ) -> Option<(Value, Instant)> {
        self.pump();
        if let Some(found) = self.seen.iter().find(|(e, at)| *at >= since && want(e)) {
            return Some(found.clone());
        }
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Ok(e) => {
                    self.seen.push(e.clone());
                    if want(&e.0) {
                        return Some(e);
                    }
                }
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => return None,
            }
        }
    }

    /// Like [`Self::wait`], failing with `what` when nothing comes.
    pub fn expect(
        &mut self,
        since: Instant,
        limit: Duration,
        what: &str,
        want: impl Fn(&Value) -> bool,
    ) -> Result<(Value, Instant)> {
        match self.wait(since, limit, want) {
            Some(found) => Ok(found),
            None => bail!("{}: no {what} within {limit:?}", self.name),
        }
    }

    /// Waits until the state file `name` in its state directory parses and `want` accepts it
    /// (files are written aside, then renamed: one that parses is whole); fails after `limit`,
    /// saying it never kept `what`.
    pub fn wait_state(
        &self,
        name: &str,
        limit: Duration,
        what: &str,
        want: impl Fn(&Value) -> bool,
    ) -> Result<()> {
        let file = self.state.join(name);
        let deadline = Instant::now() + limit;
        while !std::fs::read(&file)
            .ok()
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
            .is_some_and(|v| want(&v))
        {
            if Instant::now() >= deadline {
                bail!("{} never kept {what}", self.name);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// The last page shown, and its song.
    pub fn shown(&mut self) -> Option<(String, u64)> {
        self.pump();
        self.shown_at(Instant::now())
    }

    /// The page shown at `at` (the last shown by then, as far as read), and its song.
    pub fn shown_at(&self, at: Instant) -> Option<(String, u64)> {
        self.seen
            .iter()
            .rev()
            .filter(|(_, t)| *t <= at)
            .find(|(e, _)| e["event"] == "show")
            .and_then(|(e, _)| Some((e["song_id"].as_str()?.to_owned(), e["page_index"].as_u64()?)))
    }

    pub fn signal(&self, sig: &str) -> Result<()> {
        // `ip netns exec` execs the app: the child's pid is the app's.
        crate::lan::sh("kill", &[&format!("-{sig}"), &self.child.id().to_string()])
    }

    /// SIGKILL, as a crash or a dead battery.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.killed = true;
    }

    /// Started again with only its state directory (it resumes what it kept).
    pub fn restart(&mut self, bin: &Path) -> Result<()> {
        let again = Device::start(bin, &self.ns, &self.name, &self.state, &[])?;
        let _ = std::mem::replace(self, again);
        Ok(())
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Quits (stdin `quit`), killed if it does not within 10 s. Whether it exited cleanly.
    pub fn quit(mut self) -> bool {
        self.send("quit");
        self.stdin = None;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match self.child.try_wait() {
                Ok(Some(st)) => return st.success(),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                _ => {
                    let _ = self.child.kill();
                    return false;
                }
            }
        }
    }
}

impl Drop for Device {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::names_host;

    #[test]
    fn a_join_code_of_either_form_names_its_host() {
        let ip = "10.77.200.2".parse().expect("address");
        assert!(names_host("HTTP://10.77.200.2:46047/#1.S.T.F", ip));
        assert!(names_host("maestral://join?host=10.77.200.2:46047&session=s", ip));
        assert!(!names_host("HTTP://10.77.200.21:46047/#1.S.T.F", ip));
        assert!(!names_host("HTTP://10.77.0.1:46047/#1.S.T.F", ip));
    }
}
