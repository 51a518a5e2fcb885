//! Unit tests: loading, error locations, decisions, fail-closed behaviour.

use std::collections::{BTreeMap, HashSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use crate::slice::{format_datetime, path_prefixes};
use crate::{
    all_actions, AuthzContext, AuthzDecision, AuthzRequest, PolicyEngine, PolicyError, Resource,
    ResourceKind,
};

const SCHEMA: &str = include_str!("../../../policies/schema.cedarschema");
const NO_TAGS: &BTreeMap<String, String> = &BTreeMap::new();

fn repo_policies() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../policies")
}

fn ctx() -> AuthzContext<'static> {
    AuthzContext {
        region: "eu-west-1",
        source_ip: None,
        time_unix: 1_700_000_000,
        encryption_context: None,
        api: "native",
    }
}

fn secret<'a>(name: &'a str, tags: &'a BTreeMap<String, String>) -> Resource<'a> {
    Resource::Secret {
        region: "eu-west-1",
        name,
        tags,
    }
}

fn key<'a>(aliases: &'a [String], tags: &'a BTreeMap<String, String>) -> Resource<'a> {
    Resource::Key {
        region: "eu-west-1",
        key_id: "k1",
        aliases,
        tags,
    }
}

fn account() -> Resource<'static> {
    Resource::Account {
        region: "eu-west-1",
    }
}

fn ask(
    engine: &PolicyEngine,
    principal: &str,
    action: &str,
    resource: Resource<'_>,
) -> AuthzDecision {
    engine.authorize(&AuthzRequest {
        principal,
        action,
        resource,
        context: ctx(),
    })
}

/// A policy directory holding the repository schema plus `files`.
fn dir_with(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("schema.cedarschema"), SCHEMA).expect("write schema");
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).expect("write file");
    }
    dir
}

fn load(files: &[(&str, &str)]) -> Result<PolicyEngine, PolicyError> {
    let dir = dir_with(files);
    PolicyEngine::load_dir(dir.path())
}

fn load_ok(files: &[(&str, &str)]) -> PolicyEngine {
    match load(files) {
        Ok(engine) => engine,
        Err(e) => panic!("policy set should load, got: {e}"),
    }
}

fn load_err(files: &[(&str, &str)]) -> String {
    match load(files) {
        Ok(_) => panic!("policy set should be refused"),
        Err(e) => e.to_string(),
    }
}

/// The resource kind each action must take, per the design (independent of the schema).
fn expected_kind(action: &str) -> ResourceKind {
    const SECRET: &[&str] = &[
        "GetSecretValue",
        "DescribeSecret",
        "ListSecretVersionIds",
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
    ];
    const ACCOUNT: &[&str] = &[
        "ListSecrets",
        "GetRandomPassword",
        "CreateKey",
        "ListKeys",
        "ListAliases",
        "GenerateRandom",
        "CreateToken",
        "ListTokens",
        "RevokeToken",
        "ResetState",
        "ReloadPolicies",
        "GetPolicyInfo",
        "GetAuditLog",
        "VerifyAuditLog",
    ];
    if SECRET.contains(&action) {
        ResourceKind::Secret
    } else if ACCOUNT.contains(&action) {
        ResourceKind::Account
    } else {
        ResourceKind::Key
    }
}

fn resource_of<'a>(kind: ResourceKind, aliases: &'a [String]) -> Resource<'a> {
    match kind {
        ResourceKind::Secret => secret("prod/db/password", NO_TAGS),
        ResourceKind::Key => key(aliases, NO_TAGS),
        ResourceKind::Account => account(),
    }
}

// ---------------------------------------------------------------- built-in set

#[test]
fn builtin_admin_is_allowed_every_action() {
    let engine = PolicyEngine::builtin().expect("builtin loads");
    assert_eq!(engine.source(), "builtin");
    let aliases = vec!["alias/app".to_owned()];
    for action in all_actions() {
        let decision = ask(
            &engine,
            "admin",
            action,
            resource_of(expected_kind(action), &aliases),
        );
        assert!(decision.allowed, "admin {action}: {decision:?}");
        assert_eq!(decision.determining_policies, ["admin-all"], "{action}");
        assert!(decision.errors.is_empty(), "{action}: {decision:?}");
        assert_eq!(decision.reason, "permitted by admin-all");
    }
}

#[test]
fn builtin_denies_anyone_else() {
    let engine = PolicyEngine::builtin().expect("builtin loads");
    let aliases = vec![];
    for action in all_actions() {
        let decision = ask(
            &engine,
            "alice",
            action,
            resource_of(expected_kind(action), &aliases),
        );
        assert!(!decision.allowed, "alice {action}: {decision:?}");
        assert!(decision.reason.contains("no permit"), "{}", decision.reason);
        assert!(decision.determining_policies.is_empty());
    }
    // A user name that merely looks like admin is someone else.
    assert!(!ask(&engine, "Admin", "GetSecretValue", secret("x", NO_TAGS)).allowed);
}

