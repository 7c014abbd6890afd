//! Opening files: the file picker, and files dropped on the window.
//!
//! [`OpenDialog::pick`] asks for a score (a PDF or a folder of PDFs) or for a picture of a QR
//! code (PNG or JPEG). Where the desktop has a file dialog (see [`PickerKind::from_env`]) it is
//! the desktop's (`rfd`, on a thread of its own: the frame never waits for it); elsewhere, and
//! always under Xvfb, an egui picker drawn in the window (`egui-file-dialog`, drawn in bevy_egui's
//! `EguiPrimaryContextPass` by this plugin).
//!
//! What is picked or dropped ends as a message: a score or a folder as [`OpenScore`] (shown),
//! a picture as [`JoinCodeRead`] with the text of its QR code (decoded on a thread of its own),
//! anything else as one [`AppError`] naming the file.

use std::fmt;
use std::path::{Path, PathBuf};

use bevy::platform::cell::SyncCell;
use bevy::prelude::*;
use bevy::window::FileDragAndDrop;
use bevy_egui::{EguiContexts, EguiPrimaryContextPass};
use crossbeam_channel::{Receiver, Sender};
use egui_file_dialog::{DialogState, FileDialog, FileDialogStorage, Filter};

use crate::model::{AppError, JoinCodeRead, OpenScore, ScoreSystems};
use crate::wake::Waker;

mod qr;

pub use qr::read_qr_file;

/// File name endings of the pictures read as QR codes.
pub const QR_IMAGE_EXTENSIONS: [&str; 3] = ["png", "jpg", "jpeg"];

/// The environment variable that chooses the picker: `native` or `egui` (see
/// [`PickerKind::from_env`]).
pub const PICKER_ENV: &str = "MAESTRAL_FILE_PICKER";

pub fn plugin(app: &mut App) {
    let kind = PickerKind::from_env();
    info!("file picker: {kind:?}");
    // The model's waker: the model plugin comes first, and an app without it cannot work (a
    // picked file must wake a sleeping app).
    let Some(waker) = app.world().get_resource::<Waker>().cloned() else {
        panic!("open::plugin needs the model's Waker: add ModelPlugin first");
    };
    app.insert_resource(OpenDialog::new(kind, waker))
        // Registered by bevy's window plugin; a test app without one gets it here.
        .add_message::<FileDragAndDrop>()
        .add_systems(
            PreUpdate,
            (dropped_files, receive_native_picks, receive_qr_reads)
                .chain()
                .before(ScoreSystems::Receive),
        )
        .add_systems(EguiPrimaryContextPass, draw_egui_picker.run_if(egui_picker_open));
}

/// What the picker asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Pick {
    /// A PDF score or a folder of scores (the desktop's dialog asks for a PDF: it cannot offer
    /// files and folders at once; [`Pick::ScoreFolder`] asks it for a folder).
    Score,
    /// A folder of scores.
    ScoreFolder,
    /// A picture (PNG or JPEG) of a join code's QR code, e.g. a photo of the Master's screen.
    QrImage,
}

impl Pick {
    fn title(self) -> &'static str {
        match self {
            Pick::Score => "Open a score (PDF) or a folder of scores",
            Pick::ScoreFolder => "Open a folder of scores",
            Pick::QrImage => "Open a picture of the join code (PNG or JPEG)",
        }
    }
}

/// Which file picker this app uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PickerKind {
    /// The desktop's own dialog (`rfd`: the XDG desktop portal on Linux, else `zenity`).
    Native,
    /// A picker drawn with egui inside the window.
    Egui,
}

impl PickerKind {
    /// The picker for this process's environment (see [`PickerKind::from_vars`]).
    pub fn from_env() -> Self {
        let runtime_bus = std::env::var_os("XDG_RUNTIME_DIR")
            .is_some_and(|dir| Path::new(&dir).join("bus").exists());
        Self::from_vars(|name| std::env::var(name).ok(), runtime_bus)
    }

