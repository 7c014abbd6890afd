//! The Master's roster (docs/protocol.md §4, `SHOWING`): names from `HELLO`, what each Follower
//! reports it shows, lagging after `Timing::lag_ms`, `Event::Roster` at most every
//! `Timing::roster_interval_ms`; and the Follower's side: `SHOWING` after every accept, rate
//! limited with a trailing send, and `Event::MasterView`.

mod common;

use common::*;
use maestral_protocol::{
    FollowMode, Hello, JoinAccept, JoinRequest, Message, Mode, SessionId, Showing, SongEpoch,
    SongId,
};
use maestral_sync::{
    Event, LinkSignal::*, LinkState, LocalAction, Role, Roster, RosterMember, RosterSummary,
    Timing, View,
};

const LAG: u64 = Timing::LAN.lag_ms;
const ROSTER_EVERY: u64 = Timing::LAN.roster_interval_ms;
const SHOWING_EVERY: u64 = Timing::LAN.showing_interval_ms;

fn view(s: &str, page: u32) -> View {
    View { song_id: song(s), page_index: page }
}

fn hello(name: &str) -> Message {
    Message::Hello(Hello {
        mode: Mode::ChoirFollower,
        device_name: name.into(),
        app_version: "1".into(),
        capabilities: Vec::new(),
    })
}

fn join_request(mode: FollowMode) -> Message {
    Message::JoinRequest(JoinRequest {
        session_token: "tok".into(),
        follow_mode: mode,
        song_epoch: SongEpoch(0),
    })
}

fn showing(s: &str, epoch: u64, page: u32) -> Message {
    Message::Showing(Showing { song_id: song(s), song_epoch: SongEpoch(epoch), page_index: page })
}

/// A Master "M" in session "S" on song "a" (epoch 1), page 0.
fn master_on_a() -> Dev {
    let mut m = master();
    m.local(LocalAction::SetSong { song_id: song("a") });
    m
}

/// A scripted Follower `name` joins `m` (its messages written by hand).
fn scripted_member(m: &mut Dev, name: &str, mode: FollowMode) {
    m.link(name, Up);
    m.recv(name, "S", join_request(mode));
    m.take_sent();
}

fn roster(m: &Dev) -> Roster {
    m.e.roster().expect("a Master has a roster")
}

fn member(m: &Dev, name: &str) -> RosterMember {
    let r = roster(m);
    r.members.into_iter().find(|x| x.device_id.as_str() == name).expect("a member")
}

fn rosters(events: Vec<Event>) -> Vec<Roster> {
    events
        .into_iter()
        .filter_map(|e| match e {
            Event::Roster(r) => Some(r),
            _ => None,
        })
        .collect()
}

// ---- names ---------------------------------------------------------------------------------

#[test]
fn roster_name_comes_from_a_hello_sent_before_the_join_request() {
    let mut m = master_on_a();
    m.link("F", Up);
    m.recv("F", "S", hello("Alto 1"));
    m.recv("F", "S", join_request(FollowMode::Follow));
    assert_eq!(member(&m, "F").name, "Alto 1");
    let last = rosters(m.take_events()).pop().expect("the join emits a roster");
    assert_eq!(last.members[0].name, "Alto 1");
}

#[test]
fn roster_name_comes_from_a_hello_sent_after_the_join_request() {
    let mut m = master_on_a();
    scripted_member(&mut m, "F", FollowMode::Follow);
    assert_eq!(member(&m, "F").name, "F", "the device id until a HELLO names it");
    m.recv("F", "S", hello("Tenor 2"));
    assert_eq!(member(&m, "F").name, "Tenor 2");
    m.tick(ROSTER_EVERY);
    let last = rosters(m.take_events()).pop().expect("the name change emits a roster");
    assert_eq!(last.members[0].name, "Tenor 2");
}

