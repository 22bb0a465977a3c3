//! Kubernetes: the CRDs generated from the configuration kinds and the announcement status
//! kinds, the Service reconciler that runs on the Raft leader, the speaker's endpoint and node
//! watch, and the MetalLB migration.

pub mod certs;
pub mod convert;
pub mod crds;
pub mod endpoints;
pub mod migrate;
pub mod reconciler;
pub mod status_kinds;
pub mod token_review;

/// Now as RFC 3339 in UTC (`2026-12-01T20:00:00Z`), for status timestamps.
pub fn now_rfc3339() -> String {
    k8s_openapi::jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}
