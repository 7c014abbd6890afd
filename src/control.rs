//! Line commands in, JSON events out (`spec/HEADLESS.md`): headless mode's whole interface, and
//! with `--control` a scripting interface to the window (for its tests and benchmarks).
//!
//! Standard input is read on its own thread into a crossbeam channel (waking the app), drained
//! by a system in `PreUpdate`. Standard output carries nothing but the event lines; logs go to
//! standard error.

use std::collections::VecDeque;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bevy::ecs::system::SystemParam;
use bevy::input::ButtonState;
use bevy::input::keyboard::{Key, KeyboardInput, NativeKey};
use bevy::prelude::*;
use crossbeam_channel::{Receiver, Sender};
use maestral_net::SyncCommand;
use maestral_protocol::{FollowMode, SongId};
use maestral_sync::{LocalAction, Role};
use serde_json::{Value, json};

use crate::input::Gesture;
use crate::navigation::{PageTurnRequested, Position, SongChangeRequested, Turn};
use crate::score::{AppError, OpenScore, PendingOpens, ScoreSystems, SongLibrary};
use crate::sync::{
    LinkChanged, PhaseChanged, SessionCodes, StreamChanged, SyncBridge, SyncMode, SyncSettings,
    SyncSystems,
};
use crate::wake::Waker;

pub fn plugin(app: &mut App) {
    app.init_resource::<ControlState>()
        .init_resource::<ControlOutput>()
        .init_resource::<PendingLines>()
        .init_resource::<Waker>()
        .add_message::<WindowCommand>()
        .add_message::<ControlEvent>()
        .add_message::<PageTurnRequested>()
        .add_message::<SongChangeRequested>()
        .add_message::<OpenScore>()
        .add_message::<AppError>()
        .add_message::<PhaseChanged>()
        .add_message::<LinkChanged>()
        .add_message::<StreamChanged>()
        .init_resource::<SessionCodes>()
        .add_systems(
            PreUpdate,
            run_commands
                .run_if(resource_exists::<ControlInput>)
                .after(SyncSystems::Drain)
                .before(ScoreSystems::Receive),
        )
        .add_systems(Last, write_events);
}

/// One line from the controller, or the end of its input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ControlLine {
    Line(String),
    /// A line that could not be taken as a command (it is not UTF-8 text): one `error` event,
    /// and reading goes on.
    Unreadable(String),
    Closed,
}

/// Where commands come from: standard input (read on its own thread), or a test's channel.
#[derive(Resource, Debug)]
pub struct ControlInput(Receiver<ControlLine>);

impl ControlInput {
    /// Reads standard input line by line on a thread, waking the app after each line.
    pub fn stdin(waker: Waker) -> Self {
        let (tx, rx) = crossbeam_channel::unbounded();
        let spawned = std::thread::Builder::new().name("maestral-stdin".into()).spawn(move || {
            let stdin = std::io::stdin();
            read_lines(stdin.lock(), |line| {
                let sent = tx.send(line).is_ok();
                waker.wake();
                sent
            });
        });
        if let Err(error) = spawned {
            error!("could not read standard input ({error}); no commands will be taken");
        }
        ControlInput(rx)
    }

    /// A channel to feed lines by hand (tests).
    pub fn channel() -> (Self, Sender<ControlLine>) {
        let (tx, rx) = crossbeam_channel::unbounded();
        (ControlInput(rx), tx)
    }
}

/// Reads `input` line by line into `send` (which says whether anyone still listens). A line
/// that is not UTF-8 becomes [`ControlLine::Unreadable`] and reading goes on; the end of the
/// input or an I/O error sends [`ControlLine::Closed`].
pub fn read_lines(mut input: impl BufRead, mut send: impl FnMut(ControlLine) -> bool) {
    let mut buf = Vec::new();
    let mut number = 0u64;
    loop {
        buf.clear();
        match input.read_until(b'\n', &mut buf) {
            Ok(0) => break,
            Ok(_) => {}
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(error) => {
                warn!("could not read standard input ({error}); no more commands will be taken");
                break;
            }
        }
        number += 1;
        if buf.last() == Some(&b'\n') {
            buf.pop();
            if buf.last() == Some(&b'\r') {
                buf.pop();
            }
        }
        let line = match std::str::from_utf8(&buf) {
            Ok(text) => ControlLine::Line(text.to_owned()),
            Err(error) => ControlLine::Unreadable(format!(
                "input line {number} is not UTF-8 text (bad byte at {}); it was ignored — send commands as UTF-8 lines: {COMMANDS}",
                error.valid_up_to()
            )),
        };
        if !send(line) {
            return;
        }
    }
    send(ControlLine::Closed);
}

