//! `state`: what a large state costs a cluster, side by side with etcd holding the same data.
//!
//! For each size N (a fresh cluster each time):
//! - ours: three real `ironlb controller` processes (release build) on 127.0.0.1, filled with
//!   N Services through `/v1/allocate` (IPv6 addresses from one /64, two ports and two labels
//!   each, so a record is the size of a real one). Then: a snapshot on demand (`POST
//!   /v1/snapshot`) with its size, build time and the peak memory it cost; resident memory per
//!   allocation on the leader and a follower; a fourth member's catch-up (which needs a
//!   snapshot sent and installed, the log behind it being compacted); and restart-to-ready of a
//!   follower and of the leader after SIGKILL (ready: `/readyz` answers 200 and the member has
//!   applied everything the leader had committed before the kill).
//! - baseline: three real etcd processes holding the same N allocations as two keys each
//!   (`svc/<ns>/<name>` with the request as JSON, `ip/<addr>` with the Service), written in
//!   transactions of 128 puts; `/v3/maintenance/snapshot` size and time, resident memory per
//!   allocation, a fourth member's catch-up (`member add`, then start with
//!   `--initial-cluster-state=existing`) and restart-to-ready of a follower and of the leader
//!   (SIGKILL, restart, until `/health` is true and the member's applied index reaches the
//!   leader's).

use std::collections::BTreeMap;
use std::net::Ipv6Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use ironlb::api::views::Status;
use ironlb::controller::L2View;
use ironlb::ipam::{AddrRange, AllocationRequest, Allocator, Families, PoolSpec, Port};
use ironlb::labels::LabelSet;
use ironlb::names::{PoolName, ServiceKey};
use ironlb::raft::ControllerState;
use ironlb_lab::cluster::{free_port, pool_yaml, put_config, Cluster};
use serde_json::{json, Value};

use crate::alloc::{allocate_ours, drive, http_client};
use crate::common::round3;
use crate::common::ProcStat;
use crate::etcd::{b64, post, Etcd};

/// The pool ours allocates from: an IPv6 /64 of the documentation prefix, large enough for any
/// size. Nothing is announced: the allocator only does arithmetic on it.
const POOL_CIDR: &str = "2001:db8:1::/64";

/// Namespace of the benchmark's Services.
const NAMESPACE: &str = "bench";

/// How long any one phase may take before the run is abandoned.
const PHASE_TIMEOUT: Duration = Duration::from_secs(600);

/// The scenario's options.
#[derive(Clone, Debug)]
pub struct Options {
    /// Sizes to measure, each on a fresh cluster.
    pub allocations: Vec<usize>,
    /// Concurrent clients filling the state.
    pub clients: usize,
    /// Skip the human-readable summary.
    pub json: bool,
    /// Measure ours only (for machines without etcd).
    pub no_baseline: bool,
    /// Only the in-process heap figures, no cluster.
    pub heap_only: bool,
}

/// Prints a progress line on stderr (stdout is kept for the JSON line).
macro_rules! progress {
    ($($arg:tt)*) => { eprintln!("[state] {}", format_args!($($arg)*)) };
}

