//! Maestral's scores: the library scan, song identity (SHA-256 of the file's bytes), the PDF
//! render thread (PDFium through pdfium-render), and the page cache with a memory budget.
//!
//! PDFium is not thread-safe and binds once per process: see [`pdfium`] for how this crate
//! shares it. The app talks to the render thread only through channels ([`RenderThread`]).

mod bitmap;
mod cache;
mod error;
mod library;
pub mod pdfium;
mod render;
mod song;

pub use bitmap::PageBitmap;
pub use cache::{PageCache, PageKey};
pub use error::ScoreError;
pub use library::{Library, LibraryEntry, LibraryScan, ScanEvent};
pub use render::{
    MAX_PIXELS, MAX_SIDE, PixelSize, Priority, RenderClient, RenderCommand, RenderConfig,
    RenderEvent, RenderRequest, RenderStats, RenderThread, fit_page, wanted_around,
};
pub use song::{
    MAX_SCORE_BYTES, PageSize, Song, SongId, SongSource, song_id, song_id_of_file, title_from_path,
};
