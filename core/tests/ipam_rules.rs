//! Table tests for the allocator's rules, from MetalLB's documented behaviour and from what an
//! operator would expect. Every step of every case also checks the allocator's invariants.

mod common;

use common::*;
use ironlb::ipam::{AllocationRequest, Allocator, Family, FamilyPolicy, PoolSpec};

/// One step of a case and what it must give.
enum Op {
    /// Allocate; expect "pool addr[,addr]" or "err: <exact message>".
    Alloc(AllocationRequest, &'static str),
    /// Adopt these addresses; expectation as for Alloc.
    Adopt(AllocationRequest, &'static [&'static str], &'static str),
    /// Release a Service; expect what it held ("" for nothing).
    Release(&'static str, &'static str),
    /// Reserve an address for a Service; expect "ok" or "err: <message>".
    Reserve(&'static str, &'static str, &'static str),
    /// Remove a reservation; expect the Service it was for, or "err: <message>".
    Unreserve(&'static str, &'static str),
    /// Install pools; expect "kept=[..] rehomed=[..] forbidden=[..]" or "err: <message>".
    SetPools(Vec<PoolSpec>, &'static str),
    /// Expect a pool's counts for a family: (total, in use, available).
    Counts(&'static str, Family, (u128, u128, u128)),
    /// Expect the exact explanation text.
    Explain(AllocationRequest, &'static str),
}
use Op::*;

struct Case {
    name: &'static str,
    pools: Vec<PoolSpec>,
    ops: Vec<Op>,
}

fn case(name: &'static str, pools: Vec<PoolSpec>, ops: Vec<Op>) -> Case {
    Case { name, pools, ops }
}

fn show_alloc(r: Result<&ironlb::ipam::Allocation, ironlb::ipam::Refusal>) -> String {
    match r {
        Ok(a) => {
            let addrs: Vec<String> = a.addresses.iter().map(|a| a.to_string()).collect();
            format!("{} {}", a.pool, addrs.join(","))
        }
        Err(e) => format!("err: {e}"),
    }
}

fn run(c: Case) {
    let mut a = Allocator::with_pools(c.pools).expect("case pools install");
    for (i, op) in c.ops.into_iter().enumerate() {
        let (got, want) = match op {
            Alloc(req, want) => (show_alloc(a.allocate(req)), want.to_string()),
            Adopt(req, addrs, want) => {
                let addrs: Vec<_> = addrs.iter().map(|s| ip(s)).collect();
                (show_alloc(a.adopt(req, &addrs)), want.to_string())
            }
            Release(k, want) => {
                let got = a
                    .release(&key(k))
                    .map(|al| {
                        al.addresses
                            .iter()
                            .map(|a| a.to_string())
                            .collect::<Vec<_>>()
                            .join(",")
                    })
                    .unwrap_or_default();
                (got, want.to_string())
            }
            Reserve(addr, k, want) => {
                let got = match a.reserve(ip(addr), key(k)) {
                    Ok(()) => "ok".to_string(),
                    Err(e) => format!("err: {e}"),
                };
                (got, want.to_string())
            }
            Unreserve(addr, want) => {
                let got = match a.unreserve(ip(addr)) {
                    Ok(k) => k.to_string(),
                    Err(e) => format!("err: {e}"),
                };
                (got, want.to_string())
            }
            SetPools(pools, want) => {
                let got = match a.set_pools(pools) {
                    Ok(r) => {
                        let kept: Vec<String> = r.kept.iter().map(|k| k.to_string()).collect();
                        let rehomed: Vec<String> = r
                            .rehomed
                            .iter()
                            .map(|(k, from, to)| format!("{k}:{from}->{to}"))
                            .collect();
                        let forbidden: Vec<String> = r
                            .forbidden
                            .iter()
                            .map(|(k, why)| format!("{k}: {why}"))
                            .collect();
                        format!(
                            "kept=[{}] rehomed=[{}] forbidden=[{}]",
                            kept.join(" "),
                            rehomed.join(" "),
                            forbidden.join(" | ")
                        )
                    }
                    Err(e) => format!("err: {e}"),
                };
                (got, want.to_string())
            }
            Counts(p, family, want) => {
                let stats = a.stats();
                let c = stats
                    .get(&ironlb::names::PoolName::new(p).unwrap())
                    .expect("pool exists")
                    .family(family);
                (
                    format!("{:?}", (c.total, c.in_use, c.available)),
                    format!("{want:?}"),
                )
            }
            Explain(req, want) => (a.explain(&req).to_string(), want.to_string()),
        };
        assert_eq!(got, want, "case {:?}, step {}", c.name, i + 1);
        if let Err(e) = a.verify() {
            panic!("case {:?}, step {}: invariant broken: {e}", c.name, i + 1);
        }
    }
}

const V4: Family = Family::V4;
const V6: Family = Family::V6;
const PREFER: FamilyPolicy = FamilyPolicy::PreferDualStack;
const REQUIRE: FamilyPolicy = FamilyPolicy::RequireDualStack;

fn public() -> PoolSpec {
    pool("public", &["192.0.2.0/24"])
}

fn cases() -> Vec<Case> {
    vec![
        // ----- choosing addresses within a pool -----
        case("lowest free address first, .0 included without avoidBuggyIPs", vec![public()], vec![
            Alloc(svc("default/a"), "public 192.0.2.0"),
            Alloc(svc("default/b"), "public 192.0.2.1"),
        ]),
        case("avoidBuggyIPs skips .0", vec![public().avoid_buggy()], vec![
            Alloc(svc("default/a"), "public 192.0.2.1"),
        ]),
        case("avoidBuggyIPs skips .255 and the next .0", vec![
            pool("edge", &["192.0.2.254-192.0.2.255", "198.51.100.0-198.51.100.1"]).avoid_buggy(),
        ], vec![
            Alloc(svc("default/a"), "edge 192.0.2.254"),
            Alloc(svc("default/b"), "edge 198.51.100.1"),
            Alloc(svc("default/c"), "err: pool edge is full (2/2)"),
        ]),
        case("a full pool says so with its counts", vec![pool("public", &["192.0.2.0/30"])], vec![
            Alloc(svc("default/a"), "public 192.0.2.0"),
            Alloc(svc("default/b"), "public 192.0.2.1"),
            Alloc(svc("default/c"), "public 192.0.2.2"),
            Alloc(svc("default/d"), "public 192.0.2.3"),
            Alloc(svc("default/e"), "err: pool public is full (4/4)"),
            Counts("public", V4, (4, 4, 0)),
        ]),
        case("avoidBuggyIPs counts only addresses it hands out", vec![pool("public", &["192.0.2.252/30"]).avoid_buggy()], vec![
            Counts("public", V4, (3, 0, 3)),
            Alloc(svc("default/a"), "public 192.0.2.252"),
            Alloc(svc("default/b"), "public 192.0.2.253"),
            Alloc(svc("default/c"), "public 192.0.2.254"),
            Alloc(svc("default/d"), "err: pool public is full (3/3)"),
        ]),
        case("a released address is the next one handed out", vec![public()], vec![
            Alloc(svc("default/a"), "public 192.0.2.0"),
            Alloc(svc("default/b"), "public 192.0.2.1"),
            Release("default/a", "192.0.2.0"),
            Alloc(svc("default/c"), "public 192.0.2.0"),
            Counts("public", V4, (256, 2, 254)),
        ]),
        case("allocating twice is idempotent", vec![public()], vec![
            Alloc(svc("default/a").tcp(80), "public 192.0.2.0"),
            Alloc(svc("default/a").tcp(80), "public 192.0.2.0"),
            Counts("public", V4, (256, 1, 255)),
        ]),
        case("releasing an unknown Service does nothing", vec![public()], vec![
            Release("default/ghost", ""),
        ]),
        case("ranges are used lowest address first, whatever their order", vec![
            pool("public", &["198.51.100.10-198.51.100.11", "192.0.2.100/31"]),
        ], vec![
            Alloc(svc("default/a"), "public 192.0.2.100"),
            Alloc(svc("default/b"), "public 192.0.2.101"),
            Alloc(svc("default/c"), "public 198.51.100.10"),
        ]),
        case("no pools at all", vec![], vec![
            Alloc(svc("default/a"), "err: no address pools are configured"),
        ]),
        // ----- requested addresses -----
        case("a requested address is given and auto-allocation goes around it", vec![public()], vec![
            Alloc(svc("default/a").ips(&["192.0.2.0"]), "public 192.0.2.0"),
            Alloc(svc("default/b"), "public 192.0.2.1"),
        ]),
        case("a requested address outside every pool", vec![public()], vec![
            Alloc(svc("default/a").ips(&["198.51.100.7"]), "err: 198.51.100.7 is not in any pool"),
        ]),
        case("a requested address in a pool that is not auto-assigned", vec![public(), pool("manual", &["198.51.100.0/24"]).manual()], vec![
            Alloc(svc("default/a").ips(&["198.51.100.7"]), "manual 198.51.100.7"),
        ]),
        case("a requested address held by a Service that does not share", vec![public()], vec![
            Alloc(svc("default/a").ips(&["192.0.2.7"]), "public 192.0.2.7"),
            Alloc(svc("default/b").ips(&["192.0.2.7"]), "err: 192.0.2.7 is used by default/a, which does not allow sharing"),
        ]),
        case("a requested .0 in a pool that avoids it", vec![public().avoid_buggy()], vec![
            Alloc(svc("default/a").ips(&["192.0.2.0"]), "err: 192.0.2.0 ends in .0 or .255, which pool public avoids (avoidBuggyIPs)"),
            Alloc(svc("default/a").ips(&["192.0.2.255"]), "err: 192.0.2.255 ends in .0 or .255, which pool public avoids (avoidBuggyIPs)"),
        ]),
        case("a requested address outside the requested pool", vec![public(), pool("other", &["198.51.100.0/24"])], vec![
            Alloc(svc("default/a").ips(&["192.0.2.7"]).in_pool("other"), "err: 192.0.2.7 is in pool public, not in the requested pool other"),
            Alloc(svc("default/a").ips(&["192.0.2.7"]).in_pool("public"), "public 192.0.2.7"),
        ]),
        case("a requested address changes: the Service moves", vec![public()], vec![
            Alloc(svc("default/a"), "public 192.0.2.0"),
            Alloc(svc("default/a").ips(&["192.0.2.5"]), "public 192.0.2.5"),
            Alloc(svc("default/b"), "public 192.0.2.0"),
        ]),
        case("a refused change leaves the Service where it was", vec![public()], vec![
            Alloc(svc("default/a"), "public 192.0.2.0"),
            Alloc(svc("default/b").ips(&["192.0.2.9"]), "public 192.0.2.9"),
            Alloc(svc("default/a").ips(&["192.0.2.9"]), "err: 192.0.2.9 is used by default/b, which does not allow sharing"),
            Release("default/a", "192.0.2.0"),
        ]),
        case("two addresses of one family", vec![public()], vec![
            Alloc(svc("default/a").families(PREFER, &[V4]).ips(&["192.0.2.5", "192.0.2.6"]), "err: 192.0.2.5 and 192.0.2.6 are both IPv4; ask for at most one address per family"),
        ]),
        case("an address of a family the Service does not have", vec![pool("dual", &["192.0.2.0/24", "2001:db8::/64"])], vec![
            Alloc(svc("default/a").ips(&["2001:db8::5"]), "err: requested address 2001:db8::5 is IPv6, but the Service's ipFamilies are IPv4"),
        ]),
        case("RequireDualStack with one requested address", vec![pool("dual", &["192.0.2.0/24", "2001:db8::/64"])], vec![
            Alloc(svc("default/a").families(REQUIRE, &[V4, V6]).ips(&["192.0.2.5"]), "err: ipFamilyPolicy RequireDualStack does not fit 1 requested address(es)"),
        ]),
        case("the same address twice", vec![public()], vec![
            Alloc(svc("default/a").families(PREFER, &[V4]).ips(&["192.0.2.5", "192.0.2.5"]), "err: 192.0.2.5 is requested twice"),
        ]),
        case("requested dual-stack addresses", vec![pool("dual", &["192.0.2.0/24", "2001:db8::/64"])], vec![
            Alloc(svc("default/a").families(REQUIRE, &[V6, V4]).ips(&["192.0.2.5", "2001:db8::5"]), "dual 2001:db8::5,192.0.2.5"),
        ]),
        case("requested addresses in two pools", vec![pool("p4", &["192.0.2.0/24"]), pool("p6", &["2001:db8::/64"])], vec![
            Alloc(svc("default/a").families(REQUIRE, &[V4, V6]).ips(&["192.0.2.5", "2001:db8::5"]), "err: 192.0.2.5 is in pool p4 but 2001:db8::5 is in pool p6; a Service's addresses come from one pool"),
        ]),
        // ----- requested pools -----
        case("an unknown pool", vec![public()], vec![
            Alloc(svc("default/a").in_pool("nope"), "err: pool nope does not exist"),
        ]),
        case("a pool that is not auto-assigned can be asked for by name", vec![public(), pool("manual", &["198.51.100.0/24"]).manual()], vec![
            Alloc(svc("default/a").in_pool("manual"), "manual 198.51.100.0"),
            Alloc(svc("default/b"), "public 192.0.2.0"),
        ]),
        case("a pool that is not auto-assigned is never chosen alone", vec![pool("manual", &["198.51.100.0/24"]).manual()], vec![
            Alloc(svc("default/a"), "err: no pool is auto-assigned; name one with the address-pool annotation (pool manual is not auto-assigned (autoAssign: false) and was not asked for)"),
        ]),
        case("a requested pool that is full does not spill over", vec![pool("small", &["198.51.100.0/32"]), public()], vec![
            Alloc(svc("default/a").in_pool("small"), "small 198.51.100.0"),
            Alloc(svc("default/b").in_pool("small"), "err: pool small is full (1/1)"),
        ]),
        case("changing the requested pool moves the Service", vec![public(), pool("other", &["198.51.100.0/24"])], vec![
            Alloc(svc("default/a"), "other 198.51.100.0"),
            Alloc(svc("default/a").in_pool("public"), "public 192.0.2.0"),
            Counts("other", V4, (256, 0, 256)),
        ]),
        // ----- serviceAllocation -----
        case("a namespace's pool is preferred; others use the plain pool", vec![public(), pool("gold", &["198.51.100.0/24"]).namespaces(&["prod"]).priority(1)], vec![
            Alloc(svc("prod/a"), "gold 198.51.100.0"),
            Alloc(svc("default/b"), "public 192.0.2.0"),
        ]),
        case("no pool admits a namespace", vec![pool("gold", &["198.51.100.0/24"]).namespaces(&["prod"])], vec![
            Alloc(svc("kube-system/dns"), "err: no pool admits namespace kube-system (pool gold does not admit namespace kube-system)"),
        ]),
        case("a namespace selector admits by namespace labels", vec![public(), pool("team", &["198.51.100.0/24"]).namespace_selector(&[("team", "a")])], vec![
            Alloc(svc("apps/a").ns_labels(&[("team", "a")]), "team 198.51.100.0"),
            Alloc(svc("apps/b").ns_labels(&[("team", "b")]), "public 192.0.2.0"),
        ]),
        case("namespaces and namespace selectors admit either way", vec![pool("team", &["198.51.100.0/24"]).namespaces(&["listed"]).namespace_selector(&[("team", "a")])], vec![
            Alloc(svc("listed/a"), "team 198.51.100.0"),
            Alloc(svc("other/b").ns_labels(&[("team", "a")]), "team 198.51.100.1"),
            Alloc(svc("other/c"), "err: no pool admits namespace other (pool team does not admit namespace other)"),
        ]),
        case("service selectors and namespaces must both hold", vec![public(), pool("web", &["198.51.100.0/24"]).namespaces(&["prod"]).service_selector(&[("app", "web")])], vec![
            Alloc(svc("prod/a").labels(&[("app", "web")]), "web 198.51.100.0"),
            Alloc(svc("prod/b"), "public 192.0.2.0"),
            Alloc(svc("dev/c").labels(&[("app", "web")]), "public 192.0.2.1"),
        ]),
        case("any one service selector suffices", vec![pool("web", &["198.51.100.0/24"]).service_selector(&[("app", "web")]).service_selector(&[("app", "api")])], vec![
            Alloc(svc("prod/a").labels(&[("app", "api")]), "web 198.51.100.0"),
            Alloc(svc("prod/b").labels(&[("app", "db")]), "err: no pool admits this Service (pool web does not admit the Service's labels)"),
        ]),
        case("lower priority numbers are tried first", vec![pool("b-second", &["198.51.100.0/24"]).priority(2).namespaces(&["prod"]), pool("z-first", &["203.0.113.0/24"]).priority(1).namespaces(&["prod"])], vec![
            Alloc(svc("prod/a"), "z-first 203.0.113.0"),
        ]),
        case("priority 0 comes after every positive priority", vec![pool("a-unset", &["198.51.100.0/24"]).namespaces(&["prod"]), pool("b-five", &["203.0.113.0/24"]).priority(5).namespaces(&["prod"])], vec![
            Alloc(svc("prod/a"), "b-five 203.0.113.0"),
        ]),
        case("equal priorities go by pool name", vec![pool("beta", &["198.51.100.0/24"]).priority(1).namespaces(&["prod"]), pool("alpha", &["203.0.113.0/24"]).priority(1).namespaces(&["prod"])], vec![
            Alloc(svc("prod/a"), "alpha 203.0.113.0"),
        ]),
        case("matching pools come before plain pools whatever their names", vec![pool("aaa", &["192.0.2.0/24"]), pool("zzz", &["198.51.100.0/24"]).namespaces(&["prod"])], vec![
            Alloc(svc("prod/a"), "zzz 198.51.100.0"),
        ]),
        case("a full matching pool falls through to the next, then to plain pools", vec![public(), pool("gold", &["198.51.100.0/32"]).priority(1).namespaces(&["prod"]), pool("silver", &["203.0.113.0/32"]).priority(2).namespaces(&["prod"])], vec![
            Alloc(svc("prod/a"), "gold 198.51.100.0"),
            Alloc(svc("prod/b"), "silver 203.0.113.0"),
            Alloc(svc("prod/c"), "public 192.0.2.0"),
        ]),
        case("a pool named by a Service it does not admit", vec![public(), pool("gold", &["198.51.100.0/24"]).namespaces(&["prod"])], vec![
            Alloc(svc("default/a").in_pool("gold"), "err: pool gold does not admit namespace default"),
        ]),
        case("an address asked for in a pool that does not admit the Service", vec![pool("gold", &["198.51.100.0/24"]).namespaces(&["prod"])], vec![
            Alloc(svc("default/a").ips(&["198.51.100.9"]), "err: pool gold does not admit namespace default"),
        ]),
        case("a serviceAllocation with only a priority admits everyone, ahead of plain pools", vec![public(), pool("preferred", &["198.51.100.0/24"]).priority(1)], vec![
            Alloc(svc("default/a"), "preferred 198.51.100.0"),
        ]),
        case("a restricted pool that is not auto-assigned is not pinned", vec![public(), pool("gold", &["198.51.100.0/24"]).namespaces(&["prod"]).manual()], vec![
            Alloc(svc("prod/a"), "public 192.0.2.0"),
            Alloc(svc("prod/b").in_pool("gold"), "gold 198.51.100.0"),
        ]),
        // ----- families -----
        case("an IPv6 Service in a dual pool", vec![pool("dual", &["192.0.2.0/24", "2001:db8::/64"])], vec![
            Alloc(svc("default/a").v6(), "dual 2001:db8::"),
            Counts("dual", V6, (1 << 64, 1, (1 << 64) - 1)),
        ]),
        case("an IPv6 Service and an IPv4-only pool", vec![public()], vec![
            Alloc(svc("default/a").v6(), "err: pool public has no IPv6 addresses"),
        ]),
        case("IPv6 Services skip IPv4 pools", vec![pool("a4", &["192.0.2.0/24"]), pool("b6", &["2001:db8::/120"])], vec![
            Alloc(svc("default/a").v6(), "b6 2001:db8::"),
        ]),
        case("RequireDualStack gets both, primary first", vec![pool("dual", &["192.0.2.0/24", "2001:db8::/64"])], vec![
            Alloc(svc("default/a").families(REQUIRE, &[V4, V6]), "dual 192.0.2.0,2001:db8::"),
            Alloc(svc("default/b").families(REQUIRE, &[V6, V4]), "dual 2001:db8::1,192.0.2.1"),
        ]),
        case("RequireDualStack never splits across pools", vec![pool("p4", &["192.0.2.0/24"]), pool("p6", &["2001:db8::/64"])], vec![
            Alloc(svc("default/a").families(REQUIRE, &[V4, V6]), "err: no pool has room: pool p4 has no IPv6 addresses; pool p6 has no IPv4 addresses"),
        ]),
        case("RequireDualStack with one family full", vec![pool("dual", &["192.0.2.0/32", "2001:db8::/64"])], vec![
            Alloc(svc("default/a"), "dual 192.0.2.0"),
            Alloc(svc("default/b").families(REQUIRE, &[V4, V6]), "err: pool dual is full for IPv4 (1/1)"),
        ]),
        case("PreferDualStack with an IPv4-only pool gets IPv4", vec![public()], vec![
            Alloc(svc("default/a").families(PREFER, &[V4, V6]), "public 192.0.2.0"),
        ]),
        case("PreferDualStack prefers a dual pool over an earlier single one", vec![pool("a4", &["198.51.100.0/24"]), pool("b-dual", &["192.0.2.0/24", "2001:db8::/64"])], vec![
            Alloc(svc("default/a").families(PREFER, &[V4, V6]), "b-dual 192.0.2.0,2001:db8::"),
        ]),
        case("PreferDualStack without a dual pool takes the primary family first", vec![pool("a4", &["192.0.2.0/24"]), pool("b6", &["2001:db8::/64"])], vec![
            Alloc(svc("default/a").families(PREFER, &[V6, V4]), "b6 2001:db8::"),
            Alloc(svc("default/b").families(PREFER, &[V4, V6]), "a4 192.0.2.0"),
        ]),
        case("PreferDualStack gains the other family when its pool gets one", vec![public()], vec![
            Alloc(svc("default/a").families(PREFER, &[V4, V6]), "public 192.0.2.0"),
            SetPools(vec![pool("public", &["192.0.2.0/24", "2001:db8::/64"])], "kept=[default/a] rehomed=[] forbidden=[]"),
            Alloc(svc("default/a").families(PREFER, &[V4, V6]), "public 192.0.2.0,2001:db8::"),
        ]),
        case("a Service that changes family moves", vec![pool("dual", &["192.0.2.0/24", "2001:db8::/64"])], vec![
            Alloc(svc("default/a"), "dual 192.0.2.0"),
            Alloc(svc("default/a").v6(), "dual 2001:db8::"),
            Counts("dual", V4, (256, 0, 256)),
        ]),
        // ----- sharing -----
        case("the same key and different ports share", vec![public()], vec![
            Alloc(svc("default/a").share("k").tcp(80), "public 192.0.2.0"),
            Alloc(svc("default/b").share("k").tcp(443), "public 192.0.2.0"),
            Counts("public", V4, (256, 1, 255)),
        ]),
        case("sharers gather even when a lower address is free", vec![public()], vec![
            Alloc(svc("default/x"), "public 192.0.2.0"),
            Alloc(svc("default/a").share("k").tcp(80), "public 192.0.2.1"),
            Release("default/x", "192.0.2.0"),
            Alloc(svc("default/b").share("k").tcp(443), "public 192.0.2.1"),
        ]),
        case("the same port does not share", vec![public()], vec![
            Alloc(svc("default/a").share("k").tcp(80), "public 192.0.2.0"),
            Alloc(svc("default/b").share("k").tcp(80), "public 192.0.2.1"),
        ]),
        case("TCP and UDP on the same port share", vec![public()], vec![
            Alloc(svc("default/dns-tcp").share("dns").tcp(53), "public 192.0.2.0"),
            Alloc(svc("default/dns-udp").share("dns").udp(53), "public 192.0.2.0"),
        ]),
        case("different keys do not share", vec![public()], vec![
            Alloc(svc("default/a").share("k").tcp(80), "public 192.0.2.0"),
            Alloc(svc("default/b").share("j").tcp(443), "public 192.0.2.1"),
        ]),
        case("a requested shared address with a port in use", vec![public()], vec![
            Alloc(svc("default/web").share("k").tcp(80), "public 192.0.2.0"),
            Alloc(svc("default/b").share("k").tcp(80).ips(&["192.0.2.0"]), "err: 192.0.2.0 is used by default/web on 80/TCP"),
        ]),
        case("a requested address whose holder shares but the requester does not", vec![public()], vec![
            Alloc(svc("default/a").share("k").tcp(80), "public 192.0.2.0"),
            Alloc(svc("default/b").tcp(443).ips(&["192.0.2.0"]), "err: 192.0.2.0 is used by default/a, and sharing it needs the same allow-shared-ip key on both"),
        ]),
        case("a requested address under another key", vec![public()], vec![
            Alloc(svc("default/a").share("k").tcp(80), "public 192.0.2.0"),
            Alloc(svc("default/b").share("j").tcp(443).ips(&["192.0.2.0"]), "err: 192.0.2.0 is used by default/a with sharing key \"k\", not \"j\""),
        ]),
        case("Local and Cluster Services do not share", vec![public()], vec![
            Alloc(svc("default/a").share("k").tcp(80).local(&[("app", "web")]), "public 192.0.2.0"),
            Alloc(svc("default/b").share("k").tcp(443).selector(&[("app", "web")]).ips(&["192.0.2.0"]), "err: 192.0.2.0 is used by default/a, and Services sharing an address with externalTrafficPolicy Local must both be Local and select the same pods"),
        ]),
        case("Local Services selecting the same pods share", vec![public()], vec![
            Alloc(svc("default/a").share("k").tcp(80).local(&[("app", "web")]), "public 192.0.2.0"),
            Alloc(svc("default/b").share("k").tcp(443).local(&[("app", "web")]), "public 192.0.2.0"),
        ]),
        case("Local Services selecting different pods do not share", vec![public()], vec![
            Alloc(svc("default/a").share("k").tcp(80).local(&[("app", "web")]), "public 192.0.2.0"),
            Alloc(svc("default/b").share("k").tcp(443).local(&[("app", "api")]), "public 192.0.2.1"),
        ]),
        case("Cluster Services share whatever their selectors", vec![public()], vec![
            Alloc(svc("default/a").share("k").tcp(80).selector(&[("app", "web")]), "public 192.0.2.0"),
            Alloc(svc("default/b").share("k").tcp(443).selector(&[("app", "api")]), "public 192.0.2.0"),
        ]),
        case("a sole holder changes its key and ports in place", vec![public()], vec![
            Alloc(svc("default/a").share("k").tcp(80), "public 192.0.2.0"),
            Alloc(svc("default/a").share("j").tcp(8080), "public 192.0.2.0"),
            Alloc(svc("default/b").share("j").tcp(80), "public 192.0.2.0"),
        ]),
        case("a sharer that changes its key leaves the shared address", vec![public()], vec![
            Alloc(svc("default/a").share("k").tcp(80), "public 192.0.2.0"),
            Alloc(svc("default/b").share("k").tcp(443), "public 192.0.2.0"),
            Alloc(svc("default/a").share("j").tcp(80), "public 192.0.2.1"),
            Counts("public", V4, (256, 2, 254)),
        ]),
        case("a shared address is freed with its last holder", vec![public()], vec![
            Alloc(svc("default/a").share("k").tcp(80), "public 192.0.2.0"),
            Alloc(svc("default/b").share("k").tcp(443), "public 192.0.2.0"),
            Release("default/a", "192.0.2.0"),
            Counts("public", V4, (256, 1, 255)),
            Release("default/b", "192.0.2.0"),
            Counts("public", V4, (256, 0, 256)),
        ]),
        case("a sharer may not take a port a co-holder gains", vec![public()], vec![
            Alloc(svc("default/a").share("k").tcp(80), "public 192.0.2.0"),
            Alloc(svc("default/b").share("k").tcp(443), "public 192.0.2.0"),
            Alloc(svc("default/b").share("k").tcp(80), "public 192.0.2.1"),
        ]),
        // ----- reservations -----
        case("a reserved address waits for its Service, across releases", vec![public()], vec![
            Reserve("192.0.2.0", "default/a", "ok"),
            Alloc(svc("default/b"), "public 192.0.2.1"),
            Alloc(svc("default/a"), "public 192.0.2.0"),
            Release("default/a", "192.0.2.0"),
            Alloc(svc("default/c"), "public 192.0.2.2"),
            Counts("public", V4, (256, 3, 253)),
            Alloc(svc("default/a"), "public 192.0.2.0"),
        ]),
        case("a reserved address refuses others who ask for it", vec![public()], vec![
            Reserve("192.0.2.9", "default/a", "ok"),
            Alloc(svc("default/b").ips(&["192.0.2.9"]), "err: 192.0.2.9 is reserved for default/a"),
            Reserve("192.0.2.9", "default/b", "err: 192.0.2.9 is already reserved for default/a"),
            Reserve("192.0.2.9", "default/a", "ok"),
        ]),
        case("an address held by another cannot be reserved", vec![public()], vec![
            Alloc(svc("default/b"), "public 192.0.2.0"),
            Reserve("192.0.2.0", "default/a", "err: 192.0.2.0 is held by default/b"),
            Reserve("192.0.2.0", "default/b", "ok"),
            Release("default/b", "192.0.2.0"),
            Alloc(svc("default/c"), "public 192.0.2.1"),
        ]),
        case("unreserving frees the address", vec![public()], vec![
            Reserve("192.0.2.0", "default/a", "ok"),
            Unreserve("192.0.2.0", "default/a"),
            Unreserve("192.0.2.0", "err: 192.0.2.0 is not reserved"),
            Alloc(svc("default/b"), "public 192.0.2.0"),
        ]),
        case("unreserving a held address leaves it held", vec![public()], vec![
            Reserve("192.0.2.0", "default/a", "ok"),
            Alloc(svc("default/a"), "public 192.0.2.0"),
            Unreserve("192.0.2.0", "default/a"),
            Counts("public", V4, (256, 1, 255)),
            Release("default/a", "192.0.2.0"),
            Counts("public", V4, (256, 0, 256)),
        ]),
        case("reservations outside every pool are refused", vec![public()], vec![
            Reserve("198.51.100.1", "default/a", "err: 198.51.100.1 is not in any pool"),
        ]),
        // ----- adoption -----
        case("adopting an address a Service already has", vec![public()], vec![
            Adopt(svc("default/a").tcp(80), &["192.0.2.9"], "public 192.0.2.9"),
            Alloc(svc("default/b"), "public 192.0.2.0"),
            Alloc(svc("default/a").tcp(80), "public 192.0.2.9"),
        ]),
        case("adopting into a pool that is not auto-assigned", vec![pool("manual", &["192.0.2.0/24"]).manual()], vec![
            Adopt(svc("default/a"), &["192.0.2.9"], "manual 192.0.2.9"),
        ]),
        case("adopting an address someone else holds", vec![public()], vec![
            Alloc(svc("default/a").tcp(80), "public 192.0.2.0"),
            Adopt(svc("default/b").tcp(80), &["192.0.2.0"], "err: 192.0.2.0 is used by default/a, which does not allow sharing"),
        ]),
        case("adopting outside the pools or on an avoided address", vec![public().avoid_buggy()], vec![
            Adopt(svc("default/a"), &["198.51.100.4"], "err: 198.51.100.4 is not in any pool"),
            Adopt(svc("default/a"), &["192.0.2.255"], "err: 192.0.2.255 ends in .0 or .255, which pool public avoids (avoidBuggyIPs)"),
        ]),
        case("adopting other addresses than the ones held", vec![public()], vec![
            Alloc(svc("default/a"), "public 192.0.2.0"),
            Adopt(svc("default/a"), &["192.0.2.0"], "public 192.0.2.0"),
            Adopt(svc("default/a"), &["192.0.2.5"], "err: the Service already holds 192.0.2.0"),
        ]),
        case("adopting dual-stack addresses", vec![pool("dual", &["192.0.2.0/24", "2001:db8::/64"])], vec![
            Adopt(svc("default/a").families(REQUIRE, &[V4, V6]), &["2001:db8::7", "192.0.2.7"], "dual 192.0.2.7,2001:db8::7"),
        ]),
        // ----- configuration changes -----
        case("an allocation the new pools still allow is kept", vec![public()], vec![
            Alloc(svc("default/a"), "public 192.0.2.0"),
            SetPools(vec![pool("public", &["192.0.2.0/24", "198.51.100.0/24"])], "kept=[default/a] rehomed=[] forbidden=[]"),
            Alloc(svc("default/b"), "public 192.0.2.1"),
        ]),
        case("a renamed pool keeps its allocations", vec![public()], vec![
            Alloc(svc("default/a"), "public 192.0.2.0"),
            SetPools(vec![pool("renamed", &["192.0.2.0/24"])], "kept=[] rehomed=[default/a:public->renamed] forbidden=[]"),
            Alloc(svc("default/a"), "renamed 192.0.2.0"),
        ]),
        case("a removed pool forbids its allocations, which keep their addresses until moved", vec![public(), pool("other", &["198.51.100.0/24"])], vec![
            Alloc(svc("default/a"), "other 198.51.100.0"),
            SetPools(vec![public()], "kept=[] rehomed=[] forbidden=[default/a: 198.51.100.0 is not in any pool]"),
            Alloc(svc("default/a"), "public 192.0.2.0"),
        ]),
        case("a new namespace restriction forbids", vec![public()], vec![
            Alloc(svc("default/a"), "public 192.0.2.0"),
            Alloc(svc("prod/b"), "public 192.0.2.1"),
            SetPools(vec![public().namespaces(&["prod"])], "kept=[prod/b] rehomed=[] forbidden=[default/a: pool public does not admit namespace default]"),
            Alloc(svc("default/c"), "err: no pool admits namespace default (pool public does not admit namespace default)"),
            Alloc(svc("prod/d"), "public 192.0.2.2"),
        ]),
        case("turning on avoidBuggyIPs forbids a .0", vec![public()], vec![
            Alloc(svc("default/a"), "public 192.0.2.0"),
            SetPools(vec![public().avoid_buggy()], "kept=[] rehomed=[] forbidden=[default/a: 192.0.2.0 ends in .0 or .255, which pool public avoids (avoidBuggyIPs)]"),
            Alloc(svc("default/a"), "public 192.0.2.1"),
            Counts("public", V4, (254, 1, 253)),
        ]),
        case("turning autoAssign off keeps allocations", vec![public()], vec![
            Alloc(svc("default/a"), "public 192.0.2.0"),
            SetPools(vec![public().manual()], "kept=[default/a] rehomed=[] forbidden=[]"),
        ]),
        case("a shrunk pool keeps what is inside it", vec![public()], vec![
            Alloc(svc("default/a").ips(&["192.0.2.200"]), "public 192.0.2.200"),
            Alloc(svc("default/b"), "public 192.0.2.0"),
            SetPools(vec![pool("public", &["192.0.2.0/25"])], "kept=[default/b] rehomed=[] forbidden=[default/a: 192.0.2.200 is not in any pool]"),
            Counts("public", V4, (128, 1, 127)),
        ]),
        case("overlapping pools are refused and the old ones stay", vec![public()], vec![
            SetPools(vec![public(), pool("other", &["192.0.2.128/25"])], "err: 192.0.2.0/24 of pool public overlaps 192.0.2.128/25 of pool other"),
            Alloc(svc("default/a"), "public 192.0.2.0"),
        ]),
        case("a reservation survives the loss of its pool", vec![public()], vec![
            Reserve("192.0.2.0", "default/a", "ok"),
            SetPools(vec![pool("other", &["198.51.100.0/24"])], "kept=[] rehomed=[] forbidden=[]"),
            SetPools(vec![public()], "kept=[] rehomed=[] forbidden=[]"),
            Alloc(svc("default/b"), "public 192.0.2.1"),
            Alloc(svc("default/a"), "public 192.0.2.0"),
        ]),
        // ----- explain -----
        case("explain a plain allocation", vec![public()], vec![
            Explain(svc("default/a"), "default/a gets 192.0.2.0 (lowest free address) from pool public"),
        ]),
        case("explain keeps and shares", vec![public()], vec![
            Alloc(svc("default/a").share("k").tcp(80), "public 192.0.2.0"),
            Explain(svc("default/a").share("k").tcp(80), "default/a keeps 192.0.2.0 (already held) from pool public"),
            Explain(svc("default/b").share("k").tcp(443), "default/b gets 192.0.2.0 (shared under its sharing key) from pool public"),
        ]),
        case("explain names the pools passed over", vec![public(), pool("gold", &["198.51.100.0/32"]).namespaces(&["prod"])], vec![
            Alloc(svc("prod/a"), "gold 198.51.100.0"),
            Explain(svc("prod/b"), "prod/b gets 192.0.2.0 (lowest free address) from pool public; pool gold passed over: it is full (1/1)"),
        ]),
        case("explain a full pool", vec![pool("public", &["192.0.2.0/32"])], vec![
            Alloc(svc("default/a"), "public 192.0.2.0"),
            Explain(svc("default/b"), "default/b gets no address: pool public is full (1/1)"),
        ]),
        case("explain a port conflict", vec![public()], vec![
            Alloc(svc("default/web").share("k").tcp(80).ips(&["192.0.2.7"]), "public 192.0.2.7"),
            Explain(svc("default/b").share("k").tcp(80).ips(&["192.0.2.7"]), "default/b gets no address: 192.0.2.7 is used by default/web on 80/TCP"),
        ]),
        case("explain a reserved and a requested address", vec![public()], vec![
            Reserve("192.0.2.3", "default/a", "ok"),
            Explain(svc("default/a"), "default/a gets 192.0.2.3 (reserved for it) from pool public"),
            Explain(svc("default/b").ips(&["192.0.2.4"]), "default/b gets 192.0.2.4 (requested) from pool public"),
        ]),
        case("explain every pool when none admits", vec![pool("gold", &["198.51.100.0/24"]).namespaces(&["prod"]), pool("manual", &["192.0.2.0/24"]).manual()], vec![
            Explain(svc("kube-system/dns"), "kube-system/dns gets no address: no pool admits namespace kube-system (pool gold does not admit namespace kube-system; pool manual is not auto-assigned (autoAssign: false) and was not asked for)"),
        ]),
        case("explain changes nothing", vec![pool("public", &["192.0.2.0/32"])], vec![
            Explain(svc("default/a"), "default/a gets 192.0.2.0 (lowest free address) from pool public"),
            Counts("public", V4, (1, 0, 1)),
        ]),
    ]
}

#[test]
fn allocate_all_serves_requested_addresses_first_whatever_the_order_given() {
    let mut a = Allocator::with_pools(vec![pool("public", &["192.0.2.0/31"])]).unwrap();
    let results = a.allocate_all(vec![
        svc("default/auto"),
        svc("default/pinned").ips(&["192.0.2.0"]),
        svc("default/late"),
    ]);
    let shown: Vec<String> = results.iter().map(|e| e.to_string()).collect();
    assert_eq!(
        shown,
        [
            "default/pinned gets 192.0.2.0 (requested) from pool public",
            "default/auto gets 192.0.2.1 (lowest free address) from pool public",
            "default/late gets no address: pool public is full (2/2)"
        ]
    );
    assert_eq!(a.allocation_count(), 2);
}

#[test]
fn allocation_rules() {
    let cases = cases();
    assert!(cases.len() >= 80, "{} cases", cases.len());
    let mut names = std::collections::BTreeSet::new();
    for c in cases {
        assert!(names.insert(c.name), "duplicate case name {:?}", c.name);
        run(c);
    }
}

// ----- regressions found by the MetalLB conformance port (core/tests/metallb_conformance.rs) -----

/// controller_mutation_35: Kubernetes fills `ipFamilies` with the cluster IPs' families, so
/// PreferDualStack with one entry is a single-stack cluster: one address, even from a pool with
/// both families.
#[test]
fn prefer_dual_stack_with_one_listed_family_gets_that_family_only() {
    run(case(
        "PreferDualStack on a single-stack cluster",
        vec![pool("dual", &["192.0.2.0/24", "2001:db8::/64"])],
        vec![
            Alloc(svc("default/a").families(PREFER, &[V4]), "dual 192.0.2.0"),
            Alloc(svc("default/b").families(PREFER, &[V6]), "dual 2001:db8::"),
            // Holding one family, it does not gain the other either.
            Alloc(svc("default/a").families(PREFER, &[V4]), "dual 192.0.2.0"),
            Counts("dual", V6, (1 << 64, 1, (1 << 64) - 1)),
        ],
    ));
}

/// controller_mutation_36: RequireDualStack with one cluster IP family cannot be served.
#[test]
fn require_dual_stack_with_one_listed_family_is_refused() {
    use ironlb::ipam::{Families, FamiliesError};
    assert_eq!(
        Families::new(REQUIRE, &[V4]),
        Err(FamiliesError::OneForRequireDualStack(V4))
    );
    assert_eq!(Families::new(PREFER, &[V6]).unwrap().order(), [V6]);
    assert_eq!(Families::new(REQUIRE, &[V6, V4]).unwrap().order(), [V6, V4]);
    assert_eq!(
        Families::new(PREFER, &[V4, V6, V4]),
        Err(FamiliesError::Duplicate(V4))
    );
    // Only a request naming no families at all (a hand-written manifest) is extended.
    assert_eq!(Families::with_primary(PREFER, V6).order(), [V6, V4]);
    assert_eq!(Families::with_primary(REQUIRE, V4).order(), [V4, V6]);
    assert_eq!(
        Families::with_primary(FamilyPolicy::SingleStack, V4).order(),
        [V4]
    );
}

/// controller_mutation_probe_pinned_first, controller_mutation_31: pools pinned to the Service
/// are tried as a group before plain pools, as MetalLB does; a plain pool with both families
/// does not beat a pinned pool with one.
#[test]
fn pinned_pools_win_over_a_plain_dual_stack_pool() {
    let pools = || {
        vec![
            pool("a-dual", &["192.0.2.0/31", "2001:db8::/127"]),
            pool("pinned4", &["198.51.100.0/32"])
                .namespaces(&["shop"])
                .priority(10),
            pool("pinned6", &["2001:db8:1::/128"])
                .namespaces(&["shop"])
                .priority(11),
        ]
    };
    run(case("pinned pools first for PreferDualStack", pools(), vec![
        Alloc(svc("shop/a").families(PREFER, &[V4, V6]), "pinned4 198.51.100.0"),
        // pinned4 is full: the group's first pool with the other family.
        Alloc(svc("shop/b").families(PREFER, &[V4, V6]), "pinned6 2001:db8:1::"),
        // Both pinned pools full: only now the plain pools.
        Alloc(svc("shop/c").families(PREFER, &[V4, V6]), "a-dual 192.0.2.0,2001:db8::"),
        // A Service the pinned pools do not admit goes to the plain pool as before.
        Alloc(svc("default/d").families(PREFER, &[V4, V6]), "a-dual 192.0.2.1,2001:db8::1"),
        Explain(svc("shop/e").families(PREFER, &[V4, V6]), "shop/e gets no address: no pool has room: pool pinned4 is full (1/1); pool pinned6 has no IPv4 addresses; pool a-dual is full for IPv4 (2/2)"),
    ]));
    // Within the pinned group a pinned pool with both families still wins (MetalLB's
    // findBestPoolForService over the group).
    run(case(
        "a pinned dual pool beats an earlier pinned single one",
        vec![
            pool("a-dual", &["192.0.2.0/31", "2001:db8::/127"]),
            pool("pinned4", &["198.51.100.0/32"])
                .namespaces(&["shop"])
                .priority(1),
            pool("pinned-dual", &["203.0.113.0/32", "2001:db8:1::/128"])
                .namespaces(&["shop"])
                .priority(2),
        ],
        vec![Alloc(
            svc("shop/a").families(PREFER, &[V4, V6]),
            "pinned-dual 203.0.113.0,2001:db8:1::",
        )],
    ));
}

/// auto_assign#17, #18: a Service that must re-decide (here SingleStack IPv6 turning
/// RequireDualStack) counts its own addresses as free: it keeps what still fits and adds the
/// missing family, even when its pool has no other address of that family.
#[test]
fn a_service_re_deciding_keeps_its_own_addresses() {
    run(case("re-deciding in a full pool", vec![pool("dual", &["192.0.2.0/31", "2001:db8::/127"])], vec![
        Alloc(svc("default/a").v6(), "dual 2001:db8::"),
        Alloc(svc("default/b").v6(), "dual 2001:db8::1"),
        Explain(svc("default/b").families(REQUIRE, &[V4, V6]), "default/b gets 192.0.2.0 (lowest free address) and 2001:db8::1 (already held) from pool dual"),
        Alloc(svc("default/b").families(REQUIRE, &[V4, V6]), "dual 192.0.2.0,2001:db8::1"),
        Alloc(svc("default/a").families(REQUIRE, &[V6, V4]), "dual 2001:db8::,192.0.2.1"),
        Counts("dual", V6, (2, 2, 0)),
        Counts("dual", V4, (2, 2, 0)),
        // A third Service still finds the pool full.
        Alloc(svc("default/c").families(REQUIRE, &[V4, V6]), "err: pool dual is full for IPv4 (2/2)"),
    ]));
    // Its own address is kept even where a lower one is free.
    run(case(
        "re-deciding keeps its own address over the lowest free",
        vec![pool("dual", &["192.0.2.0/24", "2001:db8::/64"])],
        vec![
            Alloc(svc("default/a").v6(), "dual 2001:db8::"),
            Alloc(svc("default/b").v6(), "dual 2001:db8::1"),
            Release("default/a", "2001:db8::"),
            Alloc(
                svc("default/b").families(REQUIRE, &[V6, V4]),
                "dual 2001:db8::1,192.0.2.0",
            ),
        ],
    ));
    // What it holds is not kept when it no longer may share it.
    run(case(
        "re-deciding does not keep an address it may no longer share",
        vec![pool("dual", &["192.0.2.0/30", "2001:db8::/126"])],
        vec![
            Alloc(svc("default/a").v6().share("k").tcp(80), "dual 2001:db8::"),
            Alloc(svc("default/b").v6().share("k").tcp(443), "dual 2001:db8::"),
            Alloc(
                svc("default/b")
                    .families(REQUIRE, &[V4, V6])
                    .share("j")
                    .tcp(443),
                "dual 192.0.2.0,2001:db8::1",
            ),
        ],
    ));
}
