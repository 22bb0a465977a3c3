//! One responder per interface and protocol: ARP for IPv4, NDP for IPv6. The actor holds what
//! the interface answers for and times the announcements on acquiring an address; a task owns
//! the socket and answers each question on the spot, checking the owned set, the epoch it was
//! decided in and the lease gate for every packet, and again for every announcement just before
//! it leaves.
//!
//! The socket tasks run on the speaker's packet runtime, a thread of their own at a lower
//! priority, and handle a bounded batch of frames per wake-up with a cap on answers per second:
//! a flood from the LAN costs dropped requests, never the heartbeats that keep the lease.

use std::collections::BTreeSet;
use std::fmt;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, AsyncContext, Context, Handler, Message};
use pnet_base::MacAddr;
use tokio::sync::{mpsc, watch};

use super::LeaseGate;
use crate::metrics::speaker::SpeakerMetrics;
use crate::net::raw::{self, Filter, MulticastGroups, PacketSocket};
use crate::net::{arp, ndp};

/// When announcements go out after an address is acquired: at once, then a few more so a
/// client that missed one (or a switch still learning) catches up.
const ANNOUNCE_AT: [Duration; 5] = [
    Duration::ZERO,
    Duration::from_millis(250),
    Duration::from_millis(750),
    Duration::from_millis(1500),
    Duration::from_secs(3),
];

/// What differs between ARP and NDP.
pub trait Protocol: Unpin + 'static {
    /// The address family answered for.
    type Addr: Copy + Ord + Send + Sync + fmt::Debug + fmt::Display + 'static;
    /// A question worth answering.
    type Question: Send;
    /// Per-interface state the protocol keeps (NDP's multicast memberships).
    type Extra: Unpin + 'static;
    /// For logs.
    const NAME: &'static str;
    /// The ethertype the socket binds to.
    const ETHERTYPE: u16;
    /// The kernel-side filter.
    fn filter() -> Filter;
    /// Reads a question from a frame.
    fn parse(frame: &[u8]) -> Option<Self::Question>;
    /// The address a question is about.
    fn target(q: &Self::Question) -> Self::Addr;
    /// Who asks (where the answer goes).
    fn asker(q: &Self::Question) -> MacAddr;
    /// The answer frame.
    fn answer(mac: MacAddr, q: &Self::Question) -> Vec<u8>;
    /// The frames announcing that `mac` now has `addr`.
    fn announce(mac: MacAddr, addr: Self::Addr) -> Vec<Vec<u8>>;
    /// Counts a question received.
    fn count_question(m: &SpeakerMetrics);
    /// Counts `n` frames sent (answers and announcements).
    fn count_sent(m: &SpeakerMetrics, n: u64);
    /// Sets up the per-interface state.
    fn extra(ifindex: u32) -> io::Result<Self::Extra>;
    /// The interface starts answering for `addr`.
    fn acquired(extra: &mut Self::Extra, addr: Self::Addr) -> io::Result<()>;
    /// The interface stops answering for `addr`.
    fn released(extra: &mut Self::Extra, addr: Self::Addr) -> io::Result<()>;
}

/// ARP for IPv4 (RFC 826, gratuitous ARP per RFC 5227).
#[derive(Debug)]
pub struct Arp;

impl Protocol for Arp {
    type Addr = Ipv4Addr;
    type Question = arp::WhoHas;
    type Extra = ();
    const NAME: &'static str = "ARP";
    const ETHERTYPE: u16 = raw::ETH_P_ARP;

    fn filter() -> Filter {
        raw::arp_request_filter()
    }
    fn parse(frame: &[u8]) -> Option<arp::WhoHas> {
        arp::parse_request(frame)
    }
    fn target(q: &arp::WhoHas) -> Ipv4Addr {
        q.target_ip
    }
    fn asker(q: &arp::WhoHas) -> MacAddr {
        q.sender_mac
    }
    fn answer(mac: MacAddr, q: &arp::WhoHas) -> Vec<u8> {
        arp::reply(mac, q)
    }
    fn announce(mac: MacAddr, addr: Ipv4Addr) -> Vec<Vec<u8>> {
        arp::gratuitous(mac, addr).into()
    }
    fn count_question(m: &SpeakerMetrics) {
        m.arp_requests.inc();
    }
    fn count_sent(m: &SpeakerMetrics, n: u64) {
        m.arp_replies.inc_by(n);
    }
    fn extra(_: u32) -> io::Result<()> {
        Ok(())
    }
    fn acquired(_: &mut (), _: Ipv4Addr) -> io::Result<()> {
        Ok(())
    }
    fn released(_: &mut (), _: Ipv4Addr) -> io::Result<()> {
        Ok(())
    }
}

