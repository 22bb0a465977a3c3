//! The admin API: JSON over HTTP on every controller member, plus `/metrics`, `/healthz` and
//! `/readyz`. Writes and linearizable reads that reach a follower are forwarded to the leader
//! (one hop), so a client may talk to any member.

pub mod auth;
pub mod client;
pub mod error;
pub mod views;

use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use k8s_openapi::api::core::v1::Service;
use openraft::error::{CheckIsLeaderError, ClientWriteError, RaftError};

use serde::Deserialize;

use crate::config::{self, service::request_from_service, Documents};
use crate::ipam::AllocationRequest;
use crate::labels::Labels;
use crate::metrics::controller::{Metrics, RaftFigures};
use crate::names::ServiceKey;
use crate::raft::{Member, MemberId, ProposeError, Proposer, Raft, SharedState};
use error::{ApiError, LeaderRef};

mod members;
use members::*;

mod certificates;
use certificates::*;

/// Marks a request forwarded by a follower, so it is never forwarded twice.
const FORWARDED: &str = "x-ironlb-forwarded";

/// On an error answer to a write: `not-applied` when the request certainly changed nothing (it
/// never reached a leader that could propose it), so a client may retry it blindly. Without it,
/// a failed write may or may not have taken effect.
pub const OUTCOME: &str = "x-ironlb-outcome";

/// Marks an error answer as one whose request certainly changed nothing.
fn not_applied(mut resp: Response) -> Response {
    resp.headers_mut()
        .insert(OUTCOME, axum::http::HeaderValue::from_static("not-applied"));
    resp
}

/// What every handler needs.
pub struct Admin {
    /// This member's id.
    pub id: MemberId,
    /// Its Raft handle.
    pub raft: Raft,
    /// The applied state.
    pub state: SharedState,
    /// Its metrics.
    pub metrics: Arc<Metrics>,
    /// Batches this member's proposals.
    pub proposer: Proposer,
    /// How long a write may wait to be committed before the caller is told there is no quorum.
    pub write_timeout: Duration,
    /// The member's background loops, for `/healthz`.
    pub watchdog: Arc<crate::watchdog::Watchdog>,
    /// The member's cluster and id, if it has one.
    pub identity: Option<Arc<crate::raft::identity::IdentityCell>>,
    http: client::RenewingClient,
    scheme: &'static str,
    /// Issues speakers their node certificates (Kubernetes mode).
    pub node_issuer: Option<Arc<crate::k8s::certs::NodeIssuer>>,
    /// What the leader told its nodes to announce (empty unless this member leads).
    pub announced: tokio::sync::watch::Receiver<Arc<crate::controller::announced::Announcements>>,
    /// What the member's files say, if it was started with them.
    pub files: Option<tokio::sync::watch::Receiver<views::FilesView>>,
}

impl Admin {
    /// The admin state of a member; its writes go through `proposer`, which waits at most
    /// `write_timeout` for a quorum.
    pub fn new(
        id: MemberId,
        raft: Raft,
        state: SharedState,
        metrics: Arc<Metrics>,
        proposer: Proposer,
        write_timeout: Duration,
    ) -> Self {
        Self {
            id,
            raft,
            state,
            metrics,
            proposer,
            write_timeout,
            watchdog: crate::watchdog::Watchdog::new(),
            identity: None,
            http: client::RenewingClient::plain(Duration::from_secs(10)),
            scheme: "http",
            node_issuer: None,
            announced: crate::controller::announced::board().subscribe(),
            files: None,
        }
    }
}

impl Admin {
    /// The same, answering `/healthz` from `watchdog`.
    pub fn with_watchdog(self, watchdog: Arc<crate::watchdog::Watchdog>) -> Self {
        Self { watchdog, ..self }
    }

    /// The same, forwarding to the leader with `http` (which presents this member's
    /// certificate) over `scheme`.
    pub fn with_forwarding(self, http: client::RenewingClient, scheme: &'static str) -> Self {
        Self {
            http,
            scheme,
            ..self
        }
    }

    /// The same, issuing speakers' node certificates with `issuer`.
    pub fn with_node_issuer(self, issuer: Arc<crate::k8s::certs::NodeIssuer>) -> Self {
        Self {
            node_issuer: Some(issuer),
            ..self
        }
    }

