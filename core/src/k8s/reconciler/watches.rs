//! The reconciler's watches: a reflector per kind keeping its store, the configuration kinds'
//! events as triggers, and the Service stream the Controller reads, which also keeps the claims
//! and reports deletions.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use futures::channel::mpsc::UnboundedSender;
use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::{Namespace, Service};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client, Resource};
use tracing::warn;

use super::{decide, key_of, wanted};
use crate::config::kinds::{self, IPAddressPool};
use crate::ipam::Rank;
use crate::k8s::convert::ClusterConfig;
use crate::names::ServiceKey;

/// What a configuration watch event asks of the housekeeping loop (the objects themselves are
/// in the stores).
pub(super) enum Trigger {
    /// A relist began or ended (`true`: ended).
    Relist(bool),
    /// A configuration object of this kind changed.
    Config(std::borrow::Cow<'static, str>),
}

/// A boxed stream of triggers.
pub(super) type Triggers = std::pin::Pin<Box<dyn Stream<Item = Trigger> + Send>>;

/// The configuration objects in the reconciler's namespace, one store per kind.
pub(super) struct ConfigStores {
    pub(super) pools: Store<IPAddressPool>,
    l2: Store<kinds::L2Advertisement>,
    bgp_adv: Store<kinds::BGPAdvertisement>,
    peers: Store<kinds::BGPPeer>,
    communities: Store<kinds::Community>,
    bfd: Store<kinds::BFDProfile>,
}

impl ConfigStores {
    /// Everything the stores hold, as one set of objects to validate.
    pub(super) fn cluster_config(&self) -> ClusterConfig {
        fn own<T: Clone>(v: Vec<Arc<T>>) -> Vec<T> {
            v.into_iter().map(|a| (*a).clone()).collect()
        }
        ClusterConfig {
            pools: own(self.pools.state()),
            l2_advertisements: own(self.l2.state()),
            bgp_advertisements: own(self.bgp_adv.state()),
            bgp_peers: own(self.peers.state()),
            communities: own(self.communities.state()),
            bfd_profiles: own(self.bfd.state()),
        }
    }
}

/// Watches every configuration kind in `namespace`: the stores, and one trigger stream per kind.
pub(super) fn configuration(client: &Client, namespace: &str) -> (ConfigStores, Vec<Triggers>) {
    let mut streams = Vec::new();
    let mut kind = |triggers| streams.push(triggers);
    let stores = ConfigStores {
        pools: watch_kind(client, namespace, &mut kind),
        l2: watch_kind(client, namespace, &mut kind),
        bgp_adv: watch_kind(client, namespace, &mut kind),
        peers: watch_kind(client, namespace, &mut kind),
        communities: watch_kind(client, namespace, &mut kind),
        bfd: watch_kind(client, namespace, &mut kind),
    };
    (stores, streams)
}

/// One configuration kind: a reflector keeping its store, its events as triggers.
fn watch_kind<K>(client: &Client, namespace: &str, streams: &mut impl FnMut(Triggers)) -> Store<K>
where
    K: Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    let (store, writer) = reflector::store();
    let api = Api::<K>::namespaced(client.clone(), namespace);
    let kind = K::kind(&());
    streams(Box::pin(
        reflector::reflector(writer, watcher::watcher(api, watcher::Config::default()))
            .default_backoff()
            .filter_map(move |r| {
                let t = match r {
                    Ok(watcher::Event::InitDone) => Some(Trigger::Relist(true)),
                    Ok(watcher::Event::Init) => Some(Trigger::Relist(false)),
                    Ok(_) => Some(Trigger::Config(kind.clone())),
                    Err(e) => {
                        warn!(%kind, error = %e, "watch failed; retrying");
                        None
                    }
                };
                futures::future::ready(t)
            }),
    ));
    store
}

/// The Services the Controller reconciles. On the way, after the store has taken each event:
/// the claims follow every Service that asks for addresses or a pool, and each deleted
/// Service's key goes to `deleted` (the Controller only reconciles objects that exist).
pub(super) fn services(
    api: Api<Service>,
    writer: reflector::store::Writer<Service>,
    store: Store<Service>,
    lb_class: Option<String>,
    claims: Arc<Mutex<BTreeMap<ServiceKey, Rank>>>,
    deleted: UnboundedSender<ServiceKey>,
) -> impl Stream<Item = Result<Service, watcher::Error>> + Send + 'static {
    let note = move |e: &Result<watcher::Event<Service>, watcher::Error>| {
        let Ok(e) = e else { return };
        // A poisoned lock means a reconcile panicked while reading; the map itself is whole.
        let mut claims = claims.lock().unwrap_or_else(|p| p.into_inner());
        match e {
            watcher::Event::Apply(s) | watcher::Event::InitApply(s) => {
                let Some(key) = key_of(s) else { return };
                match claim_rank(s, lb_class.as_deref()) {
                    Some(rank) => claims.insert(key, rank),
                    None => claims.remove(&key),
                };
            }
            watcher::Event::Delete(s) => {
                if let Some(key) = key_of(s) {
                    claims.remove(&key);
                    let _ = deleted.unbounded_send(key);
                }
            }
            watcher::Event::Init => {}
            // A relist replaced the store, deletions included: claims are what it holds.
            watcher::Event::InitDone => {
                *claims = store
                    .state()
                    .iter()
                    .filter_map(|s| Some((key_of(s)?, claim_rank(s, lb_class.as_deref())?)))
                    .collect();
            }
        }
    };
    reflector::reflector(writer, watcher::watcher(api, watcher::Config::default()))
        .default_backoff()
        .inspect(note)
        .touched_objects()
}

/// The Namespaces, kept in the store the reconciles read labels from; each change reconciles
/// the Services in it (their requests carry its labels).
pub(super) fn namespaces(
    api: Api<Namespace>,
    writer: reflector::store::Writer<Namespace>,
) -> impl Stream<Item = Result<Namespace, watcher::Error>> + Send + 'static {
    reflector::reflector(writer, watcher::watcher(api, watcher::Config::default()))
        .default_backoff()
        .touched_objects()
}

/// The rank of a Service that claims specific addresses or a pool; `None` for the rest. The
/// claim does not depend on its namespace's labels, so none are needed here.
fn claim_rank(svc: &Service, lb_class: Option<&str>) -> Option<Rank> {
    if !wanted(svc, lb_class) {
        return None;
    }
    let request = crate::config::service::request_from_service(svc, &Default::default()).ok()?;
    decide::claim(&request)
}

/// `Stream::next` without waiting: `Some(item)` if one is ready.
pub(super) trait NowOrNever: Stream + Unpin {
    fn now_or_never_opt(&mut self) -> Option<Option<Self::Item>> {
        use futures::FutureExt;
        self.next().now_or_never()
    }
}

impl<S: Stream + Unpin> NowOrNever for S {}
