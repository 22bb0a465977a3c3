//! Which Services are allocated first in a pass over many: see `service_sync` for why.

use super::AllocationRequest;
use crate::names::ServiceKey;

/// A Service's place in a pass, earliest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Rank {
    /// No longer wanted: its addresses are released.
    Release,
    /// Holds addresses already.
    Held,
    /// Asks for specific addresses.
    Addresses,
    /// Asks for a pool.
    Pool,
    /// Takes any address of any pool that admits it.
    Any,
}

/// The rank of a Service wanting `request` (`None`: it is to be released), given whether it
/// holds addresses now.
pub fn rank(request: Option<&AllocationRequest>, held: bool) -> Rank {
    match request {
        None => Rank::Release,
        Some(_) if held => Rank::Held,
        Some(r) if !r.addresses.is_empty() => Rank::Addresses,
        Some(r) if r.pool.is_some() => Rank::Pool,
        Some(_) => Rank::Any,
    }
}

/// Sorts anything carrying a rank and a Service key into the order of a pass.
pub fn sort_by_rank<T>(items: &mut [T], key: impl Fn(&T) -> (Rank, ServiceKey)) {
    items.sort_by_cached_key(key);
}
