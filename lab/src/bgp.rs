//! Real BGP routers in a namespace (GoBGP, BIRD, FRR from Debian), configured to listen for
//! the lab's speakers, and what they learned, read back from their own JSON or text output and
//! put in one shape so the tests can compare the three.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ipnet::IpNet;

use super::netns::{Background, Lan};
pub mod frr_bfd;

/// Which router.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RouterKind {
    /// gobgpd.
    GoBgp,
    /// BIRD 2.
    Bird,
    /// FRR's bgpd (with zebra when routes are to reach the kernel).
    Frr,
}

/// One speaker the router accepts a session from.
#[derive(Clone, Debug)]
pub struct Neighbor {
    /// The speaker's address.
    pub addr: IpAddr,
    /// Its AS.
    pub asn: u32,
    /// The TCP MD5 password the router expects.
    pub password: Option<String>,
}

/// How to run the router.
#[derive(Clone, Debug)]
pub struct RouterConfig {
    /// Which one.
    pub kind: RouterKind,
    /// Its AS.
    pub asn: u32,
    /// Its router ID and listening address.
    pub router_id: Ipv4Addr,
    /// The speakers it peers with (passively).
    pub neighbors: Vec<Neighbor>,
    /// Install what it learns in the namespace's kernel table (FRR: with zebra; BIRD: a
    /// kernel protocol).
    pub kernel: bool,
    /// Act as graceful restart helper (keep a restarting speaker's routes).
    pub graceful_restart: bool,
}

/// One path the router holds for a prefix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Learned {
    /// Its next hop.
    pub next_hop: IpAddr,
    /// Its AS path, left to right.
    pub as_path: Vec<u32>,
    /// LOCAL_PREF, if the router shows it (iBGP).
    pub local_pref: Option<u32>,
    /// Standard communities as `a:b`, sorted.
    pub communities: Vec<String>,
    /// Large communities as `a:b:c`, sorted.
    pub large_communities: Vec<String>,
    /// Kept from a restarting speaker (graceful restart), not yet refreshed.
    pub stale: bool,
}

/// A running router.
pub struct Router {
    /// Which one.
    pub kind: RouterKind,
    /// Its namespace.
    pub netns: String,
    dir: PathBuf,
    api_port: u16,
    procs: Vec<Background>,
}

/// A well-known community as `a:b`, by the name a router prints for it (FRR writes some in
/// camel case); the values are the configuration's own.
fn well_known(name: &str) -> Option<String> {
    let canonical = match name {
        "noExport" => "no-export",
        "noAdvertise" => "no-advertise",
        "local-AS" | "localAs" => "local-as",
        "noPeer" => "no-peer",
        "gracefulShutdown" => "graceful-shutdown",
        other => other,
    };
    ironlb::config::model::Community::well_known(canonical).map(|c| c.to_string())
}

impl Router {
    /// Starts the router in `netns`, its files in `dir`.
    pub fn start(netns: &str, dir: &Path, cfg: &RouterConfig) -> Router {
        std::fs::create_dir_all(dir).expect("router directory");
        let mut r = Router {
            kind: cfg.kind,
            netns: netns.to_string(),
            dir: dir.to_path_buf(),
            api_port: super::cluster::free_port(),
            procs: Vec::new(),
        };
        match cfg.kind {
            RouterKind::GoBgp => r.start_gobgp(cfg),
            RouterKind::Bird => r.start_bird(cfg),
            RouterKind::Frr => r.start_frr(cfg),
        }
        r
    }

    /// Starts FRR's bgpd (no zebra) in `netns` on configuration text `conf`: for FRR as a
    /// speaker, the benchmark's baseline.
    pub fn start_frr_with(netns: &str, dir: &Path, conf: &str) -> Router {
        std::fs::create_dir_all(dir).expect("router directory");
        let mut r = Router {
            kind: RouterKind::Frr,
            netns: netns.to_string(),
            dir: dir.to_path_buf(),
            api_port: 0,
            procs: Vec::new(),
        };
        r.run_frr(conf, false);
        r
    }

