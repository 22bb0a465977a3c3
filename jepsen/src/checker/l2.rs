//! The Layer 2 checker: who answered for each address, and when.
//!
//! The prober asks for every address every few milliseconds (ARP for IPv4, NDP for IPv6) and
//! records each reply's time and source MAC, tagged with the round it answers. Two rules find
//! moments when two nodes answered for one address:
//! - two MACs replied in the same round;
//! - the replies of one MAC form spans (replies no further apart than the gap tolerance); a span
//!   of one MAC overlapping a span of another means both were answering at once, which also
//!   catches an old owner replying after the new owner's first reply.
//!
//! A failover is the legitimate case: the old owner's last reply comes before the new owner's
//! first, with the lease margin between them. The outage a fault caused is the longest gap in an
//! address's replies that overlaps the fault or the recovery after it.

use std::collections::{BTreeMap, BTreeSet};
use std::io::BufRead;
use std::net::IpAddr;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{secs, Verdict};
use crate::nemesis::Window;

/// What the prober recorded: a reply (ARP or NDP, with its MAC) or a ping answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reply {
    /// Nanoseconds since the run started.
    pub t: u64,
    /// `arp`, `ndp` or `ping`.
    pub proto: String,
    /// The address asked about.
    pub addr: IpAddr,
    /// The answering MAC (not known for pings).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    /// The probe round this answers (ARP and NDP).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub round: Option<u64>,
}

/// Reads `probes.jsonl`.
pub fn load(path: &Path) -> std::io::Result<Vec<Reply>> {
    let file = std::fs::File::open(path)?;
    let mut out = Vec::new();
    for line in std::io::BufReader::new(file).lines() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let r: Reply = serde_json::from_str(&line).map_err(std::io::Error::other)?;
        out.push(r);
    }
    out.sort_by_key(|r| r.t);
    Ok(out)
}

/// A moment when two MACs answered for one address.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DualWindow {
    /// The address.
    pub addr: IpAddr,
    /// From (ns since start).
    pub from: u64,
    /// To.
    pub to: u64,
    /// The MACs that answered.
    pub macs: BTreeSet<String>,
}

/// How the replies are judged.
#[derive(Clone, Copy, Debug)]
pub struct Rules {
    /// Replies of one MAC at most this far apart belong to one span.
    pub span_gap_ns: u64,
    /// How long after a fault ends its outage may last (counted in its window).
    pub recovery_ns: u64,
}

impl Default for Rules {
    fn default() -> Self {
        Self {
            span_gap_ns: 30_000_000,
            recovery_ns: 10_000_000_000,
        }
    }
}

/// Finds every dual-answer window in the ARP and NDP replies (sorted by time).
pub fn dual_windows(replies: &[Reply], rules: Rules) -> Vec<DualWindow> {
    let mut by_addr: BTreeMap<IpAddr, Vec<&Reply>> = BTreeMap::new();
    for r in replies.iter().filter(|r| r.mac.is_some()) {
        by_addr.entry(r.addr).or_default().push(r);
    }
    let mut out = Vec::new();
    for (addr, rs) in by_addr {
        let mut windows: Vec<(u64, u64, BTreeSet<String>)> = Vec::new();
        // Same round, two MACs.
        let mut rounds: BTreeMap<u64, Vec<&Reply>> = BTreeMap::new();
        for r in &rs {
            if let Some(k) = r.round {
                rounds.entry(k).or_default().push(r);
            }
        }
        for group in rounds.values() {
            let macs: BTreeSet<String> = group.iter().filter_map(|r| r.mac.clone()).collect();
            if macs.len() > 1 {
                let from = group.iter().map(|r| r.t).min().unwrap_or(0);
                let to = group.iter().map(|r| r.t).max().unwrap_or(0);
                windows.push((from, to, macs));
            }
        }
        // Overlapping spans of different MACs.
        let mut spans: Vec<(u64, u64, &str)> = Vec::new();
        let mut open: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
        for r in &rs {
            let mac = r.mac.as_deref().unwrap_or_default();
            match open.get_mut(mac) {
                Some((_, last)) if r.t.saturating_sub(*last) <= rules.span_gap_ns => *last = r.t,
                Some(span) => {
                    spans.push((span.0, span.1, mac));
                    *span = (r.t, r.t);
                }
                None => {
                    open.insert(mac, (r.t, r.t));
                }
            }
        }
        spans.extend(open.into_iter().map(|(m, (a, b))| (a, b, m)));
        spans.sort();
        for (i, a) in spans.iter().enumerate() {
            for b in &spans[i + 1..] {
                if b.0 > a.1 {
                    break;
                }
                if a.2 != b.2 {
                    let macs = [a.2.to_string(), b.2.to_string()].into();
                    windows.push((b.0, a.1.min(b.1), macs));
                }
            }
        }
        // Merge what overlaps.
        windows.sort_by_key(|w| (w.0, w.1));
        let mut merged: Vec<(u64, u64, BTreeSet<String>)> = Vec::new();
        for w in windows {
            match merged.last_mut() {
                Some(m) if w.0 <= m.1 => {
                    m.1 = m.1.max(w.1);
                    m.2.extend(w.2);
                }
                _ => merged.push(w),
            }
        }
        out.extend(merged.into_iter().map(|(from, to, macs)| DualWindow {
            addr,
            from,
            to,
            macs,
        }));
    }
    out
}

