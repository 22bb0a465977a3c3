//! The leader's book of speaker leases, with the clock as a parameter: when a lease may be
//! granted, and when a node is dead. No I/O and no timers, so every rule is tested directly
//! (the `LeaseTracker` actor only feeds it and sends what it decides).
//!
//! The rules:
//! - a lease is granted only while this member leads in some term and a quorum confirmed that
//!   leadership within the grant window (`margin / 2`) before the heartbeat arrived;
//! - a confirmation counts only for the term it confirmed, and a change of leadership forgets
//!   both the confirmations and every lease counted so far;
//! - a node is dead once `lease + margin` has passed since the arrival of the last heartbeat it
//!   was granted a lease for. The speaker counts its lease from when it *sent* that heartbeat,
//!   which precedes the arrival, so by then its lease has been over for at least `margin`.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::time::Instant;

use crate::names::NodeName;

/// The clocks the book keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BookTiming {
    /// How long after a quorum's confirmation leases may still be granted.
    pub grant_window: Duration,
    /// How long after its last granted heartbeat arrived a node is dead.
    pub dead_after: Duration,
}

/// Leases granted by this member while it leads.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct LeaseBook {
    timing: BookTiming,
    term: Option<u64>,
    confirmed: Option<Instant>,
    /// When the last heartbeat granted a lease arrived, per node.
    granted: BTreeMap<NodeName, Instant>,
}

impl LeaseBook {
    /// An empty book; nothing is granted until [`LeaseBook::lead`] and a confirmation.
    pub fn new(timing: BookTiming) -> Self {
        LeaseBook {
            timing,
            term: None,
            confirmed: None,
            granted: BTreeMap::new(),
        }
    }

    /// This member leads in `term`, or (`None`) does not lead: earlier confirmations and
    /// leases are forgotten (a new leader waits out its predecessor's leases elsewhere).
    pub fn lead(&mut self, term: Option<u64>) {
        self.term = term;
        self.confirmed = None;
        self.granted.clear();
    }

    /// A quorum confirmed leadership in `term` for a request sent at `at`.
    pub fn confirmed(&mut self, term: u64, at: Instant) {
        if self.term != Some(term) {
            return;
        }
        if self.confirmed.is_none_or(|c| at > c) {
            self.confirmed = Some(at);
        }
    }

    /// The term to grant a lease in, for a heartbeat arriving at `now`, or `None` (no quorum).
    pub fn may_grant(&self, now: Instant) -> Option<u64> {
        let confirmed = self.confirmed?;
        (now.saturating_duration_since(confirmed) <= self.timing.grant_window)
            .then_some(self.term)
            .flatten()
    }

    /// A lease was sent to `node` for a heartbeat that arrived at `received`; returns when the
    /// node will be dead unless another lease is granted first.
    pub fn granted(&mut self, node: &NodeName, received: Instant) -> Instant {
        let last = self.granted.entry(node.clone()).or_insert(received);
        *last = (*last).max(received);
        *last + self.timing.dead_after
    }

    /// `node` left (drained): it is no longer tracked.
    pub fn forget(&mut self, node: &NodeName) {
        self.granted.remove(node);
    }