#[test]
fn schema_actions_are_exactly_all_actions_with_the_designed_resource_kinds() {
    let engine = PolicyEngine::builtin().expect("builtin loads");
    let listed: HashSet<&str> = all_actions().iter().copied().collect();
    assert_eq!(
        listed.len(),
        all_actions().len(),
        "duplicate in all_actions()"
    );
    let declared: HashSet<&str> = engine.actions.keys().map(String::as_str).collect();
    assert_eq!(declared, listed);
    for action in all_actions() {
        let info = &engine.actions[*action];
        assert_eq!(info.resource_kinds, expected_kind(action).bit(), "{action}");
    }
}

#[test]
fn unknown_action_is_denied() {
    let engine = PolicyEngine::builtin().expect("builtin loads");
    for action in ["Frobnicate", "", "ReadSecret", "getsecretvalue"] {
        let decision = ask(&engine, "admin", action, secret("x", NO_TAGS));
        assert!(!decision.allowed, "{action:?}");
        assert_eq!(decision.reason, "unknown action");
    }
}

#[test]
fn resource_of_the_wrong_kind_is_denied() {
    let engine = PolicyEngine::builtin().expect("builtin loads");
    let decision = ask(&engine, "admin", "GetSecretValue", key(&[], NO_TAGS));
    assert!(!decision.allowed);
    assert!(
        decision.reason.contains("does not apply"),
        "{}",
        decision.reason
    );
    assert!(!ask(&engine, "admin", "Encrypt", account()).allowed);
    assert!(!ask(&engine, "admin", "ListSecrets", secret("x", NO_TAGS)).allowed);
}

#[test]
fn out_of_range_time_is_denied() {
    let engine = PolicyEngine::builtin().expect("builtin loads");
    let mut request = AuthzRequest {
        principal: "admin",
        action: "GetSecretValue",
        resource: secret("x", NO_TAGS),
        context: ctx(),
    };
    request.context.time_unix = i64::MAX;
    let decision = engine.authorize(&request);
    assert!(!decision.allowed);
    assert!(
        decision.reason.contains("outside years"),
        "{}",
        decision.reason
    );
}

#[test]
fn engine_is_send_and_sync() {
    fn shareable<T: Send + Sync + 'static>() {}
    shareable::<PolicyEngine>();
    shareable::<PolicyError>();
}

// ---------------------------------------------------------------- loading errors

#[test]
fn syntax_error_names_file_and_line() {
    let err = load_err(&[
        ("a.cedar", "@id(\"a\")\npermit (principal, action, resource);\n"),
        (
            "b.cedar",
            "// second file\n@id(\"b\")\npermit (principal, action, resource) when { resource.name == };\n",
        ),
    ]);
    assert!(err.contains("b.cedar:3:"), "{err}");
    assert!(!err.contains("a.cedar"), "{err}");
}

#[test]
fn schema_violation_names_file_and_line() {
    let err = load_err(&[(
        "c.cedar",
        "@id(\"ok\")\npermit (principal == Coffer::User::\"bob\", action, resource);\n\n\
         @id(\"typo\")\npermit (principal, action == Coffer::Action::\"GetSecretValue\", resource)\n\
         when { resource.nmae == \"x\" };\n",
    )]);
    assert!(err.contains("c.cedar:6:"), "{err}");
    assert!(err.contains("nmae"), "{err}");
}

#[test]
fn warning_only_policy_is_refused() {
    // Valid syntax and types, but Encrypt never applies to a Secret: only a warning.
    let err = load_err(&[(
        "w.cedar",
        "\n@id(\"impossible\")\npermit (principal, action == Coffer::Action::\"Encrypt\", resource is Coffer::Secret);\n",
    )]);
    assert!(err.contains("w.cedar:"), "{err}");
    assert!(err.contains("warning"), "{err}");
    assert!(err.contains("impossible"), "{err}");
}

#[test]
fn duplicate_id_across_files_is_refused() {
    let err = load_err(&[
        (
            "a.cedar",
            "@id(\"same\")\npermit (principal, action, resource);\n",
        ),
        (
            "b.cedar",
            "\n\n@id(\"same\")\nforbid (principal, action, resource);\n",
        ),
    ]);
    assert!(
        err.contains("b.cedar:3: duplicate policy id \"same\""),
        "{err}"
    );
    assert!(err.contains("a.cedar:1"), "{err}");
}

#[test]
fn templates_are_refused() {
    let err = load_err(&[(
        "t.cedar",
        "@id(\"tpl\")\npermit (principal == ?principal, action, resource);\n",
    )]);
    assert!(err.contains("t.cedar:1:"), "{err}");
    assert!(err.contains("templates"), "{err}");
}

#[test]
fn missing_schema_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("a.cedar"),
        "permit (principal, action, resource);",
    )
    .expect("write");
    match PolicyEngine::load_dir(dir.path()) {
        Err(PolicyError::MissingSchema { .. }) => {}
        other => panic!("expected MissingSchema, got {other:?}"),
    }
    match PolicyEngine::load_dir(&dir.path().join("nope")) {
        Err(PolicyError::Io { .. }) => {}
        other => panic!("expected Io, got {other:?}"),
    }
}

