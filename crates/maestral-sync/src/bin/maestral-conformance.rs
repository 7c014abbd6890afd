//! The conformance driver of `docs/conformance.md`: JSON lines in, one JSON line out per input.

use std::io::{BufRead, Write};

use maestral_protocol::{
    DeviceId, FollowMode, Parity, RejectReason, SessionId, SessionToken, SongId,
};
use maestral_sync::{Engine, EngineConfig, LinkSignal, LocalAction, Output, Role, StateView};
use rand::SeedableRng;
use serde_json::{Map, Value, json};

/// `tick` fires every timer due by `t` in order; this bounds a pathological jump.
const MAX_TIMERS_PER_TICK: usize = 100_000;

fn main() {
    let (role, device_id) = match parse_args(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("maestral-conformance: {e}");
            eprintln!("usage: maestral-conformance --role solo|master|follower --device-id ID");
            std::process::exit(2);
        }
    };
    // docs/conformance.md: randomness comes from the OS unless an input fixes it.
    #[allow(clippy::disallowed_methods)]
    let rng = rand::rngs::StdRng::from_os_rng();
    let mut engine = Engine::new(EngineConfig::new(device_id), role, Box::new(rng));
    drain(&mut engine);

    let mut stdin = std::io::stdin().lock();
    let mut stdout = std::io::stdout().lock();
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match stdin.read_until(b'\n', &mut buf) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        // Every input line gets exactly one output line, even an empty or non-UTF-8 one.
        let out = match std::str::from_utf8(&buf) {
            Err(_) => json!({ "error": "input line is not UTF-8" }),
            Ok(line) if line.trim().is_empty() => json!({ "error": "empty input line" }),
            Ok(line) => match step(&mut engine, line.trim_end_matches(['\r', '\n'])) {
                Ok(sent) => report(&engine, sent),
                Err(e) => json!({ "error": e }),
            },
        };
        if writeln!(stdout, "{out}").and_then(|()| stdout.flush()).is_err() {
            break;
        }
    }
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<(Role, DeviceId), String> {
    let (mut role, mut id) = (None, None);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--role" => {
                role = Some(match args.next().as_deref() {
                    Some("solo") => Role::Solo,
                    Some("master") => Role::Master,
                    Some("follower") => Role::Follower,
                    other => return Err(format!("unknown role {other:?}")),
                })
            }
            "--device-id" => id = args.next().map(DeviceId::new),
            "--help" | "-h" => return Err("help".into()),
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    Ok((role.ok_or("--role is required")?, id.ok_or("--device-id is required")?))
}

/// Drains the engine's outputs; returns the messages it sent, in order.
fn drain(engine: &mut Engine) -> Vec<Value> {
    let mut sent = Vec::new();
    while let Some(o) = engine.poll_output() {
        if let Output::Transmit { to, data, .. } = o {
            let msg =
                serde_json::from_str::<Value>(&data).unwrap_or(Value::String(data.to_string()));
            sent.push(json!({ "to": to.as_str(), "msg": msg }));
        }
    }
    sent
}

fn step(engine: &mut Engine, line: &str) -> Result<Vec<Value>, String> {
    let v: Value = serde_json::from_str(line).map_err(|e| format!("input is not JSON: {e}"))?;
    let obj = v.as_object().ok_or("input line must be a JSON object")?;
    let t = obj
        .get("t")
        .and_then(Value::as_u64)
        .ok_or("`t` (Unix ms, unsigned integer) is required")?;
    let what = str_field(obj, "do")?;
    match what {
        "link" => {
            let peer = DeviceId::new(str_field(obj, "peer")?);
            let signal = match str_field(obj, "state")? {
                "up" => LinkSignal::Up,
                "degraded" => LinkSignal::Degraded,
                "down" => LinkSignal::Down,
                other => return Err(format!("unknown link state `{other}` (up, degraded, down)")),
            };
            engine.handle_link(t, &peer, signal);
        }
        "recv" => {
            let from = DeviceId::new(str_field(obj, "from")?);
            let bytes = match (obj.get("msg"), obj.get("raw")) {
                (Some(m), None) => serde_json::to_vec(m).map_err(|e| e.to_string())?,
                (None, Some(Value::String(r))) => r.clone().into_bytes(),
                (None, Some(_)) => return Err("`raw` must be a string".into()),
                _ => return Err("`recv` needs exactly one of `msg` or `raw`".into()),
            };
            // A message the engine rejects is not a driver error: the state line shows it changed nothing.
            let _ = engine.handle_message(t, &from, &bytes);
        }
        "local" => {
            let action = obj
                .get("action")
                .and_then(Value::as_object)
                .ok_or("`action` object is required")?;
            let action = parse_action(action)?;
            engine.handle_local(t, action).map_err(|e| e.to_string())?;
        }
        "tick" => {
            let mut n = 0;
            while let Some(due) = engine.poll_timeout() {
                if due > t || n >= MAX_TIMERS_PER_TICK {
                    break;
                }
                engine.handle_timeout(due);
                n += 1;
            }
            engine.handle_timeout(t);
        }
        // Extensions: how a first join by the join code ended before any link opened.
        "join_refused" => {
            let reason = match str_field(obj, "reason")? {
                "invalid_token" => RejectReason::InvalidToken,
                "session_ended" => RejectReason::SessionEnded,
                other => return Err(format!("unknown reason `{other}`")),
            };
            engine.handle_join_refused(t, reason);
        }
        "join_failed" => {
            let for_good = obj.get("for_good").and_then(Value::as_bool).unwrap_or(false);
            engine.handle_join_failed(t, for_good);
        }
        other => {
            return Err(format!(
                "unknown `do`: `{other}` (link, recv, local, tick, join_refused, join_failed)"
            ));
        }
    }
    Ok(drain(engine))
}

