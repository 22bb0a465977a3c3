//! A snapshot's bytes: its metadata and the controllers' state as records only.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::{decode_format_1, format_of, CodecError, EncodeError, FORMAT};
use crate::config::Config;
use crate::ipam::{Allocation, Allocator, PoolSpec, PoolsError};
use crate::names::{NodeName, ServiceKey};
use crate::raft::state::ControllerState;
use crate::raft::types::{MemberId, SnapshotMeta};

/// The transfer type of a snapshot (format 2).
#[derive(Debug, Serialize, Deserialize)]
pub struct SnapshotRecord {
    /// Which log entry the state includes, and the membership then.
    pub meta: SnapshotMeta,
    /// The state.
    pub state: StateRecords,
}

/// [`ControllerState`] as records: what was decided, none of the indexes that speed up deciding.
#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateRecords {
    /// The configuration in force.
    pub config: Option<Config>,
    /// How many configurations were installed.
    pub config_revision: u64,
    /// The pools as the allocator holds them (the configuration's, or set directly).
    pub pools: Vec<PoolSpec>,
    /// Every Service's allocation.
    pub allocations: Vec<Allocation>,
    /// Reserved addresses and who for.
    pub reservations: Vec<(IpAddr, ServiceKey)>,
    /// Which node answers for each address in Layer 2 mode.
    pub owners: BTreeMap<IpAddr, NodeName>,
    /// Every member id ever used.
    pub member_ids: BTreeSet<MemberId>,
}

impl From<&ControllerState> for StateRecords {
    fn from(state: &ControllerState) -> Self {
        StateRecords {
            config: state.config.clone(),
            config_revision: state.config_revision,
            pools: state.allocator.pools().cloned().collect(),
            allocations: state
                .allocator
                .allocations()
                .map(|(_, a)| a.clone())
                .collect(),
            reservations: state
                .allocator
                .reservations()
                .map(|(a, s)| (*a, s.clone()))
                .collect(),
            owners: state.owners.clone(),
            member_ids: state.member_ids.clone(),
        }
    }
}

impl TryFrom<StateRecords> for ControllerState {
    type Error = PoolsError;

    fn try_from(r: StateRecords) -> Result<Self, PoolsError> {
        Ok(ControllerState {
            allocator: Allocator::from_records(r.pools, r.allocations, r.reservations)?,
            config: r.config,
            config_revision: r.config_revision,
            owners: r.owners,
            member_ids: r.member_ids,
        })
    }
}

/// Why a snapshot could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// The bytes are not a snapshot of a readable format.
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// The records do not make an allocator (overlapping pools): never written by ironlb.
    #[error("the snapshot's pools: {0}")]
    Pools(#[from] PoolsError),
}

/// Writes a snapshot in the current format.
pub fn encode(meta: &SnapshotMeta, state: &ControllerState) -> Result<Vec<u8>, EncodeError> {
    #[derive(Serialize)]
    struct Borrowed<'a> {
        meta: &'a SnapshotMeta,
        state: StateRecords,
    }
    super::encode(&Borrowed {
        meta,
        state: StateRecords::from(state),
    })
}

/// Reads a snapshot of any readable format.
pub fn decode(bytes: &[u8]) -> Result<(SnapshotMeta, ControllerState), SnapshotError> {
    match format_of(bytes)? {
        // Format 1 kept the in-memory state, indexes and all.
        1 => Ok(decode_format_1(bytes)?),
        FORMAT => {
            let record: SnapshotRecord = super::decode(bytes)?;
            Ok((record.meta, ControllerState::try_from(record.state)?))
        }
        found => Err(CodecError::UnknownFormat { found }.into()),
    }
}
