//! Bounded waits on a link's events: for its channel to open, or to close.

use std::time::Duration;

use tokio::sync::mpsc;

use super::LinkEvent;

/// Waits (at most `timeout`) for the channel to open: `false` if it closed first or the time
/// ran out. Messages cannot come before `Open` (the link's contract).
pub async fn wait_open(events: &mut mpsc::UnboundedReceiver<LinkEvent>, timeout: Duration) -> bool {
    let r = tokio::time::timeout(timeout, async {
        loop {
            match events.recv().await {
                Some(LinkEvent::Open) => return true,
                Some(LinkEvent::Closed) | None => return false,
                Some(_) => {}
            }
        }
    })
    .await;
    r.unwrap_or(false)
}

/// Waits (at most `timeout`) for the link to close, whatever comes before: `false` if the time
/// ran out first.
pub async fn wait_closed(
    events: &mut mpsc::UnboundedReceiver<LinkEvent>,
    timeout: Duration,
) -> bool {
    let r = tokio::time::timeout(timeout, async {
        loop {
            if let Some(LinkEvent::Closed) | None = events.recv().await {
                return true;
            }
        }
    })
    .await;
    r.unwrap_or(false)
}
