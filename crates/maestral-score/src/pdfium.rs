//! The process-wide PDFium binding, the lock every PDFium call is made under, and opening PDFs.
//!
//! PDFium binds once per process (pdfium-render keeps the bindings in a global; a second bind
//! fails) and is not thread-safe, not even across documents. So: [`bind`] binds once, whoever
//! calls it first, and every call into PDFium, from the render thread, a library scan or a test,
//! happens while holding the crate-private `lock`. Calls from different threads are fine as long
//! as they never overlap, which is what the lock ensures.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};

use pdfium_render::prelude::*;

use crate::error::ScoreError;
use crate::song::PageSize;

/// The environment variable that names the PDFium library (a file, or a folder holding it).
pub const PDFIUM_ENV: &str = "MAESTRAL_PDFIUM";

/// Where the bound library came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PdfiumSource {
    /// The `MAESTRAL_PDFIUM` environment variable.
    EnvVar,
    /// The project's cache folder, filled by `cargo xtask setup` (debug builds only: a release
    /// build never loads a library from a path of the machine that built it).
    ProjectCache,
    /// Beside the running executable (how a portable archive ships it).
    BesideExecutable,
    /// The package's library folder, `../lib/maestral/` from the executable (a `.deb`'s
    /// `/usr/lib/maestral/` for `/usr/bin/maestral`).
    PackageLibrary,
    /// A macOS app bundle's `Contents/Frameworks/`, `../Frameworks/` from the executable in
    /// `Contents/MacOS/`.
    AppBundle,
    /// The system's library search path.
    SystemPath,
}

/// The library this process bound to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PdfiumInfo {
    pub source: PdfiumSource,
    /// The file loaded; `None` when the system's search path found it.
    pub path: Option<PathBuf>,
}

static BOUND: OnceLock<Result<PdfiumInfo, ScoreError>> = OnceLock::new();
static LOCK: Mutex<()> = Mutex::new(());
/// Renders waiting for the lock: background work (a library scan) lets them go first.
static RENDERS_WAITING: AtomicUsize = AtomicUsize::new(0);

/// Holds PDFium for the caller: no other thread calls into it until this is dropped. For the
/// render thread (page turns): background work yields to it ([`lock_background`]).
pub(crate) fn lock() -> MutexGuard<'static, ()> {
    RENDERS_WAITING.fetch_add(1, Ordering::SeqCst);
    // A panic while holding the lock leaves PDFium as it was; the lock itself carries no data.
    let held = LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    RENDERS_WAITING.fetch_sub(1, Ordering::SeqCst);
    held
}

/// [`lock`] for background work (a library scan): taken only while no render waits for it, so
/// a scan that takes the lock in short steps never holds up a page turn by more than a step.
pub(crate) fn lock_background() -> MutexGuard<'static, ()> {
    loop {
        while RENDERS_WAITING.load(Ordering::SeqCst) > 0 {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        let held = LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if RENDERS_WAITING.load(Ordering::SeqCst) == 0 {
            return held;
        }
        // A render started waiting while this one did: it goes first.
        drop(held);
    }
}

