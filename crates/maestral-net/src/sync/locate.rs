//! Finding a Master whose address changed (a DHCP renewal, another Wi-Fi): each rejoin of a
//! Follower also asks the LAN where its session's Master is now, and if it answers from another
//! address than the stored code's, the Follower rejoins there (and keeps that address once the
//! link is open).
//!
//! One UDP datagram each way, JSON, on port [`LOCATE_PORT`]:
//!
//! - the query, broadcast: `{"maestral":"locate","session":ID,"nonce":HEX32,"mac":HEX64}`, where
//!   `mac` is HMAC-SHA256 keyed with the session token over `maestral-locate-v1-query|ID|NONCE`;
//! - the answer, from the Master of that session only, to the asker:
//!   `{"maestral":"here","session":ID,"host":"IP:PORT","proof":HEX64}`, where `proof` is
//!   HMAC-SHA256 keyed with the session token over `maestral-locate-v1|ID|NONCE|HOST`.
//!
//! Only a token holder can ask (the Master answers no query without a valid `mac`, nor one whose
//! nonce it has answered lately) and only a token holder can answer (the proof). A singer holds
//! the token too, so an answer alone is not trusted: the join at the new address is checked
//! against the code's certificate fingerprint as always, and the address is kept only once that
//! link is open. The Master answers nothing for another session or an ended one, and at most
//! [`ANSWERS_PER_SECOND`] a second.

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use tokio::net::UdpSocket;

use crate::joincode::JoinCode;
use crate::sig::{hex, hmac, unhex};

/// The port Masters listen on for locate queries, and Followers send them to.
pub const LOCATE_PORT: u16 = 47474;
/// Answers a Master sends in one second at most. A query reaches it once per broadcast address
/// it was sent to, and a whole choir asks at once after a move: room for that, not for a flood.
pub const ANSWERS_PER_SECOND: u32 = 100;
/// Nonces answered lately, whose queries are not answered again (a replayed query).
const RECENT_NONCES: usize = 512;
/// How long a Follower waits for an answer.
pub const LOCATE_WAIT: Duration = Duration::from_millis(400);

const PROOF_CONTEXT: &str = "maestral-locate-v1";
const QUERY_CONTEXT: &str = "maestral-locate-v1-query";
/// A datagram larger than this is not a locate message.
const MAX_DATAGRAM: usize = 1024;

/// Where locate queries go and are heard (`--locate`, `MAESTRAL_LOCATE` in the app).
///
/// Tests, benchmarks and anything else that must not reach past the machine use [`Self::Off`]
/// or [`Self::At`] a loopback address; the LAN scope itself never leaves loopback for a Master
/// listening on a loopback address or a code naming one (such an address never moves).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocateConfig {
    /// A Master answers nothing; a Follower never asks.
    Off,
    /// The LAN (the default): a Master answers on UDP `port` of every address it has; a
    /// Follower asks on `port` of each of this machine's networks' broadcast addresses and
    /// 255.255.255.255. Where the Master listens on a loopback address, it answers on that
    /// address only; where a Follower's code names a loopback address, it asks there only.
    Lan { port: u16 },
    /// Only this address: a Master answers on it (`0.0.0.0:PORT`: on every address, on that
    /// port); a Follower asks it and nothing else (a network's broadcast address confines the
    /// queries to that network).
    At(SocketAddr),
}

impl Default for LocateConfig {
    fn default() -> Self {
        LocateConfig::Lan { port: LOCATE_PORT }
    }
}

impl std::fmt::Display for LocateConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LocateConfig::Off => f.write_str("off"),
            LocateConfig::Lan { port: LOCATE_PORT } => f.write_str("lan"),
            LocateConfig::Lan { port } => write!(f, "lan:{port}"),
            LocateConfig::At(addr) => write!(f, "{addr}"),
        }
    }
}

impl std::str::FromStr for LocateConfig {
    type Err = String;

