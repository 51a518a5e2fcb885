//! The wire shapes of Coffer's native REST API (`/v1/...`).
//!
//! This crate owns only data: the JSON bodies the server accepts and returns, the error
//! envelope, and the names of the headers. It knows no HTTP stack, no storage and no
//! cryptography, so a Rust application can depend on `coffer-client` (which re-exports it)
//! without pulling in the server. The server derives its OpenAPI document from these types.
//!
//! ```
//! use coffer_api::CreateSecretRequest;
//! let req: CreateSecretRequest = serde_json::from_str(
//!     r#"{"name":"prod/database/password","secret_string":"s3cr3t"}"#).unwrap();
//! assert_eq!(req.name, "prod/database/password");
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Header that selects the region (namespace) of a request; absent means the server's default.
pub const REGION_HEADER: &str = "x-coffer-region";
/// Header carrying the request id on every response (and accepted on requests).
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// Tags as key → value.
pub type Tags = BTreeMap<String, String>;

/// The error envelope of every non-2xx response: `{"error":{"code":"…","message":"…"}}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ErrorResponse {
    /// The error.
    pub error: ErrorBody,
}

/// Code and human message of an error.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// Stable machine-readable code, e.g. `ResourceNotFound`, `InvalidParameter`.
    pub code: String,
    /// What went wrong and what to do about it. Never contains a secret value.
    pub message: String,
}

// ---------------------------------------------------------------------------------------
// Secrets
// ---------------------------------------------------------------------------------------

/// `POST /v1/secrets`.
#[derive(Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSecretRequest {
    /// 1–512 characters of `A-Za-z0-9/_+=.@-`, unique in the region.
    pub name: String,
    /// A string value (UTF-8). Exactly one of `secret_string` / `secret_binary`, or neither
    /// to create a secret without a version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_string: Option<String>,
    /// A binary value, base64-encoded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_binary: Option<String>,
    /// Free text, up to 2,048 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Tags.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Tags>,
    /// KMS key (id, ARN or `alias/name`) that wraps this secret's data keys; default key if absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms_key_id: Option<String>,
    /// Idempotency token; becomes the first version's id. 32–64 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_request_token: Option<String>,
}

impl std::fmt::Debug for CreateSecretRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreateSecretRequest")
            .field("name", &self.name)
            .field("value", &"<redacted>")
            .field("kms_key_id", &self.kms_key_id)
            .finish()
    }
}

/// Response of create and put: which secret and version were written.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SecretVersionRef {
    /// ARN-like identifier of the secret.
    pub arn: String,
    /// Secret name.
    pub name: String,
    /// Version id written (absent when a secret was created without a value).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_id: Option<String>,
    /// Staging labels the version holds after the call.
    #[serde(default)]
    pub version_stages: Vec<String>,
}

/// `PUT /v1/secrets/{id}/value`.
#[derive(Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutSecretValueRequest {
    /// A string value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_string: Option<String>,
    /// A binary value, base64-encoded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_binary: Option<String>,
    /// Idempotency token; becomes the version id. Same token + same value is a no-op,
    /// same token + different value is a `ResourceExists` conflict.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_request_token: Option<String>,
    /// Labels to attach (default `["AWSCURRENT"]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_stages: Option<Vec<String>>,
}

impl std::fmt::Debug for PutSecretValueRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PutSecretValueRequest")
            .field("value", &"<redacted>")
            .field("client_request_token", &self.client_request_token)
            .finish()
    }
}

/// `GET /v1/secrets/{id}/value` response.
#[derive(Clone, Serialize, Deserialize, ToSchema)]
pub struct SecretValue {
    /// ARN-like identifier.
    pub arn: String,
    /// Name.
    pub name: String,
    /// Version id returned.
    pub version_id: String,
    /// String value, when the version holds one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_string: Option<String>,
    /// Binary value (base64), when the version holds one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_binary: Option<String>,
    /// Labels of the version.
    pub version_stages: Vec<String>,
    /// When the version was created (RFC 3339).
    pub created_date: String,
}

impl std::fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretValue")
            .field("arn", &self.arn)
            .field("version_id", &self.version_id)
            .field("value", &"<redacted>")
            .finish()
    }
}