/// NDP for IPv6 (RFC 4861), with the solicited-node groups joined for owned addresses.
#[derive(Debug)]
pub struct Ndp;

impl Protocol for Ndp {
    type Addr = Ipv6Addr;
    type Question = ndp::Solicit;
    type Extra = MulticastGroups;
    const NAME: &'static str = "NDP";
    const ETHERTYPE: u16 = raw::ETH_P_IPV6;

    fn filter() -> Filter {
        raw::neighbor_solicit_filter()
    }
    fn parse(frame: &[u8]) -> Option<ndp::Solicit> {
        ndp::parse_solicit(frame)
    }
    fn target(q: &ndp::Solicit) -> Ipv6Addr {
        q.target
    }
    fn asker(q: &ndp::Solicit) -> MacAddr {
        q.reply_mac
    }
    fn answer(mac: MacAddr, q: &ndp::Solicit) -> Vec<u8> {
        ndp::answer(mac, q)
    }
    fn announce(mac: MacAddr, addr: Ipv6Addr) -> Vec<Vec<u8>> {
        vec![ndp::unsolicited(mac, addr)]
    }
    fn count_question(m: &SpeakerMetrics) {
        m.ndp_solicitations.inc();
    }
    fn count_sent(m: &SpeakerMetrics, n: u64) {
        m.ndp_advertisements.inc_by(n);
    }
    fn extra(ifindex: u32) -> io::Result<MulticastGroups> {
        MulticastGroups::new(ifindex)
    }
    fn acquired(groups: &mut MulticastGroups, addr: Ipv6Addr) -> io::Result<()> {
        groups.join(ndp::solicited_node(addr))
    }
    fn released(groups: &mut MulticastGroups, addr: Ipv6Addr) -> io::Result<()> {
        groups.leave(ndp::solicited_node(addr))
    }
}

/// Answers ARP for owned IPv4 addresses on one interface.
pub type ArpResponder = Responder<Arp>;
/// Answers NDP for owned IPv6 addresses on one interface.
pub type NdpResponder = Responder<Ndp>;

/// Set what the interface answers for, as decided in the lease gate's `epoch`; returns once
/// the answering task sees it.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Own<A: Send + 'static> {
    /// The addresses.
    pub addresses: BTreeSet<A>,
    /// The gate's epoch when they were decided.
    pub epoch: u64,
}

/// Stop answering: the interface is gone or changed. The socket closes with the actor.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Close;

#[derive(Message)]
#[rtype(result = "()")]
struct Announce<A: Send + 'static> {
    addr: A,
    epoch: u64,
}

/// What the answering task answers for: a set, and the epoch it was decided in.
#[derive(Debug)]
struct Owned<A> {
    epoch: u64,
    addresses: BTreeSet<A>,
}

/// Frames handled per wake-up before the task yields.
const BATCH: usize = 64;
/// Answers per second an interface sends at most (per protocol); a flood beyond goes
/// unanswered. Far above what a LAN of clients asks.
const MAX_ANSWERS_PER_SEC: u32 = 20_000;
/// Answers per second one asker (by MAC) gets at most: a flood from one host is cut down to
/// this, so the others are still answered.
const MAX_ANSWERS_PER_ASKER: u32 = 200;
/// Askers remembered for their budgets; beyond this (a flood from ever new MACs) the memory is
/// cleared and only the interface's budget holds.
const ASKERS_KEPT: usize = 4096;
/// The kernel's receive queue for a responder socket: small, so a flood is dropped by the kernel
/// rather than piling up for us.
const RECEIVE_BUFFER: usize = 256 << 10;

/// The responder for one interface and protocol.
pub struct Responder<P: Protocol> {
    interface: String,
    mac: MacAddr,
    owned: watch::Sender<Arc<Owned<P::Addr>>>,
    out: mpsc::Sender<(u64, P::Addr, Vec<u8>)>,
    extra: P::Extra,
    gate: Arc<LeaseGate>,
}

