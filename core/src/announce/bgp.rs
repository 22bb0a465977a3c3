//! What a node announces over BGP: the sessions it opens (the BGPPeers whose node selectors
//! match it) and, per peer, the prefixes of the addresses it is eligible for, with their
//! attributes. Pure and deterministic, like the Layer 2 owner choice; unlike it, every eligible
//! node announces (the routers spread traffic over them, ECMP).

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::owners::{advertisements_of, NodeFacts, Target};
use crate::config::model::{Advertisement, Peer};
use crate::config::Config;
use crate::names::PeerName;
use crate::net::bgp::attrs::{Community, RouteAttrs};

/// What a node announces over BGP, keyed by prefix and peer.
pub type Routes = BTreeMap<(IpNet, PeerName), RouteAttrs>;

/// One route: a prefix to one peer.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct BgpRoute {
    /// The prefix (an address, or an aggregate of it).
    pub prefix: IpNet,
    /// The peer it goes to.
    pub peer: PeerName,
    /// Its attributes.
    pub attrs: RouteAttrs,
}

/// The BGPPeers a node opens sessions with.
pub fn peers_for(config: &Config, node: &NodeFacts) -> BTreeMap<PeerName, Peer> {
    config
        .peers
        .iter()
        .filter(|(_, p)| p.selects_node(&node.labels))
        // The speaker holds no BFDProfiles: each peer carries its own.
        .map(|(n, p)| (n.clone(), p.with_bfd_profile(&config.bfd_profiles)))
        .collect()
}

/// Whether any BGPAdvertisement covers `pool` at all (for some of its Services, when the
/// advertisement has serviceSelectors).
pub fn announced_in_bgp(config: &Config, pool: &crate::names::PoolName) -> bool {
    config.pools.get(pool).is_some_and(|p| {
        config
            .bgp_advertisements
            .iter()
            .any(|adv| adv.pools.includes(pool, &p.labels))
    })
}

/// Whether any BGPAdvertisement announces `target` at all.
pub fn advertised(config: &Config, target: &Target) -> bool {
    advertisements_of(config, &config.bgp_advertisements, target)
        .next()
        .is_some()
}

/// The prefix an address is announced as, with an advertisement's aggregation length.
pub fn prefix_of(addr: IpAddr, v4_len: u8, v6_len: u8) -> IpNet {
    let len = match addr {
        IpAddr::V4(_) => v4_len.min(32),
        IpAddr::V6(_) => v6_len.min(128),
    };
    // The lengths are clamped to the family's width above, so the prefix always exists.
    IpNet::new(addr, len)
        .map(|n| n.trunc())
        .unwrap_or_else(|_| IpNet::from(addr))
}

