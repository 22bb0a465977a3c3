//! The ControllerSession: heartbeats up, leases and assignments down, the lease timer and
//! fencing. The sockets are the [`link`](super::link) tasks', one per member.
//!
//! The lease runs from the moment the acknowledged heartbeat was *sent*, so it ends no later
//! than the leader's view of it; when it runs out the speaker stops answering at once (the
//! packet path checks the gate itself) and drops its assignment, so that a lease granted later
//! never revives addresses the leader has meanwhile given to another node (the gate's epoch
//! makes sure of that even before this actor runs). Leases and assignments come from the
//! newest leadership heard of (Raft term, leader); an older one's are ignored.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use actix::{
    Actor, ActorFutureExt, Addr, AsyncContext, Context, Handler, Message, Recipient,
    ResponseActFuture, SpawnHandle, WrapFuture,
};
use ipnet::IpNet;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use super::agent::{NodeAgent, SetAddresses, SetBgp};
use super::LeaseGate;
use crate::announce::assignment::{Accept, AddressDelta, Receiver};
use crate::announce::bgp::BgpRoute;
use crate::announce::proto::{
    Assignment, AssignmentId, Heartbeat, L2Address, ServiceAnnounce, ToController, ToSpeaker,
};
use crate::config::model::{InterfaceName, Peer};
use crate::labels::Labels;
use crate::metrics::speaker::SpeakerMetrics;
use crate::names::{NodeName, PeerName, ServiceKey};
use crate::net::bgp::table::SharedTable;

/// What a speaker does when no controller can renew its lease.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum OnControlPlaneLoss {
    /// Stop answering: two nodes can never answer for one address.
    #[default]
    Fence,
    /// Keep answering for the owned addresses while every controller member it can reach
    /// says there is no quorum (no owner can move then), at the risk of two answerers if a
    /// partition splits the members and the LAN differently.
    Hold,
}

/// What the session needs to know about its node.
#[derive(Clone, Debug)]
pub struct SessionConfig {
    /// The node.
    pub node: NodeName,
    /// Its labels.
    pub labels: Labels,
    /// Its announcing interfaces.
    pub interfaces: Vec<InterfaceName>,
    /// The controller members' Raft addresses.
    pub controllers: Vec<String>,
    /// Fence or hold when the control plane is lost.
    pub on_loss: OnControlPlaneLoss,
}

/// Something the link task saw.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub enum LinkEvent {
    /// A session to this member is open.
    Connected(String),
    /// This member could not be reached.
    Unreachable(String),
    /// The session to this member ended.
    Disconnected(String),
    /// This member said something.
    Received(String, ToSpeaker),
}

/// Who judges readiness.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum ReadinessSource {
    /// The local health checks.
    HealthChecks,
    /// The Kubernetes endpoints of the Services.
    Endpoints,
}

/// The Services a source finds this node unready for (the node is unready for the union).
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct Readiness {
    /// Who says so.
    pub source: ReadinessSource,
    /// The Services.
    pub unready: BTreeSet<ServiceKey>,
}

/// What Kubernetes says of this node: its labels, and whether it must not answer at all.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct NodeInfo {
    /// The Node's labels.
    pub labels: Labels,
    /// Excluded from load balancers, or its network unavailable.
    pub excluded: bool,
}

/// Passes what the Kubernetes endpoint watch observes to the session, until either ends.
pub async fn forward_observed(
    mut observed: tokio::sync::mpsc::Receiver<crate::k8s::endpoints::Observed>,
    session: actix::Addr<ControllerSession>,
) {
    use crate::k8s::endpoints::Observed;
    while let Some(o) = observed.recv().await {
        let sent = match o {
            Observed::Node { labels, excluded } => {
                session.try_send(NodeInfo { labels, excluded }).is_ok()
            }
            Observed::Unready(unready) => session
                .try_send(Readiness {
                    source: ReadinessSource::Endpoints,
                    unready,
                })
                .is_ok(),
        };
        if !sent {
            return;
        }
    }
}

/// The interfaces the node answers on changed (a rescan found some new or gone): the
/// heartbeat reports them from now on, starting with one sent at once.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct InterfacesChanged(pub Vec<InterfaceName>);

