//! The one SDP reader of this crate: the few lines Maestral looks at in a session description
//! (media sections, `a=` attributes), for the link's checks, the signaling listener's shape
//! check and the Solo pairing codes. The WebRTC stack parses an SDP for real when it is applied.

/// One `a=` line: its name, its value (`""` for a flag such as `a=sendrecv`), and the media kind
/// of the section it is in (`None`: the session part, before any `m=` line).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attribute<'a> {
    pub media: Option<&'a str>,
    pub name: &'a str,
    pub value: &'a str,
}

/// An SDP text, read line by line (`\r\n` or `\n`; blank lines and surrounding spaces ignored).
#[derive(Debug, Clone, Copy)]
pub struct Sdp<'a> {
    text: &'a str,
}

impl<'a> Sdp<'a> {
    pub fn new(text: &'a str) -> Self {
        Sdp { text }
    }

    fn lines(&self) -> impl Iterator<Item = &'a str> + use<'a> {
        self.text.lines().map(str::trim).filter(|l| !l.is_empty())
    }

    /// Whether the first line is the version line (`v=`), as every SDP's is.
    pub fn starts_with_version(&self) -> bool {
        self.lines().next().is_some_and(|l| l.starts_with("v="))
    }

    /// The media kind of each `m=` line, in order (`application` for a data channel).
    pub fn media(&self) -> impl Iterator<Item = &'a str> + use<'a> {
        self.lines()
            .filter_map(|l| l.strip_prefix("m="))
            .map(|m| m.split_whitespace().next().unwrap_or(""))
    }

    /// Every `a=` line, with the media section it belongs to.
    pub fn attributes(&self) -> impl Iterator<Item = Attribute<'a>> + use<'a> {
        let mut media = None;
        self.lines().filter_map(move |line| {
            if let Some(m) = line.strip_prefix("m=") {
                media = Some(m.split_whitespace().next().unwrap_or(""));
                return None;
            }
            let attribute = line.strip_prefix("a=")?;
            let (name, value) = attribute.split_once(':').unwrap_or((attribute, ""));
            Some(Attribute { media, name: name.trim(), value: value.trim() })
        })
    }

    /// The values of the attributes called `name`, in order.
    pub fn values(&self, name: &'a str) -> impl Iterator<Item = &'a str> + use<'a> {
        self.attributes().filter(move |a| a.name == name).map(|a| a.value)
    }

    /// Whether there is a data channel section (`m=application`).
    pub fn has_data_channel(&self) -> bool {
        self.media().any(|m| m == "application")
    }

    /// Whether every `a=setup` says `actpass`, the offerer's DTLS role (RFC 8842); an answer
    /// says `active` or `passive`. True when there is none.
    pub fn all_setup_actpass(&self) -> bool {
        self.values("setup").all(|r| r.eq_ignore_ascii_case("actpass"))
    }

    /// Whether any `a=setup` says `actpass`.
    pub fn any_setup_actpass(&self) -> bool {
        self.values("setup").any(|r| r.eq_ignore_ascii_case("actpass"))
    }

    /// Whether it carries at least one ICE candidate.
    pub fn has_candidates(&self) -> bool {
        self.values("candidate").next().is_some()
    }

    /// A cheap shape check before anything applies an offer: a version line first, an `m=`
    /// section, `a=` attributes, and a DTLS role, if stated, of `actpass`.
    pub fn looks_like_offer(&self) -> bool {
        self.starts_with_version()
            && self.media().next().is_some()
            && self.attributes().next().is_some()
            && self.all_setup_actpass()
    }
}

/// Every `a=fingerprint` line of `sdp` (session- or media-level), as `(hash, value)` exactly as
/// written, e.g. `("sha-256", "AB:CD:…")`.
pub fn sdp_fingerprints(sdp: &str) -> Vec<(String, String)> {
    Sdp::new(sdp)
        .values("fingerprint")
        .filter_map(|rest| {
            let (hash, value) = rest.split_once(char::is_whitespace)?;
            Some((hash.to_owned(), value.trim().to_owned()))
        })
        .collect()
}

