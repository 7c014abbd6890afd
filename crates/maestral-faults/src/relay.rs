//! The delay layer: `maestral-faults --delay-relay --queue N --min MS --max MS --seed S`, run
//! inside a host's namespace. The kernel has no `netem`, so the host's UDP is sent to it through
//! an `NFQUEUE` (iptables) and it holds each packet for a seeded delay drawn from `[min, max]` ms
//! before letting it go. Packets whose delays differ by more than their gap overtake each other:
//! jitter is the reordering. It prints `{"ready":true}` once bound; when its standard input
//! closes it lets every held packet go, prints `{"packets":N,"reordered":M}` (M: packets let go
//! after one that came later) and exits.

use std::collections::BinaryHeap;
use std::io::{BufRead, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use nfq::{Queue, Verdict};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A held packet: due at `at`; `seq` is its place in arrival order.
struct Held {
    at: Instant,
    seq: u64,
    msg: nfq::Message,
}

impl PartialEq for Held {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Held {}
impl PartialOrd for Held {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Held {
    // The earliest due first (a max-heap, reversed).
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

/// Runs the relay until standard input closes.
pub fn main(args: &[String]) -> Result<()> {
    let (mut queue_num, mut min, mut max, mut seed) = (0u16, 10u64, 200u64, 1u64);
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let value = it.next().with_context(|| format!("{a} needs a value"))?;
        match a.as_str() {
            "--queue" => queue_num = value.parse().context("--queue")?,
            "--min" => min = value.parse().context("--min")?,
            "--max" => max = value.parse().context("--max")?,
            "--seed" => seed = value.parse().context("--seed")?,
            other => anyhow::bail!("unknown relay argument `{other}`"),
        }
    }
    anyhow::ensure!(min <= max, "--min {min} is above --max {max}");
    let mut queue = Queue::open().context("opening a netfilter queue socket")?;
    queue.bind(queue_num).with_context(|| format!("binding netfilter queue {queue_num}"))?;
    queue.set_queue_max_len(queue_num, 8192).context("sizing the queue")?;
    queue.set_nonblocking(true);
    let open = Arc::new(AtomicBool::new(true));
    let watch = open.clone();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            if line.is_err() {
                break;
            }
        }
        watch.store(false, Ordering::SeqCst);
    });
    println!("{{\"ready\":true}}");
    std::io::stdout().flush()?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut held = BinaryHeap::new();
    let (mut seq, mut packets, mut reordered, mut last_out) = (0u64, 0u64, 0u64, None::<u64>);
    let mut release = |queue: &mut Queue, h: Held, count: &mut u64| -> Result<()> {
        if last_out.is_some_and(|l| h.seq < l) {
            *count += 1;
        }
        last_out = Some(last_out.map_or(h.seq, |l| l.max(h.seq)));
        let mut msg = h.msg;
        msg.set_verdict(Verdict::Accept);
        queue.verdict(msg).context("letting a packet go")
    };
    while open.load(Ordering::SeqCst) {
        let mut idle = true;
        loop {
            match queue.recv() {
                Ok(msg) => {
                    idle = false;
                    packets += 1;
                    let at = Instant::now() + Duration::from_millis(rng.random_range(min..=max));
                    held.push(Held { at, seq, msg });
                    seq += 1;
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e).context("reading the netfilter queue"),
            }
        }
        let now = Instant::now();
        while held.peek().is_some_and(|h: &Held| h.at <= now) {
            let Some(h) = held.pop() else { break };
            idle = false;
            release(&mut queue, h, &mut reordered)?;
        }
        if idle {
            std::thread::sleep(Duration::from_micros(500));
        }
    }
    while let Some(h) = held.pop() {
        release(&mut queue, h, &mut reordered)?;
    }
    println!("{{\"packets\":{packets},\"reordered\":{reordered}}}");
    Ok(())
}
