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
/// Requests waiting for the worker at most; past them the answer is "unavailable" at once (the
/// page asks again), so no one can pile up work faster than it drains.
const QUEUE: usize = 64;
/// The worker's render thread keeps few bitmaps: what it renders is kept as PNG.
const BITMAP_BUDGET: usize = 8 * 1024 * 1024;

/// What the renderer knows of a song.
#[derive(Clone)]
struct Known {
    source: SongSource,
    pages: u32,
    aspect: f32,
    /// Where it was found: a change (the same song again from another file, or streamed) makes
    /// the worker take the new source.
    path: std::path::PathBuf,
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
    /// Forgets the pages of songs not in `songs`.
    fn keep_songs(&mut self, songs: &HashMap<String, Known>) {
        self.order.retain(|k| songs.contains_key(&k.0));
        let gone: Vec<Key> =
            self.images.keys().filter(|k| !songs.contains_key(&k.0)).cloned().collect();
        for key in gone {
            if let Some(image) = self.images.remove(&key) {
                self.bytes -= image.bytes.len();
            }
        }
    }

    fn get(&self, key: &Key) -> Option<PageImage> {
        self.images.get(key).cloned()
    }

    fn put(&mut self, key: Key, image: PageImage) {
        self.bytes += image.bytes.len();
        match self.images.insert(key.clone(), image) {
            Some(old) => self.bytes -= old.bytes.len(),
            None => self.order.push_back(key),
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
    /// The songs this device has, as the library holds them now; pages of songs it no longer
    /// has are forgotten.
    pub fn set_songs(&self, library: &SongLibrary) {
        let songs: HashMap<String, Known> = library
            .songs()
            .iter()
            .map(|song| {
                let first = song.page_sizes.first();
                let aspect = first.map_or(1.414, |p| {
                    if p.width > 0.0 && p.height > 0.0 { p.height / p.width } else { 1.414 }
                });
                let known = Known {
                    source: library.source(song),
                    pages: song.page_count,
                    aspect,
                    path: song.path.clone(),
                };
                (song.id.as_str().to_owned(), known)
            })
            .collect();
        if let Ok(mut cache) = self.cache.lock() {
            cache.keep_songs(&songs);
        }
        if let Ok(mut mine) = self.songs.lock() {
            *mine = songs;
        }
    }

    /// The worker's queue, started on first use.
    fn queue(&self) -> Option<Sender<Job>> {
        let mut jobs = self.jobs.lock().ok()?;
        if jobs.is_none() {
            let (tx, rx) = crossbeam_channel::bounded(QUEUE);
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
        // Not queued (the queue full, the worker gone): the reply is dropped, and the answer is
        // "unavailable".
        if let Some(queue) = self.queue() {
            let _ = queue.try_send(Job { key, reply });
        }
        answer
    }
}

/// The worker: one job at a time, each answered from the cache or rendered and encoded.
fn work(jobs: &Receiver<Job>, songs: &Mutex<HashMap<String, Known>>, cache: &Mutex<Cache>) {
    let config = RenderConfig { cache_budget: BITMAP_BUDGET, ..RenderConfig::default() };
    let Ok((renderer, events)) = RenderThread::spawn(config) else {
        for job in jobs.iter() {
            job.reply.send(PageOutcome::Unavailable);
        }
        return;
    };
    // The source each song was given to the render thread from.
    let mut added: HashMap<String, std::path::PathBuf> = HashMap::new();
    for Job { key, reply } in jobs.iter() {
        if reply.is_closed() {
            continue;
        }
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
        if added.get(&song) != Some(&known.path) {
            renderer.add_source(SongId::new(song.as_str()), known.source.clone());
            added.insert(song.clone(), known.path.clone());
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

/// A rendered page as a grey-scale PNG, deflated at the default level (the `image` crate's own
/// default is its fastest level), rows filtered adaptively.
///
/// Measured on the demo score at 1170 px wide (the 11 pages, mean; release build, this
/// project's 2-core machine): the fastest level, 99.7 KB in 3.6 ms; the default level, 74.7 KB
/// in 38 ms (about 10× the time, once per page and width: renders are cached); the pure-Rust
/// lossless WebP encoder (`image-webp`), 81 KB in 90 ms; libwebp's lossless WebP (a C library
/// this project does not build), 55.7 KB at level 2 in 141 ms and 29.9 KB at level 6 in 156 ms.
/// The default-level PNG is the smallest the project's own encoders make, quick enough that a
/// phone's first page is not held up by it.
fn encode(bitmap: &maestral_score::PageBitmap) -> Option<PageImage> {
    let grey: Vec<u8> = bitmap
        .pixels()
        .chunks_exact(4)
        .map(|p| ((u32::from(p[0]) * 77 + u32::from(p[1]) * 150 + u32::from(p[2]) * 29) >> 8) as u8)
        .collect();
    let mut out = Vec::new();
    let encoder = image::codecs::png::PngEncoder::new_with_quality(
        &mut out,
        image::codecs::png::CompressionType::Default,
        image::codecs::png::FilterType::Adaptive,
    );
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

#[cfg(test)]
mod tests {
    use super::*;

    fn image(n: usize) -> PageImage {
        PageImage { bytes: vec![0u8; n].into(), content_type: "image/png" }
    }

    #[test]
    fn the_cache_counts_each_image_once_and_forgets_songs_that_are_gone() {
        let mut cache = Cache::default();
        cache.put(("a".into(), 0, 800), image(10));
        cache.put(("a".into(), 0, 800), image(30));
        cache.put(("b".into(), 1, 800), image(5));
        assert_eq!(cache.bytes, 35, "a replaced image is counted once");
        let known = Known {
            source: SongSource::File("b.pdf".into()),
            pages: 2,
            aspect: 1.4,
            path: "b.pdf".into(),
        };
        cache.keep_songs(&HashMap::from([("b".to_owned(), known)]));
        assert_eq!(cache.bytes, 5);
        assert!(cache.get(&("a".into(), 0, 800)).is_none(), "a song gone is not served");
        assert!(cache.get(&("b".into(), 1, 800)).is_some());
        cache.put(("c".into(), 0, 800), image(CACHE_BUDGET));
        assert!(cache.bytes <= CACHE_BUDGET, "the budget holds");
    }
}
