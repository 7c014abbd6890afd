//! The sync thread end to end: real engines, real WebRTC between real peer connections on
//! loopback, real HTTP signaling. Every wait is bounded (a hang is a failure) and nothing
//! asserts on time.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::*;
use maestral_net::joincode::JoinCode;
use maestral_net::rtc::DtlsCert;
use maestral_net::{Fault, SyncCommand};
use maestral_protocol::{DeviceId, FollowMode, RejectReason, SongId};
use maestral_sync::{LinkState, LocalAction, Phase, Role};
#[test]
fn choir_master_and_eight_followers_follow_songs_and_bursts() {
    let (m, code) = master();
    let mut fs: Vec<Peer> = (0..8).map(|i| follower(&format!("F{i}"), &code)).collect();
    m.local(song("hymn"));
    for _ in 0..10 {
        m.local(LocalAction::NextPage);
    }
    for f in &mut fs {
        f.wait_view("hymn", 10);
    }
    m.local(song("anthem"));
    for f in &mut fs {
        f.wait_view("anthem", 0);
    }
    m.local(LocalAction::SetPage { page: 4 });
    for f in &mut fs {
        f.wait_view("anthem", 4);
    }
}

#[test]
fn a_cut_follower_goes_local_and_rejoins_by_itself() {
    let (m, code) = master();
    let mut f1 = follower("F1", &code);
    let mut f2 = follower("F2", &code);
    m.local(song("a"));
    f1.wait_view("a", 0);
    // The Master's connection to F1 fails; F2 is not affected.
    m.h.send(SyncCommand::Fault(Fault::DropLink(DeviceId::new("F1"))));
    f1.wait("a rejoin", |s| s.phases.contains(&Phase::FollowerDisconnectedLocal));
    f1.wait_phase(Phase::FollowerConnectedFollow);
    m.local(LocalAction::SetPage { page: 3 });
    f1.wait_view("a", 3);
    f2.wait_view("a", 3);
    assert!(!f2.phases.contains(&Phase::FollowerDisconnectedLocal));
}

#[test]
fn when_the_master_is_away_followers_keep_their_page_and_resync_on_return() {
    let (mut m, code) = master();
    let mut ff = follower("FF", &code);
    let mut fr = follower("FR", &code);
    fr.local(LocalAction::SetFollowMode { mode: FollowMode::Free });
    fr.wait_phase(Phase::FollowerConnectedFree);
    m.local(song("a"));
    m.local(LocalAction::SetPage { page: 2 });
    ff.wait_view("a", 2);
    fr.wait_view("a", 0);
    fr.local(LocalAction::SetPage { page: 9 });
    fr.wait_view("a", 9);

    m.h.send(SyncCommand::Fault(Fault::Offline(true)));
    ff.wait_phase(Phase::FollowerDisconnectedLocal);
    fr.wait("disconnection", |s| s.phases.contains(&Phase::FollowerDisconnectedLocal));
    assert_eq!(ff.page(), 2, "keeps the last page");
    ff.local(LocalAction::NextPage);
    ff.wait_view("a", 3);
    m.local(LocalAction::SetPage { page: 6 });
    m.wait("the Master's links down", |s| s.phase == Some(Phase::MasterReconnectingLinks));

    m.h.send(SyncCommand::Fault(Fault::Offline(false)));
    ff.wait_view("a", 6);
    ff.wait_phase(Phase::FollowerConnectedFollow);
    fr.wait_phase(Phase::FollowerConnectedFree);
    assert_eq!(fr.page(), 9, "a free Follower stays where it was");
}

