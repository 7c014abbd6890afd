//! The state directory: this device's id (kept across runs so peers and stored join codes
//! recognise it), where each song was left, and, through `maestral-net`, the Choir Master's
//! session.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use bevy::prelude::*;

use crate::navigation::Position;
use crate::score::SongLibrary;
use crate::sync::SyncSettings;

const DEVICE_ID_FILE: &str = "device-id";

/// `$XDG_STATE_HOME/maestral`, else `~/.local/state/maestral`, else `.maestral` here.
pub fn default_state_dir() -> PathBuf {
    let env_dir = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(dir) = env_dir("XDG_STATE_HOME") {
        return dir.join("maestral");
    }
    if let Some(home) = env_dir("HOME").or_else(|| env_dir("USERPROFILE")) {
        return home.join(".local").join("state").join("maestral");
    }
    PathBuf::from(".maestral")
}

/// The device id stored in `state_dir`; a new one is made and stored if there is none. If the
/// folder cannot be written, the id is used for this run only (with one warning).
pub fn stored_device_id(state_dir: &Path) -> String {
    let path = state_dir.join(DEVICE_ID_FILE);
    if let Ok(text) = std::fs::read_to_string(&path) {
        let id = text.trim();
        if valid_device_id(id) {
            return id.to_owned();
        }
        warn!("{} does not hold a usable device id; making a new one", path.display());
    }
    let id = format!("maestral-{:016x}", rand::random::<u64>());
    let write = || -> std::io::Result<()> {
        std::fs::create_dir_all(state_dir)?;
        let aside = path.with_extension("new");
        std::fs::write(&aside, format!("{id}\n"))?;
        std::fs::rename(&aside, &path)
    };
    if let Err(error) = write() {
        warn!(
            "could not store the device id in {} ({error}); peers will see a new id next time — pass --state-dir DIR or --device-id ID",
            path.display()
        );
    }
    id
}

fn valid_device_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
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

/// The last song and page per song, kept in `positions.json` in the state directory, so the
/// app (Solo) opens where the performer left off.
pub fn plugin(app: &mut App) {
    app.add_systems(Startup, load_positions)
        .add_systems(Last, save_positions.run_if(resource_exists::<SavedPositions>));
}

const POSITIONS_FILE: &str = "positions.json";

/// Where each song was left, and the song shown last.
#[derive(Resource, Debug, Clone, Default, PartialEq, Eq)]
pub struct SavedPositions {
    path: PathBuf,
    pub last_song: Option<String>,
    pub pages: BTreeMap<String, u32>,
    /// Written to disk up to here.
    saved: Option<(Option<String>, BTreeMap<String, u32>)>,
    /// The start position was offered already (only the first score shown resumes).
    resumed: bool,
}

impl SavedPositions {
    /// Reads `positions.json` in `state_dir`; a missing or unreadable file is an empty record.
    pub fn load(state_dir: &Path) -> Self {
        let path = state_dir.join(POSITIONS_FILE);
        let mut positions = SavedPositions { path, ..default() };
        let Ok(text) = std::fs::read_to_string(&positions.path) else { return positions };
        match serde_json::from_str::<serde_json::Value>(&text) {
            Ok(value) => {
                positions.last_song = value["last_song"].as_str().map(str::to_owned);
                if let Some(pages) = value["pages"].as_object() {
                    for (song, page) in pages {
                        if let Some(page) = page.as_u64().and_then(|p| u32::try_from(p).ok()) {
                            positions.pages.insert(song.clone(), page);
                        }
                    }
                }
                positions.saved = Some((positions.last_song.clone(), positions.pages.clone()));
            }
            Err(error) => warn!(
                "{} is unreadable ({error}); starting from the first page",
                positions.path.display()
            ),
        }
        positions
    }

    /// Where to start, once: the song shown last and its page.
    pub fn take_resume(&mut self) -> Option<(String, u32)> {
        if std::mem::replace(&mut self.resumed, true) {
            return None;
        }
        let song = self.last_song.clone()?;
        let page = self.pages.get(&song).copied().unwrap_or(0);
        Some((song, page))
    }
}

fn load_positions(mut commands: Commands, settings: Option<Res<SyncSettings>>) {
    if let Some(dir) = settings.and_then(|s| s.state_dir.clone()) {
        commands.insert_resource(SavedPositions::load(&dir));
    }
}

/// Notes every change of song or page and writes the file when it changed (written aside,
/// then renamed, so a crash never leaves half a file).
fn save_positions(
    position: Res<Position>,
    library: Res<SongLibrary>,
    mut positions: ResMut<SavedPositions>,
) {
    if position.is_changed()
        && let Some(song) = position.song.as_ref().filter(|s| library.find(s).is_some())
    {
        let song = song.as_str().to_owned();
        if positions.pages.get(&song) != Some(&position.page)
            || positions.last_song.as_deref() != Some(&song)
        {
            positions.pages.insert(song.clone(), position.page);
            positions.last_song = Some(song);
        }
    }
    let current = (positions.last_song.clone(), positions.pages.clone());
    if positions.saved.as_ref() == Some(&current) {
        return;
    }
    let text = serde_json::json!({"last_song": current.0, "pages": current.1}).to_string();
    let write = || -> std::io::Result<()> {
        if let Some(dir) = positions.path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let aside = positions.path.with_extension("json.new");
        std::fs::write(&aside, text)?;
        std::fs::rename(&aside, &positions.path)
    };
    if let Err(error) = write() {
        warn!("could not keep the position in {} ({error})", positions.path.display());
    }
    // Written or not, not tried again until the next change.
    positions.saved = Some(current);
}
