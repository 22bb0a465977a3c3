//! The fault schedule: drawn from the seed before the run, so the same seed gives the same
//! faults at the same moments with the same choices.

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// A kind of fault.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// Members split into a majority and a minority that cannot reach each other.
    PartitionHalves,
    /// The Raft leader cut from every other member and every speaker.
    PartitionLeader,
    /// Two majorities that overlap in one member, the bridge.
    PartitionBridge,
    /// A member or a speaker that receives but cannot send to the controllers.
    PartitionOneWay,
    /// A speaker cut from every controller but not from the LAN.
    CutSpeaker,
    /// Delay between speakers and controllers, between the lease margin and the lease.
    Delay,
    /// A small delay with large jitter between speakers and controllers.
    Jitter,
    /// Packet loss between speakers and controllers.
    Loss,
    /// Packets between speakers and controllers held back at random, so they overtake each other.
    Reorder,
    /// SIGKILL of a random member, restarted at the end.
    KillMember,
    /// SIGKILL of the Raft leader, restarted at the end.
    KillLeader,
    /// SIGKILL of every member, restarted at the end.
    KillAllMembers,
    /// SIGKILL of a random speaker, restarted at the end.
    KillSpeaker,
    /// SIGSTOP of the Raft leader, SIGCONT at the end.
    PauseLeader,
    /// SIGSTOP of the speaker owning an address, for longer than its lease.
    PauseOwner,
    /// A member added, removed or replaced under load.
    Membership,
    /// A member restarted with an emptied data directory (member 1, the bootstrapper, too).
    WipeMember,
    /// ARP requests at one sender's full rate, broadcast or unicast to the owner's MAC.
    ArpFlood,
    /// Neighbor Solicitations at full rate, multicast or unicast to the owner's MAC.
    NdpFlood,
}

impl Kind {
    /// The name used on the command line and in logs.
    pub fn name(self) -> &'static str {
        use Kind::*;
        match self {
            PartitionHalves => "partition-halves",
            PartitionLeader => "partition-leader",
            PartitionBridge => "partition-bridge",
            PartitionOneWay => "partition-one-way",
            CutSpeaker => "cut-speaker",
            Delay => "delay",
            Jitter => "jitter",
            Loss => "loss",
            Reorder => "reorder",
            KillMember => "kill-member",
            KillLeader => "kill-leader",
            KillAllMembers => "kill-all-members",
            KillSpeaker => "kill-speaker",
            PauseLeader => "pause-leader",
            PauseOwner => "pause-owner",
            Membership => "membership",
            WipeMember => "wipe-member",
            ArpFlood => "arp-flood",
            NdpFlood => "ndp-flood",
        }
    }

    /// Every kind.
    pub fn all() -> Vec<Kind> {
        use clap::ValueEnum;
        Kind::value_variants().to_vec()
    }

    /// Expands a command-line name: a kind, or a group (`partition`, `netem`, `kill`, `pause`,
    /// `flood`, `all`, `none`).
    pub fn parse_list(text: &str) -> Result<Vec<Kind>, String> {
        use clap::ValueEnum;
        use Kind::*;
        let mut out = Vec::new();
        for word in text.split(',').map(str::trim).filter(|w| !w.is_empty()) {
            let group: Vec<Kind> = match word {
                "none" => vec![],
                "all" => Kind::all(),
                "partition" => vec![PartitionHalves, PartitionLeader, PartitionBridge, PartitionOneWay, CutSpeaker],
                "netem" => vec![Delay, Jitter, Loss, Reorder],
                "kill" => vec![KillMember, KillLeader, KillAllMembers, KillSpeaker],
                "pause" => vec![PauseLeader, PauseOwner],
                "flood" => vec![ArpFlood, NdpFlood],
                other => vec![Kind::from_str(other, true).map_err(|_| {
                    format!("unknown nemesis {other:?}: one of {}, or a group: partition, netem, kill, pause, flood, all, none",
                        Kind::all().iter().map(|k| k.name()).collect::<Vec<_>>().join(", "))
                })?],
            };
            for k in group {
                if !out.contains(&k) {
                    out.push(k);
                }
            }
        }
        Ok(out)
    }

    /// Whether it needs speakers.
    pub fn needs_speakers(self) -> bool {
        use Kind::*;
        matches!(
            self,
            CutSpeaker
                | Delay
                | Jitter
                | Loss
                | Reorder
                | KillSpeaker
                | PauseOwner
                | ArpFlood
                | NdpFlood
        )
    }
}

/// A party of a one-way partition.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Party {
    /// A member, by slot.
    Member(usize),
    /// A speaker, by index.
    Speaker(usize),
}