/// Runs the scenario and prints its JSON line.
pub fn run(opts: &Options) -> Result<()> {
    ensure!(
        !opts.allocations.is_empty() && opts.allocations.iter().all(|n| *n > 0),
        "--allocations needs sizes of at least 1"
    );
    ensure!(opts.clients > 0, "--clients must be at least 1");
    let bin = crate::common::build_release_binary()?;
    let etcd_bin = crate::common::etcd_binary(opts.no_baseline)?;
    let rt = crate::common::runtime()?;
    let mut runs = Vec::new();
    for &n in &opts.allocations {
        let mut ours = rt.block_on(ours(&bin, n, opts.clients))?;
        let heap = heap_per_allocation(n.min(200_000))?;
        ours["heap_bytes_per_allocation"] = json!(heap.allocator.round());
        ours["request_bytes_per_allocation"] = json!(heap.request.round());
        ours["view_bytes_per_allocation"] = json!(heap.view.round());
        let baseline = match &etcd_bin {
            Some(etcd) => rt.block_on(baseline(etcd, n, opts.clients))?,
            None => json!(null),
        };
        let ratio = |key: &str| -> Value {
            match (ours[key].as_f64(), baseline[key].as_f64()) {
                (Some(o), Some(b)) if b > 0.0 => json!(round3(o / b)),
                _ => json!(null),
            }
        };
        let ratios = json!({
            "restart_to_ready_s": ratio("restart_to_ready_s"),
            "leader_restart_to_ready_s": ratio("leader_restart_to_ready_s"),
            "snapshot_bytes": ratio("snapshot_bytes"),
            "snapshot_build_s": ratio("snapshot_build_s"),
            "catch_up_s": ratio("catch_up_s"),
            "bytes_per_allocation": ratio("bytes_per_allocation"),
        });
        if !opts.json {
            progress!("N={n}\n  ours     {ours}\n  baseline {baseline}\n  ratios   {ratios}");
        }
        runs.push(json!({"allocations": n, "ours": ours, "baseline": baseline, "ratios": ratios}));
    }
    let largest = runs
        .iter()
        .max_by_key(|r| r["allocations"].as_u64().unwrap_or(0))
        .cloned()
        .unwrap_or(Value::Null);
    let goals = json!({
        "restart_to_ready_under_2s_at_100k": runs
            .iter()
            .find(|r| r["allocations"].as_u64() == Some(100_000))
            .map(|r| r["ours"]["restart_to_ready_s"].as_f64().unwrap_or(f64::MAX) < 2.0
                && r["ours"]["leader_restart_to_ready_s"].as_f64().unwrap_or(f64::MAX) < 2.0),
        "under_1kib_per_allocation": largest["ours"]["bytes_per_allocation"]
            .as_f64()
            .map(|b| b < 1024.0),
    });
    let out = json!({
        "scenario": "state",
        "clients": opts.clients,
        "allocations": largest["allocations"],
        "ours": largest["ours"],
        "baseline": largest["baseline"],
        "ratios": largest["ratios"],
        "goals": goals,
        "runs": runs,
    });
    println!("{out}");
    Ok(())
}

/// A realistic request: IPv6, two ports, two Service labels, one namespace label, a selector.
fn request(i: usize) -> Result<AllocationRequest> {
    let key = ServiceKey::new(NAMESPACE, &format!("svc-{i}"))?;
    let mut r = AllocationRequest::new(key, vec![Port::tcp(80), Port::tcp(443)]);
    r.families = Families::ipv6();
    let app = format!("app-{i}");
    r.service_labels =
        LabelSet::from_iter([("app.kubernetes.io/name", app.as_str()), ("tier", "web")]);
    // Interned, as a request read by the API or from the log has it.
    r.namespace_labels = LabelSet::interned(&BTreeMap::from([(
        "kubernetes.io/metadata.name".to_string(),
        NAMESPACE.to_string(),
    )]));
    r.selector = LabelSet::from_iter([("app", app)]);
    Ok(r)
}

/// Exact heap per allocation, measured in this process by the counting allocator (no sled, no
/// allocator slack): the allocator's, the requests' alone (the allocator keeps each whole), and
/// the members' view of the same state ([`L2View`], one target per address).
#[derive(Clone, Copy, Debug)]
struct Heap {
    allocator: f64,
    request: f64,
    view: f64,
}

