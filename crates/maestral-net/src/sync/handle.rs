//! The app's end of the sync thread: its configuration, the commands it takes, the events it
//! sends back, and the handle that starts and stops it.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};
use maestral_protocol::DeviceId;
use maestral_sync::{Event, LocalAction, Role, Timing};
use tokio::sync::Notify;

use super::error::{StartError, SyncError};
use super::runtime::Runtimes;
use super::worker::Worker;
use crate::joincode::JoinCode;
use crate::rtc::RtcConfig;

/// How the sync thread runs.
#[derive(Debug, Clone)]
pub struct SyncConfig {
    pub device_id: DeviceId,
    pub device_name: String,
    /// WebRTC: the address host candidates are gathered on (the LAN address, or 127.0.0.1).
    pub rtc: RtcConfig,
    /// The engine's retry and supervision timing.
    pub timing: Timing,
    /// One join attempt (HTTP exchange and channel opening) gets this long.
    pub join_timeout: Duration,
    /// A peer sending more messages than this in one second is disconnected (a flood).
    pub flood_limit: u32,
    /// A peer sending more bytes than this in one second on `maestral-sync` is disconnected
    /// (a flood of large messages within the message limit).
    pub flood_bytes: u64,
    /// Where each role keeps what it needs after a restart (`maestral_net::state::files`): a
    /// Master its session, a Follower its membership, a Solo device its pairing. `None`:
    /// nothing kept.
    pub state_dir: Option<std::path::PathBuf>,
    /// The largest score streamed (a Master does not serve a larger one; a Follower does not
    /// fetch one).
    pub max_stream_bytes: u64,
    /// A stream that brings nothing for this long is dropped and tried again.
    pub stream_stall: Duration,
    /// Finding a Master whose address changed (`super::locate`): where a Master answers and a
    /// Follower asks (`Off` in tests: nothing broadcast onto the machine's LAN).
    pub locate: super::locate::LocateConfig,
    /// A Master's page images for browser Followers (`None`: it serves none).
    pub pages: Option<super::pages::PageRenderer>,
    /// Whether a Master exempts loopback addresses from its per-address limits (members per
    /// address, the cool-down of an address after a flood): they are its own machine's, and no
    /// device on the LAN can send from one. On by default; tests turn it off to play a LAN host
    /// on loopback.
    pub exempt_loopback: bool,
}

impl SyncConfig {
    pub fn new(device_id: impl Into<DeviceId>, bind_ip: IpAddr) -> Self {
        let device_id = device_id.into();
        SyncConfig {
            device_name: device_id.to_string(),
            device_id,
            rtc: RtcConfig::new(bind_ip),
            timing: Timing::LAN,
            join_timeout: Duration::from_secs(5),
            flood_limit: 500,
            flood_bytes: 1024 * 1024,
            state_dir: None,
            max_stream_bytes: super::stream::DEFAULT_MAX_STREAM_BYTES,
            stream_stall: super::stream::STALL,
            locate: super::locate::LocateConfig::default(),
            pages: None,
            exempt_loopback: true,
        }
    }
}

/// What the app asks of the sync thread.
#[derive(Debug, Clone)]
pub enum SyncCommand {
    /// A local action: follow/free, parity, leave, end the session (and, from tests and tools,
    /// page turns and song changes).
    Local(LocalAction),
    /// The performer navigated (`action.is_navigation()`) and the app already shows `shown`,
    /// worked out with `maestral_sync::Pager`: the engine reports only a view that differs.
    Navigate { action: LocalAction, shown: maestral_sync::View },
    /// Master: start a Choir session and its join listener on `listen` (port 0: any).
    StartChoir { listen: SocketAddr },
    /// Follower: join the session of this join code.
    Join(JoinCode),
    /// Follower: rejoin the session kept in the state directory (after a restart).
    Rejoin,
    /// Solo: make an offer code to show (answered by `SoloAnswer` on the other device).
    SoloOffer,
    /// Solo: answer the other device's offer code (shows an answer code).
    SoloAnswer(String),
    /// Solo: take the other device's answer code, completing the pairing.
    SoloAccept(String),
    /// Master: the app holds the current song's bytes; Followers that lack it fetch them.
    Serve { song_id: maestral_protocol::SongId, bytes: Arc<[u8]>, title: Option<String> },
    /// Master: the app holds the bytes of the song it will show next (its set list's next
    /// piece); Followers that lack it fetch them ahead of the song change.
    ServeNext { song_id: maestral_protocol::SongId, bytes: Arc<[u8]>, title: Option<String> },
    /// Master: there is no next song to offer ahead any more.
    WithdrawNext,
    /// Follower: this device lacks the song of this `STREAM_PREPARE`: fetch it into memory.
    Fetch(maestral_protocol::StreamPrepare),
    /// Fault injection for tests and the fault campaign.
    #[cfg(feature = "test-support")]
    Fault(Fault),
    /// Close every link and stop the thread.
    Shutdown,
}

