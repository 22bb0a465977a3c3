//! The NodeAgent: the node's desired state (which address to answer for on which interface),
//! fanned out to the interfaces' responders.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use actix::{Actor, Addr, Context, Handler, Message, ResponseFuture};
use pnet_base::MacAddr;

use super::responder::{ArpResponder, NdpResponder, Own};
use super::{LeaseGate, SpeakerMetrics};
use crate::announce::proto::L2Address;
use crate::net::local;

/// Answer for exactly these addresses (an empty map: for nothing). Resolves once every
/// responder answers accordingly.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SetAddresses(pub BTreeMap<IpAddr, L2Address>);

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
    ) -> io::Result<Self> {
        let mut opened = BTreeMap::new();
        for name in interfaces {
            let wrap = |e: io::Error| io::Error::new(e.kind(), format!("interface {name}: {e}"));
            let arp = ArpResponder::open(name, gate.clone(), metrics.clone()).map_err(wrap)?;
            let ndp = NdpResponder::open(name, gate.clone(), metrics.clone()).map_err(wrap)?;
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
        let wanted = msg.0;
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
                let _ = arp.send(Own(v4)).await;
                let _ = ndp.send(Own(v6)).await;
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
