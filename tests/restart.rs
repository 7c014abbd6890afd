//! Devices that remember (docs/behaviour.md §6.3, §12.2): headless processes over real WebRTC on loopback,
//! killed with SIGKILL (nothing saved at exit) and started again with only `--state-dir`. A
//! Follower rejoins and shows the Master's current page; a Solo device, each of the two in
//! turn, calls its partner back and takes the latest change; a Master resumes its session and
//! every Follower is back in step. `end` and `leave` forget the Follower's session: a restart
//! then plays alone. Every wait is bounded; nothing asserts on time (`cargo xtask bench
//! restart` measures it).

mod support;

use support::TempDir;
use support::restart::{
    both_halves, follower, is_phase, is_show, kept, kill, master, restart_follower, restart_master,
    restart_solo, show_song, solo_pair, spawn,
};

/// A Follower that forgot its session, started again on `dir`: it plays alone and never tries
/// to rejoin (watched for a second).
fn restarted_alone(dir: &std::path::Path) -> support::App {
    let mut f = spawn("singer", dir, &[]);
    let ready = f.wait("ready", |e| e["event"] == "ready");
    assert_eq!(ready["mode"], "solo", "{ready}");
    f.drain(std::time::Duration::from_secs(1));
    assert!(
        !f.seen.iter().any(|e| e["event"] == "phase"
            && e["phase"].as_str().is_some_and(|p| p.starts_with("FOLLOWER"))),
        "it never tried to rejoin: {:#?}",
        f.seen
    );
    f
}

/// The page `positions.json` in `dir` keeps for `song`, if it is also the last song.
fn kept_page(dir: &std::path::Path, song: &str) -> Option<u64> {
    let text = std::fs::read(dir.join("positions.json")).ok()?;
    let kept: serde_json::Value = serde_json::from_slice(&text).ok()?;
    (kept["last_song"] == song).then(|| kept["pages"][song].as_u64()).flatten()
}

#[test]
fn a_killed_follower_restarted_with_only_its_state_dir_rejoins_on_the_masters_page() {
    let root = TempDir::new("restart-f");
    let (m_dir, f_dir) = (root.0.join("m"), root.0.join("f"));
    let (mut m, code) = master(&m_dir);
    let song = show_song(&mut m, "lanterns-on-the-water.pdf");
    m.send("page 2");
    m.wait("page 2", |e| is_show(e, &song, 2));
    let f = follower("singer", &f_dir, &code, &song, 2);
    kept(&f_dir, "follower-session.json", |_| true);

    let (f, _) = restart_follower(&mut m, f, &f_dir, &song, "next");
    // And again, the other way: it is the stored session every time, not a first join.
    let (mut f, _) = restart_follower(&mut m, f, &f_dir, &song, "prev");
    m.send("next");
    f.wait("the next turn", |e| is_show(e, &song, 3));

    // A plain quit keeps the session too (only end, a refusal and leave forget it).
    assert!(f.quit().success());
    assert!(f_dir.join("follower-session.json").is_file(), "a quit keeps the session");
    // A Follower keeps positions too (every role does).
    assert_eq!(kept_page(&f_dir, &song), Some(3));
    let mut f = spawn("singer", &f_dir, &[]);
    f.wait("the Master's page", |e| is_show(e, &song, 3));
    f.seen_or_wait("following", |e| is_phase(e, "FOLLOWER_CONNECTED_FOLLOW"));

    // Leaving forgets the session: a restart plays alone and the Master's roster empties.
    f.send("leave");
    f.wait("local", |e| is_phase(e, "FOLLOWER_IDLE_LOCAL"));
    assert!(f.quit().success());
    assert!(!f_dir.join("follower-session.json").exists(), "leave forgets the session");
    let f = restarted_alone(&f_dir);
    m.wait("an empty roster", |e| {
        e["event"] == "roster" && e["members"].as_array().is_some_and(Vec::is_empty)
    });
    assert!(f.quit().success());
    assert!(m.quit().success());
}

#[test]
fn after_the_session_ends_a_restarted_follower_stays_local() {
    let root = TempDir::new("restart-end");
    let (m_dir, f_dir) = (root.0.join("m"), root.0.join("f"));
    let (mut m, code) = master(&m_dir);
    let song = show_song(&mut m, "harbour-lights-jig.pdf");
    let mut f = follower("singer", &f_dir, &code, &song, 0);
    m.send("end");
    f.wait("the session's end", |e| is_phase(e, "FOLLOWER_IDLE_LOCAL"));
    assert!(f.quit().success());
    assert!(!f_dir.join("follower-session.json").exists(), "an ended session is forgotten");
    let f = restarted_alone(&f_dir);
    assert!(f.quit().success());
    assert!(m.quit().success());
}

