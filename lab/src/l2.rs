//! A Layer 2 lab: a LAN of node namespaces, each running a speaker (and the first few a
//! controller member), and a client namespace with the real kernel clients (`arping`, `ping`,
//! `ndisc6`). Used by the L2 tests, `ironlb demo` and the failover benchmark.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use reqwest::Method;

use super::cluster::{put_config, Cluster};
use super::netns::{Lan, LanOptions};
use ironlb::api::client::Body;
use ironlb::api::views::AllocateResult;

/// What to build.
#[derive(Clone, Debug)]
pub struct L2Options {
    /// Node namespaces, each with a speaker.
    pub nodes: usize,
    /// How many of the nodes also run a controller member.
    pub controllers: usize,
    /// A second LAN on `eth1` of every node and the client.
    pub second_lan: bool,
    /// Extra arguments of every controller.
    pub controller_args: Vec<String>,
    /// Extra arguments of every speaker.
    pub speaker_args: Vec<String>,
    /// Whether the nodes running a controller also run a speaker (false: a separate control
    /// plane, as when the StatefulSet runs on control-plane nodes).
    pub speakers_on_controller_nodes: bool,
    /// Environment of every controller and speaker.
    pub env: Vec<(String, String)>,
    /// A router namespace on LAN 1 (`.250`), for BGP.
    pub router: bool,
    /// Start the speakers without `--interfaces`: they find their interfaces themselves
    /// (default exclusions, rescans) instead of being told `eth0` (and `eth1`).
    pub discover_interfaces: bool,
}

impl Default for L2Options {
    fn default() -> Self {
        Self {
            nodes: 3,
            controllers: 3,
            second_lan: false,
            controller_args: Vec::new(),
            speaker_args: Vec::new(),
            speakers_on_controller_nodes: true,
            env: Vec::new(),
            router: false,
            discover_interfaces: false,
        }
    }
}

/// A configuration for the lab: one pool on LAN 1 of both families, announced on every node.
pub const CONFIG: &str = "apiVersion: ironlb.io/v1beta1
kind: IPAddressPool
metadata:
  name: lan
spec:
  addresses: [198.51.100.100-198.51.100.149, 2001:db8:51::100-2001:db8:51::149]
---
apiVersion: ironlb.io/v1beta1
kind: L2Advertisement
metadata:
  name: lan
spec:
  ipAddressPools: [lan]
";

/// A dual-stack LoadBalancer Service, with extra annotations lines if given.
pub fn service(ns: &str, name: &str, annotations: &str) -> String {
    let meta = if annotations.is_empty() {
        String::new()
    } else {
        format!("  annotations:\n{annotations}")
    };
    format!("apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\n  namespace: {ns}\n{meta}spec:\n  type: LoadBalancer\n  ipFamilyPolicy: PreferDualStack\n  ipFamilies: [IPv4, IPv6]\n  ports:\n  - port: 80\n")
}

/// One speaker process in a node's namespace.
pub struct SpeakerProc {
    /// Its node's index.
    pub node: usize,
    /// Its node's name (`node1`...).
    pub name: String,
    netns: String,
    args: Vec<String>,
    env: Vec<(String, String)>,
    child: Option<Child>,
    /// Where its output goes.
    pub log: PathBuf,
    bin: PathBuf,
}

impl SpeakerProc {
    /// Starts (or restarts) it.
    pub fn start(&mut self) {
        let mut args: Vec<&str> = vec![self.bin.to_str().expect("UTF-8 path"), "speaker"];
        args.extend(self.args.iter().map(String::as_str));
        let child = std::process::Command::new("ip")
            .args(["netns", "exec", &self.netns])
            .args(&args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .env(
                "RUST_LOG",
                std::env::var("IRONLB_SPEAKER_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&self.log)
                    .expect("log file"),
            )
            .spawn()
            .expect("ironlb speaker starts");
        self.child = Some(child);
    }

    /// The process id, if running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGKILL: no goodbye, no handover.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, then waits for it to exit (it hands its addresses over first).
    pub fn terminate(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            let _ = c.wait();
        }
    }

    /// Whether it runs.
    pub fn running(&self) -> bool {
        self.child.is_some()
    }

    /// Its log's last lines.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(25)..].join("\n")
    }
}

