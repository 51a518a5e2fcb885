//! Loading: read files, parse the schema, policies and entities, validate, and map
//! every Cedar diagnostic back to `file:line`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::str::FromStr;

use cedar_policy::{
    Authorizer, Entities, EntityTypeName, EntityUid, PolicyId, PolicySet, Schema, ValidationMode,
    Validator,
};
use miette::Diagnostic;
use sha2::{Digest, Sha256};

use crate::index::ScopeIndex;
use crate::{
    slice, ActionInfo, AuthzContext, AuthzRequest, PolicyEngine, PolicyError, Problem, Resource,
    ResourceKind, Types, ALL_ACTIONS, ENTITIES_FILE, SCHEMA_FILE,
};

/// One loaded file: its name (relative to the policy directory) and text.
#[derive(Debug, Clone)]
pub(crate) struct SourceFile {
    pub(crate) name: String,
    pub(crate) text: String,
}

impl SourceFile {
    pub(crate) fn new(name: &str, text: &str) -> Self {
        SourceFile {
            name: name.to_owned(),
            text: text.to_owned(),
        }
    }
}

/// The files of a policy directory.
pub(crate) struct DirFiles {
    pub(crate) schema: SourceFile,
    pub(crate) policies: Vec<SourceFile>,
    pub(crate) entities: Option<SourceFile>,
}

fn io_error(path: &Path, source: std::io::Error) -> PolicyError {
    PolicyError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn read_file(path: &Path, name: &str) -> Result<SourceFile, PolicyError> {
    let text = std::fs::read_to_string(path).map_err(|e| io_error(path, e))?;
    Ok(SourceFile {
        name: name.to_owned(),
        text,
    })
}

/// Read `schema.cedarschema`, every `*.cedar` (sorted by name) and `entities.json`.
pub(crate) fn read_dir(dir: &Path) -> Result<DirFiles, PolicyError> {
    let schema_path = dir.join(SCHEMA_FILE);
    if !schema_path.is_file() {
        // Distinguish "not a directory at all" from "no schema in it".
        std::fs::metadata(dir).map_err(|e| io_error(dir, e))?;
        return Err(PolicyError::MissingSchema {
            dir: dir.to_path_buf(),
        });
    }
    let schema = read_file(&schema_path, SCHEMA_FILE)?;

    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| io_error(dir, e))? {
        let entry = entry.map_err(|e| io_error(dir, e))?;
        let path = entry.path();
        if path.extension().is_none_or(|ext| ext != "cedar") || !path.is_file() {
            continue;
        }
        let name = entry.file_name().into_string().map_err(|raw| {
            io_error(
                &path,
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("file name {raw:?} is not UTF-8"),
                ),
            )
        })?;
        names.push(name);
    }
    names.sort();
    let policies = names
        .iter()
        .map(|name| read_file(&dir.join(name), name))
        .collect::<Result<Vec<_>, _>>()?;

    let entities_path = dir.join(ENTITIES_FILE);
    let entities = if entities_path.is_file() {
        Some(read_file(&entities_path, ENTITIES_FILE)?)
    } else {
        None
    };
    Ok(DirFiles {
        schema,
        policies,
        entities,
    })
}

/// Hex SHA-256 over every file, sorted by name: name, NUL, length (u64 BE), contents.
fn hash_files<'a>(files: impl IntoIterator<Item = &'a SourceFile>) -> String {
    let sorted: BTreeMap<&str, &str> = files
        .into_iter()
        .map(|f| (f.name.as_str(), f.text.as_str()))
        .collect();
    let mut hasher = Sha256::new();
    for (name, text) in sorted {
        hasher.update(name.as_bytes());
        hasher.update([0u8]);
        hasher.update((text.len() as u64).to_be_bytes());
        hasher.update(text.as_bytes());
    }
    hex::encode(hasher.finalize())
}

