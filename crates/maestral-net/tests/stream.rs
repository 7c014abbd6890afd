//! Score streaming end to end (spec §8.3): real sync threads, real WebRTC on loopback. A
//! Follower that lacks the Master's song fetches it on a stream channel of its own, into
//! memory, its SHA-256 checked; page turns still arrive meanwhile; a stream cut by a drop-out
//! resumes where it stopped; bad requests and oversized scores are refused with a message and
//! the session goes on. Every wait is bounded; nothing asserts on time.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use maestral_net::rtc::{Link, RtcConfig, StreamEvent};
use maestral_net::signaling::{JoinRequestBody, post_join};
use maestral_net::{Fault, SyncCommand};
use maestral_protocol::{DeviceId, SongId};
use maestral_sync::LocalAction;
use sha2::{Digest, Sha256};

/// `len` bytes that are no score but stand for one (the sync thread never opens them), and
/// the song id they get (their SHA-256).
fn score(len: usize, seed: u8) -> (SongId, Arc<[u8]>) {
    let mut x = u32::from(seed).wrapping_mul(2_654_435_761) | 1;
    let bytes: Vec<u8> = (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect();
    let id: String = Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect();
    (SongId::new(id), bytes.into())
}

fn serve(m: &Peer, song: &SongId, bytes: &Arc<[u8]>) {
    m.local(LocalAction::SetSong { song_id: Some(song.clone()) });
    m.h.send(SyncCommand::Serve { song_id: song.clone(), bytes: Arc::clone(bytes) });
}

/// Waits for the offer of `song` and asks for it.
fn fetch(f: &mut Peer, song: &SongId) {
    f.wait("the offer", |s| s.prepares.iter().any(|p| p.song_id == *song));
    let prepare = f.prepares.iter().rev().find(|p| p.song_id == *song).cloned().expect("offer");
    f.h.send(SyncCommand::Fetch(prepare));
}

#[test]
fn followers_that_lack_the_song_fetch_it_whole_and_page_turns_still_arrive() {
    let (m, code) = master();
    let mut fs: Vec<Peer> = (0..3).map(|i| follower(&format!("F{i}"), &code)).collect();
    let (song, bytes) = score(3 * 1024 * 1024 + 17, 1);
    serve(&m, &song, &bytes);
    for f in &mut fs {
        f.wait("the offer", |s| s.prepares.iter().any(|p| p.song_id == song));
        let p = f.prepares.last().expect("offer");
        assert_eq!((p.size_bytes, p.sha256.as_str()), (bytes.len() as u64, song.as_str()));
        assert_eq!(p.channel, "maestral-stream");
    }
    // F0 and F1 lack it; F2 has it and asks for nothing.
    for f in &mut fs[..2] {
        fetch(f, &song);
    }
    for _ in 0..3 {
        m.local(LocalAction::NextPage);
    }
    for f in &mut fs {
        f.wait_view(song.as_str(), 3);
    }
    for f in &mut fs[..2] {
        f.wait("the whole score", |s| s.streamed.contains_key(&song));
        assert!(f.streamed[&song][..] == bytes[..], "{}: the bytes differ", f.name);
        assert!(f.errors.is_empty(), "{:?}", f.errors);
    }
    std::thread::sleep(Duration::from_millis(200));
    fs[2].wait("quiet", |_| true);
    assert!(fs[2].progress.is_empty() && fs[2].streamed.is_empty(), "F2 streamed nothing");
    // The session's end clears everything streamed.
    m.local(LocalAction::EndSession);
    for f in &mut fs {
        f.wait("the clear", |s| s.cleared.contains(&None));
    }
}

#[test]
fn a_stream_cut_by_a_drop_out_resumes_where_it_stopped() {
    let (m, code) = master();
    let mut f = follower("F", &code);
    let (song, bytes) = score(24 * 1024 * 1024, 2);
    serve(&m, &song, &bytes);
    fetch(&mut f, &song);
    f.wait("a first part", |s| s.progress.iter().any(|(_, got)| *got >= 2 * 1024 * 1024));
    assert!(!f.streamed.contains_key(&song), "cut before it was whole");
    let offers = f.prepares.len();
    f.h.send(SyncCommand::Fault(Fault::DropLink(DeviceId::new("M"))));
    // The rejoin brings the offer again; asked again, the stream goes on from what it has.
    f.wait("the offer again", |s| s.prepares.len() > offers);
    let before = f.progress.iter().map(|(_, got)| *got).max().unwrap_or(0);
    let reports = f.progress.len();
    fetch(&mut f, &song);
    f.wait("the whole score", |s| s.streamed.contains_key(&song));
    assert!(f.streamed[&song][..] == bytes[..], "the bytes differ");
    let resumed_at = f.progress[reports].1;
    assert!(resumed_at >= before && resumed_at > 0, "resumed from {resumed_at}, had {before}");
    eprintln!("resumed at {resumed_at} of {} bytes (none received twice)", bytes.len());
}

#[test]
fn a_score_over_the_limit_is_refused_once_on_the_master_and_nothing_is_offered() {
    let mut cfg = config("M");
    cfg.max_stream_bytes = 1024 * 1024;
    let (mut m, code) = master_with(cfg);
    let mut f = follower("F", &code);
    let (song, bytes) = score(2 * 1024 * 1024, 3);
    serve(&m, &song, &bytes);
    m.wait("the refusal", |s| !s.errors.is_empty());
    assert!(m.errors[0].contains("too large to stream"), "{:?}", m.errors);
    m.local(LocalAction::NextPage);
    f.wait_view(song.as_str(), 1);
    assert!(f.prepares.is_empty(), "{:?}", f.prepares);
    assert_eq!(m.errors.len(), 1, "{:?}", m.errors);
}

#[test]
fn a_peer_asking_for_another_song_or_sending_data_is_cut_off_and_the_session_goes_on() {
    let (mut m, code) = master();
    let mut f = follower("F", &code);
    let (song, bytes) = score(256 * 1024, 4);
    serve(&m, &song, &bytes);
    f.wait("the offer", |s| !s.prepares.is_empty());

    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let link = rt.block_on(async {
        // A device with the session's token, on a link of its own.
        let (link, offer, mut events) =
            Link::offer(&RtcConfig::new(LOCAL), None).await.expect("an offer");
        let body = JoinRequestBody {
            session_id: code.session_id.clone(),
            token: code.token.clone(),
            device_id: "R".into(),
            offer,
        };
        let answer = post_join(code.host, &body, WAIT).await.expect("an answer");
        link.accept_answer(&answer).await.expect("accepted");
        while let Some(e) = events.recv().await {
            if e == maestral_net::rtc::LinkEvent::Open {
                break;
            }
        }
        link
    });
    // The Master has taken the link (it serves streams on it from then on).
    m.wait("the rogue's link", |s| s.links.get(&DeviceId::new("R")).is_some_and(|l| l.is_up()));
    rt.block_on(async {
        let next = |ch: &maestral_net::rtc::StreamChannel| {
            let ch = ch.clone();
            async move {
                loop {
                    // Its own send queue emptying is no answer.
                    match tokio::time::timeout(WAIT, ch.next()).await.expect("an event in time") {
                        StreamEvent::Low => {}
                        e => return e,
                    }
                }
            }
        };
        // Another song than the current one.
        let ch = link.open_stream().await.expect("a stream channel");
        assert_eq!(next(&ch).await, StreamEvent::Open);
        ch.send_text(r#"{"song_id": "not-the-song", "offset": 0}"#).await.expect("sent");
        assert_eq!(next(&ch).await, StreamEvent::Text(r#"{"error":"not_current"}"#.into()));
        ch.close().await;
        // Data nobody asked for.
        let ch = link.open_stream().await.expect("a stream channel");
        assert_eq!(next(&ch).await, StreamEvent::Open);
        ch.send_binary(&[0u8; 1024]).await.expect("sent");
        assert_eq!(next(&ch).await, StreamEvent::Closed);
        // A request that is not one.
        let ch = link.open_stream().await.expect("a stream channel");
        assert_eq!(next(&ch).await, StreamEvent::Open);
        ch.send_text("give me everything").await.expect("sent");
        assert_eq!(next(&ch).await, StreamEvent::Text(r#"{"error":"bad_request"}"#.into()));
        ch.close().await;
        link.close().await;
    });
    m.wait("three messages", |s| s.errors.len() >= 3);
    assert!(m.errors.iter().all(|e| e.contains("stream to R was stopped")), "{:?}", m.errors);
    // The genuine Follower is untouched: it still fetches the song and follows the turns.
    fetch(&mut f, &song);
    m.local(LocalAction::NextPage);
    f.wait_view(song.as_str(), 1);
    f.wait("the whole score", |s| s.streamed.contains_key(&song));
    assert!(f.errors.is_empty(), "{:?}", f.errors);
}
