//! The Raft log on disk: append-only segment files of framed records ([`record`]), replayed into
//! an index of where each entry lies when the log is opened. Blocking and synchronous: the caller
//! (the log store) serialises calls and decides when to fsync.
//!
//! Why not sled, which held the log before: the profile of the allocation benchmark showed a
//! quarter of the leader's CPU in sled's I/O thread pool. sled hands every buffer write to a pool
//! thread that also runs `sync_file_range` on it, so each durability point paid a disk write of
//! its own before our fsync, and a wake-up of one of seven threads. A Raft log is only ever
//! appended to, cut at its tail and purged at its head, so it needs no tree: appending is one
//! `pwrite`, durability one `fdatasync`, and the only index is a deque of positions.
//!
//! Every change is a record: entries, the vote, the committed log id, a truncation, a purge.
//! Opening replays them in order. A new segment starts with the vote, the committed log id and
//! the last purged log id as they are then, so that older segments, once every entry in them is
//! purged, can be deleted without losing anything.

pub mod record;
pub mod sled_import;

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use record::Kind;

use crate::codec::{self, CodecError, EncodeError};
use crate::raft::types::{Entry, LogId, Vote};

/// A segment grows to about this size before the next one is started.
pub const SEGMENT_BYTES: u64 = 64 * 1024 * 1024;

/// Zeros written ahead of the end of the records. An fdatasync after a write that grows the file
/// also writes the inode (its size) and the allocation bitmaps: three disk writes instead of one.
/// Writing zeros ahead makes most appends overwrites of blocks the file already has, whose
/// fdatasync is the data alone.
const PREALLOCATE_BYTES: u64 = 4 * 1024 * 1024;

/// Why the log could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum WalError {
    /// A file or directory could not be opened, read, written or synced.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What the system said.
        source: io::Error,
    },
    /// A segment that is not the newest holds bytes that are not records: damage, not a write
    /// cut short by a crash (only the newest segment is ever being written).
    #[error("{} at byte {offset}: {why}", path.display())]
    Corrupt {
        /// The segment.
        path: PathBuf,
        /// Where its records stop making sense.
        offset: u64,
        /// What is wrong there.
        why: String,
    },
    /// A record's body could not be decoded.
    #[error("{} at byte {offset}: {source}", path.display())]
    Codec {
        /// The segment.
        path: PathBuf,
        /// The record's offset.
        offset: u64,
        /// What the codec said.
        source: CodecError,
    },
    /// Another process has the log open.
    #[error("{}: the log is in use by another process ({source})", path.display())]
    Locked {
        /// The lock file.
        path: PathBuf,
        /// What flock said.
        source: io::Error,
    },
    /// A record could not be encoded.
    #[error("encoding: {0}")]
    Encode(#[from] EncodeError),
    /// Entries would not follow one another.
    #[error("entry {found} cannot follow entry {after} in the log")]
    Gap {
        /// The last index held.
        after: u64,
        /// The index offered.
        found: u64,
    },
}

/// Where an entry lies.
#[derive(Clone, Copy, Debug)]
struct Loc {
    log_id: LogId,
    segment: u64,
    offset: u64,
    size: u32,
}

/// One segment file.
#[derive(Debug)]
struct Segment {
    seq: u64,
    path: PathBuf,
    file: Arc<File>,
    /// Bytes of records written.
    len: u64,
    /// Bytes the file holds: the records, then zeros written ahead.
    allocated: u64,
    /// The highest entry index ever written here: the segment may go once it is purged.
    max_index: Option<u64>,
}

/// Entries next to each other in one file, read with one `pread`.
#[derive(Debug)]
pub struct Run {
    segment: u64,
    file: Arc<File>,
    path: PathBuf,
    offset: u64,
    len: usize,
    count: usize,
}

/// The newest entries kept decoded, at most this many bytes of them as written (and always the
/// last one). Replication reads every entry right after it is appended; reading it back from the
/// file and decoding its JSON was 8% of the leader's CPU under load.
const RECENT_BYTES: usize = 1024 * 1024;

