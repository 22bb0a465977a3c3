//! The sequential model of the allocation workload: ironlb's own pure allocator (`ipam`), fed the
//! configuration the cluster was given and the Service manifests the clients sent, turned into
//! requests exactly as the admin API turns them.

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::net::IpAddr;

use ironlb::config::{self, Config, Documents};
use ironlb::ipam::{Allocation, AllocationRequest, Allocator};
use ironlb::names::{PoolName, ServiceKey};
use k8s_openapi::api::core::v1::Service;

use super::linear::Model;

/// Why the model cannot be built, or a request cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The configuration does not validate (it was accepted by the cluster, so this is a bug in
    /// the run or a changed validator).
    #[error("the configuration: {0}")]
    Config(String),
    /// A Service manifest in the history is not one the admin API would accept.
    #[error("Service manifest of {service}: {why}")]
    Manifest {
        /// Which.
        service: String,
        /// Why.
        why: String,
    },
}

/// The allocator's state, compared and hashed by a digest of its contents.
#[derive(Clone, Debug)]
pub struct AllocState {
    /// Shared: most steps (reads, refusals) leave the state as it is.
    alloc: std::sync::Arc<Allocator>,
    digest: u128,
}

impl AllocState {
    fn new(alloc: Allocator) -> Self {
        let digest = alloc
            .allocations()
            .fold(0u128, |d, (k, a)| d.wrapping_add(entry_digest(k, a)));
        Self {
            alloc: std::sync::Arc::new(alloc),
            digest,
        }
    }

    /// The state after `key`'s allocation changed from `before` to what `next` holds: the
    /// digest is a sum over allocations, so only the changed one is hashed again.
    fn changed(&self, next: Allocator, key: &ServiceKey, before: Option<&Allocation>) -> Self {
        let mut digest = self.digest;
        if let Some(b) = before {
            digest = digest.wrapping_sub(entry_digest(key, b));
        }
        if let Some(a) = next.allocation(key) {
            digest = digest.wrapping_add(entry_digest(key, a));
        }
        Self {
            alloc: std::sync::Arc::new(next),
            digest,
        }
    }

    /// Every Service's addresses, sorted.
    pub fn services(&self) -> BTreeMap<ServiceKey, Vec<IpAddr>> {
        self.alloc
            .allocations()
            .map(|(k, a)| (k.clone(), sorted(a.addresses.clone())))
            .collect()
    }
}

/// A 128-bit hash of one allocation (the Service, its addresses and its request): the state's
/// digest is their sum, since the allocator's other indexes follow from its allocations.
fn entry_digest(key: &ServiceKey, a: &Allocation) -> u128 {
    let bytes =
        bincode::serde::encode_to_vec((key, a), bincode::config::standard()).unwrap_or_default();
    let half = |salt: u64| {
        let mut h = std::hash::DefaultHasher::new();
        h.write_u64(salt);
        h.write(&bytes);
        h.finish()
    };
    (u128::from(half(1)) << 64) | u128::from(half(2))
}

impl PartialEq for AllocState {
    fn eq(&self, other: &Self) -> bool {
        self.digest == other.digest
    }
}

impl Eq for AllocState {}

impl Hash for AllocState {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.digest.hash(state);
    }
}

/// What a client asked.
#[derive(Clone, Debug, PartialEq)]
pub enum AllocInput {
    /// Allocate for this request.
    Allocate(Box<AllocationRequest>),
    /// Release this Service.
    Release(ServiceKey),
    /// Read the Services (of the scope being checked).
    Read,
}

/// What the cluster answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AllocOutput {
    /// These addresses.
    Allocated(Vec<IpAddr>),
    /// The allocation was refused (and changed nothing).
    Refused,
    /// The Service held these addresses (`None`: nothing).
    Released(Option<Vec<IpAddr>>),
    /// Every Service of the scope, with its addresses.
    Read(BTreeMap<ServiceKey, Vec<IpAddr>>),
}

/// The allocator under one configuration.
#[derive(Clone, Debug)]
pub struct AllocModel {
    config: Config,
}

impl AllocModel {
    /// The model of a cluster given these configuration documents (YAML).
    pub fn new(config_yaml: &str) -> Result<Self, ModelError> {
        let loaded = Documents::from_str(config_yaml, "configuration");
        if let Some(e) = loaded.errors.first() {
            return Err(ModelError::Config(e.to_string()));
        }
        let config = config::validate(&loaded.documents).map_err(|errs| {
            ModelError::Config(
                errs.iter()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
                    .join("; "),
            )
        })?;
        Ok(Self { config })
    }

    /// The state before anything is allocated.
    pub fn init(&self) -> Result<AllocState, ModelError> {
        let alloc = Allocator::with_pools(self.config.pool_specs())
            .map_err(|e| ModelError::Config(e.to_string()))?;
        Ok(AllocState::new(alloc))
    }

    /// The request the admin API makes of a Service manifest.
    pub fn request(&self, service: &str, manifest: &str) -> Result<AllocationRequest, ModelError> {
        let bad = |why: String| ModelError::Manifest {
            service: service.to_string(),
            why,
        };
        let svc: Service = serde_yaml::from_str(manifest).map_err(|e| bad(e.to_string()))?;
        let ns = svc
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let labels = self
            .config
            .namespaces
            .iter()
            .find(|(n, _)| n.as_str() == ns)
            .map(|(_, l)| l.clone())
            .unwrap_or_default();
        config::service::request_from_service(&svc, &labels).map_err(|errs| {
            bad(errs
                .iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("; "))
        })
    }

