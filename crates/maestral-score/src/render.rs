//! The render thread: the one thread that owns PDFium's open documents and draws pages.
//!
//! Requests come in over a channel as commands, bitmaps go out over another. The thread keeps a
//! list of pending requests and, before each render, takes in every command already sent, so a
//! newer [`RenderCommand::Want`] (the performer turned on) drops pending pages that are no longer
//! wanted before any of them is drawn: a burst of ten turns draws the last page, not the ten.
//! Visible pages go before prefetch; pages already in the [`PageCache`] are answered from it.

use std::collections::HashMap;
use std::ops::Deref;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TryRecvError};
use pdfium_render::prelude::*;

use crate::bitmap::{BufferOrigin, BufferPool, PageBitmap};
use crate::cache::PageCache;
use crate::error::ScoreError;
use crate::pdfium;
use crate::song::{PageSize, Song, SongId, SongSource};

mod request;
pub use request::{
    MAX_PIXELS, MAX_SIDE, PixelSize, Priority, RenderRequest, fit_page, wanted_around,
};

/// What the render thread is told.
#[derive(Debug)]
#[non_exhaustive]
pub enum RenderCommand {
    /// Makes a song renderable (replacing what was known under that id).
    AddSong {
        song: SongId,
        source: SongSource,
    },
    /// Forgets a song: its open document, its cached pages, its pending requests.
    RemoveSong(SongId),
    /// Everything wanted now, in order: pending requests not in this list are dropped
    /// unrendered. This is what a page turn sends.
    Want(Vec<RenderRequest>),
    /// One more request, on top of what is pending.
    Request(RenderRequest),
    /// Changes the page cache's budget in bytes (0 keeps nothing).
    SetCacheBudget(usize),
    /// Stops rendering until [`RenderCommand::Resume`]; requests keep arriving and superseding
    /// each other meanwhile. For an app in the background, and for tests.
    Pause,
    Resume,
    /// Ends the thread (also what dropping the [`RenderThread`] does).
    Shutdown,
}

/// What the render thread answers.
#[derive(Debug, Clone)]
pub enum RenderEvent {
    /// The page, fitted into the request's target box. Prefetched pages come this way too.
    Rendered { request: RenderRequest, bitmap: Arc<PageBitmap>, from_cache: bool },
    /// This request cannot be served. Other requests are not affected.
    Failed { request: RenderRequest, error: ScoreError },
    /// The page of `request` (sent as `Rendered` just before) took `took` to draw, longer than
    /// [`RenderConfig::slow_render`]: it is no longer drawn ahead of time (only when it is
    /// shown), so a pathological page holds up a turn once, not on every prefetch.
    Slow { request: RenderRequest, took: Duration },
}

/// Settings for the render thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderConfig {
    /// The page cache's budget in bytes.
    pub cache_budget: usize,
    /// Documents kept open at once (reopening costs a few milliseconds).
    pub max_open_documents: usize,
    /// Spare pixel buffers kept for reuse beyond those in the cache.
    pub spare_buffers: usize,
    /// A page that takes longer than this to draw is reported ([`RenderEvent::Slow`]) and no
    /// longer prefetched. PDFium cannot be interrupted mid-page; a page that never finishes
    /// would need rendering in a child process.
    pub slow_render: Duration,
}

impl Default for RenderConfig {
    fn default() -> Self {
        RenderConfig {
            cache_budget: PageCache::DEFAULT_BUDGET,
            max_open_documents: 4,
            spare_buffers: 3,
            slow_render: Duration::from_secs(1),
        }
    }
}

/// Counters the render thread keeps, for tests, benchmarks and a diagnostics overlay.
///
/// Updated before the matching event is sent, so after receiving an event they include it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RenderStats {
    /// Pages drawn by PDFium.
    pub rendered: u64,
    /// Requests answered from the page cache.
    pub cache_hits: u64,
    /// Pending requests dropped unrendered because a newer `Want` left them out.
    pub dropped_stale: u64,
    /// Requests answered with [`RenderEvent::Failed`].
    pub failed: u64,
    /// Pages reported [`RenderEvent::Slow`].
    pub slow: u64,
    pub cache_bytes: u64,
    pub cache_peak_bytes: u64,
    pub cache_budget: u64,
    pub cached_pages: u64,
    /// Pixel buffers freshly allocated / taken from the pool.
    pub buffers_allocated: u64,
    pub buffers_reused: u64,
    /// Bytes held in spare buffers waiting for reuse (outside the cache's budget, a few pages).
    pub spare_buffer_bytes: u64,
    pub open_documents: u64,
}

