//! Carrying faults out on the system under test, and healing them.

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::Child;
use std::time::Duration;

use anyhow::Result;
use serde_json::{json, Value};

use super::plan::{Change, Fault, Kind, Party};
use crate::db::{iptables, signal, spawn_in, Db};

/// What a started fault left to undo.
#[derive(Default)]
pub struct Active {
    paused: Vec<u32>,
    killed_members: Vec<usize>,
    killed_speakers: Vec<usize>,
    helpers: Vec<Child>,
    partitioned: bool,
}

impl Drop for Active {
    fn drop(&mut self) {
        // A run torn down in the middle of a fault leaves nothing running or stopped.
        for pid in self.paused.drain(..) {
            signal(pid, libc::SIGCONT);
        }
        for mut h in self.helpers.drain(..) {
            let _ = h.kill();
            let _ = h.wait();
        }
    }
}

/// Runs faults against a [`Db`].
pub struct Nemesis {
    /// This program, which also serves as the netem and the flooder.
    pub exe: PathBuf,
    /// The addresses announced in Layer 2 (targets of owner faults).
    pub addresses: Vec<IpAddr>,
    /// Where helpers log.
    pub logs: PathBuf,
    /// Seeds the helpers' randomness.
    pub seed: u64,
    /// Counts helpers started, for their queue numbers and logs.
    started: u64,
}

impl Nemesis {
    /// A nemesis for a run whose helpers log into `logs`.
    pub fn new(addresses: Vec<IpAddr>, logs: PathBuf, seed: u64) -> Result<Self> {
        Ok(Self {
            exe: std::env::current_exe()?,
            addresses,
            logs,
            seed,
            started: 0,
        })
    }

    /// Starts `fault`; returns what it did and what to undo.
    pub async fn start(&mut self, db: &mut Db, fault: &Fault) -> Result<(Value, Active)> {
        let mut a = Active::default();
        let detail = match fault {
            Fault::PartitionHalves { minority } => partition_halves(db, minority, &mut a)?,
            Fault::PartitionLeader => partition_leader(db, &mut a).await?,
            Fault::PartitionBridge {
                left,
                bridge,
                right,
            } => partition_bridge(db, left, *bridge, right, &mut a)?,
            Fault::PartitionOneWay { mute } => partition_one_way(db, mute, &mut a)?,
            Fault::CutSpeaker { speaker } => cut_speaker(db, *speaker, &mut a)?,
            Fault::Netem { .. } => self.netem(db, fault, &mut a)?,
            Fault::KillMember { member } => {
                db.kill_member(*member);
                a.killed_members.push(*member);
                json!({"member": member + 1})
            }
            Fault::KillLeader => {
                let leader = db.leader().await;
                if let Some(l) = leader {
                    db.kill_member(l);
                    a.killed_members.push(l);
                }
                json!({"leader": leader.map(|l| l + 1)})
            }
            Fault::KillAllMembers => kill_all_members(db, &mut a),
            Fault::KillSpeaker { speaker } => {
                db.kill_speaker(*speaker);
                a.killed_speakers.push(*speaker);
                json!({"speaker": db.speakers[*speaker].node()})
            }
            Fault::PauseLeader => {
                let leader = db.leader().await;
                if let Some(pid) = leader.and_then(|l| db.members[l].pid()) {
                    signal(pid, libc::SIGSTOP);
                    a.paused.push(pid);
                }
                json!({"leader": leader.map(|l| l + 1)})
            }
            Fault::PauseOwner { address } => self.pause_owner(db, *address, &mut a).await,
            Fault::Membership { change, member } => self.membership(db, *change, *member).await?,
            Fault::WipeMember { member } => {
                db.kill_member(*member);
                let _ = std::fs::remove_dir_all(&db.members[*member].data);
                db.start_member(*member)?;
                json!({"member": member + 1, "bootstraps": db.members[*member].role_args.iter().any(|a| a == "--bootstrap")})
            }
            Fault::Flood { .. } => self.flood(db, fault, &mut a).await?,
        };
        Ok((detail, a))
    }

    /// Puts a netem helper between each chosen speaker and the controllers.
    fn netem(&mut self, db: &Db, fault: &Fault, a: &mut Active) -> Result<Value> {
        let Fault::Netem {
            mode,
            delay_ms,
            jitter_ms,
            loss,
            reorder,
            speakers,
        } = fault
        else {
            unreachable!("netem is started for netem faults only")
        };
        for &s in speakers {
            self.started += 1;
            let queue = (self.started % 60000 + 1).to_string();
            let ns = db.speakers[s].netns.clone();
            let args = vec![
                "netem".to_string(),
                "--queue".into(),
                queue.clone(),
                "--delay-ms".into(),
                delay_ms.to_string(),
                "--jitter-ms".into(),
                jitter_ms.to_string(),
                "--loss".into(),
                loss.to_string(),
                "--reorder".into(),
                reorder.to_string(),
                "--seed".into(),
                (self.seed ^ self.started).to_string(),
            ];
            let log = self
                .logs
                .join(format!("netem-{}.log", db.speakers[s].node()));
            a.helpers.push(spawn_in(&ns, &self.exe, &args, &log, &[])?);
            queue_controller_traffic(&ns, &queue)?;
        }
        a.partitioned = true;
        Ok(
            json!({"mode": mode.name(), "delay_ms": delay_ms, "jitter_ms": jitter_ms, "loss": loss, "reorder": reorder,
                   "speakers": speakers.iter().map(|s| db.speakers[*s].node()).collect::<Vec<_>>()}),
        )
    }

