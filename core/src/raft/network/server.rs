//! The accepting side: one task per connection, requests handed to the local `Raft`.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_util::bytes::Bytes;
use tokio_util::codec::Framed;
use tracing::Instrument;

use super::tls::{peer_principal, TlsServer};
use super::wire::{self, Channel, Envelope, Hello, HelloReply, RaftRequest, RaftResponse};
use super::{BoxIo, NetworkConfig, Transport, TransportError};
use crate::auth::{MemberSeat, Principal};
use crate::names::NodeName;
use crate::raft::identity::{ClusterId, IdentityCell};
use crate::raft::types::{MemberId, Raft};

/// Serves the speaker sessions that arrive on the Raft port.
pub trait SpeakerSessions: Send + Sync + 'static {
    /// Runs one session until it ends.
    fn serve(&self, transport: Transport, node: NodeName) -> BoxFuture<'static, ()>;
}

/// Whether `raft`'s current vote is for `leader` in `term`, committed: asked of Raft itself (not
/// of its metrics, which may lag a vote already cast), so a yes means that at the moment of the
/// answer this member had voted for no later leader.
pub async fn follows(raft: &Raft, term: u64, leader: MemberId) -> bool {
    raft.with_raft_state(move |st| {
        let v = st.vote_ref();
        v.is_committed()
            && v.leader_id().get_term() == term
            && v.leader_id().voted_for() == Some(leader)
    })
    .await
    .unwrap_or(false)
}

/// Whether the peer's certificate allows `channel`: Raft only for a member of the claimed id's
/// seat, a speaker session only for the node the certificate names. `None` is a server without
/// TLS, which authenticates nobody and so admits everyone.
pub fn admit(peer: Option<&Result<Principal, String>>, channel: &Channel) -> Result<(), String> {
    let peer = match peer {
        None => return Ok(()),
        Some(Err(e)) => return Err(format!("the client certificate names no identity: {e}")),
        Some(Ok(p)) => p,
    };
    match (channel, peer) {
        (Channel::Raft { from, .. }, Principal::Member(seat)) if seat.holds(*from) => Ok(()),
        (Channel::Raft { from, .. }, Principal::Member(seat)) => Err(format!(
            "certificate of member seat {seat} cannot speak Raft as member {from} (seat {})",
            MemberSeat::of(*from).map_or_else(|| "none".to_owned(), |s| s.to_string())
        )),
        (Channel::Raft { from, .. }, other) => Err(format!(
            "only members speak Raft; {other} claimed to be member {from}"
        )),
        (Channel::Speaker { node }, Principal::Node(n)) if n == node => Ok(()),
        (Channel::Speaker { node }, other) => Err(format!(
            "{other} cannot open a speaker session for node {node}"
        )),
    }
}

/// How long to pause after a failed `accept` (e.g. out of file descriptors) before the next, so
/// the loop does not spin while connections close.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// Serves Raft RPCs from other members to the local `Raft`.
#[derive(Clone)]
pub struct RaftServer {
    inner: Arc<Inner>,
}

struct Inner {
    raft: Raft,
    id: MemberId,
    tls: Option<TlsServer>,
    config: NetworkConfig,
    speakers: std::sync::OnceLock<Arc<dyn SpeakerSessions>>,
    identity: std::sync::OnceLock<Arc<IdentityCell>>,
}

impl std::fmt::Debug for RaftServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RaftServer")
            .field("id", &self.inner.id)
            .field("tls", &self.inner.tls.is_some())
            .finish_non_exhaustive()
    }
}

/// Serve Raft RPCs on `listener` until `shutdown` completes, with default settings.
pub async fn serve(
    listener: TcpListener,
    raft: Raft,
    tls: Option<TlsServer>,
    shutdown: impl Future<Output = ()>,
) {
    RaftServer::new(raft, tls, NetworkConfig::default())
        .run(listener, shutdown)
        .await
}

