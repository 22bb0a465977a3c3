//! A controller process: a Raft member on sled storage, serving Raft RPCs to its peers and the
//! admin API to operators. The first member bootstraps the cluster; the others join it.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::api::auth::{AdminAuth, AdminListener, Peer};
use crate::api::client::{AdminClient, Body, Credentials, CredentialsError, RenewingClient};
use crate::api::views::FilesView;
use crate::api::{self, Admin};
use crate::auth::TokenBook;
use crate::controller::files::{FileSource, FileWatch};
use crate::controller::{LeaseTiming, SpeakerHub};
use crate::k8s::reconciler::{Reconciler, ReconcilerConfig};
use crate::metrics::controller::Metrics;
use crate::raft::identity::{self, ClusterId, Identity, IdentityCell};
use crate::raft::network::{
    NetworkConfig, NetworkFactory, RaftServer, TlsConfig, TlsError, TlsServer,
};
use crate::raft::{
    self, Command, Member, MemberId, ProposeError, Proposer, Raft, Response, SharedState,
};
use crate::watchdog::Watchdog;
use openraft::storage::RaftLogStorage;
use openraft::StorageError;

mod bootstrap;
use bootstrap::*;

/// Raft's clocks. A leader change must fit in a speaker's lease (see [`Timing::check`]), so
/// that no lease runs out while a new leader is elected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    /// How often the leader sends heartbeats.
    pub heartbeat: Duration,
    /// Shortest election timeout.
    pub election_min: Duration,
    /// Longest election timeout.
    pub election_max: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Self::for_lease(&crate::controller::LeaseTiming::default())
    }
}

/// What a new leader needs after its election before a speaker holds a new lease: its first
/// commit, a round of leadership confirmation, and the grant's round trip, on a LAN.
pub const LEADER_CHANGE_SLACK: Duration = Duration::from_millis(50);

/// The longest shortest-election-timeout that [`Timing::for_lease`] picks.
const ELECTION_DEFAULT: Duration = Duration::from_millis(150);

/// Clocks that cannot keep leases through a leader change.
#[derive(Debug, thiserror::Error)]
pub enum TimingError {
    /// The lease is shorter than a leader change and two heartbeats.
    #[error("--speaker-lease-ms {lease} is too short to survive a leader change: with --speaker-heartbeat-ms {heartbeat} and an election timeout of {election_min}-{election_max} ms, a new leader renews leases up to {need} ms after the last renewal (2 x {election_max} for the election, since followers first wait out the old leader's lease, + {raft_heartbeat} x 2.5 for the last Raft heartbeat and openraft's election tick, + {slack} to commit and confirm, + 2 x {heartbeat} of heartbeat phase); use a lease of at least {need} ms or a shorter --election-timeout-ms (at most {fits} ms for this lease)")]
    LeaderChange {
        /// The lease, ms.
        lease: u64,
        /// The speakers' heartbeat, ms.
        heartbeat: u64,
        /// The election timeout, ms.
        election_min: u64,
        /// Its upper end, ms.
        election_max: u64,
        /// The slack, ms.
        slack: u64,
        /// The lease it needs, ms.
        need: u64,
        /// Raft's heartbeat, ms.
        raft_heartbeat: u64,
        /// The longest election timeout that fits, ms.
        fits: u64,
    },
    /// Raft's heartbeat must be shorter than its election timeout.
    #[error("--heartbeat-ms {heartbeat} must be shorter than --election-timeout-ms {election}")]
    Heartbeat {
        /// Raft's heartbeat, ms.
        heartbeat: u64,
        /// The election timeout, ms.
        election: u64,
    },
}

impl Timing {
    /// Clocks with the shortest election timeout `min` (the longest is half again as much) and
    /// Raft heartbeats every `heartbeat`.
    pub fn with_election(min: Duration, heartbeat: Duration) -> Self {
        Self {
            heartbeat,
            election_min: min,
            election_max: min * 3 / 2,
        }
    }