/// The SDP's `sha-256` fingerprint in the form of [`DtlsCert::fingerprint`](super::DtlsCert)
/// (`sha-256 AB:…`, hex upper-cased). Strict: `None` when there is none, when its `sha-256`
/// lines disagree, or when any fingerprint line is of another hash. A DTLS stack may accept
/// a certificate matching any one of the listed fingerprints, so a second, different one (of
/// any hash) could let another certificate through what was checked here.
pub fn sha256_fingerprint(sdp: &str) -> Option<String> {
    let mut found: Option<String> = None;
    for (hash, value) in sdp_fingerprints(sdp) {
        if !hash.eq_ignore_ascii_case("sha-256") {
            return None;
        }
        let value = value.to_ascii_uppercase();
        match &found {
            Some(seen) if *seen != value => return None,
            Some(_) => {}
            None => found = Some(value),
        }
    }
    found.map(|value| format!("sha-256 {value}"))
}

/// How many remote candidates a link keeps ([`keep_host_candidates`]).
pub const MAX_REMOTE_CANDIDATES: usize = 4;

/// `sdp` with only the candidates worth checking from a peer on this LAN: UDP host candidates
/// of `bind_ip`'s family (loopback ones only when `bind_ip` is loopback, and the other way
/// round), at most [`MAX_REMOTE_CANDIDATES`] of them. A hostile offer can carry a thousand
/// candidates in 64 KiB, each costing connectivity checks; a peer on the same LAN needs one.
pub fn keep_host_candidates(sdp: &str, bind_ip: std::net::IpAddr) -> String {
    let mut kept = 0;
    let mut out = String::with_capacity(sdp.len());
    for line in sdp.split_inclusive('\n') {
        let text = line.trim_end_matches(['\r', '\n']);
        if let Some(candidate) = text.strip_prefix("a=candidate:") {
            if kept >= MAX_REMOTE_CANDIDATES || !usable_candidate(candidate, bind_ip) {
                continue;
            }
            kept += 1;
        }
        out.push_str(line);
    }
    out
}

/// `sdp` with only the candidates at `from`, the address the offer came from (its HTTP
/// request's): the answerer then sends connectivity checks to no other address. An offer could
/// otherwise name any host on the LAN, and every candidate costs tens of STUN packets sent
/// there: a join request would make the answerer a reflector. A peer whose candidates are mDNS
/// names (a browser) or another address is still reached, at the address its own checks come
/// from (a peer-reflexive candidate: the address it proved it holds).
pub fn only_candidates_from(sdp: &str, from: std::net::IpAddr) -> String {
    let from = from.to_canonical();
    let mut out = String::with_capacity(sdp.len());
    for line in sdp.split_inclusive('\n') {
        let text = line.trim_end_matches(['\r', '\n']);
        if let Some(candidate) = text.strip_prefix("a=candidate:") {
            // The address read both ways a parser might split the fields (on spaces, or on any
            // whitespace): kept only where both say `from`.
            let at = |field: Option<&str>| {
                field.and_then(|a| a.parse::<std::net::IpAddr>().ok()).map(|ip| ip.to_canonical())
            };
            let spaced = at(candidate.split(' ').nth(4));
            if spaced != Some(from) || at(candidate.split_ascii_whitespace().nth(4)) != spaced {
                continue;
            }
        }
        out.push_str(line);
    }
    out
}

