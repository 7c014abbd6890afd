//! A hostile device on the LAN against real headless processes (issue 16): a token holder on
//! its own WebRTC link claiming epochs, naming a singer's device id and sending heavy messages;
//! a device answering `403` for the Master's address while it is away; a Solo partner stamping
//! a change far in the future; a library holding a huge file and a damaged one. Each checks that
//! the honest devices keep the Master's song and page and that the attacker gets a clear
//! refusal. Every wait is bounded; nothing asserts on time.

#[path = "../crates/maestral-net/tests/common/rogue.rs"]
mod rogue;
mod support;

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::time::Duration;

use maestral_net::joincode::JoinCode;
use maestral_net::rtc::{Link, LinkEvent, RtcConfig, wait_closed, wait_open};
use maestral_net::signaling::{JoinError, RejectReason};
use maestral_protocol::{
    DeviceId, Envelope, FollowMode, JoinRequest, Message, SessionId, SoloSetPage, SongEpoch, SongId,
};
use support::restart::{self, is_phase, is_show, show_song};
use support::{App, TempDir, demo_score};

const LOCAL: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const WAIT: Duration = Duration::from_secs(60);

fn app(name: &str, state: &Path, args: &[&str]) -> App {
    let mut command = support::maestral();
    command.arg("--headless").args(["--device-id", name, "--device-name", name, "--state-dir"]);
    command.arg(state).args(args);
    let mut app = App::spawn(command);
    app.name = name.into();
    app
}

/// The Master, keeping its state under `root`, and its join code.
fn master(root: &Path) -> (App, String) {
    restart::master(&root.join("conductor"))
}

/// A singer that joined with `code` and follows.
fn singer(root: &Path, name: &str, code: &str) -> App {
    let mut s = restart::spawn(name, &root.join(name), &["--join", code]);
    s.wait("following", |e| is_phase(e, "FOLLOWER_CONNECTED_FOLLOW"));
    s
}

/// A token holder's link to the Master under `id`: `Err` if the Master refused it.
async fn rogue(
    code: &JoinCode,
    id: &str,
) -> Result<(Link, tokio::sync::mpsc::UnboundedReceiver<LinkEvent>), JoinError> {
    rogue::join(code, id, None, WAIT).await
}

#[test]
fn a_token_holder_cannot_move_kick_or_flood_the_choir() {
    let root = TempDir::new("hostile-choir");
    let (mut m, code_text) = master(&root.0);
    let code: JoinCode = code_text.parse().expect("our join code");
    let mut alto = singer(&root.0, "alto", &code_text);
    let mut tenor = singer(&root.0, "tenor", &code_text);
    let song = show_song(&mut m, "lanterns-on-the-water.pdf");
    m.send("page 3");
    alto.wait("page 3", |e| is_show(e, &song, 3));
    tenor.wait("page 3", |e| is_show(e, &song, 3));
    tenor.send("free");
    tenor.send("page 7");
    tenor.wait("its own page", |e| is_show(e, &song, 7));

    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        // 1. Epoch claims: the last epoch, then one past the current in a loop.
        let (link, mut events) = rogue(&code, "intruder").await.expect("a valid token joins");
        let session = SessionId::new(code.session_id.clone());
        for epoch in [u64::MAX, 2, 3, 4, 5, 6, 7, 8, 9, 10] {
            let claim = Message::JoinRequest(JoinRequest {
                session_token: code.token.clone(),
                follow_mode: FollowMode::Follow,
                song_epoch: SongEpoch(epoch),
            });
            let env = Envelope::new(session.clone(), DeviceId::new("intruder"), 1, claim);
            link.send_text(&env.encode()).await.expect("sent");
        }
        // 2. Heavy messages: far over the byte budget, well under the message limit.
        let heavy = "x".repeat(60 * 1024);
        for _ in 0..40 {
            if link.send_text(&heavy).await.is_err() {
                break;
            }
        }
        assert!(wait_closed(&mut events, WAIT).await, "the Master cut the heavy sender off");
        link.close().await;
        // Cut off, it cannot come straight back and flood again.
        match rogue(&code, "intruder").await {
            Err(JoinError::Rejected(RejectReason::Unavailable)) => {}
            Err(other) => panic!("refused, but not as busy: {other:?}"),
            Ok(_) => panic!("a flooder back at once"),
        }
        // 3. A join naming a connected singer's id, from another device: refused.
        match rogue(&code, "alto").await {
            Err(JoinError::Refused(RejectReason::DeviceInUse, _)) => {}
            Err(other) => panic!("refused, but not as in use: {other:?}"),
            Ok((link, _)) => {
                link.close().await;
                panic!("a singer's link was taken over");
            }
        }
    });
    m.wait("the flood report", |e| {
        e["event"] == "error" && e["message"].as_str().is_some_and(|t| t.contains("intruder"))
    });
    // Nobody moved: the Master's next turn reaches the singer that follows, the free one stays.
    m.send("next");
    alto.wait("page 4", |e| is_show(e, &song, 4));
    assert_eq!(show_song(&mut m, "lanterns-on-the-water.pdf"), song, "the song again");
    alto.wait("page 0 of the new epoch", |e| is_show(e, &song, 0));
    tenor.wait("free singers take song changes", |e| is_show(e, &song, 0));
    for s in [&alto, &tenor] {
        let dropped = s.seen_at().any(|(e, _)| is_phase(e, "FOLLOWER_DISCONNECTED_LOCAL"));
        assert!(!dropped, "{} never lost its link", s.name);
    }
    assert!(alto.quit().success());
    assert!(tenor.quit().success());
    assert!(m.quit().success());
}

