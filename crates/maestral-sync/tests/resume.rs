//! What a device takes back after a restart (docs/behaviour.md §6.3, §12.2): a Follower its
//! session, a Solo device its pairing and the shared state with its stamps; and unpairing.

mod common;

use common::*;
use maestral_protocol::{FollowMode, SoloState};
use maestral_sync::{LinkSignal, LinkState, LocalAction, Phase, Role, StateView, TransportRequest};

fn solo_state(d: &Dev) -> SoloState {
    match d.state() {
        StateView::Solo(s) => s,
        other => panic!("not solo: {other:?}"),
    }
}

fn connects(reqs: &[TransportRequest], peer: &str) -> usize {
    reqs.iter()
        .filter(|r| matches!(r, TransportRequest::Connect { peer: p } if p.as_str() == peer))
        .count()
}

#[test]
fn a_follower_keeps_nothing_before_its_first_accept_and_forgets_on_leave() {
    let mut m = master();
    let mut f = Dev::new("F", Role::Follower);
    f.local(LocalAction::Join {
        master: id("M"),
        session_id: maestral_protocol::SessionId::new("S"),
        token: "tok".into(),
    });
    assert_eq!(f.e.follower_resume(), None, "a join not yet accepted is not kept");
    connect(&mut f, &mut m);
    let kept = f.e.follower_resume().expect("an accepted session is kept");
    assert_eq!((kept.master.as_str(), kept.token.expose()), ("M", "tok"));
    f.local(LocalAction::Leave);
    assert_eq!(f.e.follower_resume(), None, "Leave forgets the session");
}

#[test]
fn a_restarted_follower_shows_its_page_at_once_and_rejoins_in_its_mode() {
    let mut m = master();
    let mut f = joined("F", &mut m);
    m.local(LocalAction::SetSong { song_id: song("a") });
    m.local(LocalAction::SetPage { page: 3 });
    pump(&mut m, &mut f);
    f.local(LocalAction::SetFollowMode { mode: FollowMode::Free });
    f.local(LocalAction::SetPage { page: 5 });
    pump(&mut f, &mut m);
    let kept = f.e.follower_resume().expect("kept");
    assert_eq!((kept.master_page, kept.shown_page), (3, 5));

    // The app restarts: a new engine takes back what was kept.
    m.link("F", LinkSignal::Down);
    let mut g = Dev::new("F", Role::Follower);
    g.e.resume_follower(g.now, &kept);
    g.drain_now();
    assert_eq!(g.view().song_id, song("a"));
    assert_eq!(g.page(), 5, "the free page shows at once");
    assert_eq!(g.phase(), Phase::FollowerRejoining);
    assert_eq!(connects(&g.take_requests(), "M"), 1, "the first rejoin at once");
    assert_eq!(g.link_state("M"), LinkState::Reconnecting);

    // Meanwhile the Master turned on; the rejoin brings the Master's position, and a free
    // Follower keeps its page.
    m.local(LocalAction::SetPage { page: 4 });
    m.take_sent();
    connect(&mut g, &mut m);
    assert_eq!(g.phase(), Phase::FollowerConnectedFree);
    assert_eq!(g.page(), 5);
    g.local(LocalAction::SetFollowMode { mode: FollowMode::Follow });
    assert_eq!(g.page(), 4, "back to the Master's page");
}

#[test]
fn a_restarted_follower_retries_on_the_backoff_and_is_forgotten_on_a_refusal() {
    let mut m = master();
    let f = joined("F", &mut m);
    let kept = f.e.follower_resume().expect("kept");
    let mut g = Dev::new("F", Role::Follower);
    g.e.resume_follower(g.now, &kept);
    g.drain_now();
    g.take_requests();
    // The Master is not there yet: the attempt fails, and is retried later.
    g.link("M", LinkSignal::Down);
    g.tick(10_000);
    assert!(connects(&g.take_requests(), "M") >= 1, "retried");
    // The Master says the session ended: nothing is kept any more.
    g.link("M", LinkSignal::Up);
    g.recv("M", "S", maestral_protocol::Message::SessionEnd);
    assert_eq!(g.e.follower_resume(), None);
    assert_eq!(g.phase(), Phase::FollowerIdleLocal);
}

#[test]
fn a_restarted_follower_whose_rejoin_is_refused_forgets_the_session() {
    let mut m = master();
    let f = joined("F", &mut m);
    let kept = f.e.follower_resume().expect("kept");
    let mut g = Dev::new("F", Role::Follower);
    g.e.resume_follower(g.now, &kept);
    g.drain_now();
    g.link("M", LinkSignal::Up);
    g.recv(
        "M",
        "S",
        maestral_protocol::Message::JoinReject(maestral_protocol::JoinReject {
            reason: maestral_protocol::RejectReason::InvalidToken,
        }),
    );
    assert_eq!(g.e.follower_resume(), None, "a refused token is not tried again");
    assert_eq!(g.phase(), Phase::FollowerIdleLocal);
}