/// Binds PDFium for this process if that has not happened yet, and says which library it is.
///
/// Looks, in order, at `MAESTRAL_PDFIUM`, the project's `.cache/pdfium/` (debug builds only),
/// the folder of the running executable, the package's `../lib/maestral/` beside it, on macOS
/// the app bundle's `../Frameworks/`, then the system's library path. The outcome, good or bad, is kept for the
/// life of the process.
pub fn bind() -> Result<&'static PdfiumInfo, ScoreError> {
    BOUND
        .get_or_init(|| {
            let _held = lock();
            bind_first_found()
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// The project's PDFium cache folder, `<workspace>/.cache/pdfium` (where `cargo xtask setup`
/// puts the library). Only meaningful for builds from a checkout.
pub fn project_cache_dir() -> PathBuf {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let root = crate_dir.parent().and_then(Path::parent).unwrap_or(crate_dir);
    root.join(".cache").join("pdfium")
}

/// The platform's file name for the library: `libpdfium.so`, `libpdfium.dylib`, `pdfium.dll`.
pub fn library_file_name() -> PathBuf {
    PathBuf::from(Pdfium::pdfium_platform_library_name())
}

/// The folder of the running executable, links resolved (a `/usr/local/bin` link to an unpacked
/// archive finds the archive's files).
pub fn executable_dir() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let exe = std::fs::canonicalize(&exe).unwrap_or(exe);
    exe.parent().map(Path::to_path_buf)
}

fn candidates() -> Vec<(PdfiumSource, Option<PathBuf>)> {
    let mut out = Vec::new();
    if let Some(value) = std::env::var_os(PDFIUM_ENV).filter(|v| !v.is_empty()) {
        let path = PathBuf::from(value);
        let path = if path.is_dir() { path.join(library_file_name()) } else { path };
        out.push((PdfiumSource::EnvVar, Some(path)));
    }
    if cfg!(debug_assertions) {
        out.push((PdfiumSource::ProjectCache, Some(project_cache_dir().join(library_file_name()))));
    }
    if let Some(dir) = executable_dir() {
        out.push((PdfiumSource::BesideExecutable, Some(dir.join(library_file_name()))));
        let package = dir.join("..").join("lib").join("maestral");
        out.push((PdfiumSource::PackageLibrary, Some(package.join(library_file_name()))));
        if cfg!(target_os = "macos") {
            let bundle = dir.join("..").join("Frameworks");
            out.push((PdfiumSource::AppBundle, Some(bundle.join(library_file_name()))));
        }
    }
    out.push((PdfiumSource::SystemPath, None));
    out
}

fn bind_first_found() -> Result<PdfiumInfo, ScoreError> {
    let mut tried = Vec::new();
    for (source, path) in candidates() {
        let bound = match &path {
            Some(p) if !p.is_file() => {
                tried.push(format!("{} (no such file)", p.display()));
                continue;
            }
            Some(p) => Pdfium::bind_to_library(p),
            None => Pdfium::bind_to_system_library(),
        };
        match bound {
            Ok(bindings) => {
                // `Pdfium::new` initialises the library and stores the bindings globally; the
                // value itself holds nothing, later users get theirs from `instance()`.
                drop(Pdfium::new(bindings));
                return Ok(PdfiumInfo { source, path });
            }
            Err(PdfiumError::PdfiumLibraryBindingsAlreadyInitialized) => {
                // Someone bound pdfium-render in this process without us; use theirs.
                return Ok(PdfiumInfo { source: PdfiumSource::SystemPath, path: None });
            }
            Err(e) => {
                let what = match &path {
                    Some(p) => p.display().to_string(),
                    None => format!("{} on the system library path", library_file_name().display()),
                };
                let why = match e {
                    // libloading's own text is just "dlopen failed"; the reason is its source.
                    PdfiumError::LoadLibraryError(load) => match std::error::Error::source(&load) {
                        Some(reason) => reason.to_string(),
                        None => load.to_string(),
                    },
                    other => other.to_string(),
                };
                tried.push(format!("{what} ({})", one_line(&why)));
            }
        }
    }
    let what_to_do = if cfg!(debug_assertions) {
        "run `cargo xtask setup`, or set MAESTRAL_PDFIUM to the library's path"
    } else {
        "reinstall Maestral (its package carries libpdfium), or set MAESTRAL_PDFIUM to the library's path (from a checkout: `cargo xtask setup` fetches it into .cache/pdfium)"
    };
    Err(ScoreError::PdfiumMissing { what_to_do, tried: tried.join("; ") })
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A handle on the bound library, for the calling thread. Binds first if needed.
///
/// The handle is not `Send`: each thread that uses PDFium makes its own, and calls into it
/// only while holding [`lock`].
pub(crate) fn instance() -> Result<Pdfium, ScoreError> {
    bind()?;
    // With the bindings in place, `Pdfium::default()` re-uses them and loads nothing.
    Ok(Pdfium::default())
}

/// What a scan needs to know about a score.
pub(crate) struct Inspection {
    pub title: Option<String>,
    pub page_sizes: Vec<PageSize>,
}

/// Page sizes read per hold of the lock while inspecting: a score of 100,000 pages is read in
/// short steps, between which page turns take the lock first.
const SIZES_PER_STEP: PdfPageIndex = 256;

/// Opens the PDF in `bytes` (named `path` in messages) and reads its title and page sizes.
/// Background work: it takes the lock in short steps and lets renders go first.
pub(crate) fn inspect(path: &Path, bytes: &[u8]) -> Result<Inspection, ScoreError> {
    check_bytes(path, bytes)?;
    let pdfium = instance()?;
    let held = lock_background();
    let document = pdfium
        .load_pdf_from_byte_slice(bytes, None)
        .map_err(|e| classify(path, tail_has_eof(bytes), bytes.len() as u64, e))?;
    let title = document
        .metadata()
        .get(PdfDocumentMetadataTagType::Title)
        .map(|tag| tag.value().trim().to_string())
        .filter(|t| !t.is_empty());
    let count = document.pages().len();
    drop(held);
    let sizes = page_sizes_in_steps(path, &document, count);
    // Closing the document is a PDFium call too.
    let held = lock_background();
    drop(document);
    drop(held);
    let page_sizes = sizes?;
    Ok(Inspection { title, page_sizes })
}

/// The sizes of the `count` pages of `document`, [`SIZES_PER_STEP`] per hold of the lock; an
/// error for a document without pages.
fn page_sizes_in_steps(
    path: &Path,
    document: &PdfDocument<'_>,
    count: PdfPageIndex,
) -> Result<Vec<PageSize>, ScoreError> {
    let mut sizes = Vec::with_capacity(usize::try_from(count).unwrap_or(0));
    let mut next: PdfPageIndex = 0;
    while next < count {
        let _held = lock_background();
        let end = next.saturating_add(SIZES_PER_STEP).min(count);
        for index in next..end {
            let r = document.pages().page_size(index).map_err(|e| ScoreError::Corrupt {
                path: path.to_path_buf(),
                detail: format!("the size of page {index} is unreadable: {e}"),
            })?;
            sizes.push(PageSize { width: r.width().value, height: r.height().value });
        }
        next = end;
    }
    if sizes.is_empty() {
        return Err(ScoreError::Corrupt {
            path: path.to_path_buf(),
            detail: "it has no pages".into(),
        });
    }
    Ok(sizes)
}

/// PDF readers accept the `%PDF-` header anywhere in the first kilobyte.
const HEADER_WINDOW: usize = 1024;
/// `%%EOF` is expected in the last kilobyte (some writers append a little after it).
const TAIL_WINDOW: usize = 1024;

/// The checks that need no PDFium: empty, and not a PDF at all.
pub(crate) fn check_bytes(path: &Path, bytes: &[u8]) -> Result<(), ScoreError> {
    check_head(path, bytes.len() as u64, &bytes[..bytes.len().min(HEADER_WINDOW)])
}

fn check_head(path: &Path, len: u64, head: &[u8]) -> Result<(), ScoreError> {
    if len == 0 {
        return Err(ScoreError::EmptyFile { path: path.to_path_buf() });
    }
    if !contains(head, b"%PDF-") {
        return Err(ScoreError::NotAPdf { path: path.to_path_buf() });
    }
    Ok(())
}

fn tail_has_eof(bytes: &[u8]) -> bool {
    contains(&bytes[bytes.len().saturating_sub(TAIL_WINDOW)..], b"%%EOF")
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Turns a PDFium load failure into the error the user can act on.
fn classify(path: &Path, has_eof: bool, len: u64, error: PdfiumError) -> ScoreError {
    let path = path.to_path_buf();
    match error {
        PdfiumError::PdfiumLibraryInternalError(
            PdfiumInternalError::PasswordError | PdfiumInternalError::SecurityError,
        ) => ScoreError::PasswordProtected { path },
        PdfiumError::IoError(e) => ScoreError::io(path, e),
        _ if !has_eof => ScoreError::Truncated { path, len },
        other => ScoreError::Corrupt { path, detail: format!("PDFium: {other}") },
    }
}

/// Opens a score for rendering. Files are read lazily by PDFium as pages are needed.
///
/// Call with the lock held.
pub(crate) fn open<'a>(
    pdfium: &'a Pdfium,
    source: &crate::song::SongSource,
) -> Result<PdfDocument<'a>, ScoreError> {
    use crate::song::SongSource;
    match source {
        SongSource::Bytes { name, bytes } => {
            check_bytes(name, bytes)?;
            let has_eof = tail_has_eof(bytes);
            pdfium
                .load_pdf_from_reader(std::io::Cursor::new(SharedBytes(bytes.clone())), None)
                .map_err(|e| classify(name, has_eof, bytes.len() as u64, e))
        }
        SongSource::File(path) => {
            let (len, head, has_eof) = peek_file(path)?;
            check_head(path, len, &head)?;
            pdfium.load_pdf_from_file(path, None).map_err(|e| classify(path, has_eof, len, e))
        }
    }
}

/// Reads a file's length, its first kilobyte, and whether its last kilobyte holds `%%EOF`.
fn peek_file(path: &Path) -> Result<(u64, Vec<u8>, bool), ScoreError> {
    use std::io::{Read, Seek, SeekFrom};
    let io = |e| ScoreError::io(path, e);
    let mut file = std::fs::File::open(path).map_err(io)?;
    let len = file.metadata().map_err(io)?.len();
    let mut head = Vec::with_capacity(HEADER_WINDOW);
    (&mut file).take(HEADER_WINDOW as u64).read_to_end(&mut head).map_err(io)?;
    let mut tail = Vec::with_capacity(TAIL_WINDOW);
    file.seek(SeekFrom::Start(len.saturating_sub(TAIL_WINDOW as u64))).map_err(io)?;
    file.take(TAIL_WINDOW as u64).read_to_end(&mut tail).map_err(io)?;
    Ok((len, head, contains(&tail, b"%%EOF")))
}

/// Lets PDFium read an `Arc<[u8]>` through a `Cursor` without copying it.
struct SharedBytes(std::sync::Arc<[u8]>);

impl AsRef<[u8]> for SharedBytes {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}
