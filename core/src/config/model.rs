//! The validated configuration: every value parsed into the type that means it, so the rest of
//! ironlb never re-checks a string.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use crate::net::bgp::attrs::{Community, CommunityError};
pub use crate::net::bgp::md5::Password;
pub use crate::net::bgp::packet::Families;
pub use crate::net::bgp::session::{PeerAsn, SessionConfig};
pub use peer_bfd::PeerBfd;
pub use peer_transport::PeerTransport;

use crate::ipam::PoolSpec;
use crate::labels::{LabelLookup, Labels, Selector};
use crate::names::{Namespace, PeerName, PoolName};

mod peer_bfd;
mod peer_transport;

/// A whole, valid configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Config {
    /// The address pools.
    pub pools: BTreeMap<PoolName, Pool>,
    /// The L2 advertisements, by name.
    pub l2_advertisements: Vec<L2Advertisement>,
    /// The BGP advertisements, by name.
    pub bgp_advertisements: Vec<BgpAdvertisement>,
    /// The BGP peers.
    pub peers: BTreeMap<PeerName, Peer>,
    /// The community aliases of all Community objects.
    pub communities: BTreeMap<String, Community>,
    /// The BFD profiles.
    pub bfd_profiles: BTreeMap<String, BfdProfile>,
    /// The labels of the Namespaces known from Namespace documents (standalone mode).
    pub namespaces: BTreeMap<Namespace, Labels>,
}

impl Config {
    /// The pools as the allocator takes them, in name order.
    pub fn pool_specs(&self) -> Vec<PoolSpec> {
        self.pools.values().map(|p| p.spec.clone()).collect()
    }

    /// The configuration as shown to API clients: every TCP MD5 password replaced by
    /// `<redacted>` (it travels to the speakers, never back out).
    pub fn redacted(&self) -> Config {
        let mut c = self.clone();
        for p in c.peers.values_mut() {
            if p.password.is_some() {
                p.password = Some(Password::new("<redacted>".into()));
            }
        }
        c
    }
}

/// An address pool.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pool {
    /// What the allocator needs.
    pub spec: PoolSpec,
    /// The pool's labels, which ipAddressPoolSelectors match.
    pub labels: Labels,
}

/// Which pools an advertisement applies to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PoolSelection {
    /// Every pool (neither names nor selectors given).
    All,
    /// The pools named.
    Named(BTreeSet<PoolName>),
    /// The pools whose labels match any of the selectors.
    Selected(Vec<Selector>),
    /// The pools named, and those whose labels match any of the selectors.
    NamedOrSelected {
        /// The pools named.
        names: BTreeSet<PoolName>,
        /// Selectors of further pools.
        selectors: Vec<Selector>,
    },
}

impl PoolSelection {
    /// The selection MetalLB makes from `ipAddressPools` and `ipAddressPoolSelectors`.
    pub fn new(names: BTreeSet<PoolName>, selectors: Vec<Selector>) -> Self {
        match (names.is_empty(), selectors.is_empty()) {
            (true, true) => PoolSelection::All,
            (false, true) => PoolSelection::Named(names),
            (true, false) => PoolSelection::Selected(selectors),
            (false, false) => PoolSelection::NamedOrSelected { names, selectors },
        }
    }

    /// Whether the pool with this name and these labels is selected.
    pub fn includes(&self, name: &PoolName, labels: &Labels) -> bool {
        let selected = |selectors: &[Selector]| selectors.iter().any(|s| s.matches(labels));
        match self {
            PoolSelection::All => true,
            PoolSelection::Named(names) => names.contains(name),
            PoolSelection::Selected(selectors) => selected(selectors),
            PoolSelection::NamedOrSelected { names, selectors } => {
                names.contains(name) || selected(selectors)
            }
        }
    }

    /// The selected pools among `pools`, in name order.
    pub fn pools<'a>(
        &'a self,
        pools: &'a BTreeMap<PoolName, Pool>,
    ) -> impl Iterator<Item = (&'a PoolName, &'a Pool)> + 'a {
        pools
            .iter()
            .filter(move |(name, pool)| self.includes(name, &pool.labels))
    }
}

/// Whether a list of selectors admits an object with these labels: an empty list admits every
/// object, otherwise any one selector must match (MetalLB's rule for node and Service selectors).
fn admits<L: LabelLookup + ?Sized>(selectors: &[Selector], labels: &L) -> bool {
    selectors.is_empty() || selectors.iter().any(|s| s.matches(labels))
}

