//! The Raft log store: openraft's log storage over the segment log ([`super::wal`]), with one
//! thread that makes writes durable in groups.

use std::fmt::Debug;
use std::io;
use std::ops::{Bound, RangeBounds};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{ErrorSubject, ErrorVerb, OptionalSend, RaftLogReader, StorageIOError};

use super::store::StoreError;
use super::types::{Entry, LogId, StorageError, TypeConfig, Vote};
use super::wal::{self, Wal, WalError};

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

/// Why a write to the log store failed.
#[derive(Debug, thiserror::Error)]
enum WriteError {
    #[error(transparent)]
    Wal(#[from] WalError),
    #[error("fsync: {0}")]
    Sync(String),
    #[error("the log's sync thread has stopped")]
    SyncGone,
    #[error("the log's lock is poisoned: a write panicked")]
    Poisoned,
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

impl std::fmt::Debug for Waiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Waiter::Append(_) => "Waiter::Append",
            Waiter::Await(_) => "Waiter::Await",
        })
    }
}

/// Group commit: one thread makes the log durable for every write made before it started
/// syncing, and then completes all their waiters at once.
///
/// openraft 0.9 calls `append` once per client write on the leader and waits for it, so syncing
/// inside `append` would cost one fsync per entry. Instead `append` writes (to the page cache)
/// and hands the callback here; everything that queued up while the previous sync ran is
/// covered by the next one. A waiter is queued only after its write, so a sync that starts
/// after receiving it covers the write; a write in an older segment was synced when the newer
/// one was started.
fn sync_loop(wal: Arc<Mutex<Wal>>, rx: std::sync::mpsc::Receiver<Waiter>) {
    while let Ok(first) = rx.recv() {
        let mut waiters = vec![first];
        waiters.extend(rx.try_iter());
        let file = wal.lock().map(|w| w.active_file());
        let result = match file {
            Ok(file) => file.sync_data().map_err(|e| format!("fdatasync: {e}")),
            Err(_) => Err("the log's lock is poisoned".to_string()),
        };
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
    wal: Arc<Mutex<Wal>>,
    /// To the sync thread; `None` only while dropping.
    sync_tx: Option<std::sync::mpsc::Sender<Waiter>>,
    sync_thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Closing the channel ends the sync thread after it completes what is queued; joining it
        // closes the files, so the directory can be opened again at once.
        self.sync_tx.take();
        if let Some(t) = self.sync_thread.take() {
            let _ = t.join();
        }
    }
}

/// The Raft log storage. Cheap to clone; clones share the log.
#[derive(Clone, Debug)]
pub struct LogStore {
    inner: Arc<Inner>,
}

impl LogStore {
    /// Opens (or creates) the log in `dir` and replays it. Blocking.
    pub(super) fn open_blocking(dir: &Path) -> Result<Self, StoreError> {
        let wal = Arc::new(Mutex::new(Wal::open(dir)?));
        let (sync_tx, rx) = std::sync::mpsc::channel();
        let for_thread = wal.clone();
        let sync_thread = std::thread::Builder::new()
            .name("raft-log-sync".into())
            .spawn(move || sync_loop(for_thread, rx))
            .map_err(|source| StoreError::Io {
                path: dir.to_path_buf(),
                source,
            })?;
        Ok(LogStore {
            inner: Arc::new(Inner {
                wal,
                sync_tx: Some(sync_tx),
                sync_thread: Some(sync_thread),
            }),
        })
    }

    fn wal(&self) -> Result<MutexGuard<'_, Wal>, WriteError> {
        self.inner.wal.lock().map_err(|_| WriteError::Poisoned)
    }

    /// Queues a waiter for the next sync of everything written so far.
    fn queue_sync(&self, waiter: Waiter) -> Result<(), WriteError> {
        let tx = self.inner.sync_tx.as_ref().ok_or(WriteError::SyncGone)?;
        tx.send(waiter).map_err(|_| WriteError::SyncGone)
    }

    /// Makes `write` and everything before it durable, and returns once it is.
    async fn durable<T>(
        &self,
        write: impl FnOnce(&mut Wal) -> Result<T, WalError>,
    ) -> Result<T, WriteError> {
        let out = write(&mut *self.wal()?)?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.queue_sync(Waiter::Await(tx))?;
        rx.await
            .map_err(|_| WriteError::SyncGone)?
            .map_err(WriteError::Sync)?;
        Ok(out)
    }

    fn read<T>(&self, f: impl FnOnce(&Wal) -> T) -> Result<T, WriteError> {
        self.wal().map(|wal| f(&wal))
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
        // Read without holding the log: appends go on while a lagging follower is fed.
        let (runs, cached) = self
            .read(|w| w.plan_read(lo, hi))
            .map_err(|e| logs_error(ErrorVerb::Read, &e))?;
        let mut entries = wal::read(&runs).map_err(|e| logs_error(ErrorVerb::Read, &e))?;
        entries.extend(cached);
        Ok(entries)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        self.read(|w| LogState {
            last_purged_log_id: w.last_purged(),
            last_log_id: w.last_log_id(),
        })
        .map_err(|e| logs_error(ErrorVerb::Read, &e))
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        self.durable(|w| w.save_vote(vote))
            .await
            .map_err(|e| StorageIOError::write_vote(openraft::AnyError::new(&e)).into())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        self.read(|w| w.vote())
            .map_err(|e| StorageIOError::read_vote(openraft::AnyError::new(&e)).into())
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        // Not a durability point: the committed index only lets a restarted member re-apply
        // at once instead of waiting for the leader, and losing its latest value loses
        // nothing. It becomes durable with the next sync, which saves one fsync per commit
        // advance on every member.
        let write = self
            .wal()
            .and_then(|mut w| Ok(w.save_committed(committed)?));
        write.map_err(|e| StorageIOError::write(openraft::AnyError::new(&e)).into())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        self.read(|w| w.committed())
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
        let written = self.wal().and_then(|mut w| Ok(w.append(entries)?));
        match written {
            Ok(None) => {
                // Every earlier append was durable before its callback.
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            // Durable later, for many appends at once: the sync thread calls `callback` then.
            Ok(Some(last)) => self.queue_sync(Waiter::Append(callback)).map_err(|e| {
                tracing::error!(%last, error = %e, "cannot append to the raft log");
                StorageIOError::write_logs(openraft::AnyError::new(&e)).into()
            }),
            Err(e) => {
                tracing::error!(error = %e, "cannot append to the raft log");
                Err(StorageIOError::write_logs(openraft::AnyError::new(&e)).into())
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.durable(|w| w.truncate(log_id.index))
            .await
            .map_err(|e| logs_error(ErrorVerb::Delete, &e))?;
        tracing::debug!(since = %log_id, "log truncated");
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.durable(|w| w.purge(log_id))
            .await
            .map_err(|e| logs_error(ErrorVerb::Delete, &e))?;
        // Only now that the purge is durable may its entries' files go.
        let removed = self
            .wal()
            .and_then(|mut w| Ok(w.remove_purged_segments()?))
            .map_err(|e| logs_error(ErrorVerb::Delete, &e))?;
        tracing::debug!(upto = %log_id, segments_removed = removed, "log purged");
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
}
