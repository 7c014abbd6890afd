//! `maestral_net::rtc` over real WebRTC on 127.0.0.1: open, message order, close, dead peer,
//! certificates and bad input. Every wait is bounded; times are printed, never asserted.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use maestral_net::rtc::{
    DtlsCert, Link, LinkEvent, MAX_MESSAGE_SIZE, RtcConfig, RtcError, sdp_fingerprints,
    sha256_fingerprint,
};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::time::timeout;

/// Generous bound on any single wait: loopback needs milliseconds, a loaded 2-core CI box more.
const WAIT: Duration = Duration::from_secs(10);

type Events = UnboundedReceiver<LinkEvent>;

fn cfg() -> RtcConfig {
    RtcConfig::new(IpAddr::V4(Ipv4Addr::LOCALHOST))
}

async fn next(events: &mut Events) -> Option<LinkEvent> {
    timeout(WAIT, events.recv()).await.expect("timed out waiting for a link event")
}

/// Next event that is not a link-quality change (a loaded machine may see a blip).
async fn next_message(events: &mut Events) -> Option<LinkEvent> {
    loop {
        match next(events).await {
            Some(LinkEvent::Degraded | LinkEvent::Recovered) => continue,
            other => return other,
        }
    }
}

async fn expect_closed(events: &mut Events) {
    loop {
        match next(events).await {
            Some(LinkEvent::Closed) => break,
            Some(LinkEvent::Degraded | LinkEvent::Recovered) => continue,
            other => panic!("expected Closed, got {other:?}"),
        }
    }
    assert_eq!(next(events).await, None, "nothing may follow Closed");
}

/// Offer, answer, accept; both sides open.
async fn connect(
    offer_cert: Option<&DtlsCert>,
    answer_cert: Option<&DtlsCert>,
) -> (Link, Events, Link, Events) {
    let (a, offer, mut a_events) = Link::offer(&cfg(), offer_cert).await.expect("offer");
    let (b, answer, mut b_events) =
        Link::answer(&cfg(), answer_cert, &offer).await.expect("answer");
    a.accept_answer(&answer).await.expect("accept answer");
    assert_eq!(next(&mut a_events).await, Some(LinkEvent::Open));
    assert_eq!(next(&mut b_events).await, Some(LinkEvent::Open));
    (a, a_events, b, b_events)
}

fn numbered(i: usize) -> String {
    match i {
        7 => format!("{i}: 🎼 Übung — ♩=120, 合唱, ελληνικά"),
        50 => format!("{i}: {}", "x".repeat(60 * 1024)),
        _ => format!("{i}: {{\"type\":\"PAGE\",\"page_index\":{i}}}"),
    }
}

async fn send_all(link: &Link) {
    for i in 0..100 {
        link.send_text(&numbered(i)).await.expect("send");
    }
}

