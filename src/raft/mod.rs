//! The replicated controller state: openraft types, the state machine's commands and logic,
//! sled storage and the network between members.

pub mod command;
pub mod state;
pub mod types;

pub use command::{Command, Response};
pub use state::{ControllerState, SharedState};
pub use types::{Member, NodeId, Raft, TypeConfig};