    /// Runs `vtysh -f FILE` against this FRR (a configuration change, as MetalLB's FRR mode
    /// makes them); panics if vtysh fails.
    pub fn vtysh_file(&self, file: &Path) {
        let dir = self.dir.display().to_string();
        let out = std::process::Command::new("vtysh")
            .args(["--vty_socket", &dir, "-f"])
            .arg(file)
            .output()
            .expect("vtysh runs");
        assert!(
            out.status.success(),
            "vtysh -f {}: {}{}",
            file.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// How many paths GoBGP's global table holds for `family` (`ipv4` or `ipv6`).
    pub fn gobgp_paths(&self, family: &str) -> Option<usize> {
        let text = self.gobgp_text(&["global", "rib", "summary", "-a", family]);
        let after = text.split("Path:").nth(1)?;
        after
            .trim()
            .trim_matches(|c: char| !c.is_ascii_digit())
            .split(|c: char| !c.is_ascii_digit())
            .next()?
            .parse()
            .ok()
    }

    fn start_gobgp(&mut self, cfg: &RouterConfig) {
        let mut conf = format!(
            "[global.config]\n  as = {}\n  router-id = \"{}\"\n",
            cfg.asn, cfg.router_id
        );
        for n in &cfg.neighbors {
            conf.push_str(&format!(
                "\n[[neighbors]]\n  [neighbors.config]\n    neighbor-address = \"{}\"\n    peer-as = {}\n",
                n.addr, n.asn
            ));
            if let Some(pw) = &n.password {
                conf.push_str(&format!("    auth-password = \"{pw}\"\n"));
            }
            conf.push_str("  [neighbors.timers.config]\n    hold-time = 9\n    keepalive-interval = 3\n    connect-retry = 1\n");
            conf.push_str("  [neighbors.transport.config]\n    passive-mode = true\n");
            if cfg.graceful_restart {
                conf.push_str("  [neighbors.graceful-restart.config]\n    enabled = true\n    restart-time = 120\n");
            }
            for af in ["ipv4-unicast", "ipv6-unicast"] {
                conf.push_str(&format!(
                    "  [[neighbors.afi-safis]]\n    [neighbors.afi-safis.config]\n      afi-safi-name = \"{af}\"\n"
                ));
                if cfg.graceful_restart {
                    conf.push_str("    [neighbors.afi-safis.mp-graceful-restart.config]\n      enabled = true\n");
                }
            }
        }
        let path = self.dir.join("gobgpd.toml");
        std::fs::write(&path, conf).expect("gobgpd.toml");
        let api = format!("127.0.0.1:{}", self.api_port);
        let p = path.to_str().expect("UTF-8 path").to_string();
        let log = self.dir.join("gobgpd.log");
        self.procs.push(Lan::spawn_in(
            &self.netns,
            &[
                "gobgpd",
                "-f",
                &p,
                "-p",
                "--api-hosts",
                &api,
                "--pprof-disable",
                "-l",
                "info",
            ],
            &log,
        ));
        self.wait_for(|r| r.try_gobgp(&["global", "-j"]).is_some(), "gobgpd API");
    }

    fn start_bird(&mut self, cfg: &RouterConfig) {
        let mut conf = format!(
            "log \"{}\" all;\nrouter id {};\nprotocol device {{}}\n",
            self.dir.join("bird.log").display(),
            cfg.router_id
        );
        if cfg.kernel {
            conf.push_str("protocol kernel { ipv4 { export all; }; merge paths on; }\n");
            conf.push_str("protocol kernel { ipv6 { export all; }; merge paths on; }\n");
        }
        for (i, n) in cfg.neighbors.iter().enumerate() {
            conf.push_str(&format!(
                "protocol bgp spk{} {{\n  local {} as {};\n  neighbor {} as {};\n  passive on;\n  hold time 9;\n",
                i + 1,
                cfg.router_id,
                cfg.asn,
                n.addr,
                n.asn
            ));
            if n.asn == cfg.asn {
                // iBGP is multihop to BIRD unless told the speakers are on the LAN.
                conf.push_str("  direct;\n");
            }
            if let Some(pw) = &n.password {
                conf.push_str(&format!("  password \"{pw}\";\n"));
            }
            if cfg.graceful_restart {
                conf.push_str("  graceful restart on;\n");
            }
            conf.push_str("  ipv4 { import all; export none; gateway direct; };\n");
            conf.push_str("  ipv6 { import all; export none; gateway direct; };\n}\n");
        }
        let path = self.dir.join("bird.conf");
        std::fs::write(&path, conf).expect("bird.conf");
        let ctl = self.dir.join("bird.ctl");
        let args: Vec<String> = vec![
            "bird".into(),
            "-f".into(),
            "-c".into(),
            path.display().to_string(),
            "-s".into(),
            ctl.display().to_string(),
            "-P".into(),
            self.dir.join("bird.pid").display().to_string(),
        ];
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let log = self.dir.join("bird.out");
        self.procs.push(Lan::spawn_in(&self.netns, &args, &log));
        self.wait_for(|r| r.birdc("show status").contains("Daemon is up"), "bird");
    }

    fn start_frr(&mut self, cfg: &RouterConfig) {
        let mut conf = format!(
            "hostname r\nlog file {}/bgpd.log\n!\nrouter bgp {}\n bgp router-id {}\n no bgp ebgp-requires-policy\n no bgp network import-check\n",
            self.dir.display(),
            cfg.asn,
            cfg.router_id
        );
        if cfg.graceful_restart {
            conf.push_str(" bgp graceful-restart\n");
        }
        for n in &cfg.neighbors {
            conf.push_str(&format!(
                " neighbor {a} remote-as {asn}\n neighbor {a} passive\n neighbor {a} timers 3 9\n",
                a = n.addr,
                asn = n.asn
            ));
            if let Some(pw) = &n.password {
                conf.push_str(&format!(" neighbor {} password {pw}\n", n.addr));
            }
        }
        conf.push_str(" address-family ipv4 unicast\n  maximum-paths 8\n  maximum-paths ibgp 8\n exit-address-family\n address-family ipv6 unicast\n");
        for n in &cfg.neighbors {
            conf.push_str(&format!("  neighbor {} activate\n", n.addr));
        }
        conf.push_str("  maximum-paths 8\n  maximum-paths ibgp 8\n exit-address-family\n!\n");
        self.run_frr(&conf, cfg.kernel);
    }

    /// Starts FRR (bgpd, and zebra with `kernel`) on configuration text `bgpd_conf`.
    pub fn run_frr(&mut self, bgpd_conf: &str, kernel: bool) {
        let path = self.dir.join("bgpd.conf");
        std::fs::write(&path, bgpd_conf).expect("bgpd.conf");
        let dir = self.dir.display().to_string();
        let zserv = format!("{dir}/zserv.api");
        let conf = path.display().to_string();
        let pid = format!("{dir}/bgpd.pid");
        if kernel {
            // zebra drops to user frr: the directory (and what is in it) must be theirs.
            let zconf = format!("{dir}/zebra.conf");
            std::fs::write(&zconf, "hostname r\n").expect("zebra.conf");
            let _ = std::process::Command::new("chown")
                .args(["-R", "frr:frr", &dir])
                .status();
            let zpid = format!("{dir}/zebra.pid");
            self.procs.push(Lan::spawn_in(
                &self.netns,
                &[
                    "/usr/lib/frr/zebra",
                    "-f",
                    &zconf,
                    "-i",
                    &zpid,
                    "-z",
                    &zserv,
                    "--vty_socket",
                    &dir,
                    "-n",
                ],
                &self.dir.join("zebra.out"),
            ));
            let deadline = Instant::now() + Duration::from_secs(10);
            while !Path::new(&zserv).exists() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        let mut args = vec![
            "/usr/lib/frr/bgpd",
            "-f",
            &conf,
            "-i",
            &pid,
            "--vty_socket",
            &dir,
            "-S",
        ];
        if kernel {
            args.extend(["-z", zserv.as_str()]);
        } else {
            // No zebra: -Z runs without it, -n installs nothing; root keeps the files ours.
            args.extend(["-Z", "-n", "-u", "root", "-g", "root"]);
        }
        self.procs.push(Lan::spawn_in(
            &self.netns,
            &args,
            &self.dir.join("bgpd.out"),
        ));
        self.wait_for(
            |r| {
                r.vtysh("show bgp summary json")
                    .trim_start()
                    .starts_with('{')
            },
            "bgpd",
        );
    }

    fn wait_for(&self, ready: impl Fn(&Router) -> bool, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while !ready(self) {
            assert!(
                Instant::now() < deadline,
                "{what} did not start:\n{}",
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// What the router shows of its sessions and tables, for failure messages.
    pub fn describe(&self) -> String {
        match self.kind {
            RouterKind::GoBgp => format!(
                "{}\n{}\n{}",
                self.gobgp_text(&["neighbor"]),
                self.gobgp_text(&["global", "rib", "-a", "ipv4"]),
                self.gobgp_text(&["global", "rib", "-a", "ipv6"])
            ),
            RouterKind::Bird => format!(
                "{}\n{}",
                self.birdc("show protocols"),
                self.birdc("show route all")
            ),
            RouterKind::Frr => format!(
                "{}\n{}\n{}\n{}\n{}",
                self.vtysh("show zebra client summary"),
                self.vtysh("show bgp summary"),
                self.vtysh("show bgp ipv4 unicast"),
                self.vtysh("show ip route"),
                self.vtysh("show bgp ipv6 unicast")
            ),
        }
    }

    /// The router's own log's last lines.
    pub fn log_tail(&self) -> String {
        let mut out = String::new();
        for f in [
            "gobgpd.log",
            "bird.log",
            "bird.out",
            "bgpd.log",
            "bgpd.out",
            "zebra.out",
        ] {
            if let Ok(text) = std::fs::read_to_string(self.dir.join(f)) {
                let lines: Vec<&str> = text.lines().collect();
                out.push_str(&format!(
                    "--- {f} ---\n{}\n",
                    lines[lines.len().saturating_sub(20)..].join("\n")
                ));
            }
        }
        out
    }

    /// The PIDs of the router's processes.
    pub fn pids(&self) -> Vec<u32> {
        self.procs.iter().filter_map(Background::id).collect()
    }

    fn try_gobgp(&self, args: &[&str]) -> Option<serde_json::Value> {
        let port = self.api_port.to_string();
        let mut full = vec!["gobgp", "--port", &port, "-u", "127.0.0.1"];
        full.extend_from_slice(args);
        let out = Lan::try_exec_in(&self.netns, &full);
        if !out.status.success() {
            return None;
        }
        serde_json::from_slice(&out.stdout).ok()
    }

    /// Runs `gobgp` against this router; its output as text.
    pub fn gobgp_text(&self, args: &[&str]) -> String {
        let port = self.api_port.to_string();
        let mut full = vec!["gobgp", "--port", &port, "-u", "127.0.0.1"];
        full.extend_from_slice(args);
        String::from_utf8_lossy(&Lan::try_exec_in(&self.netns, &full).stdout).into_owned()
    }

    /// Runs a `birdc` command; its output.
    pub fn birdc(&self, cmd: &str) -> String {
        let ctl = self.dir.join("bird.ctl").display().to_string();
        let mut args = vec!["birdc", "-s", &ctl];
        args.extend(cmd.split_whitespace());
        String::from_utf8_lossy(&Lan::try_exec_in(&self.netns, &args).stdout).into_owned()
    }

    /// Runs a `vtysh` command; its output.
    pub fn vtysh(&self, cmd: &str) -> String {
        let dir = self.dir.display().to_string();
        let out = std::process::Command::new("vtysh")
            .args(["--vty_socket", &dir, "-c", cmd])
            .output()
            .expect("vtysh runs");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Whether the session with the speaker at `addr` is established.
    pub fn established(&self, addr: IpAddr) -> bool {
        match self.kind {
            RouterKind::GoBgp => {
                self.try_gobgp(&["neighbor", &addr.to_string(), "-j"])
                    .and_then(|v| v["state"]["session_state"].as_u64())
                    == Some(6)
            }
            RouterKind::Bird => self.birdc("show protocols").lines().any(|l| {
                l.contains("Established") && {
                    let name = l.split_whitespace().next().unwrap_or("");
                    self.birdc(&format!("show protocols all {name}"))
                        .contains(&format!("Neighbor address: {addr}"))
                }
            }),
            RouterKind::Frr => {
                let text = self.vtysh(&format!("show bgp neighbors {addr} json"));
                serde_json::from_str::<serde_json::Value>(&text)
                    .ok()
                    .and_then(|v| v[addr.to_string()]["bgpState"].as_str().map(str::to_owned))
                    .as_deref()
                    == Some("Established")
            }
        }
    }

    /// Waits until the session with `addr` is established (panics after `within`).
    pub fn wait_established(&self, addr: IpAddr, within: Duration) {
        let deadline = Instant::now() + within;
        while !self.established(addr) {
            assert!(
                Instant::now() < deadline,
                "{:?}: no session with {addr}:\n{}",
                self.kind,
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Every prefix the router holds, with its paths.
    pub fn routes(&self) -> BTreeMap<IpNet, Vec<Learned>> {
        match self.kind {
            RouterKind::GoBgp => self.gobgp_routes(),
            RouterKind::Bird => parse_bird(&self.birdc("show route all")),
            RouterKind::Frr => self.frr_routes(),
        }
    }

    /// The paths for `prefix`, once there are `n` of them (panics after `within`).
    pub fn wait_paths(&self, prefix: IpNet, n: usize, within: Duration) -> Vec<Learned> {
        let deadline = Instant::now() + within;
        loop {
            let paths = self.routes().remove(&prefix).unwrap_or_default();
            if paths.len() == n {
                return paths;
            }
            assert!(
                Instant::now() < deadline,
                "{:?}: {prefix} has {} paths, not {n}: {paths:?}\n{}\n{}",
                self.kind,
                paths.len(),
                self.describe(),
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn gobgp_routes(&self) -> BTreeMap<IpNet, Vec<Learned>> {
        let mut out = BTreeMap::new();
        for af in ["ipv4", "ipv6"] {
            let Some(v) = self.try_gobgp(&["global", "rib", "-a", af, "-j"]) else {
                continue;
            };
            let Some(map) = v.as_object() else { continue };
            for (prefix, paths) in map {
                let Ok(prefix) = prefix.parse::<IpNet>() else {
                    continue;
                };
                let learned = paths
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(gobgp_path)
                    .collect();
                out.insert(prefix, learned);
            }
        }
        out
    }

    fn frr_routes(&self) -> BTreeMap<IpNet, Vec<Learned>> {
        let mut out = BTreeMap::new();
        for af in ["ipv4", "ipv6"] {
            let text = self.vtysh(&format!("show bgp {af} unicast json"));
            let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) else {
                continue;
            };
            let Some(routes) = v["routes"].as_object() else {
                continue;
            };
            for prefix in routes.keys() {
                let Ok(p) = prefix.parse::<IpNet>() else {
                    continue;
                };
                // The summary has no communities: ask for the prefix itself.
                let text = self.vtysh(&format!("show bgp {af} unicast {prefix} json"));
                let Ok(d) = serde_json::from_str::<serde_json::Value>(&text) else {
                    continue;
                };
                let paths = d["paths"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(frr_path)
                    .collect();
                out.insert(p, paths);
            }
        }
        out
    }

    /// The next hops of `prefix` in the namespace's kernel table.
    pub fn kernel_next_hops(&self, prefix: IpNet) -> Vec<IpAddr> {
        let fam = if prefix.addr().is_ipv4() { "-4" } else { "-6" };
        let p = prefix.to_string();
        let out = Lan::try_exec_in(&self.netns, &["ip", fam, "-j", "route", "show", &p]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        let mut hops = Vec::new();
        let nexthop = |id: u64| -> serde_json::Value {
            let id = id.to_string();
            let out = Lan::try_exec_in(&self.netns, &["ip", "-j", "nexthop", "show", "id", &id]);
            serde_json::from_slice::<serde_json::Value>(&out.stdout)
                .ok()
                .and_then(|v| v.as_array().and_then(|a| a.first().cloned()))
                .unwrap_or_default()
        };
        for r in v.as_array().into_iter().flatten() {
            // zebra installs nexthop objects: a group of ids, each with its gateway.
            if let Some(id) = r["nhid"].as_u64() {
                let nh = nexthop(id);
                let members: Vec<u64> = nh["group"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|m| m["id"].as_u64())
                    .collect();
                let objects = if members.is_empty() {
                    vec![nh]
                } else {
                    members.into_iter().map(nexthop).collect()
                };
                for o in objects {
                    if let Some(g) = o["gateway"].as_str().and_then(|g| g.parse().ok()) {
                        hops.push(g);
                    }
                }
                continue;
            }
            if let Some(g) = r["gateway"].as_str().and_then(|g| g.parse().ok()) {
                hops.push(g);
            }
            for nh in r["nexthops"].as_array().into_iter().flatten() {
                if let Some(g) = nh["gateway"].as_str().and_then(|g| g.parse().ok()) {
                    hops.push(g);
                }
            }
        }
        hops.sort();
        hops
    }
}

fn gobgp_path(p: &serde_json::Value) -> Option<Learned> {
    let mut l = Learned {
        next_hop: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        as_path: Vec::new(),
        local_pref: None,
        communities: Vec::new(),
        large_communities: Vec::new(),
        stale: p["stale"].as_bool().unwrap_or(false),
    };
    for a in p["attrs"].as_array()? {
        match a["type"].as_u64()? {
            2 => {
                for seg in a["as_paths"].as_array().into_iter().flatten() {
                    for asn in seg["asns"].as_array().into_iter().flatten() {
                        l.as_path.push(asn.as_u64()? as u32);
                    }
                }
            }
            3 | 14 => {
                if let Some(nh) = a["nexthop"].as_str().and_then(|s| s.parse().ok()) {
                    l.next_hop = nh;
                }
            }
            5 => l.local_pref = a["value"].as_u64().map(|v| v as u32),
            8 => {
                for c in a["communities"].as_array().into_iter().flatten() {
                    let c = c.as_u64()?;
                    l.communities.push(format!("{}:{}", c >> 16, c & 0xffff));
                }
            }
            32 => {
                for c in a["value"].as_array().into_iter().flatten() {
                    l.large_communities.push(format!(
                        "{}:{}:{}",
                        c["ASN"].as_u64()?,
                        c["LocalData1"].as_u64()?,
                        c["LocalData2"].as_u64()?
                    ));
                }
            }
            _ => {}
        }
    }
    l.communities.sort();
    l.large_communities.sort();
    Some(l)
}

fn frr_path(p: &serde_json::Value) -> Option<Learned> {
    let next_hop = p["nexthops"]
        .as_array()?
        .iter()
        .filter_map(|n| n["ip"].as_str()?.parse::<IpAddr>().ok())
        // An IPv6 route's next hops list the global address first, the link-local second.
        .next()?;
    let as_path = p["aspath"]["string"]
        .as_str()
        .unwrap_or("")
        .split_whitespace()
        .filter_map(|a| a.parse().ok())
        .collect();
    let mut communities: Vec<String> = p["community"]["string"]
        .as_str()
        .unwrap_or("")
        .split_whitespace()
        .map(|c| well_known(c).unwrap_or_else(|| c.to_string()))
        .collect();
    communities.sort();
    let mut large_communities: Vec<String> = p["largeCommunity"]["string"]
        .as_str()
        .unwrap_or("")
        .split_whitespace()
        .map(str::to_string)
        .collect();
    large_communities.sort();
    Some(Learned {
        next_hop,
        as_path,
        local_pref: p["locPrf"].as_u64().map(|v| v as u32),
        communities,
        large_communities,
        stale: p["stale"].as_bool().unwrap_or(false),
    })
}

/// Reads `birdc show route all`: a prefix line starts each route, an indented `unicast [`
/// line each further path of it, and `BGP.*` lines carry the attributes.
pub fn parse_bird(text: &str) -> BTreeMap<IpNet, Vec<Learned>> {
    let mut out: BTreeMap<IpNet, Vec<Learned>> = BTreeMap::new();
    let mut prefix: Option<IpNet> = None;
    let new_path = |stale: bool| Learned {
        next_hop: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        as_path: Vec::new(),
        local_pref: None,
        communities: Vec::new(),
        large_communities: Vec::new(),
        stale,
    };
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with("Table ") || trimmed.starts_with("BIRD ") {
            continue;
        }
        let first = trimmed.split_whitespace().next().unwrap_or("");
        if !line.starts_with(char::is_whitespace) {
            if let Ok(p) = first.parse::<IpNet>() {
                prefix = Some(p);
                out.entry(p).or_default().push(new_path(
                    trimmed.contains(" (stale)") || trimmed.contains("stale"),
                ));
                continue;
            }
        }
        let Some(p) = prefix else { continue };
        if first == "unicast" {
            out.entry(p)
                .or_default()
                .push(new_path(trimmed.contains("stale")));
            continue;
        }
        let Some(cur) = out.get_mut(&p).and_then(|v| v.last_mut()) else {
            continue;
        };
        if let Some(v) = trimmed.strip_prefix("BGP.as_path:") {
            cur.as_path = v
                .split_whitespace()
                .filter_map(|a| a.parse().ok())
                .collect();
        } else if let Some(v) = trimmed.strip_prefix("BGP.next_hop:") {
            if let Some(nh) = v.split_whitespace().find_map(|a| a.parse().ok()) {
                cur.next_hop = nh;
            }
        } else if let Some(v) = trimmed.strip_prefix("BGP.local_pref:") {
            cur.local_pref = v.trim().parse().ok();
        } else if let Some(v) = trimmed.strip_prefix("BGP.community:") {
            cur.communities = bird_tuples(v, 2);
        } else if let Some(v) = trimmed.strip_prefix("BGP.large_community:") {
            cur.large_communities = bird_tuples(v, 3);
        }
    }
    out
}

/// `(a, b) (c, d)` as `a:b`, `c:d`, sorted.
fn bird_tuples(text: &str, n: usize) -> Vec<String> {
    let mut out: Vec<String> = text
        .split(')')
        .filter_map(|t| {
            let inner = t.trim().strip_prefix('(')?;
            let parts: Vec<&str> = inner.split(',').map(str::trim).collect();
            (parts.len() == n).then(|| parts.join(":"))
        })
        .collect();
    out.sort();
    out
}

impl Drop for Router {
    fn drop(&mut self) {
        for p in &mut self.procs {
            p.kill();
        }
        if std::env::var_os("IRONLB_KEEP_LOGS").is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
