//! BFD against real routers in network namespaces: FRR's bfdd (with bgpd and zebra, as
//! MetalLB's FRR mode runs them) and BIRD 2's `protocol bfd`. A speaker whose BGPPeer names a
//! BFDProfile of 100 ms x 3 holds a BFD session with the router beside its BGP session; the
//! router notices a dead speaker through BFD in well under a second, though the BGP hold time
//! is 90 s, and the speaker ends its BGP session with Cease/10 ("BFD Down", RFC 9384) when the
//! router's BFD goes silent. Needs root and the routers (CI runs it with IRONLB_REQUIRE_LAB=1,
//! where anything missing fails).

use std::net::IpAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use ipnet::IpNet;
use ironlb_lab::bgp::{Router, RouterKind};
use ironlb_lab::bgp_lab::{frr_neighbor, lab_slot, BgpLab, ROUTER_ASN, SPEAKER_ASN};
use ironlb_lab::l2;
use ironlb_lab::netns::Lan;

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_ironlb"))
}

/// The BGP hold time on both sides: BFD, not BGP, must be what notices a failure.
const HOLD_SECS: u64 = 90;
/// A loose bound on detection by BFD (the detection time is 3 x 100 ms).
const BFD_BOUND: Duration = Duration::from_secs(5);

/// A pool off the LAN, announced to the router, whose BGPPeer uses BFDProfile `fast`.
fn config(router: IpAddr) -> String {
    format!(
        "apiVersion: ironlb.io/v1beta1
kind: IPAddressPool
metadata: {{name: bgp}}
spec: {{addresses: [203.0.113.0/24]}}
---
apiVersion: ironlb.io/v1beta1
kind: BFDProfile
metadata: {{name: fast}}
spec: {{receiveInterval: 100, transmitInterval: 100, detectMultiplier: 3}}
---
apiVersion: ironlb.io/v1beta1
kind: BGPPeer
metadata: {{name: router}}
spec: {{myASN: {SPEAKER_ASN}, peerASN: {ROUTER_ASN}, peerAddress: {router}, holdTime: {HOLD_SECS}s, connectTime: 2s, bfdProfile: fast}}
---
apiVersion: ironlb.io/v1beta1
kind: BGPAdvertisement
metadata: {{name: bgp}}
spec: {{ipAddressPools: [bgp]}}
"
    )
}

/// bgpd's configuration: passive sessions with `nodes`, hold time 90 s, BFD with profile
/// `fast`.
fn frr_bgpd_conf(dir: &Path, router_id: IpAddr, nodes: &[IpAddr]) -> String {
    let mut conf = format!(
        "hostname r\nlog file {}/bgpd.log\n!\nrouter bgp {ROUTER_ASN}\n bgp router-id {router_id}\n no bgp ebgp-requires-policy\n no bgp network import-check\n",
        dir.display()
    );
    for n in nodes {
        conf.push_str(&format!(
            " neighbor {n} remote-as {SPEAKER_ASN}\n neighbor {n} passive\n neighbor {n} timers 30 {HOLD_SECS}\n neighbor {n} bfd profile fast\n"
        ));
    }
    conf.push_str("!\n");
    conf
}

const BFDD_CONF: &str =
    "bfd\n profile fast\n  transmit-interval 100\n  receive-interval 100\n  detect-multiplier 3\n !\n!\n";

/// A lab of one speaker and FRR (zebra, bgpd, bfdd) in the router namespace.
async fn frr_lab() -> BgpLab {
    BgpLab::start_with(bin(), 1, |lan, _| {
        let r = lan.router.clone().expect("a router");
        let dir = std::env::temp_dir().join(format!("{}-router", lan.prefix()));
        std::fs::create_dir_all(&dir).expect("router directory");
        let nodes: Vec<IpAddr> = lan.nodes.iter().map(|n| IpAddr::V4(n.addr)).collect();
        let bgpd = frr_bgpd_conf(&dir, IpAddr::V4(r.addr), &nodes);
        Router::start_frr_bfd(&r.netns, &dir, &bgpd, BFDD_CONF)
    })
    .await
}

/// Configures the speakers, announces one Service and waits for its route and for BFD Up.
async fn routes_and_bfd_up(b: &BgpLab, bfd_up: impl Fn(&BgpLab) -> bool) -> IpNet {
    b.lab.configure(&config(b.router_addr())).await;
    let node = b.node(0);
    wait(b, Duration::from_secs(30), "BGP established", |b| {
        b.router.established(node)
    })
    .await;
    let addrs = b.lab.allocate(&l2::service("web", "shop", "")).await;
    let v4 = IpNet::from(*addrs.iter().find(|a| a.is_ipv4()).expect("an IPv4 address"));
    b.router.wait_paths(v4, 1, Duration::from_secs(20));
    wait(b, Duration::from_secs(15), "BFD up at the router", bfd_up).await;
    wait_speaker_bfd_up(b).await;
    v4
}

