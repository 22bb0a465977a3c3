//! Property tests: random operation sequences keep the allocator's invariants, and the
//! allocator is deterministic to the byte.

mod common;

use common::*;
use ironlb::ipam::{AllocationRequest, Allocator, Family, FamilyPolicy, PoolSpec};
use proptest::prelude::*;

const NAMESPACES: [&str; 2] = ["default", "prod"];
const ADDRESSES: [&str; 8] = [
    "192.0.2.0",
    "192.0.2.3",
    "192.0.2.7",
    "198.51.100.1",
    "203.0.113.2",
    "2001:db8::1",
    "2001:db8::2",
    "198.51.100.200",
];

/// Small pools, so that operations collide often: a .0 that is avoided, a dual pool admitting
/// one namespace, a pool not auto-assigned.
fn pools() -> Vec<PoolSpec> {
    vec![
        pool("a", &["192.0.2.0/29"]).avoid_buggy(),
        pool("b", &["198.51.100.0/30", "2001:db8::/126"])
            .namespaces(&["prod"])
            .priority(1),
        pool("m", &["203.0.113.0/30"]).manual(),
    ]
}

#[derive(Clone, Debug)]
struct Req {
    svc: usize,
    ports: Vec<(u16, bool)>,
    share: Option<usize>,
    local: Option<usize>,
    family: usize,
    address: Option<usize>,
    pool: Option<usize>,
}

#[derive(Clone, Debug)]
enum Op {
    Alloc(Req),
    Release(usize),
    Reserve(usize, usize),
    Unreserve(usize),
    Adopt(Req, usize),
}

fn key_of(i: usize) -> String {
    format!("{}/s{}", NAMESPACES[i % 2], i)
}

fn build(r: &Req) -> AllocationRequest {
    let mut req = svc(&key_of(r.svc));
    for (port, udp) in &r.ports {
        req = if *udp { req.udp(*port) } else { req.tcp(*port) };
    }
    if let Some(k) = r.share {
        req = req.share(["k", "j"][k]);
    }
    if let Some(sel) = r.local {
        req = req.local(&[("app", ["web", "api"][sel])]);
    }
    req = match r.family {
        0 => req,
        1 => req.v6(),
        2 => req.families(FamilyPolicy::PreferDualStack, &[Family::V4, Family::V6]),
        _ => req.families(FamilyPolicy::RequireDualStack, &[Family::V6, Family::V4]),
    };
    if let Some(a) = r.address {
        let addr = ip(ADDRESSES[a]);
        req = req.families(
            FamilyPolicy::SingleStack,
            &[if addr.is_ipv4() {
                Family::V4
            } else {
                Family::V6
            }],
        );
        req = req.ips(&[ADDRESSES[a]]);
    }
    if let Some(p) = r.pool {
        req = req.in_pool(["a", "b", "m", "nope"][p]);
    }
    req
}

fn req_strategy() -> impl Strategy<Value = Req> {
    (
        0usize..8,
        prop::collection::vec(
            (prop::sample::select(vec![53u16, 80, 443]), any::<bool>()),
            0..3,
        ),
        prop::option::of(0usize..2),
        prop::option::weighted(0.2, 0usize..2),
        0usize..4,
        prop::option::weighted(0.2, 0usize..ADDRESSES.len()),
        prop::option::weighted(0.15, 0usize..4),
    )
        .prop_map(|(svc, ports, share, local, family, address, pool)| Req {
            svc,
            ports,
            share,
            local,
            family,
            address,
            pool,
        })
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => req_strategy().prop_map(Op::Alloc),
        3 => (0usize..8).prop_map(Op::Release),
        1 => (0usize..ADDRESSES.len(), 0usize..8).prop_map(|(a, s)| Op::Reserve(a, s)),
        1 => (0usize..ADDRESSES.len()).prop_map(Op::Unreserve),
        1 => (req_strategy(), 0usize..ADDRESSES.len()).prop_map(|(r, a)| Op::Adopt(r, a)),
    ]
}

