//! Plain hosts without Kubernetes, replacing keepalived: three "hosts" (network namespaces on
//! one LAN, 203.0.113.0/24), each running a controller member on its own files and a speaker,
//! share one virtual address guarded by a health check; a client namespace resolves it by ARP
//! and reaches the web server behind it. Killing the owner's processes moves the address, a
//! failing health check moves it, a bad file on one member is reported and changes nothing,
//! and a member whose files differ from the leader's says so. And `ironlb standalone
//! --announce`: one process, one host.
//!
//! Needs root, `arping`, `ping` and `python3` (CI runs it with IRONLB_REQUIRE_LAB=1, where
//! anything missing fails). The commands are those of the README's walk-through.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ironlb::api::views::Status;
use ironlb_lab::cluster::Cluster;
use ironlb_lab::l2::{L2Lab, L2Options};
use ironlb_lab::netns::{self, Background, Lan, LanOptions};
use tokio::sync::{Mutex, MutexGuard};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_ironlb"))
}

/// Both labs put the host's leg on 203.0.113.254: one at a time.
static ONE_LAB_AT_A_TIME: Mutex<()> = Mutex::const_new(());

async fn lab_slot() -> Option<MutexGuard<'static, ()>> {
    if !netns::require_with(&["arping", "ping", "python3"]) {
        return None;
    }
    Some(ONE_LAB_AT_A_TIME.lock().await)
}

/// LAN 1 of the labs: documentation addresses, 203.0.113.0/24. The README's walk-through
/// says 192.0.2.0/24, but the lab's leg into the host's own namespace must not collide with the
/// host's network, and CI machines live on 192.0.2.0/24 (the host would send the test's
/// requests for 192.0.2.1 to its real gateway). Nothing else differs.
const SUBNET: [u8; 3] = [203, 0, 113];

/// The virtual address the hosts share.
const VIP: &str = "203.0.113.100";

/// /etc/ironlb/config.yaml of every host: one address, answered on the LAN.
const CONFIG: &str = "apiVersion: ironlb.io/v1beta1
kind: IPAddressPool
metadata: {name: vip}
spec:
  addresses: [203.0.113.100/32]
---
apiVersion: ironlb.io/v1beta1
kind: L2Advertisement
metadata: {name: vip}
spec:
  ipAddressPools: [vip]
";

/// /etc/ironlb/services.yaml of every host: the web server, answered for only by a host
/// whose own web server answers.
const SERVICES: &str = "apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: default
  annotations:
    ironlb.io/health-check: http:8080/
spec:
  type: LoadBalancer
  ports: [{port: 8080}]
";

/// A host's files, in a directory of its own (its /etc/ironlb).
struct HostFiles {
    dir: PathBuf,
}

impl HostFiles {
    fn new(root: &Path, host: &str) -> HostFiles {
        let dir = root.join(host).join("etc-ironlb");
        std::fs::create_dir_all(&dir).unwrap();
        let files = HostFiles { dir };
        files.write("config.yaml", CONFIG);
        files.write("services.yaml", SERVICES);
        files
    }

    fn config(&self) -> PathBuf {
        self.dir.join("config.yaml")
    }

    fn services(&self) -> PathBuf {
        self.dir.join("services.yaml")
    }

    /// Writes a file as editors do: whole, then renamed over the old one.
    fn write(&self, name: &str, text: &str) {
        let tmp = self.dir.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, self.dir.join(name)).unwrap();
    }
}

/// A web server on port 8080 of a host (all its addresses), serving `host.txt` with the
/// host's name: what the health check probes and what the client fetches.
fn web_server(netns: &str, name: &str, root: &Path) -> Background {
    let dir = root.join(name).join("www");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("host.txt"), name).unwrap();
    let d = dir.display().to_string();
    Lan::spawn_in(
        netns,
        &[
            "python3",
            "-m",
            "http.server",
            "8080",
            "--bind",
            "0.0.0.0",
            "--directory",
            &d,
        ],
        &root.join(name).join("www.log"),
    )
}

