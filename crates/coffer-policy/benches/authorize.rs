//! One authorization with 10, 1,000 and 10,000 generated policies over 10,000 entities
//! (9,800 users, 200 teams), through the scope index (`indexed`: a request not yet
//! decided this second), through Cedar evaluating every policy (`full`), and as a repeat
//! answered from the decisions made this second (`repeat`).
//!
//! Run: `cargo bench -p coffer-policy --bench authorize -- --warm-up-time 1 --measurement-time 3`
//!
//! The policy mix, per 100 policies: 45 team grants on a path
//! (`principal in Team, action in ReadSecret, resource is Secret when path`), 40 user
//! grants on one secret (`principal == User, action == GetSecretValue, resource ==
//! Secret`), 14 team-scoped ABAC key grants (`when` on tags and aliases) and 1
//! unscoped-principal forbid on one action with a tag condition. Each iteration
//! authorizes the next of 256 pre-generated requests (GetSecretValue, DescribeSecret,
//! Decrypt, DeleteSecret by random users on random secrets and keys).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::hint::black_box;

use coffer_policy::{AuthzContext, AuthzRequest, PolicyEngine, Resource};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};

const SCHEMA: &str = include_str!("../../../policies/schema.cedarschema");
const TEAMS: usize = 200;
const USERS: usize = 9_800;
const FOLDERS: usize = 200;

/// SplitMix64, deterministic.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) % n as u64) as usize
    }
}

fn entities(rng: &mut Rng) -> String {
    let mut out = String::from("[\n");
    for t in 0..TEAMS {
        let _ = writeln!(
            out,
            r#"{{"uid":{{"type":"Coffer::Team","id":"t{t}"}},"attrs":{{}},"parents":[]}},"#
        );
    }
    for u in 0..USERS {
        let parents: Vec<String> = (0..1 + rng.below(3))
            .map(|_| format!(r#"{{"type":"Coffer::Team","id":"t{}"}}"#, rng.below(TEAMS)))
            .collect();
        let sep = if u + 1 == USERS { "" } else { "," };
        let _ = writeln!(
            out,
            r#"{{"uid":{{"type":"Coffer::User","id":"u{u}"}},"attrs":{{}},"parents":[{}]}}{sep}"#,
            parents.join(",")
        );
    }
    out.push(']');
    out
}

const FORBID_ACTIONS: &[&str] = &[
    "DeleteSecret",
    "PutSecretValue",
    "Decrypt",
    "GetSecretValue",
    "ScheduleKeyDeletion",
];

fn policies(rng: &mut Rng, n: usize) -> String {
    let mut out = String::new();
    for i in 0..n {
        let _ = writeln!(out, "@id(\"p{i}\")");
        match i % 100 {
            0..=44 => {
                let _ = writeln!(
                    out,
                    "permit (principal in Coffer::Team::\"t{}\", action in Coffer::Action::\"ReadSecret\", resource is Coffer::Secret)\nwhen {{ resource.path.contains(\"f{}\") }};",
                    rng.below(TEAMS),
                    rng.below(FOLDERS)
                );
            }
            45..=84 => {
                let _ = writeln!(
                    out,
                    "permit (principal == Coffer::User::\"u{}\", action == Coffer::Action::\"GetSecretValue\", resource == Coffer::Secret::\"r0/f{}/s{}\");",
                    rng.below(USERS),
                    rng.below(FOLDERS),
                    rng.below(20)
                );
            }
            85..=98 => {
                let _ = writeln!(
                    out,
                    "permit (principal in Coffer::Team::\"t{}\", action in Coffer::Action::\"UseKey\", resource is Coffer::Key)\nwhen {{ resource.hasTag(\"env\") && resource.getTag(\"env\") == \"prod\" && resource.aliases.contains(\"alias/a{}\") }};",
                    rng.below(TEAMS),
                    rng.below(50)
                );
            }
            _ => {
                let action = FORBID_ACTIONS[rng.below(FORBID_ACTIONS.len())];
                let resource = if action == "Decrypt" || action == "ScheduleKeyDeletion" {
                    "Coffer::Key"
                } else {
                    "Coffer::Secret"
                };
                let _ = writeln!(
                    out,
                    "forbid (principal, action == Coffer::Action::\"{action}\", resource is {resource})\nwhen {{ resource.hasTag(\"frozen\") && resource.getTag(\"frozen\") == \"f{}\" }};",
                    rng.below(FOLDERS)
                );
            }
        }
    }
    out
}

fn engine(n: usize) -> PolicyEngine {
    let mut rng = Rng(42);
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("schema.cedarschema"), SCHEMA).expect("schema");
    std::fs::write(dir.path().join("entities.json"), entities(&mut rng)).expect("entities");
    std::fs::write(dir.path().join("generated.cedar"), policies(&mut rng, n)).expect("policies");
    let engine = PolicyEngine::load_dir(dir.path()).expect("generated set loads");
    assert_eq!(engine.policy_set().num_of_policies(), n);
    engine
}

/// The inputs of one request, owned.
struct Input {
    principal: String,
    action: &'static str,
    name: String,
    key_id: String,
    aliases: Vec<String>,
    tags: BTreeMap<String, String>,
}

impl Input {
    fn request(&self) -> AuthzRequest<'_> {
        let resource = if matches!(self.action, "Decrypt") {
            Resource::Key {
                region: "r0",
                key_id: &self.key_id,
                aliases: &self.aliases,
                tags: &self.tags,
            }
        } else {
            Resource::Secret {
                region: "r0",
                name: &self.name,
                tags: &self.tags,
            }
        };
        AuthzRequest {
            principal: &self.principal,
            action: self.action,
            resource,
            context: AuthzContext {
                region: "r0",
                source_ip: None,
                time_unix: 1_700_000_000,
                encryption_context: None,
                api: "native",
            },
        }
    }
}

