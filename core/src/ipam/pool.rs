//! A pool as the allocator sees it: its address space, who may use it, and its free space.

use std::collections::BTreeSet;
use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::range::{from_u128, is_buggy, to_u128, AddrRange, Family, RangeSet};
use super::request::AllocationRequest;
use crate::labels::Selector;
use crate::names::{Namespace, PoolName};

/// Restricts a pool to some Services and sets its priority (`spec.serviceAllocation`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceAllocation {
    /// Lower numbers are tried first; 0 (unset) comes after every positive priority.
    pub priority: u32,
    /// Namespaces whose Services may use the pool (with `namespace_selectors`: either).
    pub namespaces: BTreeSet<Namespace>,
    /// Namespaces matching any of these may use the pool.
    pub namespace_selectors: Vec<Selector>,
    /// Services matching any of these may use the pool (and the namespace rule must hold too).
    pub service_selectors: Vec<Selector>,
}

/// Why a pool's `serviceAllocation` does not admit a Service.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum NotAdmitted {
    /// The namespace is neither listed nor selected.
    Namespace(Namespace),
    /// No service selector matches the Service's labels.
    ServiceLabels,
}

impl fmt::Display for NotAdmitted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NotAdmitted::Namespace(ns) => write!(f, "does not admit namespace {ns}"),
            NotAdmitted::ServiceLabels => f.write_str("does not admit the Service's labels"),
        }
    }
}

impl ServiceAllocation {
    /// Whether the pool admits this Service: its namespace is listed or selected (when either
    /// is given), and one service selector matches (when any is given).
    pub fn admits(&self, req: &AllocationRequest) -> Result<(), NotAdmitted> {
        let ns = req.service.namespace();
        let restricts_ns = !self.namespaces.is_empty() || !self.namespace_selectors.is_empty();
        if restricts_ns
            && !self.namespaces.contains(ns)
            && !self
                .namespace_selectors
                .iter()
                .any(|s| s.matches(&req.namespace_labels))
        {
            return Err(NotAdmitted::Namespace(ns.clone()));
        }
        if !self.service_selectors.is_empty()
            && !self
                .service_selectors
                .iter()
                .any(|s| s.matches(&req.service_labels))
        {
            return Err(NotAdmitted::ServiceLabels);
        }
        Ok(())
    }
}

/// A pool as configured: the allocator's input, built by the config layer from an
/// IPAddressPool once it has been validated.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolSpec {
    /// The pool's name.
    pub name: PoolName,
    /// Its addresses, in the order given.
    pub ranges: Vec<AddrRange>,
    /// Whether Services that ask for no pool may get addresses from it.
    pub auto_assign: bool,
    /// Whether to skip IPv4 addresses ending in .0 and .255.
    pub avoid_buggy_ips: bool,
    /// Which Services may use it, and its priority.
    pub service_allocation: Option<ServiceAllocation>,
}

impl PoolSpec {
    /// A plain auto-assigned pool.
    pub fn new(name: PoolName, ranges: Vec<AddrRange>) -> Self {
        Self {
            name,
            ranges,
            auto_assign: true,
            avoid_buggy_ips: false,
            service_allocation: None,
        }
    }

    /// Whether the address is one this pool hands out (inside a range, and not a skipped
    /// .0/.255).
    pub fn owns(&self, addr: IpAddr) -> bool {
        !(self.avoid_buggy_ips && is_buggy(addr)) && self.ranges.iter().any(|r| r.contains(addr))
    }

    /// Whether the pool admits the Service.
    pub fn admits(&self, req: &AllocationRequest) -> Result<(), NotAdmitted> {
        self.service_allocation
            .as_ref()
            .map_or(Ok(()), |sa| sa.admits(req))
    }

    /// The addresses the pool hands out, per family, as a set of ranges: its ranges without the
    /// .0/.255 addresses when those are avoided. Only IPv4 /24 boundaries are walked, never
    /// single addresses.
    pub(crate) fn usable(&self) -> [RangeSet; 2] {
        let mut sets = [RangeSet::new(), RangeSet::new()];
        for r in &self.ranges {
            let set = &mut sets[r.family().index()];
            let (lo, hi) = (to_u128(r.start()), to_u128(r.end()));
            if !(self.avoid_buggy_ips && r.family() == Family::V4) {
                set.insert(lo, hi);
                continue;
            }
            // Each /24 contributes the part of [lo, hi] within x.1..=x.254.
            let mut block = lo & !0xff;
            while block <= hi {
                let (a, b) = (lo.max(block + 1), hi.min(block + 254));
                if a <= b {
                    set.insert(a, b);
                }
                block += 0x100;
            }
        }
        sets
    }
}

