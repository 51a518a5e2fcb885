//! The wasmtime engine: configuration, epoch ticker, compile cache and the import check.

use std::hash::Hasher;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use crate::bindings::Rotator;
use crate::error::PluginError;
use crate::manifest::MAX_MEMORY_MIB;
use crate::state::StoreState;

/// Epoch tick.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);
/// Concurrent instances the pooling allocator is sized for (and the host's step concurrency).
pub const MAX_CONCURRENT_STEPS: u32 = 32;
/// Interface prefixes (`namespace:package/`) a rotator may import.
pub const ALLOWED_IMPORTS: &[&str] = &[
    "coffer:rotator/",
    "wasi:cli/",
    "wasi:io/",
    "wasi:clocks/",
    "wasi:random/",
];

/// How a component was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompileSource {
    /// Loaded from a `.cwasm` this host wrote earlier.
    Cache,
    /// Compiled with Cranelift (and written to the cache).
    Compiled,
}

/// Engine + linker shared by every plugin, and the epoch ticker.
pub(crate) struct PluginEngine {
    pub engine: Engine,
    pub linker: Linker<StoreState>,
    pub pooling: bool,
    cache_dir: PathBuf,
    stop: Arc<AtomicBool>,
    pub cache_hits: AtomicU64,
    pub cache_misses: AtomicU64,
}

fn base_config() -> Config {
    let mut cfg = Config::new();
    cfg.consume_fuel(true);
    cfg.epoch_interruption(true);
    // Reserve as much address space as the largest allowed memory so that growth never
    // needs a move and the per-store `StoreLimits` is what actually caps a plugin.
    cfg.memory_reservation(MAX_MEMORY_MIB << 20);
    cfg.memory_guard_size(32 << 20);
    cfg.memory_reservation_for_growth(0);
    cfg.parallel_compilation(true);
    cfg
}

fn pooling_config() -> Config {
    let mut cfg = base_config();
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(MAX_CONCURRENT_STEPS)
        .total_core_instances(MAX_CONCURRENT_STEPS * 8)
        .total_memories(MAX_CONCURRENT_STEPS * 2)
        .total_tables(MAX_CONCURRENT_STEPS * 8)
        .max_core_instances_per_component(16)
        .max_memories_per_component(2)
        .max_tables_per_component(8)
        .max_memory_size((MAX_MEMORY_MIB << 20) as usize);
    cfg.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    cfg
}

