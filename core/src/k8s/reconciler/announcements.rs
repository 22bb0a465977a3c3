//! The announcement reports, a task beside housekeeping: the ServiceL2Status and
//! ServiceBGPStatus objects made to match what the leader last told each node to announce
//! (`controller::announced`), and an Event on a Service whose Layer 2 node changes.
//!
//! The objects it holds are listed once at start (and again at every resync, to see what
//! someone else deleted); each new summary is turned into the objects it calls for
//! ([`plan::desired`]), and only the differences are written ([`plan::plan`]). Kubernetes
//! garbage-collects an object with its Service (owner reference); this task deletes the ones
//! no longer announced.

use std::collections::BTreeMap;

use kube::api::{ApiResource, DeleteParams, DynamicObject, ListParams};
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::Instrument;

use super::*;
use crate::controller::announced::Announcements;
use crate::k8s::status_kinds::{ServiceBGPStatus, ServiceL2Status};

pub mod plan;
#[cfg(test)]
mod tests;

use plan::{Kind, ObjectKey, Placement, StatusObject, Write};

/// How long a new leader keeps objects its summary lacks: the speakers are still reconnecting
/// to it, and a summary without them would delete every report only to write it again.
const SETTLE: Duration = Duration::from_secs(10);
/// How soon a pass that could not do everything (a write failed, a Service not yet in the
/// store, deletions held back) is tried again.
const RETRY: Duration = Duration::from_secs(3);

/// What the task keeps between passes.
struct Reports {
    /// The objects in the cluster, as listed and then as written.
    have: BTreeMap<ObjectKey, StatusObject>,
    /// Where each Service's Layer 2 addresses were last answered for, for the Events.
    placed: Placement,
    /// When this leader's task started.
    started: Instant,
}

impl Reconciler {
    /// Runs until the member stops (the caller stops it when this member stops leading).
    pub(super) async fn announcements(
        self: Arc<Self>,
        mut announced: watch::Receiver<Arc<Announcements>>,
    ) -> Result<(), ReconcileError> {
        self.wait_ready().await;
        let mut st = Reports {
            have: self.list_reports_until_listed().await,
            placed: Placement::new(),
            started: Instant::now(),
        };
        let mut resync = tokio::time::interval(self.cfg.resync);
        resync.tick().await;
        loop {
            let summary = announced.borrow_and_update().clone();
            let again = self.report(&summary, &mut st).await;
            tokio::select! {
                r = announced.changed() => {
                    if r.is_err() {
                        // The member is going away; the other tasks end the reconciler.
                        std::future::pending::<()>().await;
                    }
                }
                _ = resync.tick() => {
                    if let Ok(have) = self.list_reports().await {
                        st.have = have;
                    }
                }
                () = tokio::time::sleep(RETRY), if again => {}
            }
        }
    }

    /// One pass: Events for the Layer 2 nodes that changed, then the objects' writes. Returns
    /// whether it should be tried again soon.
    async fn report(&self, summary: &Announcements, st: &mut Reports) -> bool {
        // A summary from before the publisher knew it leads says nothing about the cluster.
        if !summary.leading {
            return false;
        }
        let uids = self.service_uids(summary);
        let missing = summary
            .l2
            .keys()
            .chain(summary.bgp.keys())
            .any(|k| !uids.contains_key(k));
        self.announce_node_changes(summary, st).await;
        let want = plan::desired(summary, &uids);
        let settling = st.started.elapsed() < SETTLE;
        let writes = plan::plan(&want, &st.have, !settling);
        let held_back = settling && st.have.keys().any(|k| !want.contains_key(k));
        let mut failed = false;
        for w in &writes {
            failed |= !self.write_report(w, &want, &mut st.have).await;
        }
        failed || missing || held_back
    }

    /// The uid of every Service in `summary` that the store holds.
    fn service_uids(&self, summary: &Announcements) -> BTreeMap<ServiceKey, String> {
        summary
            .l2
            .keys()
            .chain(summary.bgp.keys())
            .filter_map(|k| {
                let uid = self.service(k)?.metadata.uid.clone()?;
                Some((k.clone(), uid))
            })
            .collect()
    }

    /// An Event on each Service whose Layer 2 addresses a node answers for now that did not
    /// before: `AnnouncingNodeChanged` when another node did, `AnnouncingNodeAssigned` when
    /// none did.
    async fn announce_node_changes(&self, summary: &Announcements, st: &mut Reports) {
        for c in plan::node_changes(&st.placed, &st.have, summary) {
            let Some(svc) = self.service(&c.service) else {
                continue;
            };
            let addresses = join(&c.addresses);
            let (reason, note) = match &c.from {
                Some(from) => (
                    "AnnouncingNodeChanged",
                    format!("{addresses} announced from node {} (was node {from})", c.to),
                ),
                None => (
                    "AnnouncingNodeAssigned",
                    format!("{addresses} announced from node {}", c.to),
                ),
            };
            info!(service = %c.service, node = %c.to, from = ?c.from.as_ref().map(|n| n.to_string()), %addresses, "{reason}");
            self.event(&svc, EventType::Normal, reason, "Announce", note)
                .await;
        }
        plan::place(&mut st.placed, summary);
        // Forget the Services that are gone, so the map does not grow for ever.
        st.placed.retain(|k, _| self.service(k).is_some());
    }

