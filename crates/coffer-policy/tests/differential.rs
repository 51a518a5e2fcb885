//! Differential test of the scope index: on generated policy sets and many generated
//! requests, [`PolicyEngine::authorize`] (indexed) must decide exactly like
//! [`PolicyEngine::authorize_unindexed`] (Cedar evaluating every policy): same
//! allow/deny, same determining policies, same errors, same reason — including the
//! fail-closed deny when a forbid errors.
//!
//! Policy sets mix `==`/`in`/`is … in` principal scopes on users and teams, unscoped
//! principals, single actions, action lists and action groups, unscoped actions,
//! `resource ==` scopes, `when`/`unless` conditions on paths, tags, aliases, time, api
//! and team membership, and conditions that overflow (error) for some request times.
//! Requests use known users (in zero to three teams), unknown users, every action,
//! resources of the right and of the wrong kind, random names, tags, aliases, times,
//! APIs, source addresses and encryption contexts.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::IpAddr;

use coffer_policy::{all_actions, AuthzContext, AuthzRequest, PolicyEngine, Resource};

const SCHEMA: &str = include_str!("../../../policies/schema.cedarschema");

/// SplitMix64: small, deterministic, good enough to generate test data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

const TEAMS: usize = 8;
const USERS: usize = 30;
const SEGMENTS: &[&str] = &["prod", "dev", "staging", "payments", "shared"];
const ENVS: &[&str] = &["prod", "dev", "staging"];

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Secret,
    Key,
    Account,
}

fn kind_of(action: &str) -> Kind {
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
    const KEY_GROUPS: &[&str] = &["UseKey", "ManageKey"];
    const SECRET_GROUPS: &[&str] = &["ReadSecret", "WriteSecret"];
    if SECRET.contains(&action) || SECRET_GROUPS.contains(&action) {
        return Kind::Secret;
    }
    if KEY_GROUPS.contains(&action) {
        return Kind::Key;
    }
    let account = [
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
        "Admin",
    ];
    if account.contains(&action) {
        Kind::Account
    } else {
        Kind::Key
    }
}

fn actions_of(kind: Kind) -> Vec<&'static str> {
    all_actions()
        .iter()
        .copied()
        .filter(|a| kind_of(a) == kind)
        .collect()
}

fn groups_of(kind: Kind) -> &'static [&'static str] {
    match kind {
        Kind::Secret => &["ReadSecret", "WriteSecret"],
        Kind::Key => &["UseKey", "ManageKey"],
        Kind::Account => &["Admin"],
    }
}

fn type_of(kind: Kind) -> &'static str {
    match kind {
        Kind::Secret => "Coffer::Secret",
        Kind::Key => "Coffer::Key",
        Kind::Account => "Coffer::Account",
    }
}

fn action(name: &str) -> String {
    format!("Coffer::Action::\"{name}\"")
}

