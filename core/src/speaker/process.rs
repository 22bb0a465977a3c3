//! A speaker process: the node's actors (NodeAgent, ControllerSession, a responder pair per
//! interface), its link to the controllers, its health checks, its BFD task and its metrics
//! endpoint.

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, Addr};
use pnet_base::MacAddr;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::announce::proto::{ServiceAnnounce, ToController};
use crate::config::model::InterfaceName;
use crate::labels::Labels;
use crate::metrics::speaker::SpeakerMetrics;
use crate::names::NodeName;
use crate::net::bfd::Bfd;
use crate::raft::network::{NetworkConfig, TlsClient, TlsConfig, TlsError};
use crate::speaker::agent::{EndBgp, Macs, NodeAgent};
use crate::speaker::interfaces::{self, ExcludeList, Link, Scan, Selection};
use crate::speaker::session::{
    ControllerSession, Drain, GetStatus, OnControlPlaneLoss, SessionConfig, SessionStatus,
};
use crate::speaker::{health, link, LeaseGate};
use crate::watchdog::Watchdog;

/// How to run a speaker.
#[derive(Clone, Debug)]
pub struct SpeakerConfig {
    /// The node it speaks for.
    pub node: NodeName,
    /// The controller members' Raft addresses.
    pub controllers: Vec<String>,
    /// Interfaces to announce on, used as given (empty: every eligible Ethernet interface).
    pub interfaces: Vec<String>,
    /// Interface names never discovered (ignored with `interfaces`).
    pub exclude: ExcludeList,
    /// How often the interfaces are listed again (`None`: only at start).
    pub rescan: Option<Duration>,
    /// The node's labels, for advertisement node selectors.
    pub labels: Labels,
    /// Bind answered addresses to `lo` so this host accepts their traffic (standalone mode).
    pub bind_local: bool,
    /// Fence or hold when no controller can renew the lease.
    pub on_loss: OnControlPlaneLoss,
    /// TLS with a client certificate to the controllers.
    pub tls: Option<TlsConfig>,
    /// Where to serve `/metrics`, `/healthz`, `/readyz` and `/v1/bfd`.
    pub metrics_listen: Option<SocketAddr>,
    /// How often health checks run.
    pub health_interval: Duration,
    /// Watch this node's Node object and the EndpointSlices (in-cluster credentials, or
    /// KUBECONFIG).
    pub kubernetes: bool,
}

impl SpeakerConfig {
    /// A speaker for `node` with defaults for everything else.
    pub fn new(node: NodeName, controllers: Vec<String>) -> Self {
        Self {
            node,
            controllers,
            interfaces: Vec::new(),
            exclude: ExcludeList::default(),
            rescan: Some(interfaces::DEFAULT_RESCAN),
            labels: Labels::new(),
            bind_local: false,
            on_loss: OnControlPlaneLoss::Fence,
            tls: None,
            metrics_listen: None,
            health_interval: Duration::from_millis(500),
            kubernetes: false,
        }
    }
}

