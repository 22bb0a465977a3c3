//! The Service reconciler, run by the Raft leader only (a member that becomes leader starts it at
//! once; one that stops leading stops it). It watches Services, Namespaces and the configuration
//! objects, turns each Service into an allocation or a release through Raft, and writes back
//! what Kubernetes shows: `status.loadBalancer.ingress`, the `ironlb.io/ip-allocated-from-pool`
//! annotation, Events, the pools' status and the cluster-wide `ConfigurationState`.
//!
//! Kubernetes is an input and an output, never the record: allocations live in Raft. On start
//! the reconciler adopts the addresses Services already show in their status (after a migration
//! from MetalLB, or the loss of all Raft state) instead of renumbering them.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::{Namespace, Service};
use kube::api::{Patch, PatchParams};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::json;
use tracing::{info, warn};

use super::convert::ClusterConfig;
use crate::config::kinds::{
    self, ConfigurationState, ConfigurationStateSpec, ConfigurationStateStatus, IPAddressPool,
    IPAddressPoolStatus,
};
use crate::config::service::request_from_service;
use crate::ipam::{rank, sort_by_rank, AllocationRequest, Family, Rank};
use crate::labels::Labels;
use crate::metrics::controller::Metrics;
use crate::names::ServiceKey;
use crate::raft::{Proposer, SharedState};

mod status;

mod config_sync;

pub mod decide;
use decide::{Backoff, ServiceError};

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

