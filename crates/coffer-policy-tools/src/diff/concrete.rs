//! The concrete diff: which decisions flip between two policy sets, over a generated
//! universe of requests (see [`super::universe`]).
//!
//! Algorithm:
//! 1. find the policies whose meaning changed ([`super::changed_policies`]);
//! 2. *prune*: skip (user, action, resource kind) combinations that no version of a
//!    changed policy can match by its scope (`principal in Team::"dev"`,
//!    `action in Action::"ReadSecret"`, `resource is Coffer::Secret`);
//! 3. *probe*: decide each remaining request with a set holding only the changed
//!    policies (old and new versions, renamed `id#base` and `id#new`). If none of them is
//!    satisfied or errors, the two full sets decide alike, so the request is skipped;
//! 4. decide the rest with both full sets and record every flip.
//!
//! When anything besides the `*.cedar` files differs (schema, entities), a change can
//! reach any request, so steps 2 and 3 are skipped and every request is decided in full.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Instant;

use cedar_policy::{
    ActionConstraint, EntityId, EntityTypeName, EntityUid, Policy, PrincipalConstraint,
    ResourceConstraint,
};
use coffer_policy::{AuthzContext, AuthzDecision, AuthzRequest, PolicyEngine, Resource};
use serde::Serialize;

use super::universe::{Ctx, Universe, UNLISTED_USER};
use super::{changed_policies, PolicyChange};
use crate::case::{action_kinds, action_uid, Kind, Target};
use crate::ToolError;

/// Which way a decision flipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Direction {
    /// Denied by the base set, allowed by the new one.
    #[serde(rename = "deny_to_allow")]
    Widen,
    /// Allowed by the base set, denied by the new one.
    #[serde(rename = "allow_to_deny")]
    Narrow,
}

/// A decision, as recorded in a flip.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Outcome {
    /// Whether the request is allowed.
    pub allowed: bool,
    /// The policies that decided.
    pub determining_policies: Vec<String>,
    /// The engine's explanation.
    pub reason: String,
}

impl From<AuthzDecision> for Outcome {
    fn from(d: AuthzDecision) -> Self {
        Outcome {
            allowed: d.allowed,
            determining_policies: d.determining_policies,
            reason: d.reason,
        }
    }
}

/// The resource of a flipped request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FlipResource {
    /// Region.
    pub region: String,
    /// The secret, key or account.
    #[serde(flatten)]
    pub target: Target,
}

/// One request whose decision differs between the base and the new set.
#[derive(Debug, Clone, Serialize)]
pub struct Flip {
    /// Which way it flipped.
    pub direction: Direction,
    /// The user (`~unlisted` stands for any user not in `entities.json`).
    pub principal: String,
    /// The user's teams (in the new set's entities).
    pub teams: Vec<String>,
    /// The operation.
    pub action: String,
    /// The resource.
    pub resource: FlipResource,
    /// The context it was decided in (label).
    pub context: String,
    /// The base set's decision.
    pub base: Outcome,
    /// The new set's decision.
    pub new: Outcome,
}

/// One line of the human summary: flips grouped by team, action and resource class.
#[derive(Debug, Clone, Serialize)]
pub struct SummaryLine {
    /// Which way.
    pub direction: Direction,
    /// The sentence, e.g. `3 users of team dev gain GetSecretValue on 2 secrets under prod/ (via dev-read)`.
    pub text: String,
    /// Distinct users.
    pub users: usize,
    /// Actions.
    pub actions: Vec<String>,
    /// Distinct resources.
    pub resources: usize,
}

/// Sizes of what was considered.
#[derive(Debug, Clone, Default, Serialize)]
pub struct UniverseStats {
    /// Users (including the stand-in for unlisted users).
    pub users: usize,
    /// Representative secrets (per region).
    pub secrets: usize,
    /// Representative keys (per region).
    pub keys: usize,
    /// Regions.
    pub regions: usize,
    /// Representative contexts.
    pub contexts: usize,
    /// Every (user, action, resource, context) combination.
    pub requests: u64,
    /// Requests left after scope pruning (each one probed).
    pub in_scope: u64,
    /// Requests decided in full by both sets.
    pub evaluated: u64,
}

