//! `ironlb-bench`: benchmark scenarios that print one JSON object as their last line of stdout,
//! so figures can be compared between runs.

mod alloc;
mod bgp;
mod bgp_failover;
mod common;
mod etcd;
mod failover;
mod speakers;
mod state;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use ironlb::ipam::{AddrRange, AllocationRequest, Allocator, Families, PoolSpec, Port};
use ironlb::names::{PoolName, ServiceKey};
use serde_json::json;

#[derive(Parser)]
#[command(
    name = "ironlb-bench",
    about = "ironlb benchmark scenarios (JSON on the last line)"
)]
struct Cli {
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Subcommand)]
enum Scenario {
    /// The pure allocator: allocate and release N Services in an IPv4 /12 and an IPv6 /64 pool;
    /// nanoseconds per operation and bytes of state per allocation.
    Ipam {
        /// How many Services.
        #[arg(long, default_value_t = 100_000)]
        services: usize,
        /// Print only the JSON line.
        #[arg(long)]
        json: bool,
    },
    /// Durable allocations through a 3-member ironlb cluster (real processes, release build)
    /// against a 3-member etcd 3.4 doing put-if-absent transactions: allocations/s and
    /// client-side latency.
    Alloc {
        /// Allocations to acknowledge on each side.
        #[arg(long, default_value_t = 20_000)]
        allocations: usize,
        /// Concurrent clients on each side.
        #[arg(long, default_value_t = 32)]
        clients: usize,
        /// Where etcd's clients send their transactions.
        #[arg(long, value_enum, default_value_t = alloc::EtcdTarget::Leader)]
        etcd_target: alloc::EtcdTarget,
        /// Print only the JSON line on stdout and no summary (progress still goes to stderr).
        #[arg(long)]
        json: bool,
    },
    /// BGP announcement (root): from N Services submitted (or released) until a GoBGP
    /// receiver holds (or has withdrawn) all their /32 routes, ironlb's speaker against FRR's
    /// bgpd fed the same prefixes through vtysh, as MetalLB's FRR mode does.
    Bgp {
        /// Services, and so prefixes, on each side (at most 131 072).
        #[arg(long, default_value_t = 10_000)]
        prefixes: usize,
        /// Concurrent allocation clients.
        #[arg(long, default_value_t = 32)]
        clients: usize,
        /// Print only the JSON line on stdout and no summary (progress still goes to stderr).
        #[arg(long)]
        json: bool,
    },
    /// BGP failover (root): how long an FRR router (zebra installing the ECMP route) keeps
    /// forwarding a client's traffic to one of three nodes that died, with BFD (300 ms and
    /// 50 ms, x3) and with the hold timer alone (3 s and 90 s), ironlb's speakers against FRR
    /// on the nodes (bgpd and bfdd, as MetalLB's FRR mode runs it).
    BgpFailover {
        /// Failures per setting and side (at least 3).
        #[arg(long, default_value_t = 5)]
        runs: usize,
        /// Which settings, comma-separated (default: all; hold90 takes minutes per run).
        #[arg(long, value_enum, value_delimiter = ',', default_values_t = bgp_failover::Setting::ALL)]
        settings: Vec<bgp_failover::Setting>,
        /// Print only the JSON line on stdout and no summary (progress still goes to stderr).
        #[arg(long)]
        json: bool,
    },
    /// A large state: snapshot size and build time, a new member's catch-up, restart-to-ready
    /// of a follower and of the leader after SIGKILL, and resident memory per allocation, for
    /// each size on a fresh 3-member cluster, against etcd holding the same allocations.
    State {
        /// Sizes, comma-separated (each on a fresh cluster).
        #[arg(long, value_delimiter = ',', default_values_t = [100_000usize, 1_000_000])]
        allocations: Vec<usize>,
        /// Concurrent clients filling the state.
        #[arg(long, default_value_t = 32)]
        clients: usize,
        /// Print only the JSON line on stdout and no summary (progress still goes to stderr).
        #[arg(long)]
        json: bool,
        /// Measure ironlb only (for machines without etcd).
        #[arg(long)]
        no_baseline: bool,
        /// Only the exact in-process heap per allocation (allocator, request, view): no cluster.
        #[arg(long)]
        heap_only: bool,
    },
    /// The control plane's cost of many speakers: a 3-member cluster and N simulated speakers
    /// (the real session protocol and lease logic over TCP, no raw sockets): the leader's CPU
    /// and memory, renewal round trips, failover time and what one change costs, against N
    /// nodes renewing a Kubernetes-style Lease through etcd.
    Speakers {
        /// Node counts, comma-separated (each on a fresh cluster), e.g. 3,1000.
        #[arg(long, value_delimiter = ',', default_values_t = [1000usize])]
        nodes: Vec<usize>,
        /// Services allocated before the speakers start.
        #[arg(long, default_value_t = 10_000)]
        services: usize,
        /// Seconds of steady state measured.
        #[arg(long, default_value_t = 20)]
        duration: u64,
        /// Failovers per side and node count.
        #[arg(long, default_value_t = 3)]
        trials: usize,
        /// Print only the JSON line on stdout and no summary (progress still goes to stderr).
        #[arg(long)]
        json: bool,
        /// Measure ironlb only (for machines without etcd).
        #[arg(long)]
        no_baseline: bool,
    },
    /// Layer 2 failover (root): the client's ping outage when the owner's node fails, ironlb
    /// with default and tuned leases against keepalived VRRP at its default and at the same
    /// detection budget; and whether two MACs ever answered at once.
    Failover {
        /// Failures per configuration.
        #[arg(long, default_value_t = 20)]
        trials: usize,
        /// Print only the JSON line on stdout and no summary (progress still goes to stderr).
        #[arg(long)]
        json: bool,
    },
}