impl<P: Protocol> Responder<P> {
    /// Opens the socket on `interface` and starts answering (for nothing yet) on `packets`, the
    /// runtime of the socket tasks.
    pub fn open(
        interface: &str,
        gate: Arc<LeaseGate>,
        metrics: Arc<SpeakerMetrics>,
        packets: &tokio::runtime::Handle,
    ) -> io::Result<Self> {
        // The socket registers with the runtime that polls it.
        let socket = {
            let _enter = packets.enter();
            PacketSocket::open(interface, P::ETHERTYPE, &P::filter())?
        };
        socket.set_receive_buffer(RECEIVE_BUFFER)?;
        let extra = P::extra(socket.ifindex())?;
        let mac = socket.mac();
        let (owned, owned_rx) = watch::channel(Arc::new(Owned {
            epoch: 0,
            addresses: BTreeSet::new(),
        }));
        let (out, out_rx) = mpsc::channel(256);
        packets.spawn(serve::<P>(
            socket,
            owned_rx,
            out_rx,
            gate.clone(),
            metrics.clone(),
            interface.to_string(),
        ));
        Ok(Self {
            interface: interface.to_string(),
            mac,
            owned,
            out,
            extra,
            gate,
        })
    }

    /// The interface's hardware address.
    pub fn mac(&self) -> MacAddr {
        self.mac
    }
}

impl<P: Protocol> Actor for Responder<P> {
    type Context = Context<Self>;
}

impl<P: Protocol> Handler<Own<P::Addr>> for Responder<P> {
    type Result = ();

    fn handle(&mut self, msg: Own<P::Addr>, ctx: &mut Context<Self>) {
        let (new, epoch) = (msg.addresses, msg.epoch);
        let old = self.owned.borrow().clone();
        if old.addresses == new && old.epoch == epoch {
            return;
        }
        let old = &old.addresses;
        for addr in old.difference(&new) {
            if let Err(e) = P::released(&mut self.extra, *addr) {
                tracing::warn!(interface = %self.interface, %addr, error = %e, "cannot leave multicast group");
            }
            tracing::info!(interface = %self.interface, %addr, protocol = P::NAME, "stopped answering");
        }
        let acquired: Vec<P::Addr> = new.difference(old).copied().collect();
        for addr in &acquired {
            if let Err(e) = P::acquired(&mut self.extra, *addr) {
                tracing::warn!(interface = %self.interface, %addr, error = %e, "cannot join multicast group");
            }
        }
        self.owned.send_replace(Arc::new(Owned {
            epoch,
            addresses: new,
        }));
        for addr in acquired {
            tracing::info!(interface = %self.interface, %addr, protocol = P::NAME, "answering");
            for at in ANNOUNCE_AT {
                ctx.notify_later(Announce { addr, epoch }, at);
            }
        }
    }
}

impl<P: Protocol> Handler<Close> for Responder<P> {
    type Result = ();

    fn handle(&mut self, _: Close, ctx: &mut Context<Self>) {
        use actix::ActorContext;
        ctx.stop();
    }
}

impl<P: Protocol> Handler<Announce<P::Addr>> for Responder<P> {
    type Result = ();

    fn handle(&mut self, msg: Announce<P::Addr>, _: &mut Context<Self>) {
        if !self.gate.valid_for(msg.epoch) || !self.owned.borrow().addresses.contains(&msg.addr) {
            return;
        }
        // Queued frames are checked again as they leave: a fence in between stops them.
        for frame in P::announce(self.mac, msg.addr) {
            let _ = self.out.try_send((msg.epoch, msg.addr, frame));
        }
    }
}

/// A token bucket: at most `rate` answers a second, in bursts of up to a tenth of that.
struct Budget {
    rate: u32,
    tokens: f64,
    last: std::time::Instant,
}

impl Budget {
    fn new(rate: u32) -> Self {
        Self {
            rate,
            tokens: f64::from(rate) / 10.0,
            last: std::time::Instant::now(),
        }
    }

