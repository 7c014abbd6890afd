//! The sync engine's throughput: protocol messages applied per second on one core.
//!
//! `cargo xtask bench engine` (or `cargo bench -p maestral-sync --bench engine`). Every row is
//! measured on this one thread: a warm-up run, then 5 timed runs of N inputs each, reporting the
//! median. Inputs are encoded before the clock starts; every input is followed by draining
//! `poll_output`, as a real driver must. The table goes to stdout and the numbers to
//! `<workspace>/target/bench/engine.json`.

// Benchmarks measure wall time: `Instant::now` is what this file is for (the crate's clippy.toml
// keeps clocks out of the engine itself).
#![allow(clippy::disallowed_methods)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use maestral_bench::{median_duration, write_report};
use maestral_protocol::{
    ChoirSetPage, ChoirSnapshot, DeviceId, Envelope, FollowMode, JoinAccept, JoinRequest, Message,
    PageRevision, SessionId, SetFollowMode, SongEpoch, SongId, decode,
};
use maestral_sync::{Engine, EngineConfig, LinkSignal, LocalAction, Output, Phase, Role};
use rand_chacha::ChaCha8Rng;
use rand_core::SeedableRng;

/// Messages per second the engine should apply on one core.
const GOAL_MSGS_PER_S: f64 = 1_000_000.0;
const RUNS: usize = 5;
const FOLLOWERS: usize = 100;
const T0: u64 = 1_735_689_600_000;

fn engine(id: &str, role: Role) -> Engine {
    Engine::new(EngineConfig::new(id), role, Box::new(ChaCha8Rng::seed_from_u64(1)))
}

/// Drains the output queue; returns how many `Transmit`s it held.
fn drain(e: &mut Engine) -> usize {
    let mut transmits = 0;
    while let Some(out) = e.poll_output() {
        if let Output::Transmit { .. } = black_box(out) {
            transmits += 1;
        }
    }
    transmits
}

fn wire(session: &str, sender: &str, ts: u64, message: Message) -> String {
    Envelope::new(SessionId::from(session), DeviceId::from(sender), ts, message).encode()
}

fn set_page(revision: u64, page: u32) -> Message {
    Message::ChoirSetPage(ChoirSetPage {
        song_epoch: SongEpoch(1),
        page_revision: PageRevision(revision),
        page_index: page,
    })
}

/// A Follower "F" joined to Master "M" in session "S", song epoch 1, revision 0, following.
fn joined_follower() -> Engine {
    let master = DeviceId::from("M");
    let mut e = engine("F", Role::Follower);
    e.handle_local(
        T0,
        LocalAction::Join { master: master.clone(), session_id: "S".into(), token: "tok".into() },
    )
    .expect("join");
    e.handle_link(T0, &master, LinkSignal::Up);
    let accept = wire(
        "S",
        "M",
        T0,
        Message::JoinAccept(JoinAccept {
            snapshot: ChoirSnapshot {
                session_id: SessionId::from("S"),
                song_id: Some(SongId::from("song")),
                song_epoch: SongEpoch(1),
                page_index: 0,
                page_revision: PageRevision(0),
            },
        }),
    );
    e.handle_message(T0, &master, accept.as_bytes()).expect("JOIN_ACCEPT");
    drain(&mut e);
    assert_eq!(e.phase(), Phase::FollowerConnectedFollow);
    e
}

fn follower_id(i: usize) -> DeviceId {
    DeviceId(format!("F{i:03}"))
}

/// A Master "M" in session "S" (token "tok") with `FOLLOWERS` joined, following Followers.
fn master_with_followers() -> Engine {
    let mut e = engine("M", Role::Master);
    e.handle_local(
        T0,
        LocalAction::StartSession { session_id: Some("S".into()), token: Some("tok".into()) },
    )
    .expect("start session");
    drain(&mut e);
    for i in 0..FOLLOWERS {
        let f = follower_id(i);
        e.handle_link(T0, &f, LinkSignal::Up);
        let req = wire(
            "S",
            f.as_str(),
            T0,
            Message::JoinRequest(JoinRequest {
                session_token: "tok".into(),
                follow_mode: FollowMode::Follow,
                song_epoch: SongEpoch(0),
            }),
        );
        e.handle_message(T0, &f, req.as_bytes()).expect("JOIN_REQUEST");
        drain(&mut e);
    }
    assert_eq!(e.master_members().len(), FOLLOWERS);
    assert_eq!(e.phase(), Phase::MasterSessionActive);
    e
}

