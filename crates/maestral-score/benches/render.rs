//! `cargo xtask bench render`: milliseconds per page on the demo scores, at 1080p-fit and
//! 4K-fit on a portrait screen, for
//!   (a) Maestral's path: a request in, the bitmap out of the channel (cache off),
//!   (b) a raw pdfium-render loop: the page drawn into one reused bitmap,
//!   (b') pdfium-render the naive way: a fresh bitmap per page, copied out as RGBA,
//!   (c) `mutool draw` and (d) `pdftoppm`, one process per score, time divided by its pages,
//! plus the time from a burst of ten page turns to the final page's bitmap.
//! Prints a table and writes `target/bench/render.json`. Goal: (a) ≤ 1.1 × (b).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use maestral_bench::{ms, percentile, write_report};
use maestral_score::{
    PixelSize, RenderConfig, RenderEvent, RenderRequest, RenderThread, Song, fit_page,
};
use pdfium_render::prelude::*;

/// Screen boxes, portrait (a rotated monitor, as performers use for one page).
const SIZES: [(&str, PixelSize); 2] =
    [("1080p-fit", PixelSize::new(1080, 1920)), ("4K-fit", PixelSize::new(2160, 3840))];
/// Passes over every page of a score, per method (more for short scores).
const MIN_SAMPLES: usize = 30;
const TOOL_RUNS: usize = 5;
const BURST_RUNS: usize = 7;

fn main() {
    let root = maestral_bench::workspace_root();
    let scores = [
        root.join("assets/scores/lanterns-on-the-water.pdf"),
        root.join("assets/scores/harbour-lights-jig.pdf"),
    ];
    if let Err(e) = maestral_score::pdfium::bind() {
        eprintln!("{e}");
        std::process::exit(1);
    }
    let mutool = tool_version("mutool", &["-v"]);
    let pdftoppm = tool_version("pdftoppm", &["-v"]);

    let mut rows = Vec::new();
    for path in &scores {
        let song = Song::open(path).expect("demo score opens");
        let passes = MIN_SAMPLES.div_ceil(song.page_count as usize);
        for (label, target) in SIZES {
            let fitted = fit_page(song.page_sizes[0], target).expect("demo sizes are valid");
            eprintln!("bench: {} at {label} ({fitted})…", song.title);
            let maestral = median(maestral_path(&song, target, passes));
            let (raw, naive) = raw_loop(&song, target, passes);
            let (raw, naive) = (median(raw), median(naive));
            let mutool_ms = mutool.as_ref().map(|_| {
                median(tool_runs(&song, || {
                    let mut c = Command::new("mutool");
                    c.args(["draw", "-q", "-F", "pam", "-o", "/dev/null", "-w"])
                        .arg(fitted.width.to_string())
                        .arg("-h")
                        .arg(fitted.height.to_string())
                        .arg(path);
                    c
                }))
            });
            let pdftoppm_ms = pdftoppm.as_ref().map(|_| {
                median(tool_runs(&song, || {
                    let mut c = Command::new("pdftoppm");
                    c.arg("-scale-to-x")
                        .arg(fitted.width.to_string())
                        .arg("-scale-to-y")
                        .arg(fitted.height.to_string())
                        .arg(path);
                    c
                }))
            });
            let burst = median(burst_runs(&song, target));
            rows.push(Row {
                score: song.title.clone(),
                pages: song.page_count,
                size: label,
                fitted,
                maestral,
                raw,
                naive,
                mutool: mutool_ms,
                pdftoppm: pdftoppm_ms,
                burst,
            });
        }
    }

    print_table(&rows, mutool.as_deref(), pdftoppm.as_deref());
    write_report("render", &json(&rows, mutool.as_deref(), pdftoppm.as_deref()));
}

struct Row {
    score: String,
    pages: u32,
    size: &'static str,
    fitted: PixelSize,
    maestral: f64,
    raw: f64,
    naive: f64,
    mutool: Option<f64>,
    pdftoppm: Option<f64>,
    burst: f64,
}

