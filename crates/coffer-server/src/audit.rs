//! The audit seam of the HTTP layer.
//!
//! - [`record`] is a middleware around every `/v1` route (and the `/v1` fallback). It puts
//!   an [`AuditDraft`] into the request's extensions with the operation (from the route
//!   table), request id, source address and arrival time. The `Caller` extractor adds the
//!   principal and token id (or the reason a request was not authenticated),
//!   `AppState::authorize` adds decisions and determining policies, handlers add the KMS
//!   key versions they used. When the handler has answered, the middleware adds the status
//!   and error code and hands the entry to the [`AuditLog`], and releases the response only
//!   once the record is durable. If it cannot be written the response is replaced by
//!   503 `AuditUnavailable`: nothing the handler produced (a secret value, a plaintext)
//!   leaves the server unaudited.
//! - [`AuditLog`] feeds ONE writer thread. Each request encodes its own record
//!   ([`PreparedEntry`]) and adds it to the batch being gathered. The writer takes
//!   whatever has gathered while it wrote the previous batch (see [`writer`]), chains it,
//!   appends it to the store's audit log with one write and one `fdatasync` (group
//!   commit), appends the records to the optional JSON-lines mirror, then wakes the
//!   batch's requests at once.
//!   With a retention period it also removes expired segments of the log, hourly, and
//!   records that it did.
//!
//! `/healthz`, `/readyz`, `/metrics` and `/openapi.json` are not audited: they carry no
//! principal and touch no secret or key.

use std::collections::HashMap;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{Extensions, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use coffer_api::VerifyAuditResponse;
use coffer_core::audit::{AuditDecision, AuditEntry, PreparedEntry};
use coffer_core::{Coffer, KeyUse};
use coffer_policy::{AuthzDecision, Resource};
use time::OffsetDateTime;
use tokio::sync::Notify;

use crate::auth::Caller;
use crate::error::{ApiError, ErrorCode};

/// Longest request id kept (ids may come from clients).
const MAX_REQUEST_ID_CHARS: usize = 128;
/// Operation recorded for a `/v1` path that matches no route.
const UNKNOWN_OPERATION: &str = "UnknownOperation";

/// Why a record could not be written.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    /// The store refused the batch or could not make it durable.
    #[error("audit store: {0}")]
    Store(String),
    /// The JSON-lines mirror could not be opened or written.
    #[error("audit file {path}: {message}")]
    File {
        /// The configured `audit_file`.
        path: PathBuf,
        /// What failed.
        message: String,
    },
    /// The record could not be encoded.
    #[error("audit record: {0}")]
    Encode(String),
    /// The writer thread could not be started.
    #[error("cannot start the audit writer: {0}")]
    WriterStart(String),
    /// The writer is gone (shutting down, or it failed).
    #[error("the audit writer has stopped")]
    WriterStopped,
}

/// The collected facts of one request, shared between the middleware, the `Caller`
/// extractor, authorization and the handler.
#[derive(Clone)]
pub struct AuditDraft(Arc<Mutex<AuditEntry>>);

impl std::fmt::Debug for AuditDraft {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuditDraft")
    }
}

impl AuditDraft {
    fn new(entry: AuditEntry) -> Self {
        AuditDraft(Arc::new(Mutex::new(entry)))
    }

    /// A draft that no record will be written from: what a request outside the audit
    /// middleware gets, and what list filters use so that their per-item checks do not
    /// count as the request's decision.
    pub(crate) fn detached() -> Self {
        Self::new(AuditEntry::new(
            UNKNOWN_OPERATION,
            "-",
            OffsetDateTime::UNIX_EPOCH,
        ))
    }

    /// The request's draft, or a detached one.
    pub(crate) fn of(extensions: &Extensions) -> Self {
        extensions
            .get::<AuditDraft>()
            .cloned()
            .unwrap_or_else(Self::detached)
    }

    fn lock(&self) -> MutexGuard<'_, AuditEntry> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The token was valid.
    pub(crate) fn authenticated(&self, principal: &str, token_id: &str) {
        let mut e = self.lock();
        e.principal = Some(principal.to_string());
        e.token_id = Some(token_id.to_string());
    }

