//! One named test per rule of docs/behaviour.md §10–§14 (wire details: docs/protocol.md).
//! Each fails if its rule is broken.

mod common;

use common::*;
use maestral_protocol::{
    ChoirSetSong, ChoirSnapshot, Envelope, FollowMode, JoinAccept, JoinReject, JoinRequest, Layout,
    Message, PageRevision, Parity, RejectReason, SessionId, SessionToken, SetFollowMode,
    SoloSetPage, SongEpoch, SongId, StreamClear, StreamPrepare,
};
use maestral_sync::{
    Event, LinkSignal::*, LinkState, LocalAction, Pager, Phase, Role, StateView, Timing,
    TransportRequest, Turn, View,
};

fn set_song(s: &str, epoch: u64) -> Message {
    Message::ChoirSetSong(ChoirSetSong { song_id: song(s), song_epoch: SongEpoch(epoch) })
}

/// A `JOIN_REQUEST` in follow mode from a Follower that has seen no epoch.
fn join_request(token: &str) -> Message {
    Message::JoinRequest(JoinRequest {
        session_token: token.into(),
        follow_mode: FollowMode::Follow,
        song_epoch: SongEpoch(0),
    })
}

/// The Master answered with exactly one `JOIN_REJECT` for `reason`.
fn assert_only_rejection(m: &mut Dev, reason: RejectReason) {
    let sent = m.take_sent();
    assert!(
        matches!(&sent[..], [(_, e, _)] if e.message == Message::JoinReject(JoinReject { reason })),
        "{sent:?}"
    );
}

fn join_action() -> LocalAction {
    LocalAction::Join { master: id("M"), session_id: SessionId::new("S"), token: "tok".into() }
}

/// A Follower "F" joined to a scripted Master "M" (messages written by hand).
fn follower_with(snap: ChoirSnapshot) -> Dev {
    let mut f = Dev::new("F", Role::Follower);
    f.local(join_action());
    f.link("M", Up);
    assert_eq!(f.sent_types(), ["HELLO", "JOIN_REQUEST"]);
    f.recv("M", "S", Message::JoinAccept(JoinAccept { snapshot: snap }));
    assert_eq!(f.phase(), Phase::FollowerConnectedFollow);
    // What it shows now goes to the Master right after the accept (docs/protocol.md §4, `SHOWING`).
    assert_eq!(f.sent_types(), ["SHOWING"]);
    f
}

fn follower_state(d: &Dev) -> maestral_sync::FollowerState {
    match d.state() {
        StateView::Follower(s) => s,
        other => panic!("not a follower: {other:?}"),
    }
}

fn master_state(d: &Dev) -> maestral_sync::MasterState {
    match d.state() {
        StateView::Master(s) => s,
        other => panic!("not a master: {other:?}"),
    }
}

fn solo_state(d: &Dev) -> maestral_protocol::SoloState {
    match d.state() {
        StateView::Solo(s) => s,
        other => panic!("not solo: {other:?}"),
    }
}

fn solo_pair() -> (Dev, Dev) {
    let mut a = Dev::new("A", Role::Solo);
    let mut b = Dev::new("B", Role::Solo);
    connect(&mut a, &mut b);
    assert_eq!(a.phase(), Phase::SoloPairedConnected);
    assert_eq!(b.phase(), Phase::SoloPairedConnected);
    (a, b)
}

fn connects(reqs: &[TransportRequest], peer: &str) -> usize {
    reqs.iter()
        .filter(|r| matches!(r, TransportRequest::Connect { peer: p } if p.as_str() == peer))
        .count()
}

// ---- §10.1 generic link state ---------------------------------------------------------------

#[test]
fn s10_1_link_goes_idle_connecting_connected_degraded_reconnecting_connected() {
    let mut m = master();
    let mut f = Dev::new("F", Role::Follower);
    assert_eq!(f.link_state("M"), LinkState::Idle);
    f.local(join_action());
    assert_eq!(f.link_state("M"), LinkState::Connecting);
    assert_eq!(connects(&f.take_requests(), "M"), 1, "joining asks the transport to connect");
    connect(&mut f, &mut m);
    assert_eq!(f.link_state("M"), LinkState::Connected);
    f.link("M", Degraded);
    assert_eq!(f.link_state("M"), LinkState::Degraded);
    f.link("M", Down);
    assert_eq!(f.link_state("M"), LinkState::Reconnecting);
    m.link("F", Down);
    f.tick(1_000);
    assert_eq!(connects(&f.take_requests(), "M"), 1, "a retry ran");
    connect(&mut f, &mut m);
    assert_eq!(f.link_state("M"), LinkState::Connected);
    assert_eq!(m.link_state("F"), LinkState::Connected);
}

#[test]
fn s10_1_link_ends_when_the_follower_leaves() {
    let mut m = master();
    let mut f = joined("F", &mut m);
    f.local(LocalAction::Leave);
    assert_eq!(f.link_state("M"), LinkState::Ended);
    pump(&mut f, &mut m);
    assert_eq!(m.link_state("F"), LinkState::Ended);
    assert!(m.take_requests().contains(&TransportRequest::Disconnect { peer: id("F") }));
}

#[test]
fn s10_1_link_ends_when_the_session_ends() {
    let mut m = master();
    let mut f = joined("F", &mut m);
    m.local(LocalAction::EndSession);
    assert_eq!(m.link_state("F"), LinkState::Ended);
    pump(&mut m, &mut f);
    assert_eq!(f.link_state("M"), LinkState::Ended);
}

// ---- §10.2 Solo ------------------------------------------------------------------------------

#[test]
fn s10_2_a_device_alone_is_local_only_and_turns_one_page() {
    let mut a = Dev::new("A", Role::Solo);
    assert_eq!(a.phase(), Phase::SoloLocalOnly);
    a.local(LocalAction::NextPage);
    a.local(LocalAction::NextPage);
    a.local(LocalAction::NextPage);
    assert_eq!(a.page(), 3);
    assert!(a.take_sent().is_empty(), "nobody to tell");
}

#[test]
fn s10_2_pair_success_is_paired_connected_and_turns_move_the_spread() {
    let (mut a, mut b) = solo_pair();
    assert_eq!(solo_state(&a).page_index, 0);
    a.local(LocalAction::NextPage);
    assert_eq!(solo_state(&a).page_index, 2, "one turn moves the shared spread by two");
    pump(&mut a, &mut b);
    assert_eq!(solo_state(&b).page_index, 2);
    // Defaults: B (higher id) wins the initial tie, B leads with odd: B shows 2, A shows 3.
    let (va, vb) = (a.page(), b.page());
    assert_eq!([va.min(vb), va.max(vb)], [2, 3], "the two halves of one spread");
}

#[test]
fn s10_2_temporary_loss_goes_degraded_then_reconnecting() {
    let (mut a, _b) = solo_pair();
    a.link("B", Degraded);
    assert_eq!(a.phase(), Phase::SoloPairedDegraded);
    a.link("B", Down);
    assert_eq!(a.phase(), Phase::SoloPairedReconnecting);
}

#[test]
fn s10_2_degraded_for_too_long_counts_as_lost() {
    let (mut a, _b) = solo_pair();
    a.link("B", Degraded);
    a.tick(Timing::LAN.degraded_timeout_ms - 1);
    assert_eq!(a.phase(), Phase::SoloPairedDegraded);
    a.tick(1);
    assert_eq!(a.phase(), Phase::SoloPairedReconnecting);
    assert!(a.take_requests().contains(&TransportRequest::Disconnect { peer: id("B") }));
}

#[test]
fn s10_2_reconnect_success_returns_to_paired_connected() {
    let (mut a, mut b) = solo_pair();
    a.link("B", Down);
    b.link("A", Down);
    a.tick(2_000);
    b.tick(2_000);
    assert!(connects(&a.take_requests(), "B") >= 1);
    connect(&mut a, &mut b);
    assert_eq!(a.phase(), Phase::SoloPairedConnected);
    assert_eq!(b.phase(), Phase::SoloPairedConnected);
}

