//! The state directory: this device's id (kept across runs so peers and stored join codes
//! recognise it), where each song was left, and, through `maestral-net`, the Choir Master's
//! session.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use bevy::prelude::*;
use crossbeam_channel::{Receiver, Sender};
use maestral_net::state::{self, files};
use maestral_score::{Song, SongId};

use crate::model::{AppError, Position, SongLibrary, SyncSettings};

/// The platform's place for an app's state (`directories`): `$XDG_STATE_HOME/maestral` (else
/// `~/.local/state/maestral`) on Linux, `~/Library/Application Support/org.Maestral.Maestral`
/// on macOS, `%LOCALAPPDATA%\Maestral\Maestral\data` on Windows; `.maestral` here where the
/// platform names none.
pub fn default_state_dir() -> PathBuf {
    directories::ProjectDirs::from("org", "Maestral", "Maestral")
        .map(|dirs| dirs.state_dir().unwrap_or_else(|| dirs.data_local_dir()).to_path_buf())
        .unwrap_or_else(|| PathBuf::from(".maestral"))
}

/// A warning given before the app (and its log) exists: one line on standard error, like the
/// log's.
macro_rules! early_warning {
    ($($arg:tt)*) => { eprintln!("WARN maestral: {}", format_args!($($arg)*)) };
}

/// The state directory as this run may use it.
#[derive(Debug)]
pub struct StateDir {
    pub path: PathBuf,
    /// `false`: it cannot be written; this run reads what it can and keeps nothing.
    pub writable: bool,
    /// Held while the app runs: a second instance on the directory is refused.
    _lock: Option<state::StateLock>,
}

impl StateDir {
    /// Takes the directory's lock. Another instance on it is an error (its message is the one
    /// line to tell the user); a directory that cannot be written is used read-only, with one
    /// warning.
    pub fn open(path: PathBuf) -> Result<Self, String> {
        match state::lock(&path) {
            Ok(lock) => Ok(StateDir { path, writable: true, _lock: Some(lock) }),
            Err(held @ state::LockError::Held { .. }) => Err(held.to_string()),
            Err(unwritable @ state::LockError::Unwritable { .. }) => {
                early_warning!("{unwritable}");
                Ok(StateDir { path, writable: false, _lock: None })
            }
        }
    }
}

/// The device id stored in the state directory; a new one is made and stored if there is none.
/// A file that holds no usable id is set aside (as `device-id.broken`, never overwriting an
/// earlier one) with one warning. If the directory cannot be written, the id is for this run
/// only.
pub fn stored_device_id(dir: &StateDir) -> String {
    let path = dir.path.join(files::DEVICE_ID);
    match std::fs::read(&path) {
        Ok(bytes) => {
            let text = std::str::from_utf8(&bytes).unwrap_or("").trim();
            if maestral_protocol::DeviceId::is_valid(text) {
                return text.to_owned();
            }
            // A read-only directory: its own warning said this run keeps nothing.
            if dir.writable {
                let what = if bytes.trim_ascii().is_empty() {
                    "is empty"
                } else {
                    "holds no usable device id"
                };
                match state::set_aside(&path) {
                    Ok(aside) => early_warning!(
                        "{} {what}; it was kept as {} and this device has a new id (peers see a new device)",
                        path.display(),
                        aside.display()
                    ),
                    Err(e) => early_warning!(
                        "{} {what} and could not be set aside ({e}); this device has a new id",
                        path.display()
                    ),
                }
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound || !dir.writable => {}
        Err(e) => {
            early_warning!("could not read {} ({e}); this run uses a new device id", path.display())
        }
    }
    let id = format!("maestral-{:016x}", rand::random::<u64>());
    if dir.writable
        && let Err(error) = state::write_atomically(&path, format!("{id}\n").as_bytes(), false)
    {
        early_warning!(
            "could not store the device id in {} ({error}); peers will see a new id next time — pass --state-dir DIR or --device-id ID",
            path.display()
        );
    }
    id
}

/// The machine's name, for other devices to show (`--device-name` overrides it).
pub fn host_name() -> String {
    let from_file = std::fs::read_to_string("/etc/hostname").ok();
    let from_env = std::env::var("HOSTNAME").ok().or_else(|| std::env::var("COMPUTERNAME").ok());
    from_file
        .or(from_env)
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "Maestral".to_owned())
}

/// The last song and page per song, kept in `positions.json` in the state directory for every
/// role. The file is read once as the app is built (before any frame) and written by a thread
/// of its own. `resume`: the first score shown opens where the performer left off (a windowed
/// Solo device with no partner to take the page from); scripts and sessions start from what
/// they are told.
#[derive(Debug)]
pub struct PositionsPlugin {
    pub resume: bool,
}

impl Plugin for PositionsPlugin {
    fn build(&self, app: &mut App) {
        let dir = app.world().get_resource::<SyncSettings>().and_then(|s| s.state_dir.clone());
        let Some(dir) = dir else { return };
        let (mut positions, problem) = SavedPositions::load(&dir);
        positions.resumed = !self.resume;
        app.insert_resource(positions);
        if let Some(message) = problem {
            warn!("{message}");
            app.add_systems(Startup, move |mut errors: MessageWriter<AppError>| {
                errors.write(AppError(message.clone()));
            });
        }
        app.add_systems(
            Last,
            (note_positions, report_write_errors).run_if(resource_exists::<SavedPositions>),
        );
    }
}

/// Where the app opens: the song the performer left off in, and the page to turn to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resume {
    pub song: SongId,
    /// `None`: its first page.
    pub page: Option<u32>,
}