    /// The picker, from the environment variables `var` reads and whether the session bus
    /// socket `$XDG_RUNTIME_DIR/bus` exists:
    ///
    /// - `MAESTRAL_FILE_PICKER=native` or `=egui` decides;
    /// - macOS and Windows always have a desktop dialog;
    /// - elsewhere the desktop's dialog is the XDG portal, reached over the session bus, which
    ///   a desktop session has: `native` when `XDG_CURRENT_DESKTOP` names a desktop, a session
    ///   bus is there (`DBUS_SESSION_BUS_ADDRESS`, or its socket), and the display is not a
    ///   virtual one made by `xvfb-run` (its `XAUTHORITY` is in a `xvfb-run.*` folder; a portal
    ///   dialog would open on another screen than the window's). Otherwise `egui`.
    ///
    /// Tests that use the picker set `MAESTRAL_FILE_PICKER=egui`.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>, runtime_bus: bool) -> Self {
        let set = |name: &str| var(name).filter(|v| !v.trim().is_empty());
        match set(PICKER_ENV).as_deref().map(str::trim) {
            Some("native") => return PickerKind::Native,
            Some("egui") => return PickerKind::Egui,
            _ => {}
        }
        if cfg!(any(target_os = "macos", target_os = "windows")) {
            return PickerKind::Native;
        }
        let desktop = set("XDG_CURRENT_DESKTOP").is_some();
        let bus = runtime_bus || set("DBUS_SESSION_BUS_ADDRESS").is_some();
        let xvfb = set("XAUTHORITY").is_some_and(|a| a.contains("xvfb-run"));
        if desktop && bus && !xvfb { PickerKind::Native } else { PickerKind::Egui }
    }
}

/// The file picker. `pick` opens it; what is picked arrives as a message a few frames later
/// (see the module docs). One pick at a time: a `pick` while one is open is ignored.
#[derive(Resource)]
pub struct OpenDialog {
    kind: PickerKind,
    /// The desktop dialog running on its thread, and what it was asked for.
    native: Option<(Pick, Receiver<Option<PathBuf>>)>,
    /// The egui picker (made at the first pick) and what it is asking for while open.
    egui: Option<SyncCell<Box<FileDialog>>>,
    egui_pick: Option<Pick>,
    /// QR pictures being read on their threads; the text (or the message) comes back here.
    qr_sender: Sender<Result<String, String>>,
    qr_results: Receiver<Result<String, String>>,
    qr_in_flight: usize,
    waker: Waker,
}

impl fmt::Debug for OpenDialog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenDialog")
            .field("kind", &self.kind)
            .field("native", &self.native.as_ref().map(|(pick, _)| pick))
            .field("egui_pick", &self.egui_pick)
            .field("qr_in_flight", &self.qr_in_flight)
            .finish_non_exhaustive()
    }
}

impl OpenDialog {
    /// A picker of this kind; `waker` wakes the app when a pick or a QR reading is done.
    pub fn new(kind: PickerKind, waker: Waker) -> Self {
        let (qr_sender, qr_results) = crossbeam_channel::unbounded();
        OpenDialog {
            kind,
            native: None,
            egui: None,
            egui_pick: None,
            qr_sender,
            qr_results,
            qr_in_flight: 0,
            waker,
        }
    }

    pub fn kind(&self) -> PickerKind {
        self.kind
    }

    /// What the open picker asks for, if one is open.
    pub fn picking(&self) -> Option<Pick> {
        self.native.as_ref().map(|(pick, _)| *pick).or(self.egui_pick)
    }

    pub fn is_open(&self) -> bool {
        self.picking().is_some()
    }

    /// QR pictures still being read.
    pub fn reading_qr(&self) -> usize {
        self.qr_in_flight
    }

    /// Opens the picker for `purpose`; returns at once.
    pub fn pick(&mut self, purpose: Pick) {
        if self.is_open() {
            return;
        }
        match self.kind {
            PickerKind::Native => self.native = Some((purpose, native_pick(purpose, &self.waker))),
            PickerKind::Egui => {
                let storage = self.egui.as_mut().map(|d| d.get().storage_mut().clone());
                let mut dialog = Box::new(egui_dialog(purpose, storage));
                egui_open(&mut dialog, purpose);
                self.egui = Some(SyncCell::new(dialog));
                self.egui_pick = Some(purpose);
            }
        }
    }

