//! Set lists: the programs of a concert, built from the library (docs/guide.md §2, "Set
//! lists"). Several can be kept; one is *in use*. While it is, turning past the last page of one
//! of its pieces shows the first page of the next piece, turning back from a first page shows
//! the last page of the piece before, and "next piece" / "previous piece" (a pedal's second pair
//! of keys, `piece next|prev`) jump by a whole piece. A song change is a song change for the
//! role: a Master's moves its choir on, a paired Solo device's its partner.
//!
//! The lists are plain data ([`SetLists`], edited only through [`SetListEdit`], so the panel
//! and the headless commands share one set of rules and their words); `store` keeps
//! them in `setlists.json`.

use bevy::prelude::*;
use maestral_protocol::SongId;

use crate::model::AppError;

mod store;

pub use store::{SetListStore, read};

/// Set lists: read from the state directory (if there is one), edited by [`SetListEdit`],
/// kept on every change; the marked piece follows the song shown. Navigation crosses from
/// piece to piece (`crate::navigation`).
pub fn plugin(app: &mut App) {
    store::install(app);
    app.init_resource::<SetLists>()
        .init_resource::<Reached>()
        .add_message::<SetListEdit>()
        .add_message::<PieceRequested>()
        .add_systems(
            Update,
            (
                apply_edits
                    .after(crate::model::NavigationSystems::Input)
                    .before(crate::model::NavigationSystems::Apply),
                track_current.after(crate::model::NavigationSystems::Apply),
            ),
        )
        .add_systems(Last, store::keep.run_if(resource_exists::<SetListStore>));
}

/// The longest name a set list may have, in characters.
pub const MAX_NAME: usize = 80;
/// The most pieces one set list holds.
pub const MAX_PIECES: usize = 500;
/// The most set lists kept.
pub const MAX_LISTS: usize = 200;

/// One program: a name and its pieces in order (a piece may come twice).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SetList {
    pub name: String,
    pub songs: Vec<SongId>,
}

/// Every set list, the one in use, and where in it the performer is.
#[derive(Resource, Debug, Clone, Default, PartialEq, Eq)]
pub struct SetLists {
    pub lists: Vec<SetList>,
    /// The index of the list in use.
    pub active: Option<usize>,
    /// The piece of the list in use shown now (its index: a piece listed twice is told apart
    /// by how it was reached); `None` while the song shown is not in it.
    pub current: Option<usize>,
}

/// One change to the set lists, from the panel or a command.
#[derive(Message, Debug, Clone, PartialEq, Eq)]
pub enum SetListEdit {
    /// A new, empty list, put in use.
    New(String),
    /// Put the list with this name in use and show its first piece (unless the song shown is
    /// one of its pieces already).
    Use(String),
    /// Rename the list in use.
    Rename(String),
    /// Delete the list in use.
    Delete,
    /// No list in use: turning stops at a piece's last page again.
    Off,
    /// Append a piece to the list in use.
    Add(SongId),
    /// Remove the piece at this index of the list in use.
    Remove(usize),
    /// Move the piece at `from` to `to` in the list in use.
    Move { from: usize, to: usize },
}

/// Next or previous piece of the set list in use, or the piece at a place in it (a tap on
/// it in the panel: a piece listed twice is told apart by its place).
#[derive(Message, Debug, Clone, Copy, PartialEq, Eq)]
pub enum PieceRequested {
    Next,
    Prev,
    At(usize),
}

/// Said when there is no song shown to add to a set list.
pub const NOTHING_SHOWN: &str =
    "no score is shown: show the score to add (or give `setlist add` a song id)";

impl SetLists {
    /// The list in use.
    pub fn in_use(&self) -> Option<&SetList> {
        self.active.and_then(|i| self.lists.get(i))
    }

