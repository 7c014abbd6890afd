//! The real window: under Xvfb with Mesa's software Vulkan (lavapipe), the app opens a demo
//! score, turns a page on a key press, and its screenshot (Bevy's screenshot API) is compared
//! pixel by pixel with `maestral render` of the same page. The same for the dual layout's two
//! windows (odd page in one, even page in the other).
//!
//! Needs `xvfb` and `mesa-vulkan-drivers` (Debian); fails with that message where they are
//! missing. Every wait is bounded; nothing asserts on time.

mod support;

use std::path::Path;

use image::RgbaImage;
use serde_json::Value;
use support::{App, TempDir, VirtualDisplay, demo_score};

fn render(score: &Path, page: u32, width: u32, height: u32, out: &Path) -> RgbaImage {
    let status = support::maestral()
        .args(["render"])
        .arg(score)
        .args(["--page", &page.to_string(), "--width", &width.to_string()])
        .args(["--height", &height.to_string(), "--out"])
        .arg(out)
        .stderr(support::app_stderr())
        .status()
        .expect("maestral render runs");
    assert!(status.success(), "maestral render failed");
    image::open(out).expect("the reference opens").to_rgba8()
}

/// Where the page is on screen, from a `presented` event.
fn page_rect(presented: &Value, window: u64) -> (u32, u32, u32, u32) {
    let page = presented["pages"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["window"] == window))
        .expect("the window's page");
    let n = |k: &str| page[k].as_u64().expect("a number") as u32;
    (n("x"), n("y"), n("width"), n("height"))
}

fn luma(p: &image::Rgba<u8>) -> u32 {
    (u32::from(p[0]) * 3 + u32::from(p[1]) * 6 + u32::from(p[2])) / 10
}

/// Mean absolute difference (0–255) of the RGB channels of the shot's page area and the
/// reference.
fn mean_difference(shot: &RgbaImage, at: (u32, u32), reference: &RgbaImage) -> f64 {
    let mut sum = 0u64;
    for (x, y, r) in reference.enumerate_pixels() {
        let s = shot.get_pixel(at.0 + x, at.1 + y);
        for c in 0..3 {
            sum += u64::from(s[c].abs_diff(r[c]));
        }
    }
    sum as f64 / (f64::from(reference.width()) * f64::from(reference.height()) * 3.0)
}

/// The rows where most of the page is dark ink: the staff lines.
fn staff_rows(image: &RgbaImage, at: (u32, u32), size: (u32, u32)) -> Vec<u32> {
    (0..size.1)
        .filter(|&y| {
            let dark =
                (0..size.0).filter(|&x| luma(image.get_pixel(at.0 + x, at.1 + y)) < 128).count();
            dark as f64 > 0.4 * f64::from(size.0)
        })
        .collect()
}

/// The screenshot's page area matches the reference: small mean difference, and the same
/// staff rows dark.
fn assert_same_page(
    shot: &RgbaImage,
    rect: (u32, u32, u32, u32),
    reference: &RgbaImage,
    what: &str,
) {
    let (x, y, w, h) = rect;
    assert_eq!(
        (w, h),
        reference.dimensions(),
        "{what}: the page is shown at the size it was rendered"
    );
    assert!(
        x + w <= shot.width() && y + h <= shot.height(),
        "{what}: the page is inside the window"
    );
    let diff = mean_difference(shot, (x, y), reference);
    assert!(diff < 3.0, "{what}: mean difference {diff:.2} from `maestral render`");
    let want = staff_rows(reference, (0, 0), (w, h));
    assert!(want.len() >= 10, "{what}: the reference page has staff lines ({} rows)", want.len());
    let got = staff_rows(shot, (x, y), (w, h));
    assert_eq!(got, want, "{what}: the staff lines are where `maestral render` has them");
}