/// The log: its segments, where each entry lies, and the vote and log pointers.
#[derive(Debug)]
pub struct Wal {
    dir: PathBuf,
    segment_bytes: u64,
    /// Oldest first; the last one is written to. Never empty once open.
    segments: VecDeque<Segment>,
    /// Entries in index order, with no gap.
    entries: VecDeque<Loc>,
    vote: Option<Vote>,
    committed: Option<LogId>,
    last_purged: Option<LogId>,
    /// The newest entries as appended, the last of them the log's last; their encoded size.
    recent: VecDeque<(Entry, u32)>,
    recent_bytes: usize,
    /// Reused for every write.
    buf: Vec<u8>,
    /// Holds the directory's lock: one process at a time.
    _lock: File,
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> WalError + '_ {
    move |source| WalError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn sync_dir(path: &Path) -> Result<(), WalError> {
    super::store::sync_dir(path).map_err(io_err(path))
}

/// Takes the directory's lock file, which the kernel releases when the process ends however it
/// ends; two processes writing one log would interleave their records.
fn lock(dir: &Path) -> Result<File, WalError> {
    use std::os::fd::AsRawFd;
    let path = dir.join("lock");
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io_err(&path))?;
    // SAFETY: flock on a descriptor this function owns; no memory is passed.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        let source = io::Error::last_os_error();
        return Err(WalError::Locked { path, source });
    }
    Ok(file)
}

fn segment_name(seq: u64) -> String {
    format!("{seq:020}.wal")
}

fn open_rw(path: &Path) -> Result<File, WalError> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(io_err(path))
}

impl Wal {
    /// Opens the log in `dir`, creating it if needed, and replays it. A write cut short at the end
    /// of the newest segment (a crash before its fsync, so never acknowledged) is cut off.
    pub fn open(dir: &Path) -> Result<Wal, WalError> {
        Self::open_with(dir, SEGMENT_BYTES)
    }

    /// [`Wal::open`] with segments of `segment_bytes` (small ones in tests).
    pub fn open_with(dir: &Path, segment_bytes: u64) -> Result<Wal, WalError> {
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        let lock = lock(dir)?;
        let mut seqs = Vec::new();
        for e in fs::read_dir(dir).map_err(io_err(dir))? {
            let name = e.map_err(io_err(dir))?.file_name();
            let seq = name
                .to_str()
                .and_then(|n| n.strip_suffix(".wal"))
                .and_then(|n| n.parse::<u64>().ok());
            seqs.extend(seq);
        }
        seqs.sort_unstable();
        let mut wal = Wal {
            dir: dir.to_path_buf(),
            segment_bytes,
            segments: VecDeque::new(),
            entries: VecDeque::new(),
            vote: None,
            committed: None,
            last_purged: None,
            recent: VecDeque::new(),
            recent_bytes: 0,
            buf: Vec::new(),
            _lock: lock,
        };
        for (i, &seq) in seqs.iter().enumerate() {
            wal.replay_segment(seq, i + 1 == seqs.len())?;
        }
        wal.check_start()?;
        if wal.segments.is_empty() {
            wal.start_segment(1)?;
        }
        Ok(wal)
    }

