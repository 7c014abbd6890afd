//! The UI driven as a performer would: egui run by `egui_kittest`, each widget found by its
//! label (AccessKit) and clicked or typed into, with the model the app would gather. Each flow
//! of playing together: start → QR shown → end (after a confirmation), the room view, join by
//! a pasted code → follow → free (the Master marker) → tap the marker → follow, leave, pair
//! and unpair, and a pairing offered again after Solo gave up.

use bevy_egui::egui;
use egui::accesskit::Role as A11y;
use egui_kittest::Harness;
use egui_kittest::kittest::{NodeT, Queryable};
use maestral::model::{LinkIndicator, Position, SyncMode};
use maestral::ui::{self, SyncView, UiAction, UiModel, UiState};
use maestral_net::SyncCommand;
use maestral_protocol::{DeviceId, FollowMode, SongId};
use maestral_sync::{LinkState, LocalAction, Phase, Role, Roster, RosterMember, View};

struct Screen {
    model: UiModel,
    state: UiState,
    actions: Vec<UiAction>,
}

/// A screen tall enough for the whole panel (on a real screen it scrolls; a test clicks only
/// what is in view).
fn harness(model: UiModel) -> Harness<'static, Screen> {
    Harness::builder().with_size(egui::vec2(1280.0, 2400.0)).build_ui_state(
        |ui, s: &mut Screen| {
            let actions = ui::draw(ui.ctx(), &s.model, &mut s.state);
            s.actions.extend(actions);
        },
        Screen { model, state: UiState::default(), actions: Vec::new() },
    )
}

fn song() -> SongId {
    SongId::new("ab".repeat(32))
}

fn model(role: Role, phase: Phase, panel: bool) -> UiModel {
    let mut sync = SyncView::new(role);
    sync.phase = Some(phase);
    UiModel {
        panel,
        position: Position { song: Some(song()), page: 4 },
        page_count: Some(12),
        indicator: LinkIndicator::Connected,
        sync: Some(sync),
        ..UiModel::default()
    }
}

fn sync<'h>(h: &'h mut Harness<'_, Screen>) -> &'h mut SyncView {
    h.state_mut().model.sync.as_mut().expect("a sync view")
}

fn take(h: &mut Harness<'_, Screen>) -> Vec<UiAction> {
    std::mem::take(&mut h.state_mut().actions)
}

fn switched_to(actions: &[UiAction]) -> Option<SyncMode> {
    actions.iter().find_map(|a| match a {
        UiAction::Switch(mode) => Some(mode.clone()),
        _ => None,
    })
}

fn local(actions: &[UiAction]) -> Vec<LocalAction> {
    actions
        .iter()
        .filter_map(|a| match a {
            UiAction::Local(l) => Some(l.clone()),
            _ => None,
        })
        .collect()
}

const CODE: &str =
    "maestral://join?host=127.0.0.1:4711&session=s1&token=AAAAAAAAAAAAAAAAAAAAAA&fp=sha-256%20AB";

fn member(
    id: &str,
    name: &str,
    mode: FollowMode,
    shows: Option<View>,
    lagging: bool,
) -> RosterMember {
    RosterMember {
        device_id: DeviceId::new(id),
        name: name.into(),
        link: LinkState::Connected,
        follow_mode: mode,
        shows,
        lagging,
    }
}

#[test]
fn a_conductor_starts_a_session_sees_its_qr_and_ends_it_after_a_confirmation() {
    let mut h = harness(model(Role::Solo, Phase::SoloLocalOnly, true));
    h.get_by_label(ui::START).click();
    h.run();
    assert_eq!(switched_to(&take(&mut h)), Some(SyncMode::ChoirMaster { listen: None }));

    // The sync thread is now a Master with a session and its code.
    h.state_mut().model = model(Role::Master, Phase::MasterSessionActive, true);
    sync(&mut h).join_code = Some(CODE.into());
    let here = View { song_id: Some(song()), page_index: 4 };
    sync(&mut h).roster = Roster {
        members: vec![
            member("d1", "Anna's tablet", FollowMode::Follow, Some(here.clone()), false),
            member("d2", "Ben's phone", FollowMode::Free, None, false),
        ],
    };
    h.run();
    h.get_by_label(ui::QR_ALT);
    h.get_by_label_contains("host=127.0.0.1:4711");
    h.get_by_label("Copy");
    h.get_by_label_contains("Anna's tablet");
    h.get_by_label("1/2 on p. 5 · 1 free");
    assert!(h.query_by_label("Session open: 2 singers in").is_some());

    h.get_by_label(ui::END).click();
    h.run();
    assert!(local(&take(&mut h)).is_empty(), "ending asks first");
    h.get_by_label(ui::CANCEL).click();
    h.run();
    assert!(local(&take(&mut h)).is_empty(), "cancel ends nothing");
    h.get_by_label(ui::END).click();
    h.run();
    h.get_by_label(ui::END_YES).click();
    h.run();
    assert_eq!(local(&take(&mut h)), vec![LocalAction::EndSession]);
}

