//! Shared state of the HTTP layer.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use coffer_core::Coffer;
use coffer_policy::PolicyEngine;

use crate::metrics::Metrics;

/// State shared by all handlers.
pub struct AppState {
    /// The domain.
    pub core: Arc<Coffer>,
    policy: RwLock<ActivePolicy>,
    /// The policy directory the server started with (`None`: the built-in set); what a
    /// reload reads.
    pub(crate) policy_dir: Option<PathBuf>,
    /// Serializes reloads, so two concurrent reloads swap in their sets in order.
    pub(crate) reload_lock: tokio::sync::Mutex<()>,
    /// Prometheus metrics.
    pub metrics: Metrics,
    /// Dev mode: the fixed token to reinstall after a reset.
    pub dev_token: Option<String>,
    /// The OpenAPI document, rendered once.
    pub openapi_json: String,
    /// Rotation: the injected runner, the scheduler's limits, this node's lease id.
    pub(crate) rotation: crate::rotation::RotationHost,
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
            policy: RwLock::new(ActivePolicy::new(policy)),
            policy_dir: None,
            reload_lock: tokio::sync::Mutex::new(()),
            metrics: Metrics::new(),
            dev_token,
            openapi_json,
            rotation: crate::rotation::RotationHost::new(),
        }
    }

    /// Names the policy directory the server loaded at start, which reloads read again
    /// (without it, a reload rebuilds the built-in set).
    pub fn with_policy_dir(mut self, dir: Option<PathBuf>) -> Self {
        self.policy_dir = dir;
        self
    }

    /// The active policy set.
    pub fn policy(&self) -> Arc<PolicyEngine> {
        self.active_policy().engine
    }

    /// The active policy set with the time it was loaded.
    pub(crate) fn active_policy(&self) -> ActivePolicy {
        match self.policy.read() {
            Ok(p) => p.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Swaps in a new policy set (with its scope index) atomically.
    pub fn set_policy(&self, engine: PolicyEngine) {
        let mut guard = match self.policy.write() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        *guard = ActivePolicy::new(engine);
    }

    /// Whether the server runs in dev mode.
    pub fn is_dev(&self) -> bool {
        self.dev_token.is_some()
    }
}

/// A loaded policy set and when it was loaded.
#[derive(Clone)]
pub(crate) struct ActivePolicy {
    pub(crate) engine: Arc<PolicyEngine>,
    pub(crate) loaded_at: time::OffsetDateTime,
}

impl ActivePolicy {
    fn new(engine: PolicyEngine) -> Self {
        ActivePolicy {
            engine: Arc::new(engine),
            loaded_at: time::OffsetDateTime::now_utc(),
        }
    }
}
