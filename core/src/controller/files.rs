//! A member started with files (`--config-file`, `--services-file`): every member reads its
//! own files at start, on reload (SIGHUP) and every poll interval, and validates them, so a bad
//! file is reported on the member that has it; only the leader applies them (through
//! [`standalone::apply`], the same code as `ironlb standalone`). An invalid read never replaces
//! valid files: what was applied last stays in force. Files are meant to be identical on every
//! member; a follower whose valid files ask for something other than the leader's says so
//! (log, `ironlb_config_files_differ_from_leader`, `/v1/status`).

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use openraft::ServerState;
use tokio::sync::{watch, Notify};
use tracing::{error, info, warn};

use crate::api::client::AdminClient;
use crate::api::views::{FilesView, Status};
use crate::metrics::controller::Metrics;
use crate::names::ServiceKey;
use crate::raft::{Proposer, Raft, SharedState};
use crate::standalone::{self, Desired, Digest, SyncError, Target};

/// Where a member's files are and when it reads them.
#[derive(Clone, Debug)]
pub struct FileSource {
    /// Files or directories of YAML documents, taken together.
    pub paths: Vec<PathBuf>,
    /// How often they are read again (`None`: only at start and on reload).
    pub poll: Option<Duration>,
    /// Notified to read them now (SIGHUP).
    pub reload: Arc<Notify>,
}

impl FileSource {
    /// Files read every `poll` (if given), and whenever [`FileSource::reload`] is notified.
    pub fn new(paths: Vec<PathBuf>, poll: Option<Duration>) -> Self {
        Self {
            paths,
            poll,
            reload: Arc::new(Notify::new()),
        }
    }
}

/// How long a new leader waits to see every committed entry before applying its files.
const CATCH_UP: Duration = Duration::from_secs(5);

/// How soon a leader that could not apply its files tries again.
const RETRY: Duration = Duration::from_secs(1);

/// The loop that reads a member's files, applies them while it leads and compares them with
/// the leader's while it follows.
pub(crate) struct FileWatch {
    /// The files.
    pub source: FileSource,
    /// The member's Raft.
    pub raft: Raft,
    /// Proposes through the member.
    pub proposer: Proposer,
    /// The member's applied state.
    pub state: SharedState,
    /// The member's metrics (with [`Metrics::with_files`]).
    pub metrics: Arc<Metrics>,
    /// Calls other members' admin APIs with the member's credentials.
    pub peers: AdminClient,
    /// What the files say, for `/v1/status`.
    pub view: watch::Sender<FilesView>,
}

/// What the leader remembers between passes.
#[derive(Default)]
struct Leading {
    /// The Services the files put there (released when they leave the files).
    managed: BTreeSet<ServiceKey>,
    /// The fingerprint of the files last applied (or refused by the state machine, so a
    /// refusal is not retried until the files change).
    applied: Option<Digest>,
}

