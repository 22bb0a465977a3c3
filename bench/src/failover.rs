//! `failover`: how long a client's pings to a Service address stop when the node answering for
//! it fails, with ironlb's leases (default and tuned) and with keepalived's VRRP (its default
//! advert interval, and one tuned to the same detection budget as ours).
//!
//! Topology, the same for both: a LAN of namespaces with two candidate nodes (node4, node5) and
//! a client; ironlb's three controller members run on three further nodes, so a candidate's
//! failure never takes a Raft member with it. A failure is the node's links going down and its
//! process being SIGKILLed, at a random point of the heartbeat or advert interval. The outage is
//! the longest gap between the client's ping replies (one ping every 10 ms) around it.

use std::net::IpAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::common::round3;
use anyhow::{bail, ensure, Result};
use ironlb_lab::capture::{self, Capture};
use ironlb_lab::l2::{self, now_epoch, L2Lab, L2Options, Pinger};
use ironlb_lab::netns::{self, Lan, LanOptions};
use serde_json::{json, Value};

macro_rules! progress {
    ($($arg:tt)*) => { eprintln!("[failover] {}", format_args!($($arg)*)) };
}

/// Options of the scenario.
#[derive(Clone, Debug)]
pub struct Options {
    /// Failures per configuration.
    pub trials: usize,
    /// Skip the human-readable summary.
    pub json: bool,
}

/// Lease settings of the tuned run: heartbeat 50 ms, lease 300 ms, margin 100 ms: a 0.4 s
/// detection budget, with six heartbeats per lease so lost heartbeats cost nothing, and room
/// in the lease for a leader change (the controllers derive an election timeout of 50 ms).
const TUNED: [&str; 6] = [
    "--speaker-heartbeat-ms",
    "50",
    "--speaker-lease-ms",
    "300",
    "--speaker-lease-margin-ms",
    "100",
];

/// keepalived's tuned advert interval: VRRP declares the master down after 3 adverts plus a
/// skew of (256 - priority) / 256 of one (the backup's priority is 100), so 0.11 s gives
/// 3.61 x 0.11 = 0.397 s, the 0.4 s budget of our tuned lease.
const KA_TUNED_ADVERT_MS: u64 = 110;

/// A small deterministic-per-run jitter source (xorshift), seeded from the clock: where in the
/// interval each failure lands.
struct Jitter(u64);

impl Jitter {
    fn new() -> Self {
        Self(now_epoch().to_bits() | 1)
    }
    fn below(&mut self, max: Duration) -> Duration {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        max.mul_f64((self.0 % 10_000) as f64 / 10_000.0)
    }
}

struct Figures {
    outages: Vec<f64>,
    dual: Option<usize>,
}

impl Figures {
    fn quantile(&self, q: f64) -> f64 {
        let mut v = self.outages.clone();
        v.sort_by(f64::total_cmp);
        if v.is_empty() {
            return 0.0;
        }
        let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
        v[rank - 1]
    }

    fn json(&self, name: Option<&str>, extra: Value) -> Value {
        let mut o = json!({
            "p50_s": round3(self.quantile(0.5)),
            "p99_s": round3(self.quantile(0.99)),
            "max_s": round3(self.quantile(1.0)),
            "trials": self.outages.len(),
        });
        if let Some(d) = self.dual {
            o["dual_answer_windows"] = json!(d);
        }
        if let Some(n) = name {
            o["name"] = json!(n);
        }
        if let (Some(map), Value::Object(more)) = (o.as_object_mut(), extra) {
            map.extend(more);
        }
        o
    }
}

