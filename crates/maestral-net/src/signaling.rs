//! Choir signaling over the LAN: the Master's HTTP listener for `POST /v1/join` and the
//! Follower's client for it (PROTOCOL_V1.md, "Choir signaling").
//!
//! The listener knows nothing of WebRTC or of sessions: it enforces the transport rules (body
//! size, JSON shape, the rate limit on rejected attempts, status codes, JSON answers) and hands
//! each well-formed request to a [`JoinHandler`] that the sync thread provides. The handler
//! checks the session and the token (in constant time) and applies the offer; it also keeps
//! answering [`JoinOutcome::SessionEnded`] for an ended session until another one starts.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Extension, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Bytes;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use serde::{Deserialize, Serialize};
use thiserror::Error;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc, oneshot, watch};
use tokio::task::{JoinHandle, JoinSet};

/// The path of the join request.
pub const JOIN_PATH: &str = "/v1/join";

/// Largest request body the listener reads (and largest answer body the client reads): 64 KiB.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The body of `POST /v1/join`: the Follower's offer with the session id and token from the join
/// code, and the Follower's Device ID the link will be bound to.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinRequestBody {
    /// The session id from the join code.
    pub session_id: String,
    /// The session token from the join code (a secret).
    pub token: String,
    /// The Follower's Device ID.
    pub device_id: String,
    /// The Follower's complete SDP offer (ICE gathering finished).
    pub offer: String,
}

// The token is a credential: `{:?}` of a request must not put it in a log.
impl fmt::Debug for JoinRequestBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinRequestBody")
            .field("session_id", &self.session_id)
            .field("token", &"<redacted>")
            .field("device_id", &self.device_id)
            .field("offer", &format_args!("<{} bytes of SDP>", self.offer.len()))
            .finish()
    }
}

/// The handler's decision on one join request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JoinOutcome {
    /// Accepted: the Master's complete SDP answer (`200 {"answer": …}`).
    Answer(String),
    /// Wrong token or unknown session (`403 invalid_token`).
    InvalidToken,
    /// The session has ended (`403 session_ended`).
    SessionEnded,
    /// The offer could not be applied (`400 bad_request`).
    BadRequest,
    /// The sync thread cannot decide now (gone, or too slow):
    /// `503 {"reason": "unavailable"}`, which the Follower treats as a reason to retry later.
    /// Not one of the protocol's refusals; it does not count toward the rate limit.
    Unavailable,
}

/// A boxed future as [`JoinHandler::join`] returns it.
pub type JoinFuture = Pin<Box<dyn Future<Output = JoinOutcome> + Send + 'static>>;

/// What the sync thread gives the listener: decides one well-formed join request.
///
/// Implemented for any `Fn(JoinRequestBody) -> impl Future<Output = JoinOutcome>` closure, and
/// by [`ChannelHandler`], which forwards requests over an mpsc channel.
pub trait JoinHandler: Send + Sync + 'static {
    /// Checks the session and token (in constant time), applies the offer and returns the answer
    /// or the reason to refuse.
    fn join(&self, request: JoinRequestBody) -> JoinFuture;
}

impl<F, Fut> JoinHandler for F
where
    F: Fn(JoinRequestBody) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = JoinOutcome> + Send + 'static,
{
    fn join(&self, request: JoinRequestBody) -> JoinFuture {
        Box::pin(self(request))
    }
}

/// One join request waiting for the sync thread's decision (see [`channel_handler`]).
#[derive(Debug)]
pub struct PendingJoin {
    /// The request.
    pub request: JoinRequestBody,
    /// Where the decision goes. Dropping it unanswered makes the listener answer
    /// `503 {"reason": "unavailable"}`.
    pub reply: oneshot::Sender<JoinOutcome>,
}

/// A [`JoinHandler`] that forwards each request over an mpsc channel, for a sync thread that
/// prefers to receive requests rather than be called.
#[derive(Debug, Clone)]
pub struct ChannelHandler {
    tx: mpsc::Sender<PendingJoin>,
}

/// A [`ChannelHandler`] and the receiver of its requests. `capacity` bounds requests waiting for
/// the sync thread; past it, requests wait in the listener (each under the handler timeout).
pub fn channel_handler(capacity: usize) -> (ChannelHandler, mpsc::Receiver<PendingJoin>) {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    (ChannelHandler { tx }, rx)
}