/// Why a speaker could not start.
#[derive(Debug, thiserror::Error)]
pub enum SpeakerError {
    /// No controller address was given.
    #[error("no controller addresses (--controllers)")]
    NoControllers,
    /// The interfaces could not be listed or opened.
    #[error("interfaces: {0}")]
    Interfaces(#[source] io::Error),
    /// An interface name is not one Linux accepts.
    #[error("interface {0:?}: {1}")]
    InterfaceName(String, String),
    /// The TLS files are unusable.
    #[error("TLS: {0}")]
    Tls(#[from] TlsError),
    /// No Kubernetes client could be made.
    #[error("Kubernetes: {0}")]
    Kubernetes(String),
    /// The BFD task's thread could not start.
    #[error("BFD task: {0}")]
    Bfd(#[source] io::Error),
    /// The metrics listener could not be bound.
    #[error("metrics listener on {0}: {1}")]
    Listen(SocketAddr, #[source] io::Error),
}

/// A running speaker.
pub struct Speaker {
    /// Its session actor.
    pub session: Addr<ControllerSession>,
    /// Its node agent.
    pub agent: Addr<NodeAgent>,
    /// Its lease.
    pub gate: Arc<LeaseGate>,
    /// Its metrics.
    pub metrics: Arc<SpeakerMetrics>,
    /// Where it serves metrics, if it does.
    pub metrics_addr: Option<SocketAddr>,
    tasks: Vec<JoinHandle<()>>,
    _packets: PacketRuntime,
}

/// The runtime of the responders' sockets: one thread of its own at a lower scheduling
/// priority, so that a flood of frames from the LAN never delays the session's heartbeats,
/// which run elsewhere. Stopped when dropped.
struct PacketRuntime {
    handle: tokio::runtime::Handle,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

/// How much lower the packet thread's priority is (a nice value).
const PACKET_THREAD_NICE: i32 = 10;

impl PacketRuntime {
    fn start() -> io::Result<Self> {
        let (tx, rx) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("ironlb-packets".into())
            .spawn(move || {
                // SAFETY: gettid and setpriority on this very thread; Linux applies a thread
                // id's priority to that thread alone. Failing to lower it is harmless.
                unsafe {
                    let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
                    libc::setpriority(libc::PRIO_PROCESS, tid, PACKET_THREAD_NICE);
                }
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        return;
                    }
                };
                let _ = tx.send(Ok(rt.handle().clone()));
                rt.block_on(async {
                    let _ = stopped.await;
                });
            })?;
        let handle = rx
            .recv()
            .map_err(|_| io::Error::other("the packet thread did not start"))??;
        Ok(Self {
            handle,
            stop: Some(stop),
        })
    }
}

impl Drop for PacketRuntime {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

impl Speaker {
    /// Opens the interfaces and starts the actors, the link and the health checks.
    pub async fn start(cfg: SpeakerConfig) -> Result<Self, SpeakerError> {
        if cfg.controllers.is_empty() {
            return Err(SpeakerError::NoControllers);
        }
        let (selection, found) = resolve_interfaces(&cfg)?;
        let names: Vec<String> = found.links.keys().cloned().collect();
        if let Some(t) = &cfg.tls {
            t.expect_principal(&crate::auth::Principal::Node(cfg.node.clone()))?;
        }
        let tls = cfg.tls.as_ref().map(|t| t.client()).transpose()?;
        let gate = Arc::new(LeaseGate::default());
        let metrics = Arc::new(SpeakerMetrics::new());
        let packets = PacketRuntime::start().map_err(SpeakerError::Interfaces)?;
        let watchdog = Watchdog::new();
        // Shared by the BGP sessions and `/v1/bfd`. No socket opens before a peer with a
        // BFDProfile asks for a session.
        let bfd = Bfd::start(metrics.clone()).map_err(SpeakerError::Bfd)?;

        let agent = start_agent(&cfg, &found.links, &gate, &metrics, &packets, &bfd).await?;
        let (out_tx, out_rx) = mpsc::channel(64);
        let (services_tx, services_rx) = watch::channel(Vec::new());
        let session = {
            let session_cfg = session_config(&cfg, interfaces::names_of(&cfg.node, &names));
            let (agent, gate, metrics) = (agent.clone(), gate.clone(), metrics.clone());
            let watchdog = watchdog.clone();
            crate::actors::on_arbiter(move || {
                ControllerSession::new(session_cfg, agent, gate, metrics, out_tx, services_tx)
                    .watched(&watchdog)
                    .start()
            })
            .await
        };
        let mut tasks = Vec::new();
        tasks.push(controller_links(&cfg, tls, &session, out_rx, &watchdog));
        if let Some(period) = cfg.rescan {
            let rescan = interfaces::rescan(
                cfg.node.clone(),
                selection,
                period,
                agent.clone(),
                session.clone(),
                found,
            );
            tasks.push(watched(&watchdog, "interface rescan", rescan));
        }
        tasks.push(watched(
            &watchdog,
            "health checks",
            health::run(services_rx.clone(), session.clone(), cfg.health_interval),
        ));
        if cfg.kubernetes {
            tasks.extend(watch_endpoints(&cfg, &session, &services_rx, &watchdog).await?);
        }
        let mut metrics_addr = None;
        if let Some(addr) = cfg.metrics_listen {
            let (bound, server) = serve_metrics(addr, &gate, &metrics, &watchdog, &bfd).await?;
            metrics_addr = bound;
            tasks.push(server);
        }
        tracing::info!(node = %cfg.node, interfaces = ?names, controllers = ?cfg.controllers, "speaker started");
        Ok(Self {
            session,
            agent,
            gate,
            metrics,
            metrics_addr,
            tasks,
            _packets: packets,
        })
    }

    /// The session's state.
    pub async fn status(&self) -> Option<SessionStatus> {
        self.session.send(GetStatus).await.ok()
    }

    /// The announcing interfaces and their hardware addresses.
    pub async fn macs(&self) -> BTreeMap<String, MacAddr> {
        self.agent.send(Macs).await.unwrap_or_default()
    }

    /// Stops answering and hands the addresses over, then ends the BGP sessions (see
    /// [`EndBgp`]); true if the leader confirmed the handover within `timeout`.
    pub async fn drain(&self, timeout: Duration) -> bool {
        let handed_over = match self.session.send(Drain).await {
            Ok(done) => matches!(tokio::time::timeout(timeout, done).await, Ok(Ok(()))),
            Err(_) => false,
        };
        let _ = self.agent.send(EndBgp).await;
        handed_over
    }

    /// Stops the link, the checks and the metrics server (the actors end with them).
    pub fn stop(self) {
        self.gate.revoke();
        for t in self.tasks {
            t.abort();
        }
    }
}

/// The interfaces to announce on at start: the configured ones (each must exist and have a
/// valid name), or the eligible Ethernet interfaces found; and how to find them again.
fn resolve_interfaces(cfg: &SpeakerConfig) -> Result<(Selection, Scan), SpeakerError> {
    for i in &cfg.interfaces {
        InterfaceName::new(i.clone())
            .map_err(|e| SpeakerError::InterfaceName(i.clone(), e.to_string()))?;
    }
    let selection = if cfg.interfaces.is_empty() {
        Selection::Discover(cfg.exclude.clone())
    } else {
        Selection::Named(cfg.interfaces.clone())
    };
    let found = interfaces::scan(&selection).map_err(SpeakerError::Interfaces)?;
    if let (Selection::Named(_), Some((name, why))) = (&selection, found.skipped.iter().next()) {
        let e = io::Error::new(io::ErrorKind::NotFound, format!("interface {name}: {why}"));
        return Err(SpeakerError::Interfaces(e));
    }
    interfaces::log_skipped(&cfg.node, &BTreeMap::new(), &found.skipped);
    Ok((selection, found))
}

/// Opens the interfaces in a [`NodeAgent`] on an arbiter of its own, its sockets on the packet
/// runtime.
async fn start_agent(
    cfg: &SpeakerConfig,
    interfaces: &BTreeMap<String, Link>,
    gate: &Arc<LeaseGate>,
    metrics: &Arc<SpeakerMetrics>,
    packets: &PacketRuntime,
    bfd: &Bfd,
) -> Result<Addr<NodeAgent>, SpeakerError> {
    let (interfaces, gate, metrics) = (interfaces.clone(), gate.clone(), metrics.clone());
    let (node, bind, bfd) = (cfg.node.clone(), cfg.bind_local, bfd.clone());
    let handle = packets.handle.clone();
    crate::actors::on_arbiter(move || {
        NodeAgent::open(node, &interfaces, bind, gate, metrics, &handle, bfd).map(Actor::start)
    })
    .await
    .map_err(SpeakerError::Interfaces)
}

/// What the [`ControllerSession`] needs to know of this speaker.
fn session_config(cfg: &SpeakerConfig, interfaces: Vec<InterfaceName>) -> SessionConfig {
    SessionConfig {
        node: cfg.node.clone(),
        labels: cfg.labels.clone(),
        interfaces,
        controllers: cfg.controllers.clone(),
        on_loss: cfg.on_loss,
    }
}

/// Spawns the links to the controller members, relaying between them and `session`.
fn controller_links(
    cfg: &SpeakerConfig,
    tls: Option<TlsClient>,
    session: &Addr<ControllerSession>,
    out_rx: mpsc::Receiver<ToController>,
    watchdog: &Watchdog,
) -> JoinHandle<()> {
    watched(
        watchdog,
        "controller links",
        link::run(
            link::LinkConfig {
                controllers: cfg.controllers.clone(),
                node: cfg.node.clone(),
                tls,
                network: NetworkConfig::default(),
            },
            session.clone(),
            out_rx,
        ),
    )
}

/// Spawns the watch of this node's Node object and the EndpointSlices, and the task that
/// forwards what it observes to `session`.
async fn watch_endpoints(
    cfg: &SpeakerConfig,
    session: &Addr<ControllerSession>,
    services_rx: &watch::Receiver<Vec<ServiceAnnounce>>,
    watchdog: &Watchdog,
) -> Result<[JoinHandle<()>; 2], SpeakerError> {
    let client = kube::Client::try_default()
        .await
        .map_err(|e| SpeakerError::Kubernetes(e.to_string()))?;
    let (observed, observed_rx) = tokio::sync::mpsc::channel(16);
    let watch = watched(
        watchdog,
        "endpoint watch",
        crate::k8s::endpoints::run(client, cfg.node.clone(), services_rx.clone(), observed),
    );
    let forward = tokio::spawn(super::session::forward_observed(
        observed_rx,
        session.clone(),
    ));
    Ok([watch, forward])
}

/// Binds `addr` and spawns the server of `/metrics`, `/healthz`, `/readyz` and `/v1/bfd` on
/// it; returns the address actually bound (if known) and the server's task.
async fn serve_metrics(
    addr: SocketAddr,
    gate: &Arc<LeaseGate>,
    metrics: &Arc<SpeakerMetrics>,
    watchdog: &Arc<Watchdog>,
    bfd: &Bfd,
) -> Result<(Option<SocketAddr>, JoinHandle<()>), SpeakerError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| SpeakerError::Listen(addr, e))?;
    let bound = listener.local_addr().ok();
    let router = metrics_router(gate.clone(), metrics.clone(), watchdog.clone(), bfd.clone());
    let server = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router).await {
            tracing::warn!(error = %e, "metrics server stopped");
        }
    });
    Ok((bound, server))
}