#[test]
fn s10_2_reconnect_failure_timeout_stays_local_until_the_partner_returns() {
    let (mut a, mut b) = solo_pair();
    a.link("B", Down);
    // Every attempt times out (nothing answers); after the give-up time the device is local.
    a.tick(Timing::LAN.solo_give_up_ms + 5_000);
    assert_eq!(a.phase(), Phase::SoloLocalOnly);
    a.take_requests();
    a.tick(120_000);
    assert_eq!(connects(&a.take_requests(), "B"), 0, "no more retries until a manual action");
    let shown = a.page();
    assert_eq!(shown, 1, "its half of the first spread (B leads with `odd`), kept alone");
    a.local(LocalAction::NextPage);
    assert_eq!(a.page(), 2, "alone again: one page at a time");
    // The partner comes back by itself (its own retries): paired again.
    b.link("A", Down);
    connect(&mut a, &mut b);
    assert_eq!(a.phase(), Phase::SoloPairedConnected);
}

// ---- §5.1 Solo: one half of the book alone ---------------------------------------------------

#[test]
fn s5_1_a_device_whose_partner_is_gone_shows_every_page_from_the_one_it_showed() {
    let (mut a, mut b) = solo_pair();
    b.local(LocalAction::SetPage { page: 4 });
    pump(&mut a, &mut b);
    // B leads with `odd` (the higher id's defaults): B shows 4, A shows 5.
    assert_eq!((a.page(), b.page()), (5, 4));
    a.link("B", Degraded);
    assert_eq!(a.e.pager().step(), 2, "degraded is still up: still one half of the book");
    a.tick(Timing::LAN.degraded_timeout_ms);
    assert_eq!(a.phase(), Phase::SoloPairedReconnecting);
    assert_eq!(a.e.pager(), Pager::SINGLE, "past the degraded threshold: every page");
    assert_eq!(a.page(), 5, "no jump: the page it showed");
    assert!(a.take_events().contains(&Event::Pager(Pager::SINGLE)), "the app is told");
    a.local(LocalAction::NextPage);
    assert_eq!(a.page(), 6, "one page at a time, the pedal live");
    a.local(LocalAction::PrevPage);
    a.local(LocalAction::PrevPage);
    assert_eq!(a.page(), 4);
    assert!(a.take_sent().is_empty(), "nobody to tell");
    // The other half alone too, from its own page.
    b.link("A", Down);
    b.local(LocalAction::NextPage);
    assert_eq!(b.page(), 5);
}

#[test]
fn s5_1_a_link_back_from_degraded_is_still_one_book() {
    let (mut a, mut b) = solo_pair();
    b.local(LocalAction::SetPage { page: 4 });
    pump(&mut a, &mut b);
    // Only A saw the link falter; it comes back (the transport says `up` again).
    a.link("B", Degraded);
    a.link("B", Up);
    assert_eq!(a.phase(), Phase::SoloPairedConnected);
    assert_eq!(a.e.pager().step(), 2, "never alone: nothing was lost");
    assert_eq!(a.page(), 5);
    pump(&mut a, &mut b);
    b.local(LocalAction::NextPage);
    pump(&mut a, &mut b);
    assert_eq!((a.page(), b.page()), (7, 6), "turns still move the spread on both");
}

#[test]
fn s5_1_a_new_link_only_one_side_took_for_new_still_makes_one_book() {
    let (mut a, mut b) = solo_pair();
    // Only A lost the link (and turned alone); B never noticed. A's new link: A waits for B's
    // state, and B sends it on A's HELLO.
    a.link("B", Down);
    a.local(LocalAction::SetPage { page: 9 });
    a.take_sent();
    a.link("B", Up);
    assert_eq!(a.e.pager(), Pager::SINGLE, "alone until B's state is merged");
    pump(&mut a, &mut b);
    assert_eq!(a.e.pager().step(), 2, "one book again");
    assert_eq!((a.page(), b.page()), (9, 8));
    assert_eq!(solo_state(&a), solo_state(&b));
}

#[test]
fn s5_1_back_together_the_device_that_turned_last_alone_keeps_its_page() {
    let (mut a, mut b) = solo_pair();
    a.link("B", Down);
    b.link("A", Down);
    // Apart: B turns to 7 first, A later to 10. A showed the second half (B leads `odd`).
    b.at(100).local(LocalAction::SetPage { page: 7 });
    a.at(200).local(LocalAction::SetPage { page: 10 });
    a.take_sent();
    b.take_sent();
    a.link("B", Up);
    b.link("A", Up);
    assert_eq!((a.page(), b.page()), (10, 7), "linked, not merged yet: nothing moves");
    pump(&mut a, &mut b);
    assert_eq!(a.page(), 10, "A turned last: no jump it did not ask for");
    assert_eq!(b.page(), 11, "B takes the other half of A's spread");
    for d in [&a, &b] {
        let st = solo_state(d);
        assert_eq!(st.page_index, 10);
        assert_eq!((st.layout.leader_device_id.as_str(), st.layout.parity), ("A", Parity::Odd));
        assert_eq!(st.last_layout_change, st.last_page_change, "the layout the turn implies");
        assert_eq!(d.e.pager().step(), 2, "one book again");
    }
    assert_eq!(solo_state(&a), solo_state(&b));
    // Turning on: spreads again, from A's spread.
    a.local(LocalAction::NextPage);
    pump(&mut a, &mut b);
    assert_eq!((a.page(), b.page()), (12, 13));
}

#[test]
fn s5_1_back_together_a_turn_alone_on_its_own_half_changes_no_layout() {
    let (mut a, mut b) = solo_pair();
    a.link("B", Down);
    b.link("A", Down);
    a.at(200).local(LocalAction::SetPage { page: 9 });
    a.take_sent();
    let layout = solo_state(&a).last_layout_change;
    connect(&mut a, &mut b);
    assert_eq!((a.page(), b.page()), (9, 8), "9 is A's half of spread 8 already");
    assert_eq!(solo_state(&a).last_layout_change, layout, "no layout change needed");
}

#[test]
fn s5_1_a_layout_change_made_before_the_turn_alone_that_arrives_late_moves_nothing() {
    let (mut a, mut b) = solo_pair();
    a.link("B", Down);
    b.link("A", Down);
    a.at(200).local(LocalAction::SetPage { page: 9 });
    a.take_sent();
    connect(&mut a, &mut b);
    assert_eq!((a.page(), b.page()), (9, 8), "9 is A's half already");
    // A layout change of B's made before A's turn (B's clock behind) reaches A only now.
    let turn = solo_state(&a).last_page_change;
    let late = Envelope::new(
        SessionId::default(),
        id("B"),
        turn.ts - 50,
        Message::SetLayoutParity(Layout { leader_device_id: id("B"), parity: Parity::Even }),
    );
    a.recv_env("B", late);
    assert_eq!(a.page(), 9, "A turned last: it keeps its page");
    assert_eq!(solo_state(&a).last_layout_change, turn, "the layout A's turn implies");
    pump(&mut a, &mut b);
    assert_eq!((a.page(), b.page()), (9, 8));
    assert_eq!(solo_state(&a), solo_state(&b));
}

#[test]
fn s5_1_a_layout_change_made_after_the_turn_alone_stands() {
    let (mut a, mut b) = solo_pair();
    a.local(LocalAction::SetParity { parity: Parity::Even });
    pump(&mut a, &mut b);
    a.link("B", Down);
    b.link("A", Down);
    a.at(100).local(LocalAction::SetPage { page: 10 });
    // Later, B's performer makes B the leader with `odd`: B shows the spread's first page.
    b.at(200).local(LocalAction::SetParity { parity: Parity::Odd });
    a.take_sent();
    b.take_sent();
    connect(&mut a, &mut b);
    assert_eq!(solo_state(&a).page_index, 10, "A's turn is the latest page change");
    assert_eq!(solo_state(&a).layout.leader_device_id, id("B"), "B's later layout stands");
    assert_eq!((a.page(), b.page()), (11, 10));
    assert_eq!(solo_state(&a), solo_state(&b));
}

