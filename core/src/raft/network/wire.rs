//! What travels on the Raft port: a hello naming the protocol version and the channel, then
//! length-delimited bincode frames of requests and responses.
//!
//! Every enum here is encoded by bincode with its variant index, so variants may only be
//! appended, never reordered or removed; anything else needs a new [`PROTOCOL_VERSION`].

use openraft::error::{InstallSnapshotError, RaftError};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio_util::bytes::Bytes;
use tokio_util::codec::LengthDelimitedCodec;

use crate::names::NodeName;
use crate::raft::identity::ClusterId;
use crate::raft::types::{MemberId, TypeConfig};

/// The first bytes of a hello and of its reply; a peer that sends anything else is not ironlb.
pub const MAGIC: [u8; 3] = *b"ILB";

/// The version of the Raft channel's protocol, sent as the byte after [`MAGIC`]. 3: snapshots
/// travel in the codec's format 2 ([`crate::codec`]); a member of version 2 would fail to read
/// them, so the two refuse each other at the hello, by version, instead.
pub const PROTOCOL_VERSION: u8 = 3;

/// The version of the speaker channel's protocol: unchanged since 2, so speakers and members
/// of either release keep their sessions (and the speakers their leases) through an upgrade.
pub const SPEAKER_PROTOCOL_VERSION: u8 = 2;

/// Versions whose hello (and hello reply) body this version reads: the same [`Channel`] and
/// [`HelloReply`] in all of them.
const HELLO_VERSIONS: std::ops::RangeInclusive<u8> = 2..=3;

/// The largest frame either side sends or accepts (snapshot chunks are the biggest).
pub const DEFAULT_MAX_FRAME_LEN: usize = 64 << 20;

/// The largest hello (and hello reply) accepted: read before the peer's channel is admitted, so
/// a stranger costs no more than this.
pub const MAX_HELLO_LEN: usize = 4 << 10;

/// The frame codec of the Raft port.
pub fn codec(max_frame_len: usize) -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .length_field_type::<u32>()
        .max_frame_length(max_frame_len)
        .new_codec()
}

/// What a connection carries, named by the client in its [`Hello`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Channel {
    /// Raft RPCs from member `from` to member `to`.
    Raft {
        /// The sending member.
        from: MemberId,
        /// The member the sender believes it is talking to; a listener that is another member
        /// refuses, so a stale address never delivers votes or entries to the wrong node.
        to: MemberId,
        /// The sender's cluster, if it knows it; a listener of another cluster refuses.
        cluster: Option<ClusterId>,
    },
    /// A speaker's session ([`crate::announce::proto`]).
    Speaker {
        /// The speaker's node.
        node: NodeName,
    },
}

impl Channel {
    /// The protocol version this member speaks on the channel.
    pub fn protocol_version(&self) -> u8 {
        match self {
            Channel::Raft { .. } => PROTOCOL_VERSION,
            Channel::Speaker { .. } => SPEAKER_PROTOCOL_VERSION,
        }
    }
}

/// The first frame of a connection, from the client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hello {
    /// The client's protocol version.
    pub version: u8,
    /// What the connection will carry.
    pub channel: Channel,
}

/// The server's answer to a [`Hello`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum HelloReply {
    /// The server speaks this version and serves the channel.
    Accepted,
    /// The server will not serve this connection, and says why.
    Rejected(String),
}

/// A request or response with the id that pairs them.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Envelope<T> {
    /// Chosen by the client, echoed by the server.
    pub id: u64,
    /// The message.
    pub body: T,
}

/// A Raft RPC from one member to another.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[allow(clippy::large_enum_variant)]
pub enum RaftRequest {
    /// Replicate entries, or a heartbeat.
    AppendEntries(AppendEntriesRequest<TypeConfig>),
    /// Ask for a vote.
    Vote(VoteRequest<MemberId>),
    /// One chunk of a snapshot.
    InstallSnapshot(InstallSnapshotRequest<TypeConfig>),
    /// Does the receiver still follow `leader` in `term`? The leader's check that a quorum
    /// still recognises it, before it grants speakers' leases; answered from the receiver's
    /// current vote, without touching its log.
    ConfirmLeader {
        /// The term the sender leads in.
        term: u64,
        /// The sender.
        leader: MemberId,
    },
}

impl RaftRequest {
    /// The RPC's name, for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            RaftRequest::AppendEntries(_) => "append_entries",
            RaftRequest::Vote(_) => "vote",
            RaftRequest::InstallSnapshot(_) => "install_snapshot",
            RaftRequest::ConfirmLeader { .. } => "confirm_leader",
        }
    }
}

/// The answer to a [`RaftRequest`], of the same variant, carrying what the remote `Raft` returned.
#[derive(Debug, Serialize, Deserialize)]
pub enum RaftResponse {
    /// Answer to [`RaftRequest::AppendEntries`].
    AppendEntries(Result<AppendEntriesResponse<MemberId>, RaftError<MemberId>>),
    /// Answer to [`RaftRequest::Vote`].
    Vote(Result<VoteResponse<MemberId>, RaftError<MemberId>>),
    /// Answer to [`RaftRequest::InstallSnapshot`].
    InstallSnapshot(
        Result<InstallSnapshotResponse<MemberId>, RaftError<MemberId, InstallSnapshotError>>,
    ),
    /// Answer to [`RaftRequest::ConfirmLeader`]: whether the receiver follows that leader.
    ConfirmLeader(bool),
}

