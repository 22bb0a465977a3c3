//! What a Service asks of the allocator, already parsed from whatever form it came in.

use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::range::Family;
use crate::health_check::HealthCheck;
use crate::labels::LabelSet;
use crate::names::{PoolName, ServiceKey};

/// A transport protocol of a Service port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Protocol {
    /// TCP.
    #[serde(rename = "TCP")]
    Tcp,
    /// UDP.
    #[serde(rename = "UDP")]
    Udp,
    /// SCTP.
    #[serde(rename = "SCTP")]
    Sctp,
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
            Protocol::Sctp => "SCTP",
        })
    }
}

/// A port a Service exposes: what two Services sharing an address must not both use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Port {
    /// The port number.
    pub port: u16,
    /// The protocol.
    pub protocol: Protocol,
}

impl Port {
    /// A TCP port.
    pub fn tcp(port: u16) -> Self {
        Self {
            port,
            protocol: Protocol::Tcp,
        }
    }

    /// A UDP port.
    pub fn udp(port: u16) -> Self {
        Self {
            port,
            protocol: Protocol::Udp,
        }
    }
}

impl fmt::Display for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.port, self.protocol)
    }
}

/// Kubernetes' `spec.ipFamilyPolicy`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub enum FamilyPolicy {
    /// One address, of the first family.
    #[default]
    SingleStack,
    /// Both families if the pool has both, else one.
    PreferDualStack,
    /// Both families, or nothing.
    RequireDualStack,
}

impl fmt::Display for FamilyPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FamilyPolicy::SingleStack => "SingleStack",
            FamilyPolicy::PreferDualStack => "PreferDualStack",
            FamilyPolicy::RequireDualStack => "RequireDualStack",
        })
    }
}

/// Kubernetes' `spec.externalTrafficPolicy`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub enum TrafficPolicy {
    /// Any node may take traffic and forward it.
    #[default]
    Cluster,
    /// Only nodes with a local endpoint take traffic; the client address is kept.
    Local,
}

/// The families a Service wants, in order: the first is the primary.
///
/// Held inline (one or two families, no heap block), since every allocation keeps one; stored
/// and sent as the policy and a list, and checked by [`Families::new`] when read back.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "StoredFamilies", into = "StoredFamilies")]
pub struct Families {
    policy: FamilyPolicy,
    /// The families, `len` of them; a slot past `len` repeats the first, so equal requests
    /// have equal bytes.
    order: [Family; 2],
    len: u8,
}

/// [`Families`] as serialized: the policy and the families in order.
#[derive(Serialize, Deserialize)]
struct StoredFamilies {
    policy: FamilyPolicy,
    order: Vec<Family>,
}

impl From<Families> for StoredFamilies {
    fn from(f: Families) -> Self {
        Self {
            policy: f.policy,
            order: f.order().to_vec(),
        }
    }
}

impl TryFrom<StoredFamilies> for Families {
    type Error = FamiliesError;
    fn try_from(s: StoredFamilies) -> Result<Self, FamiliesError> {
        Families::new(s.policy, &s.order)
    }
}

/// Why a family request makes no sense.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FamiliesError {
    /// A family is listed twice.
    #[error("ipFamilies lists {0} twice")]
    Duplicate(Family),
    /// SingleStack with two families.
    #[error("ipFamilyPolicy SingleStack allows one entry in ipFamilies, not two")]
    TwoForSingleStack,
    /// RequireDualStack with one family listed: Kubernetes lists the families of the
    /// Service's cluster IPs, so the cluster gave it only one (MetalLB: "not enough
    /// clusterips").
    #[error(
        "ipFamilyPolicy RequireDualStack needs both families, but ipFamilies lists only {0} \
         (the Service has cluster IPs of one family: a single-stack cluster)"
    )]
    OneForRequireDualStack(Family),
    /// No family at all.
    #[error("ipFamilies must not be empty")]
    Empty,
}

impl Families {
    /// A family request from a Service's `spec.ipFamilies`, taken as it is: Kubernetes fills
    /// that field itself with the families of the Service's cluster IPs, so one entry under a
    /// dual-stack policy means a single-stack cluster. PreferDualStack then wants that family
    /// only; RequireDualStack cannot be served and is an error. (For a request that lists no
    /// families, see [`Families::with_primary`].)
    pub fn new(policy: FamilyPolicy, order: &[Family]) -> Result<Self, FamiliesError> {
        let repeated = (1..order.len()).find(|i| order[..*i].contains(&order[*i]));
        if let Some(i) = repeated {
            return Err(FamiliesError::Duplicate(order[i]));
        }
        // With no family repeated, there are at most two.
        match (order, policy) {
            ([], _) => Err(FamiliesError::Empty),
            ([_, _], FamilyPolicy::SingleStack) => Err(FamiliesError::TwoForSingleStack),
            ([a], FamilyPolicy::RequireDualStack) => Err(FamiliesError::OneForRequireDualStack(*a)),
            ([a], _) => Ok(Self::one(policy, *a)),
            ([a, b], _) => Ok(Self::two(policy, *a, *b)),
            // Three or more would repeat a family, refused above.
            (_, _) => Err(FamiliesError::Duplicate(order[2])),
        }
    }

    /// A family request that names only its primary family (a hand-written manifest without
    /// `spec.ipFamilies`): under a dual-stack policy the other family follows it.
    pub fn with_primary(policy: FamilyPolicy, primary: Family) -> Self {
        let other = match primary {
            Family::V4 => Family::V6,
            Family::V6 => Family::V4,
        };
        if policy == FamilyPolicy::SingleStack {
            Self::one(policy, primary)
        } else {
            Self::two(policy, primary, other)
        }
    }

