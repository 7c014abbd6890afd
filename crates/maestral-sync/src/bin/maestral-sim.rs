//! `cargo xtask sim`: runs the deterministic simulation over many seeds, on every core.
//!
//! `--seeds N` (default 100,000) from `--start S` (default 0), or `--seed S` for one seed;
//! `MAESTRAL_SIM_TRACE=N` prints the last N events of a failing seed (default 60).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use maestral_sync::sim::{SimFailure, run_seed_traced};

fn main() {
    let mut seeds: u64 = 100_000;
    let mut start: u64 = 0;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut num = |name: &str| -> u64 {
            args.next().and_then(|v| v.parse().ok()).unwrap_or_else(|| {
                eprintln!("maestral-sim: {name} needs a number");
                std::process::exit(2)
            })
        };
        match a.as_str() {
            "--seeds" => seeds = num("--seeds"),
            "--start" => start = num("--start"),
            "--seed" => {
                start = num("--seed");
                seeds = 1;
            }
            other => {
                eprintln!(
                    "maestral-sim: unknown argument `{other}` (--seeds N, --start S, --seed S)"
                );
                std::process::exit(2);
            }
        }
    }
    // `MAESTRAL_SIM_TRACE=N`: how many events of a failing run to print.
    #[allow(clippy::disallowed_methods)] // the tool's own configuration, not the engine's
    let trace_lines: usize =
        std::env::var("MAESTRAL_SIM_TRACE").ok().and_then(|v| v.parse().ok()).unwrap_or(60);
    #[allow(clippy::disallowed_methods)] // wall-clock time of the whole run, for the report only
    let t0 = std::time::Instant::now();
    let next = Arc::new(AtomicU64::new(start));
    let failures: Arc<Mutex<Vec<SimFailure>>> = Arc::default();
    let inputs = Arc::new(AtomicU64::new(0));
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let end = start.saturating_add(seeds);
    std::thread::scope(|s| {
        for _ in 0..threads {
            let (next, failures, inputs) = (next.clone(), failures.clone(), inputs.clone());
            s.spawn(move || {
                loop {
                    let seed = next.fetch_add(1, Ordering::Relaxed);
                    if seed >= end {
                        break;
                    }
                    match run_seed_traced(seed, trace_lines) {
                        Ok(st) => {
                            inputs.fetch_add(st.inputs, Ordering::Relaxed);
                        }
                        Err(f) => {
                            if let Ok(mut v) = failures.lock() {
                                v.push(f);
                            }
                        }
                    }
                }
            });
        }
    });
    let failures = failures.lock().map(|v| v.clone()).unwrap_or_default();
    let secs = t0.elapsed().as_secs_f64();
    println!(
        "simulated {seeds} seeds ({start}..{end}) in {secs:.1} s, {} engine inputs, {} failed",
        inputs.load(Ordering::Relaxed),
        failures.len()
    );
    for f in failures.iter().take(5) {
        println!("\n{f}");
    }
    if !failures.is_empty() {
        std::process::exit(1);
    }
}
