//! The sync bridge: the sync thread of `maestral-net` seen from the ECS. Its events come in over
//! a crossbeam channel, drained in `PreUpdate` into Bevy messages and resources ([`LinkStatus`],
//! [`SessionCodes`], [`EnginePager`]); local actions go out as `SyncCommand::Local`, the
//! performer's turns as `SyncCommand::Navigate` (counted, so stale views can be told apart).
//!
//! The sync thread wakes the app (the [`Waker`]: winit's event-loop proxy in the window) after
//! each event it queues, so a page turned on another device shows within one frame even while
//! the app sleeps in reactive mode.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use bevy::ecs::system::SystemParam;
use bevy::prelude::*;
use crossbeam_channel::Receiver;
use maestral_net::joincode::JoinCode;
use maestral_net::{SyncCommand, SyncConfig, SyncEvent, SyncHandle};
use maestral_protocol::{DeviceId, RejectReason};
use maestral_sync::{Event, LocalAction, Phase, Role, View};

use crate::model::{
    AppError, Arrived, ClearStreamed, EnginePager, LinkChanged, LinkStatus, MasterPosition,
    PhaseChanged, Position, RemoteShow, RosterChanged, RosterState, SessionCodes, SongLibrary,
    StreamChanged, StreamProgress, StreamState, SwitchRole, SyncMode, SyncSettings, SyncSystems,
};
use crate::wake::Waker;

pub fn plugin(app: &mut App) {
    app.add_systems(Startup, start_sync_thread).add_systems(
        PreUpdate,
        (switch_roles, drain_sync_events.run_if(resource_exists::<SyncBridge>))
            .chain()
            .in_set(SyncSystems::Drain),
    );
}

/// The app's end of the sync thread (or, with the `test-support` feature, of a plain channel
/// pair).
#[derive(Resource, Debug)]
pub struct SyncBridge {
    commands: CommandSink,
    events: Receiver<SyncEvent>,
    role: Role,
    device_id: DeviceId,
    /// Started to answer a Solo pairing offer (`--solo-answer`).
    answering: bool,
    /// Navigations sent so far (the engine counts the same ones).
    navigations: AtomicU64,
    /// A Follower started by a role switch, not yet shown a song: a view without one (the new
    /// engine's first, or a Master that shows nothing yet) leaves the page on screen as it is.
    keep_page: AtomicBool,
    /// Earlier roles' sync threads, still closing (a Follower's Leave or a Master's end of
    /// session has files to write): joined when the app ends, so a quit right after a role
    /// switch loses nothing. Each new bridge takes them over from the one it replaces.
    retiring: Vec<std::thread::JoinHandle<()>>,
    /// Which bridge this is (each role's start makes a new one).
    generation: u64,
}

/// The generation of the next bridge.
static BRIDGES: AtomicU64 = AtomicU64::new(1);

impl Drop for SyncBridge {
    /// At the app's end: the earlier roles' threads finish closing first (see `retiring`).
    fn drop(&mut self) {
        for closing in self.retiring.drain(..) {
            if closing.join().is_err() {
                warn!("an old sync thread panicked while closing");
            }
        }
    }
}

#[derive(Debug)]
enum CommandSink {
    Thread(SyncHandle),
    /// Handed to a thread of its own to close down (a role switch); nothing more goes out.
    Retired,
    #[cfg(feature = "test-support")]
    Channel(crossbeam_channel::Sender<SyncCommand>),
}

impl SyncBridge {
    /// Starts the sync thread for `settings` and sends it the mode's first command.
    pub fn start(settings: &SyncSettings, waker: Waker) -> Result<Self, String> {
        let role = settings.mode.role();
        let first = first_command(&settings.mode)?;
        let mut config = SyncConfig::new(settings.device_id.as_str(), bind_ip(settings));
        config.device_name.clone_from(&settings.device_name);
        config.state_dir.clone_from(&settings.state_dir);
        config.locate = settings.locate;
        if role == Role::Master {
            config.pages.clone_from(&settings.pages);
        }
        let handle = SyncHandle::start(role, config, move || waker.wake())
            .map_err(|e| format!("could not start the sync thread: {e}"))?;
        if let Some(command) = first {
            handle.send(command);
        }
        Ok(SyncBridge {
            events: handle.events().clone(),
            commands: CommandSink::Thread(handle),
            role,
            device_id: DeviceId::new(settings.device_id.as_str()),
            answering: matches!(settings.mode, SyncMode::SoloAnswer(_)),
            navigations: AtomicU64::new(0),
            keep_page: AtomicBool::new(false),
            retiring: Vec::new(),
            generation: BRIDGES.fetch_add(1, Ordering::Relaxed),
        })
    }