/// The longest gap between replies (of `proto`s) for `addr` that overlaps `[from, to]`.
fn longest_gap(times: &[u64], from: u64, to: u64) -> u64 {
    let mut worst = 0;
    // A gap running into the window from before it, or out of it, counts whole.
    for w in times.windows(2) {
        let (a, b) = (w[0], w[1]);
        if b >= from && a <= to {
            worst = worst.max(b - a);
        }
    }
    // Silence from the window's start (or the last reply) to its end also counts.
    let last_before = times.iter().rev().find(|&&t| t <= to).copied();
    if let Some(last) = last_before {
        if times.iter().all(|&t| t <= to) {
            worst = worst.max(to.saturating_sub(last.max(from)));
        }
    } else {
        worst = worst.max(to - from);
    }
    worst
}

/// Checks the replies of a run against the fault windows.
pub fn check(
    replies: &[Reply],
    windows: &[Window],
    addresses: &[IpAddr],
    end: u64,
    rules: Rules,
) -> Verdict {
    let dual = dual_windows(replies, rules);
    let mut problems: Vec<String> = dual.iter().map(dual_problem).collect();
    let dual_ns: u64 = dual.iter().map(|w| w.to - w.from).sum();

    let (times, macs) = reply_times(replies);
    for a in addresses {
        if !times.contains_key(&(*a, false)) {
            problems.push(format!("{a} was never answered"));
        }
    }
    let faults: Vec<serde_json::Value> = windows
        .iter()
        .map(|w| fault_outages(w, addresses, &times, end, rules))
        .collect();
    let worst_outage = faults
        .iter()
        .filter_map(|f| f["worst_outage_s"].as_f64())
        .fold(0.0, f64::max);
    let figures = json!({
        "replies": replies.iter().filter(|r| r.mac.is_some()).count(),
        "ping_replies": replies.iter().filter(|r| r.proto == "ping").count(),
        "addresses": addresses.len(),
        "dual_answer_windows": dual.len(),
        "dual_answer_s": secs(dual_ns),
        "macs_per_address": macs.iter().map(|(a, m)| (a.to_string(), m.len())).collect::<BTreeMap<_, _>>(),
        "worst_outage_s": worst_outage,
        "faults": faults,
    });
    Verdict::from_problems("l2", problems, figures)
}

/// The problem a dual-answer window is.
fn dual_problem(w: &DualWindow) -> String {
    format!(
        "{} answered by {} at once from {:.3} s to {:.3} s",
        w.addr,
        w.macs.iter().cloned().collect::<Vec<_>>().join(" and "),
        secs(w.from),
        secs(w.to)
    )
}

/// Reply times, keyed by address and whether they are pings.
type Times = BTreeMap<(IpAddr, bool), Vec<u64>>;

/// The reply times of every address and kind, and every address's answering MACs.
fn reply_times(replies: &[Reply]) -> (Times, BTreeMap<IpAddr, BTreeSet<String>>) {
    // Reply times per address and kind (ARP/NDP together, pings apart).
    let mut times: Times = BTreeMap::new();
    let mut macs: BTreeMap<IpAddr, BTreeSet<String>> = BTreeMap::new();
    for r in replies {
        let ping = r.proto == "ping";
        times.entry((r.addr, ping)).or_default().push(r.t);
        if let Some(m) = &r.mac {
            macs.entry(r.addr).or_default().insert(m.clone());
        }
    }
    (times, macs)
}

