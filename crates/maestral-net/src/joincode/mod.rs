//! The Choir join code: `maestral://join?host=…&session=…&token=…&fp=…` (`docs/protocol.md`
//! §7), or the same as a web address a phone opens (the `url` module:
//! `HTTP://HOST:PORT/#1.…`), shown by the Master as a QR code and as text, and typed or scanned
//! by a Follower. Both forms parse.
//!
//! The same text is the QR payload and the "manual token" a singer may type, so parsing forgives
//! what hands and scanners add (surrounding whitespace, lower-case hex, `+` for the space in the
//! fingerprint) and rejects everything else with a message that says what to do.

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;

use maestral_protocol::SessionToken;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use thiserror::Error;

mod url;
pub use url::JOIN_URL_PREFIX;

/// What every join code starts with (compared case-insensitively when parsing).
pub const JOIN_CODE_PREFIX: &str = "maestral://join?";

/// The only hash V1 fingerprints use, as SDP writes it.
pub const FINGERPRINT_HASH: &str = "sha-256";

/// Bytes in a SHA-256 fingerprint.
pub const FINGERPRINT_LEN: usize = 32;

/// RFC 3986 unreserved characters pass through; everything else is percent-encoded. Session ids
/// (hex) and tokens (URL-safe base64) therefore come out unchanged.
const VALUE: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');
/// The host keeps its brackets and colon readable: `host=[fe80::1]:4711`.
const HOST: &AsciiSet = &VALUE.remove(b'[').remove(b']').remove(b':');
/// The fingerprint keeps its colons, so only the space becomes `%20`, as the protocol shows.
const FP: &AsciiSet = &VALUE.remove(b':');

/// A parsed Choir join code: where the Master listens, which session, the session token, and the
/// Master's DTLS certificate fingerprint that the Follower checks the answer SDP against.
///
/// `Display` writes the web form; [`JoinCode::link`] the app link; `FromStr` parses either. The fingerprint is kept in SDP form,
/// `sha-256 AB:01:…` (32 upper-case pairs once parsed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinCode {
    /// The Master's signaling listener.
    pub host: SocketAddr,
    /// The session id (not a secret).
    pub session_id: String,
    /// The session token (a secret: `SessionToken` keeps it out of `Debug` output).
    pub token: SessionToken,
    /// The Master's certificate fingerprint, `sha-256 AB:01:…:7F`.
    pub fingerprint: String,
}

/// The code as it is shown and put in the QR: the web form ([`JoinCode::url`]), which a phone's
/// camera opens in the browser and the app accepts too.
impl fmt::Display for JoinCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.url())
    }
}

impl JoinCode {
    /// The code as an app link, `maestral://join?host=…&session=…&token=…&fp=…` (what
    /// earlier versions showed; still accepted).
    pub fn link(&self) -> String {
        format!(
            "{JOIN_CODE_PREFIX}host={}&session={}&token={}&fp={}",
            utf8_percent_encode(&self.host.to_string(), HOST),
            utf8_percent_encode(&self.session_id, VALUE),
            utf8_percent_encode(self.token.expose(), VALUE),
            utf8_percent_encode(&self.fingerprint, FP),
        )
    }
}

/// Why a text is not a usable join code. Each message tells the singer what to do next.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum JoinCodeError {
    /// The text does not start with `maestral://join?`.
    #[error("this is not a Maestral join code — scan the QR code on the conductor's screen again")]
    NotAJoinCode,
    /// A required parameter is absent.
    #[error(
        "the join code is incomplete (it has no {0}) — scan the QR code again, or copy the whole code"
    )]
    MissingParameter(&'static str),
    /// A required parameter appears more than once, so which one is meant is unclear.
    #[error("the join code names {0} twice — scan the QR code on the conductor's screen again")]
    DuplicateParameter(&'static str),
    /// A parameter's percent-encoding is broken or does not decode to UTF-8.
    #[error("the join code is damaged (its {0} is garbled) — scan the QR code again")]
    BadEncoding(&'static str),
    /// `host` is not `IP:PORT` (IPv6 in brackets).
    #[error(
        "the join code's address `{0}` is not an IP address with a port — scan the QR code again"
    )]
    BadHost(String),
    /// `fp` is not `sha-256` and 32 colon-separated hex pairs.
    #[error(
        "the join code's certificate fingerprint is damaged — scan the QR code on the conductor's screen again"
    )]
    BadFingerprint,
    /// `session` is empty.
    #[error(
        "the join code has an empty session — scan the QR code on the conductor's screen again"
    )]
    EmptySessionId,
    /// A web join code whose fragment has a layout this version does not know.
    #[error(
        "this join code was made by a newer Maestral — update this app, or open the code with the phone's camera"
    )]
    NewerLayout,
    /// `token` is empty.
    #[error("the join code has an empty token — scan the QR code on the conductor's screen again")]
    EmptyToken,
}

