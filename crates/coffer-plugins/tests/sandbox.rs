//! Sandbox tests against the real plugins of `plugins/` (built once per run, release,
//! wasm32-wasip2). Every assertion checks what the host reported, not just "it failed".

use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use coffer_core::rotation_api::{
    RotationRunner, RotationStep, StepErrorKind, StepFailure, StepOutcome,
};
use coffer_plugins::testing::{self, FakeReader};
use coffer_plugins::{PluginError, PluginHost, PluginHostConfig};

struct Shared {
    host: PluginHost,
    reader: Arc<FakeReader>,
    _plugins: tempfile::TempDir,
}

const PLUGINS: &[&str] = &[
    "echo",
    "looping",
    "sleeper",
    "memory-hog",
    "env-probe",
    "sql-escape",
    "http-escape",
    "secret-escape",
    "panicker",
    "garbage",
];

/// One shared compile cache for the whole test binary (a debug host compiles ~1 s/plugin).
fn cache_dir() -> &'static Path {
    static CACHE: OnceLock<tempfile::TempDir> = OnceLock::new();
    CACHE
        .get_or_init(|| tempfile::tempdir().expect("tempdir"))
        .path()
}

fn shared() -> &'static Shared {
    static SHARED: OnceLock<Shared> = OnceLock::new();
    SHARED.get_or_init(|| {
        let plugins = testing::plugin_fixture_dir(PLUGINS);
        let mut reader = FakeReader::default();
        reader
            .values
            .insert("test/granted".into(), "granted-value-7f3a9c".into());
        let reader = Arc::new(reader);
        let host = PluginHost::new(
            PluginHostConfig {
                dirs: vec![plugins.path().to_path_buf()],
                cache_dir: cache_dir().to_path_buf(),
            },
            reader.clone(),
        )
        .expect("plugin host");
        for info in host.list() {
            assert!(
                info.error.is_none(),
                "{} failed to load: {:?}",
                info.name,
                info.error
            );
        }
        Shared {
            host,
            reader,
            _plugins: plugins,
        }
    })
}

async fn run(
    host: &PluginHost,
    plugin: &str,
    step: RotationStep,
    current: &str,
    config: &[(&str, &str)],
    granted: &[&str],
) -> Result<StepOutcome, StepFailure> {
    let mut req = testing::step_request(plugin, step, current);
    for (k, v) in config {
        req.config.insert((*k).into(), (*v).into());
    }
    req.granted_secrets = granted.iter().map(|s| s.to_string()).collect();
    host.run_step(req).await
}

fn crashed(r: Result<StepOutcome, StepFailure>, want: &str) -> StepFailure {
    let f = r.expect_err("the step should fail");
    assert_eq!(f.kind, StepErrorKind::PluginCrashed, "{f}");
    assert!(
        f.message.contains(want),
        "expected `{want}` in `{}`",
        f.message
    );
    f
}

#[tokio::test]
async fn echo_round_trip_and_listing() {
    let s = shared();
    assert!(s.host.has_plugin("echo"));
    assert!(!s.host.has_plugin("nope"));
    let out = run(&s.host, "echo", RotationStep::Create, "abc", &[], &[])
        .await
        .unwrap();
    assert_eq!(
        out.value.as_deref().map(String::as_str),
        Some("abc-rotated-tok-1")
    );
    let out = run(&s.host, "echo", RotationStep::Set, "abc", &[], &[])
        .await
        .unwrap();
    assert!(out.value.is_none());
    assert!(
        out.trail
            .iter()
            .any(|t| t.kind == "log" && t.detail.contains("echo: set test/secret version tok-1")),
        "{:?}",
        out.trail
    );
    let f = run(&s.host, "nope", RotationStep::Create, "abc", &[], &[])
        .await
        .unwrap_err();
    assert_eq!(f.kind, StepErrorKind::PluginNotFound);
    let names: Vec<String> = s.host.list().into_iter().map(|i| i.name).collect();
    assert_eq!(names.len(), PLUGINS.len(), "{names:?}");
}

