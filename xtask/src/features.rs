//! `cargo xtask features`: the app's build (`cargo xtask run`) and the tests' build
//! (`cargo xtask test`) must ask for the same features of every shared crate, or the second of
//! the two commands compiles bevy, wgpu and the rest again.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, Result, bail};

/// Each non-workspace crate's feature sets in one `cargo tree` (one line per crate and feature
/// set: under resolver 2 a build-time copy may have its own).
fn feature_sets(args: &[&str]) -> Result<BTreeMap<String, BTreeSet<String>>> {
    let mut c = super::cargo();
    c.args(["tree", "--quiet", "--prefix", "none", "--format", "{p}|{f}"]).args(args);
    let out = c.output().with_context(|| format!("could not start {c:?}"))?;
    if !out.status.success() {
        bail!("{c:?} failed: {}", String::from_utf8_lossy(&out.stderr));
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

/// Fails, naming the crates, if `cargo xtask run` (and `cargo xtask` itself) would build a
/// shared crate with other features than `cargo xtask test` does.
pub fn check() -> Result<()> {
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
    eprintln!("xtask: features agree: `cargo xtask run` reuses the build of `cargo xtask test`");
    Ok(())
}
