//! The speaker session: what travels between a speaker and the controller member it talks to,
//! on the Raft port's `Speaker` channel, as length-delimited bincode frames.
//!
//! The speaker holds a session with every member and sends each [`Heartbeat`] to all of them;
//! the leader answers with a [`ToSpeaker::Lease`] for it (the others say they do not lead), so
//! a new leader hears from every speaker within one heartbeat of its election. The speaker's
//! lease runs from the moment it *sent* the heartbeat. Assignments are pushed down whenever
//! they change, as deltas on the one the speaker last applied. Enums are encoded by variant
//! index: append variants, never reorder.

use std::collections::BTreeSet;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use ipnet::IpNet;

use super::bgp::BgpRoute;
use crate::config::model::{InterfaceName, Peer};
use crate::health_check::HealthCheck;
use crate::labels::Labels;
use crate::names::{PeerName, ServiceKey};

/// Which leadership an assignment comes from (its Raft term and leader), and its revision
/// within it: revisions of different leaders are unrelated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AssignmentId {
    /// The leader's Raft term.
    pub term: u64,
    /// The leader's member id.
    pub leader: u64,
    /// Counts the assignments this leader sent to this speaker.
    pub revision: u64,
}

/// One address a speaker answers for in Layer 2 mode.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct L2Address {
    /// The address.
    pub address: IpAddr,
    /// The Services holding it (several when shared).
    pub services: Vec<ServiceKey>,
    /// The interfaces to answer on; empty means every interface.
    pub interfaces: Vec<InterfaceName>,
}

/// What a speaker is to announce: a whole new set, or a change to the one it has.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assignment {
    /// This assignment.
    pub id: AssignmentId,
    /// `None`: replace everything the speaker has. `Some(base)`: applies only on top of
    /// `base`; a speaker holding anything else ignores it and asks for a whole set.
    pub base: Option<AssignmentId>,
    /// Addresses added or changed.
    pub upsert: Vec<L2Address>,
    /// Addresses no longer announced.
    pub remove: Vec<IpAddr>,
    /// What the speaker needs to know of the Services it may answer for, to judge its own
    /// readiness (health checks, local endpoints): all of them, in a whole set.
    pub services: Option<Vec<ServiceAnnounce>>,
    /// In a change: Services added or changed.
    pub services_upsert: Vec<ServiceAnnounce>,
    /// In a change: Services no longer announced.
    pub services_remove: Vec<ServiceKey>,
    /// The BGP sessions the node opens, when they changed (always in a whole set).
    pub peers: Option<Vec<(PeerName, Peer)>>,
    /// BGP routes added or changed.
    pub routes_upsert: Vec<BgpRoute>,
    /// BGP routes withdrawn.
    pub routes_remove: Vec<(IpNet, PeerName)>,
}

/// A Service announced in Layer 2 mode, as a speaker judges its readiness for it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ServiceAnnounce {
    /// The Service.
    pub service: ServiceKey,
    /// Its local health check, if it names one.
    pub health_check: Option<HealthCheck>,
    /// `externalTrafficPolicy: Local`: only nodes with a serving endpoint may answer.
    pub local: bool,
}

/// A speaker's periodic report.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    /// Increases with every heartbeat of this speaker process; the lease answers it.
    pub seq: u64,
    /// The node's labels (what advertisement node selectors match).
    pub labels: Labels,
    /// The node's interfaces that may announce.
    pub interfaces: Vec<InterfaceName>,
    /// Services this node must not answer for (a failing health check, no local endpoint).
    pub unready: BTreeSet<ServiceKey>,
    /// The assignment the speaker has applied, if any.
    pub applied: Option<AssignmentId>,
    /// The speaker holds nothing from this leader yet (new session, fenced, or a delta it
    /// could not apply): send a whole assignment.
    pub want_full: bool,
    /// The speaker's lease ran out and it announces nothing.
    pub fenced: bool,
    /// The node must not answer for anything: excluded from load balancers by its label, or its
    /// network is unavailable (Kubernetes mode).
    pub excluded: bool,
}

/// From a speaker to a controller member.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ToController {
    /// Liveness, readiness and acknowledgement.
    Heartbeat(Heartbeat),
    /// The speaker has stopped announcing everything and is leaving: move its addresses now.
    Drain,
}

/// From a controller member to a speaker.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ToSpeaker {
    /// The heartbeat `seq` is acknowledged: the lease lasts `lease_ms` from when it was sent.
    Lease {
        /// The heartbeat answered.
        seq: u64,
        /// The lease's length.
        lease_ms: u64,
        /// How often to send heartbeats.
        heartbeat_ms: u64,
        /// The granting leader's Raft term: a speaker follows the newest leadership it has heard
        /// of and ignores an older one's leases and assignments.
        term: u64,
        /// The granting leader's member id.
        leader: u64,
    },
    /// What to announce.
    Assignment(Box<Assignment>),
    /// This member does not lead; the leader's Raft address, if known.
    NotLeader {
        /// Where the leader listens.
        leader: Option<String>,
    },
    /// No leader can confirm a quorum here: no lease.
    NoQuorum,
    /// The drain is done: the speaker's addresses have other owners (or none can take them).
    Drained,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::network::wire;

    #[test]
    fn messages_round_trip_through_the_wire_encoding() {
        let hb = ToController::Heartbeat(Heartbeat {
            seq: 7,
            labels: [("zone".to_string(), "a".to_string())].into(),
            interfaces: vec![InterfaceName::new("eth0").unwrap()],
            unready: ["default/web".parse().unwrap()].into(),
            applied: Some(AssignmentId {
                term: 3,
                leader: 1,
                revision: 9,
            }),
            want_full: false,
            fenced: false,
            excluded: false,
        });
        let bytes = wire::encode("heartbeat", &hb).unwrap();
        assert_eq!(
            wire::decode::<ToController>("heartbeat", &bytes).unwrap(),
            hb
        );
        let a = ToSpeaker::Assignment(Box::new(Assignment {
            id: AssignmentId {
                term: 3,
                leader: 1,
                revision: 10,
            },
            base: None,
            upsert: vec![L2Address {
                address: "192.0.2.10".parse().unwrap(),
                services: vec!["default/web".parse().unwrap()],
                interfaces: vec![],
            }],
            remove: vec![],
            services: Some(vec![ServiceAnnounce {
                service: "default/web".parse().unwrap(),
                health_check: Some(HealthCheck::Tcp { port: 80 }),
                local: false,
            }]),
            peers: Some(vec![]),
            routes_upsert: vec![BgpRoute {
                prefix: "192.0.2.10/32".parse().unwrap(),
                peer: "tor".parse().unwrap(),
                attrs: Default::default(),
            }],
            routes_remove: vec![],
            services_upsert: vec![],
            services_remove: vec![],
        }));
        let bytes = wire::encode("assignment", &a).unwrap();
        assert_eq!(wire::decode::<ToSpeaker>("assignment", &bytes).unwrap(), a);
    }
}