/// What a watch event asks of the reconciler (the objects themselves are in the stores).
enum Trigger {
    /// This Service changed or went away.
    Service(ServiceKey),
    /// This Namespace changed (its Services' requests carry its labels).
    Namespace(String),
    /// A relist of this kind began or ended (`true`: ended); what was missed is looked at again.
    Relist(&'static str, bool),
    /// A configuration object of this kind changed.
    Config(&'static str),
}

fn service_trigger(e: watcher::Event<Service>) -> Trigger {
    match e {
        watcher::Event::Apply(s) | watcher::Event::InitApply(s) | watcher::Event::Delete(s) => {
            match key_of(&s) {
                Some(k) => Trigger::Service(k),
                None => Trigger::Relist("Service", false),
            }
        }
        watcher::Event::Init => Trigger::Relist("Service", false),
        watcher::Event::InitDone => Trigger::Relist("Service", true),
    }
}

fn namespace_trigger(e: watcher::Event<Namespace>) -> Trigger {
    match e {
        watcher::Event::Apply(n) | watcher::Event::InitApply(n) | watcher::Event::Delete(n) => {
            Trigger::Namespace(n.name_any())
        }
        watcher::Event::Init => Trigger::Relist("Namespace", false),
        watcher::Event::InitDone => Trigger::Relist("Namespace", true),
    }
}

/// Any change to a configuration object of `kind` is a configuration trigger.
fn cfg_trigger<K>(kind: &'static str) -> impl Fn(watcher::Event<K>) -> Trigger + Send + 'static {
    move |e| match e {
        watcher::Event::InitDone => Trigger::Relist(kind, true),
        _ => Trigger::Config(kind),
    }
}

/// The streams of one kind: a reflector keeping `store` and the events mapped to triggers.
fn watch<K, F>(
    api: Api<K>,
    writer: reflector::store::Writer<K>,
    map: F,
) -> impl Stream<Item = Trigger> + Send
where
    K: Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + Sync + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone,
    F: Fn(watcher::Event<K>) -> Trigger + Send + 'static,
{
    use kube::runtime::WatchStreamExt;
    reflector::reflector(writer, watcher::watcher(api, watcher::Config::default()))
        .default_backoff()
        .filter_map(move |r| {
            let t = match r {
                Ok(e) => Some(map(e)),
                Err(e) => {
                    warn!(error = %e, "watch failed; retrying");
                    None
                }
            };
            futures::future::ready(t)
        })
}

/// The reconciler of one leadership term.
pub struct Reconciler {
    client: Client,
    cfg: ReconcilerConfig,
    proposer: Proposer,
    state: SharedState,
    metrics: Arc<Metrics>,
    recorder: Recorder,
    services: Store<Service>,
    namespaces: Store<Namespace>,
    pools: Store<IPAddressPool>,
    l2: Store<kinds::L2Advertisement>,
    bgp_adv: Store<kinds::BGPAdvertisement>,
    peers: Store<kinds::BGPPeer>,
    communities: Store<kinds::Community>,
    bfd: Store<kinds::BFDProfile>,
    /// What the status object said last, so it is written only when it changes.
    last_state: Option<ConfigurationStateStatus>,
    last_pool_status: BTreeMap<String, IPAddressPoolStatus>,
    /// Services whose last reconcile failed, and when to try each again.
    backoff: Backoff,
}

/// The first retry of a Service whose reconcile failed; each further failure doubles it.
const RETRY_FIRST: Duration = Duration::from_secs(1);
/// The longest wait between retries of one Service.
const RETRY_MAX: Duration = Duration::from_secs(120);

impl Reconciler {
    /// Watches and reconciles until a watch ends for good (the caller stops it when this
    /// member stops leading).
    pub async fn run(
        client: Client,
        cfg: ReconcilerConfig,
        proposer: Proposer,
        state: SharedState,
        metrics: Arc<Metrics>,
    ) -> Result<(), ReconcileError> {
        let ns = cfg.namespace.clone();
        let (services, w_services) = reflector::store();
        let (namespaces, w_namespaces) = reflector::store();
        let (pools, w_pools) = reflector::store();
        let (l2, w_l2) = reflector::store();
        let (bgp_adv, w_bgp_adv) = reflector::store();
        let (peers, w_peers) = reflector::store();
        let (communities, w_communities) = reflector::store();
        let (bfd, w_bfd) = reflector::store();
        let c = &client;
        let streams: Vec<std::pin::Pin<Box<dyn Stream<Item = Trigger> + Send>>> = vec![
            Box::pin(watch(
                Api::<Service>::all(c.clone()),
                w_services,
                service_trigger,
            )),
            Box::pin(watch(
                Api::<Namespace>::all(c.clone()),
                w_namespaces,
                namespace_trigger,
            )),
            Box::pin(watch(
                Api::<IPAddressPool>::namespaced(c.clone(), &ns),
                w_pools,
                cfg_trigger("IPAddressPool"),
            )),
            Box::pin(watch(
                Api::<kinds::L2Advertisement>::namespaced(c.clone(), &ns),
                w_l2,
                cfg_trigger("L2Advertisement"),
            )),
            Box::pin(watch(
                Api::<kinds::BGPAdvertisement>::namespaced(c.clone(), &ns),
                w_bgp_adv,
                cfg_trigger("BGPAdvertisement"),
            )),
            Box::pin(watch(
                Api::<kinds::BGPPeer>::namespaced(c.clone(), &ns),
                w_peers,
                cfg_trigger("BGPPeer"),
            )),
            Box::pin(watch(
                Api::<kinds::Community>::namespaced(c.clone(), &ns),
                w_communities,
                cfg_trigger("Community"),
            )),
            Box::pin(watch(
                Api::<kinds::BFDProfile>::namespaced(c.clone(), &ns),
                w_bfd,
                cfg_trigger("BFDProfile"),
            )),
        ];
        let total_streams = streams.len();
        let mut triggers = futures::stream::select_all(streams);
        let recorder = Recorder::new(
            client.clone(),
            Reporter {
                controller: FIELD_MANAGER.into(),
                instance: Some(cfg.instance.clone()),
            },
        );
        let mut r = Reconciler {
            client,
            cfg,
            proposer,
            state,
            metrics,
            recorder,
            services,
            namespaces,
            pools,
            l2,
            bgp_adv,
            peers,
            communities,
            bfd,
            last_state: None,
            last_pool_status: BTreeMap::new(),
            backoff: Backoff::new(RETRY_FIRST, RETRY_MAX),
        };

        // Nothing is decided before every kind has been listed once: a half-read configuration
        // would look invalid, and a half-read Service list would release addresses.
        let mut initialized = 0usize;
        let mut dirty: BTreeSet<ServiceKey> = BTreeSet::new();
        let mut config_dirty = true;
        while initialized < total_streams {
            match triggers.next().await {
                Some(Trigger::Relist(_, true)) => initialized += 1,
                Some(_) => {}
                None => return Err(ReconcileError::WatchEnded("initial")),
            }
        }
        info!(namespace = %r.cfg.namespace, "reconciler has read the cluster; reconciling");
        r.sync_config().await;
        r.adopt().await;
        dirty.extend(r.all_service_keys());
        let mut resync = tokio::time::interval(r.cfg.resync);
        resync.tick().await;
        loop {
            if config_dirty {
                if r.sync_config().await {
                    dirty.extend(r.all_service_keys());
                }
                config_dirty = false;
            }
            let todo = r.in_pass_order(std::mem::take(&mut dirty)).await;
            let any = !todo.is_empty();
            for key in todo {
                r.reconcile(&key).await;
            }
            if any {
                r.write_pool_status().await;
            }
            let retry_at = r.backoff.next_due();
            tokio::select! {
                // A failed Service is tried again after its own backoff, not the next resync.
                _ = tokio::time::sleep_until(retry_at.unwrap_or_else(Instant::now)), if retry_at.is_some() => {
                    dirty.extend(r.backoff.due(Instant::now()));
                }
                t = triggers.next() => match t {
                    Some(t) => r.note(t, &mut dirty, &mut config_dirty),
                    None => return Err(ReconcileError::WatchEnded("cluster")),
                },
                _ = resync.tick() => {
                    config_dirty = true;
                    dirty.extend(r.all_service_keys());
                    dirty.extend(r.held_keys().await);
                }
            }
            // Take whatever else is already waiting, so one burst is one pass.
            while let Some(Some(t)) = triggers.now_or_never_opt() {
                r.note(t, &mut dirty, &mut config_dirty);
            }
        }
    }

    fn note(&self, t: Trigger, dirty: &mut BTreeSet<ServiceKey>, config_dirty: &mut bool) {
        match t {
            Trigger::Service(k) => {
                dirty.insert(k);
            }
            Trigger::Namespace(name) => {
                dirty.extend(
                    self.all_service_keys()
                        .into_iter()
                        .filter(|k| k.namespace().as_str() == name),
                );
            }
            // A relist may have missed deletions: look at everything again.
            Trigger::Relist("Service", _) | Trigger::Relist("Namespace", _) => {
                dirty.extend(self.all_service_keys());
            }
            Trigger::Relist(_, _) => *config_dirty = true,
            Trigger::Config(kind) => {
                tracing::debug!(kind, "a configuration object changed");
                *config_dirty = true;
            }
        }
    }

    fn all_service_keys(&self) -> Vec<ServiceKey> {
        self.services
            .state()
            .iter()
            .filter_map(|s| key_of(s))
            .collect()
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
        let spec = svc.spec.as_ref();
        let is_lb = spec.and_then(|s| s.type_.as_deref()) == Some("LoadBalancer");
        let class = spec.and_then(|s| s.load_balancer_class.as_deref());
        is_lb && class == self.cfg.lb_class.as_deref() && svc.metadata.deletion_timestamp.is_none()
    }

    fn namespace_labels(&self, ns: &str) -> Labels {
        self.namespaces
            .get(&ObjectRef::new(ns))
            .and_then(|n| n.metadata.labels.clone())
            .unwrap_or_default()
    }

    /// Records, for every Service showing addresses in its status that Raft does not know,
    /// those addresses as its allocation.
    async fn adopt(&mut self) {
        for svc in self.services.state() {
            if !self.wanted(&svc) {
                continue;
            }
            let Some(key) = key_of(&svc) else { continue };
            let shown = ingress_ips(&svc);
            if shown.is_empty() {
                continue;
            }
            let held = self.state.read().await.allocator.allocation(&key).is_some();
            if held {
                continue;
            }
            let Ok(request) =
                request_from_service(&svc, &self.namespace_labels(key.namespace().as_str()))
            else {
                continue;
            };
            match self.proposer.adopt(request, shown.clone()).await {
                Ok(Ok(a)) => {
                    info!(service = %key, addresses = ?a.addresses, "adopted the addresses the Service already had");
                    self.event(
                        &svc,
                        EventType::Normal,
                        "IPAdopted",
                        "Adopt",
                        format!(
                            "kept {} from the Service's status (pool {})",
                            join(&a.addresses),
                            a.pool
                        ),
                    )
                    .await;
                }
                Ok(Err(refusal)) => {
                    warn!(service = %key, addresses = ?shown, %refusal, "cannot adopt the Service's addresses");
                    self.event(
                        &svc,
                        EventType::Warning,
                        "AdoptionFailed",
                        "Adopt",
                        format!("cannot keep {}: {refusal}", join(&shown)),
                    )
                    .await;
                }
                Err(e) => warn!(service = %key, error = %e, "adoption not committed"),
            }
        }
    }

    /// The Services of one pass in the order every input uses (`service_sync`): releases,
    /// held, asking for addresses, asking for a pool, the rest.
    async fn in_pass_order(&self, keys: BTreeSet<ServiceKey>) -> Vec<ServiceKey> {
        let state = self.state.read().await;
        let mut ranked: Vec<(Rank, ServiceKey)> = keys
            .into_iter()
            .map(|k| {
                let held = state.allocator.allocation(&k).is_some();
                let svc = self
                    .services
                    .get(&ObjectRef::new(k.name()).within(k.namespace().as_str()));
                let rank = match svc {
                    Some(svc) if self.wanted(&svc) => {
                        match request_from_service(
                            &svc,
                            &self.namespace_labels(k.namespace().as_str()),
                        ) {
                            Ok(req) => rank(Some(&req), held),
                            // Reconciling it only reports the error: last.
                            Err(_) => Rank::Any,
                        }
                    }
                    _ => rank(None, held),
                };
                (rank, k)
            })
            .collect();
        sort_by_rank(&mut ranked, |(r, k)| (*r, k.clone()));
        ranked.into_iter().map(|(_, k)| k).collect()
    }

    async fn reconcile(&mut self, key: &ServiceKey) {
        let svc = self
            .services
            .get(&ObjectRef::new(key.name()).within(key.namespace().as_str()));
        let held = self.state.read().await.allocator.allocation(key).cloned();
        let result = match svc {
            Some(svc) if self.wanted(&svc) => self.ensure_allocated(key, &svc, held).await,
            svc => self.ensure_released(key, svc.as_deref(), held).await,
        };
        let label = match result {
            Ok(changed) => {
                self.backoff.succeeded(key);
                if changed {
                    "changed"
                } else {
                    "unchanged"
                }
            }
            Err(e) => {
                let retry = self.backoff.failed(key, Instant::now());
                let attempts = self.backoff.attempts(key);
                let in_ms = retry.saturating_duration_since(Instant::now()).as_millis();
                warn!(service = %key, error = %e, attempts, retry_in_ms = in_ms as u64, "reconcile failed");
                e.label()
            }
        };
        self.metrics.k8s.reconciled(label);
    }

    async fn ensure_allocated(
        &mut self,
        key: &ServiceKey,
        svc: &Service,
        held: Option<crate::ipam::Allocation>,
    ) -> Result<bool, ServiceError> {
        let request =
            match request_from_service(svc, &self.namespace_labels(key.namespace().as_str())) {
                Ok(r) => r,
                Err(errors) => {
                    let text = errors
                        .iter()
                        .map(|e| e.to_string())
                        .collect::<Vec<_>>()
                        .join("; ");
                    self.event(
                        svc,
                        EventType::Warning,
                        "InvalidService",
                        "Allocate",
                        text.clone(),
                    )
                    .await;
                    return Err(ServiceError::Invalid(text));
                }
            };
        let (pool, addresses, changed) = match held {
            Some(h) if same_request(&h.request, &request) => (h.pool, h.addresses, false),
            previous => match self.proposer.allocate(request).await {
                Ok(explanation) => match &explanation.outcome {
                    Ok(d) => {
                        let addrs: Vec<IpAddr> = d.picks.iter().map(|(a, _)| *a).collect();
                        let changed = previous.as_ref().map(|p| &p.addresses) != Some(&addrs);
                        if changed {
                            info!(service = %key, addresses = ?addrs, pool = %d.pool, "allocated");
                            self.event(
                                svc,
                                EventType::Normal,
                                "IPAllocated",
                                "Allocate",
                                explanation.to_string(),
                            )
                            .await;
                        }
                        (d.pool.clone(), addrs, changed)
                    }
                    Err(_) => {
                        let text = explanation.to_string();
                        self.event(
                            svc,
                            EventType::Warning,
                            "AllocationFailed",
                            "Allocate",
                            text.clone(),
                        )
                        .await;
                        return Err(ServiceError::NoAddress(text));
                    }
                },
                Err(e) => return Err(e.into()),
            },
        };
        let wrote = self.write_service(svc, Some((&pool, &addresses))).await?;
        Ok(changed || wrote)
    }

    async fn ensure_released(
        &mut self,
        key: &ServiceKey,
        svc: Option<&Service>,
        held: Option<crate::ipam::Allocation>,
    ) -> Result<bool, ServiceError> {
        let Some(held) = held else {
            // Nothing held; a Service that stopped being ours keeps no status of ours.
            if let Some(svc) = svc {
                return self.write_service(svc, None).await;
            }
            return Ok(false);
        };
        match self.proposer.release(key.clone()).await {
            Ok(_) => {
                info!(service = %key, addresses = ?held.addresses, "released");
                if let Some(svc) = svc {
                    self.event(
                        svc,
                        EventType::Normal,
                        "IPReleased",
                        "Release",
                        format!(
                            "released {} (the Service is no longer a LoadBalancer of this class)",
                            join(&held.addresses)
                        ),
                    )
                    .await;
                    self.write_service(svc, None).await?;
                }
                Ok(true)
            }
            Err(e) => Err(e.into()),
        }
    }
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

/// `Stream::next` without waiting: `Some(item)` if one is ready.
trait NowOrNever: Stream + Unpin {
    fn now_or_never_opt(&mut self) -> Option<Option<Self::Item>> {
        use futures::FutureExt;
        self.next().now_or_never()
    }
}

impl<S: Stream + Unpin> NowOrNever for S {}
