//! What one request's audit record costs its worker thread: building the entry of a
//! GetSecretValue (what the middleware, authentication, authorization and the handler
//! record) and encoding it for the writer (`PreparedEntry::new`: the JSON line and the
//! canonical encoding its hash covers). Issue 3; figures in BENCHMARKS.md.
//!
//! `cargo bench -p coffer-core --bench audit_record`

use std::hint::black_box;

use coffer_core::audit::{AuditDecision, AuditEntry, PreparedEntry};
use coffer_core::KeyUse;
use criterion::{criterion_group, criterion_main, Criterion};
use time::OffsetDateTime;

/// The entry the server records for one allowed GetSecretValue.
fn get_secret_value_entry() -> AuditEntry {
    let mut e = AuditEntry::new(
        "GetSecretValue",
        "5f0c1d2e-8a4b-4c3d-9e2f-1a2b3c4d5e6f",
        OffsetDateTime::now_utc(),
    );
    e.source_ip = Some("127.0.0.1".to_string());
    e.principal = Some("alice".to_string());
    e.token_id = Some("tok_0123456789abcdef".to_string());
    e.region = Some("local".to_string());
    e.resource = Some("secret:local/bench/read".to_string());
    e.policies = vec!["admins-do-anything".to_string()];
    e.decision = AuditDecision::Allow;
    e.keys.push(KeyUse {
        key_id: "alias/coffer/secrets".to_string(),
        key_version: 1,
    });
    e.status = 200;
    e
}

fn bench(c: &mut Criterion) {
    c.bench_function("audit: build a GetSecretValue entry", |b| {
        b.iter(|| black_box(get_secret_value_entry()))
    });
    c.bench_function("audit: build and encode (PreparedEntry::new)", |b| {
        b.iter(|| black_box(PreparedEntry::new(get_secret_value_entry())))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
