//! `cargo xtask features`: the app's build (`cargo xtask run`) must reuse every crate that is
//! not ours from the tests' build (`cargo xtask test`), or the second of the two commands
//! compiles bevy, wgpu or the WebRTC stack again.
//!
//! Two ways it has gone wrong, and the check for each:
//! - the two builds ask for other features of a shared crate (a dev-dependency adds some):
//!   [`agree_in_tree`] reads them from `cargo tree` before anything is built, and
//!   [`reused`] compares the units the two builds produce (their file names carry the hash of
//!   features, dependencies and profile);
//! - a build script re-runs because a variable it watches differs between the two cargo
//!   processes (`ring`'s watched the `CARGO_PKG_*` that `cargo run` sets for xtask):
//!   [`reused`] fails on any unit the app's build compiled again although the tests' build
//!   made it.

use std::collections::{BTreeMap, BTreeSet};

use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};
use tinyjson::JsonValue;

/// Each non-workspace crate's feature sets in one `cargo tree` (one line per crate and feature
/// set: under resolver 2 a build-time copy may have its own).
fn feature_sets(args: &[&str]) -> Result<BTreeMap<String, BTreeSet<String>>> {
    let mut c = super::cargo();
    c.args(["tree", "--quiet", "--prefix", "none", "--format", "{p}|{f}"]).args(args);
    let out = c.output().with_context(|| format!("could not start {}", crate::shown(&c)))?;
    if !out.status.success() {
        bail!("{} failed: {}", crate::shown(&c), String::from_utf8_lossy(&out.stderr));
    }
    let mut sets: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let line = line.trim_end_matches(" (*)");
        let Some((package, features)) = line.split_once('|') else { continue };
        // Workspace crates ("name v0.1.0 (/path)") may differ: a test-support feature is theirs.
        if package.contains(" (/") || package.contains("(proc-macro) (/") {
            continue;
        }
        let name = package.trim_end_matches(" (proc-macro)").to_string();
        sets.entry(name).or_default().insert(features.to_string());
    }
    Ok(sets)
}

/// `cargo xtask features`: [`agree_in_tree`], then [`build_both`].
pub fn check() -> Result<()> {
    agree_in_tree()?;
    build_both(&super::pdfium::ensure()?)
}

/// The tests' build (`cargo test --workspace --no-run`), then the app's (`cargo build -p
/// maestral`, `cargo xtask run`'s), each with `MAESTRAL_PDFIUM` as those commands set it, and
/// [`reused`] on the two.
pub fn build_both(pdfium: &std::path::Path) -> Result<()> {
    let tests = build(
        super::cargo().args(["test", "--workspace", "--no-run"]).env("MAESTRAL_PDFIUM", pdfium),
    )?;
    let app = build(
        super::cargo().args(["build", "--package", "maestral"]).env("MAESTRAL_PDFIUM", pdfium),
    )?;
    reused(&tests, &app)
}

/// Fails, naming the crates, if `cargo xtask run` (and `cargo xtask` itself) would build a
/// shared crate with other features than `cargo xtask test` does (read from `cargo tree`,
/// before anything is built).
pub fn agree_in_tree() -> Result<()> {
    let tests = feature_sets(&["--workspace", "--edges", "normal,build,dev"])?;
    let mut differ = Vec::new();
    for package in ["maestral", "xtask"] {
        for (name, sets) in feature_sets(&["--package", package, "--edges", "normal,build"])? {
            let in_tests = tests.get(&name).cloned().unwrap_or_default();
            for set in sets.difference(&in_tests) {
                differ.push(format!(
                    "  {name}: `-p {package}` builds it with [{set}], the tests with {:?}",
                    in_tests
                ));
            }
        }
    }
    if !differ.is_empty() {
        bail!(
            "these crates would be compiled twice, once for `cargo xtask test` and once for \
             `cargo xtask run`:\n{}\nask for the missing features in the normal dependencies \
             (see the `hashbrown` line of the root Cargo.toml), or drop the dev-dependency \
             feature that adds them",
            differ.join("\n")
        );
    }
    Ok(())
}

