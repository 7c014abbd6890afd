//! One peer connection and its `maestral-sync` channel: set-up with complete SDP, sending,
//! the ordered events, and closing that delivers what was sent.

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::BytesMut;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use webrtc::data_channel::{DataChannel, DataChannelEvent, RTCDataChannelMessage};
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionEventHandler, RTCIceConnectionState, RTCIceGatheringState,
    RTCPeerConnectionState, RTCSessionDescription,
};

use super::sdp::Sdp;
use super::stream::StreamChannel;
use super::{CHANNEL_LABEL, DtlsCert, MAX_MESSAGE_SIZE, RtcConfig, RtcError, webrtc_error};
use maestral_protocol::STREAM_CHANNEL_LABEL;

/// How long [`Link::close`] waits for the peer to acknowledge messages already sent.
const FLUSH_TIMEOUT: Duration = Duration::from_millis(500);

/// How long a closing link waits for the channel's already-received messages to be handed out
/// before it reports `Closed` anyway.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(1);

/// What happens on a [`Link`], in order (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkEvent {
    /// The channel is open and [`Link::send_text`] works. Comes once, before any message.
    Open,
    /// A text message (protocol JSON, unchecked).
    Text(String),
    /// A text message on the copy channel (`maestral-copy`, see [`Link::send_copy`]): protocol
    /// JSON, unchecked, out of order with everything else, maybe a duplicate or stale. Comes
    /// only between `Open` and `Closed`; one over [`MAX_MESSAGE_SIZE`] or not text comes as
    /// `Binary`.
    Copy(String),
    /// A binary message, a text message that is not UTF-8, or one over [`MAX_MESSAGE_SIZE`]
    /// (not read at all), of this many bytes: bad input on `maestral-sync`, to be dropped.
    Binary(usize),
    /// The peer has gone quiet (ICE disconnected). Sends still queue.
    Degraded,
    /// Traffic flows again after [`LinkEvent::Degraded`].
    Recovered,
    /// The link is over: closed by either side, failed, or its channel closed. Last event, once.
    Closed,
}

/// One peer connection and its `maestral-sync` channel. Clones share the link.
///
/// Created inside a tokio runtime, whose tasks then drive it. End it with
/// [`close`](Self::close), which delivers what was sent first; dropping the last clone also
/// closes it, in the background and without that wait. A link is never left running unclosed:
/// webrtc keeps a dropped connection's task alive until it is closed.
#[derive(Debug, Clone)]
pub struct Link {
    inner: Arc<LinkInner>,
}

/// Owned by the `Link` clones only (the webrtc handler and tasks hold `Shared`), so its drop
/// means the application let go of the link.
struct LinkInner {
    shared: Arc<Shared>,
}

impl fmt::Debug for LinkInner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.shared.lock();
        f.debug_struct("Link")
            .field("opened", &state.opened)
            .field("degraded", &state.degraded)
            .field("closing", &state.closing)
            .field("closed", &state.events.is_none())
            .finish()
    }
}

impl Drop for LinkInner {
    fn drop(&mut self) {
        if let Some(closing) = self.shared.begin_close() {
            self.shared.finish();
            if let Some(pc) = closing.pc {
                // If the runtime is gone the task is dropped, and the connection with it.
                drop(self.shared.runtime.spawn(async move {
                    let _ = pc.close().await;
                }));
            }
        }
    }
}

/// State shared by the link, its webrtc event handler and its channel task.
///
/// Reference cycles (connection → handler → `Shared` → connection / channel) are broken by
/// [`Shared::begin_close`] and [`Shared::finish`], which every path to `Closed` goes through.
struct Shared {
    state: Mutex<State>,
    runtime: tokio::runtime::Handle,
}