/// `PATCH /v1/secrets/{id}`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateSecretRequest {
    /// New description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// New KMS key for future versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms_key_id: Option<String>,
}

/// One version in describe / list-versions output.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct VersionInfo {
    /// Version id.
    pub version_id: String,
    /// Labels.
    pub version_stages: Vec<String>,
    /// Created (RFC 3339).
    pub created_date: String,
    /// KMS key that wraps this version's data key.
    pub kms_key_id: String,
}

/// Describe output (never contains the value).
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct SecretDescription {
    /// ARN-like identifier, `arn:coffer:secretsmanager:<region>:secret:<name>-<suffix>`.
    pub arn: String,
    /// Name.
    pub name: String,
    /// Region.
    pub region: String,
    /// Description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// KMS key id used for new versions (absent = the region's default key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms_key_id: Option<String>,
    /// Tags.
    pub tags: Tags,
    /// Created (RFC 3339).
    pub created_date: String,
    /// Last change to value or metadata (RFC 3339).
    pub last_changed_date: String,
    /// Last time a value was read (RFC 3339, day granularity as AWS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_accessed_date: Option<String>,
    /// When the secret is (or will be) purged, if deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted_date: Option<String>,
    /// Version id → labels, for versions that hold a label.
    pub version_ids_to_stages: BTreeMap<String, Vec<String>>,
    /// Whether rotation is configured and enabled (AWS `RotationEnabled`).
    #[serde(default)]
    pub rotation_enabled: bool,
    /// The rotator plugin (AWS `RotationLambdaARN`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation_plugin: Option<String>,
    /// The rotation schedule (AWS `RotationRules`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation_rules: Option<RotationRules>,
    /// When the last rotation finished (RFC 3339; AWS `LastRotatedDate`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_rotated_date: Option<String>,
    /// When the next scheduled rotation is due (RFC 3339; AWS `NextRotationDate`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_rotation_date: Option<String>,
    /// Coffer extra: the last failed rotation step (cleared by a successful rotation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_rotation_error: Option<RotationError>,
    /// Coffer extra: the whole rotation configuration and its state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation: Option<RotationInfo>,
}

/// AWS `RotationRules`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RotationRules {
    /// Days between rotations, for `rate(N days)` schedules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub automatically_after_days: Option<u32>,
    /// `rate(N days)`, `rate(N hours)` or `cron(min hour dom month dow year)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule_expression: Option<String>,
    /// Length of the rotation window, e.g. `2h` (AWS `Duration`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,
}

/// The last failed rotation step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RotationError {
    /// When it failed (RFC 3339).
    pub time: String,
    /// `create`, `set`, `test` or `finish`.
    pub step: String,
    /// `unreachable`, `auth-failed`, `verification-failed` (retried with backoff), or
    /// `invalid-secret`, `denied`, `target-refused`, `internal`, `plugin-crashed`,
    /// `plugin-not-found` (not retried automatically: fix the cause, then rotate again).
    pub kind: String,
    /// What went wrong (never a secret value).
    pub message: String,
}

/// A rotation in progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RotationProgress {
    /// Version id of the PENDING value being built (AWS `ClientRequestToken`).
    pub token: String,
    /// The step that runs next: `create`, `set`, `test` or `finish`.
    pub next_step: String,
    /// Failed attempts of that step so far.
    pub attempts: u32,
    /// When the next automatic attempt is due (absent: not retried automatically, or
    /// running now).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<String>,
    /// The node running it, while it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_owner: Option<String>,
    /// When that node's lease expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_until: Option<String>,
    /// When this rotation started (RFC 3339).
    pub started: String,
}

/// Coffer's rotation configuration and state of a secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RotationInfo {
    /// Rotator plugin.
    pub plugin: String,
    /// Schedule expression, if rotation is automatic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    /// Rotation window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<String>,
    /// Non-secret parameters handed to the plugin.
    #[serde(default)]
    pub config: BTreeMap<String, String>,
    /// Secrets the plugin may read (`get-secret`), subject to policy.
    #[serde(default)]
    pub granted_secrets: Vec<String>,
    /// Whether rotation is enabled.
    pub enabled: bool,
    /// The rotation in progress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_progress: Option<RotationProgress>,
}

