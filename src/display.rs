//! Windows and cameras (the windowed app only): one camera per page window, each drawing only
//! its own window's pages (render layers); the second window of the dual layout (on the second
//! monitor, or beside the first with `--dual-window`); the background colour.

use bevy::camera::RenderTarget;
use bevy::camera::visibility::RenderLayers;
use bevy::prelude::*;
use bevy::window::{
    Monitor, MonitorSelection, PrimaryWindow, WindowMode, WindowPosition, WindowRef,
    WindowResolution,
};

use crate::model::{LayoutMode, PageWindow, Projector};

pub fn plugin(app: &mut App) {
    app.add_systems(Startup, setup_primary).add_systems(Update, (second_window, background));
}

/// How windows open (from the command line).
#[derive(Resource, Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowSetup {
    /// Each window's size in physical pixels.
    pub size: (u32, u32),
    /// The dual layout's two windows side by side on one monitor.
    pub side_by_side: bool,
}

/// The camera drawing one page window.
#[derive(Component, Debug, Clone, Copy)]
pub struct PageCamera {
    pub window: Entity,
}

fn page_camera(window: Entity, index: u8, target: RenderTarget) -> impl Bundle {
    (
        Camera2d,
        // Pages are drawn pixel for pixel: no multisampling.
        Msaa::Off,
        target,
        RenderLayers::layer(usize::from(index)),
        PageCamera { window },
    )
}

fn setup_primary(mut commands: Commands, primary: Query<Entity, With<PrimaryWindow>>) {
    let Ok(window) = primary.single() else { return };
    commands.entity(window).insert(PageWindow { index: 0 });
    commands.spawn(page_camera(window, 0, RenderTarget::Window(WindowRef::Primary)));
}

/// The dual layout's second window: opened when the layout asks for it (once the monitors are
/// known), closed when it no longer does.
fn second_window(
    mut commands: Commands,
    mut layout: ResMut<LayoutMode>,
    setup: Res<WindowSetup>,
    windows: Query<(Entity, &PageWindow)>,
    cameras: Query<(Entity, &PageCamera)>,
    monitors: Query<&Monitor>,
    mut waited: Local<u32>,
    mut opened: Local<bool>,
) {
    let second = windows.iter().find(|(_, w)| w.index == 1).map(|(e, _)| e);
    // The performer closed the second window: back to one page in one window.
    if *opened && second.is_none() {
        *opened = false;
        *waited = 0;
        if *layout == LayoutMode::DualWindow {
            *layout = LayoutMode::Single;
        }
    }
    // A camera whose window was closed goes too.
    for (camera, page_camera) in &cameras {
        if windows.get(page_camera.window).is_err() {
            commands.entity(camera).despawn();
        }
    }
    match (*layout == LayoutMode::DualWindow, second) {
        (false, Some(window)) => commands.entity(window).despawn(),
        (true, None) => {
            let monitor_count = monitors.iter().count();
            // Monitors are reported by the first frames; don't wait for them forever.
            *waited += 1;
            if monitor_count == 0 && *waited < 10 && !setup.side_by_side {
                return;
            }
            let (w, h) = setup.size;
            let mut window = Window {
                title: "Maestral — even pages".into(),
                resolution: WindowResolution::new(w, h),
                ..default()
            };
            if monitor_count >= 2 && !setup.side_by_side {
                window.position = WindowPosition::Centered(MonitorSelection::Index(1));
                window.mode = WindowMode::BorderlessFullscreen(MonitorSelection::Index(1));
            } else {
                window.position = WindowPosition::At(IVec2::new(w as i32, 0));
            }
            let entity = commands.spawn((window, PageWindow { index: 1 })).id();
            *opened = true;
            commands.spawn(page_camera(entity, 1, RenderTarget::Window(WindowRef::Entity(entity))));
        }
        _ => {}
    }
}

fn background(projector: Res<Projector>, mut clear: ResMut<ClearColor>) {
    if projector.is_changed() {
        let colour = if projector.dark { Color::BLACK } else { Color::srgb(0.16, 0.16, 0.17) };
        clear.0 = colour;
    }
}
