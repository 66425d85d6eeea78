//! Citizen signatures: what a citizen signs, and how every replica checks it.
//!
//! A citizen operation is signed over a canonical encoding of (domain, citizen id, sequence
//! number, operation): postcard of the index's own types, which encodes the same value to
//! the same bytes on every platform. The sequence number must be exactly the citizen's
//! next one, so a replayed or reordered operation is refused. Verification is a pure
//! computation and runs inside `Index::apply` on every replica, so an operator that forges
//! an operation is refused identically by every honest node.
//!
//! Verification uses `verify_strict`, which refuses the malleable and small-order edge
//! cases that lenient verifiers accept; the crate version is pinned so that all replicas
//! agree on those cases.

use std::fmt;

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::command::CitizenOp;
use crate::error::IndexError;
use crate::ids::{CitizenId, CityId, Identifier};

/// Separates citizen-operation signatures from any other use of the same key.
const CITIZEN_OP_DOMAIN: &str = "roamhub/citizen-op/v1";
/// Separates registration proofs from citizen-operation signatures.
const REGISTRATION_DOMAIN: &str = "roamhub/register/v1";

/// An Ed25519 public key of a citizen.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PublicKey([u8; 32]);

impl PublicKey {
    /// Accepts only the encoding of a valid curve point.
    pub fn parse(field: &str, bytes: &[u8]) -> Result<PublicKey, IndexError> {
        let bytes: [u8; 32] = bytes
            .try_into()
            .map_err(|_| IndexError::invalid(field, "an Ed25519 public key is 32 bytes"))?;
        VerifyingKey::from_bytes(&bytes)
            .map_err(|_| IndexError::invalid(field, "not a valid Ed25519 public key"))?;
        Ok(PublicKey(bytes))
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// `k-` and the first 8 bytes of the key's SHA-256, in hex.
    pub fn key_id(&self) -> KeyId {
        let digest = Sha256::digest(self.0);
        KeyId(format!("k-{}", hex::encode(&digest[..8])))
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.key_id())
    }
}

/// Names one of a citizen's keys.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct KeyId(String);

impl KeyId {
    pub fn parse(field: &str, value: &str) -> Result<KeyId, IndexError> {
        let digits = value.strip_prefix("k-").unwrap_or_default();
        let shaped = digits.len() == 16 && digits.chars().all(|c| c.is_ascii_hexdigit());
        if !shaped || digits.chars().any(|c| c.is_ascii_uppercase()) {
            return Err(IndexError::invalid(field, "must be 'k-' and 16 lowercase hex digits"));
        }
        Ok(KeyId(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The proof that a citizen, and no one else, asked for an operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CitizenAuth {
    pub key_id: KeyId,
    /// Must equal the citizen's next sequence number.
    pub sequence: u64,
    /// 64 bytes of Ed25519 signature over [`citizen_op_message`].
    pub signature: Vec<u8>,
}

/// The bytes a citizen signs for an operation.
pub fn citizen_op_message(citizen_id: &CitizenId, sequence: u64, op: &CitizenOp) -> Vec<u8> {
    postcard::to_stdvec(&(CITIZEN_OP_DOMAIN, citizen_id, sequence, op))
        .expect("citizen operations always encode")
}

/// The bytes a new citizen signs with their first key, proving they hold it.
pub fn registration_message(
    home_city: &CityId,
    identifiers: &[Identifier],
    public_key: &PublicKey,
) -> Vec<u8> {
    postcard::to_stdvec(&(REGISTRATION_DOMAIN, home_city, identifiers, public_key))
        .expect("registrations always encode")
}

/// Signs `message` with a citizen's secret key; for clients, never called by a node.
pub fn sign(secret_key: &[u8; 32], message: &[u8]) -> Vec<u8> {
    SigningKey::from_bytes(secret_key).sign(message).to_bytes().to_vec()
}

/// The public key of a secret key; for clients.
pub fn public_key_of(secret_key: &[u8; 32]) -> PublicKey {
    PublicKey(SigningKey::from_bytes(secret_key).verifying_key().to_bytes())
}

/// Checks a signature strictly; a failure is `Denied`, naming the signature field.
pub fn verify(public_key: &PublicKey, message: &[u8], signature: &[u8]) -> Result<(), IndexError> {
    let key = VerifyingKey::from_bytes(&public_key.0)
        .map_err(|_| IndexError::denied("signature", "the key is not a valid Ed25519 key"))?;
    let signature = Signature::from_slice(signature)
        .map_err(|_| IndexError::invalid("signature", "an Ed25519 signature is 64 bytes"))?;
    key.verify_strict(message, &signature)
        .map_err(|_| IndexError::denied("signature", "does not verify for this operation"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_only_for_its_message() {
        let secret = [7u8; 32];
        let public = public_key_of(&secret);
        let signature = sign(&secret, b"grant");
        assert!(verify(&public, b"grant", &signature).is_ok());
        assert!(verify(&public, b"grunt", &signature).is_err());
        assert!(verify(&public_key_of(&[8u8; 32]), b"grant", &signature).is_err());
        assert!(verify(&public, b"grant", &signature[..63]).is_err());
    }

    #[test]
    fn key_ids_are_short_hashes() {
        let id = public_key_of(&[1u8; 32]).key_id();
        assert_eq!(KeyId::parse("key_id", id.as_str()).unwrap(), id);
        assert!(KeyId::parse("key_id", "k-xyz").is_err());
    }

    #[test]
    fn public_keys_must_be_curve_points() {
        assert!(PublicKey::parse("public_key", &[0u8; 31]).is_err());
        let valid = public_key_of(&[3u8; 32]);
        assert_eq!(PublicKey::parse("public_key", valid.as_bytes()).unwrap(), valid);
    }
}