/// Where event lines go: standard output (written by a thread of its own, so a slow reader
/// never holds up a frame), or a buffer a test reads.
#[derive(Resource, Clone)]
pub struct ControlOutput(Sink);

#[derive(Clone)]
enum Sink {
    Writer(Arc<LineWriter>),
    Memory(Arc<Mutex<Vec<u8>>>),
}

/// A thread writing lines to standard output, in order. Dropped with the app: the lines still
/// queued are written before it goes.
struct LineWriter {
    lines: Option<Sender<String>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl LineWriter {
    fn stdout() -> Self {
        let (tx, rx) = crossbeam_channel::unbounded::<String>();
        let spawned = std::thread::Builder::new().name("maestral-stdout".into()).spawn(move || {
            let stdout = std::io::stdout();
            let mut out = stdout.lock();
            for line in rx.iter() {
                // A closed standard output (the controller went away) is not worth a crash.
                let _ = writeln!(out, "{line}");
                // A reader waits on whole lines: flush once nothing more is queued.
                if rx.is_empty() {
                    let _ = out.flush();
                }
            }
            let _ = out.flush();
        });
        match spawned {
            Ok(thread) => LineWriter { lines: Some(tx), thread: Some(thread) },
            Err(error) => {
                error!(
                    "could not start the standard output thread ({error}); no events will be written"
                );
                LineWriter { lines: None, thread: None }
            }
        }
    }
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        self.lines = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Default for ControlOutput {
    fn default() -> Self {
        ControlOutput(Sink::Writer(Arc::new(LineWriter::stdout())))
    }
}

impl std::fmt::Debug for ControlOutput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ControlOutput")
    }
}

/// The lines written to a [`ControlOutput::buffer`].
#[derive(Debug, Clone, Default)]
pub struct OutputBuffer(Arc<Mutex<Vec<u8>>>);

impl OutputBuffer {
    /// Every line written so far, parsed.
    pub fn events(&self) -> Vec<Value> {
        let bytes = self.0.lock().map(|b| b.clone()).unwrap_or_default();
        String::from_utf8_lossy(&bytes)
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}

impl ControlOutput {
    /// Output into memory, for tests.
    pub fn buffer() -> (Self, OutputBuffer) {
        let shared = Arc::new(Mutex::new(Vec::new()));
        (ControlOutput(Sink::Memory(shared.clone())), OutputBuffer(shared))
    }

