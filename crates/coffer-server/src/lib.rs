//! Coffer's HTTP front door: the axum server with the native REST API (`/v1`),
//! bearer-token authentication, the Cedar authorization seam on every route, Prometheus
//! metrics, request ids, body limits, the generated OpenAPI document, the audit log (every
//! `/v1` request recorded before its response is released), dev mode and graceful
//! shutdown.
//!
//! Handlers only translate shapes, authorize and call `coffer-core`; no business rule
//! lives here. This crate knows no wasmtime.
//!
//! ```no_run
//! # async fn run() -> anyhow::Result<()> {
//! let config = coffer_server::Config { dev: true, ..Default::default() };
//! coffer_server::serve(config).await
//! # }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod audit;
mod auth;
mod body;
pub mod config;
mod error;
mod metrics;
mod policy;
mod rest;
mod rotation;
mod routes;
mod state;

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use coffer_core::{Coffer, CoreConfig};
use coffer_crypto::{KeyFileProvider, MemoryRootKey, RootKeyProvider};
use coffer_policy::PolicyEngine;
use coffer_store::{SledStore, Store};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

pub use audit::{verify_data_dir as verify_audit_data_dir, AuditError, AuditLog};
pub use config::Config;
pub use policy::ReloadError;
pub use rotation::{
    plugin_secret_reader, start_rotation_scheduler, RotationHost, RotationSetupError,
    MAX_CONCURRENT_ROTATIONS,
};
pub use routes::RouteDoc;
pub use state::AppState;

use error::ApiError;

/// The fixed admin token of dev mode (printed at start; dev mode only binds loopback).
pub const DEV_ROOT_TOKEN: &str = "cft_dev_coffer-dev-root-token";

/// Every documented route (method, path, operation), for tests and tooling.
pub fn route_docs() -> Vec<RouteDoc> {
    rest::table().finish().1
}

/// The OpenAPI document as JSON.
pub fn openapi_json() -> String {
    routes::openapi(&route_docs())
        .to_pretty_json()
        .unwrap_or_default()
}

/// Builds the full axum application around a state; every `/v1` request is recorded in
/// `audit` before its response is released.
pub fn app(state: Arc<AppState>, max_body_bytes: usize, audit: AuditLog) -> Router {
    // Rotation steps are recorded through the same writer as requests.
    state.rotation.set_audit(audit.clone());
    let (router, _) = rest::table().finish();
    let request_id = HeaderName::from_static(coffer_api::REQUEST_ID_HEADER);
    router
        .fallback(|req: Request<axum::body::Body>| async move {
            ApiError::no_route(req.method().as_str(), req.uri().path())
        })
        .method_not_allowed_fallback(|req: Request<axum::body::Body>| async move {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "MethodNotAllowed",
                format!("{} is not allowed on {}", req.method(), req.uri().path()),
            )
        })
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::track,
        ))
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(
            TraceLayer::new_for_http().make_span_with(|req: &Request<axum::body::Body>| {
                let id = req
                    .headers()
                    .get(coffer_api::REQUEST_ID_HEADER)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("-");
                tracing::info_span!(
                    "request",
                    method = %req.method(),
                    path = %req.uri().path(),
                    request_id = %id,
                    principal = tracing::field::Empty,
                )
            }),
        )
        .layer(CatchPanicLayer::custom(
            |_: Box<dyn std::any::Any + Send>| {
                ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalError",
                "internal error; the request id in x-request-id identifies it in the server log",
            )
            .into_response()
            },
        ))
        .layer(axum::middleware::from_fn_with_state(audit, audit::record))
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
        .with_state(state)
}

fn init_tracing(config: &Config) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_new(&config.log_level).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if config.log_format == "json" {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

fn write_private_file(path: &Path, contents: &str) -> anyhow::Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    f.write_all(contents.as_bytes())?;
    f.sync_all()?;
    Ok(())
}

