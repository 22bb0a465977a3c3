//! The allocator's state and its operations: allocate, release, reserve, adopt, reconfigure,
//! explain.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::pool::{Pool, PoolSpec, PoolStats};
use super::range::{AddrRange, Family};
use super::refusal::{Conflict, PoolRejection, Refusal, RequestError};
use super::request::{AllocationRequest, FamilyPolicy, SharingKey};
use crate::names::{PoolName, ServiceKey};

/// What a Service holds: the request it was granted for, the pool and the addresses.
mod decide;
mod verify;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Allocation {
    /// The request as last granted (kept to re-check it when the configuration changes).
    pub request: AllocationRequest,
    /// The pool the addresses come from.
    pub pool: PoolName,
    /// The addresses, the primary family's first.
    pub addresses: Vec<IpAddr>,
}

/// How an address was chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Why {
    /// The Service asked for it.
    Requested,
    /// It is reserved for the Service.
    Reserved,
    /// Another Service with the same sharing key holds it and the two fit together.
    Shared,
    /// The lowest free address of the pool.
    LowestFree,
    /// The Service already held it.
    Kept,
}

impl fmt::Display for Why {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Why::Requested => "requested",
            Why::Reserved => "reserved for it",
            Why::Shared => "shared under its sharing key",
            Why::LowestFree => "lowest free address",
            Why::Kept => "already held",
        })
    }
}

/// A decision the allocator can carry out.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    /// The pool.
    pub pool: PoolName,
    /// The addresses and why each, primary family first.
    pub picks: Vec<(IpAddr, Why)>,
    /// Pools tried first and passed over, and why.
    pub skipped: Vec<(PoolName, PoolRejection)>,
}

impl Decision {
    fn addresses(&self) -> Vec<IpAddr> {
        self.picks.iter().map(|(a, _)| *a).collect()
    }
}

/// The answer of [`Allocator::explain`]: what an allocation would do, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Explanation {
    /// The Service.
    pub service: ServiceKey,
    /// The decision, or why there is none.
    pub outcome: Result<Decision, Refusal>,
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.outcome {
            Ok(d) => {
                let picks = d
                    .picks
                    .iter()
                    .map(|(a, why)| format!("{a} ({why})"))
                    .collect::<Vec<_>>()
                    .join(" and ");
                let verb = if d.picks.iter().all(|(_, w)| *w == Why::Kept) {
                    "keeps"
                } else {
                    "gets"
                };
                write!(f, "{} {verb} {picks} from pool {}", self.service, d.pool)?;
                for (p, why) in &d.skipped {
                    write!(f, "; pool {p} passed over: it {why}")?;
                }
                Ok(())
            }
            Err(r) => write!(f, "{} gets no address: {r}", self.service),
        }
    }
}

/// What a configuration change did to existing allocations.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recheck {
    /// Allocations the new configuration still allows, unchanged.
    pub kept: Vec<ServiceKey>,
    /// Allocations still allowed whose addresses now belong to a pool of another name (a
    /// renamed or split pool): the addresses stay, the pool is updated.
    pub rehomed: Vec<(ServiceKey, PoolName, PoolName)>,
    /// Allocations the new configuration forbids, and why. They keep their addresses (so no one
    /// else can take them) until they are released or allocated again.
    pub forbidden: Vec<(ServiceKey, Refusal)>,
}

/// Why a set of pools cannot be installed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PoolsError {
    /// Two pools share a name.
    #[error("pool {0} is defined twice")]
    DuplicateName(PoolName),
    /// Two ranges overlap.
    #[error("{first} of pool {first_pool} overlaps {second} of pool {second_pool}")]
    Overlap {
        /// One range.
        first: AddrRange,
        /// Its pool.
        first_pool: PoolName,
        /// The other range.
        second: AddrRange,
        /// Its pool.
        second_pool: PoolName,
    },
}

/// Why a reservation cannot be made or removed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum ReserveError {
    /// The address is in no pool.
    #[error("{0} is not in any pool")]
    NotInAnyPool(IpAddr),
    /// The address is reserved for another Service.
    #[error("{addr} is already reserved for {holder}")]
    ReservedForOther {
        /// The address.
        addr: IpAddr,
        /// Who holds the reservation.
        holder: ServiceKey,
    },
    /// Another Service holds the address now.
    #[error("{addr} is held by {holder}")]
    HeldByOther {
        /// The address.
        addr: IpAddr,
        /// Who holds it.
        holder: ServiceKey,
    },
    /// There is no reservation to remove.
    #[error("{0} is not reserved")]
    NotReserved(IpAddr),
}