    /// The longest a leader change may take before the new leader renews a lease. A follower
    /// last heard the dead leader up to one Raft heartbeat before it died; it waits out the old
    /// leader's lease (the longest election timeout) and then its own election timeout; openraft
    /// notices both on a tick (every 1.5 heartbeats), so up to one tick late; the new leader
    /// then commits, confirms and grants.
    pub fn leader_change(&self) -> Duration {
        self.heartbeat + self.tick() + self.election_max * 2 + LEADER_CHANGE_SLACK
    }

    /// How often openraft checks its election timer (it ticks every 1.5 heartbeats).
    fn tick(&self) -> Duration {
        self.heartbeat * 3 / 2
    }

    /// Checks that a leader change fits in a lease: the last lease the old leader granted may
    /// have been for a heartbeat sent one heartbeat before it died, and the new leader hears the
    /// next one up to a heartbeat after it is ready, so `lease >= 2 x heartbeat + leader change`.
    pub fn check(&self, lease: &crate::controller::LeaseTiming) -> Result<(), TimingError> {
        if self.heartbeat >= self.election_min {
            return Err(TimingError::Heartbeat {
                heartbeat: self.heartbeat.as_millis() as u64,
                election: self.election_min.as_millis() as u64,
            });
        }
        let need = lease.heartbeat * 2 + self.leader_change();
        if lease.lease < need {
            let budget = election_budget(lease).saturating_sub(self.heartbeat * 5 / 2);
            return Err(TimingError::LeaderChange {
                lease: lease.lease.as_millis() as u64,
                heartbeat: lease.heartbeat.as_millis() as u64,
                election_min: self.election_min.as_millis() as u64,
                election_max: self.election_max.as_millis() as u64,
                slack: LEADER_CHANGE_SLACK.as_millis() as u64,
                need: need.as_millis() as u64,
                raft_heartbeat: self.heartbeat.as_millis() as u64,
                fits: (budget / 3).as_millis() as u64,
            });
        }
        Ok(())
    }

    /// Raft clocks for speakers with `lease`: the longest election timeout up to the default
    /// that lets a leader change fit in the lease, and heartbeats a third of it (at most 50 ms).
    pub fn for_lease(lease: &crate::controller::LeaseTiming) -> Self {
        // 2 x max = 3 x min, plus 2.5 heartbeats of min / 3 each: 23/6 x min must fit.
        let min = (election_budget(lease) * 6 / 23)
            .min(ELECTION_DEFAULT)
            .max(Duration::from_millis(10));
        // Whole milliseconds, as openraft takes them.
        let min = Duration::from_millis(min.as_millis() as u64);
        let heartbeat = Duration::from_millis((min / 3).as_millis() as u64)
            .min(Duration::from_millis(50))
            .max(Duration::from_millis(3));
        Self::with_election(min, heartbeat)
    }
}

/// What a lease leaves for Raft's clocks in a leader change: the lease less two speaker
/// heartbeats of phase and the new leader's commit, confirmation and grant.
fn election_budget(lease: &crate::controller::LeaseTiming) -> Duration {
    lease
        .lease
        .saturating_sub(lease.heartbeat * 2 + LEADER_CHANGE_SLACK)
}

