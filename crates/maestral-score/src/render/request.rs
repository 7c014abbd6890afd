//! What is asked of the render thread: target sizes, fitting a page into one, requests and
//! their priority.

use std::fmt;

use crate::cache::PageKey;
use crate::error::ScoreError;
use crate::song::{PageSize, SongId};

/// The largest side, in pixels, a page is rendered at (the largest GPU texture most devices take).
pub const MAX_SIDE: u32 = 16_384;
/// The most pixels one page may have (256 MiB of RGBA); an 8K screen needs 33 million.
pub const MAX_PIXELS: u64 = 8192 * 8192;

/// A size in pixels: a target box to fit a page into, or a bitmap's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PixelSize {
    pub width: u32,
    pub height: u32,
}

impl PixelSize {
    pub const fn new(width: u32, height: u32) -> Self {
        PixelSize { width, height }
    }

    /// The size if each side is 1 to [`MAX_SIDE`], else [`ScoreError::BadSize`].
    pub fn validate(self) -> Result<Self, ScoreError> {
        let ok = |side: u32| (1..=MAX_SIDE).contains(&side);
        if ok(self.width) && ok(self.height) {
            Ok(self)
        } else {
            Err(ScoreError::BadSize { width: self.width, height: self.height })
        }
    }
}

impl fmt::Display for PixelSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}×{}", self.width, self.height)
    }
}

/// The bitmap size for a page fitted into `target`, keeping the page's aspect ratio: the page
/// fills the box's width or its height, whichever comes first.
pub fn fit_page(page: PageSize, target: PixelSize) -> Result<PixelSize, ScoreError> {
    target.validate()?;
    let usable = |v: f32| v.is_finite() && v > 0.0;
    // A page with no size has nothing to keep the aspect of: treat it as square.
    let (pw, ph) = if usable(page.width) && usable(page.height) {
        (f64::from(page.width), f64::from(page.height))
    } else {
        (1.0, 1.0)
    };
    let scale = (f64::from(target.width) / pw).min(f64::from(target.height) / ph);
    let side = |points: f64, limit: u32| ((points * scale).round() as u32).clamp(1, limit);
    let fitted = PixelSize::new(side(pw, target.width), side(ph, target.height));
    if u64::from(fitted.width) * u64::from(fitted.height) > MAX_PIXELS {
        return Err(ScoreError::BadSize { width: target.width, height: target.height });
    }
    Ok(fitted)
}

/// Which requests go first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Priority {
    /// On screen now: always served before any prefetch.
    Visible,
    /// Likely next (the next pages, the previous one): served when nothing visible waits.
    Prefetch,
}

/// One page wanted: `song`'s page `page` (0-based) fitted into `target`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RenderRequest {
    pub song: SongId,
    pub page: u32,
    pub target: PixelSize,
    pub priority: Priority,
}

impl RenderRequest {
    pub fn visible(song: SongId, page: u32, target: PixelSize) -> Self {
        RenderRequest { song, page, target, priority: Priority::Visible }
    }

    pub fn prefetch(song: SongId, page: u32, target: PixelSize) -> Self {
        RenderRequest { song, page, target, priority: Priority::Prefetch }
    }

    /// What identifies the result, whatever the priority.
    pub fn key(&self) -> PageKey {
        PageKey { song: self.song.clone(), page: self.page, target: self.target }
    }
}

/// The requests for showing `page`: it, visible; then the next two and the previous one.
pub fn wanted_around(song: &SongId, page: u32, target: PixelSize) -> Vec<RenderRequest> {
    let mut wanted = vec![
        RenderRequest::visible(song.clone(), page, target),
        RenderRequest::prefetch(song.clone(), page.saturating_add(1), target),
        RenderRequest::prefetch(song.clone(), page.saturating_add(2), target),
    ];
    if let Some(previous) = page.checked_sub(1) {
        wanted.push(RenderRequest::prefetch(song.clone(), previous, target));
    }
    wanted
}