#[test]
fn a_key_turns_the_page_and_the_window_shows_exactly_what_maestral_render_draws() {
    let display = VirtualDisplay::start();
    let dir = TempDir::new("window");
    let score = demo_score("lanterns-on-the-water.pdf");
    let mut command = display.command();
    command.args(["--control", "--window-size", "800x600", "--state-dir"]).arg(&dir.0).arg(&score);
    let mut app = App::spawn(command);
    app.wait("ready", |e| e["event"] == "ready");
    app.wait_presented(&[(0, 0)]);

    app.send("key PageDown");
    let presented = app.wait_presented(&[(0, 1)]);
    let shot_path = dir.0.join("page1.png");
    app.send(&format!("screenshot {}", shot_path.display()));
    let shot = app.wait("screenshot", |e| e["event"] == "screenshot");
    assert_eq!((shot["width"].as_u64(), shot["height"].as_u64()), (Some(800), Some(600)));
    let shot = image::open(&shot_path).expect("the screenshot opens").to_rgba8();

    let rect = page_rect(&presented, 0);
    let reference = render(&score, 1, 800, 600, &dir.0.join("ref1.png"));
    assert_same_page(&shot, rect, &reference, "page 1");
    // And it is page 1, not page 0.
    let other = render(&score, 0, 800, 600, &dir.0.join("ref0.png"));
    let diff0 = mean_difference(&shot, (rect.0, rect.1), &other);
    assert!(diff0 > 3.0, "the shot differs from page 0 ({diff0:.2})");
    // Outside the page: the background, not paper.
    let corner = shot.get_pixel(2, 300);
    assert!(luma(corner) < 100, "the margin beside the page is dark: {corner:?}");

    assert!(app.quit().success());
}

/// The part (`top`, `bottom`) of page `page` in a `presented` event: its rectangle.
fn part_rect(presented: &Value, page: u64, part: &str) -> (u32, u32, u32, u32) {
    let p = presented["pages"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["page"] == page && p["part"] == part))
        .unwrap_or_else(|| panic!("page {page}'s {part} half in {presented}"));
    let n = |k: &str| p[k].as_u64().expect("a number") as u32;
    (n("x"), n("y"), n("width"), n("height"))
}

/// The mean difference of a band of rows of the shot and the same rows of a reference page,
/// the reference drawn at `at` in the window.
fn band_difference(
    shot: &RgbaImage,
    at: (u32, u32),
    reference: &RgbaImage,
    rows: std::ops::Range<u32>,
) -> f64 {
    let mut sum = 0u64;
    for y in rows.clone() {
        for x in 0..reference.width() {
            let (s, r) = (shot.get_pixel(at.0 + x, at.1 + y), reference.get_pixel(x, y));
            for c in 0..3 {
                sum += u64::from(s[c].abs_diff(r[c]));
            }
        }
    }
    sum as f64 / (f64::from(reference.width()) * f64::from(rows.len() as u32) * 3.0)
}

#[test]
fn a_half_page_turn_shows_the_next_pages_top_over_this_pages_bottom_then_the_whole_page() {
    let display = VirtualDisplay::start();
    let dir = TempDir::new("half");
    let score = demo_score("lanterns-on-the-water.pdf");
    let mut command = display.command();
    command
        .args(["--control", "--layout", "half", "--window-size", "800x600", "--state-dir"])
        .arg(&dir.0)
        .arg(&score);
    let mut app = App::spawn(command);
    app.wait("ready", |e| e["event"] == "ready");
    let whole = app.wait_presented(&[(0, 0)]);
    let (x, y, w, h) = page_rect(&whole, 0);

    // The first press: page 1's top half above page 0's bottom half, in one swap, each where
    // it is on its page, and the position not moved (nothing is told to anyone).
    app.send("key PageDown");
    let half = app.wait_presented(&[(0, 1), (0, 0)]);
    assert_eq!(half["pages"].as_array().map(Vec::len), Some(2), "{half}");
    let top = part_rect(&half, 1, "top");
    let bottom = part_rect(&half, 0, "bottom");
    assert_eq!(top, (x, y, w, h / 2), "the top half where the whole page's top is");
    assert_eq!(bottom, (x, y + h / 2, w, h - h / 2), "the bottom half below it");
    app.seen_or_wait("the half turn said", |e| e["event"] == "half" && e["next"] == 1);
    let shot_path = dir.0.join("half.png");
    app.send(&format!("screenshot {}", shot_path.display()));
    app.wait("screenshot", |e| e["event"] == "screenshot");
    let shot = image::open(&shot_path).expect("the screenshot opens").to_rgba8();
    let next = render(&score, 1, 800, 600, &dir.0.join("ref1.png"));
    let this = render(&score, 0, 800, 600, &dir.0.join("ref0.png"));
    assert_eq!(next.dimensions(), (w, h), "drawn at the whole page's size");
    let upper = 0..h / 2;
    let lower = h / 2..h;
    let d_top = band_difference(&shot, (x, y), &next, upper.clone());
    let d_bottom = band_difference(&shot, (x, y), &this, lower.clone());
    assert!(d_top < 3.0, "the upper half is page 1's ({d_top:.2})");
    assert!(d_bottom < 3.0, "the lower half is page 0's ({d_bottom:.2})");
    let d_wrong = band_difference(&shot, (x, y), &this, upper);
    assert!(d_wrong > 3.0, "and not page 0's top ({d_wrong:.2})");

    // The second press completes the turn: page 1 whole, in one swap.
    app.send("key PageDown");
    let done = app.wait_presented(&[(0, 1)]);
    assert_eq!(done["pages"].as_array().map(Vec::len), Some(1), "{done}");
    assert_eq!(part_rect(&done, 1, "whole"), (x, y, w, h));
    app.seen_or_wait("page 1 shown", |e| e["event"] == "show" && e["page_index"] == 1);
    assert!(app.quit().success());
}

