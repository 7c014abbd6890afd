//! Choir signaling over the LAN: the Master's HTTP listener for `POST /v1/join` (and for a
//! browser Follower, its page and page images) and the Follower's client for it (`docs/protocol.md`
//! §6).
//!
//! The listener knows nothing of WebRTC or of sessions: it enforces the transport rules (body
//! size, JSON shape, the rate limit on rejected attempts, status codes, JSON answers) and hands
//! each well-formed request to a [`JoinHandler`] that the sync thread provides. The handler
//! checks the session and the token (in constant time) and applies the offer; it also keeps
//! answering [`JoinOutcome::SessionEnded`] for an ended session until another one starts.
//!
//! Modules: `wire` (the request body and the refusals, as both ends see them), `server` (the
//! listener), `client` (the Follower's request), `proof` (the Master's signed refusals), `page`
//! (the browser Follower's page and the page images it shows).

mod client;
pub mod page;
pub mod proof;
mod server;
mod wire;

pub use client::{JoinError, post_join};
pub use server::{
    ChannelHandler, JoinFuture, JoinHandler, PendingJoin, RateLimiter, SignalingConfig,
    SignalingServer, channel_handler, looks_like_offer,
};
pub use wire::{JoinOutcome, JoinRequestBody, RejectReason};

/// The path of the join request.
pub const JOIN_PATH: &str = "/v1/join";

/// Largest request body the listener reads (and largest answer body the client reads): 64 KiB.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
