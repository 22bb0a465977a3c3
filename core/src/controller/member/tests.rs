use super::*;
use crate::controller::LeaseTiming;

fn lease(heartbeat: u64, lease: u64, margin: u64) -> LeaseTiming {
    LeaseTiming {
        heartbeat: Duration::from_millis(heartbeat),
        lease: Duration::from_millis(lease),
        margin: Duration::from_millis(margin),
    }
}

#[test]
fn derived_clocks_fit_every_lease_that_leaves_room() {
    for l in (300..=5000).step_by(10) {
        for h in [50, 100, 200, 500] {
            let timing = lease(h, l, 100);
            if timing.heartbeat * 2 + LEADER_CHANGE_SLACK + Duration::from_millis(40) > timing.lease
            {
                continue;
            }
            let t = Timing::for_lease(&timing);
            assert!(t.check(&timing).is_ok(), "lease {l} heartbeat {h}: {t:?}");
        }
    }
    assert!(Timing::default().check(&LeaseTiming::default()).is_ok());
}

/// The Jepsen suite's tuned timings once passed an election timeout of 50 ms with Raft
/// heartbeats of 15 ms: the rule then left out the last heartbeat and openraft's tick, and
/// one leader kill in ten let a lease run out on a loaded machine.
#[test]
fn the_last_raft_heartbeat_and_the_election_tick_count_against_the_lease() {
    let tuned = lease(50, 300, 100);
    let explicit = Timing::with_election(Duration::from_millis(50), Duration::from_millis(15));
    let err = explicit.check(&tuned).unwrap_err().to_string();
    assert!(err.contains("at least 337 ms"), "{err}");
    let derived = Timing::for_lease(&tuned);
    assert!(derived.check(&tuned).is_ok(), "{derived:?}");
    assert_eq!(derived.election_min, Duration::from_millis(39));
}

async fn wait_snapshot_at(m: &ControllerMember, index: u64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let at = m.raft.metrics().borrow().snapshot.map(|l| l.index);
        if at.is_some_and(|at| at >= index) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no snapshot at {index} (at {at:?})"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_come_on_demand_and_after_so_many_commands_in_few_entries() {
    let dir = tempfile::tempdir().unwrap();
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let mut cfg = MemberConfig::new(1, dir.path().join("m1"), any, any);
    cfg.bootstrap = true;
    cfg.snapshot_every = 50;
    let m = ControllerMember::start(cfg).await.unwrap();
    m.wait_for_leader(Duration::from_secs(5)).await.unwrap();

    let http = reqwest::Client::new();
    let url = format!("http://{}/v1/snapshot", m.admin_addr);
    let answer = http.post(&url).send().await.unwrap();
    assert_eq!(answer.status(), reqwest::StatusCode::ACCEPTED);
    let applied = m.raft.metrics().borrow().last_applied.map(|l| l.index);
    wait_snapshot_at(&m, applied.unwrap_or(0)).await;
    // Reading the endpoint's figures is not enough to change the state: GET is refused.
    let get = http.get(&url).send().await.unwrap();
    assert_eq!(get.status(), reqwest::StatusCode::METHOD_NOT_ALLOWED);

    // 60 commands in one log entry: far below 50 entries, but past 50 commands.
    let commands = (0..60u8)
        .map(|i| Command::Unreserve {
            address: std::net::IpAddr::from([192, 0, 2, i]),
        })
        .collect();
    m.propose(Command::Batch { commands }).await.unwrap();
    let applied = m.raft.metrics().borrow().last_applied.map(|l| l.index);
    wait_snapshot_at(&m, applied.unwrap_or(0)).await;
    m.shutdown().await;
}