#[test]
fn the_room_view_fills_the_screen_with_the_qr_and_one_tap_closes_it() {
    let mut m = model(Role::Master, Phase::MasterSessionActive, true);
    if let Some(s) = m.sync.as_mut() {
        s.join_code = Some(CODE.into());
    }
    let mut h = harness(m);
    h.get_by_label(ui::ROOM).click();
    h.run();
    assert!(take(&mut h).iter().any(|a| matches!(a, UiAction::HidePanel)));
    h.state_mut().model.panel = false;
    h.run();
    let qr = h.get_by_label(ui::QR_ALT);
    let side = qr.rect().width();
    assert!(side >= 700.0, "the room QR is as big as the screen allows: {side}");
    qr.click();
    h.run();
    assert!(!h.state().state.room_view, "one tap closes it");
    assert!(h.query_by_label(ui::QR_ALT).is_none(), "no QR on the performing screen");
}

#[test]
fn a_singer_joins_by_a_pasted_code_goes_free_sees_the_master_and_follows_again() {
    let mut h = harness(model(Role::Solo, Phase::SoloLocalOnly, true));
    h.get_by_role_and_label(A11y::TextInput, ui::JOIN_CODE).focus();
    h.run();
    h.get_by_role_and_label(A11y::TextInput, ui::JOIN_CODE).type_text(CODE);
    h.run();
    h.get_by_label(ui::JOIN).click();
    h.run();
    assert_eq!(switched_to(&take(&mut h)), Some(SyncMode::Join(CODE.into())));

    // Connected and following, performing: one small control, no panel.
    h.state_mut().model = model(Role::Follower, Phase::FollowerConnectedFollow, false);
    h.run();
    assert!(h.query_by_label_contains("Master: p.").is_none(), "no marker while following");
    h.get_by_label("Free").click();
    h.run();
    assert_eq!(local(&take(&mut h)), vec![LocalAction::SetFollowMode { mode: FollowMode::Free }]);

    sync(&mut h).phase = Some(Phase::FollowerConnectedFree);
    sync(&mut h).master = Some(View { song_id: Some(song()), page_index: 6 });
    h.run();
    h.get_by_label("Master: p. 7").click();
    h.run();
    assert_eq!(local(&take(&mut h)), vec![LocalAction::SetFollowMode { mode: FollowMode::Follow }]);

    // Leave, from the panel.
    h.state_mut().model.panel = true;
    h.run();
    h.get_by_label("Connected to the Master, browsing freely");
    h.get_by_label(ui::LEAVE).click();
    h.run();
    assert_eq!(switched_to(&take(&mut h)), Some(SyncMode::Solo));
}

#[test]
fn a_follower_missing_the_score_says_it_is_waiting_for_it() {
    let mut m = model(Role::Follower, Phase::FollowerConnectedFollow, false);
    m.missing_song = true;
    m.page_count = None;
    let mut h = harness(m);
    h.get_by_label("Waiting for the score");
    h.get_by_label("The Master's song is not on this device.");
    h.state_mut().model.receiving = Some(40);
    h.run();
    h.get_by_label("Receiving the score — 40 %");
    h.state_mut().model.receiving_title = Some("Ave verum".into());
    h.run();
    h.get_by_label("Receiving «Ave verum» — 40 %");
    h.get_by_label("The Master is sending it to this device, to view only.");
}