#[test]
fn s5_1_the_partners_turn_during_the_merge_takes_this_devices_half_at_once() {
    let (mut a, mut b) = solo_pair();
    a.link("B", Down);
    b.link("A", Down);
    a.link("B", Up);
    b.link("A", Up);
    // B's snapshot reaches A; then B turns, and the copy of B's turn overtakes nothing else.
    pump(&mut a, &mut b);
    b.local(LocalAction::SetPage { page: 6 });
    pump(&mut a, &mut b);
    assert_eq!((a.page(), b.page()), (7, 6));
    // Alone again, A turns; before B's snapshot on the next link, a copy of B's later turn
    // arrives: A goes straight to its half of B's spread, never to the spread's first page.
    a.link("B", Down);
    b.link("A", Down);
    a.at(10).local(LocalAction::SetPage { page: 3 });
    a.take_sent();
    a.link("B", Up);
    a.take_sent();
    let turn = Envelope::new(
        SessionId::default(),
        id("B"),
        a.now + 50,
        Message::SoloSetPage(SoloSetPage { song_id: None, page_index: 20 }),
    );
    a.recv_copy_env("B", turn).expect("a copy of B's turn");
    assert_eq!(a.page(), 21, "A's half of B's spread 20, at once");
}

// ---- §10.3 Master ----------------------------------------------------------------------------

#[test]
fn s10_3_master_idle_active_reconnecting_links_ended() {
    let mut m = Dev::new("M", Role::Master);
    assert_eq!(m.phase(), Phase::MasterIdle);
    m.local(LocalAction::StartSession {
        session_id: Some(SessionId::new("S")),
        token: Some("tok".into()),
    });
    assert_eq!(m.phase(), Phase::MasterSessionActive);
    let mut f = joined("F", &mut m);
    m.link("F", Down);
    assert_eq!(m.phase(), Phase::MasterReconnectingLinks);
    f.link("M", Down);
    connect(&mut f, &mut m);
    assert_eq!(m.phase(), Phase::MasterSessionActive);
    m.local(LocalAction::EndSession);
    assert_eq!(m.phase(), Phase::MasterSessionEnded);
}

fn disconnects(reqs: &[TransportRequest]) -> Vec<String> {
    reqs.iter()
        .filter_map(|r| match r {
            TransportRequest::Disconnect { peer } => Some(peer.to_string()),
            _ => None,
        })
        .collect()
}

#[test]
fn s10_3_a_link_that_does_not_join_within_the_deadline_is_closed() {
    let deadline = Timing::LAN.join_deadline_ms;
    let mut m = master();
    let mut f = joined("F", &mut m);
    // A link that opens and never asks to join; one that asks with a wrong token.
    m.link("X", Up);
    m.link("Y", Up);
    m.recv("Y", "S", join_request("wrong"));
    m.take_requests();
    m.tick(deadline - 1);
    assert_eq!(disconnects(&m.take_requests()), Vec::<String>::new(), "not yet");
    m.tick(1);
    assert_eq!(disconnects(&m.take_requests()), ["X", "Y"], "closed at the deadline");
    assert_eq!(m.link_state("X"), LinkState::Idle, "and forgotten");
    // The member's link recovering after a wobble does not make it join again.
    m.link("F", Degraded);
    m.link("F", Up);
    m.tick(deadline * 2);
    assert_eq!(disconnects(&m.take_requests()), Vec::<String>::new(), "a member stays");
    // A member back on a new link that never joins: closed, its place kept as after a drop-out.
    m.link("F", Down);
    m.link("F", Up);
    m.tick(deadline);
    assert_eq!(disconnects(&m.take_requests()), ["F"]);
    assert_eq!(m.link_state("F"), LinkState::Reconnecting);
    assert_eq!(m.phase(), Phase::MasterReconnectingLinks);
    // Its real rejoin (a new link that joins at once) is never cut.
    f.link("M", Down);
    m.link("F", Down);
    connect(&mut f, &mut m);
    m.tick(deadline * 2);
    assert_eq!(disconnects(&m.take_requests()), Vec::<String>::new());
    assert_eq!(m.phase(), Phase::MasterSessionActive);
}

#[test]
fn s13_ending_the_session_closes_links_that_never_joined_too() {
    let mut m = master();
    let _f = joined("F", &mut m);
    m.link("X", Up);
    m.take_requests();
    m.take_sent();
    m.local(LocalAction::EndSession);
    assert_eq!(disconnects(&m.take_requests()), ["F", "X"]);
    assert_eq!(m.link_state("X"), LinkState::Idle);
    let to: Vec<String> = m.take_sent().into_iter().map(|(to, ..)| to.to_string()).collect();
    assert_eq!(to, ["F"], "SESSION_END goes to members only");
}

// ---- §10.4 Follower --------------------------------------------------------------------------

#[test]
fn s10_4_follower_idle_joining_connected_follow() {
    let mut m = master();
    let mut f = Dev::new("F", Role::Follower);
    assert_eq!(f.phase(), Phase::FollowerIdleLocal);
    f.local(join_action());
    assert_eq!(f.phase(), Phase::FollowerJoining);
    connect(&mut f, &mut m);
    assert_eq!(f.phase(), Phase::FollowerConnectedFollow);
}

#[test]
fn s10_4_toggle_between_connected_follow_and_free() {
    let mut f = follower_with(snapshot("a", 1, 0, 0));
    f.local(LocalAction::SetFollowMode { mode: FollowMode::Free });
    assert_eq!(f.phase(), Phase::FollowerConnectedFree);
    f.local(LocalAction::SetFollowMode { mode: FollowMode::Follow });
    assert_eq!(f.phase(), Phase::FollowerConnectedFollow);
}

#[test]
fn s10_4_link_loss_goes_disconnected_local_then_rejoining() {
    let mut f = follower_with(snapshot("a", 1, 0, 0));
    f.link("M", Down);
    assert_eq!(f.phase(), Phase::FollowerDisconnectedLocal);
    f.tick(1_000);
    assert_eq!(f.phase(), Phase::FollowerRejoining);
}

#[test]
fn s10_4_rejoin_returns_to_the_previous_mode() {
    for mode in [FollowMode::Follow, FollowMode::Free] {
        let mut m = master();
        let mut f = joined("F", &mut m);
        f.local(LocalAction::SetFollowMode { mode });
        pump(&mut f, &mut m);
        f.link("M", Down);
        m.link("F", Down);
        f.tick(1_000);
        connect(&mut f, &mut m);
        let want = match mode {
            FollowMode::Follow => Phase::FollowerConnectedFollow,
            FollowMode::Free => Phase::FollowerConnectedFree,
        };
        assert_eq!(f.phase(), want);
    }
}

#[test]
fn s10_4_invalid_token_or_ended_session_returns_to_idle_local() {
    for reason in [RejectReason::InvalidToken, RejectReason::SessionEnded] {
        let mut f = Dev::new("F", Role::Follower);
        f.local(join_action());
        f.link("M", Up);
        f.recv("M", "S", Message::JoinReject(JoinReject { reason }));
        assert_eq!(f.phase(), Phase::FollowerIdleLocal);
        assert!(f.take_events().contains(&Event::JoinRejected { reason }));
    }
}

fn join_by_code() -> LocalAction {
    LocalAction::JoinByCode { session_id: SessionId::new("S"), token: "tok".into() }
}

#[test]
fn s10_4_a_join_by_code_is_joining_until_the_master_names_itself_on_the_link() {
    let mut m = master();
    let mut f = Dev::new("F", Role::Follower);
    f.local(join_by_code());
    assert_eq!(f.phase(), Phase::FollowerJoining);
    assert_eq!(f.take_requests(), [TransportRequest::JoinByCode]);
    assert_eq!(f.e.follower_master(), None, "the code does not name the Master");
    connect(&mut f, &mut m);
    assert_eq!(f.e.follower_master(), Some(&id("M")), "the link that opened is the Master's");
    assert_eq!(f.phase(), Phase::FollowerConnectedFollow);
}

#[test]
fn s10_4_a_first_join_that_fails_is_retried_on_the_backoff() {
    let mut f = Dev::new("F", Role::Follower);
    f.local(join_by_code());
    f.take_requests();
    f.e.handle_join_failed(f.now, false);
    f.drain_now();
    assert_eq!(f.phase(), Phase::FollowerJoining, "still joining, waiting for the next attempt");
    assert!(f.take_requests().is_empty(), "not at once: on the backoff");
    f.tick(1_000);
    assert_eq!(f.take_requests(), [TransportRequest::JoinByCode], "tried again");
    assert_eq!(f.phase(), Phase::FollowerJoining);
    // A code that cannot work (say, a forged answer) ends the join for good.
    f.e.handle_join_failed(f.now, true);
    f.drain_now();
    assert_eq!(f.phase(), Phase::FollowerIdleLocal);
    assert_eq!(f.take_requests(), [TransportRequest::CancelJoin]);
    assert_eq!(follower_state(&f).last_token, None);
}

