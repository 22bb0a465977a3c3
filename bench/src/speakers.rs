//! `speakers`: what N speakers cost the controller leader, side by side with what N nodes
//! renewing a Kubernetes-style Lease through etcd cost etcd.
//!
//! - ours: three real `ironlb controller` processes (release build) on 127.0.0.1 and N
//!   simulated speakers in this process. Each simulated speaker is the real
//!   [`ControllerSession`] and the real [`link::run`] over real TCP to every member (the real
//!   session protocol, heartbeats, leases, assignments and acknowledgements); only the node
//!   agent is replaced by [`SimAgent`], which records what it is told to answer for instead of
//!   opening raw sockets. The sessions run on several actix arbiters, as a few hundred real
//!   nodes' would run on their own CPUs. Node i's links leave from its own loopback address
//!   (127.1.0.0 + i + 1; all of 127/8 is local on Linux), as real nodes' come from their own
//!   addresses, so the members' per-address connection limit applies as in production.
//! - baseline: three real etcd processes; every node renews `/leases/node-i` each heartbeat
//!   with a compare-and-swap on its mod_revision through etcd's JSON gateway (what Lease-based
//!   announcers such as kube-vip and Cilium put on the control plane), a controller task
//!   watches `/leases/`, declares a node dead one lease plus margin after its last renewal and
//!   CAS-writes `/owners/<addr>` of its addresses; one watch on `/owners/` stands for the
//!   speakers.
//!
//! Caveat printed in the JSON: the three members, the bench's speakers (or renewal tasks) and
//! the bench itself share this machine's cores, so the leader's CPU is measured under
//! contention.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix::{Actor, Addr, Context, Handler};
use actix_rt::ArbiterHandle;
use anyhow::{bail, ensure, Context as _, Result};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ironlb::announce::proto::{Assignment, L2Address};
use ironlb::config::model::InterfaceName;
use ironlb::ipam::{AllocationRequest, Port};
use ironlb::labels::Labels;
use ironlb::metrics::speaker::SpeakerMetrics;
use ironlb::names::{NodeName, ServiceKey};
use ironlb::raft::network::{wire, NetworkConfig};
use ironlb::speaker::agent::{SetAddresses, SetBgp};
use ironlb::speaker::link::{self, LinkConfig};
use ironlb::speaker::session::{
    Applier, AssignmentProbe, ControllerSession, OnControlPlaneLoss, Readiness, ReadinessSource,
    SessionConfig,
};
use ironlb::speaker::LeaseGate;
use ironlb_lab::cluster::{pool_yaml, put_config, Cluster};
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::alloc::{allocate_ours, drive, http_client};
use crate::common::{quantile_ms, spread, ProcStat};
use crate::common::{round2, round3};
use crate::etcd::{b64, post, Etcd};

/// The pool: RFC 2544's benchmarking block; nothing is ever sent to these addresses.
const POOL_CIDR: &str = "198.18.0.0/15";
/// Namespace of the benchmark's Services.
const NAMESPACE: &str = "bench";
/// The default lease timing of the members (controller::LeaseTiming): heartbeat, and from the
/// last renewal until a node counts as dead (lease + margin).
const HEARTBEAT: Duration = Duration::from_millis(200);
const DEAD_AFTER: Duration = Duration::from_millis(1200);
/// The lease a renewal grants, from the heartbeat's sending (controller::LeaseTiming).
const LEASE: Duration = Duration::from_secs(1);
/// Arbiters the simulated sessions are spread over.
const ARBITERS: usize = 4;
/// How long one change is watched for its cost.
const CHANGE_WINDOW: Duration = Duration::from_secs(2);
/// Allocation clients.
const CLIENTS: usize = 32;
/// Services allocated at once while the speakers run.
const ALLOC_BATCH: usize = 500;