    /// Applies one edit. An edit that cannot apply changes nothing and says why, in words.
    /// Returns the song to show, for [`SetListEdit::Use`].
    pub fn apply(
        &mut self,
        edit: &SetListEdit,
        shown: Option<&SongId>,
    ) -> Result<Option<SongId>, String> {
        match edit {
            SetListEdit::New(name) => {
                let name = valid_name(name)?;
                if self.find(&name).is_some() {
                    return Err(format!("a set list named {name:?} exists already"));
                }
                if self.lists.len() >= MAX_LISTS {
                    return Err(format!(
                        "at most {MAX_LISTS} set lists are kept; delete one first"
                    ));
                }
                self.lists.push(SetList { name, songs: Vec::new() });
                self.active = Some(self.lists.len() - 1);
                self.current = None;
                Ok(None)
            }
            SetListEdit::Use(name) => {
                let Some(i) = self.find(name.trim()) else {
                    return Err(format!(
                        "no set list is named {:?}{}",
                        name.trim(),
                        self.names_hint()
                    ));
                };
                self.active = Some(i);
                let list = &self.lists[i];
                self.current = shown.and_then(|s| list.songs.iter().position(|x| x == s));
                if self.current.is_some() {
                    return Ok(None);
                }
                let first = list.songs.first().cloned();
                self.current = first.as_ref().map(|_| 0);
                Ok(first)
            }
            SetListEdit::Rename(name) => {
                let i = self.active_index()?;
                let name = valid_name(name)?;
                if self.find(&name).is_some_and(|j| j != i) {
                    return Err(format!("a set list named {name:?} exists already"));
                }
                self.lists[i].name = name;
                Ok(None)
            }
            SetListEdit::Delete => {
                let i = self.active_index()?;
                self.lists.remove(i);
                self.active = None;
                self.current = None;
                Ok(None)
            }
            SetListEdit::Off => {
                self.active = None;
                self.current = None;
                Ok(None)
            }
            SetListEdit::Add(song) => {
                let i = self.active_index()?;
                let songs = &mut self.lists[i].songs;
                if songs.len() >= MAX_PIECES {
                    return Err(format!("a set list holds at most {MAX_PIECES} pieces"));
                }
                songs.push(song.clone());
                if self.current.is_none() && shown == Some(song) {
                    self.current = Some(songs.len() - 1);
                }
                Ok(None)
            }
            SetListEdit::Remove(at) => {
                let i = self.active_index()?;
                let songs = &mut self.lists[i].songs;
                if *at >= songs.len() {
                    return Err(piece_range(*at, songs.len()));
                }
                songs.remove(*at);
                self.current = match self.current {
                    Some(c) if c == *at => None,
                    Some(c) if c > *at => Some(c - 1),
                    other => other,
                };
                Ok(None)
            }
            SetListEdit::Move { from, to } => {
                let i = self.active_index()?;
                let songs = &mut self.lists[i].songs;
                let len = songs.len();
                if *from >= len || *to >= len {
                    return Err(piece_range((*from).max(*to), len));
                }
                let song = songs.remove(*from);
                songs.insert(*to, song);
                // The marked piece moves with its entry.
                self.current = self.current.map(|c| {
                    if c == *from {
                        *to
                    } else if *from < c && c <= *to {
                        c - 1
                    } else if *to <= c && c < *from {
                        c + 1
                    } else {
                        c
                    }
                });
                Ok(None)
            }
        }
    }

    /// The piece after (or before) `current` (the piece shown), in the list in use: its index
    /// and song. With none shown, "next" is the list's first piece.
    pub fn neighbour(
        &self,
        current: Option<usize>,
        step: PieceRequested,
    ) -> Option<(usize, SongId)> {
        let list = self.in_use()?;
        let at = match (current, step) {
            (_, PieceRequested::At(at)) => at,
            (Some(c), PieceRequested::Next) => c.checked_add(1)?,
            (Some(c), PieceRequested::Prev) => c.checked_sub(1)?,
            (None, PieceRequested::Next) => 0,
            (None, PieceRequested::Prev) => return None,
        };
        list.songs.get(at).map(|s| (at, s.clone()))
    }

    /// The song shown changed: the marked piece follows it. A piece reached through the list
    /// (`reached`) is marked by its index; another song shown is found by its first place.
    pub fn follow(&mut self, shown: Option<&SongId>, reached: Option<usize>) {
        self.current = self.marked(shown, reached);
    }

