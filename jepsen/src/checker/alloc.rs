//! The allocation workload's checkers.
//!
//! Linearizability: the history is split by pool (every Service of the workload draws from one
//! pool only, by name or by the addresses it asks for, so pools are independent objects), each
//! read is projected onto each pool's Services, and each pool's history is searched for an order
//! the allocator explains. (Checking each projection of a read separately is weaker than checking
//! the whole read at one point, and is what keeps the search small.)
//!
//! Invariants, checked directly over every read, so that a violation is named plainly:
//! - no address is held by two Services that may not share it (a different or no
//!   `allow-shared-ip` key, or a port both use), in any read, linearizable or stale;
//! - no acknowledged allocation is lost: a linearizable read shows each Service as its last
//!   acknowledged operation left it, unless another operation on it was in flight (or had an
//!   unknown outcome within the quarantine before the read);
//! - all members agree at the end, with each other and with the last linearizable read;
//! - the pool accounting adds up: what `/v1/pools` says is in use is what the Services hold.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ironlb::ipam::{AllocationRequest, PoolStats};
use ironlb::names::ServiceKey;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::linear::{self, Budget, Call, Outcome};
use super::model::{AllocInput, AllocModel, AllocOutput};
use super::{Validity, Verdict};
use crate::history::{Fun, History, OpType, Pair};

/// What the runner reads once the faults are healed and the cluster has settled.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Finals {
    /// Each member's own state (a stale read once every member applied the same index).
    pub members: BTreeMap<String, BTreeMap<ServiceKey, Vec<IpAddr>>>,
    /// The pool counts, read from the leader.
    pub pools: BTreeMap<String, PoolStats>,
    /// A last linearizable read.
    pub read: BTreeMap<ServiceKey, Vec<IpAddr>>,
    /// The pool of each Service in that read.
    pub read_pools: BTreeMap<ServiceKey, String>,
    /// How many times each speaker fenced (its lease ran out), from its metrics.
    #[serde(default)]
    pub fences: BTreeMap<String, f64>,
}

/// Operation values as the allocation workload records them.
pub mod value {
    use super::*;

    /// An allocation's arguments.
    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    pub struct Allocate {
        /// The Service.
        pub service: ServiceKey,
        /// The manifest sent.
        pub manifest: String,
    }

    /// An allocation's result: addresses, or the refusal.
    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    pub struct Allocated {
        /// The addresses given (empty when refused).
        #[serde(default)]
        pub addresses: Vec<IpAddr>,
        /// Why it was refused.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub refused: Option<String>,
    }

    /// A release's arguments.
    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    pub struct Release {
        /// The Service.
        pub service: ServiceKey,
    }

    /// A release's result.
    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    pub struct Released {
        /// What the Service held (`None`: nothing).
        pub released: Option<Vec<IpAddr>>,
    }

    /// A read's arguments.
    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    pub struct Read {
        /// `?stale=true`: one member's state, not linearizable.
        pub stale: bool,
    }

    /// A read's result.
    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    pub struct ReadResult {
        /// Every Service and its addresses.
        pub services: BTreeMap<ServiceKey, Vec<IpAddr>>,
    }
}

/// An operation of the history, read into its workload meaning.
struct Entry<'a> {
    pair: Pair<'a>,
    what: What,
    /// The result, for `ok` completions.
    result: Option<AllocOutput>,
}

enum What {
    Allocate(ServiceKey, Box<AllocationRequest>),
    Release(ServiceKey),
    Read { stale: bool },
}

impl Entry<'_> {
    fn service(&self) -> Option<&ServiceKey> {
        match &self.what {
            What::Allocate(k, _) | What::Release(k) => Some(k),
            What::Read { .. } => None,
        }
    }

    fn ret(&self) -> u64 {
        self.pair.complete.map_or(u64::MAX, |c| c.time)
    }
}

