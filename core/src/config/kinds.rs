//! The configuration kinds as written by users (`ironlb.io/v1beta1`), field for field as in
//! MetalLB's `metallb.io` CRDs so that existing manifests need only a new apiVersion.
//!
//! These types take what is written as it is: strings stay strings and numbers are wide, so
//! that a bad value is reported by validation with its field path rather than failing the whole
//! document in the parser. [`super::validate()`] turns them into the [`super::Config`] model.

// Each `printcolumn(...)` of a `#[kube]` attribute repeats `type_ = ...`: clippy takes the
// repeats for duplicated attributes.
#![allow(clippy::duplicated_attributes)]

use std::collections::BTreeMap;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};

/// The API group of every ironlb kind.
pub const GROUP: &str = "ironlb.io";
/// The one version of the ironlb kinds.
pub const VERSION: &str = "v1beta1";
/// `apiVersion` of every ironlb kind.
pub const API_VERSION: &str = "ironlb.io/v1beta1";

/// A spec type of one of the ironlb kinds.
pub trait Spec {
    /// The kind's name, as in `kind:` and in error messages.
    const KIND: &'static str;
}

/// A configuration object as found in a file: the Kubernetes envelope around a spec.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Object<S> {
    /// `ironlb.io/v1beta1`.
    pub api_version: String,
    /// The kind, one of the [`Spec::KIND`]s.
    pub kind: String,
    /// Name, namespace and labels.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// The object's spec; a missing spec is an empty one, which validation judges.
    #[serde(default)]
    pub spec: S,
}

/// The part of Kubernetes' `metadata` that configuration objects use; other fields are ignored.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectMeta {
    /// The object's name, unique within its kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The object's namespace (ironlb's own namespace in a cluster; free in files).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The object's labels (ipAddressPoolSelectors match pools by these).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// A pool of addresses that ironlb gives to Services of type LoadBalancer.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema, CustomResource)]
#[kube(
    group = "ironlb.io",
    version = "v1beta1",
    kind = "IPAddressPool",
    namespaced,
    status = "IPAddressPoolStatus",
    shortname = "ipp",
    category = "ironlb",
    doc = "A pool of addresses that ironlb gives to Services of type LoadBalancer.",
    printcolumn(
        name = "Auto Assign",
        type_ = "boolean",
        json_path = ".spec.autoAssign"
    ),
    printcolumn(
        name = "Avoid Buggy IPs",
        type_ = "boolean",
        json_path = ".spec.avoidBuggyIPs"
    ),
    printcolumn(name = "Addresses", type_ = "string", json_path = ".spec.addresses"),
    printcolumn(
        name = "Assigned IPv4",
        type_ = "integer",
        json_path = ".status.assignedIPv4"
    ),
    printcolumn(
        name = "Available IPv4",
        type_ = "integer",
        json_path = ".status.availableIPv4"
    ),
    printcolumn(
        name = "Assigned IPv6",
        type_ = "integer",
        json_path = ".status.assignedIPv6",
        priority = 1
    ),
    printcolumn(
        name = "Available IPv6",
        type_ = "integer",
        json_path = ".status.availableIPv6",
        priority = 1
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IPAddressPoolSpec {
    /// The addresses of the pool: CIDRs (`192.0.2.0/24`, `2001:db8::/64`), ranges
    /// (`192.0.2.10-192.0.2.20`) or single addresses. They must not overlap each other or
    /// another pool's.
    #[serde(default)]
    pub addresses: Vec<String>,
    /// Whether Services that name no pool and no address may get addresses from this pool.
    /// Defaults to true; when false, the pool is used only when asked for by name or address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = true))]
    pub auto_assign: Option<bool>,
    /// Skip IPv4 addresses ending in .0 and .255, which some old client software mistakes for
    /// network or broadcast addresses.
    #[serde(default, rename = "avoidBuggyIPs")]
    pub avoid_buggy_ips: bool,
    /// Restricts the pool to some namespaces and Services, and sets its priority.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_allocation: Option<ServiceAllocationSpec>,
}

impl Spec for IPAddressPoolSpec {
    const KIND: &'static str = "IPAddressPool";
}

/// Which Services may use a pool, and in which order pools are tried.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServiceAllocationSpec {
    /// The pool's priority: lower numbers are tried first; unset or 0 means after every pool
    /// with a priority.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub priority: Option<i32>,
    /// Namespaces whose Services may use the pool.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,
    /// Namespaces, chosen by their labels, whose Services may use the pool.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespace_selectors: Vec<LabelSelector>,
    /// Services, chosen by their labels, that may use the pool.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub service_selectors: Vec<LabelSelector>,
}

