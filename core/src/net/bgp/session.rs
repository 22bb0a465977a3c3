//! One BGP session to one peer, driven over tokio TCP: connect (from the source address, with
//! the TTL the hop count allows, signed with TCP MD5 when a password is set), the OPEN exchange
//! and its checks, KEEPALIVEs and a receive-side hold timer, and, once established, the routes:
//! the peer's column of the shared route table is announced, and whenever the watch channel
//! says the table changed the difference is sent as batched UPDATEs, a bounded chunk at a time;
//! ROUTE-REFRESH is answered with the whole table. Connection attempts back off from one second
//! to `connectTime`.
//!
//! The RFC 4271 states map onto the code: Connect and Active are the connect loop; OpenSent
//! and OpenConfirm the handshake; Established the main loop. Anything unexpected or malformed
//! gets its NOTIFICATION and ends the session, which starts again after the backoff.

use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use ipnet::IpNet;
use netgauze_bgp_pkt::BgpMessage;
use serde::{Deserialize, Serialize};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::codec::Framed;
use tracing::{debug, info, warn, Instrument};

use super::attrs::RouteAttrs;
use super::md5::Password;
use super::packet::{self, Families, FrameError, Frames, Notify, OpenParams, Outgoing, PeerOpen};
use super::socket;
use super::table::{apply_chunk, diff_chunk, Sent, SharedTable};
use crate::names::PeerName;
use crate::net::bfd::link::failed as bfd_failed;
use crate::net::bfd::{Bfd, BfdSettings, BgpBfd};

/// The changes of the shared table a session compares and sends at once: few enough that the
/// UPDATEs of one chunk stay small (a few hundred KiB at most), many enough to fill messages.
const CHUNK: usize = 4096;

/// The routes a session announces: the speaker's table, of which it takes its own peer's
/// column, and a version bumped whenever the table changed.
#[derive(Clone, Debug)]
pub struct Routes {
    /// The speaker's table.
    pub table: SharedTable,
    /// Changes when the table changed.
    pub changed: watch::Receiver<u64>,
}

/// What a running session is asked to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Run {
    /// Keep the session up.
    Up,
    /// Withdraw every route, say goodbye (Cease), and end.
    Drain,
    /// End now (the peer was removed or changed): Cease, no withdrawals.
    Stop,
    /// End without a NOTIFICATION, routes left in place: the speaker is restarting, and a peer
    /// that negotiated graceful restart keeps forwarding on them until it is back.
    Restart,
}

/// How a session reports, for metrics and logs.
pub trait Observer: Send + Sync + 'static {
    /// The session went up (`true`) or down.
    fn up(&self, peer: &PeerName, up: bool);
    /// `n` UPDATE messages were sent.
    fn updates_sent(&self, peer: &PeerName, n: u64);
    /// The peer now holds `n` prefixes from us.
    fn announced(&self, peer: &PeerName, n: usize);
    /// A NOTIFICATION went out (`sent`) or came in, with its code and subcode.
    fn notification(&self, peer: &PeerName, sent: bool, code: u8, subcode: u8);
}

