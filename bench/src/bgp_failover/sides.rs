//! The two sides under test, on the same topology: three node namespaces announcing the
//! Service address to an FRR router (bgpd, zebra installing the ECMP route in the kernel, bfdd
//! for the BFD settings), and a client namespace behind the router on a link of its own.
//!
//! - ours: ironlb's speakers on the three nodes (three controller members on three further
//!   nodes, so a node's failure takes no Raft member with it);
//! - baseline: FRR (zebra, bgpd and, with BFD, bfdd) on each node, `network` statements
//!   announcing the address, as MetalLB's FRR mode runs it.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Result};
use ipnet::IpNet;
use ironlb_lab::bgp::Router;
use ironlb_lab::l2::{L2Lab, L2Options};
use ironlb_lab::netns::{self, Host, Lan, LanOptions};

use super::Setting;

pub const SPEAKER_ASN: u32 = 64512;
pub const ROUTER_ASN: u32 = 64513;
/// The Service address (RFC 5737 TEST-NET-3), the whole of ironlb's pool.
pub const VIP: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 10);
/// The client's link to the router, in RFC 2544's benchmarking block: router .1, client .2.
const CLIENT_NET: &str = "198.19.0.0/24";
const ROUTER_ON_CLIENT: &str = "198.19.0.1/24";
/// The client's address.
pub const CLIENT_ADDR: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 2);
const BFD_PROFILE: &str = "bench";

/// A client namespace with one veth leg into the router's namespace, removed on drop.
pub struct ClientLink {
    /// Its namespace.
    pub netns: String,
}

impl ClientLink {
    /// Builds it, and makes the router forward with a layer 4 ECMP hash (so the client's
    /// flows, which differ only in source port, spread over the next hops).
    pub fn attach(lan: &Lan, router: &Host) -> ClientLink {
        let p = lan.prefix();
        let link = ClientLink {
            netns: format!("{p}-bc"),
        };
        let (a, b) = (format!("{p}bca"), format!("{p}bcb"));
        let (c, r) = (link.netns.as_str(), router.netns.as_str());
        netns::run(&["ip", "netns", "add", c]);
        netns::run(&["ip", "link", "add", &a, "type", "veth", "peer", "name", &b]);
        netns::run(&["ip", "link", "set", &a, "netns", c]);
        netns::run(&["ip", "link", "set", &b, "netns", r]);
        netns::run(&["ip", "-n", c, "link", "set", &a, "name", "eth0"]);
        netns::run(&["ip", "-n", r, "link", "set", &b, "name", "client0"]);
        let me = format!("{CLIENT_ADDR}/24");
        netns::run(&["ip", "-n", c, "addr", "add", &me, "dev", "eth0"]);
        netns::run(&[
            "ip",
            "-n",
            r,
            "addr",
            "add",
            ROUTER_ON_CLIENT,
            "dev",
            "client0",
        ]);
        for (ns, dev) in [(c, "eth0"), (c, "lo"), (r, "client0")] {
            netns::run(&["ip", "-n", ns, "link", "set", dev, "up"]);
        }
        netns::run(&[
            "ip",
            "-n",
            c,
            "route",
            "add",
            "default",
            "via",
            "198.19.0.1",
        ]);
        for key in [
            "net.ipv4.ip_forward=1",
            "net.ipv4.fib_multipath_hash_policy=1",
        ] {
            Lan::exec_in(r, &["sysctl", "-qw", key]);
        }
        link
    }
}

impl Drop for ClientLink {
    fn drop(&mut self) {
        // The veth goes with the namespace, its router end too.
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &self.netns])
            .output();
    }
}

/// Makes a node able to take the client's datagrams: the Service address on its loopback
/// (kube-proxy's part on a real node) and a route back to the client (so no reverse path
/// filter drops them).
pub fn prepare_node(node: &Host, router: Ipv4Addr) {
    let vip = format!("{VIP}/32");
    // try_: ironlb's speaker or an earlier trial may have put it there already.
    Lan::try_exec_in(&node.netns, &["ip", "addr", "add", &vip, "dev", "lo"]);
    let via = router.to_string();
    Lan::try_exec_in(
        &node.netns,
        &["ip", "route", "replace", CLIENT_NET, "via", &via],
    );
}

/// bfdd's configuration: the setting's profile.
pub fn bfdd_conf(s: Setting) -> String {
    match s.bfd() {
        Some((ms, mult)) => format!(
            "bfd\n profile {BFD_PROFILE}\n  detect-multiplier {mult}\n  receive-interval {ms}\n  transmit-interval {ms}\n !\n!\n"
        ),
        None => String::new(),
    }
}

