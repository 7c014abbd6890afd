//! `cargo xtask bench setlist [--dev]`: a conductor moving to the next piece of its set list,
//! and how soon its singers show that piece's first page when they lack the score (docs/
//! behaviour.md §8.4). Headless processes on loopback, real WebRTC: a Master and
//! [`SINGERS`] Followers, each in its own process, at ordinary priority. The Followers hold the
//! piece sung first but not the next one.
//!
//! - **without** the prefetch: the Master has no set list; it moves to the piece with `song`
//!   (the singers start receiving it then);
//! - **with** it: the Master's set list in use is [the piece sung, the next piece]; the bench
//!   waits until every singer holds the next piece (their `stream … ready`), as while a piece is
//!   sung, then the Master moves on with `piece next`.
//!
//! Measured for each singer: the conductor's command (`piece next`, or `song ID` without a set
//! list) → the singer's `show` of the new piece's first page with a page count (the score open,
//! the page ready to draw). Two sizes of the next
//! piece, each four pages and a stream of noise no page uses (standing for a scanned score's
//! images): 64 KB and 10 MB. [`ROUNDS`] song changes each, every one to a score
//! the singers have never had. Results: target/bench/setlist.json.

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::Instant;

use maestral_bench::{Summary, header, ms, write_report};
use serde_json::{Value, json};
use support::{App, TempDir, demo_score};

const SINGERS: usize = 8;
const ROUNDS: usize = 4;
const SMALL: usize = 64 * 1024;
const BIG: usize = 10 * 1024 * 1024;

/// A PDF of four A4 pages with a line each, and an unused stream of `padding` bytes of noise
/// (`seed`), so that each one is another score, `padding` bytes larger.
fn padded_pdf(padding: usize, seed: u32) -> Vec<u8> {
    let content = "0 0 0 RG 2 w 72 400 m 520 400 l S\n";
    let mut objects: Vec<Vec<u8>> = vec![
        b"<< /Type /Catalog /Pages 2 0 R >>".to_vec(),
        b"<< /Type /Pages /Kids [4 0 R 6 0 R 8 0 R 10 0 R] /Count 4 >>".to_vec(),
        format!("<< /Title (Padded {seed}) >>").into_bytes(),
    ];
    for i in 0..4 {
        objects.push(
            format!(
                "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents {} 0 R >>",
                5 + 2 * i
            )
            .into_bytes(),
        );
        objects.push(
            format!("<< /Length {} >>\nstream\n{content}endstream", content.len()).into_bytes(),
        );
    }
    let noise = maestral_bench::noise(padding, seed);
    let mut padded = format!("<< /Length {padding} >>\nstream\n").into_bytes();
    padded.extend_from_slice(&noise);
    padded.extend_from_slice(b"\nendstream");
    objects.push(padded);

    maestral_bench::pdf::document(&objects)
}

fn is_show_of(e: &Value, song: &str) -> bool {
    e["event"] == "show" && e["song_id"] == song && e["page_index"] == 0
}

/// One song change to the piece `id` (a score in the Master's library), with or without the
/// prefetch: for each singer, the conductor's command → the singer's first page, in ms.
fn change(m: &mut App, singers: &mut [App], first: &str, id: &str, ahead: bool) -> Vec<f64> {
    if ahead {
        m.send(&format!("setlist new ahead-{id}"));
        m.send(&format!("setlist add {first}"));
        m.send(&format!("setlist add {id}"));
        m.wait("the set list", |e| e["event"] == "setlist" && e["current"] == 0);
        for s in singers.iter_mut() {
            s.wait("the next piece, held ahead", |e| {
                e["event"] == "stream" && e["song_id"] == id && e["state"] == "ready"
            });
        }
    }
    // From the conductor's command: the Master's own `show` line can be read after a singer's.
    let moved = Instant::now();
    m.send(&if ahead { "piece next".to_owned() } else { format!("song {id}") });
    m.wait("the Master on the next piece", |e| is_show_of(e, id));
    let times = singers
        .iter_mut()
        .map(|s| {
            let (_, shown) = s.wait_at("the next piece's first page", |e| {
                is_show_of(e, id) && e["page_count"].is_u64()
            });
            ms(shown.saturating_duration_since(moved))
        })
        .collect();
    // Back to the first piece, without a set list, for the next round.
    if ahead {
        m.send("setlist off");
    }
    m.send(&format!("song {first}"));
    m.wait("back on the first piece", |e| is_show_of(e, first));
    for s in singers.iter_mut() {
        s.wait("back on the first piece", |e| is_show_of(e, first));
    }
    times
}

