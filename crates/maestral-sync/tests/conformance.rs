//! The conformance driver (`docs/conformance.md`), run as the black box outside suites see.

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::{Value, json};

/// Runs the driver with these input lines; returns its output lines, parsed.
fn drive(role: &str, id: &str, lines: &[String]) -> Vec<Value> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_maestral-conformance"))
        .args(["--role", role, "--device-id", id])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the driver starts");
    {
        let mut stdin = child.stdin.take().expect("stdin");
        for l in lines {
            writeln!(stdin, "{l}").expect("write a line");
        }
    }
    let out = child.wait_with_output().expect("the driver exits");
    assert!(
        out.status.success(),
        "exit 0 at end of input: {:?} {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("UTF-8 output");
    let parsed: Vec<Value> =
        text.lines().map(|l| serde_json::from_str(l).expect("every output line is JSON")).collect();
    assert_eq!(parsed.len(), lines.len(), "exactly one output line per input line");
    parsed
}

fn l(v: Value) -> String {
    v.to_string()
}

fn env(from: &str, session: &str, ty: &str, ts: u64, payload: Value) -> Value {
    json!({"v": 1, "session_id": session, "sender_id": from, "type": ty, "ts": ts, "payload": payload})
}

fn assert_shape(o: &Value) {
    assert!(o["phase"].is_string(), "{o}");
    assert!(o["links"].is_object(), "{o}");
    assert!(o["state"].is_object(), "{o}");
    assert!(o["view"]["page_index"].is_u64(), "{o}");
    assert!(o["view"].get("song_id").is_some(), "{o}");
    assert!(o["sent"].is_array(), "{o}");
}

