//! The validated configuration: every value parsed into the type that means it, so the rest of
//! ironlb never re-checks a string.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::ipam::PoolSpec;
use crate::labels::{Labels, Selector};
use crate::names::{Namespace, PeerName, PoolName};

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

/// Whether a list of node selectors admits a node: an empty list admits every node, otherwise
/// any one selector must match.
fn selects_node(selectors: &[Selector], node_labels: &Labels) -> bool {
    selectors.is_empty() || selectors.iter().any(|s| s.matches(node_labels))
}

/// Announcement of some pools' addresses by ARP and NDP.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct L2Advertisement {
    /// The object's name.
    pub name: String,
    /// The pools announced.
    pub pools: PoolSelection,
    /// Nodes that may announce (empty: every node).
    pub node_selectors: Vec<Selector>,
    /// Interfaces to announce from (empty: every interface).
    pub interfaces: Vec<InterfaceName>,
}

impl L2Advertisement {
    /// Whether a node with these labels may announce.
    pub fn selects_node(&self, node_labels: &Labels) -> bool {
        selects_node(&self.node_selectors, node_labels)
    }
}

/// Announcement of some pools' addresses to BGP peers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BgpAdvertisement {
    /// The object's name.
    pub name: String,
    /// The pools announced.
    pub pools: PoolSelection,
    /// Prefix length of IPv4 routes (1-32).
    pub aggregation_length: u8,
    /// Prefix length of IPv6 routes (1-128).
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

impl BgpAdvertisement {
    /// Whether a node with these labels announces.
    pub fn selects_node(&self, node_labels: &Labels) -> bool {
        selects_node(&self.node_selectors, node_labels)
    }

    /// Whether the routes go to this peer.
    pub fn selects_peer(&self, peer: &PeerName) -> bool {
        self.peers.is_empty() || self.peers.contains(peer)
    }
}

/// The AS a peer must have.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum PeerAsn {
    /// Exactly this AS.
    Exact(u32),
    /// Whatever the peer announces, if it equals the local AS (iBGP).
    Internal,
    /// Whatever the peer announces, if it differs from the local AS (eBGP).
    External,
}

impl PeerAsn {
    /// Whether the session is iBGP, given the local AS.
    pub fn is_internal(self, my_asn: u32) -> bool {
        match self {
            PeerAsn::Exact(asn) => asn == my_asn,
            PeerAsn::Internal => true,
            PeerAsn::External => false,
        }
    }
}

impl fmt::Display for PeerAsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PeerAsn::Exact(asn) => write!(f, "{asn}"),
            PeerAsn::Internal => f.write_str("internal"),
            PeerAsn::External => f.write_str("external"),
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
    /// The BFD profile of the session's BFD, if any.
    pub bfd_profile: Option<String>,
    /// The peer is more than one hop away.
    pub ebgp_multi_hop: bool,
    /// Announce graceful restart.
    pub graceful_restart: bool,
    /// One session per address family instead of one multiprotocol session.
    pub disable_mp: bool,
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

    /// Whether a node with these labels opens the session.
    pub fn selects_node(&self, node_labels: &Labels) -> bool {
        selects_node(&self.node_selectors, node_labels)
    }
}

/// A TCP MD5 password, kept out of debug output and logs.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Password(String);

impl Password {
    /// The longest TCP MD5 key Linux takes (TCP_MD5SIG_MAXKEYLEN).
    pub const MAX_LEN: usize = 80;

    /// Wraps a password that has been checked (no CR or LF, at most 80 bytes).
    pub(crate) fn new(password: String) -> Self {
        Self(password)
    }

    /// Checks a password read from elsewhere (a Secret); the error never echoes it.
    pub fn parse(password: &str) -> Result<Self, String> {
        if password.is_empty() {
            Err("is empty".into())
        } else if password.contains(['\r', '\n']) {
            Err("must not contain CR or LF".into())
        } else if password.len() > Self::MAX_LEN {
            Err(format!(
                "is {} bytes long; at most {} are allowed (TCP_MD5SIG_MAXKEYLEN)",
                password.len(),
                Self::MAX_LEN
            ))
        } else {
            Ok(Self(password.to_string()))
        }
    }

