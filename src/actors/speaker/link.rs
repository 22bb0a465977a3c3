//! The speaker's link to the controllers: one connection at a time on a member's Raft port,
//! following redirects to the leader and moving on from members that cannot help, relaying
//! frames between the socket and the [`ControllerSession`].

use std::time::Duration;

use actix::Addr;
use futures::{SinkExt, StreamExt};
use tokio::sync::mpsc;

use super::session::{ControllerSession, LinkEvent};
use crate::announce::proto::{ToController, ToSpeaker};
use crate::names::NodeName;
use crate::raft::network::wire::{self, Channel};
use crate::raft::network::{open_channel, NetworkConfig, TlsClient};

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

/// Pause before trying the next member after one could not help; doubled after each full round
/// of members, up to half a second: a speaker must find a new leader well within one lease, or
/// the leader takes it for dead and moves its addresses.
const RETRY_MIN: Duration = Duration::from_millis(20);
const RETRY_MAX: Duration = Duration::from_millis(500);

/// Bound on opening a connection to one member (a SYN to a partitioned member is never
/// answered): short, so the next member is tried within the same lease.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);

/// How long a connection may stay silent before it counts as lost: a few heartbeats, each of
/// which the leader answers at once.
fn silence_after(heartbeat: Duration) -> Duration {
    (heartbeat * 5 / 2).max(Duration::from_millis(100))
}

/// Runs until the session goes away.
pub async fn run(
    cfg: LinkConfig,
    session: Addr<ControllerSession>,
    mut out: mpsc::Receiver<ToController>,
) {
    let network = NetworkConfig {
        connect_timeout: CONNECT_TIMEOUT.min(cfg.network.connect_timeout),
        ..cfg.network.clone()
    };
    let mut next = 0usize;
    let mut redirect: Option<String> = None;
    let mut pause = RETRY_MIN;
    let mut silence = silence_after(Duration::from_millis(200));
    loop {
        let member = match redirect.take() {
            Some(m) => m,
            None => {
                let Some(m) = cfg.controllers.get(next % cfg.controllers.len().max(1)) else {
                    tracing::error!("no controller addresses: the speaker cannot get a lease");
                    return;
                };
                next += 1;
                if next.is_multiple_of(cfg.controllers.len()) {
                    pause = (pause * 2).min(RETRY_MAX);
                }
                m.clone()
            }
        };
        let channel = Channel::Speaker {
            node: cfg.node.clone(),
        };
        let mut transport = match open_channel(&member, channel, cfg.tls.as_ref(), &network).await {
            Ok(t) => t,
            Err(e) => {
                tracing::debug!(%member, error = %e, "cannot reach controller");
                if session.try_send(LinkEvent::Unreachable(member)).is_err() {
                    return;
                }
                // Drop what queued up meanwhile: stale heartbeats are worth nothing.
                while out.try_recv().is_ok() {}
                tokio::time::sleep(pause).await;
                continue;
            }
        };
        if session
            .try_send(LinkEvent::Connected(member.clone()))
            .is_err()
        {
            return;
        }
        let mut heard = tokio::time::Instant::now();
        loop {
            tokio::select! {
                () = tokio::time::sleep_until(heard + silence) => {
                    // A partition drops packets without closing anything: a member that leaves
                    // heartbeats unanswered this long is as good as gone.
                    tracing::info!(%member, ?silence, "controller went silent; trying another");
                    break;
                }
                frame = transport.next() => {
                    let frame = match frame {
                        Some(Ok(f)) => f,
                        Some(Err(e)) => {
                            tracing::debug!(%member, error = %e, "controller connection failed");
                            break;
                        }
                        None => break,
                    };
                    heard = tokio::time::Instant::now();
                    let msg: ToSpeaker = match wire::decode("controller message", &frame) {
                        Ok(m) => m,
                        Err(e) => {
                            tracing::warn!(%member, error = %e, "controller sent garbage; reconnecting");
                            break;
                        }
                    };
                    if let ToSpeaker::Lease { heartbeat_ms, .. } = &msg {
                        silence = silence_after(Duration::from_millis(*heartbeat_ms));
                    }
                    let leave = match &msg {
                        ToSpeaker::NotLeader { leader: Some(l) } => {
                            redirect = Some(l.clone()).filter(|l| *l != member);
                            true
                        }
                        ToSpeaker::NotLeader { leader: None } | ToSpeaker::NoQuorum => true,
                        _ => {
                            pause = RETRY_MIN;
                            false
                        }
                    };
                    if session.try_send(LinkEvent::Received(member.clone(), msg)).is_err() {
                        return;
                    }
                    if leave {
                        break;
                    }
                }
                msg = out.recv() => {
                    let Some(msg) = msg else { return };
                    let frame = match wire::encode("speaker message", &msg) {
                        Ok(f) => f,
                        Err(e) => {
                            tracing::error!(error = %e, "cannot encode a message to the controller");
                            continue;
                        }
                    };
                    let limit = cfg.network.write_timeout;
                    if !matches!(tokio::time::timeout(limit, transport.send(frame)).await, Ok(Ok(()))) {
                        break;
                    }
                }
            }
        }
        if session
            .try_send(LinkEvent::Disconnected(member.clone()))
            .is_err()
        {
            return;
        }
        if redirect.is_none() {
            tokio::time::sleep(pause).await;
        }
    }
}