    /// The same, reporting the announcements the leader publishes on `board`.
    pub fn with_announcements(self, board: &crate::controller::announced::Board) -> Self {
        Self {
            announced: board.subscribe(),
            ..self
        }
    }

    /// The same, showing the member's files in `/v1/status`.
    pub fn with_files(self, files: tokio::sync::watch::Receiver<views::FilesView>) -> Self {
        Self {
            files: Some(files),
            ..self
        }
    }

    /// The same, telling joiners the cluster of `identity`.
    pub fn with_identity(self, identity: Arc<crate::raft::identity::IdentityCell>) -> Self {
        Self {
            identity: Some(identity),
            ..self
        }
    }
}

type Shared = Arc<Admin>;

/// Why a handler could not finish here.
enum Failure {
    /// A plain error answer.
    Api(ApiError),
    /// Only the leader can do this; here is where it is, if known.
    NotLeader(Option<LeaderRef>),
}

impl From<ApiError> for Failure {
    fn from(e: ApiError) -> Self {
        Failure::Api(e)
    }
}

/// The admin API's routes, behind `auth` and the body limit. Serve it with
/// `into_make_service_with_connect_info::<auth::Peer>()` on an [`auth::AdminListener`].
pub fn router(admin: Shared, auth: Arc<auth::AdminAuth>) -> Router {
    routes(admin)
        .layer(axum::middleware::from_fn_with_state(auth, auth::authorize))
        .layer(axum::extract::DefaultBodyLimit::max(auth::MAX_BODY_BYTES))
}

fn routes(admin: Shared) -> Router {
    Router::new()
        .route(
            "/healthz",
            get(|State(a): State<Shared>| async move { a.watchdog.healthz() }),
        )
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/v1/status", get(status))
        .route("/v1/cluster", get(cluster))
        .route("/v1/members", get(members).post(add_member))
        .route("/v1/members/reserve", post(reserve_member_id))
        .route("/v1/members/{id}", delete(remove_member))
        .route("/v1/pools", get(pools))
        .route("/v1/services", get(services).post(allocate_service))
        .route(
            "/v1/services/{namespace}/{name}",
            get(service).delete(release),
        )
        .route("/v1/owners", get(owners))
        .route("/v1/announcements", get(announcements))
        .route("/v1/allocate", post(allocate))
        .route("/v1/explain", post(explain))
        .route("/v1/reservations", get(reservations).post(reserve))
        .route("/v1/reservations/{address}", delete(unreserve))
        .route("/v1/config", get(get_config).put(put_config))
        .route("/v1/snapshot", post(snapshot))
        .route(
            crate::k8s::certs::NODE_CERT_PATH,
            post(issue_node_certificate),
        )
        .with_state(admin)
}

/// Runs the handler; when it needs the leader and this member is not it, forwards the request
/// to the leader's admin API and relays the answer.
async fn leader_or_forward<F, Fut>(a: Shared, req: Request, handler: F) -> Response
where
    F: FnOnce(Shared, Bytes) -> Fut,
    Fut: Future<Output = Result<Response, Failure>>,
{
    let (parts, body) = req.into_parts();
    let body = match axum::body::to_bytes(body, auth::MAX_BODY_BYTES).await {
        Ok(b) => b,
        Err(e) => {
            // The only limit on a body is its length; anything else is a broken connection.
            let too_long = std::error::Error::source(&e)
                .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
            let status = if too_long {
                StatusCode::PAYLOAD_TOO_LARGE
            } else {
                StatusCode::BAD_REQUEST
            };
            return not_applied(
                ApiError::new(
                    status,
                    format!(
                        "reading the body (at most {} bytes): {e}",
                        auth::MAX_BODY_BYTES
                    ),
                )
                .into_response(),
            );
        }
    };
    match handler(a.clone(), body.clone()).await {
        Ok(r) => r,
        Err(Failure::Api(e)) => e.into_response(),
        Err(Failure::NotLeader(leader)) => {
            if parts.headers.contains_key(FORWARDED) {
                let mut e = ApiError::new(
                    StatusCode::MISDIRECTED_REQUEST,
                    "forwarded to a member that is not the leader either; retry",
                );
                e.body.leader = leader;
                return not_applied(e.into_response());
            }
            let Some(leader) = leader else {
                return not_applied(
                    ApiError::unavailable(
                        "no leader is known: the cluster is electing one, or has no quorum",
                    )
                    .into_response(),
                );
            };
            forward(&a, &leader, &parts.method, &parts.uri, &parts.headers, body).await
        }
    }
}