#[test]
fn ending_the_session_sends_followers_local_and_kills_the_code() {
    let (m, code) = master();
    let mut fs: Vec<Peer> = (0..3).map(|i| follower(&format!("F{i}"), &code)).collect();
    m.local(song("a"));
    m.local(LocalAction::SetPage { page: 5 });
    for f in &mut fs {
        f.wait_view("a", 5);
    }
    for f in &mut fs {
        f.phases.clear();
    }
    m.local(LocalAction::EndSession);
    for f in &mut fs {
        f.wait_phase(Phase::FollowerIdleLocal);
        assert_eq!(f.page(), 5, "the page stays");
        // SESSION_END itself arrived (before the link closed): no rejoin was attempted.
        assert_eq!(f.phases, [Phase::FollowerIdleLocal], "{}", f.name);
    }
    let mut late = Peer::start("LATE", Role::Follower);
    late.h.send(SyncCommand::Join(code));
    late.wait("a refusal", |s| s.rejected.is_some());
    assert_eq!(late.rejected, Some(RejectReason::SessionEnded));
    assert_ne!(late.phase, Some(Phase::FollowerConnectedFollow));
}

#[test]
fn a_wrong_token_gets_invalid_token() {
    let (_m, mut code) = master();
    code.token = "not-the-token".into();
    let mut f = Peer::start("F", Role::Follower);
    f.h.send(SyncCommand::Join(code));
    f.wait("a refusal", |s| s.rejected.is_some());
    assert_eq!(f.rejected, Some(RejectReason::InvalidToken));
    f.wait_phase(Phase::FollowerIdleLocal);
}

#[test]
fn an_answer_with_another_fingerprint_is_refused() {
    let (mut m, mut code) = master();
    // The join code names another certificate: whoever answers is not that Master.
    code.fingerprint = DtlsCert::generate().expect("cert").fingerprint().to_owned();
    let mut f = Peer::start("F", Role::Follower);
    f.h.send(SyncCommand::Join(code));
    f.wait("an error", |s| !s.errors.is_empty());
    assert!(f.errors[0].contains("fingerprint"), "{:?}", f.errors);
    assert_ne!(f.phase, Some(Phase::FollowerConnectedFollow));
    assert_eq!(
        f.errors.len(),
        1,
        "one message, said once however often it is tried: {:?}",
        f.errors
    );
    assert!(f.errors[0].ends_with("trying again"), "a forged answer ends nothing: {:?}", f.errors);
    // A genuine Follower joining afterwards is a point by which the Master has handled
    // everything before it: the refused one never got a link.
    let good: JoinCode = m.join_code.clone().expect("code").parse().expect("code");
    let _g = follower("G", &good);
    m.wait("G's link", |s| s.links.get(&DeviceId::new("G")).is_some_and(|l| l.is_up()));
    assert!(
        !m.links.get(&DeviceId::new("F")).is_some_and(|s| s.is_up()),
        "the refused Follower never has an open link at the Master"
    );
}

#[test]
fn solo_pairs_by_codes_and_turns_mirror_both_ways() {
    let mut a = Peer::start("A", Role::Solo);
    let mut b = Peer::start("B", Role::Solo);
    a.h.send(SyncCommand::SoloOffer);
    a.wait("an offer code", |s| s.pair_code.is_some());
    let offer = a.pair_code.take().expect("offer");
    assert!(offer.starts_with("M1O:"));
    b.h.send(SyncCommand::SoloAnswer(offer));
    b.wait("an answer code", |s| s.pair_code.is_some());
    let answer = b.pair_code.take().expect("answer");
    assert!(answer.starts_with("M1A:"));
    a.h.send(SyncCommand::SoloAccept(answer));
    a.wait_phase(Phase::SoloPairedConnected);
    b.wait_phase(Phase::SoloPairedConnected);
    // One book once each has merged the other's state (until then each turns alone).
    a.wait("one book", |s| s.pager.step() == 2);
    b.wait("one book", |s| s.pager.step() == 2);

    a.local(song("duet"));
    a.local(LocalAction::NextPage);
    // Spread {2, 3}: one device shows 2, the other 3.
    both_halves(&mut a, &mut b, 2);
    b.local(LocalAction::NextPage);
    both_halves(&mut a, &mut b, 4);
    assert_eq!(a.view.as_ref().and_then(|v| v.song_id.clone()), Some(SongId::new("duet")));
}