#[test]
fn roster_forgets_the_name_of_a_peer_whose_link_went_down_before_it_joined() {
    let mut m = master_on_a();
    m.link("F", Up);
    m.recv("F", "S", hello("Alto 1"));
    m.link("F", Down);
    m.link("F", Up);
    m.recv("F", "S", join_request(FollowMode::Follow));
    assert_eq!(member(&m, "F").name, "F");
}

#[test]
fn roster_keeps_a_member_that_reconnects() {
    let mut m = master_on_a();
    m.link("F", Up);
    m.recv("F", "S", hello("Alto 1"));
    m.recv("F", "S", join_request(FollowMode::Follow));
    m.recv("F", "S", showing("a", 1, 0));
    m.link("F", Down);
    let away = member(&m, "F");
    assert_eq!((away.link, away.name.as_str()), (LinkState::Reconnecting, "Alto 1"));
    assert_eq!(away.shows, Some(view("a", 0)));
    m.link("F", Up);
    m.recv("F", "S", join_request(FollowMode::Follow));
    let back = member(&m, "F");
    assert_eq!((back.link, back.name.as_str()), (LinkState::Connected, "Alto 1"));
    assert_eq!(roster(&m).members.len(), 1);
}

// ---- shows and lagging ---------------------------------------------------------------------

#[test]
fn showing_updates_what_the_member_shows() {
    let mut m = master_on_a();
    scripted_member(&mut m, "F", FollowMode::Follow);
    assert_eq!(member(&m, "F").shows, None);
    m.recv("F", "S", showing("a", 1, 4));
    assert_eq!(member(&m, "F").shows, Some(view("a", 4)));
}

#[test]
fn a_showing_older_than_the_last_one_applied_is_ignored() {
    let mut m = master_on_a();
    scripted_member(&mut m, "F", FollowMode::Follow);
    let at = |ts: u64, page: u32| {
        maestral_protocol::Envelope::new(SessionId::new("S"), id("F"), ts, showing("a", 1, page))
    };
    m.recv_env("F", at(T0 + 50, 5));
    m.recv_env("F", at(T0 + 20, 4));
    assert_eq!(member(&m, "F").shows, Some(view("a", 5)), "a reordered copy changes nothing");
    m.recv_env("F", at(T0 + 50, 5));
    m.recv_env("F", at(T0 + 60, 6));
    assert_eq!(member(&m, "F").shows, Some(view("a", 6)));
}

#[test]
fn a_master_ignores_showing_from_a_non_member_or_another_session() {
    let mut m = master_on_a();
    m.link("G", Up);
    m.take_events();
    m.recv("G", "S", showing("a", 1, 4));
    assert!(roster(&m).members.is_empty());
    scripted_member(&mut m, "F", FollowMode::Follow);
    m.recv("F", "OTHER", showing("a", 1, 4));
    assert_eq!(member(&m, "F").shows, None);
    m.tick(LAG * 3);
    for r in rosters(m.take_events()) {
        assert!(r.members.iter().all(|x| x.device_id.as_str() == "F" && x.shows.is_none()));
    }
}

#[test]
fn a_member_that_never_reported_is_unknown_not_lagging() {
    // Just joined, or a V1 Follower that ignores SHOWING: the Master cannot tell.
    let mut m = master_on_a();
    scripted_member(&mut m, "F", FollowMode::Follow);
    m.local(LocalAction::SetPage { page: 3 });
    m.tick(LAG * 3);
    assert_eq!(member(&m, "F").shows, None);
    assert!(!member(&m, "F").lagging);
    m.recv("F", "S", showing("a", 1, 0));
    assert!(member(&m, "F").lagging, "once it reports another page, it lags");
}

