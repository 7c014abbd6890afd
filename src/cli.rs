//! The command line (`docs/headless.md`): the app, headless mode, `render` and `list`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::str::FromStr;

use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};

use crate::app::{AppOptions, Frontend, WindowOptions};
use crate::model::{LayoutMode, Rotation, SyncMode, SyncSettings};
use crate::persistence;

/// How a join link starts (the scheme an OS URL handler registers for the app).
pub const JOIN_LINK_SCHEME: &str = "maestral://";

/// Sheet music on large screens, page turns kept in step across devices on the LAN.
#[derive(Debug, Parser)]
#[command(name = "maestral", version, args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    /// A score (PDF) or a folder of scores; without one, the bundled demo library. A join link
    /// (`maestral://join?…`, as a browser or the desktop passes it) joins that Choir session,
    /// as `--join` does.
    #[arg(value_name = "SCORE_OR_FOLDER")]
    pub library: Option<PathBuf>,

    /// No window: read commands on standard input, write JSON events on standard output.
    #[arg(long)]
    pub headless: bool,

    #[command(flatten)]
    pub mode: ModeArgs,

    /// Where the Choir Master listens for singers (default: the LAN address, any port).
    #[arg(long, value_name = "ADDR", requires = "choir_master")]
    pub listen: Option<SocketAddr>,

    /// Finding a Master whose address changed (a DHCP renewal): `lan` (the default) answers
    /// and asks on UDP 47474 across the LAN (broadcast); `off` neither answers nor asks;
    /// `ADDR[:PORT]` answers and asks only there (`127.0.0.1`: never past loopback; a network's
    /// broadcast address: only that network). A Master on a loopback address, and a singer whose
    /// code names one, never go past loopback in any case.
    #[arg(
        long,
        value_name = "off|lan|ADDR[:PORT]",
        env = "MAESTRAL_LOCATE",
        default_value = "lan"
    )]
    pub locate: maestral_net::LocateConfig,

    /// This device's id (default: the one stored in the state directory): 1 to 128 letters,
    /// digits, '-', '_' or '.'.
    #[arg(long, value_name = "ID", value_parser = parse_device_id)]
    pub device_id: Option<String>,

    /// The name other devices show for this one (default: the host name).
    #[arg(long, value_name = "NAME")]
    pub device_name: Option<String>,

    /// Where the device id, stored tokens and positions live.
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,

    #[command(flatten)]
    pub window: WindowArgs,
}

/// How this device takes part in a session (at most one).
#[derive(Debug, Args)]
#[group(multiple = false)]
pub struct ModeArgs {
    /// Start a Choir session as its Master (conductor).
    #[arg(long)]
    pub choir_master: bool,

    /// Join a Choir session as a Follower, with the join code the Master shows. `-` reads the
    /// code from the first line of standard input, `@FILE` from a file, so the token stays out
    /// of `ps` and the shell's history.
    #[arg(long, value_name = "JOIN_CODE")]
    pub join: Option<String>,

    /// Solo: print a pairing offer code, then read the other device's answer code.
    #[arg(long)]
    pub solo_offer: bool,

    /// Solo: print the answer code for the other device's offer code.
    #[arg(long, value_name = "OFFER_CODE")]
    pub solo_answer: Option<String>,
}

/// Window and projector options (ignored with `--headless`).
#[derive(Debug, Args)]
pub struct WindowArgs {
    /// How pages are laid out (default: as the window was last left, else single).
    #[arg(long, value_enum)]
    pub layout: Option<LayoutArg>,

    /// Two windows side by side, odd page left and even page right (for one monitor; with two
    /// monitors `--layout dual` puts one window on each).
    #[arg(long)]
    pub dual_window: bool,

    /// Turn the pages on screen by this many degrees clockwise (a projector on its side).
    #[arg(long, value_name = "DEGREES", value_parser = parse_rotation)]
    pub rotate: Option<u16>,

    /// Dark pages: light notes on black (inverted), for dim stages and projectors
    /// (`--dark=false`: light pages, whatever the window kept).
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub dark: Option<bool>,

