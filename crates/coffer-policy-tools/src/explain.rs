//! `coffer policy explain`: one request, its decision, and where the deciding policies
//! are written.

use coffer_policy::{AuthzDecision, PolicyEngine};
use serde::Serialize;

use crate::case::CofferRequest;
use crate::ToolError;

/// A policy, located in its file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PolicyRef {
    /// The policy id (its `@id`, or `file:line`).
    pub id: String,
    /// `permit` or `forbid` (empty if the id is not in the set).
    pub effect: String,
    /// File, relative to the policy directory.
    pub file: Option<String>,
    /// Line where the policy starts.
    pub line: Option<usize>,
}

impl PolicyRef {
    /// Locate `id` in `engine`'s set.
    pub fn new(engine: &PolicyEngine, id: &str) -> Self {
        let origin = engine.policy_origin(id);
        let effect = engine
            .policy_set()
            .policy(&cedar_policy::PolicyId::new(id))
            .map(|p| p.effect().to_string())
            .unwrap_or_default();
        PolicyRef {
            id: id.to_owned(),
            effect,
            file: origin.map(|(f, _)| f.to_owned()),
            line: origin.map(|(_, l)| l),
        }
    }

    /// `file:line`, or `?` when unknown.
    pub fn location(&self) -> String {
        match (&self.file, self.line) {
            (Some(f), Some(l)) => format!("{f}:{l}"),
            (Some(f), None) => f.clone(),
            _ => "?".to_owned(),
        }
    }
}

/// The answer to one request, with the deciding policies located.
#[derive(Debug, Clone, Serialize)]
pub struct Explanation {
    /// The request as decided.
    pub request: CofferRequest,
    /// The engine's decision.
    pub decision: AuthzDecision,
    /// The determining policies, with their files and lines.
    pub policies: Vec<PolicyRef>,
}

/// Decide `request` with `engine` and locate the policies that decided it.
pub fn explain(engine: &PolicyEngine, request: &CofferRequest) -> Result<Explanation, ToolError> {
    request.check(engine)?;
    let decision = engine.authorize(&request.authz());
    let policies = decision
        .determining_policies
        .iter()
        .map(|id| PolicyRef::new(engine, id))
        .collect();
    Ok(Explanation {
        request: request.clone(),
        decision,
        policies,
    })
}
