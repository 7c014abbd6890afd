//! The panel (egui): the library (the demo scores by default; open a file or folder), layout
//! and projector settings, Solo parity, the session's codes and state, recent problems. Hidden
//! while performing (a page turn hides it); Tab, Escape or a tap on the top strip shows it.
//! Always on screen, small and in a corner: the page indicator `n / m` and, in a session, a
//! dot for the link state (spec §10.1).

use bevy::ecs::system::SystemParam;
use bevy::prelude::*;
use bevy_egui::{EguiContexts, EguiInput, EguiInputSet, EguiPrimaryContextPass, egui};
use maestral_net::SyncCommand;
use maestral_protocol::Parity;
use maestral_sync::{LocalAction, Role};

use crate::model::{
    AppError, EnginePager, FollowedRemote, LayoutMode, LinkIndicator, LinkStatus,
    NavigationSystems, NumberEntry, OpenScore, PageTurnRequested, Position, Projector, Rotation,
    SessionCodes, SongChangeRequested, SongLibrary, UiVisible,
};
use crate::sync::SyncBridge;

pub fn plugin(app: &mut App) {
    app.init_resource::<Problems>()
        .init_resource::<OpenPath>()
        .init_resource::<PastedCode>()
        .init_resource::<CodeQr>()
        .add_systems(
            Update,
            (hide_while_performing.after(NavigationSystems::Apply), collect_problems),
        )
        .add_systems(PreUpdate, drop_unchanged_modifiers.after(EguiInputSet::WriteEguiEvents))
        .add_systems(EguiPrimaryContextPass, (indicators, panel).chain());
}

/// The last few problems, newest last, with when each came (`Time<Real>` elapsed).
#[derive(Resource, Debug, Default)]
pub struct Problems(pub Vec<(String, std::time::Duration)>);

/// How long the newest problem stays in the corner (it goes at the first frame after this).
const PROBLEM_SHOWN: std::time::Duration = std::time::Duration::from_secs(6);

#[derive(Resource, Debug, Default)]
struct OpenPath(String);

/// A code pasted from the other device (Solo pairing).
#[derive(Resource, Debug, Default)]
struct PastedCode(String);

/// The QR image of a code on show, made once per code.
#[derive(Resource, Default)]
struct CodeQr(Option<(String, egui::TextureHandle)>);

impl std::fmt::Debug for CodeQr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CodeQr")
    }
}

/// Shows `code` as a QR code (for a phone's camera) and as text to copy.
fn show_code(ui: &mut egui::Ui, qr: &mut CodeQr, code: &str) {
    let fresh = qr.0.as_ref().is_none_or(|(c, _)| c != code);
    if fresh {
        qr.0 = maestral_net::qr::qr_image_min_size(code, 240).ok().map(|img| {
            let size = [img.width() as usize, img.height() as usize];
            let image = egui::ColorImage::from_gray(size, img.as_raw());
            let texture = ui.ctx().load_texture("code-qr", image, egui::TextureOptions::NEAREST);
            (code.to_owned(), texture)
        });
    }
    if let Some((_, texture)) = &qr.0 {
        ui.image((texture.id(), egui::vec2(240.0, 240.0)));
    }
    ui.code(code);
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

fn indicators(
    mut contexts: EguiContexts,
    position: Res<Position>,
    library: Res<SongLibrary>,
    link: Res<LinkStatus>,
    entry: Res<NumberEntry>,
    projector: Res<Projector>,
    problems: Res<Problems>,
    visible: Res<UiVisible>,
    time: Res<Time<Real>>,
) -> Result {
    let ctx = contexts.ctx_mut()?;
    // The newest problem, for a few seconds, where it does not cover the music much.
    if let Some((message, at)) = problems.0.last()
        && !visible.0
        && time.elapsed().saturating_sub(*at) < PROBLEM_SHOWN
    {
        egui::Area::new(egui::Id::new("problem"))
            .anchor(egui::Align2::LEFT_BOTTOM, egui::vec2(8.0, -6.0))
            .interactable(false)
            .show(ctx, |ui| {
                ui.set_max_width(420.0);
                ui.label(
                    egui::RichText::new(message)
                        .small()
                        .color(egui::Color32::from_rgb(200, 90, 70)),
                );
            });
    }
    let faint =
        if projector.dark { egui::Color32::from_gray(110) } else { egui::Color32::from_gray(150) };
    let count = library.page_count(position.song.as_ref());
    let text = match (&position.song, count) {
        (None, _) => String::new(),
        (Some(_), Some(count)) => format!("{} / {count}", position.page.saturating_add(1)),
        (Some(_), None) => format!("{} / ?", position.page.saturating_add(1)),
    };
    let text = if entry.0.is_empty() { text } else { format!("go to page {}_", entry.0) };
    if !text.is_empty() {
        egui::Area::new(egui::Id::new("page-indicator"))
            .anchor(egui::Align2::RIGHT_BOTTOM, egui::vec2(-8.0, -6.0))
            .interactable(false)
            .show(ctx, |ui| ui.label(egui::RichText::new(text).small().color(faint)));
    }
    let (colour, words) = match link.indicator() {
        LinkIndicator::Alone => return Ok(()),
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
                if link.indicator() != LinkIndicator::Connected {
                    ui.label(egui::RichText::new(words).small().color(faint));
                }
            });
        });
    Ok(())
}

/// What the panel reads.
#[derive(SystemParam)]
struct Shown<'w> {
    position: Res<'w, Position>,
    library: Res<'w, SongLibrary>,
    link: Res<'w, LinkStatus>,
    codes: Res<'w, SessionCodes>,
    pager: Res<'w, EnginePager>,
    problems: Res<'w, Problems>,
    bridge: Option<Res<'w, SyncBridge>>,
}

