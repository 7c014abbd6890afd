//! Playing together headless, with the role commands (`start`, `join CODE`, `alone`): two
//! `maestral --headless` processes over real WebRTC on loopback. One starts a session at run
//! time and prints its code; the other joins with it, goes free and follows again; the Master
//! prints the `roster` event of docs/headless.md (the Follower's name, follow mode, what it shows);
//! the Follower leaves by playing alone, and the roster empties. Every wait is bounded; nothing
//! asserts on time.

mod support;

use serde_json::Value;
use support::{App, TempDir, demo_score};

fn peer(name: &str, state: &TempDir) -> App {
    let mut command = support::maestral();
    command
        .arg("--headless")
        .arg(demo_score("lanterns-on-the-water.pdf"))
        .args(["--device-id", name, "--device-name", &format!("{name}'s tablet"), "--state-dir"])
        .arg(&state.0);
    let mut app = App::spawn(command);
    app.name = name.into();
    app.wait("ready", |e| e["event"] == "ready");
    app
}

fn member<'a>(roster: &'a Value, name: &str) -> Option<&'a Value> {
    roster["members"].as_array()?.iter().find(|m| m["name"] == name)
}

#[test]
fn a_session_started_and_joined_at_run_time_shows_its_roster_and_empties_when_the_singer_leaves() {
    let dir = (TempDir::new("roles-m"), TempDir::new("roles-f"));
    let mut master = peer("anna", &dir.0);
    let mut singer = peer("ben", &dir.1);

    master.send("page 3");
    master.wait("page 3", |e| e["event"] == "show" && e["page_index"] == 3);
    master.send("start");
    let ready = master.wait("the new role's ready", |e| {
        e["event"] == "ready" && e["mode"] == "choir_master" && e["join_code"].is_string()
    });
    let code = ready["join_code"].as_str().unwrap_or_default().to_owned();

    singer.send(&format!("join {code}"));
    singer
        .wait("following", |e| e["event"] == "phase" && e["phase"] == "FOLLOWER_CONNECTED_FOLLOW");
    singer.wait("the Master's page", |e| e["event"] == "show" && e["page_index"] == 3);
    master.wait("the singer in the roster, on the page", |e| {
        e["event"] == "roster"
            && member(e, "ben's tablet").is_some_and(|m| {
                m["follow_mode"] == "follow"
                    && m["shows"]["page_index"] == 3
                    && m["link"] == "CONNECTED"
                    && m["lagging"] == false
            })
    });

    // Free: the singer browses; the roster says so and what it shows.
    singer.send("free");
    singer.wait("free", |e| e["event"] == "phase" && e["phase"] == "FOLLOWER_CONNECTED_FREE");
    singer.send("next");
    singer.wait("its own page", |e| e["event"] == "show" && e["page_index"] == 4);
    master.wait("the singer free on p. 5", |e| {
        e["event"] == "roster"
            && member(e, "ben's tablet")
                .is_some_and(|m| m["follow_mode"] == "free" && m["shows"]["page_index"] == 4)
    });
    singer.send("follow");
    singer.wait("back on the Master's page", |e| e["event"] == "show" && e["page_index"] == 3);

    // Leaving by playing alone: the roster empties; the singer keeps its page.
    singer.send("alone");
    singer.wait("playing alone", |e| e["event"] == "ready" && e["mode"] == "solo");
    master.wait("an empty roster", |e| {
        e["event"] == "roster" && e["members"].as_array().is_some_and(Vec::is_empty)
    });
    let shows: Vec<&Value> = singer.seen.iter().filter(|e| e["event"] == "show").collect();
    assert_eq!(shows.last().map(|e| &e["page_index"]), Some(&Value::from(3)), "the page stays");

    // A garbage code: one message, still alone.
    singer.send("join not-a-code");
    let error = singer.wait("the error", |e| e["event"] == "error");
    assert!(error["message"].as_str().is_some_and(|m| m.contains("join code")), "{error}");

    assert!(singer.quit().success());
    assert!(master.quit().success());
}
