//! The DTLS certificate a link presents: generated, or loaded from its PEM text.

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use base64::Engine as _;
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair};
use rtc::crypto::SignatureScheme;
use rtc::peer_connection::certificate::CertificateParams;
use webrtc::peer_connection::{RTCCertificate, crypto};

use super::RtcError;

/// A DTLS certificate (ECDSA P-256) with its private key: one per Choir session, shared by every
/// peer connection of that session, and stored with it so a restarted Master keeps its
/// fingerprint. Its key also signs the Master's refusals (`signaling::proof`). Cheap to clone.
/// `Debug` shows only the fingerprint.
#[derive(Clone)]
pub struct DtlsCert {
    pub(super) cert: RTCCertificate,
    fingerprint: String,
    pem: String,
    /// The certificate as DER (what the fingerprint is the SHA-256 of).
    der: Arc<[u8]>,
    /// The certificate's private key, for [`sign`](Self::sign).
    key: Arc<EcdsaKeyPair>,
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

    /// The certificate itself (DER): its SHA-256 is [`fingerprint`](Self::fingerprint).
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// `message` signed with the certificate's key (ECDSA P-256 with SHA-256, the signature in
    /// ASN.1 DER), checked with the public key in [`der`](Self::der).
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, RtcError> {
        let signature = self
            .key
            .sign(&SystemRandom::new(), message)
            .map_err(|_| RtcError::Certificate("could not sign with the certificate".to_owned()))?;
        Ok(signature.as_ref().to_vec())
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
        let unusable =
            |what: &str| RtcError::Certificate(format!("the certificate's {what} is unusable"));
        let der: Arc<[u8]> = pem_block(&pem, "CERTIFICATE").ok_or_else(|| unusable("body"))?.into();
        let pkcs8 = pem_block(&pem, "PRIVATE_KEY").ok_or_else(|| unusable("key"))?;
        let key =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &pkcs8, &SystemRandom::new())
                .map_err(|_| unusable("key (not ECDSA P-256)"))?;
        Ok(Self { cert, fingerprint, pem, der, key: Arc::new(key) })
    }
}

fn crypto_provider() -> Result<Arc<dyn crypto::RTCCryptoProvider>, RtcError> {
    crypto::default_provider().map_err(|e| RtcError::Certificate(e.to_string()))
}

/// `RTCCertificate::from_pem` slices the first 8 bytes of the `EXPIRES` block without checking
/// its length; reject a short one here so damaged input is an error, not a panic.
fn check_expires_block(pem: &str) -> Result<(), RtcError> {
    match pem_block(pem, "EXPIRES") {
        Some(bytes) if bytes.len() >= 8 => Ok(()),
        _ => Err(RtcError::Certificate("the stored certificate text is damaged".to_owned())),
    }
}

/// The bytes of the first PEM block tagged `tag` (base64 between its `BEGIN` and `END` lines).
fn pem_block(pem: &str, tag: &str) -> Option<Vec<u8>> {
    let (begin, end) = (format!("-----BEGIN {tag}-----"), format!("-----END {tag}-----"));
    let start = pem.find(&begin)? + begin.len();
    let len = pem[start..].find(&end)?;
    let body: String =
        pem[start..start + len].chars().filter(|c| !c.is_ascii_whitespace()).collect();
    base64::engine::general_purpose::STANDARD.decode(body).ok()
}
