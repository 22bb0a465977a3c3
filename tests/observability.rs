//! The dashboards and alerts against a real Prometheus scraping a lab run: 3 controllers and 3
//! speakers in network namespaces, a BIRD router, the example Services, a node failing (its
//! speaker and its controller member with it). Every panel's query of every dashboard must
//! return data, and the alerts that should fire (a member down) must be firing while those that
//! must not (no leader, no quorum) are not. Needs root, `bird`, `prometheus` and the PyPI tools
//! of scripts/install-deps (CI runs it with IRONLB_REQUIRE_LAB=1, where anything missing fails).
//!
//! The rules are the shipped ones with every `for:` shortened to 5 s, so the run does not wait
//! minutes for a member-down alert; their conditions are the same.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ironlb_lab::bgp::{Neighbor, Router, RouterConfig, RouterKind};
use ironlb_lab::l2::{L2Lab, L2Options};
use ironlb_lab::netns;

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_ironlb"))
}

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A Prometheus on loopback, killed when dropped.
struct Prometheus {
    child: Child,
    url: String,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The shipped rules with every `for:` at 5 s.
fn quick_rules(dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(repo().join("deploy/prometheus/ironlb-rules.yaml"))
        .expect("deploy/prometheus/ironlb-rules.yaml");
    let quick: String = text
        .lines()
        .map(|l| match l.trim_start().strip_prefix("for:") {
            Some(_) => format!("{}for: 5s", &l[..l.len() - l.trim_start().len()]),
            None => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n");
    let path = dir.join("rules.yaml");
    std::fs::write(&path, quick).expect("rules written");
    path
}

/// Starts Prometheus scraping every controller's admin API and every speaker's metrics port
/// each second, with the shipped rules.
fn start_prometheus(lab: &L2Lab, dir: &Path) -> Prometheus {
    let rules = quick_rules(dir);
    let mut cfg = format!(
        "global: {{scrape_interval: 1s, evaluation_interval: 1s}}\nrule_files: [{}]\nscrape_configs:\n",
        rules.display()
    );
    cfg.push_str("- job_name: ironlb-controller\n  static_configs:\n");
    for (i, p) in lab.cluster.procs.iter().enumerate() {
        cfg.push_str(&format!(
            "  - targets: ['{}']\n    labels: {{cluster: lab, pod: ironlb-controller-{i}}}\n",
            p.admin
        ));
    }
    cfg.push_str("- job_name: ironlb-speaker\n  static_configs:\n");
    for (i, n) in lab.lan.nodes.iter().enumerate() {
        cfg.push_str(&format!(
            "  - targets: ['{}:7472']\n    labels: {{cluster: lab, node: node{}}}\n",
            n.addr,
            i + 1
        ));
    }
    let cfg_path = dir.join("prometheus.yml");
    std::fs::write(&cfg_path, cfg).expect("prometheus.yml written");
    let port = ironlb_lab::cluster::free_port();
    let log = std::fs::File::create(dir.join("prometheus.log")).expect("log file");
    let child = Command::new("prometheus")
        .arg(format!("--config.file={}", cfg_path.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("tsdb").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("prometheus starts");
    Prometheus {
        child,
        url: format!("http://127.0.0.1:{port}"),
    }
}

async fn get_json(url: &str) -> serde_json::Value {
    reqwest::get(url)
        .await
        .expect("Prometheus answers")
        .json()
        .await
        .expect("JSON")
}

/// Waits until every target is up.
async fn wait_targets_up(p: &Prometheus, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        // Prometheus takes a moment to listen.
        let v = match reqwest::get(&format!("{}/api/v1/targets", p.url)).await {
            Ok(r) => r.json().await.unwrap_or_default(),
            Err(_) => serde_json::Value::Null,
        };
        let up = v["data"]["activeTargets"]
            .as_array()
            .map_or(0, |t| t.iter().filter(|t| t["health"] == "up").count());
        if up == n {
            return;
        }
        assert!(Instant::now() < deadline, "targets not up: {v:#}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The names of the alerts firing now.
async fn firing(p: &Prometheus) -> Vec<String> {
    let v = get_json(&format!("{}/api/v1/alerts", p.url)).await;
    v["data"]["alerts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|a| a["state"] == "firing")
        .filter_map(|a| a["labels"]["alertname"].as_str().map(String::from))
        .collect()
}

/// BIRD in the router namespace, peering with every node as the example configuration says.
fn start_bird(lab: &L2Lab, dir: &Path) -> Router {
    let r = lab.lan.router.clone().expect("a router namespace");
    Router::start(
        &r.netns,
        &dir.join("bird"),
        &RouterConfig {
            kind: RouterKind::Bird,
            asn: 64513,
            router_id: r.addr,
            neighbors: lab
                .lan
                .nodes
                .iter()
                .map(|n| Neighbor {
                    addr: IpAddr::V4(n.addr),
                    asn: 64512,
                    password: None,
                })
                .collect(),
            kernel: false,
            graceful_restart: true,
        },
    )
}

/// The example Services, allocated; their addresses.
async fn allocate_examples(lab: &L2Lab) -> Vec<IpAddr> {
    let text = std::fs::read_to_string(repo().join("examples/standalone/services.yaml"))
        .expect("examples/standalone/services.yaml");
    let mut addresses = Vec::new();
    for doc in text.split("\n---") {
        if doc.contains("kind: Service") {
            addresses.extend(lab.allocate(doc).await);
        }
    }
    addresses
}

/// Waits until the leader's announcements (what `ironlb ctl announcements` and the
/// ServiceL2Status objects show) name `node` as answering for `addr`, as the committed owners do.
async fn wait_announced_by(lab: &L2Lab, addr: IpAddr, node: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let a: ironlb::controller::announced::Announcements = lab
            .cluster
            .client()
            .get("/v1/announcements")
            .await
            .expect("announcements");
        let by: Vec<String> =
            a.l2.values()
                .flatten()
                .filter(|l| l.addresses.contains(&addr))
                .map(|l| l.node.to_string())
                .collect();
        if by == [node] || (by.len() > 1 && by.iter().all(|n| n == node)) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{addr} announced by {by:?}, committed owner {node}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Runs the panel checker over the run: every panel must return data; draws each dashboard.
fn check_panels(p: &Prometheus, out: &Path, seconds: u64) {
    let status = Command::new("python3")
        .arg(repo().join("scripts/monitoring/panels.py"))
        .args(["--prometheus", &p.url])
        .arg("--dashboards")
        .arg(repo().join("deploy/grafana"))
        .args(["--vars", "cluster=lab"])
        .args(["--range", &format!("{seconds}s")])
        .args(["--scrape-interval", "1s"])
        .arg("--png")
        .arg("--out")
        .arg(out)
        .status()
        .expect("python3 runs scripts/monitoring/panels.py");
    assert!(
        status.success(),
        "a dashboard panel returned no data (see above)"
    );
}

/// A node fails that answers for something and does not host the leader: its speaker and its
/// controller member go with it. Waits until its addresses have new owners, committed and
/// announced.
async fn fail_an_owner(lab: &mut L2Lab, started: Instant) {
    // A node fails that answers for something and does not host the leader: its speaker and
    // its controller member go with it.
    let leader = lab.leader_node().await.expect("a leader on a node");
    let (victim, owners) = loop {
        let owners = lab.owners().await;
        let found = owners
            .values()
            .flatten()
            .map(|n| lab.node_index(n))
            .find(|n| *n != leader);
        if let Some(n) = found {
            break (n, owners);
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no owner off the leader's node: {owners:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let moved: Vec<IpAddr> = owners
        .iter()
        .filter(|(_, n)| n.as_deref().map(|n| lab.node_index(n)) == Some(victim))
        .map(|(a, _)| *a)
        .collect();
    lab.fail_node(victim);
    lab.cluster.procs[victim].kill();
    for addr in moved {
        let name = format!("node{}", victim + 1);
        let new = lab
            .wait_committed_owner(addr, Some(&name), Duration::from_secs(20))
            .await;
        wait_announced_by(lab, addr, &new).await;
    }
}

/// The member-down alert fires (5 s after Prometheus sees the target down); leadership and
/// quorum stay.
async fn wait_member_down_alert(prometheus: &Prometheus) {
    // The member-down alert fires (5 s after Prometheus sees the target down); leadership and
    // quorum stay.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let now = firing(prometheus).await;
        if now.iter().any(|a| a == "IronlbMemberDown") {
            for never in ["IronlbNoLeader", "IronlbNoQuorum"] {
                assert!(!now.iter().any(|a| a == never), "{never} fires: {now:?}");
            }
            break;
        }
        assert!(
            Instant::now() < deadline,
            "IronlbMemberDown is not firing; firing: {now:?}"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_panel_has_data_and_a_member_down_fires_its_alert() {
    if !netns::require_with(&["bird", "prometheus", "python3", "arping"]) {
        return;
    }
    let started = Instant::now();
    let lab = L2Lab::start(
        bin(),
        L2Options {
            router: true,
            ..L2Options::default()
        },
    )
    .await;
    let dir = lab.cluster.dir.path().to_path_buf();
    let _bird = start_bird(&lab, &dir);
    // The Namespace documents (labels the pools select by) come with the configuration.
    let config = ["pools.yaml", "services.yaml"]
        .iter()
        .map(|f| std::fs::read_to_string(repo().join("examples/standalone").join(f)).unwrap())
        .collect::<Vec<_>>()
        .join("\n---\n");
    lab.configure(&config).await;
    let prometheus = start_prometheus(&lab, &dir);
    wait_targets_up(&prometheus, 6).await;
    let addresses = allocate_examples(&lab).await;
    assert!(!addresses.is_empty(), "no example Service got an address");

    // Data before the fault, then the fault.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let mut lab = lab;
    fail_an_owner(&mut lab, started).await;
    wait_member_down_alert(&prometheus).await;
    // Let rates over the failover settle into the scrapes.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let out = std::env::var_os("IRONLB_DASHBOARD_PNG_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| dir.join("dashboards"));
    check_panels(&prometheus, &out, started.elapsed().as_secs() + 10);
}