/// Stop answering, tell the leader, and resolve once it has moved the addresses (or the
/// caller gives up waiting).
#[derive(Message)]
#[rtype(result = "oneshot::Receiver<()>")]
pub struct Drain;

/// What the session looks like from outside.
#[derive(Message)]
#[rtype(result = "SessionStatus")]
pub struct GetStatus;

/// A snapshot of the session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionStatus {
    /// Whether the lease has run out (and nothing is answered).
    pub fenced: bool,
    /// Whether it answers without a lease (`hold`).
    pub holding: bool,
    /// The addresses it answers for.
    pub addresses: Vec<IpAddr>,
    /// The members it has a session with.
    pub connected: Vec<String>,
    /// The leadership (Raft term, leader id) whose leases it follows.
    pub leadership: Option<(u64, u64)>,
}

#[derive(Message)]
#[rtype(result = "()")]
struct Beat;

#[derive(Message)]
#[rtype(result = "()")]
struct LeaseCheck;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum MemberSays {
    Quorum,
    NoQuorum,
    Unreachable,
}

/// Where a session applies what it is assigned: the node's [`NodeAgent`], or anything else
/// that takes the same two messages (a benchmark's simulated node records them instead).
#[derive(Clone)]
pub struct Applier {
    /// Takes the addresses to answer for; the session acknowledges only once it resolves.
    pub addresses: Recipient<SetAddresses>,
    /// Takes the BGP sessions and routes.
    pub bgp: Recipient<SetBgp>,
}

impl From<Addr<NodeAgent>> for Applier {
    fn from(agent: Addr<NodeAgent>) -> Self {
        Self {
            addresses: agent.clone().recipient(),
            bgp: agent.recipient(),
        }
    }
}

/// Sees every assignment a session receives, as received (before it is judged).
pub type AssignmentProbe = Box<dyn Fn(&Assignment)>;

/// The session with the controller leader.
pub struct ControllerSession {
    cfg: SessionConfig,
    agent: Applier,
    gate: Arc<LeaseGate>,
    metrics: Arc<SpeakerMetrics>,
    out: mpsc::Sender<ToController>,
    services: watch::Sender<Vec<ServiceAnnounce>>,
    seq: u64,
    sent: VecDeque<(u64, Instant)>,
    heartbeat: Duration,
    heartbeat_timer: Option<SpawnHandle>,
    lease_timer: Option<SpawnHandle>,
    /// The assignment protocol's receiving end: leadership followed, what is held and applied.
    receiver: Receiver,
    announced: BTreeMap<ServiceKey, ServiceAnnounce>,
    bgp_peers: BTreeMap<PeerName, Peer>,
    /// The BGP routes, shared with the BGP sessions (which read it when the agent tells them
    /// it changed).
    bgp_routes: SharedTable,
    unready: BTreeMap<ReadinessSource, BTreeSet<ServiceKey>>,
    excluded: bool,
    heard: BTreeMap<String, (MemberSays, Instant)>,
    connected: BTreeSet<String>,
    /// The member whose lease the speaker holds.
    granted_by: Option<String>,
    draining: Option<oneshot::Sender<()>>,
    _alive: Option<crate::watchdog::Guard>,
    /// Gets every renewal's round trip, exactly (the histogram's buckets are too coarse for a
    /// benchmark's percentiles).
    rtt_probe: Option<mpsc::UnboundedSender<Duration>>,
    assignment_probe: Option<AssignmentProbe>,
}

/// Heartbeats remembered for matching leases: a lease for an older one is not worth having.
const SENT_KEPT: usize = 64;

impl ControllerSession {
    /// A session for `cfg`, sending through `out` (to the link task) and applying through
    /// `agent` (the node agent, or an [`Applier`]); the Services it may answer for are
    /// published on `services` (for the health checks and the endpoint watch).
    pub fn new(
        cfg: SessionConfig,
        agent: impl Into<Applier>,
        gate: Arc<LeaseGate>,
        metrics: Arc<SpeakerMetrics>,
        out: mpsc::Sender<ToController>,
        services: watch::Sender<Vec<ServiceAnnounce>>,
    ) -> Self {
        Self {
            cfg,
            agent: agent.into(),
            gate,
            metrics,
            out,
            services,
            seq: 0,
            sent: VecDeque::new(),
            heartbeat: Duration::from_millis(200),
            heartbeat_timer: None,
            lease_timer: None,
            // Nothing is answered until a lease arrives.
            receiver: Receiver::default(),
            announced: BTreeMap::new(),
            bgp_peers: BTreeMap::new(),
            bgp_routes: SharedTable::new(),
            unready: BTreeMap::new(),
            excluded: false,
            heard: BTreeMap::new(),
            connected: BTreeSet::new(),
            granted_by: None,
            draining: None,
            _alive: None,
            rtt_probe: None,
            assignment_probe: None,
        }
    }