#[test]
fn pairing_offers_a_code_takes_the_other_one_unpairs_and_is_offered_again_after_a_give_up() {
    let mut h = harness(model(Role::Solo, Phase::SoloLocalOnly, true));
    h.get_by_label(ui::PAIR).click();
    h.run();
    let actions = take(&mut h);
    assert!(actions.iter().any(|a| matches!(a, UiAction::Command(SyncCommand::SoloOffer))));

    sync(&mut h).pair_code = Some("M1O:offer".into());
    h.run();
    h.get_by_label(ui::QR_ALT);
    h.get_by_role_and_label(A11y::TextInput, ui::PAIR_CODE).focus();
    h.run();
    h.get_by_role_and_label(A11y::TextInput, ui::PAIR_CODE).type_text("M1A:answer");
    h.run();
    h.get_by_label("Pair").click();
    h.run();
    let actions = take(&mut h);
    assert!(
        actions.iter().any(
            |a| matches!(a, UiAction::Command(SyncCommand::SoloAccept(c)) if c == "M1A:answer")
        ),
        "{actions:?}"
    );

    // Paired: the partner by name, parity, unpair.
    {
        let s = sync(&mut h);
        s.phase = Some(Phase::SoloPairedConnected);
        s.paired = true;
        s.pair_code = None;
        s.peer_name = Some("Anna's tablet".into());
        s.shows_second = Some(false);
    }
    h.run();
    h.get_by_label("Paired with Anna's tablet");
    assert!(h.query_by_label(ui::PAIR).is_none());
    h.get_by_label(ui::UNPAIR).click();
    h.run();
    // The engine forgets the partner (and the kept pairing); the role stays.
    let actions = take(&mut h);
    assert_eq!(local(&actions), [LocalAction::Unpair], "{actions:?}");
    assert_eq!(switched_to(&actions), None);

    // The partner never came back: the engine gave up; pairing is offered again.
    {
        let s = sync(&mut h);
        s.phase = Some(Phase::SoloLocalOnly);
        s.paired = false;
        s.links = vec![("Anna's tablet".into(), LinkState::Ended)];
    }
    h.run();
    h.get_by_label(ui::PAIR);
}

#[test]
fn a_garbage_pairing_code_says_so_and_sends_nothing() {
    let mut h = harness(model(Role::Solo, Phase::SoloLocalOnly, true));
    h.get_by_role_and_label(A11y::TextInput, ui::PAIR_CODE).focus();
    h.run();
    h.get_by_role_and_label(A11y::TextInput, ui::PAIR_CODE).type_text("hello there");
    h.run();
    h.get_by_label("Pair").click();
    h.run();
    let actions = take(&mut h);
    assert!(actions.iter().any(|a| matches!(a, UiAction::Error(m) if m.contains("M1O:"))));
    assert!(!actions.iter().any(|a| matches!(a, UiAction::Command(_))));
}

#[test]
fn a_master_leaving_for_solo_play_ends_its_session_only_after_a_confirmation() {
    let mut m = model(Role::Master, Phase::MasterSessionActive, true);
    if let Some(s) = m.sync.as_mut() {
        s.join_code = Some(CODE.into());
    }
    let mut h = harness(m);
    h.get_by_label(ui::ALONE).click();
    h.run();
    assert_eq!(switched_to(&take(&mut h)), None, "asks first");
    h.get_by_label(ui::END_YES).click();
    h.run();
    assert_eq!(switched_to(&take(&mut h)), Some(SyncMode::Solo));
}

#[test]
fn the_roster_line_counts_who_shows_the_masters_page() {
    let here = View { song_id: Some(song()), page_index: 11 };
    let mut s = SyncView::new(Role::Master);
    s.phase = Some(Phase::MasterSessionActive);
    let mut away = member("d4", "D", FollowMode::Follow, Some(here.clone()), false);
    away.link = LinkState::Reconnecting;
    s.roster = Roster {
        members: vec![
            member("d1", "A", FollowMode::Follow, Some(here.clone()), false),
            member(
                "d2",
                "B",
                FollowMode::Free,
                Some(View { page_index: 3, ..here.clone() }),
                false,
            ),
            member(
                "d3",
                "C",
                FollowMode::Follow,
                Some(View { page_index: 10, ..here.clone() }),
                true,
            ),
            away,
        ],
    };
    assert_eq!(
        ui::roster_summary(&s, &here).as_deref(),
        Some("1/4 on p. 12 · 1 free · 1 lagging · 1 away")
    );
    s.phase = Some(Phase::MasterSessionEnded);
    assert_eq!(ui::roster_summary(&s, &here), None);
}

