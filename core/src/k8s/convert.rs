//! Configuration objects read from the cluster, as the [`Documents`] that validation takes, so
//! that objects in the cluster and in files are judged by the same code with the same messages.

use kube::ResourceExt;

use crate::config::error::Origin;
use crate::config::kinds::{self, Object, Spec, API_VERSION};
use crate::config::{Documents, Sourced};

fn object<S: Spec + Clone>(
    namespace: &str,
    metadata: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    spec: &S,
) -> Sourced<Object<S>> {
    let name = metadata.name.clone().unwrap_or_default();
    Sourced {
        origin: Origin::cluster(format!("{namespace}/{name}")),
        object: Object {
            api_version: API_VERSION.to_string(),
            kind: S::KIND.to_string(),
            metadata: kinds::ObjectMeta {
                name: metadata.name.clone(),
                namespace: metadata.namespace.clone(),
                labels: metadata.labels.clone().unwrap_or_default(),
            },
            spec: spec.clone(),
        },
    }
}

/// Every configuration object of the cluster, sorted by name within each kind so that the same
/// objects always give the same documents.
#[derive(Clone, Debug, Default)]
pub struct ClusterConfig {
    /// IPAddressPools.
    pub pools: Vec<kinds::IPAddressPool>,
    /// L2Advertisements.
    pub l2_advertisements: Vec<kinds::L2Advertisement>,
    /// BGPAdvertisements.
    pub bgp_advertisements: Vec<kinds::BGPAdvertisement>,
    /// BGPPeers.
    pub bgp_peers: Vec<kinds::BGPPeer>,
    /// Communities.
    pub communities: Vec<kinds::Community>,
    /// BFDProfiles.
    pub bfd_profiles: Vec<kinds::BFDProfile>,
}

impl ClusterConfig {
    /// The objects as documents for validation.
    pub fn documents(&self) -> Documents {
        fn sorted<T: ResourceExt + Clone>(v: &[T]) -> Vec<T> {
            let mut v = v.to_vec();
            v.sort_by_key(|o| (o.namespace(), o.name_any()));
            v
        }
        let ns = |m: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta| {
            m.namespace.clone().unwrap_or_default()
        };
        Documents {
            ip_address_pools: sorted(&self.pools)
                .iter()
                .map(|o| object(&ns(&o.metadata), &o.metadata, &o.spec))
                .collect(),
            l2_advertisements: sorted(&self.l2_advertisements)
                .iter()
                .map(|o| object(&ns(&o.metadata), &o.metadata, &o.spec))
                .collect(),
            bgp_advertisements: sorted(&self.bgp_advertisements)
                .iter()
                .map(|o| object(&ns(&o.metadata), &o.metadata, &o.spec))
                .collect(),
            bgp_peers: sorted(&self.bgp_peers)
                .iter()
                .map(|o| object(&ns(&o.metadata), &o.metadata, &o.spec))
                .collect(),
            communities: sorted(&self.communities)
                .iter()
                .map(|o| object(&ns(&o.metadata), &o.metadata, &o.spec))
                .collect(),
            bfd_profiles: sorted(&self.bfd_profiles)
                .iter()
                .map(|o| object(&ns(&o.metadata), &o.metadata, &o.spec))
                .collect(),
            services: Vec::new(),
            namespaces: Vec::new(),
        }
    }
}
