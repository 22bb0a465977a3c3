//! The speaker's links to the controllers: a session with every member at once, each on its
//! own task, reconnecting on its own; every heartbeat goes to all of them. The leader answers
//! with a lease, the others say they do not lead, so when a leader dies the new one hears from
//! every speaker within one heartbeat of its election, on a connection already open. Frames are
//! relayed between the sockets and the [`ControllerSession`].

use std::collections::BTreeMap;
use std::time::Duration;

use actix::Addr;
use futures::{SinkExt, StreamExt};
use tokio::sync::mpsc;

use super::session::{ControllerSession, LinkEvent};
use crate::announce::proto::{ToController, ToSpeaker};
use crate::names::NodeName;
use crate::raft::network::wire::{self, Channel};
use crate::raft::network::{open_channel, NetworkConfig, TlsClient, Transport};

/// Where and how to reach the controllers.
#[derive(Clone, Debug)]
pub struct LinkConfig {
    /// The members' Raft addresses.
    pub controllers: Vec<String>,
    /// This speaker's node.
    pub node: NodeName,
    /// TLS with a client certificate, if the members require it.
    pub tls: Option<TlsClient>,
    /// Timeouts and limits.
    pub network: NetworkConfig,
}

/// Pause after a member could not be reached, doubled after each failure up to half a second:
/// the other members' links carry the session meanwhile.
const RETRY_MIN: Duration = Duration::from_millis(20);
const RETRY_MAX: Duration = Duration::from_millis(500);

/// Bound on opening a connection to one member (a SYN to a partitioned member is never
/// answered).
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);

/// Heartbeats queued for one member before the oldest are dropped: a stale heartbeat is worth
/// nothing.
const QUEUE: usize = 8;

/// How long a connection may stay silent before it counts as lost: a few heartbeats (each of
/// which every member answers at once), and never less than a lease: on a slow path the first
/// answer takes a round trip, and a link that answers within a lease still renews it.
fn silence_after(heartbeat: Duration, lease: Duration) -> Duration {
    (heartbeat * 5 / 2)
        .max(lease)
        .max(Duration::from_millis(100))
}

/// Runs until the session goes away: one link per member, and the fan-out of what the session
/// sends.
pub async fn run(
    cfg: LinkConfig,
    session: Addr<ControllerSession>,
    mut out: mpsc::Receiver<ToController>,
) {
    if cfg.controllers.is_empty() {
        tracing::error!("no controller addresses: the speaker cannot get a lease");
        return;
    }
    let (found_tx, mut found) = mpsc::unbounded_channel::<String>();
    let mut links: BTreeMap<String, mpsc::Sender<ToController>> = BTreeMap::new();
    let start = |member: String, links: &mut BTreeMap<String, mpsc::Sender<ToController>>| {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(member_link(
            cfg.clone(),
            member.clone(),
            session.clone(),
            rx,
            found_tx.clone(),
        ));
        links.insert(member, tx);
    };
    for member in &cfg.controllers {
        start(member.clone(), &mut links);
    }
    loop {
        tokio::select! {
            msg = out.recv() => {
                let Some(msg) = msg else { return };
                for tx in links.values() {
                    // A member whose link is down or behind misses this one; the next heartbeat
                    // is as good.
                    let _ = tx.try_send(msg.clone());
                }
            }
            Some(member) = found.recv() => {
                if !links.contains_key(&member) {
                    tracing::info!(%member, "learned of a controller member not in --controllers");
                    start(member, &mut links);
                }
            }
        }
        if !session.connected() {
            return;
        }
    }
}

