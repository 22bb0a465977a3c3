//! The controller's Prometheus metrics (`ironlb_*`, units in the names).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

use crate::ipam::Family as IpFamily;
use crate::raft::ControllerState;

/// Labels of `ironlb_allocator_addresses`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AddressLabels {
    /// The pool.
    pub pool: String,
    /// `ipv4` or `ipv6`.
    pub family: String,
    /// `total`, `in_use` or `available`.
    pub state: String,
}

/// Labels of `ironlb_k8s_reconciles_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    /// `changed`, `unchanged` or `error`.
    pub result: String,
}

/// The Kubernetes reconciler's metrics.
#[derive(Default)]
pub struct K8sMetrics {
    reconciles: Family<ResultLabels, Counter>,
    /// Status (and annotation) writes to the API server.
    pub status_writes: Counter,
    /// 1 while the configuration objects form a valid configuration.
    pub config_valid: Gauge,
    /// The revision of the configuration in force.
    pub config_revision: Gauge,
}

impl K8sMetrics {
    /// Counts one Service reconciled with this result.
    pub fn reconciled(&self, result: &str) {
        self.reconciles
            .get_or_create(&ResultLabels {
                result: result.to_string(),
            })
            .inc();
    }
}

/// Every metric the controller exports.
pub struct Metrics {
    registry: Registry,
    raft_term: Gauge,
    raft_is_leader: Gauge,
    raft_commit_index: Gauge,
    raft_applied_index: Gauge,
    raft_members: Gauge,
    addresses: Family<AddressLabels, Gauge<f64, AtomicU64>>,
    /// Time from receiving an allocation to its being applied, seconds.
    pub allocation_duration: Histogram,
    /// Layer 2 owner changes committed (an address given to a node).
    pub owner_changes: Counter,
    /// Owner changes because the owner died or drained.
    pub failovers: Counter,
    /// The Kubernetes reconciler's.
    pub k8s: K8sMetrics,
}

