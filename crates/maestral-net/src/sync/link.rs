//! The sync thread's open links: one ordered writer task per link, every link's events on one
//! channel straight into the worker (no forwarding task), flood accounting, and closing through
//! the writer queue so a last message is never cut off.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use maestral_protocol::{DeviceId, Register};
use tokio::sync::mpsc;

use super::error::JoinFailure;
use crate::joincode::fingerprints_match;
use crate::rtc::{DtlsCert, Link, LinkEvent, RtcConfig, sha256_fingerprint};
use crate::signaling::{JoinError, JoinRequestBody, post_join};

/// What a link's writer task does, in order.
enum Outgoing {
    Text(Arc<str>),
    /// Close after everything queued before it was sent (a last `SESSION_END` or
    /// `LEAVE_SESSION` must not be cut off by the close that follows it).
    Close,
}

/// When the copies of a register update go out, after the update itself (milliseconds). Under
/// 30 % loss the update and its four copies are all lost once in 400 (0.3⁵), so 99 % of updates
/// arrive within 700 ms without waiting for SCTP's retransmission timer (≥ 1 s, doubling).
/// Where the peer announced a side path (datagrams outside SCTP, `rtc/link/side.rs`) one more
/// copy goes at once, beside the original; on the copy channel none does, so that no turn waits
/// in SCTP's queue behind its own copy.
const COPY_AFTER_MS: [u64; 4] = [40, 150, 350, 700];

/// On the side path, after those copies, one more every this often for as long as the link
/// lasts: a peer that missed every copy during a drop-out it did not notice itself (one way
/// only, or too short for ICE) has the latest within a second of the heal, where SCTP's
/// backed-off timer would retransmit the original seconds later. A datagram of a few hundred
/// bytes per register each second, never queued in SCTP.
const REFRESH_MS: u64 = 1000;

/// How early a refresh may go, so that one wake-up of the worker sends every refresh due about
/// then (a Master's 100 links would otherwise each wake it on their own).
const REFRESH_EARLY: Duration = Duration::from_millis(100);

/// The latest update of one register sent to a peer, and when its next copy is due.
struct Latest {
    text: Arc<str>,
    sent: Instant,
    /// The next entry of [`COPY_AFTER_MS`]; past the end: no copy due until the link recovers.
    step: usize,
}

impl Latest {
    /// When the next copy is due; `refresh`: the link has a side path, so copies never end.
    fn due(&self, refresh: bool) -> Option<Instant> {
        let last = COPY_AFTER_MS.len();
        let ms = match COPY_AFTER_MS.get(self.step) {
            Some(ms) => *ms,
            None if refresh => COPY_AFTER_MS[last - 1] + (self.step - last + 1) as u64 * REFRESH_MS,
            None => return None,
        };
        Some(self.sent + Duration::from_millis(ms))
    }
}

/// One open link: its connection, its send queue, flood accounting, and the latest update of
/// each register sent on it (for its copies).
struct PeerLink {
    link: Link,
    generation: u64,
    send: mpsc::UnboundedSender<Outgoing>,
    writer: tokio::task::JoinHandle<()>,
    /// Copies, sent by a task of their own: never behind an original the association holds
    /// back (a send waits while SCTP retransmits under loss), which is when they matter.
    copies: mpsc::UnboundedSender<Arc<str>>,
    latest: [Option<Latest>; Register::ALL.len()],
    /// The peer has said where its side path is (once true, true for the link's life): cached,
    /// since the worker asks of every link each time round its loop.
    side: std::cell::Cell<bool>,
    window_start: Instant,
    in_window: u32,
    bytes_in_window: u64,
    /// The last copies taken from the peer ([`Links::took_copy`]), oldest overwritten first.
    taken: [Option<Box<str>>; TAKEN],
    next_taken: usize,
}

/// Copies remembered per link: a register update's refreshes and its original repeat the last
/// one or two (one per register), so a few suffice.
const TAKEN: usize = 4;