    /// Stops the speaker owning the `address`th announced address, if it has an owner.
    async fn pause_owner(&self, db: &Db, address: usize, a: &mut Active) -> Value {
        let addr = self.addresses.get(address).copied();
        let owner = match addr {
            Some(a) => db.owner_of(a).await,
            None => None,
        };
        if let Some(pid) = owner.and_then(|o| db.speakers[o].pid()) {
            signal(pid, libc::SIGSTOP);
            a.paused.push(pid);
        }
        json!({"address": addr, "owner": owner.map(|o| db.speakers[o].node())})
    }

    /// Starts a flooder in the attacker's namespace against an announced address.
    async fn flood(&mut self, db: &Db, fault: &Fault, a: &mut Active) -> Result<Value> {
        let Fault::Flood {
            mode,
            unicast,
            random_source,
            address,
        } = fault
        else {
            unreachable!("flood is started for flood faults only")
        };
        let family_v4 = *mode == Kind::ArpFlood;
        // The target: an announced address of the flood's family, and its owner's MAC.
        let addr = self
            .addresses
            .iter()
            .filter(|a| a.is_ipv4() == family_v4)
            .cycle()
            .nth(*address)
            .copied();
        let owner = match addr {
            Some(a) => db.owner_of(a).await,
            None => None,
        };
        let dst = match (unicast, owner) {
            (true, Some(o)) => db.speakers[o].mac.clone(),
            _ => "broadcast".to_string(),
        };
        if let (Some(addr), Some(ns)) = (addr, db.attacker_netns()) {
            let mut args = vec![
                "flood".to_string(),
                "--interface".into(),
                "eth0".into(),
                "--target".into(),
                addr.to_string(),
                "--dst-mac".into(),
                dst.clone(),
            ];
            if *random_source {
                args.push("--random-source".into());
            }
            let log = self.logs.join("flood.log");
            a.helpers.push(spawn_in(ns, &self.exe, &args, &log, &[])?);
        }
        Ok(
            json!({"mode": mode.name(), "address": addr, "to": dst, "random_source": random_source,
                   "owner": owner.map(|o| db.speakers[o].node())}),
        )
    }

    /// Undoes what `start` did; returns what it did.
    pub async fn stop(&mut self, db: &mut Db, fault: &Fault, mut a: Active) -> Result<Value> {
        for pid in a.paused.drain(..) {
            signal(pid, libc::SIGCONT);
        }
        for mut h in a.helpers.drain(..) {
            let _ = h.kill();
            let _ = h.wait();
        }
        if a.partitioned {
            db.heal()?;
        }
        for &m in &a.killed_members {
            db.start_member(m)?;
        }
        for &s in &a.killed_speakers {
            db.start_speaker(s)?;
        }
        let detail = match fault {
            Fault::WipeMember { member } => {
                // Healed once the member is a voter again (or is not: say so).
                let back = self.wait_voter(db, *member, Duration::from_secs(20)).await;
                json!({"member": member + 1, "voter_again": back, "id": db.member_id(*member).await})
            }
            _ => Value::Null,
        };
        Ok(detail)
    }

