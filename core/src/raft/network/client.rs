//! The dialling side: openraft's `RaftNetworkFactory` and one `RaftNetwork` per target.

use std::sync::Arc;
use std::time::Duration;

use futures::{FutureExt, SinkExt, StreamExt};
use openraft::error::{
    InstallSnapshotError, NetworkError, PayloadTooLarge, RPCError, RaftError, RemoteError, Timeout,
    Unreachable,
};
use openraft::network::{Backoff, RPCOption, RPCTypes, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::codec::Framed;
use tracing::Instrument;

use super::tls::{peer_principal, server_name, TlsClient};
use super::wire::{self, Channel, Envelope, Hello, HelloReply, RaftRequest, RaftResponse};
use super::{BoxIo, NetworkConfig, TransportError};
use crate::auth::Principal;
use crate::raft::identity::IdentityCell;
use crate::raft::types::{Member, MemberId, TypeConfig};

use super::Transport;

/// Builds a [`NetworkConnection`] per target for openraft; shares configuration and TLS.
#[derive(Clone, Debug)]
pub struct NetworkFactory {
    inner: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    self_id: MemberId,
    config: NetworkConfig,
    tls: Option<TlsClient>,
    /// This member's identity, whose cluster id every hello carries.
    identity: Option<Arc<IdentityCell>>,
}

impl NetworkFactory {
    /// A factory for member `self_id`, dialling with `tls` when given and plain TCP otherwise.
    pub fn new(self_id: MemberId, config: NetworkConfig, tls: Option<TlsClient>) -> Self {
        NetworkFactory {
            inner: Arc::new(Shared {
                self_id,
                config,
                tls,
                identity: None,
            }),
        }
    }

    /// The same, naming `identity`'s cluster in every hello.
    pub fn with_identity(self, identity: Arc<IdentityCell>) -> Self {
        let s = &self.inner;
        NetworkFactory {
            inner: Arc::new(Shared {
                self_id: s.self_id,
                config: s.config.clone(),
                tls: s.tls.clone(),
                identity: Some(identity),
            }),
        }
    }

    /// A client for `target` at `node` (what `new_client` returns, usable without openraft).
    pub fn connect_lazily(&self, target: MemberId, node: &Member) -> NetworkConnection {
        NetworkConnection {
            target,
            node: node.clone(),
            shared: self.inner.clone(),
            state: State::Idle,
            failures: 0,
            retry_at: None,
            next_id: 0,
        }
    }
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = NetworkConnection;

    async fn new_client(&mut self, target: MemberId, node: &Member) -> NetworkConnection {
        self.connect_lazily(target, node)
    }
}

/// The link to one member: a long-lived connection, opened on first use and reopened (with
/// exponential backoff) after a failure. One RPC at a time.
pub struct NetworkConnection {
    target: MemberId,
    node: Member,
    shared: Arc<Shared>,
    state: State,
    /// Connection attempts that failed in a row.
    failures: u32,
    /// No new attempt before this instant.
    retry_at: Option<Instant>,
    next_id: u64,
}

impl std::fmt::Debug for NetworkConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NetworkConnection")
            .field("target", &self.target)
            .field("addr", &self.node.raft_addr)
            .field("failures", &self.failures)
            .finish_non_exhaustive()
    }
}

enum State {
    Idle,
    /// The attempt runs in its own task so that an RPC giving up at its deadline (heartbeat
    /// deadlines can be shorter than a TLS handshake) does not throw the attempt away: the next
    /// RPC picks it up.
    Connecting(JoinHandle<Result<Transport, TransportError>>),
    Ready(Transport),
}

impl Drop for NetworkConnection {
    fn drop(&mut self) {
        if let State::Connecting(task) = &self.state {
            task.abort();
        }
    }
}

/// How an RPC failed, before it is cast into openraft's error for that RPC.
enum CallError {
    /// No connection could be made (or we are waiting out a backoff).
    Unreachable(TransportError),
    /// The connection broke or spoke nonsense; a retry will dial again.
    Network(TransportError),
    /// The deadline passed.
    Timeout(Duration),
    /// The request is larger than a frame may be.
    TooLarge(usize),
}

