//! Coffer's authorization seam: every API request passes through [`PolicyEngine::authorize`].
//!
//! This crate owns the Cedar side of access control:
//! * the **schema** (`policies/schema.cedarschema`, namespace `Coffer`) and the built-in
//!   policy set (`policies/admin.cedar`), embedded in the binary;
//! * **loading** a policy directory (schema, `*.cedar`, optional `entities.json` with
//!   users, teams and memberships), giving every policy a stable id from its
//!   `@id("...")` annotation;
//! * **validation** in strict mode, where validator warnings count as errors too, with
//!   every problem reported as `file:line: message`;
//! * **authorization**: turning an [`AuthzRequest`] into a Cedar request plus a small
//!   per-request entity slice, and the decision into an [`AuthzDecision`]. Default deny;
//!   a `forbid` policy that errors at evaluation denies the request (fail closed).
//!
//! It must not know about HTTP, tokens, or storage: callers authenticate the user, look
//! up the resource (name, region, tags, aliases) and pass plain values in. An engine is
//! immutable once loaded; to reload, build a new one and swap it in (e.g. an
//! `Arc<PolicyEngine>` behind an `ArcSwap` or `RwLock`), so an invalid set is refused
//! and the old one stays active.
//!
//! ```
//! use std::collections::BTreeMap;
//! use coffer_policy::{AuthzContext, AuthzRequest, PolicyEngine, Resource};
//!
//! let engine = PolicyEngine::builtin()?;
//! let tags = BTreeMap::new();
//! let request = AuthzRequest {
//!     principal: "admin",
//!     action: "GetSecretValue",
//!     resource: Resource::Secret { region: "eu-west-1", name: "prod/db/password", tags: &tags },
//!     context: AuthzContext {
//!         region: "eu-west-1",
//!         source_ip: None,
//!         time_unix: 1_700_000_000,
//!         encryption_context: None,
//!         api: "native",
//!     },
//! };
//! let decision = engine.authorize(&request);
//! assert!(decision.allowed);
//! assert_eq!(decision.determining_policies, ["admin-all"]);
//!
//! let decision = engine.authorize(&AuthzRequest { principal: "alice", ..request });
//! assert!(!decision.allowed);
//! assert_eq!(decision.reason, "no permit matched");
//! # Ok::<(), coffer_policy::PolicyError>(())
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod cache;
mod index;
mod load;
mod slice;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use cedar_policy::{
    AuthorizationError, Authorizer, Effect, Entities, Entity, EntityTypeName, EntityUid, PolicyId,
    PolicySet,
};
use serde::Serialize;

pub use index::IndexStats;
use index::{ResourceFacts, ScopeIndex, SetEffect};

/// Name of the schema file inside a policy directory.
pub const SCHEMA_FILE: &str = "schema.cedarschema";
/// Name of the optional entities file (users, teams, memberships) inside a policy directory.
pub const ENTITIES_FILE: &str = "entities.json";

/// Every concrete action (API operation) the schema declares, in schema order.
/// Action groups (`ReadSecret`, `WriteSecret`, `UseKey`, `ManageKey`, `Admin`) are not
/// listed: they are never requested, only used in policies.
static ALL_ACTIONS: &[&str] = &[
    // ReadSecret
    "GetSecretValue",
    "DescribeSecret",
    "ListSecretVersionIds",
    // WriteSecret
    "CreateSecret",
    "PutSecretValue",
    "UpdateSecret",
    "UpdateSecretVersionStage",
    "DeleteSecret",
    "RestoreSecret",
    "TagSecret",
    "UntagSecret",
    "RotateSecret",
    "CancelRotateSecret",
    // UseKey
    "Encrypt",
    "Decrypt",
    "ReEncryptFrom",
    "ReEncryptTo",
    "GenerateDataKey",
    "GenerateDataKeyWithoutPlaintext",
    // ManageKey
    "DescribeKey",
    "UpdateKeyDescription",
    "EnableKey",
    "DisableKey",
    "RotateKeyOnDemand",
    "EnableKeyRotation",
    "DisableKeyRotation",
    "GetKeyRotationStatus",
    "ListKeyRotations",
    "ScheduleKeyDeletion",
    "CancelKeyDeletion",
    "TagKey",
    "UntagKey",
    "CreateAlias",
    "UpdateAlias",
    "DeleteAlias",
    // region-wide
    "ListSecrets",
    "GetRandomPassword",
    "CreateKey",
    "ListKeys",
    "ListAliases",
    "GenerateRandom",
    // Admin
    "CreateToken",
    "ListTokens",
    "RevokeToken",
    "ResetState",
    "ReloadPolicies",
    "GetPolicyInfo",
    "GetAuditLog",
    "VerifyAuditLog",
];

