//! BGP messages as the speaker builds and reads them, over netgauze-bgp-pkt: OPEN with its
//! capabilities, UPDATEs packed up to the 4096-byte limit (classic NLRI for IPv4, MP_REACH and
//! MP_UNREACH for IPv6), End-of-RIB, NOTIFICATIONs and their codes, and a frame codec that
//! checks message lengths before parsing. Knows nothing of sockets.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use bytes::{Buf, BytesMut};
use ipnet::IpNet;
use netgauze_bgp_pkt::capabilities::{
    BgpCapability, FourOctetAsCapability, GracefulRestartAddressFamily, GracefulRestartCapability,
    MultiProtocolExtensionsCapability,
};
use netgauze_bgp_pkt::community::{Community as WireCommunity, LargeCommunity};
use netgauze_bgp_pkt::nlri::{Ipv4Unicast, Ipv4UnicastAddress, Ipv6Unicast, Ipv6UnicastAddress};
use netgauze_bgp_pkt::notification::{
    BgpNotificationMessage, CeaseError, FiniteStateMachineError, HoldTimerExpiredError,
    MessageHeaderError, OpenMessageError, RouteRefreshError, UpdateMessageError,
};
use netgauze_bgp_pkt::open::{BgpOpenMessage, BgpOpenMessageParameter};
use netgauze_bgp_pkt::path_attribute::{
    As2PathSegment, As4Path, As4PathSegment, AsPath, AsPathSegmentType, Communities,
    LargeCommunities, LocalPreference, MpReach, MpUnreach, NextHop, Origin, PathAttribute,
    PathAttributeValue,
};
use netgauze_bgp_pkt::update::BgpUpdateMessage;
use netgauze_bgp_pkt::wire::deserializer::{BgpMessageParsingError, BgpParsingContext};
use netgauze_bgp_pkt::BgpMessage;
use netgauze_iana::address_family::AddressType;
use netgauze_parse_utils::reader::SliceReader;
use netgauze_parse_utils::traits::ParseFromWithOneInput;
use netgauze_parse_utils::WritablePdu;

use super::attrs::Community;
use super::attrs::RouteAttrs;
pub use super::families::Families;

/// The largest BGP message (RFC 4271 section 4).
pub const MAX_MESSAGE_LEN: usize = 4096;
/// The smallest: a header alone.
pub const HEADER_LEN: usize = 19;
/// The 2-octet AS a 4-octet AS shows in 2-octet fields (RFC 6793).
pub const AS_TRANS: u16 = 23456;

/// What the speaker says in its OPEN.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenParams {
    /// The local AS.
    pub asn: u32,
    /// The hold time proposed, seconds (0 or at least 3).
    pub hold_time: u16,
    /// The BGP identifier.
    pub router_id: Ipv4Addr,
    /// Graceful restart with this restart time (seconds, at most 4095), if configured.
    pub graceful_restart: Option<u16>,
    /// The unicast families offered (multiprotocol capabilities).
    pub families: Families,
}

/// The speaker's OPEN: 4-octet AS, a multiprotocol capability for each family offered, route
/// refresh, and graceful restart when asked.
pub fn open(p: &OpenParams) -> BgpMessage {
    let my_as16 = u16::try_from(p.asn).unwrap_or(AS_TRANS);
    let mut caps: Vec<BgpCapability> = p
        .families
        .address_types()
        .into_iter()
        .map(|t| BgpCapability::MultiProtocolExtensions(MultiProtocolExtensionsCapability::new(t)))
        .collect();
    caps.push(BgpCapability::RouteRefresh);
    caps.push(BgpCapability::FourOctetAs(FourOctetAsCapability::new(
        p.asn,
    )));
    if let Some(time) = p.graceful_restart {
        // Forwarding is preserved: the nodes keep forwarding Service traffic whatever the
        // speaker process does.
        let families: Vec<GracefulRestartAddressFamily> = p
            .families
            .address_types()
            .into_iter()
            .map(|t| GracefulRestartAddressFamily::new(true, t))
            .collect();
        caps.push(BgpCapability::GracefulRestartCapability(
            GracefulRestartCapability::new(false, false, time.min(4095), families),
        ));
    }
    BgpMessage::Open(BgpOpenMessage::new(
        my_as16,
        p.hold_time,
        p.router_id,
        vec![BgpOpenMessageParameter::new_capabilities(caps)],
    ))
}

