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
//!
//! Modules: `description` (what a code carries, from and to SDP), `binary` (the byte layout),
//! `text` (base43 and the prefix).

mod binary;
mod description;
mod text;

use std::fmt;

use thiserror::Error;

pub use description::PairingDescription;
use text::split_prefix;

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
