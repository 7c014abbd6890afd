//! [`AppPlugin`]: the whole app, windowed or headless, assembled from one plugin per concern.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Mutex;
use std::time::Duration;

use bevy::app::PluginsState;
use bevy::asset::RenderAssetUsages;
use bevy::log::LogPlugin;
use bevy::prelude::*;
use bevy::render::RenderPlugin;
use bevy::render::pipelined_rendering::PipelinedRenderingPlugin;
use bevy::window::{MonitorSelection, WindowMode, WindowResolution};
use bevy::winit::{EventLoopProxyWrapper, UpdateMode, WinitSettings, WinitUserEvent};
use bevy_egui::EguiPlugin;
use crossbeam_channel::Receiver;

use crate::control::{self, ControlInput};
use crate::display::{self, WindowSetup};
use crate::model::{AppError, ModelPlugin, OpenScore, SyncMode, SyncSettings};
use crate::score::{self, PageImageUsage, RenderBridge};
use crate::wake::Waker;
use crate::{input, layout, navigation, open, persistence, sync, ui};

/// Everything the command line decides.
#[derive(Debug, Clone)]
pub struct AppOptions {
    /// A score or a folder of scores.
    pub library: PathBuf,
    pub frontend: Frontend,
    /// The screen settings the command line gave (the window keeps the rest: `settings`).
    pub screen: crate::settings::Given,
    pub sync: SyncSettings,
}

#[derive(Debug, Clone)]
pub enum Frontend {
    /// No window: line commands in, JSON events out.
    Headless,
    Window(WindowOptions),
}

#[derive(Debug, Clone)]
pub struct WindowOptions {
    pub size: (u32, u32),
    pub fullscreen: bool,
    /// The dual layout as two windows side by side.
    pub side_by_side: bool,
    /// Also take line commands and write JSON events (tests, benchmarks).
    pub control: bool,
}

/// The app: the model, the score, navigation, sync bridge and control plugins everywhere; the
/// window, layout, input and UI plugins when there is a window.
#[derive(Debug)]
pub struct AppPlugin {
    pub options: AppOptions,
}

impl Plugin for AppPlugin {
    fn build(&self, app: &mut App) {
        let options = &self.options;
        // The frontend comes first: the window's waker is winit's event-loop proxy.
        let waker = match &options.frontend {
            Frontend::Headless => build_headless(app),
            Frontend::Window(window) => build_window(app, window),
        };
        // A Master serves its pages to browser Followers, rendered apart from the app's own.
        let web_pages = crate::web_pages::WebPages::default();
        let mut sync_settings = options.sync.clone();
        let renderer: std::sync::Arc<dyn maestral_net::PageImages> =
            std::sync::Arc::new(web_pages.clone());
        sync_settings.pages = Some(maestral_net::PageRenderer(renderer));
        app.add_plugins(ModelPlugin { waker: waker.clone() });
        // The window opens as it was left; a headless app runs as it is told.
        let screen = match &options.frontend {
            Frontend::Window(_) => {
                crate::settings::install(app, options.sync.state_dir.as_deref(), options.screen)
            }
            Frontend::Headless => options.screen.over(Default::default()),
        };
        app.insert_resource(screen.layout)
            .insert_resource(screen.projector)
            .insert_resource(screen.ui_size)
            .insert_resource(sync_settings)
            .insert_resource(web_pages)
            .add_systems(PreUpdate, crate::web_pages::follow_library)
            .add_plugins((score::plugin, navigation::plugin, sync::plugin, crate::stream::plugin));
        let control = match &options.frontend {
            Frontend::Headless => true,
            Frontend::Window(window) => {
                add_window_plugins(app, window, &waker);
                window.control
            }
        };
        // Every role keeps where each song was left. Solo in a window, with no partner to take
        // the page from, opens there; scripts and sessions start from what they are told.
        let resume = matches!(options.frontend, Frontend::Window(_))
            && matches!(options.sync.mode, SyncMode::Solo)
            && !resumes(&options.sync);
        app.add_plugins(persistence::PositionsPlugin { resume })
            .add_plugins(crate::setlist::plugin);
        if control {
            app.insert_resource(ControlInput::stdin(waker)).add_plugins(control::plugin);
        }
        // The library: opened at start; in the window its first score is shown too, and so is
        // a file argument headless (docs/headless.md); a Follower waits for its Master's song.
        let shown_at_start =
            matches!(options.frontend, Frontend::Window(_)) || options.library.is_file();
        let show = shown_at_start && !resumes(&options.sync);
        let open = OpenScore { path: options.library.clone(), show };
        app.add_systems(Startup, move |mut opens: MessageWriter<OpenScore>| {
            opens.write(open.clone());
        });
    }
}

/// Whether the role starts from what the state directory kept (a Master's session, a
/// Follower's membership, a Solo pairing), or waits for a Master: then the position comes from
/// the sync thread, and the score opened at start is not shown (showing it would be a song
/// change: a resumed Master would move the whole choir to page 0).
fn resumes(sync: &SyncSettings) -> bool {
    let stored = sync.state_dir.as_deref().map(maestral_net::stored).unwrap_or_default();
    match sync.mode {
        SyncMode::Join(_) | SyncMode::Rejoin { .. } => true,
        SyncMode::ChoirMaster { .. } => stored.master_session,
        SyncMode::Solo | SyncMode::SoloOffer | SyncMode::SoloAnswer(_) => stored.solo.is_some(),
    }
}

