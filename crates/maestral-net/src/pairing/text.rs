//! The text of a pairing code: its prefix, and base43 over the QR alphanumeric alphabet.

use super::{PairingCodeError, PairingKind};

/// The QR alphanumeric alphabet less space and `*` (see the module docs).
const BASE43: &[u8; 43] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ$%+-./:";

/// Splits a code into its kind and payload, telling apart the usual mistakes.
pub(super) fn split_prefix(code: &str) -> Result<(PairingKind, &str), PairingCodeError> {
    let code = code.trim();
    if crate::joincode::looks_like_join_code(code) {
        return Err(PairingCodeError::IsJoinCode);
    }
    let (Some(head), Some(payload)) = (code.get(..4), code.get(4..)) else {
        return Err(PairingCodeError::NotAPairingCode);
    };
    let head = head.as_bytes();
    if !(head[0].eq_ignore_ascii_case(&b'M') && head[3] == b':') {
        return Err(PairingCodeError::NotAPairingCode);
    }
    let kind = match head[2].to_ascii_uppercase() {
        b'O' => PairingKind::Offer,
        b'A' => PairingKind::Answer,
        _ => return Err(PairingCodeError::NotAPairingCode),
    };
    match head[1] {
        b'1' => Ok((kind, payload)),
        d @ b'0'..=b'9' => Err(PairingCodeError::UnsupportedVersion(d - b'0')),
        _ => Err(PairingCodeError::NotAPairingCode),
    }
}

pub(super) fn base43_encode(bytes: &[u8], out: &mut String) {
    for chunk in bytes.chunks(2) {
        // Two bytes make three digits, a last odd byte two (43² > 255).
        let mut n = chunk.iter().fold(0u32, |n, &b| n << 8 | u32::from(b));
        let digits = if chunk.len() == 2 { 3 } else { 2 };
        // Least significant digit first, as RFC 9285 writes base45.
        for _ in 0..digits {
            out.push(BASE43[(n % 43) as usize] as char);
            n /= 43;
        }
    }
}

pub(super) fn base43_decode(text: &str) -> Result<Vec<u8>, PairingCodeError> {
    let mut digits = Vec::with_capacity(text.len());
    for c in text.chars().filter(|c| !c.is_whitespace()) {
        let upper = c.to_ascii_uppercase();
        let value = u8::try_from(upper)
            .ok()
            .and_then(|b| BASE43.iter().position(|&x| x == b))
            .ok_or(PairingCodeError::BadCharacter(c))?;
        digits.push(value as u32);
    }
    if digits.is_empty() {
        return Err(PairingCodeError::Truncated);
    }
    let mut out = Vec::with_capacity(digits.len() * 2 / 3 + 1);
    for group in digits.chunks(3) {
        match *group {
            [a, b, c] => {
                let n = a + b * 43 + c * 43 * 43;
                let n = u16::try_from(n)
                    .map_err(|_| PairingCodeError::Corrupt("bad character group"))?;
                out.extend_from_slice(&n.to_be_bytes());
            }
            [a, b] => {
                let n = a + b * 43;
                out.push(
                    u8::try_from(n)
                        .map_err(|_| PairingCodeError::Corrupt("bad character group"))?,
                );
            }
            _ => return Err(PairingCodeError::Truncated),
        }
    }
    Ok(out)
}
