//! The housekeeping loop beside the Controller: the configuration objects into one
//! configuration through Raft (and every Service reconciled when it changes), adoption at
//! start, releases of deleted Services, and the pools' status.

use futures::channel::mpsc::{UnboundedReceiver, UnboundedSender};
use futures::Stream;

use super::*;

/// How often at most the pools' status is written while allocations change.
const POOL_STATUS_EVERY: Duration = Duration::from_secs(1);

impl Reconciler {
    /// Runs until a configuration watch ends for good. Nothing is decided before every kind
    /// has been listed once: a half-read configuration would look invalid, and a half-read
    /// Service list would release addresses.
    pub(super) async fn housekeeping(
        self: Arc<Self>,
        mut config: impl Stream<Item = Trigger> + Unpin,
        kinds: usize,
        mut deleted: UnboundedReceiver<ServiceKey>,
        ready: signal::Sender<bool>,
        reconcile_all: UnboundedSender<()>,
    ) -> Result<(), ReconcileError> {
        let mut listed = 0usize;
        while listed < kinds {
            match config.next().await {
                Some(Trigger::Relist(true)) => listed += 1,
                Some(_) => {}
                None => return Err(ReconcileError::WatchEnded("configuration")),
            }
        }
        for store in [
            self.services.wait_until_ready().await,
            self.namespaces.wait_until_ready().await,
        ] {
            store.map_err(|_| ReconcileError::WatchEnded("Service"))?;
        }
        info!(namespace = %self.cfg.namespace, "reconciler has read the cluster; reconciling");
        self.sync_config().await;
        self.adopt().await;
        self.release_gone().await;
        let _ = ready.send(true);
        let mut resync = tokio::time::interval(self.cfg.resync);
        resync.tick().await;
        loop {
            tokio::select! {
                t = config.next() => {
                    let Some(t) = t else {
                        return Err(ReconcileError::WatchEnded("configuration"));
                    };
                    if let Trigger::Config(kind) = t {
                        tracing::debug!(%kind, "a configuration object changed");
                    }
                    // Take whatever else is already waiting, so one burst is one check.
                    while let Some(Some(_)) = config.now_or_never_opt() {}
                    if self.sync_config().await {
                        let _ = reconcile_all.unbounded_send(());
                    }
                }
                Some(key) = deleted.next() => {
                    self.release_if_gone(&key).await;
                }
                _ = resync.tick() => {
                    if self.sync_config().await {
                        let _ = reconcile_all.unbounded_send(());
                    }
                    self.release_gone().await;
                }
                () = self.changed.notified() => {
                    self.write_pool_status().await;
                    tokio::time::sleep(POOL_STATUS_EVERY).await;
                }
            }
        }
    }

    /// Releases `key`'s addresses if its Service no longer exists.
    async fn release_if_gone(&self, key: &ServiceKey) {
        if self.service(key).is_some() {
            return;
        }
        let held = self.state.read().await.allocator.allocation(key).cloned();
        if held.is_none() {
            return;
        }
        match self.ensure_released(key, None, held).await {
            Ok(_) => {
                self.metrics.k8s.reconciled("changed");
                self.changed.notify_one();
            }
            Err(e) => {
                warn!(service = %key, error = %e, "cannot release a deleted Service's addresses; retrying at the next resync")
            }
        }
    }

    /// Releases every allocation whose Service no longer exists (deleted while no member led,
    /// or while a watch was down).
    async fn release_gone(&self) {
        for key in self.held_keys().await {
            self.release_if_gone(&key).await;
        }
    }

    /// Records, for every Service showing addresses in its status that Raft does not know,
    /// those addresses as its allocation.
    async fn adopt(&self) {
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
}
