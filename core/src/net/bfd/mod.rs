//! BFD, Bidirectional Forwarding Detection (RFC 5880) in Asynchronous mode, over UDP to one
//! peer a hop away (RFC 5881) or more (RFC 5883): what MetalLB's BFDProfile configures for a
//! BGP session, so a dead link or peer takes the session down in under a second instead of a
//! hold time.
//!
//! The pieces, each knowing less than the one after it:
//! - [`packet`]: Control packets, bytes only: the codec and the reception checks a packet can
//!   fail on its own (version, lengths, Detect Mult, the M bit, the discriminators, and the A
//!   bit, as ironlb configures no authentication);
//! - [`fsm`]: one session as pure state with the clock passed in: the state machine, the
//!   timers, Poll/Final, passive mode and administrative control, tested back to back under a
//!   simulated clock;
//! - [`Hop`] below: ports and the TTL rule of the two encapsulations;
//! - [`demux`]: which session a packet belongs to (discriminator, else addresses) and the TTL
//!   checks, pure;
//! - [`socket`]: the UDP sockets, reading each packet's TTL and destination address;
//! - [`session`]: the one task per process that drives every [`fsm::Session`], and the
//!   [`Bfd`] handle the BGP sessions get their [`BfdSession`] from;
//! - [`profile`]: a BFDProfile as [`fsm::SessionConfig`] and [`Hop`];
//! - [`view`]: a session as the speaker's `GET /v1/bfd` and `ironlb ctl bfd` show it.
//!
//! Not implemented: Echo mode (we announce a Required Min Echo RX of zero), Demand mode (we
//! never ask for it; a peer's is honoured), authentication (refused). See docs/bfd.md.

pub mod demux;
pub mod fsm;
pub mod fuzz;
pub mod link;
pub mod packet;
pub mod profile;
pub mod session;
pub mod socket;
pub mod view;

pub use demux::{DropReason, SessionKey};
pub use fsm::SessionConfig;
pub use link::BgpBfd;
pub use profile::BfdSettings;
pub use session::{Bfd, BfdObserver, BfdSession, BfdStatus};
pub use view::BfdSessionView;

use std::ops::RangeInclusive;

/// The destination port of single-hop Control packets (RFC 5881 section 4).
pub const SINGLE_HOP_PORT: u16 = 3784;
/// The destination port of multihop Control packets (RFC 5883).
pub const MULTI_HOP_PORT: u16 = 4784;
/// The source ports Control packets must come from, one per session (RFC 5881 section 4).
pub const SOURCE_PORTS: RangeInclusive<u16> = 49152..=65535;
/// The TTL (IPv4) or Hop Limit (IPv6) of every packet sent: RFC 5881 section 5 requires it of
/// single-hop sessions, and it passes any minimum a multihop peer sets.
pub const SEND_TTL: u8 = 255;

/// How far the peer is: which port it listens on and which TTLs are believable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Hop {
    /// Directly connected (RFC 5881).
    Single,
    /// Behind routers (RFC 5883), with the BFDProfile's `minimumTtl`.
    Multi {
        /// The lowest TTL (or Hop Limit) accepted on received packets.
        minimum_ttl: u8,
    },
}

impl Hop {
    /// The peer's destination port.
    pub fn port(self) -> u16 {
        match self {
            Hop::Single => SINGLE_HOP_PORT,
            Hop::Multi { .. } => MULTI_HOP_PORT,
        }
    }

    /// Whether a packet received with this TTL (or Hop Limit) may be read. Single hop: only
    /// 255, which no packet from beyond the link can still have (GTSM, RFC 5082; RFC 5881
    /// section 5 without authentication). Multihop: at least the configured minimum.
    pub fn accepts_ttl(self, ttl: u8) -> bool {
        match self {
            Hop::Single => ttl == SEND_TTL,
            Hop::Multi { minimum_ttl } => ttl >= minimum_ttl,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_hop_takes_only_ttl_255_and_multihop_its_minimum() {
        assert_eq!(Hop::Single.port(), 3784);
        assert!(Hop::Single.accepts_ttl(255));
        assert!(!Hop::Single.accepts_ttl(254));
        let multi = Hop::Multi { minimum_ttl: 250 };
        assert_eq!(multi.port(), 4784);
        assert!(multi.accepts_ttl(250) && multi.accepts_ttl(255));
        assert!(!multi.accepts_ttl(249));
        assert!(SOURCE_PORTS.contains(&49152) && !SOURCE_PORTS.contains(&49151));
    }
}