fn heap_per_allocation(n: usize) -> Result<Heap> {
    let pool = PoolSpec::new(PoolName::new("bench")?, vec![AddrRange::parse(POOL_CIDR)?]);
    let before = crate::live_bytes();
    let requests = (0..n).map(request).collect::<Result<Vec<_>>>()?;
    let requests_bytes = crate::live_bytes().saturating_sub(before)
        - requests.capacity() * std::mem::size_of::<AllocationRequest>();
    drop(requests);
    let mut state = ControllerState {
        allocator: Allocator::with_pools(vec![pool])?,
        ..ControllerState::default()
    };
    let base = crate::live_bytes();
    for i in 0..n {
        state
            .allocator
            .allocate(request(i)?)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    let state_bytes = crate::live_bytes().saturating_sub(base);
    let base = crate::live_bytes();
    let view = L2View::read(&state);
    let view_bytes = crate::live_bytes().saturating_sub(base);
    std::hint::black_box((&state, &view));
    let per = |b: usize| b as f64 / n as f64;
    Ok(Heap {
        allocator: per(state_bytes),
        request: per(requests_bytes) + std::mem::size_of::<AllocationRequest>() as f64,
        view: per(view_bytes),
    })
}

/// `--heap-only`: the in-process figures alone, one JSON line, no cluster.
pub fn heap_only(opts: &Options) -> Result<()> {
    let runs = opts
        .allocations
        .iter()
        .map(|&n| {
            let h = heap_per_allocation(n)?;
            Ok(json!({
                "allocations": n,
                "heap_bytes_per_allocation": h.allocator.round(),
                "request_bytes_per_allocation": h.request.round(),
                "view_bytes_per_allocation": h.view.round(),
            }))
        })
        .collect::<Result<Vec<_>>>()?;
    println!("{}", json!({"scenario": "state-heap", "runs": runs}));
    Ok(())
}

fn pid_of(cluster: &Cluster, i: usize) -> Result<u32> {
    cluster.procs[i]
        .child
        .as_ref()
        .map(|c| c.id())
        .context("member is not running")
}

async fn status(http: &reqwest::Client, admin: &str) -> Result<Status> {
    Ok(http
        .get(format!("http://{admin}/v1/status"))
        .timeout(Duration::from_secs(2))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?)
}

async fn ready(http: &reqwest::Client, admin: &str) -> bool {
    http.get(format!("http://{admin}/readyz"))
        .timeout(Duration::from_secs(1))
        .send()
        .await
        .map(|r| r.status().is_success())
        .unwrap_or(false)
}

/// The newest snapshot file under a member's data directory, if any.
fn newest_snapshot(data_dir: &Path) -> Option<(PathBuf, u64, std::time::SystemTime)> {
    let mut best: Option<(PathBuf, u64, std::time::SystemTime)> = None;
    let mut dirs = vec![data_dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let path = e.path();
            let Ok(meta) = e.metadata() else { continue };
            if meta.is_dir() {
                dirs.push(path);
                continue;
            }
            let name = e.file_name().to_string_lossy().to_string();
            if !(name.starts_with("snap-") && name.ends_with(".bin")) {
                continue;
            }
            let mtime = meta.modified().unwrap_or(std::time::UNIX_EPOCH);
            if best.as_ref().is_none_or(|(_, _, t)| mtime > *t) {
                best = Some((path, meta.len(), mtime));
            }
        }
    }
    best
}

