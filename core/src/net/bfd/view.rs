//! What the BFD task tells of its sessions: the speaker's `GET /v1/bfd` and `ironlb ctl bfd`.

use std::net::IpAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::demux::SessionKey;
use super::fsm;
use super::Hop;
use crate::names::PeerName;

/// One BFD session as the task sees it now.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BfdSessionView {
    /// The BGPPeer whose BGP session created it.
    pub peer: PeerName,
    /// The peer's address.
    pub address: IpAddr,
    /// Our address.
    pub local: IpAddr,
    /// `single` (RFC 5881) or `multi` (RFC 5883).
    pub hop: String,
    /// Multihop: the lowest TTL accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minimum_ttl: Option<u8>,
    /// The local state: `admin_down`, `down`, `init` or `up`.
    pub state: String,
    /// The peer's state as last heard (`down` before anything is).
    pub remote_state: String,
    /// Why the local state last changed.
    pub diag: String,
    /// Our discriminator.
    pub local_discriminator: u32,
    /// The peer's discriminator, once heard.
    pub remote_discriminator: Option<u32>,
    /// The negotiated interval between our packets, in ms, while we send periodically.
    pub tx_interval_ms: Option<u64>,
    /// How long the peer may stay silent, in ms, once it has sent something.
    pub detection_time_ms: Option<u64>,
    /// How many times it went from Up to Down other than by the peer's AdminDown.
    pub failures: u64,
    /// How many BGP sessions hold it (0 while it says goodbye).
    pub users: usize,
}

impl BfdSessionView {
    /// The view of session `key`, created for `peer`, run by `fsm`.
    pub(super) fn new(
        key: &SessionKey,
        peer: &PeerName,
        fsm: &fsm::Session,
        failures: u64,
        users: usize,
    ) -> Self {
        let (hop, minimum_ttl) = match key.hop {
            Hop::Single => ("single", None),
            Hop::Multi { minimum_ttl } => ("multi", Some(minimum_ttl)),
        };
        BfdSessionView {
            peer: peer.clone(),
            address: key.peer,
            local: key.local,
            hop: hop.into(),
            minimum_ttl,
            state: fsm.state().label().into(),
            remote_state: fsm.remote_state().label().into(),
            diag: fsm.diag().to_string(),
            local_discriminator: fsm.local_discriminator().get(),
            remote_discriminator: fsm.remote_discriminator().map(|d| d.get()),
            tx_interval_ms: fsm.tx_interval().map(millis),
            detection_time_ms: fsm.detection_time().map(millis),
            failures,
            users,
        }
    }
}

/// Whole milliseconds; BFD's intervals are microseconds on the wire, but no profile sets
/// less than 10 ms.
fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