/// The scenario's options.
#[derive(Clone, Debug)]
pub struct Options {
    /// Node counts, each run on a fresh cluster.
    pub nodes: Vec<usize>,
    /// Services allocated once every speaker holds a lease.
    pub services: usize,
    /// Seconds of steady state measured.
    pub duration: u64,
    /// Failovers per side and node count.
    pub trials: usize,
    /// Skip the human-readable summary.
    pub json: bool,
    /// Skip the etcd side.
    pub no_baseline: bool,
}

macro_rules! progress {
    ($($arg:tt)*) => { eprintln!("[speakers] {}", format_args!($($arg)*)) };
}

fn mb(bytes: u64) -> f64 {
    round2(bytes as f64 / (1024.0 * 1024.0))
}

/// A pause of 0-199 ms, so a kill lands at a random phase of the heartbeat.
fn random_phase() -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    Duration::from_millis(u64::from(nanos.wrapping_mul(2_654_435_761) % 200))
}

/// Runs the scenario and prints its JSON line.
pub fn run(opts: &Options) -> Result<()> {
    ensure!(!opts.nodes.is_empty(), "--nodes needs at least one count");
    ensure!(
        opts.nodes.iter().all(|n| *n >= 2),
        "--nodes: at least 2 nodes, so an address has somewhere to go"
    );
    ensure!(opts.services > 0, "--services must be at least 1");
    let bin = crate::common::build_release_binary()?;
    let etcd_bin = crate::common::etcd_binary(opts.no_baseline)?;
    let rt = crate::common::runtime()?;
    let mut runs = Vec::new();
    for &n in &opts.nodes {
        let ours = rt.block_on(ours::ours(&bin, n, opts))?;
        // Each side's figures as soon as they are known, so a later failure loses none.
        progress!("{n} nodes, ours: {ours}");
        let baseline = match &etcd_bin {
            Some(e) => rt.block_on(baseline::baseline(e, n, opts))?,
            None => Value::Null,
        };
        progress!("{n} nodes, baseline: {baseline}");
        if !opts.json {
            summary(n, &ours, &baseline);
        }
        runs.push(json!({"nodes": n, "ours": ours, "baseline": baseline}));
    }
    // Top-level figures are the largest count's.
    let largest = runs
        .iter()
        .max_by_key(|r| r["nodes"].as_u64().unwrap_or(0))
        .cloned()
        .unwrap_or(Value::Null);
    let ratio = |key: &str| {
        let (o, b) = (
            largest["ours"][key].as_f64(),
            largest["baseline"][key].as_f64(),
        );
        match (o, b) {
            (Some(o), Some(b)) if b > 0.0 => json!(round3(o / b)),
            _ => Value::Null,
        }
    };
    let smallest = runs
        .iter()
        .min_by_key(|r| r["nodes"].as_u64().unwrap_or(0))
        .cloned()
        .unwrap_or(Value::Null);
    let failover_growth_ms = match (
        largest["ours"]["failover_s"].as_f64(),
        smallest["ours"]["failover_s"].as_f64(),
    ) {
        (Some(l), Some(s)) if runs.len() > 1 => json!(round2((l - s) * 1000.0)),
        _ => Value::Null,
    };
    let out = json!({
        "scenario": "speakers",
        "nodes": largest["nodes"],
        "services": opts.services,
        "duration_s": opts.duration,
        "trials": opts.trials,
        "ours": largest["ours"],
        "baseline": largest["baseline"],
        "ratios": {
            "leader_cpu_cores": ratio("leader_cpu_cores"),
            "renewal_p99_ms": ratio("renewal_p99_ms"),
            "failover_s": ratio("failover_s"),
            "leader_rss_mb": ratio("leader_rss_mb"),
        },
        "failover_growth_ms": failover_growth_ms,
        "goals": {
            "leader_cpu_cores_below_1": largest["ours"]["leader_cpu_cores"].as_f64().map(|c| c < 1.0),
            "renewal_p99_below_50ms": largest["ours"]["renewal_p99_ms"].as_f64().map(|p| p < 50.0),
            "failover_growth_within_50ms": failover_growth_ms.as_f64().map(|g| g <= 50.0),
        },
        "runs": runs,
        "note": "members, simulated speakers (or etcd renewal tasks) and the bench share this machine's cores; CPU figures are measured under that contention",
    });
    println!("{out}");
    Ok(())
}

