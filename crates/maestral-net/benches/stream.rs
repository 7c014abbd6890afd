//! `cargo xtask bench stream [--dev]`: a 20 MB score streamed from a Master to 1, 8 and 32
//! Followers on loopback (real sync threads, real WebRTC), the Followers in a second process so
//! the Master's CPU is its own. For each N:
//!
//! - idle: the Master's `SetPage` → every Follower shows it, 30 turns, 60 ms apart;
//! - the stream: from `Serve` until the last Follower has the whole score (SHA-256 checked),
//!   with a turn every 100 ms meanwhile, measured the same way. For 32 Followers, scores (each
//!   another 20 MB) are streamed one after the other until at least [`MIN_TURNS_DURING`] turns
//!   were made during streams, so that the p99 is a percentile and not the slowest of a few;
//! - MB/s (N × 20 MB per score over the time the streams took) and the Master's CPU during
//!   them, in all and per Follower.
//!
//! Every thread runs at ordinary priority, as the app's do: the Master alone in this process,
//! its Followers in a second one. The two harness threads that stamp what is measured ask for a
//! short time slice, as the control thread does (an ordinary thread's setting).
//!
//! And the ceiling: one plain TCP copy of the same 20 MB over loopback on this machine.
//! Results: target/bench/stream.json. Goals: 20 MB to 32 Followers in ≤ 10 s; page p99 during
//! the stream to 32 Followers ≤ 20 ms.

#[path = "../tests/common/mod.rs"]
mod common;

use std::io::{BufRead, Read, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Peer, follower, master};
use crossbeam_channel::Receiver;
use maestral_bench::{Summary, ms, write_report};
use maestral_net::SyncCommand;
use maestral_net::joincode::JoinCode;
use maestral_protocol::SongId;
use maestral_sync::LocalAction;
use serde_json::{Value, json};

const SIZE: usize = 20 * 1024 * 1024;
const COUNTS: [usize; 3] = [1, 8, 32];
const IDLE_TURNS: u32 = 30;
/// Turns made during streams to 32 Followers, at least.
const MIN_TURNS_DURING: usize = 100;
/// Scores streamed one after the other, at most, to reach it.
const MAX_ROUNDS: u8 = 8;
const FOLLOWERS_PROCESS: &str = "MAESTRAL_BENCH_STREAM_FOLLOWERS";
const LINE_WAIT: Duration = Duration::from_secs(120);

/// The `round`th score streamed (each another 20 MB).
fn score(round: u8) -> (SongId, Arc<[u8]>) {
    common::noise_score(SIZE, 7u8.wrapping_add(round))
}

/// The second process: `n` Followers of the join code on stdin's first line. Fetches every
/// offered score; says `joined`, `shown <page>` once all show that page, `have <k>` once each
/// holds `k` scores (a score received is counted and let go); ends when stdin closes.
fn followers_process(n: usize) {
    let mut lines = std::io::BufReader::new(std::io::stdin()).lines();
    let code: JoinCode = match lines.next().and_then(Result::ok).map(|c| c.trim().parse()) {
        Some(Ok(code)) => code,
        _ => return println!("error no join code"),
    };
    let mut fs: Vec<Peer> = (0..n).map(|i| follower(&format!("F{i}"), &code)).collect();
    println!("joined");
    // This thread stands for 32 devices' screens, each of which would have a CPU of its own:
    // a short slice (as the control thread has; an ordinary thread's setting) so that it does
    // not wait out the 64 bulk threads' slices beside it.
    maestral_net::sync::short_slice();
    let (stop_tx, stop) = crossbeam_channel::bounded::<()>(1);
    std::thread::spawn(move || {
        for _ in lines {}
        let _ = stop_tx.send(());
    });
    let (trash, bin) = crossbeam_channel::unbounded::<(SongId, Arc<[u8]>)>();
    std::thread::spawn(move || for _ in bin {});
    let mut asked = vec![0usize; n];
    let mut last_shown: Option<u32> = None;
    let mut had = vec![0usize; n];
    let mut told = 0;
    while stop.try_recv().is_err() {
        for (i, f) in fs.iter_mut().enumerate() {
            f.wait("", |_| true);
            for p in &f.prepares[asked[i]..] {
                f.h.send(SyncCommand::Fetch(p.clone()));
            }
            asked[i] = f.prepares.len();
        }
        let page = fs[0].view.as_ref().map(|v| v.page_index);
        if page != last_shown && fs.iter().all(|f| f.view.as_ref().map(|v| v.page_index) == page) {
            last_shown = page;
            if let Some(p) = page {
                println!("shown {p}");
            }
        }
        for (count, f) in had.iter_mut().zip(fs.iter_mut()) {
            for received in f.streamed.drain() {
                *count += 1;
                // Freeing 20 MB takes this thread milliseconds: another thread does it.
                let _ = trash.send(received);
            }
        }
        let all_have = had.iter().copied().min().unwrap_or(0);
        if all_have > told {
            told = all_have;
            println!("have {told}");
        }
        std::thread::sleep(Duration::from_micros(500));
    }
}

