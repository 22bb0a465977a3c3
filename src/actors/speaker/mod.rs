//! The speaker's actors: [`NodeAgent`](node_agent::NodeAgent) (what to announce where),
//! [`ControllerSession`](session::ControllerSession) (heartbeats, lease, fencing, assignments),
//! and one [`ArpResponder`](responder::ArpResponder) and
//! [`NdpResponder`](responder::NdpResponder) per interface.

pub mod bgp;
pub mod health;
pub mod link;
pub mod node_agent;
pub mod responder;
pub mod session;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
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

/// Labels of the per-peer BGP metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PeerLabels {
    /// The BGPPeer's name.
    pub peer: String,
}

/// Labels of `ironlb_bgp_notifications_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NotificationLabels {
    /// The BGPPeer's name.
    pub peer: String,
    /// `sent` or `received`.
    pub direction: String,
    /// The error code and subcode, `4/0`.
    pub code: String,
}

/// The speaker's Prometheus metrics (`ironlb_*`, units in the names).
#[derive(Debug)]
pub struct SpeakerMetrics {
    registry: Registry,
    /// Addresses this node answers for in Layer 2 mode.
    pub l2_owned: Gauge,
    /// ARP requests seen on announcing interfaces.
    pub arp_requests: Counter,
    /// ARP replies sent.
    pub arp_replies: Counter,
    /// Neighbor Solicitations seen on announcing interfaces.
    pub ndp_solicitations: Counter,
    /// Neighbor Advertisements sent (solicited and unsolicited).
    pub ndp_advertisements: Counter,
    /// Gratuitous ARP and unsolicited Neighbor Advertisements sent.
    pub gratuitous: Counter,
    lease_remaining: Gauge<f64, AtomicU64>,
    /// Times the lease ran out and the speaker stopped answering.
    pub fences: Counter,
    bgp_up: Family<PeerLabels, Gauge>,
    bgp_transitions: Family<PeerLabels, Counter>,
    bgp_updates: Family<PeerLabels, Counter>,
    bgp_prefixes: Family<PeerLabels, Gauge>,
    bgp_notifications: Family<NotificationLabels, Counter>,
}

impl Default for SpeakerMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl SpeakerMetrics {
    /// A fresh registry with every metric registered.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let m = Self {
            registry: Registry::default(),
            l2_owned: Gauge::default(),
            arp_requests: Counter::default(),
            arp_replies: Counter::default(),
            ndp_solicitations: Counter::default(),
            ndp_advertisements: Counter::default(),
            gratuitous: Counter::default(),
            lease_remaining: Gauge::default(),
            fences: Counter::default(),
            bgp_up: Family::default(),
            bgp_transitions: Family::default(),
            bgp_updates: Family::default(),
            bgp_prefixes: Family::default(),
            bgp_notifications: Family::default(),
        };
        registry.register(
            "ironlb_l2_owned_addresses",
            "Addresses this node answers for in Layer 2 mode",
            m.l2_owned.clone(),
        );
        registry.register(
            "ironlb_arp_requests_received",
            "ARP requests received on announcing interfaces",
            m.arp_requests.clone(),
        );
        registry.register(
            "ironlb_arp_replies_sent",
            "ARP replies sent",
            m.arp_replies.clone(),
        );
        registry.register(
            "ironlb_ndp_solicitations_received",
            "Neighbor Solicitations received on announcing interfaces",
            m.ndp_solicitations.clone(),
        );
        registry.register(
            "ironlb_ndp_advertisements_sent",
            "Neighbor Advertisements sent, solicited and unsolicited",
            m.ndp_advertisements.clone(),
        );
        registry.register(
            "ironlb_gratuitous_announcements_sent",
            "Gratuitous ARP packets and unsolicited Neighbor Advertisements sent",
            m.gratuitous.clone(),
        );
        registry.register(
            "ironlb_lease_remaining_seconds",
            "Time left on this speaker's lease (0: fenced)",
            m.lease_remaining.clone(),
        );
        registry.register(
            "ironlb_speaker_fences",
            "Times this speaker's lease ran out and it stopped answering",
            m.fences.clone(),
        );
        registry.register(
            "ironlb_bgp_session_up",
            "1 while the BGP session to the peer is established",
            m.bgp_up.clone(),
        );
        registry.register(
            "ironlb_bgp_session_transitions",
            "Times the BGP session to the peer went up or down",
            m.bgp_transitions.clone(),
        );
        registry.register(
            "ironlb_bgp_updates_sent",
            "BGP UPDATE messages sent to the peer",
            m.bgp_updates.clone(),
        );
        registry.register(
            "ironlb_bgp_announced_prefixes",
            "Prefixes announced to the peer",
            m.bgp_prefixes.clone(),
        );
        registry.register(
            "ironlb_bgp_notifications",
            "BGP NOTIFICATION messages sent and received, by code and subcode",
            m.bgp_notifications.clone(),
        );
        Self { registry, ..m }
    }

    /// Renders the OpenMetrics text, with the lease read from `gate`.
    pub fn render(&self, gate: &LeaseGate) -> String {
        self.lease_remaining.set(gate.remaining().as_secs_f64());
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

impl crate::net::bgp::session::Observer for SpeakerMetrics {
    fn up(&self, peer: &crate::names::PeerName, up: bool) {
        let l = PeerLabels {
            peer: peer.to_string(),
        };
        let g = self.bgp_up.get_or_create(&l);
        let was = g.get() == 1;
        if was != up {
            g.set(i64::from(up));
            self.bgp_transitions.get_or_create(&l).inc();
        }
    }

    fn updates_sent(&self, peer: &crate::names::PeerName, n: u64) {
        self.bgp_updates
            .get_or_create(&PeerLabels {
                peer: peer.to_string(),
            })
            .inc_by(n);
    }

    fn announced(&self, peer: &crate::names::PeerName, n: usize) {
        self.bgp_prefixes
            .get_or_create(&PeerLabels {
                peer: peer.to_string(),
            })
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    fn notification(&self, peer: &crate::names::PeerName, sent: bool, code: u8, subcode: u8) {
        self.bgp_notifications
            .get_or_create(&NotificationLabels {
                peer: peer.to_string(),
                direction: if sent { "sent" } else { "received" }.into(),
                code: format!("{code}/{subcode}"),
            })
            .inc();
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

    #[test]
    fn metrics_render_with_their_names() {
        let m = SpeakerMetrics::new();
        m.arp_replies.inc();
        let text = m.render(&LeaseGate::default());
        for name in [
            "ironlb_l2_owned_addresses 0",
            "ironlb_arp_requests_received_total 0",
            "ironlb_arp_replies_sent_total 1",
            "ironlb_ndp_solicitations_received_total 0",
            "ironlb_ndp_advertisements_sent_total 0",
            "ironlb_gratuitous_announcements_sent_total 0",
            "ironlb_lease_remaining_seconds 0",
        ] {
            assert!(text.contains(name), "{name} missing:\n{text}");
        }
    }
}
