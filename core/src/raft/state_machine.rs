//! The state machine: [`ControllerState`] in memory, made durable by snapshot files.
//!
//! `apply` writes nothing to disk. A restarted member loads the newest snapshot and openraft
//! re-applies the committed log after it (the log store keeps the committed log id).
//!
//! A snapshot is one file `<dir>/snap-<id>.bin` holding its metadata and the state as records
//! ([`crate::codec::snapshot`]); the same bytes are what a leader sends to a follower. Snapshots
//! are streamed: a build writes the state straight into its file, a leader sends chunks read from
//! that file, a follower writes the chunks it receives into a file and decodes the state as it
//! reads it back. No snapshot is ever held whole in memory beside the state it holds.

use std::io::{self, Seek};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use openraft::storage::RaftStateMachine;
use openraft::{EntryPayload, OptionalSend, RaftSnapshotBuilder, StorageIOError};
use tokio::sync::{watch, Mutex};

use super::command::{Command, Response};
use super::state::{ControllerState, SharedState};
use super::store::{sync_dir, StoreError};
use super::types::{
    Entry, LogId, Snapshot, SnapshotMeta, StorageError, StoredMembership, TypeConfig,
};
use crate::codec::snapshot::{self, SnapshotError};

const SNAPSHOT_PREFIX: &str = "snap-";
const SNAPSHOT_SUFFIX: &str = ".bin";
const TEMP_SUFFIX: &str = ".tmp";
/// A snapshot being received is written to `receiving-<nanos>.tmp`.
const RECEIVING_PREFIX: &str = "receiving-";

/// Where the applied state stands: always changed together with the state, under its write lock.
#[derive(Clone, Debug, Default)]
struct Applied {
    last_applied: Option<LogId>,
    last_membership: StoredMembership,
    /// Commands applied since the last snapshot was built or installed (a batched entry counts
    /// each of its commands), so the snapshot policy follows the work a restart would replay
    /// rather than the number of log entries, which batching makes up to 128 times smaller.
    commands_since_snapshot: u64,
    /// A snapshot was asked for and not yet built: ask only once.
    snapshot_requested: bool,
}

#[derive(Debug)]
struct Inner {
    state: SharedState,
    /// Locked only while holding `state`, so a snapshot sees both at the same point.
    applied: Mutex<Applied>,
    applied_tx: watch::Sender<Option<LogId>>,
    snapshots: SnapshotDir,
    /// Ask for a snapshot after this many applied commands (0: never ask).
    snapshot_every: AtomicU64,
    /// Bumped each time a snapshot is due; the member triggers one on Raft.
    snapshot_due: watch::Sender<u64>,
}

/// The Raft state machine. Cheap to clone; clones share the state (a clone is the snapshot
/// builder).
#[derive(Clone, Debug)]
pub struct StateMachineStore {
    inner: Arc<Inner>,
}

impl StateMachineStore {
    /// Opens the snapshot directory and rebuilds the state from its newest valid snapshot.
    /// Blocking.
    pub(super) fn open_blocking(dir: &Path) -> Result<Self, StoreError> {
        let (snapshots, newest) = SnapshotDir::open(dir)?;
        let (state, applied) = match newest {
            Some((meta, state)) => {
                tracing::info!(snapshot = %meta, "state machine restored from snapshot");
                let applied = Applied {
                    last_applied: meta.last_log_id,
                    last_membership: meta.last_membership,
                    ..Applied::default()
                };
                (state, applied)
            }
            None => (ControllerState::default(), Applied::default()),
        };
        let (applied_tx, _) = watch::channel(applied.last_applied);
        let (snapshot_due, _) = watch::channel(0);
        Ok(StateMachineStore {
            inner: Arc::new(Inner {
                state: Arc::new(tokio::sync::RwLock::new(state)),
                applied: Mutex::new(applied),
                applied_tx,
                snapshots,
                snapshot_every: AtomicU64::new(0),
                snapshot_due,
            }),
        })
    }

