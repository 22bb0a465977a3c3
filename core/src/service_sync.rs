//! The one order in which desired Services become commands, whatever feeds them (the
//! Kubernetes reconciler, standalone mode's files, a batch through the allocator): releases
//! first, since they free addresses; then Services that already hold addresses, so a restart or
//! a resync gives each what it had; then those asking for specific addresses; then those asking
//! for a pool; then the rest. Within a class, by key. Without this order, a new Service that
//! takes any address could, earlier in the same pass, take the one another Service asked for.
//!
//! Pure: desired Services and what is held in, steps out; the callers propose them.

use std::collections::BTreeSet;

use crate::ipam::AllocationRequest;
use crate::names::ServiceKey;

pub use crate::ipam::{rank, sort_by_rank, Rank};

/// One command of a pass.
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    /// Release the Service's addresses.
    Release(ServiceKey),
    /// Allocate (or keep) the Service's addresses.
    Allocate(Box<AllocationRequest>),
}

impl Step {
    /// The Service it is about.
    pub fn service(&self) -> &ServiceKey {
        match self {
            Step::Release(k) => k,
            Step::Allocate(r) => &r.service,
        }
    }
}

/// The steps of one pass: `release` the Services no longer wanted, allocate the `desired`, in
/// [`rank`] order; `held` tells which Services hold addresses now.
pub fn plan(
    desired: Vec<AllocationRequest>,
    release: impl IntoIterator<Item = ServiceKey>,
    held: impl Fn(&ServiceKey) -> bool,
) -> Vec<Step> {
    let releasing: BTreeSet<ServiceKey> = release.into_iter().collect();
    let mut steps: Vec<(Rank, Step)> = releasing
        .into_iter()
        .map(|k| (Rank::Release, Step::Release(k)))
        .collect();
    steps.extend(desired.into_iter().map(|r| {
        let rank = rank(Some(&r), held(&r.service));
        (rank, Step::Allocate(Box::new(r)))
    }));
    sort_by_rank(&mut steps, |(rank, step)| (*rank, step.service().clone()));
    steps.into_iter().map(|(_, s)| s).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(name: &str) -> AllocationRequest {
        AllocationRequest::new(format!("default/{name}").parse().unwrap(), Vec::new())
    }

    #[test]
    fn releases_then_held_then_addresses_then_pools_then_the_rest() {
        let mut asks = req("b-asks");
        asks.addresses = vec!["198.51.100.10".parse().unwrap()];
        let mut pooled = req("c-pool");
        pooled.pool = Some("gold".parse().unwrap());
        let held_key: ServiceKey = "default/z-held".parse().unwrap();
        let steps = plan(
            vec![req("a-auto"), pooled, asks, req("z-held")],
            ["default/y-gone".parse().unwrap()],
            |k| *k == held_key,
        );
        let order: Vec<String> = steps.iter().map(|s| s.service().to_string()).collect();
        assert_eq!(
            order,
            [
                "default/y-gone",
                "default/z-held",
                "default/b-asks",
                "default/c-pool",
                "default/a-auto"
            ]
        );
        assert!(matches!(steps[0], Step::Release(_)));
    }

    #[test]
    fn a_held_service_keeps_its_place_even_when_it_asks_for_addresses() {
        let mut asks = req("a");
        asks.addresses = vec!["198.51.100.10".parse().unwrap()];
        assert_eq!(rank(Some(&asks), true), Rank::Held);
        assert_eq!(rank(Some(&asks), false), Rank::Addresses);
        assert_eq!(rank(None, true), Rank::Release);
    }
}
