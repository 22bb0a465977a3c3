//! Endpoint-aware announcing in Kubernetes mode: speakers watch their Node and the
//! EndpointSlices (through the API stand-in) and report readiness the way health checks do.
//! With externalTrafficPolicy Local only a node with a serving endpoint owns the address; with
//! Cluster any node may while the Service has a serving endpoint somewhere; a node labelled
//! out of load balancers gives its addresses away. Needs root (namespaces), like the L2 tests.

use std::net::IpAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use ironlb_lab::kube_api::KubeApi;
use ironlb_lab::l2::{L2Lab, L2Options};
use ironlb_lab::netns::{self, Lan};

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
    if !netns::require_with(&["arping"]) {
        return;
    }
    let opts = L2Options::default();
    let lan = L2Lab::lan(&opts);
    let api = KubeApi::start_at(Lan::HOST.into()).await;
    for i in 1..=3 {
        api.apply(&format!("apiVersion: v1\nkind: Node\nmetadata:\n  name: node{i}\n  labels: {{kubernetes.io/hostname: node{i}}}\n"));
    }
    api.apply(CONFIG);
    api.apply(&service("local", "Local"));
    api.apply(&slice("local", &["node2"]));
    api.apply(&service("cluster", "Cluster"));
    api.apply(&slice("cluster", &[]));
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
}
