//! [`PluginHost`]: loads plugins and runs rotation steps in sandboxed instances.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use coffer_core::rotation_api::{
    PluginSecretReader, RotationRunner, RotationStep, StepErrorKind, StepFailure, StepOutcome,
    StepRequest, TrailEntry,
};
use tokio::sync::Semaphore;
use wasmtime::{Store, Trap, UpdateDeadline};
use zeroize::{Zeroize, Zeroizing};

use crate::bindings::coffer::rotator::types::{RotationError, StepInput, Version};
use crate::bindings::RotatorPre;
use crate::caps::host::GUEST_TARGET;
use crate::engine::{error_chain, CompileSource, PluginEngine, MAX_CONCURRENT_STEPS};
use crate::error::PluginError;
use crate::manifest::{Limits, Manifest, MANIFEST_FILE};
use crate::redact::{truncate, Redactor};
use crate::state::{StepCtx, StoreState};

/// Largest value `create-secret` may return.
pub const MAX_SECRET_VALUE: usize = 65536;
/// Slack of the outer backstop timeout over the step's own wall-clock limit.
pub const BACKSTOP_SLACK: Duration = Duration::from_secs(1);

/// Where plugins live and where compiled code is cached.
#[derive(Debug, Clone)]
pub struct PluginHostConfig {
    /// Directories scanned for `<dir>/<name>/plugin.toml`.
    pub dirs: Vec<PathBuf>,
    /// Private directory for `.cwasm` files written by this host.
    pub cache_dir: PathBuf,
}

/// What `list` shows about a plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginInfo {
    /// Manifest name (the directory name if the manifest could not be read).
    pub name: String,
    /// Manifest version (empty if broken).
    pub version: String,
    /// Manifest description.
    pub description: String,
    /// `coffer:rotator` version it was built against.
    pub wit: String,
    /// The plugin's directory.
    pub dir: PathBuf,
    /// One-line summary of its capabilities.
    pub capabilities: String,
    /// Why it is not loaded, if it is not.
    pub error: Option<String>,
    /// Whether the compiled code came from the compile cache.
    pub compiled_from_cache: bool,
}

struct LoadedPlugin {
    manifest: Arc<Manifest>,
    pre: RotatorPre<StoreState>,
}

struct Slot {
    info: PluginInfo,
    loaded: Option<Arc<LoadedPlugin>>,
}

struct Inner {
    engine: PluginEngine,
    plugins: RwLock<BTreeMap<String, Slot>>,
    reader: Arc<dyn PluginSecretReader>,
    http: reqwest::Client,
    permits: Arc<Semaphore>,
}

/// Loads rotator plugins and runs their steps. Implements [`RotationRunner`].
///
/// Guest code runs on a runtime owned by the host (2 worker threads named
/// `coffer-plugin`), so a misbehaving plugin never occupies the caller's runtime.
pub struct PluginHost {
    inner: Arc<Inner>,
    rt: Option<tokio::runtime::Runtime>,
}

impl std::fmt::Debug for PluginHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginHost")
            .field("plugins", &self.list())
            .finish_non_exhaustive()
    }
}

impl Drop for PluginHost {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            // Never blocks, so dropping the host inside an async context is fine.
            rt.shutdown_background();
        }
    }
}

fn broken_info(name: String, dir: &Path, error: &PluginError) -> PluginInfo {
    PluginInfo {
        name,
        version: String::new(),
        description: String::new(),
        wit: String::new(),
        dir: dir.to_path_buf(),
        capabilities: String::new(),
        error: Some(error.to_string()),
        compiled_from_cache: false,
    }
}

fn info_of(m: &Manifest, source: CompileSource) -> PluginInfo {
    PluginInfo {
        name: m.name.clone(),
        version: m.version.clone(),
        description: m.description.clone(),
        wit: m.wit.clone(),
        dir: m.dir().to_path_buf(),
        capabilities: m.capabilities_summary(),
        error: None,
        compiled_from_cache: source == CompileSource::Cache,
    }
}

