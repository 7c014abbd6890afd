//! A token holder's own link to a Master: the rogue peer of the hostile tests (this crate's and
//! the app's `tests/hostile.rs`, which includes this file).

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use maestral_net::joincode::JoinCode;
use maestral_net::rtc::{DtlsCert, Link, LinkEvent, RtcConfig, wait_open};
use maestral_net::signaling::{JoinError, JoinRequestBody, post_join};
use tokio::sync::mpsc::UnboundedReceiver;

/// Joins the session of `code` as `id`, with `cert` (or a fresh one), and waits for the link to
/// open. `Err`: the Master refused it.
pub async fn join(
    code: &JoinCode,
    id: &str,
    cert: Option<&DtlsCert>,
    wait: Duration,
) -> Result<(Link, UnboundedReceiver<LinkEvent>), JoinError> {
    join_edited(code, id, cert, wait, |offer| offer).await
}

/// As [`join`], with the offer changed by `edit` before it is posted.
pub async fn join_edited(
    code: &JoinCode,
    id: &str,
    cert: Option<&DtlsCert>,
    wait: Duration,
    edit: impl FnOnce(String) -> String,
) -> Result<(Link, UnboundedReceiver<LinkEvent>), JoinError> {
    let local = RtcConfig::new(IpAddr::V4(Ipv4Addr::LOCALHOST));
    let (link, offer, mut events) = Link::offer(&local, cert).await.expect("offer");
    let offer = edit(offer);
    let body = JoinRequestBody {
        session_id: code.session_id.clone(),
        token: code.token.clone(),
        device_id: id.into(),
        offer,
    };
    let answer = match post_join(code.host, &body, wait).await {
        Ok(a) => a,
        Err(e) => {
            link.close().await;
            return Err(e);
        }
    };
    link.accept_answer(&answer).await.expect("the answer applies");
    assert!(wait_open(&mut events, wait).await, "the rogue's link opens");
    Ok((link, events))
}

/// A listener on `addr` that answers every request `403 invalid_token`, as any device on the
/// LAN answering for the Master's address can. Returns how many it refused so far.
pub fn forge_403s(
    rt: &tokio::runtime::Runtime,
    addr: std::net::SocketAddr,
) -> std::sync::Arc<std::sync::atomic::AtomicUsize> {
    pretend(rt, addr, "403 Forbidden", r#"{"reason":"invalid_token"}"#.to_owned())
}

/// A listener on `addr` that answers every request with `status` (`"403 Forbidden"`) and the
/// JSON `body`, whatever was asked. Returns how many it answered so far.
pub fn pretend(
    rt: &tokio::runtime::Runtime,
    addr: std::net::SocketAddr,
    status: &'static str,
    body: String,
) -> std::sync::Arc<std::sync::atomic::AtomicUsize> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let listener = rt.block_on(tokio::net::TcpListener::bind(addr)).expect("the port is free");
    let n = count.clone();
    let reply = format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let reply = std::sync::Arc::new(reply);
    rt.spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let (n, reply) = (n.clone(), reply.clone());
            tokio::spawn(async move {
                // The whole request first (its head, then Content-Length bytes), so the reply is
                // read as an answer and not lost to a reset.
                let mut got = Vec::new();
                let mut buf = [0u8; 8192];
                let whole = |got: &[u8]| {
                    let text = String::from_utf8_lossy(got);
                    let Some(end) = text.find("\r\n\r\n") else { return false };
                    let length = text[..end]
                        .lines()
                        .find_map(|l| {
                            let (k, v) = l.split_once(':')?;
                            k.eq_ignore_ascii_case("content-length")
                                .then(|| v.trim().parse().ok())?
                        })
                        .unwrap_or(0usize);
                    got.len() >= end + 4 + length
                };
                while !whole(&got) && got.len() < 128 * 1024 {
                    match tokio::time::timeout(Duration::from_secs(2), s.read(&mut buf)).await {
                        Ok(Ok(n)) if n > 0 => got.extend_from_slice(&buf[..n]),
                        _ => break,
                    }
                }
                let _ = s.write_all(reply.as_bytes()).await;
                n.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            });
        }
    });
    count
}

/// Sends the `JOIN_REQUEST` an honest Follower sends once its link opens (a link that never
/// sends one is closed by the Master after 10 s).
pub async fn ask_to_join(link: &Link, code: &JoinCode, id: &str) {
    use maestral_protocol::{
        DeviceId, Envelope, FollowMode, JoinRequest, Message, SessionId, SongEpoch,
    };
    let join = Message::JoinRequest(JoinRequest {
        session_token: code.token.clone(),
        follow_mode: FollowMode::Follow,
        song_epoch: SongEpoch(0),
    });
    let env = Envelope::new(SessionId::new(code.session_id.clone()), DeviceId::new(id), 1, join);
    link.send_text(&env.encode()).await.expect("the request is sent");
}
