//! One test: build the system, start the workload and the nemesis, heal, read the final state,
//! and store everything in a run directory that `check` can judge again later.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::Duration;

use anyhow::Result;
use serde::{Deserialize, Serialize};

use crate::checker::alloc::Finals;
use crate::db::{spawn_in, Db, DbOptions};
use crate::history::{monotonic_ns, Recorder};
use crate::nemesis::exec::Nemesis;
use crate::nemesis::plan::{schedule, Kind, Scheduled, Topology};
use crate::nemesis::Log;
use crate::workload::{alloc, l2, Workload};

/// The speakers' clocks a run uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Timing {
    /// ironlb's defaults: heartbeat 200 ms, lease 1 s, margin 200 ms.
    Default,
    /// The README's tuned timings: heartbeat 50 ms, lease 300 ms, margin 100 ms, with Raft's
    /// clocks derived by the controllers so a leader change fits in a lease (39 ms election
    /// timeout, 13 ms heartbeat).
    Tuned,
}

impl Timing {
    /// (heartbeat, lease, margin) in milliseconds.
    pub fn millis(self) -> (u64, u64, u64) {
        match self {
            Timing::Default => (200, 1000, 200),
            Timing::Tuned => (50, 300, 100),
        }
    }

    /// The controller arguments that set them.
    pub fn args(self) -> Vec<String> {
        let (h, l, m) = self.millis();
        match self {
            Timing::Default => Vec::new(),
            Timing::Tuned => vec![
                "--speaker-heartbeat-ms".into(),
                h.to_string(),
                "--speaker-lease-ms".into(),
                l.to_string(),
                "--speaker-lease-margin-ms".into(),
                m.to_string(),
            ],
        }
    }
}

/// What to run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TestOpts {
    /// The workload.
    pub workload: Workload,
    /// The faults to draw from.
    pub nemesis: Vec<Kind>,
    /// Seconds of workload.
    pub time_limit_s: u64,
    /// Client processes.
    pub concurrency: usize,
    /// Seeds the fault schedule and the operations.
    pub seed: u64,
    /// Controller members.
    pub members: usize,
    /// Speakers (the allocation workload runs none unless asked).
    pub speakers: usize,
    /// The `ironlb` binary.
    pub bin: PathBuf,
    /// Where run directories go.
    pub store: PathBuf,
    /// The speakers' clocks.
    pub timing: Timing,
    /// Extra controller arguments.
    #[serde(default)]
    pub controller_args: Vec<String>,
    /// `RUST_LOG` of the ironlb processes.
    pub log_filter: String,
    /// Short faults and recoveries (the short suite).
    #[serde(default)]
    pub short_faults: bool,
    /// Operations per second the clients aim at, all together.
    #[serde(default = "default_rate")]
    pub rate: u64,
}

fn default_rate() -> u64 {
    200
}

/// What `check` needs to judge a stored run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Meta {
    /// How the run was made.
    pub opts: TestOpts,
    /// The configuration the cluster was given.
    pub config: String,
    /// The addresses the prober asked for (Layer 2).
    pub addresses: Vec<IpAddr>,
    /// The fault schedule.
    pub schedule: Vec<Scheduled>,
    /// The run's start on the monotonic clock.
    pub start_ns: u64,
    /// How long a Service with an unknown outcome is left alone, nanoseconds.
    pub quarantine_ns: u64,
    /// The speakers' (heartbeat, lease, margin), milliseconds.
    pub lease_ms: (u64, u64, u64),
}

/// How long a client leaves a Service alone after an operation with an unknown outcome: longer
/// than any request can still be on its way (client 10 s, a member forwarding to the leader 10
/// s, a proposal waiting for its quorum 5 s).
const QUARANTINE: Duration = Duration::from_secs(30);

/// Probed Services of the Layer 2 workload.
const PROBED_SERVICES: usize = 3;

fn timestamp() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0) as i64;
    let mut tm: libc::tm = unsafe_zeroed_tm();
    // SAFETY: gmtime_r writes one tm into the struct we own.
    unsafe {
        libc::gmtime_r(&secs, &mut tm);
    }
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}",
        tm.tm_year + 1900,
        tm.tm_mon + 1,
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec
    )
}

