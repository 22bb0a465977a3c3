//! `bgp-failover`: how long the router keeps forwarding to a node that died, ironlb's
//! speakers against FRR's (what MetalLB's FRR mode runs), with BFD (300 ms and 50 ms, x3) and
//! with the BGP hold timer alone (3 s and 90 s).
//!
//! Three nodes announce one /32 to an FRR router (bgpd, zebra installing the ECMP route, bfdd
//! when BFD is on); a client behind the router sends one UDP datagram a millisecond to the
//! address over 32 source ports, which the router's layer 4 hash spreads over the nodes. A node
//! fails (links down, then its speaker SIGKILLed, at a random point of the keepalive or BFD
//! interval). The figure is the time from the failure to the send time of the last datagram of
//! the dead node's flows that reached no node: the data plane's own account of how long the
//! router kept sending there, read at the client's 1 ms pace (about 3 ms between datagrams of
//! the dead node's flows). When zebra takes the dead next hop out of the kernel route, polled
//! with `ip -j route` and `ip -j nexthop`, is reported beside it as BGP's own view; a poll costs
//! several milliseconds, so it is not the figure. The two part at long hold times: the kernel
//! skips a nexthop-group member whose neighbour entry has failed, so with a 90 s hold the
//! traffic stops going to the dead node when its ARP entry fails (about 20 to 50 s), before BGP
//! withdraws the route; the same kernel does it on both sides.
//!
//! Each side gets its own namespaces per setting (see `sides`); the namespaces, the client's
//! link and every process go when the setting is done, also on error.

mod sides;
mod traffic;

use std::net::IpAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Result};
use ipnet::IpNet;
use ironlb_lab::l2::now_epoch;
use ironlb_lab::netns;
use serde_json::{json, Value};

use crate::common::round3;
use sides::{Baseline, Ours, Side, VIP};
use traffic::{analyse, Outcome, Traffic};

macro_rules! progress {
    ($($arg:tt)*) => { eprintln!("[bgp-failover] {}", format_args!($($arg)*)) };
}

/// One row of the table: how failure is detected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Setting {
    /// BFD, 300 ms intervals, multiplier 3 (BGP hold 9 s).
    Bfd300,
    /// BFD, 50 ms intervals, multiplier 3 (BGP hold 9 s).
    Bfd50,
    /// No BFD, BGP hold time 3 s (keepalive 1 s).
    Hold3,
    /// No BFD, BGP hold time 90 s (keepalive 30 s), the default of MetalLB and FRR.
    Hold90,
}

impl Setting {
    /// Every row, in the table's order.
    pub const ALL: [Setting; 4] = [
        Setting::Bfd300,
        Setting::Bfd50,
        Setting::Hold3,
        Setting::Hold90,
    ];

    fn name(self) -> &'static str {
        match self {
            Setting::Bfd300 => "bfd-300ms-x3",
            Setting::Bfd50 => "bfd-50ms-x3",
            Setting::Hold3 => "hold-3s",
            Setting::Hold90 => "hold-90s",
        }
    }

    /// BFD's interval (receive and transmit, milliseconds) and multiplier, if BFD is on.
    fn bfd(self) -> Option<(u32, u8)> {
        match self {
            Setting::Bfd300 => Some((300, 3)),
            Setting::Bfd50 => Some((50, 3)),
            Setting::Hold3 | Setting::Hold90 => None,
        }
    }

    /// BGP hold time, both sides. With BFD, a short one of its own would blur which of the
    /// two noticed the failure; 9 s is far above either BFD budget and keeps a broken BFD
    /// from stalling a run for minutes.
    fn hold_s(self) -> u64 {
        match self {
            Setting::Bfd300 | Setting::Bfd50 => 9,
            Setting::Hold3 => 3,
            Setting::Hold90 => 90,
        }
    }

    fn keepalive_s(self) -> u64 {
        self.hold_s() / 3
    }

    /// The interval a failure's timing relative to the detector's clock varies over.
    fn phase(self) -> Duration {
        match self.bfd() {
            Some((ms, _)) => Duration::from_millis(u64::from(ms)),
            None => Duration::from_secs(self.keepalive_s()),
        }
    }

    /// Longest a failure may take to be detected.
    fn budget(self) -> Duration {
        Duration::from_secs(self.hold_s())
    }
}

