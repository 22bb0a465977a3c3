//! `ironlb standalone`: a single member on files, re-read on SIGHUP, surviving restarts.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ironlb::api::client::AdminClient;
use ironlb::api::views::{ConfigView, ServiceView};
use ironlb_lab::cluster::free_port;

struct Standalone {
    child: Child,
    admin: String,
}

impl Standalone {
    fn start(config: &Path, data: &Path, log: &Path) -> Standalone {
        let admin = format!("127.0.0.1:{}", free_port());
        let raft = format!("127.0.0.1:{}", free_port());
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_ironlb"))
            .args(["standalone", "--config"])
            .arg(config)
            .arg("--data-dir")
            .arg(data)
            .args(["--admin-listen", &admin, "--raft-listen", &raft])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        Standalone { child, admin }
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok);
    }

    fn client(&self) -> AdminClient {
        AdminClient::new(vec![self.admin.clone()], Duration::from_secs(5))
    }

    /// Waits until the allocations satisfy `pred`; returns them by Service.
    async fn wait_for(
        &self,
        what: &str,
        pred: impl Fn(&BTreeMap<String, Vec<IpAddr>>) -> bool,
    ) -> BTreeMap<String, Vec<IpAddr>> {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Ok(list) = self.client().get::<Vec<ServiceView>>("/v1/services").await {
                let map: BTreeMap<String, Vec<IpAddr>> = list
                    .into_iter()
                    .map(|s| (s.service.to_string(), s.addresses))
                    .collect();
                if pred(&map) {
                    return map;
                }
                assert!(Instant::now() < deadline, "{what}: {map:?}");
            }
            assert!(Instant::now() < deadline, "{what}: no answer");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Standalone {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What `ironlb check` says the files give each Service.
fn check(config: &Path) -> BTreeMap<String, Vec<IpAddr>> {
    let out = Command::new(env!("CARGO_BIN_EXE_ironlb"))
        .args(["check", "-o", "json", "--config"])
        .arg(config)
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    v["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let addrs = s["addresses"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a.as_str().unwrap().parse().unwrap())
                .collect();
            (s["service"].as_str().unwrap().to_string(), addrs)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_are_applied_reloaded_on_sighup_and_kept_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config");
    std::fs::create_dir(&config).unwrap();
    for f in ["pools.yaml", "services.yaml"] {
        std::fs::copy(Path::new("examples/standalone").join(f), config.join(f)).unwrap();
    }
    let data = dir.path().join("data");
    let log = dir.path().join("standalone.log");
    let expected = check(&config);
    assert_eq!(expected.len(), 6);

    let s = Standalone::start(&config, &data, &log);
    // The same addresses `ironlb check` predicts: both allocate in the allocator's order.
    let got = s.wait_for("the example Services", |m| m.len() == 6).await;
    assert_eq!(got, expected);

    // Remove one Service, add another, and reload.
    let services = std::fs::read_to_string(config.join("services.yaml")).unwrap();
    let without_web = services.replace("  name: web\n", "  name: web-renamed\n");
    std::fs::write(config.join("services.yaml"), without_web).unwrap();
    s.signal("-HUP");
    let got = s
        .wait_for("after reload", |m| {
            m.contains_key("default/web-renamed") && !m.contains_key("default/web")
        })
        .await;
    assert_eq!(got.len(), 6);
    // The others kept their addresses.
    for (k, v) in &expected {
        if k != "default/web" {
            assert_eq!(got.get(k), Some(v), "{k} moved on reload");
        }
    }

    // An invalid configuration is refused; the one in force stays, and so do the Services.
    let revision = s
        .client()
        .get::<ConfigView>("/v1/config")
        .await
        .unwrap()
        .revision;
    std::fs::write(
        config.join("zz-bad.yaml"),
        "apiVersion: ironlb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: broken}\nspec: {addresses: [192.0.2.9-192.0.2.1]}\n",
    )
    .unwrap();
    s.signal("-HUP");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let view = s.client().get::<ConfigView>("/v1/config").await.unwrap();
    assert_eq!(view.revision, revision);
    let after_bad = s.wait_for("after a bad reload", |m| m.len() == 6).await;
    assert_eq!(after_bad, got);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("IPAddressPool/broken: spec.addresses[0]: \"192.0.2.9-192.0.2.1\": range start is after its end"),
        "{text}"
    );
    std::fs::remove_file(config.join("zz-bad.yaml")).unwrap();

    // Stop, start again: every Service holds what it held.
    s.signal("-TERM");
    drop(s);
    let s = Standalone::start(&config, &data, &log);
    let again = s.wait_for("after restart", |m| m.len() == 6).await;
    assert_eq!(again, got);
}

/// The files' one pass allocates `b-asks` (its requested address) before `a-auto`, which
/// comes first by name and takes any address: the order `service_sync` gives every mode.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_one_pass_an_auto_assigned_service_never_takes_an_address_another_requested() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        "apiVersion: ironlb.io/v1beta1
kind: IPAddressPool
metadata: {name: two}
spec:
  addresses: [198.51.100.10-198.51.100.11]
---
apiVersion: v1
kind: Service
metadata: {name: a-auto, namespace: default}
spec:
  type: LoadBalancer
  ports: [{port: 80}]
---
apiVersion: v1
kind: Service
metadata:
  name: b-asks
  namespace: default
  annotations: {ironlb.io/loadBalancerIPs: 198.51.100.10}
spec:
  type: LoadBalancer
  ports: [{port: 80}]
",
    )
    .unwrap();
    let expected: BTreeMap<String, Vec<IpAddr>> = [
        (
            "default/a-auto".to_string(),
            vec!["198.51.100.11".parse().unwrap()],
        ),
        (
            "default/b-asks".to_string(),
            vec!["198.51.100.10".parse().unwrap()],
        ),
    ]
    .into();
    assert_eq!(check(&config), expected, "ironlb check predicts the same");
    let s = Standalone::start(&config, &dir.path().join("data"), &dir.path().join("log"));
    let got = s.wait_for("both Services", |m| m.len() == 2).await;
    assert_eq!(got, expected);
}
