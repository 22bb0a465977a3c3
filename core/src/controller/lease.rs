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
use crate::announce::lease_book::{BookTiming, LeaseBook};
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

/// Heartbeats in, leases and dead or alive verdicts out (leader only). The rules are the
/// [`LeaseBook`]'s; this actor feeds it, keeps a timer per node and sends what it decides.
pub struct LeaseTracker {
    id: u64,
    timing: LeaseTiming,
    publisher: Addr<AssignmentPublisher>,
    book: LeaseBook,
    /// Per node, the timer that declares it dead unless another heartbeat comes first.
    timers: BTreeMap<NodeName, SpawnHandle>,
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
            book: LeaseBook::new(BookTiming {
                grant_window: timing.grant_window(),
                dead_after: timing.dead_after(),
            }),
            timers: BTreeMap::new(),
            _alive: watchdog.guard("lease tracker"),
        }
    }

    fn stop_timer(&mut self, node: &NodeName, ctx: &mut Context<Self>) {
        if let Some(t) = self.timers.remove(node) {
            ctx.cancel_future(t);
        }
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
        let Some(term) = self.book.may_grant(Instant::now()) else {
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
        // Armed for `dead_after` from now, which is no earlier than the book's verdict (it
        // counts from the arrival): a timer firing at the verdict's edge never finds it early.
        self.book.granted(&msg.node, msg.received);
        self.stop_timer(&msg.node, ctx);
        let timer = ctx.notify_later(
            Expire {
                node: msg.node.clone(),
            },
            self.timing.dead_after(),
        );
        self.timers.insert(msg.node.clone(), timer);
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
        self.book.forget(&msg.node);
        self.stop_timer(&msg.node, ctx);
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
        self.book.confirmed(msg.term, msg.at);
    }
}

impl Handler<Leadership> for LeaseTracker {
    type Result = ();

    fn handle(&mut self, msg: Leadership, ctx: &mut Context<Self>) {
        // Leases granted by an earlier leadership are not ours to track.
        self.book.lead(msg.term);
        for (_, t) in std::mem::take(&mut self.timers) {
            ctx.cancel_future(t);
        }
    }
}

impl Handler<Expire> for LeaseTracker {
    type Result = ();

    fn handle(&mut self, msg: Expire, _: &mut Context<Self>) {
        if !self.book.expire(&msg.node, Instant::now()) {
            return;
        }
        self.timers.remove(&msg.node);
        let after = self.timing.dead_after();
        tracing::warn!(node = %msg.node, ?after, "speaker is dead: no heartbeat");
        self.publisher.do_send(publisher::NodeGone {
            node: msg.node,
            why: Gone::Dead,
        });
    }
}