/// A membership change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Change {
    /// A spare member joins; the cluster has one more.
    Add,
    /// A member (not the spare just added) leaves; back to the original size.
    Remove,
    /// One member leaves and a new one (empty data) takes its place.
    Replace,
}

/// A fault with its random choices made.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Fault {
    /// See [`Kind::PartitionHalves`].
    PartitionHalves {
        /// The members cut off.
        minority: Vec<usize>,
    },
    /// See [`Kind::PartitionLeader`].
    PartitionLeader,
    /// See [`Kind::PartitionBridge`].
    PartitionBridge {
        /// One side.
        left: Vec<usize>,
        /// The member that sees both.
        bridge: usize,
        /// The other side.
        right: Vec<usize>,
    },
    /// See [`Kind::PartitionOneWay`].
    PartitionOneWay {
        /// Who can no longer send.
        mute: Party,
    },
    /// See [`Kind::CutSpeaker`].
    CutSpeaker {
        /// The speaker.
        speaker: usize,
    },
    /// See [`Kind::Delay`], [`Kind::Jitter`], [`Kind::Loss`] and [`Kind::Reorder`].
    Netem {
        /// The name (`delay`, `jitter`, `loss` or `reorder`).
        mode: Kind,
        /// Added to every packet.
        delay_ms: u64,
        /// Up to this much more, at random.
        jitter_ms: u64,
        /// The share of packets dropped.
        loss: f64,
        /// The share of packets held back an extra jitter.
        reorder: f64,
        /// Between which speakers and the controllers.
        speakers: Vec<usize>,
    },
    /// See [`Kind::KillMember`].
    KillMember {
        /// The member.
        member: usize,
    },
    /// See [`Kind::KillLeader`].
    KillLeader,
    /// See [`Kind::KillAllMembers`].
    KillAllMembers,
    /// See [`Kind::KillSpeaker`].
    KillSpeaker {
        /// The speaker.
        speaker: usize,
    },
    /// See [`Kind::PauseLeader`].
    PauseLeader,
    /// See [`Kind::PauseOwner`].
    PauseOwner {
        /// Which address's owner (index into the announced addresses).
        address: usize,
    },
    /// See [`Kind::Membership`].
    Membership {
        /// What changes.
        change: Change,
        /// The member that leaves (for remove and replace).
        member: usize,
    },
    /// See [`Kind::WipeMember`].
    WipeMember {
        /// The member.
        member: usize,
    },
    /// See [`Kind::ArpFlood`] and [`Kind::NdpFlood`].
    Flood {
        /// ARP or NDP.
        mode: Kind,
        /// To the owner's MAC (else broadcast or multicast).
        unicast: bool,
        /// A new random source MAC for every packet (else one fixed).
        random_source: bool,
        /// Which address's owner is the target (index into the announced addresses).
        address: usize,
    },
}

impl Fault {
    /// The fault's kind.
    pub fn kind(&self) -> Kind {
        match self {
            Fault::PartitionHalves { .. } => Kind::PartitionHalves,
            Fault::PartitionLeader => Kind::PartitionLeader,
            Fault::PartitionBridge { .. } => Kind::PartitionBridge,
            Fault::PartitionOneWay { .. } => Kind::PartitionOneWay,
            Fault::CutSpeaker { .. } => Kind::CutSpeaker,
            Fault::Netem { mode, .. } | Fault::Flood { mode, .. } => *mode,
            Fault::KillMember { .. } => Kind::KillMember,
            Fault::KillLeader => Kind::KillLeader,
            Fault::KillAllMembers => Kind::KillAllMembers,
            Fault::KillSpeaker { .. } => Kind::KillSpeaker,
            Fault::PauseLeader => Kind::PauseLeader,
            Fault::PauseOwner { .. } => Kind::PauseOwner,
            Fault::Membership { .. } => Kind::Membership,
            Fault::WipeMember { .. } => Kind::WipeMember,
        }
    }
}

/// A fault and when.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Scheduled {
    /// Milliseconds after the workload starts.
    pub at_ms: u64,
    /// How long it lasts.
    pub duration_ms: u64,
    /// What.
    pub fault: Fault,
}

/// What the schedule must know of the system under test.
#[derive(Clone, Copy, Debug)]
pub struct Topology {
    /// Controller members.
    pub members: usize,
    /// Speakers.
    pub speakers: usize,
    /// Addresses announced in Layer 2 (0 for the allocation workload).
    pub addresses: usize,
    /// The speakers' lease, milliseconds.
    pub lease_ms: u64,
    /// The lease margin, milliseconds.
    pub margin_ms: u64,
    /// Short faults and recoveries (2-4 s each), for the short suite.
    pub short: bool,
}

