//! Score streaming between processes (docs/behaviour.md §8.3): a headless Master and 8 headless
//! Followers over real WebRTC on loopback, none of the Followers with the song. Each receives it
//! (the `stream` events of docs/headless.md), opens it from memory (its page count comes from
//! PDFium), and follows the turns made during the stream; at the session's end every streamed score
//! is cleared, by song id, and no copy of its bytes is left in the state directory or the temp
//! directory. Every wait is bounded; nothing asserts on time.

mod support;

use std::path::Path;
use std::time::SystemTime;

use support::{App, TempDir, demo_score};

fn singer(name: &str, library: &Path, state: &Path, code: &str) -> App {
    let mut command = support::maestral();
    command
        .arg("--headless")
        .arg(library)
        .args(["--join", code, "--device-id", name, "--device-name", name, "--state-dir"])
        .arg(state);
    let mut app = App::spawn(command);
    app.name = name.into();
    app
}

/// Files under `dir` changed since `since` whose bytes are `bytes`.
fn copies(dir: &Path, bytes: &[u8], since: SystemTime, found: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(meta) = entry.metadata() else { continue };
        if meta.is_dir() {
            copies(&path, bytes, since, found);
        } else if meta.len() == bytes.len() as u64
            && meta.modified().is_ok_and(|m| m >= since)
            && std::fs::read(&path).is_ok_and(|b| b == bytes)
        {
            found.push(path.display().to_string());
        }
    }
}

#[test]
fn eight_followers_without_the_score_receive_it_into_memory_and_lose_it_at_the_end() {
    let started = SystemTime::now();
    let root = TempDir::new("streaming");
    let empty = root.0.join("no-scores");
    std::fs::create_dir_all(&empty).expect("an empty library");
    let file = demo_score("lanterns-on-the-water.pdf");
    let bytes = std::fs::read(&file).expect("the score");

    let mut command = support::maestral();
    command
        .args(["--headless", "--choir-master", "--listen", "127.0.0.1:0", "--state-dir"])
        .arg(root.0.join("master"))
        .arg(support::demo_library());
    let mut master = App::spawn(command);
    master.name = "the Master".into();
    let ready = master.wait("ready", |e| e["event"] == "ready");
    let code = ready["join_code"].as_str().expect("a join code").to_owned();
    let mut singers: Vec<App> = (0..8)
        .map(|i| {
            let name = format!("singer-{i}");
            singer(&name, &empty, &root.0.join(&name), &code)
        })
        .collect();
    for s in &mut singers {
        s.wait("following", |e| e["event"] == "phase" && e["phase"] == "FOLLOWER_CONNECTED_FOLLOW");
    }

    master.send(&format!("song {}", file.display()));
    let shown = master.wait("the song", |e| e["event"] == "show" && e["song_id"].is_string());
    let song = shown["song_id"].as_str().expect("an id").to_owned();
    // Turns while the score streams.
    master.send("next");
    master.send("next");
    master.wait("page 2", |e| e["event"] == "show" && e["page_index"] == 2);
    for s in &mut singers {
        s.wait("receiving", |e| {
            e["event"] == "stream" && e["song_id"] == song.as_str() && e["state"] == "receiving"
        });
        s.wait("ready", |e| {
            e["event"] == "stream" && e["song_id"] == song.as_str() && e["state"] == "ready"
        });
        // Opened from memory: PDFium counted its pages; on the Master's page.
        s.seen_or_wait("the Master's page, drawn from the streamed score", |e| {
            e["event"] == "show"
                && e["song_id"] == song.as_str()
                && e["page_index"] == 2
                && e["page_count"] == 11
        });
    }
    master.send("next");
    for s in &mut singers {
        s.wait("page 3", |e| e["event"] == "show" && e["page_index"] == 3 && e["page_count"] == 11);
    }

    // The session ends: every singer clears the score, by its id.
    master.send("end");
    for s in &mut singers {
        s.wait("cleared", |e| {
            e["event"] == "stream" && e["song_id"] == song.as_str() && e["state"] == "cleared"
        });
        // The library no longer has it: the page shown has no page count any more.
        s.wait("the song gone from the library", |e| {
            e["event"] == "show" && e["song_id"] == song.as_str() && e["page_count"].is_null()
        });
    }
    for s in singers {
        assert!(s.quit().success());
    }
    assert!(master.quit().success());
    let mut found = Vec::new();
    for i in 0..8 {
        copies(&root.0.join(format!("singer-{i}")), &bytes, started, &mut found);
    }
    copies(&std::env::temp_dir(), &bytes, started, &mut found);
    assert!(found.is_empty(), "copies of the streamed score on disk: {found:?}");
}