/// The link to one member, reconnecting until the session goes away.
async fn member_link(
    cfg: LinkConfig,
    member: String,
    session: Addr<ControllerSession>,
    mut out: mpsc::Receiver<ToController>,
    found: mpsc::UnboundedSender<String>,
) {
    let network = NetworkConfig {
        connect_timeout: CONNECT_TIMEOUT.min(cfg.network.connect_timeout),
        ..cfg.network.clone()
    };
    let mut pause = RETRY_MIN;
    let mut silence = silence_after(Duration::from_millis(200), Duration::from_secs(1));
    while session.connected() {
        let channel = Channel::Speaker {
            node: cfg.node.clone(),
        };
        let mut transport = match open_channel(&member, channel, cfg.tls.as_ref(), &network).await {
            Ok(t) => t,
            Err(e) => {
                tracing::debug!(%member, error = %e, "cannot reach controller");
                session.do_send(LinkEvent::Unreachable(member.clone()));
                // What queued up meanwhile is stale.
                while out.try_recv().is_ok() {}
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(RETRY_MAX);
                continue;
            }
        };
        pause = RETRY_MIN;
        session.do_send(LinkEvent::Connected(member.clone()));
        let ended = relay(
            &cfg,
            &member,
            &session,
            &mut transport,
            &mut out,
            &found,
            &mut silence,
        )
        .await;
        if ended == Ended::SessionGone {
            return;
        }
        session.do_send(LinkEvent::Disconnected(member.clone()));
        tokio::time::sleep(RETRY_MIN).await;
    }
}

/// How relaying over one connection ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ended {
    /// The connection failed, went silent or carried garbage: reconnect.
    Lost,
    /// The session sends nothing more: the link is no longer wanted.
    SessionGone,
}

/// Relays between one member's open connection and the session until either ends; `silence`
/// follows the heartbeat and lease the member announces.
async fn relay(
    cfg: &LinkConfig,
    member: &str,
    session: &Addr<ControllerSession>,
    transport: &mut Transport,
    out: &mut mpsc::Receiver<ToController>,
    found: &mpsc::UnboundedSender<String>,
    silence: &mut Duration,
) -> Ended {
    let mut heard = tokio::time::Instant::now();
    loop {
        tokio::select! {
            () = tokio::time::sleep_until(heard + *silence) => {
                // A partition drops packets without closing anything: a member that leaves
                // heartbeats unanswered this long is as good as gone.
                tracing::info!(%member, ?silence, "controller went silent; reconnecting");
                return Ended::Lost;
            }
            frame = transport.next() => {
                let frame = match frame {
                    Some(Ok(f)) => f,
                    Some(Err(e)) => {
                        tracing::debug!(%member, error = %e, "controller connection failed");
                        return Ended::Lost;
                    }
                    None => return Ended::Lost,
                };
                heard = tokio::time::Instant::now();
                let msg: ToSpeaker = match wire::decode("controller message", &frame) {
                    Ok(m) => m,
                    Err(e) => {
                        tracing::warn!(%member, error = %e, "controller sent garbage; reconnecting");
                        return Ended::Lost;
                    }
                };
                learn_from(member, &msg, silence, found);
                session.do_send(LinkEvent::Received(member.to_owned(), msg));
            }
            msg = out.recv() => {
                let Some(msg) = msg else { return Ended::SessionGone };
                if !send_to_member(cfg, transport, &msg).await {
                    return Ended::Lost;
                }
            }
        }
    }
}

/// Takes what a member's message tells the link itself: the silence a lease allows, and a
/// leader this link has not heard of (reported on `found`).
fn learn_from(
    member: &str,
    msg: &ToSpeaker,
    silence: &mut Duration,
    found: &mpsc::UnboundedSender<String>,
) {
    match msg {
        ToSpeaker::Lease {
            heartbeat_ms,
            lease_ms,
            ..
        } => {
            *silence = silence_after(
                Duration::from_millis(*heartbeat_ms),
                Duration::from_millis(*lease_ms),
            );
        }
        ToSpeaker::NotLeader { leader: Some(l) } if l != member => {
            let _ = found.send(l.clone());
        }
        _ => {}
    }
}

/// Sends `msg` to the member; false if the connection failed or timed out. A message that
/// cannot be encoded is logged and skipped: the connection itself is fine.
async fn send_to_member(cfg: &LinkConfig, transport: &mut Transport, msg: &ToController) -> bool {
    let frame = match wire::encode("speaker message", msg) {
        Ok(f) => f,
        Err(e) => {
            tracing::error!(error = %e, "cannot encode a message to the controller");
            return true;
        }
    };
    let limit = cfg.network.write_timeout;
    matches!(
        tokio::time::timeout(limit, transport.send(frame)).await,
        Ok(Ok(()))
    )
}
