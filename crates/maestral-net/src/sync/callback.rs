//! The Solo call-back's proof (`docs/protocol.md` §9; also the `solo` module's
//! doc): `M1C.<counter>.<hex HMAC-SHA-256>` under the callee's key, over both
//! ids, the caller's offer fingerprint and the counter; and the key each device makes.

use hmac::{Hmac, Mac};
use maestral_protocol::DeviceId;
use sha2::Sha256;

use crate::sig::{hex, hmac, unhex};

/// The prefix of a call-back's proof (`token`).
const PROOF_PREFIX: &str = "M1C.";
/// What a call-back's mac is computed over, before the ids, fingerprint and counter.
const PROOF_CONTEXT: &str = "maestral-solo-callback-v1";

/// A call-back's proof: `M1C.<counter>.<hex mac>` (see the module doc): the `token` that
/// `caller`, holding `key` (the one `callee` sent in `PAIR_INFO`), sends with an offer whose
/// DTLS fingerprint is `offer_fp` (`sha-256 AB:CD:…`). Public for tests that play a forger.
pub fn callback_proof(
    key: &str,
    caller: &DeviceId,
    callee: &DeviceId,
    offer_fp: &str,
    counter: u64,
) -> String {
    let mac = mac(key, caller, callee, offer_fp, counter).finalize().into_bytes();
    format!("{PROOF_PREFIX}{counter}.{}", hex(&mac))
}

/// The counter of a proof made with `key` by `caller` for `callee` over `offer_fp`; `None` for
/// anything else (the mac is compared in constant time).
pub(crate) fn verify(
    token: &str,
    key: &str,
    caller: &DeviceId,
    callee: &DeviceId,
    offer_fp: &str,
) -> Option<u64> {
    let rest = token.strip_prefix(PROOF_PREFIX)?;
    let (counter, hex) = rest.split_once('.')?;
    let counter: u64 = counter.parse().ok()?;
    if hex.len() != 64 {
        return None;
    }
    mac(key, caller, callee, offer_fp, counter).verify_slice(&unhex(hex)?).ok()?;
    Some(counter)
}

fn mac(
    key: &str,
    caller: &DeviceId,
    callee: &DeviceId,
    offer_fp: &str,
    counter: u64,
) -> Hmac<Sha256> {
    let fp = offer_fp.trim().to_ascii_uppercase();
    let fp = fp.strip_prefix("SHA-256 ").unwrap_or(&fp);
    hmac(key.as_bytes(), format!("{PROOF_CONTEXT}|{caller}|{callee}|{fp}|{counter}").as_bytes())
}

/// A pairing key: 128 bits, URL-safe base64.
pub(crate) fn new_key() -> String {
    use base64::Engine as _;
    let bytes: [u8; 16] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FP: &str = "sha-256 AB:CD:EF";

    fn ids() -> (DeviceId, DeviceId) {
        (DeviceId::new("maestral-a"), DeviceId::new("maestral-b"))
    }

    #[test]
    fn a_proof_verifies_only_for_its_key_ids_fingerprint_and_counter() {
        let (a, b) = ids();
        let token = callback_proof("key", &a, &b, FP, 42);
        assert!(token.starts_with("M1C.42."), "{token}");
        assert!(!token.contains("key"), "the key itself is never sent");
        assert_eq!(verify(&token, "key", &a, &b, FP), Some(42));
        assert_eq!(verify(&token, "key", &a, &b, "sha-256 ab:cd:ef"), Some(42), "fingerprint case");
        assert_eq!(verify(&token, "other", &a, &b, FP), None, "wrong key");
        assert_eq!(verify(&token, "key", &b, &a, FP), None, "ids swapped");
        assert_eq!(verify(&token, "key", &a, &b, "sha-256 AB:CD:00"), None, "another certificate");
        let bumped = token.replacen("M1C.42.", "M1C.43.", 1);
        assert_eq!(verify(&bumped, "key", &a, &b, FP), None, "counter changed");
        for garbage in ["", "M1C.", "M1C.1.", "M1C.x.00", "key", &token[..token.len() - 1]] {
            assert_eq!(verify(garbage, "key", &a, &b, FP), None, "{garbage:?}");
        }
    }
}
