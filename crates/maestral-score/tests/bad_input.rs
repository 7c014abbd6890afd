//! Every bad input gets a typed error and a readable message; nothing panics, and the render
//! thread goes on serving other requests.

mod common;

use std::path::Path;

use common::*;
use maestral_score::{
    PixelSize, RenderConfig, RenderEvent, RenderRequest, RenderThread, ScoreError, Song, SongSource,
};

/// The bad files, made fresh in a temporary folder (the password-protected one is a fixture).
struct BadFiles {
    empty: std::path::PathBuf,
    truncated: std::path::PathBuf,
    not_a_pdf: std::path::PathBuf,
    locked: std::path::PathBuf,
}

fn bad_files(test: &str) -> BadFiles {
    let dir = temp_dir(test);
    let empty = dir.join("empty.pdf");
    std::fs::write(&empty, b"").expect("write");
    let truncated = dir.join("truncated.pdf");
    let whole = std::fs::read(choir()).expect("read the demo score");
    std::fs::write(&truncated, &whole[..whole.len() / 2]).expect("write");
    let not_a_pdf = dir.join("setlist.pdf");
    std::fs::write(
        &not_a_pdf,
        "Setlist for Saturday\n1. Lanterns on the Water\n2. Harbour Lights\n",
    )
    .expect("write");
    let locked = dir.join("locked.pdf");
    std::fs::copy(fixture("password-protected.pdf"), &locked).expect("copy the fixture");
    BadFiles { empty, truncated, not_a_pdf, locked }
}

fn assert_names_file(error: &ScoreError, path: &Path) {
    let message = error.to_string();
    assert!(
        message.contains(&path.display().to_string()),
        "message does not name the file: {message}"
    );
    assert!(!message.contains('\n'), "message is one line: {message}");
}

#[test]
fn an_empty_file_is_reported_as_empty() {
    require_pdfium();
    let files = bad_files("empty");
    let error = Song::open(&files.empty).expect_err("an empty file is not a song");
    assert!(matches!(error, ScoreError::EmptyFile { .. }), "{error:?}");
    assert_names_file(&error, &files.empty);
    assert!(error.to_string().contains("empty"));
}

#[test]
fn a_truncated_pdf_is_reported_as_cut_off() {
    require_pdfium();
    let files = bad_files("truncated");
    let error = Song::open(&files.truncated).expect_err("half a PDF is not a song");
    assert!(matches!(error, ScoreError::Truncated { .. }), "{error:?}");
    assert_names_file(&error, &files.truncated);
    assert!(error.to_string().contains("copy the whole file again"));
}

#[test]
fn a_password_protected_pdf_is_reported_as_such() {
    require_pdfium();
    let files = bad_files("locked");
    let error =
        Song::open(&files.locked).expect_err("a locked PDF does not open without its password");
    assert!(matches!(error, ScoreError::PasswordProtected { .. }), "{error:?}");
    assert_names_file(&error, &files.locked);
    assert!(error.to_string().contains("password"));
}

#[test]
fn a_text_file_named_pdf_is_not_a_pdf() {
    require_pdfium();
    let files = bad_files("not-a-pdf");
    let error = Song::open(&files.not_a_pdf).expect_err("text is not a song");
    assert!(matches!(error, ScoreError::NotAPdf { .. }), "{error:?}");
    assert_names_file(&error, &files.not_a_pdf);
}

#[test]
fn a_missing_file_is_an_io_error() {
    let error = Song::open(Path::new("/no/such/score.pdf")).expect_err("no file, no song");
    assert!(matches!(error, ScoreError::Io { .. }), "{error:?}");
}

fn failure(event: RenderEvent) -> (RenderRequest, ScoreError) {
    match event {
        RenderEvent::Failed { request, error } => (request, error),
        RenderEvent::Rendered { request, .. } | RenderEvent::Slow { request, .. } => {
            panic!("{request:?} should have failed")
        }
    }
}