fn entities_json(rng: &mut Rng) -> String {
    let mut items = Vec::new();
    for t in 0..TEAMS {
        items.push(format!(
            r#"{{"uid":{{"type":"Coffer::Team","id":"t{t}"}},"attrs":{{}},"parents":[]}}"#
        ));
    }
    for u in 0..USERS {
        let mut teams: Vec<usize> = (0..rng.below(4)).map(|_| rng.below(TEAMS)).collect();
        teams.sort();
        teams.dedup();
        let parents: Vec<String> = teams
            .iter()
            .map(|t| format!(r#"{{"type":"Coffer::Team","id":"t{t}"}}"#))
            .collect();
        items.push(format!(
            r#"{{"uid":{{"type":"Coffer::User","id":"u{u}"}},"attrs":{{}},"parents":[{}]}}"#,
            parents.join(",")
        ));
    }
    format!("[\n{}\n]\n", items.join(",\n"))
}

fn principal_scope(rng: &mut Rng) -> String {
    match rng.below(10) {
        0 | 1 => "principal".to_owned(),
        2 => "principal is Coffer::User".to_owned(),
        3 | 4 => format!("principal == Coffer::User::\"u{}\"", rng.below(USERS)),
        5..=7 => format!("principal in Coffer::Team::\"t{}\"", rng.below(TEAMS)),
        8 => format!(
            "principal is Coffer::User in Coffer::Team::\"t{}\"",
            rng.below(TEAMS)
        ),
        _ => format!("principal in Coffer::User::\"u{}\"", rng.below(USERS)),
    }
}

fn secret_name(rng: &mut Rng) -> String {
    let depth = rng.below(3);
    let mut name = rng.pick(SEGMENTS).to_string();
    for _ in 0..depth {
        name.push('/');
        name.push_str(rng.pick::<&str>(&["app", "db", "api", "web", "x"]));
    }
    name.push_str(&format!("/s{}", rng.below(6)));
    name
}

/// A condition that type-checks for resources of `kind` (`None`: unknown type).
fn condition(rng: &mut Rng, kind: Option<Kind>) -> String {
    let generic = |rng: &mut Rng| -> String {
        match rng.below(7) {
            0 => format!("context.time.toTime() >= duration(\"{}h\")", rng.below(24)),
            1 => format!(
                "context.time_unix < {}",
                1_000_000_000 + rng.below(3) * 700_000_000
            ),
            2 => "context.api == \"aws\"".to_owned(),
            3 => format!("principal in Coffer::Team::\"t{}\"", rng.below(TEAMS)),
            // Overflows (an evaluation error) for times past ~1.8e9 s.
            4 => "context.time_unix * 5000000000 > 0".to_owned(),
            5 => "context has source_ip && context.source_ip.isInRange(ip(\"10.0.0.0/8\"))"
                .to_owned(),
            _ => format!("context.region == \"r{}\"", rng.below(2)),
        }
    };
    match (kind, rng.below(3)) {
        (Some(Kind::Secret), 0) => match rng.below(3) {
            0 => format!("resource.path.contains(\"{}\")", rng.pick(SEGMENTS)),
            1 => format!(
                "resource.hasTag(\"env\") && resource.getTag(\"env\") == \"{}\"",
                rng.pick(ENVS)
            ),
            _ => format!("resource.name like \"{}/*\"", rng.pick(SEGMENTS)),
        },
        (Some(Kind::Key), 0) => match rng.below(2) {
            0 => format!("resource.aliases.contains(\"alias/a{}\")", rng.below(4)),
            _ => format!(
                "resource.hasTag(\"purpose\") && resource.getTag(\"purpose\") == \"p{}\"",
                rng.below(3)
            ),
        },
        _ => generic(rng),
    }
}

fn policy(rng: &mut Rng, n: usize) -> String {
    let effect = if rng.chance(25) { "forbid" } else { "permit" };
    let principal = principal_scope(rng);
    let kind = *rng.pick(&[
        Kind::Secret,
        Kind::Secret,
        Kind::Key,
        Kind::Key,
        Kind::Account,
    ]);
    let (action_scope, resource_scope, known_kind) = match rng.below(10) {
        // Unscoped action: the resource may be unscoped or typed.
        0 => {
            if rng.chance(50) {
                ("action".to_owned(), "resource".to_owned(), None)
            } else {
                (
                    "action".to_owned(),
                    format!("resource is {}", type_of(kind)),
                    Some(kind),
                )
            }
        }
        1..=4 => {
            let a = *rng.pick(&actions_of(kind));
            (
                format!("action == {}", action(a)),
                "resource".to_owned(),
                Some(kind),
            )
        }
        5 | 6 => {
            let g = *rng.pick(groups_of(kind));
            (
                format!("action in {}", action(g)),
                format!("resource is {}", type_of(kind)),
                Some(kind),
            )
        }
        _ => {
            let all = actions_of(kind);
            let mut list: Vec<String> = (0..1 + rng.below(3))
                .map(|_| action(rng.pick::<&str>(&all)))
                .collect();
            if rng.chance(30) {
                list.push(action(rng.pick::<&str>(groups_of(kind))));
            }
            list.sort();
            list.dedup();
            (
                format!("action in [{}]", list.join(", ")),
                format!("resource is {}", type_of(kind)),
                Some(kind),
            )
        }
    };
    // Sometimes pin the resource itself.
    let resource_scope = if known_kind == Some(Kind::Secret) && rng.chance(15) {
        format!("resource == Coffer::Secret::\"r0/{}\"", secret_name(rng))
    } else if known_kind == Some(Kind::Key) && rng.chance(15) {
        format!("resource == Coffer::Key::\"r0/k{}\"", rng.below(6))
    } else {
        resource_scope
    };
    // A typed resource in the scope is needed for attribute conditions; `action == A`
    // alone also fixes the type for the validator.
    let guard = match known_kind {
        Some(Kind::Secret) if rng.chance(40) => Some(if rng.chance(70) {
            format!("resource.path.contains(\"{}\")", rng.pick(SEGMENTS))
        } else {
            "resource.hasTag(\"env\")".to_owned()
        }),
        Some(Kind::Key) if rng.chance(30) => Some(format!(
            "resource.hasTag(\"{}\")",
            rng.pick(&["env", "purpose"])
        )),
        _ => None,
    };
    let mut text =
        format!("@id(\"p{n}\")\n{effect} ({principal}, {action_scope}, {resource_scope})");
    if let Some(guard) = guard {
        // A guard the index files the policy under: first in the first `when`, or (to
        // check that only a leading one counts) behind another conjunct or clause.
        match rng.below(4) {
            0 => {
                let _ = write!(text, "\nwhen {{ {guard} }}");
            }
            1 => {
                let _ = write!(
                    text,
                    "\nwhen {{ {guard} && {} }}",
                    condition(rng, known_kind)
                );
            }
            2 => {
                let _ = write!(
                    text,
                    "\nwhen {{ {} && {guard} }}",
                    condition(rng, known_kind)
                );
            }
            _ => {
                let _ = write!(
                    text,
                    "\nunless {{ {} }}\nwhen {{ {guard} }}",
                    condition(rng, known_kind)
                );
            }
        }
    }
    for _ in 0..rng.below(3) {
        let clause = if rng.chance(75) { "when" } else { "unless" };
        let _ = write!(text, "\n{clause} {{ {} }}", condition(rng, known_kind));
    }
    text.push_str(";\n");
    text
}

fn policy_set(rng: &mut Rng, size: usize) -> String {
    (0..size)
        .map(|n| policy(rng, n))
        .collect::<Vec<_>>()
        .join("\n")
}

struct Generated {
    principal: String,
    action: &'static str,
    kind: Kind,
    name: String,
    key_id: String,
    aliases: Vec<String>,
    tags: BTreeMap<String, String>,
    encryption_context: Option<BTreeMap<String, String>>,
    region: &'static str,
    time_unix: i64,
    api: &'static str,
    source_ip: Option<IpAddr>,
}

fn request(rng: &mut Rng) -> Generated {
    let principal = match rng.below(10) {
        0 => format!("stranger{}", rng.below(5)),
        1 => "admin".to_owned(),
        _ => format!("u{}", rng.below(USERS)),
    };
    let action = *rng.pick(all_actions());
    // Mostly the action's own resource kind, sometimes a wrong one.
    let kind = if rng.chance(95) {
        kind_of(action)
    } else {
        *rng.pick(&[Kind::Secret, Kind::Key, Kind::Account])
    };
    let mut tags = BTreeMap::new();
    if rng.chance(60) {
        tags.insert("env".to_owned(), rng.pick(ENVS).to_string());
    }
    if rng.chance(40) {
        tags.insert("purpose".to_owned(), format!("p{}", rng.below(3)));
    }
    let aliases = (0..rng.below(3))
        .map(|_| format!("alias/a{}", rng.below(4)))
        .collect();
    let time_unix = match rng.below(4) {
        0 => rng.below(86_400) as i64,
        1 => 1_700_000_000 + rng.below(86_400 * 3) as i64,
        2 => 1_900_000_000 + rng.below(86_400) as i64,
        _ => rng.below(4_000_000_000) as i64,
    };
    Generated {
        principal,
        action,
        kind,
        name: secret_name(rng),
        key_id: format!("k{}", rng.below(6)),
        aliases,
        tags,
        encryption_context: rng
            .chance(20)
            .then(|| BTreeMap::from([("tenant".to_owned(), "acme".to_owned())])),
        region: if rng.chance(50) { "r0" } else { "r1" },
        time_unix,
        api: if rng.chance(50) { "native" } else { "aws" },
        source_ip: match rng.below(3) {
            0 => None,
            1 => Some(IpAddr::from([10, 1, rng.below(256) as u8, 7])),
            _ => Some(IpAddr::from([192, 168, 0, rng.below(256) as u8])),
        },
    }
}

impl Generated {
    fn as_request(&self) -> AuthzRequest<'_> {
        let resource = match self.kind {
            Kind::Secret => Resource::Secret {
                region: self.region,
                name: &self.name,
                tags: &self.tags,
            },
            Kind::Key => Resource::Key {
                region: self.region,
                key_id: &self.key_id,
                aliases: &self.aliases,
                tags: &self.tags,
            },
            Kind::Account => Resource::Account {
                region: self.region,
            },
        };
        AuthzRequest {
            principal: &self.principal,
            action: self.action,
            resource,
            context: AuthzContext {
                region: self.region,
                source_ip: self.source_ip,
                time_unix: self.time_unix,
                encryption_context: self.encryption_context.as_ref(),
                api: self.api,
            },
        }
    }
}

fn load(policies: &str, entities: &str) -> PolicyEngine {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("schema.cedarschema"), SCHEMA).expect("write schema");
    std::fs::write(dir.path().join("entities.json"), entities).expect("write entities");
    std::fs::write(dir.path().join("generated.cedar"), policies).expect("write policies");
    match PolicyEngine::load_dir(dir.path()) {
        Ok(engine) => engine,
        Err(e) => panic!("generated set must validate: {e}\n--- policies:\n{policies}"),
    }
}

