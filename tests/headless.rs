//! `maestral --headless` end to end: real processes, line commands on standard input, JSON
//! events on standard output (`docs/headless.md`), a Choir Master and a Follower over real
//! WebRTC on loopback. Every wait is bounded; nothing asserts on time.

mod support;

use std::ops::{Deref, DerefMut};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{App, TempDir, WAIT, demo_library, demo_score as score};

/// One `maestral --headless` process, with its own state folder.
struct Peer {
    app: App,
    _state: TempDir,
}

impl Deref for Peer {
    type Target = App;
    fn deref(&self) -> &App {
        &self.app
    }
}

impl DerefMut for Peer {
    fn deref_mut(&mut self) -> &mut App {
        &mut self.app
    }
}

impl Peer {
    fn start(name: &'static str, args: &[&str]) -> Peer {
        Peer::start_in(name, args, TempDir::new(name))
    }

    /// With a state folder prepared by the test.
    fn start_in(name: &'static str, args: &[&str], state: TempDir) -> Peer {
        let mut command = support::maestral();
        command
            .arg("--headless")
            .arg(demo_library())
            .args(args)
            .args(["--device-id", name, "--state-dir"])
            .arg(&state.0);
        let mut app = App::spawn(command);
        app.name = name.into();
        Peer { app, _state: state }
    }

    /// Like [`Peer::wait_show`], but done at once if the last `show` seen already is that.
    fn showing(&mut self, song: &str, page: u64) {
        let last = self.seen.iter().rev().find(|e| e["event"] == "show");
        if last.is_some_and(|e| e["song_id"] == song && e["page_index"] == page) {
            return;
        }
        self.wait_show(song, page);
    }

    fn wait_show(&mut self, song: &str, page: u64) -> Value {
        self.wait(&format!("show {page}"), |e| {
            e["event"] == "show" && e["song_id"] == song && e["page_index"] == page
        })
    }

    /// Sends `quit` and waits for the exit status.
    fn quit(self) -> std::process::ExitStatus {
        self.app.quit()
    }
}

#[test]
fn a_follower_in_another_process_follows_the_masters_song_and_pages() {
    let mut master = Peer::start("M", &["--choir-master", "--listen", "127.0.0.1:0"]);
    let ready = master.wait("ready", |e| e["event"] == "ready");
    assert_eq!(ready["mode"], "choir_master");
    assert_eq!(ready["device_id"], "M");
    let code = ready["join_code"].as_str().expect("a Master's ready event has its join code");
    assert!(code.starts_with("HTTP://127.0.0.1:"), "{code}");

    let mut follower = Peer::start("F", &["--join", code]);
    let ready = follower.wait("ready", |e| e["event"] == "ready");
    assert_eq!(ready["mode"], "choir_follower");
    assert!(ready["join_code"].is_null());
    follower.wait("FOLLOWER_CONNECTED_FOLLOW", |e| {
        e["event"] == "phase" && e["phase"] == "FOLLOWER_CONNECTED_FOLLOW"
    });
    master.wait("the Follower's link", |e| {
        e["event"] == "link" && e["peer"] == "F" && e["state"] == "CONNECTED"
    });

    master.send(&format!("song {}", score("lanterns-on-the-water.pdf").display()));
    let shown = master.wait("show", |e| e["event"] == "show");
    let song = shown["song_id"].as_str().expect("a song id").to_owned();
    assert_eq!(song.len(), 64);
    assert_eq!(shown["page_index"], 0);
    assert_eq!(shown["page_count"], 11);
    let on_follower = follower.wait_show(&song, 0);
    assert_eq!(on_follower["page_count"], 11, "the Follower has the score in its library");

    master.send("next");
    master.wait_show(&song, 1);
    follower.wait_show(&song, 1);

    master.send("page 3");
    master.wait_show(&song, 3);
    follower.wait_show(&song, 3);

    // A Follower gone free ignores page turns, then catches up when it follows again.
    follower.send("free");
    follower.wait("FOLLOWER_CONNECTED_FREE", |e| e["phase"] == "FOLLOWER_CONNECTED_FREE");
    let free_from = follower.seen.len();
    master.send("page 6");
    master.wait_show(&song, 6);
    // It turns on its own: from its page 3, not from the Master's 6.
    follower.send("next");
    follower.wait_show(&song, 4);
    follower.send("follow");
    follower.wait_show(&song, 6);
    let pages: Vec<&Value> = follower.seen[free_from..]
        .iter()
        .filter(|e| e["event"] == "show")
        .map(|e| &e["page_index"])
        .collect();
    assert_eq!(pages, [4, 6], "while free, only its own turn moved it: {pages:?}");

    // Bad input: an error line, and the process carries on.
    master.send("flip the page");
    let error = master.wait("error", |e| e["event"] == "error");
    assert!(error["message"].as_str().is_some_and(|m| m.contains("unknown command")), "{error}");
    master.send("song /no/such/score.pdf");
    master.wait("error", |e| e["event"] == "error");
    master.send("prev");
    master.wait_show(&song, 5);
    follower.wait_show(&song, 5);

    assert!(follower.quit().success());
    master.wait("the Follower leaving", |e| {
        e["event"] == "link" && e["peer"] == "F" && e["state"] != "CONNECTED"
    });
    assert!(master.quit().success());
}