#[test]
fn a_restarted_solo_device_calls_back_and_the_latest_change_wins_across_the_restart() {
    let mut a = Dev::new("A", Role::Solo);
    let mut b = Dev::new("B", Role::Solo);
    connect(&mut a, &mut b);
    a.local(LocalAction::SetSong { song_id: song("x") });
    pump(&mut a, &mut b);
    b.at(10).local(LocalAction::SetPage { page: 4 });
    pump(&mut a, &mut b);
    let kept = solo_state(&b);

    // B restarts; meanwhile A turns on: A's turn is the latest change.
    a.link("B", LinkSignal::Down);
    a.at(50).local(LocalAction::SetPage { page: 8 });
    a.take_sent();
    let mut b2 = Dev::new("B", Role::Solo);
    b2.now = b.now + 100;
    b2.e.resume_solo(b2.now, &id("A"), &kept, Some(b.page()));
    b2.drain_now();
    assert_eq!(b2.phase(), Phase::SoloPairedReconnecting);
    assert_eq!(b2.view().song_id, song("x"));
    assert_eq!(connects(&b2.take_requests(), "A"), 1, "calls back at once");
    connect(&mut a, &mut b2);
    assert_eq!(solo_state(&b2).page_index, 8, "A turned last");
    assert_eq!(solo_state(&a), solo_state(&b2));

    // And the other way: B's turn after its restart beats A's older one.
    a.link("B", LinkSignal::Down);
    b2.link("A", LinkSignal::Down);
    let kept = solo_state(&b2);
    let mut b3 = Dev::new("B", Role::Solo);
    b3.now = b2.now + 1_000;
    b3.e.resume_solo(b3.now, &id("A"), &kept, Some(b2.page()));
    b3.drain_now();
    b3.local(LocalAction::SetPage { page: 12 });
    connect(&mut a, &mut b3);
    assert_eq!(solo_state(&a).page_index, 12, "B turned last, after its restart");
}

/// The restarted device's kept change was never sent (it died right after the turn): it is
/// still the latest, and beats the partner's older change made while the two were apart.
#[test]
fn a_kept_change_never_sent_before_the_restart_still_beats_an_older_one() {
    let mut a = Dev::new("A", Role::Solo);
    let mut b = Dev::new("B", Role::Solo);
    connect(&mut a, &mut b);
    a.local(LocalAction::SetSong { song_id: song("x") });
    pump(&mut a, &mut b);
    a.link("B", LinkSignal::Down);
    b.link("A", LinkSignal::Down);
    // Apart: A turns first, B later; B dies before it could tell anyone.
    a.now = a.now.max(b.now) + 60;
    a.local(LocalAction::SetPage { page: 6 });
    a.take_sent();
    b.now = a.now + 40;
    b.local(LocalAction::SetPage { page: 10 });
    b.take_sent();
    let kept = solo_state(&b);
    let mut b2 = Dev::new("B", Role::Solo);
    b2.now = b.now + 50;
    b2.e.resume_solo(b2.now, &id("A"), &kept, Some(b.page()));
    b2.drain_now();
    assert_eq!(b2.page() / 2, 5, "its kept spread shows at once");
    connect(&mut a, &mut b2);
    assert_eq!(solo_state(&a).page_index, 10, "B's kept turn was the latest");
    assert_eq!(solo_state(&a), solo_state(&b2));
}

/// A restarted half of the book is alone until its partner answers: it shows the page it
/// showed before (kept beside the state), turns one page at a time, and an older file without
/// that page gives its half of the kept spread.
#[test]
fn a_restarted_half_shows_the_page_it_showed_and_turns_alone_until_the_partner_answers() {
    let mut a = Dev::new("A", Role::Solo);
    let mut b = Dev::new("B", Role::Solo);
    connect(&mut a, &mut b);
    b.local(LocalAction::SetPage { page: 4 });
    pump(&mut a, &mut b);
    assert_eq!(a.page(), 5, "A shows the second half (B leads with `odd`)");
    let kept = solo_state(&a);
    let mut a2 = Dev::new("A", Role::Solo);
    a2.now = a.now + 100;
    a2.e.resume_solo(a2.now, &id("B"), &kept, Some(a.page()));
    a2.drain_now();
    assert_eq!(a2.page(), 5, "the page it showed");
    assert_eq!(a2.e.pager(), maestral_sync::Pager::SINGLE, "alone: every page");
    a2.local(LocalAction::NextPage);
    assert_eq!(a2.page(), 6);
    let mut a3 = Dev::new("A", Role::Solo);
    a3.e.resume_solo(a3.now, &id("B"), &kept, None);
    a3.drain_now();
    assert_eq!(a3.page(), 5, "an older file: its half of the kept spread");
    // B answers: A's turn alone was the latest, A keeps page 6, B shows 7.
    b.link("A", LinkSignal::Down);
    connect(&mut a2, &mut b);
    assert_eq!((a2.page(), b.page()), (6, 7));
}

#[test]
fn unpairing_forgets_the_partner_closes_the_link_and_keeps_the_page_shown() {
    let mut a = Dev::new("A", Role::Solo);
    let mut b = Dev::new("B", Role::Solo);
    connect(&mut a, &mut b);
    a.local(LocalAction::SetSong { song_id: song("x") });
    a.local(LocalAction::SetPage { page: 4 });
    pump(&mut a, &mut b);
    // Unpair the device showing the second half of the spread (its page is not the position).
    assert_ne!(a.page(), b.page(), "each shows its half");
    let (mut x, other) = if b.page() == 5 { (b, "A") } else { (a, "B") };
    let shown = x.page();
    assert_eq!(shown, 5);
    x.take_requests();
    x.local(LocalAction::Unpair);
    assert_eq!(x.phase(), Phase::SoloLocalOnly);
    assert_eq!(x.e.solo_partner(), None);
    assert_eq!(x.page(), shown, "the page on screen stays");
    assert!(
        x.take_requests()
            .iter()
            .any(|r| matches!(r, TransportRequest::Disconnect { peer } if peer.as_str() == other)),
        "the link is closed"
    );
    x.local(LocalAction::NextPage);
    assert_eq!(x.page(), shown + 1, "alone: one page at a time");
    // No call-back is asked for later.
    x.tick(120_000);
    assert_eq!(connects(&x.take_requests(), other), 0);
}