#[derive(Default, Debug)]
struct Tally {
    requests: usize,
    allowed: usize,
    forbidden: usize,
    fail_closed: usize,
    with_errors: usize,
}

#[test]
fn indexed_authorization_decides_exactly_like_the_full_authorizer() {
    // (seed, policies, requests)
    let runs: &[(u64, usize, usize)] = &[
        (1, 6, 2_000),
        (2, 25, 2_500),
        (3, 80, 2_500),
        (4, 200, 2_500),
        (5, 400, 2_000),
    ];
    let mut total = Tally::default();
    for &(seed, size, requests) in runs {
        let mut rng = Rng(seed);
        let entities = entities_json(&mut rng);
        let policies = policy_set(&mut rng, size);
        let engine = load(&policies, &entities);
        assert_eq!(engine.policy_set().num_of_policies(), size);
        let mut tally = Tally::default();
        for i in 0..requests {
            let generated = request(&mut rng);
            let req = generated.as_request();
            let indexed = engine.authorize(&req);
            let full = engine.authorize_unindexed(&req);
            assert_eq!(
                indexed, full,
                "seed {seed}, request {i}: {req:?}\n--- policies:\n{policies}"
            );
            tally.requests += 1;
            tally.allowed += usize::from(full.allowed);
            tally.forbidden += usize::from(full.reason.starts_with("forbidden by"));
            tally.fail_closed += usize::from(full.reason.contains("fail closed"));
            tally.with_errors += usize::from(!full.errors.is_empty());
        }
        println!("seed {seed}: {size} policies, {:?}", tally);
        total.requests += tally.requests;
        total.allowed += tally.allowed;
        total.forbidden += tally.forbidden;
        total.fail_closed += tally.fail_closed;
        total.with_errors += tally.with_errors;
    }
    println!("total: {total:?}");
    // The generated data must exercise every kind of outcome, or the test proves little.
    assert!(total.requests >= 10_000);
    assert!(total.allowed > total.requests / 20, "{total:?}");
    assert!(total.forbidden > 50, "{total:?}");
    assert!(total.fail_closed > 20, "{total:?}");
    assert!(total.with_errors > 50, "{total:?}");
    assert!(
        total.requests - total.allowed > total.requests / 5,
        "{total:?}"
    );
}
