//! The performing screen's few marks, small and in the corners: the page indicator `n / m`,
//! the link dot (docs/behaviour.md §10.1), the newest problem for a few seconds, the Master's
//! roster line, a Follower's Follow/Free control and, while free, where the Master is. Then the two
//! screens that replace the music: "waiting for the score" and the Master's room view of the join
//! QR.

use bevy_egui::egui;
use maestral_protocol::FollowMode;
use maestral_sync::{Role, View};

use super::view::{SyncView, UiAction, UiModel, UiState};
use super::{qr, touch, words};
use crate::model::LinkIndicator;

/// The room view's label for `--control`'s `widget` command.
pub const ROOM_VIEW: &str = "room view";
/// The large page number's text size, in points at UI size 100 %.
pub const LARGE_PAGE_NUMBER: f32 = 48.0;

/// The performing screen's Follow/Free control (a Follower).
pub const FOLLOW_CHIP: &str = "Follow";
pub const FREE_CHIP: &str = "Free";

/// The colour of the quiet marks.
pub fn faint(model: &UiModel) -> egui::Color32 {
    if model.projector.dark { egui::Color32::from_gray(110) } else { egui::Color32::from_gray(150) }
}

pub fn draw(ctx: &egui::Context, model: &UiModel, state: &mut UiState, out: &mut Vec<UiAction>) {
    if model.missing_song {
        waiting_for_score(ctx, model);
    }
    corner_marks(ctx, model);
    if let Some(sync) = &model.sync {
        if !model.panel {
            match sync.role {
                Role::Master => roster_line(ctx, model, sync),
                Role::Follower => follower_control(ctx, model, sync, state, out),
                Role::Solo => {}
            }
        }
        if state.room_view {
            room_view(ctx, sync, state);
        }
    }
}

fn corner_marks(ctx: &egui::Context, model: &UiModel) {
    let faint = faint(model);
    if let Some(message) = &model.fresh_problem
        && !model.panel
    {
        egui::Area::new(egui::Id::new("problem"))
            .anchor(egui::Align2::LEFT_BOTTOM, egui::vec2(8.0, -6.0))
            .interactable(false)
            .show(ctx, |ui| {
                ui.set_max_width(420.0);
                let red = egui::Color32::from_rgb(200, 90, 70);
                ui.label(egui::RichText::new(message).small().color(red));
            });
    }
    let position = &model.position;
    let text = match (&position.song, model.page_count) {
        (None, _) => String::new(),
        (Some(_), Some(count)) => format!("{} / {count}", position.page.saturating_add(1)),
        (Some(_), None) => format!("{} / ?", position.page.saturating_add(1)),
    };
    let text = if model.entry.is_empty() { text } else { format!("go to page {}_", model.entry) };
    if !text.is_empty() {
        // Large: readable from a music stand's distance (the size setting's own choice).
        let rich = if model.size.large_page_number {
            let size = LARGE_PAGE_NUMBER * model.size.scale;
            egui::RichText::new(text).size(size).strong().color(faint)
        } else {
            egui::RichText::new(text).small().color(faint)
        };
        egui::Area::new(egui::Id::new("page-indicator"))
            .anchor(egui::Align2::RIGHT_BOTTOM, egui::vec2(-8.0, -6.0))
            .interactable(false)
            // Never wrapped: an anchored area near the edge would break "2 / 11" in two lines.
            .show(ctx, |ui| ui.add(egui::Label::new(rich).extend()));
    }
    let (colour, words) = match model.indicator {
        LinkIndicator::Alone => return,
        LinkIndicator::Connected => (egui::Color32::from_rgb(70, 160, 90), "connected"),
        LinkIndicator::Connecting => (egui::Color32::from_rgb(200, 160, 60), "connecting"),
        LinkIndicator::Degraded => (egui::Color32::from_rgb(220, 150, 40), "unsteady link"),
        LinkIndicator::Reconnecting => (egui::Color32::from_rgb(210, 110, 50), "reconnecting"),
        LinkIndicator::Ended => (egui::Color32::from_gray(120), "session ended"),
    };
    egui::Area::new(egui::Id::new("link-indicator"))
        .anchor(egui::Align2::RIGHT_TOP, egui::vec2(-8.0, 6.0))
        .interactable(false)
        .show(ctx, |ui| {
            ui.horizontal(|ui| {
                let (rect, _) = ui.allocate_exact_size(egui::vec2(8.0, 8.0), egui::Sense::hover());
                ui.painter().circle_filled(rect.center(), 4.0, colour);
                if model.indicator != LinkIndicator::Connected {
                    ui.add(
                        egui::Label::new(egui::RichText::new(words).small().color(faint)).extend(),
                    );
                }
            });
        });
}

