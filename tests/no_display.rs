//! `maestral` (window mode) without a display: one line on standard error that says what to do,
//! exit status 2, no panic and no backtrace.

mod support;

use support::TempDir;

fn without_display(display: Option<&str>) -> (Option<i32>, String) {
    let state = TempDir::new("no-display");
    let mut command = support::maestral();
    command
        .args(["--device-id", "D", "--device-name", "N", "--state-dir"])
        .arg(&state.0)
        .env_remove("WAYLAND_DISPLAY")
        .env("RUST_BACKTRACE", "1");
    match display {
        Some(display) => command.env("DISPLAY", display),
        None => command.env_remove("DISPLAY"),
    };
    let out = command.output().expect("maestral runs");
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn assert_one_line(code: Option<i32>, stderr: &str, naming: &str) {
    assert_eq!(code, Some(2), "exit status; stderr: {stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line: {stderr}");
    let line = lines[0];
    assert!(line.starts_with("maestral: no display"), "{line}");
    assert!(line.contains("--headless") && line.contains("xvfb-run -a"), "{line}");
    assert!(line.contains(naming), "{line}");
    assert!(!stderr.contains("panicked") && !stderr.contains("backtrace"), "{stderr}");
}

#[test]
fn without_display_variables_the_window_app_says_so_in_one_line_and_exits_2() {
    let (code, stderr) = without_display(None);
    assert_one_line(code, &stderr, "DISPLAY is not set");
}

#[test]
fn with_a_display_no_server_answers_the_window_app_says_so_in_one_line_and_exits_2() {
    let (code, stderr) = without_display(Some(":9999"));
    assert_one_line(code, &stderr, "DISPLAY=:9999");
}