fn summary(n: usize, ours: &Value, base: &Value) {
    let f = |v: &Value, k: &str| v[k].as_f64().unwrap_or(f64::NAN);
    eprintln!(
        "{n} nodes, ours: leader {:.3} cores ({:.1} us/heartbeat), renewal p50 {:.2} p99 {:.2} max {:.2} ms, failover {:.3} s, leader RSS {:.1} MB",
        f(ours, "leader_cpu_cores"),
        f(ours, "leader_cpu_us_per_heartbeat"),
        f(ours, "renewal_p50_ms"),
        f(ours, "renewal_p99_ms"),
        f(ours, "renewal_max_ms"),
        f(ours, "failover_s"),
        f(ours, "leader_rss_mb"),
    );
    if !base.is_null() {
        eprintln!(
            "{n} nodes, etcd: leader {:.3} cores, renewal p50 {:.2} p99 {:.2} max {:.2} ms, {:.0}/{:.0} renewals/s, failover {:.3} s, leader RSS {:.1} MB",
            f(base, "leader_cpu_cores"),
            f(base, "renewal_p50_ms"),
            f(base, "renewal_p99_ms"),
            f(base, "renewal_max_ms"),
            f(base, "renewals_per_s"),
            f(base, "attempted_renewals_per_s"),
            f(base, "failover_s"),
            f(base, "leader_rss_mb"),
        );
    }
}

// ---------------------------------------------------------------------------------------------
// ours: simulated speakers

/// Who holds an address, as the simulated agents were told.
#[derive(Clone, Debug)]
struct Holder {
    node: usize,
    at: Instant,
    services: Vec<ServiceKey>,
}

/// What every simulated speaker reports into.
#[derive(Default)]
struct Shared {
    /// Address → the node that took it last (and when), while it holds it.
    board: Mutex<HashMap<IpAddr, Holder>>,
    /// Whether assignments are counted now (encoding each costs the bench CPU).
    counting: AtomicBool,
    messages: AtomicU64,
    bytes: AtomicU64,
    touched: Mutex<HashSet<usize>>,
    /// Whether renewal round trips are kept now.
    recording: AtomicBool,
    rtts: Mutex<Vec<Duration>>,
    renewals: AtomicU64,
}

impl Shared {
    fn count_assignment(&self, node: usize, a: &Assignment) {
        if !self.counting.load(Ordering::Relaxed) {
            return;
        }
        // The payload as it travelled (ToSpeaker's variant tag is one more byte; framing and
        // TLS add a constant per message).
        let bytes = wire::encode("assignment", a).map(|b| b.len()).unwrap_or(0) + 1;
        self.messages.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
        if let Ok(mut t) = self.touched.lock() {
            t.insert(node);
        }
    }

    fn start_counting(&self) {
        self.messages.store(0, Ordering::SeqCst);
        self.bytes.store(0, Ordering::SeqCst);
        if let Ok(mut t) = self.touched.lock() {
            t.clear();
        }
        self.counting.store(true, Ordering::SeqCst);
    }

    /// Stops counting; returns (messages, bytes, nodes touched).
    fn stop_counting(&self) -> (u64, u64, usize) {
        self.counting.store(false, Ordering::SeqCst);
        let touched = self.touched.lock().map(|t| t.len()).unwrap_or(0);
        (
            self.messages.load(Ordering::SeqCst),
            self.bytes.load(Ordering::SeqCst),
            touched,
        )
    }

