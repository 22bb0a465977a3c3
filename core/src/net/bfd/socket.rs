//! The UDP sockets of BFD: receive sockets on the well-known ports that report each packet's
//! TTL (or Hop Limit) and destination address, which the GTSM check and the demultiplexing by
//! address need (RFC 5881 sections 4-5, RFC 5883), and one send socket per session, bound to
//! a source port of its own with TTL 255.

use std::collections::HashSet;
use std::io;
use std::mem::{size_of, MaybeUninit};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::AsRawFd;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::unix::AsyncFd;
use tokio::net::UdpSocket;

use super::demux::Arrival;
use super::{SEND_TTL, SOURCE_PORTS};

/// The largest datagram read: a Control packet is 24 bytes, 52 with the longest
/// authentication section; anything longer is cut and refused by the codec's length check.
pub const MAX_DATAGRAM: usize = 128;

/// A datagram and how it arrived.
#[derive(Clone, Debug)]
pub struct Datagram {
    /// Its payload (cut at [`MAX_DATAGRAM`]).
    pub bytes: Vec<u8>,
    /// What the demultiplexer needs of its headers.
    pub arrival: Arrival,
}

fn set_int(
    fd: &Socket,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    // SAFETY: `value` outlives the call, and the length passed is its size.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&value as *const libc::c_int).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// A receive socket on `port` of one family (IPv6 only for IPv6), asking the kernel for each
/// packet's TTL and destination address.
pub fn receive_socket(v6: bool, port: u16) -> io::Result<AsyncFd<Socket>> {
    let domain = if v6 { Domain::IPV6 } else { Domain::IPV4 };
    let s = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP))?;
    s.set_reuse_address(true)?;
    let any: SocketAddr = if v6 {
        s.set_only_v6(true)?;
        set_int(&s, libc::IPPROTO_IPV6, libc::IPV6_RECVHOPLIMIT, 1)?;
        set_int(&s, libc::IPPROTO_IPV6, libc::IPV6_RECVPKTINFO, 1)?;
        (Ipv6Addr::UNSPECIFIED, port).into()
    } else {
        set_int(&s, libc::IPPROTO_IP, libc::IP_RECVTTL, 1)?;
        set_int(&s, libc::IPPROTO_IP, libc::IP_PKTINFO, 1)?;
        (Ipv4Addr::UNSPECIFIED, port).into()
    };
    s.set_nonblocking(true)?;
    s.bind(&any.into())?;
    // SAFETY: the socket owns its descriptor and moves into the AsyncFd, which keeps it open
    // and unchanged until it is dropped.
    Ok(unsafe { AsyncFd::register(s)? })
}

/// Waits for the next datagram on `fd`, received on the `multihop` port or not.
pub async fn receive(fd: &AsyncFd<Socket>, multihop: bool) -> io::Result<Datagram> {
    loop {
        let mut guard = fd.readable().await?;
        match guard.try_io(|inner| recv_msg(inner.get_ref(), multihop)) {
            Ok(result) => return result,
            Err(_would_block) => continue,
        }
    }
}

/// One `recvmsg` with its control messages read.
fn recv_msg(s: &Socket, multihop: bool) -> io::Result<Datagram> {
    let mut buf = [0u8; MAX_DATAGRAM];
    // u64s: the control buffer must be aligned for cmsghdr.
    let mut control = [0u64; 32];
    let mut name = MaybeUninit::<libc::sockaddr_storage>::zeroed();
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: msghdr is plain data; every pointer set below outlives the recvmsg call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_name = name.as_mut_ptr().cast();
    msg.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = size_of::<[u64; 32]>() as _;
    // SAFETY: `msg` describes buffers owned by this frame.
    let n = unsafe { libc::recvmsg(s.as_raw_fd(), &mut msg, 0) };
    let len = usize::try_from(n).map_err(|_| io::Error::last_os_error())?;
    // SAFETY: zeroed, then (maybe) filled by the kernel: valid either way.
    let src = source(unsafe { &name.assume_init() })
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no source address"))?;
    let (ttl, dst) = control_messages(&msg);
    Ok(Datagram {
        bytes: buf[..len.min(MAX_DATAGRAM)].to_vec(),
        arrival: Arrival {
            src: canonical(src),
            dst: dst.map(canonical),
            ttl,
            multihop,
        },
    })
}