/// What a peer's OPEN says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerOpen {
    /// Its BGP version.
    pub version: u8,
    /// Its AS (from the 4-octet capability when present).
    pub asn: u32,
    /// Its hold time, seconds.
    pub hold_time: u16,
    /// Its BGP identifier.
    pub router_id: Ipv4Addr,
    /// It speaks 4-octet AS numbers.
    pub four_octet_as: bool,
    /// It takes IPv4 unicast routes.
    pub ipv4_unicast: bool,
    /// It takes IPv6 unicast routes.
    pub ipv6_unicast: bool,
    /// It takes ROUTE-REFRESH.
    pub route_refresh: bool,
    /// Its graceful restart time, if it announced graceful restart.
    pub graceful_restart: Option<u16>,
}

/// Reads a peer's OPEN.
pub fn read_open(o: &BgpOpenMessage) -> PeerOpen {
    let caps = o.capabilities();
    let mut p = PeerOpen {
        version: o.version(),
        asn: o.my_asn4(),
        hold_time: o.hold_time(),
        router_id: o.bgp_id(),
        four_octet_as: false,
        ipv4_unicast: false,
        ipv6_unicast: false,
        route_refresh: false,
        graceful_restart: None,
    };
    let mut any_mp = false;
    for cap in caps {
        match cap {
            BgpCapability::FourOctetAs(_) => p.four_octet_as = true,
            BgpCapability::MultiProtocolExtensions(c) => {
                any_mp = true;
                match c.address_type() {
                    AddressType::Ipv4Unicast => p.ipv4_unicast = true,
                    AddressType::Ipv6Unicast => p.ipv6_unicast = true,
                    _ => {}
                }
            }
            BgpCapability::RouteRefresh
            | BgpCapability::EnhancedRouteRefresh
            | BgpCapability::CiscoRouteRefresh => p.route_refresh = true,
            BgpCapability::GracefulRestartCapability(c) => p.graceful_restart = Some(c.time()),
            _ => {}
        }
    }
    // A peer that announces no multiprotocol capability speaks plain IPv4 unicast (RFC 4760).
    if !any_mp {
        p.ipv4_unicast = true;
    }
    p
}

/// How an established session writes UPDATEs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outgoing {
    /// The local AS.
    pub my_asn: u32,
    /// iBGP: an empty AS_PATH and LOCAL_PREF; eBGP: the local AS in the AS_PATH.
    pub ibgp: bool,
    /// The peer speaks 4-octet AS numbers.
    pub asn4: bool,
    /// NEXT_HOP for IPv4 routes (the session's local IPv4 address), if the session has one.
    pub next_hop_v4: Option<Ipv4Addr>,
    /// Next hop of IPv6 routes (a global address of the node's interface toward the peer).
    pub next_hop_v6: Option<Ipv6Addr>,
    /// IPv4 unicast was negotiated.
    pub ipv4: bool,
    /// IPv6 unicast was negotiated.
    pub ipv6: bool,
}

impl Outgoing {
    /// Whether routes of `prefix`'s family can be sent on this session.
    pub fn carries(&self, prefix: &IpNet) -> bool {
        match prefix {
            IpNet::V4(_) => self.ipv4 && self.next_hop_v4.is_some(),
            IpNet::V6(_) => self.ipv6 && self.next_hop_v6.is_some(),
        }
    }
}

fn attr(optional: bool, transitive: bool, v: PathAttributeValue) -> Option<PathAttribute> {
    // Extended length always: a value over 255 bytes with a one-byte length corrupts the
    // message (netgauze writes the length it needs but does not set the flag).
    PathAttribute::from(optional, transitive, false, true, v).ok()
}