async fn forward(
    a: &Admin,
    leader: &LeaderRef,
    method: &Method,
    uri: &axum::http::Uri,
    headers: &HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let url = format!("{}://{}{}", a.scheme, leader.member.admin_addr, path);
    let mut req = a
        .http
        .get()
        .request(method.clone(), &url)
        .header(FORWARDED, a.id.to_string())
        .body(body);
    if let Some(ct) = headers.get(axum::http::header::CONTENT_TYPE) {
        req = req.header(axum::http::header::CONTENT_TYPE, ct.clone());
    }
    // A leader that died or was cut off never answers; once this member follows another
    // leader, waiting on the old one only costs the client its timeout. The request may have
    // reached it (and may yet be committed by the new leader), so the outcome is unknown.
    let mut metrics = a.raft.metrics();
    let deposed = async {
        let _ = metrics
            .wait_for(|m| m.current_leader.is_some_and(|l| l != leader.id))
            .await;
    };
    let sent = tokio::select! {
        r = req.send() => r,
        () = deposed => {
            return ApiError::unavailable(format!(
                "the leader changed while member {} waited for member {}'s answer; the request may or may not have taken effect",
                a.id, leader.id
            ))
            .into_response();
        }
    };
    match sent {
        Ok(resp) => {
            let status = resp.status();
            let content_type = resp
                .headers()
                .get(axum::http::header::CONTENT_TYPE)
                .cloned();
            let outcome = resp.headers().get(OUTCOME).cloned();
            match resp.bytes().await {
                Ok(bytes) => {
                    let mut out = (status, bytes).into_response();
                    if let Some(ct) = content_type {
                        out.headers_mut()
                            .insert(axum::http::header::CONTENT_TYPE, ct);
                    }
                    if let Some(o) = outcome {
                        out.headers_mut().insert(OUTCOME, o);
                    }
                    out
                }
                Err(e) => ApiError::unavailable(format!(
                    "the leader (member {}) broke off its answer: {e}",
                    leader.id
                ))
                .into_response(),
            }
        }
        Err(e) => {
            let mut err = ApiError::unavailable(format!(
                "the leader (member {} at {}) is unreachable from member {}: {e}; without it there is no quorum here",
                leader.id, leader.member.admin_addr, a.id
            ));
            err.body.leader = Some(leader.clone());
            // A connection that never opened carried nothing to the leader.
            if e.is_connect() {
                not_applied(err.into_response())
            } else {
                err.into_response()
            }
        }
    }
}

fn leader_ref(id: Option<MemberId>, node: Option<Member>) -> Option<LeaderRef> {
    Some(LeaderRef {
        id: id?,
        member: node?,
    })
}

/// Proposes a command and waits until it is applied, or fails within the write timeout.
/// A proposal's outcome as the API answers it: not the leader (forwarded), or unavailable.
fn proposed<T>(result: Result<T, ProposeError>) -> Result<T, Failure> {
    result.map_err(|e| match e {
        ProposeError::NotLeader(leader) => {
            Failure::NotLeader(leader.map(|(id, member)| LeaderRef { id, member }))
        }
        other => Failure::Api(ApiError::unavailable(other.to_string())),
    })
}

#[derive(Debug, Default, Deserialize)]
struct ReadOpts {
    /// Read this member's state without checking that it is current.
    #[serde(default)]
    stale: bool,
}

/// Makes a read linearizable (it sees every write acknowledged before it) unless the caller
/// accepts a possibly stale answer.
async fn linearize(a: &Admin, opts: &ReadOpts) -> Result<(), Failure> {
    if opts.stale {
        return Ok(());
    }
    let deadline = tokio::time::Instant::now() + a.write_timeout;
    // openraft reads up to the committed index it knows, and a leader restarted without losing
    // its term may know less than it acknowledged before the crash (the committed index is not
    // synced on every advance). Every acknowledged write is in the leader's log, so waiting
    // until all of the log as it stood when the read began is applied covers them all.
    let last_log = a.raft.metrics().borrow().last_log_index;
    let confirmed = tokio::time::timeout_at(deadline, async {
        a.raft.ensure_linearizable().await?;
        if last_log.is_some() {
            // Only fails when Raft shuts down, which the caller sees as unavailability.
            let _ = a
                .raft
                .wait(None)
                .applied_index_at_least(last_log, "linearizable read")
                .await;
        }
        Ok(())
    })
    .await;
    match confirmed {
        Ok(Ok(())) => Ok(()),
        Ok(Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(f)))) => {
            Err(Failure::NotLeader(leader_ref(f.leader_id, f.leader_node)))
        }
        Ok(Err(e)) => Err(ApiError::unavailable(format!("linearizable read: {e}")).into()),
        Err(_) => Err(ApiError::unavailable(format!(
            "could not confirm leadership within {:?}: no quorum is reachable (add ?stale=true to read this member's state anyway)",
            a.write_timeout
        ))
        .into()),
    }
}

