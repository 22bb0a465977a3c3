//! Which session a received Control packet belongs to (RFC 5880 section 6.3, RFC 5881
//! sections 3 and 5, RFC 5883 sections 2 and 5), as pure lookups so they are tested without
//! sockets: by Your Discriminator when it is set, else by the source and local addresses; then
//! the TTL rule of the session's hop kind.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;

use super::Hop;

/// One BFD session: to whom, from where, how far.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SessionKey {
    /// The peer's address.
    pub peer: IpAddr,
    /// Our address (the BGP session's local address).
    pub local: IpAddr,
    /// Single hop or multihop.
    pub hop: Hop,
}

/// How a packet arrived, from its IP header and socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Arrival {
    /// The sender's address.
    pub src: IpAddr,
    /// The destination address of the IP header, when the kernel told it.
    pub dst: Option<IpAddr>,
    /// The received TTL or Hop Limit, when the kernel told it.
    pub ttl: Option<u8>,
    /// Received on the multihop port (4784) rather than the single-hop one (3784).
    pub multihop: bool,
}

/// Why a received datagram was dropped: the `reason` label of
/// `ironlb_bfd_packets_dropped_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub enum DropReason {
    /// Not a valid Control packet (see [`super::packet::DecodeError`]).
    #[error("malformed")]
    Malformed,
    /// A TTL below what the session's hop kind allows, or none reported (GTSM).
    #[error("ttl")]
    Ttl,
    /// No session has its discriminator, or none matches its addresses.
    #[error("no_session")]
    NoSession,
    /// Its discriminator names a session to another peer or of the other hop kind.
    #[error("wrong_session")]
    WrongSession,
    /// The session's state machine discarded it (AdminDown, or a check of its own).
    #[error("discarded")]
    Discarded,
}

impl DropReason {
    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            DropReason::Malformed => "malformed",
            DropReason::Ttl => "ttl",
            DropReason::NoSession => "no_session",
            DropReason::WrongSession => "wrong_session",
            DropReason::Discarded => "discarded",
        }
    }
}

/// The sessions by discriminator and by key.
#[derive(Debug, Default)]
pub struct Table {
    by_discr: HashMap<u32, SessionKey>,
    by_key: HashMap<SessionKey, NonZeroU32>,
}

impl Table {
    /// Adds a session.
    pub fn insert(&mut self, key: SessionKey, discr: NonZeroU32) {
        self.by_discr.insert(discr.get(), key);
        self.by_key.insert(key, discr);
    }

    /// Removes a session; its discriminator.
    pub fn remove(&mut self, key: &SessionKey) -> Option<NonZeroU32> {
        let discr = self.by_key.remove(key)?;
        self.by_discr.remove(&discr.get());
        Some(discr)
    }

    /// The discriminator of the session `key`.
    pub fn get(&self, key: &SessionKey) -> Option<NonZeroU32> {
        self.by_key.get(key).copied()
    }

    /// Whether `discr` names a session.
    pub fn taken(&self, discr: u32) -> bool {
        self.by_discr.contains_key(&discr)
    }

    /// The number of sessions.
    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }

    /// The session a packet with `your_discr` that arrived as `at` belongs to, TTL checked.
    pub fn lookup(&self, your_discr: u32, at: &Arrival) -> Result<NonZeroU32, DropReason> {
        // GTSM first on the single-hop port: no packet from beyond the link is looked at.
        if !at.multihop && !at.ttl.is_some_and(|t| Hop::Single.accepts_ttl(t)) {
            return Err(DropReason::Ttl);
        }
        let (key, discr) = if your_discr != 0 {
            let key = self
                .by_discr
                .get(&your_discr)
                .ok_or(DropReason::NoSession)?;
            if key.peer != at.src || is_multi(key.hop) != at.multihop {
                return Err(DropReason::WrongSession);
            }
            (
                key,
                NonZeroU32::new(your_discr).ok_or(DropReason::NoSession)?,
            )
        } else {
            // Your Discriminator 0: the peer has not heard us yet (RFC 5881 section 3: by
            // source address and interface; the local address stands for the interface).
            self.by_key
                .iter()
                .find(|(k, _)| {
                    k.peer == at.src
                        && is_multi(k.hop) == at.multihop
                        && at.dst.is_none_or(|d| d == k.local)
                })
                .map(|(k, d)| (k, *d))
                .ok_or(DropReason::NoSession)?
        };
        if !at.ttl.is_some_and(|t| key.hop.accepts_ttl(t)) {
            return Err(DropReason::Ttl);
        }
        Ok(discr)
    }
}

fn is_multi(hop: Hop) -> bool {
    matches!(hop, Hop::Multi { .. })
}