    /// Draw the controls and text this many times larger (1 to 3; the panel offers 100 %,
    /// 150 % and 200 %): for a dense screen, or one read from further away.
    #[arg(long, value_name = "FACTOR", value_parser = parse_ui_scale)]
    pub ui_scale: Option<f32>,

    /// A large page number on the performing screen, readable from a music stand's distance
    /// (`--large-page-number=false`: the small one, whatever the window kept).
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub large_page_number: Option<bool>,

    /// Start in fullscreen.
    #[arg(long)]
    pub fullscreen: bool,

    /// The window's size in pixels.
    #[arg(long, value_name = "WxH", default_value = "1280x800")]
    pub window_size: WindowSize,

    /// Also read line commands on standard input and write JSON events, as `--headless` does,
    /// with the window's extras (`key`, `tap`, `screenshot`, `stats`). For tests and benchmarks.
    #[arg(long, hide = true)]
    pub control: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LayoutArg {
    /// One page at a time.
    Single,
    /// One page, turned in halves: the first press shows the next page's top half above this
    /// page's bottom half, the second completes the turn.
    Half,
    /// Two pages side by side (a spread: odd page left, even page right).
    TwoUp,
    /// One window per monitor: odd page on the first, even page on the second.
    Dual,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Rasterize one page exactly as the app shows it, to a PNG file.
    Render(RenderArgs),
    /// List the scores of a folder (default: the bundled demo library).
    List {
        #[arg(value_name = "SCORE_OR_FOLDER")]
        folder: Option<PathBuf>,
    },
}

#[derive(Debug, Args)]
pub struct RenderArgs {
    /// The score (PDF).
    pub score: PathBuf,
    /// The page, counted from 0 (like `page_index`).
    #[arg(long, value_name = "N")]
    pub page: u32,
    /// The width of the box the page is fitted into, in pixels.
    #[arg(long, value_name = "W")]
    pub width: u32,
    /// The height of the box the page is fitted into, in pixels.
    #[arg(long, value_name = "H")]
    pub height: u32,
    /// The PNG file to write.
    #[arg(long, value_name = "FILE.png")]
    pub out: PathBuf,
    /// Dark page (inverted), as `maestral --dark` shows it.
    #[arg(long)]
    pub dark: bool,
}

/// A window size, `WIDTHxHEIGHT` in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowSize {
    pub width: u32,
    pub height: u32,
}

impl FromStr for WindowSize {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("a window size is WIDTHxHEIGHT in pixels, e.g. 1280x800, not {s:?}");
        let (w, h) = s.split_once(['x', 'X', '×']).ok_or_else(bad)?;
        let side = |v: &str| v.trim().parse::<u32>().ok().filter(|&n| (1..=16_384).contains(&n));
        Ok(WindowSize { width: side(w).ok_or_else(bad)?, height: side(h).ok_or_else(bad)? })
    }
}

fn parse_rotation(s: &str) -> Result<u16, String> {
    match s.trim() {
        "0" => Ok(0),
        "90" => Ok(90),
        "180" => Ok(180),
        "270" => Ok(270),
        other => Err(format!("rotation is 0, 90, 180 or 270 degrees, not {other:?}")),
    }
}

fn parse_ui_scale(s: &str) -> Result<f32, String> {
    let range = crate::ui::touch::MIN_SCALE..=crate::ui::touch::MAX_SCALE;
    match s.trim().parse::<f32>() {
        Ok(v) if range.contains(&v) => Ok(v),
        _ => Err(format!(
            "the UI size is a factor from 1 to 3 (1.5: half as large again), not {s:?}"
        )),
    }
}

impl Cli {
    /// The positional argument, when it is a join link (`maestral://…`, or the web form
    /// `http://HOST:PORT/#1.…` a phone opens) rather than a score or folder.
    pub fn join_link(&self) -> Option<&str> {
        let text = self.library.as_deref()?.to_str()?;
        let link = text.starts_with(JOIN_LINK_SCHEME)
            || maestral_net::joincode::looks_like_join_code(text);
        link.then_some(text)
    }

