//! `cargo xtask bench restart [--dev]`: how long a device killed mid-performance (SIGKILL) and
//! started again with only `--state-dir` takes to be back in step, 5 times per role, headless
//! processes over real WebRTC on loopback (tests/support/restart.rs, the same steps
//! tests/restart.rs checks):
//!
//! - Follower: spawn → it shows the page the Master turned to while it was away;
//! - Solo: spawn → it is paired again and shows its half of the spread its partner turned to
//!   while it was away (the two devices take turns being killed);
//! - Master: spawn → both of its Followers follow it again.
//!
//! Results: target/bench/restart.json.

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::Duration;

use maestral_bench::{Summary, header, ms, write_report};
use serde_json::json;
use support::TempDir;
use support::restart::{
    both_halves, follower, master, restart_follower, restart_master, restart_solo, show_song,
    solo_pair,
};

const ROUNDS: usize = 5;

fn turn(round: usize) -> &'static str {
    if round.is_multiple_of(2) { "next" } else { "prev" }
}

fn summary(samples: &[Duration]) -> serde_json::Value {
    let ms: Vec<f64> = samples.iter().map(|d| ms(*d)).collect();
    json!({"samples_ms": ms, "summary": Summary::of(&ms).map(|s| s.json_ms())})
}

fn main() {
    let (cores, profile) = header("restart: killed, started with only --state-dir, back in step");
    let root = TempDir::new("bench-restart");

    // Follower.
    let (mut m, code) = master(&root.0.join("m"));
    let song = show_song(&mut m, "lanterns-on-the-water.pdf");
    let f_dir = root.0.join("f");
    let mut f = follower("singer", &f_dir, &code, &song, 0);
    let mut follower_times = Vec::new();
    for round in 0..ROUNDS {
        let (back, took) = restart_follower(&mut m, f, &f_dir, &song, turn(round));
        follower_times.push(took);
        f = back;
    }
    let _ = f.quit();

    // Master (the Follower above and a second one).
    let mut followers = vec![
        f_back(&root, &code, &mut m, &song, "alto"),
        f_back(&root, &code, &mut m, &song, "tenor"),
    ];
    let mut master_times = Vec::new();
    for _ in 0..ROUNDS {
        let (back, took) = restart_master(m, &root.0.join("m"), &mut followers);
        master_times.push(took);
        m = back;
    }
    for f in followers {
        let _ = f.quit();
    }
    let _ = m.quit();

    // Solo: the two devices take turns.
    let (a_dir, b_dir) = (root.0.join("a"), root.0.join("b"));
    let (mut a, mut b) = solo_pair((&a_dir, &b_dir));
    let song = show_song(&mut a, "lanterns-on-the-water.pdf");
    both_halves(&mut a, &mut b, &song);
    let mut solo_times = Vec::new();
    for round in 0..ROUNDS {
        if round % 2 == 0 {
            let (back, took) = restart_solo(&mut a, b, &b_dir, &song, turn(round));
            b = back;
            solo_times.push(took);
        } else {
            let (back, took) = restart_solo(&mut b, a, &a_dir, &song, turn(round));
            a = back;
            solo_times.push(took);
        }
        both_halves(&mut a, &mut b, &song);
    }
    let _ = a.quit();
    let _ = b.quit();

    let report = json!({
        "cores": cores,
        "profile": profile,
        "rounds": ROUNDS,
        "follower_spawn_to_masters_page_ms": summary(&follower_times),
        "solo_spawn_to_partners_spread_ms": summary(&solo_times),
        "master_spawn_to_all_followers_following_ms": summary(&master_times),
    });
    println!("{}", serde_json::to_string_pretty(&report).unwrap_or_default());
    write_report("restart", &report);
}

/// A Follower joined now, on the Master's current page.
fn f_back(
    root: &TempDir,
    code: &str,
    m: &mut support::App,
    song: &str,
    name: &str,
) -> support::App {
    let page = support::restart::last_page(m).unwrap_or(0);
    follower(name, &root.0.join(name), code, song, page)
}
