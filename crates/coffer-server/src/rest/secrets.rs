//! Secrets routes: translate HTTP shapes, authorize, call coffer-core.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use coffer_api::*;
use coffer_core::CoreError;
use serde::Deserialize;

use crate::auth::{Caller, Target};
use crate::body::{JsonBody, QueryParams};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

type S = State<Arc<AppState>>;

/// Name and tags of the secret `id` names, for authorization. A missing secret is
/// authorized by its name with no tags, so callers without access learn nothing of its
/// existence.
fn secret_facts(s: &AppState, region: &str, id: &str) -> ApiResult<(String, Tags)> {
    match s.core.describe_secret(region, id) {
        Ok(d) => Ok((d.name, d.tags)),
        Err(CoreError::NotFound(_)) => Ok((s.core.secret_name_of(region, id)?, Tags::new())),
        Err(e) => Err(e.into()),
    }
}

pub(crate) fn authorize_secret(s: &AppState, c: &Caller, action: &str, id: &str) -> ApiResult<()> {
    let (name, tags) = secret_facts(s, &c.region, id)?;
    s.authorize(
        c,
        action,
        Target::Secret {
            name: &name,
            tags: &tags,
        },
        None,
    )
}

pub async fn create(
    State(s): S,
    c: Caller,
    JsonBody(req): JsonBody<CreateSecretRequest>,
) -> ApiResult<(StatusCode, Json<SecretVersionRef>)> {
    let tags = req.tags.clone().unwrap_or_default();
    coffer_core::SecretName::parse(&req.name)?;
    s.authorize(
        &c,
        "CreateSecret",
        Target::Secret {
            name: &req.name,
            tags: &tags,
        },
        None,
    )?;
    let (created, key) = s.core.create_secret_and_key(&c.region, &req).await?;
    c.used(key.as_ref());
    Ok((StatusCode::CREATED, Json(created)))
}

pub async fn list(
    State(s): S,
    c: Caller,
    QueryParams(q): QueryParams<ListSecretsQuery>,
) -> ApiResult<Json<ListSecretsResponse>> {
    s.authorize(&c, "ListSecrets", Target::Account, None)?;
    let quiet = c.unaudited();
    let engine_check = |d: &SecretDescription| {
        s.authorize(
            &quiet,
            "DescribeSecret",
            Target::Secret {
                name: &d.name,
                tags: &d.tags,
            },
            None,
        )
        .is_ok()
    };
    Ok(Json(s.core.list_secrets_filtered(
        &c.region,
        &q,
        engine_check,
    )?))
}