    /// The password itself, for the one place that configures the socket.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
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

/// A BGP community value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Community {
    /// A standard community (RFC 1997), `a:b`.
    Standard(u16, u16),
    /// A large community (RFC 8092), `large:a:b:c`.
    Large(u32, u32, u32),
}

/// Why a string is not a community value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CommunityError {
    /// Neither two nor four `:`-separated parts.
    #[error("{0:?} is not a community value: expected a:b (16-bit numbers) or large:a:b:c (32-bit numbers)")]
    Format(String),
    /// Four parts, but the first is not `large`.
    #[error("{0:?} is not a community value: a four-part community must start with \"large:\"")]
    Marker(String),
    /// A part is not a number of the right width.
    #[error("{community:?} is not a community value: {part:?} is not a {bits}-bit number")]
    Number {
        /// The whole value.
        community: String,
        /// The part at fault.
        part: String,
        /// 16 or 32.
        bits: u8,
    },
}

impl Community {
    /// The well-known communities by their names (RFC 1997, 7999, 8326, 3765).
    pub fn well_known(name: &str) -> Option<Community> {
        let low = match name {
            "graceful-shutdown" => 0,
            "blackhole" => 666,
            "no-export" => 0xff01,
            "no-advertise" => 0xff02,
            "no-export-subconfed" | "local-as" => 0xff03,
            "no-peer" => 0xff04,
            _ => return None,
        };
        Some(Community::Standard(0xffff, low))
    }
}

impl FromStr for Community {
    type Err = CommunityError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        // Decimal digits only: Rust's integer parsing would also take a leading '+'.
        fn number<T: FromStr>(s: &str, part: &str, bits: u8) -> Result<T, CommunityError> {
            let bad = || CommunityError::Number {
                community: s.to_owned(),
                part: part.to_owned(),
                bits,
            };
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            part.parse().map_err(|_| bad())
        }
        let parts: Vec<&str> = s.split(':').collect();
        match parts.as_slice() {
            [a, b] => Ok(Community::Standard(number(s, a, 16)?, number(s, b, 16)?)),
            ["large", a, b, c] => Ok(Community::Large(
                number(s, a, 32)?,
                number(s, b, 32)?,
                number(s, c, 32)?,
            )),
            [_, _, _, _] => Err(CommunityError::Marker(s.to_owned())),
            _ => Err(CommunityError::Format(s.to_owned())),
        }
    }
}

impl fmt::Display for Community {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Community::Standard(a, b) => write!(f, "{a}:{b}"),
            Community::Large(a, b, c) => write!(f, "large:{a}:{b}:{c}"),
        }
    }
}

impl TryFrom<String> for Community {
    type Error = CommunityError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Community> for String {
    fn from(c: Community) -> String {
        c.to_string()
    }
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
    fn communities_parse_and_print() {
        let c: Community = "65000:100".parse().unwrap();
        assert_eq!(c, Community::Standard(65000, 100));
        assert_eq!(c.to_string(), "65000:100");
        let c: Community = "large:4200000000:1:0".parse().unwrap();
        assert_eq!(c, Community::Large(4_200_000_000, 1, 0));
        assert_eq!(c.to_string(), "large:4200000000:1:0");
        assert_eq!(
            "65536:1".parse::<Community>().unwrap_err().to_string(),
            "\"65536:1\" is not a community value: \"65536\" is not a 16-bit number"
        );
        assert_eq!(
            "+1:1".parse::<Community>(),
            Err(CommunityError::Number {
                community: "+1:1".into(),
                part: "+1".into(),
                bits: 16
            })
        );
        assert!(matches!(
            "1:2:3".parse::<Community>(),
            Err(CommunityError::Format(_))
        ));
        assert!(matches!(
            "big:1:2:3".parse::<Community>(),
            Err(CommunityError::Marker(_))
        ));
        assert!(matches!(
            "large:1:2:4294967296".parse::<Community>(),
            Err(CommunityError::Number { bits: 32, .. })
        ));
        assert!(matches!(
            "".parse::<Community>(),
            Err(CommunityError::Format(_))
        ));
        let json = serde_json::to_string(&Community::Standard(1, 2)).unwrap();
        assert_eq!(json, "\"1:2\"");
    }

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
