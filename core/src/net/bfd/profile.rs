//! A BFDProfile in the protocol's terms: the state machine's settings and how far the peer is
//! (made from the configuration's `BfdProfile` by `BfdProfile::settings`, as `net` knows nothing
//! of the configuration).

use super::fsm::SessionConfig;
use super::Hop;

/// What a BGP session's BFD runs with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BfdSettings {
    /// The timers and the passive role.
    pub config: SessionConfig,
    /// Single hop, or multihop with its minimum TTL.
    pub hop: Hop,
}
