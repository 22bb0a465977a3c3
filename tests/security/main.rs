//! The control plane is closed to strangers: real `ironlb controller` processes with TLS, and
//! clients, speakers and peers that are not who they say, or say too much.

use std::path::Path;
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use ironlb::announce::proto::{Heartbeat, ToController, ToSpeaker};
use ironlb::api::client::{AdminClient, Body, ClientError, Credentials};
use ironlb::api::views::Status;
use ironlb::auth::pki::SigningRequest;
use ironlb::auth::{Principal, Role};
use ironlb::k8s::certs::{NodeCertBootstrap, NodeCertRequest, NODE_CERT_PATH};
use ironlb::k8s::token_review::{NODE_NAME_EXTRA, POD_NAME_EXTRA};
use ironlb::raft::identity::ClusterId;
use ironlb::raft::network::wire::{self, Channel};
use ironlb::raft::network::{open_channel, NetworkConfig, TlsConfig, TransportError};
use ironlb_lab::cluster::{pool_yaml, put_config, service_yaml, Cluster};
use ironlb_lab::kube_api::{KubeApi, TokenHolder, API_AUDIENCE};
use ironlb_lab::pki::Pki;
use reqwest::Method;

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_ironlb"))
}

async fn tls_cluster(n: usize, extra: &[&str]) -> Cluster {
    let mut c = Cluster::new(bin()).with_tls();
    for _ in 0..n {
        c.add_proc();
    }
    c.start_all(extra).await;
    c
}

fn pki(c: &Cluster) -> &Pki {
    c.pki.as_ref().expect("a TLS cluster")
}

fn client(c: &Cluster, creds: &Credentials) -> AdminClient {
    AdminClient::with_credentials(
        c.procs.iter().map(|p| p.admin.clone()).collect(),
        Duration::from_secs(5),
        creds,
    )
    .unwrap()
}

fn status_of(r: Result<serde_json::Value, ClientError>) -> u16 {
    match r {
        Ok(_) => 200,
        Err(ClientError::Api { status, .. }) => status,
        Err(e) => panic!("no answer: {e}"),
    }
}

async fn allocate(client: &AdminClient, name: &str) -> Result<serde_json::Value, ClientError> {
    client
        .call(
            Method::POST,
            "/v1/services",
            Body::Yaml(service_yaml("sec", name)),
        )
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthenticated_writes_get_401_and_a_read_identitys_writes_403() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    std::fs::write(
        &tokens,
        "admin-token-0123456789 admin ops\nread-token-0123456789 read grafana\n",
    )
    .unwrap();
    let c = tls_cluster(1, &["--admin-tokens", tokens.to_str().unwrap()]).await;
    let pki = pki(&c);
    let ca_only = Credentials {
        ca: Some(pki.ca_path()),
        ..Credentials::default()
    };
    let with_token = |t: &str| Credentials {
        token: Some(t.into()),
        ..ca_only.clone()
    };

    // Nobody: 401 for reads and writes.
    let anon = client(&c, &ca_only);
    assert_eq!(status_of(anon.get("/v1/status").await), 401);
    assert_eq!(status_of(allocate(&anon, "a").await), 401);
    let put = anon
        .call::<serde_json::Value>(
            Method::PUT,
            "/v1/config",
            Body::Yaml(pool_yaml("gw", "192.0.2.1/32")),
        )
        .await;
    assert_eq!(status_of(put), 401);
    // A token nobody issued.
    let wrong = client(&c, &with_token("not-a-token-at-all-0000"));
    assert_eq!(status_of(wrong.get("/v1/status").await), 401);

    // A read identity, by certificate and by token: reads yes, writes 403.
    for creds in [
        pki.client("viewer", Role::Read),
        with_token("read-token-0123456789"),
    ] {
        let reader = client(&c, &creds);
        assert_eq!(status_of(reader.get("/v1/status").await), 200);
        assert_eq!(status_of(reader.get("/v1/services").await), 200);
        assert_eq!(status_of(allocate(&reader, "b").await), 403);
        let delete = reader
            .call::<serde_json::Value>(Method::DELETE, "/v1/members/1", Body::Empty)
            .await;
        assert_eq!(status_of(delete), 403);
    }

    // An admin, by certificate and by token.
    put_config(&c.client(), &pool_yaml("public", "192.0.2.0/28")).await;
    assert_eq!(status_of(allocate(&c.client(), "c").await), 200);
    let ops = client(&c, &with_token("admin-token-0123456789"));
    assert_eq!(status_of(allocate(&ops, "d").await), 200);

    // A speaker's certificate is no API client.
    let node = pki.node("worker-1");
    let speaker = client(
        &c,
        &Credentials {
            ca: Some(node.ca.clone()),
            cert: Some((node.cert.clone(), node.key.clone())),
            token: None,
        },
    );
    assert_eq!(status_of(speaker.get("/v1/status").await), 403);

    // A certificate of another CA does not get past the handshake.
    let rogue_ca = Pki::new("rogue");
    let rogue = rogue_ca.client("mallory", Role::Admin);
    let mallory = client(
        &c,
        &Credentials {
            ca: Some(pki.ca_path()),
            ..rogue
        },
    );
    assert!(matches!(
        mallory.get::<Status>("/v1/status").await,
        Err(ClientError::NoMember { .. })
    ));

    // Monitoring stays open, and says nothing secret.
    let http = ca_only.http_client(Duration::from_secs(5)).unwrap();
    for path in ["/metrics", "/healthz", "/readyz"] {
        let r = http
            .get(format!("https://{}{path}", c.procs[0].admin))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{path}");
        let body = r.text().await.unwrap();
        assert!(!body.contains("token-0123456789"), "{path}: {body}");
    }
    // Nothing answers in plaintext.
    let plain = reqwest::Client::new()
        .get(format!("http://{}/v1/status", c.procs[0].admin))
        .send()
        .await;
    assert!(plain.map(|r| !r.status().is_success()).unwrap_or(true));
}