/// 1-based line of byte `offset` in `text`.
fn line_at(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

/// The message of a diagnostic, with its causes and help text.
fn message_of(diag: &dyn Diagnostic) -> String {
    let mut message = slice::error_chain(diag);
    if let Some(help) = diag.help() {
        message.push_str(&format!(" ({help})"));
    }
    message
}

/// The line of the first labelled source span of `diag`, if any.
fn label_line(diag: &dyn Diagnostic, text: &str) -> Option<usize> {
    diag.labels()
        .and_then(|mut labels| labels.next())
        .map(|label| line_at(text, label.offset()))
}

/// One problem per diagnostic: `diag` itself and any related diagnostics.
fn diag_problems(file: &str, text: &str, diag: &dyn Diagnostic, prefix: &str) -> Vec<Problem> {
    let mut out = vec![Problem {
        file: file.to_owned(),
        line: label_line(diag, text),
        message: format!("{prefix}{}", message_of(diag)),
    }];
    if let Some(related) = diag.related() {
        for rel in related {
            let problem = Problem {
                file: file.to_owned(),
                line: label_line(rel, text),
                message: format!("{prefix}{}", message_of(rel)),
            };
            if !out.contains(&problem) {
                out.push(problem);
            }
        }
    }
    out
}

fn type_name(name: &str) -> Result<EntityTypeName, PolicyError> {
    EntityTypeName::from_str(name).map_err(|e| PolicyError::Schema {
        problems: vec![Problem {
            file: SCHEMA_FILE.to_owned(),
            line: None,
            message: format!("internal: bad type name {name}: {e}"),
        }],
    })
}

fn schema_problem(message: String) -> Problem {
    Problem {
        file: SCHEMA_FILE.to_owned(),
        line: None,
        message,
    }
}

fn parse_schema(file: &SourceFile) -> Result<Schema, PolicyError> {
    let (schema, warnings) =
        Schema::from_cedarschema_str(&file.text).map_err(|e| PolicyError::Schema {
            problems: diag_problems(&file.name, &file.text, &e, ""),
        })?;
    let problems: Vec<Problem> = warnings
        .flat_map(|w| diag_problems(&file.name, &file.text, &w, "warning: "))
        .collect();
    if !problems.is_empty() {
        return Err(PolicyError::Schema { problems });
    }
    Ok(schema)
}

/// Where a policy came from.
struct Origin {
    file: usize,
    line: usize,
}

/// A policy (or, with `policy: None`, a template) of one file, before it gets its id.
struct Parsed<'a> {
    /// Position in the file (from Cedar's generated id), then the id itself.
    order: (usize, String),
    policy: Option<&'a cedar_policy::Policy>,
    /// The policy's source text, to find where it starts.
    text: Option<String>,
}

