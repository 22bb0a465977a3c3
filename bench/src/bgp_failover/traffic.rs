//! The client's traffic and what became of it: a UDP sender in the client namespace (behind
//! the router) sending one datagram a millisecond to the Service address, round robin over
//! [`FLOWS`] source ports so the router's layer 4 ECMP hash spreads them over every node, and
//! a receiver on each node recording which sequence numbers reached it.
//!
//! Sockets are opened inside their namespaces ([`netns::in_netns`]) and used from threads of
//! this process: no external tool between the packets and the clock.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use ironlb_lab::netns;

/// Source ports (flows) the sender rotates over: with 32, each of three next hops carries
/// some, except with odds of about 3 (2/3)^32, one in 140 000.
pub const FLOWS: usize = 32;
/// The UDP port the receivers listen on.
pub const PORT: u16 = 40_999;
/// One datagram per millisecond in all: a node carrying a third of the flows sees one about
/// every 3 ms, the resolution of the measurement.
const INTERVAL: Duration = Duration::from_millis(1);

/// Traffic under way; [`Traffic::stop`] ends it and returns the record.
pub struct Traffic {
    stop_send: Arc<AtomicBool>,
    stop_recv: Arc<AtomicBool>,
    // Taken by stop(); Drop stops whatever is still running.
    sender: Option<JoinHandle<Vec<Instant>>>,
    receivers: Vec<JoinHandle<Vec<u64>>>,
    counts: Vec<Arc<AtomicU64>>,
}

/// What was sent and where it arrived.
pub struct Record {
    /// Send time of each sequence number.
    pub sent: Vec<Instant>,
    /// The node each sequence number reached, if any.
    pub reached: Vec<Option<usize>>,
}

impl Traffic {
    /// Starts the receivers in `nodes` (namespaces) and the sender in `client` (from
    /// `client_addr`) to `vip`.
    pub fn start(client: &str, client_addr: IpAddr, nodes: &[String], vip: IpAddr) -> Result<Self> {
        let stop_recv = Arc::new(AtomicBool::new(false));
        let mut receivers = Vec::new();
        let mut counts = Vec::new();
        for ns in nodes {
            let sock = netns::in_netns(ns, move || UdpSocket::bind(("0.0.0.0", PORT)))
                .with_context(|| format!("a receiver in {ns}"))?;
            sock.set_read_timeout(Some(Duration::from_millis(20)))?;
            let count = Arc::new(AtomicU64::new(0));
            let (stop, c) = (stop_recv.clone(), count.clone());
            receivers.push(std::thread::spawn(move || receive(&sock, &stop, &c)));
            counts.push(count);
        }
        let mut socks = Vec::new();
        for _ in 0..FLOWS {
            let s = netns::in_netns(client, move || UdpSocket::bind((client_addr, 0)))
                .context("a sender socket in the client")?;
            socks.push(s);
        }
        let stop_send = Arc::new(AtomicBool::new(false));
        let stop = stop_send.clone();
        let to = SocketAddr::new(vip, PORT);
        let sender = std::thread::spawn(move || send(&socks, to, &stop));
        Ok(Self {
            stop_send,
            stop_recv,
            sender: Some(sender),
            receivers,
            counts,
        })
    }

    /// Datagrams each node has received so far.
    pub fn counts(&self) -> Vec<u64> {
        self.counts
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect()
    }

    /// Stops sending, lets what is in flight arrive, stops the receivers.
    pub fn stop(mut self) -> Result<Record> {
        self.stop_send.store(true, Ordering::Relaxed);
        let sent = self
            .sender
            .take()
            .context("stopped twice")?
            .join()
            .map_err(|_| anyhow::anyhow!("sender panicked"))?;
        std::thread::sleep(Duration::from_millis(200));
        self.stop_recv.store(true, Ordering::Relaxed);
        let mut reached = vec![None; sent.len()];
        for (node, r) in std::mem::take(&mut self.receivers).into_iter().enumerate() {
            let seqs = r.join().map_err(|_| anyhow::anyhow!("receiver panicked"))?;
            for s in seqs {
                if let Some(slot) = reached.get_mut(s as usize) {
                    *slot = Some(node);
                }
            }
        }
        Ok(Record { sent, reached })
    }
}

