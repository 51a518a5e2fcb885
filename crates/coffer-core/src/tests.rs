//! Unit tests of coffer-core. Each test drives the public domain API the way the server
//! does, over a real (temporary) sled store, an in-memory root key and a clock the test
//! moves by hand. Tamper tests reach into the store through the `Store` trait only, using
//! the key layout documented in `records.rs`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use base64::Engine;
use coffer_api::{
    CreateAliasRequest, CreateKeyRequest, CreateSecretRequest, CreateTokenRequest, DecryptRequest,
    EncryptRequest, EncryptResponse, GenerateDataKeyRequest, GenerateRandomRequest,
    KeyRotationPolicyRequest, ListSecretsQuery, PutSecretValueRequest, ReEncryptRequest,
    ScheduleKeyDeletionRequest, SecretValue, SecretVersionRef, UpdateStageRequest,
};
use coffer_crypto::MemoryRootKey;
use coffer_store::{Batch, SledStore, Store};
use rand::distributions::{Alphanumeric, DistString};
use time::{Duration, OffsetDateTime};

use crate::{
    Clock, Coffer, CoreConfig, CoreError, Result, AWSCURRENT, AWSPENDING, AWSPREVIOUS,
    MAX_ENCRYPT_PLAINTEXT_BYTES, MAX_SECRET_VALUE_BYTES,
};

const LOCAL: &str = "local";
const EU: &str = "eu";
const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// Asserts that `$e` is an `Err` matching `$pat`, printing what came instead.
macro_rules! assert_err {
    ($e:expr, $pat:pat) => {
        match $e {
            Err($pat) => {}
            other => panic!(
                "expected Err({}), got {:?}",
                stringify!($pat),
                other.map(|_| "Ok(..)")
            ),
        }
    };
}

// =========================================================================== harness

/// A clock that stands still until the test advances it.
#[derive(Clone)]
struct TestClock(Arc<Mutex<OffsetDateTime>>);

impl TestClock {
    fn new() -> Self {
        let start = OffsetDateTime::from_unix_timestamp(1_700_000_000).expect("valid time");
        TestClock(Arc::new(Mutex::new(start)))
    }
    fn advance(&self, d: Duration) {
        *self.0.lock().expect("clock lock") += d;
    }
    fn as_clock(&self) -> Clock {
        let t = self.0.clone();
        Arc::new(move || *t.lock().expect("clock lock"))
    }
}

/// The service under test plus the handles a test needs to look behind it.
struct Env {
    coffer: Coffer,
    store: Arc<SledStore>,
    clock: TestClock,
}

fn env() -> Env {
    env_with(|_| {})
}

fn env_with(tweak: impl FnOnce(&mut CoreConfig)) -> Env {
    env_over(tweak, |sled| sled)
}

/// An environment whose service sees the sled store through `wrap`.
fn env_over(
    tweak: impl FnOnce(&mut CoreConfig),
    wrap: impl FnOnce(Arc<SledStore>) -> Arc<dyn Store>,
) -> Env {
    let clock = TestClock::new();
    let mut config = CoreConfig {
        regions: vec![LOCAL.to_string()],
        max_versions: 100,
        clock: clock.as_clock(),
        ..CoreConfig::default()
    };
    tweak(&mut config);
    let store = Arc::new(SledStore::temporary().expect("temporary store"));
    let coffer = Coffer::new(
        wrap(store.clone()),
        Arc::new(MemoryRootKey::generate()),
        config,
    )
    .expect("service builds");
    Env {
        coffer,
        store,
        clock,
    }
}

/// Sled, but every read takes a moment: concurrent read-modify-writes then really overlap
/// between their read and their conditional write.
struct SlowReads(Arc<SledStore>);

impl Store for SlowReads {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, coffer_store::StoreError> {
        std::thread::sleep(std::time::Duration::from_millis(3));
        self.0.get(key)
    }
    fn scan(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>, coffer_store::StoreError> {
        self.0.scan(prefix, after, limit)
    }
    fn apply(&self, batch: &Batch) -> Result<(), coffer_store::StoreError> {
        self.0.apply(batch)
    }
    fn sync(&self) -> coffer_store::SyncFuture<'_> {
        self.0.sync()
    }
    fn clear(&self) -> Result<(), coffer_store::StoreError> {
        self.0.clear()
    }
    fn audit_log(&self) -> &coffer_store::LineLog {
        self.0.audit_log()
    }
}

/// A 32-character idempotency token made of one repeated character.
fn token(c: char) -> String {
    c.to_string().repeat(32)
}

fn string_value(s: &str) -> Option<String> {
    Some(s.to_string())
}

