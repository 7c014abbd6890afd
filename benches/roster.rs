//! `cargo xtask bench roster`: a headless Master with 20 headless Followers (21 processes on
//! loopback, real WebRTC), 5 of them free, measured from the Master's `roster` event lines
//! (docs/headless.md):
//!
//! - joined: process spawn → the roster lists all 20;
//! - after each Master turn: the Master's `next` → the first roster in which every
//!   follow-mode Follower shows the new page (the Followers' `SHOWING`, paced at most one per
//!   100 ms, and the Master's roster at most 4 a second);
//! - the roster event rate (most lines in any one second; goal ≤ 4);
//! - lagging: one follow-mode Follower stopped (SIGSTOP: its link stays up, it reports
//!   nothing), the Master turns: turn → that Follower marked lagging (goal: 1 s after the
//!   turn, plus at most one roster interval);
//! - the summary line the performing screen shows, e.g. "15/20 on p. 9 · 5 free".
//!
//! Results: target/bench/roster.json.

#[path = "../tests/support/mod.rs"]
mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use maestral_bench::{Summary, header, ms, write_report};
use serde_json::{Value, json};
use support::{App, TempDir, demo_score};

const FOLLOWERS: usize = 20;
const FREE: usize = 5;
const TURNS: u64 = 20; // even: the turns end on page 0

fn members(roster: &Value) -> &[Value] {
    roster["members"].as_array().map_or(&[], Vec::as_slice)
}

/// Every follow-mode member shows `page`.
fn all_following_on(roster: &Value, page: u64) -> bool {
    let m = members(roster);
    m.len() == FOLLOWERS
        && m.iter()
            .filter(|m| m["follow_mode"] == "follow")
            .all(|m| m["shows"]["page_index"] == page)
}

fn summary_line(roster: &Value, page: u64) -> String {
    let m = members(roster);
    let on = m.iter().filter(|m| m["shows"]["page_index"] == page && m["link"] == "CONNECTED");
    let free = m.iter().filter(|m| m["follow_mode"] == "free").count();
    let lagging = m.iter().filter(|m| m["lagging"] == true).count();
    let mut line = format!("{}/{} on p. {} · {free} free", on.count(), m.len(), page + 1);
    if lagging > 0 {
        line.push_str(&format!(" · {lagging} lagging"));
    }
    line
}

fn main() {
    let (cores, profile) = header("roster: a headless Master and 20 headless Followers");
    let dir = TempDir::new("bench-roster");
    let score = demo_score("lanterns-on-the-water.pdf");
    let started = Instant::now();
    let mut command = support::maestral();
    command
        .args(["--headless", "--choir-master", "--listen", "127.0.0.1:0", "--state-dir"])
        .arg(dir.0.join("master"))
        .arg(&score);
    let mut master = App::spawn(command);
    master.name = "the Master".into();
    let ready = master.wait("ready", |e| e["event"] == "ready");
    let code = ready["join_code"].as_str().expect("a join code").to_owned();

    let mut followers: Vec<App> = (0..FOLLOWERS)
        .map(|i| {
            let mut c = support::maestral();
            let name = if i == 0 { "stopped".to_owned() } else { format!("singer-{i:02}") };
            c.args(["--headless", "--join", &code, "--device-name", &name, "--state-dir"])
                .arg(dir.0.join(format!("f{i}")))
                .arg(&score);
            let mut app = App::spawn(c);
            app.name = name;
            app
        })
        .collect();
    for f in &mut followers {
        f.wait("following", |e| e["event"] == "phase" && e["phase"] == "FOLLOWER_CONNECTED_FOLLOW");
    }
    let (_, joined_at) = master.wait_at("all 20 in the roster", |e| {
        e["event"] == "roster" && members(e).len() == FOLLOWERS
    });
    let joined_ms = ms(joined_at.duration_since(started));
    for f in followers.iter_mut().rev().take(FREE) {
        f.send("free");
    }
    master.wait("5 free", |e| {
        e["event"] == "roster"
            && members(e).iter().filter(|m| m["follow_mode"] == "free").count() == FREE
    });

    // Turns: `next` → every follow-mode Follower shown on the new page in the roster.
    let mut converge = Vec::new();
    let mut last = Value::Null;
    // Back and forth (the demo score has 11 pages): next, prev, next, …
    for turn in 1..=TURNS {
        let (command, page) = if turn % 2 == 1 { ("next", 1) } else { ("prev", 0) };
        std::thread::sleep(Duration::from_millis(600));
        let sent = Instant::now();
        master.send(command);
        let (roster, at) = master.wait_at("the roster on the new page", |e| {
            e["event"] == "roster" && all_following_on(e, page)
        });
        converge.push(ms(at.duration_since(sent)));
        last = roster;
    }
    let line = summary_line(&last, TURNS % 2);

    // Lagging: stop one follow-mode Follower; turn; time to its `lagging`.
    let pid = followers[0].child.id().to_string();
    let stop = |sig: &str| Command::new("kill").args([sig, &pid]).status().map(|s| s.success());
    assert_eq!(stop("-STOP").ok(), Some(true), "SIGSTOP the Follower");
    std::thread::sleep(Duration::from_millis(600));
    let sent = Instant::now();
    master.send("next");
    let (_, at) = master.wait_at("the stopped Follower lagging", |e| {
        e["event"] == "roster"
            && members(e).iter().any(|m| m["name"] == "stopped" && m["lagging"] == true)
    });
    let lagging_ms = ms(at.duration_since(sent));
    let _ = stop("-CONT");

    // The event rate, over everything the Master printed.
    let mut times: Vec<f64> = Vec::new();
    let t0 = started;
    for (e, at) in master.seen_at() {
        if e["event"] == "roster" {
            times.push(at.duration_since(t0).as_secs_f64());
        }
    }
    let most_in_a_second =
        times.iter().map(|&t| times.iter().filter(|&&u| u >= t && u < t + 1.0).count()).max();

    for mut f in followers {
        f.send("quit");
        drop(f.child.wait());
    }
    assert!(master.quit().success());

    let report = json!({
        "cores": cores,
        "profile": profile,
        "followers": FOLLOWERS,
        "free": FREE,
        "all_joined_ms": joined_ms,
        "turn_to_roster_all_following_on_page_ms": Summary::of(&converge).map(|s| s.json_ms()),
        "roster_events_most_in_one_second": most_in_a_second,
        "turn_to_stopped_follower_lagging_ms": lagging_ms,
        "summary_line_after_the_turns": line,
    });
    println!("{}", serde_json::to_string_pretty(&report).unwrap_or_default());
    let goals = [
        ("roster events ≤ 4 a second", most_in_a_second.is_some_and(|n| n <= 4)),
        (
            "lagging marked 1 s after the turn (≤ 1.25 s)",
            (1000.0..=1250.0 + 50.0).contains(&lagging_ms),
        ),
    ];
    for (goal, met) in goals {
        println!("{goal}: {}", if met { "met" } else { "NOT met" });
    }
    write_report("roster", &report);
}
