//! The Follower's side of score streaming (see [`super`]): what it holds of a score, its
//! fetches and their retries, and one fetch over a stream channel.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use maestral_protocol::{DeviceId, SongId, StreamPrepare};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use super::{PROGRESS_STEP, Refusal, Request};
use crate::rtc::{Link, StreamEvent};
use crate::sync::error::SyncError;
use crate::sync::handle::SyncEvent;
use crate::sync::worker::{Ctx, Internal};

/// Why a fetch stopped before the score was whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stop {
    /// The link went (a rejoin's `STREAM_PREPARE` resumes it).
    LinkLost,
    /// Nothing came for the stall time ([`STALL`](super::STALL) by default).
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
    /// The Master's next song (offered ahead), waiting for the current song's fetch to end so
    /// that it takes none of its bandwidth.
    waiting: bool,
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
            let error = SyncError::StreamTooLarge { size: prepare.size_bytes, max };
            // A next piece is told about once it is the song sung.
            return quiet_if_next(ctx, prepare.next, error);
        }
        let song = prepare.song_id.clone();
        // What was fetched of another song is kept for a resume only until another song of
        // its kind (current, or next offered ahead) is offered: at most one partial score of
        // each kind is held, besides those whose task still runs (ended by the Master's
        // `not_current`).
        let others: Vec<SongId> = (self.by_song.iter())
            .filter(|(s, f)| **s != song && f.running.is_none() && f.prepare.next == prepare.next)
            .map(|(s, _)| s.clone())
            .collect();
        let dropped: Vec<Fetch> = others.iter().filter_map(|s| self.by_song.remove(s)).collect();
        drop_elsewhere(dropped);
        let fetch = self.by_song.entry(song.clone()).or_insert_with(|| Fetch {
            prepare: prepare.clone(),
            have: Partial::default(),
            running: None,
            pending: false,
            waiting: false,
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

    /// Whether a song offered as the current one is being fetched.
    fn fetching_current(&self) -> bool {
        self.by_song.values().any(|f| f.running.is_some() && !f.prepare.next)
    }

    /// Starts the next songs waiting their turn, once no current song is being fetched.
    pub(crate) fn start_waiting(&mut self, ctx: &mut Ctx, master: Option<&DeviceId>) {
        if self.fetching_current() {
            return;
        }
        let waiting: Vec<SongId> =
            self.by_song.iter().filter(|(_, f)| f.waiting).map(|(s, _)| s.clone()).collect();
        for song in waiting {
            self.start(ctx, master, &song);
        }
    }

    /// Starts (or goes on with) the fetch of `song`; a next song waits while a current one is
    /// being fetched (the song sung now first).
    fn start(&mut self, ctx: &mut Ctx, master: Option<&DeviceId>, song: &SongId) {
        let current_running = self.fetching_current();
        let Some(fetch) = self.by_song.get_mut(song) else { return };
        if fetch.prepare.next && current_running {
            fetch.waiting = true;
            return;
        }
        let Some(link) = master.and_then(|m| ctx.links.link(m)) else {
            // No link now: the rejoin's STREAM_PREPARE brings it back.
            return;
        };
        self.next_task += 1;
        let task = self.next_task;
        fetch.pending = false;
        fetch.waiting = false;
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
                let next = fetch.prepare.next;
                if fetch.pending {
                    // Offered again meanwhile: go on from what it has.
                    self.start(ctx, master, &song);
                } else if let Stop::Refused(_) = stop {
                    self.by_song.remove(&song);
                    gave_up(ctx, song, &stop, next);
                } else if (stop.retry() || up) && fetch.retries < MAX_RETRIES {
                    fetch.retries += 1;
                    self.start(ctx, master, &song);
                } else {
                    // What it has is kept: the next STREAM_PREPARE (a rejoin) resumes it.
                    gave_up(ctx, song, &stop, next);
                }
            }
        }
        self.start_waiting(ctx, master);
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

/// A fetch stopped for good: the app hears it, and the singer why, unless it was the
/// Master's next piece (offered ahead: the singer sees nothing of it, and a piece still
/// missing once it is sung is told about then).
fn gave_up(ctx: &mut Ctx, song: SongId, stop: &Stop, next: bool) {
    let error = SyncError::StreamStopped { song: song.clone(), why: stop.words() };
    ctx.emit(SyncEvent::StreamGaveUp { song_id: song });
    quiet_if_next(ctx, next, error);
}

/// Tells `error` to the app, or only logs it for a next piece offered ahead (`next`).
fn quiet_if_next(ctx: &mut Ctx, next: bool, error: SyncError) {
    if next {
        tracing::info!("the next piece, offered ahead, is not fetched: {error}");
    } else {
        ctx.error(error);
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
