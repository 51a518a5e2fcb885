//! The Coffer domain: secrets with versions and staging labels (the Secrets Manager half),
//! KMS keys with versions, aliases and envelope operations (the KMS half), regions,
//! bearer tokens, and the tamper-evident audit log ([`audit`]).
//!
//! `coffer-core` owns every business rule. It stores only ciphertext and metadata through
//! the [`coffer_store::Store`] trait and does all cryptography through `coffer-crypto`.
//! It knows no HTTP, no policy engine and no wasmtime: the server authenticates, asks the
//! policy engine, then calls one method here per API operation, so every front door
//! (native REST, AWS protocol) shares the same rules.
//!
//! ```
//! # async fn demo() -> Result<(), coffer_core::CoreError> {
//! use std::sync::Arc;
//! use coffer_core::{Coffer, CoreConfig};
//! let store = Arc::new(coffer_store::SledStore::temporary()?);
//! let root = Arc::new(coffer_crypto::MemoryRootKey::generate());
//! let coffer = Coffer::new(store, root, CoreConfig::default())?;
//! let req = coffer_api::CreateSecretRequest {
//!     name: "prod/db".into(),
//!     secret_string: Some("s3cr3t".into()),
//!     ..Default::default()
//! };
//! coffer.create_secret("local", &req).await?;
//! let v = coffer.get_secret_value("local", "prod/db", None, None).await?;
//! assert_eq!(v.secret_string.as_deref(), Some("s3cr3t"));
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod audit;
mod decoded;
mod keys;
mod names;
mod password;
mod records;
pub mod rotation;
pub mod rotation_api;
mod secrets;
mod tokens;

#[cfg(test)]
mod rotation_tests;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use coffer_crypto::{CryptoError, KeyMaterial, RootKeyProvider};
use coffer_store::{Store, StoreError};
use time::OffsetDateTime;

pub use audit::KeyUse;
pub use names::{validate_region, SecretName};
pub use password::generate_password;
pub use tokens::{Authenticated, TokenParts};

/// Staging label of the current version.
pub const AWSCURRENT: &str = "AWSCURRENT";
/// Staging label of the version being rotated in.
pub const AWSPENDING: &str = "AWSPENDING";
/// Staging label of the previous current version.
pub const AWSPREVIOUS: &str = "AWSPREVIOUS";
/// Largest secret value, in bytes.
pub const MAX_SECRET_VALUE_BYTES: usize = 65_536;
/// Largest Encrypt plaintext, in bytes.
pub const MAX_ENCRYPT_PLAINTEXT_BYTES: usize = 4_096;

/// Errors of domain operations; each maps to one HTTP status and error code.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CoreError {
    /// The named secret, version, key or alias does not exist (404).
    #[error("{0}")]
    NotFound(String),
    /// A resource with that name or id already exists, or an idempotency token was reused
    /// with different content (409).
    #[error("{0}")]
    AlreadyExists(String),
    /// A parameter is malformed or out of range (400).
    #[error("{0}")]
    InvalidParameter(String),
    /// The resource is in a state that forbids the operation: deleted secret, disabled
    /// key, label rules (409).
    #[error("{0}")]
    InvalidState(String),
    /// A value is larger than allowed (413).
    #[error("{0}")]
    TooLarge(String),
    /// Decryption failed an integrity check: wrong key, wrong context, or altered or moved
    /// ciphertext (422).
    #[error("{0}")]
    Integrity(String),
    /// Too many concurrent writers to one record; retry (409).
    #[error("concurrent modification of {0}; retry the request")]
    Contention(String),
    /// The store failed (503).
    #[error("storage unavailable: {0}")]
    Storage(String),
    /// A bug or corrupt record (500).
    #[error("internal error: {0}")]
    Internal(String),
}

impl CoreError {
    /// Stable error code for the wire.
    pub fn code(&self) -> &'static str {
        match self {
            CoreError::NotFound(_) => "ResourceNotFound",
            CoreError::AlreadyExists(_) => "ResourceExists",
            CoreError::InvalidParameter(_) => "InvalidParameter",
            CoreError::InvalidState(_) => "InvalidState",
            CoreError::TooLarge(_) => "ValueTooLarge",
            CoreError::Integrity(_) => "IntegrityCheckFailed",
            CoreError::Contention(_) => "ConcurrentModification",
            CoreError::Storage(_) => "ServiceUnavailable",
            CoreError::Internal(_) => "InternalError",
        }
    }
}

