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

/// Labels of `ironlb_l2_owner_info`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OwnerLabels {
    /// The address.
    pub address: String,
    /// The Service (`namespace/name`; the first, when shared).
    pub service: String,
    /// The node answering for it.
    pub node: String,
}

/// Labels of `ironlb_bgp_announcing_nodes`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
pub struct ServiceAddressLabels {
    /// The address.
    pub address: String,
    /// The Service (`namespace/name`).
    pub service: String,
}

/// Labels of `ironlb_speakers`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SpeakerStateLabels {
    /// `connected` or `fenced`.
    pub state: String,
}

/// Labels of `ironlb_raft_replication_lag_entries`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MemberLabels {
    /// The follower's member id.
    pub member: String,
}

/// Labels of `ironlb_allocation_failures_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    /// Why: `refused` (the allocator said no: no pool, exhausted, conflict) or `error` (not
    /// committed: no leader, no quorum, timeout).
    pub reason: String,
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
    /// Status writes the API server refused or that failed on the way.
    pub status_write_failures: Counter,
    /// 1 while the configuration objects are invalid, so an older configuration stays in force.
    pub config_stale: Gauge,
    /// 1 while the configuration objects form a valid configuration.
    pub config_valid: Gauge,
    /// The revision of the configuration in force.
    pub config_revision: Gauge,
}

impl K8sMetrics {
    /// The series of one result, created at zero.
    fn reconciled_by(&self, result: &str) {
        drop(self.reconciles.get_or_create(&ResultLabels {
            result: result.to_string(),
        }));
    }

    /// Counts one Service reconciled with this result.
    pub fn reconciled(&self, result: &str) {
        self.reconciles
            .get_or_create(&ResultLabels {
                result: result.to_string(),
            })
            .inc();
    }
}

/// The files of a member started with `--config-file` or `--services-file` (registered only
/// then, by [`Metrics::with_files`]).
#[derive(Default)]
pub struct FileMetrics {
    /// 1 while this member's files are valid: the configuration and every Service in them.
    pub valid: Gauge,
    /// 1 while this member's valid files ask for something other than the leader's.
    pub differ: Gauge,
    /// Reads that found the files invalid, once for each invalid content.
    pub invalid: Counter,
    /// Passes in which the leader applied its files.
    pub applied: Counter,
}

/// Every metric the controller exports.
pub struct Metrics {
    registry: Registry,
    raft_term: Gauge,
    raft_is_leader: Gauge,
    raft_commit_index: Gauge,
    raft_applied_index: Gauge,
    raft_members: Gauge,
    raft_voters: Gauge,
    raft_has_leader: Gauge,
    raft_quorum_ack_age: Gauge<f64, AtomicU64>,
    raft_lag: Family<MemberLabels, Gauge>,
    addresses: Family<AddressLabels, Gauge<f64, AtomicU64>>,
    owner_info: Family<OwnerLabels, Gauge>,
    l2_unowned: Gauge,
    bgp_announcing: Family<ServiceAddressLabels, Gauge>,
    speakers: Family<SpeakerStateLabels, Gauge>,
    allocation_failures: Family<ReasonLabels, Counter>,
    /// Time from a dead owner's last heartbeat (about) to its address's new owner
    /// acknowledging it, seconds.
    pub failover_duration: Histogram,
    /// Time from receiving an allocation to its being applied, seconds.
    pub allocation_duration: Histogram,
    /// Layer 2 owner changes committed (an address given to a node).
    pub owner_changes: Counter,
    /// Owner changes because the owner died or drained.
    pub failovers: Counter,
    /// The Kubernetes reconciler's.
    pub k8s: K8sMetrics,
    /// The files' (members started with files).
    pub files: FileMetrics,
}

