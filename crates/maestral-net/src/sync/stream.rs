//! Score streaming (docs/behaviour.md §8.3; docs/protocol.md §5): the Master serves the current
//! song's bytes to each Follower that asks (and those of the next piece of its set list, offered
//! ahead: §8.4), the Follower fetches what it lacks into memory, checks its SHA-256 and hands it
//! to the app. Never written to disk.
//!
//! # The transfer
//!
//! One `maestral-stream` DataChannel per stream (ordered, reliable), opened by the Follower on
//! its link to the Master after `STREAM_PREPARE`. On it:
//!
//! - Follower → Master, text: `{"song_id": str, "offset": u64}`, the bytes it still lacks (a
//!   stream cut by a drop-out resumes from `offset`, it does not start over);
//! - Master → Follower, binary: chunks of `[offset: u64 big-endian][up to 16 KiB of the file]`,
//!   in order from `offset` to the end;
//! - Master → Follower, text, instead: `{"error": "not_current" | "bad_request" |
//!   "too_many_streams" | "too_many_requests"}`, then the Master closes the channel (a peer has
//!   at most [`MAX_STREAMS_PER_PEER`] stream channels served at once, and is sent at most
//!   about [`MAX_SERVED_PER_DEVICE`] times the song's size in all). A stream whose peer reads nothing
//!   for [`UNREAD_TIMEOUT`] is closed.
//!
//! The Follower closes the channel once it has every byte. The Master keeps at most a share of
//! [`BUDGET`] queued per channel (the association's send queue is shared with `maestral-sync`,
//! so this bounds how long a page turn waits behind the score) and sends more when the
//! channel's buffered amount falls to half of it (its low-threshold signal). Each Follower has
//! its own connection and serving task and the same share: the Followers share the Master
//! fairly.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use maestral_protocol::{DeviceId, SongId};
use tokio::sync::mpsc;

use super::error::SyncError;
use super::worker::{Ctx, Internal};
use crate::rtc::{Link, StreamChannel, StreamEvent};

/// The file bytes in one chunk.
pub const CHUNK: usize = 16 * 1024;
/// At most this much is queued to all Followers together: each of the `n` streams running
/// keeps at most `BUDGET / n` queued (never less than [`MIN_WINDOW`]). A page turn waits
/// behind what is queued to its Follower, so the budget bounds that wait however many
/// Followers pull at once.
pub const BUDGET: usize = 512 * 1024;
/// The least one stream keeps queued: two chunks, so one is always on its way.
pub const MIN_WINDOW: usize = 2 * CHUNK;
/// The most one stream keeps queued: more overflows the receiver's UDP buffer on a fast link,
/// and a lost packet then costs SCTP a retransmission timeout (a page turn waits ~1 s).
pub const MAX_WINDOW: usize = 128 * 1024;
/// A stream that brings nothing for this long is dropped (and tried again): the default of
/// `SyncConfig::stream_stall`.
pub const STALL: Duration = Duration::from_secs(10);
/// The largest score streamed unless configured otherwise.
pub const DEFAULT_MAX_STREAM_BYTES: u64 = 200 * 1024 * 1024;
/// Stream channels served at once to one peer: a Follower opens one per song it fetches, and
/// one more briefly after a retry. Past it a channel is refused (`too_many_streams`).
pub const MAX_STREAMS_PER_PEER: usize = 4;
/// How long a refused peer gets to read the refusal before its channel is closed.
const REFUSAL_WAIT: Duration = Duration::from_secs(2);
/// Extra channels of one link being refused at once ([`refuse_extra`], a task each); past it an
/// extra channel is closed unanswered, in line: a peer opening thousands costs no task each.
const MAX_REFUSING_PER_PEER: usize = 4;
/// What one device may be sent of a song served (the current one, or the next one offered
/// ahead), in all its streams together, as a multiple of the song's size: a Follower asks once,
/// and after a drop-out only for what it lacks (only what was sent counts). Once it has had this
/// much, its requests for that song are refused (`too_many_requests`) while it is served.
pub const MAX_SERVED_PER_DEVICE: u64 = 4;
/// A stream whose window stays full this long (its peer reads nothing) is closed: it no longer
/// shares [`BUDGET`] with the streams that are read.
pub const UNREAD_TIMEOUT: Duration = Duration::from_secs(10);
/// A sender paused on a full window looks again after this long without a `Low` signal.
const LOW_MISSED: Duration = Duration::from_millis(50);
/// A progress report goes to the app at most every this many bytes.
const PROGRESS_STEP: usize = 256 * 1024;