/// `POST /v1/secrets/{id}/rotation`: configure rotation (and by default rotate now).
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateSecretRequest {
    /// Rotator plugin name (must be installed on the server). Required; an absent one is
    /// refused after authorization, like every other invalid parameter.
    #[serde(default)]
    pub plugin: String,
    /// `rate(N days)`, `rate(N hours)` or `cron(min hour dom month dow year)` (AWS
    /// syntax: one of day-of-month / day-of-week is `?`, day-of-week 1 = SUN … 7 = SAT).
    /// Absent: rotate only when asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    /// Rotation window after each scheduled time, e.g. `2h`, `30m`, `1d` (at most 24 h);
    /// a window missed entirely (server down) is skipped to the next occurrence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<String>,
    /// Non-secret parameters for the plugin (e.g. `strategy`, `tls`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<BTreeMap<String, String>>,
    /// Names of other secrets the plugin may read (e.g. a master user), subject to the
    /// policy on principal `Plugin::"<plugin>"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub granted_secrets: Option<Vec<String>>,
    /// Start a rotation now (default true).
    #[serde(default = "default_true")]
    pub rotate_immediately: bool,
}

fn default_true() -> bool {
    true
}

/// Response of the rotation routes: the secret's description (after the rotation, with
/// `wait=true`) with what was started. With `wait=true` a failed rotation is not this
/// but an error (502 `RotationFailed`); describe shows `last_rotation_error`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RotationResponse {
    /// The secret (its fields are at the top level of the JSON).
    #[serde(flatten)]
    pub secret: SecretDescription,
    /// Version id of the PENDING value of the rotation started or resumed (absent when
    /// none was started).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation_token: Option<String>,
    /// Whether a rotation in progress was resumed rather than a new one started.
    #[serde(default)]
    pub rotation_resumed: bool,
    /// `succeeded` (with `wait=true`), `started` (running in the background) or `none`
    /// (configured only).
    pub rotation_status: String,
}

/// Query of `GET /v1/secrets`. Results are sorted by name, ascending.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListSecretsQuery {
    /// Page size, 1–100 (default 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_results: Option<usize>,
    /// `next_token` of the previous page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
    /// Only names starting with this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name_prefix: Option<String>,
    /// Only secrets whose description contains this (case-insensitive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Only secrets with a tag of this key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag_key: Option<String>,
    /// Only secrets with a tag of this value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag_value: Option<String>,
    /// Also list secrets scheduled for deletion.
    #[serde(default)]
    pub include_deleted: bool,
}

/// `GET /v1/secrets` response.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ListSecretsResponse {
    /// Secrets of this page, sorted by name.
    pub secrets: Vec<SecretDescription>,
    /// Pass as `next_token` to get the next page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

/// `GET /v1/secrets/{id}/versions` response.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ListVersionsResponse {
    /// ARN.
    pub arn: String,
    /// Name.
    pub name: String,
    /// Versions, newest first.
    pub versions: Vec<VersionInfo>,
    /// Next page token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

/// `POST /v1/secrets/{id}/stages`: move (or remove) a staging label.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateStageRequest {
    /// Label to move, e.g. `AWSCURRENT` or a custom one.
    pub version_stage: String,
    /// Version that should receive the label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub move_to_version_id: Option<String>,
    /// Version that currently holds the label (required when it is attached somewhere).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remove_from_version_id: Option<String>,
}

/// `DELETE /v1/secrets/{id}` response.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DeleteSecretResponse {
    /// ARN.
    pub arn: String,
    /// Name.
    pub name: String,
    /// When the secret will be (or was) purged (RFC 3339).
    pub deletion_date: String,
}

/// `POST /v1/secrets/{id}/tags` and `POST /v1/keys/{id}/tags`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TagRequest {
    /// Tags to add or overwrite.
    pub tags: Tags,
}

/// `POST /v1/secrets/{id}/untag` and `POST /v1/keys/{id}/untag`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UntagRequest {
    /// Tag keys to remove.
    pub tag_keys: Vec<String>,
}

