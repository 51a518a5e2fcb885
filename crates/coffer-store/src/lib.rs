//! Coffer's storage seam: the [`Store`] trait over one ordered keyspace, with atomic
//! conditional batches and an explicit durable commit, and its embedded [`SledStore`]
//! backend (the default, `./coffer-data`).
//!
//! The store only ever sees ciphertext and metadata; it knows nothing of secrets, keys or
//! HTTP. Callers (coffer-core) do optimistic read-modify-write: read, compute, then
//! [`Store::apply`] a [`Batch`] whose checks assert that the records read are unchanged;
//! on [`StoreError::Conflict`] they retry. A write is acknowledged to a client only after
//! [`Store::sync`] resolves: concurrent syncs share one flush (group commit).
//!
//! ```
//! use coffer_store::{Batch, SledStore, Store};
//! let store = SledStore::temporary().unwrap();
//! let mut b = Batch::default();
//! b.expect_absent(b"a").put(b"a", b"1");
//! store.apply(&b).unwrap();
//! assert_eq!(store.get(b"a").unwrap().as_deref(), Some(&b"1"[..]));
//! // The same batch now conflicts: "a" is no longer absent.
//! assert!(store.apply(&b).is_err());
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, RwLock};

/// The data-directory format this release writes and reads.
pub const DATA_FORMAT_VERSION: u32 = 1;
/// sled's page cache size unless told otherwise (sled's own default is 1 GiB).
pub const DEFAULT_CACHE_BYTES: u64 = 16 * 1024 * 1024;
const FORMAT_FILE: &str = "FORMAT";
const FORMAT_KEY: &[u8] = b"meta/format-version";

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A check of the batch failed: someone else changed a record first. Retry.
    #[error("concurrent modification; retry")]
    Conflict,
    /// The backend failed (I/O, corruption).
    #[error("storage backend: {0}")]
    Backend(String),
    /// The data directory was written by an incompatible release.
    #[error("data directory format {found} is not supported by this release (expects {expected}); {hint}")]
    Format {
        /// Format found on disk.
        found: String,
        /// Format this release supports.
        expected: u32,
        /// What to do.
        hint: &'static str,
    },
}

impl From<sled::Error> for StoreError {
    fn from(e: sled::Error) -> Self {
        StoreError::Backend(e.to_string())
    }
}

