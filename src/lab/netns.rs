//! A LAN of network namespaces joined by a bridge, with a leg into the host so tests can reach
//! every node. Documentation addresses only (198.51.100.0/24), names unique per lab, and
//! everything removed on drop, also when a test panics.

use std::net::Ipv4Addr;
use std::process::{Command, Output};
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

/// For tests: returns true if the lab can run. If it cannot, fails the test when
/// `IRONLB_REQUIRE_LAB=1` (CI), else says why it is skipped and returns false.
pub fn require() -> bool {
    match available() {
        Ok(()) => true,
        Err(why) if std::env::var("IRONLB_REQUIRE_LAB").as_deref() == Ok("1") => {
            panic!("IRONLB_REQUIRE_LAB=1 but {why}")
        }
        Err(why) => {
            eprintln!("skipping: {why}");
            false
        }
    }
}

fn run(args: &[&str]) -> Output {
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

/// One node's namespace on the LAN.
#[derive(Clone, Debug)]
pub struct Node {
    /// The namespace's name.
    pub netns: String,
    /// Its address on the LAN.
    pub addr: Ipv4Addr,
}

/// A bridge LAN of node namespaces, reachable from the host at [`Lan::HOST`].
pub struct Lan {
    prefix: String,
    bridge_ns: String,
    host_if: String,
    /// The nodes, in order.
    pub nodes: Vec<Node>,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

impl Lan {
    /// The host's address on the LAN.
    pub const HOST: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 254);

    /// Builds a LAN of `n` nodes at 198.51.100.1, .2, ...
    pub fn new(n: usize) -> Lan {
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
            bridge_ns: bridge_ns.clone(),
            host_if: host_if.clone(),
            nodes: Vec::new(),
        };
        run(&["ip", "netns", "add", &bridge_ns]);
        run(&[
            "ip", "-n", &bridge_ns, "link", "add", "br0", "type", "bridge",
        ]);
        run(&["ip", "-n", &bridge_ns, "link", "set", "br0", "up"]);
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
            &format!("{}/24", Lan::HOST),
            "dev",
            &host_if,
        ]);
        run(&["ip", "link", "set", &host_if, "up"]);
        for i in 0..n {
            let netns = format!("{prefix}-n{}", i + 1);
            let addr = Ipv4Addr::new(198, 51, 100, (i + 1) as u8);
            let inner = format!("{prefix}n{}a", i + 1);
            let outer = format!("{prefix}n{}b", i + 1);
            run(&["ip", "netns", "add", &netns]);
            lan.nodes.push(Node {
                netns: netns.clone(),
                addr,
            });
            run(&[
                "ip", "link", "add", &inner, "type", "veth", "peer", "name", &outer,
            ]);
            run(&["ip", "link", "set", &inner, "netns", &netns]);
            run(&["ip", "link", "set", &outer, "netns", &bridge_ns]);
            run(&[
                "ip", "-n", &bridge_ns, "link", "set", &outer, "master", "br0", "up",
            ]);
            run(&["ip", "-n", &netns, "link", "set", &inner, "name", "eth0"]);
            run(&[
                "ip",
                "-n",
                &netns,
                "addr",
                "add",
                &format!("{addr}/24"),
                "dev",
                "eth0",
            ]);
            run(&["ip", "-n", &netns, "link", "set", "eth0", "up"]);
            run(&["ip", "-n", &netns, "link", "set", "lo", "up"]);
        }
        lan
    }

    /// Runs a command inside a node's namespace.
    pub fn exec(&self, node: usize, args: &[&str]) -> Output {
        let mut full = vec!["ip", "netns", "exec", &self.nodes[node].netns];
        full.extend_from_slice(args);
        run(&full)
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

    /// The prefix of every name this lab made.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        // Best effort: deleting a namespace removes its interfaces and their veth peers.
        for n in &self.nodes {
            let _ = Command::new("ip").args(["netns", "del", &n.netns]).output();
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.bridge_ns])
            .output();
        let _ = Command::new("ip")
            .args(["link", "del", &self.host_if])
            .output();
    }
}