#[tokio::test]
async fn looping_plugin_is_stopped_by_fuel() {
    let s = shared();
    let t = Instant::now();
    let r = run(&s.host, "looping", RotationStep::Create, "x", &[], &[]).await;
    crashed(r, "CPU limit (fuel 1000000000) exhausted");
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
}

#[tokio::test]
async fn memory_hog_is_stopped_at_the_memory_limit() {
    let s = shared();
    let r = run(&s.host, "memory-hog", RotationStep::Create, "x", &[], &[]).await;
    crashed(r, "memory limit of 64 MiB reached");
}

#[tokio::test]
async fn env_probe_sees_no_environment() {
    let s = shared();
    let out = run(&s.host, "env-probe", RotationStep::Create, "x", &[], &[])
        .await
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(out.value.as_deref().unwrap()).unwrap();
    assert_eq!(v["env_vars"], 0, "{v}");
    assert_eq!(v["args"], 0, "{v}");
}

#[tokio::test]
async fn sql_escape_is_denied_before_any_connection() {
    let s = shared();
    let t = Instant::now();
    let f = run(&s.host, "sql-escape", RotationStep::Create, "x", &[], &[])
        .await
        .unwrap_err();
    assert_eq!(f.kind, StepErrorKind::Denied, "{f}");
    assert!(f.message.contains("capability `sql`"), "{}", f.message);
    assert!(f.message.contains("10.255.255.1:5432"), "{}", f.message);
    assert!(
        f.message.contains("sql-escape/plugin.toml"),
        "{}",
        f.message
    );
    assert!(!f.message.contains("not-a-real"), "{}", f.message);
    assert!(
        f.trail.iter().all(|e| !e.detail.contains("connected")),
        "{:?}",
        f.trail
    );
    assert!(
        f.trail
            .iter()
            .any(|e| e.kind == "sql" && e.detail.contains("denied")),
        "{:?}",
        f.trail
    );
    // 10.255.255.1 blackholes: a connection attempt would take the full connect timeout.
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
}

#[tokio::test]
async fn http_escape_is_denied_before_any_connection() {
    let s = shared();
    let t = Instant::now();
    let f = run(&s.host, "http-escape", RotationStep::Create, "x", &[], &[])
        .await
        .unwrap_err();
    assert_eq!(f.kind, StepErrorKind::Denied, "{f}");
    assert!(f.message.contains("capability `http`"), "{}", f.message);
    assert!(f.message.contains("169.254.169.254"), "{}", f.message);
    assert!(
        f.message.contains("http-escape/plugin.toml"),
        "{}",
        f.message
    );
    assert!(
        f.trail.iter().all(|e| !e.detail.contains("->")),
        "{:?}",
        f.trail
    );
    assert!(
        f.trail
            .iter()
            .any(|e| e.kind == "http" && e.detail.contains("denied")),
        "{:?}",
        f.trail
    );
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
}