#[derive(serde::Serialize, serde::Deserialize)]
struct Request {
    song_id: SongId,
    offset: u64,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Refusal {
    error: String,
}

// ---- the Master's side ------------------------------------------------------------------------

/// The song the Master serves now, with its bytes (the app read them).
#[derive(Clone)]
pub(crate) struct Served {
    pub(crate) song: SongId,
    pub(crate) bytes: Arc<[u8]>,
}

/// The songs served: the current one, and the one the Master will show next (offered ahead
/// with `"next": true`), each with its bytes.
#[derive(Clone, Default)]
struct Songs {
    current: Option<Served>,
    next: Option<Served>,
    /// The last few songs served before (a request for one crossed a song change: refused,
    /// but nothing to tell the conductor).
    retired: std::collections::VecDeque<SongId>,
}

/// How many songs served before are remembered in [`Songs::retired`].
const RETIRED: usize = 4;

impl Songs {
    fn find(&self, song: &SongId) -> Option<&Served> {
        [&self.current, &self.next].into_iter().flatten().find(|s| s.song == *song)
    }

    /// Sets the current song (`next`: the next one) to `served`; the song it replaces is
    /// remembered as served before.
    fn put(&mut self, next: bool, served: Option<Served>) {
        let slot = if next { &mut self.next } else { &mut self.current };
        let old = std::mem::replace(slot, served);
        if let Some(old) = old.filter(|old| self.find(&old.song).is_none()) {
            self.retired.retain(|s| *s != old.song);
            if self.retired.len() == RETIRED {
                self.retired.pop_front();
            }
            self.retired.push_back(old.song);
        }
    }
}

/// What every serving task reads: the songs served now, with their bytes; how many streams are
/// sending now (they share [`BUDGET`]); and how much of each song served each device has been
/// sent ([`MAX_SERVED_PER_DEVICE`]).
#[derive(Clone, Default)]
pub(crate) struct ServedSlot(
    Arc<Mutex<Songs>>,
    Arc<AtomicUsize>,
    Arc<Mutex<std::collections::HashMap<(DeviceId, SongId), u64>>>,
);

impl ServedSlot {
    fn songs(&self) -> std::sync::MutexGuard<'_, Songs> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Each song its own allowance, kept while the song is served.
    fn forget_allowances(&self, songs: &Songs) {
        let mut sent = self.2.lock().unwrap_or_else(PoisonError::into_inner);
        sent.retain(|(_, song), _| songs.find(song).is_some());
    }

    /// Nothing is served any more (the session ended): a stream running stops at its next
    /// chunk (`not_current`).
    pub(crate) fn clear(&self) {
        let mut songs = self.songs();
        songs.put(false, None);
        songs.put(true, None);
        self.forget_allowances(&songs);
    }

    /// Whether `peer` may ask for more of `song`, of `size` bytes: what it was sent of it so
    /// far is under its allowance.
    fn may_ask(&self, peer: &DeviceId, song: &SongId, size: u64) -> bool {
        let sent = self.2.lock().unwrap_or_else(PoisonError::into_inner);
        let had = sent.get(&(peer.clone(), song.clone())).copied().unwrap_or(0);
        had < size.max(1).saturating_mul(MAX_SERVED_PER_DEVICE)
    }