#[test]
fn links_that_never_join_are_closed_and_the_end_closes_every_link() {
    let root = TempDir::new("hostile-silent");
    let (mut m, code_text) = master(&root.0);
    let code: JoinCode = code_text.parse().expect("our join code");
    let song = show_song(&mut m, "lanterns-on-the-water.pdf");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    // Token holders' links that open and never send `JOIN_REQUEST`.
    let mut silent = Vec::new();
    for i in 0..20 {
        silent.push(rt.block_on(rogue(&code, &format!("silent-{i}"))).expect("a link opens"));
    }
    // An honest singer joins beside them and follows.
    let mut alto = singer(&root.0, "alto", &code_text);
    m.send("page 2");
    alto.wait("page 2", |e| is_show(e, &song, 2));
    // The Master closes every silent link by itself.
    let opened = std::time::Instant::now();
    for (link, events) in &mut silent {
        assert!(rt.block_on(wait_closed(events, WAIT)), "the Master closed a silent link");
        rt.block_on(link.close());
    }
    eprintln!("the silent links were closed {:?} after the last opened", opened.elapsed());
    // At the end, a link that has not joined (yet) goes with the members' links, and the code
    // opens no other.
    let (late, mut late_events) = rt.block_on(rogue(&code, "late")).expect("a link opens");
    m.send("end");
    alto.wait("the end", |e| is_phase(e, "FOLLOWER_IDLE_LOCAL"));
    assert!(rt.block_on(wait_closed(&mut late_events, WAIT)), "closed at the end");
    rt.block_on(late.close());
    match rt.block_on(rogue(&code, "after")) {
        Err(JoinError::Refused(RejectReason::SessionEnded, _)) => {}
        Err(other) => panic!("refused, but not as ended: {other:?}"),
        Ok(_) => panic!("a link opened after the end"),
    }
    let dropped = alto.seen_at().any(|(e, _)| is_phase(e, "FOLLOWER_DISCONNECTED_LOCAL"));
    assert!(!dropped, "the singer never lost its link before the end");
    assert!(alto.quit().success());
    assert!(m.quit().success());
}

