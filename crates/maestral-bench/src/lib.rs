//! What Maestral's benchmarks share: one percentile definition, summaries of a sample, CPU use
//! sampled from `/proc` (Linux), the JSON report under `<workspace>/target/bench/`, and synthetic
//! data: PDF files (`pdf`) and noise standing for a score's bytes ([`noise`]).
//!
//! A dev-dependency only: nothing here is in the app.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};

pub mod pdf;
mod proc;

/// `len` bytes of noise, different per `seed` and the same for the same seed (xorshift): bytes
/// that stand for a score's, which compress to nothing less.
pub fn noise(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

pub use proc::{Load, LoadPer, cpu_time, own_cpu_time};

/// The nearest-rank percentile: the smallest value with at least `p` (0.0..=1.0) of the sample
/// at or below it. `p` = 0 gives the minimum. `None` for an empty sample.
pub fn percentile(samples: &[f64], p: f64) -> Option<f64> {
    let mut s = samples.to_vec();
    s.sort_by(f64::total_cmp);
    nearest_rank(&s, p)
}

/// [`percentile`] on a sample already sorted.
fn nearest_rank(sorted: &[f64], p: f64) -> Option<f64> {
    let n = sorted.len();
    if n == 0 {
        return None;
    }
    let rank = (p.clamp(0.0, 1.0) * n as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, n) - 1])
}

/// The median of some durations ([`percentile`] 0.5).
pub fn median_duration(samples: &[Duration]) -> Option<Duration> {
    let secs: Vec<f64> = samples.iter().map(Duration::as_secs_f64).collect();
    percentile(&secs, 0.5).map(Duration::from_secs_f64)
}

/// Milliseconds, as the reports write them.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// A sample's size, extremes, mean and percentiles (nearest rank).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    pub n: usize,
    pub min: f64,
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
    pub mean: f64,
}

impl Summary {
    /// `None` for an empty sample.
    pub fn of(samples: &[f64]) -> Option<Summary> {
        let mut s = samples.to_vec();
        s.sort_by(f64::total_cmp);
        let n = s.len();
        Some(Summary {
            n,
            min: *s.first()?,
            p50: nearest_rank(&s, 0.50)?,
            p99: nearest_rank(&s, 0.99)?,
            max: *s.last()?,
            mean: s.iter().sum::<f64>() / n as f64,
        })
    }

    /// The summary of a sample of milliseconds, keys ending in `_ms`, rounded to the µs.
    pub fn json_ms(&self) -> Value {
        let r = |x: f64| (x * 1000.0).round() / 1000.0;
        json!({ "n": self.n, "p50_ms": r(self.p50), "p99_ms": r(self.p99), "min_ms": r(self.min),
                "max_ms": r(self.max), "mean_ms": r(self.mean) })
    }
}

/// The build profile a benchmark runs in, for its header and report.
pub fn profile() -> &'static str {
    if cfg!(debug_assertions) { "debug (unoptimised!)" } else { "release (bench)" }
}

/// Prints a benchmark's first line (`title`, the machine's cores, the profile); returns the
/// cores and the profile for its report.
pub fn header(title: &str) -> (usize, &'static str) {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let profile = profile();
    println!("{title}; machine has {cores} cores; profile {profile}");
    (cores, profile)
}

/// `<workspace>/target/bench/`, where every benchmark writes its report. The workspace is the
/// first folder holding `Cargo.lock` above the running benchmark's package (`cargo bench` sets
/// `CARGO_MANIFEST_DIR`), else above this crate as compiled (a target folder shared by clones at
/// other paths holds binaries compiled in another clone).
pub fn report_dir() -> PathBuf {
    workspace_root().join("target/bench")
}

/// The workspace's folder: the first one holding `Cargo.lock` above the package cargo names in
/// `CARGO_MANIFEST_DIR` at run time (`cargo bench`, `cargo run`, and what they start), else
/// above this crate as compiled. The compiled path alone can be another clone's: cargo
/// fingerprints path packages by relative path, so clones sharing a target folder share these
/// binaries.
pub fn workspace_root() -> PathBuf {
    let compiled = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."));
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .and_then(|dir| dir.ancestors().find(|d| d.join("Cargo.lock").is_file()).map(PathBuf::from))
        .unwrap_or(compiled)
}

/// Writes `report` to `target/bench/<name>.json` and prints where (or why not: a benchmark
/// that measured something still shows its table).
pub fn write_report(name: &str, report: &Value) -> Option<PathBuf> {
    let dir = report_dir();
    let path = dir.join(format!("{name}.json"));
    let text = serde_json::to_string_pretty(report).unwrap_or_default() + "\n";
    match std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&path, text)) {
        Ok(()) => {
            let shown = std::fs::canonicalize(&path).unwrap_or(path);
            println!("\nwritten: {}", shown.display());
            Some(shown)
        }
        Err(err) => {
            eprintln!("\ncould not write {}: {err}", path.display());
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_sample_has_no_percentile_and_no_summary() {
        assert_eq!(percentile(&[], 0.5), None);
        assert_eq!(Summary::of(&[]), None);
        assert_eq!(median_duration(&[]), None);
    }

    #[test]
    fn nearest_rank_picks_a_value_of_the_sample() {
        let s = [5.0, 1.0, 4.0, 2.0, 3.0];
        assert_eq!(percentile(&s, 0.0), Some(1.0));
        assert_eq!(percentile(&s, 0.5), Some(3.0));
        assert_eq!(percentile(&s, 1.0), Some(5.0));
        // An even sample: the lower middle value, not the average of the two.
        assert_eq!(percentile(&[1.0, 2.0, 3.0, 4.0], 0.5), Some(2.0));
        // p99 of 100 values is the 99th; of 200 the 198th.
        let hundred: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&hundred, 0.99), Some(99.0));
        let two_hundred: Vec<f64> = (1..=200).map(f64::from).collect();
        assert_eq!(percentile(&two_hundred, 0.99), Some(198.0));
    }

    #[test]
    fn one_value_is_every_percentile() {
        for p in [0.0, 0.01, 0.5, 0.99, 1.0] {
            assert_eq!(percentile(&[7.5], p), Some(7.5));
        }
    }

    #[test]
    fn a_summary_holds_the_extremes_mean_and_percentiles() {
        let s = Summary::of(&[4.0, 1.0, 3.0, 2.0]).expect("not empty");
        assert_eq!(s, Summary { n: 4, min: 1.0, p50: 2.0, p99: 4.0, max: 4.0, mean: 2.5 });
        assert_eq!(s.json_ms()["p99_ms"], json!(4.0));
    }

    #[test]
    fn the_median_of_durations_is_one_of_them() {
        let d = |ms| Duration::from_millis(ms);
        assert_eq!(median_duration(&[d(30), d(10), d(20)]), Some(d(20)));
    }
}
