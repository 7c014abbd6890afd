//! Copies of register updates (`Output::Transmit`'s `register`, `Engine::handle_copy`): which
//! messages the engine marks, and what a copy may and may not do at the receiver.

mod common;

use common::*;
use maestral_protocol::{
    Envelope, JoinRequest, Message, Register, SessionId, SessionToken, SoloSetPage, SongEpoch,
};
use maestral_sync::{LocalAction, Phase, RecvError, StateView};

fn follower_state(d: &Dev) -> maestral_sync::FollowerState {
    match d.state() {
        StateView::Follower(s) => s,
        other => panic!("not a follower: {other:?}"),
    }
}

#[test]
fn page_song_and_layout_changes_are_marked_and_nothing_else_is() {
    let mut m = master();
    let _f = joined("F", &mut m);
    m.take_marked();
    m.local(LocalAction::SetSong { song_id: song("a") });
    m.local(LocalAction::SetPage { page: 3 });
    let marked = m.take_marked();
    assert_eq!(
        marked,
        [
            ("SET_SONG".to_owned(), Some(Register::Song)),
            ("SET_PAGE".to_owned(), Some(Register::Page))
        ]
    );
    m.local(LocalAction::EndSession);
    assert!(m.take_marked().iter().all(|(t, r)| t == "SESSION_END" && r.is_none()));

    let (mut a, mut b) =
        (Dev::new("A", maestral_sync::Role::Solo), Dev::new("B", maestral_sync::Role::Solo));
    connect(&mut a, &mut b);
    let hello: Vec<_> = a.take_marked();
    assert!(
        hello.iter().all(|(_, r)| r.is_none()),
        "HELLO and snapshots are not registers: {hello:?}"
    );
    a.at(10).local(LocalAction::SetParity { parity: maestral_protocol::Parity::Even });
    a.at(10).local(LocalAction::NextPage);
    assert_eq!(
        a.take_marked(),
        [
            ("SET_LAYOUT_PARITY".to_owned(), Some(Register::Layout)),
            ("SET_PAGE".to_owned(), Some(Register::Page))
        ]
    );
}

#[test]
fn a_copy_applies_like_the_original_and_a_duplicate_or_stale_one_changes_nothing() {
    let mut m = master();
    let mut f = joined("F", &mut m);
    m.local(LocalAction::SetSong { song_id: song("a") });
    relay(&mut m, &mut [&mut f]);
    let epoch = follower_state(&f).song_epoch.0;
    let rev = follower_state(&f).page_revision.0;

    // The original was lost; its copy turns the page.
    f.recv_copy("M", "S", set_page(epoch, rev + 1, 4)).expect("a copy of SET_PAGE is taken");
    assert_eq!(f.page(), 4);
    assert!(f.take_sent().is_empty(), "a copy is never answered");
    // The original, late, and a second copy: nothing changes.
    let before = f.snapshot();
    f.recv("M", "S", set_page(epoch, rev + 1, 4));
    f.recv_copy("M", "S", set_page(epoch, rev + 1, 4))
        .expect("a register update is taken as a copy");
    assert_eq!(f.snapshot(), before);
    // A stale copy (an older revision) after a newer turn: nothing changes.
    f.recv("M", "S", set_page(epoch, rev + 2, 6));
    f.recv_copy("M", "S", set_page(epoch, rev + 1, 4))
        .expect("a register update is taken as a copy");
    assert_eq!(f.page(), 6);
    // A copy of a page of the next song before that song's own message: it waits for the song.
    f.recv_copy("M", "S", set_page(epoch + 1, 1, 2)).expect("a register update is taken as a copy");
    assert_eq!(f.page(), 6);
    let song_change = Message::ChoirSetSong(maestral_protocol::ChoirSetSong {
        song_id: song("b"),
        song_epoch: SongEpoch(epoch + 1),
    });
    f.recv_copy("M", "S", song_change).expect("a register update is taken as a copy");
    assert_eq!((f.view().song_id, f.page()), (song("b"), 2));
}

#[test]
fn a_copy_that_is_no_register_update_is_refused_and_changes_nothing() {
    let mut m = master();
    let mut f = joined("F", &mut m);
    let before = f.snapshot();
    let refused = f.recv_copy("M", "S", Message::SessionEnd);
    assert!(
        matches!(&refused, Err(RecvError::NotACopy { message_type, .. }) if message_type == "SESSION_END"),
        "{refused:?}"
    );
    assert_eq!(f.snapshot(), before, "a SESSION_END on the copy channel ends nothing");
    assert_eq!(f.phase(), Phase::FollowerConnectedFollow);

    // Nor can a Follower join, or move anything, through the Master's copy channel.
    let before = m.snapshot();
    let join = Message::JoinRequest(JoinRequest {
        session_token: SessionToken::new("tok"),
        follow_mode: maestral_protocol::FollowMode::Follow,
        song_epoch: SongEpoch(0),
    });
    assert!(matches!(m.recv_copy("F", "S", join), Err(RecvError::NotACopy { .. })));
    m.recv_copy("F", "S", set_page(99, 99, 9)).expect("a register update is taken as a copy");
    assert_eq!(m.snapshot(), before, "a Master takes no page from a Follower");
    assert!(m.take_sent().is_empty());
}

#[test]
fn a_stale_solo_copy_is_not_answered_while_the_stale_original_is() {
    let (mut a, mut b) =
        (Dev::new("A", maestral_sync::Role::Solo), Dev::new("B", maestral_sync::Role::Solo));
    connect(&mut a, &mut b);
    a.at(1_000).local(LocalAction::SetPage { page: 8 });
    a.take_sent();
    let old = Envelope::new(
        SessionId::default(),
        id("B"),
        a.now - 500,
        Message::SoloSetPage(SoloSetPage { song_id: None, page_index: 2 }),
    );
    let before = a.snapshot();
    a.recv_copy_env("B", old.clone()).expect("a register update is taken as a copy");
    assert_eq!(a.snapshot(), before, "older than our last change: not applied");
    assert!(a.take_sent().is_empty(), "a stale copy gets no snapshot (its original gets one)");
    a.recv_env("B", old);
    assert_eq!(a.sent_types(), ["STATE_SNAPSHOT"]);

    // A newer copy applies: B's turn reaches A without its original.
    let newer = Envelope::new(
        SessionId::default(),
        id("B"),
        a.now + 10,
        Message::SoloSetPage(SoloSetPage { song_id: None, page_index: 12 }),
    );
    a.recv_copy_env("B", newer).expect("a register update is taken as a copy");
    assert_eq!(a.page() & !1, 12);
}