#[tokio::test]
async fn secret_escape_is_denied() {
    let s = shared();
    // Neither granted nor in the manifest.
    let f = run(
        &s.host,
        "secret-escape",
        RotationStep::Create,
        "x",
        &[],
        &[],
    )
    .await
    .unwrap_err();
    assert_eq!(f.kind, StepErrorKind::Denied, "{f}");
    assert!(f.message.contains("get-secret"), "{}", f.message);
    // Granted by the rotation config but not in the manifest.
    let f = run(
        &s.host,
        "secret-escape",
        RotationStep::Create,
        "x",
        &[("secret", "prod/other")],
        &["prod/other"],
    )
    .await
    .unwrap_err();
    assert_eq!(f.kind, StepErrorKind::Denied, "{f}");
    assert!(f.message.contains("capabilities.secrets"), "{}", f.message);
    assert!(
        f.message.contains("secret-escape/plugin.toml"),
        "{}",
        f.message
    );
    let asked: Vec<String> = s
        .reader
        .calls
        .lock()
        .unwrap()
        .iter()
        .map(|c| c.2.clone())
        .collect();
    assert!(!asked.contains(&"prod/other".to_string()), "{asked:?}");
    assert!(
        !asked.contains(&"prod/not-granted".to_string()),
        "{asked:?}"
    );
    // In the manifest but not granted.
    let f = run(
        &s.host,
        "secret-escape",
        RotationStep::Create,
        "x",
        &[("secret", "test/granted")],
        &[],
    )
    .await
    .unwrap_err();
    assert_eq!(f.kind, StepErrorKind::Denied, "{f}");
    // Both: the reader is asked and the value is redacted from what comes back.
    let f = run(
        &s.host,
        "secret-escape",
        RotationStep::Create,
        "x",
        &[("secret", "test/granted")],
        &["test/granted"],
    )
    .await
    .unwrap_err();
    assert_eq!(f.kind, StepErrorKind::Internal, "{f}");
    assert!(
        f.message.contains("escaped: read 20 bytes"),
        "{}",
        f.message
    );
    assert!(
        f.trail
            .iter()
            .any(|e| e.kind == "secret" && e.detail == "read test/granted"),
        "{:?}",
        f.trail
    );
    assert!(
        f.trail.iter().all(|e| !e.detail.contains("granted-value")),
        "{:?}",
        f.trail
    );
    let calls = s.reader.calls.lock().unwrap().clone();
    assert!(
        calls.contains(&(
            "secret-escape".into(),
            "us-east-1".into(),
            "test/granted".into()
        )),
        "{calls:?}"
    );
}

#[tokio::test]
async fn panics_and_garbage_are_plugin_crashes() {
    let s = shared();
    crashed(
        run(&s.host, "panicker", RotationStep::Create, "x", &[], &[]).await,
        "plugin panicked (unreachable)",
    );
    crashed(
        run(&s.host, "garbage", RotationStep::Create, "x", &[], &[]).await,
        "returned an invalid value",
    );
    let f = run(&s.host, "garbage", RotationStep::Set, "x", &[], &[])
        .await
        .unwrap_err();
    assert_eq!(f.kind, StepErrorKind::Internal);
    assert!(f.message.len() < 4096, "{} bytes", f.message.len());
    // The host stays usable after traps (fresh Store per step).
    run(&s.host, "echo", RotationStep::Create, "abc", &[], &[])
        .await
        .unwrap();
}