/// Delay before attempt `failures + 1`, doubling from `min` up to `max`.
fn backoff_delay(config: &NetworkConfig, failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(20);
    config
        .backoff_min
        .saturating_mul(1u32 << doublings)
        .min(config.backoff_max)
}

async fn dial(
    shared: Arc<Shared>,
    target: MemberId,
    addr: String,
) -> Result<Transport, TransportError> {
    let channel = Channel::Raft {
        from: shared.self_id,
        to: target,
        cluster: shared.identity.as_ref().and_then(|i| i.cluster()),
    };
    open_channel(&addr, channel, shared.tls.as_ref(), &shared.config).await
}

/// Whether the server is a member, and for Raft the one dialled: a speaker certificate (or a
/// member of another seat) listening at a member's address gets neither votes nor heartbeats.
fn expect_member(conn: &rustls::CommonState, channel: &Channel) -> Result<(), TransportError> {
    let server = peer_principal(conn)
        .map_err(|e| TransportError::Identity(format!("the server's certificate: {e}")))?;
    match (&server, channel) {
        (Principal::Member(seat), Channel::Raft { to, .. }) if !seat.holds(*to) => Err(
            TransportError::Identity(format!("dialled member {to}, reached member seat {seat}")),
        ),
        (Principal::Member(_), _) => Ok(()),
        (other, _) => Err(TransportError::Identity(format!(
            "the server is {other}, not a member"
        ))),
    }
}

/// A TCP connection to `addr`, from `source` when one is given (any port on it), else from
/// wherever the kernel chooses.
async fn connect_from(source: Option<std::net::IpAddr>, addr: &str) -> std::io::Result<TcpStream> {
    let Some(source) = source else {
        return TcpStream::connect(addr).await;
    };
    let mut last = None;
    for target in tokio::net::lookup_host(addr).await? {
        if target.is_ipv4() != source.is_ipv4() {
            continue;
        }
        let socket = match target {
            std::net::SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
            std::net::SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
        };
        socket.bind(std::net::SocketAddr::new(source, 0))?;
        match socket.connect(target).await {
            Ok(tcp) => return Ok(tcp),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::AddrNotAvailable,
            format!("{addr} has no address of the family of the source address {source}"),
        )
    }))
}

/// Opens a connection to a member's Raft port for `channel`: TCP, TLS when `tls` is given, and
/// the hello exchange, all within `config.connect_timeout`.
pub async fn open_channel(
    addr: &str,
    channel: Channel,
    tls: Option<&TlsClient>,
    config: &NetworkConfig,
) -> Result<Transport, TransportError> {
    let attempt = async {
        // Resolve the name before dialling so a bad address is reported as such.
        let name = match tls {
            Some(_) => Some(server_name(addr).map_err(TransportError::Tls)?),
            None => None,
        };
        let tcp = connect_from(config.source, addr)
            .await
            .map_err(TransportError::Connect)?;
        // Raft RPCs are small request/response exchanges; Nagle would add up to 40 ms each.
        tcp.set_nodelay(true).map_err(TransportError::Connect)?;
        let io: BoxIo = match (tls, name) {
            (Some(tls), Some(name)) => {
                let stream = tls
                    .connect(name, tcp)
                    .await
                    .map_err(TransportError::Handshake)?;
                expect_member(stream.get_ref().1, &channel)?;
                Box::new(stream)
            }
            _ => Box::new(tcp),
        };
        let max = match channel {
            Channel::Raft { .. } => config.max_frame_len,
            Channel::Speaker { .. } => config.max_speaker_frame_len,
        };
        let mut framed = Framed::new(io, wire::codec(max));
        let version = channel.protocol_version();
        let hello = Hello { version, channel };
        framed
            .send(hello.encode()?)
            .await
            .map_err(TransportError::Handshake)?;
        let frame = framed
            .next()
            .await
            .ok_or(TransportError::Closed)?
            .map_err(TransportError::Handshake)?;
        match HelloReply::decode(&frame)? {
            (_, Some(HelloReply::Accepted)) => Ok(framed),
            (_, Some(HelloReply::Rejected(reason))) => Err(TransportError::Rejected(reason)),
            (theirs, None) => Err(TransportError::Version {
                ours: version,
                theirs,
            }),
        }
    };
    tokio::time::timeout(config.connect_timeout, attempt)
        .await
        .map_err(|_| TransportError::ConnectTimeout(config.connect_timeout))?
}