    /// `off`, `lan`, `lan:PORT`, `IP` (on [`LOCATE_PORT`]) or `IP:PORT` (`[IPv6]:PORT`).
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let bad = || {
            format!("locate is `off`, `lan`, `lan:PORT`, an address or an address:port, not {s:?}")
        };
        let port = |p: &str| p.parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(bad);
        match s {
            "off" => return Ok(LocateConfig::Off),
            "lan" => return Ok(LocateConfig::default()),
            _ => {}
        }
        if let Some(p) = s.strip_prefix("lan:") {
            return Ok(LocateConfig::Lan { port: port(p)? });
        }
        if let Ok(ip) = s.parse::<IpAddr>() {
            return Ok(LocateConfig::At(SocketAddr::new(ip, LOCATE_PORT)));
        }
        let addr = s.parse::<SocketAddr>().map_err(|_| bad())?;
        port(&addr.port().to_string())?;
        Ok(LocateConfig::At(addr))
    }
}

impl LocateConfig {
    /// Where a Master listening at `listen` answers queries (`None`: it does not).
    pub(crate) fn answers_on(self, listen: IpAddr) -> Option<SocketAddr> {
        match self {
            LocateConfig::Off => None,
            LocateConfig::Lan { port } if listen.is_loopback() => {
                Some(SocketAddr::new(listen, port))
            }
            LocateConfig::Lan { port } => Some(SocketAddr::from((Ipv4Addr::UNSPECIFIED, port))),
            LocateConfig::At(addr) => Some(addr),
        }
    }

    /// Where a Follower holding a code that names `host` sends its query (empty: it does not
    /// ask): the address given, else every network's broadcast address (a network without a
    /// default route cannot reach 255.255.255.255) and 255.255.255.255 itself, or `host`'s own
    /// loopback address.
    fn destinations(self, host: SocketAddr) -> Vec<SocketAddr> {
        match self {
            LocateConfig::Off => Vec::new(),
            LocateConfig::At(to) => vec![to],
            LocateConfig::Lan { port } if host.ip().is_loopback() => {
                vec![SocketAddr::new(host.ip(), port)]
            }
            LocateConfig::Lan { port } => {
                let mut all = vec![SocketAddr::from((Ipv4Addr::BROADCAST, port))];
                let nets = crate::addr::broadcasts().into_iter();
                all.extend(nets.map(|b| SocketAddr::from((b, port))));
                all
            }
        }
    }
}

#[derive(Serialize, Deserialize)]
struct Query {
    maestral: String,
    session: String,
    nonce: String,
    mac: String,
}

#[derive(Serialize, Deserialize)]
struct Answer {
    maestral: String,
    session: String,
    host: SocketAddr,
    proof: String,
}

fn proof(token: &str, session: &str, nonce: &str, host: SocketAddr) -> Hmac<Sha256> {
    hmac(token.as_bytes(), format!("{PROOF_CONTEXT}|{session}|{nonce}|{host}").as_bytes())
}

fn query_mac(token: &str, session: &str, nonce: &str) -> Hmac<Sha256> {
    hmac(token.as_bytes(), format!("{QUERY_CONTEXT}|{session}|{nonce}").as_bytes())
}

/// A nonce as queries carry it: 16 random bytes in lower-case hex.
fn new_nonce() -> String {
    hex(&rand::random::<[u8; 16]>())
}

