//! Shared by the window test and the app benchmark: a virtual X display (Xvfb) with Mesa's
//! software Vulkan driver (lavapipe), and a `maestral` process driven by line commands.

#![allow(dead_code)]

pub mod restart;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use serde_json::Value;

/// Software rendering is slow, and a cold start compiles shaders: waits are generous.
pub const WAIT: Duration = Duration::from_secs(180);

const INSTALL: &str = "the window test needs a virtual X server and Mesa's software Vulkan \
    driver: on Debian/Ubuntu `apt-get install --no-install-recommends xvfb mesa-vulkan-drivers`";

/// The app's binary, as tests and benchmarks start it: through [`maestral`] or
/// [`VirtualDisplay::command`], never directly.
///
/// `MAESTRAL_BIN` when set: `cargo xtask test` sets it to the app's own build (`cargo build
/// -p maestral`, the binary a user gets, without the workspace's `test-support` features).
/// Otherwise cargo's binary of this test build, which a `cargo test --workspace` compiles with
/// them (dev-dependency features are unified across the workspace's test build).
fn binary() -> std::ffi::OsString {
    std::env::var_os("MAESTRAL_BIN").unwrap_or_else(|| env!("CARGO_BIN_EXE_maestral").into())
}

/// What every process a test or benchmark starts is given as `MAESTRAL_LOCATE`: `off`, so that
/// no locate query is broadcast onto the machine's network (`cargo xtask test` runs the tests
/// in a network namespace and fails if anything leaves it). `MAESTRAL_TEST_LOCATE` gives them
/// another value, e.g. `255.255.255.255`, to see that check fail.
pub fn locate() -> String {
    std::env::var("MAESTRAL_TEST_LOCATE").unwrap_or_else(|_| "off".into())
}

/// `maestral`, confined to this machine ([`locate`]).
pub fn maestral() -> Command {
    let mut c = Command::new(binary());
    c.env("MAESTRAL_LOCATE", locate());
    c
}

/// A running Xvfb and what an app needs to draw on it.
pub struct VirtualDisplay {
    xvfb: Child,
    pub display: String,
    pub vulkan_icd: PathBuf,
}

impl VirtualDisplay {
    /// Starts Xvfb on a free display number. Fails (never skips) with what to install when
    /// Xvfb or lavapipe is missing.
    pub fn start() -> VirtualDisplay {
        let xvfb = find_in_path("Xvfb").unwrap_or_else(|| panic!("Xvfb not found: {INSTALL}"));
        let vulkan_icd = lavapipe_icd().unwrap_or_else(|| {
            panic!("Mesa's lavapipe Vulkan driver (lvp_icd*.json) not found: {INSTALL}")
        });
        // Tests run side by side: each takes the next number, and owns it only if the lock
        // file Xvfb writes holds its process id.
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let first = 100 + (std::process::id() % 200) * 4;
        for _ in 0..100 {
            let number = first + NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let socket = PathBuf::from(format!("/tmp/.X11-unix/X{number}"));
            if socket.exists() || Path::new(&format!("/tmp/.X{number}-lock")).exists() {
                continue;
            }
            let mut child = Command::new(&xvfb)
                .arg(format!(":{number}"))
                .args(["-screen", "0", "1600x1000x24", "-nolisten", "tcp"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("could not start {}: {e}", xvfb.display()));
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if socket.exists() {
                    return VirtualDisplay {
                        xvfb: child,
                        display: format!(":{number}"),
                        vulkan_icd,
                    };
                }
                if child.try_wait().ok().flatten().is_some() {
                    break; // Taken meanwhile: try the next number.
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("Xvfb did not start on any display number from :{first}");
    }

    /// `maestral`, confined to this machine ([`locate`]), drawing on this display with lavapipe.
    pub fn command(&self) -> Command {
        let mut c = maestral();
        c.env("DISPLAY", &self.display)
            .env("WGPU_BACKEND", "vulkan")
            .env("VK_ICD_FILENAMES", &self.vulkan_icd)
            .env_remove("WAYLAND_DISPLAY");
        c
    }
}

impl Drop for VirtualDisplay {
    fn drop(&mut self) {
        let _ = self.xvfb.kill();
        let _ = self.xvfb.wait();
    }
}

fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join(name)).find(|p| p.is_file())
}

/// `VK_ICD_FILENAMES` if it names lavapipe, else Mesa's usual places.
fn lavapipe_icd() -> Option<PathBuf> {
    if let Some(set) = std::env::var_os("VK_ICD_FILENAMES") {
        let set = PathBuf::from(set);
        if set.is_file() {
            return Some(set);
        }
    }
    ["/usr/share/vulkan/icd.d", "/usr/local/share/vulkan/icd.d", "/etc/vulkan/icd.d"]
        .iter()
        .filter_map(|dir| std::fs::read_dir(dir).ok())
        .flat_map(|entries| entries.filter_map(Result::ok).map(|e| e.path()))
        .find(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("lvp_icd")))
}

