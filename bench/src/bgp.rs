//! `bgp`: how long until a GoBGP receiver holds (or has withdrawn) the /32 routes of N
//! Services, announced by ironlb's speaker, side by side with FRR's bgpd announcing the same N
//! prefixes to the same receiver the way MetalLB's FRR mode does (a configuration change of
//! `network` statements through vtysh).
//!
//! Topology: a LAN of namespaces; three nodes run ironlb's controller members and speakers
//! (release build), the router namespace runs the receiver (gobgpd), and FRR's bgpd runs in
//! node 2's namespace as the baseline. Only node 1's speaker peers with the receiver (a node
//! selector), so each side is one speaker and one session.
//!
//! - ours: 32 clients submit the N Services (each allocation acknowledged by the Raft quorum);
//!   `announce_s` runs from the moment all N exist (the last allocation acknowledged) until the
//!   receiver counts N paths, `submit_to_announce_s` from the first submission (so it includes
//!   the allocations, which FRR's side does not do). Releases likewise.
//! - baseline: the clock starts when `vtysh -f` begins applying the N `network` statements (the
//!   addresses are already chosen: no allocator is timed) and stops when the receiver counts N.
//!
//! The receiver is polled with `gobgp global rib summary` (a poll takes a few milliseconds),
//! not `gobgp monitor`, which cannot keep up with 10 000 paths. Memory is each speaker
//! process's peak resident set (VmHWM). The addresses come from RFC 2544's benchmarking block
//! (198.18.0.0/15): they exist only as NLRI in gobgpd's table; no namespace routes them and no
//! packet is sent to any of them.
//!
//! `bytes_per_prefix` is, for each side, (peak resident set after the N prefixes − peak
//! resident set once its session is up with none) / N, both read in the same run: what each
//! prefix costs, without the process's base.

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use ironlb::ipam::{AllocationRequest, Port};
use ironlb::names::ServiceKey;
use ironlb_lab::bgp::{Neighbor, Router, RouterConfig, RouterKind};
use ironlb_lab::l2::{L2Lab, L2Options};
use ironlb_lab::netns;
use serde_json::{json, Value};

use crate::alloc::{allocate_ours, drive, http_client};
use crate::common::round3;

macro_rules! progress {
    ($($arg:tt)*) => { eprintln!("[bgp] {}", format_args!($($arg)*)) };
}

/// Options of the scenario.
#[derive(Clone, Debug)]
pub struct Options {
    /// Services (and prefixes) on each side.
    pub prefixes: usize,
    /// Concurrent allocation clients.
    pub clients: usize,
    /// Skip the human-readable summary.
    pub json: bool,
}

const SPEAKER_ASN: u32 = 64512;
const RECEIVER_ASN: u32 = 64513;
const POOL_CIDR: &str = "198.18.0.0/15";
const POOL_SIZE: usize = 1 << 17;
const NAMESPACE: &str = "bench";

fn config(router: Ipv4Addr, with_peer: bool) -> String {
    let mut c = format!(
        "apiVersion: ironlb.io/v1beta1
kind: IPAddressPool
metadata: {{name: bench}}
spec: {{addresses: [{POOL_CIDR}]}}
---
apiVersion: ironlb.io/v1beta1
kind: BGPAdvertisement
metadata: {{name: bench}}
spec: {{ipAddressPools: [bench]}}
"
    );
    if with_peer {
        c.push_str(&format!(
            "---
apiVersion: ironlb.io/v1beta1
kind: BGPPeer
metadata: {{name: receiver}}
spec:
  myASN: {SPEAKER_ASN}
  peerASN: {RECEIVER_ASN}
  peerAddress: {router}
  holdTime: 9s
  connectTime: 1s
  nodeSelectors:
  - matchLabels: {{kubernetes.io/hostname: node1}}
"
        ));
    }
    c
}