impl NetworkConnection {
    /// A ready connection, taken out of `self` for the duration of one exchange: if the RPC is
    /// dropped midway (openraft's own deadline), the half-used connection goes with it instead
    /// of leaving an unread response for the next RPC.
    async fn take_connection(
        &mut self,
        deadline: Instant,
        ttl: Duration,
    ) -> Result<Transport, CallError> {
        loop {
            self.drop_if_gone();
            match std::mem::replace(&mut self.state, State::Idle) {
                State::Ready(framed) => return Ok(framed),
                other => self.state = other,
            }
            match &mut self.state {
                // Taken at the top of the loop.
                State::Ready(_) => continue,
                State::Connecting(task) => {
                    let joined = match tokio::time::timeout_at(deadline, task).await {
                        Ok(joined) => joined,
                        // The attempt goes on; the next RPC waits for it.
                        Err(_) => return Err(CallError::Timeout(ttl)),
                    };
                    self.state = State::Idle;
                    let result =
                        joined.unwrap_or_else(|e| Err(TransportError::Task(e.to_string())));
                    return self.dialled(result);
                }
                State::Idle => {
                    if let Some(at) = self.retry_at {
                        let now = Instant::now();
                        if at > now {
                            return Err(CallError::Unreachable(TransportError::BackingOff {
                                failures: self.failures,
                                remaining: at - now,
                            }));
                        }
                    }
                    let task = tokio::spawn(
                        dial(
                            self.shared.clone(),
                            self.target,
                            self.node.raft_addr.clone(),
                        )
                        .in_current_span(),
                    );
                    self.state = State::Connecting(task);
                }
            }
        }
    }

    /// Drops a ready connection that the peer has closed, so that no RPC is sent into it.
    fn drop_if_gone(&mut self) {
        if let State::Ready(framed) = &mut self.state {
            // A connection that is readable while no request is outstanding has been
            // closed (or is sending garbage): the peer restarted, or timed us out.
            if let Some(event) = framed.next().now_or_never() {
                let reason = match event {
                    None => "closed".to_owned(),
                    Some(Ok(frame)) => format!("unsolicited {}-byte frame", frame.len()),
                    Some(Err(e)) => e.to_string(),
                };
                tracing::debug!(%reason, "idle connection to Raft peer is gone; reconnecting");
                self.state = State::Idle;
            }
        }
    }

    /// Records how a dial went: a success clears the backoff, a failure lengthens it.
    fn dialled(
        &mut self,
        result: Result<Transport, TransportError>,
    ) -> Result<Transport, CallError> {
        match result {
            Ok(framed) => {
                if self.failures > 0 {
                    tracing::info!(
                        peer_id = self.target,
                        addr = %self.node.raft_addr,
                        failures = self.failures,
                        "reconnected to Raft peer"
                    );
                } else {
                    tracing::debug!("connected to Raft peer");
                }
                self.failures = 0;
                self.retry_at = None;
                Ok(framed)
            }
            Err(e) => {
                self.failures = self.failures.saturating_add(1);
                let delay = backoff_delay(&self.shared.config, self.failures);
                self.retry_at = Some(Instant::now() + delay);
                if self.failures == 1 {
                    // Spans are debug-level; a warning names the peer itself.
                    tracing::warn!(
                        peer_id = self.target,
                        addr = %self.node.raft_addr,
                        error = %e,
                        "cannot connect to Raft peer"
                    );
                } else {
                    tracing::debug!(
                        error = %e,
                        failures = self.failures,
                        retry_in = ?delay,
                        "cannot connect to Raft peer"
                    );
                }
                Err(CallError::Unreachable(e))
            }
        }
    }