#[test]
fn s10_4_a_first_join_refused_by_the_listener_returns_to_idle_local() {
    for reason in [RejectReason::InvalidToken, RejectReason::SessionEnded] {
        let mut f = Dev::new("F", Role::Follower);
        f.local(join_by_code());
        f.take_events();
        f.take_requests();
        f.e.handle_join_refused(f.now, reason);
        f.drain_now();
        assert_eq!(f.phase(), Phase::FollowerIdleLocal);
        let events = f.take_events();
        assert!(events.contains(&Event::JoinRejected { reason }), "{events:?}");
        assert!(events.contains(&Event::Phase(Phase::FollowerIdleLocal)));
        f.tick(10_000);
        assert!(f.take_requests().iter().all(|r| *r != TransportRequest::JoinByCode));
    }
}

#[test]
fn s10_4_leaving_before_the_first_join_is_answered_abandons_it() {
    let mut f = Dev::new("F", Role::Follower);
    f.local(join_by_code());
    f.take_requests();
    f.local(LocalAction::Leave);
    assert_eq!(f.take_requests(), [TransportRequest::CancelJoin]);
    assert_eq!(f.phase(), Phase::FollowerIdleLocal);
}

// ---- Navigation: the app predicts with the Pager, the engine never echoes it -----------------

fn shows(d: &mut Dev) -> Vec<(View, u64)> {
    d.take_events()
        .into_iter()
        .filter_map(|e| match e {
            Event::Show { view, navigations } => Some((view, navigations)),
            _ => None,
        })
        .collect()
}

#[test]
fn a_navigation_the_app_predicted_is_not_echoed() {
    let (mut a, mut b) = solo_pair();
    a.take_events();
    b.take_events();
    let pager = a.e.pager();
    assert_eq!(pager.step(), 2, "paired: a turn moves the spread");
    let page = pager.turn(a.view().page_index, Turn::Next, None).expect("a next page");
    let shown = View { song_id: None, page_index: page };
    a.e.handle_navigation(a.now, LocalAction::SetPage { page }, shown.clone()).expect("valid");
    a.drain_now();
    assert_eq!(a.view(), shown, "the engine's rule is the app's");
    assert!(shows(&mut a).is_empty(), "no echo of the app's own turn");
    pump(&mut a, &mut b);
    assert_eq!(shows(&mut b), [(View { song_id: None, page_index: b.view().page_index }, 0)]);
}

#[test]
fn a_navigation_the_engine_sees_differently_is_corrected_and_counted() {
    let (mut a, mut b) = solo_pair();
    a.take_events();
    // B changed the song; A has not heard yet and turns on in the old song.
    b.at(10).local(LocalAction::SetSong { song_id: song("new") });
    let from_b = b.take_sent_to("A");
    for (_, env, _) in from_b {
        a.recv_env("B", env);
    }
    let stale = shows(&mut a);
    assert_eq!(stale.len(), 1, "B's song change shows on A");
    assert_eq!(stale[0].1, 0, "chosen before A's navigation");
    a.at(20);
    let predicted = View { song_id: None, page_index: 2 };
    a.e.handle_navigation(a.now, LocalAction::SetPage { page: 2 }, predicted).expect("valid");
    a.drain_now();
    let corrected = shows(&mut a);
    assert_eq!(corrected.len(), 1, "a correction: {corrected:?}");
    assert_eq!(corrected[0].0.song_id, song("new"));
    assert_eq!(corrected[0].1, 1, "after A's first navigation");
}

#[test]
fn the_pager_follows_pairing_and_layout() {
    let mut a = Dev::new("A", Role::Solo);
    assert_eq!(a.e.pager(), Pager::SINGLE);
    let mut b = Dev::new("B", Role::Solo);
    connect(&mut a, &mut b);
    let pagers: Vec<Pager> = a
        .take_events()
        .into_iter()
        .filter_map(|e| match e {
            Event::Pager(p) => Some(p),
            _ => None,
        })
        .collect();
    assert_eq!(pagers.last(), Some(&a.e.pager()));
    assert_eq!(a.e.pager().step(), 2);
    assert_ne!(a.e.pager().shows_second(), b.e.pager().shows_second(), "complementary halves");
    // B leads with `odd` (the higher id's defaults), so A shows the second page; leading with
    // `odd` itself, A shows the first.
    assert!(a.e.pager().shows_second());
    a.local(LocalAction::SetParity { parity: Parity::Odd });
    assert!(!a.e.pager().shows_second(), "the leader with `odd` shows the first page");
    assert!(a.take_events().contains(&Event::Pager(a.e.pager())));
    a.local(LocalAction::SetParity { parity: Parity::Even });
    assert!(a.e.pager().shows_second(), "the leader with `even` shows the second page");
}

// ---- §11.1 Solo: latest change wins -----------------------------------------------------------

#[test]
fn s11_1_after_a_drop_out_the_latest_page_change_wins() {
    let (mut a, mut b) = solo_pair();
    a.link("B", Down);
    b.link("A", Down);
    a.at(100).local(LocalAction::SetPage { page: 10 });
    b.at(200).local(LocalAction::SetPage { page: 6 });
    a.take_sent();
    b.take_sent();
    connect(&mut a, &mut b);
    assert_eq!(solo_state(&a).page_index, 6, "B turned last");
    assert_eq!(solo_state(&a), solo_state(&b));
}

#[test]
fn s11_1_same_ts_the_lexicographically_higher_sender_id_wins() {
    let (mut a, mut b) = solo_pair();
    a.link("B", Down);
    b.link("A", Down);
    let t = a.now.max(b.now) + 100;
    a.now = t;
    b.now = t;
    a.local(LocalAction::SetPage { page: 10 });
    b.local(LocalAction::SetPage { page: 6 });
    a.take_sent();
    b.take_sent();
    connect(&mut a, &mut b);
    assert_eq!(solo_state(&a).page_index, 6, "\"B\" > \"A\"");
    assert_eq!(solo_state(&b).page_index, 6);
    assert_eq!(solo_state(&a).last_page_change.sender_id, id("B"));
}

#[test]
fn s11_1_an_older_change_is_ignored_and_answered_with_the_newer_state() {
    let (mut a, _b) = solo_pair();
    a.at(1_000).local(LocalAction::SetPage { page: 8 });
    a.take_sent();
    let before = solo_state(&a);
    let old = Envelope::new(
        SessionId::default(),
        id("B"),
        a.now - 500,
        Message::SoloSetPage(SoloSetPage { song_id: None, page_index: 2 }),
    );
    a.recv_env("B", old);
    assert_eq!(solo_state(&a), before, "older than our last change: not applied");
    assert_eq!(a.sent_types(), ["STATE_SNAPSHOT"], "the sender is told the newer state");
}

#[test]
fn s11_1_both_devices_show_their_halves_of_the_winning_spread() {
    let (mut a, mut b) = solo_pair();
    a.local(LocalAction::SetParity { parity: Parity::Even });
    pump(&mut a, &mut b);
    a.at(10).local(LocalAction::SetPage { page: 5 });
    pump(&mut a, &mut b);
    // A leads with `even`: A shows 2k+1 = 5, B shows 2k = 4.
    assert_eq!(a.page(), 5);
    assert_eq!(b.page(), 4);
}

#[test]
fn s11_1_crossed_changes_of_different_fields_converge() {
    let (mut a, mut b) = solo_pair();
    // A changes the layout while B turns, each before hearing of the other.
    a.at(5).local(LocalAction::SetParity { parity: Parity::Even });
    b.at(7).local(LocalAction::NextPage);
    pump(&mut a, &mut b);
    assert_eq!(solo_state(&a), solo_state(&b), "both hold one state");
    assert_eq!(solo_state(&a).page_index, 2, "B's turn stands");
    assert_eq!(solo_state(&a).layout.parity, Parity::Even, "A's layout stands");
}

