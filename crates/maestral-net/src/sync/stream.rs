//! Score streaming (spec §8.3; PROTOCOL_V1 "Score streaming"): the Master serves the current
//! song's bytes to each Follower that asks, the Follower fetches what it lacks into memory,
//! checks its SHA-256 and hands it to the app. Never written to disk.
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
//!   "too_many_streams"}`, then the Master closes the channel (a peer has at most
//!   [`MAX_STREAMS_PER_PEER`] stream channels served at once).
//!
//! The Follower closes the channel once it has every byte. The Master keeps at most a share of
//! [`BUDGET`] queued per channel (the association's send queue is shared with `maestral-sync`,
//! so this bounds how long a page turn waits behind the score) and sends more when the
//! channel's buffered amount falls to half of it (its low-threshold signal). Each Follower has
//! its own connection and serving task and the same share: the Followers share the Master
//! fairly.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use maestral_protocol::{DeviceId, SongId, StreamPrepare};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use super::error::SyncError;
use super::handle::SyncEvent;
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

/// What every serving task reads: the current song's bytes, or nothing; and how many streams
/// are sending now (they share [`BUDGET`]).
#[derive(Clone, Default)]
pub(crate) struct ServedSlot(Arc<Mutex<Option<Served>>>, Arc<AtomicUsize>);