#[test]
fn a_dropped_singers_place_stays_its_own_across_restarts_of_both() {
    let root = TempDir::new("hostile-seat");
    let (mut m, code_text) = master(&root.0);
    let code: JoinCode = code_text.parse().expect("our join code");
    let alto = singer(&root.0, "alto", &code_text);
    let song = show_song(&mut m, "lanterns-on-the-water.pdf");
    restart::kept(&root.0.join("alto"), "follower-session.json", |v| v["cert_pem"].is_string());
    restart::kept(&root.0.join("conductor"), "master-session.json", |v| {
        v["bound"]["alto"].is_string()
    });
    // The singer's device dies; a token holder asks for its place, before and after the
    // Master restarts.
    restart::kill(alto);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let take_place = |round: &str| match rt.block_on(rogue(&code, "alto")) {
        Err(JoinError::Refused(RejectReason::DeviceInUse, _)) => {}
        Err(other) => panic!("{round}: refused, but not as in use: {other:?}"),
        Ok((link, _)) => {
            rt.block_on(link.close());
            panic!("{round}: the singer's place was taken");
        }
    };
    take_place("the singer away");
    restart::kill(m);
    let mut m = restart::spawn("conductor", &root.0.join("conductor"), &[]);
    m.wait("resumed", |e| e["event"] == "ready");
    take_place("the Master restarted");
    // The real singer comes back from its state directory, with its certificate, and follows.
    let mut alto = restart::spawn("alto", &root.0.join("alto"), &[]);
    alto.wait("back in", |e| is_phase(e, "FOLLOWER_CONNECTED_FOLLOW"));
    m.send("page 5");
    alto.wait("page 5", |e| is_show(e, &song, 5));
    assert!(alto.quit().success());
    assert!(m.quit().success());
}

#[test]
fn a_stored_token_no_master_would_make_is_never_used() {
    let root = TempDir::new("hostile-token");
    let (m, code_text) = master(&root.0);
    let code: JoinCode = code_text.parse().expect("our join code");
    let alto = singer(&root.0, "alto", &code_text);
    let token = code.token.expose().to_owned();
    for (who, name) in [("conductor", "master-session.json"), ("alto", "follower-session.json")] {
        restart::kept(&root.0.join(who), name, |v| v.to_string().contains(&token));
    }
    restart::kill(alto);
    restart::kill(m);
    // Both files now hold a token of four characters: damaged, or written by someone else.
    let weaken = |who: &str, name: &str| {
        let path = root.0.join(who).join(name);
        let text = std::fs::read_to_string(&path).expect("kept");
        std::fs::write(&path, text.replace(&token, "weak")).expect("written");
    };
    weaken("conductor", "master-session.json");
    weaken("alto", "follower-session.json");
    let told = |app: &mut App, name: &str| {
        let e = app.wait("the message", |e| e["event"] == "error");
        let text = e["message"].as_str().unwrap_or_default().to_owned();
        assert!(text.contains(name) && text.contains("token"), "{text}");
        assert!(
            root.0
                .join(if name.starts_with("master") { "conductor" } else { "alto" })
                .join(format!("{name}.broken"))
                .is_file()
        );
    };
    // The Master starts a new session instead, with a token of its own.
    let mut m = restart::spawn("conductor", &root.0.join("conductor"), &[]);
    told(&mut m, "master-session.json");
    let ready = m.seen_or_wait("ready", |e| e["event"] == "ready");
    let fresh: JoinCode = ready["join_code"].as_str().expect("a new code").parse().expect("code");
    assert_ne!(fresh.session_id, code.session_id, "a new session");
    assert_ne!(fresh.token.expose(), "weak");
    // The singer plays alone rather than rejoin with it.
    let mut alto = restart::spawn("alto", &root.0.join("alto"), &[]);
    told(&mut alto, "follower-session.json");
    alto.send(&format!("song {}", demo_score("harbour-lights-jig.pdf").display()));
    alto.wait("its own score", |e| e["event"] == "show" && e["page_index"] == 0);
    let rejoined = alto.seen_at().any(|(e, _)| {
        e["event"] == "phase" && e["phase"].as_str().is_some_and(|p| p != "FOLLOWER_IDLE_LOCAL")
    });
    assert!(!rejoined, "the singer never tried to rejoin: {:#?}", alto.seen);
    assert!(alto.quit().success());
    assert!(m.quit().success());
}

