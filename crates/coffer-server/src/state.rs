//! Shared state of the HTTP layer.

use std::sync::{Arc, RwLock};

use coffer_core::Coffer;
use coffer_policy::PolicyEngine;

use crate::metrics::Metrics;

/// State shared by all handlers.
pub struct AppState {
    /// The domain.
    pub core: Arc<Coffer>,
    policy: RwLock<Arc<PolicyEngine>>,
    /// Prometheus metrics.
    pub metrics: Metrics,
    /// Dev mode: the fixed token to reinstall after a reset.
    pub dev_token: Option<String>,
    /// The OpenAPI document, rendered once.
    pub openapi_json: String,
}

impl AppState {
    /// Builds the state.
    pub fn new(
        core: Arc<Coffer>,
        policy: PolicyEngine,
        dev_token: Option<String>,
        openapi_json: String,
    ) -> Self {
        AppState {
            core,
            policy: RwLock::new(Arc::new(policy)),
            metrics: Metrics::new(),
            dev_token,
            openapi_json,
        }
    }

    /// The active policy set.
    pub fn policy(&self) -> Arc<PolicyEngine> {
        match self.policy.read() {
            Ok(p) => p.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Swaps in a new policy set atomically.
    pub fn set_policy(&self, engine: PolicyEngine) {
        let mut guard = match self.policy.write() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        *guard = Arc::new(engine);
    }

    /// Whether the server runs in dev mode.
    pub fn is_dev(&self) -> bool {
        self.dev_token.is_some()
    }
}