impl From<StoreError> for CoreError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict => CoreError::Contention("a record".into()),
            other => CoreError::Storage(other.to_string()),
        }
    }
}

impl From<CryptoError> for CoreError {
    fn from(e: CryptoError) -> Self {
        match e {
            CryptoError::Integrity => CoreError::Integrity(e.to_string()),
            CryptoError::Malformed(m) => {
                CoreError::InvalidParameter(format!("invalid ciphertext: {m}"))
            }
            other => CoreError::Internal(other.to_string()),
        }
    }
}

/// Result alias.
pub type Result<T, E = CoreError> = std::result::Result<T, E>;

/// A source of "now", replaceable in tests.
pub type Clock = Arc<dyn Fn() -> OffsetDateTime + Send + Sync>;

/// Settings of the domain.
#[derive(Clone)]
pub struct CoreConfig {
    /// Regions requests may name; the first is the default.
    pub regions: Vec<String>,
    /// Most versions a secret keeps; versions without a label are pruned past it.
    pub max_versions: usize,
    /// Source of time.
    pub clock: Clock,
    /// Delay before the first automatic retry of a rotation step that failed with a
    /// transient error; doubles with every further failure (default 30 s).
    pub rotation_backoff_base: std::time::Duration,
    /// Longest delay between automatic retries (default 1 h).
    pub rotation_backoff_max: std::time::Duration,
    /// How long a node owns a rotation it runs before another node may take it over
    /// (renewed after every step; default 5 min, a few plugin step timeouts).
    pub rotation_lease: std::time::Duration,
    /// TEST ONLY (fault injection): abort the process right after the progress of this
    /// rotation step is durably stored, to prove that a crash resumes correctly. The
    /// server sets it only from `COFFER_TEST_CRASH_AFTER_STEP`; never set it in
    /// production.
    pub rotation_crash_after: Option<rotation_api::RotationStep>,
}

impl Default for CoreConfig {
    fn default() -> Self {
        CoreConfig {
            regions: vec!["local".to_string()],
            max_versions: 100,
            clock: Arc::new(OffsetDateTime::now_utc),
            rotation_backoff_base: std::time::Duration::from_secs(30),
            rotation_backoff_max: std::time::Duration::from_secs(3600),
            rotation_lease: std::time::Duration::from_secs(300),
            rotation_crash_after: None,
        }
    }
}

impl std::fmt::Debug for CoreConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CoreConfig")
            .field("regions", &self.regions)
            .field("max_versions", &self.max_versions)
            .field("rotation_backoff_base", &self.rotation_backoff_base)
            .field("rotation_backoff_max", &self.rotation_backoff_max)
            .field("rotation_lease", &self.rotation_lease)
            .field("rotation_crash_after", &self.rotation_crash_after)
            .finish()
    }
}

/// The domain service. Cheap to share behind an `Arc`; all methods take `&self`.
pub struct Coffer {
    store: Arc<dyn Store>,
    root: Arc<dyn RootKeyProvider>,
    config: CoreConfig,
    /// Unwrapped key versions by (region, key id, version).
    key_cache: RwLock<HashMap<(String, String, u32), Arc<KeyMaterial>>>,
    /// Records the read path decoded, by store key.
    decoded: Decoded,
    /// Striped locks that queue writers of the same record inside this process.
    write_locks: Vec<Mutex<()>>,
    /// The newest audit record this process appended (for the checkpoint).
    audit_tip: Mutex<audit::AuditTip>,
}

/// The read path's decoded records (see [`decoded`]), bounded: ~4 KiB per secret read
/// (its record and its version's), ~8 MiB when full (README, `store_cache_mb`).
struct Decoded {
    secrets: decoded::DecodedCache<records::SecretRecord>,
    versions: decoded::DecodedCache<records::VersionRecord>,
    keys: decoded::DecodedCache<records::KeyRecord>,
    tokens: decoded::DecodedCache<records::TokenRecord>,
}

