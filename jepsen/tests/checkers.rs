//! The checkers must be able to fail: histories with a known flaw, built by hand in the format a
//! run records, each flagged by the checker meant to catch it; and their correct twins passing.

use std::net::IpAddr;

use ironlb_jepsen::checker::alloc::{self, Finals};
use ironlb_jepsen::checker::l2::{self, Reply};
use ironlb_jepsen::checker::linear::Budget;
use ironlb_jepsen::checker::{Validity, Verdict};
use ironlb_jepsen::history::{Fun, History, Op, OpType};
use ironlb_jepsen::workload::alloc::manifest;
use serde_json::{json, Value};

const CONFIG: &str = "apiVersion: ironlb.io/v1beta1
kind: IPAddressPool
metadata: {name: v4}
spec:
  addresses: [192.0.2.0/30]
";

/// Builds histories operation by operation, each one at its own time.
#[derive(Default)]
struct Builder {
    ops: Vec<Op>,
}

impl Builder {
    fn op(&mut self, time: u64, process: u64, kind: OpType, f: Fun, value: Value) -> &mut Self {
        self.ops.push(Op {
            index: self.ops.len() as u64,
            time,
            process,
            kind,
            f,
            value,
            error: None,
            node: None,
        });
        self
    }

    /// An allocation of `name` (in pool v4, optionally asking for `want`) from `t` to `t+1`,
    /// answered `answer`.
    fn allocate(
        &mut self,
        t: u64,
        p: u64,
        name: &str,
        want: Option<&str>,
        answer: Value,
    ) -> &mut Self {
        let mut ann = vec![("ironlb.io/address-pool".to_string(), "v4".to_string())];
        if let Some(w) = want {
            ann.push(("ironlb.io/loadBalancerIPs".to_string(), w.to_string()));
        }
        let m = manifest(
            name,
            "ipFamilyPolicy: SingleStack\n  ipFamilies: [IPv4]",
            &ann,
            80,
        );
        self.op(
            t,
            p,
            OpType::Invoke,
            Fun::Allocate,
            json!({"service": format!("jepsen/{name}"), "manifest": m}),
        );
        self.op(t + 1, p, OpType::Ok, Fun::Allocate, answer)
    }

    fn release(&mut self, t: u64, p: u64, name: &str, freed: Value) -> &mut Self {
        self.op(
            t,
            p,
            OpType::Invoke,
            Fun::Release,
            json!({"service": format!("jepsen/{name}")}),
        );
        self.op(
            t + 1,
            p,
            OpType::Ok,
            Fun::Release,
            json!({"released": freed}),
        )
    }

    fn read(&mut self, t: u64, p: u64, stale: bool, services: Value) -> &mut Self {
        self.op(t, p, OpType::Invoke, Fun::Read, json!({"stale": stale}));
        self.op(
            t + 1,
            p,
            OpType::Ok,
            Fun::Read,
            json!({"services": services}),
        )
    }

    fn history(&self) -> History {
        History {
            ops: self.ops.clone(),
        }
    }
}

fn check(b: &Builder) -> (Verdict, Verdict) {
    let mut v = alloc::check(&b.history(), CONFIG, None, 5, Budget::default());
    let inv = v.pop().unwrap();
    let lin = v.pop().unwrap();
    (lin, inv)
}

#[test]
fn a_correct_history_passes_every_checker() {
    let mut b = Builder::default();
    b.allocate(10, 1, "v4-a", None, json!({"addresses": ["192.0.2.0"]}))
        .allocate(20, 2, "v4-b", None, json!({"addresses": ["192.0.2.1"]}))
        .read(
            30,
            3,
            false,
            json!({"jepsen/v4-a": ["192.0.2.0"], "jepsen/v4-b": ["192.0.2.1"]}),
        )
        .release(40, 1, "v4-a", json!(["192.0.2.0"]))
        .read(50, 3, false, json!({"jepsen/v4-b": ["192.0.2.1"]}));
    let (lin, inv) = check(&b);
    assert_eq!(lin.valid, Validity::Valid, "{lin:#?}");
    assert_eq!(inv.valid, Validity::Valid, "{inv:#?}");
}