#[test]
fn schema_error_names_the_schema_file_and_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broken = SCHEMA.replacen("entity Account;", "entity Account {", 1);
    std::fs::write(dir.path().join("schema.cedarschema"), &broken).expect("write");
    let line = SCHEMA
        .lines()
        .position(|l| l.contains("entity Account;"))
        .expect("schema declares Account")
        + 1;
    let err = PolicyEngine::load_dir(dir.path())
        .expect_err("broken schema")
        .to_string();
    assert!(err.starts_with("invalid schema"), "{err}");
    // The parser may point at the brace or at the next token; either is on or after it.
    let located = err
        .lines()
        .filter_map(|l| l.trim().strip_prefix("schema.cedarschema:"))
        .filter_map(|rest| rest.split(':').next()?.parse::<usize>().ok())
        .next()
        .expect("a line number");
    assert!(located >= line, "{err}");
}

#[test]
fn schema_missing_an_action_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let reduced = SCHEMA.replacen("GenerateRandom", "GenerateRandomness", 1);
    std::fs::write(dir.path().join("schema.cedarschema"), reduced).expect("write");
    let err = PolicyEngine::load_dir(dir.path())
        .expect_err("refused")
        .to_string();
    assert!(
        err.contains("action GenerateRandom is not declared"),
        "{err}"
    );
}

#[test]
fn schema_the_request_builder_cannot_satisfy_is_refused() {
    // A required attribute Coffer does not supply: every Secret request would be wrong.
    let dir = tempfile::tempdir().expect("tempdir");
    let changed = SCHEMA.replacen("name: String,", "name: String,\n    owner: String,", 1);
    assert_ne!(changed, SCHEMA);
    std::fs::write(dir.path().join("schema.cedarschema"), changed).expect("write");
    let err = PolicyEngine::load_dir(dir.path())
        .expect_err("refused")
        .to_string();
    assert!(err.contains("do not match the schema"), "{err}");
    assert!(err.contains("on a Coffer::Secret"), "{err}");
    assert!(err.contains("owner"), "{err}");
}

#[test]
fn entities_other_than_users_and_teams_are_refused() {
    let err = load_err(&[(
        "entities.json",
        r#"[{"uid":{"type":"Coffer::Account","id":"eu-west-1"},"attrs":{},"parents":[]}]"#,
    )]);
    assert!(err.contains("entities.json"), "{err}");
    assert!(err.contains("Coffer::Account"), "{err}");

    let err = load_err(&[("entities.json", "[\n  {\"uid\": \n")]);
    assert!(err.contains("entities.json:3:"), "{err}");

    let err = load_err(&[(
        "entities.json",
        r#"[{"uid":{"type":"Coffer::User","id":"a"},"attrs":{},"parents":[{"type":"Coffer::Secret","id":"x"}]}]"#,
    )]);
    assert!(err.contains("entities.json"), "{err}");
}

// ---------------------------------------------------------------- decisions

const ENTITIES: &str = r#"[
  {"uid": {"type": "Coffer::User", "id": "alice"}, "attrs": {},
   "parents": [{"type": "Coffer::Team", "id": "dev"}]},
  {"uid": {"type": "Coffer::User", "id": "bob"}, "attrs": {}, "parents": []},
  {"uid": {"type": "Coffer::Team", "id": "dev"}, "attrs": {}, "parents": []}
]"#;

const DEV_READ: &str = r#"
// Developers read dev secrets.
@id("dev-read-dev")
permit (principal in Coffer::Team::"dev", action in Coffer::Action::"ReadSecret", resource is Coffer::Secret)
when { resource.path.contains("dev") };
"#;

#[test]
fn team_permit_via_entities_json() {
    let engine = load_ok(&[("entities.json", ENTITIES), ("dev.cedar", DEV_READ)]);

    let decision = ask(&engine, "alice", "GetSecretValue", secret("dev/x", NO_TAGS));
    assert!(decision.allowed, "{decision:?}");
    assert_eq!(decision.determining_policies, ["dev-read-dev"]);
    assert_eq!(decision.reason, "permitted by dev-read-dev");

    let decision = ask(
        &engine,
        "alice",
        "GetSecretValue",
        secret("prod/x", NO_TAGS),
    );
    assert!(!decision.allowed, "{decision:?}");
    assert_eq!(decision.reason, "no permit matched");

    // Not in the team; unknown users are bare principals.
    assert!(!ask(&engine, "bob", "GetSecretValue", secret("dev/x", NO_TAGS)).allowed);
    assert!(!ask(&engine, "carol", "GetSecretValue", secret("dev/x", NO_TAGS)).allowed);
    // Group membership of actions: a write is not a read.
    assert!(!ask(&engine, "alice", "PutSecretValue", secret("dev/x", NO_TAGS)).allowed);
    assert!(ask(&engine, "alice", "DescribeSecret", secret("dev/x", NO_TAGS)).allowed);
    // "dev" must be a directory prefix, not the full name.
    assert!(!ask(&engine, "alice", "GetSecretValue", secret("dev", NO_TAGS)).allowed);
}

#[test]
fn membership_works_in_conditions() {
    let entities = r#"[
      {"uid": {"type": "Coffer::User", "id": "alice"}, "attrs": {},
       "parents": [{"type": "Coffer::Team", "id": "dev"}]},
      {"uid": {"type": "Coffer::Team", "id": "dev"}, "attrs": {}, "parents": []}
    ]"#;
    let engine = load_ok(&[
        ("entities.json", entities),
        (
            "p.cedar",
            "@id(\"team-literal\")\npermit (principal, action, resource is Coffer::Account)\n\
             when { principal in Coffer::Team::\"dev\" };\n",
        ),
    ]);
    assert!(ask(&engine, "alice", "ListSecrets", account()).allowed);
    assert!(!ask(&engine, "bob", "ListSecrets", account()).allowed);
}