/// `POST /v1/secrets/batch-get`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchGetRequest {
    /// Names or ARNs, up to 20.
    pub secret_ids: Vec<String>,
}

/// One failed entry of a batch get.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BatchGetError {
    /// The id as requested.
    pub secret_id: String,
    /// Error code.
    pub code: String,
    /// Error message.
    pub message: String,
}

/// `POST /v1/secrets/batch-get` response.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BatchGetResponse {
    /// Values read.
    pub secret_values: Vec<SecretValue>,
    /// Entries that could not be read.
    pub errors: Vec<BatchGetError>,
}

/// `POST /v1/random-password`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RandomPasswordRequest {
    /// Length, 1–4096 (default 32).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_length: Option<u32>,
    /// Characters never to use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exclude_characters: Option<String>,
    /// No digits.
    #[serde(default)]
    pub exclude_numbers: bool,
    /// No punctuation.
    #[serde(default)]
    pub exclude_punctuation: bool,
    /// No upper-case letters.
    #[serde(default)]
    pub exclude_uppercase: bool,
    /// No lower-case letters.
    #[serde(default)]
    pub exclude_lowercase: bool,
    /// Allow the space character.
    #[serde(default)]
    pub include_space: bool,
    /// At least one character of every included class (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub require_each_included_type: Option<bool>,
}

/// `POST /v1/random-password` response.
#[derive(Clone, Serialize, Deserialize, ToSchema)]
pub struct RandomPasswordResponse {
    /// The generated password.
    pub random_password: String,
}

impl std::fmt::Debug for RandomPasswordResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RandomPasswordResponse(<redacted>)")
    }
}

// ---------------------------------------------------------------------------------------
// KMS keys
// ---------------------------------------------------------------------------------------

/// `POST /v1/keys`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKeyRequest {
    /// Description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Tags.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Tags>,
    /// Only `SYMMETRIC_DEFAULT` (AES-256-GCM) is supported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_spec: Option<String>,
}

/// Key metadata (never key material).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct KeyMetadata {
    /// Key id (UUID).
    pub key_id: String,
    /// `arn:coffer:kms:<region>:key/<id>`.
    pub arn: String,
    /// Region.
    pub region: String,
    /// Description.
    pub description: String,
    /// `Enabled`, `Disabled` or `PendingDeletion`.
    pub key_state: String,
    /// `SYMMETRIC_DEFAULT`.
    pub key_spec: String,
    /// `ENCRYPT_DECRYPT`.
    pub key_usage: String,
    /// Created (RFC 3339).
    pub creation_date: String,
    /// Deletion date when pending deletion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_date: Option<String>,
    /// Newest key version (1 at creation, +1 per rotation).
    pub current_key_version: u32,
    /// Aliases pointing at the key.
    pub aliases: Vec<String>,
    /// Tags.
    pub tags: Tags,
    /// Whether automatic rotation is on.
    pub rotation_enabled: bool,
    /// Automatic rotation period in days.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation_period_days: Option<u32>,
    /// Next automatic rotation (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_rotation_date: Option<String>,
    /// Whether this is the region's default key for secrets.
    pub is_default: bool,
}

/// `GET /v1/keys` response.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ListKeysResponse {
    /// Keys of this page.
    pub keys: Vec<KeyMetadata>,
    /// Next page token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

/// `PATCH /v1/keys/{id}`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateKeyRequest {
    /// New description.
    pub description: String,
}

/// `PUT /v1/keys/{id}/rotation`: turn automatic rotation on or off.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyRotationPolicyRequest {
    /// On or off.
    pub enabled: bool,
    /// Period in days, 1–2560 (default 365). AWS KMS requires at least 90; Coffer allows
    /// shorter periods for self-hosted setups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation_period_days: Option<u32>,
}

/// One rotation of a key.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct KeyRotation {
    /// Key version created by the rotation.
    pub key_version: u32,
    /// When (RFC 3339).
    pub rotation_date: String,
    /// `ON_DEMAND` or `AUTOMATIC`.
    pub rotation_type: String,
}