impl PeerLink {
    /// Whether copies go on the side path (as datagrams).
    fn side_path(&self) -> bool {
        if !self.side.get() && self.link.side_path_ready() {
            self.side.set(true);
        }
        self.side.get()
    }
}

/// Whether the engine takes `peer`'s register updates now: a Follower joined to it as its
/// Master, a Solo device paired with it. Only then is a copy remembered as taken: one the engine
/// ignored (it came before the join was accepted) must still count when it comes again.
pub(crate) fn takes_copies(engine: &maestral_sync::Engine, peer: &DeviceId) -> bool {
    use maestral_sync::Phase;
    match engine.phase() {
        Phase::FollowerConnectedFollow | Phase::FollowerConnectedFree => {
            engine.follower_master() == Some(peer)
        }
        Phase::SoloPairedConnected | Phase::SoloPairedDegraded => {
            engine.solo_partner() == Some(peer)
        }
        _ => false,
    }
}

/// Which of `outputs` (in order) are the last update of a register to a peer: those whose first
/// copy goes now. An earlier one is superseded; its original still goes, its copy would only
/// follow the later one's.
pub(crate) fn last_updates(outputs: &[maestral_sync::Output]) -> Vec<usize> {
    let mut seen = std::collections::HashSet::new();
    let mut last: Vec<usize> = (0..outputs.len())
        .rev()
        .filter(|&i| match &outputs[i] {
            maestral_sync::Output::Transmit { to, register: Some(r), .. } => seen.insert((to, *r)),
            _ => false,
        })
        .collect();
    last.reverse();
    last
}

/// Every link's events, tagged with the link's generation.
pub(crate) type LinkEvents = mpsc::UnboundedReceiver<(u64, LinkEvent)>;

/// The open links, one per peer.
pub(crate) struct Links {
    by_peer: HashMap<DeviceId, PeerLink>,
    peers: HashMap<u64, DeviceId>,
    next_generation: u64,
    events: mpsc::UnboundedSender<(u64, LinkEvent)>,
    /// Writers of links being closed (their last messages still going out): a shutdown waits
    /// for them too, or a runtime stopping would cut off a `LEAVE_SESSION` or `SESSION_END`.
    closing: Vec<tokio::task::JoinHandle<()>>,
}

/// What [`Links::count`] says of one message.
pub(crate) enum Traffic {
    /// Within the limit.
    Ok,
    /// Over the limit: the link was cut off.
    Flood,
}

impl Links {
    pub(crate) fn new() -> (Links, LinkEvents) {
        let (events, rx) = mpsc::unbounded_channel();
        let links = Links {
            by_peer: HashMap::new(),
            peers: HashMap::new(),
            next_generation: 0,
            events,
            closing: Vec::new(),
        };
        (links, rx)
    }

    /// Binds an open link to `peer` (replacing an older one, closed after its queue) and starts
    /// its writer; from now on its events come on the worker's channel. Returns the link's
    /// generation and what was still queued on its own receiver, for the caller to handle
    /// (before anything newer) once it has told the engine the link is up.
    pub(crate) fn register(
        &mut self,
        peer: &DeviceId,
        link: Link,
        mut events: mpsc::UnboundedReceiver<LinkEvent>,
    ) -> (u64, Vec<LinkEvent>) {
        self.close(peer);
        self.next_generation += 1;
        let generation = self.next_generation;
        link.redirect_events(generation, self.events.clone());
        // Sent before the redirect (which ends that receiver): they come first.
        let mut queued = Vec::new();
        while let Ok(ev) = events.try_recv() {
            queued.push(ev);
        }
        let (send_tx, mut send_rx) = mpsc::unbounded_channel::<Outgoing>();
        let l = link.clone();
        // One writer per link keeps its messages in order without ever blocking the worker.
        let writer = tokio::spawn(async move {
            while let Some(out) = send_rx.recv().await {
                match out {
                    Outgoing::Text(text) => {
                        if l.send_text(&text).await.is_err() {
                            break;
                        }
                    }
                    Outgoing::Close => break,
                }
            }
            l.close().await;
        });
        let (copies, mut copy_rx) = mpsc::unbounded_channel::<Arc<str>>();
        let c = link.clone();
        // Ends when the link is dropped from `by_peer` (its sender with it).
        drop(tokio::spawn(async move {
            while let Some(text) = copy_rx.recv().await {
                // Lost or refused, it was only a copy: the original is on its way.
                let _ = c.send_copy(&text).await;
            }
        }));
        self.peers.insert(generation, peer.clone());
        self.by_peer.insert(
            peer.clone(),
            PeerLink {
                link,
                generation,
                send: send_tx,
                writer,
                copies,
                latest: Default::default(),
                side: std::cell::Cell::new(false),
                window_start: Instant::now(),
                in_window: 0,
                bytes_in_window: 0,
                taken: Default::default(),
                next_taken: 0,
            },
        );
        (generation, queued)
    }

