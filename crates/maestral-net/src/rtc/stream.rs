//! A stream channel (`maestral-stream`): a second DataChannel on a [`Link`](super::Link)'s
//! connection that carries one score's bytes, so a page turn on `maestral-sync` never waits
//! behind a score in the receiver's channel. The Follower that lacks the score opens it
//! ([`Link::open_stream`](super::Link::open_stream)); the Master takes it from
//! [`Link::accept_streams`](super::Link::accept_streams). Plain DataChannel messages only (text
//! requests, binary chunks), so a browser can take part.
//!
//! Flow control is the sender's: [`StreamChannel::outstanding`] says how much is still queued,
//! and [`StreamEvent::Low`] comes when that falls to the threshold set with
//! [`StreamChannel::set_low_threshold`] (a signal, not polling).

use std::fmt;
use std::sync::Arc;

use bytes::BytesMut;
use webrtc::data_channel::{DataChannel, DataChannelEvent};

use super::{MAX_MESSAGE_SIZE, RtcError, webrtc_error};

/// What happens on a [`StreamChannel`], in order; `Closed` last, once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamEvent {
    /// The channel can send.
    Open,
    /// A text message (a request or an answer, JSON, unchecked).
    Text(String),
    /// A binary message (a chunk).
    Binary(Vec<u8>),
    /// What is queued to send fell to the low threshold.
    Low,
    /// Closed by either side, or the connection went.
    Closed,
}

/// One stream channel. Clones share it; [`StreamChannel::next`] is for one reader at a time.
#[derive(Clone)]
pub struct StreamChannel {
    dc: Arc<dyn DataChannel>,
}

impl fmt::Debug for StreamChannel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamChannel").field("id", &self.dc.id()).finish()
    }
}

impl StreamChannel {
    pub(crate) fn new(dc: Arc<dyn DataChannel>) -> Self {
        StreamChannel { dc }
    }

    /// The next event; `Closed` once the channel is gone (and from then on).
    pub async fn next(&self) -> StreamEvent {
        loop {
            match self.dc.poll().await {
                None | Some(DataChannelEvent::OnClose) => return StreamEvent::Closed,
                Some(DataChannelEvent::OnOpen) => return StreamEvent::Open,
                Some(DataChannelEvent::OnBufferedAmountLow) => return StreamEvent::Low,
                Some(DataChannelEvent::OnMessage(m)) if m.is_string => {
                    return match String::from_utf8(m.data.to_vec()) {
                        Ok(text) => StreamEvent::Text(text),
                        Err(e) => StreamEvent::Binary(e.into_bytes()),
                    };
                }
                Some(DataChannelEvent::OnMessage(m)) => {
                    return StreamEvent::Binary(m.data.to_vec());
                }
                Some(_) => {}
            }
        }
    }

    pub async fn send_text(&self, text: &str) -> Result<(), RtcError> {
        if text.len() > MAX_MESSAGE_SIZE {
            return Err(RtcError::TooLarge(text.len()));
        }
        self.dc.send_text(text).await.map_err(webrtc_error)
    }

    pub async fn send_binary(&self, bytes: &[u8]) -> Result<(), RtcError> {
        if bytes.len() > MAX_MESSAGE_SIZE {
            return Err(RtcError::TooLarge(bytes.len()));
        }
        self.dc.send(BytesMut::from(bytes)).await.map_err(webrtc_error)
    }

    /// Bytes handed to the channel that the peer has not acknowledged yet.
    pub async fn outstanding(&self) -> Result<usize, RtcError> {
        self.dc.outstanding_bytes().await.map_err(webrtc_error)
    }

    /// [`StreamEvent::Low`] comes when the queued bytes fall from above `bytes` to it.
    pub async fn set_low_threshold(&self, bytes: u32) -> Result<(), RtcError> {
        self.dc.set_buffered_amount_low_threshold(bytes).await.map_err(webrtc_error)
    }

    /// Closes this channel only (the link stays up).
    pub async fn close(&self) {
        let _ = self.dc.close().await;
    }
}
