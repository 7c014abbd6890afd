//! The sync transport's latencies on loopback (127.0.0.1): real WebRTC, real sync threads.
//!
//! `cargo xtask bench sync` (or `cargo bench -p maestral-net --bench sync`). One run of each
//! row; the table goes to stdout and the numbers to `<workspace>/target/bench/sync.json`.
//!
//! 1. offer → open channel: raw `rtc::Link`s, `Link::offer` start to both sides `Open`.
//! 2. Solo round trip: raw `rtc::Link`s, text ping-pong (a real `SET_PAGE` envelope).
//! 3. Master → slowest Follower: real `SyncHandle`s joined by join code; from the Master's
//!    `SetPage` to the last Follower's `Show` of that page, paced one broadcast at a time.
//! 4. 100 Followers join: 100 `Join` commands sent at once, until all `FOLLOWER_CONNECTED_FOLLOW`.
//! 5. dead link: one side's tokio runtime vanishes (`shutdown_background`, no close); the time
//!    until the other side's link reports `Degraded`, then `Closed`.
//! 6. rejoin: Master `Offline(true)`, the Follower disconnected for 3 s (backoff at its cap),
//!    `Offline(false)`, until the Follower is `FOLLOWER_CONNECTED_FOLLOW` again.
//! 7. the Master's own CPU per turn, N = 100 and 250: the bench runs itself again as a second
//!    process (`MAESTRAL_BENCH_FOLLOWERS=N`) hosting the Followers, which says on stdout when
//!    all show each page; this process, the Master alone, samples its own CPU around the turns.
//!    Rows 3 and 4 also run at N = 250.
//!
//! Every device here shares one machine: with 100 Followers that is 101 sync threads, each with
//! a 2-worker tokio runtime, so the Choir rows measure this machine's scheduler as much as the
//! network code. Every wait is bounded; a row that cannot finish says so instead of hanging.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use maestral_bench::{Load, LoadPer, Summary, ms, write_report};
use maestral_net::joincode::JoinCode;
use maestral_net::rtc::{Link, LinkEvent, RtcConfig};
use maestral_net::{Fault, SyncCommand, SyncConfig, SyncEvent, SyncHandle};
use maestral_protocol::{
    ChoirSetPage, Envelope, Message, PageRevision, SessionId, SongEpoch, SongId,
};
use maestral_sync::{Event, LocalAction, Phase, Role};
use serde_json::{Value, json};
use tokio::runtime::Runtime;
use tokio::sync::mpsc::UnboundedReceiver;

const LOCAL: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
/// Bound on any single wait on a link event.
const WAIT: Duration = Duration::from_secs(10);

const OPEN_RUNS: usize = 30;
const ROUND_TRIPS: usize = 1000;
const BROADCASTS: u32 = 200;
/// Pause after every Follower has shown a page, before the next broadcast.
const BROADCAST_GAP: Duration = Duration::from_millis(3);
const FOLLOWER_COUNTS: [usize; 4] = [1, 32, 100, 250];
/// Followers of the Master-CPU rows, each run in a second process.
const MASTER_CPU_COUNTS: [usize; 2] = [100, 250];
/// Set in the second process of the Master-CPU rows: how many Followers it hosts.
const FOLLOWERS_PROCESS: &str = "MAESTRAL_BENCH_FOLLOWERS";
/// Pairs whose one side vanishes (half the offerer, half the answerer), all at once.
const DEAD_PAIRS: usize = 16;
const REJOINS: usize = 10;
/// How long the Follower stays cut off before the Master returns.
const OFFLINE_FOR: Duration = Duration::from_secs(3);

// Goals.
const GOAL_OPEN_MS: f64 = 80.0;
const GOAL_BROADCAST_P99_MS: f64 = 5.0;
const GOAL_JOIN_100_MS: f64 = 3000.0;
const GOAL_DEAD_MS: f64 = 1000.0;
const GOAL_REJOIN_MS: f64 = 1000.0;

type Events = UnboundedReceiver<LinkEvent>;

/// A sync thread's configuration on loopback that asks and answers no locate query (nothing
/// broadcast onto the machine's LAN).
fn confined(id: String) -> SyncConfig {
    let mut config = SyncConfig::new(id, LOCAL);
    config.locate = maestral_net::LocateConfig::Off;
    config
}

fn cfg() -> RtcConfig {
    RtcConfig::new(LOCAL)
}

/// One line of the table.
struct Row {
    name: String,
    value: String,
    goal: String,
    /// `None`: for reference, no goal.
    met: Option<bool>,
    json: Value,
}

fn row(name: impl Into<String>, value: String, goal: &str, met: Option<bool>, json: Value) -> Row {
    Row { name: name.into(), value, goal: goal.into(), met, json }
}

fn not_measured(name: impl Into<String>, why: String, goal: &str) -> Row {
    let json = json!({ "error": why });
    Row {
        name: name.into(),
        value: format!("not measured: {why}"),
        goal: goal.into(),
        met: Some(false),
        json,
    }
}

// ---- raw links -------------------------------------------------------------------------------

async fn next(events: &mut Events) -> Result<LinkEvent, String> {
    match tokio::time::timeout(WAIT, events.recv()).await {
        Ok(Some(e)) => Ok(e),
        Ok(None) => Err("the link's events ended".into()),
        Err(_) => Err(format!("no link event within {WAIT:?}")),
    }
}

/// The next event that is not a link-quality change.
async fn next_message(events: &mut Events) -> Result<LinkEvent, String> {
    loop {
        match next(events).await? {
            LinkEvent::Degraded | LinkEvent::Recovered => {}
            other => return Ok(other),
        }
    }
}

async fn expect_open(events: &mut Events) -> Result<(), String> {
    match next_message(events).await? {
        LinkEvent::Open => Ok(()),
        other => Err(format!("expected Open, got {other:?}")),
    }
}

