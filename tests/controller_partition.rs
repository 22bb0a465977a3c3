//! A minority cut off by iptables inside network namespaces cannot allocate and says so; the
//! majority goes on; after healing, every member agrees. Needs root (CI runs it with
//! IRONLB_REQUIRE_LAB=1, where a missing lab fails the test).

use std::path::Path;
use std::time::{Duration, Instant};

use ironlb::api::client::{AdminClient, Body, ClientError};
use ironlb::api::views::{AllocateResult, ServiceView, Status};
use ironlb_lab::cluster::{pool_yaml, put_config, service_yaml, Cluster};
use ironlb_lab::netns::{self, Lan};
use reqwest::Method;

async fn allocate(client: &AdminClient, name: &str) -> Result<AllocateResult, ClientError> {
    client
        .call(
            Method::POST,
            "/v1/services",
            Body::Yaml(service_yaml("part", name)),
        )
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_off_minority_cannot_allocate_and_the_majority_goes_on() {
    if !netns::require() {
        return;
    }
    let lan = Lan::new(3);
    let mut c = Cluster::new(Path::new(env!("CARGO_BIN_EXE_ironlb")));
    for node in &lan.nodes {
        c.add_proc_at(
            format!("{}:7481", node.addr),
            format!("{}:7480", node.addr),
            Some(node.netns.clone()),
        );
    }
    c.start_all(&[]).await;
    let client = c.client();
    put_config(&client, &pool_yaml("public", "203.0.113.0/24")).await;
    allocate(&client, "before").await.unwrap();

    // Cut off the leader, so the majority must also elect a new one.
    let minority = c.leader().await;
    let majority: Vec<usize> = (0..3).filter(|i| *i != minority).collect();
    lan.cut(minority, &majority);
    for &m in &majority {
        lan.cut(m, &[minority]);
    }

    // The minority answers, but cannot allocate, and says why.
    let cut_off = c.procs[minority].client();
    let err = allocate(&cut_off, "lost").await.unwrap_err();
    match &err {
        ClientError::Api { status, body } => {
            assert_eq!(*status, 503, "{err}");
            assert!(
                body.error.contains("quorum"),
                "the refusal should say there is no quorum: {}",
                body.error
            );
        }
        other => panic!("expected 503 from the minority, got {other}"),
    }

    // The majority elects a leader and goes on.
    let majority_client = AdminClient::new(
        majority.iter().map(|i| c.procs[*i].admin.clone()).collect(),
        Duration::from_secs(10),
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut done = 0;
    while done < 5 {
        match allocate(&majority_client, &format!("during-{done}")).await {
            Ok(r) if r.error.is_none() => done += 1,
            other if Instant::now() > deadline => {
                panic!("the majority could not allocate: {other:?}\n{}", c.logs())
            }
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    let s: Status = c.procs[majority[0]]
        .client()
        .get("/v1/status")
        .await
        .unwrap();
    assert!(s.leader.is_some_and(|l| l != c.procs[minority].id));

    // Heal: every member converges on the same six allocations, the lost one not among them.
    for i in 0..3 {
        lan.heal(i);
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut views = Vec::new();
        for p in &c.procs {
            if let Ok(v) = p
                .client()
                .get::<Vec<ServiceView>>("/v1/services?stale=true")
                .await
            {
                views.push(v);
            }
        }
        let agreed = views.len() == 3 && views.iter().all(|v| *v == views[0]);
        if agreed && views[0].len() == 6 {
            assert!(views[0].iter().all(|s| s.service.name() != "lost"));
            break;
        }
        assert!(
            Instant::now() < deadline,
            "members disagree after healing:\n{}",
            c.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
