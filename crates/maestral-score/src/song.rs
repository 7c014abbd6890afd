//! Song identity (the SHA-256 of the file's bytes) and what a song is: title, pages, page sizes.

use std::fmt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::ScoreError;
use crate::pdfium;

/// A song's id: the protocol's one type for it.
pub use maestral_protocol::SongId;

/// The id of a score whose whole file is `bytes`: its SHA-256.
pub fn song_id(bytes: &[u8]) -> SongId {
    SongId::from_digest(&Sha256::digest(bytes).into())
}

/// The id of the score file at `path` (reads the whole file).
pub fn song_id_of_file(path: &Path) -> Result<SongId, ScoreError> {
    let bytes = std::fs::read(path).map_err(|e| ScoreError::io(path, e))?;
    Ok(song_id(&bytes))
}

/// A page's size in PDF points (1/72 inch), as displayed (after the page's own rotation).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PageSize {
    pub width: f32,
    pub height: f32,
}

impl PageSize {
    pub fn is_portrait(&self) -> bool {
        self.height >= self.width
    }
}

/// A score that opened: who it is and what its pages look like.
#[derive(Debug, Clone, PartialEq)]
pub struct Song {
    pub id: SongId,
    /// Where it was found (for a streamed song, a display name).
    pub path: PathBuf,
    /// The PDF's metadata title, else the file name without `.pdf`.
    pub title: String,
    pub page_count: u32,
    /// One entry per page, in points.
    pub page_sizes: Vec<PageSize>,
}

impl Song {
    /// Reads, identifies and opens the score at `path` (binds PDFium if needed).
    pub fn open(path: &Path) -> Result<Song, ScoreError> {
        // A multi-gigabyte file in a scanned folder is never read into memory.
        let len = std::fs::metadata(path).map_err(|e| ScoreError::io(path, e))?.len();
        if len > MAX_SCORE_BYTES {
            return Err(ScoreError::TooLarge {
                path: path.to_path_buf(),
                len,
                max: MAX_SCORE_BYTES,
            });
        }
        let bytes = std::fs::read(path).map_err(|e| ScoreError::io(path, e))?;
        Song::from_bytes(path, &bytes)
    }

    /// Identifies and opens a score held in memory; `path` is only its name.
    pub fn from_bytes(path: &Path, bytes: &[u8]) -> Result<Song, ScoreError> {
        let id = song_id(bytes);
        let info = pdfium::inspect(path, bytes)?;
        let title = info.title.unwrap_or_else(|| title_from_path(path));
        Ok(Song {
            id,
            path: path.to_path_buf(),
            title,
            page_count: info.page_sizes.len() as u32,
            page_sizes: info.page_sizes,
        })
    }
}

/// The largest file opened as a score (256 MB): a scanned score of several hundred pages is a
/// few tens of MB. A larger file is listed as too large without being read.
pub const MAX_SCORE_BYTES: u64 = 256 * 1024 * 1024;

/// The file name without its `.pdf`, for scores whose metadata has no title.
pub fn title_from_path(path: &Path) -> String {
    path.file_stem()
        .or_else(|| path.file_name())
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

/// A score's source as the render thread opens it: a file, or bytes streamed into memory.
#[derive(Clone)]
pub enum SongSource {
    File(PathBuf),
    /// A score held in memory only (e.g. streamed from a Choir Master); `name` is for messages.
    Bytes {
        name: PathBuf,
        bytes: std::sync::Arc<[u8]>,
    },
}

impl SongSource {
    /// The name to use in messages.
    pub fn name(&self) -> &Path {
        match self {
            SongSource::File(path) => path,
            SongSource::Bytes { name, .. } => name,
        }
    }
}

impl fmt::Debug for SongSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SongSource::File(path) => f.debug_tuple("File").field(path).finish(),
            SongSource::Bytes { name, bytes } => {
                f.debug_struct("Bytes").field("name", name).field("len", &bytes.len()).finish()
            }
        }
    }
}

impl From<&Song> for SongSource {
    fn from(song: &Song) -> Self {
        SongSource::File(song.path.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_song_id_is_the_sha256_in_lowercase_hex() {
        // FIPS 180-2 test vector for "abc".
        let want = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert_eq!(song_id(b"abc").as_str(), want);
    }

    #[test]
    fn title_falls_back_to_file_stem() {
        assert_eq!(title_from_path(Path::new("/a/b/Ave Verum.pdf")), "Ave Verum");
    }
}