/// The attributes shared by every route of a group, without the NLRI.
fn attributes(out: &Outgoing, attrs: &RouteAttrs, v4: bool) -> Vec<PathAttribute> {
    let mut a = Vec::new();
    a.extend(attr(false, true, PathAttributeValue::Origin(Origin::IGP)));
    a.extend(attr(false, true, PathAttributeValue::AsPath(as_path(out))));
    // A 2-octet peer learns a 4-octet AS from AS4_PATH (RFC 6793 section 4.2.2).
    if !out.ibgp && !out.asn4 && out.my_asn > u32::from(u16::MAX) {
        a.extend(attr(
            true,
            true,
            PathAttributeValue::As4Path(As4Path::new(vec![As4PathSegment::new(
                AsPathSegmentType::AsSequence,
                vec![out.my_asn],
            )])),
        ));
    }
    if v4 {
        if let Some(nh) = out.next_hop_v4 {
            a.extend(attr(
                false,
                true,
                PathAttributeValue::NextHop(NextHop::new(nh)),
            ));
        }
    }
    if out.ibgp {
        a.extend(attr(
            false,
            true,
            PathAttributeValue::LocalPreference(LocalPreference::new(
                attrs.local_pref.unwrap_or(100),
            )),
        ));
    }
    a.extend(community_attributes(attrs));
    a
}

/// The AS_PATH: empty for iBGP, the local AS for eBGP (AS_TRANS to a 2-octet peer when the
/// local AS does not fit).
fn as_path(out: &Outgoing) -> AsPath {
    if out.ibgp {
        if out.asn4 {
            AsPath::As4PathSegments(Box::new([]))
        } else {
            AsPath::As2PathSegments(Box::new([]))
        }
    } else if out.asn4 {
        AsPath::As4PathSegments(
            vec![As4PathSegment::new(
                AsPathSegmentType::AsSequence,
                vec![out.my_asn],
            )]
            .into(),
        )
    } else {
        AsPath::As2PathSegments(
            vec![As2PathSegment::new(
                AsPathSegmentType::AsSequence,
                vec![u16::try_from(out.my_asn).unwrap_or(AS_TRANS)],
            )]
            .into(),
        )
    }
}

/// COMMUNITIES and LARGE_COMMUNITY, each only if the route has communities of its kind.
fn community_attributes(attrs: &RouteAttrs) -> Vec<PathAttribute> {
    let mut a = Vec::new();
    let standard: Vec<WireCommunity> = attrs
        .communities
        .iter()
        .filter_map(|c| match c {
            Community::Standard(hi, lo) => {
                Some(WireCommunity::new((u32::from(*hi) << 16) | u32::from(*lo)))
            }
            Community::Large(..) => None,
        })
        .collect();
    if !standard.is_empty() {
        a.extend(attr(
            true,
            true,
            PathAttributeValue::Communities(Communities::new(standard)),
        ));
    }
    let large: Vec<LargeCommunity> = attrs
        .communities
        .iter()
        .filter_map(|c| match c {
            Community::Large(g, d1, d2) => Some(LargeCommunity::new(*g, *d1, *d2)),
            Community::Standard(..) => None,
        })
        .collect();
    if !large.is_empty() {
        a.extend(attr(
            true,
            true,
            PathAttributeValue::LargeCommunities(LargeCommunities::new(large)),
        ));
    }
    a
}

fn v4_nlri(net: ipnet::Ipv4Net) -> Option<Ipv4UnicastAddress> {
    Ipv4Unicast::from_net(net.trunc())
        .ok()
        .map(Ipv4UnicastAddress::new_no_path_id)
}

fn v6_nlri(net: ipnet::Ipv6Net) -> Option<Ipv6UnicastAddress> {
    Ipv6Unicast::from_net(net.trunc())
        .ok()
        .map(|n| Ipv6UnicastAddress::new(None, n))
}

fn update(
    withdrawn: Vec<Ipv4UnicastAddress>,
    attrs: Vec<PathAttribute>,
    nlri: Vec<Ipv4UnicastAddress>,
) -> BgpMessage {
    BgpMessage::Update(BgpUpdateMessage::new(withdrawn, attrs, nlri))
}

