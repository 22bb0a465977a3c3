//! TLS on the Raft port: who is admitted, who is refused, and renewed files.

use super::*;

// ---------------------------------------------------------------------------------------------
// TLS.

// The lab's throwaway CA compiled into these tests: the lab crate depends on this one, so it cannot
// be a dependency of its unit tests.
#[path = "../../../../../lab/src/pki.rs"]
mod lab_pki;
use lab_pki::Pki;

#[tokio::test]
async fn tls_admits_members_of_the_ca_only() {
    let pki = Pki::new("cluster");
    let server_tls = pki.member(2);
    let member = TestMember::start(
        2,
        Some(server_tls.server().unwrap()),
        Some(server_tls.client().unwrap()),
    )
    .await;

    // A member with a certificate from the CA.
    let good = pki.member(1).client().unwrap();
    let mut client = client_for(1, &member, Some(good.clone())).await;
    assert!(
        client
            .vote(vote_request(), option())
            .await
            .unwrap()
            .vote_granted
    );

    // No client certificate.
    let anonymous = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates({
        let mut roots = rustls::RootCertStore::empty();
        roots.add(pki.ca_der()).unwrap();
        roots
    })
    .with_no_client_auth();
    let anonymous = TlsClient::from_config(Arc::new(anonymous));
    let mut client = client_for(1, &member, Some(anonymous)).await;
    let result = client.vote(vote_request(), option()).await;
    assert!(
        matches!(result, Err(RPCError::Unreachable(_))),
        "{result:?}"
    );

    // A certificate from another CA (while trusting the right one for the server).
    let rogue = Pki::new("rogue");
    let rogue_tls = rogue.member(1);
    let (cert, key) = (rogue_tls.cert, rogue_tls.key);
    let impostor = TlsConfig {
        ca: pki.ca_path(),
        cert,
        key,
    }
    .client()
    .unwrap();
    let mut client = client_for(1, &member, Some(impostor)).await;
    let result = client.vote(vote_request(), option()).await;
    assert!(
        matches!(result, Err(RPCError::Unreachable(_))),
        "{result:?}"
    );

    // Plain TCP to a TLS port.
    let mut client = client_for(1, &member, None).await;
    let result = client.vote(vote_request(), option()).await;
    assert!(
        matches!(result, Err(RPCError::Unreachable(_))),
        "{result:?}"
    );

    // The server is still there for members.
    let mut client = client_for(1, &member, Some(good)).await;
    assert!(
        client
            .vote(vote_request(), option())
            .await
            .unwrap()
            .vote_granted
    );
}

#[tokio::test]
async fn the_raft_port_takes_members_only_and_each_as_its_own_seat() {
    let pki = Pki::new("cluster");
    let server_tls = pki.member(2);
    let member = TestMember::start(
        2,
        Some(server_tls.server().unwrap()),
        Some(server_tls.client().unwrap()),
    )
    .await;
    let refused = |r: Result<openraft::raft::VoteResponse<MemberId>, _>| match r {
        Err(RPCError::Unreachable(e)) => e.to_string(),
        other => panic!("expected a refusal, got {other:?}"),
    };

    // Member 1's certificate claiming to be member 3: another seat.
    let one = pki.member(1).client().unwrap();
    let mut client = client_for(3, &member, Some(one.clone())).await;
    let why = refused(client.vote(vote_request(), option()).await);
    assert!(why.contains("seat 1"), "{why}");

    // A speaker's certificate speaking Raft.
    let node = pki.node("worker-1").client().unwrap();
    let mut client = client_for(1, &member, Some(node)).await;
    let why = refused(client.vote(vote_request(), option()).await);
    assert!(why.contains("only members speak Raft"), "{why}");

    // An admin API client's certificate.
    let admin = pki.tls_for(&crate::auth::Principal::Client {
        name: "alice".into(),
        role: crate::auth::Role::Admin,
    });
    let mut client = client_for(1, &member, Some(admin.client().unwrap())).await;
    refused(client.vote(vote_request(), option()).await);

    // Member 1 of a later generation of its seat (it lost its volume) is still member 1's seat.
    let mut client = client_for(1 + crate::auth::principal::SEAT_STRIDE, &member, Some(one)).await;
    assert!(client.vote(vote_request(), option()).await.is_ok());

    // A speaker session under another node's name.
    let node = pki.node("worker-1").client().unwrap();
    let other = open_channel(
        &member.addr,
        Channel::Speaker {
            node: "worker-2".parse().unwrap(),
        },
        Some(&node),
        &test_config(),
    )
    .await;
    assert!(
        matches!(&other, Err(TransportError::Rejected(r)) if r.contains("node/worker-1 cannot open a speaker session for node worker-2")),
        "{:?}",
        other.err()
    );
}

