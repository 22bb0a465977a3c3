//! The exact bytes of every record a member writes to disk and of every message on the Raft
//! port, pinned in `fixtures/formats/`.
//!
//! A failure here means a format changed. That is allowed only with a new version
//! (`codec::FORMAT` for the disk, `wire::PROTOCOL_VERSION` for the port), the old one still read
//! (`tests/upgrade.rs`), and the fixtures re-blessed on purpose: `IRONLB_BLESS=1 cargo test -p
//! ironlb-core --test formats` rewrites them, and the diff shows what changed.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use ironlb::announce::proto::{
    Assignment, AssignmentId, Heartbeat, L2Address, ServiceAnnounce, ToController, ToSpeaker,
};
use ironlb::codec::{self, snapshot};
use ironlb::config::{validate, Documents};
use ironlb::ipam::{AllocationRequest, Port, SharingKey};
use ironlb::raft::network::wire::{self, Channel, Hello, HelloReply, RaftRequest};
use ironlb::raft::state::ControllerState;
use ironlb::raft::types::{Entry, LogId, Member, SnapshotMeta, StoredMembership, Vote};
use ironlb::raft::Command;
use openraft::{CommittedLeaderId, EntryPayload, Membership};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/formats")
        .join(name)
}

/// Compares `text` with the fixture `name`, or writes it when blessing.
fn pin(name: &str, text: &str) {
    let path = fixture(name);
    if std::env::var_os("IRONLB_BLESS").is_some() {
        std::fs::write(&path, text).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (bless with IRONLB_BLESS=1)", path.display()));
    assert_eq!(text, want, "{name} changed: a new format version is due");
}

/// A disk record: the header, then JSON, pinned as pretty JSON text for a readable diff, and
/// the exact bytes as well.
fn pin_record(name: &str, bytes: &[u8]) {
    assert_eq!(&bytes[..4], b"\xFFIL\x02", "{name}: header");
    let body = std::str::from_utf8(&bytes[4..]).unwrap();
    pin(&format!("{name}.json"), &format!("{body}\n"));
}

/// A wire frame: hex, 32 bytes a line.
fn pin_frame(name: &str, bytes: &[u8]) {
    let hex: Vec<String> = bytes
        .chunks(32)
        .map(|c| c.iter().map(|b| format!("{b:02x}")).collect())
        .collect();
    pin(&format!("{name}.hex"), &(hex.join("\n") + "\n"));
}

fn key(s: &str) -> ironlb::names::ServiceKey {
    s.parse().unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn config() -> ironlb::config::Config {
    let yaml = "apiVersion: ironlb.io/v1beta1\nkind: IPAddressPool\nmetadata:\n  name: public\nspec:\n  addresses:\n    - 192.0.2.0/28\n    - 2001:db8::/126\n---\napiVersion: ironlb.io/v1beta1\nkind: L2Advertisement\nmetadata:\n  name: all\n";
    let loaded = Documents::from_str(yaml, "formats");
    assert!(loaded.errors.is_empty(), "{:?}", loaded.errors);
    validate(&loaded.documents).unwrap()
}

fn request(name: &str) -> AllocationRequest {
    let mut r = AllocationRequest::new(key(name), vec![Port::tcp(80), Port::udp(53)]);
    r.sharing_key = SharingKey::new("dns");
    r
}

/// One command of every kind, named by its kind.
fn every_command() -> Vec<Command> {
    let commands = vec![
        Command::SetConfig {
            config: Box::new(config()),
        },
        Command::Allocate {
            request: request("default/web"),
        },
        Command::Release {
            service: key("default/web"),
        },
        Command::Reserve {
            address: ip("192.0.2.5"),
            service: key("default/later"),
        },
        Command::Unreserve {
            address: ip("192.0.2.5"),
        },
        Command::Adopt {
            request: request("default/old"),
            addresses: vec![ip("192.0.2.7")],
        },
        Command::AssignOwners {
            moves: vec![
                (ip("192.0.2.7"), Some("node-a".parse().unwrap())),
                (ip("192.0.2.8"), None),
            ],
        },
        Command::Batch {
            commands: vec![Command::Release {
                service: key("default/old"),
            }],
        },
        Command::ReserveMemberId { requested: Some(4) },
    ];
    // Adding a command kind fails to compile here until it has an example above.
    for c in &commands {
        match c {
            Command::SetConfig { .. }
            | Command::Allocate { .. }
            | Command::Release { .. }
            | Command::Reserve { .. }
            | Command::Unreserve { .. }
            | Command::Adopt { .. }
            | Command::AssignOwners { .. }
            | Command::Batch { .. }
            | Command::ReserveMemberId { .. } => {}
        }
    }
    commands
}

fn log_id(term: u64, index: u64) -> LogId {
    LogId::new(CommittedLeaderId::new(term, 1), index)
}

fn membership() -> Membership<u64, Member> {
    let members: BTreeMap<u64, Member> = (1..=3)
        .map(|i| {
            let m = Member {
                raft_addr: format!("ironlb-{i}.ironlb:7481"),
                admin_addr: format!("ironlb-{i}.ironlb:7480"),
            };
            (i, m)
        })
        .collect();
    Membership::new(
        vec![members.keys().copied().collect::<BTreeSet<_>>()],
        members,
    )
}

#[test]
fn every_log_entry_kind_is_pinned() {
    for (i, command) in every_command().into_iter().enumerate() {
        let kind = command.kind();
        let entry = Entry {
            log_id: log_id(2, 10 + i as u64),
            payload: EntryPayload::Normal(command),
        };
        let bytes = codec::encode(&entry).unwrap();
        pin_record(&format!("entry-{kind}"), &bytes);
        let back: Entry = codec::decode(&bytes).unwrap();
        assert_eq!(back.log_id, entry.log_id);
    }
    let blank = Entry {
        log_id: log_id(3, 1),
        payload: EntryPayload::Blank,
    };
    pin_record("entry-blank", &codec::encode(&blank).unwrap());
    let member = Entry {
        log_id: log_id(3, 2),
        payload: EntryPayload::Membership(membership()),
    };
    pin_record("entry-membership", &codec::encode(&member).unwrap());
}

#[test]
fn the_store_pointers_are_pinned() {
    pin_record("vote", &codec::encode(&Vote::new_committed(3, 1)).unwrap());
    pin_record("log-id", &codec::encode(&log_id(3, 42)).unwrap());
}

#[test]
fn a_snapshot_is_pinned_and_holds_records_only() {
    let mut state = ControllerState::default();
    for command in every_command() {
        state.apply(command);
    }
    state.apply(Command::Allocate {
        request: request("default/dns"),
    });
    let meta = SnapshotMeta {
        last_log_id: Some(log_id(3, 42)),
        last_membership: StoredMembership::new(Some(log_id(3, 2)), membership()),
        snapshot_id: "3-1-42-0000000000000001".into(),
    };
    let bytes = snapshot::encode(&meta, &state).unwrap();
    pin_record("snapshot", &bytes);
    // The snapshot is serialised from the state as it is walked, not from a copy as records:
    // both must give the very same bytes.
    let from_records = codec::encode(&snapshot::SnapshotRecord {
        meta: meta.clone(),
        state: snapshot::StateRecords::from(&state),
    })
    .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&bytes),
        String::from_utf8_lossy(&from_records)
    );
    let (back_meta, back) = snapshot::decode(&bytes).unwrap();
    assert_eq!(back_meta, meta);
    assert_eq!(back, state, "the indexes rebuilt are the ones left behind");
}

