//! The controller cluster: real `ironlb controller` processes on 127.0.0.1 (and in-process
//! members), through leader kills, restarts, a whole-cluster SIGKILL under load, membership
//! changes and invalid configuration.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ironlb::api::client::{AdminClient, Body, ClientError};
use ironlb::api::views::{AllocateResult, ConfigView, Members, ServiceView, Status};
use ironlb::controller::member::{ControllerMember, MemberConfig};
use ironlb_lab::cluster::{pool_yaml, put_config, service_yaml, Cluster};
use reqwest::Method;
use tokio::sync::Mutex;

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_ironlb"))
}

/// Allocates for `ns/name`, retrying for up to `budget` while the cluster has no leader.
async fn allocate(
    client: &AdminClient,
    ns: &str,
    name: &str,
    budget: Duration,
) -> Result<Vec<IpAddr>, String> {
    let deadline = Instant::now() + budget;
    loop {
        let r: Result<AllocateResult, ClientError> = client
            .call(
                Method::POST,
                "/v1/services",
                Body::Yaml(service_yaml(ns, name)),
            )
            .await;
        match r {
            Ok(r) if r.error.is_none() => return Ok(r.addresses),
            Ok(r) => return Err(format!("refused: {}", r.explain)),
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// Every member's own (stale) view of the allocations, once they all agree with `expect`.
async fn wait_agree(c: &Cluster, expect: usize) -> Vec<ServiceView> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut views = Vec::new();
        for p in c.procs.iter().filter(|p| p.child.is_some()) {
            if let Ok(v) = p
                .client()
                .get::<Vec<ServiceView>>("/v1/services?stale=true")
                .await
            {
                views.push(v);
            }
        }
        let running = c.procs.iter().filter(|p| p.child.is_some()).count();
        if views.len() == running && views.iter().all(|v| v.len() == expect && *v == views[0]) {
            return views.remove(0);
        }
        if Instant::now() > deadline {
            let sizes: Vec<usize> = views.iter().map(Vec::len).collect();
            panic!(
                "members do not agree on {expect} allocations (have {sizes:?}):\n{}",
                c.logs()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn assert_no_address_twice(list: &[ServiceView]) {
    let mut seen = BTreeMap::new();
    for s in list {
        for a in &s.addresses {
            if let Some(other) = seen.insert(*a, s.service.clone()) {
                panic!("{a} is held by {other} and {}", s.service);
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allocations_continue_through_a_leader_kill_and_the_restarted_member_catches_up() {
    let mut c = Cluster::start(bin(), 3, &[]).await;
    let client = c.client();
    put_config(&client, &pool_yaml("public", "192.0.2.0/24")).await;
    for i in 0..20 {
        allocate(&client, "before", &format!("s{i}"), Duration::from_secs(5))
            .await
            .unwrap();
    }
    let leader = c.leader().await;
    c.procs[leader].kill();
    for i in 0..20 {
        allocate(&client, "after", &format!("s{i}"), Duration::from_secs(5))
            .await
            .unwrap_or_else(|e| panic!("allocation after the leader's death: {e}\n{}", c.logs()));
    }
    let new_leader = c.leader().await;
    assert_ne!(new_leader, leader);
    c.procs[leader].start(&[]);
    let list = wait_agree(&c, 40).await;
    assert_no_address_twice(&list);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_allocation_survives_a_sigkill_of_every_member_under_load() {
    let mut c = Cluster::start(bin(), 3, &[]).await;
    let client = c.client();
    put_config(&client, &pool_yaml("public", "198.51.100.0/22")).await;
    let acked: Arc<Mutex<BTreeMap<String, Vec<IpAddr>>>> = Arc::default();
    let mut tasks = Vec::new();
    for t in 0..32 {
        let client = client.clone();
        let acked = acked.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0.. {
                let name = format!("t{t}-{i}");
                match allocate(&client, "load", &name, Duration::ZERO).await {
                    Ok(addrs) => {
                        acked.lock().await.insert(format!("load/{name}"), addrs);
                    }
                    // Once the members are dead nothing is acknowledged any more.
                    Err(_) => return,
                }
            }
        }));
    }
    // Let the load run, then kill every member at once in the middle of it.
    let deadline = Instant::now() + Duration::from_secs(10);
    while acked.lock().await.len() < 300 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for p in &mut c.procs {
        p.kill();
    }
    for t in tasks {
        let _ = t.await;
    }
    let acked = acked.lock().await.clone();
    assert!(
        acked.len() >= 100,
        "only {} allocations before the kill",
        acked.len()
    );
    for p in &mut c.procs {
        p.start(&[]);
    }
    c.wait_members(3).await;
    let list: Vec<ServiceView> = loop {
        match client.get("/v1/services").await {
            Ok(l) => break l,
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    };
    let held: BTreeMap<String, Vec<IpAddr>> = list
        .iter()
        .map(|s| (s.service.to_string(), s.addresses.clone()))
        .collect();
    for (svc, addrs) in &acked {
        assert_eq!(
            held.get(svc),
            Some(addrs),
            "acknowledged {svc} -> {addrs:?} was lost"
        );
    }
    // Some allocations may have committed without their acknowledgement reaching us; those
    // may stay. None may share an address.
    assert_no_address_twice(&list);
    wait_agree(&c, list.len()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_configuration_is_refused_with_the_field_path_and_the_old_one_stays() {
    let c = Cluster::start(bin(), 3, &[]).await;
    let client = c.client();
    put_config(&client, &pool_yaml("public", "192.0.2.0/24")).await;
    let bad = "apiVersion: ironlb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: public}\nspec:\n  addresses: [192.0.2.0/24, 192.0.2.10-192.0.2.1]\n";
    let err = client
        .call::<serde_json::Value>(Method::PUT, "/v1/config", Body::Yaml(bad.into()))
        .await
        .unwrap_err();
    match err {
        ClientError::Api { status, body } => {
            assert_eq!(status, 422);
            assert_eq!(
                body.details,
                vec!["request body (document 1): IPAddressPool/public: spec.addresses[1]: \"192.0.2.10-192.0.2.1\": range start is after its end".to_string()]
            );
        }
        other => panic!("expected a 422, got {other}"),
    }
    // Every member still holds revision 1, the good pool.
    for p in &c.procs {
        let view: ConfigView = p.client().get("/v1/config").await.unwrap();
        assert_eq!(view.revision, 1);
        let pools = &view.config.unwrap().pools;
        assert_eq!(pools.len(), 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn membership_goes_from_three_to_five_to_three_without_losing_availability() {
    let mut c = Cluster::start(bin(), 3, &[]).await;
    let client = c.client();
    put_config(&client, &pool_yaml("public", "198.51.100.0/24")).await;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let failures: Arc<Mutex<Vec<String>>> = Arc::default();
    let ok = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    // Members 4 and 5 start empty and wait to be added.
    let four = c.add_proc();
    let five = c.add_proc();
    c.procs[four].start(&[]);
    c.procs[five].start(&[]);
    let all: Vec<String> = c.procs.iter().map(|p| p.admin.clone()).collect();
    let load = {
        let (stop, failures, ok) = (stop.clone(), failures.clone(), ok.clone());
        let client = AdminClient::new(all, Duration::from_secs(5));
        tokio::spawn(async move {
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                match allocate(&client, "churn", &format!("s{i}"), Duration::from_secs(3)).await {
                    Ok(_) => {
                        ok.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    Err(e) => failures.lock().await.push(e),
                }
                i += 1;
            }
        })
    };
    for idx in [four, five] {
        let p = &c.procs[idx];
        let body = serde_json::json!({"id": p.id, "raft_addr": p.raft, "admin_addr": p.admin});
        let m: Members = client
            .call(Method::POST, "/v1/members", Body::Json(body))
            .await
            .unwrap_or_else(|e| panic!("adding member {}: {e}\n{}", p.id, c.logs()));
        assert!(m.members.iter().any(|x| x.id == p.id && x.voter));
    }
    c.wait_members(5).await;
    // Remove the first two members, the leader among them if it is there. Right after a
    // leader is removed the others elect a new one: an operator's retry covers that.
    for id in [1u64, 2] {
        let deadline = Instant::now() + Duration::from_secs(10);
        let m: Members = loop {
            match client
                .call(Method::DELETE, &format!("/v1/members/{id}"), Body::Empty)
                .await
            {
                Ok(m) => break m,
                Err(e) if Instant::now() > deadline => {
                    panic!("removing member {id}: {e}\n{}", c.logs())
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        };
        assert!(m.members.iter().all(|x| x.id != id));
    }
    // Keep the load on until it has done some work on the final membership too.
    let before = ok.load(std::sync::atomic::Ordering::Relaxed);
    let deadline = Instant::now() + Duration::from_secs(10);
    while ok.load(std::sync::atomic::Ordering::Relaxed) < (before + 5).max(11)
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    load.await.unwrap();
    let failures = failures.lock().await.clone();
    assert!(
        failures.is_empty(),
        "allocations failed during membership changes: {failures:?}"
    );
    assert!(ok.load(std::sync::atomic::Ordering::Relaxed) > 10);
    c.procs[0].kill();
    c.procs[1].kill();
    let status: Status = c.procs[2].client().get("/v1/status").await.unwrap();
    assert_eq!(status.members, 3);
    let voters: BTreeSet<u64> = c.procs[2]
        .client()
        .get::<Members>("/v1/members")
        .await
        .unwrap()
        .members
        .iter()
        .map(|m| m.id)
        .collect();
    assert_eq!(voters, BTreeSet::from([3, 4, 5]));
}

/// Three in-process members with a tiny snapshot interval: a fourth member joining late can
/// only catch up through a snapshot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_process_cluster_and_a_new_member_catching_up_through_a_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let config = |id: u64| {
        let mut cfg = MemberConfig::new(id, dir.path().join(format!("m{id}")), any, any);
        cfg.snapshot_every = 20;
        cfg
    };
    let mut first = config(1);
    first.bootstrap = true;
    let n1 = ControllerMember::start(first).await.unwrap();
    n1.wait_for_leader(Duration::from_secs(5)).await.unwrap();
    let mut nodes = vec![n1];
    for id in [2, 3] {
        let mut cfg = config(id);
        cfg.join = vec![nodes[0].admin_addr.to_string()];
        nodes.push(ControllerMember::start(cfg).await.unwrap());
    }
    let client = AdminClient::new(
        nodes.iter().map(|n| n.admin_addr.to_string()).collect(),
        Duration::from_secs(10),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while client
        .get::<Status>("/v1/status")
        .await
        .map(|s| s.members)
        .unwrap_or(0)
        < 3
    {
        assert!(Instant::now() < deadline, "members never joined");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    put_config(&client, &pool_yaml("public", "192.0.2.0/24")).await;
    for i in 0..60 {
        allocate(&client, "snap", &format!("s{i}"), Duration::from_secs(5))
            .await
            .unwrap();
    }
    let mut late = config(4);
    late.join = vec![nodes[0].admin_addr.to_string()];
    let n4 = ControllerMember::start(late).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let n = n4.state.read().await.allocator.allocation_count();
        if n == 60 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "member 4 has {n} of 60 allocations"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let m = n4.raft.metrics().borrow().clone();
    assert!(
        m.snapshot.is_some(),
        "member 4 caught up without a snapshot"
    );
    let leader_state = nodes[0].state.read().await.clone();
    let late_state = n4.state.read().await.clone();
    assert_eq!(late_state.allocator, leader_state.allocator);
    n4.shutdown().await;
    for n in nodes {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_talk_over_mutual_tls_and_a_member_from_another_ca_cannot_join() {
    let mut c = Cluster::new(bin()).with_tls();
    for _ in 0..3 {
        c.add_proc();
    }
    c.start_all(&[]).await;
    let client = c.client();
    put_config(&client, &pool_yaml("public", "192.0.2.0/24")).await;
    allocate(&client, "tls", "a", Duration::from_secs(5))
        .await
        .unwrap();
    wait_agree(&c, 1).await;

    let i = c.add_proc();
    let rogue = ironlb_lab::pki::Pki::new("rogue").member(c.procs[i].id);
    // Only the rogue CA's material.
    c.procs[i].args.clear();
    let join = c.procs[0].admin.clone();
    c.procs[i].start(&[
        "--tls-ca".into(),
        rogue.ca.display().to_string(),
        "--tls-cert".into(),
        rogue.cert.display().to_string(),
        "--tls-key".into(),
        rogue.key.display().to_string(),
        "--join".into(),
        join,
    ]);
    // The leader cannot replicate to it, so it never becomes a voter; the cluster goes on.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let members: Members = c.procs[0].client().get("/v1/members").await.unwrap();
    assert!(members
        .members
        .iter()
        .all(|m| m.id != c.procs[i].id || !m.voter));
    allocate(&client, "tls", "b", Duration::from_secs(5))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_health_and_readiness_are_served_by_every_member() {
    let c = Cluster::start(bin(), 3, &[]).await;
    let client = c.client();
    put_config(&client, &pool_yaml("public", "192.0.2.0/24")).await;
    allocate(&client, "m", "a", Duration::from_secs(5))
        .await
        .unwrap();
    let http = reqwest::Client::new();
    let leader = c.leader().await;
    for (i, p) in c.procs.iter().enumerate() {
        let get = |path: &str| http.get(format!("http://{}{path}", p.admin)).send();
        assert_eq!(get("/healthz").await.unwrap().status(), 200);
        assert_eq!(get("/readyz").await.unwrap().status(), 200);
        let text = get("/metrics").await.unwrap().text().await.unwrap();
        for name in [
            "ironlb_raft_term",
            "ironlb_raft_commit_index",
            "ironlb_raft_applied_index",
            "ironlb_raft_members 3",
            "ironlb_allocator_addresses{pool=\"public\",family=\"ipv4\",state=\"total\"} 256",
            "ironlb_allocation_duration_seconds_bucket",
        ] {
            assert!(
                text.contains(name),
                "member {}: {name} missing\n{text}",
                p.id
            );
        }
        let leads = if i == leader {
            "ironlb_raft_is_leader 1"
        } else {
            "ironlb_raft_is_leader 0"
        };
        assert!(text.contains(leads), "member {}: {leads}\n{text}", p.id);
    }
}

#[test]
fn ctl_says_clearly_when_no_member_answers() {
    let out = std::process::Command::new(bin())
        .args(["ctl", "-s", "127.0.0.1:1,127.0.0.1:2", "status"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no controller member answered (tried 127.0.0.1:1, 127.0.0.1:2)"),
        "{err}"
    );
}

/// Concurrent proposals travel together: 200 allocations proposed at once take far fewer log
/// entries than 200, and each caller still gets its own answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_proposals_are_batched_into_few_log_entries_with_one_answer_each() {
    use ironlb::ipam::{AllocationRequest, Port};
    use ironlb::raft::{Command, Response};

    let dir = tempfile::tempdir().unwrap();
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let mut cfg = MemberConfig::new(1, dir.path().join("m1"), any, any);
    cfg.bootstrap = true;
    let node = Arc::new(ControllerMember::start(cfg).await.unwrap());
    node.wait_for_leader(Duration::from_secs(5)).await.unwrap();
    let client = AdminClient::new(vec![node.admin_addr.to_string()], Duration::from_secs(10));
    put_config(&client, &pool_yaml("public", "198.51.100.0/24")).await;
    let before = node.raft.metrics().borrow().last_log_index.unwrap_or(0);

    let mut tasks = Vec::new();
    for i in 0..200 {
        let node = Arc::clone(&node);
        tasks.push(tokio::spawn(async move {
            let key = format!("batch/s{i}").parse().unwrap();
            let request = AllocationRequest::new(key, vec![Port::tcp(80)]);
            match node.propose(Command::Allocate { request }).await {
                Ok(Response::Allocated(e)) => {
                    let picks = e.outcome.expect("allocated").picks;
                    (
                        i,
                        picks.into_iter().map(|(a, _)| a).collect::<Vec<IpAddr>>(),
                    )
                }
                other => panic!("allocation {i}: {other:?}"),
            }
        }));
    }
    let mut seen = BTreeSet::new();
    for t in tasks {
        let (i, addresses) = t.await.unwrap();
        assert_eq!(addresses.len(), 1, "allocation {i}");
        assert!(seen.insert(addresses[0]), "{} given twice", addresses[0]);
    }
    let entries = node.raft.metrics().borrow().last_log_index.unwrap_or(0) - before;
    assert!(
        entries < 100,
        "200 concurrent proposals took {entries} log entries"
    );
    assert_eq!(node.state.read().await.allocator.allocation_count(), 200);
    Arc::into_inner(node).unwrap().shutdown().await;
}

/// A member restarted with an emptied data directory must come back as a new member of the same
/// cluster: never found a second cluster (member 1 is started with --bootstrap, as a
/// StatefulSet's ordinal 0 is), never vote under its old id with an empty log; and every
/// allocation survives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_with_an_emptied_data_directory_rejoins_as_a_new_member_of_the_same_cluster() {
    let mut c = Cluster::start(bin(), 3, &[]).await;
    put_config(&c.client(), &pool_yaml("p", "192.0.2.0/24")).await;
    for i in 0..10 {
        allocate(
            &c.client(),
            "default",
            &format!("s{i}"),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    }
    for wiped in [0usize, 1] {
        let others: Vec<String> = c
            .procs
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != wiped)
            .map(|(_, p)| p.admin.clone())
            .collect();
        c.procs[wiped].kill();
        std::fs::remove_dir_all(&c.procs[wiped].dir).unwrap();
        // Started as it was: the first member with --bootstrap, every member knowing the others.
        let mut args = vec!["--join".to_string(), others.join(",")];
        if wiped == 0 {
            args.push("--bootstrap".into());
        }
        c.procs[wiped].start(&args);
        // It catches up with the cluster's state, under a new id, and the cluster has three
        // voters again (the old id replaced).
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let status: Option<ironlb::api::views::Status> =
                c.procs[wiped].client().get("/v1/status").await.ok();
            let list: Option<Vec<ServiceView>> = c.procs[wiped]
                .client()
                .get("/v1/services?stale=true")
                .await
                .ok();
            let done = matches!((&status, &list), (Some(s), Some(l))
                if s.id != (wiped as u64 + 1) && s.voters == 3 && s.members == 3 && l.len() == 10 + wiped);
            if done {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "member {} did not rejoin the cluster: status {status:?}, {} services\n{}",
                wiped + 1,
                list.map_or(0, |l| l.len()),
                c.logs()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        // One cluster: every member agrees on the members and the allocations go on.
        let members: ironlb::api::views::Members = c.client().get("/v1/members").await.unwrap();
        assert_eq!(members.members.len(), 3, "{members:?}");
        assert!(
            members.members.iter().all(|m| m.id != wiped as u64 + 1),
            "the old id is gone: {members:?}"
        );
        allocate(
            &c.client(),
            "default",
            &format!("after-wipe-{wiped}"),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
        wait_agree(&c, 11 + wiped).await;
    }
}

/// A stall of the leader's Raft core (what a slow fsync of its log, or a CPU stall, does) must
/// not stop lease grants: the leadership is confirmed by asking every voter directly, not
/// through the core, so the followers' answers keep it confirmed. (Seen: grants waited on the
/// leader's core and every speaker fenced.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn leases_are_granted_while_the_leaders_raft_core_is_stalled() {
    use futures::{SinkExt, StreamExt};
    use ironlb::announce::proto::{Heartbeat, ToController, ToSpeaker};
    use ironlb::raft::network::wire::{self, Channel};
    use ironlb::raft::network::{open_channel, NetworkConfig};

    let dir = tempfile::tempdir().unwrap();
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let mut first = MemberConfig::new(1, dir.path().join("m1"), any, any);
    first.bootstrap = true;
    let n1 = ControllerMember::start(first).await.unwrap();
    n1.wait_for_leader(Duration::from_secs(5)).await.unwrap();
    let mut nodes = vec![n1];
    for id in [2, 3] {
        let mut cfg = MemberConfig::new(id, dir.path().join(format!("m{id}")), any, any);
        cfg.join = vec![nodes[0].admin_addr.to_string()];
        nodes.push(ControllerMember::start(cfg).await.unwrap());
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    let leader = loop {
        let voters = nodes[0]
            .raft
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .voter_ids()
            .count();
        let leader = nodes
            .iter()
            .position(|n| n.raft.metrics().borrow().state == openraft::ServerState::Leader);
        if let (3, Some(l)) = (voters, leader) {
            break l;
        }
        assert!(Instant::now() < deadline, "no cluster of three");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };

    // A speaker's session with the leader: a heartbeat every 50 ms, every lease noted.
    let addr = nodes[leader].raft_addr.to_string();
    let channel = Channel::Speaker {
        node: "n1".parse().unwrap(),
    };
    let transport = open_channel(&addr, channel, None, &NetworkConfig::default())
        .await
        .unwrap();
    let (mut sink, mut stream) = transport.split();
    let leases = Arc::new(Mutex::new(Vec::<Instant>::new()));
    let sender = tokio::spawn(async move {
        for seq in 1.. {
            let hb = ToController::Heartbeat(Heartbeat {
                seq,
                ..Heartbeat::default()
            });
            if sink.send(wire::encode("hb", &hb).unwrap()).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    let noted = leases.clone();
    let receiver = tokio::spawn(async move {
        while let Some(Ok(frame)) = stream.next().await {
            if let Ok(ToSpeaker::Lease { .. }) = wire::decode::<ToSpeaker>("reply", &frame) {
                noted.lock().await.push(Instant::now());
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    while leases.lock().await.is_empty() {
        assert!(Instant::now() < deadline, "no lease before the stall");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // The leader's core stops for 300 ms: longer than the grant window (100 ms), shorter than
    // what makes the followers elect another leader (their election timeout after the old
    // leader's lease, 375 ms at least).
    let raft = nodes[leader].raft.clone();
    let stall = tokio::spawn(async move {
        let _ = raft
            .with_raft_state(|_| std::thread::sleep(Duration::from_millis(300)))
            .await;
    });
    tokio::time::sleep(Duration::from_millis(20)).await;
    let from = Instant::now();
    tokio::time::sleep(Duration::from_millis(270)).await;
    let until = Instant::now();
    let during = leases
        .lock()
        .await
        .iter()
        .filter(|t| **t >= from && **t <= until)
        .count();
    stall.await.unwrap();
    sender.abort();
    receiver.abort();
    // A heartbeat every 50 ms: five or so in the window when grants go on.
    assert!(
        during >= 3,
        "only {during} leases granted in 270 ms of the leader's core stall (a heartbeat every 50 ms)"
    );
    for n in nodes {
        n.shutdown().await;
    }
}
