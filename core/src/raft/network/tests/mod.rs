//! Network tests on 127.0.0.1: real `openraft::Raft` members over an in-memory store.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::net::{IpAddr, Ipv4Addr};
use std::ops::RangeBounds;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use openraft::error::RPCError;
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, VoteRequest,
};
use openraft::storage::{LogFlushed, LogState, RaftLogStorage, RaftStateMachine};
use openraft::{
    CommittedLeaderId, EntryPayload, RaftLogReader, RaftSnapshotBuilder, SnapshotPolicy,
    StorageError,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_util::codec::Framed;

use super::wire::{self, Channel, Envelope, Hello, HelloReply, RaftRequest};
use super::*;
use crate::raft::command::{Command, Response};
use crate::raft::types::{
    Entry, LogId, Member, MemberId, Raft, Snapshot, SnapshotMeta, StoredMembership, TypeConfig,
    Vote,
};

mod store;
use store::*;

// ---------------------------------------------------------------------------------------------
// Members and helpers.

fn test_config() -> NetworkConfig {
    NetworkConfig {
        connect_timeout: Duration::from_millis(500),
        backoff_min: Duration::from_millis(20),
        backoff_max: Duration::from_millis(100),
        snapshot_timeout: Duration::from_secs(5),
        handshake_timeout: Duration::from_secs(2),
        ..NetworkConfig::default()
    }
}

fn raft_config() -> Arc<openraft::Config> {
    let config = openraft::Config {
        cluster_name: "network-test".into(),
        heartbeat_interval: 50,
        election_timeout_min: 200,
        election_timeout_max: 400,
        // Tiny chunks, so a snapshot travels as many InstallSnapshot RPCs.
        snapshot_max_chunk_size: 16,
        max_in_snapshot_log_to_keep: 0,
        purge_batch_size: 1,
        snapshot_policy: SnapshotPolicy::Never,
        ..Default::default()
    };
    Arc::new(config.validate().unwrap())
}

/// A Raft member serving on 127.0.0.1, with its store.
struct TestMember {
    id: MemberId,
    raft: Raft,
    sm: MemSm,
    addr: String,
    stop: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<()>>,
}

impl TestMember {
    async fn start(
        id: MemberId,
        tls_server: Option<TlsServer>,
        tls_client: Option<TlsClient>,
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let sm = MemSm::default();
        let network = NetworkFactory::new(id, test_config(), tls_client);
        let raft = Raft::new(id, raft_config(), network, MemLog::default(), sm.clone())
            .await
            .unwrap();
        let mut member = TestMember {
            id,
            raft,
            sm,
            addr,
            stop: None,
            server: None,
        };
        member.serve(listener, tls_server);
        member
    }

    fn serve(&mut self, listener: TcpListener, tls: Option<TlsServer>) {
        let (stop, stopped) = oneshot::channel::<()>();
        let server = RaftServer::new(self.raft.clone(), tls, test_config());
        self.stop = Some(stop);
        self.server = Some(tokio::spawn(server.run(listener, async move {
            let _ = stopped.await;
        })));
    }

    async fn stop_server(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.unwrap();
        }
    }

    fn member(&self) -> Member {
        Member {
            raft_addr: self.addr.clone(),
            admin_addr: String::new(),
        }
    }
}

fn option() -> RPCOption {
    RPCOption::new(Duration::from_secs(2))
}

fn vote_request() -> VoteRequest<MemberId> {
    VoteRequest::new(Vote::new(1, 1), None)
}

async fn client_for(from: MemberId, to: &TestMember, tls: Option<TlsClient>) -> NetworkConnection {
    NetworkFactory::new(from, test_config(), tls)
        .new_client(to.id, &to.member())
        .await
}

// ---------------------------------------------------------------------------------------------
// Wire format.

