//! The UI (egui): the panel (`panel`, `together`), hidden while performing (a page turn hides
//! it; Tab, Escape or a tap on the top strip shows it), and the performing screen's marks
//! (`overlay`). Each frame the plugin gathers a [`UiModel`] from the app's resources, draws it
//! (a plain function of the model, so tests drive it with egui alone), and carries out the
//! [`UiAction`]s the performer asked for.

mod overlay;
mod panel;
mod qr;
mod setlist;
mod together;
pub mod touch;
mod view;
mod words;

pub use overlay::{ROOM_VIEW, roster_summary};
pub use qr::QR_ALT;
pub use setlist::{ADD_SHOWN, DELETE_LIST, NEW_LIST, NEXT_PIECE, NO_LIST, PREV_PIECE, RENAME_LIST};
pub use together::{
    ALONE, CANCEL, END, END_YES, FOLLOW, FREE, JOIN, JOIN_CODE, LEAVE, OPEN_QR, PAIR, PAIR_CODE,
    ROOM, START, UNPAIR,
};
pub use view::{AfterEnd, SetListsView, SongRow, SyncView, UiAction, UiModel, UiState};

use bevy::ecs::system::SystemParam;
use bevy::prelude::*;
use bevy_egui::{EguiContexts, EguiInput, EguiInputSet, EguiPrimaryContextPass, egui};
use maestral_protocol::SongId;
use maestral_sync::Role;

use crate::model::{
    AppError, EnginePager, FollowedRemote, JoinCodeRead, LayoutMode, LinkStatus, MasterPosition,
    NavigationSystems, NumberEntry, OpenScore, PageTurnRequested, Position, Projector, RosterState,
    SessionCodes, SongChangeRequested, SongLibrary, StreamChanged, StreamState, SwitchRole,
    UiVisible,
};
use crate::open::{OpenDialog, Pick};
use crate::sync::SyncBridge;

pub fn plugin(app: &mut App) {
    app.init_resource::<crate::model::UiSize>()
        .add_message::<crate::setlist::SetListEdit>()
        .add_message::<crate::setlist::PieceRequested>()
        .init_resource::<Problems>()
        .init_resource::<UiState>()
        .init_resource::<Receiving>()
        .add_systems(
            Update,
            (
                hide_while_performing.after(NavigationSystems::Apply),
                collect_problems,
                track_streams,
                use_read_codes,
            ),
        )
        .add_systems(PreUpdate, drop_unchanged_modifiers.after(EguiInputSet::WriteEguiEvents))
        .add_systems(EguiPrimaryContextPass, draw_ui);
}

/// The last few problems, newest last, with when each came (`Time<Real>` elapsed).
#[derive(Resource, Debug, Default)]
pub struct Problems(pub Vec<(String, std::time::Duration)>);

/// How long the newest problem stays in the corner (it goes at the first frame after this).
const PROBLEM_SHOWN: std::time::Duration = std::time::Duration::from_secs(6);

/// A code read from a QR picture: a join code joins, a pairing code pairs (as if pasted).
fn use_read_codes(
    mut read: MessageReader<JoinCodeRead>,
    mut switches: MessageWriter<SwitchRole>,
    mut errors: MessageWriter<AppError>,
    bridge: Option<Res<SyncBridge>>,
    link: Res<LinkStatus>,
    waker: Res<crate::wake::Waker>,
) {
    for JoinCodeRead(text) in read.read() {
        let text = text.trim();
        let join = maestral_net::joincode::looks_like_join_code(text);
        if join && words::session_open(link.phase) {
            // A picture dropped by mistake must not end the session for every singer.
            errors.write(AppError(
                "this device runs a session: end it in the panel before joining another".into(),
            ));
        } else if join {
            switches.write(SwitchRole(crate::model::SyncMode::Join(text.to_owned())));
            // The switch is carried out at the start of a frame: ask for one.
            waker.wake();
        } else if let Some(bridge) = bridge.as_deref().filter(|b| b.role() == Role::Solo)
            && let Some(command) = together::pairing_command(text)
        {
            bridge.send(command);
        } else {
            errors.write(AppError(
                "that QR code is not a Maestral join or pairing code; photograph the code on the conductor's screen".into(),
            ));
        }
    }
}

/// Songs being streamed to this device.
#[derive(Resource, Debug, Default)]
struct Receiving(std::collections::BTreeSet<SongId>);

fn track_streams(mut streams: MessageReader<StreamChanged>, mut receiving: ResMut<Receiving>) {
    for StreamChanged { song, state } in streams.read() {
        match (song, state) {
            (Some(song), StreamState::Receiving) => {
                receiving.0.insert(song.clone());
            }
            (Some(song), _) => {
                receiving.0.remove(song);
            }
            (None, _) => receiving.0.clear(),
        }
    }
}

