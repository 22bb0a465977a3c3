//! The Service reconciler, run by the Raft leader only (a member that becomes leader starts it at
//! once; one that stops leading stops it). It watches Services, Namespaces and the configuration
//! objects, turns each Service into an allocation or a release through Raft, and writes back
//! what Kubernetes shows: `status.loadBalancer.ingress`, the `ironlb.io/ip-allocated-from-pool`
//! annotation, Events, the pools' status and the cluster-wide `ConfigurationState`.
//!
//! Three tasks share one [`Reconciler`]:
//! - a `kube::runtime::Controller` over Services: one reconcile per Service (`service.rs`), an
//!   `error_policy` retrying each failed Service on its own backoff, a requeue at every resync,
//!   a Namespace change reconciling its Services and a new configuration reconciling all;
//! - the housekeeping loop (`housekeeping.rs`): the configuration objects into one
//!   configuration through Raft, adoption at start, releases of deleted Services (the
//!   Controller never sees an object that is gone), and the pools' status;
//! - the announcement reports (`announcements.rs`): the ServiceL2Status and ServiceBGPStatus
//!   objects kept as the leader's summary of what each node announces says, and an Event on a
//!   Service whose Layer 2 node changes.
//!
//! The order of a pass (`service_sync`) holds across independent reconciles: a Service that
//! takes any address first lets the Services that asked for specific addresses or a pool, and
//! hold nothing yet, have theirs ([`decide::claims_before`]).
//!
//! Kubernetes is an input and an output, never the record: allocations live in Raft. On start
//! the reconciler adopts the addresses Services already show in their status (after a migration
//! from MetalLB, or the loss of all Raft state) instead of renumbering them.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Service};
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::{self, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::json;
use tokio::sync::watch as signal;
use tracing::{info, warn};

use super::convert::ClusterConfig;
use crate::config::kinds::{
    self, ConfigurationState, ConfigurationStateSpec, ConfigurationStateStatus, IPAddressPool,
    IPAddressPoolStatus,
};
use crate::config::service::request_from_service;
use crate::controller::announced::Announcements;
use crate::ipam::{AllocationRequest, Family, Rank};
use crate::labels::Labels;
use crate::metrics::controller::Metrics;
use crate::names::ServiceKey;
use crate::raft::{Proposer, SharedState};

pub mod announcements;
mod config_sync;
pub mod decide;
mod housekeeping;
mod service;
mod status;
mod watches;

use decide::{Backoff, ServiceError};
use watches::{NowOrNever, Trigger};

/// The annotation naming the pool a Service's addresses come from.
pub const POOL_ANNOTATION: &str = "ironlb.io/ip-allocated-from-pool";

/// The field manager of everything the controller writes with server-side apply.
pub const FIELD_MANAGER: &str = "ironlb-controller";

/// The name of the cluster-wide status object.
pub const STATE_NAME: &str = "ironlb";

/// How the reconciler runs.
#[derive(Clone, Debug)]
pub struct ReconcilerConfig {
    /// The namespace holding the configuration objects and the status object.
    pub namespace: String,
    /// Only Services with this `spec.loadBalancerClass`; `None`: only Services without one.
    pub lb_class: Option<String>,
    /// This member's name, as the Events' reporting instance.
    pub instance: String,
    /// How often every Service is looked at again even without a change.
    pub resync: Duration,
}

/// Why the reconciler stopped.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// A watch ended for good.
    #[error("the {0} watch ended")]
    WatchEnded(&'static str),
}

/// What the Controller's reconciles and the housekeeping loop share (the Controller's context).
pub struct Reconciler {
    client: Client,
    cfg: ReconcilerConfig,
    proposer: Proposer,
    state: SharedState,
    metrics: Arc<Metrics>,
    recorder: Recorder,
    services: Store<Service>,
    namespaces: Store<Namespace>,
    /// The configuration objects, one store per kind.
    config: watches::ConfigStores,
    /// The wanted Services that ask for specific addresses or a pool, kept by the Service
    /// stream; a Service taking any address serves those first.
    claims: Arc<Mutex<BTreeMap<ServiceKey, Rank>>>,
    /// What the status objects said last, so they are written only when they change.
    written: tokio::sync::Mutex<Written>,
    /// Services whose last reconcile failed, and when to try each again.
    backoff: Mutex<Backoff>,
    /// Set once the configuration is installed and the Services' addresses adopted; no
    /// reconcile decides anything before.
    ready: signal::Receiver<bool>,
    /// A reconcile changed an allocation: the pools' status is due.
    changed: tokio::sync::Notify,
}

/// The status objects as last written.
#[derive(Default)]
struct Written {
    state: Option<ConfigurationStateStatus>,
    pools: BTreeMap<String, IPAddressPoolStatus>,
}

/// The first retry of a Service whose reconcile failed; each further failure doubles it.
const RETRY_FIRST: Duration = Duration::from_secs(1);
/// The longest wait between retries of one Service.
const RETRY_MAX: Duration = Duration::from_secs(120);

/// The reflector stores of one leadership term.
struct Stores {
    services: Store<Service>,
    namespaces: Store<Namespace>,
    config: watches::ConfigStores,
}

impl Reconciler {
    /// Watches and reconciles until a watch ends for good (the caller stops it when this
    /// member stops leading); `announced` is the leader's summary of what each node announces.
    pub async fn run(
        client: Client,
        cfg: ReconcilerConfig,
        proposer: Proposer,
        state: SharedState,
        metrics: Arc<Metrics>,
        announced: signal::Receiver<Arc<Announcements>>,
    ) -> Result<(), ReconcileError> {
        let (services, w_services) = reflector::store();
        let (namespaces, w_namespaces) = reflector::store();
        let (config_stores, config_streams) = watches::configuration(&client, &cfg.namespace);
        let kinds = config_streams.len();
        let stores = Stores {
            services,
            namespaces,
            config: config_stores,
        };
        let (ready_tx, ready) = signal::channel(false);
        let r = Arc::new(Reconciler::new(
            client, cfg, proposer, state, metrics, stores, ready,
        ));

        let (deleted_tx, deleted) = futures::channel::mpsc::unbounded();
        let service_stream = watches::services(
            Api::<Service>::all(r.client.clone()),
            w_services,
            r.services.clone(),
            r.cfg.lb_class.clone(),
            Arc::clone(&r.claims),
            deleted_tx,
        );
        let namespace_stream =
            watches::namespaces(Api::<Namespace>::all(r.client.clone()), w_namespaces);
        let (reconcile_all, all_rx) = futures::channel::mpsc::unbounded();
        let in_namespace = {
            let services = r.services.clone();
            move |ns: Namespace| {
                let name = ns.name_any();
                services
                    .state()
                    .iter()
                    .filter(|s| s.namespace().as_deref() == Some(name.as_str()))
                    .map(|s| ObjectRef::from_obj(s.as_ref()))
                    .collect::<Vec<_>>()
            }
        };
        // One reconcile at a time: a pass's order is kept across Services (claims first), and
        // Raft batches what the API server sends in bursts anyway.
        let controller = Controller::for_stream(service_stream, r.services.clone())
            .watches_stream(namespace_stream, in_namespace)
            .reconcile_all_on(all_rx)
            .with_config(controller::Config::default().concurrency(1))
            .run(service::reconcile, service::error_policy, Arc::clone(&r))
            .for_each(|result| {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "controller");
                }
                futures::future::ready(())
            });
        let config = futures::stream::select_all(config_streams);
        let housekeeping =
            Arc::clone(&r).housekeeping(config, kinds, deleted, ready_tx, reconcile_all);
        let reports = Arc::clone(&r).announcements(announced);
        tokio::select! {
            () = controller => Err(ReconcileError::WatchEnded("Service")),
            result = housekeeping => result,
            result = reports => result,
        }
    }

    fn new(
        client: Client,
        cfg: ReconcilerConfig,
        proposer: Proposer,
        state: SharedState,
        metrics: Arc<Metrics>,
        stores: Stores,
        ready: signal::Receiver<bool>,
    ) -> Self {
        let recorder = Recorder::new(
            client.clone(),
            Reporter {
                controller: FIELD_MANAGER.into(),
                instance: Some(cfg.instance.clone()),
            },
        );
        Reconciler {
            client,
            cfg,
            proposer,
            state,
            metrics,
            recorder,
            services: stores.services,
            namespaces: stores.namespaces,
            config: stores.config,
            claims: Arc::default(),
            written: tokio::sync::Mutex::default(),
            backoff: Mutex::new(Backoff::new(RETRY_FIRST, RETRY_MAX)),
            ready,
            changed: tokio::sync::Notify::new(),
        }
    }

    async fn held_keys(&self) -> Vec<ServiceKey> {
        let state = self.state.read().await;
        state
            .allocator
            .allocations()
            .map(|(k, _)| k.clone())
            .collect()
    }

    fn wanted(&self, svc: &Service) -> bool {
        wanted(svc, self.cfg.lb_class.as_deref())
    }

    fn namespace_labels(&self, ns: &str) -> Labels {
        self.namespaces
            .get(&ObjectRef::new(ns))
            .and_then(|n| n.metadata.labels.clone())
            .unwrap_or_default()
    }

    fn service(&self, key: &ServiceKey) -> Option<Arc<Service>> {
        self.services
            .get(&ObjectRef::new(key.name()).within(key.namespace().as_str()))
    }
}

/// Whether `svc` is ours: a LoadBalancer of our class, not being deleted.
fn wanted(svc: &Service, lb_class: Option<&str>) -> bool {
    let spec = svc.spec.as_ref();
    let is_lb = spec.and_then(|s| s.type_.as_deref()) == Some("LoadBalancer");
    let class = spec.and_then(|s| s.load_balancer_class.as_deref());
    is_lb && class == lb_class && svc.metadata.deletion_timestamp.is_none()
}

fn key_of(svc: &Service) -> Option<ServiceKey> {
    ServiceKey::new(&svc.namespace()?, &svc.name_any()).ok()
}

/// The addresses a Service's status shows.
pub fn ingress_ips(svc: &Service) -> Vec<IpAddr> {
    svc.status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .map(|list| {
            list.iter()
                .filter_map(|i| i.ip.as_deref()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

fn join(v: &[IpAddr]) -> String {
    v.iter()
        .map(|a| a.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Whether a held allocation was granted for this very request (then there is nothing to ask
/// Raft: the answer would be "kept").
fn same_request(a: &AllocationRequest, b: &AllocationRequest) -> bool {
    a == b
}