/// Sends `hello` on a new connection to `member`; returns the reply's version and answer.
async fn hello_and_reply(member: &TestMember, hello: &Hello) -> (u8, Option<HelloReply>) {
    let stream = TcpStream::connect(member.addr.as_str()).await.unwrap();
    let mut framed = Framed::new(stream, wire::codec(1024));
    framed.send(hello.encode().unwrap()).await.unwrap();
    let reply = framed.next().await.unwrap().unwrap();
    HelloReply::decode(&reply).unwrap()
}

#[test]
fn hello_round_trips_and_reports_foreign_versions() {
    let hello = Hello {
        version: wire::PROTOCOL_VERSION,
        channel: Channel::Raft {
            from: 1,
            to: 2,
            cluster: None,
        },
    };
    let frame = hello.encode().unwrap();
    assert_eq!(&frame[..4], b"ILB\x03");
    assert_eq!(
        Hello::decode(&frame).unwrap(),
        (
            3,
            Some(Channel::Raft {
                from: 1,
                to: 2,
                cluster: None
            })
        )
    );

    let mut future = frame.to_vec();
    future[3] = 9;
    future.extend_from_slice(b"whatever version 9 sends");
    assert_eq!(Hello::decode(&future).unwrap(), (9, None));

    assert!(matches!(
        Hello::decode(b"GET / HTTP/1.1"),
        Err(wire::WireError::BadMagic)
    ));
    assert!(matches!(
        Hello::decode(b"IL"),
        Err(wire::WireError::Truncated(2))
    ));

    let reply = HelloReply::Rejected("no".into()).encode().unwrap();
    assert_eq!(
        HelloReply::decode(&reply).unwrap(),
        (
            wire::PROTOCOL_VERSION,
            Some(HelloReply::Rejected("no".into()))
        )
    );
}

#[test]
fn requests_with_real_commands_round_trip() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/standalone/pools.yaml");
    let (_, config) = crate::config::load_config(&path).unwrap();
    assert!(!config.pools.is_empty());
    let leader = CommittedLeaderId::new(3, 1);
    let entries = vec![
        Entry {
            log_id: LogId::new(leader, 7),
            payload: EntryPayload::Normal(Command::SetConfig {
                config: Box::new(config.clone()),
            }),
        },
        Entry {
            log_id: LogId::new(leader, 8),
            payload: EntryPayload::Normal(Command::Unreserve {
                address: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7)),
            }),
        },
    ];
    let request = Envelope {
        id: 42,
        body: RaftRequest::AppendEntries(AppendEntriesRequest {
            vote: Vote::new_committed(3, 1),
            prev_log_id: Some(LogId::new(leader, 6)),
            entries: entries.clone(),
            leader_commit: Some(LogId::new(leader, 6)),
        }),
    };
    let frame = wire::encode("request", &request).unwrap();
    let back: Envelope<RaftRequest> = wire::decode("request", &frame).unwrap();
    assert_eq!(back.id, 42);
    let RaftRequest::AppendEntries(back) = back.body else {
        panic!("wrong variant");
    };
    assert_eq!(back.entries, entries);

    // Trailing bytes mean the peer sent another type: refused.
    let mut longer = frame.to_vec();
    longer.push(0);
    assert!(matches!(
        wire::decode::<Envelope<RaftRequest>>("request", &longer),
        Err(wire::WireError::TrailingBytes { extra: 1, .. })
    ));
}

// ---------------------------------------------------------------------------------------------
// RPCs against a real Raft.

