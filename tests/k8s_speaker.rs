//! Endpoint-aware announcing in Kubernetes mode: speakers watch their Node and the
//! EndpointSlices (through the API stand-in) and report readiness the way health checks do.
//! With externalTrafficPolicy Local only a node with a serving endpoint owns the address; with
//! Cluster any node may while the Service has a serving endpoint somewhere; a node labelled
//! out of load balancers gives its addresses away. The leader reports who announces what in
//! ServiceL2Status objects that follow a failover and go with their Service. Needs root
//! (namespaces), like the L2 tests.

use std::net::IpAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use ironlb_lab::kube_api::KubeApi;
use ironlb_lab::l2::{L2Lab, L2Options};
use ironlb_lab::netns::{self, Lan};
use serde_json::Value;
use tokio::sync::{Mutex, MutexGuard};

/// The labs share the host's leg address ([`Lan::HOST`]): one at a time.
static ONE_LAB_AT_A_TIME: Mutex<()> = Mutex::const_new(());

async fn lab_slot() -> Option<MutexGuard<'static, ()>> {
    if !netns::require_with(&["arping"]) {
        return None;
    }
    Some(ONE_LAB_AT_A_TIME.lock().await)
}

/// Three nodes, with their Node objects and `config` in the stand-in.
async fn k8s_lab(config: &str) -> (KubeApi, L2Lab) {
    let opts = L2Options::default();
    let lan = L2Lab::lan(&opts);
    let api = KubeApi::start_at(Lan::HOST.into()).await;
    for i in 1..=3 {
        api.apply(&format!("apiVersion: v1\nkind: Node\nmetadata:\n  name: node{i}\n  labels: {{kubernetes.io/hostname: node{i}}}\n"));
    }
    api.apply(config);
    let kubeconfig = api.kubeconfig().display().to_string();
    let lab = L2Lab::start_on(
        lan,
        Path::new(env!("CARGO_BIN_EXE_ironlb")),
        L2Options {
            controller_args: vec!["--kubernetes".into()],
            speaker_args: vec!["--kubernetes".into()],
            env: vec![("KUBECONFIG".into(), kubeconfig)],
            ..opts
        },
    )
    .await;
    (api, lab)
}

const CONFIG: &str = "apiVersion: ironlb.io/v1beta1
kind: IPAddressPool
metadata: {name: lan, namespace: ironlb-system}
spec: {addresses: [198.51.100.100-198.51.100.149]}
---
apiVersion: ironlb.io/v1beta1
kind: L2Advertisement
metadata: {name: lan, namespace: ironlb-system}
spec: {ipAddressPools: [lan]}
";

fn service(name: &str, policy: &str) -> String {
    format!("apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\n  namespace: default\nspec:\n  type: LoadBalancer\n  externalTrafficPolicy: {policy}\n  selector: {{app: {name}}}\n  ports:\n  - port: 80\n")
}

fn slice(service: &str, nodes: &[&str]) -> String {
    let eps: String = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| format!("- addresses: [\"10.0.0.{}\"]\n  nodeName: {n}\n  conditions: {{ready: true, serving: true}}\n", i + 1))
        .collect();
    format!("apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: {service}-abc\n  namespace: default\n  labels:\n    kubernetes.io/service-name: {service}\naddressType: IPv4\nendpoints:{}", if eps.is_empty() { " []\n".to_string() } else { format!("\n{eps}") })
}

