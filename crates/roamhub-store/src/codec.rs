//! How values are encoded on disk and between nodes: a format-version byte, a CRC32C
//! checksum, then postcard.
//!
//! ```text
//! [ FORMAT_VERSION: 1 byte ][ CRC32C of version byte and body: 4 bytes, little-endian ][ body ]
//! ```
//!
//! A reader refuses a version it does not know rather than guess, so that a node never
//! applies data written by a newer release it cannot read; and it refuses a value whose
//! checksum does not match, so that a flipped bit or a cut value never reaches Raft or the
//! index. [`decode_stored`] is the reader for stored values: its [`Corrupt`] error names
//! what was bad and where, and never carries a byte of the value.

use std::fmt;

use serde::Serialize;
use serde::de::DeserializeOwned;

/// The version written in front of every value this release encodes.
pub const FORMAT_VERSION: u8 = 3;

/// Bytes in front of the body: the version and the checksum.
const HEADER_BYTES: usize = 1 + 4;

#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("empty value")]
    Empty,
    #[error("format version {0} is unknown to this release")]
    UnknownVersion(u8),
    #[error("value of {0} bytes is shorter than its header")]
    Truncated(usize),
    #[error("checksum mismatch")]
    ChecksumMismatch,
    #[error("undecodable value: {0}")]
    Malformed(#[from] postcard::Error),
}

/// A stored value that failed its check on read. It names the kind of record and its key
/// (a log index, a snapshot id), never the value's bytes: those may be personal data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} at {key}: {reason}")]
pub struct Corrupt {
    /// The kind of record: `log entry`, `vote`, `snapshot`, ...
    pub what: &'static str,
    /// Where it is: a log index, a metadata key, a snapshot id.
    pub key: String,
    /// Why it was refused, in words that carry no stored byte.
    pub reason: String,
}

impl Corrupt {
    pub fn new(what: &'static str, key: impl fmt::Display, reason: impl fmt::Display) -> Corrupt {
        Corrupt { what, key: key.to_string(), reason: reason.to_string() }
    }
}

pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // Encoding into a Vec fails only for types serde cannot express, which ours never are.
    let body = postcard::to_stdvec(value).expect("roamhub types always encode");
    let mut bytes = Vec::with_capacity(HEADER_BYTES + body.len());
    bytes.push(FORMAT_VERSION);
    bytes.extend_from_slice(&checksum(FORMAT_VERSION, &body).to_le_bytes());
    bytes.extend_from_slice(&body);
    bytes
}

pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    let &version = bytes.first().ok_or(CodecError::Empty)?;
    if version != FORMAT_VERSION {
        return Err(CodecError::UnknownVersion(version));
    }
    if bytes.len() < HEADER_BYTES {
        return Err(CodecError::Truncated(bytes.len()));
    }

    let (header, body) = bytes.split_at(HEADER_BYTES);
    let stored = u32::from_le_bytes([header[1], header[2], header[3], header[4]]);
    if stored != checksum(version, body) {
        return Err(CodecError::ChecksumMismatch);
    }
    Ok(postcard::from_bytes(body)?)
}

/// Decodes a value read from storage; any failure is corruption of that record.
pub fn decode_stored<T: DeserializeOwned>(
    what: &'static str,
    key: impl fmt::Display,
    bytes: &[u8],
) -> Result<T, Corrupt> {
    decode(bytes).map_err(|error| Corrupt::new(what, key, error))
}

/// The checksum covers the version byte too, so a flipped version bit is caught as well.
fn checksum(version: u8, body: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(&[version]), body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_round_trips() {
        let bytes = encode(&(7u64, "seven".to_owned()));
        assert_eq!(decode::<(u64, String)>(&bytes).unwrap(), (7, "seven".to_owned()));
    }

    /// Every single flipped bit of an encoded value is refused, none panics.
    #[test]
    fn every_flipped_bit_is_refused() {
        let bytes = encode(&(42u64, "a consent payload".to_owned()));
        for bit in 0..bytes.len() * 8 {
            let mut flipped = bytes.clone();
            flipped[bit / 8] ^= 1 << (bit % 8);
            let error = decode::<(u64, String)>(&flipped).unwrap_err();
            let bad_version = bit < 8;
            assert!(
                matches!(error, CodecError::ChecksumMismatch)
                    || bad_version && matches!(error, CodecError::UnknownVersion(_)),
                "bit {bit}: {error}"
            );
        }
    }

    /// A value cut anywhere is refused.
    #[test]
    fn every_truncation_is_refused() {
        let bytes = encode(&(42u64, "a consent payload".to_owned()));
        for len in 0..bytes.len() {
            assert!(decode::<(u64, String)>(&bytes[..len]).is_err(), "cut at {len}");
        }
    }

    /// The error of a stored record names it and never carries its bytes.
    #[test]
    fn corruption_names_the_record_not_its_bytes() {
        let mut bytes = encode(&"citizen-secret".to_owned());
        let last = bytes.len() - 1;
        bytes[last] ^= 0x01;
        let error = decode_stored::<String>("log entry", 12, &bytes).unwrap_err();
        assert_eq!(error.to_string(), "log entry at 12: checksum mismatch");
        assert!(!format!("{error:?}").contains("secret"));
    }
}
