//! What `ironlb check` computes: every Service's allocation under a configuration, starting,
//! as the reconciler does after a restart or a migration, from the addresses Services already
//! show in `status.loadBalancer.ingress`. So a reload, a change of sharing key or of ports can
//! be checked against what Services hold, the way MetalLB's controller tests do.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use k8s_openapi::api::core::v1::Service;

use crate::config::service::{is_load_balancer, requests_from_documents, service_key};
use crate::config::{Config, ConfigError, Documents};
use crate::ipam::{Allocator, Explanation, PoolStats, PoolsError, Refusal};
use crate::names::{PoolName, ServiceKey};

/// Addresses a Service's status shows, and whether ironlb can keep them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Held {
    /// The Service.
    pub service: ServiceKey,
    /// The addresses of its `status.loadBalancer.ingress`.
    pub addresses: Vec<IpAddr>,
    /// Kept, or why not (the Service then gets addresses as a new one would).
    pub outcome: Result<(), Refusal>,
}

impl fmt::Display for Held {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let addresses: Vec<String> = self.addresses.iter().map(IpAddr::to_string).collect();
        let addresses = addresses.join(",");
        match &self.outcome {
            Ok(()) => write!(f, "{}: keeps {addresses} from its status", self.service),
            Err(why) => write!(
                f,
                "{}: status.loadBalancer.ingress: holds {addresses}, which ironlb cannot keep: \
                 {why}",
                self.service
            ),
        }
    }
}

/// The outcome of a check.
#[derive(Debug)]
pub struct Report {
    /// Each Service's allocation, or why it has none, in allocation order.
    pub results: Vec<Explanation>,
    /// Every held address set and whether it is kept, by Service key.
    pub held: Vec<Held>,
    /// Each pool's counts after allocation.
    pub stats: BTreeMap<PoolName, PoolStats>,
    /// Problems with the Services themselves, each naming the Service and the field.
    pub errors: Vec<ConfigError>,
}

impl Report {
    /// Whether every Service got addresses and every held address is kept.
    pub fn all_allocated(&self) -> bool {
        self.results.iter().all(|e| e.outcome.is_ok())
            && self.held.iter().all(|h| h.outcome.is_ok())
    }
}

/// Allocates for every Service of `docs` under `config`: first the Services holding addresses
/// keep them where the configuration allows (by Service key, as the reconciler adopts them),
/// then every Service is allocated as the controller would.
pub fn check(docs: &Documents, config: &Config) -> Result<Report, PoolsError> {
    let (requests, mut errors) = requests_from_documents(docs, config);
    let mut allocator = Allocator::with_pools(config.pool_specs())?;
    let shown = shown_addresses(docs, &mut errors);
    let mut held = Vec::new();
    for (service, addresses) in shown {
        // A Service with errors has no request; its errors are reported already.
        let Some(request) = requests.iter().find(|r| r.service == service) else {
            continue;
        };
        let outcome = allocator.adopt(request.clone(), &addresses).map(|_| ());
        held.push(Held {
            service,
            addresses,
            outcome,
        });
    }
    let results = allocator.allocate_all(requests);
    Ok(Report {
        results,
        held,
        stats: allocator.stats(),
        errors,
    })
}

/// The addresses each LoadBalancer Service's status shows, by Service key; an entry that is
/// not an IP address is an error naming the Service and the entry (hostnames are skipped:
/// they are not addresses ironlb gives).
fn shown_addresses(
    docs: &Documents,
    errors: &mut Vec<ConfigError>,
) -> BTreeMap<ServiceKey, Vec<IpAddr>> {
    let mut shown = BTreeMap::new();
    for doc in &docs.services {
        let svc: &Service = &doc.object;
        if !is_load_balancer(svc) {
            continue;
        }
        let Ok(key) = service_key(svc) else { continue };
        let ingress = svc
            .status
            .as_ref()
            .and_then(|s| s.load_balancer.as_ref())
            .and_then(|lb| lb.ingress.as_ref());
        let mut addresses = Vec::new();
        for (i, entry) in ingress.into_iter().flatten().enumerate() {
            let Some(text) = entry.ip.as_deref().filter(|s| !s.is_empty()) else {
                continue;
            };
            match text.parse() {
                Ok(a) => addresses.push(a),
                Err(_) => errors.push(ConfigError::new(
                    Some(doc.origin.clone()),
                    "Service",
                    key.to_string(),
                    format!("status.loadBalancer.ingress[{i}].ip"),
                    format!("{text:?} is not an IP address"),
                )),
            }
        }
        if !addresses.is_empty() {
            shown.insert(key, addresses);
        }
    }
    shown
}