impl Drop for SpeakerProc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The lab.
pub struct L2Lab {
    /// The controllers (in the first nodes' namespaces). Declared first so the processes stop
    /// before the namespaces go.
    pub cluster: Cluster,
    /// The speakers, by node.
    pub speakers: Vec<SpeakerProc>,
    /// The namespaces.
    pub lan: Lan,
}

impl L2Lab {
    /// Builds the LAN, starts the controllers and waits for their cluster, then starts a
    /// speaker on every node.
    pub async fn start(bin: &Path, opts: L2Options) -> L2Lab {
        L2Lab::start_on(L2Lab::lan(&opts), bin, opts).await
    }

    /// The LAN `opts` asks for, to set up more on it before [`L2Lab::start_on`].
    pub fn lan(opts: &L2Options) -> Lan {
        Lan::build(LanOptions {
            nodes: opts.nodes,
            client: true,
            router: opts.router,
            second_lan: opts.second_lan,
            ..LanOptions::default()
        })
    }

    /// Starts the controllers and speakers on a LAN built by [`L2Lab::lan`].
    pub async fn start_on(lan: Lan, bin: &Path, opts: L2Options) -> L2Lab {
        let mut cluster = Cluster::new(bin);
        cluster.env = opts.env.clone();
        for node in lan.nodes.iter().take(opts.controllers) {
            cluster.add_proc_at(
                format!("{}:7481", node.addr),
                format!("{}:7480", node.addr),
                Some(node.netns.clone()),
            );
        }
        let extra: Vec<&str> = opts.controller_args.iter().map(String::as_str).collect();
        cluster.start_all(&extra).await;
        L2Lab::with_cluster(lan, cluster, bin, opts)
    }

    /// Starts a speaker on every node of `lan` (as [`L2Lab::start_on`] does), its controllers
    /// being `cluster`'s members, already running (started with arguments of their own, say).
    pub fn with_cluster(lan: Lan, cluster: Cluster, bin: &Path, opts: L2Options) -> L2Lab {
        let controllers = cluster
            .procs
            .iter()
            .map(|p| p.raft.clone())
            .collect::<Vec<_>>()
            .join(",");
        let interfaces = if opts.second_lan { "eth0,eth1" } else { "eth0" };
        let mut speakers = Vec::new();
        for (i, node) in lan.nodes.iter().enumerate() {
            let name = format!("node{}", i + 1);
            let mut args = vec![
                "--node-name".to_string(),
                name.clone(),
                "--controllers".into(),
                controllers.clone(),
                "--bind-addresses".into(),
                "--metrics-listen".into(),
                format!("{}:7472", node.addr),
            ];
            if !opts.discover_interfaces {
                args.extend(["--interfaces".into(), interfaces.into()]);
            }
            args.extend(opts.speaker_args.iter().cloned());
            let mut s = SpeakerProc {
                node: i,
                name,
                netns: node.netns.clone(),
                args,
                env: opts.env.clone(),
                child: None,
                log: cluster.dir.path().join(format!("speaker{}.log", i + 1)),
                bin: bin.to_path_buf(),
            };
            if opts.speakers_on_controller_nodes || i >= opts.controllers {
                s.start();
            }
            speakers.push(s);
        }
        L2Lab {
            cluster,
            speakers,
            lan,
        }
    }

    /// The node fails: its links go down and its speaker is killed (SIGKILL), so neither it
    /// nor its kernel answers anything any more.
    pub fn fail_node(&mut self, node: usize) {
        self.lan.link_down(node);
        self.speakers[node].kill();
    }

    /// The failed node comes back: links up, speaker started.
    pub fn revive_node(&mut self, node: usize) {
        self.lan.link_up(node);
        self.speakers[node].start();
    }

    /// Whether a node's speaker holds a lease (its `/readyz`).
    pub async fn speaker_ready(&self, node: usize) -> bool {
        let url = format!("http://{}:7472/readyz", self.lan.nodes[node].addr);
        matches!(reqwest::get(&url).await, Ok(r) if r.status().is_success())
    }

    /// The index of the node hosting the Raft leader, if a node does.
    pub async fn leader_node(&self) -> Option<usize> {
        let leader = self.cluster.leader().await;
        let ns = self.cluster.procs[leader].netns.as_deref()?;
        self.lan.nodes.iter().position(|n| n.netns == ns)
    }

    /// Installs a configuration.
    pub async fn configure(&self, yaml: &str) {
        put_config(&self.cluster.client(), yaml).await;
    }