/// The allocator: pools, who holds which address, and reservations.
///
/// Invariant: an address is in its pool's free set exactly when the pool hands it out, no
/// Service holds it and it is not reserved.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Allocator {
    pools: BTreeMap<PoolName, Pool>,
    /// First address of each configured range -> (the range, its pool): finds an address's
    /// pool in O(log ranges).
    ranges: BTreeMap<IpAddr, (AddrRange, PoolName)>,
    /// Boxed: a B-tree's nodes are a third empty on average, and the slack then costs a
    /// pointer per Service, not a whole allocation.
    services: BTreeMap<ServiceKey, Box<Allocation>>,
    /// Who holds each address, sorted. Almost always one Service, so a sorted Vec: a
    /// one-element BTreeSet would cost a whole B-tree node per address.
    holders: BTreeMap<IpAddr, Vec<ServiceKey>>,
    reservations: BTreeMap<IpAddr, ServiceKey>,
    reserved_by: BTreeMap<ServiceKey, BTreeSet<IpAddr>>,
    /// Addresses held under each sharing key, to find a sharable address without a scan.
    shared: BTreeMap<SharingKey, BTreeSet<IpAddr>>,
}

impl Allocator {
    /// An allocator with no pools.
    pub fn new() -> Self {
        Self::default()
    }

    /// Rebuilds an allocator from its records (what a snapshot keeps): the indexes are derived
    /// here, never stored, so their shape can change without a new format.
    pub fn from_records(
        pools: Vec<PoolSpec>,
        allocations: Vec<Allocation>,
        reservations: Vec<(IpAddr, ServiceKey)>,
    ) -> Result<Self, PoolsError> {
        let mut a = Self::new();
        for (addr, service) in reservations {
            a.reserved_by
                .entry(service.clone())
                .or_default()
                .insert(addr);
            a.reservations.insert(addr, service);
        }
        for alloc in allocations {
            let key = alloc.request.service.clone();
            for &addr in &alloc.addresses {
                add_holder(&mut a.holders, addr, &key);
                if let Some(k) = &alloc.request.sharing_key {
                    a.shared.entry(k.clone()).or_default().insert(addr);
                }
            }
            a.services.insert(key, Box::new(alloc));
        }
        // Takes every held and reserved address out of its pool's free set.
        a.set_pools(pools)?;
        Ok(a)
    }

    /// An allocator with these pools.
    pub fn with_pools(pools: Vec<PoolSpec>) -> Result<Self, PoolsError> {
        let mut a = Self::new();
        a.set_pools(pools)?;
        Ok(a)
    }

    // ----- queries -----

    /// The pool that hands out this address, if any.
    pub fn pool_of(&self, addr: IpAddr) -> Option<&PoolName> {
        let pool = self.pool_containing(addr)?;
        self.pools
            .get(pool)
            .is_some_and(|p| p.spec.owns(addr))
            .then_some(pool)
    }

    /// The pool whose ranges contain the address, even if it skips it as a .0/.255.
    fn pool_containing(&self, addr: IpAddr) -> Option<&PoolName> {
        let (_, (range, pool)) = self.ranges.range(..=addr).next_back()?;
        range.contains(addr).then_some(pool)
    }

    /// A Service's allocation.
    pub fn allocation(&self, service: &ServiceKey) -> Option<&Allocation> {
        self.services.get(service).map(|a| &**a)
    }

    /// Every allocation, by Service.
    pub fn allocations(&self) -> impl Iterator<Item = (&ServiceKey, &Allocation)> {
        self.services.iter().map(|(k, a)| (k, &**a))
    }

    /// How many Services hold addresses.
    pub fn allocation_count(&self) -> usize {
        self.services.len()
    }

    /// The Services holding an address.
    pub fn holders(&self, addr: IpAddr) -> impl Iterator<Item = &ServiceKey> {
        self.holders.get(&addr).into_iter().flatten()
    }

    /// Every held address and its holders.
    pub fn held_addresses(&self) -> impl Iterator<Item = (&IpAddr, &[ServiceKey])> {
        self.holders.iter().map(|(a, h)| (a, h.as_slice()))
    }

    /// Every reservation.
    pub fn reservations(&self) -> impl Iterator<Item = (&IpAddr, &ServiceKey)> {
        self.reservations.iter()
    }

    /// The configured pools.
    pub fn pools(&self) -> impl Iterator<Item = &PoolSpec> {
        self.pools.values().map(|p| &p.spec)
    }