    /// A join link as the positional argument together with another session flag: which one
    /// is meant cannot be told.
    fn check_join_link(&self) -> Result<(), String> {
        let m = &self.mode;
        let other = m.choir_master || m.join.is_some() || m.solo_offer || m.solo_answer.is_some();
        if self.join_link().is_some() && other {
            return Err("a join link joins a session: give it without --choir-master, --join, \
                        --solo-offer or --solo-answer"
                .to_owned());
        }
        Ok(())
    }

    /// The state directory asked for, else the platform's.
    pub fn state_dir(&self) -> PathBuf {
        self.state_dir.clone().unwrap_or_else(persistence::default_state_dir)
    }

    /// The app's options, with the device id read from (or first written to) the state
    /// directory `state` (opened, and locked, by the caller). A directory that cannot be
    /// written gives the device id only: nothing is resumed or kept.
    pub fn app_options(self, state: &persistence::StateDir) -> AppOptions {
        let link = self.join_link().map(str::to_owned);
        let state_dir = state.path.clone();
        let device_id = match self.device_id {
            Some(id) => id,
            None => persistence::stored_device_id(state),
        };
        let mode = if self.mode.choir_master {
            SyncMode::ChoirMaster { listen: self.listen }
        } else if let Some(code) = self.mode.join.or(link.clone()) {
            SyncMode::Join(code)
        } else if self.mode.solo_offer {
            SyncMode::SoloOffer
        } else if let Some(code) = self.mode.solo_answer {
            SyncMode::SoloAnswer(code)
        } else {
            // No mode asked for: what the device kept (docs/headless.md: `--state-dir` alone
            // resumes it). A Solo device takes back its pairing in any case.
            let stored =
                if state.writable { maestral_net::stored(&state_dir) } else { Default::default() };
            if stored.master_session {
                SyncMode::ChoirMaster { listen: None }
            } else if let Some(host) = stored.follower {
                SyncMode::Rejoin { host }
            } else {
                SyncMode::Solo
            }
        };
        let w = self.window;
        let layout = match (w.layout, w.dual_window) {
            (_, true) | (Some(LayoutArg::Dual), _) => Some(LayoutMode::DualWindow),
            (Some(LayoutArg::TwoUp), _) => Some(LayoutMode::TwoUp),
            (Some(LayoutArg::Single), _) => Some(LayoutMode::Single),
            (Some(LayoutArg::Half), _) => Some(LayoutMode::HalfTurns),
            (None, false) => None,
        };
        // A flag not given leaves the setting to what the window kept (crate::settings).
        let screen = crate::settings::Given {
            layout,
            rotation: w.rotate.map(Rotation::from_degrees),
            dark: w.dark,
            ui_scale: w.ui_scale,
            large_page_number: w.large_page_number,
        };
        let frontend = if self.headless {
            Frontend::Headless
        } else {
            Frontend::Window(WindowOptions {
                size: (w.window_size.width, w.window_size.height),
                fullscreen: w.fullscreen,
                side_by_side: w.dual_window,
                control: w.control,
            })
        };
        AppOptions {
            // A join link is no library: the demo one, as with `--join`.
            library: self
                .library
                .filter(|_| link.is_none())
                .unwrap_or_else(crate::score::demo_library),
            frontend,
            screen,
            sync: SyncSettings {
                mode,
                device_name: self.device_name.unwrap_or_else(persistence::host_name),
                device_id,
                state_dir: state.writable.then_some(state_dir),
                locate: self.locate,
                pages: None,
            },
        }
    }
}

/// A `file://` URI as a desktop passes an opened file (`Exec=maestral %u`:
/// `file:///home/me/My%20Score.pdf`) to its path; anything else as it is.
pub fn path_of_file_uri(arg: PathBuf) -> PathBuf {
    let Some(rest) = arg.to_str().and_then(|s| s.strip_prefix("file://")) else { return arg };
    let rest = rest.strip_prefix("localhost").unwrap_or(rest);
    if !rest.starts_with('/') {
        return arg;
    }
    let mut bytes = Vec::with_capacity(rest.len());
    let mut it = rest.bytes();
    while let Some(b) = it.next() {
        if b != b'%' {
            bytes.push(b);
            continue;
        }
        let hex = [it.next(), it.next()];
        let digit = |d: Option<u8>| (d? as char).to_digit(16);
        match (digit(hex[0]), digit(hex[1])) {
            (Some(hi), Some(lo)) => bytes.push((hi * 16 + lo) as u8),
            _ => return arg,
        }
    }
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStringExt;
        PathBuf::from(std::ffi::OsString::from_vec(bytes))
    }
    #[cfg(not(unix))]
    {
        String::from_utf8(bytes).map(PathBuf::from).unwrap_or(arg)
    }
}