/// Faults a test can inject into a running sync thread.
#[cfg(feature = "test-support")]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Close the connection to this peer abruptly, as a network failure would.
    DropLink(DeviceId),
    /// Master: `true` drops every link and refuses joins (as if unreachable); `false` returns.
    Offline(bool),
}

/// What the sync thread tells the app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncEvent {
    /// An event of the engine: show a page, phase and link changes, session changes, streams.
    Engine(Event),
    /// Master: the join code to show (as QR and as text).
    JoinCode(String),
    /// Solo: the pairing code to show to the other device (offer or answer).
    PairCode(String),
    /// Follower: a score is being received: `got` of `size` bytes so far.
    Stream { song_id: maestral_protocol::SongId, got: u64, size: u64 },
    /// Follower: a score arrived whole, its SHA-256 checked: in memory only, view-only.
    Streamed { song_id: maestral_protocol::SongId, bytes: Arc<[u8]> },
    /// Follower: receiving this score stopped and is not tried again until it is offered
    /// again (the error says why).
    StreamGaveUp { song_id: maestral_protocol::SongId },
    /// Something went wrong; its `Display` is one readable line for the user. The sync thread
    /// carries on.
    Error(SyncError),
    /// Starting what was asked failed for good (a Master could not listen or make its
    /// certificate, a Solo offer could not be prepared): no code will come.
    StartFailed(StartError),
}

/// The app's end of the sync thread.
#[derive(Debug)]
pub struct SyncHandle {
    commands: Sender<SyncCommand>,
    events: Receiver<SyncEvent>,
    notify: Arc<Notify>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl SyncHandle {
    /// Starts the sync thread for `role`. `wake` is called after each event is queued, so a UI
    /// sleeping in low-power mode wakes at once.
    pub fn start(
        role: Role,
        config: SyncConfig,
        wake: impl Fn() + Send + Sync + 'static,
    ) -> Result<SyncHandle, StartError> {
        let (cmd_tx, cmd_rx) = crossbeam_channel::unbounded();
        let (ev_tx, ev_rx) = crossbeam_channel::unbounded();
        let notify = Arc::new(Notify::new());
        let n = notify.clone();
        let runtimes = Runtimes::new().map_err(|e| StartError::Thread(e.to_string()))?;
        let thread = std::thread::Builder::new()
            .name("maestral-sync".into())
            .spawn(move || {
                // The worker is polled on the control thread, never queued behind the bulk
                // runtime's DTLS and SCTP work (`super::runtime`). A panicking worker has been
                // printed and has nothing left to close; the runtime still stops.
                let worker = Worker::new(role, config, cmd_rx, n, ev_tx, Arc::new(wake));
                let _ = runtimes.run(worker.run());
                // Tasks still closing links get a moment, then everything stops.
                runtimes.bulk.shutdown_timeout(Duration::from_secs(1));
            })
            .map_err(|e| StartError::Thread(e.to_string()))?;
        Ok(SyncHandle { commands: cmd_tx, events: ev_rx, notify, thread: Some(thread) })
    }

    /// Sends a command; never blocks.
    pub fn send(&self, command: SyncCommand) {
        if self.commands.send(command).is_ok() {
            self.notify.notify_one();
        }
    }

    /// The events, to drain with `try_iter()` (or wait on with `recv_timeout` in tests).
    pub fn events(&self) -> &Receiver<SyncEvent> {
        &self.events
    }

    /// Closes every link cleanly and waits for the thread to end.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        self.send(SyncCommand::Shutdown);
        if let Some(t) = self.thread.take() {
            // A panic on the sync thread has already been printed; the app carries on.
            let _ = t.join();
        }
    }
}

impl Drop for SyncHandle {
    fn drop(&mut self) {
        self.stop();
    }
}
