//! The AssignmentPublisher: decides owners from the applied state and what it knows of each
//! node, commits owner changes to Raft, and pushes each speaker what it is to announce.
//!
//! It tracks, per node, what the node may be answering for with the assignment protocol's pure
//! sender ([`crate::announce::assignment::Sender`]): what it was last sent plus what was taken
//! from it and not yet acknowledged. A node that has acknowledged nothing from this leadership
//! may be answering for anything, so nothing is given to another node while it is around; that,
//! and waiting one lease after election, is what keeps two nodes from ever answering for one
//! address.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;

use actix::{Actor, ActorFutureExt, AsyncContext, Context, Handler, Message, WrapFuture};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::{L2View, LeaseTiming};

use crate::announce::assignment;
use crate::announce::bgp::{self, Routes};
use crate::announce::owners::{self, Inputs, NodeFacts, Target};
use crate::announce::proto::{Assignment, Heartbeat, L2Address, ServiceAnnounce, ToSpeaker};
use crate::config::model::Peer;
use crate::metrics::controller::Metrics;
use crate::names::{NodeName, PeerName, ServiceKey};
use crate::raft::{ProposeError, Proposer};
use changes::SetChanges;

/// How often at most the summary of announcements is rebuilt.
const BOARD_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// How long a failover may wait for its new owner's acknowledgement before it is forgotten.
const FAILOVER_FORGET: std::time::Duration = std::time::Duration::from_secs(60);

/// A heartbeat that got a lease (from the LeaseTracker).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Report {
    /// The node.
    pub node: NodeName,
    /// Its session.
    pub conn: u64,
    /// What it said.
    pub heartbeat: Heartbeat,
    /// Where to push.
    pub tx: mpsc::Sender<ToSpeaker>,
}

/// Why a node left.
pub enum Gone {
    /// No heartbeat for a lease and a margin: it has fenced itself.
    Dead,
    /// It stopped announcing and asked for its addresses to move; answer on `tx` when done.
    Drained(mpsc::Sender<ToSpeaker>),
}

/// A node is no longer answering for anything.
#[derive(Message)]
#[rtype(result = "()")]
pub struct NodeGone {
    /// The node.
    pub node: NodeName,
    /// Why.
    pub why: Gone,
}

/// The applied state changed.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ViewChanged(pub L2View);

/// This member leads in `term`, or does not lead.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Leadership {
    /// The term led, if any.
    pub term: Option<u64>,
}

/// A quorum confirmed this member's leadership in `term` for a request sent at `at`.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Confirmed {
    /// When the confirmed request was sent.
    pub at: Instant,
    /// The term confirmed.
    pub term: u64,
}

#[derive(Message)]
#[rtype(result = "()")]
struct Tick;

struct Leading {
    term: u64,
    /// Since when a quorum has confirmed the leadership without a gap, if it does now.
    confirmed_since: Option<Instant>,
    /// The latest confirmation.
    confirmed: Option<Instant>,
}

/// What the leader knows of one node's session.
struct NodeState {
    conn: u64,
    tx: mpsc::Sender<ToSpeaker>,
    facts: NodeFacts,
    /// The addresses it was sent and may still answer for, and the assignments' ids.
    addresses: assignment::Sender,
    sent_services: Option<Services>,
    /// Its lease ran out: it answers nothing and takes no assignment until it has one again.
    fenced: bool,
    /// The BGP routes and sessions it was last sent.
    sent_routes: Arc<Routes>,
    sent_peers: Option<BTreeMap<PeerName, Peer>>,
    /// The view revision and facts its BGP desire was computed for, and that desire.
    bgp_cache: Option<(u64, NodeFacts, Arc<Routes>)>,
}

impl NodeState {
    fn new(conn: u64, tx: mpsc::Sender<ToSpeaker>, addresses: assignment::Sender) -> Self {
        Self {
            conn,
            tx,
            facts: NodeFacts::default(),
            addresses,
            sent_services: None,
            fenced: false,
            sent_routes: Arc::new(Routes::new()),
            sent_peers: None,
            bgp_cache: None,
        }
    }

    fn answering(&self, addr: IpAddr) -> bool {
        self.addresses.answering(addr)
    }

