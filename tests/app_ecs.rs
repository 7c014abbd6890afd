//! Headless ECS tests of the app's plugins: `MinimalPlugins`, `app.update()`, manual time, and
//! the sync bridge over a plain channel pair. Those marked "PDFium" draw real pages through the
//! render thread (the library is found as `maestral-score` finds it: `MAESTRAL_PDFIUM` or the
//! project's `.cache/pdfium`, set up by `cargo xtask setup`).
//!
//! Every wait is bounded; nothing asserts on time.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use bevy::input::ButtonState;
use bevy::input::keyboard::{Key, KeyboardInput, NativeKey};
use bevy::prelude::*;
use bevy::time::TimeUpdateStrategy;
use bevy::window::WindowResolution;
use crossbeam_channel::{Receiver, Sender};
use maestral::control::{self, ControlCommand, ControlInput, ControlLine, ControlOutput};
use maestral::input::{self, GestureAction, gesture_action};
use maestral::layout::{self, PageSlot, Plan};
use maestral::model::{
    AppError, EnginePager, LayoutMode, LinkIndicator, LinkStatus, ModelPlugin, OpenScore, PagePart,
    PageTextures, PageTurnRequested, PageWindow, PagesPresented, PhaseChanged, Position, Projector,
    SessionCodes, SongChangeRequested, SongLibrary, Turn, UiVisible, WantedPages,
};
use maestral::navigation;
use maestral::score::{self, PendingOpens, RenderBridge};
use maestral::sync::{self, SyncBridge};
use maestral::wake::Waker;
use maestral_net::{SyncCommand, SyncEvent};
use maestral_protocol::{DeviceId, Layout, Parity};
use maestral_score::{PageSize, Song};
use maestral_sync::Pager;
use maestral_sync::{Event, LinkState, LocalAction, Phase, Role, View};

const WAIT: Duration = Duration::from_secs(60);

/// Messages of one kind seen so far (collected in `Last`).
#[derive(Resource)]
struct Seen<M: Send + Sync + 'static>(Vec<M>);

fn collect<M: Message + Clone>(mut reader: MessageReader<M>, mut seen: ResMut<Seen<M>>) {
    seen.0.extend(reader.read().cloned());
}

fn watch<M: Message + Clone>(app: &mut App) {
    app.insert_resource(Seen::<M>(Vec::new())).add_systems(Last, collect::<M>);
}

struct TestApp {
    app: App,
    events: Sender<SyncEvent>,
    commands: Receiver<SyncCommand>,
}

impl TestApp {
    fn new(layout: LayoutMode, role: Role) -> Self {
        Self::new_with(layout, role, |_| {})
    }

    /// With more set up before the first update (which runs `Startup`).
    fn new_with(layout: LayoutMode, role: Role, setup: impl FnOnce(&mut App)) -> Self {
        let mut app = App::new();
        app.add_plugins((MinimalPlugins, AssetPlugin::default(), bevy::input::InputPlugin));
        app.add_plugins(ModelPlugin { waker: Waker::none() });
        app.init_asset::<Image>();
        app.insert_resource(TimeUpdateStrategy::ManualDuration(Duration::from_millis(20)));
        let (bridge, events, commands) = SyncBridge::channel_pair(role, "me");
        app.insert_resource(bridge).insert_resource(layout);
        app.add_plugins((
            score::plugin,
            navigation::plugin,
            sync::plugin,
            layout::plugin,
            input::plugin,
        ));
        watch::<PagesPresented>(&mut app);
        setup(&mut app);
        let mut t = TestApp { app, events, commands };
        t.app.update();
        t
    }

    /// A song this device has, without PDFium: `pages` A4 pages.
    fn fake_song(&mut self, name: &str, pages: u32) -> maestral_protocol::SongId {
        let song = Song {
            id: maestral_score::song_id(name.as_bytes()),
            path: PathBuf::from(format!("{name}.pdf")),
            title: name.into(),
            page_count: pages,
            page_sizes: vec![PageSize { width: 595.0, height: 842.0 }; pages as usize],
        };
        let id = song.id.clone();
        self.app.world_mut().resource_mut::<SongLibrary>().insert(song);
        id
    }

    fn window(&mut self, index: u8, width: u32, height: u32) -> Entity {
        let window = Window { resolution: WindowResolution::new(width, height), ..default() };
        self.app.world_mut().spawn((window, PageWindow { index })).id()
    }

    fn send(&mut self, message: impl Message) {
        self.app.world_mut().write_message(message);
    }

    fn turn(&mut self, turn: Turn) {
        self.send(PageTurnRequested(turn));
        self.app.update();
    }

    /// A view from the engine, chosen after `navigations` of this device's navigations.
    fn show(&self, view: View, navigations: u64) {
        self.engine(Event::Show { view, navigations });
    }

    fn engine(&self, event: Event) {
        self.events.send(SyncEvent::Engine(event)).expect("the app holds the receiver");
    }

    fn position(&self) -> Position {
        self.app.world().resource::<Position>().clone()
    }

    fn page(&self) -> u32 {
        self.position().page
    }

    /// Every command the app sent to the sync thread since the last call.
    fn sent(&self) -> Vec<SyncCommand> {
        self.commands.try_iter().collect()
    }

    fn set_pages(&self) -> Vec<u32> {
        self.sent()
            .into_iter()
            .filter_map(|c| match c {
                SyncCommand::Navigate { action: LocalAction::SetPage { page }, shown } => {
                    assert_eq!(shown.page_index, page, "the app shows what it sends");
                    Some(page)
                }
                _ => None,
            })
            .collect()
    }

