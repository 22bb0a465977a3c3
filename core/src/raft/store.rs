//! Opening a member's Raft storage: the log store (segment files in `<dir>/wal/`, imported once
//! from sled's `<dir>/log/` where an older release left one) and the state machine (in memory,
//! with snapshot files in `<dir>/snapshots/`).

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

pub use super::log_store::LogStore;
pub use super::state_machine::StateMachineStore;

/// Why the storage could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A file or directory could not be created, read or synced.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What the system said.
        source: io::Error,
    },
    /// The log could not be opened: damaged, unreadable, or in use.
    #[error("raft log: {0}")]
    Wal(#[from] super::wal::WalError),
    /// An older release's sled log could not be imported.
    #[error("importing the raft log: {0}")]
    Import(#[from] super::wal::sled_import::ImportError),
    /// The blocking open task did not finish.
    #[error("opening the storage: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// Opens (creating it if needed) the Raft storage in `dir`: the log store, and the state machine
/// rebuilt from the newest snapshot. Only one process may have a directory open at a time.
pub async fn open(dir: &Path) -> Result<(LogStore, StateMachineStore), StoreError> {
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || open_blocking(&dir)).await?
}

fn open_blocking(dir: &Path) -> Result<(LogStore, StateMachineStore), StoreError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| StoreError::Io { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    // The directory's own entry must be durable too if we just created it.
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        sync_dir(parent).map_err(io(parent))?;
    }
    super::wal::sled_import::import(&dir.join("log"), &dir.join("wal"))?;
    let log = LogStore::open_blocking(&dir.join("wal"))?;
    let state_machine = StateMachineStore::open_blocking(&dir.join("snapshots"))?;
    sync_dir(dir).map_err(io(dir))?;
    tracing::info!(dir = %dir.display(), "raft storage open");
    Ok((log, state_machine))
}

