//! A controller: [`member`] runs one Raft member (identity, storage, Raft, listeners, bootstrap
//! and join). The rest is the controller side of the speaker sessions, active on the Raft leader: the
//! [`LeaseTracker`](lease::LeaseTracker) (heartbeats in, leases and dead or alive verdicts out)
//! and the [`AssignmentPublisher`](publisher::AssignmentPublisher) (owner decisions, committed to
//! Raft, pushed to sessions). [`SpeakerHub`] starts them and serves the sessions that arrive on
//! the Raft port.

pub mod announced;
pub mod files;
pub mod lease;
pub mod member;
pub mod publisher;

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, Addr};
use futures::future::BoxFuture;
use futures::{SinkExt, StreamExt};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tracing::Instrument;

use crate::announce::owners::{self, Target};
use crate::announce::proto::{ServiceAnnounce, ToController, ToSpeaker};
use crate::config::Config;
use crate::metrics::controller::Metrics;
use crate::names::NodeName;
use crate::raft::network::{wire, NetworkFactory, SpeakerSessions, Transport};
use crate::raft::types::LogId;
use crate::raft::{Proposer, Raft, SharedState};
use crate::watchdog::{Guard, Watchdog};

pub use lease::LeaseTracker;
pub use publisher::AssignmentPublisher;

/// The clocks of Layer 2 ownership (ARCHITECTURE.md, "Liveness, ownership and fencing").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeaseTiming {
    /// How often speakers send heartbeats (`h`).
    pub heartbeat: Duration,
    /// How long a lease lasts from the sending of the heartbeat it answers (`L`).
    pub lease: Duration,
    /// How much longer than a lease the leader waits before declaring a silent node dead.
    pub margin: Duration,
}

impl Default for LeaseTiming {
    fn default() -> Self {
        Self {
            heartbeat: Duration::from_millis(200),
            lease: Duration::from_secs(1),
            margin: Duration::from_millis(200),
        }
    }
}

impl LeaseTiming {
    /// How recent the leader's last confirmation by a quorum must be for it to grant a lease.
    ///
    /// A deposed leader grants no lease more than this after the quorum that elected its
    /// successor stopped answering it, so every lease it granted ends within `lease + grant
    /// window` of the successor's election; the successor waits `lease + margin` before moving
    /// any owner. Half the margin keeps that ordering with room for clock-rate differences.
    pub fn grant_window(&self) -> Duration {
        self.margin / 2
    }

    /// From the last granted heartbeat until a node counts as dead.
    pub fn dead_after(&self) -> Duration {
        // A deliberately broken build for the Jepsen suite's self-test only: the leader moves
        // owners after two missed heartbeats, without waiting out the lease, so a cut-off owner
        // still answers when the new one starts. The suite must catch it.
        if cfg!(feature = "jepsen-selftest-early-moves") {
            return self.heartbeat * 2;
        }
        self.lease + self.margin
    }
}

/// Raft's metrics, as the loops that follow leadership watch them.
type RaftMetrics = openraft::RaftMetrics<crate::raft::MemberId, crate::raft::Member>;

/// The least time between two reads of the view on the leader while changes keep coming.
const VIEW_MIN_GAP: Duration = Duration::from_millis(20);
/// The same on a follower, whose view only matters once it leads (and is read again then).
const FOLLOWER_VIEW_GAP: Duration = Duration::from_millis(500);

/// What the leader announces from: the configuration, every allocated address, the committed
/// owners and the health checks, read from the applied state.
///
/// The maps are persistent: a copy costs nothing and shares everything, and
/// [`L2View::refresh`] patches only what the applied commands touched, so keeping the view up
/// to date costs work in proportion to the changes, not to the state.
#[derive(Clone, Debug, Default)]
pub struct L2View {
    /// The configuration in force.
    pub config: Arc<Config>,
    /// Every allocated address, by address. Behind an `Arc` so the map's nodes hold a pointer
    /// per address: a persistent map's nodes are about half full, and the slack then costs a
    /// pointer, not a whole target.
    pub targets: imbl::OrdMap<IpAddr, Arc<Target>>,
    /// The committed Layer 2 owners.
    pub owners: imbl::OrdMap<IpAddr, NodeName>,
    /// The Services announced (in Layer 2 or over BGP) whose readiness each node judges for
    /// itself: those with a health check or `externalTrafficPolicy: Local`. The others' only
    /// test, a serving endpoint anywhere, is the leader's (`k8s::endpoints::watch_serving`),
    /// so the nodes are not told of them.
    pub services: imbl::OrdMap<crate::names::ServiceKey, ServiceAnnounce>,
    /// The term of the last entry applied when the view was read (or later): once it is the
    /// leader's own term, every entry of an earlier term is in the view or lost for good.
    pub applied_term: u64,
}