/// A CPU loop with unlimited fuel and a sleeping loop are both stopped by the wall clock,
/// while another plugin on the same host completes promptly. The test runtime is
/// current-thread: guest code must not run on it.
#[tokio::test(flavor = "current_thread")]
async fn wall_clock_limit_stops_loops_without_stalling_other_steps() {
    let plugins = testing::plugin_fixture_dir(&["looping", "sleeper", "echo"]);
    testing::set_limits(
        &plugins.path().join("looping"),
        Some(1_000_000_000_000),
        None,
        Some(2),
    );
    let host = Arc::new(host_over(plugins.path()));
    let t = Instant::now();
    let spin = {
        let host = host.clone();
        tokio::spawn(
            async move { run(&host, "looping", RotationStep::Create, "x", &[], &[]).await },
        )
    };
    let sleep = {
        let host = host.clone();
        tokio::spawn(async move { run(&host, "sleeper", RotationStep::Set, "x", &[], &[]).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let e = Instant::now();
    run(&host, "echo", RotationStep::Create, "abc", &[], &[])
        .await
        .unwrap();
    assert!(
        e.elapsed() < Duration::from_millis(1000),
        "echo took {:?}",
        e.elapsed()
    );
    // The caller's runtime keeps its timers.
    let tick = Instant::now();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        tick.elapsed() < Duration::from_millis(500),
        "{:?}",
        tick.elapsed()
    );

    crashed(spin.await.unwrap(), "wall-clock limit of 2 s reached");
    crashed(sleep.await.unwrap(), "wall-clock limit of 2 s reached");
    let took = t.elapsed();
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_millis(3500),
        "{took:?}"
    );
}

fn install_src(name: &str) -> tempfile::TempDir {
    testing::plugin_fixture_dir(&[name])
}

#[test]
fn forbidden_imports_are_refused_at_install_and_load() {
    let dest = tempfile::tempdir().unwrap();
    let host = host_over(dest.path());
    for (name, iface) in [
        ("fs-escape", "wasi:filesystem/"),
        ("socket-escape", "wasi:sockets/"),
    ] {
        let src = install_src(name);
        let err = host
            .install(&src.path().join(name), dest.path())
            .unwrap_err();
        match &err {
            PluginError::ForbiddenImport {
                interface,
                manifest,
            } => {
                assert!(interface.starts_with(iface), "{interface}");
                assert!(
                    manifest.ends_with(format!("{name}/plugin.toml")),
                    "{}",
                    manifest.display()
                );
            }
            other => panic!("{name}: expected ForbiddenImport, got {other}"),
        }
        let msg = err.to_string();
        assert!(msg.contains(iface) && msg.contains("plugin.toml"), "{msg}");
        assert!(!dest.path().join(name).exists());
        assert!(!host.has_plugin(name));
    }
    // A good one installs, loads and shows up; a second install is refused.
    let src = install_src("echo");
    let info = host.install(&src.path().join("echo"), dest.path()).unwrap();
    assert_eq!(info.name, "echo");
    assert!(info.error.is_none());
    assert!(dest.path().join("echo/plugin.toml").is_file());
    assert!(dest.path().join("echo/coffer_test_echo.wasm").is_file());
    assert!(host.has_plugin("echo"));
    assert!(matches!(
        host.install(&src.path().join("echo"), dest.path()),
        Err(PluginError::AlreadyInstalled { .. })
    ));

    // Found by a scan: listed with its error, not runnable.
    let scanned = testing::plugin_fixture_dir(&["fs-escape", "echo"]);
    let host = host_over(scanned.path());
    let list = host.list();
    let fs = list.iter().find(|i| i.name == "fs-escape").expect("listed");
    assert!(
        fs.error
            .as_deref()
            .unwrap_or("")
            .contains("wasi:filesystem/"),
        "{fs:?}"
    );
    assert!(!host.has_plugin("fs-escape"));
    assert!(host.has_plugin("echo"));
}

#[test]
fn broken_manifests_are_listed_with_their_error() {
    let dir = testing::plugin_fixture_dir(&["echo"]);
    let bad = dir.path().join("bad");
    std::fs::create_dir_all(&bad).unwrap();
    std::fs::write(
        bad.join("plugin.toml"),
        "name = \"bad\"\nversion = \"1\"\nwasm = \"bad.wasm\"\nwit = \"9.0.0\"\n",
    )
    .unwrap();
    let host = host_over(dir.path());
    let list = host.list();
    let b = list.iter().find(|i| i.name == "bad").expect("listed");
    let err = b.error.as_deref().unwrap();
    assert!(
        err.contains("bad/plugin.toml") && err.contains("coffer:rotator@9.0.0"),
        "{err}"
    );
    assert!(host.has_plugin("echo"));
    assert!(!host.has_plugin("bad"));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let f = rt
        .block_on(run(&host, "bad", RotationStep::Create, "x", &[], &[]))
        .unwrap_err();
    assert_eq!(f.kind, StepErrorKind::PluginNotFound);
    assert!(f.message.contains("failed to load"), "{}", f.message);
}

#[test]
fn compile_cache_is_written_and_reused() {
    let plugins = testing::plugin_fixture_dir(&["echo"]);
    let cache = tempfile::tempdir().unwrap();
    let config = PluginHostConfig {
        dirs: vec![plugins.path().to_path_buf()],
        cache_dir: cache.path().to_path_buf(),
    };
    let cwasm = || -> Vec<std::path::PathBuf> {
        std::fs::read_dir(cache.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "cwasm"))
            .collect()
    };
    let t = Instant::now();
    let first = PluginHost::new(config.clone(), Arc::new(FakeReader::default())).unwrap();
    let cold = t.elapsed();
    assert_eq!(first.cache_stats(), (0, 1));
    assert!(!first.list()[0].compiled_from_cache);
    let files = cwasm();
    assert_eq!(files.len(), 1, "{files:?}");
    let file_name = files[0].file_name().unwrap().to_string_lossy().into_owned();
    let wasm = std::fs::read(plugins.path().join("echo/coffer_test_echo.wasm")).unwrap();
    use sha2::Digest;
    assert!(
        file_name.starts_with(&hex::encode(sha2::Sha256::digest(&wasm))),
        "{file_name}"
    );
    drop(first);

    let t = Instant::now();
    let second = PluginHost::new(config.clone(), Arc::new(FakeReader::default())).unwrap();
    let warm = t.elapsed();
    assert_eq!(second.cache_stats(), (1, 0));
    assert!(second.list()[0].compiled_from_cache);
    assert!(warm < cold, "warm {warm:?} vs cold {cold:?}");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run(&second, "echo", RotationStep::Create, "abc", &[], &[]))
        .unwrap();
    drop(second);

    // A damaged cache entry is ignored and rewritten.
    std::fs::write(&files[0], b"not a cwasm").unwrap();
    let third = PluginHost::new(config, Arc::new(FakeReader::default())).unwrap();
    assert_eq!(third.cache_stats(), (0, 1));
    assert!(third.list()[0].error.is_none());
    rt.block_on(run(&third, "echo", RotationStep::Create, "abc", &[], &[]))
        .unwrap();
    assert!(std::fs::read(&files[0]).unwrap().len() > 1000);
}

