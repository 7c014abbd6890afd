//! Before the window opens: is there a display to open it on?
//!
//! Without one, winit panics while building its event loop (`XOpenDisplayFailed`) and the user
//! reads a 40-line backtrace. The app asks first, and says in one line what to do instead.
//!
//! The test connects to the X server the way Xlib would, without speaking X: this app's winit
//! is built with its X11 backend only (the root `Cargo.toml` asks bevy for `x11`), so an X
//! display is what it needs; a Wayland session runs it through Xwayland, which sets `DISPLAY`.
//! `DISPLAY` is `[host]:number[.screen]`: no host (or `unix`) is the local socket
//! `/tmp/.X11-unix/X<number>` (or, on Linux, the abstract socket of that name, which Xorg and
//! Xvfb also listen on); a host is TCP port 6000 + number (X over SSH: `localhost:10.0`). A
//! `DISPLAY` this test does not understand is let through: winit decides, and
//! [`catch_event_loop_panic`] turns its panic into the same one line.

use std::ffi::OsString;
use std::fmt;
use std::time::Duration;

/// How long a TCP X server (a forwarded display) may take to accept the connection.
const TCP_TIMEOUT: Duration = Duration::from_secs(2);

/// The exit status when there is no display (a usage problem, as for a bad argument).
pub const EXIT_NO_DISPLAY: u8 = 2;

/// Why the window cannot open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoDisplay {
    /// Neither `DISPLAY` nor `WAYLAND_DISPLAY` is set.
    Unset,
    /// Only `WAYLAND_DISPLAY` is set; this build talks X11 (Xwayland sets `DISPLAY`).
    WaylandOnly,
    /// `DISPLAY` names a display no X server answers on.
    NoServer(String),
    /// winit could not open the display (found after the check let it through).
    EventLoop(String),
}

impl fmt::Display for NoDisplay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let why = match self {
            NoDisplay::Unset => "DISPLAY is not set".to_owned(),
            NoDisplay::WaylandOnly => {
                "DISPLAY is not set, and this build opens its window through X11 (start Xwayland)"
                    .to_owned()
            }
            NoDisplay::NoServer(display) => format!("no X server answers at DISPLAY={display}"),
            NoDisplay::EventLoop(detail) => detail.clone(),
        };
        write!(
            f,
            "maestral: no display to open the window on ({why}); run `maestral --headless`, or on \
             a virtual display with software Vulkan: xvfb-run -a env WGPU_BACKEND=vulkan \
             VK_ICD_FILENAMES=/usr/share/vulkan/icd.d/lvp_icd.x86_64.json maestral"
        )
    }
}

/// Whether this process can open a window, from its environment.
pub fn check() -> Result<(), NoDisplay> {
    check_with(std::env::var_os("DISPLAY"), std::env::var_os("WAYLAND_DISPLAY"))
}

/// [`check`] with the two variables given (tests).
pub fn check_with(
    display: Option<OsString>,
    wayland_display: Option<OsString>,
) -> Result<(), NoDisplay> {
    if cfg!(any(target_os = "macos", target_os = "windows", not(unix))) {
        return Ok(());
    }
    let set = |v: Option<OsString>| v.filter(|v| !v.is_empty());
    let Some(display) = set(display) else {
        return Err(match set(wayland_display) {
            Some(_) => NoDisplay::WaylandOnly,
            None => NoDisplay::Unset,
        });
    };
    let display = display.to_string_lossy().into_owned();
    match x_server_answers(&display) {
        Some(false) => Err(NoDisplay::NoServer(display)),
        // Answers, or a form this test does not read: winit decides.
        Some(true) | None => Ok(()),
    }
}

