//! The system under test: real `ironlb controller` and `ironlb speaker` processes, each in a
//! network namespace of its own on one bridge LAN, with a client namespace (the prober) and an
//! attacker namespace (the flooder). The suite starts, kills, pauses, wipes and partitions them;
//! it learns their state only from the admin API.
//!
//! | namespace | runs | LAN address |
//! |---|---|---|
//! | node 1..M | controller member (slot 0..M-1) | 198.51.100.1.. |
//! | node M+1..M+2 | spare members, for membership changes | |
//! | the next S nodes | speakers | |
//! | client | the prober (ARP, NDP, ping), tshark | 198.51.100.200 |
//! | attacker | floods | 198.51.100.240 |

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use ironlb_lab::netns::{Lan, LanOptions};
use serde_json::Value;

use crate::client::Api;

/// Spare member namespaces, for membership changes.
pub const SPARES: usize = 2;

/// How to build the system under test.
#[derive(Clone, Debug)]
pub struct DbOptions {
    /// Controller members at the start (3 or 5).
    pub members: usize,
    /// Speakers.
    pub speakers: usize,
    /// The `ironlb` binary.
    pub bin: PathBuf,
    /// Extra arguments of every controller (timings).
    pub controller_args: Vec<String>,
    /// Extra arguments of every speaker.
    pub speaker_args: Vec<String>,
    /// `RUST_LOG` of the processes.
    pub log_filter: String,
}

/// One controller member's slot: a namespace, a data directory, maybe a running process.
#[derive(Debug)]
pub struct Member {
    /// The slot (0-based); the first start uses member id slot + 1.
    pub slot: usize,
    /// Its namespace.
    pub netns: String,
    /// Its LAN address.
    pub addr: Ipv4Addr,
    /// Its data directory.
    pub data: PathBuf,
    /// Where its output goes (appended across restarts).
    pub log: PathBuf,
    /// Whether it is meant to be part of the cluster now.
    pub active: bool,
    /// The running process.
    pub child: Option<Child>,
    /// Arguments of its next start (bootstrap and join flags).
    pub role_args: Vec<String>,
}

impl Member {
    /// `host:port` of its admin API.
    pub fn admin(&self) -> String {
        format!("{}:7480", self.addr)
    }

    /// `host:port` of its Raft port.
    pub fn raft(&self) -> String {
        format!("{}:7481", self.addr)
    }

    /// Its process id, if running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }
}

/// One speaker.
#[derive(Debug)]
pub struct Speaker {
    /// Its index (0-based); its node name is `s{index+1}`.
    pub index: usize,
    /// Its namespace.
    pub netns: String,
    /// Its LAN address.
    pub addr: Ipv4Addr,
    /// Its MAC on the LAN.
    pub mac: String,
    /// Where its output goes.
    pub log: PathBuf,
    /// The running process.
    pub child: Option<Child>,
}

impl Speaker {
    /// Its node name.
    pub fn node(&self) -> String {
        format!("s{}", self.index + 1)
    }

    /// Its process id, if running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }
}

/// The system under test.
pub struct Db {
    /// Members, by slot (the spares last).
    pub members: Vec<Member>,
    /// Speakers, by index.
    pub speakers: Vec<Speaker>,
    /// The options it was built with.
    pub opts: DbOptions,
    /// The admin API client.
    pub api: Api,
    /// The namespaces; dropped last.
    pub lan: Lan,
}

/// Sends a signal to a process.
pub fn signal(pid: u32, sig: i32) {
    // SAFETY: kill(2) on a pid we started; no memory is involved.
    unsafe {
        libc::kill(pid as i32, sig);
    }
}

/// Starts `program` with `args` inside `netns`, its output appended to `log`, with `env` set.
pub fn spawn_in(
    netns: &str,
    program: &Path,
    args: &[String],
    log: &Path,
    env: &[(&str, &str)],
) -> Result<Child> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("log {}", log.display()))?;
    Command::new("ip")
        .args(["netns", "exec", netns])
        .arg(program)
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(file.try_clone()?)
        .stderr(file)
        .spawn()
        .with_context(|| format!("starting {} {args:?} in {netns}", program.display()))
}

