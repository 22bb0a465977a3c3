//! MetalLB's allocator tests, ported as data (`fixtures/metallb/*.yaml`) and run against
//! ironlb: the configuration goes through ironlb's own parser and validator (what `ironlb
//! check` runs), each Service through `requests_from_documents`, and each step through
//! `ipam::Allocator`. See docs/metallb-conformance.md.
//!
//! Every step either gives what MetalLB's test asserts or is listed in [`KNOWN_DIFFERENCES`]
//! with the reason; a listed entry that no longer differs fails the test too, so the list
//! stays honest. An entry names a step (`case#n`, n counted from 1 in the file) or a whole
//! case (`case`: at least one of its steps must differ).

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use ironlb::config::service::{is_load_balancer, requests_from_documents};
use ironlb::config::{self, Config, Documents};
use ironlb::ipam::{AllocationRequest, Allocator};
use ironlb::names::ServiceKey;
use serde::Deserialize;
use serde_json::{json, Map, Value};

/// Steps or cases where ironlb knowingly does not give what MetalLB's test asserts, and why.
const KNOWN_DIFFERENCES: &[(&str, &str)] = &[
    (
        "pool_allocation",
        "overlapping pools: MetalLB's test builds config.Pools by hand with four pools over the \
         same ranges; MetalLB's own parser refuses overlapping CIDRs (internal/config), and so \
         does ironlb's. Run with disjoint ranges as pool_allocation_disjoint",
    ),
    (
        "controller_mutation",
        "overlapping pools: pool5 repeats pool1's and pool3's ranges in a hand-built \
         config.Pools; both parsers refuse that. Run with pool5 moved as controller_mutation_*",
    ),
    (
        "controller_reassign",
        "a CIDR with host bits set (1000::1/127): Go's net.ParseCIDR, in MetalLB's test helper \
         and its parser, silently masks it to 1000::/127; ironlb refuses it and suggests the \
         masked form. Run masked as controller_reassign_masked",
    ),
    (
        "controller_dual_stack_config",
        "a CIDR with host bits set (1000::1/127), as controller_reassign. Run masked as \
         controller_dual_stack_config_masked",
    ),
    (
        "assignment#42",
        "two addresses for a Service with no ipFamilyPolicy: MetalLB's Assign checks only that \
         there are at most two, of different families; ironlb reads the Service as SingleStack \
         (Kubernetes' default) and refuses two families for it",
    ),
    (
        "controller_mutation_20",
        "no clusterIPs: MetalLB leaves the Service alone until Kubernetes gives it cluster IPs; \
         ironlb takes an unset ipFamilies as IPv4 (for hand-written manifests) and allocates",
    ),
    (
        "controller_mutation_40",
        "dual-stack address order: MetalLB lists IPv4 first; ironlb lists the Service's primary \
         family (ipFamilies[0], here IPv6) first",
    ),
];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Fixture {
    /// YAML anchors shared by the cases (address sets); not read otherwise.
    #[serde(default, rename = "x-sets")]
    _sets: Option<serde_yaml::Value>,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    /// Unique over all fixture files.
    id: String,
    /// The Go test function (and table) it comes from.
    go: String,
    /// ironlb configuration documents (IPAddressPools, Namespaces).
    config: String,
    steps: Vec<Step>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Step {
    /// The Go table entry's `desc` (or its index when it has none).
    desc: String,
    #[serde(default, rename = "do")]
    action: Action,
    svc: Option<Svc>,
    /// For `reload`: the new configuration.
    config: Option<String>,
    /// For `adopt`: the addresses the Service already holds.
    #[serde(default)]
    held: Vec<IpAddr>,
    #[serde(default)]
    expect: Expect,
}

#[derive(Deserialize, Default, Clone, Copy, PartialEq)]
#[serde(rename_all = "lowercase")]
enum Action {
    #[default]
    Allocate,
    Release,
    Adopt,
    Reload,
    /// What MetalLB's controller does with a Service and its status: a Service that is not
    /// of type LoadBalancer is released; one holding `held` (its status) keeps them if the
    /// configuration allows (`adopt`, a refusal ignored as the controller ignores an invalid
    /// status), then is allocated.
    Sync,
}

/// A Service, compactly; rendered as a core/v1 manifest for ironlb's parser.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Svc {
    ns: Option<String>,
    name: String,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    /// `spec.ipFamilyPolicy`.
    policy: Option<String>,
    /// `spec.ipFamilies`.
    #[serde(default)]
    families: Vec<String>,
    /// `metallb.io/loadBalancerIPs`.
    #[serde(default)]
    ips: Vec<String>,
    /// `spec.loadBalancerIP`.
    lb_ip: Option<String>,
    /// `metallb.io/address-pool`.
    pool: Option<String>,
    /// `metallb.io/allow-shared-ip`.
    share: Option<String>,
    /// `tcp/80` ...
    #[serde(default)]
    ports: Vec<String>,
    /// MetalLB's backend key: `externalTrafficPolicy: Local` with selector `app: <key>`.
    backend: Option<String>,
    /// `spec.type` (LoadBalancer when unset).
    #[serde(rename = "type")]
    kind: Option<String>,
}