/// What the Raft layer reports, as the metrics need it.
#[derive(Clone, Copy, Debug, Default)]
pub struct RaftFigures {
    /// The current term.
    pub term: u64,
    /// Whether this member leads.
    pub is_leader: bool,
    /// The committed log index.
    pub commit_index: u64,
    /// The applied log index.
    pub applied_index: u64,
    /// Voters and learners.
    pub members: usize,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh registry with every metric registered.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let m = Self {
            raft_term: Gauge::default(),
            raft_is_leader: Gauge::default(),
            raft_commit_index: Gauge::default(),
            raft_applied_index: Gauge::default(),
            raft_members: Gauge::default(),
            addresses: Family::default(),
            // 100 µs to about 6.5 s.
            allocation_duration: Histogram::new(exponential_buckets(0.0001, 2.0, 17)),
            owner_changes: Counter::default(),
            failovers: Counter::default(),
            k8s: K8sMetrics::default(),
            registry: Registry::default(),
        };
        registry.register("ironlb_raft_term", "Current Raft term", m.raft_term.clone());
        registry.register(
            "ironlb_raft_is_leader",
            "1 if this member is the Raft leader",
            m.raft_is_leader.clone(),
        );
        registry.register(
            "ironlb_raft_commit_index",
            "Index of the last committed log entry",
            m.raft_commit_index.clone(),
        );
        registry.register(
            "ironlb_raft_applied_index",
            "Index of the last log entry applied to the state machine",
            m.raft_applied_index.clone(),
        );
        registry.register(
            "ironlb_raft_members",
            "Members of the Raft cluster (voters and learners)",
            m.raft_members.clone(),
        );
        registry.register(
            "ironlb_allocator_addresses",
            "Addresses per pool and family: total, in use, available",
            m.addresses.clone(),
        );
        registry.register(
            "ironlb_allocation_duration_seconds",
            "Time from receiving an allocation request to its being applied",
            m.allocation_duration.clone(),
        );
        registry.register(
            "ironlb_owner_changes",
            "Layer 2 owner changes committed by this member while leading",
            m.owner_changes.clone(),
        );
        registry.register(
            "ironlb_failovers",
            "Layer 2 owner changes because the owner died or drained",
            m.failovers.clone(),
        );
        registry.register(
            "ironlb_k8s_reconciles",
            "Services reconciled by the Kubernetes reconciler, by result",
            m.k8s.reconciles.clone(),
        );
        registry.register(
            "ironlb_k8s_status_writes",
            "Writes of Service, pool and configuration status to the Kubernetes API",
            m.k8s.status_writes.clone(),
        );
        registry.register(
            "ironlb_config_valid",
            "1 if the configuration objects form a valid configuration",
            m.k8s.config_valid.clone(),
        );
        registry.register(
            "ironlb_config_revision",
            "Revision of the configuration in force",
            m.k8s.config_revision.clone(),
        );
        Self { registry, ..m }
    }

    /// Refreshes every gauge and renders the OpenMetrics text.
    pub fn render(&self, raft: RaftFigures, state: &ControllerState) -> String {
        self.raft_term
            .set(i64::try_from(raft.term).unwrap_or(i64::MAX));
        self.raft_is_leader.set(i64::from(raft.is_leader));
        self.raft_commit_index
            .set(i64::try_from(raft.commit_index).unwrap_or(i64::MAX));
        self.raft_applied_index
            .set(i64::try_from(raft.applied_index).unwrap_or(i64::MAX));
        self.raft_members
            .set(i64::try_from(raft.members).unwrap_or(i64::MAX));
        self.k8s
            .config_revision
            .set(i64::try_from(state.config_revision).unwrap_or(i64::MAX));
        // Pools come and go with the configuration: start from nothing each time.
        self.addresses.clear();
        for (pool, stats) in state.allocator.stats() {
            for family in IpFamily::ALL {
                let c = stats.family(family);
                if c.total == 0 {
                    continue;
                }
                let fam = match family {
                    IpFamily::V4 => "ipv4",
                    IpFamily::V6 => "ipv6",
                };
                for (state, value) in [
                    ("total", c.total),
                    ("in_use", c.in_use),
                    ("available", c.available),
                ] {
                    let labels = AddressLabels {
                        pool: pool.to_string(),
                        family: fam.to_string(),
                        state: state.to_string(),
                    };
                    // f64 holds an IPv6 /64's 2^64 exactly, and beyond that to within
                    // rounding: enough for a gauge.
                    self.addresses.get_or_create(&labels).set(value as f64);
                }
            }
        }
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_metric_with_units_and_pool_counts() {
        let m = Metrics::new();
        m.allocation_duration.observe(0.002);
        let mut state = ControllerState::default();
        let pool = crate::ipam::PoolSpec::new(
            "public".parse().unwrap(),
            vec![crate::ipam::AddrRange::parse("2001:db8::/64").unwrap()],
        );
        state.allocator.set_pools(vec![pool]).unwrap();
        let text = m.render(
            RaftFigures {
                term: 3,
                is_leader: true,
                commit_index: 7,
                applied_index: 7,
                members: 3,
            },
            &state,
        );
        for needle in [
            "ironlb_raft_term 3",
            "ironlb_raft_is_leader 1",
            "ironlb_raft_commit_index 7",
            "ironlb_raft_applied_index 7",
            "ironlb_raft_members 3",
            "ironlb_allocation_duration_seconds_count 1",
            "# EOF",
        ] {
            assert!(text.contains(needle), "{needle} missing from\n{text}");
        }
        let total = "ironlb_allocator_addresses{pool=\"public\",family=\"ipv6\",state=\"total\"} ";
        let line = text.lines().find(|l| l.starts_with(total)).unwrap();
        let value: f64 = line[total.len()..].parse().unwrap();
        assert_eq!(value, 2f64.powi(64));
    }
}