/// Offer, answer, accept, both open: the whole set-up, timed.
async fn connect() -> Result<(Link, Events, Link, Events, Duration), String> {
    let start = Instant::now();
    let (a, offer, mut a_ev) = Link::offer(&cfg(), None).await.map_err(|e| e.to_string())?;
    let (b, answer, mut b_ev) =
        Link::answer(&cfg(), None, &offer).await.map_err(|e| e.to_string())?;
    a.accept_answer(&answer).await.map_err(|e| e.to_string())?;
    let (ra, rb) = tokio::join!(expect_open(&mut a_ev), expect_open(&mut b_ev));
    let took = start.elapsed();
    ra?;
    rb?;
    Ok((a, a_ev, b, b_ev, took))
}

async fn close_pair(a: &Link, b: &Link) {
    tokio::join!(a.close(), b.close());
}

/// Row 1.
fn offer_to_open(rt: &Runtime) -> Row {
    const NAME: &str = "offer → open channel (raw Link)";
    const GOAL: &str = "p50 ≤ 80 ms";
    let r: Result<Vec<f64>, String> = rt.block_on(async {
        let mut times = Vec::new();
        // One warm-up, not counted.
        for i in 0..=OPEN_RUNS {
            let (a, _, b, _, took) = connect().await?;
            if i > 0 {
                times.push(ms(took));
            }
            close_pair(&a, &b).await;
        }
        Ok(times)
    });
    match r.map(|t| Summary::of(&t)) {
        Ok(Some(s)) => row(
            NAME,
            format!(
                "p50 {:.1} ms (min {:.1}, p99 {:.1}, max {:.1}; {} runs)",
                s.p50, s.min, s.p99, s.max, s.n
            ),
            GOAL,
            Some(s.p50 <= GOAL_OPEN_MS),
            s.json_ms(),
        ),
        Ok(None) => not_measured(NAME, "no runs".into(), GOAL),
        Err(e) => not_measured(NAME, e, GOAL),
    }
}

/// Row 2: ping-pong between two raw links on one 2-worker runtime.
fn solo_round_trip(rt: &Runtime) -> Row {
    const NAME: &str = "Solo round trip (raw Link ping-pong)";
    let text = set_page_text(42);
    let r: Result<Vec<f64>, String> = rt.block_on(async {
        let (a, mut a_ev, b, mut b_ev, _) = connect().await?;
        let mut rtts = Vec::with_capacity(ROUND_TRIPS);
        // 50 warm-up round trips, not counted.
        for i in 0..ROUND_TRIPS + 50 {
            let start = Instant::now();
            a.send_text(&text).await.map_err(|e| e.to_string())?;
            let LinkEvent::Text(got) = next_message(&mut b_ev).await? else {
                return Err("B: expected a text message".into());
            };
            b.send_text(&got).await.map_err(|e| e.to_string())?;
            let LinkEvent::Text(back) = next_message(&mut a_ev).await? else {
                return Err("A: expected a text message".into());
            };
            let took = start.elapsed();
            if back != text {
                return Err("the echo differs from what was sent".into());
            }
            if i >= 50 {
                rtts.push(ms(took));
            }
        }
        close_pair(&a, &b).await;
        Ok(rtts)
    });
    match r.map(|t| Summary::of(&t)) {
        Ok(Some(s)) => row(
            NAME,
            format!(
                "p50 {:.3} ms, p99 {:.3} ms (max {:.3}; {} round trips, {} B)",
                s.p50,
                s.p99,
                s.max,
                s.n,
                text.len()
            ),
            "(reference)",
            None,
            s.json_ms(),
        ),
        Ok(None) => not_measured(NAME, "no round trips".into(), "(reference)"),
        Err(e) => not_measured(NAME, e, "(reference)"),
    }
}

/// Last-arrival and all-sent times (ms), and the load, of the raw fan-out.
type FanOut = (Vec<f64>, Vec<f64>, Option<LoadPer>);
/// Rejoin times, offline-to-disconnected times (ms), and errors seen.
type Rejoins = (Vec<f64>, Vec<f64>, Vec<String>);

fn set_page_text(k: u32) -> String {
    Envelope::new(
        SessionId::new("bench-session"),
        "M".into(),
        1_735_689_600_000 + u64::from(k),
        Message::ChoirSetPage(ChoirSetPage {
            song_epoch: SongEpoch(1),
            page_revision: PageRevision(u64::from(k)),
            page_index: k,
        }),
    )
    .encode()
}