    /// `bytes` more of `song` went to `peer`.
    fn charge(&self, peer: &DeviceId, song: &SongId, bytes: u64) {
        let mut sent = self.2.lock().unwrap_or_else(PoisonError::into_inner);
        let total = sent.entry((peer.clone(), song.clone())).or_default();
        *total = total.saturating_add(bytes);
    }

    /// The song `song` with its bytes, if it is served (current or next).
    fn get(&self, song: &SongId) -> Option<Served> {
        self.songs().find(song).cloned()
    }

    /// Whether `song` is still served.
    fn serves(&self, song: &SongId) -> bool {
        self.songs().find(song).is_some()
    }

    /// Whether `song` was served before (and is not now).
    fn served_before(&self, song: &SongId) -> bool {
        self.songs().retired.contains(song)
    }

    /// What one stream may keep queued now.
    fn window(&self) -> usize {
        (BUDGET / self.1.load(Ordering::Relaxed).max(1)).clamp(MIN_WINDOW, MAX_WINDOW)
    }

    /// The current song is `song`: the next song, offered ahead, becomes the current one when it
    /// is `song` (its streams go on); another song's bytes are no longer served (a request for
    /// it is refused, a stream of it stops).
    pub(crate) fn keep_only(&self, song: Option<&SongId>) {
        let mut songs = self.songs();
        if songs.current.as_ref().map(|s| &s.song) == song {
            return;
        }
        let promoted = songs.next.take_if(|next| Some(&next.song) == song);
        songs.put(false, promoted);
        self.forget_allowances(&songs);
    }

    /// The app holds the current song's bytes: served from now on, and offered by the engine
    /// (`STREAM_PREPARE`). A score over the limit is refused, once, here.
    pub(crate) fn offer(
        &self,
        ctx: &mut Ctx,
        song_id: SongId,
        bytes: Arc<[u8]>,
        title: Option<String>,
    ) {
        let size = bytes.len() as u64;
        if size > ctx.cfg.max_stream_bytes {
            let mut songs = self.songs();
            songs.put(false, None);
            self.forget_allowances(&songs);
            drop(songs);
            return ctx.error(SyncError::StreamTooLarge { size, max: ctx.cfg.max_stream_bytes });
        }
        {
            let mut songs = self.songs();
            if songs.current.as_ref().map(|s| &s.song) != Some(&song_id) {
                songs.put(false, Some(Served { song: song_id.clone(), bytes }));
                self.forget_allowances(&songs);
            }
        }
        ctx.local(maestral_sync::LocalAction::OfferStream { song_id, size_bytes: size, title });
    }

