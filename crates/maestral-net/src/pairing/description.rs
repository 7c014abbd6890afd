//! What a pairing code carries, read from an SDP and written back as one.

use std::net::{IpAddr, SocketAddr};

use super::binary::ice_value;
use super::text::{base43_decode, base43_encode, split_prefix};
use super::{
    DEFAULT_MID, DEFAULT_SCTP_PORT, DtlsSetup, MAX_CANDIDATES_PER_FAMILY, PairingCodeError,
    PairingKind,
};
use crate::joincode::{FINGERPRINT_LEN, format_sha256_fingerprint, parse_sha256_fingerprint};
use crate::rtc::sdp::Sdp;

/// What a code carries: everything of an SDP that a single data-channel connection needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairingDescription {
    /// `a=ice-ufrag`.
    pub ice_ufrag: String,
    /// `a=ice-pwd`.
    pub ice_pwd: String,
    /// The `sha-256` certificate fingerprint's bytes.
    pub fingerprint: [u8; FINGERPRINT_LEN],
    /// `a=setup`.
    pub setup: DtlsSetup,
    /// The data channel section's `a=mid`.
    pub mid: String,
    /// `a=sctp-port` (5000 when the SDP has none, its default).
    pub sctp_port: u16,
    /// `a=max-message-size`, if the SDP states one.
    pub max_message_size: Option<u32>,
    /// UDP host candidates (component 1), in SDP order within each family; IPv4 ones first.
    pub candidates: Vec<SocketAddr>,
}

impl PairingDescription {
    /// Extracts what matters from an SDP (`\r\n` or `\n` line endings).
    ///
    /// Takes the first `a=ice-ufrag`, `a=ice-pwd`, `a=setup`, `a=sctp-port` and
    /// `a=max-message-size`, the `sha-256` `a=fingerprint` (an SDP may carry several hashes), the
    /// `mid` of the `m=application` section, and every UDP host candidate of component 1 with an
    /// IP address (mDNS `.local` names and TCP, relay or reflexive candidates are left out; no
    /// STUN or TURN is used). Duplicates are dropped, and candidates past 15 per family.
    pub fn from_sdp(sdp: &str) -> Result<Self, PairingCodeError> {
        let mut ufrag = None;
        let mut pwd = None;
        let mut fingerprint = None;
        let mut setup = None;
        let mut mid = None;
        let mut sctp_port = None;
        let mut max_message_size = None;
        let mut candidates: Vec<SocketAddr> = Vec::new();
        let sdp = Sdp::new(sdp);
        for attribute in sdp.attributes() {
            let in_application = attribute.media == Some("application");
            let value = attribute.value;
            match attribute.name {
                "ice-ufrag" if ufrag.is_none() => ufrag = Some(value.to_owned()),
                "ice-pwd" if pwd.is_none() => pwd = Some(value.to_owned()),
                "fingerprint" if fingerprint.is_none() => {
                    fingerprint = parse_sha256_fingerprint(value);
                }
                "setup" if setup.is_none() => {
                    setup = Some(match value.to_ascii_lowercase().as_str() {
                        "actpass" => DtlsSetup::ActPass,
                        "active" => DtlsSetup::Active,
                        "passive" => DtlsSetup::Passive,
                        _ => return Err(PairingCodeError::SdpInvalid("DTLS setup role")),
                    });
                }
                "mid" if in_application && mid.is_none() => mid = Some(value.to_owned()),
                "sctp-port" if sctp_port.is_none() => {
                    let port = value
                        .parse::<u16>()
                        .map_err(|_| PairingCodeError::SdpInvalid("sctp-port"))?;
                    sctp_port = Some(port);
                }
                "max-message-size" if max_message_size.is_none() => {
                    let size = value
                        .parse::<u32>()
                        .map_err(|_| PairingCodeError::SdpInvalid("max-message-size"))?;
                    max_message_size = Some(size);
                }
                "candidate" => {
                    if let Some(addr) = host_candidate(value)
                        && !candidates.contains(&addr)
                    {
                        candidates.push(addr);
                    }
                }
                _ => {}
            }
        }

        if !sdp.has_data_channel() {
            return Err(PairingCodeError::SdpMissing("data channel section"));
        }
        let candidates = order_candidates(candidates);
        if candidates.is_empty() {
            return Err(PairingCodeError::NoCandidates);
        }
        let description = Self {
            ice_ufrag: ufrag.ok_or(PairingCodeError::SdpMissing("ICE username (ice-ufrag)"))?,
            ice_pwd: pwd.ok_or(PairingCodeError::SdpMissing("ICE password (ice-pwd)"))?,
            fingerprint: fingerprint
                .ok_or(PairingCodeError::SdpMissing("sha-256 certificate fingerprint"))?,
            setup: setup.ok_or(PairingCodeError::SdpMissing("DTLS setup role"))?,
            mid: mid.unwrap_or_else(|| DEFAULT_MID.to_owned()),
            sctp_port: sctp_port.unwrap_or(DEFAULT_SCTP_PORT),
            max_message_size,
            candidates,
        };
        description.validate()?;
        Ok(description)
    }