/// Why an established or starting session ended.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The TCP connection could not be made or broke.
    #[error("connection: {0}")]
    Io(#[from] io::Error),
    /// The peer closed the connection.
    #[error("the peer closed the connection")]
    Closed,
    /// We sent a NOTIFICATION and closed.
    #[error("sent NOTIFICATION {0}/{1}")]
    Sent(u8, u8),
    /// The peer sent a NOTIFICATION.
    #[error("received NOTIFICATION {0}/{1}")]
    Received(u8, u8),
    /// A frame could not be written.
    #[error("{0}")]
    Frame(FrameError),
    /// The OPEN exchange did not finish in time.
    #[error("no OPEN within {0:?}")]
    OpenTimeout(Duration),
    /// The session was asked to end.
    #[error("stopped")]
    Stopped,
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

/// What one session needs to know of its peer (the configuration's BGPPeer, less what
/// decides which nodes open it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionConfig {
    /// The local AS.
    pub my_asn: u32,
    /// The AS the peer must have.
    pub peer_asn: PeerAsn,
    /// Where the peer listens.
    pub peer_address: IpAddr,
    /// The local address to connect from, if not the kernel's choice.
    pub source_address: Option<IpAddr>,
    /// The peer's TCP port.
    pub peer_port: u16,
    /// The hold time proposed in OPEN.
    pub hold_time: Duration,
    /// The keepalive interval wanted (bounded by a third of the negotiated hold time).
    pub keepalive_time: Duration,
    /// The wait between connection attempts.
    pub connect_time: Duration,
    /// The BGP identifier; `None`: the local IPv4 address of the connection.
    pub router_id: Option<Ipv4Addr>,
    /// The TCP MD5 key, if any.
    pub password: Option<Password>,
    /// Whether an eBGP peer may be more than one hop away.
    pub ebgp_multi_hop: bool,
    /// Whether to announce the graceful restart capability.
    pub graceful_restart: bool,
    /// The address families offered and carried.
    pub families: Families,
    /// The VRF device the socket is bound to, if any.
    pub vrf: Option<String>,
    /// The session's BFD (from its BFDProfile), if any.
    pub bfd: Option<BfdSettings>,
}

impl SessionConfig {
    /// Whether the session is iBGP.
    pub fn is_internal(&self) -> bool {
        self.peer_asn.is_internal(self.my_asn)
    }
}

type Transport = Framed<TcpStream, Frames>;

/// Starts the session task; it runs until `run` says otherwise.
pub fn spawn(
    name: PeerName,
    peer: SessionConfig,
    routes: Routes,
    run: watch::Receiver<Run>,
    observer: Arc<dyn Observer>,
    bfd: Option<Bfd>,
) -> tokio::task::JoinHandle<()> {
    let span = tracing::info_span!("bgp", peer = %name, addr = %peer.peer_address);
    let bfd = match (bfd, &peer.bfd) {
        (Some(b), Some(settings)) => Some(BgpBfd::new(b, settings.clone(), name.clone())),
        _ => None,
    };
    tokio::spawn(session_loop(name, peer, routes, run, observer, bfd).instrument(span))
}

async fn session_loop(
    name: PeerName,
    peer: SessionConfig,
    mut routes: Routes,
    mut run: watch::Receiver<Run>,
    observer: Arc<dyn Observer>,
    mut bfd: Option<BgpBfd>,
) {
    let connect_time = peer.connect_time.max(Duration::from_secs(1));
    let mut backoff = Duration::from_secs(1);
    loop {
        if *run.borrow() != Run::Up {
            return;
        }
        if let Some(b) = bfd.as_mut() {
            b.prepare(peer.peer_address, peer.source_address).await;
        }
        let attempt = tokio::time::timeout(Duration::from_secs(5), socket::connect(&peer)).await;
        let result = match attempt {
            Ok(Ok(stream)) => {
                backoff = Duration::from_secs(1);
                established(
                    &name,
                    &peer,
                    stream,
                    &mut routes,
                    &mut run,
                    observer.as_ref(),
                    bfd.as_mut(),
                )
                .await
            }
            Ok(Err(e)) => Err(SessionError::Io(e)),
            Err(_) => Err(SessionError::Io(io::Error::new(
                io::ErrorKind::TimedOut,
                "connect timed out",
            ))),
        };
        observer.up(&name, false);
        match result {
            Ok(()) | Err(SessionError::Stopped) => return,
            Err(e @ SessionError::Io(_)) => debug!(error = %e, "BGP session not up; retrying"),
            Err(e) => warn!(error = %e, "BGP session ended; retrying"),
        }
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            _ = run.changed() => {}
        }
        backoff = (backoff * 2).min(connect_time);
    }
}

async fn send(
    t: &mut Transport,
    name: &PeerName,
    obs: &dyn Observer,
    msg: BgpMessage,
) -> Result<(), SessionError> {
    if let BgpMessage::Notification(n) = &msg {
        let (c, s) = packet::notification_code(n);
        obs.notification(name, true, c, s);
    }
    t.send(msg).await.map_err(|e| match e {
        FrameError::Io(e) => SessionError::Io(e),
        other => SessionError::Frame(other),
    })
}

