//! The NodeAgent: the node's desired state (which address to answer for on which interface,
//! which BGP sessions to hold and what to announce on each), fanned out to the interfaces'
//! responders and the BgpPeer actors.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use actix::{Actor, Addr, Context, Handler, Message, ResponseFuture};
use pnet_base::MacAddr;

use super::bgp::{BgpPeer, SetRoutes, Shutdown};
use super::interfaces::{self, Link};
use super::responder::{ArpResponder, Close, NdpResponder, Own};
use super::LeaseGate;
use crate::announce::proto::L2Address;
use crate::config::model::Peer;
use crate::metrics::speaker::SpeakerMetrics;
use crate::names::{NodeName, PeerName};
use crate::net::bfd::Bfd;
use crate::net::bgp::session::Run;
use crate::net::bgp::table::SharedTable;
use crate::net::local;

/// Hold exactly these BGP sessions and announce exactly these routes on them.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SetBgp {
    /// The sessions.
    pub peers: BTreeMap<PeerName, Peer>,
    /// The routes, by prefix and peer: the table the controller session writes, which every
    /// BGP session reads its own routes from.
    pub routes: SharedTable,
}

/// End every BGP session: a peer that negotiated graceful restart is left without a word (it
/// keeps our routes until the speaker is back), every other peer gets its withdrawals first.
/// Resolves once the sessions have ended.
#[derive(Message)]
#[rtype(result = "()")]
pub struct EndBgp;

/// Answer for exactly these addresses (an empty map: for nothing), as decided in the lease
/// gate's `epoch` (a fence in between silences them). Resolves once every responder answers
/// accordingly.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SetAddresses {
    /// The addresses and where to answer for them.
    pub addresses: BTreeMap<IpAddr, L2Address>,
    /// The gate's epoch when they were decided.
    pub epoch: u64,
}

/// The hardware address of each announcing interface.
#[derive(Message)]
#[rtype(result = "BTreeMap<String, MacAddr>")]
pub struct Macs;

/// Answer on exactly these interfaces: responders open on new ones (answering at once for
/// the addresses held), close on those gone or changed (a changed one opens again). An
/// interface that cannot be opened is left out, to be tried at the next rescan. Returns the
/// names answered on now.
#[derive(Message)]
#[rtype(result = "Vec<String>")]
pub struct SetInterfaces(pub BTreeMap<String, Link>);

struct Interface {
    link: Link,
    arp: Addr<ArpResponder>,
    ndp: Addr<NdpResponder>,
}

impl Interface {
    /// Stops both responders (their sockets close with them).
    fn close(self) {
        self.arp.do_send(Close);
        self.ndp.do_send(Close);
    }
}

/// What the node announces, and where.
pub struct NodeAgent {
    node: NodeName,
    interfaces: BTreeMap<String, Interface>,
    current: BTreeMap<IpAddr, L2Address>,
    /// The lease gate's epoch `current` was decided in.
    epoch: u64,
    bind_local: bool,
    gate: Arc<LeaseGate>,
    packets: tokio::runtime::Handle,
    metrics: Arc<SpeakerMetrics>,
    bgp: BTreeMap<PeerName, (Peer, Addr<BgpPeer>)>,
    /// The process's BFD task, shared by the BGP sessions.
    bfd: Bfd,
}

/// The IPv4 and IPv6 addresses of `wanted` that interface `name` answers for.
fn owned_on(
    name: &str,
    wanted: &BTreeMap<IpAddr, L2Address>,
) -> (BTreeSet<Ipv4Addr>, BTreeSet<Ipv6Addr>) {
    let (mut v4, mut v6) = (BTreeSet::new(), BTreeSet::new());
    let here = wanted
        .values()
        .filter(|a| a.interfaces.is_empty() || a.interfaces.iter().any(|i| i.as_str() == name));
    for a in here {
        match a.address {
            IpAddr::V4(a) => v4.insert(a),
            IpAddr::V6(a) => v6.insert(a),
        };
    }
    (v4, v6)
}

