//! The reconciler's decisions as pure code, tested without an API server: what a Service's
//! status and annotation must become, why reconciling a Service failed, and when to retry it.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use tokio::time::Instant;

use crate::ipam::{rank, sort_by_rank, AllocationRequest, Rank};
use crate::names::{PoolName, ServiceKey};
use crate::raft::ProposeError;

/// Why reconciling one Service failed; each is retried with that Service's backoff.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The Service cannot be turned into a request (its annotations or spec are invalid).
    #[error("invalid Service: {0}")]
    Invalid(String),
    /// The allocator gave it no address.
    #[error("no address: {0}")]
    NoAddress(String),
    /// Raft did not commit the change (no leader, a timeout).
    #[error("not committed: {0}")]
    NotCommitted(#[from] ProposeError),
    /// The API server refused a write.
    #[error("{what}: {source}")]
    Api {
        /// What was being written.
        what: &'static str,
        /// The API server's answer.
        source: kube::Error,
    },
}

impl ServiceError {
    /// The label of `ironlb_k8s_reconciles_total` for this failure.
    pub fn label(&self) -> &'static str {
        match self {
            ServiceError::Invalid(_) => "invalid",
            ServiceError::NoAddress(_) => "no_address",
            ServiceError::NotCommitted(_) => "not_committed",
            ServiceError::Api { .. } => "api_error",
        }
    }
}

/// What to write on a Service so it shows its allocation (or nothing of ours).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServiceWrites {
    /// New status ingress addresses, when they differ from what it shows.
    pub ingress: Option<Vec<IpAddr>>,
    /// The pool annotation's new value (`Some(None)`: remove it), when it differs.
    pub pool_annotation: Option<Option<String>>,
}

impl ServiceWrites {
    /// Whether nothing needs writing.
    pub fn is_empty(&self) -> bool {
        self.ingress.is_none() && self.pool_annotation.is_none()
    }
}

/// What must change on a Service that shows `shown` addresses and the pool annotation
/// `annotated`, so that it shows `allocation` (or nothing of ours). A Service that is not ours
/// and shows nothing is left alone.
pub fn service_writes(
    shown: &[IpAddr],
    annotated: Option<&str>,
    allocation: Option<(&PoolName, &[IpAddr])>,
) -> ServiceWrites {
    let want: Vec<IpAddr> = allocation.map(|(_, a)| a.to_vec()).unwrap_or_default();
    let (mut a, mut b) = (shown.to_vec(), want.clone());
    a.sort();
    b.sort();
    let ingress = (a != b && (allocation.is_some() || !shown.is_empty())).then_some(want);
    let wanted_pool = allocation.map(|(p, _)| p.as_str());
    let pool_annotation = (annotated != wanted_pool).then(|| wanted_pool.map(str::to_owned));
    ServiceWrites {
        ingress,
        pool_annotation,
    }
}

/// The rank of a request that claims something another Service could take first: specific
/// addresses, or a pool. `None` for a request that takes any address.
pub fn claim(request: &AllocationRequest) -> Option<Rank> {
    match rank(Some(request), false) {
        r @ (Rank::Addresses | Rank::Pool) => Some(r),
        _ => None,
    }
}

/// The claims a Service of rank `mine` lets go first, in the order of a pass: those of an
/// earlier rank that hold nothing yet and are not waiting for a retry (a claim that keeps
/// failing is retried on its own backoff, not by every other Service's reconcile).
pub fn claims_before(
    mine: Rank,
    me: &ServiceKey,
    claims: &BTreeMap<ServiceKey, Rank>,
    holds: impl Fn(&ServiceKey) -> bool,
    failing: impl Fn(&ServiceKey) -> bool,
) -> Vec<ServiceKey> {
    if mine <= Rank::Addresses {
        return Vec::new();
    }
    let mut first: Vec<(Rank, ServiceKey)> = claims
        .iter()
        .filter(|(k, r)| **r < mine && *k != me && !holds(k) && !failing(k))
        .map(|(k, r)| (*r, k.clone()))
        .collect();
    sort_by_rank(&mut first, |(r, k)| (*r, k.clone()));
    first.into_iter().map(|(_, k)| k).collect()
}

/// Per-Service retries: each failure doubles the wait before the next attempt, from `first`
/// up to `max`; a success forgets the Service.
#[derive(Debug)]
pub struct Backoff {
    first: Duration,
    max: Duration,
    failing: BTreeMap<ServiceKey, (u32, Instant)>,
}

impl Backoff {
    /// Retries after `first`, doubling up to `max`.
    pub fn new(first: Duration, max: Duration) -> Self {
        Backoff {
            first,
            max,
            failing: BTreeMap::new(),
        }
    }

