//! The panel: the library (open a score, pick one), the set list, layout and projector settings, playing
//! together (see `together`), recent problems. Hidden while performing.

use bevy_egui::egui;

use super::together;
use super::view::{UiAction, UiModel, UiState};
use crate::model::{LayoutMode, Rotation};

pub fn draw(ctx: &egui::Context, model: &UiModel, state: &mut UiState, out: &mut Vec<UiAction>) {
    if !model.panel {
        return;
    }
    let shown = egui::Window::new("Maestral")
        .anchor(egui::Align2::LEFT_TOP, egui::vec2(8.0, 8.0))
        .resizable(false)
        .collapsible(false)
        .show(ctx, |ui| {
            library(ui, model, state, out);
            ui.separator();
            super::setlist::draw(ui, model, state, out);
            ui.separator();
            layout(ui, model, out);
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
            if ui.button("Hide (Tab)").clicked() {
                out.push(UiAction::HidePanel);
            }
        });
    if let Some(shown) = shown {
        state.areas.push(shown.response.rect);
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
            if ui.selectable_label(current, label).clicked() {
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
        let edit = ui.add(
            egui::TextEdit::singleline(&mut state.open_path)
                .hint_text("or type a PDF's or a folder's path")
                .desired_width(220.0),
        );
        let go = ui.button("Open").clicked()
            || (edit.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter)));
        if go && !state.open_path.trim().is_empty() {
            out.push(UiAction::Open(state.open_path.trim().into()));
            state.open_path.clear();
        }
    });
    ui.label(egui::RichText::new("or drop a PDF or a folder on the window").small());
}

fn layout(ui: &mut egui::Ui, model: &UiModel, out: &mut Vec<UiAction>) {
    ui.heading("Layout");
    ui.horizontal(|ui| {
        for mode in
            [LayoutMode::Single, LayoutMode::HalfTurns, LayoutMode::TwoUp, LayoutMode::DualWindow]
        {
            if ui.radio(model.layout == mode, mode.label()).clicked() {
                out.push(UiAction::Layout(mode));
            }
        }
    });
    ui.horizontal(|ui| {
        ui.label("Rotate");
        for r in [Rotation::None, Rotation::Cw90, Rotation::Cw180, Rotation::Cw270] {
            let chosen = model.projector.rotation == r;
            if ui.radio(chosen, format!("{}°", r.degrees())).clicked() {
                out.push(UiAction::Rotation(r));
            }
        }
    });
    let mut dark = model.projector.dark;
    if ui.checkbox(&mut dark, "Dark pages").changed() {
        out.push(UiAction::Dark(dark));
    }
}