fn apply(a: &mut Allocator, op: &Op) {
    match op {
        Op::Alloc(r) => {
            let _ = a.allocate(build(r));
        }
        Op::Release(s) => {
            a.release(&key(&key_of(*s)));
        }
        Op::Reserve(addr, s) => {
            let _ = a.reserve(ip(ADDRESSES[*addr]), key(&key_of(*s)));
        }
        Op::Unreserve(addr) => {
            let _ = a.unreserve(ip(ADDRESSES[*addr]));
        }
        Op::Adopt(r, addr) => {
            let _ = a.adopt(build(r), &[ip(ADDRESSES[*addr])]);
        }
    }
}

fn bytes(a: &Allocator) -> Vec<u8> {
    bincode::serde::encode_to_vec(a, bincode::config::standard()).expect("state encodes")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// After every operation: no address is held against the sharing rules, every address
    /// lies in its own pool and respects avoidBuggyIPs, and every count equals a recount.
    #[test]
    fn invariants_hold_after_every_operation(ops in prop::collection::vec(op_strategy(), 1..60)) {
        let mut a = Allocator::with_pools(pools()).unwrap();
        for op in &ops {
            apply(&mut a, op);
            prop_assert_eq!(a.verify(), Ok(()), "after {:?}", op);
            for (k, alloc) in a.allocations() {
                for addr in &alloc.addresses {
                    prop_assert_eq!(a.pool_of(*addr), Some(&alloc.pool), "{} holds {}", k, addr);
                }
            }
        }
    }

    /// The same operations give the same bytes, and the state survives a round trip through
    /// its encoding.
    #[test]
    fn deterministic_to_the_byte(ops in prop::collection::vec(op_strategy(), 1..60)) {
        let mut a = Allocator::with_pools(pools()).unwrap();
        let mut b = Allocator::with_pools(pools()).unwrap();
        for op in &ops {
            apply(&mut a, op);
            apply(&mut b, op);
        }
        let (ba, bb) = (bytes(&a), bytes(&b));
        prop_assert_eq!(&ba, &bb);
        let (back, _): (Allocator, usize) =
            bincode::serde::decode_from_slice(&ba, bincode::config::standard()).unwrap();
        prop_assert_eq!(back, a);
    }

    /// The records a snapshot keeps (pools, allocations, reservations) rebuild the very same
    /// allocator, indexes and free sets included.
    #[test]
    fn records_rebuild_the_same_allocator(ops in prop::collection::vec(op_strategy(), 0..60)) {
        let mut a = Allocator::with_pools(pools()).unwrap();
        for op in &ops {
            apply(&mut a, op);
        }
        let back = Allocator::from_records(
            a.pools().cloned().collect(),
            a.allocations().map(|(_, x)| x.clone()).collect(),
            a.reservations().map(|(ip, s)| (*ip, s.clone())).collect(),
        )
        .unwrap();
        prop_assert_eq!(back.verify(), Ok(()));
        prop_assert_eq!(back, a);
    }

    /// Allocating a new Service and releasing it restores the state exactly; releasing a
    /// Service and adopting its addresses back restores it too.
    #[test]
    fn release_undoes_allocate(ops in prop::collection::vec(op_strategy(), 0..40), extra in req_strategy()) {
        let mut a = Allocator::with_pools(pools()).unwrap();
        for op in &ops {
            apply(&mut a, op);
        }
        let before = bytes(&a);
        let mut req = build(&extra);
        req.service = key("fresh/newcomer");
        if a.allocate(req.clone()).is_ok() {
            prop_assert_eq!(a.verify(), Ok(()));
            a.release(&req.service);
            prop_assert_eq!(bytes(&a), before.clone());
        }
        let held: Vec<_> = a.allocations().map(|(k, al)| (k.clone(), al.clone())).collect();
        for (k, alloc) in held {
            a.release(&k);
            let back = a.adopt(alloc.request.clone(), &alloc.addresses).cloned();
            prop_assert_eq!(back, Ok(alloc));
        }
        prop_assert_eq!(bytes(&a), before);
    }
}
