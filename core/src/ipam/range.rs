//! Address families, inclusive address ranges and sets of ranges.
//!
//! Addresses of both families are handled as `u128` inside one family, so that an IPv6 /64 is
//! as cheap as an IPv4 /24: nothing here ever walks addresses one by one.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::{Deserialize, Serialize};

/// An IP family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Family {
    /// IPv4.
    V4,
    /// IPv6.
    V6,
}

impl Family {
    /// Both families, IPv4 first.
    pub const ALL: [Family; 2] = [Family::V4, Family::V6];

    /// The family of an address.
    pub fn of(addr: IpAddr) -> Family {
        match addr {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }

    /// The Kubernetes spelling (`IPv4`, `IPv6`).
    pub fn as_str(self) -> &'static str {
        match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        }
    }

    /// Index into per-family arrays.
    pub(crate) fn index(self) -> usize {
        match self {
            Family::V4 => 0,
            Family::V6 => 1,
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An address as a number within its family.
pub(crate) fn to_u128(addr: IpAddr) -> u128 {
    match addr {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

/// The address with this number in this family.
///
/// Values come only from ranges built from addresses of that family, so an IPv4 value always
/// fits in 32 bits; the truncation below cannot lose bits.
pub(crate) fn from_u128(family: Family, n: u128) -> IpAddr {
    match family {
        Family::V4 => IpAddr::V4(Ipv4Addr::from(n as u32)),
        Family::V6 => IpAddr::V6(Ipv6Addr::from(n)),
    }
}

/// Whether an address is one that some old client firmware mistakes for a network or broadcast
/// address: an IPv4 address ending in .0 or .255 (MetalLB's `avoidBuggyIPs`).
pub fn is_buggy(addr: IpAddr) -> bool {
    match addr {
        IpAddr::V4(a) => matches!(a.octets()[3], 0 | 255),
        IpAddr::V6(_) => false,
    }
}

/// An inclusive range of addresses of one family, `start <= end`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AddrRange {
    start: IpAddr,
    end: IpAddr,
}

/// Why two addresses do not make a range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RangeError {
    /// The start is after the end.
    #[error("range start is after its end")]
    Reversed,
    /// The two ends are of different families.
    #[error("range mixes IPv4 and IPv6")]
    MixedFamilies,
    /// The text is neither a CIDR nor a `start-end` range.
    #[error("not a CIDR (192.0.2.0/24) or a range (192.0.2.10-192.0.2.20): {0}")]
    Syntax(String),
    /// A CIDR has bits set after its prefix.
    #[error("CIDR has host bits set; did you mean {0}?")]
    HostBits(String),
}

impl AddrRange {
    /// The range from `start` to `end`, both included.
    pub fn new(start: IpAddr, end: IpAddr) -> Result<Self, RangeError> {
        if Family::of(start) != Family::of(end) {
            return Err(RangeError::MixedFamilies);
        }
        if to_u128(start) > to_u128(end) {
            return Err(RangeError::Reversed);
        }
        Ok(Self { start, end })
    }

    /// The range holding one address.
    pub fn single(addr: IpAddr) -> Self {
        Self {
            start: addr,
            end: addr,
        }
    }

    /// Parses a pool entry: a CIDR (`192.0.2.0/24`, `2001:db8::/64`), a range
    /// (`192.0.2.10-192.0.2.20`, spaces around the dash allowed) or a single address (a /32 or
    /// /128).
    pub fn parse(text: &str) -> Result<Self, RangeError> {
        let text = text.trim();
        if let Some((a, b)) = text.split_once('-') {
            let start: IpAddr = a
                .trim()
                .parse()
                .map_err(|_| RangeError::Syntax(format!("{:?} is not an address", a.trim())))?;
            let end: IpAddr = b
                .trim()
                .parse()
                .map_err(|_| RangeError::Syntax(format!("{:?} is not an address", b.trim())))?;
            return Self::new(start, end);
        }
        if text.contains('/') {
            let net: ipnet::IpNet = text
                .parse()
                .map_err(|e: ipnet::AddrParseError| RangeError::Syntax(e.to_string()))?;
            if net.addr() != net.network() {
                return Err(RangeError::HostBits(net.trunc().to_string()));
            }
            return Self::new(net.network(), net.broadcast());
        }
        let addr: IpAddr = text
            .parse()
            .map_err(|_| RangeError::Syntax(format!("{text:?}")))?;
        Ok(Self::single(addr))
    }

    /// The first address.
    pub fn start(&self) -> IpAddr {
        self.start
    }

    /// The last address.
    pub fn end(&self) -> IpAddr {
        self.end
    }

    /// The family of both ends.
    pub fn family(&self) -> Family {
        Family::of(self.start)
    }

    /// How many addresses the range holds (an IPv6 /0 does not fit: it saturates).
    pub fn len(&self) -> u128 {
        (to_u128(self.end) - to_u128(self.start)).saturating_add(1)
    }

    /// Always false: a range holds at least one address.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Whether the address lies in the range.
    pub fn contains(&self, addr: IpAddr) -> bool {
        Family::of(addr) == self.family()
            && (to_u128(self.start)..=to_u128(self.end)).contains(&to_u128(addr))
    }

    /// Whether two ranges share an address.
    pub fn overlaps(&self, other: &AddrRange) -> bool {
        self.family() == other.family()
            && to_u128(self.start) <= to_u128(other.end)
            && to_u128(other.start) <= to_u128(self.end)
    }

    /// The fewest CIDRs that together hold exactly this range, lowest first (a BGP aggregation
    /// length is checked against each of them).
    pub fn cidrs(&self) -> Vec<ipnet::IpNet> {
        let bits: u32 = match self.family() {
            Family::V4 => 32,
            Family::V6 => 128,
        };
        // The last address of the aligned block of 2^size addresses starting at `lo`.
        let block_last = |lo: u128, size: u32| -> Option<u128> {
            if size >= 128 {
                (lo == 0).then_some(u128::MAX)
            } else {
                lo.checked_add((1u128 << size) - 1)
            }
        };
        let mut out = Vec::new();
        let mut lo = to_u128(self.start);
        let hi = to_u128(self.end);
        loop {
            // The largest aligned block starting at `lo` that does not pass `hi`.
            let mut size = if lo == 0 {
                bits
            } else {
                lo.trailing_zeros().min(bits)
            };
            let last = loop {
                match block_last(lo, size) {
                    Some(last) if last <= hi => break last,
                    // size 0 is the single address `lo`, which is <= hi, so this ends.
                    _ => size -= 1,
                }
            };
            let prefix = (bits - size) as u8;
            let net = match self.family() {
                Family::V4 => {
                    ipnet::Ipv4Net::new(Ipv4Addr::from(lo as u32), prefix).map(ipnet::IpNet::V4)
                }
                Family::V6 => ipnet::Ipv6Net::new(Ipv6Addr::from(lo), prefix).map(ipnet::IpNet::V6),
            };
            // The prefix is at most the family's width by construction, so `new` cannot fail.
            if let Ok(net) = net {
                out.push(net);
            }
            if last >= hi {
                break;
            }
            lo = last + 1;
        }
        out
    }
}

impl fmt::Display for AddrRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.start == self.end {
            return write!(f, "{}", self.start);
        }
        match self.cidrs().as_slice() {
            [one] => write!(f, "{one}"),
            _ => write!(f, "{}-{}", self.start, self.end),
        }
    }
}