/// Every action name (API operation) in the schema, for route coverage tests.
///
/// Action groups are not included. Every engine, built-in or loaded, declares all of
/// these (a schema missing one is refused at load).
pub fn all_actions() -> &'static [&'static str] {
    ALL_ACTIONS
}

/// One problem found while loading a policy set, located in a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// File name, relative to the policy directory (e.g. `b.cedar`).
    pub file: String,
    /// 1-based line, when Cedar reported a source location.
    pub line: Option<usize>,
    /// What is wrong, as Cedar said it (with its help text, if any).
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{}: {}", self.file, line, self.message),
            None => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

fn render(problems: &[Problem]) -> String {
    problems.iter().map(|p| format!("\n  {p}")).collect()
}

/// Why a policy set could not be loaded. The set is refused as a whole.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// A file or the directory could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The path that failed.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The directory has no `schema.cedarschema`.
    #[error("{}: no {SCHEMA_FILE} (a policy directory needs its schema)", dir.display())]
    MissingSchema {
        /// The directory that was loaded.
        dir: PathBuf,
    },
    /// The schema does not parse, has warnings, or lacks what Coffer needs.
    #[error("invalid schema:{}", render(problems))]
    Schema {
        /// Each problem, with file and line.
        problems: Vec<Problem>,
    },
    /// Policies do not parse, have duplicate ids, or fail strict validation
    /// (errors or warnings).
    #[error("invalid policies:{}", render(problems))]
    Policies {
        /// Each problem, with file and line.
        problems: Vec<Problem>,
    },
    /// `entities.json` is malformed or does not match the schema.
    #[error("invalid entities:{}", render(problems))]
    Entities {
        /// Each problem, with file (and line where known).
        problems: Vec<Problem>,
    },
}

impl PolicyError {
    /// The located problems behind this error (empty for I/O and missing-schema errors).
    pub fn problems(&self) -> &[Problem] {
        match self {
            PolicyError::Schema { problems }
            | PolicyError::Policies { problems }
            | PolicyError::Entities { problems } => problems,
            PolicyError::Io { .. } | PolicyError::MissingSchema { .. } => &[],
        }
    }
}

/// One authorization question: may `principal` do `action` on `resource`?
#[derive(Debug, Clone, Copy)]
pub struct AuthzRequest<'a> {
    /// Authenticated user name, e.g. `"admin"`; becomes `Coffer::User::"admin"`.
    pub principal: &'a str,
    /// Operation name, e.g. `"GetSecretValue"`; becomes `Coffer::Action::"GetSecretValue"`.
    pub action: &'a str,
    /// What the operation touches.
    pub resource: Resource<'a>,
    /// Facts about the request itself.
    pub context: AuthzContext<'a>,
}

/// The resource of a request.
#[derive(Debug, Clone, Copy)]
pub enum Resource<'a> {
    /// `Coffer::Secret::"<region>/<name>"`, with attributes `name`, `region`, `path`
    /// (the set of prefixes ending before each `/`: `prod/database/password` gives
    /// `["prod", "prod/database"]`) and the secret's tags as Cedar entity tags.
    /// `CreateSecret` is asked about the secret as it would be created.
    Secret {
        /// Region the secret lives in.
        region: &'a str,
        /// Full secret name, e.g. `prod/database/password`.
        name: &'a str,
        /// The secret's tags.
        tags: &'a BTreeMap<String, String>,
    },
    /// `Coffer::Key::"<region>/<key_id>"`, with attributes `id`, `region`, `aliases` and
    /// the key's tags as entity tags. Alias operations are asked about the target key.
    Key {
        /// Region the key lives in.
        region: &'a str,
        /// Key id.
        key_id: &'a str,
        /// Alias names pointing at the key (e.g. `alias/app`).
        aliases: &'a [String],
        /// The key's tags.
        tags: &'a BTreeMap<String, String>,
    },
    /// `Coffer::Account::"<region>"`: the region as a whole, for collection operations
    /// (List*, CreateKey, GetRandomPassword, GenerateRandom, ListAliases) and
    /// administrative operations (tokens, reset, policies).
    Account {
        /// The region.
        region: &'a str,
    },
}

/// The kind of a [`Resource`] (the Cedar entity type).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum ResourceKind {
    Secret,
    Key,
    Account,
}

