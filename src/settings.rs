//! The screen settings a performer chooses in the panel (layout, turned or dark pages, the size
//! of the controls, a large page number), kept in `settings.json` in the state directory so the
//! window opens as it was left (docs/guide.md §5). What the command line gives wins for that run,
//! and is not kept unless the performer changes that setting in the panel; what it leaves out
//! comes from the file, else the defaults. Written on every change by a
//! thread of its own (atomically, the newest record only), read once at start; a file that does
//! not hold valid settings is set aside with one message and the defaults are used.
//!
//! Only the window keeps them: a headless app (scripts, tests) runs as it is told.
//!
//! ```text
//! {"layout": "half", "rotate": 0, "dark": false, "ui_scale": 1.5, "large_page_number": true}
//! ```

use std::path::Path;

use bevy::prelude::*;
use maestral_net::state::{self, files};

use crate::model::{AppError, LayoutMode, Projector, Rotation, UiSize};
use crate::persistence::KeptFile;

/// The screen settings in effect.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Screen {
    pub layout: LayoutMode,
    pub projector: Projector,
    pub ui_size: UiSize,
}

/// What the command line gave (`None`: not given, so the kept setting applies).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Given {
    pub layout: Option<LayoutMode>,
    pub rotation: Option<Rotation>,
    pub dark: Option<bool>,
    pub ui_scale: Option<f32>,
    pub large_page_number: Option<bool>,
}

impl Given {
    /// What to keep when `now` is in effect: a setting the command line gave for this run
    /// (`start` being what the run started with) stays as `kept` unless it was changed since.
    fn to_keep(self, now: Screen, start: Screen, kept: Screen) -> Screen {
        fn pick<T: PartialEq>(given: bool, now: T, start: T, kept: T) -> T {
            if given && now == start { kept } else { now }
        }
        let (n, s, k) = (now, start, kept);
        Screen {
            layout: pick(self.layout.is_some(), n.layout, s.layout, k.layout),
            projector: Projector {
                rotation: pick(
                    self.rotation.is_some(),
                    n.projector.rotation,
                    s.projector.rotation,
                    k.projector.rotation,
                ),
                dark: pick(
                    self.dark.is_some(),
                    n.projector.dark,
                    s.projector.dark,
                    k.projector.dark,
                ),
            },
            ui_size: UiSize {
                scale: pick(
                    self.ui_scale.is_some(),
                    n.ui_size.scale,
                    s.ui_size.scale,
                    k.ui_size.scale,
                ),
                large_page_number: pick(
                    self.large_page_number.is_some(),
                    n.ui_size.large_page_number,
                    s.ui_size.large_page_number,
                    k.ui_size.large_page_number,
                ),
            },
        }
    }

    /// The settings in effect: each one given, else kept (`kept`), else the default.
    pub fn over(self, kept: Screen) -> Screen {
        Screen {
            layout: self.layout.unwrap_or(kept.layout),
            projector: Projector {
                rotation: self.rotation.unwrap_or(kept.projector.rotation),
                dark: self.dark.unwrap_or(kept.projector.dark),
            },
            ui_size: UiSize {
                scale: self.ui_scale.unwrap_or(kept.ui_size.scale),
                large_page_number: self.large_page_number.unwrap_or(kept.ui_size.large_page_number),
            },
        }
    }
}

/// The file's form: every field optional (a missing one is the default).
/// A field it does not know (written by a later version) is ignored.
#[derive(Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
struct File {
    #[serde(default)]
    layout: Option<String>,
    #[serde(default)]
    rotate: Option<u16>,
    #[serde(default)]
    dark: Option<bool>,
    #[serde(default)]
    ui_scale: Option<f32>,
    #[serde(default)]
    large_page_number: Option<bool>,
}

fn layout_name(layout: LayoutMode) -> &'static str {
    match layout {
        LayoutMode::Single => "single",
        LayoutMode::HalfTurns => "half",
        LayoutMode::TwoUp => "two-up",
        LayoutMode::DualWindow => "dual",
    }
}

fn degrees(rotation: Rotation) -> u16 {
    match rotation {
        Rotation::None => 0,
        Rotation::Cw90 => 90,
        Rotation::Cw180 => 180,
        Rotation::Cw270 => 270,
    }
}

/// The file's text for `screen`.
fn text(screen: &Screen) -> String {
    let file = File {
        layout: Some(layout_name(screen.layout).to_owned()),
        rotate: Some(degrees(screen.projector.rotation)),
        dark: Some(screen.projector.dark),
        ui_scale: Some(screen.ui_size.scale),
        large_page_number: Some(screen.ui_size.large_page_number),
    };
    serde_json::to_string_pretty(&file).unwrap_or_default()
}