/// Every route `node` announces, keyed by prefix and peer: the addresses it is eligible for
/// (alive, not excluded, ready for every Service holding the address) that a BGPAdvertisement
/// selecting the node announces (it covers the pool, and its serviceSelectors select one of the
/// Services holding the address), to the peers that advertisement names (all of the node's
/// peers when it names none) whose sessions carry the address's family. Routes for one prefix and peer from several advertisements merge:
/// communities join, the highest LOCAL_PREF wins.
pub fn routes_for<'a>(
    config: &Config,
    targets: impl IntoIterator<Item = &'a Target>,
    node: &NodeFacts,
) -> Routes {
    let mut out = Routes::new();
    if !node.usable {
        return out;
    }
    let peers = peers_for(config, node);
    if peers.is_empty() || config.bgp_advertisements.is_empty() {
        return out;
    }
    for t in targets {
        if t.services().any(|s| node.unready.contains(s)) {
            continue;
        }
        for adv in advertisements_of(config, &config.bgp_advertisements, t)
            .filter(|a| a.selects_node(&node.labels))
        {
            let prefix = prefix_of(t.address, adv.aggregation_length, adv.aggregation_length_v6);
            // A session carries its families alone: a route of the other family is not
            // announced to that peer (nor reported as announced).
            let to = peers
                .iter()
                .filter(|(name, p)| adv.selects_peer(name) && p.families().carries(&prefix));
            for (peer, _) in to {
                let a = out.entry((prefix, peer.clone())).or_default();
                a.local_pref = a.local_pref.max(adv.local_pref);
                let mut c: BTreeSet<Community> = a.communities.iter().copied().collect();
                c.extend(adv.communities.iter().copied());
                a.communities = c.into_iter().collect();
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Documents;
    use crate::labels::LabelSet;
    use crate::names::NodeName;

    fn config(yaml: &str) -> Config {
        let docs = Documents::from_str(yaml, "t.yaml").into_result().unwrap();
        crate::config::validate(&docs).unwrap()
    }

    /// The pool `public` and the peer `tor-a`, nothing announced.
    macro_rules! pool_and_peer {
        () => {
            "apiVersion: ironlb.io/v1beta1
kind: IPAddressPool
metadata: {name: public}
spec: {addresses: [192.0.2.0/24, 2001:db8::/64]}
---
apiVersion: ironlb.io/v1beta1
kind: BGPPeer
metadata: {name: tor-a}
spec: {myASN: 64512, peerASN: 64513, peerAddress: 198.51.100.250, dualStackAddressFamily: true}
"
        };
    }

    const POOL_AND_PEER: &str = pool_and_peer!();
    const CFG: &str = concat!(
        pool_and_peer!(),
        "---
apiVersion: ironlb.io/v1beta1
kind: BGPPeer
metadata: {name: tor-b}
spec:
  myASN: 64512
  peerASN: 64512
  peerAddress: 198.51.100.251
  nodeSelectors: [{matchLabels: {rack: b}}]
---
apiVersion: ironlb.io/v1beta1
kind: BGPAdvertisement
metadata: {name: all}
spec:
  ipAddressPools: [public]
  communities: [\"64512:100\"]
---
apiVersion: ironlb.io/v1beta1
kind: BGPAdvertisement
metadata: {name: aggregated}
spec:
  ipAddressPools: [public]
  aggregationLength: 24
  aggregationLengthV6: 64
  localPref: 200
  peers: [tor-b]
  communities: [\"large:64512:1:2\"]
"
    );

    fn node(labels: &[(&str, &str)]) -> NodeFacts {
        NodeFacts {
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            usable: true,
            ..NodeFacts::default()
        }
    }

    fn target(a: &str, s: &str) -> Target {
        Target::new(
            a.parse().unwrap(),
            "public".parse().unwrap(),
            [(s.parse().unwrap(), LabelSet::new())],
        )
    }

    /// A target held by one Service labelled `app: <app>`.
    fn labelled(a: &str, s: &str, app: &str) -> Target {
        let mut t = target(a, s);
        t.holders[0].labels = LabelSet::from_iter([("app", app)]);
        t
    }

    /// `public` and the peer tor-a, with one BGPAdvertisement of these serviceSelectors.
    fn selecting(service_selectors: &str) -> Config {
        config(&format!(
            "{POOL_AND_PEER}---\napiVersion: ironlb.io/v1beta1\nkind: BGPAdvertisement\nmetadata: {{name: some}}\nspec:\n  ipAddressPools: [public]\n  communities: [\"64512:7\"]\n  serviceSelectors: {service_selectors}\n"
        ))
    }

    #[test]
    fn service_selectors_decide_which_addresses_of_a_pool_are_routed() {
        let web = labelled("192.0.2.7", "d/web", "web");
        let db = labelled("192.0.2.9", "d/db", "db");
        let ts = vec![web.clone(), db.clone()];
        let tor_a: PeerName = "tor-a".parse().unwrap();
        let host = |t: &Target| (IpNet::from(t.address), tor_a.clone());
        let c = selecting("[{matchLabels: {app: web}}]");
        let r = routes_for(&c, &ts, &node(&[]));
        assert_eq!(r.keys().collect::<Vec<_>>(), vec![&host(&web)]);
        assert_eq!(
            r[&host(&web)].communities,
            vec![Community::Standard(64512, 7)]
        );
        assert!(advertised(&c, &web) && !advertised(&c, &db));
        assert!(announced_in_bgp(&c, &web.pool));
        // Any selector may match; an empty list selects every Service.
        for any in [
            "[{matchLabels: {app: db}}, {matchExpressions: [{key: app, operator: NotIn, values: [db]}]}]",
            "[]",
        ] {
            let r = routes_for(&selecting(any), &ts, &node(&[]));
            assert!(r.contains_key(&host(&web)) && r.contains_key(&host(&db)), "{any}");
        }
        // An address web shares with db is routed for web.
        let mut shared = db.clone();
        let mut holders = shared.holders.to_vec();
        holders.push(crate::announce::owners::Holder {
            service: "d/web".parse().unwrap(),
            labels: web.holders[0].labels.clone(),
        });
        shared.holders = holders.into();
        let r = routes_for(&c, std::slice::from_ref(&shared), &node(&[]));
        assert!(r.contains_key(&host(&shared)));
    }

    #[test]
    fn peers_follow_node_selectors() {
        let c = config(CFG);
        assert_eq!(peers_for(&c, &node(&[])).len(), 1);
        assert_eq!(peers_for(&c, &node(&[("rack", "b")])).len(), 2);
    }

    #[test]
    fn routes_go_to_the_advertised_peers_aggregated_with_merged_attributes() {
        let c = config(CFG);
        let ts = vec![
            target("192.0.2.7", "d/a"),
            target("192.0.2.9", "d/b"),
            target("2001:db8::5", "d/c"),
        ];
        let r = routes_for(&c, &ts, &node(&[("rack", "b")]));
        let tor_a: PeerName = "tor-a".parse().unwrap();
        let tor_b: PeerName = "tor-b".parse().unwrap();
        let p = |s: &str| s.parse::<IpNet>().unwrap();
        // tor-a: each address as a host route, only the first advertisement's community.
        assert_eq!(
            r.get(&(p("192.0.2.7/32"), tor_a.clone()))
                .unwrap()
                .communities,
            vec![Community::Standard(64512, 100)]
        );
        assert!(!r.contains_key(&(p("192.0.2.0/24"), tor_a.clone())));
        // tor-b: host routes from the first, the /24 aggregate (once for both addresses) from
        // the second, with its LOCAL_PREF and large community.
        let agg = r.get(&(p("192.0.2.0/24"), tor_b.clone())).unwrap();
        assert_eq!(agg.local_pref, Some(200));
        assert_eq!(agg.communities, vec![Community::Large(64512, 1, 2)]);
        assert!(r.contains_key(&(p("192.0.2.9/32"), tor_b.clone())));
        // tor-a carries both families (dualStackAddressFamily), tor-b its own, IPv4, alone.
        assert!(r.contains_key(&(p("2001:db8::5/128"), tor_a)));
        assert!(!r.contains_key(&(p("2001:db8::/64"), tor_b.clone())));
        assert!(!r.contains_key(&(p("2001:db8::5/128"), tor_b)));
        // tor-a: three host routes; tor-b: the two IPv4 ones and their aggregate.
        assert_eq!(r.len(), 3 + 3);
    }

    #[test]
    fn a_session_carries_the_family_of_its_peer_address_unless_dual_stack() {
        let peers = "---
apiVersion: ironlb.io/v1beta1
kind: BGPPeer
metadata: {name: v6}
spec: {myASN: 64512, peerASN: 64513, peerAddress: '2001:db8::250'}
---
apiVersion: ironlb.io/v1beta1
kind: BGPPeer
metadata: {name: v4}
spec: {myASN: 64512, peerASN: 64513, peerAddress: 198.51.100.251, disableMP: true}
---
apiVersion: ironlb.io/v1beta1
kind: BGPAdvertisement
metadata: {name: all}
spec: {ipAddressPools: [public]}
";
        let c = config(&format!("{POOL_AND_PEER}{peers}"));
        let ts = vec![target("192.0.2.7", "d/a"), target("2001:db8::5", "d/c")];
        let r = routes_for(&c, &ts, &node(&[]));
        let mut got: Vec<String> = r.keys().map(|(p, peer)| format!("{p} {peer}")).collect();
        got.sort();
        assert_eq!(
            got,
            vec![
                "192.0.2.7/32 tor-a",
                "192.0.2.7/32 v4",
                "2001:db8::5/128 tor-a",
                "2001:db8::5/128 v6",
            ]
        );
    }

    #[test]
    fn unready_services_and_unusable_nodes_announce_nothing() {
        let c = config(CFG);
        let ts = vec![target("192.0.2.7", "d/a"), target("192.0.2.9", "d/b")];
        let mut n = node(&[]);
        n.unready.insert("d/a".parse().unwrap());
        let r = routes_for(&c, &ts, &n);
        assert_eq!(r.len(), 1);
        n.usable = false;
        assert!(routes_for(&c, &ts, &n).is_empty());
        let _ = NodeName::new("x");
    }
}