/// No window: a runner that sleeps until woken; returns the waker that wakes it.
fn build_headless(app: &mut App) -> Waker {
    app.add_plugins((MinimalPlugins, LogPlugin::default()));
    let (waker, woken) = Waker::channel();
    app.set_runner(move |app| headless_runner(app, woken));
    waker
}

/// A headless frame with nothing woken runs at least this often: a safety net only, since every
/// thread that brings news (sync, standard input, render, library scan) wakes the loop.
const HEADLESS_IDLE_FRAME: Duration = Duration::from_secs(1);

/// Runs frames when something arrives (a command, a sync event) and at least every
/// [`HEADLESS_IDLE_FRAME`]; sleeps in between. Every schedule runs on this thread alone: a
/// headless frame is a handful of cheap systems, and handing them to the compute pool's threads
/// cost more than running them (100 headless Followers on 2 cores spent most of their CPU on
/// frames with nothing to do: `cargo xtask faults`' join storm).
fn headless_runner(mut app: App, woken: Receiver<()>) -> AppExit {
    if app.plugins_state() != PluginsState::Cleaned {
        while app.plugins_state() == PluginsState::Adding {
            bevy::tasks::tick_global_task_pools_on_main_thread();
        }
        app.finish();
        app.cleanup();
    }
    single_threaded(&mut app);
    loop {
        app.update();
        if let Some(exit) = app.should_exit() {
            return exit;
        }
        let _ = woken.recv_timeout(HEADLESS_IDLE_FRAME);
    }
}

/// Every schedule of `app` on the single-threaded executor (systems run on the calling thread).
fn single_threaded(app: &mut App) {
    use bevy::ecs::schedule::{Schedules, SingleThreadedExecutor};
    if let Some(mut schedules) = app.world_mut().get_resource_mut::<Schedules>() {
        for (_, schedule) in schedules.iter_mut() {
            schedule.set_executor(SingleThreadedExecutor::new());
        }
    }
}

/// Bevy's window, render and input plugins, reactive; returns the waker: winit's event-loop
/// proxy.
fn build_window(app: &mut App, options: &WindowOptions) -> Waker {
    let (w, h) = options.size;
    let mut window =
        Window { title: "Maestral".into(), resolution: WindowResolution::new(w, h), ..default() };
    if options.fullscreen {
        window.mode = WindowMode::BorderlessFullscreen(MonitorSelection::Current);
    }
    if options.side_by_side {
        window.position = bevy::window::WindowPosition::At(IVec2::ZERO);
    }
    app.add_plugins(
        DefaultPlugins
            .set(WindowPlugin { primary_window: Some(window), ..default() })
            // A pipeline compiled in the background leaves its first frames without the page
            // (a blank frame, the very thing a turn must never show): compile it before drawing.
            .set(RenderPlugin { synchronous_pipeline_compilation: true, ..default() })
            // One frame: input, update, render, present. Pipelining would add a frame of
            // latency to every turn for throughput this app does not need.
            .disable::<PipelinedRenderingPlugin>(),
    );
    // Reactive: no frames while nothing changes.
    let idle = UpdateMode::reactive_low_power(Duration::from_secs(10));
    app.insert_resource(WinitSettings { focused_mode: idle, unfocused_mode: idle });

    // Other threads wake the event loop through winit's proxy.
    let proxy = app.world().resource::<EventLoopProxyWrapper>();
    let proxy = Mutex::new((**proxy).clone());
    Waker::new(move || {
        if let Ok(proxy) = proxy.lock() {
            let _ = proxy.send_event(WinitUserEvent::WakeUp);
        }
    })
}

/// The window's own plugins (display, layout, input, panel) and the render thread.
fn add_window_plugins(app: &mut App, options: &WindowOptions, waker: &Waker) {
    app.insert_resource(WindowSetup { size: options.size, side_by_side: options.side_by_side })
        // The GPU keeps the pages; the main world lets its copy go.
        .insert_resource(PageImageUsage(RenderAssetUsages::RENDER_WORLD))
        .add_plugins(EguiPlugin::default())
        .add_plugins((display::plugin, layout::plugin, input::plugin, ui::plugin, open::plugin));
    if options.control {
        app.add_plugins(control::window::plugin);
    }
    match RenderBridge::start(waker.clone()) {
        Ok(bridge) => {
            app.insert_resource(bridge);
        }
        Err(error) => {
            // No pages without PDFium, but the app (and its sync) keep running, and say why.
            let message = error.to_string();
            error!("{message}");
            app.add_systems(Startup, move |mut errors: MessageWriter<AppError>| {
                errors.write(AppError(message.clone()));
            });
        }
    }
}

/// Runs the app until it quits; the exit status follows the app's.
///
/// A window without a display to open it on ends here with one line on standard error and
/// exit status 2 ([`crate::no_display`]).
pub fn run(options: AppOptions) -> ExitCode {
    if matches!(options.frontend, Frontend::Window(_)) {
        if let Err(no_display) = crate::no_display::check() {
            eprintln!("{no_display}");
            return ExitCode::from(crate::no_display::EXIT_NO_DISPLAY);
        }
        crate::no_display::catch_event_loop_panic();
    }
    match App::new().add_plugins(AppPlugin { options }).run() {
        AppExit::Success => ExitCode::SUCCESS,
        AppExit::Error(code) => ExitCode::from(code.get()),
    }
}