impl ResourceKind {
    const ALL: [ResourceKind; 3] = [
        ResourceKind::Secret,
        ResourceKind::Key,
        ResourceKind::Account,
    ];

    fn type_name(self) -> &'static str {
        match self {
            ResourceKind::Secret => "Coffer::Secret",
            ResourceKind::Key => "Coffer::Key",
            ResourceKind::Account => "Coffer::Account",
        }
    }

    fn bit(self) -> u8 {
        match self {
            ResourceKind::Secret => 1,
            ResourceKind::Key => 2,
            ResourceKind::Account => 4,
        }
    }
}

impl Resource<'_> {
    pub(crate) fn kind(&self) -> ResourceKind {
        match self {
            Resource::Secret { .. } => ResourceKind::Secret,
            Resource::Key { .. } => ResourceKind::Key,
            Resource::Account { .. } => ResourceKind::Account,
        }
    }
}

/// Request facts, available to policies as `context`.
#[derive(Debug, Clone, Copy)]
pub struct AuthzContext<'a> {
    /// Region the request addresses: `context.region`.
    pub region: &'a str,
    /// Caller address: `context.source_ip` (an `ipaddr`), absent when `None`.
    /// IPv4-mapped IPv6 addresses are passed as IPv4.
    pub source_ip: Option<IpAddr>,
    /// Request time in Unix seconds: `context.time` (a `datetime`, UTC) and
    /// `context.time_unix` (a `Long`). Must lie in years 0000–9999.
    pub time_unix: i64,
    /// KMS encryption context, when the call carries one: `context.encryption_context`,
    /// an entity whose tags are the key/value pairs (Cedar records need declared
    /// attributes). Absent when `None`.
    pub encryption_context: Option<&'a BTreeMap<String, String>>,
    /// `"native"` or `"aws"`: `context.api`.
    pub api: &'a str,
}

/// The answer to an [`AuthzRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuthzDecision {
    /// Whether the request may proceed.
    pub allowed: bool,
    /// Ids of the policies that decided (the satisfied permits on allow, the satisfied
    /// forbids on an explicit deny, the erroring forbids on a fail-closed deny), sorted.
    pub determining_policies: Vec<String>,
    /// Evaluation errors, as `policy id: message`, sorted.
    pub errors: Vec<String>,
    /// Short human-readable explanation.
    pub reason: String,
}

impl AuthzDecision {
    fn deny(reason: impl Into<String>) -> Self {
        AuthzDecision {
            allowed: false,
            determining_policies: Vec::new(),
            errors: Vec::new(),
            reason: reason.into(),
        }
    }
}

/// What the engine knows about one action, precomputed at load.
#[derive(Debug, Clone)]
struct ActionInfo {
    uid: EntityUid,
    /// The action entity (with its groups as ancestors), cloned into every slice.
    entity: Entity,
    /// Bit set of [`ResourceKind::bit`] the schema allows for this action.
    resource_kinds: u8,
}

/// Entity type names used to build requests, parsed once.
#[derive(Debug, Clone)]
struct Types {
    user: EntityTypeName,
    team: EntityTypeName,
    action: EntityTypeName,
    secret: EntityTypeName,
    key: EntityTypeName,
    account: EntityTypeName,
    encryption_context: EntityTypeName,
}

/// A loaded, validated policy set, ready to answer authorization requests.
///
/// Immutable, `Send + Sync`; share it through an `Arc`.
#[derive(Debug)]
pub struct PolicyEngine {
    source: String,
    hash: String,
    schema: cedar_policy::Schema,
    /// Policy id → (file, line where the policy starts).
    origins: HashMap<String, (String, usize)>,
    policies: PolicySet,
    authorizer: Authorizer,
    /// Users and teams from `entities.json` (plus the schema's actions), with the
    /// transitive closure computed at load.
    entities: Entities,
    actions: HashMap<String, ActionInfo>,
    types: Types,
    /// The policies filed by scope, so a request evaluates only those that may apply.
    index: ScopeIndex,
    /// Request contexts built this second.
    contexts: slice::ContextCache,
    /// Entity slices of (principal, action) pairs.
    slices: slice::SliceCache,
    /// Decisions made this second.
    decisions: cache::DecisionCache,
}