impl JoinHandler for ChannelHandler {
    fn join(&self, request: JoinRequestBody) -> JoinFuture {
        let tx = self.tx.clone();
        Box::pin(async move {
            let (reply, answer) = oneshot::channel();
            if tx.send(PendingJoin { request, reply }).await.is_err() {
                return JoinOutcome::Unavailable;
            }
            answer.await.unwrap_or(JoinOutcome::Unavailable)
        })
    }
}

/// Limits of the listener. `Default` is the protocol's: 64 KiB bodies, 10 answers of 403 per
/// minute per address.
#[derive(Debug, Clone)]
pub struct SignalingConfig {
    /// Largest request body read; larger ones get `413 too_large`.
    pub max_body_bytes: usize,
    /// Answers of 403 one address may get within `rate_window` before it gets 429.
    pub max_rejections: usize,
    /// The sliding window of the rate limit.
    pub rate_window: Duration,
    /// How long a client may take to send its request head (slow clients hold a connection).
    pub header_read_timeout: Duration,
    /// How long a client may take to send its body.
    pub body_read_timeout: Duration,
    /// How long the handler may take; past it the client gets `503 unavailable`.
    pub handler_timeout: Duration,
    /// Connections served at once; more are closed on accept.
    pub max_connections: usize,
}

impl Default for SignalingConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: MAX_BODY_BYTES,
            max_rejections: 10,
            rate_window: Duration::from_secs(60),
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(10),
            // Applying an offer gathers ICE candidates; on a LAN with host candidates only this
            // takes well under a second, so 30 s means the sync thread is stuck.
            handler_timeout: Duration::from_secs(30),
            max_connections: 256,
        }
    }
}

/// Counts answers of 403 per client address in a sliding window, so that a device guessing
/// tokens gets `429 too_many_attempts` past the limit. Time is a parameter, for tests.
#[derive(Debug)]
pub struct RateLimiter {
    max: usize,
    window: Duration,
    rejections: Mutex<HashMap<IpAddr, VecDeque<Instant>>>,
}

/// Addresses tracked before stale entries are swept, bounding memory under a flood.
const RATE_LIMITER_SWEEP_AT: usize = 1024;

impl RateLimiter {
    /// A limiter allowing `max` rejections per address within `window`.
    pub fn new(max: usize, window: Duration) -> Self {
        Self { max, window, rejections: Mutex::new(HashMap::new()) }
    }

    /// Whether `ip` already had `max` rejections within the window ending at `now`.
    pub fn is_limited(&self, ip: IpAddr, now: Instant) -> bool {
        let mut map = self.lock();
        let Some(times) = map.get_mut(&ip.to_canonical()) else {
            return false;
        };
        Self::expire(times, now, self.window);
        times.len() >= self.max
    }

    /// Records one answer of 403 to `ip` at `now`.
    pub fn record_rejection(&self, ip: IpAddr, now: Instant) {
        let (max, window) = (self.max, self.window);
        let mut map = self.lock();
        if map.len() >= RATE_LIMITER_SWEEP_AT {
            map.retain(|_, times| {
                Self::expire(times, now, window);
                !times.is_empty()
            });
        }
        let times = map.entry(ip.to_canonical()).or_default();
        Self::expire(times, now, window);
        times.push_back(now);
        // Only the newest `max` matter for the decision.
        while times.len() > max.max(1) {
            times.pop_front();
        }
    }

