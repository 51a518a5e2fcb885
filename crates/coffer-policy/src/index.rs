//! The scope index: which policies could possibly apply to a request.
//!
//! Cedar's authorizer evaluates every policy of the set it is given (about 2 µs each),
//! so a request against 10,000 policies costs ~20 ms. Most policies cannot apply to a
//! given request because their *scope* (`principal …, action …, resource …`) rules it
//! out, and a scope that does not match makes the whole policy false without evaluating
//! its conditions — it can neither be satisfied nor error.
//!
//! At load, every policy is filed under
//! * its **principal key**: the entity of `principal == E`, `principal in E` or
//!   `principal is T in E`; or *unscoped* for `principal` and `principal is T`;
//! * every **concrete action** its action scope can match: `action == A`; each action of
//!   `action in [A, G, …]`, with groups expanded through the schema's action hierarchy;
//!   all actions for an unscoped `action`;
//! * its **resource key**: the entity of `resource == E`, `resource in E` or
//!   `resource is T in E`; otherwise its **leading guard**, when the first thing its
//!   first `when` clause tests is `resource.path.contains("P")` (the secret's name starts
//!   with `P/`, Coffer's folders) or `resource.hasTag("K")`; or *any* otherwise;
//!
//! with permits and forbids in separate [`PolicySet`]s. A request for principal `P`
//! (whose ancestors, its teams, come from `entities.json`), action `A` and resource `R`
//! evaluates only the sets filed under principal key *unscoped*, `P` or one of `P`'s
//! ancestors, action `A`, and resource key *any*, `R`, one of `R`'s path prefixes or
//! one of `R`'s tag keys.
//!
//! Why that is exact: Cedar evaluates a policy as `scope && when₁ && … && !unless₁ …`,
//! left to right, stopping at the first false conjunct. A policy left out has a false
//! scope (resources carry no parents, so `resource in E` matches only `E` itself), or a
//! false leading guard — which cannot error, since strict validation proved the
//! attribute exists — so it is neither satisfied nor erroring, and nothing after it is
//! evaluated. The satisfied and erroring policies are therefore exactly those of a full
//! evaluation, and combining them by Cedar's rule gives the same decision with the same
//! determining policies. `tests/differential.rs` checks that on generated sets.

use std::collections::{HashMap, HashSet};

use cedar_policy::{
    ActionConstraint, Effect, Entities, EntityUid, Policy, PolicySet, PrincipalConstraint,
    ResourceConstraint,
};

use crate::ActionInfo;

/// The permits and forbids of one bucket, each as its own set so that Cedar's answer
/// for the set says exactly which ones were satisfied.
#[derive(Debug, Default)]
struct Sets {
    permits: PolicySet,
    forbids: PolicySet,
}

impl Sets {
    fn add(&mut self, policy: &Policy) -> Result<(), String> {
        let set = match policy.effect() {
            Effect::Permit => &mut self.permits,
            Effect::Forbid => &mut self.forbids,
        };
        set.add(policy.clone())
            .map_err(|e| format!("policy {}: {e}", policy.id()))
    }
}

/// The policies of one (principal key, action), split by resource key or guard.
#[derive(Debug, Default)]
struct Bucket {
    any_resource: Sets,
    by_resource: HashMap<EntityUid, Sets>,
    by_path: HashMap<String, Sets>,
    by_tag: HashMap<String, Sets>,
}

/// Where a policy goes inside a [`Bucket`].
#[derive(Debug, Clone, PartialEq, Eq)]
enum ResourceKey {
    Any,
    Entity(EntityUid),
    /// The first conjunct of the first `when` is `resource.path.contains(P)`.
    Path(String),
    /// The first conjunct of the first `when` is `resource.hasTag(K)`.
    Tag(String),
}

/// The resource facts the index looks up: its entity, path prefixes and tag keys.
pub(crate) struct ResourceFacts<'a> {
    pub(crate) uid: &'a EntityUid,
    pub(crate) paths: Vec<&'a str>,
    pub(crate) tag_keys: Vec<&'a str>,
}

/// Action name → bucket.
type ByAction = HashMap<String, Bucket>;

/// Policies filed by principal scope, action and resource scope.
#[derive(Debug, Default)]
pub(crate) struct ScopeIndex {
    unscoped: ByAction,
    by_principal: HashMap<EntityUid, ByAction>,
    /// Policies whose principal scope is unscoped (evaluated for every principal).
    unscoped_policies: usize,
    /// Number of non-empty policy sets in the index.
    sets: usize,
}

/// Which of a bucket's sets one evaluated set is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SetEffect {
    /// A set holding only permits.
    Permits,
    /// A set holding only forbids.
    Forbids,
}