fn main() {
    let (cores, profile) =
        header("setlist: the next piece's first page, with and without prefetch");
    let root = TempDir::new("bench-setlist");
    let (library, singer_library) = (root.0.join("library"), root.0.join("singers"));
    std::fs::create_dir_all(&library).expect("a library");
    std::fs::create_dir_all(&singer_library).expect("the singers' library");
    let lanterns = std::fs::read(demo_score("lanterns-on-the-water.pdf")).expect("the demo");
    let first = maestral_score::song_id(&lanterns).as_str().to_owned();
    std::fs::write(library.join("lanterns.pdf"), &lanterns).expect("write");
    std::fs::write(singer_library.join("lanterns.pdf"), &lanterns).expect("write");
    // The pieces moved to: each a score the singers never had (a seed of its own).
    let mut pieces: Vec<(String, bool, String)> = Vec::new();
    let mut files = Vec::new();
    for ahead in [false, true] {
        for round in 0..ROUNDS {
            for (size, padding) in [("64 KB", SMALL), ("10 MB", BIG)] {
                let seed =
                    (u32::from(ahead) << 24) | ((round as u32) << 16) | (padding >> 16) as u32;
                let bytes = padded_pdf(padding, seed);
                let path = library.join(format!("piece-{seed:x}.pdf"));
                std::fs::write(&path, &bytes).expect("write");
                let id = maestral_score::song_id(&bytes).as_str().to_owned();
                files.push((path, id.clone()));
                pieces.push((size.into(), ahead, id));
            }
        }
    }

    let mut command = support::maestral();
    command
        .args(["--headless", "--choir-master", "--listen", "127.0.0.1:0", "--state-dir"])
        .arg(root.0.join("master"))
        .arg(&library);
    let mut m = App::spawn(command);
    m.name = "the Master".into();
    let ready = m.wait("ready", |e| e["event"] == "ready");
    let code = ready["join_code"].as_str().expect("a join code").to_owned();
    // Each piece opened before the singers come, so the Master holds every one when a round
    // asks for it by id (its scan of the folder may still be hashing the large files).
    for (path, id) in &files {
        m.send(&format!("song {}", path.display()));
        m.wait("the piece open", |e| is_show_of(e, id) && e["page_count"].is_u64());
    }
    m.send(&format!("song {first}"));
    m.wait("the first piece", |e| is_show_of(e, &first));
    let mut singers: Vec<App> = (0..SINGERS)
        .map(|i| {
            let name = format!("singer-{i}");
            let mut c = support::maestral();
            c.args(["--headless", "--join", &code, "--device-id", &name, "--state-dir"])
                .arg(root.0.join(&name))
                .arg(&singer_library);
            let mut app = App::spawn(c);
            app.name = name;
            app
        })
        .collect();
    for s in &mut singers {
        s.wait("on the first piece", |e| is_show_of(e, &first) && e["page_count"].is_u64());
    }

    let mut samples: std::collections::BTreeMap<(String, bool), Vec<f64>> = Default::default();
    for (size, ahead, id) in &pieces {
        let times = change(&mut m, &mut singers, &first, id, *ahead);
        println!(
            "{size:>6} {:<7} slowest singer {:7.1} ms",
            if *ahead { "with" } else { "without" },
            times.iter().copied().fold(0.0, f64::max)
        );
        samples.entry((size.clone(), *ahead)).or_default().extend(times);
    }
    let mut rows = Vec::new();
    for ((size, ahead), times) in &samples {
        let s = Summary::of(times).expect("samples");
        println!(
            "{size:>6} {:<7} first page p50 {:7.1} ms  p99 {:7.1} ms  max {:7.1} ms  ({} samples)",
            if *ahead { "with" } else { "without" },
            s.p50,
            s.p99,
            s.max,
            times.len()
        );
        rows.push(json!({
            "size": size, "prefetch": ahead, "first_page_ms": s.json_ms(), "samples_ms": times,
        }));
    }
    for s in singers {
        let _ = s.quit();
    }
    let _ = m.quit();
    let report = json!({
        "bench": "setlist", "cores": cores, "profile": profile, "singers": SINGERS,
        "rounds": ROUNDS, "rows": rows,
    });
    if let Some(path) = write_report("setlist", &report) {
        println!("report: {}", path.display());
    }
}
