//! Raw Ethernet frames on one interface: an AF_PACKET socket bound to the interface and one
//! ethertype, narrowed by a classic BPF filter so the kernel hands up only what we answer, and
//! driven through tokio's `AsyncFd`. Also the interface facts the responders need.

use std::io;
use std::mem;
use std::net::Ipv6Addr;
use std::os::fd::AsRawFd;
use std::path::Path;

use pnet_base::MacAddr;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::unix::AsyncFd;

/// The ARP ethertype.
pub const ETH_P_ARP: u16 = 0x0806;
/// The IPv6 ethertype.
pub const ETH_P_IPV6: u16 = 0x86dd;

/// `setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING)` (Linux 4.20): do not hand our own frames back.
const PACKET_IGNORE_OUTGOING: libc::c_int = 23;

/// A classic BPF program.
pub type Filter = Vec<libc::sock_filter>;

const fn insn(code: u16, jt: u8, jf: u8, k: u32) -> libc::sock_filter {
    libc::sock_filter { code, jt, jf, k }
}

// Opcodes of classic BPF (linux/filter.h).
const LDH_ABS: u16 = 0x28;
const LDB_ABS: u16 = 0x30;
const JEQ_K: u16 = 0x15;
const RET_K: u16 = 0x06;

/// Accepts ARP requests only (operation 1 at offset 20 of the frame).
pub fn arp_request_filter() -> Filter {
    vec![
        insn(LDH_ABS, 0, 0, 12),
        insn(JEQ_K, 0, 3, u32::from(ETH_P_ARP)),
        insn(LDH_ABS, 0, 0, 20),
        insn(JEQ_K, 0, 1, 1),
        insn(RET_K, 0, 0, 0x0004_0000),
        insn(RET_K, 0, 0, 0),
    ]
}

/// Accepts ICMPv6 Neighbor Solicitations without extension headers only: next header 58 at
/// offset 20 and ICMPv6 type 135 at offset 54. Without it the socket would see every IPv6
/// frame the node receives.
pub fn neighbor_solicit_filter() -> Filter {
    vec![
        insn(LDH_ABS, 0, 0, 12),
        insn(JEQ_K, 0, 5, u32::from(ETH_P_IPV6)),
        insn(LDB_ABS, 0, 0, 20),
        insn(JEQ_K, 0, 3, 58),
        insn(LDB_ABS, 0, 0, 54),
        insn(JEQ_K, 0, 1, 135),
        insn(RET_K, 0, 0, 0x0004_0000),
        insn(RET_K, 0, 0, 0),
    ]
}

/// The index of a network interface.
pub fn interface_index(name: &str) -> io::Result<u32> {
    let c = std::ffi::CString::new(name)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in interface name"))?;
    // SAFETY: `c` is a valid NUL-terminated string for the duration of the call.
    let index = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if index == 0 {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("no interface named {name}"),
        ));
    }
    Ok(index)
}

/// The hardware address of an Ethernet interface.
pub fn interface_mac(name: &str) -> io::Result<MacAddr> {
    let path = Path::new("/sys/class/net").join(name).join("address");
    let text = std::fs::read_to_string(&path)?;
    text.trim().parse().map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: not a MAC address: {:?}", path.display(), text.trim()),
        )
    })
}