/// What MetalLB's test asserts; nothing set means it asserts nothing (a release).
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Expect {
    /// Exactly these addresses (in this order).
    addrs: Option<Vec<IpAddr>>,
    /// An error.
    #[serde(default)]
    refused: bool,
    /// Success, every address one of these (MetalLB's `validIPs` maps).
    any_of: Option<Vec<IpAddr>>,
    /// After a reload: Service key -> the pool it is in, "" for none.
    pools: Option<BTreeMap<String, String>>,
    /// No error and no address: the Service is left alone or released.
    #[serde(default)]
    none: bool,
}

/// What ironlb did in a step (shown with Debug in mismatch messages).
#[derive(Debug)]
#[allow(dead_code)]
enum Outcome {
    Got(Vec<IpAddr>),
    Refused(String),
    Pools(BTreeMap<String, String>),
    Nothing,
}

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/metallb")
}

fn load_fixtures() -> Vec<(String, Fixture)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(fixture_dir())
        .expect("fixture directory")
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).expect("fixture readable");
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            let fixture: Fixture =
                serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
            (name, fixture)
        })
        .collect()
}

/// Parses and validates configuration text as `ironlb check` does.
fn parse_config(text: &str, origin: &str) -> Result<(Documents, Config), String> {
    let docs = Documents::from_str(text, origin)
        .into_result()
        .map_err(|e| e.to_string())?;
    let config = config::validate(&docs).map_err(|e| e.to_string())?;
    Ok((docs, config))
}

fn manifest(svc: &Svc) -> Value {
    let mut annotations = Map::new();
    if !svc.ips.is_empty() {
        annotations.insert(
            "metallb.io/loadBalancerIPs".into(),
            json!(svc.ips.join(",")),
        );
    }
    if let Some(p) = &svc.pool {
        annotations.insert("metallb.io/address-pool".into(), json!(p));
    }
    if let Some(k) = &svc.share {
        annotations.insert("metallb.io/allow-shared-ip".into(), json!(k));
    }
    let ports: Vec<Value> = svc
        .ports
        .iter()
        .map(|p| {
            let (proto, port) = p.split_once('/').expect("ports look like tcp/80");
            json!({"port": port.parse::<u16>().expect("port number"),
                   "protocol": proto.to_uppercase()})
        })
        .collect();
    let kind = svc.kind.as_deref().unwrap_or("LoadBalancer");
    let mut spec = json!({"type": kind, "ports": ports});
    let s = spec.as_object_mut().expect("object");
    if let Some(p) = &svc.policy {
        s.insert("ipFamilyPolicy".into(), json!(p));
    }
    if !svc.families.is_empty() {
        s.insert("ipFamilies".into(), json!(svc.families));
    }
    if let Some(ip) = &svc.lb_ip {
        s.insert("loadBalancerIP".into(), json!(ip));
    }
    if let Some(b) = &svc.backend {
        s.insert("externalTrafficPolicy".into(), json!("Local"));
        s.insert("selector".into(), json!({ "app": b }));
    }
    json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": svc.name, "namespace": svc.ns.as_deref().unwrap_or("default"),
                     "labels": svc.labels, "annotations": annotations},
        "spec": spec,
    })
}