#[tokio::test]
async fn each_rpc_round_trips_through_raft_network() {
    let member = TestMember::start(2, None, None).await;
    let mut client = client_for(1, &member, None).await;

    let vote = client.vote(vote_request(), option()).await.unwrap();
    assert!(vote.vote_granted, "{vote:?}");
    assert_eq!(vote.vote, Vote::new(1, 1));

    let leader = CommittedLeaderId::new(1, 1);
    let append = client
        .append_entries(
            AppendEntriesRequest {
                vote: Vote::new_committed(1, 1),
                prev_log_id: None,
                entries: vec![Entry {
                    log_id: LogId::new(leader, 0),
                    payload: EntryPayload::Blank,
                }],
                leader_commit: None,
            },
            option(),
        )
        .await
        .unwrap();
    assert_eq!(append, AppendEntriesResponse::Success);

    let addresses = vec![IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1))];
    let data = encode_state(&addresses);
    let meta = SnapshotMeta {
        last_log_id: Some(LogId::new(leader, 5)),
        last_membership: StoredMembership::default(),
        snapshot_id: "from-test".into(),
    };
    // Two chunks, so the follower's stream reassembly is exercised too.
    let (first, second) = data.split_at(data.len() / 2);
    for (offset, chunk, done) in [(0, first, false), (first.len(), second, true)] {
        let response = client
            .install_snapshot(
                InstallSnapshotRequest {
                    vote: Vote::new_committed(1, 1),
                    meta: meta.clone(),
                    offset: offset as u64,
                    data: chunk.to_vec(),
                    done,
                },
                option(),
            )
            .await
            .unwrap();
        assert_eq!(response.vote, Vote::new_committed(1, 1));
    }
    member
        .raft
        .wait(Some(Duration::from_secs(2)))
        .snapshot(LogId::new(leader, 5), "snapshot installed")
        .await
        .unwrap();
    assert_eq!(member.sm.addresses(), addresses);
}

#[tokio::test]
async fn remote_raft_errors_come_back_as_remote_errors() {
    let member = TestMember::start(2, None, None).await;
    let mut client = client_for(1, &member, None).await;
    client.vote(vote_request(), option()).await.unwrap();

    member.raft.shutdown().await.unwrap();
    match client.vote(vote_request(), option()).await {
        Err(RPCError::RemoteError(e)) => {
            assert_eq!(e.target, 2);
            assert_eq!(e.target_node, Some(member.member()));
            assert!(e.source.fatal().is_some(), "{e}");
        }
        other => panic!("expected a remote error, got {other:?}"),
    }
}

#[tokio::test]
async fn three_members_replicate_and_ship_snapshots_in_chunks() {
    let mut members = Vec::new();
    for id in 1..=3 {
        members.push(TestMember::start(id, None, None).await);
    }
    let voters: BTreeMap<MemberId, Member> = members.iter().map(|m| (m.id, m.member())).collect();
    members[0].raft.initialize(voters).await.unwrap();
    let leader_id = members[0]
        .raft
        .wait(Some(Duration::from_secs(5)))
        .metrics(|m| m.current_leader.is_some(), "a leader")
        .await
        .unwrap()
        .current_leader
        .unwrap();
    let leader = members.iter().find(|m| m.id == leader_id).unwrap();

    let addresses: Vec<IpAddr> = (1..=20)
        .map(|i| IpAddr::V4(Ipv4Addr::new(192, 0, 2, i)))
        .collect();
    for &address in &addresses {
        leader
            .raft
            .client_write(Command::Unreserve { address })
            .await
            .unwrap();
    }
    let last = leader.raft.metrics().borrow().last_applied.unwrap();
    for m in &members {
        m.raft
            .wait(Some(Duration::from_secs(5)))
            .applied_index(Some(last.index), "replicated")
            .await
            .unwrap();
        assert_eq!(m.sm.addresses(), addresses, "member {}", m.id);
    }

    // With the log purged behind a snapshot, a new member can only catch up from the snapshot,
    // which at 16 bytes a chunk takes several InstallSnapshot RPCs.
    leader.raft.trigger().snapshot().await.unwrap();
    leader
        .raft
        .wait(Some(Duration::from_secs(5)))
        .purged(Some(last), "log purged")
        .await
        .unwrap();
    let learner = TestMember::start(4, None, None).await;
    leader
        .raft
        .add_learner(4, learner.member(), true)
        .await
        .unwrap();
    learner
        .raft
        .wait(Some(Duration::from_secs(5)))
        .applied_index_at_least(Some(last.index), "learner caught up")
        .await
        .unwrap();
    assert_eq!(learner.sm.addresses(), addresses);
    assert_eq!(learner.raft.metrics().borrow().snapshot, Some(last));
    assert!(encode_state(&addresses).len() > 16 * 3);

    for m in members.iter().chain([&learner]) {
        m.raft.shutdown().await.unwrap();
    }
}