    /// A bridge over a plain channel pair, for tests: what the app sends comes out of the
    /// returned receiver, and events sent into the returned sender reach the app.
    #[cfg(feature = "test-support")]
    pub fn channel_pair(
        role: Role,
        device_id: &str,
    ) -> (Self, crossbeam_channel::Sender<SyncEvent>, Receiver<SyncCommand>) {
        let (cmd_tx, cmd_rx) = crossbeam_channel::unbounded();
        let (ev_tx, ev_rx) = crossbeam_channel::unbounded();
        let bridge = SyncBridge {
            commands: CommandSink::Channel(cmd_tx),
            events: ev_rx,
            role,
            device_id: DeviceId::new(device_id),
            answering: false,
            navigations: AtomicU64::new(0),
            keep_page: AtomicBool::new(false),
            retiring: Vec::new(),
            generation: BRIDGES.fetch_add(1, Ordering::Relaxed),
        };
        (bridge, ev_tx, cmd_rx)
    }

    pub fn send(&self, command: SyncCommand) {
        match &self.commands {
            CommandSink::Thread(handle) => handle.send(command),
            CommandSink::Retired => {}
            #[cfg(feature = "test-support")]
            CommandSink::Channel(tx) => drop(tx.send(command)),
        }
    }

    pub fn local(&self, action: LocalAction) {
        self.send(SyncCommand::Local(action));
    }

    /// The performer navigated (`action.is_navigation()`) and this device now shows `shown`.
    pub fn navigate(&self, action: LocalAction, shown: View) {
        self.navigations.fetch_add(1, Ordering::Relaxed);
        self.send(SyncCommand::Navigate { action, shown });
    }

    /// Navigations sent so far: a view the engine chose after fewer is stale.
    pub fn navigations(&self) -> u64 {
        self.navigations.load(Ordering::Relaxed)
    }

    pub fn role(&self) -> Role {
        self.role
    }

    /// Which bridge this is: a role switch makes a new one.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    pub fn device_id(&self) -> &DeviceId {
        &self.device_id
    }

    /// Ends this bridge's sync thread without waiting for it: the thread closes its links (a
    /// Follower leaves its session first) on a thread of its own, so the frame goes on.
    fn retire(&mut self) {
        if let CommandSink::Thread(handle) =
            std::mem::replace(&mut self.commands, CommandSink::Retired)
        {
            // Another role: a Follower leaves its session for good (a quit keeps it).
            if self.role == Role::Follower {
                handle.send(SyncCommand::Local(LocalAction::Leave));
            }
            let spawned = std::thread::Builder::new()
                .name("maestral-sync-close".into())
                .spawn(move || handle.shutdown());
            match spawned {
                Ok(closing) => self.retiring.push(closing),
                // The handle went with the failed spawn and was closed by its drop.
                Err(e) => warn!("could not close the old sync thread in the background: {e}"),
            }
        }
    }
}

/// The first command for a mode, or why the mode's argument is unusable.
fn first_command(mode: &SyncMode) -> Result<Option<SyncCommand>, String> {
    Ok(match mode {
        SyncMode::Solo => None,
        SyncMode::SoloOffer => Some(SyncCommand::SoloOffer),
        SyncMode::SoloAnswer(code) => Some(SyncCommand::SoloAnswer(code.trim().to_owned())),
        SyncMode::ChoirMaster { listen } => Some(SyncCommand::StartChoir {
            listen: listen.unwrap_or_else(|| SocketAddr::new(lan_ip(None), 0)),
        }),
        SyncMode::Join(code) => {
            Some(SyncCommand::Join(code.parse::<JoinCode>().map_err(|e| e.to_string())?))
        }
        SyncMode::Rejoin { .. } => Some(SyncCommand::Rejoin),
    })
}

/// The address WebRTC gathers candidates on: the one the Master listens on; for a Follower the
/// one that routes to its Master; for a paired Solo device the one that routes to its partner;
/// else the LAN address.
fn bind_ip(settings: &SyncSettings) -> IpAddr {
    match &settings.mode {
        SyncMode::Solo | SyncMode::SoloOffer | SyncMode::SoloAnswer(_) => {
            let partner = settings.state_dir.as_deref().and_then(|d| maestral_net::stored(d).solo);
            lan_ip(partner.flatten())
        }
        SyncMode::ChoirMaster { listen: Some(addr) } if !addr.ip().is_unspecified() => addr.ip(),
        SyncMode::Join(code) => lan_ip(code.parse::<JoinCode>().ok().map(|c| c.host)),
        SyncMode::Rejoin { host } => lan_ip(*host),
        _ => lan_ip(None),
    }
}

pub use maestral_net::lan_ip;