/// Reference for row 3: the same fan-out without the sync threads. `n` raw links, the sending
/// ends on the bench's runtime with one writer task per link (as the sync thread has), the
/// receiving ends all on one other 2-worker runtime. Paced like row 3; measures the time to the
/// last arrival, and to the last `send_text` returning on the sending side.
fn raw_fanout(rt: &Runtime, n: usize) -> Row {
    let name = format!("raw Link fan-out x{n} (no sync threads)");
    const GOAL: &str = "(reference for row 3)";
    let far =
        match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
            Ok(r) => r,
            Err(e) => return not_measured(name, e.to_string(), GOAL),
        };
    let farh = far.handle().clone();
    let r: Result<FanOut, String> = rt.block_on(async move {
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..n {
            let farh = farh.clone();
            set.spawn(async move {
                let (a, offer, mut a_ev) =
                    Link::offer(&cfg(), None).await.map_err(|e| e.to_string())?;
                let (b, answer, mut b_ev) = farh
                    .spawn(async move { Link::answer(&cfg(), None, &offer).await })
                    .await
                    .map_err(|e| e.to_string())?
                    .map_err(|e| e.to_string())?;
                a.accept_answer(&answer).await.map_err(|e| e.to_string())?;
                expect_open(&mut a_ev).await?;
                expect_open(&mut b_ev).await?;
                Ok::<_, String>((a, a_ev, b, b_ev))
            });
        }
        let mut pairs = Vec::with_capacity(n);
        let mut failed = None;
        while let Some(p) = set.join_next().await {
            match p.map_err(|e| e.to_string()).and_then(|r| r) {
                Ok(p) => pairs.push(p),
                Err(e) => failed = Some(e),
            }
        }
        let close_all = |pairs: Vec<(Link, Link)>| async move {
            let mut closing = tokio::task::JoinSet::new();
            for (a, b) in pairs {
                closing.spawn(async move { close_pair(&a, &b).await });
            }
            while closing.join_next().await.is_some() {}
        };
        if let Some(e) = failed {
            close_all(pairs.into_iter().map(|(a, _, b, _)| (a, b)).collect()).await;
            return Err(format!("setting up the links: {e}"));
        }
        let (arrived_tx, mut arrived) = tokio::sync::mpsc::unbounded_channel();
        let (sent_tx, mut sent) = tokio::sync::mpsc::unbounded_channel();
        let mut writers = Vec::with_capacity(n);
        let mut keep = Vec::with_capacity(n);
        for (a, a_ev, b, b_ev) in pairs {
            let mut b_ev = b_ev;
            let arrived_tx = arrived_tx.clone();
            farh.spawn(async move {
                while let Some(ev) = b_ev.recv().await {
                    if let LinkEvent::Text(t) = ev
                        && arrived_tx.send((Instant::now(), t)).is_err()
                    {
                        break;
                    }
                }
            });
            let (w_tx, mut w_rx) = tokio::sync::mpsc::unbounded_channel::<Arc<str>>();
            let (writer, sent_tx) = (a.clone(), sent_tx.clone());
            tokio::spawn(async move {
                while let Some(text) = w_rx.recv().await {
                    if writer.send_text(&text).await.is_err() {
                        break;
                    }
                    let _ = sent_tx.send(Instant::now());
                }
            });
            writers.push(w_tx);
            // Nothing more is read on the sending side.
            drop(a_ev);
            keep.push((a, b));
        }
        let (mut lat, mut sent_all) = (Vec::new(), Vec::new());
        let mut result = Ok(());
        let load_before = Load::sample();
        let turns_start = Instant::now();
        for k in 1..=BROADCASTS {
            tokio::time::sleep(BROADCAST_GAP).await;
            let text: Arc<str> = set_page_text(k).into();
            let start = Instant::now();
            for w in &writers {
                let _ = w.send(Arc::clone(&text));
            }
            let (mut got, mut done) = (0, 0);
            let (mut last_got, mut last_done) = (start, start);
            let waited = tokio::time::timeout(Duration::from_secs(10), async {
                while got < n || done < n {
                    tokio::select! {
                        Some((t, msg)) = arrived.recv(), if got < n => {
                            if *msg == *text {
                                got += 1;
                                last_got = last_got.max(t);
                            }
                        }
                        Some(t) = sent.recv(), if done < n => {
                            done += 1;
                            last_done = last_done.max(t);
                        }
                    }
                }
            })
            .await;
            if waited.is_err() {
                result = Err(format!("page {k}: {got}/{n} arrived, {done}/{n} sent within 10 s"));
                break;
            }
            lat.push(ms(last_got - start));
            sent_all.push(ms(last_done - start));
        }
        let load = Load::per(load_before, Load::sample(), turns_start.elapsed(), lat.len());
        drop(writers);
        close_all(keep).await;
        result.map(|()| (lat, sent_all, load))
    });
    far.shutdown_timeout(Duration::from_secs(2));
    match r {
        Ok((lat, sent, load)) => match (Summary::of(&lat), Summary::of(&sent)) {
            (Some(s), Some(w)) => {
                let mut j = s.json_ms();
                j["sender_all_sent"] = w.json_ms();
                j["load"] = load.as_ref().map_or(Value::Null, LoadPer::json);
                row(
                    name,
                    format!(
                        "last arrival p50 {:.2} ms, p99 {:.2} ms; all {n} send_text done p50 {:.2} ms, p99 {:.2}{}",
                        s.p50,
                        s.p99,
                        w.p50,
                        w.p99,
                        load.as_ref().map(LoadPer::short).unwrap_or_default()
                    ),
                    GOAL,
                    None,
                    j,
                )
            }
            _ => not_measured(name, "no broadcasts".into(), GOAL),
        },
        Err(e) => not_measured(name, e, GOAL),
    }
}

