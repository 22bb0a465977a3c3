//! `alloc`: durable address allocations through a 3-member cluster, side by side with what an
//! allocator backed by etcd (the Kubernetes API's store) pays for the same work.
//!
//! - ours: three real `ironlb controller` processes (release build) on 127.0.0.1; concurrent
//!   clients POST `/v1/allocate` to the leader, one distinct Service per request.
//! - baseline: three real etcd 3.4 processes on 127.0.0.1; each allocation is one put-if-absent
//!   transaction through etcd's JSON gateway, clients starting at spread offsets in the pool.
//!
//! Both sides fsync every acknowledged write (etcd by default, ironlb always), run on the same
//! file system and are driven by the same HTTP client stack, so the difference is the servers.

use std::collections::HashSet;
use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, ensure, Context, Result};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ironlb::api::views::{AllocateResult, ServiceView};
use ironlb::ipam::{AllocationRequest, Port};
use ironlb::names::ServiceKey;
use ironlb_lab::cluster::{pool_yaml, put_config, Cluster};

use crate::common::round2;
use crate::etcd::{b64, post, Etcd};
use serde_json::{json, Value};

/// The pool both sides allocate from: RFC 2544's benchmarking block, 131 072 IPv4 addresses.
/// Nothing is announced or sent to any of them: both allocators only do arithmetic on them.
const POOL_CIDR: &str = "198.18.0.0/15";
const POOL_BASE: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 0);
const POOL_SIZE: u32 = 1 << 17;

/// Namespace of the benchmark's Services (keys are `bench/svc-N`).
const NAMESPACE: &str = "bench";

/// How often one allocation may fail transiently (a connection reset, a 503 during an
/// election) before the run is abandoned: the figures would mean nothing after that.
const MAX_ATTEMPTS: usize = 5;

/// Where the baseline's clients send their transactions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum EtcdTarget {
    /// All to the leader (no follower-to-leader forwarding).
    Leader,
    /// Client k to member k mod 3 (spreads the gateway's JSON work over the members).
    All,
}

/// The scenario's options.
#[derive(Clone, Debug)]
pub struct Options {
    /// Allocations to acknowledge on each side.
    pub allocations: usize,
    /// Concurrent clients on each side.
    pub clients: usize,
    /// Where the baseline sends its transactions.
    pub etcd_target: EtcdTarget,
    /// Skip the human-readable summary (stdout always holds only the JSON line).
    pub json: bool,
}

/// Runs the scenario and prints its JSON line.
pub fn run(opts: &Options) -> Result<()> {
    ensure!(opts.allocations > 0, "--allocations must be at least 1");
    ensure!(opts.clients > 0, "--clients must be at least 1");
    ensure!(
        opts.allocations < POOL_SIZE as usize / 2,
        "--allocations must stay below half the pool ({POOL_CIDR}) so spread offsets never wrap"
    );
    let bin = crate::common::build_release_binary()?;
    let rt = crate::common::runtime()?;
    let ours = rt.block_on(ours(&bin, opts))?;
    let etcd_bin = crate::common::which("etcd")
        .context("etcd (Debian package etcd-server) is not installed")?;
    let base = rt.block_on(baseline(&etcd_bin, opts))?;
    let ratio = ours.ops_per_s() / base.ops_per_s();
    if !opts.json {
        eprintln!(
            "ours:     {:>8.0} allocations/s  p50 {:>6.2} ms  p99 {:>6.2} ms",
            ours.ops_per_s(),
            ours.percentile_ms(0.50),
            ours.percentile_ms(0.99)
        );
        eprintln!(
            "etcd 3.4: {:>8.0} allocations/s  p50 {:>6.2} ms  p99 {:>6.2} ms  ({} conflicts)",
            base.ops_per_s(),
            base.percentile_ms(0.50),
            base.percentile_ms(0.99),
            base.conflicts
        );
        eprintln!(
            "ratio {ratio:.2} (goal >= 2); our p99 {} etcd's",
            if ours.percentile_ms(0.99) < base.percentile_ms(0.99) {
                "is below"
            } else {
                "is NOT below"
            }
        );
    }
    let target = match opts.etcd_target {
        EtcdTarget::Leader => "all sent to the etcd leader",
        EtcdTarget::All => "clients spread round-robin over the 3 members",
    };
    let out = json!({
        "scenario": "alloc",
        "allocations": opts.allocations,
        "clients": opts.clients,
        "ours": ours.figures(),
        "baseline": {
            "name": "etcd",
            "scheme": format!(
                "one put-if-absent txn per allocation through the JSON gateway (POST /v3/kv/txn: \
                 if create_revision(ip/<addr>) == 0 then put ip/<addr> and svc/<name>, else try the \
                 next address), {} clients starting at spread offsets in the pool, {target}",
                opts.clients
            ),
            "figures": base.figures(),
            "ops_per_s": base.figures()["ops_per_s"],
            "p50_ms": base.figures()["p50_ms"],
            "p99_ms": base.figures()["p99_ms"],
        },
        "ratio_cluster_cpu_per_allocation": round2(
            ours.figures()["cluster_cpu_ms_per_allocation"].as_f64().unwrap_or(0.0)
                / base.figures()["cluster_cpu_ms_per_allocation"].as_f64().unwrap_or(f64::NAN)
        ),
        "ratio_ops": round2(ratio),
    });
    println!("{out}");
    Ok(())
}