    /// The same, counted alive on `watchdog` while it runs.
    pub fn watched(self, watchdog: &crate::watchdog::Watchdog) -> Self {
        Self {
            _alive: Some(watchdog.guard("controller session")),
            ..self
        }
    }

    /// The same, sending the round trip of every renewal (from the heartbeat's sending to its
    /// lease's arrival, for a lease this session takes) on `probe`.
    pub fn with_rtt_probe(self, probe: mpsc::UnboundedSender<Duration>) -> Self {
        Self {
            rtt_probe: Some(probe),
            ..self
        }
    }

    /// The same, showing every assignment received to `probe` before it is judged.
    pub fn with_assignment_probe(self, probe: AssignmentProbe) -> Self {
        Self {
            assignment_probe: Some(probe),
            ..self
        }
    }

    fn send_heartbeat(&mut self) {
        self.seq += 1;
        let now = Instant::now();
        self.sent.push_back((self.seq, now));
        while self.sent.len() > SENT_KEPT {
            self.sent.pop_front();
        }
        let hb = Heartbeat {
            seq: self.seq,
            labels: self.cfg.labels.clone(),
            interfaces: self.cfg.interfaces.clone(),
            unready: self.unready.values().flatten().cloned().collect(),
            applied: self.receiver.applied(),
            want_full: self.receiver.want_full(),
            fenced: self.receiver.fenced(),
            excluded: self.excluded,
        };
        // While no link is up the heartbeat goes nowhere, which is what a lost network does.
        let _ = self.out.try_send(ToController::Heartbeat(hb));
    }

    fn restart_heartbeats(&mut self, ctx: &mut Context<Self>) {
        if let Some(h) = self.heartbeat_timer.take() {
            ctx.cancel_future(h);
        }
        self.heartbeat_timer = Some(ctx.run_interval(self.heartbeat, |_, ctx| ctx.notify(Beat)));
    }

    fn schedule_lease_check(&mut self, ctx: &mut Context<Self>) {
        if let Some(h) = self.lease_timer.take() {
            ctx.cancel_future(h);
        }
        let at = self.gate.remaining();
        self.lease_timer = Some(ctx.notify_later(LeaseCheck, at));
    }

    /// Whether every controller member heard from recently says there is no quorum (or
    /// cannot be reached), and at least one said so.
    fn control_plane_lost(&self) -> bool {
        let recent = Duration::from_secs(2).max(self.heartbeat * 10);
        let now = Instant::now();
        let mut any_no_quorum = false;
        for member in &self.cfg.controllers {
            match self.heard.get(member) {
                Some((MemberSays::NoQuorum, at)) if now.duration_since(*at) <= recent => {
                    any_no_quorum = true;
                }
                Some((MemberSays::Unreachable, _)) => {}
                // A member that knows a leader, or one not heard from lately, may mean a
                // leader exists that could move our addresses.
                _ => return false,
            }
        }
        any_no_quorum
    }

    fn fence(&mut self, ctx: &mut Context<Self>, why: &str) {
        self.gate.revoke();
        if self.receiver.fenced() {
            return;
        }
        tracing::warn!(node = %self.cfg.node, why, "fencing: answering for nothing");
        self.metrics.fences.inc();
        self.receiver.fence();
        let agent = self.agent.addresses.clone();
        let epoch = self.gate.epoch();
        ctx.wait(
            async move {
                let _ = agent
                    .send(SetAddresses {
                        addresses: BTreeMap::new(),
                        epoch,
                    })
                    .await;
            }
            .into_actor(self),
        );
        self.send_heartbeat();
    }