fn start_sync_thread(
    mut commands: Commands,
    settings: Option<ResMut<SyncSettings>>,
    existing: Option<Res<SyncBridge>>,
    waker: Res<Waker>,
    mut codes: ResMut<SessionCodes>,
    mut errors: MessageWriter<AppError>,
) {
    // Tests insert their own bridge; an app without settings has no sync at all.
    let (None, Some(mut settings)) = (existing, settings) else { return };
    // A mode whose argument is unusable (a join link that does not parse) says so and plays
    // alone, with every role one tap away in the panel.
    if settings.mode != SyncMode::Solo
        && let Err(message) = first_command(&settings.mode)
    {
        errors.write(AppError(message));
        settings.mode = SyncMode::Solo;
    }
    match SyncBridge::start(&settings, waker.clone()) {
        Ok(bridge) => {
            info!(
                "sync: {} as {} ({})",
                settings.device_id,
                bridge.role().as_str(),
                settings.device_name
            );
            commands.insert_resource(bridge);
        }
        Err(message) => {
            error!("{message}");
            codes.failed = Some(message.clone());
            errors.write(AppError(message));
        }
    }
}

/// What the app keeps of a role, cleared when the role changes.
#[derive(SystemParam, Debug)]
pub struct RoleState<'w> {
    status: ResMut<'w, LinkStatus>,
    codes: ResMut<'w, SessionCodes>,
    pager: ResMut<'w, EnginePager>,
    master: ResMut<'w, MasterPosition>,
    roster: ResMut<'w, RosterState>,
}

impl RoleState<'_> {
    fn clear(&mut self) {
        *self.status = LinkStatus::default();
        *self.codes = SessionCodes::default();
        *self.pager = EnginePager::default();
        *self.master = MasterPosition::default();
        *self.roster = RosterState::default();
    }
}

/// Carries out the last role switch asked for this frame: checks the new role's argument (a
/// join code that does not parse changes nothing), ends the old role (a Master in a session
/// ends it, a Follower leaves), starts the new one, and gives a Master or a Solo device the
/// position on screen, which stays where it is.
pub fn switch_roles(
    mut requests: MessageReader<SwitchRole>,
    mut commands: Commands,
    mut bridge: Option<ResMut<SyncBridge>>,
    mut settings: Option<ResMut<SyncSettings>>,
    mut state: RoleState,
    position: Res<Position>,
    waker: Res<Waker>,
    mut errors: MessageWriter<AppError>,
    mut clears: MessageWriter<ClearStreamed>,
) {
    let Some(SwitchRole(mode)) = requests.read().last().cloned() else { return };
    let Some(settings) = settings.as_mut() else {
        errors.write(AppError("this app runs without sync".into()));
        return;
    };
    if let Err(message) = first_command(&mode) {
        errors.write(AppError(message));
        return;
    }
    if let Some(old) = bridge.as_deref_mut() {
        let in_session = matches!(
            state.status.phase,
            Some(Phase::MasterSessionActive | Phase::MasterReconnectingLinks)
        );
        if old.role() == Role::Master && in_session {
            old.local(LocalAction::EndSession);
        }
        old.retire();
        // Streamed scores belong to the session of the old role.
        clears.write(ClearStreamed(None));
    }
    let retiring = bridge.as_deref_mut().map(|old| std::mem::take(&mut old.retiring));
    state.clear();
    let mut next = SyncSettings::clone(settings);
    next.mode = mode;
    match SyncBridge::start(&next, waker.clone()) {
        Ok(mut new) => {
            new.retiring = retiring.unwrap_or_default();
            info!("sync: now {} ({:?})", new.role().as_str(), next.mode);
            if new.role() == Role::Follower {
                // Until its Master's song comes, the page on screen stays.
                new.keep_page.store(position.song.is_some(), Ordering::Relaxed);
            } else if let Some(song) = &position.song {
                // The engine's first song change, then the page on screen (its view of the
                // song change, page 0, is then stale and dropped).
                let song_id = Some(song.clone());
                new.navigate(LocalAction::SetSong { song_id }, position.view());
                new.navigate(LocalAction::SetPage { page: position.page }, position.view());
            }
            commands.insert_resource(new);
        }
        Err(message) => {
            error!("{message}");
            state.codes.failed = Some(message.clone());
            errors.write(AppError(message));
            commands.remove_resource::<SyncBridge>();
        }
    }
    **settings = next;
}

/// Why the Master refused a join, in a performer's words.
fn refusal(reason: RejectReason) -> &'static str {
    match reason {
        RejectReason::SessionEnded => {
            "that session has ended: ask the conductor for the code of the new one"
        }
        RejectReason::InvalidToken => {
            "the conductor's device did not accept this code: ask for the current join code"
        }
        RejectReason::VersionMismatch => {
            "the conductor's app speaks another version of Maestral: update both apps"
        }
        RejectReason::Other => "the conductor's device refused to let this one join",
    }
}