/// Sends `n` and ends the session with its code.
async fn fail(t: &mut Transport, name: &PeerName, obs: &dyn Observer, n: Notify) -> SessionError {
    let msg = packet::notification(n);
    let code = match &msg {
        BgpMessage::Notification(m) => packet::notification_code(m),
        _ => (0, 0),
    };
    let _ = send(t, name, obs, msg).await;
    SessionError::Sent(code.0, code.1)
}

/// Reads the next message; a malformed one is answered with its NOTIFICATION.
async fn next(
    t: &mut Transport,
    name: &PeerName,
    obs: &dyn Observer,
) -> Result<BgpMessage, SessionError> {
    match t.next().await {
        None => Err(SessionError::Closed),
        Some(Ok(BgpMessage::Notification(n))) => {
            let (c, s) = packet::notification_code(&n);
            obs.notification(name, false, c, s);
            Err(SessionError::Received(c, s))
        }
        Some(Ok(m)) => Ok(m),
        Some(Err(FrameError::Io(e))) => Err(SessionError::Io(e)),
        Some(Err(e)) => {
            let code = match e.notification() {
                Some(BgpMessage::Notification(n)) => packet::notification_code(&n),
                _ => (0, 0),
            };
            if let Some(n) = e.notification() {
                let _ = send(t, name, obs, n).await;
            }
            warn!(error = %e, "malformed message from the peer");
            Err(SessionError::Sent(code.0, code.1))
        }
    }
}

/// The OPEN checks of RFC 4271 section 6.2 that the parser leaves to us.
fn check_open(peer: &SessionConfig, my_id: Ipv4Addr, o: &PeerOpen) -> Result<(), Notify> {
    if o.version != 4 {
        return Err(Notify::UnsupportedVersion);
    }
    let as_ok = match peer.peer_asn {
        PeerAsn::Exact(a) => o.asn == a,
        PeerAsn::Internal => o.asn == peer.my_asn,
        PeerAsn::External => o.asn != peer.my_asn,
    };
    if !as_ok {
        return Err(Notify::BadPeerAs);
    }
    if o.hold_time == 1 || o.hold_time == 2 {
        return Err(Notify::UnacceptableHoldTime);
    }
    if o.router_id.is_unspecified() || (o.asn == peer.my_asn && o.router_id == my_id) {
        return Err(Notify::BadBgpIdentifier);
    }
    Ok(())
}

/// The negotiated hold time and keepalive interval (both zero: no keepalives, no timer).
pub fn negotiate(ours: Duration, keepalive: Duration, theirs: u16) -> (Duration, Duration) {
    let hold = ours.min(Duration::from_secs(u64::from(theirs)));
    if hold.is_zero() {
        return (Duration::ZERO, Duration::ZERO);
    }
    let ka = if keepalive.is_zero() {
        hold / 3
    } else {
        keepalive.min(hold / 3)
    };
    (hold, ka.max(Duration::from_millis(100)))
}

/// A global address of the other family on the interface that holds `local`: the next hop of
/// the routes of that family on this session.
fn sibling_address(local: IpAddr, want_v6: bool) -> Option<IpAddr> {
    let ifaces = crate::net::raw::interface_addresses().ok()?;
    let name = ifaces.iter().find(|(_, a)| *a == local)?.0.clone();
    ifaces.into_iter().find_map(|(n, a)| {
        let good = match a {
            IpAddr::V6(v6) => want_v6 && !is_link_local(v6) && !v6.is_loopback(),
            IpAddr::V4(v4) => !want_v6 && !v4.is_loopback() && !v4.is_link_local(),
        };
        (n == name && good).then_some(a)
    })
}

fn is_link_local(a: Ipv6Addr) -> bool {
    (a.segments()[0] & 0xffc0) == 0xfe80
}

/// RFC 4271 suggests a large hold time until the OPEN arrives (OpenSent).
const OPEN_WAIT: Duration = Duration::from_secs(240);