    /// Follows `seen` if it is the newest leadership heard of; false if it is older than one
    /// already followed (its messages are then ignored).
    fn follow(&mut self, seen: (u64, u64)) -> bool {
        let before = self.receiver.leadership();
        if !self.receiver.follow(seen) {
            return false;
        }
        if before.is_some() && before != Some(seen) {
            tracing::info!(node = %self.cfg.node, term = seen.0, leader = seen.1, "following a new controller leader");
        }
        true
    }

    fn lease_ran_out(&mut self, ctx: &mut Context<Self>) {
        if self.gate.remaining() > Duration::ZERO || self.receiver.fenced() {
            return;
        }
        if self.cfg.on_loss == OnControlPlaneLoss::Hold && self.control_plane_lost() {
            if !self.gate.holding() {
                tracing::warn!(node = %self.cfg.node, "no controller has a quorum: holding the owned addresses (--on-control-plane-loss hold)");
                self.gate.set_hold(true);
            }
            return;
        }
        self.fence(ctx, "the lease ran out");
    }

    fn on_lease(
        &mut self,
        ctx: &mut Context<Self>,
        seq: u64,
        lease: Duration,
        heartbeat: Duration,
        leadership: (u64, u64),
    ) {
        let Some(&(_, sent_at)) = self.sent.iter().find(|(s, _)| *s == seq) else {
            return;
        };
        if !self.follow(leadership) {
            return;
        }
        let rtt = sent_at.elapsed();
        self.metrics.heartbeat_rtt.observe(rtt.as_secs_f64());
        if let Some(probe) = &self.rtt_probe {
            let _ = probe.send(rtt);
        }
        self.metrics.lease_duration.set(lease.as_secs_f64());
        self.gate.extend_to(sent_at + lease);
        if self.gate.remaining() == Duration::ZERO {
            // Answered too late to be of use.
            return;
        }
        self.gate.set_hold(false);
        if self.receiver.fenced() {
            tracing::info!(node = %self.cfg.node, "lease granted");
            self.receiver.unfence();
            self.send_heartbeat();
        }
        if heartbeat != self.heartbeat && !heartbeat.is_zero() {
            self.heartbeat = heartbeat;
            self.restart_heartbeats(ctx);
        }
        self.schedule_lease_check(ctx);
    }

    fn on_assignment(&mut self, ctx: &mut Context<Self>, a: Assignment) {
        let Assignment {
            id,
            base,
            upsert,
            remove,
            services,
            services_upsert,
            services_remove,
            peers,
            routes_upsert,
            routes_remove,
        } = a;
        // Fenced, another leadership's, older than what is held, or on a base not held: the
        // protocol's receiver decides (`announce::assignment`).
        let next = match self.receiver.accept(&AddressDelta {
            id,
            base,
            upsert,
            remove,
        }) {
            Accept::Apply(next) => next,
            Accept::Ignore => return,
            Accept::Resync => {
                self.send_heartbeat();
                return;
            }
        };
        // A change applies to what we hold, which is taken (not copied: with many Services
        // these maps are large) and put back below; nothing returns early after this.
        let announced = match base {
            None => BTreeMap::new(),
            Some(_) => std::mem::take(&mut self.announced),
        };
        let mut bgp_changed =
            base.is_none() || !routes_remove.is_empty() || !routes_upsert.is_empty();
        if bgp_changed {
            change_routes(
                &self.bgp_routes,
                base.is_none(),
                routes_remove,
                routes_upsert,
            );
        }
        self.change_services(announced, services, services_upsert, &services_remove);
        if let Some(peers) = peers {
            bgp_changed |= self.set_bgp_peers(peers);
        }
        self.apply_on_agent(ctx, id, next, bgp_changed);
    }

    /// Puts the changed Services back as the ones announced, publishing them (to the health
    /// checks and the endpoint watch) if anything changed.
    fn change_services(
        &mut self,
        mut announced: BTreeMap<ServiceKey, ServiceAnnounce>,
        services: Option<Vec<ServiceAnnounce>>,
        services_upsert: Vec<ServiceAnnounce>,
        services_remove: &[ServiceKey],
    ) {
        let services_changed =
            services.is_some() || !services_upsert.is_empty() || !services_remove.is_empty();
        for s in services.into_iter().flatten().chain(services_upsert) {
            announced.insert(s.service.clone(), s);
        }
        for k in services_remove {
            announced.remove(k);
        }
        if services_changed {
            self.services
                .send_replace(announced.values().cloned().collect());
        }
        self.announced = announced;
    }

