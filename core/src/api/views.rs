//! The JSON shapes of the admin API, shared by the server and `ironlb ctl`.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::ipam::{Allocation, Explanation, PoolStats, Recheck};
use crate::metrics::controller::RaftFigures;
use crate::names::{NodeName, PoolName, ServiceKey};
use crate::raft::{ControllerState, Member, MemberId};

/// `GET /v1/status`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// The answering member.
    pub id: MemberId,
    /// `Leader`, `Follower`, `Candidate` or `Learner`.
    pub role: String,
    /// The current term.
    pub term: u64,
    /// The leader's id, if known.
    pub leader: Option<MemberId>,
    /// Index of the last log entry.
    pub last_log_index: u64,
    /// Index of the last committed entry.
    pub commit_index: u64,
    /// Index of the last applied entry.
    pub applied_index: u64,
    /// Index of the last snapshot.
    pub snapshot_index: Option<u64>,
    /// Voters and learners.
    pub members: usize,
    /// Voters only.
    #[serde(default)]
    pub voters: usize,
    /// Revision of the configuration in force (0: none).
    pub config_revision: u64,
    /// Services holding addresses.
    pub allocations: usize,
    /// This member's files, if it was started with them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub files: Option<FilesView>,
}

/// What a member's configuration and Services files say, as it last read them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilesView {
    /// The files or directories read, in order.
    pub paths: Vec<String>,
    /// Whether they are valid (the configuration and every Service).
    pub valid: bool,
    /// The fingerprint of what they ask for, if the configuration is valid (equal on members
    /// whose files say the same).
    pub digest: Option<String>,
    /// Every problem found, one per line.
    pub errors: Vec<String>,
    /// On a follower: whether its files ask for something other than the leader's (`None`:
    /// not compared, e.g. on the leader or while either's files are invalid).
    pub differs_from_leader: Option<bool>,
    /// On the leader: the fingerprint of the files it last applied.
    pub applied: Option<String>,
}

impl Status {
    /// The status from Raft's metrics and the applied state.
    pub fn new(
        id: MemberId,
        m: &openraft::RaftMetrics<MemberId, Member>,
        figures: RaftFigures,
        state: &ControllerState,
    ) -> Self {
        Self {
            id,
            role: format!("{:?}", m.state),
            term: m.current_term,
            leader: m.current_leader,
            last_log_index: m.last_log_index.unwrap_or(0),
            commit_index: figures.commit_index,
            applied_index: figures.applied_index,
            snapshot_index: m.snapshot.map(|s| s.index),
            members: figures.members,
            voters: m.membership_config.membership().voter_ids().count(),
            config_revision: state.config_revision,
            allocations: state.allocator.allocation_count(),
            files: None,
        }
    }
}

/// One member of the cluster.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberView {
    /// Its id.
    pub id: MemberId,
    /// Its Raft address.
    pub raft_addr: String,
    /// Its admin API address.
    pub admin_addr: String,
    /// Whether it votes (else a learner).
    pub voter: bool,
    /// Whether it leads.
    pub leader: bool,
}

/// `GET /v1/members`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Members {
    /// Every member, by id.
    pub members: Vec<MemberView>,
}

impl Members {
    /// The members from Raft's metrics.
    pub fn new(m: &openraft::RaftMetrics<MemberId, Member>) -> Self {
        let membership = m.membership_config.membership();
        let voters: Vec<MemberId> = membership.voter_ids().collect();
        let members = membership
            .nodes()
            .map(|(id, node)| MemberView {
                id: *id,
                raft_addr: node.raft_addr.clone(),
                admin_addr: node.admin_addr.clone(),
                voter: voters.contains(id),
                leader: m.current_leader == Some(*id),
            })
            .collect();
        Self { members }
    }
}

/// `POST /v1/members`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddMember {
    /// The new member's id.
    pub id: MemberId,
    /// Its Raft address.
    pub raft_addr: String,
    /// Its admin API address.
    pub admin_addr: String,
    /// Whether it should vote once caught up (default true).
    #[serde(default = "yes")]
    pub voter: bool,
}

fn yes() -> bool {
    true
}

/// `GET /v1/cluster`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterView {
    /// The cluster this member belongs to, if it knows it.
    pub cluster: Option<crate::raft::identity::ClusterId>,
    /// The member's id.
    pub member: MemberId,
    /// Whether it has Raft state (it belongs to a cluster that exists).
    pub initialized: bool,
}

