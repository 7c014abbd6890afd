//! Tests of the link that need its crate-internal API.

use std::net::{IpAddr, Ipv4Addr};

use super::*;

const WAIT: Duration = Duration::from_secs(10);

/// A redirected link's events keep their order: what was queued on its own receiver first
/// (that receiver then ends), then the rest on the shared channel with the link's tag, up
/// to `Closed`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirected_events_keep_their_order() {
    let cfg = RtcConfig::new(IpAddr::V4(Ipv4Addr::LOCALHOST));
    let (a, offer, mut a_events) = Link::offer(&cfg, None).await.expect("offer");
    let (b, answer, mut b_events) = Link::answer(&cfg, None, &offer).await.expect("answer");
    a.accept_answer(&answer).await.expect("accept");
    let open = |e: Option<LinkEvent>| assert_eq!(e, Some(LinkEvent::Open));
    open(tokio::time::timeout(WAIT, a_events.recv()).await.expect("a opens"));
    open(tokio::time::timeout(WAIT, b_events.recv()).await.expect("b opens"));
    for i in 0..3 {
        a.send_text(&format!("m{i}")).await.expect("send");
    }
    // The first messages wait on b's own receiver when the redirect comes.
    let deadline = tokio::time::Instant::now() + WAIT;
    while b_events.len() < 3 {
        assert!(tokio::time::Instant::now() < deadline, "the first messages never came");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let (tx, mut shared) = mpsc::unbounded_channel();
    b.redirect_events(7, tx);
    for i in 3..6 {
        a.send_text(&format!("m{i}")).await.expect("send");
    }
    a.close().await;
    let mut seen = Vec::new();
    while let Some(e) = b_events.recv().await {
        seen.push(e);
    }
    let before = seen.len();
    loop {
        let (tag, e) = tokio::time::timeout(WAIT, shared.recv())
            .await
            .expect("an event on the shared channel")
            .expect("the sender is kept by the link until Closed");
        assert_eq!(tag, 7);
        let closed = e == LinkEvent::Closed;
        seen.push(e);
        if closed {
            break;
        }
    }
    let texts: Vec<_> = seen
        .iter()
        .filter_map(|e| match e {
            LinkEvent::Text(t) => Some(t.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(texts, ["m0", "m1", "m2", "m3", "m4", "m5"], "{seen:?}");
    assert_eq!(before, 3, "the first messages came on the link's own receiver: {seen:?}");
    assert_eq!(seen.last(), Some(&LinkEvent::Closed));
}

/// A link that is closing takes no stream channels: asking for them gets a receiver that ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_link_accepts_no_streams() {
    let cfg = RtcConfig::new(IpAddr::V4(Ipv4Addr::LOCALHOST));
    let (a, offer, mut a_events) = Link::offer(&cfg, None).await.expect("offer");
    let (b, answer, _b_events) = Link::answer(&cfg, None, &offer).await.expect("answer");
    a.accept_answer(&answer).await.expect("accept");
    let opened = tokio::time::timeout(WAIT, a_events.recv()).await.expect("a opens");
    assert_eq!(opened, Some(LinkEvent::Open));
    let mut before = a.accept_streams();
    a.close().await;
    let ended = tokio::time::timeout(WAIT, before.recv()).await;
    assert_eq!(ended.map(|c| c.is_none()), Ok(true), "the close ends the receiver asked before");
    let mut after = a.accept_streams();
    let ended = tokio::time::timeout(WAIT, after.recv()).await;
    assert_eq!(ended.map(|c| c.is_none()), Ok(true), "a closed link's receiver ends at once");
    b.close().await;
}