    fn replay_segment(&mut self, seq: u64, newest: bool) -> Result<(), WalError> {
        let path = self.dir.join(segment_name(seq));
        let bytes = fs::read(&path).map_err(io_err(&path))?;
        let corrupt = |offset: usize, why: String| WalError::Corrupt {
            path: path.clone(),
            offset: offset as u64,
            why,
        };
        if bytes.get(..record::MAGIC.len()) != Some(&record::MAGIC[..]) {
            if newest {
                // Its header is written and synced before anything else goes in it: a crash
                // while starting it left nothing in it.
                tracing::warn!(path = %path.display(), "removing a log segment whose start was cut short");
                fs::remove_file(&path).map_err(io_err(&path))?;
                return sync_dir(&self.dir);
            }
            return Err(corrupt(0, "not a log segment (bad header)".into()));
        }
        self.segments.push_back(Segment {
            seq,
            file: Arc::new(open_rw(&path)?),
            path: path.clone(),
            len: 0,
            allocated: bytes.len() as u64,
            max_index: None,
        });
        let mut offset = record::MAGIC.len();
        while offset < bytes.len() {
            let rec = match record::read(&bytes[offset..]) {
                Ok(rec) => rec,
                // The zeros written ahead of the records.
                Err(_) if bytes[offset..].iter().all(|&b| b == 0) => break,
                Err(torn) if newest => {
                    tracing::warn!(
                        path = %path.display(),
                        offset,
                        dropped_bytes = bytes.len() - offset,
                        why = %torn,
                        "cutting off the end of the log: a write the crash cut short, never acknowledged"
                    );
                    let seg = self.segments.len() - 1;
                    let file = &self.segments[seg].file;
                    file.set_len(offset as u64)
                        .and_then(|()| file.sync_all())
                        .map_err(io_err(&path))?;
                    self.segments[seg].allocated = offset as u64;
                    break;
                }
                Err(torn) => return Err(corrupt(offset, torn.to_string())),
            };
            self.replay_record(seq, offset as u64, &rec)
                .map_err(|e| match e {
                    ReplayError::Codec(source) => WalError::Codec {
                        path: path.clone(),
                        offset: offset as u64,
                        source,
                    },
                    ReplayError::Bad(why) => corrupt(offset, why),
                    ReplayError::Wal(e) => e,
                })?;
            offset += rec.size;
        }
        if let Some(seg) = self.segments.back_mut() {
            seg.len = offset as u64;
        }
        Ok(())
    }

    fn replay_record(
        &mut self,
        segment: u64,
        offset: u64,
        rec: &record::Record<'_>,
    ) -> Result<(), ReplayError> {
        match rec.kind {
            Kind::Entry => {
                let (log_id, _) = record::split_entry(rec.body)
                    .ok_or_else(|| ReplayError::Bad("an entry too short for its log id".into()))?;
                let size = u32::try_from(rec.size)
                    .map_err(|_| ReplayError::Bad("an entry over 4 GiB".into()))?;
                self.push(Loc {
                    log_id,
                    segment,
                    offset,
                    size,
                })
                .map_err(ReplayError::Wal)?;
            }
            Kind::Vote => self.vote = Some(codec::decode(rec.body)?),
            Kind::Committed => self.committed = codec::decode(rec.body)?,
            Kind::Truncate => {
                let index = rec
                    .body
                    .try_into()
                    .map(u64::from_le_bytes)
                    .map_err(|_| ReplayError::Bad("a truncation without its index".into()))?;
                self.truncate_index(index);
            }
            Kind::Purge => self.purge_index(codec::decode(rec.body)?),
        }
        Ok(())
    }

    /// After a replay, the entries start right after the last purged one: anything else means a
    /// segment went missing.
    fn check_start(&self) -> Result<(), WalError> {
        match (self.last_purged, self.entries.front()) {
            (Some(p), Some(first)) if first.log_id.index != p.index + 1 => Err(WalError::Gap {
                after: p.index,
                found: first.log_id.index,
            }),
            _ => Ok(()),
        }
    }

    /// Adds an entry at the end; an index at or below the last one replaces it and what follows
    /// (openraft truncates before it overwrites, but a crash between the two must not leave a
    /// gap in the index).
    fn push(&mut self, loc: Loc) -> Result<(), WalError> {
        let index = loc.log_id.index;
        if self.last_purged.is_some_and(|p| index <= p.index) {
            // Only in a replay: an entry purged by a record in a deleted segment.
            return Ok(());
        }
        if let Some(last) = self.entries.back().map(|l| l.log_id.index) {
            if index > last + 1 {
                return Err(WalError::Gap {
                    after: last,
                    found: index,
                });
            }
            self.truncate_index(index);
        }
        // An empty index takes any start: entries before it were purged by a record that a
        // later record (or `check_start`) accounts for.
        self.entries.push_back(loc);
        if let Some(seg) = self
            .segments
            .iter_mut()
            .rev()
            .find(|s| s.seq == loc.segment)
        {
            seg.max_index = seg.max_index.max(Some(index));
        }
        Ok(())
    }