/// A cheap, cloneable handle for sending commands to the render thread.
#[derive(Debug, Clone)]
pub struct RenderClient {
    commands: Sender<RenderCommand>,
    stats: Arc<Mutex<RenderStats>>,
}

impl RenderClient {
    /// Sends a raw command. Sending after the thread has ended does nothing (the event
    /// receiver reports the thread's end by disconnecting).
    pub fn send(&self, command: RenderCommand) {
        let _ = self.commands.send(command);
    }

    pub fn add_song(&self, song: &Song) {
        self.send(RenderCommand::AddSong { song: song.id.clone(), source: SongSource::from(song) });
    }

    pub fn add_source(&self, song: SongId, source: SongSource) {
        self.send(RenderCommand::AddSong { song, source });
    }

    pub fn remove_song(&self, song: &SongId) {
        self.send(RenderCommand::RemoveSong(song.clone()));
    }

    /// Replaces what is wanted (see [`RenderCommand::Want`]).
    pub fn want(&self, requests: Vec<RenderRequest>) {
        self.send(RenderCommand::Want(requests));
    }

    pub fn request(&self, request: RenderRequest) {
        self.send(RenderCommand::Request(request));
    }

    /// A page turn: `page` visible, the next two and the previous one prefetched, anything else
    /// pending dropped. Prefetch past the end of the score is skipped quietly.
    pub fn show_page(&self, song: &SongId, page: u32, target: PixelSize) {
        self.want(wanted_around(song, page, target));
    }

    pub fn set_cache_budget(&self, bytes: usize) {
        self.send(RenderCommand::SetCacheBudget(bytes));
    }

    pub fn pause(&self) {
        self.send(RenderCommand::Pause);
    }

    pub fn resume(&self) {
        self.send(RenderCommand::Resume);
    }