/// The Service's request, through the same code as Service documents in `ironlb check`.
fn request(svc: &Svc, config: &Config) -> Result<AllocationRequest, String> {
    let text = serde_json::to_string(&manifest(svc)).expect("manifest serialises");
    let docs = Documents::from_str(&text, "service.json")
        .into_result()
        .map_err(|e| e.to_string())?;
    let (mut reqs, errs) = requests_from_documents(&docs, config);
    if !errs.is_empty() {
        let msgs: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
        return Err(format!("invalid Service: {}", msgs.join("; ")));
    }
    reqs.pop().ok_or_else(|| "no request".to_string())
}

fn key(svc: &Svc) -> ServiceKey {
    ServiceKey::new(svc.ns.as_deref().unwrap_or("default"), &svc.name).expect("service key")
}

/// The state a case runs in.
struct Run {
    config: Config,
    alloc: Allocator,
}

impl Run {
    fn new(config_text: &str) -> Result<Self, String> {
        let (_, config) = parse_config(config_text, "config.yaml")?;
        let alloc = Allocator::with_pools(config.pool_specs()).map_err(|e| e.to_string())?;
        Ok(Self { config, alloc })
    }

    fn step(&mut self, step: &Step) -> Outcome {
        let svc = step.svc.as_ref();
        match step.action {
            Action::Release => {
                self.alloc.release(&key(svc.expect("release names a svc")));
                Outcome::Nothing
            }
            Action::Reload => self.reload(step),
            Action::Sync => self.sync(step),
            Action::Allocate | Action::Adopt => {
                let svc = svc.expect("allocate names a svc");
                let req = match request(svc, &self.config) {
                    Ok(r) => r,
                    Err(e) => return Outcome::Refused(e),
                };
                let result = if step.action == Action::Adopt {
                    self.alloc.adopt(req, &step.held)
                } else {
                    self.alloc.allocate(req)
                };
                match result {
                    Ok(a) => Outcome::Got(a.addresses.clone()),
                    Err(r) => Outcome::Refused(r.to_string()),
                }
            }
        }
    }

    /// MetalLB's controller on one Service (see [`Action::Sync`]).
    fn sync(&mut self, step: &Step) -> Outcome {
        let svc = step.svc.as_ref().expect("sync names a svc");
        let text = serde_json::to_string(&manifest(svc)).expect("manifest serialises");
        let docs = Documents::from_str(&text, "service.json").into_result();
        let is_lb = docs.as_ref().ok().and_then(|d| d.services.first());
        if !is_lb.is_some_and(|s| is_load_balancer(&s.object)) {
            self.alloc.release(&key(svc));
            return Outcome::Nothing;
        }
        let req = match request(svc, &self.config) {
            Ok(r) => r,
            Err(e) => return Outcome::Refused(e),
        };
        if !step.held.is_empty() && self.alloc.adopt(req.clone(), &step.held).is_err() {
            self.alloc.release(&key(svc));
        }
        match self.alloc.allocate(req) {
            Ok(a) => Outcome::Got(a.addresses.clone()),
            Err(r) => Outcome::Refused(r.to_string()),
        }
    }

    /// Installs a new configuration; a Service is in no pool ("") when the new configuration
    /// forbids its allocation (MetalLB drops such an allocation).
    fn reload(&mut self, step: &Step) -> Outcome {
        let text = step.config.as_deref().expect("reload has a config");
        let (_, config) = match parse_config(text, "reload.yaml") {
            Ok(c) => c,
            Err(e) => return Outcome::Refused(e),
        };
        let recheck = match self.alloc.set_pools(config.pool_specs()) {
            Ok(r) => r,
            Err(e) => return Outcome::Refused(e.to_string()),
        };
        self.config = config;
        let forbidden: BTreeSet<String> = recheck
            .forbidden
            .iter()
            .map(|(k, _)| k.to_string())
            .collect();
        let pools = self
            .alloc
            .allocations()
            .map(|(k, a)| {
                let k = k.to_string();
                let pool = if forbidden.contains(&k) {
                    String::new()
                } else {
                    a.pool.to_string()
                };
                (k, pool)
            })
            .collect();
        Outcome::Pools(pools)
    }
}

