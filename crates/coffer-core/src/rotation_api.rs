//! The seam between the rotation state machine (here, in core) and whatever runs a
//! rotation step (the wasmtime host in `coffer-plugins`, or a test double). Core owns the
//! versions, the labels and the step journal; a runner only executes one step of one
//! plugin and reports what it produced.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// One of AWS Secrets Manager's four rotation steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum RotationStep {
    /// Produce the PENDING value from CURRENT.
    Create,
    /// Apply PENDING to the target system.
    Set,
    /// Prove PENDING works at the target.
    Test,
    /// Clean up at the target; the state machine then moves the labels.
    Finish,
}

impl RotationStep {
    /// All steps, in order.
    pub const ALL: [RotationStep; 4] = [Self::Create, Self::Set, Self::Test, Self::Finish];

    /// Lower-case name (`create`, `set`, `test`, `finish`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Create => "create",
            Self::Set => "set",
            Self::Test => "test",
            Self::Finish => "finish",
        }
    }

    /// Parses [`RotationStep::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// The step after this one, `None` after `Finish`.
    pub fn next(self) -> Option<Self> {
        match self {
            Self::Create => Some(Self::Set),
            Self::Set => Some(Self::Test),
            Self::Test => Some(Self::Finish),
            Self::Finish => None,
        }
    }
}

impl fmt::Display for RotationStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A version handed to a plugin: its id and its value in a zeroizing buffer.
pub struct RotationVersion {
    /// Version id.
    pub id: String,
    /// The secret string (binary secrets cannot be rotated by plugins).
    pub value: Zeroizing<String>,
}

impl fmt::Debug for RotationVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RotationVersion")
            .field("id", &self.id)
            .field("value", &"<redacted>")
            .finish()
    }
}

/// Everything a runner needs to execute one step.
#[derive(Debug)]
pub struct StepRequest {
    /// Plugin name (the `name` of its manifest).
    pub plugin: String,
    /// Which step.
    pub step: RotationStep,
    /// Region of the secret.
    pub region: String,
    /// Name of the secret being rotated.
    pub secret_name: String,
    /// The version id being built (stable across retries of one rotation).
    pub token: String,
    /// CURRENT.
    pub current: RotationVersion,
    /// PENDING (id = token); `None` only on the first `create` call.
    pub pending: Option<RotationVersion>,
    /// PREVIOUS, if any.
    pub previous: Option<RotationVersion>,
    /// Non-secret parameters from the rotation config.
    pub config: BTreeMap<String, String>,
    /// Names of other secrets the rotation config lets the plugin read (`get-secret`);
    /// the runner intersects them with the manifest and asks the policy engine.
    pub granted_secrets: Vec<String>,
}

/// Why a step failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StepErrorKind {
    /// The secret's value is not what the plugin expects (permanent).
    InvalidSecret,
    /// A capability was refused by the manifest or a policy (permanent).
    Denied,
    /// The target could not be reached (transient).
    Unreachable,
    /// The target refused the credentials (transient).
    AuthFailed,
    /// The target refused the change (permanent).
    TargetRefused,
    /// The pending value could not be proven to work (transient).
    VerificationFailed,
    /// The plugin reported a bug of its own (permanent).
    Internal,
    /// The plugin trapped: panic, out of fuel, out of memory, wall-clock limit, or it
    /// returned something that breaks the contract (permanent).
    PluginCrashed,
    /// No plugin of that name is installed (permanent).
    PluginNotFound,
}

impl StepErrorKind {
    /// Whether retrying later may help.
    pub fn is_transient(self) -> bool {
        matches!(
            self,
            Self::Unreachable | Self::AuthFailed | Self::VerificationFailed
        )
    }

    /// Kebab-case name, as shown in describe and the audit log.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidSecret => "invalid-secret",
            Self::Denied => "denied",
            Self::Unreachable => "unreachable",
            Self::AuthFailed => "auth-failed",
            Self::TargetRefused => "target-refused",
            Self::VerificationFailed => "verification-failed",
            Self::Internal => "internal",
            Self::PluginCrashed => "plugin-crashed",
            Self::PluginNotFound => "plugin-not-found",
        }
    }
}

/// One thing a plugin did through the host during a step: an SQL statement, an HTTP
/// request, a secret read or a log line. `detail` never holds a secret value (the runner
/// redacts the values of the versions in the request, and never records parameters).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TrailEntry {
    /// `sql`, `http`, `secret` or `log`.
    pub kind: String,
    /// What happened, redacted.
    pub detail: String,
}

/// A failed step, with what the plugin did before it failed.
#[derive(Debug, Clone)]
pub struct StepFailure {
    /// Classification.
    pub kind: StepErrorKind,
    /// Message for describe and the audit log (never a secret value).
    pub message: String,
    /// Host calls made before the failure.
    pub trail: Vec<TrailEntry>,
}

impl fmt::Display for StepFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind.as_str(), self.message)
    }
}

/// A successful step.
#[derive(Default)]
pub struct StepOutcome {
    /// The PENDING value produced by `create` (`None` for the other steps).
    pub value: Option<Zeroizing<String>>,
    /// Host calls the plugin made.
    pub trail: Vec<TrailEntry>,
}

impl fmt::Debug for StepOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StepOutcome")
            .field("value", &self.value.as_ref().map(|_| "<redacted>"))
            .field("trail", &self.trail)
            .finish()
    }
}

/// Runs one step of one plugin. Implemented by `coffer-plugins` (wasmtime) and by test
/// doubles. Implementations must not block the calling async runtime.
#[async_trait::async_trait]
pub trait RotationRunner: Send + Sync + 'static {
    /// Whether a plugin of this name is installed.
    fn has_plugin(&self, name: &str) -> bool;

    /// Executes `req.step`.
    async fn run_step(&self, req: StepRequest) -> Result<StepOutcome, StepFailure>;
}

/// Reads another secret on behalf of a plugin (`get-secret`). Implemented by the server,
/// which asks the policy engine with principal `Plugin::"<plugin>"` and action
/// `GetSecretValue` before reading CURRENT. The runner has already checked the manifest
/// and the rotation config's grants.
#[async_trait::async_trait]
pub trait PluginSecretReader: Send + Sync + 'static {
    /// The CURRENT secret string of `name`, or a message saying why not (never a value).
    async fn read_for_plugin(
        &self,
        plugin: &str,
        region: &str,
        name: &str,
    ) -> Result<Zeroizing<String>, String>;
}
