//! The choice of one Layer 2 owner per address: pure and deterministic, so the leader's
//! decisions can be tested without clocks or sockets.
//!
//! Rules (ARCHITECTURE.md, "Liveness, ownership and fencing"):
//! - an owner that is still eligible keeps its address (sticky: a joining node moves nothing);
//! - an address moves only when its owner died, fenced, drained or became ineligible;
//! - a new owner is the eligible node owning fewest addresses (ties by name), preferring one
//!   that already owns another address of the same Service, so a dual-stack Service stays on
//!   one node;
//! - no address is given to a node while any other node may still be answering for it: an
//!   owner that is alive but ineligible is first told to let go (owner `None`), and the address
//!   moves once it has acknowledged;
//! - nothing moves while moves are not allowed (a new leader's first lease).

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use crate::config::model::{Advertisement, InterfaceName};
use crate::config::Config;
use crate::labels::{LabelSet, Labels};
use crate::names::{NodeName, PoolName, ServiceKey};

/// An allocated address and who holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// The address.
    pub address: IpAddr,
    /// Its pool.
    pub pool: PoolName,
    /// The Services holding it, in order, with their labels (which advertisements'
    /// serviceSelectors match). One exact list of pairs: the view holds a target per address.
    pub holders: Box<[Holder]>,
}

/// A Service holding an address, and its labels.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Holder {
    /// The Service.
    pub service: ServiceKey,
    /// Its labels, as its allocation request last gave them.
    pub labels: LabelSet,
}

impl Target {
    /// A target held by these Services with these labels.
    pub fn new(
        address: IpAddr,
        pool: PoolName,
        holders: impl IntoIterator<Item = (ServiceKey, LabelSet)>,
    ) -> Self {
        Self {
            address,
            pool,
            holders: holders
                .into_iter()
                .map(|(service, labels)| Holder { service, labels })
                .collect(),
        }
    }

    /// The Services holding the address, in order.
    pub fn services(&self) -> impl Iterator<Item = &ServiceKey> + Clone + '_ {
        self.holders.iter().map(|h| &h.service)
    }

    /// The labels of each Service holding the address, in the order of [`Target::services`].
    pub fn service_labels(&self) -> impl Iterator<Item = &LabelSet> + '_ {
        self.holders.iter().map(|h| &h.labels)
    }
}

/// Every allocated address of the allocator, with its pool, holders and their labels (as their
/// allocation requests last gave them), in address order.
pub fn targets(allocator: &crate::ipam::Allocator) -> Vec<Target> {
    allocator
        .held_addresses()
        .filter_map(|(addr, _)| target(allocator, *addr))
        .collect()
}

/// One allocated address as [`targets`] lists it; `None` when nobody holds it (or no pool
/// hands it out).
pub fn target(allocator: &crate::ipam::Allocator, address: IpAddr) -> Option<Target> {
    let holders = allocator.holders(address).map(|s| {
        let labels = allocator
            .allocation(s)
            .map(|a| a.request.service_labels.clone())
            .unwrap_or_default();
        (s.clone(), labels)
    });
    let target = Target::new(address, allocator.pool_of(address)?.clone(), holders);
    (!target.holders.is_empty()).then_some(target)
}

/// What the leader knows of a node.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeFacts {
    /// Its labels.
    pub labels: Labels,
    /// Its interfaces.
    pub interfaces: BTreeSet<InterfaceName>,
    /// Services it must not answer for.
    pub unready: BTreeSet<ServiceKey>,
    /// Alive, holding a lease and not draining: it may be given addresses.
    pub usable: bool,
}

/// The advertisements among `ads` (of either kind) that announce `target`: those covering its
/// pool whose serviceSelectors select one of its Services.
pub(crate) fn advertisements_of<'a, A: Advertisement>(
    config: &'a Config,
    ads: &'a [A],
    target: &'a Target,
) -> impl Iterator<Item = &'a A> + 'a {
    let pool_labels = config.pools.get(&target.pool).map(|p| &p.labels);
    ads.iter().filter(move |adv| {
        pool_labels.is_some_and(|labels| adv.pool_selection().includes(&target.pool, labels))
            && adv.selects_any_service(target.service_labels())
    })
}

