//! The Raft log, the vote and the log pointers, in sled, made durable with an fsync of sled's
//! files at every durability point.
//!
//! Everything lives in one sled tree so that each durability point is a single atomic `Batch`:
//! log entries under `l` followed by the big-endian index (so key order is index order), and the
//! vote, the committed log id and the last purged log id under `m/...` keys.

use std::fmt::Debug;
use std::fs::{self, File};
use std::io;
use std::ops::{Bound, RangeBounds};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{ErrorSubject, ErrorVerb, OptionalSend, RaftLogReader, StorageIOError};
use serde::de::DeserializeOwned;

use crate::codec::{decode, encode, CodecError, EncodeError};

use super::store::{sync_dir, StoreError};
use super::types::{Entry, LogId, StorageError, TypeConfig, Vote};

const LOG_PREFIX: u8 = b'l';
const VOTE_KEY: &[u8] = b"m/vote";
const COMMITTED_KEY: &[u8] = b"m/committed";
const LAST_PURGED_KEY: &[u8] = b"m/last_purged";

fn log_key(index: u64) -> [u8; 9] {
    let mut key = [LOG_PREFIX; 9];
    key[1..].copy_from_slice(&index.to_be_bytes());
    key
}

fn index_of(key: &[u8]) -> Option<u64> {
    let bytes: [u8; 8] = key.get(1..)?.try_into().ok()?;
    Some(u64::from_be_bytes(bytes))
}

/// Turns any range of indexes into an inclusive one, or `None` when it holds no index.
fn inclusive(range: &impl RangeBounds<u64>) -> Option<(u64, u64)> {
    let lo = match range.start_bound() {
        Bound::Included(&s) => s,
        Bound::Excluded(&s) => s.checked_add(1)?,
        Bound::Unbounded => 0,
    };
    let hi = match range.end_bound() {
        Bound::Included(&e) => e,
        Bound::Excluded(&e) => e.checked_sub(1)?,
        Bound::Unbounded => u64::MAX,
    };
    (lo <= hi).then_some((lo, hi))
}

/// Why a read from the log store failed.
#[derive(Debug, thiserror::Error)]
enum ReadError {
    #[error("sled: {0}")]
    Sled(#[from] sled::Error),
    #[error(transparent)]
    Codec(#[from] CodecError),
}

/// Why a durability point failed.
#[derive(Debug, thiserror::Error)]
enum WriteError {
    #[error("encoding: {0}")]
    Encode(#[from] EncodeError),
    #[error("sled: {0}")]
    Sled(#[from] sled::Error),
    #[error("{0}")]
    Sync(String),
    #[error("the log's sync thread has stopped")]
    SyncGone,
}

/// The most memory sled's page cache for the log may use.
const LOG_CACHE_BYTES: u64 = 32 * 1024 * 1024;

/// sled's files, synced through handles of our own.
///
/// sled's `flush` ends in `sync_file_range` on Linux (sled issue 1452): that neither flushes the
/// drive's write cache nor makes a grown file's size durable, so we fsync the file ourselves.
#[derive(Debug)]
struct SledFiles {
    /// sled keeps its whole log in one file, `<dir>/db`.
    data: File,
    /// sled writes a page larger than a quarter segment (128 KiB) to a file here and never syncs
    /// it. Our values are small, but a page can hold many of them.
    blobs: PathBuf,
}

impl SledFiles {
    fn sync(&self) -> io::Result<()> {
        // The blob a record points to must be durable no later than the record.
        let mut any_blob = false;
        for entry in fs::read_dir(&self.blobs)? {
            let path = entry?.path();
            match File::open(&path).and_then(|f| f.sync_all()) {
                Ok(()) => any_blob = true,
                // sled removes blobs it no longer needs, possibly while we list them.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        if any_blob {
            sync_dir(&self.blobs)?;
        }
        // fdatasync: the data and the size a grown file needs to read it back; the times
        // sync_all would also write are of no use to a log.
        self.data.sync_data()
    }
}

/// Who waits for a sync: openraft's append callback, or a durability point awaiting in place.
enum Waiter {
    Append(LogFlushed<TypeConfig>),
    Await(tokio::sync::oneshot::Sender<Result<(), String>>),
}

impl Waiter {
    fn complete(self, result: &Result<(), String>) {
        match self {
            Waiter::Append(callback) => {
                callback.log_io_completed(result.clone().map_err(io::Error::other));
            }
            Waiter::Await(tx) => {
                // The waiter may have been cancelled; the write is durable all the same.
                let _ = tx.send(result.clone());
            }
        }
    }
}

/// Group commit: one thread makes sled's files durable for every write applied before it started
/// syncing, and then completes all their waiters at once.
///
/// openraft 0.9 calls `append` once per client write on the leader and waits for it, so syncing
/// inside `append` would cost one fsync per allocation. Instead `append` applies its batch (in
/// sled's memory, in order) and hands the callback here; everything that queued up while the
/// previous sync ran is covered by the next one. A waiter is queued only after its batch is
/// applied, so a sync that starts after receiving it covers the batch.
fn sync_loop(db: sled::Db, files: Arc<SledFiles>, rx: std::sync::mpsc::Receiver<Waiter>) {
    while let Ok(first) = rx.recv() {
        let mut waiters = vec![first];
        waiters.extend(rx.try_iter());
        let result = db
            .flush()
            .map(drop)
            .map_err(|e| format!("sled flush: {e}"))
            .and_then(|()| files.sync().map_err(|e| format!("fsync: {e}")));
        if let Err(e) = &result {
            tracing::error!(error = %e, "the raft log could not be made durable");
        }
        for w in waiters {
            w.complete(&result);
        }
    }
}

#[derive(Debug)]
struct Inner {
    tree: sled::Tree,
    /// To the sync thread; `None` only while dropping.
    sync_tx: Option<std::sync::mpsc::Sender<Waiter>>,
    sync_thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Closing the channel ends the sync thread after it completes what is queued; joining it
        // releases its handle on the database, so the directory can be opened again at once.
        self.sync_tx.take();
        if let Some(t) = self.sync_thread.take() {
            let _ = t.join();
        }
    }
}

impl std::fmt::Debug for Waiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Waiter::Append(_) => "Waiter::Append",
            Waiter::Await(_) => "Waiter::Await",
        })
    }
}

