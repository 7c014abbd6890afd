//! `cargo xtask bench hostile [--dev]`: how long an honest singer takes to join a headless
//! Master while the attacks of issue 32 run against it (headless processes, real WebRTC on
//! loopback; the attacker is a stock WebRTC stack holding the join code, as in tests/hostile.rs):
//!
//! - none (the baseline);
//! - 20 token holders' links that open and never send `JOIN_REQUEST`;
//! - a token holder cut off for flooding, asking to join again at once;
//! - a join request whose offer names a third address (another loopback address here).
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
    let (mut joins, mut turns) = (Vec::new(), Vec::new());
    for i in 0..SINGERS {
        let name = format!("honest-{tag}-{i}");
        let started = Instant::now();
        let mut s = restart::spawn(&name, &root.join(&name), &["--join", code]);
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