impl PluginEngine {
    /// Creates the engine (pooling allocator if the OS gives us the address space, else
    /// on-demand; `COFFER_PLUGINS_POOLING=0` forces on-demand), the linker and the ticker.
    pub fn new(cache_dir: PathBuf) -> Result<Self, PluginError> {
        let want_pooling = std::env::var("COFFER_PLUGINS_POOLING").map_or(true, |v| v != "0");
        let (engine, pooling) = match want_pooling.then(|| Engine::new(&pooling_config())) {
            Some(Ok(e)) => (e, true),
            other => {
                if let Some(Err(e)) = other {
                    tracing::warn!(error = %e, "pooling allocator unavailable, using on-demand allocation");
                }
                let e = Engine::new(&base_config()).map_err(|e| {
                    PluginError::Engine(format!("cannot create wasmtime engine: {e}"))
                })?;
                (e, false)
            }
        };
        let mut linker = Linker::<StoreState>::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .map_err(|e| PluginError::Engine(format!("cannot link WASI: {e}")))?;
        Rotator::add_to_linker::<StoreState, HasSelf<StoreState>>(&mut linker, |s| s)
            .map_err(|e| PluginError::Engine(format!("cannot link coffer:rotator: {e}")))?;

        let stop = Arc::new(AtomicBool::new(false));
        {
            let engine = engine.clone();
            let stop = stop.clone();
            std::thread::Builder::new()
                .name("coffer-plugin-epoch".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(EPOCH_TICK);
                        engine.increment_epoch();
                    }
                })
                .map_err(|e| PluginError::Engine(format!("cannot start the epoch ticker: {e}")))?;
        }
        Ok(Self {
            engine,
            linker,
            pooling,
            cache_dir,
            stop,
            cache_hits: AtomicU64::new(0),
            cache_misses: AtomicU64::new(0),
        })
    }

    /// Hex of the engine's precompile-compatibility hash (wasmtime version + settings).
    pub fn compat_hash(&self) -> String {
        struct ShaHasher(Sha256);
        impl Hasher for ShaHasher {
            fn finish(&self) -> u64 {
                0
            }
            fn write(&mut self, bytes: &[u8]) {
                self.0.update(bytes);
            }
        }
        let mut h = ShaHasher(Sha256::new());
        std::hash::Hash::hash(&self.engine.precompile_compatibility_hash(), &mut h);
        hex::encode(&h.0.finalize()[..16])
    }

    /// Path of the cached compilation of `wasm`.
    pub fn cache_path(&self, wasm: &[u8]) -> PathBuf {
        let digest = hex::encode(Sha256::digest(wasm));
        self.cache_dir
            .join(format!("{digest}-{}.cwasm", self.compat_hash()))
    }

    /// Loads `wasm` from the compile cache or compiles it (and writes the cache).
    pub fn load_component(
        &self,
        wasm: &[u8],
        manifest: &Path,
    ) -> Result<(Component, CompileSource), PluginError> {
        let cached = self.cache_path(wasm);
        if cached.is_file() {
            // SAFETY: `deserialize_file` trusts its input to be machine code produced by a
            // compatible wasmtime. The cache directory is private to the server and every
            // `.cwasm` in it was written by `store_cache` below from our own `Component::new`
            // output (atomically, via a temporary file and rename), under a name that includes
            // the sha256 of the source wasm and this engine's precompile-compatibility hash.
            // Uploaded plugins only ever provide `.wasm`, which always goes through
            // `Component::new`. wasmtime additionally checks the version/config header and we
            // fall back to compiling on any error.
            match unsafe { Component::deserialize_file(&self.engine, &cached) } {
                Ok(c) => {
                    self.cache_hits.fetch_add(1, Ordering::Relaxed);
                    return Ok((c, CompileSource::Cache));
                }
                Err(e) => tracing::warn!(
                    cache = %cached.display(),
                    error = %e,
                    "ignoring unusable compile cache entry"
                ),
            }
        }
        self.cache_misses.fetch_add(1, Ordering::Relaxed);
        let component = Component::new(&self.engine, wasm).map_err(|e| PluginError::Component {
            manifest: manifest.to_path_buf(),
            message: format!(
                "the wasm file is not a loadable component: {}",
                error_chain(&e)
            ),
        })?;
        if let Err(e) = self.store_cache(&component, &cached) {
            tracing::warn!(cache = %cached.display(), error = %e, "cannot write compile cache");
        }
        Ok((component, CompileSource::Compiled))
    }

    fn store_cache(&self, component: &Component, path: &Path) -> std::io::Result<()> {
        let bytes = component
            .serialize()
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        std::fs::create_dir_all(&self.cache_dir)?;
        let mut tmp = tempfile_in(&self.cache_dir)?;
        tmp.1.write_all(&bytes)?;
        tmp.1.sync_all()?;
        drop(tmp.1);
        std::fs::rename(&tmp.0, path).inspect_err(|_| {
            let _ = std::fs::remove_file(&tmp.0);
        })
    }

    /// Refuses components that import anything outside [`ALLOWED_IMPORTS`].
    pub fn check_imports(&self, component: &Component, manifest: &Path) -> Result<(), PluginError> {
        let ty = component.component_type();
        for (name, _) in ty.imports(&self.engine) {
            if !ALLOWED_IMPORTS.iter().any(|p| name.starts_with(p)) {
                return Err(PluginError::ForbiddenImport {
                    manifest: manifest.to_path_buf(),
                    interface: name.to_string(),
                });
            }
        }
        Ok(())
    }
}

impl Drop for PluginEngine {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn tempfile_in(dir: &Path) -> std::io::Result<(PathBuf, std::fs::File)> {
    use rand::Rng;
    for _ in 0..8 {
        let n: u64 = rand::rngs::OsRng.gen();
        let p = dir.join(format!(".tmp-{n:016x}.cwasm"));
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        match opts.open(&p) {
            Ok(f) => return Ok((p, f)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(std::io::Error::other(
        "cannot create a temporary cache file",
    ))
}

/// All messages of a wasmtime error chain, joined (the top one alone is often just
/// "error while executing at wasm backtrace").
pub(crate) fn error_chain(e: &wasmtime::Error) -> String {
    let parts: Vec<String> = e.chain().map(|c| c.to_string()).collect();
    parts.join(": ")
}