#[test]
fn s11_1_a_layout_change_never_undoes_a_later_page_turn() {
    // Apart, B turns to page 6 at t=100 and then A changes the parity at t=200: the layout is a
    // register of its own (docs/behaviour.md §11.1), so on reconnect B's turn is still the latest
    // page change.
    let (mut a, mut b) = solo_pair();
    a.link("B", Down);
    b.link("A", Down);
    b.at(100).local(LocalAction::SetPage { page: 6 });
    a.at(200).local(LocalAction::SetParity { parity: Parity::Even });
    a.take_sent();
    b.take_sent();
    connect(&mut a, &mut b);
    for d in [&a, &b] {
        let s = solo_state(d);
        assert_eq!(s.page_index, 6, "B's page turn is not lost to A's later layout change");
        assert_eq!(s.layout.leader_device_id, id("A"), "A's layout change stands");
        assert_eq!(s.layout.parity, Parity::Even);
    }
    assert_eq!(solo_state(&a), solo_state(&b));
    // A leads with `even`: A shows 7, B shows 6.
    assert_eq!((a.page(), b.page()), (7, 6));
}

#[test]
fn s11_1_a_page_turn_never_undoes_a_later_layout_change() {
    let (mut a, mut b) = solo_pair();
    a.link("B", Down);
    b.link("A", Down);
    a.at(100).local(LocalAction::SetParity { parity: Parity::Even });
    b.at(200).local(LocalAction::SetPage { page: 4 });
    b.at(300).local(LocalAction::SetParity { parity: Parity::Even });
    a.at(400).local(LocalAction::SetPage { page: 8 });
    a.take_sent();
    b.take_sent();
    connect(&mut a, &mut b);
    for d in [&a, &b] {
        let s = solo_state(d);
        assert_eq!(s.page_index, 8, "A turned last");
        assert_eq!((s.layout.leader_device_id.as_str(), s.layout.parity), ("B", Parity::Even));
    }
}

#[test]
fn s11_1_a_change_made_after_seeing_a_fast_clock_still_wins() {
    let (mut a, mut b) = solo_pair();
    // B's clock runs a minute ahead.
    b.now += 60_000;
    b.local(LocalAction::SetPage { page: 4 });
    pump(&mut b, &mut a);
    a.at(10).local(LocalAction::SetPage { page: 8 });
    assert!(solo_state(&a).last_page_change.ts > solo_state(&b).last_page_change.ts);
    a.link("B", Down);
    b.link("A", Down);
    a.take_sent();
    connect(&mut a, &mut b);
    assert_eq!(solo_state(&b).page_index, 8, "A's later turn is the latest change");
}

// ---- §11.2 Choir rapid page changes ---------------------------------------------------------

#[test]
fn s11_2_master_increments_the_revision_on_every_page_change() {
    let mut m = master();
    m.local(LocalAction::SetSong { song_id: song("a") });
    for want in 1..=5u64 {
        m.local(LocalAction::NextPage);
        assert_eq!(master_state(&m).page_revision, PageRevision(want));
    }
}

#[test]
fn s11_2_follower_applies_only_strictly_newer_revisions() {
    let mut f = follower_with(snapshot("a", 1, 0, 0));
    f.recv("M", "S", set_page(1, 5, 5));
    assert_eq!(f.page(), 5);
    f.recv("M", "S", set_page(1, 3, 3));
    assert_eq!(f.page(), 5, "older revision discarded");
    f.recv("M", "S", set_page(1, 5, 9));
    assert_eq!(f.page(), 5, "equal revision discarded");
    assert_eq!(follower_state(&f).page_revision, PageRevision(5));
}

#[test]
fn s11_2_a_burst_applies_the_final_revision_even_with_gaps() {
    let mut m = master();
    let mut f = joined("F", &mut m);
    m.local(LocalAction::SetSong { song_id: song("a") });
    for _ in 0..10 {
        m.local(LocalAction::NextPage);
    }
    // Deliver only every third message, then the last one.
    let sent = m.take_sent_to("F");
    for (i, (_, env, _)) in sent.iter().enumerate() {
        if i % 3 == 0 || i == sent.len() - 1 {
            f.recv_env("M", env.clone());
        }
    }
    assert_eq!(f.page(), 10);
    assert_eq!(f.view().song_id, song("a"));
}

// ---- §11.3 song change priority --------------------------------------------------------------

#[test]
fn s11_3_song_change_increments_the_epoch_and_resets_page_and_revision() {
    let mut m = master();
    m.local(LocalAction::SetSong { song_id: song("a") });
    m.local(LocalAction::SetPage { page: 7 });
    m.local(LocalAction::SetSong { song_id: song("b") });
    let s = master_state(&m);
    assert_eq!((s.song_epoch, s.page_index, s.page_revision), (SongEpoch(2), 0, PageRevision(0)));
}

#[test]
fn s11_3_every_song_command_is_a_new_epoch_even_to_the_same_song() {
    let mut m = master();
    m.local(LocalAction::SetSong { song_id: song("a") });
    m.local(LocalAction::SetSong { song_id: song("a") });
    assert_eq!(master_state(&m).song_epoch, SongEpoch(2));
}

#[test]
fn s11_3_follower_discards_pages_and_songs_of_an_older_epoch() {
    let mut f = follower_with(snapshot("b", 3, 2, 4));
    f.recv("M", "S", set_page(2, 99, 9));
    assert_eq!(f.page(), 2, "page of an older epoch is stale");
    f.recv("M", "S", set_song("a", 2));
    assert_eq!(f.view().song_id, song("b"), "song of an older epoch is stale");
    assert_eq!(follower_state(&f).song_epoch, SongEpoch(3));
}

#[test]
fn s11_3_rejoin_snapshot_of_a_newer_epoch_overrides_the_local_page() {
    let mut f = follower_with(snapshot("a", 1, 4, 4));
    f.link("M", Down);
    f.local(LocalAction::SetPage { page: 12 });
    f.tick(1_000);
    f.link("M", Up);
    f.recv("M", "S", Message::JoinAccept(JoinAccept { snapshot: snapshot("c", 3, 1, 1) }));
    assert_eq!(f.view().song_id, song("c"));
    assert_eq!(f.page(), 1);
}

#[test]
fn s11_3_a_page_of_a_newer_epoch_waits_for_its_song() {
    let mut f = follower_with(snapshot("a", 1, 0, 0));
    f.recv("M", "S", set_page(2, 3, 3));
    assert_eq!(f.view().song_id, song("a"), "not applied to the old song");
    assert_eq!(f.page(), 0);
    f.recv("M", "S", set_song("b", 2));
    assert_eq!(f.view().song_id, song("b"));
    assert_eq!(f.page(), 3, "the held page of that epoch applies once its song arrives");
}

// ---- §11.4 follow vs free --------------------------------------------------------------------

#[test]
fn s11_4_free_follower_ignores_set_page_but_takes_song_changes() {
    let mut f = follower_with(snapshot("a", 1, 0, 0));
    f.local(LocalAction::SetFollowMode { mode: FollowMode::Free });
    f.local(LocalAction::SetPage { page: 7 });
    f.recv("M", "S", set_page(1, 1, 2));
    assert_eq!(f.page(), 7, "free: SET_PAGE ignored");
    f.recv("M", "S", set_song("b", 2));
    assert_eq!(f.view().song_id, song("b"), "free: SET_SONG applied");
    assert_eq!(f.page(), 0);
}

#[test]
fn s11_4_free_to_follow_syncs_at_once_and_the_master_answers_with_a_snapshot() {
    let mut m = master();
    let mut f = joined("F", &mut m);
    f.local(LocalAction::SetFollowMode { mode: FollowMode::Free });
    pump(&mut f, &mut m);
    m.local(LocalAction::SetSong { song_id: song("a") });
    m.local(LocalAction::SetPage { page: 6 });
    pump(&mut m, &mut f);
    f.local(LocalAction::SetPage { page: 1 });
    assert_eq!(f.page(), 1);
    f.local(LocalAction::SetFollowMode { mode: FollowMode::Follow });
    assert_eq!(f.page(), 6, "the newest Master position, at once");
    let sent = f.take_sent_to("M");
    assert!(
        matches!(&sent[..], [(_, e, _)] if e.message == Message::SetFollowMode(SetFollowMode { mode: FollowMode::Follow }))
    );
    m.recv_env("F", sent[0].1.clone());
    assert_eq!(m.sent_types(), ["STATE_SNAPSHOT"]);
}

