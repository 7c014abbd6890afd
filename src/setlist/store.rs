//! `setlists.json` in the state directory: the set lists and the one in use, written on every
//! change by a thread of its own (atomically, the newest record only), read once at start. A
//! file that does not hold valid set lists is set aside with one message and the app starts
//! with none; nothing else is lost.
//!
//! ```text
//! {"in_use": "Sunday concert", "lists": [{"name": "Sunday concert", "songs": ["<64 hex>", …]}]}
//! ```

use std::path::Path;

use bevy::prelude::*;
use maestral_net::state::{self, files};
use maestral_protocol::SongId;

use super::{MAX_LISTS, MAX_PIECES, SetList, SetLists, valid_name};
use crate::model::{AppError, SyncSettings};
use crate::persistence::KeptFile;

/// Where the set lists are kept.
#[derive(Resource, Debug)]
pub struct SetListStore(KeptFile);

#[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct File {
    in_use: Option<String>,
    lists: Vec<SetList>,
}

/// Reads the set lists of the state directory (none without one) into [`SetLists`].
pub(super) fn install(app: &mut App) {
    let dir = app.world().get_resource::<SyncSettings>().and_then(|s| s.state_dir.clone());
    let Some(dir) = dir else { return };
    let path = dir.join(files::SET_LISTS);
    let (lists, problem) = match read(&path) {
        Ok(lists) => (lists, None),
        Err(message) => (SetLists::default(), Some(message)),
    };
    let lost = "set list changes will be lost when the app closes";
    let store = SetListStore(KeptFile::new(path, text(&lists), lost));
    app.insert_resource(lists).insert_resource(store);
    if let Some(message) = problem {
        warn!("{message}");
        app.add_systems(Startup, move |mut errors: MessageWriter<AppError>| {
            errors.write(AppError(message.clone()));
        });
    }
}

/// The set lists in `path`; none if there is no file. A file that is not valid set lists is
/// set aside, and the message says where it went.
pub fn read(path: &Path) -> Result<SetLists, String> {
    let starting = "the app starts with no set list";
    let file = match state::read_json::<File>(path) {
        Ok(None) => return Ok(SetLists::default()),
        Ok(Some(file)) => file,
        Err(e) => return Err(format!("{e}; {starting}")),
    };
    match validate(file) {
        Ok(lists) => Ok(lists),
        Err(reason) => Err(format!("{}; {starting}", state::broken(path, reason))),
    }
}

fn validate(file: File) -> Result<SetLists, String> {
    if file.lists.len() > MAX_LISTS {
        return Err(format!("more than {MAX_LISTS} set lists"));
    }
    let mut names = std::collections::BTreeSet::new();
    for list in &file.lists {
        if valid_name(&list.name).as_deref() != Ok(list.name.as_str()) {
            return Err(format!("the set list name {:?} is not one the app makes", list.name));
        }
        if !names.insert(list.name.as_str()) {
            return Err(format!("two set lists are named {:?}", list.name));
        }
        if list.songs.len() > MAX_PIECES {
            return Err(format!("{:?} has more than {MAX_PIECES} pieces", list.name));
        }
        if let Some(bad) = list.songs.iter().find(|s| !is_song_id(s)) {
            return Err(format!(
                "{:?} lists {:?}, which is not a song id",
                list.name,
                bad.as_str()
            ));
        }
    }
    let active = match &file.in_use {
        None => None,
        Some(name) => Some(
            file.lists
                .iter()
                .position(|l| &l.name == name)
                .ok_or_else(|| format!("the set list in use, {name:?}, is not among them"))?,
        ),
    };
    Ok(SetLists { lists: file.lists, active, current: None })
}

/// A song id as the library makes it: 64 lowercase hex digits (a SHA-256).
fn is_song_id(id: &SongId) -> bool {
    let s = id.as_str();
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The file's text for `lists`.
pub(super) fn text(lists: &SetLists) -> String {
    let file = File { in_use: lists.in_use().map(|l| l.name.clone()), lists: lists.lists.clone() };
    serde_json::to_string_pretty(&file).unwrap_or_default()
}

/// After every change: the set lists go to the writer (the marked piece is not kept: it
/// follows the song shown).
pub(super) fn keep(
    lists: Res<SetLists>,
    mut store: ResMut<SetListStore>,
    mut errors: MessageWriter<AppError>,
) {
    if lists.is_changed() {
        store.0.keep(text(&lists));
    }
    store.0.report_failures(&mut errors);
}
