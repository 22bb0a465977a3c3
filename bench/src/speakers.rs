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

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
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
    let etcd_bin = if opts.no_baseline {
        None
    } else {
        Some(
            crate::common::which("etcd")
                .context("etcd (Debian package etcd-server) is not installed; use --no-baseline")?,
        )
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    let mut runs = Vec::new();
    for &n in &opts.nodes {
        let ours = rt.block_on(ours(&bin, n, opts))?;
        // Each side's figures as soon as they are known, so a later failure loses none.
        progress!("{n} nodes, ours: {ours}");
        let baseline = match &etcd_bin {
            Some(e) => rt.block_on(baseline(e, n, opts))?,
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

async fn ours(bin: &Path, n: usize, opts: &Options) -> Result<Value> {
    progress!(
        "ours, {n} nodes: starting 3 controller members ({})",
        bin.display()
    );
    let cluster = Cluster::start(bin, 3, &[]).await;
    let config = format!(
        "{}---\napiVersion: ironlb.io/v1beta1\nkind: L2Advertisement\nmetadata:\n  name: bench\nspec:\n  ipAddressPools: [bench]\n",
        pool_yaml("bench", POOL_CIDR)
    );
    put_config(&cluster.client(), &config).await;
    let li = cluster.leader().await;
    let leader_pid = pid_of(&cluster, li)?;
    let followers: Vec<u32> = (0..cluster.procs.len())
        .filter(|i| *i != li)
        .map(|i| pid_of(&cluster, i))
        .collect::<Result<_>>()?;
    let admin = cluster.procs[li].admin.clone();
    let url = format!("http://{admin}/v1/allocate");
    let http = http_client(CLIENTS)?;
    progress!("ours: leader is member {}", cluster.procs[li].id);
    // The leader with no speaker at all: Raft heartbeats and leadership confirmations.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle_window = Duration::from_secs(opts.duration.clamp(1, 10));
    progress!("ours: idle leader for {idle_window:?}");
    let idle0 = ProcStat::read(leader_pid)?;
    tokio::time::sleep(idle_window).await;
    let idle1 = ProcStat::read(leader_pid)?;
    let idle_cores = idle1.cores_since(&idle0);

    let shared = Arc::new(Shared::default());
    let (rtt_tx, mut rtt_rx) = mpsc::unbounded_channel::<Duration>();
    let collector = {
        let shared = shared.clone();
        tokio::spawn(async move {
            while let Some(rtt) = rtt_rx.recv().await {
                shared.renewals.fetch_add(1, Ordering::Relaxed);
                if shared.recording.load(Ordering::Relaxed) {
                    if let Ok(mut v) = shared.rtts.lock() {
                        v.push(rtt);
                    }
                }
            }
        })
    };
    let mut arbiters = Vec::new();
    for _ in 0..ARBITERS {
        arbiters.push(ironlb::actors::on_new_arbiter(actix_rt::Arbiter::current).await);
    }
    let env = Env {
        controllers: cluster.procs.iter().map(|p| p.raft.clone()).collect(),
        arbiters,
        shared: shared.clone(),
        rtt_tx,
    };
    progress!("ours: starting {n} simulated speakers on {ARBITERS} arbiters");
    let started = Instant::now();
    let mut sims = Vec::with_capacity(n);
    for i in 0..n {
        sims.push(env.start_speaker(i).await?);
        // Batches, so the members' accept queues are not flooded all at once.
        if i % 50 == 49 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let settle_limit = Duration::from_secs(60 + n as u64 / 10);
    if let Err(e) = wait_settled(&sims, &shared, 0, settle_limit).await {
        bail!("ours: {e:#}\n{}", cluster.logs());
    }
    let startup = started.elapsed();
    progress!(
        "ours: all {n} nodes leased after {:.2} s; allocating {} Services",
        startup.as_secs_f64(),
        opts.services
    );
    // The Services are allocated only now that every node holds a lease, so their owners
    // spread over all the nodes as in a running cluster. Allocated before (or while the
    // speakers connect), the first node to be leased would own nearly every address and the
    // failover would move all of them. In batches, each held everywhere before the next: every
    // node is told of every Service, and thousands of allocations a second to a thousand
    // speakers on this one machine starve the members and the simulated nodes alike.
    let allocated = Instant::now();
    let mut done = 0;
    while done < opts.services {
        let batch = ALLOC_BATCH.min(opts.services - done);
        let (http, url) = (http.clone(), url.clone());
        drive(batch, CLIENTS, move |_, i| {
            let (http, url) = (http.clone(), url.clone());
            async move { allocate(&http, &url, done + i).await.map(|()| 0) }
        })
        .await
        .map_err(|e| anyhow::anyhow!("allocating: {e:#}\n{}", cluster.logs()))?;
        done += batch;
        if let Err(e) = wait_settled(&sims, &shared, done, settle_limit).await {
            bail!("ours: {e:#}\n{}", cluster.logs());
        }
    }
    let assigned = allocated.elapsed();
    progress!(
        "ours: {} addresses held {:.2} s after the allocations began",
        opts.services,
        assigned.as_secs_f64()
    );
    tokio::time::sleep(Duration::from_secs(2)).await;

    // Steady state.
    progress!("ours: steady state for {} s", opts.duration);
    let window = Duration::from_secs(opts.duration.max(1));
    if let Ok(mut v) = shared.rtts.lock() {
        v.clear();
    }
    let renewals0 = shared.renewals.load(Ordering::SeqCst);
    shared.recording.store(true, Ordering::SeqCst);
    let (l0, f0, b0) = (
        ProcStat::read(leader_pid)?,
        followers
            .iter()
            .map(|p| ProcStat::read(*p))
            .collect::<Result<Vec<_>>>()?,
        ProcStat::this()?,
    );
    tokio::time::sleep(window).await;
    let (l1, f1, b1) = (
        ProcStat::read(leader_pid)?,
        followers
            .iter()
            .map(|p| ProcStat::read(*p))
            .collect::<Result<Vec<_>>>()?,
        ProcStat::this()?,
    );
    shared.recording.store(false, Ordering::SeqCst);
    let renewals = shared.renewals.load(Ordering::SeqCst) - renewals0;
    let mut rtts = shared.rtts.lock().map(|v| v.clone()).unwrap_or_default();
    rtts.sort_unstable();
    let wall = l1.at.duration_since(l0.at).as_secs_f64();
    let leader_cores = l1.cores_since(&l0);
    let per_hb_us = l1.cpu_since(&l0) / (renewals.max(1) as f64) * 1e6;
    let per_hb_net_us = (l1.cpu_since(&l0) - idle_cores * wall) / (renewals.max(1) as f64) * 1e6;
    let follower_cores: Vec<f64> = f0
        .iter()
        .zip(&f1)
        .map(|(a, b)| round3(b.cores_since(a)))
        .collect();

    // Cost of one change: one Service allocated.
    tokio::time::sleep(Duration::from_secs(1)).await;
    progress!("ours: one Service allocated");
    let change = ChangeCost::begin(&shared, leader_pid)?;
    let t = Instant::now();
    allocate(&http, &url, opts.services).await?;
    let acked = t.elapsed();
    let mut announced = None;
    while t.elapsed() < CHANGE_WINDOW {
        if announced.is_none() && shared.board.lock().map(|b| b.len()).unwrap_or(0) > opts.services
        {
            announced = Some(t.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let change_alloc = change.end(
        &shared,
        leader_pid,
        leader_cores,
        json!({
            "allocate_ms": round2(acked.as_secs_f64() * 1000.0),
            "announced_ms": announced.map(|d| round2(d.as_secs_f64() * 1000.0)),
        }),
    )?;
    let total = opts.services + 1;

    // Cost of one change: one node's health flips for one Service it answers for, and back.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (flip_node, (flip_addr, flip_services)) = (0..n)
        .find_map(|i| shared.held_by(i).into_iter().next().map(|h| (i, h)))
        .context("no node holds an address")?;
    let flip_service = flip_services
        .first()
        .cloned()
        .context("an address without a Service")?;
    progress!("ours: node-{flip_node} unready for {flip_service}, then ready again");
    let mut change_health = serde_json::Map::new();
    for (label, unready) in [
        ("unready", BTreeSet::from([flip_service.clone()])),
        ("ready_again", BTreeSet::new()),
    ] {
        let change = ChangeCost::begin(&shared, leader_pid)?;
        let t = Instant::now();
        sims[flip_node].session.do_send(Readiness {
            source: ReadinessSource::HealthChecks,
            unready,
        });
        let mut moved = None;
        while t.elapsed() < CHANGE_WINDOW {
            let owner = shared
                .board
                .lock()
                .ok()
                .and_then(|b| b.get(&flip_addr).map(|h| h.node));
            if moved.is_none() && label == "unready" && owner.is_some_and(|o| o != flip_node) {
                moved = Some(t.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        change_health.insert(
            label.into(),
            change.end(
                &shared,
                leader_pid,
                leader_cores,
                json!({"address_moved_ms": moved.map(|d| round2(d.as_secs_f64() * 1000.0))}),
            )?,
        );
    }

    // Failovers: the node holding the most addresses dies.
    let mut failovers = Vec::new();
    let mut failovers_p50 = Vec::new();
    let mut after_verdicts = Vec::new();
    for trial in 0..opts.trials {
        wait_settled(&sims, &shared, total, Duration::from_secs(30)).await?;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let mut counts: BTreeMap<usize, usize> = BTreeMap::new();
        if let Ok(b) = shared.board.lock() {
            for h in b.values() {
                *counts.entry(h.node).or_default() += 1;
            }
        }
        let victim = counts
            .iter()
            .max_by_key(|(_, c)| **c)
            .map(|(n, _)| *n)
            .context("nobody holds anything")?;
        let addrs: Vec<IpAddr> = shared.held_by(victim).into_iter().map(|(a, _)| a).collect();
        tokio::time::sleep(random_phase()).await;
        let remaining = sims[victim].kill();
        let killed = Instant::now();
        // The leader's verdict, counted from the kill: dead_after from the last granted
        // heartbeat, which was sent `LEASE - remaining` before the kill.
        let verdict = DEAD_AFTER.saturating_sub(LEASE.saturating_sub(remaining));
        let deadline = killed + Duration::from_secs(30);
        let arrivals = loop {
            let arrived: Vec<Duration> = {
                let b = shared.board.lock().expect("board lock");
                addrs
                    .iter()
                    .filter_map(|a| b.get(a))
                    .filter(|h| h.node != victim && h.at > killed)
                    .map(|h| h.at.duration_since(killed))
                    .collect()
            };
            if arrived.len() == addrs.len() {
                break arrived;
            }
            ensure!(
                Instant::now() < deadline,
                "failover: {}/{} addresses of node-{victim} moved after 30 s",
                arrived.len(),
                addrs.len()
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        };
        let mut arrivals = arrivals;
        arrivals.sort_unstable();
        let max = arrivals.last().copied().unwrap_or_default().as_secs_f64();
        let p50 = quantile_ms(&arrivals, 0.5) / 1000.0;
        progress!(
            "ours: failover {}: node-{victim}'s {} addresses moved in {max:.3} s",
            trial + 1,
            addrs.len()
        );
        failovers.push(max);
        failovers_p50.push(p50);
        after_verdicts.push(max - verdict.as_secs_f64());
        // The node comes back, so the next trial starts from the same cluster.
        sims[victim] = env.start_speaker(victim).await?;
    }
    let leader_rss = ProcStat::read(leader_pid)?;
    let follower_rss: Vec<f64> = followers
        .iter()
        .map(|p| ProcStat::read(*p).map(|s| mb(s.rss_bytes)))
        .collect::<Result<_>>()?;
    for s in &sims {
        let _ = s.kill();
    }
    collector.abort();
    drop(cluster);

    let failover = spread(&failovers);
    let failover_s = failover["median"].as_f64();
    Ok(json!({
        "name": "ironlb",
        "tls": false,
        "scheme": format!(
            "3 controller members (release build, default LeaseTiming: 200 ms heartbeat, 1 s lease, 0.2 s margin); {n} in-process speakers, each the real ControllerSession and link over TCP to all 3 members, on {ARBITERS} actix arbiters; a recording applier instead of the node agent"
        ),
        "startup_s": round3(startup.as_secs_f64()),
        "assigned_s": round3(assigned.as_secs_f64()),
        "leader_cpu_cores": round3(leader_cores),
        "leader_idle_cpu_cores": round3(idle_cores),
        "leader_cpu_us_per_heartbeat": round2(per_hb_us),
        "leader_cpu_us_per_heartbeat_net": round2(per_hb_net_us),
        "follower_cpu_cores": follower_cores,
        "bench_cpu_cores": round3(b1.cores_since(&b0)),
        "renewals_per_s": (renewals as f64 / wall).round(),
        "expected_renewals_per_s": (n as f64 / HEARTBEAT.as_secs_f64()).round(),
        "renewal_samples": rtts.len(),
        "renewal_p50_ms": round3(quantile_ms(&rtts, 0.5)),
        "renewal_p99_ms": round3(quantile_ms(&rtts, 0.99)),
        "renewal_max_ms": round3(quantile_ms(&rtts, 1.0)),
        "leader_rss_mb": mb(leader_rss.rss_bytes),
        // Before any speaker and any Service: the per-node figure includes the Services' state.
        "leader_rss_idle_mb": mb(idle1.rss_bytes),
        "leader_hwm_mb": mb(leader_rss.hwm_bytes),
        "leader_bytes_per_node": ((l1.rss_bytes as f64 - idle1.rss_bytes as f64) / n as f64).round(),
        "follower_rss_mb": follower_rss,
        "failover_s": failover_s.map(round3),
        "failover": failover,
        "failover_address_p50_s": spread(&failovers_p50)["median"],
        // From the leader's verdict (dead_after after the victim's last granted heartbeat, as
        // the victim's lease shows it) to the last address arriving.
        "failover_after_verdict_s": spread(&after_verdicts)["median"].as_f64().map(round3),
        "change_alloc": change_alloc,
        "change_health": change_health,
    }))
}

// ---------------------------------------------------------------------------------------------
// baseline: etcd Leases

/// The range end of a key prefix (its last byte plus one).
fn prefix_end(prefix: &str) -> String {
    let mut bytes = prefix.as_bytes().to_vec();
    if let Some(last) = bytes.last_mut() {
        *last += 1;
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

fn unb64(v: &Value) -> String {
    B64.decode(v.as_str().unwrap_or(""))
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .unwrap_or_default()
}

fn revision(answer: &Value) -> i64 {
    answer["header"]["revision"]
        .as_str()
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

/// A coordination.k8s.io/v1 Lease as a node's kubelet renews it, about 300 bytes.
fn lease_value(node: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros())
        .unwrap_or(0);
    json!({
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": node, "namespace": "kube-node-lease", "uid": format!("{node:0>36}"),
                     "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": node}]},
        "spec": {"holderIdentity": node, "leaseDurationSeconds": 1, "renewTime": now.to_string()},
    })
    .to_string()
}

/// Calls `on_put(key, value)` for every put under `prefix` from now on, until the stream ends.
async fn watch_prefix(
    http: &reqwest::Client,
    base: &str,
    prefix: &str,
    mut on_put: impl FnMut(String, String),
) -> Result<()> {
    let body =
        json!({"create_request": {"key": b64(prefix), "range_end": b64(&prefix_end(prefix))}});
    let mut resp = http
        .post(format!("{base}/v3/watch"))
        .json(&body)
        .send()
        .await?
        .error_for_status()?;
    let mut buf: Vec<u8> = Vec::new();
    while let Some(chunk) = resp.chunk().await? {
        buf.extend_from_slice(&chunk);
        // The gateway streams one JSON object per message; a chunk may end inside one.
        let mut consumed = 0;
        let mut stream = serde_json::Deserializer::from_slice(&buf).into_iter::<Value>();
        loop {
            match stream.next() {
                Some(Ok(v)) => {
                    consumed = stream.byte_offset();
                    for ev in v["result"]["events"].as_array().into_iter().flatten() {
                        if ev["type"] == "DELETE" {
                            continue;
                        }
                        on_put(unb64(&ev["kv"]["key"]), unb64(&ev["kv"]["value"]));
                    }
                }
                Some(Err(e)) if e.is_eof() => break,
                Some(Err(e)) => return Err(e.into()),
                None => break,
            }
        }
        buf.drain(..consumed);
    }
    Ok(())
}

/// What the renewal tasks report.
#[derive(Default)]
struct BaseStats {
    recording: AtomicBool,
    rtts: Mutex<Vec<Duration>>,
    renewals: AtomicU64,
    failures: AtomicU64,
    late: AtomicU64,
}

/// Node `i` renewing its Lease every heartbeat with a compare-and-swap on its mod_revision.
async fn renew_forever(
    http: reqwest::Client,
    url: String,
    i: usize,
    n: usize,
    stats: Arc<BaseStats>,
) {
    let node = format!("node-{i}");
    let key = b64(&format!("/leases/{node}"));
    // Spread over the heartbeat, as real nodes are.
    tokio::time::sleep(HEARTBEAT * i as u32 / n as u32).await;
    let mut tick = tokio::time::interval(HEARTBEAT);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut last: i64 = -1;
    loop {
        tick.tick().await;
        if last < 0 {
            // Learn the current mod_revision (at start, or after losing track).
            match post(&http, &url, "/v3/kv/range", &json!({"key": key})).await {
                Ok(r) => {
                    last = r["kvs"][0]["mod_revision"]
                        .as_str()
                        .and_then(|s| s.parse().ok())
                        .unwrap_or(0);
                }
                Err(_) => {
                    stats.failures.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
            }
        }
        let txn = json!({
            "compare": [{"key": key, "target": "MOD", "result": "EQUAL", "mod_revision": last.to_string()}],
            "success": [{"request_put": {"key": key, "value": b64(&lease_value(&node))}}],
        });
        let t = Instant::now();
        match post(&http, &url, "/v3/kv/txn", &txn).await {
            Ok(a) if a["succeeded"].as_bool() == Some(true) => {
                let rtt = t.elapsed();
                last = revision(&a);
                stats.renewals.fetch_add(1, Ordering::Relaxed);
                if rtt > HEARTBEAT {
                    stats.late.fetch_add(1, Ordering::Relaxed);
                }
                if stats.recording.load(Ordering::Relaxed) {
                    if let Ok(mut v) = stats.rtts.lock() {
                        v.push(rtt);
                    }
                }
            }
            _ => {
                stats.failures.fetch_add(1, Ordering::Relaxed);
                last = -1;
            }
        }
    }
}

/// Address `k`'s initial owner.
fn initial_owner(k: usize, n: usize) -> usize {
    k % n
}

/// The controller: watches the Leases, declares a node dead `DEAD_AFTER` after its last
/// renewal, and CAS-writes new owners for its addresses (one txn per 100 addresses).
async fn lease_controller(
    http: reqwest::Client,
    watch_http: reqwest::Client,
    url: String,
    n: usize,
    addresses: usize,
    mut owner_rev: HashMap<usize, i64>,
    declared_dead: Arc<AtomicU64>,
) -> Result<()> {
    let last_seen = Arc::new(Mutex::new(vec![Instant::now(); n]));
    let watcher = {
        let (last_seen, url) = (last_seen.clone(), url.clone());
        tokio::spawn(async move {
            let _ = watch_prefix(&watch_http, &url, "/leases/", |key, _| {
                if let Some(i) = key
                    .strip_prefix("/leases/node-")
                    .and_then(|i| i.parse::<usize>().ok())
                {
                    if let Ok(mut s) = last_seen.lock() {
                        if let Some(t) = s.get_mut(i) {
                            *t = Instant::now();
                        }
                    }
                }
            })
            .await;
        })
    };
    let mut owner: Vec<usize> = (0..addresses).map(|k| initial_owner(k, n)).collect();
    let mut dead = vec![false; n];
    let mut sweep = tokio::time::interval(Duration::from_millis(5));
    loop {
        sweep.tick().await;
        let now = Instant::now();
        let newly_dead: Vec<usize> = {
            let seen = last_seen.lock().expect("last_seen lock");
            for (i, d) in dead.iter_mut().enumerate() {
                if *d && now.duration_since(seen[i]) < DEAD_AFTER {
                    // Renewing again.
                    *d = false;
                }
            }
            (0..n)
                .filter(|i| !dead[*i] && now.duration_since(seen[*i]) >= DEAD_AFTER)
                .collect()
        };
        for d in newly_dead {
            dead[d] = true;
            declared_dead.fetch_add(1, Ordering::Relaxed);
            let alive: Vec<usize> = (0..n).filter(|i| !dead[*i]).collect();
            if alive.is_empty() {
                continue;
            }
            let moved: Vec<usize> = (0..addresses).filter(|k| owner[*k] == d).collect();
            for (j, chunk) in moved.chunks(100).enumerate() {
                let mut compare = Vec::new();
                let mut success = Vec::new();
                for (m, k) in chunk.iter().enumerate() {
                    let to = alive[(j * 100 + m) % alive.len()];
                    owner[*k] = to;
                    let key = b64(&format!("/owners/addr-{k}"));
                    compare.push(json!({"key": key, "target": "MOD", "result": "EQUAL",
                                        "mod_revision": owner_rev.get(k).copied().unwrap_or(0).to_string()}));
                    success.push(
                        json!({"request_put": {"key": key, "value": b64(&format!("node-{to}"))}}),
                    );
                }
                let a = post(
                    &http,
                    &url,
                    "/v3/kv/txn",
                    &json!({"compare": compare, "success": success}),
                )
                .await?;
                ensure!(
                    a["succeeded"].as_bool() == Some(true),
                    "an owner CAS failed"
                );
                let rev = revision(&a);
                for k in chunk {
                    owner_rev.insert(*k, rev);
                }
            }
        }
        if watcher.is_finished() {
            bail!("the /leases/ watch ended");
        }
    }
}

async fn baseline(etcd_bin: &Path, n: usize, opts: &Options) -> Result<Value> {
    progress!(
        "baseline, {n} nodes: starting 3 etcd members ({})",
        etcd_bin.display()
    );
    let mut etcd = Etcd::start(etcd_bin, 3)?;
    let http = http_client(n + CLIENTS)?;
    // Watches stream for as long as the run lasts: no overall timeout.
    let watch_http = reqwest::Client::builder().tcp_nodelay(true).build()?;
    let li = etcd.wait_leader(&http).await?;
    let url = etcd.clients[li].clone();
    let leader_pid = etcd.children[li].id();
    let followers: Vec<u32> = (0..etcd.children.len())
        .filter(|i| *i != li)
        .map(|i| etcd.children[i].id())
        .collect();

    // The Leases and the owners, written once.
    progress!("baseline: writing {n} Leases and {} owners", opts.services);
    for chunk in (0..n).collect::<Vec<_>>().chunks(100) {
        let ops: Vec<Value> = chunk
            .iter()
            .map(|i| json!({"request_put": {"key": b64(&format!("/leases/node-{i}")), "value": b64(&lease_value(&format!("node-{i}")))}}))
            .collect();
        post(&http, &url, "/v3/kv/txn", &json!({"success": ops})).await?;
    }
    let mut owner_rev = HashMap::new();
    for chunk in (0..opts.services).collect::<Vec<_>>().chunks(100) {
        let ops: Vec<Value> = chunk
            .iter()
            .map(|k| json!({"request_put": {"key": b64(&format!("/owners/addr-{k}")), "value": b64(&format!("node-{}", initial_owner(*k, n)))}}))
            .collect();
        let a = post(&http, &url, "/v3/kv/txn", &json!({"success": ops})).await?;
        for k in chunk {
            owner_rev.insert(*k, revision(&a));
        }
    }
    // etcd with no node renewing: its own heartbeats and housekeeping.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle0 = ProcStat::read(leader_pid)?;
    tokio::time::sleep(Duration::from_secs(opts.duration.clamp(1, 10))).await;
    let idle_cores = ProcStat::read(leader_pid)?.cores_since(&idle0);

    // The speakers' view of the owners: address → (owner, when the event arrived).
    let arrivals: Arc<Mutex<HashMap<usize, (usize, Instant)>>> = Arc::default();
    let speakers_watch = {
        let (arrivals, watch_http, url) = (arrivals.clone(), watch_http.clone(), url.clone());
        tokio::spawn(async move {
            let _ = watch_prefix(&watch_http, &url, "/owners/", |key, value| {
                let k = key
                    .strip_prefix("/owners/addr-")
                    .and_then(|k| k.parse().ok());
                let o = value.strip_prefix("node-").and_then(|o| o.parse().ok());
                if let (Some(k), Some(o), Ok(mut a)) = (k, o, arrivals.lock()) {
                    a.insert(k, (o, Instant::now()));
                }
            })
            .await;
        })
    };
    let stats = Arc::new(BaseStats::default());
    progress!("baseline: {n} nodes renewing every {HEARTBEAT:?}");
    let mut tasks: Vec<JoinHandle<()>> = (0..n)
        .map(|i| {
            tokio::spawn(renew_forever(
                http.clone(),
                url.clone(),
                i,
                n,
                stats.clone(),
            ))
        })
        .collect();
    let declared_dead = Arc::new(AtomicU64::new(0));
    let controller = tokio::spawn(lease_controller(
        http.clone(),
        watch_http.clone(),
        url.clone(),
        n,
        opts.services,
        owner_rev,
        declared_dead.clone(),
    ));
    tokio::time::sleep(Duration::from_secs(3)).await;

    progress!("baseline: steady state for {} s", opts.duration);
    let window = Duration::from_secs(opts.duration.max(1));
    stats.recording.store(true, Ordering::SeqCst);
    let (r0, fail0, late0) = (
        stats.renewals.load(Ordering::SeqCst),
        stats.failures.load(Ordering::SeqCst),
        stats.late.load(Ordering::SeqCst),
    );
    let (l0, f0, b0) = (
        ProcStat::read(leader_pid)?,
        followers
            .iter()
            .map(|p| ProcStat::read(*p))
            .collect::<Result<Vec<_>>>()?,
        ProcStat::this()?,
    );
    tokio::time::sleep(window).await;
    let (l1, f1, b1) = (
        ProcStat::read(leader_pid)?,
        followers
            .iter()
            .map(|p| ProcStat::read(*p))
            .collect::<Result<Vec<_>>>()?,
        ProcStat::this()?,
    );
    stats.recording.store(false, Ordering::SeqCst);
    let wall = l1.at.duration_since(l0.at).as_secs_f64();
    let renewals = stats.renewals.load(Ordering::SeqCst) - r0;
    let failures = stats.failures.load(Ordering::SeqCst) - fail0;
    let late = stats.late.load(Ordering::SeqCst) - late0;
    let mut rtts = stats.rtts.lock().map(|v| v.clone()).unwrap_or_default();
    rtts.sort_unstable();
    let leader_cores = l1.cores_since(&l0);

    // Failovers.
    let mut failovers = Vec::new();
    for trial in 0..opts.trials {
        ensure!(!controller.is_finished(), "the lease controller stopped");
        let victim = {
            let a = arrivals.lock().expect("arrivals lock");
            let mut counts: BTreeMap<usize, usize> = BTreeMap::new();
            for k in 0..opts.services {
                let o = a.get(&k).map(|(o, _)| *o).unwrap_or(initial_owner(k, n));
                *counts.entry(o).or_default() += 1;
            }
            counts
                .iter()
                .max_by_key(|(_, c)| **c)
                .map(|(o, _)| *o)
                .unwrap_or(0)
        };
        let addrs: Vec<usize> = {
            let a = arrivals.lock().expect("arrivals lock");
            (0..opts.services)
                .filter(|k| a.get(k).map(|(o, _)| *o).unwrap_or(initial_owner(*k, n)) == victim)
                .collect()
        };
        tokio::time::sleep(random_phase()).await;
        tasks[victim].abort();
        let killed = Instant::now();
        let deadline = killed + Duration::from_secs(30);
        let last = loop {
            let done: Vec<Duration> = {
                let a = arrivals.lock().expect("arrivals lock");
                addrs
                    .iter()
                    .filter_map(|k| a.get(k))
                    .filter(|(o, at)| *o != victim && *at > killed)
                    .map(|(_, at)| at.duration_since(killed))
                    .collect()
            };
            if done.len() == addrs.len() {
                break done.into_iter().max().unwrap_or_default();
            }
            ensure!(
                Instant::now() < deadline,
                "baseline failover: {}/{} addresses of node-{victim} moved after 30 s",
                done.len(),
                addrs.len()
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        };
        progress!(
            "baseline: failover {}: node-{victim}'s {} addresses moved in {:.3} s",
            trial + 1,
            addrs.len(),
            last.as_secs_f64()
        );
        failovers.push(last.as_secs_f64());
        tasks[victim] = tokio::spawn(renew_forever(
            http.clone(),
            url.clone(),
            victim,
            n,
            stats.clone(),
        ));
        // Seen renewing again before the next trial.
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let leader_stat = ProcStat::read(leader_pid)?;
    let follower_rss: Vec<f64> = followers
        .iter()
        .map(|p| ProcStat::read(*p).map(|s| mb(s.rss_bytes)))
        .collect::<Result<_>>()?;
    for t in &tasks {
        t.abort();
    }
    controller.abort();
    speakers_watch.abort();
    drop(etcd);
    let failover = spread(&failovers);
    Ok(json!({
        "name": "etcd",
        "scheme": format!(
            "3 etcd 3.4 members; {n} nodes each renewing /leases/node-i (a ~300 B Lease) every 200 ms with one CAS txn (compare mod_revision) through the JSON gateway, all sent to the leader; a controller task watches /leases/, declares a node dead 1.2 s after its last renewal and CAS-writes /owners/<addr> (100 per txn); one watch on /owners/ stands for the speakers' watches. The gateway's JSON work counts against etcd, so this is slightly pessimistic for etcd"
        ),
        "leader_cpu_cores": round3(leader_cores),
        "leader_idle_cpu_cores": round3(idle_cores),
        "leader_cpu_us_per_renewal": round2(l1.cpu_since(&l0) / (renewals.max(1) as f64) * 1e6),
        "follower_cpu_cores": f0.iter().zip(&f1).map(|(a, b)| round3(b.cores_since(a))).collect::<Vec<_>>(),
        "bench_cpu_cores": round3(b1.cores_since(&b0)),
        "renewals_per_s": (renewals as f64 / wall).round(),
        "attempted_renewals_per_s": (n as f64 / HEARTBEAT.as_secs_f64()).round(),
        "failed_renewals": failures,
        // Every trial kills one node; more verdicts mean live nodes whose renewals came too late.
        "nodes_declared_dead": declared_dead.load(Ordering::SeqCst),
        "nodes_killed": opts.trials,
        "late_renewals": late,
        "renewal_samples": rtts.len(),
        "renewal_p50_ms": round3(quantile_ms(&rtts, 0.5)),
        "renewal_p99_ms": round3(quantile_ms(&rtts, 0.99)),
        "renewal_max_ms": round3(quantile_ms(&rtts, 1.0)),
        "leader_rss_mb": mb(leader_stat.rss_bytes),
        "leader_hwm_mb": mb(leader_stat.hwm_bytes),
        "follower_rss_mb": follower_rss,
        "failover_s": failover["median"].as_f64().map(round3),
        "failover": failover,
    }))
}
