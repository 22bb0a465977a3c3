//! How the allocator decides: candidate pools, the choice among them, the pick of addresses,
//! conflicts with holders and sharing, fixed addresses, and keeping what a Service holds.
use super::*;

impl Allocator {
    // ----- the decision -----

    pub(super) fn decide(&self, req: &AllocationRequest) -> Result<Decision, Refusal> {
        check_request(req)?;
        if let Some(existing) = self.services.get(&req.service) {
            if let Ok(pool) = self.permits(existing, req) {
                return Ok(self.keep_or_extend(req, existing, pool));
            }
        }
        if !req.addresses.is_empty() {
            let pool = self.check_fixed(req, &req.addresses)?;
            let picks = order_by_family(req, &req.addresses)
                .into_iter()
                .map(|a| {
                    let why = if self.reservations.get(&a) == Some(&req.service) {
                        Why::Reserved
                    } else {
                        Why::Requested
                    };
                    (a, why)
                })
                .collect();
            return Ok(Decision {
                pool,
                picks,
                skipped: Vec::new(),
            });
        }
        let candidates = self.candidates(req)?;
        self.choose(req, &candidates)
    }

    /// The pools to try, as groups tried one after the other. A named pool is the only
    /// candidate. Otherwise the pools whose serviceAllocation admits the Service (pinned to it
    /// by namespace or selector) are the first group, by priority (1 before 2, and 0 or unset
    /// after every positive one), and plain auto-assigned pools the second; ties go by name,
    /// so the order never depends on anything but the configuration. Empty groups are left
    /// out.
    pub(super) fn candidates(&self, req: &AllocationRequest) -> Result<Vec<Vec<&Pool>>, Refusal> {
        if let Some(name) = &req.pool {
            let pool = self
                .pools
                .get(name)
                .ok_or_else(|| Refusal::UnknownPool(name.clone()))?;
            pool.spec
                .admits(req)
                .map_err(|why| Refusal::Pool(name.clone(), PoolRejection::NotAdmitted(why)))?;
            return Ok(vec![vec![pool]]);
        }
        if self.pools.is_empty() {
            return Err(Refusal::NoPools);
        }
        let mut pinned = Vec::new();
        let mut plain = Vec::new();
        let mut out = Vec::new();
        for pool in self.pools.values() {
            if !pool.spec.auto_assign {
                out.push((pool.spec.name.clone(), PoolRejection::NotAutoAssigned));
                continue;
            }
            match (&pool.spec.service_allocation, pool.spec.admits(req)) {
                (Some(sa), Ok(())) => pinned.push((sa.priority, pool)),
                (None, _) => plain.push(pool),
                (Some(_), Err(why)) => {
                    out.push((pool.spec.name.clone(), PoolRejection::NotAdmitted(why)))
                }
            }
        }
        // Stable sort over name order: equal priorities stay in name order.
        pinned.sort_by_key(|(prio, _)| {
            if *prio == 0 {
                u64::MAX
            } else {
                u64::from(*prio)
            }
        });
        let pinned: Vec<&Pool> = pinned.into_iter().map(|(_, p)| p).collect();
        let groups: Vec<Vec<&Pool>> = [pinned, plain]
            .into_iter()
            .filter(|g| !g.is_empty())
            .collect();
        if groups.is_empty() {
            return Err(Refusal::NoPoolAdmits {
                namespace: req.service.namespace().clone(),
                pools: out,
            });
        }
        Ok(groups)
    }

    /// Picks addresses from the first group of candidates that can serve the request, as
    /// MetalLB does (its pinned pools, then the plain ones): a later group is tried only when
    /// no pool of the earlier ones can serve at all, so a PreferDualStack Service stays in a
    /// pool pinned to it even when a plain pool has both families.
    pub(super) fn choose(
        &self,
        req: &AllocationRequest,
        groups: &[Vec<&Pool>],
    ) -> Result<Decision, Refusal> {
        let mut skipped = Vec::new();
        for group in groups {
            if let Some(decision) = self.choose_in(req, group, &mut skipped) {
                return Ok(decision);
            }
        }
        Err(match (req.pool.is_some(), skipped.is_empty()) {
            (true, false) => {
                let (pool, why) = skipped.remove(0);
                Refusal::Pool(pool, why)
            }
            _ => Refusal::Exhausted(skipped),
        })
    }