    /// Reads the QR code in the picture at `path` on a thread of its own.
    pub fn read_qr(&mut self, path: PathBuf) {
        let (tx, waker) = (self.qr_sender.clone(), self.waker.clone());
        let worker = move || {
            let _ = tx.send(read_qr_file(&path));
            waker.wake();
        };
        self.qr_in_flight += 1;
        if let Err(error) = std::thread::Builder::new().name("maestral-qr".into()).spawn(worker) {
            let _ = self
                .qr_sender
                .send(Err(format!("could not start a thread to read the picture ({error})")));
        }
    }
}

/// A fresh egui picker for `purpose`, remembering where the last one was (`storage`).
fn egui_dialog(purpose: Pick, storage: Option<FileDialogStorage>) -> FileDialog {
    let (name, extensions): (&str, &'static [&'static str]) = match purpose {
        Pick::Score | Pick::ScoreFolder => ("PDF scores", &["pdf"]),
        Pick::QrImage => ("Pictures (PNG, JPEG)", &QR_IMAGE_EXTENSIONS),
    };
    let mut dialog = FileDialog::new()
        .title(purpose.title())
        .add_file_filter(name, Filter::new(move |path: &Path| has_extension(path, extensions)))
        .default_file_filter(name)
        .max_selections(1);
    if let Some(storage) = storage {
        dialog = dialog.storage(storage);
    }
    dialog
}

/// Opens `dialog` for `purpose`.
fn egui_open(dialog: &mut FileDialog, purpose: Pick) {
    match purpose {
        // Files and folders alike, one of them.
        Pick::Score => dialog.pick_multiple(),
        Pick::ScoreFolder => dialog.pick_directory(),
        Pick::QrImage => dialog.pick_file(),
    }
}

/// Starts the desktop's dialog on a thread of its own (rfd's async dialog, so that on macOS it
/// runs where it must); `None` comes back when it is cancelled or cannot be shown.
fn native_pick(purpose: Pick, waker: &Waker) -> Receiver<Option<PathBuf>> {
    let (tx, rx) = crossbeam_channel::bounded(1);
    let worker = {
        let (tx, waker) = (tx.clone(), waker.clone());
        move || {
            let dialog = rfd::AsyncFileDialog::new().set_title(purpose.title());
            let picked = bevy::tasks::block_on(async move {
                match purpose {
                    Pick::Score => {
                        dialog.add_filter("PDF scores", &["pdf", "PDF"]).pick_file().await
                    }
                    Pick::ScoreFolder => dialog.pick_folder().await,
                    Pick::QrImage => {
                        let extensions = ["png", "PNG", "jpg", "JPG", "jpeg", "JPEG"];
                        dialog.add_filter("Pictures (PNG, JPEG)", &extensions).pick_file().await
                    }
                }
            });
            let _ = tx.send(picked.map(|file| file.path().to_path_buf()));
            waker.wake();
        }
    };
    if let Err(error) = std::thread::Builder::new().name("maestral-pick".into()).spawn(worker) {
        warn!("could not start the file dialog's thread: {error}");
        let _ = tx.send(None);
    }
    rx
}

fn has_extension(path: &Path, extensions: &[impl AsRef<str>]) -> bool {
    let ext = path.extension().and_then(|x| x.to_str()).unwrap_or_default();
    extensions.iter().any(|x| x.as_ref().eq_ignore_ascii_case(ext))
}

fn file_name(path: &Path) -> String {
    path.file_name().unwrap_or(path.as_os_str()).to_string_lossy().into_owned()
}

/// What a dropped path is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dropped {
    /// A PDF or a folder: opened as a score (a library).
    Score(PathBuf),
    /// A PNG or JPEG: read as a QR picture.
    QrImage(PathBuf),
    /// Anything else, with the message that says so.
    Refused(String),
}