    /// The peer of the current link of this generation (`None`: an old, replaced link).
    pub(crate) fn peer(&self, generation: u64) -> Option<&DeviceId> {
        self.peers.get(&generation)
    }

    /// The open link to `peer` (a clone, sharing it).
    pub(crate) fn link(&self, peer: &DeviceId) -> Option<Link> {
        self.by_peer.get(peer).map(|pl| pl.link.clone())
    }

    pub(crate) fn contains(&self, peer: &DeviceId) -> bool {
        self.by_peer.contains_key(peer)
    }

    /// How many links are open.
    pub(crate) fn len(&self) -> usize {
        self.by_peer.len()
    }

    /// Queues a message for `peer` (dropped when there is no link: the engine is told of that
    /// through the link's events). A register update's copies are [`Links::copy_now`]'s.
    pub(crate) fn send(&mut self, peer: &DeviceId, text: Arc<str>) {
        if let Some(pl) = self.by_peer.get(peer) {
            // A writer that has ended has reported `Closed` too.
            let _ = pl.send.send(Outgoing::Text(text));
        }
    }

    /// Makes `text` the latest update of `register` sent to `peer` (its copies then follow,
    /// [`COPY_AFTER_MS`], in place of the previous update's) and sends its first copy: a
    /// datagram waits in no queue, so it goes from here at once (the worker sends a turn's
    /// copies to every peer before any original's DTLS and SCTP work), or failing that from
    /// the copy task.
    pub(crate) fn copy_now(&mut self, peer: &DeviceId, text: &Arc<str>, register: Register) {
        let Some(pl) = self.by_peer.get_mut(peer) else { return };
        let latest = Latest { text: Arc::clone(text), sent: Instant::now(), step: 0 };
        pl.latest[register.index()] = Some(latest);
        if !pl.link.send_copy_now(text) && pl.side_path() {
            let _ = pl.copies.send(Arc::clone(text));
        }
    }

    /// Whether `text` from `peer` is, byte for byte, a copy already taken from it: a refresh of
    /// that copy, or the original it copied. Applying it again would change nothing (a register
    /// takes only a newer update), so the worker skips the decoding and the engine.
    pub(crate) fn repeats_copy(&self, peer: &DeviceId, text: &str) -> bool {
        self.by_peer.get(peer).is_some_and(|pl| pl.taken.iter().flatten().any(|t| **t == *text))
    }

    /// A copy from `peer` was given to the engine: remembered for [`Self::repeats_copy`].
    pub(crate) fn took_copy(&mut self, peer: &DeviceId, text: &str) {
        if let Some(pl) = self.by_peer.get_mut(peer) {
            pl.taken[pl.next_taken] = Some(text.into());
            pl.next_taken = (pl.next_taken + 1) % TAKEN;
        }
    }

    /// When the next copy is due, if any is.
    pub(crate) fn next_copy(&self) -> Option<Instant> {
        self.by_peer
            .values()
            .flat_map(|pl| {
                let refresh = pl.side_path();
                pl.latest.iter().flatten().filter_map(move |l| l.due(refresh))
            })
            .min()
    }

