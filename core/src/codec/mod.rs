//! Every byte a member keeps on disk, and the snapshots members send each other: a header that
//! names the format, then the record.
//!
//! - Format 1 (before this module) was bincode of the in-memory types, positionally, without a
//!   header. It is still read, never written: its first byte is a bincode varint, which is never
//!   `0xFF`, so it cannot be mistaken for a header.
//! - Format 2 is [`MAGIC`], the format byte, then JSON of a transfer type: fields and variants by
//!   name, so a field added with a default is read by older and newer code alike, and a variant
//!   an older member does not know is refused by name. Snapshots hold records only
//!   ([`snapshot::StateRecords`]); the allocator's indexes are rebuilt on load.
//!
//! Anything else (a field removed, renamed or retyped) needs format 3 and its conversion here;
//! `core/tests/formats.rs` pins the bytes of every record kind, so such a change cannot slip in
//! unnoticed, and `core/tests/upgrade.rs` opens a data directory of every earlier format.

pub mod snapshot;

use serde::de::DeserializeOwned;
use serde::Serialize;

/// The first bytes of every record from format 2 on.
pub const MAGIC: [u8; 3] = [0xFF, b'I', b'L'];

/// The format this version writes.
pub const FORMAT: u8 = 2;

/// Why a record could not be written.
pub type EncodeError = serde_json::Error;

/// Why stored bytes could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// A format this version does not know (written by a newer one).
    #[error("format {found} is newer than this version reads (formats 1 to {FORMAT}): upgrade this member")]
    UnknownFormat {
        /// The record's format byte.
        found: u8,
    },
    /// The header is cut short.
    #[error("a record of {0} bytes is too short for its header")]
    Truncated(usize),
    /// The first byte promises a header that is not there.
    #[error("not an ironlb record: 0xFF not followed by \"IL\"")]
    BadHeader,
    /// A format-2 record that is not the JSON of its type.
    #[error("format 2: {0}")]
    Json(#[from] serde_json::Error),
    /// A format-1 record that is not the bincode of its type.
    #[error("format 1: {0}")]
    Bincode(#[from] bincode::error::DecodeError),
    /// A format-1 record with bytes after the value.
    #[error("format 1: {0} bytes left over after the value")]
    Trailing(usize),
}

/// The format of a record.
pub fn format_of(bytes: &[u8]) -> Result<u8, CodecError> {
    match bytes {
        [0xFF, ..] if bytes.len() < MAGIC.len() + 1 => Err(CodecError::Truncated(bytes.len())),
        [0xFF, b'I', b'L', format, ..] => Ok(*format),
        [0xFF, ..] => Err(CodecError::BadHeader),
        _ => Ok(1),
    }
}

/// Writes `value` in the current format.
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, EncodeError> {
    let mut out = Vec::with_capacity(128);
    out.extend_from_slice(&MAGIC);
    out.push(FORMAT);
    serde_json::to_writer(&mut out, value)?;
    Ok(out)
}

/// Appends `value` in the current format to `out` (no buffer of its own, for framing).
pub fn encode_into<T: Serialize>(out: &mut Vec<u8>, value: &T) -> Result<(), EncodeError> {
    out.extend_from_slice(&MAGIC);
    out.push(FORMAT);
    serde_json::to_writer(out, value)
}

/// Reads a record whose shape is the same in every format it may have been written in.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    match format_of(bytes)? {
        1 => decode_format_1(bytes),
        FORMAT => Ok(serde_json::from_slice(&bytes[MAGIC.len() + 1..])?),
        found => Err(CodecError::UnknownFormat { found }),
    }
}

/// Reads format-1 bytes: bincode's standard configuration, the whole slice.
pub(crate) fn decode_format_1<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    let (value, used) = bincode::serde::decode_from_slice(bytes, bincode::config::standard())?;
    if used != bytes.len() {
        return Err(CodecError::Trailing(bytes.len() - used));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_1_is_told_from_format_2_by_the_first_byte() {
        let old = bincode::serde::encode_to_vec(7u64, bincode::config::standard()).unwrap();
        assert_eq!(format_of(&old).unwrap(), 1);
        assert_eq!(decode::<u64>(&old).unwrap(), 7);
        let new = encode(&7u64).unwrap();
        assert_eq!(new, b"\xFFIL\x027");
        assert_eq!(format_of(&new).unwrap(), 2);
        assert_eq!(decode::<u64>(&new).unwrap(), 7);
    }

    #[test]
    fn a_newer_format_or_a_cut_header_is_refused_by_name() {
        let e = decode::<u64>(b"\xFFIL\x097").unwrap_err();
        assert!(e.to_string().contains("format 9 is newer"), "{e}");
        assert!(matches!(
            decode::<u64>(b"\xFFI"),
            Err(CodecError::Truncated(2))
        ));
        assert!(matches!(
            decode::<u64>(b"\xFFXY\x027"),
            Err(CodecError::BadHeader)
        ));
    }
}