#[test]
fn lagging_starts_lag_ms_after_the_turn_for_a_follow_member_off_the_page() {
    let mut m = master_on_a();
    scripted_member(&mut m, "F", FollowMode::Follow);
    scripted_member(&mut m, "G", FollowMode::Free);
    m.recv("F", "S", showing("a", 1, 0));
    m.recv("G", "S", showing("a", 1, 0));
    m.tick(LAG * 2);
    m.local(LocalAction::SetPage { page: 3 });
    m.take_events();

    m.tick(LAG - 1);
    assert!(!member(&m, "F").lagging, "not before lag_ms");
    // The timer alone (no message arrives) makes it lag.
    m.tick(1);
    assert!(member(&m, "F").lagging, "follow mode, not on page 3, lag_ms after the turn");
    assert!(!member(&m, "G").lagging, "a free member never lags");
    let r = rosters(m.take_events()).pop().expect("lagging changed: a roster goes out");
    assert!(r.members.iter().any(|x| x.device_id.as_str() == "F" && x.lagging));
    assert_eq!(
        r.summary(&view("a", 3)),
        RosterSummary { members: 2, on_page: 0, free: 1, lagging: 1, away: 0 }
    );

    m.recv("F", "S", showing("a", 1, 3));
    assert!(!member(&m, "F").lagging, "on the page again");
    assert_eq!(roster(&m).summary(&view("a", 3)).on_page, 1);
    // The next turn clears lagging at once: it has lag_ms to get there.
    m.tick(LAG);
    m.recv("F", "S", showing("a", 1, 9));
    assert!(member(&m, "F").lagging);
    m.local(LocalAction::NextPage);
    assert!(!member(&m, "F").lagging);
}

#[test]
fn a_member_on_the_page_of_an_older_song_epoch_lags() {
    let mut m = master_on_a();
    scripted_member(&mut m, "F", FollowMode::Follow);
    m.recv("F", "S", showing("a", 1, 0));
    // The same song again is a new epoch (§11.3): page 0 of epoch 1 is not the Master's page.
    m.local(LocalAction::SetSong { song_id: song("a") });
    m.tick(LAG);
    assert!(member(&m, "F").lagging);
    m.recv("F", "S", showing("a", 2, 0));
    assert!(!member(&m, "F").lagging);
}

#[test]
fn an_away_member_does_not_lag() {
    let mut m = master_on_a();
    scripted_member(&mut m, "F", FollowMode::Follow);
    m.link("F", Down);
    m.tick(LAG);
    let f = member(&m, "F");
    assert_eq!((f.link, f.lagging), (LinkState::Reconnecting, false));
    assert_eq!(roster(&m).summary(&view("a", 0)).away, 1);
}

// ---- Event::Roster pacing ------------------------------------------------------------------

#[test]
fn roster_events_are_coalesced_to_one_per_interval_ending_with_the_latest() {
    let mut m = master_on_a();
    scripted_member(&mut m, "F", FollowMode::Free);
    m.tick(LAG * 2);
    m.take_events();

    m.recv("F", "S", showing("a", 1, 1));
    let first = rosters(m.take_events());
    assert_eq!(first.len(), 1, "the first change after a quiet interval goes out at once");
    assert_eq!(first[0].members[0].shows, Some(view("a", 1)));

    m.at(10);
    m.recv("F", "S", showing("a", 1, 2));
    assert!(rosters(m.take_events()).is_empty(), "held: 10 ms after the last");
    m.tick(ROSTER_EVERY - 11);
    assert!(rosters(m.take_events()).is_empty(), "still inside the interval");
    m.tick(1);
    let second = rosters(m.take_events());
    assert_eq!(second.len(), 1, "the held change goes out when the interval ends");
    assert_eq!(second[0].members[0].shows, Some(view("a", 2)));

    // A burst: one event per interval at most, the latest state last.
    let mut at = Vec::new();
    for page in 3..40 {
        m.at(20);
        m.recv("F", "S", showing("a", 1, page));
        m.tick(0);
        if !rosters(m.take_events()).is_empty() {
            at.push(m.now);
        }
    }
    m.tick(ROSTER_EVERY);
    let tail = rosters(m.take_events());
    assert_eq!(tail.last().map(|r| r.members[0].shows.clone()), Some(Some(view("a", 39))));
    assert!(at.windows(2).all(|w| w[1] - w[0] >= ROSTER_EVERY), "{at:?}");
}

