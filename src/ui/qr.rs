//! A code as a QR image (for a phone's camera across the room) and as text with a copy button.

use bevy_egui::egui;

use super::view::UiState;

/// The words a screen reader (and a test) finds on the QR image.
pub const QR_ALT: &str = "QR code to scan";

/// Draws `code` as a QR code `side` points wide, made once per code.
pub fn image(ui: &mut egui::Ui, state: &mut UiState, code: &str, side: f32) {
    let fresh = state.qr.as_ref().is_none_or(|(c, _)| c != code);
    if fresh {
        state.qr = maestral_net::qr::qr_image_min_size(code, 480).ok().map(|img| {
            let size = [img.width() as usize, img.height() as usize];
            let image = egui::ColorImage::from_gray(size, img.as_raw());
            let texture = ui.ctx().load_texture("code-qr", image, egui::TextureOptions::NEAREST);
            (code.to_owned(), texture)
        });
    }
    if let Some((_, texture)) = &state.qr {
        let sized = egui::load::SizedTexture::new(texture.id(), egui::vec2(side, side));
        ui.add(egui::Image::new(sized).alt_text(QR_ALT));
    }
}

/// The code as text to select, and a button that copies it.
pub fn text(ui: &mut egui::Ui, code: &str) {
    ui.horizontal(|ui| {
        if super::touch::button(ui, "Copy").clicked() {
            ui.ctx().copy_text(code.to_owned());
        }
        ui.add(egui::Label::new(egui::RichText::new(code).monospace().small()).wrap());
    });
}
