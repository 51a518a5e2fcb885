//! Persisted record shapes and the store's key layout. Records are JSON; byte fields are
//! base64. Only ciphertext and metadata are ever written.
//!
//! Key layout (one ordered keyspace):
//! ```text
//! meta/format-version                       (coffer-store)
//! r/<region>/secret/<name>                  SecretRecord
//! r/<region>/version/<secret uid>/<vid>     VersionRecord (sealed value + wrapped data key)
//! r/<region>/key/<key id>                   KeyRecord (key versions wrapped by the root key)
//! r/<region>/alias/<alias name>             AliasRecord
//! r/<region>/default-key                    key id of the region's default key
//! tok/<token id>                            TokenRecord (hash only)
//! rot/<region>/<secret uid>                 rotation index: {name, due} (see rotation.rs)
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::{CoreError, Result};

pub(crate) fn secret_key(region: &str, name: &str) -> Vec<u8> {
    format!("r/{region}/secret/{name}").into_bytes()
}
pub(crate) fn secret_prefix(region: &str) -> Vec<u8> {
    format!("r/{region}/secret/").into_bytes()
}
pub(crate) fn version_key(region: &str, uid: &str, vid: &str) -> Vec<u8> {
    format!("r/{region}/version/{uid}/{vid}").into_bytes()
}
pub(crate) fn version_prefix(region: &str, uid: &str) -> Vec<u8> {
    format!("r/{region}/version/{uid}/").into_bytes()
}
pub(crate) fn key_key(region: &str, key_id: &str) -> Vec<u8> {
    format!("r/{region}/key/{key_id}").into_bytes()
}
pub(crate) fn key_prefix(region: &str) -> Vec<u8> {
    format!("r/{region}/key/").into_bytes()
}
pub(crate) fn alias_key(region: &str, alias: &str) -> Vec<u8> {
    format!("r/{region}/alias/{alias}").into_bytes()
}
pub(crate) fn alias_prefix(region: &str) -> Vec<u8> {
    format!("r/{region}/alias/").into_bytes()
}
pub(crate) fn default_key_key(region: &str) -> Vec<u8> {
    format!("r/{region}/default-key").into_bytes()
}
pub(crate) fn token_key(id: &str) -> Vec<u8> {
    format!("tok/{id}").into_bytes()
}

pub(crate) mod b64 {
    use base64::Engine;
    use serde::{Deserialize, Deserializer, Serializer};
    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(v))
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = <&str>::deserialize(d)?;
        base64::engine::general_purpose::STANDARD
            .decode(s)
            .map_err(serde::de::Error::custom)
    }
}

/// Soft deletion of a secret.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Deletion {
    #[serde(with = "time::serde::timestamp")]
    pub deleted_at: OffsetDateTime,
    #[serde(with = "time::serde::timestamp")]
    pub purge_at: OffsetDateTime,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct SecretRecord {
    pub uid: String,
    pub name: String,
    pub arn: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub kms_key_id: Option<String>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    #[serde(with = "time::serde::timestamp")]
    pub created: OffsetDateTime,
    #[serde(with = "time::serde::timestamp")]
    pub last_changed: OffsetDateTime,
    #[serde(default)]
    pub deletion: Option<Deletion>,
    /// label → version id
    #[serde(default)]
    pub stages: BTreeMap<String, String>,
    #[serde(default)]
    pub version_count: usize,
    /// Rotation configuration and state (absent in records written before rotation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation: Option<crate::rotation::RotationState>,
}

impl SecretRecord {
    pub fn stages_of(&self, vid: &str) -> Vec<String> {
        self.stages
            .iter()
            .filter(|(_, v)| v.as_str() == vid)
            .map(|(k, _)| k.clone())
            .collect()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub(crate) enum ValueKind {
    String,
    Binary,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct VersionRecord {
    pub version_id: String,
    #[serde(with = "time::serde::timestamp")]
    pub created: OffsetDateTime,
    /// Sub-second part of `created` (stored as whole seconds), so that versions made
    /// within one second still sort newest first; 0 in records written before it existed.
    #[serde(default)]
    pub created_nanos: u32,
    pub kms_key_id: String,
    pub kind: ValueKind,
    /// Data key as a KMS blob (format 1) under `kms_key_id`.
    #[serde(with = "b64")]
    pub wrapped_data_key: Vec<u8>,
    /// `nonce || ciphertext || tag` under the data key.
    #[serde(with = "b64")]
    pub sealed_value: Vec<u8>,
}

impl VersionRecord {
    /// Creation time with its sub-second part: the order of versions.
    pub fn created_precise(&self) -> OffsetDateTime {
        self.created
            .replace_nanosecond(self.created_nanos)
            .unwrap_or(self.created)
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) enum KeyState {
    Enabled,
    Disabled,
    PendingDeletion,
}

impl KeyState {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyState::Enabled => "Enabled",
            KeyState::Disabled => "Disabled",
            KeyState::PendingDeletion => "PendingDeletion",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct KeyVersionRecord {
    pub version: u32,
    #[serde(with = "time::serde::timestamp")]
    pub created: OffsetDateTime,
    /// `ON_DEMAND`, `AUTOMATIC`, or `CREATED` for version 1.
    pub origin: String,
    /// Key material wrapped by the root key.
    #[serde(with = "b64")]
    pub wrapped: Vec<u8>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct KeyRecord {
    pub key_id: String,
    pub description: String,
    pub state: KeyState,
    #[serde(with = "time::serde::timestamp")]
    pub created: OffsetDateTime,
    #[serde(default, with = "time::serde::timestamp::option")]
    pub deletion_date: Option<OffsetDateTime>,
    pub versions: Vec<KeyVersionRecord>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    #[serde(default)]
    pub aliases: Vec<String>,
    #[serde(default)]
    pub rotation_period_days: Option<u32>,
    #[serde(default, with = "time::serde::timestamp::option")]
    pub next_rotation: Option<OffsetDateTime>,
    #[serde(default)]
    pub is_default: bool,
}

impl KeyRecord {
    pub fn current_version(&self) -> u32 {
        self.versions.last().map(|v| v.version).unwrap_or(0)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct AliasRecord {
    pub target_key_id: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct TokenRecord {
    pub token_id: String,
    pub principal: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(with = "time::serde::timestamp")]
    pub created: OffsetDateTime,
    #[serde(default, with = "time::serde::timestamp::option")]
    pub expires: Option<OffsetDateTime>,
    /// SHA-256 of the token's secret part.
    #[serde(with = "b64")]
    pub hash: Vec<u8>,
}

pub(crate) fn encode<T: Serialize>(v: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(v).map_err(|e| CoreError::Internal(format!("encode record: {e}")))
}

pub(crate) fn decode<T: for<'de> Deserialize<'de>>(what: &str, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes)
        .map_err(|e| CoreError::Internal(format!("corrupt {what} record: {e}")))
}