// ---- measurement -----------------------------------------------------------------------------

struct Row {
    name: &'static str,
    /// Inputs per timed run.
    inputs: usize,
    /// Median wall time of one run.
    median: Duration,
    /// Rows with more than one message out per input: (what, per input).
    out_per_input: Option<(&'static str, f64)>,
    /// The goal applies to the messages out (local page turns), not to the inputs.
    goal_on_output: bool,
}

impl Row {
    fn ns_per_msg(&self) -> f64 {
        self.median.as_nanos() as f64 / self.inputs as f64
    }
    fn msgs_per_s(&self) -> f64 {
        self.inputs as f64 / self.median.as_secs_f64()
    }
    /// The figure compared with the goal.
    fn goal_figure(&self) -> f64 {
        match self.out_per_input {
            Some((_, per)) if self.goal_on_output => self.msgs_per_s() * per,
            _ => self.msgs_per_s(),
        }
    }
}

/// Runs `setup` then `timed` once to warm up and `RUNS` times measured; `timed` returns the
/// elapsed time of its own timed section (setup and checks stay outside the clock).
fn measure<S>(mut setup: impl FnMut() -> S, mut timed: impl FnMut(S) -> Duration) -> Duration {
    timed(setup());
    let times: Vec<Duration> = (0..RUNS).map(|_| timed(setup())).collect();
    median_duration(&times).unwrap_or_default()
}

/// Row 1: a following Follower applying `SET_PAGE`s of increasing revision.
fn follower_set_page(n: usize) -> Row {
    let master = DeviceId::from("M");
    let msgs: Vec<String> =
        (1..=n).map(|i| wire("S", "M", T0 + i as u64, set_page(i as u64, i as u32))).collect();
    let median = measure(joined_follower, |mut e| {
        let start = Instant::now();
        for m in &msgs {
            let _ = black_box(e.handle_message(T0, &master, m.as_bytes()));
            drain(&mut e);
        }
        let elapsed = start.elapsed();
        // The work was real: the Follower shows the last page.
        assert_eq!(e.view().page_index, n as u32);
        elapsed
    });
    Row {
        name: "follower: apply SET_PAGE",
        inputs: n,
        median,
        out_per_input: None,
        goal_on_output: false,
    }
}

/// Row 2: the same Follower discarding `SET_PAGE`s that are not newer (stale and duplicates).
fn follower_stale_set_page(n: usize) -> Row {
    let master = DeviceId::from("M");
    let top = n as u64 + 10;
    let newest = wire("S", "M", T0, set_page(top, 7));
    // Revisions 1..n below the newest, every other one repeating the newest exactly.
    let msgs: Vec<String> = (1..=n)
        .map(|i| {
            if i.is_multiple_of(2) {
                newest.clone()
            } else {
                wire("S", "M", T0, set_page(i as u64, 3))
            }
        })
        .collect();
    let setup = || {
        let mut e = joined_follower();
        e.handle_message(T0, &master, newest.as_bytes()).expect("SET_PAGE");
        drain(&mut e);
        assert_eq!(e.view().page_index, 7);
        e
    };
    let median = measure(setup, |mut e| {
        let start = Instant::now();
        for m in &msgs {
            let _ = black_box(e.handle_message(T0, &master, m.as_bytes()));
            drain(&mut e);
        }
        let elapsed = start.elapsed();
        assert_eq!(e.view().page_index, 7, "a stale SET_PAGE was applied");
        elapsed
    });
    Row {
        name: "follower: discard stale/duplicate SET_PAGE",
        inputs: n,
        median,
        out_per_input: None,
        goal_on_output: false,
    }
}

/// For reference: row 1 with the decoding done beforehand (`handle_envelope`).
fn follower_set_page_predecoded(n: usize) -> Row {
    let master = DeviceId::from("M");
    let envs: Vec<Envelope> = (1..=n)
        .map(|i| {
            Envelope::new(
                SessionId::from("S"),
                master.clone(),
                T0 + i as u64,
                set_page(i as u64, i as u32),
            )
        })
        .collect();
    let median = measure(
        || (joined_follower(), envs.clone()),
        |(mut e, envs)| {
            let start = Instant::now();
            for env in envs {
                let _ = black_box(e.handle_envelope(T0, &master, env));
                drain(&mut e);
            }
            let elapsed = start.elapsed();
            assert_eq!(e.view().page_index, n as u32);
            elapsed
        },
    );
    Row {
        name: "follower: apply SET_PAGE, pre-decoded (ref.)",
        inputs: n,
        median,
        out_per_input: None,
        goal_on_output: false,
    }
}

/// The inputs of row 3: message i comes from Follower i % 100; each Follower alternates free,
/// follow, free, ... Returns them with how many switch to follow (one snapshot out each).
fn follow_mode_inputs(n: usize) -> (Vec<(usize, Envelope)>, usize) {
    let envs: Vec<(usize, Envelope)> = (0..n)
        .map(|i| {
            let f = i % FOLLOWERS;
            let mode = if (i / FOLLOWERS).is_multiple_of(2) {
                FollowMode::Free
            } else {
                FollowMode::Follow
            };
            let m = Message::SetFollowMode(SetFollowMode { mode });
            (f, Envelope::new(SessionId::from("S"), follower_id(f), T0, m))
        })
        .collect();
    let follows = envs
        .iter()
        .filter(|(_, e)| {
            matches!(&e.message, Message::SetFollowMode(m) if m.mode == FollowMode::Follow)
        })
        .count();
    (envs, follows)
}

/// Row 3: a Master with 100 Followers applying `SET_FOLLOW_MODE`s; each `follow` is answered
/// with a `STATE_SNAPSHOT`.
fn master_set_follow_mode(n: usize) -> Row {
    let froms: Vec<DeviceId> = (0..FOLLOWERS).map(follower_id).collect();
    let (envs, expected_snapshots) = follow_mode_inputs(n);
    let msgs: Vec<(usize, String)> = envs.iter().map(|(f, e)| (*f, e.encode())).collect();
    let median = measure(master_with_followers, |mut e| {
        let mut snapshots = 0;
        let start = Instant::now();
        for (f, m) in &msgs {
            let _ = black_box(e.handle_message(T0, &froms[*f], m.as_bytes()));
            snapshots += drain(&mut e);
        }
        let elapsed = start.elapsed();
        assert_eq!(snapshots, expected_snapshots, "one STATE_SNAPSHOT per switch to follow");
        elapsed
    });
    Row {
        name: "master x100: apply SET_FOLLOW_MODE",
        inputs: n,
        median,
        out_per_input: Some(("STATE_SNAPSHOT out", expected_snapshots as f64 / n as f64)),
        goal_on_output: false,
    }
}

/// For reference: row 3 with the decoding done beforehand (`handle_envelope`).
fn master_set_follow_mode_predecoded(n: usize) -> Row {
    let froms: Vec<DeviceId> = (0..FOLLOWERS).map(follower_id).collect();
    let (envs, expected_snapshots) = follow_mode_inputs(n);
    let median = measure(
        || (master_with_followers(), envs.clone()),
        |(mut e, envs)| {
            let mut snapshots = 0;
            let start = Instant::now();
            for (f, env) in envs {
                let _ = black_box(e.handle_envelope(T0, &froms[f], env));
                snapshots += drain(&mut e);
            }
            let elapsed = start.elapsed();
            assert_eq!(snapshots, expected_snapshots, "one STATE_SNAPSHOT per switch to follow");
            elapsed
        },
    );
    Row {
        name: "master x100: SET_FOLLOW_MODE, pre-decoded (ref.)",
        inputs: n,
        median,
        out_per_input: Some(("STATE_SNAPSHOT out", expected_snapshots as f64 / n as f64)),
        goal_on_output: false,
    }
}

/// Row 4: a Master with 100 Followers turning pages locally: one `SET_PAGE` encoded, 100
/// `Transmit`s out per turn.
fn master_next_page(n: usize) -> Row {
    let median = measure(master_with_followers, |mut e| {
        let mut transmits = 0;
        let start = Instant::now();
        for i in 0..n {
            let _ = black_box(e.handle_local(T0 + i as u64, LocalAction::NextPage));
            transmits += drain(&mut e);
        }
        let elapsed = start.elapsed();
        assert_eq!(transmits, n * FOLLOWERS);
        assert_eq!(e.view().page_index, n as u32);
        elapsed
    });
    Row {
        name: "master x100: local NextPage (turns)",
        inputs: n,
        median,
        out_per_input: Some(("SET_PAGE out", FOLLOWERS as f64)),
        goal_on_output: true,
    }
}

/// Row 5: `decode` alone on a Choir `SET_PAGE`.
fn decode_set_page(n: usize) -> Row {
    let text = wire("S", "M", T0, set_page(123_456, 42));
    let median = measure(
        || (),
        |()| {
            let start = Instant::now();
            for _ in 0..n {
                let _ = black_box(decode(black_box(text.as_bytes())));
            }
            start.elapsed()
        },
    );
    Row {
        name: "decode SET_PAGE only (ref.)",
        inputs: n,
        median,
        out_per_input: None,
        goal_on_output: false,
    }
}

/// For reference: `encode` alone on a Choir `SET_PAGE` (a Master turn encodes once).
fn encode_set_page(n: usize) -> Row {
    let env = Envelope::new(SessionId::from("S"), DeviceId::from("M"), T0, set_page(123_456, 42));
    let median = measure(
        || (),
        |()| {
            let start = Instant::now();
            for _ in 0..n {
                black_box(black_box(&env).encode());
            }
            start.elapsed()
        },
    );
    Row {
        name: "encode SET_PAGE only (ref.)",
        inputs: n,
        median,
        out_per_input: None,
        goal_on_output: false,
    }
}

// ---- report ----------------------------------------------------------------------------------

fn main() {
    let total = Instant::now();
    let (cores, profile) = maestral_bench::header("maestral-sync engine benchmark: one thread");
    println!("each row: 1 warm-up run + median of {RUNS} runs; goal {GOAL_MSGS_PER_S:.0} msgs/s\n");

    let rows = vec![
        follower_set_page(200_000),
        follower_stale_set_page(200_000),
        follower_set_page_predecoded(200_000),
        master_set_follow_mode(200_000),
        master_set_follow_mode_predecoded(200_000),
        master_next_page(20_000),
        decode_set_page(500_000),
        encode_set_page(500_000),
    ];

    println!(
        "{:<50} {:>8} {:>10} {:>12}  goal 1M msgs/s; messages out",
        "row", "inputs", "ns/input", "inputs/s"
    );
    println!("{}", "-".repeat(130));
    for r in &rows {
        let ratio = r.goal_figure() / GOAL_MSGS_PER_S;
        let mut note = if ratio >= 1.0 {
            format!("meets goal (x{ratio:.2})")
        } else {
            format!("BELOW goal (x{ratio:.2})")
        };
        if let Some((what, per)) = r.out_per_input {
            let on = if r.goal_on_output { ", goal on out" } else { "" };
            note += &format!("; {per:.2} {what} per input = {:.0}/s{on}", r.msgs_per_s() * per);
        }
        println!(
            "{:<50} {:>8} {:>10.1} {:>12.0}  {}",
            r.name,
            r.inputs,
            r.ns_per_msg(),
            r.msgs_per_s(),
            note
        );
    }

    let json = serde_json::json!({
        "goal_msgs_per_s": GOAL_MSGS_PER_S as u64,
        "cores": cores,
        "threads_used": 1,
        "profile": profile,
        "runs": RUNS,
        "rows": rows.iter().map(|r| {
            let mut row = serde_json::json!({
                "name": r.name,
                "inputs_per_run": r.inputs,
                "msgs_per_s": r.msgs_per_s().round() as u64,
                "ns_per_msg": (r.ns_per_msg() * 10.0).round() / 10.0,
                "median_run_ms": r.median.as_secs_f64() * 1e3,
                "meets_goal": r.goal_figure() >= GOAL_MSGS_PER_S,
            });
            if let Some((what, per)) = r.out_per_input {
                row["output"] = serde_json::json!(what);
                row["output_per_input"] = serde_json::json!(per);
                row["output_msgs_per_s"] = serde_json::json!((r.msgs_per_s() * per).round() as u64);
            }
            row
        }).collect::<Vec<_>>(),
    });
    write_report("engine", &json);
    println!("total time {:.1} s", total.elapsed().as_secs_f64());
}