    /// The piece [`SetLists::follow`] marks for `shown`, without changing anything.
    pub fn marked(&self, shown: Option<&SongId>, reached: Option<usize>) -> Option<usize> {
        let list = self.in_use()?;
        let on = |i: usize| list.songs.get(i).is_some_and(|s| Some(s) == shown);
        match (reached, self.current) {
            (Some(r), _) if on(r) => Some(r),
            (_, Some(c)) if on(c) => Some(c),
            _ => shown.and_then(|s| list.songs.iter().position(|x| x == s)),
        }
    }

    fn find(&self, name: &str) -> Option<usize> {
        self.lists.iter().position(|l| l.name == name)
    }

    fn active_index(&self) -> Result<usize, String> {
        self.active.filter(|&i| i < self.lists.len()).ok_or_else(|| {
            format!(
                "no set list is in use: make one with `setlist new NAME` or choose one{}",
                self.names_hint()
            )
        })
    }

    fn names_hint(&self) -> String {
        if self.lists.is_empty() {
            String::new()
        } else {
            let names: Vec<String> = self.lists.iter().map(|l| format!("{:?}", l.name)).collect();
            format!(" (the set lists: {})", names.join(", "))
        }
    }
}

/// The `setlist` event line of docs/headless.md: the list in use with its pieces (titles from
/// the library, `null` for a piece this device does not hold), the marked piece, every name.
pub fn event_line(sets: &SetLists, library: &crate::model::SongLibrary) -> serde_json::Value {
    let pieces: Vec<serde_json::Value> = sets
        .in_use()
        .map(|l| l.songs.as_slice())
        .unwrap_or_default()
        .iter()
        .map(|s| serde_json::json!({"song_id": s.as_str(), "title": library.get(s).map(|x| &x.title)}))
        .collect();
    serde_json::json!({
        "event": "setlist",
        "in_use": sets.in_use().map(|l| &l.name),
        "pieces": pieces,
        "current": sets.current,
        "lists": sets.lists.iter().map(|l| &l.name).collect::<Vec<_>>(),
    })
}

/// A name as kept: trimmed, 1 to [`MAX_NAME`] characters, no control characters.
pub fn valid_name(name: &str) -> Result<String, String> {
    let name = name.trim();
    if name.is_empty() {
        return Err("a set list needs a name".into());
    }
    if name.chars().count() > MAX_NAME {
        return Err(format!("a set list's name has at most {MAX_NAME} characters"));
    }
    if name.chars().any(char::is_control) {
        return Err("a set list's name cannot hold control characters".into());
    }
    Ok(name.to_owned())
}

fn piece_range(at: usize, len: usize) -> String {
    match len {
        0 => format!("the set list has no piece {at}: it is empty"),
        _ => format!("the set list has no piece {at}: its pieces are 0 to {}", len - 1),
    }
}

/// Where the last piece reached through the set list is, until the shown song catches up (a
/// song change is applied by navigation in the same frame, or by the partner later).
#[derive(Resource, Debug, Default)]
pub(crate) struct Reached(pub Option<usize>);

fn apply_edits(
    mut edits: MessageReader<SetListEdit>,
    mut lists: ResMut<SetLists>,
    position: Res<crate::model::Position>,
    mut songs: MessageWriter<crate::model::SongChangeRequested>,
    mut errors: MessageWriter<AppError>,
) {
    for edit in edits.read() {
        match lists.apply(edit, position.song.as_ref()) {
            Ok(Some(first)) => {
                songs.write(crate::model::SongChangeRequested(Some(first)));
            }
            Ok(None) => {}
            Err(message) => {
                errors.write(AppError(message));
            }
        }
    }
}

/// The marked piece follows the song shown.
fn track_current(
    position: Res<crate::model::Position>,
    mut lists: ResMut<SetLists>,
    reached: Option<ResMut<Reached>>,
) {
    if !position.is_changed() && !lists.is_changed() {
        return;
    }
    let reached = reached.and_then(|mut r| r.0.take());
    let marked = lists.marked(position.song.as_ref(), reached);
    // Only a real change marks the resource changed (its writer and event line watch it).
    if lists.current != marked {
        lists.current = marked;
    }
}

#[cfg(test)]
mod tests;