/// Parse every policy file and give each policy its id.
fn parse_policies(
    files: &[SourceFile],
) -> Result<(PolicySet, HashMap<String, Origin>), PolicyError> {
    let mut problems = Vec::new();
    let mut set = PolicySet::new();
    let mut origins: HashMap<String, Origin> = HashMap::new();

    for (file_index, file) in files.iter().enumerate() {
        let parsed = match PolicySet::from_str(&file.text) {
            Ok(parsed) => parsed,
            Err(errors) => {
                for error in errors.iter() {
                    problems.extend(diag_problems(&file.name, &file.text, error, ""));
                }
                continue;
            }
        };

        // Cedar names the policies of one parse `policy0`, `policy1`, … in source order;
        // locate each one's text in the file, in that order, to get its first line.
        let order = |id: &PolicyId| -> (usize, String) {
            let id = id.to_string();
            let n = id
                .strip_prefix("policy")
                .and_then(|n| n.parse().ok())
                .unwrap_or(usize::MAX);
            (n, id)
        };
        let mut items: Vec<Parsed<'_>> = parsed
            .policies()
            .map(|p| Parsed {
                order: order(p.id()),
                policy: Some(p),
                text: p.to_cedar(),
            })
            .collect();
        items.extend(parsed.templates().map(|t| Parsed {
            order: order(t.id()),
            policy: None,
            text: Some(t.to_cedar()),
        }));
        items.sort_by(|a, b| a.order.cmp(&b.order));

        let mut search_from = 0;
        for Parsed { policy, text, .. } in items {
            let start = text.as_deref().and_then(|text| {
                let found = file
                    .text
                    .get(search_from..)
                    .and_then(|rest| rest.find(text))
                    .map(|i| i + search_from)
                    .or_else(|| file.text.find(text));
                if let Some(at) = found {
                    search_from = at + text.len();
                }
                found
            });
            let line = start.map_or(1, |at| line_at(&file.text, at));

            let Some(policy) = policy else {
                problems.push(Problem {
                    file: file.name.clone(),
                    line: Some(line),
                    message: "templates (policies with ?principal or ?resource slots) are not \
                              supported"
                        .to_owned(),
                });
                continue;
            };

            let id = match policy.annotation("id") {
                Some("") => {
                    problems.push(Problem {
                        file: file.name.clone(),
                        line: Some(line),
                        message: "empty @id annotation".to_owned(),
                    });
                    continue;
                }
                Some(id) => id.to_owned(),
                None => format!("{}:{}", file.name, line),
            };
            if let Some(first) = origins.get(&id) {
                problems.push(Problem {
                    file: file.name.clone(),
                    line: Some(line),
                    message: format!(
                        "duplicate policy id \"{id}\" (first used at {}:{})",
                        files[first.file].name, first.line
                    ),
                });
                continue;
            }
            if let Err(e) = set.add(policy.new_id(PolicyId::new(&id))) {
                problems.push(Problem {
                    file: file.name.clone(),
                    line: Some(line),
                    message: format!("policy \"{id}\": {e}"),
                });
                continue;
            }
            origins.insert(
                id,
                Origin {
                    file: file_index,
                    line,
                },
            );
        }
    }

    if problems.is_empty() {
        Ok((set, origins))
    } else {
        Err(PolicyError::Policies { problems })
    }
}

/// Strict validation; errors and warnings both refuse the set.
fn validate(
    schema: &Schema,
    set: &PolicySet,
    origins: &HashMap<String, Origin>,
    files: &[SourceFile],
) -> Result<(), PolicyError> {
    let locate = |id: &PolicyId, diag: &dyn Diagnostic, prefix: &str| -> Problem {
        match origins.get(AsRef::<str>::as_ref(id)) {
            Some(origin) => {
                let file = &files[origin.file];
                Problem {
                    file: file.name.clone(),
                    line: Some(label_line(diag, &file.text).unwrap_or(origin.line)),
                    message: format!("{prefix}{}", message_of(diag)),
                }
            }
            None => Problem {
                file: "<unknown>".to_owned(),
                line: None,
                message: format!("{prefix}{}", message_of(diag)),
            },
        }
    };
    let result = Validator::new(schema.clone()).validate(set, ValidationMode::Strict);
    let mut problems: Vec<Problem> = result
        .validation_errors()
        .map(|e| locate(e.policy_id(), e, ""))
        .chain(
            result
                .validation_warnings()
                .map(|w| locate(w.policy_id(), w, "warning: ")),
        )
        .collect();
    if problems.is_empty() {
        return Ok(());
    }
    problems.sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));
    problems.dedup();
    Err(PolicyError::Policies { problems })
}

/// Parse `entities.json` against the schema; only users and teams may appear.
fn parse_entities(
    file: Option<&SourceFile>,
    schema: &Schema,
    types: &Types,
) -> Result<Entities, PolicyError> {
    let entities_error = |line: Option<usize>, message: String| PolicyError::Entities {
        problems: vec![Problem {
            file: ENTITIES_FILE.to_owned(),
            line,
            message,
        }],
    };
    let Some(file) = file else {
        // No entities file: only the schema's action entities.
        return schema
            .action_entities()
            .map_err(|e| entities_error(None, message_of(&e)));
    };
    let value: serde_json::Value = serde_json::from_str(&file.text)
        .map_err(|e| entities_error(Some(e.line()), format!("invalid JSON: {e}")))?;
    let entities = Entities::from_json_value(value, Some(schema))
        .map_err(|e| entities_error(None, message_of(&e)))?;
    let mut problems: Vec<Problem> = entities
        .iter()
        .map(|e| e.uid())
        .filter(|uid| {
            let t = uid.type_name();
            *t != types.user && *t != types.team && *t != types.action
        })
        .map(|uid| Problem {
            file: ENTITIES_FILE.to_owned(),
            line: None,
            message: format!(
                "entity {uid}: only {} and {} entities belong here (resources come with each \
                 request)",
                types.user, types.team
            ),
        })
        .collect();
    if problems.is_empty() {
        Ok(entities)
    } else {
        problems.sort_by(|a, b| a.message.cmp(&b.message));
        Err(PolicyError::Entities { problems })
    }
}

