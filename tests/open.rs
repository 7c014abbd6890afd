//! Opening files in the app's ECS: files dropped on the window (scores, QR pictures, anything
//! else), a corrupt PDF, and a folder scan's progress. Every wait is bounded; nothing asserts on
//! time. Songs open through PDFium where the library finds it (`MAESTRAL_PDFIUM`); the progress
//! and error checks hold without it too (an unreadable file is a file read).

mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bevy::prelude::*;
use bevy::window::FileDragAndDrop;
use maestral::model::{AppError, JoinCodeRead, ModelPlugin, OpenScore, ScoreSystems, SongLibrary};
use maestral::open::{self, Dropped, classify_drop};
use maestral::score;
use maestral::wake::Waker;
use support::{TempDir, demo_score};

const WAIT: Duration = Duration::from_secs(60);

/// Messages of one kind seen so far (collected in `Last`).
#[derive(Resource)]
struct Seen<M: Send + Sync + 'static>(Vec<M>);

fn collect<M: Message + Clone>(mut reader: MessageReader<M>, mut seen: ResMut<Seen<M>>) {
    seen.0.extend(reader.read().cloned());
}

/// `SongLibrary::scan_progress` after each frame's scan news.
#[derive(Resource, Default)]
struct Progress(Vec<Option<(usize, usize)>>);

fn record_progress(library: Res<SongLibrary>, mut seen: ResMut<Progress>) {
    seen.0.push(library.scan_progress());
}

fn app() -> App {
    let mut app = App::new();
    app.add_plugins((MinimalPlugins, AssetPlugin::default()));
    app.add_plugins(ModelPlugin { waker: Waker::none() });
    app.init_asset::<Image>();
    app.add_plugins((score::plugin, open::plugin));
    app.insert_resource(Seen::<OpenScore>(Vec::new()))
        .insert_resource(Seen::<AppError>(Vec::new()))
        .insert_resource(Seen::<JoinCodeRead>(Vec::new()))
        .init_resource::<Progress>()
        .add_systems(Last, (collect::<OpenScore>, collect::<AppError>, collect::<JoinCodeRead>))
        .add_systems(PreUpdate, record_progress.after(ScoreSystems::Receive));
    app.update();
    app
}

fn drop_file(app: &mut App, path: &Path) {
    app.world_mut().write_message(FileDragAndDrop::DroppedFile {
        window: Entity::PLACEHOLDER,
        path_buf: path.to_path_buf(),
    });
}

fn seen<M: Message + Clone>(app: &App) -> Vec<M> {
    app.world().resource::<Seen<M>>().0.clone()
}

/// Runs frames until `done` holds (at most [`WAIT`]).
fn until(app: &mut App, what: &str, done: impl Fn(&App) -> bool) {
    let start = Instant::now();
    while !done(app) {
        assert!(start.elapsed() < WAIT, "gave up waiting for {what}");
        app.update();
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn qr_png(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    let image = maestral_net::qr::qr_image_min_size(text, 300).expect("QR image");
    image.save(&path).expect("write the QR picture");
    path
}

#[test]
fn a_dropped_pdf_or_folder_opens_and_shows_and_other_files_are_refused_by_name() {
    let dir = TempDir::new("open-drop");
    let notes = dir.0.join("notes.txt");
    std::fs::write(&notes, "not a score").expect("write");
    let pdf = demo_score("harbour-lights-jig.pdf");

    assert_eq!(classify_drop(&pdf), Dropped::Score(pdf.clone()));
    assert_eq!(classify_drop(&dir.0), Dropped::Score(dir.0.clone()));
    assert_eq!(classify_drop(Path::new("Photo.JPEG")), Dropped::QrImage("Photo.JPEG".into()));

    let mut app = app();
    drop_file(&mut app, &pdf);
    drop_file(&mut app, &dir.0);
    drop_file(&mut app, &notes);
    app.update();
    assert_eq!(
        seen::<OpenScore>(&app),
        vec![OpenScore { path: pdf, show: true }, OpenScore { path: dir.0.clone(), show: true }]
    );
    let errors = seen::<AppError>(&app);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].0.starts_with("notes.txt is not a PDF score or a folder"), "{errors:?}");
}

