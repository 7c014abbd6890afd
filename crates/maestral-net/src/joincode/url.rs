//! The join code as a web address, `HTTP://HOST:PORT/#1.SESSION.TOKEN.FINGERPRINT`: what the QR
//! code holds, so that a phone's camera opens the Master's page in the browser, and what the app
//! accepts as well as `maestral://join?…`.
//!
//! - Everything a server could see (scheme, host, port, path) names only the Master's listener;
//!   the session id, the token and the fingerprint are in the fragment, which a browser never
//!   sends to a server, a log or a `Referer`.
//! - The fragment is `1` (this layout), the session id, the token and the certificate's SHA-256
//!   as RFC 4648 base32 without padding, separated by `.`; a field holding `.`, `#`, `%` or a
//!   character outside the URL's is percent-encoded. Later layouts start with another number;
//!   fields after the fourth are ignored.
//! - Upper case throughout, and `.` between fields: the QR encoder then writes the whole text
//!   except `#` in its alphanumeric mode (5.5 bits a character instead of 8). A session id in
//!   upper-case hex and a base32 token (what a Master makes) stay in that mode; older sessions'
//!   ids and tokens still work, in byte mode.

use std::fmt::Write as _;
use std::net::SocketAddr;

use percent_encoding::{AsciiSet, CONTROLS, percent_decode_str, utf8_percent_encode};

use maestral_protocol::{base32, unbase32};

use super::{FINGERPRINT_LEN, JoinCode, JoinCodeError, format_sha256_fingerprint};

/// What a web join code starts with (compared case-insensitively when parsing).
pub const JOIN_URL_PREFIX: &str = "http://";

/// The fragment layout this version writes.
const LAYOUT: &str = "1";

/// Encoded in a field: the separator, the fragment mark, `%` itself, and what a URL cannot hold.
const FIELD: &AsciiSet =
    &CONTROLS.add(b' ').add(b'"').add(b'<').add(b'>').add(b'`').add(b'#').add(b'%').add(b'.');

impl JoinCode {
    /// The code as a web address (see the module documentation).
    pub fn url(&self) -> String {
        let fp = super::parse_sha256_fingerprint(&self.fingerprint)
            .map(|b| base32(&b))
            .unwrap_or_default();
        let mut out = format!("HTTP://{}/#{LAYOUT}", self.host.to_string().to_uppercase());
        for field in [self.session_id.as_str(), self.token.expose(), &fp] {
            let _ = write!(out, ".{}", utf8_percent_encode(field, FIELD));
        }
        out
    }

    /// Parses a web join code; `None` if `text` is not an `http://` address at all.
    pub(super) fn from_url(text: &str) -> Option<Result<JoinCode, JoinCodeError>> {
        let rest = super::strip_prefix_ignore_case(text, JOIN_URL_PREFIX)?;
        Some(parse_url(rest))
    }
}

/// An `http://` address whose fragment starts with a layout number and a `.`, as only a join
/// code's does.
pub(super) fn is_join_url(text: &str) -> bool {
    super::strip_prefix_ignore_case(text, JOIN_URL_PREFIX)
        .and_then(|rest| rest.split_once('#'))
        .and_then(|(_, fragment)| fragment.split_once('.'))
        .is_some_and(|(layout, _)| !layout.is_empty() && layout.bytes().all(|b| b.is_ascii_digit()))
}

fn parse_url(rest: &str) -> Result<JoinCode, JoinCodeError> {
    let (address, fragment) = rest.split_once('#').ok_or(JoinCodeError::NotAJoinCode)?;
    let mut fields = fragment.split('.');
    match fields.next() {
        Some(LAYOUT) => {}
        Some(layout) if !layout.is_empty() && layout.bytes().all(|b| b.is_ascii_digit()) => {
            return Err(JoinCodeError::NewerLayout);
        }
        _ => return Err(JoinCodeError::NotAJoinCode),
    }
    // The host and port, then a path (and a query some scanners add): only `/` is the Master's.
    let host_end = address.find(['/', '?']).unwrap_or(address.len());
    let (host, path) = address.split_at(host_end);
    if !matches!(path.split('?').next(), Some("" | "/")) {
        return Err(JoinCodeError::NotAJoinCode);
    }
    let host: SocketAddr = host.parse().map_err(|_| JoinCodeError::BadHost(host.to_owned()))?;
    if host.port() == 0 {
        return Err(JoinCodeError::BadHost(host.to_string()));
    }
    let mut field = |name: &'static str| -> Result<String, JoinCodeError> {
        let raw = fields.next().ok_or(JoinCodeError::MissingParameter(name))?;
        let value =
            percent_decode_str(raw).decode_utf8().map_err(|_| JoinCodeError::BadEncoding(name))?;
        Ok(value.into_owned())
    };
    let session_id = field("session")?;
    let token = field("token")?;
    let fp = field("fingerprint")?;
    let fp: [u8; FINGERPRINT_LEN] =
        unbase32(&fp).and_then(|b| b.try_into().ok()).ok_or(JoinCodeError::BadFingerprint)?;
    JoinCode::new(host, session_id, token, &format_sha256_fingerprint(&fp))
}
