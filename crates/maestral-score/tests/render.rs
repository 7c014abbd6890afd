//! The render thread against real PDFium and the demo scores: pixels, priorities, superseded
//! requests, the cache's byte bound.

mod common;

use std::sync::Arc;

use common::*;
use maestral_score::{
    PageBitmap, PixelSize, Priority, RenderConfig, RenderEvent, RenderRequest, RenderThread, Song,
    SongSource,
};

fn rendered(event: RenderEvent) -> (RenderRequest, Arc<PageBitmap>, bool) {
    match event {
        RenderEvent::Rendered { request, bitmap, from_cache } => (request, bitmap, from_cache),
        RenderEvent::Failed { request, error } => panic!("{request:?} failed: {error}"),
        RenderEvent::Slow { request, .. } => panic!("{request:?}: a slow report, not a page"),
    }
}

fn start() -> (RenderThread, crossbeam_channel::Receiver<RenderEvent>) {
    require_pdfium();
    RenderThread::spawn(RenderConfig::default()).expect("the render thread starts")
}

/// Rows whose longest dark run spans at least half the width: staff lines (and beams, rarely).
fn staff_line_rows(bitmap: &PageBitmap) -> Vec<u32> {
    (0..bitmap.height())
        .filter(|&y| {
            let row = bitmap.row(y).expect("row in range");
            longest_dark_run(row) * 2 >= bitmap.width() as usize
        })
        .collect()
}

/// Runs of adjacent rows, as (first, last).
fn groups(rows: &[u32]) -> Vec<(u32, u32)> {
    let mut out: Vec<(u32, u32)> = Vec::new();
    for &y in rows {
        match out.last_mut() {
            Some((_, last)) if *last + 1 == y => *last = y,
            _ => out.push((y, y)),
        }
    }
    out
}

#[test]
fn a_demo_page_has_staff_lines_on_white_paper() {
    let (renderer, events) = start();
    let song = Song::open(&choir()).expect("the choir score opens");
    renderer.add_song(&song);
    // A 4K portrait screen: an A4 page fills the width, staff lines are 2 px or so.
    let request = RenderRequest::visible(song.id.clone(), 0, PixelSize::new(2160, 3840));
    renderer.request(request.clone());
    let (_, bitmap, from_cache) = rendered(event_for(&events, &request));
    assert!(!from_cache);
    assert_eq!((bitmap.width(), bitmap.height()), (2160, 3055), "A4 fitted into 2160×3840");
    assert_eq!(bitmap.pixels().len(), 2160 * 3055 * 4);

    // Staff lines: dark rows across most of the page, 4 staves of 5 lines in each of 2 systems,
    // evenly spaced within a staff.
    let lines = groups(&staff_line_rows(&bitmap));
    assert_eq!(lines.len(), 5 * 4 * 2, "staff lines found: {lines:?}");
    for staff in lines.chunks(5) {
        let gaps: Vec<u32> = staff.windows(2).map(|w| w[1].0 - w[0].0).collect();
        let (min, max) = (gaps.iter().min(), gaps.iter().max());
        assert!(max.zip(min).is_some_and(|(a, b)| a - b <= 1), "uneven staff {staff:?}");
    }
    // Where the PDF has a staff line, the middle of the page is ink ...
    let (y, _) = lines[0];
    let x_mid = bitmap.width() / 2;
    assert!(dark(&bitmap.pixel(x_mid, y).expect("in range")), "no ink at ({x_mid}, {y})");
    // ... and where it has none, paper: the strip above the title, the left and right edges,
    // and the rows between two lines of a staff.
    for y in 0..40 {
        assert!(
            bitmap.row(y).expect("row").chunks_exact(4).all(white),
            "top margin row {y} is not white"
        );
    }
    for y in 0..bitmap.height() {
        for x in [0, 1, 2, bitmap.width() - 2, bitmap.width() - 1] {
            assert!(
                white(&bitmap.pixel(x, y).expect("in range")),
                "edge pixel ({x}, {y}) is not white"
            );
        }
    }
    // Halfway between two lines of a staff, only notes and stems cross the row: no long ink.
    let between = (lines[0].1 + lines[1].0) / 2;
    let run = longest_dark_run(bitmap.row(between).expect("row"));
    assert!(
        run < bitmap.width() as usize / 10,
        "row {between} between staff lines has a {run} px dark run"
    );
}

#[test]
fn a_landscape_page_fits_by_height_and_keeps_its_aspect() {
    let (renderer, events) = start();
    let song = Song::open(&jig()).expect("the jig opens");
    renderer.add_song(&song);
    let request = RenderRequest::visible(song.id.clone(), 1, PixelSize::new(1920, 1080));
    renderer.request(request.clone());
    let (_, bitmap, _) = rendered(event_for(&events, &request));
    // 595.28 × 419.53 pt scaled by 1080 / 419.53.
    assert_eq!((bitmap.width(), bitmap.height()), (1532, 1080));
    assert!(!staff_line_rows(&bitmap).is_empty(), "the lead sheet's second page has a staff");
}