fn str_field<'a>(obj: &'a Map<String, Value>, name: &str) -> Result<&'a str, String> {
    obj.get(name).and_then(Value::as_str).ok_or_else(|| format!("`{name}` (string) is required"))
}

fn opt_song(obj: &Map<String, Value>) -> Result<Option<SongId>, String> {
    match obj.get("song_id") {
        Some(Value::String(s)) => Ok(Some(SongId::new(s.clone()))),
        Some(Value::Null) => Ok(None),
        _ => Err("`song_id` (string or null) is required".into()),
    }
}

fn parse_action(a: &Map<String, Value>) -> Result<LocalAction, String> {
    Ok(match str_field(a, "kind")? {
        "set_song" => LocalAction::SetSong { song_id: opt_song(a)? },
        "set_page" => {
            let page = a.get("page").and_then(Value::as_u64).ok_or("`page` (u32) is required")?;
            let page = u32::try_from(page).map_err(|_| "`page` must fit in u32")?;
            LocalAction::SetPage { page }
        }
        "next_page" => LocalAction::NextPage,
        "prev_page" => LocalAction::PrevPage,
        "set_parity" => LocalAction::SetParity {
            parity: match str_field(a, "parity")? {
                "odd" => Parity::Odd,
                "even" => Parity::Even,
                other => return Err(format!("unknown parity `{other}` (odd, even)")),
            },
        },
        "start_session" => LocalAction::StartSession {
            session_id: opt_str(a, "session_id")?.map(SessionId::new),
            token: opt_str(a, "token")?.map(SessionToken::new),
        },
        "end_session" => LocalAction::EndSession,
        // Without `master` (an extension): a join by the join code, which does not name the
        // Master; the first link that opens (`link … up`) does.
        "join" => {
            let session_id = SessionId::new(str_field(a, "session_id")?);
            let token = SessionToken::new(str_field(a, "token")?);
            match opt_str(a, "master")? {
                Some(master) => {
                    LocalAction::Join { master: DeviceId::new(master), session_id, token }
                }
                None => LocalAction::JoinByCode { session_id, token },
            }
        }
        "leave" => LocalAction::Leave,
        "unpair" => LocalAction::Unpair,
        "set_follow_mode" => LocalAction::SetFollowMode {
            mode: match str_field(a, "mode")? {
                "follow" => FollowMode::Follow,
                "free" => FollowMode::Free,
                other => return Err(format!("unknown mode `{other}` (follow, free)")),
            },
        },
        "offer_stream" => LocalAction::OfferStream {
            song_id: SongId::new(str_field(a, "song_id")?),
            size_bytes: a
                .get("size_bytes")
                .and_then(Value::as_u64)
                .ok_or("`size_bytes` (u64) is required")?,
            title: opt_str(a, "title")?,
        },
        "offer_next" => LocalAction::OfferNext {
            next: match opt_str(a, "song_id")? {
                None => None,
                Some(song) => Some(maestral_sync::Offered {
                    song_id: SongId::new(song),
                    size_bytes: a
                        .get("size_bytes")
                        .and_then(Value::as_u64)
                        .ok_or("`size_bytes` (u64) is required with a `song_id`")?,
                    title: opt_str(a, "title")?,
                }),
            },
        },
        other => return Err(format!("unknown action kind `{other}`")),
    })
}

fn opt_str(a: &Map<String, Value>, name: &str) -> Result<Option<String>, String> {
    match a.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(format!("`{name}` must be a string")),
    }
}

fn report(engine: &Engine, sent: Vec<Value>) -> Value {
    let links: Map<String, Value> =
        engine.links().map(|(p, s)| (p.to_string(), Value::from(s.as_str()))).collect();
    let state = match engine.state() {
        StateView::Solo(s) => serde_json::to_value(s),
        StateView::Master(s) => serde_json::to_value(s),
        StateView::Follower(s) => serde_json::to_value(s),
    }
    .unwrap_or(Value::Null);
    let view = engine.view();
    json!({
        "phase": engine.phase().as_str(),
        "links": links,
        "state": state,
        "view": { "song_id": view.song_id, "page_index": view.page_index },
        "sent": sent,
    })
}
