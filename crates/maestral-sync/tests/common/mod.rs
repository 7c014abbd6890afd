//! A device under test: one engine, a virtual clock, its outputs collected and decoded.

#![allow(dead_code)]

use maestral_protocol::{
    ChoirSetPage, ChoirSnapshot, DeviceId, Envelope, Message, PageRevision, SessionId, SongEpoch,
    SongId, decode,
};
use maestral_sync::{
    Engine, EngineConfig, Event, LinkSignal, LinkState, LocalAction, Output, Phase, RecvError,
    Role, StateView, TransportRequest, View,
};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

pub const T0: u64 = 1_735_689_600_000;

/// Song `s`'s id (tests name songs by short strings).
pub fn song(s: &str) -> Option<SongId> {
    Some(SongId::new(s))
}

/// A Choir snapshot of session "S".
pub fn snapshot(s: &str, epoch: u64, page: u32, rev: u64) -> ChoirSnapshot {
    ChoirSnapshot {
        session_id: SessionId::new("S"),
        song_id: song(s),
        song_epoch: SongEpoch(epoch),
        page_index: page,
        page_revision: PageRevision(rev),
    }
}

/// A Choir `SET_PAGE`.
pub fn set_page(epoch: u64, rev: u64, page: u32) -> Message {
    Message::ChoirSetPage(ChoirSetPage {
        song_epoch: SongEpoch(epoch),
        page_revision: PageRevision(rev),
        page_index: page,
    })
}

pub struct Dev {
    pub e: Engine,
    pub now: u64,
    sent: Vec<(DeviceId, Envelope, String)>,
    /// Every message sent, by type, with the register the engine marked it as updating.
    marked: Vec<(String, Option<maestral_protocol::Register>)>,
    requests: Vec<TransportRequest>,
    events: Vec<Event>,
}

pub fn id(s: &str) -> DeviceId {
    DeviceId::new(s)
}

impl Dev {
    pub fn new(name: &str, role: Role) -> Dev {
        let rng = ChaCha8Rng::seed_from_u64(name.len() as u64 * 7919);
        let mut d = Dev {
            e: Engine::new(EngineConfig::new(name), role, Box::new(rng)),
            now: T0,
            sent: Vec::new(),
            marked: Vec::new(),
            requests: Vec::new(),
            events: Vec::new(),
        };
        d.drain();
        d
    }

    fn drain(&mut self) {
        while let Some(o) = self.e.poll_output() {
            match o {
                Output::Transmit { to, data, register } => {
                    let env = decode(data.as_bytes()).expect("the engine sends valid messages");
                    self.marked.push((env.message.type_name().to_owned(), register));
                    self.sent.push((to, env, data.to_string()));
                }
                Output::Request(r) => self.requests.push(r),
                Output::Event(ev) => self.events.push(ev),
            }
        }
    }

    pub fn at(&mut self, ms: u64) -> &mut Self {
        self.now += ms;
        self
    }

    pub fn link(&mut self, peer: &str, s: LinkSignal) {
        self.e.handle_link(self.now, &id(peer), s);
        self.drain();
    }

    pub fn local(&mut self, a: LocalAction) {
        self.e.handle_local(self.now, a).expect("the action is valid here");
        self.drain();
    }

    /// Collects what the engine put out after a direct call on `e`.
    pub fn drain_now(&mut self) {
        self.drain();
    }

    pub fn try_local(&mut self, a: LocalAction) -> Result<(), maestral_sync::ActionError> {
        let r = self.e.handle_local(self.now, a);
        self.drain();
        r
    }

    /// A message from `from`, stamped now (its sender is `from`).
    pub fn recv(&mut self, from: &str, session: &str, m: Message) {
        let env = Envelope::new(SessionId::new(session), id(from), self.now, m);
        self.recv_env(from, env);
    }

    pub fn recv_env(&mut self, from: &str, env: Envelope) {
        let bytes = env.encode();
        let _ = self.e.handle_message(self.now, &id(from), bytes.as_bytes());
        self.drain();
    }

    /// A message from `from` on the copy channel, stamped now.
    pub fn recv_copy(&mut self, from: &str, session: &str, m: Message) -> Result<(), RecvError> {
        let env = Envelope::new(SessionId::new(session), id(from), self.now, m);
        self.recv_copy_env(from, env)
    }

    pub fn recv_copy_env(&mut self, from: &str, env: Envelope) -> Result<(), RecvError> {
        let r = self.e.handle_copy(self.now, &id(from), env);
        self.drain();
        r
    }