impl PluginHost {
    /// Creates the engine and the plugin runtime, then loads every plugin found in
    /// `config.dirs`. A plugin that fails to load is logged, skipped, and listed with its
    /// error by [`PluginHost::list`]. Compiling is CPU work: call this from a blocking
    /// context (e.g. `spawn_blocking`) when inside an async runtime.
    pub fn new(
        config: PluginHostConfig,
        reader: Arc<dyn PluginSecretReader>,
    ) -> Result<Self, PluginError> {
        std::fs::create_dir_all(&config.cache_dir)
            .map_err(|e| PluginError::io(&config.cache_dir, e))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let _ =
                std::fs::set_permissions(&config.cache_dir, std::fs::Permissions::from_mode(0o700));
        }
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("coffer-plugin")
            .enable_all()
            .build()
            .map_err(|e| PluginError::Engine(format!("cannot start the plugin runtime: {e}")))?;
        let engine = PluginEngine::new(config.cache_dir.clone())?;
        let host = Self {
            inner: Arc::new(Inner {
                engine,
                plugins: RwLock::new(BTreeMap::new()),
                reader,
                http: crate::caps::http::client(),
                permits: Arc::new(Semaphore::new(MAX_CONCURRENT_STEPS as usize)),
            }),
            rt: Some(rt),
        };
        for dir in &config.dirs {
            host.scan(dir);
        }
        Ok(host)
    }

    fn scan(&self, dir: &Path) {
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(dir = %dir.display(), error = %e, "cannot read plugin directory");
                return;
            }
        };
        let mut dirs: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.join(MANIFEST_FILE).is_file())
            .collect();
        dirs.sort();
        for plugin_dir in dirs {
            let manifest_path = plugin_dir.join(MANIFEST_FILE);
            let fallback_name = plugin_dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            match self.load(&manifest_path) {
                Ok((loaded, info)) => {
                    let mut map = self.write_plugins();
                    if let Some(existing) = map.get(&info.name).filter(|s| s.loaded.is_some()) {
                        let err = PluginError::Manifest {
                            path: manifest_path.clone(),
                            message: format!(
                                "a plugin named `{}` is already loaded from {}",
                                info.name,
                                existing.info.dir.display()
                            ),
                        };
                        tracing::error!(error = %err, "skipping plugin");
                        let key = format!("{}@{}", info.name, plugin_dir.display());
                        map.insert(
                            key,
                            Slot {
                                info: broken_info(info.name.clone(), &plugin_dir, &err),
                                loaded: None,
                            },
                        );
                        continue;
                    }
                    tracing::info!(
                        plugin = %info.name,
                        version = %info.version,
                        dir = %plugin_dir.display(),
                        cached = info.compiled_from_cache,
                        "loaded rotator plugin"
                    );
                    map.insert(
                        info.name.clone(),
                        Slot {
                            info,
                            loaded: Some(Arc::new(loaded)),
                        },
                    );
                }
                Err(err) => {
                    tracing::error!(dir = %plugin_dir.display(), error = %err, "skipping broken plugin");
                    let mut map = self.write_plugins();
                    let key = if map.contains_key(&fallback_name) {
                        format!("{fallback_name}@{}", plugin_dir.display())
                    } else {
                        fallback_name.clone()
                    };
                    map.insert(
                        key,
                        Slot {
                            info: broken_info(fallback_name, &plugin_dir, &err),
                            loaded: None,
                        },
                    );
                }
            }
        }
    }

    fn write_plugins(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, Slot>> {
        self.inner
            .plugins
            .write()
            .unwrap_or_else(|p| p.into_inner())
    }

    fn read_plugins(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Slot>> {
        self.inner.plugins.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Parses, compiles (or loads from cache), import-checks and pre-instantiates one plugin.
    fn load(&self, manifest_path: &Path) -> Result<(LoadedPlugin, PluginInfo), PluginError> {
        let manifest = Manifest::load(manifest_path)?;
        let wasm = std::fs::read(&manifest.wasm_path).map_err(|e| PluginError::Manifest {
            path: manifest_path.to_path_buf(),
            message: format!(
                "cannot read wasm = \"{}\" ({}): {e}",
                manifest.wasm,
                manifest.wasm_path.display()
            ),
        })?;
        let engine = &self.inner.engine;
        let (component, source) = engine.load_component(&wasm, manifest_path)?;
        engine.check_imports(&component, manifest_path)?;
        let pre = engine
            .linker
            .instantiate_pre(&component)
            .and_then(RotatorPre::new)
            .map_err(|e| PluginError::Component {
                manifest: manifest_path.to_path_buf(),
                message: format!(
                    "the component does not implement the coffer:rotator@{} world: {}",
                    manifest.wit,
                    error_chain(&e)
                ),
            })?;
        let info = info_of(&manifest, source);
        Ok((
            LoadedPlugin {
                manifest: Arc::new(manifest),
                pre,
            },
            info,
        ))
    }

    /// Every plugin found, loaded or not, sorted by name.
    pub fn list(&self) -> Vec<PluginInfo> {
        self.read_plugins()
            .values()
            .map(|s| s.info.clone())
            .collect()
    }

    /// Compile-cache hits and misses since the host started.
    pub fn cache_stats(&self) -> (u64, u64) {
        use std::sync::atomic::Ordering;
        let e = &self.inner.engine;
        (
            e.cache_hits.load(Ordering::Relaxed),
            e.cache_misses.load(Ordering::Relaxed),
        )
    }

    /// Whether instances come from wasmtime's pooling allocator.
    pub fn pooling_allocator(&self) -> bool {
        self.inner.engine.pooling
    }

    /// Validates the plugin in `src_dir` (manifest, component, imports), copies its
    /// `plugin.toml` and wasm file into `dest_root/<name>/`, and loads it.
    pub fn install(&self, src_dir: &Path, dest_root: &Path) -> Result<PluginInfo, PluginError> {
        let src_manifest = src_dir.join(MANIFEST_FILE);
        // Full validation before anything is copied.
        let (_, checked) = self.load(&src_manifest)?;
        let manifest = Manifest::load(&src_manifest)?;
        let dest = dest_root.join(&manifest.name);
        if dest.exists() || self.has_loaded(&manifest.name) {
            return Err(PluginError::AlreadyInstalled {
                name: manifest.name.clone(),
                dir: self
                    .read_plugins()
                    .get(&manifest.name)
                    .map(|s| s.info.dir.clone())
                    .unwrap_or(dest),
            });
        }
        std::fs::create_dir_all(dest_root).map_err(|e| PluginError::io(dest_root, e))?;
        let staging = dest_root.join(format!(
            ".installing-{}-{}",
            manifest.name,
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&staging);
        let copy = || -> Result<(), PluginError> {
            std::fs::create_dir_all(&staging).map_err(|e| PluginError::io(&staging, e))?;
            let to = staging.join(MANIFEST_FILE);
            std::fs::copy(&src_manifest, &to).map_err(|e| PluginError::io(&to, e))?;
            let wasm_to = staging.join(&manifest.wasm);
            if let Some(parent) = wasm_to.parent() {
                std::fs::create_dir_all(parent).map_err(|e| PluginError::io(parent, e))?;
            }
            std::fs::copy(&manifest.wasm_path, &wasm_to)
                .map_err(|e| PluginError::io(&wasm_to, e))?;
            std::fs::rename(&staging, &dest).map_err(|e| PluginError::io(&dest, e))
        };
        if let Err(e) = copy() {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(e);
        }
        let (loaded, mut info) = self.load(&dest.join(MANIFEST_FILE))?;
        info.compiled_from_cache = checked.compiled_from_cache && info.compiled_from_cache;
        tracing::info!(plugin = %info.name, dir = %dest.display(), "installed rotator plugin");
        self.write_plugins().insert(
            info.name.clone(),
            Slot {
                info: info.clone(),
                loaded: Some(Arc::new(loaded)),
            },
        );
        Ok(info)
    }

    fn has_loaded(&self, name: &str) -> bool {
        self.read_plugins()
            .get(name)
            .is_some_and(|s| s.loaded.is_some())
    }

    fn lookup(&self, name: &str) -> Result<Arc<LoadedPlugin>, String> {
        match self.read_plugins().get(name) {
            Some(Slot {
                loaded: Some(p), ..
            }) => Ok(p.clone()),
            Some(Slot { info, .. }) => Err(format!(
                "plugin `{name}` is installed but failed to load: {}",
                info.error.as_deref().unwrap_or("unknown error")
            )),
            None => Err(format!("no plugin named `{name}` is installed")),
        }
    }
}

fn failure(kind: StepErrorKind, message: impl Into<String>, trail: Vec<TrailEntry>) -> StepFailure {
    StepFailure {
        kind,
        message: message.into(),
        trail,
    }
}

#[async_trait::async_trait]
impl RotationRunner for PluginHost {
    fn has_plugin(&self, name: &str) -> bool {
        self.has_loaded(name)
    }

    async fn run_step(&self, req: StepRequest) -> Result<StepOutcome, StepFailure> {
        let plugin = self
            .lookup(&req.plugin)
            .map_err(|m| failure(StepErrorKind::PluginNotFound, m, Vec::new()))?;
        let limit = Duration::from_secs(plugin.manifest.limits.step_timeout_secs);
        let Some(rt) = self.rt.as_ref() else {
            return Err(failure(
                StepErrorKind::Internal,
                "plugin runtime is shut down",
                Vec::new(),
            ));
        };
        let permit = self
            .inner
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| {
                failure(
                    StepErrorKind::Internal,
                    "plugin host is shutting down",
                    Vec::new(),
                )
            })?;
        let inner = self.inner.clone();
        let task = rt.spawn(async move {
            let r = execute(&inner, plugin, req).await;
            drop(permit);
            r
        });
        let abort = task.abort_handle();
        match tokio::time::timeout(limit + BACKSTOP_SLACK, task).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => Err(failure(
                StepErrorKind::PluginCrashed,
                format!("plugin host task failed: {e}"),
                Vec::new(),
            )),
            Err(_) => {
                abort.abort();
                Err(failure(
                    StepErrorKind::PluginCrashed,
                    format!("wall-clock limit of {} s reached", limit.as_secs()),
                    Vec::new(),
                ))
            }
        }
    }
}

fn version_of(v: &coffer_core::rotation_api::RotationVersion) -> Version {
    Version {
        id: v.id.clone(),
        value: v.value.to_string(),
    }
}

fn wipe(input: &mut StepInput) {
    input.current.value.zeroize();
    if let Some(p) = input.pending.as_mut() {
        p.value.zeroize();
    }
    if let Some(p) = input.previous.as_mut() {
        p.value.zeroize();
    }
}

fn classify_trap(
    e: &wasmtime::Error,
    limits: &Limits,
    memory_hit: bool,
    redactor: &Redactor,
) -> String {
    if memory_hit {
        return format!("memory limit of {} MiB reached", limits.memory_mib);
    }
    let trap = e
        .downcast_ref::<Trap>()
        .copied()
        .or_else(|| e.chain().find_map(|c| c.downcast_ref::<Trap>().copied()));
    match trap {
        Some(Trap::OutOfFuel) => format!("CPU limit (fuel {}) exhausted", limits.fuel),
        Some(Trap::Interrupt) => {
            format!("wall-clock limit of {} s reached", limits.step_timeout_secs)
        }
        Some(Trap::UnreachableCodeReached) => "plugin panicked (unreachable)".to_string(),
        Some(t) => format!("plugin trapped: {t}"),
        None => truncate(
            &redactor.redact(&format!("plugin failed: {}", error_chain(e))),
            2048,
        ),
    }
}

fn check_created(value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Err("it is empty".into());
    }
    if value.len() > MAX_SECRET_VALUE {
        return Err(format!(
            "{} bytes, the limit is {MAX_SECRET_VALUE}",
            value.len()
        ));
    }
    if value.contains('\0') {
        return Err("it contains NUL characters".into());
    }
    Ok(())
}