/// A random discriminator no session has (RFC 5880 section 6.8.1 wants them unique and
/// random); `random` supplies candidates.
pub fn new_discriminator(table: &Table, mut random: impl FnMut() -> u32) -> NonZeroU32 {
    loop {
        if let Some(d) = NonZeroU32::new(random()) {
            if !table.taken(d.get()) {
                return d;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn key(peer: &str, local: &str, hop: Hop) -> SessionKey {
        SessionKey {
            peer: ip(peer),
            local: ip(local),
            hop,
        }
    }

    fn at(src: &str, dst: &str, ttl: u8, multihop: bool) -> Arrival {
        Arrival {
            src: ip(src),
            dst: Some(ip(dst)),
            ttl: Some(ttl),
            multihop,
        }
    }

    fn d(n: u32) -> NonZeroU32 {
        NonZeroU32::new(n).unwrap()
    }

    fn table() -> Table {
        let mut t = Table::default();
        t.insert(key("192.0.2.1", "192.0.2.10", Hop::Single), d(7));
        t.insert(key("192.0.2.1", "192.0.2.11", Hop::Single), d(8));
        t.insert(
            key(
                "198.51.100.1",
                "192.0.2.10",
                Hop::Multi { minimum_ttl: 250 },
            ),
            d(9),
        );
        t.insert(key("2001:db8::1", "2001:db8::10", Hop::Single), d(10));
        t
    }

    #[test]
    fn your_discriminator_finds_the_session_when_the_peer_and_port_match() {
        let t = table();
        assert_eq!(
            t.lookup(7, &at("192.0.2.1", "192.0.2.10", 255, false)),
            Ok(d(7))
        );
        assert_eq!(
            t.lookup(10, &at("2001:db8::1", "2001:db8::10", 255, false)),
            Ok(d(10))
        );
        assert_eq!(
            t.lookup(7, &at("192.0.2.2", "192.0.2.10", 255, false)),
            Err(DropReason::WrongSession)
        );
        assert_eq!(
            t.lookup(9, &at("198.51.100.1", "192.0.2.10", 255, false)),
            Err(DropReason::WrongSession)
        );
        assert_eq!(
            t.lookup(42, &at("192.0.2.1", "192.0.2.10", 255, false)),
            Err(DropReason::NoSession)
        );
    }

    #[test]
    fn discriminator_zero_is_matched_by_source_and_local_address() {
        let t = table();
        assert_eq!(
            t.lookup(0, &at("192.0.2.1", "192.0.2.11", 255, false)),
            Ok(d(8))
        );
        assert_eq!(
            t.lookup(0, &at("192.0.2.1", "192.0.2.10", 255, false)),
            Ok(d(7))
        );
        assert_eq!(
            t.lookup(0, &at("198.51.100.1", "192.0.2.10", 251, true)),
            Ok(d(9))
        );
        assert_eq!(
            t.lookup(0, &at("192.0.2.1", "192.0.2.99", 255, false)),
            Err(DropReason::NoSession)
        );
        assert_eq!(
            t.lookup(0, &at("203.0.113.1", "192.0.2.10", 255, false)),
            Err(DropReason::NoSession)
        );
    }

    #[test]
    fn single_hop_takes_only_ttl_255_and_multihop_its_minimum() {
        let t = table();
        assert_eq!(
            t.lookup(7, &at("192.0.2.1", "192.0.2.10", 254, false)),
            Err(DropReason::Ttl)
        );
        // Before any lookup: a stranger's off-link packet is not even looked up.
        assert_eq!(
            t.lookup(42, &at("203.0.113.1", "192.0.2.10", 64, false)),
            Err(DropReason::Ttl)
        );
        let no_ttl = Arrival {
            ttl: None,
            ..at("192.0.2.1", "192.0.2.10", 255, false)
        };
        assert_eq!(t.lookup(7, &no_ttl), Err(DropReason::Ttl));
        assert_eq!(
            t.lookup(9, &at("198.51.100.1", "192.0.2.10", 250, true)),
            Ok(d(9))
        );
        assert_eq!(
            t.lookup(9, &at("198.51.100.1", "192.0.2.10", 249, true)),
            Err(DropReason::Ttl)
        );
    }

    #[test]
    fn removed_sessions_are_gone_both_ways_and_discriminators_are_fresh() {
        let mut t = table();
        let k = key("192.0.2.1", "192.0.2.10", Hop::Single);
        assert_eq!(t.remove(&k), Some(d(7)));
        assert!(!t.taken(7) && t.get(&k).is_none() && t.len() == 3);
        let mut candidates = [0, 8, 9, 8, 11].into_iter();
        let fresh = new_discriminator(&t, || candidates.next().unwrap());
        assert_eq!(fresh, d(11));
    }
}