/// Spawns `task`, counted alive on `watchdog` under `name` while it runs.
fn watched<F>(watchdog: &Watchdog, name: &'static str, task: F) -> JoinHandle<()>
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    let alive = watchdog.guard(name);
    tokio::spawn(async move {
        let _alive = alive;
        task.await;
    })
}

/// The routes of the metrics listener: plain HTTP, read only.
fn metrics_router(
    gate: Arc<LeaseGate>,
    metrics: Arc<SpeakerMetrics>,
    watchdog: Arc<Watchdog>,
    bfd: Bfd,
) -> axum::Router {
    use axum::http::{header, StatusCode};
    use axum::response::IntoResponse;
    use axum::routing::get;
    let g = gate.clone();
    axum::Router::new()
        .route(
            "/v1/bfd",
            get(move || {
                let bfd = bfd.clone();
                async move { bfd_sessions(&bfd).await }
            }),
        )
        .route(
            "/healthz",
            get(move || {
                let w = watchdog.clone();
                async move { w.healthz() }
            }),
        )
        .route(
            "/readyz",
            get(move || {
                let g = g.clone();
                async move {
                    if g.valid() {
                        (StatusCode::OK, "ok\n").into_response()
                    } else {
                        (StatusCode::SERVICE_UNAVAILABLE, "no lease\n").into_response()
                    }
                }
            }),
        )
        .route(
            "/metrics",
            get(move || {
                let (gate, metrics) = (gate.clone(), metrics.clone());
                async move {
                    (
                        [(
                            header::CONTENT_TYPE,
                            "application/openmetrics-text; version=1.0.0; charset=utf-8",
                        )],
                        metrics.render(&gate),
                    )
                }
            }),
        )
}