    /// Counts per pool and family.
    pub fn stats(&self) -> BTreeMap<PoolName, PoolStats> {
        self.pools
            .iter()
            .map(|(name, p)| {
                let stats = PoolStats {
                    ipv4: p.counts(Family::V4),
                    ipv6: p.counts(Family::V6),
                };
                (name.clone(), stats)
            })
            .collect()
    }

    // ----- configuration -----

    /// Installs a new set of pools and re-checks every allocation against it: what the new
    /// pools still allow is kept with its addresses; what they forbid is listed (and keeps its
    /// addresses until released). Reservations are kept even outside every pool, so that
    /// bringing a pool back brings them back.
    pub fn set_pools(&mut self, specs: Vec<PoolSpec>) -> Result<Recheck, PoolsError> {
        let mut pools = BTreeMap::new();
        let mut ranges: BTreeMap<IpAddr, (AddrRange, PoolName)> = BTreeMap::new();
        for spec in specs {
            for r in &spec.ranges {
                // Ranges are disjoint, so an overlap shows against a neighbour in start order.
                let before = ranges.range(..=r.start()).next_back();
                let after = ranges.range(r.start()..).next();
                for (_, (other, p)) in before.into_iter().chain(after) {
                    if other.overlaps(r) {
                        return Err(PoolsError::Overlap {
                            first: *other,
                            first_pool: p.clone(),
                            second: *r,
                            second_pool: spec.name.clone(),
                        });
                    }
                }
                ranges.insert(r.start(), (*r, spec.name.clone()));
            }
            let name = spec.name.clone();
            if pools.insert(name.clone(), Pool::new(spec)).is_some() {
                return Err(PoolsError::DuplicateName(name));
            }
        }
        self.pools = pools;
        self.ranges = ranges;
        let taken: Vec<IpAddr> = self
            .holders
            .keys()
            .chain(self.reservations.keys())
            .copied()
            .collect();
        for addr in taken {
            if let Some(pool) = self.pool_of(addr).cloned() {
                if let Some(p) = self.pools.get_mut(&pool) {
                    p.take(addr);
                }
            }
        }
        let mut recheck = Recheck::default();
        let keys: Vec<ServiceKey> = self.services.keys().cloned().collect();
        for key in keys {
            let Some(alloc) = self.services.get(&key) else {
                continue;
            };
            match self.permits(alloc, &alloc.request) {
                Ok(pool) if pool == alloc.pool => recheck.kept.push(key),
                Ok(pool) => {
                    let old = alloc.pool.clone();
                    if let Some(a) = self.services.get_mut(&key) {
                        a.pool = pool.clone();
                    }
                    recheck.rehomed.push((key, old, pool));
                }
                Err(why) => {
                    // Keep the record of which pool the addresses lie in now, if one.
                    let owners: BTreeSet<Option<&PoolName>> =
                        alloc.addresses.iter().map(|a| self.pool_of(*a)).collect();
                    if let [Some(owner)] = owners.into_iter().collect::<Vec<_>>().as_slice() {
                        let owner = (*owner).clone();
                        if let Some(a) = self.services.get_mut(&key) {
                            a.pool = owner;
                        }
                    }
                    recheck.forbidden.push((key, why));
                }
            }
        }
        Ok(recheck)
    }

    // ----- allocation -----

    /// Decides and records addresses for a Service. A Service that already holds addresses
    /// the request still allows keeps them (and a PreferDualStack Service holding one family
    /// gains the other if its pool has one free); otherwise it moves to new ones in one step.
    /// On refusal nothing changes.
    pub fn allocate(&mut self, req: AllocationRequest) -> Result<&Allocation, Refusal> {
        let decision = self.decide(&req)?;
        Ok(self.commit(req, decision))
    }

    /// Puts requests in the order many Services are best allocated in, whatever order they
    /// came in: Services that hold addresses first (they keep them), then Services that name
    /// their addresses (so no automatic choice takes an address someone asked for), then those
    /// naming a pool, then the rest; each group by Service key.
    pub fn sort_for_allocation(&self, requests: &mut [AllocationRequest]) {
        super::sort_by_rank(requests, |r| {
            let held = self.services.contains_key(&r.service);
            (super::rank(Some(r), held), r.service.clone())
        });
    }

    /// Allocates for many Services at once, in [`Allocator::sort_for_allocation`]'s order.
    pub fn allocate_all(&mut self, requests: Vec<AllocationRequest>) -> Vec<Explanation> {
        let mut requests = requests;
        self.sort_for_allocation(&mut requests);
        requests
            .into_iter()
            .map(|r| self.allocate_explained(r))
            .collect()
    }