/// One unit a build produced (a library, a binary, a build script), as cargo reports it.
#[derive(Debug)]
struct Unit {
    package: String,
    target: String,
    /// The files it made; their names carry the unit's hash.
    files: BTreeSet<String>,
    /// Whether cargo found it up to date instead of compiling it.
    fresh: bool,
}

impl Unit {
    /// Ours: a workspace crate (its own features, e.g. `test-support`, are allowed to differ).
    fn ours(&self) -> bool {
        self.package.starts_with("path+file://")
    }
}

/// The units one build produced.
#[derive(Debug)]
struct Build(Vec<Unit>);

/// Runs `c` (a `cargo build` or `cargo test --no-run`) with cargo's JSON messages on stdout
/// (warnings and errors still shown on stderr) and collects its units.
fn build(c: &mut Command) -> Result<Build> {
    c.arg("--message-format=json-render-diagnostics").stdout(Stdio::piped());
    eprintln!("xtask: running {}", crate::shown(c));
    let out = c
        .spawn()
        .with_context(|| format!("could not start {}", crate::shown(c)))?
        .wait_with_output()?;
    if !out.status.success() {
        bail!("{} failed with {}", crate::shown(c), out.status);
    }
    let (units, unread) = units_of(&String::from_utf8_lossy(&out.stdout));
    if unread > 0 {
        bail!(
            "{unread} of cargo's JSON messages could not be read: the check would be blind to them"
        );
    }
    if units.is_empty() {
        bail!("{} reported no units (cargo's JSON messages were not understood)", crate::shown(c));
    }
    Ok(Build(units))
}

/// The units in cargo's JSON messages (one a line), and how many lines could not be read.
fn units_of(messages: &str) -> (Vec<Unit>, usize) {
    let (mut units, mut unread) = (Vec::new(), 0);
    for line in messages.lines().filter(|l| !l.trim().is_empty()) {
        let Ok(JsonValue::Object(msg)) = line.parse::<JsonValue>() else {
            unread += 1;
            continue;
        };
        let text = |v: Option<&JsonValue>| match v {
            Some(JsonValue::String(s)) => s.clone(),
            _ => String::new(),
        };
        if text(msg.get("reason")) != "compiler-artifact" {
            continue;
        }
        let target = match msg.get("target") {
            Some(JsonValue::Object(target)) => text(target.get("name")),
            _ => String::new(),
        };
        let files = match msg.get("filenames") {
            Some(JsonValue::Array(files)) => files.iter().map(|f| text(Some(f))).collect(),
            _ => BTreeSet::new(),
        };
        let fresh = matches!(msg.get("fresh"), Some(JsonValue::Boolean(true)));
        units.push(Unit { package: text(msg.get("package_id")), target, files, fresh });
    }
    (units, unread)
}

