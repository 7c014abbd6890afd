//! A picture file's QR code, read on a worker thread (never in a frame: it reads and decodes
//! a whole photo).

use std::path::Path;

use maestral_net::qr::{QrError, decode_qr};

use super::file_name;

/// The text of the QR code in the picture at `path` (PNG or JPEG, told by its content), or the
/// one message that says why there is none.
pub fn read_qr_file(path: &Path) -> Result<String, String> {
    let name = file_name(path);
    let unreadable = |e: &dyn std::fmt::Display| {
        format!("{name} is not an image the app can read: {e}; open a PNG or JPEG picture")
    };
    let image = image::ImageReader::open(path)
        .map_err(|e| unreadable(&e))?
        .with_guessed_format()
        .map_err(|e| unreadable(&e))?
        .decode()
        .map_err(|e| unreadable(&e))?;
    decode_qr(&image).map_err(|e| match e {
        QrError::NotFound => {
            format!("no QR code found in {name}; take a picture of the join code the Master shows")
        }
        other => format!("{name}: {other}"),
    })
}
