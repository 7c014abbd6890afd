//! Writing: event lines on standard output (by a thread of its own), each change said once,
//! `ready` first.

use std::io::Write;
use std::sync::Arc;

use bevy::prelude::*;
use crossbeam_channel::Sender;
use maestral_sync::Role;
use serde_json::{Value, json};

use super::parse::ControlEvent;
use crate::model::{
    AppError, HalfTurn, LinkChanged, PhaseChanged, Position, RosterChanged, RosterState,
    SessionCodes, SongLibrary, StreamChanged, SyncMode, SyncSettings,
};
use crate::setlist::SetLists;

/// Where event lines go: standard output (written by a thread of its own, so a slow reader
/// never holds up a frame), or (`test-support`) a buffer a test reads.
#[derive(Resource, Clone)]
pub struct ControlOutput(Sink);

#[derive(Clone)]
enum Sink {
    Writer(Arc<LineWriter>),
    #[cfg(feature = "test-support")]
    Memory(Arc<std::sync::Mutex<Vec<u8>>>),
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
#[cfg(feature = "test-support")]
#[derive(Debug, Clone, Default)]
pub struct OutputBuffer(Arc<std::sync::Mutex<Vec<u8>>>);

#[cfg(feature = "test-support")]
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
    #[cfg(feature = "test-support")]
    pub fn buffer() -> (Self, OutputBuffer) {
        let shared = Arc::new(std::sync::Mutex::new(Vec::new()));
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
            #[cfg(feature = "test-support")]
            Sink::Memory(buffer) => {
                if let Ok(mut buffer) = buffer.lock() {
                    let _ = writeln!(buffer, "{event}");
                }
            }
        }
    }
}

/// What has been said on standard output, so each change is said once.
#[derive(Resource, Debug, Default)]
pub struct ControlState {
    ready: bool,
    /// Lines produced before `ready` (which comes first).
    held: Vec<Value>,
    last_show: Option<Value>,
    /// The join code last said (in `ready`, or in a `join_code` line since).
    last_code: Option<String>,
    /// The `setlist` line last said.
    last_setlist: Option<Value>,
    /// The half-page turn last said (the next page whose top half is shown).
    last_half: Option<u32>,
}

fn mode_name(mode: &SyncMode) -> &'static str {
    match mode.role() {
        Role::Solo => "solo",
        Role::Master => "choir_master",
        Role::Follower => "choir_follower",
    }
}

#[derive(bevy::ecs::system::SystemParam)]
pub(super) struct Roster<'w, 's> {
    state: Res<'w, RosterState>,
    changed: MessageReader<'w, 's, RosterChanged>,
}

/// The `roster` event of docs/headless.md (each member in the engine's headless shape).
fn roster_line(roster: &RosterState) -> Value {
    json!({"event": "roster", "members": roster.0.members})
}

pub(super) fn write_events(
    out: Res<ControlOutput>,
    mut state: ResMut<ControlState>,
    position: Res<Position>,
    library: Res<SongLibrary>,
    codes: Res<SessionCodes>,
    settings: Option<Res<SyncSettings>>,
    mut phases: MessageReader<PhaseChanged>,
    mut links: MessageReader<LinkChanged>,
    mut streams: MessageReader<StreamChanged>,
    mut roster: Roster,
    mut errors: MessageReader<AppError>,
    mut extra: MessageReader<ControlEvent>,
    sets: Option<Res<SetLists>>,
    half: Res<HalfTurn>,
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
    if roster.changed.read().count() > 0 {
        lines.push(roster_line(&roster.state));
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
    // The set lists, on every change (and at start where there are some), and when the library
    // learns a piece's title.
    if let Some(sets) = sets.filter(|s| s.is_changed() || library.is_changed()) {
        let line = crate::setlist::event_line(&sets, &library);
        let said = state.last_setlist.as_ref();
        if said != Some(&line) && (said.is_some() || !sets.lists.is_empty()) {
            state.last_setlist = Some(line.clone());
            lines.push(line);
        }
    }
    // A half-page turn begun (the next page's top half over this page's bottom half) or ended
    // (taken back, ended by another move, or completed: then a `show` comes with it).
    let halfway = half.next(&position);
    if halfway != state.last_half {
        state.last_half = halfway;
        lines.push(json!({"event": "half", "page_index": position.page, "next": halfway}));
    }
    for ControlEvent(value) in extra.read() {
        lines.push(value.clone());
    }
    for AppError(message) in errors.read() {
        lines.push(json!({"event": "error", "message": message}));
    }

    // A role switch (`start`, `join`, `alone`, or the panel): the new role says `ready` again,
    // with its code.
    if settings.as_ref().is_some_and(|s| s.is_changed() && !s.is_added()) && state.ready {
        state.ready = false;
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
        state.last_code = codes.join_code.clone();
        let held = std::mem::take(&mut state.held);
        lines.splice(0..0, held);
    }
    // A Master whose address changed has a new join code: said once, as it comes.
    if state.ready && codes.join_code != state.last_code {
        state.last_code = codes.join_code.clone();
        if let Some(code) = &codes.join_code {
            lines.push(json!({"event": "join_code", "join_code": code}));
        }
    }
    for line in &lines {
        out.write(line);
    }
}