    /// Send one request and wait for its response, all before `deadline`.
    async fn call(
        &mut self,
        request: RaftRequest,
        ttl: Duration,
    ) -> Result<RaftResponse, CallError> {
        let deadline = Instant::now() + ttl;
        let kind = request.kind();
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        let frame = wire::encode("request", &Envelope { id, body: request })
            .map_err(|e| CallError::Network(e.into()))?;
        if frame.len() > self.shared.config.max_frame_len {
            return Err(CallError::TooLarge(frame.len()));
        }

        let mut framed = self.take_connection(deadline, ttl).await?;
        let exchange = async {
            framed.send(frame).await.map_err(TransportError::Io)?;
            let reply = framed
                .next()
                .await
                .ok_or(TransportError::Closed)?
                .map_err(TransportError::Io)?;
            let reply: Envelope<RaftResponse> = wire::decode("response", &reply)?;
            if reply.id != id || reply.body.kind() != kind {
                return Err(TransportError::Protocol(format!(
                    "expected {kind} response #{id}, got {} response #{}",
                    reply.body.kind(),
                    reply.id
                )));
            }
            Ok(reply.body)
        };
        match tokio::time::timeout_at(deadline, exchange).await {
            Ok(Ok(response)) => {
                self.state = State::Ready(framed);
                Ok(response)
            }
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "Raft connection failed; dropping it");
                Err(CallError::Network(e))
            }
            // The response may still arrive, so this connection is out of step: drop it.
            Err(_) => Err(CallError::Timeout(ttl)),
        }
    }

    /// Asks the member whether it still follows `leader` in `term`, within `ttl`; false for no,
    /// for no answer in time, and for any failure.
    pub async fn confirm_leader(&mut self, term: u64, leader: MemberId, ttl: Duration) -> bool {
        matches!(
            self.call(RaftRequest::ConfirmLeader { term, leader }, ttl)
                .await,
            Ok(RaftResponse::ConfirmLeader(true))
        )
    }

    fn rpc_error<E: std::error::Error>(
        &self,
        action: RPCTypes,
        error: CallError,
    ) -> RPCError<MemberId, Member, E> {
        match error {
            CallError::Unreachable(e) => RPCError::Unreachable(Unreachable::new(&e)),
            CallError::Network(e) => RPCError::Network(NetworkError::new(&e)),
            CallError::Timeout(timeout) => RPCError::Timeout(Timeout {
                action,
                id: self.shared.self_id,
                target: self.target,
                timeout,
            }),
            CallError::TooLarge(len) => {
                RPCError::Network(NetworkError::new(&TransportError::TooLarge {
                    len,
                    max: self.shared.config.max_frame_len,
                }))
            }
        }
    }

    fn remote<E: std::error::Error>(&self, e: E) -> RPCError<MemberId, Member, E> {
        RPCError::RemoteError(RemoteError::new_with_node(
            self.target,
            self.node.clone(),
            e,
        ))
    }

    fn mismatch<E: std::error::Error>(&self, got: &RaftResponse) -> RPCError<MemberId, Member, E> {
        // `call` checks the kind, so this is only reachable if the two disagree about variants.
        RPCError::Network(NetworkError::new(&TransportError::Protocol(format!(
            "unexpected {} response",
            got.kind()
        ))))
    }

    fn span(&self, rpc: &'static str) -> tracing::Span {
        tracing::debug_span!(
            "raft_rpc",
            rpc,
            peer_id = self.target,
            addr = %self.node.raft_addr
        )
    }
}

