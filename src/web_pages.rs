//! Page images for browser Followers: the Master's listener asks for a page at a phone's width,
//! a render thread of its own draws it with PDFium (the app's own pages are never delayed by a
//! phone), and it is sent as a grey-scale PNG (engraved music is black on white), kept in memory
//! within a byte budget so a choir asking for the same page costs one render.
//!
//! The thread starts with the first request: a device that never serves a browser pays nothing.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bevy::prelude::*;
use crossbeam_channel::{Receiver, Sender};
use maestral_net::PageImages;
use maestral_net::signaling::page::{PageFuture, PageImage, PageOutcome, PageReply, page_reply};
use maestral_score::{
    PixelSize, RenderConfig, RenderEvent, RenderRequest, RenderThread, SongId, SongSource,
};

use crate::model::SongLibrary;

/// Encoded images kept, in bytes (a page is 20–60 KB: hundreds of pages).
pub const CACHE_BUDGET: usize = 16 * 1024 * 1024;
/// A render that takes longer than this has failed (PDFium cannot be interrupted).
const RENDER_WAIT: Duration = Duration::from_secs(20);

/// What the renderer knows of a song.
#[derive(Clone)]
struct Known {
    source: SongSource,
    pages: u32,
    aspect: f32,
}

type Key = (String, u32, u32);

struct Job {
    key: Key,
    reply: PageReply,
}

/// The app's page images for browser Followers (a resource; the sync configuration holds it).
#[derive(Resource, Clone)]
pub struct WebPages {
    songs: Arc<Mutex<HashMap<String, Known>>>,
    cache: Arc<Mutex<Cache>>,
    jobs: Arc<Mutex<Option<Sender<Job>>>>,
}

#[derive(Default)]
struct Cache {
    images: HashMap<Key, PageImage>,
    order: VecDeque<Key>,
    bytes: usize,
}

impl Cache {
    fn get(&self, key: &Key) -> Option<PageImage> {
        self.images.get(key).cloned()
    }

    fn put(&mut self, key: Key, image: PageImage) {
        self.bytes += image.bytes.len();
        if self.images.insert(key.clone(), image).is_none() {
            self.order.push_back(key);
        }
        while self.bytes > CACHE_BUDGET {
            let Some(old) = self.order.pop_front() else { break };
            if let Some(gone) = self.images.remove(&old) {
                self.bytes -= gone.bytes.len();
            }
        }
    }
}

impl std::fmt::Debug for WebPages {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebPages")
    }
}

impl Default for WebPages {
    fn default() -> Self {
        WebPages { songs: Arc::default(), cache: Arc::default(), jobs: Arc::new(Mutex::new(None)) }
    }
}

impl WebPages {
    /// The songs this device has, as the library holds them now.
    pub fn set_songs(&self, library: &SongLibrary) {
        let songs: HashMap<String, Known> = library
            .songs()
            .iter()
            .map(|song| {
                let first = song.page_sizes.first();
                let aspect = first.map_or(1.414, |p| {
                    if p.width > 0.0 && p.height > 0.0 { p.height / p.width } else { 1.414 }
                });
                let known = Known { source: library.source(song), pages: song.page_count, aspect };
                (song.id.as_str().to_owned(), known)
            })
            .collect();
        if let Ok(mut mine) = self.songs.lock() {
            *mine = songs;
        }
    }

    /// The worker's queue, started on first use.
    fn queue(&self) -> Option<Sender<Job>> {
        let mut jobs = self.jobs.lock().ok()?;
        if jobs.is_none() {
            let (tx, rx) = crossbeam_channel::unbounded();
            let (songs, cache) = (self.songs.clone(), self.cache.clone());
            std::thread::Builder::new()
                .name("maestral-web-pages".into())
                .spawn(move || work(&rx, &songs, &cache))
                .ok()?;
            *jobs = Some(tx);
        }
        jobs.clone()
    }
}