/// Draws the faults of a run of `time_limit_ms` from `seed`: a quiet start, then faults of the
/// given kinds one at a time, each followed by a quiet spell for recovery.
pub fn schedule(seed: u64, kinds: &[Kind], time_limit_ms: u64, topo: Topology) -> Vec<Scheduled> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut out = Vec::new();
    let kinds = possible_kinds(kinds, topo);
    if kinds.is_empty() {
        return out;
    }
    let mut t = 3_000;
    let (faults, quiet) = if topo.short {
        (2_000..4_000, 3_000..5_000)
    } else {
        (3_000..8_000, 4_000..8_000)
    };
    // Membership alternates: add the spare, then take one member away (replace re-adds it).
    let mut grown = false;
    // Every kind comes once, in an order of the seed's, before any comes again: a short run
    // still sees each.
    let mut order: Vec<Kind> = Vec::new();
    loop {
        if order.is_empty() {
            order = kinds.clone();
            order.shuffle(&mut rng);
        }
        let kind = order.pop().unwrap_or(kinds[0]);
        let picks = Picks {
            member: rng.random_range(0..topo.members),
            speaker: rng.random_range(0..topo.speakers.max(1)),
            address: rng.random_range(0..topo.addresses.max(1)),
        };
        let mut duration = rng.random_range(faults.clone());
        let fault = draw_fault(&mut rng, kind, topo, picks, &mut duration, &mut grown);
        if t + duration + 3_000 > time_limit_ms {
            break;
        }
        out.push(Scheduled {
            at_ms: t,
            duration_ms: duration,
            fault,
        });
        t += duration + rng.random_range(quiet.clone());
    }
    out
}

/// The kinds the topology can carry out: speaker faults need speakers, owner faults addresses.
fn possible_kinds(kinds: &[Kind], topo: Topology) -> Vec<Kind> {
    kinds
        .iter()
        .copied()
        .filter(|k| !k.needs_speakers() || topo.speakers > 0)
        .filter(|k| {
            !matches!(k, Kind::PauseOwner | Kind::ArpFlood | Kind::NdpFlood) || topo.addresses > 0
        })
        .collect()
}

/// The member, speaker and address drawn for every fault, whichever it turns out to use.
#[derive(Clone, Copy)]
struct Picks {
    member: usize,
    speaker: usize,
    address: usize,
}

/// A fault of `kind` with its random choices; may set `duration` and flip `grown`.
fn draw_fault(
    rng: &mut ChaCha8Rng,
    kind: Kind,
    topo: Topology,
    picks: Picks,
    duration: &mut u64,
    grown: &mut bool,
) -> Fault {
    let Picks {
        member,
        speaker,
        address,
    } = picks;
    match kind {
        Kind::PartitionHalves => {
            let mut slots: Vec<usize> = (0..topo.members).collect();
            slots.shuffle(rng);
            let minority = slots[..(topo.members - 1) / 2].to_vec();
            Fault::PartitionHalves { minority }
        }
        Kind::PartitionLeader => Fault::PartitionLeader,
        Kind::PartitionBridge => draw_bridge(rng, topo),
        Kind::PartitionOneWay => {
            let mute = if topo.speakers > 0 && rng.random_bool(0.5) {
                Party::Speaker(speaker)
            } else {
                Party::Member(member)
            };
            Fault::PartitionOneWay { mute }
        }
        Kind::CutSpeaker => Fault::CutSpeaker { speaker },
        Kind::Delay | Kind::Jitter | Kind::Loss | Kind::Reorder => draw_netem(rng, kind, topo),
        Kind::KillMember => Fault::KillMember { member },
        Kind::KillLeader => Fault::KillLeader,
        Kind::KillAllMembers => Fault::KillAllMembers,
        Kind::KillSpeaker => Fault::KillSpeaker { speaker },
        Kind::PauseLeader => Fault::PauseLeader,
        Kind::PauseOwner => {
            // Longer than the lease and the margin, so the address must move meanwhile.
            *duration = topo.lease_ms + 2 * topo.margin_ms + rng.random_range(500..2_000);
            Fault::PauseOwner { address }
        }
        Kind::Membership => draw_membership(rng, member, grown),
        Kind::WipeMember => Fault::WipeMember { member },
        Kind::ArpFlood | Kind::NdpFlood => Fault::Flood {
            mode: kind,
            unicast: rng.random_bool(0.6),
            random_source: rng.random_bool(0.5),
            address,
        },
    }
}

/// Two halves of the members but one, the bridge, which sees both.
fn draw_bridge(rng: &mut ChaCha8Rng, topo: Topology) -> Fault {
    let mut slots: Vec<usize> = (0..topo.members).collect();
    slots.shuffle(rng);
    let bridge = slots[0];
    let rest = &slots[1..];
    let (left, right) = rest.split_at(rest.len() / 2);
    Fault::PartitionBridge {
        left: left.to_vec(),
        bridge,
        right: right.to_vec(),
    }
}

