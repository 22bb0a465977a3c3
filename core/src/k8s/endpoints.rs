//! The speaker's EndpointWatch (Kubernetes mode): its own Node (labels; excluded from load
//! balancers by label, or its network unavailable) and the EndpointSlices of the Services it may
//! answer for. It reports what it sees on a channel ([`Observed`]); the speaker passes that to
//! its ControllerSession through the same path as the health checks.
//!
//! With `externalTrafficPolicy: Local` a node may answer only with a serving endpoint of the
//! Service on itself; with `Cluster`, any node may while the Service has a serving endpoint
//! anywhere. The first is each node's to judge; the second is the same verdict on every node,
//! so the leader judges it once ([`watch_serving`], run by the controller while it leads) and
//! the nodes are never told of Services whose readiness they have nothing to judge about: a
//! new Service then costs a message to its owner, not one to every node.

use std::collections::{BTreeMap, BTreeSet};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client, ResourceExt};
use tokio::sync::{mpsc, watch};

use crate::announce::proto::ServiceAnnounce;
use crate::labels::Labels;
use crate::names::{NodeName, ServiceKey};

/// What the watch reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Observed {
    /// This node's labels, and whether it is excluded from load balancers.
    Node {
        /// The Node's labels.
        labels: Labels,
        /// Excluded by label, or its network is unavailable.
        excluded: bool,
    },
    /// The Services this node must not answer for now (no serving endpoint where needed).
    Unready(BTreeSet<ServiceKey>),
}

/// The label that excludes a node from external load balancers.
pub const EXCLUDE_LABEL: &str = "node.kubernetes.io/exclude-from-external-load-balancers";

/// The label of an EndpointSlice naming its Service.
const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// What the Node object says of this node.
pub fn node_info(node: &Node) -> (Labels, bool) {
    let labels: Labels = node.metadata.labels.clone().unwrap_or_default();
    let excluded_by_label = labels.contains_key(EXCLUDE_LABEL);
    let network_down = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| c.type_ == "NetworkUnavailable" && c.status == "True")
        });
    (labels, excluded_by_label || network_down)
}

/// Serving endpoints per Service: the nodes they run on (`None` for an endpoint that names no
/// node), from every EndpointSlice.
pub fn serving(
    slices: &[std::sync::Arc<EndpointSlice>],
) -> BTreeMap<ServiceKey, Vec<Option<String>>> {
    let mut out: BTreeMap<ServiceKey, Vec<Option<String>>> = BTreeMap::new();
    for slice in slices {
        let Some(ns) = slice.namespace() else {
            continue;
        };
        let Some(svc) = slice.labels().get(SERVICE_NAME_LABEL).cloned() else {
            continue;
        };
        let Ok(key) = ServiceKey::new(&ns, &svc) else {
            continue;
        };
        let entry = out.entry(key).or_default();
        for ep in &slice.endpoints {
            let c = ep.conditions.as_ref();
            // `serving` is what load balancers should use; unset, fall back to `ready`, and an
            // endpoint that says nothing is ready (as the API documents).
            let ready = c.and_then(|c| c.ready).unwrap_or(true);
            let serving = c.and_then(|c| c.serving).unwrap_or(ready);
            if serving {
                entry.push(ep.node_name.clone());
            }
        }
    }
    out
}

/// The Services this node is unready for: the `Local` ones without a serving endpoint on it
/// (a `Cluster` one without any is the leader's to judge).
pub fn unready(
    node: &str,
    services: &[ServiceAnnounce],
    serving: &BTreeMap<ServiceKey, Vec<Option<String>>>,
) -> BTreeSet<ServiceKey> {
    services
        .iter()
        .filter(|s| {
            let eps = serving.get(&s.service).map(Vec::as_slice).unwrap_or(&[]);
            s.local && !eps.iter().any(|n| n.as_deref() == Some(node))
        })
        .map(|s| s.service.clone())
        .collect()
}

/// The Services with a serving endpoint on any node, from every EndpointSlice.
pub fn serving_anywhere(slices: &[std::sync::Arc<EndpointSlice>]) -> BTreeSet<ServiceKey> {
    serving(slices)
        .into_iter()
        .filter(|(_, eps)| !eps.is_empty())
        .map(|(k, _)| k)
        .collect()
}

/// Every EndpointSlice in the cluster: a store kept up to date by the returned stream of
/// watch events (with back-off on errors).
fn slice_reflector(
    client: Client,
) -> (
    Store<EndpointSlice>,
    futures::stream::BoxStream<'static, Result<watcher::Event<EndpointSlice>, watcher::Error>>,
) {
    let (slices, writer) = reflector::store();
    let events = reflector::reflector(
        writer,
        watcher::watcher(
            Api::<EndpointSlice>::all(client),
            watcher::Config::default(),
        ),
    )
    .default_backoff()
    .boxed();
    (slices, events)
}

/// The Services with a serving endpoint anywhere, as the leader's watch sees them; `None`
/// until the watch has listed every EndpointSlice (nothing is judged meanwhile).
pub type Serving = watch::Sender<Option<std::sync::Arc<BTreeSet<ServiceKey>>>>;