    async fn wait_voter(&self, db: &Db, slot: usize, within: Duration) -> bool {
        let admin = db.members[slot].admin();
        let deadline = tokio::time::Instant::now() + within;
        while tokio::time::Instant::now() < deadline {
            for other in db.active_admins() {
                if let Some(Value::Object(m)) = db.api.get(&other, "/v1/members").await {
                    let voter = m.get("members").and_then(Value::as_array).is_some_and(|l| {
                        l.iter()
                            .any(|x| x["admin_addr"].as_str() == Some(&admin) && x["voter"] == true)
                    });
                    if voter {
                        return true;
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        false
    }

    async fn membership(&mut self, db: &mut Db, change: Change, member: usize) -> Result<Value> {
        let mut detail = serde_json::Map::new();
        if matches!(change, Change::Remove | Change::Replace) {
            let active: Vec<usize> = db
                .members
                .iter()
                .filter(|m| m.active)
                .map(|m| m.slot)
                .collect();
            let slot = active[member % active.len()];
            let id = db.member_id(slot).await;
            let mut removed = false;
            if let Some(id) = id {
                for admin in db.active_admins() {
                    let a = db
                        .api
                        .call(
                            reqwest::Method::DELETE,
                            &admin,
                            &format!("/v1/members/{id}"),
                            None,
                            &[],
                        )
                        .await;
                    if a.kind == crate::history::OpType::Ok {
                        removed = true;
                        break;
                    }
                }
            }
            if removed {
                db.kill_member(slot);
                let _ = std::fs::remove_dir_all(&db.members[slot].data);
                db.members[slot].active = false;
            }
            detail.insert(
                "removed".into(),
                json!({"member": slot + 1, "id": id, "done": removed}),
            );
        }
        if matches!(change, Change::Add | Change::Replace) {
            if let Some(slot) = db
                .members
                .iter()
                .find(|m| !m.active && m.child.is_none())
                .map(|m| m.slot)
            {
                let _ = std::fs::remove_dir_all(&db.members[slot].data);
                db.members[slot].role_args = vec!["--join".into(), db.active_admins().join(",")];
                db.start_member(slot)?;
                db.members[slot].active = true;
                let joined = self.wait_voter(db, slot, Duration::from_secs(20)).await;
                detail.insert("added".into(), json!({"member": slot + 1, "voter": joined}));
            }
        }
        Ok(Value::Object(detail))
    }
}

/// Cuts the minority's members from every other member.
fn partition_halves(db: &Db, minority: &[usize], a: &mut Active) -> Result<Value> {
    let active: Vec<usize> = (0..db.opts.members).collect();
    for &m in minority {
        for &o in active.iter().filter(|o| !minority.contains(o)) {
            db.cut(&db.members[m].netns, db.members[o].addr)?;
        }
    }
    a.partitioned = true;
    Ok(json!({"minority": minority.iter().map(|m| m + 1).collect::<Vec<_>>()}))
}

/// Cuts the Raft leader, if there is one, from every other member and every speaker.
async fn partition_leader(db: &Db, a: &mut Active) -> Result<Value> {
    let leader = db.leader().await;
    if let Some(l) = leader {
        let ns = db.members[l].netns.clone();
        let others: Vec<_> = db
            .members
            .iter()
            .filter(|m| m.slot != l)
            .map(|m| m.addr)
            .chain(db.speakers.iter().map(|s| s.addr))
            .collect();
        for ip in others {
            db.cut(&ns, ip)?;
        }
        a.partitioned = true;
    }
    Ok(json!({"leader": leader.map(|l| l + 1)}))
}

/// Cuts `left` from `right`; the bridge still reaches both.
fn partition_bridge(
    db: &Db,
    left: &[usize],
    bridge: usize,
    right: &[usize],
    a: &mut Active,
) -> Result<Value> {
    for &l in left {
        for &r in right {
            db.cut(&db.members[l].netns, db.members[r].addr)?;
        }
    }
    a.partitioned = true;
    Ok(
        json!({"left": left.iter().map(|m| m + 1).collect::<Vec<_>>(), "bridge": bridge + 1, "right": right.iter().map(|m| m + 1).collect::<Vec<_>>()}),
    )
}

/// Stops `mute` from sending to the members while it still receives.
fn partition_one_way(db: &Db, mute: &Party, a: &mut Active) -> Result<Value> {
    let (ns, who) = match mute {
        Party::Member(m) => (db.members[*m].netns.clone(), format!("member {}", m + 1)),
        Party::Speaker(s) => (db.speakers[*s].netns.clone(), db.speakers[*s].node()),
    };
    let targets: Vec<_> = db
        .members
        .iter()
        .filter(|m| m.netns != ns)
        .map(|m| m.addr)
        .collect();
    for ip in targets {
        db.mute(&ns, ip)?;
    }
    a.partitioned = true;
    Ok(json!({"mute": who}))
}

/// Cuts one speaker from every member.
fn cut_speaker(db: &Db, speaker: usize, a: &mut Active) -> Result<Value> {
    let ns = db.speakers[speaker].netns.clone();
    let targets: Vec<_> = db.members.iter().map(|m| m.addr).collect();
    for ip in targets {
        db.cut(&ns, ip)?;
    }
    a.partitioned = true;
    Ok(json!({"speaker": db.speakers[speaker].node()}))
}

/// Sends the namespace's controller traffic through netem's `queue`.
fn queue_controller_traffic(ns: &str, queue: &str) -> Result<()> {
    // The controllers' port, both ways; bypassed while no netem listens.
    for (chain, dir) in [("jepsen-out", "--dport"), ("jepsen-in", "--sport")] {
        iptables(
            ns,
            &[
                "-A",
                chain,
                "-p",
                "tcp",
                dir,
                "7481",
                "-j",
                "NFQUEUE",
                "--queue-num",
                queue,
                "--queue-bypass",
            ],
        )?;
    }
    Ok(())
}

/// Kills every active member.
fn kill_all_members(db: &mut Db, a: &mut Active) -> Value {
    let all: Vec<usize> = db
        .members
        .iter()
        .filter(|m| m.active)
        .map(|m| m.slot)
        .collect();
    for &m in &all {
        db.kill_member(m);
    }
    a.killed_members = all.clone();
    json!({"members": all.iter().map(|m| m + 1).collect::<Vec<_>>()})
}