/// A host over the plugins in `dir`, with the shared compile cache and a reader that
/// grants nothing.
fn host_over(dir: &Path) -> PluginHost {
    PluginHost::new(
        PluginHostConfig {
            dirs: vec![dir.to_path_buf()],
            cache_dir: cache_dir().to_path_buf(),
        },
        Arc::new(FakeReader::default()),
    )
    .expect("plugin host")
}

fn allow_in_manifest(plugin_dir: &Path, from: &str, to: &str) {
    let p = plugin_dir.join("plugin.toml");
    let text = std::fs::read_to_string(&p).unwrap();
    assert!(text.contains(from), "{text}");
    std::fs::write(&p, text.replace(from, to)).unwrap();
}

/// Serves one canned HTTP response per connection on 127.0.0.1.
async fn http_server(body_len: usize) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = sock.read(&mut buf).await;
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {body_len}\r\nconnection: close\r\n\r\n"
                );
                let _ = sock.write_all(head.as_bytes()).await;
                let _ = sock.write_all(&vec![b'a'; body_len]).await;
            });
        }
    });
    port
}

/// The allowed paths go through the real drivers: connect errors are classified, the
/// trail shows the destination without parameters, query strings or passwords.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allowed_destinations_reach_the_real_drivers() {
    let plugins = testing::plugin_fixture_dir(&["sql-escape", "http-escape"]);
    allow_in_manifest(
        &plugins.path().join("sql-escape"),
        "127.0.0.1:5432",
        "127.0.0.1:1",
    );
    let host = host_over(plugins.path());

    // Nothing listens on port 1: a real connect attempt, refused.
    let f = run(
        &host,
        "sql-escape",
        RotationStep::Create,
        "x",
        &[("target", "127.0.0.1:1")],
        &[],
    )
    .await
    .unwrap_err();
    assert_eq!(f.kind, StepErrorKind::Unreachable, "{f}");
    assert!(!f.message.contains("not-a-real-password"), "{}", f.message);
    assert!(
        f.trail
            .iter()
            .any(|e| e.kind == "sql"
                && e.detail == "postgres 127.0.0.1:1 user=postgres: connect error"),
        "{:?}",
        f.trail
    );

    let port = http_server(5).await;
    let url = format!("http://127.0.0.1:{port}/v1/keys?api_key=s3cr3t");
    let f = run(
        &host,
        "http-escape",
        RotationStep::Create,
        "x",
        &[("url", url.as_str())],
        &[],
    )
    .await
    .unwrap_err();
    assert!(f.message.contains("escaped: HTTP 200"), "{f}");
    let want = format!("GET http://127.0.0.1:{port}/v1/keys?<redacted> -> 200");
    assert!(
        f.trail.iter().any(|e| e.kind == "http" && e.detail == want),
        "{:?}",
        f.trail
    );
    assert!(
        f.trail.iter().all(|e| !e.detail.contains("s3cr3t")),
        "{:?}",
        f.trail
    );

    let big = http_server(2 << 20).await;
    let url = format!("http://127.0.0.1:{big}/");
    let f = run(
        &host,
        "http-escape",
        RotationStep::Create,
        "x",
        &[("url", url.as_str())],
        &[],
    )
    .await
    .unwrap_err();
    assert_eq!(f.kind, StepErrorKind::TargetRefused, "{f}");
    assert!(
        f.trail
            .iter()
            .any(|e| e.detail.ends_with("-> response too large")),
        "{:?}",
        f.trail
    );
}

