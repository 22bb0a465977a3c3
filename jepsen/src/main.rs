//! The `ironlb-jepsen` command line: run a test, re-check a stored run, run the short suite, and
//! the helpers the suite starts inside namespaces (prober, flooder, netem).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};
use ironlb_jepsen::check::{self, Results};
use ironlb_jepsen::checker::{linear, Validity};
use ironlb_jepsen::nemesis::Kind;
use ironlb_jepsen::run::{self, TestOpts, Timing};
use ironlb_jepsen::workload::Workload;
use ironlb_jepsen::{flood, netem, probe};

#[derive(Parser)]
#[command(
    name = "ironlb-jepsen",
    about = "Attack a real ironlb cluster and check every history"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(clap::Args, Clone)]
struct Common {
    /// Controller members (3 or 5).
    #[arg(long, default_value_t = 3)]
    members: usize,
    /// Speakers (default: 0 for alloc, 3 for l2).
    #[arg(long)]
    speakers: Option<usize>,
    /// Client processes (default: 16 for alloc, over its three pools; 8 for l2, over its two).
    #[arg(long)]
    concurrency: Option<usize>,
    /// The speakers' clocks.
    #[arg(long, value_enum, default_value_t = Timing::Default)]
    timing: Timing,
    /// The ironlb binary (default: `ironlb` next to this program).
    #[arg(long)]
    bin: Option<PathBuf>,
    /// Where run directories go.
    #[arg(long, default_value = "store")]
    store: PathBuf,
    /// RUST_LOG of the ironlb processes.
    #[arg(long, default_value = "info,openraft=warn")]
    log: String,
    /// Extra arguments of every controller (repeatable).
    #[arg(long = "controller-arg", allow_hyphen_values = true)]
    controller_args: Vec<String>,
    /// Configurations the linearizability search may explore before it answers unknown.
    #[arg(long, default_value_t = 20_000_000)]
    budget: u64,
    /// Short faults and recoveries (2-4 s each), as the short suite runs them.
    #[arg(long)]
    short_faults: bool,
    /// Operations per second the clients aim at, all together.
    #[arg(long, default_value_t = 200)]
    rate: u64,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run one test and check it.
    Test {
        /// What the clients do.
        #[arg(long, value_enum)]
        workload: Workload,
        /// Faults, comma-separated: kinds or groups (partition, netem, kill, pause, flood, all, none).
        #[arg(long, default_value = "none")]
        nemesis: String,
        /// Seconds of workload.
        #[arg(long, default_value_t = 60)]
        time_limit: u64,
        /// Seeds the fault schedule and the operations.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[command(flatten)]
        common: Common,
    },
    /// Check a stored run again.
    Check {
        /// The run directory.
        dir: PathBuf,
        /// Configurations the linearizability search may explore.
        #[arg(long, default_value_t = 20_000_000)]
        budget: u64,
    },
    /// The short suite CI runs: a few workload and nemesis combinations.
    Suite {
        /// Seconds of workload per combination.
        #[arg(long, default_value_t = 30)]
        time_limit: u64,
        /// Seeds every combination.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[command(flatten)]
        common: Common,
    },
    /// Runs the suite against a build that breaks the lease rule on purpose (ironlb built with
    /// the feature `jepsen-selftest-early-moves`) and succeeds only if the suite reports the
    /// violation: the proof that the checkers can fail.
    Selftest {
        /// The deliberately broken ironlb binary.
        #[arg(long)]
        broken_bin: PathBuf,
        /// Seconds of workload.
        #[arg(long, default_value_t = 25)]
        time_limit: u64,
        /// Seeds the faults.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Where run directories go.
        #[arg(long, default_value = "store")]
        store: PathBuf,
    },
    /// One JSON line of headline figures per stored run (for the README's table).
    Table {
        /// Run directories.
        dirs: Vec<PathBuf>,
    },
    /// (helper) Probe addresses with ARP, NDP and ping; runs in the client's namespace.
    Probe(probe::ProbeArgs),
    /// (helper) Flood ARP or NDP; runs in the attacker's namespace.
    Flood(flood::FloodArgs),
    /// (helper) Delay, drop and reorder queued packets; runs in a speaker's namespace.
    Netem(netem::NetemArgs),
}

fn opts(
    workload: Workload,
    nemesis: Vec<Kind>,
    time_limit: u64,
    seed: u64,
    c: &Common,
) -> Result<TestOpts> {
    let bin = match &c.bin {
        Some(b) => b.clone(),
        None => ironlb_jepsen::sibling_binary("ironlb")?,
    };
    anyhow::ensure!(
        bin.exists(),
        "no ironlb binary at {} (build it, or pass --bin)",
        bin.display()
    );
    Ok(TestOpts {
        workload,
        nemesis,
        time_limit_s: time_limit,
        concurrency: c.concurrency.unwrap_or(match workload {
            Workload::Alloc => 16,
            Workload::L2 => 8,
        }),
        seed,
        members: c.members,
        speakers: c.speakers.unwrap_or(match workload {
            Workload::Alloc => 0,
            Workload::L2 => 3,
        }),
        bin,
        store: c.store.clone(),
        timing: c.timing,
        controller_args: c.controller_args.clone(),
        log_filter: c.log.clone(),
        short_faults: c.short_faults,
        rate: c.rate,
    })
}