fn usable_candidate(candidate: &str, bind_ip: std::net::IpAddr) -> bool {
    let fields: Vec<&str> = candidate.split_ascii_whitespace().collect();
    let [_foundation, _component, transport, _priority, address, _port, "typ", kind, ..] =
        fields[..]
    else {
        return false;
    };
    let Ok(ip) = address.parse::<std::net::IpAddr>() else { return false };
    let same_reach = bind_ip.is_unspecified() || ip.is_loopback() == bind_ip.is_loopback();
    transport.eq_ignore_ascii_case("udp")
        && kind == "host"
        && ip.is_ipv4() == bind_ip.is_ipv4()
        && !ip.is_unspecified()
        && !ip.is_multicast()
        && same_reach
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFFER: &str = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\na=fingerprint:sha-256 AB:CD\r\n\
        m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=setup:actpass\r\na=mid:0\r\n\
        a=sendrecv\r\na=candidate:1 1 udp 1 127.0.0.1 5000 typ host\r\n";

    #[test]
    fn attributes_know_their_section() {
        let sdp = Sdp::new(OFFER);
        let attrs: Vec<_> = sdp.attributes().collect();
        assert_eq!(
            attrs[0],
            Attribute { media: None, name: "fingerprint", value: "sha-256 AB:CD" }
        );
        assert_eq!(
            attrs[1],
            Attribute { media: Some("application"), name: "setup", value: "actpass" }
        );
        assert_eq!(attrs[3].name, "sendrecv");
        assert!(sdp.has_data_channel() && sdp.has_candidates() && sdp.looks_like_offer());
    }

    #[test]
    fn an_answer_or_garbage_is_not_an_offer() {
        let answer = OFFER.replace("actpass", "active");
        assert!(!Sdp::new(&answer).looks_like_offer());
        assert!(!Sdp::new(&answer).all_setup_actpass());
        assert!(!Sdp::new("hello").looks_like_offer());
        assert!(!Sdp::new("v=0\r\na=x\r\n").looks_like_offer());
    }

    #[test]
    fn only_a_few_host_candidates_of_our_family_are_kept() {
        let lo: std::net::IpAddr = "127.0.0.1".parse().expect("ip");
        let lan: std::net::IpAddr = "192.168.1.20".parse().expect("ip");
        let mut sdp = String::from("v=0\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n");
        for i in 0..1000 {
            sdp.push_str(&format!(
                "a=candidate:{i} 1 udp 1 127.0.0.{} 5000 typ host\r\n",
                i % 250 + 1
            ));
        }
        sdp.push_str("a=candidate:x 1 udp 1 ::1 5000 typ host\r\n");
        sdp.push_str("a=candidate:y 1 tcp 1 192.168.1.7 5000 typ host\r\n");
        sdp.push_str("a=candidate:z 1 udp 1 192.168.1.7 5000 typ srflx raddr 0.0.0.0 rport 0\r\n");
        sdp.push_str("a=candidate:w 1 udp 1 192.168.1.8 5000 typ host\r\n");
        sdp.push_str("a=candidate:v 1 udp 1 peer.local 5000 typ host\r\n");
        sdp.push_str("a=candidate:broken\r\na=end-of-candidates\r\n");
        let on_lo = keep_host_candidates(&sdp, lo);
        assert_eq!(on_lo.matches("a=candidate:").count(), MAX_REMOTE_CANDIDATES);
        assert!(on_lo.contains("a=candidate:0 1 udp 1 127.0.0.1 5000 typ host\r\n"));
        assert!(
            on_lo.starts_with("v=0\r\nm=application") && on_lo.ends_with("a=end-of-candidates\r\n")
        );
        let on_lan = keep_host_candidates(&sdp, lan);
        let kept: Vec<&str> = on_lan.lines().filter(|l| l.starts_with("a=candidate:")).collect();
        assert_eq!(kept, ["a=candidate:w 1 udp 1 192.168.1.8 5000 typ host"]);
    }

    #[test]
    fn only_the_candidates_at_the_address_an_offer_came_from_are_kept() {
        let sdp = "v=0\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n\
            a=candidate:1 1 udp 9 192.168.1.7 5000 typ host\r\n\
            a=candidate:2 1 udp 8 192.168.1.99 5000 typ host\r\n\
            a=candidate:3 1 udp 7 phone.local 5000 typ host\r\n\
            a=candidate:4 1 udp 6 192.168.1.7 5002 typ srflx raddr 0.0.0.0 rport 0\r\n\
            a=candidate:broken\r\na=end-of-candidates\r\n";
        let from: std::net::IpAddr = "192.168.1.7".parse().expect("ip");
        let kept = only_candidates_from(sdp, from);
        let lines: Vec<&str> = kept.lines().filter(|l| l.starts_with("a=candidate:")).collect();
        assert_eq!(lines.len(), 2, "{kept}");
        assert!(lines.iter().all(|l| l.contains(" 192.168.1.7 ")));
        assert!(kept.ends_with("a=end-of-candidates\r\n"));
        // A request over IPv6 from an IPv4-mapped address is the same device.
        let mapped: std::net::IpAddr = "::ffff:192.168.1.7".parse().expect("ip");
        assert_eq!(only_candidates_from(sdp, mapped), kept);
        let elsewhere: std::net::IpAddr = "10.0.0.1".parse().expect("ip");
        assert!(!only_candidates_from(sdp, elsewhere).contains("a=candidate:"));
    }
}
