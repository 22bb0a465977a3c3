//! The fuzz targets' inputs replayed as a test: seeds built from real encoders, every
//! truncation and thousands of deterministic mutations of them, the corpus `scripts/fuzz` grew
//! under `fuzz/corpus/<target>/` on this machine (not committed: megabytes), and every input that
//! once crashed a target, under `fuzz/regressions/<target>/` (committed). A panic fails the test with the target and input named.
//!
//! `IRONLB_FUZZ_SEEDS=<dir>` also writes the seeds to `<dir>/<target>/`, where `scripts/fuzz`
//! starts the fuzzers from.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use ironlb::announce::proto::{Heartbeat, ToController};
use ironlb::fuzz::{Target, TARGETS};
use ironlb::net::bfd::packet::{encode as bfd_encode, ControlPacket, Diag, State};
use ironlb::net::bgp::packet::{self, Notify, OpenParams};
use ironlb::net::{arp, ndp};
use ironlb::raft::network::wire::{self, Channel, Hello};
use pnet_base::MacAddr;

fn root() -> PathBuf {
    // The repository: the examples and fuzz corpora sit beside the crates.
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A who-has for 192.0.2.10 from 192.0.2.1, as a host on the LAN sends it.
fn arp_request() -> Vec<u8> {
    let mut f = vec![0xff; 6];
    f.extend([2, 0, 0, 0, 0, 1]);
    f.extend([0x08, 0x06, 0, 1, 0x08, 0x00, 6, 4, 0, 1]);
    f.extend([2, 0, 0, 0, 0, 1, 192, 0, 2, 1]);
    f.extend([0, 0, 0, 0, 0, 0, 192, 0, 2, 10]);
    f
}

/// What a BFD peer (discriminator 2) sends session 1 from Down to Up, a Poll, a Final, and
/// AdminDown: each alone, and all as the target's session script, 100 ms apart.
fn bfd_packets() -> Vec<Vec<u8>> {
    let p = |state, your, poll, final_, diag| ControlPacket {
        version: 1,
        diagnostic: diag,
        state,
        poll,
        final_,
        control_plane_independent: false,
        auth_present: false,
        demand: false,
        multipoint: false,
        detect_mult: 3,
        my_discriminator: 2,
        your_discriminator: your,
        desired_min_tx: 300_000,
        required_min_rx: 300_000,
        required_min_echo_rx: 0,
    };
    let (none, admin) = (Diag::NoDiagnostic, Diag::AdministrativelyDown);
    let packets = [
        p(State::Down, 0, false, false, none),
        p(State::Init, 1, false, false, none),
        p(State::Up, 1, true, false, none),
        p(State::Up, 1, false, true, none),
        p(State::Up, 1, false, false, none),
        p(State::AdminDown, 1, false, false, admin),
    ];
    let mut seeds: Vec<Vec<u8>> = packets.iter().map(|p| bfd_encode(p).to_vec()).collect();
    let mut script = Vec::new();
    for p in &packets {
        script.push(25);
        script.extend(bfd_encode(p));
    }
    seeds.push(script);
    seeds
}

fn seeds() -> BTreeMap<&'static str, Vec<Vec<u8>>> {
    let mac = MacAddr::new(2, 0, 0, 0, 0, 7);
    let v6 = |s: &str| s.parse::<Ipv6Addr>().unwrap();
    let bgp: Vec<Vec<u8>> = [
        packet::open(&OpenParams {
            asn: 64512,
            hold_time: 90,
            router_id: Ipv4Addr::new(192, 0, 2, 1),
            graceful_restart: Some(120),
            families: packet::Families::BOTH,
        }),
        packet::end_of_rib(false),
        packet::end_of_rib(true),
        packet::notification(Notify::HoldTimerExpired),
    ]
    .iter()
    .map(|m| packet::encode(m).unwrap())
    .collect();
    let mut session = vec![0x07];
    bgp.iter().for_each(|m| session.extend(m));
    let hello = Hello {
        version: wire::PROTOCOL_VERSION,
        channel: Channel::Speaker {
            node: "worker-1".parse().unwrap(),
        },
    }
    .encode()
    .unwrap()
    .to_vec();
    let heartbeat = wire::encode(
        "heartbeat",
        &ToController::Heartbeat(Heartbeat {
            seq: 3,
            ..Heartbeat::default()
        }),
    )
    .unwrap()
    .to_vec();
    let mut configs = Vec::new();
    for dir in [
        "examples/standalone",
        "examples/kubernetes",
        "examples/metallb",
    ] {
        for e in std::fs::read_dir(root().join(dir)).unwrap() {
            configs.push(std::fs::read(e.unwrap().path()).unwrap());
        }
    }
    let mut arp_ndp = vec![arp_request()];
    arp_ndp.extend(arp::gratuitous(mac, Ipv4Addr::new(192, 0, 2, 10)));
    arp_ndp.push(ndp::solicit_frame(
        mac,
        v6("2001:db8::1"),
        v6("2001:db8::10"),
    ));
    arp_ndp.push(ndp::unsolicited(mac, v6("2001:db8::10")));
    BTreeMap::from([
        ("arp_ndp", arp_ndp),
        ("bgp_message", bgp.clone()),
        ("bgp_session", vec![session]),
        ("wire_frames", vec![hello, heartbeat]),
        ("config_yaml", configs),
        ("bfd_packet", bfd_packets()),
        (
            "admin_bodies",
            vec![
                br#"{"service":{"namespace":"default","name":"web"},"pool":"public"}"#.to_vec(),
                br#"{"address":"192.0.2.5","service":"default/web"}"#.to_vec(),
                br#"{"id":4,"raft_addr":"n4:7481","admin_addr":"n4:7480"}"#.to_vec(),
                std::fs::read(root().join("examples/kubernetes/service.yaml")).unwrap(),
            ],
        ),
    ])
}