/// (a): request → bitmap out of the channel, every page, cache off so every request renders.
fn maestral_path(song: &Song, target: PixelSize, passes: usize) -> Vec<f64> {
    let config = RenderConfig { cache_budget: 0, ..RenderConfig::default() };
    let (renderer, events) = RenderThread::spawn(config).expect("render thread starts");
    renderer.add_song(song);
    let mut samples = Vec::new();
    // Pass 0 warms up (opens the document, fills the buffer pool) and is not counted.
    for pass in 0..=passes {
        for page in 0..song.page_count {
            let request = RenderRequest::visible(song.id.clone(), page, target);
            let start = Instant::now();
            renderer.want(vec![request.clone()]);
            let bitmap = loop {
                match events.recv_timeout(Duration::from_secs(60)).expect("render thread answers") {
                    RenderEvent::Rendered { request: r, bitmap, .. }
                        if r.key() == request.key() =>
                    {
                        break bitmap;
                    }
                    RenderEvent::Failed { error, .. } => panic!("render failed: {error}"),
                    _ => {}
                }
            };
            let elapsed = ms(start.elapsed());
            drop(bitmap);
            if pass > 0 {
                samples.push(elapsed);
            }
        }
    }
    samples
}

/// (b) and (b'): pdfium-render directly on this thread (no render thread is running now).
fn raw_loop(song: &Song, target: PixelSize, passes: usize) -> (Vec<f64>, Vec<f64>) {
    let pdfium = Pdfium::default(); // re-uses the binding made in main
    let document = pdfium.load_pdf_from_file(&song.path, None).expect("demo score opens");
    let config_for = |size: PixelSize| {
        PdfRenderConfig::new().set_fixed_size(size.width as i32, size.height as i32)
    };

    // (b): one bitmap, drawn into again and again.
    let mut raw = Vec::new();
    let mut reused: Option<(PixelSize, PdfBitmap)> = None;
    for pass in 0..=passes {
        for index in 0..song.page_count {
            let start = Instant::now();
            let page = document.pages().get(index as PdfPageIndex).expect("page loads");
            let size = fit_page(page_size(&page), target).expect("valid size");
            if reused.as_ref().is_none_or(|(s, _)| *s != size) {
                let bitmap =
                    PdfBitmap::empty(size.width as i32, size.height as i32, PdfBitmapFormat::BGRA)
                        .expect("bitmap");
                reused = Some((size, bitmap));
            }
            let (_, bitmap) = reused.as_mut().expect("set above");
            page.render_into_bitmap_with_config(bitmap, &config_for(size)).expect("renders");
            if pass > 0 {
                raw.push(ms(start.elapsed()));
            }
        }
    }

    // (b'): a fresh bitmap per page, its pixels copied out as RGBA.
    let mut naive = Vec::new();
    for pass in 0..=passes {
        for index in 0..song.page_count {
            let start = Instant::now();
            let page = document.pages().get(index as PdfPageIndex).expect("page loads");
            let size = fit_page(page_size(&page), target).expect("valid size");
            let rgba = page.render_with_config(&config_for(size)).expect("renders").as_rgba_bytes();
            if pass > 0 {
                naive.push(ms(start.elapsed()));
            }
            std::hint::black_box(rgba);
        }
    }
    (raw, naive)
}

fn page_size(page: &PdfPage) -> maestral_score::PageSize {
    maestral_score::PageSize { width: page.width().value, height: page.height().value }
}

/// (c) and (d): one process per run over the whole score; ms per page = wall time / pages.
fn tool_runs(song: &Song, command: impl Fn() -> Command) -> Vec<f64> {
    (0..=TOOL_RUNS)
        .filter_map(|run| {
            let start = Instant::now();
            let status = command().stdout(Stdio::null()).stderr(Stdio::null()).status();
            let elapsed = ms(start.elapsed());
            match status {
                Ok(s) if s.success() => (run > 0).then_some(elapsed / f64::from(song.page_count)),
                _ => None,
            }
        })
        .collect()
}

