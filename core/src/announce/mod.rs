//! What each node announces, and the session that tells it: the messages between speakers and
//! the controller leader ([`proto`]), the pure choice of one Layer 2 owner per address
//! ([`owners`]), the leader's pure book of leases ([`lease_book`]), and the assignment
//! protocol's two ends ([`assignment`]).

pub mod assignment;
pub mod bgp;
pub mod lease_book;
pub mod owners;
pub mod proto;