    /// Takes what [`Dev::marked`] collected: each message's type and register.
    pub fn take_marked(&mut self) -> Vec<(String, Option<maestral_protocol::Register>)> {
        std::mem::take(&mut self.marked)
    }

    pub fn recv_bytes(&mut self, from: &str, bytes: &[u8]) -> Result<(), RecvError> {
        let r = self.e.handle_message(self.now, &id(from), bytes);
        self.drain();
        r
    }

    /// Advances the clock by `ms`, firing every timer due on the way, in order.
    pub fn tick(&mut self, ms: u64) {
        let end = self.now + ms;
        while let Some(due) = self.e.poll_timeout() {
            if due > end {
                break;
            }
            self.now = due.max(self.now);
            self.e.handle_timeout(self.now);
            self.drain();
        }
        self.now = end;
        self.e.handle_timeout(end);
        self.drain();
    }

    pub fn take_sent(&mut self) -> Vec<(DeviceId, Envelope, String)> {
        std::mem::take(&mut self.sent)
    }

    /// Takes only what was sent to `peer`, leaving the rest queued.
    pub fn take_sent_to(&mut self, peer: &str) -> Vec<(DeviceId, Envelope, String)> {
        let (mine, rest) =
            std::mem::take(&mut self.sent).into_iter().partition(|(to, ..)| to.as_str() == peer);
        self.sent = rest;
        mine
    }

    pub fn sent_types(&mut self) -> Vec<String> {
        self.take_sent().into_iter().map(|(_, e, _)| e.message.type_name().to_owned()).collect()
    }

    pub fn take_requests(&mut self) -> Vec<TransportRequest> {
        std::mem::take(&mut self.requests)
    }

    pub fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }

    pub fn phase(&self) -> Phase {
        self.e.phase()
    }

    pub fn view(&self) -> View {
        self.e.view()
    }

    pub fn page(&self) -> u32 {
        self.e.view().page_index
    }

    pub fn link_state(&self, peer: &str) -> LinkState {
        self.e.link(&id(peer))
    }

    pub fn state(&self) -> StateView {
        self.e.state()
    }

    /// Everything observable, to prove an input changed nothing.
    pub fn snapshot(&self) -> String {
        let links: Vec<_> = self.e.links().map(|(p, s)| (p.clone(), s)).collect();
        format!("{:?}|{:?}|{:?}|{:?}", self.e.state(), self.e.phase(), self.e.view(), links)
    }
}

/// Delivers everything `a` sent to `b` and back, until both are quiet (a perfect link).
pub fn pump(a: &mut Dev, b: &mut Dev) {
    let (an, bn) = (a.e.device_id().to_string(), b.e.device_id().to_string());
    for _ in 0..100 {
        let from_a = a.take_sent_to(&bn);
        let from_b = b.take_sent_to(&an);
        if from_a.is_empty() && from_b.is_empty() {
            return;
        }
        b.now = b.now.max(a.now);
        a.now = a.now.max(b.now);
        for (_, env, _) in from_a {
            b.recv_env(&an, env);
        }
        for (_, env, _) in from_b {
            a.recv_env(&bn, env);
        }
    }
    panic!("the two devices never went quiet");
}

/// Opens a link between `a` and `b` (both hear `Up`) and lets them talk.
pub fn connect(a: &mut Dev, b: &mut Dev) {
    let (an, bn) = (a.e.device_id().to_string(), b.e.device_id().to_string());
    a.link(&bn, LinkSignal::Up);
    b.link(&an, LinkSignal::Up);
    pump(a, b);
}

/// A Master with an active session "S" / token "tok".
pub fn master() -> Dev {
    let mut m = Dev::new("M", Role::Master);
    m.local(LocalAction::StartSession {
        session_id: Some(SessionId::new("S")),
        token: Some("tok".into()),
    });
    m
}

/// A Follower that joins `m`'s session "S" and is accepted.
pub fn joined(name: &str, m: &mut Dev) -> Dev {
    let mut f = Dev::new(name, Role::Follower);
    f.local(LocalAction::Join {
        master: id("M"),
        session_id: SessionId::new("S"),
        token: "tok".into(),
    });
    connect(&mut f, m);
    assert_eq!(f.phase(), Phase::FollowerConnectedFollow, "{name} joined");
    f
}

/// Relays everything the Master sent to each of `fs`, and their answers back.
pub fn relay(m: &mut Dev, fs: &mut [&mut Dev]) {
    for f in fs.iter_mut() {
        pump(m, f);
    }
}
