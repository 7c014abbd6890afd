//! HMAC-SHA256 as this crate's proofs use it (the Solo call-back's, the locate query's and
//! answer's), and the lower-case hex that proofs and digests travel in.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// An HMAC-SHA256 keyed with `key`, over `message`.
pub(crate) fn hmac(key: &[u8], message: &[u8]) -> Hmac<Sha256> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC accepts every key length"));
    mac.update(message);
    mac
}

/// `bytes` as lower-case hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The bytes of an even-length hex string (either case); `None` for anything else.
pub(crate) fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len() / 2).map(|i| u8::from_str_radix(s.get(i * 2..i * 2 + 2)?, 16).ok()).collect()
}
