//! The BFD task: one per speaker process, serving every session. It owns the receive sockets
//! (3784 single hop, 4784 multihop, IPv4 and IPv6), one send socket per session, the
//! demultiplexer and each session's [`fsm::Session`], and runs their timers. Users (the BGP
//! sessions) hold a [`BfdSession`] and watch its [`BfdStatus`]; a session lives while one of
//! them holds it, and says AdminDown to the peer when the last one lets go.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ring::rand::{SecureRandom, SystemRandom};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use super::demux::{new_discriminator, Arrival, DropReason, SessionKey, Table};
use super::fsm::{self, Action, Jitter, SplitMix};
use super::packet::{decode, encode, Diag, State};
use super::socket::{self, Datagram};
use super::view::BfdSessionView;
use super::{Hop, MULTI_HOP_PORT, SINGLE_HOP_PORT};
use crate::names::PeerName;

/// What a user sees of a session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BfdStatus {
    /// The local state.
    pub state: State,
    /// Why it last changed.
    pub diag: Diag,
    /// How many times it went from Up to Down other than by the peer's AdminDown: the
    /// failures a BGP session acts on (RFC 5882 section 3.2).
    pub failures: u64,
}

/// How BFD reports, for metrics.
pub trait BfdObserver: Send + Sync + 'static {
    /// The session of `peer` is now in `to`.
    fn state_changed(&self, peer: &PeerName, to: State);
    /// A received datagram was dropped.
    fn dropped(&self, reason: DropReason);
}

/// An observer that records nothing.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoObserver;

impl BfdObserver for NoObserver {
    fn state_changed(&self, _: &PeerName, _: State) {}
    fn dropped(&self, _: DropReason) {}
}

/// The UDP ports used: the RFC's unless a test runs two tasks on one host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ports {
    /// Where single-hop packets are received.
    pub single: u16,
    /// Where multihop packets are received.
    pub multi: u16,
    /// Where the peer receives single-hop packets.
    pub peer_single: u16,
    /// Where the peer receives multihop packets.
    pub peer_multi: u16,
}

impl Default for Ports {
    fn default() -> Self {
        Ports {
            single: SINGLE_HOP_PORT,
            multi: MULTI_HOP_PORT,
            peer_single: SINGLE_HOP_PORT,
            peer_multi: MULTI_HOP_PORT,
        }
    }
}

enum Command {
    Add {
        key: SessionKey,
        name: PeerName,
        config: fsm::SessionConfig,
        reply: oneshot::Sender<Option<watch::Receiver<BfdStatus>>>,
    },
    Release(SessionKey),
    List {
        reply: oneshot::Sender<Vec<BfdSessionView>>,
    },
}

/// A handle on the BFD task; cheap to clone. The task ends when the last handle and session
/// are gone.
#[derive(Clone, Debug)]
pub struct Bfd {
    commands: mpsc::UnboundedSender<Command>,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Command::Add { key, .. } => write!(f, "Add({key:?})"),
            Command::Release(key) => write!(f, "Release({key:?})"),
            Command::List { .. } => f.write_str("List"),
        }
    }
}

impl Bfd {
    /// Starts the task on a thread of its own with the RFC's ports: BFD's timers are tens of
    /// milliseconds, which neither the actors' work nor the low-priority packet thread's
    /// floods may delay. No socket opens before the first session; the thread ends with the
    /// task.
    pub fn start(observer: Arc<dyn BfdObserver>) -> std::io::Result<Bfd> {
        let (commands, rx) = mpsc::unbounded_channel();
        let (datagrams, datagrams_rx) = mpsc::channel(1024);
        let engine = Engine::new(Ports::default(), observer, datagrams);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        std::thread::Builder::new()
            .name("ironlb-bfd".into())
            .spawn(move || runtime.block_on(engine.run(rx, datagrams_rx)))?;
        Ok(Bfd { commands })
    }

    /// Starts the task on `runtime` with `ports`.
    pub fn start_with_ports(
        runtime: &tokio::runtime::Handle,
        observer: Arc<dyn BfdObserver>,
        ports: Ports,
    ) -> Bfd {
        let (commands, rx) = mpsc::unbounded_channel();
        let (datagrams, datagrams_rx) = mpsc::channel(1024);
        let engine = Engine::new(ports, observer, datagrams);
        runtime.spawn(engine.run(rx, datagrams_rx));
        Bfd { commands }
    }

