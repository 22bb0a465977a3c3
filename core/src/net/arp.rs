//! ARP (RFC 826) for IPv4 over Ethernet: recognising who-has requests, and building replies and
//! gratuitous announcements (RFC 5227 section 3). Pure: bytes in, bytes out.

use std::net::Ipv4Addr;

use pnet_base::MacAddr;
use pnet_packet::arp::{
    ArpHardwareTypes, ArpOperation, ArpOperations, ArpPacket, MutableArpPacket,
};
use pnet_packet::ethernet::{EtherTypes, EthernetPacket, MutableEthernetPacket};
use pnet_packet::{MutablePacket, Packet};

use super::MIN_FRAME_LEN;

/// Ethernet header plus an ARP packet for IPv4.
const ARP_FRAME_LEN: usize = 14 + 28;

/// A who-has question worth answering.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WhoHas {
    /// Who asks (the ARP sender hardware address).
    pub sender_mac: MacAddr,
    /// The asker's address (0.0.0.0 for an RFC 5227 probe).
    pub sender_ip: Ipv4Addr,
    /// The address asked about.
    pub target_ip: Ipv4Addr,
}

/// Reads an Ethernet frame; returns the question if it is an ARP request for IPv4 over Ethernet
/// that asks about another host. Anything else (replies, other hardware or protocol types,
/// truncated packets, gratuitous announcements) is `None`.
pub fn parse_request(frame: &[u8]) -> Option<WhoHas> {
    let eth = EthernetPacket::new(frame)?;
    if eth.get_ethertype() != EtherTypes::Arp {
        return None;
    }
    let arp = ArpPacket::new(eth.payload())?;
    let well_formed = arp.get_hardware_type() == ArpHardwareTypes::Ethernet
        && arp.get_protocol_type() == EtherTypes::Ipv4
        && arp.get_hw_addr_len() == 6
        && arp.get_proto_addr_len() == 4
        && arp.get_operation() == ArpOperations::Request;
    if !well_formed {
        return None;
    }
    let who = WhoHas {
        sender_mac: arp.get_sender_hw_addr(),
        sender_ip: arp.get_sender_proto_addr(),
        target_ip: arp.get_target_proto_addr(),
    };
    // A request whose sender and target are the same address announces that address (a
    // gratuitous ARP); nobody waits for an answer. A sender MAC that is multicast or zero is
    // forged or broken, and a reply to it would go nowhere useful.
    let announces = who.sender_ip == who.target_ip;
    let bad_sender = who.sender_mac == MacAddr::zero() || is_multicast(who.sender_mac);
    (!announces && !bad_sender).then_some(who)
}

fn is_multicast(mac: MacAddr) -> bool {
    mac.0 & 1 == 1
}

/// Builds one ARP frame, padded to the Ethernet minimum.
#[allow(clippy::too_many_arguments)]
fn frame(
    eth_dst: MacAddr,
    eth_src: MacAddr,
    op: ArpOperation,
    sender_mac: MacAddr,
    sender_ip: Ipv4Addr,
    target_mac: MacAddr,
    target_ip: Ipv4Addr,
) -> Vec<u8> {
    let mut buf = vec![0u8; MIN_FRAME_LEN.max(ARP_FRAME_LEN)];
    // The buffer is sized for both headers above, so neither constructor can fail.
    if let Some(mut eth) = MutableEthernetPacket::new(&mut buf) {
        eth.set_destination(eth_dst);
        eth.set_source(eth_src);
        eth.set_ethertype(EtherTypes::Arp);
        if let Some(mut arp) = MutableArpPacket::new(eth.payload_mut()) {
            arp.set_hardware_type(ArpHardwareTypes::Ethernet);
            arp.set_protocol_type(EtherTypes::Ipv4);
            arp.set_hw_addr_len(6);
            arp.set_proto_addr_len(4);
            arp.set_operation(op);
            arp.set_sender_hw_addr(sender_mac);
            arp.set_sender_proto_addr(sender_ip);
            arp.set_target_hw_addr(target_mac);
            arp.set_target_proto_addr(target_ip);
        }
    }
    buf
}

/// The reply to `question` saying that `mac` has its target address.
pub fn reply(mac: MacAddr, question: &WhoHas) -> Vec<u8> {
    frame(
        question.sender_mac,
        mac,
        ArpOperations::Reply,
        mac,
        question.target_ip,
        question.sender_mac,
        question.sender_ip,
    )
}

