//! Half-page turns across processes (`--layout half`, docs/headless.md): the first "next"
//! shows the next page's top half and moves nothing else, the second completes the turn, and
//! "prev" takes a half back. A Master turning in halves moves its singers by whole pages only.
//! Every wait is bounded.

mod support;

use support::TempDir;
use support::restart::{is_phase, is_show, show_song, spawn};

fn is_half(e: &serde_json::Value, page: u64, next: Option<u64>) -> bool {
    e["event"] == "half" && e["page_index"] == page && e["next"].as_u64() == next
}

/// Every page `app` said it showed, in order.
fn pages_shown(app: &support::App) -> Vec<u64> {
    app.seen
        .iter()
        .filter(|e| e["event"] == "show")
        .filter_map(|e| e["page_index"].as_u64())
        .collect()
}

#[test]
fn the_first_press_shows_half_the_next_page_and_the_second_turns_it() {
    let root = TempDir::new("half-alone");
    let mut a = spawn("alone", &root.0.join("a"), &["--layout", "half"]);
    a.wait("ready", |e| e["event"] == "ready");
    let song = show_song(&mut a, "lanterns-on-the-water.pdf");
    a.send("next");
    a.wait("half of page 1 over page 0", |e| is_half(e, 0, Some(1)));
    a.send("next");
    a.wait("page 1, whole", |e| is_show(e, &song, 1));
    a.wait("no half any more", |e| is_half(e, 1, None));
    a.send("next");
    a.wait("half of page 2 over page 1", |e| is_half(e, 1, Some(2)));
    a.send("prev");
    a.wait("taken back", |e| is_half(e, 1, None));
    a.send("prev");
    a.wait("a whole page back", |e| is_show(e, &song, 0));
    assert_eq!(pages_shown(&a), [0, 1, 0], "a half turn never moves the page by itself");
    assert!(a.quit().success());
}

#[test]
fn a_master_turning_in_halves_moves_its_singers_by_whole_pages() {
    let root = TempDir::new("half-choir");
    let mut m = spawn(
        "conductor",
        &root.0.join("m"),
        &["--choir-master", "--listen", "127.0.0.1:0", "--layout", "half"],
    );
    let ready = m.wait("ready", |e| e["event"] == "ready");
    let code = ready["join_code"].as_str().expect("a join code").to_owned();
    let song = show_song(&mut m, "lanterns-on-the-water.pdf");
    // The singer turns in halves too: what it is sent still arrives as whole pages.
    let mut f = spawn("singer", &root.0.join("f"), &["--join", &code, "--layout", "half"]);
    f.wait("the Master's page", |e| is_show(e, &song, 0));
    f.seen_or_wait("following", |e| is_phase(e, "FOLLOWER_CONNECTED_FOLLOW"));
    // Half, taken back, half again, completed: the singer sees one turn, to page 1.
    m.send("next");
    m.wait("half", |e| is_half(e, 0, Some(1)));
    m.send("prev");
    m.wait("taken back", |e| is_half(e, 0, None));
    m.send("next");
    m.wait("half again", |e| is_half(e, 0, Some(1)));
    m.send("next");
    m.wait("turned", |e| is_show(e, &song, 1));
    f.wait("the singer on page 1", |e| is_show(e, &song, 1));
    m.send("page 3");
    f.wait("the singer on page 3", |e| is_show(e, &song, 3));
    assert_eq!(pages_shown(&f), [0, 1, 3], "whole pages only, no half ever sent");
    assert!(!f.seen.iter().any(|e| e["event"] == "half"), "the singer's pages are whole");
    assert!(f.quit().success());
    assert!(m.quit().success());
}
