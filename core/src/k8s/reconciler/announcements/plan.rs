//! The pure part of the announcement reports: the objects the leader's summary calls for
//! ([`desired`]), the writes that turn what the cluster holds into them ([`plan`]), and the
//! Services whose Layer 2 node changed ([`node_changes`]). No I/O, so all of it is unit-tested.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::ResourceExt;

use crate::controller::announced::Announcements;
use crate::k8s::status_kinds::{
    InterfaceInfo, ServiceBGPStatus, ServiceBGPStatusStatus, ServiceL2Status, ServiceL2StatusStatus,
};
use crate::names::{NodeName, ServiceKey};

/// The label naming the Service an object reports on.
pub const SERVICE_NAME_LABEL: &str = "ironlb.io/service-name";
/// The label naming the Service's namespace.
pub const SERVICE_NAMESPACE_LABEL: &str = "ironlb.io/service-namespace";
/// The label naming the announcing node (shortened with a hash past 63 characters).
pub const NODE_LABEL: &str = "ironlb.io/node";
/// The label marking the objects the controller writes, so it lists only those.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// Its value.
pub const MANAGED_BY: &str = "ironlb-controller";

/// Which of the two kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// ServiceL2Status.
    L2,
    /// ServiceBGPStatus.
    Bgp,
}

/// Where an object is: its kind, namespace and name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectKey {
    /// The kind.
    pub kind: Kind,
    /// The Service's namespace.
    pub namespace: String,
    /// The object's name.
    pub name: String,
}

/// What an object's `status` says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Report {
    /// A ServiceL2Status's.
    L2(ServiceL2StatusStatus),
    /// A ServiceBGPStatus's.
    Bgp(ServiceBGPStatusStatus),
}

impl Report {
    /// The announcing node.
    pub fn node(&self) -> &str {
        match self {
            Report::L2(s) => &s.node,
            Report::Bgp(s) => &s.node,
        }
    }

    /// The Service, `namespace/name`.
    pub fn service(&self) -> String {
        match self {
            Report::L2(s) => format!("{}/{}", s.service_namespace, s.service_name),
            Report::Bgp(s) => format!("{}/{}", s.service_namespace, s.service_name),
        }
    }
}

/// What the controller sets on one object: its labels, its owner and its status.
#[derive(Clone, Debug, PartialEq)]
pub struct StatusObject {
    /// The labels (of an object read from the cluster: all of them).
    pub labels: BTreeMap<String, String>,
    /// The owner references: the Service.
    pub owners: Vec<OwnerReference>,
    /// The status; `None` when an object read from the cluster has none yet.
    pub report: Option<Report>,
}

impl StatusObject {
    /// A ServiceL2Status as read from the cluster, with its key.
    pub fn from_l2(o: &ServiceL2Status) -> (ObjectKey, StatusObject) {
        let key = ObjectKey {
            kind: Kind::L2,
            namespace: o.namespace().unwrap_or_default(),
            name: o.name_any(),
        };
        (key, Self::read(o, o.status.clone().map(Report::L2)))
    }

    /// A ServiceBGPStatus as read from the cluster, with its key.
    pub fn from_bgp(o: &ServiceBGPStatus) -> (ObjectKey, StatusObject) {
        let key = ObjectKey {
            kind: Kind::Bgp,
            namespace: o.namespace().unwrap_or_default(),
            name: o.name_any(),
        };
        (key, Self::read(o, o.status.clone().map(Report::Bgp)))
    }

    fn read(o: &impl ResourceExt, report: Option<Report>) -> StatusObject {
        StatusObject {
            labels: o.labels().clone(),
            owners: o.owner_references().to_vec(),
            report,
        }
    }

    /// Whether `have` lacks a label or owner this object (a desired one) sets.
    fn meta_differs(&self, have: &StatusObject) -> bool {
        let labels = self
            .labels
            .iter()
            .any(|(k, v)| have.labels.get(k) != Some(v));
        labels || self.owners != have.owners
    }
}

