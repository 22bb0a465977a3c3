//! The LeaseTracker: heartbeats in, leases and verdicts out.
//!
//! A lease is granted only while this member leads and a quorum confirmed it within the grant
//! window; a node counts as dead once no granted heartbeat has arrived for `lease + margin`.

use std::collections::BTreeMap;

use actix::{Actor, Addr, AsyncContext, Context, Handler, Message, SpawnHandle};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::publisher::{self, AssignmentPublisher, Gone};
use super::LeaseTiming;
use crate::announce::proto::{Heartbeat, ToSpeaker};
use crate::names::NodeName;

/// A heartbeat from a speaker session.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Beat {
    /// The speaker's node.
    pub node: NodeName,
    /// The session (connection) it came on.
    pub conn: u64,
    /// What it says.
    pub heartbeat: Heartbeat,
    /// When it arrived.
    pub received: Instant,
    /// Where answers go.
    pub tx: mpsc::Sender<ToSpeaker>,
}

/// A speaker has stopped announcing and is leaving.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Drain {
    /// The speaker's node.
    pub node: NodeName,
    /// Its session.
    pub conn: u64,
    /// Where the final answer goes.
    pub tx: mpsc::Sender<ToSpeaker>,
}

/// A session closed (the node may come back on another before its lease ends).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Disconnected {
    /// The speaker's node.
    pub node: NodeName,
    /// The session.
    pub conn: u64,
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

/// This member leads in `term`, or (`None`) does not lead.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Leadership {
    /// The term led, if any.
    pub term: Option<u64>,
}

/// Checks whether `node` is dead (sent at `granted + dead_after` of its last granted beat).
#[derive(Message)]
#[rtype(result = "()")]
struct Expire {
    node: NodeName,
}

struct Tracked {
    /// When the last heartbeat that got a lease arrived.
    granted: Instant,
    /// The timer that declares it dead unless another heartbeat comes first.
    timer: SpawnHandle,
}

/// Heartbeats in, leases and dead or alive verdicts out (leader only).
pub struct LeaseTracker {
    id: u64,
    timing: LeaseTiming,
    publisher: Addr<AssignmentPublisher>,
    /// The term this member leads in, if it leads.
    term: Option<u64>,
    confirmed: Option<Instant>,
    nodes: BTreeMap<NodeName, Tracked>,
    _alive: crate::watchdog::Guard,
}

impl LeaseTracker {
    /// The tracker of member `id`, reporting to `publisher`; it counts as alive on `watchdog`
    /// while it runs.
    pub fn new(
        id: u64,
        timing: LeaseTiming,
        publisher: Addr<AssignmentPublisher>,
        watchdog: &crate::watchdog::Watchdog,
    ) -> Self {
        Self {
            id,
            timing,
            publisher,
            term: None,
            confirmed: None,
            nodes: BTreeMap::new(),
            _alive: watchdog.guard("lease tracker"),
        }
    }

    fn may_grant(&self, now: Instant) -> bool {
        self.term.is_some()
            && self
                .confirmed
                .is_some_and(|c| now.saturating_duration_since(c) <= self.timing.grant_window())
    }
}

impl Actor for LeaseTracker {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(4096);
    }
}

impl Handler<Beat> for LeaseTracker {
    type Result = ();

    fn handle(&mut self, msg: Beat, ctx: &mut Context<Self>) {
        let Some(term) = self.term.filter(|_| self.may_grant(Instant::now())) else {
            let _ = msg.tx.try_send(ToSpeaker::NoQuorum);
            return;
        };
        let answer = ToSpeaker::Lease {
            seq: msg.heartbeat.seq,
            lease_ms: self.timing.lease.as_millis() as u64,
            heartbeat_ms: self.timing.heartbeat.as_millis() as u64,
            term,
            leader: self.id,
        };
        if msg.tx.try_send(answer).is_err() {
            // The session is gone or stuck: no lease was given, so none is counted.
            return;
        }
        // A timer per node, reset by every granted heartbeat: the verdict comes the moment
        // the lease and the margin have passed, not at the next tick of a sweep.
        let timer = ctx.notify_later(
            Expire {
                node: msg.node.clone(),
            },
            self.timing.dead_after(),
        );
        if let Some(old) = self.nodes.insert(
            msg.node.clone(),
            Tracked {
                granted: msg.received,
                timer,
            },
        ) {
            ctx.cancel_future(old.timer);
        }
        self.publisher.do_send(publisher::Report {
            node: msg.node,
            conn: msg.conn,
            heartbeat: msg.heartbeat,
            tx: msg.tx,
        });
    }
}

impl Handler<Drain> for LeaseTracker {
    type Result = ();

    fn handle(&mut self, msg: Drain, ctx: &mut Context<Self>) {
        tracing::info!(node = %msg.node, "speaker drains");
        if let Some(t) = self.nodes.remove(&msg.node) {
            ctx.cancel_future(t.timer);
        }
        self.publisher.do_send(publisher::NodeGone {
            node: msg.node,
            why: Gone::Drained(msg.tx),
        });
    }
}

impl Handler<Disconnected> for LeaseTracker {
    type Result = ();

    fn handle(&mut self, msg: Disconnected, _: &mut Context<Self>) {
        // Its lease may still run: only the sweep may call it dead.
        tracing::debug!(node = %msg.node, conn = msg.conn, "speaker session closed");
    }
}

impl Handler<Confirmed> for LeaseTracker {
    type Result = ();

    fn handle(&mut self, msg: Confirmed, _: &mut Context<Self>) {
        // A confirmation of an earlier leadership says nothing about this one.
        if self.term != Some(msg.term) {
            return;
        }
        if self.confirmed.is_none_or(|c| msg.at > c) {
            self.confirmed = Some(msg.at);
        }
    }
}

impl Handler<Leadership> for LeaseTracker {
    type Result = ();

    fn handle(&mut self, msg: Leadership, ctx: &mut Context<Self>) {
        self.term = msg.term;
        self.confirmed = None;
        // Leases granted by an earlier leadership are not ours to track.
        for (_, t) in std::mem::take(&mut self.nodes) {
            ctx.cancel_future(t.timer);
        }
    }
}

impl Handler<Expire> for LeaseTracker {
    type Result = ();

    fn handle(&mut self, msg: Expire, _: &mut Context<Self>) {
        let dead_after = self.timing.dead_after();
        let expired = self
            .nodes
            .get(&msg.node)
            .is_some_and(|t| t.granted.elapsed() >= dead_after);
        if !expired {
            return;
        }
        tracing::warn!(node = %msg.node, after = ?dead_after, "speaker is dead: no heartbeat");
        self.nodes.remove(&msg.node);
        self.publisher.do_send(publisher::NodeGone {
            node: msg.node,
            why: Gone::Dead,
        });
    }
}