fn json<T: serde::Serialize>(v: &T) -> Response {
    Json(v).into_response()
}

async fn readyz(State(a): State<Shared>) -> Response {
    let m = a.raft.metrics().borrow().clone();
    match m.current_leader {
        Some(leader) => (
            StatusCode::OK,
            format!("ready: leader is member {leader}\n"),
        )
            .into_response(),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: no leader known\n",
        )
            .into_response(),
    }
}

async fn raft_figures(a: &Admin) -> RaftFigures {
    let m = a.raft.metrics().borrow().clone();
    let commit_index = a
        .raft
        .with_raft_state(|st| st.committed.map(|l| l.index).unwrap_or(0))
        .await
        .unwrap_or(0);
    let last = m.last_log_index.unwrap_or(0);
    let lag = m
        .replication
        .iter()
        .flatten()
        .filter(|(id, _)| **id != a.id)
        .map(|(id, matched)| (*id, last.saturating_sub(matched.map_or(0, |l| l.index))))
        .collect();
    RaftFigures {
        term: m.current_term,
        is_leader: m.current_leader == Some(a.id),
        commit_index,
        applied_index: m.last_applied.map(|l| l.index).unwrap_or(0),
        members: m.membership_config.nodes().count(),
        voters: m.membership_config.membership().voter_ids().count(),
        has_leader: m.current_leader.is_some(),
        quorum_ack_age: m
            .millis_since_quorum_ack
            .filter(|_| m.current_leader == Some(a.id))
            .map(Duration::from_millis),
        lag,
    }
}

