//! A minimal in-memory store: enough for openraft to run, with the applied commands visible.

use super::*;

// ---------------------------------------------------------------------------------------------
// A minimal in-memory store: enough for openraft to run, with the applied commands visible.

#[derive(Default)]
pub(super) struct LogInner {
    vote: Option<Vote>,
    committed: Option<LogId>,
    last_purged: Option<LogId>,
    entries: BTreeMap<u64, Entry>,
}

#[derive(Clone, Default)]
pub(super) struct MemLog(Arc<Mutex<LogInner>>);

impl RaftLogReader<TypeConfig> for MemLog {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError<MemberId>> {
        let inner = self.0.lock().unwrap();
        Ok(inner.entries.range(range).map(|(_, e)| e.clone()).collect())
    }
}

impl RaftLogStorage<TypeConfig> for MemLog {
    type LogReader = MemLog;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError<MemberId>> {
        let inner = self.0.lock().unwrap();
        let last = inner.entries.values().next_back().map(|e| e.log_id);
        Ok(LogState {
            last_purged_log_id: inner.last_purged,
            last_log_id: last.or(inner.last_purged),
        })
    }

    async fn get_log_reader(&mut self) -> MemLog {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError<MemberId>> {
        self.0.lock().unwrap().vote = Some(*vote);
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError<MemberId>> {
        Ok(self.0.lock().unwrap().vote)
    }

    async fn save_committed(&mut self, c: Option<LogId>) -> Result<(), StorageError<MemberId>> {
        self.0.lock().unwrap().committed = c;
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError<MemberId>> {
        Ok(self.0.lock().unwrap().committed)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError<MemberId>>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        {
            let mut inner = self.0.lock().unwrap();
            for e in entries {
                inner.entries.insert(e.log_id.index, e);
            }
        }
        callback.log_io_completed(Ok(()));
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError<MemberId>> {
        self.0.lock().unwrap().entries.split_off(&log_id.index);
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError<MemberId>> {
        let mut inner = self.0.lock().unwrap();
        inner.entries = inner.entries.split_off(&(log_id.index + 1));
        inner.last_purged = Some(log_id);
        Ok(())
    }
}

/// What the test state machine keeps: the addresses of the `Unreserve` commands it applied.
#[derive(Default)]
pub(super) struct SmInner {
    last_applied: Option<LogId>,
    membership: StoredMembership,
    addresses: Vec<IpAddr>,
    snapshot: Option<(SnapshotMeta, Vec<u8>)>,
    snapshots_built: u64,
}

#[derive(Clone, Default)]
pub(super) struct MemSm(Arc<Mutex<SmInner>>);

impl MemSm {
    pub(super) fn addresses(&self) -> Vec<IpAddr> {
        self.0.lock().unwrap().addresses.clone()
    }
}

pub(super) fn encode_state(addresses: &[IpAddr]) -> Vec<u8> {
    bincode::serde::encode_to_vec(addresses, bincode::config::standard()).unwrap()
}

impl RaftSnapshotBuilder<TypeConfig> for MemSm {
    async fn build_snapshot(&mut self) -> Result<Snapshot, StorageError<MemberId>> {
        let mut inner = self.0.lock().unwrap();
        inner.snapshots_built += 1;
        let meta = SnapshotMeta {
            last_log_id: inner.last_applied,
            last_membership: inner.membership.clone(),
            snapshot_id: format!("snap-{}", inner.snapshots_built),
        };
        let data = encode_state(&inner.addresses);
        inner.snapshot = Some((meta.clone(), data.clone()));
        Ok(Snapshot {
            meta,
            snapshot: snapshot_data(&data),
        })
    }
}

/// Snapshot data holding `bytes`, in an unnamed temporary file.
fn snapshot_data(bytes: &[u8]) -> Box<tokio::fs::File> {
    use std::io::{Seek, Write};
    let mut file = tempfile::tempfile().unwrap();
    file.write_all(bytes).unwrap();
    file.rewind().unwrap();
    Box::new(tokio::fs::File::from_std(file))
}

impl RaftStateMachine<TypeConfig> for MemSm {
    type SnapshotBuilder = MemSm;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId>, StoredMembership), StorageError<MemberId>> {
        let inner = self.0.lock().unwrap();
        Ok((inner.last_applied, inner.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Response>, StorageError<MemberId>>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let mut inner = self.0.lock().unwrap();
        let mut out = Vec::new();
        for entry in entries {
            inner.last_applied = Some(entry.log_id);
            match entry.payload {
                EntryPayload::Blank => {}
                EntryPayload::Normal(Command::Unreserve { address }) => {
                    inner.addresses.push(address)
                }
                EntryPayload::Normal(_) => {}
                EntryPayload::Membership(m) => {
                    inner.membership = StoredMembership::new(Some(entry.log_id), m)
                }
            }
            out.push(Response::None);
        }
        Ok(out)
    }

    async fn get_snapshot_builder(&mut self) -> MemSm {
        self.clone()
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> Result<Box<tokio::fs::File>, StorageError<MemberId>> {
        Ok(snapshot_data(&[]))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<tokio::fs::File>,
    ) -> Result<(), StorageError<MemberId>> {
        use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};
        let mut file = *snapshot;
        file.flush().await.unwrap();
        file.rewind().await.unwrap();
        let mut data = Vec::new();
        file.read_to_end(&mut data).await.unwrap();
        let (addresses, _): (Vec<IpAddr>, _) =
            bincode::serde::decode_from_slice(&data, bincode::config::standard())
                .expect("test snapshot data");
        let mut inner = self.0.lock().unwrap();
        inner.addresses = addresses;
        inner.last_applied = meta.last_log_id;
        inner.membership = meta.last_membership.clone();
        inner.snapshot = Some((meta.clone(), data));
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, StorageError<MemberId>> {
        let inner = self.0.lock().unwrap();
        Ok(inner.snapshot.as_ref().map(|(meta, data)| Snapshot {
            meta: meta.clone(),
            snapshot: snapshot_data(data),
        }))
    }
}
