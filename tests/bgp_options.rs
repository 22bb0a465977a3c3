//! The BGPPeer and BGPAdvertisement options against a real router (FRR's bgpd, from Debian) in
//! network namespaces: dynamicASN, sourceAddress, ebgpMultiHop to a router two hops away,
//! routerID, the advertisements' nodeSelectors and peers, the address families of a session
//! (dualStackAddressFamily, disableMP) and vrf. Each option is checked from the router's side:
//! what FRR shows of the session and of the routes it received. Needs root and FRR (CI runs it
//! with IRONLB_REQUIRE_LAB=1, where anything missing fails).

use std::net::IpAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use ipnet::IpNet;
use ironlb_lab::bgp::{Neighbor, Router, RouterKind};
use ironlb_lab::bgp_lab::{
    self, frr_accepted, frr_configure, frr_neighbor, lab_slot, BgpLab, ROUTER_ASN, SPEAKER_ASN,
};
use ironlb_lab::l2;
use ironlb_lab::netns::Lan;

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_ironlb"))
}

const FRR: [&str; 2] = ["vtysh", "/usr/lib/frr/bgpd"];

/// A second address of node 1 on the LAN, for sourceAddress.
const SECOND: &str = "198.51.100.201";

/// A BGPPeer named `name` with the test timers and `extra` fields.
fn peer(name: &str, my: u32, router: IpAddr, extra: &str) -> String {
    format!(
        "---\napiVersion: ironlb.io/v1beta1\nkind: BGPPeer\nmetadata: {{name: {name}}}\n\
         spec: {{myASN: {my}, peerAddress: '{router}', holdTime: 9s, keepaliveTime: 3s, \
         connectTime: 2s{extra}}}\n"
    )
}

/// A BGPPeer to a router of AS [`ROUTER_ASN`].
fn ebgp(name: &str, router: IpAddr, extra: &str) -> String {
    peer(
        name,
        SPEAKER_ASN,
        router,
        &format!(", peerASN: {ROUTER_ASN}{extra}"),
    )
}

/// A dual-stack pool off the LAN, the `peers` documents, and one BGPAdvertisement of the pool
/// with `adv` lines added to its spec.
fn config(peers: &str, adv: &str) -> String {
    format!(
        "apiVersion: ironlb.io/v1beta1\nkind: IPAddressPool\nmetadata: {{name: bgp}}\n\
         spec: {{addresses: [203.0.113.0/24, '2001:db8:113::/64']}}\n{peers}---\n\
         apiVersion: ironlb.io/v1beta1\nkind: BGPAdvertisement\nmetadata: {{name: bgp}}\n\
         spec:\n  ipAddressPools: [bgp]\n{adv}"
    )
}

/// Allocates a dual-stack Service; its IPv4 and IPv6 host prefixes.
async fn service(b: &BgpLab, name: &str) -> (IpNet, IpNet) {
    let addrs = b.lab.allocate(&l2::service("web", name, "")).await;
    let v4 = addrs.iter().find(|a| a.is_ipv4()).expect("IPv4");
    let v6 = addrs.iter().find(|a| a.is_ipv6()).expect("IPv6");
    (IpNet::from(*v4), IpNet::from(*v6))
}