/// The address in a sockaddr the kernel filled.
fn source(name: &libc::sockaddr_storage) -> Option<IpAddr> {
    match i32::from(name.ss_family) {
        libc::AF_INET => {
            // SAFETY: an AF_INET sockaddr is a sockaddr_in, which sockaddr_storage can hold.
            let sin =
                unsafe { &*(name as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            Some(IpAddr::V4(Ipv4Addr::from(u32::from_be(
                sin.sin_addr.s_addr,
            ))))
        }
        libc::AF_INET6 => {
            // SAFETY: an AF_INET6 sockaddr is a sockaddr_in6, which sockaddr_storage can hold.
            let sin6 =
                unsafe { &*(name as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            Some(IpAddr::V6(Ipv6Addr::from(sin6.sin6_addr.s6_addr)))
        }
        _ => None,
    }
}

/// The TTL (or Hop Limit) and destination address among the control messages of `msg`.
fn control_messages(msg: &libc::msghdr) -> (Option<u8>, Option<IpAddr>) {
    let (mut ttl, mut dst) = (None, None);
    // SAFETY: `msg` was filled by recvmsg; the CMSG macros walk its control buffer within
    // msg_controllen, and each data pointer is read as the type its level and type name.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(msg);
        while !cmsg.is_null() {
            let (level, kind) = ((*cmsg).cmsg_level, (*cmsg).cmsg_type);
            let data = libc::CMSG_DATA(cmsg);
            match (level, kind) {
                (libc::IPPROTO_IP, libc::IP_TTL) | (libc::IPPROTO_IPV6, libc::IPV6_HOPLIMIT) => {
                    let v = std::ptr::read_unaligned(data.cast::<libc::c_int>());
                    ttl = u8::try_from(v).ok();
                }
                (libc::IPPROTO_IP, libc::IP_PKTINFO) => {
                    let info = std::ptr::read_unaligned(data.cast::<libc::in_pktinfo>());
                    dst = Some(IpAddr::V4(Ipv4Addr::from(u32::from_be(
                        info.ipi_addr.s_addr,
                    ))));
                }
                (libc::IPPROTO_IPV6, libc::IPV6_PKTINFO) => {
                    let info = std::ptr::read_unaligned(data.cast::<libc::in6_pktinfo>());
                    dst = Some(IpAddr::V6(Ipv6Addr::from(info.ipi6_addr.s6_addr)));
                }
                _ => {}
            }
            cmsg = libc::CMSG_NXTHDR(msg, cmsg);
        }
    }
    (ttl, dst)
}

/// An IPv4-mapped IPv6 address as the IPv4 address it stands for.
fn canonical(a: IpAddr) -> IpAddr {
    match a {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(a, IpAddr::V4),
        v4 => v4,
    }
}

/// A send socket from `local`, TTL 255, on a source port in 49152-65535 that no other session
/// of ours uses (RFC 5881 section 4); `random` picks the ports tried.
pub fn send_socket(
    local: IpAddr,
    used: &HashSet<u16>,
    mut random: impl FnMut() -> u32,
) -> io::Result<(UdpSocket, u16)> {
    let span = u32::from(SOURCE_PORTS.end() - SOURCE_PORTS.start()) + 1;
    let mut last = io::Error::new(io::ErrorKind::AddrInUse, "no free BFD source port");
    for _ in 0..64 {
        let offset = u16::try_from(random() % span).unwrap_or(0);
        let port = SOURCE_PORTS.start() + offset;
        if used.contains(&port) {
            continue;
        }
        match bind_send(local, port) {
            Ok(s) => return Ok((s, port)),
            Err(e) => last = e,
        }
    }
    Err(last)
}

fn bind_send(local: IpAddr, port: u16) -> io::Result<UdpSocket> {
    let domain = if local.is_ipv6() {
        Domain::IPV6
    } else {
        Domain::IPV4
    };
    let s = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP))?;
    if local.is_ipv6() {
        s.set_only_v6(true)?;
        s.set_unicast_hops_v6(u32::from(SEND_TTL))?;
    } else {
        s.set_ttl_v4(u32::from(SEND_TTL))?;
    }
    s.set_nonblocking(true)?;
    s.bind(&SocketAddr::new(local, port).into())?;
    UdpSocket::from_std(s.into())
}
