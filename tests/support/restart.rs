//! Devices that are killed (SIGKILL, nothing saved at exit) and started again with only their
//! state directory: a Follower, a Solo device, a Master. Shared by `tests/restart.rs` (what
//! comes back) and `benches/restart.rs` (how long it takes). Each function waits, bounded, for
//! the device to be back in step and returns the time from the new process's spawn to then.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{App, demo_library, demo_score};

/// `maestral --headless` on the demo library, as `name`, keeping its state in `dir`, with
/// `args` (none: what the device stored is resumed).
pub fn spawn(name: &str, dir: &Path, args: &[&str]) -> App {
    let mut command = super::maestral();
    command
        .arg("--headless")
        .arg(demo_library())
        .args(["--device-id", name, "--device-name", name, "--state-dir"])
        .arg(dir)
        .args(args);
    let mut app = App::spawn(command);
    app.name = name.into();
    app
}

/// Waits (bounded) until the state file `name` in `dir` holds what `ready` wants: the sync
/// thread writes (and fsyncs) on a thread of its own, and a device killed before its first
/// write has nothing to come back to.
pub fn kept(dir: &Path, name: &str, ready: impl Fn(&Value) -> bool) {
    let deadline = Instant::now() + super::WAIT;
    loop {
        let file = std::fs::read(dir.join(name)).ok();
        if file.and_then(|f| serde_json::from_slice::<Value>(&f).ok()).is_some_and(|v| ready(&v)) {
            return;
        }
        assert!(Instant::now() < deadline, "{name} in {} is never written", dir.display());
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Kills the process as a crash would: nothing runs at exit.
pub fn kill(mut app: App) {
    let _ = app.child.kill();
    let _ = app.child.wait();
}

pub fn is_show(e: &Value, song: &str, page: u64) -> bool {
    e["event"] == "show" && e["song_id"] == song && e["page_index"] == page
}

pub fn is_phase(e: &Value, phase: &str) -> bool {
    e["event"] == "phase" && e["phase"] == phase
}

/// The song id the demo score `file` gets (its `show` after a `song PATH`).
pub fn show_song(app: &mut App, file: &str) -> String {
    app.send(&format!("song {}", demo_score(file).display()));
    let shown = app.wait("the song shown", |e| e["event"] == "show" && e["song_id"].is_string());
    shown["song_id"].as_str().unwrap_or_default().to_owned()
}

/// The last page `app` said it shows.
pub fn last_page(app: &App) -> Option<u64> {
    app.seen.iter().rev().find(|e| e["event"] == "show").and_then(|e| e["page_index"].as_u64())
}

/// The song `app` last said it shows.
pub fn last_song(app: &App) -> Option<&str> {
    app.seen.iter().rev().find(|e| e["event"] == "show").and_then(|e| e["song_id"].as_str())
}

/// A Choir Master on loopback keeping its state in `dir`, and its join code.
pub fn master(dir: &Path) -> (App, String) {
    let mut m = spawn("conductor", dir, &["--choir-master", "--listen", "127.0.0.1:0"]);
    let ready = m.wait("ready", |e| e["event"] == "ready");
    let code = ready["join_code"].as_str().expect("a join code").to_owned();
    (m, code)
}

/// A Follower that joined with `code` and shows `song` at `page`.
pub fn follower(name: &str, dir: &Path, code: &str, song: &str, page: u64) -> App {
    let mut f = spawn(name, dir, &["--join", code]);
    f.wait("the Master's page", |e| is_show(e, song, page));
    f.seen_or_wait("following", |e| is_phase(e, "FOLLOWER_CONNECTED_FOLLOW"));
    f
}

/// The Follower is killed; the Master turns while it is away (`turn`: `next` or `prev`); the
/// Follower is started again with only `dir`. Returns it once it shows the Master's page.
pub fn restart_follower(
    master: &mut App,
    f: App,
    dir: &Path,
    song: &str,
    turn: &str,
) -> (App, Duration) {
    let name = f.name.clone();
    kept(dir, "follower-session.json", |v| v["join_code"].is_string());
    kill(f);
    master.send(turn);
    let page = page_after(master);
    let spawned = Instant::now();
    let mut f = spawn(&name, dir, &[]);
    let ready = f.wait("ready", |e| e["event"] == "ready");
    assert_eq!(ready["mode"], "choir_follower", "it rejoins as a Follower: {ready}");
    let (_, at) = f.wait_at("the Master's page", |e| is_show(e, song, page));
    f.seen_or_wait("following", |e| is_phase(e, "FOLLOWER_CONNECTED_FOLLOW"));
    (f, at - spawned)
}

/// The page the Master shows after the command just sent.
fn page_after(master: &mut App) -> u64 {
    let before = last_page(master);
    let shown = master
        .wait("the Master's turn", |e| e["event"] == "show" && e["page_index"].as_u64() != before);
    shown["page_index"].as_u64().expect("a page")
}

/// Two Solo devices paired by codes, keeping their state in `dirs`.
pub fn solo_pair(dirs: (&Path, &Path)) -> (App, App) {
    let mut a = spawn("left", dirs.0, &["--solo-offer"]);
    let ready = a.wait("ready", |e| e["event"] == "ready");
    let offer = ready["pair_code"].as_str().expect("an offer code").to_owned();
    let mut b = spawn("right", dirs.1, &["--solo-answer", &offer]);
    let ready = b.wait("ready", |e| e["event"] == "ready");
    let answer = ready["pair_code"].as_str().expect("an answer code").to_owned();
    a.send(&answer);
    a.wait("paired", |e| is_phase(e, "SOLO_PAIRED_CONNECTED"));
    b.wait("paired", |e| is_phase(e, "SOLO_PAIRED_CONNECTED"));
    (a, b)
}

/// Waits until `a` and `b` show the two halves of one spread of `song`; returns their pages.
pub fn both_halves(a: &mut App, b: &mut App, song: &str) -> (u64, u64) {
    let deadline = Instant::now() + super::WAIT;
    loop {
        let (pa, pb) = (last_page(a), last_page(b));
        if let (Some(pa), Some(pb)) = (pa, pb)
            && last_song(a) == Some(song)
            && last_song(b) == Some(song)
            && pa / 2 == pb / 2
            && pa != pb
        {
            return (pa, pb);
        }
        assert!(Instant::now() < deadline, "no spread shown in halves: {pa:?} {pb:?}");
        a.drain(Duration::from_millis(50));
        b.drain(Duration::from_millis(50));
    }
}

/// One Solo device is killed; its partner, alone, turns one page (`turn`); the device is
/// started again with only `dir`. Returns it once it is paired again and shows the other half
/// of the spread of the partner's page (the latest change), the partner still on its page.
pub fn restart_solo(
    partner: &mut App,
    victim: App,
    dir: &Path,
    song: &str,
    turn: &str,
) -> (App, Duration) {
    let name = victim.name.clone();
    // Its pairing is on disk, with the way back to the partner (its PAIR_INFO).
    kept(dir, "solo-pairing.json", |v| v["partner"]["their_key"].is_string());
    kill(victim);
    partner.wait("the drop-out", |e| is_phase(e, "SOLO_PAIRED_RECONNECTING"));
    partner.send(turn);
    let page = page_after(partner);
    // The partner turned last: it keeps its page, the device back shows the spread's other.
    let want = page ^ 1;
    let spawned = Instant::now();
    let mut v = spawn(&name, dir, &[]);
    let ready = v.wait("ready", |e| e["event"] == "ready");
    assert_eq!(ready["mode"], "solo", "{ready}");
    let seen = v.seen_at().find(|(e, _)| is_show(e, song, want)).map(|(_, at)| at);
    let at = match seen {
        Some(at) => at,
        None => v.wait_at("its half of the partner's spread", |e| is_show(e, song, want)).1,
    };
    v.seen_or_wait("paired again", |e| is_phase(e, "SOLO_PAIRED_CONNECTED"));
    partner.wait("paired again", |e| is_phase(e, "SOLO_PAIRED_CONNECTED"));
    assert_eq!(last_page(partner), Some(page), "no jump for the performer who turned last");
    (v, at - spawned)
}

/// The Master is killed and started again with only `dir`; returns it once every Follower is
/// following it again (each says `FOLLOWER_CONNECTED_FOLLOW` after its drop-out).
pub fn restart_master(master: App, dir: &Path, followers: &mut [App]) -> (App, Duration) {
    kept(dir, "master-session.json", |v| v["state"]["session_id"].is_string());
    kill(master);
    for f in followers.iter_mut() {
        f.wait("the drop-out", |e| {
            is_phase(e, "FOLLOWER_REJOINING") || is_phase(e, "FOLLOWER_DISCONNECTED_LOCAL")
        });
    }
    let spawned = Instant::now();
    let mut m = spawn("conductor", dir, &[]);
    let ready = m.wait("ready", |e| e["event"] == "ready");
    assert_eq!(ready["mode"], "choir_master", "{ready}");
    let mut back = spawned;
    for f in followers.iter_mut() {
        let (_, at) = f.wait_at("following again", |e| is_phase(e, "FOLLOWER_CONNECTED_FOLLOW"));
        back = back.max(at);
    }
    (m, back - spawned)
}

/// Fresh state directories under `root`.
pub fn dirs(root: &Path, names: &[&str]) -> Vec<PathBuf> {
    names.iter().map(|n| root.join(n)).collect()
}