    /// No valid token; `reason` says why (never the token).
    pub(crate) fn unauthenticated(&self, reason: &str) {
        let mut e = self.lock();
        e.decision = AuditDecision::Unauthenticated;
        e.reason = Some(reason.to_string());
    }

    /// The region the request addresses.
    pub(crate) fn region(&self, region: &str) {
        self.lock().region = Some(region.to_string());
    }

    /// The operation, when the handler decides it from the body
    /// (`EnableKeyRotation` / `DisableKeyRotation`).
    pub(crate) fn action(&self, action: &str) {
        self.lock().action = action.to_string();
    }

    /// One authorization: the request is allowed only if every one was; the first denial
    /// gives the reason; determining policies accumulate.
    pub(crate) fn authorization(&self, resource: &Resource<'_>, decision: &AuthzDecision) {
        let label = resource_label(resource);
        let mut e = self.lock();
        match &e.resource {
            None => e.resource = Some(label),
            Some(first) if *first == label => {}
            Some(_) => {
                if !e.extra_resources.contains(&label) {
                    e.extra_resources.push(label);
                }
            }
        }
        for p in &decision.determining_policies {
            if !e.policies.contains(p) {
                e.policies.push(p.clone());
            }
        }
        let mut notes = Vec::new();
        if !decision.allowed && e.decision != AuditDecision::Deny {
            notes.push(decision.reason.clone());
        }
        if !decision.errors.is_empty() {
            notes.push(format!(
                "policy evaluation errors: {}",
                decision.errors.join("; ")
            ));
        }
        if !notes.is_empty() {
            let note = notes.join("; ");
            e.reason = Some(match e.reason.take() {
                Some(r) => format!("{r}; {note}"),
                None => note,
            });
        }
        e.decision = if !decision.allowed || e.decision == AuditDecision::Deny {
            AuditDecision::Deny
        } else {
            AuditDecision::Allow
        };
    }

    /// A KMS key version the request used.
    pub(crate) fn key_used(&self, key_id: &str, key_version: u32) {
        let k = KeyUse {
            key_id: key_id.to_string(),
            key_version,
        };
        let mut e = self.lock();
        if !e.keys.contains(&k) {
            e.keys.push(k);
        }
    }

    /// The finished entry, moved out (the draft keeps an empty one).
    fn finish(&self, status: u16, error_code: Option<&str>) -> AuditEntry {
        let mut e = self.lock();
        e.status = status;
        e.error_code = error_code.map(str::to_string);
        std::mem::replace(&mut *e, AuditEntry::new("", "", OffsetDateTime::UNIX_EPOCH))
    }
}

impl Caller {
    /// Records a KMS key version this request used.
    pub(crate) fn used_key(&self, key_id: &str, key_version: u32) {
        self.audit.key_used(key_id, key_version);
    }

    /// Records the key of `key`, when there is one.
    pub(crate) fn used(&self, key: Option<&KeyUse>) {
        if let Some(k) = key {
            self.used_key(&k.key_id, k.key_version);
        }
    }

    /// The same caller, whose authorizations are not recorded: for the per-item checks
    /// that filter list results.
    pub(crate) fn unaudited(&self) -> Caller {
        Caller {
            audit: AuditDraft::detached(),
            ..self.clone()
        }
    }
}

/// `secret:<region>/<name>`, `key:<region>/<key id>`, `account:<region>`.
fn resource_label(r: &Resource<'_>) -> String {
    match r {
        Resource::Secret { region, name, .. } => format!("secret:{region}/{name}"),
        Resource::Key { region, key_id, .. } => format!("key:{region}/{key_id}"),
        Resource::Account { region } => format!("account:{region}"),
    }
}

/// Operation of (method, route template), from the route table.
fn operation(method: &str, template: &str) -> Option<&'static str> {
    static OPS: OnceLock<HashMap<(&'static str, &'static str), &'static str>> = OnceLock::new();
    OPS.get_or_init(|| {
        crate::route_docs()
            .into_iter()
            .map(|d| ((d.method, d.path), d.operation))
            .collect()
    })
    .get(&(method, template))
    .copied()
}

