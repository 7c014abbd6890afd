//! Song identity and library scans over the demo scores and broken files.

mod common;

use common::*;
use maestral_score::{Library, LibraryEntry, ScanEvent, ScoreError, Song};
use sha2::{Digest, Sha256};

#[test]
fn a_song_id_is_the_sha256_of_the_file_and_survives_a_rename() {
    require_pdfium();
    let bytes = std::fs::read(choir()).expect("read the demo score");
    let expected: String = Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect();

    let song = Song::open(&choir()).expect("the choir score opens");
    assert_eq!(song.id.as_str(), expected);
    assert_eq!(maestral_score::song_id_of_file(&choir()).expect("read"), song.id);

    let dir = temp_dir("rename");
    let copy = dir.join("Renamed on the other tablet.pdf");
    std::fs::copy(choir(), &copy).expect("copy");
    let other = Song::open(&copy).expect("the copy opens");
    assert_eq!(other.id, song.id, "same bytes, same song");
    assert_eq!(other.title, song.title, "the title comes from the PDF, not the name");

    let jig = Song::open(&jig()).expect("the jig opens");
    assert_ne!(jig.id, song.id);
}

#[test]
fn demo_scores_have_their_titles_pages_and_sizes() {
    require_pdfium();
    let choir = Song::open(&choir()).expect("the choir score opens");
    assert_eq!(choir.title, "Lanterns on the Water");
    assert_eq!(choir.page_count, 11);
    assert_eq!(choir.page_sizes.len(), 11);
    for size in &choir.page_sizes {
        assert!(
            (size.width - 595.28).abs() < 0.5 && (size.height - 841.89).abs() < 0.5,
            "A4: {size:?}"
        );
    }

    let jig = Song::open(&jig()).expect("the jig opens");
    assert_eq!(jig.title, "Harbour Lights");
    assert_eq!(jig.page_count, 2);
    let size = jig.page_sizes[0];
    assert!(!size.is_portrait(), "A5 landscape: {size:?}");
    assert!((size.width - 595.28).abs() < 0.5 && (size.height - 419.53).abs() < 0.5, "{size:?}");
}

#[test]
fn without_a_metadata_title_the_file_name_is_the_title() {
    require_pdfium();
    let dir = temp_dir("untitled");
    let path = dir.join("Warm-up in D.pdf");
    std::fs::write(&path, synthetic_pdf(2, None)).expect("write");
    let song = Song::open(&path).expect("the synthetic score opens");
    assert_eq!(song.title, "Warm-up in D");
    assert_eq!(song.page_count, 2);
}

#[test]
fn the_demo_library_scans_to_two_songs() {
    require_pdfium();
    let library = Library::scan(demo_dir()).wait().expect("the demo folder scans");
    let titles: Vec<&str> = library.songs().map(|s| s.title.as_str()).collect();
    assert_eq!(titles, vec!["Harbour Lights", "Lanterns on the Water"]);
    assert_eq!(library.unreadable().count(), 0);
}

#[test]
fn a_scan_lists_broken_files_with_reasons_and_carries_on() {
    require_pdfium();
    let dir = temp_dir("scan");
    let nested = dir.join("choir/autumn");
    std::fs::create_dir_all(&nested).expect("mkdir");
    std::fs::copy(choir(), nested.join("lanterns.pdf")).expect("copy");
    std::fs::copy(jig(), dir.join("JIG.PDF")).expect("copy"); // extension in capitals
    std::fs::write(dir.join("a-empty.pdf"), b"").expect("write");
    std::fs::write(dir.join("b-notes.pdf"), "not a pdf at all").expect("write");
    std::fs::copy(fixture("password-protected.pdf"), dir.join("c-locked.pdf")).expect("copy");
    let whole = std::fs::read(jig()).expect("read");
    std::fs::write(dir.join("d-truncated.pdf"), &whole[..whole.len() / 3]).expect("write");
    std::fs::write(dir.join("readme.txt"), "ignored: not a .pdf").expect("write");

    let scan = Library::scan(&dir);
    let events: Vec<ScanEvent> = scan.events().iter().collect();
    let library = match events.last() {
        Some(ScanEvent::Finished(library)) => library.clone(),
        other => panic!("the scan should end with Finished, not {other:?}"),
    };
    assert!(
        matches!(events.first(), Some(ScanEvent::Started { total: 6 })),
        "{:?}",
        events.first()
    );
    let progress: Vec<(usize, usize)> = events
        .iter()
        .filter_map(|e| match e {
            ScanEvent::Progress { done, total } => Some((*done, *total)),
            _ => None,
        })
        .collect();
    assert_eq!(progress, (1..=6).map(|d| (d, 6)).collect::<Vec<_>>());
    assert_eq!(events.iter().filter(|e| matches!(e, ScanEvent::Entry(_))).count(), 6);

    assert_eq!(library.entries.len(), 6);
    assert_eq!(library.songs().count(), 2);
    let reason = |name: &str| -> &ScoreError {
        library
            .unreadable()
            .find(|(p, _)| p.file_name().is_some_and(|n| n == name))
            .map(|(_, r)| r)
            .unwrap_or_else(|| panic!("{name} should be listed as unreadable"))
    };
    assert!(matches!(reason("a-empty.pdf"), ScoreError::EmptyFile { .. }));
    assert!(matches!(reason("b-notes.pdf"), ScoreError::NotAPdf { .. }));
    assert!(matches!(reason("c-locked.pdf"), ScoreError::PasswordProtected { .. }));
    assert!(matches!(reason("d-truncated.pdf"), ScoreError::Truncated { .. }));
    let lanterns = library
        .entries
        .iter()
        .find_map(|e| match e {
            LibraryEntry::Song(s) if s.path.ends_with("choir/autumn/lanterns.pdf") => Some(s),
            _ => None,
        })
        .expect("the nested score is found");
    assert_eq!(library.song(&lanterns.id).map(|s| s.page_count), Some(11));
}

#[test]
fn scanning_a_missing_folder_fails_with_the_path() {
    let error = Library::scan("/no/such/folder").wait().expect_err("nothing to scan");
    assert!(matches!(error, ScoreError::Io { .. }), "{error:?}");
    assert!(error.to_string().contains("/no/such/folder"));
}

#[test]
fn a_single_file_is_a_library_of_one() {
    require_pdfium();
    let library = Library::scan_blocking(jig()).expect("scan");
    assert_eq!(library.songs().count(), 1);
}