/// Splits `items` into runs whose encoded sizes plus `fixed` stay within one message.
fn pack<T, F: Fn(&T) -> usize>(items: Vec<T>, fixed: usize, size: F) -> Vec<Vec<T>> {
    let mut out = Vec::new();
    let mut cur = Vec::new();
    let mut len = fixed;
    for item in items {
        let n = size(&item);
        if !cur.is_empty() && len + n > MAX_MESSAGE_LEN {
            out.push(std::mem::take(&mut cur));
            len = fixed;
        }
        len += n;
        cur.push(item);
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// UPDATEs withdrawing `withdraw` and announcing `announce` (routes sharing attributes go
/// together, as many per message as fit in 4096 bytes). Prefixes of a family the session
/// does not carry are left out.
pub fn updates<A: std::borrow::Borrow<RouteAttrs>>(
    out: &Outgoing,
    announce: &[(IpNet, A)],
    withdraw: &[IpNet],
) -> Vec<BgpMessage> {
    let mut msgs = Vec::new();
    // The empty UPDATE's size: header, two length fields.
    let base = HEADER_LEN + 4;
    let withdrawn = withdraw.iter().filter(|p| out.carries(p));
    for chunk in pack(v4_nlris(withdrawn.clone()), base, |n| n.len()) {
        msgs.push(update(chunk, vec![], vec![]));
    }
    // MP_UNREACH: flags, type, 2-byte length, AFI, SAFI.
    for chunk in pack(v6_nlris(withdrawn), base + 4 + 3, |n| n.len()) {
        msgs.extend(
            attr(
                true,
                false,
                PathAttributeValue::MpUnreach(MpUnreach::Ipv6Unicast { nlri: chunk.into() }),
            )
            .map(|a| update(vec![], vec![a], vec![])),
        );
    }
    let mut groups: BTreeMap<(bool, &RouteAttrs), Vec<IpNet>> = BTreeMap::new();
    for (prefix, attrs) in announce.iter().filter(|(p, _)| out.carries(p)) {
        groups
            .entry((prefix.addr().is_ipv4(), attrs.borrow()))
            .or_default()
            .push(*prefix);
    }
    for ((is_v4, attrs), prefixes) in groups {
        let shared = attributes(out, attrs, is_v4);
        if is_v4 {
            msgs.extend(announce_v4(base, &shared, &prefixes));
        } else if let Some(nh) = out.next_hop_v6 {
            msgs.extend(announce_v6(base, &shared, nh, &prefixes));
        }
    }
    msgs
}

/// The IPv4 prefixes of `prefixes`, as NLRI.
fn v4_nlris<'a>(prefixes: impl Iterator<Item = &'a IpNet>) -> Vec<Ipv4UnicastAddress> {
    prefixes
        .filter_map(|p| match p {
            IpNet::V4(n) => v4_nlri(*n),
            IpNet::V6(_) => None,
        })
        .collect()
}

/// The IPv6 prefixes of `prefixes`, as NLRI.
fn v6_nlris<'a>(prefixes: impl Iterator<Item = &'a IpNet>) -> Vec<Ipv6UnicastAddress> {
    prefixes
        .filter_map(|p| match p {
            IpNet::V6(n) => v6_nlri(*n),
            IpNet::V4(_) => None,
        })
        .collect()
}

/// UPDATEs announcing IPv4 `prefixes` with the `shared` attributes, in classic NLRI.
fn announce_v4(base: usize, shared: &[PathAttribute], prefixes: &[IpNet]) -> Vec<BgpMessage> {
    let shared_len: usize = shared.iter().map(WritablePdu::len).sum();
    pack(v4_nlris(prefixes.iter()), base + shared_len, |n| n.len())
        .into_iter()
        .map(|chunk| update(vec![], shared.to_vec(), chunk))
        .collect()
}

/// UPDATEs announcing IPv6 `prefixes` with the `shared` attributes, in MP_REACH with next
/// hop `nh`.
fn announce_v6(
    base: usize,
    shared: &[PathAttribute],
    nh: Ipv6Addr,
    prefixes: &[IpNet],
) -> Vec<BgpMessage> {
    let shared_len: usize = shared.iter().map(WritablePdu::len).sum();
    let mut msgs = Vec::new();
    // MP_REACH: flags, type, 2-byte length, AFI, SAFI, next-hop length, 16-byte next
    // hop, reserved byte.
    for chunk in pack(
        v6_nlris(prefixes.iter()),
        base + shared_len + 4 + 3 + 1 + 16 + 1,
        |n| n.len(),
    ) {
        let reach = attr(
            true,
            false,
            PathAttributeValue::MpReach(MpReach::Ipv6Unicast {
                next_hop_global: nh,
                next_hop_local: None,
                nlri: chunk.into(),
            }),
        );
        let mut attrs = shared.to_vec();
        attrs.extend(reach);
        msgs.push(update(vec![], attrs, vec![]));
    }
    msgs
}