/// Waits until the pair shows the two halves of the spread starting at `first`.
fn both_halves(a: &mut Peer, b: &mut Peer, first: u32) {
    let deadline = Instant::now() + WAIT;
    loop {
        a.wait("the spread", |s| s.page() / 2 == first / 2);
        b.wait("the spread", |s| s.page() / 2 == first / 2);
        if a.page() != b.page() {
            return;
        }
        assert!(Instant::now() < deadline, "both devices show page {}", a.page());
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn solo_after_a_drop_out_both_navigate_then_reconnect_by_themselves_and_the_latest_change_wins() {
    let (mut a, mut b) = pair("A", "B");
    a.local(song("duet"));
    both_halves(&mut a, &mut b, 0);
    let (ha, hb) = (a.page(), b.page());
    // The connection fails (closed abruptly on A's side).
    a.h.send(SyncCommand::Fault(Fault::DropLink(DeviceId::new("B"))));
    a.wait("the drop-out", |s| s.phases.contains(&Phase::SoloPairedReconnecting));
    b.wait("the drop-out", |s| s.phases.contains(&Phase::SoloPairedReconnecting));
    // Both keep turning alone, one page at a time; B turns last (after A's turn happened).
    a.local(LocalAction::NextPage);
    a.wait("A's own turn, one page", |s| s.page() == ha + 1);
    std::thread::sleep(Duration::from_millis(2));
    b.local(LocalAction::NextPage);
    b.local(LocalAction::NextPage);
    b.wait("B's two turns, a page each", |s| s.page() == hb + 2);
    // They find each other again without a new scan and agree on B's page: B keeps it, A
    // shows the other half of its spread ({2, 3}).
    a.wait_phase(Phase::SoloPairedConnected);
    b.wait_phase(Phase::SoloPairedConnected);
    both_halves(&mut a, &mut b, 2);
    assert_eq!(b.page(), hb + 2, "B turned last: no jump");
}

/// Two Solo devices paired by offer and answer codes.
fn pair(x: &str, y: &str) -> (Peer, Peer) {
    pair_up(Peer::start(x, Role::Solo), Peer::start(y, Role::Solo))
}

#[test]
fn garbage_and_a_flood_from_one_peer_leave_everyone_else_alone() {
    // A limit far above real traffic (a few messages a second) yet reached at any CPU speed.
    let mut cfg = config("M");
    cfg.flood_limit = 50;
    let (mut m, code) = master_with(cfg);
    let mut f1 = follower("F1", &code);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let cut_off = rt.block_on(async {
        // A peer with a valid code that then misbehaves.
        let (link, mut events) =
            common::rogue::join(&code, "ROGUE", None, WAIT).await.expect("the Master answers");
        for garbage in ["not json", "{\"v\":1}", "[1,2]", "{\"v\":7,\"type\":\"JOIN_REQUEST\"}"] {
            link.send_text(garbage).await.expect("sent");
        }
        link.send_binary(&[0, 1, 2, 3]).await.expect("sent");
        for i in 0..3_000 {
            if link.send_text(&format!("{{\"flood\":{i}}}")).await.is_err() {
                break;
            }
        }
        maestral_net::rtc::wait_closed(&mut events, WAIT).await
    });
    assert!(cut_off, "the flooding peer is disconnected");
    m.wait("the flood report", |s| s.errors.iter().any(|e| e.contains("ROGUE")));
    m.local(song("a"));
    m.local(LocalAction::SetPage { page: 2 });
    f1.wait_view("a", 2);
    assert!(!f1.phases.contains(&Phase::FollowerDisconnectedLocal), "F1 never lost its link");
}

#[test]
fn a_restarted_master_resumes_its_session_and_followers_rejoin_by_themselves() {
    let dir = temp_dir("restart");
    let m = master_in(&dir);
    let code_before = m.join_code.clone().expect("code");
    let mut f = follower("F", &code_before.parse().expect("parses"));
    m.local(song("a"));
    m.local(LocalAction::SetPage { page: 4 });
    f.wait_view("a", 4);
    // The Master's app quits and starts again.
    m.h.shutdown();
    f.wait("the drop-out", |s| s.phases.contains(&Phase::FollowerDisconnectedLocal));
    let mut m = master_in(&dir);
    assert_eq!(m.join_code.as_deref(), Some(code_before.as_str()), "the same code still works");
    m.wait_view("a", 4);
    f.wait_phase(Phase::FollowerConnectedFollow);
    m.local(LocalAction::NextPage);
    f.wait_view("a", 5);
    // Ending the session forgets it: the next start is a new session with a new code.
    m.local(LocalAction::EndSession);
    m.wait_phase(Phase::MasterSessionEnded);
    m.h.shutdown();
    let m = master_in(&dir);
    assert_ne!(m.join_code.as_deref(), Some(code_before.as_str()));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_broken_state_file_is_set_aside_with_one_message_and_a_new_session_starts() {
    let dir = temp_dir("broken");
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(dir.join("master-session.json"), b"{ this is not json").expect("write");
    let mut m = master_in(&dir);
    m.wait_phase(Phase::MasterSessionActive);
    assert_eq!(m.errors.len(), 1, "{:?}", m.errors);
    assert!(m.errors[0].contains("unreadable"), "{:?}", m.errors);
    let kept =
        std::fs::read(dir.join("master-session.json.broken")).expect("the broken file is kept");
    assert_eq!(kept, b"{ this is not json");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_first_join_keeps_trying_while_the_master_is_unreachable() {
    let (m, code) = master();
    m.h.send(SyncCommand::Fault(Fault::Offline(true)));
    let mut f = Peer::start("F", Role::Follower);
    f.h.send(SyncCommand::Join(code));
    // The Master answers 503 (busy): said once, then retried quietly.
    f.wait("a first failure", |s| !s.errors.is_empty());
    assert!(f.errors[0].contains("trying again"), "{:?}", f.errors);
    assert_eq!(f.phase, Some(Phase::FollowerJoining));
    m.h.send(SyncCommand::Fault(Fault::Offline(false)));
    f.wait_phase(Phase::FollowerConnectedFollow);
    assert_eq!(f.errors.len(), 1, "{:?}", f.errors);
}

/// Reads a Solo device's `solo-pairing.json` once it holds what a call-back needs (the
/// partner's listener and key, from its `PAIR_INFO`).
fn pairing_file(dir: &std::path::Path) -> serde_json::Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let file = std::fs::read(dir.join("solo-pairing.json")).ok();
        let value: Option<serde_json::Value> = file.and_then(|f| serde_json::from_slice(&f).ok());
        if let Some(v) = value.filter(|v| v["partner"]["their_key"].is_string()) {
            return v;
        }
        assert!(Instant::now() < deadline, "no complete pairing kept in {}", dir.display());
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn solo_in(name: &str, dir: &std::path::Path) -> Peer {
    let mut cfg = config(name);
    cfg.state_dir = Some(dir.to_path_buf());
    Peer::with(Role::Solo, cfg)
}

/// A forger that holds everything B keeps on disk (B's certificate and private key, A's
/// call-back key, the counters) posts call-backs to A. Each forgery is refused, the genuine
/// partner's link stays up, and the pair stays in step. The genuine restart first: B restarted
/// from its state directory calls A back by itself.
#[test]
fn forged_solo_call_backs_are_refused_and_the_live_pair_is_untouched() {
    use maestral_net::rtc::{Link, RtcConfig, sha256_fingerprint};
    use maestral_net::signaling::{JoinError, JoinRequestBody, RejectReason, post_join};
    use maestral_protocol::SessionToken;

    let (dir_a, dir_b) = (temp_dir("forge-a"), temp_dir("forge-b"));
    let (mut a, mut b) = pair_up(solo_in("A", &dir_a), solo_in("B", &dir_b));
    pairing_file(&dir_a);
    pairing_file(&dir_b);
    a.local(song("duet"));
    both_halves(&mut a, &mut b, 0);

    // B's app stops and starts again with only its state directory: it calls A back.
    b.h.shutdown();
    a.wait("the drop-out", |s| s.phases.contains(&Phase::SoloPairedReconnecting));
    let mut b = solo_in("B", &dir_b);
    b.wait_phase(Phase::SoloPairedConnected);
    a.wait_phase(Phase::SoloPairedConnected);
    a.local(LocalAction::NextPage);
    both_halves(&mut a, &mut b, 2);
    let phases_before = a.phases.len();

    // What B keeps: its certificate, A's listener and the key A's listener wants, the counter
    // of its last call (which A accepted).
    let kept = pairing_file(&dir_b);
    let b_cert = DtlsCert::from_pem(kept["cert_pem"].as_str().expect("cert")).expect("B's cert");
    let host: SocketAddr = kept["partner"]["host"].as_str().expect("host").parse().expect("addr");
    let key = kept["partner"]["their_key"].as_str().expect("key").to_owned();
    // The counter of B's call A last accepted: 0 if A's own call to B won (both call back,
    // and the higher id takes the crossing call), and then any counter ≤ 0 is a replay.
    let seen = pairing_file(&dir_a)["partner"]["seen"].as_u64().expect("counter");
    let sent = kept["partner"]["sent"].as_u64().expect("counter");
    let (id_a, id_b, id_c) = (DeviceId::new("A"), DeviceId::new("B"), DeviceId::new("C"));

    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let call = |cert: &DtlsCert, caller: &DeviceId, key: &str, counter: u64| {
        rt.block_on(async {
            let (link, offer, _events) =
                Link::offer(&RtcConfig::new(LOCAL), Some(cert)).await.expect("an offer");
            let fp = sha256_fingerprint(&offer).expect("the offer's fingerprint");
            let token = maestral_net::sync::callback_proof(key, caller, &id_a, &fp, counter);
            let body = JoinRequestBody {
                session_id: "solo".into(),
                token: SessionToken::new(token),
                device_id: caller.to_string(),
                offer,
            };
            let outcome = post_join(host, &body, WAIT).await;
            link.close().await;
            outcome
        })
    };
    let refused =
        |outcome: Result<String, JoinError>, reason: RejectReason, what: &str| match outcome {
            Err(JoinError::Rejected(r) | JoinError::Refused(r, _)) => {
                assert_eq!(r, reason, "{what}")
            }
            other => panic!("{what}: not refused as {reason:?}: {other:?}"),
        };
    let other_cert = DtlsCert::generate().expect("a certificate");
    let fresh = sent.max(seen) + 1_000_000;
    refused(call(&b_cert, &id_b, "not-the-key", fresh), RejectReason::InvalidToken, "a wrong key");
    refused(call(&b_cert, &id_b, &key, seen), RejectReason::InvalidToken, "a replayed counter");
    refused(call(&b_cert, &id_b, &key, seen / 2), RejectReason::InvalidToken, "an older counter");
    refused(
        call(&other_cert, &id_b, &key, fresh),
        RejectReason::InvalidToken,
        "another certificate",
    );
    refused(call(&b_cert, &id_c, &key, fresh), RejectReason::InvalidToken, "a third device");
    // Everything right (as B itself would call), but the pair is up: it is never replaced.
    refused(call(&b_cert, &id_b, &key, fresh), RejectReason::Unavailable, "a call while paired");

    // The live pair is untouched: no drop-out, still in step both ways.
    b.local(LocalAction::NextPage);
    both_halves(&mut a, &mut b, 4);
    a.local(LocalAction::NextPage);
    both_halves(&mut a, &mut b, 6);
    assert!(
        !a.phases[phases_before..].contains(&Phase::SoloPairedReconnecting),
        "A's link never dropped: {:?}",
        a.phases
    );
    assert_eq!(a.links.get(&id_b), Some(&LinkState::Connected));
    assert!(a.errors.is_empty() && b.errors.is_empty(), "{:?} {:?}", a.errors, b.errors);
    let _ = std::fs::remove_dir_all(&dir_a);
    let _ = std::fs::remove_dir_all(&dir_b);
}
