//! `cargo xtask bench app`: the app in a real window (Xvfb + Mesa lavapipe, as in the window
//! test), measured from outside through its control interface.
//!
//! - start-up: process spawn → first page on screen (the frame with it presented);
//! - page turn → presented frame, prefetched and cold (a jump to a page not drawn yet): wall
//!   time from writing the key to the app's `frame_presented` line, and frames from the input
//!   to the swap (0: the turn's own frame); cold: a jump to a page never drawn, a song change;
//! - idle: frames drawn and CPU used over 10 s with a score open and nothing happening;
//! - half-page turns (`--layout half`, a second window): the first press (the next page's top
//!   half over this page's bottom half) and the second (the whole next page), each from the
//!   key to its presented frame, in wall time and frames.
//!
//! Goals: prefetched turn ≤ 1 frame, each half-page turn press ≤ 1 frame, idle CPU < 1 % of a
//! core. Results: target/bench/app.json.

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use maestral_bench::{Summary, cpu_time, ms, write_report};
use serde_json::{Value, json};
use support::{App, TempDir, VirtualDisplay, demo_score};

const IDLE: Duration = Duration::from_secs(10);

fn stats(app: &mut App) -> Value {
    app.send("stats");
    app.wait("stats", |e| e["event"] == "stats")
}

/// Sends the lines, the last one timed; returns (ms to the presented frame, frames to the swap).
fn timed_turn(app: &mut App, lines: &[String], page: u64) -> (f64, u64) {
    let (last, first) = lines.split_last().expect("a line");
    for line in first {
        app.send(line);
    }
    let sent = Instant::now();
    app.send(last);
    let presented = app.wait_presented(&[(0, page)]);
    let (_, at) = app.wait_at("frame_presented", |e| e["event"] == "frame_presented");
    let frames = presented["since_turn_frames"].as_u64().unwrap_or(u64::MAX);
    (ms(at.duration_since(sent)), frames)
}

/// One half-page turn from `page`: the first press (`page + 1`'s top over `page`'s bottom),
/// then the second (`page + 1` whole); each as (ms to the presented frame, frames to the swap).
fn timed_half_turn(app: &mut App, page: u64) -> [(f64, u64); 2] {
    let mut press = |want: &[(u64, u64)], parts: usize| {
        let sent = Instant::now();
        app.send("key PageDown");
        let presented = app.wait_presented(want);
        assert_eq!(presented["pages"].as_array().map(Vec::len), Some(parts), "{presented}");
        let (_, at) = app.wait_at("frame_presented", |e| e["event"] == "frame_presented");
        (ms(at.duration_since(sent)), presented["since_turn_frames"].as_u64().unwrap_or(u64::MAX))
    };
    let first = press(&[(0, page + 1), (0, page)], 2);
    std::thread::sleep(Duration::from_millis(300));
    let second = press(&[(0, page + 1)], 1);
    [first, second]
}

/// The summary of a sample of milliseconds (null if there is none).
fn summary(samples: &[f64]) -> Value {
    Summary::of(samples).map_or(Value::Null, |s| s.json_ms())
}