    /// Queues every copy due by `now`.
    pub(crate) fn send_copies(&mut self, now: Instant) {
        for pl in self.by_peer.values_mut() {
            let refresh = pl.side_path();
            for latest in pl.latest.iter_mut().flatten() {
                // A refresh due soon goes now, with the others: one wake-up sends many.
                let early =
                    if latest.step < COPY_AFTER_MS.len() { Duration::ZERO } else { REFRESH_EARLY };
                if latest.due(refresh).is_some_and(|due| due <= now + early) {
                    let _ = pl.copies.send(Arc::clone(&latest.text));
                    latest.step += 1;
                    // Copies that fell behind (a busy worker) are not sent in a burst.
                    while latest.due(refresh).is_some_and(|due| due <= now) {
                        latest.step += 1;
                    }
                }
            }
        }
    }

    /// The link to `peer` carries traffic again after a drop-out: the latest update of each
    /// register goes again as a copy at once, and its copies start over, so the peer need not
    /// wait for SCTP to retransmit what it missed (its timer has backed off meanwhile).
    pub(crate) fn recovered(&mut self, peer: &DeviceId) {
        let Some(pl) = self.by_peer.get_mut(peer) else { return };
        let now = Instant::now();
        for latest in pl.latest.iter_mut().flatten() {
            let _ = pl.copies.send(Arc::clone(&latest.text));
            latest.sent = now;
            latest.step = 0;
        }
    }

    /// Forgets the link to `peer` and closes it once its queue is sent.
    pub(crate) fn close(&mut self, peer: &DeviceId) {
        if let Some(pl) = self.remove(peer) {
            // A writer that has ended has closed the link already.
            let _ = pl.send.send(Outgoing::Close);
            self.closing.retain(|w| !w.is_finished());
            self.closing.push(pl.writer);
        }
    }

    /// The peers with a link.
    pub(crate) fn peers(&self) -> impl Iterator<Item = &DeviceId> {
        self.by_peer.keys()
    }

    /// Forgets the link to `peer` (it closed by itself).
    pub(crate) fn forget(&mut self, peer: &DeviceId) {
        self.remove(peer);
    }

    /// Counts one message of `len` bytes from `peer` against the flood limits (`limit`
    /// messages and `byte_limit` bytes a second); past either the link is cut off at once,
    /// whatever is queued (everyone else is untouched).
    pub(crate) fn count(
        &mut self,
        peer: &DeviceId,
        limit: u32,
        byte_limit: u64,
        len: usize,
    ) -> Traffic {
        let Some(pl) = self.by_peer.get_mut(peer) else { return Traffic::Ok };
        if pl.window_start.elapsed() >= Duration::from_secs(1) {
            pl.window_start = Instant::now();
            pl.in_window = 0;
            pl.bytes_in_window = 0;
        }
        pl.in_window += 1;
        pl.bytes_in_window = pl.bytes_in_window.saturating_add(len as u64);
        if pl.in_window <= limit && pl.bytes_in_window <= byte_limit {
            return Traffic::Ok;
        }
        if let Some(pl) = self.remove(peer) {
            tokio::spawn(async move { pl.link.close().await });
        }
        Traffic::Flood
    }

    /// Closes the link to `peer` abruptly, as the network would; its `Closed` event follows.
    #[cfg(feature = "test-support")]
    pub(crate) fn drop_link(&self, peer: &DeviceId) {
        if let Some(pl) = self.by_peer.get(peer) {
            let link = pl.link.clone();
            tokio::spawn(async move { link.close().await });
        }
    }

    /// Closes every link abruptly; their `Closed` events follow.
    #[cfg(feature = "test-support")]
    pub(crate) fn drop_all(&self) {
        for peer in self.by_peer.keys() {
            self.drop_link(peer);
        }
    }

