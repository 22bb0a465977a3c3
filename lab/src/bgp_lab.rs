//! A BGP lab: the Layer 2 lab's nodes running speakers and a real router (GoBGP, BIRD or FRR)
//! peering with them, plus what the BGP option tests build around it: namespaces off the LAN
//! (a router two hops away), links of their own, and FRR's view of each session.

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::time::{Duration, Instant};

use tokio::sync::{Mutex, MutexGuard};

use super::bgp::{Neighbor, Router, RouterConfig, RouterKind};
use super::l2::{L2Lab, L2Options};
use super::netns::{self, Lan};

/// The routers' AS in the BGP tests.
pub const ROUTER_ASN: u32 = 64513;
/// The speakers' AS in the BGP tests.
pub const SPEAKER_ASN: u32 = 64512;

static ONE_LAB_AT_A_TIME: Mutex<()> = Mutex::const_new(());

/// One lab at a time per test binary (two cores shared by several labs would measure the
/// machine), once the lab and `tools` are known to be there; `None` (skip) when they are not,
/// a failure with `IRONLB_REQUIRE_LAB=1`.
pub async fn lab_slot(tools: &[&str]) -> Option<MutexGuard<'static, ()>> {
    if !netns::require_with(tools) {
        return None;
    }
    Some(ONE_LAB_AT_A_TIME.lock().await)
}

/// Namespaces made beside a LAN, deleted (with their links) on drop.
#[derive(Default)]
pub struct ExtraNetns {
    names: Vec<String>,
}

impl ExtraNetns {
    /// Makes namespace `name` with its loopback up; deleted with the others.
    pub fn add(&mut self, name: &str) -> String {
        netns::run(&["ip", "netns", "add", name]);
        self.names.push(name.to_string());
        Lan::exec_in(name, &["ip", "link", "set", "lo", "up"]);
        name.to_string()
    }
}

impl Drop for ExtraNetns {
    fn drop(&mut self) {
        for n in &self.names {
            let _ = std::process::Command::new("ip")
                .args(["netns", "del", n])
                .status();
        }
    }
}

/// A veth pair from namespace `a` (named `a_if`, address `a_cidr`) to namespace `b` (`b_if`,
/// `b_cidr`), both up; `tag` (a few characters) makes the temporary names unique.
pub fn link(
    lan: &Lan,
    tag: &str,
    (a, a_if, a_cidr): (&str, &str, &str),
    (b, b_if, b_cidr): (&str, &str, &str),
) {
    let (ta, tb) = (
        format!("{}{tag}a", lan.prefix()),
        format!("{}{tag}b", lan.prefix()),
    );
    netns::run(&[
        "ip", "link", "add", &ta, "type", "veth", "peer", "name", &tb,
    ]);
    for (ns, tmp, name, cidr) in [(a, &ta, a_if, a_cidr), (b, &tb, b_if, b_cidr)] {
        netns::run(&["ip", "link", "set", tmp, "netns", ns]);
        Lan::exec_in(ns, &["ip", "link", "set", tmp, "name", name]);
        Lan::exec_in(ns, &["ip", "addr", "add", cidr, "dev", name]);
        Lan::exec_in(ns, &["ip", "link", "set", name, "up"]);
    }
}

/// The lab: routers first, so they stop before the namespaces go.
pub struct BgpLab {
    /// The router the test mostly talks to.
    pub router: Router,
    /// The speakers, controllers and LAN.
    pub lab: L2Lab,
    /// Namespaces the test made beside the LAN; deleted last.
    pub extra: ExtraNetns,
}

/// A router configuration peering with every node's IPv4 address.
pub fn router_config(kind: RouterKind, lan: &Lan, router_id: Ipv4Addr) -> RouterConfig {
    RouterConfig {
        kind,
        asn: ROUTER_ASN,
        router_id,
        neighbors: lan
            .nodes
            .iter()
            .map(|n| Neighbor {
                addr: IpAddr::V4(n.addr),
                asn: SPEAKER_ASN,
                password: None,
            })
            .collect(),
        kernel: false,
        graceful_restart: false,
    }
}

impl BgpLab {
    /// A lab of `nodes` speakers and a `kind` router in the router namespace peering with
    /// each node's IPv4 address; `rc` may change the router's configuration, knowing the LAN.
    pub async fn start(
        bin: &Path,
        kind: RouterKind,
        nodes: usize,
        rc: impl FnOnce(&mut RouterConfig, &Lan),
    ) -> BgpLab {
        BgpLab::start_with(bin, nodes, |lan, _| {
            let r = lan.router.clone().expect("a router");
            let mut cfg = router_config(kind, lan, r.addr);
            rc(&mut cfg, lan);
            let dir = std::env::temp_dir().join(format!("{}-router", lan.prefix()));
            Router::start(&r.netns, &dir, &cfg)
        })
        .await
    }

    /// A lab of `nodes` speakers whose router `setup` starts, after building what it needs on
    /// the LAN and in namespaces of its own (made with the [`ExtraNetns`] it is given).
    pub async fn start_with(
        bin: &Path,
        nodes: usize,
        setup: impl FnOnce(&Lan, &mut ExtraNetns) -> Router,
    ) -> BgpLab {
        let opts = L2Options {
            nodes,
            controllers: nodes.min(3),
            router: true,
            ..L2Options::default()
        };
        let lan = L2Lab::lan(&opts);
        let mut extra = ExtraNetns::default();
        let router = setup(&lan, &mut extra);
        let lab = L2Lab::start_on(lan, bin, opts).await;
        BgpLab { router, lab, extra }
    }

