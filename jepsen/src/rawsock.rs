//! A blocking AF_PACKET socket on one interface, for the prober and the flooder (the suite's
//! own, so it depends on nothing inside ironlb).

use std::io;
use std::time::Duration;

/// A raw Ethernet socket bound to an interface and an ethertype.
pub struct PacketSocket {
    fd: libc::c_int,
    ifindex: i32,
    mac: [u8; 6],
}

/// `sll_pkttype` of frames this host sent itself.
const PACKET_OUTGOING: u8 = 4;

fn last_error(what: &str) -> io::Error {
    let e = io::Error::last_os_error();
    io::Error::new(e.kind(), format!("{what}: {e}"))
}

/// The hardware address of `interface`, from sysfs.
pub fn mac_of(interface: &str) -> io::Result<[u8; 6]> {
    let text = std::fs::read_to_string(format!("/sys/class/net/{interface}/address"))?;
    parse_mac(text.trim()).ok_or_else(|| io::Error::other(format!("bad MAC {text:?}")))
}

/// Parses `aa:bb:cc:dd:ee:ff`.
pub fn parse_mac(text: &str) -> Option<[u8; 6]> {
    let parts: Vec<u8> = text
        .split(':')
        .map(|p| u8::from_str_radix(p, 16))
        .collect::<Result<_, _>>()
        .ok()?;
    parts.try_into().ok()
}

/// Formats a MAC as `aa:bb:cc:dd:ee:ff`.
pub fn format_mac(mac: &[u8]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

impl PacketSocket {
    /// Opens a socket on `interface` receiving frames of `ethertype` (host order).
    pub fn open(interface: &str, ethertype: u16) -> io::Result<Self> {
        let name = std::ffi::CString::new(interface).map_err(io::Error::other)?;
        // SAFETY: plain system calls on a file descriptor this function owns; every pointer
        // passed points at a local of the right type and size.
        unsafe {
            let ifindex = libc::if_nametoindex(name.as_ptr()) as i32;
            if ifindex == 0 {
                return Err(last_error(&format!("interface {interface}")));
            }
            let fd = libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW,
                i32::from(ethertype.to_be()),
            );
            if fd < 0 {
                return Err(last_error("socket(AF_PACKET)"));
            }
            let mut addr: libc::sockaddr_ll = std::mem::zeroed();
            addr.sll_family = libc::AF_PACKET as u16;
            addr.sll_protocol = ethertype.to_be();
            addr.sll_ifindex = ifindex;
            if libc::bind(
                fd,
                &addr as *const libc::sockaddr_ll as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            ) < 0
            {
                let e = last_error("bind");
                libc::close(fd);
                return Err(e);
            }
            // Big buffers: a flood must not crowd out the replies we are waiting for.
            let size: libc::c_int = 4 << 20;
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_RCVBUF,
                &size as *const libc::c_int as *const libc::c_void,
                std::mem::size_of::<libc::c_int>() as u32,
            );
            Ok(Self {
                fd,
                ifindex,
                mac: mac_of(interface)?,
            })
        }
    }

    /// The interface's MAC.
    pub fn mac(&self) -> [u8; 6] {
        self.mac
    }

    /// Sends one whole frame.
    pub fn send(&self, frame: &[u8]) -> io::Result<()> {
        // SAFETY: sending from a slice we borrow, to the interface we bound.
        unsafe {
            let mut addr: libc::sockaddr_ll = std::mem::zeroed();
            addr.sll_family = libc::AF_PACKET as u16;
            addr.sll_ifindex = self.ifindex;
            addr.sll_halen = 6;
            addr.sll_addr[..6].copy_from_slice(&frame[..6]);
            let n = libc::sendto(
                self.fd,
                frame.as_ptr() as *const libc::c_void,
                frame.len(),
                0,
                &addr as *const libc::sockaddr_ll as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            );
            if n < 0 {
                return Err(last_error("sendto"));
            }
        }
        Ok(())
    }

    /// Receives one frame sent by another host into `buf`, waiting at most `timeout`; `None` on
    /// timeout.
    pub fn recv(&self, buf: &mut [u8], timeout: Duration) -> io::Result<Option<usize>> {
        loop {
            let mut pfd = libc::pollfd {
                fd: self.fd,
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one pollfd we own.
            let ready = unsafe { libc::poll(&mut pfd, 1, timeout.as_millis() as i32) };
            if ready < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            if ready == 0 {
                return Ok(None);
            }
            // SAFETY: receiving into a slice we borrow mutably, with its length.
            let (n, pkttype) = unsafe {
                let mut addr: libc::sockaddr_ll = std::mem::zeroed();
                let mut len = std::mem::size_of::<libc::sockaddr_ll>() as u32;
                let n = libc::recvfrom(
                    self.fd,
                    buf.as_mut_ptr() as *mut libc::c_void,
                    buf.len(),
                    0,
                    &mut addr as *mut libc::sockaddr_ll as *mut libc::sockaddr,
                    &mut len,
                );
                (n, addr.sll_pkttype)
            };
            if n < 0 {
                return Err(last_error("recvfrom"));
            }
            if pkttype == PACKET_OUTGOING {
                continue;
            }
            return Ok(Some(n as usize));
        }
    }
}