/// What one side's workload measured.
pub(crate) struct Workload {
    /// Latency of every acknowledged allocation, sorted.
    pub(crate) latencies: Vec<Duration>,
    /// From the first request to the last answer.
    pub(crate) wall: Duration,
    /// Transactions that lost their address to another client (baseline only).
    conflicts: usize,
    /// CPU seconds the servers spent during the run: the leader's and all members' together.
    pub(crate) cpu: Option<ServerCpu>,
}

/// CPU the servers (not the clients) spent while the workload ran.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct ServerCpu {
    /// The leader's CPU seconds.
    pub(crate) leader_s: f64,
    /// All members' CPU seconds together.
    pub(crate) total_s: f64,
    /// This benchmark process's own CPU seconds (the clients), to show they are not the limit.
    pub(crate) clients_s: f64,
}

impl ServerCpu {
    /// Samples the members (leader first) and this process.
    fn sample(leader: u32, members: &[u32]) -> Result<Vec<crate::common::ProcStat>> {
        let mut v = vec![crate::common::ProcStat::read(leader)?];
        for &m in members {
            v.push(crate::common::ProcStat::read(m)?);
        }
        v.push(crate::common::ProcStat::this()?);
        Ok(v)
    }

    /// The CPU spent between two samples of [`ServerCpu::sample`].
    fn between(before: &[crate::common::ProcStat], after: &[crate::common::ProcStat]) -> ServerCpu {
        let d: Vec<f64> = before
            .iter()
            .zip(after)
            .map(|(b, a)| a.cpu_since(b))
            .collect();
        let n = d.len();
        ServerCpu {
            leader_s: d[0],
            total_s: d[1..n - 1].iter().sum(),
            clients_s: d[n - 1],
        }
    }
}

impl Workload {
    fn ops_per_s(&self) -> f64 {
        self.latencies.len() as f64 / self.wall.as_secs_f64().max(1e-9)
    }

    /// The `q` quantile (nearest rank), in milliseconds.
    fn percentile_ms(&self, q: f64) -> f64 {
        if self.latencies.is_empty() {
            return 0.0;
        }
        let rank = (q * self.latencies.len() as f64).ceil() as usize;
        let i = rank.clamp(1, self.latencies.len()) - 1;
        self.latencies[i].as_secs_f64() * 1e3
    }

    fn figures(&self) -> Value {
        let n = self.latencies.len().max(1) as f64;
        let per = |s: f64| (s / n * 1e6).round() / 1e3;
        let cpu = self.cpu.unwrap_or_default();
        json!({
            "ops_per_s": self.ops_per_s().round(),
            "p50_ms": round2(self.percentile_ms(0.50)),
            "p99_ms": round2(self.percentile_ms(0.99)),
            "leader_cpu_ms_per_allocation": per(cpu.leader_s),
            "cluster_cpu_ms_per_allocation": per(cpu.total_s),
            "client_cpu_ms_per_allocation": per(cpu.clients_s),
            "leader_cpu_cores": round2(cpu.leader_s / self.wall.as_secs_f64().max(1e-9)),
        })
    }
}

/// Prints a progress line on stderr (stdout is kept for the JSON line).
macro_rules! progress {
    ($($arg:tt)*) => { eprintln!("[alloc] {}", format_args!($($arg)*)) };
}

