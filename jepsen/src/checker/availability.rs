//! Availability: what each fault costs and how fast the system recovers. Every operation falls
//! in a phase by its invocation time: during a fault, in the recovery after one, or with no fault
//! at all; per phase (and per nemesis) the share of `ok` operations and their latencies.

use std::collections::BTreeMap;

use serde_json::json;

use super::{percentile, secs, Validity, Verdict};
use crate::history::{History, OpType};
use crate::nemesis::Window;

/// How long after a fault ends its recovery phase lasts.
pub const RECOVERY_NS: u64 = 10_000_000_000;

#[derive(Default)]
struct Tally {
    ok: u64,
    fail: u64,
    info: u64,
    latencies: Vec<u64>,
}

impl Tally {
    fn add(&mut self, outcome: OpType, latency: Option<u64>) {
        match outcome {
            OpType::Ok => {
                self.ok += 1;
                if let Some(l) = latency {
                    self.latencies.push(l);
                }
            }
            OpType::Fail => self.fail += 1,
            _ => self.info += 1,
        }
    }

    fn figures(&mut self) -> serde_json::Value {
        self.latencies.sort_unstable();
        let total = self.ok + self.fail + self.info;
        let ms = |p: f64| percentile(&self.latencies, p).map(|ns| ns as f64 / 1e6);
        json!({
            "operations": total,
            "ok": self.ok,
            "fail": self.fail,
            "info": self.info,
            "ok_share": if total == 0 { None } else { Some(self.ok as f64 / total as f64) },
            "latency_ms": {"p50": ms(50.0), "p95": ms(95.0), "p99": ms(99.0), "max": ms(100.0)},
        })
    }
}

/// The phase an instant falls in.
pub fn phase(t: u64, windows: &[Window], end: u64) -> (&'static str, Option<&str>) {
    for w in windows {
        let stop = w.end.unwrap_or(end);
        if t >= w.start && t <= stop {
            return ("fault", Some(&w.name));
        }
    }
    for w in windows {
        let stop = w.end.unwrap_or(end);
        if t > stop && t <= stop + RECOVERY_NS {
            return ("recovery", Some(&w.name));
        }
    }
    ("no-fault", None)
}

/// Tallies the history by phase. Informational: it is valid unless the history is unreadable.
pub fn check(history: &History, windows: &[Window]) -> Verdict {
    let pairs = match history.pairs() {
        Ok(p) => p,
        Err(e) => {
            return Verdict {
                checker: "availability".into(),
                valid: Validity::Unknown,
                figures: json!({}),
                problems: vec![e.to_string()],
            }
        }
    };
    let end = history.end();
    let mut phases: BTreeMap<&str, Tally> = BTreeMap::new();
    let mut by_nemesis: BTreeMap<String, Tally> = BTreeMap::new();
    let mut by_fun: BTreeMap<String, Tally> = BTreeMap::new();
    for p in &pairs {
        let (ph, nemesis) = phase(p.invoke.time, windows, end);
        phases.entry(ph).or_default().add(p.outcome(), p.latency());
        if let Some(n) = nemesis {
            by_nemesis
                .entry(format!("{n} ({ph})"))
                .or_default()
                .add(p.outcome(), p.latency());
        }
        by_fun
            .entry(format!("{:?}", p.invoke.f).to_lowercase())
            .or_default()
            .add(p.outcome(), p.latency());
    }
    let figures = json!({
        "duration_s": secs(end),
        "phases": phases.iter_mut().map(|(k, t)| (k.to_string(), t.figures())).collect::<BTreeMap<_, _>>(),
        "by_nemesis": by_nemesis.iter_mut().map(|(k, t)| (k.clone(), t.figures())).collect::<BTreeMap<_, _>>(),
        "by_operation": by_fun.iter_mut().map(|(k, t)| (k.clone(), t.figures())).collect::<BTreeMap<_, _>>(),
    });
    Verdict::from_problems("availability", Vec::new(), figures)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{Fun, Op};

    #[test]
    fn operations_fall_in_the_phase_of_their_invocation() {
        let w = vec![Window {
            name: "partition".into(),
            start: 100,
            end: Some(200),
            detail: serde_json::Value::Null,
        }];
        assert_eq!(phase(50, &w, 1000).0, "no-fault");
        assert_eq!(phase(150, &w, 1000), ("fault", Some("partition")));
        assert_eq!(phase(300, &w, 1000).0, "recovery");
        let op = |index, time, kind| Op {
            index,
            time,
            process: index / 2,
            kind,
            f: Fun::Read,
            value: serde_json::Value::Null,
            error: None,
            node: None,
        };
        let h = History {
            ops: vec![
                op(0, 10, OpType::Invoke),
                op(1, 20, OpType::Ok),
                op(2, 150, OpType::Invoke),
                op(3, 160, OpType::Info),
            ],
        };
        let v = check(&h, &w);
        assert_eq!(v.figures["phases"]["no-fault"]["ok"], 1);
        assert_eq!(v.figures["phases"]["fault"]["info"], 1);
        assert_eq!(v.figures["phases"]["fault"]["ok_share"], 0.0);
    }
}