impl RaftServer {
    /// A server for `raft`, requiring TLS with client certificates when `tls` is given.
    pub fn new(raft: Raft, tls: Option<TlsServer>, config: NetworkConfig) -> Self {
        let id = raft.metrics().borrow().id;
        RaftServer {
            inner: Arc::new(Inner {
                raft,
                id,
                tls,
                config,
                speakers: std::sync::OnceLock::new(),
                identity: std::sync::OnceLock::new(),
            }),
        }
    }

    /// Refuses Raft peers of another cluster than `identity`'s (once; later calls are
    /// ignored).
    pub fn with_identity(self, identity: Arc<IdentityCell>) -> Self {
        let _ = self.inner.identity.set(identity);
        self
    }

    /// Also accepts speaker sessions, handing each to `speakers` (once; later calls are
    /// ignored).
    pub fn with_speakers(self, speakers: Arc<dyn SpeakerSessions>) -> Self {
        let _ = self.inner.speakers.set(speakers);
        self
    }

    /// Accept connections until `shutdown` completes, then close every connection.
    pub async fn run(self, listener: TcpListener, shutdown: impl Future<Output = ()>) {
        let local = listener.local_addr().ok();
        tracing::info!(addr = ?local, id = self.inner.id, "serving Raft RPCs");
        let mut connections = JoinSet::new();
        let limits = ConnectionLimits::new(
            self.inner.config.max_connections,
            self.inner.config.max_connections_per_peer,
        );
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                Some(done) = connections.join_next(), if !connections.is_empty() => {
                    if let Err(e) = done {
                        if e.is_panic() {
                            tracing::error!(error = %e, "Raft connection handler panicked");
                        }
                    }
                }
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        let Some(slot) = limits.admit(peer.ip()) else {
                            tracing::warn!(%peer, "refusing a Raft-port connection: too many open (limit {} in all, {} per address)",
                                self.inner.config.max_connections, self.inner.config.max_connections_per_peer);
                            drop(stream);
                            continue;
                        };
                        let inner = self.inner.clone();
                        let span = tracing::info_span!(
                            "raft_conn",
                            %peer,
                            from = tracing::field::Empty
                        );
                        connections.spawn(
                            async move {
                                inner.connection(stream).await;
                                drop(slot);
                            }
                            .instrument(span),
                        );
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot accept a Raft connection");
                        tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                    }
                },
            }
        }
        drop(listener);
        connections.shutdown().await;
        tracing::info!(addr = ?local, "stopped serving Raft RPCs");
    }
}

/// Counts open connections, in all and per peer address, so no one peer (and no crowd) can hold
/// unbounded sockets and tasks.
#[derive(Clone)]
pub struct ConnectionLimits {
    inner: Arc<std::sync::Mutex<Counts>>,
    total: usize,
    per_peer: usize,
}

#[derive(Default)]
struct Counts {
    total: usize,
    per_peer: std::collections::HashMap<std::net::IpAddr, usize>,
}

/// One admitted connection; its slot is given back when dropped.
pub struct ConnectionSlot {
    limits: ConnectionLimits,
    peer: std::net::IpAddr,
}

impl ConnectionLimits {
    /// At most `total` connections at once, `per_peer` from one address.
    pub fn new(total: usize, per_peer: usize) -> Self {
        ConnectionLimits {
            inner: Arc::default(),
            total,
            per_peer,
        }
    }

    /// A slot for a connection from `peer`, if both limits allow one more.
    pub fn admit(&self, peer: std::net::IpAddr) -> Option<ConnectionSlot> {
        let mut c = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let mine = c.per_peer.get(&peer).copied().unwrap_or(0);
        if c.total >= self.total || mine >= self.per_peer {
            return None;
        }
        c.total += 1;
        c.per_peer.insert(peer, mine + 1);
        Some(ConnectionSlot {
            limits: self.clone(),
            peer,
        })
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut c = self.limits.inner.lock().unwrap_or_else(|p| p.into_inner());
        c.total = c.total.saturating_sub(1);
        if let Some(n) = c.per_peer.get_mut(&self.peer) {
            *n -= 1;
            if *n == 0 {
                c.per_peer.remove(&self.peer);
            }
        }
    }
}