impl L2View {
    /// Reads the whole view from the applied state (and forgets what the state noted as
    /// touched: all of it is in this view).
    pub fn read(state: &crate::raft::ControllerState) -> Self {
        state.touched.take();
        let config = Arc::new(state.config.clone().unwrap_or_default());
        let targets: imbl::OrdMap<IpAddr, Arc<Target>> = owners::targets(&state.allocator)
            .into_iter()
            .map(|t| (t.address, Arc::new(t)))
            .collect();
        let mut view = Self {
            config,
            targets,
            owners: state.owners.iter().map(|(a, n)| (*a, n.clone())).collect(),
            services: imbl::OrdMap::new(),
            applied_term: 0,
        };
        let keys: Vec<crate::names::ServiceKey> = state
            .allocator
            .allocations()
            .map(|(k, _)| k.clone())
            .collect();
        for k in keys {
            view.refresh_service(&state.allocator, &k);
        }
        view
    }

    /// Brings the view up to date with the state, patching only what the state noted as
    /// touched since the last read or refresh.
    pub fn refresh(&mut self, state: &crate::raft::ControllerState) {
        let touched = state.touched.take();
        if touched.everything {
            *self = Self {
                applied_term: self.applied_term,
                ..Self::read(state)
            };
            return;
        }
        let mut services = touched.services;
        for addr in &touched.addresses {
            if let Some(old) = self.targets.get(addr) {
                services.extend(old.services().cloned());
            }
            match owners::target(&state.allocator, *addr) {
                Some(t) => {
                    services.extend(t.services().cloned());
                    self.targets.insert(*addr, Arc::new(t));
                }
                None => {
                    self.targets.remove(addr);
                }
            }
        }
        for key in &services {
            self.refresh_service(&state.allocator, key);
        }
        for addr in touched.owners {
            match state.owners.get(&addr) {
                Some(n) => {
                    self.owners.insert(addr, n.clone());
                }
                None => {
                    self.owners.remove(&addr);
                }
            }
        }
    }

    /// Whether `key` is announced (one of its addresses is, in Layer 2 or over BGP, by an
    /// advertisement selecting it or another Service on a shared address) with a readiness
    /// each node judges, and how if so.
    fn refresh_service(
        &mut self,
        allocator: &crate::ipam::Allocator,
        key: &crate::names::ServiceKey,
    ) {
        let config = &self.config;
        let announced = allocator.allocation(key).filter(|a| {
            a.addresses.iter().any(|addr| {
                self.targets.get(addr).is_some_and(|t| {
                    owners::announced_in_l2(config, t)
                        || crate::announce::bgp::advertised(config, t)
                })
            })
        });
        match announced.filter(|a| {
            a.request.health_check.is_some()
                || a.request.traffic_policy == crate::ipam::TrafficPolicy::Local
        }) {
            Some(a) => {
                let s = ServiceAnnounce {
                    service: key.clone(),
                    health_check: a.request.health_check.as_deref().cloned(),
                    local: a.request.traffic_policy == crate::ipam::TrafficPolicy::Local,
                };
                if self.services.get(key) != Some(&s) {
                    self.services.insert(key.clone(), s);
                }
            }
            None => {
                self.services.remove(key);
            }
        }
    }
}

/// Starts the leader-side actors of a member and serves speaker sessions for it.
#[derive(Clone)]
pub struct SpeakerHub {
    tracker: Addr<LeaseTracker>,
    raft: Raft,
    next_conn: Arc<AtomicU64>,
}