/// Options of [`concrete_diff`].
#[derive(Debug, Clone)]
pub struct ConcreteOptions {
    /// Skip requests outside the changed policies' scopes.
    pub prune: bool,
    /// Skip requests the changed policies do not match (the probe).
    pub probe: bool,
}

impl Default for ConcreteOptions {
    fn default() -> Self {
        ConcreteOptions {
            prune: true,
            probe: true,
        }
    }
}

/// The result of a concrete diff.
#[derive(Debug, Clone, Serialize)]
pub struct ConcreteReport {
    /// Policies whose meaning changed.
    pub changed: Vec<PolicyChange>,
    /// Whether files other than policies (schema, entities) differ, which forces a full
    /// evaluation.
    pub support_files_changed: bool,
    /// What was considered and evaluated.
    pub stats: UniverseStats,
    /// Context labels, in order.
    pub contexts: Vec<String>,
    /// The human summary.
    pub summary: Vec<SummaryLine>,
    /// Every flip.
    pub flips: Vec<Flip>,
    /// Wall time, milliseconds.
    pub millis: f64,
}

impl ConcreteReport {
    /// Whether some request went from deny to allow.
    pub fn widens(&self) -> bool {
        self.flips.iter().any(|f| f.direction == Direction::Widen)
    }
}

/// Files of a policy directory other than policies and docs (schema, entities, …).
fn support_files(dir: &Path) -> Result<BTreeMap<String, Vec<u8>>, ToolError> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(dir).map_err(|e| ToolError::io(dir, e))? {
        let entry = entry.map_err(|e| ToolError::io(dir, e))?;
        let path = entry.path();
        let skip = path
            .extension()
            .is_some_and(|ext| ext == "cedar" || ext == "md");
        if !path.is_file() || skip {
            continue;
        }
        let bytes = std::fs::read(&path).map_err(|e| ToolError::io(&path, e))?;
        out.insert(entry.file_name().to_string_lossy().into_owned(), bytes);
    }
    Ok(out)
}

/// A copy of `policy` whose `@id` is `id`, as Cedar text.
fn renamed(policy: &Policy, id: &str) -> Result<String, ToolError> {
    let internal = |e: &dyn std::fmt::Display| ToolError::Request(format!("policy {id}: {e}"));
    let mut json = policy.to_json().map_err(|e| internal(&e))?;
    let Some(map) = json.as_object_mut() else {
        return Err(internal(&"policy JSON is not an object"));
    };
    let annotations = map
        .entry("annotations")
        .or_insert_with(|| serde_json::json!({}));
    if let Some(a) = annotations.as_object_mut() {
        a.insert("id".to_owned(), serde_json::Value::String(id.to_owned()));
    }
    let policy = Policy::from_json(None, json).map_err(|e| internal(&e))?;
    Ok(policy.to_string())
}

/// An engine holding only the changed policies, both versions, with `new_dir`'s schema
/// and entities.
fn probe_engine(
    changed: &[PolicyChange],
    base: &PolicyEngine,
    new: &PolicyEngine,
    new_dir: &Path,
) -> Result<PolicyEngine, ToolError> {
    let temp = tempfile::Builder::new()
        .prefix("coffer-policy-probe-")
        .tempdir()
        .map_err(|e| ToolError::io(&std::env::temp_dir(), e))?;
    for (name, bytes) in support_files(new_dir)? {
        let path = temp.path().join(name);
        std::fs::write(&path, bytes).map_err(|e| ToolError::io(&path, e))?;
    }
    let mut text = String::new();
    for change in changed {
        let pid = cedar_policy::PolicyId::new(&change.id);
        if let Some(p) = base.policy_set().policy(&pid) {
            text.push_str(&renamed(p, &format!("{}#base", change.id))?);
            text.push_str("\n\n");
        }
        if let Some(p) = new.policy_set().policy(&pid) {
            text.push_str(&renamed(p, &format!("{}#new", change.id))?);
            text.push_str("\n\n");
        }
    }
    let path = temp.path().join("probe.cedar");
    std::fs::write(&path, text).map_err(|e| ToolError::io(&path, e))?;
    crate::load(temp.path())
}