/// The End-of-RIB marker of a family (RFC 4724 section 2).
pub fn end_of_rib(v6: bool) -> BgpMessage {
    if v6 {
        let a = attr(
            true,
            false,
            PathAttributeValue::MpUnreach(MpUnreach::Ipv6Unicast { nlri: Box::new([]) }),
        );
        update(vec![], a.into_iter().collect(), vec![])
    } else {
        update(vec![], vec![], vec![])
    }
}

/// A NOTIFICATION this speaker sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Notify {
    /// No message within the hold time.
    HoldTimerExpired,
    /// The session is closed on purpose.
    AdministrativeShutdown,
    /// The configuration changed.
    OtherConfigurationChange,
    /// The session's BFD went down (Cease subcode 10, RFC 9384).
    BfdDown,
    /// A message that has no place in the state (`state`: 1 OpenSent, 2 OpenConfirm, 3
    /// Established).
    UnexpectedMessage(u8),
    /// The OPEN names another AS than configured.
    BadPeerAs,
    /// The hold time is 1 or 2 seconds.
    UnacceptableHoldTime,
    /// The BGP identifier is ours (or zero).
    BadBgpIdentifier,
    /// A BGP version other than 4.
    UnsupportedVersion,
}

/// The NOTIFICATION message for `n`.
pub fn notification(n: Notify) -> BgpMessage {
    let empty = || -> Box<[u8]> { Box::new([]) };
    BgpMessage::Notification(match n {
        Notify::HoldTimerExpired => {
            BgpNotificationMessage::HoldTimerExpiredError(HoldTimerExpiredError::Unspecific {
                sub_code: 0,
                value: empty(),
            })
        }
        Notify::AdministrativeShutdown => {
            BgpNotificationMessage::CeaseError(CeaseError::AdministrativeShutdown {
                value: empty(),
            })
        }
        Notify::OtherConfigurationChange => {
            BgpNotificationMessage::CeaseError(CeaseError::OtherConfigurationChange {
                value: empty(),
            })
        }
        Notify::BfdDown => {
            BgpNotificationMessage::CeaseError(CeaseError::BfdDown { value: empty() })
        }
        Notify::UnexpectedMessage(1) => BgpNotificationMessage::FiniteStateMachineError(
            FiniteStateMachineError::ReceiveUnexpectedMessageInOpenSentState { value: empty() },
        ),
        Notify::UnexpectedMessage(2) => BgpNotificationMessage::FiniteStateMachineError(
            FiniteStateMachineError::ReceiveUnexpectedMessageInOpenConfirmState { value: empty() },
        ),
        Notify::UnexpectedMessage(_) => BgpNotificationMessage::FiniteStateMachineError(
            FiniteStateMachineError::ReceiveUnexpectedMessageInEstablishedState { value: empty() },
        ),
        Notify::BadPeerAs => {
            BgpNotificationMessage::OpenMessageError(OpenMessageError::BadPeerAs { value: empty() })
        }
        Notify::UnacceptableHoldTime => {
            BgpNotificationMessage::OpenMessageError(OpenMessageError::UnacceptableHoldTime {
                value: empty(),
            })
        }
        Notify::BadBgpIdentifier => {
            BgpNotificationMessage::OpenMessageError(OpenMessageError::BadBgpIdentifier {
                value: empty(),
            })
        }
        Notify::UnsupportedVersion => {
            BgpNotificationMessage::OpenMessageError(OpenMessageError::UnsupportedVersionNumber {
                value: Box::new([0, 4]),
            })
        }
    })
}