#[test]
fn a_dropped_picture_gives_its_qr_text_or_one_message_naming_it() {
    let dir = TempDir::new("open-qr");
    let code = "maestral://join?host=192.168.1.20:47110&session=0123456789abcdef&token=abc&fp=00";
    let with_code = qr_png(&dir.0, "code.png", code);
    let blank = dir.0.join("photo.jpg");
    image::RgbImage::from_pixel(320, 240, image::Rgb([250, 250, 240]))
        .save(&blank)
        .expect("write a JPEG");
    let broken = dir.0.join("broken.png");
    std::fs::write(&broken, "these bytes are no picture").expect("write");

    let mut app = app();
    for path in [&with_code, &blank, &broken] {
        drop_file(&mut app, path);
    }
    until(&mut app, "three readings", |app| {
        seen::<JoinCodeRead>(app).len() + seen::<AppError>(app).len() == 3
    });
    assert_eq!(seen::<JoinCodeRead>(&app), vec![JoinCodeRead(code.to_owned())]);
    let mut errors: Vec<String> = seen::<AppError>(&app).into_iter().map(|e| e.0).collect();
    errors.sort();
    assert_eq!(errors.len(), 2);
    assert!(errors[0].starts_with("broken.png is not an image the app can read: "), "{errors:?}");
    assert!(errors[1].starts_with("no QR code found in photo.jpg"), "{errors:?}");
    assert!(seen::<OpenScore>(&app).is_empty());
    assert_eq!(app.world().resource::<open::OpenDialog>().reading_qr(), 0);
}

#[test]
fn a_dropped_corrupt_pdf_gives_one_error_naming_it_and_the_library_keeps_its_songs() {
    let dir = TempDir::new("open-corrupt");
    let corrupt = dir.0.join("corrupt.pdf");
    // A PDF header, then nothing a reader can use.
    std::fs::write(&corrupt, b"%PDF-1.7\n1 0 obj << /Type /Catalog >>\ngarbage").expect("write");

    let mut app = app();
    drop_file(&mut app, &corrupt);
    until(&mut app, "the corrupt PDF's error", |app| !seen::<AppError>(app).is_empty());
    let errors = seen::<AppError>(&app);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].0.contains("corrupt.pdf"), "{errors:?}");
    let library = app.world().resource::<SongLibrary>();
    assert!(library.songs().is_empty());
    assert_eq!(library.unreadable.len(), 1);
    assert_eq!(library.unreadable[0].0, corrupt);
}

#[test]
fn a_folder_scan_reports_progress_up_to_done_equals_total_then_none() {
    let dir = TempDir::new("open-progress");
    for (i, name) in ["harbour-lights-jig.pdf", "lanterns-on-the-water.pdf"].iter().enumerate() {
        std::fs::copy(demo_score(name), dir.0.join(format!("{i}-{name}"))).expect("copy");
    }
    std::fs::write(dir.0.join("2-unreadable.pdf"), "not a pdf").expect("write");

    let mut app = app();
    app.world_mut().write_message(OpenScore { path: dir.0.clone(), show: false });
    until(&mut app, "the scan's end", |app| {
        let library = app.world().resource::<SongLibrary>();
        let found = library.songs().len() + library.unreadable.len();
        found == 3 && library.scanning == 0 && library.scan_progress().is_none()
    });
    let progress: Vec<(usize, usize)> =
        app.world().resource::<Progress>().0.iter().flatten().copied().collect();
    assert!(!progress.is_empty(), "the scan showed no progress");
    assert_eq!(progress.last(), Some(&(3, 3)), "{progress:?}");
    assert!(progress.windows(2).all(|w| w[0].0 <= w[1].0), "done only grows: {progress:?}");
    assert!(progress.iter().all(|(done, total)| done <= total || *total == 0), "{progress:?}");
    let library = app.world().resource::<SongLibrary>();
    assert_eq!(library.unreadable.len(), 1, "{:?}", library.unreadable);
}
