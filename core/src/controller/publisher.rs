//! The AssignmentPublisher: decides owners from the applied state and what it knows of each
//! node, commits owner changes to Raft, and pushes each speaker what it is to announce.
//!
//! It tracks, per node, what the node may be answering for: what it was last sent plus what was
//! taken from it and not yet acknowledged. A node that has acknowledged nothing from this
//! leadership may be answering for anything, so nothing is given to another node while it is
//! around; that, and waiting one lease after election, is what keeps two nodes from ever
//! answering for one address.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;

use actix::{Actor, ActorFutureExt, AsyncContext, Context, Handler, Message, WrapFuture};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::{L2View, LeaseTiming};
use ipnet::IpNet;

use crate::announce::bgp::{self, BgpRoute, RouteAttrs, Routes};
use crate::announce::owners::{self, Inputs, NodeFacts, Target};
use crate::announce::proto::{
    Assignment, AssignmentId, Heartbeat, L2Address, ServiceAnnounce, ToSpeaker,
};
use crate::config::model::Peer;
use crate::metrics::controller::Metrics;
use crate::names::{NodeName, PeerName, ServiceKey};
use crate::raft::{ProposeError, Proposer};

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
    /// What it was last sent, and as which assignment.
    sent: BTreeMap<IpAddr, L2Address>,
    sent_id: Option<AssignmentId>,
    sent_services: Option<Arc<BTreeMap<ServiceKey, ServiceAnnounce>>>,
    revision: u64,
    /// Taken away at this revision, not yet acknowledged.
    pending: BTreeMap<IpAddr, u64>,
    /// It acknowledged an assignment of this leadership (or fenced): `sent` and `pending`
    /// are all it may answer for.
    synced: bool,
    want_full: bool,
    last_full: Option<Instant>,
    /// Its lease ran out: it answers nothing and takes no assignment until it has one again.
    fenced: bool,
    /// The BGP routes and sessions it was last sent.
    sent_routes: Arc<Routes>,
    sent_peers: Option<BTreeMap<PeerName, Peer>>,
    /// The view revision and facts its BGP desire was computed for, and that desire.
    bgp_cache: Option<(u64, NodeFacts, Arc<Routes>)>,
}

impl NodeState {
    fn new(conn: u64, tx: mpsc::Sender<ToSpeaker>) -> Self {
        Self {
            conn,
            tx,
            facts: NodeFacts::default(),
            sent: BTreeMap::new(),
            sent_id: None,
            sent_services: None,
            revision: 0,
            pending: BTreeMap::new(),
            synced: false,
            want_full: true,
            last_full: None,
            fenced: false,
            sent_routes: Arc::new(Routes::new()),
            sent_peers: None,
            bgp_cache: None,
        }
    }

