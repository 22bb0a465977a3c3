//! The test lab: real ironlb processes on one host (and, for network tests, network namespaces
//! joined by a bridge), used by the integration tests, the benchmarks and the Jepsen suite.
//!
//! Everything here panics on failure: it is test equipment, and a broken lab must stop the
//! test that uses it with the reason.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

pub mod bgp;
pub mod bgp_lab;
pub mod capture;
pub mod cluster;
pub mod kube_api;
pub mod l2;
pub mod netns;
pub mod pki;