/// The router's bgpd configuration: passive towards the nodes, the setting's timers and BFD
/// profile, up to 8 paths per prefix.
pub fn router_conf(dir: &Path, id: Ipv4Addr, nodes: &[Host], s: Setting) -> String {
    let mut c = format!(
        "hostname r\nlog file {}/bgpd.log\n!\nrouter bgp {ROUTER_ASN}\n bgp router-id {id}\n no bgp ebgp-requires-policy\n no bgp network import-check\n",
        dir.display()
    );
    for n in nodes {
        c.push_str(&format!(
            " neighbor {a} remote-as {SPEAKER_ASN}\n neighbor {a} passive\n neighbor {a} timers {k} {h}\n",
            a = n.addr,
            k = s.keepalive_s(),
            h = s.hold_s()
        ));
        if s.bfd().is_some() {
            c.push_str(&format!(
                " neighbor {a} bfd\n neighbor {a} bfd profile {BFD_PROFILE}\n",
                a = n.addr
            ));
        }
    }
    c.push_str(" address-family ipv4 unicast\n  maximum-paths 8\n exit-address-family\n!\n");
    c
}

/// A baseline node's bgpd configuration: announces the Service address to the router.
fn node_conf(dir: &Path, node: &Host, router: Ipv4Addr, s: Setting) -> String {
    let mut c = format!(
        "hostname {ns}\nlog file {d}/bgpd.log\n!\nrouter bgp {SPEAKER_ASN}\n bgp router-id {id}\n no bgp ebgp-requires-policy\n no bgp network import-check\n neighbor {router} remote-as {ROUTER_ASN}\n neighbor {router} timers {k} {h}\n neighbor {router} timers connect 1\n",
        ns = node.netns,
        d = dir.display(),
        id = node.addr,
        k = s.keepalive_s(),
        h = s.hold_s()
    );
    if s.bfd().is_some() {
        c.push_str(&format!(
            " neighbor {router} bfd\n neighbor {router} bfd profile {BFD_PROFILE}\n"
        ));
    }
    c.push_str(&format!(
        " address-family ipv4 unicast\n  network {VIP}/32\n exit-address-family\n!\n"
    ));
    c
}

/// Starts FRR as a router or node: zebra, bgpd and bfdd (idle without BFD), the daemons
/// MetalLB's FRR mode runs.
pub fn start_frr(netns: &str, dir: &Path, bgpd: &str, s: Setting) -> Router {
    Router::start_frr_bfd(netns, dir, bgpd, &bfdd_conf(s))
}

/// ironlb's configuration: the one-address pool, announced to the router with the setting's
/// timers and BFD profile.
pub fn ironlb_conf(router: Ipv4Addr, s: Setting) -> String {
    let mut c = format!(
        "apiVersion: ironlb.io/v1beta1
kind: IPAddressPool
metadata: {{name: bench}}
spec: {{addresses: [{VIP}/32]}}
---
apiVersion: ironlb.io/v1beta1
kind: BGPAdvertisement
metadata: {{name: bench}}
spec: {{ipAddressPools: [bench]}}
---
apiVersion: ironlb.io/v1beta1
kind: BGPPeer
metadata: {{name: router}}
spec: {{myASN: {SPEAKER_ASN}, peerASN: {ROUTER_ASN}, peerAddress: {router}, holdTime: {h}s, keepaliveTime: {k}s, connectTime: 1s{bfd}}}
",
        h = s.hold_s(),
        k = s.keepalive_s(),
        bfd = if s.bfd().is_some() {
            format!(", bfdProfile: {BFD_PROFILE}")
        } else {
            String::new()
        }
    );
    if let Some((ms, mult)) = s.bfd() {
        c.push_str(&format!(
            "---
apiVersion: ironlb.io/v1beta1
kind: BFDProfile
metadata: {{name: {BFD_PROFILE}}}
spec: {{receiveInterval: {ms}, transmitInterval: {ms}, detectMultiplier: {mult}}}
"
        ));
    }
    c
}

const SERVICE: &str = "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n  namespace: bench\nspec:\n  type: LoadBalancer\n  ports:\n  - port: 80\n";

/// One side: three announcing nodes, the router, the client.
pub trait Side {
    /// The router.
    fn router(&self) -> &Router;
    /// The three announcing nodes.
    fn nodes(&self) -> Vec<Host>;
    /// The client.
    fn client(&self) -> &ClientLink;
    /// Node `i` fails: links down, then its speaker SIGKILLed.
    fn fail(&mut self, i: usize);
    /// Node `i` comes back: links up, speaker started.
    fn revive(&mut self, i: usize);
}

/// ironlb's side.
pub struct Ours {
    // Declared first: the processes stop before the namespaces go.
    router: Router,
    client: ClientLink,
    /// The lab; its nodes 3..6 announce.
    pub lab: L2Lab,
}

/// Index of the first announcing node in ironlb's lab (nodes 0..3 run the controllers).
const FIRST_SPEAKER: usize = 3;