/// How to run a controller member.
#[derive(Clone, Debug)]
pub struct MemberConfig {
    /// Its id (stable across restarts; kept with its data).
    pub id: MemberId,
    /// Where its log, snapshots and state live.
    pub data_dir: PathBuf,
    /// Where to listen for Raft RPCs (port 0: any).
    pub raft_listen: SocketAddr,
    /// The Raft address peers use, if not the listening one (a DNS name in Kubernetes).
    pub raft_advertise: Option<String>,
    /// Where to serve the admin API.
    pub admin_listen: SocketAddr,
    /// The admin address peers and clients use, if not the listening one.
    pub admin_advertise: Option<String>,
    /// Initialize a new cluster of this member alone if it has no state.
    pub bootstrap: bool,
    /// Admin addresses of members to ask to add this one, if it has no state.
    pub join: Vec<String>,
    /// TLS with client certificates between members, from speakers and on the admin API; the
    /// certificate is this member's (it names the member's seat).
    pub tls: Option<TlsConfig>,
    /// Bearer tokens the admin API accepts (a token file: `<token> <role> <name>` lines).
    pub admin_tokens: Option<PathBuf>,
    /// Serve without TLS on addresses other than loopback (nobody is authenticated on the
    /// Raft port, and the admin API takes everyone as an admin unless `admin_tokens` is set).
    pub insecure: bool,
    /// Raft's clocks.
    pub timing: Timing,
    /// Take a snapshot (and compact the log) after this many log entries or applied commands
    /// (a batched entry counts each of its commands), whichever comes first; past 4 times this
    /// many allocations, after a quarter of the allocations held.
    pub snapshot_every: u64,
    /// How long a write may wait for a quorum before failing.
    pub write_timeout: Duration,
    /// The speakers' heartbeat, lease and margin.
    pub lease: LeaseTiming,
    /// Reconcile Services and configuration objects of a Kubernetes cluster while leading.
    pub kubernetes: Option<ReconcilerConfig>,
    /// Accept Kubernetes ServiceAccount tokens on the admin API (reviewed by the API server).
    pub kube_tokens: Option<crate::api::auth::KubeTokens>,
    /// Issue speakers their node certificates (Kubernetes mode, with the CA from a Secret).
    pub node_issuer: Option<Arc<crate::k8s::certs::NodeIssuer>>,
    /// Take the configuration and Services from files (applied while leading).
    pub files: Option<FileSource>,
}

impl MemberConfig {
    /// Refuses to serve strangers unauthenticated: without TLS, both ports must listen on
    /// loopback only, unless the operator said `insecure`.
    pub fn check_exposure(&self) -> Result<(), String> {
        if self.tls.is_some() || self.insecure {
            return Ok(());
        }
        for (flag, addr) in [
            ("--raft-listen", self.raft_listen),
            ("--admin-listen", self.admin_listen),
        ] {
            if !addr.ip().is_loopback() {
                return Err(format!(
                    "{flag} {addr} is reachable from other hosts, but no TLS is configured: give --tls-ca, --tls-cert and --tls-key (`ironlb certs` makes them), listen on 127.0.0.1, or pass --insecure to accept unauthenticated peers and clients"
                ));
            }
        }
        Ok(())
    }

    /// What this member shows other members' admin APIs (when joining, forwarding to the
    /// leader): its own certificate.
    pub fn credentials(&self) -> Credentials {
        match &self.tls {
            Some(t) => Credentials {
                ca: Some(t.ca.clone()),
                cert: Some((t.cert.clone(), t.key.clone())),
                token: None,
            },
            None => Credentials::default(),
        }
    }

    /// How the admin API authenticates requests.
    pub fn admin_auth(&self) -> Result<AdminAuth, String> {
        let tokens = match &self.admin_tokens {
            Some(path) => TokenBook::load(path).map_err(|e| e.to_string())?,
            None => TokenBook::default(),
        };
        Ok(AdminAuth {
            required: self.tls.is_some() || !tokens.is_empty() || self.kube_tokens.is_some(),
            tokens,
            kube: self.kube_tokens.clone(),
        })
    }

    /// A member with defaults for everything but where it lives.
    pub fn new(
        id: MemberId,
        data_dir: PathBuf,
        raft_listen: SocketAddr,
        admin_listen: SocketAddr,
    ) -> Self {
        Self {
            id,
            data_dir,
            raft_listen,
            raft_advertise: None,
            admin_listen,
            admin_advertise: None,
            bootstrap: false,
            join: Vec::new(),
            tls: None,
            admin_tokens: None,
            insecure: false,
            timing: Timing::default(),
            snapshot_every: 5_000,
            write_timeout: Duration::from_secs(5),
            lease: LeaseTiming::default(),
            kubernetes: None,
            kube_tokens: None,
            node_issuer: None,
            files: None,
        }
    }
}