fn rotation_failure(e: RotationError, redactor: &Redactor, trail: Vec<TrailEntry>) -> StepFailure {
    let (kind, msg) = match e {
        RotationError::InvalidSecret(m) => (StepErrorKind::InvalidSecret, m),
        RotationError::Denied(m) => (StepErrorKind::Denied, m),
        RotationError::Unreachable(m) => (StepErrorKind::Unreachable, m),
        RotationError::AuthFailed(m) => (StepErrorKind::AuthFailed, m),
        RotationError::TargetRefused(m) => (StepErrorKind::TargetRefused, m),
        RotationError::VerificationFailed(m) => (StepErrorKind::VerificationFailed, m),
        RotationError::Internal(m) => (StepErrorKind::Internal, m),
    };
    failure(kind, truncate(&redactor.redact(&msg), 2048), trail)
}

fn emit_output(plugin: &str, stream: &str, out: &crate::output::CappedOutput, redactor: &Redactor) {
    let (text, truncated) = out.take();
    if text.is_empty() {
        return;
    }
    for line in redactor.redact(&text).lines() {
        tracing::info!(target: GUEST_TARGET, plugin = %plugin, stream = %stream, "{line}");
    }
    if truncated {
        tracing::warn!(target: GUEST_TARGET, plugin = %plugin, stream = %stream, "output truncated at {} bytes", crate::state::OUTPUT_CAP);
    }
}