fn is_audited(path: &str) -> bool {
    path == "/v1" || path.starts_with("/v1/")
}

/// The middleware: see the module documentation.
pub async fn record(State(log): State<AuditLog>, mut req: Request, next: Next) -> Response {
    if !is_audited(req.uri().path()) {
        return next.run(req).await;
    }
    let draft = AuditDraft::new(draft_entry(&req));
    req.extensions_mut().insert(draft.clone());
    // Only for the log line of a record that could not be written (cheap: the header's
    // bytes are shared).
    let request_id = req.headers().get(coffer_api::REQUEST_ID_HEADER).cloned();

    let resp = next.run(req).await;

    let code = resp.extensions().get::<ErrorCode>().map(|c| c.0);
    let entry = draft.finish(resp.status().as_u16(), code);
    match log.append(entry).await {
        Ok(_) => resp,
        Err(e) => {
            let request_id = request_id
                .as_ref()
                .and_then(|v| v.to_str().ok())
                .map_or("-", |id| truncate_chars(id, MAX_REQUEST_ID_CHARS));
            tracing::error!(error = %e, request_id = %request_id, "audit record not written; the response is withheld (fail closed)");
            // The handler's response (which may hold a secret) is dropped unsent.
            drop(resp);
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "AuditUnavailable",
                "the audit log cannot be written, so the response is withheld; retry later (a write may already have been applied)",
            )
            .into_response()
        }
    }
}

/// What is known of a request when it arrives: its operation (from the route table),
/// request id (at most [`MAX_REQUEST_ID_CHARS`]), arrival time and source address.
fn draft_entry(req: &Request) -> AuditEntry {
    let action = req
        .extensions()
        .get::<MatchedPath>()
        .and_then(|p| operation(req.method().as_str(), p.as_str()))
        .unwrap_or(UNKNOWN_OPERATION);
    let mut entry = AuditEntry::new(action, "", OffsetDateTime::now_utc());
    entry.request_id = req
        .headers()
        .get(coffer_api::REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .map_or_else(
            || "-".to_string(),
            |id| truncate_chars(id, MAX_REQUEST_ID_CHARS).to_string(),
        );
    entry.source_ip = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_canonical().to_string());
    entry
}

/// The first `max` characters of `s`.
fn truncate_chars(s: &str, max: usize) -> &str {
    if s.len() <= max {
        // At most `max` bytes, so at most `max` characters.
        return s;
    }
    match s.char_indices().nth(max) {
        Some((end, _)) => &s[..end],
        None => s,
    }
}

/// The outcome of one batch, which all its requests wait on.
#[derive(Default)]
struct BatchDone {
    /// The first record's position, once the batch is durable (or why it is not).
    result: OnceLock<Result<u64, AuditError>>,
    /// Woken once `result` is set.
    notify: Notify,
}

impl BatchDone {
    /// Resolves with the position of the batch's record `index` once the batch is
    /// durable.
    async fn wait(&self, index: usize) -> Result<u64, AuditError> {
        let notified = self.notify.notified();
        tokio::pin!(notified);
        loop {
            // Registered before `result` is read: the writer sets `result`, then wakes
            // every registered waiter, so no wake-up is lost in between.
            notified.as_mut().enable();
            if let Some(r) = self.result.get() {
                return r.clone().map(|first| first + index as u64);
            }
            notified.as_mut().await;
            notified.set(self.notify.notified());
        }
    }
}

/// The batch being gathered.
struct Gathering {
    entries: Vec<PreparedEntry>,
    done: Arc<BatchDone>,
    /// Every [`AuditLog`] handle is gone (the writer ends once the batch is written), or
    /// the writer has stopped.
    closed: bool,
}

/// How often the writer looks for audit segments past the retention period.
const RETENTION_CHECK_EVERY: Duration = Duration::from_secs(3600);
/// Operation of the record that notes a retention run.
const RETENTION_OPERATION: &str = "PruneAuditLog";

/// What the requests and the writer share.
struct Shared {
    gathering: Mutex<Gathering>,
    /// The writer thread, woken by the first record of a batch and when the last handle
    /// goes.
    writer: OnceLock<std::thread::Thread>,
}