#[test]
fn a_lost_write_is_flagged() {
    // Acknowledged, then gone from a later read with nothing in between.
    let mut b = Builder::default();
    b.allocate(10, 1, "v4-a", None, json!({"addresses": ["192.0.2.0"]}))
        .read(30, 3, false, json!({}));
    let (lin, inv) = check(&b);
    assert_eq!(lin.valid, Validity::Invalid, "{lin:#?}");
    assert_eq!(inv.valid, Validity::Invalid);
    assert_eq!(inv.figures["lost"], 1, "{inv:#?}");
}

#[test]
fn a_duplicate_address_is_flagged() {
    // Two Services without a sharing key on one address, in a stale read and in an answer.
    let mut b = Builder::default();
    b.allocate(10, 1, "v4-a", None, json!({"addresses": ["192.0.2.0"]}))
        .allocate(
            20,
            2,
            "v4-b",
            Some("192.0.2.0"),
            json!({"addresses": ["192.0.2.0"]}),
        )
        .read(
            30,
            3,
            true,
            json!({"jepsen/v4-a": ["192.0.2.0"], "jepsen/v4-b": ["192.0.2.0"]}),
        );
    let (lin, inv) = check(&b);
    assert_eq!(inv.figures["duplicates"], 1, "{inv:#?}");
    assert_eq!(inv.valid, Validity::Invalid);
    // The allocator would have refused the second Service the address it asked for.
    assert_eq!(lin.valid, Validity::Invalid, "{lin:#?}");
}

#[test]
fn a_stale_linearizable_read_is_flagged() {
    // A read invoked after a release completed still shows the Service.
    let mut b = Builder::default();
    b.allocate(10, 1, "v4-a", None, json!({"addresses": ["192.0.2.0"]}))
        .release(20, 1, "v4-a", json!(["192.0.2.0"]))
        .read(30, 3, false, json!({"jepsen/v4-a": ["192.0.2.0"]}));
    let (lin, _) = check(&b);
    assert_eq!(lin.valid, Validity::Invalid, "{lin:#?}");
    // The same read marked stale promises nothing.
    let mut b = Builder::default();
    b.allocate(10, 1, "v4-a", None, json!({"addresses": ["192.0.2.0"]}))
        .release(20, 1, "v4-a", json!(["192.0.2.0"]))
        .read(30, 3, true, json!({"jepsen/v4-a": ["192.0.2.0"]}));
    assert_eq!(check(&b).0.valid, Validity::Valid);
}

#[test]
fn an_allocation_outside_the_model_is_flagged() {
    // The allocator gives the lowest free address, never .3 to the first Service.
    let mut b = Builder::default();
    b.allocate(10, 1, "v4-a", None, json!({"addresses": ["192.0.2.3"]}));
    let (lin, _) = check(&b);
    assert_eq!(lin.valid, Validity::Invalid, "{lin:#?}");
    // Nor a refusal while the pool has room.
    let mut b = Builder::default();
    b.allocate(10, 1, "v4-a", None, json!({"refused": "pool exhausted"}));
    assert_eq!(check(&b).0.valid, Validity::Invalid);
    // But concurrent allocations may be ordered either way.
    let mut b = Builder::default();
    let m = |n: &str| {
        manifest(
            n,
            "ipFamilyPolicy: SingleStack\n  ipFamilies: [IPv4]",
            &[("ironlb.io/address-pool".into(), "v4".into())],
            80,
        )
    };
    b.op(
        10,
        1,
        OpType::Invoke,
        Fun::Allocate,
        json!({"service": "jepsen/v4-a", "manifest": m("v4-a")}),
    )
    .op(
        11,
        2,
        OpType::Invoke,
        Fun::Allocate,
        json!({"service": "jepsen/v4-b", "manifest": m("v4-b")}),
    )
    .op(
        12,
        1,
        OpType::Ok,
        Fun::Allocate,
        json!({"addresses": ["192.0.2.1"]}),
    )
    .op(
        13,
        2,
        OpType::Ok,
        Fun::Allocate,
        json!({"addresses": ["192.0.2.0"]}),
    );
    assert_eq!(check(&b).0.valid, Validity::Valid);
}

