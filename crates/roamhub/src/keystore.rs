//! Citizens' keys on the client side: generating, signing, and a folder that keeps them.
//!
//! A citizen signs each operation with an Ed25519 key that never leaves their device. The
//! CLI keeps one file per citizen, `<citizen_id>.key`, readable by the owner only, in the
//! keystore folder (`--keystore`, default `$ROAMHUB_HOME/keys`, and `~/.roamhub/keys` when
//! `ROAMHUB_HOME` is unset).

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use roamhub_index::{CitizenId, CitizenOp, PublicKey, signing};
use roamhub_node::convert;
use roamhub_node::files::{IfExists, write_owner_only};
use roamhub_proto::v1 as pb;
use serde::{Deserialize, Serialize};

use crate::client::{Client, status_error};

/// A citizen's secret key.
pub struct CitizenKey {
    secret: [u8; 32],
}

impl CitizenKey {
    /// A fresh key from the operating system's generator.
    pub fn generate() -> anyhow::Result<CitizenKey> {
        let mut secret = [0u8; 32];
        getrandom::fill(&mut secret).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
        Ok(CitizenKey { secret })
    }

    pub fn public_key(&self) -> PublicKey {
        signing::public_key_of(&self.secret)
    }

    /// A registration request for this key, with the proof that the citizen holds it. The
    /// proof covers the identifiers as the index keeps them, hashed by the node.
    pub async fn registration(
        &self,
        client: &mut Client,
        home_city: &str,
        identifiers: Vec<pb::Identifier>,
    ) -> anyhow::Result<pb::RegisterCitizenRequest> {
        let city = roamhub_index::CityId::parse("home_city", home_city)?;
        let hashed = hash_identifiers(client, identifiers.clone()).await?;
        let hashed = hashed
            .iter()
            .map(|h| convert::hashed_identifier("identifiers", h))
            .collect::<Result<Vec<_>, _>>()
            .map_err(status_error)?;
        let public_key = self.public_key();
        let message = signing::registration_message(&city, &hashed, &public_key);
        Ok(pb::RegisterCitizenRequest {
            home_city: home_city.to_owned(),
            identifiers,
            public_key: public_key.as_bytes().to_vec(),
            proof: signing::sign(&self.secret, &message),
        })
    }

    /// Signs a request as the citizen's next operation, whose number it asks the node for.
    pub async fn signed<R: CitizenRequest>(
        &self,
        client: &mut Client,
        mut request: R,
    ) -> anyhow::Result<R> {
        let citizen_id = request.citizen_id().to_owned();
        let lookup = pb::GetCitizenRequest { citizen_id: citizen_id.clone() };
        let citizen = client.get_citizen(lookup).await.map_err(status_error)?.into_inner();
        let op = request.op(client).await?;
        request.set_signature(self.sign_as(&citizen_id, citizen.next_sequence, &op)?);
        Ok(request)
    }

    /// Signs `op` with a given sequence number.
    pub fn sign_as(
        &self,
        citizen_id: &str,
        sequence: u64,
        op: &CitizenOp,
    ) -> anyhow::Result<pb::CitizenSignature> {
        let citizen_id = CitizenId::parse("citizen_id", citizen_id)?;
        let message = signing::citizen_op_message(&citizen_id, sequence, op);
        Ok(pb::CitizenSignature {
            key_id: self.public_key().key_id().to_string(),
            sequence,
            signature: signing::sign(&self.secret, &message),
        })
    }
}

/// The keyed hashes of clear identifiers, from the node `client` talks to.
pub async fn hash_identifiers(
    client: &mut Client,
    identifiers: Vec<pb::Identifier>,
) -> anyhow::Result<Vec<pb::Identifier>> {
    let request = pb::HashIdentifiersRequest { identifiers };
    let reply = client.hash_identifiers(request).await.map_err(status_error)?;
    Ok(reply.into_inner().identifiers)
}

/// A request for a citizen operation, which must carry the citizen's signature.
pub trait CitizenRequest {
    fn citizen_id(&self) -> &str;
    /// The operation the node will build from this request: what the citizen signs. An
    /// identifier in it is hashed by the node `client` talks to.
    fn op(&self, client: &mut Client) -> impl Future<Output = anyhow::Result<CitizenOp>> + Send;
    fn set_signature(&mut self, signature: pb::CitizenSignature);
}

macro_rules! citizen_request {
    ($request:ty, $op:path) => {
        impl CitizenRequest for $request {
            fn citizen_id(&self) -> &str {
                &self.citizen_id
            }

            fn op(
                &self,
                _client: &mut Client,
            ) -> impl Future<Output = anyhow::Result<CitizenOp>> + Send {
                let op = $op(self).map_err(status_error);
                async move { op }
            }

            fn set_signature(&mut self, signature: pb::CitizenSignature) {
                self.signature = Some(signature);
            }
        }
    };
}

impl CitizenRequest for pb::AddIdentifierRequest {
    fn citizen_id(&self) -> &str {
        &self.citizen_id
    }