impl std::fmt::Debug for SpeakerHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SpeakerHub")
    }
}

impl SpeakerHub {
    /// Starts the actors and the tasks that feed them: leadership changes, quorum confirmations
    /// and the applied state. Every loop and actor counts as alive on `watchdog` while it runs.
    #[allow(clippy::too_many_arguments)]
    pub async fn start(
        raft: Raft,
        state: SharedState,
        applied: watch::Receiver<Option<LogId>>,
        proposer: Proposer,
        timing: LeaseTiming,
        metrics: Arc<Metrics>,
        board: announced::Board,
        serving: watch::Receiver<Option<Arc<std::collections::BTreeSet<crate::names::ServiceKey>>>>,
        network: NetworkFactory,
        watchdog: Arc<Watchdog>,
    ) -> Self {
        let id = raft.metrics().borrow().id;
        // The publisher's work grows with the Services (it plans every node's routes and
        // addresses); the lease tracker's must not wait for it, or leases would run out under
        // load. So each has its own thread.
        let publisher = {
            let watchdog = watchdog.clone();
            crate::actors::on_new_arbiter(move || {
                AssignmentPublisher::new(id, proposer, timing, metrics, board, &watchdog)
                    .with_serving(serving)
                    .start()
            })
            .await
        };
        let tracker = {
            let (publisher, watchdog) = (publisher.clone(), watchdog.clone());
            crate::actors::on_arbiter(move || {
                LeaseTracker::new(id, timing, publisher, &watchdog).start()
            })
            .await
        };

        // Leadership, as Raft sees it. `do_send` queues whatever the mailbox holds: these
        // messages are few and must never be lost.
        tokio::spawn(tell_leadership(
            raft.metrics(),
            tracker.clone(),
            publisher.clone(),
            watchdog.guard("leadership watch"),
        ));

        // Quorum confirmations while leading: what makes a lease grant, and an owner move,
        // safe. Asked of every voter directly, on connections of its own, and answered from
        // each one's vote: neither this member's log (its disk) nor its Raft core's queue stands
        // in the way, so a stall there does not stop the grants.
        {
            let raft = raft.clone();
            let (tracker, publisher) = (tracker.clone(), publisher.clone());
            let alive = watchdog.guard("lease confirmation");
            tokio::spawn(async move {
                let _alive = alive;
                confirm_leadership(raft, network, timing, move |at, term| {
                    tracker.do_send(lease::Confirmed { at, term });
                    publisher.do_send(publisher::Confirmed { at, term });
                })
                .await;
            });
        }

        // The applied state, as the publisher needs it.
        tokio::spawn(feed_views(
            publisher.clone(),
            raft.metrics(),
            applied,
            state,
            watchdog.guard("view"),
        ));

        Self {
            tracker,
            raft,
            next_conn: Arc::new(AtomicU64::new(1)),
        }
    }

    /// What a member that does not lead tells a speaker: where the leader is, or that there
    /// is none.
    fn not_leader(&self) -> ToSpeaker {
        let m = self.raft.metrics().borrow().clone();
        let leader = m.current_leader.and_then(|l| {
            m.membership_config
                .membership()
                .get_node(&l)
                .map(|n| n.raft_addr.clone())
        });
        match leader {
            Some(addr) => ToSpeaker::NotLeader { leader: Some(addr) },
            None => ToSpeaker::NoQuorum,
        }
    }

