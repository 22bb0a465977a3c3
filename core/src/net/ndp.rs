//! IPv6 Neighbor Discovery (RFC 4861) over Ethernet: recognising Neighbor Solicitations, and
//! building solicited and unsolicited Neighbor Advertisements. Pure: bytes in, bytes out.

use std::net::Ipv6Addr;

use pnet_base::MacAddr;
use pnet_packet::ethernet::{EtherTypes, EthernetPacket, MutableEthernetPacket};
use pnet_packet::icmpv6::ndp::{
    MutableNeighborAdvertPacket, NdpOption, NdpOptionTypes, NeighborAdvertFlags,
    NeighborSolicitPacket,
};
use pnet_packet::icmpv6::{self, Icmpv6Code, Icmpv6Packet, Icmpv6Types};
use pnet_packet::ip::IpNextHeaderProtocols;
use pnet_packet::ipv6::{Ipv6Packet, MutableIpv6Packet};
use pnet_packet::Packet;

/// A Neighbor Advertisement with one link-layer address option: 24 bytes plus 8.
const NA_LEN: usize = 32;
const ETH_LEN: usize = 14;
const IPV6_LEN: usize = 40;

/// The all-nodes multicast address, where unsolicited advertisements go.
pub const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

/// A Neighbor Solicitation worth answering.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Solicit {
    /// The address asked about.
    pub target: Ipv6Addr,
    /// The asker's address; unspecified (`::`) during duplicate address detection.
    pub source: Ipv6Addr,
    /// Where to send the answer on the link: the source link-layer address option, or the
    /// frame's source.
    pub reply_mac: MacAddr,
}

/// The solicited-node multicast group of `addr` (RFC 4291 section 2.7.1), which solicitations for
/// it are sent to.
pub fn solicited_node(addr: Ipv6Addr) -> Ipv6Addr {
    let o = addr.octets();
    Ipv6Addr::new(
        0xff02,
        0,
        0,
        0,
        0,
        1,
        0xff00 | u16::from(o[13]),
        u16::from_be_bytes([o[14], o[15]]),
    )
}

/// The Ethernet address an IPv6 multicast group maps to (RFC 2464 section 7).
pub fn multicast_mac(group: Ipv6Addr) -> MacAddr {
    let o = group.octets();
    MacAddr(0x33, 0x33, o[12], o[13], o[14], o[15])
}

/// Reads an Ethernet frame; returns the solicitation if it is a valid Neighbor Solicitation
/// (RFC 4861 section 7.1.1: hop limit 255, code 0, a correct checksum, well-formed options, and
/// no source link-layer option when the source is unspecified). Anything else is `None`.
pub fn parse_solicit(frame: &[u8]) -> Option<Solicit> {
    let eth = EthernetPacket::new(frame)?;
    if eth.get_ethertype() != EtherTypes::Ipv6 {
        return None;
    }
    let ip = Ipv6Packet::new(eth.payload())?;
    // An extension header would mean the solicitation was not sent the plain way every host
    // sends one; ignoring it is allowed (it cannot be validated without parsing the chain).
    if ip.get_version() != 6
        || ip.get_next_header() != IpNextHeaderProtocols::Icmpv6
        || ip.get_hop_limit() != 255
    {
        return None;
    }
    let declared = usize::from(ip.get_payload_length());
    let payload = ip.payload().get(..declared)?;
    let icmp = Icmpv6Packet::new(payload)?;
    if icmp.get_icmpv6_type() != Icmpv6Types::NeighborSolicit
        || icmp.get_icmpv6_code() != Icmpv6Code(0)
        || payload.len() < 24
    {
        return None;
    }
    let (source, destination) = (ip.get_source(), ip.get_destination());
    if icmpv6::checksum(&icmp, &source, &destination) != icmp.get_checksum() {
        return None;
    }
    let ns = NeighborSolicitPacket::new(payload)?;
    let target = ns.get_target_addr();
    if target.is_multicast() {
        return None;
    }
    let mut source_mac = None;
    for (kind, body) in options(&payload[24..])? {
        if kind == NdpOptionTypes::SourceLLAddr.0 {
            source_mac = mac_of(body);
        }
    }
    if source.is_unspecified() {
        // Duplicate address detection: sent to the target's solicited-node group, never with
        // a source link-layer address.
        if destination != solicited_node(target) || source_mac.is_some() {
            return None;
        }
    }
    let reply_mac = source_mac.unwrap_or_else(|| eth.get_source());
    if reply_mac.0 & 1 == 1 || reply_mac == MacAddr::zero() {
        return None;
    }
    Some(Solicit {
        target,
        source,
        reply_mac,
    })
}