#[test]
fn a_solo_device_alone_turns_pages_and_quits_cleanly() {
    let mut solo = Peer::start("S", &[]);
    let ready = solo.wait("ready", |e| e["event"] == "ready");
    assert_eq!(ready["mode"], "solo");
    assert!(ready["join_code"].is_null() && ready["pair_code"].is_null());
    solo.send(&format!("song {}", score("harbour-lights-jig.pdf").display()));
    let shown = solo.wait("show", |e| e["event"] == "show");
    let song = shown["song_id"].as_str().expect("song").to_owned();
    assert_eq!(shown["page_count"], 2);
    solo.send("next");
    solo.wait_show(&song, 1);
    solo.send("next");
    solo.send("page 2");
    let error = solo.wait("error", |e| e["event"] == "error");
    assert!(error["message"].as_str().is_some_and(|m| m.contains("past the end")), "{error}");
    // A song id works as well as a path.
    solo.send(&format!("song {song}"));
    solo.wait_show(&song, 0);
    solo.send("");
    solo.send("leave");
    let error = solo.wait("error", |e| e["event"] == "error");
    assert!(
        error["message"].as_str().is_some_and(|m| m.contains("`leave`") && m.contains("solo")),
        "leaving is for Choir Followers: {error}"
    );
    assert!(solo.quit().success(), "quit exits 0");
}

#[test]
fn a_broken_join_code_says_so_and_the_app_keeps_running() {
    let mut follower = Peer::start("F2", &["--join", "maestral://join?host=nowhere"]);
    follower.wait("ready", |e| e["event"] == "ready");
    let error = follower.wait("error", |e| e["event"] == "error");
    assert!(error["message"].as_str().is_some_and(|m| m.contains("join code")), "{error}");
    follower.send(&format!("song {}", score("harbour-lights-jig.pdf").display()));
    follower.wait("show", |e| e["event"] == "show");
    assert!(follower.quit().success());
}

#[test]
fn closing_standard_input_ends_the_process() {
    let mut solo = Peer::start("S2", &[]);
    solo.wait("ready", |e| e["event"] == "ready");
    solo.close_stdin();
    let deadline = Instant::now() + WAIT;
    let status = loop {
        if let Some(status) = solo.child.try_wait().expect("wait") {
            break status;
        }
        assert!(Instant::now() < deadline, "still running after its input closed");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success());
}

#[test]
fn two_solo_devices_pair_by_codes_and_show_the_two_halves_of_each_spread() {
    let mut a = Peer::start("A", &["--solo-offer"]);
    let ready = a.wait("ready", |e| e["event"] == "ready");
    let offer = ready["pair_code"].as_str().expect("an offer code").to_owned();
    assert!(offer.starts_with("M1O:"), "{offer}");
    let mut b = Peer::start("B", &["--solo-answer", &offer]);
    let ready = b.wait("ready", |e| e["event"] == "ready");
    let answer = ready["pair_code"].as_str().expect("an answer code").to_owned();
    assert!(answer.starts_with("M1A:"), "{answer}");
    // The offering device reads the answer code as a line.
    a.send(&answer);
    a.wait("paired", |e| e["event"] == "phase" && e["phase"] == "SOLO_PAIRED_CONNECTED");
    b.wait("paired", |e| e["event"] == "phase" && e["phase"] == "SOLO_PAIRED_CONNECTED");

    a.send(&format!("song {}", score("lanterns-on-the-water.pdf").display()));
    let on_a = a.wait("show", |e| e["event"] == "show");
    let song = on_a["song_id"].as_str().expect("song").to_owned();
    // B learns the song from A: its page is its half of the first spread; A has the other.
    let on_b = b.wait("show", |e| e["event"] == "show" && e["song_id"] == song.as_str());
    let hb = on_b["page_index"].as_u64().expect("page");
    assert!(hb <= 1, "{on_b}");
    let ha = 1 - hb;
    a.showing(&song, ha);
    // Either device turns the spread; each keeps its half.
    b.send("next");
    a.wait_show(&song, 2 + ha);
    b.wait_show(&song, 2 + hb);
    a.send("next");
    a.wait_show(&song, 4 + ha);
    b.wait_show(&song, 4 + hb);
    assert!(a.quit().success());
    assert!(b.quit().success());
}