async fn established(
    name: &PeerName,
    peer: &SessionConfig,
    stream: TcpStream,
    routes: &mut Routes,
    run: &mut watch::Receiver<Run>,
    obs: &dyn Observer,
    mut bfd: Option<&mut BgpBfd>,
) -> Result<(), SessionError> {
    let local = stream.local_addr()?;
    if let Some(b) = bfd.as_deref_mut() {
        // From the connection's own addresses: the path BFD watches is the one BGP uses.
        b.attach(peer.peer_address, local.ip()).await;
    }
    let my_id = router_id(peer, local.ip());
    let mut t = Framed::new(stream, Frames::new());
    let theirs = open_sent(&mut t, name, peer, my_id, obs).await?;
    let (hold, keepalive) = negotiate(peer.hold_time, peer.keepalive_time, theirs.hold_time);
    send(&mut t, name, obs, BgpMessage::KeepAlive).await?;

    // OpenConfirm.
    let confirm_wait = if hold.is_zero() { OPEN_WAIT } else { hold };
    open_confirm(&mut t, name, obs, confirm_wait).await?;

    let out = outgoing(peer, local.ip(), &theirs);
    info!(hold = ?hold, asn = theirs.asn, router_id = %theirs.router_id, ipv6 = out.ipv6 && out.next_hop_v6.is_some(), "BGP session established");
    obs.up(name, true);

    let mut session = Established {
        t,
        name,
        obs,
        out,
        sent: Sent::new(),
    };
    routes.changed.borrow_and_update();
    session.send_full_table(&routes.table).await?;
    obs.announced(name, session.sent.len());
    session.maintain(routes, run, hold, keepalive, bfd).await
}

/// The BGP identifier: the configured one, else the connection's local IPv4 address (or one
/// on the same interface when the session runs over IPv6).
fn router_id(peer: &SessionConfig, local: IpAddr) -> Ipv4Addr {
    peer.router_id.unwrap_or(match local {
        IpAddr::V4(a) => a,
        IpAddr::V6(_) => match sibling_address(local, false) {
            Some(IpAddr::V4(a)) => a,
            _ => Ipv4Addr::new(0, 0, 0, 1),
        },
    })
}

/// OpenSent: sends our OPEN and waits for the peer's, which must pass [`check_open`].
async fn open_sent(
    t: &mut Transport,
    name: &PeerName,
    peer: &SessionConfig,
    my_id: Ipv4Addr,
    obs: &dyn Observer,
) -> Result<PeerOpen, SessionError> {
    let hold_secs = u16::try_from(peer.hold_time.as_secs()).unwrap_or(u16::MAX);
    let gr = peer.graceful_restart.then_some(120);
    send(
        t,
        name,
        obs,
        packet::open(&OpenParams {
            asn: peer.my_asn,
            hold_time: hold_secs,
            router_id: my_id,
            graceful_restart: gr,
            families: peer.families,
        }),
    )
    .await?;

    let theirs = match tokio::time::timeout(OPEN_WAIT, next(t, name, obs)).await {
        Err(_) => return Err(fail(t, name, obs, Notify::HoldTimerExpired).await),
        Ok(Err(e)) => return Err(e),
        Ok(Ok(BgpMessage::Open(o))) => packet::read_open(&o),
        Ok(Ok(_)) => return Err(fail(t, name, obs, Notify::UnexpectedMessage(1)).await),
    };
    if let Err(n) = check_open(peer, my_id, &theirs) {
        return Err(fail(t, name, obs, n).await);
    }
    t.codec_mut().set_asn4(theirs.four_octet_as);
    Ok(theirs)
}

/// OpenConfirm: waits up to `wait` for the KEEPALIVE that confirms the peer took our OPEN.
async fn open_confirm(
    t: &mut Transport,
    name: &PeerName,
    obs: &dyn Observer,
    wait: Duration,
) -> Result<(), SessionError> {
    match tokio::time::timeout(wait, next(t, name, obs)).await {
        Err(_) => Err(fail(t, name, obs, Notify::HoldTimerExpired).await),
        Ok(Err(e)) => Err(e),
        Ok(Ok(BgpMessage::KeepAlive)) => Ok(()),
        Ok(Ok(_)) => Err(fail(t, name, obs, Notify::UnexpectedMessage(2)).await),
    }
}