#[test]
fn forbid_wins_and_is_named() {
    let engine = load_ok(&[
        ("entities.json", ENTITIES),
        ("dev.cedar", DEV_READ),
        (
            "no-secret-x.cedar",
            "@id(\"no-x\")\nforbid (principal, action, resource is Coffer::Secret)\n\
             when { resource.name == \"dev/x\" };\n",
        ),
    ]);
    let decision = ask(&engine, "alice", "GetSecretValue", secret("dev/x", NO_TAGS));
    assert!(!decision.allowed);
    assert_eq!(decision.determining_policies, ["no-x"]);
    assert_eq!(decision.reason, "forbidden by no-x");
    assert!(ask(&engine, "alice", "GetSecretValue", secret("dev/y", NO_TAGS)).allowed);
}

#[test]
fn erroring_forbid_fails_closed() {
    // Strict validation rules out missing attributes and tags, but not overflow:
    // `time_unix + i64::MAX` errors at run time whenever time_unix > 0.
    let engine = load_ok(&[
        ("allow.cedar", "@id(\"alice-all\")\npermit (principal == Coffer::User::\"alice\", action, resource);\n"),
        (
            "overflow.cedar",
            "@id(\"overflowing-forbid\")\nforbid (principal, action, resource)\n\
             when { context.time_unix + 9223372036854775807 < 0 };\n",
        ),
    ]);
    let mut request = AuthzRequest {
        principal: "alice",
        action: "GetSecretValue",
        resource: secret("prod/x", NO_TAGS),
        context: ctx(),
    };

    // Control: at time 0 the forbid evaluates cleanly (to false) and the permit allows.
    request.context.time_unix = 0;
    let decision = engine.authorize(&request);
    assert!(decision.allowed, "{decision:?}");
    assert!(decision.errors.is_empty());

    // Cedar alone would skip the erroring forbid and allow; the engine denies.
    request.context.time_unix = 1;
    let decision = engine.authorize(&request);
    assert!(!decision.allowed, "{decision:?}");
    assert_eq!(decision.determining_policies, ["overflowing-forbid"]);
    assert_eq!(decision.errors.len(), 1, "{decision:?}");
    assert!(
        decision.errors[0].starts_with("overflowing-forbid: "),
        "{decision:?}"
    );
    assert_eq!(
        decision.reason,
        "denied: forbid policy overflowing-forbid errored (fail closed)"
    );
}

#[test]
fn erroring_permit_does_not_allow() {
    let engine = load_ok(&[(
        "p.cedar",
        "@id(\"overflowing-permit\")\npermit (principal, action, resource)\n\
         when { context.time_unix + 9223372036854775807 < 0 };\n",
    )]);
    let decision = ask(&engine, "alice", "GetSecretValue", secret("x", NO_TAGS));
    assert!(!decision.allowed);
    assert_eq!(decision.errors.len(), 1);
    assert_eq!(
        decision.reason,
        "no permit matched (permit policy overflowing-permit errored)"
    );
}

#[test]
fn policies_without_id_are_named_file_and_line() {
    let engine = load_ok(&[(
        "z.cedar",
        "// no ids here\n\npermit (principal == Coffer::User::\"zed\", action, resource);\n",
    )]);
    let decision = ask(&engine, "zed", "ListKeys", account());
    assert!(decision.allowed);
    assert_eq!(decision.determining_policies, ["z.cedar:3"]);
}

