//! The panel's set list section: choose the list in use, its pieces with the one shown marked
//! (tap one to show it; move it up or down; remove it), add the score shown, go to the next or
//! previous piece, and make, rename or delete a list.

use bevy_egui::egui;

use super::touch;
use super::view::{SetListsView, UiAction, UiModel, UiState};
use crate::setlist::{PieceRequested, SetListEdit};

/// Button labels (the `widget` command and the tests find buttons by them).
pub const ADD_SHOWN: &str = "Add the score shown";
pub const NEXT_PIECE: &str = "Next piece ▶";
pub const PREV_PIECE: &str = "◀ Previous piece";
pub const NEW_LIST: &str = "New set list";
pub const RENAME_LIST: &str = "Rename";
pub const DELETE_LIST: &str = "Delete set list";
pub const NO_LIST: &str = "None";

pub fn draw(ui: &mut egui::Ui, model: &UiModel, state: &mut UiState, out: &mut Vec<UiAction>) {
    let sets = &model.set_lists;
    ui.heading("Set list");
    ui.horizontal_wrapped(|ui| {
        if touch::choice(ui, sets.in_use.is_none(), NO_LIST).clicked() && sets.in_use.is_some() {
            out.push(UiAction::SetList(SetListEdit::Off));
        }
        for name in &sets.names {
            let chosen = sets.in_use.as_ref().is_some_and(|(n, _)| n == name);
            if touch::choice(ui, chosen, name).clicked() && !chosen {
                out.push(UiAction::SetList(SetListEdit::Use(name.clone())));
            }
        }
    });
    if let Some((_, pieces)) = &sets.in_use {
        pieces_list(ui, sets, pieces, out);
        ui.horizontal(|ui| {
            let shown = model.position.song.clone();
            if state.button(ui, ADD_SHOWN).clicked() {
                match shown {
                    Some(song) => out.push(UiAction::SetList(SetListEdit::Add(song))),
                    None => out.push(UiAction::Error(crate::setlist::NOTHING_SHOWN.into())),
                }
            }
            if state.button(ui, PREV_PIECE).clicked() {
                out.push(UiAction::Piece(PieceRequested::Prev));
            }
            if state.button(ui, NEXT_PIECE).clicked() {
                out.push(UiAction::Piece(PieceRequested::Next));
            }
        });
    }
    ui.horizontal(|ui| {
        let field = touch::text_field(&mut state.set_list_name, ui);
        ui.add(field.hint_text("a set list's name").desired_width(180.0));
        let name = state.set_list_name.trim().to_owned();
        if state.button(ui, NEW_LIST).clicked() && !name.is_empty() {
            out.push(UiAction::SetList(SetListEdit::New(name.clone())));
            state.set_list_name.clear();
        }
        if sets.in_use.is_some() {
            if state.button(ui, RENAME_LIST).clicked() && !name.is_empty() {
                out.push(UiAction::SetList(SetListEdit::Rename(name)));
                state.set_list_name.clear();
            }
            if state.button(ui, DELETE_LIST).clicked() {
                out.push(UiAction::SetList(SetListEdit::Delete));
            }
        }
    });
}

fn pieces_list(
    ui: &mut egui::Ui,
    sets: &SetListsView,
    pieces: &[(maestral_protocol::SongId, Option<String>)],
    out: &mut Vec<UiAction>,
) {
    if pieces.is_empty() {
        ui.label("Empty: show a score and add it.");
        return;
    }
    egui::ScrollArea::vertical().id_salt("set list").max_height(220.0).show(ui, |ui| {
        for (i, (_, title)) in pieces.iter().enumerate() {
            ui.horizontal(|ui| {
                let current = sets.current == Some(i);
                let name = title.clone().unwrap_or_else(|| "(not on this device)".into());
                let label = format!("{}. {name}", i + 1);
                if touch::choice(ui, current, label).clicked() && title.is_some() {
                    out.push(UiAction::Piece(PieceRequested::At(i)));
                }
                if i > 0 && touch::button(ui, "↑").clicked() {
                    out.push(UiAction::SetList(SetListEdit::Move { from: i, to: i - 1 }));
                }
                if i + 1 < pieces.len() && touch::button(ui, "↓").clicked() {
                    out.push(UiAction::SetList(SetListEdit::Move { from: i, to: i + 1 }));
                }
                if touch::button(ui, "✕").clicked() {
                    out.push(UiAction::SetList(SetListEdit::Remove(i)));
                }
            });
        }
    });
}