struct State {
    /// `None` once `Closed` has been sent.
    events: Option<Sink>,
    opened: bool,
    degraded: bool,
    /// Set when closing starts: no more sends, no more link-state events.
    closing: bool,
    pc: Option<Arc<dyn PeerConnection>>,
    dc: Option<Arc<dyn DataChannel>>,
    /// The copy channel (`maestral-copy`), made with the connection on both sides.
    copy: Option<Arc<dyn DataChannel>>,
    /// The side path for copies (datagrams outside SCTP), where a socket could be bound.
    side: Option<Arc<side::Side>>,
    /// The task reading the channel's events.
    pump: Option<JoinHandle<()>>,
    /// Where stream channels the peer opens go ([`Link::accept_streams`]); without it they
    /// are refused (closed).
    streams: Option<mpsc::UnboundedSender<StreamChannel>>,
}

/// Where a link's events go: the receiver it was created with, or (once redirected) a channel
/// shared by many links, tagged with this link's number.
enum Sink {
    Own(mpsc::UnboundedSender<LinkEvent>),
    Tagged(u64, mpsc::UnboundedSender<(u64, LinkEvent)>),
}

impl Sink {
    fn send(&self, event: LinkEvent) {
        // A dropped receiver means nobody listens; the link still runs until closed.
        let _ = match self {
            Sink::Own(tx) => tx.send(event).map_err(drop),
            Sink::Tagged(tag, tx) => tx.send((*tag, event)).map_err(drop),
        };
    }
}

/// What [`Shared::begin_close`] hands to the one who closes.
struct Closing {
    pc: Option<Arc<dyn PeerConnection>>,
    pump: Option<JoinHandle<()>>,
    /// The channel, when the peer is reachable and may still be owed sent messages.
    flush: Option<Arc<dyn DataChannel>>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sends under the lock, so events keep the order in which their causes were handled.
    fn emit(state: &State, event: LinkEvent) {
        if let Some(events) = &state.events {
            events.send(event);
        }
    }

    fn opened(&self) {
        let mut state = self.lock();
        if !state.opened && !state.closing {
            self.open(&mut state);
        }
    }

    /// Marks the link open, says so, and announces the side path to the peer.
    fn open(&self, state: &mut State) {
        state.opened = true;
        Self::emit(state, LinkEvent::Open);
        if let Some(side) = state.side.clone() {
            drop(self.runtime.spawn(async move { side.say_hello().await }));
        }
    }

    fn message(&self, message: RTCDataChannelMessage) {
        let mut state = self.lock();
        if !state.opened {
            // webrtc delivers the open before any message; should it not, open first.
            if state.closing {
                return;
            }
            self.open(&mut state);
        }
        Self::emit(&state, read_text(&message).map_or_else(LinkEvent::Binary, LinkEvent::Text));
    }

    fn connection_state(self: &Arc<Self>, connection: RTCPeerConnectionState) {
        match connection {
            RTCPeerConnectionState::Disconnected => {
                let mut state = self.lock();
                if state.opened && !state.degraded && !state.closing {
                    state.degraded = true;
                    Self::emit(&state, LinkEvent::Degraded);
                }
            }
            RTCPeerConnectionState::Connected => {
                let mut state = self.lock();
                if state.degraded && !state.closing {
                    state.degraded = false;
                    Self::emit(&state, LinkEvent::Recovered);
                }
            }
            RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed => self.fail(),
            _ => {}
        }
    }

    /// The connection is beyond repair: close it, off the webrtc driver (whose callback this is,
    /// and which must keep running for the close to complete).
    fn fail(self: &Arc<Self>) {
        if !self.lock().closing {
            drop(self.runtime.spawn(close_link(Arc::clone(self), false)));
        }
    }

    /// Starts closing: no more sends or link-state events. `None` if closing had already
    /// started; otherwise what the caller must close, drain and flush.
    fn begin_close(&self) -> Option<Closing> {
        let mut state = self.lock();
        if state.closing {
            return None;
        }
        state.closing = true;
        let flush = if state.opened && !state.degraded { state.dc.clone() } else { None };
        Some(Closing { pc: state.pc.take(), pump: state.pump.take(), flush })
    }

    /// Sends `Closed` (once) and ends the event stream.
    fn finish(&self) {
        let mut state = self.lock();
        state.closing = true;
        state.dc = None;
        state.copy = None;
        state.side = None;
        state.streams = None;
        if let Some(events) = state.events.take() {
            events.send(LinkEvent::Closed);
        }
    }