    fn expire(times: &mut VecDeque<Instant>, now: Instant, window: Duration) {
        while times.front().is_some_and(|&t| now.saturating_duration_since(t) >= window) {
            times.pop_front();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, VecDeque<Instant>>> {
        // A panic elsewhere while holding the lock leaves a map that is still consistent.
        self.rejections.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The Master's signaling listener. Dropping it stops accepting as well; [`Self::shutdown`]
/// also waits for requests in flight (briefly).
#[derive(Debug)]
pub struct SignalingServer {
    local_addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

struct Shared {
    handler: Box<dyn JoinHandler>,
    config: SignalingConfig,
    limiter: RateLimiter,
}

#[derive(Clone, Copy)]
struct PeerAddr(SocketAddr);

impl SignalingServer {
    /// Binds the listener on `addr` (port 0 picks a free port) with the protocol's limits and
    /// starts serving on the current tokio runtime.
    pub async fn bind(addr: SocketAddr, handler: impl JoinHandler) -> io::Result<Self> {
        Self::bind_with(addr, handler, SignalingConfig::default()).await
    }

    /// [`Self::bind`] with explicit limits.
    pub async fn bind_with(
        addr: SocketAddr,
        handler: impl JoinHandler,
        config: SignalingConfig,
    ) -> io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let local_addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            handler: Box::new(handler),
            limiter: RateLimiter::new(config.max_rejections, config.rate_window),
            config,
        });
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(accept_loop(listener, shared, stopped));
        Ok(Self { local_addr, stop, task })
    }

    /// The address the listener is bound to (the port to put in the join code).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting, lets requests in flight finish (up to a few seconds) and returns.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// How long requests in flight may take to finish after shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut stopped: watch::Receiver<bool>,
) {
    let router = router(shared.clone());
    let slots = Arc::new(Semaphore::new(shared.config.max_connections.max(1)));
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            // A dropped sender (the server value dropped) counts as a stop too.
            _ = stopped.changed() => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    // Over the limit: closing at once is cheaper than queueing.
                    let Ok(slot) = slots.clone().try_acquire_owned() else { continue };
                    let router = router.clone();
                    let config = shared.config.clone();
                    let stopped = stopped.clone();
                    connections.spawn(async move {
                        serve_connection(stream, peer, router, &config, stopped).await;
                        drop(slot);
                    });
                }
                // Out of file descriptors and the like: back off instead of spinning.
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            },
        }
    }
    drop(listener);
    let drain = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(SHUTDOWN_GRACE, drain).await.is_err() {
        connections.abort_all();
    }
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    config: &SignalingConfig,
    mut stopped: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let service = TowerToHyperService::new(router.layer(Extension(PeerAddr(peer))));
    let mut builder = hyper::server::conn::http1::Builder::new();
    // One request per connection, as a join is one request: no idle keep-alive connection
    // holds one of the slots.
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(config.header_read_timeout)
        .keep_alive(false);
    let connection = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    tokio::select! {
        // Errors here are the client's (garbage bytes, a reset): nothing to do but close.
        _ = connection.as_mut() => {}
        _ = stopped.changed() => {
            connection.as_mut().graceful_shutdown();
            let _ = connection.await;
        }
    }
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route(JOIN_PATH, post(join_route))
        .fallback(|| async { reason(StatusCode::NOT_FOUND, "not_found") })
        .method_not_allowed_fallback(|| async {
            reason(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed")
        })
        .with_state(shared)
}

/// A JSON answer `{"reason": …}`: every answer of the listener is JSON, errors included.
fn reason(status: StatusCode, reason: &str) -> Response {
    json(status, serde_json::json!({ "reason": reason }))
}

