//! The state directory under bad conditions (`maestral --headless` processes): a corrupt or
//! truncated file of each kind, a directory that cannot be written, a second app instance on
//! the same directory. Each gets one clear message; what is safe gets its default; nothing else
//! in the directory is lost. Every wait is bounded; nothing asserts on time.

mod support;

use std::path::Path;
use std::process::{Command, ExitStatus, Output, Stdio};

use serde_json::Value;
use support::{App, TempDir, demo_library, demo_score};

const DEVICE_ID: &str = "maestral-00000000000000aa";

fn command(dir: &Path) -> Command {
    let mut command = support::maestral();
    command.arg("--headless").arg(demo_library()).arg("--state-dir").arg(dir);
    command
}

fn start(dir: &Path) -> App {
    let mut app = App::spawn(command(dir));
    app.name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    app
}

/// Starts the app on `dir` with its log in a file; `drive` talks to it once it is ready; then
/// it quits. Returns its exit, everything it said (stdout's events) and its log lines.
fn run(dir: &Path, drive: impl FnOnce(&mut App)) -> (ExitStatus, Vec<Value>, Vec<String>) {
    let log_dir = TempDir::new("log");
    let log_path = log_dir.0.join("stderr");
    let log = std::fs::File::create(&log_path).expect("log file");
    let mut app = App::spawn_logging(command(dir), Stdio::from(log));
    app.wait("ready", |e| e["event"] == "ready");
    drive(&mut app);
    let events = app.seen.clone();
    let status = app.quit();
    let log = std::fs::read_to_string(&log_path).expect("the log");
    (status, events, log.lines().map(str::to_owned).collect())
}