    /// The assignment that brings the node to `desired` and the given Services, BGP peers and
    /// routes, if it needs one; records it as sent.
    fn next_assignment(
        &mut self,
        desired: BTreeMap<IpAddr, L2Address>,
        services: Services,
        peers: BTreeMap<PeerName, Peer>,
        routes: Arc<Routes>,
        timing: LeaseTiming,
    ) -> Option<Assignment> {
        let now = Instant::now();
        // An assignment unacknowledged for a lease is resent whole: whatever happened to
        // it, the node then converges.
        let full_due = self.addresses.full_due(now, timing.heartbeat, timing.lease);
        let changes = if full_due {
            SetChanges::default()
        } else {
            SetChanges::since(self, &services, &routes)
        };
        let peers_changed = self.sent_peers.as_ref() != Some(&peers);
        let changed_elsewhere =
            changes.services_changed() || peers_changed || changes.routes_changed();
        let delta = self
            .addresses
            .next(desired, full_due, changed_elsewhere, now)?;
        let assignment = changes.assignment(delta, &services, &peers, &routes, peers_changed);
        self.sent_services = Some(services);
        self.sent_peers = Some(peers);
        self.sent_routes = routes;
        Some(assignment)
    }
}

/// Free slots a speaker's queue keeps for leases: assignments wait while fewer are free.
const LEASE_HEADROOM: usize = 8;

/// The Services announced, as the view holds them (persistent: copies share everything).
type Services = imbl::OrdMap<ServiceKey, ServiceAnnounce>;

/// The targets each committed owner holds.
fn targets_by_owner(view: &L2View) -> BTreeMap<&NodeName, Vec<&Target>> {
    let mut by_owner: BTreeMap<&NodeName, Vec<&Target>> = BTreeMap::new();
    for t in view.targets.values() {
        if let Some(o) = view.owners.get(&t.address) {
            by_owner.entry(o).or_default().push(t);
        }
    }
    by_owner
}

/// Owner decisions in, Raft commands and pushed assignments out (leader only).
pub struct AssignmentPublisher {
    id: u64,
    proposer: Proposer,
    timing: LeaseTiming,
    metrics: Arc<Metrics>,
    leading: Option<Leading>,
    view: L2View,
    nodes: BTreeMap<NodeName, NodeState>,
    /// Per node, under this leadership: its newest session and the newest revision any of its
    /// sessions was sent. A report from an older session is stale (a newer one replaced it),
    /// and a new session's assignments follow the old one's (see `assignment::Sender`).
    sessions: BTreeMap<NodeName, (u64, u64)>,
    /// Drained nodes waiting to hear that their addresses have moved.
    draining: BTreeMap<NodeName, mpsc::Sender<ToSpeaker>>,
    /// Nodes that died or drained, whose addresses move as failovers.
    departed: BTreeSet<NodeName>,
    /// Addresses being taken from a node by a move proposed (in the term given) but not yet in
    /// the view: that node is never given them again meanwhile, even if it comes back (a late
    /// heartbeat) while the move is being committed. A move that never commits is forgotten
    /// once an entry of a later leadership of this member is applied (it is lost for good).
    moving: BTreeMap<IpAddr, (NodeName, u64)>,
    proposing: bool,
    /// Counts view changes, to know when cached per-node computations are stale.
    view_revision: u64,
    /// Something changed since the last reconcile (or a proposal should be retried).
    dirty: bool,
    /// Whether owners could move at the last reconcile.
    could_move: bool,
    /// When a view change was last planned, and whether one waits (see [`VIEW_COALESCE`]).
    planned_at: Option<Instant>,
    plan_pending: bool,
    /// Where the summary of what nodes were told goes, and whether it is out of date.
    board: super::announced::Board,
    board_stale: bool,
    board_at: Option<Instant>,
    /// Addresses moving away from a dead node, to whom, and when the dead node was last heard
    /// (about): the failover ends when the new owner acknowledges.
    failing_over: BTreeMap<IpAddr, (NodeName, Instant)>,
    /// The Services with a serving endpoint anywhere (Kubernetes mode; `None` inside: not
    /// known yet), and from it the `Cluster` Services without one: their addresses are
    /// announced by no node.
    serving: Option<tokio::sync::watch::Receiver<Option<Arc<BTreeSet<ServiceKey>>>>>,
    down: BTreeSet<ServiceKey>,
    _alive: crate::watchdog::Guard,
}