/// Options of the scenario.
#[derive(Clone, Debug)]
pub struct Options {
    /// Failures per setting and side.
    pub runs: usize,
    /// Which rows.
    pub settings: Vec<Setting>,
    /// Skip the human-readable summary.
    pub json: bool,
}

/// A small xorshift seeded from the clock: where in the interval each failure lands.
struct Jitter(u64);

impl Jitter {
    fn below(&mut self, max: Duration) -> Duration {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        max.mul_f64((self.0 % 10_000) as f64 / 10_000.0)
    }
}

/// One failure's figures.
struct Trial {
    outcome: Outcome,
    /// From the failure until the kernel route no longer lists the node.
    route_removed: Duration,
}

/// Runs the selected rows and prints the JSON line.
pub fn run(opts: &Options) -> Result<()> {
    ensure!(
        opts.runs >= 3,
        "--runs must be at least 3 (a median and a spread)"
    );
    netns::available().map_err(anyhow::Error::msg)?;
    for daemon in ["bgpd", "bfdd", "zebra"] {
        let path = format!("/usr/lib/frr/{daemon}");
        ensure!(
            Path::new(&path).exists(),
            "FRR's {daemon} is not installed (scripts/install-deps)"
        );
    }
    crate::common::which("vtysh")?;
    let bin = crate::common::build_release_binary()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let mut jitter = Jitter(now_epoch().to_bits() | 1);
    let mut rows = Vec::new();
    for &s in &opts.settings {
        rows.push(row(&rt, &bin, s, opts.runs, &mut jitter));
    }
    if !opts.json {
        summary(&rows);
    }
    let out = json!({
        "scenario": "bgp-failover",
        "runs": opts.runs,
        "measure": "seconds from the node's failure (links down, speaker SIGKILLed) to the send time of the last client datagram the router forwarded to it (lost); 1 ms client pace, 32 flows, layer 4 ECMP hash",
        "settings": rows,
    });
    println!("{out}");
    Ok(())
}

/// One setting: ours, then the baseline, each in namespaces of its own.
fn row(rt: &tokio::runtime::Runtime, bin: &Path, s: Setting, runs: usize, j: &mut Jitter) -> Value {
    let dir = std::env::temp_dir().join(format!("ironlb-bgp-failover-{}", std::process::id()));
    progress!("{}: ours", s.name());
    let ours = {
        let _rt = rt.enter();
        match rt.block_on(Ours::start(bin, &dir.join("ours"), s)) {
            Ok(mut side) => trials(&mut side, s, runs, j, "ours"),
            Err(e) => (Vec::new(), Some(format!("{e:#}"))),
        }
    };
    progress!("{}: FRR", s.name());
    let base = {
        let mut side = Baseline::start(&dir.join("frr"), s);
        trials(&mut side, s, runs, j, "FRR")
    };
    let _ = std::fs::remove_dir_all(&dir);
    let o = side_json(&ours, None);
    let b = side_json(&base, Some("frr"));
    let ratio = |a: &str, b_key: &str| -> Value {
        match (o[a].as_f64(), b[b_key].as_f64()) {
            (Some(x), Some(y)) if y > 0.0 => json!((x / y * 1000.0).round() / 1000.0),
            _ => Value::Null,
        }
    };
    let median_ratio = ratio("median_s", "median_s");
    let goal_ratio = median_ratio.as_f64().map(|r| r <= 1.1);
    let goal_abs = (s == Setting::Bfd50).then(|| o["median_s"].as_f64().map(|m| m < 0.2));
    json!({
        "setting": s.name(),
        "bfd": s.bfd().map(|(ms, m)| json!({"interval_ms": ms, "multiplier": m})),
        "hold_time_s": s.hold_s(),
        "keepalive_s": s.keepalive_s(),
        "ours": o,
        "baseline": b,
        // The spread pairs the extremes (runs are independent, so no pairing is the right one).
        "ratio": {
            "median": median_ratio,
            "min": ratio("min_s", "max_s"),
            "max": ratio("max_s", "min_s"),
        },
        "route_removed_ratio": match (o["route_removed"]["median_s"].as_f64(), b["route_removed"]["median_s"].as_f64()) {
            (Some(x), Some(y)) if y > 0.0 => json!(round3(x / y)),
            _ => Value::Null,
        },
        "goal": {"median_within_10_percent": goal_ratio, "below_200_ms": goal_abs.flatten()},
    })
}

