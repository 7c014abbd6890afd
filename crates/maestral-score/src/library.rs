//! The library: a folder of PDFs, scanned on a background thread into songs.
//!
//! A file that does not open is listed as unreadable with its reason; it never stops the scan.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use crossbeam_channel::Receiver;

use crate::error::ScoreError;
use crate::song::{Song, SongId};

/// One file found by a scan.
#[derive(Debug, Clone)]
pub enum LibraryEntry {
    Song(Song),
    Unreadable { path: PathBuf, reason: ScoreError },
}

impl LibraryEntry {
    pub fn path(&self) -> &Path {
        match self {
            LibraryEntry::Song(song) => &song.path,
            LibraryEntry::Unreadable { path, .. } => path,
        }
    }
}

/// The scores under one folder (or one file), sorted by path.
#[derive(Debug, Clone, Default)]
pub struct Library {
    pub root: PathBuf,
    pub entries: Vec<LibraryEntry>,
}

impl Library {
    /// Starts scanning `root` (a folder, searched recursively, or a single PDF) on a background
    /// thread and returns at once. Read [`LibraryScan::events`] for progress, or call
    /// [`LibraryScan::wait`].
    pub fn scan(root: impl Into<PathBuf>) -> LibraryScan {
        let root = root.into();
        let (tx, rx) = crossbeam_channel::unbounded();
        let cancel = Arc::new(AtomicBool::new(false));
        let thread_cancel = cancel.clone();
        let thread_root = root.clone();
        let thread = std::thread::Builder::new().name("maestral-scan".into()).spawn(move || {
            run_scan(&thread_root, &thread_cancel, &mut |event| {
                // The caller may have stopped listening; the scan just finishes.
                let _ = tx.send(event);
            })
        });
        match thread {
            Ok(handle) => LibraryScan { events: rx, cancel, thread: Some(handle) },
            Err(e) => {
                // No thread: report the failure as the scan's one event.
                let (tx, rx) = crossbeam_channel::bounded(1);
                let _ = tx.send(ScanEvent::Failed(ScoreError::io(root, e)));
                LibraryScan { events: rx, cancel, thread: None }
            }
        }
    }

    /// Scans on the calling thread (for the command line and tests).
    pub fn scan_blocking(root: impl AsRef<Path>) -> Result<Library, ScoreError> {
        let cancel = AtomicBool::new(false);
        let mut outcome = None;
        run_scan(root.as_ref(), &cancel, &mut |event| match event {
            ScanEvent::Finished(library) => outcome = Some(Ok(library)),
            ScanEvent::Failed(error) => outcome = Some(Err(error)),
            _ => {}
        });
        outcome.unwrap_or_else(|| {
            Ok(Library { root: root.as_ref().to_path_buf(), entries: Vec::new() })
        })
    }

    pub fn songs(&self) -> impl Iterator<Item = &Song> {
        self.entries.iter().filter_map(|e| match e {
            LibraryEntry::Song(song) => Some(song),
            LibraryEntry::Unreadable { .. } => None,
        })
    }

    pub fn unreadable(&self) -> impl Iterator<Item = (&Path, &ScoreError)> {
        self.entries.iter().filter_map(|e| match e {
            LibraryEntry::Unreadable { path, reason } => Some((path.as_path(), reason)),
            LibraryEntry::Song(_) => None,
        })
    }

    /// The song with this id, if the library holds it.
    pub fn song(&self, id: &SongId) -> Option<&Song> {
        self.songs().find(|s| s.id == *id)
    }
}

/// What a running scan reports, in this order: `Started`, then per file `Entry` and
/// `Progress`, then `Finished` (or `Failed` if the root itself cannot be read).
#[derive(Debug, Clone)]
pub enum ScanEvent {
    /// The folder has been walked: `total` PDFs to open.
    Started {
        total: usize,
    },
    /// The scan starts on this file (its pages are read next, in steps that let page turns
    /// through).
    Opening(PathBuf),
    /// One file done (a song or an unreadable file).
    Entry(LibraryEntry),
    Progress {
        done: usize,
        total: usize,
    },
    Finished(Library),
    Failed(ScoreError),
}

/// A scan running on its own thread.
#[derive(Debug)]
pub struct LibraryScan {
    events: Receiver<ScanEvent>,
    cancel: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl LibraryScan {
    /// The scan's events; poll with `try_recv` / `try_iter` from a frame loop.
    pub fn events(&self) -> &Receiver<ScanEvent> {
        &self.events
    }

    /// Asks the scan to stop after the file it is on; it then reports `Finished` with what it has.
    pub fn cancel(&self) {
        self.cancel.store(true, Ordering::Relaxed);
    }

    /// Blocks until the scan ends and returns the library.
    pub fn wait(mut self) -> Result<Library, ScoreError> {
        let mut outcome = None;
        for event in self.events.iter() {
            match event {
                ScanEvent::Finished(library) => outcome = Some(Ok(library)),
                ScanEvent::Failed(error) => outcome = Some(Err(error)),
                _ => {}
            }
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        // The scan thread always ends with `Finished` or `Failed`; without one it panicked.
        outcome.unwrap_or_else(|| {
            Err(ScoreError::io(
                "library scan",
                std::io::Error::other("the scan thread stopped early"),
            ))
        })
    }
}

impl Drop for LibraryScan {
    fn drop(&mut self) {
        self.cancel();
    }
}

fn run_scan(root: &Path, cancel: &AtomicBool, report: &mut dyn FnMut(ScanEvent)) {
    let files = match find_pdfs(root) {
        Ok(files) => files,
        Err(error) => {
            report(ScanEvent::Failed(error));
            return;
        }
    };
    let total = files.len();
    report(ScanEvent::Started { total });
    let mut entries = Vec::with_capacity(total);
    for (i, path) in files.into_iter().enumerate() {
        if cancel.load(Ordering::Relaxed) {
            break;
        }
        report(ScanEvent::Opening(path.clone()));
        let entry = match Song::open(&path) {
            Ok(song) => LibraryEntry::Song(song),
            Err(reason) => LibraryEntry::Unreadable { path, reason },
        };
        report(ScanEvent::Entry(entry.clone()));
        entries.push(entry);
        report(ScanEvent::Progress { done: i + 1, total });
    }
    report(ScanEvent::Finished(Library { root: root.to_path_buf(), entries }));
}

/// Every `.pdf` (any case) under `root`, sorted; `root` itself if it is a file.
///
/// Symbolic links to files are followed, links to folders are not (no loops).
fn find_pdfs(root: &Path) -> Result<Vec<PathBuf>, ScoreError> {
    let meta = std::fs::metadata(root).map_err(|e| ScoreError::io(root, e))?;
    if meta.is_file() {
        return Ok(vec![root.to_path_buf()]);
    }
    let mut found = Vec::new();
    let mut folders = vec![root.to_path_buf()];
    while let Some(folder) = folders.pop() {
        let listing = match std::fs::read_dir(&folder) {
            Ok(listing) => listing,
            // The root must be readable; an unreadable subfolder is skipped.
            Err(e) if folder == root => return Err(ScoreError::io(root, e)),
            Err(_) => continue,
        };
        for entry in listing.flatten() {
            let path = entry.path();
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                folders.push(path);
            } else if is_pdf_name(&path) && (kind.is_file() || path.is_file()) {
                found.push(path);
            }
        }
    }
    found.sort();
    Ok(found)
}

fn is_pdf_name(path: &Path) -> bool {
    path.extension().is_some_and(|x| x.eq_ignore_ascii_case("pdf"))
}
