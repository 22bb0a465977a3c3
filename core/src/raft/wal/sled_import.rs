//! A one-time import of a Raft log kept in sled (every release before the segment log) into the
//! segment log, so that an upgraded member keeps its vote, its pointers and every entry.
//!
//! sled's layout was one tree, `raft`: entries under `l` and the big-endian index, the vote,
//! the committed log id and the last purged log id under `m/vote`, `m/committed` and
//! `m/last_purged`, each value in `crate::codec` (any format it reads).
//!
//! The import writes the new log beside the old one, makes it durable, renames it into place,
//! and only then removes sled's directory; a crash at any point leaves either the old log alone
//! (imported again on the next start) or the new one complete.

use std::fs;
use std::path::Path;

use super::{sync_dir, Wal, WalError};
use crate::codec::{self, CodecError};
use crate::raft::types::{Entry, LogId, Vote};

/// Why the sled log could not be imported.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// sled refused to open its database.
    #[error("sled database in {}: {source}", path.display())]
    Sled {
        /// sled's directory.
        path: std::path::PathBuf,
        /// What sled said.
        source: sled::Error,
    },
    /// A value in sled is not what its key says.
    #[error("sled database in {}, key {key}: {source}", path.display())]
    Codec {
        /// sled's directory.
        path: std::path::PathBuf,
        /// The key.
        key: String,
        /// What the codec said.
        source: CodecError,
    },
    /// Writing the new log failed.
    #[error(transparent)]
    Wal(#[from] WalError),
}

/// What sled held.
struct Old {
    vote: Option<Vote>,
    committed: Option<LogId>,
    last_purged: Option<LogId>,
    entries: Vec<Entry>,
}

fn read_sled(dir: &Path) -> Result<Old, ImportError> {
    let sled_err = |source| ImportError::Sled {
        path: dir.to_path_buf(),
        source,
    };
    let db = sled::Config::new()
        .path(dir)
        .cache_capacity(8 * 1024 * 1024)
        .open()
        .map_err(sled_err)?;
    let tree = db.open_tree("raft").map_err(sled_err)?;
    fn decode_at<T: serde::de::DeserializeOwned>(
        dir: &Path,
        key: &[u8],
        bytes: &[u8],
    ) -> Result<T, ImportError> {
        codec::decode(bytes).map_err(|source| ImportError::Codec {
            path: dir.to_path_buf(),
            key: String::from_utf8_lossy(key).into_owned(),
            source,
        })
    }
    let meta =
        |key: &[u8]| -> Result<Option<sled::IVec>, ImportError> { tree.get(key).map_err(sled_err) };
    let vote = meta(b"m/vote")?
        .map(|v| decode_at(dir, b"m/vote", &v))
        .transpose()?;
    let committed = meta(b"m/committed")?
        .map(|v| decode_at(dir, b"m/committed", &v))
        .transpose()?;
    let last_purged = meta(b"m/last_purged")?
        .map(|v| decode_at(dir, b"m/last_purged", &v))
        .transpose()?;
    let mut entries = Vec::new();
    for kv in tree.scan_prefix(b"l") {
        let (key, value) = kv.map_err(sled_err)?;
        entries.push(decode_at(dir, &key, &value)?);
    }
    Ok(Old {
        vote,
        committed,
        last_purged,
        entries,
    })
}

/// Imports the sled log in `sled_dir`, if there is one, into the segment log in `wal_dir`.
/// Returns the number of entries imported, or `None` when there was nothing to import.
pub fn import(sled_dir: &Path, wal_dir: &Path) -> Result<Option<usize>, ImportError> {
    if !sled_dir.join("db").exists() {
        return Ok(None);
    }
    let parent = wal_dir.parent().unwrap_or(Path::new("."));
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| WalError::Io { path, source }
    };
    if wal_dir.exists() {
        // The rename is the import's commit point: the new log is complete, and only the old
        // one's removal was cut short.
        fs::remove_dir_all(sled_dir).map_err(io(sled_dir))?;
        sync_dir(parent)?;
        return Ok(None);
    }
    let old = read_sled(sled_dir)?;
    let staging = parent.join("wal.importing");
    if staging.exists() {
        fs::remove_dir_all(&staging).map_err(io(&staging))?;
    }
    let mut wal = Wal::open(&staging)?;
    if let Some(vote) = &old.vote {
        wal.save_vote(vote)?;
    }
    if let Some(purged) = old.last_purged {
        wal.purge(purged)?;
    }
    let count = old.entries.len();
    wal.append(old.entries)?;
    wal.save_committed(old.committed)?;
    let file = wal.active_file();
    file.sync_data().map_err(io(&staging))?;
    drop(wal);
    sync_dir(&staging)?;
    fs::rename(&staging, wal_dir).map_err(io(wal_dir))?;
    sync_dir(parent)?;
    fs::remove_dir_all(sled_dir).map_err(io(sled_dir))?;
    sync_dir(parent)?;
    tracing::info!(
        entries = count,
        from = %sled_dir.display(),
        to = %wal_dir.display(),
        "imported the raft log from sled"
    );
    Ok(Some(count))
}
