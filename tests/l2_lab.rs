//! Layer 2 mode in network namespaces with the real kernel as client: who answers ARP and NDP,
//! failover, fencing, handover, joining and health checks. Needs root, `arping`, `ndisc6`,
//! `tshark` (CI runs it with IRONLB_REQUIRE_LAB=1, where anything missing fails the test).

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use ironlb::lab::l2::{self, L2Lab, L2Options};
use ironlb::lab::netns;

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_ironlb"))
}

fn lab_ready() -> bool {
    netns::require_with(&["arping", "ndisc6", "ping"])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_reaches_the_owner_and_nobody_else_answers() {
    if !lab_ready() {
        return;
    }
    let lab = L2Lab::start(bin(), L2Options::default()).await;
    lab.configure(l2::CONFIG).await;
    let addrs = lab.allocate(&l2::service("default", "web", "")).await;
    assert_eq!(addrs.len(), 2, "{addrs:?}");
    let v4 = addrs.iter().find(|a| a.is_ipv4()).copied().unwrap();
    let v6 = addrs.iter().find(|a| a.is_ipv6()).copied().unwrap();
    let owner = lab.wait_owner(v4, Duration::from_secs(10)).await;
    // Dual-stack Services stay on one node, and exactly one answers each family.
    assert_eq!(
        lab.resolve(v6, "eth0"),
        vec![lab.lan.nodes[owner].mac.clone()],
        "{}",
        lab.logs()
    );
    assert!(lab.ping(v4), "ping {v4}:\n{}", lab.logs());
    assert!(lab.ping(v6), "ping {v6}:\n{}", lab.logs());
    // An address nobody holds gets no answer.
    let free: IpAddr = "198.51.100.149".parse().unwrap();
    assert_eq!(lab.resolve(free, "eth0"), Vec::<String>::new());
    let free6: IpAddr = "2001:db8:51::149".parse().unwrap();
    assert_eq!(lab.resolve(free6, "eth0"), Vec::<String>::new());
}
