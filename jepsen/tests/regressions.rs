//! Regression tests for the failures the suite found in Layer 2 ownership, each a targeted
//! scenario on the real binaries in network namespaces, judged by the suite's own checker. Need
//! root, iptables and tshark (CI runs them with IRONLB_REQUIRE_LAB=1, where anything missing
//! fails). They run one at a time: each is a dozen processes with sub-second leases.

use std::time::Duration;

use ironlb_jepsen::checker::Validity;
use ironlb_jepsen::run::Timing;
use ironlb_jepsen::scenario::{lab_available, L2Scenario};
use serde_json::json;
use tokio::sync::Mutex;

static ONE_AT_A_TIME: Mutex<()> = Mutex::const_new(());

/// SIGKILL of the controller leader, five times, under each timing: a new leader must renew
/// every lease before it runs out, so no speaker ever fences and the owners keep answering.
/// (Seen: with the tuned timings every speaker fenced in 10 of 10 kills.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_leader_lets_no_lease_run_out_under_any_supported_timing() {
    if !lab_available() {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().await;
    for timing in [Timing::Default, Timing::Tuned] {
        // Kept if the test fails, for its logs.
        let dir = tempfile::tempdir().unwrap().keep();
        let mut s = L2Scenario::start(&dir, timing, 3, 3, 2).await.unwrap();
        for kill in 0..5 {
            let leader =
                s.db.leader()
                    .await
                    .unwrap_or_else(|| panic!("no leader (logs in {})", dir.display()));
            s.log.record(
                "start",
                "kill-leader",
                json!({"member": leader + 1, "kill": kill}),
            );
            s.db.kill_member(leader);
            tokio::time::sleep(Duration::from_secs(3)).await;
            s.db.start_member(leader).unwrap();
            s.log.record("end", "kill-leader", serde_json::Value::Null);
            s.db.wait_voters(3, Duration::from_secs(30)).await.unwrap();
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        let fences = s.fences().await;
        let (verdict, _) = s.finish().unwrap();
        if !fences.iter().all(|f| *f == Some(0.0)) || verdict.valid != Validity::Valid {
            panic!(
                "{timing:?}: fences per speaker {fences:?}, verdict {verdict:#?} (logs in {})",
                dir.display()
            );
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// ARP and NDP floods at the owner's MAC (unicast, as any host on the LAN can send them), from
/// fixed and random source MACs: the owner keeps its lease, and nothing answers twice.
/// (Seen: a unicast ARP flood kept the owner from sending heartbeats for up to a second; it
/// fenced, was granted a lease again, and answered with its old addresses while the leader had
/// moved them: two MACs answered for 1.5 to 2.6 s.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_at_the_owner_costs_it_neither_its_lease_nor_its_exclusivity() {
    if !lab_available() {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap().keep();
    let s = L2Scenario::start(&dir, Timing::Default, 3, 3, 1)
        .await
        .unwrap();
    let exe = ironlb_jepsen::sibling_binary("ironlb-jepsen").unwrap();
    let attacker = s.db.attacker_netns().unwrap().to_string();
    for (target, random) in [(0usize, false), (0, true), (1, false), (1, true)] {
        let addr = s.addresses[target];
        let owner = s.db.owner_of(addr).await.expect("an owner");
        let mac = s.db.speakers[owner].mac.clone();
        let mut args = vec![
            "flood".to_string(),
            "--target".into(),
            addr.to_string(),
            "--dst-mac".into(),
            mac.clone(),
        ];
        if random {
            args.push("--random-source".into());
        }
        s.log.record(
            "start",
            "flood",
            json!({"address": addr, "owner": mac, "random_source": random}),
        );
        let mut flood = std::process::Command::new("ip")
            .args(["netns", "exec", &attacker])
            .arg(&exe)
            .args(&args)
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        tokio::time::sleep(Duration::from_secs(6)).await;
        ironlb_jepsen::db::signal(flood.id(), libc::SIGTERM);
        let _ = flood.wait();
        s.log.record("end", "flood", serde_json::Value::Null);
        tokio::time::sleep(Duration::from_secs(2)).await;
        s.db.heal().unwrap();
    }
    let fences = s.fences().await;
    let (verdict, _) = s.finish().unwrap();
    if !fences.iter().all(|f| *f == Some(0.0)) || verdict.figures["dual_answer_windows"] != 0 {
        panic!(
            "under floods: fences per speaker {fences:?}, verdict {verdict:#?} (logs in {})",
            dir.display()
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