/// Builds one advertisement frame for `target` at `mac`.
fn advert(
    mac: MacAddr,
    target: Ipv6Addr,
    eth_dst: MacAddr,
    ip_dst: Ipv6Addr,
    flags: u8,
) -> Vec<u8> {
    let mut buf = vec![0u8; ETH_LEN + IPV6_LEN + NA_LEN];
    // The buffer holds exactly the three headers, so none of the constructors below can fail.
    if let Some(mut eth) = MutableEthernetPacket::new(&mut buf) {
        eth.set_destination(eth_dst);
        eth.set_source(mac);
        eth.set_ethertype(EtherTypes::Ipv6);
    }
    let mut na_bytes = [0u8; NA_LEN];
    if let Some(mut na) = MutableNeighborAdvertPacket::new(&mut na_bytes) {
        na.set_icmpv6_type(Icmpv6Types::NeighborAdvert);
        na.set_icmpv6_code(Icmpv6Code(0));
        na.set_flags(flags);
        na.set_target_addr(target);
        na.set_options(&[NdpOption {
            option_type: NdpOptionTypes::TargetLLAddr,
            length: 1,
            data: mac.octets().to_vec(),
        }]);
    }
    let checksum = Icmpv6Packet::new(&na_bytes)
        .map(|p| icmpv6::checksum(&p, &target, &ip_dst))
        .unwrap_or_default();
    if let Some(mut na) = MutableNeighborAdvertPacket::new(&mut na_bytes) {
        na.set_checksum(checksum);
    }
    if let Some(mut ip) = MutableIpv6Packet::new(&mut buf[ETH_LEN..]) {
        ip.set_version(6);
        ip.set_payload_length(NA_LEN as u16);
        ip.set_next_header(IpNextHeaderProtocols::Icmpv6);
        ip.set_hop_limit(255);
        // The advertisement comes from the address it is about: the node may hold no other
        // address on this link.
        ip.set_source(target);
        ip.set_destination(ip_dst);
        ip.set_payload(&na_bytes);
    }
    buf
}

/// The answer to `solicit`: `mac` has its target. Solicited and override, to the asker; during
/// duplicate address detection, to all nodes and not solicited (RFC 4861 section 7.2.4).
pub fn answer(mac: MacAddr, solicit: &Solicit) -> Vec<u8> {
    if solicit.source.is_unspecified() {
        advert(
            mac,
            solicit.target,
            multicast_mac(ALL_NODES),
            ALL_NODES,
            NeighborAdvertFlags::Override,
        )
    } else {
        advert(
            mac,
            solicit.target,
            solicit.reply_mac,
            solicit.source,
            NeighborAdvertFlags::Solicited | NeighborAdvertFlags::Override,
        )
    }
}

/// An unsolicited advertisement to all nodes with the override flag: `mac` now has `target`
/// (RFC 4861 section 7.2.6).
pub fn unsolicited(mac: MacAddr, target: Ipv6Addr) -> Vec<u8> {
    advert(
        mac,
        target,
        multicast_mac(ALL_NODES),
        ALL_NODES,
        NeighborAdvertFlags::Override,
    )
}

/// The options after an NDP message's fixed part, as (type, bytes after the type and length),
/// or `None` if they are malformed. Walked here rather than by pnet, whose reader loops on a
/// zero length and overflows (a panic in debug builds) on lengths of 32 units and more.
fn options(mut rest: &[u8]) -> Option<Vec<(u8, &[u8])>> {
    let mut out = Vec::new();
    while !rest.is_empty() {
        let len = usize::from(*rest.get(1)?) * 8;
        if len == 0 || len > rest.len() {
            return None;
        }
        out.push((rest[0], &rest[2..len]));
        rest = &rest[len..];
    }
    Some(out)
}

/// The MAC address of a link-layer address option's body (one 8-byte unit: 6 bytes of address).
fn mac_of(body: &[u8]) -> Option<MacAddr> {
    match body {
        [a, b, c, d, e, f] => Some(MacAddr(*a, *b, *c, *d, *e, *f)),
        _ => None,
    }
}

/// What an advertisement says, for tests and captures: target, flags and target link-layer
/// address.
pub fn describe_advert(frame: &[u8]) -> Option<(Ipv6Addr, u8, MacAddr)> {
    let eth = EthernetPacket::new(frame)?;
    let ip = Ipv6Packet::new(eth.payload())?;
    let payload = ip.payload();
    let icmp = Icmpv6Packet::new(payload)?;
    if icmp.get_icmpv6_type() != Icmpv6Types::NeighborAdvert
        || icmpv6::checksum(&icmp, &ip.get_source(), &ip.get_destination()) != icmp.get_checksum()
    {
        return None;
    }
    let na = pnet_packet::icmpv6::ndp::NeighborAdvertPacket::new(payload)?;
    let (_, body) = *options(payload.get(24..)?)?.first()?;
    Some((na.get_target_addr(), na.get_flags(), mac_of(body)?))
}