impl FileWatch {
    /// Runs until Raft shuts down.
    #[tracing::instrument(name = "files", skip_all)]
    pub(crate) async fn run(self) {
        let mut m = self.raft.metrics();
        let mut ticker = self.source.poll.map(|p| {
            let mut t = tokio::time::interval(p);
            t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            t
        });
        let mut leading: Option<Leading> = None;
        loop {
            let leader = m.borrow_and_update().state == ServerState::Leader;
            let read = standalone::load(&self.source.paths);
            self.report(&read);
            if leader {
                if leading.is_none() {
                    leading = self.take_over().await;
                }
                if let Some(l) = &mut leading {
                    self.lead(&read, l).await;
                }
            } else {
                leading = None;
                self.compare(&read).await;
            }
            // Not yet applied as leader (could not confirm leadership, or not committed): try
            // again soon even without polling.
            let retry = leader
                && match (&leading, &read) {
                    (None, _) => true,
                    (Some(l), Ok(d)) => l.applied != Some(d.digest),
                    (Some(_), Err(_)) => false,
                };
            let poll = async {
                match &mut ticker {
                    Some(t) => {
                        t.tick().await;
                    }
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = poll => {}
                () = self.source.reload.notified() => info!("re-reading the files"),
                () = tokio::time::sleep(RETRY), if retry => {}
                running = async {
                    m.wait_for(|x| (x.state == ServerState::Leader) != leader)
                        .await
                        .is_ok()
                } => {
                    if !running {
                        return;
                    }
                }
            }
        }
    }

    /// Becomes the files' leader: waits to see every committed entry, then takes every Service
    /// holding addresses as the files' (a Service removed from the files under the previous
    /// leader is still released). `None` if it could not catch up (tried again next pass).
    async fn take_over(&self) -> Option<Leading> {
        let caught_up = tokio::time::timeout(CATCH_UP, self.raft.ensure_linearizable()).await;
        if !matches!(caught_up, Ok(Ok(_))) {
            warn!("leading, but could not confirm it to apply the files; trying again");
            return None;
        }
        info!("leading: applying the files");
        Some(Leading {
            managed: standalone::held_services(&self.state).await,
            applied: None,
        })
    }

    /// Applies the files if they changed since the last pass, or if the configuration in force
    /// is not theirs (it was replaced through the admin API, say).
    async fn lead(&self, read: &Result<Desired, SyncError>, l: &mut Leading) {
        let Ok(desired) = read else { return };
        let drifted = self.state.read().await.config.as_ref() != Some(&desired.config);
        if l.applied == Some(desired.digest) && !drifted {
            return;
        }
        let target = Target {
            proposer: &self.proposer,
            state: &self.state,
            metrics: &self.metrics,
        };
        match standalone::apply(target, desired, &mut l.managed).await {
            Ok(r) => {
                let ok = r.allocations.iter().filter(|e| e.outcome.is_ok()).count();
                info!(
                    digest = %desired.digest,
                    revision = r.revision,
                    allocated = ok,
                    refused = r.allocations.len() - ok,
                    released = r.released.len(),
                    "files applied"
                );
                l.applied = Some(desired.digest);
                self.metrics.files.applied.inc();
                self.metrics.files.differ.set(0);
                self.view.send_modify(|v| {
                    v.applied = Some(desired.digest.to_string());
                    v.differs_from_leader = None;
                });
            }
            Err(e @ SyncError::Refused(_)) => {
                error!(digest = %desired.digest, "{e}");
                l.applied = Some(desired.digest);
                self.metrics.files.invalid.inc();
            }
            // Not committed (leadership lost, no quorum): the next pass tries again.
            Err(e) => warn!(error = %e, "the files could not be applied; trying again"),
        }
    }

    /// Publishes what a read found; logs and counts an invalid read once per content.
    fn report(&self, read: &Result<Desired, SyncError>) {
        let paths = self
            .source
            .paths
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        let (applied, differs_from_leader) = {
            let v = self.view.borrow();
            (v.applied.clone(), v.differs_from_leader)
        };
        let mut view = FilesView {
            paths,
            applied,
            differs_from_leader,
            ..FilesView::default()
        };
        match read {
            Ok(d) => {
                view.digest = Some(d.digest.to_string());
                view.errors = d.service_errors.iter().map(|e| e.to_string()).collect();
                view.valid = view.errors.is_empty();
            }
            Err(e) => view.errors = e.to_string().lines().map(str::to_string).collect(),
        }
        let changed = {
            let old = self.view.borrow();
            old.digest != view.digest || old.errors != view.errors
        };
        if changed {
            match read {
                Ok(d) if view.valid => info!(digest = %d.digest, "files read"),
                Ok(d) => {
                    self.metrics.files.invalid.inc();
                    for e in &d.service_errors {
                        error!(digest = %d.digest, "Service left as it is: {e}");
                    }
                }
                Err(e) => {
                    self.metrics.files.invalid.inc();
                    error!("the files are invalid; the last valid ones stay in force:\n{e}");
                }
            }
        }
        self.metrics.files.valid.set(i64::from(view.valid));
        self.view.send_replace(view);
    }

    /// On a follower: compares its files with the leader's, and says when they start or stop
    /// differing.
    async fn compare(&self, read: &Result<Desired, SyncError>) {
        let mine = read.as_ref().ok().map(|d| d.digest.to_string());
        let theirs = match &mine {
            Some(_) => self.leaders_digest().await,
            None => None,
        };
        let differs = match (mine, theirs) {
            (Some(a), Some(b)) => Some(a != b),
            _ => None,
        };
        let before = self.view.borrow().differs_from_leader;
        if differs != before {
            match differs {
                Some(true) => warn!(
                    "this member's files ask for something other than the leader's: files are meant to be identical on every member (the leader's are in force)"
                ),
                Some(false) if before == Some(true) => {
                    info!("this member's files agree with the leader's again")
                }
                _ => {}
            }
        }
        self.metrics
            .files
            .differ
            .set(i64::from(differs == Some(true)));
        self.view.send_modify(|v| {
            v.differs_from_leader = differs;
            v.applied = None;
        });
    }

    /// The fingerprint of the leader's valid files, if it can be asked and has them.
    async fn leaders_digest(&self) -> Option<String> {
        let admin = {
            let m = self.raft.metrics();
            let m = m.borrow();
            let leader = m.current_leader?;
            m.membership_config
                .membership()
                .get_node(&leader)?
                .admin_addr
                .clone()
        };
        let client = self
            .peers
            .to(vec![admin])
            .with_timeout(Duration::from_secs(2));
        let status: Status = client.get("/v1/status").await.ok()?;
        status.files?.digest
    }
}
