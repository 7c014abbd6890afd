//! `maestral-faults --bin PATH [--seed S] [--scenarios N] [--followers N] [--storm N] [--quick]
//! [--only LABEL]`:
//! headless Maestral processes on a LAN of network namespaces, put through seeded faults (packet
//! loss, cut links, killed and stopped processes, song changes, `--storm N` Followers joining
//! in the same second, 100 by default, 10 with `--quick`), checked after each; prints a row per
//! fault and writes `target/bench/faults.json` and `faults.svg`. Exit 0: no violation; 1: some
//! (with the command that replays the run); 3: namespaces cannot be made here (skipped, said
//! so). `--only LABEL` runs N faults of the kind a row is labelled with (`--only "loss 30% to
//! followers"`) and no storm (unless `--storm N` is given: `--only "100 followers join at
//! once" --storm 100`), to measure one fault over many samples. Needs root, `ip` (iproute2), `nft` (nftables) and `iptables` (the delay layer's
//! `NFQUEUE`). `cargo xtask faults` runs it; `--delay-relay` is that layer (relay.rs).

// Everything but the stub below is Linux only (network namespaces, nftables, NFQUEUE, /proc).
#[cfg(target_os = "linux")]
mod lan;
#[cfg(target_os = "linux")]
mod plan;
#[cfg(target_os = "linux")]
mod proc;
#[cfg(target_os = "linux")]
mod relay;
#[cfg(target_os = "linux")]
mod report;
#[cfg(target_os = "linux")]
mod run;
#[cfg(target_os = "linux")]
mod solo;

#[cfg(target_os = "linux")]
use std::path::PathBuf;
use std::process::ExitCode;

/// Elsewhere: exit 3, the harness's "cannot be made here" (skipped, said so).
#[cfg(not(target_os = "linux"))]
fn main() -> ExitCode {
    eprintln!(
        "maestral-faults runs only on Linux (network namespaces, nftables and the netfilter queue)"
    );
    ExitCode::from(3)
}

#[cfg(target_os = "linux")]
fn main() -> ExitCode {
    let all: Vec<String> = std::env::args().skip(1).collect();
    if all.first().is_some_and(|a| a == "--delay-relay") {
        // The delay layer inside a host's namespace (relay.rs).
        return match relay::main(&all[1..]) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("maestral-faults --delay-relay: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    let mut bin: Option<PathBuf> = None;
    let mut seed = 1u64;
    let mut scenarios = 50usize;
    let mut followers = 4usize;
    let mut quick = false;
    let mut storm = None;
    let mut only: Option<String> = None;
    let mut out = PathBuf::from("target/bench");
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().unwrap_or_default();
        match a.as_str() {
            "--bin" => bin = Some(value().into()),
            "--seed" => seed = value().parse().unwrap_or(1),
            "--scenarios" => scenarios = value().parse().unwrap_or(50),
            "--followers" => followers = value().parse().unwrap_or(4).max(2),
            "--out" => out = value().into(),
            "--quick" => quick = true,
            "--storm" => storm = value().parse().ok(),
            "--only" => only = Some(value()),
            other => {
                eprintln!("maestral-faults: unknown argument `{other}`; see the file's doc");
                return ExitCode::from(2);
            }
        }
    }
    let Some(bin) = bin else {
        eprintln!("maestral-faults: --bin PATH (the maestral binary) is required");
        return ExitCode::from(2);
    };
    // `cargo xtask` starts this binary with its own CARGO_MANIFEST_DIR: the workspace is above.
    let root = maestral_bench::workspace_root().join("assets/scores");
    let scores = [root.join("lanterns-on-the-water.pdf"), root.join("harbour-lights-jig.pdf")];
    let mut replay =
        format!("cargo xtask faults --seed {seed} --scenarios {scenarios} --followers {followers}");
    if quick {
        replay.push_str(" --quick");
    }
    // 100 Followers joining in the same second end a full run; 10 the bounded one.
    let storm = storm.unwrap_or(if only.is_some() {
        0
    } else if quick {
        10
    } else {
        100
    });
    replay.push_str(&format!(" --storm {storm}"));
    let plan = match &only {
        None => plan::plan(seed, scenarios, quick, followers, storm),
        Some(label) => {
            replay.push_str(&format!(" --only {label:?}"));
            match plan::only(seed, scenarios, followers, label, storm) {
                Some(p) => p,
                None => {
                    eprintln!("maestral-faults: no fault is labelled `{label}`");
                    return ExitCode::from(2);
                }
            }
        }
    };
    let cfg = run::Config { bin, scores, followers, storm, quick };
    let mut run = match run::Run::start(cfg) {
        Ok(r) => r,
        Err(e) if e.downcast_ref::<lan::NoNamespaces>().is_some() => {
            println!("faults: SKIPPED, not passed: {e:#}");
            return ExitCode::from(3);
        }
        Err(e) => {
            println!("faults: the run could not start: {e:#}\nreplay: {replay}");
            return ExitCode::FAILURE;
        }
    };
    let mut rows = Vec::new();
    let mut failed = false;
    for (n, fault) in plan.iter().enumerate() {
        eprintln!("faults: {}/{}: {}", n + 1, plan.len(), fault.label());
        let done = run.fault(*fault);
        if let Ok(row) = &done {
            // Each row as it comes (a run cut short still tells what it saw).
            eprint!("{}", report::table(std::slice::from_ref(row)));
        }
        match done {
            Ok(row) => {
                rows.push(row);
                let _ = report::write(&out, &rows, seed, &replay);
            }
            Err(e) => {
                rows.push(run::Row {
                    fault: fault.label(),
                    violations: vec![format!("{e:#}")],
                    ..run::Row::default()
                });
                failed = true;
                break;
            }
        }
    }
    if !failed {
        match run.end() {
            Ok(row) => rows.push(row),
            Err(e) => rows.push(run::Row {
                fault: "end".into(),
                violations: vec![format!("{e:#}")],
                ..run::Row::default()
            }),
        }
    }
    print!("{}", report::table(&rows));
    if let Err(e) = report::write(&out, &rows, seed, &replay) {
        eprintln!("faults: could not write the report under {}: {e}", out.display());
    }
    let violations: usize = rows.iter().map(|r| r.violations.len()).sum();
    let lost: u64 = rows.iter().map(|r| r.lost).sum();
    println!("faults: {} faults, {violations} violations, {lost} page updates lost", rows.len());
    if violations > 0 || lost > 0 {
        println!("replay: {replay}");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