impl Default for Decoded {
    fn default() -> Self {
        Decoded {
            secrets: decoded::DecodedCache::new(2048),
            versions: decoded::DecodedCache::new(2048),
            keys: decoded::DecodedCache::new(512),
            tokens: decoded::DecodedCache::new(512),
        }
    }
}

/// How many times an optimistic write is retried before giving up.
const MAX_ATTEMPTS: usize = 16;
/// Number of write-lock stripes.
const WRITE_LOCK_STRIPES: usize = 64;

impl Coffer {
    /// Builds the service over a store and a root key.
    pub fn new(
        store: Arc<dyn Store>,
        root: Arc<dyn RootKeyProvider>,
        config: CoreConfig,
    ) -> Result<Self> {
        if config.regions.is_empty() {
            return Err(CoreError::InvalidParameter(
                "at least one region must be configured".into(),
            ));
        }
        for r in &config.regions {
            validate_region(r)?;
        }
        Ok(Coffer {
            store,
            root,
            config,
            key_cache: RwLock::new(HashMap::new()),
            decoded: Decoded::default(),
            write_locks: (0..WRITE_LOCK_STRIPES).map(|_| Mutex::new(())).collect(),
            audit_tip: Mutex::default(),
        })
    }

    /// The default region (the first configured).
    pub fn default_region(&self) -> &str {
        &self.config.regions[0]
    }

    /// Checks that `region` is configured.
    pub fn check_region(&self, region: &str) -> Result<()> {
        if self.config.regions.iter().any(|r| r == region) {
            Ok(())
        } else {
            Err(CoreError::InvalidParameter(format!(
                "unknown region {region:?}; configured regions: {}",
                self.config.regions.join(", ")
            )))
        }
    }

    /// The write lock of the record named by (region, id). Held only around one
    /// read-compute-apply step, never across an `.await`.
    pub(crate) fn write_lock(&self, region: &str, id: &str) -> MutexGuard<'_, ()> {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (region, id).hash(&mut h);
        let lock = &self.write_locks[(h.finish() as usize) % self.write_locks.len()];
        lock.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn now(&self) -> OffsetDateTime {
        (self.config.clock)()
    }

    /// Makes everything applied so far durable.
    async fn durable(&self) -> Result<()> {
        self.store.sync().await.map_err(CoreError::from)
    }

    /// Dev-mode reset: removes every record and cached key. The audit log (and the keys
    /// that pin it) stays: a reset is itself audited.
    pub fn reset(&self) -> Result<()> {
        let pins: Vec<_> = [audit::HEAD_KEY, audit::BASE_KEY]
            .into_iter()
            .map(|k| self.store.get(k).map(|v| (k, v)))
            .collect::<std::result::Result<_, _>>()?;
        self.store.clear()?;
        let mut b = coffer_store::Batch::default();
        for (k, v) in pins {
            if let Some(v) = v {
                b.put(k, &v);
            }
        }
        if !b.is_empty() {
            self.store.apply(&b)?;
        }
        if let Ok(mut c) = self.key_cache.write() {
            c.clear();
        }
        Ok(())
    }

    /// Checks that the store answers (for `/readyz`).
    pub fn ready(&self) -> Result<()> {
        self.store.get(b"meta/format-version")?;
        Ok(())
    }

    /// Background housekeeping: purges secrets past their recovery window, deletes keys
    /// past their pending-deletion date and rotates keys whose automatic rotation is due.
    /// Returns how many records changed.
    pub async fn housekeeping(&self) -> Result<usize> {
        let mut n = 0;
        for region in self.config.regions.clone() {
            n += self.purge_expired_secrets(&region)?;
            n += self.run_key_schedules(&region)?;
        }
        if n > 0 {
            self.durable().await?;
        }
        Ok(n)
    }
}

/// RFC 3339 in whole seconds, the precision records store, so a time shown when it is set
/// reads the same when shown again from the stored record.
pub(crate) fn fmt_time(t: OffsetDateTime) -> String {
    let t = t.replace_nanosecond(0).unwrap_or(t);
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}