    fn take(&mut self) -> bool {
        let now = std::time::Instant::now();
        let cap = f64::from(self.rate) / 10.0;
        self.tokens = (self.tokens
            + now.duration_since(self.last).as_secs_f64() * f64::from(self.rate))
        .min(cap);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// The socket side of one interface's responder: answers questions as they arrive and sends
/// the actor's queued announcements, until the actor goes away.
async fn serve<P: Protocol>(
    socket: PacketSocket,
    owned: watch::Receiver<Arc<Owned<P::Addr>>>,
    mut out: mpsc::Receiver<(u64, P::Addr, Vec<u8>)>,
    gate: Arc<LeaseGate>,
    metrics: Arc<SpeakerMetrics>,
    interface: String,
) {
    let mut buf = vec![0u8; 2048];
    let mut answerer = Answerer::<P>::new(socket, owned, gate, metrics, interface);
    loop {
        tokio::select! {
            received = answerer.socket.recv(&mut buf) => {
                answerer.batch(received, &mut buf).await;
                tokio::task::yield_now().await;
            },
            frame = out.recv() => match frame {
                Some((epoch, addr, frame)) => answerer.announce(epoch, addr, &frame).await,
                // The actor is gone: so is this interface's answering.
                None => return,
            },
        }
    }
}

/// The socket task's state: what it needs to judge each question, and the budgets that make
/// a flood cost dropped requests rather than the runtime.
struct Answerer<P: Protocol> {
    socket: PacketSocket,
    owned: watch::Receiver<Arc<Owned<P::Addr>>>,
    gate: Arc<LeaseGate>,
    metrics: Arc<SpeakerMetrics>,
    interface: String,
    mac: MacAddr,
    budget: Budget,
    askers: std::collections::HashMap<MacAddr, Budget>,
    dropped: u64,
}

impl<P: Protocol> Answerer<P> {
    /// Answering on `socket` for what `owned` holds, with full budgets.
    fn new(
        socket: PacketSocket,
        owned: watch::Receiver<Arc<Owned<P::Addr>>>,
        gate: Arc<LeaseGate>,
        metrics: Arc<SpeakerMetrics>,
        interface: String,
    ) -> Self {
        let mac = socket.mac();
        Self {
            socket,
            owned,
            gate,
            metrics,
            interface,
            mac,
            budget: Budget::new(MAX_ANSWERS_PER_SEC),
            askers: std::collections::HashMap::new(),
            dropped: 0,
        }
    }

    /// Handles the frame just `received` and those already waiting behind it, up to a batch.
    async fn batch(&mut self, received: io::Result<usize>, buf: &mut [u8]) {
        let mut next = Some(received);
        // A bounded batch per wake-up: whatever else shares this runtime gets its turn.
        for _ in 0..BATCH {
            let Some(received) = next.take() else { break };
            match received {
                Ok(n) => self.question(&buf[..n]).await,
                Err(e) => {
                    tracing::warn!(interface = %self.interface, error = %e, protocol = P::NAME, "receive failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
            next = self.socket.try_recv(buf);
        }
    }

    /// Answers the question in `frame`, if it is one about an address answered for and the
    /// budgets allow.
    async fn question(&mut self, frame: &[u8]) {
        let Some(q) = P::parse(frame) else { return };
        P::count_question(&self.metrics);
        let target = P::target(&q);
        let allowed = {
            let o = self.owned.borrow();
            // The gate first, then the epoch the set was decided in:
            // after a lease lapse nothing decided before it is answered.
            o.addresses.contains(&target) && self.gate.valid_for(o.epoch)
        };
        if !allowed {
            return;
        }
        if self.askers.len() >= ASKERS_KEPT {
            self.askers.clear();
        }
        let fair = self
            .askers
            .entry(P::asker(&q))
            .or_insert_with(|| Budget::new(MAX_ANSWERS_PER_ASKER))
            .take();
        if fair && self.budget.take() {
            match self.socket.send(&P::answer(self.mac, &q)).await {
                Ok(()) => P::count_sent(&self.metrics, 1),
                Err(e) => {
                    tracing::warn!(interface = %self.interface, error = %e, "cannot send an answer")
                }
            }
        } else {
            self.dropped += 1;
            if self.dropped.is_power_of_two() {
                tracing::warn!(interface = %self.interface, protocol = P::NAME, dropped = self.dropped, "more questions than answers allowed per second: dropping (a flood?)");
            }
        }
    }

    /// Sends an announcement queued at `epoch` for `addr`, unless it was fenced or released
    /// meanwhile.
    async fn announce(&self, epoch: u64, addr: P::Addr, frame: &[u8]) {
        // Queued before a fence, checked as it leaves.
        let still = self.gate.valid_for(epoch) && self.owned.borrow().addresses.contains(&addr);
        if !still {
            return;
        }
        match self.socket.send(frame).await {
            Ok(()) => {
                self.metrics.gratuitous.inc();
                P::count_sent(&self.metrics, 1);
            }
            Err(e) => {
                tracing::warn!(interface = %self.interface, error = %e, "cannot send an announcement")
            }
        }
    }
}