impl Shared {
    fn gathering(&self) -> MutexGuard<'_, Gathering> {
        self.gathering
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn wake_writer(&self) {
        if let Some(t) = self.writer.get() {
            t.unpark();
        }
    }
}

/// The handles' common part: when the last handle goes, the writer finishes.
struct Handle(Arc<Shared>);

impl Drop for Handle {
    fn drop(&mut self) {
        self.0.gathering().closed = true;
        self.0.wake_writer();
    }
}

/// Handle to the one audit writer (a dedicated thread, so its store work and waits never
/// occupy the async workers). Cheap to clone.
#[derive(Clone)]
pub struct AuditLog(Arc<Handle>);

impl AuditLog {
    /// Starts the writer thread. With `mirror`, every record is also appended to that
    /// JSON-lines file; it must be writable now. With `retention`, records older than
    /// that are removed (whole segments; checked at start and hourly).
    pub fn start(
        core: Arc<Coffer>,
        mirror: Option<PathBuf>,
        retention: Option<Duration>,
    ) -> Result<AuditLog, AuditError> {
        if let Some(path) = &mirror {
            write_mirror(path, &[])?;
        }
        let shared = Arc::new(Shared {
            gathering: Mutex::new(Gathering {
                entries: Vec::new(),
                done: Arc::default(),
                closed: false,
            }),
            writer: OnceLock::new(),
        });
        let theirs = shared.clone();
        let handle = std::thread::Builder::new()
            .name("coffer-audit".into())
            .spawn(move || writer(&core, mirror.as_deref(), retention, &theirs))
            .map_err(|e| AuditError::WriterStart(e.to_string()))?;
        let _ = shared.writer.set(handle.thread().clone());
        Ok(AuditLog(Arc::new(Handle(shared))))
    }

    fn shared(&self) -> &Shared {
        &self.0 .0
    }

    /// Appends one entry; resolves with its sequence number once it is durable.
    pub async fn append(&self, entry: AuditEntry) -> Result<u64, AuditError> {
        let (done, index) = self.queue(entry)?;
        done.wait(index).await
    }

    /// Encodes `entry` (on the caller's thread) and adds it to the batch being gathered:
    /// returns that batch's outcome and the entry's place in it.
    fn queue(&self, entry: AuditEntry) -> Result<(Arc<BatchDone>, usize), AuditError> {
        let prepared = prepare(entry)?;
        let shared = self.shared();
        let (done, index) = {
            let mut g = shared.gathering();
            if g.closed {
                return Err(AuditError::WriterStopped);
            }
            g.entries.push(prepared);
            (g.done.clone(), g.entries.len() - 1)
        };
        if index == 0 {
            // The writer may be parked waiting for a first record.
            shared.wake_writer();
        }
        Ok((done, index))
    }
}

/// The writer: gather a batch, write it (log, mirror), acknowledge; between batches, apply
/// the retention period when due; until every [`AuditLog`] handle is gone.
///
/// Group commit: the batch is whatever was queued while the previous one was being
/// written, and it is taken as soon as that write is done. Each write ends with one
/// `fdatasync`, which costs far more than a record does (on the VM of BENCHMARKS.md,
/// ~50–70 µs of CPU, most of it the block device's doorbells, against a few µs per
/// record), so under concurrent load the batches grow on their own. Holding a batch back
/// to grow it further was measured and did not pay: under load that sync cost lands on
/// the CPU this thread, the block layer's flush and the disk interrupt share, which then
/// has time to spare, while the held requests wait (a commit delay gained ~1% at 32
/// connections and lost 26% at 16; BENCHMARKS.md, issue 3). A lone or sequential client
/// is never held back.
fn writer(core: &Coffer, mirror: Option<&Path>, retention: Option<Duration>, shared: &Shared) {
    // However the writer ends, no request waits for it any longer.
    let _stopped = Stopped(shared);
    let mut next_retention = Instant::now();
    loop {
        // Wait for a first record, then take the batch.
        let (entries, done) = loop {
            if let Some(max_age) = retention {
                if Instant::now() >= next_retention {
                    apply_retention(core, mirror, max_age);
                    next_retention = Instant::now() + RETENTION_CHECK_EVERY;
                }
            }
            let mut g = shared.gathering();
            if !g.entries.is_empty() {
                let capacity = g.entries.len();
                break (
                    std::mem::replace(&mut g.entries, Vec::with_capacity(capacity)),
                    Resolve(std::mem::take(&mut g.done)),
                );
            }
            if g.closed {
                return;
            }
            drop(g);
            match retention {
                None => std::thread::park(),
                Some(_) => std::thread::park_timeout(
                    next_retention.saturating_duration_since(Instant::now()),
                ),
            }
        };
        let written = write_batch(core, mirror, &entries);
        if let Err(e) = &written {
            tracing::error!(error = %e, records = entries.len(), "audit batch failed");
        }
        // Every response first; the batch is freed after.
        done.resolve(written);
        drop(entries);
    }
}

