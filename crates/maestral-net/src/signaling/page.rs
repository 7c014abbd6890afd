//! What the listener serves a browser Follower besides `POST /v1/join`: the page itself (`GET /`
//! and the files it loads, bundled into the binary) and the score pages it shows, as images the
//! Master renders (`GET /v1/page`).
//!
//! An image request names the song, the page and the width in device pixels in its query, and
//! carries the session token in `Authorization: Bearer …`, never in the address (an address ends
//! up in logs and histories). The listener checks the form and clamps the width; the
//! [`PageSource`] the Master gives it checks the token and renders. Answers: `200` with the image
//! (`Cache-Control: no-store`: a streamed score is view-only and temporary), `403
//! {"reason": "invalid_token"|"session_ended"}`, `404 {"reason": "not_found"}` (no such song or
//! page), `400 {"reason": "bad_request"}`, `503 {"reason": "unavailable"}`.

use std::future::Future;
use std::pin::Pin;

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// The path of page images.
pub const PAGE_PATH: &str = "/v1/page";

/// The narrowest and widest image rendered, in pixels: a small phone at 1× up to a tablet at 2×.
pub const MIN_WIDTH: u32 = 160;
pub const MAX_WIDTH: u32 = 2560;

/// One page image asked for.
#[derive(Clone, PartialEq, Eq)]
pub struct PageRequest {
    /// The session token the request carried.
    pub token: String,
    pub song: String,
    /// 0-based.
    pub page: u32,
    /// In pixels, clamped to [`MIN_WIDTH`]..=[`MAX_WIDTH`] and rounded up to a multiple of 16
    /// (neighbouring widths share one render).
    pub width: u32,
}

impl std::fmt::Debug for PageRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PageRequest")
            .field("song", &self.song)
            .field("page", &self.page)
            .field("width", &self.width)
            .finish_non_exhaustive()
    }
}

/// An encoded page image (its bytes shared: a cached image is answered without a copy).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageImage {
    pub bytes: bytes::Bytes,
    /// `image/webp` or `image/png`.
    pub content_type: &'static str,
}

/// What became of a page request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PageOutcome {
    Image(PageImage),
    /// A wrong token (`403 invalid_token`).
    InvalidToken,
    /// No session runs (`403 session_ended`).
    SessionEnded,
    /// No such song or page (`404`).
    NotFound,
    /// The renderer failed or is gone (`503`).
    Unavailable,
}

/// A boxed future as [`PageSource::page`] returns it.
pub type PageFuture = Pin<Box<dyn Future<Output = PageOutcome> + Send + 'static>>;

/// Where page images come from: the Master checks the token and renders.
pub trait PageSource: Send + Sync + 'static {
    fn page(&self, request: PageRequest) -> PageFuture;
}

/// Where a renderer on a thread of its own sends its answer to one request.
#[derive(Debug)]
pub struct PageReply(tokio::sync::oneshot::Sender<PageOutcome>);

impl PageReply {
    pub fn send(self, outcome: PageOutcome) {
        let _ = self.0.send(outcome);
    }

    /// Whether nobody waits for the answer any more (the request timed out, or its connection
    /// closed): not worth rendering.
    pub fn is_closed(&self) -> bool {
        self.0.is_closed()
    }
}

/// A reply and the future that resolves to it ([`PageOutcome::Unavailable`] if the reply is
/// dropped unsent).
pub fn page_reply() -> (PageReply, PageFuture) {
    let (tx, rx) = tokio::sync::oneshot::channel();
    (PageReply(tx), Box::pin(async move { rx.await.unwrap_or(PageOutcome::Unavailable) }))
}

/// A width as asked for, clamped and rounded (see [`PageRequest::width`]).
pub fn clamp_width(asked: u32) -> u32 {
    asked.clamp(MIN_WIDTH, MAX_WIDTH).div_ceil(16) * 16
}