/// A Neighbor Solicitation frame, as a host sends one (for tests and the lab's probes).
pub fn solicit_frame(mac: MacAddr, source: Ipv6Addr, target: Ipv6Addr) -> Vec<u8> {
    let group = solicited_node(target);
    let with_option = !source.is_unspecified();
    let icmp_len = if with_option { 32 } else { 24 };
    let mut icmp_bytes = vec![0u8; icmp_len];
    icmp_bytes[0] = Icmpv6Types::NeighborSolicit.0;
    icmp_bytes[8..24].copy_from_slice(&target.octets());
    if with_option {
        icmp_bytes[24] = NdpOptionTypes::SourceLLAddr.0;
        icmp_bytes[25] = 1;
        icmp_bytes[26..32].copy_from_slice(&mac.octets());
    }
    let checksum = Icmpv6Packet::new(&icmp_bytes)
        .map(|p| icmpv6::checksum(&p, &source, &group))
        .unwrap_or_default();
    icmp_bytes[2..4].copy_from_slice(&checksum.to_be_bytes());
    let mut buf = vec![0u8; ETH_LEN + IPV6_LEN + icmp_len];
    if let Some(mut eth) = MutableEthernetPacket::new(&mut buf) {
        eth.set_destination(multicast_mac(group));
        eth.set_source(mac);
        eth.set_ethertype(EtherTypes::Ipv6);
    }
    if let Some(mut ip) = MutableIpv6Packet::new(&mut buf[ETH_LEN..]) {
        ip.set_version(6);
        ip.set_payload_length(icmp_len as u16);
        ip.set_next_header(IpNextHeaderProtocols::Icmpv6);
        ip.set_hop_limit(255);
        ip.set_source(source);
        ip.set_destination(group);
        ip.set_payload(&icmp_bytes);
    }
    buf
}

#[cfg(test)]
mod tests {
    use super::*;

    const ME: MacAddr = MacAddr(0x02, 0, 0, 0, 0, 0x01);
    const CLIENT: MacAddr = MacAddr(0x02, 0, 0, 0, 0, 0x99);

    fn v6(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    #[test]
    fn solicited_node_groups_and_their_macs() {
        assert_eq!(
            solicited_node(v6("2001:db8::1:2345:6789")),
            v6("ff02::1:ff45:6789")
        );
        assert_eq!(
            multicast_mac(v6("ff02::1:ff45:6789")),
            MacAddr(0x33, 0x33, 0xff, 0x45, 0x67, 0x89)
        );
    }

    #[test]
    fn a_solicitation_is_read_and_answered_solicited_and_override() {
        let frame = solicit_frame(CLIENT, v6("2001:db8::99"), v6("2001:db8::10"));
        let s = parse_solicit(&frame).unwrap();
        assert_eq!(s.target, v6("2001:db8::10"));
        assert_eq!(s.reply_mac, CLIENT);
        let na = answer(ME, &s);
        let eth = EthernetPacket::new(&na).unwrap();
        assert_eq!(eth.get_destination(), CLIENT);
        let (target, flags, mac) = describe_advert(&na).unwrap();
        assert_eq!(target, s.target);
        assert_eq!(
            flags,
            NeighborAdvertFlags::Solicited | NeighborAdvertFlags::Override
        );
        assert_eq!(mac, ME);
        assert_eq!(parse_solicit(&na), None);
    }

    #[test]
    fn duplicate_address_detection_is_answered_to_all_nodes() {
        let frame = solicit_frame(CLIENT, Ipv6Addr::UNSPECIFIED, v6("2001:db8::10"));
        let s = parse_solicit(&frame).unwrap();
        let na = answer(ME, &s);
        let eth = EthernetPacket::new(&na).unwrap();
        assert_eq!(eth.get_destination(), multicast_mac(ALL_NODES));
        let (_, flags, _) = describe_advert(&na).unwrap();
        assert_eq!(flags, NeighborAdvertFlags::Override);
    }

    #[test]
    fn unsolicited_advertisements_override_and_go_to_all_nodes() {
        let na = unsolicited(ME, v6("2001:db8::10"));
        let (target, flags, mac) = describe_advert(&na).unwrap();
        assert_eq!(
            (target, flags, mac),
            (v6("2001:db8::10"), NeighborAdvertFlags::Override, ME)
        );
    }

    #[test]
    fn invalid_solicitations_are_ignored() {
        let good = solicit_frame(CLIENT, v6("2001:db8::99"), v6("2001:db8::10"));
        for len in 0..good.len() {
            assert_eq!(parse_solicit(&good[..len]), None, "length {len}");
        }
        let mut hop = good.clone();
        hop[ETH_LEN + 7] = 64;
        assert_eq!(parse_solicit(&hop), None, "hop limit");
        let mut sum = good.clone();
        let last = sum.len() - 1;
        sum[last] ^= 0xff;
        assert_eq!(parse_solicit(&sum), None, "checksum");
        let mut zero_len_option = good.clone();
        zero_len_option[ETH_LEN + IPV6_LEN + 25] = 0;
        assert_eq!(parse_solicit(&zero_len_option), None, "zero-length option");
        let mut multicast_target = solicit_frame(CLIENT, v6("2001:db8::99"), v6("ff02::1"));
        assert_eq!(parse_solicit(&multicast_target), None, "multicast target");
        multicast_target.truncate(10);
        assert_eq!(parse_solicit(&multicast_target), None);
    }
}