    /// Checks that every field fits the code's layout.
    fn validate(&self) -> Result<(), PairingCodeError> {
        let ice_ok =
            |s: &str| (1..=255).contains(&s.len()) && s.bytes().all(|b| ice_value(b).is_some());
        if !ice_ok(&self.ice_ufrag) {
            return Err(PairingCodeError::SdpInvalid("ICE username (ice-ufrag)"));
        }
        if !ice_ok(&self.ice_pwd) {
            return Err(PairingCodeError::SdpInvalid("ICE password (ice-pwd)"));
        }
        if !mid_ok(self.mid.as_bytes()) {
            return Err(PairingCodeError::SdpInvalid("mid"));
        }
        if self.candidates.is_empty() {
            return Err(PairingCodeError::NoCandidates);
        }
        let v4 = self.candidates.iter().filter(|c| c.is_ipv4()).count();
        let v6 = self.candidates.len() - v4;
        if v4 > MAX_CANDIDATES_PER_FAMILY || v6 > MAX_CANDIDATES_PER_FAMILY {
            return Err(PairingCodeError::SdpInvalid("candidate list (too many addresses)"));
        }
        Ok(())
    }

    /// Writes a conventional SDP for one data-channel session (`\r\n` line endings), in the
    /// layout webrtc-rs itself produces, suitable as a remote description.
    pub fn to_sdp(&self) -> String {
        // A stable, positive 63-bit session id derived from the certificate: the same code
        // always rebuilds the same SDP.
        let mut id = [0u8; 8];
        id.copy_from_slice(&self.fingerprint[..8]);
        let session_id = u64::from_be_bytes(id) >> 1;
        let mut sdp = String::with_capacity(512);
        let mut line = |s: &str| {
            sdp.push_str(s);
            sdp.push_str("\r\n");
        };
        line("v=0");
        line(&format!("o=- {session_id} 1 IN IP4 0.0.0.0"));
        line("s=-");
        line("t=0 0");
        line(&format!("a=fingerprint:{}", format_sha256_fingerprint(&self.fingerprint)));
        line(&format!("a=group:BUNDLE {}", self.mid));
        line("m=application 9 UDP/DTLS/SCTP webrtc-datachannel");
        line("c=IN IP4 0.0.0.0");
        line(&format!("a=setup:{}", self.setup.as_str()));
        line(&format!("a=mid:{}", self.mid));
        line("a=sendrecv");
        line(&format!("a=sctp-port:{}", self.sctp_port));
        if let Some(size) = self.max_message_size {
            line(&format!("a=max-message-size:{size}"));
        }
        line(&format!("a=ice-ufrag:{}", self.ice_ufrag));
        line(&format!("a=ice-pwd:{}", self.ice_pwd));
        for (i, addr) in self.candidates.iter().enumerate() {
            // RFC 8445 §5.1.2.1: type preference 126 (host), local preference falling with the
            // order in the code, component 1.
            let priority = (126u32 << 24) | ((65535 - i as u32) << 8) | 255;
            line(&format!(
                "a=candidate:{} 1 udp {priority} {} {} typ host",
                i + 1,
                addr.ip(),
                addr.port()
            ));
        }
        line("a=end-of-candidates");
        sdp
    }

    /// Packs this description into a code of the given kind.
    pub fn to_code(&self, kind: PairingKind) -> Result<String, PairingCodeError> {
        self.validate()?;
        let bytes = self.to_bytes();
        let mut code = String::with_capacity(4 + bytes.len() * 3 / 2 + 2);
        code.push_str(kind.prefix());
        base43_encode(&bytes, &mut code);
        Ok(code)
    }

    /// Reads a code that must be of `kind`. Accepts whitespace anywhere and lower case.
    pub fn from_code(code: &str, kind: PairingKind) -> Result<Self, PairingCodeError> {
        let (found, payload) = split_prefix(code)?;
        if found != kind {
            return Err(PairingCodeError::WrongKind { expected: kind, found });
        }
        let bytes = base43_decode(payload)?;
        Self::from_bytes(&bytes)
    }
}

/// Parses the value of an `a=candidate:` line (`foundation component transport priority address
/// port typ type …`) into an address if it is a UDP host candidate of component 1.
fn host_candidate(value: &str) -> Option<SocketAddr> {
    let fields: Vec<&str> = value.split_whitespace().collect();
    let [_foundation, component, transport, _priority, address, port, typ, kind, ..] =
        fields.as_slice()
    else {
        return None;
    };
    let usable = *component == "1"
        && transport.eq_ignore_ascii_case("udp")
        && *typ == "typ"
        && *kind == "host";
    if !usable {
        return None;
    }
    // `.local` mDNS names cannot be packed as an address; with no STUN/TURN nothing else names
    // a host. IPv6 zone suffixes (`%eth0`) do not parse and are left out too.
    let ip: IpAddr = address.parse().ok()?;
    let port: u16 = port.parse().ok().filter(|&p| p != 0)?;
    Some(SocketAddr::new(ip, port))
}

/// IPv4 first (the order the code stores them in), each family in SDP order, at most 15 each.
fn order_candidates(candidates: Vec<SocketAddr>) -> Vec<SocketAddr> {
    let (v4, v6): (Vec<_>, Vec<_>) = candidates.into_iter().partition(|c| c.is_ipv4());
    v4.into_iter()
        .take(MAX_CANDIDATES_PER_FAMILY)
        .chain(v6.into_iter().take(MAX_CANDIDATES_PER_FAMILY))
        .collect()
}

/// A mid is an RFC 5888 token; we also cap it at 32 bytes (webrtc stacks use "0", "data", …).
pub(super) fn mid_ok(mid: &[u8]) -> bool {
    (1..=32).contains(&mid.len())
        && mid.iter().all(|&b| {
            b.is_ascii_graphic()
                && !matches!(
                    b,
                    b'"' | b'('
                        | b')'
                        | b','
                        | b'/'
                        | b':'
                        | b';'
                        | b'<'
                        | b'='
                        | b'>'
                        | b'?'
                        | b'@'
                        | b'['
                        | b'\\'
                        | b']'
                        | b'{'
                        | b'}'
                )
        })
}
