//! Roles at run time, with real sync threads and real WebRTC on loopback: the app switches
//! from playing alone to a Choir Master and back (the page on screen stays, the Master starts
//! where the performer is, the session ends properly), a Follower app joins a session from a
//! pasted code, and bad codes (garbage, an ended session's) give one message and change
//! nothing.
//!
//! Every wait is bounded; nothing asserts on time.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use bevy::prelude::*;
use bevy::time::TimeUpdateStrategy;
use maestral::model::{
    AppError, LinkStatus, ModelPlugin, Position, SessionCodes, SongLibrary, SwitchRole, SyncMode,
    SyncSettings,
};
use maestral::sync::SyncBridge;
use maestral::wake::Waker;
use maestral::{navigation, sync};
use maestral_net::joincode::JoinCode;
use maestral_net::{SyncCommand, SyncConfig, SyncEvent, SyncHandle};
use maestral_protocol::SongId;
use maestral_score::{PageSize, Song};
use maestral_sync::{Event, LocalAction, Phase, Role, View};

const WAIT: Duration = Duration::from_secs(60);

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

#[derive(Resource, Default)]
struct Errors(Vec<String>);

fn collect(mut reader: MessageReader<AppError>, mut seen: ResMut<Errors>) {
    seen.0.extend(reader.read().map(|AppError(m)| m.clone()));
}

struct TestApp(App);

impl TestApp {
    fn new(id: &str) -> Self {
        Self::with_mode(id, SyncMode::Solo)
    }

    /// Started as the command line says (`mode`).
    fn with_mode(id: &str, mode: SyncMode) -> Self {
        let mut app = App::new();
        app.add_plugins((MinimalPlugins, AssetPlugin::default()));
        app.add_plugins(ModelPlugin { waker: Waker::none() });
        app.insert_resource(TimeUpdateStrategy::ManualDuration(Duration::from_millis(20)));
        app.insert_resource(SyncSettings {
            mode,
            device_id: id.into(),
            device_name: format!("{id}'s tablet"),
            state_dir: None,
            locate: maestral_net::LocateConfig::Off,
            pages: None,
        });
        app.init_resource::<Errors>().add_systems(Last, collect);
        app.add_plugins((navigation::plugin, sync::plugin));
        app.update();
        TestApp(app)
    }

    fn with_song(&mut self, pages: u32, page: u32) -> SongId {
        let song = Song {
            id: maestral_score::song_id(b"roles"),
            path: PathBuf::from("roles.pdf"),
            title: "Roles".into(),
            page_count: pages,
            page_sizes: vec![PageSize { width: 595.0, height: 842.0 }; pages as usize],
        };
        let id = song.id.clone();
        let world = self.0.world_mut();
        world.resource_mut::<SongLibrary>().insert(song);
        *world.resource_mut::<Position>() = Position { song: Some(id.clone()), page };
        id
    }

    fn switch(&mut self, mode: SyncMode) {
        self.0.world_mut().write_message(SwitchRole(mode));
        self.0.update();
    }

    fn until(&mut self, what: &str, done: impl Fn(&World) -> bool) {
        let deadline = Instant::now() + WAIT;
        while !done(self.0.world()) {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(10));
            self.0.update();
        }
    }

    /// Lets `n` frames run (the new role's first events come in).
    fn frames(&mut self, n: usize) {
        for _ in 0..n {
            std::thread::sleep(Duration::from_millis(10));
            self.0.update();
        }
    }

    fn role(&self) -> Option<Role> {
        self.0.world().get_resource::<SyncBridge>().map(SyncBridge::role)
    }

    fn position(&self) -> Position {
        self.0.world().resource::<Position>().clone()
    }

    fn errors(&self) -> Vec<String> {
        self.0.world().resource::<Errors>().0.clone()
    }

    fn join_code(&mut self) -> String {
        self.until("the join code", |w| w.resource::<SessionCodes>().join_code.is_some());
        self.0.world().resource::<SessionCodes>().join_code.clone().unwrap_or_default()
    }
}

/// A headless Follower on its own sync thread, joined with `code`.
fn follower(id: &str, code: &str) -> SyncHandle {
    let code: JoinCode = code.parse().expect("the app's join code parses");
    let mut config = SyncConfig::new(id, code.host.ip());
    config.locate = maestral_net::LocateConfig::Off;
    let handle = SyncHandle::start(Role::Follower, config, || {}).expect("a sync thread");
    handle.send(SyncCommand::Join(code));
    handle
}

/// Waits for an engine event of `handle` matching `want`.
fn wait_for(handle: &SyncHandle, what: &str, want: impl Fn(&Event) -> bool) {
    let deadline = Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match handle.events().recv_timeout(left) {
            Ok(SyncEvent::Engine(e)) if want(&e) => return,
            Ok(_) => {}
            Err(_) => panic!("timed out waiting for {what}"),
        }
    }
}