/// Announces the addresses of some pools on the local network by answering ARP (IPv4) and
/// NDP (IPv6) from one node at a time.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema, CustomResource)]
#[kube(
    group = "ironlb.io",
    version = "v1beta1",
    kind = "L2Advertisement",
    namespaced,
    shortname = "l2adv",
    category = "ironlb",
    doc = "Announces some pools' addresses on the local network by ARP and NDP, one node at a time.",
    printcolumn(
        name = "IPAddressPools",
        type_ = "string",
        json_path = ".spec.ipAddressPools"
    ),
    printcolumn(name = "Interfaces", type_ = "string", json_path = ".spec.interfaces"),
    printcolumn(
        name = "Node Selectors",
        type_ = "string",
        json_path = ".spec.nodeSelectors",
        priority = 1
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct L2AdvertisementSpec {
    /// Names of the pools to announce. With ipAddressPoolSelectors empty too, every pool.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ip_address_pools: Vec<String>,
    /// Pools to announce, chosen by their labels (in addition to ipAddressPools).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ip_address_pool_selectors: Vec<LabelSelector>,
    /// Nodes that may announce the addresses; empty means every node.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub node_selectors: Vec<LabelSelector>,
    /// Interfaces to announce from; empty means every interface.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interfaces: Vec<String>,
    /// Services, chosen by their labels, whose addresses are announced; empty means every
    /// Service of the pools. An address several Services share is announced when any of them
    /// is chosen.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub service_selectors: Vec<LabelSelector>,
}

impl Spec for L2AdvertisementSpec {
    const KIND: &'static str = "L2Advertisement";
}

/// Announces the addresses of some pools to BGP peers.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema, CustomResource)]
#[kube(
    group = "ironlb.io",
    version = "v1beta1",
    kind = "BGPAdvertisement",
    namespaced,
    shortname = "bgpadv",
    category = "ironlb",
    doc = "Announces some pools' addresses to BGP peers.",
    printcolumn(
        name = "IPAddressPools",
        type_ = "string",
        json_path = ".spec.ipAddressPools"
    ),
    printcolumn(name = "Peers", type_ = "string", json_path = ".spec.peers"),
    printcolumn(
        name = "Aggregation Length",
        type_ = "integer",
        json_path = ".spec.aggregationLength"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BGPAdvertisementSpec {
    /// Prefix length of the IPv4 routes announced (default 32: one route per address).
    /// Shorter lengths aggregate; they must not be shorter than any pool range announced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 32), extend("default" = 32))]
    pub aggregation_length: Option<i32>,
    /// Prefix length of the IPv6 routes announced (default 128).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 128), extend("default" = 128))]
    pub aggregation_length_v6: Option<i32>,
    /// The LOCAL_PREF attribute of the routes (sent to iBGP peers only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_pref: Option<u32>,
    /// BGP communities of the routes: `a:b` (16-bit numbers), `large:a:b:c` (32-bit numbers),
    /// or the name of an alias defined in a Community object.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub communities: Vec<String>,
    /// Names of the pools to announce. With ipAddressPoolSelectors empty too, every pool.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ip_address_pools: Vec<String>,
    /// Pools to announce, chosen by their labels (in addition to ipAddressPools).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ip_address_pool_selectors: Vec<LabelSelector>,
    /// Nodes that announce the routes (as next hops); empty means every node.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub node_selectors: Vec<LabelSelector>,
    /// Names of the BGPPeers to announce to; empty means every peer.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub peers: Vec<String>,
    /// Services, chosen by their labels, whose addresses are announced; empty means every
    /// Service of the pools. Only with the default aggregation lengths (32 and 128). An address
    /// several Services share is announced when any of them is chosen.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub service_selectors: Vec<LabelSelector>,
}

impl Spec for BGPAdvertisementSpec {
    const KIND: &'static str = "BGPAdvertisement";
}

/// A BGP session from the selected nodes to a router.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema, CustomResource)]
#[kube(
    group = "ironlb.io",
    version = "v1beta1",
    kind = "BGPPeer",
    namespaced,
    shortname = "bgpp",
    category = "ironlb",
    doc = "A BGP router the speakers of some nodes peer with.",
    printcolumn(name = "Address", type_ = "string", json_path = ".spec.peerAddress"),
    printcolumn(name = "ASN", type_ = "integer", json_path = ".spec.peerASN"),
    printcolumn(name = "BFD Profile", type_ = "string", json_path = ".spec.bfdProfile"),
    printcolumn(
        name = "Multi Hops",
        type_ = "boolean",
        json_path = ".spec.ebgpMultiHop"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BGPPeerSpec {
    /// The local AS number (1-4294967295).
    #[serde(default, rename = "myASN", skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 4_294_967_295_i64))]
    pub my_asn: Option<i64>,
    /// The peer's AS number (1-4294967295). Exactly one of peerASN and dynamicASN is set.
    #[serde(default, rename = "peerASN", skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 4_294_967_295_i64))]
    pub peer_asn: Option<i64>,
    /// Accept whatever AS the peer announces, as long as the session is iBGP (`internal`) or
    /// eBGP (`external`).
    #[serde(
        default,
        rename = "dynamicASN",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(extend("enum" = ["internal", "external"]))]
    pub dynamic_asn: Option<String>,
    /// The address of the peer to connect to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_address: Option<String>,
    /// BGP unnumbered: the interface to peer over. Not supported by ironlb's speaker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    /// The local address to connect from, of the same family as peerAddress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_address: Option<String>,
    /// The peer's TCP port (default 179).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535), extend("default" = 179))]
    pub peer_port: Option<i64>,
    /// The BGP hold time proposed, as a duration (`90s`, `3m`): 0 or at least 3s (default
    /// 90s, or three times keepaliveTime when only that is set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold_time: Option<String>,
    /// The interval between keepalives, at most holdTime (default a third of holdTime).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keepalive_time: Option<String>,
    /// The interval between connection attempts, in whole seconds from 1s to 65535s (default
    /// 120s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_time: Option<String>,
    /// The BGP router ID, an IPv4 address (default: the node's IPv4 address).
    #[serde(default, rename = "routerID", skip_serializing_if = "Option::is_none")]
    pub router_id: Option<String>,
    /// Nodes that open the session; empty means every node.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub node_selectors: Vec<LabelSelector>,
    /// The TCP MD5 password (at most 80 bytes). Prefer passwordSecret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// A Secret of type kubernetes.io/basic-auth whose `password` key holds the TCP MD5
    /// password. Not together with password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_secret: Option<SecretReferenceSpec>,
    /// The name of the BFDProfile of the session's BFD; unset means no BFD.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bfd_profile: Option<String>,
    /// Announce BGP graceful restart, so the peer keeps routes while a speaker restarts.
    #[serde(default)]
    pub enable_graceful_restart: bool,
    /// The peer is more than one hop away (eBGP only).
    #[serde(default)]
    pub ebgp_multi_hop: bool,
    /// The host VRF to peer from: the session's socket is bound to this VRF device, so its
    /// routes and source address come from the VRF's table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vrf: Option<String>,
    /// Deprecated (as in MetalLB 0.15): the session carries only the family of peerAddress,
    /// which is the default anyway. Not together with dualStackAddressFamily.
    #[serde(default, rename = "disableMP")]
    pub disable_mp: bool,
    /// Carry both IPv4 and IPv6 routes on this one session (multiprotocol BGP); by default a
    /// session carries only the family of peerAddress.
    #[serde(default)]
    pub dual_stack_address_family: bool,
}

impl Spec for BGPPeerSpec {
    const KIND: &'static str = "BGPPeer";
}

/// A reference to a Secret.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecretReferenceSpec {
    /// The Secret's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The Secret's namespace (default: ironlb's own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// Names for BGP community values, usable in BGPAdvertisement.communities. Names are global
/// across all Community objects.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema, CustomResource)]
#[kube(
    group = "ironlb.io",
    version = "v1beta1",
    kind = "Community",
    plural = "communities",
    namespaced,
    category = "ironlb",
    doc = "Names for BGP communities, usable in BGPAdvertisements.",
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CommunitySpec {
    /// The aliases.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub communities: Vec<CommunityAliasSpec>,
}

impl Spec for CommunitySpec {
    const KIND: &'static str = "Community";
}

/// One community alias.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CommunityAliasSpec {
    /// The alias, unique across all Community objects.
    #[serde(default)]
    pub name: String,
    /// The community: `a:b` (16-bit numbers) or `large:a:b:c` (32-bit numbers).
    #[serde(default)]
    pub value: String,
}

/// Settings of the BFD sessions of the BGPPeers that name this profile.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema, CustomResource)]
#[kube(
    group = "ironlb.io",
    version = "v1beta1",
    kind = "BFDProfile",
    namespaced,
    shortname = "bfdp",
    category = "ironlb",
    doc = "Bidirectional Forwarding Detection settings for BGP sessions.",
    printcolumn(
        name = "Passive Mode",
        type_ = "boolean",
        json_path = ".spec.passiveMode"
    ),
    printcolumn(
        name = "Transmit Interval",
        type_ = "integer",
        json_path = ".spec.transmitInterval"
    ),
    printcolumn(
        name = "Receive Interval",
        type_ = "integer",
        json_path = ".spec.receiveInterval"
    ),
    printcolumn(
        name = "Multiplier",
        type_ = "integer",
        json_path = ".spec.detectMultiplier"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BFDProfileSpec {
    /// The shortest interval, in milliseconds (10-60000), at which this system can receive
    /// control packets (default 300).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 10, max = 60000))]
    pub receive_interval: Option<i64>,
    /// The shortest interval, in milliseconds (10-60000), at which this system sends control
    /// packets, less jitter (default 300).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 10, max = 60000))]
    pub transmit_interval: Option<i64>,
    /// The echo packet interval in milliseconds (10-60000; default 50).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 10, max = 60000))]
    pub echo_interval: Option<i64>,
    /// How many intervals without a packet declare the session down (2-255; default 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 2, max = 255))]
    pub detect_multiplier: Option<i64>,
    /// Multihop sessions: the lowest TTL accepted on incoming packets (1-254; default 254).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 254))]
    pub minimum_ttl: Option<i64>,
    /// Use echo mode (single-hop sessions only; default false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub echo_mode: Option<bool>,
    /// Wait for the peer's packets before sending any (default false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passive_mode: Option<bool>,
}

impl Spec for BFDProfileSpec {
    const KIND: &'static str = "BFDProfile";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_spec_fields_are_refused_so_typos_are_not_ignored() {
        let err = serde_yaml::from_str::<IPAddressPoolSpec>("addresses: []\nautoAsign: false\n")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("unknown field `autoAsign`"), "{err}");
        // Newer MetalLB fields ironlb does not implement are refused rather than ignored.
        let err = serde_yaml::from_str::<L2AdvertisementSpec>(
            "preferredNodeSelectors: [{weight: 1, preference: {}}]\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with("unknown field `preferredNodeSelectors`"),
            "{err}"
        );
    }

    #[test]
    fn field_names_follow_metallb() {
        let peer: BGPPeerSpec = serde_yaml::from_str(
            "myASN: 64500\npeerASN: 64501\ndynamicASN: external\npeerAddress: 192.0.2.1\n\
             routerID: 192.0.2.2\ndisableMP: true\nebgpMultiHop: true\n\
             passwordSecret: {name: s}\nholdTime: 90s\ndualStackAddressFamily: true\n\
             vrf: red\n",
        )
        .unwrap();
        assert_eq!(peer.my_asn, Some(64500));
        assert_eq!(peer.peer_asn, Some(64501));
        assert_eq!(peer.dynamic_asn.as_deref(), Some("external"));
        assert_eq!(peer.router_id.as_deref(), Some("192.0.2.2"));
        assert!(peer.disable_mp && peer.ebgp_multi_hop && peer.dual_stack_address_family);
        assert_eq!(peer.vrf.as_deref(), Some("red"));
        assert_eq!(peer.password_secret.unwrap().name.as_deref(), Some("s"));

        let pool: IPAddressPoolSpec = serde_yaml::from_str(
            "addresses: [192.0.2.0/24]\navoidBuggyIPs: true\nautoAssign: false",
        )
        .unwrap();
        assert!(pool.avoid_buggy_ips);
        assert_eq!(pool.auto_assign, Some(false));

        let adv: BGPAdvertisementSpec = serde_yaml::from_str(
            "aggregationLength: 24\naggregationLengthV6: 64\nlocalPref: 100\nipAddressPools: [a]",
        )
        .unwrap();
        assert_eq!(adv.aggregation_length, Some(24));
        assert_eq!(adv.aggregation_length_v6, Some(64));
        assert_eq!(adv.ip_address_pools, ["a"]);
    }

    #[test]
    fn specs_round_trip_through_json() {
        let adv = L2AdvertisementSpec {
            ip_address_pools: vec!["a".into()],
            interfaces: vec!["eth0".into()],
            ..Default::default()
        };
        let json = serde_json::to_value(&adv).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"ipAddressPools": ["a"], "interfaces": ["eth0"]})
        );
        assert_eq!(
            serde_json::from_value::<L2AdvertisementSpec>(json).unwrap(),
            adv
        );
    }

    #[test]
    fn service_selectors_round_trip_on_both_advertisements() {
        let yaml = "serviceSelectors:\n- matchLabels:\n    app: web\n- matchExpressions:\n  \
                    - key: tier\n    operator: In\n    values:\n    - front\n";
        let l2: L2AdvertisementSpec = serde_yaml::from_str(yaml).unwrap();
        let bgp: BGPAdvertisementSpec = serde_yaml::from_str(yaml).unwrap();
        assert_eq!(l2.service_selectors, bgp.service_selectors);
        let selectors = &l2.service_selectors;
        assert_eq!(selectors.len(), 2);
        let web = selectors[0].match_labels.as_ref().unwrap();
        assert_eq!(web["app"], "web");
        let tier = &selectors[1].match_expressions.as_ref().unwrap()[0];
        assert_eq!((tier.key.as_str(), tier.operator.as_str()), ("tier", "In"));
        assert_eq!(serde_yaml::to_string(&l2).unwrap(), yaml);
        assert_eq!(serde_yaml::to_string(&bgp).unwrap(), yaml);
        // Empty lists are left out, as MetalLB's omitempty does.
        let json = serde_json::to_value(L2AdvertisementSpec::default()).unwrap();
        assert_eq!(json, serde_json::json!({}));
        for schema in [
            schemars::schema_for!(L2AdvertisementSpec),
            schemars::schema_for!(BGPAdvertisementSpec),
        ] {
            let json = serde_json::to_value(&schema).unwrap();
            let field = &json["properties"]["serviceSelectors"];
            assert_eq!(field["type"], "array", "{field}");
            assert!(field["description"]
                .as_str()
                .unwrap()
                .starts_with("Services"));
        }
    }

    #[test]
    fn schemas_carry_descriptions_and_defaults() {
        let schema = schemars::schema_for!(IPAddressPoolSpec);
        let json = serde_json::to_value(&schema).unwrap();
        let props = &json["properties"];
        assert!(props["addresses"]["description"]
            .as_str()
            .unwrap()
            .starts_with("The addresses of the pool"));
        assert_eq!(props["autoAssign"]["default"], true);
        assert!(props.get("avoidBuggyIPs").is_some());
        let schema = schemars::schema_for!(BGPPeerSpec);
        let json = serde_json::to_value(&schema).unwrap();
        assert!(json["properties"].get("myASN").is_some());
        assert_eq!(json["properties"]["peerPort"]["default"], 179);
        let schema = schemars::schema_for!(BGPAdvertisementSpec);
        let json = serde_json::to_value(&schema).unwrap();
        assert_eq!(json["properties"]["aggregationLengthV6"]["maximum"], 128);
        for schema in [
            schemars::schema_for!(L2AdvertisementSpec),
            schemars::schema_for!(CommunitySpec),
            schemars::schema_for!(BFDProfileSpec),
        ] {
            assert!(serde_json::to_value(&schema).unwrap()["description"].is_string());
        }
    }
}

