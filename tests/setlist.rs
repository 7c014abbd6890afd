//! Set lists across processes (`maestral --headless`, docs/headless.md): built by commands,
//! turned through from piece to piece, kept in the state directory across a restart, a damaged
//! file set aside, and a Master's set list moving its choir on. Every wait is bounded.

mod support;

use serde_json::Value;
use support::TempDir;
use support::restart::{follower, is_show, master, show_song, spawn};

fn is_set_list(e: &Value, pieces: &[&str], current: Option<u64>) -> bool {
    e["event"] == "setlist"
        && e["pieces"].as_array().is_some_and(|p| {
            p.len() == pieces.len() && p.iter().zip(pieces).all(|(x, want)| x["song_id"] == *want)
        })
        && e["current"].as_u64() == current
}

fn is_error(e: &Value, words: &str) -> bool {
    e["event"] == "error" && e["message"].as_str().is_some_and(|m| m.contains(words))
}

#[test]
fn a_set_list_built_by_commands_turns_from_piece_to_piece_and_survives_a_restart() {
    let root = TempDir::new("setlist");
    let dir = root.0.join("a");
    let mut a = spawn("alone", &dir, &[]);
    a.wait("ready", |e| e["event"] == "ready");
    a.send("setlist add");
    a.wait("nothing shown to add", |e| is_error(e, "no score is shown"));
    a.send("setlist rename Sunday");
    a.wait("no list in use", |e| is_error(e, "setlist new NAME"));
    a.send("setlist new Sunday concert");
    let jig = show_song(&mut a, "harbour-lights-jig.pdf");
    a.send("setlist add");
    let lanterns = show_song(&mut a, "lanterns-on-the-water.pdf");
    a.send("setlist add");
    a.wait("two pieces, the second shown", |e| is_set_list(e, &[&jig, &lanterns], Some(1)));
    a.send("setlist move 1 0");
    a.wait("reordered, the mark kept", |e| is_set_list(e, &[&lanterns, &jig], Some(0)));

    // Past the last page of Lanterns (11 pages): the jig's first page; and back.
    a.send("page 10");
    a.wait("the last page", |e| is_show(e, &lanterns, 10));
    a.send("next");
    a.wait("the next piece's first page", |e| is_show(e, &jig, 0));
    a.wait("the jig marked", |e| is_set_list(e, &[&lanterns, &jig], Some(1)));
    a.send("prev");
    a.wait("back to the last page of the piece before", |e| is_show(e, &lanterns, 10));
    a.send("piece next");
    a.wait("a whole piece on", |e| is_show(e, &jig, 0));
    a.send("piece next");
    a.wait("the end of the program", |e| is_error(e, "last piece"));
    a.send("next");
    a.send("next");
    a.wait("the jig's last page; no piece after it", |e| is_show(e, &jig, 1));
    a.send("setlist remove 5");
    a.wait("a clear refusal", |e| is_error(e, "no piece 5: its pieces are 0 to 1"));
    assert!(a.quit().success());

    // Started again: the set list is back, in use, in its order.
    let kept = std::fs::read_to_string(dir.join("setlists.json")).expect("kept");
    assert!(kept.contains("Sunday concert"), "{kept}");
    let mut a = spawn("alone", &dir, &[]);
    // Said at start, and again once the library has read the pieces' scores (their titles).
    let line = a.wait("the set lists, their scores read", |e| {
        e["event"] == "setlist"
            && e["pieces"].as_array().is_some_and(|p| p.iter().all(|x| x["title"].is_string()))
    });
    assert_eq!(line["in_use"], "Sunday concert", "{line}");
    assert_eq!(line["lists"], serde_json::json!(["Sunday concert"]), "{line}");
    let pieces: Vec<&str> = line["pieces"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["song_id"].as_str())
        .collect();
    assert_eq!(pieces, [lanterns.as_str(), jig.as_str()]);
    a.send("piece next");
    a.wait("the program starts from its first piece", |e| is_show(e, &lanterns, 0));
    assert!(a.quit().success());
}

#[test]
fn a_damaged_set_list_file_is_set_aside_with_one_message_and_nothing_else_is_lost() {
    let root = TempDir::new("setlist-broken");
    let dir = root.0.join("a");
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(dir.join("setlists.json"), b"{\"in_use\": 7, \"lists\": \x00").expect("written");
    let mut a = spawn("alone", &dir, &[]);
    a.wait("ready", |e| e["event"] == "ready");
    let error = a.wait("one message", |e| is_error(e, "setlists.json"));
    let message = error["message"].as_str().unwrap_or_default();
    assert!(message.contains("kept as") && message.contains("no set list"), "{message}");
    let aside = std::fs::read_dir(&dir)
        .expect("dir")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("setlists.json.broken"))
        .count();
    assert_eq!(aside, 1, "the damaged file is kept aside");
    // The app goes on: a new list is made and kept.
    a.send("setlist new Encores");
    a.wait("a new list", |e| e["event"] == "setlist" && e["in_use"] == "Encores");
    let jig = show_song(&mut a, "harbour-lights-jig.pdf");
    a.send("setlist add");
    a.wait("its piece", |e| is_set_list(e, &[&jig], Some(0)));
    assert!(a.quit().success());
    let kept = std::fs::read_to_string(dir.join("setlists.json")).expect("kept anew");
    assert!(kept.contains("Encores") && kept.contains(&jig), "{kept}");
}

#[test]
fn a_masters_set_list_moves_its_singers_from_piece_to_piece() {
    let root = TempDir::new("setlist-choir");
    let (m_dir, f_dir) = (root.0.join("m"), root.0.join("f"));
    let (mut m, code) = master(&m_dir);
    m.send("setlist new Rehearsal");
    let lanterns = show_song(&mut m, "lanterns-on-the-water.pdf");
    m.send("setlist add");
    let jig = show_song(&mut m, "harbour-lights-jig.pdf");
    m.send("setlist add");
    m.wait("the program", |e| is_set_list(e, &[&lanterns, &jig], Some(1)));
    let mut f = follower("singer", &f_dir, &code, &jig, 0);
    // The conductor goes back a piece: its last page, for the singer too.
    m.send("piece prev");
    m.wait("the piece before, at its end", |e| is_show(e, &lanterns, 10));
    f.wait("the singer on it", |e| is_show(e, &lanterns, 10));
    // Turning on past its last page: the next piece, for everyone.
    m.send("next");
    m.wait("the next piece", |e| is_show(e, &jig, 0));
    f.wait("the singer on it", |e| is_show(e, &jig, 0));
    // A singer does not run the program: it follows the conductor's.
    f.send("piece next");
    f.wait("told so", |e| is_error(e, "follows the conductor's program"));
    assert!(f.quit().success());
    assert!(m.quit().success());
}
