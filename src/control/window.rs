//! The window extras of `--control`: keys, taps, screenshots, `presented` and `stats` events.
//! They read the layout's plan and slots, so they come with the layout plugin.

use std::path::PathBuf;

use bevy::diagnostic::FrameCount;
use bevy::input::ButtonState;
use bevy::input::keyboard::{Key, KeyboardInput, NativeKey};
use bevy::prelude::*;
use bevy::render::view::screenshot::{Screenshot, ScreenshotCaptured};
use bevy::window::RequestRedraw;
use crossbeam_channel::{Receiver, Sender};
use serde_json::{Value, json};

use super::parse::{ControlEvent, WindowCommand};
use super::run::{WindowControl, run_commands};
use super::write::ControlOutput;
use crate::layout::{PageSlot, Plan};
use crate::model::{
    AppError, ControlSystems, Gesture, PageTextures, PageWindow, PagesPresented, Position,
};
use crate::ui::UiState;
use crate::wake::Waker;

pub fn plugin(app: &mut App) {
    app.insert_resource(WindowControl)
        .init_resource::<PendingScreenshots>()
        .init_resource::<AwaitingPresent>()
        .init_resource::<SavedScreenshots>()
        .add_systems(First, report_frame_presented)
        .add_systems(
            PreUpdate,
            window_commands.in_set(ControlSystems::Commands).after(run_commands),
        )
        .add_systems(
            Last,
            (report_presented, take_screenshots, report_screenshots).in_set(ControlSystems::Report),
        );
}

#[derive(Resource, Debug, Default)]
struct PendingScreenshots(Vec<(PathBuf, u8)>);

fn window_commands(
    mut commands: MessageReader<WindowCommand>,
    mut keys: MessageWriter<KeyboardInput>,
    mut gestures: MessageWriter<Gesture>,
    mut pending: ResMut<PendingScreenshots>,
    mut events: MessageWriter<ControlEvent>,
    windows: Query<(Entity, &PageWindow)>,
    textures: Res<PageTextures>,
    position: Res<Position>,
    frame: Res<FrameCount>,
    mut ui: Option<ResMut<UiState>>,
) {
    let window_of = |index: u8| windows.iter().find(|(_, w)| w.index == index).map(|(e, _)| e);
    for command in commands.read() {
        match command {
            WindowCommand::Key(key_code) => {
                let Some(window) = window_of(0) else { continue };
                for state in [ButtonState::Pressed, ButtonState::Released] {
                    keys.write(KeyboardInput {
                        key_code: *key_code,
                        logical_key: Key::Unidentified(NativeKey::Unidentified),
                        state,
                        text: None,
                        repeat: false,
                        window,
                    });
                }
            }
            WindowCommand::Tap { x, y, window } => {
                if let Some(window) = window_of(*window) {
                    let at = Vec2::new(*x, *y);
                    gestures.write(Gesture { window, start: at, end: at });
                }
            }
            WindowCommand::Screenshot { path, window } => {
                pending.0.push((path.clone(), *window));
            }
            WindowCommand::Widget(label) => {
                // Always a `widget` event, never an `AppError`: a question from automation is
                // not a problem for the performer (an error would show in the panel).
                let rect = ui.as_ref().and_then(|ui| ui.widgets.get(label)).copied();
                // Not wholly in view (a panel scrolled elsewhere): scrolled to it by the next
                // frame, as a performer would; this answer says it is not drawn yet.
                if rect.is_none()
                    && let Some(ui) = ui.as_mut()
                {
                    ui.reveal = Some(label.clone());
                }
                let mut event =
                    json!({ "event": "widget", "label": label, "drawn": rect.is_some() });
                if let Some(rect) = rect {
                    event["x"] = json!(rect.min.x);
                    event["y"] = json!(rect.min.y);
                    event["width"] = json!(rect.width());
                    event["height"] = json!(rect.height());
                }
                events.write(ControlEvent(event));
            }
            WindowCommand::Stats => {
                events.write(ControlEvent(json!({
                    "event": "stats",
                    "frames": frame.0,
                    "textures": textures.len(),
                    "page_index": position.page,
                })));
            }
        }
    }
}

/// The frame of the last swap, until the frame after it starts (by then it was drawn and
/// handed to the screen).
#[derive(Resource, Debug, Default)]
struct AwaitingPresent(Option<u32>);

/// `frame_presented`: the frame with the last swap has been drawn and presented. Written at
/// once (not in `Last`), so its time on standard output is that of the present.
fn report_frame_presented(
    mut awaiting: ResMut<AwaitingPresent>,
    frame: Res<FrameCount>,
    out: Res<ControlOutput>,
) {
    if let Some(swapped) = awaiting.0
        && frame.0 != swapped
    {
        awaiting.0 = None;
        out.write(&json!({"event": "frame_presented", "frame": swapped}));
    }
}