/// An atomic group of writes guarded by checks.
#[derive(Debug, Default, Clone)]
pub struct Batch {
    checks: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    writes: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

impl Batch {
    /// Requires `key` to hold exactly `value` (as read earlier) when the batch applies.
    pub fn expect(&mut self, key: &[u8], value: &[u8]) -> &mut Self {
        self.checks.push((key.to_vec(), Some(value.to_vec())));
        self
    }
    /// Requires `key` to be absent when the batch applies.
    pub fn expect_absent(&mut self, key: &[u8]) -> &mut Self {
        self.checks.push((key.to_vec(), None));
        self
    }
    /// Requires `key` to be unchanged from what was read (`None` = was absent).
    pub fn expect_unchanged(&mut self, key: &[u8], read: Option<&[u8]>) -> &mut Self {
        self.checks.push((key.to_vec(), read.map(<[u8]>::to_vec)));
        self
    }
    /// Sets `key` to `value`.
    pub fn put(&mut self, key: &[u8], value: &[u8]) -> &mut Self {
        self.writes.push((key.to_vec(), Some(value.to_vec())));
        self
    }
    /// Removes `key`.
    pub fn delete(&mut self, key: &[u8]) -> &mut Self {
        self.writes.push((key.to_vec(), None));
        self
    }
    /// Whether the batch writes nothing.
    pub fn is_empty(&self) -> bool {
        self.writes.is_empty()
    }
}

/// Records returned by a scan: (key, value) pairs in key order.
pub type Records = Vec<(Vec<u8>, Vec<u8>)>;

/// A boxed future returned by [`Store::sync`].
pub type SyncFuture<'a> = Pin<Box<dyn Future<Output = Result<(), StoreError>> + Send + 'a>>;

/// An ordered keyspace with atomic conditional batches and a durable commit.
pub trait Store: Send + Sync {
    /// Reads one record.
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;
    /// Records whose key starts with `prefix`, ascending, strictly after `after` when
    /// given, at most `limit`.
    fn scan(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Records, StoreError>;
    /// Applies the batch atomically if every check holds, else [`StoreError::Conflict`].
    /// Not yet durable: call [`Store::sync`] before acknowledging.
    fn apply(&self, batch: &Batch) -> Result<(), StoreError>;
    /// Resolves once every batch applied before the call is durable on disk.
    fn sync(&self) -> SyncFuture<'_>;
    /// Removes every record (dev-mode reset), keeping the format marker.
    fn clear(&self) -> Result<(), StoreError>;
}

/// The embedded sled backend.
pub struct SledStore {
    db: sled::Db,
    tree: sled::Tree,
    dir: Option<PathBuf>,
    durability: Arc<Durability>,
    flusher: Option<std::thread::JoinHandle<()>>,
}

/// Group commit without sled's deadlock.
///
/// sled 0.34 holds its concurrency-control read lock while a flush waits for the disk,
/// and a transaction queues for the write lock; concurrent flushes (sled's own periodic
/// flusher, `flush_async` jobs) then block behind that writer and the process deadlocks
/// (observed here under 32 concurrent writers). So: sled's periodic flusher is off, one
/// flusher thread owns every flush, and a gate keeps batches from being applied while a
/// flush is in progress. Each [`Store::sync`] takes a ticket after its batch was applied
/// and waits until a flush that started after the ticket has finished: all writers that
/// arrive during one flush share the next one.
struct Durability {
    /// Applies hold it shared; the flusher holds it exclusively around `db.flush()`.
    gate: RwLock<()>,
    /// Tickets handed out so far.
    requested: Mutex<u64>,
    wake: Condvar,
    /// The highest ticket covered by a finished flush, and that flush's error.
    done: tokio::sync::watch::Sender<FlushStatus>,
    shutdown: AtomicBool,
}

#[derive(Clone, Debug, Default)]
struct FlushStatus {
    covered: u64,
    error: Option<String>,
}

fn run_flusher(db: sled::Db, d: Arc<Durability>) {
    let mut covered = 0u64;
    loop {
        let target = {
            let mut req = d.requested.lock().unwrap_or_else(|p| p.into_inner());
            while *req <= covered && !d.shutdown.load(Ordering::Acquire) {
                req = d.wake.wait(req).unwrap_or_else(|p| p.into_inner());
            }
            if *req <= covered {
                return; // shutdown with nothing pending
            }
            *req
        };
        let result = {
            let _exclusive = d.gate.write().unwrap_or_else(|p| p.into_inner());
            db.flush()
        };
        covered = target;
        d.done.send_replace(FlushStatus {
            covered,
            error: result.err().map(|e| e.to_string()),
        });
    }
}

impl SledStore {
    /// Opens (or creates) the store under `dir` (sled files in `dir/db`, the format
    /// marker in `dir/FORMAT` and in the store itself). Refuses a directory written by an
    /// incompatible format.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        Self::open_with_cache(dir, DEFAULT_CACHE_BYTES)
    }

    /// Like [`SledStore::open`], with sled's page cache capped at `cache_bytes`.
    pub fn open_with_cache(dir: &Path, cache_bytes: u64) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| StoreError::Backend(format!("cannot create {}: {e}", dir.display())))?;
        let format_path = dir.join(FORMAT_FILE);
        match std::fs::read_to_string(&format_path) {
            Ok(text) => {
                let found = text
                    .trim()
                    .trim_start_matches("coffer-data-format ")
                    .to_string();
                if found != DATA_FORMAT_VERSION.to_string() {
                    return Err(StoreError::Format {
                        found,
                        expected: DATA_FORMAT_VERSION,
                        hint: "run the release that wrote it, or migrate the data directory",
                    });
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(StoreError::Backend(format!(
                    "cannot read {}: {e}",
                    format_path.display()
                )))
            }
        }
        let db = sled::Config::new()
            .path(dir.join("db"))
            .mode(sled::Mode::HighThroughput)
            .cache_capacity(cache_bytes)
            .flush_every_ms(None)
            .open()?;
        let store = Self::from_db(db, Some(dir.to_path_buf()))?;
        if !format_path.exists() {
            std::fs::write(
                &format_path,
                format!("coffer-data-format {DATA_FORMAT_VERSION}\n"),
            )
            .map_err(|e| {
                StoreError::Backend(format!("cannot write {}: {e}", format_path.display()))
            })?;
        }
        Ok(store)
    }

