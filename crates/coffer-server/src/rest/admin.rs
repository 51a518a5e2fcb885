//! Tokens, dev-mode reset, the policy set (info and reload), health, metrics and the
//! OpenAPI document.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use coffer_api::*;

use crate::auth::{Caller, Target};
use crate::body::JsonBody;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

type S = State<Arc<AppState>>;

pub async fn create_token(
    State(s): S,
    c: Caller,
    JsonBody(req): JsonBody<CreateTokenRequest>,
) -> ApiResult<(StatusCode, Json<CreateTokenResponse>)> {
    s.authorize(&c, "CreateToken", Target::Account, None)?;
    Ok((StatusCode::CREATED, Json(s.core.create_token(&req).await?)))
}

pub async fn list_tokens(State(s): S, c: Caller) -> ApiResult<Json<ListTokensResponse>> {
    s.authorize(&c, "ListTokens", Target::Account, None)?;
    Ok(Json(s.core.list_tokens()?))
}

pub async fn revoke_token(
    State(s): S,
    c: Caller,
    Path(token_id): Path<String>,
) -> ApiResult<StatusCode> {
    s.authorize(&c, "RevokeToken", Target::Account, None)?;
    s.core.revoke_token(&token_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn reset(State(s): S, c: Caller) -> ApiResult<StatusCode> {
    s.authorize(&c, "ResetState", Target::Account, None)?;
    let Some(token) = &s.dev_token else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "UnknownOperation",
            "POST /v1/sys/reset exists only in dev mode (coffer server --dev)",
        ));
    };
    s.core.reset()?;
    s.core.install_fixed_token(token, "admin").await?;
    tracing::warn!(principal = %c.principal, "dev mode: all state was reset");
    Ok(StatusCode::NO_CONTENT)
}

pub async fn policy_info(State(s): S, c: Caller) -> ApiResult<Json<PolicyInfo>> {
    s.authorize(&c, "GetPolicyInfo", Target::Account, None)?;
    Ok(Json(s.policy_info()))
}

pub async fn reload_policies(State(s): S, c: Caller) -> ApiResult<Json<PolicyInfo>> {
    s.authorize(&c, "ReloadPolicies", Target::Account, None)?;
    tracing::info!(principal = %c.principal, "policy reload requested");
    Ok(Json(s.reload_policies().await?))
}

pub async fn healthz() -> Json<HealthResponse> {
    Json(HealthResponse {
        status: "ok".into(),
        version: env!("CARGO_PKG_VERSION").into(),
    })
}

pub async fn readyz(State(s): S) -> Result<Json<HealthResponse>, ApiError> {
    s.core.ready()?;
    Ok(Json(HealthResponse {
        status: "ready".into(),
        version: env!("CARGO_PKG_VERSION").into(),
    }))
}

pub async fn metrics(State(s): S) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        s.metrics.render(),
    )
}

pub async fn openapi(State(s): S) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        s.openapi_json.clone(),
    )
}