#[test]
fn a_line_that_is_not_utf8_gets_one_error_and_the_next_line_still_works() {
    let mut solo = Peer::start("S3", &[]);
    solo.wait("ready", |e| e["event"] == "ready");
    solo.send_bytes(b"page \xff\xfe\n");
    let error = solo.wait("error", |e| e["event"] == "error");
    assert!(
        error["message"].as_str().is_some_and(|m| m.contains("not UTF-8")),
        "one readable message: {error}"
    );
    solo.send(&format!("song {}", score("harbour-lights-jig.pdf").display()));
    let shown = solo.wait("show", |e| e["event"] == "show");
    let song = shown["song_id"].as_str().expect("song").to_owned();
    solo.send("next");
    solo.wait_show(&song, 1);
    let errors = solo.seen.iter().filter(|e| e["event"] == "error").count();
    assert_eq!(errors, 1, "{:#?}", solo.seen);
    assert!(solo.quit().success(), "still running, and quits cleanly");
}

#[test]
fn a_master_with_an_unreadable_saved_session_still_starts_with_a_join_code() {
    let state = TempDir::new("M-broken");
    std::fs::write(state.0.join("master-session.json"), "{ not a session").expect("write");
    let mut master = Peer::start_in("M3", &["--choir-master", "--listen", "127.0.0.1:0"], state);
    let ready = master.wait("ready", |e| e["event"] == "ready");
    let code = ready["join_code"].as_str().unwrap_or_else(|| panic!("a join code: {ready}"));
    assert!(code.starts_with("HTTP://127.0.0.1:"), "{code}");
    let error = master.wait("error", |e| e["event"] == "error");
    assert!(
        error["message"].as_str().is_some_and(|m| m.contains("master-session.json")),
        "{error}"
    );
    // It runs on; by the time a later command is answered, every earlier line is out.
    master.send(&format!("song {}", score("harbour-lights-jig.pdf").display()));
    master.wait("show", |e| e["event"] == "show");
    let errors = master.seen.iter().filter(|e| e["event"] == "error").count();
    assert_eq!(errors, 1, "{:#?}", master.seen);
    assert!(master.quit().success());
}

/// docs/headless.md: a file argument is the score shown at start, as in the window; a Solo device
/// and a Master start on its page 0, a Follower waits for its Master's song.
#[test]
fn a_file_argument_is_shown_at_start_and_a_follower_waits_for_its_masters_song() {
    let file = score("lanterns-on-the-water.pdf");
    let dirs = (TempDir::new("file-s"), TempDir::new("file-m"), TempDir::new("file-f"));
    let start = |name: &str, dir: &TempDir, args: &[&str]| {
        let mut command = support::maestral();
        command.arg("--headless").arg(&file).args(["--device-id", name, "--state-dir"]);
        command.arg(&dir.0).args(args);
        let mut app = App::spawn(command);
        app.name = name.into();
        app
    };
    let mut solo = start("S", &dirs.0, &[]);
    let shown = solo.wait("the file shown", |e| e["event"] == "show");
    assert_eq!((shown["page_index"].as_u64(), shown["page_count"].as_u64()), (Some(0), Some(11)));
    let song = shown["song_id"].as_str().expect("a song").to_owned();
    assert!(solo.quit().success());

    let mut master = start("M", &dirs.1, &["--choir-master", "--listen", "127.0.0.1:0"]);
    let ready = master.wait("ready", |e| e["event"] == "ready");
    let code = ready["join_code"].as_str().expect("a join code").to_owned();
    master.wait("the file shown", |e| e["event"] == "show" && e["song_id"] == song.as_str());
    master.send("page 3");
    master.wait("page 3", |e| e["event"] == "show" && e["page_index"] == 3);
    let mut singer = start("F", &dirs.2, &["--join", &code]);
    let first = singer.wait("its first page", |e| e["event"] == "show");
    assert_eq!(first["song_id"], song.as_str(), "{first}");
    assert_eq!(first["page_index"], 3, "the Master's page, not its own file's start: {first}");
    assert!(singer.quit().success());
    assert!(master.quit().success());
}
