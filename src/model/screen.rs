//! The screen as the plugins share it: layout and projector settings, the page windows, what
//! each swap put on screen, gestures, the page number being typed, and whether the panel is
//! shown.

use std::time::Duration;

use bevy::prelude::*;

/// How pages are laid out.
#[derive(Resource, Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LayoutMode {
    /// One page (on a Solo pair: this device's half of the spread).
    #[default]
    Single,
    /// A spread in one window: odd page left, even page right.
    TwoUp,
    /// One window per monitor (or two windows side by side): odd page in the first, even page
    /// in the second.
    DualWindow,
    /// One page, turned in two halves: the first "next" shows the top half of the next page
    /// above the bottom half of this one ([`crate::model::HalfTurn`]), the second completes it.
    HalfTurns,
}

impl LayoutMode {
    /// Two pages on show at once, so turns move by a spread.
    pub fn shows_spread(self) -> bool {
        matches!(self, LayoutMode::TwoUp | LayoutMode::DualWindow)
    }

    pub fn label(self) -> &'static str {
        match self {
            LayoutMode::Single => "Single page",
            LayoutMode::TwoUp => "Two pages",
            LayoutMode::DualWindow => "Two windows",
            LayoutMode::HalfTurns => "Half-page turns",
        }
    }
}

/// Turning the picture for a projector or a screen on its side (clockwise).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Rotation {
    #[default]
    None,
    Cw90,
    Cw180,
    Cw270,
}

impl Rotation {
    pub fn from_degrees(degrees: u16) -> Self {
        match degrees % 360 {
            90 => Rotation::Cw90,
            180 => Rotation::Cw180,
            270 => Rotation::Cw270,
            _ => Rotation::None,
        }
    }

    pub fn degrees(self) -> u16 {
        match self {
            Rotation::None => 0,
            Rotation::Cw90 => 90,
            Rotation::Cw180 => 180,
            Rotation::Cw270 => 270,
        }
    }

    /// The page's width runs along the screen's height.
    pub fn swaps_axes(self) -> bool {
        matches!(self, Rotation::Cw90 | Rotation::Cw270)
    }

    /// A content-space offset (x right, y down) as seen on screen.
    pub(crate) fn apply(self, x: f32, y: f32) -> (f32, f32) {
        match self {
            Rotation::None => (x, y),
            Rotation::Cw90 => (-y, x),
            Rotation::Cw180 => (-x, -y),
            Rotation::Cw270 => (y, -x),
        }
    }
}

/// Projector options: rotation, and dark (inverted) pages. Pages always fit their box.
#[derive(Resource, Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Projector {
    pub rotation: Rotation,
    pub dark: bool,
}

/// A window that shows pages: index 0 is the main one; in the dual layout it shows the odd page
/// (counted from 1) and window 1 the even one.
#[derive(Component, Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageWindow {
    pub index: u8,
}

/// A box in physical pixels, x right and y down from the top left.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PixelRect {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
}

/// The slots swapped to new content this frame (for tests, the control output, benchmarks).
#[derive(Message, Debug, Clone, PartialEq)]
pub struct PagesPresented {
    pub frame: u32,
    pub pages: Vec<PresentedPage>,
    /// Time and frames since the local turn (or song change) this swap answers, if any.
    pub since_turn: Option<(Duration, u32)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresentedPage {
    pub window_index: u8,
    pub slot: u8,
    pub page: Option<u32>,
    /// Which part of the page is drawn (all of it but in a half-page turn).
    pub part: PagePart,
    /// Where the page is drawn on screen (window pixels, after rotation).
    pub rect: PixelRect,
    /// The texture was drawn for exactly this box (not an older size shown scaled).
    pub exact: bool,
}

/// The part of a page a slot draws, where the page as a whole would be.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum PagePart {
    #[default]
    Whole,
    /// The top half (the next page, in a half-page turn).
    Top,
    /// The bottom half (the page being left).
    Bottom,
}

impl PagePart {
    pub fn as_str(self) -> &'static str {
        match self {
            PagePart::Whole => "whole",
            PagePart::Top => "top",
            PagePart::Bottom => "bottom",
        }
    }
}

/// A finished pointer or touch movement, in a window's logical pixels: a tap when it barely
/// moved, a swipe when it moved far enough sideways.
#[derive(Message, Debug, Clone, Copy, PartialEq)]
pub struct Gesture {
    pub window: Entity,
    pub start: Vec2,
    pub end: Vec2,
}

/// Digits typed to jump to a page (as the performer counts: from 1), until Enter.
#[derive(Resource, Debug, Clone, Default, PartialEq, Eq)]
pub struct NumberEntry(pub String);

/// How large the UI is drawn: `scale` times the finger-sized least (`crate::ui::touch`), and
/// whether the page number on the performing screen is large enough to read from a distance.
#[derive(Resource, Debug, Clone, Copy, PartialEq)]
pub struct UiSize {
    pub scale: f32,
    pub large_page_number: bool,
}

impl Default for UiSize {
    fn default() -> Self {
        UiSize { scale: 1.0, large_page_number: false }
    }
}

/// Whether the panel is shown.
#[derive(Resource, Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UiVisible(pub bool);
