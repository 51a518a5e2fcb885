//! Host overhead of one rotation step (fresh Store + instantiate + call + return, compiled
//! component, no I/O) with the `echo` test plugin, and the cold-start cost of loading a
//! plugin: Cranelift compile (empty cache) vs `.cwasm` cache load.
//!
//! `cargo bench -p coffer-plugins --bench step` (builds `plugins/` first if needed).

use std::sync::Arc;
use std::time::Duration;

use coffer_core::rotation_api::{RotationRunner, RotationStep};
use coffer_plugins::testing::{self, FakeReader};
use coffer_plugins::{PluginHost, PluginHostConfig};
use criterion::{criterion_group, criterion_main, Criterion};

fn step(c: &mut Criterion) {
    let plugins = testing::plugin_fixture_dir(&["echo"]);
    let cache = tempfile::tempdir().expect("tempdir");
    let config = PluginHostConfig {
        dirs: vec![plugins.path().to_path_buf()],
        cache_dir: cache.path().to_path_buf(),
    };
    let host = PluginHost::new(config.clone(), Arc::new(FakeReader::default())).expect("host");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let current = r#"{"username":"app","password":"fake-secret-value"}"#;

    let mut g = c.benchmark_group("plugin");
    g.sample_size(20).measurement_time(Duration::from_secs(3));
    g.bench_function("echo_create_step", |b| {
        b.iter(|| {
            let req = testing::step_request("echo", RotationStep::Create, current);
            rt.block_on(host.run_step(req)).expect("step")
        })
    });
    // A full rotation's host overhead: the four steps back to back, each in a fresh
    // sandbox (create's value becomes PENDING for the others).
    g.bench_function("echo_four_steps", |b| {
        b.iter(|| {
            let created = rt
                .block_on(host.run_step(testing::step_request(
                    "echo",
                    RotationStep::Create,
                    current,
                )))
                .expect("create");
            let pending = created.value.expect("pending value");
            for step in [RotationStep::Set, RotationStep::Test, RotationStep::Finish] {
                let mut req = testing::step_request("echo", step, current);
                req.pending = Some(coffer_core::rotation_api::RotationVersion {
                    id: req.token.clone(),
                    value: pending.clone(),
                });
                rt.block_on(host.run_step(req)).expect("step");
            }
        })
    });
    // Floor for comparison: a task round trip on a runtime of the same shape, which every
    // step pays to leave the caller's runtime.
    let other = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let handle = other.handle().clone();
    g.bench_function("runtime_hop_floor", |b| {
        b.iter(|| rt.block_on(async { handle.spawn(async { 1u8 }).await.expect("join") }))
    });
    drop(host);

    g.sample_size(10).measurement_time(Duration::from_secs(5));
    g.bench_function("load_compile_cold", |b| {
        b.iter(|| {
            let empty = tempfile::tempdir().expect("tempdir");
            let cfg = PluginHostConfig {
                dirs: config.dirs.clone(),
                cache_dir: empty.path().to_path_buf(),
            };
            PluginHost::new(cfg, Arc::new(FakeReader::default())).expect("host")
        })
    });
    g.bench_function("load_from_cache", |b| {
        b.iter(|| PluginHost::new(config.clone(), Arc::new(FakeReader::default())).expect("host"))
    });
    g.finish();
}

criterion_group!(benches, step);
criterion_main!(benches);
