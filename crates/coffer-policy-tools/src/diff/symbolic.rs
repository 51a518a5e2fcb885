//! The symbolic diff: for every request environment (principal type, action, resource
//! type) of the schema, whether the new set allows exactly what the base set allows,
//! more, less, or neither, for *any* request and entity data. Proved by
//! `cedar-policy-symcc` with the `cvc5` SMT solver; each difference comes with a
//! counterexample the solver synthesized, replayed through both sets.
//!
//! The analysis follows Cedar's semantics, where an erroring policy is skipped; Coffer
//! additionally denies when a `forbid` errors. Strict validation makes such errors rare
//! (overflow, extension-function errors), so the two agree outside those cases.

use std::path::PathBuf;
use std::time::Instant;

use cedar_policy::{Authorizer, RequestEnv};
use cedar_policy_symcc::solver::LocalSolver;
use cedar_policy_symcc::{CedarSymCompiler, CompiledPolicySet, Env};
use coffer_policy::PolicyEngine;
use serde::Serialize;

use crate::case::fail_closed;
use crate::ToolError;

/// How the new set compares with the base set in one environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Same decision for every request.
    Equivalent,
    /// Allows everything the base allows, and more.
    MorePermissive,
    /// Allows only what the base allows, but not all of it.
    LessPermissive,
    /// Allows some requests the base denies and denies some the base allows.
    Incomparable,
}

impl Verdict {
    /// `equivalent`, `more permissive`, …
    pub fn text(self) -> &'static str {
        match self {
            Verdict::Equivalent => "equivalent",
            Verdict::MorePermissive => "more permissive",
            Verdict::LessPermissive => "less permissive",
            Verdict::Incomparable => "incomparable",
        }
    }

    /// Whether some request is allowed by the new set and denied by the base.
    pub fn widens(self) -> bool {
        matches!(self, Verdict::MorePermissive | Verdict::Incomparable)
    }
}

/// A request (and entity store) on which the two sets decide differently.
#[derive(Debug, Clone, Serialize)]
pub struct Counterexample {
    /// The synthesized request and entities, as the solver found them.
    pub request: String,
    /// The base set's decision on it (Coffer's rules), e.g. `deny (no permit matched)`.
    pub base: String,
    /// The new set's decision on it.
    pub new: String,
}

/// The verdict for one request environment.
#[derive(Debug, Clone, Serialize)]
pub struct EnvVerdict {
    /// Principal type, e.g. `Coffer::User`.
    pub principal_type: String,
    /// Action, e.g. `Coffer::Action::"GetSecretValue"`.
    pub action: String,
    /// Resource type, e.g. `Coffer::Secret`.
    pub resource_type: String,
    /// How the new set compares.
    pub verdict: Verdict,
    /// A request the new set allows and the base denies (when widening).
    pub widening: Option<Counterexample>,
    /// A request the base allows and the new set denies (when narrowing).
    pub narrowing: Option<Counterexample>,
    /// Compile and solve time, milliseconds.
    pub millis: f64,
}

/// The result of a symbolic diff.
#[derive(Debug, Clone, Serialize)]
pub struct SymbolicReport {
    /// The solver used.
    pub cvc5: PathBuf,
    /// One verdict per environment, sorted by principal type, action, resource type.
    pub environments: Vec<EnvVerdict>,
    /// Wall time, milliseconds.
    pub millis: f64,
}

impl SymbolicReport {
    /// Whether some environment is more permissive or incomparable.
    pub fn widens(&self) -> bool {
        self.environments.iter().any(|e| e.verdict.widens())
    }

    /// Whether some environment is not equivalent.
    pub fn changes(&self) -> bool {
        self.environments
            .iter()
            .any(|e| e.verdict != Verdict::Equivalent)
    }
}

/// The `cvc5` binary: `$CVC5` if set, else `cvc5` on `PATH`.
pub fn find_cvc5() -> Result<PathBuf, ToolError> {
    if let Some(path) = std::env::var_os("CVC5").filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(ToolError::Cvc5Missing {
                searched: format!("CVC5={}", path.display()),
            })
        };
    }
    let path_var = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path_var)
        .map(|dir| dir.join("cvc5"))
        .find(|candidate| candidate.is_file())
        .ok_or_else(|| ToolError::Cvc5Missing {
            searched: "CVC5 is unset and there is no cvc5 on PATH".to_owned(),
        })
}

fn env_name(env: &RequestEnv) -> String {
    format!("{}, {}, {}", env.principal(), env.action(), env.resource())
}

fn describe(engine: &PolicyEngine, cex: &Env) -> String {
    let response =
        Authorizer::new().is_authorized(&cex.request, engine.policy_set(), &cex.entities);
    let decision = fail_closed(engine, &response);
    format!(
        "{} ({})",
        if decision.allowed { "allow" } else { "deny" },
        decision.reason
    )
}

