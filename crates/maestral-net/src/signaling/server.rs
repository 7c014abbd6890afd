//! The Master's listener: transport rules (body size, JSON shape, the rate limit on rejected
//! attempts, status codes, JSON answers), then the [`JoinHandler`] the sync thread provides.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Extension, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc, oneshot, watch};
use tokio::task::{JoinHandle, JoinSet};

use super::page::{self, PAGE_PATH, PageOutcome, PageSource};
use super::proof::RefusalProof;
use super::{JOIN_PATH, JoinOutcome, JoinRequestBody, MAX_BODY_BYTES};

/// A boxed future as [`JoinHandler::join`] returns it.
pub type JoinFuture = Pin<Box<dyn Future<Output = JoinOutcome> + Send + 'static>>;

/// What the sync thread gives the listener: decides one well-formed join request.
///
/// Implemented for any `Fn(JoinRequestBody) -> impl Future<Output = JoinOutcome>` closure, and
/// by [`ChannelHandler`], which forwards requests over an mpsc channel.
pub trait JoinHandler: Send + Sync + 'static {
    /// Checks the session and token (in constant time), applies the offer and returns the answer
    /// or the reason to refuse. `from`: the address the request came from.
    fn join(&self, from: IpAddr, request: JoinRequestBody) -> JoinFuture;
}

impl<F, Fut> JoinHandler for F
where
    F: Fn(JoinRequestBody) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = JoinOutcome> + Send + 'static,
{
    fn join(&self, _from: IpAddr, request: JoinRequestBody) -> JoinFuture {
        Box::pin(self(request))
    }
}

/// One join request waiting for the sync thread's decision (see [`channel_handler`]).
#[derive(Debug)]
pub struct PendingJoin {
    /// The request.
    pub request: JoinRequestBody,
    /// The address it came from.
    pub from: IpAddr,
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
    fn join(&self, from: IpAddr, request: JoinRequestBody) -> JoinFuture {
        let tx = self.tx.clone();
        Box::pin(async move {
            let (reply, answer) = oneshot::channel();
            if tx.send(PendingJoin { request, from: from.to_canonical(), reply }).await.is_err() {
                return JoinOutcome::Unavailable;
            }
            answer.await.unwrap_or(JoinOutcome::Unavailable)
        })
    }
}

/// Limits of the listener. `Default` is the protocol's: 64 KiB bodies, 10 refusals per minute
/// per address (403s, 400s, 413s and clients too slow to send their request all count), at
/// most 8 connections at once from one address, 2 s to send the request head and 3 s more for
/// the body (a join on a LAN sends both in milliseconds).
#[derive(Debug, Clone)]
pub struct SignalingConfig {
    /// Largest request body read; larger ones get `413 too_large`.
    pub max_body_bytes: usize,
    /// Refusals one address may get within `rate_window` before it gets 429: answers of 403,
    /// 400 and 413, and requests too slow to arrive.
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
    /// Connections served at once for one client address; more from it are closed on accept,
    /// so one host holding trickling sockets cannot take every slot.
    pub max_connections_per_address: usize,
    /// Whether loopback clients are exempt from `max_connections_per_address`: they run on the
    /// Master's own machine (every local test peer shares one address), and no device on the
    /// LAN can send from a loopback address. On by default.
    pub exempt_loopback: bool,
    /// Page image requests one address may make within `rate_window`; past it, `429
    /// too_many_requests` until the window frees up (loopback exempt as above). A phone asks
    /// for the page it shows and the two after it, at a turn or a song change.
    pub max_page_requests: usize,
}