/// A netem fault of `kind` (delay, jitter, loss or reorder) on some of the speakers.
fn draw_netem(rng: &mut ChaCha8Rng, kind: Kind, topo: Topology) -> Fault {
    let (lease, margin) = (topo.lease_ms, topo.margin_ms);
    let (delay_ms, jitter_ms, loss, reorder) = match kind {
        // Between the margin and the lease: where two answerers would hide.
        Kind::Delay => (rng.random_range(margin..=lease.max(margin)), 0, 0.0, 0.0),
        Kind::Jitter => (
            5,
            rng.random_range(margin / 2..=lease.max(margin)),
            0.0,
            0.0,
        ),
        Kind::Loss => (0, 0, rng.random_range(0.05..0.5), 0.0),
        _ => (
            2,
            rng.random_range(20..=margin.max(21)),
            0.0,
            rng.random_range(0.1..0.5),
        ),
    };
    let mut all: Vec<usize> = (0..topo.speakers).collect();
    all.shuffle(rng);
    let n = rng.random_range(1..=topo.speakers.max(1));
    all.truncate(n);
    all.sort_unstable();
    Fault::Netem {
        mode: kind,
        delay_ms,
        jitter_ms,
        loss,
        reorder,
        speakers: all,
    }
}

/// The next membership change: the spare joins first, then one leaves or is replaced.
fn draw_membership(rng: &mut ChaCha8Rng, member: usize, grown: &mut bool) -> Fault {
    let change = if *grown {
        if rng.random_bool(0.5) {
            Change::Remove
        } else {
            Change::Replace
        }
    } else {
        Change::Add
    };
    *grown = change == Change::Add || (*grown && change == Change::Replace);
    Fault::Membership { change, member }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOPO: Topology = Topology {
        members: 3,
        speakers: 3,
        addresses: 4,
        lease_ms: 1000,
        margin_ms: 200,
        short: false,
    };

    #[test]
    fn the_same_seed_gives_the_same_schedule() {
        let kinds = Kind::all();
        let a = schedule(7, &kinds, 120_000, TOPO);
        let b = schedule(7, &kinds, 120_000, TOPO);
        assert_eq!(a, b);
        assert!(a.len() > 5, "{a:?}");
        assert_ne!(a, schedule(8, &kinds, 120_000, TOPO));
        // Faults never overlap and end before the run does.
        for w in a.windows(2) {
            assert!(w[0].at_ms + w[0].duration_ms < w[1].at_ms);
        }
        let last = a.last().unwrap();
        assert!(last.at_ms + last.duration_ms <= 120_000);
    }

    #[test]
    fn delays_fall_between_the_margin_and_the_lease_and_pauses_outlast_the_lease() {
        for seed in 0..50 {
            for s in schedule(seed, &[Kind::Delay, Kind::PauseOwner], 60_000, TOPO) {
                match s.fault {
                    Fault::Netem { delay_ms, .. } => assert!((200..=1000).contains(&delay_ms)),
                    Fault::PauseOwner { .. } => assert!(s.duration_ms > 1400),
                    other => panic!("{other:?}"),
                }
            }
        }
    }

    #[test]
    fn every_kind_comes_before_any_comes_again() {
        let kinds = vec![Kind::KillLeader, Kind::CutSpeaker, Kind::Delay];
        let short = Topology {
            short: true,
            ..TOPO
        };
        let s = schedule(5, &kinds, 30_000, short);
        let first: Vec<Kind> = s.iter().take(3).map(|x| x.fault.kind()).collect();
        assert!(s.len() >= 3, "{s:?}");
        for k in &kinds {
            assert!(first.contains(k), "{first:?}");
        }
    }

    #[test]
    fn groups_expand_and_unknown_names_are_refused() {
        assert_eq!(
            Kind::parse_list("kill,partition-leader").unwrap(),
            vec![
                Kind::KillMember,
                Kind::KillLeader,
                Kind::KillAllMembers,
                Kind::KillSpeaker,
                Kind::PartitionLeader
            ]
        );
        assert!(Kind::parse_list("earthquake")
            .unwrap_err()
            .contains("earthquake"));
        assert!(Kind::parse_list("none").unwrap().is_empty());
        // Speaker faults are dropped without speakers.
        let no_speakers = Topology {
            speakers: 0,
            addresses: 0,
            ..TOPO
        };
        assert!(schedule(1, &[Kind::KillSpeaker], 60_000, no_speakers).is_empty());
    }
}
