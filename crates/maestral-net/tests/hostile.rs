//! Issue 16's attacks on the sync thread, over real HTTP and real WebRTC: a token holder
//! claiming an epoch, a join naming a connected singer's device id, a forged `403` on a
//! rejoin. Each checks that the honest Followers keep the Master's song and page.

mod common;

use std::time::Duration;

use common::*;
use maestral_net::SyncCommand;
use maestral_net::joincode::JoinCode;
use maestral_net::rtc::{DtlsCert, Link, LinkEvent, RtcConfig, wait_closed, wait_open};
use maestral_net::signaling::{JoinError, JoinRequestBody, post_join};
use maestral_protocol::{
    DeviceId, Envelope, FollowMode, JoinRequest, Message, SessionId, SongEpoch,
};
use maestral_sync::{LocalAction, Phase, Role};

/// A token holder's own link to the Master, under `id`, with `cert` (or a fresh one).
fn rogue_link(
    rt: &tokio::runtime::Runtime,
    code: &JoinCode,
    id: &str,
    cert: Option<&DtlsCert>,
) -> Result<(Link, tokio::sync::mpsc::UnboundedReceiver<LinkEvent>), JoinError> {
    rt.block_on(common::rogue::join(code, id, cert, WAIT))
}

#[test]
fn a_token_holder_claiming_epochs_never_moves_the_choir() {
    let (m, code) = master();
    let mut f = follower("F", &code);
    let mut free = follower("FREE", &code);
    m.local(song("a"));
    m.local(LocalAction::SetPage { page: 3 });
    f.wait_view("a", 3);
    free.wait_view("a", 3);
    free.local(LocalAction::SetFollowMode { mode: FollowMode::Free });
    free.wait_phase(Phase::FollowerConnectedFree);
    free.local(LocalAction::SetPage { page: 7 });
    free.wait_view("a", 7);

    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let (link, mut events) = rogue_link(&rt, &code, "ROGUE", None).expect("a valid token joins");
    rt.block_on(async {
        let claims = [u64::MAX, 2, 3, 4, 5, 6, 7, 8];
        for epoch in claims {
            let req = Message::JoinRequest(JoinRequest {
                session_token: code.token.clone(),
                follow_mode: FollowMode::Follow,
                song_epoch: SongEpoch(epoch),
            });
            let env = Envelope::new(
                SessionId::new(code.session_id.clone()),
                DeviceId::new("ROGUE"),
                1,
                req,
            );
            link.send_text(&env.encode()).await.expect("sent");
        }
        // Every claim has been handled once the Master has answered each with a JOIN_ACCEPT
        // (a positive event, not a pause): only then is "nobody moved" worth checking.
        let mut accepted = 0;
        while accepted < claims.len() {
            match tokio::time::timeout(WAIT, events.recv()).await {
                Ok(Some(LinkEvent::Text(text))) if text.contains("\"JOIN_ACCEPT\"") => {
                    accepted += 1
                }
                Ok(Some(_)) => {}
                other => panic!("the Master answered {accepted} claims, then {other:?}"),
            }
        }
    });
    // The honest Followers were not moved; the Master's next change reaches them as usual.
    m.local(LocalAction::NextPage);
    f.wait_view("a", 4);
    assert_eq!(free.page(), 7, "the free Follower keeps its page");
    m.local(song("b"));
    f.wait_view("b", 0);
    free.wait_view("b", 0);
    assert!(
        !f.phases.contains(&Phase::FollowerDisconnectedLocal),
        "F never dropped: {:?}",
        f.phases
    );
    rt.block_on(link.close());
}