/// What the panel edits and asks for.
#[derive(SystemParam)]
struct Edits<'w> {
    layout: ResMut<'w, LayoutMode>,
    projector: ResMut<'w, Projector>,
    open_path: ResMut<'w, OpenPath>,
    pasted: ResMut<'w, PastedCode>,
    qr: ResMut<'w, CodeQr>,
    songs: MessageWriter<'w, SongChangeRequested>,
    opens: MessageWriter<'w, OpenScore>,
    errors: MessageWriter<'w, AppError>,
}

fn panel(
    mut contexts: EguiContexts,
    mut visible: ResMut<UiVisible>,
    shown: Shown,
    edits: Edits,
) -> Result {
    if !visible.0 {
        return Ok(());
    }
    let Shown { position, library, link, codes, pager, problems, bridge } = shown;
    let Edits {
        mut layout,
        mut projector,
        mut open_path,
        mut pasted,
        mut qr,
        mut songs,
        mut opens,
        mut errors,
    } = edits;
    let ctx = contexts.ctx_mut()?;
    let mut hide = false;
    egui::Window::new("Maestral")
        .anchor(egui::Align2::LEFT_TOP, egui::vec2(8.0, 8.0))
        .resizable(false)
        .collapsible(false)
        .show(ctx, |ui| {
            ui.heading("Library");
            if library.scanning > 0 {
                ui.label("looking for scores…");
            }
            egui::ScrollArea::vertical().max_height(260.0).show(ui, |ui| {
                for song in library.songs() {
                    let id = song.id.clone();
                    let current = position.song.as_ref() == Some(&id);
                    let label = format!("{}  ({} p.)", song.title, song.page_count);
                    if ui.selectable_label(current, label).clicked() {
                        songs.write(SongChangeRequested(Some(id)));
                        hide = true;
                    }
                }
                for (_, reason) in &library.unreadable {
                    ui.colored_label(egui::Color32::from_rgb(190, 80, 60), reason);
                }
            });
            ui.horizontal(|ui| {
                ui.label("Open");
                let edit = ui.add(
                    egui::TextEdit::singleline(&mut open_path.0)
                        .hint_text("a PDF or a folder")
                        .desired_width(220.0),
                );
                let go = ui.button("Open").clicked()
                    || (edit.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter)));
                if go && !open_path.0.trim().is_empty() {
                    opens.write(OpenScore { path: open_path.0.trim().into(), show: true });
                    open_path.0.clear();
                }
            });

            ui.separator();
            ui.heading("Layout");
            ui.horizontal(|ui| {
                for mode in [LayoutMode::Single, LayoutMode::TwoUp, LayoutMode::DualWindow] {
                    ui.radio_value(&mut *layout, mode, mode.label());
                }
            });
            ui.horizontal(|ui| {
                ui.label("Rotate");
                for r in [Rotation::None, Rotation::Cw90, Rotation::Cw180, Rotation::Cw270] {
                    ui.radio_value(&mut projector.rotation, r, format!("{}°", r.degrees()));
                }
            });
            ui.checkbox(&mut projector.dark, "Dark pages");

            if let Some(bridge) = bridge.as_deref() {
                ui.separator();
                ui.heading("Together");
                let phase = link.phase.map_or("starting", |p| p.as_str());
                ui.label(format!("{} — {phase}", bridge.role().as_str()));
                if bridge.role() == Role::Solo {
                    ui.horizontal(|ui| {
                        ui.label("This device shows the");
                        for (p, words) in [(Parity::Odd, "odd"), (Parity::Even, "even")] {
                            // Paired, this device shows one half of each spread.
                            let chosen = pager.0.step() == 2
                                && pager.0.shows_second() == (p == Parity::Even);
                            if ui.selectable_label(chosen, words).clicked() {
                                bridge.local(LocalAction::SetParity { parity: p });
                            }
                        }
                        ui.label("pages");
                    });
                }
                if bridge.role() == Role::Solo && link.links.is_empty() {
                    if ui.button("Pair with another device: make a code").clicked() {
                        bridge.send(SyncCommand::SoloOffer);
                    }
                    ui.horizontal(|ui| {
                        ui.add(
                            egui::TextEdit::singleline(&mut pasted.0)
                                .hint_text("or paste the other device's code")
                                .desired_width(220.0),
                        );
                        if ui.button("Use").clicked() {
                            let code = pasted.0.trim().to_owned();
                            if code.starts_with("M1O:") {
                                bridge.send(SyncCommand::SoloAnswer(code));
                            } else if code.starts_with("M1A:") {
                                bridge.send(SyncCommand::SoloAccept(code));
                            } else if !code.is_empty() {
                                errors.write(AppError(
                                    "that is not a Maestral pairing code (they start M1O: or M1A:); copy the whole code from the other device".into(),
                                ));
                            }
                            pasted.0.clear();
                        }
                    });
                }
                if let Some(code) = &codes.join_code {
                    ui.label("Join code: singers scan it, or paste it");
                    show_code(ui, &mut qr, code);
                } else if let Some(code) = &codes.pair_code {
                    ui.label("Pairing code: scan or paste it on the other device");
                    show_code(ui, &mut qr, code);
                }
                for (peer, state) in &link.links {
                    ui.label(format!("{peer}: {}", state.as_str()));
                }
            }

            if !problems.0.is_empty() {
                ui.separator();
                for (message, _) in &problems.0 {
                    ui.colored_label(egui::Color32::from_rgb(190, 80, 60), message);
                }
            }
            ui.separator();
            if ui.button("Hide (Tab)").clicked() {
                hide = true;
            }
        });
    if hide {
        visible.0 = false;
    }
    Ok(())
}
