//! The copy channel of a [`Link`](super::Link) (`maestral-copy`): unordered, never
//! retransmitted, negotiated out of band on a fixed stream id so both sides make it with the
//! connection and no open handshake can be lost. It carries copies of register updates, which
//! arrive without waiting for SCTP's retransmission timer (1 s at least in rtc-sctp 0.21.1,
//! doubling) under loss or after a drop-out.

use std::sync::Arc;

use maestral_protocol::{COPY_CHANNEL_ID, COPY_CHANNEL_LABEL};
use webrtc::data_channel::{DataChannel, DataChannelEvent, RTCDataChannelInit};
use webrtc::peer_connection::PeerConnection;

use super::{Link, LinkEvent, Shared, read_text};
use crate::rtc::{MAX_MESSAGE_SIZE, RtcError, webrtc_error};

/// Makes the copy channel on `pc` and starts reading it into `shared`'s events.
pub(super) async fn attach(shared: &Arc<Shared>, pc: &dyn PeerConnection) -> Result<(), RtcError> {
    let init = RTCDataChannelInit {
        ordered: false,
        max_retransmits: Some(0),
        negotiated: Some(COPY_CHANNEL_ID),
        ..Default::default()
    };
    let dc = pc.create_data_channel(COPY_CHANNEL_LABEL, Some(init)).await.map_err(webrtc_error)?;
    shared.lock().copy = Some(Arc::clone(&dc));
    // Ends when the connection closes (the channel's event stream ends with it).
    drop(shared.runtime.spawn(pump(Arc::clone(shared), dc)));
    Ok(())
}

async fn pump(shared: Arc<Shared>, dc: Arc<dyn DataChannel>) {
    while let Some(event) = dc.poll().await {
        match event {
            DataChannelEvent::OnMessage(message) => {
                let state = shared.lock();
                // Only between Open and Closed (a copy is never the first thing a link says).
                if state.opened && !state.closing {
                    let event = read_text(&message).map_or_else(LinkEvent::Binary, LinkEvent::Copy);
                    Shared::emit(&state, event);
                }
            }
            DataChannelEvent::OnClose => break,
            _ => {}
        }
    }
}

impl Link {
    /// Sends one copy of a register update (`maestral_protocol::Register`): as a datagram on
    /// the side path once the peer has announced its own (see `side.rs`), otherwise on the
    /// copy channel (`maestral-copy`). Either way unordered and never retransmitted, so it may
    /// be lost, come twice with the reliable original, or overtake it. Errors before
    /// [`LinkEvent::Open`] and once closing has begun.
    pub async fn send_copy(&self, text: &str) -> Result<(), RtcError> {
        if text.len() > MAX_MESSAGE_SIZE {
            return Err(RtcError::TooLarge(text.len()));
        }
        let dc = self.inner.shared.sendable_copy()?;
        let side = self.inner.shared.lock().side.clone();
        if let Some(side) = side
            && side.send(text).await
        {
            return Ok(());
        }
        dc.send_text(text).await.map_err(webrtc_error)
    }

    /// Sends one copy as a datagram on the side path at once, from the caller's thread (no task
    /// between): `false` if it did not go (no side path yet, not open, closing, too long, the
    /// socket's buffer full). A Master turning for 100 Followers sends every copy before any of
    /// the originals, whose DTLS and SCTP work would otherwise come first on a busy machine.
    pub fn send_copy_now(&self, text: &str) -> bool {
        if self.inner.shared.sendable_copy().is_err() {
            return false;
        }
        let side = self.inner.shared.lock().side.clone();
        side.is_some_and(|s| s.send_now(text))
    }

    /// Whether copies go as datagrams outside SCTP (the peer announced its side path): then a
    /// copy can go at once beside the original without waiting in the same queue.
    pub fn side_path_ready(&self) -> bool {
        self.inner.shared.lock().side.as_ref().is_some_and(|s| s.ready())
    }

    /// Where this side's copies are received as datagrams, if it has a side path.
    pub fn side_path_addr(&self) -> Option<std::net::SocketAddr> {
        self.inner.shared.lock().side.as_ref().map(|s| s.addr())
    }

    /// How many copies this side sent as datagrams on the side path.
    pub fn copies_by_datagram(&self) -> u64 {
        self.inner.shared.lock().side.as_ref().map_or(0, |s| s.sent())
    }
}
