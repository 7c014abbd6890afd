//! Input: keys and page-turn pedals (a pedal is a keyboard sending PageDown/PageUp or arrows),
//! tap and click zones, swipes, Home/End, number entry to jump, fullscreen, and the key that
//! shows the panel. Every turn becomes a [`PageTurnRequested`].
//!
//! A pedal's key repeat or a bouncing switch never turns two pages: OS auto-repeat is ignored,
//! and so is a second press of the same key without a release in between, or within
//! [`Debounce::window`] of the first.

use std::collections::HashMap;
use std::time::Duration;

use bevy::input::ButtonState;
use bevy::input::keyboard::{KeyboardFocusLost, KeyboardInput};
use bevy::input::mouse::MouseButtonInput;
use bevy::input::touch::{TouchInput, TouchPhase};
use bevy::prelude::*;
use bevy::window::{MonitorSelection, WindowMode};
use bevy_egui::input::EguiWantsInput;

use crate::model::{Gesture, NavigationSystems, NumberEntry, PageTurnRequested, Turn, UiVisible};
use crate::setlist::PieceRequested;
use crate::ui::UiState;

/// Needs Bevy's `InputPlugin` (part of `DefaultPlugins`) for the key, mouse and touch messages.
pub fn plugin(app: &mut App) {
    app.init_resource::<Debounce>()
        .add_systems(
            Update,
            (focus_lost, keyboard_turns, (mouse_gestures, touch_gestures), gesture_turns)
                .chain()
                .in_set(NavigationSystems::Input),
        )
        .add_systems(Last, debounce_frame_end);
}

/// Keeps a pedal's bouncing switch from turning two pages: a press of a key counts only if
/// that key was released since its last counted press, and `window` has passed.
///
/// Bevy's key events carry no time of their own, and all those that came during a frame are
/// read at the start of the next one. So a press that counts is taken to have happened as late
/// as the end of the frame that read it ([`Debounce::frame_ended`]): a bounce that comes in
/// during a long frame is read in the frame right after it, well within `window` of that end.
#[derive(Resource, Debug, Clone)]
pub struct Debounce {
    pub window: Duration,
    keys: HashMap<KeyCode, KeyState>,
}

#[derive(Debug, Clone, Copy, Default)]
struct KeyState {
    /// When the last press that counted happened, at the latest.
    counted_at: Option<Duration>,
    /// Counted in this frame: `counted_at` moves to the frame's end.
    this_frame: bool,
    /// Pressed and not released since.
    down: bool,
    /// When it went down (a release lost, e.g. to another window, is given up on after
    /// [`RELEASE_LOST_AFTER`]).
    down_at: Duration,
}

/// A key seen held down this long without a release is taken as released (the release went
/// to another window, or the device sends none).
pub const RELEASE_LOST_AFTER: Duration = Duration::from_secs(2);

impl Default for Debounce {
    fn default() -> Self {
        Debounce { window: Duration::from_millis(150), keys: HashMap::new() }
    }
}

impl Debounce {
    /// A press of `key` read at `now` (the frame's time): true if it counts.
    pub fn press(&mut self, key: KeyCode, now: Duration) -> bool {
        let window = self.window;
        let state = self.keys.entry(key).or_default();
        let released = !state.down || now.saturating_sub(state.down_at) >= RELEASE_LOST_AFTER;
        let later = match state.counted_at {
            None => true,
            Some(_) if state.this_frame => false,
            Some(at) => now.saturating_sub(at) >= window,
        };
        if !state.down {
            state.down = true;
            state.down_at = now;
        }
        if !(released && later) {
            return false;
        }
        state.down_at = now;
        state.counted_at = Some(now);
        state.this_frame = true;
        true
    }

    /// A release of `key`: its next press may count.
    pub fn release(&mut self, key: KeyCode) {
        if let Some(state) = self.keys.get_mut(&key) {
            state.down = false;
        }
    }

    /// Every key counts as released (the window lost the keyboard: releases go elsewhere).
    pub fn release_all(&mut self) {
        for state in self.keys.values_mut() {
            state.down = false;
        }
    }

    /// The frame that counted presses ended at `end`: their time is that, at the latest.
    pub fn frame_ended(&mut self, end: Duration) {
        for state in self.keys.values_mut().filter(|s| s.this_frame) {
            state.this_frame = false;
            state.counted_at = state.counted_at.max(Some(end));
        }
    }
}

/// The end of this frame, on `Time<Real>`'s clock: its time plus the real time the frame's
/// work took. A test's manual clock moves only between frames.
fn debounce_frame_end(
    mut debounce: ResMut<Debounce>,
    time: Res<Time<Real>>,
    strategy: Option<Res<bevy::time::TimeUpdateStrategy>>,
) {
    if !debounce.keys.values().any(|s| s.this_frame) {
        return;
    }
    debounce.frame_ended(debounce_now(&time, strategy.as_deref()));
}