fn validate(file: File) -> Result<Screen, String> {
    let defaults = Screen::default();
    let layout = match file.layout.as_deref() {
        None => defaults.layout,
        Some("single") => LayoutMode::Single,
        Some("half") => LayoutMode::HalfTurns,
        Some("two-up") => LayoutMode::TwoUp,
        Some("dual") => LayoutMode::DualWindow,
        Some(other) => return Err(format!("{other:?} is not a layout")),
    };
    let rotation = match file.rotate {
        None => defaults.projector.rotation,
        Some(d @ (0 | 90 | 180 | 270)) => Rotation::from_degrees(d),
        Some(other) => return Err(format!("a rotation of {other} degrees")),
    };
    let range = crate::ui::touch::MIN_SCALE..=crate::ui::touch::MAX_SCALE;
    let scale = match file.ui_scale {
        None => defaults.ui_size.scale,
        Some(s) if range.contains(&s) => s,
        Some(other) => return Err(format!("a UI size of {other} (it is 1 to 3)")),
    };
    Ok(Screen {
        layout,
        projector: Projector { rotation, dark: file.dark.unwrap_or(defaults.projector.dark) },
        ui_size: UiSize {
            scale,
            large_page_number: file.large_page_number.unwrap_or(defaults.ui_size.large_page_number),
        },
    })
}

/// The settings kept in `path`; the defaults if there is no file. A file that is not valid
/// settings is set aside, and the message says where it went.
pub fn read(path: &Path) -> Result<Screen, String> {
    let starting = "the window opens with the default settings";
    let file = match state::read_json::<File>(path) {
        Ok(None) => return Ok(Screen::default()),
        Ok(Some(file)) => file,
        Err(e) => return Err(format!("{e}; {starting}")),
    };
    validate(file).map_err(|reason| format!("{}; {starting}", state::broken(path, reason)))
}

/// The settings file, and what the command line gave this run, the settings kept when it
/// started, and those it started with.
#[derive(Resource, Debug)]
pub struct SettingsStore {
    record: KeptFile,
    given: Given,
    file: Screen,
    start: Screen,
}

/// The settings in effect for a window with the state directory `dir` (`None`: nothing is
/// kept) and the command line's `given`; installs their keeping. The message, if the file was
/// set aside, goes to the performer once the app runs.
pub fn install(app: &mut App, dir: Option<&Path>, given: Given) -> Screen {
    let Some(dir) = dir else { return given.over(Screen::default()) };
    let path = dir.join(files::SETTINGS);
    let (kept, problem) = match read(&path) {
        Ok(kept) => (kept, None),
        Err(message) => (Screen::default(), Some(message)),
    };
    let screen = given.over(kept);
    let lost = "layout and size changes will be lost when the app closes";
    let record = KeptFile::new(path, text(&kept), lost);
    let store = SettingsStore { record, given, file: kept, start: screen };
    app.insert_resource(store).add_systems(Last, keep);
    if let Some(message) = problem {
        warn!("{message}");
        app.add_systems(Startup, move |mut errors: MessageWriter<AppError>| {
            errors.write(AppError(message.clone()));
        });
    }
    screen
}