fn parse<'a>(model: &AllocModel, pairs: Vec<Pair<'a>>) -> Result<Vec<Entry<'a>>, String> {
    let mut out = Vec::new();
    for pair in pairs {
        let at = pair.invoke.index;
        let bad = |e: String| format!("op {at}: {e}");
        let ok = pair.outcome() == OpType::Ok;
        let result_value = pair.complete.map(|c| c.value.clone());
        let (what, result) = match pair.invoke.f {
            Fun::Allocate => {
                let a: value::Allocate = serde_json::from_value(pair.invoke.value.clone())
                    .map_err(|e| bad(e.to_string()))?;
                let req = model
                    .request(&a.service.to_string(), &a.manifest)
                    .map_err(|e| bad(e.to_string()))?;
                let result = match (ok, result_value) {
                    (true, Some(v)) => {
                        let r: value::Allocated =
                            serde_json::from_value(v).map_err(|e| bad(e.to_string()))?;
                        Some(match r.refused {
                            Some(_) => AllocOutput::Refused,
                            None => AllocOutput::Allocated(r.addresses),
                        })
                    }
                    _ => None,
                };
                (What::Allocate(a.service, Box::new(req)), result)
            }
            Fun::Release => {
                let r: value::Release = serde_json::from_value(pair.invoke.value.clone())
                    .map_err(|e| bad(e.to_string()))?;
                let result = match (ok, result_value) {
                    (true, Some(v)) => {
                        let r: value::Released =
                            serde_json::from_value(v).map_err(|e| bad(e.to_string()))?;
                        Some(AllocOutput::Released(r.released))
                    }
                    _ => None,
                };
                (What::Release(r.service), result)
            }
            Fun::Read => {
                let r: value::Read = serde_json::from_value(pair.invoke.value.clone())
                    .map_err(|e| bad(e.to_string()))?;
                let result = match (ok, result_value) {
                    (true, Some(v)) => {
                        let r: value::ReadResult =
                            serde_json::from_value(v).map_err(|e| bad(e.to_string()))?;
                        Some(AllocOutput::Read(r.services))
                    }
                    _ => None,
                };
                (What::Read { stale: r.stale }, result)
            }
        };
        out.push(Entry { pair, what, result });
    }
    Ok(out)
}

/// Checks an allocation run: linearizability and the invariants.
pub fn check(
    history: &History,
    config_yaml: &str,
    finals: Option<&Finals>,
    quarantine_ns: u64,
    budget: Budget,
) -> Vec<Verdict> {
    let fail = |why: String| {
        vec![Verdict {
            checker: "alloc".into(),
            valid: Validity::Unknown,
            figures: json!({}),
            problems: vec![why],
        }]
    };
    let model = match AllocModel::new(config_yaml) {
        Ok(m) => m,
        Err(e) => return fail(e.to_string()),
    };
    let pairs = match history.pairs() {
        Ok(p) => p,
        Err(e) => return fail(e.to_string()),
    };
    let entries = match parse(&model, pairs) {
        Ok(e) => e,
        Err(e) => return fail(e),
    };
    vec![
        linearizable(&model, &entries, budget),
        invariants(&entries, finals, quarantine_ns),
    ]
}