/// Row 5: pairs whose one side's runtime is shut down without closing anything.
fn dead_link(rt: &Runtime) -> (Row, Row) {
    const GOAL: &str = "Degraded ≤ 1 s";
    let r: Result<(Vec<f64>, Vec<f64>), String> = (|| {
        let mut kills: Vec<(Runtime, Link)> = Vec::new();
        let mut watched: Vec<(Link, Events)> = Vec::new();
        for i in 0..DEAD_PAIRS {
            let doomed = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            let offerer_dies = i % 2 == 0;
            let pair = rt.block_on(async {
                // The doomed side's link is created (and driven) on its own runtime.
                if offerer_dies {
                    let (a, offer, mut a_ev) = doomed
                        .spawn(async { Link::offer(&cfg(), None).await })
                        .await
                        .map_err(|e| e.to_string())?
                        .map_err(|e| e.to_string())?;
                    let (b, answer, mut b_ev) =
                        Link::answer(&cfg(), None, &offer).await.map_err(|e| e.to_string())?;
                    let a2 = a.clone();
                    doomed
                        .spawn(async move { a2.accept_answer(&answer).await })
                        .await
                        .map_err(|e| e.to_string())?
                        .map_err(|e| e.to_string())?;
                    expect_open(&mut a_ev).await?;
                    expect_open(&mut b_ev).await?;
                    Ok::<_, String>((a, b, b_ev))
                } else {
                    let (a, offer, mut a_ev) =
                        Link::offer(&cfg(), None).await.map_err(|e| e.to_string())?;
                    let (b, answer, mut b_ev) = doomed
                        .spawn(async move { Link::answer(&cfg(), None, &offer).await })
                        .await
                        .map_err(|e| e.to_string())?
                        .map_err(|e| e.to_string())?;
                    a.accept_answer(&answer).await.map_err(|e| e.to_string())?;
                    expect_open(&mut a_ev).await?;
                    expect_open(&mut b_ev).await?;
                    Ok((b, a, a_ev))
                }
            })?;
            let (dies, lives, lives_ev) = pair;
            kills.push((doomed, dies));
            watched.push((lives, lives_ev));
        }
        // Let keepalives run for a moment, as on a settled link.
        std::thread::sleep(Duration::from_millis(500));
        let mut watchers = Vec::new();
        let mut dead_links = Vec::new();
        for ((doomed, dies), (lives, mut ev)) in kills.into_iter().zip(watched) {
            let t0 = Instant::now();
            doomed.shutdown_background();
            dead_links.push(dies);
            watchers.push(rt.spawn(async move {
                let (mut degraded, mut closed) = (None, None);
                let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
                while closed.is_none() {
                    match tokio::time::timeout_at(deadline, ev.recv()).await {
                        Ok(Some(LinkEvent::Degraded)) if degraded.is_none() => {
                            degraded = Some(t0.elapsed())
                        }
                        Ok(Some(LinkEvent::Closed) | None) => closed = Some(t0.elapsed()),
                        Ok(Some(_)) => {}
                        Err(_) => break,
                    }
                }
                lives.close().await;
                (degraded, closed)
            }));
        }
        let (mut degraded, mut closed) = (Vec::new(), Vec::new());
        for w in watchers {
            let (d, c) = rt.block_on(w).map_err(|e| e.to_string())?;
            degraded.push(d.map_or(f64::NAN, ms));
            closed.push(c.map_or(f64::NAN, ms));
        }
        // Their runtime is gone; dropping them closes nothing (the close task is not run).
        drop(dead_links);
        Ok((degraded, closed))
    })();
    let name_d = "dead link → Degraded (raw Link, runtime killed)";
    let name_c = "dead link → Closed (same links)";
    match r {
        Ok((degraded, closed)) => (
            dead_row(name_d, &degraded, "Degraded", GOAL, Some(GOAL_DEAD_MS)),
            dead_row(name_c, &closed, "Closed", "(reference)", None),
        ),
        Err(e) => (not_measured(name_d, e.clone(), GOAL), not_measured(name_c, e, "(reference)")),
    }
}

/// A row of the dead-link times (NaN: the link never reported `state`); with a goal, every
/// link must report it within `goal_ms`.
fn dead_row(name: &str, samples: &[f64], state: &str, goal: &str, goal_ms: Option<f64>) -> Row {
    let missing = samples.iter().filter(|x| x.is_nan()).count();
    let seen: Vec<f64> = samples.iter().copied().filter(|x| !x.is_nan()).collect();
    let Some(s) = Summary::of(&seen) else {
        return not_measured(name, format!("no link reported {state}"), goal);
    };
    let never = if missing > 0 { format!(", {missing} never {state}") } else { String::new() };
    row(
        name,
        format!(
            "p50 {:.0} ms, max {:.0} ms (min {:.0}; {} links{never})",
            s.p50, s.max, s.min, s.n
        ),
        goal,
        goal_ms.map(|g| missing == 0 && s.max <= g),
        json!({ "stats": s.json_ms(), "never": missing, "samples_ms": samples }),
    )
}

// ---- sync threads ----------------------------------------------------------------------------

/// Index 0 is the Master, 1..=N the Followers.
type Stamped = (usize, Instant, SyncEvent);

/// A Master and its Followers, every event timestamped the moment its receiver yields it (one
/// reader thread per device, blocked in `recv`), funnelled into one channel.
struct Choir {
    /// `None` in the Followers' process of the Master CPU rows (the Master is in the parent).
    master: Option<SyncHandle>,
    followers: Vec<SyncHandle>,
    events: Receiver<Stamped>,
    readers: Vec<std::thread::JoinHandle<()>>,
    code: JoinCode,
    /// Each Follower's last phase.
    phase: Vec<Option<Phase>>,
    errors: Vec<String>,
}

/// One thread reading the events of sync threads `first..`, stamped as they come: a Choir's
/// Followers are read by one thread, not one each (100 reader threads woken by every turn were
/// the benchmark's own cost, on the cores the sync threads need). Ends when every sync thread
/// has stopped.
fn read_events(
    first: usize,
    rxs: Vec<Receiver<SyncEvent>>,
    out: Sender<Stamped>,
) -> std::thread::JoinHandle<()> {
    std::thread::Builder::new()
        .name("bench-readers".into())
        .spawn(move || {
            // It stamps what is measured: a short slice, as the control thread has, so that it
            // runs when it wakes rather than at the end of a busy thread's slice.
            maestral_net::sync::short_slice();
            let mut select = crossbeam_channel::Select::new();
            for rx in &rxs {
                select.recv(rx);
            }
            let mut live = rxs.len();
            while live > 0 {
                let op = select.select();
                let i = op.index();
                match op.recv(&rxs[i]) {
                    Ok(e) => {
                        if out.send((first + i, Instant::now(), e)).is_err() {
                            break;
                        }
                    }
                    Err(_) => {
                        select.remove(i);
                        live -= 1;
                    }
                }
            }
        })
        .expect("reader thread starts")
}

/// Follower threads 1..=n, with the thread that reads their events.
fn start_followers(
    n: usize,
    tx: &Sender<Stamped>,
) -> Result<(Vec<SyncHandle>, Vec<std::thread::JoinHandle<()>>), String> {
    let mut followers = Vec::with_capacity(n);
    for i in 1..=n {
        let h = SyncHandle::start(Role::Follower, confined(format!("F{i:03}")), || {})
            .map_err(|e| format!("Follower thread {i}: {e}"))?;
        followers.push(h);
    }
    let rxs = followers.iter().map(|h| h.events().clone()).collect();
    Ok((followers, vec![read_events(1, rxs, tx.clone())]))
}

