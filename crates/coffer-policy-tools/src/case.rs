//! One request and its expected outcome: the test-case format, requests written in
//! Coffer's terms or in Cedar's, and how each is decided.
//!
//! A request in Coffer's terms ([`CofferRequest`]) goes through
//! [`PolicyEngine::authorize`], exactly as the server decides it. A request in Cedar's terms
//! (entity uids, a context record, extra entities) goes through Cedar's authorizer over the
//! same policy set and entities, with Coffer's fail-closed rule applied on top.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::Path;
use std::str::FromStr;

use cedar_policy::{
    AuthorizationError, Authorizer, Context, Decision, Effect, Entities, EntityUid, Request,
};
use coffer_policy::{AuthzContext, AuthzDecision, AuthzRequest, PolicyEngine, Resource};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ToolError;

/// Region used when a request names none (the server's default region).
pub const DEFAULT_REGION: &str = "local";
/// Request time used when a test names none: a Wednesday, 14:00 UTC. Fixed, so that a
/// test's outcome never depends on when it runs.
pub const DEFAULT_TIME: &str = "2026-01-07T14:00:00Z";
/// [`DEFAULT_TIME`] in Unix seconds.
pub(crate) const DEFAULT_TIME_UNIX: i64 = 1_767_794_400;

/// The resource of a request in Coffer's terms.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// A secret, by name, with its tags.
    Secret {
        /// Full name, e.g. `prod/db/password`.
        name: String,
        /// The secret's tags.
        tags: BTreeMap<String, String>,
    },
    /// A KMS key, by id, with its aliases and tags.
    Key {
        /// Key id.
        id: String,
        /// Alias names (`alias/payments`).
        aliases: Vec<String>,
        /// The key's tags.
        tags: BTreeMap<String, String>,
    },
    /// The region as a whole (collection and admin operations).
    Account,
}

/// The kind of resource an action applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Kind {
    Secret,
    Key,
    Account,
}

impl Kind {
    pub(crate) fn type_name(self) -> &'static str {
        match self {
            Kind::Secret => "Coffer::Secret",
            Kind::Key => "Coffer::Key",
            Kind::Account => "Coffer::Account",
        }
    }
}

impl Target {
    pub(crate) fn kind(&self) -> Kind {
        match self {
            Target::Secret { .. } => Kind::Secret,
            Target::Key { .. } => Kind::Key,
            Target::Account => Kind::Account,
        }
    }
}

/// A request in Coffer's terms: what `coffer policy explain` takes, and what a test case
/// written in Coffer's terms becomes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CofferRequest {
    /// User name (`alice`), as bound to the caller's token.
    pub principal: String,
    /// Operation name (`GetSecretValue`).
    pub action: String,
    /// What the operation touches.
    pub target: Target,
    /// Region of the request and of the resource.
    pub region: String,
    /// Request time, Unix seconds.
    pub time_unix: i64,
    /// Caller address.
    pub source_ip: Option<IpAddr>,
    /// `native` or `aws`.
    pub api: String,
    /// KMS encryption context.
    pub encryption_context: Option<BTreeMap<String, String>>,
}

impl Default for CofferRequest {
    fn default() -> Self {
        CofferRequest {
            principal: String::new(),
            action: String::new(),
            target: Target::Account,
            region: DEFAULT_REGION.to_owned(),
            time_unix: DEFAULT_TIME_UNIX,
            source_ip: None,
            api: "native".to_owned(),
            encryption_context: None,
        }
    }
}

impl CofferRequest {
    /// The request as the policy engine takes it.
    pub fn authz(&self) -> AuthzRequest<'_> {
        let resource = match &self.target {
            Target::Secret { name, tags } => Resource::Secret {
                region: &self.region,
                name,
                tags,
            },
            Target::Key { id, aliases, tags } => Resource::Key {
                region: &self.region,
                key_id: id,
                aliases,
                tags,
            },
            Target::Account => Resource::Account {
                region: &self.region,
            },
        };
        AuthzRequest {
            principal: &self.principal,
            action: &self.action,
            resource,
            context: AuthzContext {
                region: &self.region,
                source_ip: self.source_ip,
                time_unix: self.time_unix,
                encryption_context: self.encryption_context.as_ref(),
                api: &self.api,
            },
        }
    }

    /// Refuse what the engine would silently deny: an unknown action, or a resource the
    /// action does not apply to (a typo in a test must not pass as "deny").
    pub fn check(&self, engine: &PolicyEngine) -> Result<(), ToolError> {
        if self.principal.is_empty() {
            return Err(ToolError::Request("empty principal".to_owned()));
        }
        let kinds = action_kinds(engine);
        let Some(allowed) = kinds.get(self.action.as_str()) else {
            return Err(ToolError::Request(format!(
                "unknown action {:?} (expected an operation name such as GetSecretValue)",
                self.action
            )));
        };
        let kind = self.target.kind();
        if !allowed.contains(&kind) {
            let wanted: Vec<&str> = allowed.iter().map(|k| k.type_name()).collect();
            return Err(ToolError::Request(format!(
                "action {} applies to {}, not to a {}",
                self.action,
                wanted.join(" or "),
                kind.type_name()
            )));
        }
        Ok(())
    }
}