    /// Allocates for a Service manifest; returns its addresses.
    pub async fn allocate(&self, manifest: &str) -> Vec<IpAddr> {
        let r: AllocateResult = self
            .cluster
            .client()
            .call(
                Method::POST,
                "/v1/services",
                Body::Yaml(manifest.to_string()),
            )
            .await
            .expect("allocation");
        assert!(r.error.is_none(), "allocation refused: {}", r.explain);
        r.addresses
    }

    /// Releases a Service.
    pub async fn release(&self, ns: &str, name: &str) {
        let _: serde_json::Value = self
            .cluster
            .client()
            .call(
                Method::DELETE,
                &format!("/v1/services/{ns}/{name}"),
                Body::Empty,
            )
            .await
            .expect("release");
    }

    /// Every allocated address and the node answering for it, as the leader has committed.
    pub async fn owners(&self) -> std::collections::BTreeMap<IpAddr, Option<String>> {
        let list: Vec<ironlb::api::views::OwnerView> = self
            .cluster
            .client()
            .get("/v1/owners")
            .await
            .expect("owners");
        list.into_iter()
            .map(|o| (o.address, o.node.map(|n| n.to_string())))
            .collect()
    }

    /// The committed owner of `addr`, once it is not `not` (panics after `within`).
    pub async fn wait_committed_owner(
        &self,
        addr: IpAddr,
        not: Option<&str>,
        within: Duration,
    ) -> String {
        let deadline = Instant::now() + within;
        loop {
            if let Ok(list) = self
                .cluster
                .client()
                .get::<Vec<ironlb::api::views::OwnerView>>("/v1/owners")
                .await
            {
                let owner = list
                    .into_iter()
                    .find(|o| o.address == addr)
                    .and_then(|o| o.node)
                    .map(|n| n.to_string());
                if let Some(o) = owner {
                    if Some(o.as_str()) != not {
                        return o;
                    }
                }
            }
            assert!(
                Instant::now() < deadline,
                "{addr} got no owner other than {not:?}:\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A speaker's metric value (`name` with its suffix, e.g. `ironlb_speaker_fences_total`).
    pub async fn speaker_metric(&self, node: usize, name: &str) -> Option<f64> {
        let url = format!("http://{}:7472/metrics", self.lan.nodes[node].addr);
        let text = reqwest::get(&url).await.ok()?.text().await.ok()?;
        text.lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
    }

    /// The index of the node named `name` (`node1`...).
    pub fn node_index(&self, name: &str) -> usize {
        self.speakers
            .iter()
            .position(|s| s.name == name)
            .unwrap_or_else(|| panic!("no node {name}"))
    }

    /// The node whose interface has this MAC address.
    pub fn node_of_mac(&self, mac: &str) -> Option<usize> {
        let mac = mac.to_ascii_lowercase();
        self.lan
            .nodes
            .iter()
            .position(|n| n.mac == mac || n.mac2.as_deref() == Some(mac.as_str()))
    }

    /// Who answers the client's ARP (IPv4) or Neighbor Solicitation (IPv6) for `addr` on its
    /// interface `iface`: the MAC addresses of every answer within about half a second.
    pub fn resolve(&self, addr: IpAddr, iface: &str) -> Vec<String> {
        resolve_from(&self.lan.client().netns, addr, iface)
    }

    /// The node answering for `addr` on the client's `eth0`, once exactly one does (panics
    /// after `within`).
    pub async fn wait_owner(&self, addr: IpAddr, within: Duration) -> usize {
        let deadline = Instant::now() + within;
        loop {
            let macs = self.resolve(addr, "eth0");
            if let [one] = macs.as_slice() {
                if let Some(n) = self.node_of_mac(one) {
                    return n;
                }
            }
            assert!(
                Instant::now() < deadline,
                "no single owner for {addr} (answers {macs:?}):\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Makes `addr` on-link for the client's `eth0`, so it asks for it by ARP or NDP even when
    /// it lies outside the LAN's own subnet (as an address from any pool may).
    pub fn route_on_link(&self, addr: IpAddr) {
        let prefix = match addr {
            IpAddr::V4(a) => format!("{a}/32"),
            IpAddr::V6(a) => format!("{a}/128"),
        };
        Lan::exec_in(
            &self.lan.client().netns,
            &["ip", "route", "replace", &prefix, "dev", "eth0"],
        );
    }

    /// Whether the client's `ping` gets an answer from `addr`.
    pub fn ping(&self, addr: IpAddr) -> bool {
        let a = addr.to_string();
        Lan::try_exec_in(
            &self.lan.client().netns,
            &["ping", "-c", "1", "-W", "1", &a],
        )
        .status
        .success()
    }

    /// A web server on `127.0.0.1:port` in every node's namespace (what health checks probe);
    /// each stops when its handle is dropped.
    pub fn http_backends(&self, port: u16) -> Vec<super::netns::Background> {
        let port = port.to_string();
        self.lan
            .nodes
            .iter()
            .map(|n| {
                Lan::spawn_in(
                    &n.netns,
                    &["python3", "-m", "http.server", &port, "--bind", "127.0.0.1"],
                    &self
                        .cluster
                        .dir
                        .path()
                        .join(format!("backend-{}.log", n.netns)),
                )
            })
            .collect()
    }

    /// Every process's log tail.
    pub fn logs(&self) -> String {
        let mut out = self.cluster.logs();
        for s in &self.speakers {
            out.push_str(&format!("\n--- speaker {} ---\n{}", s.name, s.log_tail()));
        }
        out
    }
}

/// The MAC addresses answering ARP or NDP for `addr` from namespace `netns` on `iface`.
pub fn resolve_from(netns: &str, addr: IpAddr, iface: &str) -> Vec<String> {
    let a = addr.to_string();
    let out = match addr {
        // Counts every reply (-c 3 with 0.1 s between requests), not only the first.
        IpAddr::V4(_) => Lan::try_exec_in(
            netns,
            &["arping", "-i", iface, "-c", "3", "-W", "0.1", "-w", "1", &a],
        ),
        // -m: every answer, not only the first; -r 2 tries, -w 300 ms each.
        IpAddr::V6(_) => Lan::try_exec_in(
            netns,
            &["ndisc6", "-m", "-n", "-r", "2", "-w", "300", &a, iface],
        ),
    };
    let text = String::from_utf8_lossy(&out.stdout).to_ascii_lowercase();
    let mut macs: Vec<String> = text
        .split(|c: char| c.is_whitespace() || c == '(' || c == ')')
        .filter(|w| w.len() == 17 && w.chars().filter(|c| *c == ':').count() == 5)
        .map(str::to_string)
        .collect();
    macs.sort();
    macs.dedup();
    macs
}

/// A client pinging an address every 10 ms with timestamps (`ping -D`), until dropped.
pub struct Pinger {
    _child: super::netns::Background,
    log: PathBuf,
}

impl Pinger {
    /// Starts pinging `addr` from the lab's client; the log goes beside the lab's others.
    pub fn start(lab: &L2Lab, addr: IpAddr, tag: &str) -> Pinger {
        Pinger::start_in(
            &lab.lan.client().netns,
            addr,
            &lab.cluster.dir.path().join(format!("ping-{tag}.log")),
        )
    }

    /// Starts pinging `addr` from namespace `netns`, logging to `log`.
    pub fn start_in(netns: &str, addr: IpAddr, log: &Path) -> Pinger {
        let a = addr.to_string();
        let child = Lan::spawn_in(netns, &["ping", "-D", "-n", "-i", "0.01", &a], log);
        Pinger {
            _child: child,
            log: log.to_path_buf(),
        }
    }

    /// The reply times seen so far (seconds since the epoch).
    pub fn replies(&self) -> Vec<f64> {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        text.lines()
            .filter(|l| l.contains("bytes from"))
            .filter_map(|l| l.strip_prefix('[')?.split(']').next()?.parse().ok())
            .collect()
    }

    /// The longest gap between replies from `since` on (seconds since the epoch), counting
    /// from the last reply before `since`.
    pub fn longest_gap_after(&self, since: f64) -> f64 {
        let all = self.replies();
        let start = all.iter().rposition(|t| *t < since).unwrap_or(0);
        all[start..]
            .windows(2)
            .map(|w| w[1] - w[0])
            .fold(0.0, f64::max)
    }

    /// Waits until a reply arrives after `since`; false if none within `within`.
    pub async fn wait_reply_after(&self, since: f64, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if self.replies().iter().any(|t| *t > since) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        false
    }
}

/// Now, in seconds since the epoch (what `ping -D` prints).
pub fn now_epoch() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default()
}