    /// The applied state, for readers (the admin API, metrics). Only the state machine writes it.
    pub fn state(&self) -> SharedState {
        Arc::clone(&self.inner.state)
    }

    /// The id of the last applied log entry, updated after every applied batch and snapshot
    /// install.
    pub fn applied(&self) -> watch::Receiver<Option<LogId>> {
        self.inner.applied_tx.subscribe()
    }

    /// Asks for a snapshot (through [`Self::snapshot_due`]) once `commands` commands have been
    /// applied since the last one, or a quarter of the allocations held if that is more: the
    /// log a restart replays stays bounded, and the cost of rewriting a large state stays a
    /// constant share of the work applied. 0 never asks.
    pub fn snapshot_after(&self, commands: u64) {
        self.inner.snapshot_every.store(commands, Ordering::Relaxed);
    }

    /// Changes each time a snapshot is due by [`Self::snapshot_after`]'s count.
    pub fn snapshot_due(&self) -> watch::Receiver<u64> {
        self.inner.snapshot_due.subscribe()
    }
}

/// How many state changes a log entry's command carries.
fn command_count(command: &Command) -> u64 {
    match command {
        Command::Batch { commands } => commands.iter().map(command_count).sum(),
        _ => 1,
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachineStore {
    async fn build_snapshot(&mut self) -> Result<Snapshot, StorageError> {
        // Owned, so the serialisation can run on a blocking thread rather than stall one of
        // the runtime's few workers (Raft heartbeats run there) for as long as it takes.
        let state = Arc::clone(&self.inner.state).read_owned().await;
        let meta = {
            let mut applied = self.inner.applied.lock().await;
            // Counted from the point this snapshot captures: what is applied after the locks
            // are released counts towards the next one.
            applied.commands_since_snapshot = 0;
            applied.snapshot_requested = false;
            SnapshotMeta {
                last_log_id: applied.last_applied,
                last_membership: applied.last_membership.clone(),
                snapshot_id: new_snapshot_id(applied.last_applied),
            }
            // `applied` changes only with the state, which stays read-locked until the file is
            // written.
        };
        // Serialised from the state straight into the file, under the read lock (writes wait,
        // as they did when the state was copied instead): no second copy of the state and no
        // buffer of the whole snapshot while it is locked.
        let temp = self.inner.snapshots.temp_path(&meta);
        let written = {
            let meta = meta.clone();
            tokio::task::spawn_blocking(move || write_snapshot_file(&temp, &meta, &state))
                .await
                .map_err(io::Error::other)
                .and_then(|r| r)
        };
        let size = written.map_err(|e| write_error(&meta, e))?;
        self.inner.snapshots.commit_built(&meta).await?;
        tracing::info!(snapshot = %meta, size, "snapshot built");
        // openraft uses only the metadata of a build, but the type wants data too: the file, or
        // no bytes when a newer snapshot superseded this build and its file is gone.
        let snapshot = match self.inner.snapshots.current().await? {
            Some(s) if s.meta == meta => s.snapshot,
            _ => Box::new(
                tokio::fs::File::open("/dev/null")
                    .await
                    .map_err(|e| write_error(&meta, e))?,
            ),
        };
        Ok(Snapshot { meta, snapshot })
    }
}

fn write_error(meta: &SnapshotMeta, e: io::Error) -> StorageError {
    StorageIOError::write_snapshot(Some(meta.signature()), openraft::AnyError::new(&e)).into()
}

impl RaftStateMachine<TypeConfig> for StateMachineStore {
    type SnapshotBuilder = StateMachineStore;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        let applied = self.inner.applied.lock().await;
        Ok((applied.last_applied, applied.last_membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Response>, StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut state = self.inner.state.write().await;
        let mut applied = self.inner.applied.lock().await;
        let responses: Vec<Response> = entries
            .into_iter()
            .map(|entry| {
                applied.last_applied = Some(entry.log_id);
                match entry.payload {
                    EntryPayload::Blank => Response::None,
                    EntryPayload::Normal(command) => {
                        applied.commands_since_snapshot += command_count(&command);
                        state.apply(command)
                    }
                    EntryPayload::Membership(membership) => {
                        state.note_members(membership.nodes().map(|(id, _)| *id));
                        applied.last_membership =
                            StoredMembership::new(Some(entry.log_id), membership);
                        Response::None
                    }
                }
            })
            .collect();
        let last = applied.last_applied;
        let every = self.inner.snapshot_every.load(Ordering::Relaxed);
        let threshold = every.max(state.allocator.allocation_count() as u64 / 4);
        let due = every > 0
            && !applied.snapshot_requested
            && applied.commands_since_snapshot >= threshold;
        if due {
            applied.snapshot_requested = true;
        }
        drop(applied);
        drop(state);
        self.inner.applied_tx.send_replace(last);
        if due {
            self.inner
                .snapshot_due
                .send_modify(|n| *n = n.wrapping_add(1));
        }
        Ok(responses)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<tokio::fs::File>, StorageError> {
        let file = self
            .inner
            .snapshots
            .begin_receiving()
            .await
            .map_err(|e| StorageIOError::write_snapshot(None, openraft::AnyError::new(&e)))?;
        Ok(Box::new(file))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<tokio::fs::File>,
    ) -> Result<(), StorageError> {
        let read_error = |e: &(dyn std::error::Error + 'static)| -> StorageError {
            StorageIOError::read_snapshot(
                Some(meta.signature()),
                openraft::AnyError::from_dyn(e, None),
            )
            .into()
        };
        let mut file = *snapshot;
        // The last chunk's write may still be under way on tokio's blocking pool.
        tokio::io::AsyncWriteExt::flush(&mut file)
            .await
            .map_err(|e| read_error(&e))?;
        let file = file.into_std().await;
        let decoded = tokio::task::spawn_blocking(move || {
            let mut file = file;
            file.rewind()?;
            snapshot::decode_reader(io::BufReader::with_capacity(1 << 16, file))
        })
        .await
        .map_err(|e| read_error(&e))?;
        let (sent_meta, state) = decoded.map_err(|e| read_error(&e))?;
        if &sent_meta != meta {
            return Err(read_error(&SnapshotMismatch {
                expected: meta.to_string(),
                found: sent_meta.to_string(),
            }));
        }
        // On disk before in memory: a crash in between restarts from this snapshot anyway.
        self.inner.snapshots.install_received(meta).await?;
        {
            let mut current = self.inner.state.write().await;
            let mut applied = self.inner.applied.lock().await;
            *current = state;
            *applied = Applied {
                last_applied: meta.last_log_id,
                last_membership: meta.last_membership.clone(),
                ..Applied::default()
            };
        }
        self.inner.applied_tx.send_replace(meta.last_log_id);
        tracing::info!(snapshot = %meta, "snapshot installed");
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, StorageError> {
        self.inner.snapshots.current().await
    }
}

/// The metadata inside a received snapshot differs from what the leader said it sent.
#[derive(Debug, thiserror::Error)]
#[error("snapshot data is {found}, expected {expected}")]
struct SnapshotMismatch {
    expected: String,
    found: String,
}

/// Unique enough that two builds at the same log id get different ids, as openraft asks.
fn new_snapshot_id(last: Option<LogId>) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    match last {
        Some(l) => format!(
            "{}-{}-{}-{nanos:x}",
            l.leader_id.term, l.leader_id.node_id, l.index
        ),
        None => format!("none-{nanos:x}"),
    }
}

/// Whether a newer snapshot than `meta` is already current, and the file to keep: the current
/// one if so, else `meta`'s.
fn superseded_and_kept(current: Option<&SnapshotMeta>, meta: &SnapshotMeta) -> (bool, String) {
    match current {
        Some(c) if c.last_log_id > meta.last_log_id => (true, file_name(&c.snapshot_id)),
        _ => (false, file_name(&meta.snapshot_id)),
    }
}

/// The snapshot file name for an id. Ids come from the leader, so anything but a plain file name
/// character is replaced.
pub(super) fn file_name(snapshot_id: &str) -> String {
    let safe: String = snapshot_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{SNAPSHOT_PREFIX}{safe}{SNAPSHOT_SUFFIX}")
}

/// The directory of snapshot files and which one is current.
#[derive(Debug)]
struct SnapshotDir {
    dir: PathBuf,
    /// Held across a whole save so that a build finishing late cannot replace or delete a newer
    /// snapshot installed meanwhile.
    current: Mutex<Option<SnapshotMeta>>,
    /// The file the snapshot being received is written to.
    receiving: Mutex<Option<PathBuf>>,
}

impl SnapshotDir {
    /// Opens the directory, drops leftovers of interrupted writes, and returns the newest snapshot
    /// that decodes.
    fn open(dir: &Path) -> Result<(Self, Option<(SnapshotMeta, ControllerState)>), StoreError> {
        let io = |source| StoreError::Io {
            path: dir.to_path_buf(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        let mut newest: Option<(SnapshotMeta, ControllerState)> = None;
        for entry in std::fs::read_dir(dir).map_err(io)? {
            let path = entry.map_err(io)?.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            if name.ends_with(TEMP_SUFFIX) {
                tracing::info!(path = %path.display(), "removing an unfinished snapshot");
                if let Err(e) = std::fs::remove_file(&path) {
                    tracing::warn!(path = %path.display(), error = %e, "cannot remove");
                }
                continue;
            }
            if !(name.starts_with(SNAPSHOT_PREFIX) && name.ends_with(SNAPSHOT_SUFFIX)) {
                continue;
            }
            match read_snapshot_file(&path) {
                Ok((meta, state)) => {
                    let newer = newest
                        .as_ref()
                        .is_none_or(|(best, _)| meta.last_log_id > best.last_log_id);
                    if newer {
                        newest = Some((meta, state));
                    }
                }
                Err(e) => {
                    tracing::error!(path = %path.display(), error = %e, "skipping a snapshot that cannot be read");
                }
            }
        }
        sync_dir(dir).map_err(io)?;
        let current = newest.as_ref().map(|(meta, _)| meta.clone());
        let snapshots = SnapshotDir {
            dir: dir.to_path_buf(),
            current: Mutex::new(current),
            receiving: Mutex::new(None),
        };
        Ok((snapshots, newest))
    }

    /// A new file to receive a snapshot into; one given out before is dropped (openraft starts
    /// over when the leader sends another snapshot).
    async fn begin_receiving(&self) -> io::Result<tokio::fs::File> {
        let mut receiving = self.receiving.lock().await;
        if let Some(old) = receiving.take() {
            let _ = tokio::fs::remove_file(&old).await;
        }
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let path = self
            .dir
            .join(format!("{RECEIVING_PREFIX}{nanos:x}{TEMP_SUFFIX}"));
        let file = tokio::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .await?;
        *receiving = Some(path);
        Ok(file)
    }

    /// Makes the snapshot received into the file of [`Self::begin_receiving`] durable and current
    /// (fsync, rename, fsync of the directory), and deletes the others.
    async fn install_received(&self, meta: &SnapshotMeta) -> Result<(), StorageError> {
        let received =
            self.receiving.lock().await.take().ok_or_else(|| {
                write_error(meta, io::Error::other("no snapshot is being received"))
            })?;
        self.make_current(meta, received).await
    }

    /// Where a built snapshot is written before [`Self::commit_built`] makes it current.
    fn temp_path(&self, meta: &SnapshotMeta) -> PathBuf {
        self.dir
            .join(format!("{}{TEMP_SUFFIX}", file_name(&meta.snapshot_id)))
    }

    /// Makes the temporary file at [`Self::temp_path`] durable and current.
    async fn commit_built(&self, meta: &SnapshotMeta) -> Result<(), StorageError> {
        self.make_current(meta, self.temp_path(meta)).await
    }

    /// Makes the snapshot written to `source` durable and current (fsync, rename to its name,
    /// fsync of the directory), unless a newer snapshot is current (then `source` goes); then
    /// deletes the others.
    async fn make_current(&self, meta: &SnapshotMeta, source: PathBuf) -> Result<(), StorageError> {
        let mut current = self.current.lock().await;
        let dir = self.dir.clone();
        let name = file_name(&meta.snapshot_id);
        // Only a build can be superseded: a snapshot is installed only when it is ahead of
        // everything applied here, and so of every build.
        let (superseded, keep) = superseded_and_kept(current.as_ref(), meta);
        tokio::task::spawn_blocking(move || -> io::Result<()> {
            if superseded {
                std::fs::remove_file(&source)?;
            } else {
                std::fs::File::open(&source)?.sync_all()?;
                std::fs::rename(&source, dir.join(&name))?;
                sync_dir(&dir)?;
            }
            remove_all_but(&dir, &keep);
            Ok(())
        })
        .await
        .map_err(|e| write_error(meta, io::Error::other(e)))?
        .map_err(|e| write_error(meta, e))?;
        if superseded {
            tracing::info!(snapshot = %meta, "dropping a snapshot older than the current one");
        } else {
            *current = Some(meta.clone());
        }
        Ok(())
    }

    async fn current(&self) -> Result<Option<Snapshot>, StorageError> {
        let current = self.current.lock().await;
        let Some(meta) = current.as_ref() else {
            return Ok(None);
        };
        let path = self.dir.join(file_name(&meta.snapshot_id));
        // Held open, the file stays readable even if a newer snapshot replaces it meanwhile.
        let file = tokio::fs::File::open(&path).await.map_err(|e| {
            StorageIOError::read_snapshot(Some(meta.signature()), openraft::AnyError::new(&e))
        })?;
        Ok(Some(Snapshot {
            meta: meta.clone(),
            snapshot: Box::new(file),
        }))
    }
}

/// Why a snapshot file could not be loaded.
#[derive(Debug, thiserror::Error)]
enum LoadError {
    #[error(transparent)]
    Io(#[from] io::Error),
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
}

fn read_snapshot_file(path: &Path) -> Result<(SnapshotMeta, ControllerState), LoadError> {
    let bytes = std::fs::read(path)?;
    Ok(snapshot::decode(&bytes)?)
}

/// Writes a snapshot of `state` to `path` (not synced yet: [`SnapshotDir::commit_built`] does
/// that); returns its size. Blocking.
fn write_snapshot_file(
    path: &Path,
    meta: &SnapshotMeta,
    state: &ControllerState,
) -> io::Result<u64> {
    let file = std::fs::File::create(path)?;
    let mut out = io::BufWriter::with_capacity(1 << 16, file);
    snapshot::encode_to(&mut out, meta, state).map_err(io::Error::other)?;
    let file = out.into_inner().map_err(|e| e.into_error())?;
    Ok(file.metadata()?.len())
}

/// Best effort: a file left behind is ignored or removed at the next open or save.
fn remove_all_but(dir: &Path, keep: &str) {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) => {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot list old snapshots");
            return;
        }
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name != keep && name.starts_with(SNAPSHOT_PREFIX) {
            if let Err(e) = std::fs::remove_file(entry.path()) {
                tracing::warn!(file = name, error = %e, "cannot remove an old snapshot");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_are_plain() {
        assert_eq!(file_name("1-2-3-ff"), "snap-1-2-3-ff.bin");
        assert_eq!(file_name("../x/y"), "snap-___x_y.bin");
    }
}