    /// Allocates like [`Allocator::allocate`] and says what was done and why.
    pub fn allocate_explained(&mut self, req: AllocationRequest) -> Explanation {
        let service = req.service.clone();
        let outcome = match self.decide(&req) {
            Ok(decision) => {
                self.commit(req, decision.clone());
                Ok(decision)
            }
            Err(refusal) => Err(refusal),
        };
        Explanation { service, outcome }
    }

    /// What [`Allocator::allocate`] would do, and why, without doing it.
    pub fn explain(&self, req: &AllocationRequest) -> Explanation {
        Explanation {
            service: req.service.clone(),
            outcome: self.decide(req),
        }
    }

    /// Records addresses a Service already holds elsewhere (its status, after a migration or
    /// the loss of all state), if the configuration allows them; never picks others.
    pub fn adopt(
        &mut self,
        req: AllocationRequest,
        addresses: &[IpAddr],
    ) -> Result<&Allocation, Refusal> {
        if let Some(existing) = self.services.get(&req.service) {
            let same = sorted(&existing.addresses) == sorted(addresses);
            if !same {
                return Err(Refusal::AlreadyHolds {
                    held: existing.addresses.clone(),
                });
            }
        }
        if !req.addresses.is_empty() && sorted(&req.addresses) != sorted(addresses) {
            return Err(Refusal::NotTheRequestedAddresses {
                held: addresses.to_vec(),
            });
        }
        let pool = self.check_fixed(&req, addresses)?;
        let decision = Decision {
            pool,
            picks: order_by_family(&req, addresses)
                .into_iter()
                .map(|a| (a, Why::Kept))
                .collect(),
            skipped: Vec::new(),
        };
        Ok(self.commit(req, decision))
    }

    /// Frees a Service's addresses (those reserved for it stay reserved). Returns what it held.
    pub fn release(&mut self, service: &ServiceKey) -> Option<Allocation> {
        let alloc = self.services.remove(service)?;
        for addr in &alloc.addresses {
            self.drop_holder(*addr, service, alloc.request.sharing_key.as_ref());
        }
        Some(*alloc)
    }

    /// Reserves an address for a Service: no other Service can get it, and it stays reserved
    /// when the Service is released or deleted. The Service gets it first when it next
    /// allocates in that pool.
    pub fn reserve(&mut self, addr: IpAddr, service: ServiceKey) -> Result<(), ReserveError> {
        let pool = self
            .pool_of(addr)
            .cloned()
            .ok_or(ReserveError::NotInAnyPool(addr))?;
        if let Some(holder) = self.reservations.get(&addr) {
            if *holder == service {
                return Ok(());
            }
            return Err(ReserveError::ReservedForOther {
                addr,
                holder: holder.clone(),
            });
        }
        if let Some(other) = self.holders(addr).find(|h| **h != service) {
            return Err(ReserveError::HeldByOther {
                addr,
                holder: other.clone(),
            });
        }
        if let Some(p) = self.pools.get_mut(&pool) {
            p.take(addr);
        }
        self.reserved_by
            .entry(service.clone())
            .or_default()
            .insert(addr);
        self.reservations.insert(addr, service);
        Ok(())
    }

    /// Removes a reservation; the address becomes free unless a Service holds it. Returns the
    /// Service it was reserved for.
    pub fn unreserve(&mut self, addr: IpAddr) -> Result<ServiceKey, ReserveError> {
        let service = self
            .reservations
            .remove(&addr)
            .ok_or(ReserveError::NotReserved(addr))?;
        if let Some(set) = self.reserved_by.get_mut(&service) {
            set.remove(&addr);
            if set.is_empty() {
                self.reserved_by.remove(&service);
            }
        }
        if !self.holders.contains_key(&addr) {
            self.put_back(addr);
        }
        Ok(service)
    }

    // ----- carrying a decision out -----

    fn commit(&mut self, req: AllocationRequest, decision: Decision) -> &Allocation {
        let key = req.service.clone();
        if let Some(old) = self.services.remove(&key) {
            for addr in &old.addresses {
                self.drop_holder(*addr, &key, old.request.sharing_key.as_ref());
            }
        }
        let addresses = decision.addresses();
        for &addr in &addresses {
            let unheld = !self.holders.contains_key(&addr);
            if unheld && !self.reservations.contains_key(&addr) {
                if let Some(pool) = self.pool_of(addr).cloned() {
                    if let Some(p) = self.pools.get_mut(&pool) {
                        p.take(addr);
                    }
                }
            }
            add_holder(&mut self.holders, addr, &key);
            if let Some(k) = &req.sharing_key {
                self.shared.entry(k.clone()).or_default().insert(addr);
            }
        }
        let alloc = Allocation {
            request: req,
            pool: decision.pool,
            addresses,
        };
        self.services.entry(key).or_insert(Box::new(alloc))
    }

