//! Newtypes for the identifiers and counters of docs/behaviour.md §3.

use std::fmt;

use serde::{Deserialize, Serialize};

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub String);

        impl $name {
            pub fn new(s: impl Into<String>) -> Self {
                $name(s.into())
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                $name(s.to_owned())
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> Self {
                $name(s)
            }
        }
    };
}

string_id!(
    /// A stable identifier of one installation (docs/behaviour.md §3). Lexicographic order breaks
    /// Solo ties.
    DeviceId
);
impl DeviceId {
    /// Longest device id accepted, in bytes.
    pub const MAX_LEN: usize = 128;

    /// Whether `id` can be a device id: 1 to 128 ASCII letters, digits, `-`, `_` or `.`.
    /// Ids a link is bound to (a join request's `device_id`, the sender of a link's first
    /// message) and `--device-id` are checked against this, so an id can be shown and logged as
    /// it is. The decoder itself accepts any `sender_id`.
    pub fn is_valid(id: &str) -> bool {
        !id.is_empty()
            && id.len() <= Self::MAX_LEN
            && id.bytes().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
    }

    /// `id` as a device id, if it is one ([`DeviceId::is_valid`]).
    pub fn parse(id: &str) -> Option<DeviceId> {
        Self::is_valid(id).then(|| DeviceId(id.to_owned()))
    }
}

/// A peer's `device_name` as this device shows it: control characters and the invisible
/// characters that reorder or hide text (bidi overrides, zero-width marks) removed, white space
/// runs made one space, at most 64 characters. `None` when nothing is left (show the device id).
/// A name comes from any device on the LAN; this keeps it from spoofing another in a list.
pub fn shown_name(raw: &str) -> Option<String> {
    let hidden = |c: char| {
        c.is_control()
            || matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2069}' | '\u{FEFF}')
    };
    let mut out = String::new();
    for word in raw.split(|c: char| c.is_whitespace()).filter(|w| !w.is_empty()) {
        let word: String = word.chars().filter(|c| !hidden(*c)).collect();
        if word.is_empty() {
            continue;
        }
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(&word);
    }
    let out: String = out.chars().take(64).collect();
    let out = out.trim_end().to_owned();
    (!out.is_empty()).then_some(out)
}

string_id!(
    /// The identifier of one active sync session (docs/behaviour.md §3); `""` in Solo.
    SessionId
);
string_id!(
    /// A song: the SHA-256 of its file's bytes, as 64 lowercase hex digits (`maestral-score`
    /// computes it). Two devices holding the same file under different names agree on it.
    SongId
);

impl SongId {
    /// The id of the file whose SHA-256 is `digest`.
    pub fn from_digest(digest: &[u8; 32]) -> SongId {
        use std::fmt::Write as _;
        let mut hex = String::with_capacity(64);
        for b in digest {
            // Writing to a String cannot fail.
            let _ = write!(hex, "{b:02x}");
        }
        SongId(hex)
    }
}

/// Monotonic counter the Master increments at each song change (docs/behaviour.md §3).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct SongEpoch(pub u64);

/// Monotonic counter of page updates inside one song epoch (docs/behaviour.md §3).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct PageRevision(pub u64);

impl SongEpoch {
    /// The next epoch, or `None` once the counter is spent: a counter that would saturate is
    /// refused, never held at its maximum (a held epoch would make every later song change
    /// look like a duplicate).
    pub fn next(self) -> Option<Self> {
        self.0.checked_add(1).map(SongEpoch)
    }
}

impl PageRevision {
    /// The next revision, or `None` once the counter is spent (see `SongEpoch::next`).
    pub fn next(self) -> Option<Self> {
        self.0.checked_add(1).map(PageRevision)
    }
}

/// A session token (docs/behaviour.md §3): the secret of a Choir session's join code. Compared in
/// constant time, never shown in `Debug` output or logs; [`SessionToken::expose`] gives the text
/// where it must travel (the join code, the join request).
#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SessionToken(String);

impl SessionToken {
    pub fn new(s: impl Into<String>) -> Self {
        SessionToken(s.into())
    }

    /// The token's text, for the join code and the join request only.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl PartialEq for SessionToken {
    /// Constant time for equal lengths (the length itself is not secret).
    fn eq(&self, other: &Self) -> bool {
        use subtle::ConstantTimeEq;
        self.0.as_bytes().ct_eq(other.0.as_bytes()).into()
    }
}

impl Eq for SessionToken {}

impl fmt::Debug for SessionToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionToken(<{} characters, redacted>)", self.0.len())
    }
}

impl From<&str> for SessionToken {
    fn from(s: &str) -> Self {
        SessionToken(s.to_owned())
    }
}

impl From<String> for SessionToken {
    fn from(s: String) -> Self {
        SessionToken(s)
    }
}
