//! `cargo xtask …`: the project's set-up, test, run and benchmark commands.

mod acorn;
mod dist;
mod features;
mod pdfium;
mod sealed;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

const USAGE: &str = "\
usage: cargo xtask <command>

  run [ARGS…]            set up (PDFium) and start Maestral on the demo library
                         (ARGS go to the app: a score or folder, --headless, --layout …)
  test                   set up and run every test (what CI runs)
  sim [--seeds N] [--seed S] [--start S]
                         run the sync-engine simulation for more seeds
  bench engine|render|sync|stream|app|roster|restart|hostile|setlist|browser [--dev]
                         run a benchmark (release; `app --dev`: the dev build, which is
                         much quicker to build); results under target/bench/
  fuzz [--minutes N] [--seed S]
                         fuzz the decoder, the engine, join and pairing codes, the
                         join body, SDP, page queries and signed refusals for N
                         minutes (default 5); crashes are
                         kept under target/fuzz/ with the command that replays them
  faults [--seed S] [--scenarios N] [--followers N] [--storm N] [--quick] [--only LABEL]
                         headless processes on a LAN of network namespaces (root),
                         through seeded faults (--storm N: N more Followers join in
                         the same second, 100 by default; --only LABEL: N faults of
                         one kind, e.g. 'loss 30% to followers'); report in
                         target/bench/faults.*
  dist [--check] [--profile dist|release]
                         the Linux packages in target/packages/ (a .deb with cargo-deb and a
                         portable .tar.gz) from the `dist` build (whole-program LTO; CI uses
                         `--profile release`); --check installs the .deb into a fresh
                         root with dpkg and purges it, then runs the unpacked archive from
                         a fresh folder (version, desktop entry, notices, list, render, a
                         Master and a Follower, the missing-PDFium message)
  guide                  take the performer's guide's pictures (docs/guide/*.png) from the
                         real window (Xvfb, Mesa's software Vulkan, xdotool)
  features               check that `run` reuses the build of `test` for every crate
                         that is not ours (same features, no build script re-run)
  setup                  fetch PDFium into .cache/pdfium if it is not there yet
";

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((cmd, rest)) = args.split_first() else {
        eprint!("{USAGE}");
        std::process::exit(2);
    };
    match cmd.as_str() {
        "setup" => {
            pdfium::ensure()?;
        }
        "run" => run(rest)?,
        "test" => test()?,
        "features" => features::check()?,
        // Run by `test` inside its sealed network (sealed.rs), to see the check fail.
        "sealed-canary" => sealed::send_canary()?,
        "sim" => sim(rest)?,
        "bench" => bench(rest)?,
        "fuzz" => fuzz(rest)?,
        "faults" => faults(rest)?,
        "dist" => dist::run(rest)?,
        "guide" => guide()?,
        "-h" | "--help" | "help" => print!("{USAGE}"),
        other => {
            eprint!("unknown command `{other}`\n\n{USAGE}");
            std::process::exit(2);
        }
    }
    Ok(())
}

/// The workspace root (the folder holding the top `Cargo.toml`).
///
/// From `CARGO_MANIFEST_DIR` as `cargo run` gives it to this process, and only without it from
/// the path compiled in: clones that share one `CARGO_TARGET_DIR` share this binary too (cargo
/// does not rebuild it for another clone of the same sources), and the path compiled in is then
/// another clone's.
pub fn root() -> PathBuf {
    let manifest = std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from);
    manifest.parent().expect("xtask lives one level below the workspace root").to_path_buf()
}

/// Where cargo builds: `CARGO_TARGET_DIR` (relative to the root) or `target/`.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|p| if p.is_absolute() { p } else { root().join(p) })
        .unwrap_or_else(|| root().join("target"))
}

/// The cargo that started xtask, in the workspace root, without the variables `cargo run` set
/// for xtask ([`without_run_env`]).
pub fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(root());
    without_run_env(&mut c);
    c
}

/// Removes from `c`'s environment what `cargo run` set for xtask itself (`CARGO_PKG_NAME=xtask`,
/// `CARGO_MANIFEST_DIR=…/xtask` and the rest of its package's variables).
///
/// A cargo started with them re-runs every build script that watches one of them: `ring`'s
/// watches `CARGO_PKG_NAME`, `CARGO_MANIFEST_DIR` and the version
/// numbers, so `ring` and the eleven WebRTC crates above it were compiled again whenever a
/// nested build followed one from a plain shell (CI's clippy, a developer's `cargo test`), and
/// back again after. Without them, a build from xtask and one from a shell are the same build.
pub fn without_run_env(c: &mut Command) -> &mut Command {
    for (name, _) in std::env::vars_os() {
        let Some(name) = name.to_str() else { continue };
        let set_by_run = ["CARGO_PKG_", "CARGO_MANIFEST_", "CARGO_CRATE_", "CARGO_BIN_"]
            .iter()
            .any(|prefix| name.starts_with(prefix))
            || name == "CARGO_PRIMARY_PACKAGE";
        if set_by_run {
            c.env_remove(name);
        }
    }
    c
}

/// A command as a person would type it: the program and its arguments (not the variables
/// [`without_run_env`] removed, which `{:?}` would list first).
pub fn shown(c: &Command) -> String {
    std::iter::once(c.get_program())
        .chain(c.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

pub fn status(cmd: &mut Command) -> Result<()> {
    eprintln!("xtask: running {}", shown(cmd));
    let st = cmd.status().with_context(|| format!("could not start {}", shown(cmd)))?;
    if !st.success() {
        bail!("{} failed with {st}", shown(cmd));
    }
    Ok(())
}

/// The dev build of `maestral-fuzz` (the one `test` builds; overflow checks on): every
/// target for `--minutes` (5 by default) in all.
fn fuzz(rest: &[String]) -> Result<()> {
    let mut args: Vec<String> = rest.to_vec();
    if !args.iter().any(|a| a == "--minutes" || a == "--inputs") {
        args.extend(["--minutes".into(), "5".into()]);
    }
    status(cargo().args(["run", "--package", "maestral-fuzz", "--"]).args(&args))
}

fn run(rest: &[String]) -> Result<()> {
    let lib = pdfium::ensure()?;
    let mut c = cargo();
    c.args(["run", "--package", "maestral", "--"]).args(rest);
    c.env("MAESTRAL_PDFIUM", lib);
    status(&mut c)
}

fn test() -> Result<()> {
    let lib = pdfium::ensure()?;
    // Before anything is built: a feature drift would make `cargo xtask run` build it all again.
    features::agree_in_tree()?;
    // The engine crates must stay pure (no clock, no thread RNG): clippy's disallowed-methods checks it.
    status(cargo().args([
        "clippy",
        "--quiet",
        "--package",
        "maestral-protocol",
        "--package",
        "maestral-sync",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    // Everything is built here, where the registries are reached; the tests then run in a
    // network namespace that reaches nothing (sealed.rs), offline.
    // The app's build (`cargo xtask run`'s) must compile nothing that is not ours again.
    features::build_both(&lib)?;
    let faults = faults_build()?;
    let sealed = match sealed::Sealed::make() {
        Ok(sealed) => {
            sealed.canary()?;
            Some(sealed)
        }
        Err(e) if in_ci() => {
            bail!("the off-machine check needs its network namespace (root, `ip`, `nft`): {e:#}")
        }
        Err(e) => {
            println!(
                "off-machine check: SKIPPED, not passed ({e:#}); the tests run on this \
                 machine's own network"
            );
            None
        }
    };
    let tests = cargo_tests(sealed.as_ref(), &lib, &faults.1)
        .and_then(|()| node_tests(sealed.as_ref(), &lib, &faults.1));
    // The bounded fault run: real processes on a LAN of network namespaces (root only), made
    // from inside the sealed one.
    let faults = tests.as_ref().ok().map(|()| {
        let args = ["--quick".into(), "--followers".into(), "3".into()];
        faults_in(sealed.as_ref(), &faults, &args)
    });
    let leaks = sealed.as_ref().map(sealed::Sealed::check);
    match &leaks {
        Some(Ok(())) => {
            println!("off-machine check: passed (no packet left the tests' network namespace)")
        }
        Some(Err(e)) => println!("off-machine check: FAILED: {e:#}"),
        None => {}
    }
    tests?;
    match faults.transpose()? {
        Some(FaultsOutcome::Passed) => println!("faults (bounded): passed"),
        // In CI a skip is a failure: the run must not pass with less coverage than it claims.
        Some(FaultsOutcome::Skipped) if in_ci() => {
            bail!("faults (bounded): skipped in CI (no network namespaces here: root, `ip`, `nft`)")
        }
        Some(FaultsOutcome::Skipped) => {
            println!("faults (bounded): SKIPPED, not passed (no network namespaces here)");
        }
        None => {}
    }
    leaks.transpose()?;
    Ok(())
}

/// `program`, inside the sealed network where there is one.
fn sealed_command(
    sealed: Option<&sealed::Sealed>,
    program: impl AsRef<std::ffi::OsStr>,
) -> Command {
    let mut c = match sealed {
        Some(sealed) => sealed.command(program),
        None => Command::new(program),
    };
    c.current_dir(root());
    c
}

/// Every test of the workspace (built already), offline; the process tests start `app`.
fn cargo_tests(sealed: Option<&sealed::Sealed>, lib: &Path, app: &Path) -> Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut c = sealed_command(sealed, cargo);
    without_run_env(&mut c).args(["test", "--workspace", "--no-fail-fast", "--offline"]);
    c.env("MAESTRAL_PDFIUM", lib).env("MAESTRAL_BIN", app);
    c.stdout(std::process::Stdio::piped());
    eprintln!("xtask: running {}", crate::shown(&c));
    let mut child = c.spawn().with_context(|| format!("could not start {}", crate::shown(&c)))?;
    // Pass the output through, adding up every test binary's result line, so the run ends on
    // one line that counts them all (doc-test binaries with 0 tests come last otherwise).
    let (mut passed, mut failed) = (0u64, 0u64);
    if let Some(out) = child.stdout.take() {
        use std::io::BufRead;
        for line in std::io::BufReader::new(out).lines() {
            let line = line.unwrap_or_default();
            println!("{line}");
            if let Some(rest) = line.strip_prefix("test result: ") {
                let count = |what: &str| -> u64 {
                    rest.split(';')
                        .find_map(|part| part.trim().strip_suffix(what))
                        .and_then(|n| n.trim().rsplit(' ').next().and_then(|n| n.parse().ok()))
                        .unwrap_or(0)
                };
                passed += count(" passed");
                failed += count(" failed");
            }
        }
    }
    let st = child.wait()?;
    println!("summary: {passed} passed, {failed} failed");
    if !st.success() {
        bail!("cargo test failed with {st}");
    }
    Ok(())
}

/// The browser Follower's JavaScript under node's own test runner: its rules, the conformance
/// cases through its driver (side by side with the Rust driver's), and a real Chromium joining
/// a real headless Master (`tests/browser/`, which makes its own network namespace).
fn node_tests(sealed: Option<&sealed::Sealed>, lib: &Path, app: &Path) -> Result<()> {
    let target = target_dir().join("debug");
    let mut units = sealed_command(sealed, "node");
    units.args(["--test", "crates/maestral-net/web/test/"]);
    units.env("MAESTRAL_CONFORMANCE_RUST", target.join("maestral-conformance"));
    units.env("MAESTRAL_ACORN", acorn::ensure()?);
    status(&mut units)?;
    let mut browser = sealed_command(sealed, "node");
    browser.args(["--test", "--test-concurrency=1", "tests/browser/"]);
    browser.env("MAESTRAL_BIN", app).env("MAESTRAL_PDFIUM", lib);
    status(&mut browser)
}

/// Whether this runs in CI (`CI` set and not empty, as CI services set it): there, a check
/// that cannot run fails the run instead of being skipped.
pub fn in_ci() -> bool {
    std::env::var_os("CI").is_some_and(|v| !v.is_empty())
}

enum FaultsOutcome {
    Passed,
    Skipped,
}

/// The app and the harness, built (dev profile, sharing the test build's dependencies): the
/// harness's binary and the app's, the binary a user gets.
///
/// The app's is linked to `app-build/maestral` in the build folder: cargo's own
/// `debug/maestral` is replaced by the test build's binary whenever `cargo test` runs, and that
/// one has the workspace's `test-support` features (dev-dependency features are unified across
/// a workspace's test build). The process tests, the browser tests and the fault run all start
/// the app's build instead (`MAESTRAL_BIN`).
fn faults_build() -> Result<(PathBuf, PathBuf)> {
    // Two builds, not one: built together, their features would unify differently from the
    // test build's, and the app would be compiled again.
    status(cargo().args(["build", "--package", "maestral"]))?;
    status(cargo().args(["build", "--package", "maestral-faults"]))?;
    let target = target_dir();
    let built = target.join("debug").join("maestral");
    let app = target.join("app-build").join("maestral");
    std::fs::create_dir_all(target.join("app-build"))?;
    let _ = std::fs::remove_file(&app);
    // A second name for the same file (cargo replaces `debug/maestral`, never rewrites it);
    // a copy where links are not possible.
    if std::fs::hard_link(&built, &app).is_err() {
        std::fs::copy(&built, &app)
            .with_context(|| format!("could not copy {} to {}", built.display(), app.display()))?;
    }
    Ok((target.join("debug").join("maestral-faults"), app))
}

/// Runs the fault harness built by [`faults_build`] with `args` (inside the sealed network where
/// there is one). Exit 3 from the harness means namespaces cannot be made here: skipped, said so.
fn faults_in(
    sealed: Option<&sealed::Sealed>,
    (harness, app): &(PathBuf, PathBuf),
    args: &[String],
) -> Result<FaultsOutcome> {
    let lib = pdfium::ensure()?;
    let mut c = sealed_command(sealed, harness);
    c.arg("--bin").arg(app).args(args);
    c.env("MAESTRAL_PDFIUM", lib);
    eprintln!("xtask: running {}", crate::shown(&c));
    let st = c.status().with_context(|| format!("could not start {}", crate::shown(&c)))?;
    match st.code() {
        Some(0) => Ok(FaultsOutcome::Passed),
        Some(3) => Ok(FaultsOutcome::Skipped),
        _ => bail!("the fault run failed ({st}); its report is under target/bench/faults.json"),
    }
}

fn faults(rest: &[String]) -> Result<()> {
    match faults_in(None, &faults_build()?, rest)? {
        FaultsOutcome::Passed => Ok(()),
        FaultsOutcome::Skipped => bail!("skipped: network namespaces cannot be made here (root?)"),
    }
}

fn sim(rest: &[String]) -> Result<()> {
    let mut c = cargo();
    c.args([
        "run",
        "--release",
        "--quiet",
        "--package",
        "maestral-sync",
        "--features",
        "test-support",
        "--bin",
        "maestral-sim",
        "--",
    ]);
    c.args(rest);
    status(&mut c)
}

/// A benchmark of the app package (`--dev`: in the dev build, much quicker to build).
fn app_bench(name: &str, rest: &[String]) -> Result<()> {
    let lib = pdfium::ensure()?;
    let mut c = cargo();
    c.args(["bench", "--package", "maestral", "--bench", name]);
    if rest[1..].iter().any(|a| a == "--dev") {
        c.args(["--profile", "dev"]);
    }
    c.env("MAESTRAL_PDFIUM", lib);
    status(&mut c)
}

/// The guide's pictures: the app's build (dev), driven by docs/guide/screenshots.mjs.
fn guide() -> Result<()> {
    let lib = pdfium::ensure()?;
    status(cargo().args(["build", "--package", "maestral"]))?;
    let mut c = Command::new("node");
    c.current_dir(root()).arg("docs/guide/screenshots.mjs");
    c.env("MAESTRAL_BIN", target_dir().join("debug").join("maestral"));
    c.env("MAESTRAL_PDFIUM", lib);
    status(&mut c)
}

/// Browser Followers against a headless Master (root: it makes its network namespace).
fn browser_bench(rest: &[String]) -> Result<()> {
    let lib = pdfium::ensure()?;
    let dev = rest[1..].iter().any(|a| a == "--dev");
    let mut build = cargo();
    build.args(["build", "--package", "maestral"]);
    if !dev {
        build.arg("--release");
    }
    status(&mut build)?;
    let target = target_dir();
    let app = target.join(if dev { "debug" } else { "release" }).join("maestral");
    let mut c = Command::new("node");
    c.current_dir(root()).arg("tests/browser/bench.mjs");
    c.env("MAESTRAL_BIN", app).env("MAESTRAL_PDFIUM", lib);
    c.env("MAESTRAL_BUILD", if dev { "dev" } else { "release" });
    status(&mut c)
}

fn bench(rest: &[String]) -> Result<()> {
    let Some(which) = rest.first() else {
        bail!(
            "which benchmark? `cargo xtask bench engine`, `render`, `sync`, `stream`, `app`, `roster`, `restart`, `hostile`, `setlist` or `browser`"
        );
    };
    std::fs::create_dir_all(root().join("target/bench"))?;
    match which.as_str() {
        "engine" => {
            status(cargo().args(["bench", "--package", "maestral-sync", "--bench", "engine"]))
        }
        "render" => {
            let lib = pdfium::ensure()?;
            let mut c = cargo();
            c.args(["bench", "--package", "maestral-score", "--bench", "render"]);
            c.env("MAESTRAL_PDFIUM", lib);
            status(&mut c)
        }
        "sync" => status(cargo().args(["bench", "--package", "maestral-net", "--bench", "sync"])),
        // A 20 MB score to 1, 8 and 32 Followers (crates/maestral-net/benches/stream.rs).
        "stream" => {
            let mut c = cargo();
            c.args(["bench", "--package", "maestral-net", "--bench", "stream"]);
            if rest[1..].iter().any(|a| a == "--dev") {
                c.args(["--profile", "dev"]);
            }
            status(&mut c)
        }
        // Headless processes: the Master's roster with 20 Followers (benches/roster.rs).
        "roster" => app_bench("roster", rest),
        // Headless processes killed and restarted with only their state (benches/restart.rs).
        "restart" => app_bench("restart", rest),
        // An honest singer joining while issue 32's attacks run (benches/hostile.rs).
        "hostile" => app_bench("hostile", rest),
        // A conductor's next piece, with and without streaming it ahead (benches/setlist.rs).
        "setlist" => app_bench("setlist", rest),
        // A real window under Xvfb with Mesa's software Vulkan (see tests/window.rs).
        "app" => app_bench("app", rest),
        // Headless Chromium tabs as phones joining a headless Master (tests/browser/bench.mjs).
        "browser" => browser_bench(rest),
        other => {
            bail!(
                "unknown benchmark `{other}`: try `engine`, `render`, `sync`, `stream`, `app`, `roster`, `restart`, `hostile`, `setlist` or `browser`"
            )
        }
    }
}
