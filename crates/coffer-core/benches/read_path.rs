//! What one GetSecretValue costs in `coffer-core`, without HTTP: the store reads, the
//! records' decoding, unwrapping the data key and opening the value. Every request of the
//! server's read path pays this on its worker thread (issue 3; figures in BENCHMARKS.md).
//!
//! `cargo bench -p coffer-core --bench read_path`

use std::hint::black_box;
use std::sync::Arc;

use coffer_core::{Coffer, CoreConfig};
use criterion::{criterion_group, criterion_main, Criterion};

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let store = Arc::new(coffer_store::SledStore::temporary().expect("store"));
    let root = Arc::new(coffer_crypto::MemoryRootKey::generate());
    let coffer = Coffer::new(store, root, CoreConfig::default()).expect("service");
    let req = coffer_api::CreateSecretRequest {
        name: "bench/read".into(),
        secret_string: Some(
            "abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghij1234".into(),
        ),
        ..Default::default()
    };
    rt.block_on(coffer.create_secret("local", &req))
        .expect("create");
    c.bench_function("core: GetSecretValue (AWSCURRENT)", |b| {
        b.iter(|| {
            rt.block_on(coffer.get_secret_value_checked(
                "local",
                black_box("bench/read"),
                None,
                None,
                |name, tags| -> Result<(), coffer_core::CoreError> {
                    black_box((name, tags));
                    Ok(())
                },
            ))
            .expect("read")
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
