//! `coffer policy diff`: what a policy change does, concretely (which decisions flip over
//! a generated universe of requests) and symbolically (for any request, proved by a
//! solver).

pub mod base;
pub mod concrete;
pub mod symbolic;
mod universe;

use std::collections::BTreeSet;

use cedar_policy::Policy;
use coffer_policy::PolicyEngine;
use serde::Serialize;

use crate::explain::PolicyRef;

/// How a policy id differs between the base set and the new one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    /// Only in the new set.
    Added,
    /// Only in the base set.
    Removed,
    /// In both, with a different effect, scope or condition.
    Modified,
}

/// One policy that changed (annotations, comments and formatting do not count).
#[derive(Debug, Clone, Serialize)]
pub struct PolicyChange {
    /// The policy id.
    pub id: String,
    /// Added, removed or modified.
    pub kind: ChangeKind,
    /// Where it is in the base set.
    pub base: Option<PolicyRef>,
    /// Where it is in the new set.
    pub new: Option<PolicyRef>,
}

/// What decides requests: the policy's JSON form without annotations (so `@id`,
/// `@description`, comments and layout do not count as changes).
fn semantics(policy: &Policy) -> String {
    match policy.to_json() {
        Ok(mut json) => {
            if let Some(map) = json.as_object_mut() {
                map.remove("annotations");
            }
            json.to_string()
        }
        Err(_) => policy.to_string(),
    }
}

/// The policies whose meaning differs between `base` and `new`, by id, sorted.
pub fn changed_policies(base: &PolicyEngine, new: &PolicyEngine) -> Vec<PolicyChange> {
    let ids: BTreeSet<String> = base
        .policy_set()
        .policies()
        .chain(new.policy_set().policies())
        .map(|p| p.id().to_string())
        .collect();
    let mut out = Vec::new();
    for id in ids {
        let pid = cedar_policy::PolicyId::new(&id);
        let old = base.policy_set().policy(&pid);
        let now = new.policy_set().policy(&pid);
        let kind = match (old, now) {
            (None, Some(_)) => ChangeKind::Added,
            (Some(_), None) => ChangeKind::Removed,
            (Some(a), Some(b)) if semantics(a) != semantics(b) => ChangeKind::Modified,
            _ => continue,
        };
        out.push(PolicyChange {
            base: old.map(|_| PolicyRef::new(base, &id)),
            new: now.map(|_| PolicyRef::new(new, &id)),
            id,
            kind,
        });
    }
    out
}