fn is_nonce(s: &str) -> bool {
    s.len() == 32 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The query for `session` (whose token is `token`) with `nonce`.
pub(crate) fn query(session: &str, token: &str, nonce: &str) -> Vec<u8> {
    let mac = hex(&query_mac(token, session, nonce).finalize().into_bytes());
    let q = Query { maestral: "locate".into(), session: session.into(), nonce: nonce.into(), mac };
    serde_json::to_vec(&q).unwrap_or_default()
}

/// What the Master of `session` (holding `token`, listening at `host`) answers to `datagram`,
/// if it is a query for that session from a token holder; the query's nonce with it. Any token
/// holder can answer so (the hostile tests do): a Follower never trusts an answer beyond trying
/// a join there beside its own attempt.
pub fn answer(
    datagram: &[u8],
    session: &str,
    token: &str,
    host: SocketAddr,
) -> Option<(String, Vec<u8>)> {
    if datagram.len() > MAX_DATAGRAM {
        return None;
    }
    let q: Query = serde_json::from_slice(datagram).ok()?;
    if q.maestral != "locate" || q.session != session || !is_nonce(&q.nonce) {
        return None;
    }
    query_mac(token, session, &q.nonce).verify_slice(&unhex(&q.mac)?).ok()?;
    let proof = hex(&proof(token, session, &q.nonce, host).finalize().into_bytes());
    let a = Answer { maestral: "here".into(), session: session.into(), host, proof };
    Some((q.nonce, serde_json::to_vec(&a).ok()?))
}

/// The Master's address an answer gives, if it proves the token of `code` for `nonce`.
pub(crate) fn check(datagram: &[u8], code: &JoinCode, nonce: &str) -> Option<SocketAddr> {
    if datagram.len() > MAX_DATAGRAM {
        return None;
    }
    let a: Answer = serde_json::from_slice(datagram).ok()?;
    if a.maestral != "here" || a.session != code.session_id {
        return None;
    }
    let mac = proof(code.token.expose(), &code.session_id, nonce, a.host);
    mac.verify_slice(&unhex(&a.proof)?).ok()?;
    plausible(a.host, code.host).then_some(a.host)
}

/// Whether `host`, from an answer, can be where the Master of a code naming `known` moved: of
/// the same family, a unicast address with a port, and a loopback one only if `known` is (an
/// answer naming the Follower's own machine would make it post the token there).
fn plausible(host: SocketAddr, known: SocketAddr) -> bool {
    let ip = host.ip().to_canonical();
    let broadcast = matches!(ip, IpAddr::V4(v4) if v4.is_broadcast());
    host.port() != 0
        && ip.is_ipv4() == known.ip().to_canonical().is_ipv4()
        && !ip.is_unspecified()
        && !ip.is_multicast()
        && !broadcast
        && (!ip.is_loopback() || known.ip().to_canonical().is_loopback())
}

/// What a Master answers for: its session, token and signaling address (`None`: no session).
pub(crate) type Beacon = Arc<Mutex<Option<(String, String, SocketAddr)>>>;

/// A socket on `at`, shared with other listeners of its port (each hears the broadcasts; two
/// Masters on one machine both answer for their own sessions).
fn shared_socket(at: SocketAddr) -> std::io::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let s = Socket::new(Domain::for_address(at), Type::DGRAM, Some(Protocol::UDP))?;
    s.set_reuse_address(true)?;
    s.set_nonblocking(true)?;
    s.bind(&at.into())?;
    UdpSocket::from_std(s.into())
}

/// The Master's responder on `at` ([`LocateConfig::answers_on`]): answers queries for the
/// session `beacon` names, until the Master that owns it is gone.
pub(crate) async fn serve(
    beacon: Weak<Mutex<Option<(String, String, SocketAddr)>>>,
    at: SocketAddr,
) {
    let socket = match shared_socket(at) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(
                "locate: cannot listen on UDP {at} ({e}); singers whose code names an address \
                 this device no longer has must scan its QR code again"
            );
            return;
        }
    };
    let mut buf = vec![0u8; MAX_DATAGRAM + 1];
    let (mut window, mut sent) = (Instant::now(), 0u32);
    let mut recent: VecDeque<String> = VecDeque::new();
    loop {
        let recv = tokio::time::timeout(Duration::from_secs(1), socket.recv_from(&mut buf)).await;
        let Some(beacon) = beacon.upgrade() else { return };
        let Ok(Ok((n, from))) = recv else { continue };
        let Some((session, token, host)) = beacon.lock().ok().and_then(|b| b.clone()) else {
            continue;
        };
        drop(beacon);
        let Some((nonce, reply)) = answer(&buf[..n], &session, &token, host) else { continue };
        if recent.contains(&nonce) {
            continue;
        }
        if window.elapsed() >= Duration::from_secs(1) {
            (window, sent) = (Instant::now(), 0);
        }
        if sent < ANSWERS_PER_SECOND {
            sent += 1;
            if recent.len() >= RECENT_NONCES {
                recent.pop_front();
            }
            recent.push_back(nonce);
            let _ = socket.send_to(&reply, from).await;
        }
    }
}