/// Whether an X server accepts a connection at `display`; `None` if the form is not understood.
fn x_server_answers(display: &str) -> Option<bool> {
    let (host, rest) = display.rsplit_once(':')?;
    let number: u16 = rest.split('.').next()?.parse().ok()?;
    if host.starts_with('/') {
        // A socket path (XQuartz's launchd form): not this test's business.
        return None;
    }
    let host = host.rsplit_once('/').map_or(host, |(_, h)| h);
    if host.is_empty() || host == "unix" {
        return Some(local_socket_answers(number));
    }
    let port = 6000u16.checked_add(number)?;
    use std::net::ToSocketAddrs;
    let addrs = (host, port).to_socket_addrs().ok()?;
    Some(addrs.into_iter().any(|a| std::net::TcpStream::connect_timeout(&a, TCP_TIMEOUT).is_ok()))
}

#[cfg(unix)]
fn local_socket_answers(number: u16) -> bool {
    use std::os::unix::net::UnixStream;
    let path = format!("/tmp/.X11-unix/X{number}");
    if UnixStream::connect(&path).is_ok() {
        return true;
    }
    #[cfg(target_os = "linux")]
    {
        use std::os::linux::net::SocketAddrExt;
        use std::os::unix::net::SocketAddr;
        if let Ok(addr) = SocketAddr::from_abstract_name(path.as_bytes()) {
            return UnixStream::connect_addr(&addr).is_ok();
        }
    }
    false
}

#[cfg(not(unix))]
fn local_socket_answers(_number: u16) -> bool {
    true
}

/// A panic hook for the window app: winit's "Failed to build event loop" panic (a display the
/// check let through but that would not open) prints [`NoDisplay::EventLoop`]'s one line and
/// exits with [`EXIT_NO_DISPLAY`]; any other panic goes to the hook that was there before.
pub fn catch_event_loop_panic() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info.payload_as_str().unwrap_or_default();
        if let Some(detail) = message.strip_prefix("Failed to build event loop") {
            let detail = detail.trim_start_matches(':').trim();
            let detail = if detail.is_empty() { "the event loop did not start" } else { detail };
            eprintln!("{}", NoDisplay::EventLoop(format!("winit: {detail}")));
            std::process::exit(i32::from(EXIT_NO_DISPLAY));
        }
        previous(info);
    }));
}

#[cfg(all(test, unix, not(target_os = "macos")))]
mod tests {
    use super::*;

    fn os(s: &str) -> Option<OsString> {
        Some(OsString::from(s))
    }

    #[test]
    fn no_variables_or_only_wayland_is_no_display() {
        assert_eq!(check_with(None, None), Err(NoDisplay::Unset));
        assert_eq!(check_with(os(""), None), Err(NoDisplay::Unset));
        assert_eq!(check_with(None, os("wayland-0")), Err(NoDisplay::WaylandOnly));
    }

    #[test]
    fn a_display_number_without_a_server_is_no_display() {
        // Nothing listens on display 9999 (port 15999 on loopback).
        assert_eq!(check_with(os(":9999"), None), Err(NoDisplay::NoServer(":9999".into())));
        assert_eq!(check_with(os(":9999.0"), None), Err(NoDisplay::NoServer(":9999.0".into())));
        assert_eq!(
            check_with(os("127.0.0.1:9999"), None),
            Err(NoDisplay::NoServer("127.0.0.1:9999".into()))
        );
    }

    #[test]
    fn a_listening_socket_counts_as_a_display_and_odd_forms_are_let_through() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("address").port();
        if let Some(number) = port.checked_sub(6000) {
            assert_eq!(check_with(os(&format!("127.0.0.1:{number}")), None), Ok(()));
        }
        assert_eq!(check_with(os("/private/tmp/launchd/org.xquartz:0"), None), Ok(()));
        assert_eq!(check_with(os("no-colon"), None), Ok(()));
    }

    #[test]
    fn the_message_is_one_line_naming_headless_and_xvfb() {
        for why in [NoDisplay::Unset, NoDisplay::NoServer(":9".into()), NoDisplay::WaylandOnly] {
            let line = why.to_string();
            assert!(!line.contains('\n'), "{line}");
            assert!(line.contains("--headless") && line.contains("xvfb-run -a"), "{line}");
        }
    }
}