/// Why a member could not start.
#[derive(Debug, thiserror::Error)]
pub enum MemberError {
    /// The member would serve strangers unauthenticated, or its credentials are unusable.
    #[error("{0}")]
    Exposed(String),
    /// The storage could not be opened.
    #[error("opening storage in {dir}: {source}")]
    Store {
        /// The data directory.
        dir: PathBuf,
        /// Why.
        source: raft::StoreError,
    },
    /// A listener could not be bound.
    #[error("listening on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The TLS files are unusable.
    #[error("TLS: {0}")]
    Tls(#[from] TlsError),
    /// Raft refused its configuration or failed to start.
    #[error("starting Raft: {0}")]
    Raft(String),
    /// The clocks cannot keep speakers' leases through a leader change.
    #[error(transparent)]
    Timing(#[from] TimingError),
    /// The member's identity file could not be read or written.
    #[error("identity: {0}")]
    Identity(String),
}

/// A running controller member.
pub struct ControllerMember {
    /// Its id.
    pub id: MemberId,
    /// Its Raft handle.
    pub raft: Raft,
    /// Its applied state.
    pub state: SharedState,
    /// Where it serves Raft RPCs.
    pub raft_addr: SocketAddr,
    /// Where it serves the admin API.
    pub admin_addr: SocketAddr,
    /// Proposes (batched) through this member.
    pub proposer: Proposer,
    /// Its metrics.
    pub metrics: Arc<Metrics>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl ControllerMember {
    /// Opens storage, starts Raft and both listeners, and bootstraps or joins if this member
    /// has no state yet.
    pub async fn start(cfg: MemberConfig) -> Result<Self, MemberError> {
        cfg.timing.check(&cfg.lease)?;
        let admin_auth = Arc::new(checked_admin_auth(&cfg).map_err(MemberError::Exposed)?);
        // How this member calls other members' admin APIs (joining, forwarding to the leader).
        let base =
            AdminClient::with_credentials(Vec::new(), Duration::from_secs(10), &cfg.credentials())
                .map_err(|e| MemberError::Exposed(e.to_string()))?;
        let (log_store, sm, has_state) = open_storage(&cfg).await?;
        sm.snapshot_after(cfg.snapshot_every);
        let snapshot_due = sm.snapshot_due();
        let (identity, fresh) = establish_identity(&cfg, &base, has_state).await?;
        let id = identity.member();
        let state = sm.state();
        let applied = sm.applied();
        let listeners = Listeners::bind(&cfg).await?;
        let me = listeners.advertised(&cfg);
        let raft_config = raft_config(&cfg)
            .validate()
            .map_err(|e| MemberError::Raft(e.to_string()))?;

        let (tls_server, tls_client) = match &cfg.tls {
            Some(t) => (Some(t.server()?), Some(t.client()?)),
            None => (None, None),
        };
        let net = network_config(&cfg.timing);
        let factory =
            NetworkFactory::new(id, net.clone(), tls_client).with_identity(identity.clone());
        let raft = Raft::new(id, Arc::new(raft_config), factory.clone(), log_store, sm)
            .await
            .map_err(|e| MemberError::Raft(e.to_string()))?;

        let (stop, stopped) = watch::channel(false);
        let mut tasks = Vec::new();
        let core = Core {
            id,
            proposer: Proposer::start(raft.clone(), cfg.write_timeout),
            raft,
            state,
            metrics: Arc::new(match cfg.files {
                Some(_) => Metrics::new().with_files(),
                None => Metrics::new(),
            }),
            board: super::announced::board(),
            serving: Arc::new(watch::channel(None).0),
            watchdog: Watchdog::new(),
            identity,
        };
        tasks.push(tokio::spawn(snapshot_when_due(
            core.raft.clone(),
            snapshot_due,
            stopped.clone(),
        )));
        tasks.push(tokio::spawn(crate::memory::release_after_bursts(
            applied.clone(),
            stopped.clone(),
            crate::memory::BURST_QUIET,
            crate::memory::release_free_memory,
        )));
        let speakers = core.speaker_hub(cfg.lease, applied, factory).await;
        let server = RaftServer::new(core.raft.clone(), tls_server, net)
            .with_speakers(Arc::new(speakers))
            .with_identity(core.identity.clone());
        tasks.push(tokio::spawn(
            server.run(listeners.raft, until_stop(stopped.clone())),
        ));

        let (leader_loops, files) = core.leader_loops(&cfg, &base);
        tasks.extend(leader_loops);
        let admin = core
            .admin_api(&cfg, files)
            .map_err(|e| MemberError::Exposed(e.to_string()))?;
        let admin_tls = cfg.tls.as_ref().map(|t| t.admin_server()).transpose()?;
        let admin_task = serve_admin(admin, admin_auth, listeners.admin, admin_tls, &stopped);
        tasks.push(admin_task.map_err(|source| MemberError::Listen {
            addr: cfg.admin_listen,
            source,
        })?);

        tasks.extend(core.found_or_join(fresh, &cfg, &base, &me, &stopped).await);
        info!(id, raft = %listeners.raft_addr, admin = %listeners.admin_addr, "controller member started");
        Ok(Self {
            id,
            raft: core.raft,
            state: core.state,
            raft_addr: listeners.raft_addr,
            admin_addr: listeners.admin_addr,
            proposer: core.proposer,
            metrics: core.metrics,
            stop,
            tasks,
        })
    }

    /// Proposes a command through this member (it must lead).
    pub async fn propose(&self, command: Command) -> Result<Response, ProposeError> {
        self.proposer.propose(command).await
    }

    /// Waits until some member leads, at most `timeout`; returns it.
    pub async fn wait_for_leader(&self, timeout: Duration) -> Option<MemberId> {
        let mut m = self.raft.metrics();
        let found = tokio::time::timeout(timeout, m.wait_for(|m| m.current_leader.is_some())).await;
        match found {
            Ok(Ok(m)) => m.current_leader,
            _ => None,
        }
    }

    /// Stops serving and shuts Raft down.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        if let Err(e) = self.raft.shutdown().await {
            warn!(error = %e, "raft shutdown");
        }
        for t in self.tasks {
            t.abort();
            let _ = t.await;
        }
    }
}

/// Refuses ports open to strangers, and works out how the admin API authenticates.
fn checked_admin_auth(cfg: &MemberConfig) -> Result<AdminAuth, String> {
    cfg.check_exposure()?;
    let admin_auth = cfg.admin_auth()?;
    if cfg.tls.is_none() {
        warn!(
            admin_tokens = !admin_auth.tokens.is_empty(),
            "no TLS: peers and speakers are not authenticated"
        );
    }
    Ok(admin_auth)
}

/// Opens the member's log and state machine, and says whether the log holds a vote or an
/// entry: a member with neither must find its identity anew, since it cannot take up its old
/// one without the log that goes with it.
async fn open_storage(
    cfg: &MemberConfig,
) -> Result<(raft::LogStore, raft::StateMachineStore, bool), MemberError> {
    let (mut log_store, sm) =
        raft::open_store(&cfg.data_dir)
            .await
            .map_err(|source| MemberError::Store {
                dir: cfg.data_dir.clone(),
                source,
            })?;
    let storage = |e: StorageError<MemberId>| MemberError::Raft(e.to_string());
    let has_state = log_store.read_vote().await.map_err(storage)?.is_some()
        || log_store
            .get_log_state()
            .await
            .map_err(storage)?
            .last_log_id
            .is_some();
    Ok((log_store, sm, has_state))
}

/// Openraft's configuration from the member's clocks and snapshot policy, to be validated.
fn raft_config(cfg: &MemberConfig) -> openraft::Config {
    openraft::Config {
        cluster_name: "ironlb".into(),
        heartbeat_interval: cfg.timing.heartbeat.as_millis() as u64,
        election_timeout_min: cfg.timing.election_min.as_millis() as u64,
        election_timeout_max: cfg.timing.election_max.as_millis() as u64,
        snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(cfg.snapshot_every),
        // Keep some log behind the snapshot so a briefly lagging follower catches up from
        // the log rather than by a whole snapshot.
        max_in_snapshot_log_to_keep: cfg.snapshot_every / 5,
        ..Default::default()
    }
}

/// How the member's Raft network retries its peers.
fn network_config(timing: &Timing) -> NetworkConfig {
    // A member that comes back must hear the leader before its election timeout runs out,
    // or it campaigns and unseats a healthy leader: retry dead members that often.
    NetworkConfig {
        backoff_max: (timing.election_min / 2).max(Duration::from_millis(20)),
        backoff_min: Duration::from_millis(20),
        ..NetworkConfig::default()
    }
}

/// Triggers a snapshot each time the state machine says one is due: openraft's own policy
/// counts log entries, and a batched entry may hold many commands.
async fn snapshot_when_due(
    raft: Raft,
    mut due: watch::Receiver<u64>,
    stopped: watch::Receiver<bool>,
) {
    let stop = until_stop(stopped);
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => return,
            changed = due.changed() => {
                if changed.is_err() {
                    return;
                }
                if let Err(e) = raft.trigger().snapshot().await {
                    tracing::warn!(error = %e, "cannot trigger a snapshot");
                }
            }
        }
    }
}