    fn op(&self, client: &mut Client) -> impl Future<Output = anyhow::Result<CitizenOp>> + Send {
        let clear = self.identifier.clone();
        async move {
            let clear = clear.ok_or_else(|| anyhow::anyhow!("identifier: is required"))?;
            let hashed = hash_identifiers(client, vec![clear]).await?;
            let hashed =
                hashed.first().ok_or_else(|| anyhow::anyhow!("the node hashed nothing"))?;
            let identifier =
                convert::hashed_identifier("identifier", hashed).map_err(status_error)?;
            Ok(CitizenOp::AddIdentifier(identifier))
        }
    }

    fn set_signature(&mut self, signature: pb::CitizenSignature) {
        self.signature = Some(signature);
    }
}
citizen_request!(pb::MoveHomeRequest, convert::move_home_op);
citizen_request!(pb::SetLocationRequest, convert::set_location_op);
citizen_request!(pb::GrantConsentRequest, convert::grant_consent_op);
citizen_request!(pb::WithdrawConsentRequest, convert::withdraw_consent_op);
citizen_request!(pb::AddKeyRequest, convert::add_key_op);
citizen_request!(pb::RenewConsentRequest, convert::renew_consent_op);
citizen_request!(pb::EraseCitizenRequest, convert::erase_op);
citizen_request!(pb::RemoveKeyRequest, convert::remove_key_op);

/// The file format of a stored key.
#[derive(Serialize, Deserialize)]
struct StoredKey {
    citizen_id: String,
    key_id: String,
    secret_key_hex: String,
}

/// A folder of citizens' keys, one file each.
pub struct Keystore {
    dir: PathBuf,
}

impl Keystore {
    /// The keystore in `dir`, or the default one.
    pub fn open(dir: Option<&Path>) -> anyhow::Result<Keystore> {
        let dir = match dir {
            Some(dir) => dir.to_owned(),
            None => default_home()?.join("keys"),
        };
        Ok(Keystore { dir })
    }

    fn path(&self, citizen_id: &str) -> anyhow::Result<PathBuf> {
        CitizenId::parse("citizen_id", citizen_id)?;
        Ok(self.dir.join(format!("{citizen_id}.key")))
    }

    pub fn save(&self, citizen_id: &str, key: &CitizenKey) -> anyhow::Result<PathBuf> {
        let path = self.path(citizen_id)?;
        std::fs::create_dir_all(&self.dir)
            .with_context(|| format!("creating keystore {}", self.dir.display()))?;
        let stored = StoredKey {
            citizen_id: citizen_id.to_owned(),
            key_id: key.public_key().key_id().to_string(),
            secret_key_hex: hex::encode(key.secret),
        };
        write_owner_only(
            &path,
            serde_json::to_string_pretty(&stored)?.as_bytes(),
            IfExists::Replace,
        )?;
        Ok(path)
    }

    pub fn load(&self, citizen_id: &str) -> anyhow::Result<CitizenKey> {
        let path = self.path(citizen_id)?;
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("no key for this citizen in {}", self.dir.display()))?;
        let stored: StoredKey = serde_json::from_str(&text)
            .with_context(|| format!("reading key file {}", path.display()))?;
        let bytes = hex::decode(&stored.secret_key_hex)?;
        let Ok(secret) = <[u8; 32]>::try_from(bytes.as_slice()) else {
            bail!("key file {} does not hold a 32-byte key", path.display());
        };
        Ok(CitizenKey { secret })
    }
}

impl Keystore {
    /// Keeps a consent receipt beside the keys, as `receipts/<consent_id>.json`.
    pub fn save_receipt(
        &self,
        consent_id: &str,
        receipt: &pb::ConsentReceipt,
    ) -> anyhow::Result<PathBuf> {
        let dir = self.dir.join("receipts");
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let body: serde_json::Value = serde_json::from_slice(&receipt.receipt_json)?;
        let kept = serde_json::json!({
            "receipt": body,
            "receipt_json": String::from_utf8_lossy(&receipt.receipt_json),
            "signature_hex": hex::encode(&receipt.signature),
            "public_key_hex": hex::encode(&receipt.public_key),
        });
        let path = dir.join(format!("{consent_id}.json"));
        write_owner_only(
            &path,
            serde_json::to_string_pretty(&kept)?.as_bytes(),
            IfExists::Replace,
        )?;
        Ok(path)
    }
}

/// Checks a receipt's signature against the key of the node that issued it.
pub fn verify_receipt(receipt: &pb::ConsentReceipt, node_public_key: &[u8]) -> anyhow::Result<()> {
    let key = roamhub_index::PublicKey::parse("public_key", node_public_key)?;
    signing::verify(&key, &receipt.receipt_json, &receipt.signature)?;
    Ok(())
}

fn default_home() -> anyhow::Result<PathBuf> {
    if let Ok(home) = std::env::var("ROAMHUB_HOME") {
        return Ok(PathBuf::from(home));
    }
    let home = std::env::var("HOME").context("neither ROAMHUB_HOME nor HOME is set")?;
    Ok(PathBuf::from(home).join(".roamhub"))
}