    /// Takes the channel and starts reading it, unless the link is closing or has one already.
    fn attach_channel(self: &Arc<Self>, dc: Arc<dyn DataChannel>) -> bool {
        let mut state = self.lock();
        if state.closing || state.dc.is_some() {
            return false;
        }
        state.dc = Some(Arc::clone(&dc));
        state.pump = Some(self.runtime.spawn(pump(Arc::clone(self), dc)));
        true
    }

    /// The channel, if sending is allowed now.
    fn sendable_channel(&self) -> Result<Arc<dyn DataChannel>, RtcError> {
        self.sendable(|state| &state.dc)
    }

    /// The copy channel, if sending is allowed now (as for the protocol channel).
    fn sendable_copy(&self) -> Result<Arc<dyn DataChannel>, RtcError> {
        self.sendable(|state| &state.copy)
    }

    fn sendable(
        &self,
        which: impl FnOnce(&State) -> &Option<Arc<dyn DataChannel>>,
    ) -> Result<Arc<dyn DataChannel>, RtcError> {
        let state = self.lock();
        if state.closing {
            return Err(RtcError::Closed);
        }
        if !state.opened {
            return Err(RtcError::NotOpen);
        }
        which(&state).clone().ok_or(RtcError::NotOpen)
    }

    fn peer_connection(&self) -> Result<Arc<dyn PeerConnection>, RtcError> {
        let state = self.lock();
        if state.closing {
            return Err(RtcError::Closed);
        }
        state.pc.clone().ok_or(RtcError::Closed)
    }
}

/// The text of a message, or (not text, not UTF-8, or over the limit) its length. Over the
/// limit it is dropped unread, before any copy or parse.
fn read_text(message: &RTCDataChannelMessage) -> Result<String, usize> {
    let len = message.data.len();
    if !message.is_string || len > MAX_MESSAGE_SIZE {
        return Err(len);
    }
    String::from_utf8(message.data.to_vec()).map_err(|_| len)
}

/// Closes the connection (first letting the peer acknowledge what was sent, if `flush` and the
/// link is healthy), lets the channel task hand out what was already received, then sends
/// `Closed`. Returns at once if another close is under way.
async fn close_link(shared: Arc<Shared>, flush: bool) {
    let Some(closing) = shared.begin_close() else {
        return;
    };
    let Closing { pc, pump, flush: channel } = closing;
    if let Some(dc) = channel.filter(|_| flush) {
        // Closing the connection aborts the SCTP association, and a peer handling the ABORT
        // in the same pass as our last DATA reports the close first and drops the data. So
        // first let the peer acknowledge what was sent ("send, then close" must deliver).
        let deadline = tokio::time::Instant::now() + FLUSH_TIMEOUT;
        while matches!(dc.outstanding_bytes().await, Ok(n) if n > 0)
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    if let Some(pc) = pc {
        // Sends SCTP ABORT and DTLS close_notify before stopping, so the peer sees the close
        // at once; then ends the channel's event stream, which ends `pump`.
        let _ = pc.close().await;
    }
    if let Some(pump) = pump {
        let _ = tokio::time::timeout(DRAIN_TIMEOUT, pump).await;
    }
    shared.finish();
}

/// Reads the channel's events until it closes, then closes the link.
async fn pump(shared: Arc<Shared>, dc: Arc<dyn DataChannel>) {
    while let Some(event) = dc.poll().await {
        match event {
            DataChannelEvent::OnOpen => shared.opened(),
            DataChannelEvent::OnMessage(message) => shared.message(message),
            DataChannelEvent::OnClose => break,
            _ => {}
        }
    }
    drop(dc);
    // Closed by the peer, or the stream ended because the connection closed: in both cases
    // every received message has been handed out.
    let closing = shared.begin_close();
    shared.finish();
    // The peer is gone or has closed: nothing to flush. `closing.pump` is this very task.
    if let Some(Closing { pc: Some(pc), .. }) = closing {
        let _ = pc.close().await;
    }
}

/// The webrtc callbacks. They run on the connection's driver task, so each only records and
/// returns.
struct Handler {
    shared: Arc<Shared>,
    gathered: watch::Sender<bool>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete {
            self.gathered.send_replace(true);
        }
    }

    async fn on_ice_connection_state_change(&self, state: RTCIceConnectionState) {
        // Degraded/Recovered follow the connection state; this only makes sure a failed ICE
        // transport ends the link even if the aggregate state lags.
        if matches!(state, RTCIceConnectionState::Failed | RTCIceConnectionState::Closed) {
            self.shared.fail();
        }
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        self.shared.connection_state(state);
    }

    async fn on_data_channel(&self, dc: Arc<dyn DataChannel>) {
        let label = dc.label().await.unwrap_or_default();
        if label == STREAM_CHANNEL_LABEL {
            let taken = {
                let state = self.shared.lock();
                let streams = state.streams.as_ref().filter(|_| !state.closing);
                streams.is_some_and(|tx| tx.send(StreamChannel::new(Arc::clone(&dc))).is_ok())
            };
            if !taken {
                // A stream this side never offered: refused.
                let _ = dc.close().await;
            }
            return;
        }
        if label != CHANNEL_LABEL || !self.shared.attach_channel(Arc::clone(&dc)) {
            // Not ours to carry: refuse it rather than let its events pile up.
            let _ = dc.close().await;
        }
    }
}