/// A batch taken for writing: its requests are woken with the outcome, or, if the writer
/// ends before (a panic), with [`AuditError::WriterStopped`].
struct Resolve(Arc<BatchDone>);

impl Resolve {
    fn resolve(self, result: Result<u64, AuditError>) {
        let _ = self.0.result.set(result);
        // `Drop` wakes the waiters.
    }
}

impl Drop for Resolve {
    fn drop(&mut self) {
        let _ = self.0.result.set(Err(AuditError::WriterStopped));
        self.0.notify.notify_waiters();
    }
}

/// Marks the writer gone when it ends: the batch being gathered fails, and so does every
/// later append.
struct Stopped<'a>(&'a Shared);

impl Drop for Stopped<'_> {
    fn drop(&mut self) {
        let mut g = self.0.gathering();
        g.closed = true;
        drop(Resolve(g.done.clone()));
    }
}

/// Removes the segments of the log older than `max_age` and appends a record saying
/// which records went. Failures are logged; the next check tries again.
fn apply_retention(core: &Coffer, mirror: Option<&Path>, max_age: Duration) {
    let Ok(age) = time::Duration::try_from(max_age) else {
        return;
    };
    match block_on(core.prune_audit(age)) {
        Ok(None) => {}
        Ok(Some(p)) => {
            tracing::info!(
                first = p.first,
                through = p.through,
                "audit retention removed records"
            );
            let mut e =
                AuditEntry::new(RETENTION_OPERATION, "retention", OffsetDateTime::now_utc());
            e.status = 200;
            e.reason = Some(format!(
                "records {}–{} removed: older than the retention period of {} days",
                p.first,
                p.through,
                max_age.as_secs() / 86_400
            ));
            let written = prepare(e).and_then(|e| write_batch(core, mirror, &[e]));
            if let Err(err) = written {
                tracing::error!(error = %err, "the audit record of a retention run was not written");
            }
        }
        Err(e) => tracing::error!(error = %e, "audit retention failed; retrying at the next check"),
    }
}

/// Encodes `entry` for the writer.
fn prepare(entry: AuditEntry) -> Result<PreparedEntry, AuditError> {
    PreparedEntry::new(entry).map_err(|e| AuditError::Encode(e.to_string()))
}

/// Runs a future to completion on this (non-async) thread.
fn block_on<F: std::future::Future>(fut: F) -> F::Output {
    use std::task::{Context, Poll, Wake, Waker};
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut fut = std::pin::pin!(fut);
    loop {
        match fut.as_mut().poll(&mut cx) {
            Poll::Ready(v) => return v,
            Poll::Pending => std::thread::park(),
        }
    }
}

/// Store first (authoritative, chained, durable), then the mirror. Returns the first
/// record's position.
fn write_batch(
    core: &Coffer,
    mirror: Option<&Path>,
    entries: &[PreparedEntry],
) -> Result<u64, AuditError> {
    let Some(appended) = core
        .append_prepared(entries)
        .map_err(|e| AuditError::Store(e.to_string()))?
    else {
        return Ok(0);
    };
    if let Some(path) = mirror {
        write_mirror(path, &appended.lines)?;
    }
    Ok(appended.first_seq)
}