/// Polls `check` every 20 ms until it holds; returns the time it took.
async fn wait_for<F, Fut>(what: &str, mut check: F) -> Result<Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if check().await {
            return Ok(start.elapsed());
        }
        if start.elapsed() > PHASE_TIMEOUT {
            bail!("{what}: not done within {PHASE_TIMEOUT:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// ours

async fn ours(bin: &Path, n: usize, clients: usize) -> Result<Value> {
    progress!("ours N={n}: starting 3 ironlb controller members");
    let mut cluster = Cluster::start(bin, 3, &[]).await;
    let result = ours_on(&mut cluster, n, clients).await;
    match result {
        Ok(v) => Ok(v),
        Err(e) => bail!("ours: {e:#}\n{}", cluster.logs()),
    }
}

async fn ours_on(cluster: &mut Cluster, n: usize, clients: usize) -> Result<Value> {
    let client = cluster.client();
    put_config(&client, &pool_yaml("bench", POOL_CIDR)).await;
    let http = http_client(clients)?;
    let leader = cluster.leader().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let empty = (0..3)
        .map(|i| ProcStat::read(pid_of(cluster, i)?))
        .collect::<Result<Vec<_>>>()?;

    let url = format!("http://{}/v1/allocate", cluster.procs[leader].admin);
    progress!("ours N={n}: filling through {url} with {clients} clients");
    let fill = {
        let (http, url) = (http.clone(), Arc::new(url));
        drive(n, clients, move |_, i| {
            let (http, url) = (http.clone(), url.clone());
            async move {
                let body = serde_json::to_vec(&request(i)?)?;
                // Filling is not what is measured: ride out an election (a loaded 2-core
                // machine sees some) rather than abandon the run. Retrying is safe, as the same
                // Service is never given a second address.
                let mut tries = 0;
                loop {
                    match allocate_ours(&http, &url, body.clone()).await {
                        Ok(()) => return Ok(0),
                        Err(e) if tries < 40 => {
                            tries += 1;
                            if tries == 1 {
                                progress!("ours: retrying svc-{i}: {e:#}");
                            }
                            tokio::time::sleep(Duration::from_millis(250)).await;
                        }
                        Err(e) => return Err(e),
                    }
                }
            }
        })
        .await?
    };
    let fill_s = fill.wall.as_secs_f64();
    progress!("ours N={n}: filled in {fill_s:.1} s; letting the members settle");
    // Leadership may have moved during the fill on a loaded machine.
    let leader = cluster.leader().await;
    let follower = (0..3).find(|i| *i != leader).context("a follower")?;
    let (empty_leader, empty_follower) = (empty[leader], empty[follower]);
    let leader_admin = cluster.procs[leader].admin.clone();
    let follower_admin = cluster.procs[follower].admin.clone();
    let commit = status(&http, &leader_admin).await?.commit_index;
    wait_for("the follower applying the fill", || {
        let (http, a) = (http.clone(), follower_admin.clone());
        async move {
            status(&http, &a)
                .await
                .is_ok_and(|s| s.applied_index >= commit && s.allocations == n)
        }
    })
    .await?;
    // Views and caches rebuild after the last write; measure memory once they have.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let full_leader = ProcStat::read(pid_of(cluster, leader)?)?;
    let full_follower = ProcStat::read(pid_of(cluster, follower)?)?;
    let per = |full: &ProcStat, empty: &ProcStat| {
        (full.rss_bytes.saturating_sub(empty.rss_bytes)) as f64 / n as f64
    };
    let auto_snapshots = status(&http, &leader_admin).await?.snapshot_index;

    // A snapshot on demand, on the leader: from the request to a new file in place.
    let before = newest_snapshot(&cluster.procs[leader].dir).map(|(p, _, _)| p);
    let start = Instant::now();
    let resp = http
        .post(format!("http://{leader_admin}/v1/snapshot"))
        .send()
        .await?;
    ensure!(
        resp.status().is_success(),
        "POST /v1/snapshot: {}",
        resp.status()
    );
    let dir = cluster.procs[leader].dir.clone();
    wait_for("the snapshot file", || {
        let (dir, before) = (dir.clone(), before.clone());
        async move { newest_snapshot(&dir).is_some_and(|(p, _, _)| Some(p) != before) }
    })
    .await?;
    let build_s = start.elapsed().as_secs_f64();
    let (_, snapshot_bytes, _) = newest_snapshot(&dir).context("no snapshot file")?;
    let after_snapshot = ProcStat::read(pid_of(cluster, leader)?)?;
    progress!("ours N={n}: snapshot of {snapshot_bytes} bytes built in {build_s:.2} s");

    // A fourth member: everything it has comes from the leader's snapshot and the log after it.
    let commit = status(&http, &leader_admin).await?.commit_index;
    let added = cluster.add_proc();
    let join = cluster.procs[leader].admin.clone();
    let start = Instant::now();
    cluster.procs[added].start(&["--join".to_string(), join]);
    let new_admin = cluster.procs[added].admin.clone();
    wait_for("the new member catching up", || {
        let (http, a) = (http.clone(), new_admin.clone());
        async move {
            status(&http, &a)
                .await
                .is_ok_and(|s| s.applied_index >= commit && s.allocations == n)
        }
    })
    .await?;
    let catch_up_s = start.elapsed().as_secs_f64();
    let new_member = ProcStat::read(pid_of(cluster, added)?)?;
    progress!("ours N={n}: a new member caught up in {catch_up_s:.2} s");
    cluster.wait_members(4).await;

    let restart_follower = restart_ours(cluster, &http, follower, n).await?;
    progress!("ours N={n}: a follower was ready {restart_follower:.2} s after its restart");
    let leader = cluster.leader().await;
    let restart_leader = restart_ours(cluster, &http, leader, n).await?;
    progress!("ours N={n}: the old leader was ready {restart_leader:.2} s after its restart");

    Ok(json!({
        "name": "ironlb",
        "fill_s": round3(fill_s),
        "fill_allocations_per_s": (n as f64 / fill_s).round(),
        "restart_to_ready_s": round3(restart_follower),
        "leader_restart_to_ready_s": round3(restart_leader),
        "snapshot_bytes": snapshot_bytes,
        "snapshot_bytes_per_allocation": round3(snapshot_bytes as f64 / n as f64),
        "snapshot_build_s": round3(build_s),
        "snapshot_index_before_trigger": auto_snapshots,
        "catch_up_s": round3(catch_up_s),
        "bytes_per_allocation": per(&full_leader, &empty_leader).round(),
        "follower_bytes_per_allocation": per(&full_follower, &empty_follower).round(),
        "new_member_rss_bytes": new_member.rss_bytes,
        // A member that received the state by snapshot, against an empty member: the state
        // without what filling it through the log left behind in malloc's heaps.
        "new_member_bytes_per_allocation": per(&new_member, &empty_follower).round(),
        "leader_rss_bytes": full_leader.rss_bytes,
        "follower_rss_bytes": full_follower.rss_bytes,
        "leader_peak_rss_bytes_after_snapshot": after_snapshot.hwm_bytes,
        "leader_peak_rss_over_state": round3(
            after_snapshot.hwm_bytes.saturating_sub(empty_leader.rss_bytes) as f64
                / full_leader.rss_bytes.saturating_sub(empty_leader.rss_bytes).max(1) as f64
        ),
    }))
}

/// SIGKILLs member `i`, restarts it and returns the seconds until it is ready: `/readyz` 200
/// and everything committed before the kill applied.
async fn restart_ours(
    cluster: &mut Cluster,
    http: &reqwest::Client,
    i: usize,
    n: usize,
) -> Result<f64> {
    let admin = cluster.procs[i].admin.clone();
    let commit = status(http, &admin).await?.commit_index;
    cluster.procs[i].kill();
    let start = Instant::now();
    cluster.procs[i].start(&[]);
    wait_for("a restarted member", || {
        let (http, a) = (http.clone(), admin.clone());
        async move {
            ready(&http, &a).await
                && status(&http, &a)
                    .await
                    .is_ok_and(|s| s.applied_index >= commit && s.allocations == n)
        }
    })
    .await
    .map(|d| d.as_secs_f64())
    .map(|d| d.max(start.elapsed().as_secs_f64()))
}

// ---------------------------------------------------------------------------------------------
// baseline: etcd

/// The `i`th address of ours' pool, for etcd's `ip/` keys.
fn addr(i: usize) -> Ipv6Addr {
    let base: Ipv6Addr = "2001:db8:1::".parse().unwrap_or(Ipv6Addr::UNSPECIFIED);
    Ipv6Addr::from(u128::from(base) + i as u128 + 1)
}

/// Puts per transaction (etcd's default `--max-txn-ops`).
const TXN_OPS: usize = 128;

async fn member_list(http: &reqwest::Client, base: &str) -> Result<Vec<Value>> {
    let r = post(http, base, "/v3/cluster/member/list", &json!({})).await?;
    Ok(r["members"].as_array().cloned().unwrap_or_default())
}

async fn etcd_status(http: &reqwest::Client, base: &str) -> Result<Value> {
    post(http, base, "/v3/maintenance/status", &json!({})).await
}

fn num(v: &Value) -> u64 {
    v.as_u64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        .unwrap_or(0)
}

/// Starts etcd member `name` with these URLs in `dir`.
fn spawn_etcd(
    bin: &Path,
    dir: &Path,
    name: &str,
    client: &str,
    peer: &str,
    initial: &str,
    state: &str,
) -> Result<std::process::Child> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(format!("{name}.log")))?;
    Command::new(bin)
        .arg(format!("--name={name}"))
        .arg(format!("--data-dir={}", dir.join(name).display()))
        .arg(format!("--listen-client-urls={client}"))
        .arg(format!("--advertise-client-urls={client}"))
        .arg(format!("--listen-peer-urls={peer}"))
        .arg(format!("--initial-advertise-peer-urls={peer}"))
        .arg(format!("--initial-cluster={initial}"))
        .arg("--initial-cluster-token=ironlb-bench")
        .arg(format!("--initial-cluster-state={state}"))
        .args(["--logger=zap", "--log-outputs=stderr", "--log-level=warn"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))
}

