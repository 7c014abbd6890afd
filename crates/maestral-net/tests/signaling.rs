//! The signaling listener and client over real TCP on loopback.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use maestral_net::signaling::{
    JoinError, JoinOutcome, JoinRequestBody, MAX_BODY_BYTES, RateLimiter, RejectReason,
    SignalingConfig, SignalingServer, channel_handler, looks_like_offer, post_join,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};

const OFFER: &str = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=setup:actpass\r\na=mid:0\r\n";
const ANSWER: &str = "v=0\r\no=- 2 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=setup:active\r\na=mid:0\r\n";
const TIMEOUT: Duration = Duration::from_secs(10);

fn local() -> SocketAddr {
    "127.0.0.1:0".parse().expect("address")
}

fn body(token: &str) -> JoinRequestBody {
    JoinRequestBody {
        session_id: "0123456789abcdef".into(),
        token: token.into(),
        device_id: "follower-1".into(),
        offer: OFFER.into(),
    }
}

/// A handler as the sync thread would be: one session, token "good", ended session "old".
fn stub(req: JoinRequestBody) -> std::future::Ready<JoinOutcome> {
    std::future::ready(match (req.session_id.as_str(), req.token.expose()) {
        ("old", _) => JoinOutcome::SessionEnded(None),
        (_, "good") => JoinOutcome::Answer(format!("{ANSWER}a=x-device:{}\r\n", req.device_id)),
        (_, "unusable") => JoinOutcome::BadRequest,
        _ => JoinOutcome::InvalidToken(None),
    })
}

async fn server() -> SignalingServer {
    SignalingServer::bind(local(), stub).await.expect("binds")
}

/// A response as read off the socket: status code, headers (lower-case names), body.
#[derive(Debug)]
struct Raw {
    status: u16,
    headers: String,
    body: String,
}

/// Sends raw bytes and reads the whole response (requests say `Connection: close`). Only for
/// tests: it lets us send what no well-behaved client would.
async fn raw(addr: SocketAddr, request: &[u8]) -> Raw {
    let mut stream = TcpStream::connect(addr).await.expect("connects");
    raw_on(&mut stream, request).await
}

async fn raw_on(stream: &mut TcpStream, request: &[u8]) -> Raw {
    stream.write_all(request).await.expect("writes");
    let mut out = Vec::new();
    tokio::time::timeout(TIMEOUT, stream.read_to_end(&mut out))
        .await
        .expect("answer in time")
        .expect("reads");
    let text = String::from_utf8(out).expect("UTF-8 response");
    let (head, body) = text.split_once("\r\n\r\n").expect("a head");
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).expect("a status");
    Raw { status, headers: head.to_lowercase(), body: body.to_owned() }
}