impl Default for SignalingConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: MAX_BODY_BYTES,
            max_rejections: 10,
            rate_window: Duration::from_secs(60),
            header_read_timeout: Duration::from_secs(2),
            body_read_timeout: Duration::from_secs(3),
            // Applying an offer gathers ICE candidates; on a LAN with host candidates only this
            // takes well under a second, so 30 s means the sync thread is stuck.
            handler_timeout: Duration::from_secs(30),
            max_connections: 256,
            max_connections_per_address: 8,
            exempt_loopback: true,
            max_page_requests: 240,
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

    /// Records one refusal of `ip` at `now` unless `ip` is already limited, checked and
    /// recorded in one step: `false` means limited (the refusal becomes a `429`). Requests of
    /// one address that were in flight together are thus never all counted as under the limit.
    pub fn record_checked(&self, ip: IpAddr, now: Instant) -> bool {
        let mut map = self.lock();
        if let Some(times) = map.get_mut(&ip.to_canonical()) {
            Self::expire(times, now, self.window);
            if times.len() >= self.max {
                return false;
            }
        }
        Self::push(&mut map, ip, now, self.max, self.window);
        true
    }

    /// Records one refusal of `ip` at `now`.
    pub fn record_rejection(&self, ip: IpAddr, now: Instant) {
        let mut map = self.lock();
        Self::push(&mut map, ip, now, self.max, self.window);
    }

    fn push(
        map: &mut HashMap<IpAddr, VecDeque<Instant>>,
        ip: IpAddr,
        now: Instant,
        max: usize,
        window: Duration,
    ) {
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
    /// Page images for browser Followers (`None`: `GET /v1/page` is not found).
    pages: Option<Arc<dyn PageSource>>,
    config: SignalingConfig,
    limiter: RateLimiter,
    /// Page image requests per address ([`SignalingConfig::max_page_requests`]).
    page_rate: RateLimiter,
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
        Self::bind_serving(addr, handler, config, None).await
    }

    /// [`Self::bind_with`], also serving page images from `pages` (see [`super::page`]).
    pub async fn bind_serving(
        addr: SocketAddr,
        handler: impl JoinHandler,
        config: SignalingConfig,
        pages: Option<Arc<dyn PageSource>>,
    ) -> io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let local_addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            handler: Box::new(handler),
            pages,
            limiter: RateLimiter::new(config.max_rejections, config.rate_window),
            page_rate: RateLimiter::new(config.max_page_requests, config.rate_window),
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
/// Connections of addresses past their refusal limit answered at once (each `429`, within
/// [`REFUSAL_READ`] twice); more of them are closed on accept. They never take one of the
/// listener's `max_connections`: an address already refused cannot crowd out honest joins.
const REFUSAL_SLOTS: usize = 64;
/// How long a refused connection's request (and, after the answer, its close) is waited for.
const REFUSAL_READ: Duration = Duration::from_millis(200);
/// The most a request head (request line and headers) may hold; past it the answer is
/// `431`. A join's head is a few hundred bytes, a browser's page request about one KiB.
pub const MAX_HEAD_BYTES: usize = 8 * 1024;
/// The most a connection buffers of what it reads (hyper's default is ~400 KB).
const MAX_BUFFER_BYTES: usize = 16 * 1024;