/// The counterexample in a few lines: the request, its context, and the entities the
/// solver invented (action entities, which come from the schema, left out).
fn render(cex: &Env) -> String {
    let uid = |u: Option<&cedar_policy::EntityUid>| u.map_or("?".to_owned(), ToString::to_string);
    let r = &cex.request;
    let mut out = format!(
        "principal: {}, action: {}, resource: {}",
        uid(r.principal()),
        uid(r.action()),
        uid(r.resource())
    );
    if let Some(context) = r.context() {
        out.push_str(&format!("\ncontext: {context}"));
    }
    let fields = |items: Vec<(&str, String)>| -> String {
        if items.is_empty() {
            return String::new();
        }
        let inner: Vec<String> = items.iter().map(|(k, v)| format!("{k}: {v}")).collect();
        format!(" {{{}}}", inner.join(", "))
    };
    let mut lines: Vec<String> = cex
        .entities
        .iter()
        .filter(|e| e.uid().type_name().basename() != "Action")
        .map(|e| {
            let id = e.uid();
            let mut line = id.to_string();
            let mut parents: Vec<String> = cex
                .entities
                .ancestors(&id)
                .map(|a| a.map(ToString::to_string).collect())
                .unwrap_or_default();
            parents.sort();
            if !parents.is_empty() {
                line.push_str(&format!(" in [{}]", parents.join(", ")));
            }
            let value = |v: Result<cedar_policy::EvalResult, _>| {
                v.map_or_else(
                    |_: cedar_policy::PartialValueToValueError| "?".to_owned(),
                    |v| v.to_string(),
                )
            };
            let mut attrs: Vec<(&str, String)> = e.attrs().map(|(k, v)| (k, value(v))).collect();
            attrs.sort();
            line.push_str(&fields(attrs));
            let mut tags: Vec<(&str, String)> = e.tags().map(|(k, v)| (k, value(v))).collect();
            tags.sort();
            if !tags.is_empty() {
                line.push_str(" tags");
                line.push_str(&fields(tags));
            }
            line
        })
        .collect();
    lines.sort();
    if !lines.is_empty() {
        out.push_str("\nentities:");
        for line in lines {
            out.push_str("\n  ");
            out.push_str(&line);
        }
    }
    out
}

fn counterexample(base: &PolicyEngine, new: &PolicyEngine, cex: &Env) -> Counterexample {
    Counterexample {
        request: render(cex),
        base: describe(base, cex),
        new: describe(new, cex),
    }
}

/// Compare `new` with `base` in every request environment of `new`'s schema.
///
/// Both sets are compiled against `new`'s schema, so the base policies must validate
/// against it.
pub async fn symbolic_diff(
    base: &PolicyEngine,
    new: &PolicyEngine,
) -> Result<SymbolicReport, ToolError> {
    let started = Instant::now();
    let cvc5 = find_cvc5()?;
    let schema = new.schema();
    let mut envs: Vec<RequestEnv> = schema.request_envs().collect();
    envs.sort_by_key(|e| {
        (
            e.principal().to_string(),
            e.action().to_string(),
            e.resource().to_string(),
        )
    });
    let solver_error = |env: &str, e: &dyn std::fmt::Display| ToolError::Symbolic {
        environment: env.to_owned(),
        message: e.to_string(),
    };
    let solver = LocalSolver::from_command(tokio::process::Command::new(&cvc5).args([
        "--lang",
        "smt",
        "--tlimit=60000",
    ]))
    .map_err(|e| solver_error("(starting cvc5)", &e))?;
    let mut compiler =
        CedarSymCompiler::new(solver).map_err(|e| solver_error("(starting cvc5)", &e))?;

    let mut environments = Vec::with_capacity(envs.len());
    for env in &envs {
        let env_started = Instant::now();
        let name = env_name(env);
        let compiled_base = CompiledPolicySet::compile(base.policy_set(), env, schema)
            .map_err(|e| solver_error(&name, &format!("base policies: {e}")))?;
        let compiled_new = CompiledPolicySet::compile(new.policy_set(), env, schema)
            .map_err(|e| solver_error(&name, &format!("new policies: {e}")))?;
        // new ⇒ base fails: the new set allows something the base does not.
        let widening = compiler
            .check_implies_with_counterexample_opt(&compiled_new, &compiled_base)
            .await
            .map_err(|e| solver_error(&name, &e))?;
        let narrowing = compiler
            .check_implies_with_counterexample_opt(&compiled_base, &compiled_new)
            .await
            .map_err(|e| solver_error(&name, &e))?;
        let verdict = match (&widening, &narrowing) {
            (None, None) => Verdict::Equivalent,
            (Some(_), None) => Verdict::MorePermissive,
            (None, Some(_)) => Verdict::LessPermissive,
            (Some(_), Some(_)) => Verdict::Incomparable,
        };
        environments.push(EnvVerdict {
            principal_type: env.principal().to_string(),
            action: env.action().to_string(),
            resource_type: env.resource().to_string(),
            verdict,
            widening: widening.map(|cex| counterexample(base, new, &cex)),
            narrowing: narrowing.map(|cex| counterexample(base, new, &cex)),
            millis: env_started.elapsed().as_secs_f64() * 1000.0,
        });
    }
    Ok(SymbolicReport {
        cvc5,
        environments,
        millis: started.elapsed().as_secs_f64() * 1000.0,
    })
}