#[test]
fn the_rule_of_a_synthetic_page_lands_on_the_expected_rows() {
    let (renderer, events) = start();
    let bytes: Arc<[u8]> = synthetic_pdf(1, None).into();
    let id = maestral_score::song_id(&bytes);
    renderer.add_source(id.clone(), SongSource::Bytes { name: "synthetic.pdf".into(), bytes });
    let request = RenderRequest::visible(id.clone(), 0, PixelSize::new(595, 842));
    renderer.request(request.clone());
    let (_, bitmap, _) = rendered(event_for(&events, &request));
    assert_eq!((bitmap.width(), bitmap.height()), (595, 842)); // 1 px per point
    let (x0, x1, y, w) = SYN_RULE;
    let rule_row = (SYN_PAGE.1 - y) as u32; // PDF y runs up, bitmap rows run down
    for dy in [-1i32, 0, 1] {
        let row = bitmap.row((rule_row as i32 + dy) as u32).expect("row");
        let run = longest_dark_run(row);
        assert!((run as f32 - (x1 - x0)).abs() <= 2.0, "row {rule_row}{dy:+}: dark run {run}");
    }
    for y_off in [(w as i32) + 3, -(w as i32) - 3, 200, -200] {
        let row = bitmap.row((rule_row as i32 + y_off) as u32).expect("row");
        assert!(row.chunks_exact(4).all(white), "row {rule_row}{y_off:+} should be blank");
    }
    // Left of the rule's start, on its row: white paper.
    assert!(white(&bitmap.pixel(x0 as u32 - 4, rule_row).expect("in range")));
}

#[test]
fn a_burst_of_ten_turns_renders_only_the_final_page() {
    let (renderer, events) = start();
    let song = Song::open(&choir()).expect("the choir score opens");
    renderer.add_song(&song);
    let target = PixelSize::new(1080, 1920);
    // Hold rendering so all ten turns are queued before anything is drawn, whatever the timing.
    renderer.pause();
    for page in 1..=10 {
        renderer.show_page(&song.id, page, target);
    }
    renderer.resume();

    // The final page comes first (visible), then its prefetch: page 9 (11 and 12 do not exist).
    let (first, _, _) = rendered(next_event(&events));
    assert_eq!((first.page, first.priority), (10, Priority::Visible));
    let (second, _, _) = rendered(next_event(&events));
    assert_eq!((second.page, second.priority), (9, Priority::Prefetch));
    let stats = renderer.stats();
    assert_eq!(stats.rendered, 2, "only page 10 and its prefetched neighbour are drawn: {stats:?}");
    assert!(stats.dropped_stale >= 9, "the nine superseded pages were dropped: {stats:?}");

    // A barrier: anything else the thread sent would arrive before this answer.
    let again = RenderRequest::visible(song.id.clone(), 10, target);
    renderer.request(again.clone());
    let (request, _, from_cache) = rendered(next_event(&events));
    assert_eq!(request.key(), again.key());
    assert!(from_cache, "page 10 is answered from the cache");
    assert_eq!(renderer.stats().rendered, 2);
}

#[test]
fn visible_pages_are_served_before_prefetch() {
    let (renderer, events) = start();
    let song = Song::open(&choir()).expect("the choir score opens");
    renderer.add_song(&song);
    let target = PixelSize::new(540, 960);
    renderer.pause();
    renderer.request(RenderRequest::prefetch(song.id.clone(), 3, target));
    renderer.request(RenderRequest::prefetch(song.id.clone(), 4, target));
    renderer.request(RenderRequest::visible(song.id.clone(), 7, target));
    renderer.resume();
    let order: Vec<u32> = (0..3).map(|_| rendered(next_event(&events)).0.page).collect();
    assert_eq!(order, vec![7, 3, 4]);
}