async fn baseline(bin: &Path, n: usize, clients: usize) -> Result<Value> {
    progress!("baseline N={n}: starting 3 etcd members");
    let mut etcd = Etcd::start(bin, 3)?;
    let result = baseline_on(bin, &mut etcd, n, clients).await;
    match result {
        Ok(v) => Ok(v),
        Err(e) => bail!("baseline: {e:#}\n{}", etcd.logs()),
    }
}

async fn baseline_on(bin: &Path, etcd: &mut Etcd, n: usize, clients: usize) -> Result<Value> {
    let http = http_client(clients)?;
    let leader = etcd.wait_leader(&http).await?;
    let follower = (0..3).find(|i| *i != leader).context("a follower")?;
    let pid = |etcd: &Etcd, i: usize| etcd.children[i].id();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let empty_leader = ProcStat::read(pid(etcd, leader))?;
    let empty_follower = ProcStat::read(pid(etcd, follower))?;

    let per_txn = TXN_OPS / 2;
    let txns = n.div_ceil(per_txn);
    let url = Arc::new(format!("{}/v3/kv/txn", etcd.clients[leader]));
    progress!("baseline N={n}: filling in {txns} transactions of {TXN_OPS} puts");
    let fill = {
        let (http, url) = (http.clone(), url.clone());
        drive(txns, clients, move |_, t| {
            let (http, url) = (http.clone(), url.clone());
            async move {
                let mut ops = Vec::with_capacity(TXN_OPS);
                for i in t * per_txn..((t + 1) * per_txn).min(n) {
                    let r = request(i)?;
                    let a = addr(i).to_string();
                    let svc = format!("{NAMESPACE}/svc-{i}");
                    let value = json!({"request": r, "addresses": [a]}).to_string();
                    ops.push(json!({"request_put": {"key": b64(&format!("svc/{svc}")), "value": b64(&value)}}));
                    ops.push(json!({"request_put": {"key": b64(&format!("ip/{a}")), "value": b64(&svc)}}));
                }
                let txn = json!({"compare": [], "success": ops});
                let mut failures = 0;
                loop {
                    match post(&http, &url, "", &txn).await {
                        Ok(_) => return Ok(0),
                        Err(e) => {
                            failures += 1;
                            if failures >= 5 {
                                return Err(e.context(format!("txn {t}")));
                            }
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    }
                }
            }
        })
        .await?
    };
    let fill_s = fill.wall.as_secs_f64();
    progress!("baseline N={n}: filled in {fill_s:.1} s");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let full_leader = ProcStat::read(pid(etcd, leader))?;
    let full_follower = ProcStat::read(pid(etcd, follower))?;
    let per = |full: &ProcStat, empty: &ProcStat| {
        (full.rss_bytes.saturating_sub(empty.rss_bytes)) as f64 / n as f64
    };
    let leader_status = etcd_status(&http, &etcd.clients[leader]).await?;
    let db_size = num(&leader_status["dbSize"]);

    // A snapshot streamed out of the leader, as `etcdctl snapshot save` does.
    let start = Instant::now();
    let mut resp = http
        .post(format!("{}/v3/maintenance/snapshot", etcd.clients[leader]))
        .timeout(PHASE_TIMEOUT)
        .json(&json!({}))
        .send()
        .await?;
    ensure!(
        resp.status().is_success(),
        "/v3/maintenance/snapshot: {}",
        resp.status()
    );
    let (mut pending, mut snapshot_bytes) = (Vec::new(), 0u64);
    use base64::Engine as _;
    let mut take_line = |line: &[u8]| -> Result<()> {
        if line.iter().all(|b| b.is_ascii_whitespace()) {
            return Ok(());
        }
        let v: Value = serde_json::from_slice(line).context("a snapshot chunk")?;
        if let Some(blob) = v["result"]["blob"].as_str() {
            snapshot_bytes += base64::engine::general_purpose::STANDARD
                .decode(blob)?
                .len() as u64;
        }
        Ok(())
    };
    while let Some(chunk) = resp.chunk().await? {
        pending.extend_from_slice(&chunk);
        while let Some(nl) = pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = pending.drain(..=nl).collect();
            take_line(&line)?;
        }
    }
    take_line(&pending)?;
    let snapshot_s = start.elapsed().as_secs_f64();
    progress!("baseline N={n}: snapshot of {snapshot_bytes} bytes in {snapshot_s:.2} s");

    // A fourth member.
    let members = member_list(&http, &etcd.clients[leader]).await?;
    let peer = format!("http://127.0.0.1:{}", free_port());
    let client = format!("http://127.0.0.1:{}", free_port());
    // etcd refuses a new member until its leader has been connected to every peer for 5 s
    // (`--strict-reconfig-check`); retry until then, outside the measured time.
    let add = json!({"peerURLs": [peer]});
    let mut tries = 0;
    let start = loop {
        let start = Instant::now();
        match post(&http, &etcd.clients[leader], "/v3/cluster/member/add", &add).await {
            Ok(_) => break start,
            Err(e) if tries < 100 && e.to_string().contains("unhealthy cluster") => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => return Err(e),
        }
    };
    let mut initial: Vec<String> = members
        .iter()
        .map(|m| {
            format!(
                "{}={}",
                m["name"].as_str().unwrap_or(""),
                m["peerURLs"][0].as_str().unwrap_or("")
            )
        })
        .collect();
    initial.push(format!("m3={peer}"));
    let initial = initial.join(",");
    let target = num(&etcd_status(&http, &etcd.clients[leader]).await?["raftIndex"]);
    let child = spawn_etcd(
        bin,
        etcd.dir.path(),
        "m3",
        &client,
        &peer,
        &initial,
        "existing",
    )?;
    etcd.children.push(child);
    etcd.clients.push(client.clone());
    wait_for("etcd's new member catching up", || {
        let (http, c) = (http.clone(), client.clone());
        async move {
            etcd_status(&http, &c)
                .await
                .is_ok_and(|s| num(&s["raftAppliedIndex"]).max(num(&s["raftIndex"])) >= target)
        }
    })
    .await?;
    let catch_up_s = start.elapsed().as_secs_f64();
    progress!("baseline N={n}: a new member caught up in {catch_up_s:.2} s");

    let restart_follower = restart_etcd(bin, etcd, &http, follower, &initial).await?;
    progress!("baseline N={n}: a follower was ready {restart_follower:.2} s after its restart");
    let restart_leader = restart_etcd(bin, etcd, &http, leader, &initial).await?;
    progress!("baseline N={n}: the old leader was ready {restart_leader:.2} s after its restart");

    Ok(json!({
        "name": "etcd",
        "scheme": format!("2 keys per allocation (svc/<ns>/<name> = the request as JSON, ip/<addr> = the Service), {TXN_OPS} puts per txn through the JSON gateway; snapshot = /v3/maintenance/snapshot from the leader"),
        "fill_s": round3(fill_s),
        "fill_allocations_per_s": (n as f64 / fill_s).round(),
        "restart_to_ready_s": round3(restart_follower),
        "leader_restart_to_ready_s": round3(restart_leader),
        "snapshot_bytes": snapshot_bytes,
        "snapshot_bytes_per_allocation": round3(snapshot_bytes as f64 / n as f64),
        "snapshot_build_s": round3(snapshot_s),
        "db_size_bytes": db_size,
        "catch_up_s": round3(catch_up_s),
        "bytes_per_allocation": per(&full_leader, &empty_leader).round(),
        "follower_bytes_per_allocation": per(&full_follower, &empty_follower).round(),
        "leader_rss_bytes": full_leader.rss_bytes,
        "follower_rss_bytes": full_follower.rss_bytes,
    }))
}

