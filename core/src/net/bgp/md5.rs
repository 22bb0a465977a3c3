//! TCP MD5 signatures (RFC 2385) on a socket, through Linux's `TCP_MD5SIG` option: every segment
//! to and from the peer is signed with the password, and unsigned ones are dropped by the
//! kernel, so a wrong or missing password never gets as far as a BGP message.

use std::fmt;
use std::io;
use std::mem;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;

use serde::{Deserialize, Serialize};

/// `struct tcp_md5sig` of linux/tcp.h.
#[repr(C)]
struct TcpMd5Sig {
    addr: libc::sockaddr_storage,
    flags: u8,
    prefixlen: u8,
    keylen: u16,
    ifindex: i32,
    key: [u8; 80],
}

/// The longest key Linux takes.
pub const MAX_KEY_LEN: usize = 80;

/// Sets the MD5 key for segments exchanged with `peer` on `socket` (before connecting).
pub fn set_md5_key(socket: &impl AsRawFd, peer: SocketAddr, key: &[u8]) -> io::Result<()> {
    if key.len() > MAX_KEY_LEN {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("a TCP MD5 key is at most {MAX_KEY_LEN} bytes"),
        ));
    }
    // SAFETY: an all-zero tcp_md5sig (and sockaddr_storage) is a valid value.
    let mut sig: TcpMd5Sig = unsafe { mem::zeroed() };
    let sa = socket2::SockAddr::from(peer);
    // SAFETY: `sa` holds a sockaddr of `sa.len()` bytes, which fits a sockaddr_storage.
    unsafe {
        std::ptr::copy_nonoverlapping(
            sa.as_ptr() as *const u8,
            &mut sig.addr as *mut _ as *mut u8,
            sa.len() as usize,
        );
    }
    sig.keylen = key.len() as u16;
    sig.key[..key.len()].copy_from_slice(key);
    // SAFETY: `sig` is a valid tcp_md5sig that lives across the call.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_MD5SIG,
            &sig as *const _ as *const libc::c_void,
            mem::size_of::<TcpMd5Sig>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kernel_takes_a_key_and_refuses_one_too_long() {
        let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        let peer: SocketAddr = "127.0.0.1:179".parse().unwrap();
        set_md5_key(&s, peer, b"secret").unwrap();
        assert!(set_md5_key(&s, peer, &[b'x'; 81]).is_err());
        assert_eq!(mem::size_of::<TcpMd5Sig>(), 216);
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
