//! Running: one command a frame becomes the app's messages (turns, song changes, opens) or a
//! command to the sync thread.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};

use bevy::ecs::system::SystemParam;
use bevy::prelude::*;
use maestral_net::SyncCommand;
use maestral_protocol::{FollowMode, SongId};
use maestral_sync::{LocalAction, Role};

use super::parse::{
    COMMANDS, ControlCommand, ControlEvent, SetListCommand, WindowCommand, parse_command,
};
use super::read::{ControlInput, ControlLine};
use crate::model::{
    AppError, OpenScore, PageTurnRequested, Position, SongChangeRequested, SongLibrary, SwitchRole,
    Turn,
};
use crate::score::PendingOpens;
use crate::setlist::{PieceRequested, SetListEdit, SetLists};
use crate::sync::SyncBridge;
use crate::wake::Waker;

/// Whether the window extras are on (`--control` with a window).
#[derive(Resource, Debug, Default)]
pub struct WindowControl;

#[derive(SystemParam)]
pub(super) struct Actions<'w> {
    turns: MessageWriter<'w, PageTurnRequested>,
    songs: MessageWriter<'w, SongChangeRequested>,
    opens: MessageWriter<'w, OpenScore>,
    errors: MessageWriter<'w, AppError>,
    window: MessageWriter<'w, WindowCommand>,
    switches: MessageWriter<'w, SwitchRole>,
    exit: MessageWriter<'w, AppExit>,
    set_lists: MessageWriter<'w, SetListEdit>,
    pieces: MessageWriter<'w, PieceRequested>,
    said: MessageWriter<'w, ControlEvent>,
}

/// Lines read but not yet carried out: one command a frame, so each sees the state the one
/// before it left (a `song` then a `page` in one read must not race).
#[derive(Resource, Debug, Default)]
pub struct PendingLines(VecDeque<ControlLine>);

pub(super) fn run_commands(
    input: Res<ControlInput>,
    mut pending: ResMut<PendingLines>,
    mut actions: Actions,
    position: Res<Position>,
    library: Res<SongLibrary>,
    bridge: Option<Res<SyncBridge>>,
    window_control: Option<Res<WindowControl>>,
    opens: Option<Res<PendingOpens>>,
    sets: Option<Res<SetLists>>,
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
            ControlCommand::Unpair => sync(LocalAction::Unpair, &mut actions.errors),
            ControlCommand::Switch(mode) => {
                actions.switches.write(SwitchRole(mode));
                // The switch is carried out at the start of a frame: ask for one.
                waker.wake();
            }
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
            ControlCommand::Piece(step) => {
                actions.pieces.write(step);
            }
            ControlCommand::SetList(None) => {
                let sets = sets.as_deref().cloned().unwrap_or_default();
                actions.said.write(ControlEvent(crate::setlist::event_line(&sets, &library)));
            }
            ControlCommand::SetList(Some(command)) => {
                match set_list_edit(command, position.song.as_ref(), &library) {
                    Ok(edit) => {
                        actions.set_lists.write(edit);
                    }
                    Err(message) => {
                        actions.errors.write(AppError(message));
                    }
                }
            }
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

/// A `setlist` command as an edit: its song (an id, or the song shown) looked up.
fn set_list_edit(
    command: SetListCommand,
    shown: Option<&SongId>,
    library: &SongLibrary,
) -> Result<SetListEdit, String> {
    Ok(match command {
        SetListCommand::New(name) => SetListEdit::New(name),
        SetListCommand::Use(name) => SetListEdit::Use(name),
        SetListCommand::Rename(name) => SetListEdit::Rename(name),
        SetListCommand::Delete => SetListEdit::Delete,
        SetListCommand::Off => SetListEdit::Off,
        SetListCommand::Remove(at) => SetListEdit::Remove(at),
        SetListCommand::Move(from, to) => SetListEdit::Move { from, to },
        SetListCommand::Add(None) => match shown {
            Some(song) => SetListEdit::Add(song.clone()),
            None => {
                return Err(crate::setlist::NOTHING_SHOWN.into());
            }
        },
        SetListCommand::Add(Some(what)) => match song_target(&what, library)? {
            SongTarget::Known(id) => SetListEdit::Add(id),
            SongTarget::File(_) => {
                return Err("`setlist add` takes a song id; open the file with `song PATH` first, then `setlist add`".into());
            }
        },
    })
}

enum SongTarget {
    Known(SongId),
    File(PathBuf),
}

/// A `song` argument: a song id (64 hex digits) or a score file's path.
fn song_target(what: &str, library: &SongLibrary) -> Result<SongTarget, String> {
    if what.len() == 64 && what.bytes().all(|b| b.is_ascii_hexdigit()) {
        let id = SongId::new(what.to_ascii_lowercase());
        if library.get(&id).is_none() {
            // Other devices may have it; this one shows its page count as unknown.
            warn!("song {what} is not in this device's library");
        }
        return Ok(SongTarget::Known(id));
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