/// One step in a fresh Store + instance. Runs on the plugin runtime.
async fn execute(
    inner: &Inner,
    plugin: Arc<LoadedPlugin>,
    req: StepRequest,
) -> Result<StepOutcome, StepFailure> {
    let started = Instant::now();
    let manifest = plugin.manifest.clone();
    let limits = manifest.limits;
    let timeout = Duration::from_secs(limits.step_timeout_secs);
    let deadline = started + timeout;

    let mut redactor = Redactor::default();
    redactor.add_secret(&req.current.value);
    for v in [&req.pending, &req.previous].into_iter().flatten() {
        redactor.add_secret(&v.value);
    }
    let mut input = StepInput {
        secret_name: req.secret_name.clone(),
        token: req.token.clone(),
        current: version_of(&req.current),
        pending: req.pending.as_ref().map(version_of),
        previous: req.previous.as_ref().map(version_of),
        config: req
            .config
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    };
    let step = StepCtx {
        manifest: manifest.clone(),
        region: req.region.clone(),
        granted_secrets: req.granted_secrets.clone(),
        reader: inner.reader.clone(),
        http: inner.http.clone(),
        redactor,
        trail: Vec::new(),
        log_lines: 0,
        deadline,
        open_connections: 0,
    };
    let memory_bytes = usize::try_from(limits.memory_mib << 20).unwrap_or(usize::MAX);
    let mut store = Store::new(&inner.engine.engine, StoreState::new(step, memory_bytes));
    store.limiter(|s| &mut s.limiter);
    if let Err(e) = store.set_fuel(limits.fuel) {
        return Err(failure(
            StepErrorKind::Internal,
            format!("cannot set fuel: {e}"),
            Vec::new(),
        ));
    }
    // Check the wall clock on every epoch tick: yield to the runtime (so a busy guest
    // never monopolises a worker) and trap with `Interrupt` once the step's time is up.
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(move |_| {
        if Instant::now() >= deadline {
            Ok(UpdateDeadline::Interrupt)
        } else {
            Ok(UpdateDeadline::Yield(1))
        }
    });

    let step_kind = req.step;
    let call = async {
        let rotator = plugin.pre.instantiate_async(&mut store).await?;
        let r = match step_kind {
            RotationStep::Create => rotator
                .call_create_secret(&mut store, &input)
                .await?
                .map(Some),
            RotationStep::Set => rotator
                .call_set_secret(&mut store, &input)
                .await?
                .map(|()| None),
            RotationStep::Test => rotator
                .call_test_secret(&mut store, &input)
                .await?
                .map(|()| None),
            RotationStep::Finish => rotator
                .call_finish_secret(&mut store, &input)
                .await?
                .map(|()| None),
        };
        Ok::<_, wasmtime::Error>(r)
    };
    let result = tokio::time::timeout(timeout, call).await;
    wipe(&mut input);

    let fuel_used = limits.fuel.saturating_sub(store.get_fuel().unwrap_or(0));
    let state = store.data_mut();
    let trail = std::mem::take(&mut state.step.trail);
    let redactor = std::mem::take(&mut state.step.redactor);
    let memory_hit = state.limiter.memory_hit;
    emit_output(&manifest.name, "stdout", &state.stdout, &redactor);
    emit_output(&manifest.name, "stderr", &state.stderr, &redactor);
    drop(store);

    let outcome = match result {
        Err(_) => Err(failure(
            StepErrorKind::PluginCrashed,
            format!("wall-clock limit of {} s reached", limits.step_timeout_secs),
            trail,
        )),
        Ok(Err(e)) => Err(failure(
            StepErrorKind::PluginCrashed,
            classify_trap(&e, &limits, memory_hit, &redactor),
            trail,
        )),
        Ok(Ok(Err(e))) => Err(rotation_failure(e, &redactor, trail)),
        Ok(Ok(Ok(Some(value)))) => {
            let value = Zeroizing::new(value);
            match check_created(&value) {
                Ok(()) => Ok(StepOutcome {
                    value: Some(value),
                    trail,
                }),
                Err(why) => Err(failure(
                    StepErrorKind::PluginCrashed,
                    format!("create-secret returned an invalid value: {why}"),
                    trail,
                )),
            }
        }
        Ok(Ok(Ok(None))) => Ok(StepOutcome { value: None, trail }),
    };
    let elapsed_ms = started.elapsed().as_millis() as u64;
    match &outcome {
        Ok(_) => tracing::info!(
            plugin = %manifest.name, step = %step_kind, fuel_used, elapsed_ms, "rotation step succeeded"
        ),
        Err(f) => tracing::warn!(
            plugin = %manifest.name, step = %step_kind, fuel_used, elapsed_ms,
            kind = f.kind.as_str(), error = %f.message, "rotation step failed"
        ),
    }
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_values_are_sanity_checked() {
        assert!(check_created("").is_err());
        assert!(check_created(&"a".repeat(MAX_SECRET_VALUE + 1)).is_err());
        assert!(check_created(&"a".repeat(MAX_SECRET_VALUE)).is_ok());
        assert!(check_created("a\0b").is_err());
        assert!(check_created(r#"{"password":"y"}"#).is_ok());
    }
}