    /// Picks addresses from the first pool of one group that can serve the request, adding
    /// the pools passed over to `skipped`. For PreferDualStack a pool of the group with both
    /// families wins; failing that, the group's first pool with the primary family, then its
    /// first with the other (as MetalLB's findBestPoolForService does).
    fn choose_in(
        &self,
        req: &AllocationRequest,
        candidates: &[&Pool],
        skipped: &mut Vec<(PoolName, PoolRejection)>,
    ) -> Option<Decision> {
        let order = req.families.order();
        // For PreferDualStack: the first pool that could give only the primary family, and
        // the first that could give only the other, with how many pools were passed before.
        let mut partial: [Option<Partial>; 2] = [None, None];
        for pool in candidates {
            let mut picks = Vec::new();
            let mut rejection = None;
            for family in order {
                match self.pick(pool, *family, req) {
                    Ok(p) => picks.push(p),
                    Err(why) => {
                        rejection.get_or_insert(why);
                    }
                }
            }
            let Some(why) = rejection else {
                return Some(Decision {
                    pool: pool.spec.name.clone(),
                    picks,
                    skipped: skipped.clone(),
                });
            };
            if req.families.policy() == FamilyPolicy::PreferDualStack {
                if let [one] = picks.as_slice() {
                    let slot = if Family::of(one.0) == order[0] { 0 } else { 1 };
                    if partial[slot].is_none() {
                        partial[slot] = Some((pool.spec.name.clone(), *one, skipped.len()));
                    }
                }
            }
            skipped.push((pool.spec.name.clone(), why));
        }
        let (pool, pick, at) = partial.into_iter().flatten().next()?;
        // Pools passed over before this one stay listed; later ones were not needed.
        Some(Decision {
            pool,
            picks: vec![pick],
            skipped: skipped[..at].to_vec(),
        })
    }

    /// One address of a family from a pool: one the Service holds already (when it must
    /// re-decide, what it holds counts as free for it, so it keeps what still fits), else one
    /// reserved for it, else one it can share under its key (so sharers end up together), else
    /// the lowest free one.
    pub(super) fn pick(
        &self,
        pool: &Pool,
        family: Family,
        req: &AllocationRequest,
    ) -> Result<(IpAddr, Why), PoolRejection> {
        if !pool.has_family(family) {
            return Err(PoolRejection::MissingFamily(family));
        }
        let in_pool =
            |a: &&IpAddr| Family::of(**a) == family && self.pool_of(**a) == Some(&pool.spec.name);
        if let Some(held) = self.services.get(&req.service) {
            for addr in held.addresses.iter().filter(in_pool) {
                if self.conflict(*addr, req).is_none() {
                    return Ok((*addr, Why::Kept));
                }
            }
        }
        if let Some(reserved) = self.reserved_by.get(&req.service) {
            for addr in reserved.iter().filter(in_pool) {
                if self.conflict(*addr, req).is_none() {
                    return Ok((*addr, Why::Reserved));
                }
            }
        }
        if let Some(key) = &req.sharing_key {
            for addr in self.shared.get(key).into_iter().flatten().filter(in_pool) {
                if self.conflict(*addr, req).is_none() {
                    return Ok((*addr, Why::Shared));
                }
            }
        }
        if let Some(addr) = pool.lowest_free(family) {
            return Ok((addr, Why::LowestFree));
        }
        let counts = pool.counts(family);
        Err(PoolRejection::Full {
            family,
            in_use: counts.in_use,
            total: counts.total,
            dual: Family::ALL.iter().all(|f| pool.has_family(*f)),
        })
    }

    /// Whether the Service may hold this address alongside its current holders and
    /// reservation. A Service never conflicts with itself, so a sole holder may change its
    /// ports or sharing key in place.
    pub(super) fn conflict(&self, addr: IpAddr, req: &AllocationRequest) -> Option<Conflict> {
        if let Some(owner) = self.reservations.get(&addr) {
            if *owner != req.service {
                return Some(Conflict::Reserved {
                    for_service: owner.clone(),
                });
            }
        }
        let others = self.holders(addr).filter(|h| **h != req.service);
        for holder in others {
            let Some(theirs) = self.services.get(holder) else {
                continue;
            };
            let theirs = &theirs.request;
            let holder = holder.clone();
            let conflict = match (&theirs.sharing_key, &req.sharing_key) {
                (None, _) => Some(Conflict::HolderDoesNotShare { holder }),
                (Some(_), None) => Some(Conflict::RequesterDoesNotShare { holder }),
                (Some(t), Some(o)) if t != o => Some(Conflict::KeyMismatch {
                    holder,
                    theirs: t.clone(),
                    ours: o.clone(),
                }),
                _ if theirs.backend() != req.backend() => {
                    Some(Conflict::BackendMismatch { holder })
                }
                _ => req
                    .ports
                    .iter()
                    .find(|p| theirs.ports.contains(p))
                    .map(|port| Conflict::PortInUse {
                        holder,
                        port: *port,
                    }),
            };
            if conflict.is_some() {
                return conflict;
            }
        }
        None
    }