/// The objects `a` calls for: one per Service and node for each of Layer 2 and BGP, for the
/// Services in `uids` (Service -> uid, for the owner reference; the others are skipped, since an
/// object without an owner would never be garbage-collected).
pub fn desired(
    a: &Announcements,
    uids: &BTreeMap<ServiceKey, String>,
) -> BTreeMap<ObjectKey, StatusObject> {
    let mut out = BTreeMap::new();
    for (svc, list) in &a.l2 {
        let Some(uid) = uids.get(svc) else { continue };
        for an in list {
            let mut interfaces: Vec<InterfaceInfo> = an
                .interfaces
                .iter()
                .map(|i| InterfaceInfo {
                    name: i.to_string(),
                })
                .collect();
            interfaces.sort();
            let report = Report::L2(ServiceL2StatusStatus {
                node: an.node.to_string(),
                service_name: svc.name().to_owned(),
                service_namespace: svc.namespace().to_string(),
                interfaces,
            });
            out.insert(
                key(Kind::L2, svc, &an.node),
                object(svc, uid, &an.node, report),
            );
        }
    }
    for (svc, list) in &a.bgp {
        let Some(uid) = uids.get(svc) else { continue };
        for an in list {
            let mut peers: Vec<String> = an.peers.iter().map(|p| p.to_string()).collect();
            peers.sort();
            let report = Report::Bgp(ServiceBGPStatusStatus {
                node: an.node.to_string(),
                service_name: svc.name().to_owned(),
                service_namespace: svc.namespace().to_string(),
                peers,
            });
            out.insert(
                key(Kind::Bgp, svc, &an.node),
                object(svc, uid, &an.node, report),
            );
        }
    }
    out
}

fn key(kind: Kind, svc: &ServiceKey, node: &NodeName) -> ObjectKey {
    ObjectKey {
        kind,
        namespace: svc.namespace().to_string(),
        name: object_name(svc.name(), node),
    }
}

fn object(svc: &ServiceKey, uid: &str, node: &NodeName, report: Report) -> StatusObject {
    let labels = [
        (MANAGED_BY_LABEL, MANAGED_BY.to_owned()),
        (SERVICE_NAME_LABEL, label_value(svc.name())),
        (
            SERVICE_NAMESPACE_LABEL,
            label_value(svc.namespace().as_str()),
        ),
        (NODE_LABEL, label_value(node.as_str())),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let owner = OwnerReference {
        api_version: "v1".into(),
        kind: "Service".into(),
        name: svc.name().to_owned(),
        uid: uid.to_owned(),
        ..OwnerReference::default()
    };
    StatusObject {
        labels,
        owners: vec![owner],
        report: Some(report),
    }
}

/// The name of the object on `service`'s announcement by `node`: the Service's name and a hash
/// of the node's, so the same pair always finds the same object and no name is over 253
/// characters (a node name may be that long itself).
pub fn object_name(service: &str, node: &NodeName) -> String {
    let service: String = service.chars().take(253 - 11).collect();
    let service = service.trim_end_matches(['-', '.']);
    format!("{service}-{}", short_hash(node.as_str()))
}

/// `s` as a label value: itself up to 63 characters, else its start and a hash of the whole.
pub fn label_value(s: &str) -> String {
    if s.len() <= 63 {
        return s.to_owned();
    }
    let start: String = s.chars().take(52).collect();
    format!("{}-{}", start.trim_end_matches(['-', '.']), short_hash(s))
}

/// The first 10 hex digits of SHA-256: stable across versions and processes (unlike std's
/// hasher), which the names depend on.
fn short_hash(s: &str) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, s.as_bytes());
    d.as_ref()[..5].iter().map(|b| format!("{b:02x}")).collect()
}

/// One write of [`plan`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Write {
    /// Apply the object's labels and owner (creating it), then its status: for an object that
    /// is missing, or whose owner changed (its Service was deleted and made again, so
    /// Kubernetes may be collecting the object right now).
    Apply(ObjectKey),
    /// Set its status.
    Status(ObjectKey),
    /// Delete it.
    Delete(ObjectKey),
}

