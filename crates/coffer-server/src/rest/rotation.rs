//! Rotation routes: configure (and start), rotate now, cancel. A started rotation runs in
//! the background on this node unless `wait=true`, which runs it in the request and
//! answers with its result.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use coffer_api::{RotateSecretRequest, RotationResponse, SecretDescription};
use coffer_core::rotation::{RotationOutcome, RotationStart};
use serde::Deserialize;

use super::secrets::authorize_secret;
use crate::auth::Caller;
use crate::body::{JsonBody, QueryParams};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

type S = State<Arc<AppState>>;

/// `?wait=true`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct WaitQuery {
    #[serde(default)]
    wait: bool,
}

/// Runs the rotation `start` began (in the request with `wait`, else in the background)
/// and shapes the answer. With `wait`, a failed rotation is a 502 `RotationFailed` naming
/// the step and error kind (describe shows the details in `last_rotation_error`).
async fn run_started(
    s: Arc<AppState>,
    c: &Caller,
    start: RotationStart,
    wait: bool,
) -> ApiResult<Json<RotationResponse>> {
    let RotationStart {
        description,
        token,
        resumed,
    } = start;
    let Some(token) = token else {
        return Ok(Json(RotationResponse {
            secret: description,
            rotation_token: None,
            rotation_resumed: false,
            rotation_status: "none".into(),
        }));
    };
    let name = description.name.clone();
    if !wait {
        let region = c.region.clone();
        let st = s.clone();
        let bg_name = name.clone();
        tokio::spawn(async move {
            if let Err(e) = st.run_rotation_now(&region, &bg_name).await {
                tracing::warn!(region, secret = %bg_name, error = %e, "background rotation did not run");
            }
        });
        return Ok(Json(RotationResponse {
            secret: description,
            rotation_token: Some(token),
            rotation_resumed: resumed,
            rotation_status: "started".into(),
        }));
    }
    // In a task of its own: a client that hangs up must not cancel a rotation between
    // two steps (it would resume later, but only once its lease has run out).
    let report = {
        let (st, region, name) = (s.clone(), c.region.clone(), name.clone());
        tokio::spawn(async move { st.run_rotation_now(&region, &name).await })
            .await
            .map_err(|e| {
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "InternalError",
                    format!("the rotation task failed: {e}"),
                )
            })??
    };
    if let RotationOutcome::Failed {
        step,
        kind,
        message,
        retry_at,
    } = report.outcome
    {
        let next = match retry_at {
            Some(t) => format!("it is retried automatically at {t}, or now with POST /v1/secrets/{{id}}/rotate"),
            None => "fix the cause, then resume it with POST /v1/secrets/{id}/rotate (same pending version)".to_string(),
        };
        return Err(ApiError::new(
            StatusCode::BAD_GATEWAY,
            "RotationFailed",
            format!(
                "rotation {token} of secret {name} failed at step {step} ({}): {message}; AWSCURRENT is unchanged; {next}",
                kind.as_str()
            ),
        ));
    }
    let secret = s.core.describe_secret(&c.region, &name)?;
    Ok(Json(RotationResponse {
        secret,
        rotation_token: Some(token),
        rotation_resumed: resumed,
        rotation_status: "succeeded".into(),
    }))
}

/// `POST /v1/secrets/{id}/rotation`.
pub async fn configure(
    State(s): S,
    c: Caller,
    Path(id): Path<String>,
    QueryParams(q): QueryParams<WaitQuery>,
    JsonBody(req): JsonBody<RotateSecretRequest>,
) -> ApiResult<Json<RotationResponse>> {
    authorize_secret(&s, &c, "RotateSecret", &id)?;
    let runner = s.rotation_runner()?;
    let start = s
        .core
        .configure_rotation(runner.as_ref(), &c.region, &id, &req)
        .await?;
    run_started(s, &c, start, q.wait).await
}

/// `POST /v1/secrets/{id}/rotate`.
pub async fn rotate(
    State(s): S,
    c: Caller,
    Path(id): Path<String>,
    QueryParams(q): QueryParams<WaitQuery>,
) -> ApiResult<Json<RotationResponse>> {
    authorize_secret(&s, &c, "RotateSecret", &id)?;
    let runner = s.rotation_runner()?;
    let start = s
        .core
        .rotate_secret(runner.as_ref(), &c.region, &id)
        .await?;
    run_started(s, &c, start, q.wait).await
}

/// `DELETE /v1/secrets/{id}/rotation`.
pub async fn cancel(
    State(s): S,
    c: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<SecretDescription>> {
    authorize_secret(&s, &c, "CancelRotateSecret", &id)?;
    Ok(Json(s.core.cancel_rotation(&c.region, &id).await?))
}