impl Inner {
    async fn connection(self: Arc<Self>, stream: TcpStream) {
        match self.session(stream).await {
            Ok(()) => tracing::debug!("Raft connection closed"),
            Err(
                e @ (TransportError::Closed
                | TransportError::HandshakeTimeout(_)
                | TransportError::WriteTimeout(_)),
            ) => {
                tracing::debug!(error = %e, "Raft connection ended")
            }
            Err(e) => tracing::warn!(error = %e, "closing Raft connection"),
        }
    }

    async fn session(&self, stream: TcpStream) -> Result<(), TransportError> {
        let (io, peer) = self.secure(stream).await?;
        // Only a hello's worth of bytes until the channel is admitted.
        let mut framed = Framed::new(io, wire::codec(wire::MAX_HELLO_LEN));
        let (version, channel) = self.hello(&mut framed, peer.as_ref()).await?;
        match channel {
            Channel::Raft { from, to, cluster } => {
                tracing::Span::current().record("from", from);
                self.raft_peer(framed, version, to, cluster).await
            }
            Channel::Speaker { node } => self.speaker(framed, version, node).await,
        }
    }

    /// The connection's byte stream, behind TLS if this server has it, and who the peer's
    /// certificate says it is.
    async fn secure(
        &self,
        stream: TcpStream,
    ) -> Result<(BoxIo, Option<Result<Principal, String>>), TransportError> {
        let config = &self.config;
        stream.set_nodelay(true).map_err(TransportError::Io)?;
        // Without TLS nobody is authenticated (a lab or a trusted network, warned at start).
        Ok(match &self.tls {
            Some(tls) => {
                let stream = tokio::time::timeout(config.handshake_timeout, tls.accept(stream))
                    .await
                    .map_err(|_| TransportError::HandshakeTimeout(config.handshake_timeout))?
                    .map_err(TransportError::Handshake)?;
                let peer = peer_principal(stream.get_ref().1).map_err(|e| e.to_string());
                (Box::new(stream), Some(peer))
            }
            None => (Box::new(stream), None),
        })
    }

    /// Reads the peer's hello: the protocol version and the channel it asks for, refused (and
    /// told why) unless this member speaks that version and `peer` may open that channel.
    async fn hello(
        &self,
        framed: &mut Transport,
        peer: Option<&Result<Principal, String>>,
    ) -> Result<(u8, Channel), TransportError> {
        let config = &self.config;
        let frame = tokio::time::timeout(config.handshake_timeout, framed.next())
            .await
            .map_err(|_| TransportError::HandshakeTimeout(config.handshake_timeout))?
            .ok_or(TransportError::Closed)?
            .map_err(TransportError::Handshake)?;
        let (version, channel) = match Hello::decode(&frame)? {
            (theirs, Some(channel)) if theirs == channel.protocol_version() => (theirs, channel),
            (theirs, channel) => {
                let ours = channel
                    .as_ref()
                    .map_or(wire::PROTOCOL_VERSION, Channel::protocol_version);
                let reason = format!(
                    "protocol version {theirs} is not supported; this member speaks {ours}"
                );
                self.refuse(framed, theirs, reason).await?;
                return Err(TransportError::Version { ours, theirs });
            }
        };
        if let Err(reason) = admit(peer, &channel) {
            self.refuse(framed, version, reason.clone()).await?;
            return Err(TransportError::Identity(reason));
        }
        Ok((version, channel))
    }

