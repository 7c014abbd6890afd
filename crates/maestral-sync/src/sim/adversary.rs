//! The adversary: garbage and forged messages from linked peers, and Master crashes.

use maestral_protocol::{
    ChoirSetPage, ChoirSetSong, ChoirSnapshot, DeviceId, Envelope, Message, PageRevision,
    SessionId, SoloSetPage, SongEpoch,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::{Kind, Sim};
use crate::{Engine, MasterState, Role, StateView};

impl Sim {
    /// The Master's process dies and starts again, with its saved position or without it: its
    /// links break and the new engine resumes the saved session.
    pub(super) fn crash_master(&mut self, node: usize, keep_position: bool) {
        let StateView::Master(saved) = self.nodes[node].engine.state() else { return };
        self.trace(|_| format!("master crashes (keeps position: {keep_position})"));
        let peers = self.linked_peers(node);
        for p in peers {
            self.cut(node, p);
        }
        let rng = ChaCha8Rng::seed_from_u64(self.rng.random());
        let id = self.nodes[node].id.clone();
        let mut e = Engine::new(self.config(&id), Role::Master, Box::new(rng));
        if keep_position {
            e.resume_master(&saved);
        } else {
            // The position was lost (only the session survived): resume at an epoch
            // past anything a Follower can hold, as `resume_master` advises.
            e.resume_master(&MasterState {
                song_id: None,
                song_epoch: SongEpoch(self.now),
                page_index: 0,
                page_revision: PageRevision(0),
                ..saved
            });
        }
        self.nodes[node].engine = e;
        self.drain(node);
    }

    /// Garbage from a linked peer: must be rejected with no state change (§14).
    pub(super) fn inject_garbage(&mut self, node: usize) {
        let Some(peer) = self.some_linked_peer(node) else { return };
        let from = self.nodes[peer].id.clone();
        let bytes: Vec<u8> = match self.rng.random_range(0..6) {
            0 => (0..self.rng.random_range(0..200)).map(|_| self.rng.random()).collect(),
            1 => vec![b' '; 70_000],
            2 => format!(
                r#"{{"v":2,"session_id":"x","sender_id":"{from}","type":"SET_PAGE","ts":1,"payload":{{}}}}"#
            )
            .into_bytes(),
            3 => format!(
                r#"{{"v":1,"session_id":"x","sender_id":"{from}","type":"SET_PAGE","ts":"soon","payload":{{}}}}"#
            )
            .into_bytes(),
            4 => format!(
                r#"{{"v":1,"session_id":"x","sender_id":"{from}","type":"SET_PAGE","ts":1,"payload":{{"song_epoch":"many"}}}}"#
            )
            .into_bytes(),
            _ => br#"{"v":1,"session_id":"#.to_vec(),
        };
        self.expect_unchanged(node, &from, &bytes, "§14 garbage changes nothing");
    }

    /// Well-formed messages a receiver must ignore: state from a peer without authority, another
    /// session's messages, a forged `sender_id`, an unknown type.
    pub(super) fn inject_forged(&mut self, node: usize) {
        let Some(peer) = self.some_linked_peer(node) else { return };
        let from = self.nodes[peer].id.clone();
        let sid = match self.nodes[node].engine.state() {
            StateView::Follower(f) => f.session_id.unwrap_or_default(),
            StateView::Master(m) => m.session_id.unwrap_or_default(),
            StateView::Solo(_) => SessionId::default(),
        };
        let ts = self.now + 10_000_000;
        let (sender, session, message) = match (self.nodes[node].kind, self.rng.random_range(0..4))
        {
            // A Follower cannot steer the Master (Authority).
            (Kind::Master, 0) => (
                from.clone(),
                sid,
                Message::ChoirSetSong(ChoirSetSong {
                    song_id: None,
                    song_epoch: SongEpoch(u64::MAX),
                }),
            ),
            (Kind::Master, 1) => (
                from.clone(),
                sid,
                Message::ChoirSetPage(ChoirSetPage {
                    song_epoch: SongEpoch(1),
                    page_revision: PageRevision(u64::MAX),
                    page_index: 999,
                }),
            ),
            (Kind::Master, 2) => (
                from.clone(),
                sid.clone(),
                Message::ChoirSnapshot(ChoirSnapshot {
                    session_id: sid,
                    song_id: None,
                    song_epoch: SongEpoch(99),
                    page_index: 7,
                    page_revision: PageRevision(9),
                }),
            ),
            (Kind::Master, _) => (from.clone(), sid, Message::SessionEnd),
            // Another session's state, or a forged sender, at a Follower.
            (Kind::Follower, 0) => (
                from.clone(),
                SessionId::new("another-session"),
                Message::ChoirSetSong(ChoirSetSong {
                    song_id: None,
                    song_epoch: SongEpoch(u64::MAX),
                }),
            ),
            (Kind::Follower, 1) => (DeviceId::new("M-impostor"), sid, Message::SessionEnd),
            (Kind::Follower, 2) => {
                (from.clone(), SessionId::new("another-session"), Message::SessionEnd)
            }
            (Kind::Solo { .. }, 0) => (
                DeviceId::new("zzz-impostor"),
                sid,
                Message::SoloSetPage(SoloSetPage { song_id: None, page_index: 77 }),
            ),
            (Kind::Solo { .. }, 1) => (
                from.clone(),
                sid,
                Message::ChoirSetPage(ChoirSetPage {
                    song_epoch: SongEpoch(1),
                    page_revision: PageRevision(1),
                    page_index: 5,
                }),
            ),
            _ => (from.clone(), sid, Message::Unknown { message_type: "FUTURE_THING".into() }),
        };
        let data = Envelope::new(session, sender, ts, message).encode();
        self.expect_unchanged(
            node,
            &from,
            data.as_bytes(),
            "§14/Authority ignored messages change nothing",
        );
    }
}