async fn metrics(State(a): State<Shared>) -> Response {
    let figures = raft_figures(&a).await;
    let state = a.state.read().await;
    let announced = a.announced.borrow().clone();
    let text = a.metrics.render(figures, &state, &announced);
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

async fn status(State(a): State<Shared>) -> Response {
    let m = a.raft.metrics().borrow().clone();
    let figures = raft_figures(&a).await;
    let state = a.state.read().await;
    let mut status = views::Status::new(a.id, &m, figures, &state);
    status.files = a.files.as_ref().map(|f| f.borrow().clone());
    json(&status)
}

/// `POST /v1/snapshot`: asks this member (not the leader: each member snapshots its own state)
/// to build a snapshot now and compact its log, and answers at once with 202; the snapshot's
/// index shows in `/v1/status` once it is built. For operators before maintenance, and for
/// benchmarks that measure snapshots.
async fn snapshot(State(a): State<Shared>) -> Response {
    match a.raft.trigger().snapshot().await {
        Ok(()) => {
            let m = a.raft.metrics().borrow().clone();
            (
                StatusCode::ACCEPTED,
                Json(serde_json::json!({
                    "member": a.id,
                    "applied_index": m.last_applied.map(|l| l.index),
                    "snapshot_index": m.snapshot.map(|l| l.index),
                })),
            )
                .into_response()
        }
        Err(e) => ApiError::unavailable(format!("cannot trigger a snapshot: {e}")).into_response(),
    }
}

/// `GET /v1/cluster`: which cluster this member belongs to and whether it has Raft state, so a
/// member starting with an empty data directory can tell whether a cluster already exists.
async fn cluster(State(a): State<Shared>) -> Response {
    let initialized = a.raft.is_initialized().await.unwrap_or(false);
    json(&views::ClusterView {
        cluster: a.identity.as_ref().and_then(|i| i.cluster()),
        member: a.id,
        initialized,
    })
}

async fn pools(State(a): State<Shared>, Query(opts): Query<ReadOpts>, req: Request) -> Response {
    leader_or_forward(a, req, |a, _| async move {
        linearize(&a, &opts).await?;
        let state = a.state.read().await;
        Ok(json(&views::pools(&state)))
    })
    .await
}

async fn services(State(a): State<Shared>, Query(opts): Query<ReadOpts>, req: Request) -> Response {
    leader_or_forward(a, req, |a, _| async move {
        linearize(&a, &opts).await?;
        let state = a.state.read().await;
        Ok(json(&views::services(&state)))
    })
    .await
}

/// What the leader told each node to announce, per Service (answered by the leader: a
/// follower's summary is empty).
async fn announcements(State(a): State<Shared>, req: Request) -> Response {
    leader_or_forward(a, req, |a, _| async move {
        members::check_leads(&a)?;
        let summary = a.announced.borrow().clone();
        Ok(json(&*summary))
    })
    .await
}

async fn owners(State(a): State<Shared>, Query(opts): Query<ReadOpts>, req: Request) -> Response {
    leader_or_forward(a, req, |a, _| async move {
        linearize(&a, &opts).await?;
        let state = a.state.read().await;
        Ok(json(&views::owners(&state)))
    })
    .await
}

async fn service(
    State(a): State<Shared>,
    Path((namespace, name)): Path<(String, String)>,
    Query(opts): Query<ReadOpts>,
    req: Request,
) -> Response {
    leader_or_forward(a, req, |a, _| async move {
        let key = ServiceKey::new(&namespace, &name)
            .map_err(|e| ApiError::bad_request(format!("service key: {e}")))?;
        linearize(&a, &opts).await?;
        let state = a.state.read().await;
        let alloc = state
            .allocator
            .allocation(&key)
            .ok_or_else(|| ApiError::not_found(format!("{key} holds no address")))?;
        let explain = state.allocator.explain(&alloc.request);
        Ok(json(&views::ServiceView::new(&key, alloc, Some(&explain))))
    })
    .await
}

async fn allocation_response(a: &Admin, request: AllocationRequest) -> Result<Response, Failure> {
    let start = Instant::now();
    let explanation = a.proposer.allocate(request).await;
    if explanation.is_err() {
        a.metrics.allocation_failed("error");
    }
    let explanation = proposed(explanation)?;
    a.metrics
        .allocation_duration
        .observe(start.elapsed().as_secs_f64());
    let status = match explanation.outcome {
        Ok(_) => StatusCode::OK,
        Err(_) => {
            a.metrics.allocation_failed("refused");
            StatusCode::CONFLICT
        }
    };
    Ok((status, Json(views::AllocateResult::new(&explanation))).into_response())
}

async fn allocate(State(a): State<Shared>, req: Request) -> Response {
    leader_or_forward(a, req, |a, body| async move {
        let request: AllocationRequest = serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request(format!("allocation request: {e}")))?;
        allocation_response(&a, request).await
    })
    .await
}

/// Parses a Service manifest (YAML or JSON) into a request, with its Namespace's labels from
/// the configuration in force.
async fn request_from_manifest(a: &Admin, body: &[u8]) -> Result<AllocationRequest, Failure> {
    let text = std::str::from_utf8(body)
        .map_err(|_| ApiError::bad_request("the Service manifest is not UTF-8"))?;
    let svc: Service = serde_yaml::from_str(text)
        .map_err(|e| ApiError::bad_request(format!("Service manifest: {e}")))?;
    let ns = svc
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".into());
    let labels: Labels = {
        let state = a.state.read().await;
        state
            .config
            .as_ref()
            .and_then(|c| c.namespaces.iter().find(|(n, _)| n.as_str() == ns))
            .map(|(_, l)| l.clone())
            .unwrap_or_default()
    };
    request_from_service(&svc, &labels).map_err(|errs| {
        let name = svc.metadata.name.clone().unwrap_or_default();
        Failure::Api(ApiError::invalid(
            format!("Service {ns}/{name} is invalid"),
            errs.iter().map(|e| e.to_string()).collect(),
        ))
    })
}

async fn allocate_service(State(a): State<Shared>, req: Request) -> Response {
    leader_or_forward(a, req, |a, body| async move {
        let request = request_from_manifest(&a, &body).await?;
        allocation_response(&a, request).await
    })
    .await
}

