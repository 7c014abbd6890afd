//! QR images of join and pairing codes, as grey-scale images for the app's screen and as PNG,
//! and the way back: [`decode_qr`] reads the code in a picture (a photo of the Master's screen).
//!
//! Error correction is level M (15 % of the symbol may be lost): a screen is clean but a phone
//! camera at arm's length meets glare and moiré, and level M keeps the codes Maestral makes at
//! version 5–7 (see the tests). The encoder picks the smallest version and the cheapest modes
//! itself, so a pairing code (upper case only) is encoded in alphanumeric mode.

use std::io::Cursor;

use image::imageops::FilterType;
use image::{DynamicImage, GrayImage, ImageFormat, Luma};
use qrcode::{EcLevel, QrCode, Version};
use thiserror::Error;

/// Pixels per module in [`qr_png`]: sharp on any screen, ~360 px for a version 5 code.
pub const DEFAULT_MODULE_PX: u32 = 8;

/// The light border around the symbol, in modules: the 4 the QR standard asks for, without
/// which many phone readers fail next to other screen content.
pub const QUIET_ZONE_MODULES: u32 = 4;

/// Why no QR image was made.
#[derive(Debug, Error)]
pub enum QrImageError {
    /// The text does not fit one QR code.
    #[error("this code is too long to fit one QR code ({0} bytes) — show it as text instead")]
    TooLong(usize),
    /// The encoder refused the text for another reason.
    #[error("could not make a QR code: {0}")]
    Encode(qrcode::types::QrError),
    /// Writing the PNG failed.
    #[error("could not write the QR code as PNG: {0}")]
    Png(#[from] image::ImageError),
}

/// Size of the QR symbol a text needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QrInfo {
    /// QR version, 1 to 40 (version v is 17 + 4v modules wide).
    pub version: u8,
    /// Width of the symbol in modules, without the quiet zone.
    pub modules: u32,
}

fn encode(text: &str) -> Result<QrCode, QrImageError> {
    QrCode::with_error_correction_level(text.as_bytes(), EcLevel::M).map_err(|e| match e {
        qrcode::types::QrError::DataTooLong => QrImageError::TooLong(text.len()),
        other => QrImageError::Encode(other),
    })
}

/// The QR version and width `text` needs at Maestral's error correction level.
pub fn qr_info(text: &str) -> Result<QrInfo, QrImageError> {
    let code = encode(text)?;
    let version = match code.version() {
        Version::Normal(v) | Version::Micro(v) => v,
    };
    Ok(QrInfo { version: u8::try_from(version).unwrap_or(0), modules: code.width() as u32 })
}

/// A QR image of `text`: black modules of `module_px` × `module_px` pixels (at least 1) on
/// white, with the quiet zone.
pub fn qr_image(text: &str, module_px: u32) -> Result<GrayImage, QrImageError> {
    let code = encode(text)?;
    let px = module_px.max(1);
    Ok(code.render::<Luma<u8>>().quiet_zone(true).module_dimensions(px, px).build())
}

/// A QR image of `text` at least `min_px` pixels wide (quiet zone included), with whole-pixel
/// modules so that no module is blurred by scaling.
pub fn qr_image_min_size(text: &str, min_px: u32) -> Result<GrayImage, QrImageError> {
    let code = encode(text)?;
    Ok(code.render::<Luma<u8>>().quiet_zone(true).min_dimensions(min_px, min_px).build())
}

/// A PNG of [`qr_image`] at [`DEFAULT_MODULE_PX`].
pub fn qr_png(text: &str) -> Result<Vec<u8>, QrImageError> {
    let image = qr_image(text, DEFAULT_MODULE_PX)?;
    let mut png = Vec::new();
    image.write_to(&mut Cursor::new(&mut png), ImageFormat::Png)?;
    Ok(png)
}

/// Why no text was read from an image.
#[derive(Debug, Error)]
pub enum QrError {
    /// Nothing in the image looks like a QR code.
    #[error("no QR code found")]
    NotFound,
    /// A QR code was found but its modules could not be read (blurred, cut off, glare).
    #[error(
        "a QR code was found but could not be read ({0}); take the photo again, closer and straight on"
    )]
    Unreadable(rqrr::DeQRError),
}

/// Photos larger than this (in pixels, either side) are also tried scaled down: a phone photo
/// is 4000 px wide, and the code in it is often read better (and much faster) at this size.
const DECODE_MAX_SIDE: u32 = 1600;

/// The text of the first readable QR code in `image` (a screenshot or a photo, any colour type).
pub fn decode_qr(image: &DynamicImage) -> Result<String, QrError> {
    let mut first_error = None;
    let mut tries = Vec::with_capacity(2);
    if image.width().max(image.height()) > DECODE_MAX_SIDE {
        tries.push(image.resize(DECODE_MAX_SIDE, DECODE_MAX_SIDE, FilterType::Triangle).to_luma8());
    }
    tries.push(image.to_luma8());
    for grey in tries {
        match decode_grey(grey) {
            Ok(text) => return Ok(text),
            Err(QrError::NotFound) => {}
            Err(error) => {
                first_error.get_or_insert(error);
            }
        }
    }
    Err(first_error.unwrap_or(QrError::NotFound))
}

fn decode_grey(grey: GrayImage) -> Result<String, QrError> {
    let mut prepared = rqrr::PreparedImage::prepare(grey);
    let mut error = None;
    for grid in prepared.detect_grids() {
        match grid.decode() {
            Ok((_, text)) => return Ok(text),
            Err(e) => {
                error.get_or_insert(QrError::Unreadable(e));
            }
        }
    }
    Err(error.unwrap_or(QrError::NotFound))
}