/// Why the outcome is not what MetalLB's test asserts, if it is not.
fn mismatch(expect: &Expect, outcome: &Outcome) -> Option<String> {
    let bad = |what: &str| Some(format!("MetalLB expects {what}; ironlb: {outcome:?}"));
    if expect.refused {
        return (!matches!(outcome, Outcome::Refused(_)))
            .then(|| bad("an error"))
            .flatten();
    }
    if let Some(want) = &expect.addrs {
        let ok = matches!(outcome, Outcome::Got(got) if got == want);
        return (!ok).then(|| bad(&format!("{want:?}"))).flatten();
    }
    if let Some(set) = &expect.any_of {
        let ok = matches!(outcome, Outcome::Got(got) if got.iter().all(|a| set.contains(a)));
        return (!ok)
            .then(|| bad(&format!("addresses among {set:?}")))
            .flatten();
    }
    if let Some(want) = &expect.pools {
        let ok = match outcome {
            Outcome::Pools(got) => want
                .iter()
                .all(|(k, p)| got.get(k).map(String::as_str).unwrap_or("") == p),
            _ => false,
        };
        return (!ok).then(|| bad(&format!("pools {want:?}"))).flatten();
    }
    if expect.none && !matches!(outcome, Outcome::Nothing) {
        return bad("no address and no error");
    }
    None
}

/// Totals of a run.
struct Totals {
    /// Steps run.
    steps: usize,
    /// Steps of cases whose configuration ironlb refused.
    not_run: usize,
    /// Case id -> number of steps.
    cases: BTreeMap<String, usize>,
    /// Step id -> why it differs.
    mismatches: BTreeMap<String, String>,
}

/// Runs every case.
fn run_all() -> Totals {
    let mut steps = 0;
    let mut not_run = 0;
    let mut cases = BTreeMap::new();
    let mut mismatches = BTreeMap::new();
    for (file, fixture) in load_fixtures() {
        for case in &fixture.cases {
            assert!(
                !case.go.is_empty(),
                "{file}: case {} names no Go test",
                case.id
            );
            let dup = cases.insert(case.id.clone(), case.steps.len());
            assert!(dup.is_none(), "{file}: case id {} used twice", case.id);
            let mut run = match Run::new(&case.config) {
                Ok(r) => r,
                Err(e) => {
                    not_run += case.steps.len();
                    mismatches.insert(format!("{}#1", case.id), format!("config refused: {e}"));
                    continue;
                }
            };
            steps += case.steps.len();
            for (i, step) in case.steps.iter().enumerate() {
                let outcome = run.step(step);
                if let Some(m) = mismatch(&step.expect, &outcome) {
                    let id = format!("{}#{}", case.id, i + 1);
                    mismatches.insert(id, format!("{:?}: {m}", step.desc));
                }
            }
        }
    }
    Totals {
        steps,
        not_run,
        cases,
        mismatches,
    }
}

#[test]
fn metallb_allocator_cases() {
    let Totals {
        steps,
        not_run,
        cases,
        mismatches,
    } = run_all();
    let known: BTreeMap<&str, &str> = KNOWN_DIFFERENCES.iter().copied().collect();
    let case_of = |id: &str| id.split('#').next().unwrap_or(id).to_string();
    let mut failures = Vec::new();
    for (id, why) in &mismatches {
        if !known.contains_key(id.as_str()) && !known.contains_key(case_of(id).as_str()) {
            failures.push(format!("unlisted difference {id}: {why}"));
        }
    }
    for id in known.keys() {
        let still = if id.contains('#') {
            mismatches.contains_key(*id)
        } else {
            mismatches.keys().any(|m| case_of(m) == *id)
        };
        if !still {
            failures.push(format!(
                "{id} is listed in KNOWN_DIFFERENCES but now passes"
            ));
        }
    }
    let unlisted = failures
        .iter()
        .filter(|f| f.starts_with("unlisted"))
        .count();
    let refused = mismatches
        .values()
        .filter(|m| m.starts_with("config"))
        .count();
    let differ = mismatches.len() - refused;
    println!(
        "{} cases, {} steps; {steps} run: {} as MetalLB asserts, {differ} differ \
         ({unlisted} unlisted); {refused} configurations refused ({not_run} steps not run)",
        cases.len(),
        steps + not_run,
        steps - differ,
    );
    for (id, why) in &mismatches {
        println!("  {id}: {why}");
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