#[test]
fn the_set_list_section_marks_the_piece_shown_and_edits_by_its_buttons() {
    use maestral::setlist::{PieceRequested, SetListEdit};
    let other = SongId::new("cd".repeat(32));
    let mut m = model(Role::Master, Phase::MasterSessionActive, true);
    m.set_lists = ui::SetListsView {
        in_use: Some((
            "Sunday".into(),
            vec![(other.clone(), Some("Harbour Lights".into())), (song(), None)],
        )),
        current: Some(0),
        names: vec!["Sunday".into(), "Encores".into()],
    };
    let mut h = harness(m);
    h.run();
    // Each piece, numbered; one this device lacks says so.
    h.get_by_label("1. Harbour Lights");
    h.get_by_label("2. (not on this device)");
    h.get_by_label(ui::NEXT_PIECE).click();
    h.run();
    h.get_by_label(ui::ADD_SHOWN).click();
    h.run();
    h.get_by_label("Encores").click();
    h.run();
    h.get_by_label("↓").click();
    h.run();
    let actions = take(&mut h);
    let edits: Vec<String> = actions
        .iter()
        .filter_map(|a| match a {
            UiAction::Piece(p) => Some(format!("{p:?}")),
            UiAction::SetList(e) => Some(format!("{e:?}")),
            _ => None,
        })
        .collect();
    assert_eq!(
        edits,
        [
            format!("{:?}", PieceRequested::Next),
            format!("{:?}", SetListEdit::Add(song())),
            format!("{:?}", SetListEdit::Use("Encores".into())),
            format!("{:?}", SetListEdit::Move { from: 0, to: 1 }),
        ]
    );
}

/// Every control drawn for `model`, by role and label, with its size in logical pixels.
fn controls(model: UiModel, pixels_per_point: f32) -> Vec<(String, egui::Vec2)> {
    let mut h = Harness::builder()
        .with_size(egui::vec2(1280.0, 2400.0))
        .with_pixels_per_point(pixels_per_point)
        .build_ui_state(
            |ui, s: &mut Screen| {
                let actions = ui::draw(ui.ctx(), &s.model, &mut s.state);
                s.actions.extend(actions);
            },
            Screen { model, state: UiState::default(), actions: Vec::new() },
        );
    h.run();
    let mut found = Vec::new();
    for role in [A11y::Button, A11y::CheckBox, A11y::RadioButton, A11y::TextInput] {
        for node in h.query_all_by_role(role) {
            let label = NodeT::accesskit_node(&node).label().unwrap_or_default();
            found.push((format!("{role:?} {label:?}"), node.rect().size()));
        }
    }
    found
}

/// The screens a performer meets: the panel as each role, with a set list in use, and the
/// performing screen of a free singer (its Follow control and the Master marker).
fn screens() -> Vec<(&'static str, UiModel)> {
    let with_set_list = |mut m: UiModel| {
        m.set_lists = ui::SetListsView {
            in_use: Some(("Sunday".into(), vec![(song(), Some("Lanterns".into()))])),
            current: Some(0),
            names: vec!["Sunday".into()],
        };
        m
    };
    let mut master = model(Role::Master, Phase::MasterSessionActive, true);
    if let Some(s) = master.sync.as_mut() {
        s.join_code = Some(CODE.into());
    }
    let mut free = model(Role::Follower, Phase::FollowerConnectedFree, false);
    if let Some(s) = free.sync.as_mut() {
        s.master = Some(View { song_id: Some(song()), page_index: 6 });
    }
    vec![
        ("solo panel", with_set_list(model(Role::Solo, Phase::SoloLocalOnly, true))),
        ("master panel", with_set_list(master)),
        ("singer panel", model(Role::Follower, Phase::FollowerConnectedFollow, true)),
        ("free singer performing", free),
    ]
}

#[test]
fn every_control_is_at_least_a_fingers_width_at_two_scale_factors_and_larger_when_asked() {
    for pixels_per_point in [1.0, 2.0] {
        for (screen, m) in screens() {
            let found = controls(m, pixels_per_point);
            assert!(found.len() >= 2, "{screen}: controls found: {found:?}");
            for (what, size) in &found {
                assert!(
                    size.x >= ui::touch::MIN_TARGET - 0.5 && size.y >= ui::touch::MIN_TARGET - 0.5,
                    "{screen} at {pixels_per_point}×: {what} is {size:?}, under {} px",
                    ui::touch::MIN_TARGET
                );
            }
        }
    }
    // The UI size setting: everything half as large again, on every screen.
    for (screen, mut m) in screens() {
        m.size = maestral::model::UiSize { scale: 1.5, large_page_number: true };
        let found = controls(m, 1.0);
        assert!(found.len() >= 2, "{screen}: controls found: {found:?}");
        for (what, size) in found {
            let least = 1.5 * ui::touch::MIN_TARGET - 0.5;
            assert!(size.x >= least && size.y >= least, "{screen}: {what} is {size:?} at 150 %");
        }
    }
}