    /// A store in a temporary file that is removed when the store drops (dev mode, tests).
    pub fn temporary() -> Result<Self, StoreError> {
        let db = sled::Config::new()
            .temporary(true)
            .flush_every_ms(None)
            .open()?;
        Self::from_db(db, None)
    }

    fn from_db(db: sled::Db, dir: Option<PathBuf>) -> Result<Self, StoreError> {
        let tree = db.open_tree("coffer")?;
        match tree.get(FORMAT_KEY)? {
            None => {
                tree.insert(FORMAT_KEY, &DATA_FORMAT_VERSION.to_be_bytes())?;
                db.flush()?;
            }
            Some(v) if v.as_ref() == DATA_FORMAT_VERSION.to_be_bytes() => {}
            Some(v) => {
                return Err(StoreError::Format {
                    found: format!("{:?}", v.as_ref()),
                    expected: DATA_FORMAT_VERSION,
                    hint: "run the release that wrote it, or migrate the data directory",
                })
            }
        }
        let (done, _) = tokio::sync::watch::channel(FlushStatus::default());
        let durability = Arc::new(Durability {
            gate: RwLock::new(()),
            requested: Mutex::new(0),
            wake: Condvar::new(),
            done,
            shutdown: AtomicBool::new(false),
        });
        let flusher = {
            let (db, d) = (db.clone(), durability.clone());
            std::thread::Builder::new()
                .name("coffer-flusher".into())
                .spawn(move || run_flusher(db, d))
                .map_err(|e| StoreError::Backend(format!("cannot start the flusher thread: {e}")))?
        };
        Ok(SledStore {
            db,
            tree,
            dir,
            durability,
            flusher: Some(flusher),
        })
    }

    /// The data directory, when not temporary.
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }
}

impl Drop for SledStore {
    fn drop(&mut self) {
        self.durability.shutdown.store(true, Ordering::Release);
        {
            // Holding the lock, the flusher is either waiting (and gets the wake-up) or
            // will see the flag before it waits.
            let _req = self.durability.requested.lock();
            self.durability.wake.notify_all();
        }
        if let Some(h) = self.flusher.take() {
            let _ = h.join();
        }
        let _ = self.db.flush();
    }
}

