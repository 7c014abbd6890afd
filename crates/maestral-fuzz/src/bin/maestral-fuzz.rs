//! `maestral-fuzz [--minutes N] [--inputs N] [--seed S] [--target NAME] [--replay FILE]`:
//! fuzzes every target (or one) in turn until the time or the input count is spent, prints a
//! row per target, keeps each crashing input under `target/fuzz/` and exits 1 if any crashed.
//! (`cargo xtask fuzz --minutes N` runs it.)

use std::process::ExitCode;
use std::time::{Duration, Instant};

fn main() -> ExitCode {
    let mut minutes: Option<f64> = None;
    let mut inputs: Option<u64> = None;
    let mut seed: u64 = 1;
    let mut only: Option<String> = None;
    let mut replay: Option<String> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().unwrap_or_default();
        match a.as_str() {
            "--minutes" => minutes = value().parse().ok(),
            "--inputs" => inputs = value().parse().ok(),
            "--seed" => seed = value().parse().unwrap_or(1),
            "--target" => only = Some(value()),
            "--replay" => replay = Some(value()),
            other => {
                eprintln!("maestral-fuzz: unknown argument `{other}`; see the file's doc");
                return ExitCode::from(2);
            }
        }
    }
    let mut targets = maestral_fuzz::all_targets();
    targets.retain(|t| only.as_deref().is_none_or(|n| n == t.name()));
    if targets.is_empty() {
        eprintln!("maestral-fuzz: no target named {only:?}");
        return ExitCode::from(2);
    }
    if let Some(file) = replay {
        let input = match std::fs::read(&file) {
            Ok(b) => b,
            Err(e) => {
                eprintln!("maestral-fuzz: could not read {file}: {e}");
                return ExitCode::from(2);
            }
        };
        let mut crashed = false;
        for t in &mut targets {
            match maestral_fuzz::replay(t.as_mut(), &input) {
                Ok(accepted) => println!("{}: no crash (accepted: {accepted})", t.name()),
                Err(message) => {
                    crashed = true;
                    println!("{}: CRASH: {message}", t.name());
                }
            }
        }
        return if crashed { ExitCode::FAILURE } else { ExitCode::SUCCESS };
    }
    maestral_fuzz::quiet_panics();
    let per_target = minutes.map(|m| Duration::from_secs_f64(m * 60.0 / targets.len() as f64));
    let inputs = inputs.unwrap_or(if per_target.is_some() { u64::MAX } else { 100_000 });
    let out = maestral_bench::workspace_root().join("target/fuzz");
    println!(
        "{:<14} {:>12} {:>12} {:>8} {:>9}",
        "target", "inputs", "accepted", "crashes", "seconds"
    );
    let mut total_crashes = 0;
    for (i, t) in targets.iter_mut().enumerate() {
        let started = Instant::now();
        let until = per_target.map(|d| started + d);
        let report = maestral_fuzz::run(t.as_mut(), seed.wrapping_add(i as u64), inputs, until);
        println!(
            "{:<14} {:>12} {:>12} {:>8} {:>9.1}",
            t.name(),
            report.inputs,
            report.accepted,
            report.crashes.len(),
            started.elapsed().as_secs_f64()
        );
        for (n, crash) in report.crashes.iter().enumerate() {
            total_crashes += 1;
            let _ = std::fs::create_dir_all(&out);
            let file = out.join(format!("{}-seed{seed}-{n}.bin", crash.target));
            let _ = std::fs::write(&file, &crash.input);
            println!(
                "  crash: {} — replay: cargo run -p maestral-fuzz -- --target {} --replay {}",
                crash.message,
                crash.target,
                file.display()
            );
        }
    }
    if total_crashes > 0 { ExitCode::FAILURE } else { ExitCode::SUCCESS }
}