/// What the client gets from `http://VIP:8080/host.txt`: the name of the host that served it.
fn fetch_from(client_ns: &str, addr: &str) -> Option<String> {
    let url = format!("http://{addr}:8080/host.txt");
    let code = format!(
        "import urllib.request; print(urllib.request.urlopen('{url}', timeout=2).read().decode())"
    );
    let out = Lan::try_exec_in(client_ns, &["python3", "-c", &code]);
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Waits until the client's requests to the address are served by `host`.
async fn wait_served_by(client_ns: &str, addr: &str, host: &str, within: Duration, logs: &str) {
    let deadline = Instant::now() + within;
    let mut last = None;
    while Instant::now() < deadline {
        // A new owner: the client's kernel may still hold the old MAC for a moment.
        Lan::try_exec_in(client_ns, &["ip", "neigh", "flush", "dev", "eth0"]);
        last = fetch_from(client_ns, addr);
        if last.as_deref() == Some(host) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("{addr} was not served by {host} (last answer {last:?}):\n{logs}");
}

/// The value of a metric (without labels) at `url`.
async fn metric(url: &str, name: &str) -> Option<f64> {
    let text = reqwest::get(url).await.ok()?.text().await.ok()?;
    text.lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

/// Waits until a member's metric has `value`.
async fn wait_metric(lab: &L2Lab, member: usize, name: &str, value: f64) {
    let url = format!("http://{}/metrics", lab.cluster.procs[member].admin);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let got = metric(&url, name).await;
        if got == Some(value) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "member {}: {name} is {got:?}, not {value}:\n{}",
            member + 1,
            lab.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Three hosts, each a controller member on its own files and a speaker, and a web server.
struct Hosts {
    lab: L2Lab,
    files: Vec<HostFiles>,
    web: Vec<Option<Background>>,
}

impl Hosts {
    async fn start() -> Hosts {
        let opts = L2Options::default();
        let lan = Lan::build_in(
            LanOptions {
                nodes: opts.nodes,
                ..LanOptions::default()
            },
            SUBNET,
        );
        let mut cluster = Cluster::new(bin());
        let mut files = Vec::new();
        for (i, node) in lan.nodes.iter().enumerate() {
            let host = format!("node{}", i + 1);
            let f = HostFiles::new(cluster.dir.path(), &host);
            let m = cluster.add_proc_at(
                format!("{}:7481", node.addr),
                format!("{}:7480", node.addr),
                Some(node.netns.clone()),
            );
            let args = &mut cluster.procs[m].args;
            args.push("--config-file".into());
            args.push(f.config().display().to_string());
            args.push("--services-file".into());
            args.push(f.services().display().to_string());
            args.extend(["--files-poll-ms".into(), "200".into()]);
            files.push(f);
        }
        cluster.start_all(&[]).await;
        let web = lan
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| {
                Some(web_server(
                    &n.netns,
                    &format!("node{}", i + 1),
                    cluster.dir.path(),
                ))
            })
            .collect();
        let lab = L2Lab::with_cluster(lan, cluster, bin(), opts);
        Hosts { lab, files, web }
    }

    fn client(&self) -> String {
        self.lab.lan.client().netns.clone()
    }

    /// The host answering for the address, once one alone does and serves it.
    async fn owner(&self) -> usize {
        let vip: IpAddr = VIP.parse().unwrap();
        let owner = self.lab.wait_owner(vip, Duration::from_secs(20)).await;
        let name = format!("node{}", owner + 1);
        wait_served_by(
            &self.client(),
            VIP,
            &name,
            Duration::from_secs(10),
            &self.lab.logs(),
        )
        .await;
        owner
    }

    async fn status(&self, member: usize) -> Status {
        self.lab.cluster.procs[member]
            .client()
            .get("/v1/status")
            .await
            .unwrap()
    }

    /// A host's processes die (SIGKILL): its controller member and its speaker.
    fn kill(&mut self, host: usize) {
        self.lab.cluster.procs[host].kill();
        self.lab.speakers[host].kill();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_hosts_share_a_virtual_address_from_their_own_files() {
    let Some(_slot) = lab_slot().await else {
        return;
    };
    let mut hosts = Hosts::start().await;
    let owner = hosts.owner().await;
    for m in 0..3 {
        wait_metric(&hosts.lab, m, "ironlb_config_files_valid", 1.0).await;
        wait_metric(&hosts.lab, m, "ironlb_config_files_differ_from_leader", 0.0).await;
    }
    a_bad_file_on_the_leader_changes_nothing(&hosts, owner).await;
    a_follower_with_other_files_says_so(&hosts).await;

    // The owner's processes die: another host answers and serves.
    hosts.kill(owner);
    let vip: IpAddr = VIP.parse().unwrap();
    let next = hosts
        .lab
        .wait_committed_owner(
            vip,
            Some(format!("node{}", owner + 1).as_str()),
            Duration::from_secs(20),
        )
        .await;
    let next = hosts.lab.node_index(&next);
    assert_ne!(next, owner);
    assert_eq!(hosts.owner().await, next);

    // The new owner's web server stops: its health check fails, the last host takes over.
    hosts.web[next] = None;
    let last = (0..3).find(|h| *h != owner && *h != next).unwrap();
    wait_served_by(
        &hosts.client(),
        VIP,
        &format!("node{}", last + 1),
        Duration::from_secs(20),
        &hosts.lab.logs(),
    )
    .await;
    assert_eq!(hosts.owner().await, last);
}

/// An invalid configuration on the leader's host: reported there (log, metric, status), and
/// the configuration in force, the allocation and the owner stay.
async fn a_bad_file_on_the_leader_changes_nothing(hosts: &Hosts, owner: usize) {
    let leader = hosts.lab.cluster.leader().await;
    let before = hosts.status(leader).await;
    hosts.files[leader].write(
        "config.yaml",
        &CONFIG.replace("203.0.113.100/32", "203.0.113.100-203.0.113.90"),
    );
    wait_metric(&hosts.lab, leader, "ironlb_config_files_valid", 0.0).await;
    let status = hosts.status(leader).await;
    let files = status.files.clone().expect("the leader shows its files");
    assert!(!files.valid && files.digest.is_none(), "{files:?}");
    assert!(
        files
            .errors
            .iter()
            .any(|e| e.contains("range start is after its end")),
        "{files:?}"
    );
    let log = std::fs::read_to_string(&hosts.lab.cluster.procs[leader].log).unwrap();
    assert!(
        log.contains("the files are invalid; the last valid ones stay in force"),
        "{log}"
    );
    // Several polls later nothing has changed.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = hosts.status(leader).await;
    assert_eq!(after.config_revision, before.config_revision);
    assert_eq!(after.allocations, 1);
    assert_eq!(hosts.owner().await, owner);
    hosts.files[leader].write("config.yaml", CONFIG);
    wait_metric(&hosts.lab, leader, "ironlb_config_files_valid", 1.0).await;
    assert_eq!(
        hosts.status(leader).await.config_revision,
        before.config_revision
    );
}

/// A follower's bad file is reported there (it reads and validates its own files too); a
/// follower whose valid files ask for more than the leader's reports it. Nothing changes.
async fn a_follower_with_other_files_says_so(hosts: &Hosts) {
    let leader = hosts.lab.cluster.leader().await;
    let follower = (leader + 1) % 3;
    hosts.files[follower].write("config.yaml", "kind: IPAddressPool\n");
    wait_metric(&hosts.lab, follower, "ironlb_config_files_valid", 0.0).await;
    wait_metric(
        &hosts.lab,
        follower,
        "ironlb_config_files_invalid_total",
        1.0,
    )
    .await;
    hosts.files[follower].write("config.yaml", CONFIG);
    wait_metric(&hosts.lab, follower, "ironlb_config_files_valid", 1.0).await;
    let extra = SERVICES.replace("name: web", "name: extra");
    hosts.files[follower].write("services.yaml", &format!("{SERVICES}---\n{extra}"));
    wait_metric(
        &hosts.lab,
        follower,
        "ironlb_config_files_differ_from_leader",
        1.0,
    )
    .await;
    let files = hosts.status(follower).await.files.unwrap();
    assert_eq!(files.differs_from_leader, Some(true), "{files:?}");
    assert_eq!(
        hosts.status(leader).await.allocations,
        1,
        "the leader's files rule"
    );
    hosts.files[follower].write("services.yaml", SERVICES);
    wait_metric(
        &hosts.lab,
        follower,
        "ironlb_config_files_differ_from_leader",
        0.0,
    )
    .await;
}

/// `ironlb standalone --announce` on one host: the one process answers ARP for the address,
/// the host serves it, a changed file moves it, and a failing health check silences it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standalone_announce_gives_one_host_its_virtual_address() {
    let Some(_slot) = lab_slot().await else {
        return;
    };
    let lan = Lan::build_in(
        LanOptions {
            nodes: 1,
            ..LanOptions::default()
        },
        SUBNET,
    );
    let dir = tempfile::tempdir().unwrap();
    let files = HostFiles::new(dir.path(), "host");
    let host = &lan.nodes[0];
    let data = dir.path().join("data").display().to_string();
    let log = dir.path().join("standalone.log");
    let (config, services) = (
        files.config().display().to_string(),
        files.services().display().to_string(),
    );
    let bin = bin().display().to_string();
    let _standalone = Lan::spawn_in(
        &host.netns,
        &[
            &bin,
            "standalone",
            "--config",
            &config,
            "--services-file",
            &services,
            "--data-dir",
            &data,
            "--files-poll-ms",
            "200",
            "--announce",
            "--node-name",
            "host",
            "--interfaces",
            "eth0",
        ],
        &log,
    );
    let mut web = Some(web_server(&host.netns, "host", dir.path()));
    let client = lan.client().netns.clone();
    let logs = || std::fs::read_to_string(&log).unwrap_or_default();
    wait_served_by(&client, VIP, "host", Duration::from_secs(20), &logs()).await;
    let vip: IpAddr = VIP.parse().unwrap();
    assert_eq!(
        ironlb_lab::l2::resolve_from(&client, vip, "eth0"),
        vec![host.mac.clone()]
    );

    // Another address in the files: it moves there without a restart or a signal.
    files.write(
        "config.yaml",
        &CONFIG.replace("203.0.113.100/32", "203.0.113.101/32"),
    );
    wait_served_by(
        &client,
        "203.0.113.101",
        "host",
        Duration::from_secs(20),
        &logs(),
    )
    .await;

    // The web server stops: the health check fails and the address is no longer answered.
    web.take();
    let deadline = Instant::now() + Duration::from_secs(15);
    while !ironlb_lab::l2::resolve_from(&client, "203.0.113.101".parse().unwrap(), "eth0")
        .is_empty()
    {
        assert!(Instant::now() < deadline, "still answered:\n{}", logs());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// deploy/systemd: `systemd-analyze verify` accepts every unit without a warning (with the
/// binary at the path the units name replaced by the one built), each is hardened, and the
/// example /etc/ironlb passes `ironlb check`.
#[test]
fn the_systemd_units_verify_and_the_example_files_check() {
    let out = std::process::Command::new(bin())
        .args(["check", "--config", "deploy/systemd/etc/ironlb"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let mut units = Vec::new();
    for entry in std::fs::read_dir("deploy/systemd").unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "service") {
            units.push(path);
        }
    }
    units.sort();
    let names: Vec<String> = units
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        [
            "ironlb-controller.service",
            "ironlb-speaker.service",
            "ironlb-standalone.service"
        ]
    );
    for (path, name) in units.iter().zip(&names) {
        let text = std::fs::read_to_string(path).unwrap();
        for needle in [
            "ExecStart=/usr/local/bin/ironlb ",
            "CapabilityBoundingSet=",
            "NoNewPrivileges=yes",
            "ProtectSystem=strict",
            "Restart=always",
        ] {
            assert!(text.contains(needle), "{name}: no {needle}");
        }
        if name != "ironlb-controller.service" {
            assert!(
                text.contains(
                    "CapabilityBoundingSet=CAP_NET_RAW CAP_NET_ADMIN CAP_NET_BIND_SERVICE\n"
                ),
                "{name}"
            );
        }
        if name != "ironlb-speaker.service" {
            assert!(text.contains("StateDirectory=ironlb/"), "{name}");
        }
    }
    if !netns::require_tools(&["systemd-analyze"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for (path, name) in units.iter().zip(&names) {
        let text = std::fs::read_to_string(path).unwrap();
        let built = text.replace("/usr/local/bin/ironlb", &bin().display().to_string());
        std::fs::write(dir.path().join(name), built).unwrap();
    }
    let out = std::process::Command::new("systemd-analyze")
        .arg("verify")
        .args(&names)
        .current_dir(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Unknown keys and bad values are warnings with exit status 0: any output fails too.
    assert!(
        out.status.success() && stderr.trim().is_empty(),
        "systemd-analyze verify: {stderr}"
    );
}