impl NodeAgent {
    /// Opens a responder pair on each of `interfaces` (sockets need CAP_NET_RAW; any failure
    /// fails it all). With `bind_local`, answered addresses are also bound to `lo` and every
    /// interface is set to strict ARP (`all`, so the kernel answers for them neither on the
    /// interfaces passed over nor on those appearing later). The BGP sessions get their BFD
    /// from `bfd`. Must run on the actor arbiter.
    pub fn open(
        node: NodeName,
        interfaces: &BTreeMap<String, Link>,
        bind_local: bool,
        gate: Arc<LeaseGate>,
        metrics: Arc<SpeakerMetrics>,
        packets: &tokio::runtime::Handle,
        bfd: Bfd,
    ) -> io::Result<Self> {
        let mut agent = Self {
            node,
            interfaces: BTreeMap::new(),
            current: BTreeMap::new(),
            epoch: 0,
            bind_local,
            gate,
            packets: packets.clone(),
            bfd,
            metrics,
            bgp: BTreeMap::new(),
        };
        if bind_local {
            local::strict_arp("all")
                .map_err(|e| io::Error::new(e.kind(), format!("strict ARP: {e}")))?;
        }
        for (name, link) in interfaces {
            let iface = agent
                .open_interface(name, *link)
                .map_err(|e| io::Error::new(e.kind(), format!("interface {name}: {e}")))?;
            agent.interfaces.insert(name.clone(), iface);
        }
        Ok(agent)
    }

    /// Opens the responder pair of one interface.
    fn open_interface(&self, name: &str, link: Link) -> io::Result<Interface> {
        let (gate, metrics, packets) = (&self.gate, &self.metrics, &self.packets);
        let arp = ArpResponder::open(name, gate.clone(), metrics.clone(), packets)?;
        let ndp = NdpResponder::open(name, gate.clone(), metrics.clone(), packets)?;
        if self.bind_local {
            local::strict_arp(name)?;
        }
        Ok(Interface {
            link: Link {
                mac: arp.mac(),
                ..link
            },
            arp: arp.start(),
            ndp: ndp.start(),
        })
    }

    /// Opens `name` and has it answer at once for what the node holds.
    fn add_interface(&mut self, name: String, link: Link) {
        match self.open_interface(&name, link) {
            Ok(iface) => {
                tracing::info!(node = %self.node, interface = %name, index = link.index, mac = %iface.link.mac, "answering on a new interface");
                let (v4, v6) = owned_on(&name, &self.current);
                let epoch = self.epoch;
                if !v4.is_empty() || !v6.is_empty() {
                    iface.arp.do_send(Own {
                        addresses: v4,
                        epoch,
                    });
                    iface.ndp.do_send(Own {
                        addresses: v6,
                        epoch,
                    });
                }
                self.interfaces.insert(name, iface);
            }
            Err(e) => {
                tracing::warn!(node = %self.node, interface = %name, error = %e, "cannot answer on the interface; trying again at the next rescan")
            }
        }
    }
}

impl Actor for NodeAgent {
    type Context = Context<Self>;
}

impl Handler<Macs> for NodeAgent {
    type Result = actix::MessageResult<Macs>;

    fn handle(&mut self, _: Macs, _: &mut Context<Self>) -> Self::Result {
        actix::MessageResult(
            self.interfaces
                .iter()
                .map(|(n, i)| (n.clone(), i.link.mac))
                .collect(),
        )
    }
}