    fn held_by(&self, node: usize) -> Vec<(IpAddr, Vec<ServiceKey>)> {
        let board = self.board.lock().expect("board lock");
        board
            .iter()
            .filter(|(_, h)| h.node == node)
            .map(|(a, h)| (*a, h.services.clone()))
            .collect()
    }
}

/// Stands in for the node agent: records the addresses it is told to answer for.
struct SimAgent {
    node: usize,
    /// Cleared when the simulated node is killed: a dead node applies nothing.
    alive: Arc<AtomicBool>,
    held: BTreeSet<IpAddr>,
    shared: Arc<Shared>,
}

impl Actor for SimAgent {
    type Context = Context<Self>;
}

impl Handler<SetAddresses> for SimAgent {
    type Result = ();

    fn handle(&mut self, msg: SetAddresses, _: &mut Context<Self>) {
        if !self.alive.load(Ordering::SeqCst) {
            return;
        }
        let now = Instant::now();
        let Ok(mut board) = self.shared.board.lock() else {
            return;
        };
        for gone in self.held.iter().filter(|a| !msg.addresses.contains_key(a)) {
            if board.get(gone).is_some_and(|h| h.node == self.node) {
                board.remove(gone);
            }
        }
        for (a, L2Address { services, .. }) in &msg.addresses {
            if !self.held.contains(a) {
                board.insert(
                    *a,
                    Holder {
                        node: self.node,
                        at: now,
                        services: services.clone(),
                    },
                );
            }
        }
        self.held = msg.addresses.keys().copied().collect();
    }
}

impl Handler<SetBgp> for SimAgent {
    type Result = ();

    fn handle(&mut self, _: SetBgp, _: &mut Context<Self>) {}
}

/// One simulated speaker.
struct Sim {
    session: Addr<ControllerSession>,
    gate: Arc<LeaseGate>,
    alive: Arc<AtomicBool>,
    links: JoinHandle<()>,
}

impl Sim {
    /// As a node's death looks from the network: its connections close and it applies
    /// nothing more. Returns how long its lease still ran at that moment: the lease runs
    /// `LEASE` from the sending of the last granted heartbeat, which the leader's verdict
    /// counts `DEAD_AFTER` from (the grant came within half a round trip of the sending).
    fn kill(&self) -> Duration {
        self.alive.store(false, Ordering::SeqCst);
        // The member links end with the fan-out task (their queues close).
        self.links.abort();
        let remaining = self.gate.remaining();
        self.gate.revoke();
        remaining
    }
}

/// Node `i`'s own loopback address, which its links leave from: 127.1.0.1 onwards.
fn node_source(i: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(0x7F01_0001u32 + i as u32))
}

/// What every simulated speaker is started with.
struct Env {
    controllers: Vec<String>,
    arbiters: Vec<ArbiterHandle>,
    shared: Arc<Shared>,
    rtt_tx: mpsc::UnboundedSender<Duration>,
}

