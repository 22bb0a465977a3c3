//! Judging a stored run: every checker over what the run directory holds, then `results.json`,
//! `summary.txt` and the plots, written next to it.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};
use serde_json::json;

use crate::checker::{alloc, availability, l2, linear, Validity, Verdict};
use crate::history::History;
use crate::nemesis::{self, Window};
use crate::plot;
use crate::run::Meta;
use crate::workload::Workload;

/// Everything the checkers said about one run.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Results {
    /// The worst verdict.
    pub valid: Validity,
    /// Each checker's verdict.
    pub checkers: Vec<Verdict>,
}

/// Checks the run in `dir` and writes its results; returns them.
pub fn check(dir: &Path, budget: linear::Budget) -> Result<Results> {
    let meta: Meta = serde_json::from_str(
        &std::fs::read_to_string(dir.join("meta.json")).context("meta.json")?,
    )?;
    let history = History::load(&dir.join("history.jsonl")).context("history.jsonl")?;
    let events = nemesis::load(&dir.join("nemesis.jsonl")).unwrap_or_default();
    let windows = nemesis::windows(&events);
    let finals: Option<alloc::Finals> = std::fs::read_to_string(dir.join("final.json"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok());
    let mut verdicts = alloc::check(
        &history,
        &meta.config,
        finals.as_ref(),
        meta.quarantine_ns,
        budget,
    );
    verdicts.push(availability::check(&history, &windows));
    let mut replies = Vec::new();
    if meta.opts.workload == Workload::L2 {
        replies = l2::load(&dir.join("probes.jsonl")).unwrap_or_default();
        let end = replies
            .last()
            .map_or(history.end(), |r| r.t.max(history.end()));
        let rules = l2::Rules::default();
        let mut v = l2::check(&replies, &windows, &meta.addresses, end, rules);
        if let Some(f) = &finals {
            v.figures["fences"] = json!(f.fences);
        }
        verdicts.push(v);
    }
    let valid = verdicts.iter().fold(Validity::Valid, |v, c| v.and(c.valid));
    let results = Results {
        valid,
        checkers: verdicts,
    };
    std::fs::write(
        dir.join("results.json"),
        serde_json::to_string_pretty(&results)?,
    )?;
    let summary = summary(&meta, &history, &windows, &results);
    std::fs::write(dir.join("summary.txt"), &summary)?;
    print!("{summary}");

    // Plots are for people; a plot that cannot be drawn does not change the verdict.
    for (name, r) in [
        (
            "latency-raw.png",
            plot::latency_raw(&history, &windows, &dir.join("latency-raw.png")),
        ),
        (
            "rate.png",
            plot::rates(&history, &windows, &dir.join("rate.png")),
        ),
    ] {
        if let Err(e) = r {
            eprintln!("{name}: {e}");
        }
    }
    if meta.opts.workload == Workload::L2 {
        let end = replies.last().map_or(history.end(), |r| r.t);
        if let Err(e) = plot::answers(
            &replies,
            &meta.addresses,
            &windows,
            end,
            &dir.join("answers.png"),
        ) {
            eprintln!("answers.png: {e}");
        }
    }
    Ok(results)
}

fn pct(x: Option<f64>) -> String {
    x.map_or("-".into(), |v| format!("{:.1}%", v * 100.0))
}

fn ms(x: &serde_json::Value) -> String {
    x.as_f64().map_or("-".into(), |v| format!("{v:.1} ms"))
}

/// The human summary of a run.
pub fn summary(meta: &Meta, history: &History, windows: &[Window], results: &Results) -> String {
    let o = &meta.opts;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "ironlb-jepsen: workload {}, nemesis {}, seed {}, {} s, {} members, {} speakers, {} clients, timing {:?} (heartbeat/lease/margin {:?} ms)",
        o.workload.name(),
        if o.nemesis.is_empty() { "none".into() } else { o.nemesis.iter().map(|k| k.name()).collect::<Vec<_>>().join(",") },
        o.seed,
        o.time_limit_s,
        o.members,
        o.speakers,
        o.concurrency,
        o.timing,
        meta.lease_ms,
    );
    let _ = writeln!(s, "faults: {}", windows.len());
    for c in &results.checkers {
        let _ = writeln!(s, "{}: {:?} - {}", c.checker, c.valid, detail(c));
        for p in c.problems.iter().take(10) {
            let _ = writeln!(s, "    {p}");
        }
        if c.problems.len() > 10 {
            let _ = writeln!(s, "    ... {} more in results.json", c.problems.len() - 10);
        }
    }
    if meta.opts.workload == Workload::L2 {
        write_l2_faults(&mut s, results);
    }
    let _ = writeln!(s, "operations: {}", history.ops.len() / 2);
    let _ = writeln!(s, "VERDICT: {:?}", results.valid);
    s
}

