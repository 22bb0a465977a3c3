//! The `ironlb` command line.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand, ValueEnum};
use ironlb::config::{self, service::requests_from_documents};
use ironlb::ipam::{Allocator, Family, PoolStats};
use ironlb::names::{PoolName, ServiceKey};
use serde::Serialize;

#[derive(Parser)]
#[command(
    name = "ironlb",
    version,
    about = "A load balancer for bare-metal Kubernetes"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Validate a configuration (a file or a directory of YAML files) and show the address each
    /// Service in it would get, and why. Exits 2 if the configuration is invalid and 1 if a
    /// Service gets no address.
    Check {
        /// A YAML file or a directory of them: ironlb.io/v1beta1 kinds, and v1 Services and
        /// Namespaces.
        #[arg(long, short = 'c')]
        config: PathBuf,
        /// Output format.
        #[arg(long, short = 'o', value_enum, default_value_t = Output::Table)]
        output: Output,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Output {
    Table,
    Json,
}

/// Prints rows as columns padded to their widest cell.
fn print_table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}

fn check(path: PathBuf, output: Output) -> Result<ExitCode> {
    let (docs, config) = match config::load_config(&path) {
        Ok(loaded) => loaded,
        Err(errors) => {
            eprintln!("{errors}");
            eprintln!(
                "{}: the configuration is invalid ({} error{})",
                path.display(),
                errors.len(),
                if errors.len() == 1 { "" } else { "s" }
            );
            return Ok(ExitCode::from(2));
        }
    };
    let (requests, service_errors) = requests_from_documents(&docs, &config);
    let mut allocator = Allocator::with_pools(config.pool_specs())?;
    let results = allocator.allocate_all(requests);
    let stats = allocator.stats();
    match output {
        Output::Json => {
            // Typed, not a serde_json::Value: counts are u128 (an IPv6 /64 holds 2^64
            // addresses), which Value cannot hold but the serializer writes exactly.
            #[derive(Serialize)]
            struct ServiceReport<'a> {
                service: &'a ServiceKey,
                pool: Option<&'a PoolName>,
                addresses: Vec<IpAddr>,
                error: Option<String>,
                explain: String,
            }
            #[derive(Serialize)]
            struct Report<'a> {
                services: Vec<ServiceReport<'a>>,
                pools: &'a BTreeMap<PoolName, PoolStats>,
                errors: Vec<String>,
            }
            let services = results
                .iter()
                .map(|e| ServiceReport {
                    service: &e.service,
                    pool: e.outcome.as_ref().ok().map(|d| &d.pool),
                    addresses: e
                        .outcome
                        .as_ref()
                        .map(|d| d.picks.iter().map(|(a, _)| *a).collect())
                        .unwrap_or_default(),
                    error: e.outcome.as_ref().err().map(|r| r.to_string()),
                    explain: e.to_string(),
                })
                .collect();
            let report = Report {
                services,
                pools: &stats,
                errors: service_errors.iter().map(|e| e.to_string()).collect(),
            };
            println!("{}", serde_json::to_string_pretty(&report)?);
        }
        Output::Table => {
            println!(
                "{}: valid: {} pools, {} L2 and {} BGP advertisements, {} BGP peers",
                path.display(),
                config.pools.len(),
                config.l2_advertisements.len(),
                config.bgp_advertisements.len(),
                config.peers.len()
            );
            println!();
            let rows: Vec<Vec<String>> = results
                .iter()
                .map(|e| {
                    let (pool, addrs, why) = match &e.outcome {
                        Ok(d) => {
                            let addrs: Vec<String> =
                                d.picks.iter().map(|(a, _)| a.to_string()).collect();
                            let whys: Vec<String> =
                                d.picks.iter().map(|(_, w)| w.to_string()).collect();
                            (d.pool.to_string(), addrs.join(","), whys.join(", "))
                        }
                        Err(r) => ("-".into(), "<none>".into(), r.to_string()),
                    };
                    vec![e.service.to_string(), pool, addrs, why]
                })
                .collect();
            print_table(&["SERVICE", "POOL", "ADDRESSES", "WHY"], &rows);
            println!();
            let mut rows = Vec::new();
            for (name, s) in &stats {
                for family in Family::ALL {
                    let c = s.family(family);
                    if c.total > 0 {
                        rows.push(vec![
                            name.to_string(),
                            family.to_string(),
                            c.total.to_string(),
                            c.in_use.to_string(),
                            c.available.to_string(),
                        ]);
                    }
                }
            }
            print_table(&["POOL", "FAMILY", "TOTAL", "IN USE", "AVAILABLE"], &rows);
            for e in &service_errors {
                eprintln!("{e}");
            }
        }
    }
    if !service_errors.is_empty() {
        return Ok(ExitCode::from(2));
    }
    if results.iter().any(|e| e.outcome.is_err()) {
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

fn main() -> Result<ExitCode> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Check { config, output } => check(config, output),
    }
}