    /// Queues one event line; never waits for the reader.
    pub fn write(&self, event: &Value) {
        match &self.0 {
            Sink::Writer(writer) => {
                if let Some(lines) = &writer.lines {
                    let _ = lines.send(event.to_string());
                }
            }
            Sink::Memory(buffer) => {
                if let Ok(mut buffer) = buffer.lock() {
                    let _ = writeln!(buffer, "{event}");
                }
            }
        }
    }
}

/// A command as read from a line.
#[derive(Debug, Clone, PartialEq)]
pub enum ControlCommand {
    Next,
    Prev,
    Page(u32),
    Song(String),
    Follow,
    Free,
    End,
    Leave,
    Quit,
    /// Solo: the other device's answer code (a line starting `M1A:`).
    Answer(String),
    /// Window only.
    Window(WindowCommand),
}

/// Commands that only make sense with a window (`--control`).
#[derive(Message, Debug, Clone, PartialEq)]
pub enum WindowCommand {
    /// A key press and release, as a keyboard or pedal sends it.
    Key(KeyCode),
    /// A tap at (x, y) logical pixels in window `window`.
    Tap { x: f32, y: f32, window: u8 },
    /// Save window `window` to a PNG once the pages on screen are the final ones.
    Screenshot { path: PathBuf, window: u8 },
    /// Counters: frames so far, textures held, position.
    Stats,
}

/// An extra event line from the window side (`presented`, `screenshot`, `stats`).
#[derive(Message, Debug, Clone, PartialEq)]
pub struct ControlEvent(pub Value);

const COMMANDS: &str = "next, prev, page N, song SONG_ID|PATH, follow, free, end, leave, quit";

/// Parses one command line.
pub fn parse_command(line: &str) -> Result<ControlCommand, String> {
    let line = line.trim();
    let (word, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
    let rest = rest.trim();
    let no_argument = |cmd: ControlCommand| {
        if rest.is_empty() { Ok(cmd) } else { Err(format!("`{word}` takes no argument")) }
    };
    match word {
        "next" => no_argument(ControlCommand::Next),
        "prev" => no_argument(ControlCommand::Prev),
        "follow" => no_argument(ControlCommand::Follow),
        "free" => no_argument(ControlCommand::Free),
        "end" => no_argument(ControlCommand::End),
        "leave" => no_argument(ControlCommand::Leave),
        "quit" => no_argument(ControlCommand::Quit),
        "page" => rest
            .parse()
            .map(ControlCommand::Page)
            .map_err(|_| format!("`page` takes a page index counted from 0, not {rest:?}")),
        "song" if !rest.is_empty() => Ok(ControlCommand::Song(rest.to_owned())),
        "song" => Err("`song` takes a song id (64 hex digits) or the path of a score".into()),
        "key" => key_code(rest)
            .map(|k| ControlCommand::Window(WindowCommand::Key(k)))
            .ok_or_else(|| format!("unknown key {rest:?}: try PageDown, PageUp, Space, Home, End, Enter, Tab, F11, 0–9")),
        "tap" => {
            let parts: Vec<&str> = rest.split_whitespace().collect();
            let number = |s: &&str| s.parse::<f32>().ok().filter(|v| v.is_finite());
            match parts.as_slice() {
                [x, y] | [x, y, _] if number(x).is_some() && number(y).is_some() => {
                    let window = parts.get(2).and_then(|w| w.parse().ok()).unwrap_or(0);
                    Ok(ControlCommand::Window(WindowCommand::Tap {
                        x: number(x).unwrap_or_default(),
                        y: number(y).unwrap_or_default(),
                        window,
                    }))
                }
                _ => Err("`tap` takes X Y [WINDOW] in logical pixels".into()),
            }
        }
        "screenshot" => {
            let (path, window) = match rest.rsplit_once(char::is_whitespace) {
                Some((p, w)) if w.parse::<u8>().is_ok() => (p.trim(), w.parse().unwrap_or(0)),
                _ => (rest, 0),
            };
            if path.is_empty() {
                return Err("`screenshot` takes PATH.png [WINDOW]".into());
            }
            Ok(ControlCommand::Window(WindowCommand::Screenshot { path: path.into(), window }))
        }
        "stats" => no_argument(ControlCommand::Window(WindowCommand::Stats)),
        _ if line.starts_with("M1A:") => Ok(ControlCommand::Answer(line.to_owned())),
        _ => Err(format!("unknown command {line:?}; the commands are: {COMMANDS}")),
    }
}

fn key_code(name: &str) -> Option<KeyCode> {
    let lower = name.to_ascii_lowercase();
    Some(match lower.as_str() {
        "pagedown" => KeyCode::PageDown,
        "pageup" => KeyCode::PageUp,
        "right" | "arrowright" => KeyCode::ArrowRight,
        "left" | "arrowleft" => KeyCode::ArrowLeft,
        "up" | "arrowup" => KeyCode::ArrowUp,
        "down" | "arrowdown" => KeyCode::ArrowDown,
        "space" => KeyCode::Space,
        "home" => KeyCode::Home,
        "end" => KeyCode::End,
        "enter" => KeyCode::Enter,
        "escape" => KeyCode::Escape,
        "tab" => KeyCode::Tab,
        "backspace" => KeyCode::Backspace,
        "f11" => KeyCode::F11,
        "0" => KeyCode::Digit0,
        "1" => KeyCode::Digit1,
        "2" => KeyCode::Digit2,
        "3" => KeyCode::Digit3,
        "4" => KeyCode::Digit4,
        "5" => KeyCode::Digit5,
        "6" => KeyCode::Digit6,
        "7" => KeyCode::Digit7,
        "8" => KeyCode::Digit8,
        "9" => KeyCode::Digit9,
        _ => return None,
    })
}

/// Whether the window extras are on (`--control` with a window).
#[derive(Resource, Debug, Default)]
pub struct WindowControl;

#[derive(SystemParam)]
struct Actions<'w> {
    turns: MessageWriter<'w, PageTurnRequested>,
    songs: MessageWriter<'w, SongChangeRequested>,
    opens: MessageWriter<'w, OpenScore>,
    errors: MessageWriter<'w, AppError>,
    window: MessageWriter<'w, WindowCommand>,
    exit: MessageWriter<'w, AppExit>,
}

/// Lines read but not yet carried out: one command a frame, so each sees the state the one
/// before it left (a `song` then a `page` in one read must not race).
#[derive(Resource, Debug, Default)]
pub struct PendingLines(VecDeque<ControlLine>);

fn run_commands(
    input: Res<ControlInput>,
    mut pending: ResMut<PendingLines>,
    mut actions: Actions,
    position: Res<Position>,
    library: Res<SongLibrary>,
    bridge: Option<Res<SyncBridge>>,
    window_control: Option<Res<WindowControl>>,
    opens: Option<Res<PendingOpens>>,
    waker: Res<Waker>,
) {
    pending.0.extend(input.0.try_iter());
    // A score file still opening (on its thread): the commands after its `song PATH` wait for
    // it, so they apply to that song. Its end wakes the app.
    if opens.is_some_and(|o| !o.is_empty()) {
        return;
    }
    // Blank lines are skipped at once; the first real command is carried out this frame.
    while pending
        .0
        .front()
        .is_some_and(|l| matches!(l, ControlLine::Line(t) if t.trim().is_empty()))
    {
        pending.0.pop_front();
    }
    let Some(line) = pending.0.pop_front() else { return };
    if !pending.0.is_empty() {
        // More to do: run the next frame at once.
        waker.wake();
    }
    {
        let line = match line {
            ControlLine::Line(line) => line,
            ControlLine::Unreadable(message) => {
                actions.errors.write(AppError(message));
                return;
            }
            // The controller is gone: nobody is left to tell us to quit.
            ControlLine::Closed => {
                info!("standard input closed; quitting");
                actions.exit.write(AppExit::Success);
                return;
            }
        };
        let command = match parse_command(&line) {
            Ok(c) => c,
            Err(message) => {
                actions.errors.write(AppError(message));
                return;
            }
        };
        let sync = |action: LocalAction, errors: &mut MessageWriter<AppError>| match &bridge {
            Some(bridge) => bridge.local(action),
            None => {
                errors.write(AppError("no sync session is running".into()));
            }
        };
        match command {
            ControlCommand::Next => {
                actions.turns.write(PageTurnRequested(Turn::Next));
            }
            ControlCommand::Prev => {
                actions.turns.write(PageTurnRequested(Turn::Prev));
            }
            ControlCommand::Page(page) => {
                let count = library.page_count(position.song.as_ref());
                if position.song.is_none() {
                    actions.errors.write(AppError(
                        "no song is shown: send `song SONG_ID` or `song PATH` first".into(),
                    ));
                } else if let Some(count) = count.filter(|&c| page >= c) {
                    actions.errors.write(AppError(format!(
                        "page {page} is past the end: the score has {count} pages (0 to {})",
                        count.saturating_sub(1)
                    )));
                } else {
                    actions.turns.write(PageTurnRequested(Turn::To(page)));
                }
            }
            ControlCommand::Song(what) => match song_target(&what, &library) {
                Ok(SongTarget::Known(id)) => {
                    actions.songs.write(SongChangeRequested(Some(id)));
                }
                Ok(SongTarget::File(path)) => {
                    actions.opens.write(OpenScore { path, show: true });
                }
                Err(message) => {
                    actions.errors.write(AppError(message));
                }
            },
            ControlCommand::Follow => {
                sync(LocalAction::SetFollowMode { mode: FollowMode::Follow }, &mut actions.errors)
            }
            ControlCommand::Free => {
                sync(LocalAction::SetFollowMode { mode: FollowMode::Free }, &mut actions.errors)
            }
            ControlCommand::End => sync(LocalAction::EndSession, &mut actions.errors),
            ControlCommand::Leave => sync(LocalAction::Leave, &mut actions.errors),
            ControlCommand::Quit => {
                actions.exit.write(AppExit::Success);
            }
            ControlCommand::Answer(code) => match &bridge {
                Some(bridge) if bridge.role() == Role::Solo => {
                    bridge.send(SyncCommand::SoloAccept(code));
                }
                _ => {
                    actions.errors.write(AppError(
                        "an answer code only completes a Solo pairing started with --solo-offer"
                            .into(),
                    ));
                }
            },
            ControlCommand::Window(command) => {
                if window_control.is_some() {
                    actions.window.write(command);
                } else {
                    actions.errors.write(AppError(format!(
                        "{line:?} needs a window; the headless commands are: {COMMANDS}"
                    )));
                }
            }
        }
    }
}

enum SongTarget {
    Known(SongId),
    File(PathBuf),
}

/// A `song` argument: a song id (64 hex digits) or a score file's path.
fn song_target(what: &str, library: &SongLibrary) -> Result<SongTarget, String> {
    if let Ok(id) = what.parse::<maestral_score::SongId>() {
        if library.get(id).is_none() {
            // Other devices may have it; this one shows its page count as unknown.
            warn!("song {what} is not in this device's library");
        }
        return Ok(SongTarget::Known(SongId::new(id.to_hex())));
    }
    let path = Path::new(what);
    if path.is_file() {
        Ok(SongTarget::File(path.to_path_buf()))
    } else if path.exists() {
        Err(format!("{what} is not a score file; give a PDF's path or a song id"))
    } else {
        Err(format!("no such score file or song id: {what:?} (a song id is 64 hex digits)"))
    }
}

/// What has been said on standard output, so each change is said once.
#[derive(Resource, Debug, Default)]
pub struct ControlState {
    ready: bool,
    /// Lines produced before `ready` (which comes first).
    held: Vec<Value>,
    last_show: Option<Value>,
}

fn mode_name(mode: &SyncMode) -> &'static str {
    match mode.role() {
        Role::Solo => "solo",
        Role::Master => "choir_master",
        Role::Follower => "choir_follower",
    }
}

