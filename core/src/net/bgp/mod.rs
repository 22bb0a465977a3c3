//! BGP (RFC 4271) as ironlb's speakers speak it: messages built and read with
//! netgauze-bgp-pkt ([`packet`]), the session's state machine and timers over tokio TCP
//! ([`session`]), its socket (source address, TTL, VRF: [`socket`]), TCP MD5 signatures
//! ([`md5`]), the path attributes it sets ([`attrs`]), and the routes shared by
//! a speaker's sessions ([`table`]).
//!
//! The speaker only announces: it opens sessions to the configured peers (routers listen), sends
//! its routes, keeps the session alive, and validates everything it receives, answering
//! anything malformed or out of order with the right NOTIFICATION.

pub mod attrs;
pub mod families;
pub mod md5;
pub mod packet;
pub mod session;
pub mod socket;
pub mod table;
