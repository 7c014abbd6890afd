//! Scores in the app: the song library, the bridge to `maestral-score`'s render thread, and the
//! page textures (requested for what is shown and prefetched, uploaded as `Image` assets, and
//! released when no longer shown or prefetched).

use std::collections::{HashSet, VecDeque};
use std::path::{Path, PathBuf};

use bevy::asset::RenderAssetUsages;
use bevy::prelude::*;
use bevy::render::render_resource::{Extent3d, TextureDimension, TextureFormat};
use crossbeam_channel::Receiver;
use maestral_score::{
    Library, LibraryEntry, LibraryScan, PageBitmap, PixelSize, RenderClient, RenderConfig,
    RenderEvent, RenderRequest, RenderThread, ScanEvent, ScoreError, Song, SongId,
};

use crate::model::{
    AppError, OpenScore, PageTexture, PageTextures, PageTurnRequested, ScoreSystems,
    SongChangeRequested, SongLibrary, TextureKey, Turn, WantedPages,
};
use crate::persistence::{Resume, SavedPositions};
use crate::wake::{Waker, relay};

pub fn plugin(app: &mut App) {
    app.init_resource::<LibraryScans>()
        .init_resource::<PendingOpens>()
        .init_resource::<PageImageUsage>()
        .add_systems(
            PreUpdate,
            (
                (open_scores, receive_opens, receive_scans).chain(),
                receive_pages.run_if(resource_exists::<RenderBridge>),
            )
                .in_set(ScoreSystems::Receive),
        )
        .add_systems(
            PostUpdate,
            (request_pages, release_textures)
                .chain()
                .run_if(resource_exists::<RenderBridge>)
                .in_set(ScoreSystems::Request),
        );
}