    /// Takes `peers` as the BGP sessions to open; true if they differ from the previous ones.
    fn set_bgp_peers(&mut self, peers: Vec<(PeerName, Peer)>) -> bool {
        let peers: BTreeMap<PeerName, Peer> = peers.into_iter().collect();
        let changed = peers != self.bgp_peers;
        self.bgp_peers = peers;
        changed
    }

    /// Hands the address set `next` (and the BGP state, if `bgp_changed`) to the node agent,
    /// acknowledging assignment `id` once it is applied.
    fn apply_on_agent(
        &mut self,
        ctx: &mut Context<Self>,
        id: AssignmentId,
        next: BTreeMap<IpAddr, L2Address>,
        bgp_changed: bool,
    ) {
        let agent = self.agent.clone();
        let bgp = bgp_changed.then(|| SetBgp {
            peers: self.bgp_peers.clone(),
            routes: self.bgp_routes.clone(),
        });
        // Stamped with the lease's epoch now: if the lease lapses before the responders see
        // this set, they never answer for it.
        let epoch = self.gate.epoch();
        // Acknowledged only once every responder answers accordingly: the leader gives an
        // address taken from us to another node only after this acknowledgement. BGP routes
        // need no such care (every eligible node announces), but go out in the same step.
        ctx.wait(
            async move {
                let _ = agent
                    .addresses
                    .send(SetAddresses {
                        addresses: next,
                        epoch,
                    })
                    .await;
                if let Some(b) = bgp {
                    let _ = agent.bgp.send(b).await;
                }
            }
            .into_actor(self)
            .map(move |(), act, _| {
                // The receiver counts the set applied from `accept`: nothing else runs on
                // this actor meanwhile (`ctx.wait`), so the acknowledgement below is the first
                // report of it.
                if !act.receiver.fenced() && act.receiver.applied() == Some(id) {
                    act.send_heartbeat();
                }
            }),
        );
    }
}

/// Applies withdrawn and added BGP routes to the shared table, in place (a full assignment,
/// `full`, replaces it all). One write lock covers the whole change, so a BGP session never
/// sees half of it (a full one would otherwise look like everything withdrawn).
fn change_routes(
    routes: &SharedTable,
    full: bool,
    routes_remove: Vec<(IpNet, PeerName)>,
    routes_upsert: Vec<BgpRoute>,
) {
    let mut table = routes.write();
    if full {
        table.clear();
    }
    for (prefix, peer) in &routes_remove {
        table.remove(prefix, peer);
    }
    for r in routes_upsert {
        table.insert(r.prefix, &r.peer, r.attrs);
    }
}

impl Actor for ControllerSession {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.restart_heartbeats(ctx);
    }
}

impl Handler<Beat> for ControllerSession {
    type Result = ();

    fn handle(&mut self, _: Beat, ctx: &mut Context<Self>) {
        if self.gate.holding() && !self.control_plane_lost() {
            // Someone has a quorum again but has not renewed us: stop holding.
            self.gate.set_hold(false);
            self.lease_ran_out(ctx);
        }
        self.send_heartbeat();
    }
}

impl Handler<LeaseCheck> for ControllerSession {
    type Result = ();

    fn handle(&mut self, _: LeaseCheck, ctx: &mut Context<Self>) {
        self.lease_timer = None;
        if self.gate.remaining() > Duration::ZERO {
            self.schedule_lease_check(ctx);
        } else {
            self.lease_ran_out(ctx);
        }
    }
}

impl Handler<LinkEvent> for ControllerSession {
    type Result = ();