impl Env {
    async fn start_speaker(&self, i: usize) -> Result<Sim> {
        let node = NodeName::new(format!("node-{i}"))?;
        let cfg = SessionConfig {
            node: node.clone(),
            labels: Labels::default(),
            interfaces: vec![InterfaceName::new("eth0").map_err(|e| anyhow::anyhow!("{e}"))?],
            controllers: self.controllers.clone(),
            on_loss: OnControlPlaneLoss::Fence,
        };
        let (out_tx, out_rx) = mpsc::channel(64);
        let gate = Arc::new(LeaseGate::default());
        let alive = Arc::new(AtomicBool::new(true));
        let (tx, rx) = oneshot::channel();
        let (shared, rtt_tx, g, a) = (
            self.shared.clone(),
            self.rtt_tx.clone(),
            gate.clone(),
            alive.clone(),
        );
        self.arbiters[i % self.arbiters.len()].spawn_fn(move || {
            let agent = SimAgent {
                node: i,
                alive: a,
                held: BTreeSet::new(),
                shared: shared.clone(),
            }
            .start();
            let applier = Applier {
                addresses: agent.clone().recipient(),
                bgp: agent.recipient(),
            };
            // Nobody health-checks: the published Services are only kept, as a real speaker
            // keeps them for its checks.
            let (services_tx, _) = watch::channel(Vec::new());
            let probe: AssignmentProbe =
                Box::new(move |a: &Assignment| shared.count_assignment(i, a));
            let session = ControllerSession::new(
                cfg,
                applier,
                g,
                Arc::new(SpeakerMetrics::new()),
                out_tx,
                services_tx,
            )
            .with_rtt_probe(rtt_tx)
            .with_assignment_probe(probe)
            .start();
            let _ = tx.send(session);
        });
        let session = rx.await.context("an arbiter did not start a session")?;
        let links = tokio::spawn(link::run(
            LinkConfig {
                controllers: self.controllers.clone(),
                node,
                tls: None,
                network: NetworkConfig {
                    source: Some(node_source(i)),
                    ..NetworkConfig::default()
                },
            },
            session.clone(),
            out_rx,
        ));
        Ok(Sim {
            session,
            gate,
            alive,
            links,
        })
    }
}

/// Waits until every live simulated node holds a lease and the agents together hold
/// `addresses` addresses; returns how long that took.
async fn wait_settled(
    sims: &[Sim],
    shared: &Shared,
    addresses: usize,
    limit: Duration,
) -> Result<Duration> {
    let start = Instant::now();
    loop {
        let leased = sims
            .iter()
            .filter(|s| s.alive.load(Ordering::SeqCst))
            .all(|s| s.gate.valid());
        let held = shared.board.lock().map(|b| b.len()).unwrap_or(0);
        if leased && held == addresses {
            return Ok(start.elapsed());
        }
        if start.elapsed() > limit {
            let leased = sims.iter().filter(|s| s.gate.valid()).count();
            bail!(
                "not settled after {limit:?}: {leased}/{} nodes leased, {held}/{addresses} addresses held",
                sims.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn pid_of(cluster: &Cluster, i: usize) -> Result<u32> {
    cluster.procs[i]
        .child
        .as_ref()
        .map(|c| c.id())
        .context("a member is not running")
}

async fn allocate(http: &reqwest::Client, url: &str, i: usize) -> Result<()> {
    let key = ServiceKey::new(NAMESPACE, &format!("svc-{i}"))?;
    let body = serde_json::to_vec(&AllocationRequest::new(key, vec![Port::tcp(80)]))?;
    allocate_ours(http, url, body).await
}

/// The cost of one change: leader CPU over the window beyond the steady rate, what was pushed.
struct ChangeCost {
    leader: ProcStat,
}

impl ChangeCost {
    fn begin(shared: &Shared, leader_pid: u32) -> Result<ChangeCost> {
        shared.start_counting();
        Ok(ChangeCost {
            leader: ProcStat::read(leader_pid)?,
        })
    }

    fn end(
        self,
        shared: &Shared,
        leader_pid: u32,
        steady_cores: f64,
        extra: Value,
    ) -> Result<Value> {
        let after = ProcStat::read(leader_pid)?;
        let (messages, bytes, touched) = shared.stop_counting();
        let wall = after.at.duration_since(self.leader.at).as_secs_f64();
        let cpu = after.cpu_since(&self.leader);
        let mut v = json!({
            "leader_cpu_ms": round2(cpu * 1000.0),
            "leader_cpu_ms_net": round2((cpu - steady_cores * wall) * 1000.0),
            "window_s": round2(wall),
            "assignment_messages": messages,
            "assignment_bytes": bytes,
            "nodes_touched": touched,
        });
        if let (Some(o), Value::Object(e)) = (v.as_object_mut(), extra) {
            o.extend(e);
        }
        Ok(v)
    }
}

mod baseline;
mod ours;
