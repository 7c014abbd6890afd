//! Scores in the app: the song library, the bridge to `maestral-score`'s render thread, and the
//! page textures (requested for what is shown and prefetched, uploaded as `Image` assets, and
//! released when no longer shown or prefetched).

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};

use bevy::asset::RenderAssetUsages;
use bevy::prelude::*;
use bevy::render::render_resource::{Extent3d, TextureDimension, TextureFormat};
use crossbeam_channel::Receiver;
use maestral_score::{
    Library, LibraryEntry, LibraryScan, PageBitmap, PageKey, PixelSize, RenderClient, RenderConfig,
    RenderEvent, RenderRequest, RenderThread, ScanEvent, ScoreError, Song, SongId,
};

use crate::navigation::{PageTurnRequested, SongChangeRequested, Turn};
use crate::persistence::SavedPositions;
use crate::wake::{Waker, relay};

/// System sets of the score plugin, in frame order.
#[derive(SystemSet, Debug, Clone, PartialEq, Eq, Hash)]
pub enum ScoreSystems {
    /// PreUpdate: library scans and rendered pages come in.
    Receive,
    /// PostUpdate: pages are requested for what the layout wants, the rest released.
    Request,
}

pub fn plugin(app: &mut App) {
    app.init_resource::<SongLibrary>()
        .init_resource::<LibraryScans>()
        .init_resource::<PendingOpens>()
        .init_resource::<PageTextures>()
        .init_resource::<WantedPages>()
        .init_resource::<PageImageUsage>()
        .init_resource::<Waker>()
        .add_message::<OpenScore>()
        .add_message::<AppError>()
        .add_message::<SongChangeRequested>()
        .add_message::<PageTurnRequested>()
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

/// The bundled demo scores: `assets/scores` in the working folder, else in the source tree.
pub fn demo_library() -> PathBuf {
    let here = Path::new("assets/scores");
    if here.is_dir() {
        return here.to_path_buf();
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/scores")
}

/// Something went wrong that the user should hear about; the app carries on.
#[derive(Message, Debug, Clone, PartialEq, Eq)]
pub struct AppError(pub String);

/// Open a score file or a folder of scores into the library. With `show`, the score (for a
/// folder: its first score) becomes the current song.
#[derive(Message, Debug, Clone, PartialEq, Eq)]
pub struct OpenScore {
    pub path: PathBuf,
    pub show: bool,
}

/// The songs this device has, in the order found.
#[derive(Resource, Debug, Default)]
pub struct SongLibrary {
    songs: Vec<Song>,
    /// Files that did not open, with the reason (which names the file).
    pub unreadable: Vec<(PathBuf, String)>,
    /// Folders being scanned now.
    pub scanning: usize,
}

impl SongLibrary {
    pub fn songs(&self) -> &[Song] {
        &self.songs
    }

    pub fn get(&self, id: SongId) -> Option<&Song> {
        self.songs.iter().find(|s| s.id == id)
    }

    /// The song of a protocol song id (64 hex digits), if this device has it.
    pub fn find(&self, id: &maestral_protocol::SongId) -> Option<&Song> {
        id.as_str().parse::<SongId>().ok().and_then(|id| self.get(id))
    }

    /// Adds a song, replacing one with the same id.
    pub fn insert(&mut self, song: Song) -> SongId {
        let id = song.id;
        match self.songs.iter_mut().find(|s| s.id == id) {
            Some(old) => *old = song,
            None => self.songs.push(song),
        }
        id
    }

    pub fn page_count(&self, id: Option<&maestral_protocol::SongId>) -> Option<u32> {
        id.and_then(|id| self.find(id)).map(|s| s.page_count)
    }
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

    pub fn client(&self) -> &RenderClient {
        self.thread.client()
    }
}

/// How page images are kept: the window app lets the CPU copy go once the GPU has it;
/// tests without a renderer keep it.
#[derive(Resource, Debug, Clone, Copy, Default)]
pub struct PageImageUsage(pub RenderAssetUsages);

/// A page texture's identity: the page and size the render thread drew, and whether it is
/// the dark (inverted) version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TextureKey {
    pub page: PageKey,
    pub dark: bool,
}

/// One page uploaded as an image.
#[derive(Debug, Clone)]
pub struct PageTexture {
    pub image: Handle<Image>,
    /// The bitmap's size in pixels (the page fitted into the requested box).
    pub size: PixelSize,
}

/// The page textures held for what is shown and prefetched.
#[derive(Resource, Debug, Default)]
pub struct PageTextures {
    ready: HashMap<TextureKey, PageTexture>,
    /// Pages that cannot be drawn, with the reason: shown as an empty page, never waited for.
    failed: HashMap<TextureKey, String>,
    /// The last list of requests sent to the render thread.
    requested: Vec<RenderRequest>,
}

impl PageTextures {
    pub fn get(&self, key: &TextureKey) -> Option<&PageTexture> {
        self.ready.get(key)
    }

    /// The page at any size (the old size after a resize, shown scaled until the new one comes).
    pub fn any_size(
        &self,
        song: SongId,
        page: u32,
        dark: bool,
    ) -> Option<(&TextureKey, &PageTexture)> {
        self.ready
            .iter()
            .find(|(k, _)| k.page.song == song && k.page.page == page && k.dark == dark)
    }

    pub fn failure(&self, key: &TextureKey) -> Option<&str> {
        self.failed.get(key).map(String::as_str)
    }

    /// How many textures are held (shown ones are also held by their sprites).
    pub fn len(&self) -> usize {
        self.ready.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ready.is_empty()
    }

    pub fn keys(&self) -> impl Iterator<Item = &TextureKey> {
        self.ready.keys()
    }
}

/// What the layout wants drawn: the visible pages first, then the likely next ones.
#[derive(Resource, Debug, Default, Clone, PartialEq, Eq)]
pub struct WantedPages {
    pub dark: bool,
    pub visible: Vec<PageKey>,
    pub prefetch: Vec<PageKey>,
}

impl WantedPages {
    pub fn contains(&self, key: &TextureKey) -> bool {
        key.dark == self.dark
            && (self.visible.contains(&key.page) || self.prefetch.contains(&key.page))
    }

    fn keys(&self) -> impl Iterator<Item = TextureKey> + '_ {
        let dark = self.dark;
        self.visible.iter().chain(&self.prefetch).map(move |&page| TextureKey { page, dark })
    }
}

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
/// for the ones before it, so `song A` then `song B` shows B).
fn receive_opens(
    mut opens: ResMut<PendingOpens>,
    mut library: ResMut<SongLibrary>,
    mut errors: MessageWriter<AppError>,
    mut show: MessageWriter<SongChangeRequested>,
    mut turns: MessageWriter<PageTurnRequested>,
    mut saved: Option<ResMut<SavedPositions>>,
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
    while opens.0.front().is_some_and(|o| o.done.is_some()) {
        let Some(PendingOpen { path, show: show_it, done: Some(result), .. }) = opens.0.pop_front()
        else {
            break;
        };
        match result {
            Ok(song) => {
                info!("opened {} ({} pages)", song.title, song.page_count);
                let (id, pages) = (song.id, song.page_count);
                library.insert(song);
                library.unreadable.retain(|(p, _)| *p != path);
                if show_it {
                    show.write(SongChangeRequested(Some(id.into_protocol())));
                    let resume = saved.as_mut().and_then(|s| s.take_resume());
                    if let Some(page) =
                        resume.and_then(|(song, page)| resume_page(&song, page, id, pages))
                    {
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
) {
    let mut finished = Vec::new();
    for (i, scan) in scans.0.iter().enumerate() {
        for event in scan.events.try_iter() {
            match event {
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
                    info!("{}: {} songs", scan.root.display(), library.songs.len());
                    if scan.show_first {
                        // Where the performer left off, if this folder has that song; else
                        // its first song.
                        let resume = saved.as_mut().and_then(|s| s.take_resume()).and_then(
                            |(song, page)| {
                                let found = library.find(&maestral_protocol::SongId::new(song))?;
                                Some((found.id, found.page_count, page))
                            },
                        );
                        if let Some((id, pages, page)) = resume {
                            show.write(SongChangeRequested(Some(id.into_protocol())));
                            if let Some(page) = resume_page(&id.to_hex(), page, id, pages) {
                                turns.write(PageTurnRequested(Turn::To(page)));
                            }
                        } else if let Some(id) = first {
                            show.write(SongChangeRequested(Some(id.into_protocol())));
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
    for i in finished.into_iter().rev() {
        scans.0.remove(i);
        library.scanning = library.scanning.saturating_sub(1);
    }
}

/// The page to resume `id` at, if the saved song is this one and the page is not the first.
fn resume_page(saved_song: &str, page: u32, id: SongId, pages: u32) -> Option<u32> {
    (saved_song == id.to_hex() && page > 0).then(|| page.min(pages.saturating_sub(1)))
}

fn receive_pages(
    bridge: Res<RenderBridge>,
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
        }
    }
}

fn request_pages(
    mut bridge: ResMut<RenderBridge>,
    wanted: Res<WantedPages>,
    library: Res<SongLibrary>,
    mut textures: ResMut<PageTextures>,
) {
    if !wanted.is_changed() && !textures.is_changed() {
        return;
    }
    let mut requests = Vec::new();
    for (i, key) in wanted.keys().enumerate() {
        if textures.ready.contains_key(&key) || textures.failed.contains_key(&key) {
            continue;
        }
        if !bridge.known.contains(&key.page.song) {
            match library.get(key.page.song) {
                Some(song) => {
                    bridge.client().add_song(song);
                    bridge.known.insert(song.id);
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

/// Score ids and protocol ids are the same 64 hex digits.
pub trait IntoProtocol {
    fn into_protocol(self) -> maestral_protocol::SongId;
}

impl IntoProtocol for SongId {
    fn into_protocol(self) -> maestral_protocol::SongId {
        maestral_protocol::SongId::new(self.to_hex())
    }
}