/// What a dropped path is, from its kind and name (a look at the file system, no read).
pub fn classify_drop(path: &Path) -> Dropped {
    if path.is_dir() || has_extension(path, &["pdf"]) {
        Dropped::Score(path.to_path_buf())
    } else if has_extension(path, &QR_IMAGE_EXTENSIONS) {
        Dropped::QrImage(path.to_path_buf())
    } else {
        Dropped::Refused(format!(
            "{} is not a PDF score or a folder; drop a PDF, a folder of scores, or a picture \
             (PNG or JPEG) of a join code",
            file_name(path)
        ))
    }
}

/// The outcome of a picked or dropped path.
fn act(
    path: PathBuf,
    as_what: Dropped,
    dialog: &mut OpenDialog,
    opens: &mut MessageWriter<OpenScore>,
    errors: &mut MessageWriter<AppError>,
) {
    match as_what {
        Dropped::Score(_) => {
            opens.write(OpenScore { path, show: true });
        }
        Dropped::QrImage(_) => dialog.read_qr(path),
        Dropped::Refused(message) => {
            warn!("{message}");
            errors.write(AppError(message));
        }
    }
}

fn dropped_files(
    mut drops: MessageReader<FileDragAndDrop>,
    mut dialog: ResMut<OpenDialog>,
    mut opens: MessageWriter<OpenScore>,
    mut errors: MessageWriter<AppError>,
) {
    for drop in drops.read() {
        if let FileDragAndDrop::DroppedFile { path_buf, .. } = drop {
            let as_what = classify_drop(path_buf);
            act(path_buf.clone(), as_what, &mut dialog, &mut opens, &mut errors);
        }
    }
}

/// A path the picker gave, for `purpose`: a picked file is taken as asked for (a picture
/// picked for its QR code is read as one, whatever its name).
fn picked(path: PathBuf, purpose: Pick) -> Dropped {
    match purpose {
        Pick::Score | Pick::ScoreFolder => Dropped::Score(path),
        Pick::QrImage => Dropped::QrImage(path),
    }
}

fn receive_native_picks(
    mut dialog: ResMut<OpenDialog>,
    mut opens: MessageWriter<OpenScore>,
    mut errors: MessageWriter<AppError>,
) {
    let Some((purpose, result)) = &dialog.native else {
        return;
    };
    let purpose = *purpose;
    let outcome = match result.try_recv() {
        Ok(outcome) => outcome,
        Err(crossbeam_channel::TryRecvError::Empty) => return,
        Err(crossbeam_channel::TryRecvError::Disconnected) => None,
    };
    dialog.native = None;
    if let Some(path) = outcome {
        act(path.clone(), picked(path, purpose), &mut dialog, &mut opens, &mut errors);
    }
}

fn receive_qr_reads(
    mut dialog: ResMut<OpenDialog>,
    mut read: MessageWriter<JoinCodeRead>,
    mut errors: MessageWriter<AppError>,
) {
    if dialog.qr_in_flight == 0 {
        return;
    }
    let results: Vec<_> = dialog.qr_results.try_iter().collect();
    dialog.qr_in_flight = dialog.qr_in_flight.saturating_sub(results.len());
    for result in results {
        match result {
            Ok(text) => {
                // Not the text: a join code carries the session's token.
                info!("read a QR code ({} characters)", text.chars().count());
                read.write(JoinCodeRead(text));
            }
            Err(message) => {
                warn!("{message}");
                errors.write(AppError(message));
            }
        }
    }
}

fn egui_picker_open(dialog: Res<OpenDialog>) -> bool {
    dialog.egui_pick.is_some()
}