// ---------------------------------------------------------------------------------------------
// Failures.

#[tokio::test]
async fn reconnects_after_the_server_restarts_on_the_same_port() {
    let mut member = TestMember::start(2, None, None).await;
    let mut client = client_for(1, &member, None).await;
    client.vote(vote_request(), option()).await.unwrap();

    member.stop_server().await;
    let started = Instant::now();
    match client.vote(vote_request(), option()).await {
        Err(RPCError::Unreachable(_)) => {}
        other => panic!("expected Unreachable while the server is down, got {other:?}"),
    }
    // Within the backoff, no new attempt is made.
    match client.vote(vote_request(), option()).await {
        Err(RPCError::Unreachable(e)) => assert!(e.to_string().contains("next attempt"), "{e}"),
        other => panic!("expected Unreachable while backing off, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(1));

    let listener = TcpListener::bind(member.addr.as_str()).await.unwrap();
    member.serve(listener, None);
    tokio::time::sleep(test_config().backoff_max).await;
    let vote = client.vote(vote_request(), option()).await.unwrap();
    assert!(vote.vote_granted);

    // And the reopened connection is kept: a server restart without client traffic in between
    // is noticed before the next request is written.
    member.stop_server().await;
    let listener = TcpListener::bind(member.addr.as_str()).await.unwrap();
    member.serve(listener, None);
    client.vote(vote_request(), option()).await.unwrap();
}

#[tokio::test]
async fn an_address_nobody_listens_on_is_unreachable_at_once() {
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        listener.local_addr().unwrap().port()
    };
    let node = Member {
        raft_addr: format!("127.0.0.1:{port}"),
        admin_addr: String::new(),
    };
    let mut client = NetworkFactory::new(1, test_config(), None)
        .new_client(2, &node)
        .await;
    let started = Instant::now();
    let result = client.vote(vote_request(), option()).await;
    assert!(
        matches!(result, Err(RPCError::Unreachable(_))),
        "{result:?}"
    );
    assert!(started.elapsed() < test_config().connect_timeout);
}

#[tokio::test]
async fn a_peer_that_never_answers_is_bounded_by_the_timeouts() {
    // Accepts, then says nothing: the hello is never answered.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let node = Member {
        raft_addr: listener.local_addr().unwrap().to_string(),
        admin_addr: String::new(),
    };
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            held.push(stream);
        }
    });
    let config = test_config();
    let mut client = NetworkFactory::new(1, config.clone(), None)
        .new_client(2, &node)
        .await;

    // A deadline shorter than the connect timeout: the RPC gives up, the attempt goes on.
    let started = Instant::now();
    let short = RPCOption::new(Duration::from_millis(100));
    let result = client.vote(vote_request(), short).await;
    assert!(matches!(result, Err(RPCError::Timeout(_))), "{result:?}");
    assert!(started.elapsed() < Duration::from_millis(400));

    // The attempt itself ends at the connect timeout, as Unreachable.
    let result = client.vote(vote_request(), option()).await;
    assert!(
        matches!(result, Err(RPCError::Unreachable(_))),
        "{result:?}"
    );
    let elapsed = started.elapsed();
    assert!(
        elapsed >= config.connect_timeout && elapsed < config.connect_timeout * 2,
        "{elapsed:?}"
    );
    silent.abort();
}