/// `runs` failures of one side, each after the side is whole again; stops at the first error.
fn trials(
    side: &mut dyn Side,
    s: Setting,
    runs: usize,
    j: &mut Jitter,
    label: &str,
) -> (Vec<Trial>, Option<String>) {
    let mut done = Vec::new();
    for t in 0..runs {
        let r =
            sides::wait_ready(side, s, Duration::from_secs(60)).and_then(|()| trial(side, s, t, j));
        match r {
            Ok(trial) => {
                progress!(
                    "{} {label} run {}: {:.3} s ({} lost, route out after {:.3} s)",
                    s.name(),
                    t + 1,
                    trial.outcome.blackhole.as_secs_f64(),
                    trial.outcome.lost,
                    trial.route_removed.as_secs_f64()
                );
                done.push(trial);
            }
            Err(e) => {
                progress!("{} {label} run {}: {e:#}", s.name(), t + 1);
                return (done, Some(format!("{e:#}")));
            }
        }
    }
    (done, None)
}

/// One failure: traffic, the kill, the wait until the router drops the node, the revival.
fn trial(side: &mut dyn Side, s: Setting, t: usize, j: &mut Jitter) -> Result<Trial> {
    let nodes: Vec<String> = side.nodes().iter().map(|n| n.netns.clone()).collect();
    let vip = IpAddr::V4(VIP);
    let traffic = Traffic::start(
        &side.client().netns,
        IpAddr::V4(sides::CLIENT_ADDR),
        &nodes,
        vip,
    )?;
    std::thread::sleep(Duration::from_millis(500) + j.below(s.phase()));
    let counts = traffic.counts();
    ensure!(
        counts.iter().any(|c| *c > 0),
        "no datagram reached any node: {counts:?}"
    );
    // Each node in turn, unless that one carries no flow.
    let victim = if counts[t % 3] > 0 {
        t % 3
    } else {
        (0..3).max_by_key(|i| counts[*i]).unwrap_or(0)
    };
    let hop = IpAddr::V4(side.nodes()[victim].addr);
    let prefix = IpNet::from(vip);
    let router_ns = side.router().netns.clone();
    let route = || {
        let p = format!("{VIP}/32");
        netns::Lan::try_exec_in(&router_ns, &["ip", "-4", "-j", "route", "show", &p]).stdout
    };
    // One `ip` a poll (the route's text, with its nexthop group id), and the full next hop
    // list only when that changed: polling costs CPU that the daemons under test share.
    let mut last = route();
    let kill = Instant::now();
    side.fail(victim);
    let limit = s.budget() + Duration::from_secs(10);
    let route_removed = loop {
        let now = route();
        if now != last {
            if !side.router().kernel_next_hops(prefix).contains(&hop) {
                break kill.elapsed();
            }
            last = now;
        }
        if kill.elapsed() > limit {
            drop(traffic);
            side.revive(victim);
            bail!("the router still routes to the dead node after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    std::thread::sleep(Duration::from_millis(300));
    let rec = traffic.stop()?;
    side.revive(victim);
    let outcome = analyse(&rec, victim, kill);
    ensure!(outcome.victim_flows > 0, "the failed node carried no flow");
    Ok(Trial {
        outcome,
        route_removed,
    })
}

/// Median, min and max, rounded to the millisecond; None without values.
fn spread(mut v: Vec<f64>) -> Option<(f64, f64, f64)> {
    v.sort_by(f64::total_cmp);
    let (first, last) = (*v.first()?, *v.last()?);
    let mid = v.len() / 2;
    let median = if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    };
    Some((round3(median), round3(first), round3(last)))
}

/// Median, min and max of one side's runs, with each run's figures.
fn side_json((runs, error): &(Vec<Trial>, Option<String>), name: Option<&str>) -> Value {
    let secs = |f: fn(&Trial) -> Duration| -> Vec<f64> {
        runs.iter().map(|t| f(t).as_secs_f64()).collect()
    };
    let blackhole = secs(|t| t.outcome.blackhole);
    let route = secs(|t| t.route_removed);
    let mut o = json!({
        "runs_s": blackhole.iter().map(|x| round3(*x)).collect::<Vec<_>>(),
        "route_removed_s": route.iter().map(|x| round3(*x)).collect::<Vec<_>>(),
        "lost": runs.iter().map(|t| t.outcome.lost).collect::<Vec<_>>(),
        "lost_elsewhere": runs.iter().map(|t| t.outcome.lost_elsewhere).collect::<Vec<_>>(),
    });
    if let Some((median, min, max)) = spread(blackhole) {
        o["median_s"] = json!(median);
        o["min_s"] = json!(min);
        o["max_s"] = json!(max);
    }
    // BGP's own view: with a long hold time the kernel stops using a next hop whose
    // neighbour entry failed (nexthop groups skip it) well before BGP withdraws it.
    if let Some((median, min, max)) = spread(route) {
        o["route_removed"] = json!({"median_s": median, "min_s": min, "max_s": max});
    }
    if let Some(e) = error {
        o["error"] = json!(e);
    }
    if let Some(n) = name {
        o["name"] = json!(n);
    }
    o
}

/// The table, on stderr.
fn summary(rows: &[Value]) {
    let cell = |v: &Value| match (
        v["median_s"].as_f64(),
        v["min_s"].as_f64(),
        v["max_s"].as_f64(),
    ) {
        (Some(m), Some(lo), Some(hi)) => format!("{m:.3} s [{lo:.3}-{hi:.3}]"),
        _ => "missing".to_string(),
    };
    eprintln!(
        "{:<14} {:<28} {:<28} ratio",
        "setting", "ironlb", "FRR-to-FRR"
    );
    for r in rows {
        let ratio = &r["ratio"];
        let rt = match (
            ratio["median"].as_f64(),
            ratio["min"].as_f64(),
            ratio["max"].as_f64(),
        ) {
            (Some(m), Some(lo), Some(hi)) => format!("{m:.2} [{lo:.2}-{hi:.2}]"),
            _ => "-".to_string(),
        };
        eprintln!(
            "{:<14} {:<28} {:<28} {rt}",
            r["setting"].as_str().unwrap_or(""),
            cell(&r["ours"]),
            cell(&r["baseline"])
        );
        let route = |v: &Value| {
            v["route_removed"]["median_s"]
                .as_f64()
                .map_or("-".to_string(), |m| format!("{m:.3} s"))
        };
        eprintln!(
            "  route out of the kernel (median): ironlb {}, FRR {}",
            route(&r["ours"]),
            route(&r["baseline"])
        );
        for (who, side) in [("ironlb", &r["ours"]), ("FRR", &r["baseline"])] {
            if let Some(e) = side["error"].as_str() {
                let first = e.lines().next().unwrap_or(e);
                eprintln!("  {who}: {first}");
            }
        }
    }
}