#[test]
fn context_time_ip_api_and_encryption_context_reach_policies() {
    let engine = load_ok(&[(
        "ctx.cedar",
        r#"
@id("internal-net")
permit (principal, action == Coffer::Action::"ListKeys", resource)
when { context has source_ip && context.source_ip.isInRange(ip("10.0.0.0/8")) };

@id("aws-api-after-2020")
permit (principal, action == Coffer::Action::"ListSecrets", resource)
when { context.api == "aws" && context.time >= datetime("2020-01-01") && context.region == "eu-west-1" };

@id("tenant-acme")
permit (principal, action in Coffer::Action::"UseKey", resource)
when {
  context has encryption_context
  && context.encryption_context.hasTag("tenant")
  && context.encryption_context.getTag("tenant") == "acme"
};

@id("tagged-and-aliased")
permit (principal, action == Coffer::Action::"DescribeKey", resource)
when { resource.aliases.contains("alias/app") && resource.hasTag("team") && resource.getTag("team") == "core" };

@id("dev-tagged-secrets")
permit (principal, action == Coffer::Action::"DescribeSecret", resource)
when { resource.hasTag("env") && resource.getTag("env") == "dev" && resource.region == "eu-west-1" };
"#,
    )]);
    let run = |action: &str, resource: Resource<'_>, context: AuthzContext<'_>| {
        engine
            .authorize(&AuthzRequest {
                principal: "anyone",
                action,
                resource,
                context,
            })
            .allowed
    };

    let with_ip = |ip: &str| AuthzContext {
        source_ip: Some(ip.parse::<IpAddr>().expect("ip")),
        ..ctx()
    };
    assert!(run("ListKeys", account(), with_ip("10.1.2.3")));
    assert!(run("ListKeys", account(), with_ip("::ffff:10.1.2.3")));
    assert!(!run("ListKeys", account(), with_ip("192.168.0.1")));
    assert!(!run("ListKeys", account(), ctx()));

    let aws = AuthzContext {
        api: "aws",
        ..ctx()
    };
    assert!(run("ListSecrets", account(), aws));
    assert!(!run("ListSecrets", account(), ctx()));
    assert!(!run(
        "ListSecrets",
        account(),
        AuthzContext {
            time_unix: 1_500_000_000,
            ..aws
        }
    ));

    let acme = BTreeMap::from([("tenant".to_owned(), "acme".to_owned())]);
    let other = BTreeMap::from([("tenant".to_owned(), "other".to_owned())]);
    let with_ec = |ec| AuthzContext {
        encryption_context: Some(ec),
        ..ctx()
    };
    assert!(run("Decrypt", key(&[], NO_TAGS), with_ec(&acme)));
    assert!(!run("Decrypt", key(&[], NO_TAGS), with_ec(&other)));
    assert!(!run("Decrypt", key(&[], NO_TAGS), with_ec(NO_TAGS)));
    assert!(!run("Decrypt", key(&[], NO_TAGS), ctx()));

    let aliases = vec!["alias/app".to_owned()];
    let core = BTreeMap::from([("team".to_owned(), "core".to_owned())]);
    assert!(run("DescribeKey", key(&aliases, &core), ctx()));
    assert!(!run("DescribeKey", key(&aliases, NO_TAGS), ctx()));
    assert!(!run("DescribeKey", key(&[], &core), ctx()));

    let dev = BTreeMap::from([("env".to_owned(), "dev".to_owned())]);
    assert!(run("DescribeSecret", secret("a/b", &dev), ctx()));
    assert!(!run("DescribeSecret", secret("a/b", NO_TAGS), ctx()));
}

// ---------------------------------------------------------------- hash and source