/// Figures about an index, for logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexStats {
    /// Policies that apply to every principal (no principal entity in their scope).
    pub unscoped_principal_policies: usize,
    /// Number of distinct principal entities policies are filed under.
    pub principal_keys: usize,
    /// Number of non-empty policy sets the index holds.
    pub policy_sets: usize,
}

fn principal_key(policy: &Policy) -> Option<EntityUid> {
    match policy.principal_constraint() {
        PrincipalConstraint::Any | PrincipalConstraint::Is(_) => None,
        PrincipalConstraint::In(uid)
        | PrincipalConstraint::Eq(uid)
        | PrincipalConstraint::IsIn(_, uid) => Some(uid),
    }
}

fn resource_key(policy: &Policy) -> ResourceKey {
    match policy.resource_constraint() {
        ResourceConstraint::In(uid)
        | ResourceConstraint::Eq(uid)
        | ResourceConstraint::IsIn(_, uid) => ResourceKey::Entity(uid),
        ResourceConstraint::Any | ResourceConstraint::Is(_) => leading_guard(policy),
    }
}

/// The leading guard of a policy: the leftmost conjunct of its first condition, when
/// that is a `when` clause testing `resource.path.contains("P")` or
/// `resource.hasTag("K")` (read from the policy's JSON form).
fn leading_guard(policy: &Policy) -> ResourceKey {
    let Ok(json) = policy.to_json() else {
        return ResourceKey::Any;
    };
    let Some(first) = json
        .get("conditions")
        .and_then(|c| c.as_array())
        .and_then(|c| c.first())
    else {
        return ResourceKey::Any;
    };
    if first.get("kind").and_then(|k| k.as_str()) != Some("when") {
        return ResourceKey::Any;
    }
    let mut body = first.get("body");
    while let Some(left) = body.and_then(|b| b.get("&&")).and_then(|a| a.get("left")) {
        body = Some(left);
    }
    let Some(body) = body else {
        return ResourceKey::Any;
    };
    let is_resource = |e: Option<&serde_json::Value>| {
        e.and_then(|e| e.get("Var")).and_then(|v| v.as_str()) == Some("resource")
    };
    let literal = |e: Option<&serde_json::Value>| {
        e.and_then(|e| e.get("Value"))
            .and_then(|v| v.as_str())
            .map(str::to_owned)
    };
    if let Some(contains) = body.get("contains") {
        let receiver = contains.get("left").and_then(|l| l.get("."));
        let on_path = is_resource(receiver.and_then(|r| r.get("left")))
            && receiver
                .and_then(|r| r.get("attr"))
                .and_then(|a| a.as_str())
                == Some("path");
        if let (true, Some(path)) = (on_path, literal(contains.get("right"))) {
            return ResourceKey::Path(path);
        }
    }
    if let Some(has_tag) = body.get("hasTag") {
        if let (true, Some(tag)) = (
            is_resource(has_tag.get("left")),
            literal(has_tag.get("right")),
        ) {
            return ResourceKey::Tag(tag);
        }
    }
    ResourceKey::Any
}

impl ScopeIndex {
    /// File every policy of `policies`. `actions` are the concrete actions; `action_entities`
    /// holds the action hierarchy (the schema's action entities).
    pub(crate) fn build(
        policies: &PolicySet,
        actions: &HashMap<String, ActionInfo>,
        action_entities: &Entities,
    ) -> Result<ScopeIndex, String> {
        // Each concrete action with the groups it belongs to (itself included).
        let action_scopes: Vec<(&str, HashSet<&EntityUid>)> = actions
            .iter()
            .map(|(name, info)| {
                let mut scope: HashSet<&EntityUid> = action_entities
                    .ancestors(&info.uid)
                    .map(|a| a.collect())
                    .unwrap_or_default();
                scope.insert(&info.uid);
                (name.as_str(), scope)
            })
            .collect();

        let mut index = ScopeIndex::default();
        for policy in policies.policies() {
            let matched: Vec<&str> = match policy.action_constraint() {
                ActionConstraint::Any => action_scopes.iter().map(|(name, _)| *name).collect(),
                ActionConstraint::Eq(uid) => action_scopes
                    .iter()
                    .filter(|(name, _)| actions.get(*name).is_some_and(|info| info.uid == uid))
                    .map(|(name, _)| *name)
                    .collect(),
                ActionConstraint::In(uids) => action_scopes
                    .iter()
                    .filter(|(_, scope)| uids.iter().any(|uid| scope.contains(uid)))
                    .map(|(name, _)| *name)
                    .collect(),
            };
            let by_action = match principal_key(policy) {
                None => {
                    index.unscoped_policies += 1;
                    &mut index.unscoped
                }
                Some(uid) => index.by_principal.entry(uid).or_default(),
            };
            let resource = resource_key(policy);
            for name in matched {
                let bucket = by_action.entry(name.to_owned()).or_default();
                let sets = match &resource {
                    ResourceKey::Any => &mut bucket.any_resource,
                    ResourceKey::Entity(uid) => bucket.by_resource.entry(uid.clone()).or_default(),
                    ResourceKey::Path(path) => bucket.by_path.entry(path.clone()).or_default(),
                    ResourceKey::Tag(tag) => bucket.by_tag.entry(tag.clone()).or_default(),
                };
                sets.add(policy)?;
            }
        }
        index.sets = index
            .all_sets()
            .map(|s| usize::from(!s.permits.is_empty()) + usize::from(!s.forbids.is_empty()))
            .sum();
        Ok(index)
    }