impl Choir {
    /// A Master with a running session, and `n` Follower threads started but not joined.
    fn start(n: usize) -> Result<Choir, String> {
        let (tx, events) = crossbeam_channel::unbounded();
        let master = SyncHandle::start(Role::Master, confined("M".into()), || {})
            .map_err(|e| format!("Master thread: {e}"))?;
        let mut readers = vec![read_events(0, vec![master.events().clone()], tx.clone())];
        master.send(SyncCommand::StartChoir { listen: SocketAddr::new(LOCAL, 0) });
        let (followers, more) = start_followers(n, &tx)?;
        readers.extend(more);
        let mut code = None;
        let mut active = false;
        let deadline = Instant::now() + Duration::from_secs(10);
        while code.is_none() || !active {
            match events.recv_deadline(deadline) {
                Ok((0, _, SyncEvent::JoinCode(c))) => {
                    code = Some(c.parse::<JoinCode>().map_err(|e| e.to_string())?)
                }
                Ok((0, _, SyncEvent::Engine(Event::Phase(Phase::MasterSessionActive)))) => {
                    active = true
                }
                Ok((0, _, SyncEvent::Error(e))) => return Err(format!("Master: {e}")),
                Ok(_) => {}
                Err(_) => return Err("the Master did not start its session within 10 s".into()),
            }
        }
        Ok(Choir {
            master: Some(master),
            followers,
            events,
            readers,
            code: code.expect("set above"),
            phase: vec![None; n + 1],
            errors: Vec::new(),
        })
    }

    /// `n` Follower threads started but not joined, for the Master's session at `code` (run
    /// by another process).
    fn followers_of(n: usize, code: JoinCode) -> Result<Choir, String> {
        let (tx, events) = crossbeam_channel::unbounded();
        let (followers, readers) = start_followers(n, &tx)?;
        Ok(Choir {
            master: None,
            followers,
            events,
            readers,
            code,
            phase: vec![None; n + 1],
            errors: Vec::new(),
        })
    }

    fn send_master(&self, command: SyncCommand) {
        if let Some(m) = &self.master {
            m.send(command);
        }
    }

    fn n(&self) -> usize {
        self.followers.len()
    }

    fn note(&mut self, (i, _, e): &Stamped) {
        match e {
            SyncEvent::Engine(Event::Phase(p)) => self.phase[*i] = Some(*p),
            SyncEvent::Error(e) if self.errors.len() < 20 => self
                .errors
                .push(format!("{}: {e}", if *i == 0 { "M".into() } else { format!("F{i:03}") })),
            _ => {}
        }
    }

    /// Sends every Follower its `Join` at once; returns the time until the last is
    /// `FOLLOWER_CONNECTED_FOLLOW`, and how many first joins failed and were sent again.
    fn join_all(&mut self) -> Result<(Duration, usize), String> {
        let start = Instant::now();
        for f in &self.followers {
            f.send(SyncCommand::Join(self.code.clone()));
        }
        let mut joined = vec![false; self.n() + 1];
        joined[0] = true;
        // Set once a Follower says it is joining, so an idle phase from before does not count.
        let mut joining = vec![false; self.n() + 1];
        let mut left = self.n();
        let mut retries = 0;
        let deadline = start + Duration::from_secs(60);
        while left > 0 {
            let ev = self.events.recv_deadline(deadline).map_err(|_| {
                format!("only {}/{} Followers joined within 60 s", self.n() - left, self.n())
            })?;
            self.note(&ev);
            let (i, t, e) = ev;
            match e {
                SyncEvent::Engine(Event::Phase(Phase::FollowerConnectedFollow)) if !joined[i] => {
                    joined[i] = true;
                    left -= 1;
                    if left == 0 {
                        return Ok((t - start, retries));
                    }
                }
                // A first join that failed is not retried by the thread: the user would scan
                // again. Count it and join again.
                SyncEvent::Engine(Event::Phase(Phase::FollowerJoining)) => joining[i] = true,
                SyncEvent::Engine(Event::Phase(Phase::FollowerIdleLocal))
                    if i > 0 && !joined[i] && joining[i] =>
                {
                    joining[i] = false;
                    retries += 1;
                    self.followers[i - 1].send(SyncCommand::Join(self.code.clone()));
                }
                _ => {}
            }
        }
        Ok((start.elapsed(), retries))
    }

    /// Sends `action` from the Master and waits until every Follower shows a view satisfying
    /// `shown`; returns the time from the send to the last Follower's `Show`.
    fn broadcast(
        &mut self,
        action: LocalAction,
        shown: impl Fn(&maestral_sync::View) -> bool,
        timeout: Duration,
    ) -> Result<(Duration, Duration), String> {
        let start = Instant::now();
        if let Some(m) = &self.master {
            m.send(SyncCommand::Local(action));
        }
        self.wait_shown(start, shown, timeout)
    }

    /// Waits until every Follower shows a view satisfying `shown`; returns the times from
    /// `start` to the first and to the last Follower's `Show`.
    fn wait_shown(
        &mut self,
        start: Instant,
        shown: impl Fn(&maestral_sync::View) -> bool,
        timeout: Duration,
    ) -> Result<(Duration, Duration), String> {
        let mut got = vec![false; self.n() + 1];
        got[0] = true;
        let mut left = self.n();
        let deadline = start + timeout;
        let (mut first, mut last) = (None, start);
        while left > 0 {
            let ev = self.events.recv_deadline(deadline).map_err(|_| {
                format!("{left}/{} Followers did not show the page within {timeout:?}", self.n())
            })?;
            self.note(&ev);
            if let (i, t, SyncEvent::Engine(Event::Show { view: v, .. })) = &ev
                && !got[*i]
                && shown(v)
            {
                got[*i] = true;
                left -= 1;
                last = last.max(*t);
                first = Some(first.map_or(*t, |f: Instant| f.min(*t)));
            }
        }
        Ok((first.unwrap_or(start) - start, last - start))
    }