/// What one policy's scope can match.
struct Scope {
    /// `None`: any user.
    users: Option<BTreeSet<String>>,
    /// `None`: any action.
    actions: Option<BTreeSet<String>>,
    /// `None`: any resource kind.
    kinds: Option<BTreeSet<Kind>>,
}

impl Scope {
    fn admits_user_action(&self, user: &str, action: &str) -> bool {
        self.users.as_ref().is_none_or(|u| u.contains(user))
            && self.actions.as_ref().is_none_or(|a| a.contains(action))
    }

    fn admits(&self, user: &str, action: &str, kind: Kind) -> bool {
        self.admits_user_action(user, action)
            && self.kinds.as_ref().is_none_or(|k| k.contains(&kind))
    }
}

fn kind_of(t: &EntityTypeName) -> BTreeSet<Kind> {
    let name = t.to_string();
    [Kind::Secret, Kind::Key, Kind::Account]
        .into_iter()
        .filter(|k| k.type_name() == name)
        .collect()
}

fn user_uid(name: &str) -> Option<EntityUid> {
    let t: EntityTypeName = "Coffer::User".parse().ok()?;
    Some(EntityUid::from_type_name_and_id(t, EntityId::new(name)))
}

/// Whether `uid` is `ancestor` or below it, in either engine's entities.
fn is_in(engines: [&PolicyEngine; 2], uid: &EntityUid, ancestor: &EntityUid) -> bool {
    uid == ancestor
        || engines.iter().any(|e| {
            e.entities()
                .ancestors(uid)
                .is_some_and(|mut a| a.any(|x| x == ancestor))
        })
}

fn scope_of(
    policy: &Policy,
    engines: [&PolicyEngine; 2],
    users: &[String],
    actions: &[&str],
) -> Scope {
    let is_user = |t: &EntityTypeName| t.to_string() == "Coffer::User";
    let users_in = |group: &EntityUid| -> BTreeSet<String> {
        users
            .iter()
            .filter(|u| user_uid(u).is_some_and(|uid| is_in(engines, &uid, group)))
            .cloned()
            .collect()
    };
    let users = match policy.principal_constraint() {
        PrincipalConstraint::Any => None,
        PrincipalConstraint::Is(t) => (!is_user(&t)).then(BTreeSet::new),
        PrincipalConstraint::Eq(uid) => Some(if is_user(uid.type_name()) {
            BTreeSet::from([uid.id().unescaped().to_owned()])
        } else {
            BTreeSet::new()
        }),
        PrincipalConstraint::In(group) => Some(users_in(&group)),
        PrincipalConstraint::IsIn(t, group) => Some(if is_user(&t) {
            users_in(&group)
        } else {
            BTreeSet::new()
        }),
    };
    let actions_in = |groups: &[EntityUid]| -> BTreeSet<String> {
        actions
            .iter()
            .filter(|a| {
                action_uid(a).is_ok_and(|uid| groups.iter().any(|g| is_in(engines, &uid, g)))
            })
            .map(|a| (*a).to_owned())
            .collect()
    };
    let actions = match policy.action_constraint() {
        ActionConstraint::Any => None,
        ActionConstraint::Eq(uid) => Some(actions_in(&[uid])),
        ActionConstraint::In(groups) => Some(actions_in(&groups)),
    };
    let kinds = match policy.resource_constraint() {
        ResourceConstraint::Any => None,
        ResourceConstraint::Is(t) | ResourceConstraint::IsIn(t, _) => Some(kind_of(&t)),
        ResourceConstraint::Eq(uid) | ResourceConstraint::In(uid) => Some(kind_of(uid.type_name())),
    };
    Scope {
        users,
        actions,
        kinds,
    }
}

fn build_request<'a>(
    principal: &'a str,
    action: &'a str,
    resource: Resource<'a>,
    region: &'a str,
    ctx: &'a Ctx,
) -> AuthzRequest<'a> {
    AuthzRequest {
        principal,
        action,
        resource,
        context: AuthzContext {
            region,
            source_ip: ctx.source_ip,
            time_unix: ctx.time_unix,
            encryption_context: ctx.encryption_context.as_ref(),
            api: &ctx.api,
        },
    }
}

