//! The native REST front door (`/v1`): one file per resource; handlers only translate
//! shapes, authorize and call coffer-core.

mod admin;
mod audit;
mod keys;
mod rotation;
mod secrets;

use axum::routing::{delete, get, patch, post, put};

use crate::routes::{RouteDoc, RouteTable};

macro_rules! doc {
    ($m:literal $p:literal $op:literal, $sum:literal, $req:expr, $resp:expr, $st:literal) => {
        doc!($m $p $op, $sum, $req, $resp, $st, true, &[])
    };
    ($m:literal $p:literal $op:literal, $sum:literal, $req:expr, $resp:expr, $st:literal, $auth:expr, $q:expr) => {
        RouteDoc { method: $m, path: $p, operation: $op, summary: $sum, request: $req, response: $resp, status: $st, auth: $auth, query: $q }
    };
}

const LIST_SECRETS_Q: &[(&str, &str)] = &[
    ("max_results", "page size 1–100"),
    ("next_token", "from the previous page"),
    ("name_prefix", "only names starting with this"),
    ("description", "only descriptions containing this"),
    ("tag_key", "only secrets with this tag key"),
    ("tag_value", "only secrets with this tag value"),
    ("include_deleted", "also secrets scheduled for deletion"),
];

const WAIT_Q: &[(&str, &str)] = &[(
    "wait",
    "true: run the rotation in the request and answer with its result",
)];

const AUDIT_Q: &[(&str, &str)] = &[
    ("principal", "only this principal"),
    ("action", "only this operation, e.g. GetSecretValue"),
    (
        "resource",
        "only resources starting with this, e.g. secret:local/prod/",
    ),
    ("decision", "allow, deny, unauthenticated or not-evaluated"),
    ("since", "RFC 3339; only records at or after it"),
    ("until", "RFC 3339; only records at or before it"),
    ("max_results", "page size 1–1000 (default 100)"),
    ("next_token", "from the previous page"),
    ("order", "desc (newest first, default) or asc"),
];