impl AssignmentPublisher {
    /// A publisher for member `id`, committing through `proposer`; alive on `watchdog` while it
    /// runs.
    pub fn new(
        id: u64,
        proposer: Proposer,
        timing: LeaseTiming,
        metrics: Arc<Metrics>,
        board: super::announced::Board,
        watchdog: &crate::watchdog::Watchdog,
    ) -> Self {
        Self {
            id,
            proposer,
            timing,
            metrics,
            leading: None,
            view: L2View::default(),
            nodes: BTreeMap::new(),
            sessions: BTreeMap::new(),
            draining: BTreeMap::new(),
            departed: BTreeSet::new(),
            moving: BTreeMap::new(),
            proposing: false,
            view_revision: 0,
            dirty: true,
            could_move: false,
            planned_at: None,
            plan_pending: false,
            board,
            board_stale: true,
            board_at: None,
            failing_over: BTreeMap::new(),
            serving: None,
            down: BTreeSet::new(),
            _alive: watchdog.guard("assignment publisher"),
        }
    }

    /// Takes the leader's verdict on which Services have a serving endpoint anywhere from
    /// `serving` (Kubernetes mode): `Cluster` Services without one are announced nowhere.
    pub fn with_serving(
        mut self,
        serving: tokio::sync::watch::Receiver<Option<Arc<BTreeSet<ServiceKey>>>>,
    ) -> Self {
        self.serving = Some(serving);
        self
    }

    /// Works out again which Services are down: `Cluster` (not `Local`, which each node judges)
    /// and without a serving endpoint anywhere, while that is known. True if it changed.
    fn refresh_down(&mut self) -> bool {
        let serving = self.serving.as_ref().and_then(|rx| rx.borrow().clone());
        let down: BTreeSet<ServiceKey> = match serving {
            None => BTreeSet::new(),
            Some(serving) => self
                .view
                .targets
                .values()
                .flat_map(|t| t.services())
                .filter(|s| {
                    !serving.contains(*s) && !self.view.services.get(*s).is_some_and(|a| a.local)
                })
                .cloned()
                .collect(),
        };
        if down == self.down {
            return false;
        }
        tracing::info!(
            down = down.len(),
            "Services without a serving endpoint anywhere changed"
        );
        self.down = down;
        // The BGP routes cached per node depend on it.
        self.view_revision += 1;
        true
    }

    /// Whether `t` may be announced at all: none of its Services is down.
    fn up(&self, t: &Target) -> bool {
        self.down.is_empty() || !t.services().any(|s| self.down.contains(s))
    }

    fn reconcile(&mut self, ctx: &mut Context<Self>) {
        if self.leading.is_none() {
            return;
        }
        let serving_changed = self
            .serving
            .as_mut()
            .is_some_and(|rx| rx.has_changed().unwrap_or(false));
        if serving_changed {
            if let Some(rx) = self.serving.as_mut() {
                rx.mark_unchanged();
            }
            self.dirty |= self.refresh_down();
        }
        let Some(leading) = &self.leading else {
            return;
        };
        // Owners move only after a lease and a margin of uninterrupted confirmation by a quorum:
        // a new leader cannot know older leases, and a leader that lost its quorum has granted
        // none meanwhile, so every node's state is stale until they all had time to report.
        let moves_allowed = leading
            .confirmed_since
            .is_some_and(|c| c.elapsed() >= self.timing.dead_after());
        // Planning and pushing cost time in proportion to the addresses: only when something
        // they depend on changed.
        if !self.dirty && moves_allowed == self.could_move {
            return;
        }
        self.dirty = false;
        self.could_move = moves_allowed;
        if !self.proposing {
            let facts: BTreeMap<NodeName, NodeFacts> = self
                .nodes
                .iter()
                .map(|(n, s)| (n.clone(), s.facts.clone()))
                .collect();
            let nodes = &self.nodes;
            // A down Service's address is not in the plan's targets: its owner lets go.
            let targets: Vec<&Target> = self
                .view
                .targets
                .values()
                .map(|t| &**t)
                .filter(|t| self.up(t))
                .collect();
            let moves = owners::plan(&Inputs {
                config: &self.view.config,
                targets: &targets,
                nodes: &facts,
                owners: &self.view.owners,
                answering: |n: &NodeName, a: IpAddr| nodes.get(n).is_some_and(|s| s.answering(a)),
                moves_allowed,
            });
            if !moves.is_empty() {
                self.propose(moves, ctx);
            }
        }
        self.push_all();
        self.finish_drains();
    }