impl Drop for Traffic {
    fn drop(&mut self) {
        // A trial that fails midway must not leave the threads sending for ever.
        self.stop_send.store(true, Ordering::Relaxed);
        self.stop_recv.store(true, Ordering::Relaxed);
    }
}

/// Sends sequence numbers on a fixed schedule until told to stop; the send time of each.
/// Unconnected sockets: a connected one would return the router's ICMP errors on a later send
/// and drop that datagram, counting a loss that the router did not cause.
fn send(socks: &[UdpSocket], to: SocketAddr, stop: &AtomicBool) -> Vec<Instant> {
    let start = Instant::now();
    let mut sent = Vec::with_capacity(200_000);
    while !stop.load(Ordering::Relaxed) {
        let seq = sent.len() as u64;
        let due = start + INTERVAL * seq as u32;
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        sent.push(Instant::now());
        let _ = socks[seq as usize % FLOWS].send_to(&seq.to_le_bytes(), to);
    }
    sent
}

fn receive(sock: &UdpSocket, stop: &AtomicBool, count: &AtomicU64) -> Vec<u64> {
    let mut seqs = Vec::new();
    let mut buf = [0u8; 64];
    while !stop.load(Ordering::Relaxed) {
        if let Ok(n) = sock.recv(&mut buf) {
            if n >= 8 {
                let mut b = [0u8; 8];
                b.copy_from_slice(&buf[..8]);
                seqs.push(u64::from_le_bytes(b));
                count.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    seqs
}

/// What the router did to the victim's traffic after the kill.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// From the kill to the send time of the last datagram of the victim's flows that was
    /// lost: how long the router kept forwarding to the dead node.
    pub blackhole: Duration,
    /// Datagrams of the victim's flows lost after the kill.
    pub lost: usize,
    /// Datagrams of the other nodes' flows lost after the kill (a reshuffle's collateral).
    pub lost_elsewhere: usize,
    /// How many of the flows the victim carried.
    pub victim_flows: usize,
}

/// Reads a record: the victim's flows are those whose datagrams reached it (before the kill);
/// a datagram of theirs sent after `kill` that reached no node went to the dead node.
pub fn analyse(rec: &Record, victim: usize, kill: Instant) -> Outcome {
    let flows: BTreeSet<usize> = rec
        .reached
        .iter()
        .enumerate()
        .filter(|(_, r)| **r == Some(victim))
        .map(|(s, _)| s % FLOWS)
        .collect();
    let mut out = Outcome {
        blackhole: Duration::ZERO,
        lost: 0,
        lost_elsewhere: 0,
        victim_flows: flows.len(),
    };
    for (seq, (at, reached)) in rec.sent.iter().zip(&rec.reached).enumerate() {
        if *at < kill || reached.is_some() {
            continue;
        }
        if flows.contains(&(seq % FLOWS)) {
            out.lost += 1;
            out.blackhole = out.blackhole.max(*at - kill);
        } else {
            out.lost_elsewhere += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_blackhole_ends_with_the_victims_last_lost_datagram() {
        let t0 = Instant::now();
        let n = 4 * FLOWS as u64;
        let sent: Vec<Instant> = (0..n).map(|i| t0 + Duration::from_millis(i)).collect();
        let kill = t0 + Duration::from_millis(FLOWS as u64);
        // Flow 1 goes to node 2, the victim; every other flow to node 0. After the kill,
        // flow 1 is lost for two rounds, then reaches node 1; flow 5 loses one datagram.
        let reached = (0..n as usize)
            .map(|s| match (s % FLOWS, s / FLOWS) {
                (1, 0) => Some(2),
                (1, 1 | 2) => None,
                (1, _) => Some(1),
                (5, 2) => None,
                _ => Some(0),
            })
            .collect();
        let o = analyse(&Record { sent, reached }, 2, kill);
        assert_eq!(o.victim_flows, 1);
        assert_eq!(o.lost, 2);
        assert_eq!(o.lost_elsewhere, 1);
        assert_eq!(o.blackhole, Duration::from_millis(FLOWS as u64 + 1));
    }
}
