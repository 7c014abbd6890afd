//! What the UI draws from ([`UiModel`], gathered from the app's resources each frame), what
//! it asks for ([`UiAction`], carried out by the plugin's systems), and what it keeps between
//! frames ([`UiState`]: text being typed, a confirmation on show, the QR texture). Drawing is
//! a plain function of these, so tests drive it with egui alone.

use std::path::PathBuf;

use bevy::prelude::Resource;
use bevy_egui::egui;
use maestral_net::SyncCommand;
use maestral_protocol::{FollowMode, SongId};
use maestral_sync::{LinkState, LocalAction, Phase, Role, Roster, View};

use crate::model::{LayoutMode, LinkIndicator, Position, Projector, Rotation, SyncMode, UiSize};

/// Everything the UI shows.
#[derive(Debug, Clone, Default)]
pub struct UiModel {
    /// The panel is open (else the performing screen: music and a few small marks).
    pub panel: bool,
    pub songs: Vec<SongRow>,
    pub unreadable: Vec<String>,
    /// A library scan is under way: `Some((done, total))` once the total is known.
    pub scanning: Option<Option<(usize, usize)>>,
    pub layout: LayoutMode,
    pub projector: Projector,
    pub position: Position,
    pub page_count: Option<u32>,
    /// The shown song is not on this device (a Follower waiting for the Master's score).
    pub missing_song: bool,
    /// That song is being streamed to this device: how much has arrived, in percent.
    pub receiving: Option<u8>,
    /// Its title, as the Master gave it.
    pub receiving_title: Option<String>,
    /// Digits typed for "go to page".
    pub entry: String,
    pub problems: Vec<String>,
    /// The newest problem, while it is fresh enough for the performing screen.
    pub fresh_problem: Option<String>,
    pub indicator: LinkIndicator,
    /// `None`: this app runs without sync.
    pub sync: Option<SyncView>,
    /// The set lists.
    pub set_lists: SetListsView,
    /// How large the UI is drawn, and whether the page number is large.
    pub size: UiSize,
}

/// The set lists as the panel shows them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SetListsView {
    /// The list in use: its name, and its pieces (id, title: `None` for a piece this device
    /// does not hold).
    pub in_use: Option<(String, Vec<(SongId, Option<String>)>)>,
    /// The marked piece.
    pub current: Option<usize>,
    /// Every list's name.
    pub names: Vec<String>,
}

/// One song of the library.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SongRow {
    pub id: SongId,
    pub title: String,
    pub pages: u32,
    /// Streamed from the Master: view-only, gone with the session.
    pub streamed: bool,
}

/// The sync side.
#[derive(Debug, Clone)]
pub struct SyncView {
    pub role: Role,
    pub phase: Option<Phase>,
    /// Solo and paired: whether this device shows the second page of each spread.
    pub shows_second: Option<bool>,
    pub join_code: Option<String>,
    pub pair_code: Option<String>,
    /// Starting the role failed for good (no code will come).
    pub failed: Option<String>,
    /// Solo: a link to the partner is up, opening or coming back.
    pub paired: bool,
    /// The partner's (Solo) or the Master's (Follower) name.
    pub peer_name: Option<String>,
    /// Master: the joined Followers.
    pub roster: Roster,
    /// Follower: where the Master is.
    pub master: Option<View>,
    /// Other links, by name (Solo).
    pub links: Vec<(String, LinkState)>,
}

impl SyncView {
    pub fn new(role: Role) -> Self {
        SyncView {
            role,
            phase: None,
            shows_second: None,
            join_code: None,
            pair_code: None,
            failed: None,
            paired: false,
            peer_name: None,
            roster: Roster::default(),
            master: None,
            links: Vec::new(),
        }
    }
}

/// What the performer asked for.
#[derive(Debug, Clone)]
pub enum UiAction {
    HidePanel,
    Song(SongId),
    Open(PathBuf),
    /// The file picker, for a score or for a photo of a join QR code.
    PickScore,
    PickQrImage,
    Layout(LayoutMode),
    Rotation(Rotation),
    Dark(bool),
    Switch(SyncMode),
    Command(SyncCommand),
    Local(LocalAction),
    Error(String),
    SetList(crate::setlist::SetListEdit),
    Piece(crate::setlist::PieceRequested),
    Size(UiSize),
}

impl UiAction {
    pub fn follow(mode: FollowMode) -> Self {
        UiAction::Local(LocalAction::SetFollowMode { mode })
    }
}

/// What the UI keeps between frames.
#[derive(Resource, Default)]
pub struct UiState {
    pub open_path: String,
    /// A code pasted from the other device (Solo pairing).
    pub pair_text: String,
    /// A join code pasted (joining a session).
    pub join_text: String,
    /// A set list's name being typed.
    pub set_list_name: String,
    /// Asking "end the session for everyone?" before the role switch (or plain end) it names.
    pub confirm_end: Option<AfterEnd>,
    /// The room view: the join QR over the whole screen.
    pub room_view: bool,
    /// The QR image of the code on show, made once per code.
    pub qr: Option<(String, egui::TextureHandle)>,
    /// Where each button drawn this frame is, by its label, in points (`--control`'s `widget`
    /// command tells a test where to click).
    pub widgets: std::collections::BTreeMap<String, egui::Rect>,
    /// A button to scroll into view (asked for by `--control`'s `widget`, as a performer would
    /// scroll the panel to it).
    pub reveal: Option<String>,
    /// The parts of the screen the UI took last frame (the panel, the small controls, the room
    /// view), in logical pixels: a tap there is the UI's, never a page turn, even when the
    /// pointer arrives with the tap (a touchscreen has no hover).
    pub areas: Vec<egui::Rect>,
}

impl UiState {
    /// Whether a tap at `(x, y)` (logical pixels) lands on the UI.
    pub fn covers(&self, x: f32, y: f32) -> bool {
        self.areas.iter().any(|r| r.contains(egui::pos2(x, y)))
    }

    /// A button sized for a finger, remembered by its label while it is wholly in view (in a
    /// panel that scrolls it may not be); asked to be revealed, it is scrolled into view.
    pub fn button(&mut self, ui: &mut egui::Ui, label: &str) -> egui::Response {
        let response = super::touch::button(ui, label);
        self.remember(ui, label, response)
    }

    /// A choice chip sized for a finger (`selected`: the choice in effect), remembered by its
    /// label like [`UiState::button`].
    pub fn choice(&mut self, ui: &mut egui::Ui, selected: bool, label: &str) -> egui::Response {
        let response = super::touch::choice(ui, selected, label);
        self.remember(ui, label, response)
    }

    fn remember(&mut self, ui: &egui::Ui, label: &str, response: egui::Response) -> egui::Response {
        if ui.clip_rect().contains_rect(response.rect) {
            self.widgets.insert(label.to_owned(), response.rect);
            if self.reveal.as_deref() == Some(label) {
                self.reveal = None;
            }
        } else if self.reveal.as_deref() == Some(label) {
            // At once: where it is said to be is where it stays.
            response.scroll_to_me_animation(None, egui::style::ScrollAnimation::none());
        }
        response
    }
}

impl std::fmt::Debug for UiState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UiState")
            .field("confirm_end", &self.confirm_end)
            .field("room_view", &self.room_view)
            .finish_non_exhaustive()
    }
}

/// What follows a confirmed end of the session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AfterEnd {
    /// Stay Master, session ended.
    Stay,
    /// Then this role.
    Switch(SyncMode),
}