/// After every change: the settings in effect go to the writer.
fn keep(
    layout: Res<LayoutMode>,
    projector: Res<Projector>,
    ui_size: Res<UiSize>,
    mut store: ResMut<SettingsStore>,
    mut errors: MessageWriter<AppError>,
) {
    if layout.is_changed() || projector.is_changed() || ui_size.is_changed() {
        let now = Screen { layout: *layout, projector: *projector, ui_size: *ui_size };
        let now = text(&store.given.to_keep(now, store.start, store.file));
        store.record.keep(now);
    }
    store.record.report_failures(&mut errors);
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn temp(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("maestral-settings-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("a folder");
        dir
    }

    #[test]
    fn what_the_command_line_gives_wins_and_the_rest_is_kept_or_the_default() {
        let kept = Screen {
            layout: LayoutMode::HalfTurns,
            projector: Projector { rotation: Rotation::Cw90, dark: true },
            ui_size: UiSize { scale: 1.5, large_page_number: true },
        };
        assert_eq!(Given::default().over(kept), kept);
        let given =
            Given { layout: Some(LayoutMode::TwoUp), ui_scale: Some(2.0), ..Given::default() };
        let screen = given.over(kept);
        assert_eq!(screen.layout, LayoutMode::TwoUp);
        assert_eq!(screen.ui_size, UiSize { scale: 2.0, large_page_number: true });
        assert_eq!(screen.projector, kept.projector);
        assert_eq!(Given::default().over(Screen::default()), Screen::default());
    }

    #[test]
    fn a_setting_given_for_one_run_is_kept_only_once_changed_in_the_panel() {
        let kept = Screen::default();
        let given = Given { dark: Some(true), ui_scale: Some(2.0), ..Given::default() };
        let start = given.over(kept);
        // Another setting changed: the given ones stay as they were kept.
        let now = Screen { layout: LayoutMode::TwoUp, ..start };
        let keep = given.to_keep(now, start, kept);
        assert_eq!(keep.layout, LayoutMode::TwoUp);
        assert_eq!((keep.projector.dark, keep.ui_size.scale), (false, 1.0));
        // A given one changed in the panel: that one is kept as changed.
        let now = Screen { ui_size: UiSize { scale: 1.5, ..start.ui_size }, ..start };
        let keep = given.to_keep(now, start, kept);
        assert_eq!((keep.projector.dark, keep.ui_size.scale), (false, 1.5));
    }

    #[test]
    fn settings_written_are_read_back_and_missing_fields_are_the_defaults() {
        let dir = temp("roundtrip");
        let path = dir.join(files::SETTINGS);
        assert_eq!(read(&path), Ok(Screen::default()), "no file: the defaults");
        for layout in
            [LayoutMode::Single, LayoutMode::HalfTurns, LayoutMode::TwoUp, LayoutMode::DualWindow]
        {
            let screen = Screen {
                layout,
                projector: Projector { rotation: Rotation::Cw270, dark: true },
                ui_size: UiSize { scale: 3.0, large_page_number: true },
            };
            std::fs::write(&path, text(&screen)).expect("write");
            assert_eq!(read(&path), Ok(screen));
        }
        std::fs::write(&path, r#"{"ui_scale": 1.5}"#).expect("write");
        let screen = read(&path).expect("read");
        assert_eq!(screen.ui_size.scale, 1.5);
        assert_eq!((screen.layout, screen.projector), (LayoutMode::Single, Projector::default()));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_damaged_or_impossible_file_is_set_aside_with_one_message() {
        let dir = temp("damaged");
        let path = dir.join(files::SETTINGS);
        for bad in [
            "{not json",
            r#"{"layout": "sideways"}"#,
            r#"{"rotate": 45}"#,
            r#"{"ui_scale": 9}"#,
            r#"{"ui_scale": "big"}"#,
        ] {
            std::fs::write(&path, bad).expect("write");
            let message = read(&path).expect_err(bad);
            assert!(message.contains("default settings"), "{bad}: {message}");
            assert!(!path.exists(), "{bad}: set aside");
            assert_eq!(read(&path), Ok(Screen::default()), "{bad}: gone, the defaults after");
        }
        let aside = std::fs::read_dir(&dir).expect("list").count();
        assert_eq!(aside, 5, "each damaged file kept aside");
        // A field of a later version is ignored, the rest taken.
        std::fs::write(&path, r#"{"colour": "red", "dark": true}"#).expect("write");
        assert!(read(&path).expect("read").projector.dark);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// The app keeps what the performer changes, once the change is made (not what it
    /// started with), and only when something changed.
    #[test]
    fn a_change_is_kept_and_the_next_start_opens_with_it() {
        let dir = temp("keep");
        let path = dir.join(files::SETTINGS);
        let mut app = App::new();
        app.add_plugins(MinimalPlugins).add_message::<AppError>();
        let given = Given { dark: Some(true), ..Given::default() };
        let screen = install(&mut app, Some(&dir), given);
        app.insert_resource(screen.layout)
            .insert_resource(screen.projector)
            .insert_resource(screen.ui_size);
        app.update();
        app.update();
        assert!(!path.exists(), "nothing written before a change");
        app.world_mut().resource_mut::<UiSize>().scale = 2.0;
        *app.world_mut().resource_mut::<LayoutMode>() = LayoutMode::HalfTurns;
        app.update();
        drop(app); // the writer writes what is queued before it goes
        let kept = read(&path).expect("kept");
        assert_eq!(kept.ui_size.scale, 2.0);
        assert_eq!(kept.layout, LayoutMode::HalfTurns);
        assert!(!kept.projector.dark, "--dark was for that run only: not kept");
        // The next start, with nothing on the command line.
        let mut again = App::new();
        again.add_plugins(MinimalPlugins).add_message::<AppError>();
        assert_eq!(install(&mut again, Some(&dir), Given::default()), kept);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