/// Whether Service selectors admit an address held by Services with these labels: an empty
/// list admits every address (even one nobody holds), otherwise one of the Services must match
/// one selector. MetalLB judges each Service alone and announces its address when an
/// advertisement matches it, so an address Services share is announced when one of them is.
fn admits_any<'a, L: LabelLookup + 'a>(
    selectors: &[Selector],
    labels: impl IntoIterator<Item = &'a L>,
) -> bool {
    selectors.is_empty() || labels.into_iter().any(|l| admits(selectors, l))
}

/// Announcement of some pools' addresses by ARP and NDP.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "stored::L2", into = "stored::L2")]
pub struct L2Advertisement {
    /// The object's name.
    pub name: String,
    /// The pools announced.
    pub pools: PoolSelection,
    /// Services whose addresses are announced (empty: every Service).
    pub service_selectors: Vec<Selector>,
    /// Nodes that may announce (empty: every node).
    pub node_selectors: Vec<Selector>,
    /// Interfaces to announce from (empty: every interface).
    pub interfaces: Vec<InterfaceName>,
}

/// What both advertisement kinds share: the pools, Services and nodes they select.
pub trait Advertisement {
    /// The pools whose addresses it announces.
    fn pool_selection(&self) -> &PoolSelection;
    /// Its serviceSelectors (none: every Service).
    fn service_selectors(&self) -> &[Selector];
    /// Its nodeSelectors (none: every node).
    fn node_selectors(&self) -> &[Selector];

    /// Whether a node with these labels announces.
    fn selects_node(&self, node_labels: &Labels) -> bool {
        admits(self.node_selectors(), node_labels)
    }

    /// Whether the addresses of a Service with these labels are announced.
    fn selects_service<L: LabelLookup + ?Sized>(&self, service_labels: &L) -> bool {
        admits(self.service_selectors(), service_labels)
    }

    /// Whether an address held by Services with these labels is announced: when one of them is
    /// selected.
    fn selects_any_service<'a, L: LabelLookup + 'a>(
        &self,
        labels: impl IntoIterator<Item = &'a L>,
    ) -> bool {
        admits_any(self.service_selectors(), labels)
    }
}

impl Advertisement for L2Advertisement {
    fn pool_selection(&self) -> &PoolSelection {
        &self.pools
    }
    fn service_selectors(&self) -> &[Selector] {
        &self.service_selectors
    }
    fn node_selectors(&self) -> &[Selector] {
        &self.node_selectors
    }
}

/// Announcement of some pools' addresses to BGP peers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "stored::Bgp", into = "stored::Bgp")]
pub struct BgpAdvertisement {
    /// The object's name.
    pub name: String,
    /// The pools announced.
    pub pools: PoolSelection,
    /// Services whose addresses are announced (empty: every Service).
    pub service_selectors: Vec<Selector>,
    /// Prefix length of IPv4 routes (1-32; 32 when there are service selectors).
    pub aggregation_length: u8,
    /// Prefix length of IPv6 routes (1-128; 128 when there are service selectors).
    pub aggregation_length_v6: u8,
    /// LOCAL_PREF of the routes, for iBGP peers.
    pub local_pref: Option<u32>,
    /// Communities of the routes, aliases resolved, sorted and without repeats.
    pub communities: Vec<Community>,
    /// Nodes that announce (empty: every node).
    pub node_selectors: Vec<Selector>,
    /// Peers announced to (empty: every peer).
    pub peers: BTreeSet<PeerName>,
}

impl Advertisement for BgpAdvertisement {
    fn pool_selection(&self) -> &PoolSelection {
        &self.pools
    }
    fn service_selectors(&self) -> &[Selector] {
        &self.service_selectors
    }
    fn node_selectors(&self) -> &[Selector] {
        &self.node_selectors
    }
}

impl BgpAdvertisement {
    /// Whether the routes go to this peer.
    pub fn selects_peer(&self, peer: &PeerName) -> bool {
        self.peers.is_empty() || self.peers.contains(peer)
    }
}

/// The advertisements as stored in the Raft log and snapshots and sent between members.
///
/// Format 1 of [`crate::codec`] and the Raft port are bincode, field after field: a field added
/// to an advertisement would change the bytes of every one, so old records would no longer read
/// and members of two versions would misread each other. So the stored form keeps the fields of
/// the first release and folds the Service selectors into a variant appended to the pool
/// selection (variants are encoded by position, so appending one is allowed): an advertisement
/// without them has the bytes it always had, and one with them is refused by name (JSON) or by
/// variant (bincode) by a member that predates them, never misread.
mod stored {
    use std::collections::BTreeSet;

