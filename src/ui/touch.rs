//! Controls sized for fingers and text for a music stand: every control is at least
//! [`MIN_TARGET`] logical pixels tall and wide, times the UI size the performer chose
//! ([`crate::model::UiSize`]), and so is the text around them.
//!
//! Why logical pixels, not millimetres: the goal is 9 mm on the display, but winit (and so Bevy)
//! tells a window's scale factor and a monitor's size in pixels, never its size in millimetres.
//! The scale factor is the system's own statement of pixel density, relative to a reference
//! of 96 pixels an inch: 48 logical pixels are 12.7 mm there, and still 9 mm on a screen denser
//! than its scale factor says by up to 40 %. A denser screen (a 27-inch 4K monitor left at
//! scale 1: 7.5 mm) is what the UI size setting is for; docs/guide.md says so.

use bevy_egui::egui;

/// The least side of a control, in logical pixels, at UI size 100 %.
pub const MIN_TARGET: f32 = 48.0;
/// The UI sizes the panel offers (the command line takes any in between).
pub const SIZES: [f32; 3] = [1.0, 1.5, 2.0];
/// The smallest and largest UI size.
pub const MIN_SCALE: f32 = 1.0;
pub const MAX_SCALE: f32 = 3.0;

/// Sets the style for UI size `scale` (text, spacing, the least control size), once per change.
pub fn apply(ctx: &egui::Context, scale: f32) {
    let scale = scale.clamp(MIN_SCALE, MAX_SCALE);
    let id = egui::Id::new("maestral-ui-size");
    if ctx.data(|d| d.get_temp::<f32>(id)) == Some(scale) {
        return;
    }
    ctx.data_mut(|d| d.insert_temp(id, scale));
    ctx.all_styles_mut(|style| {
        use egui::TextStyle;
        for (text, size) in [
            (TextStyle::Small, 15.0),
            (TextStyle::Body, 18.0),
            (TextStyle::Button, 19.0),
            (TextStyle::Heading, 26.0),
            (TextStyle::Monospace, 16.0),
        ] {
            if let Some(font) = style.text_styles.get_mut(&text) {
                font.size = size * scale;
            }
        }
        let s = &mut style.spacing;
        s.interact_size = egui::vec2(MIN_TARGET, MIN_TARGET) * scale;
        s.button_padding = egui::vec2(14.0, 8.0) * scale;
        s.item_spacing = egui::vec2(10.0, 8.0) * scale;
        s.icon_width = 26.0 * scale;
        s.icon_width_inner = 14.0 * scale;
        s.icon_spacing = 8.0 * scale;
        s.text_edit_width = 280.0 * scale;
        // The one narrower control: a finger scrolls the panel by dragging its content, and the
        // bar (wider than egui's own, never floating over buttons) is for a mouse.
        s.scroll.bar_width = 16.0 * scale;
        s.scroll.floating = false;
    });
}

/// The least size of a control here.
pub fn target(ui: &egui::Ui) -> egui::Vec2 {
    ui.spacing().interact_size
}

/// A button at least [`target`] in both directions.
pub fn button(ui: &mut egui::Ui, text: impl Into<egui::WidgetText>) -> egui::Response {
    ui.add(egui::Button::new(text).min_size(target(ui)))
}

/// A choice (one of several, or on/off): a button that shows whether it is selected, at least
/// [`target`] in both directions. Used for every option, never a small radio or check box.
pub fn choice(
    ui: &mut egui::Ui,
    selected: bool,
    text: impl Into<egui::WidgetText>,
) -> egui::Response {
    ui.add(egui::Button::selectable(selected, text).min_size(target(ui)))
}

/// A one-line text field, [`target`] tall.
pub fn text_field<'t>(text: &'t mut String, ui: &egui::Ui) -> egui::TextEdit<'t> {
    egui::TextEdit::singleline(text).min_size(egui::vec2(0.0, target(ui).y))
}