/// Every concrete action of the engine's schema, with the resource kinds it applies to.
pub(crate) fn action_kinds(engine: &PolicyEngine) -> BTreeMap<&'static str, Vec<Kind>> {
    let schema = engine.schema();
    let mut out = BTreeMap::new();
    for name in coffer_policy::all_actions() {
        let Ok(uid) = action_uid(name) else {
            continue;
        };
        let mut kinds: Vec<Kind> = schema
            .resources_for_action(&uid)
            .into_iter()
            .flatten()
            .filter_map(|t| {
                [Kind::Secret, Kind::Key, Kind::Account]
                    .into_iter()
                    .find(|k| t.to_string() == k.type_name())
            })
            .collect();
        kinds.sort();
        kinds.dedup();
        out.insert(*name, kinds);
    }
    out
}

/// `Coffer::Action::"NAME"`.
pub(crate) fn action_uid(name: &str) -> Result<EntityUid, ToolError> {
    EntityUid::from_str(&format!("Coffer::Action::{}", quote(name)))
        .map_err(|e| ToolError::Request(format!("bad action name {name:?}: {e}")))
}

/// A Cedar string literal.
pub(crate) fn quote(s: &str) -> String {
    format!("\"{}\"", s.escape_default())
}

/// Parse an RFC 3339 time into Unix seconds.
pub fn parse_time(s: &str) -> Result<i64, ToolError> {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map(|t| t.unix_timestamp())
        .map_err(|e| ToolError::Request(format!("time {s:?} is not RFC 3339: {e}")))
}

/// A request in Cedar's terms: uids, a context record and optional extra entities.
#[derive(Debug, Clone)]
pub struct CedarRequest {
    /// Principal uid.
    pub principal: EntityUid,
    /// Action uid.
    pub action: EntityUid,
    /// Resource uid.
    pub resource: EntityUid,
    /// The context record (JSON), with Coffer's defaults filled in.
    pub context: Value,
    /// Extra entities (Cedar entity JSON), e.g. the resource with its attributes and tags.
    pub entities: Option<Value>,
}

/// A request, in either form.
#[derive(Debug, Clone)]
pub enum CaseRequest {
    /// In Coffer's terms; decided by [`PolicyEngine::authorize`].
    Coffer(Box<CofferRequest>),
    /// In Cedar's terms; decided by Cedar's authorizer plus Coffer's fail-closed rule.
    Cedar(Box<CedarRequest>),
}

/// What a test expects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Expected {
    /// `true` for `"decision": "allow"`.
    pub allowed: bool,
    /// The policy ids expected to decide, when given (compared as a set).
    pub reason: Option<BTreeSet<String>>,
    /// The number of evaluation errors expected, when given.
    pub num_errors: Option<usize>,
}

/// One test: a named request and its expected outcome.
#[derive(Debug, Clone)]
pub struct TestCase {
    /// The test's name.
    pub name: String,
    /// The request.
    pub request: CaseRequest,
    /// The expected outcome.
    pub expected: Expected,
}

impl TestCase {
    /// Decide the request with `engine`.
    pub fn decide(&self, engine: &PolicyEngine) -> Result<AuthzDecision, ToolError> {
        self.request.decide(engine)
    }
}

impl CaseRequest {
    /// Decide the request with `engine`.
    pub fn decide(&self, engine: &PolicyEngine) -> Result<AuthzDecision, ToolError> {
        match self {
            CaseRequest::Coffer(request) => {
                request.check(engine)?;
                Ok(engine.authorize(&request.authz()))
            }
            CaseRequest::Cedar(request) => decide_cedar(engine, request),
        }
    }