/// `GET /v1/keys/{id}/rotations` response.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ListKeyRotationsResponse {
    /// Key id.
    pub key_id: String,
    /// Rotations, oldest first.
    pub rotations: Vec<KeyRotation>,
}

/// `POST /v1/keys/{id}/schedule-deletion`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduleKeyDeletionRequest {
    /// 7–30 days (default 30).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_window_in_days: Option<u32>,
}

/// `POST /v1/keys/{id}/encrypt`.
#[derive(Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EncryptRequest {
    /// Base64 plaintext, up to 4,096 bytes decoded.
    pub plaintext: String,
    /// Encryption context, bound as additional authenticated data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption_context: Option<BTreeMap<String, String>>,
}

impl std::fmt::Debug for EncryptRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EncryptRequest")
            .field("plaintext", &"<redacted>")
            .finish()
    }
}

/// Encrypt / ReEncrypt response.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct EncryptResponse {
    /// Base64 ciphertext blob (Coffer envelope format v1).
    pub ciphertext_blob: String,
    /// Key id that encrypted.
    pub key_id: String,
    /// Key version that encrypted.
    pub key_version: u32,
}

/// `POST /v1/kms/decrypt`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecryptRequest {
    /// Base64 ciphertext blob.
    pub ciphertext_blob: String,
    /// The same encryption context given to encrypt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption_context: Option<BTreeMap<String, String>>,
    /// If given, decryption fails unless the blob was made by this key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
}

/// Decrypt response.
#[derive(Clone, Serialize, Deserialize, ToSchema)]
pub struct DecryptResponse {
    /// Base64 plaintext.
    pub plaintext: String,
    /// Key id that decrypted.
    pub key_id: String,
    /// Key version that decrypted.
    pub key_version: u32,
}

impl std::fmt::Debug for DecryptResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DecryptResponse")
            .field("key_id", &self.key_id)
            .field("plaintext", &"<redacted>")
            .finish()
    }
}

/// `POST /v1/keys/{id}/data-key` and `/data-key-without-plaintext`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GenerateDataKeyRequest {
    /// `AES_256` (default) or `AES_128`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_spec: Option<String>,
    /// Alternative to `key_spec`: 1–1024 bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number_of_bytes: Option<u32>,
    /// Encryption context bound to the wrapped key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption_context: Option<BTreeMap<String, String>>,
}

/// Data key response; `plaintext` is absent for the without-plaintext variant.
#[derive(Clone, Serialize, Deserialize, ToSchema)]
pub struct GenerateDataKeyResponse {
    /// Base64 data key, to use and then forget.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plaintext: Option<String>,
    /// Base64 wrapped data key, to store beside the data.
    pub ciphertext_blob: String,
    /// Key id.
    pub key_id: String,
    /// Key version.
    pub key_version: u32,
}

impl std::fmt::Debug for GenerateDataKeyResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GenerateDataKeyResponse")
            .field("key_id", &self.key_id)
            .field("plaintext", &"<redacted>")
            .finish()
    }
}

/// `POST /v1/kms/re-encrypt`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReEncryptRequest {
    /// Base64 ciphertext blob.
    pub ciphertext_blob: String,
    /// Context the blob was encrypted with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_encryption_context: Option<BTreeMap<String, String>>,
    /// Target key (default: the source key, newest version).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination_key_id: Option<String>,
    /// Context for the new blob (default: the source context).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination_encryption_context: Option<BTreeMap<String, String>>,
}

/// ReEncrypt response.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ReEncryptResponse {
    /// New base64 blob.
    pub ciphertext_blob: String,
    /// Source key id.
    pub source_key_id: String,
    /// Source key version.
    pub source_key_version: u32,
    /// Destination key id.
    pub key_id: String,
    /// Destination key version.
    pub key_version: u32,
}

/// `POST /v1/kms/random`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GenerateRandomRequest {
    /// 1–1024.
    pub number_of_bytes: u32,
}

/// GenerateRandom response.
#[derive(Clone, Serialize, Deserialize, ToSchema)]
pub struct GenerateRandomResponse {
    /// Base64 random bytes.
    pub plaintext: String,
}

