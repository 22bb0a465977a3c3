//! What the reconciler writes back: a Service's ingress addresses and annotation, the pools' status, and events.

use super::*;

impl Reconciler {
    /// Makes the Service show `allocation` (or nothing of ours): its status ingress and the
    /// pool annotation. Writes only what differs ([`decide::service_writes`]). Returns whether
    /// it wrote.
    pub(super) async fn write_service(
        &self,
        svc: &Service,
        allocation: Option<(&crate::names::PoolName, &Vec<IpAddr>)>,
    ) -> Result<bool, ServiceError> {
        let Some(ns) = svc.namespace() else {
            return Ok(false);
        };
        let name = svc.name_any();
        let api: Api<Service> = Api::namespaced(self.client.clone(), &ns);
        let pp = PatchParams::apply(FIELD_MANAGER).force();
        let annotations = svc.metadata.annotations.clone().unwrap_or_default();
        let writes = decide::service_writes(
            &ingress_ips(svc),
            annotations.get(POOL_ANNOTATION).map(String::as_str),
            allocation.map(|(p, a)| (p, a.as_slice())),
        );
        if let Some(want) = &writes.ingress {
            let ingress: Vec<serde_json::Value> = want
                .iter()
                .map(|a| json!({"ip": a.to_string(), "ipMode": "VIP"}))
                .collect();
            let body = json!({
                "apiVersion": "v1",
                "kind": "Service",
                "status": {"loadBalancer": {"ingress": ingress}},
            });
            self.count_write(api.patch_status(&name, &pp, &Patch::Apply(&body)).await)
                .map_err(|source| ServiceError::Api {
                    what: "writing the Service's status",
                    source,
                })?;
        }
        if let Some(pool) = &writes.pool_annotation {
            let body = json!({
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": name, "annotations": {POOL_ANNOTATION: pool}},
            });
            self.count_write(api.patch(&name, &pp, &Patch::Apply(&body)).await)
                .map_err(|source| ServiceError::Api {
                    what: "annotating the Service",
                    source,
                })?;
        }
        Ok(!writes.is_empty())
    }

    pub(super) async fn write_pool_status(&self) {
        let mut written = self.written.lock().await;
        let stats = self.state.read().await.allocator.stats();
        let api: Api<IPAddressPool> = Api::namespaced(self.client.clone(), &self.cfg.namespace);
        let pp = PatchParams::apply(FIELD_MANAGER).force();
        for pool in self.config.pools.state() {
            let name = pool.name_any();
            let Some(s) = stats
                .iter()
                .find(|(n, _)| n.as_str() == name)
                .map(|(_, s)| s)
            else {
                continue;
            };
            let count = |x: u128| i64::try_from(x).unwrap_or(i64::MAX);
            let (v4, v6) = (s.family(Family::V4), s.family(Family::V6));
            let status = IPAddressPoolStatus {
                assigned_ipv4: count(v4.in_use),
                available_ipv4: count(v4.available),
                assigned_ipv6: count(v6.in_use),
                available_ipv6: count(v6.available),
            };
            if pool.status.as_ref() == Some(&status) || written.pools.get(&name) == Some(&status) {
                continue;
            }
            let body = json!({
                "apiVersion": kinds::API_VERSION,
                "kind": "IPAddressPool",
                "status": status,
            });
            match self.count_write(api.patch_status(&name, &pp, &Patch::Apply(&body)).await) {
                Ok(_) => {
                    written.pools.insert(name, status);
                }
                Err(e) => warn!(pool = %name, error = %e, "cannot write the pool's status"),
            }
        }
    }

    /// Counts a write to the API server, done or failed, and passes its result on.
    pub(super) fn count_write<T>(&self, r: Result<T, kube::Error>) -> Result<T, kube::Error> {
        match &r {
            Ok(_) => self.metrics.k8s.status_writes.inc(),
            Err(_) => self.metrics.k8s.status_write_failures.inc(),
        };
        r
    }

    pub(super) async fn event(
        &self,
        svc: &Service,
        type_: EventType,
        reason: &str,
        action: &str,
        note: String,
    ) {
        let note: String = note.chars().take(1000).collect();
        let ev = Event {
            type_,
            reason: reason.into(),
            note: Some(note),
            action: action.into(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&ev, &svc.object_ref(&())).await {
            warn!(error = %e, "cannot record an Event");
        }
    }
}