/// The interfaces `node` would announce `target` on (empty: every interface), or `None` when no
/// L2Advertisement announcing it selects the node (or none leaves it an interface).
pub fn announce_on(
    config: &Config,
    target: &Target,
    node: &NodeFacts,
) -> Option<Vec<InterfaceName>> {
    let mut chosen = BTreeSet::new();
    let mut any = false;
    for adv in advertisements_of(config, &config.l2_advertisements, target)
        .filter(|a| a.selects_node(&node.labels))
    {
        if adv.interfaces.is_empty() {
            return Some(Vec::new());
        }
        for i in adv
            .interfaces
            .iter()
            .filter(|i| node.interfaces.contains(*i))
        {
            any = true;
            chosen.insert(i.clone());
        }
    }
    any.then(|| chosen.into_iter().collect())
}

/// Whether any L2Advertisement announces `target` at all.
pub fn announced_in_l2(config: &Config, target: &Target) -> bool {
    advertisements_of(config, &config.l2_advertisements, target)
        .next()
        .is_some()
}

/// Whether `node` may own `target`.
pub fn eligible(config: &Config, target: &Target, node: &NodeFacts) -> bool {
    node.usable
        && target.services().all(|s| !node.unready.contains(s))
        && announce_on(config, target, node).is_some()
}

/// The inputs of one decision.
pub struct Inputs<'a, F>
where
    F: Fn(&NodeName, IpAddr) -> bool,
{
    /// The configuration in force.
    pub config: &'a Config,
    /// Every allocated address.
    pub targets: &'a [&'a Target],
    /// The nodes the leader knows, alive or not.
    pub nodes: &'a BTreeMap<NodeName, NodeFacts>,
    /// The committed owners.
    pub owners: &'a dyn OwnerMap,
    /// Whether a node may still be answering for an address (it was told to, and has not
    /// acknowledged letting go; or it has not yet acknowledged anything from this leader).
    pub answering: F,
    /// Whether owners may change at all.
    pub moves_allowed: bool,
}

/// The committed owners as [`plan`] reads them: the leader keeps them in a persistent map, tests
/// in a plain one.
pub trait OwnerMap {
    /// The owner of `addr`.
    fn owner(&self, addr: &IpAddr) -> Option<&NodeName>;
    /// Every owned address, in address order.
    fn owned(&self) -> Box<dyn Iterator<Item = &IpAddr> + '_>;
}

impl OwnerMap for BTreeMap<IpAddr, NodeName> {
    fn owner(&self, addr: &IpAddr) -> Option<&NodeName> {
        self.get(addr)
    }
    fn owned(&self) -> Box<dyn Iterator<Item = &IpAddr> + '_> {
        Box::new(self.keys())
    }
}

impl OwnerMap for imbl::OrdMap<IpAddr, NodeName> {
    fn owner(&self, addr: &IpAddr) -> Option<&NodeName> {
        self.get(addr)
    }
    fn owned(&self) -> Box<dyn Iterator<Item = &IpAddr> + '_> {
        Box::new(self.keys())
    }
}