/// SIGKILLs etcd member `i`, restarts it and returns the seconds until `/health` is true and
/// it has applied what the cluster had committed before the kill.
async fn restart_etcd(
    bin: &Path,
    etcd: &mut Etcd,
    http: &reqwest::Client,
    i: usize,
    initial: &str,
) -> Result<f64> {
    let client = etcd.clients[i].clone();
    let me = etcd_status(http, &client).await?;
    let target = num(&me["raftIndex"]);
    let members = member_list(http, &client).await?;
    let name = format!("m{i}");
    let peer = members
        .iter()
        .find(|m| m["name"].as_str() == Some(name.as_str()))
        .and_then(|m| m["peerURLs"][0].as_str())
        .context("the member's peer URL")?
        .to_string();
    let _ = etcd.children[i].kill();
    let _ = etcd.children[i].wait();
    let start = Instant::now();
    etcd.children[i] = spawn_etcd(
        bin,
        etcd.dir.path(),
        &name,
        &client,
        &peer,
        initial,
        "existing",
    )?;
    wait_for("a restarted etcd member", || {
        let (http, c) = (http.clone(), client.clone());
        async move {
            let health = match http
                .get(format!("{c}/health"))
                .timeout(Duration::from_secs(1))
                .send()
                .await
            {
                Ok(r) => r.json::<Value>().await.ok(),
                Err(_) => None,
            };
            health.is_some_and(|h| h["health"] == "true")
                && etcd_status(&http, &c)
                    .await
                    .is_ok_and(|s| num(&s["raftAppliedIndex"]).max(num(&s["raftIndex"])) >= target)
        }
    })
    .await?;
    Ok(start.elapsed().as_secs_f64())
}