/// Fails, naming them, if the app's build compiled a crate that is not ours: either a unit the
/// tests' build does not have (other features or dependencies), or one it has that the app's
/// build made again (a build script re-ran).
fn reused(tests: &Build, app: &Build) -> Result<()> {
    let made: BTreeSet<&BTreeSet<String>> = tests.0.iter().map(|u| &u.files).collect();
    let mut wrong = Vec::new();
    for unit in app.0.iter().filter(|u| !u.ours()) {
        let name =
            format!("{} ({})", unit.package.rsplit('#').next().unwrap_or_default(), unit.target);
        if !made.contains(&unit.files) {
            wrong.push(format!(
                "  {name}: not in the tests' build (other features or dependencies)"
            ));
        } else if !unit.fresh {
            wrong.push(format!(
                "  {name}: compiled again although the tests' build made it (a build script \
                 re-ran: a variable it watches differs between the two cargo processes)"
            ));
        }
    }
    if !wrong.is_empty() {
        bail!(
            "the app's build (`cargo xtask run`) did not reuse the tests' build for:\n{}",
            wrong.join("\n")
        );
    }
    let shared = app.0.iter().filter(|u| !u.ours()).count();
    eprintln!(
        "xtask: the app's build reused all {shared} units of crates that are not ours from the \
         tests' build"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(package: &str, file: &str, fresh: bool) -> Unit {
        Unit {
            package: package.into(),
            target: "lib".into(),
            files: BTreeSet::from([file.to_owned()]),
            fresh,
        }
    }

    const RING: &str = "registry+https://github.com/rust-lang/crates.io-index#ring@0.17.14";
    const OURS: &str = "path+file:///src/maestral/crates/maestral-net#0.1.0";

    #[test]
    fn cargo_s_own_messages_are_read() {
        let messages = concat!(
            r#"{"reason":"compiler-artifact","package_id":"registry+https://github.com/rust-lang/crates.io-index#ring@0.17.14","manifest_path":"/r/ring-0.17.14/Cargo.toml","target":{"kind":["lib"],"crate_types":["lib"],"name":"ring","src_path":"/r/ring-0.17.14/src/lib.rs","edition":"2021","doc":true,"doctest":false,"test":false},"profile":{"opt_level":"0","debuginfo":2,"debug_assertions":true,"overflow_checks":true,"test":false},"features":["alloc","default"],"filenames":["/t/debug/deps/libring-bf569405c8292bf4.rlib","/t/debug/deps/libring-bf569405c8292bf4.rmeta"],"executable":null,"fresh":true}"#,
            "\n",
            r#"{"reason":"build-finished","success":true}"#,
            "\n",
            "not json\n",
        );
        let (units, unread) = units_of(messages);
        assert_eq!(unread, 1, "the line that is not JSON is counted");
        assert_eq!(units.len(), 1, "{units:?}");
        assert_eq!(units[0].target, "ring");
        assert!(units[0].fresh && !units[0].ours());
        assert!(units[0].files.contains("/t/debug/deps/libring-bf569405c8292bf4.rlib"));
    }

    #[test]
    fn nested_cargo_runs_without_what_cargo_run_set_for_xtask() {
        // `cargo test` gives this test the same package variables `cargo run` gives xtask.
        let set: Vec<String> = std::env::vars()
            .map(|(k, _)| k)
            .filter(|k| k.starts_with("CARGO_PKG_") || k.starts_with("CARGO_MANIFEST_"))
            .collect();
        assert!(set.iter().any(|k| k == "CARGO_PKG_NAME"), "cargo sets them: {set:?}");
        let c = crate::cargo();
        let removed: BTreeSet<String> = c
            .get_envs()
            .filter(|(_, v)| v.is_none())
            .map(|(k, _)| k.to_string_lossy().into_owned())
            .collect();
        for k in &set {
            assert!(removed.contains(k), "{k} reaches the nested cargo");
        }
    }

    #[test]
    fn the_same_units_found_fresh_are_reused() {
        let tests = Build(vec![unit(RING, "libring-1.rlib", false), unit(OURS, "a", false)]);
        let app = Build(vec![unit(RING, "libring-1.rlib", true), unit(OURS, "b", false)]);
        assert!(reused(&tests, &app).is_ok(), "our own crates may differ");
    }

    #[test]
    fn a_unit_with_other_features_is_named() {
        let tests = Build(vec![unit(RING, "libring-1.rlib", false)]);
        let app = Build(vec![unit(RING, "libring-2.rlib", false)]);
        let e = format!("{:#}", reused(&tests, &app).expect_err("another hash must fail"));
        assert!(e.contains("ring@0.17.14 (lib): not in the tests' build"), "{e}");
    }

    #[test]
    fn a_unit_compiled_again_is_named() {
        let tests = Build(vec![unit(RING, "libring-1.rlib", false)]);
        let app = Build(vec![unit(RING, "libring-1.rlib", false)]);
        let e = format!("{:#}", reused(&tests, &app).expect_err("a unit compiled again must fail"));
        assert!(e.contains("ring@0.17.14 (lib): compiled again"), "{e}");
    }
}
