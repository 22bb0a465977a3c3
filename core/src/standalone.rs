//! Configuration and Services from files, as on plain Linux hosts without Kubernetes: the one
//! place that turns files into commands, for `ironlb standalone` (one member) and for the
//! members of a cluster started with files (see [`crate::controller::files`]).
//!
//! [`load`] reads and validates (every member does, so a bad file is reported everywhere);
//! [`apply`] proposes what was read (only the leader does); [`sync_files`] is both at once.

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};

use tracing::{info, warn};

use crate::config::model::Config;
use crate::config::{self, service::requests_from_documents, ConfigError, ConfigErrors};
use crate::controller::member::ControllerMember;
use crate::ipam::{AllocationRequest, Explanation};
use crate::metrics::controller::Metrics;
use crate::names::ServiceKey;
use crate::raft::{ProposeError, Proposer, SharedState};
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

/// A fingerprint of what files ask for (their configuration and Service requests, not their
/// bytes): equal on two members whose files say the same, whatever their comments or layout.
/// FNV-1a, so that it is the same whichever build computes it; it detects differences, it
/// does not resist forgery.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Digest(u64);

impl Digest {
    /// The FNV-1a hash of `bytes`.
    fn of(bytes: &[u8]) -> Self {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        Digest(h)
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// What the files ask for: a valid configuration and a request for each Service.
#[derive(Clone, Debug)]
pub struct Desired {
    /// The configuration.
    pub config: Config,
    /// One request per Service, by key.
    pub requests: Vec<AllocationRequest>,
    /// Service documents with a problem: they get no request and keep what they hold.
    pub service_errors: Vec<ConfigError>,
    /// The fingerprint of `config` and `requests`.
    pub digest: Digest,
}

/// Reads and validates the files (each a file or a directory of YAML files; their documents
/// are taken together), without proposing anything.
pub fn load<P: AsRef<Path>>(paths: &[P]) -> Result<Desired, SyncError> {
    let (docs, config) = config::load_configs(paths).map_err(SyncError::Invalid)?;
    let (mut requests, service_errors) = requests_from_documents(&docs, &config);
    requests.sort_by(|a, b| a.service.cmp(&b.service));
    // Serializing plain data into a Vec cannot fail; an empty text would only make two
    // members' digests agree, never a bad file pass.
    let canonical = serde_json::to_vec(&(&config, &requests)).unwrap_or_default();
    Ok(Desired {
        digest: Digest::of(&canonical),
        config,
        requests,
        service_errors,
    })
}

/// Where the files' commands go: a member's proposer, its applied state and its metrics.
#[derive(Clone, Copy)]
pub struct Target<'a> {
    /// Proposes through the member (it must lead).
    pub proposer: &'a Proposer,
    /// The member's applied state.
    pub state: &'a SharedState,
    /// The member's metrics.
    pub metrics: &'a Metrics,
}

impl<'a> From<&'a ControllerMember> for Target<'a> {
    fn from(node: &'a ControllerMember) -> Self {
        Target {
            proposer: &node.proposer,
            state: &node.state,
            metrics: &node.metrics,
        }
    }
}

/// The Services holding addresses now: where a new leader (or a restarted standalone) starts
/// `managed` from, so that a Service removed from the files while it was not leading is still
/// released.
pub async fn held_services(state: &SharedState) -> BTreeSet<ServiceKey> {
    let state = state.read().await;
    state
        .allocator
        .allocations()
        .map(|(k, _)| k.clone())
        .collect()
}

