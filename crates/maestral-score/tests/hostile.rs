//! Scores that would freeze the stage (issue 16): a huge file is listed without being read, a
//! scan of a score with tens of thousands of pages lets page turns through, a page that draws
//! slowly is reported once and never drawn ahead of time again.

mod common;

use std::time::Duration;

use common::*;
use maestral_score::{
    Library, LibraryEntry, MAX_SCORE_BYTES, PixelSize, RenderConfig, RenderEvent, RenderRequest,
    RenderThread, ScanEvent, ScoreError, Song,
};

#[test]
fn a_file_over_the_size_cap_is_listed_as_too_large_without_being_read() {
    require_pdfium();
    let dir = temp_dir("too-large");
    std::fs::copy(jig(), dir.join("jig.pdf")).expect("copy");
    // Sparse: it takes no disk, but reading it would take 300 MB of memory.
    let huge = std::fs::File::create(dir.join("huge.pdf")).expect("create");
    huge.set_len(MAX_SCORE_BYTES + 1).expect("grow");
    drop(huge);
    let library = Library::scan_blocking(&dir).expect("scans");
    assert_eq!(library.songs().count(), 1, "the good score is there");
    let (path, reason) = library.unreadable().next().expect("the huge file is listed");
    assert!(path.ends_with("huge.pdf"));
    assert!(matches!(reason, ScoreError::TooLarge { len, .. } if *len == MAX_SCORE_BYTES + 1));
    assert!(reason.to_string().contains("over the 268 MB a score may be"), "{reason}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_scan_of_a_score_with_many_pages_lets_a_page_turn_through() {
    require_pdfium();
    let dir = temp_dir("many-pages");
    std::fs::write(dir.join("tome.pdf"), synthetic_pdf(60_000, Some("Tome"))).expect("write");
    let (renderer, events) = RenderThread::spawn(RenderConfig::default()).expect("starts");
    let song = Song::open(&jig()).expect("opens");
    renderer.add_song(&song);
    let first = RenderRequest::visible(song.id.clone(), 0, PixelSize::new(400, 300));
    renderer.request(first.clone());
    assert!(matches!(event_for(&events, &first), RenderEvent::Rendered { .. }));

    let scan = Library::scan(&dir);
    assert!(matches!(scan.events().recv(), Ok(ScanEvent::Started { total: 1 })));
    // The scan goes on to read the tome's 60,000 pages: a turn asks for a page meanwhile.
    assert!(
        matches!(scan.events().recv(), Ok(ScanEvent::Opening(p)) if p.ends_with("tome.pdf")),
        "the scan opens the tome"
    );
    let turn = RenderRequest::visible(song.id.clone(), 1, PixelSize::new(400, 300));
    renderer.request(turn.clone());
    assert!(matches!(event_for(&events, &turn), RenderEvent::Rendered { .. }));
    let finished_before_the_turn =
        scan.events().try_iter().any(|e| matches!(e, ScanEvent::Finished(_)));
    assert!(!finished_before_the_turn, "the turn did not wait for the whole scan");
    let library = scan.wait().expect("the scan ends");
    let entry = library.entries.first().expect("the tome");
    let LibraryEntry::Song(tome) = entry else { panic!("{entry:?}") };
    assert_eq!(tome.page_count, 60_000);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_page_slower_than_the_bound_is_reported_once_and_no_longer_prefetched() {
    require_pdfium();
    // Every page counts as slow here: the bound is zero.
    let config = RenderConfig { slow_render: Duration::ZERO, ..RenderConfig::default() };
    let (renderer, events) = RenderThread::spawn(config).expect("starts");
    let song = Song::open(&choir()).expect("opens");
    renderer.add_song(&song);
    let shown = RenderRequest::visible(song.id.clone(), 2, PixelSize::new(300, 400));
    renderer.request(shown.clone());
    assert!(matches!(next_event(&events), RenderEvent::Rendered { .. }));
    match next_event(&events) {
        RenderEvent::Slow { request, took } => {
            assert_eq!(request.key(), shown.key());
            assert!(took > Duration::ZERO);
        }
        other => panic!("not a slow report: {other:?}"),
    }
    assert_eq!(renderer.stats().slow, 1);
    // Drawn ahead of time at another size: skipped. A page never drawn before is drawn.
    let ahead = RenderRequest::prefetch(song.id.clone(), 2, PixelSize::new(600, 800));
    let other = RenderRequest::prefetch(song.id.clone(), 3, PixelSize::new(600, 800));
    renderer.request(ahead);
    renderer.request(other.clone());
    let event = next_event(&events);
    assert_eq!(request_of(&event).key(), other.key(), "the slow page was not prefetched");
    let rendered = renderer.stats().rendered;
    assert_eq!(rendered, 2, "only the shown page and the other one were drawn");
    // Shown at the new size, it is drawn (the performer asked for it).
    let again = RenderRequest::visible(song.id.clone(), 2, PixelSize::new(600, 800));
    renderer.request(again.clone());
    assert!(matches!(event_for(&events, &again), RenderEvent::Rendered { .. }));
    assert_eq!(renderer.stats().slow, 2, "page 3 was slow too; page 2 is told once");
}