/// "Now" for the debounce: one monotonic clock read when it is asked, in a real run.
/// (`Time<Real>` is stamped when the previous frame was rendered: after an idle spell it is
/// seconds old, which would make a press look as early as the last frame's end.) Under a
/// test's manual clock, that clock.
fn debounce_now(time: &Time<Real>, strategy: Option<&bevy::time::TimeUpdateStrategy>) -> Duration {
    static ORIGIN: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    match strategy {
        None | Some(bevy::time::TimeUpdateStrategy::Automatic) => {
            ORIGIN.get_or_init(std::time::Instant::now).elapsed()
        }
        Some(_) => time.elapsed(),
    }
}

fn focus_lost(mut lost: MessageReader<KeyboardFocusLost>, mut debounce: ResMut<Debounce>) {
    if lost.read().count() > 0 {
        debounce.release_all();
    }
}

/// What a key does to the page, if anything.
pub fn key_turn(key: KeyCode) -> Option<Turn> {
    Some(match key {
        KeyCode::PageDown | KeyCode::ArrowRight | KeyCode::ArrowDown | KeyCode::Space => Turn::Next,
        KeyCode::PageUp | KeyCode::ArrowLeft | KeyCode::ArrowUp => Turn::Prev,
        KeyCode::Home => Turn::First,
        KeyCode::End => Turn::Last,
        _ => return None,
    })
}

/// What a key does to the piece, if anything: a pedal's second pair of keys (`]` / `[`, or the
/// media keys "next track" / "previous track" that pedals in media mode send).
pub fn key_piece(key: KeyCode) -> Option<PieceRequested> {
    Some(match key {
        KeyCode::BracketRight | KeyCode::MediaTrackNext => PieceRequested::Next,
        KeyCode::BracketLeft | KeyCode::MediaTrackPrevious => PieceRequested::Prev,
        _ => return None,
    })
}

fn digit(key: KeyCode) -> Option<char> {
    use KeyCode::*;
    let d = match key {
        Digit0 | Numpad0 => '0',
        Digit1 | Numpad1 => '1',
        Digit2 | Numpad2 => '2',
        Digit3 | Numpad3 => '3',
        Digit4 | Numpad4 => '4',
        Digit5 | Numpad5 => '5',
        Digit6 | Numpad6 => '6',
        Digit7 | Numpad7 => '7',
        Digit8 | Numpad8 => '8',
        Digit9 | Numpad9 => '9',
        _ => return None,
    };
    Some(d)
}

fn keyboard_turns(
    mut keys: MessageReader<KeyboardInput>,
    mut turns: MessageWriter<PageTurnRequested>,
    mut pieces: MessageWriter<PieceRequested>,
    mut debounce: ResMut<Debounce>,
    mut entry: ResMut<NumberEntry>,
    mut ui: ResMut<UiVisible>,
    mut windows: Query<&mut Window>,
    egui: Option<Res<EguiWantsInput>>,
    dialog: Option<Res<crate::open::OpenDialog>>,
    time: Res<Time<Real>>,
    strategy: Option<Res<bevy::time::TimeUpdateStrategy>>,
) {
    // Typing in the panel, or choosing a file: keys are not page turns.
    let typing =
        egui.is_some_and(|e| e.wants_any_keyboard_input()) || dialog.is_some_and(|d| d.is_open());
    for key in keys.read() {
        // Releases and the OS's auto-repeat never turn a page.
        if key.state == ButtonState::Released {
            debounce.release(key.key_code);
            continue;
        }
        if key.repeat || typing {
            continue;
        }
        let code = key.key_code;
        if let Some(d) = digit(code) {
            if entry.0.len() < 6 {
                entry.0.push(d);
            }
            continue;
        }
        match code {
            KeyCode::Enter | KeyCode::NumpadEnter if !entry.0.is_empty() => {
                let typed: Option<u32> = entry.0.parse().ok();
                entry.0.clear();
                // The performer counts pages from 1.
                if let Some(page) = typed.and_then(|n| n.checked_sub(1)) {
                    turns.write(PageTurnRequested(Turn::To(page)));
                }
                continue;
            }
            KeyCode::Backspace if !entry.0.is_empty() => {
                entry.0.pop();
                continue;
            }
            KeyCode::Escape if !entry.0.is_empty() => {
                entry.0.clear();
                continue;
            }
            KeyCode::Escape | KeyCode::Tab => {
                ui.0 = !ui.0;
                continue;
            }
            KeyCode::F11 | KeyCode::KeyF => {
                if let Ok(mut window) = windows.get_mut(key.window) {
                    window.mode = match window.mode {
                        WindowMode::Windowed => {
                            WindowMode::BorderlessFullscreen(MonitorSelection::Current)
                        }
                        _ => WindowMode::Windowed,
                    };
                }
                continue;
            }
            _ => {}
        }
        if let Some(turn) = key_turn(code)
            && debounce.press(code, debounce_now(&time, strategy.as_deref()))
        {
            turns.write(PageTurnRequested(turn));
        }
        if let Some(step) = key_piece(code)
            && debounce.press(code, debounce_now(&time, strategy.as_deref()))
        {
            pieces.write(step);
        }
    }
}