/// The policy set to start with, and the directory it came from (`None`: built-in),
/// which later reloads read again.
fn load_policy(config: &Config) -> anyhow::Result<(PolicyEngine, Option<PathBuf>)> {
    let dir: Option<PathBuf> = match &config.policy_dir {
        Some(d) => Some(d.clone()),
        None if Path::new("policies/schema.cedarschema").exists() => {
            Some(PathBuf::from("policies"))
        }
        None => None,
    };
    let engine = match &dir {
        Some(d) => PolicyEngine::load_dir(d)
            .with_context(|| format!("invalid policy set in {}", d.display()))?,
        None => PolicyEngine::builtin().context("built-in policy set")?,
    };
    tracing::info!(
        source = engine.source(),
        hash = engine.hash(),
        "policy set loaded"
    );
    Ok((engine, dir))
}

/// Builds the rotation runner once the server's state exists, from the
/// [`PluginSecretReader`](coffer_core::rotation_api::PluginSecretReader) the runner hands
/// to plugins for `get-secret` (see [`serve_with_rotation`]).
pub type RotationRunnerFactory = Box<
    dyn FnOnce(
            Arc<dyn coffer_core::rotation_api::PluginSecretReader>,
        ) -> anyhow::Result<Arc<dyn coffer_core::rotation_api::RotationRunner>>
        + Send,
>;

/// Runs the server until SIGTERM or Ctrl-C, then finishes in-flight requests (up to
/// `shutdown_grace_secs`) and flushes the store. Rotation is unavailable (no plugins):
/// use [`serve_with_rotation`] to install a runner.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    serve_inner(config, None).await
}

/// [`serve`], with secret rotation: `make_runner` receives the reader that plugins use
/// to read other secrets (policy-checked as `Coffer::Plugin::"<name>"`) and returns the
/// runner (the wasmtime host). The rotation scheduler runs every `rotation_tick_ms`.
pub async fn serve_with_rotation(
    config: Config,
    make_runner: RotationRunnerFactory,
) -> anyhow::Result<()> {
    serve_inner(config, Some(make_runner)).await
}