/// A Master's roster, a Follower's view of its Master, and its streams.
#[derive(SystemParam)]
pub(crate) struct RoleNews<'w> {
    roster: ResMut<'w, RosterState>,
    rosters: MessageWriter<'w, RosterChanged>,
    master: ResMut<'w, MasterPosition>,
    library: Res<'w, SongLibrary>,
    progress: ResMut<'w, StreamProgress>,
    arrived: MessageWriter<'w, Arrived>,
    clears: MessageWriter<'w, ClearStreamed>,
}

/// Drains the sync thread's events into messages and resources.
pub(crate) fn drain_sync_events(
    bridge: Res<SyncBridge>,
    mut shows: MessageWriter<RemoteShow>,
    mut phases: MessageWriter<PhaseChanged>,
    mut links: MessageWriter<LinkChanged>,
    mut streams: MessageWriter<StreamChanged>,
    mut errors: MessageWriter<AppError>,
    mut status: ResMut<LinkStatus>,
    mut codes: ResMut<SessionCodes>,
    mut pager: ResMut<EnginePager>,
    mut news: RoleNews,
) {
    for event in bridge.events.try_iter() {
        match event {
            SyncEvent::Engine(Event::Show { view, navigations }) => {
                if view.song_id.is_some() {
                    bridge.keep_page.store(false, Ordering::Relaxed);
                } else if bridge.keep_page.load(Ordering::Relaxed) {
                    continue;
                }
                shows.write(RemoteShow { view, navigations });
            }
            SyncEvent::Engine(Event::Phase(phase)) => {
                // The sync thread may repeat a phase (e.g. its own and the engine's "joining").
                if phase == Phase::SoloPairedConnected {
                    // The pairing code is used up: after a give-up, pairing starts afresh.
                    codes.pair_code = None;
                }
                if status.phase != Some(phase) {
                    status.phase = Some(phase);
                    phases.write(PhaseChanged(phase));
                }
            }
            SyncEvent::Engine(Event::Link { peer, state }) => {
                status.links.insert(peer.clone(), state);
                links.write(LinkChanged { peer, state });
            }
            SyncEvent::Engine(Event::Pager(p)) => pager.0 = p,
            SyncEvent::Engine(Event::Roster(roster)) => {
                news.roster.0 = roster;
                news.rosters.write(RosterChanged);
            }
            SyncEvent::Engine(Event::MasterView(view)) => news.master.0 = Some(view),
            SyncEvent::Engine(Event::PeerHello { peer, hello }) => {
                let name = hello.device_name.trim();
                if !name.is_empty() {
                    status.names.insert(peer, name.to_owned());
                }
            }
            SyncEvent::Engine(Event::JoinRejected { reason }) => {
                errors.write(AppError(refusal(reason).into()));
            }
            SyncEvent::Engine(Event::StreamPrepare(prepare)) => {
                // Only a song this device lacks is fetched (one it has streams nothing).
                let song = prepare.song_id.clone();
                if news.library.get(&song).is_none() {
                    if let Some(title) = &prepare.title {
                        news.progress.1.insert(song.clone(), title.clone());
                    }
                    if !news.progress.0.contains_key(&song) {
                        news.progress.0.insert(song.clone(), (0, prepare.size_bytes));
                        streams.write(StreamChanged {
                            song: Some(song),
                            state: StreamState::Receiving,
                        });
                    }
                    bridge.send(SyncCommand::Fetch(prepare));
                }
            }
            SyncEvent::Stream { song_id, got, size } => {
                news.progress.0.insert(song_id, (got, size));
            }
            SyncEvent::Streamed { song_id, bytes } => {
                news.arrived.write(Arrived { song: song_id, bytes });
            }
            SyncEvent::StreamGaveUp { song_id } => {
                news.progress.0.remove(&song_id);
                streams.write(StreamChanged { song: Some(song_id), state: StreamState::Cleared });
            }
            SyncEvent::Engine(Event::StreamClear { song_id }) => {
                news.clears.write(ClearStreamed(song_id));
            }
            SyncEvent::Engine(Event::SessionEnded) => {
                codes.join_code = None;
            }
            SyncEvent::Engine(_) => {}
            SyncEvent::JoinCode(code) => codes.join_code = Some(code),
            SyncEvent::PairCode(code) => codes.pair_code = Some(code),
            SyncEvent::StartFailed(message) => {
                let message = message.to_string();
                error!("sync: {message}");
                codes.failed.get_or_insert_with(|| message.clone());
                errors.write(AppError(message));
            }
            SyncEvent::Error(message) => {
                let message = message.to_string();
                warn!("sync: {message}");
                // The sync thread carries on: a code may still come. Only an answer to a pairing
                // offer has nothing else to do, so its error ends the wait for a code.
                if bridge.answering && codes.pair_code.is_none() {
                    codes.failed.get_or_insert_with(|| message.clone());
                }
                errors.write(AppError(message));
            }
        }
    }
}