#[test]
fn a_change_undone_within_the_interval_emits_nothing() {
    let mut m = master_on_a();
    scripted_member(&mut m, "F", FollowMode::Free);
    m.recv("F", "S", showing("a", 1, 1));
    m.tick(LAG * 2);
    m.recv("F", "S", showing("a", 1, 2));
    m.take_events();
    m.at(10);
    m.recv("F", "S", showing("a", 1, 3));
    m.at(10);
    m.recv("F", "S", showing("a", 1, 2));
    m.tick(ROSTER_EVERY);
    assert!(rosters(m.take_events()).is_empty());
}

#[test]
fn session_end_emits_an_empty_roster() {
    let mut m = master_on_a();
    scripted_member(&mut m, "F", FollowMode::Follow);
    m.tick(LAG * 2);
    m.take_events();
    m.local(LocalAction::EndSession);
    m.tick(ROSTER_EVERY);
    let last = rosters(m.take_events()).pop().expect("the emptied roster goes out");
    assert!(last.members.is_empty());
    assert!(roster(&m).members.is_empty());
}

#[test]
fn the_roster_serializes_in_the_headless_shape() {
    let mut m = master_on_a();
    m.link("F", Up);
    m.recv("F", "S", hello("Alto 1"));
    m.recv("F", "S", join_request(FollowMode::Free));
    m.recv("F", "S", showing("a", 1, 2));
    let json = serde_json::to_value(roster(&m)).expect("serializes");
    assert_eq!(
        json,
        serde_json::json!({"members": [{"device_id": "F", "name": "Alto 1", "link": "CONNECTED",
            "follow_mode": "free", "shows": {"song_id": "a", "page_index": 2}, "lagging": false}]})
    );
}

// ---- the Follower's side -------------------------------------------------------------------

/// The `SHOWING`s `f` sent, as `(song, epoch, page)`.
fn showings(f: &mut Dev) -> Vec<(Option<SongId>, u64, u32)> {
    f.take_sent()
        .into_iter()
        .filter_map(|(_, e, _)| match e.message {
            Message::Showing(s) => Some((s.song_id, s.song_epoch.0, s.page_index)),
            _ => None,
        })
        .collect()
}

/// A Follower "F" joined to a scripted Master "M" on song "a", epoch 1, page 2.
fn scripted_follower() -> Dev {
    let mut f = Dev::new("F", Role::Follower);
    f.local(LocalAction::Join {
        master: id("M"),
        session_id: SessionId::new("S"),
        token: "tok".into(),
    });
    f.link("M", Up);
    assert!(showings(&mut f).is_empty(), "nothing before the accept");
    f.recv("M", "S", Message::JoinAccept(JoinAccept { snapshot: snapshot("a", 1, 2, 2) }));
    f
}

#[test]
fn a_follower_reports_showing_right_after_join_accept_and_rejoin() {
    let mut f = scripted_follower();
    assert_eq!(showings(&mut f), [(song("a"), 1, 2)]);
    f.link("M", Down);
    f.local(LocalAction::NextPage);
    assert!(showings(&mut f).is_empty(), "nothing while the link is down");
    f.tick(Timing::LAN.backoff_max_ms);
    f.link("M", Up);
    assert!(showings(&mut f).is_empty(), "nothing before the accept");
    f.recv("M", "S", Message::JoinAccept(JoinAccept { snapshot: snapshot("a", 1, 5, 3) }));
    assert_eq!(showings(&mut f), [(song("a"), 1, 5)], "at once after the rejoin");
}