    /// Checks a fixed set of addresses for a request (requested, adopted or already held):
    /// the families fit, they lie in one pool that admits the Service (and is the requested
    /// pool, if one is named), and no holder conflicts. Returns the pool.
    pub(super) fn check_fixed(
        &self,
        req: &AllocationRequest,
        addrs: &[IpAddr],
    ) -> Result<PoolName, Refusal> {
        check_addresses(req, addrs).map_err(Refusal::Request)?;
        let mut pool: Option<(IpAddr, PoolName)> = None;
        for &addr in addrs {
            let Some(p) = self.pool_of(addr) else {
                return Err(match self.pool_containing(addr) {
                    Some(p) => Refusal::AvoidedAddress {
                        addr,
                        pool: p.clone(),
                    },
                    None => Refusal::NotInAnyPool(addr),
                });
            };
            match &pool {
                Some((first, fp)) if fp != p => {
                    return Err(Refusal::SplitAcrossPools {
                        first: (*first, fp.clone()),
                        second: (addr, p.clone()),
                    })
                }
                Some(_) => {}
                None => pool = Some((addr, p.clone())),
            }
        }
        let Some((addr, name)) = pool else {
            // check_addresses refuses an empty set for every policy.
            return Err(Refusal::Request(RequestError::PolicyCount {
                policy: req.families.policy(),
                count: 0,
            }));
        };
        if let Some(requested) = &req.pool {
            if *requested != name {
                return Err(Refusal::NotInRequestedPool {
                    addr,
                    requested: requested.clone(),
                    actual: name,
                });
            }
        }
        let spec = self.pools.get(&name).map(|p| &p.spec);
        if let Some(Err(why)) = spec.map(|s| s.admits(req)) {
            return Err(Refusal::Pool(name, PoolRejection::NotAdmitted(why)));
        }
        for &addr in addrs {
            if let Some(c) = self.conflict(addr, req) {
                return Err(Refusal::Conflict(addr, c));
            }
        }
        Ok(name)
    }

    /// Whether a request still allows an existing allocation; returns the pool that now owns
    /// its addresses.
    pub(super) fn permits(
        &self,
        existing: &Allocation,
        req: &AllocationRequest,
    ) -> Result<PoolName, Refusal> {
        if !req.addresses.is_empty() && sorted(&req.addresses) != sorted(&existing.addresses) {
            return Err(Refusal::NotTheRequestedAddresses {
                held: existing.addresses.clone(),
            });
        }
        self.check_fixed(req, &existing.addresses)
    }

    /// Keeps what a Service holds; a PreferDualStack Service with one family also gets the
    /// other from the same pool when it can (and keeps the one it has when it cannot).
    pub(super) fn keep_or_extend(
        &self,
        req: &AllocationRequest,
        existing: &Allocation,
        pool: PoolName,
    ) -> Decision {
        let mut picks: Vec<(IpAddr, Why)> = order_by_family(req, &existing.addresses)
            .into_iter()
            .map(|a| (a, Why::Kept))
            .collect();
        let wants_more = req.families.policy() == FamilyPolicy::PreferDualStack
            && req.addresses.is_empty()
            && picks.len() == 1;
        if wants_more {
            let have = Family::of(picks[0].0);
            let missing = req.families.order().iter().find(|f| **f != have);
            let extra = missing
                .zip(self.pools.get(&pool))
                .and_then(|(f, p)| self.pick(p, *f, req).ok());
            if let Some(extra) = extra {
                picks.push(extra);
                let primary = req.families.primary();
                picks.sort_by_key(|(a, _)| Family::of(*a) != primary);
            }
        }
        Decision {
            pool,
            picks,
            skipped: Vec::new(),
        }
    }
}
