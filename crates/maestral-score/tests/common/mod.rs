//! Shared test helpers: the demo scores, PDFium, temporary folders, synthetic PDFs, events.
#![allow(dead_code)] // each test file uses its own subset

use std::path::{Path, PathBuf};
use std::time::Duration;

use crossbeam_channel::Receiver;
use maestral_score::{RenderEvent, RenderRequest};

/// This package's folder, as cargo gives it to the running process (`cargo test`, `cargo run`
/// and `cargo bench` set it), else as compiled. Clones at other paths that share one target
/// folder share this binary too (cargo fingerprints path packages by their relative path), and
/// the path compiled in is then another clone's.
pub fn package_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
}

/// The demo library, which doubles as the tests' fixtures.
pub fn demo_dir() -> PathBuf {
    package_dir().join("../../assets/scores")
}

/// The SATB piece: 11 pages, A4 portrait.
pub fn choir() -> PathBuf {
    demo_dir().join("lanterns-on-the-water.pdf")
}

/// The lead sheet: 2 pages, A5 landscape.
pub fn jig() -> PathBuf {
    demo_dir().join("harbour-lights-jig.pdf")
}

pub fn fixture(name: &str) -> PathBuf {
    package_dir().join("tests/fixtures").join(name)
}

/// Binds PDFium or fails the test saying how to get it. Tests never skip for a missing PDFium.
pub fn require_pdfium() {
    if let Err(e) = maestral_score::pdfium::bind() {
        panic!("these tests need PDFium: {e}");
    }
}

/// A fresh, empty folder for one test.
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("maestral-score-{name}-{}", std::process::id()));
    if dir.exists() {
        std::fs::remove_dir_all(&dir).expect("clear the test's temporary folder");
    }
    std::fs::create_dir_all(&dir).expect("create the test's temporary folder");
    dir
}

/// Page geometry of [`synthetic_pdf`]: A4 in points, one 4 pt black rule across the middle.
pub const SYN_PAGE: (f32, f32) = (595.0, 842.0);
/// The rule runs from x = 72 to x = 523 pt, centred on y = 421 pt (from the bottom).
pub const SYN_RULE: (f32, f32, f32, f32) = (72.0, 523.0, 421.0, 4.0);

/// A minimal PDF of `pages` A4 pages, each with the rule above, optionally titled.
pub fn synthetic_pdf(pages: usize, title: Option<&str>) -> Vec<u8> {
    synthetic_pdf_rotated(pages, title, 0)
}

/// The same, with every page's `/Rotate` set (how scanners and phones mark a turned page).
pub fn synthetic_pdf_rotated(pages: usize, title: Option<&str>, rotate: u32) -> Vec<u8> {
    let (x0, x1, y, w) = SYN_RULE;
    let content = format!("0 0 0 RG {w} w {x0} {y} m {x1} {y} l S\n");
    let mut objects: Vec<String> = Vec::new();
    // 1: catalog, 2: pages, 3: info, then a page and its content per page.
    let kids: Vec<String> = (0..pages).map(|i| format!("{} 0 R", 4 + 2 * i)).collect();
    objects.push("<< /Type /Catalog /Pages 2 0 R >>".into());
    objects.push(format!("<< /Type /Pages /Kids [{}] /Count {pages} >>", kids.join(" ")));
    objects.push(match title {
        Some(t) => format!("<< /Title ({t}) >>"),
        None => "<< >>".into(),
    });
    for i in 0..pages {
        objects.push(format!(
            "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {} {}] /Rotate {rotate} /Contents {} 0 R >>",
            SYN_PAGE.0,
            SYN_PAGE.1,
            5 + 2 * i
        ));
        objects.push(format!("<< /Length {} >>\nstream\n{content}endstream", content.len()));
    }
    let objects: Vec<Vec<u8>> = objects.into_iter().map(String::into_bytes).collect();
    maestral_bench::pdf::document(&objects)
}

/// Waits for the next event. The long limit only turns a hang into a failure; nothing here
/// depends on how fast rendering is.
pub fn next_event(events: &Receiver<RenderEvent>) -> RenderEvent {
    events.recv_timeout(Duration::from_secs(120)).expect("the render thread answers")
}

/// Waits for the event answering `request` (same page, song and target), skipping others.
pub fn event_for(events: &Receiver<RenderEvent>, request: &RenderRequest) -> RenderEvent {
    loop {
        let event = next_event(events);
        if request_of(&event).key() == request.key() {
            return event;
        }
    }
}

pub fn request_of(event: &RenderEvent) -> RenderRequest {
    match event {
        RenderEvent::Rendered { request, .. }
        | RenderEvent::Failed { request, .. }
        | RenderEvent::Slow { request, .. } => request.clone(),
    }
}

/// Is this RGBA pixel dark (ink)?
pub fn dark(p: &[u8]) -> bool {
    u32::from(p[0]) + u32::from(p[1]) + u32::from(p[2]) < 3 * 96
}

/// Is this RGBA pixel white paper?
pub fn white(p: &[u8]) -> bool {
    p[0] >= 250 && p[1] >= 250 && p[2] >= 250 && p[3] == 255
}

/// The longest run of dark pixels in a row.
pub fn longest_dark_run(row: &[u8]) -> usize {
    let (mut best, mut run) = (0, 0);
    for p in row.chunks_exact(4) {
        if dark(p) {
            run += 1;
            best = best.max(run);
        } else {
            run = 0;
        }
    }
    best
}