#[test]
fn s11_4_a_snapshot_of_a_seen_revision_brings_a_follow_mode_follower_back() {
    let mut f = follower_with(snapshot("a", 1, 4, 4));
    f.local(LocalAction::SetPage { page: 9 });
    f.recv("M", "S", Message::ChoirSnapshot(snapshot("a", 1, 4, 4)));
    assert_eq!(f.page(), 4);
}

// ---- §12 reconnection ------------------------------------------------------------------------

#[test]
fn s12_1_backoff_is_exponential_jittered_and_capped() {
    let t = Timing::LAN;
    let mut f = follower_with(snapshot("a", 1, 0, 0));
    f.link("M", Down);
    let mut delays = Vec::new();
    for _ in 0..8 {
        let due = f.e.poll_timeout().expect("a retry is scheduled");
        delays.push(due - f.now);
        f.now = due;
        f.e.handle_timeout(due);
        f.link("M", Down); // the attempt fails
    }
    for (n, d) in delays.iter().enumerate() {
        let full = (t.backoff_initial_ms << n.min(20)).min(t.backoff_max_ms);
        assert!((full / 2..=full).contains(d), "attempt {n}: {d} ms not in [{}, {full}]", full / 2);
    }
    assert!(delays.iter().all(|d| *d <= t.backoff_max_ms), "capped");
    let capped: std::collections::BTreeSet<_> = delays[4..].iter().collect();
    assert!(capped.len() > 1, "jittered: {delays:?}");
}

#[test]
fn s12_1_local_navigation_works_while_disconnected_and_sends_nothing() {
    let mut f = follower_with(snapshot("a", 1, 3, 3));
    f.link("M", Down);
    f.take_sent();
    f.local(LocalAction::NextPage);
    f.local(LocalAction::NextPage);
    assert_eq!(f.page(), 5);
    assert!(f.take_sent().is_empty());
}

#[test]
fn s12_2_both_solo_peers_retry_by_themselves() {
    let (mut a, mut b) = solo_pair();
    a.link("B", Down);
    b.link("A", Down);
    a.tick(5_000);
    b.tick(5_000);
    assert!(connects(&a.take_requests(), "B") >= 1);
    assert!(connects(&b.take_requests(), "A") >= 1);
}

#[test]
fn s12_3_follower_retries_with_the_stored_token() {
    let mut f = follower_with(snapshot("a", 1, 0, 0));
    f.take_requests();
    f.link("M", Down);
    f.tick(1_000);
    assert_eq!(connects(&f.take_requests(), "M"), 1);
    f.link("M", Up);
    let sent = f.take_sent_to("M");
    let req = sent.iter().find_map(|(_, e, _)| match &e.message {
        Message::JoinRequest(r) => Some(r.clone()),
        _ => None,
    });
    assert_eq!(
        req,
        Some(JoinRequest {
            session_token: "tok".into(),
            follow_mode: FollowMode::Follow,
            song_epoch: SongEpoch(1)
        })
    );
}

#[test]
fn s12_3_an_invalid_token_on_rejoin_exits_to_local_and_clears_the_session() {
    let mut f = follower_with(snapshot("a", 1, 2, 2));
    f.link("M", Down);
    f.tick(1_000);
    f.link("M", Up);
    f.recv("M", "S", Message::JoinReject(JoinReject { reason: RejectReason::InvalidToken }));
    let s = follower_state(&f);
    assert_eq!((s.session_id, s.last_token), (None, None));
    assert_eq!(f.phase(), Phase::FollowerIdleLocal);
    assert_eq!(f.page(), 2, "the page shown stays");
    f.take_requests();
    f.tick(60_000);
    assert_eq!(connects(&f.take_requests(), "M"), 0, "no more retries");
}

#[test]
fn s12_4_master_loss_followers_keep_their_page_navigate_and_resync_on_return() {
    let mut m = master();
    let mut ff = joined("F1", &mut m);
    let mut fr = joined("F2", &mut m);
    fr.local(LocalAction::SetFollowMode { mode: FollowMode::Free });
    pump(&mut fr, &mut m);
    m.local(LocalAction::SetSong { song_id: song("a") });
    m.local(LocalAction::SetPage { page: 3 });
    relay(&mut m, &mut [&mut ff, &mut fr]);
    fr.local(LocalAction::SetPage { page: 11 });
    // The Master's links all drop.
    for (f, n) in [(&mut ff, "F1"), (&mut fr, "F2")] {
        f.link("M", Down);
        m.link(n, Down);
    }
    assert_eq!(ff.page(), 3, "keeps the last page");
    ff.local(LocalAction::NextPage);
    assert_eq!(ff.page(), 4, "navigates locally");
    m.local(LocalAction::SetPage { page: 8 });
    // The Master returns: both rejoin.
    for f in [&mut ff, &mut fr] {
        f.tick(1_000);
        connect(f, &mut m);
    }
    assert_eq!(ff.page(), 8, "follow-mode Follower resyncs");
    assert_eq!(fr.page(), 11, "free Follower unaffected");
    assert_eq!(fr.phase(), Phase::FollowerConnectedFree);
}

// ---- §13 termination -------------------------------------------------------------------------

#[test]
fn s13_session_end_reaches_every_follower_who_goes_local_and_clears_streams() {
    let mut m = master();
    let mut f1 = joined("F1", &mut m);
    let mut f2 = joined("F2", &mut m);
    m.local(LocalAction::SetSong { song_id: song("a") });
    m.local(LocalAction::SetPage { page: 4 });
    relay(&mut m, &mut [&mut f1, &mut f2]);
    m.local(LocalAction::EndSession);
    let ends: Vec<_> = m.take_sent().into_iter().map(|(to, e, _)| (to, e.message)).collect();
    assert_eq!(ends, [(id("F1"), Message::SessionEnd), (id("F2"), Message::SessionEnd)]);
    for f in [&mut f1, &mut f2] {
        f.recv("M", "S", Message::SessionEnd);
        assert_eq!(f.phase(), Phase::FollowerIdleLocal);
        assert_eq!(follower_state(f).session_id, None);
        assert_eq!(f.page(), 4, "the page shown stays");
        let ev = f.take_events();
        assert!(ev.contains(&Event::StreamClear { song_id: None }), "streamed content cleared");
        assert!(ev.contains(&Event::SessionEnded));
    }
}

#[test]
fn s13_the_token_dies_with_the_session() {
    let mut m = master();
    let mut f = joined("F", &mut m);
    // The Follower's link drops; meanwhile the Master ends the session.
    f.link("M", Down);
    m.link("F", Down);
    m.local(LocalAction::EndSession);
    assert_eq!(master_state(&m).session_token, None);
    m.take_sent();
    // The Follower, which missed SESSION_END, rejoins with its stored code.
    f.tick(1_000);
    f.link("M", Up);
    m.link("F", Up);
    m.take_sent();
    m.recv("F", "S", join_request("tok"));
    let sent = m.take_sent();
    assert!(
        matches!(&sent[..], [(_, e, _)] if e.message == Message::JoinReject(JoinReject { reason: RejectReason::SessionEnded }))
    );
    f.recv_env("M", sent[0].1.clone());
    assert_eq!(f.phase(), Phase::FollowerIdleLocal);
}

#[test]
fn s13_a_new_session_rejects_the_old_token_as_invalid() {
    let mut m = master();
    m.local(LocalAction::EndSession);
    m.local(LocalAction::StartSession { session_id: None, token: None });
    m.link("F", Up);
    m.take_sent();
    m.recv("F", "S", join_request("tok"));
    assert_only_rejection(&mut m, RejectReason::InvalidToken);
}

