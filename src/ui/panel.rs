//! The panel: the library (open a score, pick one), the set list, layout, projector and size
//! settings, playing together (see `together`), recent problems. Hidden while performing. Every
//! control is sized for a finger (`touch`).

use bevy_egui::egui;

use super::view::{UiAction, UiModel, UiState};
use super::{together, touch};
use crate::model::{LayoutMode, Rotation};

pub fn draw(ctx: &egui::Context, model: &UiModel, state: &mut UiState, out: &mut Vec<UiAction>) {
    if !model.panel {
        return;
    }
    // As tall as the window allows; larger controls make a taller panel, and then it scrolls:
    // nothing is out of reach.
    let tall = (ctx.content_rect().height() - 80.0).max(200.0);
    let shown = egui::Window::new("Maestral")
        .anchor(egui::Align2::LEFT_TOP, egui::vec2(8.0, 8.0))
        .resizable(false)
        .collapsible(false)
        .show(ctx, |ui| {
            egui::ScrollArea::vertical()
                .id_salt("panel")
                .max_height(tall)
                .min_scrolled_height(tall)
                .show(ui, |ui| {
                    contents(ui, model, state, out);
                });
        });
    if let Some(shown) = shown {
        state.areas.push(shown.response.rect);
    }
}

fn contents(ui: &mut egui::Ui, model: &UiModel, state: &mut UiState, out: &mut Vec<UiAction>) {
    library(ui, model, state, out);
    ui.separator();
    super::setlist::draw(ui, model, state, out);
    ui.separator();
    layout(ui, model, state, out);
    if let Some(sync) = &model.sync {
        ui.separator();
        together::draw(ui, model, sync, state, out);
    }
    if !model.problems.is_empty() {
        ui.separator();
        for message in &model.problems {
            ui.colored_label(egui::Color32::from_rgb(190, 80, 60), message);
        }
    }
    ui.separator();
    if touch::button(ui, "Hide (Tab)").clicked() {
        out.push(UiAction::HidePanel);
    }
}

fn library(ui: &mut egui::Ui, model: &UiModel, state: &mut UiState, out: &mut Vec<UiAction>) {
    ui.heading("Library");
    match model.scanning {
        Some(Some((done, total))) if total > 0 => {
            let progress = done as f32 / total as f32;
            ui.add(
                egui::ProgressBar::new(progress)
                    .text(format!("reading scores: {done} of {total}"))
                    .desired_width(300.0),
            );
        }
        Some(_) => {
            ui.add(egui::ProgressBar::new(0.0).text("looking for scores").animate(true));
        }
        None => {}
    }
    egui::ScrollArea::vertical().max_height(260.0).show(ui, |ui| {
        for song in &model.songs {
            let current = model.position.song.as_ref() == Some(&song.id);
            let label = if song.streamed {
                format!("{}  ({} p.) · streamed, view-only", song.title, song.pages)
            } else {
                format!("{}  ({} p.)", song.title, song.pages)
            };
            if touch::choice(ui, current, label).clicked() {
                out.push(UiAction::Song(song.id.clone()));
                out.push(UiAction::HidePanel);
            }
        }
        for reason in &model.unreadable {
            ui.colored_label(egui::Color32::from_rgb(190, 80, 60), reason);
        }
    });
    ui.horizontal(|ui| {
        if state.button(ui, "Open a score…").clicked() {
            out.push(UiAction::PickScore);
        }
        let field = touch::text_field(&mut state.open_path, ui);
        let edit =
            ui.add(field.hint_text("or type a PDF's or a folder's path").desired_width(220.0));
        let go = touch::button(ui, "Open").clicked()
            || (edit.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter)));
        if go && !state.open_path.trim().is_empty() {
            out.push(UiAction::Open(state.open_path.trim().into()));
            state.open_path.clear();
        }
    });
    ui.label(egui::RichText::new("or drop a PDF or a folder on the window").small());
}

fn layout(ui: &mut egui::Ui, model: &UiModel, state: &mut UiState, out: &mut Vec<UiAction>) {
    ui.heading("Layout");
    ui.horizontal_wrapped(|ui| {
        for mode in
            [LayoutMode::Single, LayoutMode::HalfTurns, LayoutMode::TwoUp, LayoutMode::DualWindow]
        {
            if state.choice(ui, model.layout == mode, mode.label()).clicked() {
                out.push(UiAction::Layout(mode));
            }
        }
    });
    ui.horizontal_wrapped(|ui| {
        ui.label("Rotate");
        for r in [Rotation::None, Rotation::Cw90, Rotation::Cw180, Rotation::Cw270] {
            let chosen = model.projector.rotation == r;
            if state.choice(ui, chosen, &format!("{}°", r.degrees())).clicked() {
                out.push(UiAction::Rotation(r));
            }
        }
        let dark = model.projector.dark;
        if state.choice(ui, dark, "Dark pages").clicked() {
            out.push(UiAction::Dark(!dark));
        }
    });
    ui.horizontal_wrapped(|ui| {
        ui.label("Controls");
        let size = model.size;
        for scale in touch::SIZES {
            let chosen = (size.scale - scale).abs() < 0.01;
            if state.choice(ui, chosen, &format!("{:.0} %", scale * 100.0)).clicked() {
                out.push(UiAction::Size(crate::model::UiSize { scale, ..size }));
            }
        }
        let large = size.large_page_number;
        if state.choice(ui, large, LARGE_PAGE_NUMBER).clicked() {
            out.push(UiAction::Size(crate::model::UiSize { large_page_number: !large, ..size }));
        }
    });
}

/// The label of the choice that makes the page number large.
pub const LARGE_PAGE_NUMBER: &str = "Large page number";