impl Store for SledStore {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.tree.get(key)?.map(|v| v.to_vec()))
    }

    fn scan(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Records, StoreError> {
        let mut out = Vec::new();
        let iter = match after {
            Some(a) if a.starts_with(prefix) => {
                let mut start = a.to_vec();
                start.push(0);
                self.tree.range(start..)
            }
            _ => self.tree.range(prefix.to_vec()..),
        };
        for item in iter {
            let (k, v) = item?;
            if !k.starts_with(prefix) || out.len() >= limit {
                break;
            }
            out.push((k.to_vec(), v.to_vec()));
        }
        Ok(out)
    }

    fn apply(&self, batch: &Batch) -> Result<(), StoreError> {
        use sled::transaction::{ConflictableTransactionError, TransactionError};
        let _shared = self
            .durability
            .gate
            .read()
            .unwrap_or_else(|p| p.into_inner());
        let res = self.tree.transaction(|tx| {
            for (k, expected) in &batch.checks {
                let cur = tx.get(k)?;
                let same = match (&cur, expected) {
                    (None, None) => true,
                    (Some(c), Some(e)) => c.as_ref() == e.as_slice(),
                    _ => false,
                };
                if !same {
                    return Err(ConflictableTransactionError::Abort(()));
                }
            }
            for (k, v) in &batch.writes {
                match v {
                    Some(v) => {
                        tx.insert(k.as_slice(), v.as_slice())?;
                    }
                    None => {
                        tx.remove(k.as_slice())?;
                    }
                }
            }
            Ok(())
        });
        match res {
            Ok(()) => Ok(()),
            Err(TransactionError::Abort(())) => Err(StoreError::Conflict),
            Err(TransactionError::Storage(e)) => Err(e.into()),
        }
    }

    fn sync(&self) -> SyncFuture<'_> {
        let d = self.durability.clone();
        Box::pin(async move {
            let mut rx = d.done.subscribe();
            let ticket = {
                let mut req = d.requested.lock().unwrap_or_else(|p| p.into_inner());
                *req += 1;
                *req
            };
            d.wake.notify_one();
            let status = rx
                .wait_for(|s| s.covered >= ticket)
                .await
                .map_err(|_| StoreError::Backend("the flusher thread stopped".into()))?
                .clone();
            match status.error {
                None => Ok(()),
                Some(e) => Err(StoreError::Backend(format!("flush to disk failed: {e}"))),
            }
        })
    }

    fn clear(&self) -> Result<(), StoreError> {
        let _exclusive = self
            .durability
            .gate
            .write()
            .unwrap_or_else(|p| p.into_inner());
        let format = self.tree.get(FORMAT_KEY)?;
        self.tree.clear()?;
        if let Some(f) = format {
            self.tree.insert(FORMAT_KEY, f)?;
        }
        self.db.flush()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_guard_the_batch_atomically() {
        let s = SledStore::temporary().unwrap();
        let mut b = Batch::default();
        b.put(b"x/1", b"a").put(b"x/2", b"b");
        s.apply(&b).unwrap();
        let mut b = Batch::default();
        b.expect(b"x/1", b"WRONG").put(b"x/3", b"c").delete(b"x/2");
        assert!(matches!(s.apply(&b), Err(StoreError::Conflict)));
        // Nothing of the failed batch was written.
        assert_eq!(s.get(b"x/3").unwrap(), None);
        assert!(s.get(b"x/2").unwrap().is_some());
        let mut b = Batch::default();
        b.expect(b"x/1", b"a").put(b"x/3", b"c").delete(b"x/2");
        s.apply(&b).unwrap();
        assert_eq!(s.get(b"x/2").unwrap(), None);
    }

    #[test]
    fn scan_pages_through_a_prefix() {
        let s = SledStore::temporary().unwrap();
        let mut b = Batch::default();
        for i in 0..10u8 {
            b.put(format!("p/{i}").as_bytes(), &[i]);
        }
        b.put(b"q/0", b"z");
        s.apply(&b).unwrap();
        let first = s.scan(b"p/", None, 4).unwrap();
        assert_eq!(first.len(), 4);
        let rest = s.scan(b"p/", Some(&first[3].0), 100).unwrap();
        assert_eq!(rest.len(), 6);
        assert!(rest.iter().all(|(k, _)| k.starts_with(b"p/")));
    }

    #[tokio::test]
    async fn data_survives_reopen_and_format_is_recorded() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = SledStore::open(dir.path()).unwrap();
            let mut b = Batch::default();
            b.put(b"k", b"v");
            s.apply(&b).unwrap();
            s.sync().await.unwrap();
        }
        let s = SledStore::open(dir.path()).unwrap();
        assert_eq!(s.get(b"k").unwrap().as_deref(), Some(&b"v"[..]));
        let text = std::fs::read_to_string(dir.path().join("FORMAT")).unwrap();
        assert_eq!(text.trim(), "coffer-data-format 1");
    }

    /// 32 writers applying and syncing at once, with readers alongside: sled 0.34
    /// deadlocked here before the flusher/gate design (see `Durability`). The workload
    /// runs on its own thread so a deadlock fails the test instead of hanging it.
    #[test]
    fn concurrent_durable_writers_and_readers_do_not_deadlock() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SledStore::open(dir.path()).unwrap());
        let (tx, rx) = std::sync::mpsc::channel();
        let s = store.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(4)
                .build()
                .unwrap();
            rt.block_on(async move {
                let mut tasks = Vec::new();
                for w in 0..32u32 {
                    let s = s.clone();
                    tasks.push(tokio::spawn(async move {
                        for i in 0..40u32 {
                            let key = format!("w/{w}/{i}");
                            let mut b = Batch::default();
                            b.expect_absent(key.as_bytes()).put(key.as_bytes(), b"v");
                            s.apply(&b).unwrap();
                            s.sync().await.unwrap();
                            let _ = s.get(format!("w/{}/{i}", (w + 1) % 32).as_bytes()).unwrap();
                        }
                    }));
                }
                for t in tasks {
                    t.await.unwrap();
                }
            });
            let _ = tx.send(());
        });
        rx.recv_timeout(std::time::Duration::from_secs(120))
            .expect("32 concurrent durable writers finish (no deadlock)");
        assert_eq!(store.scan(b"w/", None, usize::MAX).unwrap().len(), 32 * 40);
    }

    #[test]
    fn unknown_format_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("FORMAT"), "coffer-data-format 99\n").unwrap();
        let err = SledStore::open(dir.path()).err().unwrap();
        assert!(err.to_string().contains("format 99"));
    }
}
