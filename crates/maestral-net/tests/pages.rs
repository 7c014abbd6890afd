//! The browser Follower's side of the Master's listener, over real TCP against a real sync
//! thread: the bundled page and its files, and page images only for the running session's token.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};

use common::*;
use maestral_net::signaling::page::{PageFuture, PageImage, PageOutcome};
use maestral_net::{PageImages, PageRenderer};
use maestral_sync::{LocalAction, Phase};

/// Answers every page with its own request written out, and records what it was asked.
#[derive(Default)]
struct Fake {
    asked: Mutex<Vec<(String, u32, u32)>>,
}

impl PageImages for Fake {
    fn render(&self, song: &str, page: u32, width: u32) -> PageFuture {
        self.asked.lock().expect("lock").push((song.to_owned(), page, width));
        let outcome = if song == "missing" {
            PageOutcome::NotFound
        } else {
            let bytes = format!("{song}/{page}/{width}").into_bytes();
            PageOutcome::Image(PageImage { bytes: bytes.into(), content_type: "image/png" })
        };
        Box::pin(async move { outcome })
    }
}

struct Answer {
    status: u16,
    head: String,
    body: Vec<u8>,
}

fn get(host: SocketAddr, path: &str, headers: &[&str]) -> Answer {
    let mut s = TcpStream::connect(host).expect("the listener accepts");
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    for h in headers {
        request.push_str(h);
        request.push_str("\r\n");
    }
    request.push_str("\r\n");
    s.write_all(request.as_bytes()).expect("send");
    let mut all = Vec::new();
    s.read_to_end(&mut all).expect("an answer");
    let split = all.windows(4).position(|w| w == b"\r\n\r\n").expect("a head");
    let head = String::from_utf8_lossy(&all[..split]).to_lowercase();
    let status = head.split(' ').nth(1).and_then(|c| c.parse().ok()).expect("a status");
    Answer { status, head, body: all[split + 4..].to_vec() }
}

fn master() -> (Peer, maestral_net::joincode::JoinCode, Arc<Fake>) {
    let fake = Arc::new(Fake::default());
    let mut cfg = config("M");
    cfg.pages = Some(PageRenderer(fake.clone()));
    let (m, code) = master_with(cfg);
    (m, code, fake)
}

#[test]
fn the_page_and_its_files_are_served_with_nothing_from_elsewhere() {
    let (_m, code, _) = master();
    let page = get(code.host, "/", &[]);
    assert_eq!(page.status, 200);
    assert!(page.head.contains("content-type: text/html"), "{}", page.head);
    assert!(page.head.contains("content-security-policy: default-src 'self'"), "{}", page.head);
    assert!(page.head.contains("referrer-policy: no-referrer"), "{}", page.head);
    let html = String::from_utf8(page.body).expect("UTF-8");
    assert!(html.contains("Your name") && html.contains(">Join<"), "{html}");
    assert!(html.contains("src=\"/app.mjs\""));
    for file in ["/app.mjs", "/follower.mjs", "/style.css"] {
        let f = get(code.host, file, &[]);
        assert_eq!(f.status, 200, "{file}");
        assert!(!f.body.is_empty(), "{file}");
    }
    let js = get(code.host, "/app.mjs", &[]);
    assert!(js.head.contains("content-type: text/javascript"), "{}", js.head);
    // Every module the page imports, and each of theirs, is served (a missing one would break
    // the page in a browser only).
    let mut todo = vec!["app.mjs".to_owned()];
    let mut served = Vec::new();
    while let Some(file) = todo.pop() {
        if served.contains(&file) {
            continue;
        }
        let f = get(code.host, &format!("/{file}"), &[]);
        assert_eq!(f.status, 200, "{file} is served");
        let text = String::from_utf8(f.body).expect("UTF-8");
        for line in text.lines().filter(|l| l.starts_with("import ")) {
            let name = line.split("from './").nth(1).and_then(|r| r.split('\'').next());
            todo.push(
                name.unwrap_or_else(|| panic!("{file}: an import of a file beside it: {line}"))
                    .to_owned(),
            );
        }
        served.push(file);
    }
    assert!(served.len() >= 8, "{served:?}");
    assert_eq!(get(code.host, "/other.mjs", &[]).status, 404);
    assert_eq!(get(code.host, "/../Cargo.toml", &[]).status, 404);
    assert!(maestral_net::signaling::page::bundled_bytes() < 200 * 1024);
}