impl PageImages for WebPages {
    fn render(&self, song: &str, page: u32, width: u32) -> PageFuture {
        let key = (song.to_owned(), page, width);
        if let Some(image) = self.cache.lock().ok().and_then(|c| c.get(&key)) {
            return Box::pin(async move { PageOutcome::Image(image) });
        }
        let (reply, answer) = page_reply();
        // Not queued: the reply is dropped, and the answer is "unavailable".
        if let Some(queue) = self.queue() {
            let _ = queue.send(Job { key, reply });
        }
        answer
    }
}

/// The worker: one job at a time, each answered from the cache or rendered and encoded.
fn work(jobs: &Receiver<Job>, songs: &Mutex<HashMap<String, Known>>, cache: &Mutex<Cache>) {
    let Ok((renderer, events)) = RenderThread::spawn(RenderConfig::default()) else {
        for job in jobs.iter() {
            job.reply.send(PageOutcome::Unavailable);
        }
        return;
    };
    let mut added: HashMap<String, u32> = HashMap::new();
    for Job { key, reply } in jobs.iter() {
        if let Some(image) = cache.lock().ok().and_then(|c| c.get(&key)) {
            reply.send(PageOutcome::Image(image));
            continue;
        }
        let (song, page, width) = key.clone();
        let known = songs.lock().ok().and_then(|s| s.get(&song).cloned());
        let Some(known) = known.filter(|k| page < k.pages) else {
            reply.send(PageOutcome::NotFound);
            continue;
        };
        if added.insert(song.clone(), known.pages).is_none() {
            renderer.add_source(SongId::new(song.as_str()), known.source.clone());
        }
        let height = ((width as f32) * known.aspect).ceil().clamp(1.0, 8192.0) as u32;
        let request =
            RenderRequest::visible(SongId::new(song.as_str()), page, PixelSize::new(width, height));
        renderer.request(request.clone());
        let outcome = wait(&events, &request).and_then(|bitmap| encode(&bitmap));
        let outcome = match outcome {
            Some(image) => {
                if let Ok(mut c) = cache.lock() {
                    c.put(key, image.clone());
                }
                PageOutcome::Image(image)
            }
            None => PageOutcome::Unavailable,
        };
        reply.send(outcome);
    }
}

fn wait(
    events: &Receiver<RenderEvent>,
    request: &RenderRequest,
) -> Option<Arc<maestral_score::PageBitmap>> {
    let deadline = std::time::Instant::now() + RENDER_WAIT;
    loop {
        let left = deadline.checked_duration_since(std::time::Instant::now())?;
        match events.recv_timeout(left).ok()? {
            RenderEvent::Rendered { request: r, bitmap, .. } if r.key() == request.key() => {
                return Some(bitmap);
            }
            RenderEvent::Failed { request: r, error } if r.key() == request.key() => {
                warn!("a page for a browser could not be drawn: {error}");
                return None;
            }
            _ => {}
        }
    }
}

/// A rendered page as a grey-scale PNG.
fn encode(bitmap: &maestral_score::PageBitmap) -> Option<PageImage> {
    let grey: Vec<u8> = bitmap
        .pixels()
        .chunks_exact(4)
        .map(|p| ((u32::from(p[0]) * 77 + u32::from(p[1]) * 150 + u32::from(p[2]) * 29) >> 8) as u8)
        .collect();
    let mut out = Vec::new();
    let encoder = image::codecs::png::PngEncoder::new(&mut out);
    image::ImageEncoder::write_image(
        encoder,
        &grey,
        bitmap.width(),
        bitmap.height(),
        image::ExtendedColorType::L8,
    )
    .ok()?;
    Some(PageImage { bytes: out.into(), content_type: "image/png" })
}

/// Keeps the renderer's songs as the library's.
pub fn follow_library(library: Res<SongLibrary>, pages: Option<Res<WebPages>>) {
    if let Some(pages) = pages
        && library.is_changed()
    {
        pages.set_songs(&library);
    }
}
