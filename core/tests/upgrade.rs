//! A data directory written by an earlier release opens with this code, and keeps working.
//!
//! `fixtures/format1/` was written by `examples/format_fixture.rs` built at the commit that
//! introduced it: format 1, unversioned bincode of the in-memory types (the log after a
//! snapshot, the snapshot, the identity). `fixtures/format1.allocations.json` is what that
//! member held when it stopped. Never regenerate these: they are the past this code must read.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use ironlb::controller::member::{ControllerMember, MemberConfig};
use ironlb::ipam::{AllocationRequest, Port};
use ironlb::raft::{Command, Response};
use serde_json::Value;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).unwrap();
        }
    }
}

async fn start(dir: &Path) -> ControllerMember {
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let mut cfg = MemberConfig::new(1, dir.to_path_buf(), any, any);
    cfg.snapshot_every = 8;
    let member = ControllerMember::start(cfg).await.unwrap();
    member
        .wait_for_leader(Duration::from_secs(10))
        .await
        .expect("the member leads its cluster of one again");
    member
}

async fn allocations(member: &ControllerMember) -> Value {
    let state = member.state.read().await;
    serde_json::to_value(state.allocator.allocations().collect::<Vec<_>>()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_format_1_data_directory_opens_with_everything_it_held_and_takes_new_writes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("member");
    copy_dir(&fixtures().join("format1"), &dir);
    let expected: Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join("format1.allocations.json")).unwrap(),
    )
    .unwrap();

    let member = start(&dir).await;
    assert_eq!(allocations(&member).await, expected);
    {
        let state = member.state.read().await;
        assert!(state.config.is_some(), "the configuration came back");
        let owned: IpAddr = "192.0.2.1".parse().unwrap();
        assert_eq!(
            state.owners.get(&owned).map(|n| n.to_string()).as_deref(),
            Some("node-a")
        );
        let reserved: IpAddr = "198.51.100.15".parse().unwrap();
        assert_eq!(
            state
                .allocator
                .reservations()
                .find(|(a, _)| **a == reserved)
                .map(|(_, s)| s.to_string())
                .as_deref(),
            Some("default/later")
        );
        assert!(state.member_ids.len() >= 2, "{:?}", state.member_ids);
    }

    // New writes land beside the old ones, past another snapshot, and survive a restart.
    for i in 0..10 {
        let request = AllocationRequest::new(
            format!("default/after{i}").parse().unwrap(),
            vec![Port::tcp(443)],
        );
        match member.propose(Command::Allocate { request }).await.unwrap() {
            Response::Allocated(e) => assert!(e.outcome.is_ok(), "{e:?}"),
            other => panic!("{other:?}"),
        }
    }
    let before = allocations(&member).await;
    member.shutdown().await;

    let member = start(&dir).await;
    assert_eq!(allocations(&member).await, before);
    assert_eq!(
        before.as_array().unwrap().len(),
        expected.as_array().unwrap().len() + 10
    );
    member.shutdown().await;
}