    /// Waits until Follower `i`'s next phase event is `want`; returns its timestamp.
    fn wait_phase(&mut self, i: usize, want: Phase, timeout: Duration) -> Result<Instant, String> {
        let deadline = Instant::now() + timeout;
        loop {
            let ev = self
                .events
                .recv_deadline(deadline)
                .map_err(|_| format!("F{i:03}: no {} within {timeout:?}", want.as_str()))?;
            self.note(&ev);
            if let (j, t, SyncEvent::Engine(Event::Phase(p))) = &ev
                && *j == i
                && *p == want
            {
                return Ok(*t);
            }
        }
    }

    /// Drains what has arrived, without waiting.
    fn drain(&mut self) {
        loop {
            match self.events.recv_timeout(Duration::ZERO) {
                Ok(ev) => self.note(&ev),
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => return,
            }
        }
    }

    /// Followers first (they leave cleanly), all in parallel, then the Master.
    fn shutdown(self) -> Duration {
        let start = Instant::now();
        for f in &self.followers {
            f.send(SyncCommand::Shutdown);
        }
        for f in self.followers {
            f.shutdown();
        }
        if let Some(m) = self.master {
            m.shutdown();
        }
        drop(self.events);
        for r in self.readers {
            let _ = r.join();
        }
        start.elapsed()
    }
}

fn song() -> LocalAction {
    LocalAction::SetSong { song_id: Some(SongId::new("bench")) }
}

/// Rows 3 and 4 for `n` Followers: join them all at once, then `BROADCASTS` paced page turns.
fn choir(n: usize) -> (Option<Row>, Row, Value) {
    let name_b = format!("Master → slowest Follower, N = {n}");
    let name_j = format!("{n} Followers all joined (Joins sent at once)");
    let goal_b = if n == 100 { "p99 ≤ 5 ms" } else { "(p99 ≤ 5 ms at N=100)" };
    let goal_j = if n == 100 { "≤ 3 s" } else { "(reference)" };
    let t = Instant::now();
    let mut c = match Choir::start(n) {
        Ok(c) => c,
        Err(e) => {
            let j = if n > 1 { Some(not_measured(name_j, e.clone(), goal_j)) } else { None };
            return (j, not_measured(name_b, e, goal_b), json!({ "error": "start failed" }));
        }
    };
    let started = t.elapsed();
    let mut extra = json!({ "followers": n, "threads_started_ms": ms(started) });
    let join = c.join_all();
    let join_row = match &join {
        Ok((took, retries)) => {
            extra["join_all_ms"] = json!(ms(*took));
            extra["first_joins_retried"] = json!(retries);
            let note = if *retries > 0 {
                format!(" ({retries} failed first joins sent again)")
            } else {
                String::new()
            };
            row(
                name_j.clone(),
                format!("{:.0} ms{note}", ms(*took)),
                goal_j,
                (n == 100).then_some(ms(*took) <= GOAL_JOIN_100_MS && *retries == 0),
                json!({ "ms": ms(*took), "first_joins_retried": retries }),
            )
        }
        Err(e) => not_measured(name_j.clone(), e.clone(), goal_j),
    };
    let broadcast_row = if let Err(e) = &join {
        not_measured(name_b, format!("joining failed: {e}"), goal_b)
    } else {
        let mut lat = Vec::with_capacity(BROADCASTS as usize);
        let mut first = Vec::with_capacity(BROADCASTS as usize);
        let mut failure = None;
        match c.broadcast(
            song(),
            |v| v.song_id.as_ref().is_some_and(|s| s.as_str() == "bench"),
            Duration::from_secs(10),
        ) {
            Ok((_, took)) => extra["set_song_ms"] = json!(ms(took)),
            Err(e) => failure = Some(format!("SetSong: {e}")),
        }
        let load_before = Load::sample();
        let turns_start = Instant::now();
        if failure.is_none() {
            for k in 1..=BROADCASTS {
                std::thread::sleep(BROADCAST_GAP);
                match c.broadcast(
                    LocalAction::SetPage { page: k },
                    |v| v.page_index == k,
                    Duration::from_secs(10),
                ) {
                    Ok((f, took)) => {
                        first.push(ms(f));
                        lat.push(ms(took));
                    }
                    Err(e) => {
                        failure = Some(format!("page {k}: {e}"));
                        break;
                    }
                }
            }
        }
        let load = Load::per(load_before, Load::sample(), turns_start.elapsed(), lat.len());
        match (Summary::of(&lat), failure) {
            (Some(s), failure) => {
                let met = n == 100 && failure.is_none() && s.p99 <= GOAL_BROADCAST_P99_MS;
                let mut j = s.json_ms();
                if let Some(f) = &failure {
                    j["failure"] = json!(f);
                }
                let fs = Summary::of(&first);
                if let Some(fs) = &fs {
                    j["first_follower"] = fs.json_ms();
                }
                j["load"] = load.as_ref().map_or(Value::Null, LoadPer::json);
                row(
                    name_b,
                    format!(
                        "p50 {:.2} ms, p99 {:.2} ms (max {:.2}; {} turns; first F p50 {:.2}){}{}",
                        s.p50,
                        s.p99,
                        s.max,
                        s.n,
                        fs.map_or(f64::NAN, |f| f.p50),
                        load.as_ref().map(LoadPer::short).unwrap_or_default(),
                        failure.map(|f| format!("; STOPPED: {f}")).unwrap_or_default()
                    ),
                    goal_b,
                    (n == 100).then_some(met),
                    j,
                )
            }
            (None, Some(f)) => not_measured(name_b, f, goal_b),
            (None, None) => not_measured(name_b, "no broadcasts".into(), goal_b),
        }
    };
    c.drain();
    extra["errors"] = json!(c.errors);
    extra["shutdown_ms"] = json!(ms(c.shutdown()));
    // N = 1 joins are not a row of their own (rejoin and open rows cover one link).
    let join_row = if n > 1 { Some(join_row) } else { None };
    (join_row, broadcast_row, extra)
}

