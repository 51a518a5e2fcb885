//! Per-Store state: WASI context, resource table, limits and the step context the
//! capabilities read and write.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use coffer_core::rotation_api::{PluginSecretReader, TrailEntry};
use wasmtime::component::ResourceTable;
use wasmtime::{ResourceLimiter, StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::manifest::Manifest;
use crate::output::CappedOutput;
use crate::redact::Redactor;

/// What one step may do and what it did.
pub(crate) struct StepCtx {
    pub manifest: Arc<Manifest>,
    pub region: String,
    pub granted_secrets: Vec<String>,
    pub reader: Arc<dyn PluginSecretReader>,
    pub http: reqwest::Client,
    pub redactor: Redactor,
    pub trail: Vec<TrailEntry>,
    pub log_lines: u32,
    pub deadline: Instant,
    pub open_connections: usize,
}

impl StepCtx {
    pub fn record(&mut self, kind: &str, detail: String) {
        if self.trail.len() < 1024 {
            let detail = self.redactor.redact(&detail);
            self.trail.push(TrailEntry {
                kind: kind.to_string(),
                detail: crate::redact::truncate(&detail, 2048),
            });
        }
    }

    /// `limit`, but never past the step's deadline.
    pub fn bounded(&self, limit: Duration) -> Duration {
        limit.min(self.deadline.saturating_duration_since(Instant::now()))
    }

    /// Where denials point the operator.
    pub fn manifest_path(&self) -> String {
        self.manifest.path.display().to_string()
    }
}

/// Wraps `StoreLimits` and remembers whether the memory cap was hit.
pub(crate) struct Limiter {
    inner: StoreLimits,
    pub memory_hit: bool,
}

impl Limiter {
    pub fn new(memory_bytes: usize) -> Self {
        Self {
            inner: StoreLimitsBuilder::new()
                .memory_size(memory_bytes)
                .instances(64)
                .tables(64)
                .memories(8)
                .trap_on_grow_failure(true)
                .build(),
            memory_hit: false,
        }
    }
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let r = self.inner.memory_growing(current, desired, maximum);
        if !matches!(r, Ok(true)) {
            self.memory_hit = true;
        }
        r
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.inner.table_growing(current, desired, maximum)
    }

    fn instances(&self) -> usize {
        self.inner.instances()
    }
    fn tables(&self) -> usize {
        self.inner.tables()
    }
    fn memories(&self) -> usize {
        self.inner.memories()
    }
}

/// `T` of every `Store` the host creates.
pub struct StoreState {
    pub(crate) wasi: WasiCtx,
    pub(crate) table: ResourceTable,
    pub(crate) limiter: Limiter,
    pub(crate) step: StepCtx,
    pub(crate) stdout: CappedOutput,
    pub(crate) stderr: CappedOutput,
}

impl StoreState {
    pub(crate) fn new(step: StepCtx, memory_bytes: usize) -> Self {
        let stdout = CappedOutput::new(OUTPUT_CAP);
        let stderr = CappedOutput::new(OUTPUT_CAP);
        let wasi = WasiCtx::builder()
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        Self {
            wasi,
            table: ResourceTable::new(),
            limiter: Limiter::new(memory_bytes),
            step,
            stdout,
            stderr,
        }
    }
}

/// Bytes of stdout (and of stderr) kept per step.
pub const OUTPUT_CAP: usize = 64 * 1024;

impl WasiView for StoreState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// Shared buffer of a captured stream.
pub(crate) type SharedBuf = Arc<Mutex<(Vec<u8>, bool)>>;