fn write_events(
    out: Res<ControlOutput>,
    mut state: ResMut<ControlState>,
    position: Res<Position>,
    library: Res<SongLibrary>,
    codes: Res<SessionCodes>,
    settings: Option<Res<SyncSettings>>,
    mut phases: MessageReader<PhaseChanged>,
    mut links: MessageReader<LinkChanged>,
    mut streams: MessageReader<StreamChanged>,
    mut errors: MessageReader<AppError>,
    mut extra: MessageReader<ControlEvent>,
) {
    let mut lines = Vec::new();
    for PhaseChanged(phase) in phases.read() {
        lines.push(json!({"event": "phase", "phase": phase.as_str()}));
    }
    for LinkChanged { peer, state } in links.read() {
        lines.push(json!({"event": "link", "peer": peer.as_str(), "state": state.as_str()}));
    }
    for StreamChanged { song, state } in streams.read() {
        lines.push(json!({
            "event": "stream",
            "song_id": song.as_ref().map(|s| s.as_str()),
            "state": state.as_str(),
        }));
    }
    let show = json!({
        "event": "show",
        "song_id": position.song.as_ref().map(|s| s.as_str()),
        "page_index": position.page,
        "page_count": library.page_count(position.song.as_ref()),
    });
    if state.last_show.as_ref() != Some(&show)
        && (position.song.is_some() || state.last_show.is_some())
    {
        state.last_show = Some(show.clone());
        lines.push(show);
    }
    for ControlEvent(value) in extra.read() {
        lines.push(value.clone());
    }
    for AppError(message) in errors.read() {
        lines.push(json!({"event": "error", "message": message}));
    }

    if !state.ready {
        let waits_for_code = settings.as_ref().is_some_and(|s| {
            matches!(
                s.mode,
                SyncMode::ChoirMaster { .. } | SyncMode::SoloOffer | SyncMode::SoloAnswer(_)
            )
        });
        let have_code = codes.join_code.is_some() || codes.pair_code.is_some();
        if waits_for_code && !have_code && codes.failed.is_none() {
            state.held.extend(lines);
            return;
        }
        state.ready = true;
        out.write(&json!({
            "event": "ready",
            "device_id": settings.as_ref().map(|s| s.device_id.clone()),
            "mode": settings.as_ref().map_or("solo", |s| mode_name(&s.mode)),
            "join_code": codes.join_code,
            "pair_code": codes.pair_code,
        }));
        let held = std::mem::take(&mut state.held);
        lines.splice(0..0, held);
    }
    for line in &lines {
        out.write(line);
    }
}