#[tokio::test]
async fn members_refuse_a_server_that_is_not_the_member_dialled() {
    let pki = Pki::new("cluster");
    // A speaker's certificate listening where member 2 should be.
    let fake = pki.node("worker-1");
    let member = TestMember::start(2, Some(fake.server().unwrap()), None).await;
    let mut client = client_for(1, &member, Some(pki.member(1).client().unwrap())).await;
    match client.vote(vote_request(), option()).await {
        Err(RPCError::Unreachable(e)) => assert!(e.to_string().contains("not a member"), "{e}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    // Member 3 listening where member 2 should be.
    let wrong = pki.member(3);
    let member = TestMember::start(2, Some(wrong.server().unwrap()), None).await;
    let mut client = client_for(1, &member, Some(pki.member(1).client().unwrap())).await;
    match client.vote(vote_request(), option()).await {
        Err(RPCError::Unreachable(e)) => {
            assert!(e.to_string().contains("dialled member 2"), "{e}")
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn an_oversized_hello_closes_the_connection() {
    let member = TestMember::start(2, None, None).await;
    let tcp = tokio::net::TcpStream::connect(&member.addr).await.unwrap();
    let mut framed = tokio_util::codec::Framed::new(tcp, wire::codec(1 << 20));
    framed
        .send(tokio_util::bytes::Bytes::from(vec![b'I'; 64 << 10]))
        .await
        .unwrap();
    // The server reads no more than a hello's worth and hangs up.
    let next = tokio::time::timeout(Duration::from_secs(2), framed.next()).await;
    assert!(matches!(next, Ok(None) | Ok(Some(Err(_)))), "{next:?}");
}

#[tokio::test]
async fn tls_clients_refuse_servers_of_another_ca() {
    let rogue = Pki::new("rogue");
    let rogue_tls = rogue.member(2);
    let member = TestMember::start(2, Some(rogue_tls.server().unwrap()), None).await;

    let pki = Pki::new("cluster");
    let client_tls = pki.member(1).client().unwrap();
    let mut client = client_for(1, &member, Some(client_tls)).await;
    match client.vote(vote_request(), option()).await {
        Err(RPCError::Unreachable(e)) => {
            assert!(e.to_string().to_lowercase().contains("certificate"), "{e}")
        }
        other => panic!("expected Unreachable, got {other:?}"),
    }
}

#[test]
fn tls_config_errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let missing = TlsConfig {
        ca: dir.path().join("ca.pem"),
        cert: dir.path().join("cert.pem"),
        key: dir.path().join("key.pem"),
    };
    let err = missing.server().unwrap_err();
    assert!(err.to_string().contains("ca.pem"), "{err}");

    std::fs::write(dir.path().join("ca.pem"), "not a certificate\n").unwrap();
    let err = missing.client().unwrap_err();
    assert!(matches!(err, TlsError::NoCertificate(_)), "{err}");
}

#[tokio::test]
async fn oversized_requests_ask_openraft_for_smaller_batches() {
    let node = Member {
        raft_addr: "127.0.0.1:9".into(),
        admin_addr: String::new(),
    };
    let config = NetworkConfig {
        max_frame_len: 256,
        ..test_config()
    };
    let mut client = NetworkFactory::new(1, config, None)
        .new_client(2, &node)
        .await;
    let leader = CommittedLeaderId::new(1, 1);
    let request = |n: u8| AppendEntriesRequest {
        vote: Vote::new_committed(1, 1),
        prev_log_id: None,
        entries: (0..n)
            .map(|i| Entry {
                log_id: LogId::new(leader, u64::from(i)),
                payload: EntryPayload::Normal(Command::Unreserve {
                    address: IpAddr::V4(Ipv4Addr::new(192, 0, 2, i)),
                }),
            })
            .collect(),
        leader_commit: None,
    };
    match client.append_entries(request(40), option()).await {
        Err(RPCError::PayloadTooLarge(e)) => assert!(e.to_string().contains("entries:20"), "{e}"),
        other => panic!("expected PayloadTooLarge, got {other:?}"),
    }
    // A single entry cannot be split: the RPC fails instead.
    let mut one = request(1);
    one.entries[0].payload = EntryPayload::Normal(Command::AssignOwners {
        moves: (0..100)
            .map(|i| (IpAddr::V4(Ipv4Addr::new(192, 0, 2, i)), None))
            .collect(),
    });
    let result = client.append_entries(one, option()).await;
    assert!(
        matches!(&result, Err(RPCError::Network(e)) if e.to_string().contains("frame limit")),
        "{result:?}"
    );
    // A batch that fits is sent (and finds nobody on port 9).
    let small = client.append_entries(request(1), option()).await;
    assert!(matches!(small, Err(RPCError::Unreachable(_))), "{small:?}");
}
