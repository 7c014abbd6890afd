//! The Follower's side of `POST /v1/join`: send the offer, read the answer or the refusal.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use axum::http::{StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use thiserror::Error;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

use super::proof::RefusalProof;
use super::{JOIN_PATH, JoinRequestBody, MAX_BODY_BYTES, RejectReason};

/// Why [`post_join`] got no answer SDP.
#[derive(Debug, Error)]
pub enum JoinError {
    /// A `403`: `invalid_token`, `session_ended` or `device_in_use`, with the proof that came
    /// with it, if any. Only a proof checked against the join code's fingerprint makes it the
    /// Master's word ([`super::proof::verify`]).
    #[error("{0}")]
    Refused(RejectReason, Option<RefusalProof>),
    /// Refused for the request's shape or the listener's load (`400`, `413`, `429`, `503`).
    #[error("{0}")]
    Rejected(RejectReason),
    /// No connection to the Master's listener.
    #[error(
        "could not reach the conductor's device at {host} ({source}) — check that both devices are on the same network and that a session is running"
    )]
    Unreachable {
        /// The address from the join code.
        host: SocketAddr,
        /// What the operating system said.
        source: io::Error,
    },
    /// No full answer within the time limit.
    #[error("the conductor's device did not answer in time — check the network and try again")]
    Timeout,
    /// Something answered, but not as a Maestral Master does.
    #[error(
        "the conductor's device answered something unexpected ({0}) — check that both devices run the same Maestral version"
    )]
    BadResponse(String),
}

/// Posts a join request to the Master at `host` and returns its SDP answer. `timeout` bounds the
/// whole exchange (connect, send, answer).
pub async fn post_join(
    host: SocketAddr,
    body: &JoinRequestBody,
    timeout: Duration,
) -> Result<String, JoinError> {
    match tokio::time::timeout(timeout, post_join_inner(host, body)).await {
        Ok(result) => result,
        Err(_) => Err(JoinError::Timeout),
    }
}

async fn post_join_inner(host: SocketAddr, body: &JoinRequestBody) -> Result<String, JoinError> {
    let stream =
        TcpStream::connect(host).await.map_err(|source| JoinError::Unreachable { host, source })?;
    let _ = stream.set_nodelay(true);
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| JoinError::BadResponse(format!("HTTP handshake failed: {e}")))?;
    // The connection future moves the bytes; it ends when `sender` is dropped or on error.
    let driver = AbortOnDrop(tokio::spawn(connection));

    let json = serde_json::to_vec(body).map_err(|e| JoinError::BadResponse(e.to_string()))?;
    let request = hyper::Request::post(JOIN_PATH)
        .header(header::HOST, host.to_string())
        .header(header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(json)))
        .map_err(|e| JoinError::BadResponse(e.to_string()))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| JoinError::BadResponse(format!("the connection failed: {e}")))?;
    let status = response.status();
    let bytes = Limited::new(response.into_body(), MAX_BODY_BYTES)
        .collect()
        .await
        .map_err(|e| JoinError::BadResponse(format!("reading the answer failed: {e}")))?
        .to_bytes();
    drop(driver);
    interpret_answer(status, &bytes)
}

struct AbortOnDrop<T>(JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn interpret_answer(status: StatusCode, bytes: &[u8]) -> Result<String, JoinError> {
    #[derive(Deserialize)]
    struct Answer {
        answer: String,
    }
    #[derive(Deserialize)]
    struct Reason {
        reason: String,
        #[serde(flatten)]
        proof: Option<RefusalProof>,
    }
    let parsed = || serde_json::from_slice::<Reason>(bytes).ok();
    let reason = || parsed().map(|r| r.reason);
    match status {
        StatusCode::OK => match serde_json::from_slice::<Answer>(bytes) {
            Ok(a) if !a.answer.trim().is_empty() => Ok(a.answer),
            _ => Err(JoinError::BadResponse("an answer without SDP".into())),
        },
        StatusCode::FORBIDDEN => {
            let (why, proof) = parsed().map_or((None, None), |r| (Some(r.reason), r.proof));
            let refused = |r| Err(JoinError::Refused(r, proof.clone()));
            match why.as_deref() {
                Some("invalid_token") => refused(RejectReason::InvalidToken),
                Some("session_ended") => refused(RejectReason::SessionEnded),
                Some("device_in_use") => refused(RejectReason::DeviceInUse),
                other => Err(JoinError::BadResponse(format!("403 with reason {other:?}"))),
            }
        }
        // For these the status alone is unambiguous.
        StatusCode::BAD_REQUEST => Err(JoinError::Rejected(RejectReason::BadRequest)),
        StatusCode::PAYLOAD_TOO_LARGE => Err(JoinError::Rejected(RejectReason::TooLarge)),
        StatusCode::TOO_MANY_REQUESTS => Err(JoinError::Rejected(RejectReason::TooManyAttempts)),
        StatusCode::SERVICE_UNAVAILABLE => Err(JoinError::Rejected(RejectReason::Unavailable)),
        other => Err(JoinError::BadResponse(match reason() {
            Some(r) => format!("status {other} with reason {r:?}"),
            None => format!("status {other}"),
        })),
    }
}
