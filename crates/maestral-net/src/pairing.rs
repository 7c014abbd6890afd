//! Solo pairing codes: an SDP offer or answer reduced to what a single data-channel connection
//! needs, packed into a short text (`M1O:…` offer, `M1A:…` answer) that fits one QR code a
//! phone reads at arm's length, and rebuilt into a conventional SDP on the other side.
//!
//! # What is kept
//!
//! ICE username fragment and password, the `sha-256` certificate fingerprint, the DTLS setup
//! role, the data channel's `mid`, `sctp-port`, `max-message-size` (when present) and the host
//! candidates (UDP, component 1: address and port; foundations and priorities are regenerated).
//! Device ids and the pairing secret are not in the code: they go over the channel once it is
//! open, which keeps the code small.
//!
//! # Layout (version 1)
//!
//! ```text
//! header   u8    bits 7-6 version (1), bits 5-4 setup (0 actpass, 1 active, 2 passive),
//!                bits 3-2 max-message-size (0 absent, 1 65536 as webrtc-rs writes, 2 u32 follows),
//!                bit 1 credential lengths follow, bit 0 extras byte follows
//! [u8]           extras: bit 0 sctp-port follows, bit 1 mid follows (other bits zero)
//! [u32 BE]       max-message-size
//! [u16 BE]       sctp-port            (absent: 5000)
//! [u8, u8]       ufrag, pwd lengths   (absent: 16 and 32, webrtc-rs's lengths)
//! [u8 + bytes]   mid                  (absent: "0")
//! packed         ufrag ++ pwd, 6 bits a character (ICE allows only A-Z a-z 0-9 + /),
//!                padded with zero bits to a whole byte
//! 32 bytes       sha-256 fingerprint
//! u8             high nibble: IPv4 candidates, low nibble: IPv6 candidates (at most 15 each)
//! per IPv4       4 bytes address, u16 BE port
//! per IPv6       16 bytes address, u16 BE port
//! ```
//!
//! # Text: base43 in QR alphanumeric mode
//!
//! The bytes are written with base45's scheme (RFC 9285: two bytes → three characters) over the
//! QR alphanumeric alphabet less space and `*` (43 characters; 43³ ≥ 65536, so two bytes still
//! fit three). With the upper-case prefix the whole code stays in QR alphanumeric mode, 5.5 bits
//! a character, i.e. 8.25 bits per payload byte against 10.67 for base64url in byte mode: about
//! 23 % fewer data bits. Measured at error correction M: one IPv4 candidate, 118 characters,
//! version 5 (base64url: 106 characters, version 6); IPv4 + IPv6, 145 characters, version 6
//! (base64url: version 8). The text is ~12 % longer than base64url would be; leaving out the space means a
//! pasted code can be trimmed and re-wrapped freely, and leaving out `*` keeps chat apps from
//! reading it as bold. Decoding accepts lower case and ignores whitespace anywhere.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use thiserror::Error;

use crate::joincode::{FINGERPRINT_LEN, format_sha256_fingerprint, parse_sha256_fingerprint};

/// Prefix of an offer code (format version 1).
pub const OFFER_PREFIX: &str = "M1O:";
/// Prefix of an answer code (format version 1).
pub const ANSWER_PREFIX: &str = "M1A:";

/// The format version in the header's top bits.
const VERSION: u8 = 1;
/// Values that need no bytes in the code when they are the usual ones.
const DEFAULT_SCTP_PORT: u16 = 5000;
const DEFAULT_UFRAG_LEN: usize = 16;
const DEFAULT_PWD_LEN: usize = 32;
const DEFAULT_MID: &str = "0";
/// Candidates per address family that fit the count nibble.
pub const MAX_CANDIDATES_PER_FAMILY: usize = 15;

/// The max-message-size webrtc-rs writes, and RFC 8841's value when the attribute is absent.
const USUAL_MAX_MESSAGE_SIZE: u32 = 65536;

