//! Writes a data directory in the formats of the code it is built with, for the upgrade test
//! (`core/tests/upgrade.rs`): `cargo run -p ironlb-core --example format_fixture -- <dir>`.
//!
//! One member, snapshotting every 8 entries, applies every kind of command (a configuration,
//! allocations alone and batched, specific addresses and pools, a shared address, a release, a
//! reservation, owners, a member id) so the directory holds a snapshot and a log after it. It
//! prints the applied state's allocations as JSON: what the test expects to find.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ironlb::config::load_config;
use ironlb::controller::member::{ControllerMember, MemberConfig};
use ironlb::ipam::{AllocationRequest, Port, SharingKey};
use ironlb::raft::{Command, Response};

fn request(key: &str) -> AllocationRequest {
    AllocationRequest::new(key.parse().expect("key"), vec![Port::tcp(80)])
}

#[tokio::main]
async fn main() {
    let dir: PathBuf = std::env::args()
        .nth(1)
        .expect("usage: format_fixture <dir>")
        .into();
    let any: SocketAddr = "127.0.0.1:0".parse().expect("address");
    let mut cfg = MemberConfig::new(1, dir, any, any);
    cfg.bootstrap = true;
    cfg.snapshot_every = 8;
    let member = Arc::new(ControllerMember::start(cfg).await.expect("start"));
    member
        .wait_for_leader(Duration::from_secs(5))
        .await
        .expect("leader");
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let (_, config) = load_config(&root.join("examples/standalone/pools.yaml")).expect("config");
    let propose = |c: Command| {
        let member = Arc::clone(&member);
        async move { member.propose(c).await.expect("propose") }
    };
    propose(Command::SetConfig {
        config: Box::new(config),
    })
    .await;
    for i in 0..12 {
        propose(Command::Allocate {
            request: request(&format!("default/web{i}")),
        })
        .await;
    }
    // Proposed together: one batch entry.
    let batch: Vec<_> = (0..6)
        .map(|i| {
            propose(Command::Allocate {
                request: request(&format!("team/batch{i}")),
            })
        })
        .collect();
    futures::future::join_all(batch).await;
    let mut fixed = request("default/fixed");
    fixed.addresses = vec!["198.51.100.12".parse().expect("address")];
    propose(Command::Allocate { request: fixed }).await;
    let mut pooled = request("default/pooled");
    pooled.pool = Some("fixed".parse().expect("pool"));
    propose(Command::Allocate { request: pooled }).await;
    for name in ["default/dns-tcp", "default/dns-udp"] {
        let mut shared = AllocationRequest::new(name.parse().expect("key"), vec![Port::udp(53)]);
        if name.ends_with("tcp") {
            shared.ports = vec![Port::tcp(53)];
        }
        shared.sharing_key = Some(SharingKey::new("dns").expect("sharing key"));
        propose(Command::Allocate { request: shared }).await;
    }
    propose(Command::Release {
        service: "default/web3".parse().expect("key"),
    })
    .await;
    let reserved: IpAddr = "198.51.100.15".parse().expect("address");
    propose(Command::Reserve {
        address: reserved,
        service: "default/later".parse().expect("key"),
    })
    .await;
    let owned: IpAddr = "192.0.2.1".parse().expect("address");
    propose(Command::AssignOwners {
        moves: vec![(owned, Some("node-a".parse().expect("node")))],
    })
    .await;
    let Response::MemberId(_) = propose(Command::ReserveMemberId { requested: None }).await else {
        panic!("no member id")
    };
    let state = member.state.read().await.clone();
    println!(
        "{}",
        serde_json::to_string_pretty(&state.allocator.allocations().collect::<Vec<_>>())
            .expect("json")
    );
    Arc::into_inner(member).expect("one owner").shutdown().await;
}