/// A pool with its free space.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Pool {
    pub(crate) spec: PoolSpec,
    /// How many addresses of each family the pool hands out.
    pub(crate) total: [u128; 2],
    /// Addresses neither held by a Service nor reserved, per family.
    pub(crate) free: [RangeSet; 2],
}

impl Pool {
    /// A pool whose every usable address is free.
    pub(crate) fn new(spec: PoolSpec) -> Self {
        let free = spec.usable();
        let total = [free[0].len(), free[1].len()];
        Self { spec, total, free }
    }

    /// Whether the pool has any address of this family.
    pub(crate) fn has_family(&self, family: Family) -> bool {
        self.total[family.index()] > 0
    }

    /// The lowest free address of a family.
    pub(crate) fn lowest_free(&self, family: Family) -> Option<IpAddr> {
        self.free[family.index()]
            .first()
            .map(|n| from_u128(family, n))
    }

    /// Marks a free address taken; false if it was not free.
    pub(crate) fn take(&mut self, addr: IpAddr) -> bool {
        self.free[Family::of(addr).index()].remove(to_u128(addr))
    }

    /// Returns an address to the free space. The caller has checked the pool owns it.
    pub(crate) fn put_back(&mut self, addr: IpAddr) {
        let n = to_u128(addr);
        self.free[Family::of(addr).index()].insert(n, n);
    }

    /// Counts for one family.
    pub(crate) fn counts(&self, family: Family) -> FamilyCounts {
        let total = self.total[family.index()];
        let available = self.free[family.index()].len();
        FamilyCounts {
            total,
            in_use: total - available,
            available,
        }
    }
}

/// How many addresses of one family a pool has, uses and has left.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FamilyCounts {
    /// Addresses the pool hands out (skipped .0/.255 not counted).
    pub total: u128,
    /// Addresses held by a Service or reserved.
    pub in_use: u128,
    /// Addresses free.
    pub available: u128,
}

/// A pool's counts for both families.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolStats {
    /// IPv4 counts.
    pub ipv4: FamilyCounts,
    /// IPv6 counts.
    pub ipv6: FamilyCounts,
}

impl PoolStats {
    /// The counts for one family.
    pub fn family(&self, family: Family) -> FamilyCounts {
        match family {
            Family::V4 => self.ipv4,
            Family::V6 => self.ipv6,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(ranges: &[&str], avoid: bool) -> PoolSpec {
        PoolSpec {
            avoid_buggy_ips: avoid,
            ..PoolSpec::new(
                PoolName::new("p").unwrap(),
                ranges
                    .iter()
                    .map(|r| AddrRange::parse(r).unwrap())
                    .collect(),
            )
        }
    }

    #[test]
    fn counts_follow_metallb_including_buggy_addresses() {
        // MetalLB's own test values: /24 + /25 = 384, and 381 with avoidBuggyIPs.
        let p = Pool::new(spec(&["192.0.2.0/24", "198.51.100.128/25"], false));
        assert_eq!(p.counts(Family::V4).total, 384);
        let p = Pool::new(spec(&["192.0.2.0/24", "198.51.100.128/25"], true));
        assert_eq!(p.counts(Family::V4).total, 381);
        // A /16 loses a .0 and a .255 in each of its 256 /24s.
        let p = Pool::new(spec(&["10.1.0.0/16"], true));
        assert_eq!(p.counts(Family::V4).total, 65536 - 512);
        // A single .0 address with avoidBuggyIPs is an empty pool, not -1 (MetalLB's quirk).
        let p = Pool::new(spec(&["192.0.2.0/32"], true));
        assert_eq!(p.counts(Family::V4).total, 0);
        // IPv6 is never affected, and a /64 counts exactly.
        let p = Pool::new(spec(&["2001:db8::/64"], true));
        assert_eq!(p.counts(Family::V6).total, 1u128 << 64);
        assert_eq!(p.free[1].range_count(), 1);
    }

    #[test]
    fn owns_respects_buggy_addresses() {
        let s = spec(&["192.0.2.0/24"], true);
        assert!(!s.owns("192.0.2.0".parse().unwrap()));
        assert!(!s.owns("192.0.2.255".parse().unwrap()));
        assert!(s.owns("192.0.2.1".parse().unwrap()));
        assert!(!s.owns("198.51.100.1".parse().unwrap()));
    }
}