/// An HTTP client for `clients` concurrent workers: one kept-alive connection each.
pub(crate) fn http_client(clients: usize) -> Result<reqwest::Client> {
    reqwest::Client::builder()
        .pool_max_idle_per_host(clients)
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(30))
        .tcp_nodelay(true)
        .build()
        .context("building the HTTP client")
}

/// Runs `clients` workers that share `total` allocations; `one(worker, i)` performs allocation
/// `i` and returns how many conflicts it met. Returns the sorted latencies and the wall time.
pub(crate) async fn drive<F, Fut>(total: usize, clients: usize, one: F) -> Result<Workload>
where
    F: Fn(usize, usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<usize>> + Send,
{
    let next = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let one = Arc::new(one);
    let start = Instant::now();
    let reporter = {
        let done = done.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(5)).await;
                let d = done.load(Ordering::Relaxed);
                progress!(
                    "  {d}/{total} acknowledged after {:.1} s",
                    start.elapsed().as_secs_f64()
                );
            }
        })
    };
    let mut tasks = Vec::with_capacity(clients);
    for worker in 0..clients {
        let (next, done, one) = (next.clone(), done.clone(), one.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(total / clients + 1);
            let mut conflicts = 0;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    return Ok::<_, anyhow::Error>((latencies, conflicts));
                }
                let t = Instant::now();
                conflicts += one(worker, i).await?;
                latencies.push(t.elapsed());
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    let mut latencies = Vec::with_capacity(total);
    let mut conflicts = 0;
    let mut first_error = None;
    for t in tasks {
        match t.await {
            Ok(Ok((l, c))) => {
                latencies.extend(l);
                conflicts += c;
            }
            Ok(Err(e)) => {
                first_error.get_or_insert(e);
            }
            Err(e) => {
                first_error.get_or_insert(anyhow!("a client task failed: {e}"));
            }
        }
    }
    let wall = start.elapsed();
    reporter.abort();
    if let Some(e) = first_error {
        return Err(e);
    }
    latencies.sort_unstable();
    Ok(Workload {
        latencies,
        wall,
        conflicts,
        cpu: None,
    })
}

// ---------------------------------------------------------------------------------------------
// ours

async fn ours(bin: &Path, opts: &Options) -> Result<Workload> {
    progress!(
        "ours: starting 3 ironlb controller members ({})",
        bin.display()
    );
    let cluster = Cluster::start(bin, 3, &[]).await;
    let client = cluster.client();
    put_config(&client, &pool_yaml("bench", POOL_CIDR)).await;
    let leader = &cluster.procs[cluster.leader().await];
    progress!(
        "ours: leader is member {} at {}; {} allocations from {} clients",
        leader.id,
        leader.admin,
        opts.allocations,
        opts.clients
    );
    let http = http_client(opts.clients)?;
    let url = format!("http://{}/v1/allocate", leader.admin);
    let pid = |p: &ironlb_lab::cluster::Proc| {
        p.child
            .as_ref()
            .map(|c| c.id())
            .context("a member is not running")
    };
    let leader_pid = pid(leader)?;
    let member_pids = cluster.procs.iter().map(pid).collect::<Result<Vec<_>>>()?;
    let cpu_before = ServerCpu::sample(leader_pid, &member_pids)?;
    let work = {
        let (http, url) = (http.clone(), url.clone());
        drive(opts.allocations, opts.clients, move |_, i| {
            let (http, url) = (http.clone(), url.clone());
            async move {
                let key = ServiceKey::new(NAMESPACE, &format!("svc-{i}"))?;
                let body = serde_json::to_vec(&AllocationRequest::new(key, vec![Port::tcp(80)]))?;
                allocate_ours(&http, &url, body).await.map(|()| 0)
            }
        })
        .await
    };
    let mut work = match work {
        Ok(w) => w,
        Err(e) => bail!("ours: {e:#}\n{}", cluster.logs()),
    };
    work.cpu = Some(ServerCpu::between(
        &cpu_before,
        &ServerCpu::sample(leader_pid, &member_pids)?,
    ));
    progress!(
        "ours: {} allocations in {:.2} s; verifying",
        work.latencies.len(),
        work.wall.as_secs_f64()
    );
    verify_ours(&http, &leader.admin, opts.allocations).await?;
    progress!("ours: verified; stopping the cluster");
    drop(cluster);
    Ok(work)
}