    /// One family, as a constructor checked it.
    fn one(policy: FamilyPolicy, family: Family) -> Self {
        Self {
            policy,
            order: [family, family],
            len: 1,
        }
    }

    /// Two families, as a constructor checked them.
    fn two(policy: FamilyPolicy, first: Family, second: Family) -> Self {
        Self {
            policy,
            order: [first, second],
            len: 2,
        }
    }

    /// IPv4 single-stack, Kubernetes' default on most clusters.
    pub fn ipv4() -> Self {
        Self::one(FamilyPolicy::SingleStack, Family::V4)
    }

    /// IPv6 single-stack.
    pub fn ipv6() -> Self {
        Self::one(FamilyPolicy::SingleStack, Family::V6)
    }

    /// The policy.
    pub fn policy(&self) -> FamilyPolicy {
        self.policy
    }

    /// The families in order of preference; the first is the primary.
    pub fn order(&self) -> &[Family] {
        &self.order[..usize::from(self.len)]
    }

    /// The primary family.
    pub fn primary(&self) -> Family {
        // Every constructor gives one family at least, and the first slot is always set.
        self.order[0]
    }
}

/// The sharing key of `allow-shared-ip`: Services with the same key may share an address.
/// Shared, as names are: the allocator keeps it in the request and in its index of keys.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub struct SharingKey(std::sync::Arc<str>);

impl SharingKey {
    /// A sharing key; an empty string means no sharing, so it gives `None`.
    pub fn new(key: impl Into<String>) -> Option<Self> {
        let key = key.into();
        (!key.is_empty()).then(|| Self(key.into()))
    }

    /// The key.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<String> for SharingKey {
    fn from(key: String) -> Self {
        Self(key.into())
    }
}

impl From<SharingKey> for String {
    fn from(key: SharingKey) -> Self {
        key.0.to_string()
    }
}

impl fmt::Display for SharingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

/// Everything the allocator needs to decide for one Service.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllocationRequest {
    /// The Service.
    pub service: ServiceKey,
    /// Its ports: two Services sharing an address must not both use one.
    pub ports: Vec<Port>,
    /// Which families, in which order.
    pub families: Families,
    /// Addresses asked for by name (`spec.loadBalancerIP` or the `loadBalancerIPs` annotation),
    /// at most one per family.
    pub addresses: Vec<IpAddr>,
    /// The pool asked for (`address-pool` annotation).
    pub pool: Option<PoolName>,
    /// The `allow-shared-ip` key.
    pub sharing_key: Option<SharingKey>,
    /// `spec.externalTrafficPolicy`.
    pub traffic_policy: TrafficPolicy,
    /// `spec.selector`: with the Local policy, sharers must select the same pods.
    pub selector: LabelSet,
    /// The labels of the Service's namespace (for `serviceAllocation.namespaceSelectors`).
    /// Interned when read: every Service of the namespace carries the same.
    #[serde(deserialize_with = "LabelSet::deserialize_interned")]
    pub namespace_labels: LabelSet,
    /// The Service's own labels (for `serviceAllocation.serviceSelectors`).
    pub service_labels: LabelSet,
    /// The local probe speakers run before answering for the Service's addresses
    /// (`ironlb.io/health-check`). Carried along with the allocation; the allocator ignores it.
    /// Boxed: few Services have one, and every allocation keeps its request.
    #[serde(default)]
    pub health_check: Option<Box<HealthCheck>>,
}

impl AllocationRequest {
    /// The simplest request: an IPv4 address for a Service with these ports.
    pub fn new(service: ServiceKey, ports: Vec<Port>) -> Self {
        Self {
            service,
            ports,
            families: Families::ipv4(),
            addresses: Vec::new(),
            pool: None,
            sharing_key: None,
            traffic_policy: TrafficPolicy::Cluster,
            selector: LabelSet::new(),
            namespace_labels: LabelSet::new(),
            service_labels: LabelSet::new(),
            health_check: None,
        }
    }

    /// What must match between two Services that share an address besides the key: with the
    /// Local policy, the pods they select (traffic arrives only where those pods run).
    pub fn backend(&self) -> Option<&LabelSet> {
        (self.traffic_policy == TrafficPolicy::Local).then_some(&self.selector)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_are_stored_as_a_policy_and_a_list_and_checked_when_read() {
        let dual = Families::new(FamilyPolicy::PreferDualStack, &[Family::V6, Family::V4]).unwrap();
        assert_eq!(dual.order(), [Family::V6, Family::V4]);
        assert_eq!(dual.primary(), Family::V6);
        let json = serde_json::to_string(&dual).unwrap();
        assert_eq!(json, r#"{"policy":"PreferDualStack","order":["V6","V4"]}"#);
        assert_eq!(serde_json::from_str::<Families>(&json).unwrap(), dual);
        assert_eq!(
            Families::with_primary(FamilyPolicy::PreferDualStack, Family::V6),
            dual
        );
        assert_eq!(Families::ipv4().order(), [Family::V4]);
        // What no constructor makes is refused when read back, not carried on to panic later.
        for bad in [
            r#"{"policy":"SingleStack","order":[]}"#,
            r#"{"policy":"SingleStack","order":["V4","V6"]}"#,
            r#"{"policy":"PreferDualStack","order":["V4","V6","V4"]}"#,
        ] {
            assert!(serde_json::from_str::<Families>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sharing_keys_read_and_write_as_strings() {
        let k = SharingKey::new("team-a").unwrap();
        assert_eq!(serde_json::to_string(&k).unwrap(), r#""team-a""#);
        assert_eq!(
            serde_json::from_str::<SharingKey>(r#""team-a""#).unwrap(),
            k
        );
        assert_eq!(SharingKey::new(""), None);
    }
}
