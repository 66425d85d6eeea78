//! Consent receipts: the record a citizen keeps of each consent they gave, signed by the
//! node that took the grant.
//!
//! The receipt carries the fields of the Kantara Consent Receipt (v1.1) and of ISO/IEC TS
//! 27560 as JSON. Each node signs receipts with its own Ed25519 key, created on first start
//! in `receipt.key` in its data directory and readable by the node's user only; the public
//! key is in the node's status, so anyone can check a receipt.

use std::path::Path;

use anyhow::Context;
use ed25519_dalek::{Signer, SigningKey};
use roamhub_index::{Consent, LegalBasis};
use roamhub_proto::v1 as pb;
use serde_json::json;

use crate::files::{IfExists, write_owner_only};

/// The file in a node's data directory that holds its receipt key.
const RECEIPT_KEY_FILE: &str = "receipt.key";
/// The version of the receipt layout.
pub const RECEIPT_VERSION: &str = "roamhub-consent-receipt/v1";

/// The key a node signs receipts with.
pub struct ReceiptKey {
    signing_key: SigningKey,
}

impl ReceiptKey {
    /// Loads the node's receipt key, creating it on first start.
    pub fn load_or_create(data_dir: &Path) -> anyhow::Result<ReceiptKey> {
        let path = data_dir.join(RECEIPT_KEY_FILE);
        if let Ok(text) = std::fs::read_to_string(&path) {
            let bytes = hex::decode(text.trim()).context("the receipt key file is not hex")?;
            let seed = <[u8; 32]>::try_from(bytes.as_slice())
                .map_err(|_| anyhow::anyhow!("the receipt key file does not hold 32 bytes"))?;
            return Ok(ReceiptKey { signing_key: SigningKey::from_bytes(&seed) });
        }

        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
        write_owner_only(&path, hex::encode(seed).as_bytes(), IfExists::Refuse)?;
        Ok(ReceiptKey { signing_key: SigningKey::from_bytes(&seed) })
    }

    pub fn public_key(&self) -> [u8; 32] {
        self.signing_key.verifying_key().to_bytes()
    }

    /// The signed receipt of a consent just granted through this node.
    pub fn receipt(&self, consent: &Consent, issuer: &Issuer<'_>) -> pb::ConsentReceipt {
        let receipt_json = receipt_json(consent, issuer).to_string().into_bytes();
        pb::ConsentReceipt {
            signature: self.signing_key.sign(&receipt_json).to_bytes().to_vec(),
            receipt_json,
            public_key: self.public_key().to_vec(),
        }
    }
}

/// Who issues a receipt: the granting city, and the organisation behind the service.
pub struct Issuer<'a> {
    pub city_id: &'a str,
    pub country: &'a str,
    pub node_id: u64,
    pub organisation: &'a str,
}

/// The W3C DPV term of a legal basis.
fn dpv_legal_basis(basis: LegalBasis) -> &'static str {
    match basis {
        LegalBasis::Consent => "dpv:Consent",
        LegalBasis::Contract => "dpv:Contract",
        LegalBasis::LegalObligation => "dpv:LegalObligation",
        LegalBasis::VitalInterest => "dpv:VitalInterest",
        LegalBasis::PublicTask => "dpv:PublicTask",
        LegalBasis::LegitimateInterest => "dpv:LegitimateInterest",
    }
}

fn receipt_json(consent: &Consent, issuer: &Issuer<'_>) -> serde_json::Value {
    let attributes: Vec<String> = consent.attributes.iter().map(ToString::to_string).collect();
    let termination = match consent.valid_until_unix_ms {
        Some(until) => json!({ "valid_until_unix_ms": until }),
        None => json!("until withdrawn by the PII principal"),
    };
    json!({
        "version": RECEIPT_VERSION,
        "jurisdiction": issuer.country,
        "consent_timestamp_unix_ms": consent.given_at_unix_ms,
        "collection_method": "roamhub API, operation signed by the PII principal",
        "consent_receipt_id": format!("{}@{}", consent.consent_id, issuer.city_id),
        "language": "en",
        "pii_principal_id": consent.citizen_id.to_string(),
        "pii_controllers": [{ "pii_controller": issuer.organisation, "on_behalf": false }],
        "services": [{
            "service": consent.service_id.to_string(),
            "purposes": [{
                "purpose": consent.purpose.to_string(),
                "consent_type": "EXPLICIT",
                "pii_category": attributes,
                "primary_purpose": true,
                "termination": termination,
                "third_party_disclosure": false,
            }],
        }],
        "sensitive": false,
        "legal_basis": dpv_legal_basis(consent.legal_basis),
        "valid_from_unix_ms": consent.valid_from_unix_ms,
        "identity_scheme": consent.identity_scheme,
        "issued_by": { "city_id": issuer.city_id, "node_id": issuer.node_id },
    })
}
