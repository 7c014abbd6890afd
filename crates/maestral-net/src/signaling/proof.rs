//! A refusal the Master can prove. `403 invalid_token`, `session_ended` and `device_in_use`
//! carry the Master's certificate and its signature over what it refused, so a Follower takes a
//! refusal for good only from the Master its join code pins. Any other device can answer at the
//! code's address (the Master moved and another took it) or at an address a forged locate answer
//! names; its `403` is only a failed attempt, tried again (`docs/protocol.md` §6.2).
//!
//! What is signed binds the refusal to the request it answers, so a token holder cannot collect
//! a signed refusal and replay it to a singer: the reason, the session id, the token presented,
//! the device id, and the certificate fingerprint of the offer. A Master never signs
//! `invalid_token` or `session_ended` for a singer's own request (its right token, in a running
//! session). `device_in_use` is signed too, but a Follower lets it end nothing (a token holder
//! who learned a singer's id first can make it true: `sync::error`).

use base64::Engine as _;
use ring::signature::{ECDSA_P256_SHA256_ASN1, UnparsedPublicKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{JoinRequestBody, RejectReason};
use crate::joincode::fingerprints_match;
use crate::rtc::{DtlsCert, sha256_fingerprint};

/// What a signed refusal carries besides its reason: the Master's certificate (DER) and its
/// ECDSA P-256 signature (ASN.1 DER) over [`statement`], both in standard base64.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefusalProof {
    /// The Master's DTLS certificate: its SHA-256 is the fingerprint the join code pins.
    pub cert: String,
    /// The signature with that certificate's key.
    pub sig: String,
}

/// Larger fields are not a Maestral certificate or signature: not decoded at all.
const MAX_CERT_CHARS: usize = 4096;
const MAX_SIG_CHARS: usize = 256;

/// The bytes signed for refusing `request` with `reason`: a JSON array, so no field can run
/// into the next.
fn statement(reason: RejectReason, request: &JoinRequestBody) -> Vec<u8> {
    let offered =
        sha256_fingerprint(&request.offer).map(|f| f.to_ascii_lowercase()).unwrap_or_default();
    let fields = [
        "maestral-refusal/1",
        reason.as_str(),
        request.session_id.as_str(),
        request.token.expose(),
        request.device_id.as_str(),
        offered.as_str(),
    ];
    serde_json::to_vec(&fields).unwrap_or_default()
}

/// The Master's proof that it refuses `request` with `reason`; `None` if its key could not sign
/// (the refusal is then sent unproven, and a Follower tries again).
pub fn prove(
    cert: &DtlsCert,
    reason: RejectReason,
    request: &JoinRequestBody,
) -> Option<RefusalProof> {
    let sig = cert.sign(&statement(reason, request)).ok()?;
    let b64 = base64::engine::general_purpose::STANDARD;
    Some(RefusalProof { cert: b64.encode(cert.der()), sig: b64.encode(sig) })
}