#[test]
fn a_killed_solo_device_restarted_with_only_its_state_dir_calls_its_partner_back_each_in_turn() {
    let root = TempDir::new("restart-solo");
    let (a_dir, b_dir) = (root.0.join("a"), root.0.join("b"));
    let (mut a, b) = solo_pair((&a_dir, &b_dir));
    let song = show_song(&mut a, "lanterns-on-the-water.pdf");
    let mut b = b;
    let (pa0, _) = both_halves(&mut a, &mut b, &song);

    // B dies; A, alone, shows every page and turns one; B comes back and shows the other half
    // of the spread of A's page (the latest change), A still on its page.
    let (mut b, _) = restart_solo(&mut a, b, &b_dir, &song, "next");
    let (pa, pb) = both_halves(&mut a, &mut b, &song);
    assert_eq!(pa, pa0 + 1, "A's turn alone moved one page, and A keeps it: {pa} {pb}");
    // Now A dies; B turns alone; A comes back to the other half of B's page.
    let (mut a, _) = restart_solo(&mut b, a, &a_dir, &song, "next");
    let (pa2, pb2) = both_halves(&mut a, &mut b, &song);
    assert_eq!(pb2, pb + 1, "B's turn alone stands: {pa2} {pb2}");
    // One book again: either turns both, by spreads.
    a.send("next");
    b.wait("B follows A's turn", |e| is_show(e, &song, pb2 + 2));

    // Unpair forgets the pairing on this device: a restart plays alone.
    a.send("unpair");
    a.wait("alone", |e| is_phase(e, "SOLO_LOCAL_ONLY"));
    assert!(a.quit().success());
    assert!(!a_dir.join("solo-pairing.json").exists(), "unpair forgets the pairing");
    let mut a = spawn("left", &a_dir, &[]);
    a.wait("ready", |e| e["event"] == "ready");
    a.drain(std::time::Duration::from_secs(1));
    assert!(
        !a.seen.iter().any(|e| e["event"] == "phase"
            && e["phase"].as_str().is_some_and(|p| p.starts_with("SOLO_PAIRED"))),
        "it never called its old partner: {:#?}",
        a.seen
    );
    assert!(a.quit().success());
    kill(b);
}

#[test]
fn a_killed_master_restarted_with_only_its_state_dir_has_every_follower_back_in_step() {
    let root = TempDir::new("restart-m");
    let m_dir = root.0.join("m");
    let (mut m, code) = master(&m_dir);
    let song = show_song(&mut m, "lanterns-on-the-water.pdf");
    m.send("page 4");
    m.wait("page 4", |e| is_show(e, &song, 4));
    let mut followers: Vec<_> =
        ["alto", "tenor"].iter().map(|n| follower(n, &root.0.join(n), &code, &song, 4)).collect();
    let (mut m, _) = restart_master(m, &m_dir, &mut followers);
    let ready = m.seen.iter().find(|e| e["event"] == "ready").cloned().unwrap_or_default();
    assert_eq!(ready["join_code"].as_str(), Some(code.as_str()), "the same session: {ready}");
    m.seen_or_wait("its kept page", |e| is_show(e, &song, 4));
    m.send("next");
    for f in &mut followers {
        f.wait("the resumed Master's turn", |e| is_show(e, &song, 5));
    }
    for f in followers {
        assert!(f.quit().success());
    }
    assert!(m.quit().success());
    assert_eq!(kept_page(&m_dir, &song), Some(5), "a Master keeps positions too");
}

#[test]
fn a_follower_that_switches_to_playing_alone_and_quits_at_once_has_left_for_good() {
    let root = TempDir::new("restart-alone");
    let (m_dir, f_dir) = (root.0.join("m"), root.0.join("f"));
    let (mut m, code) = master(&m_dir);
    let song = show_song(&mut m, "harbour-lights-jig.pdf");
    let mut f = follower("singer", &f_dir, &code, &song, 0);
    kept(&f_dir, "follower-session.json", |_| true);
    // The switch and the quit in one go: the old role's Leave still reaches the disk.
    f.send("alone");
    assert!(f.quit().success());
    assert!(!f_dir.join("follower-session.json").exists(), "the switch left the session");
    let mut f = spawn("singer", &f_dir, &[]);
    let ready = f.wait("ready", |e| e["event"] == "ready");
    assert_eq!(ready["mode"], "solo", "{ready}");
    assert!(f.quit().success());
    assert!(m.quit().success());
}
