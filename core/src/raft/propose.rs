//! Proposing a command and waiting for it to be applied, with the outcomes a caller acts on.

use std::sync::Arc;
use std::time::Duration;

use openraft::error::{ClientWriteError, RaftError};
use tokio::sync::{mpsc, oneshot, Semaphore};

use std::net::IpAddr;

use super::command::{Command, Response};
use super::types::{Member, MemberId, Raft};
use crate::config::Config;
use crate::ipam::{Allocation, AllocationRequest, Explanation, Recheck, Refusal, ReserveError};
use crate::names::{NodeName, ServiceKey};

/// Why a proposal did not take effect (as far as this member knows).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProposeError {
    /// This member does not lead; the leader, if known.
    #[error("this member is not the leader")]
    NotLeader(Option<(MemberId, Member)>),
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
    /// The state machine answered with another kind of answer than the command's: a bug.
    #[error("{kind} was answered with {answer}")]
    Unexpected {
        /// The command's kind.
        kind: &'static str,
        /// The answer.
        answer: String,
    },
}

fn unexpected(kind: &'static str, answer: Response) -> ProposeError {
    ProposeError::Unexpected {
        kind,
        answer: format!("{answer:?}"),
    }
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

/// Most commands in one log entry. Allocation requests are a few hundred bytes, so a full batch
/// stays well under a few hundred KiB.
const MAX_BATCH: usize = 128;

/// Most batches proposed and not yet applied at once. On one machine 1 and 2 measured the same
/// (4 more cost a fifth of the rate: smaller batches, more CPU per allocation); 2 keeps the
/// replication pipe busy while a batch is applied, which matters more between real machines.
const MAX_IN_FLIGHT: usize = 2;

/// A command waiting for its batch.
pub(crate) struct Pending {
    pub(crate) command: Command,
    pub(crate) reply: oneshot::Sender<Result<Response, ProposeError>>,
}

/// Proposes commands in batches: the commands that arrive while earlier batches are being
/// committed travel together as one log entry ([`Command::Batch`]).
///
/// openraft 0.9 appends (and the leader syncs) each `client_write` on its own, so under
/// concurrent load the per-entry cost (a log record, replication framing, an apply) dominates;
/// one entry for many commands pays it once. A lone command is proposed as itself, at once.
#[derive(Clone, Debug)]
pub struct Proposer {
    tx: mpsc::Sender<Pending>,
}

impl Proposer {
    /// Starts the batching task for `raft`; each batch waits at most `timeout` to be applied.
    pub fn start(raft: Raft, timeout: Duration) -> Self {
        let (tx, rx) = mpsc::channel(4 * MAX_BATCH);
        tokio::spawn(batch_loop(raft, rx, timeout));
        Self { tx }
    }

    /// A proposer whose commands a test receives (and answers, or holds: a commit in flight).
    #[cfg(test)]
    pub(crate) fn for_tests() -> (Self, mpsc::Receiver<Pending>) {
        let (tx, rx) = mpsc::channel(64);
        (Self { tx }, rx)
    }

    /// Installs a configuration: its revision and what it did to allocations, or why the
    /// state machine refused it.
    pub async fn set_config(
        &self,
        config: Config,
    ) -> Result<Result<(u64, Recheck), String>, ProposeError> {
        let command = Command::SetConfig {
            config: Box::new(config),
        };
        match self.propose(command).await? {
            Response::Config { revision, recheck } => Ok(Ok((revision, recheck))),
            Response::ConfigRefused(why) => Ok(Err(why)),
            other => Err(unexpected("set-config", other)),
        }
    }

    /// Allocates for a Service: what was done, and why.
    pub async fn allocate(&self, request: AllocationRequest) -> Result<Explanation, ProposeError> {
        match self.propose(Command::Allocate { request }).await? {
            Response::Allocated(e) => Ok(e),
            other => Err(unexpected("allocate", other)),
        }
    }

    /// Releases a Service's addresses: what was freed.
    pub async fn release(&self, service: ServiceKey) -> Result<Option<Allocation>, ProposeError> {
        match self.propose(Command::Release { service }).await? {
            Response::Released(freed) => Ok(freed),
            other => Err(unexpected("release", other)),
        }
    }

    /// Records addresses a Service already holds: the allocation, or why it cannot be kept.
    pub async fn adopt(
        &self,
        request: AllocationRequest,
        addresses: Vec<IpAddr>,
    ) -> Result<Result<Allocation, Refusal>, ProposeError> {
        match self.propose(Command::Adopt { request, addresses }).await? {
            Response::Adopted(r) => Ok(r),
            other => Err(unexpected("adopt", other)),
        }
    }

    /// Sets an address aside for a Service, or why it cannot be.
    pub async fn reserve(
        &self,
        address: IpAddr,
        service: ServiceKey,
    ) -> Result<Result<(), ReserveError>, ProposeError> {
        match self.propose(Command::Reserve { address, service }).await? {
            Response::Reserved(r) => Ok(r),
            other => Err(unexpected("reserve", other)),
        }
    }

    /// Ends an address's reservation: the Service it was kept for, or why there was none.
    pub async fn unreserve(
        &self,
        address: IpAddr,
    ) -> Result<Result<ServiceKey, ReserveError>, ProposeError> {
        match self.propose(Command::Unreserve { address }).await? {
            Response::Unreserved(r) => Ok(r),
            other => Err(unexpected("unreserve", other)),
        }
    }

    /// A member id never used in this cluster (`requested` if it is free).
    pub async fn reserve_member_id(
        &self,
        requested: Option<MemberId>,
    ) -> Result<MemberId, ProposeError> {
        match self.propose(Command::ReserveMemberId { requested }).await? {
            Response::MemberId(id) => Ok(id),
            other => Err(unexpected("reserve-member-id", other)),
        }
    }

    /// Sets which node answers for addresses: how many owners changed.
    pub async fn assign_owners(
        &self,
        moves: Vec<(IpAddr, Option<NodeName>)>,
    ) -> Result<usize, ProposeError> {
        match self.propose(Command::AssignOwners { moves }).await? {
            Response::OwnersAssigned(n) => Ok(n),
            other => Err(unexpected("assign-owners", other)),
        }
    }

    /// Proposes `command` and waits until it is applied here.
    pub async fn propose(&self, command: Command) -> Result<Response, ProposeError> {
        let kind = command.kind();
        let stopped = || ProposeError::Raft {
            kind,
            reason: "the proposer has stopped".into(),
        };
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Pending { command, reply })
            .await
            .map_err(|_| stopped())?;
        rx.await.map_err(|_| stopped())?
    }
}

