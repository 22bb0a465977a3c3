//! The commands the replicated state machine applies, and their answers.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::ipam::{Allocation, AllocationRequest, Explanation, Recheck, Refusal, ReserveError};
use crate::names::{NodeName, ServiceKey};
use crate::raft::types::MemberId;

/// A change to the replicated state. Each carries every input its decision needs, so applying
/// it is deterministic on every member.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Install a validated configuration (the proposer validated it; an invalid one never
    /// reaches the log).
    SetConfig {
        /// The new configuration.
        config: Box<Config>,
    },
    /// Give a Service addresses, or keep those it has.
    Allocate {
        /// What the Service asks for.
        request: AllocationRequest,
    },
    /// Free a Service's addresses.
    Release {
        /// The Service.
        service: ServiceKey,
    },
    /// Hold an address for a Service across its deletion.
    Reserve {
        /// The address.
        address: IpAddr,
        /// The Service it is kept for.
        service: ServiceKey,
    },
    /// Drop a reservation.
    Unreserve {
        /// The address.
        address: IpAddr,
    },
    /// Record addresses a Service already holds (from its status).
    Adopt {
        /// What the Service asks for.
        request: AllocationRequest,
        /// The addresses it holds.
        addresses: Vec<IpAddr>,
    },
    /// Set which node answers for addresses in Layer 2 mode (`None`: nobody).
    AssignOwners {
        /// Address and new owner, applied in order.
        moves: Vec<(IpAddr, Option<NodeName>)>,
    },
    /// Several commands in one log entry, applied in order (see `Proposer`).
    Batch {
        /// The commands.
        commands: Vec<Command>,
    },
    /// Hand out a member id never used in this cluster: `requested` if it is such an id, else
    /// the next after every id used so far. A member joining with an empty data directory
    /// takes its id from here, so it never comes back under an id that may have voted.
    ReserveMemberId {
        /// The id the member asks for (its `--id`).
        requested: Option<MemberId>,
    },
}

impl Command {
    /// A short name for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Command::SetConfig { .. } => "set_config",
            Command::Allocate { .. } => "allocate",
            Command::Release { .. } => "release",
            Command::Reserve { .. } => "reserve",
            Command::Unreserve { .. } => "unreserve",
            Command::Adopt { .. } => "adopt",
            Command::AssignOwners { .. } => "assign_owners",
            Command::Batch { .. } => "batch",
            Command::ReserveMemberId { .. } => "reserve_member_id",
        }
    }
}

/// The answer to a command, as applied.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    /// For log entries that carry no command (blank and membership entries).
    #[default]
    None,
    /// The configuration was installed, as this revision; what it did to allocations.
    Config {
        /// The configuration's revision (1 for the first).
        revision: u64,
        /// Allocations kept, re-homed, or forbidden by it.
        recheck: Recheck,
    },
    /// The configuration could not be installed (pools overlap); nothing changed.
    ConfigRefused(String),
    /// What an allocation did.
    Allocated(Explanation),
    /// What a release freed.
    Released(Option<Allocation>),
    /// Whether a reservation was made.
    Reserved(Result<(), ReserveError>),
    /// Whether a reservation was removed, and for whom it was.
    Unreserved(Result<ServiceKey, ReserveError>),
    /// Whether an adoption was recorded.
    Adopted(Result<Allocation, Refusal>),
    /// How many owners changed.
    OwnersAssigned(usize),
    /// The answers to a batch's commands, in order.
    Batch(Vec<Response>),
    /// The member id reserved.
    MemberId(MemberId),
}