/// `GET /v1/bfd`: the BFD task's sessions as JSON (`ironlb ctl bfd`).
async fn bfd_sessions(bfd: &Bfd) -> axum::response::Response {
    use axum::response::IntoResponse;
    match bfd.sessions().await {
        Some(list) => axum::Json(list).into_response(),
        None => (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "the BFD task has stopped\n",
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::names::PeerName;
    use crate::net::bfd::session::{NoObserver, Ports};
    use crate::net::bfd::{BfdSessionView, Hop, SessionConfig, SessionKey};

    fn free_udp_port() -> u16 {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        s.local_addr().unwrap().port()
    }

    /// A BFD session to a silent peer, listed Down on the metrics listener's `/v1/bfd`.
    #[tokio::test]
    async fn the_metrics_listener_lists_the_bfd_sessions() {
        let (single, multi) = (free_udp_port(), free_udp_port());
        let ports = Ports {
            single,
            multi,
            peer_single: single,
            peer_multi: multi,
        };
        let rt = tokio::runtime::Handle::current();
        let bfd = Bfd::start_with_ports(&rt, Arc::new(NoObserver), ports);
        let key = SessionKey {
            peer: "127.0.0.2".parse().unwrap(),
            local: "127.0.0.1".parse().unwrap(),
            hop: Hop::Single,
        };
        let name = PeerName::new("router").unwrap();
        let _held = bfd
            .session(key, name.clone(), SessionConfig::default())
            .await
            .unwrap();
        let router = metrics_router(
            Arc::new(LeaseGate::default()),
            Arc::new(SpeakerMetrics::new()),
            Watchdog::new(),
            bfd,
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        let list: Vec<BfdSessionView> = reqwest::get(format!("http://{addr}/v1/bfd"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(list.len(), 1, "{list:?}");
        let s = &list[0];
        assert_eq!((&s.peer, s.address, s.local), (&name, key.peer, key.local));
        assert_eq!((s.hop.as_str(), s.state.as_str()), ("single", "down"));
        assert_eq!((s.remote_discriminator, s.failures, s.users), (None, 0, 1));
        server.abort();
    }
}