#[test]
fn an_unknown_outcome_may_or_may_not_have_taken_effect() {
    let m = manifest(
        "v4-a",
        "ipFamilyPolicy: SingleStack\n  ipFamilies: [IPv4]",
        &[("ironlb.io/address-pool".into(), "v4".into())],
        80,
    );
    for seen in [json!({}), json!({"jepsen/v4-a": ["192.0.2.0"]})] {
        let mut b = Builder::default();
        b.op(
            10,
            1,
            OpType::Invoke,
            Fun::Allocate,
            json!({"service": "jepsen/v4-a", "manifest": m}),
        )
        .op(11, 1, OpType::Info, Fun::Allocate, Value::Null)
        .read(50, 3, false, seen);
        let (lin, inv) = check(&b);
        assert_eq!(lin.valid, Validity::Valid, "{lin:#?}");
        assert_eq!(inv.valid, Validity::Valid, "{inv:#?}");
    }
}

#[test]
fn members_that_disagree_and_accounting_that_does_not_add_up_are_flagged() {
    let mut b = Builder::default();
    b.allocate(10, 1, "v4-a", None, json!({"addresses": ["192.0.2.0"]}));
    let key: ironlb::names::ServiceKey = "jepsen/v4-a".parse().unwrap();
    let addr: IpAddr = "192.0.2.0".parse().unwrap();
    let mut finals = Finals::default();
    finals.read.insert(key.clone(), vec![addr]);
    finals.read_pools.insert(key.clone(), "v4".into());
    finals
        .members
        .insert("member-1".into(), finals.read.clone());
    finals.members.insert("member-2".into(), Default::default());
    let stats: ironlb::ipam::PoolStats = serde_json::from_value(json!({
        "ipv4": {"total": 4, "in_use": 2, "available": 2},
        "ipv6": {"total": 0, "in_use": 0, "available": 0}
    }))
    .unwrap();
    finals.pools.insert("v4".into(), stats);
    let v = alloc::check(&b.history(), CONFIG, Some(&finals), 5, Budget::default());
    let inv = &v[1];
    assert_eq!(inv.figures["members_agree"], false, "{inv:#?}");
    assert_eq!(inv.figures["pool_accounting"], false);
    assert_eq!(inv.valid, Validity::Invalid);
}

#[test]
fn a_dual_answer_is_flagged_and_a_clean_failover_is_not() {
    let addr: IpAddr = "198.51.100.100".parse().unwrap();
    let reply = |ms: u64, mac: &str, round: u64| Reply {
        t: ms * 1_000_000,
        proto: "arp".into(),
        addr,
        mac: Some(mac.into()),
        round: Some(round),
    };
    let mut clean: Vec<Reply> = (0..100).map(|k| reply(k * 10, "a", k)).collect();
    clean.extend((130..200).map(|k| reply(k * 10, "b", k)));
    let v = l2::check(&clean, &[], &[addr], 2_000_000_000, l2::Rules::default());
    assert_eq!(v.valid, Validity::Valid, "{v:#?}");
    let mut dual = clean.clone();
    dual.push(reply(1505, "a", 150));
    dual.sort_by_key(|r| r.t);
    let v = l2::check(&dual, &[], &[addr], 2_000_000_000, l2::Rules::default());
    assert_eq!(v.valid, Validity::Invalid);
    assert_eq!(v.figures["dual_answer_windows"], 1, "{v:#?}");
}