/// Whether `proof` shows that the certificate `pinned` (a join code's fingerprint,
/// `sha-256 AB:…`) refused `request` with `reason`.
pub fn verify(
    pinned: &str,
    reason: RejectReason,
    request: &JoinRequestBody,
    proof: &RefusalProof,
) -> bool {
    if proof.cert.len() > MAX_CERT_CHARS || proof.sig.len() > MAX_SIG_CHARS {
        return false;
    }
    let b64 = base64::engine::general_purpose::STANDARD;
    let (Ok(der), Ok(sig)) = (b64.decode(&proof.cert), b64.decode(&proof.sig)) else {
        return false;
    };
    let hex: Vec<String> = Sha256::digest(&der).iter().map(|b| format!("{b:02X}")).collect();
    if !fingerprints_match(&format!("sha-256 {}", hex.join(":")), pinned) {
        return false;
    }
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(&der) else { return false };
    let key = &cert.public_key().subject_public_key.data;
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, key.as_ref())
        .verify(&statement(reason, request), &sig)
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use maestral_protocol::SessionToken;

    fn request(token: &str, device: &str, cert: &DtlsCert) -> JoinRequestBody {
        JoinRequestBody {
            session_id: "S1".into(),
            token: SessionToken::new(token),
            device_id: device.into(),
            offer: format!("v=0\r\na=fingerprint:{}\r\n", cert.fingerprint()),
        }
    }

    #[test]
    fn the_masters_refusal_is_believed_only_for_the_request_it_answered() {
        let master = DtlsCert::generate().expect("a certificate");
        let singer = DtlsCert::generate().expect("a certificate");
        let asked = request("wrong-token", "singer", &singer);
        let proof = prove(&master, RejectReason::InvalidToken, &asked).expect("the Master signs");
        assert!(verify(master.fingerprint(), RejectReason::InvalidToken, &asked, &proof));
        // The fingerprint compares whatever its case.
        let lower = master.fingerprint().to_ascii_lowercase();
        assert!(verify(&lower, RejectReason::InvalidToken, &asked, &proof));
        // Another reason, another session, token, device or certificate: not this refusal.
        assert!(!verify(master.fingerprint(), RejectReason::SessionEnded, &asked, &proof));
        let mut other = asked.clone();
        other.session_id = "S2".into();
        assert!(!verify(master.fingerprint(), RejectReason::InvalidToken, &other, &proof));
        let right = request("right-token", "singer", &singer);
        assert!(!verify(master.fingerprint(), RejectReason::InvalidToken, &right, &proof));
        let someone = request("wrong-token", "someone", &singer);
        assert!(!verify(master.fingerprint(), RejectReason::InvalidToken, &someone, &proof));
        let another = DtlsCert::generate().expect("a certificate");
        let elsewhere = request("wrong-token", "singer", &another);
        assert!(!verify(master.fingerprint(), RejectReason::InvalidToken, &elsewhere, &proof));
    }

    #[test]
    fn a_refusal_signed_by_any_other_certificate_is_not_the_masters() {
        let master = DtlsCert::generate().expect("a certificate");
        let fake = DtlsCert::generate().expect("a certificate");
        let singer = DtlsCert::generate().expect("a certificate");
        let asked = request("right-token", "singer", &singer);
        // Signed by the fake device with its own certificate: checked against the pinned one.
        let proof = prove(&fake, RejectReason::SessionEnded, &asked).expect("signed");
        assert!(verify(fake.fingerprint(), RejectReason::SessionEnded, &asked, &proof));
        assert!(!verify(master.fingerprint(), RejectReason::SessionEnded, &asked, &proof));
        // The Master's certificate with the fake's signature.
        let real = prove(&master, RejectReason::SessionEnded, &asked).expect("signed");
        let mixed = RefusalProof { cert: real.cert.clone(), sig: proof.sig };
        assert!(!verify(master.fingerprint(), RejectReason::SessionEnded, &asked, &mixed));
    }

    #[test]
    fn damaged_or_oversized_proofs_are_no_proof() {
        let master = DtlsCert::generate().expect("a certificate");
        let asked = request("t", "singer", &master);
        let real = prove(&master, RejectReason::DeviceInUse, &asked).expect("signed");
        let pinned = master.fingerprint();
        let cases = [
            RefusalProof { cert: "not base64!".into(), sig: real.sig.clone() },
            RefusalProof { cert: real.cert.clone(), sig: "%%%".into() },
            RefusalProof { cert: String::new(), sig: String::new() },
            RefusalProof { cert: "A".repeat(MAX_CERT_CHARS + 4), sig: real.sig.clone() },
            RefusalProof { cert: real.cert.clone(), sig: "A".repeat(MAX_SIG_CHARS + 4) },
            RefusalProof { cert: real.cert[..real.cert.len() / 2].into(), sig: real.sig.clone() },
        ];
        for (i, proof) in cases.iter().enumerate() {
            assert!(!verify(pinned, RejectReason::DeviceInUse, &asked, proof), "case {i}");
        }
        assert!(verify(pinned, RejectReason::DeviceInUse, &asked, &real));
    }
}
