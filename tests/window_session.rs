//! A Choir session started from the real window: under Xvfb with Mesa's software Vulkan, real
//! X input (`xdotool`: pointer clicks and key presses through XTEST) opens the panel, clicks
//! "Start a session" and "Show to the room"; the room view's QR, read from a screenshot by an
//! independent decoder (`zbarimg`, Debian's zbar-tools), gives back the join code; a headless
//! Follower joins with it and follows a key press on the window.
//!
//! Needs `xvfb`, `mesa-vulkan-drivers`, `xdotool` and `zbar-tools` (Debian); fails with that
//! message where they are missing. Every wait is bounded; nothing asserts on time (the time
//! from the key press to the Follower's `show` is printed, for the notes).

mod support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use maestral::input::Debounce;
use serde_json::Value;
use support::{App, TempDir, VirtualDisplay, demo_score};

const INSTALL: &str = "this test clicks with xdotool and reads the QR with zbarimg: on \
    Debian/Ubuntu `apt-get install --no-install-recommends xdotool zbar-tools`";

/// Runs `xdotool` on the display; panics with what to install where it is missing.
fn xdotool(display: &VirtualDisplay, args: &[&str]) -> String {
    let out = Command::new("xdotool")
        .args(args)
        .env("DISPLAY", &display.display)
        .output()
        .unwrap_or_else(|e| panic!("xdotool did not run ({e}): {INSTALL}"));
    assert!(
        out.status.success(),
        "xdotool {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// The app's window, once it is mapped.
fn window_id(display: &VirtualDisplay) -> String {
    let deadline = Instant::now() + support::WAIT;
    loop {
        let out = Command::new("xdotool")
            .args(["search", "--onlyvisible", "--name", "^Maestral$"])
            .env("DISPLAY", &display.display)
            .output()
            .unwrap_or_else(|e| panic!("xdotool did not run ({e}): {INSTALL}"));
        if let Some(id) = String::from_utf8_lossy(&out.stdout).lines().next() {
            return id.trim().to_owned();
        }
        assert!(Instant::now() < deadline, "the Maestral window never appeared");
        // The interval of a bounded poll: X maps the window on its own time.
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Clicks, with the real pointer, the middle of the UI's button `label`, once it is drawn in
/// view at the same place twice running (a panel just opened settles its size and scroll over
/// a frame or two; one scrolled to the button moves it).
fn click(app: &mut App, display: &VirtualDisplay, window: &str, label: &str) {
    let deadline = Instant::now() + support::WAIT;
    let place = |e: &Value| [&e["x"], &e["y"], &e["width"], &e["height"]].map(|v| v.as_f64());
    let mut last: Option<Value> = None;
    let widget = loop {
        app.send(&format!("widget {label}"));
        let got = app.wait(&format!("where {label:?} is"), |e| {
            e["event"] == "widget" && e["label"] == label
        });
        if got["drawn"] == true && last.as_ref().is_some_and(|l| place(l) == place(&got)) {
            break got;
        }
        assert!(Instant::now() < deadline, "no button {label:?} that stays put: {got}");
        last = (got["drawn"] == true).then_some(got);
        std::thread::sleep(Duration::from_millis(200));
    };
    let n = |k: &str| widget[k].as_f64().expect("a number");
    let (x, y) = (n("x") + n("width") / 2.0, n("y") + n("height") / 2.0);
    let (x, y) = (format!("{}", x.round()), format!("{}", y.round()));
    xdotool(display, &["mousemove", "--window", window, &x, &y]);
    xdotool(display, &["click", "1"]);
}

/// The QR codes `zbarimg` reads in an image.
fn zbar(image: &Path) -> Vec<String> {
    let out = Command::new("zbarimg")
        .args(["--quiet", "--raw"])
        .arg(image)
        .output()
        .unwrap_or_else(|e| panic!("zbarimg did not run ({e}): {INSTALL}"));
    String::from_utf8_lossy(&out.stdout).lines().map(str::to_owned).collect()
}

fn ready_code(event: &Value) -> Option<String> {
    event["join_code"].as_str().map(str::to_owned)
}

#[test]
fn a_session_started_from_the_window_is_joined_through_its_scanned_qr_and_follows_a_key() {
    let display = VirtualDisplay::start();
    let dir = TempDir::new("window-session");
    let score = demo_score("lanterns-on-the-water.pdf");
    let mut command = display.command();
    command
        .args(["--control", "--window-size", "1000x800", "--device-name", "Conductor"])
        .arg("--state-dir")
        .arg(dir.0.join("master"))
        .arg(&score);
    let mut master = App::spawn(command);
    master.name = "the window Master".into();
    master.wait("ready", |e| e["event"] == "ready");
    master.wait_presented(&[(0, 0)]);
    let window = window_id(&display);
    xdotool(&display, &["windowfocus", &window]);

    // The panel, by a real tap on the top strip, then "Start a session".
    xdotool(&display, &["mousemove", "--window", &window, "500", "4"]);
    xdotool(&display, &["click", "1"]);
    click(&mut master, &display, &window, maestral::ui::START);
    let ready =
        master.wait("the Master's ready", |e| e["event"] == "ready" && !e["join_code"].is_null());
    assert_eq!(ready["mode"], "choir_master");
    let code = ready_code(&ready).expect("a join code");

    // The room view: the QR over the whole window, read by zbar from a screenshot.
    click(&mut master, &display, &window, maestral::ui::ROOM);
    let shot = dir.0.join("room.png");
    // The room view is drawn by egui: wait for its widget, then shoot. Its QR texture may come
    // a frame after the widget (seen once on a loaded CI machine): shot again until zbar reads
    // a code, each shot a frame of its own (a capture asks for one), within the deadline.
    wait_drawn(&mut master, maestral::ui::ROOM_VIEW);
    let deadline = Instant::now() + support::WAIT;
    let read = loop {
        master.send(&format!("screenshot {}", shot.display()));
        master.wait("screenshot", |e| e["event"] == "screenshot");
        let read = zbar(&shot);
        if !read.is_empty() {
            break read;
        }
        assert!(Instant::now() < deadline, "zbar read no QR code on the room view");
    };
    assert_eq!(read, vec![code.clone()], "zbar reads the join code from the room view");

    // A headless Follower joins with what the camera read.
    let mut singer_cmd = support::maestral();
    singer_cmd
        .args(["--headless", "--device-name", "Singer", "--join", &read[0], "--state-dir"])
        .arg(dir.0.join("singer"))
        .arg(&score);
    let mut singer = App::spawn(singer_cmd);
    singer.name = "the headless Follower".into();
    singer
        .wait("following", |e| e["event"] == "phase" && e["phase"] == "FOLLOWER_CONNECTED_FOLLOW");
    singer.wait("the Master's page", |e| e["event"] == "show" && e["page_index"] == 0);

    // One tap closes the room view; a real key press on the window turns the page.
    click(&mut master, &display, &window, maestral::ui::ROOM_VIEW);
    wait_gone(&mut master, maestral::ui::ROOM_VIEW);
    // Key presses on the window, each followed by the Follower (the time is printed for the
    // notes, never asserted): Next, Prior, Next, …, ending on page 1.
    // The presses are paced as a person's: a second press of one key within the debounce
    // window counts once (src/input.rs), so presses of one key closer than that would be lost
    // by design. Each press is then followed by waiting for its effect, never assumed.
    let pace = Duration::from_millis(400);
    assert!(pace > 2 * Debounce::default().window, "pace the key presses past the debounce");
    let mut times = Vec::new();
    for (i, key) in ["Next", "Prior", "Next", "Prior", "Next"].into_iter().enumerate() {
        let page = if i % 2 == 0 { 1 } else { 0 };
        std::thread::sleep(pace);
        let pressed = Instant::now();
        xdotool(&display, &["key", key]);
        let (_, at) =
            singer.wait_at("the turned page", |e| e["event"] == "show" && e["page_index"] == page);
        times.push(at.duration_since(pressed).as_secs_f64() * 1000.0);
    }
    eprintln!("window Master key press → headless Follower `show`, ms: {times:.1?}");
    master.wait_presented(&[(0, 1)]);
    master.wait("the roster with the singer", |e| {
        e["event"] == "roster"
            && e["members"].as_array().is_some_and(|m| {
                m.iter().any(|m| m["name"] == "Singer" && m["shows"]["page_index"] == 1)
            })
    });

    assert!(singer.quit().success());
    assert!(master.quit().success());
}

/// Whether the UI drew the widget `label` in its last frame.
fn drawn(app: &mut App, label: &str) -> bool {
    app.send(&format!("widget {label}"));
    let got =
        app.wait(&format!("where {label:?} is"), |e| e["event"] == "widget" && e["label"] == label);
    got["drawn"] == true
}

/// Waits until the UI has drawn the widget `label`.
fn wait_drawn(app: &mut App, label: &str) {
    let deadline = Instant::now() + support::WAIT;
    while !drawn(app, label) {
        assert!(Instant::now() < deadline, "{label:?} was never drawn");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Waits until the UI no longer draws the widget `label`.
fn wait_gone(app: &mut App, label: &str) {
    let deadline = Instant::now() + support::WAIT;
    while drawn(app, label) {
        assert!(Instant::now() < deadline, "{label:?} stayed on screen");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The screen settings chosen in the panel are kept: a window started again with the same
/// state directory (and nothing on the command line) opens with them. Here "Controls 150 %",
/// clicked with the real pointer: every control is drawn half as large again after the restart.
#[test]
fn controls_made_larger_in_the_panel_are_as_large_after_a_restart() {
    let display = VirtualDisplay::start();
    let dir = TempDir::new("window-settings");
    let start = |display: &VirtualDisplay| {
        let mut command = display.command();
        command.args(["--control", "--window-size", "1000x800", "--state-dir"]);
        command.arg(dir.0.join("state")).arg(demo_score("lanterns-on-the-water.pdf"));
        let mut app = App::spawn(command);
        app.name = "the window".into();
        app.wait("ready", |e| e["event"] == "ready");
        app.wait_presented(&[(0, 0)]);
        let window = window_id(display);
        xdotool(display, &["windowfocus", &window]);
        // The panel, by a real tap on the top strip.
        xdotool(display, &["mousemove", "--window", &window, "500", "4"]);
        xdotool(display, &["click", "1"]);
        (app, window)
    };
    // The height of the chip `label` once it is drawn in view (the panel scrolls it there).
    let height = |app: &mut App, label: &str| {
        let deadline = Instant::now() + support::WAIT;
        loop {
            app.send(&format!("widget {label}"));
            let got = app.wait("its size", |e| e["event"] == "widget" && e["label"] == label);
            if let Some(h) = got["height"].as_f64().filter(|_| got["drawn"] == true) {
                return h;
            }
            assert!(Instant::now() < deadline, "{label:?} was never drawn: {got}");
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    let (mut app, window) = start(&display);
    let before = height(&mut app, "100 %");
    click(&mut app, &display, &window, "150 %");
    // Drawn larger at once: the click was taken.
    let deadline = Instant::now() + support::WAIT;
    while height(&mut app, "100 %") < before * 1.4 {
        assert!(Instant::now() < deadline, "150 % never took effect");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(app.quit().success());

    let (mut again, _) = start(&display);
    let after = height(&mut again, "100 %");
    assert!(after >= before * 1.4, "{before} px before, {after} px after the restart");
    assert!(again.quit().success());
}