pub async fn describe(
    State(s): S,
    c: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<SecretDescription>> {
    authorize_secret(&s, &c, "DescribeSecret", &id)?;
    Ok(Json(s.core.describe_secret(&c.region, &id)?))
}

pub async fn update(
    State(s): S,
    c: Caller,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<UpdateSecretRequest>,
) -> ApiResult<Json<SecretDescription>> {
    authorize_secret(&s, &c, "UpdateSecret", &id)?;
    Ok(Json(s.core.update_secret(&c.region, &id, &req).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeleteQuery {
    recovery_window_days: Option<u32>,
    #[serde(default)]
    force: bool,
}

pub async fn delete(
    State(s): S,
    c: Caller,
    Path(id): Path<String>,
    QueryParams(q): QueryParams<DeleteQuery>,
) -> ApiResult<Json<DeleteSecretResponse>> {
    authorize_secret(&s, &c, "DeleteSecret", &id)?;
    Ok(Json(
        s.core
            .delete_secret(&c.region, &id, q.recovery_window_days, q.force)
            .await?,
    ))
}

pub async fn restore(
    State(s): S,
    c: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<SecretDescription>> {
    authorize_secret(&s, &c, "RestoreSecret", &id)?;
    Ok(Json(s.core.restore_secret(&c.region, &id).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValueQuery {
    version_id: Option<String>,
    version_stage: Option<String>,
}

pub async fn get_value(
    State(s): S,
    c: Caller,
    Path(id): Path<String>,
    QueryParams(q): QueryParams<ValueQuery>,
) -> ApiResult<Json<SecretValue>> {
    let (value, key) = s
        .core
        .get_secret_value_checked(
            &c.region,
            &id,
            q.version_id.as_deref(),
            q.version_stage.as_deref(),
            |name, tags| s.authorize(&c, "GetSecretValue", Target::Secret { name, tags }, None),
        )
        .await?;
    c.used(Some(&key));
    Ok(Json(value))
}

pub async fn put_value(
    State(s): S,
    c: Caller,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<PutSecretValueRequest>,
) -> ApiResult<Json<SecretVersionRef>> {
    authorize_secret(&s, &c, "PutSecretValue", &id)?;
    let (version, key) = s
        .core
        .put_secret_value_and_key(&c.region, &id, &req)
        .await?;
    c.used(Some(&key));
    Ok(Json(version))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VersionsQuery {
    #[serde(default)]
    include_deprecated: bool,
}

pub async fn versions(
    State(s): S,
    c: Caller,
    Path(id): Path<String>,
    QueryParams(q): QueryParams<VersionsQuery>,
) -> ApiResult<Json<ListVersionsResponse>> {
    authorize_secret(&s, &c, "ListSecretVersionIds", &id)?;
    Ok(Json(s.core.list_secret_versions(
        &c.region,
        &id,
        q.include_deprecated,
    )?))
}

pub async fn stages(
    State(s): S,
    c: Caller,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<UpdateStageRequest>,
) -> ApiResult<Json<SecretDescription>> {
    authorize_secret(&s, &c, "UpdateSecretVersionStage", &id)?;
    Ok(Json(
        s.core
            .update_secret_version_stage(&c.region, &id, &req)
            .await?,
    ))
}

pub async fn tag(
    State(s): S,
    c: Caller,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<TagRequest>,
) -> ApiResult<Json<SecretDescription>> {
    authorize_secret(&s, &c, "TagSecret", &id)?;
    Ok(Json(s.core.tag_secret(&c.region, &id, &req.tags).await?))
}

pub async fn untag(
    State(s): S,
    c: Caller,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<UntagRequest>,
) -> ApiResult<Json<SecretDescription>> {
    authorize_secret(&s, &c, "UntagSecret", &id)?;
    Ok(Json(
        s.core.untag_secret(&c.region, &id, &req.tag_keys).await?,
    ))
}

pub async fn batch_get(
    State(s): S,
    c: Caller,
    JsonBody(req): JsonBody<BatchGetRequest>,
) -> ApiResult<Json<BatchGetResponse>> {
    if req.secret_ids.is_empty() || req.secret_ids.len() > 20 {
        return Err(ApiError::bad_request("secret_ids must name 1–20 secrets"));
    }
    let mut out = BatchGetResponse {
        secret_values: Vec::new(),
        errors: Vec::new(),
    };
    for id in &req.secret_ids {
        let res = async {
            authorize_secret(&s, &c, "GetSecretValue", id)?;
            let (value, key) = s
                .core
                .get_secret_value_and_key(&c.region, id, None, None)
                .await
                .map_err(ApiError::from)?;
            c.used(Some(&key));
            Ok::<_, ApiError>(value)
        }
        .await;
        match res {
            Ok(v) => out.secret_values.push(v),
            Err(e) => out.errors.push(BatchGetError {
                secret_id: id.clone(),
                code: e.code.to_string(),
                message: e.message,
            }),
        }
    }
    Ok(Json(out))
}

pub async fn random_password(
    State(s): S,
    c: Caller,
    JsonBody(req): JsonBody<RandomPasswordRequest>,
) -> ApiResult<Json<RandomPasswordResponse>> {
    s.authorize(&c, "GetRandomPassword", Target::Account, None)?;
    let p = coffer_core::generate_password(&req)?;
    Ok(Json(RandomPasswordResponse {
        random_password: p.to_string(),
    }))
}
