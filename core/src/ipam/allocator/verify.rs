//! The allocator checking its own indexes and counts against a recount (tests, fuzzing, and
//! `ironlb ctl verify`).
use super::*;

impl Allocator {
    /// Checks every invariant of the state against a recount from scratch; used by tests and
    /// whenever state is loaded from elsewhere. Returns the first violation found.
    pub fn verify(&self) -> Result<(), String> {
        self.verify_holdings()?;
        self.verify_holder_lists()?;
        self.verify_pools()?;
        self.verify_indexes()
    }

    /// Every address a Service holds lists it among its holders and comes from its pool.
    fn verify_holdings(&self) -> Result<(), String> {
        for (key, alloc) in &self.services {
            for addr in &alloc.addresses {
                if !self.holders.get(addr).is_some_and(|h| h.contains(key)) {
                    return Err(format!("{key} holds {addr} but is not among its holders"));
                }
                if let Some(pool) = self.pool_of(*addr) {
                    if *pool != alloc.pool {
                        return Err(format!(
                            "{key} holds {addr} as from pool {}, but pool {pool} owns it",
                            alloc.pool
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// Every holder list is sorted, names only Services that hold the address, shares it only
    /// as the sharing rules allow, and respects the address's reservation.
    fn verify_holder_lists(&self) -> Result<(), String> {
        for (addr, holders) in &self.holders {
            if holders.is_empty() || !holders.windows(2).all(|w| w[0] < w[1]) {
                return Err(format!("{addr} has an empty or unsorted holder list"));
            }
            for h in holders {
                if !self
                    .services
                    .get(h)
                    .is_some_and(|a| a.addresses.contains(addr))
                {
                    return Err(format!("{h} is listed on {addr} but does not hold it"));
                }
            }
            let reqs: Vec<&AllocationRequest> = holders
                .iter()
                .filter_map(|h| self.services.get(h).map(|a| &a.request))
                .collect();
            Self::verify_sharing(*addr, &reqs)?;
            if let Some(owner) = self.reservations.get(addr) {
                if holders.iter().any(|h| h != owner) {
                    return Err(format!("{addr} is reserved for {owner} but held by others"));
                }
            }
        }
        Ok(())
    }

    /// Every pair of `reqs` may share `addr`: the same sharing key and backend, and no port
    /// in common.
    fn verify_sharing(addr: IpAddr, reqs: &[&AllocationRequest]) -> Result<(), String> {
        for (i, a) in reqs.iter().enumerate() {
            for b in &reqs[..i] {
                let ok = a.sharing_key.is_some()
                    && a.sharing_key == b.sharing_key
                    && a.backend() == b.backend()
                    && a.ports.iter().all(|p| !b.ports.contains(p));
                if !ok {
                    return Err(format!(
                        "{} and {} share {addr} against the sharing rules",
                        a.service, b.service
                    ));
                }
            }
        }
        Ok(())
    }

    /// Every pool's counts match a recount, and nothing taken is also free.
    fn verify_pools(&self) -> Result<(), String> {
        for (name, pool) in &self.pools {
            for family in Family::ALL {
                let taken = self
                    .holders
                    .keys()
                    .chain(
                        self.reservations
                            .keys()
                            .filter(|a| !self.holders.contains_key(a)),
                    )
                    .filter(|a| Family::of(**a) == family && self.pool_of(**a) == Some(name))
                    .count() as u128;
                let c = pool.counts(family);
                if c.in_use != taken {
                    return Err(format!(
                        "pool {name} {family}: counts say {} in use, recount says {taken}",
                        c.in_use
                    ));
                }
                let usable = pool.spec.usable()[family.index()].len();
                if usable != c.total {
                    return Err(format!(
                        "pool {name} {family}: total {} != {usable}",
                        c.total
                    ));
                }
            }
            for addr in self.holders.keys().chain(self.reservations.keys()) {
                let n = crate::ipam::range::to_u128(*addr);
                if pool.free[Family::of(*addr).index()].contains(n) && pool.spec.owns(*addr) {
                    return Err(format!("{addr} is taken but also free in pool {name}"));
                }
            }
        }
        Ok(())
    }

    /// The sharing-key and reservation indexes match a recount.
    fn verify_indexes(&self) -> Result<(), String> {
        let mut shared: BTreeMap<SharingKey, BTreeSet<IpAddr>> = BTreeMap::new();
        for alloc in self.services.values() {
            if let Some(k) = &alloc.request.sharing_key {
                shared
                    .entry(k.clone())
                    .or_default()
                    .extend(alloc.addresses.iter().copied());
            }
        }
        if shared != self.shared {
            return Err("the sharing-key index differs from a recount".into());
        }
        let mut reserved_by: BTreeMap<ServiceKey, BTreeSet<IpAddr>> = BTreeMap::new();
        for (addr, key) in &self.reservations {
            reserved_by.entry(key.clone()).or_default().insert(*addr);
        }
        if reserved_by != self.reserved_by {
            return Err("the reservation index differs from a recount".into());
        }
        Ok(())
    }
}
