//! Both ends over a network that loses, duplicates, delays and reorders, under two leaders.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use proptest::prelude::*;
use tokio::time::Instant;

use super::*;

const NODES: usize = 3;
const ADDRESSES: [&str; 2] = ["192.0.2.1", "192.0.2.2"];
const MIN_GAP: Duration = Duration::from_millis(100);
const RESYNC_AFTER: Duration = Duration::from_millis(500);

fn addr(i: usize) -> IpAddr {
    ADDRESSES[i].parse().unwrap()
}

fn l2(a: IpAddr) -> L2Address {
    L2Address {
        address: a,
        services: Vec::new(),
        interfaces: Vec::new(),
    }
}

fn id(revision: u64) -> AssignmentId {
    AssignmentId {
        term: 1,
        leader: 1,
        revision,
    }
}

#[test]
fn a_change_applies_on_its_base_only_and_nothing_older_ever_applies() {
    let now = Instant::now();
    let mut tx = Sender::new(1, 1);
    let mut rx = Receiver::default();
    rx.follow((1, 1));
    rx.unfence();
    let full = tx
        .next([(addr(0), l2(addr(0)))].into(), true, false, now)
        .unwrap();
    assert_eq!(full.base, None);
    let change = tx.next(BTreeMap::new(), false, false, now).unwrap();
    assert_eq!(
        (change.base, change.remove.clone()),
        (Some(id(1)), vec![addr(0)])
    );
    assert!(tx.answering(addr(0)), "not acknowledged yet");

    // The change before its base: ask for a whole set.
    assert_eq!(rx.accept(&change), Accept::Resync);
    assert!(rx.want_full());
    assert!(matches!(rx.accept(&full), Accept::Apply(s) if s.len() == 1));
    assert!(matches!(rx.accept(&change), Accept::Apply(s) if s.is_empty()));
    // A duplicate of the whole set, late: never applied again, not even after a fence.
    assert_eq!(rx.accept(&full), Accept::Ignore);
    rx.fence();
    rx.unfence();
    assert_eq!(rx.accept(&full), Accept::Ignore);

    assert!(tx.report(1, Some(id(2)), false, false));
    assert!(!tx.answering(addr(0)), "acknowledged the loss");
    // An older report read late changes nothing.
    assert!(!tx.report(1, Some(id(1)), true, false));
}

#[test]
fn an_unacknowledged_assignment_is_followed_by_a_whole_set() {
    let t0 = Instant::now();
    let mut tx = Sender::new(1, 1);
    tx.next(BTreeMap::new(), true, false, t0).unwrap();
    assert!(!tx.full_due(t0 + RESYNC_AFTER / 2, MIN_GAP, RESYNC_AFTER));
    assert!(tx.full_due(t0 + RESYNC_AFTER, MIN_GAP, RESYNC_AFTER));
    tx.report(1, Some(id(1)), false, false);
    assert!(!tx.full_due(t0 + RESYNC_AFTER * 2, MIN_GAP, RESYNC_AFTER));
}

/// The node's session to the leader is replaced (its link reconnected; seen at 300 simulated
/// speakers): the new session's sender must not take the old one's acknowledgement for its
/// own, and what it sends must not be ignored as older than what the old one sent.
#[test]
fn a_new_session_under_the_same_leader_takes_over_from_the_old_one() {
    let now = Instant::now();
    let both: BTreeMap<IpAddr, L2Address> =
        [0, 1].map(|i| (addr(i), l2(addr(i)))).into_iter().collect();
    let mut old = Sender::new(1, 1);
    let mut rx = Receiver::default();
    rx.follow((1, 1));
    rx.unfence();
    let full = old.next(both.clone(), true, false, now).unwrap();
    assert!(matches!(rx.accept(&full), Accept::Apply(_)));
    for seq in 1..=3 {
        // A few more revisions (Services changing), each applied and acknowledged.
        let change = old.next(both.clone(), false, true, now).unwrap();
        assert!(matches!(rx.accept(&change), Accept::Apply(_)));
        old.report(seq, rx.applied(), false, false);
    }

    let mut new = old.successor();
    // The node's first report on the new session still names the old session's assignment:
    // it may be answering for anything until it acknowledges one of the new session's.
    new.report(1, rx.applied(), rx.want_full(), false);
    assert!(
        new.answering(addr(1)),
        "the old session's acknowledgement counted as the new one's"
    );
    let only_first: BTreeMap<IpAddr, L2Address> = [(addr(0), l2(addr(0)))].into();
    let whole = new.next(only_first.clone(), true, false, now).unwrap();
    assert!(
        matches!(rx.accept(&whole), Accept::Apply(ref s) if *s == only_first),
        "the new session's whole set was not applied"
    );
    new.report(2, rx.applied(), rx.want_full(), false);
    assert!(!new.answering(addr(1)), "acknowledged the loss");
}