    fn propose(&mut self, moves: Vec<(IpAddr, Option<NodeName>)>, ctx: &mut Context<Self>) {
        for (addr, to) in &moves {
            let from = self.view.owners.get(addr);
            if let Some(to) = to {
                tracing::info!(%addr, from = ?from.map(|n| n.as_str()), to = %to, "moving owner");
                self.metrics.owner_changes.inc();
                if from.is_some_and(|f| self.departed.contains(f) || !self.nodes.contains_key(f)) {
                    self.metrics.failovers.inc();
                    // The node was declared dead after a lease and a margin of silence.
                    let heard = Instant::now()
                        .checked_sub(self.timing.dead_after())
                        .unwrap_or_else(Instant::now);
                    self.failing_over.insert(*addr, (to.clone(), heard));
                }
            } else {
                tracing::info!(%addr, from = ?from.map(|n| n.as_str()), "releasing owner");
            }
        }
        let term = self.leading.as_ref().map_or(0, |l| l.term);
        for (addr, to) in &moves {
            match self
                .view
                .owners
                .get(addr)
                .filter(|f| Some(*f) != to.as_ref())
            {
                Some(from) => self.moving.insert(*addr, (from.clone(), term)),
                None => self.moving.remove(addr),
            };
        }
        self.proposing = true;
        let proposer = self.proposer.clone();
        let proposed: Vec<IpAddr> = moves.iter().map(|(a, _)| *a).collect();
        let fut = async move { proposer.assign_owners(moves).await };
        ctx.spawn(fut.into_actor(self).map(move |result, act, _| {
            act.proposing = false;
            // The applied view arrives separately; a failure is retried at the next tick.
            act.dirty = true;
            match result {
                Ok(_) => {}
                Err(e @ ProposeError::Unexpected { .. }) => tracing::error!(error = %e, "owner changes"),
                Err(e) => {
                    // Maybe committed, maybe not: the view will tell. Until it does, the old
                    // owner stays without these addresses.
                    tracing::warn!(error = %e, moves = proposed.len(), "owner changes not confirmed; will retry");
                }
            }
        }));
    }

    /// What `node` should be answering for in Layer 2 mode, from the committed owners (`owned`:
    /// the targets it owns).
    fn desired(
        &self,
        node: &NodeName,
        facts: &NodeFacts,
        owned: &[&Target],
    ) -> BTreeMap<IpAddr, L2Address> {
        let sent = self.nodes.get(node).map(|s| s.addresses.sent());
        owned
            .iter()
            // Still the committed owner, but being moved away: it must not answer again.
            .filter(|t| self.moving.get(&t.address).map(|(n, _)| n) != Some(node))
            .map(|t| {
                let interfaces = owners::announce_on(&self.view.config, t, facts)
                    .or_else(|| {
                        // Still the committed owner while its release is on the way: keep
                        // answering where it did.
                        sent.and_then(|s| s.get(&t.address))
                            .map(|a| a.interfaces.clone())
                    })
                    .unwrap_or_default();
                (
                    t.address,
                    L2Address {
                        address: t.address,
                        services: t.services().cloned().collect(),
                        interfaces,
                    },
                )
            })
            .collect()
    }

    fn push_all(&mut self) {
        // Every node's sender was made under the current leadership (`Leadership` starts over).
        if self.leading.is_none() {
            return;
        }
        let by_owner = targets_by_owner(&self.view);
        let names: Vec<NodeName> = self.nodes.keys().cloned().collect();
        let mut sends = Vec::new();
        for name in names {
            let Some(facts) = self.nodes.get(&name).map(|s| s.facts.clone()) else {
                continue;
            };
            // A fenced node holds nothing and takes nothing until it has a lease again; a node
            // that is merely ineligible (excluded, unready) must still hear what it loses.
            if self.nodes.get(&name).is_some_and(|s| s.fenced) {
                continue;
            }
            // A speaker that has not read what it was sent gets nothing more until it has:
            // pushing into a full queue fails and turns into a resend of the whole set, bigger
            // still, and assignments filling the queue would crowd out its leases. Whatever
            // changes meanwhile goes in one assignment once the queue drains (the next tick).
            if self
                .nodes
                .get(&name)
                .is_some_and(|s| s.tx.capacity() < LEASE_HEADROOM)
            {
                self.dirty = true;
                continue;
            }
            let owned = by_owner.get(&name).map(Vec::as_slice).unwrap_or(&[]);
            let desired = self.desired(&name, &facts, owned);
            let peers = bgp::peers_for(&self.view.config, &facts);
            let revision = self.view_revision;
            let routes = self.bgp_routes(&name, &facts);
            let services = self.view.services.clone();
            let timing = self.timing;
            let Some(state) = self.nodes.get_mut(&name) else {
                continue;
            };
            state.bgp_cache = Some((revision, facts, routes.clone()));
            if let Some(assignment) =
                state.next_assignment(desired, services, peers, routes, timing)
            {
                sends.push((name.clone(), state.tx.clone(), assignment));
            }
        }
        self.deliver(sends);
        self.board_stale = true;
    }

