//! The policy set at run time: what is active (`GET /v1/sys/policies`) and reloading it
//! (`POST /v1/sys/policies/reload` and `SIGHUP`).
//!
//! A reload reads the directory the server started with, validates it completely, and
//! only then swaps the new engine (policies, entities and scope index together) in
//! atomically. An invalid set is refused as a whole: the old set stays active, the
//! problems are logged as `file:line: message`, and
//! `coffer_policy_reload_failures_total` counts it.

use std::sync::Arc;

use axum::http::StatusCode;
use coffer_api::PolicyInfo;
use coffer_policy::{PolicyEngine, PolicyError};
use time::format_description::well_known::Rfc3339;

use crate::error::ApiError;
use crate::state::AppState;

/// Why a reload was refused. The previously active set stays in force.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReloadError {
    /// The policy directory holds an invalid set (or cannot be read).
    #[error("policy set in {source_name} refused; the previous set stays active: {error}")]
    Invalid {
        /// The directory (or `builtin`).
        source_name: String,
        /// What is wrong, with `file:line: message` per problem.
        #[source]
        error: PolicyError,
    },
    /// Loading did not finish (the loading task panicked or was cancelled).
    #[error("policy reload did not finish: {0}")]
    Interrupted(String),
}

impl From<ReloadError> for ApiError {
    fn from(e: ReloadError) -> Self {
        match e {
            ReloadError::Invalid { .. } => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "InvalidPolicies",
                e.to_string(),
            ),
            ReloadError::Interrupted(_) => ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalError",
                e.to_string(),
            ),
        }
    }
}

impl AppState {
    /// The active policy set: source, hash, number of policies, when it was loaded.
    pub fn policy_info(&self) -> PolicyInfo {
        let active = self.active_policy();
        PolicyInfo {
            source: active.engine.source().to_owned(),
            hash: active.engine.hash().to_owned(),
            policies: active.engine.policy_set().num_of_policies(),
            loaded_at: active
                .loaded_at
                .format(&Rfc3339)
                .unwrap_or_else(|_| active.loaded_at.unix_timestamp().to_string()),
        }
    }

    /// Reloads the policy directory the server started with (the built-in set if it
    /// started with that) and swaps it in; on any problem keeps the active set, logs
    /// the problems and counts the failure.
    pub async fn reload_policies(&self) -> Result<PolicyInfo, ReloadError> {
        // One reload at a time, so sets are swapped in the order they were read.
        let _serial = self.reload_lock.lock().await;
        let dir = self.policy_dir.clone();
        let source_name = dir
            .as_ref()
            .map_or_else(|| "builtin".to_owned(), |d| d.display().to_string());
        // Parsing and validating thousands of policies takes a while: off the runtime.
        let loaded = tokio::task::spawn_blocking(move || match dir {
            Some(dir) => PolicyEngine::load_dir(&dir),
            None => PolicyEngine::builtin(),
        })
        .await;
        let result = match loaded {
            Ok(Ok(engine)) => Ok(engine),
            Ok(Err(error)) => Err(ReloadError::Invalid { source_name, error }),
            Err(join) => Err(ReloadError::Interrupted(join.to_string())),
        };
        match result {
            Ok(engine) => {
                let previous = self.policy().hash().to_owned();
                self.set_policy(engine);
                self.metrics.policy_reloads.inc();
                let info = self.policy_info();
                tracing::info!(
                    source = %info.source,
                    hash = %info.hash,
                    previous_hash = %previous,
                    policies = info.policies,
                    "policy set reloaded"
                );
                Ok(info)
            }
            Err(e) => {
                self.metrics.policy_reload_failures.inc();
                tracing::error!(error = %e, "policy reload refused");
                Err(e)
            }
        }
    }
}

/// Reloads the policy set whenever the process receives `SIGHUP`. The task runs until
/// the process exits.
pub(crate) fn reload_on_sighup(state: Arc<AppState>) {
    #[cfg(unix)]
    tokio::spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let mut hangups = match signal(SignalKind::hangup()) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGHUP; reload with POST /v1/sys/policies/reload");
                return;
            }
        };
        while hangups.recv().await.is_some() {
            tracing::info!("SIGHUP: reloading the policy set");
            // Success and failure are logged and counted by reload_policies.
            let _ = state.reload_policies().await;
        }
    });
    #[cfg(not(unix))]
    let _ = state;
}
