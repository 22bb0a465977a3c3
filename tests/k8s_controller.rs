//! The Kubernetes reconciler against a stateful stand-in of the Kubernetes API over real HTTP
//! (`ironlb_lab::kube_api`): Services get addresses in their status, annotations (ironlb's and
//! MetalLB's) work, classes are honoured, deletion releases, an invalid set of configuration
//! objects is refused with the field path, a leader change keeps every address, adoption keeps
//! pre-existing addresses, and Events are written.

use std::net::IpAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use ironlb::api::views::ServiceView;
use ironlb_lab::cluster::Cluster;
use ironlb_lab::kube_api::KubeApi;
use serde_json::Value;

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_ironlb"))
}

const CONFIG: &str = "apiVersion: ironlb.io/v1beta1
kind: IPAddressPool
metadata: {name: public, namespace: ironlb-system}
spec:
  addresses: [198.51.100.0/28]
---
apiVersion: ironlb.io/v1beta1
kind: IPAddressPool
metadata: {name: gold, namespace: ironlb-system}
spec:
  addresses: [203.0.113.0/28]
  autoAssign: false
---
apiVersion: ironlb.io/v1beta1
kind: L2Advertisement
metadata: {name: all, namespace: ironlb-system}
spec: {}
";

fn service(ns: &str, name: &str, extra_meta: &str, extra_spec: &str, port: u16) -> String {
    format!("apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\n  namespace: {ns}\n{extra_meta}spec:\n  type: LoadBalancer\n  selector: {{app: {name}}}\n  ports:\n  - port: {port}\n{extra_spec}")
}

struct K8sLab {
    api: KubeApi,
    cluster: Cluster,
}

impl K8sLab {
    async fn start(members: usize, extra: &[&str]) -> K8sLab {
        Self::start_on(KubeApi::start().await, members, extra).await
    }

    /// The same on an API that already holds objects: the first pass sees them all at once.
    async fn start_on(api: KubeApi, members: usize, extra: &[&str]) -> K8sLab {
        let mut cluster = Cluster::new(bin());
        cluster.args = vec!["--kubernetes".into()];
        cluster.args.extend(extra.iter().map(|s| s.to_string()));
        cluster.env = vec![("KUBECONFIG".into(), api.kubeconfig().display().to_string())];
        for _ in 0..members {
            cluster.add_proc();
        }
        cluster.start_all(&[]).await;
        K8sLab { api, cluster }
    }

    fn svc(&self, ns: &str, name: &str) -> Option<Value> {
        self.api.get("v1", "Service", Some(ns), name)
    }