async fn serve_inner(
    config: Config,
    make_runner: Option<RotationRunnerFactory>,
) -> anyhow::Result<()> {
    init_tracing(&config);
    config.validate()?;
    for var in &config.unknown_env {
        tracing::warn!(%var, "ignoring an environment variable that names no server setting (typo?)");
    }
    let (store, root): (Arc<SledStore>, Arc<dyn RootKeyProvider>) = if config.dev {
        (
            Arc::new(SledStore::temporary()?),
            Arc::new(MemoryRootKey::generate()),
        )
    } else {
        std::fs::create_dir_all(&config.data_dir).with_context(|| {
            format!("cannot create data directory {}", config.data_dir.display())
        })?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let _ =
                std::fs::set_permissions(&config.data_dir, std::fs::Permissions::from_mode(0o700));
        }
        let store = Arc::new(
            SledStore::open_with_cache(
                &config.data_dir,
                config.store_cache_mb.max(1) * 1024 * 1024,
            )
            .with_context(|| format!("cannot open the store in {}", config.data_dir.display()))?,
        );
        let key_path = config
            .root_key_file
            .clone()
            .unwrap_or_else(|| config.data_dir.join("root.key"));
        let (provider, created) = KeyFileProvider::open_or_create(&key_path)?;
        if created {
            tracing::warn!(path = %key_path.display(), "generated a new root key file; back it up: without it the data cannot be decrypted");
        }
        (store, Arc::new(provider))
    };
    tracing::info!(root_key = %root.describe(), "root key loaded");
    {
        use coffer_store::Store as _;
        let cut = store.audit_log().recovered_bytes();
        if cut > 0 {
            tracing::warn!(
                bytes = cut,
                "cut off a partial audit record left by a crash (it was never acknowledged)"
            );
        }
    }
    let crash_after = config
        .test_crash_after_step
        .as_deref()
        .and_then(coffer_core::rotation_api::RotationStep::parse);
    if let Some(step) = crash_after {
        tracing::warn!(%step, "COFFER_TEST_CRASH_AFTER_STEP is set: THIS PROCESS WILL ABORT after the progress of every rotation's {step} step is stored. Test-only fault injection; never set it in production.");
    }
    let core = Arc::new(Coffer::new(
        store.clone(),
        root,
        CoreConfig {
            regions: config.regions.clone(),
            max_versions: config.max_versions,
            rotation_crash_after: crash_after,
            ..CoreConfig::default()
        },
    )?);

    let dev_token = if config.dev {
        core.install_fixed_token(DEV_ROOT_TOKEN, "admin").await?;
        Some(DEV_ROOT_TOKEN.to_string())
    } else {
        if let Some(token) = core.bootstrap_admin_token().await? {
            let path = config.data_dir.join("admin-token");
            write_private_file(&path, &format!("{token}\n"))?;
            tracing::info!(path = %path.display(), "initial admin token written (mode 0600); read it once and keep it safe");
        }
        None
    };

    let (policy, policy_dir) = load_policy(&config)?;
    let mut state =
        AppState::new(core.clone(), policy, dev_token, openapi_json()).with_policy_dir(policy_dir);
    if !config.dev {
        state = state.with_node_id(node_id(&config.data_dir)?);
    }
    let state = Arc::new(state);
    policy::reload_on_sighup(state.clone());
    if let Some(make) = make_runner {
        let runner =
            make(plugin_secret_reader(&state)).context("cannot start the rotation runner")?;
        state.set_rotation_runner(runner)?;
    }
    let rotations = start_rotation_scheduler(
        state.clone(),
        Duration::from_millis(config.rotation_tick_ms.max(10)),
    );
    let retention = (config.audit_retention_days > 0)
        .then(|| Duration::from_secs(u64::from(config.audit_retention_days) * 86_400));
    let audit = AuditLog::start(core.clone(), config.audit_file.clone(), retention)
        .context("cannot start the audit log")?;
    let app = app(state, config.max_body_bytes, audit);

    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let addr = listener.local_addr()?;
    if config.dev {
        println!("Coffer dev mode: all state is in memory and is lost on exit.");
        println!("  export COFFER_ADDR=http://{addr}");
        println!("  export COFFER_TOKEN={DEV_ROOT_TOKEN}");
    }
    println!("listening on http://{addr}");
    let _ = std::io::stdout().flush();
    tracing::info!(%addr, dev = config.dev, "coffer listening");

    let hk_core = core.clone();
    let hk_every = Duration::from_secs(config.housekeeping_interval_secs.max(1));
    let housekeeping = tokio::spawn(async move {
        let mut tick = tokio::time::interval(hk_every);
        loop {
            tick.tick().await;
            match hk_core.housekeeping().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(changed = n, "housekeeping"),
                Err(e) => tracing::error!(error = %e, "housekeeping failed"),
            }
        }
    });

    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async {
        let _ = stop_rx.await;
    });
    let mut handle = tokio::spawn(async move { server.await });
    tokio::select! {
        res = &mut handle => {
            housekeeping.abort();
            rotations.abort();
            res??;
            return Ok(());
        }
        _ = shutdown_signal() => {}
    }
    tracing::info!("shutting down: finishing in-flight requests");
    let _ = stop_tx.send(());
    match tokio::time::timeout(Duration::from_secs(config.shutdown_grace_secs), handle).await {
        Ok(res) => res??,
        Err(_) => tracing::warn!("in-flight requests did not finish within the grace period"),
    }
    housekeeping.abort();
    rotations.abort();
    // Pin the audit log's end, so that cutting records off it shows in `audit verify`.
    if let Err(e) = core.checkpoint_audit().await {
        tracing::error!(error = %e, "audit checkpoint not written at shutdown");
    }
    store.sync().await?;
    tracing::info!("stopped");
    Ok(())
}

/// The node id kept in `<data_dir>/node-id` (created on first start), so a restarted
/// server recognizes the rotation leases of its previous process.
fn node_id(data_dir: &Path) -> anyhow::Result<String> {
    let path = data_dir.join("node-id");
    match std::fs::read_to_string(&path) {
        Ok(id) if !id.trim().is_empty() => Ok(id.trim().to_string()),
        _ => {
            let id = format!("node-{}", uuid::Uuid::new_v4().simple());
            write_private_file(&path, &format!("{id}\n"))?;
            Ok(id)
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

/// Used by the metrics fallback to type-check handler responses.
#[allow(dead_code)]
fn _assert_response(_: Response) {}