/// The error code and subcode of a NOTIFICATION.
pub fn notification_code(n: &BgpNotificationMessage) -> (u8, u8) {
    use BgpNotificationMessage as N;
    match n {
        N::MessageHeaderError(e) => (
            1,
            match e {
                MessageHeaderError::Unspecific { .. } => 0,
                MessageHeaderError::ConnectionNotSynchronized { .. } => 1,
                MessageHeaderError::BadMessageLength { .. } => 2,
                MessageHeaderError::BadMessageType { .. } => 3,
            },
        ),
        N::OpenMessageError(e) => (
            2,
            match e {
                OpenMessageError::Unspecific { .. } => 0,
                OpenMessageError::UnsupportedVersionNumber { .. } => 1,
                OpenMessageError::BadPeerAs { .. } => 2,
                OpenMessageError::BadBgpIdentifier { .. } => 3,
                OpenMessageError::UnsupportedOptionalParameter { .. } => 4,
                OpenMessageError::UnacceptableHoldTime { .. } => 6,
                OpenMessageError::UnsupportedCapability { .. } => 7,
                OpenMessageError::RoleMismatch { .. } => 11,
            },
        ),
        N::UpdateMessageError(e) => (
            3,
            match e {
                UpdateMessageError::Unspecific { .. } => 0,
                UpdateMessageError::MalformedAttributeList { .. } => 1,
                UpdateMessageError::UnrecognizedWellKnownAttribute { .. } => 2,
                UpdateMessageError::MissingWellKnownAttribute { .. } => 3,
                UpdateMessageError::AttributeFlagsError { .. } => 4,
                UpdateMessageError::AttributeLengthError { .. } => 5,
                UpdateMessageError::InvalidOriginAttribute { .. } => 6,
                UpdateMessageError::InvalidNextHopAttribute { .. } => 8,
                UpdateMessageError::OptionalAttributeError { .. } => 9,
                UpdateMessageError::InvalidNetworkField { .. } => 10,
                UpdateMessageError::MalformedAsPath { .. } => 11,
            },
        ),
        N::HoldTimerExpiredError(HoldTimerExpiredError::Unspecific { sub_code, .. }) => {
            (4, *sub_code)
        }
        N::FiniteStateMachineError(e) => (
            5,
            match e {
                FiniteStateMachineError::Unspecific { .. } => 0,
                FiniteStateMachineError::ReceiveUnexpectedMessageInOpenSentState { .. } => 1,
                FiniteStateMachineError::ReceiveUnexpectedMessageInOpenConfirmState { .. } => 2,
                FiniteStateMachineError::ReceiveUnexpectedMessageInEstablishedState { .. } => 3,
            },
        ),
        N::CeaseError(e) => (
            6,
            match e {
                CeaseError::MaximumNumberOfPrefixesReached { .. } => 1,
                CeaseError::AdministrativeShutdown { .. } => 2,
                CeaseError::PeerDeConfigured { .. } => 3,
                CeaseError::AdministrativeReset { .. } => 4,
                CeaseError::ConnectionRejected { .. } => 5,
                CeaseError::OtherConfigurationChange { .. } => 6,
                CeaseError::ConnectionCollisionResolution { .. } => 7,
                CeaseError::OutOfResources { .. } => 8,
                CeaseError::HardReset { .. } => 9,
                CeaseError::BfdDown { .. } => 10,
            },
        ),
        N::RouteRefreshError(RouteRefreshError::InvalidMessageLength { .. }) => (7, 1),
    }
}

/// Why a frame could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The stream failed.
    #[error("connection: {0}")]
    Io(#[from] std::io::Error),
    /// The declared length is below 19 or above 4096 (NOTIFICATION 1/2).
    #[error("bad message length {0}")]
    BadLength(u16),
    /// The message could not be parsed; the NOTIFICATION that says why.
    #[error("malformed message: {0:?}")]
    Malformed(Box<BgpNotificationMessage>),
    /// The message could not be written.
    #[error("cannot encode a message: {0}")]
    Encode(String),
}

impl FrameError {
    /// The NOTIFICATION to answer with, if the error is the peer's.
    pub fn notification(&self) -> Option<BgpMessage> {
        match self {
            FrameError::BadLength(len) => Some(BgpMessage::Notification(
                BgpNotificationMessage::MessageHeaderError(MessageHeaderError::BadMessageLength {
                    value: len.to_be_bytes().into(),
                }),
            )),
            FrameError::Malformed(n) => Some(BgpMessage::Notification((**n).clone())),
            FrameError::Io(_) | FrameError::Encode(_) => None,
        }
    }
}

/// A strict parsing context (malformed attributes are errors, not silently dropped).
pub fn strict_context(asn4: bool) -> BgpParsingContext {
    BgpParsingContext::new(asn4, HashMap::new(), HashMap::new(), true, true, true, true)
}

