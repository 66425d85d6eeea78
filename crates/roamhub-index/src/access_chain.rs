//! The hash chain of a citizen's access log.
//!
//! Each access record carries the SHA-256 of its predecessor's hash and its own fields, so
//! a record rewritten or dropped anywhere in the log breaks every hash after it. The hash
//! is computed over plain, length-prefixed fields that any client can rebuild from the API's
//! records, without the index's types.

use sha2::{Digest, Sha256};

/// The `prev_hash` of a citizen's first record.
pub const GENESIS: [u8; 32] = [0; 32];

/// Separates access-record hashes from any other SHA-256 in the system.
const DOMAIN: &[u8] = b"roamhub/access-record/v1";

/// The fields of an access record that its hash covers, as the API shows them.
#[derive(Debug)]
pub struct LinkFields<'a> {
    pub record: u64,
    pub at_unix_ms: u64,
    pub service_id: &'a str,
    pub purpose: &'a str,
    pub via_city: &'a str,
    pub attributes_requested: &'a [&'a str],
    /// Empty when refused.
    pub attributes_released: &'a [&'a str],
    /// The refusal's description; empty when released.
    pub refusal: &'a str,
}

fn put(hasher: &mut Sha256, bytes: &[u8]) {
    hasher.update((bytes.len() as u64).to_be_bytes());
    hasher.update(bytes);
}

fn put_list(hasher: &mut Sha256, items: &[&str]) {
    hasher.update((items.len() as u64).to_be_bytes());
    for item in items {
        put(hasher, item.as_bytes());
    }
}

/// The hash of a record that follows a record hashed `prev_hash`.
pub fn link_hash(prev_hash: &[u8; 32], fields: &LinkFields<'_>) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(DOMAIN);
    hasher.update(prev_hash);
    hasher.update(fields.record.to_be_bytes());
    hasher.update(fields.at_unix_ms.to_be_bytes());
    put(&mut hasher, fields.service_id.as_bytes());
    put(&mut hasher, fields.purpose.as_bytes());
    put(&mut hasher, fields.via_city.as_bytes());
    put_list(&mut hasher, fields.attributes_requested);
    put_list(&mut hasher, fields.attributes_released);
    put(&mut hasher, fields.refusal.as_bytes());
    hasher.finalize().into()
}