#[test]
fn s13_the_master_never_sends_the_token() {
    let mut m = Dev::new("M", Role::Master);
    m.local(LocalAction::StartSession { session_id: None, token: None });
    let token = master_state(&m).session_token.expect("a session token");
    let sid = master_state(&m).session_id.expect("a session id");
    let mut f = Dev::new("F", Role::Follower);
    f.local(LocalAction::Join { master: id("M"), session_id: sid, token: token.clone() });
    f.link("M", Up);
    m.link("F", Up);
    pump(&mut f, &mut m);
    assert_eq!(f.phase(), Phase::FollowerConnectedFollow);
    m.local(LocalAction::SetSong { song_id: song("a") });
    m.local(LocalAction::NextPage);
    f.local(LocalAction::SetFollowMode { mode: FollowMode::Free });
    f.local(LocalAction::SetFollowMode { mode: FollowMode::Follow });
    pump(&mut f, &mut m);
    m.local(LocalAction::EndSession);
    // Everything the Master sent in the whole exchange, captured again from a replay.
    let mut m2 = Dev::new("M", Role::Master);
    m2.local(LocalAction::StartSession { session_id: None, token: Some(token.clone()) });
    m2.link("F", Up);
    let sid2 = master_state(&m2).session_id.expect("a session id");
    m2.recv(
        "F",
        sid2.as_str(),
        Message::JoinRequest(JoinRequest {
            session_token: token.clone(),
            follow_mode: FollowMode::Follow,
            song_epoch: SongEpoch(0),
        }),
    );
    m2.recv("F", sid2.as_str(), Message::SetFollowMode(SetFollowMode { mode: FollowMode::Follow }));
    m2.local(LocalAction::SetSong { song_id: song("b") });
    m2.local(LocalAction::EndSession);
    let all: Vec<String> =
        m.take_sent().into_iter().chain(m2.take_sent()).map(|(_, _, raw)| raw).collect();
    assert!(all.len() >= 5);
    for raw in all {
        assert!(!raw.contains(token.expose()), "token leaked in {raw}");
    }
}

// ---- §14 reliability and safety --------------------------------------------------------------

#[test]
fn s14_unknown_types_are_ignored() {
    let mut f = follower_with(snapshot("a", 1, 2, 2));
    let before = f.snapshot();
    f.recv("M", "S", Message::Unknown { message_type: "LYRICS_HIGHLIGHT".into() });
    assert_eq!(f.snapshot(), before);
    assert!(f.take_sent().is_empty(), "no reply");
}

#[test]
fn s14_unknown_fields_are_ignored() {
    let mut f = follower_with(snapshot("a", 1, 2, 2));
    let raw = r#"{"v":1,"session_id":"S","sender_id":"M","type":"SET_PAGE","ts":5,"future":{"x":1},
        "payload":{"song_epoch":1,"page_revision":3,"page_index":7,"tempo":120}}"#;
    f.recv_bytes("M", raw.as_bytes()).expect("accepted");
    assert_eq!(f.page(), 7);
}