impl Ours {
    /// Builds the lab, configures ironlb and allocates the Service.
    pub async fn start(bin: &Path, dir: &Path, s: Setting) -> Result<Ours> {
        let opts = L2Options {
            nodes: 6,
            controllers: 3,
            speakers_on_controller_nodes: false,
            router: true,
            ..L2Options::default()
        };
        let lan = L2Lab::lan(&opts);
        let r = lan.router.clone().expect("a router namespace");
        let client = ClientLink::attach(&lan, &r);
        let nodes = &lan.nodes[FIRST_SPEAKER..];
        for n in nodes {
            prepare_node(n, r.addr);
        }
        let rdir = dir.join("router");
        let router = start_frr(&r.netns, &rdir, &router_conf(&rdir, r.addr, nodes, s), s);
        let lab = L2Lab::start_on(lan, bin, opts).await;
        lab.configure(&ironlb_conf(r.addr, s)).await;
        let got = lab.allocate(SERVICE).await;
        ensure!(
            got.contains(&IpAddr::V4(VIP)),
            "ironlb allocated {got:?}, not {VIP}"
        );
        Ok(Ours {
            router,
            client,
            lab,
        })
    }
}

impl Side for Ours {
    fn router(&self) -> &Router {
        &self.router
    }
    fn nodes(&self) -> Vec<Host> {
        self.lab.lan.nodes[FIRST_SPEAKER..].to_vec()
    }
    fn client(&self) -> &ClientLink {
        &self.client
    }
    fn fail(&mut self, i: usize) {
        self.lab.fail_node(FIRST_SPEAKER + i);
    }
    fn revive(&mut self, i: usize) {
        self.lab.revive_node(FIRST_SPEAKER + i);
    }
}

/// FRR's side.
pub struct Baseline {
    speakers: Vec<Option<Router>>,
    router: Router,
    client: ClientLink,
    lan: Lan,
    dir: PathBuf,
    setting: Setting,
    restarts: usize,
}

impl Baseline {
    /// Builds the LAN and starts FRR on the router and the three nodes.
    pub fn start(dir: &Path, s: Setting) -> Baseline {
        let lan = Lan::build(LanOptions {
            nodes: 3,
            client: false,
            router: true,
            ..LanOptions::default()
        });
        let r = lan.router.clone().expect("a router namespace");
        let client = ClientLink::attach(&lan, &r);
        for n in &lan.nodes {
            prepare_node(n, r.addr);
        }
        let rdir = dir.join("router");
        let router = start_frr(
            &r.netns,
            &rdir,
            &router_conf(&rdir, r.addr, &lan.nodes, s),
            s,
        );
        let mut b = Baseline {
            speakers: Vec::new(),
            router,
            client,
            lan,
            dir: dir.to_path_buf(),
            setting: s,
            restarts: 0,
        };
        for i in 0..3 {
            let sp = b.start_speaker(i);
            b.speakers.push(Some(sp));
        }
        b
    }

    fn start_speaker(&mut self, i: usize) -> Router {
        self.restarts += 1;
        let node = &self.lan.nodes[i];
        let router = self.lan.router.as_ref().expect("a router").addr;
        let dir = self.dir.join(format!("node{}-{}", i + 1, self.restarts));
        let conf = node_conf(&dir, node, router, self.setting);
        start_frr(&node.netns, &dir, &conf, self.setting)
    }
}

impl Side for Baseline {
    fn router(&self) -> &Router {
        &self.router
    }
    fn nodes(&self) -> Vec<Host> {
        self.lan.nodes.clone()
    }
    fn client(&self) -> &ClientLink {
        &self.client
    }
    fn fail(&mut self, i: usize) {
        self.lan.link_down(i);
        // Dropping the router SIGKILLs zebra, bgpd and bfdd.
        self.speakers[i] = None;
    }
    fn revive(&mut self, i: usize) {
        self.lan.link_up(i);
        let sp = self.start_speaker(i);
        self.speakers[i] = Some(sp);
    }
}

/// Waits until the side is ready for a failure: the router's kernel route has all three
/// nodes as next hops and, with BFD, each node's BFD session is up at the setting's interval.
pub fn wait_ready(side: &dyn Side, s: Setting, within: Duration) -> Result<()> {
    let nodes = side.nodes();
    let mut want: Vec<IpAddr> = nodes.iter().map(|n| IpAddr::V4(n.addr)).collect();
    want.sort();
    let prefix = IpNet::from(IpAddr::V4(VIP));
    let deadline = Instant::now() + within;
    loop {
        let hops = side.router().kernel_next_hops(prefix);
        let bfd_ok = match s.bfd() {
            None => true,
            Some((ms, mult)) => {
                let peers = side.router().bfd_peers();
                want.iter().all(|a| {
                    peers.iter().any(|p| {
                        p.peer == *a
                            && p.status == "up"
                            && p.remote_transmit_ms == Some(u64::from(ms))
                            && p.remote_multiplier == Some(u64::from(mult))
                    })
                })
            }
        };
        if hops == want && bfd_ok {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "not ready after {within:?}: next hops {hops:?}, BFD peers {:?}\n{}",
                side.router().bfd_peers(),
                side.router().log_tail()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
