//! A LAN of network namespaces joined by a bridge: node namespaces, a client and a router
//! namespace, optionally a second LAN, and a leg into the host so tests can reach every node.
//! Documentation addresses only, names unique per lab, deterministic MAC addresses, and
//! everything removed on drop, also when a test panics.
//!
//! | | LAN 1 (`eth0`) | LAN 2 (`eth1`) |
//! |---|---|---|
//! | node i (from 1) | 198.51.100.i, 2001:db8:51::i | 203.0.113.i, 2001:db8:113::i |
//! | client | 198.51.100.200, 2001:db8:51::200 | 203.0.113.200, 2001:db8:113::200 |
//! | router | 198.51.100.250, 2001:db8:51::250 | |
//! | attacker | 198.51.100.240, 2001:db8:51::240 | |
//! | host leg | 198.51.100.254 | |

use std::net::{Ipv4Addr, Ipv6Addr};
use std::process::{Child, Command, Output, Stdio};

use std::sync::atomic::{AtomicU32, Ordering};

/// Whether this host can run the lab (root, `ip`, `iptables`); the reason if not.
pub fn available() -> Result<(), String> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let root = status
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .is_some_and(|l| l.split_whitespace().nth(1) == Some("0"));
    if !root {
        return Err("the network lab needs root".into());
    }
    for tool in ["ip", "iptables"] {
        let found = Command::new(tool)
            .arg("-V")
            .output()
            .is_ok_and(|o| o.status.success());
        if !found {
            return Err(format!(
                "the network lab needs `{tool}` (run scripts/install-deps)"
            ));
        }
    }
    Ok(())
}

/// Runs `f` on a thread of its own inside namespace `netns` and returns what it returns: for
/// sockets a test opens there (they stay in that namespace wherever they are used).
pub fn in_netns<T: Send + 'static>(netns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    use std::os::fd::AsRawFd;
    let path = format!("/var/run/netns/{netns}");
    std::thread::spawn(move || {
        let ns = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        // SAFETY: setns on this thread only, with a descriptor of a network namespace we own.
        let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns {path}: {}", std::io::Error::last_os_error());
        f()
    })
    .join()
    .expect("the namespace thread panicked")
}