    /// Serves Raft RPCs to a member once it is known to be of this cluster and to be talking
    /// to this member.
    async fn raft_peer(
        &self,
        mut framed: Transport,
        version: u8,
        to: MemberId,
        cluster: Option<ClusterId>,
    ) -> Result<(), TransportError> {
        framed
            .codec_mut()
            .set_max_frame_length(self.config.max_frame_len);
        if let Some(identity) = self.identity.get() {
            if let Err(reason) = identity.admit(cluster.as_ref()) {
                self.refuse(&mut framed, version, reason.clone()).await?;
                return Err(TransportError::Rejected(reason));
            }
        }
        if to != self.id {
            let reason = format!("this is member {}, not {to}", self.id);
            self.refuse(&mut framed, version, reason.clone()).await?;
            return Err(TransportError::Rejected(reason));
        }
        self.reply(&mut framed, HelloReply::Accepted.encode_as(version)?)
            .await?;
        tracing::debug!("Raft peer connected");
        self.raft_rpcs(framed).await
    }

    /// Hands a speaker's session to the speaker hub, if this member has one.
    async fn speaker(
        &self,
        mut framed: Transport,
        version: u8,
        node: NodeName,
    ) -> Result<(), TransportError> {
        let Some(speakers) = self.speakers.get().cloned() else {
            let reason = format!("member {} takes no speaker sessions", self.id);
            self.refuse(&mut framed, version, reason.clone()).await?;
            return Err(TransportError::Rejected(reason));
        };
        framed
            .codec_mut()
            .set_max_frame_length(self.config.max_speaker_frame_len);
        self.reply(&mut framed, HelloReply::Accepted.encode_as(version)?)
            .await?;
        tracing::debug!(%node, "speaker connected");
        speakers.serve(framed, node).await;
        Ok(())
    }

    /// Tells the peer, in its protocol `version`, why its hello is refused.
    async fn refuse(
        &self,
        framed: &mut Transport,
        version: u8,
        reason: String,
    ) -> Result<(), TransportError> {
        self.reply(framed, HelloReply::Rejected(reason).encode_as(version)?)
            .await
    }

    async fn reply(&self, framed: &mut Transport, frame: Bytes) -> Result<(), TransportError> {
        let limit = self.config.write_timeout;
        tokio::time::timeout(limit, framed.send(frame))
            .await
            .map_err(|_| TransportError::WriteTimeout(limit))?
            .map_err(TransportError::Io)
    }

    async fn raft_rpcs(&self, mut framed: Transport) -> Result<(), TransportError> {
        let config = &self.config;
        loop {
            let frame = match tokio::time::timeout(config.idle_timeout, framed.next()).await {
                // Leaders send heartbeats far more often; an idle connection is a peer that
                // has gone (or stopped using us) without closing.
                Err(_) => {
                    tracing::debug!(idle = ?config.idle_timeout, "closing idle Raft connection");
                    return Ok(());
                }
                Ok(None) => return Ok(()),
                Ok(Some(frame)) => frame.map_err(TransportError::Io)?,
            };
            let request: Envelope<RaftRequest> = wire::decode("request", &frame)?;
            let kind = request.body.kind();
            // The client gave up long before this; the bound only stops a wedged Raft from
            // pinning the connection forever.
            let body = tokio::time::timeout(config.snapshot_timeout, self.dispatch(request.body))
                .await
                .map_err(|_| {
                    TransportError::Protocol(format!(
                        "{kind} not answered by Raft within {:?}",
                        config.snapshot_timeout
                    ))
                })?;
            let frame = wire::encode(
                "response",
                &Envelope {
                    id: request.id,
                    body,
                },
            )?;
            self.reply(&mut framed, frame).await?;
        }
    }

    async fn dispatch(&self, request: RaftRequest) -> RaftResponse {
        match request {
            RaftRequest::AppendEntries(rpc) => {
                RaftResponse::AppendEntries(self.raft.append_entries(rpc).await)
            }
            RaftRequest::Vote(rpc) => RaftResponse::Vote(self.raft.vote(rpc).await),
            RaftRequest::InstallSnapshot(rpc) => {
                RaftResponse::InstallSnapshot(self.raft.install_snapshot(rpc).await)
            }
            RaftRequest::ConfirmLeader { term, leader } => {
                RaftResponse::ConfirmLeader(follows(&self.raft, term, leader).await)
            }
        }
    }
}