/// The Ethernet interfaces of this network namespace (ARPHRD_ETHER, not loopback), by name.
pub fn ethernet_interfaces() -> io::Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir("/sys/class/net")? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let kind = std::fs::read_to_string(entry.path().join("type")).unwrap_or_default();
        if kind.trim() == "1" && name != "lo" {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

/// Every address of every interface, with the interface's name.
pub fn interface_addresses() -> io::Result<Vec<(String, std::net::IpAddr)>> {
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `head` with a list we free below with freeifaddrs.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let mut out = Vec::new();
    let mut cur = head;
    while !cur.is_null() {
        // SAFETY: `cur` is a node of the list getifaddrs returned, alive until freeifaddrs.
        let ifa = unsafe { &*cur };
        if !ifa.ifa_addr.is_null() && !ifa.ifa_name.is_null() {
            // SAFETY: ifa_name is a NUL-terminated string owned by the list.
            let name = unsafe { std::ffi::CStr::from_ptr(ifa.ifa_name) }
                .to_string_lossy()
                .into_owned();
            // SAFETY: ifa_addr points at a sockaddr whose family says its real type.
            let family = i32::from(unsafe { (*ifa.ifa_addr).sa_family });
            let addr = match family {
                libc::AF_INET => {
                    // SAFETY: an AF_INET sockaddr is a sockaddr_in.
                    let sin = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in) };
                    Some(std::net::IpAddr::V4(std::net::Ipv4Addr::from(
                        u32::from_be(sin.sin_addr.s_addr),
                    )))
                }
                libc::AF_INET6 => {
                    // SAFETY: an AF_INET6 sockaddr is a sockaddr_in6.
                    let sin6 = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in6) };
                    Some(std::net::IpAddr::V6(std::net::Ipv6Addr::from(
                        sin6.sin6_addr.s6_addr,
                    )))
                }
                _ => None,
            };
            if let Some(a) = addr {
                out.push((name, a));
            }
        }
        cur = ifa.ifa_next;
    }
    // SAFETY: `head` came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(head) };
    Ok(out)
}

/// An AF_PACKET socket on one interface for one ethertype.
#[derive(Debug)]
pub struct PacketSocket {
    fd: AsyncFd<Socket>,
    ifindex: u32,
    mac: MacAddr,
}

impl PacketSocket {
    /// Opens a socket on `interface` that receives frames of `ethertype` accepted by `filter`
    /// and sends whole Ethernet frames out of it. Needs CAP_NET_RAW. Must be called within a
    /// tokio runtime.
    pub fn open(interface: &str, ethertype: u16, filter: &Filter) -> io::Result<Self> {
        let ifindex = interface_index(interface)?;
        let mac = interface_mac(interface)?;
        // Protocol 0 receives nothing until bound, so no frame of another interface slips in
        // between socket() and bind().
        let socket = Socket::new(Domain::PACKET, Type::RAW, Some(Protocol::from(0)))?;
        socket.set_nonblocking(true)?;
        let fd = socket.as_raw_fd();
        let prog = libc::sock_fprog {
            len: filter.len() as u16,
            filter: filter.as_ptr() as *mut libc::sock_filter,
        };
        // SAFETY: `prog` points at `filter`, which outlives the call; the kernel copies it.
        let rc = unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_ATTACH_FILTER,
                &prog as *const _ as *const libc::c_void,
                mem::size_of::<libc::sock_fprog>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        let one: libc::c_int = 1;
        // SAFETY: a plain int option. Older kernels refuse it; the responders then see their
        // own frames, which parse as replies and are ignored.
        unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_PACKET,
                PACKET_IGNORE_OUTGOING,
                &one as *const _ as *const libc::c_void,
                mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
        // SAFETY: sockaddr_ll is plain data; zero is a valid value for every field.
        let mut addr: libc::sockaddr_ll = unsafe { mem::zeroed() };
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_protocol = ethertype.to_be();
        addr.sll_ifindex = ifindex as i32;
        // SAFETY: `addr` is a valid sockaddr_ll of the size given.
        let rc = unsafe {
            libc::bind(
                fd,
                &addr as *const _ as *const libc::sockaddr,
                mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Self {
            // SAFETY: the socket owns its descriptor and moves into the AsyncFd, which keeps
            // it open and unchanged until it is dropped.
            fd: unsafe { AsyncFd::register(socket)? },
            ifindex,
            mac,
        })
    }

    /// The interface's hardware address.
    pub fn mac(&self) -> MacAddr {
        self.mac
    }

    /// The interface's index.
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// Sets the kernel's receive queue of this socket, in bytes.
    pub fn set_receive_buffer(&self, bytes: usize) -> io::Result<()> {
        self.fd.get_ref().set_recv_buffer_size(bytes)
    }

    /// Receives one frame into `buf` if one is waiting; `None` if none is.
    pub fn try_recv(&self, buf: &mut [u8]) -> Option<io::Result<usize>> {
        // SAFETY: `buf` is valid for writes of its length.
        let n = unsafe {
            libc::recv(
                self.fd.as_raw_fd(),
                buf.as_mut_ptr() as *mut libc::c_void,
                buf.len(),
                libc::MSG_DONTWAIT,
            )
        };
        if n >= 0 {
            return Some(Ok(n as usize));
        }
        let e = io::Error::last_os_error();
        (e.kind() != io::ErrorKind::WouldBlock).then_some(Err(e))
    }

    /// Receives one frame into `buf`; returns its length (truncated to `buf`).
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let mut guard = self.fd.readable().await?;
            let res = guard.try_io(|inner| {
                // SAFETY: `buf` is valid for writes of its length.
                let n = unsafe {
                    libc::recv(
                        inner.as_raw_fd(),
                        buf.as_mut_ptr() as *mut libc::c_void,
                        buf.len(),
                        0,
                    )
                };
                if n < 0 {
                    Err(io::Error::last_os_error())
                } else {
                    Ok(n as usize)
                }
            });
            match res {
                Ok(result) => return result,
                Err(_would_block) => continue,
            }
        }
    }

    /// Sends one whole Ethernet frame out of the interface.
    pub async fn send(&self, frame: &[u8]) -> io::Result<()> {
        loop {
            let mut guard = self.fd.writable().await?;
            match guard.try_io(|inner| inner.get_ref().send(frame)) {
                Ok(result) => return result.map(drop),
                Err(_would_block) => continue,
            }
        }
    }
}

