//! The byte layout of a pairing code (version 1, see the module docs of `pairing`).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::description::mid_ok;
use super::{
    DEFAULT_MID, DEFAULT_PWD_LEN, DEFAULT_SCTP_PORT, DEFAULT_UFRAG_LEN, DtlsSetup, EXTRA_MID,
    EXTRA_SCTP_PORT, HAS_EXTRAS, HAS_LENGTHS, MMS_ABSENT, MMS_EXPLICIT, MMS_USUAL,
    PairingCodeError, PairingDescription, USUAL_MAX_MESSAGE_SIZE, VERSION,
};
use crate::joincode::FINGERPRINT_LEN;

/// ICE's characters (RFC 8839 `ice-char`), in the order of their 6-bit values.
const ICE_CHARS: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

impl PairingDescription {
    pub(super) fn to_bytes(&self) -> Vec<u8> {
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

    pub(super) fn from_bytes(bytes: &[u8]) -> Result<Self, PairingCodeError> {
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
        // A code is canonical: this device never writes an address twice (found by fuzzing: a
        // code repeating one gave an SDP that encoded to another code).
        if candidates.iter().enumerate().any(|(i, c)| candidates[..i].contains(c)) {
            return Err(PairingCodeError::Corrupt("repeated address"));
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

pub(super) fn ice_value(c: u8) -> Option<u8> {
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
