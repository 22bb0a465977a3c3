//! The speaker: [`process`] starts one on a node (its actors, the link to the controllers, the
//! health checks, the metrics endpoint). Its actors: [`NodeAgent`](agent::NodeAgent) (what to announce where),
//! [`ControllerSession`](session::ControllerSession) (heartbeats, lease, fencing, assignments),
//! and one [`ArpResponder`](responder::ArpResponder) and
//! [`NdpResponder`](responder::NdpResponder) per interface, the interfaces chosen and rescanned
//! by [`interfaces`].

pub mod agent;
pub mod bgp;
pub mod health;
pub mod interfaces;
pub mod link;
pub mod process;
pub mod responder;
pub mod session;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

/// Whether the speaker may answer at all: its lease, checked on every packet, so that fencing
/// does not wait for any actor to run.
///
/// Every set of addresses a responder answers for carries the gate's epoch of the moment the
/// session decided it. The epoch moves on whenever the lease lapses or is revoked, so after a
/// fence nothing decided before it is ever answered again, whatever the actors have or have not
/// processed yet, and even if a late lease reopens the gate: only an assignment applied under
/// the new epoch is answered.
#[derive(Debug)]
pub struct LeaseGate {
    base: Instant,
    /// Nanoseconds after `base` until which the lease runs; 0 is no lease.
    until: AtomicU64,
    /// Counts lapses and revocations.
    epoch: AtomicU64,
    /// The control plane is lost and `--on-control-plane-loss hold` keeps answering.
    hold: AtomicBool,
}

impl Default for LeaseGate {
    fn default() -> Self {
        Self {
            base: Instant::now(),
            until: AtomicU64::new(0),
            epoch: AtomicU64::new(1),
            hold: AtomicBool::new(false),
        }
    }
}

impl LeaseGate {
    /// Whether answering is allowed now (for anything decided in the current epoch).
    pub fn valid(&self) -> bool {
        self.hold.load(Ordering::SeqCst) || self.remaining() > Duration::ZERO
    }

    /// Whether answering for a set decided in `epoch` is allowed now.
    pub fn valid_for(&self, epoch: u64) -> bool {
        // The epoch is read after the lease: a lapse observed by `extend_to` advanced the epoch
        // before it stored a new lease, so a reader seeing the new lease sees the new epoch.
        let valid = self.valid();
        valid && self.epoch.load(Ordering::SeqCst) == epoch
    }

    /// The current epoch: what a set of addresses decided now is stamped with.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::SeqCst)
    }

    fn now(&self) -> u64 {
        self.base.elapsed().as_nanos() as u64
    }

    /// How long the lease still runs (zero without one; holding does not count).
    pub fn remaining(&self) -> Duration {
        let until = self.until.load(Ordering::SeqCst);
        Duration::from_nanos(until.saturating_sub(self.now()))
    }

    /// Extends the lease to `until` (never shortens it). A lease that had already lapsed does
    /// not simply resume: the epoch moves on first, so whatever was answered before the lapse
    /// stays silent until a new assignment is applied.
    pub fn extend_to(&self, until: Instant) {
        let nanos = until.saturating_duration_since(self.base).as_nanos() as u64;
        let current = self.until.load(Ordering::SeqCst);
        if current != 0 && current <= self.now() {
            self.epoch.fetch_add(1, Ordering::SeqCst);
        }
        self.until.fetch_max(nanos, Ordering::SeqCst);
    }

    /// Ends the lease now (and any hold), and every answer decided before.
    pub fn revoke(&self) {
        self.hold.store(false, Ordering::SeqCst);
        self.until.store(0, Ordering::SeqCst);
        self.epoch.fetch_add(1, Ordering::SeqCst);
    }

    /// Keeps (or stops keeping) answering without a lease.
    pub fn set_hold(&self, hold: bool) {
        self.hold.store(hold, Ordering::SeqCst);
    }

    /// Whether answering goes on without a lease.
    pub fn holding(&self) -> bool {
        self.hold.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_lapsed_lease_revived_by_a_late_grant_answers_nothing_decided_before() {
        let gate = LeaseGate::default();
        gate.extend_to(Instant::now() + Duration::from_millis(30));
        let decided = gate.epoch();
        assert!(gate.valid_for(decided));
        tokio::time::sleep(Duration::from_millis(40)).await;
        assert!(!gate.valid_for(decided));
        // A grant for a heartbeat sent before the lapse, arriving after it.
        gate.extend_to(Instant::now() + Duration::from_millis(500));
        assert!(gate.valid(), "the lease runs again");
        assert!(
            !gate.valid_for(decided),
            "but not for what was decided before the lapse"
        );
        assert!(gate.valid_for(gate.epoch()));
        // A revocation ends the new epoch as well.
        let now = gate.epoch();
        gate.revoke();
        gate.extend_to(Instant::now() + Duration::from_millis(500));
        assert!(!gate.valid_for(now));
    }

    #[tokio::test]
    async fn the_gate_opens_with_a_lease_and_closes_when_it_runs_out_or_is_revoked() {
        let gate = LeaseGate::default();
        assert!(!gate.valid());
        gate.extend_to(Instant::now() + Duration::from_millis(50));
        assert!(gate.valid());
        // Never shortened by an older grant.
        gate.extend_to(Instant::now());
        assert!(gate.valid());
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert!(!gate.valid());
        gate.set_hold(true);
        assert!(gate.valid() && gate.remaining() == Duration::ZERO);
        gate.extend_to(Instant::now() + Duration::from_secs(5));
        gate.revoke();
        assert!(!gate.valid() && !gate.holding());
    }
}