#[tokio::test]
async fn garbage_does_not_crash_the_server() {
    let member = TestMember::start(2, None, None).await;

    async fn closed_by_server(mut stream: TcpStream) {
        let mut buf = [0u8; 64];
        let read = tokio::time::timeout(Duration::from_secs(2), async {
            loop {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => continue,
                }
            }
        })
        .await;
        assert!(read.is_ok(), "server kept a garbage connection open");
    }

    // Not even a frame: an HTTP request is a 1.2 GB length prefix.
    let mut stream = TcpStream::connect(member.addr.as_str()).await.unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    closed_by_server(stream).await;

    // A frame, but no hello.
    let stream = TcpStream::connect(member.addr.as_str()).await.unwrap();
    let mut framed = Framed::new(stream, wire::codec(1024));
    framed
        .send(tokio_util::bytes::Bytes::from_static(b"\x00\x01\x02"))
        .await
        .unwrap();
    closed_by_server(framed.into_inner()).await;

    // A good hello, then a frame that is not a request.
    let stream = TcpStream::connect(member.addr.as_str()).await.unwrap();
    let mut framed = Framed::new(stream, wire::codec(1024));
    let hello = Hello {
        version: wire::PROTOCOL_VERSION,
        channel: Channel::Raft {
            from: 1,
            to: 2,
            cluster: None,
        },
    };
    framed.send(hello.encode().unwrap()).await.unwrap();
    let reply = framed.next().await.unwrap().unwrap();
    assert_eq!(
        HelloReply::decode(&reply).unwrap().1,
        Some(HelloReply::Accepted)
    );
    framed
        .send(tokio_util::bytes::Bytes::from_static(&[0xff; 40]))
        .await
        .unwrap();
    closed_by_server(framed.into_inner()).await;

    // A hello for another member is refused with a reason.
    let stream = TcpStream::connect(member.addr.as_str()).await.unwrap();
    let mut framed = Framed::new(stream, wire::codec(1024));
    let hello = Hello {
        version: wire::PROTOCOL_VERSION,
        channel: Channel::Raft {
            from: 1,
            to: 3,
            cluster: None,
        },
    };
    framed.send(hello.encode().unwrap()).await.unwrap();
    let reply = framed.next().await.unwrap().unwrap();
    assert!(matches!(
        HelloReply::decode(&reply).unwrap().1,
        Some(HelloReply::Rejected(reason)) if reason.contains("member 2")
    ));

    // A Raft peer of the previous protocol is refused by version, in a reply it can read.
    let hello = Hello {
        version: 2,
        channel: Channel::Raft {
            from: 1,
            to: 2,
            cluster: None,
        },
    };
    let (version, reply) = hello_and_reply(&member, &hello).await;
    assert_eq!(version, 2, "stamped with the client's version");
    assert!(matches!(
        reply,
        Some(HelloReply::Rejected(reason))
            if reason == "protocol version 2 is not supported; this member speaks 3"
    ));
    // A speaker of protocol 2 (the speaker protocol's current version) is not refused by
    // version: upgraded members keep serving speakers that are not upgraded yet.
    let hello = Hello {
        version: wire::SPEAKER_PROTOCOL_VERSION,
        channel: Channel::Speaker {
            node: "node-a".parse().unwrap(),
        },
    };
    let (version, reply) = hello_and_reply(&member, &hello).await;
    assert_eq!(version, 2);
    assert!(
        !matches!(&reply, Some(HelloReply::Rejected(r)) if r.contains("protocol version")),
        "{reply:?}"
    );

    // A frame longer than the limit.
    let mut stream = TcpStream::connect(member.addr.as_str()).await.unwrap();
    stream.write_all(&u32::MAX.to_be_bytes()).await.unwrap();
    closed_by_server(stream).await;

    // The server is still serving.
    let mut client = client_for(1, &member, None).await;
    assert!(
        client
            .vote(vote_request(), option())
            .await
            .unwrap()
            .vote_granted
    );
}

#[tokio::test]
async fn a_client_pointed_at_the_wrong_member_is_refused() {
    let member = TestMember::start(2, None, None).await;
    let mut client = NetworkFactory::new(1, test_config(), None)
        .new_client(3, &member.member())
        .await;
    match client.vote(vote_request(), option()).await {
        Err(RPCError::Unreachable(e)) => assert!(e.to_string().contains("not 3"), "{e}"),
        other => panic!("expected Unreachable, got {other:?}"),
    }
}

mod tls;