/// A wildcard manifest allows the name, but the post-DNS block-list still refuses the
/// metadata address, before any connection (169.254.169.254 would hang or answer).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocked_addresses_are_denied_even_under_a_wildcard_manifest() {
    let plugins = testing::plugin_fixture_dir(&["sql-escape", "http-escape"]);
    allow_in_manifest(
        &plugins.path().join("http-escape"),
        "\"http://127.0.0.1:*\"",
        "\"http://*:*\"",
    );
    allow_in_manifest(
        &plugins.path().join("sql-escape"),
        "\"127.0.0.1:5432\"",
        "\"*:*\"",
    );
    let host = host_over(plugins.path());

    let t = Instant::now();
    let f = run(&host, "http-escape", RotationStep::Create, "x", &[], &[])
        .await
        .unwrap_err();
    assert_eq!(f.kind, StepErrorKind::Denied, "{f}");
    assert!(f.message.contains("capability `http`"), "{}", f.message);
    assert!(f.message.contains("169.254.169.254"), "{}", f.message);
    assert!(f.message.contains("blocked"), "{}", f.message);
    assert!(
        f.trail.iter().all(|e| !e.detail.contains("->")),
        "{:?}",
        f.trail
    );
    assert!(
        f.trail.iter().any(|e| e.kind == "http"
            && e.detail.contains("denied")
            && e.detail.contains("blocked")),
        "{:?}",
        f.trail
    );
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());

    let t = Instant::now();
    let f = run(
        &host,
        "sql-escape",
        RotationStep::Create,
        "x",
        &[("target", "169.254.169.254:5432")],
        &[],
    )
    .await
    .unwrap_err();
    assert_eq!(f.kind, StepErrorKind::Denied, "{f}");
    assert!(f.message.contains("capability `sql`"), "{}", f.message);
    assert!(f.message.contains("169.254.169.254"), "{}", f.message);
    assert!(f.message.contains("blocked"), "{}", f.message);
    assert!(
        f.trail.iter().any(|e| e.kind == "sql"
            && e.detail.contains("denied")
            && e.detail.contains("blocked")),
        "{:?}",
        f.trail
    );
    assert!(
        f.trail.iter().all(|e| !e.detail.contains("connected")),
        "{:?}",
        f.trail
    );
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
}