/// The scope (pool) of every Service: the one pool its requests draw from; `None` for all of
/// them if one Service may draw from several (then the history is checked whole).
fn scopes(model: &AllocModel, entries: &[Entry<'_>]) -> Option<BTreeMap<ServiceKey, String>> {
    let mut scope: BTreeMap<ServiceKey, String> = BTreeMap::new();
    for e in entries {
        if let What::Allocate(k, req) = &e.what {
            let home = model.home_pool(req)?.to_string();
            match scope.get(k) {
                Some(s) if *s != home => return None,
                _ => {
                    scope.insert(k.clone(), home);
                }
            }
        }
    }
    Some(scope)
}

fn linearizable(model: &AllocModel, entries: &[Entry<'_>], budget: Budget) -> Verdict {
    let init = match model.init() {
        Ok(s) => s,
        Err(e) => {
            return Verdict {
                checker: "linearizable".into(),
                valid: Validity::Unknown,
                figures: json!({}),
                problems: vec![e.to_string()],
            }
        }
    };
    let scope_of = scopes(model, entries);
    let names: BTreeSet<String> = match &scope_of {
        Some(s) => s.values().cloned().collect(),
        None => ["*".to_string()].into(),
    };
    let in_scope = |k: &ServiceKey, name: &str| match &scope_of {
        Some(s) => s.get(k).is_some_and(|x| x == name),
        None => true,
    };
    let mut valid = Validity::Valid;
    let mut problems = Vec::new();
    let mut per_scope = serde_json::Map::new();
    for name in &names {
        let calls = calls_of(entries, |k| in_scope(k, name));
        let n = calls.len();
        let outcome = linear::check(model, init.clone(), calls, budget);
        let figures = judge_pool(name, n, &outcome, &mut valid, &mut problems);
        per_scope.insert(name.clone(), figures);
    }
    let problems_n = problems.len();
    let mut v = Verdict::from_problems(
        "linearizable",
        problems,
        json!({"pools": per_scope, "problems": problems_n}),
    );
    v.valid = valid;
    v
}

/// The search's calls on the Services `in_scope`: failed ones left out, reads cut to them.
fn calls_of(
    entries: &[Entry<'_>],
    in_scope: impl Fn(&ServiceKey) -> bool,
) -> Vec<Call<AllocInput, AllocOutput>> {
    let mut calls = Vec::new();
    for e in entries {
        let outcome = e.pair.outcome();
        if outcome == OpType::Fail {
            continue;
        }
        let done = |r: Option<AllocOutput>| r.map(|o| (e.ret(), o));
        let call = match &e.what {
            What::Allocate(k, req) if in_scope(k) => Call {
                id: e.pair.invoke.index,
                invoke: e.pair.invoke.time,
                done: done(e.result.clone()),
                input: AllocInput::Allocate(req.clone()),
            },
            What::Release(k) if in_scope(k) => Call {
                id: e.pair.invoke.index,
                invoke: e.pair.invoke.time,
                done: done(e.result.clone()),
                input: AllocInput::Release(k.clone()),
            },
            // Stale reads promise nothing; unanswered reads change nothing.
            What::Read { stale: false } => {
                let Some(AllocOutput::Read(all)) = &e.result else {
                    continue;
                };
                let mine = all
                    .iter()
                    .filter(|(k, _)| in_scope(k))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                Call {
                    id: e.pair.invoke.index,
                    invoke: e.pair.invoke.time,
                    done: Some((e.ret(), AllocOutput::Read(mine))),
                    input: AllocInput::Read,
                }
            }
            _ => continue,
        };
        calls.push(call);
    }
    calls
}

/// The figures of pool `name`'s search; a verdict short of valid lowers `valid`, says why.
fn judge_pool(
    name: &str,
    n: usize,
    outcome: &Outcome,
    valid: &mut Validity,
    problems: &mut Vec<String>,
) -> serde_json::Value {
    match outcome {
        Outcome::Valid {
            pieces,
            explored,
            widest_frontier,
        } => {
            json!({"valid": true, "operations": n, "pieces": pieces, "explored": explored, "widest_frontier": widest_frontier})
        }
        Outcome::Invalid {
            piece,
            ops,
            longest_prefix,
            stuck,
        } => {
            *valid = valid.and(Validity::Invalid);
            problems.push(format!(
                "pool {name}: no order of the operations of piece {piece} (ops {}) explains their results; the longest order that does is [{}], after which none of ops [{}] can come next",
                brief(ops),
                join(longest_prefix),
                join(stuck)
            ));
            json!({"valid": false, "operations": n, "piece": piece, "ops": ops, "longest_prefix": longest_prefix, "stuck": stuck})
        }
        Outcome::Unknown {
            piece,
            explored,
            why,
        } => {
            *valid = valid.and(Validity::Unknown);
            problems.push(format!("pool {name}: undecided in piece {piece}: {why}"));
            json!({"valid": "unknown", "operations": n, "piece": piece, "explored": explored, "why": why})
        }
    }
}

fn join(ids: &[u64]) -> String {
    ids.iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn brief(ids: &[u64]) -> String {
    if ids.len() <= 20 {
        join(ids)
    } else {
        format!(
            "{} ... {} ({} in all)",
            join(&ids[..10]),
            join(&ids[ids.len() - 5..]),
            ids.len()
        )
    }
}

/// What is known of a Service after its last acknowledged operation.
#[derive(Clone, Debug, PartialEq)]
enum Known {
    Absent,
    Holds(Vec<IpAddr>),
    Unknown,
}

fn sorted(mut v: Vec<IpAddr>) -> Vec<IpAddr> {
    v.sort();
    v
}

fn invariants(entries: &[Entry<'_>], finals: Option<&Finals>, quarantine_ns: u64) -> Verdict {
    let mut found = Findings::default();
    let mut reads = 0u64;
    let mut stale_reads = 0u64;
    // Operations on each Service, in invocation order.
    let mut per_service: BTreeMap<&ServiceKey, Vec<&Entry<'_>>> = BTreeMap::new();
    for e in entries {
        if let What::Allocate(k, r) = &e.what {
            found.requests.insert(k, r);
        }
        if let Some(k) = e.service() {
            per_service.entry(k).or_default().push(e);
        }
    }

    for e in entries {
        let (What::Read { stale }, Some(AllocOutput::Read(services))) = (&e.what, &e.result) else {
            continue;
        };
        reads += 1;
        let label = format!(
            "{} read (op {})",
            if *stale { "stale" } else { "linearizable" },
            e.pair.invoke.index
        );
        found.check_shared(&label, services);
        if *stale {
            stale_reads += 1;
            continue;
        }
        // Lost or changed acknowledged state.
        found.check_acknowledged(&label, services, e, &per_service, quarantine_ns);
    }

    let mut agree = true;
    let mut accounting = true;
    if let Some(f) = finals {
        found.check_shared("final read", &f.read);
        agree = found.check_members_agree(f);
        accounting = found.check_pool_accounting(f);
    }
    let figures = json!({
        "reads": reads,
        "stale_reads": stale_reads,
        "duplicates": found.duplicates,
        "lost": found.lost,
        "members_agree": finals.map(|_| agree),
        "pool_accounting": finals.map(|_| accounting),
        "services": per_service.len(),
    });
    Verdict::from_problems("invariants", found.problems, figures)
}

/// The invariants' problems in the order found, their counts, and who may share an address.
#[derive(Default)]
struct Findings<'a> {
    requests: BTreeMap<&'a ServiceKey, &'a AllocationRequest>,
    problems: Vec<String>,
    duplicates: u64,
    lost: u64,
}

impl Findings<'_> {
    /// Reports each address `services` (as `what` saw them) give to Services that may not share.
    fn check_shared(&mut self, what: &str, services: &BTreeMap<ServiceKey, Vec<IpAddr>>) {
        let mut holders: BTreeMap<IpAddr, Vec<&ServiceKey>> = BTreeMap::new();
        for (k, addrs) in services {
            for a in addrs {
                holders.entry(*a).or_default().push(k);
            }
        }
        for (addr, hs) in holders {
            if hs.len() > 1 && !may_share(&hs, &self.requests) {
                self.duplicates += 1;
                self.problems.push(format!(
                    "{what}: {addr} is held by {} which may not share it",
                    hs.iter()
                        .map(|k| k.to_string())
                        .collect::<Vec<_>>()
                        .join(" and ")
                ));
            }
        }
    }

    /// Reports each Service a linearizable read shows otherwise than its acknowledged state.
    fn check_acknowledged(
        &mut self,
        label: &str,
        services: &BTreeMap<ServiceKey, Vec<IpAddr>>,
        read: &Entry<'_>,
        per_service: &BTreeMap<&ServiceKey, Vec<&Entry<'_>>>,
        quarantine_ns: u64,
    ) {
        for (k, ops) in per_service {
            let Some(expected) = expected_at(ops, read, quarantine_ns) else {
                continue;
            };
            let seen = services.get(*k).cloned().map(sorted);
            let bad = match (&expected, &seen) {
                (Known::Absent, None) => false,
                (Known::Holds(a), Some(s)) => a != s,
                (Known::Unknown, _) => false,
                _ => true,
            };
            if bad {
                self.lost += 1;
                self.problems.push(format!(
                    "{label}: {k} shows {} but its last acknowledged operation left it {}",
                    seen.map_or("nothing".into(), |s| format!("{s:?}")),
                    match expected {
                        Known::Absent => "holding nothing".to_string(),
                        Known::Holds(a) => format!("holding {a:?}"),
                        Known::Unknown => "unknown".to_string(),
                    }
                ));
            }
        }
    }

    /// Checks each member's final state for sharing and against the last read; whether all agree.
    fn check_members_agree(&mut self, f: &Finals) -> bool {
        let mut agree = true;
        for (m, services) in &f.members {
            self.check_shared(&format!("member {m} at the end"), services);
            if *services != f.read {
                agree = false;
                self.problems.push(format!(
                    "member {m} disagrees at the end: {} Services against the last read's {} ({})",
                    services.len(),
                    f.read.len(),
                    first_difference(services, &f.read)
                ));
            }
        }
        agree
    }

    /// Checks each pool's counts against what the last read's Services hold; whether all match.
    fn check_pool_accounting(&mut self, f: &Finals) -> bool {
        let mut accounting = true;
        for (pool, stats) in &f.pools {
            for (family, counts, v4) in [("IPv4", stats.ipv4, true), ("IPv6", stats.ipv6, false)] {
                let held: BTreeSet<IpAddr> = f
                    .read
                    .iter()
                    .filter(|(k, _)| f.read_pools.get(*k).is_some_and(|p| p == pool))
                    .flat_map(|(_, v)| v)
                    .filter(|a| a.is_ipv4() == v4)
                    .copied()
                    .collect();
                let in_use = held.len() as u128;
                if counts.in_use != in_use || counts.in_use + counts.available != counts.total {
                    accounting = false;
                    self.problems.push(format!(
                        "pool {pool} {family}: /v1/pools says {} in use, {} available of {}, but the Services hold {in_use}",
                        counts.in_use, counts.available, counts.total
                    ));
                }
            }
        }
        accounting
    }
}

fn first_difference(
    a: &BTreeMap<ServiceKey, Vec<IpAddr>>,
    b: &BTreeMap<ServiceKey, Vec<IpAddr>>,
) -> String {
    for (k, v) in a {
        match b.get(k) {
            None => return format!("{k} only here"),
            Some(w) if w != v => return format!("{k}: {v:?} here, {w:?} in the read"),
            _ => {}
        }
    }
    for k in b.keys() {
        if !a.contains_key(k) {
            return format!("{k} missing here");
        }
    }
    "no difference".into()
}

/// Whether Services holding one address may share it: one non-empty sharing key for all, and no
/// port and protocol used by two of them.
fn may_share(
    holders: &[&ServiceKey],
    requests: &BTreeMap<&ServiceKey, &AllocationRequest>,
) -> bool {
    let reqs: Vec<&AllocationRequest> = holders
        .iter()
        .filter_map(|k| requests.get(k).copied())
        .collect();
    if reqs.len() != holders.len() {
        return false;
    }
    let key = &reqs[0].sharing_key;
    if key.is_none() || reqs.iter().any(|r| r.sharing_key != *key) {
        return false;
    }
    let mut used = BTreeSet::new();
    reqs.iter()
        .flat_map(|r| r.ports.iter())
        .all(|p| used.insert((p.port, p.protocol)))
}

/// What `read` must show for the Service whose operations are `ops`, if anything is certain:
/// `None` when an operation on it overlaps the read, or one with an unknown outcome was invoked
/// within the quarantine before the read completed.
fn expected_at(ops: &[&Entry<'_>], read: &Entry<'_>, quarantine_ns: u64) -> Option<Known> {
    let (r_inv, r_ret) = (read.pair.invoke.time, read.ret());
    let mut known = Known::Absent;
    for op in ops {
        let inv = op.pair.invoke.time;
        if inv > r_ret {
            break;
        }
        let outcome = op.pair.outcome();
        if outcome == OpType::Info && r_ret.saturating_sub(inv) <= quarantine_ns {
            return None;
        }
        if op.ret() >= r_inv {
            // Overlaps the read: either order is possible.
            return None;
        }
        known = match (outcome, &op.what, &op.result) {
            (OpType::Fail, _, _) => known,
            (OpType::Info, _, _) => Known::Unknown,
            (_, What::Allocate(..), Some(AllocOutput::Allocated(a))) => {
                Known::Holds(sorted(a.clone()))
            }
            (_, What::Allocate(..), Some(AllocOutput::Refused)) => known,
            (_, What::Release(_), Some(AllocOutput::Released(_))) => Known::Absent,
            _ => Known::Unknown,
        };
    }
    Some(known)
}