/// The owner changes to commit, in address order: `(address, Some(node))` gives it to a node,
/// `(address, None)` takes it from its owner.
pub fn plan<F>(inputs: &Inputs<'_, F>) -> Vec<(IpAddr, Option<NodeName>)>
where
    F: Fn(&NodeName, IpAddr) -> bool,
{
    let Inputs {
        config,
        targets,
        nodes,
        owners,
        answering,
        moves_allowed,
    } = inputs;
    let mut moves = Vec::new();
    let wanted: BTreeSet<IpAddr> = targets
        .iter()
        .filter(|t| announced_in_l2(config, t))
        .map(|t| t.address)
        .collect();
    // Owners of addresses no longer announced in Layer 2 (released, or no advertisement covers
    // their pool and selects one of their Services any more) let go; that is never unsafe, so
    // it needs no permission.
    for addr in owners.owned() {
        if !wanted.contains(addr) {
            moves.push((*addr, None));
        }
    }
    let mut load = Load::of(targets, &wanted, *owners);
    for t in targets
        .iter()
        .copied()
        .filter(|t| wanted.contains(&t.address))
    {
        let current = owners.owner(&t.address);
        if let Some(o) = current {
            // The common case, checked first so a steady state costs one test per address
            // rather than one per address and node.
            if nodes.get(o).is_some_and(|f| eligible(config, t, f)) {
                continue;
            }
            if !moves_allowed {
                continue;
            }
            if answering(o, t.address) {
                // Alive but ineligible: it lets go first; the address moves once it has.
                moves.push((t.address, None));
                load.release(o);
                continue;
            }
        }
        if !moves_allowed {
            continue;
        }
        let eligible_nodes: Vec<&NodeName> = nodes
            .iter()
            .filter(|(_, f)| eligible(config, t, f))
            .map(|(n, _)| n)
            .collect();
        match (
            best_owner(nodes, &eligible_nodes, t, answering, &load),
            current,
        ) {
            (Some(b), Some(o)) if b == o => {}
            (Some(b), _) => {
                if let Some(o) = current {
                    load.release(o);
                }
                load.give(b, t);
                moves.push((t.address, Some(b.clone())));
            }
            (None, Some(_)) => moves.push((t.address, None)),
            (None, None) => {}
        }
    }
    moves.sort_by_key(|(a, _)| *a);
    moves.dedup_by_key(|(a, _)| *a);
    moves
}

/// How many addresses each node owns, and which nodes own an address of each Service, kept up
/// to date as the plan moves addresses, so that later choices spread over the new owners.
struct Load<'a> {
    count: BTreeMap<&'a NodeName, usize>,
    owned_by_service: BTreeMap<&'a ServiceKey, BTreeSet<&'a NodeName>>,
}