/// Peak resident set of a process, MiB.
fn peak_rss_mb(pid: u32) -> Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .context("no VmHWM")?;
    Ok((kb / 1024.0 * 10.0).round() / 10.0)
}

/// Waits until the receiver holds exactly `n` IPv4 paths; the time from `since`.
fn wait_count(rx: &Router, n: usize, since: Instant, limit: Duration) -> Result<f64> {
    loop {
        if rx.gobgp_paths("ipv4") == Some(n) {
            return Ok(since.elapsed().as_secs_f64());
        }
        if since.elapsed() > limit {
            bail!(
                "the receiver holds {:?} paths, not {n}, after {limit:?}\n{}",
                rx.gobgp_paths("ipv4"),
                rx.log_tail()
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Bytes as MiB, one decimal.
fn mib(bytes: u64) -> f64 {
    (bytes as f64 / (1024.0 * 1024.0) * 10.0).round() / 10.0
}

/// What each of `n` prefixes added to the peak resident set, bytes.
fn per_prefix(empty: &crate::common::ProcStat, full: &crate::common::ProcStat, n: usize) -> u64 {
    full.hwm_bytes.saturating_sub(empty.hwm_bytes) / (n.max(1) as u64)
}

/// Runs the scenario and prints its JSON line.
pub fn run(opts: &Options) -> Result<()> {
    netns::available().map_err(anyhow::Error::msg)?;
    for tool in ["gobgpd", "gobgp", "vtysh"] {
        crate::common::which(tool)?;
    }
    ensure!(
        Path::new("/usr/lib/frr/bgpd").exists(),
        "FRR's bgpd is not installed (scripts/install-deps)"
    );
    ensure!(
        opts.prefixes <= POOL_SIZE,
        "at most {POOL_SIZE} prefixes (the pool is {POOL_CIDR})"
    );
    let bin = crate::common::build_release_binary()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let out = rt.block_on(scenario(&bin, opts))?;
    if !opts.json {
        eprintln!(
            "{n} prefixes: ours announce {:.3} s (from the first submission {:.3} s), withdraw {:.3} s (from the first release {:.3} s), {} MiB; FRR announce {:.3} s, withdraw {:.3} s, {} MiB",
            out["ours"]["announce_s"].as_f64().unwrap_or(0.0),
            out["ours"]["submit_to_announce_s"].as_f64().unwrap_or(0.0),
            out["ours"]["withdraw_s"].as_f64().unwrap_or(0.0),
            out["ours"]["submit_to_withdraw_s"].as_f64().unwrap_or(0.0),
            out["ours"]["rss_mb"],
            out["baseline"]["announce_s"].as_f64().unwrap_or(0.0),
            out["baseline"]["withdraw_s"].as_f64().unwrap_or(0.0),
            out["baseline"]["rss_mb"],
            n = opts.prefixes
        );
    }
    println!("{out}");
    Ok(())
}

async fn scenario(bin: &Path, opts: &Options) -> Result<Value> {
    let n = opts.prefixes;
    let limit = Duration::from_secs(60 + n as u64 / 500);
    let lab_opts = L2Options {
        nodes: 3,
        controllers: 3,
        router: true,
        ..L2Options::default()
    };
    let lan = L2Lab::lan(&lab_opts);
    let router = lan.router.clone().context("a router namespace")?;
    let dir = std::env::temp_dir().join(format!("{}-bench", lan.prefix()));
    let rx = Router::start(
        &router.netns,
        &dir.join("receiver"),
        &RouterConfig {
            kind: RouterKind::GoBgp,
            asn: RECEIVER_ASN,
            router_id: router.addr,
            neighbors: lan.nodes[..2]
                .iter()
                .map(|h| Neighbor {
                    addr: IpAddr::V4(h.addr),
                    asn: SPEAKER_ASN,
                    password: None,
                })
                .collect(),
            kernel: false,
            graceful_restart: false,
        },
    );
    let frr_ns = lan.nodes[1].netns.clone();
    let frr_addr = lan.nodes[1].addr;
    let lab = L2Lab::start_on(lan, bin, lab_opts).await;
    lab.configure(&config(router.addr, true)).await;
    let node1 = IpAddr::V4(lab.lan.nodes[0].addr);
    let t = Instant::now();
    while !rx.established(node1) {
        ensure!(
            t.elapsed() < Duration::from_secs(30),
            "ours: no session\n{}",
            lab.logs()
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    let speaker_pid = lab.speakers[0].pid().context("speaker 1 runs")?;
    let ours_empty = crate::common::ProcStat::read(speaker_pid)?;
    // Node 3's speaker holds the same Services but opens no BGP session: the difference
    // between the two is what the routes cost.
    let other_pid = lab.speakers[2].pid().context("speaker 3 runs")?;
    let other_empty = crate::common::ProcStat::read(other_pid)?;

    // ours: announce.
    progress!("ours: {n} Services from {} clients", opts.clients);
    let leader = &lab.cluster.procs[lab.cluster.leader().await];
    let http = http_client(opts.clients)?;
    let url = format!("http://{}/v1/allocate", leader.admin);
    let start = Instant::now();
    let work = {
        let (http, url) = (http.clone(), url.clone());
        drive(n, opts.clients, move |_, i| {
            let (http, url) = (http.clone(), url.clone());
            async move {
                let key = ServiceKey::new(NAMESPACE, &format!("svc-{i}"))?;
                let body = serde_json::to_vec(&AllocationRequest::new(key, vec![Port::tcp(80)]))?;
                allocate_ours(&http, &url, body).await.map(|()| 0)
            }
        })
        .await?
    };
    let allocated = Instant::now();
    let announce = tokio::task::block_in_place(|| wait_count(&rx, n, start, limit))?;
    let after_alloc = allocated.elapsed().as_secs_f64();
    progress!(
        "ours: allocated in {:.3} s, all {n} routes at the receiver after {announce:.3} s",
        work.wall.as_secs_f64()
    );

    let ours_announced = crate::common::ProcStat::read(speaker_pid)?;
    progress!(
        "ours: speaker peak RSS {} MiB after the announcement ({} MiB with no prefix), {} B/prefix",
        mib(ours_announced.hwm_bytes),
        mib(ours_empty.hwm_bytes),
        per_prefix(&ours_empty, &ours_announced, n)
    );
    let other_announced = crate::common::ProcStat::read(other_pid)?;
    progress!(
        "ours: a speaker without BGP sessions: peak RSS {} MiB, {} B/prefix",
        mib(other_announced.hwm_bytes),
        per_prefix(&other_empty, &other_announced, n)
    );

    // ours: withdraw.
    let admin = leader.admin.clone();
    let start = Instant::now();
    let released = {
        let http = http.clone();
        drive(n, opts.clients, move |_, i| {
            let (http, admin) = (http.clone(), admin.clone());
            async move {
                let url = format!("http://{admin}/v1/services/{NAMESPACE}/svc-{i}");
                let r = http.delete(&url).send().await?;
                ensure!(r.status().is_success(), "release svc-{i}: {}", r.status());
                Ok(0)
            }
        })
        .await?
    };
    let released_at = Instant::now();
    let withdraw = tokio::task::block_in_place(|| wait_count(&rx, 0, start, limit))?;
    let withdraw_after = released_at.elapsed().as_secs_f64();
    progress!(
        "ours: released in {:.3} s, all withdrawn after {withdraw:.3} s",
        released.wall.as_secs_f64()
    );
    let ours_rss = peak_rss_mb(speaker_pid)?;
    let ours_full = crate::common::ProcStat::read(speaker_pid)?;
    let other_full = crate::common::ProcStat::read(other_pid)?;
    // ours stops peering, so the receiver's table is the baseline's alone.
    lab.configure(&config(router.addr, false)).await;

    // baseline: FRR's bgpd in node 2's namespace, as MetalLB's FRR mode runs it.
    let frr_dir = dir.join("frr");
    let frr = Router::start_frr_with(
        &frr_ns,
        &frr_dir,
        &format!(
            "hostname speaker\nlog file {}/bgpd.log\n!\nrouter bgp {SPEAKER_ASN}\n bgp router-id {frr_addr}\n no bgp ebgp-requires-policy\n no bgp network import-check\n neighbor {r} remote-as {RECEIVER_ASN}\n neighbor {r} timers 3 9\n address-family ipv4 unicast\n  neighbor {r} activate\n exit-address-family\n!\n",
            frr_dir.display(),
            r = router.addr
        ),
    );
    let t = Instant::now();
    while !rx.established(IpAddr::V4(frr_addr)) {
        ensure!(
            t.elapsed() < Duration::from_secs(30),
            "FRR: no session\n{}",
            frr.log_tail()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let frr_pid = *frr.pids().first().context("bgpd runs")?;
    let frr_empty = crate::common::ProcStat::read(frr_pid)?;
    let base: u32 = u32::from(Ipv4Addr::new(198, 18, 0, 0));
    let lines = |neg: &str| -> String {
        let mut s = format!("router bgp {SPEAKER_ASN}\n address-family ipv4 unicast\n");
        for i in 0..n as u32 {
            s.push_str(&format!("  {neg}network {}/32\n", Ipv4Addr::from(base + i)));
        }
        s.push_str(" exit-address-family\n");
        s
    };
    let add = frr_dir.join("add.conf");
    let del = frr_dir.join("del.conf");
    std::fs::write(&add, lines(""))?;
    std::fs::write(&del, lines("no "))?;
    progress!("FRR: {n} network statements through vtysh");
    let start = Instant::now();
    frr.vtysh_file(&add);
    let frr_applied = start.elapsed().as_secs_f64();
    let frr_announce = wait_count(&rx, n, start, limit)?;
    progress!("FRR: applied in {frr_applied:.3} s, all at the receiver after {frr_announce:.3} s");
    let start = Instant::now();
    frr.vtysh_file(&del);
    let frr_withdraw = wait_count(&rx, 0, start, limit)?;
    progress!("FRR: all withdrawn after {frr_withdraw:.3} s");
    let frr_rss = peak_rss_mb(frr_pid)?;
    let frr_full = crate::common::ProcStat::read(frr_pid)?;
    drop(frr);
    drop(rx);
    drop(lab);
    let _ = std::fs::remove_dir_all(&dir);

    Ok(json!({
        "scenario": "bgp",
        "prefixes": n,
        "ours": {
            "announce_s": round3(after_alloc),
            "withdraw_s": round3(withdraw_after),
            "rss_mb": ours_rss,
            "base_rss_mb": mib(ours_empty.hwm_bytes),
            "steady_rss_mb": mib(ours_full.rss_bytes),
            "bytes_per_prefix": per_prefix(&ours_empty, &ours_full, n),
            "no_bgp_speaker_bytes_per_prefix": per_prefix(&other_empty, &other_full, n),
            "allocate_s": round3(work.wall.as_secs_f64()),
            "release_s": round3(released.wall.as_secs_f64()),
            "submit_to_announce_s": round3(announce),
            "submit_to_withdraw_s": round3(withdraw),
        },
        "baseline": {
            "name": "frr",
            "announce_s": round3(frr_announce),
            "withdraw_s": round3(frr_withdraw),
            "rss_mb": frr_rss,
            "base_rss_mb": mib(frr_empty.hwm_bytes),
            "steady_rss_mb": mib(frr_full.rss_bytes),
            "bytes_per_prefix": per_prefix(&frr_empty, &frr_full, n),
            "vtysh_apply_s": round3(frr_applied),
        },
    }))
}
