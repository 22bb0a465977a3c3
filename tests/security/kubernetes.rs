//! In Kubernetes: the CA Secret, member certificates, and speakers' node certificates from
//! ServiceAccount tokens.

use super::*;

pub(super) const SPEAKERS: &str = "system:serviceaccount:ironlb-system:ironlb-speaker";

pub(super) fn holder(user: &str, audience: &str, extra: &[(&str, &str)]) -> TokenHolder {
    TokenHolder {
        username: user.into(),
        audiences: vec![audience.into()],
        extra: extra
            .iter()
            .map(|(k, v)| (k.to_string(), vec![v.to_string()]))
            .collect(),
    }
}

/// Asks `admin` for a node certificate for `node` with `token`; the HTTP status and the
/// certificate.
pub(super) async fn ask_node_cert(
    admin: &str,
    ca: &Path,
    token: Option<&str>,
    node: &str,
) -> (u16, String) {
    let http = Credentials {
        ca: Some(ca.to_owned()),
        cert: None,
        token: None,
    }
    .http_client(Duration::from_secs(5))
    .unwrap();
    let csr = SigningRequest::new(&Principal::Node(node.parse().unwrap())).unwrap();
    let mut req = http
        .post(format!("https://{admin}{NODE_CERT_PATH}"))
        .json(&NodeCertRequest {
            node: node.into(),
            csr: csr.csr_pem,
        });
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (status, text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_kubernetes_members_issue_certificates_from_the_ca_secret_and_speakers_renew_theirs() {
    let api = KubeApi::start().await;
    let (deployer, viewer) = ("deployer-token-0123456789", "viewer-token-0123456789");
    api.add_token(
        deployer,
        holder("system:serviceaccount:ops:deployer", API_AUDIENCE, &[]),
    );
    api.add_token(
        viewer,
        holder("system:serviceaccount:ops:viewer", API_AUDIENCE, &[]),
    );
    // Speakers' projected tokens: n1's names its node (Kubernetes 1.30+), n2's only its pod.
    api.add_token(
        "n1-token",
        holder(SPEAKERS, "ironlb", &[(NODE_NAME_EXTRA, "n1")]),
    );
    api.add_token(
        "n2-token",
        holder(SPEAKERS, "ironlb", &[(POD_NAME_EXTRA, "speaker-b")]),
    );
    api.apply("apiVersion: v1\nkind: Pod\nmetadata: {name: speaker-b, namespace: ironlb-system}\nspec: {nodeName: n2, containers: []}\n");
    // Tokens that prove nothing here: another account's, and the speakers' for the API server.
    api.add_token(
        "other-token",
        holder(
            "system:serviceaccount:ops:viewer",
            "ironlb",
            &[(NODE_NAME_EXTRA, "n1")],
        ),
    );
    api.add_token(
        "api-token",
        holder(SPEAKERS, API_AUDIENCE, &[(NODE_NAME_EXTRA, "n1")]),
    );

    let mut c = Cluster::new(bin());
    let tls_dir = c.dir.path().join("tls-{id}");
    c.args = [
        "--kubernetes",
        "--issue-certificates",
        &format!("--tls-dir={}", tls_dir.display()),
        "--admin-service-account=ops:deployer=admin",
        "--admin-service-account=ops:viewer=read",
        "--node-cert-validity-s=6",
        "--member-cert-validity-s=9",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    c.env = vec![("KUBECONFIG".into(), api.kubeconfig().display().to_string())];
    for _ in 0..3 {
        c.add_proc();
    }
    // Members start together; the first to get there creates the CA, the others read it.
    let first_admin = c.procs[0].admin.clone();
    for (i, p) in c.procs.iter_mut().enumerate() {
        let join = if i == 0 {
            vec!["--bootstrap".to_string()]
        } else {
            vec!["--join".into(), first_admin.clone()]
        };
        p.start(&join);
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    let bundle = loop {
        if let Some(cm) = api.get("v1", "ConfigMap", Some("ironlb-system"), "ironlb-ca") {
            break cm["data"]["ca.pem"].as_str().unwrap().to_owned();
        }
        assert!(Instant::now() < deadline, "no CA published:\n{}", c.logs());
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(api
        .get("v1", "Secret", Some("ironlb-system"), "ironlb-ca")
        .is_some());
    let ca = c.dir.path().join("ca.pem");
    std::fs::write(&ca, &bundle).unwrap();
    let as_deployer = Credentials {
        ca: Some(ca.clone()),
        cert: None,
        token: Some(deployer.into()),
    };
    c.creds = as_deployer.clone();
    for p in &mut c.procs {
        p.creds = as_deployer.clone();
    }
    c.wait_members(3).await;
    for p in &c.procs {
        let own = std::fs::read_to_string(c.dir.path().join(format!("tls-{}/ca.pem", p.id)));
        assert_eq!(own.unwrap(), bundle, "member {} trusts the one CA", p.id);
    }

    // ServiceAccount tokens on the admin API, with the roles they are bound to.
    let with_token = |t: Option<&str>| {
        client(
            &c,
            &Credentials {
                ca: Some(ca.clone()),
                cert: None,
                token: t.map(String::from),
            },
        )
    };
    assert_eq!(
        status_of(with_token(Some(viewer)).get("/v1/status").await),
        200
    );
    assert_eq!(
        status_of(allocate(&with_token(Some(viewer)), "v").await),
        403
    );
    assert_eq!(
        status_of(allocate(&with_token(Some("made-up-token-0000")), "v").await),
        401
    );
    assert_eq!(status_of(allocate(&with_token(None), "v").await), 401);
    // Authenticated by the API server but given no ironlb role.
    assert_eq!(
        status_of(with_token(Some("n1-token")).get("/v1/status").await),
        401
    );
    assert_eq!(
        status_of(with_token(Some("other-token")).get("/v1/status").await),
        401
    );
    put_config(&c.client(), &pool_yaml("p", "198.51.100.0/29")).await;

    // Node certificates go to the node a token proves, and to nobody else.
    let admin = c.procs[1].admin.clone();
    let (status, cert) = ask_node_cert(&admin, &ca, Some("n1-token"), "n1").await;
    assert_eq!(status, 200, "{cert}");
    let (status, _) = ask_node_cert(&admin, &ca, Some("n2-token"), "n2").await;
    assert_eq!(status, 200, "a token bound to a pod proves the pod's node");
    for (token, node, want) in [
        (Some("n1-token"), "n2", 403),
        (Some("n2-token"), "n1", 403),
        (Some("other-token"), "n1", 403),
        (Some("api-token"), "n1", 401),
        (Some("made-up-token"), "n1", 401),
        (None, "n1", 401),
    ] {
        let (status, why) = ask_node_cert(&admin, &ca, token, node).await;
        assert_eq!(status, want, "{token:?} for {node}: {why}");
    }

    // A speaker with a bootstrapped certificate holds a lease; renewed certificates (every 4 s)
    // and renewed member certificates (every 6 s) interrupt nothing: the session opened before
    // keeps its lease, and new sessions use the new certificates.
    let token_file = c.dir.path().join("n1.token");
    std::fs::write(&token_file, "n1-token").unwrap();
    let boot = NodeCertBootstrap {
        controllers: c.procs.iter().map(|p| p.admin.clone()).collect(),
        token_file,
        ca: ca.clone(),
        dir: c.dir.path().join("n1"),
        node: "n1".parse().unwrap(),
    };
    std::fs::create_dir_all(&boot.dir).unwrap();
    let expires = boot.first().await;
    let tls = boot.tls();
    let first_cert = std::fs::read_to_string(&tls.cert).unwrap();
    let renewer = tokio::spawn(boot.clone().renew_forever(expires));
    let leader = c.leader().await;
    let raft = c.procs[leader].raft.clone();
    let session = speaker_session(&raft, &tls, "n1").await.unwrap();
    assert!(
        session.iter().any(|m| matches!(m, ToSpeaker::Lease { .. })),
        "{session:?}"
    );

    let mut held = open_channel(
        &raft,
        Channel::Speaker {
            node: "n1".parse().unwrap(),
        },
        Some(&tls.client().unwrap()),
        &NetworkConfig::default(),
    )
    .await
    .unwrap();
    let member_cert = c
        .dir
        .path()
        .join(format!("tls-{}/member.pem", c.procs[leader].id));
    let member_first = std::fs::read_to_string(&member_cert).unwrap();
    let (mut leases, mut seq) = (0, 0);
    let until = Instant::now() + Duration::from_secs(14);
    while Instant::now() < until {
        seq += 1;
        let hb = ToController::Heartbeat(Heartbeat {
            seq,
            want_full: seq == 1,
            labels: [("kubernetes.io/hostname".to_string(), "n1".to_string())].into(),
            ..Heartbeat::default()
        });
        held.send(wire::encode("heartbeat", &hb).unwrap())
            .await
            .unwrap();
        while let Ok(Some(frame)) =
            tokio::time::timeout(Duration::from_millis(200), held.next()).await
        {
            if let ToSpeaker::Lease { .. } =
                wire::decode::<ToSpeaker>("answer", &frame.unwrap()).unwrap()
            {
                leases += 1;
            }
        }
    }
    assert!(
        leases >= 40,
        "the session kept its lease through the renewals: {leases} leases"
    );
    assert_ne!(
        std::fs::read_to_string(&tls.cert).unwrap(),
        first_cert,
        "the node certificate was renewed"
    );
    assert_ne!(
        std::fs::read_to_string(&member_cert).unwrap(),
        member_first,
        "the member certificate was renewed"
    );
    // One session per node: the held one ends before a new one opens.
    drop(held);
    let again = speaker_session(&raft, &tls, "n1").await.unwrap();
    assert!(
        again.iter().any(|m| matches!(m, ToSpeaker::Lease { .. })),
        "a new session with the renewed certificate: {again:?}"
    );
    // Six seconds after the first certificate expired, the cluster still answers over TLS.
    assert_eq!(
        status_of(with_token(Some(viewer)).get("/v1/status").await),
        200
    );
    renewer.abort();
}
