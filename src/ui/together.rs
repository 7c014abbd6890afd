//! Playing together (docs/behaviour.md §5–§6, §10–§13), in the panel: pair with another device
//! (Solo), start a session (Choir Master: its QR, its code, its roster, end it), join one
//! (Follower: paste the code or open a photo of the QR; follow or free; leave), or play alone
//! again. Switching role ends the old one first; ending a session asks first.

use bevy_egui::egui;
use maestral_net::SyncCommand;
use maestral_protocol::{FollowMode, Parity};
use maestral_sync::{LocalAction, Phase, Role};

use super::view::{AfterEnd, SyncView, UiAction, UiModel, UiState};
use super::{overlay, qr, touch, words};
use crate::model::SyncMode;

pub const PAIR: &str = "Pair with another device";
pub const START: &str = "Start a session";
pub const JOIN: &str = "Join";
pub const OPEN_QR: &str = "Open a photo of the QR code…";
pub const ALONE: &str = "Play alone";
pub const END: &str = "End the session";
pub const END_YES: &str = "End it for everyone";
pub const CANCEL: &str = "Cancel";
pub const ROOM: &str = "Show to the room";
pub const LEAVE: &str = "Leave the session";
pub const FOLLOW: &str = "Follow the Master";
pub const FREE: &str = "Browse freely";
pub const UNPAIR: &str = "Unpair";
pub const PAIR_CODE: &str = "Or the other device's code:";
pub const JOIN_CODE: &str = "Join a session:";

const START_MODE: SyncMode = SyncMode::ChoirMaster { listen: None };

pub fn draw(
    ui: &mut egui::Ui,
    model: &UiModel,
    sync: &SyncView,
    state: &mut UiState,
    out: &mut Vec<UiAction>,
) {
    ui.heading("Together");
    let members = sync.roster.members.len();
    ui.label(words::phase(sync.phase, sync.peer_name.as_deref(), members));
    if let Some(failed) = &sync.failed {
        ui.colored_label(egui::Color32::from_rgb(190, 80, 60), failed);
    }
    if sync.role != Role::Master {
        // A question about a session this device no longer runs.
        state.confirm_end = None;
    }
    if let Some(after) = state.confirm_end.clone() {
        confirm_end(ui, state, after, out);
        return;
    }
    match sync.role {
        Role::Solo => solo(ui, sync, state, out),
        Role::Master => master(ui, model, sync, state, out),
        Role::Follower => follower(ui, sync, state, out),
    }
}

fn confirm_end(ui: &mut egui::Ui, state: &mut UiState, after: AfterEnd, out: &mut Vec<UiAction>) {
    ui.label("End the session for everyone? The singers' devices stop following, and the code stops working.");
    ui.horizontal(|ui| {
        if state.button(ui, END_YES).clicked() {
            state.confirm_end = None;
            state.room_view = false;
            match after {
                AfterEnd::Stay => out.push(UiAction::Local(LocalAction::EndSession)),
                // The switch ends the session first.
                AfterEnd::Switch(mode) => out.push(UiAction::Switch(mode)),
            }
        }
        if state.button(ui, CANCEL).clicked() {
            state.confirm_end = None;
        }
    });
}

fn solo(ui: &mut egui::Ui, sync: &SyncView, state: &mut UiState, out: &mut Vec<UiAction>) {
    if sync.paired {
        ui.horizontal(|ui| {
            ui.label("This device shows the");
            for (p, words) in [(Parity::Odd, "odd"), (Parity::Even, "even")] {
                let chosen = sync.shows_second == Some(p == Parity::Even);
                if touch::choice(ui, chosen, words).clicked() {
                    out.push(UiAction::Local(LocalAction::SetParity { parity: p }));
                }
            }
            ui.label("pages");
        });
        if state.button(ui, UNPAIR).clicked() {
            out.push(UiAction::Local(LocalAction::Unpair));
        }
    } else {
        if let Some(code) = &sync.pair_code {
            ui.label("Pairing code: scan it or paste it on the other device");
            qr::image(ui, state, code, 200.0);
            qr::text(ui, code);
        } else if state.button(ui, PAIR).clicked() {
            out.push(UiAction::Command(SyncCommand::SoloOffer));
        }
        ui.horizontal(|ui| {
            let label = ui.label(PAIR_CODE);
            let field = touch::text_field(&mut state.pair_text, ui);
            ui.add(field.hint_text("M1O:… or M1A:…").desired_width(240.0)).labelled_by(label.id);
            if touch::button(ui, "Pair").clicked() {
                let code = state.pair_text.trim();
                if let Some(command) = pairing_command(code) {
                    out.push(UiAction::Command(command));
                } else if !code.is_empty() {
                    out.push(UiAction::Error(
                        "that is not a Maestral pairing code (they start M1O: or M1A:); copy the whole code from the other device".into(),
                    ));
                }
                state.pair_text.clear();
            }
        });
        ui.separator();
        if state.button(ui, START).clicked() {
            out.push(UiAction::Switch(START_MODE));
        }
        join_box(ui, state, out);
    }
}

