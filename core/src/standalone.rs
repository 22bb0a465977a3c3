//! Standalone mode: one controller member holding the configuration and Services of files, as
//! on a plain Linux host without Kubernetes. Files are read at start and on every reload.

use std::collections::BTreeSet;
use std::path::Path;

use tracing::{info, warn};

use crate::config::{self, service::requests_from_documents, ConfigErrors};
use crate::controller::member::ControllerMember;
use crate::ipam::Explanation;
use crate::names::ServiceKey;
use crate::raft::ProposeError;
use crate::service_sync::{self, Step};

/// What one read of the files did.
#[derive(Debug, Default)]
pub struct SyncReport {
    /// The configuration revision now in force.
    pub revision: u64,
    /// Each Service's allocation, and why.
    pub allocations: Vec<Explanation>,
    /// Services that left the files and were released.
    pub released: Vec<ServiceKey>,
    /// Problems with Service documents (those Services were left as they were).
    pub service_errors: Vec<String>,
}

/// Why the files could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The configuration is invalid; the one in force stays.
    #[error("the configuration is invalid; the one in force stays:\n{0}")]
    Invalid(ConfigErrors),
    /// Raft did not take a command.
    #[error(transparent)]
    Propose(#[from] ProposeError),
    /// The configuration was refused by the state machine.
    #[error("the configuration was refused: {0}")]
    Refused(String),
}

/// Applies the files at `path`: installs their configuration, allocates for their Services
/// (in the allocator's fixed order) and releases the Services in `managed` that the files no
/// longer hold. `managed` is updated to the Services now in the files.
pub async fn sync_files(
    node: &ControllerMember,
    path: &Path,
    managed: &mut BTreeSet<ServiceKey>,
) -> Result<SyncReport, SyncError> {
    let (docs, config) = config::load_config(path).map_err(SyncError::Invalid)?;
    let (requests, errors) = requests_from_documents(&docs, &config);
    let mut report = SyncReport {
        service_errors: errors.iter().map(|e| e.to_string()).collect(),
        ..SyncReport::default()
    };
    let (revision, recheck) = node
        .proposer
        .set_config(config)
        .await?
        .map_err(SyncError::Refused)?;
    report.revision = revision;
    for (k, why) in &recheck.forbidden {
        warn!(service = %k, reason = %why, "allocation no longer allowed; moving it");
    }
    let now: BTreeSet<ServiceKey> = requests.iter().map(|r| r.service.clone()).collect();
    // Services with a problem keep what they hold: they are still in the files.
    let broken: BTreeSet<String> = errors.iter().map(|e| e.name.clone()).collect();
    let gone: Vec<ServiceKey> = managed
        .iter()
        .filter(|k| !now.contains(*k) && !broken.contains(&k.to_string()))
        .cloned()
        .collect();
    let held: BTreeSet<ServiceKey> = {
        let state = node.state.read().await;
        state
            .allocator
            .allocations()
            .map(|(k, _)| k.clone())
            .collect()
    };
    for step in service_sync::plan(requests, gone, |k| held.contains(k)) {
        match step {
            Step::Release(service) => {
                node.proposer.release(service.clone()).await?;
                info!(service = %service, "released: no longer in the files");
                report.released.push(service);
            }
            Step::Allocate(request) => {
                let e = node.proposer.allocate(*request).await.inspect_err(|_| {
                    node.metrics.allocation_failed("error");
                })?;
                match &e.outcome {
                    Ok(_) => info!(service = %e.service, "{e}"),
                    Err(_) => {
                        node.metrics.allocation_failed("refused");
                        warn!(service = %e.service, "{e}")
                    }
                }
                report.allocations.push(e);
            }
        }
    }
    *managed = now;
    Ok(report)
}