fn ctx(pairs: &[(&str, &str)]) -> Option<BTreeMap<String, String>> {
    Some(
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

impl Env {
    // ------------------------------------------------------------- secrets

    async fn create_in(&self, region: &str, name: &str, value: &str) -> SecretVersionRef {
        self.coffer
            .create_secret(
                region,
                &CreateSecretRequest {
                    name: name.into(),
                    secret_string: string_value(value),
                    ..Default::default()
                },
            )
            .await
            .unwrap_or_else(|e| panic!("create {name}: {e:?}"))
    }

    async fn create(&self, name: &str, value: &str) -> SecretVersionRef {
        self.create_in(LOCAL, name, value).await
    }

    async fn put_req(&self, id: &str, req: PutSecretValueRequest) -> Result<SecretVersionRef> {
        self.coffer.put_secret_value(LOCAL, id, &req).await
    }

    async fn put(&self, id: &str, value: &str) -> SecretVersionRef {
        self.put_req(
            id,
            PutSecretValueRequest {
                secret_string: string_value(value),
                ..Default::default()
            },
        )
        .await
        .unwrap_or_else(|e| panic!("put {id}: {e:?}"))
    }

    async fn get(&self, id: &str) -> Result<SecretValue> {
        self.coffer.get_secret_value(LOCAL, id, None, None).await
    }

    async fn get_stage(&self, id: &str, stage: &str) -> Result<SecretValue> {
        self.coffer
            .get_secret_value(LOCAL, id, None, Some(stage))
            .await
    }

    /// The current string value; panics when the secret cannot be read.
    async fn value(&self, id: &str) -> String {
        let v = self
            .get(id)
            .await
            .unwrap_or_else(|e| panic!("get {id}: {e:?}"));
        v.secret_string.clone().expect("a string value")
    }

    fn version_count(&self, id: &str, include_deprecated: bool) -> usize {
        self.coffer
            .list_secret_versions(LOCAL, id, include_deprecated)
            .expect("list versions")
            .versions
            .len()
    }

    /// Version id → labels, as DescribeSecret reports them.
    fn stages(&self, id: &str) -> BTreeMap<String, Vec<String>> {
        self.coffer
            .describe_secret(LOCAL, id)
            .expect("describe")
            .version_ids_to_stages
    }

    async fn move_stage(
        &self,
        id: &str,
        label: &str,
        to: Option<&str>,
        from: Option<&str>,
    ) -> Result<()> {
        self.coffer
            .update_secret_version_stage(
                LOCAL,
                id,
                &UpdateStageRequest {
                    version_stage: label.into(),
                    move_to_version_id: to.map(str::to_string),
                    remove_from_version_id: from.map(str::to_string),
                },
            )
            .await
            .map(|_| ())
    }

    fn list(&self, q: ListSecretsQuery) -> Vec<String> {
        self.coffer
            .list_secrets(LOCAL, &q)
            .expect("list")
            .secrets
            .into_iter()
            .map(|d| d.name)
            .collect()
    }

    // ------------------------------------------------------------- keys

    async fn new_key_in(&self, region: &str) -> String {
        self.coffer
            .create_key(region, &CreateKeyRequest::default())
            .await
            .expect("create key")
            .key_id
    }

    async fn new_key(&self) -> String {
        self.new_key_in(LOCAL).await
    }

    fn encrypt_in(
        &self,
        region: &str,
        key: &str,
        plaintext: &[u8],
        context: Option<BTreeMap<String, String>>,
    ) -> Result<EncryptResponse> {
        self.coffer.encrypt(
            region,
            key,
            &EncryptRequest {
                plaintext: B64.encode(plaintext),
                encryption_context: context,
            },
        )
    }

    fn encrypt(
        &self,
        key: &str,
        plaintext: &[u8],
        context: Option<BTreeMap<String, String>>,
    ) -> Result<EncryptResponse> {
        self.encrypt_in(LOCAL, key, plaintext, context)
    }

    fn decrypt_in(
        &self,
        region: &str,
        blob: &str,
        context: Option<BTreeMap<String, String>>,
    ) -> Result<Vec<u8>> {
        let r = self.coffer.decrypt(
            region,
            &DecryptRequest {
                ciphertext_blob: blob.to_string(),
                encryption_context: context,
                key_id: None,
            },
        )?;
        Ok(B64.decode(&r.plaintext).expect("base64 plaintext"))
    }

    fn decrypt(&self, blob: &str, context: Option<BTreeMap<String, String>>) -> Result<Vec<u8>> {
        self.decrypt_in(LOCAL, blob, context)
    }

    async fn set_enabled(&self, key: &str, enabled: bool) {
        self.coffer
            .set_key_enabled(LOCAL, key, enabled)
            .await
            .expect("enable/disable key");
    }

    async fn schedule_deletion(&self, key: &str, days: Option<u32>) -> Result<()> {
        self.coffer
            .schedule_key_deletion(
                LOCAL,
                key,
                &ScheduleKeyDeletionRequest {
                    pending_window_in_days: days,
                },
            )
            .await
            .map(|_| ())
    }

    async fn create_alias(&self, alias: &str, key: &str) -> Result<()> {
        self.coffer
            .create_alias(
                LOCAL,
                &CreateAliasRequest {
                    alias_name: alias.into(),
                    target_key_id: key.into(),
                },
            )
            .await
            .map(|_| ())
    }

    fn aliases_of(&self, key: &str) -> Vec<String> {
        self.coffer
            .describe_key(LOCAL, key)
            .expect("describe key")
            .aliases
    }

    // ------------------------------------------------------------- tokens

    async fn new_token(&self, principal: &str, ttl_seconds: Option<u64>) -> (String, String) {
        let t = self
            .coffer
            .create_token(&CreateTokenRequest {
                principal: principal.into(),
                description: None,
                ttl_seconds,
            })
            .await
            .expect("create token");
        (t.token.clone(), t.info.token_id.clone())
    }

    fn principal_of(&self, token: &str) -> Option<String> {
        self.coffer
            .authenticate(token)
            .expect("authenticate does not fail on bad input")
            .map(|a| a.principal)
    }

    // ------------------------------------------------------------- raw store

    fn raw_keys(&self, prefix: &str) -> Vec<String> {
        self.store
            .scan(prefix.as_bytes(), None, usize::MAX)
            .expect("scan")
            .into_iter()
            .map(|(k, _)| String::from_utf8(k).expect("utf-8 key"))
            .collect()
    }

    /// The store key `r/<region>/version/<uid>/<vid>` of a version, found by its id.
    fn version_key_of(&self, region: &str, vid: &str) -> String {
        let suffix = format!("/{vid}");
        let found: Vec<String> = self
            .raw_keys(&format!("r/{region}/version/"))
            .into_iter()
            .filter(|k| k.ends_with(&suffix))
            .collect();
        assert_eq!(found.len(), 1, "exactly one record for version {vid}");
        found.into_iter().next().expect("one key")
    }

    /// Overwrites the record at `dst` with the raw bytes stored at `src`.
    fn copy_raw(&self, src: &str, dst: &str) {
        let bytes = self
            .store
            .get(src.as_bytes())
            .expect("get")
            .expect("source record exists");
        let mut b = Batch::default();
        b.put(dst.as_bytes(), &bytes);
        self.store.apply(&b).expect("apply");
    }
}

// =========================================================================== create / get

#[tokio::test]
async fn create_then_get_by_name_and_by_arn() {
    let e = env();
    let created = e.create("prod/db/password", "s3cr3t").await;
    assert_eq!(created.version_stages, vec![AWSCURRENT.to_string()]);

    let by_name = e.get("prod/db/password").await.expect("get by name");
    assert_eq!(by_name.secret_string.as_deref(), Some("s3cr3t"));
    assert_eq!(by_name.secret_binary, None);
    assert_eq!(Some(by_name.version_id.clone()), created.version_id);

    assert!(created
        .arn
        .starts_with("arn:coffer:secretsmanager:local:secret:prod/db/password-"));
    let by_arn = e.get(&created.arn).await.expect("get by ARN");
    assert_eq!(by_arn.secret_string.as_deref(), Some("s3cr3t"));
    assert_eq!(by_arn.name, "prod/db/password");

    // An ARN with another random suffix names another (possibly deleted and recreated) secret.
    let wrong_suffix = format!("{}x", created.arn);
    assert_err!(e.get(&wrong_suffix).await, CoreError::NotFound(_));
}

#[tokio::test]
async fn binary_value_round_trips_as_base64() {
    let e = env();
    let bytes: Vec<u8> = (0u8..=255).collect();
    e.coffer
        .create_secret(
            LOCAL,
            &CreateSecretRequest {
                name: "certs/key.der".into(),
                secret_binary: Some(B64.encode(&bytes)),
                ..Default::default()
            },
        )
        .await
        .expect("create binary");
    let v = e.get("certs/key.der").await.expect("get");
    assert_eq!(v.secret_string, None);
    let got = B64
        .decode(v.secret_binary.as_deref().expect("binary value"))
        .expect("base64");
    assert_eq!(got, bytes);
}

#[tokio::test]
async fn get_of_missing_secret_is_not_found() {
    let e = env();
    assert_err!(e.get("does/not/exist").await, CoreError::NotFound(_));
    e.create("exists", "v").await;
    assert_err!(e.get("exist").await, CoreError::NotFound(_));
}

#[tokio::test]
async fn invalid_secret_names_are_rejected() {
    let e = env();
    for bad in ["", "has space", "semi;colon", "ünïcode", &"a".repeat(513)] {
        let r = e
            .coffer
            .create_secret(
                LOCAL,
                &CreateSecretRequest {
                    name: bad.to_string(),
                    secret_string: string_value("v"),
                    ..Default::default()
                },
            )
            .await;
        assert_err!(r, CoreError::InvalidParameter(_));
        assert_err!(e.get(bad).await, CoreError::InvalidParameter(_));
    }
}

#[tokio::test]
async fn secret_value_limit_is_65536_bytes() {
    let e = env();
    let at_limit = "x".repeat(MAX_SECRET_VALUE_BYTES);
    assert_eq!(at_limit.len(), 65_536);
    e.create("big", &at_limit).await;
    assert_eq!(e.value("big").await, at_limit);

    let over = "x".repeat(MAX_SECRET_VALUE_BYTES + 1);
    let r = e
        .coffer
        .create_secret(
            LOCAL,
            &CreateSecretRequest {
                name: "too-big".into(),
                secret_string: Some(over.clone()),
                ..Default::default()
            },
        )
        .await;
    assert_err!(r, CoreError::TooLarge(_));
    assert_err!(e.get("too-big").await, CoreError::NotFound(_));

    let r = e
        .put_req(
            "big",
            PutSecretValueRequest {
                secret_binary: Some(B64.encode(over.as_bytes())),
                ..Default::default()
            },
        )
        .await;
    assert_err!(r, CoreError::TooLarge(_));
    assert_eq!(
        e.value("big").await,
        at_limit,
        "a refused put changes nothing"
    );
}

#[tokio::test]
async fn creating_an_existing_name_is_already_exists() {
    let e = env();
    e.create("app/key", "one").await;
    let r = e
        .coffer
        .create_secret(
            LOCAL,
            &CreateSecretRequest {
                name: "app/key".into(),
                secret_string: string_value("two"),
                ..Default::default()
            },
        )
        .await;
    assert_err!(r, CoreError::AlreadyExists(_));
    assert_eq!(e.value("app/key").await, "one");
}

// =========================================================================== versions

#[tokio::test]
async fn put_moves_current_and_previous_atomically() {
    let e = env();
    let v1 = e.create("app", "one").await.version_id.expect("v1");
    let v2 = e.put("app", "two").await;
    assert_eq!(v2.version_stages, vec![AWSCURRENT.to_string()]);
    let v2 = v2.version_id.expect("v2");
    let v3 = e.put("app", "three").await.version_id.expect("v3");

    let stages = e.stages("app");
    assert_eq!(stages.get(&v3), Some(&vec![AWSCURRENT.to_string()]));
    assert_eq!(stages.get(&v2), Some(&vec![AWSPREVIOUS.to_string()]));
    assert_eq!(stages.get(&v1), None, "v1 lost its labels");
    let currents = stages
        .values()
        .filter(|l| l.iter().any(|l| l == AWSCURRENT))
        .count();
    assert_eq!(currents, 1, "exactly one version holds AWSCURRENT");

    let listed = e
        .coffer
        .list_secret_versions(LOCAL, "app", true)
        .expect("list");
    assert_eq!(listed.versions.len(), 3);
    let listed_currents = listed
        .versions
        .iter()
        .filter(|v| v.version_stages.iter().any(|l| l == AWSCURRENT))
        .count();
    assert_eq!(listed_currents, 1);
    assert_eq!(e.version_count("app", false), 2, "v1 is deprecated");
    assert_eq!(e.value("app").await, "three");
}

#[tokio::test]
async fn get_by_previous_stage_and_by_version_id_returns_that_value() {
    let e = env();
    let v1 = e.create("app", "one").await.version_id.expect("v1");
    e.put("app", "two").await;

    let prev = e.get_stage("app", AWSPREVIOUS).await.expect("previous");
    assert_eq!(prev.secret_string.as_deref(), Some("one"));
    assert_eq!(prev.version_id, v1);
    assert_eq!(prev.version_stages, vec![AWSPREVIOUS.to_string()]);

    let by_id = e
        .coffer
        .get_secret_value(LOCAL, "app", Some(&v1), None)
        .await
        .expect("by id");
    assert_eq!(by_id.secret_string.as_deref(), Some("one"));

    // Version id and stage together must agree.
    let r = e
        .coffer
        .get_secret_value(LOCAL, "app", Some(&v1), Some(AWSCURRENT))
        .await;
    assert_err!(r, CoreError::NotFound(_));
    let r = e
        .coffer
        .get_secret_value(LOCAL, "app", Some(&"0".repeat(36)), None)
        .await;
    assert_err!(r, CoreError::NotFound(_));
}

#[tokio::test]
async fn get_with_a_stage_no_version_holds_is_not_found() {
    let e = env();
    e.create("app", "one").await;
    assert_err!(
        e.get_stage("app", AWSPREVIOUS).await,
        CoreError::NotFound(_)
    );
    assert_err!(e.get_stage("app", "blue").await, CoreError::NotFound(_));
}

#[tokio::test]
async fn secret_created_without_value_has_no_current_until_put() {
    let e = env();
    let r = e
        .coffer
        .create_secret(
            LOCAL,
            &CreateSecretRequest {
                name: "later".into(),
                ..Default::default()
            },
        )
        .await
        .expect("create without value");
    assert_eq!(r.version_id, None);
    assert_err!(e.get("later").await, CoreError::NotFound(_));
    e.put("later", "now").await;
    assert_eq!(e.value("later").await, "now");
    assert_err!(
        e.get_stage("later", AWSPREVIOUS).await,
        CoreError::NotFound(_)
    );
}

#[tokio::test]
async fn put_with_pending_stage_leaves_current_alone() {
    let e = env();
    e.create("app", "one").await;
    let pending = e
        .put_req(
            "app",
            PutSecretValueRequest {
                secret_string: string_value("two"),
                version_stages: Some(vec![AWSPENDING.into()]),
                ..Default::default()
            },
        )
        .await
        .expect("put pending");
    assert_eq!(pending.version_stages, vec![AWSPENDING.to_string()]);
    assert_eq!(e.value("app").await, "one");
    let p = e.get_stage("app", AWSPENDING).await.expect("pending");
    assert_eq!(p.secret_string.as_deref(), Some("two"));
    assert_err!(
        e.get_stage("app", AWSPREVIOUS).await,
        CoreError::NotFound(_)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_puts_lose_no_update_and_keep_one_current() {
    // A clock that ticks a second per reading orders versions by creation; a successful
    // put seals after the previous successful put committed, so that is commit order.
    let ticks = Arc::new(Mutex::new(
        OffsetDateTime::from_unix_timestamp(1_700_000_000).expect("t"),
    ));
    let e = Arc::new(env_over(
        |c| {
            c.clock = Arc::new(move || {
                let mut t = ticks.lock().expect("clock");
                *t += Duration::seconds(1);
                *t
            })
        },
        |sled| Arc::new(SlowReads(sled)),
    ));
    e.create("app", "v0").await;
    let tasks: Vec<_> = (1..=8)
        .map(|i| {
            let e = e.clone();
            tokio::spawn(async move {
                let value = format!("v{i}");
                let r = e
                    .put_req(
                        "app",
                        PutSecretValueRequest {
                            secret_string: Some(value.clone()),
                            ..Default::default()
                        },
                    )
                    .await;
                (value, r)
            })
        })
        .collect();
    let mut won = BTreeMap::new();
    for t in tasks {
        let (value, r) = t.await.expect("task");
        match r {
            Ok(v) => {
                won.insert(v.version_id.expect("vid"), value);
            }
            // Giving up under contention is allowed; silently losing a write is not.
            Err(CoreError::Contention(_)) => {}
            Err(other) => panic!("put failed: {other:?}"),
        }
    }
    assert!(won.len() >= 2, "at least two concurrent puts succeed");
    let versions = e
        .coffer
        .list_secret_versions(LOCAL, "app", true)
        .expect("list")
        .versions;
    assert_eq!(
        versions.len(),
        1 + won.len(),
        "every successful put is stored"
    );
    let with = |label: &str| {
        versions
            .iter()
            .filter(|v| v.version_stages.iter().any(|l| l == label))
            .count()
    };
    assert_eq!(with(AWSCURRENT), 1);
    assert_eq!(with(AWSPREVIOUS), 1);
    // Newest first: the last committed put is current, the one before it previous. A lost
    // update leaves AWSPREVIOUS on an older version (what the last writer had read).
    assert_eq!(versions[0].version_stages, vec![AWSCURRENT.to_string()]);
    assert_eq!(versions[1].version_stages, vec![AWSPREVIOUS.to_string()]);
    assert!(won.contains_key(&versions[1].version_id));
    assert_eq!(e.value("app").await, won[&versions[0].version_id]);
}

#[tokio::test]
async fn changing_a_secrets_kms_key_applies_to_new_versions_only() {
    let e = env();
    let k1 = e.new_key().await;
    let k2 = e.new_key().await;
    e.coffer
        .create_secret(
            LOCAL,
            &CreateSecretRequest {
                name: "app".into(),
                secret_string: string_value("one"),
                kms_key_id: Some(k1.clone()),
                ..Default::default()
            },
        )
        .await
        .expect("create");
    let d = e
        .coffer
        .update_secret(
            LOCAL,
            "app",
            &coffer_api::UpdateSecretRequest {
                kms_key_id: Some(k2.clone()),
                description: Some("moved".into()),
            },
        )
        .await
        .expect("update");
    assert_eq!(d.kms_key_id.as_deref(), Some(k2.as_str()));
    e.put("app", "two").await;
    let keys: Vec<String> = e
        .coffer
        .list_secret_versions(LOCAL, "app", true)
        .expect("list")
        .versions
        .into_iter()
        .map(|v| v.kms_key_id)
        .collect();
    assert!(keys.contains(&k1) && keys.contains(&k2), "{keys:?}");
    // Both versions read; disabling the old key only affects the old version.
    e.set_enabled(&k1, false).await;
    assert_eq!(e.value("app").await, "two");
    assert_err!(
        e.get_stage("app", AWSPREVIOUS).await,
        CoreError::InvalidState(_)
    );
}

// =========================================================================== idempotency

#[tokio::test]
async fn put_retry_with_same_token_and_value_is_a_noop() {
    let e = env();
    e.create("app", "one").await;
    let req = PutSecretValueRequest {
        secret_string: string_value("two"),
        client_request_token: Some(token('a')),
        ..Default::default()
    };
    let first = e.put_req("app", req.clone()).await.expect("first put");
    let count = e.version_count("app", true);
    let stages = e.stages("app");
    let second = e.put_req("app", req).await.expect("retried put");

    assert_eq!(
        first.version_id,
        Some(token('a')),
        "the token is the version id"
    );
    assert_eq!(second.version_id, first.version_id);
    assert_eq!(e.version_count("app", true), count, "no new version");
    assert_eq!(e.stages("app"), stages, "labels unchanged by the retry");
    assert_eq!(e.value("app").await, "two");
    let prev = e.get_stage("app", AWSPREVIOUS).await.expect("previous");
    assert_eq!(
        prev.secret_string.as_deref(),
        Some("one"),
        "PREVIOUS not clobbered"
    );
}

#[tokio::test]
async fn put_with_same_token_and_different_value_is_already_exists() {
    let e = env();
    e.create("app", "one").await;
    let mut req = PutSecretValueRequest {
        secret_string: string_value("two"),
        client_request_token: Some(token('b')),
        ..Default::default()
    };
    e.put_req("app", req.clone()).await.expect("first put");
    let count = e.version_count("app", true);
    req.secret_string = string_value("other");
    assert_err!(e.put_req("app", req).await, CoreError::AlreadyExists(_));
    assert_eq!(e.version_count("app", true), count);
    assert_eq!(e.value("app").await, "two");
}

#[tokio::test]
async fn create_retry_with_same_token_is_idempotent_and_different_value_conflicts() {
    let e = env();
    let req = CreateSecretRequest {
        name: "app".into(),
        secret_string: string_value("one"),
        client_request_token: Some(token('c')),
        ..Default::default()
    };
    let first = e.coffer.create_secret(LOCAL, &req).await.expect("create");
    let second = e.coffer.create_secret(LOCAL, &req).await.expect("retry");
    assert_eq!(first.version_id, Some(token('c')));
    assert_eq!(second.version_id, first.version_id);
    assert_eq!(second.arn, first.arn);
    assert_eq!(e.version_count("app", true), 1);

    let different = CreateSecretRequest {
        secret_string: string_value("two"),
        ..req
    };
    assert_err!(
        e.coffer.create_secret(LOCAL, &different).await,
        CoreError::AlreadyExists(_)
    );
    assert_eq!(e.value("app").await, "one");
    assert_eq!(e.version_count("app", true), 1);
}

#[tokio::test]
async fn malformed_client_request_token_is_rejected() {
    let e = env();
    e.create("app", "one").await;
    for bad in ["short", &"a".repeat(65), &format!("{}!", "a".repeat(32))] {
        let r = e
            .put_req(
                "app",
                PutSecretValueRequest {
                    secret_string: string_value("two"),
                    client_request_token: Some(bad.to_string()),
                    ..Default::default()
                },
            )
            .await;
        assert_err!(r, CoreError::InvalidParameter(_));
    }
    assert_eq!(e.version_count("app", true), 1);
}

// =========================================================================== staging labels

/// A secret with two versions: (v1 = AWSPREVIOUS "one", v2 = AWSCURRENT "two").
async fn two_version_secret(e: &Env, name: &str) -> (String, String) {
    let v1 = e.create(name, "one").await.version_id.expect("v1");
    let v2 = e.put(name, "two").await.version_id.expect("v2");
    (v1, v2)
}

#[tokio::test]
async fn moving_current_without_remove_from_is_refused() {
    let e = env();
    let (v1, v2) = two_version_secret(&e, "app").await;
    assert_err!(
        e.move_stage("app", AWSCURRENT, Some(&v1), None).await,
        CoreError::InvalidParameter(_)
    );
    // Naming the wrong holder is refused too.
    assert_err!(
        e.move_stage("app", AWSCURRENT, Some(&v1), Some(&v1)).await,
        CoreError::InvalidParameter(_)
    );
    assert_eq!(e.value("app").await, "two");
    assert_eq!(
        e.stages("app").get(&v2),
        Some(&vec![AWSCURRENT.to_string()])
    );
}

#[tokio::test]
async fn moving_current_with_remove_from_rolls_back_and_sets_previous() {
    let e = env();
    let (v1, v2) = two_version_secret(&e, "app").await;
    e.move_stage("app", AWSCURRENT, Some(&v1), Some(&v2))
        .await
        .expect("roll back");
    assert_eq!(e.value("app").await, "one");
    let prev = e.get_stage("app", AWSPREVIOUS).await.expect("previous");
    assert_eq!(prev.version_id, v2);
    assert_eq!(prev.secret_string.as_deref(), Some("two"));
    let stages = e.stages("app");
    assert_eq!(stages.get(&v1), Some(&vec![AWSCURRENT.to_string()]));
    assert_eq!(stages.get(&v2), Some(&vec![AWSPREVIOUS.to_string()]));
}

#[tokio::test]
async fn removing_current_is_refused() {
    let e = env();
    let (_, v2) = two_version_secret(&e, "app").await;
    assert_err!(
        e.move_stage("app", AWSCURRENT, None, Some(&v2)).await,
        CoreError::InvalidParameter(_)
    );
    assert_eq!(e.value("app").await, "two");
}

#[tokio::test]
async fn moving_a_label_to_a_missing_version_is_not_found() {
    let e = env();
    let (_, v2) = two_version_secret(&e, "app").await;
    let ghost = "f".repeat(36);
    assert_err!(
        e.move_stage("app", AWSCURRENT, Some(&ghost), Some(&v2))
            .await,
        CoreError::NotFound(_)
    );
    assert_eq!(e.value("app").await, "two");
}

#[tokio::test]
async fn custom_labels_attach_move_and_detach() {
    let e = env();
    let (v1, v2) = two_version_secret(&e, "app").await;
    e.move_stage("app", "blue", Some(&v1), None)
        .await
        .expect("attach blue");
    let blue = e.get_stage("app", "blue").await.expect("blue");
    assert_eq!(blue.secret_string.as_deref(), Some("one"));

    // Moving an attached custom label needs its holder, like AWSCURRENT.
    assert_err!(
        e.move_stage("app", "blue", Some(&v2), None).await,
        CoreError::InvalidParameter(_)
    );
    e.move_stage("app", "blue", Some(&v2), Some(&v1))
        .await
        .expect("move blue");
    let blue = e.get_stage("app", "blue").await.expect("blue");
    assert_eq!(blue.secret_string.as_deref(), Some("two"));
    assert_eq!(e.value("app").await, "two", "AWSCURRENT did not move");
    let stages = e.stages("app");
    assert!(!stages.get(&v1).is_some_and(|l| l.contains(&"blue".into())));

    e.move_stage("app", "blue", None, Some(&v2))
        .await
        .expect("detach blue");
    assert_err!(e.get_stage("app", "blue").await, CoreError::NotFound(_));
    assert_eq!(e.value("app").await, "two");
}

// =========================================================================== pruning

#[tokio::test]
async fn oldest_unlabeled_versions_are_pruned_past_max_versions() {
    let e = env_with(|c| c.max_versions = 5);
    e.create("app", "v0").await;
    let mut vids = Vec::new();
    for i in 1..=12 {
        e.clock.advance(Duration::minutes(1));
        vids.push(
            e.put("app", &format!("v{i}"))
                .await
                .version_id
                .expect("vid"),
        );
    }
    let versions = e
        .coffer
        .list_secret_versions(LOCAL, "app", true)
        .expect("list")
        .versions;
    assert!(versions.len() <= 5, "kept {} versions", versions.len());
    assert_eq!(
        e.raw_keys("r/local/version/").len(),
        versions.len(),
        "pruned versions are gone from the store, not just hidden"
    );
    // The survivors are the newest ones, newest first.
    let kept: Vec<&str> = versions.iter().map(|v| v.version_id.as_str()).collect();
    let newest: Vec<&str> = vids
        .iter()
        .rev()
        .take(kept.len())
        .map(String::as_str)
        .collect();
    assert_eq!(kept, newest);

    assert_eq!(e.value("app").await, "v12");
    let prev = e.get_stage("app", AWSPREVIOUS).await.expect("previous");
    assert_eq!(prev.secret_string.as_deref(), Some("v11"));
}

#[tokio::test]
async fn pruning_never_drops_a_labeled_version() {
    let e = env_with(|c| c.max_versions = 3);
    let v0 = e.create("app", "v0").await.version_id.expect("v0");
    // Pin the first version with a custom label; it must survive every later put.
    e.move_stage("app", "golden", Some(&v0), None)
        .await
        .expect("label v0");
    for i in 1..=6 {
        e.clock.advance(Duration::minutes(1));
        e.put("app", &format!("v{i}")).await;
    }
    assert!(e.version_count("app", true) <= 3);
    let golden = e.get_stage("app", "golden").await.expect("golden");
    assert_eq!(golden.secret_string.as_deref(), Some("v0"));
    assert_eq!(e.value("app").await, "v6");
    assert_eq!(
        e.get_stage("app", AWSPREVIOUS)
            .await
            .expect("previous")
            .secret_string
            .as_deref(),
        Some("v5")
    );
}

// =========================================================================== deletion

#[tokio::test]
async fn deleted_secret_is_unreadable_but_describable_and_listed_only_on_request() {
    let e = env();
    e.create("gone", "v").await;
    e.create("kept", "v").await;
    let resp = e
        .coffer
        .delete_secret(LOCAL, "gone", Some(7), false)
        .await
        .expect("delete");

    assert_err!(e.get("gone").await, CoreError::InvalidState(_));
    assert_err!(
        e.put_req(
            "gone",
            PutSecretValueRequest {
                secret_string: string_value("w"),
                ..Default::default()
            }
        )
        .await,
        CoreError::InvalidState(_)
    );
    let d = e.coffer.describe_secret(LOCAL, "gone").expect("describe");
    assert_eq!(d.deleted_date.as_deref(), Some(resp.deletion_date.as_str()));
    let expected = crate::fmt_time(
        OffsetDateTime::from_unix_timestamp(1_700_000_000).expect("t") + Duration::days(7),
    );
    assert_eq!(resp.deletion_date, expected);

    assert_eq!(e.list(ListSecretsQuery::default()), vec!["kept"]);
    let all = e.list(ListSecretsQuery {
        include_deleted: true,
        ..Default::default()
    });
    assert_eq!(all, vec!["gone", "kept"]);

    // Deleting twice is a state error, and the name cannot be taken while pending.
    assert_err!(
        e.coffer.delete_secret(LOCAL, "gone", Some(7), false).await,
        CoreError::InvalidState(_)
    );
    let r = e
        .coffer
        .create_secret(
            LOCAL,
            &CreateSecretRequest {
                name: "gone".into(),
                secret_string: string_value("new"),
                ..Default::default()
            },
        )
        .await;
    assert_err!(r, CoreError::InvalidState(_));
}

#[tokio::test]
async fn restore_makes_a_deleted_secret_readable_again() {
    let e = env();
    e.create("app", "one").await;
    e.coffer
        .delete_secret(LOCAL, "app", None, false)
        .await
        .expect("delete with default window");
    e.clock.advance(Duration::days(29));
    e.coffer
        .restore_secret(LOCAL, "app")
        .await
        .expect("restore");
    assert_eq!(e.value("app").await, "one");
    assert_eq!(
        e.coffer
            .describe_secret(LOCAL, "app")
            .expect("d")
            .deleted_date,
        None
    );
    // Restored means restored: housekeeping after the old date leaves it alone.
    e.clock.advance(Duration::days(2));
    e.coffer.housekeeping().await.expect("housekeeping");
    assert_eq!(e.value("app").await, "one");
}

#[tokio::test]
async fn force_delete_removes_the_secret_and_every_version_record() {
    let e = env();
    let v1 = e.create("doomed", "one").await.version_id.expect("v1");
    e.put("doomed", "two").await;
    let bystander = e.create("bystander", "x").await.version_id.expect("vid");
    let vk = e.version_key_of(LOCAL, &v1);
    let uid_prefix = vk.rsplit_once('/').expect("vid").0.to_string() + "/";
    assert_eq!(e.raw_keys(&uid_prefix).len(), 2);

    e.coffer
        .delete_secret(LOCAL, "doomed", None, true)
        .await
        .expect("force delete");
    assert_err!(e.get("doomed").await, CoreError::NotFound(_));
    assert_err!(
        e.coffer.describe_secret(LOCAL, "doomed"),
        CoreError::NotFound(_)
    );
    assert!(e.raw_keys(&uid_prefix).is_empty(), "version records left");
    assert!(e.raw_keys("r/local/secret/doomed").is_empty());
    // Only the other secret's version remains.
    assert_eq!(
        e.raw_keys("r/local/version/"),
        vec![e.version_key_of(LOCAL, &bystander)]
    );
    assert_eq!(e.value("bystander").await, "x");
    // The name is free at once.
    e.create("doomed", "three").await;
    assert_eq!(e.value("doomed").await, "three");
}

#[tokio::test]
async fn recovery_window_outside_7_to_30_days_is_rejected() {
    let e = env();
    e.create("app", "v").await;
    for days in [0, 6, 31] {
        assert_err!(
            e.coffer
                .delete_secret(LOCAL, "app", Some(days), false)
                .await,
            CoreError::InvalidParameter(_)
        );
    }
    assert_err!(
        e.coffer.delete_secret(LOCAL, "app", Some(7), true).await,
        CoreError::InvalidParameter(_)
    );
    assert_eq!(e.value("app").await, "v", "nothing was deleted");
    e.coffer
        .delete_secret(LOCAL, "app", Some(30), false)
        .await
        .expect("30 days is allowed");
}

#[tokio::test]
async fn housekeeping_purges_after_the_window_and_the_name_is_reusable() {
    let e = env();
    let v1 = e.create("app", "old").await.version_id.expect("v1");
    let vk = e.version_key_of(LOCAL, &v1);
    e.coffer
        .delete_secret(LOCAL, "app", Some(7), false)
        .await
        .expect("delete");

    // Inside the window housekeeping keeps it.
    e.clock.advance(Duration::days(6));
    e.coffer.housekeeping().await.expect("housekeeping");
    assert!(e.coffer.describe_secret(LOCAL, "app").is_ok());

    e.clock.advance(Duration::days(1) + Duration::seconds(1));
    assert!(e.coffer.housekeeping().await.expect("housekeeping") >= 1);
    assert_err!(
        e.coffer.describe_secret(LOCAL, "app"),
        CoreError::NotFound(_)
    );
    assert_err!(
        e.coffer.restore_secret(LOCAL, "app").await,
        CoreError::NotFound(_)
    );
    assert!(e.raw_keys("r/local/secret/").is_empty());
    assert_eq!(e.store.get(vk.as_bytes()).expect("get"), None);

    e.create("app", "new").await;
    assert_eq!(e.value("app").await, "new");
    assert_eq!(e.version_count("app", true), 1);
}

#[tokio::test]
async fn name_is_reusable_once_the_window_passed_even_before_housekeeping() {
    let e = env();
    let v1 = e.create("app", "old").await.version_id.expect("v1");
    let old_vk = e.version_key_of(LOCAL, &v1);
    e.coffer
        .delete_secret(LOCAL, "app", Some(7), false)
        .await
        .expect("delete");
    e.clock.advance(Duration::days(8));
    // The secret is gone for every read...
    assert_err!(e.get("app").await, CoreError::NotFound(_));
    assert_err!(
        e.coffer.restore_secret(LOCAL, "app").await,
        CoreError::NotFound(_)
    );
    assert!(e
        .list(ListSecretsQuery {
            include_deleted: true,
            ..Default::default()
        })
        .is_empty());
    // ...so creating the name again must work, and must not inherit old versions.
    e.create("app", "new").await;
    assert_eq!(e.value("app").await, "new");
    assert_eq!(e.version_count("app", true), 1);
    assert_eq!(e.store.get(old_vk.as_bytes()).expect("get"), None);
    assert_eq!(
        e.coffer
            .describe_secret(LOCAL, "app")
            .expect("d")
            .deleted_date,
        None
    );
}

// =========================================================================== list

#[tokio::test]
async fn list_pages_cover_every_secret_once_in_name_order() {
    let e = env();
    let names = ["m/3", "a/1", "z/9", "b/2", "a/0", "q", "c/c/c"];
    for n in names {
        e.create(n, "v").await;
    }
    let mut seen = Vec::new();
    let mut next = None;
    let mut pages = 0;
    loop {
        let page = e
            .coffer
            .list_secrets(
                LOCAL,
                &ListSecretsQuery {
                    max_results: Some(3),
                    next_token: next.clone(),
                    ..Default::default()
                },
            )
            .expect("list page");
        assert!(page.secrets.len() <= 3);
        seen.extend(page.secrets.into_iter().map(|d| d.name));
        pages += 1;
        assert!(pages <= 10, "pagination does not terminate");
        match page.next_token {
            Some(t) => next = Some(t),
            None => break,
        }
    }
    let mut expected: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    expected.sort();
    assert_eq!(seen, expected);
    assert_eq!(pages, 3);
}

#[tokio::test]
async fn list_page_size_must_be_1_to_100() {
    let e = env();
    for bad in [0, 101] {
        let q = ListSecretsQuery {
            max_results: Some(bad),
            ..Default::default()
        };
        assert_err!(
            e.coffer.list_secrets(LOCAL, &q),
            CoreError::InvalidParameter(_)
        );
    }
}

#[tokio::test]
async fn list_filters_by_name_prefix_tags_and_description() {
    let e = env();
    let tags = |pairs: &[(&str, &str)]| ctx(pairs);
    for (name, description, t) in [
        ("app/db", "Billing database", tags(&[("team", "payments")])),
        ("app/api", "public API key", tags(&[("team", "web")])),
        ("apple", "fruit", tags(&[("owner", "payments")])),
        ("infra/tls", "billing TLS cert", None),
    ] {
        e.coffer
            .create_secret(
                LOCAL,
                &CreateSecretRequest {
                    name: name.into(),
                    secret_string: string_value("v"),
                    description: Some(description.into()),
                    tags: t,
                    ..Default::default()
                },
            )
            .await
            .expect("create");
    }
    let q = |f: fn(&mut ListSecretsQuery)| {
        let mut q = ListSecretsQuery::default();
        f(&mut q);
        e.list(q)
    };
    assert_eq!(
        q(|q| q.name_prefix = Some("app/".into())),
        vec!["app/api", "app/db"]
    );
    assert_eq!(
        q(|q| q.name_prefix = Some("app".into())),
        vec!["app/api", "app/db", "apple"]
    );
    assert_eq!(
        q(|q| q.tag_key = Some("team".into())),
        vec!["app/api", "app/db"]
    );
    assert_eq!(
        q(|q| q.tag_value = Some("payments".into())),
        vec!["app/db", "apple"]
    );
    assert_eq!(
        q(|q| q.description = Some("BILLING".into())),
        vec!["app/db", "infra/tls"]
    );
    assert_eq!(
        q(|q| {
            q.name_prefix = Some("app/".into());
            q.description = Some("billing".into());
        }),
        vec!["app/db"]
    );
    assert!(q(|q| q.name_prefix = Some("nothing".into())).is_empty());
}

// =========================================================================== KMS: envelope operations

#[tokio::test]
async fn encrypt_decrypt_round_trip_with_encryption_context() {
    let e = env();
    let key = e.new_key().await;
    let c = ctx(&[("app", "billing"), ("env", "prod")]);
    let enc = e
        .encrypt(&key, b"attack at dawn", c.clone())
        .expect("encrypt");
    assert_eq!(enc.key_id, key);
    assert_eq!(enc.key_version, 1);
    assert_eq!(e.coffer.blob_key_id(&enc.ciphertext_blob).expect("id"), key);
    assert_eq!(
        e.decrypt(&enc.ciphertext_blob, c).expect("decrypt"),
        b"attack at dawn"
    );

    // By key ARN too.
    let arn = e.coffer.describe_key(LOCAL, &key).expect("describe").arn;
    assert_eq!(arn, format!("arn:coffer:kms:local:key/{key}"));
    assert_eq!(e.encrypt(&arn, b"p", None).expect("by ARN").key_id, key);

    // Without a context, the empty context round-trips too.
    let enc = e.encrypt(&key, b"x", None).expect("encrypt");
    assert_eq!(
        e.decrypt(&enc.ciphertext_blob, None).expect("decrypt"),
        b"x"
    );
}

#[tokio::test]
async fn decrypt_with_a_different_or_missing_context_fails_integrity() {
    let e = env();
    let key = e.new_key().await;
    let blob = e
        .encrypt(&key, b"payload", ctx(&[("app", "billing")]))
        .expect("encrypt")
        .ciphertext_blob;
    assert_err!(
        e.decrypt(&blob, ctx(&[("app", "other")])),
        CoreError::Integrity(_)
    );
    assert_err!(e.decrypt(&blob, None), CoreError::Integrity(_));
    assert_err!(
        e.decrypt(&blob, ctx(&[("app", "billing"), ("extra", "1")])),
        CoreError::Integrity(_)
    );
    // A flipped bit anywhere in the sealed part fails the same way.
    let mut raw = B64.decode(&blob).expect("b64");
    let last = raw.len() - 1;
    raw[last] ^= 1;
    assert_err!(
        e.decrypt(&B64.encode(&raw), ctx(&[("app", "billing")])),
        CoreError::Integrity(_)
    );
    // Garbage is a parameter error, not a panic.
    assert_err!(
        e.decrypt(&B64.encode(b"not a blob"), None),
        CoreError::InvalidParameter(_)
    );
}

#[tokio::test]
async fn decrypt_with_the_wrong_key_id_fails_integrity() {
    let e = env();
    let k1 = e.new_key().await;
    let k2 = e.new_key().await;
    let blob = e.encrypt(&k1, b"p", None).expect("encrypt").ciphertext_blob;
    let r = e.coffer.decrypt(
        LOCAL,
        &DecryptRequest {
            ciphertext_blob: blob,
            encryption_context: None,
            key_id: Some(k2),
        },
    );
    assert_err!(r, CoreError::Integrity(_));
}

#[tokio::test]
async fn encrypt_plaintext_limit_is_4096_bytes() {
    let e = env();
    let key = e.new_key().await;
    let at_limit = vec![7u8; MAX_ENCRYPT_PLAINTEXT_BYTES];
    let enc = e.encrypt(&key, &at_limit, None).expect("4096 bytes");
    assert_eq!(
        e.decrypt(&enc.ciphertext_blob, None).expect("decrypt"),
        at_limit
    );
    assert_err!(e.encrypt(&key, &[7u8; 4_097], None), CoreError::TooLarge(_));
    assert_err!(e.encrypt(&key, b"", None), CoreError::InvalidParameter(_));
}

#[tokio::test]
async fn disabled_key_refuses_encrypt_and_decrypt_until_enabled() {
    let e = env();
    let key = e.new_key().await;
    let blob = e
        .encrypt(&key, b"p", None)
        .expect("encrypt")
        .ciphertext_blob;

    e.set_enabled(&key, false).await;
    assert_eq!(
        e.coffer
            .describe_key(LOCAL, &key)
            .expect("describe")
            .key_state,
        "Disabled"
    );
    assert_err!(e.encrypt(&key, b"p", None), CoreError::InvalidState(_));
    assert_err!(e.decrypt(&blob, None), CoreError::InvalidState(_));
    let dk = e
        .coffer
        .generate_data_key(LOCAL, &key, &GenerateDataKeyRequest::default(), true);
    assert_err!(dk, CoreError::InvalidState(_));

    e.set_enabled(&key, true).await;
    assert_eq!(e.decrypt(&blob, None).expect("decrypt"), b"p");
    e.encrypt(&key, b"p", None).expect("encrypt again");
}

#[tokio::test]
async fn secret_under_a_disabled_key_cannot_be_read_until_enabled() {
    let e = env();
    let key = e.new_key().await;
    e.coffer
        .create_secret(
            LOCAL,
            &CreateSecretRequest {
                name: "app".into(),
                secret_string: string_value("v"),
                kms_key_id: Some(key.clone()),
                ..Default::default()
            },
        )
        .await
        .expect("create under key");
    e.set_enabled(&key, false).await;
    assert_err!(e.get("app").await, CoreError::InvalidState(_));
    e.set_enabled(&key, true).await;
    assert_eq!(e.value("app").await, "v");
}

#[tokio::test]
async fn key_deletion_window_is_7_to_30_days_and_pending_key_is_unusable() {
    let e = env();
    let key = e.new_key().await;
    let blob = e
        .encrypt(&key, b"p", None)
        .expect("encrypt")
        .ciphertext_blob;
    for bad in [0, 6, 31] {
        assert_err!(
            e.schedule_deletion(&key, Some(bad)).await,
            CoreError::InvalidParameter(_)
        );
    }
    assert_eq!(
        e.coffer.describe_key(LOCAL, &key).expect("d").key_state,
        "Enabled"
    );

    e.schedule_deletion(&key, Some(7)).await.expect("schedule");
    let md = e.coffer.describe_key(LOCAL, &key).expect("describe");
    assert_eq!(md.key_state, "PendingDeletion");
    assert!(md.deletion_date.is_some());
    assert_err!(e.encrypt(&key, b"p", None), CoreError::InvalidState(_));
    assert_err!(e.decrypt(&blob, None), CoreError::InvalidState(_));
    assert_err!(
        e.coffer.set_key_enabled(LOCAL, &key, true).await,
        CoreError::InvalidState(_)
    );

    let md = e
        .coffer
        .cancel_key_deletion(LOCAL, &key)
        .await
        .expect("cancel");
    assert_eq!(md.key_state, "Disabled");
    assert_eq!(md.deletion_date, None);
    assert_err!(e.encrypt(&key, b"p", None), CoreError::InvalidState(_));
    e.set_enabled(&key, true).await;
    assert_eq!(e.decrypt(&blob, None).expect("decrypt"), b"p");

    let other = e.new_key().await;
    e.schedule_deletion(&other, Some(30))
        .await
        .expect("30 days");
    e.schedule_deletion(&key, None)
        .await
        .expect("default window");
}

#[tokio::test]
async fn key_past_its_deletion_date_is_destroyed_by_housekeeping() {
    let e = env();
    let key = e.new_key().await;
    e.create_alias("alias/doomed", &key).await.expect("alias");
    let blob = e
        .encrypt(&key, b"p", None)
        .expect("encrypt")
        .ciphertext_blob;
    e.schedule_deletion(&key, Some(7)).await.expect("schedule");

    e.clock.advance(Duration::days(6));
    e.coffer.housekeeping().await.expect("housekeeping");
    assert!(e.coffer.describe_key(LOCAL, &key).is_ok());

    e.clock.advance(Duration::days(1) + Duration::seconds(1));
    e.coffer.housekeeping().await.expect("housekeeping");
    assert_err!(e.coffer.describe_key(LOCAL, &key), CoreError::NotFound(_));
    assert_err!(
        e.coffer.describe_key(LOCAL, "alias/doomed"),
        CoreError::NotFound(_)
    );
    assert_err!(e.decrypt(&blob, None), CoreError::Integrity(_));
}

#[tokio::test]
async fn default_secrets_key_cannot_be_scheduled_for_deletion() {
    let e = env();
    e.create("app", "v").await;
    let default = e
        .coffer
        .describe_key(LOCAL, crate::keys::DEFAULT_KEY_ALIAS)
        .expect("default key exists after the first secret");
    assert!(default.is_default);
    assert_err!(
        e.schedule_deletion(&default.key_id, Some(7)).await,
        CoreError::InvalidState(_)
    );
    assert_eq!(e.value("app").await, "v");
}

#[tokio::test]
async fn generate_data_key_plaintext_matches_its_ciphertext() {
    let e = env();
    let key = e.new_key().await;
    let c = ctx(&[("file", "backup.tar")]);
    let dk = e
        .coffer
        .generate_data_key(
            LOCAL,
            &key,
            &GenerateDataKeyRequest {
                encryption_context: c.clone(),
                ..Default::default()
            },
            true,
        )
        .expect("data key");
    let plain = B64
        .decode(dk.plaintext.as_deref().expect("plaintext"))
        .expect("b64");
    assert_eq!(plain.len(), 32);
    assert_eq!(dk.key_id, key);
    assert_eq!(e.decrypt(&dk.ciphertext_blob, c).expect("unwrap"), plain);
    assert_err!(
        e.decrypt(&dk.ciphertext_blob, None),
        CoreError::Integrity(_)
    );

    let aes128 = e
        .coffer
        .generate_data_key(
            LOCAL,
            &key,
            &GenerateDataKeyRequest {
                key_spec: Some("AES_128".into()),
                ..Default::default()
            },
            true,
        )
        .expect("AES_128");
    assert_eq!(
        B64.decode(aes128.plaintext.as_deref().expect("p"))
            .expect("b64")
            .len(),
        16
    );
    assert_ne!(
        aes128.ciphertext_blob, dk.ciphertext_blob,
        "each call is a fresh key"
    );
}

#[tokio::test]
async fn generate_data_key_without_plaintext_returns_only_the_wrapped_key() {
    let e = env();
    let key = e.new_key().await;
    let dk = e
        .coffer
        .generate_data_key(LOCAL, &key, &GenerateDataKeyRequest::default(), false)
        .expect("data key");
    assert_eq!(dk.plaintext, None);
    let unwrapped = e.decrypt(&dk.ciphertext_blob, None).expect("unwrap");
    assert_eq!(unwrapped.len(), 32);
}

#[tokio::test]
async fn re_encrypt_to_another_key_then_decrypt_gives_the_original() {
    let e = env();
    let k1 = e.new_key().await;
    let k2 = e.new_key().await;
    let c1 = ctx(&[("stage", "one")]);
    let c2 = ctx(&[("stage", "two")]);
    let blob = e
        .encrypt(&k1, b"move me", c1.clone())
        .expect("encrypt")
        .ciphertext_blob;

    let re = e
        .coffer
        .re_encrypt(
            LOCAL,
            &ReEncryptRequest {
                ciphertext_blob: blob.clone(),
                source_encryption_context: c1.clone(),
                destination_key_id: Some(k2.clone()),
                destination_encryption_context: c2.clone(),
            },
        )
        .expect("re-encrypt");
    assert_eq!(re.source_key_id, k1);
    assert_eq!(re.key_id, k2);
    assert_eq!(e.coffer.blob_key_id(&re.ciphertext_blob).expect("id"), k2);
    assert_eq!(
        e.decrypt(&re.ciphertext_blob, c2).expect("decrypt"),
        b"move me"
    );
    assert_err!(
        e.decrypt(&re.ciphertext_blob, c1.clone()),
        CoreError::Integrity(_)
    );

    // The source context must be right, or nothing is re-encrypted.
    let r = e.coffer.re_encrypt(
        LOCAL,
        &ReEncryptRequest {
            ciphertext_blob: blob,
            source_encryption_context: None,
            destination_key_id: Some(k2),
            destination_encryption_context: None,
        },
    );
    assert_err!(r, CoreError::Integrity(_));
}

#[tokio::test]
async fn generate_random_accepts_1_to_1024_bytes() {
    let e = env();
    for n in [1u32, 32, 1024] {
        let r = e
            .coffer
            .generate_random(&GenerateRandomRequest { number_of_bytes: n })
            .expect("random");
        assert_eq!(B64.decode(&r.plaintext).expect("b64").len(), n as usize);
    }
    for bad in [0u32, 1025] {
        assert_err!(
            e.coffer.generate_random(&GenerateRandomRequest {
                number_of_bytes: bad
            }),
            CoreError::InvalidParameter(_)
        );
    }
}

// =========================================================================== KMS: rotation

#[tokio::test]
async fn rotated_key_still_decrypts_old_ciphertexts_and_encrypts_with_the_newest() {
    let e = env();
    let key = e.new_key().await;
    let mut blobs = Vec::new();
    for round in 1..=4u32 {
        let plain = format!("made under version {round}");
        let enc = e.encrypt(&key, plain.as_bytes(), None).expect("encrypt");
        assert_eq!(enc.key_version, round);
        blobs.push((enc.ciphertext_blob, plain));
        if round < 4 {
            let md = e.coffer.rotate_key(LOCAL, &key).await.expect("rotate");
            assert_eq!(md.current_key_version, round + 1);
        }
    }
    for (blob, plain) in &blobs {
        assert_eq!(e.decrypt(blob, None).expect("old blob"), plain.as_bytes());
    }
    assert_eq!(
        e.encrypt(&key, b"new", None).expect("encrypt").key_version,
        4
    );
    let rotations = e
        .coffer
        .list_key_rotations(LOCAL, &key)
        .expect("rotations")
        .rotations;
    assert_eq!(rotations.len(), 3);
    assert_eq!(
        rotations.iter().map(|r| r.key_version).collect::<Vec<_>>(),
        vec![2, 3, 4]
    );
    assert!(rotations.iter().all(|r| r.rotation_type == "ON_DEMAND"));
}

#[tokio::test]
async fn secrets_survive_rotation_of_their_key() {
    let e = env();
    let key = e.new_key().await;
    e.coffer
        .create_secret(
            LOCAL,
            &CreateSecretRequest {
                name: "app".into(),
                secret_string: string_value("one"),
                kms_key_id: Some(key.clone()),
                ..Default::default()
            },
        )
        .await
        .expect("create");
    e.coffer.rotate_key(LOCAL, &key).await.expect("rotate");
    e.put("app", "two").await;
    e.coffer.rotate_key(LOCAL, &key).await.expect("rotate");
    assert_eq!(e.value("app").await, "two");
    assert_eq!(
        e.get_stage("app", AWSPREVIOUS)
            .await
            .expect("previous")
            .secret_string
            .as_deref(),
        Some("one")
    );
}

#[tokio::test]
async fn automatic_rotation_runs_in_housekeeping_when_due() {
    let e = env();
    let key = e.new_key().await;
    let blob = e
        .encrypt(&key, b"before", None)
        .expect("encrypt")
        .ciphertext_blob;
    let md = e
        .coffer
        .set_key_rotation(
            LOCAL,
            &key,
            &KeyRotationPolicyRequest {
                enabled: true,
                rotation_period_days: Some(1),
            },
        )
        .await
        .expect("enable rotation");
    assert!(md.rotation_enabled);
    assert!(md.next_rotation_date.is_some());

    e.coffer.housekeeping().await.expect("housekeeping");
    let version = |e: &Env| {
        e.coffer
            .describe_key(LOCAL, &key)
            .expect("describe")
            .current_key_version
    };
    assert_eq!(version(&e), 1, "not due yet");

    e.clock.advance(Duration::days(2));
    e.coffer.housekeeping().await.expect("housekeeping");
    assert_eq!(version(&e), 2);
    let rotations = e
        .coffer
        .list_key_rotations(LOCAL, &key)
        .expect("r")
        .rotations;
    assert_eq!(rotations.len(), 1);
    assert_eq!(rotations[0].rotation_type, "AUTOMATIC");
    assert_eq!(e.decrypt(&blob, None).expect("old blob"), b"before");
    assert_eq!(e.encrypt(&key, b"after", None).expect("e").key_version, 2);

    // The next rotation is a period later, not immediately.
    e.coffer.housekeeping().await.expect("housekeeping");
    assert_eq!(version(&e), 2);
}

#[tokio::test]
async fn rotation_period_out_of_range_is_rejected() {
    let e = env();
    let key = e.new_key().await;
    for bad in [0, 2561] {
        let r = e
            .coffer
            .set_key_rotation(
                LOCAL,
                &key,
                &KeyRotationPolicyRequest {
                    enabled: true,
                    rotation_period_days: Some(bad),
                },
            )
            .await;
        assert_err!(r, CoreError::InvalidParameter(_));
    }
}

// =========================================================================== aliases

#[tokio::test]
async fn encrypt_via_alias_and_duplicate_alias_is_already_exists() {
    let e = env();
    let k1 = e.new_key().await;
    let k2 = e.new_key().await;
    e.create_alias("alias/app", &k1).await.expect("alias");
    let enc = e
        .encrypt("alias/app", b"p", None)
        .expect("encrypt via alias");
    assert_eq!(enc.key_id, k1);
    let enc = e
        .encrypt("arn:coffer:kms:local:alias/app", b"p", None)
        .expect("encrypt via alias ARN");
    assert_eq!(enc.key_id, k1);
    assert_eq!(e.aliases_of(&k1), vec!["alias/app"]);

    assert_err!(
        e.create_alias("alias/app", &k2).await,
        CoreError::AlreadyExists(_)
    );
    assert_err!(
        e.create_alias("alias/app", &k1).await,
        CoreError::AlreadyExists(_)
    );
    assert!(e.aliases_of(&k2).is_empty());
    assert_eq!(e.encrypt("alias/app", b"p", None).expect("e").key_id, k1);
}

#[tokio::test]
async fn update_alias_moves_it_between_keys() {
    let e = env();
    let k1 = e.new_key().await;
    let k2 = e.new_key().await;
    e.create_alias("alias/app", &k1).await.expect("alias");
    e.coffer
        .update_alias(LOCAL, "alias/app", &k2)
        .await
        .expect("update alias");
    assert!(
        e.aliases_of(&k1).is_empty(),
        "old key still lists the alias"
    );
    assert_eq!(e.aliases_of(&k2), vec!["alias/app"]);
    assert_eq!(e.encrypt("alias/app", b"p", None).expect("e").key_id, k2);
    let listed = e.coffer.list_aliases(LOCAL).expect("list").aliases;
    let app: Vec<_> = listed
        .iter()
        .filter(|a| a.alias_name == "alias/app")
        .collect();
    assert_eq!(app.len(), 1);
    assert_eq!(app[0].target_key_id, k2);
}

#[tokio::test]
async fn deleted_alias_no_longer_resolves() {
    let e = env();
    let key = e.new_key().await;
    e.create_alias("alias/app", &key).await.expect("alias");
    e.coffer
        .delete_alias(LOCAL, "alias/app")
        .await
        .expect("delete alias");
    assert_err!(e.encrypt("alias/app", b"p", None), CoreError::NotFound(_));
    assert!(e.aliases_of(&key).is_empty());
    e.encrypt(&key, b"p", None)
        .expect("the key itself still works");
    // The name is free again.
    e.create_alias("alias/app", &key)
        .await
        .expect("re-create alias");
}

#[tokio::test]
async fn aliases_under_alias_coffer_are_reserved() {
    let e = env();
    let key = e.new_key().await;
    e.create("app", "v").await; // creates the default key and its reserved alias
    assert_err!(
        e.create_alias("alias/coffer/mine", &key).await,
        CoreError::InvalidParameter(_)
    );
    assert_err!(
        e.create_alias("alias/aws/mine", &key).await,
        CoreError::InvalidParameter(_)
    );
    let default_alias = crate::keys::DEFAULT_KEY_ALIAS;
    assert!(default_alias.starts_with("alias/coffer/"));
    assert_err!(
        e.coffer.update_alias(LOCAL, default_alias, &key).await,
        CoreError::InvalidParameter(_)
    );
    assert_err!(
        e.coffer.delete_alias(LOCAL, default_alias).await,
        CoreError::InvalidParameter(_)
    );
    assert!(
        e.coffer
            .describe_key(LOCAL, default_alias)
            .expect("d")
            .is_default
    );
    assert_err!(
        e.create_alias("not-an-alias", &key).await,
        CoreError::InvalidParameter(_)
    );
    assert_eq!(e.value("app").await, "v");
}

// =========================================================================== regions

fn two_regions() -> Env {
    env_with(|c| c.regions = vec![LOCAL.into(), EU.into()])
}

#[tokio::test]
async fn secret_in_one_region_is_invisible_in_another() {
    let e = two_regions();
    let local = e.create_in(LOCAL, "shared/name", "local value").await;
    let in_eu = e
        .coffer
        .get_secret_value(EU, "shared/name", None, None)
        .await;
    assert_err!(in_eu, CoreError::NotFound(_));
    let by_arn = e.coffer.get_secret_value(EU, &local.arn, None, None).await;
    assert_err!(by_arn, CoreError::NotFound(_));
    assert!(e
        .coffer
        .list_secrets(EU, &ListSecretsQuery::default())
        .expect("list")
        .secrets
        .is_empty());

    // The same name in "eu" is an independent secret.
    e.create_in(EU, "shared/name", "eu value").await;
    let eu = e
        .coffer
        .get_secret_value(EU, "shared/name", None, None)
        .await
        .expect("eu");
    assert_eq!(eu.secret_string.as_deref(), Some("eu value"));
    assert_eq!(e.value("shared/name").await, "local value");
}

#[tokio::test]
async fn ciphertext_from_one_region_does_not_decrypt_in_another() {
    let e = two_regions();
    let key = e.new_key_in(LOCAL).await;
    let blob = e
        .encrypt_in(LOCAL, &key, b"local only", None)
        .expect("encrypt")
        .ciphertext_blob;
    assert_err!(e.decrypt_in(EU, &blob, None), CoreError::Integrity(_));
    assert_err!(e.encrypt_in(EU, &key, b"p", None), CoreError::NotFound(_));
    assert_eq!(
        e.decrypt_in(LOCAL, &blob, None).expect("home"),
        b"local only"
    );
}

#[tokio::test]
async fn unknown_region_is_invalid_parameter() {
    let e = two_regions();
    let key = e.new_key_in(LOCAL).await;
    let blob = e
        .encrypt_in(LOCAL, &key, b"p", None)
        .expect("encrypt")
        .ciphertext_blob;
    let r = e
        .coffer
        .create_secret(
            "mars",
            &CreateSecretRequest {
                name: "x".into(),
                secret_string: string_value("v"),
                ..Default::default()
            },
        )
        .await;
    assert_err!(r, CoreError::InvalidParameter(_));
    assert_err!(
        e.coffer.get_secret_value("mars", "x", None, None).await,
        CoreError::InvalidParameter(_)
    );
    assert_err!(
        e.coffer.list_secrets("mars", &ListSecretsQuery::default()),
        CoreError::InvalidParameter(_)
    );
    assert_err!(
        e.coffer
            .create_key("mars", &CreateKeyRequest::default())
            .await,
        CoreError::InvalidParameter(_)
    );
    assert_err!(
        e.encrypt_in("mars", &key, b"p", None),
        CoreError::InvalidParameter(_)
    );
    assert_err!(
        e.decrypt_in("mars", &blob, None),
        CoreError::InvalidParameter(_)
    );
    assert!(e.coffer.check_region(EU).is_ok());
}

#[test]
fn service_refuses_bad_region_configuration() {
    let build = |regions: Vec<String>| {
        Coffer::new(
            Arc::new(SledStore::temporary().expect("store")),
            Arc::new(MemoryRootKey::generate()),
            CoreConfig {
                regions,
                ..Default::default()
            },
        )
    };
    assert_err!(build(vec![]), CoreError::InvalidParameter(_));
    assert_err!(
        build(vec!["Bad/Region".into()]),
        CoreError::InvalidParameter(_)
    );
    let ok = build(vec!["eu".into(), "local".into()]).expect("valid");
    assert_eq!(ok.default_region(), "eu");
}

// =========================================================================== binding of stored values

#[tokio::test]
async fn version_record_copied_onto_another_secret_fails_integrity() {
    let e = env();
    let a = e.create("a", "value of A").await.version_id.expect("a");
    let b = e.create("b", "value of B").await.version_id.expect("b");
    // Read first, so the records B's read decodes are cached: the copy must still show.
    assert_eq!(e.value("b").await, "value of B");
    let a_key = e.version_key_of(LOCAL, &a);
    let b_key = e.version_key_of(LOCAL, &b);
    e.copy_raw(&a_key, &b_key);

    let r = e.get("b").await;
    if let Ok(v) = &r {
        assert_ne!(
            v.secret_string.as_deref(),
            Some("value of A"),
            "B returned A's value"
        );
    }
    assert_err!(r, CoreError::Integrity(_));
    let by_id = e.coffer.get_secret_value(LOCAL, "b", Some(&b), None).await;
    assert_err!(by_id, CoreError::Integrity(_));
    assert_eq!(e.value("a").await, "value of A", "the source is untouched");
}

#[tokio::test]
async fn version_record_copied_between_versions_of_one_secret_fails_integrity() {
    let e = env();
    let (v1, v2) = two_version_secret(&e, "app").await;
    e.copy_raw(&e.version_key_of(LOCAL, &v1), &e.version_key_of(LOCAL, &v2));

    let r = e.get("app").await;
    if let Ok(v) = &r {
        assert_ne!(
            v.secret_string.as_deref(),
            Some("one"),
            "returned v1's value"
        );
    }
    assert_err!(r, CoreError::Integrity(_));
    let prev = e
        .get_stage("app", AWSPREVIOUS)
        .await
        .expect("v1 still reads");
    assert_eq!(prev.secret_string.as_deref(), Some("one"));
}

#[tokio::test]
async fn version_record_with_a_flipped_ciphertext_bit_fails_integrity() {
    let e = env();
    let vid = e.create("app", "value").await.version_id.expect("vid");
    assert_eq!(
        e.value("app").await,
        "value",
        "read once, so its records are cached"
    );
    let vk = e.version_key_of(LOCAL, &vid);
    let raw = e.store.get(vk.as_bytes()).expect("get").expect("record");
    let mut rec: serde_json::Value = serde_json::from_slice(&raw).expect("json record");
    let sealed = rec["sealed_value"].as_str().expect("sealed_value field");
    let mut bytes = B64.decode(sealed).expect("b64");
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    rec["sealed_value"] = serde_json::Value::String(B64.encode(&bytes));
    let mut b = Batch::default();
    b.put(vk.as_bytes(), &serde_json::to_vec(&rec).expect("json"));
    e.store.apply(&b).expect("apply");
    assert_err!(e.get("app").await, CoreError::Integrity(_));
}

#[tokio::test]
async fn a_secret_record_copied_over_another_after_a_read_fails_integrity() {
    let e = env();
    e.create("a", "value of A").await;
    e.create("b", "value of B").await;
    assert_eq!(
        e.value("b").await,
        "value of B",
        "read once, so its records are cached"
    );
    e.copy_raw(
        &format!("r/{LOCAL}/secret/a"),
        &format!("r/{LOCAL}/secret/b"),
    );
    assert_err!(e.get("b").await, CoreError::Integrity(_));
}

#[tokio::test]
async fn a_key_disabled_after_a_read_stops_the_next_read() {
    let e = env();
    let key = e.new_key().await;
    let req = CreateSecretRequest {
        name: "app".into(),
        secret_string: Some("value".into()),
        kms_key_id: Some(key.clone()),
        ..Default::default()
    };
    e.coffer.create_secret(LOCAL, &req).await.expect("create");
    assert_eq!(
        e.value("app").await,
        "value",
        "read once, so its records are cached"
    );
    e.coffer
        .set_key_enabled(LOCAL, &key, false)
        .await
        .expect("disable");
    assert_err!(e.get("app").await, CoreError::InvalidState(_));
    e.coffer
        .set_key_enabled(LOCAL, &key, true)
        .await
        .expect("enable");
    assert_eq!(e.value("app").await, "value");
}

// =========================================================================== tokens

#[tokio::test]
async fn created_token_authenticates_as_its_principal() {
    let e = env();
    let (tok, id) = e.new_token("alice", None).await;
    assert!(tok.starts_with("cft_"));
    let who = e
        .coffer
        .authenticate(&tok)
        .expect("auth")
        .expect("known token");
    assert_eq!(who.principal, "alice");
    assert_eq!(who.token_id, id);
    assert!(tok.starts_with(&format!("cft_{id}_")), "token names its id");
    let listed = e.coffer.list_tokens().expect("list").tokens;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].principal, "alice");
}

#[tokio::test]
async fn token_with_one_changed_character_is_rejected() {
    let e = env();
    let (tok, _) = e.new_token("alice", None).await;
    let flip = |s: &str, i: usize| {
        let mut chars: Vec<char> = s.chars().collect();
        chars[i] = if chars[i] == 'a' { 'b' } else { 'a' };
        chars.into_iter().collect::<String>()
    };
    // Last character (secret part) and first character of the id.
    assert_eq!(e.principal_of(&flip(&tok, tok.len() - 1)), None);
    assert_eq!(e.principal_of(&flip(&tok, 4)), None);
    let truncated = &tok[..tok.len() - 1];
    assert_eq!(e.principal_of(truncated), None);
    assert_eq!(e.principal_of(&tok).as_deref(), Some("alice"));
}

#[tokio::test]
async fn revoked_token_is_rejected() {
    let e = env();
    let (tok, id) = e.new_token("alice", None).await;
    let (other, _) = e.new_token("bob", None).await;
    e.coffer.revoke_token(&id).await.expect("revoke");
    assert_eq!(e.principal_of(&tok), None);
    assert_eq!(e.principal_of(&other).as_deref(), Some("bob"));
    assert_err!(e.coffer.revoke_token(&id).await, CoreError::NotFound(_));
}

#[tokio::test]
async fn token_expires_after_its_ttl() {
    let e = env();
    let (tok, _) = e.new_token("ci", Some(60)).await;
    e.clock.advance(Duration::seconds(59));
    assert_eq!(e.principal_of(&tok).as_deref(), Some("ci"));
    e.clock.advance(Duration::seconds(2));
    assert_eq!(e.principal_of(&tok), None);
}

#[tokio::test]
async fn absurd_token_ttl_is_rejected_without_panicking() {
    let e = env();
    for ttl in [0, i64::MAX as u64, u64::MAX] {
        let r = e
            .coffer
            .create_token(&CreateTokenRequest {
                principal: "ci".into(),
                description: None,
                ttl_seconds: Some(ttl),
            })
            .await;
        assert_err!(r, CoreError::InvalidParameter(_));
    }
    assert!(e.coffer.list_tokens().expect("list").tokens.is_empty());
}

#[tokio::test]
async fn bootstrap_admin_token_is_issued_only_once() {
    let e = env();
    let first = e
        .coffer
        .bootstrap_admin_token()
        .await
        .expect("bootstrap")
        .expect("first start issues a token");
    assert_eq!(e.principal_of(&first).as_deref(), Some("admin"));
    assert_eq!(e.coffer.bootstrap_admin_token().await.expect("again"), None);
    assert_eq!(e.coffer.list_tokens().expect("list").tokens.len(), 1);
}

#[tokio::test]
async fn malformed_token_strings_are_rejected_without_panicking() {
    let e = env();
    e.new_token("alice", None).await;
    let long_id = format!("cft_{}_x", "a".repeat(65));
    for bad in [
        "",
        "cft_",
        "cft__",
        "cft_abc",
        "cft_abc_",
        "cft__secret",
        "Bearer x",
        "cft_ab-c_secret",
        "cft_ü_x",
        long_id.as_str(),
    ] {
        assert_eq!(e.principal_of(bad), None, "{bad:?}");
    }
}

#[tokio::test]
async fn invalid_principal_is_rejected() {
    let e = env();
    for bad in ["", "has space", &"a".repeat(129)] {
        let r = e
            .coffer
            .create_token(&CreateTokenRequest {
                principal: bad.to_string(),
                description: None,
                ttl_seconds: None,
            })
            .await;
        assert_err!(r, CoreError::InvalidParameter(_));
    }
}

// =========================================================================== nothing in plaintext at rest

#[tokio::test]
async fn no_secret_value_or_token_is_stored_in_plaintext() {
    let e = env();
    let mut rng = rand::thread_rng();
    let mut values = Vec::new();
    for i in 0..50 {
        let value = Alphanumeric.sample_string(&mut rng, 24);
        e.create(&format!("svc/{i}"), &value).await;
        values.push(value);
    }
    let (tok, _) = e.new_token("alice", None).await;
    // `cft_<hex id>_<secret>`; the secret is URL-safe base64 and may itself contain `_`.
    let token_secret = tok
        .strip_prefix("cft_")
        .and_then(|rest| rest.split_once('_'))
        .expect("token shape")
        .1
        .to_string();
    assert_eq!(token_secret.len(), 43, "32 random bytes, unpadded base64");
    values.push(token_secret);
    // Sanity: values are readable, so they went through the store.
    assert_eq!(e.value("svc/7").await, values[7]);

    let all = e.store.scan(b"", None, usize::MAX).expect("scan");
    assert!(all.len() > 50);
    for (k, v) in &all {
        for value in &values {
            assert!(
                !contains(k, value.as_bytes()) && !contains(v, value.as_bytes()),
                "a value appears in plaintext under {}",
                String::from_utf8_lossy(k)
            );
        }
    }
}