impl<'a> Load<'a> {
    /// The load of the committed owners of the `wanted` addresses.
    fn of(targets: &[&'a Target], wanted: &BTreeSet<IpAddr>, owners: &'a dyn OwnerMap) -> Self {
        let mut count: BTreeMap<&NodeName, usize> = BTreeMap::new();
        let mut owned_by_service: BTreeMap<&ServiceKey, BTreeSet<&NodeName>> = BTreeMap::new();
        for t in targets.iter().filter(|t| wanted.contains(&t.address)) {
            if let Some(o) = owners.owner(&t.address) {
                *count.entry(o).or_default() += 1;
                for s in t.services() {
                    owned_by_service.entry(s).or_default().insert(o);
                }
            }
        }
        Self {
            count,
            owned_by_service,
        }
    }

    /// `node` owns one address fewer.
    fn release(&mut self, node: &NodeName) {
        if let Some(c) = self.count.get_mut(node) {
            *c = c.saturating_sub(1);
        }
    }

    /// `node` is given `target`.
    fn give(&mut self, node: &'a NodeName, target: &'a Target) {
        *self.count.entry(node).or_default() += 1;
        for s in target.services() {
            self.owned_by_service.entry(s).or_default().insert(node);
        }
    }
}

/// The node to give `t` to: an eligible one that no other node may still be answering for it
/// against, preferring one that owns another address of the same Service, then the one owning
/// fewest (ties by name).
fn best_owner<'a, F>(
    nodes: &BTreeMap<NodeName, NodeFacts>,
    eligible_nodes: &[&'a NodeName],
    t: &Target,
    answering: &F,
    load: &Load<'_>,
) -> Option<&'a NodeName>
where
    F: Fn(&NodeName, IpAddr) -> bool,
{
    // A candidate must be the only node that may still be answering for the address, if any
    // is: one pass over the nodes instead of one per candidate.
    let mut still_answering = nodes.keys().filter(|n| answering(n, t.address));
    let only = match (still_answering.next(), still_answering.next()) {
        (None, _) => None,
        (Some(n), None) => Some(n),
        (Some(_), Some(_)) => return None,
    };
    let candidates: Vec<&NodeName> = eligible_nodes
        .iter()
        .copied()
        .filter(|cand| only.is_none_or(|o| o == *cand))
        .collect();
    let siblings: BTreeSet<&NodeName> = t
        .services()
        .filter_map(|s| load.owned_by_service.get(s))
        .flatten()
        .copied()
        .collect();
    candidates.iter().copied().min_by_key(|n| {
        (
            !siblings.contains(n),
            load.count.get(n).copied().unwrap_or(0),
            *n,
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Documents;

    fn config(yaml: &str) -> Config {
        let docs = Documents::from_str(yaml, "t.yaml").into_result().unwrap();
        crate::config::validate(&docs).unwrap()
    }

    /// Two pools, `public` and `dark`, neither announced.
    macro_rules! pools {
        () => {
            "apiVersion: ironlb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: public}\nspec: {addresses: [192.0.2.0/24, 2001:db8::/120]}\n---\napiVersion: ironlb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: dark}\nspec: {addresses: [198.51.100.0/24]}\n"
        };
    }

    const POOLS: &str = pools!();
    /// The pools, `public` announced in Layer 2 for every Service.
    const BASE: &str = concat!(
        pools!(),
        "---\napiVersion: ironlb.io/v1beta1\nkind: L2Advertisement\nmetadata: {name: l2}\nspec: {ipAddressPools: [public]}\n"
    );

    fn node(name: &str) -> NodeName {
        NodeName::new(name).unwrap()
    }

    fn facts(labels: &[(&str, &str)]) -> NodeFacts {
        NodeFacts {
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            interfaces: [InterfaceName::new("eth0").unwrap()].into(),
            unready: BTreeSet::new(),
            usable: true,
        }
    }

    fn target(addr: &str, service: &str) -> Target {
        Target::new(
            addr.parse().unwrap(),
            "public".parse().unwrap(),
            [(service.parse().unwrap(), LabelSet::new())],
        )
    }

    /// A target of `public` held by one Service with these labels.
    fn labelled(addr: &str, service: &str, labels: &[(&str, &str)]) -> Target {
        let mut t = target(addr, service);
        t.holders[0].labels = LabelSet::from(facts(labels).labels);
        t
    }

    fn nodes(names: &[&str]) -> BTreeMap<NodeName, NodeFacts> {
        names.iter().map(|n| (node(n), facts(&[]))).collect()
    }

    fn run(
        config: &Config,
        targets: &[Target],
        nodes: &BTreeMap<NodeName, NodeFacts>,
        owners: &BTreeMap<IpAddr, NodeName>,
        answering: &[(&str, &str)],
    ) -> Vec<(IpAddr, Option<NodeName>)> {
        let answering: BTreeSet<(NodeName, IpAddr)> = answering
            .iter()
            .map(|(n, a)| (node(n), a.parse().unwrap()))
            .collect();
        plan(&Inputs {
            config,
            nodes,
            owners,
            targets: &targets.iter().collect::<Vec<_>>(),
            answering: |n: &NodeName, a: IpAddr| answering.contains(&(n.clone(), a)),
            moves_allowed: true,
        })
    }

    fn apply(owners: &mut BTreeMap<IpAddr, NodeName>, moves: &[(IpAddr, Option<NodeName>)]) {
        for (a, n) in moves {
            match n {
                Some(n) => owners.insert(*a, n.clone()),
                None => owners.remove(a),
            };
        }
    }

    #[test]
    fn new_addresses_spread_over_the_nodes_owning_fewest() {
        let c = config(BASE);
        let ts: Vec<Target> = (1..=6)
            .map(|i| target(&format!("192.0.2.{i}"), &format!("default/s{i}")))
            .collect();
        let ns = nodes(&["a", "b", "c"]);
        let mut owners = BTreeMap::new();
        let moves = run(&c, &ts, &ns, &owners, &[]);
        apply(&mut owners, &moves);
        let mut per_node: BTreeMap<&NodeName, usize> = BTreeMap::new();
        for n in owners.values() {
            *per_node.entry(n).or_default() += 1;
        }
        assert_eq!(
            per_node.values().copied().collect::<Vec<_>>(),
            vec![2, 2, 2]
        );
        // Deterministic: the same inputs give the same moves.
        assert_eq!(run(&c, &ts, &ns, &BTreeMap::new(), &[]), moves);
        // And stable: nothing more to do.
        assert_eq!(run(&c, &ts, &ns, &owners, &[]), vec![]);
    }

    #[test]
    fn a_joining_node_moves_nothing_but_gets_the_next_new_address() {
        let c = config(BASE);
        let mut ts = vec![target("192.0.2.1", "d/a"), target("192.0.2.2", "d/b")];
        let owners: BTreeMap<IpAddr, NodeName> = [
            ("192.0.2.1".parse().unwrap(), node("a")),
            ("192.0.2.2".parse().unwrap(), node("b")),
        ]
        .into();
        let ns = nodes(&["a", "b", "z"]);
        assert_eq!(run(&c, &ts, &ns, &owners, &[]), vec![]);
        ts.push(target("192.0.2.3", "d/c"));
        assert_eq!(
            run(&c, &ts, &ns, &owners, &[]),
            vec![("192.0.2.3".parse().unwrap(), Some(node("z")))]
        );
    }

    #[test]
    fn a_dead_owners_addresses_move_at_once() {
        let c = config(BASE);
        let ts = vec![target("192.0.2.1", "d/a"), target("192.0.2.2", "d/b")];
        let owners: BTreeMap<IpAddr, NodeName> = [
            ("192.0.2.1".parse().unwrap(), node("a")),
            ("192.0.2.2".parse().unwrap(), node("b")),
        ]
        .into();
        let mut ns = nodes(&["a", "b", "c"]);
        ns.get_mut(&node("a")).unwrap().usable = false;
        assert_eq!(
            run(&c, &ts, &ns, &owners, &[("b", "192.0.2.2")]),
            vec![("192.0.2.1".parse().unwrap(), Some(node("c")))]
        );
    }

    #[test]
    fn an_alive_ineligible_owner_lets_go_before_anyone_else_takes_over() {
        let c = config(BASE);
        let ts = vec![target("192.0.2.1", "d/a")];
        let mut owners: BTreeMap<IpAddr, NodeName> =
            [("192.0.2.1".parse().unwrap(), node("a"))].into();
        let mut ns = nodes(&["a", "b"]);
        ns.get_mut(&node("a"))
            .unwrap()
            .unready
            .insert("d/a".parse().unwrap());
        let first = run(&c, &ts, &ns, &owners, &[("a", "192.0.2.1")]);
        assert_eq!(first, vec![("192.0.2.1".parse().unwrap(), None)]);
        apply(&mut owners, &first);
        // Not yet acknowledged: b must wait.
        assert_eq!(run(&c, &ts, &ns, &owners, &[("a", "192.0.2.1")]), vec![]);
        // Acknowledged: b takes it.
        assert_eq!(
            run(&c, &ts, &ns, &owners, &[]),
            vec![("192.0.2.1".parse().unwrap(), Some(node("b")))]
        );
    }

    #[test]
    fn node_selectors_and_interfaces_decide_who_may_announce() {
        let c = config(&format!(
            "{BASE}---\napiVersion: ironlb.io/v1beta1\nkind: L2Advertisement\nmetadata: {{name: edge}}\nspec:\n  ipAddressPools: [dark]\n  nodeSelectors: [{{matchLabels: {{role: edge}}}}]\n  interfaces: [eth1]\n"
        ));
        let dark = Target {
            pool: "dark".parse().unwrap(),
            ..target("198.51.100.1", "d/x")
        };
        let mut ns = BTreeMap::new();
        ns.insert(node("a"), facts(&[]));
        ns.insert(node("b"), facts(&[("role", "edge")]));
        let mut edge_with_eth1 = facts(&[("role", "edge")]);
        edge_with_eth1
            .interfaces
            .insert(InterfaceName::new("eth1").unwrap());
        ns.insert(node("c"), edge_with_eth1.clone());
        assert_eq!(
            run(&c, std::slice::from_ref(&dark), &ns, &BTreeMap::new(), &[]),
            vec![(dark.address, Some(node("c")))]
        );
        assert_eq!(
            announce_on(&c, &dark, &edge_with_eth1),
            Some(vec![InterfaceName::new("eth1").unwrap()])
        );
        assert_eq!(announce_on(&c, &dark, &facts(&[("role", "edge")])), None);
        assert_eq!(
            announce_on(&c, &target("192.0.2.1", "d/y"), &facts(&[])),
            Some(vec![])
        );
    }

    /// `public` announced by one L2Advertisement with these serviceSelectors.
    fn selecting(service_selectors: &str) -> Config {
        config(&format!(
            "{POOLS}---\napiVersion: ironlb.io/v1beta1\nkind: L2Advertisement\nmetadata: {{name: l2}}\nspec:\n  ipAddressPools: [public]\n  serviceSelectors: {service_selectors}\n"
        ))
    }

    #[test]
    fn service_selectors_decide_which_addresses_of_a_pool_are_announced() {
        let web = labelled("192.0.2.1", "d/web", &[("app", "web")]);
        let db = labelled("192.0.2.2", "d/db", &[("app", "db")]);
        let ts = vec![web.clone(), db.clone()];
        let ns = nodes(&["a"]);
        let c = selecting("[{matchLabels: {app: web}}]");
        assert!(announced_in_l2(&c, &web) && !announced_in_l2(&c, &db));
        assert!(eligible(&c, &web, &ns[&node("a")]));
        assert!(!eligible(&c, &db, &ns[&node("a")]));
        assert_eq!(
            run(&c, &ts, &ns, &BTreeMap::new(), &[]),
            vec![(web.address, Some(node("a")))]
        );
        // db lost its announcement: its owner lets go.
        let owners = [(web.address, node("a")), (db.address, node("a"))].into();
        assert_eq!(run(&c, &ts, &ns, &owners, &[]), vec![(db.address, None)]);
        // Any selector may match; an empty list selects every Service.
        for any in [
            "[{matchLabels: {app: web}}, {matchExpressions: [{key: app, operator: In, values: [db]}]}]",
            "[]",
        ] {
            let c = selecting(any);
            assert!(announced_in_l2(&c, &web) && announced_in_l2(&c, &db), "{any}");
            assert_eq!(run(&c, &ts, &ns, &BTreeMap::new(), &[]).len(), 2, "{any}");
        }
    }

    #[test]
    fn a_shared_address_is_announced_when_any_of_its_services_is_selected() {
        let c = selecting("[{matchLabels: {app: web}}]");
        let mut shared = labelled("192.0.2.1", "d/web", &[("app", "web")]);
        let db: ServiceKey = "d/db".parse().unwrap();
        let mut holders = shared.holders.to_vec();
        holders.push(Holder {
            service: db.clone(),
            labels: LabelSet::from(facts(&[("app", "db")]).labels),
        });
        shared.holders = holders.into();
        assert!(announced_in_l2(&c, &shared));
        for h in shared.holders.iter_mut() {
            h.labels = LabelSet::new();
        }
        assert!(!announced_in_l2(&c, &shared));
    }

    #[test]
    fn the_interfaces_are_those_of_the_advertisements_selecting_the_service() {
        let l2 = |name: &str, app: &str, interface: &str| {
            format!("---\napiVersion: ironlb.io/v1beta1\nkind: L2Advertisement\nmetadata: {{name: {name}}}\nspec: {{ipAddressPools: [public], serviceSelectors: [{{matchLabels: {{app: {app}}}}}], interfaces: [{interface}]}}\n")
        };
        let c = config(&format!(
            "{BASE}{}{}",
            l2("web", "web", "eth1"),
            l2("db", "db", "eth2")
        ));
        let mut n = facts(&[]);
        for i in ["eth1", "eth2"] {
            n.interfaces.insert(InterfaceName::new(i).unwrap());
        }
        let web = labelled("192.0.2.1", "d/web", &[("app", "web")]);
        // BASE's own advertisement selects every Service, on every interface.
        assert_eq!(announce_on(&c, &web, &n), Some(vec![]));
        let c = config(&format!(
            "{POOLS}{}{}",
            l2("web", "web", "eth1"),
            l2("db", "db", "eth2")
        ));
        assert_eq!(
            announce_on(&c, &web, &n),
            Some(vec![InterfaceName::new("eth1").unwrap()])
        );
        assert_eq!(announce_on(&c, &target("192.0.2.3", "d/none"), &n), None);
    }

    #[test]
    fn unannounced_pools_get_no_owner_and_lose_stale_ones() {
        let c = config(BASE);
        let dark = Target {
            pool: "dark".parse().unwrap(),
            ..target("198.51.100.1", "d/x")
        };
        let ns = nodes(&["a"]);
        assert_eq!(
            run(&c, std::slice::from_ref(&dark), &ns, &BTreeMap::new(), &[]),
            vec![]
        );
        let owners = [(dark.address, node("a"))].into();
        assert_eq!(
            run(&c, std::slice::from_ref(&dark), &ns, &owners, &[]),
            vec![(dark.address, None)]
        );
        // A released address (no longer a target) loses its owner too.
        assert_eq!(run(&c, &[], &ns, &owners, &[]), vec![(dark.address, None)]);
    }

    #[test]
    fn dual_stack_addresses_of_one_service_share_a_node() {
        let c = config(BASE);
        let ts = vec![
            target("192.0.2.1", "d/other"),
            target("192.0.2.9", "d/dual"),
            target("2001:db8::9", "d/dual"),
        ];
        let mut owners = BTreeMap::new();
        let moves = run(&c, &ts, &nodes(&["a", "b"]), &owners, &[]);
        apply(&mut owners, &moves);
        assert_eq!(
            owners[&"192.0.2.9".parse::<IpAddr>().unwrap()],
            owners[&"2001:db8::9".parse::<IpAddr>().unwrap()]
        );
    }

    #[test]
    fn nothing_moves_during_a_new_leaders_first_lease_and_nobody_gets_a_contested_address() {
        let c = config(BASE);
        let ts = [target("192.0.2.1", "d/a"), target("192.0.2.2", "d/b")];
        let owners: BTreeMap<IpAddr, NodeName> = [("192.0.2.1".parse().unwrap(), node("a"))].into();
        let mut ns = nodes(&["a", "b"]);
        ns.get_mut(&node("a")).unwrap().usable = false;
        let moves = plan(&Inputs {
            config: &c,
            targets: &ts.iter().collect::<Vec<_>>(),
            nodes: &ns,
            owners: &owners,
            answering: |_: &NodeName, _: IpAddr| false,
            moves_allowed: false,
        });
        assert_eq!(moves, vec![]);
        // b may still answer for .2 (unacknowledged): nobody else can take it.
        let mut ns = nodes(&["a", "b"]);
        ns.get_mut(&node("b")).unwrap().usable = false;
        assert_eq!(
            run(&c, &ts[1..], &ns, &BTreeMap::new(), &[("b", "192.0.2.2")]),
            vec![]
        );
    }

    #[test]
    fn no_eligible_node_means_no_owner() {
        let c = config(BASE);
        let ts = vec![target("192.0.2.1", "d/a")];
        let owners: BTreeMap<IpAddr, NodeName> = [("192.0.2.1".parse().unwrap(), node("a"))].into();
        let mut ns = nodes(&["a"]);
        ns.get_mut(&node("a")).unwrap().usable = false;
        assert_eq!(
            run(&c, &ts, &ns, &owners, &[]),
            vec![("192.0.2.1".parse().unwrap(), None)]
        );
    }
}