    /// Carries out one write, keeping `have` as the cluster now is. Returns whether it
    /// succeeded.
    async fn write_report(
        &self,
        w: &Write,
        want: &BTreeMap<ObjectKey, StatusObject>,
        have: &mut BTreeMap<ObjectKey, StatusObject>,
    ) -> bool {
        let k = w.key();
        let report = want.get(k).or(have.get(k)).and_then(|o| o.report.as_ref());
        let span = tracing::info_span!(
            "status_object",
            object = %k.name,
            service = report.map(plan::Report::service).unwrap_or_default(),
            node = report.map(plan::Report::node).unwrap_or_default(),
        );
        let result = self.write_one(w, k, want).instrument(span.clone()).await;
        let _entered = span.enter();
        match result {
            Ok(()) => {
                match (w, want.get(k)) {
                    (Write::Delete(_), _) => {
                        have.remove(k);
                    }
                    (_, Some(o)) => {
                        have.insert(k.clone(), o.clone());
                    }
                    (_, None) => {}
                }
                true
            }
            Err(e) => {
                if matches!(&e, kube::Error::Api(s) if s.code == 404) {
                    // Gone (collected with a Service made again under its name): the next
                    // pass creates it anew.
                    have.remove(k);
                }
                warn!(error = %e, write = ?w, "cannot write an announcement status object");
                false
            }
        }
    }

    /// The API calls of one write, each counted.
    async fn write_one(
        &self,
        w: &Write,
        k: &ObjectKey,
        want: &BTreeMap<ObjectKey, StatusObject>,
    ) -> Result<(), kube::Error> {
        let api = self.report_api(k);
        let pp = PatchParams::apply(FIELD_MANAGER).force();
        let kind = kind_name(k.kind);
        let obj = want.get(k);
        if let (Write::Apply(_), Some(o)) = (w, obj) {
            let body = json!({
                "apiVersion": kinds::API_VERSION,
                "kind": kind,
                "metadata": {
                    "name": k.name,
                    "namespace": k.namespace,
                    "labels": o.labels,
                    "ownerReferences": o.owners,
                },
                "spec": {},
            });
            self.count_write(api.patch(&k.name, &pp, &Patch::Apply(&body)).await)?;
            tracing::debug!("object written");
        }
        if let (Write::Apply(_) | Write::Status(_), Some(o)) = (w, obj) {
            let status = match &o.report {
                Some(plan::Report::L2(s)) => serde_json::to_value(s),
                Some(plan::Report::Bgp(s)) => serde_json::to_value(s),
                None => Ok(serde_json::Value::Null),
            }
            .map_err(kube::Error::SerdeError)?;
            let body = json!({"apiVersion": kinds::API_VERSION, "kind": kind, "status": status});
            self.count_write(api.patch_status(&k.name, &pp, &Patch::Apply(&body)).await)?;
            tracing::debug!("status written");
        }
        if let Write::Delete(_) = w {
            match api.delete(&k.name, &DeleteParams::background()).await {
                // Kubernetes collected it first (its Service is gone): what was wanted.
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                r => {
                    self.count_write(r.map(|_| ()))?;
                }
            }
            tracing::debug!("object deleted");
        }
        Ok(())
    }

    fn report_api(&self, k: &ObjectKey) -> Api<DynamicObject> {
        let ar = match k.kind {
            Kind::L2 => ApiResource::erase::<ServiceL2Status>(&()),
            Kind::Bgp => ApiResource::erase::<ServiceBGPStatus>(&()),
        };
        Api::namespaced_with(self.client.clone(), &k.namespace, &ar)
    }

    /// Lists the objects, retrying until it can (the CRDs may not be installed yet).
    async fn list_reports_until_listed(&self) -> BTreeMap<ObjectKey, StatusObject> {
        let mut wait = Duration::from_secs(1);
        loop {
            match self.list_reports().await {
                Ok(have) => return have,
                Err(e) => {
                    warn!(error = %e, "cannot list the ServiceL2Status and ServiceBGPStatus objects (are the CRDs installed?); retrying")
                }
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_secs(30));
        }
    }

    /// Every object of both kinds the controller wrote, in every namespace.
    async fn list_reports(&self) -> Result<BTreeMap<ObjectKey, StatusObject>, kube::Error> {
        let lp = ListParams::default().labels(&format!(
            "{}={}",
            plan::MANAGED_BY_LABEL,
            plan::MANAGED_BY
        ));
        let l2 = Api::<ServiceL2Status>::all(self.client.clone())
            .list(&lp)
            .await?;
        let bgp = Api::<ServiceBGPStatus>::all(self.client.clone())
            .list(&lp)
            .await?;
        Ok(l2
            .items
            .iter()
            .map(StatusObject::from_l2)
            .chain(bgp.items.iter().map(StatusObject::from_bgp))
            .collect())
    }
}

fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::L2 => "ServiceL2Status",
        Kind::Bgp => "ServiceBGPStatus",
    }
}
