//! The set lists' rules, without an app.

use super::*;

fn id(n: u8) -> SongId {
    SongId::new(format!("{n:02x}").repeat(32))
}

fn with_list(songs: &[u8]) -> SetLists {
    let mut sets = SetLists::default();
    sets.apply(&SetListEdit::New("Sunday".into()), None).expect("made");
    for &n in songs {
        sets.apply(&SetListEdit::Add(id(n)), None).expect("added");
    }
    sets
}

#[test]
fn a_new_list_is_in_use_and_names_are_trimmed_unique_and_bounded() {
    let mut sets = with_list(&[]);
    assert_eq!(sets.in_use().map(|l| l.name.as_str()), Some("Sunday"));
    let again = sets.apply(&SetListEdit::New("  Sunday ".into()), None);
    assert_eq!(again, Err("a set list named \"Sunday\" exists already".into()));
    assert!(sets.apply(&SetListEdit::New("   ".into()), None).is_err());
    assert!(sets.apply(&SetListEdit::New("x".repeat(MAX_NAME + 1)), None).is_err());
    assert!(sets.apply(&SetListEdit::New("a\u{7}b".into()), None).is_err());
    assert_eq!(sets.lists.len(), 1, "a refused edit changes nothing");
}

#[test]
fn edits_without_a_list_in_use_say_how_to_make_one() {
    let mut sets = SetLists::default();
    let err = sets.apply(&SetListEdit::Add(id(1)), None).expect_err("refused");
    assert!(err.contains("setlist new NAME"), "{err}");
    assert_eq!(sets, SetLists::default());
}

#[test]
fn using_a_list_shows_its_first_piece_unless_the_song_shown_is_in_it() {
    let mut sets = with_list(&[1, 2, 3]);
    sets.apply(&SetListEdit::Off, None).expect("off");
    assert_eq!(sets.apply(&SetListEdit::Use("Sunday".into()), None), Ok(Some(id(1))));
    assert_eq!(sets.current, Some(0));
    sets.apply(&SetListEdit::Off, None).expect("off");
    assert_eq!(sets.apply(&SetListEdit::Use("Sunday".into()), Some(&id(2))), Ok(None));
    assert_eq!(sets.current, Some(1));
    let err = sets.apply(&SetListEdit::Use("Monday".into()), None).expect_err("no such");
    assert!(err.contains("\"Sunday\""), "names the lists there are: {err}");
}

#[test]
fn neighbours_are_the_pieces_beside_the_marked_one() {
    let mut sets = with_list(&[1, 2, 3]);
    sets.follow(Some(&id(2)), None);
    let c = sets.current;
    assert_eq!(sets.neighbour(c, PieceRequested::Next), Some((2, id(3))));
    assert_eq!(sets.neighbour(c, PieceRequested::Prev), Some((0, id(1))));
    assert_eq!(sets.neighbour(c, PieceRequested::At(2)), Some((2, id(3))));
    assert_eq!(sets.neighbour(c, PieceRequested::At(3)), None);
    sets.follow(Some(&id(3)), None);
    assert_eq!(sets.neighbour(sets.current, PieceRequested::Next), None, "the last piece");
    // A song not in the list: "next" starts the list, "previous" goes nowhere.
    sets.follow(Some(&id(9)), None);
    assert_eq!(sets.current, None);
    assert_eq!(sets.neighbour(None, PieceRequested::Next), Some((0, id(1))));
    assert_eq!(sets.neighbour(None, PieceRequested::Prev), None);
}

#[test]
fn a_piece_listed_twice_is_told_apart_by_how_it_was_reached() {
    let mut sets = with_list(&[1, 2, 1, 3]);
    sets.follow(Some(&id(1)), Some(2));
    assert_eq!(sets.current, Some(2));
    assert_eq!(sets.neighbour(sets.current, PieceRequested::Next), Some((3, id(3))));
    // Shown again by other means, it stays where it was marked.
    sets.follow(Some(&id(1)), None);
    assert_eq!(sets.current, Some(2));
}

#[test]
fn removing_and_moving_keep_the_mark_on_its_piece() {
    let mut sets = with_list(&[1, 2, 3, 4]);
    sets.follow(Some(&id(3)), None);
    assert_eq!(sets.current, Some(2));
    sets.apply(&SetListEdit::Remove(0), None).expect("removed");
    assert_eq!(sets.current, Some(1));
    sets.apply(&SetListEdit::Move { from: 1, to: 2 }, None).expect("moved");
    assert_eq!(sets.in_use().map(|l| l.songs.clone()), Some(vec![id(2), id(4), id(3)]));
    assert_eq!(sets.current, Some(2));
    sets.apply(&SetListEdit::Move { from: 0, to: 2 }, None).expect("moved");
    assert_eq!(sets.current, Some(1));
    let err = sets.apply(&SetListEdit::Remove(7), None).expect_err("out of range");
    assert_eq!(err, "the set list has no piece 7: its pieces are 0 to 2");
    sets.apply(&SetListEdit::Remove(1), None).expect("removed");
    assert_eq!(sets.current, None, "the marked piece itself removed");
}

#[test]
fn renaming_and_deleting_act_on_the_list_in_use() {
    let mut sets = with_list(&[1]);
    sets.apply(&SetListEdit::New("Encore".into()), None).expect("made");
    assert!(sets.apply(&SetListEdit::Rename("Sunday".into()), None).is_err(), "taken");
    sets.apply(&SetListEdit::Rename("Encores".into()), None).expect("renamed");
    sets.apply(&SetListEdit::Delete, None).expect("deleted");
    assert_eq!(sets.lists.len(), 1);
    assert_eq!(sets.active, None);
    assert_eq!(sets.lists[0].name, "Sunday");
}

#[test]
fn the_file_keeps_the_lists_and_a_damaged_one_is_set_aside() {
    let dir = std::env::temp_dir().join(format!("maestral-setlists-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("setlists.json");
    let sets = with_list(&[1, 2]);
    std::fs::write(&path, store::text(&sets)).expect("written");
    let got = read(&path).expect("reads");
    assert_eq!((got.lists, got.active), (sets.lists.clone(), sets.active));
    for bad in [
        "{not json",
        r#"{"in_use": null, "lists": [{"name": "", "songs": []}]}"#,
        r#"{"in_use": null, "lists": [{"name": "a", "songs": ["nope"]}]}"#,
        r#"{"in_use": "b", "lists": [{"name": "a", "songs": []}]}"#,
        r#"{"in_use": null, "lists": [{"name": "a", "songs": []}, {"name": "a", "songs": []}]}"#,
    ] {
        std::fs::write(&path, bad).expect("written");
        let err = read(&path).expect_err(bad);
        assert!(err.contains("it was kept as") && err.contains("no set list"), "{err}");
        assert!(!path.exists(), "set aside, not left in the way");
    }
    let aside = std::fs::read_dir(&dir).expect("dir").count();
    assert_eq!(aside, 5, "every damaged file is kept");
    let _ = std::fs::remove_dir_all(&dir);
}
