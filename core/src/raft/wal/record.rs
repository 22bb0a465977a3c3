//! The framing of the Raft log's files: a segment header, then records, each with its length and
//! a CRC-32 so that a write cut short by a crash is told from data. Pure: bytes in, bytes out.
//!
//! ```text
//! segment: MAGIC (8 bytes) record*
//! record:  length u32 LE | crc32 u32 LE | kind u8 | body (length - 1 bytes)
//! ```
//!
//! `length` counts the kind byte and the body; the CRC covers the same bytes. An entry's body
//! starts with its log id in binary (term, leader node, index, little-endian), so that opening
//! the log needs no decoding of the entries themselves.

use crate::raft::types::LogId;

/// The first bytes of every segment file: "ironlb WAL", format 1.
pub const MAGIC: [u8; 8] = *b"ILBWAL01";

/// Bytes before a record's kind: its length and its CRC.
pub const HEADER: usize = 8;

/// Bytes of an entry's binary log id at the start of its body.
pub const LOG_ID: usize = 24;

/// What a record holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A log entry: its binary log id, then the entry in `crate::codec`.
    Entry = 1,
    /// The vote, in `crate::codec`.
    Vote = 2,
    /// The committed log id (`Option<LogId>`), in `crate::codec`.
    Committed = 3,
    /// Entries from this index on (u64 LE) are gone.
    Truncate = 4,
    /// Entries up to and including this log id (in `crate::codec`) are purged.
    Purge = 5,
}

impl Kind {
    fn from_byte(b: u8) -> Option<Kind> {
        Some(match b {
            1 => Kind::Entry,
            2 => Kind::Vote,
            3 => Kind::Committed,
            4 => Kind::Truncate,
            5 => Kind::Purge,
            _ => return None,
        })
    }
}

/// Starts a record of `kind` at the end of `out`; write its body, then call [`finish`].
pub fn begin(out: &mut Vec<u8>, kind: Kind) -> usize {
    let start = out.len();
    out.extend_from_slice(&[0; HEADER]);
    out.push(kind as u8);
    start
}

/// Fills in the length and CRC of the record begun at `start`, which ends at the end of `out`.
pub fn finish(out: &mut [u8], start: usize) {
    let crc = crc32fast::hash(&out[start + HEADER..]);
    // Records are at most a few MiB (a batch of commands, a configuration); a length that does
    // not fit in 32 bits would be a bug upstream, and is saturated so the CRC refuses it.
    let length = u32::try_from(out.len() - start - HEADER).unwrap_or(u32::MAX);
    out[start..start + 4].copy_from_slice(&length.to_le_bytes());
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// Appends one record whose body is `parts`, one after the other.
pub fn put(out: &mut Vec<u8>, kind: Kind, parts: &[&[u8]]) {
    let start = begin(out, kind);
    for p in parts {
        out.extend_from_slice(p);
    }
    finish(out, start);
}

/// An entry's log id in the binary form that starts its body.
pub fn log_id_bytes(log_id: &LogId) -> [u8; LOG_ID] {
    let mut b = [0; LOG_ID];
    b[..8].copy_from_slice(&log_id.leader_id.term.to_le_bytes());
    b[8..16].copy_from_slice(&log_id.leader_id.node_id.to_le_bytes());
    b[16..].copy_from_slice(&log_id.index.to_le_bytes());
    b
}

/// The log id at the start of an entry's body, and the encoded entry after it.
pub fn split_entry(body: &[u8]) -> Option<(LogId, &[u8])> {
    let (id, rest) = body.split_at_checked(LOG_ID)?;
    let u = |r: std::ops::Range<usize>| id.get(r).and_then(|s| s.try_into().ok());
    let log_id = LogId::new(
        openraft::CommittedLeaderId::new(
            u64::from_le_bytes(u(0..8)?),
            u64::from_le_bytes(u(8..16)?),
        ),
        u64::from_le_bytes(u(16..24)?),
    );
    Some((log_id, rest))
}

/// One record read back.
#[derive(Debug, PartialEq, Eq)]
pub struct Record<'a> {
    /// What it holds.
    pub kind: Kind,
    /// Its body.
    pub body: &'a [u8],
    /// Bytes it takes in the file, header included.
    pub size: usize,
}