fn exit(v: Validity) -> ExitCode {
    match v {
        Validity::Valid => ExitCode::SUCCESS,
        Validity::Invalid => ExitCode::from(1),
        Validity::Unknown => ExitCode::from(2),
    }
}

fn budget(configurations: u64) -> linear::Budget {
    linear::Budget {
        configurations,
        ..linear::Budget::default()
    }
}

/// The short suite: each combination attacks a promise from another side.
fn suite_combinations() -> Vec<(Workload, &'static str)> {
    vec![
        (
            Workload::Alloc,
            "partition-halves,partition-leader,partition-bridge,partition-one-way",
        ),
        (
            Workload::Alloc,
            "kill-leader,kill-all-members,wipe-member,membership",
        ),
        (
            Workload::L2,
            "kill-leader,pause-leader,partition-leader,wipe-member",
        ),
        (Workload::L2, "cut-speaker,delay,loss,pause-owner"),
        (Workload::L2, "arp-flood,ndp-flood,jitter,reorder"),
    ]
}

async fn test(o: TestOpts, b: u64) -> Result<Results> {
    let dir = run::run(o).await?;
    check::check(&dir, budget(b))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Cmd::Probe(a) => probe::run(a).map(|()| ExitCode::SUCCESS),
        Cmd::Flood(a) => flood::run(a).map(|()| ExitCode::SUCCESS),
        Cmd::Netem(a) => netem::run(a).map(|()| ExitCode::SUCCESS),
        Cmd::Check { dir, budget: b } => check::check(&dir, budget(b)).map(|r| exit(r.valid)),
        Cmd::Table { dirs } => table(dirs),
        Cmd::Test {
            workload,
            nemesis,
            time_limit,
            seed,
            common,
        } => tokio_main(async move {
            let kinds = Kind::parse_list(&nemesis).map_err(anyhow::Error::msg)?;
            let o = opts(workload, kinds, time_limit, seed, &common)?;
            Ok(exit(test(o, common.budget).await?.valid))
        }),
        Cmd::Selftest {
            broken_bin,
            time_limit,
            seed,
            store,
        } => tokio_main(selftest(broken_bin, time_limit, seed, store)),
        Cmd::Suite {
            time_limit,
            seed,
            common,
        } => tokio_main(suite(time_limit, seed, common)),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("ironlb-jepsen: {e:#}");
            ExitCode::from(3)
        }
    }
}

/// Prints each stored run's headline figures.
fn table(dirs: Vec<PathBuf>) -> Result<ExitCode> {
    for d in dirs {
        println!("{}", check::headline(&d)?);
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs the Layer 2 test against the broken build; succeeds only if the checker says invalid.
async fn selftest(
    broken_bin: PathBuf,
    time_limit: u64,
    seed: u64,
    store: PathBuf,
) -> Result<ExitCode> {
    let o = TestOpts {
        workload: Workload::L2,
        nemesis: vec![Kind::CutSpeaker],
        time_limit_s: time_limit,
        concurrency: 4,
        seed,
        members: 3,
        speakers: 3,
        bin: broken_bin,
        store,
        timing: Timing::Default,
        controller_args: Vec::new(),
        log_filter: "info,openraft=warn".into(),
        short_faults: false,
        rate: 200,
    };
    let r = test(o, 20_000_000).await?;
    let caught = r
        .checkers
        .iter()
        .any(|c| c.checker == "l2" && c.valid == Validity::Invalid);
    if caught {
        println!("selftest: the suite caught the broken build (dual answers reported)");
        Ok(ExitCode::SUCCESS)
    } else {
        println!("selftest: the suite did NOT catch the broken build");
        Ok(ExitCode::from(1))
    }
}

/// Runs every combination of the short suite with short faults, then a table of verdicts.
async fn suite(time_limit: u64, seed: u64, common: Common) -> Result<ExitCode> {
    let mut worst = Validity::Valid;
    let mut lines = Vec::new();
    for (w, n) in suite_combinations() {
        let kinds = Kind::parse_list(n).map_err(anyhow::Error::msg)?;
        let mut o = opts(w, kinds, time_limit, seed, &common)?;
        o.short_faults = true;
        let r = test(o, common.budget).await?;
        lines.push(format!("{:<6} {:<70} {:?}", w.name(), n, r.valid));
        worst = worst.and(r.valid);
    }
    println!("\nsuite:");
    for l in lines {
        println!("  {l}");
    }
    Ok(exit(worst))
}

/// Runs `f` on a runtime; SIGINT or SIGTERM drops it, so the system under test is torn down
/// (processes killed, namespaces removed) rather than left behind.
fn tokio_main<F: std::future::Future<Output = Result<ExitCode>>>(f: F) -> Result<ExitCode> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?
        .block_on(async {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
            tokio::select! {
                r = f => r,
                _ = tokio::signal::ctrl_c() => {
                    eprintln!("ironlb-jepsen: interrupted; tearing down");
                    Ok(ExitCode::from(130))
                }
                _ = term.recv() => {
                    eprintln!("ironlb-jepsen: terminated; tearing down");
                    Ok(ExitCode::from(143))
                }
            }
        })
}