async fn receive_all(events: &mut Events) {
    for i in 0..100 {
        match next_message(events).await {
            Some(LinkEvent::Text(text)) => assert_eq!(text, numbered(i), "message {i}"),
            other => panic!("message {i}: expected Text, got {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_arrive_in_order_both_ways() {
    let start = Instant::now();
    let (a, offer, mut a_events) = Link::offer(&cfg(), None).await.expect("offer");
    let offered = start.elapsed();
    let (b, answer, mut b_events) = Link::answer(&cfg(), None, &offer).await.expect("answer");
    a.accept_answer(&answer).await.expect("accept answer");
    assert_eq!(next(&mut a_events).await, Some(LinkEvent::Open));
    let a_open = start.elapsed();
    assert_eq!(next(&mut b_events).await, Some(LinkEvent::Open));
    let both_open = start.elapsed();
    eprintln!(
        "offer ready after {offered:?}; offerer open after {a_open:?}; both open after {both_open:?}"
    );

    let sent = Instant::now();
    let (_, _, _, _) = tokio::join!(
        send_all(&a),
        send_all(&b),
        receive_all(&mut b_events),
        receive_all(&mut a_events),
    );
    eprintln!("100 messages each way (one of 60 KiB) in {:?}", sent.elapsed());

    a.close().await;
    b.close().await;
    expect_closed(&mut a_events).await;
    expect_closed(&mut b_events).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_reaches_the_peer() {
    let (a, mut a_events, b, mut b_events) = connect(None, None).await;
    assert_eq!(
        a.send_text(&"x".repeat(MAX_MESSAGE_SIZE + 1)).await,
        Err(RtcError::TooLarge(MAX_MESSAGE_SIZE + 1))
    );
    a.send_text("last words").await.expect("send");

    let closing = Instant::now();
    a.close().await;
    // The closing side reports its own close too, and its stream ends.
    expect_closed(&mut a_events).await;
    assert!(matches!(a.send_text("too late").await, Err(RtcError::Closed)));
    a.close().await; // idempotent

    // What was sent before the close still arrives, then Closed.
    assert_eq!(next_message(&mut b_events).await, Some(LinkEvent::Text("last words".to_owned())));
    expect_closed(&mut b_events).await;
    eprintln!("peer saw Closed {:?} after close()", closing.elapsed());
    assert!(b.send_text("anyone?").await.is_err());
    b.close().await;
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_before_open_is_refused() {
    let (a, _offer, _events) = Link::offer(&cfg(), None).await.expect("offer");
    assert!(matches!(a.send_text("early").await, Err(RtcError::NotOpen)));
    assert!(matches!(a.send_copy("early").await, Err(RtcError::NotOpen)));
    a.close().await;
}

/// The next copy on `events`, skipping link-quality changes (anything else fails the test).
async fn next_copy(events: &mut Events) -> Option<String> {
    match next_message(events).await {
        Some(LinkEvent::Copy(text)) => Some(text),
        other => panic!("expected a copy, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copies_travel_both_ways_on_their_own_channel() {
    let (a, mut a_events, b, mut b_events) = connect(None, None).await;
    // Offerer to answerer and back: each side made the negotiated channel with its connection.
    a.send_copy("page 4").await.expect("copy from the offerer");
    assert_eq!(next_copy(&mut b_events).await.as_deref(), Some("page 4"));
    b.send_copy("page 6").await.expect("copy from the answerer");
    assert_eq!(next_copy(&mut a_events).await.as_deref(), Some("page 6"));
    // Copies are told apart from the sync channel's messages, which keep their own order.
    a.send_text("first").await.expect("send");
    a.send_text("second").await.expect("send");
    let mut texts = Vec::new();
    while texts.len() < 2 {
        match next_message(&mut b_events).await {
            Some(LinkEvent::Text(t)) => texts.push(t),
            other => panic!("expected a text, got {other:?}"),
        }
    }
    assert_eq!(texts, ["first", "second"]);
    // Over the limit: refused at the sender like a text.
    let big = "x".repeat(MAX_MESSAGE_SIZE + 1);
    assert_eq!(a.send_copy(&big).await, Err(RtcError::TooLarge(MAX_MESSAGE_SIZE + 1)));
    a.close().await;
    expect_closed(&mut b_events).await;
    assert!(matches!(a.send_copy("too late").await, Err(RtcError::Closed)));
    b.close().await;
    expect_closed(&mut a_events).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_certificate_keeps_its_fingerprint() {
    let cert = DtlsCert::generate().expect("generate");
    let fingerprint = cert.fingerprint().to_owned();
    let hex = fingerprint.strip_prefix("sha-256 ").expect("sha-256 prefix");
    let pairs: Vec<&str> = hex.split(':').collect();
    assert_eq!(pairs.len(), 32, "{fingerprint}");
    assert!(pairs.iter().all(|pair| pair.len() == 2
        && pair.chars().all(|c| c.is_ascii_digit() || ('A'..='F').contains(&c))));

    // Two links of one session: same fingerprint in both SDPs, equal to the certificate's.
    let (one, offer_one, _one_events) = Link::offer(&cfg(), Some(&cert)).await.expect("offer");
    let (two, offer_two, _two_events) = Link::offer(&cfg(), Some(&cert)).await.expect("offer");
    for sdp in [&offer_one, &offer_two] {
        let found = sha256_fingerprint(sdp).expect("a sha-256 fingerprint in the SDP");
        assert!(found.eq_ignore_ascii_case(&fingerprint), "{found} vs {fingerprint}");
        assert!(
            sdp_fingerprints(sdp)
                .iter()
                .any(|(hash, value)| hash == "sha-256" && value.eq_ignore_ascii_case(hex))
        );
    }
    one.close().await;
    two.close().await;

    // A Master restarting from its stored PEM answers with the same fingerprint, and the key
    // inside still completes a DTLS handshake.
    let reloaded = DtlsCert::from_pem(cert.to_pem()).expect("from_pem");
    assert_eq!(reloaded.fingerprint(), fingerprint);
    let (a, offer, mut a_events) = Link::offer(&cfg(), None).await.expect("offer");
    let (b, answer, mut b_events) =
        Link::answer(&cfg(), Some(&reloaded), &offer).await.expect("answer");
    let found = sha256_fingerprint(&answer).expect("answer fingerprint");
    assert!(found.eq_ignore_ascii_case(&fingerprint));
    a.accept_answer(&answer).await.expect("accept");
    assert_eq!(next(&mut a_events).await, Some(LinkEvent::Open));
    assert_eq!(next(&mut b_events).await, Some(LinkEvent::Open));
    a.close().await;
    b.close().await;

    let other = DtlsCert::generate().expect("generate");
    assert_ne!(other.fingerprint(), fingerprint);

    // Damaged stored text is an error, never a panic.
    assert!(DtlsCert::from_pem("").is_err());
    assert!(DtlsCert::from_pem("not a certificate").is_err());
    assert!(DtlsCert::from_pem("-----BEGIN EXPIRES-----\nAAE=\n-----END EXPIRES-----\n").is_err());
    let truncated = &cert.to_pem()[..cert.to_pem().len() / 2];
    assert!(DtlsCert::from_pem(truncated).is_err());
}

#[test]
fn fingerprints_are_read_from_session_and_media_level() {
    let sdp = "v=0\r\n\
               o=- 1 1 IN IP4 127.0.0.1\r\n\
               s=-\r\n\
               a=fingerprint:sha-256 ab:cd:ef\r\n\
               m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n\
               a=fingerprint:sha-1 11:22\r\n\
               a=fingerprint:SHA-256 AB:CD:EF\r\n";
    assert_eq!(
        sdp_fingerprints(sdp),
        vec![
            ("sha-256".to_owned(), "ab:cd:ef".to_owned()),
            ("sha-1".to_owned(), "11:22".to_owned()),
            ("SHA-256".to_owned(), "AB:CD:EF".to_owned()),
        ]
    );
    // A line of another hash beside the sha-256 ones: a second certificate could pass by it.
    assert_eq!(sha256_fingerprint(sdp), None);
    let only = sdp.replace("a=fingerprint:sha-1 11:22\r\n", "");
    assert_eq!(sha256_fingerprint(&only).as_deref(), Some("sha-256 AB:CD:EF"));

    // Two different sha-256 fingerprints: ambiguous, so none is trusted.
    let two = "a=fingerprint:sha-256 AB:CD\na=fingerprint:sha-256 AB:CE\n";
    assert_eq!(sha256_fingerprint(two), None);
    assert_eq!(sha256_fingerprint("a=fingerprint:sha-1 11:22\n"), None);
    assert_eq!(sha256_fingerprint(""), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_sdp_is_an_error() {
    for garbage in ["", "hello", "v=0\r\nthis is not sdp\r\n", "\u{0}\u{1}"] {
        let result = Link::answer(&cfg(), None, garbage).await;
        assert!(
            matches!(result, Err(RtcError::InvalidSdp(_) | RtcError::NoDataChannel)),
            "{garbage:?}: {:?}",
            result.err()
        );
    }
    let no_channel = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n";
    assert_eq!(Link::answer(&cfg(), None, no_channel).await.err(), Some(RtcError::NoDataChannel));

    let (a, offer, mut a_events) = Link::offer(&cfg(), None).await.expect("offer");
    let (b, answer, mut b_events) = Link::answer(&cfg(), None, &offer).await.expect("answer");

    // An answer where an offer belongs, and the other way round.
    let err = Link::answer(&cfg(), None, &answer).await.err();
    assert_eq!(err, Some(RtcError::NotAnOffer));
    eprintln!("answer given as offer: {}", RtcError::NotAnOffer);
    assert_eq!(a.accept_answer(&offer).await, Err(RtcError::NotAnAnswer));
    assert!(matches!(a.accept_answer("garbage").await, Err(RtcError::InvalidSdp(_))));

    // Bad input left the offerer usable.
    a.accept_answer(&answer).await.expect("accept");
    assert_eq!(next(&mut a_events).await, Some(LinkEvent::Open));
    assert_eq!(next(&mut b_events).await, Some(LinkEvent::Open));
    a.close().await;
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_messages_are_surfaced_as_binary() {
    let (a, mut a_events, b, mut b_events) = connect(None, None).await;
    a.send_binary(&[0xde, 0xad, 0xbe, 0xef]).await.expect("send");
    a.send_text("after").await.expect("send");
    b.send_binary(&[0u8; 1000]).await.expect("send");
    assert_eq!(next_message(&mut b_events).await, Some(LinkEvent::Binary(4)));
    assert_eq!(next_message(&mut b_events).await, Some(LinkEvent::Text("after".to_owned())));
    assert_eq!(next_message(&mut a_events).await, Some(LinkEvent::Binary(1000)));
    a.close().await;
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_dies_is_noticed() {
    let (a, offer, mut a_events) = Link::offer(&cfg(), None).await.expect("offer");

    // The answerer lives on its own runtime in its own thread, so it can be killed without any
    // close reaching the wire: shutting the runtime down drops its tasks and UDP socket.
    let (answer_tx, answer_rx) = tokio::sync::oneshot::channel();
    let (kill_tx, kill_rx) = std::sync::mpsc::channel::<()>();
    let peer = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let (b, answer, b_events) =
            runtime.block_on(Link::answer(&cfg(), None, &offer)).expect("answer");
        answer_tx.send(answer).expect("send answer");
        let _ = kill_rx.recv();
        runtime.shutdown_background();
        // Never closed: the link's Drop would try, on a runtime that no longer runs anything.
        std::mem::forget((b, b_events));
    });

    let answer =
        timeout(WAIT, answer_rx).await.expect("timed out waiting for the answer").expect("answer");
    a.accept_answer(&answer).await.expect("accept");
    assert_eq!(next(&mut a_events).await, Some(LinkEvent::Open));
    a.send_text("still there?").await.expect("send");

    kill_tx.send(()).expect("kill");
    peer.join().expect("peer thread");
    let killed = Instant::now();

    let mut seen = Vec::new();
    loop {
        let event =
            timeout(WAIT, a_events.recv()).await.expect("the dead peer was not noticed in time");
        match event {
            Some(LinkEvent::Closed) => {
                eprintln!("dead peer: Closed after {:?}", killed.elapsed());
                break;
            }
            Some(event) => {
                eprintln!("dead peer: {event:?} after {:?}", killed.elapsed());
                seen.push(event);
            }
            None => panic!("event stream ended without Closed"),
        }
    }
    assert!(
        seen.iter().all(|event| matches!(event, LinkEvent::Degraded | LinkEvent::Recovered)),
        "{seen:?}"
    );
    assert!(a.send_text("hello?").await.is_err());
    a.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_link_closes_it() {
    let (a, mut a_events, b, mut b_events) = connect(None, None).await;
    let a_clone = a.clone();
    drop(a);
    a_clone.send_text("from a clone").await.expect("a clone keeps the link");
    assert_eq!(next_message(&mut b_events).await, Some(LinkEvent::Text("from a clone".to_owned())));
    drop(a_clone);
    expect_closed(&mut a_events).await;
    expect_closed(&mut b_events).await;
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copies_go_as_sealed_datagrams_once_the_peer_says_where() {
    let (a, mut a_events, b, mut b_events) = connect(None, None).await;
    // Each side announces its datagram socket on the side channel once the link opens.
    let announced = Instant::now();
    while !(a.side_path_ready() && b.side_path_ready()) {
        assert!(announced.elapsed() < Duration::from_secs(10), "no side path announced");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let b_addr = b.side_path_addr().expect("the answerer's side path");
    a.send_copy("page 4").await.expect("copy");
    assert_eq!(next_copy(&mut b_events).await.as_deref(), Some("page 4"));
    assert_eq!(a.copies_by_datagram(), 1, "it went as a datagram");
    b.send_copy("page 6").await.expect("copy back");
    assert_eq!(next_copy(&mut a_events).await.as_deref(), Some("page 6"));
    assert_eq!(b.copies_by_datagram(), 1);

    // Datagrams from anyone else, forged or garbage, are dropped unread.
    let stranger = tokio::net::UdpSocket::bind((b_addr.ip(), 0)).await.expect("bind");
    let mut forged = 1u64.to_be_bytes().to_vec();
    forged.extend_from_slice(&[0u8; 32]);
    forged.extend_from_slice(br#"{"forged":true}"#);
    for datagram in [&forged[..], b"", &[0xff; 2000]] {
        stranger.send_to(datagram, b_addr).await.expect("send");
    }
    // A flood of them, dropped unopened (not from where the peer said it sends from): the
    // peer's copies still come at once.
    for _ in 0..1000 {
        let _ = stranger.send_to(&forged, b_addr).await;
    }
    // A copy too long for one datagram goes on the copy channel instead.
    let long = "p".repeat(4000);
    a.send_copy(&long).await.expect("long copy");
    assert_eq!(next_copy(&mut b_events).await.as_deref(), Some(long.as_str()));
    assert_eq!(a.copies_by_datagram(), 1, "not as a datagram");
    a.send_copy("page 5").await.expect("copy");
    assert_eq!(next_copy(&mut b_events).await.as_deref(), Some("page 5"), "nothing forged came");
    assert_eq!(a.copies_by_datagram(), 2);
    a.close().await;
    expect_closed(&mut b_events).await;
    b.close().await;
}