impl ServedSlot {
    pub(crate) fn set(&self, served: Option<Served>) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = served;
    }

    fn get(&self) -> Option<Served> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// What one stream may keep queued now.
    fn window(&self) -> usize {
        (BUDGET / self.1.load(Ordering::Relaxed).max(1)).clamp(MIN_WINDOW, MAX_WINDOW)
    }

    /// The song served now.
    pub(crate) fn song(&self) -> Option<SongId> {
        self.get().map(|s| s.song)
    }

    /// The current song is `song`: another one's bytes are no longer served (a request for
    /// it is refused).
    pub(crate) fn keep_only(&self, song: Option<&SongId>) {
        if let Some(served) = self.song()
            && song != Some(&served)
        {
            self.set(None);
        }
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
            self.set(None);
            return ctx.error(SyncError::StreamTooLarge { size, max: ctx.cfg.max_stream_bytes });
        }
        if self.song().as_ref() != Some(&song_id) {
            self.set(Some(Served { song: song_id.clone(), bytes }));
        }
        ctx.local(maestral_sync::LocalAction::OfferStream { song_id, size_bytes: size, title });
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
    let mut told = false;
    tokio::spawn(async move {
        while let Some(channel) = channels.recv().await {
            if open.load(Ordering::Relaxed) >= MAX_STREAMS_PER_PEER {
                // The app hears of it once per link, however many a rogue opens.
                let tell = (!told).then(|| tx.clone());
                told = true;
                tokio::spawn(refuse_extra(channel, peer.clone(), tell));
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
    loop {
        if let Some((served, offset)) = &mut sending {
            // The Master moved on: the old song is not sent to its end.
            if slot.song().as_ref() != Some(&served.song) {
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
                *offset = end;
            }
            if *offset >= len {
                sending = None;
                drop(active.take());
            }
        }
        match channel.next().await {
            StreamEvent::Open | StreamEvent::Low => {}
            StreamEvent::Closed => return,
            StreamEvent::Text(text) => {
                let request = serde_json::from_str::<Request>(&text);
                let current = slot.get();
                let (answer, why) = match (&request, current) {
                    (Ok(r), Some(s)) if s.song == r.song_id && r.offset <= s.bytes.len() as u64 => {
                        sending = Some((s, r.offset as usize));
                        active.get_or_insert_with(|| Counted::new(&slot.1));
                        continue;
                    }
                    (Ok(_), _) => {
                        ("not_current", "it asked for a song that is not the current one")
                    }
                    (Err(_), _) => ("bad_request", "its stream request is not one"),
                };
                let refusal = serde_json::json!({ "error": answer }).to_string();
                let _ = channel.send_text(&refusal).await;
                refuse(why);
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

// ---- the Follower's side ----------------------------------------------------------------------

/// Why a fetch stopped before the score was whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stop {
    /// The link went (a rejoin's `STREAM_PREPARE` resumes it).
    LinkLost,
    /// Nothing came for the stall time ([`STALL`] by default).
    Stalled,
    /// A chunk that is not the next one, or past the end.
    OutOfRange,
    /// The bytes are not the song (their SHA-256 differs): they are dropped.
    HashMismatch,
    /// The Master refused (`not_current`, `bad_request`) or answered nonsense.
    Refused(String),
}

impl Stop {
    fn words(&self) -> String {
        match self {
            Stop::LinkLost => "the connection to the conductor's device dropped".into(),
            Stop::Stalled => "nothing arrived for a while".into(),
            Stop::OutOfRange => "a piece arrived out of order".into(),
            Stop::HashMismatch => {
                "what arrived is not the conductor's score (its checksum differs)".into()
            }
            Stop::Refused(why) => format!("the conductor's device refused ({why})"),
        }
    }

    /// Worth trying again at once while the link is up.
    fn retry(&self) -> bool {
        matches!(self, Stop::Stalled | Stop::OutOfRange | Stop::HashMismatch)
    }
}

/// What a Follower holds of a score being fetched: a buffer of the score's size (made when the
/// fetch starts, so the whole score is never copied and no large buffer is freed at the end,
/// while page turns arrive), how much of it has come, and its SHA-256 so far (hashed as the
/// chunks come: a whole score is checked at once). Never cloned: it is filled in place while
/// its buffer is not shared.
#[derive(Default)]
pub struct Partial {
    buffer: Arc<[u8]>,
    len: usize,
    digest: Sha256,
}

impl Partial {
    pub fn bytes(&self) -> &[u8] {
        &self.buffer[..self.len]
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends `data`; `false` if it does not fit (past the size the buffer was made for).
    fn push(&mut self, data: &[u8]) -> bool {
        let end = self.len + data.len();
        let Some(buffer) = Arc::get_mut(&mut self.buffer) else { return false };
        let Some(into) = buffer.get_mut(self.len..end) else { return false };
        into.copy_from_slice(data);
        self.digest.update(data);
        self.len = end;
        true
    }
}

/// A buffer of `size` zero bytes, from zeroed memory (the system's fresh pages: none is touched
/// until a chunk is written there, so making it costs nothing up front).
#[allow(unsafe_code)]
fn zeroed(size: usize) -> Arc<[u8]> {
    // SAFETY: every byte is zero, and zero is a valid `u8`.
    unsafe { Arc::<[u8]>::new_zeroed_slice(size).assume_init() }
}

impl std::fmt::Debug for Partial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Partial({} of {} bytes)", self.len, self.buffer.len())
    }
}

/// One song being fetched, or partly fetched.
struct Fetch {
    prepare: StreamPrepare,
    /// The bytes so far (taken by the running task, given back when it stops).
    have: Partial,
    /// The running task and its number (reports of any other are stale).
    running: Option<(u64, tokio::task::AbortHandle)>,
    /// Offered again while a task ran: started again when it stops.
    pending: bool,
    retries: u32,
}

/// The Follower's streams.
#[derive(Default)]
pub(crate) struct Fetches {
    by_song: HashMap<SongId, Fetch>,
    next_task: u64,
}

/// Tries of one stream in a row (after a stall, a bad chunk, a wrong checksum or a dropped
/// channel) before it is left to the next `STREAM_PREPARE`.
const MAX_RETRIES: u32 = 3;

impl Fetches {
    /// The app lacks `prepare`'s song: fetch it (or the rest of it) over the link to `master`.
    pub(crate) fn want(
        &mut self,
        ctx: &mut Ctx,
        master: Option<&DeviceId>,
        prepare: StreamPrepare,
    ) {
        let max = ctx.cfg.max_stream_bytes;
        if prepare.size_bytes > max {
            ctx.emit(SyncEvent::StreamGaveUp { song_id: prepare.song_id.clone() });
            return ctx.error(SyncError::StreamTooLarge { size: prepare.size_bytes, max });
        }
        let song = prepare.song_id.clone();
        // What was fetched of another song is kept for a resume only until a new song is
        // offered: at most one partial score is held, besides those whose task still runs
        // (ended by the Master's `not_current`).
        let others: Vec<SongId> = (self.by_song.iter())
            .filter(|(s, f)| **s != song && f.running.is_none())
            .map(|(s, _)| s.clone())
            .collect();
        let dropped: Vec<Fetch> = others.iter().filter_map(|s| self.by_song.remove(s)).collect();
        drop_elsewhere(dropped);
        let fetch = self.by_song.entry(song.clone()).or_insert_with(|| Fetch {
            prepare: prepare.clone(),
            have: Partial::default(),
            running: None,
            pending: false,
            retries: 0,
        });
        if fetch.prepare.size_bytes != prepare.size_bytes || fetch.prepare.sha256 != prepare.sha256
        {
            // Another file under the same id cannot be: start over with what is offered now.
            drop_elsewhere(std::mem::take(&mut fetch.have));
        }
        fetch.prepare = prepare;
        fetch.retries = 0;
        if fetch.running.is_some() {
            // Perhaps a rejoin while the old task still waits on a dead channel.
            fetch.pending = true;
            return;
        }
        self.start(ctx, master, &song);
    }

    fn start(&mut self, ctx: &mut Ctx, master: Option<&DeviceId>, song: &SongId) {
        let Some(fetch) = self.by_song.get_mut(song) else { return };
        let Some(link) = master.and_then(|m| ctx.links.link(m)) else {
            // No link now: the rejoin's STREAM_PREPARE brings it back.
            return;
        };
        self.next_task += 1;
        let task = self.next_task;
        fetch.pending = false;
        let have = std::mem::take(&mut fetch.have);
        let prepare = fetch.prepare.clone();
        ctx.emit(SyncEvent::Stream {
            song_id: song.clone(),
            got: have.len() as u64,
            size: prepare.size_bytes,
        });
        let handle = tokio::spawn(run_fetch(
            link,
            prepare,
            have,
            task,
            ctx.cfg.stream_stall,
            ctx.internal.clone(),
        ));
        fetch.running = Some((task, handle.abort_handle()));
    }

    /// A fetch task reported progress.
    pub(crate) fn progress(&mut self, ctx: &mut Ctx, song: SongId, task: u64, got: u64) {
        if let Some(f) =
            self.by_song.get(&song).filter(|f| f.running.as_ref().is_some_and(|(t, _)| *t == task))
        {
            ctx.emit(SyncEvent::Stream { song_id: song, got, size: f.prepare.size_bytes });
        }
    }

    /// A fetch task ended, with the whole score or what it had.
    pub(crate) fn finished(
        &mut self,
        ctx: &mut Ctx,
        master: Option<&DeviceId>,
        song: SongId,
        task: u64,
        outcome: Result<Arc<[u8]>, (Partial, Stop)>,
    ) {
        let Some(fetch) = self.by_song.get_mut(&song) else { return };
        if fetch.running.as_ref().is_none_or(|(t, _)| *t != task) {
            return;
        }
        fetch.running = None;
        match outcome {
            Ok(bytes) => {
                self.by_song.remove(&song);
                ctx.emit(SyncEvent::Streamed { song_id: song, bytes });
            }
            Err((have, stop)) => {
                fetch.have = if stop == Stop::HashMismatch { Partial::default() } else { have };
                let up = master.is_some_and(|m| ctx.links.contains(m));
                if fetch.pending {
                    // Offered again meanwhile: go on from what it has.
                    self.start(ctx, master, &song);
                } else if let Stop::Refused(_) = stop {
                    self.by_song.remove(&song);
                    ctx.error(SyncError::StreamStopped { song: song.clone(), why: stop.words() });
                    ctx.emit(SyncEvent::StreamGaveUp { song_id: song });
                } else if (stop.retry() || up) && fetch.retries < MAX_RETRIES {
                    fetch.retries += 1;
                    self.start(ctx, master, &song);
                } else {
                    // What it has is kept: the next STREAM_PREPARE (a rejoin) resumes it.
                    ctx.error(SyncError::StreamStopped { song: song.clone(), why: stop.words() });
                    ctx.emit(SyncEvent::StreamGaveUp { song_id: song });
                }
            }
        }
    }

    /// Everything streamed or being streamed is dropped (a session's end, Leave); running
    /// tasks are stopped.
    pub(crate) fn clear(&mut self, song: Option<&SongId>) {
        let gone: Vec<Fetch> = match song {
            Some(s) => self.by_song.remove(s).into_iter().collect(),
            None => self.by_song.drain().map(|(_, f)| f).collect(),
        };
        for fetch in &gone {
            if let Some((_, task)) = &fetch.running {
                task.abort();
            }
        }
        drop_elsewhere(gone);
    }
}

/// Drops what may hold a score's buffer (up to 200 MB to give back) off the control thread.
fn drop_elsewhere<T: Send + 'static>(held: T) {
    drop(tokio::task::spawn_blocking(move || drop(held)));
}

/// Fetches the rest of `prepare`'s song after `have` over a new stream channel on `link`.
async fn run_fetch(
    link: Link,
    prepare: StreamPrepare,
    have: Partial,
    task: u64,
    stall: Duration,
    tx: mpsc::UnboundedSender<Internal>,
) {
    let song = prepare.song_id.clone();
    let progress = |got| {
        let _ = tx.send(Internal::StreamProgress { song: song.clone(), task, got });
    };
    let outcome = fetch(&link, &prepare, have, stall, progress).await;
    let _ = tx.send(Internal::StreamDone { song, task, outcome });
}

/// Fetches the rest of `prepare`'s song after `have` over a new stream channel on `link` (to
/// the Master), and checks its SHA-256: the whole score, or what it has and why it stopped
/// (`stall`: the longest silence it waits through). `progress` hears the bytes so far, every
/// 256 KiB. Public for tests that play a rogue Master.
pub async fn fetch(
    link: &Link,
    prepare: &StreamPrepare,
    mut have: Partial,
    stall: Duration,
    progress: impl Fn(u64),
) -> Result<Arc<[u8]>, (Partial, Stop)> {
    let size = usize::try_from(prepare.size_bytes).unwrap_or(usize::MAX);
    if have.buffer.len() != size {
        have = Partial { buffer: zeroed(size), ..Partial::default() };
    }
    let Ok(channel) = link.open_stream().await else { return Err((have, Stop::LinkLost)) };
    let mut asked = false;
    let mut reported = have.len();
    let stop = loop {
        if have.len() >= size && asked {
            break None;
        }
        let event = match tokio::time::timeout(stall, channel.next()).await {
            Ok(e) => e,
            Err(_) => break Some(Stop::Stalled),
        };
        match event {
            StreamEvent::Open => {
                let request =
                    Request { song_id: prepare.song_id.clone(), offset: have.len() as u64 };
                let text = serde_json::to_string(&request).unwrap_or_default();
                if channel.send_text(&text).await.is_err() {
                    break Some(Stop::LinkLost);
                }
                asked = true;
            }
            StreamEvent::Binary(frame) => {
                let offset =
                    frame.get(..8).map(|b| u64::from_be_bytes(b.try_into().unwrap_or([0xff; 8])));
                let data = frame.get(8..).unwrap_or_default();
                // An empty chunk carries nothing (and would keep a stall alive).
                if offset != Some(have.len() as u64) || data.is_empty() || !have.push(data) {
                    break Some(Stop::OutOfRange);
                }
                if have.len() - reported >= PROGRESS_STEP || have.len() == size {
                    reported = have.len();
                    progress(reported as u64);
                }
            }
            StreamEvent::Text(text) => {
                let why = serde_json::from_str::<Refusal>(&text)
                    .map_or_else(|_| "an answer that is not one".to_owned(), |r| r.error);
                break Some(Stop::Refused(why));
            }
            StreamEvent::Low => {}
            StreamEvent::Closed => break Some(Stop::LinkLost),
        }
    };
    channel.close().await;
    if let Some(stop) = stop {
        return Err((have, stop));
    }
    let Partial { buffer, digest, .. } = have;
    if crate::sig::hex(&digest.finalize()).eq_ignore_ascii_case(prepare.sha256.trim()) {
        Ok(buffer)
    } else {
        Err((Partial::default(), Stop::HashMismatch))
    }
}
