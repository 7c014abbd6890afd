//! `cargo xtask bench hostile [--dev]`: how long an honest singer takes to join a headless
//! Master while the attacks of issue 32 run against it (headless processes, real WebRTC on
//! loopback; the attacker is a stock WebRTC stack holding the join code, as in tests/hostile.rs):
//!
//! - none (the baseline);
//! - 20 token holders' links that open and never send `JOIN_REQUEST`;
//! - a token holder cut off for flooding, asking to join again at once;
//! - a join request whose offer names a third address (another loopback address here);
//! - a token holder asking, again and again, for a singer's place (its device id, another
//!   certificate): refused `403 device_in_use`, each refusal signed;
//! - the Master moved and another device at the address in the singers' code answering every
//!   join `403` without the Master's proof: the singers find the Master by a locate query.
//!
//! For each, 5 singers one after the other: spawn → `FOLLOWER_CONNECTED_FOLLOW`, then the
//! Master's next turn → the singer shows it. Goal: every join within 3 s. Results:
//! target/bench/hostile.json.

// The bench uses part of the rogue peer the tests share.
#[allow(dead_code)]
#[path = "../crates/maestral-net/tests/common/rogue.rs"]
mod rogue;
#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use maestral_bench::{Summary, header, ms, write_report};
use maestral_net::joincode::JoinCode;
use serde_json::{Value, json};
use support::TempDir;
use support::restart::{self, is_phase, is_show, show_song};

const SINGERS: usize = 5;
const WAIT: Duration = Duration::from_secs(60);

/// Joins and turns of `SINGERS` honest singers, one after the other, while an attack runs.
fn singers(
    root: &std::path::Path,
    tag: &str,
    m: &mut support::App,
    code: &str,
    song: &str,
) -> Value {
    singers_with(root, tag, m, &["--join", code], song)
}

/// As [`singers`], each singer started with `args`.
fn singers_with(
    root: &std::path::Path,
    tag: &str,
    m: &mut support::App,
    args: &[&str],
    song: &str,
) -> Value {
    let (mut joins, mut turns) = (Vec::new(), Vec::new());
    for i in 0..SINGERS {
        let name = format!("honest-{tag}-{i}");
        let started = Instant::now();
        let mut s = restart::spawn(&name, &root.join(&name), args);
        let (_, joined) = s.wait_at("joined", |e| is_phase(e, "FOLLOWER_CONNECTED_FOLLOW"));
        joins.push(ms(joined - started));
        // Another page each time, within the score's 11.
        let now = m.seen.iter().rev().find(|e| e["event"] == "show");
        let page = (now.and_then(|e| e["page_index"].as_u64()).unwrap_or(0) + 1) % 10;
        let sent = Instant::now();
        m.send(&format!("page {page}"));
        let (_, shown) = s.wait_at("the turn", |e| is_show(e, song, page));
        turns.push(ms(shown - sent));
        m.wait("its own turn", |e| is_show(e, song, page));
        let _ = s.quit();
    }
    json!({
        "join_ms": Summary::of(&joins).map(|s| s.json_ms()),
        "turn_ms": Summary::of(&turns).map(|s| s.json_ms()),
        "join_samples_ms": joins,
    })
}

/// One `POST /v1/join` of `body` to `host` from the address `from`: the answer's status (0 if
/// there was none).
async fn knock(from: std::net::IpAddr, host: std::net::SocketAddr, body: &Value) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(socket) = tokio::net::TcpSocket::new_v4() else { return 0 };
    if socket.bind(std::net::SocketAddr::new(from, 0)).is_err() {
        return 0;
    }
    let Ok(mut stream) = socket.connect(host).await else { return 0 };
    let body = body.to_string();
    let request = format!(
        "POST /v1/join HTTP/1.1\r\nhost: {host}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    if stream.write_all(request.as_bytes()).await.is_err() {
        return 0;
    }
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer)).await;
    let text = String::from_utf8_lossy(&answer);
    text.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0)
}