/// Every route of the server, documented.
pub fn table() -> RouteTable {
    RouteTable::new()
        // Secrets
        .add(doc!("POST" "/v1/secrets" "CreateSecret", "Create a secret, optionally with its first value", Some("CreateSecretRequest"), Some("SecretVersionRef"), 201), post(secrets::create))
        .add(doc!("GET" "/v1/secrets" "ListSecrets", "List secrets the caller may describe, sorted by name", None, Some("ListSecretsResponse"), 200, true, LIST_SECRETS_Q), get(secrets::list))
        .add(doc!("POST" "/v1/secrets/batch-get" "BatchGetSecretValue", "Read the current value of up to 20 secrets", Some("BatchGetRequest"), Some("BatchGetResponse"), 200), post(secrets::batch_get))
        .add(doc!("GET" "/v1/secrets/{id}" "DescribeSecret", "Metadata of a secret (never its value)", None, Some("SecretDescription"), 200), get(secrets::describe))
        .add(doc!("PATCH" "/v1/secrets/{id}" "UpdateSecret", "Change description or KMS key", Some("UpdateSecretRequest"), Some("SecretDescription"), 200), patch(secrets::update))
        .add(doc!("DELETE" "/v1/secrets/{id}" "DeleteSecret", "Schedule deletion (7–30 day recovery window) or delete now with force=true", None, Some("DeleteSecretResponse"), 200, true, &[("recovery_window_days", "7–30, default 30"), ("force", "delete now, without recovery")]), delete(secrets::delete))
        .add(doc!("POST" "/v1/secrets/{id}/restore" "RestoreSecret", "Cancel a scheduled deletion", None, Some("SecretDescription"), 200), post(secrets::restore))
        .add(doc!("GET" "/v1/secrets/{id}/value" "GetSecretValue", "Read a value: AWSCURRENT, or by version id or label", None, Some("SecretValue"), 200, true, &[("version_id", "a version id"), ("version_stage", "a staging label, e.g. AWSPREVIOUS")]), get(secrets::get_value))
        .add(doc!("PUT" "/v1/secrets/{id}/value" "PutSecretValue", "Store a new version (idempotent on client_request_token)", Some("PutSecretValueRequest"), Some("SecretVersionRef"), 200), put(secrets::put_value))
        .add(doc!("GET" "/v1/secrets/{id}/versions" "ListSecretVersionIds", "Versions, newest first", None, Some("ListVersionsResponse"), 200, true, &[("include_deprecated", "also versions without a label")]), get(secrets::versions))
        .add(doc!("POST" "/v1/secrets/{id}/stages" "UpdateSecretVersionStage", "Move or remove a staging label", Some("UpdateStageRequest"), Some("SecretDescription"), 200), post(secrets::stages))
        .add(doc!("POST" "/v1/secrets/{id}/tags" "TagSecret", "Add or overwrite tags", Some("TagRequest"), Some("SecretDescription"), 200), post(secrets::tag))
        .add(doc!("POST" "/v1/secrets/{id}/untag" "UntagSecret", "Remove tags", Some("UntagRequest"), Some("SecretDescription"), 200), post(secrets::untag))
        .add(doc!("POST" "/v1/secrets/{id}/rotation" "RotateSecret", "Configure rotation (plugin, schedule, window, config, granted secrets) and by default rotate now; wait=true runs it in the request and returns the result", Some("RotateSecretRequest"), Some("RotationResponse"), 200, true, WAIT_Q), post(rotation::configure))
        .add(doc!("DELETE" "/v1/secrets/{id}/rotation" "CancelRotateSecret", "Cancel rotation: disable it, drop the rotation in progress and its AWSPENDING label (the version is kept)", None, Some("SecretDescription"), 200), delete(rotation::cancel))
        .add(doc!("POST" "/v1/secrets/{id}/rotate" "RotateSecret", "Rotate now with the stored config (resumes a rotation in progress at its step); wait=true runs it in the request", None, Some("RotationResponse"), 200, true, WAIT_Q), post(rotation::rotate))
        .add(doc!("POST" "/v1/random-password" "GetRandomPassword", "Generate a random password", Some("RandomPasswordRequest"), Some("RandomPasswordResponse"), 200), post(secrets::random_password))
        // KMS keys
        .add(doc!("POST" "/v1/keys" "CreateKey", "Create a symmetric AES-256 key", Some("CreateKeyRequest"), Some("KeyMetadata"), 201), post(keys::create))
        .add(doc!("GET" "/v1/keys" "ListKeys", "List keys the caller may describe", None, Some("ListKeysResponse"), 200, true, &[("max_results", "page size"), ("next_token", "from the previous page")]), get(keys::list))
        .add(doc!("GET" "/v1/keys/{key}" "DescribeKey", "Key metadata", None, Some("KeyMetadata"), 200), get(keys::describe))
        .add(doc!("PATCH" "/v1/keys/{key}" "UpdateKeyDescription", "Change the description", Some("UpdateKeyRequest"), Some("KeyMetadata"), 200), patch(keys::update))
        .add(doc!("POST" "/v1/keys/{key}/enable" "EnableKey", "Enable a key", None, Some("KeyMetadata"), 200), post(keys::enable))
        .add(doc!("POST" "/v1/keys/{key}/disable" "DisableKey", "Disable a key: it refuses to encrypt and decrypt", None, Some("KeyMetadata"), 200), post(keys::disable))
        .add(doc!("POST" "/v1/keys/{key}/rotate" "RotateKeyOnDemand", "New key version now; old ciphertexts still decrypt", None, Some("KeyMetadata"), 200), post(keys::rotate))
        .add(doc!("GET" "/v1/keys/{key}/rotations" "ListKeyRotations", "Rotations of a key", None, Some("ListKeyRotationsResponse"), 200), get(keys::rotations))
        .add(doc!("PUT" "/v1/keys/{key}/rotation" "EnableKeyRotation", "Turn automatic rotation on (period in days) or off", Some("KeyRotationPolicyRequest"), Some("KeyMetadata"), 200), put(keys::set_rotation))
        .add(doc!("POST" "/v1/keys/{key}/schedule-deletion" "ScheduleKeyDeletion", "Delete the key after 7–30 days", Some("ScheduleKeyDeletionRequest"), Some("KeyMetadata"), 200), post(keys::schedule_deletion))
        .add(doc!("POST" "/v1/keys/{key}/cancel-deletion" "CancelKeyDeletion", "Cancel a scheduled deletion (the key becomes Disabled)", None, Some("KeyMetadata"), 200), post(keys::cancel_deletion))
        .add(doc!("POST" "/v1/keys/{key}/tags" "TagKey", "Add or overwrite tags", Some("TagRequest"), Some("KeyMetadata"), 200), post(keys::tag))
        .add(doc!("POST" "/v1/keys/{key}/untag" "UntagKey", "Remove tags", Some("UntagRequest"), Some("KeyMetadata"), 200), post(keys::untag))
        .add(doc!("POST" "/v1/keys/{key}/encrypt" "Encrypt", "Encrypt up to 4,096 bytes", Some("EncryptRequest"), Some("EncryptResponse"), 200), post(keys::encrypt))
        .add(doc!("POST" "/v1/keys/{key}/data-key" "GenerateDataKey", "A data key in plaintext and wrapped", Some("GenerateDataKeyRequest"), Some("GenerateDataKeyResponse"), 200), post(keys::data_key))
        .add(doc!("POST" "/v1/keys/{key}/data-key-without-plaintext" "GenerateDataKeyWithoutPlaintext", "A wrapped data key only", Some("GenerateDataKeyRequest"), Some("GenerateDataKeyResponse"), 200), post(keys::data_key_without_plaintext))
        .add(doc!("POST" "/v1/kms/decrypt" "Decrypt", "Decrypt a ciphertext blob (the key is named inside it)", Some("DecryptRequest"), Some("DecryptResponse"), 200), post(keys::decrypt))
        .add(doc!("POST" "/v1/kms/re-encrypt" "ReEncrypt", "Re-encrypt under another key or the newest key version, without exposing plaintext", Some("ReEncryptRequest"), Some("ReEncryptResponse"), 200), post(keys::re_encrypt))
        .add(doc!("POST" "/v1/kms/random" "GenerateRandom", "Random bytes from the server's CSPRNG", Some("GenerateRandomRequest"), Some("GenerateRandomResponse"), 200), post(keys::random))
        .add(doc!("GET" "/v1/aliases" "ListAliases", "All aliases of the region", None, Some("ListAliasesResponse"), 200), get(keys::list_aliases))
        .add(doc!("POST" "/v1/aliases" "CreateAlias", "Create alias/NAME for a key", Some("CreateAliasRequest"), Some("AliasEntry"), 201), post(keys::create_alias))
        .add(doc!("PUT" "/v1/aliases/{alias}" "UpdateAlias", "Point an alias at another key", Some("UpdateAliasRequest"), Some("AliasEntry"), 200), put(keys::update_alias))
        .add(doc!("DELETE" "/v1/aliases/{alias}" "DeleteAlias", "Delete an alias", None, None, 204), delete(keys::delete_alias))
        // Tokens and system
        .add(doc!("POST" "/v1/tokens" "CreateToken", "Create a bearer token for a principal (shown once)", Some("CreateTokenRequest"), Some("CreateTokenResponse"), 201), post(admin::create_token))
        .add(doc!("GET" "/v1/tokens" "ListTokens", "Token metadata", None, Some("ListTokensResponse"), 200), get(admin::list_tokens))
        .add(doc!("DELETE" "/v1/tokens/{token_id}" "RevokeToken", "Revoke a token", None, None, 204), delete(admin::revoke_token))
        .add(doc!("POST" "/v1/sys/reset" "ResetState", "Dev mode only: wipe all state", None, None, 204), post(admin::reset))
        .add(doc!("GET" "/v1/sys/policies" "GetPolicyInfo", "The active policy set: source, hash, number of policies, loaded-at time", None, Some("PolicyInfo"), 200), get(admin::policy_info))
        .add(doc!("POST" "/v1/sys/policies/reload" "ReloadPolicies", "Reload the policy directory; 422 InvalidPolicies (file:line: message list) keeps the old set", None, Some("PolicyInfo"), 200), post(admin::reload_policies))
        // Audit log
        .add(doc!("GET" "/v1/audit" "GetAuditLog", "Audit records, newest first unless order=asc; filters combine with AND", None, Some("ListAuditResponse"), 200, true, AUDIT_Q), get(audit::list))
        .add(doc!("POST" "/v1/audit/verify" "VerifyAuditLog", "Walk the audit hash chain; names the first record altered, removed or reordered", None, Some("VerifyAuditResponse"), 200), post(audit::verify))
        .add(doc!("GET" "/healthz" "Health", "Liveness", None, Some("HealthResponse"), 200, false, &[]), get(admin::healthz))
        .add(doc!("GET" "/readyz" "Ready", "Readiness (store answers)", None, Some("HealthResponse"), 200, false, &[]), get(admin::readyz))
        .add(doc!("GET" "/metrics" "Metrics", "Prometheus metrics", None, None, 200, false, &[]), get(admin::metrics))
        .add(doc!("GET" "/openapi.json" "OpenApi", "This document", None, None, 200, false, &[]), get(admin::openapi))
}