/// Appends `lines` (JSON records, each ending in `'\n'`) to `path` (created 0600 if
/// absent) and flushes them. The file is opened per batch, so a rotated (moved away) file
/// is recreated, and a path that stopped being writable fails the batch.
fn write_mirror(path: &Path, lines: &[u8]) -> Result<(), AuditError> {
    let fail = |what: &str, e: &dyn std::fmt::Display| AuditError::File {
        path: path.to_path_buf(),
        message: format!("{what}: {e}"),
    };
    let mut opts = std::fs::OpenOptions::new();
    opts.append(true).create(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut file = opts.open(path).map_err(|e| fail("cannot open", &e))?;
    if lines.is_empty() {
        return Ok(());
    }
    file.write_all(lines)
        .and_then(|()| file.flush())
        .map_err(|e| fail("cannot write", &e))
}

/// Verifies the audit chain of a data directory while the server is stopped (what
/// `coffer audit verify --data-dir` runs).
pub fn verify_data_dir(dir: &Path) -> anyhow::Result<VerifyAuditResponse> {
    use anyhow::Context as _;
    if !dir.join("db").is_dir() {
        anyhow::bail!("{} holds no Coffer store (no db/ inside)", dir.display());
    }
    let store = coffer_store::SledStore::open(dir).with_context(|| {
        format!(
            "cannot open the store in {} (stop the server first: the store is locked while it runs)",
            dir.display()
        )
    })?;
    Ok(coffer_core::audit::verify(&store)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decision(allowed: bool, policies: &[&str], reason: &str) -> AuthzDecision {
        AuthzDecision {
            allowed,
            determining_policies: policies.iter().map(|p| p.to_string()).collect(),
            errors: Vec::new(),
            reason: reason.to_string(),
        }
    }

    #[test]
    fn a_request_is_denied_if_any_authorization_was() {
        let d = AuditDraft::detached();
        let tags = Default::default();
        let a = Resource::Secret {
            region: "local",
            name: "app/a",
            tags: &tags,
        };
        let b = Resource::Secret {
            region: "local",
            name: "app/b",
            tags: &tags,
        };
        d.authorization(&a, &decision(true, &["p1"], "permitted"));
        d.authorization(&a, &decision(true, &["p1"], "permitted"));
        d.authorization(&b, &decision(false, &["f1"], "forbidden by f1"));
        d.authorization(
            &Resource::Account { region: "local" },
            &decision(false, &[], "no permit"),
        );
        d.key_used("k", 2);
        d.key_used("k", 2);
        let e = d.finish(200, None);
        assert_eq!(e.decision, AuditDecision::Deny);
        assert_eq!(e.resource.as_deref(), Some("secret:local/app/a"));
        assert_eq!(e.extra_resources, ["secret:local/app/b", "account:local"]);
        assert_eq!(e.policies, ["p1", "f1"]);
        assert_eq!(e.reason.as_deref(), Some("forbidden by f1"));
        assert_eq!(e.keys.len(), 1);
    }

    fn memory_core(dir: &Path) -> Arc<Coffer> {
        let store = coffer_store::SledStore::open(dir).expect("store");
        Arc::new(
            Coffer::new(
                Arc::new(store),
                Arc::new(coffer_crypto::MemoryRootKey::generate()),
                coffer_core::CoreConfig::default(),
            )
            .expect("core"),
        )
    }

    fn entry(id: &str) -> AuditEntry {
        AuditEntry::new("GetSecretValue", id, OffsetDateTime::now_utc())
    }

    async fn within<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
        tokio::time::timeout(Duration::from_secs(10), f)
            .await
            .unwrap_or_else(|_| panic!("{what} did not complete"))
    }

    /// Concurrent appends share batches, and each learns the position of its own record.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn each_append_of_a_shared_batch_gets_its_own_records_position() {
        let dir = tempfile::tempdir().expect("tempdir");
        let core = memory_core(dir.path());
        let log = AuditLog::start(core.clone(), None, None).expect("start");
        let tasks: Vec<_> = (0..200)
            .map(|i| {
                let log = log.clone();
                tokio::spawn(async move {
                    let id = format!("req-{i}");
                    let seq = log.append(entry(&id)).await;
                    (id, seq)
                })
            })
            .collect();
        let mut got = HashMap::new();
        for t in tasks {
            let (id, seq) = within("append", t).await.expect("join");
            got.insert(id, seq.expect("append"));
        }
        let page = core
            .query_audit(&coffer_api::AuditQuery {
                max_results: Some(1000),
                ..Default::default()
            })
            .expect("query");
        assert_eq!(page.records.len(), 200);
        for r in &page.records {
            assert_eq!(got.get(&r.request_id), Some(&r.seq), "{}", r.request_id);
        }
        assert!(core.verify_audit().expect("verify").ok);
    }

    /// The writer's retention pass removes the expired segments through the core and
    /// notes the removal in the chain, which still verifies.
    #[test]
    fn retention_removes_expired_segments_and_records_it() {
        use coffer_store::Store as _;
        let dir = tempfile::tempdir().expect("tempdir");
        // A segment per batch.
        let store = Arc::new(
            coffer_store::SledStore::open_with_segment_bytes(
                dir.path(),
                coffer_store::DEFAULT_CACHE_BYTES,
                1,
            )
            .expect("store"),
        );
        let now = OffsetDateTime::from_unix_timestamp(1_800_000_000).expect("time");
        let core = Coffer::new(
            store.clone(),
            Arc::new(coffer_crypto::MemoryRootKey::generate()),
            coffer_core::CoreConfig {
                clock: Arc::new(move || now),
                ..Default::default()
            },
        )
        .expect("core");
        for age_days in [30, 20, 10, 0] {
            let t = now - time::Duration::days(age_days);
            core.append_audit(vec![
                AuditEntry::new("GetSecretValue", "a", t),
                AuditEntry::new("GetSecretValue", "b", t),
            ])
            .expect("append");
        }
        // 15 days: the segment of day −30 goes. The one of day −20 stays: a segment is
        // known to be expired once the segment after it starts before the cutoff, and
        // that one starts at day −10.
        apply_retention(&core, None, Duration::from_secs(15 * 86_400));
        assert_eq!(store.audit_log().first_seq(), 3);
        let page = core
            .query_audit(&coffer_api::AuditQuery {
                max_results: Some(1),
                ..Default::default()
            })
            .expect("query");
        let note = &page.records[0];
        assert_eq!((note.seq, note.action.as_str()), (9, RETENTION_OPERATION));
        assert_eq!(
            note.reason.as_deref(),
            Some("records 1–2 removed: older than the retention period of 15 days")
        );
        let v = core.verify_audit().expect("verify");
        assert!(v.ok, "{v:?}");
        assert_eq!((v.records_checked, v.removed_through), (7, Some(2)));
        // Nothing else has expired: a second pass writes nothing.
        apply_retention(&core, None, Duration::from_secs(15 * 86_400));
        assert_eq!(store.audit_log().last_seq(), 9);
    }

    #[test]
    fn request_ids_are_cut_at_a_character_boundary() {
        assert_eq!(truncate_chars("abc", 2), "ab");
        assert_eq!(truncate_chars("abc", 3), "abc");
        assert_eq!(truncate_chars("", 3), "");
        // 6 bytes, 3 characters: cut after the second character, not the second byte.
        assert_eq!(truncate_chars("ééé", 2), "éé");
        let long = "é".repeat(MAX_REQUEST_ID_CHARS + 10);
        let cut = truncate_chars(&long, MAX_REQUEST_ID_CHARS);
        assert_eq!(cut.chars().count(), MAX_REQUEST_ID_CHARS);
        assert!(long.starts_with(cut));
    }

    #[test]
    fn every_operation_of_the_route_table_is_found() {
        for d in crate::route_docs() {
            assert_eq!(operation(d.method, d.path), Some(d.operation), "{d:?}");
        }
        assert_eq!(operation("GET", "/v1/nope"), None);
        assert!(is_audited("/v1/secrets") && !is_audited("/healthz") && !is_audited("/v10"));
    }
}