/// Where each song was left, and the song shown last.
#[derive(Resource, Debug)]
pub struct SavedPositions {
    path: PathBuf,
    pub last_song: Option<String>,
    pub pages: BTreeMap<String, u32>,
    /// Changed since it was last handed to the writer.
    dirty: bool,
    /// The start position was offered already (only the first score shown resumes).
    resumed: bool,
    /// Started at the first change.
    writer: Option<RecordWriter>,
}

impl SavedPositions {
    /// Reads `positions.json` in `state_dir`. A missing file is an empty record; an unreadable
    /// one is set aside as `positions.json.broken` (never overwritten) and the returned message
    /// says so.
    pub fn load(state_dir: &Path) -> (Self, Option<String>) {
        let path = state_dir.join(files::POSITIONS);
        let mut positions = SavedPositions {
            path,
            last_song: None,
            pages: BTreeMap::new(),
            dirty: false,
            resumed: false,
            writer: None,
        };
        let text = match std::fs::read_to_string(&positions.path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return (positions, None),
            Err(error) => {
                let message = format!(
                    "could not read {} ({error}); starting from the first page",
                    positions.path.display()
                );
                return (positions, Some(message));
            }
        };
        let parsed = serde_json::from_str::<serde_json::Value>(&text)
            .map_err(
                |e| if text.trim().is_empty() { "it is empty".to_owned() } else { e.to_string() },
            )
            .and_then(|value| {
                value.is_object().then_some(value).ok_or_else(|| "not a JSON object".to_owned())
            });
        match parsed {
            Ok(value) => {
                positions.last_song = value["last_song"].as_str().map(str::to_owned);
                if let Some(pages) = value["pages"].as_object() {
                    for (song, page) in pages {
                        if let Some(page) = page.as_u64().and_then(|p| u32::try_from(p).ok()) {
                            positions.pages.insert(song.clone(), page);
                        }
                    }
                }
                (positions, None)
            }
            Err(error) => {
                let message = format!(
                    "{}; the app starts from the first page",
                    state::broken(&positions.path, error)
                );
                (positions, Some(message))
            }
        }
    }

    /// Where to open, offered once (only the first score shown resumes): the song shown last,
    /// if it is one of `songs`, and its page (`None`: the first page; a page past the score's
    /// end is its last page).
    pub fn take_resume<'a>(&mut self, songs: impl IntoIterator<Item = &'a Song>) -> Option<Resume> {
        if std::mem::replace(&mut self.resumed, true) {
            return None;
        }
        let saved = self.last_song.as_deref()?;
        let song = songs.into_iter().find(|s| s.id.as_str() == saved)?;
        let id = song.id.clone();
        let page = self.pages.get(saved).copied().unwrap_or(0);
        Some(Resume {
            song: id,
            page: (page > 0).then(|| page.min(song.page_count.saturating_sub(1))),
        })
    }

    /// Hands the record to the writer thread, if it changed.
    fn flush(&mut self) {
        if !std::mem::take(&mut self.dirty) {
            return;
        }
        let text =
            serde_json::json!({"last_song": self.last_song, "pages": self.pages}).to_string();
        let path = self.path.clone();
        let lost = "the app will not open at this position next time";
        self.writer.get_or_insert_with(|| RecordWriter::start(path, lost)).send(text);
    }
}