    /// The BGP routes `node` should announce, from its cache while neither the view nor its
    /// facts changed: working them out walks every target.
    fn bgp_routes(&self, node: &NodeName, facts: &NodeFacts) -> Arc<Routes> {
        match self.nodes.get(node).and_then(|s| s.bgp_cache.as_ref()) {
            Some((r, f, routes)) if *r == self.view_revision && f == facts => routes.clone(),
            _ => Arc::new(bgp::routes_for(
                &self.view.config,
                self.view
                    .targets
                    .values()
                    .map(|t| &**t)
                    .filter(|t| self.up(t)),
                facts,
            )),
        }
    }

    /// Sends each node its assignment, without waiting on a slow speaker.
    fn deliver(&mut self, sends: Vec<(NodeName, mpsc::Sender<ToSpeaker>, Assignment)>) {
        for (name, tx, assignment) in sends {
            if tx
                .try_send(ToSpeaker::Assignment(Box::new(assignment)))
                .is_err()
            {
                // Not delivered: the speaker may still hold what it had, so ask for a whole
                // set again rather than build on what it never saw.
                tracing::warn!(node = %name, "cannot push an assignment; will resend");
                if let Some(state) = self.nodes.get_mut(&name) {
                    state.addresses.undelivered();
                    self.dirty = true;
                }
            }
        }
    }

    fn finish_drains(&mut self) {
        let owners = &self.view.owners;
        self.draining.retain(|node, tx| {
            if owners.values().any(|o| o == node) {
                return true;
            }
            let _ = tx.try_send(ToSpeaker::Drained);
            false
        });
    }
}

/// Views applied back to back are planned at most once per this. A plan and a push cost time in
/// proportion to the addresses, and under a burst of allocations a view arrives with every
/// applied batch (hundreds a second; planning each was a tenth of the leader's CPU). The first
/// view after a quiet spell is planned at once, so a lone change is not delayed.
const VIEW_COALESCE: std::time::Duration = std::time::Duration::from_millis(10);

impl AssignmentPublisher {
    fn reconcile_coalesced(&mut self, ctx: &mut Context<Self>) {
        if self.plan_pending {
            return;
        }
        let wait = self.planned_at.map_or(std::time::Duration::ZERO, |t| {
            VIEW_COALESCE.saturating_sub(t.elapsed())
        });
        if wait.is_zero() {
            self.planned_at = Some(Instant::now());
            self.reconcile(ctx);
            return;
        }
        self.plan_pending = true;
        ctx.run_later(wait, |act, ctx| {
            act.plan_pending = false;
            act.planned_at = Some(Instant::now());
            act.reconcile(ctx);
        });
    }
}

impl Actor for AssignmentPublisher {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(4096);
        let every = (self.timing.margin / 4).max(std::time::Duration::from_millis(5));
        ctx.run_interval(every, |_, ctx| ctx.notify(Tick));
    }
}

impl Handler<Report> for AssignmentPublisher {
    type Result = ();

    fn handle(&mut self, msg: Report, ctx: &mut Context<Self>) {
        let Some(leading) = &self.leading else {
            return;
        };
        let (term, leader) = (leading.term, self.id);
        let known = self.sessions.entry(msg.node.clone()).or_insert((0, 0));
        if let Some(s) = self.nodes.get(&msg.node) {
            known.1 = known.1.max(s.addresses.revision());
        }
        if msg.conn < known.0 {
            // From a session a newer one replaced (it was queued before that one's first
            // report): its answers would go nowhere.
            return;
        }
        known.0 = msg.conn;
        let floor = known.1;
        let state = self.nodes.entry(msg.node.clone()).or_insert_with(|| {
            NodeState::new(
                msg.conn,
                msg.tx.clone(),
                assignment::Sender::starting_after(term, leader, floor),
            )
        });
        if state.conn != msg.conn {
            // A new session: what the old one was sent says nothing about this one.
            *state = NodeState::new(msg.conn, msg.tx.clone(), state.addresses.successor());
        }
        self.departed.remove(&msg.node);
        let hb = msg.heartbeat;
        let before = state.facts.clone();
        state.facts = NodeFacts {
            labels: hb.labels,
            interfaces: hb.interfaces.into_iter().collect(),
            unready: hb.unready,
            usable: !hb.fenced && !hb.excluded,
        };
        state.fenced = hb.fenced;
        // What the node may answer for shrank: a move may now go ahead.
        let acked = state
            .addresses
            .report(hb.seq, hb.applied, hb.want_full, hb.fenced);
        // An assignment unacknowledged too long is resent whole, which only a reconcile does:
        // nothing else may be changing meanwhile.
        let resend = !hb.fenced
            && state
                .addresses
                .full_due(Instant::now(), self.timing.heartbeat, self.timing.lease);
        let changed = state.facts != before || hb.want_full || hb.fenced || acked || resend;
        if !self.failing_over.is_empty() {
            self.failovers_done(&msg.node);
        }
        if changed {
            self.dirty = true;
            self.reconcile(ctx);
        }
    }
}