#[test]
fn a_snapshot_read_as_a_stream_is_the_snapshot_read_whole_in_both_formats() {
    // Format 2, as a follower receives it; format 1, as an older release left it on disk.
    let format1 = std::fs::read(fixture(
        "../format1/snapshots/snap-1-1-23-18ed9f9b78dfd0e7.bin",
    ))
    .unwrap();
    let format2 = {
        let (meta, state) = snapshot::decode(&format1).unwrap();
        snapshot::encode(&meta, &state).unwrap()
    };
    for bytes in [format1, format2] {
        let whole = snapshot::decode(&bytes).unwrap();
        let streamed = snapshot::decode_reader(std::io::BufReader::new(&bytes[..])).unwrap();
        assert_eq!(streamed, whole);
    }
}

#[test]
fn every_message_on_the_raft_port_is_pinned() {
    let raft = Hello {
        version: wire::PROTOCOL_VERSION,
        channel: Channel::Raft {
            from: 1,
            to: 2,
            cluster: None,
        },
    };
    pin_frame("hello-raft", &raft.encode().unwrap());
    let speaker = Hello {
        version: wire::SPEAKER_PROTOCOL_VERSION,
        channel: Channel::Speaker {
            node: "node-a".parse().unwrap(),
        },
    };
    pin_frame("hello-speaker", &speaker.encode().unwrap());
    pin_frame("hello-accepted", &HelloReply::Accepted.encode().unwrap());
    pin_frame(
        "hello-rejected",
        &HelloReply::Rejected("not this cluster".into())
            .encode()
            .unwrap(),
    );
    let confirm = RaftRequest::ConfirmLeader { term: 3, leader: 1 };
    pin_frame(
        "raft-confirm-leader",
        &wire::encode("raft", &confirm).unwrap(),
    );
}

#[test]
fn every_speaker_message_is_pinned() {
    let id = AssignmentId {
        term: 3,
        leader: 1,
        revision: 7,
    };
    let heartbeat = ToController::Heartbeat(Heartbeat {
        seq: 9,
        labels: [("zone".to_string(), "a".to_string())]
            .into_iter()
            .collect(),
        interfaces: vec![ironlb::config::InterfaceName::new("eth0").unwrap()],
        unready: [key("default/web")].into_iter().collect(),
        applied: Some(id),
        want_full: false,
        fenced: false,
        excluded: false,
    });
    let to_controller = [("heartbeat", heartbeat), ("drain", ToController::Drain)];
    for (name, m) in to_controller {
        pin_frame(
            &format!("speaker-{name}"),
            &wire::encode("speaker", &m).unwrap(),
        );
    }
    let assignment = Assignment {
        id,
        base: Some(AssignmentId { revision: 6, ..id }),
        upsert: vec![L2Address {
            address: ip("192.0.2.7"),
            services: vec![key("default/web")],
            interfaces: vec![],
        }],
        remove: vec![ip("2001:db8::1")],
        services: None,
        services_upsert: vec![ServiceAnnounce {
            service: key("default/web"),
            health_check: None,
            local: true,
        }],
        services_remove: vec![key("default/old")],
        peers: None,
        routes_upsert: vec![],
        routes_remove: vec![],
    };
    let to_speaker = [
        (
            "lease",
            ToSpeaker::Lease {
                seq: 9,
                lease_ms: 2000,
                heartbeat_ms: 250,
                term: 3,
                leader: 1,
            },
        ),
        ("assignment", ToSpeaker::Assignment(Box::new(assignment))),
        (
            "not-leader",
            ToSpeaker::NotLeader {
                leader: Some("ironlb-1.ironlb:7481".into()),
            },
        ),
        ("no-quorum", ToSpeaker::NoQuorum),
        ("drained", ToSpeaker::Drained),
    ];
    for (name, m) in to_speaker {
        pin_frame(
            &format!("speaker-{name}"),
            &wire::encode("speaker", &m).unwrap(),
        );
    }
}