/// The roster in a few words: how many Followers show the Master's page, how many are free,
/// lagging or away.
pub fn roster_summary(sync: &SyncView, master: &View) -> Option<String> {
    if !words::session_open(sync.phase) || sync.roster.members.is_empty() {
        return None;
    }
    let s = sync.roster.summary(master);
    let mut line =
        format!("{}/{} on p. {}", s.on_page, s.members, master.page_index.saturating_add(1));
    for (n, what) in [(s.free, "free"), (s.lagging, "lagging"), (s.away, "away")] {
        if n > 0 {
            line.push_str(&format!(" · {n} {what}"));
        }
    }
    Some(line)
}

fn roster_line(ctx: &egui::Context, model: &UiModel, sync: &SyncView) {
    let Some(line) = roster_summary(sync, &model.position.view()) else { return };
    egui::Area::new(egui::Id::new("roster-line"))
        .anchor(egui::Align2::LEFT_TOP, egui::vec2(8.0, 6.0))
        .interactable(false)
        .show(ctx, |ui| {
            let text = egui::RichText::new(line).small().color(faint(model));
            ui.add(egui::Label::new(text).wrap_mode(egui::TextWrapMode::Extend));
        });
}

/// Follow/Free, one tap away, and while free the Master's page (a tap on it follows again).
fn follower_control(
    ctx: &egui::Context,
    model: &UiModel,
    sync: &SyncView,
    state: &mut UiState,
    out: &mut Vec<UiAction>,
) {
    if !words::follower_connected(sync.phase) {
        return;
    }
    let free = sync.phase == Some(maestral_sync::Phase::FollowerConnectedFree);
    // Finger-sized and readable, quiet in colour: hit mid-piece without looking twice.
    let shown = egui::Area::new(egui::Id::new("follow-control"))
        .anchor(egui::Align2::LEFT_TOP, egui::vec2(8.0, 6.0))
        .show(ctx, |ui| {
            ui.horizontal(|ui| {
                let quiet = |t: &str| egui::RichText::new(t).color(faint(model));
                if free {
                    if touch::button(ui, quiet(FOLLOW_CHIP)).clicked() {
                        out.push(UiAction::follow(FollowMode::Follow));
                    }
                    if let Some(master) = &sync.master {
                        let at = format!("Master: p. {}", master.page_index.saturating_add(1));
                        if touch::button(ui, quiet(&at)).clicked() {
                            out.push(UiAction::follow(FollowMode::Follow));
                        }
                    }
                } else if touch::button(ui, quiet(FREE_CHIP)).clicked() {
                    out.push(UiAction::follow(FollowMode::Free));
                }
            });
        });
    state.areas.push(shown.response.rect);
}

/// Where a page would be, when this device does not have the song: never a blank page, never
/// another song.
fn waiting_for_score(ctx: &egui::Context, model: &UiModel) {
    egui::Area::new(egui::Id::new("waiting-for-score"))
        .anchor(egui::Align2::CENTER_CENTER, egui::Vec2::ZERO)
        .interactable(false)
        .show(ctx, |ui| {
            ui.vertical_centered(|ui| {
                let colour = if model.projector.dark {
                    egui::Color32::from_gray(200)
                } else {
                    egui::Color32::from_gray(230)
                };
                let (heading, detail) = match model.receiving {
                    Some(percent) => (
                        match &model.receiving_title {
                            Some(title) => format!("Receiving «{title}» — {percent} %"),
                            None => format!("Receiving the score — {percent} %"),
                        },
                        "The Master is sending it to this device, to view only.",
                    ),
                    None => (
                        "Waiting for the score".to_owned(),
                        "The Master's song is not on this device.",
                    ),
                };
                ui.label(egui::RichText::new(heading).heading().color(colour));
                ui.label(egui::RichText::new(detail).color(colour));
            });
        });
}

/// The join code for the whole room: a QR as big as the screen allows, the code beneath, one
/// tap anywhere to close.
fn room_view(ctx: &egui::Context, sync: &SyncView, state: &mut UiState) {
    let Some(code) = sync.join_code.clone() else {
        state.room_view = false;
        return;
    };
    let screen = ctx.content_rect();
    let side = (screen.width().min(screen.height()) - 120.0).max(120.0);
    let response = egui::Area::new(egui::Id::new("room-view"))
        .fixed_pos(screen.min)
        .order(egui::Order::Foreground)
        .show(ctx, |ui| {
            ui.painter().rect_filled(screen, 0.0, egui::Color32::WHITE);
            let (rect, response) = ui.allocate_exact_size(screen.size(), egui::Sense::click());
            state.widgets.insert(ROOM_VIEW.to_owned(), rect);
            state.areas.push(rect);
            let mut inner = ui.new_child(
                egui::UiBuilder::new()
                    .max_rect(rect)
                    .layout(egui::Layout::top_down(egui::Align::Center)),
            );
            inner.add_space(20.0);
            qr::image(&mut inner, state, &code, side);
            let black = egui::Color32::BLACK;
            inner.label(egui::RichText::new("Scan to join · tap to close").color(black));
            inner.label(egui::RichText::new(crate::ui::words::SAME_WIFI).color(black));
            response
        });
    if response.inner.clicked() {
        state.room_view = false;
    }
}