#[test]
fn two_windows_show_the_odd_and_the_even_page_of_the_spread() {
    let display = VirtualDisplay::start();
    let dir = TempDir::new("dual");
    let score = demo_score("lanterns-on-the-water.pdf");
    let mut command = display.command();
    command
        .args(["--control", "--dual-window", "--window-size", "500x700", "--state-dir"])
        .arg(&dir.0)
        .arg(&score);
    let mut app = App::spawn(command);
    app.wait("ready", |e| e["event"] == "ready");
    app.wait_presented(&[(0, 0), (1, 1)]);

    app.send("key PageDown");
    let presented = app.wait_presented(&[(0, 2), (1, 3)]);
    for (window, page) in [(0u64, 2u32), (1, 3)] {
        let path = dir.0.join(format!("window{window}.png"));
        app.send(&format!("screenshot {} {window}", path.display()));
        app.wait("screenshot", |e| e["event"] == "screenshot");
        let shot = image::open(&path).expect("the screenshot opens").to_rgba8();
        assert_eq!(shot.dimensions(), (500, 700));
        let reference = render(&score, page, 500, 700, &dir.0.join(format!("ref{page}.png")));
        assert_same_page(
            &shot,
            page_rect(&presented, window),
            &reference,
            &format!("window {window}"),
        );
    }
    assert!(app.quit().success());
}

/// A windowed Follower whose library lacks the Master's song receives it (streamed into memory)
/// and draws the Master's page from those bytes, exactly as `maestral render` draws the file.
#[test]
fn a_follower_window_draws_the_masters_page_from_the_streamed_score() {
    let display = VirtualDisplay::start();
    let dir = TempDir::new("window-stream");
    let score = demo_score("lanterns-on-the-water.pdf");
    let empty = dir.0.join("no-scores");
    std::fs::create_dir_all(&empty).expect("an empty library");
    let mut master = support::maestral();
    master
        .args(["--headless", "--choir-master", "--listen", "127.0.0.1:0", "--state-dir"])
        .arg(dir.0.join("m"))
        .arg(support::demo_library());
    let mut master = App::spawn(master);
    master.name = "the Master".into();
    let ready = master.wait("ready", |e| e["event"] == "ready");
    let code = ready["join_code"].as_str().expect("a join code").to_owned();
    master.send(&format!("song {}", score.display()));
    master.send("page 1");
    master.wait("page 1", |e| e["event"] == "show" && e["page_index"] == 1);

    let mut command = display.command();
    command
        .args(["--control", "--window-size", "800x600", "--join", &code, "--state-dir"])
        .arg(dir.0.join("f"))
        .arg(&empty);
    let mut singer = App::spawn(command);
    singer.name = "the singer's window".into();
    singer.wait("ready", |e| e["event"] == "ready");
    singer.wait("the score arrived", |e| e["event"] == "stream" && e["state"] == "ready");
    let presented = singer.wait_presented(&[(0, 1)]);
    let shot_path = dir.0.join("streamed.png");
    singer.send(&format!("screenshot {}", shot_path.display()));
    singer.wait("screenshot", |e| e["event"] == "screenshot");
    let shot = image::open(&shot_path).expect("the screenshot opens").to_rgba8();
    let reference = render(&score, 1, 800, 600, &dir.0.join("ref1.png"));
    assert_same_page(&shot, page_rect(&presented, 0), &reference, "the streamed page 1");
    assert!(singer.quit().success());
    assert!(master.quit().success());
}