/// The window extras of `--control`: keys, taps, screenshots, `presented` and `stats` events.
pub mod window {
    use std::path::PathBuf;

    use bevy::diagnostic::FrameCount;
    use bevy::prelude::*;
    use bevy::render::view::screenshot::{Screenshot, ScreenshotCaptured};
    use bevy::window::RequestRedraw;

    use super::*;
    use crate::layout::{PageSlot, PageWindow, PagesPresented, Plan};
    use crate::score::PageTextures;

    pub fn plugin(app: &mut App) {
        app.insert_resource(WindowControl)
            .init_resource::<PendingScreenshots>()
            .init_resource::<AwaitingPresent>()
            .init_resource::<SavedScreenshots>()
            .add_systems(First, report_frame_presented)
            .add_systems(PreUpdate, window_commands.after(super::run_commands))
            .add_systems(
                Last,
                (report_presented, take_screenshots, report_screenshots)
                    .before(super::write_events),
            );
    }

    #[derive(Resource, Debug, Default)]
    struct PendingScreenshots(Vec<(PathBuf, u8)>);

    fn window_commands(
        mut commands: MessageReader<WindowCommand>,
        mut keys: MessageWriter<KeyboardInput>,
        mut gestures: MessageWriter<Gesture>,
        mut pending: ResMut<PendingScreenshots>,
        mut events: MessageWriter<ControlEvent>,
        windows: Query<(Entity, &PageWindow)>,
        textures: Res<PageTextures>,
        position: Res<Position>,
        frame: Res<FrameCount>,
    ) {
        let window_of = |index: u8| windows.iter().find(|(_, w)| w.index == index).map(|(e, _)| e);
        for command in commands.read() {
            match command {
                WindowCommand::Key(key_code) => {
                    let Some(window) = window_of(0) else { continue };
                    for state in [ButtonState::Pressed, ButtonState::Released] {
                        keys.write(KeyboardInput {
                            key_code: *key_code,
                            logical_key: Key::Unidentified(NativeKey::Unidentified),
                            state,
                            text: None,
                            repeat: false,
                            window,
                        });
                    }
                }
                WindowCommand::Tap { x, y, window } => {
                    if let Some(window) = window_of(*window) {
                        let at = Vec2::new(*x, *y);
                        gestures.write(Gesture { window, start: at, end: at });
                    }
                }
                WindowCommand::Screenshot { path, window } => {
                    pending.0.push((path.clone(), *window));
                }
                WindowCommand::Stats => {
                    events.write(ControlEvent(json!({
                        "event": "stats",
                        "frames": frame.0,
                        "textures": textures.len(),
                        "page_index": position.page,
                    })));
                }
            }
        }
    }