/// Row 6.
fn rejoin() -> Row {
    const NAME: &str = "rejoin after the Master returns (N = 1)";
    const GOAL: &str = "≤ 1 s";
    let r: Result<Rejoins, String> = (|| {
        let mut c = Choir::start(1)?;
        c.join_all()?;
        c.broadcast(song(), |v| v.song_id.is_some(), Duration::from_secs(10))?;
        let (mut rejoins, mut noticed) = (Vec::new(), Vec::new());
        for _ in 0..REJOINS {
            let off = Instant::now();
            c.send_master(SyncCommand::Fault(Fault::Offline(true)));
            let t = c.wait_phase(1, Phase::FollowerDisconnectedLocal, Duration::from_secs(10))?;
            noticed.push(ms(t - off));
            std::thread::sleep(OFFLINE_FOR);
            c.drain();
            let on = Instant::now();
            c.send_master(SyncCommand::Fault(Fault::Offline(false)));
            let t = c.wait_phase(1, Phase::FollowerConnectedFollow, Duration::from_secs(10))?;
            rejoins.push(ms(t - on));
            // Settle: the Master has the Follower back before the next cut.
            std::thread::sleep(Duration::from_millis(200));
        }
        c.drain();
        let errors = c.errors.clone();
        c.shutdown();
        Ok((rejoins, noticed, errors))
    })();
    match r {
        Ok((rejoins, noticed, errors)) => match (Summary::of(&rejoins), Summary::of(&noticed)) {
            (Some(s), Some(n)) => row(
                NAME,
                format!(
                    "p50 {:.0} ms, max {:.0} ms (min {:.0}; {} rejoins after {} s away)",
                    s.p50,
                    s.max,
                    s.min,
                    s.n,
                    OFFLINE_FOR.as_secs()
                ),
                GOAL,
                Some(s.max <= GOAL_REJOIN_MS),
                json!({ "rejoin": s.json_ms(), "rejoin_samples_ms": rejoins,
                        "offline_to_follower_disconnected": n.json_ms(),
                        "errors_seen": errors.len() }),
            ),
            _ => not_measured(NAME, "no rejoins".into(), GOAL),
        },
        Err(e) => not_measured(NAME, e, GOAL),
    }
}

// ---- the Master alone in its process -------------------------------------------------------

/// The second process of the Master-CPU rows: `n` Followers of the session whose join code is
/// the first line of stdin. Says on stdout `joined <ms> <retries>`, then `shown <k>` once all
/// show step k (0: the song, then pages 1..=BROADCASTS, as `master_cpu` sends them), or
/// `error <why>`; ends when stdin closes.
fn followers_process(n: usize) {
    use std::io::BufRead;
    let mut lines = std::io::stdin().lock().lines();
    let code = lines.next().and_then(Result::ok).unwrap_or_default();
    let run = |code: &str| -> Result<Choir, String> {
        let code = code.trim().parse::<JoinCode>().map_err(|e| e.to_string())?;
        let mut c = Choir::followers_of(n, code)?;
        let (took, retries) = c.join_all()?;
        println!("joined {} {retries}", ms(took));
        let wait = Duration::from_secs(10);
        c.wait_shown(Instant::now(), |v| v.song_id.is_some(), wait)?;
        println!("shown 0");
        for k in 1..=BROADCASTS {
            c.wait_shown(Instant::now(), |v| v.page_index == k, wait)?;
            println!("shown {k}");
        }
        Ok(c)
    };
    match run(&code) {
        Ok(c) => {
            // Stay joined until the Master's side is done (stdin closes), then leave.
            for _ in lines {}
            c.shutdown();
        }
        Err(e) => println!("error {e}"),
    }
}

/// The Followers' process, with its stdout as a channel of lines (read on a thread, so every
/// wait is bounded).
struct FollowersProcess {
    child: std::process::Child,
    lines: Receiver<String>,
}

impl FollowersProcess {
    fn start(n: usize, code: &JoinCode) -> Result<FollowersProcess, String> {
        use std::io::{BufRead, Write};
        use std::process::{Command, Stdio};
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let mut child = Command::new(exe)
            .env(FOLLOWERS_PROCESS, n.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("starting the Followers' process: {e}"))?;
        let stdin = child.stdin.as_mut().ok_or("no stdin")?;
        writeln!(stdin, "{code}").map_err(|e| e.to_string())?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let (tx, lines) = crossbeam_channel::unbounded();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(FollowersProcess { child, lines })
    }

    /// The next line, which must start with `want`; returns the rest and when it arrived.
    fn expect(&self, want: &str, timeout: Duration) -> Result<(String, Instant), String> {
        let line = self
            .lines
            .recv_timeout(timeout)
            .map_err(|_| format!("the Followers' process said nothing within {timeout:?}"))?;
        let at = Instant::now();
        match line.strip_prefix(want) {
            Some(rest) => Ok((rest.trim().to_string(), at)),
            None => Err(format!("the Followers' process: {line}")),
        }
    }