impl Handler<SetAddresses> for NodeAgent {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, msg: SetAddresses, _: &mut Context<Self>) -> Self::Result {
        let (wanted, epoch) = (msg.addresses, msg.epoch);
        let mut sends = Vec::new();
        for (name, iface) in &self.interfaces {
            let (v4, v6) = owned_on(name, &wanted);
            sends.push((iface.arp.clone(), iface.ndp.clone(), v4, v6));
        }
        let gone: Vec<IpAddr> = self
            .current
            .keys()
            .filter(|a| !wanted.contains_key(a))
            .copied()
            .collect();
        let new: Vec<IpAddr> = wanted
            .keys()
            .filter(|a| !self.current.contains_key(a))
            .copied()
            .collect();
        self.metrics.l2_owned.set(wanted.len() as i64);
        self.current = wanted;
        self.epoch = epoch;
        let bind_local = self.bind_local;
        Box::pin(async move {
            for (arp, ndp, v4, v6) in sends {
                // A responder that stopped has nothing to answer with; nothing to wait for.
                let _ = arp
                    .send(Own {
                        addresses: v4,
                        epoch,
                    })
                    .await;
                let _ = ndp
                    .send(Own {
                        addresses: v6,
                        epoch,
                    })
                    .await;
            }
            if bind_local {
                for addr in gone {
                    if let Err(e) = local::unbind(addr).await {
                        tracing::warn!(%addr, error = %e, "cannot unbind from lo");
                    }
                }
                for addr in new {
                    if let Err(e) = local::bind(addr).await {
                        tracing::warn!(%addr, error = %e, "cannot bind to lo");
                    }
                }
            }
        })
    }
}

impl Handler<SetInterfaces> for NodeAgent {
    type Result = actix::MessageResult<SetInterfaces>;

    fn handle(&mut self, msg: SetInterfaces, _: &mut Context<Self>) -> Self::Result {
        let open = self
            .interfaces
            .iter()
            .map(|(n, i)| (n.clone(), i.link))
            .collect();
        let changes = interfaces::diff(&open, &msg.0);
        for name in changes.close {
            if let Some(iface) = self.interfaces.remove(&name) {
                tracing::info!(node = %self.node, interface = %name, "no longer answering on the interface: it is gone or changed");
                iface.close();
            }
        }
        for (name, link) in changes.open {
            self.add_interface(name, link);
        }
        actix::MessageResult(self.interfaces.keys().cloned().collect())
    }
}

impl Handler<SetBgp> for NodeAgent {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, msg: SetBgp, _: &mut Context<Self>) -> Self::Result {
        let SetBgp { peers, routes } = msg;
        let version = {
            let t = routes.read();
            tracing::debug!(
                peers = peers.len(),
                routes = t.len(),
                prefixes = t.prefixes(),
                "BGP desired state"
            );
            t.version()
        };
        let mut ending = Vec::new();
        let names: Vec<PeerName> = self.bgp.keys().cloned().collect();
        for name in names {
            let keep = matches!((peers.get(&name), self.bgp.get(&name)), (Some(want), Some((have, _))) if want == have);
            if !keep {
                if let Some((_, addr)) = self.bgp.remove(&name) {
                    tracing::info!(peer = %name, "BGP peer removed or changed: ending its session");
                    ending.push(addr);
                }
            }
        }
        let mut updates = Vec::new();
        for (name, peer) in peers {
            match self.bgp.get(&name) {
                Some((_, addr)) => updates.push(addr.clone()),
                None => {
                    let actor = BgpPeer::start_session(
                        name.clone(),
                        peer.clone(),
                        routes.clone(),
                        self.metrics.clone(),
                        self.bfd.clone(),
                    )
                    .start();
                    self.bgp.insert(name, (peer, actor));
                }
            }
        }
        Box::pin(async move {
            for addr in ending {
                let _ = addr.send(Shutdown(Run::Stop)).await;
            }
            for addr in updates {
                let _ = addr.send(SetRoutes(version)).await;
            }
        })
    }
}

impl Handler<EndBgp> for NodeAgent {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: EndBgp, _: &mut Context<Self>) -> Self::Result {
        let peers = std::mem::take(&mut self.bgp);
        Box::pin(async move {
            let ends = peers.into_values().map(|(peer, addr)| async move {
                let how = if peer.graceful_restart {
                    Run::Restart
                } else {
                    Run::Drain
                };
                let _ = addr.send(Shutdown(how)).await;
            });
            futures::future::join_all(ends).await;
        })
    }
}