/// What the Raft layer reports, as the metrics need it.
#[derive(Clone, Debug, Default)]
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
    /// Voters.
    pub voters: usize,
    /// Whether this member knows a leader.
    pub has_leader: bool,
    /// On the leader: how long ago a quorum last acknowledged it.
    pub quorum_ack_age: Option<std::time::Duration>,
    /// On the leader: how many entries each follower's log is behind its own.
    pub lag: Vec<(u64, u64)>,
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
            raft_voters: Gauge::default(),
            raft_has_leader: Gauge::default(),
            raft_quorum_ack_age: Gauge::default(),
            raft_lag: Family::default(),
            addresses: Family::default(),
            owner_info: Family::default(),
            l2_unowned: Gauge::default(),
            bgp_announcing: Family::default(),
            speakers: Family::default(),
            allocation_failures: Family::default(),
            // 10 ms to about 40 s.
            failover_duration: Histogram::new(exponential_buckets(0.01, 2.0, 13)),
            // 100 µs to about 6.5 s.
            allocation_duration: Histogram::new(exponential_buckets(0.0001, 2.0, 17)),
            owner_changes: Counter::default(),
            failovers: Counter::default(),
            k8s: K8sMetrics::default(),
            files: FileMetrics::default(),
            registry: Registry::default(),
        };
        // Series that exist from the start, so a query over them returns data (zeros) rather
        // than nothing, and a rate over them starts from a known value.
        for result in ["changed", "unchanged"] {
            m.k8s.reconciled_by(result);
        }
        for reason in ["refused", "error"] {
            drop(m.allocation_failures.get_or_create(&ReasonLabels {
                reason: reason.into(),
            }));
        }
        // Only the Kubernetes reconciler can meet invalid configuration objects (the admin API
        // and the files refuse them outright): valid until it says otherwise.
        m.k8s.config_valid.set(1);
        m.register_raft(&mut registry);
        m.register_health(&mut registry);
        m.register_announcements(&mut registry);
        m.register_allocations(&mut registry);
        m.register_k8s(&mut registry);
        Self { registry, ..m }
    }

    /// The same, with the metrics of files (for a member started with them).
    pub fn with_files(mut self) -> Self {
        let f = &self.files;
        let registry = &mut self.registry;
        registry.register(
            "ironlb_config_files_valid",
            "1 while this member's configuration and Services files are valid",
            f.valid.clone(),
        );
        registry.register(
            "ironlb_config_files_differ_from_leader",
            "1 while this member's valid files ask for something other than the leader's",
            f.differ.clone(),
        );
        registry.register(
            "ironlb_config_files_invalid",
            "Reads that found this member's files invalid (once per invalid content); the last valid files stay in force",
            f.invalid.clone(),
        );
        registry.register(
            "ironlb_config_files_applied",
            "Passes in which this member, leading, applied its files",
            f.applied.clone(),
        );
        self
    }

    /// Registers Raft's position: term, leadership, commit and applied indexes, members.
    fn register_raft(&self, registry: &mut Registry) {
        registry.register(
            "ironlb_raft_term",
            "Current Raft term",
            self.raft_term.clone(),
        );
        registry.register(
            "ironlb_raft_is_leader",
            "1 if this member is the Raft leader",
            self.raft_is_leader.clone(),
        );
        registry.register(
            "ironlb_raft_commit_index",
            "Index of the last committed log entry",
            self.raft_commit_index.clone(),
        );
        registry.register(
            "ironlb_raft_applied_index",
            "Index of the last log entry applied to the state machine",
            self.raft_applied_index.clone(),
        );
        registry.register(
            "ironlb_raft_members",
            "Members of the Raft cluster (voters and learners)",
            self.raft_members.clone(),
        );
    }

    /// Registers the allocator's families: addresses per pool, allocations, owner changes.
    fn register_allocations(&self, registry: &mut Registry) {
        registry.register(
            "ironlb_allocator_addresses",
            "Addresses per pool and family: total, in use, available",
            self.addresses.clone(),
        );
        registry.register(
            "ironlb_allocation_duration_seconds",
            "Time from receiving an allocation request to its being applied",
            self.allocation_duration.clone(),
        );
        registry.register(
            "ironlb_owner_changes",
            "Layer 2 owner changes committed by this member while leading",
            self.owner_changes.clone(),
        );
        registry.register(
            "ironlb_failovers",
            "Layer 2 owner changes because the owner died or drained",
            self.failovers.clone(),
        );
        registry.register(
            "ironlb_allocation_failures",
            "Allocations that failed, by reason: refused by the allocator, or not committed",
            self.allocation_failures.clone(),
        );
    }

    /// Registers the Kubernetes reconciler's families and the configuration's state.
    fn register_k8s(&self, registry: &mut Registry) {
        registry.register(
            "ironlb_k8s_reconciles",
            "Services reconciled by the Kubernetes reconciler, by result",
            self.k8s.reconciles.clone(),
        );
        registry.register(
            "ironlb_k8s_status_writes",
            "Writes of Service, pool and configuration status to the Kubernetes API",
            self.k8s.status_writes.clone(),
        );
        registry.register(
            "ironlb_k8s_status_write_failures",
            "Writes to the Kubernetes API that failed",
            self.k8s.status_write_failures.clone(),
        );
        registry.register(
            "ironlb_config_stale",
            "1 while the configuration objects are invalid and an older configuration stays in force",
            self.k8s.config_stale.clone(),
        );
        registry.register(
            "ironlb_config_valid",
            "1 if the configuration objects form a valid configuration",
            self.k8s.config_valid.clone(),
        );
        registry.register(
            "ironlb_config_revision",
            "Revision of the configuration in force",
            self.k8s.config_revision.clone(),
        );
    }

    /// Registers Raft's health: leader known, quorum, voters, followers' lag.
    fn register_health(&self, registry: &mut Registry) {
        registry.register(
            "ironlb_raft_voters",
            "Voting members of the Raft cluster",
            self.raft_voters.clone(),
        );
        registry.register(
            "ironlb_raft_has_leader",
            "1 if this member knows a Raft leader",
            self.raft_has_leader.clone(),
        );
        registry.register(
            "ironlb_raft_quorum_ack_age_seconds",
            "On the leader: time since a quorum last acknowledged its leadership",
            self.raft_quorum_ack_age.clone(),
        );
        registry.register(
            "ironlb_raft_replication_lag_entries",
            "On the leader: log entries each follower is behind",
            self.raft_lag.clone(),
        );
    }

    /// Registers what the leader told speakers to announce, and its speakers' state.
    fn register_announcements(&self, registry: &mut Registry) {
        registry.register(
            "ironlb_l2_owner_info",
            "On the leader: 1 for each Layer 2 address, with the node told to answer for it",
            self.owner_info.clone(),
        );
        registry.register(
            "ironlb_l2_unowned_addresses",
            "On the leader: Layer 2 addresses allocated but answered for by no node",
            self.l2_unowned.clone(),
        );
        registry.register(
            "ironlb_bgp_announcing_nodes",
            "On the leader: nodes told to announce each address over BGP",
            self.bgp_announcing.clone(),
        );
        registry.register(
            "ironlb_speakers",
            "On the leader: speakers with a session, connected (all) and fenced",
            self.speakers.clone(),
        );
        registry.register(
            "ironlb_failover_duration_seconds",
            "On the leader: from a dead owner's last heartbeat to the new owner acknowledging the address",
            self.failover_duration.clone(),
        );
    }

    /// Counts one failed allocation: `refused` by the allocator, or an `error` committing it.
    pub fn allocation_failed(&self, reason: &str) {
        self.allocation_failures
            .get_or_create(&ReasonLabels {
                reason: reason.to_string(),
            })
            .inc();
    }

    /// Refreshes the per-address gauges from the leader's summary (empty on a follower).
    fn render_announcements(&self, a: &crate::controller::announced::Announcements) {
        self.owner_info.clear();
        self.bgp_announcing.clear();
        self.speakers.clear();
        self.l2_unowned
            .set(i64::try_from(a.l2_unowned.len()).unwrap_or(i64::MAX));
        if !a.leading {
            return;
        }
        for (state, n) in [
            ("connected", a.speakers_connected),
            ("fenced", a.speakers_fenced),
        ] {
            self.speakers
                .get_or_create(&SpeakerStateLabels {
                    state: state.into(),
                })
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
        for (service, list) in &a.l2 {
            for l in list {
                for address in &l.addresses {
                    self.owner_info
                        .get_or_create(&OwnerLabels {
                            address: address.to_string(),
                            service: service.to_string(),
                            node: l.node.to_string(),
                        })
                        .set(1);
                }
            }
        }
        let mut nodes: std::collections::BTreeMap<ServiceAddressLabels, i64> = Default::default();
        for (service, list) in &a.bgp {
            for b in list {
                for address in &b.addresses {
                    *nodes
                        .entry(ServiceAddressLabels {
                            address: address.to_string(),
                            service: service.to_string(),
                        })
                        .or_default() += 1;
                }
            }
        }
        for (labels, n) in nodes {
            self.bgp_announcing.get_or_create(&labels).set(n);
        }
    }

    /// Refreshes every gauge and renders the OpenMetrics text.
    pub fn render(
        &self,
        raft: RaftFigures,
        state: &ControllerState,
        announced: &crate::controller::announced::Announcements,
    ) -> String {
        self.render_announcements(announced);
        self.raft_voters
            .set(i64::try_from(raft.voters).unwrap_or(i64::MAX));
        self.raft_has_leader.set(i64::from(raft.has_leader));
        self.raft_quorum_ack_age
            .set(raft.quorum_ack_age.map_or(0.0, |d| d.as_secs_f64()));
        self.raft_lag.clear();
        for (member, lag) in &raft.lag {
            self.raft_lag
                .get_or_create(&MemberLabels {
                    member: member.to_string(),
                })
                .set(i64::try_from(*lag).unwrap_or(i64::MAX));
        }
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
                voters: 3,
                has_leader: true,
                quorum_ack_age: Some(std::time::Duration::from_millis(20)),
                lag: vec![(2, 0), (3, 5)],
            },
            &state,
            &Default::default(),
        );
        for needle in [
            "ironlb_raft_term 3",
            "ironlb_raft_is_leader 1",
            "ironlb_raft_commit_index 7",
            "ironlb_raft_applied_index 7",
            "ironlb_raft_members 3",
            "ironlb_raft_voters 3",
            "ironlb_raft_has_leader 1",
            "ironlb_raft_quorum_ack_age_seconds 0.02",
            "ironlb_raft_replication_lag_entries{member=\"3\"} 5",
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