fn main() {
    let (cores, profile) = header("hostile: an honest singer joins while attacks run");
    let root = TempDir::new("bench-hostile");
    let (mut m, code_text) = restart::master(&root.0.join("conductor"));
    let code: JoinCode = code_text.parse().expect("our join code");
    let song = show_song(&mut m, "lanterns-on-the-water.pdf");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let mut rows = serde_json::Map::new();

    rows.insert("none".into(), singers(&root.0, "plain", &mut m, &code_text, &song));

    let silent: Vec<_> = (0..20)
        .map(|i| {
            rt.block_on(rogue::join(&code, &format!("silent-{i}"), None, WAIT)).expect("opens")
        })
        .collect();
    rows.insert("20 silent links".into(), singers(&root.0, "silent", &mut m, &code_text, &song));
    for (link, _) in silent {
        rt.block_on(link.close());
    }

    let (link, mut events) = rt.block_on(rogue::join(&code, "flooder", None, WAIT)).expect("opens");
    rt.block_on(async {
        let heavy = "x".repeat(60 * 1024);
        for _ in 0..40 {
            if link.send_text(&heavy).await.is_err() {
                break;
            }
        }
        maestral_net::rtc::wait_closed(&mut events, WAIT).await;
        link.close().await;
    });
    let knocking = rt.spawn({
        let code = code.clone();
        async move {
            loop {
                if let Ok((link, _)) =
                    rogue::join(&code, "flooder", None, Duration::from_secs(5)).await
                {
                    link.close().await;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    });
    rows.insert(
        "a flooder knocking again".into(),
        singers(&root.0, "flood", &mut m, &code_text, &song),
    );
    knocking.abort();

    let victim = std::net::UdpSocket::bind("127.0.0.2:0").expect("a victim's socket");
    let at = victim.local_addr().expect("its address");
    let (link, _) = rt
        .block_on(rogue::join_edited(&code, "reflector", None, WAIT, |offer| {
            let line =
                format!("a=candidate:9 1 udp 2130706431 {} {} typ host\r\n", at.ip(), at.port());
            match offer.find("a=candidate:") {
                Some(i) => format!("{}{line}{}", &offer[..i], &offer[i..]),
                None => offer + &line,
            }
        }))
        .expect("opens");
    rows.insert(
        "a reflector request".into(),
        singers(&root.0, "reflect", &mut m, &code_text, &song),
    );
    rt.block_on(link.close());

    // A place-taker on another address: the first singer's id, from another certificate, as
    // fast as it is answered.
    let answers = std::sync::Arc::new(std::sync::Mutex::new(std::collections::BTreeMap::new()));
    let taking = rt.spawn({
        let (code, answers) = (code.clone(), answers.clone());
        async move {
            let local = maestral_net::rtc::RtcConfig::new("127.0.0.3".parse().expect("an IP"));
            // The offer's link stays unused: the Master refuses before any connection is made.
            let (_link, offer, _events) =
                maestral_net::rtc::Link::offer(&local, None).await.expect("an offer");
            let body = serde_json::json!({
                "session_id": code.session_id, "token": code.token.expose(),
                "device_id": "honest-plain-0", "offer": offer,
            });
            loop {
                let status = knock("127.0.0.3".parse().expect("an IP"), code.host, &body).await;
                *answers.lock().expect("counts").entry(status).or_insert(0u64) += 1;
                tokio::task::yield_now().await;
            }
        }
    });
    let mut row = singers(&root.0, "taken", &mut m, &code_text, &song);
    taking.abort();
    row["place_taker_answers"] = json!(*answers.lock().expect("counts"));
    rows.insert("a place-taker knocking".into(), row);
    let _ = m.quit();

    // The Master moved: its old address (the one in the singers' code) is another device's,
    // refusing every join; the Master answers locate queries where it is now.
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("a free port")
        .port();
    let locate = format!("127.0.0.1:{port}");
    let mut m = restart::spawn(
        "conductor",
        &root.0.join("conductor-moved"),
        &["--choir-master", "--listen", "127.0.0.1:0", "--locate", &locate],
    );
    let ready = m.wait("ready", |e| e["event"] == "ready");
    let moved: JoinCode =
        ready["join_code"].as_str().expect("a join code").parse().expect("our join code");
    let song = show_song(&mut m, "lanterns-on-the-water.pdf");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
    let old = taken.local_addr().expect("its address");
    drop(taken);
    let refused = rogue::forge_403s(&rt, old);
    let stale = moved.to_string().replace(&moved.host.to_string(), &old.to_string());
    rows.insert(
        "a refusing listener at the code's address".into(),
        singers_with(&root.0, "moved", &mut m, &["--join", &stale, "--locate", &locate], &song),
    );
    assert!(refused.load(std::sync::atomic::Ordering::SeqCst) >= SINGERS, "it was asked");

    let _ = m.quit();
    for (name, row) in &rows {
        println!(
            "{name:>26}: join p50 {} ms, max {} ms; turn p50 {} ms",
            row["join_ms"]["p50_ms"], row["join_ms"]["max_ms"], row["turn_ms"]["p50_ms"]
        );
    }
    write_report(
        "hostile",
        &json!({ "cores": cores, "profile": profile, "rows": rows, "goal_join_ms": 3000 }),
    );
}