impl Link {
    /// Creates a connection with the `maestral-sync` channel and returns its complete offer SDP.
    /// Pass the other side's answer to [`accept_answer`](Self::accept_answer).
    ///
    /// `cert` is the DTLS certificate to use; `None` generates one for this connection.
    pub async fn offer(
        cfg: &RtcConfig,
        cert: Option<&DtlsCert>,
    ) -> Result<(Link, String, mpsc::UnboundedReceiver<LinkEvent>), RtcError> {
        let (link, events, gathered) = setup::build(cfg, cert, Role::Offerer).await?;
        let pc = link.inner.shared.peer_connection()?;
        let dc = pc.create_data_channel(CHANNEL_LABEL, None).await.map_err(webrtc_error)?;
        if !link.inner.shared.attach_channel(dc) {
            return Err(RtcError::Closed);
        }
        let offer = pc.create_offer(None).await.map_err(webrtc_error)?;
        pc.set_local_description(offer).await.map_err(webrtc_error)?;
        let sdp = complete_local_sdp(&*pc, gathered, cfg.bind_ip).await?;
        Ok((link, sdp, events))
    }

    /// Answers `offer_sdp` (from [`Link::offer`] on the other device) and returns the complete
    /// answer SDP. The channel arrives from the offerer; [`LinkEvent::Open`] says when.
    ///
    /// `cert` is the DTLS certificate to use (a Choir Master passes its session certificate);
    /// `None` generates one for this connection.
    pub async fn answer(
        cfg: &RtcConfig,
        cert: Option<&DtlsCert>,
        offer_sdp: &str,
    ) -> Result<(Link, String, mpsc::UnboundedReceiver<LinkEvent>), RtcError> {
        // Check the input before any socket is bound.
        let offer = check_offer(offer_sdp, cfg.bind_ip)?;

        let (link, events, gathered) = setup::build(cfg, cert, Role::Answerer).await?;
        let pc = link.inner.shared.peer_connection()?;
        pc.set_remote_description(offer).await.map_err(|e| RtcError::InvalidSdp(e.to_string()))?;
        let answer = pc.create_answer(None).await.map_err(webrtc_error)?;
        pc.set_local_description(answer).await.map_err(webrtc_error)?;
        let sdp = complete_local_sdp(&*pc, gathered, cfg.bind_ip).await?;
        Ok((link, sdp, events))
    }

