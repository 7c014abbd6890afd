//! The songs this device has, and the page textures drawn for them.

use std::collections::HashMap;
use std::path::PathBuf;

use bevy::prelude::*;
use maestral_score::{PageKey, PixelSize, RenderRequest, Song, SongId, SongSource};

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
    /// Files read and files found by the scans running now (see [`SongLibrary::scan_progress`]).
    pub(crate) scan_files: Option<(usize, usize)>,
    /// Songs streamed from a Choir Master: their bytes, in memory only (never written
    /// anywhere), view-only, gone with the session.
    streamed: HashMap<SongId, std::sync::Arc<[u8]>>,
}

impl SongLibrary {
    pub fn songs(&self) -> &[Song] {
        &self.songs
    }

    /// The song with this id, if this device has it.
    pub fn get(&self, id: &SongId) -> Option<&Song> {
        self.songs.iter().find(|s| s.id == *id)
    }

    /// Adds a song, replacing one with the same id.
    pub fn insert(&mut self, song: Song) -> SongId {
        let id = song.id.clone();
        match self.songs.iter_mut().find(|s| s.id == id) {
            Some(old) => *old = song,
            None => self.songs.push(song),
        }
        id
    }

    /// While folders are scanned: `(done, total)`, the PDFs read so far and the PDFs found, over
    /// all running scans (`total` is 0 until the folders have been walked). A bar drawn from it
    /// fills up: when the last scan ends the library holds its songs and this stays at
    /// `done == total` for that frame, then becomes `None` on the next (the app is woken for it).
    pub fn scan_progress(&self) -> Option<(usize, usize)> {
        self.scan_files
    }

    /// The scans' progress as a fraction from 0 to 1 (0 while the folders are walked).
    pub fn scan_fraction(&self) -> Option<f32> {
        self.scan_files
            .map(|(done, total)| if total == 0 { 0.0 } else { done as f32 / total as f32 })
    }

    /// Adds a song streamed from the Master, with its bytes.
    pub fn insert_streamed(&mut self, song: Song, bytes: std::sync::Arc<[u8]>) -> SongId {
        self.streamed.insert(song.id.clone(), bytes);
        self.insert(song)
    }

    /// Whether the song was streamed (view-only, temporary).
    pub fn is_streamed(&self, id: &SongId) -> bool {
        self.streamed.contains_key(id)
    }

    /// Drops a streamed song (`None`: every one); returns the ids dropped. Songs of this
    /// device's own library stay.
    pub fn remove_streamed(&mut self, id: Option<&SongId>) -> Vec<SongId> {
        let gone: Vec<SongId> = match id {
            Some(id) => self.streamed.remove_entry(id).map(|(k, _)| k).into_iter().collect(),
            None => self.streamed.drain().map(|(k, _)| k).collect(),
        };
        self.songs.retain(|s| !gone.contains(&s.id));
        gone
    }

    /// Where the render thread reads the song from: its file, or its streamed bytes.
    pub fn source(&self, song: &Song) -> SongSource {
        match self.streamed.get(&song.id) {
            Some(bytes) => SongSource::Bytes { name: song.path.clone(), bytes: bytes.clone() },
            None => SongSource::from(song),
        }
    }

    /// The streamed song's bytes.
    pub fn streamed_bytes(&self, id: &SongId) -> Option<std::sync::Arc<[u8]>> {
        self.streamed.get(id).cloned()
    }

    pub fn page_count(&self, id: Option<&SongId>) -> Option<u32> {
        id.and_then(|id| self.get(id)).map(|s| s.page_count)
    }
}

/// A page texture's identity: the page and size the render thread drew, and whether it is
/// the dark (inverted) version.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
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

/// The page textures held for what is shown and prefetched (kept by the score plugin).
#[derive(Resource, Debug, Default)]
pub struct PageTextures {
    pub(crate) ready: HashMap<TextureKey, PageTexture>,
    /// Pages that cannot be drawn, with the reason: shown as an empty page, never waited for.
    pub(crate) failed: HashMap<TextureKey, String>,
    /// The last list of requests sent to the render thread.
    pub(crate) requested: Vec<RenderRequest>,
}

impl PageTextures {
    pub fn get(&self, key: &TextureKey) -> Option<&PageTexture> {
        self.ready.get(key)
    }

    /// The page at any size (the old size after a resize, shown scaled until the new one comes).
    pub fn any_size(
        &self,
        song: &SongId,
        page: u32,
        dark: bool,
    ) -> Option<(&TextureKey, &PageTexture)> {
        self.ready
            .iter()
            .find(|(k, _)| k.page.song == *song && k.page.page == page && k.dark == dark)
    }

    /// Lets go of every texture of `song` (a streamed score that was cleared).
    pub fn forget_song(&mut self, song: &SongId) {
        self.ready.retain(|k, _| k.page.song != *song);
        self.failed.retain(|k, _| k.page.song != *song);
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

    pub(crate) fn keys(&self) -> impl Iterator<Item = TextureKey> + '_ {
        let dark = self.dark;
        self.visible
            .iter()
            .chain(&self.prefetch)
            .map(move |page| TextureKey { page: page.clone(), dark })
    }
}