#[test]
fn a_line_that_is_not_utf8_is_answered_and_the_driver_goes_on() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_maestral-conformance"))
        .args(["--role", "solo", "--device-id", "A"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("the driver starts");
    {
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(b"\xff\xfe{\n").expect("write");
        stdin.write_all(b"{\"do\":\"tick\",\"t\":5}\n").expect("write");
    }
    let out = child.wait_with_output().expect("exits");
    assert!(out.status.success());
    let lines: Vec<Value> = String::from_utf8(out.stdout)
        .expect("UTF-8 output")
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON"))
        .collect();
    assert_eq!(lines.len(), 2);
    assert!(lines[0]["error"].is_string());
    assert_eq!(lines[1]["phase"], "SOLO_LOCAL_ONLY");
}

#[test]
fn master_lines_follow_the_document() {
    let t = 1_735_689_600_000u64;
    let out = drive(
        "master",
        "M",
        &[
            l(
                json!({"do": "local", "t": t, "action": {"kind": "start_session", "session_id": "S", "token": "tok"}}),
            ),
            l(json!({"do": "link", "t": t + 1, "peer": "F", "state": "up"})),
            l(
                json!({"do": "recv", "t": t + 2, "from": "F", "msg": env("F", "S", "JOIN_REQUEST", t + 2, json!({"session_token": "tok", "follow_mode": "follow", "song_epoch": 0}))}),
            ),
            l(json!({"do": "local", "t": t + 3, "action": {"kind": "set_song", "song_id": "abc"}})),
            l(json!({"do": "local", "t": t + 4, "action": {"kind": "next_page"}})),
            l(json!({"do": "recv", "t": t + 5, "from": "F", "raw": "{{{ not json"})),
            l(json!({"do": "local", "t": t + 6, "action": {"kind": "end_session"}})),
        ],
    );
    for o in &out {
        assert_shape(o);
    }
    assert_eq!(out[0]["phase"], "MASTER_SESSION_ACTIVE");
    assert_eq!(out[0]["state"]["session_id"], "S");
    assert_eq!(out[0]["state"]["session_token"], "tok");
    assert_eq!(out[1]["links"]["F"], "CONNECTED");
    assert_eq!(out[1]["sent"][0]["msg"]["type"], "HELLO");
    assert_eq!(out[2]["sent"][0]["to"], "F");
    assert_eq!(out[2]["sent"][0]["msg"]["type"], "JOIN_ACCEPT");
    assert_eq!(out[2]["sent"][0]["msg"]["payload"]["snapshot"]["session_id"], "S");
    assert!(out[2]["sent"][0]["msg"]["payload"]["snapshot"].get("session_token").is_none());
    assert_eq!(out[3]["state"]["song_epoch"], 1);
    assert_eq!(out[3]["sent"][0]["msg"]["payload"], json!({"song_id": "abc", "song_epoch": 1}));
    assert_eq!(out[4]["view"], json!({"song_id": "abc", "page_index": 1}));
    assert_eq!(
        out[4]["sent"][0]["msg"]["payload"],
        json!({"song_epoch": 1, "page_revision": 1, "page_index": 1})
    );
    assert_eq!(out[4]["sent"][0]["msg"]["ts"], t + 4, "ts is the input's t");
    // Garbage is not a driver error: the usual line, state unchanged, nothing sent.
    assert_eq!(out[5]["state"], out[4]["state"]);
    assert_eq!(out[5]["sent"], json!([]));
    assert_eq!(out[6]["phase"], "MASTER_SESSION_ENDED");
    assert_eq!(out[6]["sent"][0]["msg"]["type"], "SESSION_END");
    assert_eq!(out[6]["links"]["F"], "ENDED");
}

#[test]
fn follower_lines_follow_the_document_and_tick_fires_timers() {
    let t = 1_735_689_600_000u64;
    let snap = json!({"snapshot": {"session_id": "S", "song_id": "x", "song_epoch": 2, "page_index": 3, "page_revision": 5}});
    let out = drive(
        "follower",
        "F",
        &[
            l(
                json!({"do": "local", "t": t, "action": {"kind": "join", "master": "M", "session_id": "S", "token": "tok"}}),
            ),
            l(json!({"do": "link", "t": t + 1, "peer": "M", "state": "up"})),
            l(
                json!({"do": "recv", "t": t + 2, "from": "M", "msg": env("M", "S", "JOIN_ACCEPT", t + 2, snap)}),
            ),
            l(
                json!({"do": "local", "t": t + 3, "action": {"kind": "set_follow_mode", "mode": "free"}}),
            ),
            l(json!({"do": "link", "t": t + 4, "peer": "M", "state": "down"})),
            l(json!({"do": "tick", "t": t + 2_000})),
        ],
    );
    for o in &out {
        assert_shape(o);
    }
    assert_eq!(out[0]["phase"], "FOLLOWER_JOINING");
    assert_eq!(out[0]["links"]["M"], "CONNECTING");
    let sent1: Vec<&str> = out[1]["sent"]
        .as_array()
        .expect("array")
        .iter()
        .map(|s| s["msg"]["type"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(sent1, ["HELLO", "JOIN_REQUEST"]);
    assert_eq!(out[1]["sent"][1]["msg"]["session_id"], "S");
    assert_eq!(out[2]["phase"], "FOLLOWER_CONNECTED_FOLLOW");
    assert_eq!(out[2]["view"], json!({"song_id": "x", "page_index": 3}));
    assert_eq!(
        out[2]["state"],
        json!({"session_id": "S", "follow_mode": "follow", "song_id": "x", "song_epoch": 2, "page_index": 3, "last_token": "tok", "page_revision": 5})
    );
    assert_eq!(out[3]["phase"], "FOLLOWER_CONNECTED_FREE");
    assert_eq!(out[3]["sent"][0]["msg"]["payload"], json!({"mode": "free"}));
    assert_eq!(out[4]["phase"], "FOLLOWER_DISCONNECTED_LOCAL");
    assert_eq!(out[4]["links"]["M"], "RECONNECTING");
    assert_eq!(out[5]["phase"], "FOLLOWER_REJOINING", "the retry timer fired during the tick");
}

#[test]
fn a_join_by_code_is_driven_through_joining_refusal_and_retry() {
    let t = 1_735_689_600_000u64;
    let join = json!({"do": "local", "t": t, "action": {"kind": "join", "session_id": "S", "token": "tok"}});
    let out = drive(
        "follower",
        "F",
        &[
            l(join.clone()),
            l(json!({"do": "join_failed", "t": t + 10})),
            l(json!({"do": "tick", "t": t + 1_000})),
            l(json!({"do": "link", "t": t + 1_010, "peer": "M", "state": "up"})),
            l(json!({"do": "join_refused", "t": t + 1_020, "reason": "invalid_token"})),
            l(join),
            l(json!({"do": "join_failed", "t": t + 1_030, "for_good": true})),
        ],
    );
    for o in &out {
        assert_shape(o);
    }
    assert_eq!(out[0]["phase"], "FOLLOWER_JOINING");
    assert_eq!(out[1]["phase"], "FOLLOWER_JOINING", "still joining, waiting to try again");
    assert_eq!(out[2]["phase"], "FOLLOWER_JOINING", "the retry timer fired");
    let sent: Vec<&str> = out[3]["sent"]
        .as_array()
        .expect("array")
        .iter()
        .map(|s| s["msg"]["type"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(sent, ["HELLO", "JOIN_REQUEST"], "the first link names the Master");
    assert_eq!(out[4]["phase"], "FOLLOWER_IDLE_LOCAL", "refused by the listener");
    assert_eq!(out[4]["state"]["last_token"], Value::Null);
    assert_eq!(out[5]["phase"], "FOLLOWER_JOINING");
    assert_eq!(out[6]["phase"], "FOLLOWER_IDLE_LOCAL", "a code that cannot work");
}

#[test]
fn solo_lines_show_the_spread_and_own_half() {
    let t = 1_735_689_600_000u64;
    // A fresh partner's state: its defaults, stamped at time 0.
    let b_state = json!({
        "song_id": null, "page_index": 0,
        "layout": {"leader_device_id": "B", "parity": "odd"},
        "last_page_change": {"sender_id": "B", "ts": 0},
        "last_layout_change": {"sender_id": "B", "ts": 0},
    });
    let out = drive(
        "solo",
        "A",
        &[
            l(json!({"do": "local", "t": t, "action": {"kind": "set_page", "page": 3}})),
            l(json!({"do": "link", "t": t + 1, "peer": "B", "state": "up"})),
            l(
                json!({"do": "recv", "t": t + 1, "from": "B", "msg": env("B", "", "STATE_SNAPSHOT", 0, b_state)}),
            ),
            l(
                json!({"do": "local", "t": t + 2, "action": {"kind": "set_parity", "parity": "even"}}),
            ),
            l(json!({"do": "local", "t": t + 3, "action": {"kind": "next_page"}})),
        ],
    );
    for o in &out {
        assert_shape(o);
    }
    assert_eq!(out[0]["phase"], "SOLO_LOCAL_ONLY");
    assert_eq!(out[0]["view"]["page_index"], 3, "alone: the page itself");
    assert_eq!(out[1]["phase"], "SOLO_PAIRED_CONNECTED");
    let types: Vec<&str> = out[1]["sent"]
        .as_array()
        .expect("array")
        .iter()
        .map(|s| s["msg"]["type"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(types, ["HELLO", "STATE_SNAPSHOT"]);
    assert_eq!(out[1]["state"]["page_index"], 3, "linked, not merged yet: still alone on 3");
    assert_eq!(out[1]["view"]["page_index"], 3);
    assert_eq!(out[2]["state"]["page_index"], 2, "merged: the spread's first index");
    assert_eq!(out[2]["view"]["page_index"], 3, "A turned last: it keeps its page");
    assert_eq!(out[3]["state"]["layout"], json!({"leader_device_id": "A", "parity": "even"}));
    assert_eq!(out[3]["view"]["page_index"], 3, "leader with even shows 2k+1");
    assert_eq!(out[4]["state"]["page_index"], 4);
    assert_eq!(out[4]["view"]["page_index"], 5);
    assert_eq!(out[4]["state"]["last_page_change"], json!({"sender_id": "A", "ts": t + 3}));
}

#[test]
fn bad_lines_are_answered_with_an_error_and_the_driver_goes_on() {
    let out = drive(
        "master",
        "M",
        &[
            "this is not json".into(),
            "[1,2]".into(),
            l(json!({"do": "fly", "t": 1})),
            l(json!({"do": "tick"})),
            l(json!({"do": "link", "t": 1, "peer": "F", "state": "sideways"})),
            l(
                json!({"do": "local", "t": 1, "action": {"kind": "join", "master": "M", "session_id": "S", "token": "t"}}),
            ),
            l(json!({"do": "recv", "t": 1, "from": "F"})),
            String::new(),
            l(json!({"do": "local", "t": 2, "action": {"kind": "set_page", "page": 4}})),
        ],
    );
    for o in &out[..8] {
        assert!(o["error"].is_string(), "{o}");
    }
    assert_eq!(out[8]["view"]["page_index"], 4, "still working after the errors");
}