/// Parses exactly one message.
pub fn decode(
    buf: &[u8],
    ctx: &mut BgpParsingContext,
) -> Result<BgpMessage, BgpMessageParsingError> {
    BgpMessage::parse(&mut SliceReader::new(buf), ctx)
}

/// Encodes one message.
pub fn encode(msg: &BgpMessage) -> Result<Vec<u8>, FrameError> {
    let mut buf = Vec::with_capacity(msg.len());
    msg.write(&mut buf)
        .map_err(|e| FrameError::Encode(format!("{e:?}")))?;
    Ok(buf)
}

/// The session's frame codec: length checked against RFC 4271's bounds before anything is
/// parsed, then a strict parse with the session's negotiated AS number width.
#[derive(Debug)]
pub struct Frames {
    ctx: BgpParsingContext,
}

impl Default for Frames {
    fn default() -> Self {
        Self::new()
    }
}

impl Frames {
    /// A codec for a session whose OPENs are not exchanged yet.
    pub fn new() -> Self {
        Self {
            ctx: strict_context(true),
        }
    }

    /// Whether AS numbers in AS_PATH are 4 octets (both sides announced the capability).
    pub fn set_asn4(&mut self, asn4: bool) {
        self.ctx.set_asn4(asn4);
    }
}

impl tokio_util::codec::Decoder for Frames {
    type Item = BgpMessage;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<BgpMessage>, FrameError> {
        if src.len() < HEADER_LEN {
            return Ok(None);
        }
        let len = u16::from_be_bytes([src[16], src[17]]);
        if usize::from(len) < HEADER_LEN || usize::from(len) > MAX_MESSAGE_LEN {
            return Err(FrameError::BadLength(len));
        }
        if src.len() < usize::from(len) {
            src.reserve(usize::from(len) - src.len());
            return Ok(None);
        }
        let frame = src.split_to(usize::from(len));
        match decode(&frame, &mut self.ctx) {
            Ok(m) => Ok(Some(m)),
            Err(e) => Err(FrameError::Malformed(Box::new(e.into()))),
        }
    }
}

impl tokio_util::codec::Encoder<BgpMessage> for Frames {
    type Error = FrameError;

    fn encode(&mut self, msg: BgpMessage, dst: &mut BytesMut) -> Result<(), FrameError> {
        let bytes = encode(&msg)?;
        dst.extend_from_slice(&bytes);
        Ok(())
    }
}

/// Skips whatever of `src` is left (after an error the stream cannot be trusted).
pub fn discard(src: &mut BytesMut) {
    let n = src.remaining();
    src.advance(n);
}

/// Every prefix an UPDATE announces or withdraws, for tests and logs: (announced, withdrawn).
pub fn prefixes(msg: &BgpMessage) -> (Vec<IpNet>, Vec<IpNet>) {
    let mut ann = Vec::new();
    let mut wd = Vec::new();
    let BgpMessage::Update(u) = msg else {
        return (ann, wd);
    };
    for n in u.nlri() {
        ann.push(IpNet::V4(n.network().address()));
    }
    for n in u.withdraw_routes() {
        wd.push(IpNet::V4(n.network().address()));
    }
    for a in u.path_attributes() {
        match a.value() {
            PathAttributeValue::MpReach(MpReach::Ipv6Unicast { nlri, .. }) => {
                ann.extend(nlri.iter().map(|n| IpNet::V6(n.network().address())));
            }
            PathAttributeValue::MpUnreach(MpUnreach::Ipv6Unicast { nlri }) => {
                wd.extend(nlri.iter().map(|n| IpNet::V6(n.network().address())));
            }
            _ => {}
        }
    }
    (ann, wd)
}

/// The next hop of an IPv4 route or the global next hop of an IPv6 one, for tests.
pub fn next_hop(msg: &BgpMessage) -> Option<IpAddr> {
    let BgpMessage::Update(u) = msg else {
        return None;
    };
    u.path_attributes().iter().find_map(|a| match a.value() {
        PathAttributeValue::NextHop(n) => Some(IpAddr::V4(n.next_hop())),
        PathAttributeValue::MpReach(MpReach::Ipv6Unicast {
            next_hop_global, ..
        }) => Some(IpAddr::V6(*next_hop_global)),
        _ => None,
    })
}

#[cfg(test)]
mod tests;