/// The Raft log storage on sled. Cheap to clone; clones share the database.
#[derive(Clone, Debug)]
pub struct LogStore {
    inner: Arc<Inner>,
}

impl LogStore {
    /// Opens (or creates) the sled database in `dir` and syncs its files and directories, so that
    /// everything found or created by the open is durable before the first write is acknowledged.
    /// Blocking.
    pub(super) fn open_blocking(dir: &Path) -> Result<Self, StoreError> {
        let db = sled::Config::new()
            .path(dir)
            // sled's default page cache is 1 GiB, and it fills with log entries that are read
            // back only to replicate to a lagging follower or to replay after a restart: a
            // member's memory would grow with its log, not with its state.
            .cache_capacity(LOG_CACHE_BYTES)
            .open()
            .map_err(|source| StoreError::Sled {
                path: dir.to_path_buf(),
                source,
            })?;
        let tree = db.open_tree("raft").map_err(|source| StoreError::Sled {
            path: dir.to_path_buf(),
            source,
        })?;
        let io = |path: PathBuf| move |source| StoreError::Io { path, source };
        let data_path = dir.join("db");
        let data = File::open(&data_path).map_err(io(data_path.clone()))?;
        let conf_path = dir.join("conf");
        let files = SledFiles {
            data,
            blobs: dir.join("blobs"),
        };
        files.sync().map_err(io(data_path))?;
        File::open(&conf_path)
            .and_then(|f| f.sync_all())
            .map_err(io(conf_path))?;
        sync_dir(dir).map_err(io(dir.to_path_buf()))?;
        let (sync_tx, rx) = std::sync::mpsc::channel();
        let files = Arc::new(files);
        let sync_thread = std::thread::Builder::new()
            .name("raft-log-sync".into())
            .spawn(move || sync_loop(db, files, rx))
            .map_err(io(dir.to_path_buf()))?;
        Ok(LogStore {
            inner: Arc::new(Inner {
                tree,
                sync_tx: Some(sync_tx),
                sync_thread: Some(sync_thread),
            }),
        })
    }

    /// Queues a waiter for the next sync of everything applied so far.
    fn queue_sync(&self, waiter: Waiter) -> Result<(), WriteError> {
        let tx = self.inner.sync_tx.as_ref().ok_or(WriteError::SyncGone)?;
        tx.send(waiter).map_err(|_| WriteError::SyncGone)
    }

    /// Applies one batch atomically and returns once it is on disk.
    async fn commit(&self, batch: sled::Batch) -> Result<(), WriteError> {
        self.inner.tree.apply_batch(batch)?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.queue_sync(Waiter::Await(tx))?;
        rx.await
            .map_err(|_| WriteError::SyncGone)?
            .map_err(WriteError::Sync)
    }

    fn get_meta<T: DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>, ReadError> {
        match self.inner.tree.get(key)? {
            Some(bytes) => Ok(Some(decode(&bytes)?)),
            None => Ok(None),
        }
    }

    fn last_entry(&self) -> Result<Option<Entry>, ReadError> {
        match self
            .inner
            .tree
            .range(log_key(0)..=log_key(u64::MAX))
            .next_back()
        {
            Some(kv) => Ok(Some(decode(&kv?.1)?)),
            None => Ok(None),
        }
    }

    /// A batch that removes every entry with an index in `lo..=hi`.
    fn removal(&self, lo: u64, hi: u64) -> Result<sled::Batch, sled::Error> {
        let mut batch = sled::Batch::default();
        for key in self.inner.tree.range(log_key(lo)..=log_key(hi)).keys() {
            batch.remove(key?);
        }
        Ok(batch)
    }
}