    fn truncate_index(&mut self, index: u64) {
        while self.entries.back().is_some_and(|l| l.log_id.index >= index) {
            self.entries.pop_back();
        }
        while self
            .recent
            .back()
            .is_some_and(|(e, _)| e.log_id.index >= index)
        {
            self.pop_recent_back();
        }
    }

    fn pop_recent_back(&mut self) {
        if let Some((_, size)) = self.recent.pop_back() {
            self.recent_bytes -= size as usize;
        }
    }

    fn pop_recent_front(&mut self) {
        if let Some((_, size)) = self.recent.pop_front() {
            self.recent_bytes -= size as usize;
        }
    }

    /// Keeps `entry`, just appended, decoded for the replication that reads it next.
    fn keep_recent(&mut self, entry: Entry, size: u32) {
        self.recent_bytes += size as usize;
        self.recent.push_back((entry, size));
        while self.recent_bytes > RECENT_BYTES && self.recent.len() > 1 {
            self.pop_recent_front();
        }
    }

    fn purge_index(&mut self, log_id: LogId) {
        while self
            .entries
            .front()
            .is_some_and(|l| l.log_id.index <= log_id.index)
        {
            self.entries.pop_front();
        }
        while self
            .recent
            .front()
            .is_some_and(|(e, _)| e.log_id.index <= log_id.index)
        {
            self.pop_recent_front();
        }
        if self.last_purged.is_none_or(|p| p.index < log_id.index) {
            self.last_purged = Some(log_id);
        }
    }

    fn active(&self) -> &Segment {
        // Invariant: `open` leaves at least one segment and none is removed but older ones.
        &self.segments[self.segments.len() - 1]
    }

    /// The file a sync must cover: everything written before a newer segment was started was
    /// synced then.
    pub fn active_file(&self) -> Arc<File> {
        self.active().file.clone()
    }

    /// Starts segment `seq`: its header and the vote and pointers as they are, durable before it
    /// is written to.
    fn start_segment(&mut self, seq: u64) -> Result<(), WalError> {
        let path = self.dir.join(segment_name(seq));
        let mut buf = record::MAGIC.to_vec();
        self.checkpoint(&mut buf)?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(io_err(&path))?;
        file.write_all_at(&buf, 0)
            .and_then(|()| file.sync_data())
            .map_err(io_err(&path))?;
        sync_dir(&self.dir)?;
        self.segments.push_back(Segment {
            seq,
            path,
            file: Arc::new(file),
            len: buf.len() as u64,
            allocated: buf.len() as u64,
            max_index: None,
        });
        Ok(())
    }

    fn checkpoint(&self, buf: &mut Vec<u8>) -> Result<(), WalError> {
        if let Some(vote) = &self.vote {
            put_encoded(buf, Kind::Vote, vote)?;
        }
        if let Some(purged) = &self.last_purged {
            put_encoded(buf, Kind::Purge, purged)?;
        }
        put_encoded(buf, Kind::Committed, &self.committed)
    }

    /// Moves to a new segment when the active one is full; the full one is synced first, so a
    /// sync of the active file covers everything written before it.
    fn roll_if_full(&mut self) -> Result<(), WalError> {
        let active = self.active();
        if active.len < self.segment_bytes {
            return Ok(());
        }
        active.file.sync_data().map_err(io_err(&active.path))?;
        let next = active.seq + 1;
        self.start_segment(next)
    }

    /// Writes `self.buf` at the end of the active segment; returns where it starts.
    fn write_buf(&mut self) -> Result<u64, WalError> {
        let last = self.segments.len() - 1;
        let seg = &mut self.segments[last];
        let at = seg.len;
        seg.file
            .write_all_at(&self.buf, at)
            .map_err(io_err(&seg.path))?;
        seg.len += self.buf.len() as u64;
        if seg.len > seg.allocated {
            let ahead = usize::try_from(PREALLOCATE_BYTES).unwrap_or(usize::MAX);
            seg.file
                .write_all_at(&vec![0; ahead], seg.len)
                .map_err(io_err(&seg.path))?;
            seg.allocated = seg.len + PREALLOCATE_BYTES;
        }
        Ok(at)
    }

