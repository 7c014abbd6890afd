//! Score streaming, the engine's part (docs/behaviour.md §8.3): a Master whose app can stream the
//! current song offers it (`STREAM_PREPARE`) to the members there and to each Follower that joins
//! or rejoins; a song change withdraws the offer; a Follower hands `STREAM_PREPARE` and
//! `STREAM_CLEAR` to its app, and `SESSION_END` clears everything streamed.

mod common;

use common::*;
use maestral_protocol::{Message, SongEpoch, SongId, StreamPrepare};
use maestral_sync::{Event, LinkSignal, LocalAction};

fn offer(song: &str, size: u64) -> LocalAction {
    LocalAction::OfferStream {
        song_id: SongId::new(song),
        size_bytes: size,
        title: Some(format!("Song {song}")),
    }
}

fn prepares(events: &[Event]) -> Vec<StreamPrepare> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::StreamPrepare(p) => Some(p.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn the_current_song_is_offered_to_members_now_and_to_each_follower_that_joins_or_rejoins() {
    let mut m = master();
    let mut f = joined("F", &mut m);
    m.local(LocalAction::SetSong { song_id: song("a") });
    pump(&mut m, &mut f);
    f.take_events();
    m.local(offer("a", 1234));
    pump(&mut m, &mut f);
    let got = prepares(&f.take_events());
    assert_eq!(got.len(), 1, "{got:?}");
    let p = &got[0];
    assert_eq!((p.song_id.as_str(), p.size_bytes, p.sha256.as_str()), ("a", 1234, "a"));
    assert_eq!(p.channel, "maestral-stream");
    assert_eq!(p.title.as_deref(), Some("Song a"));
    assert_eq!(p.song_epoch, SongEpoch(1));

    // An offer for a song that is not the current one is stale: nothing goes out.
    m.local(offer("b", 99));
    assert!(m.take_sent().is_empty());

    // A Follower that joins now is offered it right after its accept.
    let mut g = joined("G", &mut m);
    let got = prepares(&g.take_events());
    assert_eq!(got.iter().map(|p| p.song_id.as_str()).collect::<Vec<_>>(), ["a"]);

    // One that rejoins after a drop-out too (its stream resumes from what it has).
    m.link("F", LinkSignal::Down);
    f.link("M", LinkSignal::Down);
    f.take_events();
    connect(&mut f, &mut m);
    assert_eq!(prepares(&f.take_events()).len(), 1, "offered again on the rejoin");

    // A song change withdraws the offer until the app offers the new song.
    m.local(LocalAction::SetSong { song_id: song("b") });
    relay(&mut m, &mut [&mut f, &mut g]);
    let mut h = joined("H", &mut m);
    assert!(prepares(&h.take_events()).is_empty(), "nothing to offer for song b yet");
    m.local(offer("b", 5));
    relay(&mut m, &mut [&mut f, &mut g, &mut h]);
    for d in [&mut f, &mut g, &mut h] {
        let got = prepares(&d.take_events());
        assert_eq!(got.iter().map(|p| p.song_id.as_str()).collect::<Vec<_>>(), ["b"]);
    }
    // The same song again is a new epoch, still streamable: offered with the new epoch.
    m.local(LocalAction::SetSong { song_id: song("b") });
    pump(&mut m, &mut f);
    let got = prepares(&f.take_events());
    assert_eq!(got.iter().map(|p| p.song_epoch).collect::<Vec<_>>(), [SongEpoch(3)]);
}

#[test]
fn a_follower_hands_stream_clear_to_its_app_and_session_end_clears_everything() {
    let mut m = master();
    let mut f = joined("F", &mut m);
    f.take_events();
    f.recv("M", "S", Message::StreamClear(maestral_protocol::StreamClear { song_id: song("a") }));
    let cleared: Vec<_> =
        f.take_events().into_iter().filter(|e| matches!(e, Event::StreamClear { .. })).collect();
    assert_eq!(cleared.len(), 1);
    assert!(matches!(&cleared[0], Event::StreamClear { song_id: Some(s) } if s.as_str() == "a"));
    m.local(LocalAction::EndSession);
    pump(&mut m, &mut f);
    let events = f.take_events();
    assert!(events.iter().any(|e| matches!(e, Event::StreamClear { song_id: None })), "{events:?}");
}

/// Beyond V1: two devices, one book. The device that has the shared song offers it to its
/// partner, now and on every new link; a song change withdraws the offer.
#[test]
fn a_solo_device_offers_the_shared_song_to_its_partner() {
    let mut a = Dev::new("A", maestral_sync::Role::Solo);
    let mut b = Dev::new("B", maestral_sync::Role::Solo);
    connect(&mut a, &mut b);
    a.local(LocalAction::SetSong { song_id: song("x") });
    pump(&mut a, &mut b);
    b.take_events();
    a.local(offer("x", 77));
    pump(&mut a, &mut b);
    let got = prepares(&b.take_events());
    assert_eq!(
        got.iter().map(|p| (p.song_id.as_str(), p.size_bytes)).collect::<Vec<_>>(),
        [("x", 77)]
    );
    // A new link: offered again after the snapshot.
    a.link("B", LinkSignal::Down);
    b.link("A", LinkSignal::Down);
    connect(&mut a, &mut b);
    assert_eq!(prepares(&b.take_events()).len(), 1);
    // B moves to another song: A's offer is for a song no longer shared.
    b.local(LocalAction::SetSong { song_id: song("y") });
    pump(&mut a, &mut b);
    a.link("B", LinkSignal::Down);
    b.link("A", LinkSignal::Down);
    b.take_events();
    connect(&mut a, &mut b);
    assert!(prepares(&b.take_events()).is_empty());
}

fn offer_next(song: &str, size: u64) -> LocalAction {
    LocalAction::OfferNext {
        next: Some(maestral_sync::Offered {
            song_id: SongId::new(song),
            size_bytes: size,
            title: Some(format!("Song {song}")),
        }),
    }
}

fn offered(events: &[Event]) -> Vec<(String, bool)> {
    prepares(events).into_iter().map(|p| (p.song_id.as_str().to_owned(), p.next)).collect()
}

/// Beyond V1 (§8.4): the Master's next piece is offered ahead (`"next": true`) to the members
/// there and to each Follower that joins, after the current song; once the Master moves to it,
/// it is the current song's offer (no new one needed), and the app offers the piece after it.
#[test]
fn the_next_piece_is_offered_ahead_and_is_the_current_offer_once_the_master_moves_to_it() {
    let mut m = master();
    let mut f = joined("F", &mut m);
    m.local(LocalAction::SetSong { song_id: song("a") });
    m.local(offer("a", 10));
    pump(&mut m, &mut f);
    f.take_events();

    m.local(offer_next("b", 20));
    pump(&mut m, &mut f);
    let got = prepares(&f.take_events());
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!((got[0].song_id.as_str(), got[0].size_bytes, got[0].next), ("b", 20, true));
    assert_eq!(got[0].title.as_deref(), Some("Song b"));
    // The same offer again sends nothing; the current song is never "next".
    m.local(offer_next("b", 20));
    m.local(offer_next("a", 10));
    pump(&mut m, &mut f);
    assert!(offered(&f.take_events()).is_empty());
    m.local(offer_next("b", 20));
    pump(&mut m, &mut f);
    f.take_events();

    // A Follower that joins is offered the current song, then the next one.
    let mut g = joined("G", &mut m);
    assert_eq!(offered(&g.take_events()), [("a".to_owned(), false), ("b".to_owned(), true)]);

    // The Master moves to b: b is offered as the current song with the song change, at once.
    m.local(LocalAction::SetSong { song_id: song("b") });
    relay(&mut m, &mut [&mut f, &mut g]);
    for d in [&mut f, &mut g] {
        assert_eq!(offered(&d.take_events()), [("b".to_owned(), false)]);
    }
    // Nothing is "next" now until the app says what comes after b; a joiner gets b only.
    let mut h = joined("H", &mut m);
    assert_eq!(offered(&h.take_events()), [("b".to_owned(), false)]);

    // Withdrawn: a later joiner is offered no next piece.
    m.local(offer_next("c", 30));
    m.local(LocalAction::OfferNext { next: None });
    relay(&mut m, &mut [&mut f, &mut g, &mut h]);
    let mut k = joined("K", &mut m);
    assert_eq!(offered(&k.take_events()), [("b".to_owned(), false)]);

    // A Follower hands a next offer to its app as it came (the app fetches what it lacks).
    assert!(prepares(&f.take_events()).iter().any(|p| p.song_id.as_str() == "c" && p.next));
}