    use serde::{Deserialize, Serialize};

    use super::{BgpAdvertisement, Community, InterfaceName, L2Advertisement, PoolSelection};
    use crate::labels::Selector;
    use crate::names::{PeerName, PoolName};

    /// [`PoolSelection`]'s variants in its order, then the one that carries Service selectors.
    #[derive(Clone, Serialize, Deserialize)]
    pub enum Pools {
        /// [`PoolSelection::All`].
        All,
        /// [`PoolSelection::Named`].
        Named(BTreeSet<PoolName>),
        /// [`PoolSelection::Selected`].
        Selected(Vec<Selector>),
        /// [`PoolSelection::NamedOrSelected`].
        NamedOrSelected {
            /// The pools named.
            names: BTreeSet<PoolName>,
            /// Selectors of further pools.
            selectors: Vec<Selector>,
        },
        /// The addresses of the pools selected that are held by Services matching a selector.
        ForServices {
            /// The pools.
            pools: PoolSelection,
            /// The Service selectors (never empty).
            services: Vec<Selector>,
        },
    }

    impl Pools {
        fn new(pools: PoolSelection, services: Vec<Selector>) -> Self {
            if !services.is_empty() {
                return Pools::ForServices { pools, services };
            }
            match pools {
                PoolSelection::All => Pools::All,
                PoolSelection::Named(names) => Pools::Named(names),
                PoolSelection::Selected(selectors) => Pools::Selected(selectors),
                PoolSelection::NamedOrSelected { names, selectors } => {
                    Pools::NamedOrSelected { names, selectors }
                }
            }
        }

        fn split(self) -> (PoolSelection, Vec<Selector>) {
            let pools = match self {
                Pools::ForServices { pools, services } => return (pools, services),
                Pools::All => PoolSelection::All,
                Pools::Named(names) => PoolSelection::Named(names),
                Pools::Selected(selectors) => PoolSelection::Selected(selectors),
                Pools::NamedOrSelected { names, selectors } => {
                    PoolSelection::NamedOrSelected { names, selectors }
                }
            };
            (pools, Vec::new())
        }
    }

    /// [`L2Advertisement`] as stored.
    #[derive(Clone, Serialize, Deserialize)]
    pub struct L2 {
        name: String,
        pools: Pools,
        node_selectors: Vec<Selector>,
        interfaces: Vec<InterfaceName>,
    }

    impl From<L2Advertisement> for L2 {
        fn from(a: L2Advertisement) -> Self {
            L2 {
                name: a.name,
                pools: Pools::new(a.pools, a.service_selectors),
                node_selectors: a.node_selectors,
                interfaces: a.interfaces,
            }
        }
    }

    impl From<L2> for L2Advertisement {
        fn from(s: L2) -> Self {
            let (pools, service_selectors) = s.pools.split();
            L2Advertisement {
                name: s.name,
                pools,
                service_selectors,
                node_selectors: s.node_selectors,
                interfaces: s.interfaces,
            }
        }
    }

    /// [`BgpAdvertisement`] as stored.
    #[derive(Clone, Serialize, Deserialize)]
    pub struct Bgp {
        name: String,
        pools: Pools,
        aggregation_length: u8,
        aggregation_length_v6: u8,
        local_pref: Option<u32>,
        communities: Vec<Community>,
        node_selectors: Vec<Selector>,
        peers: BTreeSet<PeerName>,
    }

    impl From<BgpAdvertisement> for Bgp {
        fn from(a: BgpAdvertisement) -> Self {
            Bgp {
                name: a.name,
                pools: Pools::new(a.pools, a.service_selectors),
                aggregation_length: a.aggregation_length,
                aggregation_length_v6: a.aggregation_length_v6,
                local_pref: a.local_pref,
                communities: a.communities,
                node_selectors: a.node_selectors,
                peers: a.peers,
            }
        }
    }

    impl From<Bgp> for BgpAdvertisement {
        fn from(s: Bgp) -> Self {
            let (pools, service_selectors) = s.pools.split();
            BgpAdvertisement {
                name: s.name,
                pools,
                service_selectors,
                aggregation_length: s.aggregation_length,
                aggregation_length_v6: s.aggregation_length_v6,
                local_pref: s.local_pref,
                communities: s.communities,
                node_selectors: s.node_selectors,
                peers: s.peers,
            }
        }
    }
}

