//! What a node is to be sent beyond its addresses: the Services and BGP routes that changed
//! since it was last sent them, and the assignment that carries them.

use std::sync::Arc;

use ipnet::IpNet;

use super::{NodeState, Services};
use crate::announce::assignment::AddressDelta;
use crate::announce::bgp::{BgpRoute, Routes};
use crate::announce::proto::{Assignment, ServiceAnnounce};
use crate::config::model::Peer;
use crate::names::{PeerName, ServiceKey};
use crate::net::bgp::attrs::RouteAttrs;
use std::collections::BTreeMap;

/// What changed in the Services and BGP routes since a node was last sent them.
#[derive(Default)]
pub(super) struct SetChanges {
    services_up: Vec<ServiceAnnounce>,
    services_gone: Vec<ServiceKey>,
    routes_up: Vec<((IpNet, PeerName), RouteAttrs)>,
    routes_gone: Vec<(IpNet, PeerName)>,
}

impl SetChanges {
    /// The differences between what `node` was last sent and `services` and `routes`.
    pub(super) fn since(node: &NodeState, services: &Services, routes: &Arc<Routes>) -> Self {
        // A whole set goes as it is; only a change needs the differences. The shared parts
        // are compared by pointer first (between view changes they are the very same),
        // else by one walk over both sorted maps.
        let mut changes = Self::default();
        match &node.sent_services {
            Some(s) if s.ptr_eq(services) => {}
            Some(s) => {
                // The maps share all they did not change: the walk skips what is shared, so
                // it costs what changed, not what there is.
                for d in s.diff(services) {
                    match d {
                        imbl::ordmap::DiffItem::Add(_, v)
                        | imbl::ordmap::DiffItem::Update { new: (_, v), .. } => {
                            changes.services_up.push(v.clone());
                        }
                        imbl::ordmap::DiffItem::Remove(k, _) => {
                            changes.services_gone.push(k.clone());
                        }
                    }
                }
            }
            // Never sent (cannot happen with a base): send them all.
            None => changes.services_up = services.values().cloned().collect(),
        }
        if !Arc::ptr_eq(routes, &node.sent_routes) {
            (changes.routes_up, changes.routes_gone) =
                map_delta(node.sent_routes.iter(), routes.iter());
        }
        changes
    }

    /// Whether any Service is to be added, changed or removed.
    pub(super) fn services_changed(&self) -> bool {
        !self.services_up.is_empty() || !self.services_gone.is_empty()
    }

    /// Whether any BGP route is to be added, changed or removed.
    pub(super) fn routes_changed(&self) -> bool {
        !self.routes_up.is_empty() || !self.routes_gone.is_empty()
    }

    /// The assignment for `delta`: whole sets of Services, peers and routes with a whole set of
    /// addresses, else these changes (and the peers if they changed).
    pub(super) fn assignment(
        self,
        delta: AddressDelta,
        services: &Services,
        peers: &BTreeMap<PeerName, Peer>,
        routes: &Routes,
        peers_changed: bool,
    ) -> Assignment {
        let AddressDelta {
            id,
            base,
            upsert,
            remove,
        } = delta;
        let route = |((prefix, peer), attrs): (&(IpNet, PeerName), &RouteAttrs)| BgpRoute {
            prefix: *prefix,
            peer: peer.clone(),
            attrs: attrs.clone(),
        };
        let peer_list = |p: &BTreeMap<PeerName, Peer>| -> Vec<(PeerName, Peer)> {
            p.iter().map(|(n, p)| (n.clone(), p.clone())).collect()
        };
        if base.is_none() {
            Assignment {
                id,
                base: None,
                upsert,
                remove,
                services: Some(services.values().cloned().collect()),
                services_upsert: Vec::new(),
                services_remove: Vec::new(),
                peers: Some(peer_list(peers)),
                routes_upsert: routes.iter().map(route).collect(),
                routes_remove: Vec::new(),
            }
        } else {
            Assignment {
                id,
                base,
                upsert,
                remove,
                services: None,
                services_upsert: self.services_up,
                services_remove: self.services_gone,
                peers: peers_changed.then(|| peer_list(peers)),
                routes_upsert: self
                    .routes_up
                    .into_iter()
                    .map(|((prefix, peer), attrs)| BgpRoute {
                        prefix,
                        peer,
                        attrs,
                    })
                    .collect(),
                routes_remove: self.routes_gone,
            }
        }
    }
}

/// What turns `old` into `new`: the entries added or changed, and the keys removed; one walk
/// over both (they are sorted alike).
pub(super) fn map_delta<'a, K: Ord + Clone + 'a, V: PartialEq + Clone + 'a>(
    old: impl Iterator<Item = (&'a K, &'a V)>,
    new: impl Iterator<Item = (&'a K, &'a V)>,
) -> (Vec<(K, V)>, Vec<K>) {
    use std::cmp::Ordering;
    let (mut up, mut gone) = (Vec::new(), Vec::new());
    let (mut a, mut b) = (old.peekable(), new.peekable());
    loop {
        match (a.peek(), b.peek()) {
            (None, None) => break,
            (Some((ka, _)), None) => {
                gone.push((*ka).clone());
                a.next();
            }
            (None, Some((kb, vb))) => {
                up.push(((*kb).clone(), (*vb).clone()));
                b.next();
            }
            (Some((ka, va)), Some((kb, vb))) => match ka.cmp(kb) {
                Ordering::Less => {
                    gone.push((*ka).clone());
                    a.next();
                }
                Ordering::Greater => {
                    up.push(((*kb).clone(), (*vb).clone()));
                    b.next();
                }
                Ordering::Equal => {
                    if va != vb {
                        up.push(((*kb).clone(), (*vb).clone()));
                    }
                    a.next();
                    b.next();
                }
            },
        }
    }
    (up, gone)
}

#[cfg(test)]
mod tests {
    use super::map_delta;
    use std::collections::BTreeMap;

    #[test]
    fn the_delta_adds_changes_and_removes_what_differs() {
        let old: BTreeMap<u8, &str> = [(1, "a"), (2, "b"), (4, "d"), (6, "f")].into();
        let new: BTreeMap<u8, &str> = [(2, "b"), (3, "c"), (4, "D"), (7, "g")].into();
        let (up, gone) = map_delta(old.iter(), new.iter());
        assert_eq!(up, vec![(3, "c"), (4, "D"), (7, "g")]);
        assert_eq!(gone, vec![1, 6]);
        assert_eq!(map_delta(new.iter(), new.iter()), (vec![], vec![]));
        // Applying the delta to the old map gives the new one.
        let mut applied = old.clone();
        for k in gone {
            applied.remove(&k);
        }
        applied.extend(up);
        assert_eq!(applied, new);
    }
}