#[test]
fn hash_is_stable_and_tells_sets_apart() {
    let files = [("entities.json", ENTITIES), ("dev.cedar", DEV_READ)];
    let a = dir_with(&files);
    let first = PolicyEngine::load_dir(a.path()).expect("loads");
    let second = PolicyEngine::load_dir(a.path()).expect("loads");
    assert_eq!(first.hash(), second.hash());
    assert_eq!(first.hash().len(), 64);
    assert!(first.hash().bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(first.source(), a.path().display().to_string());

    // Same files in another directory: same hash.
    let b = dir_with(&files);
    assert_eq!(
        PolicyEngine::load_dir(b.path()).expect("loads").hash(),
        first.hash()
    );

    // One byte more, or the same text under another file name: different hash.
    let changed = format!("{DEV_READ}\n");
    let c = dir_with(&[("entities.json", ENTITIES), ("dev.cedar", &changed)]);
    assert_ne!(
        PolicyEngine::load_dir(c.path()).expect("loads").hash(),
        first.hash()
    );
    let d = dir_with(&[("entities.json", ENTITIES), ("other.cedar", DEV_READ)]);
    assert_ne!(
        PolicyEngine::load_dir(d.path()).expect("loads").hash(),
        first.hash()
    );

    assert_ne!(
        PolicyEngine::builtin().expect("builtin").hash(),
        first.hash()
    );
}

#[test]
fn builtin_is_the_repository_schema_and_admin_policy() {
    let builtin = PolicyEngine::builtin().expect("builtin");
    let dir = dir_with(&[("admin.cedar", include_str!("../../../policies/admin.cedar"))]);
    let from_dir = PolicyEngine::load_dir(dir.path()).expect("schema + admin load");
    assert_eq!(builtin.hash(), from_dir.hash());
    assert_eq!(
        PolicyEngine::builtin().expect("builtin").hash(),
        builtin.hash()
    );
    // The repository directory adds the example team policies on top.
    let repo = PolicyEngine::load_dir(&repo_policies()).expect("repo policies load");
    assert_ne!(repo.hash(), builtin.hash());
}

// ---------------------------------------------------------------- example policies

/// Seconds since the epoch of 2024-05-01 at `hh:mm` UTC.
fn at(hh: i64, mm: i64) -> i64 {
    1_714_521_600 + hh * 3600 + mm * 60
}

fn ask_at(
    engine: &PolicyEngine,
    principal: &str,
    action: &str,
    resource: Resource<'_>,
    time_unix: i64,
) -> AuthzDecision {
    engine.authorize(&AuthzRequest {
        principal,
        action,
        resource,
        context: AuthzContext { time_unix, ..ctx() },
    })
}

#[test]
fn example_policies_teams_and_secrets() {
    let engine = PolicyEngine::load_dir(&repo_policies()).expect("repo policies load");
    let noon = at(12, 0);
    let allowed =
        |p: &str, a: &str, name: &str| ask_at(&engine, p, a, secret(name, NO_TAGS), noon).allowed;
    // dev: read and write dev/ only.
    for action in [
        "GetSecretValue",
        "DescribeSecret",
        "PutSecretValue",
        "CreateSecret",
        "DeleteSecret",
    ] {
        assert!(allowed("dana", action, "dev/app/db"), "dana {action} dev");
        assert!(
            !allowed("dana", action, "prod/app/db"),
            "dana {action} prod"
        );
    }
    // A name merely containing "dev" elsewhere is not a dev secret.
    assert!(!allowed("dana", "GetSecretValue", "prod/dev/db"));
    assert!(!allowed("dana", "GetSecretValue", "dev"));
    // ops: read prod and dev, rotate prod, write nothing.
    assert!(allowed("otto", "GetSecretValue", "prod/app/db"));
    assert!(allowed("otto", "DescribeSecret", "dev/app/db"));
    assert!(allowed("otto", "RotateSecret", "prod/app/db"));
    assert!(!allowed("otto", "RotateSecret", "dev/app/db"));
    assert!(!allowed("otto", "PutSecretValue", "prod/app/db"));
    assert!(!allowed("otto", "DeleteSecret", "prod/app/db"));
    // security and strangers: no secrets.
    assert!(!allowed("sasha", "GetSecretValue", "prod/app/db"));
    assert!(!allowed("nobody", "GetSecretValue", "dev/app/db"));
    // Lists: team members only.
    for user in ["dana", "otto", "sasha"] {
        for action in ["ListSecrets", "ListKeys"] {
            assert!(
                ask_at(&engine, user, action, account(), noon).allowed,
                "{user} {action}"
            );
        }
    }
    assert!(!ask_at(&engine, "nobody", "ListSecrets", account(), noon).allowed);
    assert!(!ask_at(&engine, "dana", "ListAliases", account(), noon).allowed);
}

#[test]
fn example_policies_prod_deletes_only_in_the_change_window() {
    let engine = PolicyEngine::load_dir(&repo_policies()).expect("repo policies load");
    let delete = |who: &str, name: &str, t: i64| {
        ask_at(&engine, who, "DeleteSecret", secret(name, NO_TAGS), t)
    };
    for t in [at(1, 59), at(4, 0), at(12, 0), at(23, 59)] {
        let d = delete("admin", "prod/app/db", t);
        assert!(!d.allowed, "{t}: {d:?}");
        assert_eq!(d.determining_policies, ["no-prod-delete-outside-window"]);
    }
    for t in [at(2, 0), at(3, 30), at(3, 59)] {
        let d = delete("admin", "prod/app/db", t);
        assert!(d.allowed, "{t}: {d:?}");
    }
    // Outside prod/ the window does not matter.
    assert!(delete("admin", "dev/app/db", at(12, 0)).allowed);
    assert!(delete("dana", "dev/app/db", at(12, 0)).allowed);
    // In the window ops still has no permit to delete.
    assert!(!delete("otto", "prod/app/db", at(3, 0)).allowed);
}

#[test]
fn example_policies_payments_key() {
    let engine = PolicyEngine::load_dir(&repo_policies()).expect("repo policies load");
    let payments = BTreeMap::from([("purpose".to_owned(), "payments".to_owned())]);
    let ask_key = |who: &str, action: &str, tags: &BTreeMap<String, String>| {
        ask(&engine, who, action, key(&[], tags))
    };
    for who in ["dana", "otto", "admin"] {
        for action in ["Decrypt", "ReEncryptFrom"] {
            let d = ask_key(who, action, &payments);
            assert!(!d.allowed, "{who} {action}: {d:?}");
            assert_eq!(d.determining_policies, ["payments-decrypt-security-only"]);
        }
        assert!(ask_key(who, "Encrypt", &payments).allowed, "{who}");
        assert!(ask_key(who, "GenerateDataKey", &payments).allowed, "{who}");
        assert!(ask_key(who, "DescribeKey", &payments).allowed, "{who}");
        assert!(ask_key(who, "Decrypt", NO_TAGS).allowed, "{who}");
    }
    for action in ["Decrypt", "ReEncryptFrom", "Encrypt", "DescribeKey"] {
        let d = ask_key("sasha", action, &payments);
        assert!(d.allowed, "sasha {action}: {d:?}");
    }
    // The tag that marks the key is guarded too.
    assert!(!ask_key("admin", "UntagKey", &payments).allowed);
    assert!(!ask_key("admin", "TagKey", &payments).allowed);
    assert!(ask_key("admin", "TagKey", NO_TAGS).allowed);
    // Strangers get nothing.
    assert!(!ask_key("nobody", "Encrypt", NO_TAGS).allowed);
}

#[test]
fn every_example_policy_has_id_and_description() {
    let engine = PolicyEngine::load_dir(&repo_policies()).expect("repo policies load");
    assert!(engine.policy_set().num_of_policies() >= 8);
    for policy in engine.policy_set().policies() {
        let id = policy.id().to_string();
        assert_eq!(policy.annotation("id"), Some(id.as_str()), "{id}");
        assert!(
            policy
                .annotation("description")
                .is_some_and(|d| !d.is_empty()),
            "{id} has no @description"
        );
    }
}

// ---------------------------------------------------------------- helpers

#[test]
fn datetimes_are_formatted_for_cedar() {
    assert_eq!(format_datetime(0).as_deref(), Some("1970-01-01T00:00:00Z"));
    assert_eq!(
        format_datetime(1_700_000_000).as_deref(),
        Some("2023-11-14T22:13:20Z")
    );
    assert_eq!(format_datetime(-1).as_deref(), Some("1969-12-31T23:59:59Z"));
    assert_eq!(
        format_datetime(951_782_400).as_deref(),
        Some("2000-02-29T00:00:00Z")
    );
    assert_eq!(
        format_datetime(4_107_542_400).as_deref(),
        Some("2100-03-01T00:00:00Z")
    );
    assert_eq!(
        format_datetime(253_402_300_799).as_deref(),
        Some("9999-12-31T23:59:59Z")
    );
    assert_eq!(
        format_datetime(-62_167_219_200).as_deref(),
        Some("0000-01-01T00:00:00Z")
    );
    assert_eq!(format_datetime(253_402_300_800), None);
    assert_eq!(format_datetime(-62_167_219_201), None);
    assert_eq!(format_datetime(i64::MAX), None);
    assert_eq!(format_datetime(i64::MIN), None);
}

#[test]
fn secret_paths_are_directory_prefixes() {
    let collect = |name| path_prefixes(name).collect::<Vec<_>>();
    assert_eq!(collect("prod/database/password"), ["prod", "prod/database"]);
    assert_eq!(collect("dev/x"), ["dev"]);
    assert!(collect("plain").is_empty());
    assert_eq!(collect("/abs/x"), ["/abs"]);
}

/// Rough per-request cost; run with
/// `cargo test -p coffer-policy --release -- --ignored --nocapture authorize_cost`.
#[test]
#[ignore = "timing report, not a check"]
fn authorize_cost() {
    let engine = load_ok(&[
        ("entities.json", ENTITIES),
        ("dev.cedar", DEV_READ),
        ("admin.cedar", include_str!("../../../policies/admin.cedar")),
    ]);
    let tags = BTreeMap::from([("env".to_owned(), "dev".to_owned())]);
    let request = AuthzRequest {
        principal: "alice",
        action: "GetSecretValue",
        resource: secret("dev/app/db", &tags),
        context: AuthzContext {
            source_ip: Some(IpAddr::from([10, 0, 0, 1])),
            ..ctx()
        },
    };
    let n = 100_000u32;
    let start = std::time::Instant::now();
    let mut allowed = 0;
    for _ in 0..n {
        allowed += usize::from(engine.authorize(&request).allowed);
    }
    let elapsed = start.elapsed();
    assert_eq!(allowed, n as usize);
    println!("authorize: {:?} per request", elapsed / n);

    // Where the time goes.
    let action = &engine.actions["GetSecretValue"];
    let start = std::time::Instant::now();
    for _ in 0..n {
        let parts = crate::slice::build(&engine, &request, action);
        assert!(parts.is_ok());
    }
    println!("  build slice + context: {:?}", start.elapsed() / n);
    let start = std::time::Instant::now();
    for _ in 0..n {
        let built = crate::slice::build(&engine, &request, action)
            .and_then(|parts| parts.into_request(None));
        assert!(built.is_ok());
    }
    println!("  ... + Request and Entities: {:?}", start.elapsed() / n);
}

// ---------------------------------------------------------------- per-engine caches

/// The engine keeps the contexts built and the decisions made this second, and the
/// entity slice of each (principal, action). Asked in an order that hits every cache
/// with requests that differ in one input only, a long-lived engine must decide every
/// request exactly as a fresh engine does, and as the policies say.
#[test]
fn cached_contexts_slices_and_decisions_never_carry_one_request_into_another() {
    let policies = r#"
@id("dev-read-dev")
permit (principal in Coffer::Team::"dev", action in Coffer::Action::"ReadSecret", resource is Coffer::Secret)
when { resource.path.contains("dev") };

@id("bob-until")
permit (principal == Coffer::User::"bob", action == Coffer::Action::"GetSecretValue", resource)
when { [1700000000, 1700000002, 1700000004].contains(context.time_unix) && context.region == "eu-west-1" };

@id("internal-net")
permit (principal, action == Coffer::Action::"ListKeys", resource)
when { context has source_ip && context.source_ip.isInRange(ip("10.0.0.0/8")) && context.api == "native" };

@id("tenant-acme")
permit (principal, action == Coffer::Action::"Decrypt", resource)
when { context has encryption_context && context.encryption_context.hasTag("tenant")
       && context.encryption_context.getTag("tenant") == "acme" };

@id("no-frozen")
forbid (principal, action, resource is Coffer::Secret)
when { resource.hasTag("frozen") };

@id("app-alias")
permit (principal == Coffer::User::"carol", action == Coffer::Action::"Encrypt", resource is Coffer::Key)
when { resource.aliases.contains("alias/app") && resource.region == "eu-west-1"
       && !(resource.hasTag("retired")) };

@id("staging-env")
permit (principal == Coffer::User::"bob", action == Coffer::Action::"DescribeSecret", resource is Coffer::Secret)
when { resource.hasTag("env") && resource.getTag("env") == "staging" && resource.region == "eu-west-1" };
"#;
    let dir = dir_with(&[("entities.json", ENTITIES), ("p.cedar", policies)]);
    let warm = PolicyEngine::load_dir(dir.path()).expect("loads");

    let frozen = BTreeMap::from([("frozen".to_owned(), "yes".to_owned())]);
    let acme = BTreeMap::from([("tenant".to_owned(), "acme".to_owned())]);
    let other = BTreeMap::from([("tenant".to_owned(), "other".to_owned())]);
    let staging = BTreeMap::from([("env".to_owned(), "staging".to_owned())]);
    let prod = BTreeMap::from([("env".to_owned(), "prod".to_owned())]);
    let retired = BTreeMap::from([("retired".to_owned(), "yes".to_owned())]);
    let app = ["alias/app".to_owned()];
    let other_alias = ["alias/other".to_owned()];
    let us_key = Resource::Key {
        region: "us-east-1",
        key_id: "k1",
        aliases: &app,
        tags: NO_TAGS,
    };
    let us_secret = Resource::Secret {
        region: "us-east-1",
        name: "dev/x",
        tags: &staging,
    };
    // Each round asks within its own (even) second, then one request in the next second
    // moves the cache on; a request from an earlier second bypasses it.
    for round in 0..3 {
        let now = 1_700_000_000 + 2 * round;
        let base = AuthzContext {
            time_unix: now,
            ..ctx()
        };
        let at = |time_unix: i64| AuthzContext { time_unix, ..base };
        let from = |ip: &str| AuthzContext {
            source_ip: Some(ip.parse::<IpAddr>().expect("ip")),
            ..base
        };
        let in_region = |region| AuthzContext { region, ..base };
        let aws_from = |ip: &str| AuthzContext {
            api: "aws",
            ..from(ip)
        };
        let with_ec = |ec| AuthzContext {
            encryption_context: Some(ec),
            ..base
        };
        // (principal, action, resource, context, allowed)
        let cases: Vec<(&str, &str, Resource<'_>, AuthzContext<'_>, bool)> = vec![
            (
                "alice",
                "GetSecretValue",
                secret("dev/x", NO_TAGS),
                base,
                true,
            ),
            (
                "alice",
                "GetSecretValue",
                secret("prod/x", NO_TAGS),
                base,
                false,
            ),
            (
                "alice",
                "GetSecretValue",
                secret("dev/y", &frozen),
                base,
                false,
            ),
            (
                "alice",
                "GetSecretValue",
                secret("dev/y", NO_TAGS),
                base,
                true,
            ),
            (
                "alice",
                "PutSecretValue",
                secret("dev/x", NO_TAGS),
                base,
                false,
            ),
            (
                "alice",
                "DescribeSecret",
                secret("dev/x", NO_TAGS),
                base,
                true,
            ),
            (
                "bob",
                "GetSecretValue",
                secret("dev/x", NO_TAGS),
                base,
                true,
            ),
            (
                "bob",
                "GetSecretValue",
                secret("dev/x", NO_TAGS),
                at(now - 1),
                false,
            ),
            (
                "bob",
                "GetSecretValue",
                secret("dev/x", NO_TAGS),
                in_region("us-east-1"),
                false,
            ),
            (
                "bob",
                "GetSecretValue",
                secret("dev/x", NO_TAGS),
                base,
                true,
            ),
            ("carol", "ListKeys", account(), from("10.1.2.3"), true),
            ("carol", "ListKeys", account(), from("192.168.0.1"), false),
            ("carol", "ListKeys", account(), aws_from("10.1.2.3"), false),
            ("carol", "ListKeys", account(), base, false),
            ("carol", "ListKeys", account(), from("10.1.2.3"), true),
            ("carol", "Decrypt", key(&[], NO_TAGS), with_ec(&acme), true),
            (
                "carol",
                "Decrypt",
                key(&[], NO_TAGS),
                with_ec(&other),
                false,
            ),
            ("carol", "Decrypt", key(&[], NO_TAGS), base, false),
            ("carol", "Decrypt", key(&[], NO_TAGS), with_ec(&acme), true),
            ("carol", "Encrypt", key(&app, NO_TAGS), base, true),
            ("carol", "Encrypt", key(&other_alias, NO_TAGS), base, false),
            ("carol", "Encrypt", key(&app, &retired), base, false),
            ("carol", "Encrypt", us_key, base, false),
            ("carol", "Encrypt", key(&app, NO_TAGS), base, true),
            (
                "bob",
                "DescribeSecret",
                secret("dev/x", &staging),
                base,
                true,
            ),
            ("bob", "DescribeSecret", secret("dev/x", &prod), base, false),
            ("bob", "DescribeSecret", us_secret, base, false),
            (
                "bob",
                "DescribeSecret",
                secret("dev/x", &staging),
                base,
                true,
            ),
            (
                "bob",
                "GetSecretValue",
                secret("dev/x", NO_TAGS),
                at(now + 1),
                false,
            ),
        ];
        for (principal, action, resource, context, allowed) in &cases {
            let request = AuthzRequest {
                principal,
                action,
                resource: *resource,
                context: *context,
            };
            let fresh = PolicyEngine::load_dir(dir.path()).expect("loads");
            let (w, f) = (warm.authorize(&request), fresh.authorize(&request));
            let what = format!("round {round}: {principal} {action} {resource:?} {context:?}");
            assert_eq!(w.allowed, *allowed, "{what}: {w:?}");
            assert_eq!(
                (w.allowed, &w.determining_policies, &w.errors),
                (f.allowed, &f.determining_policies, &f.errors),
                "{what}"
            );
        }
    }
}
