//! Proposing a command and waiting for it to be applied, with the outcomes a caller acts on.

use std::time::Duration;

use openraft::error::{ClientWriteError, RaftError};

use super::command::{Command, Response};
use super::types::{Member, NodeId, Raft};

/// Why a proposal did not take effect (as far as this member knows).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProposeError {
    /// This member does not lead; the leader, if known.
    #[error("this member is not the leader")]
    NotLeader(Option<(NodeId, Member)>),
    /// Not committed in time: the leader cannot reach a majority.
    #[error("{kind} was not committed within {after:?}: no quorum is reachable from the leader")]
    Timeout {
        /// The command's kind.
        kind: &'static str,
        /// How long was waited.
        after: Duration,
    },
    /// Raft stopped or failed.
    #[error("{kind}: {reason}")]
    Raft {
        /// The command's kind.
        kind: &'static str,
        /// What Raft said.
        reason: String,
    },
}

/// Proposes `command` and waits until it is applied here, at most `timeout`.
pub async fn propose(
    raft: &Raft,
    command: Command,
    timeout: Duration,
) -> Result<Response, ProposeError> {
    let kind = command.kind();
    match tokio::time::timeout(timeout, raft.client_write(command)).await {
        Ok(Ok(resp)) => Ok(resp.data),
        Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f)))) => {
            Err(ProposeError::NotLeader(f.leader_id.zip(f.leader_node)))
        }
        Ok(Err(e)) => Err(ProposeError::Raft {
            kind,
            reason: e.to_string(),
        }),
        Err(_) => Err(ProposeError::Timeout {
            kind,
            after: timeout,
        }),
    }
}
