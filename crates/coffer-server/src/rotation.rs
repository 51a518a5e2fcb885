//! Secret rotation on the server: the runner seam (`RotationRunner`, injected by the
//! binary), the background scheduler, the audit sink of rotation steps, and the
//! [`PluginSecretReader`] that lets a plugin read another secret when the policy allows
//! principal `Coffer::Plugin::"<plugin>"` to `GetSecretValue` it.
//!
//! Wiring (two phases, because the runner needs the reader and the server needs the
//! runner):
//!
//! ```no_run
//! # use std::sync::Arc;
//! # async fn demo(config: coffer_server::Config) -> anyhow::Result<()> {
//! coffer_server::serve_with_rotation(config, Box::new(|reader| {
//!     // e.g. coffer_plugins::Host::load(dir, reader)?
//!     # let _ = reader;
//!     # anyhow::bail!("example")
//! }))
//! .await
//! # }
//! ```
//!
//! or, when building the app by hand: `AppState::new(..)`, then
//! `state.set_rotation_runner(runner_built_with(coffer_server::plugin_secret_reader(&state)))`,
//! then `coffer_server::start_rotation_scheduler(state.clone(), tick)`.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use cedar_policy::{
    Authorizer, Context, Decision, Entities, Entity, EntityId, EntityTypeName, EntityUid, Request,
    RestrictedExpression,
};
use coffer_core::audit::{AuditDecision, AuditEntry};
use coffer_core::rotation::{RotationAuditSink, RotationOutcome, RotationReport};
use coffer_core::rotation_api::{PluginSecretReader, RotationRunner};
use coffer_core::CoreError;
use coffer_policy::PolicyEngine;
use zeroize::Zeroizing;

use crate::audit::AuditLog;
use crate::state::AppState;

/// Rotations one server runs at the same time.
pub const MAX_CONCURRENT_ROTATIONS: usize = 4;

/// A rotation could not be wired.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RotationSetupError {
    /// `set_rotation_runner` was called twice.
    #[error("a rotation runner is already installed; it can be set only once")]
    RunnerAlreadySet,
}

/// The rotation machinery of one server.
pub struct RotationHost {
    runner: OnceLock<Arc<dyn RotationRunner>>,
    audit: OnceLock<AuditLog>,
    /// Lease owner of this node's rotations.
    pub(crate) node_id: String,
    limit: Arc<tokio::sync::Semaphore>,
    /// Rotations running in this process ("region/name"): the lease only keeps other
    /// nodes out, since every run here uses the same owner.
    running: Mutex<HashSet<String>>,
}

impl Default for RotationHost {
    fn default() -> Self {
        Self::new()
    }
}

impl RotationHost {
    /// No runner yet; a fresh node id.
    pub fn new() -> Self {
        let id = uuid::Uuid::new_v4().simple().to_string();
        RotationHost {
            runner: OnceLock::new(),
            audit: OnceLock::new(),
            node_id: format!("node-{}-{}", std::process::id(), &id[..8]),
            limit: Arc::new(tokio::sync::Semaphore::new(MAX_CONCURRENT_ROTATIONS)),
            running: Mutex::new(HashSet::new()),
        }
    }

    /// This node's lease owner id.
    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    pub(crate) fn set_audit(&self, audit: AuditLog) {
        let _ = self.audit.set(audit);
    }
}

/// Marks a rotation as running in this process until dropped.
struct Running<'a>(&'a RotationHost, String);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        if let Ok(mut set) = self.0.running.lock() {
            set.remove(&self.1);
        }
    }
}

struct AuditSink(AuditLog);

