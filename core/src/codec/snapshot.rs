//! A snapshot's bytes: its metadata and the controllers' state as records only.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::{decode_format_1, format_of, CodecError, EncodeError, FORMAT, MAGIC};
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
            touched: Default::default(),
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
    /// The snapshot could not be read.
    #[error("reading the snapshot: {0}")]
    Io(#[from] std::io::Error),
}

/// Writes a snapshot in the current format.
pub fn encode(meta: &SnapshotMeta, state: &ControllerState) -> Result<Vec<u8>, EncodeError> {
    let mut out = Vec::with_capacity(128);
    encode_to(&mut out, meta, state)?;
    Ok(out)
}

/// Writes a snapshot in the current format to `out`, serialising the state's records as it
/// walks them: no copy of the state is built, so a large state costs no second copy in memory
/// (give a buffered writer: the serialiser writes in small pieces).
pub fn encode_to<W: std::io::Write>(
    mut out: W,
    meta: &SnapshotMeta,
    state: &ControllerState,
) -> Result<(), EncodeError> {
    out.write_all(&super::MAGIC)
        .and_then(|()| out.write_all(&[FORMAT]))
        .map_err(serde_json::Error::io)?;
    serde_json::to_writer(
        out,
        &BorrowedSnapshot {
            meta,
            state: BorrowedState(state),
        },
    )
}

/// [`SnapshotRecord`] borrowed from the state: serialises to the same JSON, field for field.
#[derive(Serialize)]
struct BorrowedSnapshot<'a> {
    meta: &'a SnapshotMeta,
    state: BorrowedState<'a>,
}

/// [`StateRecords`] borrowed from the state: serialises to the same JSON, field for field (the
/// formats test pins both to the same bytes).
struct BorrowedState<'a>(&'a ControllerState);

impl Serialize for BorrowedState<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;

        /// A sequence serialised straight from an iterator, which it may walk once.
        struct Seq<I>(std::cell::Cell<Option<I>>);
        impl<I> Serialize for Seq<I>
        where
            I: Iterator,
            I::Item: Serialize,
        {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                match self.0.take() {
                    Some(items) => serializer.collect_seq(items),
                    None => Err(serde::ser::Error::custom("a sequence serialised twice")),
                }
            }
        }
        fn seq<I>(items: I) -> Seq<I> {
            Seq(std::cell::Cell::new(Some(items)))
        }

        let state = self.0;
        let mut s = serializer.serialize_struct("StateRecords", 7)?;
        s.serialize_field("config", &state.config)?;
        s.serialize_field("config_revision", &state.config_revision)?;
        s.serialize_field("pools", &seq(state.allocator.pools()))?;
        s.serialize_field(
            "allocations",
            &seq(state.allocator.allocations().map(|(_, a)| a)),
        )?;
        s.serialize_field("reservations", &seq(state.allocator.reservations()))?;
        s.serialize_field("owners", &state.owners)?;
        s.serialize_field("member_ids", &state.member_ids)?;
        s.end()
    }
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

/// Reads a snapshot of any readable format from `reader` (give a buffered one). The current
/// format is decoded as it is read, so a received snapshot is never held whole in memory beside
/// the state it makes; format 1 (only ever in a data directory written before format 2) is read
/// whole first.
pub fn decode_reader<R: Read>(
    mut reader: R,
) -> Result<(SnapshotMeta, ControllerState), SnapshotError> {
    let mut head = Vec::with_capacity(MAGIC.len() + 1);
    reader
        .by_ref()
        .take((MAGIC.len() + 1) as u64)
        .read_to_end(&mut head)?;
    if format_of(&head)? == FORMAT && head.len() == MAGIC.len() + 1 {
        let record: SnapshotRecord = serde_json::from_reader(reader).map_err(CodecError::Json)?;
        return Ok((record.meta, ControllerState::try_from(record.state)?));
    }
    reader.read_to_end(&mut head)?;
    decode(&head)
}