/// Counts live heap bytes, so the memory an allocation costs is measured exactly rather than
/// guessed from the resident set (which allocator caching blurs).
struct CountingAlloc;

static LIVE_BYTES: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator; only a counter is added.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE_BYTES.fetch_add(layout.size(), Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE_BYTES.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE_BYTES.fetch_add(new_size, Ordering::Relaxed);
        LIVE_BYTES.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

fn live_bytes() -> usize {
    LIVE_BYTES.load(Ordering::Relaxed)
}

fn ipam_run(cidr: &str, n: usize) -> Result<serde_json::Value> {
    let heap_before = live_bytes();
    let spec = PoolSpec::new(PoolName::new("bench")?, vec![AddrRange::parse(cidr)?]);
    let v6 = cidr.contains(':');
    let requests: Vec<AllocationRequest> = (0..n)
        .map(|i| {
            let key = ServiceKey::new("bench", &format!("svc-{i}"))?;
            let mut r = AllocationRequest::new(key, vec![Port::tcp(80)]);
            if v6 {
                r.families = Families::ipv6();
            }
            Ok(r)
        })
        .collect::<Result<_>>()?;
    let keys: Vec<ServiceKey> = requests.iter().map(|r| r.service.clone()).collect();
    let mut a = Allocator::with_pools(vec![spec])?;
    let empty = bincode::serde::encode_to_vec(&a, bincode::config::standard())?.len();
    let start = Instant::now();
    for r in requests {
        a.allocate(r).map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    let alloc_ns = start.elapsed().as_nanos() as f64 / n as f64;
    // The keys kept for the release loop are not part of the state.
    let key_bytes: usize = keys
        .iter()
        .map(|k| k.namespace().as_str().len() + k.name().len())
        .sum::<usize>()
        + keys.capacity() * std::mem::size_of::<ServiceKey>();
    let heap_per = (live_bytes() - heap_before - key_bytes) as f64 / n as f64;
    let full = bincode::serde::encode_to_vec(&a, bincode::config::standard())?.len();
    let start = Instant::now();
    for i in 0..n {
        // A scattered order, so free space fragments into many ranges.
        a.release(&keys[(i * 7919) % n]);
    }
    let release_ns = start.elapsed().as_nanos() as f64 / n as f64;
    a.verify()
        .map_err(anyhow::Error::msg)
        .context("state after releases")?;
    Ok(json!({
        "allocate_ns_per_op": alloc_ns.round(),
        "release_ns_per_op": release_ns.round(),
        "state_bytes_per_allocation": ((full - empty) as f64 / n as f64).round(),
        "heap_bytes_per_allocation": heap_per.round(),
    }))
}

fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.scenario {
        Scenario::Ipam { services, json } => {
            // The IPv4 /12 is pure arithmetic here: the allocator sends no packet anywhere.
            let v4 = ipam_run("10.0.0.0/12", services)?;
            let v6 = ipam_run("2001:db8::/64", services)?;
            let per_op = |v: &serde_json::Value| {
                v["allocate_ns_per_op"].as_f64().unwrap_or(0.0)
                    + v["release_ns_per_op"].as_f64().unwrap_or(0.0)
            };
            let ratio = per_op(&v6) / per_op(&v4).max(1.0);
            if !json {
                eprintln!("allocate+release of {services} Services; /64 vs /12 cost ratio {ratio:.2} (goal <= 3)");
            }
            let out = json!({
                "scenario": "ipam",
                "services": services,
                "ipv4_slash12": v4,
                "ipv6_slash64": v6,
                "ratio_v6_to_v4": (ratio * 100.0).round() / 100.0,
            });
            println!("{out}");
        }
        Scenario::Bgp {
            prefixes,
            clients,
            json,
        } => bgp::run(&bgp::Options {
            prefixes,
            clients,
            json,
        })?,
        Scenario::BgpFailover {
            runs,
            settings,
            json,
        } => bgp_failover::run(&bgp_failover::Options {
            runs,
            settings,
            json,
        })?,
        Scenario::State {
            allocations,
            clients,
            json,
            no_baseline,
            heap_only,
        } => {
            let opts = state::Options {
                allocations,
                clients,
                json,
                no_baseline,
                heap_only,
            };
            if opts.heap_only {
                state::heap_only(&opts)?
            } else {
                state::run(&opts)?
            }
        }
        Scenario::Speakers {
            nodes,
            services,
            duration,
            trials,
            json,
            no_baseline,
        } => speakers::run(&speakers::Options {
            nodes,
            services,
            duration,
            trials,
            json,
            no_baseline,
        })?,
        Scenario::Failover { trials, json } => failover::run(&failover::Options { trials, json })?,
        Scenario::Alloc {
            allocations,
            clients,
            etcd_target,
            json,
        } => alloc::run(&alloc::Options {
            allocations,
            clients,
            etcd_target,
            json,
        })?,
    }
    Ok(())
}
