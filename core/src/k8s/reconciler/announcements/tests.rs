use std::collections::BTreeMap;
use std::net::IpAddr;

use super::plan::*;
use crate::config::InterfaceName;
use crate::controller::announced::{Announcements, BgpAnnouncement, L2Announcement};
use crate::names::{NodeName, ServiceKey};

fn key(s: &str) -> ServiceKey {
    s.parse().unwrap()
}

fn node(s: &str) -> NodeName {
    s.parse().unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn l2(n: &str, addrs: &[&str], ifaces: &[&str]) -> L2Announcement {
    L2Announcement {
        node: node(n),
        addresses: addrs.iter().map(|a| ip(a)).collect(),
        interfaces: ifaces
            .iter()
            .map(|i| InterfaceName::new(*i).unwrap())
            .collect(),
    }
}

fn summary() -> Announcements {
    let mut a = Announcements {
        leading: true,
        ..Announcements::default()
    };
    a.l2.insert(
        key("shop/web"),
        vec![l2(
            "node1",
            &["192.0.2.1", "2001:db8::1"],
            &["eth1", "eth0"],
        )],
    );
    a.bgp.insert(
        key("shop/db"),
        ["node1", "node2"]
            .iter()
            .map(|n| BgpAnnouncement {
                node: node(n),
                addresses: vec![ip("192.0.2.2")],
                peers: vec!["r2".parse().unwrap(), "r1".parse().unwrap()],
            })
            .collect(),
    );
    // A Service the store does not hold (yet): no object, since it would have no owner.
    a.l2.insert(key("other/gone"), vec![l2("node2", &["192.0.2.3"], &[])]);
    a
}

fn uids() -> BTreeMap<ServiceKey, String> {
    [("shop/web", "uid-web"), ("shop/db", "uid-db")]
        .into_iter()
        .map(|(k, u)| (key(k), u.to_owned()))
        .collect()
}

#[test]
fn one_object_per_service_and_node_named_labelled_and_owned_by_the_service() {
    let want = desired(&summary(), &uids());
    assert_eq!(want.len(), 3, "{want:#?}");
    let web = ObjectKey {
        kind: Kind::L2,
        namespace: "shop".into(),
        name: object_name("web", &node("node1")),
    };
    let o = &want[&web];
    assert!(web.name.starts_with("web-") && web.name.len() == "web-".len() + 10);
    assert_eq!(o.labels[SERVICE_NAME_LABEL], "web");
    assert_eq!(o.labels[SERVICE_NAMESPACE_LABEL], "shop");
    assert_eq!(o.labels[NODE_LABEL], "node1");
    assert_eq!(o.labels[MANAGED_BY_LABEL], MANAGED_BY);
    assert_eq!(o.owners.len(), 1);
    let owner = &o.owners[0];
    assert_eq!(
        (owner.api_version.as_str(), owner.kind.as_str()),
        ("v1", "Service")
    );
    assert_eq!(
        (owner.name.as_str(), owner.uid.as_str()),
        ("web", "uid-web")
    );
    let Some(Report::L2(s)) = &o.report else {
        panic!("{o:?}")
    };
    assert_eq!(
        (
            s.node.as_str(),
            s.service_name.as_str(),
            s.service_namespace.as_str()
        ),
        ("node1", "web", "shop")
    );
    let ifaces: Vec<&str> = s.interfaces.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(ifaces, ["eth0", "eth1"]);
    // BGP: one object per announcing node, the peers sorted.
    let bgp: Vec<_> = want.iter().filter(|(k, _)| k.kind == Kind::Bgp).collect();
    assert_eq!(bgp.len(), 2);
    for (k, o) in bgp {
        assert_eq!(k.namespace, "shop");
        let Some(Report::Bgp(s)) = &o.report else {
            panic!("{o:?}")
        };
        assert_eq!(k.name, object_name("db", &node(&s.node)));
        assert_eq!(s.peers, ["r1", "r2"]);
        assert_eq!(o.owners[0].uid, "uid-db");
        assert_eq!(o.labels[NODE_LABEL], s.node);
    }
    assert!(!want.keys().any(|k| k.namespace == "other"));
}

#[test]
fn names_are_deterministic_distinct_per_node_and_within_kubernetes_limits() {
    let a = object_name("web", &node("node1"));
    assert_eq!(a, object_name("web", &node("node1")));
    assert_ne!(a, object_name("web", &node("node2")));
    let long_node = node(&format!("{}.example.com", "n".repeat(200)));
    let long_svc = "s".repeat(253);
    let name = object_name(&long_svc, &long_node);
    assert!(name.len() <= 253, "{}", name.len());
    let label = label_value(long_node.as_str());
    assert!(label.len() <= 63, "{label}");
    assert!(label.ends_with(|c: char| c.is_ascii_alphanumeric()));
    assert_ne!(
        label,
        label_value(&format!("{}.example.org", "n".repeat(200)))
    );
    assert_eq!(label_value("node1"), "node1");
}

#[test]
fn the_plan_writes_only_what_differs_and_deletes_last_unless_held_back() {
    let want = desired(&summary(), &uids());
    assert!(plan(&want, &want, true).is_empty());
    // Nothing there: every object created.
    let creates = plan(&want, &BTreeMap::new(), true);
    assert_eq!(creates.len(), 3);
    assert!(creates.iter().all(|w| matches!(w, Write::Apply(_))));
    // One status out of date, one owner from an earlier Service of that name, one object not
    // announced any more.
    let mut have = want.clone();
    let k_status = have.keys().find(|k| k.kind == Kind::L2).unwrap().clone();
    let k_owner = have.keys().find(|k| k.kind == Kind::Bgp).unwrap().clone();
    if let Some(Report::L2(s)) = &mut have.get_mut(&k_status).unwrap().report {
        s.interfaces.pop();
    }
    have.get_mut(&k_owner).unwrap().owners[0].uid = "uid-old".into();
    // Labels someone else added are left alone.
    have.get_mut(&k_owner)
        .unwrap()
        .labels
        .insert("team".into(), "x".into());
    let stale = ObjectKey {
        kind: Kind::L2,
        namespace: "shop".into(),
        name: object_name("web", &node("node9")),
    };
    have.insert(stale.clone(), want.values().next().unwrap().clone());
    let writes = plan(&want, &have, true);
    assert_eq!(
        writes,
        vec![
            Write::Status(k_status.clone()),
            Write::Apply(k_owner.clone()),
            Write::Delete(stale)
        ]
    );
    // While a new leader settles, nothing is deleted.
    assert_eq!(plan(&want, &have, false).len(), 2);
}

#[test]
fn a_layer_2_node_change_is_told_once_with_the_old_node_even_through_a_gap() {
    let mut placed = Placement::new();
    let first = summary();
    let changes = node_changes(&placed, &BTreeMap::new(), &first);
    // First assignments: no previous node.
    assert!(changes.iter().all(|c| c.from.is_none()));
    let web = changes
        .iter()
        .find(|c| c.service == key("shop/web"))
        .unwrap();
    assert_eq!((web.to.as_str(), web.addresses.len()), ("node1", 2));
    place(&mut placed, &first);
    assert!(node_changes(&placed, &BTreeMap::new(), &first).is_empty());
    // node1 dies: for a moment nobody answers, then node3 does.
    let mut gap = first.clone();
    gap.l2.remove(&key("shop/web"));
    assert!(node_changes(&placed, &BTreeMap::new(), &gap).is_empty());
    place(&mut placed, &gap);
    let mut moved = first.clone();
    moved.l2.insert(
        key("shop/web"),
        vec![l2("node3", &["192.0.2.1", "2001:db8::1"], &["eth0"])],
    );
    let changes = node_changes(&placed, &BTreeMap::new(), &moved);
    assert_eq!(
        changes,
        vec![NodeChange {
            service: key("shop/web"),
            from: Some(node("node1")),
            to: node("node3"),
            addresses: vec![ip("192.0.2.1"), ip("2001:db8::1")],
        }]
    );
}

#[test]
fn a_new_leader_takes_the_previous_nodes_from_the_objects_it_finds() {
    let a = summary();
    let have = desired(&a, &uids());
    // Same nodes as the objects say: nothing to tell.
    let changes = node_changes(&Placement::new(), &have, &a);
    assert!(changes.iter().all(|c| c.service != key("shop/web")));
    // Another node than the objects say: a change from the node they name.
    let mut moved = a.clone();
    moved
        .l2
        .insert(key("shop/web"), vec![l2("node2", &["192.0.2.1"], &[])]);
    let changes = node_changes(&Placement::new(), &have, &moved);
    let web = changes
        .iter()
        .find(|c| c.service == key("shop/web"))
        .unwrap();
    assert_eq!(
        (web.from.as_ref().map(NodeName::as_str), web.to.as_str()),
        (Some("node1"), "node2")
    );
}
