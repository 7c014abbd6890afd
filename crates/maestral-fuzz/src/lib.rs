//! Seeded fuzzing on stable Rust of everything Maestral reads from other devices or from codes
//! a person types or scans: the message decoder, the engine of each role, join codes, Solo
//! pairing codes, the join request's HTTP body, and SDP (our checks and the WebRTC stack's parse).
//!
//! Each [`Target`] has a corpus of valid inputs; the fuzzer feeds it random bytes and mutations
//! of that corpus ([`mutate`]), and each target checks properties beyond "no panic" (a decoded
//! message encodes back to itself, a refused message changes nothing, a parsed code prints back
//! to itself). A panic, or a broken property, is a crash: [`run`] catches it and keeps the input.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Instant;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

mod targets;

pub use targets::all_targets;

/// One thing to fuzz.
pub trait Target {
    /// Its name, for reports and `--target`.
    fn name(&self) -> &'static str;
    /// Valid inputs to mutate.
    fn corpus(&self) -> Vec<Vec<u8>>;
    /// Feeds one input; panics on a crash or a broken property. Returns whether the input was
    /// accepted (decoded, parsed), for the report.
    fn run(&mut self, input: &[u8]) -> bool;
    /// Starts again from a clean state (after a crash left it unknown).
    fn reset(&mut self) {}
}

/// A crashing input and what it did.
#[derive(Debug, Clone)]
pub struct Crash {
    pub target: &'static str,
    pub input: Vec<u8>,
    pub message: String,
}

/// What a run of one target did.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub inputs: u64,
    /// Inputs the target accepted (decoded, parsed): mutations that stayed valid.
    pub accepted: u64,
    pub crashes: Vec<Crash>,
}

/// Values that break naive parsers, spliced into mutated inputs.
const TOKENS: &[&str] = &[
    "18446744073709551615",
    "18446744073709551616",
    "4294967295",
    "4294967296",
    "-1",
    "0",
    "1e999",
    "-0.0",
    "null",
    "true",
    "[]",
    "{}",
    "\"\"",
    "\"\\u0000\"",
    "\\ud800",
    "\u{202e}",
    "%00",
    "%",
    "\r\n",
    "a=candidate:1 1 udp 1 0.0.0.0 0 typ host\r\n",
    "a=fingerprint:sha-1 00\r\n",
    "a=setup:active\r\n",
    "m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n",
    ":",
    "&",
    "=",
];

/// One input: random bytes now and then, otherwise a corpus entry with 1 to 8 mutations.
pub fn mutate(rng: &mut impl Rng, corpus: &[Vec<u8>]) -> Vec<u8> {
    if corpus.is_empty() || rng.random_ratio(1, 16) {
        let len = rng.random_range(0..512);
        return (0..len).map(|_| rng.random()).collect();
    }
    let mut out = corpus[rng.random_range(0..corpus.len())].clone();
    for _ in 0..rng.random_range(1..=8) {
        let len = out.len();
        match rng.random_range(0..9) {
            0 if len > 0 => {
                let i = rng.random_range(0..len);
                out[i] ^= 1 << rng.random_range(0..8);
            }
            1 if len > 0 => {
                let i = rng.random_range(0..len);
                out[i] = rng.random();
            }
            2 => {
                let i = rng.random_range(0..=len);
                out.insert(i, rng.random());
            }
            3 if len > 0 => {
                let a = rng.random_range(0..len);
                let b = rng.random_range(a..=len.min(a + 16));
                out.drain(a..b);
            }
            4 if len > 0 => {
                let a = rng.random_range(0..len);
                let b = rng.random_range(a..=len.min(a + 32));
                let piece = out[a..b].to_vec();
                let at = rng.random_range(0..=out.len());
                out.splice(at..at, piece);
            }
            5 => {
                let other = &corpus[rng.random_range(0..corpus.len())];
                if !other.is_empty() {
                    let a = rng.random_range(0..other.len());
                    let cut = rng.random_range(0..=len);
                    out.truncate(cut);
                    out.extend_from_slice(&other[a..]);
                }
            }
            6 => {
                let token = TOKENS[rng.random_range(0..TOKENS.len())].as_bytes();
                let at = rng.random_range(0..=len);
                // Replace what follows, up to the next delimiter, or insert.
                let end = out[at..]
                    .iter()
                    .position(|b| matches!(b, b',' | b'}' | b']' | b'&' | b'\n' | b' '))
                    .map_or(out.len(), |p| at + p);
                if rng.random_bool(0.5) {
                    out.splice(at..end, token.iter().copied());
                } else {
                    out.splice(at..at, token.iter().copied());
                }
            }
            7 if len > 0 => out.truncate(rng.random_range(0..len)),
            _ => {
                // A long run: lengths and counters at their limits.
                let at = rng.random_range(0..=len);
                let byte = if rng.random_bool(0.5) { b'9' } else { rng.random() };
                let n = rng.random_range(1..4096);
                out.splice(at..at, std::iter::repeat_n(byte, n));
            }
        }
    }
    out
}

/// Feeds `target` inputs made from `seed` until `inputs` have been tried or `until` has passed.
pub fn run(target: &mut dyn Target, seed: u64, inputs: u64, until: Option<Instant>) -> Report {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let corpus = target.corpus();
    let mut report = Report::default();
    // The corpus itself first: every entry must be accepted (or the target is not tested).
    let mut queue: std::collections::VecDeque<Vec<u8>> = corpus.iter().cloned().collect();
    while report.inputs < inputs && until.is_none_or(|t| Instant::now() < t) {
        let input = queue.pop_front().unwrap_or_else(|| mutate(&mut rng, &corpus));
        report.inputs += 1;
        match catch_unwind(AssertUnwindSafe(|| target.run(&input))) {
            Ok(true) => report.accepted += 1,
            Ok(false) => {}
            Err(panic) => {
                let message = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                    .unwrap_or_else(|| "a panic".into());
                report.crashes.push(Crash { target: target.name(), input, message });
                target.reset();
            }
        }
    }
    report
}

/// Replays one input against `target`: `Err` with the crash's message if it crashes.
pub fn replay(target: &mut dyn Target, input: &[u8]) -> Result<bool, String> {
    catch_unwind(AssertUnwindSafe(|| target.run(input))).map_err(|panic| {
        panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_else(|| "a panic".into())
    })
}

/// Silences the default panic message while fuzzing (crashes are reported with their input).
pub fn quiet_panics() {
    std::panic::set_hook(Box::new(|_| {}));
}