    fn drop_holder(&mut self, addr: IpAddr, service: &ServiceKey, key: Option<&SharingKey>) {
        let now_empty = match self.holders.get_mut(&addr) {
            Some(set) => {
                set.retain(|h| h != service);
                set.is_empty()
            }
            None => false,
        };
        // Every holder of an address has the same key (sharing requires it), except a sole
        // holder changing its key, which drops first; so the key's entry goes with the last
        // holder.
        if now_empty {
            self.holders.remove(&addr);
            if let Some(k) = key {
                if let Some(set) = self.shared.get_mut(k) {
                    set.remove(&addr);
                    if set.is_empty() {
                        self.shared.remove(k);
                    }
                }
            }
            if !self.reservations.contains_key(&addr) {
                self.put_back(addr);
            }
        } else if let Some(k) = key {
            let still_keyed = self.holders(addr).any(|h| {
                self.services
                    .get(h)
                    .is_some_and(|a| a.request.sharing_key.as_ref() == Some(k))
            });
            if !still_keyed {
                if let Some(set) = self.shared.get_mut(k) {
                    set.remove(&addr);
                    if set.is_empty() {
                        self.shared.remove(k);
                    }
                }
            }
        }
    }

    fn put_back(&mut self, addr: IpAddr) {
        if let Some(pool) = self.pool_of(addr).cloned() {
            if let Some(p) = self.pools.get_mut(&pool) {
                p.put_back(addr);
            }
        }
    }
}

/// A pool that could serve one family of a PreferDualStack request: its name, the pick, and
/// how many pools were passed over before it.
type Partial = (PoolName, (IpAddr, Why), usize);

fn sorted(a: &[IpAddr]) -> Vec<IpAddr> {
    let mut v = a.to_vec();
    v.sort();
    v
}

/// The addresses with the Service's primary family first.
fn order_by_family(req: &AllocationRequest, addrs: &[IpAddr]) -> Vec<IpAddr> {
    let primary = req.families.primary();
    let mut v = addrs.to_vec();
    v.sort_by_key(|a| Family::of(*a) != primary);
    v
}

/// Checks what a request says about itself: requested addresses distinct, one per family, of
/// the Service's families, as many as the policy wants.
fn check_request(req: &AllocationRequest) -> Result<(), Refusal> {
    if req.addresses.is_empty() {
        return Ok(());
    }
    check_addresses(req, &req.addresses).map_err(Refusal::Request)
}

fn check_addresses(req: &AllocationRequest, addrs: &[IpAddr]) -> Result<(), RequestError> {
    for (i, a) in addrs.iter().enumerate() {
        for b in &addrs[..i] {
            if a == b {
                return Err(RequestError::DuplicateAddress(*a));
            }
            if Family::of(*a) == Family::of(*b) {
                return Err(RequestError::SameFamily(*b, *a));
            }
        }
        if !req.families.order().contains(&Family::of(*a)) {
            let families = req
                .families
                .order()
                .iter()
                .map(|f| f.as_str())
                .collect::<Vec<_>>()
                .join(", ");
            return Err(RequestError::WrongFamily {
                addr: *a,
                family: Family::of(*a),
                families,
            });
        }
    }
    let policy = req.families.policy();
    let fits = match policy {
        FamilyPolicy::SingleStack => addrs.len() == 1,
        FamilyPolicy::PreferDualStack => (1..=2).contains(&addrs.len()),
        FamilyPolicy::RequireDualStack => addrs.len() == 2,
    };
    if !fits {
        return Err(RequestError::PolicyCount {
            policy,
            count: addrs.len(),
        });
    }
    Ok(())
}

/// Adds `key` to the sorted holders of `addr`. The list grows by exactly one: a Vec's first
/// push would make room for four keys, and almost every address keeps one holder for life.
fn add_holder(holders: &mut BTreeMap<IpAddr, Vec<ServiceKey>>, addr: IpAddr, key: &ServiceKey) {
    let holders = holders.entry(addr).or_default();
    if let Err(at) = holders.binary_search(key) {
        holders.reserve_exact(1);
        holders.insert(at, key.clone());
    }
}