/// Why the bytes at an offset are not a record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Torn {
    /// Fewer bytes than the header or the length promise: the end of a write cut short.
    #[error("cut short: {have} of {need} bytes")]
    Short {
        /// Bytes there.
        have: usize,
        /// Bytes the record needs.
        need: usize,
    },
    /// The CRC does not match: a write cut short over older bytes, or damage.
    #[error("checksum mismatch")]
    Checksum,
    /// A length of zero or a kind this version does not know.
    #[error("not a record (length {length}, kind {kind:?})")]
    Invalid {
        /// The length read.
        length: u32,
        /// The kind byte read, if any.
        kind: Option<u8>,
    },
}

/// Reads the record at the start of `bytes`.
pub fn read(bytes: &[u8]) -> Result<Record<'_>, Torn> {
    let short = |need| Torn::Short {
        have: bytes.len(),
        need,
    };
    let header: &[u8; HEADER] = bytes
        .get(..HEADER)
        .and_then(|h| h.try_into().ok())
        .ok_or_else(|| short(HEADER))?;
    let [l0, l1, l2, l3, c0, c1, c2, c3] = *header;
    let length = u32::from_le_bytes([l0, l1, l2, l3]);
    let crc = u32::from_le_bytes([c0, c1, c2, c3]);
    if length == 0 {
        return Err(Torn::Invalid { length, kind: None });
    }
    let size = HEADER.saturating_add(length as usize);
    let rest = bytes.get(HEADER..size).ok_or_else(|| short(size))?;
    if crc32fast::hash(rest) != crc {
        return Err(Torn::Checksum);
    }
    let (&kind_byte, body) = rest.split_first().ok_or(Torn::Checksum)?;
    let kind = Kind::from_byte(kind_byte).ok_or(Torn::Invalid {
        length,
        kind: Some(kind_byte),
    })?;
    Ok(Record { kind, body, size })
}

#[cfg(test)]
mod tests {
    use super::*;
    use openraft::testing::log_id;

    #[test]
    fn records_read_back_and_a_cut_or_flipped_byte_is_torn() {
        let mut out = Vec::new();
        put(&mut out, Kind::Truncate, &[&7u64.to_le_bytes()]);
        put(&mut out, Kind::Vote, &[b"ab", b"c"]);
        let first = read(&out).unwrap();
        assert_eq!(
            (first.kind, first.body, first.size),
            (Kind::Truncate, &7u64.to_le_bytes()[..], 17)
        );
        let second = read(&out[first.size..]).unwrap();
        assert_eq!((second.kind, second.body), (Kind::Vote, &b"abc"[..]));
        for cut in 0..out.len() - first.size {
            assert!(matches!(
                read(&out[first.size..first.size + cut]),
                Err(Torn::Short { .. })
            ));
        }
        for i in HEADER..out.len() - first.size {
            let mut flipped = out[first.size..].to_vec();
            flipped[i] ^= 0x40;
            assert_eq!(read(&flipped), Err(Torn::Checksum), "byte {i}");
        }
        assert!(matches!(
            read(&[0; 16]),
            Err(Torn::Invalid { length: 0, .. })
        ));
    }

    #[test]
    fn an_entry_log_id_round_trips_in_binary() {
        let id = log_id(3, 2, 1 << 40);
        let mut body = log_id_bytes(&id).to_vec();
        body.extend_from_slice(b"entry");
        assert_eq!(split_entry(&body), Some((id, &b"entry"[..])));
        assert_eq!(split_entry(&body[..10]), None);
    }
}