    fn slots(&mut self) -> Vec<PageSlot> {
        let world = self.app.world_mut();
        let mut slots: Vec<PageSlot> = world.query::<&PageSlot>().iter(world).cloned().collect();
        slots.sort_by_key(|s| (s.window_index, s.slot));
        slots
    }

    fn shown_pages(&mut self) -> Vec<Option<u32>> {
        self.slots().iter().map(|s| s.shown.as_ref().map(|p| p.page)).collect()
    }

    fn presented(&mut self) -> Vec<PagesPresented> {
        std::mem::take(&mut self.app.world_mut().resource_mut::<Seen<PagesPresented>>().0)
    }

    /// Updates until `done`, sleeping a little between frames (the render thread works
    /// meanwhile); fails after [`WAIT`].
    fn update_until(&mut self, what: &str, mut done: impl FnMut(&mut Self) -> bool) {
        let deadline = Instant::now() + WAIT;
        loop {
            self.app.update();
            if done(self) {
                return;
            }
            assert!(Instant::now() < deadline, "no {what} within {WAIT:?}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

fn demo(name: &str) -> PathBuf {
    score::demo_library().join(name)
}

// ---- pure rules ---------------------------------------------------------------------------------

#[test]
fn the_app_turns_with_the_engines_pager_or_a_spread_of_its_own() {
    use navigation::pager;
    // Alone, a two-page layout turns by spreads; one page otherwise.
    assert_eq!(pager(LayoutMode::Single, EnginePager(Pager::SINGLE)), Pager::SINGLE);
    assert_eq!(pager(LayoutMode::TwoUp, EnginePager(Pager::SINGLE)), Pager::SPREAD);
    // Paired in Solo, the engine's pager (this device's half) rules whatever the layout.
    let layout = Layout { leader_device_id: DeviceId::new("partner"), parity: Parity::Odd };
    let half = Pager::solo(&layout, &DeviceId::new("me"), &DeviceId::new("partner"));
    assert_eq!(pager(LayoutMode::Single, EnginePager(half)), half);
    assert_eq!(pager(LayoutMode::TwoUp, EnginePager(half)), half);
    // The rule itself is the engine's (maestral-sync's pager tests): a spread keeps the half.
    assert_eq!(half.turn(1, Turn::Next, Some(11)), Some(3));
    assert_eq!(Pager::SPREAD.turn(8, Turn::Next, Some(11)), Some(10));
    assert_eq!(Pager::SINGLE.turn(2, Turn::Next, Some(3)), None, "no page after the last");
}

#[test]
fn taps_turn_by_zone_and_swipes_by_direction() {
    let size = Vec2::new(1000.0, 800.0);
    let tap = |x: f32, y: f32| gesture_action(size, Vec2::new(x, y), Vec2::new(x, y));
    assert_eq!(tap(900.0, 400.0), GestureAction::Turn(Turn::Next));
    assert_eq!(tap(600.0, 700.0), GestureAction::Turn(Turn::Next));
    assert_eq!(tap(100.0, 400.0), GestureAction::Turn(Turn::Prev));
    assert_eq!(tap(500.0, 20.0), GestureAction::ToggleUi, "the top strip shows the panel");
    let swipe = |dx: f32, dy: f32| {
        gesture_action(size, Vec2::new(500.0, 400.0), Vec2::new(500.0 + dx, 400.0 + dy))
    };
    assert_eq!(swipe(-200.0, 10.0), GestureAction::Turn(Turn::Next), "right to left");
    assert_eq!(swipe(200.0, -30.0), GestureAction::Turn(Turn::Prev), "left to right");
    assert_eq!(swipe(30.0, 200.0), GestureAction::Nothing, "a vertical drag turns nothing");
    assert_eq!(swipe(25.0, 5.0), GestureAction::Nothing, "a wobble is neither tap nor swipe");
}

#[test]
fn headless_lines_parse_into_commands() {
    use control::parse_command as p;
    assert_eq!(p("next"), Ok(ControlCommand::Next));
    assert_eq!(p("  prev  "), Ok(ControlCommand::Prev));
    assert_eq!(p("page 3"), Ok(ControlCommand::Page(3)));
    assert_eq!(p("song /tmp/a b.pdf"), Ok(ControlCommand::Song("/tmp/a b.pdf".into())));
    assert_eq!(p("quit"), Ok(ControlCommand::Quit));
    assert_eq!(p("M1A:ABC"), Ok(ControlCommand::Answer("M1A:ABC".into())));
    for bad in ["page", "page -1", "page x", "song", "next 2", "flip", "PAGE 1", "key Nope"] {
        let error = p(bad).expect_err(bad);
        assert!(!error.is_empty());
    }
}

// ---- navigation and the sync bridge -------------------------------------------------------------

#[test]
fn a_turn_changes_the_page_at_once_and_tells_the_sync_thread() {
    let mut t = TestApp::new(LayoutMode::Single, Role::Master);
    let song = t.fake_song("five", 5);
    t.send(SongChangeRequested(Some(song.clone())));
    t.app.update();
    assert_eq!(t.position(), Position { song: Some(song.clone()), page: 0 });
    let sent = t.sent();
    assert!(
        sent.iter().any(|c| matches!(c,
            SyncCommand::Navigate { action: LocalAction::SetSong { song_id: Some(s) }, .. }
                if *s == song)),
        "{sent:?}"
    );

    // Two turns in one frame: both count, in order.
    t.send(PageTurnRequested(Turn::Next));
    t.send(PageTurnRequested(Turn::Next));
    t.app.update();
    assert_eq!(t.page(), 2);
    assert_eq!(t.set_pages(), vec![1, 2]);

    t.turn(Turn::Last);
    assert_eq!(t.page(), 4);
    t.turn(Turn::Next);
    assert_eq!(t.page(), 4, "no page after the last");
    t.turn(Turn::To(1));
    assert_eq!(t.page(), 1);
    assert_eq!(t.set_pages(), vec![4, 1], "a turn that goes nowhere is not sent");
}

#[test]
fn a_view_chosen_before_the_latest_local_turn_never_moves_the_page_back() {
    let mut t = TestApp::new(LayoutMode::Single, Role::Master);
    let song = t.fake_song("ten", 10);
    t.send(SongChangeRequested(Some(song.clone())));
    t.app.update();
    for _ in 0..3 {
        t.send(PageTurnRequested(Turn::Next));
    }
    t.app.update();
    assert_eq!(t.page(), 3);
    let navigations = t.app.world().resource::<SyncBridge>().navigations();
    assert_eq!(navigations, 4, "a song change and three turns");
    let view = |page| View { song_id: Some(song.clone()), page_index: page };
    // Views the engine chose before it had this device's last turns: stale.
    t.show(view(0), 0);
    t.show(view(2), 3);
    t.app.update();
    assert_eq!(t.page(), 3, "a view older than the latest turn is not a turn");
    // One chosen after them (a peer's change, or a correction) is applied.
    t.show(view(7), 4);
    t.app.update();
    assert_eq!(t.page(), 7);
    assert!(t.set_pages().iter().all(|p| *p <= 3), "nothing sent back for a remote view");
}

#[test]
fn the_sync_bridge_turns_events_into_messages_and_resources() {
    let mut t = TestApp::new_with(LayoutMode::Single, Role::Follower, watch::<PhaseChanged>);
    t.engine(Event::Phase(Phase::FollowerJoining));
    t.engine(Event::Phase(Phase::FollowerJoining));
    t.app.update();
    let phases = std::mem::take(&mut t.app.world_mut().resource_mut::<Seen<PhaseChanged>>().0);
    assert_eq!(
        phases,
        vec![PhaseChanged(Phase::FollowerJoining)],
        "a repeated phase is one change"
    );
    let status = t.app.world().resource::<LinkStatus>().clone();
    assert_eq!(status.phase, Some(Phase::FollowerJoining));
    assert_eq!(status.indicator(), LinkIndicator::Connecting);

    t.engine(Event::Phase(Phase::FollowerConnectedFollow));
    t.engine(Event::Link { peer: DeviceId::new("M"), state: LinkState::Connected });
    t.events.send(SyncEvent::JoinCode("maestral://join?x".into())).expect("open");
    t.app.update();
    let status = t.app.world().resource::<LinkStatus>().clone();
    assert_eq!(status.links.get(&DeviceId::new("M")), Some(&LinkState::Connected));
    assert_eq!(status.indicator(), LinkIndicator::Connected);
    assert_eq!(
        t.app.world().resource::<SessionCodes>().join_code.as_deref(),
        Some("maestral://join?x")
    );

    t.engine(Event::Link { peer: DeviceId::new("M"), state: LinkState::Degraded });
    t.app.update();
    assert_eq!(t.app.world().resource::<LinkStatus>().indicator(), LinkIndicator::Degraded);

    // A song this device does not have: shown as unknown, never a crash.
    let stranger = maestral_protocol::SongId::new("ab".repeat(32));
    t.show(View { song_id: Some(stranger.clone()), page_index: 4 }, 0);
    t.app.update();
    assert_eq!(t.position(), Position { song: Some(stranger), page: 4 });
    // A local turn on a Follower goes to the engine too (it decides what follow mode means).
    t.turn(Turn::Next);
    assert_eq!(t.page(), 5);
    assert_eq!(t.set_pages(), vec![5]);
}

#[test]
fn a_solo_pair_turns_by_spreads_and_each_device_keeps_its_half() {
    let mut t = TestApp::new(LayoutMode::Single, Role::Solo);
    let song = t.fake_song("eleven", 11);
    t.engine(Event::Phase(Phase::SoloPairedConnected));
    // The partner leads with odd: this device shows the even pages (odd indexes).
    let (me, partner) = (DeviceId::new("me"), DeviceId::new("partner"));
    let layout = Layout { leader_device_id: partner.clone(), parity: Parity::Odd };
    t.engine(Event::Pager(Pager::solo(&layout, &me, &partner)));
    t.show(View { song_id: Some(song.clone()), page_index: 1 }, 0);
    t.app.update();
    assert!(t.app.world().resource::<EnginePager>().0.shows_second());
    assert_eq!(t.page(), 1);
    t.turn(Turn::Next);
    assert_eq!(t.page(), 3, "a turn moves the shared spread: this half is 3");
    t.turn(Turn::Prev);
    t.turn(Turn::Prev);
    assert_eq!(t.page(), 1);
    assert_eq!(t.set_pages(), vec![3, 1]);

    // This device leads with odd parity: it shows the spread's first page.
    let layout = Layout { leader_device_id: me.clone(), parity: Parity::Odd };
    t.engine(Event::Pager(Pager::solo(&layout, &me, &partner)));
    t.app.update();
    assert!(!t.app.world().resource::<EnginePager>().0.shows_second());

    // Alone again, it turns one page at a time.
    t.engine(Event::Phase(Phase::SoloLocalOnly));
    t.engine(Event::Pager(Pager::SINGLE));
    t.app.update();
    t.turn(Turn::Next);
    assert_eq!(t.page(), 2);
}

#[test]
fn a_peers_page_past_the_end_shows_the_last_page() {
    let mut t = TestApp::new(LayoutMode::Single, Role::Follower);
    let song = t.fake_song("eight", 8);
    t.show(View { song_id: Some(song.clone()), page_index: 99 }, 0);
    t.app.update();
    assert_eq!(t.position(), Position { song: Some(song), page: 7 });
    // A song this device does not have: the page as given, whatever it is.
    let stranger = maestral_protocol::SongId::new("cd".repeat(32));
    t.show(View { song_id: Some(stranger.clone()), page_index: u32::MAX }, 0);
    t.app.update();
    assert_eq!(t.position(), Position { song: Some(stranger), page: u32::MAX });
    t.turn(Turn::Next);
    assert_eq!(t.page(), u32::MAX, "no page after the last number there is");
}

#[test]
fn the_panel_hides_when_the_page_follows_another_device() {
    let mut t = TestApp::new_with(LayoutMode::Single, Role::Follower, |app| {
        app.add_plugins(maestral::ui::plugin);
    });
    let song = t.fake_song("eight", 8);
    let show = |page| Event::Show {
        view: View { song_id: Some(song.clone()), page_index: page },
        navigations: 0,
    };
    t.engine(show(0));
    t.app.update();
    assert_eq!(t.page(), 0);
    t.app.world_mut().resource_mut::<UiVisible>().0 = true;
    // The same view again moves nothing: the panel stays.
    t.engine(show(0));
    t.app.update();
    t.app.update();
    assert!(t.app.world().resource::<UiVisible>().0, "nothing moved");
    // The Master turns: the performer is playing, the panel goes.
    t.engine(show(3));
    t.app.update();
    assert_eq!(t.page(), 3);
    assert!(!t.app.world().resource::<UiVisible>().0, "the page followed the Master");
    // A song change from the Master too.
    t.app.world_mut().resource_mut::<UiVisible>().0 = true;
    let other = t.fake_song("four", 4);
    t.show(View { song_id: Some(other), page_index: 0 }, 0);
    t.app.update();
    assert!(!t.app.world().resource::<UiVisible>().0, "the song followed the Master");
}

// ---- opening scores -----------------------------------------------------------------------------

/// A score file that arrives only when the test writes it (a named pipe): opening it takes as
/// long as the test wants.
#[cfg(unix)]
#[test]
fn opening_a_score_never_holds_up_a_frame() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    let dir = std::env::temp_dir().join(format!(
        "maestral-slow-open-{}-{:?}",
        std::process::id(),
        Instant::now()
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let fifo = dir.join("slow.pdf");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status().expect("mkfifo runs");
    assert!(made.success(), "mkfifo {}", fifo.display());
    let bytes = std::fs::read(demo("harbour-lights-jig.pdf")).expect("the demo score");
    let feed = {
        let (fifo, bytes) = (fifo.clone(), bytes.clone());
        move || {
            use std::io::Write;
            let mut pipe =
                std::fs::OpenOptions::new().write(true).open(&fifo).expect("the pipe opens");
            pipe.write_all(&bytes).expect("the score goes through the pipe");
        }
    };
    // Should a frame wait for the file, this feeds it after a while, so the test ends (and
    // fails) instead of hanging.
    let rescued = Arc::new(AtomicBool::new(false));
    let (frames_done, watch) = crossbeam_channel::bounded::<()>(1);
    let watchdog = {
        let (rescued, feed) = (rescued.clone(), feed.clone());
        std::thread::spawn(move || {
            if watch.recv_timeout(WAIT) == Err(crossbeam_channel::RecvTimeoutError::Timeout) {
                rescued.store(true, Ordering::SeqCst);
                feed();
            }
        })
    };

    let mut t = TestApp::new(LayoutMode::Single, Role::Solo);
    t.send(OpenScore { path: fifo.clone(), show: true });
    for _ in 0..5 {
        t.app.update();
    }
    let _ = frames_done.send(());
    watchdog.join().expect("watchdog");
    assert!(!rescued.load(Ordering::SeqCst), "a frame waited for the score file");
    assert_eq!(t.position().song, None, "nothing to show before the file is read");
    assert_eq!(t.app.world().resource::<PendingOpens>().in_flight(), 1);

    // The file's bytes come: the score opens over the next frames and is shown.
    let feeder = std::thread::spawn(feed);
    t.update_until("the score shown", |t| t.position().song.is_some());
    feeder.join().expect("feeder");
    let id = maestral_score::song_id(&bytes);
    assert_eq!(t.position(), Position { song: Some(id.clone()), page: 0 });
    assert_eq!(t.app.world().resource::<SongLibrary>().page_count(Some(&id)), Some(2));
    assert!(t.app.world().resource::<PendingOpens>().is_empty());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn scores_opened_one_after_the_other_are_shown_in_that_order() {
    let mut t = TestApp::new(LayoutMode::Single, Role::Solo);
    t.send(OpenScore { path: demo("lanterns-on-the-water.pdf"), show: true });
    t.send(OpenScore { path: demo("harbour-lights-jig.pdf"), show: true });
    t.update_until("both opened", |t| {
        t.app.world().resource::<PendingOpens>().is_empty()
            && t.app.world().resource::<SongLibrary>().songs().len() == 2
    });
    let jig = std::fs::read(demo("harbour-lights-jig.pdf")).expect("the demo score");
    assert_eq!(t.position().song, Some(maestral_score::song_id(&jig)), "the last asked");
}

// ---- layouts ------------------------------------------------------------------------------------

fn plan_pages(t: &TestApp) -> Vec<(u8, u8, Option<u32>, u32, u32)> {
    t.app
        .world()
        .resource::<Plan>()
        .slots
        .iter()
        .map(|s| (s.window_index, s.slot, s.page, s.rect.width, s.rect.height))
        .collect()
}

#[test]
fn two_up_shows_the_spread_side_by_side_and_prefetches_the_next() {
    let mut t = TestApp::new(LayoutMode::TwoUp, Role::Solo);
    t.window(0, 800, 600);
    let song = t.fake_song("five", 5);
    t.send(SongChangeRequested(Some(song)));
    t.app.update();
    assert_eq!(plan_pages(&t), vec![(0, 0, Some(0), 400, 600), (0, 1, Some(1), 400, 600)]);
    t.turn(Turn::Next);
    assert_eq!(t.page(), 2);
    assert_eq!(plan_pages(&t), vec![(0, 0, Some(2), 400, 600), (0, 1, Some(3), 400, 600)]);
    let wanted = t.app.world().resource::<WantedPages>().clone();
    let pages = |keys: &[maestral_score::PageKey]| keys.iter().map(|k| k.page).collect::<Vec<_>>();
    assert_eq!(pages(&wanted.visible), vec![2, 3]);
    assert_eq!(pages(&wanted.prefetch), vec![4, 0, 1], "the next spread, then the previous");
    // The last spread of an odd count has an empty right half.
    t.turn(Turn::Next);
    assert_eq!(plan_pages(&t), vec![(0, 0, Some(4), 400, 600), (0, 1, None, 400, 600)]);
}

#[test]
fn the_dual_layout_puts_the_odd_page_in_one_window_and_the_even_in_the_other() {
    let mut t = TestApp::new(LayoutMode::DualWindow, Role::Solo);
    t.window(0, 640, 480);
    t.window(1, 500, 700);
    let song = t.fake_song("six", 6);
    t.send(SongChangeRequested(Some(song)));
    t.app.update();
    t.turn(Turn::Next);
    assert_eq!(plan_pages(&t), vec![(0, 0, Some(2), 640, 480), (1, 0, Some(3), 500, 700)]);
}

#[test]
fn a_quarter_turned_projector_draws_pages_for_the_turned_screen() {
    let mut t = TestApp::new(LayoutMode::Single, Role::Solo);
    t.app.insert_resource(Projector { rotation: maestral::model::Rotation::Cw90, dark: true });
    t.window(0, 800, 600);
    let song = t.fake_song("two", 2);
    t.send(SongChangeRequested(Some(song)));
    t.app.update();
    assert_eq!(plan_pages(&t), vec![(0, 0, Some(0), 600, 800)]);
    assert!(t.app.world().resource::<WantedPages>().dark);
}

// ---- input --------------------------------------------------------------------------------------

fn key(t: &mut TestApp, window: Entity, code: KeyCode, repeat: bool) {
    key_state(t, window, code, ButtonState::Pressed, repeat);
    key_state(t, window, code, ButtonState::Released, false);
}

fn key_state(t: &mut TestApp, window: Entity, code: KeyCode, state: ButtonState, repeat: bool) {
    t.send(KeyboardInput {
        key_code: code,
        logical_key: Key::Unidentified(NativeKey::Unidentified),
        state,
        text: None,
        repeat,
        window,
    });
}

#[test]
fn key_repeat_and_a_bouncing_pedal_never_turn_two_pages() {
    let mut t = TestApp::new(LayoutMode::Single, Role::Solo);
    let window = t.window(0, 400, 300);
    let song = t.fake_song("twelve", 12);
    t.send(SongChangeRequested(Some(song)));
    t.app.update();

    key(&mut t, window, KeyCode::PageDown, false);
    t.app.update();
    assert_eq!(t.page(), 1);
    // The OS repeats a held key: ignored.
    key(&mut t, window, KeyCode::PageDown, true);
    t.app.update();
    assert_eq!(t.page(), 1);
    // A bounce 20 ms later: ignored.
    key(&mut t, window, KeyCode::PageDown, false);
    t.app.update();
    assert_eq!(t.page(), 1, "a second press within 150 ms is a bounce");
    // Two presses in one frame: one turn.
    for _ in 0..10 {
        t.app.update();
    }
    key(&mut t, window, KeyCode::PageDown, false);
    key(&mut t, window, KeyCode::PageDown, false);
    t.app.update();
    assert_eq!(t.page(), 2);
    // The other pedal is another key: not held back by the first one's debounce.
    key(&mut t, window, KeyCode::PageUp, false);
    t.app.update();
    assert_eq!(t.page(), 1);

    // A press, then (no release) another press 200 ms later: the switch never opened, so one
    // turn. Once released, the next press turns again.
    for _ in 0..10 {
        t.app.update();
    }
    key_state(&mut t, window, KeyCode::PageDown, ButtonState::Pressed, false);
    t.app.update();
    assert_eq!(t.page(), 2);
    for _ in 0..10 {
        t.app.update();
    }
    key_state(&mut t, window, KeyCode::PageDown, ButtonState::Pressed, false);
    t.app.update();
    assert_eq!(t.page(), 2, "a second press with no release in between is not a turn");
    key_state(&mut t, window, KeyCode::PageDown, ButtonState::Released, false);
    t.app.update();
    key(&mut t, window, KeyCode::PageDown, false);
    t.app.update();
    assert_eq!(t.page(), 3, "released, the pedal turns again");
    key(&mut t, window, KeyCode::PageUp, false);
    key(&mut t, window, KeyCode::PageUp, false);
    t.app.update();
    assert_eq!(t.page(), 2);

    // Arrows, space, Home and End.
    for _ in 0..10 {
        t.app.update();
    }
    key(&mut t, window, KeyCode::End, false);
    t.app.update();
    assert_eq!(t.page(), 11);
    key(&mut t, window, KeyCode::Home, false);
    t.app.update();
    assert_eq!(t.page(), 0);
    key(&mut t, window, KeyCode::Space, false);
    t.app.update();
    assert_eq!(t.page(), 1);

    // Number entry, counted from 1 as printed: "10" Enter shows page index 9.
    key(&mut t, window, KeyCode::Digit1, false);
    key(&mut t, window, KeyCode::Digit0, false);
    t.app.update();
    assert_eq!(t.page(), 1, "digits alone do not turn");
    key(&mut t, window, KeyCode::Enter, false);
    t.app.update();
    assert_eq!(t.page(), 9);
}

#[test]
fn a_bounce_read_after_a_long_frame_is_still_a_bounce() {
    use input::Debounce;
    let ms = Duration::from_millis;
    let mut d = Debounce::default();
    // Read at the start of a frame at 1 s; that frame's work takes 300 ms.
    assert!(d.press(KeyCode::PageDown, ms(1000)));
    d.frame_ended(ms(1300));
    // The switch bounces (release, press) while the frame works; the next frame reads both
    // at 1.3 s: 300 ms after the first press was read, yet no more than the bounce after it.
    d.release(KeyCode::PageDown);
    assert!(!d.press(KeyCode::PageDown, ms(1301)), "a bounce during a long frame");
    d.release(KeyCode::PageDown);
    // A real second press, well after the frame's end.
    assert!(d.press(KeyCode::PageDown, ms(1300 + 150)));
    d.frame_ended(ms(1460));
    // Held down (no release): another press is not a second turn.
    assert!(!d.press(KeyCode::PageDown, ms(1700)));
    // A release lost to another window: the keyboard focus moving away releases every key.
    d.release_all();
    assert!(d.press(KeyCode::PageDown, ms(1900)));
}

// ---- page textures (PDFium) ---------------------------------------------------------------------

/// An app drawing the 11-page demo score into a 400×300 window, with page 0 on screen.
fn drawing_app(layout: LayoutMode) -> (TestApp, Entity) {
    let mut t = TestApp::new(layout, Role::Solo);
    let bridge = RenderBridge::start(Waker::none()).expect("PDFium: run `cargo xtask setup`");
    t.app.insert_resource(bridge);
    let window = t.window(0, 400, 300);
    t.send(OpenScore { path: demo("lanterns-on-the-water.pdf"), show: true });
    t.update_until("page 0 on screen", |t| t.shown_pages() == vec![Some(0)]);
    (t, window)
}

fn has_texture(t: &TestApp, page: u32) -> bool {
    t.app.world().resource::<PageTextures>().keys().any(|k| k.page.page == page)
}

#[test]
fn a_cold_turn_keeps_the_old_page_until_the_new_one_is_ready_then_swaps_in_one_frame() {
    let (mut t, _) = drawing_app(LayoutMode::Single);
    let old = t.slots()[0].shown.clone().expect("page 0 shown");
    t.presented();
    // Hold the render thread so the new page cannot arrive yet.
    t.app.world().resource::<RenderBridge>().client().pause();
    t.turn(Turn::To(7));
    assert_eq!(t.page(), 7, "the position changes at once");
    for _ in 0..20 {
        t.app.update();
        std::thread::sleep(Duration::from_millis(5));
        let slot = &t.slots()[0];
        assert_eq!(
            slot.shown.as_ref(),
            Some(&old),
            "the old page stays, whole, until the new one is ready"
        );
    }
    assert!(t.presented().is_empty(), "nothing was swapped meanwhile");
    t.app.world().resource::<RenderBridge>().client().resume();
    let mut frames_shown = Vec::new();
    t.update_until("page 7 on screen", |t| {
        let shown = t.shown_pages();
        frames_shown.push(shown.clone());
        shown == vec![Some(7)]
    });
    assert!(
        frames_shown.iter().all(|s| s == &vec![Some(0)] || s == &vec![Some(7)]),
        "never blank: {frames_shown:?}"
    );
    let presented = t.presented();
    assert_eq!(presented.len(), 1, "one swap: {presented:?}");
    assert!(presented[0].pages[0].exact);
}

#[test]
fn a_prefetched_page_is_on_screen_in_the_frame_of_the_turn() {
    let (mut t, _) = drawing_app(LayoutMode::Single);
    t.update_until("page 1 prefetched", |t| has_texture(t, 1));
    t.presented();
    t.turn(Turn::Next);
    assert_eq!(t.shown_pages(), vec![Some(1)], "swapped in the same update as the turn");
    let presented = t.presented();
    assert_eq!(presented.len(), 1);
    assert_eq!(presented[0].since_turn.map(|(_, frames)| frames), Some(0));
}

#[test]
fn both_halves_of_a_spread_swap_in_the_same_frame() {
    let mut t = TestApp::new(LayoutMode::TwoUp, Role::Solo);
    t.app.insert_resource(RenderBridge::start(Waker::none()).expect("PDFium"));
    t.window(0, 600, 300);
    t.send(OpenScore { path: demo("lanterns-on-the-water.pdf"), show: true });
    t.update_until("pages 0 and 1 on screen", |t| t.shown_pages() == vec![Some(0), Some(1)]);
    t.presented();
    t.turn(Turn::To(6));
    t.update_until("pages 6 and 7 on screen", |t| {
        let shown = t.shown_pages();
        assert!(
            shown == vec![Some(0), Some(1)] || shown == vec![Some(6), Some(7)],
            "a half-turned spread: {shown:?}"
        );
        shown == vec![Some(6), Some(7)]
    });
    assert_eq!(t.presented().len(), 1);
}

#[test]
fn textures_of_pages_turned_away_from_are_released() {
    let (mut t, _) = drawing_app(LayoutMode::Single);
    t.update_until("neighbours prefetched", |t| has_texture(t, 1) && has_texture(t, 2));
    t.turn(Turn::To(8));
    t.update_until("page 8 on screen", |t| t.shown_pages() == vec![Some(8)]);
    t.update_until("page 9 prefetched", |t| has_texture(t, 9));
    for _ in 0..3 {
        t.app.update();
    }
    let held: Vec<u32> =
        t.app.world().resource::<PageTextures>().keys().map(|k| k.page.page).collect();
    assert!(
        held.iter().all(|p| [7, 8, 9, 10].contains(p)),
        "only the shown page and its neighbours: {held:?}"
    );
    let images = t.app.world().resource::<Assets<Image>>().len();
    assert!(images <= 4, "the old pages' images are freed ({images} left)");
}

#[test]
fn a_resized_window_shows_the_old_page_scaled_until_the_page_at_the_new_size_arrives() {
    let (mut t, window) = drawing_app(LayoutMode::Single);
    t.presented();
    t.app.world().resource::<RenderBridge>().client().pause();
    t.app
        .world_mut()
        .get_mut::<Window>(window)
        .expect("window")
        .resolution
        .set_physical_resolution(800, 600);
    t.app.update();
    let slot = t.slots()[0].clone();
    let shown = slot.shown.expect("still shown");
    assert_eq!(shown.page, 0);
    assert_eq!(
        shown.drawn_for,
        maestral_score::PixelSize::new(400, 300),
        "the old texture, scaled"
    );
    t.app.world().resource::<RenderBridge>().client().resume();
    t.update_until("page 0 at 800×600", |t| {
        t.slots()[0]
            .shown
            .as_ref()
            .is_some_and(|s| s.drawn_for == maestral_score::PixelSize::new(800, 600))
    });
    assert_eq!(t.shown_pages(), vec![Some(0)]);
}

// ---- headless control, in process ---------------------------------------------------------------

#[test]
fn headless_commands_drive_the_app_and_events_come_out_as_json_lines() {
    let mut app = App::new();
    app.add_plugins((MinimalPlugins, ModelPlugin { waker: Waker::none() }));
    let (input, lines) = ControlInput::channel();
    let (output, buffer) = ControlOutput::buffer();
    app.insert_resource(input).insert_resource(output);
    app.add_plugins((score::plugin, navigation::plugin, sync::plugin, control::plugin));
    let send = |l: &str| lines.send(ControlLine::Line(l.into())).expect("open");
    send(&format!("song {}", demo("harbour-lights-jig.pdf").display()));
    send("next");
    send("page 9");
    send("dance");
    send("key PageDown");
    lines.send(ControlLine::Closed).expect("open");
    let deadline = Instant::now() + WAIT;
    while app.should_exit().is_none() {
        assert!(Instant::now() < deadline, "the app did not quit: {:?}", buffer.events());
        app.update();
    }
    let events = buffer.events();
    let kinds: Vec<&str> = events.iter().filter_map(|e| e["event"].as_str()).collect();
    assert_eq!(kinds, vec!["ready", "show", "show", "error", "error", "error"], "{events:#?}");
    assert_eq!(events[1]["page_index"], 0);
    assert_eq!(events[1]["page_count"], 2);
    assert_eq!(events[2]["page_index"], 1);
    assert!(events[3]["message"].as_str().is_some_and(|m| m.contains("past the end")));
    assert!(events[4]["message"].as_str().is_some_and(|m| m.contains("unknown command")));
    assert!(events[5]["message"].as_str().is_some_and(|m| m.contains("needs a window")));
}

// ---- persistence (PDFium) -----------------------------------------------------------------------

fn app_with_state(state: &std::path::Path) -> TestApp {
    TestApp::new_with(LayoutMode::Single, Role::Solo, |app| {
        app.insert_resource(maestral::model::SyncSettings {
            mode: maestral::model::SyncMode::Solo,
            device_id: "me".into(),
            device_name: "me".into(),
            state_dir: Some(state.to_path_buf()),
            locate: maestral_net::LocateConfig::Off,
            pages: None,
        });
        app.add_plugins(maestral::persistence::PositionsPlugin { resume: true });
    })
}

#[test]
fn the_app_opens_where_the_performer_left_off() {
    let state = std::env::temp_dir().join(format!("maestral-positions-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&state);
    {
        let mut first = app_with_state(&state);
        first.send(OpenScore { path: demo("lanterns-on-the-water.pdf"), show: true });
        first.update_until("the score shown", |t| t.position().song.is_some());
        assert_eq!(first.page(), 0);
        first.turn(Turn::To(5));
        first.app.update();
    }
    assert!(state.join("positions.json").is_file(), "the position is kept");
    let mut again = app_with_state(&state);
    again.send(OpenScore { path: demo("lanterns-on-the-water.pdf"), show: true });
    again.update_until("the score shown", |t| t.position().song.is_some());
    assert_eq!(again.page(), 5, "it opens on the page it was left at");
    // Only the first score resumes; a song opened later starts at its beginning.
    let lanterns = again.position().song;
    again.send(OpenScore { path: demo("harbour-lights-jig.pdf"), show: true });
    again.update_until("the jig shown", |t| {
        t.position().song.is_some_and(|s| Some(&s) != lanterns.as_ref())
    });
    again.send(OpenScore { path: demo("lanterns-on-the-water.pdf"), show: true });
    again.update_until("the first score shown again", |t| t.position().song == lanterns);
    assert_eq!(again.page(), 0);
    let _ = std::fs::remove_dir_all(&state);
}

#[test]
fn a_corrupt_positions_file_is_set_aside_with_one_message_and_the_app_runs() {
    let state = std::env::temp_dir().join(format!("maestral-broken-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&state);
    std::fs::create_dir_all(&state).expect("state dir");
    let file = state.join("positions.json");
    let broken = state.join("positions.json.broken");
    std::fs::write(&file, "{\"last_song\": \"ab").expect("write");
    let mut t = TestApp::new_with(LayoutMode::Single, Role::Solo, |app| {
        watch::<AppError>(app);
        app.insert_resource(maestral::model::SyncSettings {
            mode: maestral::model::SyncMode::Solo,
            device_id: "me".into(),
            device_name: "me".into(),
            state_dir: Some(state.clone()),
            locate: maestral_net::LocateConfig::Off,
            pages: None,
        });
        app.add_plugins(maestral::persistence::PositionsPlugin { resume: true });
    });
    for _ in 0..5 {
        t.app.update();
    }
    let errors = std::mem::take(&mut t.app.world_mut().resource_mut::<Seen<AppError>>().0);
    assert_eq!(errors.len(), 1, "{errors:?}");
    let message = &errors[0].0;
    assert!(
        message.contains(&file.display().to_string())
            && message.contains(&broken.display().to_string()),
        "the message names both files: {message}"
    );
    assert_eq!(
        std::fs::read_to_string(&broken).expect("set aside"),
        "{\"last_song\": \"ab",
        "kept as it was"
    );
    assert!(!file.exists(), "nothing written while nothing changed");

    // The app runs on, and the first real change is kept.
    let song = t.fake_song("three", 3);
    t.send(SongChangeRequested(Some(song.clone())));
    t.app.update();
    t.turn(Turn::Next);
    let deadline = Instant::now() + WAIT;
    let kept = loop {
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        if text.contains("\"pages\"") && text.contains(&format!("\"{}\":1", song.as_str())) {
            break text;
        }
        assert!(Instant::now() < deadline, "the position was not kept: {text:?}");
        std::thread::sleep(Duration::from_millis(10));
    };
    let kept: serde_json::Value = serde_json::from_str(&kept).expect("JSON");
    assert_eq!(kept["last_song"], song.as_str());
    t.app.update();
    assert!(t.app.world().resource::<Seen<AppError>>().0.is_empty(), "no further message");
    let _ = std::fs::remove_dir_all(&state);
}

#[test]
fn dark_pages_replace_the_light_ones_in_one_swap() {
    let (mut t, _) = drawing_app(LayoutMode::Single);
    t.presented();
    t.app.world_mut().resource_mut::<Projector>().dark = true;
    t.update_until("the dark page", |t| {
        let shown = t.slots()[0].shown.clone().expect("never blank");
        assert_eq!(shown.page, 0);
        shown.dark
    });
    assert_eq!(t.presented().len(), 1);
}

#[test]
fn a_half_page_turn_waits_for_the_next_page_then_swaps_both_halves_in_one_frame() {
    let (mut t, _) = drawing_app(LayoutMode::HalfTurns);
    t.presented();
    t.sent();
    // Pages 7 and 8 not drawn yet (a jump, then the first press of a half turn): page 0 stays
    // whole until both are ready, then both halves swap in together.
    t.app.world().resource::<RenderBridge>().client().pause();
    t.turn(Turn::To(7));
    assert_eq!(t.set_pages(), vec![7]);
    t.turn(Turn::Next);
    t.app.world().resource::<RenderBridge>().client().resume();
    let whole = vec![(Some(0), PagePart::Whole)];
    let half = vec![(Some(8), PagePart::Top), (Some(7), PagePart::Bottom)];
    t.update_until("the half turn on screen", |t| {
        let shown = parts(t);
        assert!(shown == whole || shown == half, "a half-drawn frame: {shown:?}");
        shown == half
    });
    assert_eq!(t.presented().len(), 1, "one swap");
    assert_eq!(t.page(), 7, "the position is not moved by the first press");
    assert!(t.set_pages().is_empty(), "nothing is sent by the first press");
    // The second press: page 8 whole, in the frame of the press (its texture is on show).
    t.turn(Turn::Next);
    assert_eq!(parts(&mut t), vec![(Some(8), PagePart::Whole)]);
    assert_eq!(t.presented()[0].since_turn.map(|(_, f)| f), Some(0));
    assert_eq!(t.set_pages(), vec![8], "the completed turn is a whole page turn");
    // A half taken back: page 8 whole again, nothing sent.
    t.update_until("page 9 prefetched", |t| has_texture(t, 9));
    t.turn(Turn::Next);
    assert_eq!(parts(&mut t), vec![(Some(9), PagePart::Top), (Some(8), PagePart::Bottom)]);
    t.turn(Turn::Prev);
    assert_eq!(parts(&mut t), vec![(Some(8), PagePart::Whole)]);
    assert_eq!((t.page(), t.set_pages()), (8, vec![]));
}

/// What each slot shows: its page and the part drawn.
fn parts(t: &mut TestApp) -> Vec<(Option<u32>, PagePart)> {
    t.slots().iter().map(|s| (s.shown.as_ref().map(|p| p.page), part(s))).collect()
}

fn part(slot: &PageSlot) -> PagePart {
    slot.shown.as_ref().map_or(PagePart::Whole, |s| s.part)
}