/// One leader's view: its owner choices and a sender per node.
struct Leader {
    term: u64,
    owners: BTreeMap<IpAddr, usize>,
    senders: Vec<Sender>,
}

impl Leader {
    fn new(term: u64) -> Self {
        Leader {
            term,
            owners: BTreeMap::new(),
            senders: (0..NODES).map(|_| Sender::new(term, term)).collect(),
        }
    }

    fn desired(&self, node: usize) -> BTreeMap<IpAddr, L2Address> {
        self.owners
            .iter()
            .filter(|(_, o)| **o == node)
            .map(|(a, _)| (*a, l2(*a)))
            .collect()
    }
}

struct Report {
    node: usize,
    leader: usize,
    seq: u64,
    applied: Option<AssignmentId>,
    want_full: bool,
    fenced: bool,
}

struct World {
    now: Instant,
    leaders: Vec<Leader>,
    receivers: Vec<Receiver>,
    seqs: Vec<u64>,
    to_nodes: Vec<(usize, AddressDelta)>,
    to_leaders: Vec<Report>,
}

#[derive(Clone, Debug)]
enum Op {
    /// The newest leader (or the one before it, still acting) gives an address to a node,
    /// if none of its other senders says anyone else may be answering for it.
    Move {
        old: bool,
        addr: usize,
        node: usize,
    },
    Unassign {
        old: bool,
        addr: usize,
    },
    Push {
        old: bool,
        node: usize,
    },
    Deliver {
        pick: usize,
        duplicate: bool,
    },
    Lose {
        pick: usize,
    },
    Report {
        node: usize,
        old: bool,
    },
    DeliverReport {
        pick: usize,
        duplicate: bool,
    },
    LoseReport {
        pick: usize,
    },
    Fence {
        node: usize,
    },
    Unfence {
        node: usize,
    },
    NewLeader,
    /// The node's session to the newest leader is replaced (its link reconnected): a new
    /// sender takes over, while the old session's messages may still arrive.
    Reconnect {
        node: usize,
    },
    Tick {
        ms: u64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let n = 0..NODES;
    let a = 0..ADDRESSES.len();
    prop_oneof![
        4 => (any::<bool>(), a.clone(), n.clone()).prop_map(|(old, addr, node)| Op::Move { old, addr, node }),
        1 => (any::<bool>(), a).prop_map(|(old, addr)| Op::Unassign { old, addr }),
        4 => (any::<bool>(), n.clone()).prop_map(|(old, node)| Op::Push { old, node }),
        6 => (any::<usize>(), proptest::bool::weighted(0.2)).prop_map(|(pick, duplicate)| Op::Deliver { pick, duplicate }),
        1 => any::<usize>().prop_map(|pick| Op::Lose { pick }),
        4 => (n.clone(), any::<bool>()).prop_map(|(node, old)| Op::Report { node, old }),
        6 => (any::<usize>(), proptest::bool::weighted(0.2)).prop_map(|(pick, duplicate)| Op::DeliverReport { pick, duplicate }),
        1 => any::<usize>().prop_map(|pick| Op::LoseReport { pick }),
        1 => n.clone().prop_map(|node| Op::Fence { node }),
        2 => n.prop_map(|node| Op::Unfence { node }),
        1 => Just(Op::NewLeader),
        1 => (0..NODES).prop_map(|node| Op::Reconnect { node }),
        2 => (1u64..400).prop_map(|ms| Op::Tick { ms }),
    ]
}

impl World {
    fn new() -> Self {
        World {
            now: Instant::now(),
            leaders: vec![Leader::new(1)],
            receivers: (0..NODES).map(|_| Receiver::default()).collect(),
            seqs: vec![0; NODES],
            to_nodes: Vec::new(),
            to_leaders: Vec::new(),
        }
    }

    /// The acting leader: the newest, or (`old`) the one before it, which has not heard yet.
    fn leader(&self, old: bool) -> usize {
        let n = self.leaders.len();
        if old && n > 1 {
            n - 2
        } else {
            n - 1
        }
    }

    fn push(&mut self, l: usize, node: usize) {
        let desired = self.leaders[l].desired(node);
        let now = self.now;
        let tx = &mut self.leaders[l].senders[node];
        let full = tx.full_due(now, MIN_GAP, RESYNC_AFTER);
        if let Some(delta) = tx.next(desired, full, false, now) {
            self.to_nodes.push((node, delta));
        }
    }

    fn deliver(&mut self, node: usize, delta: &AddressDelta) {
        let rx = &mut self.receivers[node];
        // A speaker follows a leadership from its lease; here, from its first message.
        if rx.follow((delta.id.term, delta.id.leader)) {
            let _ = rx.accept(delta);
        }
    }

    fn report(&mut self, node: usize, leader: usize) {
        self.seqs[node] += 1;
        let rx = &self.receivers[node];
        self.to_leaders.push(Report {
            node,
            leader,
            seq: self.seqs[node],
            applied: rx.applied(),
            want_full: rx.want_full(),
            fenced: rx.fenced(),
        });
    }