/// Keeps `out` up to date with the Services that have a serving endpoint anywhere, until
/// nobody reads it; `out` goes back to unknown when the watch stops.
pub async fn watch_serving(client: Client, out: &Serving) {
    let (slices, mut events) = slice_reflector(client);
    let mut synced = false;
    while let Some(e) = events.next().await {
        match e {
            Ok(watcher::Event::InitDone) => synced = true,
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "EndpointSlice watch failed; retrying");
                continue;
            }
        }
        if !synced {
            continue;
        }
        let now = serving_anywhere(&slices.state());
        out.send_if_modified(|v| {
            if v.as_deref() == Some(&now) {
                return false;
            }
            *v = Some(std::sync::Arc::new(now));
            true
        });
        if out.is_closed() {
            break;
        }
    }
    out.send_replace(None);
}

/// Watches until nobody reads `out` any more.
pub async fn run(
    client: Client,
    node: NodeName,
    mut services: watch::Receiver<Vec<ServiceAnnounce>>,
    out: mpsc::Sender<Observed>,
) {
    let nodes: Api<Node> = Api::all(client.clone());
    let node_config = watcher::Config::default().fields(&format!("metadata.name={node}"));
    let mut node_events = watcher::watcher(nodes, node_config)
        .default_backoff()
        .applied_objects()
        .boxed();
    let (slices, mut slice_events) = slice_reflector(client);
    let mut last: Option<BTreeSet<ServiceKey>> = None;
    let mut slices_ready = false;
    loop {
        tokio::select! {
            n = node_events.next() => match n {
                Some(Ok(n)) => {
                    let (labels, excluded) = node_info(&n);
                    if out.send(Observed::Node { labels, excluded }).await.is_err() {
                        return;
                    }
                    continue;
                }
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "Node watch failed; retrying");
                    continue;
                }
                None => return,
            },
            e = slice_events.next() => match e {
                Some(Ok(watcher::Event::InitDone)) => slices_ready = true,
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "EndpointSlice watch failed; retrying");
                    continue;
                }
                None => return,
            },
            changed = services.changed() => if changed.is_err() { return },
        }
        if !slices_ready {
            continue;
        }
        let now = unready(node.as_str(), &services.borrow(), &serving(&slices.state()));
        if last.as_ref() != Some(&now) {
            if out.send(Observed::Unready(now.clone())).await.is_err() {
                return;
            }
            last = Some(now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slice(
        ns: &str,
        svc: &str,
        eps: &[(Option<&str>, Option<bool>)],
    ) -> std::sync::Arc<EndpointSlice> {
        let yaml = format!(
            "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: {svc}-x\n  namespace: {ns}\n  labels:\n    kubernetes.io/service-name: {svc}\naddressType: IPv4\nendpoints:\n{}",
            eps.iter()
                .map(|(n, serving)| format!(
                    "- addresses: [\"10.0.0.1\"]\n{}{}",
                    n.map(|n| format!("  nodeName: {n}\n")).unwrap_or_default(),
                    serving.map(|s| format!("  conditions: {{serving: {s}}}\n")).unwrap_or_default()
                ))
                .collect::<String>()
        );
        std::sync::Arc::new(serde_yaml::from_str(&yaml).unwrap())
    }

    #[test]
    fn local_services_need_a_serving_endpoint_here_and_cluster_ones_are_not_judged_here() {
        let services = vec![
            ServiceAnnounce {
                service: "d/local".parse().unwrap(),
                health_check: None,
                local: true,
            },
            ServiceAnnounce {
                service: "d/cluster".parse().unwrap(),
                health_check: None,
                local: false,
            },
            ServiceAnnounce {
                service: "d/none".parse().unwrap(),
                health_check: None,
                local: false,
            },
        ];
        let slices = vec![
            slice(
                "d",
                "local",
                &[(Some("n2"), Some(true)), (Some("n1"), Some(false))],
            ),
            slice("d", "cluster", &[(Some("n3"), None)]),
        ];
        let s = serving(&slices);
        let keys = |v: &[&str]| {
            v.iter()
                .map(|k| k.parse::<ServiceKey>().unwrap())
                .collect::<BTreeSet<_>>()
        };
        assert_eq!(unready("n1", &services, &s), keys(&["d/local"]));
        assert_eq!(unready("n2", &services, &s), keys(&[]));
        // Which Services have a serving endpoint anywhere (the leader's verdict for `Cluster`).
        assert_eq!(serving_anywhere(&slices), keys(&["d/cluster", "d/local"]));
    }

    #[test]
    fn the_exclude_label_and_an_unavailable_network_exclude_the_node() {
        let node = |extra: &str| -> Node {
            serde_yaml::from_str(&format!(
                "apiVersion: v1\nkind: Node\nmetadata:\n  name: n1\n  labels: {{zone: a}}\n{extra}"
            ))
            .unwrap()
        };
        assert!(!node_info(&node("")).1);
        assert!(
            node_info(&node(
                "status:\n  conditions:\n  - {type: NetworkUnavailable, status: \"True\"}\n"
            ))
            .1
        );
        let labelled: Node = serde_yaml::from_str("apiVersion: v1\nkind: Node\nmetadata:\n  name: n1\n  labels: {node.kubernetes.io/exclude-from-external-load-balancers: \"\"}\n").unwrap();
        assert!(node_info(&labelled).1);
    }
}