/// Ten page turns sent at once (as a performer's fast double-taps would), cold cache: the time
/// until the final page's bitmap is out of the channel.
fn burst_runs(song: &Song, target: PixelSize) -> Vec<f64> {
    let (renderer, events) =
        RenderThread::spawn(RenderConfig::default()).expect("render thread starts");
    renderer.add_song(song);
    // Turns onto pages 0..=9 (a short score stays on its last page): the final page is full.
    let last = song.page_count.min(10) - 1;
    let first = 0;
    let mut samples = Vec::new();
    for run in 0..=BURST_RUNS {
        // Empty the cache (keeping the document open) so every run draws.
        renderer.set_cache_budget(0);
        renderer.set_cache_budget(RenderConfig::default().cache_budget);
        let start = Instant::now();
        for turn in 0..10 {
            renderer.show_page(&song.id, (first + turn).min(last), target);
        }
        loop {
            match events.recv_timeout(Duration::from_secs(60)).expect("render thread answers") {
                RenderEvent::Rendered { request, .. }
                    if request.page == last
                        && request.priority == maestral_score::Priority::Visible =>
                {
                    break;
                }
                RenderEvent::Failed { error, .. } => panic!("render failed: {error}"),
                _ => {}
            }
        }
        if run > 0 {
            samples.push(ms(start.elapsed()));
        }
        // Let the prefetch of this run finish so it does not bleed into the next.
        renderer.want(Vec::new());
        let barrier = RenderRequest::visible(song.id.clone(), last, target);
        renderer.request(barrier.clone());
        while let Ok(event) = events.recv_timeout(Duration::from_secs(60)) {
            if let RenderEvent::Rendered { request, .. } = event
                && request == barrier
            {
                break;
            }
        }
    }
    samples
}

fn tool_version(tool: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(tool).args(args).output().ok()?;
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    text.lines().find(|l| l.contains("version")).map(|l| l.trim().to_string())
}

/// The median (nearest rank); NaN (shown as such) when a method gave no sample.
fn median(v: Vec<f64>) -> f64 {
    percentile(&v, 0.5).unwrap_or(f64::NAN)
}

fn cell(v: Option<f64>) -> String {
    v.map_or_else(|| "not installed".to_string(), |v| format!("{v:.2}"))
}

fn print_table(rows: &[Row], mutool: Option<&str>, pdftoppm: Option<&str>) {
    println!("\nmedian ms/page (portrait screen boxes; cache off for (a))");
    println!(
        "{:<32} {:<10} {:>10} {:>12} {:>9} {:>6} {:>10} {:>13} {:>13} {:>10}",
        "score",
        "size",
        "pixels",
        "(a) maestral",
        "(b) raw",
        "a/b",
        "(b') naive",
        "(c) mutool",
        "(d) pdftoppm",
        "burst ms"
    );
    for r in rows {
        let ratio = r.maestral / r.raw;
        println!(
            "{:<32} {:<10} {:>10} {:>12.2} {:>9.2} {:>5.2}{} {:>10.2} {:>13} {:>13} {:>10.1}",
            format!("{} ({}p)", r.score, r.pages),
            r.size,
            r.fitted.to_string(),
            r.maestral,
            r.raw,
            ratio,
            if ratio <= 1.1 { "✓" } else { "✗" },
            r.naive,
            cell(r.mutool),
            cell(r.pdftoppm),
            r.burst,
        );
    }
    println!(
        "goal: (a) ≤ 1.1 × (b). burst: 10 page turns at once, cold cache, until the final page is out."
    );
    println!(
        "tools: mutool {}; pdftoppm {}",
        mutool.unwrap_or("not installed"),
        pdftoppm.unwrap_or("not installed")
    );
}

fn json(rows: &[Row], mutool: Option<&str>, pdftoppm: Option<&str>) -> serde_json::Value {
    let rows: Vec<serde_json::Value> = rows
        .iter()
        .map(|r| {
            serde_json::json!({
                "score": r.score,
                "pages": r.pages,
                "size": r.size,
                "width": r.fitted.width,
                "height": r.fitted.height,
                "maestral_ms": r.maestral,
                "raw_pdfium_render_ms": r.raw,
                "ratio_maestral_to_raw": r.maestral / r.raw,
                "goal_met": r.maestral / r.raw <= 1.1,
                "naive_pdfium_render_ms": r.naive,
                "mutool_ms": r.mutool,
                "pdftoppm_ms": r.pdftoppm,
                "burst_of_10_turns_ms": r.burst,
            })
        })
        .collect();
    serde_json::json!({
        "benchmark": "render",
        "unit": "median milliseconds per page",
        "goal": "maestral_ms <= 1.1 * raw_pdfium_render_ms",
        "tools": { "mutool": mutool, "pdftoppm": pdftoppm },
        "rows": rows,
    })
}