impl Handler<NodeGone> for AssignmentPublisher {
    type Result = ();

    fn handle(&mut self, msg: NodeGone, ctx: &mut Context<Self>) {
        if let Some(s) = self.nodes.remove(&msg.node) {
            let known = self.sessions.entry(msg.node.clone()).or_insert((0, 0));
            known.1 = known.1.max(s.addresses.revision());
        }
        self.departed.insert(msg.node.clone());
        if let Gone::Drained(tx) = msg.why {
            self.draining.insert(msg.node, tx);
        }
        self.dirty = true;
        self.reconcile(ctx);
    }
}

impl Handler<ViewChanged> for AssignmentPublisher {
    type Result = ();

    fn handle(&mut self, msg: ViewChanged, ctx: &mut Context<Self>) {
        self.view = msg.0;
        // A move is over once the view no longer names the old owner.
        let owners = &self.view.owners;
        self.moving
            .retain(|addr, (from, _)| owners.get(addr) == Some(&*from));
        // An entry of this leadership's own term is applied: any move proposed in an earlier
        // term is in the view by now or was dropped from the log for good. Keeping it would
        // keep its old owner from the address for ever, while the view still names it (a
        // leader cut off in a partition proposes moves that never commit).
        if let Some(l) = &self.leading {
            if self.view.applied_term >= l.term {
                self.moving.retain(|_, (_, proposed)| *proposed >= l.term);
            }
        }
        self.view_revision += 1;
        self.refresh_down();
        self.dirty = true;
        self.reconcile_coalesced(ctx);
    }
}

impl Handler<Leadership> for AssignmentPublisher {
    type Result = ();

    fn handle(&mut self, msg: Leadership, ctx: &mut Context<Self>) {
        self.nodes.clear();
        self.sessions.clear();
        self.draining.clear();
        self.departed.clear();
        self.failing_over.clear();
        self.board_stale = true;
        // A move proposed by an earlier leadership may still commit: keep what it took away
        // until the view settles it.
        self.leading = msg.term.map(|term| {
            tracing::info!(term, "leading");
            Leading {
                term,
                confirmed_since: None,
                confirmed: None,
            }
        });
        self.dirty = true;
        self.reconcile(ctx);
    }
}

impl Handler<Confirmed> for AssignmentPublisher {
    type Result = ();

    fn handle(&mut self, msg: Confirmed, _: &mut Context<Self>) {
        if let Some(l) = self.leading.as_mut().filter(|l| l.term == msg.term) {
            l.confirmed = Some(l.confirmed.map_or(msg.at, |c| c.max(msg.at)));
            if l.confirmed_since.is_none() {
                tracing::info!(wait = ?self.timing.dead_after(), "leadership confirmed by a quorum: owners move after one lease");
                l.confirmed_since = Some(msg.at);
            }
        }
    }
}

impl Handler<Tick> for AssignmentPublisher {
    type Result = ();

    fn handle(&mut self, _: Tick, ctx: &mut Context<Self>) {
        let window = self.timing.grant_window();
        if let Some(l) = &mut self.leading {
            let lapsed = l.confirmed.is_none_or(|c| c.elapsed() > window);
            if lapsed && l.confirmed_since.take().is_some() {
                tracing::warn!("no quorum confirms the leadership: owners stay where they are");
            }
        }
        self.reconcile(ctx);
        self.publish_board();
    }
}

mod board;
mod changes;

#[cfg(test)]
mod test_support;

#[cfg(test)]
mod revival_tests;

#[cfg(test)]
mod session_tests;

#[cfg(test)]
mod endpoint_tests;