/// `POST /v1/members/reserve`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReserveMember {
    /// The id the member would like (its `--id`).
    #[serde(default)]
    pub requested: Option<MemberId>,
}

/// The answer to [`ReserveMember`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReservedMember {
    /// The id, never used in this cluster before.
    pub id: MemberId,
    /// The cluster.
    pub cluster: Option<crate::raft::identity::ClusterId>,
}

/// `GET /v1/pools`: counts per pool and family.
pub fn pools(state: &ControllerState) -> BTreeMap<PoolName, PoolStats> {
    state.allocator.stats()
}

/// A Service's allocation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceView {
    /// The Service.
    pub service: ServiceKey,
    /// The pool.
    pub pool: PoolName,
    /// Its addresses, primary family first.
    pub addresses: Vec<IpAddr>,
    /// Why it holds them, when asked for one Service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub explain: Option<String>,
}

impl ServiceView {
    /// The view of an allocation.
    pub fn new(key: &ServiceKey, alloc: &Allocation, explain: Option<&Explanation>) -> Self {
        Self {
            service: key.clone(),
            pool: alloc.pool.clone(),
            addresses: alloc.addresses.clone(),
            explain: explain.map(|e| e.to_string()),
        }
    }
}

/// `GET /v1/services`.
pub fn services(state: &ControllerState) -> Vec<ServiceView> {
    state
        .allocator
        .allocations()
        .map(|(k, a)| ServiceView::new(k, a, None))
        .collect()
}

/// Who answers for an allocated address in Layer 2 mode.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnerView {
    /// The address.
    pub address: IpAddr,
    /// The Services holding it.
    pub services: Vec<ServiceKey>,
    /// The node answering for it, if any.
    pub node: Option<NodeName>,
}

/// Every allocated address and its Layer 2 owner, in address order.
pub fn owners(state: &ControllerState) -> Vec<OwnerView> {
    state
        .allocator
        .held_addresses()
        .map(|(addr, services)| OwnerView {
            address: *addr,
            services: services.to_vec(),
            node: state.owners.get(addr).cloned(),
        })
        .collect()
}

/// The answer to an allocation or an explanation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllocateResult {
    /// The Service.
    pub service: ServiceKey,
    /// The pool, if it got addresses.
    pub pool: Option<PoolName>,
    /// The addresses (empty if refused).
    pub addresses: Vec<IpAddr>,
    /// Why it was refused, if it was.
    pub error: Option<String>,
    /// The decision in words.
    pub explain: String,
}

impl AllocateResult {
    /// From the allocator's explanation.
    pub fn new(e: &Explanation) -> Self {
        Self {
            service: e.service.clone(),
            pool: e.outcome.as_ref().ok().map(|d| d.pool.clone()),
            addresses: e
                .outcome
                .as_ref()
                .map(|d| d.picks.iter().map(|(a, _)| *a).collect())
                .unwrap_or_default(),
            error: e.outcome.as_ref().err().map(|r| r.to_string()),
            explain: e.to_string(),
        }
    }
}

/// A reservation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reservation {
    /// The address.
    pub address: IpAddr,
    /// The Service it is held for.
    pub service: ServiceKey,
}

/// `GET /v1/config`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ConfigView {
    /// Revision of the configuration in force (0: none).
    pub revision: u64,
    /// The configuration in force.
    pub config: Option<Config>,
}

/// The answer to `PUT /v1/config`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigApplied {
    /// The new revision.
    pub revision: u64,
    /// Allocations the configuration still allows.
    pub kept: usize,
    /// Allocations whose pool was renamed or split: service, old pool, new pool.
    pub rehomed: Vec<(ServiceKey, PoolName, PoolName)>,
    /// Allocations it forbids, with the reason.
    pub forbidden: Vec<(ServiceKey, String)>,
}

impl ConfigApplied {
    /// From the allocator's re-check.
    pub fn new(revision: u64, r: &Recheck) -> Self {
        Self {
            revision,
            kept: r.kept.len(),
            rehomed: r.rehomed.clone(),
            forbidden: r
                .forbidden
                .iter()
                .map(|(k, why)| (k.clone(), why.to_string()))
                .collect(),
        }
    }
}

/// Which node answers for each address (L2).
pub type Owners = BTreeMap<IpAddr, NodeName>;