    /// The router namespace's IPv4 address on the LAN.
    pub fn router_addr(&self) -> IpAddr {
        IpAddr::V4(self.lab.lan.router.as_ref().expect("router").addr)
    }

    /// The router namespace's IPv6 address on the LAN.
    pub fn router_addr6(&self) -> IpAddr {
        IpAddr::V6(self.lab.lan.router.as_ref().expect("router").addr6)
    }

    /// Node `i`'s IPv4 address.
    pub fn node(&self, i: usize) -> IpAddr {
        IpAddr::V4(self.lab.lan.nodes[i].addr)
    }

    /// Node `i`'s IPv6 address.
    pub fn node6(&self, i: usize) -> IpAddr {
        IpAddr::V6(self.lab.lan.nodes[i].addr6)
    }

    /// Waits until the router has a session with each of `nodes` (their IPv4 addresses).
    pub fn wait_up(&self, nodes: &[usize]) {
        for &n in nodes {
            self.router
                .wait_established(self.node(n), Duration::from_secs(30));
        }
    }

    /// Every log of the lab and the router's last lines.
    pub fn logs(&self) -> String {
        format!("{}\n{}", self.lab.logs(), self.router.log_tail())
    }

    /// Waits `for_` and fails if the router's session with `addr` ever comes up meanwhile.
    pub async fn never_established(&self, addr: IpAddr, for_: Duration, what: &str) {
        let deadline = Instant::now() + for_;
        while Instant::now() < deadline {
            assert!(
                !self.router.established(addr),
                "{what}: the session came up\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// FRR's view of its session with `addr` (`show bgp neighbors ADDR json`); `Null` if none.
pub fn frr_neighbor(router: &Router, addr: IpAddr) -> serde_json::Value {
    let text = router.vtysh(&format!("show bgp neighbors {addr} json"));
    serde_json::from_str::<serde_json::Value>(&text)
        .map(|mut v| v[addr.to_string()].take())
        .unwrap_or_default()
}

/// How many prefixes of `family` (`ipv4Unicast`, `ipv6Unicast`) FRR accepted from `addr`.
pub fn frr_accepted(router: &Router, addr: IpAddr, family: &str) -> u64 {
    frr_neighbor(router, addr)["addressFamilyInfo"][family]["acceptedPrefixCounter"]
        .as_u64()
        .unwrap_or(0)
}

/// Runs FRR configuration `text` (as in bgpd.conf, without `configure`) against `router`.
pub fn frr_configure(router: &Router, dir: &Path, text: &str) {
    let file = dir.join("extra.conf");
    std::fs::write(&file, text).expect("extra.conf");
    router.vtysh_file(&file);
}

/// Whether the kernel has VRF devices (`CONFIG_NET_VRF`), tried in namespace `ns`.
pub fn kernel_has_vrf(ns: &str) -> bool {
    let probe = [
        "ip",
        "link",
        "add",
        "ilvrfprobe",
        "type",
        "vrf",
        "table",
        "99",
    ];
    let ok = Lan::try_exec_in(ns, &probe).status.success();
    if ok {
        Lan::exec_in(ns, &["ip", "link", "del", "ilvrfprobe"]);
    }
    ok
}

/// Puts `link` of namespace `ns` in VRF `name` with routing table `table`, so the main table
/// no longer reaches its subnet; returns the link's name afterwards.
///
/// With VRF devices: a VRF `name` (made if missing) becomes the link's master. Without
/// (kernels built without `CONFIG_NET_VRF`, such as some CI virtual machines), the link itself
/// is renamed `name`, its connected routes move to `table`, and rules send what is bound to it
/// or arrives on it there: the routing a socket bound to a VRF gets, which is what the speaker
/// relies on (`SO_BINDTODEVICE` on the device named).
pub fn make_vrf(ns: &str, name: &str, table: u32, link: &str) -> String {
    let table = table.to_string();
    if kernel_has_vrf(ns) {
        let exists = Lan::try_exec_in(ns, &["ip", "link", "show", name])
            .status
            .success();
        if !exists {
            Lan::exec_in(
                ns,
                &["ip", "link", "add", name, "type", "vrf", "table", &table],
            );
            Lan::exec_in(ns, &["ip", "link", "set", name, "up"]);
        }
        Lan::exec_in(ns, &["ip", "link", "set", link, "master", name]);
        return link.to_string();
    }
    eprintln!("the kernel has no VRF devices: {link} stands in for VRF {name} (policy routing)");
    Lan::exec_in(ns, &["ip", "link", "set", link, "down"]);
    Lan::exec_in(ns, &["ip", "link", "set", link, "name", name]);
    Lan::exec_in(ns, &["ip", "link", "set", name, "up"]);
    // Up again, the link has its connected routes back in the main table: move them.
    let show = ["ip", "-4", "route", "show", "dev", name, "scope", "link"];
    let routes = String::from_utf8_lossy(&Lan::exec_in(ns, &show).stdout).into_owned();
    for prefix in routes.lines().filter_map(|l| l.split_whitespace().next()) {
        Lan::try_exec_in(
            ns,
            &["ip", "route", "del", prefix, "dev", name, "table", "main"],
        );
        Lan::exec_in(
            ns,
            &["ip", "route", "add", prefix, "dev", name, "table", &table],
        );
    }
    for dir in ["oif", "iif"] {
        Lan::exec_in(ns, &["ip", "rule", "add", dir, name, "lookup", &table]);
    }
    name.to_string()
}
