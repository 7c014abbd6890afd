//! Scores streamed in a Choir session (docs/behaviour.md §8.3), the app's part. A Master hands the
//! sync thread the bytes of the song it shows (read off the frame, on a thread of their own), and
//! those of the next piece of its set list, which Followers lacking it fetch ahead of the song
//! change (§8.4); a Follower that lacks the Master's song asks for it, and once it arrives (whole, its SHA-256
//! checked by the sync thread) opens it from memory (PDFium reads the buffer) into the library,
//! marked streamed. Nothing streamed is ever written anywhere; it is dropped on `STREAM_CLEAR`, at
//! the session's end, on Leave, on a role switch and with the app.

use std::path::PathBuf;
use std::sync::Arc;

use bevy::prelude::*;
use crossbeam_channel::{Receiver, Sender};
use maestral_net::SyncCommand;
use maestral_score::{Song, SongId};
use maestral_sync::{Phase, Role};

use crate::model::{
    AppError, Arrived, ClearStreamed, LinkStatus, MasterPosition, PageTextures, PhaseChanged,
    Position, SongLibrary, StreamChanged, StreamProgress, StreamState,
};
use crate::score::RenderBridge;
use crate::setlist::{PieceRequested, SetLists};
use crate::sync::SyncBridge;
use crate::wake::Waker;

/// A score that arrived, opened (or not) on a thread, with the clear count when it started.
type Opened = (SongId, Arc<[u8]>, Result<Song, String>, u64);

/// A Master's song read from its file, for the sync thread: the song it shows, or (`true`) the
/// next piece of its set list.
type Read = (SongId, Result<Arc<[u8]>, String>, String, bool);

#[derive(Resource)]
struct Threads {
    opened: (Sender<Opened>, Receiver<Opened>),
    read: (Sender<Read>, Receiver<Read>),
    /// The song whose bytes were handed to the sync thread (or are being read), per bridge
    /// (and per pairing, for a Solo device).
    served: Option<SongId>,
    /// A Master's next piece (of its set list) handed to the sync thread or being read, per
    /// bridge.
    next: Option<SongId>,
    /// The next piece whose bytes the sync thread holds, with them and its title: when the
    /// Master moves to it they are handed over as the current song's (nothing is read again,
    /// and the sync thread, serving them already, offers them once).
    handed_next: Option<(SongId, Arc<[u8]>, String)>,
    /// A Solo device was paired when it last looked.
    paired: bool,
    /// The bridge it last served for.
    bridge: u64,
    /// Clears so far: a score whose opening started before the latest clear is dropped.
    clears: u64,
}

pub fn plugin(app: &mut App) {
    app.insert_resource(Threads {
        opened: crossbeam_channel::unbounded(),
        read: crossbeam_channel::unbounded(),
        served: None,
        next: None,
        handed_next: None,
        paired: false,
        bridge: 0,
        clears: 0,
    })
    .add_systems(
        PreUpdate,
        (open_arrived, serve_shown_song, serve_next_piece, clear_on_leave, clear_streamed)
            .chain()
            .run_if(resource_exists::<SyncBridge>),
    );
}

/// Opens a score that arrived, on a thread (PDFium's look at it takes a while).
fn open_in_background(threads: &Threads, waker: Waker, song: SongId, bytes: Arc<[u8]>) {
    let (tx, clears) = (threads.opened.0.clone(), threads.clears);
    let spawned = std::thread::Builder::new().name("maestral-streamed".into()).spawn(move || {
        let name = PathBuf::from(format!("streamed-{}.pdf", song.as_str().get(..12).unwrap_or("")));
        let opened = Song::from_bytes(&name, &bytes).map_err(|e| e.to_string());
        let _ = tx.send((song, bytes, opened, clears));
        waker.wake();
    });
    if let Err(e) = spawned {
        warn!("could not open the streamed score: {e}");
    }
}

/// The sync thread's `Streamed` events: opened off the frame, then into the library.
fn open_arrived(
    threads: Res<Threads>,
    master: Res<MasterPosition>,
    mut arrived: MessageReader<Arrived>,
    mut library: ResMut<SongLibrary>,
    mut progress: ResMut<StreamProgress>,
    mut streams: MessageWriter<StreamChanged>,
    mut errors: MessageWriter<AppError>,
    waker: Res<Waker>,
) {
    for Arrived { song, bytes } in arrived.read() {
        open_in_background(&threads, waker.clone(), song.clone(), bytes.clone());
    }
    let done: Vec<Opened> = threads.opened.1.try_iter().collect();
    for (song, bytes, opened, clears) in done {
        progress.0.remove(&song);
        if clears != threads.clears {
            // Cleared while it was being opened: it is gone.
            continue;
        }
        match opened {
            Ok(opened) if opened.id == song => {
                library.insert_streamed(opened, bytes);
                streams.write(StreamChanged { song: Some(song), state: StreamState::Ready });
            }
            Ok(_) => {
                errors.write(AppError("the streamed score is not the Master's song".into()));
            }
            // The Master's next piece, offered ahead: the singer hears of it if it is still
            // missing once it is sung.
            Err(e) if master.0.as_ref().is_some_and(|m| m.song_id.as_ref() != Some(&song)) => {
                warn!("a score streamed ahead could not be opened: {e}");
            }
            Err(e) => {
                errors.write(AppError(format!("the streamed score could not be opened: {e}")));
            }
        }
    }
}