impl Drop for PacketSocket {
    fn drop(&mut self) {
        // SAFETY: closing the descriptor this value owns, once.
        unsafe {
            libc::close(self.fd);
        }
    }
}

/// ARP and NDP frames, built with pnet_packet.
pub mod frames {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use pnet_base::MacAddr;
    use pnet_packet::arp::{ArpHardwareTypes, ArpOperations, ArpPacket, MutableArpPacket};
    use pnet_packet::ethernet::{EtherTypes, EthernetPacket, MutableEthernetPacket};
    use pnet_packet::icmpv6::ndp::{
        MutableNeighborSolicitPacket, NdpOptionTypes, NeighborAdvertPacket,
    };
    use pnet_packet::icmpv6::{self, Icmpv6Packet, Icmpv6Types};
    use pnet_packet::ip::IpNextHeaderProtocols;
    use pnet_packet::ipv6::{Ipv6Packet, MutableIpv6Packet};
    use pnet_packet::Packet;

    fn mac(m: [u8; 6]) -> MacAddr {
        MacAddr::new(m[0], m[1], m[2], m[3], m[4], m[5])
    }

    /// An ARP who-has for `target` from `src`, to `dst` (broadcast or a host).
    pub fn arp_request(src: [u8; 6], src_ip: Ipv4Addr, dst: [u8; 6], target: Ipv4Addr) -> Vec<u8> {
        let mut buf = vec![0u8; 42];
        {
            let mut eth =
                MutableEthernetPacket::new(&mut buf).expect("42 bytes hold an Ethernet header");
            eth.set_destination(mac(dst));
            eth.set_source(mac(src));
            eth.set_ethertype(EtherTypes::Arp);
        }
        let mut arp = MutableArpPacket::new(&mut buf[14..]).expect("28 bytes hold an ARP packet");
        arp.set_hardware_type(ArpHardwareTypes::Ethernet);
        arp.set_protocol_type(EtherTypes::Ipv4);
        arp.set_hw_addr_len(6);
        arp.set_proto_addr_len(4);
        arp.set_operation(ArpOperations::Request);
        arp.set_sender_hw_addr(mac(src));
        arp.set_sender_proto_addr(src_ip);
        arp.set_target_hw_addr(MacAddr::zero());
        arp.set_target_proto_addr(target);
        buf
    }