/// The concrete (non-group) actions of the schema, with the resource kinds they apply to.
fn action_table(
    schema: &Schema,
    types: &Types,
) -> Result<HashMap<String, ActionInfo>, PolicyError> {
    let action_entities = schema.action_entities().map_err(|e| PolicyError::Schema {
        problems: vec![schema_problem(message_of(&e))],
    })?;
    let groups: HashSet<&EntityUid> = schema.action_groups().collect();
    let kinds: Vec<(ResourceKind, EntityTypeName)> = ResourceKind::ALL
        .iter()
        .map(|k| type_name(k.type_name()).map(|t| (*k, t)))
        .collect::<Result<_, _>>()?;

    let mut problems = Vec::new();
    let mut table = HashMap::new();
    for uid in schema.actions() {
        if groups.contains(uid) || *uid.type_name() != types.action {
            continue;
        }
        let name = uid.id().unescaped().to_owned();
        let mut resource_kinds = 0u8;
        for resource_type in schema.resources_for_action(uid).into_iter().flatten() {
            match kinds.iter().find(|(_, t)| t == resource_type) {
                Some((kind, _)) => resource_kinds |= kind.bit(),
                None => problems.push(schema_problem(format!(
                    "action {name}: resource type {resource_type} is not one Coffer can build \
                     (Coffer::Secret, Coffer::Key, Coffer::Account)"
                ))),
            }
        }
        let principal_ok = schema
            .principals_for_action(uid)
            .into_iter()
            .flatten()
            .any(|t| *t == types.user);
        if !principal_ok {
            problems.push(schema_problem(format!(
                "action {name}: must apply to principal {}",
                types.user
            )));
        }
        let Some(entity) = action_entities.get(uid) else {
            problems.push(schema_problem(format!("action {name}: no action entity")));
            continue;
        };
        table.insert(
            name,
            ActionInfo {
                uid: uid.clone(),
                entity: entity.clone(),
                resource_kinds,
            },
        );
    }
    for name in ALL_ACTIONS {
        if !table.contains_key(*name) {
            problems.push(schema_problem(format!(
                "action {name} is not declared; Coffer requests every action of \
                 coffer_policy::all_actions()"
            )));
        }
    }
    if problems.is_empty() {
        Ok(table)
    } else {
        Err(PolicyError::Schema { problems })
    }
}

