//! The types openraft is instantiated with: node ids, member addresses, log entries.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::command::{Command, Response};

/// A member's id in the Raft cluster (a StatefulSet ordinal plus one, or given by hand).
pub type MemberId = u64;

/// Where a member listens: its Raft port (peers and speakers) and its admin API (HTTP).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// `host:port` of the Raft RPC listener.
    pub raft_addr: String,
    /// `host:port` of the admin HTTP API.
    pub admin_addr: String,
}

impl fmt::Display for Member {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "raft {} admin {}", self.raft_addr, self.admin_addr)
    }
}

openraft::declare_raft_types!(
    /// ironlb's Raft type configuration: commands on the allocator, members with two addresses.
    pub TypeConfig:
        D = Command,
        R = Response,
        NodeId = MemberId,
        Node = Member,
        Entry = openraft::Entry<TypeConfig>,
        // A file: snapshots are streamed to and from disk (raft::state_machine).
        SnapshotData = tokio::fs::File,
        AsyncRuntime = openraft::TokioRuntime,
);

/// The Raft handle of a member.
pub type Raft = openraft::Raft<TypeConfig>;
/// A log entry.
pub type Entry = openraft::Entry<TypeConfig>;
/// A log id.
pub type LogId = openraft::LogId<MemberId>;
/// A vote.
pub type Vote = openraft::Vote<MemberId>;
/// Membership as stored with its log id.
pub type StoredMembership = openraft::StoredMembership<MemberId, Member>;
/// Metadata of a snapshot.
pub type SnapshotMeta = openraft::SnapshotMeta<MemberId, Member>;
/// A snapshot.
pub type Snapshot = openraft::Snapshot<TypeConfig>;
/// A storage error.
pub type StorageError = openraft::StorageError<MemberId>;