    async fn session(self, mut transport: Transport, node: NodeName) {
        let conn = self.next_conn.fetch_add(1, Ordering::Relaxed);
        let (tx, mut rx) = mpsc::channel::<ToSpeaker>(64);
        // A speaker sends a heartbeat every few hundred milliseconds; one silent for much
        // longer than any lease is gone.
        let idle = Duration::from_secs(30);
        let mut budget = MessageBudget::new(SPEAKER_MESSAGES_PER_SECOND, SPEAKER_MESSAGE_BURST);
        loop {
            tokio::select! {
                frame = tokio::time::timeout(idle, transport.next()) => {
                    let frame = match frame {
                        Ok(Some(Ok(frame))) => frame,
                        Ok(Some(Err(e))) => {
                            tracing::debug!(error = %e, "speaker connection failed");
                            break;
                        }
                        Ok(None) | Err(_) => break,
                    };
                    if !budget.take(Instant::now()) {
                        tracing::warn!(
                            limit = SPEAKER_MESSAGES_PER_SECOND,
                            "closing a speaker session that sends more messages per second than allowed"
                        );
                        break;
                    }
                    let msg: ToController = match wire::decode("speaker message", &frame) {
                        Ok(m) => m,
                        Err(e) => {
                            tracing::warn!(error = %e, "closing a speaker session that sent garbage");
                            break;
                        }
                    };
                    let received = Instant::now();
                    let leading = self.raft.metrics().borrow().state == openraft::ServerState::Leader;
                    match msg {
                        ToController::Heartbeat(hb) if leading => {
                            self.tracker.do_send(lease::Beat {
                                node: node.clone(),
                                conn,
                                heartbeat: hb,
                                received,
                                tx: tx.clone(),
                            });
                        }
                        ToController::Drain if leading => {
                            self.tracker.do_send(lease::Drain {
                                node: node.clone(),
                                conn,
                                tx: tx.clone(),
                            });
                        }
                        ToController::Heartbeat(_) | ToController::Drain => {
                            let _ = tx.try_send(self.not_leader());
                        }
                    }
                }
                Some(out) = rx.recv() => {
                    let frame = match wire::encode("speaker message", &out) {
                        Ok(f) => f,
                        Err(e) => {
                            tracing::error!(error = %e, "cannot encode a message to a speaker");
                            break;
                        }
                    };
                    let sent = tokio::time::timeout(Duration::from_secs(5), transport.send(frame)).await;
                    if !matches!(sent, Ok(Ok(()))) {
                        tracing::debug!("cannot write to speaker; closing its session");
                        break;
                    }
                }
            }
        }
        self.tracker.do_send(lease::Disconnected { node, conn });
    }
}

/// Tells the lease tracker and the publisher whenever this member starts or stops leading.
async fn tell_leadership(
    mut m: watch::Receiver<RaftMetrics>,
    tracker: Addr<LeaseTracker>,
    publisher: Addr<AssignmentPublisher>,
    _alive: Guard,
) {
    let mut last = None;
    loop {
        let now = {
            let m = m.borrow_and_update();
            let leading = m.state == openraft::ServerState::Leader;
            leading.then_some(m.current_term)
        };
        if now != last {
            last = now;
            tracker.do_send(lease::Leadership { term: now });
            publisher.do_send(publisher::Leadership { term: now });
        }
        if m.changed().await.is_err() {
            return;
        }
    }
}

/// Reads the view from the applied state whenever it changes, paced, and hands it to the
/// publisher until either side stops.
async fn feed_views(
    publisher: Addr<AssignmentPublisher>,
    mut metrics: watch::Receiver<RaftMetrics>,
    mut applied: watch::Receiver<Option<LogId>>,
    state: SharedState,
    _alive: Guard,
) {
    let mut last_read: Option<Instant> = None;
    let mut last_cost = Duration::ZERO;
    let mut view = L2View::default();
    loop {
        // Refreshing the view costs time linear in what changed since the last
        // refresh (all of it after a new state or configuration), under the state's
        // read lock (which holds the state machine's writes back). Under a stream
        // of changes the leader refreshes it at most every VIEW_MIN_GAP (or three times
        // what a refresh costs, so they never take more than a quarter of the time),
        // a follower at most every FOLLOWER_VIEW_GAP; becoming leader cuts the wait
        // short. After a quiet spell (a node failing, one Service changing) the
        // view is read at once.
        let leading = metrics.borrow().state == openraft::ServerState::Leader;
        let gap = if leading {
            VIEW_MIN_GAP.max(last_cost * 3)
        } else {
            FOLLOWER_VIEW_GAP
        };
        if let Some(at) = last_read {
            if !wait_out_gap(&mut metrics, at + gap, leading).await {
                return;
            }
        }
        // Marks the change seen before reading: whatever is applied while the read
        // runs wakes the next round.
        // The state is written before `applied` moves on: read after this, it holds
        // at least everything up to this entry.
        let applied_term = applied
            .borrow_and_update()
            .map_or(0, |l| l.leader_id.get_term());
        let started = Instant::now();
        view.refresh(&*state.read().await);
        view.applied_term = applied_term;
        last_cost = started.elapsed();
        last_read = Some(started);
        // Waits while the publisher's mailbox is full: views are paced by how fast
        // it takes them, and only a stopped publisher ends this loop.
        if publisher
            .send(publisher::ViewChanged(view.clone()))
            .await
            .is_err()
        {
            return;
        }
        if applied.changed().await.is_err() {
            return;
        }
    }
}