/// A BGP session to a router.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Peer {
    /// The local AS.
    pub my_asn: u32,
    /// The peer's AS.
    pub peer_asn: PeerAsn,
    /// The address to connect to.
    pub peer_address: IpAddr,
    /// The local address to connect from (same family as `peer_address`).
    pub source_address: Option<IpAddr>,
    /// The peer's TCP port.
    pub peer_port: u16,
    /// The hold time proposed: zero (no keepalives) or whole seconds from 3s to 65535s.
    pub hold_time: Duration,
    /// The keepalive interval, at most `hold_time` (zero when it is zero).
    pub keepalive_time: Duration,
    /// The interval between connection attempts, whole seconds from 1s to 65535s.
    pub connect_time: Duration,
    /// The router ID (default: the node's IPv4 address).
    pub router_id: Option<Ipv4Addr>,
    /// Nodes that open the session (empty: every node).
    pub node_selectors: Vec<Selector>,
    /// The TCP MD5 password given inline.
    pub password: Option<Password>,
    /// The Secret holding the TCP MD5 password.
    pub password_secret: Option<SecretRef>,
    /// The BFD profile of the session's BFD, if any (attached for the speakers, see
    /// [`PeerBfd`]).
    pub bfd_profile: PeerBfd,
    /// The peer is more than one hop away.
    pub ebgp_multi_hop: bool,
    /// Announce graceful restart.
    pub graceful_restart: bool,
    /// The address families the session carries and the VRF it runs in. Stored where the
    /// first release kept `disable_mp`, so a peer without the newer options has the bytes it
    /// always had (see [`PeerTransport`]).
    #[serde(rename = "disable_mp")]
    pub transport: PeerTransport,
}

impl Peer {
    /// The default peer port.
    pub const DEFAULT_PORT: u16 = 179;
    /// The default hold time.
    pub const DEFAULT_HOLD_TIME: Duration = Duration::from_secs(90);
    /// The default connect time.
    pub const DEFAULT_CONNECT_TIME: Duration = Duration::from_secs(120);

    /// Whether the session is iBGP.
    pub fn is_internal(&self) -> bool {
        self.peer_asn.is_internal(self.my_asn)
    }

    /// What a BGP session to this peer needs of it.
    pub fn session(&self) -> SessionConfig {
        SessionConfig {
            my_asn: self.my_asn,
            peer_asn: self.peer_asn,
            peer_address: self.peer_address,
            source_address: self.source_address,
            peer_port: self.peer_port,
            hold_time: self.hold_time,
            keepalive_time: self.keepalive_time,
            connect_time: self.connect_time,
            router_id: self.router_id,
            password: self.password.clone(),
            ebgp_multi_hop: self.ebgp_multi_hop,
            graceful_restart: self.graceful_restart,
            families: self.families(),
            vrf: self.transport.vrf.as_ref().map(|v| v.as_str().to_owned()),
            bfd: self
                .bfd_profile
                .profile
                .as_ref()
                .map(|p| p.settings(self.ebgp_multi_hop)),
        }
    }

    /// The peer as a speaker gets it: with the BFD profile it names attached.
    pub fn with_bfd_profile(&self, profiles: &BTreeMap<String, BfdProfile>) -> Peer {
        let mut p = self.clone();
        p.bfd_profile.profile = p.bfd_profile.name().and_then(|n| profiles.get(n)).cloned();
        p
    }

    /// The address families the session carries: both with `dualStackAddressFamily`, else
    /// the family of the peer's address (MetalLB's rule from 0.15, where `disableMP` became
    /// the default).
    pub fn families(&self) -> Families {
        if self.transport.dual_stack_address_family {
            Families::BOTH
        } else {
            Families::of(self.peer_address)
        }
    }

    /// Whether a node with these labels opens the session.
    pub fn selects_node(&self, node_labels: &Labels) -> bool {
        admits(&self.node_selectors, node_labels)
    }
}

/// A reference to a Secret.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SecretRef {
    /// The Secret's name.
    pub name: String,
    /// Its namespace; `None` means ironlb's own.
    pub namespace: Option<Namespace>,
}