/// Prove at load time that the requests and entity slices [`slice::build`] makes
/// conform to this schema, for every action, with every optional part present.
fn self_check(engine: &PolicyEngine, schema: &Schema) -> Result<(), PolicyError> {
    let tags = BTreeMap::from([("env".to_owned(), "check".to_owned())]);
    let aliases = ["alias/check".to_owned()];
    let context = AuthzContext {
        region: "check-region",
        source_ip: Some(std::net::IpAddr::from([127, 0, 0, 1])),
        time_unix: 0,
        encryption_context: Some(&tags),
        api: "native",
    };
    let mut names: Vec<&String> = engine.actions.keys().collect();
    names.sort();
    // Failure message -> (resource type, actions), so one schema mistake is one problem.
    let mut failures: BTreeMap<(String, &'static str), Vec<&str>> = BTreeMap::new();
    for name in names {
        let Some(action) = engine.actions.get(name) else {
            continue;
        };
        for kind in ResourceKind::ALL {
            if action.resource_kinds & kind.bit() == 0 {
                continue;
            }
            let resource = match kind {
                ResourceKind::Secret => Resource::Secret {
                    region: "check-region",
                    name: "check/secret",
                    tags: &tags,
                },
                ResourceKind::Key => Resource::Key {
                    region: "check-region",
                    key_id: "check-key",
                    aliases: &aliases,
                    tags: &tags,
                },
                ResourceKind::Account => Resource::Account {
                    region: "check-region",
                },
            };
            let req = AuthzRequest {
                principal: "coffer-self-check",
                action: name,
                resource,
                context,
            };
            let checked = slice::build(engine, &req, action)
                .and_then(|parts| parts.into_request(Some(schema)));
            if let Err(message) = checked {
                failures
                    .entry((message, kind.type_name()))
                    .or_default()
                    .push(name);
            }
        }
    }
    if failures.is_empty() {
        return Ok(());
    }
    let problems = failures
        .into_iter()
        .map(|((message, resource_type), actions)| {
            let mut list = actions
                .iter()
                .take(3)
                .copied()
                .collect::<Vec<_>>()
                .join(", ");
            if actions.len() > 3 {
                list.push_str(&format!(" and {} more", actions.len() - 3));
            }
            schema_problem(format!(
                "the requests Coffer builds for {list} on a {resource_type} do not match the \
                 schema: {message}"
            ))
        })
        .collect();
    Err(PolicyError::Schema { problems })
}

/// Build an engine from already-read files.
pub(crate) fn build(
    source: String,
    schema_file: SourceFile,
    policy_files: Vec<SourceFile>,
    entities_file: Option<SourceFile>,
) -> Result<PolicyEngine, PolicyError> {
    let hash = hash_files(
        std::iter::once(&schema_file)
            .chain(&policy_files)
            .chain(entities_file.as_ref()),
    );
    let types = Types {
        user: type_name("Coffer::User")?,
        team: type_name("Coffer::Team")?,
        action: type_name("Coffer::Action")?,
        secret: type_name("Coffer::Secret")?,
        key: type_name("Coffer::Key")?,
        account: type_name("Coffer::Account")?,
        encryption_context: type_name("Coffer::EncryptionContext")?,
    };

    let schema = parse_schema(&schema_file)?;
    let actions = action_table(&schema, &types)?;
    let (policies, origins) = parse_policies(&policy_files)?;
    validate(&schema, &policies, &origins, &policy_files)?;
    let entities = parse_entities(entities_file.as_ref(), &schema, &types)?;

    let action_entities = schema.action_entities().map_err(|e| PolicyError::Schema {
        problems: vec![schema_problem(message_of(&e))],
    })?;
    let index = ScopeIndex::build(&policies, &actions, &action_entities).map_err(|message| {
        PolicyError::Policies {
            problems: vec![Problem {
                file: "<index>".to_owned(),
                line: None,
                message,
            }],
        }
    })?;

    let origins = origins
        .into_iter()
        .map(|(id, o)| (id, (policy_files[o.file].name.clone(), o.line)))
        .collect();
    let engine = PolicyEngine {
        source,
        hash,
        schema: schema.clone(),
        origins,
        policies,
        authorizer: Authorizer::new(),
        entities,
        actions,
        types,
        index,
        contexts: Default::default(),
        slices: Default::default(),
        decisions: Default::default(),
    };
    self_check(&engine, &schema)?;
    tracing::info!(
        source = %engine.source,
        hash = %engine.hash,
        policies = engine.policies.num_of_policies(),
        unscoped_principal_policies = engine.index.stats().unscoped_principal_policies,
        principal_keys = engine.index.stats().principal_keys,
        policy_sets = engine.index.stats().policy_sets,
        "policy set loaded"
    );
    if engine.policies.is_empty() {
        tracing::warn!(source = %engine.source, "policy set is empty: every request is denied");
    }
    Ok(engine)
}

#[cfg(test)]
mod tests {
    use super::line_at;

    #[test]
    fn line_at_counts_newlines_and_clamps() {
        assert_eq!(line_at("a\nb\nc", 0), 1);
        assert_eq!(line_at("a\nb\nc", 2), 2);
        assert_eq!(line_at("a\nb\nc", 4), 3);
        assert_eq!(line_at("a\nb\nc", 400), 3);
    }
}
