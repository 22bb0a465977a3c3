//! One Service's reconcile, as the Controller runs it: claims first, then the Service's own
//! allocation or release through Raft and what its status must show; the error policy that
//! retries a failed Service on its own backoff.

use kube::runtime::controller::Action;
use tokio::time::Instant;

use super::*;

/// The Controller's reconcile of one Service.
pub(super) async fn reconcile(
    svc: Arc<Service>,
    r: Arc<Reconciler>,
) -> Result<Action, ServiceError> {
    r.wait_ready().await;
    let Some(key) = key_of(&svc) else {
        return Ok(Action::await_change());
    };
    r.serve_claims_before(&key).await;
    let changed = r.reconcile_key(&key).await?;
    r.succeeded(&key, changed);
    Ok(Action::requeue(r.cfg.resync))
}

/// The Controller's answer to a failed reconcile: this Service again after its own backoff.
pub(super) fn error_policy(svc: Arc<Service>, error: &ServiceError, r: Arc<Reconciler>) -> Action {
    match key_of(&svc) {
        Some(key) => Action::requeue(r.failed(&key, error)),
        None => Action::await_change(),
    }
}

impl Reconciler {
    /// Waits until the configuration is installed and the Services' addresses adopted.
    pub(super) async fn wait_ready(&self) {
        let mut ready = self.ready.clone();
        // The sender lives as long as the housekeeping loop, which outlives every reconcile.
        let _ = ready.wait_for(|r| *r).await;
    }

    fn succeeded(&self, key: &ServiceKey, changed: bool) {
        self.backoff_mut().succeeded(key);
        self.metrics
            .k8s
            .reconciled(if changed { "changed" } else { "unchanged" });
        if changed {
            self.changed.notify_one();
        }
    }

    /// Counts the failure and returns how long to wait before trying `key` again.
    fn failed(&self, key: &ServiceKey, error: &ServiceError) -> Duration {
        let now = Instant::now();
        let (retry, attempts) = {
            let mut b = self.backoff_mut();
            let retry = b.failed(key, now);
            (retry, b.attempts(key))
        };
        let wait = retry.saturating_duration_since(now);
        warn!(service = %key, %error, attempts, retry_in_ms = wait.as_millis() as u64, "reconcile failed");
        self.metrics.k8s.reconciled(error.label());
        wait
    }

    fn backoff_mut(&self) -> std::sync::MutexGuard<'_, Backoff> {
        // Only the counters are behind the lock; a panic elsewhere leaves them usable.
        self.backoff.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The order of one pass, across reconciles: before a Service that takes any address (or
    /// any of a pool) allocates, the Services that asked for specific addresses (or a pool)
    /// and hold nothing yet get theirs, so it cannot take what they asked for.
    async fn serve_claims_before(&self, key: &ServiceKey) {
        let Some(svc) = self.service(key) else { return };
        if !self.wanted(&svc) {
            return;
        }
        let labels = self.namespace_labels(key.namespace().as_str());
        let Ok(request) = request_from_service(&svc, &labels) else {
            return;
        };
        let first = {
            let state = self.state.read().await;
            let mine = crate::ipam::rank(Some(&request), state.allocator.allocation(key).is_some());
            let claims = self
                .claims
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
            let backoff = self.backoff_mut();
            decide::claims_before(
                mine,
                key,
                &claims,
                |k| state.allocator.allocation(k).is_some(),
                |k| backoff.attempts(k) > 0,
            )
        };
        for claim in first {
            tracing::debug!(service = %key, claim = %claim, "serving a claim first");
            match self.reconcile_key(&claim).await {
                Ok(changed) => self.succeeded(&claim, changed),
                Err(e) => {
                    self.failed(&claim, &e);
                }
            }
        }
    }

    /// Makes `key` hold what its Service asks for, or nothing if it is gone or not ours.
    /// Returns whether anything changed.
    async fn reconcile_key(&self, key: &ServiceKey) -> Result<bool, ServiceError> {
        let svc = self.service(key);
        let held = self.state.read().await.allocator.allocation(key).cloned();
        match svc {
            Some(svc) if self.wanted(&svc) => self.ensure_allocated(key, &svc, held).await,
            svc => self.ensure_released(key, svc.as_deref(), held).await,
        }
    }

    async fn ensure_allocated(
        &self,
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
                        // The allocator refused: no pool, exhausted, or a conflict.
                        self.metrics.allocation_failed("refused");
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
                Err(e) => {
                    // Not committed: no leader, no quorum, a timeout.
                    self.metrics.allocation_failed("error");
                    return Err(e.into());
                }
            },
        };
        let wrote = self.write_service(svc, Some((&pool, &addresses))).await?;
        Ok(changed || wrote)
    }

    pub(super) async fn ensure_released(
        &self,
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