    /// Whether `node` is dead at `now`; a dead node is forgotten, so the verdict comes once.
    pub fn expire(&mut self, node: &NodeName, now: Instant) -> bool {
        let dead = self
            .granted
            .get(node)
            .is_some_and(|g| now.saturating_duration_since(*g) >= self.timing.dead_after);
        if dead {
            self.granted.remove(node);
        }
        dead
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const TIMING: BookTiming = BookTiming {
        grant_window: Duration::from_millis(100),
        dead_after: Duration::from_millis(1200),
    };

    fn node(i: u8) -> NodeName {
        NodeName::new(format!("n{i}")).unwrap()
    }

    #[test]
    fn grants_need_a_confirmation_of_the_current_term_within_the_window() {
        let t0 = Instant::now();
        let ms = |m| t0 + Duration::from_millis(m);
        let mut book = LeaseBook::new(TIMING);
        assert_eq!(book.may_grant(t0), None, "not leading");
        book.lead(Some(2));
        assert_eq!(book.may_grant(t0), None, "leading, unconfirmed");
        book.confirmed(1, t0);
        assert_eq!(book.may_grant(t0), None, "a confirmation of another term");
        book.confirmed(2, t0);
        assert_eq!(book.may_grant(ms(100)), Some(2));
        assert_eq!(book.may_grant(ms(101)), None, "the window has passed");
        book.confirmed(2, ms(50));
        assert_eq!(book.may_grant(ms(150)), Some(2));
        book.lead(Some(3));
        assert_eq!(
            book.may_grant(ms(150)),
            None,
            "a new term starts unconfirmed"
        );
    }

    #[test]
    fn a_node_is_dead_once_after_the_lease_and_margin_since_its_last_grant() {
        let t0 = Instant::now();
        let ms = |m| t0 + Duration::from_millis(m);
        let mut book = LeaseBook::new(TIMING);
        let n = node(1);
        assert_eq!(book.granted(&n, t0), ms(1200));
        assert_eq!(book.granted(&n, ms(200)), ms(1400));
        assert!(!book.expire(&n, ms(1300)), "the later grant counts");
        assert!(book.expire(&n, ms(1400)));
        assert!(!book.expire(&n, ms(5000)), "the verdict comes once");
        book.granted(&n, ms(6000));
        book.forget(&n);
        assert!(!book.expire(&n, ms(9000)), "a drained node is not dead");
    }

    #[derive(Clone, Debug)]
    enum Op {
        Advance(u64),
        Lead(Option<u64>),
        Confirm { term: u64, ago: u64 },
        Beat { node: u8, late: u64 },
        Expire(u8),
    }

    fn op() -> impl Strategy<Value = Op> {
        // Leadership changes are rare and confirmations mostly of the current term, so runs
        // reach long sequences of grants and verdicts within one leadership.
        prop_oneof![
            4 => (1u64..400).prop_map(Op::Advance),
            1 => proptest::option::weighted(0.9, 1u64..3).prop_map(Op::Lead),
            4 => (1u64..3, 0u64..200).prop_map(|(term, ago)| Op::Confirm { term, ago }),
            6 => (0u8..3, 0u64..300).prop_map(|(node, late)| Op::Beat { node, late }),
            3 => (0u8..3).prop_map(Op::Expire),
        ]
    }

    proptest! {
        /// Whatever arrives, late or in any order: every lease is granted in the term led at
        /// that moment, within the window after a confirmation of that term; and a node is
        /// declared dead only when its last lease ended at least a margin earlier (the lease
        /// counted, at the latest, from the arrival of the heartbeat it answered).
        #[test]
        fn no_lease_outlives_a_dead_verdict_and_none_is_granted_unconfirmed(
            ops in proptest::collection::vec(op(), 1..300)
        ) {
            let lease = Duration::from_millis(1000);
            let t0 = Instant::now();
            let mut now = t0;
            let mut book = LeaseBook::new(TIMING);
            // The model: the leadership, its confirmations, and every lease granted per node.
            let mut term: Option<u64> = None;
            let mut confirmations: Vec<Instant> = Vec::new();
            let mut leases: BTreeMap<u8, Vec<Instant>> = BTreeMap::new();
            for op in ops {
                match op {
                    Op::Advance(ms) => now += Duration::from_millis(ms),
                    Op::Lead(t) => {
                        book.lead(t);
                        term = t;
                        confirmations.clear();
                        leases.clear();
                    }
                    Op::Confirm { term: t, ago } => {
                        let at = now.checked_sub(Duration::from_millis(ago)).unwrap_or(t0).max(t0);
                        book.confirmed(t, at);
                        if Some(t) == term {
                            confirmations.push(at);
                        }
                    }
                    Op::Beat { node: n, late } => {
                        // Sent `late` ago, arriving now.
                        let sent = now.checked_sub(Duration::from_millis(late)).unwrap_or(t0).max(t0);
                        if let Some(granted_term) = book.may_grant(now) {
                            prop_assert_eq!(Some(granted_term), term);
                            prop_assert!(confirmations
                                .iter()
                                .any(|c| *c <= now && now - *c <= TIMING.grant_window));
                            book.granted(&node(n), now);
                            leases.entry(n).or_default().push(sent + lease);
                        }
                    }
                    Op::Expire(n) => {
                        if book.expire(&node(n), now) {
                            let ends = leases.remove(&n).unwrap_or_default();
                            for end in ends {
                                prop_assert!(end + (TIMING.dead_after - lease) <= now,
                                    "a lease ending at {:?} outlives the verdict at {:?}", end - t0, now - t0);
                            }
                        }
                    }
                }
            }
        }
    }
}