/// Parses the command line and runs what it asks for.
pub fn main() -> ExitCode {
    let mut cli = Cli::parse();
    cli.library = cli.library.map(path_of_file_uri);
    let outcome = match cli.command {
        Some(Command::Render(args)) => crate::commands::render(&args),
        Some(Command::List { folder }) => {
            crate::commands::list(&folder.unwrap_or_else(crate::score::demo_library))
        }
        None => {
            if let Err(message) = cli.check_join_link() {
                Cli::command().error(clap::error::ErrorKind::ArgumentConflict, message).exit();
            }
            let mut cli = cli;
            if let Some(given) = cli.mode.join.take() {
                match read_join_code(&given, &mut std::io::stdin().lock()) {
                    Ok(code) => cli.mode.join = Some(code),
                    Err(message) => {
                        Cli::command().error(clap::error::ErrorKind::InvalidValue, message).exit()
                    }
                }
            }
            // One app instance per state directory, held until the app ends.
            let state = match persistence::StateDir::open(cli.state_dir()) {
                Ok(state) => state,
                Err(message) => {
                    eprintln!("maestral: {message}");
                    if cli.headless {
                        println!("{}", serde_json::json!({"event": "error", "message": message}));
                    }
                    return ExitCode::FAILURE;
                }
            };
            let options = cli.app_options(&state);
            let code = crate::app::run(options);
            drop(state);
            return code;
        }
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // One line, ending with what to do (the score library's messages say it).
            match error.downcast_ref::<maestral_score::ScoreError>() {
                Some(score_error) => eprintln!("maestral: {score_error}"),
                None => eprintln!("maestral: {error:#}"),
            }
            ExitCode::FAILURE
        }
    }
}

/// `--join`'s value: the code itself, `-` for the first line of `stdin`, `@FILE` for the
/// first line of a file. Surrounding white space is dropped.
fn read_join_code(given: &str, stdin: &mut impl std::io::BufRead) -> Result<String, String> {
    let text = if given == "-" {
        let mut line = String::new();
        stdin.read_line(&mut line).map_err(|e| {
            format!("--join -: could not read the join code from standard input ({e})")
        })?;
        line
    } else if let Some(path) = given.strip_prefix('@') {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("--join @{path}: could not read the join code ({e})"))?;
        text.lines().next().unwrap_or("").to_owned()
    } else {
        return Ok(given.to_owned());
    };
    let code = text.trim();
    if code.is_empty() {
        let from = if given == "-" { "standard input" } else { given };
        return Err(format!("--join: no join code in {from}"));
    }
    Ok(code.to_owned())
}

