//! The speaker's metric families: Layer 2 answers, the lease, BGP sessions and notifications.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::speaker::LeaseGate;

/// Labels of the per-peer BGP metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PeerLabels {
    /// The BGPPeer's name.
    pub peer: String,
}

/// Labels of `ironlb_speaker_connected`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MemberLabels {
    /// The controller member's address, as the speaker dials it.
    pub member: String,
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

/// Labels of `ironlb_bfd_session_state_changes_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BfdStateLabels {
    /// The BGPPeer's name.
    pub peer: String,
    /// The state entered: `admin_down`, `down`, `init` or `up`.
    pub state: String,
}

/// Labels of `ironlb_bfd_packets_dropped_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DropLabels {
    /// Why (see `net::bfd::DropReason`).
    pub reason: String,
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
    /// The length of the last lease granted, seconds.
    pub lease_duration: Gauge<f64, AtomicU64>,
    /// From sending a heartbeat to receiving the lease that answers it, seconds.
    pub heartbeat_rtt: Histogram,
    /// 1 per controller member the speaker holds a session with.
    connected: Family<MemberLabels, Gauge>,
    /// 1 while the session with the member that granted the last lease is up.
    pub leader_connected: Gauge,
    /// Times the lease ran out and the speaker stopped answering.
    pub fences: Counter,
    bgp_up: Family<PeerLabels, Gauge>,
    bgp_transitions: Family<PeerLabels, Counter>,
    bgp_updates: Family<PeerLabels, Counter>,
    bgp_prefixes: Family<PeerLabels, Gauge>,
    bgp_notifications: Family<NotificationLabels, Counter>,
    bfd_up: Family<PeerLabels, Gauge>,
    bfd_changes: Family<BfdStateLabels, Counter>,
    bfd_dropped: Family<DropLabels, Counter>,
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
            lease_duration: Gauge::default(),
            // 250 µs to about 8 s.
            heartbeat_rtt: Histogram::new(exponential_buckets(0.00025, 2.0, 16)),
            connected: Family::default(),
            leader_connected: Gauge::default(),
            fences: Counter::default(),
            bgp_up: Family::default(),
            bgp_transitions: Family::default(),
            bgp_updates: Family::default(),
            bgp_prefixes: Family::default(),
            bgp_notifications: Family::default(),
            bfd_up: Family::default(),
            bfd_changes: Family::default(),
            bfd_dropped: Family::default(),
        };
        m.register_l2(&mut registry);
        m.register_lease(&mut registry);
        m.register_bgp(&mut registry);
        m.register_bfd(&mut registry);
        Self { registry, ..m }
    }

    /// Registers the Layer 2 families: owned addresses, ARP and NDP traffic.
    fn register_l2(&self, registry: &mut Registry) {
        registry.register(
            "ironlb_l2_owned_addresses",
            "Addresses this node answers for in Layer 2 mode",
            self.l2_owned.clone(),
        );
        registry.register(
            "ironlb_arp_requests_received",
            "ARP requests received on announcing interfaces",
            self.arp_requests.clone(),
        );
        registry.register(
            "ironlb_arp_replies_sent",
            "ARP replies sent",
            self.arp_replies.clone(),
        );
        registry.register(
            "ironlb_ndp_solicitations_received",
            "Neighbor Solicitations received on announcing interfaces",
            self.ndp_solicitations.clone(),
        );
        registry.register(
            "ironlb_ndp_advertisements_sent",
            "Neighbor Advertisements sent, solicited and unsolicited",
            self.ndp_advertisements.clone(),
        );
        registry.register(
            "ironlb_gratuitous_announcements_sent",
            "Gratuitous ARP packets and unsolicited Neighbor Advertisements sent",
            self.gratuitous.clone(),
        );
    }

    /// Registers the lease families.
    fn register_lease(&self, registry: &mut Registry) {
        registry.register(
            "ironlb_lease_remaining_seconds",
            "Time left on this speaker's lease (0: fenced)",
            self.lease_remaining.clone(),
        );
        registry.register(
            "ironlb_lease_duration_seconds",
            "Length of the last lease granted to this speaker",
            self.lease_duration.clone(),
        );
        registry.register(
            "ironlb_speaker_heartbeat_rtt_seconds",
            "From sending a heartbeat to receiving the lease that answers it (lease renewal latency)",
            self.heartbeat_rtt.clone(),
        );
        registry.register(
            "ironlb_speaker_connected",
            "1 while this speaker holds a session with the controller member",
            self.connected.clone(),
        );
        registry.register(
            "ironlb_speaker_leader_connected",
            "1 while the session with the member that granted the last lease is up",
            self.leader_connected.clone(),
        );
        registry.register(
            "ironlb_speaker_fences",
            "Times this speaker's lease ran out and it stopped answering",
            self.fences.clone(),
        );
    }

    /// Registers the per-peer BGP families.
    fn register_bgp(&self, registry: &mut Registry) {
        registry.register(
            "ironlb_bgp_session_up",
            "1 while the BGP session to the peer is established",
            self.bgp_up.clone(),
        );
        registry.register(
            "ironlb_bgp_session_transitions",
            "Times the BGP session to the peer went up or down",
            self.bgp_transitions.clone(),
        );
        registry.register(
            "ironlb_bgp_updates_sent",
            "BGP UPDATE messages sent to the peer",
            self.bgp_updates.clone(),
        );
        registry.register(
            "ironlb_bgp_announced_prefixes",
            "Prefixes announced to the peer",
            self.bgp_prefixes.clone(),
        );
        registry.register(
            "ironlb_bgp_notifications",
            "BGP NOTIFICATION messages sent and received, by code and subcode",
            self.bgp_notifications.clone(),
        );
    }

    /// Registers the BFD families.
    fn register_bfd(&self, registry: &mut Registry) {
        registry.register(
            "ironlb_bfd_session_up",
            "1 while the BFD session of the BGP peer is Up",
            self.bfd_up.clone(),
        );
        registry.register(
            "ironlb_bfd_session_state_changes",
            "Times the BFD session of the BGP peer entered the state",
            self.bfd_changes.clone(),
        );
        registry.register(
            "ironlb_bfd_packets_dropped",
            "Received BFD datagrams dropped, by reason",
            self.bfd_dropped.clone(),
        );
    }

    /// Records whether the session with `member` is up.
    pub fn set_connected(&self, member: &str, up: bool) {
        self.connected
            .get_or_create(&MemberLabels {
                member: member.to_string(),
            })
            .set(i64::from(up));
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

impl crate::net::bfd::BfdObserver for SpeakerMetrics {
    fn state_changed(&self, peer: &crate::names::PeerName, to: crate::net::bfd::packet::State) {
        use crate::net::bfd::packet::State;
        let peer = peer.to_string();
        let up = self
            .bfd_up
            .get_or_create(&PeerLabels { peer: peer.clone() });
        up.set(i64::from(to == State::Up));
        self.bfd_changes
            .get_or_create(&BfdStateLabels {
                peer,
                state: to.label().into(),
            })
            .inc();
    }

    fn dropped(&self, reason: crate::net::bfd::DropReason) {
        self.bfd_dropped
            .get_or_create(&DropLabels {
                reason: reason.label().into(),
            })
            .inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_render_with_their_names() {
        let m = SpeakerMetrics::new();
        m.arp_replies.inc();
        let r1 = crate::names::PeerName::new("r1").unwrap();
        crate::net::bfd::BfdObserver::state_changed(&m, &r1, crate::net::bfd::packet::State::Up);
        crate::net::bfd::BfdObserver::dropped(&m, crate::net::bfd::DropReason::Ttl);
        let text = m.render(&LeaseGate::default());
        for name in [
            "ironlb_l2_owned_addresses 0",
            "ironlb_arp_requests_received_total 0",
            "ironlb_arp_replies_sent_total 1",
            "ironlb_ndp_solicitations_received_total 0",
            "ironlb_ndp_advertisements_sent_total 0",
            "ironlb_gratuitous_announcements_sent_total 0",
            "ironlb_lease_remaining_seconds 0",
            "ironlb_lease_duration_seconds 0",
            "ironlb_speaker_heartbeat_rtt_seconds_count 0",
            "ironlb_speaker_leader_connected 0",
            "ironlb_bfd_session_up{peer=\"r1\"} 1",
            "ironlb_bfd_session_state_changes_total{peer=\"r1\",state=\"up\"} 1",
            "ironlb_bfd_packets_dropped_total{reason=\"ttl\"} 1",
        ] {
            assert!(text.contains(name), "{name} missing:\n{text}");
        }
    }
}