    /// The pool a request can only ever draw from: the one it names, or the one holding the
    /// addresses it names. `None` if it may draw from several.
    pub fn home_pool(&self, request: &AllocationRequest) -> Option<PoolName> {
        if let Some(p) = &request.pool {
            return Some(p.clone());
        }
        let first = request.addresses.first()?;
        self.config
            .pool_specs()
            .into_iter()
            .find(|p| p.owns(*first))
            .map(|p| p.name)
    }
}

fn sorted(mut v: Vec<IpAddr>) -> Vec<IpAddr> {
    v.sort();
    v
}

/// Whether two short address lists hold the same addresses (a Service has one or two).
fn same_set(a: &[IpAddr], b: &[IpAddr]) -> bool {
    a.len() == b.len() && a.iter().all(|x| b.contains(x))
}

impl Model for AllocModel {
    type State = AllocState;
    type Input = AllocInput;
    type Output = AllocOutput;

    fn is_noop(&self, state: &AllocState, input: &AllocInput, output: &AllocOutput) -> bool {
        match (input, output) {
            (AllocInput::Read, _) | (AllocInput::Allocate(_), AllocOutput::Refused) => {
                self.step(state, input, Some(output)).is_some()
            }
            (AllocInput::Release(k), AllocOutput::Released(None)) => {
                state.alloc.allocation(k).is_none()
            }
            // Allocating what a Service already holds, as it holds it, changes nothing either;
            // it is rare, and the search branches on it like any other change.
            _ => false,
        }
    }

    fn step(
        &self,
        state: &AllocState,
        input: &AllocInput,
        output: Option<&AllocOutput>,
    ) -> Option<AllocState> {
        match input {
            AllocInput::Allocate(req) => {
                if let Some(AllocOutput::Refused) = output {
                    // A refusal changes nothing: no need to copy the state to see it.
                    return state
                        .alloc
                        .explain(req)
                        .outcome
                        .is_err()
                        .then(|| state.clone());
                }
                let mut next = (*state.alloc).clone();
                let before = state.alloc.allocation(&req.service);
                let got = next
                    .allocate((**req).clone())
                    .map(|a| sorted(a.addresses.clone()));
                match (got, output) {
                    (Ok(a), Some(AllocOutput::Allocated(seen))) => (a == sorted(seen.clone()))
                        .then(|| state.changed(next, &req.service, before)),
                    (Ok(_), None) => Some(state.changed(next, &req.service, before)),
                    // A refusal changes nothing.
                    (Err(_), Some(AllocOutput::Refused) | None) => Some(state.clone()),
                    _ => None,
                }
            }
            AllocInput::Release(key) => {
                if state.alloc.allocation(key).is_none() {
                    // Nothing to release: nothing changes.
                    return match output {
                        None | Some(AllocOutput::Released(None)) => Some(state.clone()),
                        Some(_) => None,
                    };
                }
                let before = state.alloc.allocation(key);
                let mut next = (*state.alloc).clone();
                let got = next.release(key).map(|a| sorted(a.addresses));
                match output {
                    None => Some(state.changed(next, key, before)),
                    Some(AllocOutput::Released(seen)) => {
                        (got == seen.clone().map(sorted)).then(|| state.changed(next, key, before))
                    }
                    Some(_) => None,
                }
            }
            AllocInput::Read => match output {
                None => Some(state.clone()),
                Some(AllocOutput::Read(seen)) => {
                    let same = seen.len() == state.alloc.allocation_count()
                        && seen.iter().all(|(k, v)| {
                            state
                                .alloc
                                .allocation(k)
                                .is_some_and(|a| same_set(&a.addresses, v))
                        });
                    same.then(|| state.clone())
                }
                Some(_) => None,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) const CONFIG: &str = "apiVersion: ironlb.io/v1beta1
kind: IPAddressPool
metadata: {name: small}
spec:
  addresses: [192.0.2.0/30]
";

    fn manifest(name: &str, extra: &str) -> String {
        format!(
            "apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\n  namespace: t\n  annotations:\n    ironlb.io/address-pool: small\n{extra}spec:\n  type: LoadBalancer\n  ports: [{{port: 80}}]\n"
        )
    }

    #[test]
    fn the_model_allocates_as_the_cluster_does_and_refuses_when_full() {
        let m = AllocModel::new(CONFIG).unwrap();
        let s0 = m.init().unwrap();
        let req = |n: &str| AllocInput::Allocate(Box::new(m.request(n, &manifest(n, "")).unwrap()));
        let a: IpAddr = "192.0.2.0".parse().unwrap();
        let s1 = m
            .step(&s0, &req("a"), Some(&AllocOutput::Allocated(vec![a])))
            .expect("the lowest address");
        // Any other address is not what the allocator gives.
        let b: IpAddr = "192.0.2.1".parse().unwrap();
        assert!(m
            .step(&s0, &req("a"), Some(&AllocOutput::Allocated(vec![b])))
            .is_none());
        // Four addresses: the fifth Service is refused, and a refusal is only right when full.
        let mut s = s1.clone();
        for n in ["b", "c", "d"] {
            s = m.step(&s, &req(n), None).unwrap();
        }
        assert!(m.step(&s, &req("e"), Some(&AllocOutput::Refused)).is_some());
        assert!(m
            .step(&s1, &req("e"), Some(&AllocOutput::Refused))
            .is_none());
        // Equal contents, equal states, whatever the order they were reached in.
        let x = m.step(&s0, &req("b"), None).unwrap();
        let x = m
            .step(&x, &AllocInput::Release("t/b".parse().unwrap()), None)
            .unwrap();
        assert_eq!(x, s0);
        assert_eq!(
            m.home_pool(&m.request("a", &manifest("a", "")).unwrap())
                .unwrap()
                .as_str(),
            "small"
        );
    }
}