// Header bits 3-2: the max-message-size attribute.
const MMS_ABSENT: u8 = 0;
const MMS_USUAL: u8 = 1;
const MMS_EXPLICIT: u8 = 2;
// Header bits 1 and 0.
const HAS_LENGTHS: u8 = 1 << 1;
const HAS_EXTRAS: u8 = 1 << 0;
// Bits of the extras byte; the others must be zero.
const EXTRA_SCTP_PORT: u8 = 1 << 0;
const EXTRA_MID: u8 = 1 << 1;

/// The QR alphanumeric alphabet less space and `*` (see the module docs).
const BASE43: &[u8; 43] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ$%+-./:";
/// ICE's characters (RFC 8839 `ice-char`), in the order of their 6-bit values.
const ICE_CHARS: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Which half of the exchange a code carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PairingKind {
    /// The first device's offer (`M1O:`).
    Offer,
    /// The second device's answer (`M1A:`).
    Answer,
}

impl PairingKind {
    /// The text prefix of codes of this kind.
    pub fn prefix(self) -> &'static str {
        match self {
            Self::Offer => OFFER_PREFIX,
            Self::Answer => ANSWER_PREFIX,
        }
    }
}

impl fmt::Display for PairingKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Offer => "offer",
            Self::Answer => "answer",
        })
    }
}

/// The DTLS role an SDP states with `a=setup:` (RFC 8842).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DtlsSetup {
    /// `actpass`: the offerer's role.
    ActPass,
    /// `active`: the DTLS client.
    Active,
    /// `passive`: the DTLS server.
    Passive,
}

impl DtlsSetup {
    /// The attribute value as SDP writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ActPass => "actpass",
            Self::Active => "active",
            Self::Passive => "passive",
        }
    }

    fn bits(self) -> u8 {
        match self {
            Self::ActPass => 0,
            Self::Active => 1,
            Self::Passive => 2,
        }
    }
}

/// Why an SDP could not become a code, or a text is not a usable code. Messages for decoding
/// speak to the person holding the phone.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PairingCodeError {
    /// The text is not a Maestral pairing code at all.
    #[error("this is not a Maestral pairing code — scan the code shown on the other device again")]
    NotAPairingCode,
    /// A Choir join code where a pairing code was expected.
    #[error(
        "this is a Choir join code, not a Solo pairing code — use it under \"Join a choir\" instead"
    )]
    IsJoinCode,
    /// An offer where an answer was expected, or the other way round.
    #[error("{}", wrong_kind_message(*expected, *found))]
    WrongKind {
        /// What this step needed.
        expected: PairingKind,
        /// What the code is.
        found: PairingKind,
    },
    /// A code from another version of Maestral.
    #[error(
        "this pairing code comes from another version of Maestral (format {0}) — update Maestral on both devices"
    )]
    UnsupportedVersion(u8),
    /// A character that no pairing code contains.
    #[error(
        "the pairing code contains `{0}`, which no pairing code has — scan it again or copy the whole code"
    )]
    BadCharacter(char),
    /// The code ends too early.
    #[error("the pairing code is incomplete — scan it again or copy the whole code")]
    Truncated,
    /// The code is complete but holds impossible values.
    #[error("the pairing code is damaged ({0}) — scan it again or copy the whole code")]
    Corrupt(&'static str),
    /// The SDP lacks something a code must carry.
    #[error(
        "this device's connection description has no {0} — restart pairing (if it happens again, report it)"
    )]
    SdpMissing(&'static str),
    /// The SDP carries a value a code cannot hold.
    #[error(
        "this device's connection description has an unusable {0} — restart pairing (if it happens again, report it)"
    )]
    SdpInvalid(&'static str),
    /// No IPv4 or IPv6 UDP host candidate: the devices could not reach each other.
    #[error(
        "this device found no network address to offer — connect it to the same Wi-Fi as the other device and restart pairing"
    )]
    NoCandidates,
}

