//! Layer 2 mode in network namespaces with the real kernel as client: who answers ARP and NDP,
//! failover, fencing, handover, joining and health checks. Needs root, `arping`, `ndisc6`,
//! `ping` and `tshark` (CI runs it with IRONLB_REQUIRE_LAB=1, where anything missing fails).
//!
//! The labs run one at a time: each is a dozen processes with sub-second leases, and two cores
//! shared by several would measure the machine, not ironlb.

use std::net::IpAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use ironlb_lab::capture::{self, Capture};
use ironlb_lab::l2::{self, now_epoch, L2Lab, L2Options, Pinger};
use ironlb_lab::netns::{self, Lan};
use tokio::sync::{Mutex, MutexGuard};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_ironlb"))
}

static ONE_LAB_AT_A_TIME: Mutex<()> = Mutex::const_new(());

async fn lab_slot(tools: &[&str]) -> Option<MutexGuard<'static, ()>> {
    let mut all = vec!["arping", "ndisc6", "ping"];
    all.extend_from_slice(tools);
    if !netns::require_with(&all) {
        return None;
    }
    Some(ONE_LAB_AT_A_TIME.lock().await)
}

fn v4_of(addrs: &[IpAddr]) -> IpAddr {
    *addrs.iter().find(|a| a.is_ipv4()).expect("an IPv4 address")
}

fn v6_of(addrs: &[IpAddr]) -> IpAddr {
    *addrs.iter().find(|a| a.is_ipv6()).expect("an IPv6 address")
}

