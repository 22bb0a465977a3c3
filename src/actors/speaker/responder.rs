//! One responder per interface and protocol: ARP for IPv4, NDP for IPv6. The actor holds what
//! the interface answers for and times the announcements on acquiring an address; a tokio task
//! owns the socket and answers each question on the spot, checking the owned set and the lease
//! gate for every packet.

use std::collections::BTreeSet;
use std::fmt;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, AsyncContext, Context, Handler, Message};
use pnet_base::MacAddr;
use tokio::sync::{mpsc, watch};

use super::{LeaseGate, SpeakerMetrics};
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

/// Set what the interface answers for; returns once the answering task sees it.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Own<A: Send + 'static>(pub BTreeSet<A>);

#[derive(Message)]
#[rtype(result = "()")]
struct Announce<A: Send + 'static>(A);

/// The responder for one interface and protocol.
pub struct Responder<P: Protocol> {
    interface: String,
    mac: MacAddr,
    owned: watch::Sender<Arc<BTreeSet<P::Addr>>>,
    out: mpsc::Sender<Vec<u8>>,
    extra: P::Extra,
    gate: Arc<LeaseGate>,
    metrics: Arc<SpeakerMetrics>,
}

impl<P: Protocol> Responder<P> {
    /// Opens the socket on `interface` and starts answering (for nothing yet). Must run on a
    /// tokio runtime.
    pub fn open(
        interface: &str,
        gate: Arc<LeaseGate>,
        metrics: Arc<SpeakerMetrics>,
    ) -> io::Result<Self> {
        let socket = PacketSocket::open(interface, P::ETHERTYPE, &P::filter())?;
        let extra = P::extra(socket.ifindex())?;
        let mac = socket.mac();
        let (owned, owned_rx) = watch::channel(Arc::new(BTreeSet::new()));
        let (out, out_rx) = mpsc::channel(256);
        tokio::spawn(serve::<P>(
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
            metrics,
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
        let new = msg.0;
        let old = self.owned.borrow().clone();
        if *old == new {
            return;
        }
        for addr in old.difference(&new) {
            if let Err(e) = P::released(&mut self.extra, *addr) {
                tracing::warn!(interface = %self.interface, %addr, error = %e, "cannot leave multicast group");
            }
            tracing::info!(interface = %self.interface, %addr, protocol = P::NAME, "stopped answering");
        }
        let acquired: Vec<P::Addr> = new.difference(&old).copied().collect();
        for addr in &acquired {
            if let Err(e) = P::acquired(&mut self.extra, *addr) {
                tracing::warn!(interface = %self.interface, %addr, error = %e, "cannot join multicast group");
            }
        }
        self.owned.send_replace(Arc::new(new));
        for addr in acquired {
            tracing::info!(interface = %self.interface, %addr, protocol = P::NAME, "answering");
            for at in ANNOUNCE_AT {
                ctx.notify_later(Announce(addr), at);
            }
        }
    }
}

impl<P: Protocol> Handler<Announce<P::Addr>> for Responder<P> {
    type Result = ();

    fn handle(&mut self, msg: Announce<P::Addr>, _: &mut Context<Self>) {
        if !self.gate.valid() || !self.owned.borrow().contains(&msg.0) {
            return;
        }
        for frame in P::announce(self.mac, msg.0) {
            if self.out.try_send(frame).is_ok() {
                self.metrics.gratuitous.inc();
                P::count_sent(&self.metrics, 1);
            }
        }
    }
}

async fn serve<P: Protocol>(
    socket: PacketSocket,
    owned: watch::Receiver<Arc<BTreeSet<P::Addr>>>,
    mut out: mpsc::Receiver<Vec<u8>>,
    gate: Arc<LeaseGate>,
    metrics: Arc<SpeakerMetrics>,
    interface: String,
) {
    let mut buf = vec![0u8; 2048];
    let mac = socket.mac();
    loop {
        tokio::select! {
            received = socket.recv(&mut buf) => match received {
                Ok(n) => {
                    let Some(q) = P::parse(&buf[..n]) else { continue };
                    P::count_question(&metrics);
                    let target = P::target(&q);
                    // The gate first: after the lease runs out nothing is answered, whatever
                    // the actors have or have not processed yet.
                    if !gate.valid() || !owned.borrow().contains(&target) {
                        continue;
                    }
                    match socket.send(&P::answer(mac, &q)).await {
                        Ok(()) => P::count_sent(&metrics, 1),
                        Err(e) => tracing::warn!(%interface, error = %e, "cannot send an answer"),
                    }
                }
                Err(e) => {
                    tracing::warn!(%interface, error = %e, protocol = P::NAME, "receive failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            frame = out.recv() => match frame {
                Some(frame) => {
                    if let Err(e) = socket.send(&frame).await {
                        tracing::warn!(%interface, error = %e, "cannot send an announcement");
                    }
                }
                // The actor is gone: so is this interface's answering.
                None => return,
            },
        }
    }
}