/// A checker's figures in a line.
fn detail(c: &Verdict) -> String {
    let f = &c.figures;
    match c.checker.as_str() {
        "linearizable" => linearizable_detail(f),
        "invariants" => format!(
            "reads {}, stale reads {}, duplicates {}, lost {}, members agree {}, pool accounting {}",
            f["reads"], f["stale_reads"], f["duplicates"], f["lost"], f["members_agree"], f["pool_accounting"]
        ),
        "l2" => format!(
            "answers {}, pings {}, dual-answer windows {} ({:.3} s), worst outage {:.3} s, fences {}",
            f["replies"], f["ping_replies"], f["dual_answer_windows"],
            f["dual_answer_s"].as_f64().unwrap_or(0.0),
            f["worst_outage_s"].as_f64().unwrap_or(0.0),
            f["fences"]
        ),
        "availability" => availability_detail(f),
        _ => f.to_string(),
    }
}

/// Each pool's operations and verdict.
fn linearizable_detail(f: &serde_json::Value) -> String {
    let pools = f["pools"].as_object().cloned().unwrap_or_default();
    pools
        .iter()
        .map(|(p, v)| {
            format!(
                "{p}: {} ops, {}",
                v["operations"],
                match &v["valid"] {
                    serde_json::Value::Bool(true) => format!(
                        "valid ({} pieces, {} configurations)",
                        v["pieces"], v["explored"]
                    ),
                    serde_json::Value::Bool(false) => "INVALID".into(),
                    _ => format!("unknown ({})", v["why"].as_str().unwrap_or("")),
                }
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Each phase's operations, success share and latencies.
fn availability_detail(f: &serde_json::Value) -> String {
    let mut parts = Vec::new();
    if let Some(phases) = f["phases"].as_object() {
        for (name, p) in phases {
            parts.push(format!(
                "{name}: {} ops, ok {}, p50 {}, p99 {}, max {}",
                p["operations"],
                pct(p["ok_share"].as_f64()),
                ms(&p["latency_ms"]["p50"]),
                ms(&p["latency_ms"]["p99"]),
                ms(&p["latency_ms"]["max"])
            ));
        }
    }
    parts.join("; ")
}

/// One line per fault with the worst outages the Layer 2 checker found in it.
fn write_l2_faults(s: &mut String, results: &Results) {
    if let Some(l2) = results.checkers.iter().find(|c| c.checker == "l2") {
        if let Some(faults) = l2.figures["faults"].as_array() {
            for f in faults {
                let _ = writeln!(
                    s,
                    "    {:>8.1} s {}: worst ARP/NDP outage {:.3} s, worst ping outage {:.3} s",
                    f["start_s"].as_f64().unwrap_or(0.0),
                    f["nemesis"].as_str().unwrap_or(""),
                    f["worst_outage_s"].as_f64().unwrap_or(0.0),
                    f["worst_ping_outage_s"].as_f64().unwrap_or(0.0)
                );
            }
        }
    }
}

/// A one-line JSON of a run's headline figures, for tables.
pub fn headline(dir: &Path) -> Result<serde_json::Value> {
    let results: Results =
        serde_json::from_str(&std::fs::read_to_string(dir.join("results.json"))?)?;
    let meta: Meta = serde_json::from_str(&std::fs::read_to_string(dir.join("meta.json"))?)?;
    let get = |name: &str| {
        results
            .checkers
            .iter()
            .find(|c| c.checker == name)
            .map(|c| c.figures.clone())
    };
    let avail = get("availability").unwrap_or_default();
    let total = &avail["by_operation"];
    let (mut ops, mut ok) = (0u64, 0u64);
    if let Some(m) = total.as_object() {
        for v in m.values() {
            ops += v["operations"].as_u64().unwrap_or(0);
            ok += v["ok"].as_u64().unwrap_or(0);
        }
    }
    let lin = results
        .checkers
        .iter()
        .find(|c| c.checker == "linearizable");
    let inv = get("invariants").unwrap_or_default();
    let l2 = get("l2");
    Ok(json!({
        "run": dir.file_name().map(|n| n.to_string_lossy().to_string()),
        "workload": meta.opts.workload.name(),
        "nemesis": meta.opts.nemesis.iter().map(|k| k.name()).collect::<Vec<_>>(),
        "seconds": meta.opts.time_limit_s,
        "operations": ops,
        "ok_share": if ops == 0 { 0.0 } else { ok as f64 / ops as f64 },
        "lost": inv["lost"],
        "duplicates": inv["duplicates"],
        "linearizable": lin.map(|c| c.valid),
        "dual_answer_windows": l2.as_ref().map(|f| f["dual_answer_windows"].clone()),
        "fences": l2.as_ref().map(|f| f["fences"].clone()),
        "worst_l2_outage_s": l2.as_ref().map(|f| f["worst_outage_s"].clone()),
        "valid": results.valid,
    }))
}