/// Waits until `check` holds (panics with `what` and the logs after `within`).
async fn wait_for(b: &BgpLab, within: Duration, what: &str, check: impl Fn() -> bool) {
    let deadline = Instant::now() + within;
    while !check() {
        assert!(
            Instant::now() < deadline,
            "{what}\n{}\n{}",
            b.router.describe(),
            b.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A speaker metric of the peer named `peer` (`name{peer="..."}`).
async fn peer_metric(b: &BgpLab, node: usize, name: &str, peer: &str) -> Option<f64> {
    let key = format!("{name}{{peer=\"{peer}\"}}");
    b.lab.speaker_metric(node, &key).await
}

/// dynamicASN: with the kind of session the router's AS makes, it comes up and the router sees
/// our AS; with the other kind the speaker refuses the router's OPEN (Bad Peer AS) and the
/// session never comes up.
async fn dynamic_asn(router_asn: u32, right: &str, wrong: &str) {
    let b = BgpLab::start(bin(), RouterKind::Frr, 1, |c, _| c.asn = router_asn).await;
    let with = |mode: &str| {
        let extra = format!(", dynamicASN: {mode}");
        config(&peer("router", SPEAKER_ASN, b.router_addr(), &extra), "")
    };
    b.lab.configure(&with(right)).await;
    b.wait_up(&[0]);
    let n = frr_neighbor(&b.router, b.node(0));
    assert_eq!(n["remoteAs"].as_u64(), Some(u64::from(SPEAKER_ASN)), "{n}");
    assert_eq!(n["localAs"].as_u64(), Some(u64::from(router_asn)), "{n}");

    b.lab.configure(&with(wrong)).await;
    let node = b.node(0);
    wait_for(&b, Duration::from_secs(10), "the session stays up", || {
        !b.router.established(node)
    })
    .await;
    b.never_established(node, Duration::from_secs(4), wrong)
        .await;
    let bad_peer_as =
        "ironlb_bgp_notifications_total{peer=\"router\",direction=\"sent\",code=\"2/2\"}";
    let sent = b.lab.speaker_metric(0, bad_peer_as).await;
    assert!(sent.is_some_and(|n| n >= 1.0), "{bad_peer_as}: {sent:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamic_asn_external_peers_with_another_as_and_refuses_our_own() {
    let Some(_slot) = lab_slot(&FRR).await else {
        return;
    };
    dynamic_asn(ROUTER_ASN, "external", "internal").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamic_asn_internal_peers_with_our_own_as_and_refuses_another() {
    let Some(_slot) = lab_slot(&FRR).await else {
        return;
    };
    dynamic_asn(SPEAKER_ASN, "internal", "external").await;
}

/// sourceAddress: the session comes from the node's second address (the router knows only
/// that one as a neighbor), which is also the routes' next hop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn source_address_is_where_the_router_sees_the_session_from() {
    let Some(_slot) = lab_slot(&FRR).await else {
        return;
    };
    let second: IpAddr = SECOND.parse().expect("address");
    let b = BgpLab::start(bin(), RouterKind::Frr, 1, |c, lan| {
        add_second_address(lan);
        c.neighbors[0].addr = second;
    })
    .await;
    let extra = format!(", sourceAddress: {SECOND}");
    let peers = ebgp("router", b.router_addr(), &extra);
    b.lab.configure(&config(&peers, "")).await;
    b.router.wait_established(second, Duration::from_secs(20));
    let n = frr_neighbor(&b.router, second);
    assert_eq!(n["hostForeign"].as_str(), Some(SECOND), "{n}");
    let (v4, _) = service(&b, "a").await;
    let paths = b.router.wait_paths(v4, 1, Duration::from_secs(10));
    assert_eq!(paths[0].next_hop, second, "{paths:?}");
}

/// Node 1's second address on the LAN.
fn add_second_address(lan: &Lan) {
    let cidr = format!("{SECOND}/24");
    let ns = &lan.nodes[0].netns;
    Lan::exec_in(ns, &["ip", "addr", "add", &cidr, "dev", "eth0"]);
}

/// routerID: the router shows the configured BGP identifier, not the node's address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn router_id_is_the_identifier_the_router_shows() {
    let Some(_slot) = lab_slot(&FRR).await else {
        return;
    };
    let b = BgpLab::start(bin(), RouterKind::Frr, 1, |_, _| {}).await;
    let peers = ebgp("router", b.router_addr(), ", routerID: 192.0.2.77");
    b.lab.configure(&config(&peers, "")).await;
    b.wait_up(&[0]);
    let n = frr_neighbor(&b.router, b.node(0));
    assert_eq!(n["remoteRouterId"].as_str(), Some("192.0.2.77"), "{n}");
}

/// ebgpMultiHop: a router two hops away (behind the router namespace, which forwards) is out
/// of reach of a TTL-1 session; with ebgpMultiHop the session comes up and routes arrive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ebgp_multi_hop_reaches_a_router_two_hops_away_and_is_needed() {
    let Some(_slot) = lab_slot(&FRR).await else {
        return;
    };
    let far: IpAddr = "192.0.2.2".parse().expect("address");
    let b = BgpLab::start_with(bin(), 1, |lan, extra| {
        let mid = lan.router.clone().expect("a router");
        let far_ns = extra.add(&format!("{}-far", lan.prefix()));
        bgp_lab::link(
            lan,
            "f",
            (&mid.netns, "far0", "192.0.2.1/24"),
            (&far_ns, "eth0", "192.0.2.2/24"),
        );
        Lan::exec_in(&mid.netns, &["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
        let via_mid = mid.addr.to_string();
        let node = &lan.nodes[0].netns;
        Lan::exec_in(
            node,
            &["ip", "route", "add", "192.0.2.0/24", "via", &via_mid],
        );
        Lan::exec_in(
            &far_ns,
            &["ip", "route", "add", "default", "via", "192.0.2.1"],
        );
        let dir = std::env::temp_dir().join(format!("{}-far", lan.prefix()));
        let cfg = bgp_lab::router_config(RouterKind::Frr, lan, "192.0.2.2".parse().expect("id"));
        let r = Router::start(&far_ns, &dir, &cfg);
        let node_addr = lan.nodes[0].addr;
        let multihop =
            format!("router bgp {ROUTER_ASN}\n neighbor {node_addr} ebgp-multihop 255\n");
        frr_configure(&r, &dir, &multihop);
        r
    })
    .await;
    b.lab.configure(&config(&ebgp("far", far, ""), "")).await;
    b.never_established(
        b.node(0),
        Duration::from_secs(5),
        "TTL 1 to a router two hops away",
    )
    .await;

    b.lab
        .configure(&config(&ebgp("far", far, ", ebgpMultiHop: true"), ""))
        .await;
    b.wait_up(&[0]);
    let (v4, _) = service(&b, "a").await;
    let paths = b.router.wait_paths(v4, 1, Duration::from_secs(10));
    assert_eq!(paths[0].next_hop, b.node(0), "{paths:?}");
}

/// BGPAdvertisement nodeSelectors: of two nodes peering with the router, only the one the
/// advertisement selects announces the Service.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn advertisement_node_selectors_choose_the_announcing_nodes() {
    let Some(_slot) = lab_slot(&FRR).await else {
        return;
    };
    let b = BgpLab::start(bin(), RouterKind::Frr, 2, |_, _| {}).await;
    let adv = "  nodeSelectors: [{matchLabels: {kubernetes.io/hostname: node2}}]\n";
    let peers = ebgp("router", b.router_addr(), "");
    b.lab.configure(&config(&peers, adv)).await;
    b.wait_up(&[0, 1]);
    let (v4, _) = service(&b, "a").await;
    let paths = b.router.wait_paths(v4, 1, Duration::from_secs(10));
    assert_eq!(paths[0].next_hop, b.node(1), "{paths:?}");
    // And it stays that way: node 1 never joins in.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let paths = b.router.wait_paths(v4, 1, Duration::ZERO);
    assert_eq!(paths[0].next_hop, b.node(1), "{paths:?}");
}

/// BGPAdvertisement peers: one node with two sessions to the router (from its two
/// addresses, so the router tells them apart); only the session of the named peer gets the
/// route.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn advertisement_peers_choose_the_receiving_sessions() {
    let Some(_slot) = lab_slot(&FRR).await else {
        return;
    };
    let second: IpAddr = SECOND.parse().expect("address");
    let b = BgpLab::start(bin(), RouterKind::Frr, 1, |c, lan| {
        add_second_address(lan);
        c.neighbors.push(Neighbor {
            addr: second,
            asn: SPEAKER_ASN,
            password: None,
        });
    })
    .await;
    let router = b.router_addr();
    let peers =
        ebgp("first", router, "") + &ebgp("second", router, &format!(", sourceAddress: {SECOND}"));
    b.lab
        .configure(&config(&peers, "  peers: [second]\n"))
        .await;
    b.wait_up(&[0]);
    b.router.wait_established(second, Duration::from_secs(20));
    let (v4, _) = service(&b, "a").await;
    let paths = b.router.wait_paths(v4, 1, Duration::from_secs(10));
    assert_eq!(paths[0].next_hop, second, "{paths:?}");
    assert_eq!(frr_accepted(&b.router, b.node(0), "ipv4Unicast"), 0);
    assert_eq!(
        peer_metric(&b, 0, "ironlb_bgp_announced_prefixes", "first").await,
        Some(0.0)
    );
}

/// BGPAdvertisement serviceSelectors (MetalLB v0.16): only Services whose labels match are
/// announced; another Service from the same pool gets its addresses but no route.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn advertisement_service_selectors_choose_the_announced_services() {
    let Some(_slot) = lab_slot(&FRR).await else {
        return;
    };
    let b = BgpLab::start(bin(), RouterKind::Frr, 1, |_, _| {}).await;
    let adv = "  serviceSelectors: [{matchLabels: {tier: front}}]\n";
    let peers = ebgp("router", b.router_addr(), "");
    b.lab.configure(&config(&peers, adv)).await;
    b.wait_up(&[0]);
    let front = l2::service("web", "front", "").replace(
        "  namespace: web\n",
        "  namespace: web\n  labels: {tier: front}\n",
    );
    let addrs = b.lab.allocate(&front).await;
    let v4 = IpNet::from(*addrs.iter().find(|a| a.is_ipv4()).expect("IPv4"));
    let paths = b.router.wait_paths(v4, 1, Duration::from_secs(10));
    assert_eq!(paths[0].next_hop, b.node(0), "{paths:?}");
    let (other, _) = service(&b, "back").await;
    // A route follows its assignment within milliseconds: after a second, one for the
    // unselected Service would be there.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let routes = b.router.routes();
    assert!(routes.contains_key(&v4), "{routes:?}");
    assert!(
        !routes.contains_key(&other),
        "{other} announced: {routes:?}"
    );
}

/// Prefixes of each family FRR accepted from `addr`, IPv4 first.
fn accepted(b: &BgpLab, addr: IpAddr) -> (u64, u64) {
    (
        frr_accepted(&b.router, addr, "ipv4Unicast"),
        frr_accepted(&b.router, addr, "ipv6Unicast"),
    )
}

/// Whether our OPEN to `addr` offered IPv6 unicast, as FRR read it.
fn offered_ipv6(b: &BgpLab, addr: IpAddr) -> bool {
    let n = frr_neighbor(&b.router, addr);
    let mp = &n["neighborCapabilities"]["multiprotocolExtensions"]["ipv6Unicast"];
    mp["received"].as_bool() == Some(true) || mp["advertisedAndReceived"].as_bool() == Some(true)
}

/// Address families: by default a session over IPv4 offers and carries IPv4 alone, one over
/// IPv6 IPv6 alone (disableMP says the same); with dualStackAddressFamily the IPv4 session
/// carries both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_session_carries_its_family_unless_dual_stack_address_family() {
    let Some(_slot) = lab_slot(&FRR).await else {
        return;
    };
    let b = BgpLab::start(bin(), RouterKind::Frr, 1, |c, lan| {
        let mut v6 = c.neighbors[0].clone();
        v6.addr = IpAddr::V6(lan.nodes[0].addr6);
        c.neighbors.push(v6);
    })
    .await;
    let (n4, n6) = (b.node(0), b.node6(0));
    let peers =
        |v4: &str, v6: &str| ebgp("v4", b.router_addr(), v4) + &ebgp("v6", b.router_addr6(), v6);
    b.lab.configure(&config(&peers("", ""), "")).await;
    b.router.wait_established(n4, Duration::from_secs(20));
    b.router.wait_established(n6, Duration::from_secs(20));
    service(&b, "a").await;
    wait_for(
        &b,
        Duration::from_secs(10),
        "one family per session",
        || accepted(&b, n4) == (1, 0) && accepted(&b, n6) == (0, 1),
    )
    .await;
    assert!(!offered_ipv6(&b, n4), "{}", frr_neighbor(&b.router, n4));
    assert!(offered_ipv6(&b, n6), "{}", frr_neighbor(&b.router, n6));

    let both = ", dualStackAddressFamily: true";
    b.lab
        .configure(&config(&peers(both, ", disableMP: true"), ""))
        .await;
    wait_for(
        &b,
        Duration::from_secs(20),
        "both families over IPv4",
        || b.router.established(n4) && accepted(&b, n4) == (1, 1) && accepted(&b, n6) == (0, 1),
    )
    .await;
    assert!(offered_ipv6(&b, n4), "{}", frr_neighbor(&b.router, n4));
}