#[test]
fn page_images_need_the_running_sessions_token_in_a_header() {
    let (mut m, code, fake) = master();
    let token = format!("Authorization: Bearer {}", code.token.expose());
    let path = "/v1/page?song=abc&page=2&width=1080";
    let ok = get(code.host, path, &[&token]);
    assert_eq!(ok.status, 200);
    assert_eq!(ok.body, b"abc/2/1088", "the width is rounded to a multiple of 16");
    assert!(ok.head.contains("cache-control: no-store"), "{}", ok.head);
    assert!(ok.head.contains("content-type: image/png"), "{}", ok.head);

    assert_eq!(get(code.host, path, &[]).status, 403, "no token");
    let wrong = get(code.host, path, &["Authorization: Bearer guess"]);
    assert_eq!(
        (wrong.status, String::from_utf8_lossy(&wrong.body).contains("invalid_token")),
        (403, true)
    );
    let in_url = format!("{path}&token={}", code.token.expose());
    assert_eq!(get(code.host, &in_url, &[]).status, 403, "a token in the address is not one");
    assert_eq!(get(code.host, "/v1/page?song=abc&page=x&width=9", &[&token]).status, 400);
    assert_eq!(get(code.host, "/v1/page?song=missing&page=0&width=600", &[&token]).status, 404);
    let huge = get(code.host, "/v1/page?song=abc&page=0&width=100000", &[&token]);
    assert_eq!(huge.body, b"abc/0/2560", "clamped");
    assert_eq!(fake.asked.lock().expect("lock").len(), 3, "refused requests never reach it");

    m.local(LocalAction::EndSession);
    m.wait_phase(Phase::MasterSessionEnded);
    let ended = get(code.host, path, &[&token]);
    assert_eq!(ended.status, 403);
    assert!(String::from_utf8_lossy(&ended.body).contains("session_ended"));
    // A phone that slept through the end asks again and again: that is no token guessing, and
    // it must not lock its address out of the next session (10 refusals a minute would).
    for _ in 0..15 {
        assert_eq!(get(code.host, path, &[&token]).status, 403, "never 429");
    }
}

#[test]
fn a_master_without_a_renderer_serves_no_images() {
    let (_m, code) = master_with(config("M"));
    let token = format!("Authorization: Bearer {}", code.token.expose());
    assert_eq!(get(code.host, "/v1/page?song=a&page=0&width=600", &[&token]).status, 404);
}

#[test]
fn one_address_asking_for_pages_faster_than_a_phone_turns_is_slowed_and_others_are_not() {
    let fake = Arc::new(Fake::default());
    let mut cfg = config("M");
    cfg.pages = Some(PageRenderer(fake.clone()));
    // 127.0.0.1 plays a host on the LAN (loopback is exempt by default).
    cfg.exempt_loopback = false;
    let (_m, code) = master_with(cfg);
    let limit = maestral_net::signaling::SignalingConfig::default().max_page_requests;
    let token = format!("Authorization: Bearer {}", code.token.expose());
    for i in 0..limit {
        let path = format!("/v1/page?song=abc&page={}&width={}", i % 10, 160 + 16 * (i % 100));
        assert_eq!(get(code.host, &path, &[&token]).status, 200, "request {i}");
    }
    let past = get(code.host, "/v1/page?song=abc&page=0&width=600", &[&token]);
    assert_eq!(past.status, 429);
    assert!(String::from_utf8_lossy(&past.body).contains("too_many_requests"));
    assert_eq!(
        fake.asked.lock().expect("lock").len(),
        limit,
        "the request past it renders nothing"
    );
    // Another address is not slowed by it.
    let mut s = {
        let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
            .expect("socket");
        sock.bind(&"127.0.0.2:0".parse::<SocketAddr>().expect("addr").into()).expect("bind");
        sock.connect(&code.host.into()).expect("connect");
        TcpStream::from(sock)
    };
    let request = format!(
        "GET /v1/page?song=abc&page=1&width=600 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{token}\r\n\r\n"
    );
    s.write_all(request.as_bytes()).expect("send");
    let mut all = Vec::new();
    s.read_to_end(&mut all).expect("an answer");
    assert!(all.starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&all));
}