#[test]
fn a_follower_rate_limits_showing_and_sends_the_last_change_when_the_interval_ends() {
    let mut f = scripted_follower();
    assert_eq!(showings(&mut f).len(), 1);
    f.at(10);
    f.local(LocalAction::NextPage);
    f.at(10);
    f.local(LocalAction::NextPage);
    assert!(showings(&mut f).is_empty(), "inside the interval: held");
    f.tick(SHOWING_EVERY - 21);
    assert!(showings(&mut f).is_empty());
    f.tick(1);
    assert_eq!(showings(&mut f), [(song("a"), 1, 4)], "the latest, when the interval ends");

    // A change back to what was last reported before the trailing send sends nothing.
    f.at(10);
    f.local(LocalAction::NextPage);
    f.at(10);
    f.local(LocalAction::PrevPage);
    f.tick(SHOWING_EVERY * 3);
    assert!(showings(&mut f).is_empty());

    // After a quiet interval a change goes out at once.
    f.local(LocalAction::SetPage { page: 9 });
    assert_eq!(showings(&mut f), [(song("a"), 1, 9)]);
}

#[test]
fn a_follower_reports_the_masters_page_it_follows_and_its_own_when_free() {
    let mut f = scripted_follower();
    showings(&mut f);
    f.at(SHOWING_EVERY);
    f.recv("M", "S", set_page(1, 3, 6));
    assert_eq!(showings(&mut f), [(song("a"), 1, 6)]);
    f.local(LocalAction::SetFollowMode { mode: FollowMode::Free });
    f.at(SHOWING_EVERY);
    f.recv("M", "S", set_page(1, 4, 7));
    assert!(showings(&mut f).is_empty(), "free: it still shows page 6");
    f.e.handle_navigation(f.now, LocalAction::SetPage { page: 1 }, view("a", 1))
        .expect("a navigation a Follower may make");
    f.drain_now();
    assert_eq!(showings(&mut f), [(song("a"), 1, 1)], "the app's own navigation");
}

#[test]
fn a_follower_reports_the_master_view_in_free_and_follow_mode() {
    let mut f = scripted_follower();
    let mv = |f: &mut Dev| -> Vec<View> {
        f.take_events()
            .into_iter()
            .filter_map(|e| match e {
                Event::MasterView(v) => Some(v),
                _ => None,
            })
            .collect()
    };
    assert_eq!(mv(&mut f), [view("a", 2)], "from the accept's snapshot");
    f.local(LocalAction::SetFollowMode { mode: FollowMode::Free });
    f.recv("M", "S", set_page(1, 3, 7));
    assert_eq!(mv(&mut f), [view("a", 7)], "free: the Master moved, this device did not");
    assert_eq!(f.page(), 2);
    f.recv("M", "S", set_page(1, 3, 7));
    assert!(mv(&mut f).is_empty(), "a duplicate changes nothing");
    f.local(LocalAction::NextPage);
    assert!(mv(&mut f).is_empty(), "a local turn is not the Master's");
    f.local(LocalAction::SetFollowMode { mode: FollowMode::Follow });
    f.recv("M", "S", set_page(1, 4, 8));
    assert_eq!(mv(&mut f), [view("a", 8)]);
}

// ---- end to end ----------------------------------------------------------------------------

#[test]
fn the_masters_roster_shows_what_real_followers_show() {
    let mut m = master_on_a();
    let mut f = joined("F", &mut m);
    let mut g = joined("G", &mut m);
    g.local(LocalAction::SetFollowMode { mode: FollowMode::Free });
    relay(&mut m, &mut [&mut f, &mut g]);
    assert_eq!(member(&m, "F").shows, Some(view("a", 0)));

    m.at(SHOWING_EVERY);
    m.local(LocalAction::SetPage { page: 5 });
    relay(&mut m, &mut [&mut f, &mut g]);
    assert_eq!(member(&m, "F").shows, Some(view("a", 5)));
    assert_eq!(member(&m, "G").shows, Some(view("a", 0)));
    let r = roster(&m);
    assert_eq!(
        r.members.iter().map(|x| x.follow_mode).collect::<Vec<_>>(),
        [FollowMode::Follow, FollowMode::Free]
    );
    m.tick(LAG);
    assert!(!member(&m, "F").lagging && !member(&m, "G").lagging);
    assert_eq!(
        roster(&m).summary(&m.view()),
        RosterSummary { members: 2, on_page: 1, free: 1, lagging: 0, away: 0 }
    );
}