/// Runs `iptables -w ARGS` inside `netns`.
pub fn iptables(netns: &str, args: &[&str]) -> Result<()> {
    let out = Command::new("ip")
        .args(["netns", "exec", netns, "iptables", "-w"])
        .args(args)
        .output()?;
    if !out.status.success() {
        bail!(
            "iptables {args:?} in {netns}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

impl Db {
    /// Builds the namespaces and chains; starts nothing yet.
    pub fn build(opts: DbOptions, dir: &Path) -> Result<Self> {
        ironlb_lab::netns::available().map_err(anyhow::Error::msg)?;
        let slots = opts.members + SPARES;
        let lan = Lan::build(LanOptions {
            nodes: slots + opts.speakers,
            client: true,
            attacker: true,
            ..LanOptions::default()
        });
        let logs = dir.join("logs");
        std::fs::create_dir_all(&logs)?;
        let mut members = Vec::new();
        for slot in 0..slots {
            let node = &lan.nodes[slot];
            members.push(Member {
                slot,
                netns: node.netns.clone(),
                addr: node.addr,
                data: dir.join("data").join(format!("member-{}", slot + 1)),
                log: logs.join(format!("member-{}.log", slot + 1)),
                active: slot < opts.members,
                child: None,
                role_args: Vec::new(),
            });
        }
        let speakers = (0..opts.speakers)
            .map(|i| {
                let node = &lan.nodes[slots + i];
                Speaker {
                    index: i,
                    netns: node.netns.clone(),
                    addr: node.addr,
                    mac: node.mac.clone(),
                    log: logs.join(format!("speaker-{}.log", i + 1)),
                    child: None,
                }
            })
            .collect();
        let db = Self {
            members,
            speakers,
            opts,
            api: Api::new(Duration::from_secs(10)),
            lan,
        };
        // Partitions go into chains of their own, so healing them leaves other rules alone.
        for ns in db.namespaces() {
            for (chain, hook) in [("jepsen-in", "INPUT"), ("jepsen-out", "OUTPUT")] {
                iptables(&ns, &["-N", chain])?;
                iptables(&ns, &["-A", hook, "-j", chain])?;
            }
        }
        Ok(db)
    }

    /// Every member's and speaker's namespace.
    pub fn namespaces(&self) -> Vec<String> {
        self.members
            .iter()
            .map(|m| m.netns.clone())
            .chain(self.speakers.iter().map(|s| s.netns.clone()))
            .collect()
    }

    /// The client namespace.
    pub fn client_netns(&self) -> &str {
        &self.lan.client().netns
    }

    /// The attacker namespace.
    pub fn attacker_netns(&self) -> Option<&str> {
        self.lan.attacker.as_ref().map(|h| h.netns.as_str())
    }

    /// Admin addresses of the members meant to be in the cluster.
    pub fn active_admins(&self) -> Vec<String> {
        self.members
            .iter()
            .filter(|m| m.active)
            .map(Member::admin)
            .collect()
    }

    /// Starts (or restarts) a member with the arguments it was given.
    pub fn start_member(&mut self, slot: usize) -> Result<()> {
        let m = &self.members[slot];
        if m.child.is_some() {
            return Ok(());
        }
        std::fs::create_dir_all(&m.data)?;
        let mut args = vec![
            "controller".to_string(),
            "--id".into(),
            (slot + 1).to_string(),
            "--data-dir".into(),
            m.data.display().to_string(),
            "--raft-listen".into(),
            m.raft(),
            "--admin-listen".into(),
            m.admin(),
            // The suite attacks the protocols, not the authentication (tests/security.rs
            // does): plaintext keeps its packet captures readable.
            "--insecure".into(),
        ];
        args.extend(m.role_args.iter().cloned());
        args.extend(self.opts.controller_args.iter().cloned());
        let env = [
            ("RUST_LOG", self.opts.log_filter.as_str()),
            ("RUST_BACKTRACE", "1"),
        ];
        let child = spawn_in(&m.netns, &self.opts.bin, &args, &m.log, &env)?;
        self.members[slot].child = Some(child);
        Ok(())
    }

    /// Starts the first members: slot 0 bootstraps, as a StatefulSet's ordinal 0 does, and
    /// every member is told the others (to join, or to find the cluster that already exists).
    pub async fn start_cluster(&mut self) -> Result<()> {
        let admins: Vec<String> = (0..self.opts.members)
            .map(|s| self.members[s].admin())
            .collect();
        for slot in 0..self.opts.members {
            let others: Vec<&str> = admins
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != slot)
                .map(|(_, a)| a.as_str())
                .collect();
            let mut role = Vec::new();
            if slot == 0 {
                role.push("--bootstrap".to_string());
            }
            role.push("--join".into());
            role.push(others.join(","));
            self.members[slot].role_args = role;
            self.start_member(slot)?;
        }
        self.wait_voters(self.opts.members, Duration::from_secs(60))
            .await
            .context("the cluster did not form")?;
        Ok(())
    }

    /// Waits until some member reports `n` voters and a leader.
    pub async fn wait_voters(&self, n: usize, within: Duration) -> Result<()> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            for admin in self.active_admins() {
                if let Some(s) = self.api.get(&admin, "/v1/status").await {
                    let voters = s["voters"].as_u64().unwrap_or(0) as usize;
                    if voters == n && !s["leader"].is_null() {
                        return Ok(());
                    }
                }
            }
            if tokio::time::Instant::now() > deadline {
                bail!("no member reported {n} voters and a leader within {within:?}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// SIGKILLs a member.
    pub fn kill_member(&mut self, slot: usize) {
        if let Some(mut c) = self.members[slot].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts a speaker.
    pub fn start_speaker(&mut self, i: usize) -> Result<()> {
        if self.speakers[i].child.is_some() {
            return Ok(());
        }
        let controllers: Vec<String> = self.members.iter().map(Member::raft).collect();
        let s = &self.speakers[i];
        let mut args = vec![
            "speaker".to_string(),
            "--node-name".into(),
            s.node(),
            "--controllers".into(),
            controllers.join(","),
            "--interfaces".into(),
            "eth0".into(),
            "--bind-addresses".into(),
            "--metrics-listen".into(),
            format!("{}:7472", s.addr),
        ];
        args.extend(self.opts.speaker_args.iter().cloned());
        let env = [
            ("RUST_LOG", self.opts.log_filter.as_str()),
            ("RUST_BACKTRACE", "1"),
        ];
        let child = spawn_in(&s.netns, &self.opts.bin, &args, &s.log, &env)?;
        self.speakers[i].child = Some(child);
        Ok(())
    }

    /// SIGKILLs a speaker.
    pub fn kill_speaker(&mut self, i: usize) {
        if let Some(mut c) = self.speakers[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The slot of the member that leads, as the members themselves report it: the highest
    /// term's leader that calls itself leader.
    pub async fn leader(&self) -> Option<usize> {
        let mut best: Option<(u64, usize)> = None;
        for m in self.members.iter().filter(|m| m.child.is_some()) {
            let Some(s) = self.api.get(&m.admin(), "/v1/status").await else {
                continue;
            };
            if s["role"].as_str() == Some("Leader") {
                let term = s["term"].as_u64().unwrap_or(0);
                if best.is_none_or(|(t, _)| term > t) {
                    best = Some((term, m.slot));
                }
            }
        }
        best.map(|(_, slot)| slot)
    }

    /// The Raft id a member has now (it changes when a member rejoins with empty storage).
    pub async fn member_id(&self, slot: usize) -> Option<u64> {
        self.api
            .get(&self.members[slot].admin(), "/v1/status")
            .await
            .and_then(|s| s["id"].as_u64())
    }

    /// The speaker that answers for `addr` now, as the leader has committed it.
    pub async fn owner_of(&self, addr: std::net::IpAddr) -> Option<usize> {
        for admin in self.active_admins() {
            let Some(Value::Array(list)) = self.api.get(&admin, "/v1/owners").await else {
                continue;
            };
            let node = list
                .iter()
                .find(|o| o["address"].as_str() == Some(&addr.to_string()))
                .and_then(|o| o["node"].as_str())?;
            return self.speakers.iter().position(|s| s.node() == node);
        }
        None
    }

    /// Cuts `a` (a namespace) off from `ip`, both ways.
    pub fn cut(&self, netns: &str, ip: Ipv4Addr) -> Result<()> {
        let ip = ip.to_string();
        iptables(netns, &["-A", "jepsen-in", "-s", &ip, "-j", "DROP"])?;
        iptables(netns, &["-A", "jepsen-out", "-d", &ip, "-j", "DROP"])
    }

    /// Stops `netns` from sending to `ip` (it still receives).
    pub fn mute(&self, netns: &str, ip: Ipv4Addr) -> Result<()> {
        let ip = ip.to_string();
        iptables(netns, &["-A", "jepsen-out", "-d", &ip, "-j", "DROP"])
    }

    /// Removes every partition.
    pub fn heal(&self) -> Result<()> {
        for ns in self.namespaces() {
            iptables(&ns, &["-F", "jepsen-in"])?;
            iptables(&ns, &["-F", "jepsen-out"])?;
        }
        Ok(())
    }

    /// Stops every process (SIGKILL) and collects nothing more.
    pub fn stop_all(&mut self) {
        for slot in 0..self.members.len() {
            if let Some(pid) = self.members[slot].pid() {
                signal(pid, libc::SIGCONT);
            }
            self.kill_member(slot);
        }
        for i in 0..self.speakers.len() {
            if let Some(pid) = self.speakers[i].pid() {
                signal(pid, libc::SIGCONT);
            }
            self.kill_speaker(i);
        }
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        self.stop_all();
    }
}
