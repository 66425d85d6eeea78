//! How values are encoded on disk and between nodes: a format-version byte, then postcard.
//!
//! A reader refuses a version it does not know rather than guess, so that a node never
//! applies data written by a newer release it cannot read.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// The version written in front of every value this release encodes.
pub const FORMAT_VERSION: u8 = 2;

#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("empty value")]
    Empty,
    #[error("format version {0} is unknown to this release")]
    UnknownVersion(u8),
    #[error("undecodable value: {0}")]
    Malformed(#[from] postcard::Error),
}

pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    let mut bytes = vec![FORMAT_VERSION];
    // Encoding into a Vec fails only for types serde cannot express, which ours never are.
    let body = postcard::to_stdvec(value).expect("roamhub types always encode");
    bytes.extend_from_slice(&body);
    bytes
}

pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    let (&version, body) = bytes.split_first().ok_or(CodecError::Empty)?;
    if version != FORMAT_VERSION {
        return Err(CodecError::UnknownVersion(version));
    }
    Ok(postcard::from_bytes(body)?)
}