#[async_trait::async_trait]
impl RotationAuditSink for AuditSink {
    async fn record(&self, entry: AuditEntry) -> Result<(), String> {
        self.0
            .append(entry)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

impl AppState {
    /// Names this node in rotation leases. Give a restarted server the same id (the
    /// server keeps one in `<data_dir>/node-id`) so it resumes the rotations it was
    /// running at once; two live servers sharing a store must have different ids.
    pub fn with_node_id(mut self, node_id: impl Into<String>) -> Self {
        self.rotation.node_id = node_id.into();
        self
    }

    /// Installs the rotation runner (the wasmtime host). Call once, before serving.
    pub fn set_rotation_runner(
        &self,
        runner: Arc<dyn RotationRunner>,
    ) -> Result<(), RotationSetupError> {
        self.rotation
            .runner
            .set(runner)
            .map_err(|_| RotationSetupError::RunnerAlreadySet)
    }

    /// The installed runner, or the error every rotation route answers without one.
    pub(crate) fn rotation_runner(&self) -> Result<Arc<dyn RotationRunner>, CoreError> {
        self.rotation.runner.get().cloned().ok_or_else(|| {
            CoreError::InvalidParameter(
                "no rotator plugins are loaded on this server, so rotation is unavailable; start the server with a plugin directory".into(),
            )
        })
    }

    /// Runs the rotation of `name` now (bounded concurrency, this node as lease owner),
    /// counting it in the metrics.
    pub(crate) async fn run_rotation_now(
        &self,
        region: &str,
        name: &str,
    ) -> Result<RotationReport, CoreError> {
        let runner = self.rotation_runner()?;
        let key = format!("{region}/{name}");
        let _running = {
            let mut set = self
                .rotation
                .running
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if !set.insert(key.clone()) {
                return Err(CoreError::InvalidState(format!(
                    "the rotation of secret {name} is already running on this server; wait for it (describe shows its progress)"
                )));
            }
            Running(&self.rotation, key)
        };
        let _permit = self
            .rotation
            .limit
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| CoreError::Internal("rotation limiter closed".into()))?;
        let sink = self.rotation.audit.get().cloned().map(AuditSink);
        let report = self
            .core
            .run_rotation(
                runner.as_ref(),
                sink.as_ref().map(|s| s as &dyn RotationAuditSink),
                region,
                name,
                &self.rotation.node_id,
            )
            .await?;
        self.metrics.rotation_ran(&report);
        Ok(report)
    }
}

/// Runs the rotations due now, every `tick`, until the task is aborted. Does nothing
/// while no runner is installed.
pub fn start_rotation_scheduler(
    state: Arc<AppState>,
    tick: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        // Rotations this node (same node id, i.e. same data directory) was running when
        // its previous process stopped resume now rather than after their lease.
        match state.core.recover_rotations(&state.rotation.node_id).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(rotations = n, "resuming interrupted rotations"),
            Err(e) => tracing::error!(error = %e, "cannot recover interrupted rotations"),
        }
        let mut every = tokio::time::interval(tick.max(Duration::from_millis(10)));
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            if state.rotation.runner.get().is_none() {
                continue;
            }
            let due = match state
                .core
                .due_rotations(time::OffsetDateTime::now_utc())
                .await
            {
                Ok(d) => d,
                Err(e) => {
                    tracing::error!(error = %e, "cannot list due rotations");
                    continue;
                }
            };
            for (region, name) in due {
                let busy = state
                    .rotation
                    .running
                    .lock()
                    .map(|s| s.contains(&format!("{region}/{name}")))
                    .unwrap_or(true);
                if busy {
                    continue;
                }
                let st = state.clone();
                tokio::spawn(async move {
                    match st.run_rotation_now(&region, &name).await {
                        Ok(r) => {
                            tracing::info!(region, secret = %name, outcome = ?outcome_label(&r.outcome), "scheduled rotation ran")
                        }
                        Err(e @ CoreError::InvalidState(_)) => {
                            tracing::debug!(region, secret = %name, error = %e, "scheduled rotation skipped")
                        }
                        Err(e) => {
                            tracing::error!(region, secret = %name, error = %e, "scheduled rotation failed")
                        }
                    }
                });
            }
        }
    })
}

fn outcome_label(o: &RotationOutcome) -> &'static str {
    match o {
        RotationOutcome::Succeeded => "succeeded",
        RotationOutcome::Failed { .. } => "failed",
    }
}

/// The reader a runner uses for `get-secret`: asks the policy engine whether principal
/// `Coffer::Plugin::"<plugin>"` may `GetSecretValue` the secret, records the read in the
/// audit log, then returns CURRENT. Holds the state weakly (the state holds the runner).
pub fn plugin_secret_reader(state: &Arc<AppState>) -> Arc<dyn PluginSecretReader> {
    Arc::new(Reader(Arc::downgrade(state)))
}

struct Reader(Weak<AppState>);

#[async_trait::async_trait]
impl PluginSecretReader for Reader {
    async fn read_for_plugin(
        &self,
        plugin: &str,
        region: &str,
        name: &str,
    ) -> Result<Zeroizing<String>, String> {
        let state = self
            .0
            .upgrade()
            .ok_or_else(|| "the server is shutting down".to_string())?;
        let engine = state.policy();
        let mut entry = AuditEntry::new(
            "GetSecretValue",
            &format!("plugin:{plugin}"),
            time::OffsetDateTime::now_utc(),
        );
        entry.principal = Some(format!("Plugin::\"{plugin}\""));
        entry.region = Some(region.to_string());
        entry.resource = Some(format!("secret:{region}/{name}"));
        let mut denied: Option<String> = None;
        let result = state
            .core
            .get_secret_value_checked(region, name, None, None, |n, tags| {
                let (allowed, policies, reason) =
                    authorize_plugin(&engine, plugin, region, n, tags);
                entry.policies = policies;
                entry.decision = if allowed {
                    AuditDecision::Allow
                } else {
                    AuditDecision::Deny
                };
                if allowed {
                    Ok(())
                } else {
                    entry.reason = Some(reason.clone());
                    denied = Some(reason);
                    Err(CoreError::InvalidParameter(String::new()))
                }
            })
            .await;
        let out = match result {
            Ok((mut v, key)) => {
                entry.status = 200;
                entry.keys.push(key);
                match v.secret_string.take() {
                    Some(s) => Ok(Zeroizing::new(s)),
                    None => Err(format!(
                        "secret {name} is binary; plugins read string secrets"
                    )),
                }
            }
            Err(e) => {
                let msg = match denied {
                    Some(reason) => {
                        entry.status = 403;
                        entry.error_code = Some("AccessDenied".into());
                        format!("plugin {plugin} may not read secret {name}: {reason}")
                    }
                    None => {
                        entry.status = 404;
                        entry.error_code = Some(e.code().to_string());
                        e.to_string()
                    }
                };
                Err(msg)
            }
        };
        if let Some(audit) = state.rotation.audit.get() {
            if let Err(e) = audit.append(entry).await {
                tracing::error!(error = %e, "audit record of a plugin secret read not written; refusing the read");
                return Err("the audit log cannot be written; the read is refused".into());
            }
        }
        out
    }
}