fn inputs() -> Vec<Input> {
    let mut rng = Rng(7);
    (0..256)
        .map(|_| {
            let mut tags = BTreeMap::from([("env".to_owned(), "prod".to_owned())]);
            if rng.below(4) == 0 {
                tags.insert("frozen".to_owned(), format!("f{}", rng.below(FOLDERS)));
            }
            Input {
                principal: format!("u{}", rng.below(USERS)),
                action: [
                    "GetSecretValue",
                    "DescribeSecret",
                    "Decrypt",
                    "DeleteSecret",
                ][rng.below(4)],
                name: format!("f{}/s{}", rng.below(FOLDERS), rng.below(20)),
                key_id: format!("k{}", rng.below(100)),
                aliases: vec![format!("alias/a{}", rng.below(50))],
                tags,
            }
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let inputs = inputs();
    for n in [10usize, 1_000, 10_000] {
        let engine = engine(n);
        // The two paths must agree on every benchmark request.
        for input in &inputs {
            let req = input.request();
            let decision = engine.authorize_unindexed(&req);
            assert_eq!(engine.authorize_uncached(&req), decision);
            assert_eq!(engine.authorize(&req), decision);
        }
        let mut group = c.benchmark_group("authorize");
        if n >= 10_000 {
            group.sample_size(10);
        }
        let mut i = 0usize;
        group.bench_with_input(BenchmarkId::new("indexed", n), &engine, |b, engine| {
            b.iter(|| {
                i = (i + 1) % inputs.len();
                black_box(engine.authorize_uncached(black_box(&inputs[i].request())))
            })
        });
        group.bench_with_input(BenchmarkId::new("repeat", n), &engine, |b, engine| {
            b.iter(|| {
                i = (i + 1) % inputs.len();
                black_box(engine.authorize(black_box(&inputs[i].request())))
            })
        });
        group.bench_with_input(BenchmarkId::new("full", n), &engine, |b, engine| {
            b.iter(|| {
                i = (i + 1) % inputs.len();
                black_box(engine.authorize_unindexed(black_box(&inputs[i].request())))
            })
        });
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
