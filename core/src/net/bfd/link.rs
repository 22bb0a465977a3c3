//! What a BGP session holds of BFD: its session to the peer, kept across reconnects while the
//! local address stays, and the failures it has not acted on yet (RFC 5882 section 4.3: a
//! BFD session going down takes the BGP session down at once).

use std::net::IpAddr;

use super::demux::SessionKey;
use super::profile::BfdSettings;
use super::session::{Bfd, BfdSession, BfdStatus};
use crate::names::PeerName;

/// One BGP session's BFD.
#[derive(Debug)]
pub struct BgpBfd {
    bfd: Bfd,
    settings: BfdSettings,
    name: PeerName,
    held: Option<BfdSession>,
    /// Failures already seen when the BGP session last connected.
    seen: u64,
}

impl BgpBfd {
    /// BFD with `settings` for the BGP session of `name`; nothing runs before [`Self::attach`].
    pub fn new(bfd: Bfd, settings: BfdSettings, name: PeerName) -> Self {
        BgpBfd {
            bfd,
            settings,
            name,
            held: None,
            seen: 0,
        }
    }

    /// The BGP session connected from `local` to `peer`: holds the BFD session between them
    /// (the one held already if the addresses are the same) and forgets earlier failures.
    pub async fn attach(&mut self, peer: IpAddr, local: IpAddr) {
        let key = SessionKey {
            peer,
            local,
            hop: self.settings.hop,
        };
        if self.held.as_ref().map(BfdSession::key) != Some(key) {
            // The old one goes first: a session to the same peer from a new address replaces it.
            self.held = None;
            let config = self.settings.config.clone();
            self.held = self.bfd.session(key, self.name.clone(), config).await;
        }
        self.seen = self.held.as_ref().map_or(0, |s| s.status().failures);
    }

    /// Before BGP connects: holds the BFD session from `source` (else the address the kernel
    /// would send from) to `peer`, as FRR's bgpd does for a configured peer. A router may wait
    /// for BFD before it takes the BGP connection, so BFD must not wait for BGP.
    pub async fn prepare(&mut self, peer: IpAddr, source: Option<IpAddr>) {
        if let Some(local) = source.or_else(|| route_source(peer)) {
            self.attach(peer, local).await;
        }
    }

    /// The status of the session held, if any.
    pub fn status(&self) -> Option<BfdStatus> {
        self.held.as_ref().map(BfdSession::status)
    }

    /// Resolves when the session fails after [`Self::attach`]; never without one. Cancel safe.
    pub async fn failed(&mut self) -> BfdStatus {
        match self.held.as_mut() {
            Some(s) => s.failed_since(self.seen).await,
            None => std::future::pending().await,
        }
    }
}

/// The source address the kernel picks toward `peer` (a connected UDP socket sends nothing).
fn route_source(peer: IpAddr) -> Option<IpAddr> {
    let any: IpAddr = if peer.is_ipv4() {
        std::net::Ipv4Addr::UNSPECIFIED.into()
    } else {
        std::net::Ipv6Addr::UNSPECIFIED.into()
    };
    let s = std::net::UdpSocket::bind((any, 0)).ok()?;
    s.connect((peer, super::SINGLE_HOP_PORT)).ok()?;
    Some(s.local_addr().ok()?.ip())
}

/// [`BgpBfd::failed`] of `bfd`, or never when the session has no BFD.
pub async fn failed(bfd: Option<&mut BgpBfd>) -> BfdStatus {
    match bfd {
        Some(b) => b.failed().await,
        None => std::future::pending().await,
    }
}
