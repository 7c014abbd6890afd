//! Property tests: nothing a peer or the user does can panic an engine or break its invariants.

use maestral_protocol::{
    ChoirSetPage, ChoirSetSong, ChoirSnapshot, DeviceId, Envelope, FollowMode, JoinAccept,
    JoinReject, JoinRequest, Layout, Message, PageChangeStamp, PageRevision, Parity, RejectReason,
    SessionId, SetFollowMode, SoloSetPage, SoloSetSong, SoloState, SongEpoch, SongId,
};
use maestral_sync::{Engine, EngineConfig, LinkSignal, LocalAction, Role, StateView};
use proptest::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

const PEERS: [&str; 3] = ["M", "P", "F"];

#[derive(Debug, Clone)]
enum In {
    Link(usize, LinkSignal),
    Msg { from: usize, sender: usize, session: bool, ts: u64, m: Message },
    Bytes(usize, Vec<u8>),
    Local(LocalAction),
    Tick(u64),
}

fn signal() -> impl Strategy<Value = LinkSignal> {
    prop_oneof![Just(LinkSignal::Up), Just(LinkSignal::Degraded), Just(LinkSignal::Down)]
}

fn song() -> impl Strategy<Value = Option<SongId>> {
    prop::option::of(prop_oneof![Just("a"), Just("b"), Just("c")].prop_map(SongId::new))
}

fn message() -> impl Strategy<Value = Message> {
    let e = 0u64..5;
    prop_oneof![
        (song(), e.clone()).prop_map(|(s, e)| Message::ChoirSetSong(ChoirSetSong {
            song_id: s,
            song_epoch: SongEpoch(e)
        })),
        (e.clone(), 0u64..8, 0u32..20).prop_map(|(e, r, p)| Message::ChoirSetPage(ChoirSetPage {
            song_epoch: SongEpoch(e),
            page_revision: PageRevision(r),
            page_index: p
        })),
        (song(), e.clone(), 0u32..20, 0u64..8).prop_map(|(s, e, p, r)| Message::ChoirSnapshot(
            ChoirSnapshot {
                session_id: SessionId::new("S"),
                song_id: s,
                song_epoch: SongEpoch(e),
                page_index: p,
                page_revision: PageRevision(r)
            }
        )),
        (song(), e.clone(), 0u32..20, 0u64..8).prop_map(|(s, e, p, r)| Message::JoinAccept(
            JoinAccept {
                snapshot: ChoirSnapshot {
                    session_id: SessionId::new("S"),
                    song_id: s,
                    song_epoch: SongEpoch(e),
                    page_index: p,
                    page_revision: PageRevision(r)
                }
            }
        )),
        prop_oneof![
            Just(RejectReason::InvalidToken),
            Just(RejectReason::SessionEnded),
            Just(RejectReason::VersionMismatch)
        ]
        .prop_map(|reason| Message::JoinReject(JoinReject { reason })),
        Just(Message::SessionEnd),
        Just(Message::LeaveSession),
        (prop_oneof![Just("tok"), Just("bad")], e.clone()).prop_map(|(t, e)| Message::JoinRequest(
            JoinRequest {
                session_token: t.into(),
                follow_mode: FollowMode::Follow,
                song_epoch: SongEpoch(e)
            }
        )),
        prop_oneof![Just(FollowMode::Follow), Just(FollowMode::Free)]
            .prop_map(|mode| Message::SetFollowMode(SetFollowMode { mode })),
        (song(), 0u32..20)
            .prop_map(|(s, p)| Message::SoloSetPage(SoloSetPage { song_id: s, page_index: p })),
        song().prop_map(|s| Message::SoloSetSong(SoloSetSong { song_id: s })),
        (0usize..3, any::<bool>()).prop_map(|(l, odd)| Message::SetLayoutParity(Layout {
            leader_device_id: DeviceId::new(PEERS[l]),
            parity: if odd { Parity::Odd } else { Parity::Even }
        })),
        (song(), 0u32..20, 0usize..3, 0u64..3_000).prop_map(|(s, p, l, ts)| Message::SoloSnapshot(
            SoloState {
                song_id: s,
                page_index: p,
                layout: Layout { leader_device_id: DeviceId::new(PEERS[l]), parity: Parity::Odd },
                last_page_change: PageChangeStamp { sender_id: DeviceId::new(PEERS[l]), ts },
                last_layout_change: PageChangeStamp { sender_id: DeviceId::new(PEERS[l]), ts },
            }
        )),
        Just(Message::Unknown { message_type: "X".into() }),
    ]
}