/// Resolves once the member is told to stop (or its stop handle is gone).
async fn until_stop(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

/// The member's Raft and admin listeners, with the addresses they were bound to.
struct Listeners {
    raft: TcpListener,
    admin: TcpListener,
    raft_addr: SocketAddr,
    admin_addr: SocketAddr,
}

impl Listeners {
    /// Binds both ports before Raft starts, so that a port in use fails the start.
    async fn bind(cfg: &MemberConfig) -> Result<Self, MemberError> {
        let at = |addr: SocketAddr| move |source| MemberError::Listen { addr, source };
        let raft = TcpListener::bind(cfg.raft_listen)
            .await
            .map_err(at(cfg.raft_listen))?;
        let admin = TcpListener::bind(cfg.admin_listen)
            .await
            .map_err(at(cfg.admin_listen))?;
        let raft_addr = raft.local_addr().map_err(at(cfg.raft_listen))?;
        let admin_addr = admin.local_addr().map_err(at(cfg.admin_listen))?;
        Ok(Self {
            raft,
            admin,
            raft_addr,
            admin_addr,
        })
    }

    /// The addresses peers reach this member at: the advertised ones, else the bound ones.
    fn advertised(&self, cfg: &MemberConfig) -> Member {
        Member {
            raft_addr: cfg
                .raft_advertise
                .clone()
                .unwrap_or_else(|| self.raft_addr.to_string()),
            admin_addr: cfg
                .admin_advertise
                .clone()
                .unwrap_or_else(|| self.admin_addr.to_string()),
        }
    }
}

/// A running member's Raft and what its services share around it.
struct Core {
    id: MemberId,
    raft: Raft,
    state: SharedState,
    proposer: Proposer,
    metrics: Arc<Metrics>,
    /// What the leader told its nodes to announce.
    board: super::announced::Board,
    /// The leader's verdict on which Services have a serving endpoint anywhere (Kubernetes
    /// mode; never known in standalone mode, where nothing is judged down).
    serving: Arc<crate::k8s::endpoints::Serving>,
    watchdog: Arc<Watchdog>,
    identity: Arc<IdentityCell>,
}

impl Core {
    /// Starts the actors that hold speakers' sessions and leases.
    async fn speaker_hub(
        &self,
        lease: LeaseTiming,
        applied: watch::Receiver<Option<raft::types::LogId>>,
        factory: NetworkFactory,
    ) -> SpeakerHub {
        SpeakerHub::start(
            self.raft.clone(),
            self.state.clone(),
            applied,
            self.proposer.clone(),
            lease,
            self.metrics.clone(),
            self.board.clone(),
            self.serving.subscribe(),
            factory,
            self.watchdog.clone(),
        )
        .await
    }

    /// Spawns the loops that act while this member leads: the Kubernetes reconciler, and the
    /// loop that reads its files (on every member; applied while it leads). Returns their tasks
    /// and what the files loop publishes for `/v1/status`.
    fn leader_loops(
        &self,
        cfg: &MemberConfig,
        peers: &AdminClient,
    ) -> (Vec<JoinHandle<()>>, Option<watch::Receiver<FilesView>>) {
        let mut tasks = Vec::new();
        if let Some(k8s) = cfg.kubernetes.clone() {
            tasks.push(self.spawn_reconciler(k8s));
        }
        let Some(source) = cfg.files.clone() else {
            return (tasks, None);
        };
        let (view, rx) = watch::channel(FilesView::default());
        let w = FileWatch {
            source,
            raft: self.raft.clone(),
            proposer: self.proposer.clone(),
            state: self.state.clone(),
            metrics: self.metrics.clone(),
            peers: peers.clone(),
            view,
        };
        tasks.push(tokio::spawn(w.run()));
        (tasks, Some(rx))
    }

    /// Reconciles Kubernetes on a task of its own while this member leads.
    fn spawn_reconciler(&self, k8s: ReconcilerConfig) -> JoinHandle<()> {
        tokio::spawn(reconcile_while_leading(
            self.raft.clone(),
            self.proposer.clone(),
            self.state.clone(),
            self.metrics.clone(),
            self.board.clone(),
            self.serving.clone(),
            k8s,
        ))
    }

    /// The admin API over this member, forwarding writes to the leader with the member's own
    /// credentials.
    fn admin_api(
        &self,
        cfg: &MemberConfig,
        files: Option<watch::Receiver<FilesView>>,
    ) -> Result<Admin, CredentialsError> {
        let mut admin = Admin::new(
            self.id,
            self.raft.clone(),
            self.state.clone(),
            self.metrics.clone(),
            self.proposer.clone(),
            cfg.write_timeout,
        )
        .with_watchdog(self.watchdog.clone())
        .with_identity(self.identity.clone())
        .with_announcements(&self.board)
        .with_forwarding(
            RenewingClient::new(cfg.credentials(), Duration::from_secs(10))?,
            cfg.credentials().scheme(),
        );
        if let Some(issuer) = &cfg.node_issuer {
            admin = admin.with_node_issuer(issuer.clone());
        }
        if let Some(files) = files {
            admin = admin.with_files(files);
        }
        Ok(admin)
    }
}

/// Serves `admin` on `listener` (with TLS when `tls` is given) until the member stops.
fn serve_admin(
    admin: Admin,
    auth: Arc<AdminAuth>,
    listener: TcpListener,
    tls: Option<TlsServer>,
    stopped: &watch::Receiver<bool>,
) -> std::io::Result<JoinHandle<()>> {
    let router = api::router(Arc::new(admin), auth).into_make_service_with_connect_info::<Peer>();
    let admin_listener = AdminListener::spawn(
        listener,
        tls,
        crate::raft::network::server::ConnectionLimits::new(1024, 256),
    )?;
    let admin_stop = until_stop(stopped.clone());
    Ok(tokio::spawn(async move {
        if let Err(e) = axum::serve(admin_listener, router)
            .with_graceful_shutdown(admin_stop)
            .await
        {
            warn!(error = %e, "admin API stopped");
        }
    }))
}

#[cfg(test)]
mod tests;