    fn handle(&mut self, msg: LinkEvent, ctx: &mut Context<Self>) {
        let now = Instant::now();
        match msg {
            LinkEvent::Connected(member) => {
                tracing::info!(node = %self.cfg.node, %member, "connected to controller");
                self.metrics.set_connected(&member, true);
                self.connected.insert(member);
                self.send_heartbeat();
            }
            LinkEvent::Unreachable(member) => {
                self.heard.insert(member, (MemberSays::Unreachable, now));
            }
            LinkEvent::Disconnected(member) => {
                self.metrics.set_connected(&member, false);
                if self.granted_by.as_ref() == Some(&member) {
                    self.metrics.leader_connected.set(0);
                }
                self.connected.remove(&member);
            }
            LinkEvent::Received(member, msg) => {
                let says = match &msg {
                    ToSpeaker::NoQuorum | ToSpeaker::NotLeader { leader: None } => {
                        MemberSays::NoQuorum
                    }
                    _ => MemberSays::Quorum,
                };
                if matches!(msg, ToSpeaker::Lease { .. }) {
                    self.metrics.leader_connected.set(1);
                    self.granted_by = Some(member.clone());
                }
                self.heard.insert(member, (says, now));
                match msg {
                    ToSpeaker::Lease {
                        seq,
                        lease_ms,
                        heartbeat_ms,
                        term,
                        leader,
                    } => self.on_lease(
                        ctx,
                        seq,
                        Duration::from_millis(lease_ms),
                        Duration::from_millis(heartbeat_ms),
                        (term, leader),
                    ),
                    ToSpeaker::Assignment(a) => {
                        if let Some(probe) = &self.assignment_probe {
                            probe(&a);
                        }
                        self.on_assignment(ctx, *a)
                    }
                    ToSpeaker::Drained => {
                        if let Some(tx) = self.draining.take() {
                            let _ = tx.send(());
                        }
                    }
                    ToSpeaker::NotLeader { .. } | ToSpeaker::NoQuorum => {
                        if self.gate.holding() && !self.control_plane_lost() {
                            self.gate.set_hold(false);
                            self.lease_ran_out(ctx);
                        }
                    }
                }
            }
        }
    }
}

impl Handler<Readiness> for ControllerSession {
    type Result = ();

    fn handle(&mut self, msg: Readiness, _: &mut Context<Self>) {
        if self.unready.get(&msg.source) != Some(&msg.unready) {
            self.unready.insert(msg.source, msg.unready);
            self.send_heartbeat();
        }
    }
}

impl Handler<NodeInfo> for ControllerSession {
    type Result = ();

    fn handle(&mut self, msg: NodeInfo, _: &mut Context<Self>) {
        if msg.labels != self.cfg.labels || msg.excluded != self.excluded {
            if msg.excluded && !self.excluded {
                tracing::warn!(node = %self.cfg.node, "the node is excluded from load balancers (label or network unavailable)");
            }
            self.cfg.labels = msg.labels;
            self.excluded = msg.excluded;
            self.send_heartbeat();
        }
    }
}

impl Handler<InterfacesChanged> for ControllerSession {
    type Result = ();

    fn handle(&mut self, msg: InterfacesChanged, _: &mut Context<Self>) {
        if msg.0 != self.cfg.interfaces {
            self.cfg.interfaces = msg.0;
            self.send_heartbeat();
        }
    }
}

impl Handler<Drain> for ControllerSession {
    type Result = ResponseActFuture<Self, oneshot::Receiver<()>>;

    fn handle(&mut self, _: Drain, _: &mut Context<Self>) -> Self::Result {
        tracing::info!(node = %self.cfg.node, "draining: handing the addresses over");
        self.gate.revoke();
        self.receiver.fence();
        let (tx, rx) = oneshot::channel();
        self.draining = Some(tx);
        let agent = self.agent.addresses.clone();
        let epoch = self.gate.epoch();
        Box::pin(
            async move {
                let _ = agent
                    .send(SetAddresses {
                        addresses: BTreeMap::new(),
                        epoch,
                    })
                    .await;
            }
            .into_actor(self)
            .map(move |(), act, _| {
                // Only once nothing is answered here may the leader move the addresses.
                let _ = act.out.try_send(ToController::Drain);
                rx
            }),
        )
    }
}

impl Handler<GetStatus> for ControllerSession {
    type Result = actix::MessageResult<GetStatus>;

    fn handle(&mut self, _: GetStatus, _: &mut Context<Self>) -> Self::Result {
        actix::MessageResult(SessionStatus {
            fenced: self.receiver.fenced(),
            holding: self.gate.holding(),
            addresses: self.receiver.held().keys().copied().collect(),
            connected: self.connected.iter().cloned().collect(),
            leadership: self.receiver.leadership(),
        })
    }
}

#[cfg(test)]
mod probe_tests;