    /// `key` failed at `now`: when to try it again.
    pub fn failed(&mut self, key: &ServiceKey, now: Instant) -> Instant {
        let attempts = self.failing.get(key).map_or(0, |(n, _)| *n);
        let wait = self
            .first
            .saturating_mul(1u32.checked_shl(attempts).unwrap_or(u32::MAX))
            .min(self.max);
        let at = now + wait;
        self.failing
            .insert(key.clone(), (attempts.saturating_add(1), at));
        at
    }

    /// `key` reconciled: no retry pending.
    pub fn succeeded(&mut self, key: &ServiceKey) {
        self.failing.remove(key);
    }

    /// The earliest pending retry.
    pub fn next_due(&self) -> Option<Instant> {
        self.failing.values().map(|(_, at)| *at).min()
    }

    /// The Services whose retry is due at `now` (they stay counted until they succeed).
    pub fn due(&self, now: Instant) -> Vec<ServiceKey> {
        self.failing
            .iter()
            .filter(|(_, (_, at))| *at <= now)
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// Whether `key` is waiting for a retry, and how many times it failed in a row.
    pub fn attempts(&self, key: &ServiceKey) -> u32 {
        self.failing.get(key).map_or(0, |(n, _)| *n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_service_is_written_only_where_it_differs() {
        let pool: PoolName = "public".parse().unwrap();
        let addrs = [ip("192.0.2.1"), ip("2001:db8::1")];
        // Shows exactly its allocation, in another order: nothing to write.
        let shown = [ip("2001:db8::1"), ip("192.0.2.1")];
        assert!(service_writes(&shown, Some("public"), Some((&pool, &addrs))).is_empty());
        // New: both.
        let w = service_writes(&[], None, Some((&pool, &addrs)));
        assert_eq!(w.ingress, Some(addrs.to_vec()));
        assert_eq!(w.pool_annotation, Some(Some("public".into())));
        // No longer ours: cleared.
        let w = service_writes(&shown, Some("public"), None);
        assert_eq!(w.ingress, Some(vec![]));
        assert_eq!(w.pool_annotation, Some(None));
        // Never ours and showing nothing: left alone.
        assert!(service_writes(&[], None, None).is_empty());
    }

    fn key(s: &str) -> ServiceKey {
        s.parse().unwrap()
    }

    #[test]
    fn a_service_taking_any_address_lets_unserved_claims_go_first_in_pass_order() {
        let claims: BTreeMap<ServiceKey, Rank> = [
            ("ns/z-asks", Rank::Addresses),
            ("ns/a-pool", Rank::Pool),
            ("ns/b-asks", Rank::Addresses),
            ("ns/held", Rank::Addresses),
            ("ns/failing", Rank::Addresses),
        ]
        .into_iter()
        .map(|(k, r)| (key(k), r))
        .collect();
        let holds = |k: &ServiceKey| k.name() == "held";
        let failing = |k: &ServiceKey| k.name() == "failing";
        let me = key("ns/a-auto");
        let first = claims_before(Rank::Any, &me, &claims, holds, failing);
        assert_eq!(
            first,
            [key("ns/b-asks"), key("ns/z-asks"), key("ns/a-pool")]
        );
        // A pool claim lets only the address claims go first; an address claim and a Service
        // that holds addresses let nobody.
        let first = claims_before(Rank::Pool, &key("ns/a-pool"), &claims, holds, failing);
        assert_eq!(first, [key("ns/b-asks"), key("ns/z-asks")]);
        assert!(
            claims_before(Rank::Addresses, &key("ns/b-asks"), &claims, holds, failing).is_empty()
        );
        assert!(claims_before(Rank::Held, &me, &claims, holds, failing).is_empty());
    }

    #[test]
    fn only_specific_addresses_and_pools_are_claims() {
        let mut r = AllocationRequest::new(key("ns/web"), Vec::new());
        assert_eq!(claim(&r), None);
        r.pool = Some("public".parse().unwrap());
        assert_eq!(claim(&r), Some(Rank::Pool));
        r.addresses = vec![ip("192.0.2.1")];
        assert_eq!(claim(&r), Some(Rank::Addresses));
    }

    #[test]
    fn retries_double_up_to_the_cap_and_success_forgets() {
        let t0 = Instant::now();
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(5));
        let k: ServiceKey = "default/web".parse().unwrap();
        let waits: Vec<u64> = (0..5).map(|_| (b.failed(&k, t0) - t0).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 5, 5]);
        assert_eq!(b.attempts(&k), 5);
        assert!(b.due(t0).is_empty());
        assert_eq!(b.due(t0 + Duration::from_secs(5)), vec![k.clone()]);
        assert_eq!(b.next_due(), Some(t0 + Duration::from_secs(5)));
        b.succeeded(&k);
        assert_eq!((b.attempts(&k), b.next_due()), (0, None));
        // Far more failures than bits: no overflow.
        for _ in 0..100 {
            b.failed(&k, t0);
        }
        assert_eq!(b.next_due(), Some(t0 + Duration::from_secs(5)));
    }
}
