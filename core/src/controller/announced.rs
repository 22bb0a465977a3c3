//! What the leader last told each node to announce, per Service: the one source of the
//! ServiceL2Status and ServiceBGPStatus objects, of `ironlb ctl announcements` and of the
//! per-address metrics, so `kubectl` and `ctl` tell the same story.
//!
//! The publisher builds it from what it sent each node (not from what the Raft state says
//! owners should be), at most once a second, and shares it on a `watch` channel.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::announce::bgp::Routes;
use crate::announce::owners::Target;
use crate::announce::proto::L2Address;
use crate::config::InterfaceName;
use crate::names::{NodeName, PeerName, ServiceKey};

/// A node told to answer for a Service's addresses in Layer 2 mode.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct L2Announcement {
    /// The node.
    pub node: NodeName,
    /// The Service's addresses it answers for.
    pub addresses: Vec<IpAddr>,
    /// The interfaces it answers on; empty: every eligible interface.
    pub interfaces: Vec<InterfaceName>,
}

/// A node told to announce a Service's addresses over BGP.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BgpAnnouncement {
    /// The node.
    pub node: NodeName,
    /// The Service's addresses it announces.
    pub addresses: Vec<IpAddr>,
    /// The BGP peers it announces them to.
    pub peers: Vec<PeerName>,
}

/// Everything the leader told its nodes to announce, and how its nodes stand.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Announcements {
    /// Whether this member leads and published this (a follower's is empty).
    pub leading: bool,
    /// Layer 2, per Service, ordered by node.
    pub l2: BTreeMap<ServiceKey, Vec<L2Announcement>>,
    /// BGP, per Service, ordered by node.
    pub bgp: BTreeMap<ServiceKey, Vec<BgpAnnouncement>>,
    /// Layer 2 addresses that have an allocation but no node answering for them.
    pub l2_unowned: Vec<IpAddr>,
    /// Speakers holding a session with the leader.
    pub speakers_connected: usize,
    /// Of those, speakers whose lease ran out.
    pub speakers_fenced: usize,
}

/// What one node was sent, as [`build`] reads it.
pub struct NodeSent<'a> {
    /// The node.
    pub node: &'a NodeName,
    /// Whether its lease ran out.
    pub fenced: bool,
    /// Its Layer 2 addresses.
    pub l2: &'a BTreeMap<IpAddr, L2Address>,
    /// Its BGP routes.
    pub routes: &'a Routes,
}

/// Builds the summary from what each node was sent; `targets` (every allocated address with its
/// Services) names the Services of the BGP routes, and those `in_l2` with no node answering
/// are the unowned ones.
pub fn build<'a>(
    nodes: impl IntoIterator<Item = NodeSent<'a>>,
    targets: impl IntoIterator<Item = &'a Target>,
    in_l2: impl Fn(&Target) -> bool,
) -> Announcements {
    let targets: Vec<&Target> = targets.into_iter().collect();
    let target_at: BTreeMap<IpAddr, &Target> = targets.iter().map(|t| (t.address, *t)).collect();
    let mut out = Announcements {
        leading: true,
        ..Announcements::default()
    };
    let mut answered = std::collections::BTreeSet::new();
    for n in nodes {
        out.speakers_connected += 1;
        out.speakers_fenced += usize::from(n.fenced);
        let mut l2: BTreeMap<&ServiceKey, L2Announcement> = BTreeMap::new();
        for a in n.l2.values() {
            answered.insert(a.address);
            for s in &a.services {
                let e = l2.entry(s).or_insert_with(|| L2Announcement {
                    node: n.node.clone(),
                    addresses: Vec::new(),
                    interfaces: Vec::new(),
                });
                e.addresses.push(a.address);
                for i in &a.interfaces {
                    if !e.interfaces.contains(i) {
                        e.interfaces.push(i.clone());
                    }
                }
            }
        }
        for (s, a) in l2 {
            out.l2.entry(s.clone()).or_default().push(a);
        }
        let mut bgp: BTreeMap<&ServiceKey, BgpAnnouncement> = BTreeMap::new();
        for (prefix, peer) in n.routes.keys() {
            let Some(target) = target_at.get(&host_address(prefix)) else {
                continue;
            };
            for s in target.services() {
                let e = bgp.entry(s).or_insert_with(|| BgpAnnouncement {
                    node: n.node.clone(),
                    addresses: Vec::new(),
                    peers: Vec::new(),
                });
                if !e.addresses.contains(&prefix.addr()) {
                    e.addresses.push(prefix.addr());
                }
                if !e.peers.contains(peer) {
                    e.peers.push(peer.clone());
                }
            }
        }
        for (s, a) in bgp {
            out.bgp.entry(s.clone()).or_default().push(a);
        }
    }
    for list in out.l2.values_mut() {
        list.sort_by(|a, b| a.node.cmp(&b.node));
    }
    for list in out.bgp.values_mut() {
        list.sort_by(|a, b| a.node.cmp(&b.node));
        for a in list.iter_mut() {
            a.addresses.sort();
            a.peers.sort();
        }
    }
    out.l2_unowned = targets
        .iter()
        .filter(|t| !answered.contains(&t.address) && in_l2(t))
        .map(|t| t.address)
        .collect();
    out
}