/// What a pairing code from the other device asks for: answer its offer (`M1O:`) or complete
/// our pairing with its answer (`M1A:`); `None`: not a pairing code.
pub fn pairing_command(code: &str) -> Option<SyncCommand> {
    if code.starts_with("M1O:") {
        Some(SyncCommand::SoloAnswer(code.to_owned()))
    } else if code.starts_with("M1A:") {
        Some(SyncCommand::SoloAccept(code.to_owned()))
    } else {
        None
    }
}

/// Paste a join code, or open a photo of its QR.
fn join_box(ui: &mut egui::Ui, state: &mut UiState, out: &mut Vec<UiAction>) {
    ui.horizontal(|ui| {
        let label = ui.label(JOIN_CODE);
        let field = touch::text_field(&mut state.join_text, ui);
        let edit = ui
            .add(field.hint_text("paste the code (http://…/#1.…)").desired_width(240.0))
            .labelled_by(label.id);
        let go = state.button(ui, JOIN).clicked()
            || (edit.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter)));
        let code = state.join_text.trim().to_owned();
        if go && !code.is_empty() {
            out.push(UiAction::Switch(SyncMode::Join(code)));
            state.join_text.clear();
        }
    });
    if state.button(ui, OPEN_QR).clicked() {
        out.push(UiAction::PickQrImage);
    }
}

fn master(
    ui: &mut egui::Ui,
    model: &UiModel,
    sync: &SyncView,
    state: &mut UiState,
    out: &mut Vec<UiAction>,
) {
    let open = words::session_open(sync.phase);
    if open && let Some(code) = &sync.join_code {
        ui.label("Singers scan this, or paste the code:");
        qr::image(ui, state, code, 200.0);
        qr::text(ui, code);
        ui.label(words::SAME_WIFI);
        if state.button(ui, ROOM).clicked() {
            state.room_view = true;
            out.push(UiAction::HidePanel);
        }
    }
    if open {
        if let Some(line) = overlay::roster_summary(sync, &model.position.view()) {
            ui.label(line);
        }
        roster(ui, model, sync);
        if state.button(ui, END).clicked() {
            state.confirm_end = Some(AfterEnd::Stay);
        }
    } else if sync.phase == Some(Phase::MasterSessionEnded) && state.button(ui, START).clicked() {
        out.push(UiAction::Switch(START_MODE));
    }
    if state.button(ui, ALONE).clicked() {
        if open {
            state.confirm_end = Some(AfterEnd::Switch(SyncMode::Solo));
        } else {
            out.push(UiAction::Switch(SyncMode::Solo));
        }
    }
}

/// Each Follower: its name, its link, follow or free, and whether it shows the Master's page.
fn roster(ui: &mut egui::Ui, model: &UiModel, sync: &SyncView) {
    let master = model.position.view();
    egui::ScrollArea::vertical().id_salt("roster").max_height(220.0).show(ui, |ui| {
        for m in &sync.roster.members {
            let mode = match m.follow_mode {
                FollowMode::Follow => "following",
                FollowMode::Free => "free",
            };
            let shows = if !m.link.is_up() {
                String::new()
            } else if m.lagging {
                " · lagging".to_owned()
            } else {
                match &m.shows {
                    Some(v) if *v == master => " · on the page".to_owned(),
                    Some(v) if v.song_id == master.song_id => {
                        format!(" · p. {}", v.page_index.saturating_add(1))
                    }
                    Some(_) => " · another song".to_owned(),
                    None => String::new(),
                }
            };
            let line = format!("{} — {}, {mode}{shows}", m.name, words::link(m.link));
            if m.lagging {
                ui.colored_label(egui::Color32::from_rgb(210, 130, 50), line);
            } else {
                ui.label(line);
            }
        }
    });
}

fn follower(ui: &mut egui::Ui, sync: &SyncView, state: &mut UiState, out: &mut Vec<UiAction>) {
    let phase = sync.phase;
    if words::follower_connected(phase) {
        let free = phase == Some(Phase::FollowerConnectedFree);
        ui.horizontal(|ui| {
            if touch::choice(ui, !free, FOLLOW).clicked() && free {
                out.push(UiAction::follow(FollowMode::Follow));
            }
            if touch::choice(ui, free, FREE).clicked() && !free {
                out.push(UiAction::follow(FollowMode::Free));
            }
        });
        if free && let Some(master) = &sync.master {
            ui.label(format!("The Master is on p. {}", master.page_index.saturating_add(1)));
        }
    }
    let in_session = !matches!(phase, Some(Phase::FollowerIdleLocal) | None);
    if in_session {
        if state.button(ui, LEAVE).clicked() {
            out.push(UiAction::Switch(SyncMode::Solo));
        }
    } else {
        // Not accepted (a refused or failed join): try another code, or play alone.
        join_box(ui, state, out);
        if state.button(ui, ALONE).clicked() {
            out.push(UiAction::Switch(SyncMode::Solo));
        }
    }
}
