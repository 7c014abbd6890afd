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
use std::net::{Ipv4Addr, SocketAddr};
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

/// Where locate queries go and are heard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocateConfig {
    /// A Master hears queries on this UDP port (0: it does not answer).
    pub port: u16,
    /// A Follower sends its queries here; `None` (the default): to the broadcast address of
    /// each of this machine's networks and to 255.255.255.255, on `port`.
    pub query_to: Option<SocketAddr>,
}

impl Default for LocateConfig {
    fn default() -> Self {
        LocateConfig { port: LOCATE_PORT, query_to: None }
    }
}

/// Where a query goes: `to`, or every network's broadcast address (a network without a default
/// route cannot reach 255.255.255.255) and 255.255.255.255 itself.
fn destinations(to: Option<SocketAddr>, port: u16) -> Vec<SocketAddr> {
    if let Some(to) = to {
        return vec![to];
    }
    let mut all = vec![SocketAddr::from((Ipv4Addr::BROADCAST, port))];
    all.extend(crate::addr::broadcasts().into_iter().map(|b| SocketAddr::from((b, port))));
    all
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
/// if it is a query for that session from a token holder; the query's nonce with it.
pub(crate) fn answer(
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
    Some(a.host)
}

/// What a Master answers for: its session, token and signaling address (`None`: no session).
pub(crate) type Beacon = Arc<Mutex<Option<(String, String, SocketAddr)>>>;

/// A socket on `port` of every address, shared with other listeners of the port (each hears the
/// broadcasts; two Masters on one machine both answer for their own sessions).
fn shared_socket(port: u16) -> std::io::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    s.set_reuse_address(true)?;
    s.set_nonblocking(true)?;
    s.bind(&SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)).into())?;
    UdpSocket::from_std(s.into())
}

/// The Master's responder: answers queries for the session `beacon` names, until the Master
/// that owns it is gone.
pub(crate) async fn serve(beacon: Weak<Mutex<Option<(String, String, SocketAddr)>>>, port: u16) {
    let socket = match shared_socket(port) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(
                "locate: cannot listen on UDP port {port} ({e}); singers whose code names an \
                 address this device no longer has must scan its QR code again"
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
    if cfg.port == 0 && cfg.query_to.is_none() {
        return None;
    }
    let socket = UdpSocket::bind(SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0))).await.ok()?;
    socket.set_broadcast(true).ok()?;
    let nonce = new_nonce();
    let q = query(&code.session_id, code.token.expose(), &nonce);
    let mut asked = 0;
    for to in destinations(cfg.query_to, cfg.port) {
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

    #[tokio::test]
    async fn a_query_over_udp_finds_the_master_and_nobody_answers_for_an_ended_session() {
        let beacon: Beacon = Arc::new(Mutex::new(None));
        let probe = std::net::UdpSocket::bind("127.0.0.1:0").expect("a free port");
        let port = probe.local_addr().expect("addr").port();
        drop(probe);
        tokio::spawn(serve(Arc::downgrade(&beacon), port));
        let moved: SocketAddr = "127.0.0.1:5000".parse().expect("addr");
        let to =
            LocateConfig { port, query_to: Some(SocketAddr::from((Ipv4Addr::LOCALHOST, port))) };
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
