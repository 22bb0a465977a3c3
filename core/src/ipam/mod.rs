//! The address allocator: pure, deterministic logic with no I/O.
//!
//! The same sequence of operations always gives the same state, byte for byte: every map is
//! ordered, nothing reads a clock or a random source, and every choice (which pool, which
//! address) is made by a rule stated where it is made.

mod order;
mod pool;
mod range;
mod request;

pub use allocator::{
    Allocation, Allocator, Decision, Explanation, PoolsError, Recheck, ReserveError, Why,
};
pub use order::{rank, sort_by_rank, Rank};
pub use pool::{FamilyCounts, NotAdmitted, PoolSpec, PoolStats, ServiceAllocation};
pub use range::{is_buggy, AddrRange, Family, RangeError, RangeSet};
pub use refusal::{Conflict, PoolRejection, Refusal, RequestError};
pub use request::{
    AllocationRequest, Families, FamiliesError, FamilyPolicy, Port, Protocol, SharingKey,
    TrafficPolicy,
};

mod allocator;
mod refusal;
