//! Issue 16's attacks on the engine's rules: a token holder's claims never move the Master, a
//! spent counter is refused (never saturated), a far-future Solo stamp is refused.

mod common;

use common::*;
use maestral_protocol::{
    Envelope, FollowMode, JoinRequest, Message, PageChangeStamp, PageRevision, SessionId,
    SoloSetPage, SongEpoch,
};
use maestral_sync::{
    ActionError, LinkSignal::*, LocalAction, MasterState, Phase, RecvError, Role, StateView,
};

fn master_state(d: &Dev) -> MasterState {
    match d.state() {
        StateView::Master(s) => s,
        other => panic!("not a master: {other:?}"),
    }
}

fn claim(epoch: u64) -> Message {
    Message::JoinRequest(JoinRequest {
        session_token: "tok".into(),
        follow_mode: FollowMode::Follow,
        song_epoch: SongEpoch(epoch),
    })
}

/// The Master at song "a", page 3, with the honest Follower `F` in step.
fn choir() -> (Dev, Dev) {
    let mut m = master();
    let mut f = joined("F", &mut m);
    m.local(LocalAction::SetSong { song_id: song("a") });
    m.local(LocalAction::SetPage { page: 3 });
    pump(&mut m, &mut f);
    assert_eq!((f.view().song_id, f.page()), (song("a"), 3));
    (m, f)
}

#[test]
fn a_join_request_claiming_the_last_epoch_never_moves_the_master() {
    let (mut m, mut f) = choir();
    let before = master_state(&m);
    m.link("R", Up);
    m.take_sent();
    m.recv("R", "S", claim(u64::MAX));
    let after = master_state(&m);
    assert_eq!(
        (after.song_id.clone(), after.song_epoch, after.page_index, after.page_revision),
        (before.song_id.clone(), before.song_epoch, before.page_index, before.page_revision),
        "the Master's position is its own"
    );
    let to_f = m.take_sent_to("F");
    assert!(to_f.is_empty(), "nothing reaches the honest Follower: {to_f:?}");
    // Song changes still count normally afterwards.
    m.local(LocalAction::SetSong { song_id: song("b") });
    pump(&mut m, &mut f);
    assert_eq!(master_state(&m).song_epoch, before.song_epoch.next().expect("an epoch"));
    assert_eq!((f.view().song_id, f.page()), (song("b"), 0));
}

#[test]
fn join_requests_one_epoch_ahead_in_a_loop_never_yank_the_choir() {
    let (mut m, mut f) = choir();
    m.link("R", Up);
    let epoch = master_state(&m).song_epoch.0;
    for i in 1..=20 {
        m.recv("R", "S", claim(epoch + i));
        m.at(10);
    }
    pump(&mut m, &mut f);
    assert_eq!((f.view().song_id, f.page()), (song("a"), 3), "the honest Follower stays put");
    assert_eq!(master_state(&m).song_epoch.0, epoch);
}

#[test]
fn a_spent_song_epoch_is_refused_not_saturated() {
    let (mut m, _f) = choir();
    let saved = MasterState { song_epoch: SongEpoch(u64::MAX), ..master_state(&m) };
    m.e.resume_master(&saved);
    m.drain_now();
    let err = m.try_local(LocalAction::SetSong { song_id: song("b") }).expect_err("refused");
    assert!(matches!(err, ActionError::CounterSpent(_)), "{err}");
    assert!(err.to_string().contains("start a new session"), "{err}");
    let s = master_state(&m);
    assert_eq!((s.song_id, s.song_epoch), (song("a"), SongEpoch(u64::MAX)), "nothing changed");
}

#[test]
fn a_spent_page_revision_is_refused_not_saturated() {
    let (mut m, _f) = choir();
    let saved = MasterState { page_revision: PageRevision(u64::MAX), ..master_state(&m) };
    m.e.resume_master(&saved);
    m.drain_now();
    let err = m.try_local(LocalAction::NextPage).expect_err("refused");
    assert!(matches!(err, ActionError::CounterSpent("page revision")), "{err}");
    assert_eq!(m.page(), 3, "the page did not move");
    // A song change starts a fresh revision counter: the Master can go on.
    m.local(LocalAction::SetSong { song_id: song("b") });
    m.local(LocalAction::NextPage);
    assert_eq!(m.page(), 1);
}

fn solo_pair() -> (Dev, Dev) {
    let mut a = Dev::new("A", Role::Solo);
    let mut b = Dev::new("B", Role::Solo);
    connect(&mut a, &mut b);
    assert_eq!(a.phase(), Phase::SoloPairedConnected);
    (a, b)
}