fn logs_error(verb: ErrorVerb, e: &(impl std::error::Error + 'static)) -> StorageError {
    StorageIOError::new(ErrorSubject::Logs, verb, openraft::AnyError::new(e)).into()
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let Some((lo, hi)) = inclusive(&range) else {
            return Ok(Vec::new());
        };
        let mut entries = Vec::new();
        for kv in self.inner.tree.range(log_key(lo)..=log_key(hi)) {
            let (key, value) = kv.map_err(|e| logs_error(ErrorVerb::Read, &e))?;
            let entry = decode(&value).map_err(|e| {
                let index = index_of(&key).unwrap_or(lo);
                StorageIOError::read_log_at_index(index, openraft::AnyError::new(&e))
            })?;
            entries.push(entry);
        }
        Ok(entries)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let last_purged_log_id: Option<LogId> = self
            .get_meta(LAST_PURGED_KEY)
            .map_err(|e| logs_error(ErrorVerb::Read, &e))?;
        let last_log_id = self
            .last_entry()
            .map_err(|e| logs_error(ErrorVerb::Read, &e))?
            .map(|entry| entry.log_id)
            .or(last_purged_log_id);
        Ok(LogState {
            last_purged_log_id,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        let write = async {
            let mut batch = sled::Batch::default();
            batch.insert(VOTE_KEY, encode(vote)?);
            self.commit(batch).await
        };
        write
            .await
            .map_err(|e| StorageIOError::write_vote(openraft::AnyError::new(&e)).into())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        self.get_meta(VOTE_KEY)
            .map_err(|e| StorageIOError::read_vote(openraft::AnyError::new(&e)).into())
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        // Not a durability point: the committed index only lets a restarted member re-apply
        // at once instead of waiting for the leader, and losing its latest value loses
        // nothing. It becomes durable with the next append's fsync (same file), which saves
        // one fsync per commit advance on every member.
        let write = async {
            let mut batch = sled::Batch::default();
            match committed {
                Some(log_id) => batch.insert(COMMITTED_KEY, encode(&log_id)?),
                None => batch.remove(COMMITTED_KEY),
            }
            self.inner.tree.apply_batch(batch)?;
            Ok::<(), WriteError>(())
        };
        write
            .await
            .map_err(|e| StorageIOError::write(openraft::AnyError::new(&e)).into())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        self.get_meta(COMMITTED_KEY)
            .map_err(|e| StorageIOError::read(openraft::AnyError::new(&e)).into())
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut batch = sled::Batch::default();
        let mut last = None;
        for entry in entries {
            let bytes = encode(&entry).map_err(|e| {
                StorageIOError::write_log_entry(entry.log_id, openraft::AnyError::new(&e))
            })?;
            batch.insert(&log_key(entry.log_id.index), bytes);
            last = Some(entry.log_id);
        }
        let Some(last) = last else {
            // Every earlier append was durable before it returned.
            callback.log_io_completed(Ok(()));
            return Ok(());
        };
        // Durable later, for many appends at once: the sync thread calls `callback` then.
        let queued = self
            .inner
            .tree
            .apply_batch(batch)
            .map_err(WriteError::from)
            .and_then(|()| self.queue_sync(Waiter::Append(callback)));
        queued.map_err(|e| {
            tracing::error!(%last, error = %e, "cannot append to the raft log");
            StorageIOError::write_logs(openraft::AnyError::new(&e)).into()
        })
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let write = async {
            let batch = self.removal(log_id.index, u64::MAX)?;
            self.commit(batch).await
        };
        write.await.map_err(|e| logs_error(ErrorVerb::Delete, &e))?;
        tracing::debug!(since = %log_id, "log truncated");
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let write = async {
            // The pointer and the removal go in one batch: a crash cannot leave entries at or
            // below the recorded last purged id.
            let mut batch = self.removal(0, log_id.index)?;
            batch.insert(LAST_PURGED_KEY, encode(&log_id)?);
            self.commit(batch).await
        };
        write.await.map_err(|e| logs_error(ErrorVerb::Delete, &e))?;
        tracing::debug!(upto = %log_id, "log purged");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_become_inclusive_and_empty_ones_vanish() {
        assert_eq!(inclusive(&(3..3)), None);
        assert_eq!(inclusive(&(3..4)), Some((3, 3)));
        assert_eq!(inclusive(&(..)), Some((0, u64::MAX)));
        assert_eq!(inclusive(&(..0)), None);
        assert_eq!(inclusive(&(5..=5)), Some((5, 5)));
        assert_eq!(
            inclusive(&(Bound::Excluded(u64::MAX), Bound::Unbounded)),
            None
        );
    }

    #[test]
    fn log_keys_sort_by_index_and_below_meta_keys() {
        assert!(log_key(255) < log_key(256));
        assert!(log_key(u64::MAX).as_slice() < VOTE_KEY);
        assert_eq!(index_of(&log_key(1234)), Some(1234));
    }
}