/// Beyond V1: two devices, one book. The second device has no copy of the score; it gets it
/// from the first, into memory, and shows its half of each spread from it.
#[test]
fn a_solo_partner_without_the_score_gets_it_from_the_other_device() {
    let root = TempDir::new("streaming-solo");
    let empty = root.0.join("no-scores");
    std::fs::create_dir_all(&empty).expect("an empty library");
    let file = demo_score("lanterns-on-the-water.pdf");
    let start = |name: &str, library: &Path, args: &[&str]| {
        let mut command = support::maestral();
        command.arg("--headless").arg(library).args(["--device-id", name, "--state-dir"]);
        command.arg(root.0.join(name)).args(args);
        let mut app = App::spawn(command);
        app.name = name.into();
        app
    };
    let mut a = start("left", &support::demo_library(), &["--solo-offer"]);
    let ready = a.wait("ready", |e| e["event"] == "ready");
    let offer = ready["pair_code"].as_str().expect("an offer").to_owned();
    let mut b = start("right", &empty, &["--solo-answer", &offer]);
    let ready = b.wait("ready", |e| e["event"] == "ready");
    a.send(ready["pair_code"].as_str().expect("an answer"));
    for d in [&mut a, &mut b] {
        d.wait("paired", |e| e["event"] == "phase" && e["phase"] == "SOLO_PAIRED_CONNECTED");
    }
    a.send(&format!("song {}", file.display()));
    let shown = a.wait("the song", |e| e["event"] == "show" && e["song_id"].is_string());
    let song = shown["song_id"].as_str().expect("an id").to_owned();
    b.wait("ready", |e| {
        e["event"] == "stream" && e["song_id"] == song.as_str() && e["state"] == "ready"
    });
    let half = b.seen_or_wait("its half, drawn from the streamed score", |e| {
        e["event"] == "show" && e["song_id"] == song.as_str() && e["page_count"] == 11
    });
    assert!(half["page_index"].as_u64().is_some_and(|p| p <= 1), "{half}");
    a.send("next");
    b.wait("the next spread", |e| {
        e["event"] == "show"
            && e["page_index"].as_u64().is_some_and(|p| p / 2 == 1)
            && e["page_count"] == 11
    });
    // Unpaired, it keeps nothing streamed.
    b.send("unpair");
    b.wait("cleared", |e| {
        e["event"] == "stream" && e["song_id"] == song.as_str() && e["state"] == "cleared"
    });
    assert!(b.quit().success());
    assert!(a.quit().success());
}

/// Beyond V1 (docs/behaviour.md §8.4): a conductor with a set list in use streams its next piece
/// ahead to singers that lack it, while the current one is sung. The singer holds it before the
/// conductor moves on, stays on the piece sung now meanwhile, and when the conductor moves on it
/// shows the first page drawn from the copy it already holds: nothing is received after the move.
#[test]
fn a_singer_lacking_the_next_piece_of_the_set_list_holds_it_before_the_conductor_moves_on() {
    let root = TempDir::new("streaming-next");
    let empty = root.0.join("no-scores");
    std::fs::create_dir_all(&empty).expect("an empty library");
    let (mut master, code) = support::restart::master(&root.0.join("master"));
    master.send("setlist new Concert");
    let first = support::restart::show_song(&mut master, "lanterns-on-the-water.pdf");
    master.send("setlist add");
    let second = support::restart::show_song(&mut master, "harbour-lights-jig.pdf");
    master.send("setlist add");
    master.send("piece prev");
    master.wait("the first piece", |e| {
        e["event"] == "show" && e["song_id"] == first.as_str() && e["page_index"] == 10
    });

    let mut s = singer("singer", &empty, &root.0.join("singer"), &code);
    let ready = |song: &str| {
        let song = song.to_owned();
        move |e: &serde_json::Value| {
            e["event"] == "stream" && e["song_id"] == song.as_str() && e["state"] == "ready"
        }
    };
    s.wait("the piece sung now", ready(&first));
    s.wait("the next piece, ahead", ready(&second));
    // Still on the conductor's piece and page: holding the next piece moves nothing.
    let last_show = s.seen.iter().rev().find(|e| e["event"] == "show").cloned();
    let last_show = last_show.expect("a page shown");
    assert_eq!(
        (&last_show["song_id"], &last_show["page_index"]),
        (&first.as_str().into(), &10.into())
    );

    let seen_before = s.seen.len();
    master.send("piece next");
    s.wait("the next piece's first page, drawn from the copy held", |e| {
        e["event"] == "show"
            && e["song_id"] == second.as_str()
            && e["page_index"] == 0
            && e["page_count"].is_u64()
    });
    let received_after = s.seen[seen_before..]
        .iter()
        .filter(|e| e["event"] == "stream" && e["state"] == "receiving")
        .count();
    assert_eq!(received_after, 0, "nothing streamed after the move: {:?}", &s.seen[seen_before..]);
    assert!(s.quit().success());
    assert!(master.quit().success());
}
