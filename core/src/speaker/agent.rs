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
use super::responder::{ArpResponder, NdpResponder, Own};
use super::LeaseGate;
use crate::announce::bgp::{RouteAttrs, Routes};
use crate::announce::proto::L2Address;
use crate::config::model::Peer;
use crate::metrics::speaker::SpeakerMetrics;
use crate::names::PeerName;
use crate::net::bgp::session::Run;
use crate::net::local;
use ipnet::IpNet;

/// Hold exactly these BGP sessions and announce exactly these routes on them.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SetBgp {
    /// The sessions.
    pub peers: BTreeMap<PeerName, Peer>,
    /// The routes, by prefix and peer (shared with the session that sent them).
    pub routes: Arc<Routes>,
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

struct Interface {
    mac: MacAddr,
    arp: Addr<ArpResponder>,
    ndp: Addr<NdpResponder>,
}

/// What the node announces, and where.
pub struct NodeAgent {
    interfaces: BTreeMap<String, Interface>,
    current: BTreeMap<IpAddr, L2Address>,
    bind_local: bool,
    metrics: Arc<SpeakerMetrics>,
    bgp: BTreeMap<PeerName, (Peer, Addr<BgpPeer>)>,
}

/// The routes of `routes` that go to `peer`.
fn routes_to(routes: &Routes, peer: &PeerName) -> BTreeMap<IpNet, RouteAttrs> {
    routes
        .iter()
        .filter(|((_, p), _)| p == peer)
        .map(|((prefix, _), a)| (*prefix, a.clone()))
        .collect()
}

impl NodeAgent {
    /// Opens a responder pair on each of `interfaces` (sockets need CAP_NET_RAW). With
    /// `bind_local`, answered addresses are also bound to `lo` and the interfaces set to strict
    /// ARP. Must run on the actor arbiter.
    pub fn open(
        interfaces: &[String],
        bind_local: bool,
        gate: Arc<LeaseGate>,
        metrics: Arc<SpeakerMetrics>,
        packets: &tokio::runtime::Handle,
    ) -> io::Result<Self> {
        let mut opened = BTreeMap::new();
        for name in interfaces {
            let wrap = |e: io::Error| io::Error::new(e.kind(), format!("interface {name}: {e}"));
            let arp =
                ArpResponder::open(name, gate.clone(), metrics.clone(), packets).map_err(wrap)?;
            let ndp =
                NdpResponder::open(name, gate.clone(), metrics.clone(), packets).map_err(wrap)?;
            if bind_local {
                local::strict_arp(name).map_err(wrap)?;
            }
            opened.insert(
                name.clone(),
                Interface {
                    mac: arp.mac(),
                    arp: arp.start(),
                    ndp: ndp.start(),
                },
            );
        }
        Ok(Self {
            interfaces: opened,
            current: BTreeMap::new(),
            bind_local,
            metrics,
            bgp: BTreeMap::new(),
        })
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
                .map(|(n, i)| (n.clone(), i.mac))
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
            let on_here = |a: &L2Address| {
                a.interfaces.is_empty() || a.interfaces.iter().any(|i| i.as_str() == name)
            };
            let v4: BTreeSet<Ipv4Addr> = wanted
                .values()
                .filter(|a| on_here(a))
                .filter_map(|a| match a.address {
                    IpAddr::V4(v4) => Some(v4),
                    IpAddr::V6(_) => None,
                })
                .collect();
            let v6: BTreeSet<Ipv6Addr> = wanted
                .values()
                .filter(|a| on_here(a))
                .filter_map(|a| match a.address {
                    IpAddr::V6(v6) => Some(v6),
                    IpAddr::V4(_) => None,
                })
                .collect();
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

impl Handler<SetBgp> for NodeAgent {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, msg: SetBgp, _: &mut Context<Self>) -> Self::Result {
        let SetBgp { peers, routes } = msg;
        tracing::debug!(
            peers = peers.len(),
            routes = routes.len(),
            "BGP desired state"
        );
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
            let mine = routes_to(&routes, &name);
            match self.bgp.get(&name) {
                Some((_, addr)) => updates.push((addr.clone(), mine)),
                None => {
                    let actor = BgpPeer::start_session(
                        name.clone(),
                        peer.clone(),
                        mine,
                        self.metrics.clone(),
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
            for (addr, mine) in updates {
                let _ = addr.send(SetRoutes(mine)).await;
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