/// Waits until `until`, or until a member that was not `leading` becomes leader; false when
/// Raft's metrics are gone.
async fn wait_out_gap(
    metrics: &mut watch::Receiver<RaftMetrics>,
    until: Instant,
    leading: bool,
) -> bool {
    while Instant::now() < until {
        tokio::select! {
            () = tokio::time::sleep_until(until) => break,
            r = metrics.changed() => {
                if r.is_err() {
                    return false;
                }
                let now_leading =
                    metrics.borrow().state == openraft::ServerState::Leader;
                if now_leading && !leading {
                    break;
                }
            }
        }
    }
    true
}

/// Messages a speaker may send per second on average: heartbeats come every 50 ms at the
/// shortest supported interval, so this is five times what a well-behaved speaker needs.
pub const SPEAKER_MESSAGES_PER_SECOND: u32 = 100;
/// How many messages a speaker may send at once above the average (a reconnect's catch-up).
pub const SPEAKER_MESSAGE_BURST: u32 = 200;

/// A token bucket: `rate` tokens a second, holding at most `burst`.
#[derive(Debug)]
pub struct MessageBudget {
    rate: f64,
    burst: f64,
    tokens: f64,
    at: Option<Instant>,
}

impl MessageBudget {
    /// A full bucket.
    pub fn new(rate: u32, burst: u32) -> Self {
        MessageBudget {
            rate: f64::from(rate),
            burst: f64::from(burst),
            tokens: f64::from(burst),
            at: None,
        }
    }

