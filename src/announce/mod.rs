//! What each node announces, and the session that tells it: the messages between speakers and
//! the controller leader ([`proto`]), and the pure choice of one Layer 2 owner per address
//! ([`owners`]).

pub mod bgp;
pub mod owners;
pub mod proto;