impl std::fmt::Debug for GenerateRandomResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GenerateRandomResponse(<redacted>)")
    }
}

/// An alias.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AliasEntry {
    /// `alias/name`.
    pub alias_name: String,
    /// Key it points at.
    pub target_key_id: String,
}

/// `POST /v1/aliases`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateAliasRequest {
    /// `alias/` followed by 1–250 of `A-Za-z0-9/_-`; `alias/aws/` and `alias/coffer/` are reserved.
    pub alias_name: String,
    /// Key id or ARN.
    pub target_key_id: String,
}

/// `PUT /v1/aliases/{name}`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateAliasRequest {
    /// New target key id or ARN.
    pub target_key_id: String,
}

/// `GET /v1/aliases` response.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ListAliasesResponse {
    /// Aliases, sorted by name.
    pub aliases: Vec<AliasEntry>,
}

// ---------------------------------------------------------------------------------------
// Tokens and system
// ---------------------------------------------------------------------------------------

/// `POST /v1/tokens`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTokenRequest {
    /// Principal (user name) the token authenticates as.
    pub principal: String,
    /// Note.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Lifetime in seconds (absent = no expiry).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_seconds: Option<u64>,
}

/// Token metadata (never the token itself).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TokenInfo {
    /// Token id, used to revoke and in audit records.
    pub token_id: String,
    /// Principal.
    pub principal: String,
    /// Note.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Created (RFC 3339).
    pub created_date: String,
    /// Expiry (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_date: Option<String>,
}

/// `POST /v1/tokens` response: the token is shown once.
#[derive(Clone, Serialize, Deserialize, ToSchema)]
pub struct CreateTokenResponse {
    /// Metadata.
    #[serde(flatten)]
    pub info: TokenInfo,
    /// The bearer token. Store it now; it cannot be shown again.
    pub token: String,
}

impl std::fmt::Debug for CreateTokenResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreateTokenResponse")
            .field("info", &self.info)
            .field("token", &"<redacted>")
            .finish()
    }
}

/// `GET /v1/tokens` response.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ListTokensResponse {
    /// Tokens.
    pub tokens: Vec<TokenInfo>,
}

/// `GET /healthz` / `GET /readyz` response.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct HealthResponse {
    /// `ok` or why not.
    pub status: String,
    /// Server version.
    pub version: String,
}

/// `GET /v1/sys/policies` and `POST /v1/sys/policies/reload` response: the active
/// policy set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PolicyInfo {
    /// Where the set came from: the policy directory, or `builtin`.
    pub source: String,
    /// Hex SHA-256 over the set's files (names and contents).
    pub hash: String,
    /// Number of policies in the set.
    pub policies: usize,
    /// When this set was loaded (RFC 3339, UTC).
    pub loaded_at: String,
}

// ---------------------------------------------------------------------------------------
// Audit log
// ---------------------------------------------------------------------------------------

/// `GET /v1/audit` query: every filter is optional and they combine with AND.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// Only records of this principal (exact).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal: Option<String>,
    /// Only records of this operation (exact), e.g. `GetSecretValue`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// Only records whose resource starts with this, e.g. `secret:local/prod/`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// Only records with this decision: `allow`, `deny`, `unauthenticated`,
    /// `not-evaluated`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<String>,
    /// Only records at or after this time (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    /// Only records at or before this time (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
    /// Page size, 1–1,000 (default 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_results: Option<usize>,
    /// `next_token` of the previous page: the sequence number to continue from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
    /// `desc` (newest first, the default) or `asc` (oldest first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<String>,
}

/// A KMS key version a request used: the key of Encrypt/Decrypt/data keys/ReEncrypt, or
/// the key that wraps the data key of the secret version read or written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AuditKeyUse {
    /// Key id.
    pub key_id: String,
    /// Key version.
    pub key_version: u32,
}