/// fsyncs a directory, which makes the creation, renaming and removal of its entries durable.
pub(super) fn sync_dir(path: &Path) -> io::Result<()> {
    File::open(path)?.sync_all()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use openraft::storage::{RaftLogStorage, RaftLogStorageExt, RaftStateMachine};
    use openraft::testing::{log_id, StoreBuilder, Suite};
    use openraft::{EntryPayload, Membership, RaftLogReader, RaftSnapshotBuilder, StorageHelper};
    use tempfile::TempDir;

    use super::*;
    use crate::config::{Config, Documents};
    use crate::ipam::AllocationRequest;
    use crate::raft::types::{Entry, LogId, StorageError, TypeConfig, Vote};
    use crate::raft::{Command, ControllerState};

    struct Builder;

    impl StoreBuilder<TypeConfig, LogStore, StateMachineStore, TempDir> for Builder {
        async fn build(&self) -> Result<(TempDir, LogStore, StateMachineStore), StorageError> {
            let dir = tempfile::tempdir().map_err(|e| openraft::StorageIOError::write(&e))?;
            let (log, sm) = open(dir.path())
                .await
                .map_err(|e| openraft::StorageIOError::write(&e))?;
            Ok((dir, log, sm))
        }
    }

    #[test]
    fn passes_openraft_storage_suite() {
        Suite::test_all(Builder).unwrap();
    }

    const POOL: &str = "apiVersion: ironlb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: public}\nspec: {addresses: [192.0.2.0/28]}\n";

    fn config() -> Box<Config> {
        let docs = Documents::from_str(POOL, "t.yaml").into_result().unwrap();
        Box::new(crate::config::validate(&docs).unwrap())
    }

    fn lid(index: u64) -> LogId {
        log_id(1, 1, index)
    }

    fn normal(index: u64, command: Command) -> Entry {
        Entry {
            log_id: lid(index),
            payload: EntryPayload::Normal(command),
        }
    }

    fn allocate(index: u64, service: &str) -> Entry {
        normal(
            index,
            Command::Allocate {
                request: AllocationRequest::new(service.parse().unwrap(), vec![]),
            },
        )
    }

    /// Entries 1..=5: membership {1}, config, three allocations.
    fn entries() -> Vec<Entry> {
        vec![
            Entry {
                log_id: lid(1),
                payload: EntryPayload::Membership(Membership::new(vec![BTreeSet::from([1])], None)),
            },
            normal(2, Command::SetConfig { config: config() }),
            allocate(3, "default/a"),
            allocate(4, "default/b"),
            allocate(5, "default/c"),
        ]
    }

    /// What applying `entries` directly gives.
    fn expected_state(entries: &[Entry]) -> ControllerState {
        let mut state = ControllerState::default();
        for e in entries {
            match &e.payload {
                EntryPayload::Normal(c) => {
                    state.apply(c.clone());
                }
                // Every id ever a member is remembered, so none is handed out again.
                EntryPayload::Membership(m) => state.note_members(m.nodes().map(|(id, _)| *id)),
                EntryPayload::Blank => {}
            }
        }
        state
    }

    #[tokio::test]
    async fn entries_vote_and_committed_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let vote = Vote::new_committed(3, 1);
        {
            let (mut log, _sm) = open(dir.path()).await.unwrap();
            log.save_vote(&vote).await.unwrap();
            log.blocking_append(entries()).await.unwrap();
            log.save_committed(Some(lid(4))).await.unwrap();
        }
        let (mut log, _sm) = open(dir.path()).await.unwrap();
        assert_eq!(log.read_vote().await.unwrap(), Some(vote));
        assert_eq!(log.read_committed().await.unwrap(), Some(lid(4)));
        let got = log.try_get_log_entries(..).await.unwrap();
        assert_eq!(got, entries());
        let state = log.get_log_state().await.unwrap();
        assert_eq!(state.last_log_id, Some(lid(5)));
        assert_eq!(state.last_purged_log_id, None);
    }

    #[tokio::test]
    async fn truncate_and_purge_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut log, _sm) = open(dir.path()).await.unwrap();
            log.blocking_append(entries()).await.unwrap();
            log.truncate(lid(4)).await.unwrap();
            log.purge(lid(2)).await.unwrap();
        }
        let (mut log, _sm) = open(dir.path()).await.unwrap();
        let got = log.try_get_log_entries(..).await.unwrap();
        assert_eq!(got, entries()[2..3].to_vec());
        let state = log.get_log_state().await.unwrap();
        assert_eq!(state.last_purged_log_id, Some(lid(2)));
        assert_eq!(state.last_log_id, Some(lid(3)));

        // Purging everything keeps the last log id through the purge pointer.
        drop(log);
        {
            let (mut log, _sm) = open(dir.path()).await.unwrap();
            log.purge(lid(3)).await.unwrap();
        }
        let (mut log, _sm) = open(dir.path()).await.unwrap();
        assert!(log.try_get_log_entries(..).await.unwrap().is_empty());
        let state = log.get_log_state().await.unwrap();
        assert_eq!(state.last_purged_log_id, Some(lid(3)));
        assert_eq!(state.last_log_id, Some(lid(3)));
    }

    #[tokio::test]
    async fn state_is_rebuilt_from_the_snapshot_and_the_committed_log() {
        let dir = tempfile::tempdir().unwrap();
        let all = entries();
        let snapshot_meta = {
            let (mut log, mut sm) = open(dir.path()).await.unwrap();
            let mut applied = sm.applied();
            log.blocking_append(all.clone()).await.unwrap();
            sm.apply(all[..3].to_vec()).await.unwrap();
            assert_eq!(*applied.borrow_and_update(), Some(lid(3)));
            let first = sm
                .get_snapshot_builder()
                .await
                .build_snapshot()
                .await
                .unwrap();
            // A second build replaces the first; only the newest file stays.
            sm.apply(all[3..4].to_vec()).await.unwrap();
            let snap = sm
                .get_snapshot_builder()
                .await
                .build_snapshot()
                .await
                .unwrap();
            assert_ne!(first.meta.snapshot_id, snap.meta.snapshot_id);
            let files = std::fs::read_dir(dir.path().join("snapshots"))
                .unwrap()
                .count();
            assert_eq!(files, 1);
            log.purge(lid(3)).await.unwrap();
            sm.apply(all[4..].to_vec()).await.unwrap();
            log.save_committed(Some(lid(5))).await.unwrap();
            assert_eq!(*sm.state().read().await, expected_state(&all));
            snap.meta
        };

        let (mut log, mut sm) = open(dir.path()).await.unwrap();
        // From the snapshot alone: up to entry 4.
        let (applied, membership) = sm.applied_state().await.unwrap();
        assert_eq!(applied, Some(lid(4)));
        assert_eq!(membership, snapshot_meta.last_membership);
        assert_eq!(*sm.state().read().await, expected_state(&all[..4]));
        let current = sm.get_current_snapshot().await.unwrap().unwrap();
        assert_eq!(current.meta, snapshot_meta);

        // openraft's startup re-applies the committed entries after the snapshot.
        StorageHelper::new(&mut log, &mut sm)
            .get_initial_state()
            .await
            .unwrap();
        assert_eq!(sm.applied_state().await.unwrap().0, Some(lid(5)));
        assert_eq!(*sm.state().read().await, expected_state(&all));
        assert_eq!(*sm.applied().borrow(), Some(lid(5)));
    }

    async fn bytes_of(mut file: Box<tokio::fs::File>) -> Vec<u8> {
        use tokio::io::AsyncReadExt;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).await.unwrap();
        bytes
    }

    #[tokio::test]
    async fn an_installed_snapshot_survives_reopening_and_a_corrupt_one_is_skipped() {
        use tokio::io::AsyncWriteExt;
        let all = entries();
        let leader_dir = tempfile::tempdir().unwrap();
        let (_log, mut leader) = open(leader_dir.path()).await.unwrap();
        leader.apply(all.clone()).await.unwrap();
        let snap = leader
            .get_snapshot_builder()
            .await
            .build_snapshot()
            .await
            .unwrap();
        let sent = bytes_of(snap.snapshot).await;

        let dir = tempfile::tempdir().unwrap();
        {
            let (_log, mut follower) = open(dir.path()).await.unwrap();
            // Data that does not match its metadata is refused and changes nothing.
            let mut wrong = snap.meta.clone();
            wrong.last_log_id = Some(lid(9));
            let mut bad = follower.begin_receiving_snapshot().await.unwrap();
            bad.write_all(&sent).await.unwrap();
            assert!(follower.install_snapshot(&wrong, bad).await.is_err());
            assert!(follower.get_current_snapshot().await.unwrap().is_none());

            // Received in chunks, as openraft writes them.
            let mut data = follower.begin_receiving_snapshot().await.unwrap();
            for chunk in sent.chunks(1000) {
                data.write_all(chunk).await.unwrap();
            }
            follower.install_snapshot(&snap.meta, data).await.unwrap();
            assert_eq!(*follower.state().read().await, expected_state(&all));
            // The received file became the snapshot; nothing else is left.
            let names: Vec<_> = std::fs::read_dir(dir.path().join("snapshots"))
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect();
            assert_eq!(
                names,
                vec![super::super::state_machine::file_name(
                    &snap.meta.snapshot_id
                )]
            );
        }
        // A newer-looking but corrupt file must not win.
        let snapshots = dir.path().join("snapshots");
        std::fs::write(snapshots.join("snap-9-9-99-0.bin"), b"garbage").unwrap();
        std::fs::write(snapshots.join("snap-x.bin.tmp"), b"half").unwrap();

        let (_log, mut follower) = open(dir.path()).await.unwrap();
        assert_eq!(
            follower.applied_state().await.unwrap(),
            (Some(lid(5)), snap.meta.last_membership.clone())
        );
        assert_eq!(*follower.state().read().await, expected_state(&all));
        assert!(!snapshots.join("snap-x.bin.tmp").exists());
        let current = follower.get_current_snapshot().await.unwrap().unwrap();
        assert_eq!(current.meta, snap.meta);
        assert_eq!(bytes_of(current.snapshot).await, sent);
    }

    #[tokio::test]
    async fn a_snapshot_is_due_after_so_many_commands_however_they_are_batched() {
        let dir = tempfile::tempdir().unwrap();
        let (_log, mut sm) = open(dir.path()).await.unwrap();
        sm.snapshot_after(6);
        let mut due = sm.snapshot_due();
        use crate::ipam::Port;
        use crate::names::ServiceKey;
        let batch = |index: u64, from: usize, n: usize| {
            let commands = (from..from + n)
                .map(|i| Command::Allocate {
                    request: AllocationRequest::new(
                        ServiceKey::new("default", &format!("s{i}")).unwrap(),
                        vec![Port::tcp(80)],
                    ),
                })
                .collect();
            normal(index, Command::Batch { commands })
        };
        sm.apply(entries()[..2].to_vec()).await.unwrap();
        // The configuration, then one entry of 4 commands, then one of 3: due after the third
        // entry, the eighth command.
        sm.apply(vec![batch(3, 0, 4)]).await.unwrap();
        assert!(!due.has_changed().unwrap());
        sm.apply(vec![batch(4, 4, 3)]).await.unwrap();
        assert!(due.has_changed().unwrap());
        due.borrow_and_update();
        // Asked once until a snapshot is built, then counted afresh.
        sm.apply(vec![batch(5, 7, 6)]).await.unwrap();
        assert!(!due.has_changed().unwrap());
        sm.get_snapshot_builder()
            .await
            .build_snapshot()
            .await
            .unwrap();
        sm.apply(vec![batch(6, 13, 4)]).await.unwrap();
        assert!(!due.has_changed().unwrap());
        sm.apply(vec![batch(7, 17, 2)]).await.unwrap();
        assert!(due.has_changed().unwrap());
    }
}