fn uid(type_name: &str, id: &str) -> Option<EntityUid> {
    let t: EntityTypeName = type_name.parse().ok()?;
    Some(EntityUid::from_type_name_and_id(t, EntityId::new(id)))
}

/// (allowed, determining policies, reason). Any construction problem denies.
fn authorize_plugin(
    engine: &PolicyEngine,
    plugin: &str,
    region: &str,
    name: &str,
    tags: &BTreeMap<String, String>,
) -> (bool, Vec<String>, String) {
    let deny = |why: String| (false, Vec::new(), why);
    let (Some(principal), Some(action), Some(resource)) = (
        uid("Coffer::Plugin", plugin),
        uid("Coffer::Action", "GetSecretValue"),
        uid("Coffer::Secret", &format!("{region}/{name}")),
    ) else {
        return deny("bad request: invalid entity uid".into());
    };
    let s = |v: &str| RestrictedExpression::new_string(v.to_string());
    let paths: Vec<RestrictedExpression> = name
        .match_indices('/')
        .filter(|(i, _)| *i > 0)
        .map(|(i, _)| s(&name[..i]))
        .collect();
    let secret = match Entity::new_with_tags(
        resource.clone(),
        [
            ("name".to_string(), s(name)),
            ("region".to_string(), s(region)),
            ("path".to_string(), RestrictedExpression::new_set(paths)),
        ],
        [],
        tags.iter().map(|(k, v)| (k.clone(), s(v))),
    ) {
        Ok(e) => e,
        Err(e) => return deny(format!("bad request: {e}")),
    };
    let now = time::OffsetDateTime::now_utc();
    let stamp = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second()
    );
    let context = match Context::from_pairs([
        ("region".to_string(), s(region)),
        (
            "time".to_string(),
            RestrictedExpression::new_datetime(stamp),
        ),
        (
            "time_unix".to_string(),
            RestrictedExpression::new_long(now.unix_timestamp()),
        ),
        ("api".to_string(), s("plugin")),
    ]) {
        Ok(c) => c,
        Err(e) => return deny(format!("bad request: {e}")),
    };
    let request = match Request::new(
        principal.clone(),
        action,
        resource,
        context,
        Some(engine.schema()),
    ) {
        Ok(r) => r,
        Err(e) => {
            return deny(format!(
                "the policy schema does not let plugins read secrets (add `entity Plugin;` and Plugin to GetSecretValue's principals): {e}"
            ))
        }
    };
    let entities = match Entities::from_entities(
        engine
            .entities()
            .iter()
            .cloned()
            .chain([Entity::new_no_attrs(principal, HashSet::new()), secret]),
        None,
    ) {
        Ok(e) => e,
        Err(e) => return deny(format!("bad request: {e}")),
    };
    let response = Authorizer::new().is_authorized(&request, engine.policy_set(), &entities);
    let policies: Vec<String> = response
        .diagnostics()
        .reason()
        .map(ToString::to_string)
        .collect();
    let errors: Vec<String> = response
        .diagnostics()
        .errors()
        .map(ToString::to_string)
        .collect();
    if !errors.is_empty() {
        // Fail closed: a policy that errors may be a forbid.
        return (
            false,
            policies,
            format!("denied: policy evaluation errors: {}", errors.join("; ")),
        );
    }
    match response.decision() {
        Decision::Allow => (true, policies, "permitted".into()),
        Decision::Deny if policies.is_empty() => (
            false,
            policies,
            format!("no policy permits Plugin::\"{plugin}\" to GetSecretValue"),
        ),
        Decision::Deny => {
            let reason = format!("forbidden by {}", policies.join(", "));
            (false, policies, reason)
        }
    }
}