/// Opens a speaker session with `tls` claiming `node`, heartbeats, and returns the first lease
/// and assignment answers (or the refusal).
async fn speaker_session(
    raft_addr: &str,
    tls: &TlsConfig,
    node: &str,
) -> Result<Vec<ToSpeaker>, TransportError> {
    let client = tls.client().unwrap();
    let mut t = open_channel(
        raft_addr,
        Channel::Speaker {
            node: node.parse().unwrap(),
        },
        Some(&client),
        &NetworkConfig::default(),
    )
    .await?;
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut seq = 0;
    while Instant::now() < deadline && got.len() < 4 {
        seq += 1;
        let hb = ToController::Heartbeat(Heartbeat {
            seq,
            want_full: true,
            labels: [("kubernetes.io/hostname".to_string(), node.to_string())].into(),
            ..Heartbeat::default()
        });
        t.send(wire::encode("heartbeat", &hb).unwrap())
            .await
            .map_err(TransportError::Io)?;
        while let Ok(Some(Ok(frame))) =
            tokio::time::timeout(Duration::from_millis(200), t.next()).await
        {
            got.push(wire::decode::<ToSpeaker>("answer", &frame).unwrap());
        }
    }
    Ok(got)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn speakers_act_only_for_their_own_node_and_receive_only_their_own_bgp_passwords() {
    let c = tls_cluster(1, &[]).await;
    let pki = pki(&c);
    let leader = &c.procs[c.leader().await];
    let secret = "s3cret-md5-key-only-for-a";
    put_config(
        &c.client(),
        &format!(
            "{}---
apiVersion: ironlb.io/v1beta1
kind: BGPPeer
metadata: {{name: for-a}}
spec:
  myASN: 64512
  peerASN: 64513
  peerAddress: 192.0.2.254
  password: {secret}
  nodeSelectors: [{{matchLabels: {{kubernetes.io/hostname: node-a}}}}]
",
            pool_yaml("public", "192.0.2.0/28")
        ),
    )
    .await;

    // A speaker certificate claiming another node's name is refused.
    let b = pki.node("node-b");
    match speaker_session(&leader.raft, &b, "node-a").await {
        Err(TransportError::Rejected(why)) => {
            assert!(
                why.contains("node/node-b cannot open a speaker session for node node-a"),
                "{why}"
            )
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    // A member's certificate is not a speaker's.
    match speaker_session(&leader.raft, &pki.member(1), "node-a").await {
        Err(TransportError::Rejected(_)) => {}
        other => panic!("expected a refusal, got {other:?}"),
    }
    // node-b's own session: leased, and its assignment names no peer of node-a's.
    let answers = speaker_session(&leader.raft, &b, "node-b").await.unwrap();
    assert!(
        answers.iter().any(|a| matches!(a, ToSpeaker::Lease { .. })),
        "{answers:?}"
    );
    let text = format!("{answers:?}");
    assert!(!text.contains(secret) && !text.contains("for-a"), "{text}");
    for a in &answers {
        if let ToSpeaker::Assignment(a) = a {
            for (_, p) in a.peers.iter().flatten() {
                assert!(p.password.is_none());
            }
        }
    }
    // node-a's own session does get it: the filter above is by node, not a blanket refusal.
    let a = pki.node("node-a");
    let answers = speaker_session(&leader.raft, &a, "node-a").await.unwrap();
    let passwords: Vec<String> = answers
        .iter()
        .filter_map(|a| match a {
            ToSpeaker::Assignment(a) => a.peers.clone(),
            _ => None,
        })
        .flatten()
        .filter_map(|(_, p)| p.password.map(|p| p.expose().to_owned()))
        .collect();
    assert!(
        !passwords.is_empty() && passwords.iter().all(|p| p == secret),
        "{answers:?}"
    );
    // The API shows it redacted, and no member logged it.
    let config: serde_json::Value = c.client().get("/v1/config").await.unwrap();
    assert!(!config.to_string().contains(secret), "{config}");
    for p in &c.procs {
        let log = std::fs::read_to_string(&p.log).unwrap();
        assert!(!log.contains(secret), "member {} logged the password", p.id);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strangers_cannot_speak_raft() {
    let c = tls_cluster(3, &[]).await;
    let pki = pki(&c);
    put_config(&c.client(), &pool_yaml("public", "192.0.2.0/28")).await;
    assert_eq!(status_of(allocate(&c.client(), "kept").await), 200);
    let leader = c.leader().await;
    let before: Status = c.procs[leader].client().get("/v1/status").await.unwrap();
    let target = &c.procs[(leader + 1) % 3];
    let raft_channel = |from: u64, cluster: Option<ClusterId>| Channel::Raft {
        from,
        to: target.id,
        cluster,
    };
    let net = NetworkConfig::default();

    // A speaker's certificate opening a Raft connection.
    let node = pki.node("worker-1").client().unwrap();
    let r = open_channel(&target.raft, raft_channel(1, None), Some(&node), &net).await;
    assert!(
        matches!(&r, Err(TransportError::Rejected(why)) if why.contains("only members speak Raft")),
        "{:?}",
        r.err()
    );
    // A member certificate of another seat than the id it claims.
    let three = pki.member(3).client().unwrap();
    let r = open_channel(&target.raft, raft_channel(1, None), Some(&three), &net).await;
    assert!(
        matches!(r, Err(TransportError::Rejected(_))),
        "{:?}",
        r.err()
    );
    // A member of another cluster (same CA, right seat): refused by its cluster id.
    let seat = pki.member(target.id % 3 + 1).client().unwrap();
    let other = ClusterId::generate().unwrap();
    let r = open_channel(
        &target.raft,
        raft_channel(target.id % 3 + 1, Some(other)),
        Some(&seat),
        &net,
    )
    .await;
    assert!(
        matches!(&r, Err(TransportError::Rejected(why)) if why.contains("cluster")),
        "{:?}",
        r.err()
    );
    // No certificate at all: a forged AppendEntries with a far higher term never gets past
    // the handshake.
    let tcp = tokio::net::TcpStream::connect(&target.raft).await.unwrap();
    let mut framed = tokio_util::codec::Framed::new(tcp, wire::codec(1 << 20));
    let hello = wire::Hello {
        version: wire::PROTOCOL_VERSION,
        channel: raft_channel(target.id % 3 + 1, None),
    };
    let _ = framed.send(hello.encode().unwrap()).await;
    let answer = tokio::time::timeout(Duration::from_secs(5), framed.next()).await;
    assert!(
        !matches!(answer, Ok(Some(Ok(ref f))) if wire::HelloReply::decode(f).map(|r| r.1 == Some(wire::HelloReply::Accepted)).unwrap_or(false)),
        "a plaintext peer was accepted"
    );

    // The cluster did not notice: same leader, same term, the allocation is there.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after: Status = c.procs[leader].client().get("/v1/status").await.unwrap();
    assert_eq!((after.term, after.leader), (before.term, before.leader));
    let r: serde_json::Value = c
        .client()
        .get("/v1/services/sec/kept")
        .await
        .expect("the allocation survives");
    assert!(
        r["addresses"].as_array().is_some_and(|a| !a.is_empty()),
        "{r}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_member_restarted_with_an_empty_volume_rejoins_and_forms_no_second_cluster() {
    let mut c = tls_cluster(3, &[]).await;
    put_config(&c.client(), &pool_yaml("public", "192.0.2.0/28")).await;
    for name in ["a", "b", "c"] {
        assert_eq!(status_of(allocate(&c.client(), name).await), 200);
    }
    // Member 1 (the one that bootstrapped) loses its volume and starts as a StatefulSet
    // ordinal 0 does: allowed to bootstrap, told the others.
    c.procs[0].kill();
    std::fs::remove_dir_all(&c.procs[0].dir).unwrap();
    let others: Vec<String> = c.procs[1..].iter().map(|p| p.admin.clone()).collect();
    c.procs[0].start(&["--bootstrap".into(), "--join".into(), others.join(",")]);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let s = c.procs[0].client().get::<Status>("/v1/status").await;
        if let Ok(s) = s {
            if s.id != 1 && s.voters == 3 && s.leader.is_some() {
                // Its certificate names seat 1; its new id is seat 1's next.
                assert_eq!(s.id, 1 + ironlb::auth::principal::SEAT_STRIDE, "{s:?}");
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "member 1 did not rejoin:\n{}",
            c.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // One cluster, with every allocation, seen from the rejoined member too.
    let services: Vec<serde_json::Value> = c.procs[0].client().get("/v1/services").await.unwrap();
    assert_eq!(services.len(), 3, "{services:?}");
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_hellos_frames_and_bodies_close_the_connection_without_growing_memory() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let c = tls_cluster(1, &[]).await;
    let pki = pki(&c);
    let member = &c.procs[0];
    let pid = member.child.as_ref().unwrap().id();
    put_config(&c.client(), &pool_yaml("public", "192.0.2.0/28")).await;
    let before = rss_kib(pid);

    for _ in 0..20 {
        // A hello announcing a 1 GiB frame, in plaintext and from an authenticated speaker.
        let mut tcp = tokio::net::TcpStream::connect(&member.raft).await.unwrap();
        let _ = tcp.write_all(&(1u32 << 30).to_be_bytes()).await;
        let _ = tcp.write_all(&[0u8; 4096]).await;
        // At most a TLS alert comes back, then the end.
        let mut buf = Vec::new();
        let n = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut buf)).await;
        assert!(
            matches!(n, Ok(Ok(_)) | Ok(Err(_))) && buf.len() < 64,
            "still open: {n:?}"
        );

        // A speaker that announces a 1 GiB frame after its hello.
        let tls = pki.node("worker-1").client().unwrap();
        let mut t = open_channel(
            &member.raft,
            Channel::Speaker {
                node: "worker-1".parse().unwrap(),
            },
            Some(&tls),
            &NetworkConfig::default(),
        )
        .await
        .unwrap();
        let io = t.get_mut();
        let _ = io.write_all(&(1u32 << 30).to_be_bytes()).await;
        let _ = io.write_all(&[0u8; 65536]).await;
        let _ = io.flush().await;
        let next = tokio::time::timeout(Duration::from_secs(5), t.next()).await;
        assert!(
            matches!(next, Ok(None) | Ok(Some(Err(_)))),
            "still open: {next:?}"
        );

        // An admin API body far over the limit: 413, or (when the server hangs up while the
        // client is still sending) a closed connection.
        let big = "x".repeat(16 << 20);
        let r = c
            .client()
            .call::<serde_json::Value>(Method::PUT, "/v1/config", Body::Yaml(big))
            .await;
        match r {
            Err(ClientError::Api { status, .. }) => assert_eq!(status, 413),
            Err(ClientError::NoMember { .. }) => {}
            other => panic!("an oversized body was taken: {other:?}"),
        }
    }
    let after = rss_kib(pid);
    assert!(
        after < before + 64 * 1024,
        "memory grew from {before} KiB to {after} KiB"
    );
    // Still serving.
    assert_eq!(status_of(allocate(&c.client(), "after").await), 200);
}

mod contexts;
mod kubernetes;

use kubernetes::{holder, SPEAKERS};