/// bevy_egui 0.42 reports the modifier keys as changed every frame, and egui asks for an
/// immediate repaint on any input event, so the app would never go idle. Keep that event only
/// when the modifiers did change.
fn drop_unchanged_modifiers(
    mut inputs: Query<(Entity, &mut EguiInput)>,
    mut last: Local<std::collections::HashMap<Entity, egui::Modifiers>>,
) {
    for (entity, mut input) in &mut inputs {
        let mut previous = last.get(&entity).copied();
        input.events.retain(|event| match event {
            egui::Event::ModifiersChanged(modifiers) => {
                let changed = previous != Some(*modifiers);
                previous = Some(*modifiers);
                changed
            }
            _ => true,
        });
        if let Some(modifiers) = previous {
            last.insert(entity, modifiers);
        }
    }
}

/// The panel goes when the music moves on: a local turn, or the page or song following the
/// Master or the Solo partner.
pub fn hide_while_performing(
    mut turns: MessageReader<PageTurnRequested>,
    mut followed: MessageReader<FollowedRemote>,
    mut ui: ResMut<UiVisible>,
) {
    let turned = turns.read().count() > 0;
    let moved = followed.read().count() > 0;
    if (turned || moved) && ui.0 {
        ui.0 = false;
    }
}

fn collect_problems(
    mut errors: MessageReader<AppError>,
    mut problems: ResMut<Problems>,
    time: Res<Time<Real>>,
) {
    for AppError(message) in errors.read() {
        if problems.0.last().map(|(m, _)| m) != Some(message) {
            problems.0.push((message.clone(), time.elapsed()));
        }
    }
    let len = problems.0.len();
    if len > 6 {
        problems.0.drain(..len - 6);
    }
}

/// What the UI is drawn from.
#[derive(SystemParam)]
struct Shown<'w> {
    position: Res<'w, Position>,
    library: Res<'w, SongLibrary>,
    link: Res<'w, LinkStatus>,
    codes: Res<'w, SessionCodes>,
    pager: Res<'w, EnginePager>,
    roster: Res<'w, RosterState>,
    master: Res<'w, MasterPosition>,
    problems: Res<'w, Problems>,
    entry: Res<'w, NumberEntry>,
    receiving: Res<'w, Receiving>,
    progress: Res<'w, crate::model::StreamProgress>,
    bridge: Option<Res<'w, SyncBridge>>,
    time: Res<'w, Time<Real>>,
    sets: Option<Res<'w, crate::setlist::SetLists>>,
}

impl Shown<'_> {
    fn model(&self, panel: bool, layout: LayoutMode, projector: Projector) -> UiModel {
        let library = &self.library;
        let position = &self.position;
        let song = position.song.as_ref();
        let fresh_problem = self
            .problems
            .0
            .last()
            .filter(|(_, at)| self.time.elapsed().saturating_sub(*at) < PROBLEM_SHOWN)
            .map(|(m, _)| m.clone());
        UiModel {
            panel,
            songs: library
                .songs()
                .iter()
                .map(|s| SongRow {
                    id: s.id.clone(),
                    title: s.title.clone(),
                    pages: s.page_count,
                    streamed: library.is_streamed(&s.id),
                })
                .collect(),
            unreadable: library.unreadable.iter().map(|(_, r)| r.clone()).collect(),
            scanning: (library.scanning > 0).then(|| library.scan_progress()),
            layout,
            projector,
            position: Position::clone(position),
            page_count: library.page_count(song),
            missing_song: song.is_some_and(|s| library.get(s).is_none()),
            receiving: song
                .filter(|s| self.receiving.0.contains(*s))
                .map(|s| self.progress.percent(s).unwrap_or(0)),
            receiving_title: song.and_then(|s| self.progress.1.get(s).cloned()),
            entry: self.entry.0.clone(),
            problems: self.problems.0.iter().map(|(m, _)| m.clone()).collect(),
            fresh_problem,
            indicator: self.link.indicator(),
            sync: self.bridge.as_deref().map(|b| self.sync_view(b.role())),
            set_lists: self.sets.as_deref().map(|s| set_lists_view(s, library)).unwrap_or_default(),
            size: crate::model::UiSize::default(),
        }
    }

    fn sync_view(&self, role: Role) -> SyncView {
        let link = &self.link;
        let peer = link.links.keys().next();
        SyncView {
            role,
            phase: link.phase,
            shows_second: (role == Role::Solo && self.pager.0.step() == 2)
                .then(|| self.pager.0.shows_second()),
            join_code: self.codes.join_code.clone(),
            pair_code: self.codes.pair_code.clone(),
            failed: self.codes.failed.clone(),
            paired: role == Role::Solo && link.any_live(),
            peer_name: peer.map(|p| link.name(p)),
            roster: self.roster.0.clone(),
            master: self.master.0.clone(),
            links: link.links.iter().map(|(p, s)| (link.name(p), *s)).collect(),
        }
    }
}