/// Reads `song`, `page` and `width` from a query string; `None` if one is missing or malformed.
pub fn parse_query(query: &str) -> Option<(String, u32, u32)> {
    let (mut song, mut page, mut width) = (None, None, None);
    for pair in query.split('&') {
        let (key, value) = pair.split_once('=')?;
        let value = percent_encoding::percent_decode_str(value).decode_utf8().ok()?;
        let slot = match key {
            "song" => &mut song,
            "page" => &mut page,
            "width" => &mut width,
            _ => continue,
        };
        if slot.replace(value.into_owned()).is_some() {
            return None;
        }
    }
    let song = song.filter(|s| !s.is_empty() && s.len() <= 256)?;
    Some((song, page?.parse().ok()?, clamp_width(width?.parse().ok()?)))
}

/// The token of an `Authorization: Bearer …` header.
pub(super) fn bearer(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim().to_owned()).filter(|t| !t.is_empty())
}

/// The answer for an image.
pub(super) fn image_response(image: PageImage) -> Response {
    let mut response = (StatusCode::OK, image.bytes).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(image.content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The browser Follower's files, bundled into the binary: path, type, contents.
const FILES: &[(&str, &str, &[u8])] = &[
    ("/", "text/html; charset=utf-8", include_bytes!("../../web/index.html")),
    ("/style.css", "text/css; charset=utf-8", include_bytes!("../../web/style.css")),
    ("/app.mjs", JS, include_bytes!("../../web/app.mjs")),
    // The protocol's rules (also run under node by the conformance driver).
    ("/follower.mjs", JS, include_bytes!("../../web/follower.mjs")),
    ("/core.mjs", JS, include_bytes!("../../web/core.mjs")),
    ("/envelope.mjs", JS, include_bytes!("../../web/envelope.mjs")),
    ("/actions.mjs", JS, include_bytes!("../../web/actions.mjs")),
    ("/json.mjs", JS, include_bytes!("../../web/json.mjs")),
    ("/position.mjs", JS, include_bytes!("../../web/position.mjs")),
    ("/resume.mjs", JS, include_bytes!("../../web/resume.mjs")),
    ("/heartbeat.mjs", JS, include_bytes!("../../web/heartbeat.mjs")),
    // Two seconds of black, looped while joined where the browser has no Wake Lock (made by
    // `web/make-wake-video.sh`).
    ("/wake.mp4", "video/mp4", include_bytes!("../../web/wake.mp4")),
    ("/wake.webm", "video/webm", include_bytes!("../../web/wake.webm")),
];

const JS: &str = "text/javascript; charset=utf-8";

/// The bundled file at `path`, if there is one.
pub(super) fn file(path: &str) -> Option<Response> {
    let (_, content_type, body) = FILES.iter().find(|(p, _, _)| *p == path)?;
    let mut response = (StatusCode::OK, body.to_vec()).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    // Nothing from elsewhere, no framing by other pages, and the address (whose fragment the page
    // reads and removes) never sent on.
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' blob: data:; media-src 'self' blob: data:; \
             object-src 'none'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Some(response)
}

/// Bytes of every bundled file together (the page's weight).
pub fn bundled_bytes() -> usize {
    FILES.iter().map(|(_, _, body)| body.len()).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_query_is_read_whole_or_not_at_all() {
        assert_eq!(parse_query("song=abc%20d&page=3&width=1080"), Some(("abc d".into(), 3, 1088)));
        assert_eq!(parse_query("width=99999&page=0&song=s&x=1"), Some(("s".into(), 0, MAX_WIDTH)));
        assert_eq!(parse_query("song=s&page=0&width=1"), Some(("s".into(), 0, MIN_WIDTH)));
        for bad in [
            "",
            "song=s&page=0",
            "song=&page=0&width=9",
            "song=s&page=-1&width=9",
            "song=s&page=0&width=9&page=1",
            "song=s&page=x&width=9",
            "song",
        ] {
            assert_eq!(parse_query(bad), None, "{bad}");
        }
        assert_eq!(parse_query(&format!("song={}&page=0&width=9", "s".repeat(300))), None);
    }

    #[test]
    fn the_token_comes_only_from_a_bearer_header() {
        let mut h = HeaderMap::new();
        assert_eq!(bearer(&h), None);
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer TOK"));
        assert_eq!(bearer(&h).as_deref(), Some("TOK"));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic TOK"));
        assert_eq!(bearer(&h), None);
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("bearer "));
        assert_eq!(bearer(&h), None);
    }
}
