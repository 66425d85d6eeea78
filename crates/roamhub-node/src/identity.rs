//! The federation's identifier key: how a node turns identifiers into the keyed hashes the
//! index keeps, and how it derives each service's pseudonym of a citizen.
//!
//! Every node of a federation holds the same 32-byte key, given by configuration and kept
//! outside the replicated state, so neither the index nor the Raft log holds an identifier
//! in clear. Each city announces a check value of its key; the index refuses a city whose
//! check differs, as its hashes would never match.

use hmac::{Hmac, Mac};
use roamhub_index::{CitizenId, Identifier, IndexError, ServiceId};
use sha2::Sha256;

/// Separates the three uses of the key.
const IDENTIFIER_DOMAIN: &[u8] = b"roamhub/identifier/v1";
const PSEUDONYM_DOMAIN: &[u8] = b"roamhub/pseudonym/v1";
const CHECK_DOMAIN: &[u8] = b"roamhub/identifier-key-check/v1";

/// Hex digits of a service's pseudonym of a citizen (128 bits).
const PSEUDONYM_HEX_LEN: usize = 32;

#[derive(Clone)]
pub struct IdentifierKey([u8; 32]);

impl std::fmt::Debug for IdentifierKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "IdentifierKey(check {})", self.check())
    }
}

impl IdentifierKey {
    /// Parses 64 hex digits.
    pub fn from_hex(hex_key: &str) -> Result<IdentifierKey, String> {
        let bytes = hex::decode(hex_key.trim()).map_err(|_| "the identifier key is not hex")?;
        let key = <[u8; 32]>::try_from(bytes.as_slice())
            .map_err(|_| "the identifier key must be 32 bytes (64 hex digits)")?;
        Ok(IdentifierKey(key))
    }

    fn mac(&self, domain: &[u8], parts: &[&[u8]]) -> [u8; 32] {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(domain);
        for part in parts {
            // Length prefixes keep ("ab", "c") and ("a", "bc") apart.
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        mac.finalize().into_bytes().into()
    }

    /// The identifier as the index keeps it, from the clear scheme and value.
    pub fn hash(&self, field: &str, scheme: &str, value: &str) -> Result<Identifier, IndexError> {
        Identifier::check_clear(field, scheme, value)?;
        let digest = self.mac(IDENTIFIER_DOMAIN, &[scheme.as_bytes(), value.as_bytes()]);
        Identifier::from_digest(field, scheme, &hex::encode(digest))
    }

    /// How `service_id` knows `citizen_id`: the same on every call and every node, and
    /// unrelated between two services.
    pub fn pseudonym(&self, citizen_id: &CitizenId, service_id: &ServiceId) -> String {
        let parts = [citizen_id.as_str().as_bytes(), service_id.as_str().as_bytes()];
        let mut pseudonym = hex::encode(self.mac(PSEUDONYM_DOMAIN, &parts));
        pseudonym.truncate(PSEUDONYM_HEX_LEN);
        format!("p-{pseudonym}")
    }

    /// A value that shows whether two nodes hold the same key without revealing it.
    pub fn check(&self) -> String {
        hex::encode(&self.mac(CHECK_DOMAIN, &[])[..8])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_depend_on_key_scheme_and_value() {
        let key = IdentifierKey([1; 32]);
        let a = key.hash("identifier", "city-account", "EHV-1").unwrap();
        assert_eq!(a, key.hash("identifier", "city-account", "EHV-1").unwrap());
        assert_ne!(a, key.hash("identifier", "eidas", "EHV-1").unwrap());
        assert_ne!(a, key.hash("identifier", "city-account", "EHV-2").unwrap());
        assert_ne!(a, IdentifierKey([2; 32]).hash("identifier", "city-account", "EHV-1").unwrap());
        assert!(!a.digest().contains("EHV"));
    }

    #[test]
    fn pseudonyms_differ_per_service() {
        let key = IdentifierKey([1; 32]);
        let citizen = CitizenId::from_random([5; 16]);
        let ride = ServiceId::parse("service_id", "ride.share").unwrap();
        let bike = ServiceId::parse("service_id", "bike.share").unwrap();
        assert_eq!(key.pseudonym(&citizen, &ride), key.pseudonym(&citizen, &ride));
        assert_ne!(key.pseudonym(&citizen, &ride), key.pseudonym(&citizen, &bike));
    }

    #[test]
    fn keys_parse_from_hex() {
        assert!(IdentifierKey::from_hex(&"ab".repeat(32)).is_ok());
        assert!(IdentifierKey::from_hex("abcd").is_err());
        assert!(IdentifierKey::from_hex(&"zz".repeat(32)).is_err());
    }
}