    /// The counters as of the last request handled.
    pub fn stats(&self) -> RenderStats {
        *self.stats.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The render thread. Dropping it stops the thread (after the render in progress, if any).
///
/// Derefs to its [`RenderClient`]; clone that to send from elsewhere.
#[derive(Debug)]
pub struct RenderThread {
    client: RenderClient,
    thread: Option<JoinHandle<()>>,
}

impl RenderThread {
    /// Binds PDFium (reporting a missing library here, not later) and starts the thread.
    pub fn spawn(
        config: RenderConfig,
    ) -> Result<(RenderThread, Receiver<RenderEvent>), ScoreError> {
        pdfium::bind()?;
        let (command_tx, command_rx) = crossbeam_channel::unbounded();
        let (event_tx, event_rx) = crossbeam_channel::unbounded();
        let stats = Arc::new(Mutex::new(RenderStats::default()));
        let thread_stats = stats.clone();
        let thread = std::thread::Builder::new()
            .name("maestral-render".into())
            .spawn(move || {
                // Bound above, so this cannot fail; if it somehow does, the closed channel says so.
                if let Ok(pdfium) = pdfium::instance() {
                    Worker::new(&pdfium, config, event_tx, thread_stats).run(&command_rx);
                }
            })
            .map_err(|e| ScoreError::io("render thread", e))?;
        let client = RenderClient { commands: command_tx, stats };
        Ok((RenderThread { client, thread: Some(thread) }, event_rx))
    }

    pub fn client(&self) -> &RenderClient {
        &self.client
    }
}

impl Deref for RenderThread {
    type Target = RenderClient;

    fn deref(&self) -> &RenderClient {
        &self.client
    }
}

impl Drop for RenderThread {
    fn drop(&mut self) {
        self.client.send(RenderCommand::Shutdown);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The thread's state. Lives on the render thread only; borrows that thread's PDFium handle.
struct Worker<'p> {
    pdfium: &'p Pdfium,
    songs: HashMap<SongId, SongSource>,
    /// Open documents, most recently used last.
    documents: Vec<(SongId, PdfDocument<'p>)>,
    max_open_documents: usize,
    pending: Vec<RenderRequest>,
    cache: PageCache,
    pool: Arc<BufferPool>,
    paused: bool,
    events: Sender<RenderEvent>,
    stats: RenderStats,
    shared_stats: Arc<Mutex<RenderStats>>,
    slow_render: Duration,
    /// Pages that drew slower than `slow_render`: never prefetched again.
    slow: std::collections::HashSet<(SongId, u32)>,
}

enum Flow {
    Continue,
    Stop,
}

impl<'p> Worker<'p> {
    fn new(
        pdfium: &'p Pdfium,
        config: RenderConfig,
        events: Sender<RenderEvent>,
        shared_stats: Arc<Mutex<RenderStats>>,
    ) -> Self {
        Worker {
            pdfium,
            songs: HashMap::new(),
            documents: Vec::new(),
            max_open_documents: config.max_open_documents.max(1),
            pending: Vec::new(),
            cache: PageCache::new(config.cache_budget),
            pool: BufferPool::new(config.spare_buffers),
            paused: false,
            events,
            stats: RenderStats::default(),
            shared_stats,
            slow_render: config.slow_render,
            slow: std::collections::HashSet::new(),
        }
    }

    fn run(mut self, commands: &Receiver<RenderCommand>) {
        self.publish();
        'serve: loop {
            if self.pending.is_empty() || self.paused {
                let Ok(command) = commands.recv() else { break };
                if let Flow::Stop = self.apply(command) {
                    break;
                }
            }
            // Take in everything already sent before drawing anything: this is where a newer
            // `Want` drops the pages the performer has turned past.
            loop {
                match commands.try_recv() {
                    Ok(command) => {
                        if let Flow::Stop = self.apply(command) {
                            break 'serve;
                        }
                    }
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => break 'serve,
                }
            }
            if self.paused {
                continue;
            }
            if let Some(request) = self.next_request() {
                self.serve(request);
            }
            self.publish();
        }
        self.close_all();
    }

    fn apply(&mut self, command: RenderCommand) -> Flow {
        match command {
            RenderCommand::AddSong { song, source } => {
                self.close_document(&song);
                self.cache.remove_song(&song);
                self.songs.insert(song, source);
            }
            RenderCommand::RemoveSong(song) => {
                self.close_document(&song);
                self.cache.remove_song(&song);
                self.songs.remove(&song);
                self.pending.retain(|r| r.song != song);
                self.slow.retain(|(s, _)| *s != song);
            }
            RenderCommand::Want(requests) => {
                let mut wanted: Vec<RenderRequest> = Vec::with_capacity(requests.len());
                for request in requests {
                    merge(&mut wanted, request);
                }
                let stale =
                    self.pending.iter().filter(|p| !wanted.iter().any(|w| w.key() == p.key()));
                self.stats.dropped_stale += stale.count() as u64;
                self.pending = wanted;
            }
            RenderCommand::Request(request) => merge(&mut self.pending, request),
            RenderCommand::SetCacheBudget(bytes) => self.cache.set_budget(bytes),
            RenderCommand::Pause => self.paused = true,
            RenderCommand::Resume => self.paused = false,
            RenderCommand::Shutdown => return Flow::Stop,
        }
        self.publish();
        Flow::Continue
    }

    /// The first visible request, else the first prefetch.
    fn next_request(&mut self) -> Option<RenderRequest> {
        let index = self
            .pending
            .iter()
            .position(|r| r.priority == Priority::Visible)
            .or(if self.pending.is_empty() { None } else { Some(0) })?;
        Some(self.pending.remove(index))
    }

    fn serve(&mut self, request: RenderRequest) {
        let slow_page = (request.song.clone(), request.page);
        if request.priority == Priority::Prefetch && self.slow.contains(&slow_page) {
            return;
        }
        let started = Instant::now();
        let outcome = self.render(&request);
        let took = started.elapsed();
        // Told once per page (at any size).
        let slow = matches!(outcome, Ok(Some((_, false))))
            && took > self.slow_render
            && self.slow.insert(slow_page);
        if slow {
            self.stats.slow += 1;
        }
        let event = match outcome {
            Ok(Some((bitmap, from_cache))) => {
                RenderEvent::Rendered { request: request.clone(), bitmap, from_cache }
            }
            // Prefetch past the end of the score: nothing to draw, nothing to report.
            Ok(None) => return,
            Err(error) => {
                self.stats.failed += 1;
                RenderEvent::Failed { request: request.clone(), error }
            }
        };
        self.publish();
        // The app may have dropped its receiver while shutting down; nothing to do about it.
        let _ = self.events.send(event);
        if slow {
            let _ = self.events.send(RenderEvent::Slow { request, took });
        }
    }

    fn render(
        &mut self,
        request: &RenderRequest,
    ) -> Result<Option<(Arc<PageBitmap>, bool)>, ScoreError> {
        request.target.validate()?;
        let key = request.key();
        if let Some(bitmap) = self.cache.get(&key) {
            self.stats.cache_hits += 1;
            return Ok(Some((bitmap, true)));
        }
        let source = self
            .songs
            .get(&request.song)
            .ok_or_else(|| ScoreError::UnknownSong { song: request.song.clone() })?;
        let name = source.name().to_path_buf();

        let _held = pdfium::lock();
        let document = open_document(
            self.pdfium,
            &mut self.documents,
            self.max_open_documents,
            &request.song,
            source,
        )?;
        let count = u32::try_from(document.pages().len()).unwrap_or(0);
        if request.page >= count {
            if request.priority == Priority::Prefetch {
                return Ok(None);
            }
            return Err(ScoreError::PageOutOfRange { page: request.page, count });
        }
        let failed = |detail: String| ScoreError::RenderFailed {
            path: name.clone(),
            page: request.page,
            detail,
        };
        let page_index = PdfPageIndex::try_from(request.page).map_err(|e| failed(e.to_string()))?;
        let page = document.pages().get(page_index).map_err(|e| failed(e.to_string()))?;
        let size = fit_page(
            PageSize { width: page.width().value, height: page.height().value },
            request.target,
        )?;
        let len = size.width as usize * size.height as usize * 4;

        // Evict first, so the buffers of evicted pages (if the app is done with them) are
        // back in the pool for this render.
        if len <= self.cache.budget() {
            self.cache.make_room(len);
        }
        let (mut pixels, origin) = self.pool.take(len);
        match origin {
            BufferOrigin::Reused => self.stats.buffers_reused += 1,
            BufferOrigin::Allocated => self.stats.buffers_allocated += 1,
        }
        {
            let (w, h) = (size.width as Pixels, size.height as Pixels);
            let mut target = PdfBitmap::from_bytes(w, h, PdfBitmapFormat::BGRA, &mut pixels)
                .map_err(|e| failed(e.to_string()))?;
            // Defaults: white background, annotations and form fields drawn, and PDFium's
            // reverse byte order flag, so the BGRA bitmap holds RGBA with no conversion pass.
            let config = PdfRenderConfig::new().set_fixed_size(w, h);
            page.render_into_bitmap_with_config(&mut target, &config)
                .map_err(|e| failed(e.to_string()))?;
        }
        drop(page);

        let bitmap = Arc::new(PageBitmap::new(size.width, size.height, pixels, &self.pool));
        self.cache.insert(key, bitmap.clone());
        self.stats.rendered += 1;
        Ok(Some((bitmap, false)))
    }

    fn close_document(&mut self, song: &SongId) {
        if let Some(i) = self.documents.iter().position(|(id, _)| id == song) {
            let _held = pdfium::lock();
            self.documents.remove(i);
        }
    }

    fn close_all(&mut self) {
        let _held = pdfium::lock();
        self.documents.clear();
    }

    fn publish(&mut self) {
        self.stats.cache_bytes = self.cache.bytes() as u64;
        self.stats.cache_peak_bytes = self.cache.peak_bytes() as u64;
        self.stats.cache_budget = self.cache.budget() as u64;
        self.stats.cached_pages = self.cache.len() as u64;
        self.stats.spare_buffer_bytes = self.pool.spare_bytes() as u64;
        self.stats.open_documents = self.documents.len() as u64;
        *self.shared_stats.lock().unwrap_or_else(|p| p.into_inner()) = self.stats;
    }
}

/// Adds `request` to `list` unless its page is already there; a visible request raises the
/// priority of the one already there.
fn merge(list: &mut Vec<RenderRequest>, request: RenderRequest) {
    match list.iter_mut().find(|r| r.key() == request.key()) {
        Some(existing) => existing.priority = existing.priority.min(request.priority),
        None => list.push(request),
    }
}

/// The open document for `song`, opening it (and closing the least recently used one beyond
/// `max_open`) if needed. Call with the PDFium lock held.
fn open_document<'d, 'p>(
    pdfium: &'p Pdfium,
    documents: &'d mut Vec<(SongId, PdfDocument<'p>)>,
    max_open: usize,
    song: &SongId,
    source: &SongSource,
) -> Result<&'d PdfDocument<'p>, ScoreError> {
    if let Some(i) = documents.iter().position(|(id, _)| id == song) {
        let entry = documents.remove(i);
        documents.push(entry);
    } else {
        let document = pdfium::open(pdfium, source)?;
        if documents.len() >= max_open {
            documents.remove(0);
        }
        documents.push((song.clone(), document));
    }
    documents.last().map(|(_, d)| d).ok_or_else(|| ScoreError::Corrupt {
        path: Path::new("render thread").to_path_buf(),
        detail: "document list empty after opening".into(),
    })
}