/// Where a left-button press started, per window.
#[derive(Default)]
struct Presses(HashMap<Entity, Vec2>);

fn mouse_gestures(
    mut buttons: MessageReader<MouseButtonInput>,
    windows: Query<&Window>,
    mut presses: Local<Presses>,
    mut gestures: MessageWriter<Gesture>,
    egui: Option<Res<EguiWantsInput>>,
    ui: Option<Res<UiState>>,
    dialog: Option<Res<crate::open::OpenDialog>>,
) {
    // Over the UI, or choosing a file (the picker is the UI's): taps are not turns.
    let over_ui =
        egui.is_some_and(|e| e.wants_any_pointer_input()) || dialog.is_some_and(|d| d.is_open());
    let covered = |at: Vec2| ui.as_ref().is_some_and(|u| u.covers(at.x, at.y));
    for input in buttons.read() {
        if input.button != MouseButton::Left {
            continue;
        }
        let Some(at) = windows.get(input.window).ok().and_then(Window::cursor_position) else {
            continue;
        };
        match input.state {
            ButtonState::Pressed if !over_ui && !covered(at) => {
                presses.0.insert(input.window, at);
            }
            ButtonState::Pressed => {}
            ButtonState::Released => {
                if let Some(start) = presses.0.remove(&input.window) {
                    gestures.write(Gesture { window: input.window, start, end: at });
                }
            }
        }
    }
}

fn touch_gestures(
    mut touches: MessageReader<TouchInput>,
    mut starts: Local<HashMap<u64, Vec2>>,
    mut gestures: MessageWriter<Gesture>,
    egui: Option<Res<EguiWantsInput>>,
    ui: Option<Res<UiState>>,
    dialog: Option<Res<crate::open::OpenDialog>>,
) {
    // Over the UI, or choosing a file (the picker is the UI's): taps are not turns.
    let over_ui =
        egui.is_some_and(|e| e.wants_any_pointer_input()) || dialog.is_some_and(|d| d.is_open());
    let covered = |at: Vec2| ui.as_ref().is_some_and(|u| u.covers(at.x, at.y));
    for touch in touches.read() {
        match touch.phase {
            TouchPhase::Started if !over_ui && !covered(touch.position) => {
                starts.insert(touch.id, touch.position);
            }
            TouchPhase::Ended => {
                if let Some(start) = starts.remove(&touch.id) {
                    gestures.write(Gesture { window: touch.window, start, end: touch.position });
                }
            }
            TouchPhase::Canceled => {
                starts.remove(&touch.id);
            }
            _ => {}
        }
    }
}

/// What a gesture means in a window of `size` (logical pixels).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GestureAction {
    Turn(Turn),
    ToggleUi,
    Nothing,
}

/// Taps: the top strip shows or hides the panel, the left part turns back, the rest turns on.
/// Swipes: right to left turns on, left to right turns back.
pub fn gesture_action(size: Vec2, start: Vec2, end: Vec2) -> GestureAction {
    let d = end - start;
    let swipe = (size.x * 0.05).max(40.0);
    if d.x.abs() >= swipe && d.x.abs() > 1.5 * d.y.abs() {
        return GestureAction::Turn(if d.x < 0.0 { Turn::Next } else { Turn::Prev });
    }
    if d.length() > 12.0 {
        return GestureAction::Nothing;
    }
    if end.y < size.y * 0.12 {
        GestureAction::ToggleUi
    } else if end.x < size.x * 0.4 {
        GestureAction::Turn(Turn::Prev)
    } else {
        GestureAction::Turn(Turn::Next)
    }
}

fn gesture_turns(
    mut gestures: MessageReader<Gesture>,
    windows: Query<&Window>,
    mut turns: MessageWriter<PageTurnRequested>,
    mut ui: ResMut<UiVisible>,
) {
    for g in gestures.read() {
        let Ok(window) = windows.get(g.window) else { continue };
        match gesture_action(window.size(), g.start, g.end) {
            GestureAction::Turn(turn) => {
                turns.write(PageTurnRequested(turn));
            }
            GestureAction::ToggleUi => ui.0 = !ui.0,
            GestureAction::Nothing => {}
        }
    }
}
