//! KMS routes: keys, aliases and envelope operations.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use coffer_api::*;
use coffer_core::CoreError;
use serde::Deserialize;

use crate::auth::{Caller, Target};
use crate::body::{JsonBody, QueryParams};
use crate::error::ApiResult;
use crate::state::AppState;

type S = State<Arc<AppState>>;

/// Authorizes `action` on the key `key_ref` names (by its id, aliases and tags; a missing
/// key by the reference given).
fn authorize_key(
    s: &AppState,
    c: &Caller,
    action: &str,
    key_ref: &str,
    ctx: Option<&BTreeMap<String, String>>,
) -> ApiResult<()> {
    match s.core.describe_key(&c.region, key_ref) {
        Ok(k) => s.authorize(
            c,
            action,
            Target::Key {
                key_id: &k.key_id,
                aliases: &k.aliases,
                tags: &k.tags,
            },
            ctx,
        ),
        Err(CoreError::NotFound(_)) => s.authorize(
            c,
            action,
            Target::Key {
                key_id: key_ref,
                aliases: &[],
                tags: &Tags::new(),
            },
            ctx,
        ),
        Err(e) => Err(e.into()),
    }
}

pub async fn create(
    State(s): S,
    c: Caller,
    JsonBody(req): JsonBody<CreateKeyRequest>,
) -> ApiResult<(StatusCode, Json<KeyMetadata>)> {
    s.authorize(&c, "CreateKey", Target::Account, None)?;
    Ok((
        StatusCode::CREATED,
        Json(s.core.create_key(&c.region, &req).await?),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    max_results: Option<usize>,
    next_token: Option<String>,
}

pub async fn list(
    State(s): S,
    c: Caller,
    QueryParams(q): QueryParams<ListQuery>,
) -> ApiResult<Json<ListKeysResponse>> {
    s.authorize(&c, "ListKeys", Target::Account, None)?;
    let mut resp = s
        .core
        .list_keys(&c.region, q.max_results, q.next_token.as_deref())?;
    let quiet = c.unaudited();
    resp.keys.retain(|k| {
        s.authorize(
            &quiet,
            "DescribeKey",
            Target::Key {
                key_id: &k.key_id,
                aliases: &k.aliases,
                tags: &k.tags,
            },
            None,
        )
        .is_ok()
    });
    Ok(Json(resp))
}

pub async fn describe(
    State(s): S,
    c: Caller,
    Path(key): Path<String>,
) -> ApiResult<Json<KeyMetadata>> {
    authorize_key(&s, &c, "DescribeKey", &key, None)?;
    Ok(Json(s.core.describe_key(&c.region, &key)?))
}

pub async fn update(
    State(s): S,
    c: Caller,
    Path(key): Path<String>,
    JsonBody(req): JsonBody<UpdateKeyRequest>,
) -> ApiResult<Json<KeyMetadata>> {
    authorize_key(&s, &c, "UpdateKeyDescription", &key, None)?;
    Ok(Json(
        s.core
            .update_key_description(&c.region, &key, &req.description)
            .await?,
    ))
}

pub async fn enable(
    State(s): S,
    c: Caller,
    Path(key): Path<String>,
) -> ApiResult<Json<KeyMetadata>> {
    authorize_key(&s, &c, "EnableKey", &key, None)?;
    Ok(Json(s.core.set_key_enabled(&c.region, &key, true).await?))
}

pub async fn disable(
    State(s): S,
    c: Caller,
    Path(key): Path<String>,
) -> ApiResult<Json<KeyMetadata>> {
    authorize_key(&s, &c, "DisableKey", &key, None)?;
    Ok(Json(s.core.set_key_enabled(&c.region, &key, false).await?))
}

pub async fn rotate(
    State(s): S,
    c: Caller,
    Path(key): Path<String>,
) -> ApiResult<Json<KeyMetadata>> {
    authorize_key(&s, &c, "RotateKeyOnDemand", &key, None)?;
    Ok(Json(s.core.rotate_key(&c.region, &key).await?))
}

pub async fn rotations(
    State(s): S,
    c: Caller,
    Path(key): Path<String>,
) -> ApiResult<Json<ListKeyRotationsResponse>> {
    authorize_key(&s, &c, "ListKeyRotations", &key, None)?;
    Ok(Json(s.core.list_key_rotations(&c.region, &key)?))
}

pub async fn set_rotation(
    State(s): S,
    c: Caller,
    Path(key): Path<String>,
    JsonBody(req): JsonBody<KeyRotationPolicyRequest>,
) -> ApiResult<Json<KeyMetadata>> {
    let action = if req.enabled {
        "EnableKeyRotation"
    } else {
        "DisableKeyRotation"
    };
    c.audit.action(action);
    authorize_key(&s, &c, action, &key, None)?;
    Ok(Json(s.core.set_key_rotation(&c.region, &key, &req).await?))
}

pub async fn schedule_deletion(
    State(s): S,
    c: Caller,
    Path(key): Path<String>,
    JsonBody(req): JsonBody<ScheduleKeyDeletionRequest>,
) -> ApiResult<Json<KeyMetadata>> {
    authorize_key(&s, &c, "ScheduleKeyDeletion", &key, None)?;
    Ok(Json(
        s.core.schedule_key_deletion(&c.region, &key, &req).await?,
    ))
}

pub async fn cancel_deletion(
    State(s): S,
    c: Caller,
    Path(key): Path<String>,
) -> ApiResult<Json<KeyMetadata>> {
    authorize_key(&s, &c, "CancelKeyDeletion", &key, None)?;
    Ok(Json(s.core.cancel_key_deletion(&c.region, &key).await?))
}

pub async fn tag(
    State(s): S,
    c: Caller,
    Path(key): Path<String>,
    JsonBody(req): JsonBody<TagRequest>,
) -> ApiResult<Json<KeyMetadata>> {
    authorize_key(&s, &c, "TagKey", &key, None)?;
    Ok(Json(s.core.tag_key(&c.region, &key, &req.tags).await?))
}

pub async fn untag(
    State(s): S,
    c: Caller,
    Path(key): Path<String>,
    JsonBody(req): JsonBody<UntagRequest>,
) -> ApiResult<Json<KeyMetadata>> {
    authorize_key(&s, &c, "UntagKey", &key, None)?;
    Ok(Json(
        s.core.untag_key(&c.region, &key, &req.tag_keys).await?,
    ))
}

pub async fn encrypt(
    State(s): S,
    c: Caller,
    Path(key): Path<String>,
    JsonBody(req): JsonBody<EncryptRequest>,
) -> ApiResult<Json<EncryptResponse>> {
    authorize_key(&s, &c, "Encrypt", &key, req.encryption_context.as_ref())?;
    let resp = s.core.encrypt(&c.region, &key, &req)?;
    c.used_key(&resp.key_id, resp.key_version);
    Ok(Json(resp))
}

pub async fn data_key(
    State(s): S,
    c: Caller,
    Path(key): Path<String>,
    JsonBody(req): JsonBody<GenerateDataKeyRequest>,
) -> ApiResult<Json<GenerateDataKeyResponse>> {
    generate_data_key(&s, &c, &key, &req, true)
}

pub async fn data_key_without_plaintext(
    State(s): S,
    c: Caller,
    Path(key): Path<String>,
    JsonBody(req): JsonBody<GenerateDataKeyRequest>,
) -> ApiResult<Json<GenerateDataKeyResponse>> {
    generate_data_key(&s, &c, &key, &req, false)
}

/// GenerateDataKey and its without-plaintext twin differ only in action and output.
fn generate_data_key(
    s: &AppState,
    c: &Caller,
    key: &str,
    req: &GenerateDataKeyRequest,
    with_plaintext: bool,
) -> ApiResult<Json<GenerateDataKeyResponse>> {
    let action = if with_plaintext {
        "GenerateDataKey"
    } else {
        "GenerateDataKeyWithoutPlaintext"
    };
    authorize_key(s, c, action, key, req.encryption_context.as_ref())?;
    let resp = s
        .core
        .generate_data_key(&c.region, key, req, with_plaintext)?;
    c.used_key(&resp.key_id, resp.key_version);
    Ok(Json(resp))
}

pub async fn decrypt(
    State(s): S,
    c: Caller,
    JsonBody(req): JsonBody<DecryptRequest>,
) -> ApiResult<Json<DecryptResponse>> {
    let key_id = s.core.blob_key_id(&req.ciphertext_blob)?;
    authorize_key(&s, &c, "Decrypt", &key_id, req.encryption_context.as_ref())?;
    let resp = s.core.decrypt(&c.region, &req)?;
    c.used_key(&resp.key_id, resp.key_version);
    Ok(Json(resp))
}

pub async fn re_encrypt(
    State(s): S,
    c: Caller,
    JsonBody(req): JsonBody<ReEncryptRequest>,
) -> ApiResult<Json<ReEncryptResponse>> {
    let src = s.core.blob_key_id(&req.ciphertext_blob)?;
    authorize_key(
        &s,
        &c,
        "ReEncryptFrom",
        &src,
        req.source_encryption_context.as_ref(),
    )?;
    let dst = req.destination_key_id.clone().unwrap_or(src);
    let dst_ctx = req
        .destination_encryption_context
        .as_ref()
        .or(req.source_encryption_context.as_ref());
    authorize_key(&s, &c, "ReEncryptTo", &dst, dst_ctx)?;
    let resp = s.core.re_encrypt(&c.region, &req)?;
    c.used_key(&resp.source_key_id, resp.source_key_version);
    c.used_key(&resp.key_id, resp.key_version);
    Ok(Json(resp))
}

pub async fn random(
    State(s): S,
    c: Caller,
    JsonBody(req): JsonBody<GenerateRandomRequest>,
) -> ApiResult<Json<GenerateRandomResponse>> {
    s.authorize(&c, "GenerateRandom", Target::Account, None)?;
    Ok(Json(s.core.generate_random(&req)?))
}

pub async fn list_aliases(State(s): S, c: Caller) -> ApiResult<Json<ListAliasesResponse>> {
    s.authorize(&c, "ListAliases", Target::Account, None)?;
    Ok(Json(s.core.list_aliases(&c.region)?))
}

pub async fn create_alias(
    State(s): S,
    c: Caller,
    JsonBody(req): JsonBody<CreateAliasRequest>,
) -> ApiResult<(StatusCode, Json<AliasEntry>)> {
    authorize_key(&s, &c, "CreateAlias", &req.target_key_id, None)?;
    Ok((
        StatusCode::CREATED,
        Json(s.core.create_alias(&c.region, &req).await?),
    ))
}

pub async fn update_alias(
    State(s): S,
    c: Caller,
    Path(alias): Path<String>,
    JsonBody(req): JsonBody<UpdateAliasRequest>,
) -> ApiResult<Json<AliasEntry>> {
    authorize_key(&s, &c, "UpdateAlias", &alias, None)?;
    authorize_key(&s, &c, "UpdateAlias", &req.target_key_id, None)?;
    Ok(Json(
        s.core
            .update_alias(&c.region, &alias, &req.target_key_id)
            .await?,
    ))
}

pub async fn delete_alias(
    State(s): S,
    c: Caller,
    Path(alias): Path<String>,
) -> ApiResult<StatusCode> {
    authorize_key(&s, &c, "DeleteAlias", &alias, None)?;
    s.core.delete_alias(&c.region, &alias).await?;
    Ok(StatusCode::NO_CONTENT)
}