#[test]
fn a_solo_change_stamped_far_in_the_future_is_refused_and_later_turns_still_win() {
    let (mut a, mut b) = solo_pair();
    let before = a.snapshot();
    for ahead in [u64::MAX - a.now, 10 * 60 * 1000 + 1] {
        let forged = Envelope::new(
            SessionId::new(""),
            id("B"),
            a.now + ahead,
            Message::SoloSetPage(SoloSetPage { song_id: song("x"), page_index: 40 }),
        );
        let err = a.recv_bytes("B", forged.encode().as_bytes()).expect_err("refused");
        assert!(matches!(err, RecvError::FarFuture { .. }), "{err}");
        assert!(err.to_string().contains("ahead of this device's clock"), "{err}");
        assert_eq!(a.snapshot(), before, "state unchanged");
    }
    // Just under the bound is a clock that is a little off: applied.
    let near = Envelope::new(
        SessionId::new(""),
        id("B"),
        a.now + 60_000,
        Message::SoloSetPage(SoloSetPage { song_id: song("x"), page_index: 4 }),
    );
    a.recv_bytes("B", near.encode().as_bytes()).expect("applied");
    assert_eq!(a.view().song_id, song("x"));
    // The partner's own turns go on winning.
    b.at(61_000);
    b.local(LocalAction::SetSong { song_id: song("y") });
    pump(&mut a, &mut b);
    assert_eq!(a.view().song_id, song("y"));
}

#[test]
fn a_solo_snapshot_carrying_a_far_future_stamp_is_refused() {
    let (mut a, _b) = solo_pair();
    let before = a.snapshot();
    let StateView::Solo(mut theirs) = a.state() else { panic!("solo") };
    theirs.song_id = song("x");
    theirs.last_layout_change = PageChangeStamp { sender_id: id("B"), ts: u64::MAX };
    let forged = Envelope::new(SessionId::new(""), id("B"), a.now, Message::SoloSnapshot(theirs));
    let err = a.recv_bytes("B", forged.encode().as_bytes()).expect_err("refused");
    assert!(matches!(err, RecvError::FarFuture { .. }), "{err}");
    assert_eq!(a.snapshot(), before, "state unchanged");
}

#[test]
fn a_forged_http_refusal_of_a_rejoin_keeps_the_membership_and_the_rejoin_goes_on() {
    let (mut m, mut f) = choir();
    f.link("M", Down);
    m.link("F", Down);
    f.tick(1_000);
    // A device answering for the Master's address refuses the rejoin.
    f.e.handle_join_refused(f.now, maestral_protocol::RejectReason::InvalidToken);
    f.drain_now();
    assert_eq!(f.phase(), Phase::FollowerDisconnectedLocal);
    f.take_requests();
    // The next attempt comes after the longer backoff, and the real Master takes it back.
    f.tick(maestral_sync::Timing::LAN.refused_rejoin_backoff_ms - 100);
    assert!(f.take_requests().is_empty(), "no attempt inside the longer backoff");
    f.tick(1_000);
    assert!(!f.take_requests().is_empty(), "tried again");
    m.local(LocalAction::NextPage);
    connect(&mut f, &mut m);
    assert_eq!(f.phase(), Phase::FollowerConnectedFollow);
    assert_eq!((f.view().song_id, f.page()), (song("a"), 4), "back in step");
}

#[test]
fn a_peers_name_is_shown_without_hidden_characters() {
    use maestral_protocol::shown_name;
    assert_eq!(shown_name("Alto 2").as_deref(), Some("Alto 2"));
    assert_eq!(shown_name("  Alto \t\n 2 ").as_deref(), Some("Alto 2"));
    // A right-to-left override would show "Alto" as another singer's name.
    assert_eq!(shown_name("Ten\u{202e}otla").as_deref(), Some("Tenotla"));
    assert_eq!(shown_name("a\u{0}b\u{7}c\u{200b}d\u{feff}").as_deref(), Some("abcd"));
    assert_eq!(shown_name("\u{202e}\u{200b} \n"), None);
    assert_eq!(shown_name(&"é".repeat(100)).map(|n| n.chars().count()), Some(64));
}

#[test]
fn the_roster_shows_a_hello_name_cleaned_and_the_id_for_an_empty_one() {
    use maestral_protocol::Hello;
    let mut m = master();
    let mut f = joined("F", &mut m);
    pump(&mut m, &mut f);
    let hello = |name: &str| {
        Message::Hello(Hello {
            mode: maestral_protocol::Mode::ChoirFollower,
            device_name: name.into(),
            app_version: "0".into(),
            capabilities: Vec::new(),
        })
    };
    let names = |m: &mut Dev| -> Vec<String> {
        m.tick(1_000);
        m.take_events()
            .into_iter()
            .rev()
            .find_map(|e| match e {
                maestral_sync::Event::Roster(r) => {
                    Some(r.members.into_iter().map(|x| x.name).collect())
                }
                _ => None,
            })
            .unwrap_or_default()
    };
    m.recv("F", "S", hello("Ten\u{202e}or"));
    assert_eq!(names(&mut m), ["Tenor"]);
    m.recv("F", "S", hello("\u{200b}"));
    assert_eq!(names(&mut m), ["F"]);
}
