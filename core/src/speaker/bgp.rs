//! The BgpPeer actor: one per BGP session the node opens. It owns the session task (the FSM,
//! timers and Adj-RIB-Out live there, next to the socket) and hands it the routes the node is
//! to announce to this peer; it reports the session to the speaker's metrics.

use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, Context, Handler, Message, ResponseFuture};
use tokio::sync::watch;

use crate::config::model::Peer;
use crate::metrics::speaker::SpeakerMetrics;
use crate::names::PeerName;
use crate::net::bfd::Bfd;
use crate::net::bgp::session::{self, Observer, Routes, Run};
use crate::net::bgp::table::SharedTable;

/// The shared route table changed: it is at this version now.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SetRoutes(pub u64);

/// End the session (draining: withdraw everything first); resolves when it has ended.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Shutdown(pub Run);

/// One BGP session.
pub struct BgpPeer {
    /// The table's version the session was last told of.
    routes: watch::Sender<u64>,
    run: watch::Sender<Run>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl BgpPeer {
    /// Starts the session to `peer`, to announce its routes of `table` once established (so
    /// that a restarted speaker's End-of-RIB follows its whole table), with its BFD (if it has
    /// a profile) on `bfd`; must run within a tokio runtime.
    pub fn start_session(
        name: PeerName,
        peer: Peer,
        table: SharedTable,
        metrics: Arc<SpeakerMetrics>,
        bfd: Bfd,
    ) -> Self {
        let version = table.read().version();
        let (routes, changed) = watch::channel(version);
        let routes_rx = Routes { table, changed };
        let (run, run_rx) = watch::channel(Run::Up);
        let observer: Arc<dyn Observer> = metrics;
        let task = session::spawn(name, peer.session(), routes_rx, run_rx, observer, Some(bfd));
        Self {
            routes,
            run,
            task: Some(task),
        }
    }
}

impl Actor for BgpPeer {
    type Context = Context<Self>;

    fn stopped(&mut self, _: &mut Self::Context) {
        let _ = self.run.send(Run::Stop);
    }
}

impl Handler<SetRoutes> for BgpPeer {
    type Result = ();

    fn handle(&mut self, msg: SetRoutes, _: &mut Context<Self>) {
        self.routes.send_if_modified(|cur| {
            let changed = *cur != msg.0;
            *cur = msg.0;
            changed
        });
    }
}

impl Handler<Shutdown> for BgpPeer {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, msg: Shutdown, _: &mut Context<Self>) -> Self::Result {
        let _ = self.run.send(msg.0);
        let task = self.task.take();
        Box::pin(async move {
            if let Some(t) = task {
                // A peer that does not read may hold the withdrawals up: not for long.
                let _ = tokio::time::timeout(Duration::from_secs(2), t).await;
            }
        })
    }
}