/// How UPDATEs are written on a session from `local` to a peer that sent `theirs`: next hops
/// of either family from the interface toward the peer.
fn outgoing(peer: &SessionConfig, local: IpAddr, theirs: &PeerOpen) -> Outgoing {
    Outgoing {
        my_asn: peer.my_asn,
        ibgp: peer.is_internal(),
        asn4: theirs.four_octet_as,
        next_hop_v4: match local {
            IpAddr::V4(a) => Some(a),
            ip => match sibling_address(ip, false) {
                Some(IpAddr::V4(a)) => Some(a),
                _ => None,
            },
        },
        next_hop_v6: match local {
            IpAddr::V6(a) => Some(a),
            ip => match sibling_address(ip, true) {
                Some(IpAddr::V6(a)) => Some(a),
                _ => None,
            },
        },
        // A family counts when both sides offered it.
        ipv4: theirs.ipv4_unicast && peer.families.ipv4,
        ipv6: theirs.ipv6_unicast && peer.families.ipv6,
    }
}

/// An established session: its connection and the routes the peer holds from us.
struct Established<'a> {
    t: Transport,
    name: &'a PeerName,
    obs: &'a dyn Observer,
    out: Outgoing,
    /// The Adj-RIB-Out: the attributes are the table's own, shared.
    sent: Sent,
}