/// Whether `tool` runs (`tool --version` or `-V`).
pub fn has_tool(tool: &str) -> bool {
    ["--version", "-V", "-h"].iter().any(|flag| {
        Command::new(tool)
            .arg(flag)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

/// For tests: returns true if the lab can run (and has `tools`). If it cannot, fails the test
/// when `IRONLB_REQUIRE_LAB=1` (CI), else says why it is skipped and returns false.
pub fn require_with(tools: &[&str]) -> bool {
    let why = available().err().or_else(|| {
        tools
            .iter()
            .find(|t| !has_tool(t))
            .map(|t| format!("the test needs `{t}` (run scripts/install-deps)"))
    });
    match why {
        None => true,
        Some(why) if std::env::var("IRONLB_REQUIRE_LAB").as_deref() == Ok("1") => {
            panic!("IRONLB_REQUIRE_LAB=1 but {why}")
        }
        Some(why) => {
            eprintln!("skipping: {why}");
            false
        }
    }
}

/// For tests that need only some tools (not root): true if every one runs; if one does not,
/// fails the test when `IRONLB_REQUIRE_LAB=1` (CI), else says why it is skipped.
pub fn require_tools(tools: &[&str]) -> bool {
    match tools.iter().find(|t| !has_tool(t)) {
        None => true,
        Some(t) if std::env::var("IRONLB_REQUIRE_LAB").as_deref() == Ok("1") => {
            panic!("IRONLB_REQUIRE_LAB=1 but `{t}` is missing (run scripts/install-deps)")
        }
        Some(t) => {
            eprintln!("skipping: `{t}` is missing (run scripts/install-deps)");
            false
        }
    }
}

/// For tests: [`require_with`] without extra tools.
pub fn require() -> bool {
    require_with(&[])
}

/// Runs a command; panics with its stderr if it fails.
pub fn run(args: &[&str]) -> Output {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("running {args:?}: {e}"));
    if !out.status.success() {
        panic!(
            "{args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    out
}

/// One namespace on the LAN.
#[derive(Clone, Debug)]
pub struct Host {
    /// The namespace's name.
    pub netns: String,
    /// Its IPv4 address on LAN 1.
    pub addr: Ipv4Addr,
    /// Its IPv6 address on LAN 1.
    pub addr6: Ipv6Addr,
    /// The MAC address of its `eth0`.
    pub mac: String,
    /// Its IPv4 address on LAN 2 (`eth1`), if there is one.
    pub lan2: Option<Ipv4Addr>,
    /// The MAC address of its `eth1`, if there is one.
    pub mac2: Option<String>,
}

/// A node namespace (kept as its own name for the tests that say `Node`).
pub type Node = Host;

/// What to build.
#[derive(Clone, Copy, Debug)]
pub struct LanOptions {
    /// Node namespaces.
    pub nodes: usize,
    /// A client namespace.
    pub client: bool,
    /// A router namespace.
    pub router: bool,
    /// An attacker namespace: a host on LAN 1 that runs nothing of ironlb (floods, probes).
    pub attacker: bool,
    /// A second LAN on every node and the client.
    pub second_lan: bool,
}

impl Default for LanOptions {
    fn default() -> Self {
        Self {
            nodes: 3,
            client: true,
            router: false,
            attacker: false,
            second_lan: false,
        }
    }
}

/// A background process group, killed (SIGKILL) and reaped when dropped.
pub struct Background {
    child: Option<Child>,
}

impl Background {
    /// Its process id (and process group id).
    pub fn id(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Kills the whole group now.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: kill(2) with a negative pid signals the process group; no memory is
            // involved.
            unsafe {
                libc::kill(-(c.id() as i32), libc::SIGKILL);
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Bridge LANs of namespaces, reachable from the host at [`Lan::HOST`].
pub struct Lan {
    prefix: String,
    /// The first three octets of LAN 1's IPv4 subnet (a /24).
    v4: [u8; 3],
    bridge_ns: String,
    host_if: String,
    /// The nodes, in order.
    pub nodes: Vec<Host>,
    /// The client, if built.
    pub client: Option<Host>,
    /// The router, if built.
    pub router: Option<Host>,
    /// The attacker, if built.
    pub attacker: Option<Host>,
    namespaces: Vec<String>,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);
/// Numbers the links [`Lan::add_link`] makes, for unique names.
static EXTRA_LINKS: AtomicU32 = AtomicU32::new(0);

/// The MAC address of interface `lan` (1 or 2) of host number `n`.
pub fn mac_of(lan: u8, n: u8) -> String {
    format!("02:00:00:0{lan}:00:{n:02x}")
}

impl Lan {
    /// The host's address on LAN 1.
    pub const HOST: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 254);

    /// Builds a LAN of `n` nodes (no client, no router).
    pub fn new(n: usize) -> Lan {
        Lan::build(LanOptions {
            nodes: n,
            client: false,
            router: false,
            attacker: false,
            second_lan: false,
        })
    }

    /// Builds what `opts` asks for.
    pub fn build(opts: LanOptions) -> Lan {
        Lan::build_in(opts, [198, 51, 100])
    }

    /// Builds what `opts` asks for with LAN 1 on the IPv4 subnet `v4.0/24` (another
    /// documentation prefix, such as `[192, 0, 2]`): node i is `v4.i`, the client `v4.200`, the
    /// host's leg `v4.254` ([`Lan::host_addr`]).
    pub fn build_in(opts: LanOptions, v4: [u8; 3]) -> Lan {
        // Short, unique per process and per lab: interface names are limited to 15 bytes.
        let prefix = format!(
            "il{:x}{}",
            std::process::id() & 0xffff,
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let bridge_ns = format!("{prefix}-lan");
        let host_if = format!("{prefix}h");
        let mut lan = Lan {
            prefix: prefix.clone(),
            v4,
            bridge_ns: bridge_ns.clone(),
            host_if: host_if.clone(),
            nodes: Vec::new(),
            client: None,
            router: None,
            attacker: None,
            namespaces: Vec::new(),
        };
        run(&["ip", "netns", "add", &bridge_ns]);
        for br in ["br0", "br1"] {
            run(&["ip", "-n", &bridge_ns, "link", "add", br, "type", "bridge"]);
            run(&["ip", "-n", &bridge_ns, "link", "set", br, "up"]);
        }
        // The host's leg.
        let host_peer = format!("{prefix}hb");
        run(&[
            "ip", "link", "add", &host_if, "type", "veth", "peer", "name", &host_peer,
        ]);
        run(&["ip", "link", "set", &host_peer, "netns", &bridge_ns]);
        run(&[
            "ip", "-n", &bridge_ns, "link", "set", &host_peer, "master", "br0", "up",
        ]);
        run(&[
            "ip",
            "addr",
            "add",
            &format!("{}/24", lan.host_addr()),
            "dev",
            &host_if,
        ]);
        // The host answers ARP on its leg only for the leg's own address: the lab must not
        // reach the host's other addresses (on this machine's network, say) by accident.
        for (key, value) in [("arp_ignore", "1"), ("arp_announce", "2")] {
            run(&[
                "sysctl",
                "-qw",
                &format!("net.ipv4.conf.{host_if}.{key}={value}"),
            ]);
        }
        run(&["ip", "link", "set", &host_if, "up"]);
        for i in 0..opts.nodes {
            let n = (i + 1) as u8;
            let host = lan.add_host(&format!("n{n}"), n, opts.second_lan);
            lan.nodes.push(host);
        }
        if opts.client {
            lan.client = Some(lan.add_host("c", 200, opts.second_lan));
        }
        if opts.router {
            lan.router = Some(lan.add_host("r", 250, false));
        }
        if opts.attacker {
            lan.attacker = Some(lan.add_host("a", 240, false));
        }
        lan
    }

    /// One namespace `tag` as host number `n`, with legs on LAN 1 and, if asked, LAN 2.
    fn add_host(&mut self, tag: &str, n: u8, second_lan: bool) -> Host {
        let netns = format!("{}-{tag}", self.prefix);
        run(&["ip", "netns", "add", &netns]);
        self.namespaces.push(netns.clone());
        // Tests want answers in milliseconds: no duplicate address detection delay.
        for key in [
            "net.ipv6.conf.all.accept_dad",
            "net.ipv6.conf.default.accept_dad",
        ] {
            run(&[
                "ip",
                "netns",
                "exec",
                &netns,
                "sysctl",
                "-qw",
                &format!("{key}=0"),
            ]);
        }
        run(&["ip", "-n", &netns, "link", "set", "lo", "up"]);
        let addr = Ipv4Addr::new(self.v4[0], self.v4[1], self.v4[2], n);
        let addr6 = Ipv6Addr::new(0x2001, 0xdb8, 0x51, 0, 0, 0, 0, u16::from(n));
        let mac = mac_of(1, n);
        self.leg(
            &netns,
            tag,
            "eth0",
            "br0",
            &mac,
            &format!("{addr}/24"),
            &format!("{addr6}/64"),
        );
        let (lan2, mac2) = if second_lan {
            let a2 = Ipv4Addr::new(203, 0, 113, n);
            let a6 = Ipv6Addr::new(0x2001, 0xdb8, 0x113, 0, 0, 0, 0, u16::from(n));
            let m2 = mac_of(2, n);
            self.leg(
                &netns,
                tag,
                "eth1",
                "br1",
                &m2,
                &format!("{a2}/24"),
                &format!("{a6}/64"),
            );
            (Some(a2), Some(m2))
        } else {
            (None, None)
        };
        Host {
            netns,
            addr,
            addr6,
            mac,
            lan2,
            mac2,
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn leg(
        &self,
        netns: &str,
        tag: &str,
        ifname: &str,
        bridge: &str,
        mac: &str,
        v4: &str,
        v6: &str,
    ) {
        let inner = format!("{}{tag}{}a", self.prefix, &ifname[3..]);
        let outer = format!("{}{tag}{}b", self.prefix, &ifname[3..]);
        self.plug(netns, &inner, &outer, bridge, ifname, mac);
        run(&["ip", "-n", netns, "addr", "add", v4, "dev", ifname]);
        run(&["ip", "-n", netns, "addr", "add", v6, "dev", ifname, "nodad"]);
        run(&["ip", "-n", netns, "link", "set", ifname, "up"]);
    }

    /// Plugs one more link of node `node` into LAN 1: a veth named `ifname` in its namespace
    /// with MAC `mac`, up, without addresses (as a NIC or VLAN added while it runs).
    pub fn add_link(&self, node: usize, ifname: &str, mac: &str) {
        let netns = &self.nodes[node].netns;
        let n = EXTRA_LINKS.fetch_add(1, Ordering::Relaxed) % 1000;
        let (inner, outer) = (
            format!("{}x{n}a", self.prefix),
            format!("{}x{n}b", self.prefix),
        );
        self.plug(netns, &inner, &outer, "br0", ifname, mac);
        run(&["ip", "-n", netns, "link", "set", ifname, "up"]);
    }

    /// A veth pair `inner`/`outer`: `outer` up on the bridge namespace's `bridge`, `inner` in
    /// `netns`, renamed `ifname`, with MAC `mac`.
    fn plug(&self, netns: &str, inner: &str, outer: &str, bridge: &str, ifname: &str, mac: &str) {
        run(&[
            "ip", "link", "add", inner, "type", "veth", "peer", "name", outer,
        ]);
        run(&["ip", "link", "set", inner, "netns", netns]);
        run(&["ip", "link", "set", outer, "netns", &self.bridge_ns]);
        let bridge_ns = self.bridge_ns.as_str();
        run(&[
            "ip", "-n", bridge_ns, "link", "set", outer, "master", bridge, "up",
        ]);
        run(&["ip", "-n", netns, "link", "set", inner, "name", ifname]);
        run(&["ip", "-n", netns, "link", "set", ifname, "address", mac]);
    }

    /// Unplugs a link [`Lan::add_link`] made (its peer on the bridge goes with it).
    pub fn remove_link(&self, node: usize, ifname: &str) {
        run(&["ip", "-n", &self.nodes[node].netns, "link", "del", ifname]);
    }

    /// Takes a node's links down, as if it lost power (its IPv6 addresses go with them).
    pub fn link_down(&self, node: usize) {
        let n = &self.nodes[node];
        for (ifname, present) in [("eth0", true), ("eth1", n.lan2.is_some())] {
            if present {
                Lan::exec_in(&n.netns, &["ip", "link", "set", ifname, "down"]);
            }
        }
    }

    /// Brings a node's links back up, with their IPv6 addresses.
    pub fn link_up(&self, node: usize) {
        let n = &self.nodes[node];
        let i = (node + 1) as u16;
        let mut legs = vec![("eth0", n.addr6)];
        if n.lan2.is_some() {
            legs.push(("eth1", Ipv6Addr::new(0x2001, 0xdb8, 0x113, 0, 0, 0, 0, i)));
        }
        for (ifname, v6) in legs {
            Lan::exec_in(&n.netns, &["ip", "link", "set", ifname, "up"]);
            let a = format!("{v6}/64");
            Lan::try_exec_in(&n.netns, &["ip", "addr", "add", &a, "dev", ifname, "nodad"]);
        }
    }

    /// Runs a command inside a namespace; panics if it fails.
    pub fn exec_in(netns: &str, args: &[&str]) -> Output {
        let mut full = vec!["ip", "netns", "exec", netns];
        full.extend_from_slice(args);
        run(&full)
    }

    /// Runs a command inside a namespace and returns its output whatever its exit status.
    pub fn try_exec_in(netns: &str, args: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", netns])
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("running {args:?} in {netns}: {e}"))
    }

    /// Starts a command inside a namespace in the background, its output to `log`; it and
    /// everything it starts are killed when the handle is dropped.
    pub fn spawn_in(netns: &str, args: &[&str], log: &std::path::Path) -> Background {
        use std::os::unix::process::CommandExt;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("log file");
        let child = Command::new("ip")
            .args(["netns", "exec", netns])
            .args(args)
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("log file handle"))
            .stderr(file)
            // Its own process group, so a shell loop's children go with it.
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {args:?} in {netns}: {e}"));
        Background { child: Some(child) }
    }

    /// Runs a command inside a node's namespace.
    pub fn exec(&self, node: usize, args: &[&str]) -> Output {
        Lan::exec_in(&self.nodes[node].netns, args)
    }

    /// The client (panics if the lab has none).
    pub fn client(&self) -> &Host {
        self.client.as_ref().expect("a lab with a client")
    }

    /// Cuts `node` off from `others`, both ways (iptables in its namespace); the host still
    /// reaches it.
    pub fn cut(&self, node: usize, others: &[usize]) {
        for &o in others {
            let peer = self.nodes[o].addr.to_string();
            self.exec(
                node,
                &["iptables", "-A", "INPUT", "-s", &peer, "-j", "DROP"],
            );
            self.exec(
                node,
                &["iptables", "-A", "OUTPUT", "-d", &peer, "-j", "DROP"],
            );
        }
    }

    /// Removes every cut of `node`.
    pub fn heal(&self, node: usize) {
        self.exec(node, &["iptables", "-F", "INPUT"]);
        self.exec(node, &["iptables", "-F", "OUTPUT"]);
    }

    /// The host's address on LAN 1 ([`Lan::HOST`] unless built with [`Lan::build_in`]).
    pub fn host_addr(&self) -> Ipv4Addr {
        Ipv4Addr::new(self.v4[0], self.v4[1], self.v4[2], 254)
    }

    /// The prefix of every name this lab made.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        // Best effort: deleting a namespace removes its interfaces and their veth peers.
        for ns in &self.namespaces {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.bridge_ns])
            .output();
        let _ = Command::new("ip")
            .args(["link", "del", &self.host_if])
            .output();
    }
}