struct Followers {
    child: std::process::Child,
    lines: Receiver<(String, Instant)>,
}

impl Followers {
    fn start(n: usize, code: &str) -> Followers {
        use std::process::{Command, Stdio};
        let exe = std::env::current_exe().expect("this bench");
        let mut child = Command::new(exe)
            .env(FOLLOWERS_PROCESS, n.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("the Followers' process");
        writeln!(child.stdin.as_mut().expect("stdin"), "{code}").expect("the code");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = crossbeam_channel::unbounded();
        std::thread::spawn(move || {
            // It stamps the lines: a short slice, so that it reads one when it comes.
            maestral_net::sync::short_slice();
            for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send((line, Instant::now())).is_err() {
                    break;
                }
            }
        });
        Followers { child, lines }
    }

    fn line(&self) -> (String, Instant) {
        self.lines.recv_timeout(LINE_WAIT).expect("the Followers' process answers")
    }

    fn stop(mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

/// One N: idle turns, then the stream with turns meanwhile.
fn run(n: usize) -> Value {
    let (m, code) = master();
    let followers = Followers::start(n, &code.to_string());
    assert_eq!(followers.line().0, "joined");
    m.local(LocalAction::SetSong { song_id: Some(SongId::new(format!("idle-{n}"))) });
    let mut page = 0u32;
    // Stamped before the command goes: the sync threads may run the whole turn before this
    // thread is back.
    let turn = |page: &mut u32| -> Instant {
        *page += 1;
        let sent = Instant::now();
        m.local(LocalAction::SetPage { page: *page });
        sent
    };
    // Idle.
    let mut idle = Vec::new();
    for _ in 0..IDLE_TURNS {
        std::thread::sleep(Duration::from_millis(60));
        let sent = turn(&mut page);
        loop {
            let (line, at) = followers.line();
            if line == format!("shown {page}") {
                idle.push(ms(at - sent));
                break;
            }
        }
    }
    // The streams, a turn every 100 ms.
    let mut during = Vec::new();
    let mut took = Duration::ZERO;
    let mut cpu = Some(Duration::ZERO);
    let mut firsts = Vec::new();
    let mut rounds = 0u8;
    while rounds == 0 || (n == 32 && during.len() < MIN_TURNS_DURING && rounds < MAX_ROUNDS) {
        let (song, bytes) = score(rounds);
        rounds += 1;
        m.local(LocalAction::SetSong { song_id: Some(song.clone()) });
        page = 0;
        let cpu_before = maestral_bench::own_cpu_time();
        let started = Instant::now();
        m.h.send(SyncCommand::Serve { song_id: song, bytes, title: None });
        let mut pending: Option<(u32, Instant)> = None;
        let mut next_turn = started + Duration::from_millis(100);
        let done_at = loop {
            if pending.is_none() && Instant::now() >= next_turn {
                pending = Some((page + 1, turn(&mut page)));
                next_turn = Instant::now() + Duration::from_millis(100);
            }
            let Ok((line, at)) = followers.lines.recv_timeout(Duration::from_millis(5)) else {
                assert!(started.elapsed() < LINE_WAIT, "the stream never finished");
                continue;
            };
            if line == format!("have {rounds}") {
                break at;
            }
            if let Some((p, sent)) = pending
                && line == format!("shown {p}")
            {
                during.push(ms(at - sent));
                pending = None;
            }
        };
        took += done_at - started;
        firsts.push((done_at - started).as_secs_f64());
        let spent =
            maestral_bench::own_cpu_time().zip(cpu_before).map(|(a, b)| a.saturating_sub(b));
        cpu = cpu.zip(spent).map(|(a, b)| a + b);
    }
    followers.stop();
    m.h.shutdown();
    let secs = took.as_secs_f64();
    let mb = (n * SIZE * usize::from(rounds)) as f64 / 1e6;
    let idle = Summary::of(&idle);
    let during_s = Summary::of(&during);
    // When in the stream each slow turn came (a turn every 100 ms from the start).
    let slowest: Vec<(usize, f64)> = {
        let mut by = during.iter().copied().enumerate().collect::<Vec<_>>();
        by.sort_by(|a, b| b.1.total_cmp(&a.1));
        by.into_iter().take(5).collect()
    };
    json!({
        "followers": n,
        "scores_streamed": rounds,
        "seconds_until_the_last_has_it": firsts,
        "seconds_streaming": secs,
        "mb_per_s_total": mb / secs,
        "master_cpu_s": cpu.map(|c| c.as_secs_f64()),
        "master_cpu_share_of_one_core": cpu.map(|c| c.as_secs_f64() / secs),
        "master_cpu_ms_per_follower_per_score": cpu.map(|c| c.as_secs_f64() * 1e3 / (n as f64 * f64::from(rounds))),
        "page_idle": idle.as_ref().map(|s| s.json_ms()),
        "page_during_stream": during_s.as_ref().map(|s| s.json_ms()),
        "p99_during_over_idle": idle.zip(during_s).map(|(i, d)| d.p99 / i.p99),
        "slowest_turns_during_stream": slowest.iter().map(|(k, ms)| json!({ "turn": k + 1, "ms": ms })).collect::<Vec<_>>(),
    })
}

/// One plain TCP copy of `bytes` over loopback: the ceiling, in MB/s.
fn tcp_copy(bytes: &Arc<[u8]>) -> f64 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let data = Arc::clone(bytes);
    let started = Instant::now();
    let writer = std::thread::spawn(move || {
        let mut s = std::net::TcpStream::connect(addr).expect("connect");
        s.write_all(&data).expect("write");
    });
    let (mut s, _) = listener.accept().expect("accept");
    let mut got = Vec::with_capacity(bytes.len());
    s.read_to_end(&mut got).expect("read");
    let took = started.elapsed();
    writer.join().expect("writer");
    assert_eq!(got.len(), bytes.len());
    bytes.len() as f64 / 1e6 / took.as_secs_f64()
}

fn main() {
    if let Some(n) = std::env::var(FOLLOWERS_PROCESS).ok().and_then(|n| n.parse().ok()) {
        return followers_process(n);
    }
    let (cores, profile) = maestral_bench::header("stream: a 20 MB score to 1, 8 and 32 Followers");
    let rows = COUNTS.iter().map(|&n| run(n)).collect::<Vec<Value>>();
    let tcp = tcp_copy(&score(0).1);
    for r in &rows {
        println!(
            "N = {:>2}: {} score(s), the last has each after {} s ({:.1} MB/s in all), Master CPU {:.2} s ({:.0} ms per Follower per score); page p99 idle {} ms, during {} ms over {} turns",
            r["followers"],
            r["scores_streamed"],
            r["seconds_until_the_last_has_it"],
            r["mb_per_s_total"].as_f64().unwrap_or(0.0),
            r["master_cpu_s"].as_f64().unwrap_or(0.0),
            r["master_cpu_ms_per_follower_per_score"].as_f64().unwrap_or(0.0),
            r["page_idle"]["p99_ms"],
            r["page_during_stream"]["p99_ms"],
            r["page_during_stream"]["n"],
        );
    }
    println!("TCP copy of the same 20 MB on loopback: {tcp:.0} MB/s");
    let report = json!({ "cores": cores, "profile": profile, "size_bytes": SIZE, "rows": rows, "tcp_copy_mb_per_s": tcp });
    write_report("stream", &report);
}