#[test]
fn a_join_request_naming_a_third_address_sends_it_nothing() {
    let root = TempDir::new("hostile-reflect");
    let (mut m, code_text) = master(&root.0);
    let code: JoinCode = code_text.parse().expect("our join code");
    let song = show_song(&mut m, "lanterns-on-the-water.pdf");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    // Another host on the LAN (another loopback address here), named by the offer as the
    // joiner's first candidate; the request itself comes from 127.0.0.1.
    let victim = std::net::UdpSocket::bind("127.0.0.2:0").expect("a victim's socket");
    victim.set_nonblocking(true).expect("non-blocking");
    let at = victim.local_addr().expect("its address");
    let mut request_bytes = 0;
    let (link, mut events) = rt
        .block_on(rogue::join_edited(&code, "reflector", None, WAIT, |offer| {
            let line =
                format!("a=candidate:9 1 udp 2130706431 {} {} typ host\r\n", at.ip(), at.port());
            let edited = match offer.find("a=candidate:") {
                Some(i) => format!("{}{line}{}", &offer[..i], &offer[i..]),
                None => offer + &line,
            };
            request_bytes = edited.len() + code.token.expose().len() + 200;
            edited
        }))
        .expect("the link opens, at the address the request came from");
    // The link is open and the Master has answered on it: its connectivity checks are done.
    rt.block_on(rogue::ask_to_join(&link, &code, "reflector"));
    rt.block_on(async {
        loop {
            match tokio::time::timeout(WAIT, events.recv()).await {
                Ok(Some(LinkEvent::Text(t))) if t.contains("\"JOIN_ACCEPT\"") => break,
                Ok(Some(_)) => {}
                other => panic!("no JOIN_ACCEPT: {other:?}"),
            }
        }
    });
    let mut sent_there = 0;
    let mut buf = [0u8; 2048];
    while let Ok((n, _)) = victim.recv_from(&mut buf) {
        sent_there += n;
    }
    eprintln!("bytes to the third address: {sent_there} (request ~{request_bytes})");
    assert_eq!(sent_there, 0, "nothing reaches it (the request was ~{request_bytes} bytes)");
    rt.block_on(link.close());
    // An honest singer joins and follows meanwhile.
    let mut alto = singer(&root.0, "alto", &code_text);
    m.send("page 4");
    alto.wait("page 4", |e| is_show(e, &song, 4));
    assert!(alto.quit().success());
    assert!(m.quit().success());
}

#[test]
fn a_forged_403_while_the_master_is_away_does_not_end_a_singers_membership() {
    let root = TempDir::new("hostile-403");
    let (mut m, code_text) = master(&root.0);
    let code: JoinCode = code_text.parse().expect("our join code");
    let mut alto = singer(&root.0, "alto", &code_text);
    let song = show_song(&mut m, "lanterns-on-the-water.pdf");
    m.send("page 2");
    alto.wait("page 2", |e| is_show(e, &song, 2));
    // The session is on disk (so the Master can come back); then it dies.
    restart::kept(&root.0.join("conductor"), "master-session.json", |v| {
        v["state"]["page_index"] == 2
    });
    restart::kill(m);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let refused = rogue::forge_403s(&rt, code.host);
    let (_, dropped_at) =
        alto.wait_at("the drop-out", |e| is_phase(e, "FOLLOWER_DISCONNECTED_LOCAL"));
    let deadline = std::time::Instant::now() + WAIT;
    while refused.load(std::sync::atomic::Ordering::SeqCst) < 2 {
        assert!(std::time::Instant::now() < deadline, "the singer tried to rejoin");
        std::thread::sleep(Duration::from_millis(50));
    }
    alto.drain(Duration::from_millis(300));
    let gave_up =
        alto.seen_at().any(|(e, at)| at >= dropped_at && is_phase(e, "FOLLOWER_IDLE_LOCAL"));
    assert!(!gave_up, "a forged 403 ended the membership");
    // The forger goes; the Master comes back from its state directory, and the singer with it.
    drop(rt);
    let mut m = restart::spawn("conductor", &root.0.join("conductor"), &[]);
    m.wait("resumed", |e| e["event"] == "ready");
    alto.wait("back in step", |e| is_phase(e, "FOLLOWER_CONNECTED_FOLLOW"));
    m.send("next");
    alto.wait("page 3", |e| is_show(e, &song, 3));
    assert!(alto.quit().success());
    assert!(m.quit().success());
}