/// Whether a policy's condition mentions `context`.
fn reads_context(policy: &Policy) -> bool {
    fn walk(v: &serde_json::Value) -> bool {
        match v {
            serde_json::Value::Object(map) => {
                map.get("Var").and_then(serde_json::Value::as_str) == Some("context")
                    || map.values().any(walk)
            }
            serde_json::Value::Array(items) => items.iter().any(walk),
            _ => false,
        }
    }
    // A policy that cannot be rendered is assumed to read everything.
    policy
        .to_json()
        .map_or(true, |json| json.get("conditions").is_some_and(walk))
}

fn teams_of(engine: &PolicyEngine, user: &str) -> Vec<String> {
    let Some(uid) = user_uid(user) else {
        return Vec::new();
    };
    let mut teams: Vec<String> = engine
        .entities()
        .ancestors(&uid)
        .map(|a| {
            a.filter(|t| t.type_name().to_string() == "Coffer::Team")
                .map(|t| t.id().unescaped().to_owned())
                .collect()
        })
        .unwrap_or_default();
    teams.sort();
    teams
}

/// Compare the decisions of the policy sets in `base_dir` and `new_dir` over the
/// generated universe (seeded with the requests of `new_dir/tests/*.json`).
pub fn concrete_diff(
    base_dir: &Path,
    new_dir: &Path,
    options: &ConcreteOptions,
) -> Result<ConcreteReport, ToolError> {
    let started = Instant::now();
    let base = crate::load(base_dir)?;
    let new = crate::load(new_dir)?;
    let changed = changed_policies(&base, &new);
    let support_files_changed = support_files(base_dir)? != support_files(new_dir)?;

    let (_, cases) = crate::runner::read_cases(new_dir)?;
    let tests: Vec<_> = cases
        .into_iter()
        .filter_map(|c| c.case.ok().map(|c| c.request))
        .collect();
    let universe = Universe::build([&base, &new], &tests);
    let kinds = action_kinds(&new);
    let actions: Vec<&str> = kinds.keys().copied().collect();

    // Nothing can flip if neither the policies nor their data changed.
    let nothing_changed = changed.is_empty() && !support_files_changed;
    let focused = !support_files_changed;
    let probe = if focused && options.probe && !nothing_changed {
        Some(probe_engine(&changed, &base, &new, new_dir)?)
    } else {
        None
    };
    let scopes: Option<Vec<Scope>> = (focused && options.prune).then(|| {
        changed
            .iter()
            .flat_map(|c| {
                let pid = cedar_policy::PolicyId::new(&c.id);
                [
                    base.policy_set().policy(&pid),
                    new.policy_set().policy(&pid),
                ]
            })
            .flatten()
            .map(|p| scope_of(p, [&base, &new], &universe.users, &actions))
            .collect()
    });

    // Whether no changed policy reads `context`.
    let probe_context_free = changed
        .iter()
        .flat_map(|c| {
            let pid = cedar_policy::PolicyId::new(&c.id);
            [
                base.policy_set().policy(&pid),
                new.policy_set().policy(&pid),
            ]
        })
        .flatten()
        .all(|p| !reads_context(p));

    let mut stats = UniverseStats {
        users: universe.users.len(),
        secrets: universe.secrets.len(),
        keys: universe.keys.len(),
        regions: universe.regions.len(),
        contexts: universe.contexts.len(),
        ..UniverseStats::default()
    };
    let mut flips = Vec::new();
    for (action, action_kinds) in &kinds {
        for kind in action_kinds {
            let targets: &[Target] = match kind {
                Kind::Secret => &universe.secrets,
                Kind::Key => &universe.keys,
                Kind::Account => &[Target::Account],
            };
            let per_user =
                (targets.len() * universe.regions.len() * universe.contexts.len()) as u64;
            stats.requests += per_user * universe.users.len() as u64;
            if nothing_changed {
                continue;
            }
            for user in &universe.users {
                if let Some(scopes) = &scopes {
                    if !scopes.iter().any(|s| s.admits(user, action, *kind)) {
                        continue;
                    }
                }
                stats.in_scope += per_user;
                for region in &universe.regions {
                    for target in targets {
                        let resource = match target {
                            Target::Secret { name, tags } => {
                                Resource::Secret { region, name, tags }
                            }
                            Target::Key { id, aliases, tags } => Resource::Key {
                                region,
                                key_id: id,
                                aliases,
                                tags,
                            },
                            Target::Account => Resource::Account { region },
                        };
                        let hits = |ctx: &Ctx| {
                            probe.as_ref().is_none_or(|probe| {
                                let hit = probe
                                    .authorize(&build_request(user, action, resource, region, ctx));
                                !hit.determining_policies.is_empty() || !hit.errors.is_empty()
                            })
                        };
                        // Changed policies that never read the context match in every
                        // context or in none: one probe answers for all.
                        if probe_context_free
                            && universe.contexts.first().is_some_and(|ctx| !hits(ctx))
                        {
                            continue;
                        }
                        for ctx in &universe.contexts {
                            if !probe_context_free && !hits(ctx) {
                                continue;
                            }
                            let request = build_request(user, action, resource, region, ctx);
                            stats.evaluated += 1;
                            let before = base.authorize(&request);
                            let after = new.authorize(&request);
                            if before.allowed == after.allowed {
                                continue;
                            }
                            flips.push(Flip {
                                direction: if after.allowed {
                                    Direction::Widen
                                } else {
                                    Direction::Narrow
                                },
                                principal: user.clone(),
                                teams: teams_of(&new, user),
                                action: (*action).to_owned(),
                                resource: FlipResource {
                                    region: region.clone(),
                                    target: target.clone(),
                                },
                                context: ctx.label.clone(),
                                base: before.into(),
                                new: after.into(),
                            });
                        }
                    }
                }
            }
        }
    }
    let contexts: Vec<String> = universe.contexts.iter().map(|c| c.label.clone()).collect();
    let summary = summarize(&flips, &contexts);
    Ok(ConcreteReport {
        changed,
        support_files_changed,
        stats,
        contexts,
        summary,
        flips,
        millis: started.elapsed().as_secs_f64() * 1000.0,
    })
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// The class a resource is summarized under.
fn class(resource: &FlipResource) -> (String, String) {
    match &resource.target {
        Target::Secret { name, .. } => match name.split_once('/') {
            Some((folder, _)) => ("secret".to_owned(), format!("under {folder}/")),
            None => ("secret".to_owned(), "outside folders".to_owned()),
        },
        Target::Key { aliases, .. } => {
            if aliases.is_empty() {
                ("key".to_owned(), "without alias".to_owned())
            } else {
                (
                    "key".to_owned(),
                    format!("with alias {}", aliases.join(", ")),
                )
            }
        }
        Target::Account => ("region".to_owned(), String::new()),
    }
}

fn resource_key(r: &FlipResource) -> String {
    match &r.target {
        Target::Secret { name, tags } => format!("{}/secret/{name}/{tags:?}", r.region),
        Target::Key { id, aliases, tags } => format!("{}/key/{id}/{aliases:?}/{tags:?}", r.region),
        Target::Account => format!("{}/account", r.region),
    }
}

fn via(flip: &Flip) -> String {
    match flip.direction {
        Direction::Widen => match flip.new.determining_policies.as_slice() {
            [one] => format!("via policy {one}"),
            many => format!("via policies {}", many.join(", ")),
        },
        Direction::Narrow if !flip.new.determining_policies.is_empty() => flip.new.reason.clone(),
        Direction::Narrow => format!(
            "no permit matches any more; base allowed via {}",
            flip.base.determining_policies.join(", ")
        ),
    }
}

/// Group flips for humans: by direction, the users' teams, resource class, the deciding
/// policies and the contexts in which they flip; actions that affect the same users and
/// resources share a line.
fn summarize(flips: &[Flip], contexts: &[String]) -> Vec<SummaryLine> {
    // (direction, user, action, resource, via) -> contexts in which it flips.
    type One<'a> = (Direction, &'a str, &'a str, String, String);
    let mut per_request: BTreeMap<One<'_>, (BTreeSet<&str>, &Flip)> = BTreeMap::new();
    for flip in flips {
        let key = (
            flip.direction,
            flip.principal.as_str(),
            flip.action.as_str(),
            resource_key(&flip.resource),
            via(flip),
        );
        per_request
            .entry(key)
            .or_insert_with(|| (BTreeSet::new(), flip))
            .0
            .insert(flip.context.as_str());
    }
    let tags_of: BTreeMap<String, &BTreeMap<String, String>> = flips
        .iter()
        .filter_map(|f| match &f.resource.target {
            Target::Secret { tags, .. } | Target::Key { tags, .. } => {
                Some((resource_key(&f.resource), tags))
            }
            Target::Account => None,
        })
        .collect();
    // (direction, teams, class, via, contexts, action) -> (users, resources)
    type Group = (
        Direction,
        Vec<String>,
        (String, String),
        String,
        Vec<String>,
    );
    let mut groups: BTreeMap<(Group, String), (BTreeSet<String>, BTreeSet<String>)> =
        BTreeMap::new();
    for ((direction, user, action, resource, via), (ctxs, flip)) in &per_request {
        // The contexts it flips in; or, when that is most of them, "!" and the others.
        let ctxs: Vec<String> = if ctxs.len() == contexts.len() {
            Vec::new()
        } else if ctxs.len() * 2 > contexts.len() {
            std::iter::once("!".to_owned())
                .chain(
                    contexts
                        .iter()
                        .filter(|c| !ctxs.contains(c.as_str()))
                        .cloned(),
                )
                .collect()
        } else {
            ctxs.iter().map(|c| (*c).to_owned()).collect()
        };
        let group = (
            *direction,
            flip.teams.clone(),
            class(&flip.resource),
            via.clone(),
            ctxs,
        );
        let entry = groups.entry((group, (*action).to_owned())).or_default();
        entry.0.insert((*user).to_owned());
        entry.1.insert(resource.clone());
    }
    // Merge actions that affect exactly the same users and resources.
    let mut merged: BTreeMap<(Group, Vec<String>, Vec<String>), Vec<String>> = BTreeMap::new();
    for ((group, action), (users, resources)) in groups {
        merged
            .entry((
                group,
                users.into_iter().collect(),
                resources.into_iter().collect(),
            ))
            .or_default()
            .push(action);
    }
    let mut lines: Vec<SummaryLine> = merged
        .into_iter()
        .map(|((group, users, resources), actions)| {
            let (direction, teams, (noun, qualifier), via, ctxs) = group;
            let who = match teams.as_slice() {
                [] => "in no team".to_owned(),
                [one] => format!("of team {one}"),
                many => format!("of teams {}", many.join(", ")),
            };
            let unlisted = if users.iter().any(|u| u == UNLISTED_USER) {
                " (counting any user not in entities.json as one)"
            } else {
                ""
            };
            let verb = match (direction, users.len()) {
                (Direction::Widen, 1) => "gains",
                (Direction::Widen, _) => "gain",
                (Direction::Narrow, 1) => "loses",
                (Direction::Narrow, _) => "lose",
            };
            // Tags every resource of the line carries.
            let mut common: Option<BTreeMap<String, String>> = None;
            for r in &resources {
                let tags = tags_of.get(r).map(|t| (*t).clone()).unwrap_or_default();
                common = Some(match common {
                    None => tags,
                    Some(c) => c
                        .into_iter()
                        .filter(|(k, v)| tags.get(k) == Some(v))
                        .collect(),
                });
            }
            let tagged = match common {
                Some(c) if !c.is_empty() => format!(
                    " tagged {}",
                    c.iter()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                _ => String::new(),
            };
            let what = if noun == "region" {
                plural(resources.len(), "region", "regions")
            } else {
                format!(
                    "{} {qualifier}{tagged}",
                    plural(resources.len(), &noun, &format!("{noun}s"))
                )
            };
            let when = match ctxs.split_first() {
                None => String::new(),
                Some((first, rest)) if first == "!" => {
                    format!(" [except in context: {}]", rest.join("; "))
                }
                Some(_) => format!(" [only in context: {}]", ctxs.join("; ")),
            };
            let text = format!(
                "{} {who}{unlisted} {verb} {} on {what} ({via}){when}",
                plural(users.len(), "user", "users"),
                actions.join(", "),
            );
            SummaryLine {
                direction,
                text,
                users: users.len(),
                actions,
                resources: resources.len(),
            }
        })
        .collect();
    lines.sort_by(|a, b| (a.direction, &a.text).cmp(&(b.direction, &b.text)));
    lines
}
