//! The one error type of this crate: what went wrong with a score, and what the user can do.

use std::path::PathBuf;
use std::sync::Arc;

use crate::render::{MAX_PIXELS, MAX_SIDE};
use crate::song::SongId;

/// Everything that can go wrong opening, scanning or rendering a score.
///
/// Each message names the file and says what to do next, so the app can show it as it is.
/// The type is `Clone` (I/O errors are shared through an `Arc`) so one failure can be reported
/// to every request that it spoils.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ScoreError {
    /// The file has no bytes at all.
    #[error("{}: the file is empty (0 bytes); copy the score again from where it came from", .path.display())]
    EmptyFile { path: PathBuf },

    /// The file does not start like a PDF (no `%PDF-` header in its first kilobyte).
    #[error("{}: this is not a PDF file, only named like one; export or scan the score to PDF and add that file", .path.display())]
    NotAPdf { path: PathBuf },

    /// The PDF ends early (no `%%EOF` at its end) and PDFium cannot read it.
    #[error("{}: the PDF is cut off (truncated, {len} bytes); copy the whole file again", .path.display())]
    Truncated { path: PathBuf, len: u64 },

    /// The PDF is damaged in some other way.
    #[error("{}: the PDF is damaged and cannot be read ({detail}); export or download it again", .path.display())]
    Corrupt { path: PathBuf, detail: String },

    /// The PDF needs a password to open (or uses an encryption PDFium does not support).
    #[error("{}: the PDF is password-protected; save a copy without the password (e.g. `qpdf --decrypt --password=PASSWORD in.pdf out.pdf`) and add that", .path.display())]
    PasswordProtected { path: PathBuf },

    /// The file is larger than a score may be: listed, never read.
    #[error(
        "{}: the file is {} MB, over the {} MB a score may be; it was not opened (split or compress it)",
        .path.display(), .len / 1_000_000, .max / 1_000_000
    )]
    TooLarge { path: PathBuf, len: u64, max: u64 },

    /// A page index past the end of the score (pages count from 0).
    #[error("page index {page} is past the end: the score has {count} pages (0 to {})", .count.saturating_sub(1))]
    PageOutOfRange { page: u32, count: u32 },

    /// A target size the renderer refuses: a side of 0, or too large a bitmap.
    #[error(
        "cannot render a page into {width}×{height} px: each side must be 1 to {MAX_SIDE} px and a page at most {MAX_PIXELS} pixels"
    )]
    BadSize { width: u32, height: u32 },

    /// No PDFium library could be loaded. `what_to_do` says it in words for whoever runs this
    /// build; `tried` lists where we looked and why each failed.
    #[error(
        "PDFium (libpdfium), which draws the pages, was not found: {what_to_do} (tried: {tried})"
    )]
    PdfiumMissing { what_to_do: &'static str, tried: String },

    /// A song the render thread was never told about.
    #[error(
        "song {song} is not known to the render thread: add it (RenderThread::add_song) before asking for its pages"
    )]
    UnknownSong { song: SongId },

    /// PDFium failed while rendering a page that opened fine.
    #[error("{}: page index {page} could not be rendered ({detail})", .path.display())]
    RenderFailed { path: PathBuf, page: u32, detail: String },

    /// Reading a file or a folder failed.
    #[error("{}: {source}", .path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: Arc<std::io::Error>,
    },

    /// The render thread has stopped, so nothing more will be rendered.
    #[error("the render thread has stopped; restart the app")]
    RenderThreadGone,
}

impl ScoreError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        ScoreError::Io { path: path.into(), source: Arc::new(source) }
    }
}