    fn all_sets(&self) -> impl Iterator<Item = &Sets> {
        std::iter::once(&self.unscoped)
            .chain(self.by_principal.values())
            .flat_map(|by_action| by_action.values())
            .flat_map(|bucket| {
                std::iter::once(&bucket.any_resource)
                    .chain(bucket.by_resource.values())
                    .chain(bucket.by_path.values())
                    .chain(bucket.by_tag.values())
            })
    }

    pub(crate) fn stats(&self) -> IndexStats {
        IndexStats {
            unscoped_principal_policies: self.unscoped_policies,
            principal_keys: self.by_principal.len(),
            policy_sets: self.sets,
        }
    }

    /// Every non-empty policy set that may hold a policy applying to a request of
    /// `principal` (with `ancestors`) doing `action` on `resource`.
    pub(crate) fn candidates<'a>(
        &'a self,
        principal: &'a EntityUid,
        ancestors: impl Iterator<Item = &'a EntityUid> + 'a,
        action: &'a str,
        resource: &'a ResourceFacts<'a>,
    ) -> impl Iterator<Item = (&'a PolicySet, SetEffect)> + 'a {
        std::iter::once(Some(&self.unscoped))
            .chain(
                std::iter::once(principal)
                    .chain(ancestors)
                    .map(|uid| self.by_principal.get(uid)),
            )
            .flatten()
            .filter_map(move |by_action| by_action.get(action))
            .flat_map(move |bucket| {
                std::iter::once(&bucket.any_resource)
                    .chain(bucket.by_resource.get(resource.uid))
                    .chain(resource.paths.iter().filter_map(|p| bucket.by_path.get(*p)))
                    .chain(
                        resource
                            .tag_keys
                            .iter()
                            .filter_map(|k| bucket.by_tag.get(*k)),
                    )
            })
            .flat_map(|sets| {
                [
                    (&sets.permits, SetEffect::Permits),
                    (&sets.forbids, SetEffect::Forbids),
                ]
            })
            .filter(|(set, _)| !set.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use super::{leading_guard, ResourceKey};

    fn guard(text: &str) -> ResourceKey {
        let policy = cedar_policy::Policy::from_str(text).expect("parses");
        leading_guard(&policy)
    }

    #[test]
    fn only_a_leading_path_or_tag_test_is_a_guard() {
        let path = |p: &str| ResourceKey::Path(p.to_owned());
        let tag = |t: &str| ResourceKey::Tag(t.to_owned());
        assert_eq!(
            guard(
                r#"permit (principal, action, resource) when { resource.path.contains("prod") };"#
            ),
            path("prod")
        );
        assert_eq!(
            guard(
                r#"permit (principal, action, resource) when { resource.path.contains("a") && context.x && resource.hasTag("k") } when { false };"#
            ),
            path("a")
        );
        assert_eq!(
            guard(
                r#"forbid (principal, action, resource) when { resource.hasTag("env") && resource.getTag("env") == "prod" };"#
            ),
            tag("env")
        );
        // Not leading, not a literal, not on the resource, or under `unless`: no guard.
        for text in [
            r#"permit (principal, action, resource) when { context.x && resource.path.contains("a") };"#,
            r#"permit (principal, action, resource) when { resource.path.contains(context.p) };"#,
            r#"permit (principal, action, resource) when { principal.path.contains("a") };"#,
            r#"permit (principal, action, resource) when { resource.aliases.contains("a") };"#,
            r#"permit (principal, action, resource) unless { resource.path.contains("a") };"#,
            r#"permit (principal, action, resource) unless { false } when { resource.hasTag("k") };"#,
            r#"permit (principal, action, resource) when { resource.path.contains("a") || true };"#,
            r#"permit (principal, action, resource);"#,
        ] {
            assert_eq!(guard(text), ResourceKey::Any, "{text}");
        }
    }
}