/// Gratuitous ARP announcing that `mac` now has `ip`, as a broadcast request (sender and target
/// address both `ip`) and as a broadcast reply: some hosts update their caches only on one of
/// the two.
pub fn gratuitous(mac: MacAddr, ip: Ipv4Addr) -> [Vec<u8>; 2] {
    [
        frame(
            MacAddr::broadcast(),
            mac,
            ArpOperations::Request,
            mac,
            ip,
            MacAddr::zero(),
            ip,
        ),
        frame(
            MacAddr::broadcast(),
            mac,
            ArpOperations::Reply,
            mac,
            ip,
            MacAddr::broadcast(),
            ip,
        ),
    ]
}

/// What an ARP frame says, for tests and captures: operation, sender MAC and address, target
/// address.
pub fn describe(frame: &[u8]) -> Option<(u16, MacAddr, Ipv4Addr, Ipv4Addr)> {
    let eth = EthernetPacket::new(frame)?;
    if eth.get_ethertype() != EtherTypes::Arp {
        return None;
    }
    let arp = ArpPacket::new(eth.payload())?;
    Some((
        arp.get_operation().0,
        arp.get_sender_hw_addr(),
        arp.get_sender_proto_addr(),
        arp.get_target_proto_addr(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ME: MacAddr = MacAddr(0x02, 0, 0, 0, 0, 0x01);
    const CLIENT: MacAddr = MacAddr(0x02, 0, 0, 0, 0, 0x99);

    fn request(sender_ip: Ipv4Addr, target_ip: Ipv4Addr) -> Vec<u8> {
        frame(
            MacAddr::broadcast(),
            CLIENT,
            ArpOperations::Request,
            CLIENT,
            sender_ip,
            MacAddr::zero(),
            target_ip,
        )
    }

    #[test]
    fn a_request_is_read_and_answered_to_the_asker() {
        let req = request("192.0.2.99".parse().unwrap(), "192.0.2.10".parse().unwrap());
        let q = parse_request(&req).unwrap();
        assert_eq!(q.target_ip, "192.0.2.10".parse::<Ipv4Addr>().unwrap());
        let answer = reply(ME, &q);
        assert_eq!(answer.len(), MIN_FRAME_LEN);
        let eth = EthernetPacket::new(&answer).unwrap();
        assert_eq!(eth.get_destination(), CLIENT);
        assert_eq!(eth.get_source(), ME);
        let (op, mac, sip, tip) = describe(&answer).unwrap();
        assert_eq!((op, mac), (2, ME));
        assert_eq!(sip, q.target_ip);
        assert_eq!(tip, q.sender_ip);
        // A reply is not a question.
        assert_eq!(parse_request(&answer), None);
    }

    #[test]
    fn probes_are_answered_but_announcements_are_not() {
        let probe = request(Ipv4Addr::UNSPECIFIED, "192.0.2.10".parse().unwrap());
        assert!(parse_request(&probe).is_some());
        let [garp_request, garp_reply] = gratuitous(ME, "192.0.2.10".parse().unwrap());
        assert_eq!(parse_request(&garp_request), None);
        assert_eq!(parse_request(&garp_reply), None);
        let (op, mac, sip, tip) = describe(&garp_request).unwrap();
        assert_eq!((op, mac), (1, ME));
        assert_eq!(sip, tip);
    }

    #[test]
    fn truncated_and_foreign_frames_are_ignored() {
        let req = request("192.0.2.99".parse().unwrap(), "192.0.2.10".parse().unwrap());
        for len in 0..ARP_FRAME_LEN {
            assert_eq!(parse_request(&req[..len]), None, "length {len}");
        }
        let mut ipv6 = req.clone();
        ipv6[12..14].copy_from_slice(&0x86ddu16.to_be_bytes());
        assert_eq!(parse_request(&ipv6), None);
        let mut other_hw = req.clone();
        other_hw[14..16].copy_from_slice(&6u16.to_be_bytes());
        assert_eq!(parse_request(&other_hw), None);
        let mut long_addr = req;
        long_addr[19] = 16;
        assert_eq!(parse_request(&long_addr), None);
    }
}