/// Node 1 with VRF `vrf-blue` (table 10) holding a link of its own to the router namespace
/// (node 192.0.2.1, router 192.0.2.2): the main table has no route to the router's end.
fn vrf_link(c: &mut ironlb_lab::bgp::RouterConfig, lan: &Lan) {
    let node = &lan.nodes[0].netns;
    let router = &lan.router.as_ref().expect("a router").netns;
    bgp_lab::link(
        lan,
        "v",
        (node, "vb0", "192.0.2.1/24"),
        (router, "vb1", "192.0.2.2/24"),
    );
    bgp_lab::make_vrf(node, "vrf-blue", 10, "vb0");
    c.neighbors[0].addr = "192.0.2.1".parse().expect("address");
}

/// vrf: the router's end of a link enslaved to a VRF is unreachable from the main table; with
/// `vrf` the session comes up through the VRF, from the VRF's address, which the routes carry
/// as next hop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vrf_session_comes_up_through_the_vrf_device() {
    let Some(_slot) = lab_slot(&FRR).await else {
        return;
    };
    let b = BgpLab::start(bin(), RouterKind::Frr, 1, vrf_link).await;
    let (router, node): (IpAddr, IpAddr) = (
        "192.0.2.2".parse().expect("a"),
        "192.0.2.1".parse().expect("a"),
    );
    b.lab
        .configure(&config(&ebgp("blue", router, ""), ""))
        .await;
    b.never_established(node, Duration::from_secs(4), "no VRF: no route")
        .await;
    b.lab
        .configure(&config(&ebgp("blue", router, ", vrf: vrf-blue"), ""))
        .await;
    b.router.wait_established(node, Duration::from_secs(20));
    let (v4, _) = service(&b, "a").await;
    let paths = b.router.wait_paths(v4, 1, Duration::from_secs(10));
    assert_eq!(paths[0].next_hop, node, "{paths:?}");
}