    /// The session `key` (created, or shared with its other users) for `name`'s BGP session,
    /// with `config` if it is created now. `None` if the task is gone.
    pub async fn session(
        &self,
        key: SessionKey,
        name: PeerName,
        config: fsm::SessionConfig,
    ) -> Option<BfdSession> {
        let (reply, rx) = oneshot::channel();
        let add = Command::Add {
            key,
            name,
            config,
            reply,
        };
        self.commands.send(add).ok()?;
        let status = rx.await.ok()??;
        Some(BfdSession {
            key,
            status,
            commands: self.commands.clone(),
        })
    }

    /// Every session, released ones still saying goodbye included, by peer name and
    /// addresses. `None` if the task is gone.
    pub async fn sessions(&self) -> Option<Vec<BfdSessionView>> {
        let (reply, rx) = oneshot::channel();
        self.commands.send(Command::List { reply }).ok()?;
        rx.await.ok()
    }
}

/// One user's hold on a session; dropping it lets go.
#[derive(Debug)]
pub struct BfdSession {
    key: SessionKey,
    status: watch::Receiver<BfdStatus>,
    commands: mpsc::UnboundedSender<Command>,
}

impl BfdSession {
    /// The session's key.
    pub fn key(&self) -> SessionKey {
        self.key
    }

    /// The status now.
    pub fn status(&self) -> BfdStatus {
        *self.status.borrow()
    }

    /// Resolves once the session has failed more than `seen` times (never, if the task is
    /// gone). Cancel safe.
    pub async fn failed_since(&mut self, seen: u64) -> BfdStatus {
        loop {
            let now = *self.status.borrow_and_update();
            if now.failures > seen {
                return now;
            }
            if self.status.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }
}

impl Drop for BfdSession {
    fn drop(&mut self) {
        let _ = self.commands.send(Command::Release(self.key));
    }
}

/// How long a released session keeps saying AdminDown before it goes, at most.
const CLOSE_WAIT: Duration = Duration::from_secs(3);

struct Entry {
    key: SessionKey,
    name: PeerName,
    fsm: fsm::Session,
    socket: UdpSocket,
    port: u16,
    users: usize,
    status: watch::Sender<BfdStatus>,
    /// Released by its last user at this instant: AdminDown until a packet has said so.
    closing: Option<Instant>,
    /// A packet went out since `closing`.
    said_goodbye: bool,
}

/// Receive sockets by (IPv6, multihop).
type Receivers = HashMap<(bool, bool), JoinHandle<()>>;

struct Engine {
    ports: Ports,
    observer: Arc<dyn BfdObserver>,
    table: Table,
    sessions: HashMap<u32, Entry>,
    receivers: Receivers,
    datagrams: mpsc::Sender<Datagram>,
    rng: SystemRandom,
    fallback: SplitMix,
}

impl Engine {
    fn new(
        ports: Ports,
        observer: Arc<dyn BfdObserver>,
        datagrams: mpsc::Sender<Datagram>,
    ) -> Self {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        Engine {
            ports,
            observer,
            table: Table::default(),
            sessions: HashMap::new(),
            receivers: HashMap::new(),
            datagrams,
            rng: SystemRandom::new(),
            fallback: SplitMix::new(seed),
        }
    }