    /// The Coffer-form target this request names, if it can be read as one (used to
    /// seed the diff's universe with the resources tests care about).
    pub(crate) fn coffer_target(&self) -> Option<(String, Target)> {
        match self {
            CaseRequest::Coffer(r) => Some((r.region.clone(), r.target.clone())),
            CaseRequest::Cedar(r) => cedar_target(r),
        }
    }

    /// The principal's user name, if it is a `Coffer::User`.
    pub(crate) fn user(&self) -> Option<String> {
        match self {
            CaseRequest::Coffer(r) => Some(r.principal.clone()),
            CaseRequest::Cedar(r) => (r.principal.type_name().to_string() == "Coffer::User")
                .then(|| r.principal.id().unescaped().to_owned()),
        }
    }
}

/// Read a Coffer `Secret`/`Key` resource (its attributes and tags) out of a Cedar-form
/// request's extra entities.
fn cedar_target(r: &CedarRequest) -> Option<(String, Target)> {
    let type_name = r.resource.type_name().to_string();
    let entities = r.entities.as_ref()?.as_array()?;
    let entity = entities.iter().find(|e| {
        e.get("uid")
            .and_then(|uid| EntityUid::from_json(uid.clone()).ok())
            .is_some_and(|uid| uid == r.resource)
    })?;
    let attrs = entity.get("attrs")?;
    let region = attrs.get("region")?.as_str()?.to_owned();
    let tags: BTreeMap<String, String> = entity
        .get("tags")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                .collect()
        })
        .unwrap_or_default();
    match type_name.as_str() {
        "Coffer::Secret" => {
            let name = attrs.get("name")?.as_str()?.to_owned();
            Some((region, Target::Secret { name, tags }))
        }
        "Coffer::Key" => {
            let id = attrs.get("id")?.as_str()?.to_owned();
            let aliases = attrs
                .get("aliases")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            Some((region, Target::Key { id, aliases, tags }))
        }
        _ => None,
    }
}

fn decide_cedar(engine: &PolicyEngine, r: &CedarRequest) -> Result<AuthzDecision, ToolError> {
    let schema = engine.schema();
    let bad = |what: &str, e: &dyn std::fmt::Display| ToolError::Request(format!("{what}: {e}"));
    let context = Context::from_json_value(r.context.clone(), Some((schema, &r.action)))
        .map_err(|e| bad("context", &e))?;
    let request = Request::new(
        r.principal.clone(),
        r.action.clone(),
        r.resource.clone(),
        context,
        Some(schema),
    )
    .map_err(|e| bad("request", &e))?;
    let entities = match &r.entities {
        None => engine.entities().clone(),
        Some(extra) => {
            let extra = Entities::from_json_value(extra.clone(), Some(schema))
                .map_err(|e| bad("entities", &e))?;
            engine
                .entities()
                .clone()
                .add_entities(extra, Some(schema))
                .map_err(|e| bad("entities", &e))?
        }
    };
    let response = Authorizer::new().is_authorized(&request, engine.policy_set(), &entities);
    Ok(fail_closed(engine, &response))
}

/// Cedar's response, with Coffer's rule on top: an erroring `forbid` denies.
pub(crate) fn fail_closed(
    engine: &PolicyEngine,
    response: &cedar_policy::Response,
) -> AuthzDecision {
    let is_permit = |id: &cedar_policy::PolicyId| {
        engine
            .policy_set()
            .policy(id)
            .is_some_and(|p| p.effect() == Effect::Permit)
    };
    let mut errors = Vec::new();
    let mut errored_forbids = Vec::new();
    let mut errored_permits = Vec::new();
    for error in response.diagnostics().errors() {
        let AuthorizationError::PolicyEvaluationError(e) = error;
        errors.push(format!("{}: {}", e.policy_id(), e.inner()));
        if is_permit(e.policy_id()) {
            errored_permits.push(e.policy_id().to_string());
        } else {
            errored_forbids.push(e.policy_id().to_string());
        }
    }
    errors.sort();
    errored_forbids.sort();
    errored_permits.sort();
    let mut determining: Vec<String> = response
        .diagnostics()
        .reason()
        .map(ToString::to_string)
        .collect();
    determining.sort();
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
    let (allowed, reason) = match response.decision() {
        Decision::Allow => (true, format!("permitted by {}", determining.join(", "))),
        Decision::Deny if !determining.is_empty() => {
            (false, format!("forbidden by {}", determining.join(", ")))
        }
        Decision::Deny if !errored_permits.is_empty() => (
            false,
            format!(
                "no permit matched (permit policy {} errored)",
                errored_permits.join(", ")
            ),
        ),
        Decision::Deny => (false, "no permit matched".to_owned()),
    };
    AuthzDecision {
        allowed,
        determining_policies: determining,
        errors,
        reason,
    }
}