impl Write {
    /// The object written.
    pub fn key(&self) -> &ObjectKey {
        match self {
            Write::Apply(k) | Write::Status(k) | Write::Delete(k) => k,
        }
    }
}

/// The writes that make `have` into `want`: only what differs; deletions last (so a report
/// that moves to another node is never missing in between), and none unless `delete`.
pub fn plan(
    want: &BTreeMap<ObjectKey, StatusObject>,
    have: &BTreeMap<ObjectKey, StatusObject>,
    delete: bool,
) -> Vec<Write> {
    let mut out = Vec::new();
    for (k, w) in want {
        match have.get(k) {
            Some(h) if !w.meta_differs(h) => {
                if w.report != h.report {
                    out.push(Write::Status(k.clone()));
                }
            }
            _ => out.push(Write::Apply(k.clone())),
        }
    }
    if delete {
        out.extend(
            have.keys()
                .filter(|k| !want.contains_key(*k))
                .map(|k| Write::Delete(k.clone())),
        );
    }
    out
}

/// Where each Service's Layer 2 addresses were last seen answered for.
pub type Placement = BTreeMap<ServiceKey, BTreeMap<IpAddr, NodeName>>;

/// A Service's addresses now answered for by another node, or by a node for the first time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeChange {
    /// The Service.
    pub service: ServiceKey,
    /// The node that answered before; `None`: no node had.
    pub from: Option<NodeName>,
    /// The node answering now.
    pub to: NodeName,
    /// The addresses that moved.
    pub addresses: Vec<IpAddr>,
}

/// The changes from `placed` to `now`, per Service and pair of nodes. An address not in
/// `placed` (a new leader has seen nothing yet) was where `have`'s ServiceL2Status objects
/// put its Service: on its node if one of them names it, else on the first they name.
pub fn node_changes(
    placed: &Placement,
    have: &BTreeMap<ObjectKey, StatusObject>,
    now: &Announcements,
) -> Vec<NodeChange> {
    let reported = reported_nodes(have);
    let mut out: BTreeMap<(ServiceKey, Option<NodeName>, NodeName), Vec<IpAddr>> = BTreeMap::new();
    for (svc, list) in &now.l2 {
        let known = reported.get(&svc.to_string());
        for an in list {
            for addr in &an.addresses {
                let before = match placed.get(svc).and_then(|p| p.get(addr)) {
                    Some(n) => Some(n.clone()),
                    None if known.is_some_and(|k| k.contains(an.node.as_str())) => {
                        Some(an.node.clone())
                    }
                    None => known
                        .and_then(|k| k.first())
                        .and_then(|n| NodeName::new(n.as_str()).ok()),
                };
                if before.as_ref() != Some(&an.node) {
                    out.entry((svc.clone(), before, an.node.clone()))
                        .or_default()
                        .push(*addr);
                }
            }
        }
    }
    out.into_iter()
        .map(|((service, from, to), addresses)| NodeChange {
            service,
            from,
            to,
            addresses,
        })
        .collect()
}

/// The nodes the ServiceL2Status objects in `have` name, per Service (`namespace/name`).
fn reported_nodes(have: &BTreeMap<ObjectKey, StatusObject>) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for o in have.values() {
        if let Some(r @ Report::L2(_)) = &o.report {
            out.entry(r.service())
                .or_default()
                .insert(r.node().to_owned());
        }
    }
    out
}

/// `placed` once `now` is seen: every address where `now` says; the rest stay where they were
/// last seen, so a failover through a moment with no node answering still tells the old node.
pub fn place(placed: &mut Placement, now: &Announcements) {
    for (svc, list) in &now.l2 {
        let p = placed.entry(svc.clone()).or_default();
        for an in list {
            for addr in &an.addresses {
                p.insert(*addr, an.node.clone());
            }
        }
    }
}