impl JoinCode {
    /// Builds a join code, checking the fingerprint's form and writing it in the canonical
    /// `sha-256 AB:…` form (lower-case hex from some stacks becomes upper-case).
    pub fn new(
        host: SocketAddr,
        session_id: impl Into<String>,
        token: impl Into<SessionToken>,
        fingerprint: &str,
    ) -> Result<Self, JoinCodeError> {
        let session_id = session_id.into();
        let token = token.into();
        if session_id.is_empty() {
            return Err(JoinCodeError::EmptySessionId);
        }
        if token.is_empty() {
            return Err(JoinCodeError::EmptyToken);
        }
        let fingerprint =
            normalize_fingerprint(fingerprint).ok_or(JoinCodeError::BadFingerprint)?;
        Ok(Self { host, session_id, token, fingerprint })
    }
}

impl FromStr for JoinCode {
    type Err = JoinCodeError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        // Hand-typed or pasted codes often carry spaces or a newline at either end.
        let text = text.trim();
        if let Some(web) = JoinCode::from_url(text) {
            return web;
        }
        let query =
            strip_prefix_ignore_case(text, JOIN_CODE_PREFIX).ok_or(JoinCodeError::NotAJoinCode)?;
        // A fragment is not part of the code; some scanners keep whatever follows `#`.
        let query = query.split_once('#').map_or(query, |(q, _)| q);

        let mut host = None;
        let mut session = None;
        let mut token = None;
        let mut fp = None;
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, raw) = pair.split_once('=').unwrap_or((pair, ""));
            let (name, slot) = match key {
                "host" => ("host", &mut host),
                "session" => ("session", &mut session),
                "token" => ("token", &mut token),
                "fp" => ("fp", &mut fp),
                // Later versions may add parameters; V1 readers ignore them.
                _ => continue,
            };
            if slot.is_some() {
                return Err(JoinCodeError::DuplicateParameter(name));
            }
            // Only in `fp` can a space occur, and form encoders write it as `+`; tokens are
            // URL-safe base64, so no real value ever holds a literal `+` elsewhere.
            let raw = if name == "fp" { raw.replace('+', " ") } else { raw.to_owned() };
            let value = percent_decode_str(&raw)
                .decode_utf8()
                .map_err(|_| JoinCodeError::BadEncoding(name))?
                .into_owned();
            *slot = Some(value);
        }

        let host = host.ok_or(JoinCodeError::MissingParameter("host"))?;
        let session_id = session.ok_or(JoinCodeError::MissingParameter("session"))?;
        let token = token.ok_or(JoinCodeError::MissingParameter("token"))?;
        let fp = fp.ok_or(JoinCodeError::MissingParameter("fp"))?;
        let host = SocketAddr::from_str(host.trim()).map_err(|_| JoinCodeError::BadHost(host))?;
        if host.port() == 0 {
            return Err(JoinCodeError::BadHost(host.to_string()));
        }
        JoinCode::new(host, session_id, token, &fp)
    }
}

/// Whether `text` is meant as a join code (either form), valid or not: a picture or a paste that
/// is one joins, or says what is wrong with it, rather than being taken for something else.
pub fn looks_like_join_code(text: &str) -> bool {
    let text = text.trim();
    strip_prefix_ignore_case(text, "maestral://join").is_some() || url::is_join_url(text)
}

fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix).then(|| &text[prefix.len()..])
}

/// Parses a `sha-256` fingerprint as SDP writes it (`sha-256 AB:01:…`, hash name and hex in any
/// case, 32 pairs) into its bytes. `None` for any other form or hash.
pub fn parse_sha256_fingerprint(text: &str) -> Option<[u8; FINGERPRINT_LEN]> {
    let (hash, hex) = text.trim().split_once(char::is_whitespace)?;
    if !hash.eq_ignore_ascii_case(FINGERPRINT_HASH) {
        return None;
    }
    let mut out = [0u8; FINGERPRINT_LEN];
    let mut pairs = hex.trim().split(':');
    for byte in &mut out {
        let pair = pairs.next()?;
        if pair.len() != 2 || !pair.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        *byte = u8::from_str_radix(pair, 16).ok()?;
    }
    pairs.next().is_none().then_some(out)
}

/// Writes fingerprint bytes in the canonical SDP form, `sha-256 AB:01:…` (upper-case hex).
pub fn format_sha256_fingerprint(bytes: &[u8; FINGERPRINT_LEN]) -> String {
    let hex: Vec<String> = bytes.iter().map(|b| format!("{b:02X}")).collect();
    format!("{FINGERPRINT_HASH} {}", hex.join(":"))
}

/// The canonical form of a `sha-256` fingerprint (`sha-256 AB:…`), or `None` if it is not one.
pub fn normalize_fingerprint(text: &str) -> Option<String> {
    parse_sha256_fingerprint(text).map(|b| format_sha256_fingerprint(&b))
}

/// Whether two fingerprints as SDP writes them (`hash HEX:…`) name the same certificate: the
/// hash name and the hex are compared case-insensitively, since some stacks report lower case.
/// Any hash name is accepted here; two different hashes never match.
pub fn fingerprints_match(a: &str, b: &str) -> bool {
    fn split(s: &str) -> Option<(&str, &str)> {
        let (hash, hex) = s.trim().split_once(char::is_whitespace)?;
        let hex = hex.trim();
        (!hash.is_empty() && !hex.is_empty()).then_some((hash, hex))
    }
    match (split(a), split(b)) {
        (Some((ha, xa)), Some((hb, xb))) => {
            ha.eq_ignore_ascii_case(hb) && xa.eq_ignore_ascii_case(xb)
        }
        _ => false,
    }
}
