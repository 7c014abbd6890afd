//! RFC 4648 base32 without padding: upper-case letters and 2–7, every one in a QR code's
//! alphanumeric set, so a token or fingerprint written this way keeps a join code's QR small.

/// The alphabet.
const BASE32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// `bytes` in base32 without padding.
pub fn base32(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let (mut acc, mut bits) = (0u32, 0u32);
    for &b in bytes {
        acc = (acc << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(BASE32[((acc >> bits) & 31) as usize]));
        }
        acc &= (1 << bits) - 1;
    }
    if bits > 0 {
        out.push(char::from(BASE32[((acc << (5 - bits)) & 31) as usize]));
    }
    out
}

/// The bytes of unpadded base32 `text` (either case), if it is that and its spare bits are 0.
pub fn unbase32(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 5 / 8);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text.bytes() {
        let v = BASE32.iter().position(|&b| b == c.to_ascii_uppercase())? as u32;
        acc = (acc << 5) | v;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    (acc == 0 && bits < 5).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base32_round_trips_and_refuses_what_is_not_base32() {
        for len in 0..40u8 {
            let bytes: Vec<u8> = (0..len).map(|i| i.wrapping_mul(37).wrapping_add(11)).collect();
            let text = base32(&bytes);
            assert!(text.bytes().all(|b| BASE32.contains(&b)), "{text}");
            assert_eq!(unbase32(&text), Some(bytes.clone()));
            assert_eq!(unbase32(&text.to_lowercase()), Some(bytes));
        }
        assert_eq!(base32(b"foobar"), "MZXW6YTBOI", "RFC 4648's example, unpadded");
        assert_eq!(unbase32("MZXW6YTBOI1"), None, "1 is not base32");
        assert_eq!(unbase32("MZXW6YTBOJ"), None, "spare bits set");
        assert_eq!(unbase32("M"), None, "5 bits are no byte");
    }
}