    /// Writes what `fill` puts in the buffer at the end of the log, starting a new segment first
    /// if the active one is full.
    fn write(
        &mut self,
        fill: impl FnOnce(&mut Vec<u8>) -> Result<(), WalError>,
    ) -> Result<(), WalError> {
        self.roll_if_full()?;
        self.buf.clear();
        fill(&mut self.buf)?;
        self.write_buf().map(drop)
    }

    fn write_record<T: serde::Serialize>(&mut self, kind: Kind, body: &T) -> Result<(), WalError> {
        self.write(|buf| put_encoded(buf, kind, body))
    }

    /// Writes `entries` at the end of the log (not yet durable). Returns the last one's id.
    pub fn append(
        &mut self,
        entries: impl IntoIterator<Item = Entry>,
    ) -> Result<Option<LogId>, WalError> {
        self.roll_if_full()?;
        self.buf.clear();
        let mut placed = Vec::new();
        for entry in entries {
            let start = record::begin(&mut self.buf, Kind::Entry);
            self.buf
                .extend_from_slice(&record::log_id_bytes(&entry.log_id));
            codec::encode_into(&mut self.buf, &entry)?;
            record::finish(&mut self.buf, start);
            // A batch is at most a few MiB (see `record::finish`).
            let size = u32::try_from(self.buf.len() - start).unwrap_or(u32::MAX);
            placed.push((entry, start, size));
        }
        let Some(last) = placed.last().map(|(e, _, _)| e.log_id) else {
            return Ok(None);
        };
        let base = self.write_buf()?;
        let segment = self.active().seq;
        for (entry, start, size) in placed {
            self.push(Loc {
                log_id: entry.log_id,
                segment,
                offset: base + start as u64,
                size,
            })?;
            self.keep_recent(entry, size);
        }
        Ok(Some(last))
    }

    /// Records the vote (not yet durable).
    pub fn save_vote(&mut self, vote: &Vote) -> Result<(), WalError> {
        self.write_record(Kind::Vote, vote)?;
        self.vote = Some(*vote);
        Ok(())
    }