    /// The app holds the bytes of the song it will show next (`None`: there is none now):
    /// served from now on beside the current one, and offered by the engine ahead of the song
    /// change (`STREAM_PREPARE` with `"next": true`). A score over the limit is not offered;
    /// the app hears why once, when it becomes the current song.
    pub(crate) fn offer_next(
        &self,
        ctx: &mut Ctx,
        next: Option<(SongId, Arc<[u8]>, Option<String>)>,
    ) {
        let next = next.filter(|(_, bytes, _)| bytes.len() as u64 <= ctx.cfg.max_stream_bytes);
        let offered = next.as_ref().map(|(song_id, bytes, title)| maestral_sync::Offered {
            song_id: song_id.clone(),
            size_bytes: bytes.len() as u64,
            title: title.clone(),
        });
        {
            let mut songs = self.songs();
            songs.put(true, next.map(|(song, bytes, _)| Served { song, bytes }));
            self.forget_allowances(&songs);
        }
        ctx.local(maestral_sync::LocalAction::OfferNext { next: offered });
    }
}

/// Serves every stream channel `peer` opens on `link` from `slot`, each on a task of its own.
pub(crate) fn accept(
    link: &Link,
    peer: DeviceId,
    slot: ServedSlot,
    tx: mpsc::UnboundedSender<Internal>,
) {
    let mut channels = link.accept_streams();
    let open = Arc::new(AtomicUsize::new(0));
    let refusing = Arc::new(AtomicUsize::new(0));
    let mut told = false;
    tokio::spawn(async move {
        while let Some(channel) = channels.recv().await {
            if open.load(Ordering::Relaxed) >= MAX_STREAMS_PER_PEER {
                if refusing.load(Ordering::Relaxed) >= MAX_REFUSING_PER_PEER {
                    channel.close().await;
                    continue;
                }
                // The app hears of it once per link, however many a rogue opens.
                let tell = (!told).then(|| tx.clone());
                told = true;
                let counted = Counted::new(&refusing);
                let peer = peer.clone();
                tokio::spawn(async move {
                    refuse_extra(channel, peer, tell).await;
                    drop(counted);
                });
                continue;
            }
            let counted = Counted::new(&open);
            let (peer, slot, tx) = (peer.clone(), slot.clone(), tx.clone());
            tokio::spawn(async move {
                serve(channel, peer, slot, tx).await;
                drop(counted);
            });
        }
    });
}

/// A stream channel past [`MAX_STREAMS_PER_PEER`]: refused (`too_many_streams`) once it is open,
/// so the peer reads why, then closed; the peer's other channels and its link go on.
async fn refuse_extra(
    channel: StreamChannel,
    peer: DeviceId,
    tell: Option<mpsc::UnboundedSender<Internal>>,
) {
    let opened = async {
        loop {
            match channel.next().await {
                StreamEvent::Open => return true,
                StreamEvent::Closed => return false,
                _ => {}
            }
        }
    };
    if tokio::time::timeout(REFUSAL_WAIT, opened).await == Ok(true) {
        if let Some(tx) = tell {
            let why = "it opened more stream channels at once than a Follower needs";
            let _ = tx.send(Internal::Error(SyncError::StreamRefused { peer, why }));
        }
        let refusal = serde_json::json!({ "error": "too_many_streams" }).to_string();
        let _ = channel.send_text(&refusal).await;
        let closed = async { while channel.next().await != StreamEvent::Closed {} };
        let _ = tokio::time::timeout(REFUSAL_WAIT, closed).await;
    }
    channel.close().await;
}

/// One Follower's stream channel: answers its requests from `slot`, keeping at most
/// its share of [`BUDGET`] queued.
async fn serve(
    channel: StreamChannel,
    peer: DeviceId,
    slot: ServedSlot,
    tx: mpsc::UnboundedSender<Internal>,
) {
    let refuse = |why: &'static str| {
        let _ = tx.send(Internal::Error(SyncError::StreamRefused { peer: peer.clone(), why }));
    };
    // The bytes being sent and the next offset.
    let mut sending: Option<(Served, usize)> = None;
    let mut threshold = 0;
    // Counted among the streams sharing the budget only while it sends.
    let mut active: Option<Counted> = None;
    // When the last chunk went: a stream whose peer reads nothing is closed after a while.
    let mut progressed = tokio::time::Instant::now();
    loop {
        if let Some((served, offset)) = &mut sending {
            // The Master moved on: a song no longer served is not sent to its end.
            if !slot.serves(&served.song) {
                let refusal = serde_json::json!({ "error": "not_current" }).to_string();
                let _ = channel.send_text(&refusal).await;
                let closed = async { while channel.next().await != StreamEvent::Closed {} };
                let _ = tokio::time::timeout(REFUSAL_WAIT, closed).await;
                channel.close().await;
                return;
            }
            let len = served.bytes.len();
            let window = slot.window();
            // The low-threshold signal at half the window (set again when the share changes).
            if threshold != window / 2 {
                threshold = window / 2;
                if channel.set_low_threshold(threshold as u32).await.is_err() {
                    return;
                }
            }
            while *offset < len {
                match channel.outstanding().await {
                    Ok(queued) if queued < window => {}
                    Ok(_) => break,
                    Err(_) => return,
                }
                let end = (*offset + CHUNK).min(len);
                let mut frame = Vec::with_capacity(8 + end - *offset);
                frame.extend_from_slice(&(*offset as u64).to_be_bytes());
                frame.extend_from_slice(&served.bytes[*offset..end]);
                if channel.send_binary(&frame).await.is_err() {
                    return;
                }
                slot.charge(&peer, &served.song, (end - *offset) as u64);
                *offset = end;
                progressed = tokio::time::Instant::now();
            }
            if *offset >= len {
                sending = None;
                drop(active.take());
            }
        }
        let event = if sending.is_some() {
            // Paused on a full window. `Low` is edge-triggered on SCTP's buffered amount, which
            // counts only what is packetized; the window counts the pipeline before it too, so
            // a window can drain without the buffered amount ever rising above the threshold,
            // and no `Low` comes (a stream then stalled for 10 s). Checked again after
            // `LOW_MISSED` at the latest.
            if progressed.elapsed() >= UNREAD_TIMEOUT {
                refuse("it read nothing of its stream for 10 s");
                channel.close().await;
                return;
            }
            match tokio::time::timeout(LOW_MISSED, channel.next()).await {
                Ok(event) => event,
                Err(_) => {
                    tracing::trace!("no Low signal within {LOW_MISSED:?}: the window is checked");
                    continue;
                }
            }
        } else {
            channel.next().await
        };
        match event {
            StreamEvent::Open | StreamEvent::Low => {}
            StreamEvent::Closed => return,
            StreamEvent::Text(text) => {
                let request = serde_json::from_str::<Request>(&text);
                let served = request.as_ref().ok().and_then(|r| slot.get(&r.song_id));
                let (answer, why) = match (&request, served) {
                    (Ok(r), Some(s)) if r.offset <= s.bytes.len() as u64 => {
                        let size = s.bytes.len() as u64;
                        if !slot.may_ask(&peer, &s.song, size) {
                            let why = "it asked for the same score over and over";
                            ("too_many_requests", why)
                        } else {
                            sending = Some((s, r.offset as usize));
                            active.get_or_insert_with(|| Counted::new(&slot.1));
                            progressed = tokio::time::Instant::now();
                            continue;
                        }
                    }
                    (Ok(_), _) => ("not_current", "it asked for a song that is not served now"),
                    (Err(_), _) => ("bad_request", "its stream request is not one"),
                };
                let refusal = serde_json::json!({ "error": answer }).to_string();
                let _ = channel.send_text(&refusal).await;
                let crossed = request.as_ref().is_ok_and(|r| slot.served_before(&r.song_id));
                if answer == "not_current" && crossed {
                    // A request crossing a song change (or a next piece withdrawn) is a race
                    // no Follower can avoid: nothing to tell the conductor.
                    tracing::debug!("a stream request from {peer}: {why}");
                } else {
                    refuse(why);
                }
                // The peer closes once it has read the refusal (a close now could overtake it).
                let closed = async { while channel.next().await != StreamEvent::Closed {} };
                let _ = tokio::time::timeout(REFUSAL_WAIT, closed).await;
                channel.close().await;
                return;
            }
            StreamEvent::Binary(_) => {
                refuse("it sent data nobody asked for");
                channel.close().await;
                return;
            }
        }
    }
}

/// One in a count while it lives: a serving task among the streams sharing [`BUDGET`] while it
/// sends, a peer's stream channel while it is served.
struct Counted(Arc<AtomicUsize>);

impl Counted {
    fn new(count: &Arc<AtomicUsize>) -> Self {
        count.fetch_add(1, Ordering::Relaxed);
        Counted(Arc::clone(count))
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

mod fetch;
pub(crate) use fetch::Fetches;
pub use fetch::{Partial, Stop, fetch};