#[test]
fn s14_garbage_is_rejected_and_changes_nothing() {
    let mut m = master();
    let mut f = joined("F", &mut m);
    let big = format!(r#"{{"v":1,"pad":"{}"}}"#, "x".repeat(70_000));
    let inputs: Vec<&[u8]> = vec![
        b"",
        b"\xff\xfe\x00",
        b"not json",
        b"[1,2,3]",
        br#"{"v":1}"#,
        br#"{"v":"1","session_id":"S","sender_id":"M","type":"SET_PAGE","ts":1,"payload":{}}"#,
        br#"{"v":1,"session_id":"S","sender_id":"M","type":"SET_PAGE","ts":1,"payload":{"song_epoch":1}}"#,
        br#"{"v":1,"session_id":"S","sender_id":"M","type":"SET_PAGE","ts":-4,"payload":{}}"#,
        br#"{"v":1,"session_id":"S","sender_id":"M","type":"SET_PAGE","ts":1,"payload":{"song_epoch":1,"page_revision":9,"page_index":99999999999}}"#,
        br#"{"v":1,"session_id":"S","sender_id":"M","type":"JOIN_ACCEPT","ts":1,"payload":{"snapshot":7}}"#,
        big.as_bytes(),
    ];
    for dev in [&mut f, &mut m] {
        let peer = if dev.e.role() == Role::Master { "F" } else { "M" };
        for bytes in &inputs {
            let before = dev.snapshot();
            assert!(
                dev.recv_bytes(peer, bytes).is_err(),
                "{:?} must be rejected",
                String::from_utf8_lossy(&bytes[..bytes.len().min(40)])
            );
            assert_eq!(dev.snapshot(), before);
        }
    }
}

#[test]
fn s14_duplicates_are_idempotent() {
    let mut m = master();
    let mut f = joined("F", &mut m);
    m.local(LocalAction::SetSong { song_id: song("a") });
    m.local(LocalAction::SetPage { page: 3 });
    let msgs = m.take_sent_to("F");
    for (_, e, _) in &msgs {
        f.recv_env("M", e.clone());
    }
    let once = f.snapshot();
    for (_, e, _) in msgs.iter().chain(msgs.iter()) {
        f.recv_env("M", e.clone());
    }
    assert_eq!(f.snapshot(), once);
}

#[test]
fn s14_out_of_order_messages_do_not_corrupt_state() {
    let mut m = master();
    let mut f = joined("F", &mut m);
    m.local(LocalAction::SetSong { song_id: song("a") });
    for _ in 0..5 {
        m.local(LocalAction::NextPage);
    }
    m.local(LocalAction::SetSong { song_id: song("b") });
    m.local(LocalAction::NextPage);
    let mut msgs = m.take_sent_to("F");
    msgs.reverse();
    for (_, e, _) in msgs {
        f.recv_env("M", e);
    }
    let s = follower_state(&f);
    assert_eq!(s.song_epoch, SongEpoch(2), "never behind the newest epoch it saw");
    assert_eq!(f.view().song_id, song("b"));
    assert_eq!(f.page(), 1, "the newest epoch's page, held until its song arrived");
}

#[test]
fn s14_a_join_in_another_protocol_version_is_rejected_with_version_mismatch() {
    let mut m = master();
    m.link("F", Up);
    m.take_sent();
    let raw = br#"{"v":2,"session_id":"S","sender_id":"F","type":"JOIN_REQUEST","ts":1,"payload":{"session_token":"tok","follow_mode":"follow","song_epoch":0,"v2thing":true}}"#;
    assert!(m.recv_bytes("F", raw).is_err());
    let sent = m.take_sent();
    assert!(
        matches!(&sent[..], [(to, e, _)] if to.as_str() == "F" && e.message == Message::JoinReject(JoinReject { reason: RejectReason::VersionMismatch }))
    );
    assert!(m.e.master_members().is_empty());
}

#[test]
fn s14_authority_the_master_ignores_state_from_followers() {
    let mut m = master();
    let _f = joined("F", &mut m);
    m.local(LocalAction::SetSong { song_id: song("a") });
    m.take_sent();
    let before = m.snapshot();
    m.recv("F", "S", set_song("evil", 99));
    m.recv("F", "S", set_page(1, 99, 42));
    m.recv("F", "S", Message::ChoirSnapshot(snapshot("evil", 9, 9, 9)));
    m.recv("F", "S", Message::SessionEnd);
    assert_eq!(m.snapshot(), before);
    assert!(m.take_sent().is_empty());
}

#[test]
fn s14_authority_a_follower_ignores_other_peers_and_other_sessions() {
    let mut f = follower_with(snapshot("a", 1, 2, 2));
    f.link("X", Up);
    let before = f.snapshot();
    f.recv("X", "S", set_song("evil", 9));
    f.recv("X", "S", Message::SessionEnd);
    f.recv("M", "other-session", set_song("evil", 9));
    f.recv("M", "other-session", Message::SessionEnd);
    assert_eq!(f.snapshot(), before);
}

#[test]
fn s14_a_message_whose_sender_id_is_not_the_link_is_ignored() {
    let mut f = follower_with(snapshot("a", 1, 2, 2));
    let before = f.snapshot();
    let forged = Envelope::new(SessionId::new("S"), id("X"), f.now, set_page(1, 9, 9)).encode();
    assert!(f.recv_bytes("M", forged.as_bytes()).is_err());
    assert_eq!(f.snapshot(), before);
}

#[test]
fn s14_streams_are_announced_and_cleared_only_by_the_master() {
    let mut f = follower_with(snapshot("a", 1, 0, 0));
    let prep = StreamPrepare {
        song_id: SongId::new("a"),
        song_epoch: SongEpoch(1),
        size_bytes: 10,
        sha256: "00".repeat(32),
        channel: "score-1".into(),
        title: None,
        next: false,
    };
    f.take_events();
    f.recv("M", "S", Message::StreamPrepare(prep.clone()));
    f.link("X", Up);
    f.recv("X", "S", Message::StreamClear(StreamClear { song_id: None }));
    let streams: Vec<_> = f
        .take_events()
        .into_iter()
        .filter(|e| matches!(e, Event::StreamPrepare(_) | Event::StreamClear { .. }))
        .collect();
    assert_eq!(streams, [Event::StreamPrepare(prep)]);
}

#[test]
fn s14_tokens_have_128_bits_are_url_safe_and_compare_in_constant_time() {
    let mut seen = std::collections::BTreeSet::new();
    for i in 0..50 {
        let mut m = Dev::new(&"M".repeat(i + 1), Role::Master);
        m.local(LocalAction::StartSession { session_id: None, token: None });
        let token = master_state(&m).session_token.expect("token");
        let t = token.expose().to_owned();
        assert_eq!(t.len(), 26, "16 bytes, base32 without padding");
        assert_eq!(maestral_protocol::unbase32(&t).map(|b| b.len()), Some(16), "{t}");
        assert!(t.bytes().all(|c| c.is_ascii_uppercase() || (b'2'..=b'7').contains(&c)), "{t}");
        assert!(!format!("{token:?}").contains(&t), "Debug output hides the token");
        assert!(seen.insert(t));
    }
    let tok = |s: &str| SessionToken::new(s);
    assert_eq!(tok("abc"), tok("abc"));
    assert_ne!(tok("abc"), tok("abd"));
    assert_ne!(tok("abc"), tok("abcd"));
    assert_ne!(tok(""), tok("a"));
}

#[test]
fn s14_a_wrong_token_is_rejected_as_invalid_token() {
    let mut m = master();
    m.link("F", Up);
    m.take_sent();
    m.recv("F", "S", join_request("tok2"));
    assert_only_rejection(&mut m, RejectReason::InvalidToken);
    assert!(m.e.master_members().is_empty());
}

// ---- found in review: restarts, re-pairing, edges -------------------------------------------

#[test]
fn s11_3_a_restarted_master_that_resumes_its_saved_state_keeps_followers_in_step() {
    let mut m = master();
    let mut f = joined("F", &mut m);
    for s in ["a", "b", "c"] {
        m.local(LocalAction::SetSong { song_id: song(s) });
    }
    m.local(LocalAction::SetPage { page: 5 });
    pump(&mut m, &mut f);
    let saved = master_state(&m);
    // The Master's process restarts from its state directory.
    let mut m = Dev::new("M", Role::Master);
    m.e.resume_master(&saved);
    assert_eq!(m.phase(), Phase::MasterSessionActive);
    f.link("M", Down);
    f.tick(1_000);
    connect(&mut f, &mut m);
    assert_eq!(f.phase(), Phase::FollowerConnectedFollow);
    assert_eq!((f.view().song_id, f.page()), (song("c"), 5));
    m.local(LocalAction::NextPage);
    pump(&mut m, &mut f);
    assert_eq!(f.page(), 6, "turns after the restart are applied");
}

#[test]
fn s11_3_a_master_that_lost_its_position_moves_past_the_followers_epoch() {
    let mut m = master();
    let mut f = joined("F", &mut m);
    for s in ["a", "b", "c"] {
        m.local(LocalAction::SetSong { song_id: song(s) });
    }
    pump(&mut m, &mut f);
    let saved = master_state(&m);
    // Restarted with the session but without the position: it resumes at an epoch from its
    // clock, as `resume_master` says (a Follower's JOIN_REQUEST never moves it).
    let mut m = Dev::new("M", Role::Master);
    m.e.resume_master(&maestral_sync::MasterState {
        song_id: None,
        song_epoch: SongEpoch(m.now),
        page_index: 0,
        page_revision: PageRevision(0),
        ..saved
    });
    m.local(LocalAction::SetSong { song_id: song("d") });
    f.link("M", Down);
    f.tick(1_000);
    connect(&mut f, &mut m);
    assert!(master_state(&m).song_epoch > SongEpoch(3), "past every epoch a Follower saw");
    assert_eq!(f.view().song_id, song("d"), "the Follower takes the Master's current song");
    m.local(LocalAction::NextPage);
    pump(&mut m, &mut f);
    assert_eq!(f.page(), 1);
}

#[test]
fn pages_and_parity_a_layout_naming_an_old_partner_still_splits_the_spread() {
    let (mut a, mut b) = solo_pair();
    b.local(LocalAction::SetParity { parity: Parity::Even });
    pump(&mut a, &mut b);
    // B leaves for good; C pairs with A and adopts A's layout (leader: B, not in this pair).
    a.link("B", Down);
    let mut c = Dev::new("C", Role::Solo);
    connect(&mut a, &mut c);
    assert_eq!(solo_state(&a), solo_state(&c));
    assert_eq!(solo_state(&c).layout.leader_device_id, id("B"));
    let (pa, pc) = (a.page(), c.page());
    assert_ne!(pa, pc, "the two devices show different halves");
    assert_eq!(pa.min(pc) % 2, 0);
}

#[test]
fn s11_4_a_mode_change_while_the_join_is_in_flight_reaches_the_master() {
    let mut m = master();
    let mut f = Dev::new("F", Role::Follower);
    f.local(join_action());
    f.link("M", Up);
    m.link("F", Up);
    // JOIN_REQUEST (follow) is on its way; the singer goes free before JOIN_ACCEPT.
    f.local(LocalAction::SetFollowMode { mode: FollowMode::Free });
    pump(&mut f, &mut m);
    assert_eq!(f.phase(), Phase::FollowerConnectedFree);
    assert_eq!(m.e.master_members(), [(id("F"), FollowMode::Free)]);
}

#[test]
fn s14_times_near_the_end_of_u64_do_not_overflow() {
    let mut f = Dev::new("F", Role::Follower);
    f.now = u64::MAX - 10;
    f.local(join_action());
    f.link("M", Up);
    f.link("M", Degraded);
    f.link("M", Down);
    f.tick(5);
    let mut s = Dev::new("A", Role::Solo);
    s.now = u64::MAX - 3;
    s.link("B", Up);
    s.local(LocalAction::NextPage);
    s.link("B", Down);
    s.tick(2);
    assert_eq!(s.phase(), Phase::SoloPairedReconnecting);
}

#[test]
fn s14_a_refusal_for_a_reason_this_version_does_not_know_still_sends_the_follower_local() {
    let mut f = Dev::new("F", Role::Follower);
    f.local(join_action());
    f.link("M", Up);
    let raw = br#"{"v":1,"session_id":"S","sender_id":"M","type":"JOIN_REJECT","ts":1,"payload":{"reason":"room_full"}}"#;
    f.recv_bytes("M", raw).expect("decoded");
    assert_eq!(f.phase(), Phase::FollowerIdleLocal);
}

#[test]
fn s12_3_refusals_from_the_listener_end_a_rejoin_only_when_repeated_over_minutes() {
    let mut f = follower_with(snapshot("a", 1, 2, 2));
    f.link("M", Down);
    f.tick(1_000);
    f.e.handle_join_refused(f.now, RejectReason::SessionEnded);
    f.drain_now();
    assert_eq!(f.phase(), Phase::FollowerDisconnectedLocal, "one HTTP 403 is not the end");
    assert!(follower_state(&f).last_token.is_some(), "the membership is kept");
    // Refused on every attempt for the give-up time: then it lets go.
    let give_up = Timing::LAN.refused_rejoin_give_up_ms;
    let start = f.now;
    while f.phase() != Phase::FollowerIdleLocal {
        assert!(f.now - start <= give_up + 10_000, "gave up in time");
        f.tick(1_000);
        if f.take_requests().iter().any(|r| matches!(r, TransportRequest::Connect { .. })) {
            f.e.handle_join_refused(f.now, RejectReason::SessionEnded);
            f.drain_now();
        }
    }
    assert!(f.now - start >= give_up, "not before the give-up time");
    assert_eq!(follower_state(&f).last_token, None);
}
