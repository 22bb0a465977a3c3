//! FRR with BFD: bfdd beside zebra and bgpd, as MetalLB's FRR mode runs them. bgpd asks zebra
//! for its BFD sessions and zebra hands them to bfdd, so bfdd only works with zebra running.

use std::net::IpAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use super::{Router, RouterKind};
use crate::netns::Lan;

/// One BFD session as FRR's bfdd shows it (`show bfd peers json`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BfdPeer {
    /// The peer's address.
    pub peer: IpAddr,
    /// `up`, `down`, `init` or `shutdown`.
    pub status: String,
    /// The transmit interval the peer asks for (its Desired Min TX), milliseconds.
    pub remote_transmit_ms: Option<u64>,
    /// The peer's detection multiplier.
    pub remote_multiplier: Option<u64>,
}

impl Router {
    /// Starts FRR's zebra, bgpd and bfdd in `netns`, their files in `dir`: bgpd on
    /// `bgpd_conf`, bfdd on `bfdd_conf` (its `bfd` block: profiles, static peers). zebra
    /// installs what bgpd learns in the namespace's kernel table.
    ///
    /// Unlike [`Router::run_frr`]'s, this zebra runs without `-n` (network namespaces as
    /// VRFs): with it, each zebra takes every namespace on the host for a VRF of its own, and
    /// each bfdd then opens its sockets in all of them, so with several FRRs on one host BFD
    /// packets reach the wrong bfdd and no session comes up.
    pub fn start_frr_bfd(netns: &str, dir: &Path, bgpd_conf: &str, bfdd_conf: &str) -> Router {
        std::fs::create_dir_all(dir).expect("router directory");
        let mut r = Router {
            kind: RouterKind::Frr,
            netns: netns.to_string(),
            dir: dir.to_path_buf(),
            api_port: 0,
            procs: Vec::new(),
        };
        let d = dir.display().to_string();
        let file = |name: &str, text: &str| {
            let path = dir.join(name);
            std::fs::write(&path, text).unwrap_or_else(|e| panic!("{name}: {e}"));
            path.display().to_string()
        };
        let (zebra, bgpd, bfdd) = (
            file("zebra.conf", "hostname r\n"),
            file("bgpd.conf", bgpd_conf),
            file("bfdd.conf", bfdd_conf),
        );
        // zebra and bfdd drop to user frr: the directory (and what is in it) must be theirs.
        let _ = std::process::Command::new("chown")
            .args(["-R", "frr:frr", &d])
            .status();
        let zserv = format!("{d}/zserv.api");
        let (zpid, bpid, fpid, ctl) = (
            format!("{d}/zebra.pid"),
            format!("{d}/bgpd.pid"),
            format!("{d}/bfdd.pid"),
            // Its own control socket: the default path is shared by every bfdd on the host.
            format!("{d}/bfdd.sock"),
        );
        let common = ["-z", zserv.as_str(), "--vty_socket", d.as_str()];
        let daemons: [(&str, Vec<&str>); 3] = [
            ("zebra", vec!["-f", &zebra, "-i", &zpid]),
            // -S: bgpd stays root, as run_frr has it.
            ("bgpd", vec!["-f", &bgpd, "-i", &bpid, "-S"]),
            ("bfdd", vec!["-f", &bfdd, "-i", &fpid, "--bfdctl", &ctl]),
        ];
        for (daemon, args) in daemons {
            let exe = format!("/usr/lib/frr/{daemon}");
            let mut full = vec![exe.as_str()];
            full.extend(args);
            full.extend(common);
            r.procs.push(Lan::spawn_in(
                netns,
                &full,
                &dir.join(format!("{daemon}.out")),
            ));
            if daemon == "zebra" {
                // The others connect to zebra's socket once, at start.
                let deadline = Instant::now() + Duration::from_secs(10);
                while !Path::new(&zserv).exists() && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        }
        r.wait_for(
            |r| {
                r.vtysh("show bgp summary json")
                    .trim_start()
                    .starts_with('{')
            },
            "bgpd",
        );
        r.wait_for(
            |r| r.vtysh("show bfd peers json").trim_start().starts_with('['),
            "bfdd",
        );
        r
    }

    /// The BFD sessions bfdd holds.
    pub fn bfd_peers(&self) -> Vec<BfdPeer> {
        let text = self.vtysh("show bfd peers json");
        let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| {
                Some(BfdPeer {
                    peer: p["peer"].as_str()?.parse().ok()?,
                    status: p["status"].as_str()?.to_string(),
                    remote_transmit_ms: p["remote-transmit-interval"].as_u64(),
                    remote_multiplier: p["remote-detect-multiplier"].as_u64(),
                })
            })
            .collect()
    }
}