/// A thread that keeps one file of the state directory: only the newest record is written
/// (older ones still queued are skipped), atomically ([`state::write_atomically`]). A failure
/// is reported once (by [`RecordWriter::failures`]) until a write works again. Dropped with the
/// app, it writes what is queued before it goes.
#[derive(Debug)]
pub(crate) struct RecordWriter {
    records: Option<Sender<String>>,
    failures: Receiver<String>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RecordWriter {
    /// `lost`: what the performer loses while writes fail, for the message.
    pub(crate) fn start(path: PathBuf, lost: &'static str) -> Self {
        let (tx, rx) = crossbeam_channel::unbounded::<String>();
        let (fail_tx, failures) = crossbeam_channel::unbounded();
        let name = path.file_name().map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        let thread = std::thread::Builder::new()
            .name(format!("maestral-{name}"))
            .spawn(move || {
                let mut failing = false;
                while let Ok(mut text) = rx.recv() {
                    // Only the newest matters.
                    while let Ok(newer) = rx.try_recv() {
                        text = newer;
                    }
                    match state::write_atomically(&path, text.as_bytes(), false) {
                        Ok(()) => failing = false,
                        // Said once until a write works again.
                        Err(error) if !failing => {
                            failing = true;
                            let _ = fail_tx.send(format!(
                                "could not write {} ({error}); {lost}",
                                path.display()
                            ));
                        }
                        Err(_) => {}
                    }
                }
            })
            .map_err(|error| warn!("could not start the thread that writes {name} ({error})"))
            .ok();
        RecordWriter { records: thread.is_some().then_some(tx), failures, thread }
    }

    pub(crate) fn send(&self, text: String) {
        if let Some(records) = &self.records {
            let _ = records.send(text);
        }
    }

    /// Reports the write failures not yet reported: in the log, and to the performer.
    pub(crate) fn report_failures(&self, errors: &mut MessageWriter<AppError>) {
        for message in self.failures.try_iter() {
            warn!("{message}");
            errors.write(AppError(message));
        }
    }
}

/// A state file kept as text: whenever the text handed to [`KeptFile::keep`] differs from the
/// last kept (or read), it goes to a [`RecordWriter`], started on the first change.
#[derive(Debug)]
pub(crate) struct KeptFile {
    path: PathBuf,
    /// What the performer loses while writes fail, for the message.
    lost: &'static str,
    kept: String,
    writer: Option<RecordWriter>,
}

impl KeptFile {
    /// The file at `path`, holding `kept` now.
    pub(crate) fn new(path: PathBuf, kept: String, lost: &'static str) -> Self {
        KeptFile { path, lost, kept, writer: None }
    }

    /// Writes `text` unless it is what the file holds already.
    pub(crate) fn keep(&mut self, text: String) {
        if text != self.kept {
            let (path, lost) = (self.path.clone(), self.lost);
            self.writer.get_or_insert_with(|| RecordWriter::start(path, lost)).send(text.clone());
            self.kept = text;
        }
    }

    /// Reports the write failures not yet reported.
    pub(crate) fn report_failures(&self, errors: &mut MessageWriter<AppError>) {
        if let Some(writer) = &self.writer {
            writer.report_failures(errors);
        }
    }
}

impl Drop for RecordWriter {
    fn drop(&mut self) {
        self.records = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Notes a change of song or page (a song of this device's library) and hands the record to
/// the writer thread; nothing is sent while nothing changes.
fn note_positions(
    position: Res<Position>,
    library: Res<SongLibrary>,
    mut positions: ResMut<SavedPositions>,
) {
    if position.is_changed()
        && let Some(song) = position.song.as_ref().filter(|s| library.get(s).is_some())
    {
        let song = song.as_str();
        if positions.pages.get(song) != Some(&position.page)
            || positions.last_song.as_deref() != Some(song)
        {
            positions.pages.insert(song.to_owned(), position.page);
            positions.last_song = Some(song.to_owned());
            positions.dirty = true;
        }
    }
    if positions.dirty {
        positions.flush();
    }
}

fn report_write_errors(positions: Res<SavedPositions>, mut errors: MessageWriter<AppError>) {
    if let Some(writer) = &positions.writer {
        writer.report_failures(&mut errors);
    }
}