/// Deterministic mutations: every truncation, and byte flips, insertions and deletions at
/// positions spread over the input.
fn mutations(seed: &[u8]) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = (0..seed.len().min(512))
        .map(|n| seed[..n].to_vec())
        .collect();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15 ^ seed.len() as u64;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for _ in 0..400 {
        let mut m = seed.to_vec();
        for _ in 0..=(next() % 4) {
            if m.is_empty() {
                m.push(next() as u8);
                continue;
            }
            let at = (next() as usize) % m.len();
            match next() % 4 {
                0 => m[at] ^= 1 << (next() % 8),
                1 => m[at] = [0, 0xff, 0x7f, 0x80][(next() % 4) as usize],
                2 => m.insert(at, next() as u8),
                _ => {
                    m.remove(at);
                }
            }
        }
        out.push(m);
    }
    out
}

fn files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .map(|p| {
            let data = std::fs::read(&p).unwrap();
            (p, data)
        })
        .collect()
}

fn run(target: &str, f: fn(&[u8]), input: &[u8], what: &str) {
    if let Err(e) = std::panic::catch_unwind(|| f(input)) {
        panic!(
            "fuzz target {target} panicked on {what} ({} bytes: {input:02x?}): {e:?}",
            input.len()
        );
    }
}

/// Runs one target over its seeds (written out under `IRONLB_FUZZ_SEEDS` when set), their
/// mutations, its corpus and its past crashes.
fn replay(name: &str, f: Target, seeds: &BTreeMap<&'static str, Vec<Vec<u8>>>) {
    let write_to = std::env::var_os("IRONLB_FUZZ_SEEDS").map(PathBuf::from);
    let mine = seeds
        .get(name)
        .unwrap_or_else(|| panic!("no seeds for {name}"));
    assert!(!mine.is_empty(), "{name}");
    let mut runs = 0;
    for (i, seed) in mine.iter().enumerate() {
        if let Some(dir) = &write_to {
            let dir = dir.join(name);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join(format!("seed-{i}")), seed).unwrap();
        }
        run(name, f, seed, &format!("seed {i}"));
        for (j, m) in mutations(seed).iter().enumerate() {
            run(name, f, m, &format!("mutation {j} of seed {i}"));
            runs += 1;
        }
    }
    for kind in ["corpus", "regressions"] {
        for (path, data) in files(&root().join("fuzz").join(kind).join(name)) {
            run(name, f, &data, &path.display().to_string());
            runs += 1;
        }
    }
    assert!(runs > 100, "{name}: only {runs} inputs");
}

#[test]
fn every_target_survives_its_seeds_their_mutations_the_corpus_and_past_crashes() {
    let seeds = seeds();
    for (name, f) in TARGETS {
        replay(name, *f, &seeds);
    }
}