fn post(path: &str, content_type: Option<&str>, body: &str) -> Vec<u8> {
    let ct = content_type.map_or(String::new(), |c| format!("Content-Type: {c}\r\n"));
    format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{ct}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn json(body: &JoinRequestBody) -> String {
    serde_json::to_string(body).expect("serialises")
}

fn assert_reason(r: &Raw, status: u16, reason: &str) {
    assert_eq!(r.status, status, "{r:?}");
    assert_eq!(r.body, format!(r#"{{"reason":"{reason}"}}"#), "{r:?}");
    assert!(r.headers.contains("content-type: application/json"), "{r:?}");
}

#[tokio::test]
async fn join_answers_200_with_the_handlers_sdp() {
    let server = server().await;
    let answer = post_join(server.local_addr(), &body("good"), TIMEOUT).await.expect("joins");
    assert_eq!(answer, format!("{ANSWER}a=x-device:follower-1\r\n"));

    let r =
        raw(server.local_addr(), &post("/v1/join", Some("application/json"), &json(&body("good"))))
            .await;
    assert_eq!(r.status, 200);
    assert!(r.headers.contains("content-type: application/json"));
    let v: serde_json::Value = serde_json::from_str(&r.body).expect("JSON");
    assert_eq!(v["answer"], format!("{ANSWER}a=x-device:follower-1\r\n"));
    server.shutdown().await;
}

#[tokio::test]
async fn a_request_without_content_type_is_accepted() {
    let server = server().await;
    let r = raw(server.local_addr(), &post("/v1/join", None, &json(&body("good")))).await;
    assert_eq!(r.status, 200, "{r:?}");
    // A wrong content type is not held against the client either.
    let r =
        raw(server.local_addr(), &post("/v1/join", Some("text/plain"), &json(&body("good")))).await;
    assert_eq!(r.status, 200, "{r:?}");
    server.shutdown().await;
}

#[tokio::test]
async fn refusals_have_exact_status_and_body() {
    // More refusals than the limit allows one address: every one counts toward it (see the
    // rate-limit tests), and this test is about their shape.
    let config = SignalingConfig { max_rejections: 100, ..SignalingConfig::default() };
    let server = SignalingServer::bind_with(local(), stub, config).await.expect("binds");
    let addr = server.local_addr();
    let ct = Some("application/json");

    assert_reason(
        &raw(addr, &post("/v1/join", ct, &json(&body("bad")))).await,
        403,
        "invalid_token",
    );
    let mut ended = body("good");
    ended.session_id = "old".into();
    assert_reason(&raw(addr, &post("/v1/join", ct, &json(&ended))).await, 403, "session_ended");

    // The handler's own "this offer is unusable".
    assert_reason(
        &raw(addr, &post("/v1/join", ct, &json(&body("unusable")))).await,
        400,
        "bad_request",
    );

    let mut answer_as_offer = body("good");
    answer_as_offer.offer = ANSWER.into();
    let mut empty_offer = body("good");
    empty_offer.offer = String::new();
    let mut empty_device = body("good");
    empty_device.device_id = String::new();
    for bad in [
        "not json".to_owned(),
        String::new(),
        "[]".into(),
        r#"{"session_id":"s","token":"good","device_id":"d"}"#.into(),
        r#"{"session_id":"s","token":"good","device_id":7,"offer":"v=0"}"#.into(),
        r#"{"session_id":null,"token":"good","device_id":"d","offer":"v=0"}"#.into(),
        json(&answer_as_offer),
        json(&empty_offer),
        json(&empty_device),
    ] {
        assert_reason(&raw(addr, &post("/v1/join", ct, &bad)).await, 400, "bad_request");
    }

    assert_reason(&raw(addr, &post("/v2/join", ct, "{}")).await, 404, "not_found");
    // `/` is the browser Follower's page: GET only.
    assert_reason(&raw(addr, &post("/", ct, "{}")).await, 405, "method_not_allowed");
    let get = b"GET /v1/join HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    assert_reason(&raw(addr, get).await, 405, "method_not_allowed");
    server.shutdown().await;
}

#[tokio::test]
async fn unknown_fields_are_ignored() {
    let server = server().await;
    let text = json(&body("good")).replace('}', r#","future":{"x":1}}"#);
    let r = raw(server.local_addr(), &post("/v1/join", None, &text)).await;
    assert_eq!(r.status, 200, "{r:?}");
    server.shutdown().await;
}

/// A JSON join body padded with spaces to exactly `len` bytes.
fn padded(len: usize) -> String {
    let text = json(&body("good"));
    format!("{text}{}", " ".repeat(len - text.len()))
}

#[tokio::test]
async fn bodies_over_64_kib_get_413_with_or_without_content_length() {
    let server = server().await;
    let addr = server.local_addr();

    let exact = padded(MAX_BODY_BYTES);
    assert_eq!(raw(addr, &post("/v1/join", None, &exact)).await.status, 200);

    let over = padded(MAX_BODY_BYTES + 1);
    assert_reason(&raw(addr, &post("/v1/join", None, &over)).await, 413, "too_large");

    // Chunked: no Content-Length, so the cap must apply while reading.
    let chunked = |body: &str| {
        let mut req = b"POST /v1/join HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        for chunk in body.as_bytes().chunks(10_000) {
            req.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
            req.extend_from_slice(chunk);
            req.extend_from_slice(b"\r\n");
        }
        req.extend_from_slice(b"0\r\n\r\n");
        req
    };
    assert_eq!(raw(addr, &chunked(&exact)).await.status, 200);
    assert_reason(&raw(addr, &chunked(&over)).await, 413, "too_large");

    // A declared length far over the limit is refused before any body arrives.
    let head = b"POST /v1/join HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 100000000\r\n\r\n";
    assert_reason(&raw(addr, head).await, 413, "too_large");
    server.shutdown().await;
}

#[tokio::test]
async fn the_eleventh_403_in_the_window_gets_429() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    let handler = move |req: JoinRequestBody| {
        counted.fetch_add(1, Ordering::SeqCst);
        stub(req)
    };
    // A window no test run outlives, so every refusal below is inside it however slow the
    // machine; the window passing is `a_limited_address_may_try_again_once_the_window_passed`.
    let config =
        SignalingConfig { rate_window: Duration::from_secs(3600), ..SignalingConfig::default() };
    let server = SignalingServer::bind_with(local(), handler, config).await.expect("binds");
    let addr = server.local_addr();

    for i in 0..10 {
        let e = post_join(addr, &body("bad"), TIMEOUT).await.expect_err("refused");
        assert!(
            matches!(e, JoinError::Refused(RejectReason::InvalidToken, _)),
            "attempt {i}: {e:?}"
        );
    }
    let r = raw(addr, &post("/v1/join", None, &json(&body("bad")))).await;
    assert_reason(&r, 429, "too_many_attempts");
    // Even the right token waits now, and the handler is not asked at all.
    let e = post_join(addr, &body("good"), TIMEOUT).await.expect_err("limited");
    assert!(matches!(e, JoinError::Rejected(RejectReason::TooManyAttempts)), "{e:?}");
    assert!(e.to_string().contains("wait a minute"), "{e}");
    assert_eq!(calls.load(Ordering::SeqCst), 10);

    // Another address is not affected (all of 127.0.0.0/8 is loopback on Linux).
    let socket = TcpSocket::new_v4().expect("socket");
    if socket.bind("127.0.0.2:0".parse().expect("address")).is_ok() {
        let mut stream = socket.connect(addr).await.expect("connects");
        let r = raw_on(&mut stream, &post("/v1/join", None, &json(&body("good")))).await;
        assert_eq!(r.status, 200, "{r:?}");
    }
    server.shutdown().await;
}

#[tokio::test]
async fn a_limited_address_may_try_again_once_the_window_passed() {
    // The server must use the configured window (the default is 60 s): with a short one, the
    // refused address is let in again well within the deadline. Whether it is still limited at
    // any given moment depends on the machine's speed, so only the end state is asserted; the
    // sliding itself is `rate_limiter_window_slides`, on the limiter's own clock.
    let config = SignalingConfig {
        max_rejections: 1,
        rate_window: Duration::from_millis(500),
        ..SignalingConfig::default()
    };
    let server = SignalingServer::bind_with(local(), stub, config).await.expect("binds");
    let addr = server.local_addr();
    let e = post_join(addr, &body("bad"), TIMEOUT).await.expect_err("refused");
    assert!(matches!(e, JoinError::Refused(RejectReason::InvalidToken, _)), "{e:?}");

    // A limited request is not counted, so polling does not keep the address limited.
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    loop {
        match post_join(addr, &body("good"), TIMEOUT).await {
            Ok(_) => break,
            Err(JoinError::Rejected(RejectReason::TooManyAttempts)) => {}
            Err(e) => panic!("not a rate-limit refusal: {e:?}"),
        }
        assert!(tokio::time::Instant::now() < deadline, "still limited long after the window");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.shutdown().await;
}

#[test]
fn rate_limiter_window_slides() {
    let limiter = RateLimiter::new(10, Duration::from_secs(60));
    let ip = "192.0.2.1".parse().expect("ip");
    let other = "192.0.2.2".parse().expect("ip");
    let t0 = Instant::now();
    for i in 0..10 {
        assert!(!limiter.is_limited(ip, t0 + Duration::from_secs(i)));
        limiter.record_rejection(ip, t0 + Duration::from_secs(i));
    }
    assert!(limiter.is_limited(ip, t0 + Duration::from_secs(10)));
    assert!(!limiter.is_limited(other, t0 + Duration::from_secs(10)));
    // The first rejection leaves the window at t0 + 60 s: one attempt is free again.
    assert!(limiter.is_limited(ip, t0 + Duration::from_millis(59_999)));
    assert!(!limiter.is_limited(ip, t0 + Duration::from_secs(60)));
    limiter.record_rejection(ip, t0 + Duration::from_secs(60));
    assert!(limiter.is_limited(ip, t0 + Duration::from_secs(60)));
    // An IPv4-mapped IPv6 address is the same client.
    assert!(
        limiter.is_limited("::ffff:192.0.2.1".parse().expect("ip"), t0 + Duration::from_secs(60))
    );
    assert!(!limiter.is_limited(ip, t0 + Duration::from_secs(200)));
}

#[tokio::test]
async fn garbage_on_the_socket_does_not_stop_the_server() {
    let server = server().await;
    let addr = server.local_addr();
    for garbage in [
        &b"\x00\x01\x02\xff\xfe garbage \r\n\r\n"[..],
        b"GET\r\n\r\n",
        b"POST /v1/join HTTP/1.1\r\nContent-Length: nope\r\n\r\n",
        b"POST /v1/join HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    ] {
        let mut s = TcpStream::connect(addr).await.expect("connects");
        let _ = s.write_all(garbage).await;
        let mut sink = Vec::new();
        let _ = tokio::time::timeout(TIMEOUT, s.read_to_end(&mut sink)).await;
    }
    // A client that connects and leaves mid-request.
    {
        let mut s = TcpStream::connect(addr).await.expect("connects");
        let _ = s
            .write_all(b"POST /v1/join HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n\r\n{\"se")
            .await;
    }
    post_join(addr, &body("good"), TIMEOUT).await.expect("still serving");
    server.shutdown().await;
}

#[tokio::test]
async fn fifty_concurrent_joins_are_all_answered() {
    let server = server().await;
    let addr = server.local_addr();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..50 {
        tasks.spawn(async move {
            let mut b = body("good");
            b.device_id = format!("follower-{i}");
            (i, post_join(addr, &b, TIMEOUT).await)
        });
    }
    let mut answered = 0;
    while let Some(done) = tasks.join_next().await {
        let (i, result) = done.expect("task ran");
        let answer = result.expect("answered");
        assert!(answer.ends_with(&format!("a=x-device:follower-{i}\r\n")));
        answered += 1;
    }
    assert_eq!(answered, 50);
    server.shutdown().await;
}

#[tokio::test]
async fn channel_handler_forwards_requests_and_a_dropped_reply_is_503() {
    let (handler, mut requests) = channel_handler(8);
    let server = SignalingServer::bind(local(), handler).await.expect("binds");
    let addr = server.local_addr();
    let sync_thread = tokio::spawn(async move {
        // First: answer. Second: drop the reply unanswered.
        let first = requests.recv().await.expect("a request");
        assert_eq!(first.request.device_id, "follower-1");
        let _ = first.reply.send(JoinOutcome::Answer(ANSWER.into()));
        let second = requests.recv().await.expect("a request");
        drop(second);
    });
    assert_eq!(post_join(addr, &body("any"), TIMEOUT).await.expect("joins"), ANSWER);
    let r = raw(addr, &post("/v1/join", None, &json(&body("any")))).await;
    assert_reason(&r, 503, "unavailable");
    sync_thread.await.expect("sync thread");
    server.shutdown().await;
}

#[tokio::test]
async fn a_stuck_handler_gets_503_after_the_handler_timeout() {
    let handler = |_req: JoinRequestBody| std::future::pending::<JoinOutcome>();
    let config = SignalingConfig {
        handler_timeout: Duration::from_millis(200),
        ..SignalingConfig::default()
    };
    let server = SignalingServer::bind_with(local(), handler, config).await.expect("binds");
    let e = post_join(server.local_addr(), &body("good"), TIMEOUT).await.expect_err("busy");
    assert!(matches!(e, JoinError::Rejected(RejectReason::Unavailable)), "{e:?}");
    server.shutdown().await;
}

#[tokio::test]
async fn client_errors_say_what_happened() {
    // Unreachable: a port nobody listens on.
    let closed = {
        let l = TcpListener::bind(local()).await.expect("binds");
        l.local_addr().expect("address")
    };
    let e = post_join(closed, &body("good"), TIMEOUT).await.expect_err("unreachable");
    assert!(matches!(e, JoinError::Unreachable { host, .. } if host == closed), "{e:?}");
    assert!(e.to_string().contains("same network"), "{e}");

    // Timeout: a listener that accepts and never answers.
    let silent = TcpListener::bind(local()).await.expect("binds");
    let silent_addr = silent.local_addr().expect("address");
    let hold = tokio::spawn(async move {
        let (_s, _) = silent.accept().await.expect("accepts");
        tokio::time::sleep(Duration::from_secs(5)).await;
    });
    let e = post_join(silent_addr, &body("good"), Duration::from_millis(300))
        .await
        .expect_err("times out");
    assert!(matches!(e, JoinError::Timeout), "{e:?}");
    hold.abort();

    // Bad responses: something that is not a Maestral Master.
    for reply in [
        "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
        "HTTP/1.1 200 OK\r\nContent-Length: 13\r\nConnection: close\r\n\r\n{\"answer\":\"\"}",
        "HTTP/1.1 403 Forbidden\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}",
        "HTTP/1.1 500 Oops\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        "this is not HTTP\r\n\r\n",
    ] {
        let fake = TcpListener::bind(local()).await.expect("binds");
        let fake_addr = fake.local_addr().expect("address");
        let serve = tokio::spawn(async move {
            let (mut s, _) = fake.accept().await.expect("accepts");
            let mut buf = vec![0u8; 4096];
            let _ = s.read(&mut buf).await;
            let _ = s.write_all(reply.as_bytes()).await;
            let _ = s.shutdown().await;
        });
        let e = post_join(fake_addr, &body("good"), TIMEOUT).await.expect_err("bad");
        assert!(matches!(e, JoinError::BadResponse(_)), "{reply:?}: {e:?}");
        serve.await.expect("fake server");
    }
}

#[tokio::test]
async fn reject_reasons_map_to_readable_errors() {
    let server = server().await;
    let addr = server.local_addr();
    let e = post_join(addr, &body("bad"), TIMEOUT).await.expect_err("refused");
    assert!(matches!(e, JoinError::Refused(RejectReason::InvalidToken, _)));
    assert!(e.to_string().contains("scan the QR code"), "{e}");
    let mut ended = body("good");
    ended.session_id = "old".into();
    let e = post_join(addr, &ended, TIMEOUT).await.expect_err("ended");
    assert!(matches!(e, JoinError::Refused(RejectReason::SessionEnded, _)));
    assert!(e.to_string().contains("ended"), "{e}");
    let mut big = body("good");
    big.offer = format!("{OFFER}{}", "a=x\r\n".repeat(MAX_BODY_BYTES / 5));
    let e = post_join(addr, &big, TIMEOUT).await.expect_err("too large");
    assert!(matches!(e, JoinError::Rejected(RejectReason::TooLarge)), "{e:?}");
    let e = post_join(addr, &body("unusable"), TIMEOUT).await.expect_err("bad");
    assert!(matches!(e, JoinError::Rejected(RejectReason::BadRequest)), "{e:?}");
    server.shutdown().await;
}

#[tokio::test]
async fn after_shutdown_nothing_listens() {
    let server = server().await;
    let addr = server.local_addr();
    server.shutdown().await;
    let e = post_join(addr, &body("good"), TIMEOUT).await.expect_err("closed");
    assert!(matches!(e, JoinError::Unreachable { .. }), "{e:?}");
}

#[test]
fn offer_shape_check() {
    assert!(looks_like_offer(OFFER));
    assert!(looks_like_offer(&OFFER.replace("\r\n", "\n")));
    assert!(!looks_like_offer(ANSWER));
    assert!(!looks_like_offer(""));
    assert!(!looks_like_offer("hello"));
    assert!(!looks_like_offer("v=0\r\na=setup:actpass\r\n"));
    assert!(!looks_like_offer(
        "m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\nv=0\r\na=x\r\n"
    ));
}

#[test]
fn debug_of_a_request_hides_the_token() {
    assert!(!format!("{:?}", body("SECRET_TOKEN_VALUE")).contains("SECRET_TOKEN_VALUE"));
}

/// A connection from `source` (a loopback address) to `addr`.
async fn connect_from(source: &str, addr: SocketAddr) -> Option<TcpStream> {
    let socket = TcpSocket::new_v4().expect("socket");
    socket.bind(format!("{source}:0").parse().expect("address")).ok()?;
    socket.connect(addr).await.ok()
}

/// Whether the server closed `s` (a read returns end of file or an error) within `within`.
async fn closed(s: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 512];
    loop {
        match tokio::time::timeout(within, s.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => {}
            Err(_) => return false,
        }
    }
}

#[tokio::test]
async fn one_host_trickling_sockets_cannot_stop_joins_and_trips_its_own_limit() {
    // Loopback is exempt by default; here 127.0.0.1 plays a host on the LAN.
    let config = SignalingConfig { exempt_loopback: false, ..SignalingConfig::default() };
    let per_address = config.max_connections_per_address;
    let header_timeout = config.header_read_timeout;
    let server = SignalingServer::bind_with(local(), stub, config).await.expect("binds");
    let addr = server.local_addr();
    // The attacker opens many sockets, each with a request head it never finishes.
    let mut held = Vec::new();
    for _ in 0..40 {
        let mut s = TcpStream::connect(addr).await.expect("connects");
        let _ = s.write_all(b"POST /v1/join HTTP/1.1\r\nHost: x\r\n").await;
        held.push(s);
    }
    // Past its cap, its sockets are closed at once.
    let mut cut = 0;
    for s in &mut held[per_address..] {
        if closed(s, Duration::from_millis(500)).await {
            cut += 1;
        }
    }
    assert_eq!(cut, held.len() - per_address, "every socket past the cap is closed");
    // Meanwhile another host joins at once.
    let Some(mut honest) = connect_from("127.0.0.2", addr).await else {
        panic!("127.0.0.2 is loopback on Linux");
    };
    let started = Instant::now();
    let r = raw_on(&mut honest, &post("/v1/join", None, &json(&body("good")))).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert!(started.elapsed() < header_timeout, "answered without waiting on the attacker");
    // The held sockets time out (short header timeout), and count as refusals.
    for s in &mut held[..per_address] {
        assert!(closed(s, header_timeout * 3).await, "a trickling socket is dropped");
    }
    // A few more rounds of trickling sockets, and the attacker is limited like a guesser.
    for _ in 0..2 {
        let mut round = Vec::new();
        for _ in 0..per_address {
            let mut s = TcpStream::connect(addr).await.expect("connects");
            let _ = s.write_all(b"POST /v1/join HTTP/1.1\r\n").await;
            round.push(s);
        }
        for s in &mut round {
            assert!(closed(s, header_timeout * 3).await);
        }
    }
    let r = raw(addr, &post("/v1/join", None, &json(&body("good")))).await;
    assert_reason(&r, 429, "too_many_attempts");
    server.shutdown().await;
}

#[tokio::test]
async fn a_burst_of_guesses_in_flight_together_gets_no_more_than_the_limit_of_403s() {
    // A slow handler, so every guess is in flight at once.
    let handler = |req: JoinRequestBody| async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        stub(req).await
    };
    let server = SignalingServer::bind_with(local(), handler, SignalingConfig::default())
        .await
        .expect("binds");
    let addr = server.local_addr();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..30 {
        tasks.spawn(async move { post_join(addr, &body("bad"), TIMEOUT).await });
    }
    let (mut forbidden, mut limited) = (0, 0);
    while let Some(done) = tasks.join_next().await {
        match done.expect("task") {
            Err(JoinError::Refused(RejectReason::InvalidToken, _)) => forbidden += 1,
            Err(JoinError::Rejected(RejectReason::TooManyAttempts)) => limited += 1,
            other => panic!("{other:?}"),
        }
    }
    assert_eq!((forbidden, limited), (10, 20), "the 403s stop at the limit");
    server.shutdown().await;
}

#[tokio::test]
async fn bad_requests_count_toward_the_limit() {
    let server = server().await;
    let addr = server.local_addr();
    for _ in 0..10 {
        let r = raw(addr, &post("/v1/join", None, "{not json")).await;
        assert_reason(&r, 400, "bad_request");
    }
    let mut bad_id = body("good");
    bad_id.device_id = "a b\u{202e}".into();
    let r = raw(addr, &post("/v1/join", None, &json(&bad_id))).await;
    assert_reason(&r, 429, "too_many_attempts");
    server.shutdown().await;
}

#[tokio::test]
async fn a_device_id_that_is_not_one_gets_400() {
    let server = server().await;
    let addr = server.local_addr();
    for id in ["", "two words", "<script>", "tab\tid", &"x".repeat(129)] {
        let mut b = body("good");
        b.device_id = id.to_owned();
        let r = raw(addr, &post("/v1/join", None, &json(&b))).await;
        assert_reason(&r, 400, "bad_request");
    }
    server.shutdown().await;
}

#[tokio::test]
async fn an_address_already_refused_takes_none_of_the_slots() {
    let config =
        SignalingConfig { max_connections: 4, max_rejections: 1, ..SignalingConfig::default() };
    let server = SignalingServer::bind_with(local(), stub, config).await.expect("binds");
    let addr = server.local_addr();
    let r = raw(addr, &post("/v1/join", None, &json(&body("bad")))).await;
    assert_reason(&r, 403, "invalid_token");
    // 127.0.0.1 is past its limit: its requests are answered 429 ...
    for _ in 0..10 {
        let r = raw(addr, &post("/v1/join", None, &json(&body("good")))).await;
        assert_reason(&r, 429, "too_many_attempts");
    }
    // ... and sockets it holds open without a word take no slot: another host joins.
    let mut held = Vec::new();
    for _ in 0..8 {
        held.push(TcpStream::connect(addr).await.expect("connects"));
    }
    let Some(mut honest) = connect_from("127.0.0.2", addr).await else {
        panic!("127.0.0.2 is loopback on Linux");
    };
    let r = raw_on(&mut honest, &post("/v1/join", None, &json(&body("good")))).await;
    assert_eq!(r.status, 200, "{r:?}");
    for s in &mut held {
        assert!(closed(s, TIMEOUT).await, "a refused address's idle socket is closed");
    }
    server.shutdown().await;
}

#[tokio::test]
async fn a_request_head_over_8_kib_gets_431() {
    let server = server().await;
    let addr = server.local_addr();
    let filler = format!("X-Filler: {}\r\n", "a".repeat(1000)).repeat(20);
    let request = format!("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{filler}\r\n");
    let mut stream = TcpStream::connect(addr).await.expect("connects");
    let _ = stream.write_all(request.as_bytes()).await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(TIMEOUT, stream.read_to_end(&mut out)).await;
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 431"), "{text}");
    // A request of the usual size is still served.
    let r = raw(addr, &post("/v1/join", None, &json(&body("good")))).await;
    assert_eq!(r.status, 200, "{r:?}");
    server.shutdown().await;
}