    async fn run(
        mut self,
        mut commands: mpsc::UnboundedReceiver<Command>,
        mut datagrams: mpsc::Receiver<Datagram>,
    ) {
        let far = Duration::from_secs(3600);
        // Every handle and session gone: the released sessions still say goodbye first.
        let mut orphaned = false;
        while !(orphaned && self.sessions.is_empty()) {
            let deadline = self.next_deadline().unwrap_or_else(|| Instant::now() + far);
            tokio::select! {
                c = commands.recv(), if !orphaned => match c {
                    Some(c) => self.on_command(c),
                    None => orphaned = true,
                },
                Some(d) = datagrams.recv() => self.on_datagram(&d),
                () = tokio::time::sleep_until(deadline.into()) => self.on_timers(),
            }
        }
        for (_, r) in self.receivers.drain() {
            r.abort();
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        let closing = self
            .sessions
            .values()
            .filter_map(|e| e.closing.map(|t| t + CLOSE_WAIT));
        self.sessions
            .values()
            .filter_map(|e| e.fsm.next_deadline())
            .chain(closing)
            .min()
    }

    fn on_command(&mut self, c: Command) {
        match c {
            Command::Add {
                key,
                name,
                config,
                reply,
            } => {
                let status = self.add(key, name, config);
                let _ = reply.send(status);
            }
            Command::Release(key) => self.release(key),
            Command::List { reply } => {
                let _ = reply.send(self.list());
            }
        }
    }

    fn list(&self) -> Vec<BfdSessionView> {
        let mut list: Vec<BfdSessionView> = self
            .sessions
            .values()
            .map(|e| {
                let failures = e.status.borrow().failures;
                BfdSessionView::new(&e.key, &e.name, &e.fsm, failures, e.users)
            })
            .collect();
        list.sort_by(|a, b| (&a.peer, a.address, a.local).cmp(&(&b.peer, b.address, b.local)));
        list
    }

    /// Adds a user to session `key`, creating it if new.
    fn add(
        &mut self,
        key: SessionKey,
        name: PeerName,
        config: fsm::SessionConfig,
    ) -> Option<watch::Receiver<BfdStatus>> {
        self.ensure_receiver(key);
        if let Some(d) = self.table.get(&key) {
            let e = self.sessions.get_mut(&d.get())?;
            e.users += 1;
            if e.closing.take().is_some() {
                let actions = e.fsm.admin_up(Instant::now());
                apply(e, actions, self.ports, self.observer.as_ref());
            }
            return Some(e.status.subscribe());
        }
        let (rng, fallback) = (&self.rng, &mut self.fallback);
        let mut random = || random_u32(rng, fallback);
        let discr = new_discriminator(&self.table, &mut random);
        let used: HashSet<u16> = self.sessions.values().map(|e| e.port).collect();
        let (socket, port) = match socket::send_socket(key.local, &used, random) {
            Ok(s) => s,
            Err(e) => {
                warn!(peer = %name, local = %key.local, error = %e, "BFD: no send socket; the session does not run");
                return None;
            }
        };
        let fsm = fsm::Session::new(config, discr, Instant::now());
        let (status, rx) = watch::channel(BfdStatus {
            state: fsm.state(),
            diag: fsm.diag(),
            failures: 0,
        });
        info!(peer = %name, addr = %key.peer, local = %key.local, hop = ?key.hop, discriminator = discr.get(), source_port = port, "BFD session created");
        self.observer.state_changed(&name, fsm.state());
        self.table.insert(key, discr);
        let entry = Entry {
            key,
            name,
            fsm,
            socket,
            port,
            users: 1,
            status,
            closing: None,
            said_goodbye: false,
        };
        self.sessions.insert(discr.get(), entry);
        self.on_timers();
        Some(rx)
    }

    /// Opens the receive socket `key` needs, if not open yet.
    fn ensure_receiver(&mut self, key: SessionKey) {
        let multi = matches!(key.hop, Hop::Multi { .. });
        let slot = (key.peer.is_ipv6(), multi);
        if self.receivers.get(&slot).is_some_and(|r| !r.is_finished()) {
            return;
        }
        let port = if multi {
            self.ports.multi
        } else {
            self.ports.single
        };
        match socket::receive_socket(slot.0, port) {
            Ok(fd) => {
                let tx = self.datagrams.clone();
                let task = tokio::spawn(async move {
                    loop {
                        match socket::receive(&fd, multi).await {
                            Ok(d) => {
                                if tx.send(d).await.is_err() {
                                    return;
                                }
                            }
                            Err(e) => {
                                debug!(error = %e, "BFD receive error");
                                tokio::time::sleep(Duration::from_millis(100)).await;
                            }
                        }
                    }
                });
                self.receivers.insert(slot, task);
            }
            Err(e) => {
                warn!(port, ipv6 = slot.0, error = %e, "BFD: cannot listen; sessions of this kind stay down");
            }
        }
    }

    fn release(&mut self, key: SessionKey) {
        let Some(d) = self.table.get(&key) else {
            return;
        };
        let Some(e) = self.sessions.get_mut(&d.get()) else {
            return;
        };
        e.users = e.users.saturating_sub(1);
        if e.users == 0 {
            let now = Instant::now();
            e.closing = Some(now);
            e.said_goodbye = false;
            let actions = e.fsm.admin_down(now);
            apply(e, actions, self.ports, self.observer.as_ref());
            self.reap(now);
        }
    }

    /// Removes the released sessions that have told the peer, or waited long enough.
    fn reap(&mut self, now: Instant) {
        let done: Vec<SessionKey> = self
            .sessions
            .values()
            .filter(|e| {
                e.closing
                    .is_some_and(|t| e.said_goodbye || now >= t + CLOSE_WAIT)
            })
            .map(|e| e.key)
            .collect();
        for key in done {
            if let Some(d) = self.table.remove(&key) {
                if let Some(e) = self.sessions.remove(&d.get()) {
                    info!(peer = %e.name, addr = %key.peer, "BFD session removed");
                }
            }
        }
    }

    fn on_datagram(&mut self, d: &Datagram) {
        let packet = match decode(&d.bytes) {
            Ok(p) => p,
            Err(e) => return self.drop_packet(DropReason::Malformed, &d.arrival, &e),
        };
        let discr = match self.table.lookup(packet.your_discriminator, &d.arrival) {
            Ok(discr) => discr,
            Err(r) => return self.drop_packet(r, &d.arrival, &r),
        };
        let Some(e) = self.sessions.get_mut(&discr.get()) else {
            return self.drop_packet(DropReason::NoSession, &d.arrival, &"gone");
        };
        match e.fsm.on_packet(Instant::now(), &packet) {
            Ok(actions) => apply(e, actions, self.ports, self.observer.as_ref()),
            Err(why) => self.drop_packet(DropReason::Discarded, &d.arrival, &why),
        }
    }

    fn drop_packet(&self, reason: DropReason, at: &Arrival, why: &dyn std::fmt::Display) {
        debug!(src = %at.src, ttl = ?at.ttl, reason = reason.label(), %why, "BFD packet dropped");
        self.observer.dropped(reason);
    }

    fn on_timers(&mut self) {
        let now = Instant::now();
        for e in self.sessions.values_mut() {
            if e.fsm.next_deadline().is_some_and(|t| t <= now) {
                let actions = e.fsm.poll_timers(now);
                apply(e, actions, self.ports, self.observer.as_ref());
            }
        }
        self.reap(now);
    }
}

/// Carries out a session's actions: packets out, state changes to the users and metrics.
fn apply(e: &mut Entry, actions: Vec<Action>, ports: Ports, observer: &dyn BfdObserver) {
    for a in actions {
        match a {
            Action::Send(p) => {
                let port = match e.key.hop {
                    Hop::Single => ports.peer_single,
                    Hop::Multi { .. } => ports.peer_multi,
                };
                let to = SocketAddr::new(e.key.peer, port);
                match e.socket.try_send_to(&encode(&p), to) {
                    Ok(_) => e.said_goodbye |= e.closing.is_some(),
                    Err(err) => debug!(peer = %e.name, error = %err, "BFD packet not sent"),
                }
            }
            Action::StateChanged { from, to, diag } => {
                let remote = e.fsm.remote_state();
                // RFC 5882 section 3.2: the peer taking its session AdminDown is no failure.
                let failure = from == State::Up && to == State::Down && remote != State::AdminDown;
                info!(peer = %e.name, addr = %e.key.peer, %from, %to, %diag, "BFD session state changed");
                observer.state_changed(&e.name, to);
                e.status.send_modify(|s| {
                    s.state = to;
                    s.diag = diag;
                    s.failures += u64::from(failure);
                });
            }
        }
    }
}

/// Random bits from the system, or (should it ever fail) from `fallback`, so a discriminator
/// or port is always found.
fn random_u32(rng: &SystemRandom, fallback: &mut SplitMix) -> u32 {
    let mut b = [0u8; 4];
    match rng.fill(&mut b) {
        Ok(()) => u32::from_ne_bytes(b),
        Err(_) => fallback.next_u32(),
    }
}

#[cfg(test)]
mod tests;