impl RaftResponse {
    /// The RPC's name, for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            RaftResponse::AppendEntries(_) => "append_entries",
            RaftResponse::Vote(_) => "vote",
            RaftResponse::InstallSnapshot(_) => "install_snapshot",
            RaftResponse::ConfirmLeader(_) => "confirm_leader",
        }
    }
}

/// A frame that could not be understood.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// The frame does not start with [`MAGIC`].
    #[error("not an ironlb Raft connection (bad magic)")]
    BadMagic,
    /// The frame is shorter than its fixed header.
    #[error("frame too short ({0} bytes)")]
    Truncated(usize),
    /// The payload is not valid bincode for the expected type.
    #[error("cannot decode {what}: {source}")]
    Decode {
        /// The expected type.
        what: &'static str,
        /// Why bincode refused.
        source: bincode::error::DecodeError,
    },
    /// The payload decoded but left bytes over, so the peer meant another type.
    #[error("cannot decode {what}: {extra} trailing bytes")]
    TrailingBytes {
        /// The expected type.
        what: &'static str,
        /// How many bytes were left.
        extra: usize,
    },
    /// A value could not be encoded.
    #[error("cannot encode {what}: {source}")]
    Encode {
        /// The type being encoded.
        what: &'static str,
        /// Why bincode refused.
        source: bincode::error::EncodeError,
    },
}

/// bincode's standard configuration with a decode limit, so a forged length prefix inside a frame
/// cannot make the decoder reserve more than a frame can hold.
type Config = bincode::config::Configuration<
    bincode::config::LittleEndian,
    bincode::config::Varint,
    bincode::config::Limit<DEFAULT_MAX_FRAME_LEN>,
>;

fn config() -> Config {
    bincode::config::standard().with_limit::<DEFAULT_MAX_FRAME_LEN>()
}

/// Encode a message as a frame payload.
pub fn encode<T: Serialize>(what: &'static str, value: &T) -> Result<Bytes, WireError> {
    bincode::serde::encode_to_vec(value, config())
        .map(Bytes::from)
        .map_err(|source| WireError::Encode { what, source })
}

/// Decode a frame payload, refusing trailing bytes.
pub fn decode<T: DeserializeOwned>(what: &'static str, frame: &[u8]) -> Result<T, WireError> {
    let (value, read) = bincode::serde::decode_from_slice(frame, config())
        .map_err(|source| WireError::Decode { what, source })?;
    if read != frame.len() {
        return Err(WireError::TrailingBytes {
            what,
            extra: frame.len() - read,
        });
    }
    Ok(value)
}

/// The fixed header of hellos and their replies: magic, then the version byte, readable by every
/// version so that a mismatch is reported rather than misparsed.
fn with_header(version: u8, body: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(MAGIC.len() + 1 + body.len());
    out.extend_from_slice(&MAGIC);
    out.push(version);
    out.extend_from_slice(body);
    Bytes::from(out)
}

fn split_header(frame: &[u8]) -> Result<(u8, &[u8]), WireError> {
    if frame.len() < MAGIC.len() + 1 {
        return Err(WireError::Truncated(frame.len()));
    }
    let (magic, rest) = frame.split_at(MAGIC.len());
    if magic != MAGIC {
        return Err(WireError::BadMagic);
    }
    Ok((rest[0], &rest[1..]))
}

impl Hello {
    /// The hello frame.
    pub fn encode(&self) -> Result<Bytes, WireError> {
        let body = encode("hello", &self.channel)?;
        Ok(with_header(self.version, &body))
    }

    /// Read a hello frame. A version whose hello this version cannot read is returned with
    /// `channel: None`, since its body may mean something else; whether the version suits the
    /// channel is the server's call ([`Channel::protocol_version`]).
    pub fn decode(frame: &[u8]) -> Result<(u8, Option<Channel>), WireError> {
        let (version, body) = split_header(frame)?;
        if !HELLO_VERSIONS.contains(&version) {
            return Ok((version, None));
        }
        Ok((version, Some(decode("hello", body)?)))
    }
}

impl HelloReply {
    /// The reply frame, stamped with the Raft channel's version.
    pub fn encode(&self) -> Result<Bytes, WireError> {
        self.encode_as(PROTOCOL_VERSION)
    }

    /// The reply frame, stamped with `version`: the version of the hello it answers, which
    /// is the one the client checks.
    pub fn encode_as(&self, version: u8) -> Result<Bytes, WireError> {
        let body = encode("hello reply", self)?;
        Ok(with_header(version, &body))
    }

    /// Read a reply frame: the server's version, and its answer when this version reads it.
    pub fn decode(frame: &[u8]) -> Result<(u8, Option<HelloReply>), WireError> {
        let (version, body) = split_header(frame)?;
        if !HELLO_VERSIONS.contains(&version) {
            return Ok((version, None));
        }
        Ok((version, Some(decode("hello reply", body)?)))
    }
}