#[test]
fn a_join_naming_a_connected_singers_device_id_is_refused_and_the_singer_stays() {
    let (m, code) = master();
    let mut f = follower("F", &code);
    m.local(song("a"));
    m.local(LocalAction::SetPage { page: 2 });
    f.wait_view("a", 2);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    for round in 0..3 {
        match rogue_link(&rt, &code, "F", None) {
            Err(JoinError::Refused(maestral_net::signaling::RejectReason::DeviceInUse, _)) => {}
            Err(other) => panic!("round {round}: refused, but not as in use: {other:?}"),
            Ok((link, _)) => {
                rt.block_on(link.close());
                panic!("round {round}: the hijack was taken");
            }
        }
    }
    m.local(LocalAction::NextPage);
    f.wait_view("a", 3);
    assert!(
        !f.phases.contains(&Phase::FollowerDisconnectedLocal),
        "F's link was never replaced: {:?}",
        f.phases
    );
    assert!(f.errors.is_empty(), "{:?}", f.errors);
}

#[test]
fn a_forged_403_on_a_rejoin_does_not_end_the_membership() {
    let dir = temp_dir("hostile-403");
    let m = master_in(&dir);
    let code: JoinCode = m.join_code.clone().expect("code").parse().expect("parses");
    let mut f = follower("F", &code);
    m.local(song("a"));
    m.local(LocalAction::SetPage { page: 4 });
    f.wait_view("a", 4);
    // The Master goes away; another device answers for its address with 403s.
    m.h.shutdown();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let refused = common::rogue::forge_403s(&rt, code.host);
    // A second refusal means the Follower asked again after the first: it did not take the
    // first as the Master's final word (the moment to look has passed, no sleep needed).
    f.wait("a forged refusal, then another try", |_| {
        refused.load(std::sync::atomic::Ordering::SeqCst) >= 2
    });
    assert_ne!(f.phase, Some(Phase::FollowerIdleLocal), "the membership is kept");
    assert_eq!(f.rejected, None, "no refusal reached the app as final");
    // The real Master comes back on its address: the Follower rejoins by itself.
    drop(rt);
    let mut m = master_in(&dir);
    m.wait_view("a", 4);
    f.wait_phase(Phase::FollowerConnectedFollow);
    m.local(LocalAction::NextPage);
    f.wait_view("a", 5);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_token_holder_sending_large_messages_is_cut_off_by_the_byte_budget() {
    let (m, code) = master();
    let mut m = m;
    let mut f = follower("F", &code);
    m.local(song("a"));
    f.wait_view("a", 0);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let (link, mut events) = rogue_link(&rt, &code, "HEAVY", None).expect("a valid token joins");
    // Well under the message limit (500 a second), far over the byte budget (1 MiB a second).
    let big = "x".repeat(60 * 1024);
    let cut_off = rt.block_on(async {
        for _ in 0..40 {
            if link.send_text(&big).await.is_err() {
                break;
            }
        }
        wait_closed(&mut events, WAIT).await
    });
    assert!(cut_off, "the heavy sender is disconnected");
    m.wait("the flood report", |s| {
        s.errors.iter().any(|e| e.contains("HEAVY") && e.contains("bytes"))
    });
    m.local(LocalAction::NextPage);
    f.wait_view("a", 1);
    assert!(!f.phases.contains(&Phase::FollowerDisconnectedLocal), "F kept its link");
}

#[test]
fn a_join_copying_a_singers_certificate_fingerprint_cannot_take_its_link_without_the_key() {
    let dir = temp_dir("hostile-fp");
    let (m, code) = master();
    let mut cfg = config("F");
    cfg.state_dir = Some(dir.clone());
    let mut f = Peer::with(Role::Follower, cfg);
    f.h.send(SyncCommand::Join(code.clone()));
    f.wait_phase(Phase::FollowerConnectedFollow);
    m.local(song("a"));
    f.wait_view("a", 0);
    // The singer's fingerprint is public (it travels in clear in its join request); here it
    // is read from the singer's own state file, where its certificate is kept.
    let file = dir.join("follower-session.json");
    let deadline = std::time::Instant::now() + WAIT;
    let kept = loop {
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(&text)
            && let Some(pem) = v["cert_pem"].as_str()
        {
            break DtlsCert::from_pem(pem).expect("the singer's certificate");
        }
        assert!(std::time::Instant::now() < deadline, "the session is kept");
        std::thread::sleep(Duration::from_millis(20));
    };
    let victim = kept.fingerprint().to_owned();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let opened = rt.block_on(async {
        let (link, offer, mut events) =
            Link::offer(&RtcConfig::new(LOCAL), None).await.expect("offer");
        let own = maestral_net::rtc::sha256_fingerprint(&offer).expect("a fingerprint");
        let hex = |fp: &str| fp.trim_start_matches("sha-256 ").to_owned();
        // The attacker's offer claims the singer's certificate.
        let forged = offer.replace(&hex(&own), &hex(&victim));
        assert_ne!(forged, offer);
        let body = JoinRequestBody {
            session_id: code.session_id.clone(),
            token: code.token.clone(),
            device_id: "F".into(),
            offer: forged,
        };
        // The claimed certificate is the singer's: the listener answers (only DTLS can tell).
        let answer = post_join(code.host, &body, WAIT).await.expect("answered");
        link.accept_answer(&answer).await.expect("the answer applies");
        let opened = wait_open(&mut events, Duration::from_secs(8)).await;
        link.close().await;
        opened
    });
    assert!(!opened, "DTLS let a link through without the certificate's key");
    m.local(LocalAction::NextPage);
    f.wait_view("a", 1);
    assert!(
        !f.phases.contains(&Phase::FollowerDisconnectedLocal),
        "the singer's link was never replaced: {:?}",
        f.phases
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn one_address_holds_at_most_sixteen_places_and_one_given_back_is_free_again() {
    use maestral_net::sync::MAX_MEMBERS_PER_ADDRESS;
    // 127.0.0.1 plays one host on the LAN (loopback is exempt by default).
    let mut cfg = config("M");
    cfg.exempt_loopback = false;
    let (mut m, code) = master_with(cfg);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let mut held = Vec::new();
    for i in 0..MAX_MEMBERS_PER_ADDRESS {
        let id = format!("H{i}");
        let (link, events) = rogue_link(&rt, &code, &id, None).expect("within the cap");
        rt.block_on(common::rogue::ask_to_join(&link, &code, &id));
        held.push((link, events));
    }
    m.wait("every place taken", |s| {
        (0..MAX_MEMBERS_PER_ADDRESS)
            .all(|i| s.links.get(&DeviceId::new(format!("H{i}"))).is_some_and(|l| l.is_up()))
    });
    match rogue_link(&rt, &code, "one-more", None) {
        Err(JoinError::Rejected(maestral_net::signaling::RejectReason::Unavailable)) => {}
        Err(other) => panic!("refused, but not as busy: {other:?}"),
        Ok(_) => panic!("a seventeenth place from one address"),
    }
    // A place given back is a place again.
    let (link, _) = held.pop().expect("one");
    rt.block_on(link.close());
    m.wait("the place freed", |s| {
        !s.links
            .get(&DeviceId::new(format!("H{}", MAX_MEMBERS_PER_ADDRESS - 1)))
            .is_some_and(|l| l.is_up())
    });
    let (link, _) = rogue_link(&rt, &code, "one-more", None).expect("a freed place");
    rt.block_on(link.close());
    for (link, _) in held {
        rt.block_on(link.close());
    }
}

#[test]
fn a_singer_that_leaves_and_scans_the_same_code_again_is_the_same_member() {
    let (m, code) = master();
    m.local(song("a"));
    let dir = temp_dir("rescan");
    let mut cfg = config("F");
    cfg.state_dir = Some(dir.clone());
    let mut f = Peer::with(Role::Follower, cfg.clone());
    f.h.send(SyncCommand::Join(code.clone()));
    f.wait_phase(Phase::FollowerConnectedFollow);
    // Leave, and scan the code again: its id is bound to the certificate it joined with.
    f.local(LocalAction::Leave);
    f.wait_phase(Phase::FollowerIdleLocal);
    f.h.send(SyncCommand::Join(code.clone()));
    f.wait_phase(Phase::FollowerConnectedFollow);
    f.local(LocalAction::Leave);
    f.wait_phase(Phase::FollowerIdleLocal);
    f.h.shutdown();
    // A restart (or a role switch) after leaving: the certificate comes from the state
    // directory.
    let mut f = Peer::with(Role::Follower, cfg);
    f.h.send(SyncCommand::Join(code.clone()));
    f.wait_phase(Phase::FollowerConnectedFollow);
    m.local(LocalAction::NextPage);
    f.wait_view("a", 1);
    assert!(f.errors.is_empty(), "{:?}", f.errors);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The Master's refusals carry its proof, checked against the fingerprint its join code pins,
/// and a token holder cannot make the Master prove a refusal of a singer's request: a wrong
/// token under the singer's id and certificate is refused for that token only.
#[test]
fn the_masters_refusals_prove_themselves_only_for_the_request_refused() {
    use maestral_net::signaling::RejectReason;
    use maestral_net::signaling::proof::verify;
    let (m, code) = master();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let singer = DtlsCert::generate().expect("a certificate");
    let ask = |token: &str| {
        rt.block_on(async {
            let (link, offer, _events) =
                Link::offer(&RtcConfig::new(LOCAL), Some(&singer)).await.expect("an offer");
            let body = JoinRequestBody {
                session_id: code.session_id.clone(),
                token: maestral_protocol::SessionToken::new(token),
                device_id: "singer".into(),
                offer,
            };
            let outcome = post_join(code.host, &body, WAIT).await;
            link.close().await;
            (body, outcome)
        })
    };
    let (wrong, outcome) = ask("a-token-the-master-never-made");
    let Err(JoinError::Refused(RejectReason::InvalidToken, Some(proof))) = outcome else {
        panic!("refused with a proof: {outcome:?}")
    };
    assert!(verify(&code.fingerprint, RejectReason::InvalidToken, &wrong, &proof));
    // The same refusal replayed to the singer, whose request has the right token: no proof.
    let mut right = wrong.clone();
    right.token = code.token.clone();
    assert!(!verify(&code.fingerprint, RejectReason::InvalidToken, &right, &proof));
    // After the end, the singer's own request is refused as ended, provably.
    m.local(LocalAction::EndSession);
    let mut m = m;
    m.wait_phase(Phase::MasterSessionEnded);
    let (asked, outcome) = ask(code.token.expose());
    let Err(JoinError::Refused(RejectReason::SessionEnded, Some(proof))) = outcome else {
        panic!("refused as ended with a proof: {outcome:?}")
    };
    assert!(verify(&code.fingerprint, RejectReason::SessionEnded, &asked, &proof));
}

/// A Master keeps its certificate across sessions and restarts: a singer holding the code of a
/// session that has ended is told for good that it no longer works, with the Master's proof,
/// even after the Master app restarted.
#[test]
fn a_code_of_an_ended_session_is_refused_for_good_after_the_master_restarts() {
    let dir = temp_dir("hostile-identity");
    let mut m = master_in(&dir);
    let old: JoinCode = m.join_code.clone().expect("code").parse().expect("parses");
    m.local(LocalAction::EndSession);
    m.wait_phase(Phase::MasterSessionEnded);
    m.h.shutdown();
    // Started again where it listened (an app that is told its port, as the app's `--listen`).
    let mut cfg = config("M");
    cfg.state_dir = Some(dir.clone());
    let mut m = Peer::with(Role::Master, cfg);
    m.h.send(SyncCommand::StartChoir { listen: old.host });
    m.wait("a join code", |s| s.join_code.is_some());
    let new: JoinCode = m.join_code.clone().expect("code").parse().expect("parses");
    assert_ne!(new.session_id, old.session_id, "another session");
    assert_eq!(new.fingerprint, old.fingerprint, "the same certificate");
    assert_eq!(new.host, old.host, "the same address");
    let mut f = Peer::start("F", Role::Follower);
    f.h.send(SyncCommand::Join(old));
    f.wait("the refusal", |f| f.rejected.is_some());
    assert_eq!(f.rejected, Some(maestral_protocol::RejectReason::InvalidToken));
    f.wait("back to playing alone", |f| f.phase == Some(Phase::FollowerIdleLocal));
    let _ = std::fs::remove_dir_all(&dir);
}