/// What the controller leader reports on a pool: addresses in use and free, per family. Counts
/// past 2^63 (large IPv6 pools) are shown as 2^63 - 1.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IPAddressPoolStatus {
    /// IPv4 addresses given to Services.
    #[serde(rename = "assignedIPv4")]
    pub assigned_ipv4: i64,
    /// IPv4 addresses still free.
    #[serde(rename = "availableIPv4")]
    pub available_ipv4: i64,
    /// IPv6 addresses given to Services.
    #[serde(rename = "assignedIPv6")]
    pub assigned_ipv6: i64,
    /// IPv6 addresses still free.
    #[serde(rename = "availableIPv6")]
    pub available_ipv6: i64,
}

/// The cluster-wide configuration status: one object (named `ironlb`) in ironlb's namespace.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema, CustomResource)]
#[kube(
    group = "ironlb.io",
    version = "v1beta1",
    kind = "ConfigurationState",
    namespaced,
    status = "ConfigurationStateStatus",
    category = "ironlb",
    doc = "Whether the ironlb configuration objects form a valid configuration, and if not, why.",
    printcolumn(name = "Valid", type_ = "boolean", json_path = ".status.valid"),
    printcolumn(name = "Revision", type_ = "integer", json_path = ".status.revision"),
    printcolumn(name = "Errors", type_ = "integer", json_path = ".status.errorCount"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConfigurationStateSpec {}

/// The configuration's validity as the controller leader saw it last.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConfigurationStateStatus {
    /// Whether the objects form a valid configuration (if not, the last valid one stays).
    pub valid: bool,
    /// The revision of the configuration in force.
    pub revision: u64,
    /// How many errors the objects have.
    pub error_count: u64,
    /// Every error, each naming the object and the field.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
    /// When the objects were last checked (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_checked: Option<String>,
}