fn wrong_kind_message(expected: PairingKind, found: PairingKind) -> &'static str {
    match (expected, found) {
        (PairingKind::Answer, PairingKind::Offer) => {
            "this is the first device's code (an offer) — scan the code the OTHER device shows in answer"
        }
        (PairingKind::Offer, PairingKind::Answer) => {
            "this is an answer code — scan it on the device that showed the first code"
        }
        _ => "this pairing code is of the wrong kind — scan the code on the other device again",
    }
}

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
        let mut in_application = false;
        let mut saw_application = false;

        for line in sdp.lines().map(|l| l.trim_end_matches('\r')) {
            if let Some(media) = line.strip_prefix("m=") {
                in_application = media.starts_with("application ");
                saw_application |= in_application;
                continue;
            }
            let Some(attribute) = line.strip_prefix("a=") else {
                continue;
            };
            let (name, value) = attribute.split_once(':').unwrap_or((attribute, ""));
            let value = value.trim();
            match name {
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

        if !saw_application {
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

    fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(96);
        let lengths_default =
            self.ice_ufrag.len() == DEFAULT_UFRAG_LEN && self.ice_pwd.len() == DEFAULT_PWD_LEN;
        let mms = match self.max_message_size {
            None => MMS_ABSENT,
            Some(USUAL_MAX_MESSAGE_SIZE) => MMS_USUAL,
            Some(_) => MMS_EXPLICIT,
        };
        let mut header = (VERSION << 6) | (self.setup.bits() << 4) | (mms << 2);
        if !lengths_default {
            header |= HAS_LENGTHS;
        }
        let mut extras = 0;
        if self.sctp_port != DEFAULT_SCTP_PORT {
            extras |= EXTRA_SCTP_PORT;
        }
        if self.mid != DEFAULT_MID {
            extras |= EXTRA_MID;
        }
        if extras != 0 {
            header |= HAS_EXTRAS;
        }
        out.push(header);
        if extras != 0 {
            out.push(extras);
        }
        if let (MMS_EXPLICIT, Some(size)) = (mms, self.max_message_size) {
            out.extend_from_slice(&size.to_be_bytes());
        }
        if extras & EXTRA_SCTP_PORT != 0 {
            out.extend_from_slice(&self.sctp_port.to_be_bytes());
        }
        // Lengths and the mid fit one byte each: `validate` checked them.
        if header & HAS_LENGTHS != 0 {
            out.push(self.ice_ufrag.len() as u8);
            out.push(self.ice_pwd.len() as u8);
        }
        if extras & EXTRA_MID != 0 {
            out.push(self.mid.len() as u8);
            out.extend_from_slice(self.mid.as_bytes());
        }
        pack_ice_chars(self.ice_ufrag.bytes().chain(self.ice_pwd.bytes()), &mut out);
        out.extend_from_slice(&self.fingerprint);
        let (v4, v6): (Vec<&SocketAddr>, Vec<&SocketAddr>) =
            self.candidates.iter().partition(|c| c.is_ipv4());
        out.push(((v4.len() as u8) << 4) | v6.len() as u8);
        for addr in v4.iter().chain(v6.iter()) {
            match addr.ip() {
                IpAddr::V4(ip) => out.extend_from_slice(&ip.octets()),
                IpAddr::V6(ip) => out.extend_from_slice(&ip.octets()),
            }
            out.extend_from_slice(&addr.port().to_be_bytes());
        }
        out
    }

    fn from_bytes(bytes: &[u8]) -> Result<Self, PairingCodeError> {
        let mut r = Reader(bytes);
        let header = r.u8()?;
        let version = header >> 6;
        if version != VERSION {
            return Err(PairingCodeError::UnsupportedVersion(version));
        }
        let setup = match (header >> 4) & 0b11 {
            0 => DtlsSetup::ActPass,
            1 => DtlsSetup::Active,
            2 => DtlsSetup::Passive,
            _ => return Err(PairingCodeError::Corrupt("unknown DTLS role")),
        };
        // Strict: every value the encoder leaves out when usual is refused when written out,
        // so one description has exactly one code.
        let extras = if header & HAS_EXTRAS != 0 {
            let extras = r.u8()?;
            if extras == 0 || extras & !(EXTRA_SCTP_PORT | EXTRA_MID) != 0 {
                return Err(PairingCodeError::Corrupt("unknown options"));
            }
            extras
        } else {
            0
        };
        let max_message_size = match (header >> 2) & 0b11 {
            MMS_ABSENT => None,
            MMS_USUAL => Some(USUAL_MAX_MESSAGE_SIZE),
            MMS_EXPLICIT => match u32::from_be_bytes(r.array()?) {
                USUAL_MAX_MESSAGE_SIZE => {
                    return Err(PairingCodeError::Corrupt("redundant max-message-size"));
                }
                size => Some(size),
            },
            _ => return Err(PairingCodeError::Corrupt("unknown max-message-size form")),
        };
        let sctp_port = if extras & EXTRA_SCTP_PORT != 0 {
            let port = u16::from_be_bytes(r.array()?);
            if port == DEFAULT_SCTP_PORT {
                return Err(PairingCodeError::Corrupt("redundant sctp-port"));
            }
            port
        } else {
            DEFAULT_SCTP_PORT
        };
        let (ufrag_len, pwd_len) = if header & HAS_LENGTHS != 0 {
            let (u, p) = (r.u8()? as usize, r.u8()? as usize);
            if u == 0 || p == 0 {
                return Err(PairingCodeError::Corrupt("empty ICE credential"));
            }
            if (u, p) == (DEFAULT_UFRAG_LEN, DEFAULT_PWD_LEN) {
                return Err(PairingCodeError::Corrupt("redundant credential lengths"));
            }
            (u, p)
        } else {
            (DEFAULT_UFRAG_LEN, DEFAULT_PWD_LEN)
        };
        let mid = if extras & EXTRA_MID != 0 {
            let len = r.u8()? as usize;
            let raw = r.take(len)?;
            if !mid_ok(raw) || raw == DEFAULT_MID.as_bytes() {
                return Err(PairingCodeError::Corrupt("bad mid"));
            }
            String::from_utf8(raw.to_vec()).map_err(|_| PairingCodeError::Corrupt("bad mid"))?
        } else {
            DEFAULT_MID.to_owned()
        };
        let chars = ufrag_len + pwd_len;
        let packed = r.take((chars * 6).div_ceil(8))?;
        let ice = unpack_ice_chars(packed, chars)?;
        let (ufrag, pwd) = ice.split_at(ufrag_len);
        let fingerprint: [u8; FINGERPRINT_LEN] = r.array()?;
        let counts = r.u8()?;
        let (v4, v6) = ((counts >> 4) as usize, (counts & 0x0f) as usize);
        if v4 + v6 == 0 {
            return Err(PairingCodeError::Corrupt("no network address"));
        }
        let mut candidates = Vec::with_capacity(v4 + v6);
        for _ in 0..v4 {
            let ip = Ipv4Addr::from(r.array::<4>()?);
            candidates.push(SocketAddr::new(ip.into(), candidate_port(&mut r)?));
        }
        for _ in 0..v6 {
            let ip = Ipv6Addr::from(r.array::<16>()?);
            candidates.push(SocketAddr::new(ip.into(), candidate_port(&mut r)?));
        }
        if !r.0.is_empty() {
            return Err(PairingCodeError::Corrupt("unexpected bytes at the end"));
        }
        Ok(Self {
            ice_ufrag: ufrag.to_owned(),
            ice_pwd: pwd.to_owned(),
            fingerprint,
            setup,
            mid,
            sctp_port,
            max_message_size,
            candidates,
        })
    }
}

fn candidate_port(r: &mut Reader<'_>) -> Result<u16, PairingCodeError> {
    let port = u16::from_be_bytes(r.array()?);
    if port == 0 {
        return Err(PairingCodeError::Corrupt("port 0"));
    }
    Ok(port)
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
fn mid_ok(mid: &[u8]) -> bool {
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

fn ice_value(c: u8) -> Option<u8> {
    ICE_CHARS.iter().position(|&x| x == c).map(|i| i as u8)
}

fn pack_ice_chars(chars: impl Iterator<Item = u8>, out: &mut Vec<u8>) {
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in chars {
        // `validate` guarantees every character is an ICE character.
        acc = (acc << 6) | u32::from(ice_value(c).unwrap_or(0));
        bits += 6;
        while bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
        acc &= (1 << bits) - 1;
    }
    if bits > 0 {
        out.push((acc << (8 - bits)) as u8);
    }
}

fn unpack_ice_chars(packed: &[u8], count: usize) -> Result<String, PairingCodeError> {
    let mut out = String::with_capacity(count);
    let (mut acc, mut bits) = (0u32, 0u32);
    let mut bytes = packed.iter();
    while out.len() < count {
        if bits < 6 {
            let Some(&b) = bytes.next() else {
                return Err(PairingCodeError::Truncated);
            };
            acc = (acc << 8) | u32::from(b);
            bits += 8;
        }
        bits -= 6;
        out.push(ICE_CHARS[((acc >> bits) & 0x3f) as usize] as char);
        acc &= (1 << bits) - 1;
    }
    // Strict: the padding bits the encoder writes are zero, so anything else is damage.
    if acc != 0 || bytes.next().is_some() {
        return Err(PairingCodeError::Corrupt("bad padding"));
    }
    Ok(out)
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], PairingCodeError> {
        if self.0.len() < n {
            return Err(PairingCodeError::Truncated);
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, PairingCodeError> {
        Ok(self.take(1)?[0])
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], PairingCodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }
}

/// Splits a code into its kind and payload, telling apart the usual mistakes.
fn split_prefix(code: &str) -> Result<(PairingKind, &str), PairingCodeError> {
    let code = code.trim();
    if code.get(..15).is_some_and(|h| h.eq_ignore_ascii_case("maestral://join")) {
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

fn base43_encode(bytes: &[u8], out: &mut String) {
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

fn base43_decode(text: &str) -> Result<Vec<u8>, PairingCodeError> {
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

/// Turns a complete SDP offer into an `M1O:` code.
pub fn encode_offer(sdp: &str) -> Result<String, PairingCodeError> {
    PairingDescription::from_sdp(sdp)?.to_code(PairingKind::Offer)
}

/// Turns a complete SDP answer into an `M1A:` code.
pub fn encode_answer(sdp: &str) -> Result<String, PairingCodeError> {
    PairingDescription::from_sdp(sdp)?.to_code(PairingKind::Answer)
}

/// Rebuilds the SDP offer from an `M1O:` code (an answer code gives
/// [`PairingCodeError::WrongKind`]).
pub fn decode_offer(code: &str) -> Result<String, PairingCodeError> {
    Ok(PairingDescription::from_code(code, PairingKind::Offer)?.to_sdp())
}

/// Rebuilds the SDP answer from an `M1A:` code (an offer code gives
/// [`PairingCodeError::WrongKind`]).
pub fn decode_answer(code: &str) -> Result<String, PairingCodeError> {
    Ok(PairingDescription::from_code(code, PairingKind::Answer)?.to_sdp())
}

/// The kind of a pairing code by its prefix alone (for a screen that accepts either), or `None`
/// if the text does not start like a version 1 code.
pub fn code_kind(code: &str) -> Option<PairingKind> {
    split_prefix(code).ok().map(|(kind, _)| kind)
}