    fn read_report(&mut self, r: &Report) {
        let tx = &mut self.leaders[r.leader].senders[r.node];
        tx.report(r.seq, r.applied, r.want_full, r.fenced);
    }

    fn step(&mut self, op: &Op) {
        match *op {
            Op::Move { old, addr: a, node } => {
                let l = self.leader(old);
                let leader = &mut self.leaders[l];
                let free = (0..NODES)
                    .filter(|n| *n != node)
                    .all(|n| !leader.senders[n].answering(addr(a)));
                if free {
                    leader.owners.insert(addr(a), node);
                }
            }
            Op::Unassign { old, addr: a } => {
                let l = self.leader(old);
                self.leaders[l].owners.remove(&addr(a));
            }
            Op::Push { old, node } => self.push(self.leader(old), node),
            Op::Deliver { pick, duplicate } if !self.to_nodes.is_empty() => {
                let i = pick % self.to_nodes.len();
                let (node, delta) = if duplicate {
                    self.to_nodes[i].clone()
                } else {
                    self.to_nodes.remove(i)
                };
                self.deliver(node, &delta);
            }
            Op::Lose { pick } if !self.to_nodes.is_empty() => {
                let i = pick % self.to_nodes.len();
                self.to_nodes.remove(i);
            }
            Op::Report { node, old } => self.report(node, self.leader(old)),
            Op::DeliverReport { pick, duplicate } if !self.to_leaders.is_empty() => {
                let i = pick % self.to_leaders.len();
                if duplicate {
                    let r = &self.to_leaders[i];
                    let copy = Report { ..*r };
                    self.read_report(&copy);
                } else {
                    let r = self.to_leaders.remove(i);
                    self.read_report(&r);
                }
            }
            Op::LoseReport { pick } if !self.to_leaders.is_empty() => {
                let i = pick % self.to_leaders.len();
                self.to_leaders.remove(i);
            }
            Op::Fence { node } => self.receivers[node].fence(),
            Op::Unfence { node } => self.receivers[node].unfence(),
            Op::NewLeader if self.leaders.len() < 3 => {
                let term = self.leaders.last().map_or(1, |l| l.term + 1);
                self.leaders.push(Leader::new(term));
            }
            Op::Reconnect { node } => {
                let l = self.leaders.len() - 1;
                let next = self.leaders[l].senders[node].successor();
                self.leaders[l].senders[node] = next;
            }
            Op::Tick { ms } => self.now += Duration::from_millis(ms),
            _ => {}
        }
    }

    /// At most one node holds each address, and every leader a node follows counts it as
    /// answering for what it holds.
    fn check(&self) -> Result<(), TestCaseError> {
        for a in ADDRESSES.iter().map(|a| a.parse::<IpAddr>().unwrap()) {
            let holders: Vec<usize> = (0..NODES)
                .filter(|n| self.receivers[*n].held().contains_key(&a))
                .collect();
            prop_assert!(holders.len() <= 1, "{a} held by {holders:?}");
            for n in holders {
                for l in &self.leaders {
                    if self.receivers[n].leadership() <= Some((l.term, l.term)) {
                        prop_assert!(
                            l.senders[n].answering(a),
                            "leader {} thinks node {n} does not answer for {a}",
                            l.term
                        );
                    }
                }
            }
        }
        Ok(())
    }

    /// Once the network delivers everything again, every node holds what the newest leader
    /// wants it to.
    fn heal(&mut self) -> Result<(), TestCaseError> {
        self.to_nodes.clear();
        self.to_leaders.clear();
        let l = self.leaders.len() - 1;
        for rx in &mut self.receivers {
            rx.unfence();
        }
        for _ in 0..6 {
            self.now += RESYNC_AFTER;
            for node in 0..NODES {
                self.push(l, node);
                for (n, d) in std::mem::take(&mut self.to_nodes) {
                    self.deliver(n, &d);
                }
                self.report(node, l);
                for r in std::mem::take(&mut self.to_leaders) {
                    self.read_report(&r);
                }
                self.check()?;
            }
        }
        for node in 0..NODES {
            let want = self.leaders[l].desired(node);
            prop_assert_eq!(self.receivers[node].held(), &want, "node {}", node);
            prop_assert_eq!(
                self.receivers[node].applied(),
                self.leaders[l].senders[node].sent_id()
            );
        }
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Safety at every step, under loss, duplication, delay, reordering, fences and a second
    /// leader that keeps acting; convergence once the network heals.
    #[test]
    fn no_address_is_ever_held_twice_and_both_ends_converge(
        ops in proptest::collection::vec(op(), 1..250)
    ) {
        let mut world = World::new();
        for op in &ops {
            world.step(op);
            world.check()?;
        }
        world.heal()?;
    }
}