/// A Master hands the sync thread the bytes of the song it shows (read on a thread), so
/// Followers that lack it can fetch it; so does a paired Solo device, for its partner (beyond
/// V1: two devices, one book, one copy).
fn serve_shown_song(
    mut threads: ResMut<Threads>,
    bridge: Res<SyncBridge>,
    position: Res<Position>,
    library: Res<SongLibrary>,
    status: Res<LinkStatus>,
    waker: Res<Waker>,
    mut errors: MessageWriter<AppError>,
) {
    let paired = matches!(
        status.phase,
        Some(
            Phase::SoloPairedConnected | Phase::SoloPairedDegraded | Phase::SoloPairedReconnecting
        )
    );
    if bridge.generation() != threads.bridge || paired != threads.paired {
        threads.served = None;
        threads.next = None;
        threads.handed_next = None;
        threads.paired = paired;
        threads.bridge = bridge.generation();
    }
    let reads: Vec<Read> = threads.read.1.try_iter().collect();
    for (song, bytes, title, next) in reads {
        match bytes {
            // Still the song shown: the sync thread takes it (it checks the size limit).
            Ok(bytes) if !next && position.song.as_ref() == Some(&song) => {
                bridge.send(SyncCommand::Serve { song_id: song, bytes, title: Some(title) });
            }
            // Still the next piece: offered ahead (one over the limit is not).
            Ok(bytes) if next && threads.next.as_ref() == Some(&song) => {
                threads.handed_next = Some((song.clone(), bytes.clone(), title.clone()));
                bridge.send(SyncCommand::ServeNext { song_id: song, bytes, title: Some(title) });
            }
            Ok(_) => {}
            // The next piece is told about if it still cannot be streamed once it is shown.
            Err(e) if next => warn!("the next piece cannot be streamed ahead: {e}"),
            Err(e) => {
                errors.write(AppError(format!("the score cannot be streamed to singers: {e}")));
            }
        }
    }
    let serves = match bridge.role() {
        Role::Master => true,
        Role::Solo => paired,
        Role::Follower => false,
    };
    if !serves || position.song == threads.served {
        return;
    }
    threads.served.clone_from(&position.song);
    if let Some((song, bytes, title)) =
        threads.handed_next.take_if(|(s, ..)| position.song.as_ref() == Some(s))
    {
        // The next piece, reached: its bytes, handed over already, are the current song's now.
        bridge.send(SyncCommand::Serve { song_id: song, bytes, title: Some(title) });
        return;
    }
    let Some(song) = position.song.as_ref().and_then(|id| library.get(id)) else { return };
    if let Some(bytes) = library.streamed_bytes(&song.id) {
        let title = Some(song.title.clone());
        bridge.send(SyncCommand::Serve { song_id: song.id.clone(), bytes, title });
        return;
    }
    read_in_background(&threads, waker.clone(), song, false);
}

/// Reads `song`'s file on a thread of its own, for [`serve_shown_song`] to hand over.
fn read_in_background(threads: &Threads, waker: Waker, song: &Song, next: bool) {
    let (id, path, title) = (song.id.clone(), song.path.clone(), song.title.clone());
    let tx = threads.read.0.clone();
    let spawned = std::thread::Builder::new().name("maestral-serve".into()).spawn(move || {
        let read = read_to_serve(&path, &id);
        let _ = tx.send((id, read, title, next));
        waker.wake();
    });
    if let Err(e) = spawned {
        warn!("could not read the score to stream: {e}");
    }
}

/// A Master with a set list in use offers the piece `piece next` would show (docs/behaviour.md
/// §8.4), so that every Follower lacking it holds it when the conductor moves on; none (no set
/// list, the end of it, a piece this device lacks) withdraws the offer.
fn serve_next_piece(
    mut threads: ResMut<Threads>,
    bridge: Res<SyncBridge>,
    position: Res<Position>,
    library: Res<SongLibrary>,
    sets: Option<Res<SetLists>>,
    waker: Res<Waker>,
) {
    if bridge.role() != Role::Master {
        return;
    }
    let next = sets
        .as_deref()
        .and_then(|s| s.neighbour(s.current, PieceRequested::Next))
        .map(|(_, song)| song)
        .filter(|song| position.song.as_ref() != Some(song))
        .and_then(|song| library.get(&song));
    if next.map(|s| &s.id) == threads.next.as_ref() {
        return;
    }
    threads.next = next.map(|s| s.id.clone());
    // The piece offered so far is withdrawn at once, not left offered while the new one is
    // read (or for good if it cannot be).
    if threads.handed_next.take().is_some() || next.is_none() {
        bridge.send(SyncCommand::WithdrawNext);
    }
    let Some(song) = next else { return };
    if let Some(bytes) = library.streamed_bytes(&song.id) {
        threads.handed_next = Some((song.id.clone(), bytes.clone(), song.title.clone()));
        let title = Some(song.title.clone());
        bridge.send(SyncCommand::ServeNext { song_id: song.id.clone(), bytes, title });
        return;
    }
    read_in_background(&threads, waker.clone(), song, true);
}