#[test]
fn a_300_page_score_at_4k_stays_within_the_cache_budget() {
    require_pdfium();
    // 4K portrait screen: a synthetic A4 page renders at 2160 × 3057 px, about 26 MB.
    let target = PixelSize::new(2160, 3840);
    let budget = 100 << 20;
    let config = RenderConfig { cache_budget: budget, ..RenderConfig::default() };
    let (renderer, events) = RenderThread::spawn(config).expect("the render thread starts");
    let bytes: Arc<[u8]> = synthetic_pdf(300, Some("Three hundred pages")).into();
    let id = maestral_score::song_id(&bytes);
    renderer.add_source(id.clone(), SongSource::Bytes { name: "300-pages.pdf".into(), bytes });

    for page in 0..300 {
        let request = RenderRequest::visible(id.clone(), page, target);
        renderer.want(vec![request.clone()]);
        let (_, bitmap, _) = rendered(event_for(&events, &request));
        assert_eq!((bitmap.width(), bitmap.height()), (2160, 3057));
        // Every page, drawn into a recycled buffer, is whole: the rule where it belongs and
        // nothing left over from the page before.
        let scale = 2160.0 / SYN_PAGE.0;
        let rule_row = ((SYN_PAGE.1 - SYN_RULE.2) * scale) as u32;
        assert!(dark(&bitmap.pixel(1080, rule_row).expect("in range")), "page {page}: no rule");
        assert!(bitmap.row(rule_row - 100).expect("row").chunks_exact(4).all(white), "page {page}");
        drop(bitmap);
        let stats = renderer.stats();
        assert!(stats.cache_bytes <= budget as u64, "page {page}: {stats:?}");
        assert!(stats.cache_peak_bytes <= budget as u64, "page {page}: {stats:?}");
    }
    let stats = renderer.stats();
    assert_eq!(stats.rendered, 300);
    assert!(stats.cached_pages <= 3, "{stats:?}");
    // Evicted pages' buffers came back and were drawn into again.
    assert!(stats.buffers_reused >= 290, "buffers were not reused: {stats:?}");
    assert!(stats.buffers_allocated <= 10, "{stats:?}");
    // Beyond the budget, only a few spare buffers wait for reuse.
    let page_bytes = 2160 * 3057 * 4;
    assert!(stats.spare_buffer_bytes <= 3 * page_bytes, "{stats:?}");
}

#[test]
fn pages_come_back_from_the_cache_and_budget_zero_keeps_nothing() {
    let (renderer, events) = start();
    let song = Song::open(&jig()).expect("the jig opens");
    renderer.add_song(&song);
    let request = RenderRequest::visible(song.id.clone(), 0, PixelSize::new(800, 600));
    renderer.request(request.clone());
    assert!(!rendered(event_for(&events, &request)).2);
    renderer.request(request.clone());
    assert!(rendered(event_for(&events, &request)).2, "second time from the cache");

    renderer.set_cache_budget(0);
    renderer.request(request.clone());
    assert!(!rendered(event_for(&events, &request)).2, "nothing kept under a zero budget");
    assert_eq!(renderer.stats().cache_bytes, 0);
}

#[test]
fn removed_songs_are_forgotten() {
    let (renderer, events) = start();
    let song = Song::open(&jig()).expect("the jig opens");
    renderer.add_song(&song);
    let request = RenderRequest::visible(song.id.clone(), 0, PixelSize::new(400, 300));
    renderer.request(request.clone());
    rendered(event_for(&events, &request));
    renderer.remove_song(&song.id);
    renderer.request(request.clone());
    match event_for(&events, &request) {
        RenderEvent::Failed {
            error: maestral_score::ScoreError::UnknownSong { song: id }, ..
        } => {
            assert_eq!(id, song.id)
        }
        other => panic!("expected UnknownSong, got {other:?}"),
    }
    assert_eq!(renderer.stats().open_documents, 0);
}

#[test]
fn a_page_turned_by_its_rotate_entry_is_drawn_turned() {
    let (renderer, events) = start();
    let dir = temp_dir("rotated");
    let path = dir.join("scanned sideways.pdf");
    std::fs::write(&path, synthetic_pdf_rotated(1, None, 90)).expect("write");
    let song = Song::open(&path).expect("the rotated score opens");
    let size = song.page_sizes[0];
    assert_eq!((size.width, size.height), (SYN_PAGE.1, SYN_PAGE.0), "width and height swap");
    renderer.add_song(&song);
    let request = RenderRequest::visible(song.id.clone(), 0, PixelSize::new(842, 842));
    renderer.request(request.clone());
    let (_, bitmap, _) = rendered(event_for(&events, &request));
    assert_eq!((bitmap.width(), bitmap.height()), (842, 595));
    // The horizontal rule is now a vertical one: a dark column, no long dark row.
    let longest_row = (0..bitmap.height())
        .map(|y| longest_dark_run(bitmap.row(y).expect("row")))
        .max()
        .unwrap_or(0);
    assert!(longest_row < 20, "a row holds {longest_row} dark pixels");
    let dark_in_column = |x: u32| {
        (0..bitmap.height()).filter(|&y| dark(&bitmap.pixel(x, y).expect("in range"))).count()
    };
    let best = (0..bitmap.width()).map(dark_in_column).max().unwrap_or(0);
    assert!((best as f32 - (SYN_RULE.1 - SYN_RULE.0)).abs() <= 2.0, "longest dark column {best}");
}