/// Waits until the speaker's metrics say its BFD session is Up.
async fn wait_speaker_bfd_up(b: &BgpLab) {
    let metric = "ironlb_bfd_session_up{peer=\"router\"}";
    let deadline = Instant::now() + Duration::from_secs(10);
    while b.lab.speaker_metric(0, metric).await != Some(1.0) {
        assert!(Instant::now() < deadline, "{metric} not 1\n{}", b.logs());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Polls `ok` every 20 ms until it holds; fails with the lab's logs after `within`.
async fn wait(b: &BgpLab, within: Duration, what: &str, ok: impl Fn(&BgpLab) -> bool) {
    let deadline = Instant::now() + within;
    while !ok(b) {
        assert!(
            Instant::now() < deadline,
            "{what}: not within {within:?}\n{}\n{}",
            b.router.describe(),
            b.logs()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// FRR's bfdd session with `addr`, as JSON.
fn frr_bfd_peer(router: &Router, addr: IpAddr) -> serde_json::Value {
    let text = router.vtysh("show bfd peers json");
    let all: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    all.as_array()
        .into_iter()
        .flatten()
        .find(|p| p["peer"].as_str() == Some(&addr.to_string()))
        .cloned()
        .unwrap_or_default()
}

/// Fails the speaker's node (links down, then the speaker SIGKILLed: no NOTIFICATION, no BFD
/// AdminDown, and no FIN from its kernel, which a bare SIGKILL would send and BGP would see at
/// once) and returns how long the router took to withdraw `prefix`.
async fn kill_and_time_withdrawal(b: &mut BgpLab, prefix: IpNet) -> Duration {
    let t = Instant::now();
    b.lab.fail_node(0);
    wait(b, BFD_BOUND, "withdrawn by BFD", |b| {
        !b.router.routes().contains_key(&prefix)
    })
    .await;
    t.elapsed()
}

/// `ironlb ctl bfd` against the speaker of node `i` (its metrics listener, port 7472 in the
/// lab): the table's lines.
async fn ctl_bfd(b: &BgpLab, i: usize) -> Vec<String> {
    let speaker = format!("http://{}:7472", b.node(i));
    let out = tokio::process::Command::new(bin())
        .args(["ctl", "bfd", "--speaker", &speaker])
        .output()
        .await
        .expect("running ironlb ctl bfd");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "ctl bfd: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout.lines().map(str::to_owned).collect()
}

/// FRR bgpd + bfdd: the session comes up with BFD on both sides, and `ironlb ctl bfd` shows it
/// Up; a failed node's routes go within the BFD bound though the hold time is 90 s, FRR saying
/// why (detection time expired, BGP reset by BFD).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frr_bfd_up_and_a_killed_speaker_is_withdrawn_by_bfd() {
    let Some(_slot) = lab_slot(&[
        "vtysh",
        "/usr/lib/frr/bgpd",
        "/usr/lib/frr/zebra",
        "/usr/lib/frr/bfdd",
    ])
    .await
    else {
        return;
    };
    let mut b = frr_lab().await;
    let node = b.node(0);
    let prefix = routes_and_bfd_up(&b, |b| frr_bfd_peer(&b.router, node)["status"] == "up").await;
    let peer = frr_bfd_peer(&b.router, node);
    assert_eq!(peer["remote-detect-multiplier"], 3, "{peer}");
    assert_eq!(peer["remote-transmit-interval"], 100, "{peer}");
    let neighbor = frr_neighbor(&b.router, node);
    assert!(
        neighbor["peerBfdInfo"].is_object(),
        "the neighbor has no BFD: {neighbor}"
    );
    assert_eq!(
        neighbor["bgpTimerHoldTimeMsecs"],
        HOLD_SECS * 1000,
        "{neighbor}"
    );
    let table = ctl_bfd(&b, 0).await;
    eprintln!("ironlb ctl bfd:\n{}", table.join("\n"));
    assert!(
        table.first().is_some_and(|h| h.starts_with("PEER")),
        "{table:?}"
    );
    let (router, node_s) = (b.router_addr().to_string(), node.to_string());
    // PEER ADDRESS LOCAL HOP STATE REMOTE, then the diagnostic and the timers.
    let up = [
        "router",
        router.as_str(),
        node_s.as_str(),
        "single",
        "up",
        "up",
    ];
    let row_up = |l: &String| l.split_whitespace().collect::<Vec<_>>().starts_with(&up);
    assert!(table.iter().any(row_up), "{table:?}");

    let took = kill_and_time_withdrawal(&mut b, prefix).await;
    eprintln!("FRR withdrew the killed speaker's route after {took:?}");
    let peer = frr_bfd_peer(&b.router, node);
    assert_eq!(peer["status"], "down", "{peer}");
    assert_eq!(
        peer["diagnostic"], "control detection time expired",
        "{peer}"
    );
    let n = frr_neighbor(&b.router, node);
    eprintln!(
        "FRR: last reset {}, last notification {} ({})",
        n["lastResetDueTo"], n["lastNotificationReason"], n["lastErrorCodeSubcode"]
    );
    assert!(reset_by_bfd(&n), "not reset by BFD: {n}");
}

/// Whether FRR's neighbor says its last reset came from BFD: "BFD down received", or the
/// NOTIFICATION bgpd sent for it (Cease/10, "BFD Down").
fn reset_by_bfd(n: &serde_json::Value) -> bool {
    let has = |field: &str| n[field].as_str().is_some_and(|r| r.contains("BFD"));
    has("lastResetDueTo") || has("lastNotificationReason") || n["lastErrorCodeSubcode"] == "060A"
}

/// The router's BFD goes silent (its packets to the speaker dropped in the router namespace):
/// the speaker ends its BGP session with Cease/10, which FRR receives, and reconnects.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frr_bfd_silent_makes_the_speaker_send_cease_bfd_down() {
    let Some(_slot) = lab_slot(&[
        "vtysh",
        "/usr/lib/frr/bgpd",
        "/usr/lib/frr/zebra",
        "/usr/lib/frr/bfdd",
        "iptables",
    ])
    .await
    else {
        return;
    };
    let b = frr_lab().await;
    let node = b.node(0);
    routes_and_bfd_up(&b, |b| frr_bfd_peer(&b.router, node)["status"] == "up").await;
    let drop_bfd = ["OUTPUT", "-p", "udp", "--dport", "3784", "-j", "DROP"];
    let mut add = vec!["iptables", "-A"];
    add.extend(drop_bfd);
    Lan::exec_in(&b.router.netns, &add);
    let t = Instant::now();
    let notified = |b: &BgpLab| {
        let n = frr_neighbor(&b.router, node);
        n["lastNotificationReason"]
            .as_str()
            .is_some_and(|r| r.contains("BFD"))
            || n["lastResetDueTo"]
                .as_str()
                .is_some_and(|r| r.contains("Cease") && r.contains("BFD"))
    };
    wait(&b, BFD_BOUND, "FRR got Cease/BFD Down", notified).await;
    let n = frr_neighbor(&b.router, node);
    eprintln!(
        "the speaker sent Cease/10 after {:?}; FRR: last reset {}, last notification {} ({})",
        t.elapsed(),
        n["lastResetDueTo"],
        n["lastNotificationReason"],
        n["lastErrorCodeSubcode"]
    );
    let metric = "ironlb_bgp_notifications_total{peer=\"router\",direction=\"sent\",code=\"6/10\"}";
    let sent = b.lab.speaker_metric(0, metric).await;
    assert!(sent.is_some_and(|n| n >= 1.0), "{metric}: {sent:?}");
    // BFD stays down (its packets are still dropped); BGP comes back without it.
    b.wait_up(&[0]);
}

/// BIRD 2: `protocol bfd` and `bfd on` on the BGP session; a killed speaker's routes go within
/// the BFD bound though the hold time is 90 s (the node fails: links down, speaker killed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bird_bfd_up_and_a_killed_speaker_is_withdrawn_by_bfd() {
    let Some(_slot) = lab_slot(&["bird"]).await else {
        return;
    };
    let mut b = BgpLab::start_with(bin(), 1, |lan, _| {
        let r = lan.router.clone().expect("a router");
        let dir = std::env::temp_dir().join(format!("{}-router", lan.prefix()));
        let cfg = ironlb_lab::bgp_lab::router_config(RouterKind::Bird, lan, r.addr);
        let router = Router::start(&r.netns, &dir, &cfg);
        bird_with_bfd(&router, &dir);
        router
    })
    .await;
    let node = b.node(0);
    let prefix = routes_and_bfd_up(&b, |b| {
        b.router
            .birdc("show bfd sessions")
            .lines()
            .any(|l| l.starts_with(&node.to_string()) && l.contains(" Up "))
    })
    .await;
    let took = kill_and_time_withdrawal(&mut b, prefix).await;
    eprintln!("BIRD withdrew the killed speaker's route after {took:?}");
    let protocols = b.router.birdc("show protocols all spk1");
    assert!(protocols.contains("BFD session down"), "{protocols}");
}

/// Turns BFD on in the running BIRD: a `protocol bfd` at 100 ms x 3, `bfd on` in each BGP
/// protocol, the hold time at 90 s; then `configure`.
fn bird_with_bfd(router: &Router, dir: &Path) {
    let path = dir.join("bird.conf");
    let conf = std::fs::read_to_string(&path).expect("bird.conf");
    let mut conf = conf.replace(
        "  hold time 9;\n",
        &format!("  hold time {HOLD_SECS};\n  bfd on;\n"),
    );
    conf.push_str(
        "protocol bfd {\n  interface \"*\" { min rx interval 100 ms; min tx interval 100 ms; multiplier 3; };\n}\n",
    );
    std::fs::write(&path, conf).expect("bird.conf");
    let out = router.birdc("configure");
    assert!(
        out.contains("Reconfigured") || out.contains("Reconfiguration in progress"),
        "birdc configure: {out}"
    );
}