/// A VRF missing on the node: the session stays down, the speaker says why and keeps running,
/// and once the VRF exists the session comes up without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_vrf_keeps_the_session_down_until_it_appears() {
    let Some(_slot) = lab_slot(&FRR).await else {
        return;
    };
    let b = BgpLab::start(bin(), RouterKind::Frr, 1, vrf_link).await;
    let (router, node): (IpAddr, IpAddr) = (
        "192.0.2.2".parse().expect("a"),
        "192.0.2.1".parse().expect("a"),
    );
    b.lab
        .configure(&config(&ebgp("red", router, ", vrf: vrf-red"), ""))
        .await;
    let log = b.lab.speakers[0].log.clone();
    wait_for(
        &b,
        Duration::from_secs(10),
        "no warning about the VRF",
        || {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            text.contains("vrf-red") && text.contains("does not exist on this node")
        },
    )
    .await;
    assert_eq!(
        peer_metric(&b, 0, "ironlb_bgp_session_up", "red").await,
        Some(0.0)
    );
    assert!(!b.router.established(node));

    // The link moves to a VRF of that name (where the kernel has no VRFs, its stand-in is
    // the link itself, already renamed vrf-blue).
    let ns = &b.lab.lan.nodes[0].netns;
    let link = if bgp_lab::kernel_has_vrf(ns) {
        "vb0"
    } else {
        "vrf-blue"
    };
    bgp_lab::make_vrf(ns, "vrf-red", 20, link);

    b.router.wait_established(node, Duration::from_secs(20));
    assert_eq!(
        peer_metric(&b, 0, "ironlb_bgp_session_up", "red").await,
        Some(1.0)
    );
}