#[test]
fn switching_to_a_master_and_back_keeps_the_page_and_ends_the_session_for_its_singers() {
    let mut app = TestApp::new("conductor");
    let song = app.with_song(12, 5);
    assert_eq!(app.role(), Some(Role::Solo));

    app.switch(SyncMode::ChoirMaster { listen: Some(loopback()) });
    let code = app.join_code();
    assert_eq!(app.role(), Some(Role::Master));
    assert_eq!(app.position(), Position { song: Some(song.clone()), page: 5 }, "the page stays");

    // A singer joins and is shown the page the conductor was on.
    let singer = follower("singer", &code);
    let here = View { song_id: Some(song.clone()), page_index: 5 };
    wait_for(
        &singer,
        "the Master's page",
        |e| matches!(e, Event::Show { view, .. } if *view == here),
    );
    app.until("the singer in the roster", |w| {
        w.resource::<maestral::model::RosterState>().0.members.iter().any(|m| m.name == "singer")
    });

    // Back to playing alone: the singers hear the session end; the page stays.
    app.switch(SyncMode::Solo);
    assert_eq!(app.role(), Some(Role::Solo));
    wait_for(&singer, "the end of the session", |e| matches!(e, Event::SessionEnded));
    app.frames(30);
    assert_eq!(app.position(), Position { song: Some(song), page: 5 });
    singer.shutdown();
}

#[test]
fn a_follower_app_joins_by_a_pasted_code_and_an_ended_sessions_code_is_refused_in_words() {
    let mut conductor = TestApp::new("conductor2");
    conductor.with_song(8, 2);
    conductor.switch(SyncMode::ChoirMaster { listen: Some(loopback()) });
    let code = conductor.join_code();

    let mut singer = TestApp::new("singer2");
    // The singer has the score too, open on another page.
    let song = singer.with_song(8, 6);
    singer.switch(SyncMode::Join(code.clone()));
    singer.frames(5);
    assert_eq!(singer.position().song, Some(song.clone()), "joining never blanks the page");
    assert_eq!(singer.role(), Some(Role::Follower));
    singer.until("following the Master", |w| {
        w.resource::<LinkStatus>().phase == Some(Phase::FollowerConnectedFollow)
    });
    assert_eq!(singer.position().page, 2, "the Master's page");
    assert_eq!(
        singer.0.world().resource::<LinkStatus>().names.values().next().map(String::as_str),
        Some("conductor2's tablet"),
        "the Master's name, from its HELLO"
    );

    // Leave: the singer plays alone again, on the page it showed.
    singer.switch(SyncMode::Solo);
    assert_eq!(singer.role(), Some(Role::Solo));
    singer.frames(30);
    assert_eq!(singer.position(), Position { song: Some(song.clone()), page: 2 });

    // The conductor ends the session (staying Master); its code is refused in words.
    let bridge = conductor.0.world().resource::<SyncBridge>();
    bridge.local(LocalAction::EndSession);
    conductor.until("the session ended", |w| {
        w.resource::<LinkStatus>().phase == Some(Phase::MasterSessionEnded)
    });
    let before = singer.errors().len();
    singer.switch(SyncMode::Join(code));
    singer.until("the refusal", |w| w.resource::<Errors>().0.len() > before);
    let said = singer.errors()[before..].join(" / ");
    assert!(said.contains("session has ended"), "one clear message: {said}");
    assert!(!said.contains("session_ended"), "words, not the spec's name: {said}");
    singer.frames(30);
    assert_eq!(
        singer.position(),
        Position { song: Some(song), page: 2 },
        "a refused join loses nothing: the page stays"
    );
}

#[test]
fn a_garbage_join_code_says_so_and_changes_nothing() {
    let mut app = TestApp::new("solo3");
    let song = app.with_song(4, 3);
    app.switch(SyncMode::Join("hello, is this the code?".into()));
    let errors = app.errors();
    assert_eq!(errors.len(), 1, "one message: {errors:?}");
    assert!(errors[0].contains("join code"), "{errors:?}");
    assert_eq!(app.role(), Some(Role::Solo), "still playing alone");
    assert_eq!(app.position(), Position { song: Some(song), page: 3 });
}

#[test]
fn a_join_link_that_does_not_parse_on_the_command_line_says_so_and_plays_alone() {
    // As an operating system would pass a damaged link: the app still has every role at hand.
    let app = TestApp::with_mode("solo4", SyncMode::Join("maestral://join?host=nowhere".into()));
    assert_eq!(app.role(), Some(Role::Solo), "playing alone, with the panel's roles");
    let errors = app.errors();
    assert_eq!(errors.len(), 1, "one message: {errors:?}");
    assert!(errors[0].contains("join code"), "{errors:?}");
}

#[test]
fn a_used_pairing_code_is_gone_once_paired_so_a_give_up_offers_pairing_afresh() {
    let mut app = TestApp::new("solo5");
    app.0.world_mut().remove_resource::<SyncBridge>();
    let (bridge, events, _commands) = SyncBridge::channel_pair(Role::Solo, "solo5");
    app.0.insert_resource(bridge);
    events.send(SyncEvent::PairCode("M1O:offer".into())).expect("the app listens");
    app.frames(1);
    assert_eq!(app.0.world().resource::<SessionCodes>().pair_code.as_deref(), Some("M1O:offer"));
    events
        .send(SyncEvent::Engine(Event::Phase(Phase::SoloPairedConnected)))
        .expect("the app listens");
    app.frames(1);
    assert_eq!(app.0.world().resource::<SessionCodes>().pair_code, None);
}