#[test]
fn a_solo_partner_stamping_a_change_far_in_the_future_is_refused() {
    use maestral_net::pairing;
    let root = TempDir::new("hostile-solo");
    let score = demo_score("lanterns-on-the-water.pdf");
    let mut left =
        app("left", &root.0.join("left"), &["--solo-offer", score.to_str().expect("UTF-8")]);
    let ready = left.wait("ready", |e| e["event"] == "ready");
    let offer =
        pairing::decode_offer(ready["pair_code"].as_str().expect("an offer")).expect("offer");
    let song = SongId::new(
        left.seen_or_wait("the score", |e| e["event"] == "show" && e["song_id"].is_string())["song_id"]
            .as_str()
            .expect("an id"),
    );
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let (link, answer, mut events) =
        rt.block_on(Link::answer(&RtcConfig::new(LOCAL), None, &offer)).expect("an answer");
    left.send(&pairing::encode_answer(&answer).expect("an answer code"));
    assert!(rt.block_on(wait_open(&mut events, WAIT)), "the rogue partner's link opens");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_millis() as u64;
    let send = |ts: u64, page: u32| {
        let msg =
            Message::SoloSetPage(SoloSetPage { song_id: Some(song.clone()), page_index: page });
        let env = Envelope::new(SessionId::default(), DeviceId::new("rogue"), ts, msg);
        rt.block_on(link.send_text(&env.encode())).expect("sent");
    };
    let hello = r#"{"v":1,"session_id":"","sender_id":"rogue","type":"HELLO","ts":1,"payload":{"mode":"solo","device_name":"rogue","app_version":"0","capabilities":[]}}"#;
    rt.block_on(link.send_text(hello)).expect("sent");
    // Its state, as every partner sends on a new link (until then the device stays alone).
    let state = r#"{"v":1,"session_id":"","sender_id":"rogue","type":"STATE_SNAPSHOT","ts":1,"payload":{"song_id":null,"page_index":0,"layout":{"leader_device_id":"rogue","parity":"odd"},"last_page_change":{"sender_id":"rogue","ts":0},"last_layout_change":{"sender_id":"rogue","ts":0}}}"#;
    rt.block_on(link.send_text(state)).expect("sent");
    left.wait("paired", |e| is_phase(e, "SOLO_PAIRED_CONNECTED"));
    // Far in the future: refused. Then a change at the present time: taken.
    send(u64::MAX, 8);
    send(now + 60 * 60 * 1000, 8);
    send(now + 1_000, 4);
    let taken = left.wait("the sane change", |e| {
        e["event"] == "show" && e["page_index"].as_u64().is_some_and(|p| p / 2 == 2)
    });
    assert!(taken["page_index"].as_u64().is_some_and(|p| p < 8));
    let jumped = left
        .seen_at()
        .any(|(e, _)| e["event"] == "show" && e["page_index"].as_u64().is_some_and(|p| p / 2 == 4));
    assert!(!jumped, "a far-future change was applied");
    // Its own turns still go out, and win.
    left.send("next");
    left.wait("its own turn", |e| {
        e["event"] == "show" && e["page_index"].as_u64().is_some_and(|p| p / 2 == 3)
    });
    rt.block_on(link.close());
    assert!(left.quit().success());
}

#[test]
fn a_huge_file_and_a_damaged_one_in_the_library_leave_the_master_working() {
    let root = TempDir::new("hostile-library");
    let library = root.0.join("library");
    std::fs::create_dir_all(&library).expect("a library");
    std::fs::copy(demo_score("lanterns-on-the-water.pdf"), library.join("lanterns.pdf"))
        .expect("copy");
    let huge = std::fs::File::create(library.join("huge.pdf")).expect("create");
    huge.set_len(maestral_score::MAX_SCORE_BYTES + 1).expect("sparse");
    drop(huge);
    std::fs::write(library.join("damaged.pdf"), b"%PDF-1.7\n1 0 obj << /Pages 9 0 R >>\n")
        .expect("write");
    let mut m = app(
        "conductor",
        &root.0.join("conductor"),
        &["--choir-master", "--listen", "127.0.0.1:0", library.to_str().expect("UTF-8")],
    );
    let ready = m.wait("ready", |e| e["event"] == "ready");
    let code = ready["join_code"].as_str().expect("a code").to_owned();
    m.wait("the huge file reported", |e| {
        e["event"] == "error"
            && e["message"]
                .as_str()
                .is_some_and(|t| t.contains("huge.pdf") && t.contains("not opened"))
    });
    let mut alto = singer(&root.0, "alto", &code);
    m.send(&format!("song {}", library.join("lanterns.pdf").display()));
    let shown = m.wait("the good score", |e| e["event"] == "show" && e["page_count"] == 11);
    let song = shown["song_id"].as_str().expect("an id").to_owned();
    m.send("next");
    alto.wait("page 1", |e| is_show(e, &song, 1));
    assert!(alto.quit().success());
    assert!(m.quit().success());
}