    fn stop(mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

/// The Master's own CPU per turn with `n` Followers in another process: what a conductor's
/// laptop pays, without the Followers' threads competing for its cores.
fn master_cpu(n: usize) -> Row {
    let name = format!("Master-only CPU per turn, N = {n} (2 processes)");
    const GOAL: &str = "(reference)";
    let r: Result<(Vec<f64>, Option<LoadPer>, Duration, f64), String> = (|| {
        let mut c = Choir::start(0)?;
        let followers = FollowersProcess::start(n, &c.code)?;
        let result = (|| {
            let (joined, _) = followers.expect("joined", Duration::from_secs(90))?;
            let join_ms: f64 = joined.split(' ').next().and_then(|v| v.parse().ok()).unwrap_or(0.0);
            c.send_master(SyncCommand::Local(song()));
            followers.expect("shown 0", Duration::from_secs(15))?;
            let mut lat = Vec::with_capacity(BROADCASTS as usize);
            let (before, cpu_before) = (Load::sample(), maestral_bench::own_cpu_time());
            let turns_start = Instant::now();
            for k in 1..=BROADCASTS {
                std::thread::sleep(BROADCAST_GAP);
                let start = Instant::now();
                c.send_master(SyncCommand::Local(LocalAction::SetPage { page: k }));
                let (_, at) = followers.expect(&format!("shown {k}"), Duration::from_secs(15))?;
                lat.push(ms(at - start));
            }
            let elapsed = turns_start.elapsed();
            let load = Load::per(before, Load::sample(), elapsed, lat.len());
            let cpu = maestral_bench::own_cpu_time()
                .zip(cpu_before)
                .map_or(Duration::ZERO, |(a, b)| a.saturating_sub(b));
            c.drain();
            Ok((lat, load, cpu, join_ms))
        })();
        followers.stop();
        c.shutdown();
        result
    })();
    match r {
        Ok((lat, Some(load), cpu, join_ms)) => match Summary::of(&lat) {
            Some(s) => {
                let per_turn_ms = load.cpu_ms;
                let per_follower_us = per_turn_ms * 1e3 / n as f64;
                row(
                    name,
                    format!(
                        "{per_turn_ms:.2} ms per turn = {per_follower_us:.1} µs per Follower \
                         (process ticks: {:.2} ms/turn); turn to all shown p50 {:.2} ms, p99 \
                         {:.2} ms ({} turns, through a pipe); joined in {join_ms:.0} ms",
                        ms(cpu) / s.n as f64,
                        s.p50,
                        s.p99,
                        s.n
                    ),
                    GOAL,
                    None,
                    json!({ "followers": n, "master_cpu_ms_per_turn": per_turn_ms,
                            "master_cpu_us_per_turn_per_follower": per_follower_us,
                            "master_process_cpu_ms_per_turn_ticks": ms(cpu) / s.n as f64,
                            "turn_to_all_shown": s.json_ms(), "load": load.json(),
                            "join_all_ms": join_ms }),
                )
            }
            None => not_measured(name, "no turns".into(), GOAL),
        },
        Ok((_, None, _, _)) => not_measured(name, "no /proc load samples".into(), GOAL),
        Err(e) => not_measured(name, e, GOAL),
    }
}

// ---- report ----------------------------------------------------------------------------------

fn main() {
    if let Some(n) = std::env::var(FOLLOWERS_PROCESS).ok().and_then(|n| n.parse().ok()) {
        return followers_process(n);
    }
    let total = Instant::now();
    let (cores, profile) =
        maestral_bench::header("maestral-net sync benchmark: loopback 127.0.0.1");
    println!("raw-Link rows run on one 2-worker tokio runtime; Choir rows use real SyncHandles\n");

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("bench runtime");

    let load_start = Load::sample();
    let mut rows = Vec::new();
    let mut choirs = Vec::new();
    let step = |what: &str| eprintln!("[{:6.1} s] {what}", total.elapsed().as_secs_f64());

    step("offer → open");
    rows.push(offer_to_open(&rt));
    step("Solo round trip");
    rows.push(solo_round_trip(&rt));
    step("raw fan-out");
    rows.push(raw_fanout(&rt, 100));
    for n in FOLLOWER_COUNTS {
        step(&format!("Choir, {n} Followers"));
        let (join, broadcast, extra) = choir(n);
        rows.push(broadcast);
        rows.extend(join);
        choirs.push(extra);
    }
    for n in MASTER_CPU_COUNTS {
        step(&format!("Master's CPU, {n} Followers in another process"));
        rows.push(master_cpu(n));
    }
    step("dead link");
    let (d, c) = dead_link(&rt);
    rows.push(d);
    rows.push(c);
    step("rejoin");
    rows.push(rejoin());
    step("done");
    rt.shutdown_timeout(Duration::from_secs(2));
    let run_load = Load::per(load_start, Load::sample(), total.elapsed(), 1);

    let width = rows.iter().filter_map(|r| r.value.lines().next()).map(|l| l.chars().count()).max();
    let width = width.unwrap_or(0).max(40);
    println!("\n{:<50} {:<width$} {:<24} met?", "row", "value", "goal");
    println!("{}", "-".repeat(50 + width + 24 + 7));
    for r in &rows {
        let met = match r.met {
            Some(true) => "yes",
            Some(false) => "NO",
            None => "-",
        };
        let mut lines = r.value.lines();
        let first = lines.next().unwrap_or_default();
        println!("{:<50} {first:<width$} {:<24} {met}", r.name, r.goal);
        for more in lines {
            println!("{:<50}   {more}", "");
        }
    }

    if let Some(l) = &run_load {
        println!(
            "\nwhole run: this benchmark kept {:.0}% of the cores busy, other processes {:.0}% \
             (a loaded machine inflates the Choir rows)",
            l.busy * 100.0,
            l.others * 100.0
        );
    }
    let json = json!({
        "cores": cores,
        "cores_busy_fraction": run_load.as_ref().map(|l| l.busy),
        "cores_busy_fraction_other_processes": run_load.as_ref().map(|l| l.others),
        "profile": profile,
        "address": "127.0.0.1",
        "total_s": total.elapsed().as_secs_f64(),
        "rows": rows.iter().map(|r| json!({
            "name": r.name, "value": r.value.replace('\n', "; "), "goal": r.goal, "meets_goal": r.met, "data": r.json,
        })).collect::<Vec<_>>(),
        "choirs": choirs,
    });
    write_report("sync", &json);
    println!("total time {:.1} s", total.elapsed().as_secs_f64());
}