// ---- The JSON format ----

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCase {
    name: String,
    #[serde(default)]
    #[allow(dead_code, reason = "documentation for humans, not evaluated")]
    description: Option<String>,
    request: Value,
    #[serde(default)]
    entities: Option<Value>,
    decision: String,
    #[serde(default)]
    reason: Option<Vec<String>>,
    #[serde(default)]
    num_errors: Option<usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCofferRequest {
    principal: String,
    action: String,
    #[serde(default)]
    secret: Option<RawSecret>,
    #[serde(default)]
    key: Option<RawKey>,
    #[serde(default)]
    account: Option<Value>,
    #[serde(default)]
    region: Option<String>,
    #[serde(default)]
    time: Option<String>,
    #[serde(default)]
    source_ip: Option<IpAddr>,
    #[serde(default)]
    api: Option<String>,
    #[serde(default)]
    encryption_context: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSecret {
    name: String,
    #[serde(default)]
    tags: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKey {
    id: String,
    #[serde(default)]
    aliases: Vec<String>,
    #[serde(default)]
    tags: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCedarRequest {
    principal: Value,
    action: Value,
    resource: Value,
    #[serde(default)]
    context: Option<Value>,
}

/// `alice` or `Coffer::User::"alice"` → `alice`.
fn coffer_name(value: &str, type_name: &str) -> String {
    EntityUid::from_str(value)
        .ok()
        .filter(|uid| uid.type_name().to_string() == type_name)
        .map_or_else(|| value.to_owned(), |uid| uid.id().unescaped().to_owned())
}

fn entity_uid(value: &Value, what: &str) -> Result<EntityUid, String> {
    match value {
        Value::String(s) => EntityUid::from_str(s).map_err(|e| {
            format!("{what} {s:?} is not an entity uid like Coffer::User::\"alice\": {e}")
        }),
        Value::Object(_) => EntityUid::from_json(value.clone()).map_err(|e| format!("{what}: {e}")),
        _ => Err(format!(
            "{what} must be a string (Coffer::User::\"alice\") or {{\"type\", \"id\"}}"
        )),
    }
}

/// Build a Coffer-form request from its JSON (also used for nothing else).
fn coffer_request(raw: RawCofferRequest) -> Result<CofferRequest, String> {
    let targets = [
        raw.secret.is_some(),
        raw.key.is_some(),
        raw.account.is_some(),
    ]
    .iter()
    .filter(|b| **b)
    .count();
    if targets != 1 {
        return Err(
            "a request in Coffer's terms names exactly one of `secret`, `key`, `account`"
                .to_owned(),
        );
    }
    let target = if let Some(s) = raw.secret {
        Target::Secret {
            name: s.name,
            tags: s.tags,
        }
    } else if let Some(k) = raw.key {
        Target::Key {
            id: k.id,
            aliases: k.aliases,
            tags: k.tags,
        }
    } else {
        match raw.account {
            Some(Value::Bool(true)) => Target::Account,
            Some(Value::Object(m)) if m.is_empty() => Target::Account,
            _ => return Err("`account` must be `true` or `{}`".to_owned()),
        }
    };
    let time_unix = match raw.time.as_deref() {
        Some(t) => parse_time(t).map_err(|e| e.to_string())?,
        None => DEFAULT_TIME_UNIX,
    };
    Ok(CofferRequest {
        principal: coffer_name(&raw.principal, "Coffer::User"),
        action: coffer_name(&raw.action, "Coffer::Action"),
        target,
        region: raw.region.unwrap_or_else(|| DEFAULT_REGION.to_owned()),
        time_unix,
        source_ip: raw.source_ip,
        api: raw.api.unwrap_or_else(|| "native".to_owned()),
        encryption_context: raw.encryption_context,
    })
}

/// Fill the context attributes every Coffer request carries, when a Cedar-form test
/// leaves them out: `region`, `api`, and `time`/`time_unix` (both, from [`DEFAULT_TIME`],
/// only when both are absent).
fn default_context(context: Option<Value>) -> Result<Value, String> {
    let mut map = match context {
        None => serde_json::Map::new(),
        Some(Value::Object(map)) => map,
        Some(_) => return Err("`context` must be a JSON object".to_owned()),
    };
    map.entry("region")
        .or_insert_with(|| Value::String(DEFAULT_REGION.to_owned()));
    map.entry("api")
        .or_insert_with(|| Value::String("native".to_owned()));
    if !map.contains_key("time") && !map.contains_key("time_unix") {
        map.insert(
            "time".to_owned(),
            serde_json::json!({"__extn": {"fn": "datetime", "arg": DEFAULT_TIME}}),
        );
        map.insert("time_unix".to_owned(), Value::from(DEFAULT_TIME_UNIX));
    }
    Ok(Value::Object(map))
}

/// Parse one test case from its JSON. `dir` is the test file's directory (for an
/// `entities` file path).
pub(crate) fn parse_case(value: Value, dir: &Path) -> Result<TestCase, (Option<String>, String)> {
    let name = value.get("name").and_then(Value::as_str).map(str::to_owned);
    let fail = |message: String| (name.clone(), message);
    let raw: RawCase = serde_json::from_value(value).map_err(|e| fail(e.to_string()))?;
    let allowed = match raw.decision.to_ascii_lowercase().as_str() {
        "allow" => true,
        "deny" => false,
        other => {
            return Err(fail(format!(
                "decision must be \"allow\" or \"deny\", not {other:?}"
            )))
        }
    };
    let expected = Expected {
        allowed,
        reason: raw.reason.map(|r| r.into_iter().collect()),
        num_errors: raw.num_errors,
    };
    let is_cedar = raw.request.get("resource").is_some();
    let request = if is_cedar {
        let r: RawCedarRequest =
            serde_json::from_value(raw.request).map_err(|e| fail(format!("request: {e}")))?;
        let entities = match raw.entities {
            None => None,
            Some(Value::String(path)) => {
                let path = dir.join(path);
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| fail(format!("entities file {}: {e}", path.display())))?;
                Some(
                    serde_json::from_str(&text)
                        .map_err(|e| fail(format!("entities file {}: {e}", path.display())))?,
                )
            }
            Some(v @ Value::Array(_)) => Some(v),
            Some(_) => {
                return Err(fail(
                    "`entities` must be an array of entities or a file path".to_owned(),
                ))
            }
        };
        CaseRequest::Cedar(Box::new(CedarRequest {
            principal: entity_uid(&r.principal, "principal").map_err(fail)?,
            action: match &r.action {
                Value::String(s) if !s.contains("::") => {
                    action_uid(s).map_err(|e| fail(e.to_string()))?
                }
                other => entity_uid(other, "action").map_err(fail)?,
            },
            resource: entity_uid(&r.resource, "resource").map_err(fail)?,
            context: default_context(r.context).map_err(fail)?,
            entities,
        }))
    } else {
        if raw.entities.is_some() {
            return Err(fail(
                "`entities` belongs to requests in Cedar's terms (with `resource`); a request in \
                 Coffer's terms uses the directory's entities.json"
                    .to_owned(),
            ));
        }
        let r: RawCofferRequest =
            serde_json::from_value(raw.request).map_err(|e| fail(format!("request: {e}")))?;
        CaseRequest::Coffer(Box::new(coffer_request(r).map_err(fail)?))
    };
    Ok(TestCase {
        name: raw.name,
        request,
        expected,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_time_constant_matches_its_text() {
        assert_eq!(parse_time(DEFAULT_TIME).unwrap(), DEFAULT_TIME_UNIX);
    }

    #[test]
    fn coffer_names_accept_uids() {
        assert_eq!(coffer_name("alice", "Coffer::User"), "alice");
        assert_eq!(
            coffer_name("Coffer::User::\"alice\"", "Coffer::User"),
            "alice"
        );
        assert_eq!(
            coffer_name("Coffer::Action::\"GetSecretValue\"", "Coffer::Action"),
            "GetSecretValue"
        );
    }

    #[test]
    fn a_request_names_exactly_one_resource() {
        let case = serde_json::json!({
            "name": "two", "decision": "deny",
            "request": {"principal": "a", "action": "GetSecretValue",
                        "secret": {"name": "x"}, "account": true}
        });
        let err = parse_case(case, Path::new(".")).err().unwrap();
        assert!(err.1.contains("exactly one"), "{}", err.1);
    }

    #[test]
    fn cedar_context_gets_defaults() {
        let ctx = default_context(None).unwrap();
        assert_eq!(ctx["region"], DEFAULT_REGION);
        assert_eq!(ctx["time_unix"], DEFAULT_TIME_UNIX);
        let ctx = default_context(Some(serde_json::json!({"time_unix": 5}))).unwrap();
        assert!(ctx.get("time").is_none());
    }
}