async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut stopped: watch::Receiver<bool>,
) {
    let router = router(shared.clone());
    let slots = Arc::new(Semaphore::new(shared.config.max_connections.max(1)));
    let refusals = Arc::new(Semaphore::new(REFUSAL_SLOTS));
    let per_address = Arc::new(Mutex::new(HashMap::<IpAddr, usize>::new()));
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            // A dropped sender (the server value dropped) counts as a stop too.
            _ = stopped.changed() => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    // An address past its refusal limit is answered from here, outside the
                    // listener's slots (and closed at once when too many such answers run).
                    if shared.limiter.is_limited(peer.ip(), Instant::now()) {
                        if let Ok(permit) = refusals.clone().try_acquire_owned() {
                            connections.spawn(async move {
                                answer_limited(stream).await;
                                drop(permit);
                            });
                        }
                        continue;
                    }
                    // Over a limit: closing at once is cheaper than queueing.
                    let Some(own) = AddressSlot::take(&per_address, peer.ip(), &shared.config)
                    else {
                        continue;
                    };
                    let Ok(slot) = slots.clone().try_acquire_owned() else { continue };
                    let router = router.clone();
                    let shared = shared.clone();
                    let stopped = stopped.clone();
                    connections.spawn(async move {
                        serve_connection(stream, peer, router, &shared, stopped).await;
                        drop(slot);
                        drop(own);
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

/// `429 too_many_attempts` to a connection from an address past its refusal limit: its request
/// head is read first (a close with unread bytes would reset the connection before the client
/// read the answer), then whatever else it sends until it closes, [`REFUSAL_READ`] at most
/// each.
async fn answer_limited(mut stream: TcpStream) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let body = r#"{"reason":"too_many_attempts"}"#;
    let answer = format!(
        "HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let mut buf = [0u8; 4096];
    let mut head = Vec::new();
    let _ = tokio::time::timeout(REFUSAL_READ, async {
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < MAX_HEAD_BYTES {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    let _ = tokio::time::timeout(REFUSAL_READ, async {
        stream.write_all(answer.as_bytes()).await?;
        stream.shutdown().await
    })
    .await;
    let _ = tokio::time::timeout(REFUSAL_READ, async {
        while let Ok(n) = stream.read(&mut buf).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
}

/// One of the connections a client address holds; given back when dropped.
struct AddressSlot {
    ip: IpAddr,
    counts: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl AddressSlot {
    /// A slot for `ip`, or `None` when it holds `max_connections_per_address` already
    /// (loopback clients exempt, see [`SignalingConfig::exempt_loopback`]).
    fn take(
        counts: &Arc<Mutex<HashMap<IpAddr, usize>>>,
        ip: IpAddr,
        config: &SignalingConfig,
    ) -> Option<AddressSlot> {
        let ip = ip.to_canonical();
        let mut map = counts.lock().unwrap_or_else(|e| e.into_inner());
        let n = map.entry(ip).or_default();
        if *n >= config.max_connections_per_address.max(1)
            && !(config.exempt_loopback && ip.is_loopback())
        {
            return None;
        }
        *n += 1;
        Some(AddressSlot { ip, counts: counts.clone() })
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut map = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = map.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.ip);
            }
        }
    }
}

/// Whether the connection's request reached the route (one that never did was too slow, or
/// not HTTP: it counts as a refusal).
#[derive(Clone)]
struct Seen(Arc<std::sync::atomic::AtomicBool>);

impl Seen {
    /// The request reached its route.
    fn mark(&self) {
        self.0.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    shared: &Shared,
    mut stopped: watch::Receiver<bool>,
) {
    let config = &shared.config;
    let _ = stream.set_nodelay(true);
    let seen = Seen(Arc::new(std::sync::atomic::AtomicBool::new(false)));
    let started = Instant::now();
    let service = TowerToHyperService::new(
        router.layer(Extension(PeerAddr(peer))).layer(Extension(seen.clone())),
    );
    let mut builder = hyper::server::conn::http1::Builder::new();
    // One request per connection, as a join is one request: no idle keep-alive connection
    // holds one of the slots.
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(config.header_read_timeout)
        .max_header_size(MAX_HEAD_BYTES)
        .max_buf_size(MAX_BUFFER_BYTES)
        .keep_alive(false);
    let connection = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    tokio::select! {
        // Errors here are the client's (garbage bytes, a reset): nothing to do but close.
        _ = connection.as_mut() => {}
        _ = stopped.changed() => {
            connection.as_mut().graceful_shutdown();
            let _ = connection.await;
            return;
        }
    }
    // A connection held open without ever sending a request (a slowloris socket, or bytes
    // that are not HTTP) counts toward the address's limit, like a refusal.
    if !seen.0.load(std::sync::atomic::Ordering::SeqCst)
        && started.elapsed() >= config.header_read_timeout.min(Duration::from_millis(500))
    {
        shared.limiter.record_rejection(peer.ip(), Instant::now());
    }
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route(JOIN_PATH, post(join_route))
        .route(PAGE_PATH, get(page_route))
        .route("/", get(file_route))
        .route("/{file}", get(file_route))
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

/// A refusal with the Master's proof, when it has one: `{"reason", "cert", "sig"}`.
fn refused(status: StatusCode, why: &str, proof: Option<RefusalProof>) -> Response {
    match proof {
        Some(p) => json(status, serde_json::json!({ "reason": why, "cert": p.cert, "sig": p.sig })),
        None => reason(status, why),
    }
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
    Extension(seen): Extension<Seen>,
    request: Request,
) -> Response {
    seen.mark();
    let ip = peer.ip();
    let config = &shared.config;
    // Every refusal counts toward the address's limit, checked and recorded in one step.
    let refuse = |status: StatusCode, why: &str| refusal(&shared.limiter, ip, status, why, None);
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
        return refuse(StatusCode::PAYLOAD_TOO_LARGE, "too_large");
    }
    let body = Limited::new(request.into_body(), config.max_body_bytes);
    let bytes = match tokio::time::timeout(config.body_read_timeout, body.collect()).await {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => {
            return refuse(StatusCode::PAYLOAD_TOO_LARGE, "too_large");
        }
        // A body cut short or too slow is not a well-formed request.
        Ok(Err(_)) | Err(_) => return refuse(StatusCode::BAD_REQUEST, "bad_request"),
    };
    // The body is parsed whatever the Content-Type says (or if it is absent), as the protocol
    // requires; axum's `Json` extractor would insist on the header.
    let Ok(mut body) = serde_json::from_slice::<JoinRequestBody>(&bytes) else {
        return refuse(StatusCode::BAD_REQUEST, "bad_request");
    };
    if !maestral_protocol::DeviceId::is_valid(&body.device_id) || !looks_like_offer(&body.offer) {
        return refuse(StatusCode::BAD_REQUEST, "bad_request");
    }
    // Connectivity checks go to the address the request came from, and nowhere else.
    body.offer = crate::rtc::only_candidates_from(&body.offer, ip);
    let outcome =
        match tokio::time::timeout(config.handler_timeout, shared.handler.join(ip, body)).await {
            Ok(outcome) => outcome,
            Err(_) => JoinOutcome::Unavailable,
        };
    match outcome {
        JoinOutcome::Answer(answer) => {
            json(StatusCode::OK, serde_json::json!({ "answer": answer }))
        }
        JoinOutcome::InvalidToken(proof) => {
            refusal(&shared.limiter, ip, StatusCode::FORBIDDEN, "invalid_token", proof)
        }
        // Said of a session id whatever the token: no evidence of guessing, and a singer whose
        // phone slept through the end must not be locked out of the next session.
        JoinOutcome::SessionEnded(proof) => refused(StatusCode::FORBIDDEN, "session_ended", proof),
        JoinOutcome::DeviceInUse(proof) => {
            refusal(&shared.limiter, ip, StatusCode::FORBIDDEN, "device_in_use", proof)
        }
        JoinOutcome::BadRequest => refuse(StatusCode::BAD_REQUEST, "bad_request"),
        JoinOutcome::Unavailable => reason(StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
    }
}

/// A refusal of a request from `ip`, counted toward its limit: `429` once past it.
fn refusal(
    limiter: &RateLimiter,
    ip: IpAddr,
    status: StatusCode,
    why: &str,
    proof: Option<RefusalProof>,
) -> Response {
    if limiter.record_checked(ip, Instant::now()) {
        refused(status, why, proof)
    } else {
        reason(StatusCode::TOO_MANY_REQUESTS, "too_many_attempts")
    }
}

/// One of the browser Follower's bundled files.
async fn file_route(Extension(seen): Extension<Seen>, uri: Uri) -> Response {
    seen.mark();
    page::file(uri.path()).unwrap_or_else(|| reason(StatusCode::NOT_FOUND, "not_found"))
}

/// A page image for a browser Follower (see [`super::page`]).
async fn page_route(
    State(shared): State<Arc<Shared>>,
    Extension(PeerAddr(peer)): Extension<PeerAddr>,
    Extension(seen): Extension<Seen>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    seen.mark();
    let ip = peer.ip();
    if shared.limiter.is_limited(ip, Instant::now()) {
        return reason(StatusCode::TOO_MANY_REQUESTS, "too_many_attempts");
    }
    let refuse = |status: StatusCode, why: &str| refusal(&shared.limiter, ip, status, why, None);
    let Some(pages) = shared.pages.as_ref() else {
        return reason(StatusCode::NOT_FOUND, "not_found");
    };
    let exempt = shared.config.exempt_loopback && ip.to_canonical().is_loopback();
    if !exempt && !shared.page_rate.record_checked(ip, Instant::now()) {
        return reason(StatusCode::TOO_MANY_REQUESTS, "too_many_requests");
    }
    let Some(token) = page::bearer(&headers) else {
        return refuse(StatusCode::FORBIDDEN, "invalid_token");
    };
    let Some((song, page, width)) = page::parse_query(uri.query().unwrap_or_default()) else {
        return refuse(StatusCode::BAD_REQUEST, "bad_request");
    };
    let request = page::PageRequest { token, song, page, width };
    let outcome = tokio::time::timeout(shared.config.handler_timeout, pages.page(request)).await;
    match outcome.unwrap_or(PageOutcome::Unavailable) {
        PageOutcome::Image(image) => page::image_response(image),
        PageOutcome::InvalidToken => refuse(StatusCode::FORBIDDEN, "invalid_token"),
        PageOutcome::SessionEnded => reason(StatusCode::FORBIDDEN, "session_ended"),
        PageOutcome::NotFound => reason(StatusCode::NOT_FOUND, "not_found"),
        PageOutcome::Unavailable => reason(StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
    }
}

/// A cheap shape check before the handler sees the offer: an SDP (`v=` first, an `m=` section,
/// `a=` attributes) whose DTLS role, if stated, is the offerer's `actpass` (RFC 8842): an answer
/// pasted in place of an offer says `active` or `passive`. The WebRTC stack parses it for real.
pub fn looks_like_offer(sdp: &str) -> bool {
    crate::rtc::sdp::Sdp::new(sdp).looks_like_offer()
}