/// Runs every configuration and prints the JSON line.
pub fn run(opts: &Options) -> Result<()> {
    ensure!(opts.trials > 0, "--trials must be at least 1");
    if let Err(why) = netns::available() {
        bail!("the failover benchmark {why}");
    }
    for tool in ["keepalived", "tshark", "arping", "ping"] {
        ensure!(
            netns::has_tool(tool),
            "the failover benchmark needs `{tool}` (scripts/install-deps)"
        );
    }
    let bin = crate::common::build_release_binary()?;
    let rt = crate::common::runtime()?;
    let ours_default = rt.block_on(ours(&bin, opts.trials, &[]))?;
    let tuned_args: Vec<String> = TUNED.iter().map(|s| s.to_string()).collect();
    let ours_tuned = rt.block_on(ours(&bin, opts.trials, &tuned_args))?;
    let base = keepalived(opts.trials, Vrrp::Default)?;
    let base_tuned = keepalived(opts.trials, Vrrp::Tuned)?;
    if !opts.json {
        for (name, f) in [
            ("ironlb (lease 1 s + margin 0.2 s)", &ours_default),
            ("ironlb tuned (0.3 s + 0.1 s)", &ours_tuned),
            ("keepalived (advert_int 1 s)", &base),
            ("keepalived tuned (VRRPv3, 0.11 s)", &base_tuned),
        ] {
            eprintln!(
                "{name:<36} p50 {:.3} s  p99 {:.3} s  max {:.3} s{}",
                f.quantile(0.5),
                f.quantile(0.99),
                f.quantile(1.0),
                f.dual
                    .map(|d| format!("  dual answers {d}"))
                    .unwrap_or_default()
            );
        }
    }
    let out = json!({
        "scenario": "failover",
        "trials": opts.trials,
        "ours": ours_default.json(None, json!({"settings": "heartbeat 200 ms, lease 1000 ms, margin 200 ms (defaults)"})),
        "ours_tuned": ours_tuned.json(None, json!({"settings": TUNED.join(" ")})),
        "baseline": base.json(Some("keepalived"), json!({"settings": "VRRPv2, advert_int 1 (default)"})),
        "baseline_tuned": base_tuned.json(Some("keepalived"), json!({"settings": "VRRPv3, advert_int 0.11 (master down after 0.397 s: the same 0.4 s detection budget)"})),
    });
    println!("{out}");
    Ok(())
}

const VIP_SERVICE: &str = "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n  namespace: bench\nspec:\n  type: LoadBalancer\n  ports:\n  - port: 80\n";