#[test]
fn the_render_thread_reports_bad_requests_and_keeps_serving() {
    require_pdfium();
    let files = bad_files("render-thread");
    let (renderer, events) =
        RenderThread::spawn(RenderConfig::default()).expect("the render thread starts");
    let good = Song::open(&choir()).expect("the choir score opens");
    renderer.add_song(&good);
    let target = PixelSize::new(600, 800);

    // Each bad file, registered under a made-up id, fails with its own error.
    type Expect = fn(&ScoreError) -> bool;
    let cases: [(&Path, Expect); 4] = [
        (&files.empty, |e| matches!(e, ScoreError::EmptyFile { .. })),
        (&files.truncated, |e| matches!(e, ScoreError::Truncated { .. })),
        (&files.not_a_pdf, |e| matches!(e, ScoreError::NotAPdf { .. })),
        (&files.locked, |e| matches!(e, ScoreError::PasswordProtected { .. })),
    ];
    for (i, (path, expected)) in cases.iter().enumerate() {
        let id = maestral_score::song_id(&[i as u8]);
        renderer.add_source(id.clone(), SongSource::File(path.to_path_buf()));
        let request = RenderRequest::visible(id.clone(), 0, target);
        renderer.request(request.clone());
        let (_, error) = failure(event_for(&events, &request));
        assert!(expected(&error), "{}: unexpected {error:?}", path.display());
        assert_names_file(&error, path);
    }

    // A page index past the end.
    let past_end = RenderRequest::visible(good.id.clone(), 11, target);
    renderer.request(past_end.clone());
    let (_, error) = failure(event_for(&events, &past_end));
    assert!(matches!(error, ScoreError::PageOutOfRange { page: 11, count: 11 }), "{error:?}");
    assert!(error.to_string().contains("11 pages"), "{error}");

    // Target sizes of 0 and 100,000 pixels.
    for (w, h) in [(0, 800), (600, 0), (100_000, 800), (600, 100_000)] {
        let request = RenderRequest::visible(good.id.clone(), 0, PixelSize::new(w, h));
        renderer.request(request.clone());
        let (_, error) = failure(event_for(&events, &request));
        assert!(
            matches!(error, ScoreError::BadSize { width, height } if width == w && height == h),
            "{error:?}"
        );
        assert!(error.to_string().contains("px"), "{error}");
    }

    // A song never added.
    let stranger = RenderRequest::visible(maestral_score::song_id(b"never added"), 0, target);
    renderer.request(stranger.clone());
    assert!(matches!(failure(event_for(&events, &stranger)).1, ScoreError::UnknownSong { .. }));

    // And after all that, a good page still renders.
    let fine = RenderRequest::visible(good.id.clone(), 10, target);
    renderer.request(fine.clone());
    match event_for(&events, &fine) {
        RenderEvent::Rendered { bitmap, .. } => assert!(bitmap.width() > 0),
        RenderEvent::Failed { error, .. } => panic!("the good page failed: {error}"),
        RenderEvent::Slow { .. } => panic!("a slow report before the page"),
    }
    let stats = renderer.stats();
    assert_eq!(stats.failed, 4 + 1 + 4 + 1, "{stats:?}");
}

#[test]
fn bytes_that_are_not_a_pdf_fail_in_memory_too() {
    require_pdfium();
    let (renderer, events) =
        RenderThread::spawn(RenderConfig::default()).expect("the render thread starts");
    let id = maestral_score::song_id(b"junk");
    renderer.add_source(
        id.clone(),
        SongSource::Bytes { name: "streamed.pdf".into(), bytes: b"junk".as_slice().into() },
    );
    let request = RenderRequest::visible(id.clone(), 0, PixelSize::new(100, 100));
    renderer.request(request.clone());
    assert!(matches!(failure(event_for(&events, &request)).1, ScoreError::NotAPdf { .. }));
}

#[test]
fn sizes_are_checked_before_rendering() {
    use maestral_score::{PageSize, fit_page};
    let a4 = PageSize { width: 595.28, height: 841.89 };
    assert!(matches!(fit_page(a4, PixelSize::new(0, 0)), Err(ScoreError::BadSize { .. })));
    assert!(matches!(
        fit_page(a4, PixelSize::new(100_000, 100_000)),
        Err(ScoreError::BadSize { .. })
    ));
    // Each side allowed, but the fitted page too large a bitmap.
    assert!(matches!(
        fit_page(a4, PixelSize::new(16_384, 16_384)),
        Err(ScoreError::BadSize { .. })
    ));
    assert_eq!(fit_page(a4, PixelSize::new(2160, 3840)).ok(), Some(PixelSize::new(2160, 3055)));
    assert_eq!(fit_page(a4, PixelSize::new(1, 1)).ok(), Some(PixelSize::new(1, 1)));
    // A page without a size is drawn as a square rather than refused.
    let none = PageSize { width: 0.0, height: f32::NAN };
    assert_eq!(fit_page(none, PixelSize::new(300, 200)).ok(), Some(PixelSize::new(200, 200)));
}
