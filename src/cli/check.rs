//! `ironlb check`: validate a configuration and show each Service's allocation.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Result;
use ironlb::check::{Held, Report};
use ironlb::config::{self, Config};
use ironlb::ipam::{Explanation, Family, PoolStats};
use ironlb::names::{PoolName, ServiceKey};
use serde::Serialize;

use super::table::print_table;
use super::Output;

/// Runs the check; the exit code says whether the configuration is valid (2 if not) and every
/// Service got an address, keeping any its status shows (1 if not).
pub fn check(path: PathBuf, output: Output) -> Result<ExitCode> {
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
    let report = ironlb::check::check(&docs, &config)?;
    match output {
        Output::Json => print_json(&report)?,
        Output::Table => {
            print_tables(&path, &config, &report);
            for e in &report.errors {
                eprintln!("{e}");
            }
        }
    }
    if !report.errors.is_empty() {
        return Ok(ExitCode::from(2));
    }
    if !report.all_allocated() {
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints the allocations, the held addresses, the pools' counts and the Services' errors as
/// one JSON document.
fn print_json(report: &Report) -> Result<()> {
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
    struct HeldReport<'a> {
        service: &'a ServiceKey,
        addresses: &'a [IpAddr],
        kept: bool,
        error: Option<String>,
    }
    #[derive(Serialize)]
    struct Out<'a> {
        services: Vec<ServiceReport<'a>>,
        held: Vec<HeldReport<'a>>,
        pools: &'a BTreeMap<PoolName, PoolStats>,
        errors: Vec<String>,
    }
    let services = report
        .results
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
    let held = report
        .held
        .iter()
        .map(|h| HeldReport {
            service: &h.service,
            addresses: &h.addresses,
            kept: h.outcome.is_ok(),
            error: h.outcome.as_ref().err().map(|r| r.to_string()),
        })
        .collect();
    let out = Out {
        services,
        held,
        pools: &report.stats,
        errors: report.errors.iter().map(|e| e.to_string()).collect(),
    };
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}

/// Prints a summary of the configuration, then a table of the allocations, the held addresses
/// that cannot be kept, and a table of the pools' counts.
fn print_tables(path: &Path, config: &Config, report: &Report) {
    println!(
        "{}: valid: {} pools, {} L2 and {} BGP advertisements, {} BGP peers",
        path.display(),
        config.pools.len(),
        config.l2_advertisements.len(),
        config.bgp_advertisements.len(),
        config.peers.len()
    );
    println!();
    print_table(
        &["SERVICE", "POOL", "ADDRESSES", "WHY"],
        &allocation_rows(&report.results),
    );
    // Held addresses that cannot be kept: the Service moves, which a reload should not do
    // unnoticed.
    let moved: Vec<&Held> = report.held.iter().filter(|h| h.outcome.is_err()).collect();
    if !moved.is_empty() {
        println!();
        for h in moved {
            println!("{h}");
        }
    }
    println!();
    print_table(
        &["POOL", "FAMILY", "TOTAL", "IN USE", "AVAILABLE"],
        &pool_rows(&report.stats),
    );
}

/// One row per Service: its pool, its addresses and why each, or why it has none.
fn allocation_rows(results: &[Explanation]) -> Vec<Vec<String>> {
    results
        .iter()
        .map(|e| {
            let (pool, addrs, why) = match &e.outcome {
                Ok(d) => {
                    let addrs: Vec<String> = d.picks.iter().map(|(a, _)| a.to_string()).collect();
                    let whys: Vec<String> = d.picks.iter().map(|(_, w)| w.to_string()).collect();
                    (d.pool.to_string(), addrs.join(","), whys.join(", "))
                }
                Err(r) => ("-".into(), "<none>".into(), r.to_string()),
            };
            vec![e.service.to_string(), pool, addrs, why]
        })
        .collect()
}

/// One row per pool and family it has addresses of: total, in use, available.
pub(super) fn pool_rows(stats: &BTreeMap<PoolName, PoolStats>) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    for (name, s) in stats {
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
    rows
}
