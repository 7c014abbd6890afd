//! A singer whose stored or scanned code names an address the Master no longer listens on (a
//! DHCP renewal moved it) finds it with a locate query and rejoins or joins there: real sync threads, real UDP, real
//! WebRTC. (The Master's side of a move, its address taken away, is run by the fault harness on
//! network namespaces: `cargo xtask faults`, and its bounded form in `cargo xtask test`.)

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::*;
use maestral_net::{LocateConfig, SyncCommand};
use maestral_sync::{LocalAction, Phase, Role};

fn free_udp_port() -> u16 {
    let s = std::net::UdpSocket::bind("127.0.0.1:0").expect("a free port");
    s.local_addr().expect("its address").port()
}

/// The kept session file, once it names `page` as the Master's.
fn kept(file: &std::path::Path, page: u32) -> serde_json::Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(&text)
            && v["session"]["master_page"] == page
        {
            return v;
        }
        assert!(Instant::now() < deadline, "the session is kept: {text}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_singer_whose_code_names_an_old_address_finds_the_master_and_rejoins_there() {
    let port = free_udp_port();
    let mut mcfg = config("M");
    mcfg.locate = LocateConfig::Lan { port };
    let (m, code) = master_with(mcfg);
    m.local(song("a"));
    let dir = temp_dir("locate");
    let mut cfg = config("F");
    cfg.state_dir = Some(dir.clone());
    // The code names a loopback address: asked on loopback only.
    cfg.locate = LocateConfig::Lan { port };
    let mut f = Peer::with(Role::Follower, cfg.clone());
    f.h.send(SyncCommand::Join(code.clone()));
    f.wait_phase(Phase::FollowerConnectedFollow);
    f.wait_view("a", 0);
    let file = dir.join("follower-session.json");
    let mut session = kept(&file, 0);
    f.h.shutdown();
    // The singer's device restarts with its session, whose code names where the Master was:
    // an address nobody listens on now.
    let gone = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
    let old = gone.local_addr().expect("its address");
    drop(gone);
    let stale = code.to_string().replace(&code.host.to_string(), &old.to_string());
    assert_ne!(stale, code.to_string());
    session["join_code"] = stale.into();
    std::fs::write(&file, serde_json::to_vec(&session).expect("JSON")).expect("write");

    let mut f = Peer::with(Role::Follower, cfg);
    f.h.send(SyncCommand::Rejoin);
    f.wait_phase(Phase::FollowerConnectedFollow);
    m.local(LocalAction::NextPage);
    f.wait_view("a", 1);
    // The stored code now names the Master's address.
    let now = kept(&file, 1);
    let stored: maestral_net::joincode::JoinCode =
        now["join_code"].as_str().expect("a code").parse().expect("it parses");
    assert_eq!(stored.host, code.host, "the stored code follows the Master");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_first_join_with_a_code_scanned_before_the_master_moved_finds_it() {
    let port = free_udp_port();
    let mut mcfg = config("M");
    mcfg.locate = LocateConfig::Lan { port };
    let (m, code) = master_with(mcfg);
    m.local(song("a"));
    // The code names an address nobody listens on now; the first attempt fails there, the next
    // asks where the Master is and joins at the address it answers from.
    let gone = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
    let old = gone.local_addr().expect("its address");
    drop(gone);
    let stale: maestral_net::joincode::JoinCode =
        code.to_string().replace(&code.host.to_string(), &old.to_string()).parse().expect("code");
    assert_ne!(stale.host, code.host);
    let dir = temp_dir("locate-first");
    let mut cfg = config("F");
    cfg.state_dir = Some(dir.clone());
    cfg.locate = LocateConfig::At(SocketAddr::new(LOCAL, port));
    let mut f = Peer::with(Role::Follower, cfg);
    f.h.send(SyncCommand::Join(stale));
    f.wait_phase(Phase::FollowerConnectedFollow);
    f.wait_view("a", 0);
    m.local(LocalAction::NextPage);
    f.wait_view("a", 1);
    let now = kept(&dir.join("follower-session.json"), 1);
    let stored: maestral_net::joincode::JoinCode =
        now["join_code"].as_str().expect("a code").parse().expect("it parses");
    assert_eq!(stored.host, code.host, "the kept code names where the Master is");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_token_holder_answering_every_locate_query_with_a_refusing_listener_never_stops_a_rejoin() {
    let (m, code) = master();
    m.local(song("a"));
    let port = free_udp_port();
    let dir = temp_dir("locate-forged");
    let mut cfg = config("F");
    cfg.state_dir = Some(dir.clone());
    cfg.locate = LocateConfig::At(SocketAddr::new(LOCAL, port));
    let mut f = Peer::with(Role::Follower, cfg.clone());
    f.h.send(SyncCommand::Join(code.clone()));
    f.wait_phase(Phase::FollowerConnectedFollow);
    kept(&dir.join("follower-session.json"), 0);
    f.h.shutdown();
    // A token holder answers every query, with a proof, naming a listener that refuses all.
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let fake = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
    let fake_at = fake.local_addr().expect("its address");
    drop(fake);
    let refused = rogue::forge_403s(&rt, fake_at);
    let forger = std::net::UdpSocket::bind(SocketAddr::new(LOCAL, port)).expect("the port");
    let answered = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = answered.clone();
    let (session, token) = (code.session_id.clone(), code.token.expose().to_owned());
    std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        while let Ok((n, from)) = forger.recv_from(&mut buf) {
            if let Some((_, reply)) =
                maestral_net::sync::locate::answer(&buf[..n], &session, &token, fake_at)
            {
                let _ = forger.send_to(&reply, from);
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        }
    });
    // The singer restarts and rejoins its Master while the forger answers.
    let mut f = Peer::with(Role::Follower, cfg);
    f.h.send(SyncCommand::Rejoin);
    f.wait_phase(Phase::FollowerConnectedFollow);
    assert!(answered.load(std::sync::atomic::Ordering::SeqCst) >= 1, "the forger answered");
    m.local(LocalAction::NextPage);
    f.wait_view("a", 1);
    // Its stored code still names the real Master.
    let now = kept(&dir.join("follower-session.json"), 1);
    let stored: maestral_net::joincode::JoinCode =
        now["join_code"].as_str().expect("a code").parse().expect("it parses");
    assert_eq!(stored.host, code.host);
    // The join at the forged address was tried (and refused) beside the real one.
    let deadline = Instant::now() + WAIT;
    while refused.load(std::sync::atomic::Ordering::SeqCst) == 0 {
        assert!(Instant::now() < deadline, "the forged address was never tried");
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A device at the address a singer's code names (the Master moved, and another device has the
/// address now) refuses the join, with no proof or with a proof of another certificate, or
/// answers it as if it were the Master. None of it ends the join: the singer asks where the
/// Master is and joins there.
#[test]
fn a_device_at_the_codes_address_refusing_or_answering_never_ends_a_first_join() {
    use base64::Engine as _;
    use maestral_net::rtc::DtlsCert;
    let b64 = base64::engine::general_purpose::STANDARD;
    let other = DtlsCert::generate().expect("a certificate");
    let someone_elses = format!(
        r#"{{"reason":"session_ended","cert":"{}","sig":"{}"}}"#,
        b64.encode(other.der()),
        b64.encode(other.sign(b"anything").expect("signed"))
    );
    let its_own = format!(
        r#"{{"answer":"v=0\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=fingerprint:{}\r\n"}}"#,
        other.fingerprint()
    );
    let cases = [
        ("a refusal without proof", "403 Forbidden", r#"{"reason":"invalid_token"}"#.to_owned()),
        ("a refusal proved by another certificate", "403 Forbidden", someone_elses),
        ("an answer of its own", "200 OK", its_own),
        (
            "a refusal of the request's shape",
            "400 Bad Request",
            r#"{"reason":"bad_request"}"#.into(),
        ),
    ];
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    for (what, status, body) in cases {
        let port = free_udp_port();
        let mut mcfg = config("M");
        mcfg.locate = LocateConfig::Lan { port };
        let (m, code) = master_with(mcfg);
        m.local(song("a"));
        let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
        let fake_at = taken.local_addr().expect("its address");
        drop(taken);
        let answered = rogue::pretend(&rt, fake_at, status, body);
        let stale: maestral_net::joincode::JoinCode = code
            .to_string()
            .replace(&code.host.to_string(), &fake_at.to_string())
            .parse()
            .expect("code");
        let mut cfg = config("F");
        cfg.locate = LocateConfig::At(SocketAddr::new(LOCAL, port));
        let mut f = Peer::with(Role::Follower, cfg);
        f.h.send(SyncCommand::Join(stale));
        f.wait_phase(Phase::FollowerConnectedFollow);
        assert!(answered.load(std::sync::atomic::Ordering::SeqCst) >= 1, "{what}: it was asked");
        m.local(LocalAction::NextPage);
        f.wait_view("a", 1);
        let joining = f.phases.iter().position(|p| *p == Phase::FollowerJoining);
        let after = &f.phases[joining.expect("it was joining")..];
        assert!(
            !after.contains(&Phase::FollowerIdleLocal) && f.rejected.is_none(),
            "{what}: the join never ended: {:?}",
            f.phases
        );
        f.h.shutdown();
    }
}