/// Memberships of IPv6 multicast groups on one interface, so the kernel (and any MLD-snooping
/// switch) delivers solicitations for the addresses we answer for.
#[derive(Debug)]
pub struct MulticastGroups {
    socket: Socket,
    ifindex: u32,
    joined: std::collections::BTreeMap<Ipv6Addr, usize>,
}

impl MulticastGroups {
    /// Memberships on the interface with this index.
    pub fn new(ifindex: u32) -> io::Result<Self> {
        Ok(Self {
            socket: Socket::new(Domain::IPV6, Type::DGRAM, None)?,
            ifindex,
            joined: Default::default(),
        })
    }

    /// Joins `group` (counted: several addresses may share a solicited-node group).
    pub fn join(&mut self, group: Ipv6Addr) -> io::Result<()> {
        let count = self.joined.entry(group).or_insert(0);
        if *count == 0 {
            self.socket.join_multicast_v6(&group, self.ifindex)?;
        }
        *count += 1;
        Ok(())
    }

    /// Leaves `group` once every address that joined it has left.
    pub fn leave(&mut self, group: Ipv6Addr) -> io::Result<()> {
        let Some(count) = self.joined.get_mut(&group) else {
            return Ok(());
        };
        *count -= 1;
        if *count == 0 {
            self.joined.remove(&group);
            self.socket.leave_multicast_v6(&group, self.ifindex)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_jump_to_their_own_return_instructions() {
        for f in [arp_request_filter(), neighbor_solicit_filter()] {
            let n = f.len();
            assert_eq!(f[n - 1].code, RET_K);
            assert_eq!(f[n - 1].k, 0, "the last instruction drops");
            for (i, ins) in f.iter().enumerate() {
                if ins.code == JEQ_K {
                    assert_eq!(i + 1 + ins.jf as usize, n - 1, "a mismatch drops");
                }
            }
        }
    }

    #[test]
    fn loopback_is_not_an_ethernet_interface() {
        let names = ethernet_interfaces().unwrap();
        assert!(!names.iter().any(|n| n == "lo"));
        assert!(interface_index("lo").is_ok());
        assert!(interface_index("no-such-if0").is_err());
    }
}