/// A set of addresses of one family kept as disjoint, non-adjacent inclusive ranges, so that
/// insert, remove and lowest-member are O(log n) in the number of ranges whatever their sizes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RangeSet {
    /// start -> end (inclusive). Invariant: ranges are disjoint and never adjacent (adjacent
    /// ranges are merged), so equal sets have equal representations.
    ranges: BTreeMap<u128, u128>,
    /// How many addresses the set holds, kept so counting never walks the ranges.
    len: u128,
}

impl RangeSet {
    /// The empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many addresses the set holds.
    pub fn len(&self) -> u128 {
        self.len
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// How many disjoint ranges make up the set.
    pub fn range_count(&self) -> usize {
        self.ranges.len()
    }

    /// The lowest member.
    pub fn first(&self) -> Option<u128> {
        self.ranges.keys().next().copied()
    }

    /// Whether `n` is a member.
    pub fn contains(&self, n: u128) -> bool {
        self.ranges
            .range(..=n)
            .next_back()
            .is_some_and(|(_, &end)| end >= n)
    }

    /// Adds `lo..=hi`, which must not overlap the set (it holds only what is not already here);
    /// returns false and changes nothing if it would.
    pub fn insert(&mut self, lo: u128, hi: u128) -> bool {
        debug_assert!(lo <= hi);
        let prev = self.ranges.range(..=hi).next_back().map(|(&s, &e)| (s, e));
        if let Some((_, e)) = prev {
            if e >= lo {
                return false;
            }
        }
        let (mut start, mut end) = (lo, hi);
        if let Some((s, e)) = prev {
            if e.checked_add(1) == Some(lo) {
                self.ranges.remove(&s);
                start = s;
            }
        }
        if let Some(next_start) = hi.checked_add(1) {
            if let Some(next_end) = self.ranges.remove(&next_start) {
                end = next_end;
            }
        }
        self.ranges.insert(start, end);
        self.len += hi - lo + 1;
        true
    }

    /// Removes one member; returns false if it was not a member.
    pub fn remove(&mut self, n: u128) -> bool {
        let Some((&s, &e)) = self.ranges.range(..=n).next_back() else {
            return false;
        };
        if e < n {
            return false;
        }
        self.ranges.remove(&s);
        if s < n {
            self.ranges.insert(s, n - 1);
        }
        if n < e {
            self.ranges.insert(n + 1, e);
        }
        self.len -= 1;
        true
    }

    /// The ranges, lowest first.
    pub fn iter(&self) -> impl Iterator<Item = (u128, u128)> + '_ {
        self.ranges.iter().map(|(&s, &e)| (s, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn parses_cidrs_ranges_and_single_addresses() {
        let r = AddrRange::parse("192.0.2.0/24").unwrap();
        assert_eq!(
            (r.start(), r.end(), r.len()),
            (ip("192.0.2.0"), ip("192.0.2.255"), 256)
        );
        let r = AddrRange::parse("192.0.2.10 - 192.0.2.20").unwrap();
        assert_eq!(r.len(), 11);
        let r = AddrRange::parse("2001:db8::/64").unwrap();
        assert_eq!(r.len(), 1u128 << 64);
        assert_eq!(AddrRange::parse("192.0.2.7").unwrap().len(), 1);
        assert_eq!(
            AddrRange::parse("192.0.2.10-192.0.2.1"),
            Err(RangeError::Reversed)
        );
        assert_eq!(
            AddrRange::parse("192.0.2.1-2001:db8::1"),
            Err(RangeError::MixedFamilies)
        );
        assert_eq!(
            AddrRange::parse("192.0.2.1/24"),
            Err(RangeError::HostBits("192.0.2.0/24".into()))
        );
        assert!(matches!(
            AddrRange::parse("192.0.2.0/33"),
            Err(RangeError::Syntax(_))
        ));
        assert!(matches!(
            AddrRange::parse("banana"),
            Err(RangeError::Syntax(_))
        ));
    }

    #[test]
    fn ranges_split_into_minimal_cidrs() {
        let cidrs = |s: &str| -> Vec<String> {
            AddrRange::parse(s)
                .unwrap()
                .cidrs()
                .iter()
                .map(|c| c.to_string())
                .collect()
        };
        assert_eq!(cidrs("192.0.2.0/24"), ["192.0.2.0/24"]);
        assert_eq!(
            cidrs("192.0.2.10-192.0.2.20"),
            [
                "192.0.2.10/31",
                "192.0.2.12/30",
                "192.0.2.16/30",
                "192.0.2.20/32"
            ]
        );
        assert_eq!(cidrs("0.0.0.0-255.255.255.255"), ["0.0.0.0/0"]);
        assert_eq!(cidrs("::/0"), ["::/0"]);
    }

    #[test]
    fn range_sets_merge_and_split() {
        let mut s = RangeSet::new();
        assert!(s.insert(10, 20));
        assert!(s.insert(21, 30));
        assert_eq!(s.range_count(), 1);
        assert!(!s.insert(15, 15));
        assert!(s.remove(15));
        assert_eq!(s.range_count(), 2);
        assert_eq!(s.len(), 20);
        assert!(!s.contains(15));
        assert!(s.insert(15, 15));
        assert_eq!(s.iter().collect::<Vec<_>>(), [(10, 30)]);
        assert!(s.remove(10));
        assert_eq!(s.first(), Some(11));
        assert!(!s.remove(10));
        assert!(s.insert(u128::MAX - 1, u128::MAX));
        assert!(s.contains(u128::MAX));
    }
}
