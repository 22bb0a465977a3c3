//! The replicated controller state: openraft types, the state machine's commands and logic,
//! the log on disk (segment files; sled only to import an older member's log) and the network
//! between members.

pub mod command;
pub mod identity;
pub mod log_store;
pub mod network;
pub mod propose;
pub mod state;
pub mod state_machine;
pub mod store;
pub mod types;
pub mod wal;

pub use command::{Command, Response};
pub use propose::{propose, ProposeError, Proposer};
pub use state::{ControllerState, SharedState};
pub use store::{open as open_store, LogStore, StateMachineStore, StoreError};
pub use types::{Member, MemberId, Raft, TypeConfig};