/// The bytes of the score at `path` to serve as song `id`: refused, with the reason in words,
/// when the file is over the streaming limit (not read at all: the sync thread would refuse
/// it), cannot be read, or is no longer the song (its SHA-256 changed since it was opened:
/// every Follower would reject it).
fn read_to_serve(path: &std::path::Path, id: &SongId) -> Result<Arc<[u8]>, String> {
    let max = maestral_net::sync::stream::DEFAULT_MAX_STREAM_BYTES;
    match std::fs::metadata(path) {
        Ok(meta) if meta.len() > max => {
            return Err(format!(
                "{} is too large to stream ({} MB, the limit is {} MB)",
                path.display(),
                meta.len() / 1_000_000,
                max / 1_000_000
            ));
        }
        _ => {}
    }
    match std::fs::read(path) {
        Ok(bytes) if maestral_score::song_id(&bytes) != *id => Err(format!(
            "{} has changed since it was opened; open it again to stream it",
            path.display()
        )),
        Ok(bytes) => Ok(Arc::from(bytes)),
        Err(e) => Err(format!("{} ({e})", path.display())),
    }
}

/// A Follower back to playing alone (Leave, the session's end, a refusal), or a Solo device
/// alone again (unpaired, or its partner given up), keeps nothing streamed.
fn clear_on_leave(
    mut phases: MessageReader<PhaseChanged>,
    mut clears: MessageWriter<ClearStreamed>,
) {
    if phases
        .read()
        .any(|PhaseChanged(p)| matches!(p, Phase::FollowerIdleLocal | Phase::SoloLocalOnly))
    {
        clears.write(ClearStreamed(None));
    }
}

/// Drops streamed songs from the library, the render thread and the textures; one `cleared`
/// per song.
fn clear_streamed(
    mut threads: ResMut<Threads>,
    mut clears: MessageReader<ClearStreamed>,
    mut library: ResMut<SongLibrary>,
    mut render: Option<ResMut<RenderBridge>>,
    mut textures: Option<ResMut<PageTextures>>,
    mut progress: ResMut<StreamProgress>,
    mut streams: MessageWriter<StreamChanged>,
) {
    for ClearStreamed(which) in clears.read() {
        threads.clears += 1;
        // Songs still arriving stop being received.
        let arriving: Vec<SongId> = match which {
            Some(song) => progress.0.remove_entry(song).map(|(s, _)| s).into_iter().collect(),
            None => std::mem::take(&mut progress.0).into_keys().collect(),
        };
        for song in arriving.into_iter().filter(|s| library.get(s).is_none()) {
            streams.write(StreamChanged { song: Some(song), state: StreamState::Cleared });
        }
        match which {
            Some(song) => drop(progress.1.remove(song)),
            None => progress.1.clear(),
        }
        for song in library.remove_streamed(which.as_ref()) {
            if let Some(render) = render.as_mut() {
                render.forget(&song);
            }
            if let Some(textures) = textures.as_mut() {
                textures.forget_song(&song);
            }
            streams.write(StreamChanged { song: Some(song), state: StreamState::Cleared });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::read_to_serve;

    #[test]
    fn a_score_changed_on_disk_since_it_was_opened_is_not_served() {
        let dir = std::env::temp_dir().join(format!("maestral-serve-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("score.pdf");
        std::fs::write(&path, b"%PDF-1.4 the score as opened").expect("write");
        let id = maestral_score::song_id_of_file(&path).expect("id");
        assert_eq!(read_to_serve(&path, &id).as_deref(), Ok(&b"%PDF-1.4 the score as opened"[..]));
        std::fs::write(&path, b"%PDF-1.4 saved again by an editor").expect("rewrite");
        let refused = read_to_serve(&path, &id).expect_err("a changed file is refused");
        assert!(refused.contains("has changed since it was opened"), "{refused}");
        std::fs::remove_file(&path).expect("remove");
        let gone = read_to_serve(&path, &id).expect_err("a missing file is refused");
        assert!(gone.contains("score.pdf"), "{gone}");
        let _ = std::fs::remove_dir(&dir);
    }
}