    /// Applies the answer to this link's offer (offerer side only, once). Check the answer's
    /// fingerprint first where one is expected ([`sha256_fingerprint`](super::sha256_fingerprint)).
    pub async fn accept_answer(&self, answer_sdp: &str) -> Result<(), RtcError> {
        if Sdp::new(answer_sdp).any_setup_actpass() {
            return Err(RtcError::NotAnAnswer);
        }
        let answer = RTCSessionDescription::answer(answer_sdp.to_owned())
            .map_err(|e| RtcError::InvalidSdp(e.to_string()))?;
        let pc = self.inner.shared.peer_connection()?;
        pc.set_remote_description(answer).await.map_err(|e| RtcError::InvalidSdp(e.to_string()))?;
        let shared = Arc::clone(&self.inner.shared);
        drop(shared.runtime.spawn(poke_while_connecting(Arc::clone(&shared))));
        Ok(())
    }

    /// Sends one text message. Errors before [`LinkEvent::Open`] and once closing has begun.
    pub async fn send_text(&self, text: &str) -> Result<(), RtcError> {
        if text.len() > MAX_MESSAGE_SIZE {
            return Err(RtcError::TooLarge(text.len()));
        }
        let dc = self.inner.shared.sendable_channel()?;
        dc.send_text(text).await.map_err(webrtc_error)
    }

    /// Sends one binary message. Nothing in protocol V1 sends binary on `maestral-sync` (the
    /// receiver drops it as bad input); this exists for tests and tools that check exactly that.
    pub async fn send_binary(&self, bytes: &[u8]) -> Result<(), RtcError> {
        if bytes.len() > MAX_MESSAGE_SIZE {
            return Err(RtcError::TooLarge(bytes.len()));
        }
        let dc = self.inner.shared.sendable_channel()?;
        dc.send(BytesMut::from(bytes)).await.map_err(webrtc_error)
    }

    /// Opens a stream channel (`maestral-stream`) on this link's connection, for one score's
    /// bytes; [`StreamEvent::Open`](crate::rtc::StreamEvent::Open) says when it can send. The
    /// link must be open.
    pub async fn open_stream(&self) -> Result<StreamChannel, RtcError> {
        self.inner.shared.sendable_channel()?;
        let pc = self.inner.shared.peer_connection()?;
        let dc = pc.create_data_channel(STREAM_CHANNEL_LABEL, None).await.map_err(webrtc_error)?;
        Ok(StreamChannel::new(dc))
    }

    /// From now on, stream channels the peer opens on this link come on the returned
    /// receiver (a Master serving a score); before, and on a link never asked, they are closed
    /// at once. Asking again replaces the receiver. On a link that is closing the receiver
    /// ends at once.
    pub fn accept_streams(&self) -> mpsc::UnboundedReceiver<StreamChannel> {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut state = self.inner.shared.lock();
        if !state.closing {
            state.streams = Some(tx);
        }
        rx
    }

    /// From now on sends this link's events to `tx`, tagged with `tag`, instead of to the
    /// receiver it was created with, which ends once what was already queued on it is read
    /// (those events come before any on `tx`). Lets one task read many links without a
    /// forwarding task per link. Nothing changes once `Closed` was sent.
    pub(crate) fn redirect_events(&self, tag: u64, tx: mpsc::UnboundedSender<(u64, LinkEvent)>) {
        let mut state = self.inner.shared.lock();
        if state.events.is_some() {
            state.events = Some(Sink::Tagged(tag, tx));
        }
    }

    /// Closes the link: waits (up to 500 ms, and only while the link is healthy) for the peer to
    /// acknowledge the messages already sent, closes the connection (the peer learns at once,
    /// through SCTP ABORT and DTLS close_notify), then emits [`LinkEvent::Closed`] on this side's
    /// receiver. Idempotent; returns at once if a close is already under way.
    pub async fn close(&self) {
        close_link(Arc::clone(&self.inner.shared), true).await;
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Offerer,
    Answerer,
}

mod setup;
pub use setup::check_offer;
use setup::{complete_local_sdp, poke_while_connecting};

mod copy;

mod side;
pub(crate) use side::set_side_runtime;

#[cfg(test)]
mod tests;
