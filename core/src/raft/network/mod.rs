//! The network between members: Raft RPCs over long-lived TCP connections (optionally mutual
//! TLS) carrying length-delimited bincode frames.
//!
//! A connection opens with a [`Hello`](wire::Hello) that names the protocol version and the
//! [`Channel`](wire::Channel) it carries: Raft RPCs between members, or a speaker's session
//! (handed to [`SpeakerSessions`]). For Raft RPCs, after the server accepts, the client sends one
//! [`RaftRequest`](wire::RaftRequest) at a time and reads its [`RaftResponse`](wire::RaftResponse),
//! which carries the remote `Raft`'s result, error included.

pub mod client;
pub mod server;
pub mod tls;
pub mod wire;

#[cfg(test)]
mod tests;

use std::io;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};

pub use client::{open_channel, NetworkConnection, NetworkFactory};
pub use server::{serve, RaftServer, SpeakerSessions};
pub use tls::{TlsClient, TlsConfig, TlsError, TlsServer};

/// Timeouts, backoff and limits of the Raft network, for both ends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetworkConfig {
    /// Bound on opening a connection: TCP connect, TLS handshake and hello.
    pub connect_timeout: Duration,
    /// Lower bound on an InstallSnapshot RPC (chunks are large); also the longest the server
    /// waits for its `Raft` to answer any RPC.
    pub snapshot_timeout: Duration,
    /// Wait after the first failed connection attempt; doubles with each further failure.
    pub backoff_min: Duration,
    /// The longest wait between connection attempts.
    pub backoff_max: Duration,
    /// Server: bound on the TLS handshake and on receiving the hello.
    pub handshake_timeout: Duration,
    /// Server: a connection with no request for this long is closed.
    pub idle_timeout: Duration,
    /// Server: bound on writing one response.
    pub write_timeout: Duration,
    /// The largest frame sent or accepted on a Raft channel, between authenticated members.
    pub max_frame_len: usize,
    /// The largest frame sent or accepted on a speaker's channel.
    pub max_speaker_frame_len: usize,
    /// Server: connections open at once, from everyone.
    pub max_connections: usize,
    /// Server: connections open at once from one IP address.
    pub max_connections_per_peer: usize,
    /// Client: the local address outgoing connections are bound to; `None` (the default) lets
    /// the kernel choose, as for any connection.
    pub source: Option<std::net::IpAddr>,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        NetworkConfig {
            // Members share a LAN: a peer that has not answered a SYN in a second is down.
            connect_timeout: Duration::from_secs(1),
            snapshot_timeout: Duration::from_secs(60),
            // Short first wait, so a restarted follower is caught up within a heartbeat or two;
            // the cap keeps a long-dead member from costing more than one attempt a second.
            backoff_min: Duration::from_millis(50),
            backoff_max: Duration::from_secs(1),
            handshake_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(300),
            write_timeout: Duration::from_secs(10),
            max_frame_len: wire::DEFAULT_MAX_FRAME_LEN,
            // Assignments for thousands of Services fit in a few hundred KiB.
            max_speaker_frame_len: 8 << 20,
            max_connections: 4096,
            // A member opens a few connections to each peer; a speaker one per member.
            max_connections_per_peer: 128,
            source: None,
        }
    }
}

/// A byte stream the frames run over: plain TCP, or TLS on either side.
pub trait Io: AsyncRead + AsyncWrite + Send + Sync + Unpin {}

impl<T: AsyncRead + AsyncWrite + Send + Sync + Unpin> Io for T {}

/// A boxed [`Io`], so plain and TLS connections share one code path.
pub type BoxIo = Box<dyn Io>;

/// An open connection on the Raft port: frames over plain TCP or TLS.
pub type Transport = tokio_util::codec::Framed<BoxIo, tokio_util::codec::LengthDelimitedCodec>;

/// Why a connection could not be opened or used.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// TCP connect (or name resolution) failed.
    #[error("cannot connect: {0}")]
    Connect(#[source] io::Error),
    /// Opening the connection took longer than `connect_timeout`.
    #[error("connection attempt timed out after {0:?}")]
    ConnectTimeout(Duration),
    /// The TLS setup for this peer is unusable.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The TLS handshake or the hello exchange failed.
    #[error("handshake failed: {0}")]
    Handshake(#[source] io::Error),
    /// The TLS handshake or the hello did not finish in time.
    #[error("handshake timed out after {0:?}")]
    HandshakeTimeout(Duration),
    /// The peer speaks another protocol version.
    #[error("peer speaks protocol version {theirs}, this member {ours}")]
    Version {
        /// Our version.
        ours: u8,
        /// The peer's.
        theirs: u8,
    },
    /// The peer refused the connection, and said why.
    #[error("peer refused the connection: {0}")]
    Rejected(String),
    /// The peer's certificate does not name an identity allowed on this connection.
    #[error("peer identity refused: {0}")]
    Identity(String),
    /// The peer used more than its share (connections, messages per second).
    #[error("limit exceeded: {0}")]
    Limit(String),
    /// Reading or writing an established connection failed.
    #[error("connection failed: {0}")]
    Io(#[source] io::Error),
    /// The peer closed the connection.
    #[error("connection closed by peer")]
    Closed,
    /// Writing a frame took longer than `write_timeout`.
    #[error("write timed out after {0:?}")]
    WriteTimeout(Duration),
    /// A frame could not be encoded or decoded.
    #[error(transparent)]
    Wire(#[from] wire::WireError),
    /// The peer broke the protocol.
    #[error("protocol violation: {0}")]
    Protocol(String),
    /// A message does not fit in a frame.
    #[error("message of {len} bytes exceeds the {max}-byte frame limit")]
    TooLarge {
        /// The encoded size.
        len: usize,
        /// The frame limit.
        max: usize,
    },
    /// Recent attempts failed; the next is not due yet.
    #[error("{failures} connection attempts failed; next attempt in {remaining:?}")]
    BackingOff {
        /// Failed attempts in a row.
        failures: u32,
        /// Time until the next attempt.
        remaining: Duration,
    },
    /// The connecting task died.
    #[error("connection task failed: {0}")]
    Task(String),
}