/// A second app on `dir`: it should not get as far as reading input.
fn refused(dir: &Path) -> (Output, Vec<Value>, Vec<String>) {
    let output = command(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .expect("maestral runs");
    let events = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let log = String::from_utf8_lossy(&output.stderr).lines().map(str::to_owned).collect();
    (output, events, log)
}

/// A directory holding a device id and a good positions file, plus `name` with `contents`.
fn with_file(tag: &str, name: &str, contents: &[u8]) -> TempDir {
    let dir = TempDir::new(tag);
    std::fs::write(dir.0.join("device-id"), format!("{DEVICE_ID}\n")).expect("device-id");
    std::fs::write(dir.0.join("positions.json"), br#"{"last_song":"ab","pages":{"ab":3}}"#)
        .expect("positions");
    std::fs::write(dir.0.join(name), contents).expect("the file");
    dir
}

fn errors(app: &App) -> Vec<String> {
    let errors = app.seen.iter().filter(|e| e["event"] == "error");
    errors.map(|e| e["message"].as_str().unwrap_or_default().to_owned()).collect()
}

/// The file was set aside whole, and the message says where.
fn set_aside(dir: &Path, name: &str, contents: &[u8], message: &str) {
    let aside = dir.join(format!("{name}.broken"));
    assert_eq!(std::fs::read(&aside).ok().as_deref(), Some(contents), "{name} kept as .broken");
    assert!(message.contains(name) && message.contains(&format!("{name}.broken")), "{message}");
}

#[test]
fn a_broken_follower_session_or_solo_pairing_gets_one_message_and_the_device_plays_alone() {
    let cases: [(&str, &[u8]); 4] = [
        ("follower-session.json", br#"{"join_code": "maestral://join?host=127.0.0.1:9"#),
        ("follower-session.json", b""),
        ("solo-pairing.json", br#"{"cert_pem": 5, "partner": {"host": "127.0.0.1:9"}}"#),
        ("solo-pairing.json", b"\x00\xff not json"),
    ];
    for (i, (name, contents)) in cases.into_iter().enumerate() {
        let dir = with_file(&format!("broken-{i}"), name, contents);
        let mut app = start(&dir.0);
        let ready = app.wait("ready", |e| e["event"] == "ready");
        assert_eq!(ready["device_id"], DEVICE_ID, "the device id is kept: {ready}");
        let error = app.wait("the message", |e| e["event"] == "error");
        set_aside(&dir.0, name, contents, error["message"].as_str().unwrap_or_default());
        // It plays: a score and a turn.
        app.send(&format!("song {}", demo_score("harbour-lights-jig.pdf").display()));
        app.wait("shown", |e| e["event"] == "show" && e["page_index"] == 0);
        app.send("next");
        app.wait("turned", |e| e["event"] == "show" && e["page_index"] == 1);
        assert_eq!(errors(&app).len(), 1, "one message for {name}: {:#?}", app.seen);
        assert!(app.quit().success());
        assert!(dir.0.join("positions.json").is_file(), "the other files stay");
        assert_eq!(
            std::fs::read_to_string(dir.0.join("device-id")).ok().as_deref(),
            Some(format!("{DEVICE_ID}\n").as_str())
        );
    }
}

#[test]
fn a_broken_positions_file_gets_one_message_and_is_kept_aside() {
    let contents: &[u8] = br#"{"last_song": "ab", "pag"#;
    let dir = with_file("broken-positions", "positions.json", contents);
    let mut app = start(&dir.0);
    let error = app.wait("the message", |e| e["event"] == "error");
    set_aside(&dir.0, "positions.json", contents, error["message"].as_str().unwrap_or_default());
    app.send(&format!("song {}", demo_score("harbour-lights-jig.pdf").display()));
    let shown = app.wait("shown", |e| e["event"] == "show" && e["page_index"] == 0);
    app.send("next");
    app.wait("turned", |e| e["event"] == "show" && e["page_index"] == 1);
    assert_eq!(errors(&app).len(), 1, "{:#?}", app.seen);
    assert!(app.quit().success());
    // Positions are kept for every role, headless too: the turn is in the new file.
    let song = shown["song_id"].as_str().expect("a song");
    let kept: Value =
        serde_json::from_slice(&std::fs::read(dir.0.join("positions.json")).expect("written"))
            .expect("JSON");
    assert_eq!(kept["last_song"], song, "{kept}");
    assert_eq!(kept["pages"][song], 1, "{kept}");
}

#[test]
fn an_empty_or_garbled_device_id_is_set_aside_with_one_warning_and_a_new_one_is_kept() {
    for (i, contents) in [&b""[..], b"not an id!\n", b"\xff\xfe"].into_iter().enumerate() {
        let dir = with_file(&format!("device-id-{i}"), "device-id", contents);
        let (status, events, log) = run(&dir.0, |_| {});
        assert!(status.success(), "{log:?}");
        let warnings: Vec<&String> = log.iter().filter(|l| l.contains("device-id")).collect();
        assert_eq!(warnings.len(), 1, "one warning: {log:#?}");
        assert!(warnings[0].contains("device-id.broken"), "{}", warnings[0]);
        assert_eq!(std::fs::read(dir.0.join("device-id.broken")).ok().as_deref(), Some(contents));
        let ready = events.iter().find(|e| e["event"] == "ready").expect("ready");
        let new_id = ready["device_id"].as_str().expect("an id").to_owned();
        assert_ne!(new_id, DEVICE_ID);
        assert_eq!(
            std::fs::read_to_string(dir.0.join("device-id")).expect("stored").trim(),
            new_id,
            "the new id is kept for next time"
        );
        assert!(dir.0.join("positions.json").is_file());
        assert!(!events.iter().any(|e| e["event"] == "error"), "{events:#?}");
    }
}

#[test]
fn a_second_instance_on_the_same_directory_says_so_and_exits_and_the_first_runs_on() {
    let dir = TempDir::new("second");
    let mut first = start(&dir.0);
    first.wait("ready", |e| e["event"] == "ready");
    let (output, events, log) = refused(&dir.0);
    assert_eq!(output.status.code(), Some(1), "{log:?}");
    let said: Vec<&String> = log.iter().filter(|l| l.contains("already running")).collect();
    assert_eq!(said.len(), 1, "one line: {log:#?}");
    assert!(said[0].contains(&dir.0.display().to_string()), "{}", said[0]);
    assert_eq!(events.len(), 1, "{events:#?}");
    assert_eq!(events[0]["event"], "error");
    // The first one is untouched.
    first.send(&format!("song {}", demo_score("harbour-lights-jig.pdf").display()));
    first.wait("shown", |e| e["event"] == "show" && e["page_index"] == 0);
    assert!(first.quit().success());
    // And once it is gone, the directory is free again.
    let (status, _, log) = run(&dir.0, |_| {});
    assert!(status.success(), "{log:?}");
}

// Unix permissions make the directory read-only (Windows has no mode bits to clear).
#[cfg(unix)]
#[test]
fn a_state_directory_that_cannot_be_written_gets_one_warning_and_the_app_plays() {
    let dir = with_file("read-only", "positions.json", br#"{"last_song":null,"pages":{}}"#);
    set_mode(&dir.0, 0o555);
    // Root writes a read-only directory anyway: then a path under a plain file stands in (it
    // cannot be created by anyone).
    let root_writes = std::fs::write(dir.0.join("probe"), b"").is_ok();
    let _ = std::fs::remove_file(dir.0.join("probe"));
    let state =
        if root_writes { dir.0.join("positions.json").join("state") } else { dir.0.clone() };
    let (status, events, log) = run(&state, |app| {
        app.send(&format!("song {}", demo_score("harbour-lights-jig.pdf").display()));
        app.wait("shown", |e| e["event"] == "show" && e["page_index"] == 0);
        app.send("next");
        app.wait("turned", |e| e["event"] == "show" && e["page_index"] == 1);
    });
    set_mode(&dir.0, 0o755);
    assert!(status.success(), "{log:?}");
    let warnings: Vec<&String> = log.iter().filter(|l| l.contains("cannot be written")).collect();
    assert_eq!(warnings.len(), 1, "one warning: {log:#?}");
    assert!(warnings[0].contains(&state.display().to_string()), "{}", warnings[0]);
    let shows: Vec<&Value> = events.iter().filter(|e| e["event"] == "show").collect();
    assert_eq!(shows.last().map(|e| e["page_index"].clone()), Some(Value::from(1)), "{events:#?}");
    assert!(!events.iter().any(|e| e["event"] == "error"), "{events:#?}");
    if !root_writes {
        let ready = events.iter().find(|e| e["event"] == "ready").expect("ready");
        assert_eq!(ready["device_id"], DEVICE_ID, "the stored id is still read");
    }
}

#[cfg(unix)]
fn set_mode(dir: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode)).expect("chmod");
}