/// Applies what the files ask for: installs their configuration (unless it is the one in
/// force), allocates for their Services (in the allocator's fixed order) and releases the
/// Services in `managed` that the files no longer hold. `managed` is updated to the Services
/// now in the files.
#[tracing::instrument(skip_all, fields(digest = %desired.digest))]
pub async fn apply(
    target: Target<'_>,
    desired: &Desired,
    managed: &mut BTreeSet<ServiceKey>,
) -> Result<SyncReport, SyncError> {
    let mut report = SyncReport {
        service_errors: desired
            .service_errors
            .iter()
            .map(|e| e.to_string())
            .collect(),
        ..SyncReport::default()
    };
    let (in_force, revision) = {
        let state = target.state.read().await;
        (state.config.clone(), state.config_revision)
    };
    report.revision = revision;
    // The same configuration again would only bump the revision.
    if in_force.as_ref() != Some(&desired.config) {
        let (revision, recheck) = target
            .proposer
            .set_config(desired.config.clone())
            .await?
            .map_err(SyncError::Refused)?;
        report.revision = revision;
        for (k, why) in &recheck.forbidden {
            warn!(service = %k, reason = %why, "allocation no longer allowed; moving it");
        }
    }
    let now: BTreeSet<ServiceKey> = desired.requests.iter().map(|r| r.service.clone()).collect();
    // Services with a problem keep what they hold: they are still in the files.
    let broken: BTreeSet<&str> = desired
        .service_errors
        .iter()
        .map(|e| e.name.as_str())
        .collect();
    let gone: Vec<ServiceKey> = managed
        .iter()
        .filter(|k| !now.contains(*k) && !broken.contains(k.to_string().as_str()))
        .cloned()
        .collect();
    let held = held_services(target.state).await;
    let steps = service_sync::plan(desired.requests.clone(), gone, |k| held.contains(k));
    for step in steps {
        run_step(target, step, &mut report).await?;
    }
    *managed = now;
    Ok(report)
}

/// Proposes one step of a pass and notes its outcome in `report`.
async fn run_step(
    target: Target<'_>,
    step: Step,
    report: &mut SyncReport,
) -> Result<(), SyncError> {
    match step {
        Step::Release(service) => {
            target.proposer.release(service.clone()).await?;
            info!(service = %service, "released: no longer in the files");
            report.released.push(service);
        }
        Step::Allocate(request) => {
            let e = target
                .proposer
                .allocate(*request)
                .await
                .inspect_err(|_| target.metrics.allocation_failed("error"))?;
            match &e.outcome {
                Ok(_) => info!(service = %e.service, "{e}"),
                Err(_) => {
                    target.metrics.allocation_failed("refused");
                    warn!(service = %e.service, "{e}")
                }
            }
            report.allocations.push(e);
        }
    }
    Ok(())
}

/// Reads the files at `path` and applies them through `node` ([`load`], then [`apply`]).
pub async fn sync_files(
    node: &ControllerMember,
    path: &Path,
    managed: &mut BTreeSet<ServiceKey>,
) -> Result<SyncReport, SyncError> {
    let desired = load(&[path])?;
    apply(Target::from(node), &desired, managed).await
}

/// The files of a member started with `--config-file` and `--services-file`: the paths, in
/// the order their documents are taken.
pub fn paths(config: Option<PathBuf>, services: Option<PathBuf>) -> Vec<PathBuf> {
    config.into_iter().chain(services).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const POOL: &str = "apiVersion: ironlb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: p}\nspec: {addresses: [192.0.2.10/32]}\n";
    const SERVICE: &str = "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: default}\nspec: {type: LoadBalancer, ports: [{port: 80}]}\n";

    #[test]
    fn the_digest_follows_what_the_files_say_not_how() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.yaml"), dir.path().join("b.yaml"));
        std::fs::write(&a, format!("{POOL}---\n{SERVICE}")).unwrap();
        std::fs::write(
            &b,
            format!("# the same, said otherwise\n{POOL}---\n{SERVICE}\n\n"),
        )
        .unwrap();
        let (da, db) = (load(&[&a]).unwrap(), load(&[&b]).unwrap());
        assert_eq!(da.digest, db.digest);
        assert_eq!(da.requests.len(), 1);
        // A configuration file and a Services file read together say the same as one file.
        let (pools, services) = (dir.path().join("pools"), dir.path().join("services.yaml"));
        std::fs::create_dir(&pools).unwrap();
        std::fs::write(pools.join("p.yaml"), POOL).unwrap();
        std::fs::write(&services, SERVICE).unwrap();
        assert_eq!(
            load(&paths(Some(pools), Some(services))).unwrap().digest,
            da.digest
        );
        std::fs::write(&b, POOL.replace("/32", "/31")).unwrap();
        assert_ne!(load(&[&b]).unwrap().digest, da.digest);
        std::fs::write(&b, POOL.replace("192.0.2.10/32", "nonsense")).unwrap();
        assert!(matches!(load(&[&b]), Err(SyncError::Invalid(_))));
    }
}