    /// Closes every link in parallel, each after its last queued message, and waits (up to
    /// 2 s) until they are closed (webrtc keeps an unclosed connection's task alive).
    pub(crate) async fn close_all(&mut self) {
        self.peers.clear();
        let mut writers: Vec<_> = self
            .by_peer
            .drain()
            .map(|(_, pl)| {
                let _ = pl.send.send(Outgoing::Close);
                pl.writer
            })
            .collect();
        writers.append(&mut self.closing);
        let all = async {
            for w in writers {
                // A writer that panicked has nothing left to close.
                let _ = w.await;
            }
        };
        if tokio::time::timeout(Duration::from_secs(2), all).await.is_err() {
            tracing::warn!("some links did not close within 2 s; stopping anyway");
        }
    }

    fn remove(&mut self, peer: &DeviceId) -> Option<PeerLink> {
        let pl = self.by_peer.remove(peer)?;
        self.peers.remove(&pl.generation);
        Some(pl)
    }
}

pub(crate) use crate::rtc::wait_open;

/// The peer's first text message and the device id it claims (its HELLO); `None` if that is
/// no device id ([`DeviceId::is_valid`]).
pub(crate) async fn first_text(
    events: &mut mpsc::UnboundedReceiver<LinkEvent>,
    timeout: Duration,
) -> Option<(DeviceId, String)> {
    let r = tokio::time::timeout(timeout, async {
        loop {
            match events.recv().await {
                // The link is bound to the id the peer claims: it must be a device id, so it
                // can be shown and logged as it is.
                Some(LinkEvent::Text(t)) => {
                    return maestral_protocol::decode(t.as_bytes())
                        .ok()
                        .filter(|e| DeviceId::is_valid(e.sender_id.as_str()))
                        .map(|e| (e.sender_id, t));
                }
                Some(LinkEvent::Closed) | None => return None,
                Some(_) => {}
            }
        }
    })
    .await;
    r.ok().flatten()
}

/// Who a [`dial`] calls, for its messages and its checks.
pub(crate) struct Callee<'a> {
    /// The listener to `POST /v1/join` to.
    pub(crate) host: std::net::SocketAddr,
    /// The certificate fingerprint the answer must carry (the join code's, or the one pinned
    /// at pairing): no one else on the LAN can sit in the middle.
    pub(crate) fingerprint: &'a str,
    /// "the conductor's device", "the paired device".
    pub(crate) who: &'static str,
}