    /// Takes one token at `now`; false when the bucket is empty.
    pub fn take(&mut self, now: Instant) -> bool {
        if let Some(at) = self.at {
            let refill = now.saturating_duration_since(at).as_secs_f64() * self.rate;
            self.tokens = (self.tokens + refill).min(self.burst);
        }
        self.at = Some(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// A leadership being confirmed: this member's id, its term, the voter sets of every
/// configuration in force, and every member.
type Leading = (
    u64,
    u64,
    Vec<std::collections::BTreeSet<u64>>,
    Vec<(u64, crate::raft::Member)>,
);

/// While this member leads, asks every voter (itself included) every third of the grant window
/// whether it still follows this leader, each voter on a task and a connection of its own, and
/// calls `confirmed(at, term)` whenever the leadership is known to have held at a later moment
/// `at`: the latest time by which a quorum (of every configuration, during a membership change)
/// had each answered yes to a question sent at or after it. A slow or unreachable voter holds
/// nobody back, and a new leader starts asking the moment it leads.
async fn confirm_leadership(
    raft: Raft,
    network: NetworkFactory,
    timing: LeaseTiming,
    confirmed: impl Fn(Instant, u64),
) {
    let window = timing.grant_window();
    let every = (window / 3).max(Duration::from_millis(1));
    let mut metrics = raft.metrics();
    let (tx, mut answers) = mpsc::unbounded_channel::<(u64, u64, Instant)>();
    let mut askers = tokio::task::JoinSet::new();
    let mut current: Option<Leading> = None;
    let mut last_yes: std::collections::BTreeMap<u64, Instant> = std::collections::BTreeMap::new();
    let mut reported: Option<Instant> = None;
    loop {
        let now_leading = leadership(&metrics.borrow_and_update());
        if now_leading != current {
            askers.abort_all();
            last_yes.clear();
            reported = None;
            if let Some(leading) = &now_leading {
                spawn_askers(&mut askers, &raft, &network, leading, &tx, window, every);
            }
            current = now_leading;
        }
        tokio::select! {
            r = metrics.changed() => if r.is_err() { return },
            Some((voter, term, sent)) = answers.recv() => {
                let Some((_, leading_term, configs, _)) = &current else { continue };
                if term != *leading_term {
                    continue;
                }
                last_yes.insert(voter, sent);
                if let Some(at) = quorum_yes_at(configs, &last_yes) {
                    if reported.is_none_or(|r| at > r) {
                        reported = Some(at);
                        confirmed(at, term);
                    }
                }
            }
        }
    }
}

/// The leadership `m` shows, if this member leads.
fn leadership(m: &RaftMetrics) -> Option<Leading> {
    (m.state == openraft::ServerState::Leader).then(|| {
        let membership = m.membership_config.membership();
        (
            m.id,
            m.current_term,
            membership.get_joint_config().clone(),
            membership.nodes().map(|(id, n)| (*id, n.clone())).collect(),
        )
    })
}

/// Starts one task per member of `leading` that asks it every `every` (each question waiting
/// at most `window`) whether it still follows this leader, and reports each yes on `tx` with
/// when its question was sent. This member answers from its own vote, the others over a
/// connection of their own.
fn spawn_askers(
    askers: &mut tokio::task::JoinSet<()>,
    raft: &Raft,
    network: &NetworkFactory,
    (me, term, _, members): &Leading,
    tx: &mpsc::UnboundedSender<(u64, u64, Instant)>,
    window: Duration,
    every: Duration,
) {
    let (me, term) = (*me, *term);
    for (id, member) in members.clone() {
        let tx = tx.clone();
        if id == me {
            let raft = raft.clone();
            askers.spawn(async move {
                loop {
                    let sent = Instant::now();
                    let yes = tokio::time::timeout(
                        window,
                        crate::raft::network::server::follows(&raft, term, me),
                    )
                    .await
                    .unwrap_or(false);
                    if yes && tx.send((id, term, sent)).is_err() {
                        return;
                    }
                    tokio::time::sleep_until(sent + every).await;
                }
            });
        } else {
            let mut conn = network.connect_lazily(id, &member);
            askers.spawn(async move {
                loop {
                    let sent = Instant::now();
                    if conn.confirm_leader(term, me, window).await
                        && tx.send((id, term, sent)).is_err()
                    {
                        return;
                    }
                    tokio::time::sleep_until(sent + every).await;
                }
            });
        }
    }
}

/// The moment by which the leadership is known to have held, given each voter's latest yes.
fn quorum_yes_at(
    configs: &[std::collections::BTreeSet<u64>],
    last_yes: &std::collections::BTreeMap<u64, Instant>,
) -> Option<Instant> {
    // Per configuration, the moment by which a majority had said yes: the
    // majority-th latest of their latest yes; the leadership held at the earliest of
    // these over every configuration.
    configs
        .iter()
        .map(|c| {
            let mut times: Vec<Instant> =
                c.iter().filter_map(|v| last_yes.get(v).copied()).collect();
            times.sort_unstable_by(|a, b| b.cmp(a));
            times.get(c.len() / 2).copied()
        })
        .collect::<Option<Vec<Instant>>>()
        .and_then(|ts| ts.into_iter().min())
}

impl SpeakerSessions for SpeakerHub {
    fn serve(&self, transport: Transport, node: NodeName) -> BoxFuture<'static, ()> {
        let span = tracing::info_span!("speaker_session", %node);
        Box::pin(self.clone().session(transport, node).instrument(span))
    }
}

#[cfg(test)]
mod budget_tests {
    use super::*;

    #[test]
    fn a_budget_allows_its_rate_and_burst_and_no_more() {
        let t0 = Instant::now();
        let mut b = MessageBudget::new(10, 5);
        assert!((0..5).all(|_| b.take(t0)));
        assert!(!b.take(t0));
        // A tenth of a second later, one more.
        assert!(b.take(t0 + Duration::from_millis(100)));
        assert!(!b.take(t0 + Duration::from_millis(100)));
        // A steady 10 per second holds for ever.
        let mut t = t0 + Duration::from_millis(100);
        for _ in 0..100 {
            t += Duration::from_millis(100);
            assert!(b.take(t));
        }
    }
}

#[cfg(test)]
mod view_tests;