fn report_presented(
    mut presented: MessageReader<PagesPresented>,
    mut events: MessageWriter<ControlEvent>,
    mut awaiting: ResMut<AwaitingPresent>,
    mut redraw: MessageWriter<RequestRedraw>,
) {
    for p in presented.read() {
        // One more frame, to say when this one was on screen.
        awaiting.0 = Some(p.frame);
        redraw.write(RequestRedraw);
        let pages: Vec<Value> = p
            .pages
            .iter()
            .map(|page| {
                json!({
                    "window": page.window_index,
                    "slot": page.slot,
                    "page": page.page,
                    "part": page.part.as_str(),
                    "x": page.rect.x,
                    "y": page.rect.y,
                    "width": page.rect.width,
                    "height": page.rect.height,
                    "exact": page.exact,
                })
            })
            .collect();
        events.write(ControlEvent(json!({
            "event": "presented",
            "frame": p.frame,
            "pages": pages,
            "since_turn_ms": p.since_turn.map(|(t, _)| t.as_secs_f64() * 1000.0),
            "since_turn_frames": p.since_turn.map(|(_, f)| f),
        })));
    }
}

fn take_screenshots(
    mut commands: Commands,
    mut pending: ResMut<PendingScreenshots>,
    plan: Res<Plan>,
    slots: Query<&PageSlot>,
    windows: Query<(Entity, &PageWindow)>,
    capturing: Query<(), With<Screenshot>>,
    mut redraw: MessageWriter<RequestRedraw>,
) {
    let slots: Vec<&PageSlot> = slots.iter().collect();
    let mut waiting = Vec::new();
    let mut spawned = false;
    for (path, index) in pending.0.drain(..) {
        let window = windows.iter().find(|(_, w)| w.index == index).map(|(e, _)| e);
        match window {
            Some(window) if plan.settled(index, &slots) => {
                commands.spawn(Screenshot::window(window)).observe(save_screenshot(path));
                spawned = true;
            }
            _ => waiting.push((path, index)),
        }
    }
    pending.0 = waiting;
    // A reactive app sleeps when nothing changes: keep frames coming until the capture is in.
    if spawned || !pending.0.is_empty() || !capturing.is_empty() {
        redraw.write(RequestRedraw);
    }
}

/// Screenshots saved (or not) by their threads: the `screenshot` event, or the error.
#[derive(Resource, Debug)]
struct SavedScreenshots {
    tx: Sender<Result<Value, String>>,
    rx: Receiver<Result<Value, String>>,
}

impl Default for SavedScreenshots {
    fn default() -> Self {
        let (tx, rx) = crossbeam_channel::unbounded();
        SavedScreenshots { tx, rx }
    }
}

/// The capture arrives on the main thread; encoding and writing the PNG happen on a thread
/// of their own, and the `screenshot` event comes when the file is there.
fn save_screenshot(
    path: PathBuf,
) -> impl FnMut(On<ScreenshotCaptured>, Res<SavedScreenshots>, Res<Waker>) {
    move |captured, saved, waker| {
        let image = captured.image.clone();
        let (path, tx, waker) = (path.clone(), saved.tx.clone(), waker.clone());
        let save = move || {
            let result = image.try_into_dynamic().map_err(|e| e.to_string()).and_then(|img| {
                let rgba = img.to_rgba8();
                rgba.save(&path).map_err(|e| e.to_string()).map(|()| rgba.dimensions())
            });
            let _ = tx.send(match result {
                Ok((width, height)) => Ok(json!({
                    "event": "screenshot",
                    "path": path.display().to_string(),
                    "width": width,
                    "height": height,
                })),
                Err(error) => {
                    Err(format!("could not save the screenshot {}: {error}", path.display()))
                }
            });
            waker.wake();
        };
        if let Err(error) =
            std::thread::Builder::new().name("maestral-screenshot".into()).spawn(save)
        {
            let _ = saved.tx.send(Err(format!("could not save the screenshot: {error}")));
        }
    }
}

fn report_screenshots(
    saved: Res<SavedScreenshots>,
    mut events: MessageWriter<ControlEvent>,
    mut errors: MessageWriter<AppError>,
) {
    for result in saved.rx.try_iter() {
        match result {
            Ok(event) => {
                events.write(ControlEvent(event));
            }
            Err(message) => {
                errors.write(AppError(message));
            }
        }
    }
}