/// Draws the egui picker while it is open (bevy_egui's `EguiPrimaryContextPass`); a pick or a
/// cancel closes it.
fn draw_egui_picker(
    mut contexts: EguiContexts,
    mut dialog: ResMut<OpenDialog>,
    mut opens: MessageWriter<OpenScore>,
    mut errors: MessageWriter<AppError>,
) -> Result {
    let ctx = contexts.ctx_mut()?;
    let Some(purpose) = dialog.egui_pick else {
        return Ok(());
    };
    let Some(file_dialog) = dialog.egui.as_mut().map(SyncCell::get) else {
        dialog.egui_pick = None;
        return Ok(());
    };
    file_dialog.update(ctx);
    let path = match file_dialog.state() {
        DialogState::Open => return Ok(()),
        DialogState::Picked(_) => file_dialog.take_picked(),
        DialogState::PickedMultiple(_) => {
            file_dialog.take_picked_multiple().and_then(|paths| paths.into_iter().next())
        }
        DialogState::Closed | DialogState::Cancelled => None,
    };
    dialog.egui_pick = None;
    if let Some(path) = path {
        // The egui picker shows folders and files alike: a file picked as a score is opened as
        // one (the library says if it is no PDF).
        act(path.clone(), picked(path, purpose), &mut dialog, &mut opens, &mut errors);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(vars: &[(&str, &str)], runtime_bus: bool) -> PickerKind {
        let vars: Vec<(String, String)> =
            vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        PickerKind::from_vars(
            |name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()),
            runtime_bus,
        )
    }

    #[test]
    fn the_environment_variable_decides_the_picker() {
        assert_eq!(
            kind(&[(PICKER_ENV, "egui"), ("XDG_CURRENT_DESKTOP", "GNOME")], true),
            PickerKind::Egui
        );
        assert_eq!(kind(&[(PICKER_ENV, "native")], false), PickerKind::Native);
    }

    #[cfg(all(unix, not(target_os = "macos")))]
    #[test]
    fn a_desktop_session_with_a_bus_gets_the_desktop_dialog_and_xvfb_the_egui_picker() {
        let gnome = ("XDG_CURRENT_DESKTOP", "GNOME");
        let bus = ("DBUS_SESSION_BUS_ADDRESS", "unix:path=/run/user/1000/bus");
        assert_eq!(kind(&[gnome, bus], false), PickerKind::Native);
        assert_eq!(kind(&[gnome], true), PickerKind::Native);
        // No desktop, or no bus to reach its portal.
        assert_eq!(kind(&[bus], true), PickerKind::Egui);
        assert_eq!(kind(&[gnome], false), PickerKind::Egui);
        assert_eq!(kind(&[], false), PickerKind::Egui);
        // xvfb-run's display, even from a desktop's terminal.
        let xvfb = ("XAUTHORITY", "/tmp/xvfb-run.Ab12Cd/Xauthority");
        assert_eq!(kind(&[gnome, bus, xvfb], true), PickerKind::Egui);
    }

    #[test]
    fn names_are_matched_without_case_and_pictures_are_not_scores() {
        assert_eq!(classify_drop(Path::new("Ave.PDF")), Dropped::Score("Ave.PDF".into()));
        assert_eq!(classify_drop(Path::new("code.png")), Dropped::QrImage("code.png".into()));
        assert_eq!(classify_drop(Path::new("shot.JpG")), Dropped::QrImage("shot.JpG".into()));
        let Dropped::Refused(message) = classify_drop(Path::new("/home/a/notes.txt")) else {
            panic!("a text file is refused");
        };
        assert!(message.starts_with("notes.txt is not a PDF score or a folder;"), "{message}");
        assert!(!message.contains('\n'));
    }

    #[test]
    fn a_pick_while_one_is_open_is_ignored_and_the_egui_picker_opens_for_its_purpose() {
        let mut dialog = OpenDialog::new(PickerKind::Egui, Waker::none());
        assert!(!dialog.is_open());
        dialog.pick(Pick::QrImage);
        assert_eq!(dialog.picking(), Some(Pick::QrImage));
        dialog.pick(Pick::Score);
        assert_eq!(dialog.picking(), Some(Pick::QrImage));
        let state = dialog.egui.as_mut().map(|d| d.get().state().clone());
        assert_eq!(state, Some(DialogState::Open));
    }
}