    /// Records the committed log id (durable with the next sync).
    pub fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), WalError> {
        self.write_record(Kind::Committed, &committed)?;
        self.committed = committed;
        Ok(())
    }

    /// Removes the entries from `index` on (not yet durable).
    pub fn truncate(&mut self, index: u64) -> Result<(), WalError> {
        self.write(|buf| {
            record::put(buf, Kind::Truncate, &[&index.to_le_bytes()]);
            Ok(())
        })?;
        self.truncate_index(index);
        Ok(())
    }

    /// Removes the entries up to `log_id` (not yet durable); [`Wal::remove_purged_segments`]
    /// deletes the files once this is synced.
    pub fn purge(&mut self, log_id: LogId) -> Result<(), WalError> {
        self.write_record(Kind::Purge, &log_id)?;
        self.purge_index(log_id);
        Ok(())
    }

    /// Deletes the oldest segments whose every entry is purged. Call only once the purge record
    /// is durable: a replay must never find the entries gone and their purge not recorded.
    pub fn remove_purged_segments(&mut self) -> Result<usize, WalError> {
        let purged = self.last_purged.map(|p| p.index);
        let mut removed = 0;
        while self.segments.len() > 1
            && self.segments[0]
                .max_index
                .is_none_or(|m| purged.is_some_and(|p| m <= p))
        {
            if let Some(seg) = self.segments.pop_front() {
                fs::remove_file(&seg.path).map_err(io_err(&seg.path))?;
                removed += 1;
            }
        }
        if removed > 0 {
            sync_dir(&self.dir)?;
        }
        Ok(removed)
    }

    /// The vote.
    pub fn vote(&self) -> Option<Vote> {
        self.vote
    }

    /// The committed log id last recorded.
    pub fn committed(&self) -> Option<LogId> {
        self.committed
    }

    /// The last purged log id.
    pub fn last_purged(&self) -> Option<LogId> {
        self.last_purged
    }

    /// The last entry's id, or the last purged one when no entry is left.
    pub fn last_log_id(&self) -> Option<LogId> {
        self.entries.back().map(|l| l.log_id).or(self.last_purged)
    }

    /// The entries with indexes in `lo..=hi`: those kept decoded, cloned, and where the older
    /// ones lie, to read with [`read`] without holding the log.
    pub fn plan_read(&self, lo: u64, hi: u64) -> (Vec<Run>, Vec<Entry>) {
        let cached_from = self
            .recent
            .front()
            .map_or(u64::MAX, |(e, _)| e.log_id.index);
        let runs = if lo < cached_from {
            self.locate(lo, hi.min(cached_from.saturating_sub(1)))
        } else {
            Vec::new()
        };
        let cached = self
            .recent
            .iter()
            .map(|(e, _)| e)
            .filter(|e| (lo..=hi).contains(&e.log_id.index))
            .cloned()
            .collect();
        (runs, cached)
    }

    /// Where the entries with indexes in `lo..=hi` lie, to read with [`read`] without holding
    /// the log.
    fn locate(&self, lo: u64, hi: u64) -> Vec<Run> {
        let (Some(first), Some(last)) = (self.entries.front(), self.entries.back()) else {
            return Vec::new();
        };
        let (first, last) = (first.log_id.index, last.log_id.index);
        let (lo, hi) = (lo.max(first), hi.min(last));
        if lo > hi {
            return Vec::new();
        }
        // Indexes are contiguous from `first`, and both ends lie within the deque.
        let (from, to) = ((lo - first) as usize, (hi - first) as usize);
        let mut runs: Vec<Run> = Vec::new();
        for loc in self.entries.range(from..=to) {
            if let Some(run) = runs.last_mut() {
                if run.segment == loc.segment && run.offset + run.len as u64 == loc.offset {
                    run.len += loc.size as usize;
                    run.count += 1;
                    continue;
                }
            }
            let Some(seg) = self.segments.iter().find(|s| s.seq == loc.segment) else {
                continue;
            };
            runs.push(Run {
                segment: seg.seq,
                file: seg.file.clone(),
                path: seg.path.clone(),
                offset: loc.offset,
                len: loc.size as usize,
                count: 1,
            });
        }
        runs
    }
}

/// Appends a record of `kind` whose body is `value` in `crate::codec`.
fn put_encoded<T: serde::Serialize>(
    buf: &mut Vec<u8>,
    kind: Kind,
    value: &T,
) -> Result<(), WalError> {
    let start = record::begin(buf, kind);
    codec::encode_into(buf, value)?;
    record::finish(buf, start);
    Ok(())
}

/// Why a record could not be replayed.
enum ReplayError {
    Codec(CodecError),
    Bad(String),
    Wal(WalError),
}

impl From<CodecError> for ReplayError {
    fn from(e: CodecError) -> Self {
        ReplayError::Codec(e)
    }
}

/// Reads the entries of `runs` (from [`Wal::locate`]).
pub fn read(runs: &[Run]) -> Result<Vec<Entry>, WalError> {
    let mut entries = Vec::with_capacity(runs.iter().map(|r| r.count).sum());
    let mut buf = Vec::new();
    for run in runs {
        buf.resize(run.len, 0);
        run.file
            .read_exact_at(&mut buf, run.offset)
            .map_err(io_err(&run.path))?;
        let mut at = 0;
        for _ in 0..run.count {
            let offset = run.offset + at as u64;
            let corrupt = |why: String| WalError::Corrupt {
                path: run.path.clone(),
                offset,
                why,
            };
            let rec = record::read(&buf[at..]).map_err(|t| corrupt(t.to_string()))?;
            let (_, bytes) = record::split_entry(rec.body)
                .filter(|_| rec.kind == Kind::Entry)
                .ok_or_else(|| corrupt("not an entry where the index says one is".into()))?;
            entries.push(codec::decode(bytes).map_err(|source| WalError::Codec {
                path: run.path.clone(),
                offset,
                source,
            })?);
            at += rec.size;
        }
    }
    Ok(entries)
}

#[cfg(test)]
mod tests;