/// One audit record: one `/v1` request, or one step of a rotation. Never holds a secret value, plaintext, data key,
/// ciphertext or token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AuditRecord {
    /// Position in the log, from 1, without gaps.
    pub seq: u64,
    /// When the request arrived (RFC 3339, UTC, nanoseconds).
    pub time: String,
    /// The request's `x-request-id`.
    pub request_id: String,
    /// Authenticated principal; absent when the request was not authenticated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal: Option<String>,
    /// Id of the token used (never the token).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_id: Option<String>,
    /// Operation, e.g. `GetSecretValue` (`UnknownOperation` for unrouted paths).
    pub action: String,
    /// What was authorized first: `secret:<region>/<name>`, `key:<region>/<id>`,
    /// `account:<region>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// Further resources the same request was authorized on (batch reads, ReEncrypt's
    /// destination key, an alias's new target).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_resources: Vec<String>,
    /// Region of the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// `allow`, `deny`, `unauthenticated` or `not-evaluated` (failed before authorization).
    pub decision: String,
    /// Ids of the policies that determined the decision.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub policies: Vec<String>,
    /// Why a request was denied or not authenticated (and any policy evaluation errors).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// HTTP status of the response.
    pub status: u16,
    /// Error code of the response, for errors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    /// Peer address of the connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_ip: Option<String>,
    /// KMS key versions used.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<AuditKeyUse>,
    /// For rotation steps: what the plugin did through the host (SQL statements, HTTP
    /// requests, secret reads, log lines), with secret values redacted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trail: Vec<AuditTrailEntry>,
    /// Hash of the previous record (64 zeros for the first), hex SHA-256.
    pub prev_hash: String,
    /// Hex SHA-256 over this record's canonical encoding (which includes `prev_hash`).
    pub hash: String,
}

/// One host call a rotation plugin made during a step.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct AuditTrailEntry {
    /// `sql`, `http`, `secret` or `log`.
    pub kind: String,
    /// What happened, with secret values redacted.
    pub detail: String,
}

/// `GET /v1/audit` response.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ListAuditResponse {
    /// Matching records, in the requested order.
    pub records: Vec<AuditRecord>,
    /// Pass as `next_token` to continue; absent when the log has no more records in this
    /// direction. A page may hold fewer than `max_results` records (even none) and still
    /// have a `next_token`: each call examines a bounded number of records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

/// `POST /v1/audit/verify` response (also what `coffer audit verify --data-dir` prints).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct VerifyAuditResponse {
    /// Whether the whole chain is intact.
    pub ok: bool,
    /// Records checked.
    pub records_checked: u64,
    /// Sequence number of the newest record in the log (0 = empty).
    pub head_seq: u64,
    /// The first record that was altered, removed, reordered or whose link breaks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_bad_seq: Option<u64>,
    /// `altered`, `removed`, `reordered`, `chain-broken`, `unreadable` or `head-mismatch`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem_kind: Option<String>,
    /// What is wrong, for humans.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
    /// Records 1 through this one were removed by retention (`audit_retention_days`); the
    /// walk started after it, from the hash retention kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub removed_through: Option<u64>,
}

/// Wipes plaintext-bearing fields of responses when they drop, so secret values, data keys
/// and tokens do not linger in freed memory. (Request types stay plain data so callers can
/// build them with `..Default::default()`; the server moves their plaintext into
/// zeroizing buffers at once.)
mod wipe {
    use zeroize::Zeroize;

    use super::*;

    fn wipe(s: &mut Option<String>) {
        if let Some(v) = s.as_mut() {
            v.zeroize();
        }
    }

    impl Drop for SecretValue {
        fn drop(&mut self) {
            wipe(&mut self.secret_string);
            wipe(&mut self.secret_binary);
        }
    }
    impl Drop for RandomPasswordResponse {
        fn drop(&mut self) {
            self.random_password.zeroize();
        }
    }
    impl Drop for DecryptResponse {
        fn drop(&mut self) {
            self.plaintext.zeroize();
        }
    }
    impl Drop for GenerateDataKeyResponse {
        fn drop(&mut self) {
            wipe(&mut self.plaintext);
        }
    }
    impl Drop for GenerateRandomResponse {
        fn drop(&mut self) {
            self.plaintext.zeroize();
        }
    }
    impl Drop for CreateTokenResponse {
        fn drop(&mut self) {
            self.token.zeroize();
        }
    }
}