    /// The solicited-node multicast group of `addr`.
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
            (u16::from(o[14]) << 8) | u16::from(o[15]),
        )
    }

    /// A Neighbor Solicitation for `target` from `src`, to `dst` (`None`: the solicited-node
    /// group's multicast MAC).
    pub fn neighbor_solicit(
        src: [u8; 6],
        src_ip: Ipv6Addr,
        dst: Option<[u8; 6]>,
        target: Ipv6Addr,
    ) -> Vec<u8> {
        let group = solicited_node(target);
        let g = group.octets();
        let dst = dst.unwrap_or([0x33, 0x33, g[12], g[13], g[14], g[15]]);
        // Ethernet 14 + IPv6 40 + NS 24 + source link-layer option 8.
        let mut buf = vec![0u8; 14 + 40 + 32];
        {
            let mut eth = MutableEthernetPacket::new(&mut buf).expect("sized above");
            eth.set_destination(mac(dst));
            eth.set_source(mac(src));
            eth.set_ethertype(EtherTypes::Ipv6);
        }
        {
            let mut ip = MutableIpv6Packet::new(&mut buf[14..]).expect("sized above");
            ip.set_version(6);
            ip.set_payload_length(32);
            ip.set_next_header(IpNextHeaderProtocols::Icmpv6);
            ip.set_hop_limit(255);
            ip.set_source(src_ip);
            ip.set_destination(group);
        }
        {
            let mut ns = MutableNeighborSolicitPacket::new(&mut buf[54..]).expect("sized above");
            ns.set_icmpv6_type(Icmpv6Types::NeighborSolicit);
            ns.set_target_addr(target);
        }
        buf[54 + 24] = NdpOptionTypes::SourceLLAddr.0;
        buf[54 + 25] = 1;
        buf[54 + 26..54 + 32].copy_from_slice(&src);
        let sum = {
            let pkt = Icmpv6Packet::new(&buf[54..]).expect("sized above");
            icmpv6::checksum(&pkt, &src_ip, &group)
        };
        buf[54 + 2..54 + 4].copy_from_slice(&sum.to_be_bytes());
        buf
    }

    /// An answer in a frame: ARP reply or Neighbor Advertisement, for which address, from which
    /// Ethernet source.
    pub fn parse_answer(frame: &[u8]) -> Option<(std::net::IpAddr, [u8; 6])> {
        let eth = EthernetPacket::new(frame)?;
        let src = eth.get_source().octets();
        match eth.get_ethertype() {
            EtherTypes::Arp => {
                let arp = ArpPacket::new(eth.payload())?;
                (arp.get_operation() == ArpOperations::Reply)
                    .then(|| (arp.get_sender_proto_addr().into(), src))
            }
            EtherTypes::Ipv6 => {
                let ip = Ipv6Packet::new(eth.payload())?;
                if ip.get_next_header() != IpNextHeaderProtocols::Icmpv6 {
                    return None;
                }
                let na = NeighborAdvertPacket::new(ip.payload())?;
                (na.get_icmpv6_type() == Icmpv6Types::NeighborAdvert)
                    .then(|| (na.get_target_addr().into(), src))
            }
            _ => None,
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn requests_are_well_formed() {
            let a = arp_request(
                [2, 0, 0, 1, 0, 1],
                "198.51.100.1".parse().unwrap(),
                [0xff; 6],
                "198.51.100.9".parse().unwrap(),
            );
            assert_eq!(a.len(), 42);
            let arp = ArpPacket::new(&a[14..]).unwrap();
            assert_eq!(
                arp.get_target_proto_addr(),
                "198.51.100.9".parse::<Ipv4Addr>().unwrap()
            );
            let target: Ipv6Addr = "2001:db8::1:2345".parse().unwrap();
            let ns = neighbor_solicit(
                [2, 0, 0, 1, 0, 1],
                "2001:db8::1".parse().unwrap(),
                None,
                target,
            );
            assert_eq!(&ns[..6], &[0x33, 0x33, 0xff, 0x01, 0x23, 0x45]);
            assert_eq!(
                solicited_node(target),
                "ff02::1:ff01:2345".parse::<Ipv6Addr>().unwrap()
            );
            // Not an answer.
            assert_eq!(parse_answer(&ns), None);
            assert_eq!(parse_answer(&a), None);
            assert_eq!(parse_answer(&[0u8; 3]), None);
        }
    }
}
