//! A user-space netem (this kernel has no netem qdisc): packets that iptables sends to an NFQUEUE
//! are held and released late (delay and jitter), out of order (some held back longer), or
//! dropped (loss), by giving their verdicts at the chosen moments.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use rand::{Rng, SeedableRng};

use crate::probe::{stop_on_signals, stopping};

/// How to disturb the packets.
#[derive(Clone, Debug, clap::Args)]
pub struct NetemArgs {
    /// The NFQUEUE number the iptables rules send packets to.
    #[arg(long)]
    pub queue: u16,
    /// Added to every packet, milliseconds.
    #[arg(long, default_value_t = 0)]
    pub delay_ms: u64,
    /// Up to this much more, uniformly at random, milliseconds.
    #[arg(long, default_value_t = 0)]
    pub jitter_ms: u64,
    /// The share of packets dropped.
    #[arg(long, default_value_t = 0.0)]
    pub loss: f64,
    /// The share of packets held back a further jitter (so later ones overtake them).
    #[arg(long, default_value_t = 0.0)]
    pub reorder: f64,
    /// Seeds the random choices.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// Runs until SIGTERM; every packet still held is released then.
pub fn run(args: NetemArgs) -> Result<()> {
    stop_on_signals();
    let mut queue = nfq::Queue::open().context("NETLINK_NETFILTER socket")?;
    queue
        .bind(args.queue)
        .with_context(|| format!("NFQUEUE {}", args.queue))?;
    queue.set_queue_max_len(args.queue, 65_536)?;
    queue.set_nonblocking(true);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(args.seed);
    // Held packets by release time (the counter keeps equal times in arrival order).
    let mut held: BinaryHeap<Reverse<(Instant, u64)>> = BinaryHeap::new();
    let mut msgs: std::collections::HashMap<u64, nfq::Message> = std::collections::HashMap::new();
    let mut counter = 0u64;
    let (mut passed, mut dropped) = (0u64, 0u64);
    let jitter = |rng: &mut rand_chacha::ChaCha8Rng| {
        if args.jitter_ms == 0 {
            Duration::ZERO
        } else {
            Duration::from_micros(rng.random_range(0..args.jitter_ms * 1000))
        }
    };
    while !stopping() {
        let mut got = false;
        loop {
            match queue.recv() {
                Ok(mut msg) => {
                    got = true;
                    if args.loss > 0.0 && rng.random_bool(args.loss.min(1.0)) {
                        msg.set_verdict(nfq::Verdict::Drop);
                        queue.verdict(msg)?;
                        dropped += 1;
                        continue;
                    }
                    let mut wait = Duration::from_millis(args.delay_ms) + jitter(&mut rng);
                    if args.reorder > 0.0 && rng.random_bool(args.reorder.min(1.0)) {
                        wait += jitter(&mut rng).max(Duration::from_millis(args.delay_ms.max(5)));
                    }
                    counter += 1;
                    held.push(Reverse((Instant::now() + wait, counter)));
                    msgs.insert(counter, msg);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e).context("receiving from the NFQUEUE"),
            }
        }
        let now = Instant::now();
        while held.peek().is_some_and(|Reverse((at, _))| *at <= now) {
            let Some(Reverse((_, id))) = held.pop() else {
                break;
            };
            if let Some(mut msg) = msgs.remove(&id) {
                msg.set_verdict(nfq::Verdict::Accept);
                queue.verdict(msg)?;
                passed += 1;
            }
        }
        if !got {
            std::thread::sleep(Duration::from_micros(300));
        }
    }
    for (_, mut msg) in msgs.drain() {
        msg.set_verdict(nfq::Verdict::Accept);
        let _ = queue.verdict(msg);
    }
    println!(
        "netem queue {}: {passed} packets passed, {dropped} dropped",
        args.queue
    );
    Ok(())
}