/// A `maestral` process: commands in, JSON event lines out.
pub struct App {
    /// Names the process in failure messages.
    pub name: String,
    pub child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<(Instant, String)>,
    pub seen: Vec<Value>,
    /// When each line of `seen` was read.
    seen_times: Vec<Instant>,
}

impl App {
    pub fn spawn(command: Command) -> App {
        App::spawn_logging(command, app_stderr())
    }

    /// Like [`App::spawn`], with the app's log (standard error) going to `stderr`.
    pub fn spawn_logging(mut command: Command, stderr: Stdio) -> App {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("maestral starts");
        let stdout = child.stdout.take().expect("piped");
        let (tx, lines) = crossbeam_channel::unbounded();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send((Instant::now(), line)).is_err() {
                    break;
                }
            }
        });
        let stdin = child.stdin.take();
        App {
            name: "the app".into(),
            child,
            stdin,
            lines,
            seen: Vec::new(),
            seen_times: Vec::new(),
        }
    }

    pub fn send(&mut self, line: &str) {
        self.send_bytes(format!("{line}\n").as_bytes());
    }

    /// Sends raw bytes (which need not be UTF-8).
    pub fn send_bytes(&mut self, bytes: &[u8]) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        stdin.write_all(bytes).expect("the app reads its input");
        stdin.flush().expect("flush");
    }

    /// Closes the app's standard input (end of input).
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Waits for an event matching `want`, returning it with the time its line was read.
    pub fn wait_at(&mut self, what: &str, want: impl Fn(&Value) -> bool) -> (Value, Instant) {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let (at, line) = match self.lines.recv_timeout(left) {
                Ok(got) => got,
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                    panic!("{}: no {what} within {WAIT:?}; saw {:#?}", self.name, self.seen)
                }
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => panic!(
                    "{}: output ended before {what} (it exited: run with \
                     MAESTRAL_TEST_VERBOSE=1 for its log); saw {:#?}",
                    self.name, self.seen
                ),
            };
            let event: Value = serde_json::from_str(&line)
                .unwrap_or_else(|e| panic!("{}: not a JSON line ({e}): {line:?}", self.name));
            assert!(event["event"].is_string(), "{}: no event name: {line}", self.name);
            self.seen.push(event.clone());
            self.seen_times.push(at);
            if event["event"] == "error" {
                eprintln!("app error: {}", event["message"]);
            }
            if want(&event) {
                return (event, at);
            }
        }
    }

    /// Reads what the app says within `up_to` (into `seen`), without waiting for anything.
    pub fn drain(&mut self, up_to: Duration) {
        let deadline = Instant::now() + up_to;
        while let Ok((at, line)) =
            self.lines.recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            let event: Value = serde_json::from_str(&line)
                .unwrap_or_else(|e| panic!("{}: not a JSON line ({e}): {line:?}", self.name));
            self.seen.push(event);
            self.seen_times.push(at);
        }
    }

    /// Every event seen so far, with the time its line was read.
    pub fn seen_at(&self) -> impl Iterator<Item = (&Value, Instant)> {
        self.seen.iter().zip(self.seen_times.iter().copied())
    }

    /// An event matching `want` seen already, else the next one.
    pub fn seen_or_wait(&mut self, what: &str, want: impl Fn(&Value) -> bool) -> Value {
        match self.seen.iter().find(|e| want(e)) {
            Some(e) => e.clone(),
            None => self.wait(what, want),
        }
    }

    pub fn wait(&mut self, what: &str, want: impl Fn(&Value) -> bool) -> Value {
        self.wait_at(what, want).0
    }

    /// Waits for the swap that puts `pages` (window, page) on screen, each drawn for its box.
    pub fn wait_presented(&mut self, pages: &[(u64, u64)]) -> Value {
        let want: Vec<(u64, u64)> = pages.to_vec();
        self.wait(&format!("pages {want:?} presented"), move |e| {
            e["event"] == "presented"
                && e["pages"].as_array().is_some_and(|ps| {
                    want.iter().all(|(w, p)| {
                        ps.iter()
                            .any(|x| x["window"] == *w && x["page"] == *p && x["exact"] == true)
                    })
                })
        })
    }

    pub fn quit(mut self) -> std::process::ExitStatus {
        self.send("quit");
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(Instant::now() < deadline, "{} did not quit", self.name);
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for App {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The app's log: shown with `MAESTRAL_TEST_VERBOSE=1`, else dropped.
pub fn app_stderr() -> Stdio {
    if std::env::var_os("MAESTRAL_TEST_VERBOSE").is_some() {
        Stdio::inherit()
    } else {
        Stdio::null()
    }
}

/// A fresh folder, removed afterwards.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let dir =
            std::env::temp_dir().join(format!("maestral-{name}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The demo library (found from where cargo runs the test: `maestral_bench::workspace_root`).
pub fn demo_library() -> PathBuf {
    maestral_bench::workspace_root().join("assets/scores")
}

pub fn demo_score(name: &str) -> PathBuf {
    demo_library().join(name)
}