/// A Follower's join and a Solo call-back alike: an offer (with `cert`, or a fresh one), the
/// request `body` made for it, `POST /v1/join`, the answer's fingerprint checked against the
/// callee's, then the channel opened.
pub(crate) async fn dial(
    cfg: &RtcConfig,
    cert: Option<&DtlsCert>,
    callee: Callee<'_>,
    body: impl FnOnce(String) -> JoinRequestBody,
    timeout: Duration,
) -> Result<(Link, mpsc::UnboundedReceiver<LinkEvent>), JoinFailure> {
    let who = callee.who;
    let (link, offer, mut events) = Link::offer(cfg, cert)
        .await
        .map_err(|e| JoinFailure::Other(format!("could not prepare a connection: {e}")))?;
    let request = body(offer);
    let answer = match post_join(callee.host, &request, timeout).await {
        Ok(a) => a,
        Err(e) => {
            link.close().await;
            return Err(match e {
                // The callee's word only with its proof; anyone else's refusal is a failed try.
                JoinError::Refused(r, Some(proof))
                    if crate::signaling::proof::verify(callee.fingerprint, r, &request, &proof) =>
                {
                    JoinFailure::Refused(r)
                }
                JoinError::Refused(r, _) => JoinFailure::Unproven(r),
                JoinError::Rejected(r) => JoinFailure::Refused(r),
                other => JoinFailure::Other(other.to_string()),
            });
        }
    };
    let genuine =
        sha256_fingerprint(&answer).is_some_and(|fp| fingerprints_match(&fp, callee.fingerprint));
    if !genuine {
        link.close().await;
        return Err(JoinFailure::Forged);
    }
    if let Err(e) = link.accept_answer(&answer).await {
        link.close().await;
        return Err(JoinFailure::Other(format!("{who}'s answer did not work: {e}")));
    }
    if !wait_open(&mut events, timeout).await {
        link.close().await;
        return Err(JoinFailure::Other(format!(
            "the connection to {who} did not open — check the network"
        )));
    }
    Ok((link, events))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_follower_takes_copies_only_from_the_master_it_joined_and_only_while_joined() {
        use maestral_protocol::{SessionId, SessionToken};
        use maestral_sync::{Engine, EngineConfig, LinkSignal, LocalAction, Output, Role};
        let engine = |id: &str, role| {
            let rng = Box::new(<rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(7));
            Engine::new(EngineConfig::new(DeviceId::new(id)), role, rng)
        };
        let (m, f) = (DeviceId::new("M"), DeviceId::new("F"));
        let (mut master, mut follower) = (engine("M", Role::Master), engine("F", Role::Follower));
        let (id, token) = (SessionId::new("S"), SessionToken::new("tok"));
        let start =
            LocalAction::StartSession { session_id: Some(id.clone()), token: Some(token.clone()) };
        master.handle_local(0, start).expect("a session starts");
        follower
            .handle_local(0, LocalAction::Join { master: m.clone(), session_id: id, token })
            .expect("join");
        assert!(!takes_copies(&follower, &m), "not joined yet: a copy now may be ignored");
        master.handle_link(1, &f, LinkSignal::Up);
        follower.handle_link(1, &m, LinkSignal::Up);
        assert!(!takes_copies(&follower, &m), "the link is up, the join not yet accepted");
        // Messages both ways until both are quiet.
        fn pass(from: &mut Engine, sender: &DeviceId, to: &mut Engine) {
            let mut texts = Vec::new();
            while let Some(out) = from.poll_output() {
                if let Output::Transmit { data, .. } = out {
                    texts.push(data);
                }
            }
            for t in texts {
                let _ = to.handle_message(2, sender, t.as_bytes());
            }
        }
        for _ in 0..4 {
            pass(&mut master, &m, &mut follower);
            pass(&mut follower, &f, &mut master);
        }
        assert!(takes_copies(&follower, &m), "joined: the Master's updates are taken");
        assert!(!takes_copies(&follower, &f), "only from its Master");
        assert!(!takes_copies(&master, &f), "a Master takes no copies");
        follower.handle_local(3, LocalAction::Leave).expect("leave");
        assert!(!takes_copies(&follower, &m), "left: no longer");
    }

    fn after(latest: &Latest, refresh: bool) -> Option<u64> {
        latest.due(refresh).map(|at| at.duration_since(latest.sent).as_millis() as u64)
    }

    #[test]
    fn only_the_last_update_of_a_register_to_a_peer_is_copied_in_one_pass() {
        use maestral_sync::Output;
        let send = |to: &str, text: &str, register| Output::Transmit {
            to: DeviceId::new(to),
            data: Arc::from(text),
            register,
        };
        let outputs = vec![
            send("A", "page 1", Some(Register::Page)),
            send("B", "page 1", Some(Register::Page)),
            send("A", "song", Some(Register::Song)),
            send("A", "hello", None),
            send("A", "page 2", Some(Register::Page)),
        ];
        // A's page 1 is superseded by its page 2; B's page 1, A's song and page 2 are the last.
        assert_eq!(last_updates(&outputs), vec![1, 2, 4]);
        assert!(last_updates(&[send("A", "hello", None)]).is_empty());
    }

    #[test]
    fn copies_end_on_the_copy_channel_and_go_on_each_second_on_the_side_path() {
        let mut latest = Latest { text: "x".into(), sent: Instant::now(), step: 0 };
        let mut plain = Vec::new();
        let mut side = Vec::new();
        for step in 0..7 {
            latest.step = step;
            plain.push(after(&latest, false));
            side.push(after(&latest, true));
        }
        assert_eq!(plain, [Some(40), Some(150), Some(350), Some(700), None, None, None]);
        let side: Vec<u64> = side.into_iter().flatten().collect();
        assert_eq!(side, [40, 150, 350, 700, 1700, 2700, 3700]);
    }
}