/// The worst ARP/NDP and ping outages of any address during fault `w` and its recovery.
fn fault_outages(
    w: &Window,
    addresses: &[IpAddr],
    times: &Times,
    end: u64,
    rules: Rules,
) -> serde_json::Value {
    let to = w
        .end
        .unwrap_or(end)
        .saturating_add(rules.recovery_ns)
        .min(end);
    let mut worst = (0u64, None);
    let mut worst_ping = (0u64, None);
    for a in addresses {
        let gap = longest_gap(
            times.get(&(*a, false)).map_or(&[][..], Vec::as_slice),
            w.start,
            to,
        );
        if gap > worst.0 {
            worst = (gap, Some(*a));
        }
        if let Some(t) = times.get(&(*a, true)) {
            let gap = longest_gap(t, w.start, to);
            if gap > worst_ping.0 {
                worst_ping = (gap, Some(*a));
            }
        }
    }
    json!({
        "nemesis": w.name,
        "start_s": secs(w.start),
        "end_s": w.end.map(secs),
        "worst_outage_s": secs(worst.0),
        "worst_address": worst.1,
        "worst_ping_outage_s": secs(worst_ping.0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(t_ms: u64, mac: &str, round: u64) -> Reply {
        Reply {
            t: t_ms * 1_000_000,
            proto: "arp".into(),
            addr: "192.0.2.1".parse().unwrap(),
            mac: Some(mac.into()),
            round: Some(round),
        }
    }

    fn series(from_ms: u64, to_ms: u64, mac: &str) -> Vec<Reply> {
        (from_ms / 10..to_ms / 10)
            .map(|k| reply(k * 10 + 1, mac, k))
            .collect()
    }

    #[test]
    fn a_clean_failover_has_no_dual_answer() {
        // A answers until 1000 ms, silence for the lease margin, then B.
        let mut r = series(0, 1000, "a");
        r.extend(series(1300, 2000, "b"));
        assert!(dual_windows(&r, Rules::default()).is_empty());
        // Failing back later is fine too.
        r.extend(series(2400, 3000, "a"));
        assert!(dual_windows(&r, Rules::default()).is_empty());
    }

    #[test]
    fn two_macs_in_one_round_are_a_dual_answer() {
        let mut r = series(0, 500, "a");
        r.push(reply(255, "b", 25));
        r.sort_by_key(|x| x.t);
        let w = dual_windows(&r, Rules::default());
        assert_eq!(w.len(), 1, "{w:?}");
        assert_eq!(w[0].macs, ["a".to_string(), "b".to_string()].into());
    }

    #[test]
    fn an_old_owner_answering_after_the_new_one_started_is_a_dual_answer() {
        // B takes over at 1000 ms while A still answers every other round until 1200 ms.
        let mut r = series(0, 1000, "a");
        r.extend(series(1000, 2000, "b"));
        r.extend(
            (100..120)
                .step_by(2)
                .map(|k| reply(k * 10 + 5, "a", k + 1000)),
        );
        r.sort_by_key(|x| x.t);
        let w = dual_windows(&r, Rules::default());
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].from >= 1_000_000_000 && w[0].to <= 1_200_000_000,
            "{w:?}"
        );
        // And a single late reply from the old owner counts as well.
        let mut r = series(0, 1000, "a");
        r.extend(series(1100, 2000, "b"));
        r.push(reply(1500, "a", 9999));
        r.sort_by_key(|x| x.t);
        assert_eq!(dual_windows(&r, Rules::default()).len(), 1);
    }

    #[test]
    fn the_outage_of_a_fault_is_its_longest_gap() {
        let mut r = series(0, 1000, "a");
        r.extend(series(1400, 3000, "b"));
        let windows = [Window {
            name: "kill-speaker".into(),
            start: 950_000_000,
            end: Some(1_000_000_000),
            detail: serde_json::Value::Null,
        }];
        let addr: IpAddr = "192.0.2.1".parse().unwrap();
        let v = check(&r, &windows, &[addr], 3_000_000_000, Rules::default());
        assert_eq!(v.valid, super::super::Validity::Valid, "{v:?}");
        let outage = v.figures["faults"][0]["worst_outage_s"].as_f64().unwrap();
        assert!((outage - 0.41).abs() < 0.011, "{outage}");
        // An address never answered is a problem.
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        let v = check(
            &r,
            &windows,
            &[addr, other],
            3_000_000_000,
            Rules::default(),
        );
        assert_eq!(v.valid, super::super::Validity::Invalid);
    }
}
