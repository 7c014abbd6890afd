//! Parsing: one line into one [`ControlCommand`] (`docs/headless.md`).

use std::path::PathBuf;

use bevy::prelude::*;
use serde_json::Value;

use crate::model::SyncMode;
use crate::setlist::PieceRequested;

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
    /// Solo: forget the paired device.
    Unpair,
    Quit,
    /// Another role, the old one ended first: `start` (a Choir session), `join CODE`, `alone`.
    Switch(SyncMode),
    /// Solo: the other device's answer code (a line starting `M1A:`).
    Answer(String),
    /// Set lists: an edit, or `setlist` alone (say the set lists).
    SetList(Option<SetListCommand>),
    /// `piece next|prev`: the set list's next or previous piece.
    Piece(PieceRequested),
    /// Window only.
    Window(WindowCommand),
}

/// `setlist …` (docs/headless.md): an edit of the set lists, its song still as typed.
#[derive(Debug, Clone, PartialEq)]
pub enum SetListCommand {
    New(String),
    Use(String),
    Rename(String),
    Delete,
    Off,
    /// A song id, or `None`: the song shown.
    Add(Option<String>),
    Remove(usize),
    Move(usize, usize),
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
    /// Where the UI's button with this label is (in logical pixels), to click it for real.
    Widget(String),
}

/// An extra event line from the window side (`presented`, `screenshot`, `stats`).
#[derive(Message, Debug, Clone, PartialEq)]
pub struct ControlEvent(pub Value);

/// The headless commands, for messages that list them.
pub(super) const COMMANDS: &str = "next, prev, page N, song SONG_ID|PATH, piece next|prev, setlist [new NAME|use NAME|rename NAME|delete|off|add [SONG_ID]|remove N|move FROM TO], follow, free, end, leave, unpair, start, join CODE, alone, quit";

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
        "unpair" => no_argument(ControlCommand::Unpair),
        "quit" => no_argument(ControlCommand::Quit),
        "start" => no_argument(ControlCommand::Switch(SyncMode::ChoirMaster { listen: None })),
        "alone" => no_argument(ControlCommand::Switch(SyncMode::Solo)),
        "join" if !rest.is_empty() => Ok(ControlCommand::Switch(SyncMode::Join(rest.to_owned()))),
        "join" => Err("`join` takes the join code the Master shows (http://…/#1.… or maestral://join?…)".into()),
        "page" => rest
            .parse()
            .map(ControlCommand::Page)
            .map_err(|_| format!("`page` takes a page index counted from 0, not {rest:?}")),
        "song" if !rest.is_empty() => Ok(ControlCommand::Song(rest.to_owned())),
        "song" => Err("`song` takes a song id (64 hex digits) or the path of a score".into()),
        "piece" => match rest {
            "next" => Ok(ControlCommand::Piece(PieceRequested::Next)),
            "prev" => Ok(ControlCommand::Piece(PieceRequested::Prev)),
            _ => Err("`piece` takes `next` or `prev`".into()),
        },
        "setlist" => parse_setlist(rest).map(ControlCommand::SetList),
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
        "widget" if !rest.is_empty() => {
            Ok(ControlCommand::Window(WindowCommand::Widget(rest.to_owned())))
        }
        "widget" => Err("`widget` takes a button's label".into()),
        _ if line.starts_with("M1A:") => Ok(ControlCommand::Answer(line.to_owned())),
        _ => Err(format!("unknown command {line:?}; the commands are: {COMMANDS}")),
    }
}

/// The words after `setlist`.
fn parse_setlist(rest: &str) -> Result<Option<SetListCommand>, String> {
    let (verb, arg) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
    let arg = arg.trim();
    let index = |s: &str| {
        s.parse::<usize>()
            .map_err(|_| format!("a piece is given by its place counted from 0, not {s:?}"))
    };
    let named = |make: fn(String) -> SetListCommand| {
        if arg.is_empty() {
            Err(format!("`setlist {verb}` takes a name"))
        } else {
            Ok(Some(make(arg.to_owned())))
        }
    };
    let bare = |cmd: SetListCommand| {
        if arg.is_empty() {
            Ok(Some(cmd))
        } else {
            Err(format!("`setlist {verb}` takes no argument"))
        }
    };
    match verb {
        "" => Ok(None),
        "new" => named(SetListCommand::New),
        "use" => named(SetListCommand::Use),
        "rename" => named(SetListCommand::Rename),
        "delete" => bare(SetListCommand::Delete),
        "off" => bare(SetListCommand::Off),
        "add" => Ok(Some(SetListCommand::Add((!arg.is_empty()).then(|| arg.to_owned())))),
        "remove" => index(arg).map(|i| Some(SetListCommand::Remove(i))),
        "move" => match arg.split_whitespace().collect::<Vec<_>>().as_slice() {
            [from, to] => Ok(Some(SetListCommand::Move(index(from)?, index(to)?))),
            _ => Err("`setlist move` takes FROM TO, places counted from 0".into()),
        },
        other => Err(format!(
            "unknown set list command {other:?}: new NAME, use NAME, rename NAME, delete, off, add [SONG_ID], remove N, move FROM TO"
        )),
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
        "bracketright" | "]" => KeyCode::BracketRight,
        "bracketleft" | "[" => KeyCode::BracketLeft,
        "mediatracknext" => KeyCode::MediaTrackNext,
        "mediatrackprevious" => KeyCode::MediaTrackPrevious,
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
