//! BGP mode against real routers (GoBGP, BIRD, FRR from Debian) in network namespaces: the
//! sessions, the routes and their attributes as each router reads them, ECMP through zebra into
//! the kernel, withdrawals, TCP MD5 and graceful restart. Needs root and the routers (CI runs it
//! with IRONLB_REQUIRE_LAB=1, where anything missing fails).
//!
//! One lab at a time, as in the Layer 2 tests: two cores shared by several labs would measure
//! the machine.

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use ipnet::IpNet;
use ironlb_lab::bgp::{Learned, RouterKind};
use ironlb_lab::bgp_lab::{lab_slot, BgpLab, ROUTER_ASN, SPEAKER_ASN};
use ironlb_lab::l2;

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_ironlb"))
}

/// A pool off the LAN, announced over BGP with communities, a large community and (for iBGP)
/// a local preference; `peer` is the BGPPeer's spec.
fn config(peer_spec: &str) -> String {
    config_with(peer_spec, "")
}

/// [`config`] with more lines in the BGPAdvertisement's spec.
fn config_with(peer_spec: &str, adv_extra: &str) -> String {
    format!(
        "apiVersion: ironlb.io/v1beta1
kind: IPAddressPool
metadata: {{name: bgp}}
spec: {{addresses: [203.0.113.0/24, 2001:db8:113::/64]}}
---
apiVersion: ironlb.io/v1beta1
kind: BGPPeer
metadata: {{name: router}}
spec: {{{peer_spec}}}
---
apiVersion: ironlb.io/v1beta1
kind: Community
metadata: {{name: aliases}}
spec:
  communities:
  - {{name: edge, value: \"64512:300\"}}
---
apiVersion: ironlb.io/v1beta1
kind: BGPAdvertisement
metadata: {{name: bgp}}
spec:
  ipAddressPools: [bgp]
  localPref: 150
  communities: [\"64512:100\", no-export, edge, \"large:64512:7:9\"]
{adv_extra}"
    )
}

fn host(a: IpAddr) -> IpNet {
    IpNet::from(a)
}

fn sorted_hops(paths: &[Learned]) -> Vec<IpAddr> {
    let mut v: Vec<IpAddr> = paths.iter().map(|p| p.next_hop).collect();
    v.sort();
    v
}

/// Checks one path's attributes as the advertisement above sets them.
fn check_attrs(p: &Learned, as_path: &[u32], ibgp: bool) {
    assert_eq!(p.as_path, as_path, "AS path of {p:?}");
    let mut want = vec!["64512:100", "64512:300", "65535:65281"];
    want.sort();
    assert_eq!(p.communities, want, "communities of {p:?}");
    assert_eq!(
        p.large_communities,
        vec!["64512:7:9"],
        "large communities of {p:?}"
    );
    if ibgp {
        assert_eq!(p.local_pref, Some(150), "local preference of {p:?}");
    }
}

fn peer_spec(my: u32, peer: u32, router: IpAddr, extra: &str) -> String {
    format!("myASN: {my}, peerASN: {peer}, peerAddress: {router}, holdTime: 9s, keepaliveTime: 3s, connectTime: 2s{extra}")
}

/// eBGP (or iBGP) with one router: the session (over IPv4, carrying both families with
/// dualStackAddressFamily) comes up, the router holds the IPv4 and IPv6 routes of a Service
/// with each node as a next hop and the attributes set, and releasing the Service withdraws
/// them.
async fn routes_reach(kind: RouterKind, my: u32, peer: u32) {
    let ibgp = my == peer;
    let b = BgpLab::start(bin(), kind, 2, |c, _| {
        c.asn = peer;
        for n in &mut c.neighbors {
            n.asn = my;
        }
    })
    .await;
    let spec = peer_spec(my, peer, b.router_addr(), ", dualStackAddressFamily: true");
    b.lab.configure(&config(&spec)).await;
    b.wait_up(&[0, 1]);
    let addrs = b.lab.allocate(&l2::service("web", "shop", "")).await;
    let v4 = *addrs.iter().find(|a| a.is_ipv4()).expect("IPv4");
    let v6 = *addrs.iter().find(|a| a.is_ipv6()).expect("IPv6");
    let as_path: Vec<u32> = if ibgp { vec![] } else { vec![my] };

    let paths = b.router.wait_paths(host(v4), 2, Duration::from_secs(20));
    assert_eq!(
        sorted_hops(&paths),
        vec![b.node(0), b.node(1)],
        "{}",
        b.logs()
    );
    for p in &paths {
        check_attrs(p, &as_path, ibgp);
    }
    let paths6 = b.router.wait_paths(host(v6), 2, Duration::from_secs(20));
    assert_eq!(
        sorted_hops(&paths6),
        vec![b.node6(0), b.node6(1)],
        "{}",
        b.logs()
    );
    for p in &paths6 {
        check_attrs(p, &as_path, ibgp);
    }
    for node in 0..2 {
        let metric = |name: &str| format!("{name}{{peer=\"router\"}}");
        let up = b
            .lab
            .speaker_metric(node, &metric("ironlb_bgp_session_up"))
            .await;
        let announced = b
            .lab
            .speaker_metric(node, &metric("ironlb_bgp_announced_prefixes"))
            .await;
        let updates = b
            .lab
            .speaker_metric(node, &metric("ironlb_bgp_updates_sent_total"))
            .await;
        assert_eq!(up, Some(1.0), "session_up of node {node}");
        assert_eq!(announced, Some(2.0), "announced_prefixes of node {node}");
        assert!(
            updates.is_some_and(|u| u >= 1.0),
            "updates_sent of node {node}: {updates:?}"
        );
    }

    b.lab.release("web", "shop").await;
    b.router.wait_paths(host(v4), 0, Duration::from_secs(10));
    b.router.wait_paths(host(v6), 0, Duration::from_secs(10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gobgp_ebgp_routes_and_withdrawals() {
    let Some(_slot) = lab_slot(&["gobgpd", "gobgp"]).await else {
        return;
    };
    routes_reach(RouterKind::GoBgp, SPEAKER_ASN, ROUTER_ASN).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gobgp_ibgp_four_octet_asn() {
    let Some(_slot) = lab_slot(&["gobgpd", "gobgp"]).await else {
        return;
    };
    routes_reach(RouterKind::GoBgp, 4_200_000_001, 4_200_000_001).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bird_ebgp_four_octet_speaker() {
    let Some(_slot) = lab_slot(&["bird"]).await else {
        return;
    };
    routes_reach(RouterKind::Bird, 4_200_000_010, ROUTER_ASN).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bird_ibgp() {
    let Some(_slot) = lab_slot(&["bird"]).await else {
        return;
    };
    routes_reach(RouterKind::Bird, SPEAKER_ASN, SPEAKER_ASN).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frr_ebgp() {
    let Some(_slot) = lab_slot(&["vtysh", "/usr/lib/frr/bgpd"]).await else {
        return;
    };
    routes_reach(RouterKind::Frr, SPEAKER_ASN, ROUTER_ASN).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frr_ibgp_four_octet_asn() {
    let Some(_slot) = lab_slot(&["vtysh", "/usr/lib/frr/bgpd"]).await else {
        return;
    };
    routes_reach(RouterKind::Frr, 4_200_000_001, 4_200_000_001).await;
}

/// Waits until the router namespace's kernel has exactly `want` as next hops of `prefix`.
async fn wait_kernel(b: &BgpLab, prefix: IpNet, want: &[IpAddr], within: Duration, what: &str) {
    let deadline = std::time::Instant::now() + within;
    let mut want = want.to_vec();
    want.sort();
    loop {
        let have = b.router.kernel_next_hops(prefix);
        if have == want {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: the kernel has {have:?} for {prefix}, not {want:?}\n{}\n{}",
            b.router.describe(),
            b.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// FRR with zebra and three speakers: the kernel gets a route with three next hops (ECMP). A
/// node whose health check fails withdraws at once, a node that dies drops out within the
/// hold time (9 s), and releasing the Service removes the route.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frr_zebra_multipath_follows_eligibility_and_failures() {
    let Some(_slot) = lab_slot(&[
        "vtysh",
        "/usr/lib/frr/bgpd",
        "/usr/lib/frr/zebra",
        "python3",
    ])
    .await
    else {
        return;
    };
    let mut b = BgpLab::start(bin(), RouterKind::Frr, 3, |c, _| c.kernel = true).await;
    let mut backends = b.lab.http_backends(8080);
    let spec = peer_spec(SPEAKER_ASN, ROUTER_ASN, b.router_addr(), "");
    b.lab.configure(&config(&spec)).await;
    b.wait_up(&[0, 1, 2]);
    let addrs = b
        .lab
        .allocate(&l2::service(
            "web",
            "shop",
            "    ironlb.io/health-check: http:8080/\n",
        ))
        .await;
    let v4 = host(*addrs.iter().find(|a| a.is_ipv4()).expect("IPv4"));
    let all = [b.node(0), b.node(1), b.node(2)];
    wait_kernel(&b, v4, &all, Duration::from_secs(20), "three speakers").await;

    // Node 3's backend dies: its health check fails, it is no longer eligible.
    backends[2].kill();
    wait_kernel(
        &b,
        v4,
        &all[..2],
        Duration::from_secs(10),
        "node 3 unhealthy",
    )
    .await;

    // Node 2 fails outright (links down, speaker killed): only the hold timer tells FRR.
    b.lab.fail_node(1);
    wait_kernel(&b, v4, &all[..1], Duration::from_secs(12), "node 2 failed").await;

    b.lab.release("web", "shop").await;
    wait_kernel(&b, v4, &[], Duration::from_secs(10), "released").await;
    drop(backends);
}

/// TCP MD5 (RFC 2385): the right password establishes the session; a wrong one or none never
/// does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn md5_right_password_establishes_wrong_or_missing_never() {
    let Some(_slot) = lab_slot(&["gobgpd", "gobgp"]).await else {
        return;
    };
    let b = BgpLab::start(bin(), RouterKind::GoBgp, 1, |c, _| {
        c.neighbors[0].password = Some("s3cret-md5".into());
    })
    .await;
    let router = b.router_addr();
    let with = |extra: &str| config(&peer_spec(SPEAKER_ASN, ROUTER_ASN, router, extra));
    b.lab.configure(&with(", password: s3cret-md5")).await;
    b.wait_up(&[0]);

    b.lab.configure(&with(", password: wrong-md5")).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    b.never_established(b.node(0), Duration::from_secs(8), "wrong password")
        .await;

    b.lab.configure(&with("")).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    b.never_established(b.node(0), Duration::from_secs(8), "no password")
        .await;

    // And back: the right one works again.
    b.lab.configure(&with(", password: s3cret-md5")).await;
    b.wait_up(&[0]);
}

/// Asserts `prefix` keeps a path from `hop` through `for_` (the router keeps forwarding).
async fn stays(b: &BgpLab, prefix: IpNet, hop: IpAddr, for_: Duration, what: &str) -> Learned {
    let deadline = std::time::Instant::now() + for_;
    loop {
        let path = b
            .router
            .routes()
            .remove(&prefix)
            .unwrap_or_default()
            .into_iter()
            .find(|p| p.next_hop == hop);
        let Some(path) = path else {
            panic!(
                "{what}: the router dropped {prefix} via {hop}\n{}",
                b.logs()
            );
        };
        if std::time::Instant::now() >= deadline {
            return path;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Graceful restart (RFC 4724): a speaker that dies (SIGKILL) or is restarted (SIGTERM) leaves
/// its routes with the router, marked stale, and once it is back and has sent its table again
/// they are fresh; the route never goes away in between.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_restart_keeps_routes_while_the_speaker_restarts() {
    let Some(_slot) = lab_slot(&["gobgpd", "gobgp"]).await else {
        return;
    };
    let mut b = BgpLab::start(bin(), RouterKind::GoBgp, 1, |c, _| {
        c.graceful_restart = true;
    })
    .await;
    let spec = peer_spec(
        SPEAKER_ASN,
        ROUTER_ASN,
        b.router_addr(),
        ", enableGracefulRestart: true",
    );
    b.lab.configure(&config(&spec)).await;
    b.wait_up(&[0]);
    let addrs = b.lab.allocate(&l2::service("web", "shop", "")).await;
    let v4 = host(*addrs.iter().find(|a| a.is_ipv4()).expect("IPv4"));
    let hop = b.node(0);
    b.router.wait_paths(v4, 1, Duration::from_secs(20));

    for (how, stop) in [("SIGKILL", true), ("SIGTERM", false)] {
        if stop {
            b.lab.speakers[0].kill();
        } else {
            b.lab.speakers[0].terminate();
        }
        let kept = stays(&b, v4, hop, Duration::from_secs(3), how).await;
        assert!(
            kept.stale,
            "{how}: the kept route is not marked stale: {kept:?}"
        );
        b.lab.speakers[0].start();
        // Back: the session is up again and the route is refreshed, never having gone.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let p = stays(&b, v4, hop, Duration::ZERO, how).await;
            if !p.stale && b.router.established(hop) {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{how}: the route was not refreshed: {p:?}\n{}",
                b.logs()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// A session over IPv6 with dualStackAddressFamily carries both families (IPv4 routes with the
/// node's IPv4 address as next hop), and aggregation lengths announce one prefix for the addresses inside it, withdrawn
/// only when the last of them is released.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipv6_transport_and_aggregated_prefixes() {
    let Some(_slot) = lab_slot(&["gobgpd", "gobgp"]).await else {
        return;
    };
    // The router's neighbors are the nodes' IPv6 addresses.
    let b = BgpLab::start(bin(), RouterKind::GoBgp, 2, |c, lan| {
        for (n, host) in c.neighbors.iter_mut().zip(&lan.nodes) {
            n.addr = IpAddr::V6(host.addr6);
        }
    })
    .await;
    let r = b.lab.lan.router.clone().expect("a router");
    let spec = peer_spec(
        SPEAKER_ASN,
        ROUTER_ASN,
        IpAddr::V6(r.addr6),
        ", dualStackAddressFamily: true",
    );
    b.lab
        .configure(&config_with(
            &spec,
            "  aggregationLength: 28\n  aggregationLengthV6: 124\n",
        ))
        .await;
    for n in 0..2 {
        b.router
            .wait_established(b.node6(n), Duration::from_secs(30));
    }
    let one = b.lab.allocate(&l2::service("web", "a", "")).await;
    let two = b.lab.allocate(&l2::service("web", "b", "")).await;
    let agg = |a: IpAddr, len: u8| IpNet::new(a, len).expect("prefix").trunc();
    let v4 = |v: &[IpAddr]| *v.iter().find(|a| a.is_ipv4()).expect("IPv4");
    let v6 = |v: &[IpAddr]| *v.iter().find(|a| a.is_ipv6()).expect("IPv6");
    let p4 = agg(v4(&one), 28);
    let p6 = agg(v6(&one), 124);
    assert_eq!(agg(v4(&two), 28), p4, "both IPv4 addresses in one /28");
    assert_eq!(agg(v6(&two), 124), p6, "both IPv6 addresses in one /124");
    let paths = b.router.wait_paths(p4, 2, Duration::from_secs(20));
    assert_eq!(
        sorted_hops(&paths),
        vec![b.node(0), b.node(1)],
        "{}",
        b.logs()
    );
    let paths6 = b.router.wait_paths(p6, 2, Duration::from_secs(20));
    assert_eq!(
        sorted_hops(&paths6),
        vec![b.node6(0), b.node6(1)],
        "{}",
        b.logs()
    );
    // Nothing but the aggregates.
    let all = b.router.routes();
    assert_eq!(
        all.keys().copied().collect::<Vec<_>>(),
        vec![p4, p6],
        "{all:?}"
    );

    b.lab.release("web", "a").await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    b.router.wait_paths(p4, 2, Duration::from_secs(1));
    b.lab.release("web", "b").await;
    b.router.wait_paths(p4, 0, Duration::from_secs(10));
    b.router.wait_paths(p6, 0, Duration::from_secs(10));
}