/// BFD session settings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BfdProfile {
    /// The shortest interval at which control packets can be received (10 ms to 60 s).
    pub receive_interval: Duration,
    /// The shortest interval at which control packets are sent (10 ms to 60 s).
    pub transmit_interval: Duration,
    /// The echo interval (10 ms to 60 s).
    pub echo_interval: Duration,
    /// Missed intervals before the session goes down (2-255).
    pub detect_multiplier: u8,
    /// Lowest TTL accepted on multihop sessions (1-254).
    pub minimum_ttl: u8,
    /// Echo mode.
    pub echo_mode: bool,
    /// Passive mode.
    pub passive_mode: bool,
}

impl Default for BfdProfile {
    fn default() -> Self {
        Self {
            receive_interval: Duration::from_millis(300),
            transmit_interval: Duration::from_millis(300),
            echo_interval: Duration::from_millis(50),
            detect_multiplier: 3,
            minimum_ttl: 254,
            echo_mode: false,
            passive_mode: false,
        }
    }
}

/// A network interface name, as Linux accepts it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct InterfaceName(String);

/// Why a string is not an interface name.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InterfaceNameError {
    /// The name is empty.
    #[error("must not be empty")]
    Empty,
    /// Longer than IFNAMSIZ - 1.
    #[error("{0:?} is longer than 15 bytes")]
    TooLong(String),
    /// Holds a character Linux refuses in interface names.
    #[error("{0:?} is not an interface name: it must not contain '/', ':' or whitespace")]
    BadCharacter(String),
    /// `.` or `..`, which Linux refuses.
    #[error("{0:?} is not an interface name")]
    Dots(String),
}

impl InterfaceName {
    /// Linux's IFNAMSIZ less the terminating NUL.
    pub const MAX_LEN: usize = 15;

    /// Checks a name the way the kernel's `dev_valid_name` does.
    pub fn new(name: impl Into<String>) -> Result<Self, InterfaceNameError> {
        let name = name.into();
        if name.is_empty() {
            return Err(InterfaceNameError::Empty);
        }
        if name.len() > Self::MAX_LEN {
            return Err(InterfaceNameError::TooLong(name));
        }
        if name
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace())
        {
            return Err(InterfaceNameError::BadCharacter(name));
        }
        if name == "." || name == ".." {
            return Err(InterfaceNameError::Dots(name));
        }
        Ok(Self(name))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for InterfaceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for InterfaceName {
    type Error = InterfaceNameError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::new(s)
    }
}

impl From<InterfaceName> for String {
    fn from(n: InterfaceName) -> String {
        n.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interface_names_follow_linux() {
        assert!(InterfaceName::new("eth0").is_ok());
        assert!(InterfaceName::new("enp0s31f6.100").is_ok());
        assert!(InterfaceName::new("a".repeat(15)).is_ok());
        assert_eq!(
            InterfaceName::new("a".repeat(16)),
            Err(InterfaceNameError::TooLong("a".repeat(16)))
        );
        assert_eq!(InterfaceName::new(""), Err(InterfaceNameError::Empty));
        for bad in ["eth/0", "eth:0", "eth 0", "eth\t0"] {
            assert!(matches!(
                InterfaceName::new(bad),
                Err(InterfaceNameError::BadCharacter(_))
            ));
        }
        assert!(matches!(
            InterfaceName::new(".."),
            Err(InterfaceNameError::Dots(_))
        ));
    }

    #[test]
    fn passwords_stay_out_of_debug_output() {
        let p = Password::new("s3cret".into());
        assert_eq!(format!("{p:?}"), "Password(<redacted>)");
        assert_eq!(p.expose(), "s3cret");
    }

    #[test]
    fn pool_selection_follows_metallb() {
        let a = PoolName::new("a").unwrap();
        let b = PoolName::new("b").unwrap();
        let labels: Labels = [("tier".to_string(), "public".to_string())].into();
        let sel = Selector::new([("tier", "public")], []).unwrap();
        assert_eq!(
            PoolSelection::new(BTreeSet::new(), Vec::new()),
            PoolSelection::All
        );
        let named = PoolSelection::new([a.clone()].into(), Vec::new());
        assert!(named.includes(&a, &Labels::new()) && !named.includes(&b, &labels));
        let selected = PoolSelection::new(BTreeSet::new(), vec![sel.clone()]);
        assert!(selected.includes(&b, &labels) && !selected.includes(&a, &Labels::new()));
        let both = PoolSelection::new([a.clone()].into(), vec![sel]);
        assert!(both.includes(&a, &Labels::new()) && both.includes(&b, &labels));
        assert!(!both.includes(&b, &Labels::new()));
    }
}
