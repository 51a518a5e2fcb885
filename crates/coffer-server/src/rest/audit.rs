//! Audit routes: query the log and verify its hash chain.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use coffer_api::{AuditQuery, ListAuditResponse, VerifyAuditResponse};

use crate::auth::{Caller, Target};
use crate::body::QueryParams;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

type S = State<Arc<AppState>>;

/// Runs a store-walking job off the async workers (a large log takes a while).
async fn blocking<T: Send + 'static>(
    job: impl FnOnce() -> coffer_core::Result<T> + Send + 'static,
) -> ApiResult<T> {
    tokio::task::spawn_blocking(job)
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "audit job failed");
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalError",
                "internal error; the request id in x-request-id identifies it in the server log",
            )
        })?
        .map_err(ApiError::from)
}

pub async fn list(
    State(s): S,
    c: Caller,
    QueryParams(q): QueryParams<AuditQuery>,
) -> ApiResult<Json<ListAuditResponse>> {
    s.authorize(&c, "GetAuditLog", Target::Account, None)?;
    let core = s.core.clone();
    Ok(Json(blocking(move || core.query_audit(&q)).await?))
}

pub async fn verify(State(s): S, c: Caller) -> ApiResult<Json<VerifyAuditResponse>> {
    s.authorize(&c, "VerifyAuditLog", Target::Account, None)?;
    let core = s.core.clone();
    let report = blocking(move || core.verify_audit()).await?;
    if !report.ok {
        tracing::error!(
            first_bad_seq = report.first_bad_seq,
            problem = report.problem.as_deref().unwrap_or(""),
            "audit log verification failed"
        );
    }
    Ok(Json(report))
}