async fn address_of(api: &KubeApi, name: &str) -> IpAddr {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(s) = api.get("v1", "Service", Some("default"), name) {
            if let Some(ip) = s["status"]["loadBalancer"]["ingress"][0]["ip"].as_str() {
                return ip.parse().unwrap();
            }
        }
        assert!(Instant::now() < deadline, "{name} got no address");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The committed owner of `addr` once it satisfies `ok` (panics after 20 s).
async fn owner_becomes(
    lab: &L2Lab,
    addr: IpAddr,
    what: &str,
    ok: impl Fn(Option<&str>) -> bool,
) -> Option<String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let owners = lab.owners().await;
        let o = owners.get(&addr).cloned().flatten();
        if ok(o.as_deref()) {
            return o;
        }
        assert!(
            Instant::now() < deadline,
            "{addr}: owner {o:?}, expected {what}:\n{}",
            lab.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_nodes_with_serving_endpoints_answer_and_excluded_nodes_give_way() {
    let Some(_slot) = lab_slot().await else {
        return;
    };
    let (api, lab) = k8s_lab(CONFIG).await;
    api.apply(&service("local", "Local"));
    api.apply(&slice("local", &["node2"]));
    api.apply(&service("cluster", "Cluster"));
    api.apply(&slice("cluster", &[]));

    // Local: the node with the serving endpoint, and the client's ARP agrees.
    let local = address_of(&api, "local").await;
    owner_becomes(&lab, local, "node2", |o| o == Some("node2")).await;
    let node2_mac = lab.lan.nodes[1].mac.clone();
    let deadline = Instant::now() + Duration::from_secs(10);
    while lab.resolve(local, "eth0") != vec![node2_mac.clone()] {
        assert!(
            Instant::now() < deadline,
            "the client does not reach node2:\n{}",
            lab.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The endpoint moves to node3: so does the address.
    api.apply(&slice("local", &["node3"]));
    owner_becomes(&lab, local, "node3", |o| o == Some("node3")).await;

    // Cluster with no serving endpoint anywhere: nobody answers...
    let cluster = address_of(&api, "cluster").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(lab.owners().await.get(&cluster).cloned().flatten(), None);
    assert_eq!(lab.resolve(cluster, "eth0"), Vec::<String>::new());
    // ...until one appears, on any node: then any node may answer.
    api.apply(&slice("cluster", &["node1"]));
    let owner = owner_becomes(&lab, cluster, "some node", |o| o.is_some())
        .await
        .unwrap();

    // The owner is labelled out of external load balancers: the address goes elsewhere.
    api.apply(&format!("apiVersion: v1\nkind: Node\nmetadata:\n  name: {owner}\n  labels:\n    kubernetes.io/hostname: {owner}\n    node.kubernetes.io/exclude-from-external-load-balancers: \"true\"\n"));
    let moved = owner_becomes(&lab, cluster, "another node", |o| {
        o.is_some_and(|o| o != owner)
    })
    .await;
    assert_ne!(moved.as_deref(), Some(owner.as_str()));

    // The last endpoint goes: the owner lets go, and nobody answers (the leader judges this
    // once for every node).
    api.apply(&slice("cluster", &[]));
    owner_becomes(&lab, cluster, "nobody", |o| o.is_none()).await;
}

/// The ServiceL2Status objects of Service `default/<name>`, found by their labels.
fn l2_statuses(api: &KubeApi, name: &str) -> Vec<Value> {
    api.list("ironlb.io/v1beta1", "ServiceL2Status")
        .into_iter()
        .filter(|o| {
            o["metadata"]["namespace"] == "default"
                && o["metadata"]["labels"]["ironlb.io/service-name"] == name
        })
        .collect()
}

/// Waits until `name`'s ServiceL2Status objects are `nodes` (by their status), and returns
/// them (panics after 20 s).
async fn l2_statuses_become(api: &KubeApi, lab: &L2Lab, name: &str, nodes: &[&str]) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let objs = l2_statuses(api, name);
        let mut on: Vec<&str> = objs
            .iter()
            .filter_map(|o| o["status"]["node"].as_str())
            .collect();
        on.sort_unstable();
        if on == nodes && objs.len() == nodes.len() {
            return objs;
        }
        assert!(
            Instant::now() < deadline,
            "{name}: ServiceL2Status on {on:?}, expected {nodes:?}: {objs:#?}\n{}",
            lab.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The Events with `reason` on Service `default/<name>`.
fn service_events(api: &KubeApi, name: &str, reason: &str) -> Vec<Value> {
    api.list("events.k8s.io/v1", "Event")
        .into_iter()
        .filter(|e| e["reason"] == reason && e["regarding"]["name"] == name)
        .collect()
}

/// The object is MetalLB's shape, labelled for its Service and node, and owned by the Service.
fn check_l2_status(obj: &Value, svc: &Value, node: &str) {
    let s = &obj["status"];
    assert_eq!(
        (&s["serviceName"], &s["serviceNamespace"]),
        (&svc["metadata"]["name"], &svc["metadata"]["namespace"]),
        "{obj:#}"
    );
    assert_eq!(
        s["interfaces"],
        serde_json::json!([{"name": "eth0"}]),
        "{obj:#}"
    );
    assert_eq!(obj["metadata"]["labels"]["ironlb.io/node"], node);
    let owner = &obj["metadata"]["ownerReferences"][0];
    assert_eq!(
        (&owner["kind"], &owner["uid"]),
        (&"Service".into(), &svc["metadata"]["uid"])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_l2_status_names_the_announcing_node_follows_failover_and_goes_with_the_service()
{
    let Some(_slot) = lab_slot().await else {
        return;
    };
    // On eth0 by name: the report lists the interfaces (none would mean "every interface").
    let on_eth0 = CONFIG.replace("[lan]}", "[lan], interfaces: [eth0]}");
    let (api, mut lab) = k8s_lab(&on_eth0).await;
    api.apply(&service("web", "Cluster"));
    api.apply(&slice("web", &["node1", "node2", "node3"]));
    let addr = address_of(&api, "web").await;
    let first = owner_becomes(&lab, addr, "some node", |o| o.is_some())
        .await
        .unwrap();
    let svc = api.get("v1", "Service", Some("default"), "web").unwrap();
    let objs = l2_statuses_become(&api, &lab, "web", &[first.as_str()]).await;
    check_l2_status(&objs[0], &svc, &first);
    assert!(!service_events(&api, "web", "AnnouncingNodeAssigned").is_empty());

    // The announcing speaker dies: the address, and its report, move to another node, and the
    // Service has an Event naming both.
    let dying = lab.node_index(&first);
    lab.speakers[dying].kill();
    let second = owner_becomes(&lab, addr, "another node", |o| {
        o.is_some_and(|o| o != first)
    })
    .await
    .unwrap();
    let objs = l2_statuses_become(&api, &lab, "web", &[second.as_str()]).await;
    check_l2_status(&objs[0], &svc, &second);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let changed = service_events(&api, "web", "AnnouncingNodeChanged");
        let names_both = |e: &Value| {
            let note = e["note"].as_str().unwrap_or("");
            note.contains(&first) && note.contains(&second) && note.contains(&addr.to_string())
        };
        if changed.iter().any(names_both) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no AnnouncingNodeChanged event: {changed:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The Service is deleted: so are its reports.
    assert!(api.delete("v1", "Service", Some("default"), "web"));
    l2_statuses_become(&api, &lab, "web", &[]).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(l2_statuses(&api, "web").is_empty(), "a report came back");
}