impl RaftNetwork<TypeConfig> for NetworkConnection {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<MemberId>, RPCError<MemberId, Member, RaftError<MemberId>>>
    {
        let span = self.span("append_entries");
        let entries = rpc.entries.len() as u64;
        async move {
            match self
                .call(RaftRequest::AppendEntries(rpc), option.hard_ttl())
                .await
            {
                Ok(RaftResponse::AppendEntries(result)) => result.map_err(|e| self.remote(e)),
                Ok(other) => Err(self.mismatch(&other)),
                // Openraft resends fewer entries at once when told the payload is too large.
                Err(CallError::TooLarge(_)) if entries > 1 => Err(RPCError::PayloadTooLarge(
                    PayloadTooLarge::new_entries_hint(entries / 2),
                )),
                Err(e) => Err(self.rpc_error(RPCTypes::AppendEntries, e)),
            }
        }
        .instrument(span)
        .await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<MemberId>,
        RPCError<MemberId, Member, RaftError<MemberId, InstallSnapshotError>>,
    > {
        let span = self.span("install_snapshot");
        // A chunk can take far longer than a heartbeat on a slow link; openraft still cancels
        // at its own hard_ttl, this only keeps our bound from being the tighter one.
        let ttl = option.hard_ttl().max(self.shared.config.snapshot_timeout);
        async move {
            match self.call(RaftRequest::InstallSnapshot(rpc), ttl).await {
                Ok(RaftResponse::InstallSnapshot(result)) => result.map_err(|e| self.remote(e)),
                Ok(other) => Err(self.mismatch(&other)),
                Err(e) => Err(self.rpc_error(RPCTypes::InstallSnapshot, e)),
            }
        }
        .instrument(span)
        .await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<MemberId>,
        option: RPCOption,
    ) -> Result<VoteResponse<MemberId>, RPCError<MemberId, Member, RaftError<MemberId>>> {
        let span = self.span("vote");
        async move {
            match self.call(RaftRequest::Vote(rpc), option.hard_ttl()).await {
                Ok(RaftResponse::Vote(result)) => result.map_err(|e| self.remote(e)),
                Ok(other) => Err(self.mismatch(&other)),
                Err(e) => Err(self.rpc_error(RPCTypes::Vote, e)),
            }
        }
        .instrument(span)
        .await
    }

    fn backoff(&self) -> Backoff {
        let max = self.shared.config.backoff_max;
        Backoff::new(std::iter::successors(
            Some(self.shared.config.backoff_min),
            move |d| Some(d.saturating_mul(2).min(max)),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let config = NetworkConfig {
            backoff_min: Duration::from_millis(50),
            backoff_max: Duration::from_millis(300),
            ..NetworkConfig::default()
        };
        let delays: Vec<_> = (1..=6).map(|n| backoff_delay(&config, n)).collect();
        assert_eq!(
            delays,
            [50, 100, 200, 300, 300, 300].map(Duration::from_millis)
        );
        assert_eq!(backoff_delay(&config, u32::MAX), config.backoff_max);
    }

    /// Accepts one connection on a fresh loopback port, returning where it came from.
    async fn first_peer(config: NetworkConfig) -> std::net::SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let accept = tokio::spawn(async move { listener.accept().await.unwrap().1 });
        let channel = Channel::Raft {
            from: 1,
            to: 2,
            cluster: None,
        };
        // Nobody answers the hello: the channel itself fails, but the connection was made.
        let _ = open_channel(&addr, channel, None, &config).await;
        accept.await.unwrap()
    }

    #[tokio::test]
    async fn a_channel_with_a_source_address_arrives_from_it() {
        // All of 127/8 is local on Linux: no setup needed.
        let source: std::net::IpAddr = "127.0.3.7".parse().unwrap();
        let config = NetworkConfig {
            connect_timeout: Duration::from_millis(200),
            source: Some(source),
            ..NetworkConfig::default()
        };
        assert_eq!(first_peer(config).await.ip(), source);
        // Unset, the kernel picks as before.
        let config = NetworkConfig {
            connect_timeout: Duration::from_millis(200),
            ..NetworkConfig::default()
        };
        assert_eq!(
            first_peer(config).await.ip(),
            std::net::IpAddr::from([127, 0, 0, 1])
        );
    }
}