impl PolicyEngine {
    /// The built-in set: the repository's `policies/schema.cedarschema` and
    /// `policies/admin.cedar`, embedded at compile time.
    pub fn builtin() -> Result<PolicyEngine, PolicyError> {
        load::build(
            "builtin".to_owned(),
            load::SourceFile::new(
                SCHEMA_FILE,
                include_str!("../../../policies/schema.cedarschema"),
            ),
            vec![load::SourceFile::new(
                "admin.cedar",
                include_str!("../../../policies/admin.cedar"),
            )],
            None,
        )
    }

    /// Load a policy directory: `schema.cedarschema` (required), every `*.cedar` file
    /// in it (sorted by name, not recursive) and an optional `entities.json`.
    ///
    /// The set is validated strictly and refused on any error or warning. Each policy's
    /// id is its `@id("...")` annotation, or `<file>:<line>` (the line where the policy
    /// starts) if it has none; ids must be unique across files.
    pub fn load_dir(dir: &Path) -> Result<PolicyEngine, PolicyError> {
        let files = load::read_dir(dir)?;
        load::build(
            dir.display().to_string(),
            files.schema,
            files.policies,
            files.entities,
        )
    }

    /// Hex SHA-256 over the loaded files' names and contents: identifies the active set.
    /// The built-in set and a directory holding the same files have the same hash.
    pub fn hash(&self) -> &str {
        &self.hash
    }

    /// Where the set came from: `"builtin"` or the directory path.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The validated schema (for offline tooling).
    pub fn schema(&self) -> &cedar_policy::Schema {
        &self.schema
    }

    /// The validated policies, with ids from `@id` (for offline tooling).
    pub fn policy_set(&self) -> &PolicySet {
        &self.policies
    }

    /// Users and teams from `entities.json` plus the schema's actions.
    pub fn entities(&self) -> &Entities {
        &self.entities
    }

    /// Where a policy is written: (file, line where it starts).
    pub fn policy_origin(&self, id: &str) -> Option<(&str, usize)> {
        self.origins.get(id).map(|(f, l)| (f.as_str(), *l))
    }

    /// Decide one request. Never panics; anything unexpected denies.
    ///
    /// Only the policies whose scope may match are evaluated (see [`IndexStats`]); the
    /// decision, its determining policies and its errors are those of evaluating every
    /// policy ([`PolicyEngine::authorize_unindexed`]). A request asked again within the
    /// same second (time is part of the context, in whole seconds) gets the decision
    /// already made, unless it carries an encryption context.
    pub fn authorize(&self, req: &AuthzRequest<'_>) -> AuthzDecision {
        self.decisions
            .get_or_decide(req, || self.authorize_uncached(req))
    }

    /// [`PolicyEngine::authorize`] without the cache of this second's decisions: what
    /// the first request of its kind in a second costs (used by the benchmark).
    pub fn authorize_uncached(&self, req: &AuthzRequest<'_>) -> AuthzDecision {
        let (request, entities) = match self.prepare(req) {
            Ok(built) => built,
            Err(denied) => return denied,
        };
        let (Some(principal), Some(resource)) = (request.principal(), request.resource()) else {
            return AuthzDecision::deny("bad request: no principal or resource");
        };
        let ancestors = self.entities.ancestors(principal).into_iter().flatten();
        let facts = match req.resource {
            Resource::Secret { name, tags, .. } => ResourceFacts {
                uid: resource,
                paths: slice::path_prefixes(name).collect(),
                tag_keys: tags.keys().map(String::as_str).collect(),
            },
            Resource::Key { tags, .. } => ResourceFacts {
                uid: resource,
                paths: Vec::new(),
                tag_keys: tags.keys().map(String::as_str).collect(),
            },
            Resource::Account { .. } => ResourceFacts {
                uid: resource,
                paths: Vec::new(),
                tag_keys: Vec::new(),
            },
        };
        let mut outcome = Outcome::default();
        for (set, effect) in self
            .index
            .candidates(principal, ancestors, req.action, &facts)
        {
            let response = self.authorizer.is_authorized(&request, set, &entities);
            let diagnostics = response.diagnostics();
            let satisfied = diagnostics.reason().map(ToString::to_string);
            match effect {
                SetEffect::Permits => outcome.permits.extend(satisfied),
                SetEffect::Forbids => outcome.forbids.extend(satisfied),
            }
            for error in diagnostics.errors() {
                let AuthorizationError::PolicyEvaluationError(e) = error;
                outcome.errors.push(EvalError {
                    policy: e.policy_id().to_string(),
                    message: e.inner().to_string(),
                    permit: effect == SetEffect::Permits,
                });
            }
        }
        outcome.decide()
    }