/// One allocation; retried (same Service, so the retry cannot allocate twice) on transient
/// failures.
pub(crate) async fn allocate_ours(http: &reqwest::Client, url: &str, body: Vec<u8>) -> Result<()> {
    let mut last = String::new();
    for attempt in 0..MAX_ATTEMPTS {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let resp = http
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.clone())
            .send()
            .await;
        let resp = match resp {
            Ok(r) => r,
            Err(e) => {
                last = e.to_string();
                continue;
            }
        };
        let status = resp.status();
        let bytes = match resp.bytes().await {
            Ok(b) => b,
            Err(e) => {
                last = e.to_string();
                continue;
            }
        };
        if status.is_success() {
            let r: AllocateResult =
                serde_json::from_slice(&bytes).context("decoding an allocation answer")?;
            ensure!(
                !r.addresses.is_empty(),
                "{} got no address: {:?}",
                r.service,
                r.error
            );
            return Ok(());
        }
        last = format!("{status}: {}", String::from_utf8_lossy(&bytes));
        if status != reqwest::StatusCode::SERVICE_UNAVAILABLE {
            break;
        }
    }
    bail!("allocation failed: {last}")
}

/// Exactly `n` benchmark Services hold an address, and no address is held twice.
async fn verify_ours(http: &reqwest::Client, admin: &str, n: usize) -> Result<()> {
    let list: Vec<ServiceView> = http
        .get(format!("http://{admin}/v1/services"))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await
        .context("GET /v1/services")?;
    let ours: Vec<&ServiceView> = list
        .iter()
        .filter(|s| s.service.namespace().as_str() == NAMESPACE)
        .collect();
    ensure!(
        ours.len() == n,
        "ours: {} allocations held, expected {n}",
        ours.len()
    );
    let mut seen = HashSet::new();
    for s in &list {
        ensure!(
            !s.addresses.is_empty(),
            "ours: {} holds no address",
            s.service
        );
        for a in &s.addresses {
            ensure!(seen.insert(*a), "ours: {a} is held twice");
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// baseline: etcd 3.4

/// The `n`th address of the pool.
fn pool_addr(n: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(POOL_BASE) + n % POOL_SIZE)
}

async fn baseline(etcd_bin: &Path, opts: &Options) -> Result<Workload> {
    progress!("baseline: starting 3 etcd members ({})", etcd_bin.display());
    let mut etcd = Etcd::start(etcd_bin, 3)?;
    let http = http_client(opts.clients)?;
    let leader = etcd.wait_leader(&http).await?;
    let targets: Vec<String> = match opts.etcd_target {
        EtcdTarget::Leader => vec![etcd.clients[leader].clone()],
        EtcdTarget::All => etcd.clients.clone(),
    };
    progress!(
        "baseline: leader is m{leader} at {}; {} allocations from {} clients to {:?}",
        etcd.clients[leader],
        opts.allocations,
        opts.clients,
        targets
    );
    // Each client's next candidate address, starting at spread offsets so clients do not all
    // race for the same first free address (which would make nearly every txn a conflict).
    let cursors: Arc<Vec<AtomicUsize>> = Arc::new(
        (0..opts.clients)
            .map(|k| AtomicUsize::new(k * POOL_SIZE as usize / opts.clients))
            .collect(),
    );
    let clients = opts.clients;
    let pids: Vec<u32> = etcd.children.iter().map(|c| c.id()).collect();
    let cpu_before = ServerCpu::sample(pids[leader], &pids)?;
    let work = {
        let (http, targets) = (http.clone(), Arc::new(targets));
        drive(opts.allocations, clients, move |worker, i| {
            let (http, targets, cursors) = (http.clone(), targets.clone(), cursors.clone());
            async move {
                let url = format!("{}/v3/kv/txn", targets[worker % targets.len()]);
                allocate_etcd(
                    &http,
                    &url,
                    &cursors[worker],
                    &format!("{NAMESPACE}/svc-{i}"),
                )
                .await
            }
        })
        .await
    };
    let mut work = match work {
        Ok(w) => w,
        Err(e) => bail!("baseline: {e:#}\n{}", etcd.logs()),
    };
    work.cpu = Some(ServerCpu::between(
        &cpu_before,
        &ServerCpu::sample(pids[leader], &pids)?,
    ));
    progress!(
        "baseline: {} allocations in {:.2} s ({} conflicts); verifying",
        work.latencies.len(),
        work.wall.as_secs_f64(),
        work.conflicts
    );
    verify_etcd(&http, &etcd.clients[leader], opts.allocations).await?;
    progress!("baseline: verified; stopping etcd");
    drop(etcd);
    Ok(work)
}

/// Claims the client's next free address for `service` with put-if-absent transactions;
/// returns how many candidates were already taken.
async fn allocate_etcd(
    http: &reqwest::Client,
    url: &str,
    cursor: &AtomicUsize,
    service: &str,
) -> Result<usize> {
    let mut conflicts = 0;
    let mut failures = 0;
    let svc_key = b64(&format!("svc/{service}"));
    loop {
        // Only this client's task uses its cursor, so a plain load and store suffice.
        let n = cursor.load(Ordering::Relaxed);
        let addr = pool_addr(n as u32).to_string();
        let ip_key = b64(&format!("ip/{addr}"));
        let txn = json!({
            "compare": [{"key": ip_key, "target": "CREATE", "result": "EQUAL", "create_revision": "0"}],
            "success": [
                {"request_put": {"key": ip_key, "value": b64(service)}},
                {"request_put": {"key": svc_key, "value": b64(&addr)}},
            ],
        });
        let answer = match post(http, url, "", &txn).await {
            Ok(a) => a,
            Err(e) => {
                // The txn may or may not have taken effect; the retry sees the key if it did,
                // and moves on. Give up only when the server keeps failing.
                failures += 1;
                if failures >= MAX_ATTEMPTS {
                    return Err(e.context(format!("txn for {service} kept failing")));
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        cursor.store(n + 1, Ordering::Relaxed);
        // proto3 JSON leaves out a false `succeeded`.
        if answer["succeeded"].as_bool() == Some(true) {
            return Ok(conflicts);
        }
        conflicts += 1;
        ensure!(
            conflicts < POOL_SIZE as usize,
            "the pool is exhausted ({service})"
        );
    }
}

/// etcd holds exactly `n` `svc/` keys and `n` `ip/` keys, each address claimed for the
/// Service that points at it.
async fn verify_etcd(http: &reqwest::Client, base: &str, n: usize) -> Result<()> {
    let count = |prefix: &str| {
        // The range end of a prefix: its last byte plus one ('/' + 1 == '0').
        let end = format!("{}0", prefix.trim_end_matches('/'));
        json!({"key": b64(prefix), "range_end": b64(&end), "count_only": true})
    };
    for prefix in ["svc/", "ip/"] {
        let r = post(http, base, "/v3/kv/range", &count(prefix)).await?;
        let got: usize = r["count"].as_str().unwrap_or("0").parse()?;
        ensure!(got == n, "etcd holds {got} {prefix} keys, expected {n}");
    }
    let all = |prefix: &str| {
        let end = format!("{}0", prefix.trim_end_matches('/'));
        json!({"key": b64(prefix), "range_end": b64(&end)})
    };
    let decode = |v: &Value| -> Result<String> {
        let s = v.as_str().unwrap_or("");
        Ok(String::from_utf8(B64.decode(s)?)?)
    };
    let mut addr_of_svc = std::collections::HashMap::new();
    let svcs = post(http, base, "/v3/kv/range", &all("svc/")).await?;
    for kv in svcs["kvs"].as_array().into_iter().flatten() {
        let svc = decode(&kv["key"])?;
        let addr = decode(&kv["value"])?;
        addr_of_svc.insert(svc.trim_start_matches("svc/").to_string(), addr);
    }
    let ips = post(http, base, "/v3/kv/range", &all("ip/")).await?;
    let mut addrs = HashSet::new();
    for kv in ips["kvs"].as_array().into_iter().flatten() {
        let addr = decode(&kv["key"])?.trim_start_matches("ip/").to_string();
        let svc = decode(&kv["value"])?;
        ensure!(
            addr_of_svc.get(&svc) == Some(&addr),
            "etcd: ip/{addr} is claimed by {svc}, which points at {:?}",
            addr_of_svc.get(&svc)
        );
        ensure!(addrs.insert(addr.clone()), "etcd: {addr} listed twice");
    }
    ensure!(
        addrs.len() == n && addr_of_svc.len() == n,
        "etcd: {} distinct ip/ keys and {} svc/ keys, expected {n}",
        addrs.len(),
        addr_of_svc.len()
    );
    Ok(())
}