fn main() {
    let display = VirtualDisplay::start();
    let dir = TempDir::new("bench-app");
    let score = demo_score("lanterns-on-the-water.pdf");

    let started = Instant::now();
    let mut command = display.command();
    command.args(["--control", "--window-size", "1280x800", "--state-dir"]).arg(&dir.0).arg(&score);
    let mut app = App::spawn(command);
    app.wait_presented(&[(0, 0)]);
    let (_, shown) = app.wait_at("frame_presented", |e| e["event"] == "frame_presented");
    let startup_ms = ms(shown.duration_since(started));

    // Prefetched turns: forward through the score, pausing so each next page is drawn ahead.
    let (mut prefetched, mut prefetched_frames) = (Vec::new(), Vec::new());
    for page in 1..=6u64 {
        std::thread::sleep(Duration::from_millis(600));
        let (ms, frames) = timed_turn(&mut app, &["key PageDown".into()], page);
        prefetched.push(ms);
        prefetched_frames.push(frames);
    }
    // Cold: pages never drawn before: a jump by number entry ("10" Enter: page index 9), and
    // a song change to the other demo score.
    let (mut cold, mut cold_frames) = (Vec::new(), Vec::new());
    let jump: Vec<String> = ["key 1", "key 0", "key Enter"].map(String::from).to_vec();
    let song = vec![format!("song {}", demo_score("harbour-lights-jig.pdf").display())];
    for (lines, page) in [(jump, 9u64), (song, 0)] {
        std::thread::sleep(Duration::from_millis(600));
        let (ms, frames) = timed_turn(&mut app, &lines, page);
        cold.push(ms);
        cold_frames.push(frames);
    }

    // Idle with the score open.
    std::thread::sleep(Duration::from_secs(1));
    let before = stats(&mut app);
    let cpu_before = cpu_time(app.child.id());
    let idle_start = Instant::now();
    std::thread::sleep(IDLE);
    let cpu_after = cpu_time(app.child.id());
    let idle_wall = idle_start.elapsed();
    let after = stats(&mut app);
    // The second `stats` command itself wakes one frame.
    let frames = after["frames"]
        .as_u64()
        .unwrap_or(0)
        .saturating_sub(before["frames"].as_u64().unwrap_or(0))
        .saturating_sub(1);
    let cpu_percent = match (cpu_before, cpu_after) {
        (Some(a), Some(b)) => Some(100.0 * (b - a).as_secs_f64() / idle_wall.as_secs_f64()),
        _ => None,
    };
    let status = app.quit();
    assert!(status.success());

    // Half-page turns, in a window of their own.
    let mut command = display.command();
    command
        .args(["--control", "--layout", "half", "--window-size", "1280x800", "--state-dir"])
        .arg(&dir.0)
        .arg(&score);
    let mut app = App::spawn(command);
    app.wait_presented(&[(0, 0)]);
    let (mut halves, mut completions) = (Vec::new(), Vec::new());
    let (mut half_frames, mut completion_frames) = (Vec::new(), Vec::new());
    for page in 0..6u64 {
        std::thread::sleep(Duration::from_millis(600));
        let [(h_ms, h_frames), (c_ms, c_frames)] = timed_half_turn(&mut app, page);
        halves.push(h_ms);
        half_frames.push(h_frames);
        completions.push(c_ms);
        completion_frames.push(c_frames);
    }
    assert!(app.quit().success());

    let result = json!({
        "profile": if cfg!(debug_assertions) { "dev" } else { "release" },
        "renderer": "Mesa lavapipe (software Vulkan) under Xvfb",
        "window": "1280x800",
        "startup_to_first_page_ms": startup_ms,
        "prefetched_turn_ms": summary(&prefetched),
        "prefetched_turn_frames_to_swap": prefetched_frames,
        "cold_turn_ms": summary(&cold),
        "cold_turn_frames_to_swap": cold_frames,
        "idle_seconds": idle_wall.as_secs_f64(),
        "idle_frames": frames,
        "idle_cpu_percent_of_a_core": cpu_percent,
        "half_turn_first_press_ms": summary(&halves),
        "half_turn_first_press_frames_to_swap": half_frames,
        "half_turn_second_press_ms": summary(&completions),
        "half_turn_second_press_frames_to_swap": completion_frames,
    });
    println!("{}", serde_json::to_string_pretty(&result).unwrap_or_default());
    let goals = [
        ("prefetched turn ≤ 1 frame", prefetched_frames.iter().all(|&f| f <= 1)),
        ("idle CPU < 1 % of a core", cpu_percent.is_some_and(|c| c < 1.0)),
        (
            "each half-page turn press ≤ 1 frame",
            half_frames.iter().chain(&completion_frames).all(|&f| f <= 1),
        ),
    ];
    for (goal, met) in goals {
        println!("{goal}: {}", if met { "met" } else { "NOT met" });
    }
    write_report("app", &result);
}