/// `--device-id`: a device id as the protocol accepts it.
fn parse_device_id(text: &str) -> Result<String, String> {
    maestral_protocol::DeviceId::parse(text)
        .map(|id| id.to_string())
        .ok_or_else(|| "a device id is 1 to 128 letters, digits, '-', '_' or '.'".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINK: &str = "maestral://join?host=192.168.1.20:47110&session=0123&token=abc&fp=00";

    #[test]
    fn a_file_uri_from_the_desktop_is_the_files_path() {
        let path = |s: &str| path_of_file_uri(PathBuf::from(s));
        assert_eq!(path("file:///home/me/My%20Score.pdf"), PathBuf::from("/home/me/My Score.pdf"));
        assert_eq!(path("file://localhost/tmp/a%C3%A9.pdf"), PathBuf::from("/tmp/aé.pdf"));
        assert_eq!(path("/tmp/plain.pdf"), PathBuf::from("/tmp/plain.pdf"));
        assert_eq!(
            path("file:///bad%2"),
            PathBuf::from("file:///bad%2"),
            "a broken escape stays as given"
        );
        assert_eq!(path("file://otherhost/x.pdf"), PathBuf::from("file://otherhost/x.pdf"));
        assert_eq!(path(LINK), PathBuf::from(LINK));
    }

    fn options(args: &[&str]) -> AppOptions {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let state =
            std::env::temp_dir().join(format!("maestral-cli-test-{}-{n}", std::process::id()));
        let mut argv = vec!["maestral", "--device-id", "D", "--device-name", "N", "--state-dir"];
        argv.push(state.to_str().expect("a UTF-8 temp path"));
        argv.extend(args);
        let cli = Cli::try_parse_from(argv).expect("parses");
        let dir =
            persistence::StateDir::open(cli.state_dir()).expect("a state directory of its own");
        cli.app_options(&dir)
    }

    /// A screen flag not given is left to what the window kept (`crate::settings`).
    #[test]
    fn screen_flags_not_given_are_none_and_given_ones_are_taken() {
        let none = options(&[]).screen;
        assert_eq!(none, crate::settings::Given::default());
        let given = options(&[
            "--layout",
            "half",
            "--rotate",
            "90",
            "--dark",
            "--ui-scale",
            "1.5",
            "--large-page-number",
        ])
        .screen;
        assert_eq!(given.layout, Some(LayoutMode::HalfTurns));
        assert_eq!(given.rotation, Some(Rotation::Cw90));
        assert_eq!(
            (given.dark, given.ui_scale, given.large_page_number),
            (Some(true), Some(1.5), Some(true))
        );
        assert_eq!(options(&["--dual-window"]).screen.layout, Some(LayoutMode::DualWindow));
        // Turned off for one run, whatever the window kept; a score after the flag is no value.
        let off = options(&["--dark=false", "--large-page-number=false"]).screen;
        assert_eq!((off.dark, off.large_page_number), (Some(false), Some(false)));
        let score = options(&["--dark", "score.pdf"]);
        assert_eq!((score.screen.dark, score.library), (Some(true), PathBuf::from("score.pdf")));
    }

    #[test]
    fn a_join_link_as_the_argument_joins_like_join_with_the_demo_library() {
        let by_link = options(&[LINK]);
        let by_flag = options(&["--join", LINK]);
        assert_eq!(by_link.sync.mode, SyncMode::Join(LINK.to_owned()));
        assert_eq!(by_flag.sync.mode, by_link.sync.mode);
        assert_eq!(by_link.library, crate::score::demo_library());
        assert_eq!(by_flag.library, by_link.library);
    }

    #[test]
    fn the_web_form_of_a_join_code_as_the_argument_joins_too() {
        let web = "http://192.168.1.20:47110/#1.0123.ABC.00";
        assert_eq!(options(&[web]).sync.mode, SyncMode::Join(web.to_owned()));
        let page = options(&["http://example.com/#top"]);
        assert_eq!(page.sync.mode, SyncMode::Solo, "an ordinary web address is no join code");
    }

    #[test]
    fn a_score_argument_is_still_a_library_and_a_link_with_another_mode_is_refused() {
        let score = options(&["scores/Ave.pdf"]);
        assert_eq!(score.library, PathBuf::from("scores/Ave.pdf"));
        assert_eq!(score.sync.mode, SyncMode::Solo);

        let both = Cli::try_parse_from(["maestral", LINK, "--choir-master"]).expect("parses");
        let message = both.check_join_link().expect_err("two modes");
        assert!(message.contains("--choir-master"), "{message}");
        let alone = Cli::try_parse_from(["maestral", LINK]).expect("parses");
        assert_eq!(alone.check_join_link(), Ok(()));
    }

    /// A state directory holding `name` with `contents`, and the options of a run on it with no
    /// mode option (a window, as a restarted app on a tablet).
    fn resumed(name: &str, contents: &str) -> AppOptions {
        let dir = std::env::temp_dir().join(format!(
            "maestral-cli-resume-{}-{}",
            std::process::id(),
            name.replace('.', "-")
        ));
        std::fs::create_dir_all(&dir).expect("dir");
        std::fs::write(dir.join(name), contents).expect("write");
        let cli = Cli::try_parse_from(["maestral", "--state-dir", dir.to_str().expect("UTF-8")])
            .expect("parses");
        let state = persistence::StateDir::open(cli.state_dir()).expect("the directory");
        let options = cli.app_options(&state);
        drop(state);
        let _ = std::fs::remove_dir_all(&dir);
        options
    }

    #[test]
    fn with_no_mode_option_the_app_resumes_the_role_its_state_directory_keeps() {
        let master = resumed("master-session.json", r#"{"state": {"session_id": "s1"}}"#);
        assert_eq!(master.sync.mode, SyncMode::ChoirMaster { listen: None });
        let fp = ["AB"; 32].join(":");
        let code = format!(
            "maestral://join?host=192.168.1.20:47110&session=0123&token=abc&fp=sha-256+{fp}"
        );
        let follower = resumed("follower-session.json", &format!(r#"{{"join_code": "{code}"}}"#));
        let host = "192.168.1.20:47110".parse().ok();
        assert_eq!(follower.sync.mode, SyncMode::Rejoin { host });
        let solo = resumed(
            "solo-pairing.json",
            r#"{"partner": {"id": "B", "host": "192.168.1.21:4000"}}"#,
        );
        assert_eq!(solo.sync.mode, SyncMode::Solo);
        assert_eq!(resumed("positions.json", "{}").sync.mode, SyncMode::Solo);
        // An ended session keeps no session id: a new start is not a Master.
        let ended = resumed("master-session.json", r#"{"state": {"session_id": null}}"#);
        assert_eq!(ended.sync.mode, SyncMode::Solo);
    }

    #[test]
    fn a_join_code_comes_from_stdin_or_a_file_as_well_as_the_command_line() {
        let code = "maestral://join?host=1.2.3.4:5&session=s&token=t&fp=f";
        let mut none = std::io::Cursor::new(Vec::new());
        assert_eq!(read_join_code(code, &mut none).as_deref(), Ok(code));
        let mut stdin = std::io::Cursor::new(format!("  {code}  \nsong 1\n").into_bytes());
        assert_eq!(read_join_code("-", &mut stdin).as_deref(), Ok(code));
        let mut rest = String::new();
        std::io::BufRead::read_line(&mut stdin, &mut rest).expect("the rest");
        assert_eq!(rest, "song 1\n", "only the first line is taken");
        let file = std::env::temp_dir().join(format!("maestral-join-{}", std::process::id()));
        std::fs::write(&file, format!("{code}\n")).expect("write");
        let at = format!("@{}", file.display());
        assert_eq!(read_join_code(&at, &mut none).as_deref(), Ok(code));
        std::fs::write(&file, "\n").expect("write");
        let err = read_join_code(&at, &mut none).expect_err("empty");
        assert!(err.contains("no join code"), "{err}");
        let _ = std::fs::remove_file(&file);
        let err = read_join_code(&at, &mut none).expect_err("gone");
        assert!(err.contains("could not read the join code"), "{err}");
        let err = read_join_code("-", &mut none).expect_err("empty stdin");
        assert!(err.contains("standard input"), "{err}");
    }

    #[test]
    fn locate_is_confined_or_turned_off_from_the_command_line() {
        use maestral_net::LocateConfig;
        assert_eq!(options(&["--locate", "off"]).sync.locate, LocateConfig::Off);
        let at = options(&["--headless", "--locate", "127.0.0.1:9"]).sync.locate;
        assert_eq!(at, LocateConfig::At("127.0.0.1:9".parse().expect("addr")));
        let e = Cli::try_parse_from(["maestral", "--locate", "everywhere"]).expect_err("refused");
        assert!(e.to_string().contains("locate is `off`, `lan`"), "{e}");
    }

    #[test]
    fn a_device_id_on_the_command_line_is_checked() {
        assert_eq!(parse_device_id("tablet-3.alto_1").as_deref(), Ok("tablet-3.alto_1"));
        for bad in ["", "two words", "a/b", "é", &"x".repeat(129)] {
            assert!(parse_device_id(bad).is_err(), "{bad:?}");
        }
    }
}
