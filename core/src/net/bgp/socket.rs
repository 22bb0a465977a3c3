//! The TCP connection of a BGP session, opened as the BGPPeer asks: bound to its VRF device,
//! from its source address, with the TTL its hop count allows, signed with TCP MD5.

use std::io;
use std::net::SocketAddr;

use tokio::net::{TcpSocket, TcpStream};
use tracing::warn;

use super::session::SessionConfig;

/// Opens the TCP connection to the peer. A VRF that does not exist on this node fails every
/// attempt with a warning naming it (the session stays down, `ironlb_bgp_session_up` 0) until
/// the device appears.
pub async fn connect(peer: &SessionConfig) -> io::Result<TcpStream> {
    let addr = SocketAddr::new(peer.peer_address, peer.peer_port);
    let domain = if addr.is_ipv4() {
        socket2::Domain::IPV4
    } else {
        socket2::Domain::IPV6
    };
    let s = socket2::Socket::new(domain, socket2::Type::STREAM, Some(socket2::Protocol::TCP))?;
    if let Some(vrf) = &peer.vrf {
        // Bound to the VRF master, the socket routes by the VRF's table: the peer, the source
        // address the kernel picks and so the next hops all come from the VRF.
        if let Err(e) = s.bind_device(Some(vrf.as_bytes())) {
            let e = vrf_error(vrf, e);
            warn!(vrf = %vrf, error = %e, "BGP session not up: cannot bind to the VRF");
            return Err(e);
        }
    }
    if let Some(src) = peer.source_address {
        s.bind(&SocketAddr::new(src, 0).into())?;
    }
    if let Some(pw) = &peer.password {
        super::md5::set_md5_key(&s, addr, pw.expose().as_bytes())?;
    }
    // A directly connected eBGP peer is one hop away; anything else may be further.
    let ttl = if !peer.is_internal() && !peer.ebgp_multi_hop {
        1
    } else {
        255
    };
    if addr.is_ipv4() {
        s.set_ttl_v4(ttl)?;
    } else {
        s.set_unicast_hops_v6(ttl)?;
    }
    s.set_nonblocking(true)?;
    let socket = TcpSocket::from_std_stream(std::net::TcpStream::from(s));
    let stream = socket.connect(addr).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// SO_BINDTODEVICE's error said in terms of the configuration: ENODEV means the VRF is not on
/// this node.
fn vrf_error(vrf: &str, e: io::Error) -> io::Error {
    if e.raw_os_error() == Some(libc::ENODEV) {
        io::Error::new(
            io::ErrorKind::NotFound,
            format!("VRF {vrf:?} does not exist on this node (spec.vrf)"),
        )
    } else {
        io::Error::new(e.kind(), format!("VRF {vrf:?}: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_vrf_is_named_in_the_error() {
        let e = vrf_error("vrf-x", io::Error::from_raw_os_error(libc::ENODEV));
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        assert!(e.to_string().contains("\"vrf-x\" does not exist"), "{e}");
        let e = vrf_error("vrf-x", io::Error::from_raw_os_error(libc::EPERM));
        assert!(e.to_string().starts_with("VRF \"vrf-x\": "), "{e}");
    }
}