/// The address a route announces (its prefix's network address).
fn host_address(prefix: &IpNet) -> IpAddr {
    prefix.network()
}

/// The leader's side of the channel.
pub type Board = Arc<watch::Sender<Arc<Announcements>>>;

/// A fresh channel holding the empty summary.
pub fn board() -> Board {
    Arc::new(watch::channel(Arc::new(Announcements::default())).0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> ServiceKey {
        s.parse().unwrap()
    }

    #[test]
    fn groups_by_service_and_counts_what_nobody_answers_for() {
        let (a, b) = ("a".parse().unwrap(), "b".parse().unwrap());
        let addr = |s: &str| s.parse::<IpAddr>().unwrap();
        let target = |ip: &str, svc: &str| {
            Target::new(
                addr(ip),
                "p".parse().unwrap(),
                [(key(svc), Default::default())],
            )
        };
        let targets = vec![
            target("192.0.2.1", "ns/web"),
            target("2001:db8::1", "ns/web"),
            target("192.0.2.2", "ns/db"),
        ];
        let l2a: BTreeMap<IpAddr, L2Address> = [("192.0.2.1", "eth0"), ("2001:db8::1", "eth1")]
            .into_iter()
            .map(|(ip, i)| {
                (
                    addr(ip),
                    L2Address {
                        address: addr(ip),
                        services: vec![key("ns/web")],
                        interfaces: vec![InterfaceName::try_from(i.to_string()).unwrap()],
                    },
                )
            })
            .collect();
        let mut routes = Routes::new();
        routes.insert(
            ("192.0.2.2/32".parse().unwrap(), "r1".parse().unwrap()),
            Default::default(),
        );
        let empty = BTreeMap::new();
        let out = build(
            [
                NodeSent {
                    node: &a,
                    fenced: false,
                    l2: &l2a,
                    routes: &Routes::new(),
                },
                NodeSent {
                    node: &b,
                    fenced: true,
                    l2: &empty,
                    routes: &routes,
                },
            ],
            &targets,
            |_| true,
        );
        let web = &out.l2[&key("ns/web")];
        assert_eq!(web.len(), 1);
        assert_eq!(web[0].node, a);
        assert_eq!(web[0].addresses.len(), 2);
        assert_eq!(web[0].interfaces.len(), 2);
        let db = &out.bgp[&key("ns/db")];
        assert_eq!((db[0].node.clone(), db[0].peers.len()), (b, 1));
        assert_eq!(out.l2_unowned, vec![addr("192.0.2.2")]);
        assert_eq!((out.speakers_connected, out.speakers_fenced), (2, 1));
    }
}