    /// The frame of the last swap, until the frame after it starts (by then it was drawn and
    /// handed to the screen).
    #[derive(Resource, Debug, Default)]
    struct AwaitingPresent(Option<u32>);

    /// `frame_presented`: the frame with the last swap has been drawn and presented. Written at
    /// once (not in `Last`), so its time on standard output is that of the present.
    fn report_frame_presented(
        mut awaiting: ResMut<AwaitingPresent>,
        frame: Res<FrameCount>,
        out: Res<ControlOutput>,
    ) {
        if let Some(swapped) = awaiting.0
            && frame.0 != swapped
        {
            awaiting.0 = None;
            out.write(&json!({"event": "frame_presented", "frame": swapped}));
        }
    }

    fn report_presented(
        mut presented: MessageReader<PagesPresented>,
        mut events: MessageWriter<ControlEvent>,
        mut awaiting: ResMut<AwaitingPresent>,
        mut redraw: MessageWriter<RequestRedraw>,
    ) {
        for p in presented.read() {
            // One more frame, to say when this one was on screen.
            awaiting.0 = Some(p.frame);
            redraw.write(RequestRedraw);
            let pages: Vec<Value> = p
                .pages
                .iter()
                .map(|page| {
                    json!({
                        "window": page.window_index,
                        "slot": page.slot,
                        "page": page.page,
                        "x": page.rect.x,
                        "y": page.rect.y,
                        "width": page.rect.width,
                        "height": page.rect.height,
                        "exact": page.exact,
                    })
                })
                .collect();
            events.write(ControlEvent(json!({
                "event": "presented",
                "frame": p.frame,
                "pages": pages,
                "since_turn_ms": p.since_turn.map(|(t, _)| t.as_secs_f64() * 1000.0),
                "since_turn_frames": p.since_turn.map(|(_, f)| f),
            })));
        }
    }