/// Asks where the Master of `code`'s session is now: its address, if one answered with a proof
/// within [`LOCATE_WAIT`] (`None`: nobody did, or only with the address already known, or
/// asking is off).
pub(crate) async fn find(code: &JoinCode, cfg: LocateConfig) -> Option<SocketAddr> {
    let destinations = cfg.destinations(code.host);
    let first = destinations.first()?;
    let any = if first.is_ipv4() {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    } else {
        Ipv6Addr::UNSPECIFIED.into()
    };
    let socket = UdpSocket::bind(SocketAddr::new(any, 0)).await.ok()?;
    socket.set_broadcast(true).ok()?;
    let nonce = new_nonce();
    let q = query(&code.session_id, code.token.expose(), &nonce);
    let mut asked = 0;
    for to in destinations {
        match socket.send_to(&q, to).await {
            Ok(_) => asked += 1,
            Err(e) => tracing::debug!("locate: could not ask {to}: {e}"),
        }
    }
    if asked == 0 {
        return None;
    }
    let deadline = tokio::time::Instant::now() + LOCATE_WAIT;
    let mut buf = vec![0u8; MAX_DATAGRAM + 1];
    loop {
        let (n, from) = match tokio::time::timeout_at(deadline, socket.recv_from(&mut buf)).await {
            Err(_) => {
                tracing::debug!("locate: no answer (asked {asked} addresses)");
                return None;
            }
            // An ICMP error for one of the destinations, on some systems: the others may answer.
            Ok(Err(_)) => continue,
            Ok(Ok(got)) => got,
        };
        match check(&buf[..n], code, &nonce) {
            Some(host) if host != code.host => return Some(host),
            Some(_) => tracing::debug!("locate: {from} answered with the address already known"),
            None => tracing::debug!("locate: {from} answered without the session's proof"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use maestral_protocol::SessionToken;

    fn code() -> JoinCode {
        JoinCode {
            host: "10.0.0.5:4711".parse().expect("addr"),
            session_id: "s1".into(),
            token: SessionToken::new("tok"),
            fingerprint: "sha-256 AB".into(),
        }
    }

    #[test]
    fn the_master_of_the_session_answers_with_a_proof_the_follower_accepts() {
        let moved: SocketAddr = "10.0.0.9:4711".parse().expect("addr");
        let n1 = new_nonce();
        let (nonce, reply) = answer(&query("s1", "tok", &n1), "s1", "tok", moved).expect("one");
        assert_eq!(nonce, n1);
        assert_eq!(check(&reply, &code(), &n1), Some(moved));
        // Another nonce (a replayed answer) does not prove it.
        assert_eq!(check(&reply, &code(), &new_nonce()), None);
    }

    #[test]
    fn no_answer_for_another_session_and_no_trust_without_the_token() {
        let moved: SocketAddr = "10.0.0.9:4711".parse().expect("addr");
        let n1 = new_nonce();
        assert!(answer(&query("s2", "tok", &n1), "s1", "tok", moved).is_none());
        assert!(answer(b"garbage", "s1", "tok", moved).is_none());
        assert!(answer(&vec![b' '; 2000], "s1", "tok", moved).is_none());
        // A query from a device without the token, and one with a nonce that is not one.
        assert!(answer(&query("s1", "guess", &n1), "s1", "tok", moved).is_none());
        assert!(answer(&query("s1", "tok", ""), "s1", "tok", moved).is_none());
        // A device without the token answering for the session.
        let (_, forged) = answer(&query("s1", "guess", &n1), "s1", "guess", moved).expect("one");
        assert_eq!(check(&forged, &code(), &n1), None);
        // An answer whose address was changed on the way.
        let (_, reply) = answer(&query("s1", "tok", &n1), "s1", "tok", moved).expect("one");
        let text = String::from_utf8(reply).expect("UTF-8").replace("10.0.0.9", "10.0.0.66");
        assert_eq!(check(text.as_bytes(), &code(), &n1), None);
    }

    #[test]
    fn an_answer_naming_a_loopback_broadcast_or_other_family_address_is_not_taken() {
        let lan: SocketAddr = "192.168.1.20:4000".parse().expect("addr");
        let lo: SocketAddr = "127.0.0.1:4000".parse().expect("addr");
        let at = |s: &str| s.parse::<SocketAddr>().expect("addr");
        assert!(plausible(at("192.168.1.21:4001"), lan));
        assert!(!plausible(at("127.0.0.1:4001"), lan), "the singer's own machine");
        assert!(plausible(at("127.0.0.1:4001"), lo), "a loopback code stays on loopback");
        assert!(!plausible(at("255.255.255.255:4001"), lan));
        assert!(!plausible(at("224.0.0.1:4001"), lan));
        assert!(!plausible(at("0.0.0.0:4001"), lan));
        assert!(!plausible(at("192.168.1.21:0"), lan));
        assert!(!plausible(at("[fe80::1]:4001"), lan), "another family");
    }

    #[test]
    fn the_switch_reads_off_lan_and_an_address_and_says_what_is_wrong() {
        let parse = |s: &str| s.parse::<LocateConfig>();
        assert_eq!(parse("off"), Ok(LocateConfig::Off));
        assert_eq!(parse("lan"), Ok(LocateConfig::Lan { port: LOCATE_PORT }));
        assert_eq!(parse(" lan:5000 "), Ok(LocateConfig::Lan { port: 5000 }));
        let at = |s: &str| LocateConfig::At(s.parse().expect("addr"));
        assert_eq!(parse("127.0.0.1"), Ok(at("127.0.0.1:47474")));
        assert_eq!(parse("10.0.0.255:9"), Ok(at("10.0.0.255:9")));
        assert_eq!(parse("[::1]:9"), Ok(at("[::1]:9")));
        for bad in ["", "on", "lan:0", "lan:x", "127.0.0.1:0", "host.local", "10.0.0.1:99999"] {
            let e = parse(bad).expect_err(bad);
            assert!(e.starts_with("locate is `off`, `lan`"), "{bad}: {e}");
        }
        for shown in ["off", "lan", "lan:5000", "127.0.0.1:9"] {
            assert_eq!(parse(shown).expect("parses").to_string(), shown);
        }
    }

    #[test]
    fn nothing_goes_past_loopback_for_a_loopback_master_or_code_and_nothing_at_all_when_off() {
        let addr = |s: &str| -> SocketAddr { s.parse().expect("an address") };
        let lan = LocateConfig::default();
        let lo = addr("127.0.0.1:4711");
        assert_eq!(lan.destinations(lo), vec![addr("127.0.0.1:47474")]);
        assert_eq!(lan.answers_on(lo.ip()), Some(addr("127.0.0.1:47474")));
        let lan_host = addr("10.0.0.5:4711");
        assert!(lan.destinations(lan_host).contains(&addr("255.255.255.255:47474")));
        assert_eq!(lan.answers_on(lan_host.ip()), Some(addr("0.0.0.0:47474")));
        assert!(LocateConfig::Off.destinations(lan_host).is_empty());
        assert_eq!(LocateConfig::Off.answers_on(lan_host.ip()), None);
        let one = addr("127.0.0.1:9");
        assert_eq!(LocateConfig::At(one).destinations(lan_host), vec![one]);
        assert_eq!(LocateConfig::At(one).answers_on(lan_host.ip()), Some(one));
    }

    #[tokio::test]
    async fn a_query_over_udp_finds_the_master_and_nobody_answers_for_an_ended_session() {
        let beacon: Beacon = Arc::new(Mutex::new(None));
        let probe = std::net::UdpSocket::bind("127.0.0.1:0").expect("a free port");
        let port = probe.local_addr().expect("addr").port();
        drop(probe);
        let to = LocateConfig::At(SocketAddr::from((Ipv4Addr::LOCALHOST, port)));
        let at = to.answers_on(Ipv4Addr::LOCALHOST.into()).expect("it answers");
        tokio::spawn(serve(Arc::downgrade(&beacon), at));
        let moved: SocketAddr = "10.0.0.9:5000".parse().expect("addr");
        *beacon.lock().expect("lock") = Some(("s1".into(), "tok".into(), moved));
        let mut found = None;
        for _ in 0..20 {
            // The responder binds on its task: ask until it listens.
            found = find(&code(), to).await;
            if found.is_some() {
                break;
            }
        }
        assert_eq!(found, Some(moved));
        *beacon.lock().expect("lock") = None;
        assert_eq!(find(&code(), to).await, None, "an ended session is not answered for");
    }
}