impl Established<'_> {
    /// Established: answers the peer, keeps both timers and sends route changes until the
    /// session fails or `run` ends it.
    async fn maintain(
        &mut self,
        routes: &mut Routes,
        run: &mut watch::Receiver<Run>,
        hold: Duration,
        keepalive: Duration,
        mut bfd: Option<&mut BgpBfd>,
    ) -> Result<(), SessionError> {
        let mut hold_deadline = Instant::now() + hold;
        let mut keepalive_at = Instant::now() + keepalive;
        let far = Duration::from_secs(86_400 * 365);
        loop {
            let hold_at = if hold.is_zero() {
                Instant::now() + far
            } else {
                hold_deadline
            };
            let ka_at = if keepalive.is_zero() {
                Instant::now() + far
            } else {
                keepalive_at
            };
            tokio::select! {
                m = next(&mut self.t, self.name, self.obs) => {
                    self.on_message(m?, routes).await?;
                    hold_deadline = Instant::now() + hold;
                }
                () = tokio::time::sleep_until(hold_at) => {
                    warn!(hold = ?hold, "no message from the peer within the hold time");
                    return Err(fail(&mut self.t, self.name, self.obs, Notify::HoldTimerExpired).await);
                }
                () = tokio::time::sleep_until(ka_at) => {
                    send(&mut self.t, self.name, self.obs, BgpMessage::KeepAlive).await?;
                    keepalive_at = Instant::now() + keepalive;
                }
                changed = routes.changed.changed() => {
                    if changed.is_err() {
                        return Err(SessionError::Stopped);
                    }
                    routes.changed.borrow_and_update();
                    self.send_changes(&routes.table).await?;
                    keepalive_at = Instant::now() + keepalive;
                }
                r = run.changed() => {
                    let mode = if r.is_err() { Run::Stop } else { *run.borrow() };
                    self.on_run(mode).await?;
                }
                st = bfd_failed(bfd.as_deref_mut()) => {
                    // RFC 5882 section 4.3 and RFC 9384: at once, with Cease/10.
                    warn!(bfd_state = %st.state, diag = %st.diag, "BFD session down: ending the BGP session");
                    return Err(fail(&mut self.t, self.name, self.obs, Notify::BfdDown).await);
                }
            }
        }
    }

    /// Handles a message from the peer once established.
    async fn on_message(&mut self, m: BgpMessage, routes: &Routes) -> Result<(), SessionError> {
        match m {
            BgpMessage::KeepAlive | BgpMessage::Update(_) => Ok(()),
            BgpMessage::RouteRefresh(_) => {
                debug!("route refresh: sending every route again");
                self.send_full_table(&routes.table).await
            }
            BgpMessage::Open(_) | BgpMessage::Notification(_) => Err(fail(
                &mut self.t,
                self.name,
                self.obs,
                Notify::UnexpectedMessage(3),
            )
            .await),
        }
    }

    /// Sends every route of the table the session carries, then End-of-RIB for each
    /// negotiated family; the peer then holds exactly these.
    async fn send_full_table(&mut self, table: &SharedTable) -> Result<(), SessionError> {
        self.sent.clear();
        self.sync(table).await?;
        let mut eor = Vec::new();
        if self.out.ipv4 {
            eor.push(packet::end_of_rib(false));
        }
        if self.out.ipv6 {
            eor.push(packet::end_of_rib(true));
        }
        send_all(&mut self.t, self.name, self.obs, eor).await
    }

    /// Sends what differs between the table and what the peer holds: withdrawals and new or
    /// changed routes.
    async fn send_changes(&mut self, table: &SharedTable) -> Result<(), SessionError> {
        self.sync(table).await?;
        self.obs.announced(self.name, self.sent.len());
        Ok(())
    }

    /// Brings the peer to the table, [`CHUNK`] changes at a time: the lock is held while a
    /// chunk is compared, not while it is sent, and only one chunk's UPDATEs exist at once.
    /// A change of the table meanwhile is taken up by the chunks after it (and by the next
    /// call for the part already passed: the watch channel says so).
    async fn sync(&mut self, table: &SharedTable) -> Result<(), SessionError> {
        let mut after = None;
        loop {
            let chunk = {
                let t = table.read();
                let out = &self.out;
                diff_chunk(
                    &t,
                    t.peer(self.name),
                    &self.sent,
                    |p| out.carries(p),
                    after,
                    CHUNK,
                )
            };
            apply_chunk(&mut self.sent, &chunk);
            if !chunk.announce.is_empty() || !chunk.withdraw.is_empty() {
                let msgs = packet::updates(&self.out, &chunk.announce, &chunk.withdraw);
                drop(chunk.announce);
                send_all(&mut self.t, self.name, self.obs, msgs).await?;
            }
            match chunk.next {
                Some(n) => after = Some(n),
                None => return Ok(()),
            }
        }
    }

    /// Does what `mode` asks; an error (`Stopped`) for everything but staying up.
    async fn on_run(&mut self, mode: Run) -> Result<(), SessionError> {
        let (t, name, obs) = (&mut self.t, self.name, self.obs);
        match mode {
            Run::Up => Ok(()),
            Run::Drain => {
                let withdraw: Vec<IpNet> = self.sent.keys().copied().collect();
                for part in withdraw.chunks(CHUNK) {
                    let msgs = packet::updates::<RouteAttrs>(&self.out, &[], part);
                    if send_all(t, name, obs, msgs).await.is_err() {
                        break;
                    }
                }
                obs.announced(name, 0);
                let _ = fail(t, name, obs, Notify::AdministrativeShutdown).await;
                Err(SessionError::Stopped)
            }
            Run::Stop => {
                let _ = fail(t, name, obs, Notify::OtherConfigurationChange).await;
                Err(SessionError::Stopped)
            }
            Run::Restart => Err(SessionError::Stopped),
        }
    }
}

async fn send_all(
    t: &mut Transport,
    name: &PeerName,
    obs: &dyn Observer,
    msgs: Vec<BgpMessage>,
) -> Result<(), SessionError> {
    let n = msgs
        .iter()
        .filter(|m| matches!(m, BgpMessage::Update(_)))
        .count();
    for m in msgs {
        // Fed without flushing each: the framed sink writes them out in large chunks.
        t.feed(m).await.map_err(|e| match e {
            FrameError::Io(e) => SessionError::Io(e),
            other => SessionError::Frame(other),
        })?;
    }
    t.flush().await.map_err(|e| match e {
        FrameError::Io(e) => SessionError::Io(e),
        other => SessionError::Frame(other),
    })?;
    obs.updates_sent(name, n as u64);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hold_and_keepalive_negotiate_to_the_smaller_hold_and_a_third_of_it() {
        let s = Duration::from_secs;
        assert_eq!(negotiate(s(90), s(30), 9), (s(9), s(3)));
        assert_eq!(negotiate(s(9), Duration::ZERO, 90), (s(9), s(3)));
        assert_eq!(negotiate(s(90), s(10), 0), (Duration::ZERO, Duration::ZERO));
    }
}