async fn batch_loop(raft: Raft, mut rx: mpsc::Receiver<Pending>, timeout: Duration) {
    let in_flight = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    while let Some(first) = rx.recv().await {
        // Waiting for a slot is what lets the next batch fill up.
        let Ok(permit) = Arc::clone(&in_flight).acquire_owned().await else {
            return;
        };
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(p) => batch.push(p),
                Err(_) => break,
            }
        }
        let raft = raft.clone();
        tokio::spawn(async move {
            let _permit = permit;
            propose_batch(&raft, batch, timeout).await;
        });
    }
}

async fn propose_batch(raft: &Raft, mut batch: Vec<Pending>, timeout: Duration) {
    if batch.len() == 1 {
        let Pending { command, reply } = batch.remove(0);
        let _ = reply.send(propose(raft, command, timeout).await);
        return;
    }
    let (commands, replies): (Vec<Command>, Vec<_>) =
        batch.into_iter().map(|p| (p.command, p.reply)).unzip();
    match propose(raft, Command::Batch { commands }, timeout).await {
        Ok(Response::Batch(responses)) if responses.len() == replies.len() => {
            for (reply, r) in replies.into_iter().zip(responses) {
                let _ = reply.send(Ok(r));
            }
        }
        Ok(other) => {
            let e = ProposeError::Raft {
                kind: "batch",
                reason: format!("unexpected answer to a batch: {other:?}"),
            };
            for reply in replies {
                let _ = reply.send(Err(e.clone()));
            }
        }
        Err(e) => {
            for reply in replies {
                let _ = reply.send(Err(e.clone()));
            }
        }
    }
}