    /// The Service's status addresses once it has some (panics after 15 s).
    async fn wait_ingress(&self, ns: &str, name: &str) -> Vec<IpAddr> {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let ips = self.svc(ns, name).map(|s| ingress(&s)).unwrap_or_default();
            if !ips.is_empty() {
                return ips;
            }
            assert!(
                Instant::now() < deadline,
                "{ns}/{name} got no address:\n{}",
                self.cluster.logs()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn wait_until<F: Fn(&K8sLab) -> bool>(&self, what: &str, f: F) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while !f(self) {
            assert!(
                Instant::now() < deadline,
                "timed out waiting until {what}:\n{}",
                self.cluster.logs()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn held(&self) -> Vec<ServiceView> {
        self.cluster.client().get("/v1/services").await.unwrap()
    }

    fn events(&self, ns: &str, reason: &str) -> Vec<Value> {
        self.api
            .list("events.k8s.io/v1", "Event")
            .into_iter()
            .filter(|e| e["metadata"]["namespace"] == ns && e["reason"] == reason)
            .collect()
    }
}

fn ingress(svc: &Value) -> Vec<IpAddr> {
    svc["status"]["loadBalancer"]["ingress"]
        .as_array()
        .map(|l| {
            l.iter()
                .filter_map(|i| i["ip"].as_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_gets_an_address_its_status_the_pool_annotation_and_an_event() {
    let lab = K8sLab::start(1, &[]).await;
    lab.api.apply(CONFIG);
    lab.api.apply(&service("default", "web", "", "", 80));
    assert_eq!(
        lab.wait_ingress("default", "web").await,
        vec![ip("198.51.100.0")]
    );
    lab.wait_until("the pool annotation is written", |l| {
        l.svc("default", "web").unwrap()["metadata"]["annotations"]
            ["ironlb.io/ip-allocated-from-pool"]
            == "public"
    })
    .await;
    lab.wait_until("an IPAllocated event is recorded", |l| {
        l.events("default", "IPAllocated")
            .iter()
            .any(|e| e["regarding"]["name"] == "web")
    })
    .await;
    // The configuration is reported valid, and the pool's status counts the address.
    // The objects may arrive in one revision or several: any is fine once valid.
    lab.wait_until("the ConfigurationState says valid", |l| {
        state_is(l, true, None)
    })
    .await;
    lab.wait_until("the pool status counts it", |l| {
        l.api
            .get(
                "ironlb.io/v1beta1",
                "IPAddressPool",
                Some("ironlb-system"),
                "public",
            )
            .is_some_and(|p| p["status"]["assignedIPv4"] == 1 && p["status"]["availableIPv4"] == 15)
    })
    .await;
    let held = lab.held().await;
    assert_eq!(held.len(), 1);
    assert_eq!(held[0].addresses, vec![ip("198.51.100.0")]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_address_and_sharing_annotations_work_in_ironlb_and_metallb_forms() {
    let lab = K8sLab::start(1, &[]).await;
    lab.api.apply(CONFIG);
    lab.api.apply(&service(
        "default",
        "gold",
        "  annotations:\n    ironlb.io/address-pool: gold\n",
        "",
        80,
    ));
    lab.api.apply(&service(
        "default",
        "gold-mlb",
        "  annotations:\n    metallb.universe.tf/address-pool: gold\n",
        "",
        80,
    ));
    lab.api.apply(&service(
        "default",
        "fixed",
        "  annotations:\n    metallb.io/loadBalancerIPs: 198.51.100.9\n",
        "",
        80,
    ));
    lab.api.apply(&service(
        "default",
        "dns-tcp",
        "  annotations:\n    metallb.io/allow-shared-ip: dns\n",
        "",
        53,
    ));
    let udp = "apiVersion: v1\nkind: Service\nmetadata:\n  name: dns-udp\n  namespace: default\n  annotations:\n    ironlb.io/allow-shared-ip: dns\nspec:\n  type: LoadBalancer\n  selector: {app: dns}\n  ports:\n  - {port: 53, protocol: UDP}\n";
    lab.api.apply(udp);
    let gold = lab.wait_ingress("default", "gold").await;
    let gold_mlb = lab.wait_ingress("default", "gold-mlb").await;
    assert!(gold[0].to_string().starts_with("203.0.113."), "{gold:?}");
    assert!(
        gold_mlb[0].to_string().starts_with("203.0.113."),
        "{gold_mlb:?}"
    );
    assert_eq!(
        lab.wait_ingress("default", "fixed").await,
        vec![ip("198.51.100.9")]
    );
    let tcp = lab.wait_ingress("default", "dns-tcp").await;
    assert_eq!(
        lab.wait_ingress("default", "dns-udp").await,
        tcp,
        "sharers share"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn classes_are_honoured_and_a_service_that_stops_being_ours_or_is_deleted_is_released() {
    let lab = K8sLab::start(1, &[]).await;
    lab.api.apply(CONFIG);
    lab.api.apply(&service(
        "default",
        "other",
        "",
        "  loadBalancerClass: example.com/other\n",
        80,
    ));
    lab.api.apply(&service("default", "mine", "", "", 80));
    let mine = lab.wait_ingress("default", "mine").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        ingress(&lab.svc("default", "other").unwrap()).is_empty(),
        "another class's Service got an address"
    );
    // No longer a LoadBalancer: released, its status cleared, an event says so.
    let cluster_ip = "apiVersion: v1\nkind: Service\nmetadata:\n  name: mine\n  namespace: default\nspec:\n  type: ClusterIP\n  selector: {app: mine}\n  ports:\n  - port: 80\n";
    lab.api.apply(cluster_ip);
    lab.wait_until("the status is cleared", |l| {
        ingress(&l.svc("default", "mine").unwrap()).is_empty()
    })
    .await;
    lab.wait_until("an IPReleased event is recorded", |l| {
        !l.events("default", "IPReleased").is_empty()
    })
    .await;
    assert!(lab.held().await.iter().all(|s| s.service.name() != "mine"));
    // Deleted: released, and its address goes to the next Service.
    lab.api.apply(&service("default", "second", "", "", 80));
    let second = lab.wait_ingress("default", "second").await;
    assert_eq!(second, mine, "the freed address is the lowest again");
    assert!(lab.api.delete("v1", "Service", Some("default"), "second"));
    let deadline = Instant::now() + Duration::from_secs(15);
    while lab
        .held()
        .await
        .iter()
        .any(|s| s.service.name() == "second")
    {
        assert!(
            Instant::now() < deadline,
            "deletion did not release:\n{}",
            lab.cluster.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_set_is_refused_with_the_field_path_and_the_old_configuration_stays() {
    let lab = K8sLab::start(1, &[]).await;
    lab.api.apply(CONFIG);
    lab.api.apply(&service("default", "before", "", "", 80));
    lab.wait_ingress("default", "before").await;
    lab.api.apply("apiVersion: ironlb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: public, namespace: ironlb-system}\nspec:\n  addresses: [\"192.0.2.10-192.0.2.1\"]\n");
    lab.wait_until("the ConfigurationState reports the error", |l| {
        l.api
            .get(
                "ironlb.io/v1beta1",
                "ConfigurationState",
                Some("ironlb-system"),
                "ironlb",
            )
            .is_some_and(|s| {
                s["status"]["valid"] == false
                    && s["status"]["errors"].as_array().is_some_and(|e| {
                        e.iter().any(|e| {
                            e.as_str()
                                .unwrap_or("")
                                .contains("IPAddressPool/public: spec.addresses[0]")
                                && e.as_str()
                                    .unwrap_or("")
                                    .contains("range start is after its end")
                        })
                    })
            })
    })
    .await;
    // The old pool is still in force: a new Service gets an address from it.
    lab.api.apply(&service("default", "after", "", "", 80));
    let after = lab.wait_ingress("default", "after").await;
    assert!(after[0].to_string().starts_with("198.51.100."), "{after:?}");
    let metrics = reqwest::get(format!("http://{}/metrics", lab.cluster.procs[0].admin))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("ironlb_config_valid 0"), "{metrics}");
    assert!(
        metrics.contains("ironlb_k8s_reconciles_total{result=\"changed\"}"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_change_keeps_every_address_and_the_new_leader_carries_on() {
    let mut lab = K8sLab::start(3, &[]).await;
    lab.api.apply(CONFIG);
    let mut before = Vec::new();
    for i in 0..5 {
        lab.api
            .apply(&service("default", &format!("s{i}"), "", "", 80));
    }
    for i in 0..5 {
        before.push(lab.wait_ingress("default", &format!("s{i}")).await);
    }
    let leader = lab.cluster.leader().await;
    lab.cluster.procs[leader].kill();
    lab.api.apply(&service("default", "new", "", "", 80));
    let new = lab.wait_ingress("default", "new").await;
    assert!(!before.contains(&new), "{new:?} was already given");
    for (i, addrs) in before.iter().enumerate() {
        assert_eq!(
            &ingress(&lab.svc("default", &format!("s{i}")).unwrap()),
            addrs,
            "s{i} was renumbered"
        );
    }
    lab.cluster.procs[leader].start(&[]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn addresses_services_already_hold_are_adopted_not_renumbered() {
    let api = KubeApi::start().await;
    api.apply(CONFIG);
    // As MetalLB left it: .7 in the status, not the lowest free address.
    api.apply(&format!(
        "{}status:\n  loadBalancer:\n    ingress:\n    - ip: 198.51.100.7\n",
        service(
            "default",
            "legacy",
            "  annotations:\n    metallb.io/ip-allocated-from-pool: public\n",
            "",
            80
        )
    ));
    let mut cluster = Cluster::new(bin());
    cluster.args = vec!["--kubernetes".into()];
    cluster.env = vec![("KUBECONFIG".into(), api.kubeconfig().display().to_string())];
    cluster.add_proc();
    cluster.start_all(&[]).await;
    let lab = K8sLab { api, cluster };
    lab.wait_until("an IPAdopted event is recorded", |l| {
        !l.events("default", "IPAdopted").is_empty()
    })
    .await;
    let held = lab.held().await;
    assert_eq!(held.len(), 1);
    assert_eq!(held[0].addresses, vec![ip("198.51.100.7")]);
    assert_eq!(
        ingress(&lab.svc("default", "legacy").unwrap()),
        vec![ip("198.51.100.7")]
    );
    // A Service asking for an address no pool has is refused, and the Event says why.
    lab.api.apply(&service(
        "default",
        "nowhere",
        "  annotations:\n    ironlb.io/loadBalancerIPs: 192.0.2.99\n",
        "",
        80,
    ));
    lab.wait_until("an AllocationFailed event is recorded", |l| {
        l.events("default", "AllocationFailed")
            .iter()
            .any(|e| e["note"].as_str().is_some_and(|n| n.contains("192.0.2.99")))
    })
    .await;
}

/// Whether the ConfigurationState says `valid` and, if given, has an error containing `text`.
fn state_is(lab: &K8sLab, valid: bool, text: Option<&str>) -> bool {
    lab.api
        .get(
            "ironlb.io/v1beta1",
            "ConfigurationState",
            Some("ironlb-system"),
            "ironlb",
        )
        .is_some_and(|s| {
            // Valid means a configuration was installed (revision 1 or later).
            s["status"]["valid"] == valid
                && (!valid || s["status"]["revision"].as_u64() >= Some(1))
                && text.is_none_or(|t| {
                    s["status"]["errors"]
                        .as_array()
                        .is_some_and(|e| e.iter().any(|e| e.as_str().unwrap_or("").contains(t)))
                })
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bgp_password_comes_from_its_secret_and_a_missing_secret_is_reported() {
    let lab = K8sLab::start(1, &[]).await;
    let peer = |hold: &str| {
        format!("apiVersion: ironlb.io/v1beta1\nkind: BGPPeer\nmetadata: {{name: tor, namespace: ironlb-system}}\nspec: {{myASN: 64512, peerASN: 64513, peerAddress: 198.51.100.250, holdTime: {hold}, passwordSecret: {{name: tor-md5}}}}\n")
    };
    lab.api.apply(&format!("{CONFIG}---\n{}", peer("9s")));
    lab.wait_until("the missing Secret is reported", |l| {
        state_is(
            l,
            false,
            Some("BGPPeer/tor: spec.passwordSecret: Secret ironlb-system/tor-md5 does not exist"),
        )
    })
    .await;
    // "s3cret" in base64.
    lab.api.apply("apiVersion: v1\nkind: Secret\nmetadata: {name: tor-md5, namespace: ironlb-system}\ntype: kubernetes.io/basic-auth\ndata: {password: czNjcmV0}\n");
    lab.api.apply(&peer("10s"));
    lab.wait_until(
        "the configuration with the Secret's password is valid",
        |l| state_is(l, true, None),
    )
    .await;
    let config: Value = lab.cluster.client().get("/v1/config").await.unwrap();
    let text = config.to_string();
    assert!(!text.contains("s3cret"), "the password is shown: {text}");
}

/// Services that take any address never take one another Service asked for, whichever the
/// Controller reconciles first: twenty `a-auto-NN` and one `b-asks` (asking for the pool's
/// lowest address, the one an auto-assigned Service would take first) all arrive together.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_one_pass_an_auto_assigned_service_never_takes_an_address_another_requested() {
    let api = KubeApi::start().await;
    api.apply(
        "apiVersion: ironlb.io/v1beta1
kind: IPAddressPool
metadata: {name: exact, namespace: ironlb-system}
spec:
  addresses: [198.51.100.10-198.51.100.30]
---
apiVersion: ironlb.io/v1beta1
kind: L2Advertisement
metadata: {name: all, namespace: ironlb-system}
spec: {}
",
    );
    for i in 0..20 {
        api.apply(&service("default", &format!("a-auto-{i:02}"), "", "", 80));
    }
    api.apply(&service(
        "default",
        "b-asks",
        "  annotations: {ironlb.io/loadBalancerIPs: 198.51.100.10}\n",
        "",
        80,
    ));
    let lab = K8sLab::start_on(api, 1, &[]).await;
    assert_eq!(
        lab.wait_ingress("default", "b-asks").await,
        vec![ip("198.51.100.10")]
    );
    for i in 0..20 {
        let got = lab.wait_ingress("default", &format!("a-auto-{i:02}")).await;
        assert_ne!(got, vec![ip("198.51.100.10")], "a-auto-{i:02}");
    }
    assert!(lab.events("default", "AllocationFailed").is_empty());
}

/// A Service that cannot get an address is tried again on its own backoff (1 s, 2 s, 4 s...),
/// not only when something changes or at the 300 s resync; each failure is counted by kind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_that_cannot_be_allocated_is_retried_on_its_own_backoff() {
    let lab = K8sLab::start(1, &[]).await;
    lab.api.apply(CONFIG);
    // A pool that does not exist: no address, whatever is tried.
    lab.api.apply(&service(
        "default",
        "nowhere",
        "  annotations:\n    ironlb.io/address-pool: nowhere\n",
        "",
        80,
    ));
    let admin = lab.cluster.procs[0].admin.clone();
    let failures = || async {
        let text = reqwest::get(format!("http://{admin}/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .find_map(|l| {
                l.strip_prefix("ironlb_k8s_reconciles_total{result=\"no_address\"} ")
                    .and_then(|v| v.trim().parse::<u64>().ok())
            })
            .unwrap_or(0)
    };
    // Without its own retries it fails three times at start (its first pass and the passes the
    // configuration's arrival triggers) and then not again for 300 s.
    let deadline = Instant::now() + Duration::from_secs(30);
    while failures().await < 5 {
        assert!(
            Instant::now() < deadline,
            "{} attempts, expected retries at about 1, 3, 7 and 15 s:\n{}",
            failures().await,
            lab.cluster.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        lab.cluster.logs().contains("reconcile failed"),
        "{}",
        lab.cluster.logs()
    );
}