fn set_lists_view(sets: &crate::setlist::SetLists, library: &SongLibrary) -> SetListsView {
    SetListsView {
        in_use: sets.in_use().map(|l| {
            let pieces = l
                .songs
                .iter()
                .map(|s| (s.clone(), library.get(s).map(|x| x.title.clone())))
                .collect();
            (l.name.clone(), pieces)
        }),
        current: sets.current,
        names: sets.lists.iter().map(|l| l.name.clone()).collect(),
    }
}

/// What the UI changes and asks for.
#[derive(SystemParam)]
struct Edits<'w> {
    visible: ResMut<'w, UiVisible>,
    layout: ResMut<'w, LayoutMode>,
    projector: ResMut<'w, Projector>,
    state: ResMut<'w, UiState>,
    songs: MessageWriter<'w, SongChangeRequested>,
    opens: MessageWriter<'w, OpenScore>,
    errors: MessageWriter<'w, AppError>,
    switches: MessageWriter<'w, SwitchRole>,
    dialog: Option<ResMut<'w, OpenDialog>>,
    waker: Res<'w, crate::wake::Waker>,
    size: ResMut<'w, crate::model::UiSize>,
    set_lists: MessageWriter<'w, crate::setlist::SetListEdit>,
    pieces: MessageWriter<'w, crate::setlist::PieceRequested>,
}

fn draw_ui(mut contexts: EguiContexts, shown: Shown, mut edits: Edits) -> Result {
    let ctx = contexts.ctx_mut()?;
    let mut model = shown.model(edits.visible.0, *edits.layout, *edits.projector);
    model.size = *edits.size;
    let actions = draw(ctx, &model, &mut edits.state);
    for action in actions {
        apply(action, &mut edits, shown.bridge.as_deref());
    }
    Ok(())
}

/// Draws the whole UI for `model`; returns what the performer asked for.
pub fn draw(ctx: &egui::Context, model: &UiModel, state: &mut UiState) -> Vec<UiAction> {
    let mut out = Vec::new();
    state.widgets.clear();
    state.areas.clear();
    touch::apply(ctx, model.size.scale);
    overlay::draw(ctx, model, state, &mut out);
    panel::draw(ctx, model, state, &mut out);
    out
}

fn apply(action: UiAction, edits: &mut Edits, bridge: Option<&SyncBridge>) {
    match action {
        UiAction::HidePanel => edits.visible.0 = false,
        UiAction::Song(id) => {
            edits.songs.write(SongChangeRequested(Some(id)));
        }
        UiAction::Open(path) => {
            edits.opens.write(OpenScore { path, show: true });
        }
        UiAction::PickScore | UiAction::PickQrImage => match edits.dialog.as_deref_mut() {
            Some(dialog) => dialog.pick(if matches!(action, UiAction::PickScore) {
                Pick::Score
            } else {
                Pick::QrImage
            }),
            None => {
                edits.errors.write(AppError("choosing a file needs the window".into()));
            }
        },
        UiAction::Layout(mode) => *edits.layout = mode,
        UiAction::Rotation(r) => edits.projector.rotation = r,
        UiAction::Dark(dark) => edits.projector.dark = dark,
        UiAction::Switch(mode) => {
            edits.switches.write(SwitchRole(mode));
            // Carried out at the start of a frame: ask for one.
            edits.waker.wake();
        }
        UiAction::Command(command) => match bridge {
            Some(bridge) => bridge.send(command),
            None => {
                edits.errors.write(AppError("no sync is running".into()));
            }
        },
        UiAction::Local(action) => match bridge {
            Some(bridge) => bridge.local(action),
            None => {
                edits.errors.write(AppError("no sync is running".into()));
            }
        },
        UiAction::Error(message) => {
            edits.errors.write(AppError(message));
        }
        UiAction::SetList(edit) => {
            edits.set_lists.write(edit);
        }
        UiAction::Piece(step) => {
            edits.pieces.write(step);
            edits.visible.0 = false;
        }
        UiAction::Size(size) => *edits.size = size,
    }
}