/// The MAC the client's kernel neighbour cache holds for `addr`, if any.
fn neighbour(lab: &L2Lab, addr: IpAddr) -> Option<String> {
    let a = addr.to_string();
    let out = Lan::try_exec_in(&lab.lan.client().netns, &["ip", "neigh", "show", &a]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let mut words = text.split_whitespace();
    while let Some(w) = words.next() {
        if w == "lladdr" {
            return words.next().map(str::to_ascii_lowercase);
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_reaches_the_owner_and_nobody_else_answers() {
    let Some(_slot) = lab_slot(&[]).await else {
        return;
    };
    let lab = L2Lab::start(bin(), L2Options::default()).await;
    lab.configure(l2::CONFIG).await;
    let addrs = lab.allocate(&l2::service("default", "web", "")).await;
    assert_eq!(addrs.len(), 2, "{addrs:?}");
    let (v4, v6) = (v4_of(&addrs), v6_of(&addrs));
    let owner = lab.wait_owner(v4, Duration::from_secs(10)).await;
    // Dual-stack Services stay on one node, and exactly one node answers each family.
    assert_eq!(
        lab.resolve(v6, "eth0"),
        vec![lab.lan.nodes[owner].mac.clone()],
        "{}",
        lab.logs()
    );
    assert!(lab.ping(v4), "ping {v4}:\n{}", lab.logs());
    assert!(lab.ping(v6), "ping {v6}:\n{}", lab.logs());
    assert_eq!(neighbour(&lab, v4), Some(lab.lan.nodes[owner].mac.clone()));
    // Addresses nobody holds get no answer, from anyone.
    for free in ["198.51.100.149", "2001:db8:51::149"] {
        let free: IpAddr = free.parse().unwrap();
        assert_eq!(lab.resolve(free, "eth0"), Vec::<String>::new(), "{free}");
    }
    // The owner counts what it answered; the others answered nothing.
    let replies = lab
        .speaker_metric(owner, "ironlb_arp_replies_sent_total")
        .await
        .unwrap();
    assert!(replies >= 1.0, "owner sent {replies} ARP replies");
    for other in (0..3).filter(|i| *i != owner) {
        assert_eq!(
            lab.speaker_metric(other, "ironlb_arp_replies_sent_total")
                .await,
            Some(0.0),
            "node {other} answered"
        );
        assert_eq!(
            lab.speaker_metric(other, "ironlb_ndp_advertisements_sent_total")
                .await,
            Some(0.0),
            "node {other} advertised"
        );
    }
    assert_eq!(
        lab.speaker_metric(owner, "ironlb_l2_owned_addresses").await,
        Some(2.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interfaces_an_advertisement_does_not_select_stay_silent() {
    let Some(_slot) = lab_slot(&[]).await else {
        return;
    };
    let lab = L2Lab::start(
        bin(),
        L2Options {
            second_lan: true,
            ..L2Options::default()
        },
    )
    .await;
    // One pool announced only on eth0, one only on eth1.
    lab.configure(
        "apiVersion: ironlb.io/v1beta1
kind: IPAddressPool
metadata: {name: front}
spec: {addresses: [198.51.100.100/30]}
---
apiVersion: ironlb.io/v1beta1
kind: IPAddressPool
metadata: {name: back}
spec: {addresses: [203.0.113.100/30]}
---
apiVersion: ironlb.io/v1beta1
kind: L2Advertisement
metadata: {name: front}
spec: {ipAddressPools: [front], interfaces: [eth0]}
---
apiVersion: ironlb.io/v1beta1
kind: L2Advertisement
metadata: {name: back}
spec: {ipAddressPools: [back], interfaces: [eth1]}
",
    )
    .await;
    let svc = |name: &str, pool: &str| {
        format!("apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\n  namespace: default\n  annotations:\n    ironlb.io/address-pool: {pool}\nspec:\n  type: LoadBalancer\n  ports:\n  - port: 80\n")
    };
    let front = lab.allocate(&svc("front", "front")).await[0];
    let back = lab.allocate(&svc("back", "back")).await[0];
    let owner = lab.wait_owner(front, Duration::from_secs(10)).await;
    // eth1 hears nothing about the front address, from the owner or anyone.
    assert_eq!(lab.resolve(front, "eth1"), Vec::<String>::new());
    // The back address is answered on eth1 only, with the owner's eth1 MAC.
    let deadline = Instant::now() + Duration::from_secs(10);
    let back_macs = loop {
        let m = lab.resolve(back, "eth1");
        if m.len() == 1 || Instant::now() > deadline {
            break m;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(back_macs.len(), 1, "{back_macs:?}\n{}", lab.logs());
    let back_owner = lab.node_of_mac(&back_macs[0]).unwrap();
    assert_eq!(Some(&back_macs[0]), lab.lan.nodes[back_owner].mac2.as_ref());
    assert_eq!(lab.resolve(back, "eth0"), Vec::<String>::new());
    let _ = owner;
}

/// L2Advertisement serviceSelectors (MetalLB v0.16): a Service whose labels the advertisement
/// does not select gets an address from the pool but no node answers for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_an_advertisement_does_not_select_stay_silent() {
    let Some(_slot) = lab_slot(&[]).await else {
        return;
    };
    let lab = L2Lab::start(bin(), L2Options::default()).await;
    lab.configure(
        "apiVersion: ironlb.io/v1beta1
kind: IPAddressPool
metadata: {name: front}
spec: {addresses: [198.51.100.100/30]}
---
apiVersion: ironlb.io/v1beta1
kind: L2Advertisement
metadata: {name: front}
spec:
  ipAddressPools: [front]
  serviceSelectors: [{matchLabels: {tier: front}}]
",
    )
    .await;
    let svc = |name: &str, labels: &str| {
        format!("apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\n  namespace: default\n  labels: {{{labels}}}\nspec:\n  type: LoadBalancer\n  ports:\n  - port: 80\n")
    };
    let back = lab.allocate(&svc("back", "tier: back")).await[0];
    let front = lab.allocate(&svc("front", "tier: front")).await[0];
    let owner = lab.wait_owner(front, Duration::from_secs(10)).await;
    assert_eq!(
        lab.resolve(front, "eth0"),
        vec![lab.lan.nodes[owner].mac.clone()]
    );
    // The unselected Service was assigned first: had any node taken it, it would answer by
    // now.
    assert_eq!(
        lab.resolve(back, "eth0"),
        Vec::<String>::new(),
        "{}",
        lab.logs()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_owner_moves_the_address_and_the_client_cache_follows() {
    let Some(_slot) = lab_slot(&[]).await else {
        return;
    };
    let mut lab = L2Lab::start(bin(), L2Options::default()).await;
    lab.configure(l2::CONFIG).await;
    let addrs = lab.allocate(&l2::service("default", "web", "")).await;
    let (v4, v6) = (v4_of(&addrs), v6_of(&addrs));
    let owner = lab.wait_owner(v4, Duration::from_secs(10)).await;
    assert!(lab.ping(v4) && lab.ping(v6));
    let old_mac = lab.lan.nodes[owner].mac.clone();
    assert_eq!(neighbour(&lab, v4), Some(old_mac.clone()));

    lab.speakers[owner].kill();
    let new_owner_name = lab
        .wait_committed_owner(
            v4,
            Some(&lab.speakers[owner].name.clone()),
            Duration::from_secs(10),
        )
        .await;
    let new_owner = lab.node_index(&new_owner_name);
    assert_ne!(new_owner, owner);
    let new_mac = lab.lan.nodes[new_owner].mac.clone();
    // The gratuitous ARP and unsolicited NA move the kernel's cache without a new question.
    let deadline = Instant::now() + Duration::from_secs(5);
    while neighbour(&lab, v4) != Some(new_mac.clone()) {
        assert!(
            Instant::now() < deadline,
            "client cache still {:?}, expected {new_mac}:\n{}",
            neighbour(&lab, v4),
            lab.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(lab.ping(v4), "ping after failover:\n{}", lab.logs());
    assert!(lab.ping(v6), "ping6 after failover:\n{}", lab.logs());
    assert_eq!(lab.resolve(v4, "eth0"), vec![new_mac.clone()]);
    assert_eq!(lab.resolve(v6, "eth0"), vec![new_mac]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_two_nodes_answer_at_once_over_twenty_failovers_and_a_partition() {
    let Some(_slot) = lab_slot(&["tshark"]).await else {
        return;
    };
    let mut lab = L2Lab::start(bin(), L2Options::default()).await;
    lab.configure(l2::CONFIG).await;
    let addrs = lab.allocate(&l2::service("default", "web", "")).await;
    let (v4, v6) = (v4_of(&addrs), v6_of(&addrs));
    lab.wait_owner(v4, Duration::from_secs(10)).await;

    let client = lab.lan.client().clone();
    let cap = Capture::start(&client.netns, "eth0", lab.cluster.dir.path());
    // Ask continuously, both families, so any second answerer would show.
    let (a4, a6) = (v4.to_string(), v6.to_string());
    let _arping = Lan::spawn_in(
        &client.netns,
        &["arping", "-i", "eth0", "-W", "0.02", &a4],
        &lab.cluster.dir.path().join("arping.log"),
    );
    let ndisc_loop = format!("while :; do ndisc6 -q -m -n -r 1 -w 40 {a6} eth0; done");
    let mut _ndisc = Lan::spawn_in(
        &client.netns,
        &["sh", "-c", &ndisc_loop],
        &lab.cluster.dir.path().join("ndisc.log"),
    );

    for round in 0..20 {
        let owner_name = lab
            .wait_committed_owner(v4, None, Duration::from_secs(10))
            .await;
        let owner = lab.node_index(&owner_name);
        lab.speakers[owner].kill();
        let next = lab
            .wait_committed_owner(v4, Some(&owner_name), Duration::from_secs(10))
            .await;
        assert_ne!(next, owner_name, "round {round}");
        lab.speakers[owner].start();
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    // The owner cut off from every other node (and so from the controllers' majority): it
    // must stop answering before anyone else starts.
    let owner_name = lab
        .wait_committed_owner(v4, None, Duration::from_secs(10))
        .await;
    let owner = lab.node_index(&owner_name);
    let others: Vec<usize> = (0..3).filter(|i| *i != owner).collect();
    lab.lan.cut(owner, &others);
    for &o in &others {
        lab.lan.cut(o, &[owner]);
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        // Ask the majority only: the cut-off member cannot answer for the cluster.
        let moved = lab.resolve(v4, "eth0");
        if moved.len() == 1 && lab.node_of_mac(&moved[0]) != Some(owner) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no failover away from the cut-off owner:\n{}",
            lab.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    for i in 0..3 {
        lab.lan.heal(i);
    }
    _ndisc.kill();
    let answers = cap.stop();
    let client_mac = vec![client.mac.clone()];
    let owners_seen: std::collections::BTreeSet<&str> = answers
        .iter()
        .filter(|a| a.addr == v4 && a.mac != client.mac)
        .map(|a| a.mac.as_str())
        .collect();
    assert!(
        owners_seen.len() >= 2,
        "the address moved between nodes: {owners_seen:?}"
    );
    let dual = capture::dual_answer_windows(&answers, &client_mac, Duration::from_secs(1));
    assert!(
        dual.is_empty(),
        "two MACs answered at once: {dual:?}\n{}",
        lab.logs()
    );
    assert!(
        answers.iter().filter(|a| a.addr == v6).count() > 20,
        "too few IPv6 answers captured to tell"
    );
    // The cut-off owner fenced itself.
    assert!(
        lab.speaker_metric(owner, "ironlb_speaker_fences_total")
            .await
            >= Some(1.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_hands_over_within_a_heartbeat_and_a_joining_node_moves_nothing() {
    let Some(_slot) = lab_slot(&[]).await else {
        return;
    };
    let mut lab = L2Lab::start(
        bin(),
        L2Options {
            nodes: 4,
            controllers: 3,
            ..L2Options::default()
        },
    )
    .await;
    // node4 joins later.
    lab.speakers[3].kill();
    lab.configure(l2::CONFIG).await;
    let mut v4s = Vec::new();
    for i in 0..6 {
        v4s.push(v4_of(
            &lab.allocate(&l2::service("default", &format!("s{i}"), ""))
                .await,
        ));
    }
    for a in &v4s {
        lab.wait_committed_owner(*a, None, Duration::from_secs(10))
            .await;
    }
    let before = lab.owners().await;
    lab.speakers[3].start();
    // Give it time to register and be considered.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(lab.owners().await, before, "a joining node moved addresses");
    // ...but it gets the next new address (it owns fewest).
    let next = v4_of(&lab.allocate(&l2::service("default", "late", "")).await);
    assert_eq!(
        lab.wait_committed_owner(next, None, Duration::from_secs(10))
            .await,
        "node4"
    );

    // SIGTERM of an owner: the client's pings see no gap longer than one heartbeat (200 ms).
    let target = v4s[0];
    let owner_name = before[&target].clone().unwrap();
    let owner = lab.node_index(&owner_name);
    let pinger = Pinger::start(&lab, target, "sigterm");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let since = now_epoch();
    lab.speakers[owner].terminate();
    let moved = lab
        .wait_committed_owner(target, Some(&owner_name), Duration::from_secs(5))
        .await;
    assert_ne!(moved, owner_name);
    tokio::time::sleep(Duration::from_millis(700)).await;
    let gap = pinger.longest_gap_after(since);
    assert!(
        gap < 0.2,
        "the handover left a {gap:.3} s gap in the client's pings:\n{}",
        lab.logs()
    );
    assert!(pinger.replies().len() > 50);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_health_check_moves_the_address_away() {
    let Some(_slot) = lab_slot(&["python3"]).await else {
        return;
    };
    let lab = L2Lab::start(bin(), L2Options::default()).await;
    // A backend on every node, on 127.0.0.1:8080 of its namespace.
    let mut backends = lab.http_backends(8080);
    lab.configure(l2::CONFIG).await;
    let addrs = lab
        .allocate(&l2::service(
            "default",
            "web",
            "    ironlb.io/health-check: http:8080/\n",
        ))
        .await;
    let v4 = v4_of(&addrs);
    let owner_name = lab
        .wait_committed_owner(v4, None, Duration::from_secs(15))
        .await;
    let owner = lab.node_index(&owner_name);
    lab.wait_owner(v4, Duration::from_secs(10)).await;
    // The owner's backend dies: the address goes to a node whose check passes.
    backends[owner].kill();
    let moved = lab
        .wait_committed_owner(v4, Some(&owner_name), Duration::from_secs(15))
        .await;
    let moved_to = lab.node_index(&moved);
    let deadline = Instant::now() + Duration::from_secs(10);
    while lab.resolve(v4, "eth0") != vec![lab.lan.nodes[moved_to].mac.clone()] {
        assert!(
            Instant::now() < deadline,
            "the client still sees the old owner:\n{}",
            lab.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(backends);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_controller_leader_lets_no_lease_run_out() {
    let Some(_slot) = lab_slot(&[]).await else {
        return;
    };
    let mut lab = L2Lab::start(bin(), L2Options::default()).await;
    lab.configure(l2::CONFIG).await;
    let v4 = v4_of(&lab.allocate(&l2::service("default", "web", "")).await);
    let owner = lab.wait_owner(v4, Duration::from_secs(10)).await;
    let pinger = Pinger::start(&lab, v4, "leader-kill");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let since = now_epoch();
    let leader = lab.cluster.leader().await;
    lab.cluster.procs[leader].kill();
    // A new leader is elected and renews every lease; give the old leases time to run out if
    // they were going to.
    tokio::time::sleep(Duration::from_secs(3)).await;
    for node in 0..3 {
        assert_eq!(
            lab.speaker_metric(node, "ironlb_speaker_fences_total")
                .await,
            Some(0.0),
            "speaker {node} fenced during the leader change:\n{}",
            lab.logs()
        );
    }
    let gap = pinger.longest_gap_after(since);
    assert!(
        gap < 0.2,
        "the client saw a {gap:.3} s outage:\n{}",
        lab.logs()
    );
    assert_eq!(
        lab.resolve(v4, "eth0"),
        vec![lab.lan.nodes[owner].mac.clone()]
    );
    // The new leader keeps the owner, and allocations go on.
    lab.cluster.procs[leader].start(&[]);
    let next = v4_of(&lab.allocate(&l2::service("default", "after", "")).await);
    lab.wait_committed_owner(next, None, Duration::from_secs(10))
        .await;
    assert_eq!(
        lab.owners().await[&v4].as_deref(),
        Some(lab.speakers[owner].name.as_str())
    );
}

/// Losing the quorum: with `fence` (the default) the owner stops answering once its lease runs
/// out; with `hold` it keeps answering while every member it reaches says there is no quorum.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_the_control_plane_fences_by_default_and_holds_when_asked() {
    let Some(_slot) = lab_slot(&[]).await else {
        return;
    };
    for hold in [false, true] {
        let speaker_args = if hold {
            vec!["--on-control-plane-loss".to_string(), "hold".to_string()]
        } else {
            Vec::new()
        };
        let mut lab = L2Lab::start(
            bin(),
            L2Options {
                speaker_args,
                ..L2Options::default()
            },
        )
        .await;
        lab.configure(l2::CONFIG).await;
        let v4 = v4_of(&lab.allocate(&l2::service("default", "web", "")).await);
        let owner = lab.wait_owner(v4, Duration::from_secs(10)).await;
        // Two of three members gone: the last cannot form a quorum.
        for p in lab.cluster.procs.iter_mut().skip(1) {
            p.kill();
        }
        tokio::time::sleep(Duration::from_secs(3)).await;
        let answers = lab.resolve(v4, "eth0");
        let fences = lab
            .speaker_metric(owner, "ironlb_speaker_fences_total")
            .await;
        if hold {
            assert_eq!(
                answers,
                vec![lab.lan.nodes[owner].mac.clone()],
                "hold: the owner should still answer:\n{}",
                lab.logs()
            );
            assert_eq!(fences, Some(0.0));
        } else {
            assert_eq!(answers, Vec::<String>::new(), "fence: nobody may answer");
            assert_eq!(fences, Some(1.0));
        }
        // The quorum comes back: the owner answers again (or still), with a lease.
        for p in lab.cluster.procs.iter_mut().skip(1) {
            p.start(&[]);
        }
        let back = lab.wait_owner(v4, Duration::from_secs(20)).await;
        assert_eq!(back, owner, "the owner should be kept");
    }
}

/// An announcement (gratuitous ARP) queued while the lease was valid must not leave after a
/// fence: the socket task checks the lease's epoch again as each frame goes out. Here the
/// packet runtime is held up so the frame waits in the queue while the lease is revoked.
#[actix_rt::test]
async fn an_announcement_queued_before_a_fence_never_leaves_after_it() {
    use ironlb::metrics::speaker::SpeakerMetrics;
    use ironlb::speaker::responder::{ArpResponder, Own};
    use ironlb::speaker::LeaseGate;
    use std::sync::Arc;

    let Some(_slot) = lab_slot(&["tshark"]).await else {
        return;
    };
    let lan = netns::Lan::build(netns::LanOptions {
        nodes: 1,
        client: true,
        ..netns::LanOptions::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let cap = Capture::start(&lan.client().netns, "eth0", dir.path());
    // A packet runtime the test can hold up.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        tx.send(rt.handle().clone()).unwrap();
        rt.block_on(std::future::pending::<()>());
    });
    let packets = rx.recv().unwrap();
    let gate = Arc::new(LeaseGate::default());
    gate.extend_to(tokio::time::Instant::now() + Duration::from_secs(30));
    let responder = {
        let (gate, packets) = (gate.clone(), packets.clone());
        let ns = lan.nodes[0].netns.clone();
        netns::in_netns(&ns, move || {
            ArpResponder::open("eth0", gate, Arc::new(SpeakerMetrics::new()), &packets)
        })
        .unwrap()
    };
    let mac = responder.mac().to_string();
    let responder = actix::Actor::start(responder);
    let addr: std::net::Ipv4Addr = "198.51.100.77".parse().unwrap();
    // The packet thread stops for half a second; meanwhile the address is acquired (its first
    // announcement queued at once) and the lease revoked.
    packets.spawn(async { std::thread::sleep(Duration::from_millis(500)) });
    tokio::time::sleep(Duration::from_millis(20)).await;
    responder
        .send(Own {
            addresses: [addr].into(),
            epoch: gate.epoch(),
        })
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    gate.revoke();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let answers = cap.stop();
    let sent: Vec<_> = answers
        .iter()
        .filter(|a| a.addr == std::net::IpAddr::V4(addr) && a.mac == mac)
        .collect();
    assert!(
        sent.is_empty(),
        "announcements left after the fence: {sent:?}"
    );
}

/// How often the speakers of the interface test list their interfaces.
const RESCAN: Duration = Duration::from_millis(1000);

/// Waits until the client's resolution of `addr` gives exactly `want` (sorted MACs); returns
/// how long that took, or panics after `within`.
async fn wait_answers(lab: &L2Lab, addr: IpAddr, want: &[String], within: Duration) -> Duration {
    let (start, mut want) = (Instant::now(), want.to_vec());
    want.sort();
    loop {
        let got = lab.resolve(addr, "eth0");
        if got == want {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < within,
            "{addr}: answers {got:?}, expected {want:?}:\n{}",
            lab.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The committed owner of `addr`, once it is `want` (panics after `within`).
async fn wait_owned_by(lab: &L2Lab, addr: IpAddr, want: Option<&str>, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let owner = lab.owners().await.get(&addr).cloned().flatten();
        if owner.as_deref() == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{addr} owned by {owner:?}, expected {want:?}:\n{}",
            lab.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The lab pool, and a pool announced only on `lan1`, an interface no node has at first.
const LATE_LINK_CONFIG: &str = "---
apiVersion: ironlb.io/v1beta1
kind: IPAddressPool
metadata: {name: late}
spec: {addresses: [198.51.100.160/30]}
---
apiVersion: ironlb.io/v1beta1
kind: L2Advertisement
metadata: {name: late}
spec: {ipAddressPools: [late], interfaces: [lan1]}
";

/// Without `--interfaces` the speakers find their interfaces: a node's links named as
/// containers' and Docker's are (`veth-test`, `docker0`), plugged into the LAN like `eth0`,
/// are never answered on (MetalLB's default exclusions); a link plugged in after the speaker
/// started is answered on within the rescan period and reported to the leader, which places
/// an address announced only there; unplugging it stops that, crashes nothing, and plugging
/// it in again (a new index and MAC under the same name) is followed too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn excluded_interfaces_stay_silent_and_links_plugged_in_later_are_answered_on() {
    let Some(_slot) = lab_slot(&[]).await else {
        return;
    };
    let opts = L2Options {
        discover_interfaces: true,
        speaker_args: vec![
            "--interface-rescan-ms".into(),
            RESCAN.as_millis().to_string(),
        ],
        ..L2Options::default()
    };
    let lan = L2Lab::lan(&opts);
    let mut excluded = Vec::new();
    for node in 0..lan.nodes.len() {
        let n = (node + 1) as u8;
        for (ifname, tag) in [("veth-test", 7), ("docker0", 8)] {
            let mac = netns::mac_of(tag, n);
            lan.add_link(node, ifname, &mac);
            excluded.push(mac);
        }
    }
    let lab = L2Lab::start_on(lan, bin(), opts).await;
    lab.configure(&format!("{}{LATE_LINK_CONFIG}", l2::CONFIG))
        .await;
    let addrs = lab.allocate(&l2::service("default", "web", "")).await;
    let (v4, v6) = (v4_of(&addrs), v6_of(&addrs));
    let owner = lab.wait_owner(v4, Duration::from_secs(10)).await;
    let eth0 = vec![lab.lan.nodes[owner].mac.clone()];
    // Only eth0 answers: the excluded links hear the questions but stay silent.
    for addr in [v4, v6, v4] {
        let got = lab.resolve(addr, "eth0");
        assert_eq!(
            got,
            eth0,
            "{addr}: excluded links {excluded:?}:\n{}",
            lab.logs()
        );
    }
    let log = std::fs::read_to_string(&lab.speakers[owner].log).unwrap();
    for ifname in ["veth-test", "docker0"] {
        assert!(
            log.lines()
                .any(|l| l.contains(ifname) && l.contains("excluded by pattern")),
            "no exclusion logged for {ifname}:\n{log}"
        );
    }
    let svc = "apiVersion: v1\nkind: Service\nmetadata:\n  name: late\n  namespace: default\n  annotations:\n    ironlb.io/address-pool: late\nspec:\n  type: LoadBalancer\n  ports:\n  - port: 80\n";
    let late = lab.allocate(svc).await[0];
    // No node has lan1: nobody may answer for the late address.
    wait_owned_by(&lab, late, None, Duration::from_secs(5)).await;
    assert_eq!(lab.resolve(late, "eth0"), Vec::<String>::new());
    plug_unplug_and_replug(&lab, owner, v4, v6, late).await;
}

/// Plugs `lan1` into `owner` (the owner of `v4` and `v6`), unplugs it and plugs it in again,
/// checking each time who answers for the lab's addresses and for `late` (announced on
/// `lan1` only).
async fn plug_unplug_and_replug(lab: &L2Lab, owner: usize, v4: IpAddr, v6: IpAddr, late: IpAddr) {
    let eth0 = lab.lan.nodes[owner].mac.clone();
    let name = lab.speakers[owner].name.clone();
    // Within the rescan period, plus the time of a few resolutions (about a second each).
    let within = RESCAN + Duration::from_secs(4);
    for (round, tag) in [(0, 9), (1, 6)] {
        let plugged = netns::mac_of(tag, (owner + 1) as u8);
        lab.lan.add_link(owner, "lan1", &plugged);
        // The lab's addresses are announced on every interface: now on lan1 too.
        let took = wait_answers(lab, v4, &[eth0.clone(), plugged.clone()], within).await;
        eprintln!("round {round}: lan1 answered on {took:?} after it was plugged in");
        wait_answers(lab, v6, &[eth0.clone(), plugged.clone()], within).await;
        // The heartbeat reported lan1: the leader placed the late address there, and only
        // lan1 answers for it.
        wait_owned_by(lab, late, Some(&name), within).await;
        wait_answers(lab, late, std::slice::from_ref(&plugged), within).await;
        lab.lan.remove_link(owner, "lan1");
        // The speaker lives on, answering on eth0; the late address has nowhere to go.
        wait_owned_by(lab, late, None, within).await;
        wait_answers(lab, v4, std::slice::from_ref(&eth0), within).await;
        assert!(lab.speaker_ready(owner).await, "{}", lab.logs());
        assert_eq!(
            lab.speaker_metric(owner, "ironlb_speaker_fences_total")
                .await,
            Some(0.0)
        );
    }
    let log = std::fs::read_to_string(&lab.speakers[owner].log).unwrap();
    let closed = log
        .lines()
        .filter(|l| l.contains("lan1") && l.contains("no longer answering"))
        .count();
    assert_eq!(closed, 2, "each unplugging is logged:\n{log}");
}