    /// True when every slot of window `index` shows the page the plan wants, drawn for its box.
    fn settled(plan: &Plan, slots: &Query<&PageSlot>, index: u8) -> bool {
        let planned: Vec<_> = plan.slots.iter().filter(|s| s.window_index == index).collect();
        !planned.is_empty()
            && planned.iter().all(|p| {
                slots.iter().any(|s| {
                    s.window == p.window
                        && s.slot == p.slot
                        && match (&s.shown, p.page) {
                            (Some(shown), Some(page)) => {
                                shown.page == page && Some(shown.drawn_for) == p.target()
                            }
                            (None, None) => true,
                            _ => false,
                        }
                })
            })
    }

    fn take_screenshots(
        mut commands: Commands,
        mut pending: ResMut<PendingScreenshots>,
        plan: Res<Plan>,
        slots: Query<&PageSlot>,
        windows: Query<(Entity, &PageWindow)>,
        capturing: Query<(), With<Screenshot>>,
        mut redraw: MessageWriter<RequestRedraw>,
    ) {
        let mut waiting = Vec::new();
        let mut spawned = false;
        for (path, index) in pending.0.drain(..) {
            let window = windows.iter().find(|(_, w)| w.index == index).map(|(e, _)| e);
            match window {
                Some(window) if settled(&plan, &slots, index) => {
                    commands.spawn(Screenshot::window(window)).observe(save_screenshot(path));
                    spawned = true;
                }
                _ => waiting.push((path, index)),
            }
        }
        pending.0 = waiting;
        // A reactive app sleeps when nothing changes: keep frames coming until the capture is in.
        if spawned || !pending.0.is_empty() || !capturing.is_empty() {
            redraw.write(RequestRedraw);
        }
    }

    /// Screenshots saved (or not) by their threads: the `screenshot` event, or the error.
    #[derive(Resource, Debug)]
    struct SavedScreenshots {
        tx: Sender<Result<Value, String>>,
        rx: Receiver<Result<Value, String>>,
    }

    impl Default for SavedScreenshots {
        fn default() -> Self {
            let (tx, rx) = crossbeam_channel::unbounded();
            SavedScreenshots { tx, rx }
        }
    }

    /// The capture arrives on the main thread; encoding and writing the PNG happen on a thread
    /// of their own, and the `screenshot` event comes when the file is there.
    fn save_screenshot(
        path: PathBuf,
    ) -> impl FnMut(On<ScreenshotCaptured>, Res<SavedScreenshots>, Res<Waker>) {
        move |captured, saved, waker| {
            let image = captured.image.clone();
            let (path, tx, waker) = (path.clone(), saved.tx.clone(), waker.clone());
            let save = move || {
                let result = image.try_into_dynamic().map_err(|e| e.to_string()).and_then(|img| {
                    let rgba = img.to_rgba8();
                    rgba.save(&path).map_err(|e| e.to_string()).map(|()| rgba.dimensions())
                });
                let _ = tx.send(match result {
                    Ok((width, height)) => Ok(json!({
                        "event": "screenshot",
                        "path": path.display().to_string(),
                        "width": width,
                        "height": height,
                    })),
                    Err(error) => {
                        Err(format!("could not save the screenshot {}: {error}", path.display()))
                    }
                });
                waker.wake();
            };
            if let Err(error) =
                std::thread::Builder::new().name("maestral-screenshot".into()).spawn(save)
            {
                let _ = saved.tx.send(Err(format!("could not save the screenshot: {error}")));
            }
        }
    }

    fn report_screenshots(
        saved: Res<SavedScreenshots>,
        mut events: MessageWriter<ControlEvent>,
        mut errors: MessageWriter<AppError>,
    ) {
        for result in saved.rx.try_iter() {
            match result {
                Ok(event) => {
                    events.write(ControlEvent(event));
                }
                Err(message) => {
                    errors.write(AppError(message));
                }
            }
        }
    }
}