fn action() -> impl Strategy<Value = LocalAction> {
    prop_oneof![
        song().prop_map(|song_id| LocalAction::SetSong { song_id }),
        (0u32..40).prop_map(|page| LocalAction::SetPage { page }),
        Just(LocalAction::NextPage),
        Just(LocalAction::PrevPage),
        any::<bool>().prop_map(|odd| LocalAction::SetParity {
            parity: if odd { Parity::Odd } else { Parity::Even }
        }),
        Just(LocalAction::StartSession {
            session_id: Some(SessionId::new("S")),
            token: Some("tok".into())
        }),
        Just(LocalAction::EndSession),
        Just(LocalAction::Join {
            master: DeviceId::new("M"),
            session_id: SessionId::new("S"),
            token: "tok".into()
        }),
        Just(LocalAction::Leave),
        any::<bool>().prop_map(|f| LocalAction::SetFollowMode {
            mode: if f { FollowMode::Follow } else { FollowMode::Free }
        }),
    ]
}

fn input() -> impl Strategy<Value = In> {
    prop_oneof![
        2 => (0usize..3, signal()).prop_map(|(p, s)| In::Link(p, s)),
        6 => (0usize..3, 0usize..3, any::<bool>(), 0u64..3_000, message()).prop_map(|(from, sender, session, ts, m)| In::Msg { from, sender: if sender == 2 { (from + 1) % 3 } else { from }, session, ts, m }),
        1 => (0usize..3, prop::collection::vec(any::<u8>(), 0..80)).prop_map(|(p, b)| In::Bytes(p, b)),
        3 => action().prop_map(In::Local),
        2 => (0u64..5_000).prop_map(In::Tick),
    ]
}

fn role() -> impl Strategy<Value = Role> {
    prop_oneof![Just(Role::Solo), Just(Role::Master), Just(Role::Follower)]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Any sequence of inputs: no panic, outputs drain, timers never lie in the past for long,
    /// and a Follower never goes back to an older song epoch within one session.
    #[test]
    fn engines_survive_any_input_sequence(role in role(), seed in any::<u64>(), inputs in prop::collection::vec(input(), 1..120)) {
        let mut e = Engine::new(EngineConfig::new("F"), role, Box::new(ChaCha8Rng::seed_from_u64(seed)));
        let mut now = 1_735_689_600_000u64;
        let mut last_epoch: Option<(SessionId, SongEpoch)> = None;
        for i in inputs {
            match i {
                In::Link(p, s) => e.handle_link(now, &DeviceId::new(PEERS[p]), s),
                In::Msg { from, sender, session, ts, m } => {
                    let sid = if session { SessionId::new("S") } else { SessionId::default() };
                    let env = Envelope::new(sid, DeviceId::new(PEERS[sender]), now - 1_500 + ts, m);
                    let _ = e.handle_message(now, &DeviceId::new(PEERS[from]), env.encode().as_bytes());
                }
                In::Bytes(p, b) => {
                    let before = format!("{:?}{:?}{:?}", e.state(), e.phase(), e.view());
                    if e.handle_message(now, &DeviceId::new(PEERS[p]), &b).is_err() {
                        prop_assert_eq!(before, format!("{:?}{:?}{:?}", e.state(), e.phase(), e.view()));
                    }
                }
                In::Local(a) => { let _ = e.handle_local(now, a); }
                In::Tick(ms) => {
                    now += ms;
                    e.handle_timeout(now);
                }
            }
            let mut n = 0;
            while e.poll_output().is_some() {
                n += 1;
                prop_assert!(n < 10_000, "output storm");
            }
            if let Some(t) = e.poll_timeout() {
                // A due timer fires on the next tick; it must not keep re-arming in the past.
                if t <= now {
                    e.handle_timeout(now);
                    while e.poll_output().is_some() {}
                    prop_assert!(e.poll_timeout().is_none_or(|t2| t2 > now), "timer stuck at {t}");
                }
            }
            if let StateView::Follower(f) = e.state()
                && let Some(sid) = f.session_id.clone()
            {
                if let Some((ls, le)) = &last_epoch
                    && *ls == sid
                {
                    prop_assert!(f.song_epoch >= *le, "epoch went back");
                }
                last_epoch = Some((sid, f.song_epoch));
            }
        }
    }

    /// Arbitrary bytes from a peer are rejected or applied, never a panic.
    #[test]
    fn arbitrary_bytes_never_panic(role in role(), bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let mut e = Engine::new(EngineConfig::new("F"), role, Box::new(ChaCha8Rng::seed_from_u64(1)));
        e.handle_link(1, &DeviceId::new("M"), LinkSignal::Up);
        let _ = e.handle_message(2, &DeviceId::new("M"), &bytes);
        while e.poll_output().is_some() {}
    }
}