async fn explain(State(a): State<Shared>, Query(opts): Query<ReadOpts>, req: Request) -> Response {
    leader_or_forward(a, req, |a, body| async move {
        // Either an allocation request (JSON) or a Service manifest (YAML or JSON).
        let request = match serde_json::from_slice::<AllocationRequest>(&body) {
            Ok(r) => r,
            Err(_) => request_from_manifest(&a, &body).await?,
        };
        linearize(&a, &opts).await?;
        let state = a.state.read().await;
        let e = state.allocator.explain(&request);
        Ok(json(&views::AllocateResult::new(&e)))
    })
    .await
}

async fn release(
    State(a): State<Shared>,
    Path((namespace, name)): Path<(String, String)>,
    req: Request,
) -> Response {
    leader_or_forward(a, req, |a, _| async move {
        let service = ServiceKey::new(&namespace, &name)
            .map_err(|e| ApiError::bad_request(format!("service key: {e}")))?;
        match proposed(a.proposer.release(service.clone()).await)? {
            Some(alloc) => Ok(json(&views::ServiceView::new(&service, &alloc, None))),
            None => Err(ApiError::not_found(format!("{service} held no address")).into()),
        }
    })
    .await
}

async fn reservations(
    State(a): State<Shared>,
    Query(opts): Query<ReadOpts>,
    req: Request,
) -> Response {
    leader_or_forward(a, req, |a, _| async move {
        linearize(&a, &opts).await?;
        let state = a.state.read().await;
        let list: Vec<views::Reservation> = state
            .allocator
            .reservations()
            .map(|(address, service)| views::Reservation {
                address: *address,
                service: service.clone(),
            })
            .collect();
        Ok(json(&list))
    })
    .await
}

async fn reserve(State(a): State<Shared>, req: Request) -> Response {
    leader_or_forward(a, req, |a, body| async move {
        let r: views::Reservation = serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request(format!("reservation: {e}")))?;
        match proposed(a.proposer.reserve(r.address, r.service.clone()).await)? {
            Ok(()) => Ok(json(&r)),
            Err(e) => Err(ApiError::new(StatusCode::CONFLICT, e.to_string()).into()),
        }
    })
    .await
}

async fn unreserve(State(a): State<Shared>, Path(address): Path<IpAddr>, req: Request) -> Response {
    leader_or_forward(a, req, |a, _| async move {
        match proposed(a.proposer.unreserve(address).await)? {
            Ok(service) => Ok(json(&views::Reservation { address, service })),
            Err(e) => Err(ApiError::not_found(e.to_string()).into()),
        }
    })
    .await
}

async fn get_config(
    State(a): State<Shared>,
    Query(opts): Query<ReadOpts>,
    req: Request,
) -> Response {
    leader_or_forward(a, req, |a, _| async move {
        linearize(&a, &opts).await?;
        let state = a.state.read().await;
        Ok(json(&views::ConfigView {
            revision: state.config_revision,
            config: state.config.as_ref().map(config::Config::redacted),
        }))
    })
    .await
}

/// Validates the configuration documents in the body (YAML, as in files) and installs them
/// through Raft; an invalid set is refused with every error, and the old one stays in force.
async fn put_config(State(a): State<Shared>, req: Request) -> Response {
    leader_or_forward(a, req, |a, body| async move {
        let text = std::str::from_utf8(&body)
            .map_err(|_| ApiError::bad_request("the configuration is not UTF-8"))?;
        let loaded = Documents::from_str(text, "request body");
        let mut errors: Vec<String> = loaded.errors.iter().map(|e| e.to_string()).collect();
        let validated = config::validate(&loaded.documents);
        if let Err(more) = &validated {
            errors.extend(more.iter().map(|e| e.to_string()));
        }
        let config = match validated {
            Ok(c) if errors.is_empty() => c,
            _ => {
                let n = errors.len();
                return Err(ApiError::invalid(
                    format!(
                        "the configuration is invalid ({n} error{}); the one in force is unchanged",
                        if n == 1 { "" } else { "s" }
                    ),
                    errors,
                )
                .into());
            }
        };
        match proposed(a.proposer.set_config(config).await)? {
            Ok((revision, recheck)) => Ok(json(&views::ConfigApplied::new(revision, &recheck))),
            Err(why) => Err(ApiError::invalid(
                "the configuration was refused; the one in force is unchanged",
                vec![why],
            )
            .into()),
        }
    })
    .await
}
