//! The DTLS certificate a link presents: generated, or loaded from its PEM text.

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use base64::Engine as _;
use rtc::crypto::SignatureScheme;
use rtc::peer_connection::certificate::CertificateParams;
use webrtc::peer_connection::{RTCCertificate, crypto};

use super::RtcError;

/// A DTLS certificate (ECDSA P-256) with its private key: one per Choir session, shared by every
/// peer connection of that session, and stored with it so a restarted Master keeps its
/// fingerprint. Cheap to clone. `Debug` shows only the fingerprint.
#[derive(Clone)]
pub struct DtlsCert {
    pub(super) cert: RTCCertificate,
    fingerprint: String,
    pem: String,
}

impl fmt::Debug for DtlsCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DtlsCert").field("fingerprint", &self.fingerprint).finish_non_exhaustive()
    }
}

impl DtlsCert {
    /// Generates a fresh self-signed certificate.
    pub fn generate() -> Result<Self, RtcError> {
        let provider = crypto_provider()?;
        let params = CertificateParams::new(vec!["maestral".to_owned()])
            .map_err(|e| RtcError::Certificate(e.to_string()))?;
        let cert =
            RTCCertificate::generate(provider.crypto(), SignatureScheme::EcdsaP256Sha256, params)
                .map_err(|e| RtcError::Certificate(e.to_string()))?;
        Self::wrap(cert, provider.crypto())
    }

    /// The certificate's fingerprint as SDP writes it: `sha-256 AB:CD:…` (32 upper-case hex
    /// pairs). Compare case-insensitively with fingerprints read elsewhere.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// The certificate and its private key as text (webrtc's PEM layout: an `EXPIRES` block, then
    /// `PRIVATE_KEY` and `CERTIFICATE`). Secret: store it like a password.
    pub fn to_pem(&self) -> &str {
        &self.pem
    }

    /// Loads a certificate written by [`to_pem`](Self::to_pem).
    pub fn from_pem(pem: &str) -> Result<Self, RtcError> {
        check_expires_block(pem)?;
        let provider = crypto_provider()?;
        let cert = RTCCertificate::from_pem(pem, provider.crypto()).map_err(|e| {
            RtcError::Certificate(format!("cannot load the stored certificate: {e}"))
        })?;
        if cert.expires <= SystemTime::now() {
            return Err(RtcError::Certificate(
                "the stored certificate has expired; generate a new one".to_owned(),
            ));
        }
        Self::wrap(cert, provider.crypto())
    }

    fn wrap(cert: RTCCertificate, crypto: &dyn crypto::RTCCrypto) -> Result<Self, RtcError> {
        let fingerprints =
            cert.get_fingerprints(crypto).map_err(|e| RtcError::Certificate(e.to_string()))?;
        let first = fingerprints
            .first()
            .ok_or_else(|| RtcError::Certificate("the certificate chain is empty".to_owned()))?;
        let fingerprint = format!(
            "{} {}",
            first.algorithm.to_ascii_lowercase(),
            first.value.to_ascii_uppercase()
        );
        let pem = cert.serialize_pem().map_err(|e| RtcError::Certificate(e.to_string()))?;
        Ok(Self { cert, fingerprint, pem })
    }
}

fn crypto_provider() -> Result<Arc<dyn crypto::RTCCryptoProvider>, RtcError> {
    crypto::default_provider().map_err(|e| RtcError::Certificate(e.to_string()))
}

/// `RTCCertificate::from_pem` slices the first 8 bytes of the `EXPIRES` block without checking
/// its length; reject a short one here so damaged input is an error, not a panic.
fn check_expires_block(pem: &str) -> Result<(), RtcError> {
    const BEGIN: &str = "-----BEGIN EXPIRES-----";
    const END: &str = "-----END EXPIRES-----";
    let damaged = || RtcError::Certificate("the stored certificate text is damaged".to_owned());
    let start = pem.find(BEGIN).ok_or_else(damaged)? + BEGIN.len();
    let len = pem[start..].find(END).ok_or_else(damaged)?;
    let body: String =
        pem[start..start + len].chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let bytes = base64::engine::general_purpose::STANDARD.decode(body).map_err(|_| damaged())?;
    if bytes.len() < 8 {
        return Err(damaged());
    }
    Ok(())
}