/// The bundled demo scores: an installed package's (`../share/maestral/scores` from the
/// executable, on macOS the bundle's `../Resources/scores`, or `scores` beside it), else
/// `assets/scores` in the working folder, else (debug builds only: a release build never reads a
/// path of the machine that built it) the source tree's.
pub fn demo_library() -> PathBuf {
    let installed = maestral_score::pdfium::executable_dir().into_iter().flat_map(|dir| {
        let prefix = dir.parent().map_or_else(|| dir.join(".."), Path::to_path_buf);
        let share = prefix.join("share").join("maestral").join("scores");
        // A macOS app bundle: `Contents/Resources/scores` beside `Contents/MacOS/`.
        let bundle = cfg!(target_os = "macos").then(|| prefix.join("Resources").join("scores"));
        [Some(share), bundle, Some(dir.join("scores"))].into_iter().flatten()
    });
    let here = Path::new("assets/scores").to_path_buf();
    let source =
        cfg!(debug_assertions).then(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/scores"));
    installed.chain([here.clone()]).chain(source).find(|p| p.is_dir()).unwrap_or(here)
}

/// Library scans running on their own threads.
#[derive(Resource, Debug, Default)]
pub struct LibraryScans(Vec<RunningScan>);

#[derive(Debug)]
struct RunningScan {
    root: PathBuf,
    events: Receiver<ScanEvent>,
    show_first: bool,
    /// Kept so the scan runs to its end (dropping it cancels the scan).
    _scan: LibraryScan,
}

/// The render thread and its events (relayed so that each one wakes the app).
#[derive(Resource, Debug)]
pub struct RenderBridge {
    thread: RenderThread,
    events: Receiver<RenderEvent>,
    /// Songs the render thread has been told about.
    known: HashSet<SongId>,
}

impl RenderBridge {
    /// Starts the render thread (binding PDFium: a missing library is reported here).
    pub fn start(waker: Waker) -> Result<Self, ScoreError> {
        let (thread, events) = RenderThread::spawn(RenderConfig::default())?;
        Ok(RenderBridge { thread, events: relay("render", events, waker), known: HashSet::new() })
    }

    /// The render thread drops the song (a streamed score cleared): its bytes go with it.
    pub fn forget(&mut self, song: &SongId) {
        self.thread.client().remove_song(song);
        self.known.remove(song);
    }

    pub fn client(&self) -> &RenderClient {
        self.thread.client()
    }
}

/// How page images are kept: the window app lets the CPU copy go once the GPU has it;
/// tests without a renderer keep it.
#[derive(Resource, Debug, Clone, Copy, Default)]
pub struct PageImageUsage(pub RenderAssetUsages);

/// Inverts the colour channels of RGBA8 pixels (dark pages: light notes on black).
pub fn invert_rgb(pixels: &mut [u8]) {
    for px in pixels.chunks_exact_mut(4) {
        px[0] = 255 - px[0];
        px[1] = 255 - px[1];
        px[2] = 255 - px[2];
    }
}

/// A rendered page as an sRGB image, pixel for pixel.
pub fn page_image(bitmap: &PageBitmap, dark: bool, usage: RenderAssetUsages) -> Image {
    let mut pixels = bitmap.pixels().to_vec();
    if dark {
        invert_rgb(&mut pixels);
    }
    Image::new(
        Extent3d { width: bitmap.width(), height: bitmap.height(), depth_or_array_layers: 1 },
        TextureDimension::D2,
        pixels,
        TextureFormat::Rgba8UnormSrgb,
        usage,
    )
}

/// Score files being opened on worker threads (reading a whole PDF, hashing it and asking
/// PDFium for its pages takes a while, and PDFium's lock may be held by the render thread): the
/// frame never waits for one. Results are applied in the order the opens were asked for.
#[derive(Resource, Debug, Default)]
pub struct PendingOpens(VecDeque<PendingOpen>);

#[derive(Debug)]
struct PendingOpen {
    path: PathBuf,
    show: bool,
    result: Receiver<Result<Song, String>>,
    /// Taken from `result` while an older open is still running.
    done: Option<Result<Song, String>>,
}

impl PendingOpens {
    /// Score files still being opened.
    pub fn in_flight(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Opens `path` on a thread of its own; the result comes back on the returned channel, and
/// the app is woken.
fn open_in_background(path: PathBuf, waker: Waker) -> Receiver<Result<Song, String>> {
    let (tx, rx) = crossbeam_channel::bounded(1);
    let worker = {
        let (tx, path, waker) = (tx.clone(), path.clone(), waker.clone());
        move || {
            let _ = tx.send(Song::open(&path).map_err(|e| e.to_string()));
            waker.wake();
        }
    };
    if let Err(error) = std::thread::Builder::new().name("maestral-open".into()).spawn(worker) {
        let _ = tx.send(Err(format!(
            "{}: could not start a thread to open it ({error})",
            path.display()
        )));
        waker.wake();
    }
    rx
}

fn open_scores(
    mut requests: MessageReader<OpenScore>,
    mut library: ResMut<SongLibrary>,
    mut scans: ResMut<LibraryScans>,
    mut opens: ResMut<PendingOpens>,
    waker: Res<Waker>,
    mut errors: MessageWriter<AppError>,
) {
    for OpenScore { path, show: show_it } in requests.read() {
        // Two quick looks at the file system (no reading): the answer for a wrong path comes
        // in this frame.
        if !path.exists() {
            errors.write(AppError(format!(
                "{}: there is no such file or folder; give the path of a PDF score or of a folder of scores",
                path.display()
            )));
            continue;
        }
        if path.is_dir() {
            let scan = Library::scan(path.clone());
            let events = relay("scan", scan.events().clone(), waker.clone());
            library.scanning += 1;
            library.scan_files.get_or_insert((0, 0));
            scans.0.push(RunningScan {
                root: path.clone(),
                events,
                show_first: *show_it,
                _scan: scan,
            });
            continue;
        }
        let result = open_in_background(path.clone(), waker.clone());
        opens.0.push_back(PendingOpen { path: path.clone(), show: *show_it, result, done: None });
    }
}

/// Applies opened score files, oldest request first (a later open that finished sooner waits
/// for the ones before it, so `song A` then `song B` shows B). Wakes the app once one is
/// applied: what waited for it (a control command after `song PATH`) runs in the next frame,
/// not at the next idle one.
fn receive_opens(
    mut opens: ResMut<PendingOpens>,
    mut library: ResMut<SongLibrary>,
    mut errors: MessageWriter<AppError>,
    mut show: MessageWriter<SongChangeRequested>,
    mut turns: MessageWriter<PageTurnRequested>,
    mut saved: Option<ResMut<SavedPositions>>,
    waker: Res<Waker>,
) {
    for open in opens.0.iter_mut().filter(|o| o.done.is_none()) {
        match open.result.try_recv() {
            Ok(result) => open.done = Some(result),
            Err(crossbeam_channel::TryRecvError::Empty) => {}
            Err(crossbeam_channel::TryRecvError::Disconnected) => {
                open.done =
                    Some(Err(format!("{}: the thread opening it stopped", open.path.display())));
            }
        }
    }
    if opens.0.front().is_some_and(|o| o.done.is_some()) {
        waker.wake();
    }
    while opens.0.front().is_some_and(|o| o.done.is_some()) {
        let Some(PendingOpen { path, show: show_it, done: Some(result), .. }) = opens.0.pop_front()
        else {
            break;
        };
        match result {
            Ok(song) => {
                info!("opened {} ({} pages)", song.title, song.page_count);
                let id = library.insert(song);
                library.unreadable.retain(|(p, _)| *p != path);
                if show_it {
                    show.write(SongChangeRequested(Some(id.clone())));
                    // Where the performer left off, if that was this song.
                    let resume = saved.as_mut().and_then(|s| s.take_resume(library.get(&id)));
                    if let Some(Resume { page: Some(page), .. }) = resume {
                        turns.write(PageTurnRequested(Turn::To(page)));
                    }
                }
            }
            Err(message) => {
                warn!("{message}");
                if !library.unreadable.iter().any(|(p, _)| *p == path) {
                    library.unreadable.push((path, message.clone()));
                }
                errors.write(AppError(message));
            }
        }
    }
}

fn receive_scans(
    mut scans: ResMut<LibraryScans>,
    mut library: ResMut<SongLibrary>,
    mut errors: MessageWriter<AppError>,
    mut show: MessageWriter<SongChangeRequested>,
    mut turns: MessageWriter<PageTurnRequested>,
    mut saved: Option<ResMut<SavedPositions>>,
    waker: Res<Waker>,
) {
    // The frame after the last scan ended: its full bar has been shown once.
    if library.scanning == 0 && library.scan_progress().is_some() {
        library.scan_files = None;
    }
    let mut finished = Vec::new();
    for (i, scan) in scans.0.iter().enumerate() {
        for event in scan.events.try_iter() {
            match event {
                ScanEvent::Started { total } => {
                    let files = library.scan_files.get_or_insert((0, 0));
                    files.1 += total;
                }
                ScanEvent::Progress { .. } => {
                    let files = library.scan_files.get_or_insert((0, 0));
                    files.0 += 1;
                }
                ScanEvent::Finished(found) => {
                    let mut first = None;
                    for entry in found.entries {
                        match entry {
                            LibraryEntry::Song(song) => {
                                let id = library.insert(song);
                                first.get_or_insert(id);
                            }
                            LibraryEntry::Unreadable { path, reason } => {
                                let message = reason.to_string();
                                errors.write(AppError(message.clone()));
                                library.unreadable.push((path, message));
                            }
                        }
                    }
                    info!("{}: {} songs", scan.root.display(), library.songs().len());
                    if scan.show_first {
                        // Where the performer left off, if this folder has that song; else
                        // its first song.
                        let resume = saved.as_mut().and_then(|s| s.take_resume(library.songs()));
                        if let Some(Resume { song, page }) = resume {
                            show.write(SongChangeRequested(Some(song.clone())));
                            if let Some(page) = page {
                                turns.write(PageTurnRequested(Turn::To(page)));
                            }
                        } else if let Some(id) = first {
                            show.write(SongChangeRequested(Some(id.clone())));
                        }
                    }
                    finished.push(i);
                }
                ScanEvent::Failed(error) => {
                    errors.write(AppError(error.to_string()));
                    finished.push(i);
                }
                _ => {}
            }
        }
    }
    let any_finished = !finished.is_empty();
    for i in finished.into_iter().rev() {
        scans.0.remove(i);
        library.scanning = library.scanning.saturating_sub(1);
    }
    if any_finished && library.scanning == 0 {
        // Another frame, to let the full bar go (a reactive window would wait for input).
        waker.wake();
    }
}

fn receive_pages(
    bridge: Res<RenderBridge>,
    library: Res<SongLibrary>,
    wanted: Res<WantedPages>,
    usage: Res<PageImageUsage>,
    mut textures: ResMut<PageTextures>,
    mut images: ResMut<Assets<Image>>,
    mut errors: MessageWriter<AppError>,
) {
    for event in bridge.events.try_iter() {
        match event {
            RenderEvent::Rendered { request, bitmap, .. } => {
                let key = TextureKey { page: request.key(), dark: wanted.dark };
                // A page turned past before it arrived stays in the render thread's cache only.
                if !wanted.contains(&key) || textures.ready.contains_key(&key) {
                    continue;
                }
                let image = images.add(page_image(&bitmap, key.dark, usage.0));
                let size = PixelSize::new(bitmap.width(), bitmap.height());
                textures.ready.insert(key, PageTexture { image, size });
            }
            RenderEvent::Failed { request, error } => {
                let key = TextureKey { page: request.key(), dark: wanted.dark };
                if wanted.visible.contains(&key.page) {
                    errors.write(AppError(error.to_string()));
                    textures.failed.insert(key, error.to_string());
                }
            }
            // Told once per page: the render thread no longer draws it ahead of time.
            RenderEvent::Slow { request, took } => {
                let title = library.get(&request.song).map_or("this score", |s| s.title.as_str());
                errors.write(AppError(format!(
                    "page {} of «{title}» took {:.1} s to draw; it is drawn only when shown, so \
                     turning to it may pause",
                    request.page + 1,
                    took.as_secs_f32()
                )));
            }
        }
    }
}

fn request_pages(
    mut bridge: ResMut<RenderBridge>,
    wanted: Res<WantedPages>,
    library: Res<SongLibrary>,
    mut textures: ResMut<PageTextures>,
) {
    // A song that arrives (streamed) while its pages are wanted is drawn at once.
    if !wanted.is_changed() && !textures.is_changed() && !library.is_changed() {
        return;
    }
    let mut requests = Vec::new();
    for (i, key) in wanted.keys().enumerate() {
        if textures.ready.contains_key(&key) || textures.failed.contains_key(&key) {
            continue;
        }
        if !bridge.known.contains(&key.page.song) {
            match library.get(&key.page.song) {
                Some(song) => {
                    bridge.client().add_source(song.id.clone(), library.source(song));
                    bridge.known.insert(song.id.clone());
                }
                // Not on this device (yet): nothing to draw.
                None => continue,
            }
        }
        let page = key.page;
        requests.push(if i < wanted.visible.len() {
            RenderRequest::visible(page.song, page.page, page.target)
        } else {
            RenderRequest::prefetch(page.song, page.page, page.target)
        });
    }
    if requests != textures.requested {
        textures.requested.clone_from(&requests);
        bridge.client().want(requests);
    }
}

fn release_textures(wanted: Res<WantedPages>, mut textures: ResMut<PageTextures>) {
    if !wanted.is_changed() {
        return;
    }
    // Shown pages keep their image through their sprite's handle; the rest go now.
    textures.ready.retain(|key, _| wanted.contains(key));
    textures.failed.retain(|key, _| wanted.contains(key));
}