    fn answering(&self, addr: IpAddr) -> bool {
        !self.synced || self.sent.contains_key(&addr) || self.pending.contains_key(&addr)
    }
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
            draining: BTreeMap::new(),
            departed: BTreeSet::new(),
            moving: BTreeMap::new(),
            proposing: false,
            view_revision: 0,
            dirty: true,
            could_move: false,
            _alive: watchdog.guard("assignment publisher"),
        }
    }

    fn reconcile(&mut self, ctx: &mut Context<Self>) {
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
            let moves = owners::plan(&Inputs {
                config: &self.view.config,
                targets: &self.view.targets,
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
        let sent = self.nodes.get(node).map(|s| &s.sent);
        owned
            .iter()
            // Still the committed owner, but being moved away: it must not answer again.
            .filter(|t| self.moving.get(&t.address).map(|(n, _)| n) != Some(node))
            .map(|t| {
                let interfaces = owners::announce_on(&self.view.config, &t.pool, facts)
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
                        services: t.services.clone(),
                        interfaces,
                    },
                )
            })
            .collect()
    }

    fn push_all(&mut self) {
        let Some(leading) = &self.leading else {
            return;
        };
        let term = leading.term;
        let mut by_owner: BTreeMap<&NodeName, Vec<&Target>> = BTreeMap::new();
        for t in &self.view.targets {
            if let Some(o) = self.view.owners.get(&t.address) {
                by_owner.entry(o).or_default().push(t);
            }
        }
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
            let owned = by_owner.get(&name).map(Vec::as_slice).unwrap_or(&[]);
            let desired = self.desired(&name, &facts, owned);
            let peers = bgp::peers_for(&self.view.config, &facts);
            let revision = self.view_revision;
            let routes = match self.nodes.get(&name).and_then(|s| s.bgp_cache.as_ref()) {
                Some((r, f, routes)) if *r == revision && *f == facts => routes.clone(),
                _ => Arc::new(bgp::routes_for(
                    &self.view.config,
                    &self.view.targets,
                    &facts,
                )),
            };
            let services = self.view.services.clone();
            let leader = self.id;
            let heartbeat = self.timing.heartbeat;
            let Some(state) = self.nodes.get_mut(&name) else {
                continue;
            };
            state.bgp_cache = Some((revision, facts, routes.clone()));
            let now = Instant::now();
            let full_due = state.want_full
                && state
                    .last_full
                    .is_none_or(|t| now.duration_since(t) >= heartbeat);
            // A whole set goes as it is; only a change needs the differences. The shared parts
            // are compared by pointer first (between view changes they are the very same),
            // else by one walk over both sorted maps.
            let mut services_up: Vec<ServiceAnnounce> = Vec::new();
            let mut services_gone = Vec::new();
            let mut routes_up = Vec::new();
            let mut routes_gone = Vec::new();
            if !full_due {
                match &state.sent_services {
                    Some(s) if Arc::ptr_eq(s, &services) => {}
                    Some(s) => {
                        let (up, gone) = map_delta(s, &services);
                        services_up = up.into_iter().map(|(_, s)| s).collect();
                        services_gone = gone;
                    }
                    // Never sent (cannot happen with a base): send them all.
                    None => services_up = services.values().cloned().collect(),
                }
                if !Arc::ptr_eq(&routes, &state.sent_routes) {
                    (routes_up, routes_gone) = map_delta(&state.sent_routes, &routes);
                }
            }
            let services_changed = !services_up.is_empty() || !services_gone.is_empty();
            let routes_changed = !routes_up.is_empty() || !routes_gone.is_empty();
            let changed = desired != state.sent
                || services_changed
                || state.sent_peers.as_ref() != Some(&peers)
                || routes_changed;
            if !(full_due || changed && state.sent_id.is_some()) {
                continue;
            }
            state.revision += 1;
            let id = AssignmentId {
                term,
                leader,
                revision: state.revision,
            };
            let route = |((prefix, peer), attrs): (&(IpNet, PeerName), &RouteAttrs)| BgpRoute {
                prefix: *prefix,
                peer: peer.clone(),
                attrs: attrs.clone(),
            };
            let peer_list = |p: &BTreeMap<PeerName, Peer>| -> Vec<(PeerName, Peer)> {
                p.iter().map(|(n, p)| (n.clone(), p.clone())).collect()
            };
            let assignment = if full_due {
                state.last_full = Some(now);
                state.want_full = false;
                Assignment {
                    id,
                    base: None,
                    upsert: desired.values().cloned().collect(),
                    remove: Vec::new(),
                    services: Some(services.values().cloned().collect()),
                    services_upsert: Vec::new(),
                    services_remove: Vec::new(),
                    peers: Some(peer_list(&peers)),
                    routes_upsert: routes.iter().map(route).collect(),
                    routes_remove: Vec::new(),
                }
            } else {
                Assignment {
                    id,
                    base: state.sent_id,
                    upsert: desired
                        .iter()
                        .filter(|(a, d)| state.sent.get(a) != Some(d))
                        .map(|(_, d)| d.clone())
                        .collect(),
                    remove: state
                        .sent
                        .keys()
                        .filter(|a| !desired.contains_key(a))
                        .copied()
                        .collect(),
                    services: None,
                    services_upsert: services_up,
                    services_remove: services_gone,
                    peers: (state.sent_peers.as_ref() != Some(&peers)).then(|| peer_list(&peers)),
                    routes_upsert: routes_up
                        .into_iter()
                        .map(|((prefix, peer), attrs)| BgpRoute {
                            prefix,
                            peer,
                            attrs,
                        })
                        .collect(),
                    routes_remove: routes_gone,
                }
            };
            for addr in state.sent.keys() {
                if !desired.contains_key(addr) {
                    state.pending.insert(*addr, state.revision);
                }
            }
            sends.push((name.clone(), state.tx.clone(), assignment));
            state.sent = desired;
            state.sent_id = Some(id);
            state.sent_services = Some(services);
            state.sent_peers = Some(peers);
            state.sent_routes = routes;
        }
        for (name, tx, assignment) in sends {
            if tx
                .try_send(ToSpeaker::Assignment(Box::new(assignment)))
                .is_err()
            {
                // Not delivered: the speaker may still hold what it had, so ask for a whole
                // set again rather than build on what it never saw.
                tracing::warn!(node = %name, "cannot push an assignment; will resend");
                if let Some(state) = self.nodes.get_mut(&name) {
                    state.want_full = true;
                    state.last_full = None;
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
        let state = self
            .nodes
            .entry(msg.node.clone())
            .or_insert_with(|| NodeState::new(msg.conn, msg.tx.clone()));
        if state.conn != msg.conn {
            // A new session: what the old one was sent says nothing about this one.
            *state = NodeState::new(msg.conn, msg.tx.clone());
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
        if hb.fenced {
            // A fenced speaker dropped everything it had.
            state.sent.clear();
            state.pending.clear();
            state.sent_id = None;
            state.synced = true;
        }
        let mut acked = false;
        if let Some(applied) = hb.applied {
            if applied.term == term && applied.leader == leader {
                let (was_synced, was_pending) = (state.synced, state.pending.len());
                state.synced = true;
                state.pending.retain(|_, rev| *rev > applied.revision);
                // What a node may answer for changed: a move may now go ahead.
                acked = !was_synced || state.pending.len() != was_pending;
            }
        }
        if hb.want_full && !hb.fenced {
            state.want_full = true;
        }
        if state.facts != before || hb.want_full || hb.fenced || acked {
            self.dirty = true;
            self.reconcile(ctx);
        }
    }
}

impl Handler<NodeGone> for AssignmentPublisher {
    type Result = ();

    fn handle(&mut self, msg: NodeGone, ctx: &mut Context<Self>) {
        self.nodes.remove(&msg.node);
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
        self.dirty = true;
        self.reconcile(ctx);
    }
}

impl Handler<Leadership> for AssignmentPublisher {
    type Result = ();

    fn handle(&mut self, msg: Leadership, ctx: &mut Context<Self>) {
        self.nodes.clear();
        self.draining.clear();
        self.departed.clear();
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
    }
}

/// What turns `old` into `new`: the entries added or changed, and the keys removed; one walk
/// over both (they are sorted alike).
fn map_delta<K: Ord + Clone, V: PartialEq + Clone>(
    old: &BTreeMap<K, V>,
    new: &BTreeMap<K, V>,
) -> (Vec<(K, V)>, Vec<K>) {
    use std::cmp::Ordering;
    let (mut up, mut gone) = (Vec::new(), Vec::new());
    let (mut a, mut b) = (old.iter().peekable(), new.iter().peekable());
    loop {
        match (a.peek(), b.peek()) {
            (None, None) => break,
            (Some((ka, _)), None) => {
                gone.push((*ka).clone());
                a.next();
            }
            (None, Some((kb, vb))) => {
                up.push(((*kb).clone(), (*vb).clone()));
                b.next();
            }
            (Some((ka, va)), Some((kb, vb))) => match ka.cmp(kb) {
                Ordering::Less => {
                    gone.push((*ka).clone());
                    a.next();
                }
                Ordering::Greater => {
                    up.push(((*kb).clone(), (*vb).clone()));
                    b.next();
                }
                Ordering::Equal => {
                    if va != vb {
                        up.push(((*kb).clone(), (*vb).clone()));
                    }
                    a.next();
                    b.next();
                }
            },
        }
    }
    (up, gone)
}

#[cfg(test)]
mod revival_tests {
    use super::*;
    use crate::announce::owners::Target;
    use crate::announce::proto::Heartbeat;
    use crate::config::{self, Documents};
    use crate::raft::Command;
    use std::time::Duration;

    const CONFIG: &str = "apiVersion: ironlb.io/v1beta1
kind: IPAddressPool
metadata: {name: lan}
spec:
  addresses: [192.0.2.10/32]
---
apiVersion: ironlb.io/v1beta1
kind: L2Advertisement
metadata: {name: lan}
spec:
  ipAddressPools: [lan]
";

    fn beat(seq: u64, want_full: bool) -> Heartbeat {
        Heartbeat {
            seq,
            interfaces: vec![crate::config::InterfaceName::new("eth0").unwrap()],
            want_full,
            ..Heartbeat::default()
        }
    }

    /// Every address the assignments on `rx` leave the node answering for.
    fn answering(rx: &mut mpsc::Receiver<ToSpeaker>, held: &mut BTreeMap<IpAddr, L2Address>) {
        while let Ok(msg) = rx.try_recv() {
            if let ToSpeaker::Assignment(a) = msg {
                if a.base.is_none() {
                    held.clear();
                }
                for r in &a.remove {
                    held.remove(r);
                }
                for u in a.upsert {
                    held.insert(u.address, u);
                }
            }
        }
    }

    /// The configuration, a short lease, and a started publisher of member 1 whose proposals
    /// arrive on the receiver (the watchdog must live as long as the publisher).
    fn fixture() -> (
        Arc<crate::config::Config>,
        LeaseTiming,
        actix::Addr<AssignmentPublisher>,
        mpsc::Receiver<crate::raft::propose::Pending>,
        Arc<crate::watchdog::Watchdog>,
    ) {
        let docs = Documents::from_str(CONFIG, "test");
        let config = Arc::new(config::validate(&docs.documents).unwrap());
        let timing = LeaseTiming {
            heartbeat: Duration::from_millis(20),
            lease: Duration::from_millis(100),
            margin: Duration::from_millis(40),
        };
        let (proposer, commits) = Proposer::for_tests();
        let watchdog = crate::watchdog::Watchdog::new();
        let publisher =
            AssignmentPublisher::new(1, proposer, timing, Arc::new(Metrics::new()), &watchdog)
                .start();
        (config, timing, publisher, commits, watchdog)
    }

    /// A node whose late heartbeats arrive after the leader declared it dead, while the move of
    /// its address is still being committed, must not be given that address back: it would
    /// answer alongside the new owner once the move commits.
    #[actix_rt::test]
    async fn a_node_revived_while_its_address_moves_is_not_given_the_address_back() {
        let (config, timing, publisher, mut commits, _watchdog) = fixture();
        publisher.do_send(Leadership { term: Some(1) });
        // A quorum keeps confirming the leadership.
        let confirming = {
            let p = publisher.clone();
            actix_rt::spawn(async move {
                loop {
                    p.do_send(Confirmed {
                        at: Instant::now(),
                        term: 1,
                    });
                    tokio::time::sleep(Duration::from_millis(3)).await;
                }
            })
        };
        let addr: IpAddr = "192.0.2.10".parse().unwrap();
        let n1 = NodeName::new("n1").unwrap();
        let n2 = NodeName::new("n2").unwrap();
        publisher.do_send(ViewChanged(L2View {
            config: config.clone(),
            targets: vec![Target {
                address: addr,
                pool: "lan".parse().unwrap(),
                services: vec!["default/web".parse().unwrap()],
            }],
            owners: [(addr, n1.clone())].into(),
            services: Default::default(),
            applied_term: 1,
        }));
        let (tx1, mut rx1) = mpsc::channel(64);
        let (tx2, mut rx2) = mpsc::channel(64);
        let report = |node: &NodeName, conn, tx: &mpsc::Sender<ToSpeaker>, seq, full| Report {
            node: node.clone(),
            conn,
            heartbeat: beat(seq, full),
            tx: tx.clone(),
        };
        publisher.do_send(report(&n1, 1, &tx1, 1, true));
        publisher.do_send(report(&n2, 2, &tx2, 1, true));
        tokio::time::sleep(Duration::from_millis(50)).await;
        let (mut held1, mut held2) = (BTreeMap::new(), BTreeMap::new());
        answering(&mut rx1, &mut held1);
        assert!(held1.contains_key(&addr), "the owner holds its address");
        // Owners may move once the leadership has been confirmed for a lease and a margin.
        tokio::time::sleep(timing.dead_after() + Duration::from_millis(50)).await;
        publisher.do_send(NodeGone {
            node: n1.clone(),
            why: Gone::Dead,
        });
        // The move to n2 is proposed, and its commit is in flight (never answered here).
        let pending = tokio::time::timeout(Duration::from_secs(2), commits.recv())
            .await
            .expect("a move is proposed")
            .unwrap();
        assert_eq!(
            pending.command,
            Command::AssignOwners {
                moves: vec![(addr, Some(n2.clone()))]
            }
        );
        // n1's late heartbeat arrives, on a new session, asking for a whole set.
        publisher.do_send(report(&n1, 3, &tx1, 7, true));
        tokio::time::sleep(Duration::from_millis(50)).await;
        answering(&mut rx1, &mut held1);
        assert!(
            !held1.contains_key(&addr),
            "n1, being moved away from {addr}, was given it back: {held1:?}"
        );
        // Once the move is in the view, n2 holds it and n1 still does not.
        publisher.do_send(ViewChanged(L2View {
            config,
            targets: vec![Target {
                address: addr,
                pool: "lan".parse().unwrap(),
                services: vec!["default/web".parse().unwrap()],
            }],
            owners: [(addr, n2.clone())].into(),
            services: Default::default(),
            applied_term: 1,
        }));
        publisher.do_send(report(&n2, 2, &tx2, 9, false));
        tokio::time::sleep(Duration::from_millis(50)).await;
        answering(&mut rx1, &mut held1);
        answering(&mut rx2, &mut held2);
        assert!(!held1.contains_key(&addr));
        assert!(held2.contains_key(&addr), "{held2:?}");
        confirming.abort();
        drop(pending);
    }

    /// A leader cut off from the quorum declares the nodes dead and proposes moves that never
    /// commit. When it leads again in a later term, the address must go back to the owner the
    /// view still names, not stay unanswered for ever (seen in a Jepsen run: 17 s without an
    /// answer, until every member was restarted).
    #[actix_rt::test]
    async fn a_move_that_never_committed_is_forgotten_when_a_later_term_commits() {
        let (config, timing, publisher, mut commits, _watchdog) = fixture();
        let addr: IpAddr = "192.0.2.10".parse().unwrap();
        let n1 = NodeName::new("n1").unwrap();
        let n2 = NodeName::new("n2").unwrap();
        let view = |term: u64| L2View {
            config: config.clone(),
            targets: vec![Target {
                address: addr,
                pool: "lan".parse().unwrap(),
                services: vec!["default/web".parse().unwrap()],
            }],
            owners: [(addr, n1.clone())].into(),
            services: Default::default(),
            applied_term: term,
        };
        let confirm = |term: u64| {
            let p = publisher.clone();
            actix_rt::spawn(async move {
                loop {
                    p.do_send(Confirmed {
                        at: Instant::now(),
                        term,
                    });
                    tokio::time::sleep(Duration::from_millis(3)).await;
                }
            })
        };
        let (tx1, mut rx1) = mpsc::channel(64);
        let (tx2, _rx2) = mpsc::channel(64);
        let report = |node: &NodeName, conn, tx: &mpsc::Sender<ToSpeaker>, seq, full| Report {
            node: node.clone(),
            conn,
            heartbeat: beat(seq, full),
            tx: tx.clone(),
        };
        // Term 1: n1 owns the address; then n1 "dies" and the move to n2 is proposed...
        publisher.do_send(Leadership { term: Some(1) });
        let confirming = confirm(1);
        publisher.do_send(ViewChanged(view(1)));
        publisher.do_send(report(&n1, 1, &tx1, 1, true));
        publisher.do_send(report(&n2, 2, &tx2, 1, true));
        tokio::time::sleep(timing.dead_after() + Duration::from_millis(50)).await;
        publisher.do_send(NodeGone {
            node: n1.clone(),
            why: Gone::Dead,
        });
        let pending = tokio::time::timeout(Duration::from_secs(2), commits.recv())
            .await
            .expect("a move is proposed")
            .unwrap();
        // ...and never commits: the leadership is lost, the entry dropped from the log.
        confirming.abort();
        drop(pending);
        publisher.do_send(Leadership { term: None });
        // Term 3: this member leads again; its own first entry is applied, and the view still
        // names n1, which is alive and asks for its whole set.
        publisher.do_send(Leadership { term: Some(3) });
        let confirming = confirm(3);
        publisher.do_send(ViewChanged(view(3)));
        publisher.do_send(report(&n1, 3, &tx1, 5, true));
        let mut held1 = BTreeMap::new();
        let deadline = Instant::now() + Duration::from_secs(2);
        while !held1.contains_key(&addr) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
            publisher.do_send(report(&n1, 3, &tx1, 6, false));
            answering(&mut rx1, &mut held1);
        }
        assert!(
            held1.contains_key(&addr),
            "n1, the committed owner, never got {addr} back"
        );
        confirming.abort();
    }
}

#[cfg(test)]
mod delta_tests {
    use super::map_delta;
    use std::collections::BTreeMap;

    #[test]
    fn the_delta_adds_changes_and_removes_what_differs() {
        let old: BTreeMap<u8, &str> = [(1, "a"), (2, "b"), (4, "d"), (6, "f")].into();
        let new: BTreeMap<u8, &str> = [(2, "b"), (3, "c"), (4, "D"), (7, "g")].into();
        let (up, gone) = map_delta(&old, &new);
        assert_eq!(up, vec![(3, "c"), (4, "D"), (7, "g")]);
        assert_eq!(gone, vec![1, 6]);
        assert_eq!(map_delta(&new, &new), (vec![], vec![]));
        // Applying the delta to the old map gives the new one.
        let mut applied = old.clone();
        for k in gone {
            applied.remove(&k);
        }
        applied.extend(up);
        assert_eq!(applied, new);
    }
}