fn json(status: StatusCode, value: serde_json::Value) -> Response {
    let mut response = (status, value.to_string()).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

async fn join_route(
    State(shared): State<Arc<Shared>>,
    Extension(PeerAddr(peer)): Extension<PeerAddr>,
    request: Request,
) -> Response {
    let ip = peer.ip();
    let config = &shared.config;
    // Checked before reading anything, so a client past the limit costs us almost nothing.
    if shared.limiter.is_limited(ip, Instant::now()) {
        return reason(StatusCode::TOO_MANY_REQUESTS, "too_many_attempts");
    }
    // A declared length over the limit is refused without reading the body; a chunked body is
    // capped while it is read.
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > config.max_body_bytes as u64) {
        return reason(StatusCode::PAYLOAD_TOO_LARGE, "too_large");
    }
    let body = Limited::new(request.into_body(), config.max_body_bytes);
    let bytes = match tokio::time::timeout(config.body_read_timeout, body.collect()).await {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => {
            return reason(StatusCode::PAYLOAD_TOO_LARGE, "too_large");
        }
        // A body cut short or too slow is not a well-formed request.
        Ok(Err(_)) | Err(_) => return reason(StatusCode::BAD_REQUEST, "bad_request"),
    };
    // The body is parsed whatever the Content-Type says (or if it is absent), as the protocol
    // requires; axum's `Json` extractor would insist on the header.
    let Ok(body) = serde_json::from_slice::<JoinRequestBody>(&bytes) else {
        return reason(StatusCode::BAD_REQUEST, "bad_request");
    };
    if body.device_id.is_empty() || !looks_like_offer(&body.offer) {
        return reason(StatusCode::BAD_REQUEST, "bad_request");
    }
    let outcome =
        match tokio::time::timeout(config.handler_timeout, shared.handler.join(body)).await {
            Ok(outcome) => outcome,
            Err(_) => JoinOutcome::Unavailable,
        };
    match outcome {
        JoinOutcome::Answer(answer) => {
            json(StatusCode::OK, serde_json::json!({ "answer": answer }))
        }
        JoinOutcome::InvalidToken => {
            shared.limiter.record_rejection(ip, Instant::now());
            reason(StatusCode::FORBIDDEN, "invalid_token")
        }
        JoinOutcome::SessionEnded => {
            shared.limiter.record_rejection(ip, Instant::now());
            reason(StatusCode::FORBIDDEN, "session_ended")
        }
        JoinOutcome::BadRequest => reason(StatusCode::BAD_REQUEST, "bad_request"),
        JoinOutcome::Unavailable => reason(StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
    }
}

/// A cheap shape check before the handler sees the offer: an SDP (`v=` first, an `m=` section,
/// `a=` attributes) whose DTLS role, if stated, is the offerer's `actpass` (RFC 8842): an answer
/// pasted in place of an offer says `active` or `passive`. The WebRTC stack parses it for real.
pub fn looks_like_offer(sdp: &str) -> bool {
    let mut lines = sdp.lines().map(|l| l.trim_end_matches('\r')).filter(|l| !l.is_empty());
    if !lines.next().is_some_and(|l| l.starts_with("v=")) {
        return false;
    }
    let (mut media, mut attributes) = (false, false);
    let mut setups = Vec::new();
    for line in lines {
        media |= line.starts_with("m=");
        attributes |= line.starts_with("a=");
        if let Some(role) = line.strip_prefix("a=setup:") {
            setups.push(role.trim());
        }
    }
    media && attributes && setups.iter().all(|r| r.eq_ignore_ascii_case("actpass"))
}

/// Why the Master refused a join (the `reason` of its answer, or its status).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectReason {
    /// `403 invalid_token`.
    InvalidToken,
    /// `403 session_ended`.
    SessionEnded,
    /// `429 too_many_attempts`.
    TooManyAttempts,
    /// `400 bad_request`.
    BadRequest,
    /// `413 too_large`.
    TooLarge,
    /// `503 unavailable`: the Master is busy or its sync thread is stuck; worth retrying.
    Unavailable,
}

impl RejectReason {
    /// The protocol's string for this reason.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidToken => "invalid_token",
            Self::SessionEnded => "session_ended",
            Self::TooManyAttempts => "too_many_attempts",
            Self::BadRequest => "bad_request",
            Self::TooLarge => "too_large",
            Self::Unavailable => "unavailable",
        }
    }
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::InvalidToken => {
                "the conductor's device did not accept this join code — scan the QR code on its screen again"
            }
            Self::SessionEnded => {
                "the conductor has ended this session — scan the new QR code when a session starts"
            }
            Self::TooManyAttempts => {
                "too many wrong join codes were tried from this device — wait a minute, then scan the QR code again"
            }
            Self::BadRequest => {
                "the conductor's device could not understand this device's request — update Maestral on both devices"
            }
            Self::TooLarge => {
                "this device's request was too large for the conductor's device — update Maestral on both devices"
            }
            Self::Unavailable => {
                "the conductor's device is busy and could not answer — Maestral will try again"
            }
        })
    }
}

/// Why [`post_join`] got no answer SDP.
#[derive(Debug, Error)]
pub enum JoinError {
    /// The Master answered with a refusal.
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
    }
    let reason = || serde_json::from_slice::<Reason>(bytes).ok().map(|r| r.reason);
    match status {
        StatusCode::OK => match serde_json::from_slice::<Answer>(bytes) {
            Ok(a) if !a.answer.trim().is_empty() => Ok(a.answer),
            _ => Err(JoinError::BadResponse("an answer without SDP".into())),
        },
        StatusCode::FORBIDDEN => match reason().as_deref() {
            Some("invalid_token") => Err(JoinError::Rejected(RejectReason::InvalidToken)),
            Some("session_ended") => Err(JoinError::Rejected(RejectReason::SessionEnded)),
            other => Err(JoinError::BadResponse(format!("403 with reason {other:?}"))),
        },
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
