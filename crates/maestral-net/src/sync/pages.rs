//! Page images for browser Followers on the Master's listener: the session's token is checked
//! here (in constant time, against the running session's), and the app renders.

use std::sync::{Arc, Mutex, Weak};

use maestral_protocol::SessionToken;

use crate::signaling::page::{PageFuture, PageOutcome, PageRequest, PageSource};

/// What renders a score page as an image for a browser Follower: the app (PDFium). Answers
/// [`PageOutcome::Image`], [`PageOutcome::NotFound`] or [`PageOutcome::Unavailable`].
pub trait PageImages: Send + Sync + 'static {
    /// Page `page` (0-based) of `song`, `width` pixels wide (already clamped).
    fn render(&self, song: &str, page: u32, width: u32) -> PageFuture;
}

/// The app's renderer as the sync configuration holds it.
#[derive(Clone)]
pub struct PageRenderer(pub Arc<dyn PageImages>);

impl std::fmt::Debug for PageRenderer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PageRenderer")
    }
}

/// The Master's [`PageSource`]: renders only for a request carrying the running session's token.
pub(crate) struct MasterPages {
    /// The running session and its token (`None`: none runs), as the locate responder reads it.
    pub beacon: Weak<Mutex<Option<(String, String, std::net::SocketAddr)>>>,
    pub images: PageRenderer,
}

impl PageSource for MasterPages {
    fn page(&self, request: PageRequest) -> PageFuture {
        let running = self.beacon.upgrade().and_then(|b| b.lock().ok().and_then(|b| b.clone()));
        let outcome = match running {
            None => Some(PageOutcome::SessionEnded),
            Some((_, token, _))
                if SessionToken::new(token.as_str())
                    != SessionToken::new(request.token.as_str()) =>
            {
                Some(PageOutcome::InvalidToken)
            }
            Some(_) => None,
        };
        match outcome {
            Some(refused) => Box::pin(async move { refused }),
            None => self.images.0.render(&request.song, request.page, request.width),
        }
    }
}