fn unsafe_zeroed_tm() -> libc::tm {
    // SAFETY: libc::tm is plain data for which all-zero bytes are a valid value.
    unsafe { std::mem::zeroed() }
}

/// The run directory's name.
fn run_name(opts: &TestOpts) -> String {
    let nemesis = if opts.nemesis.is_empty() {
        "none".to_string()
    } else if opts.nemesis.len() > 4 {
        format!("{}-faults", opts.nemesis.len())
    } else {
        opts.nemesis
            .iter()
            .map(|k| k.name())
            .collect::<Vec<_>>()
            .join("+")
    };
    format!("{}-{nemesis}-{}", opts.workload.name(), timestamp())
}

fn stop_gently(mut child: Child) {
    crate::db::signal(child.id(), libc::SIGTERM);
    for _ in 0..50 {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Runs one test; returns its directory.
pub async fn run(opts: TestOpts) -> Result<PathBuf> {
    let dir = opts.store.join(run_name(&opts));
    std::fs::create_dir_all(&dir)?;
    let logs = dir.join("logs");
    std::fs::create_dir_all(&logs)?;
    eprintln!("run directory: {}", dir.display());
    let (h, l, m) = opts.timing.millis();
    let config = match opts.workload {
        Workload::Alloc => alloc::config(),
        Workload::L2 => l2::config(),
    };
    std::fs::write(dir.join("config.yaml"), &config)?;
    let plan = draw_schedule(&opts, l, m);
    std::fs::write(
        dir.join("schedule.json"),
        serde_json::to_string_pretty(&plan)?,
    )?;

    let mut db = start_system(&opts, &dir, &config).await?;
    let admins = db.active_admins();
    let start_ns = monotonic_ns();
    let rec = Recorder::new(start_ns, Some(&dir.join("history.jsonl")))?;
    let nlog = Log::new(start_ns, Some(&dir.join("nemesis.jsonl")))?;
    let mut addresses = Vec::new();
    let mut helpers = Helpers::default();
    if opts.workload == Workload::L2 {
        addresses = l2::setup(&db.api, &rec, 10_000, &admins, PROBED_SERVICES).await?;
        // Let the owners answer before the probing starts.
        tokio::time::sleep(Duration::from_secs(2)).await;
        helpers
            .0
            .extend(start_probing(&db, &dir, &addresses, start_ns)?);
    }
    let meta = Meta {
        opts: opts.clone(),
        config: config.clone(),
        addresses: addresses.clone(),
        schedule: plan.clone(),
        start_ns,
        quarantine_ns: QUARANTINE.as_nanos() as u64,
        lease_ms: (h, l, m),
    };
    std::fs::write(dir.join("meta.json"), serde_json::to_string_pretty(&meta)?)?;

    // The workload.
    let began = tokio::time::Instant::now();
    let deadline = began + Duration::from_secs(opts.time_limit_s);
    let clients = start_clients(&opts, &db, &rec, &admins, deadline);

    // The nemesis, on this task: it owns the system under test.
    let mut nemesis = Nemesis::new(addresses.clone(), logs.clone(), opts.seed)?;
    run_faults(&mut nemesis, &mut db, &plan, &nlog, began).await;
    for c in clients {
        let _ = c.await;
    }
    db.heal()?;

    // The final state, once the cluster has settled.
    let finals = settle_and_read(&db).await;
    std::fs::write(
        dir.join("final.json"),
        serde_json::to_string_pretty(&finals)?,
    )?;
    drop(helpers);
    db.stop_all();
    rec.flush()?;
    Ok(dir)
}

/// The run's fault schedule, drawn for its topology and the speakers' lease and margin.
fn draw_schedule(opts: &TestOpts, lease_ms: u64, margin_ms: u64) -> Vec<Scheduled> {
    let addresses_expected = if opts.workload == Workload::L2 {
        PROBED_SERVICES * 2
    } else {
        0
    };
    schedule(
        opts.seed,
        &opts.nemesis,
        opts.time_limit_s * 1000,
        Topology {
            members: opts.members,
            speakers: opts.speakers,
            addresses: addresses_expected,
            lease_ms,
            margin_ms,
            short: opts.short_faults,
        },
    )
}

/// Builds the system under test, starts the cluster with `config`, then the speakers.
async fn start_system(opts: &TestOpts, dir: &Path, config: &str) -> Result<Db> {
    let mut controller_args = opts.timing.args();
    controller_args.extend(opts.controller_args.iter().cloned());
    let mut db = Db::build(
        DbOptions {
            members: opts.members,
            speakers: opts.speakers,
            bin: opts.bin.clone(),
            controller_args,
            speaker_args: Vec::new(),
            log_filter: opts.log_filter.clone(),
        },
        dir,
    )?;
    db.start_cluster().await?;
    let admins = db.active_admins();
    put_config(&db, &admins, config).await?;
    for i in 0..opts.speakers {
        db.start_speaker(i)?;
    }
    Ok(db)
}

/// Starts the clients, spread over the members and the workload's pools, until `deadline`.
fn start_clients(
    opts: &TestOpts,
    db: &Db,
    rec: &Recorder,
    admins: &[String],
    deadline: tokio::time::Instant,
) -> Vec<tokio::task::JoinHandle<()>> {
    let pools = match opts.workload {
        Workload::Alloc => alloc::pools(),
        Workload::L2 => l2::churn_pools(),
    };
    let mut clients = Vec::new();
    for p in 0..opts.concurrency {
        let admin = admins[p % admins.len()].clone();
        let pool = pools[p % pools.len()].clone();
        let mut c = alloc::Client::new(p as u64, admin, pool, 8, opts.seed, QUARANTINE);
        // Each client waits about concurrency / rate between its operations.
        c.pause_ms = (opts.concurrency as u64 * 1000 / opts.rate.max(1)).max(2);
        clients.push(tokio::spawn(c.run(db.api.clone(), rec.clone(), deadline)));
    }
    clients
}

/// Starts and heals each fault of the schedule on time from `began`, logging both.
async fn run_faults(
    nemesis: &mut Nemesis,
    db: &mut Db,
    plan: &[Scheduled],
    nlog: &Log,
    began: tokio::time::Instant,
) {
    for s in plan {
        tokio::time::sleep_until(began + Duration::from_millis(s.at_ms)).await;
        let name = s.fault.kind().name();
        let (detail, active) = match nemesis.start(db, &s.fault).await {
            Ok(x) => x,
            Err(e) => {
                nlog.record("start", name, serde_json::json!({"error": e.to_string()}));
                nlog.record("end", name, serde_json::Value::Null);
                continue;
            }
        };
        nlog.record("start", name, detail);
        tokio::time::sleep_until(began + Duration::from_millis(s.at_ms + s.duration_ms)).await;
        match nemesis.stop(db, &s.fault, active).await {
            Ok(detail) => nlog.record("end", name, detail),
            Err(e) => nlog.record("end", name, serde_json::json!({"error": e.to_string()})),
        }
    }
}

/// Starts tshark and the prober in the client's namespace, asking for `addresses`; returns both.
pub fn start_probing(
    db: &Db,
    dir: &Path,
    addresses: &[IpAddr],
    start_ns: u64,
) -> Result<Vec<Child>> {
    let logs = dir.join("logs");
    let client = db.lan.client().clone();
    let exe = std::env::current_exe()?;
    let exe = if exe.file_name().is_some_and(|n| n == "ironlb-jepsen") {
        exe
    } else {
        // A test binary: the suite's own binary sits in the directory above.
        crate::sibling_binary("ironlb-jepsen")?
    };
    std::fs::create_dir_all(dir.join("captures"))?;
    let tshark = spawn_in(
        &client.netns,
        Path::new("tshark"),
        &[
            "-q".into(),
            "-i".into(),
            "eth0".into(),
            "-f".into(),
            "arp[6:2] == 2 or (icmp6 and ip6[40] == 136)".into(),
            "-w".into(),
            dir.join("captures/client.pcap").display().to_string(),
        ],
        &logs.join("tshark.log"),
        &[],
    )?;
    let mut args = vec![
        "probe".to_string(),
        "--source-v4".into(),
        client.addr.to_string(),
        "--source-v6".into(),
        client.addr6.to_string(),
        "--start-ns".into(),
        start_ns.to_string(),
        "--out".into(),
        dir.join("probes.jsonl").display().to_string(),
    ];
    args.extend(addresses.iter().map(IpAddr::to_string));
    let prober = spawn_in(&client.netns, &exe, &args, &logs.join("probe.log"), &[])?;
    Ok(vec![tshark, prober])
}

/// Stops what [`start_probing`] started, letting the prober write out what it has.
pub fn stop_probing(helpers: Vec<Child>) {
    for h in helpers {
        stop_gently(h);
    }
}

/// Helper processes (prober, capture) stopped when dropped, also when a run fails midway.
#[derive(Default)]
pub struct Helpers(pub Vec<Child>);

impl Drop for Helpers {
    fn drop(&mut self) {
        stop_probing(std::mem::take(&mut self.0));
    }
}

/// Installs `config` through any member.
pub async fn put_config(db: &Db, admins: &[String], config: &str) -> Result<()> {
    for attempt in 0..40 {
        let admin = &admins[attempt % admins.len()];
        let a = db
            .api
            .call(
                reqwest::Method::PUT,
                admin,
                "/v1/config",
                Some(("application/yaml", config.to_string())),
                &[],
            )
            .await;
        if a.kind == crate::history::OpType::Ok {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    anyhow::bail!("the cluster did not take the configuration")
}

/// Waits until every active member has applied the same index (at most a minute), then reads
/// each member's own state, the pools and a linearizable read.
async fn settle_and_read(db: &Db) -> Finals {
    let admins = db.active_admins();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let mut applied = Vec::new();
        for a in &admins {
            applied.push(
                db.api
                    .get(a, "/v1/status")
                    .await
                    .and_then(|s| s["applied_index"].as_u64()),
            );
        }
        let leader_ok = db.leader().await.is_some();
        let same = applied.iter().all(|x| x.is_some() && *x == applied[0]);
        if (same && leader_ok) || tokio::time::Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let mut finals = Finals::default();
    for a in &admins {
        if let Some(body) = db.api.get(a, "/v1/services").await {
            if let Some((services, pools)) = alloc::services_of(&body) {
                finals.read = keyed(services);
                finals.read_pools = pools
                    .into_iter()
                    .filter_map(|(k, p)| k.parse().ok().map(|k| (k, p)))
                    .collect();
                break;
            }
        }
    }
    for a in &admins {
        if let Some(body) = db.api.get(a, "/v1/pools").await {
            if let Ok(p) = serde_json::from_value(body) {
                finals.pools = p;
                break;
            }
        }
    }
    for sp in &db.speakers {
        let url = format!("http://{}:7472/metrics", sp.addr);
        if let Ok(Ok(text)) = tokio::time::timeout(Duration::from_secs(2), async {
            reqwest::get(&url).await?.text().await
        })
        .await
        {
            if let Some(v) = text
                .lines()
                .find(|l| l.starts_with("ironlb_speaker_fences_total "))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
            {
                finals.fences.insert(sp.node(), v);
            }
        }
    }
    for m in db.members.iter().filter(|m| m.active) {
        if let Some(body) = db.api.get(&m.admin(), "/v1/services?stale=true").await {
            if let Some((services, _)) = alloc::services_of(&body) {
                finals
                    .members
                    .insert(format!("member-{}", m.slot + 1), keyed(services));
            }
        }
    }
    finals
}

fn keyed(
    m: std::collections::BTreeMap<String, Vec<IpAddr>>,
) -> std::collections::BTreeMap<ironlb::names::ServiceKey, Vec<IpAddr>> {
    m.into_iter()
        .filter_map(|(k, v)| k.parse().ok().map(|k| (k, v)))
        .collect()
}