    /// Decide one request by evaluating every policy of the set, without the scope
    /// index: the reference [`PolicyEngine::authorize`] must agree with (used by the
    /// differential test and the benchmark).
    pub fn authorize_unindexed(&self, req: &AuthzRequest<'_>) -> AuthzDecision {
        let (request, entities) = match self.prepare(req) {
            Ok(built) => built,
            Err(denied) => return denied,
        };
        let response = self
            .authorizer
            .is_authorized(&request, &self.policies, &entities);
        let diagnostics = response.diagnostics();
        let mut outcome = Outcome::default();
        for id in diagnostics.reason() {
            if self.is_permit(id) {
                outcome.permits.push(id.to_string());
            } else {
                outcome.forbids.push(id.to_string());
            }
        }
        for error in diagnostics.errors() {
            let AuthorizationError::PolicyEvaluationError(e) = error;
            outcome.errors.push(EvalError {
                policy: e.policy_id().to_string(),
                message: e.inner().to_string(),
                // A forbid, or an id we cannot place, fails closed.
                permit: self.is_permit(e.policy_id()),
            });
        }
        outcome.decide()
    }

    /// How the scope index filed this set's policies.
    pub fn index_stats(&self) -> IndexStats {
        self.index.stats()
    }

    /// The Cedar request and entity slice for `req`, or the denial when the request
    /// cannot be asked at all.
    fn prepare(
        &self,
        req: &AuthzRequest<'_>,
    ) -> Result<(cedar_policy::Request, Entities), AuthzDecision> {
        let Some(action) = self.actions.get(req.action) else {
            return Err(AuthzDecision::deny("unknown action"));
        };
        let kind = req.resource.kind();
        if action.resource_kinds & kind.bit() == 0 {
            return Err(AuthzDecision::deny(format!(
                "action {} does not apply to a {} resource",
                req.action,
                kind.type_name()
            )));
        }
        slice::build(self, req, action)
            .and_then(|parts| parts.into_request(None))
            .map_err(|message| AuthzDecision::deny(format!("bad request: {message}")))
    }

    fn is_permit(&self, id: &PolicyId) -> bool {
        matches!(
            self.policies.policy(id).map(cedar_policy::Policy::effect),
            Some(Effect::Permit)
        )
    }
}

/// One policy that errored during evaluation.
#[derive(Debug)]
struct EvalError {
    policy: String,
    message: String,
    /// Whether the policy is a permit (an erroring forbid denies the request).
    permit: bool,
}

/// What evaluating the policies gave, before it becomes a decision: the satisfied
/// permits, the satisfied forbids and the errors.
#[derive(Debug, Default)]
struct Outcome {
    permits: Vec<String>,
    forbids: Vec<String>,
    errors: Vec<EvalError>,
}

impl Outcome {
    /// Cedar's rule (deny if a forbid is satisfied, allow if a permit is, default deny),
    /// plus fail closed: a forbid that errored denies.
    fn decide(self) -> AuthzDecision {
        let Outcome {
            mut permits,
            mut forbids,
            errors: eval_errors,
        } = self;
        let mut errors = Vec::with_capacity(eval_errors.len());
        let mut errored_forbids = Vec::new();
        let mut errored_permits = Vec::new();
        for e in eval_errors {
            errors.push(format!("{}: {}", e.policy, e.message));
            if e.permit {
                errored_permits.push(e.policy);
            } else {
                errored_forbids.push(e.policy);
            }
        }
        errors.sort();
        errored_forbids.sort();
        errored_permits.sort();
        permits.sort();
        forbids.sort();

        if !errored_forbids.is_empty() {
            let reason = format!(
                "denied: forbid policy {} errored (fail closed)",
                errored_forbids.join(", ")
            );
            return AuthzDecision {
                allowed: false,
                determining_policies: errored_forbids,
                errors,
                reason,
            };
        }
        if !forbids.is_empty() {
            return AuthzDecision {
                allowed: false,
                reason: format!("forbidden by {}", forbids.join(", ")),
                determining_policies: forbids,
                errors,
            };
        }
        if !permits.is_empty() {
            return AuthzDecision {
                allowed: true,
                reason: format!("permitted by {}", permits.join(", ")),
                determining_policies: permits,
                errors,
            };
        }
        let reason = if errored_permits.is_empty() {
            "no permit matched".to_owned()
        } else {
            format!(
                "no permit matched (permit policy {} errored)",
                errored_permits.join(", ")
            )
        };
        AuthzDecision {
            allowed: false,
            determining_policies: Vec::new(),
            errors,
            reason,
        }
    }
}