async fn ours(bin: &Path, trials: usize, controller_args: &[String]) -> Result<Figures> {
    let label = if controller_args.is_empty() {
        "ours"
    } else {
        "ours tuned"
    };
    progress!("{label}: 3 controllers and 2 speaker nodes in a namespace LAN");
    let mut lab = L2Lab::start(
        bin,
        L2Options {
            nodes: 5,
            controllers: 3,
            controller_args: controller_args.to_vec(),
            speakers_on_controller_nodes: false,
            ..L2Options::default()
        },
    )
    .await;
    lab.configure(l2::CONFIG).await;
    let vip = lab.allocate(VIP_SERVICE).await[0];
    let heartbeat = if controller_args.is_empty() {
        Duration::from_millis(200)
    } else {
        Duration::from_millis(100)
    };
    let client = lab.lan.client().clone();
    let cap = Capture::start(&client.netns, "eth0", lab.cluster.dir.path());
    let a = vip.to_string();
    let _arping = Lan::spawn_in(
        &client.netns,
        &["arping", "-i", "eth0", "-W", "0.02", &a],
        &lab.cluster.dir.path().join("arping.log"),
    );
    let mut jitter = Jitter::new();
    let mut outages = Vec::new();
    for trial in 0..trials {
        let owner = lab.wait_owner(vip, Duration::from_secs(20)).await;
        let pinger = Pinger::start(&lab, vip, &format!("{label}-{trial}"));
        ensure!(
            pinger
                .wait_reply_after(now_epoch(), Duration::from_secs(5))
                .await,
            "{label}: no ping replies from {vip}"
        );
        tokio::time::sleep(Duration::from_millis(200) + jitter.below(heartbeat)).await;
        let failed_at = now_epoch();
        lab.fail_node(owner);
        let gone = lab.speakers[owner].name.clone();
        lab.wait_committed_owner(vip, Some(&gone), Duration::from_secs(20))
            .await;
        ensure!(
            pinger
                .wait_reply_after(now_epoch(), Duration::from_secs(10))
                .await,
            "{label}: the client never got a reply after the failover"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        let outage = pinger.longest_gap_after(failed_at);
        progress!(
            "{label}: trial {}: node{} failed, outage {outage:.3} s",
            trial + 1,
            owner + 1
        );
        outages.push(outage);
        drop(pinger);
        lab.revive_node(owner);
        let deadline = Instant::now() + Duration::from_secs(20);
        while !lab.speaker_ready(owner).await {
            ensure!(
                Instant::now() < deadline,
                "{label}: node{} did not come back",
                owner + 1
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // Registered with the leader and acknowledged: a candidate again.
        tokio::time::sleep(heartbeat * 3).await;
    }
    let answers = cap.stop();
    let dual = capture::dual_answer_windows(
        &answers,
        std::slice::from_ref(&client.mac),
        Duration::from_secs(1),
    );
    if !dual.is_empty() {
        progress!("{label}: DUAL ANSWERS: {dual:?}");
    }
    Ok(Figures {
        outages,
        dual: Some(dual.len()),
    })
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Vrrp {
    /// VRRPv2, advert_int 1 s: what an operator gets out of the box.
    Default,
    /// VRRPv3 at the detection budget of our tuned lease.
    Tuned,
}

const KA_VIP: &str = "198.51.100.120";

fn keepalived_conf(
    me: &str,
    peer: &str,
    priority: u8,
    mode: Vrrp,
    dir: &Path,
    tag: &str,
) -> String {
    let (version, advert) = match mode {
        Vrrp::Default => (2, "1"),
        Vrrp::Tuned => (3, "0.11"),
    };
    format!(
        "global_defs {{
  vrrp_version {version}
  script_user root
  router_id {tag}
}}
vrrp_instance VI_1 {{
  state BACKUP
  nopreempt
  interface eth0
  virtual_router_id 51
  priority {priority}
  advert_int {advert}
  unicast_src_ip {me}
  unicast_peer {{
    {peer}
  }}
  virtual_ipaddress {{
    {KA_VIP}/24 dev eth0
  }}
}}
# pid files in {dir}
",
        dir = dir.display()
    )
}

struct Keepalived {
    child: Option<netns::Background>,
    vrrp_pid: std::path::PathBuf,
}

impl Keepalived {
    fn start(netns: &str, conf: &Path, dir: &Path, tag: &str) -> Keepalived {
        let pid = dir.join(format!("{tag}.pid"));
        let vrrp_pid = dir.join(format!("{tag}-vrrp.pid"));
        let _ = std::fs::remove_file(&vrrp_pid);
        let conf_s = conf.display().to_string();
        let pid_s = pid.display().to_string();
        let vrrp_s = vrrp_pid.display().to_string();
        let child = Lan::spawn_in(
            netns,
            &[
                "keepalived",
                "-n",
                "-l",
                "-D",
                "--vrrp",
                "-f",
                &conf_s,
                "-p",
                &pid_s,
                "-r",
                &vrrp_s,
            ],
            &dir.join(format!("{tag}.log")),
        );
        Keepalived {
            child: Some(child),
            vrrp_pid,
        }
    }

    /// SIGKILL of the VRRP child, then the parent (a live child would send a "leaving" advert).
    fn kill(&mut self) {
        if let Ok(pid) = std::fs::read_to_string(&self.vrrp_pid) {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", pid.trim()])
                .status();
        }
        self.child.take();
    }
}

impl Drop for Keepalived {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Which of the two nodes has the VIP on eth0.
fn vrrp_master(lan: &Lan, nodes: &[usize]) -> Option<usize> {
    nodes.iter().copied().find(|&n| {
        let out = Lan::try_exec_in(
            &lan.nodes[n].netns,
            &["ip", "-4", "addr", "show", "dev", "eth0"],
        );
        String::from_utf8_lossy(&out.stdout).contains(KA_VIP)
    })
}

fn keepalived(trials: usize, mode: Vrrp) -> Result<Figures> {
    let label = match mode {
        Vrrp::Default => "keepalived",
        Vrrp::Tuned => "keepalived tuned",
    };
    progress!("{label}: 2 VRRP nodes in a namespace LAN");
    let lan = Lan::build(LanOptions {
        nodes: 2,
        client: true,
        router: false,
        second_lan: false,
        attacker: false,
    });
    let dir = tempfile::tempdir()?;
    let advert = match mode {
        Vrrp::Default => Duration::from_secs(1),
        Vrrp::Tuned => Duration::from_millis(KA_TUNED_ADVERT_MS),
    };
    let mut procs: Vec<Option<Keepalived>> = vec![None, None];
    let start = |i: usize, procs: &mut Vec<Option<Keepalived>>| -> Result<()> {
        let me = lan.nodes[i].addr.to_string();
        let peer = lan.nodes[1 - i].addr.to_string();
        let tag = format!("ka{}", i + 1);
        let conf = dir.path().join(format!("{tag}.conf"));
        std::fs::write(
            &conf,
            keepalived_conf(
                &me,
                &peer,
                if i == 0 { 150 } else { 100 },
                mode,
                dir.path(),
                &tag,
            ),
        )?;
        procs[i] = Some(Keepalived::start(
            &lan.nodes[i].netns,
            &conf,
            dir.path(),
            &tag,
        ));
        Ok(())
    };
    start(0, &mut procs)?;
    start(1, &mut procs)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let vip: IpAddr = KA_VIP.parse()?;
    let client = lan.client().netns.clone();
    let mut jitter = Jitter::new();
    let mut outages = Vec::new();
    for trial in 0..trials {
        let deadline = Instant::now() + Duration::from_secs(30);
        let master = loop {
            if let Some(m) = vrrp_master(&lan, &[0, 1]) {
                break m;
            }
            ensure!(Instant::now() < deadline, "{label}: no VRRP master");
            std::thread::sleep(Duration::from_millis(50));
        };
        let pinger = Pinger::start_in(&client, vip, &dir.path().join(format!("ping-{trial}.log")));
        ensure!(
            rt.block_on(pinger.wait_reply_after(now_epoch(), Duration::from_secs(5))),
            "{label}: no ping replies from {KA_VIP}"
        );
        std::thread::sleep(Duration::from_millis(200) + jitter.below(advert));
        let failed_at = now_epoch();
        lan.link_down(master);
        if let Some(mut k) = procs[master].take() {
            k.kill();
        }
        ensure!(
            rt.block_on(pinger.wait_reply_after(now_epoch(), Duration::from_secs(20))),
            "{label}: the client never got a reply after the failover"
        );
        std::thread::sleep(Duration::from_millis(100));
        let outage = pinger.longest_gap_after(failed_at);
        progress!(
            "{label}: trial {}: node{} failed, outage {outage:.3} s",
            trial + 1,
            master + 1
        );
        outages.push(outage);
        drop(pinger);
        lan.link_up(master);
        // keepalived removes the VIP it held when it starts as BACKUP; a killed one left it.
        let _ = Lan::try_exec_in(
            &lan.nodes[master].netns,
            &["ip", "addr", "del", &format!("{KA_VIP}/24"), "dev", "eth0"],
        );
        start(master, &mut procs)?;
        std::thread::sleep(advert * 4);
    }
    Ok(Figures {
        outages,
        dual: None,
    })
}
