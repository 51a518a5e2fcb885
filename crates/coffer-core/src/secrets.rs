//! The Secrets Manager half: secrets, versions, staging labels, soft deletion.

use std::collections::BTreeMap;
use std::sync::Arc;

use base64::Engine;
use coffer_api::{
    CreateSecretRequest, DeleteSecretResponse, ListSecretsQuery, ListSecretsResponse,
    ListVersionsResponse, PutSecretValueRequest, SecretDescription, SecretValue, SecretVersionRef,
    Tags, UpdateSecretRequest, UpdateStageRequest, VersionInfo,
};
use coffer_crypto::{format, KeyMaterial, Plaintext};
use coffer_store::{Batch, StoreError};
use subtle::ConstantTimeEq;
use time::Duration;

use crate::keys::decode_b64;
use crate::names::{
    validate_description, validate_stage, validate_tag_key, validate_tags, validate_version_id,
    SecretName,
};
use crate::records::{
    decode, encode, secret_key, secret_prefix, version_key, version_prefix, Deletion, SecretRecord,
    ValueKind, VersionRecord,
};
use crate::{
    fmt_time, Coffer, CoreError, KeyUse, Result, AWSCURRENT, AWSPREVIOUS, MAX_ATTEMPTS,
    MAX_SECRET_VALUE_BYTES,
};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// Outcome of one optimistic write attempt.
enum Attempt<T> {
    /// Applied; make it durable, then answer.
    Written(T),
    /// Nothing to write (an idempotent retry).
    Unchanged(T),
    /// Someone else changed the record first; try again.
    Conflict,
}

/// The KMS key version that wraps a version's data key (from the blob's header).
fn key_use_of(v: &VersionRecord) -> Result<KeyUse> {
    let header = format::BlobHeader::parse(&v.wrapped_data_key)?;
    Ok(KeyUse {
        key_id: header.key_id.to_string(),
        key_version: header.key_version,
    })
}

/// A value to store: its kind and bytes (zeroized on drop).
pub(crate) struct Value {
    pub(crate) kind: ValueKind,
    pub(crate) bytes: Plaintext,
}

pub(crate) fn parse_value(
    string: &Option<String>,
    binary: &Option<String>,
) -> Result<Option<Value>> {
    let v = match (string, binary) {
        (Some(_), Some(_)) => {
            return Err(CoreError::InvalidParameter(
                "give secret_string or secret_binary, not both".into(),
            ))
        }
        (Some(s), None) => Value {
            kind: ValueKind::String,
            bytes: Plaintext::from_slice(s.as_bytes()),
        },
        (None, Some(b)) => Value {
            kind: ValueKind::Binary,
            bytes: Plaintext::new(decode_b64("secret_binary", b)?),
        },
        (None, None) => return Ok(None),
    };
    if v.bytes.len() > MAX_SECRET_VALUE_BYTES {
        return Err(CoreError::TooLarge(format!(
            "secret value is {} bytes; the limit is {MAX_SECRET_VALUE_BYTES}",
            v.bytes.len()
        )));
    }
    if v.bytes.is_empty() {
        return Err(CoreError::InvalidParameter(
            "secret value must not be empty".into(),
        ));
    }
    Ok(Some(v))
}

fn random_suffix() -> String {
    use rand::Rng;
    const ALPHA: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rngs::OsRng;
    (0..6)
        .map(|_| ALPHA[rng.gen_range(0..ALPHA.len())] as char)
        .collect()
}

impl Coffer {
    /// Resolves a secret id (name or ARN) to its name in `region`.
    pub fn secret_name_of(&self, region: &str, id: &str) -> Result<String> {
        self.check_region(region)?;
        Ok(self.parse_secret_id(region, id)?.0)
    }

    /// (name, full ARN if the id was one)
    fn parse_secret_id(&self, region: &str, id: &str) -> Result<(String, Option<String>)> {
        if let Some(rest) = id.strip_prefix("arn:coffer:secretsmanager:") {
            let nf = || secret_not_found(region, id);
            let (arn_region, tail) = rest.split_once(':').ok_or_else(nf)?;
            if arn_region != region {
                return Err(nf());
            }
            let with_suffix = tail.strip_prefix("secret:").ok_or_else(nf)?;
            let (name, _) = with_suffix.rsplit_once('-').ok_or_else(nf)?;
            return Ok((
                SecretName::parse(name)?.as_str().to_string(),
                Some(id.to_string()),
            ));
        }
        Ok((SecretName::parse(id)?.as_str().to_string(), None))
    }

    /// Loads a secret record and its raw bytes (for optimistic checks). Purged-by-time
    /// secrets read as not found.
    pub(crate) fn load_secret(&self, region: &str, id: &str) -> Result<(SecretRecord, Vec<u8>)> {
        let s = self.fetch_secret(region, id)?;
        let rec: SecretRecord = decode("secret", &s.raw)?;
        self.check_loaded(region, id, &rec, &s.name, s.arn.as_deref())?;
        Ok((rec, s.raw))
    }

    /// [`Self::load_secret`] for reading only: the decoded record is shared, and reused
    /// while the stored bytes are unchanged.
    pub(crate) fn read_secret(&self, region: &str, id: &str) -> Result<Arc<SecretRecord>> {
        let s = self.fetch_secret(region, id)?;
        let rec = self.decoded.secrets.decode("secret", &s.key, s.raw)?;
        self.check_loaded(region, id, &rec, &s.name, s.arn.as_deref())?;
        Ok(rec)
    }

    /// The stored bytes of secret `id` (a name or an ARN), not yet decoded.
    fn fetch_secret(&self, region: &str, id: &str) -> Result<StoredSecret> {
        self.check_region(region)?;
        let (name, arn) = self.parse_secret_id(region, id)?;
        let key = secret_key(region, &name);
        let raw = self
            .store
            .get(&key)?
            .ok_or_else(|| secret_not_found(region, id))?;
        Ok(StoredSecret {
            key,
            raw,
            name,
            arn,
        })
    }

    /// The checks every load of secret `id` makes on the record found.
    fn check_loaded(
        &self,
        region: &str,
        id: &str,
        rec: &SecretRecord,
        name: &str,
        arn: Option<&str>,
    ) -> Result<()> {
        let nf = || secret_not_found(region, id);
        if rec.name != name {
            return Err(CoreError::Integrity(format!(
                "the stored record of secret {name} names another secret; the store was altered"
            )));
        }
        if arn.is_some_and(|a| a != rec.arn) {
            return Err(nf());
        }
        if rec
            .deletion
            .as_ref()
            .is_some_and(|d| d.purge_at <= self.now())
        {
            return Err(nf());
        }
        Ok(())
    }

    pub(crate) fn ensure_not_deleted(rec: &SecretRecord) -> Result<()> {
        if rec.deletion.is_some() {
            return Err(CoreError::InvalidState(format!(
                "secret {} is scheduled for deletion; restore it first",
                rec.name
            )));
        }
        Ok(())
    }

    pub(crate) fn describe(&self, region: &str, rec: &SecretRecord) -> SecretDescription {
        let mut by_version: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (label, vid) in &rec.stages {
            by_version
                .entry(vid.clone())
                .or_default()
                .push(label.clone());
        }
        let mut d = SecretDescription {
            arn: rec.arn.clone(),
            name: rec.name.clone(),
            region: region.to_string(),
            description: rec.description.clone(),
            kms_key_id: rec.kms_key_id.clone(),
            tags: rec.tags.clone(),
            created_date: fmt_time(rec.created),
            last_changed_date: fmt_time(rec.last_changed),
            last_accessed_date: None,
            deleted_date: rec.deletion.as_ref().map(|d| fmt_time(d.purge_at)),
            version_ids_to_stages: by_version,
            ..SecretDescription::default()
        };
        crate::rotation::describe_into(&mut d, rec);
        d
    }

    /// Seals a value for (secret uid, version id) under the secret's KMS key.
    pub(crate) fn seal_version(
        &self,
        region: &str,
        rec: &SecretRecord,
        vid: &str,
        value: &Value,
    ) -> Result<VersionRecord> {
        let key = match &rec.kms_key_id {
            Some(k) => self.load_key(region, k)?,
            None => self.default_key(region)?,
        };
        let (dk, dk_plain) = KeyMaterial::generate_with_plaintext();
        let ctx = format::secret_data_key_context(region, &rec.uid, vid);
        let (wrapped, _) = self.encrypt_with(region, &key, &ctx, dk_plain.as_bytes())?;
        let sealed = dk.seal(
            value.bytes.as_bytes(),
            &format::secret_value_aad(region, &rec.uid, vid),
        )?;
        let now = self.now();
        Ok(VersionRecord {
            version_id: vid.to_string(),
            created: now,
            created_nanos: now.nanosecond(),
            kms_key_id: key.key_id,
            kind: value.kind.clone(),
            wrapped_data_key: wrapped,
            sealed_value: sealed,
        })
    }

    /// Opens the version stored under (uid, vid). The AAD and context come from where the
    /// record is stored, not from the record, so a record moved elsewhere fails.
    pub(crate) fn open_version(
        &self,
        region: &str,
        uid: &str,
        vid: &str,
    ) -> Result<(Arc<VersionRecord>, Value)> {
        let key = version_key(region, uid, vid);
        let raw = self
            .store
            .get(&key)?
            .ok_or_else(|| CoreError::NotFound(format!("version {vid} not found")))?;
        let v = self.decoded.versions.decode("version", &key, raw)?;
        let ctx = format::secret_data_key_context(region, uid, vid);
        let (dk_plain, _, _) = self.decrypt_blob(region, &v.wrapped_data_key, &ctx)?;
        let dk = KeyMaterial::from_plaintext(&dk_plain)?;
        let bytes = dk.open(&v.sealed_value, &format::secret_value_aad(region, uid, vid))?;
        let kind = v.kind.clone();
        Ok((v, Value { kind, bytes }))
    }

    fn same_value(a: &Value, b: &Value) -> bool {
        a.kind == b.kind
            && a.bytes.len() == b.bytes.len()
            && bool::from(a.bytes.as_bytes().ct_eq(b.bytes.as_bytes()))
    }

    fn version_ref(rec: &SecretRecord, vid: Option<&str>) -> SecretVersionRef {
        SecretVersionRef {
            arn: rec.arn.clone(),
            name: rec.name.clone(),
            version_id: vid.map(str::to_string),
            version_stages: vid.map(|v| rec.stages_of(v)).unwrap_or_default(),
        }
    }

    /// CreateSecret.
    pub async fn create_secret(
        &self,
        region: &str,
        req: &CreateSecretRequest,
    ) -> Result<SecretVersionRef> {
        self.create_secret_and_key(region, req)
            .await
            .map(|(r, _)| r)
    }

    /// CreateSecret, also naming the KMS key version that wraps the first version's data
    /// key, when a value was given (for the audit log).
    pub async fn create_secret_and_key(
        &self,
        region: &str,
        req: &CreateSecretRequest,
    ) -> Result<(SecretVersionRef, Option<KeyUse>)> {
        self.check_region(region)?;
        let name = SecretName::parse(&req.name)?;
        let value = parse_value(&req.secret_string, &req.secret_binary)?;
        if let Some(d) = &req.description {
            validate_description(d)?;
        }
        let tags = req.tags.clone().unwrap_or_default();
        validate_tags(&tags)?;
        if let Some(t) = &req.client_request_token {
            validate_version_id(t)?;
        }
        let kms_key_id = match &req.kms_key_id {
            Some(k) => {
                let key = self.load_key(region, k)?;
                Self::ensure_usable_for_new_secret(&key)?;
                Some(key.key_id)
            }
            None => None,
        };
        let sk = secret_key(region, name.as_str());
        let now = self.now();
        // A record past its recovery window already reads as not found everywhere; it is
        // purged in the same batch that creates the new secret.
        let mut expired: Option<(SecretRecord, Vec<u8>)> = None;
        if let Some(raw) = self.store.get(&sk)? {
            let rec: SecretRecord = decode("secret", &raw)?;
            if rec.deletion.as_ref().is_some_and(|d| d.purge_at <= now) {
                expired = Some((rec, raw));
            } else {
                // An identical retry with the same idempotency token is a no-op.
                if let (Some(t), Some(v)) = (&req.client_request_token, &value) {
                    if rec.deletion.is_none() {
                        if let Ok((stored, existing)) = self.open_version(region, &rec.uid, t) {
                            if Self::same_value(&existing, v) {
                                return Ok((
                                    Self::version_ref(&rec, Some(t)),
                                    key_use_of(&stored).ok(),
                                ));
                            }
                        }
                    }
                }
                return Err(if rec.deletion.is_some() {
                    CoreError::InvalidState(format!(
                    "secret {} is scheduled for deletion; restore it or wait until it is purged",
                    name.as_str()
                ))
                } else {
                    CoreError::AlreadyExists(format!(
                        "secret {} already exists in region {region}",
                        name.as_str()
                    ))
                });
            }
        }
        let mut rec = SecretRecord {
            uid: uuid::Uuid::new_v4().to_string(),
            name: name.as_str().to_string(),
            arn: format!(
                "arn:coffer:secretsmanager:{region}:secret:{}-{}",
                name.as_str(),
                random_suffix()
            ),
            description: req.description.clone(),
            kms_key_id,
            tags,
            created: now,
            last_changed: now,
            deletion: None,
            stages: BTreeMap::new(),
            version_count: 0,
            rotation: None,
        };
        let mut b = Batch::default();
        match &expired {
            Some((old, raw)) => self.purge_batch(region, old, raw, &mut b)?,
            None => {
                b.expect_absent(&sk);
            }
        }
        let mut vid = None;
        let mut key = None;
        if let Some(v) = &value {
            let id = req
                .client_request_token
                .clone()
                .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
            let version = self.seal_version(region, &rec, &id, v)?;
            key = Some(key_use_of(&version)?);
            rec.stages.insert(AWSCURRENT.to_string(), id.clone());
            rec.version_count = 1;
            b.put(&version_key(region, &rec.uid, &id), &encode(&version)?);
            vid = Some(id);
        }
        b.put(&sk, &encode(&rec)?);
        match self.store.apply(&b) {
            Ok(()) => {}
            Err(StoreError::Conflict) => {
                return Err(CoreError::AlreadyExists(format!(
                    "secret {} already exists in region {region}",
                    name.as_str()
                )))
            }
            Err(e) => return Err(e.into()),
        }
        self.durable().await?;
        Ok((Self::version_ref(&rec, vid.as_deref()), key))
    }

    fn ensure_usable_for_new_secret(key: &crate::records::KeyRecord) -> Result<()> {
        if key.state != crate::records::KeyState::Enabled {
            return Err(CoreError::InvalidState(format!(
                "key {} is {}; secrets need an enabled key",
                key.key_id,
                key.state.as_str()
            )));
        }
        Ok(())
    }

    /// GetSecretValue: by version id, by staging label, or AWSCURRENT.
    pub async fn get_secret_value(
        &self,
        region: &str,
        id: &str,
        version_id: Option<&str>,
        version_stage: Option<&str>,
    ) -> Result<SecretValue> {
        self.get_secret_value_and_key(region, id, version_id, version_stage)
            .await
            .map(|(v, _)| v)
    }

    /// GetSecretValue, also naming the KMS key version that wraps the data key of the
    /// version read (for the audit log).
    pub async fn get_secret_value_and_key(
        &self,
        region: &str,
        id: &str,
        version_id: Option<&str>,
        version_stage: Option<&str>,
    ) -> Result<(SecretValue, KeyUse)> {
        self.get_secret_value_checked(region, id, version_id, version_stage, |_, _| Ok(()))
            .await
    }

    /// GetSecretValue with the caller's authorization decided on the same read of the
    /// secret record: `authorize(name, tags)` runs before anything else is revealed (for a
    /// missing secret, with its name and no tags, so a denied caller cannot learn whether
    /// it exists). Saves the hot path a second read and decode of the record.
    pub async fn get_secret_value_checked<E: From<CoreError>>(
        &self,
        region: &str,
        id: &str,
        version_id: Option<&str>,
        version_stage: Option<&str>,
        authorize: impl FnOnce(&str, &Tags) -> std::result::Result<(), E>,
    ) -> std::result::Result<(SecretValue, KeyUse), E> {
        let rec = match self.read_secret(region, id) {
            Ok(rec) => rec,
            Err(CoreError::NotFound(m)) => {
                authorize(&self.secret_name_of(region, id)?, &Tags::new())?;
                return Err(CoreError::NotFound(m).into());
            }
            Err(e) => return Err(e.into()),
        };
        authorize(&rec.name, &rec.tags)?;
        Ok(self.read_version(region, &rec, version_id, version_stage)?)
    }

    fn read_version(
        &self,
        region: &str,
        rec: &SecretRecord,
        version_id: Option<&str>,
        version_stage: Option<&str>,
    ) -> Result<(SecretValue, KeyUse)> {
        Self::ensure_not_deleted(rec)?;
        let vid = match (version_id, version_stage) {
            (Some(v), stage) => {
                if let Some(s) = stage {
                    if rec.stages.get(s).map(String::as_str) != Some(v) {
                        return Err(CoreError::NotFound(format!(
                            "version {v} of secret {} does not hold the label {s}",
                            rec.name
                        )));
                    }
                }
                v.to_string()
            }
            (None, stage) => {
                let s = stage.unwrap_or(AWSCURRENT);
                rec.stages.get(s).cloned().ok_or_else(|| {
                    CoreError::NotFound(format!(
                        "secret {} has no version with the label {s}",
                        rec.name
                    ))
                })?
            }
        };
        let (v, value) = self.open_version(region, &rec.uid, &vid).map_err(|e| match e {
            CoreError::NotFound(_) => CoreError::NotFound(format!(
                "secret {} has no version {vid}",
                rec.name
            )),
            CoreError::Integrity(_) => CoreError::Integrity(format!(
                "version {vid} of secret {} failed its integrity check: the stored ciphertext was altered or does not belong to this version",
                rec.name
            )),
            other => other,
        })?;
        let (secret_string, secret_binary) = match value.kind {
            ValueKind::String => (
                Some(
                    String::from_utf8(value.bytes.as_bytes().to_vec()).map_err(|_| {
                        CoreError::Internal("stored string value is not UTF-8".into())
                    })?,
                ),
                None,
            ),
            ValueKind::Binary => (None, Some(B64.encode(value.bytes.as_bytes()))),
        };
        let key = key_use_of(&v)?;
        Ok((
            SecretValue {
                arn: rec.arn.clone(),
                name: rec.name.clone(),
                version_id: vid.clone(),
                secret_string,
                secret_binary,
                version_stages: rec.stages_of(&vid),
                created_date: fmt_time(v.created),
            },
            key,
        ))
    }

    /// PutSecretValue: a new version; AWSCURRENT (by default) moves to it and AWSPREVIOUS
    /// to the old current version, atomically. Idempotent on `client_request_token`.
    pub async fn put_secret_value(
        &self,
        region: &str,
        id: &str,
        req: &PutSecretValueRequest,
    ) -> Result<SecretVersionRef> {
        self.put_secret_value_and_key(region, id, req)
            .await
            .map(|(r, _)| r)
    }

    /// PutSecretValue, also naming the KMS key version that wraps the new version's data
    /// key (for the audit log).
    pub async fn put_secret_value_and_key(
        &self,
        region: &str,
        id: &str,
        req: &PutSecretValueRequest,
    ) -> Result<(SecretVersionRef, KeyUse)> {
        let value = parse_value(&req.secret_string, &req.secret_binary)?.ok_or_else(|| {
            CoreError::InvalidParameter("give secret_string or secret_binary".into())
        })?;
        if let Some(t) = &req.client_request_token {
            validate_version_id(t)?;
        }
        let labels = req
            .version_stages
            .clone()
            .unwrap_or_else(|| vec![AWSCURRENT.to_string()]);
        for l in &labels {
            validate_stage(l)?;
        }
        if labels.len() > 20 {
            return Err(CoreError::InvalidParameter(
                "at most 20 staging labels".into(),
            ));
        }
        let vid = req
            .client_request_token
            .clone()
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        for _ in 0..MAX_ATTEMPTS {
            // Writers of one secret queue here instead of spinning on conflicts; the
            // store's checks still guard against other processes.
            let attempt = {
                let _guard = self.write_lock(region, id);
                self.try_put(region, id, &vid, &value, &labels)
            };
            match attempt? {
                Attempt::Written(r) => {
                    self.durable().await?;
                    return Ok(r);
                }
                Attempt::Unchanged(r) => return Ok(r),
                Attempt::Conflict => continue,
            }
        }
        Err(CoreError::Contention(format!("secret {id}")))
    }

    /// One optimistic attempt of PutSecretValue (no waiting inside).
    fn try_put(
        &self,
        region: &str,
        id: &str,
        vid: &str,
        value: &Value,
        labels: &[String],
    ) -> Result<Attempt<(SecretVersionRef, KeyUse)>> {
        let (mut rec, raw) = self.load_secret(region, id)?;
        Self::ensure_not_deleted(&rec)?;
        let vk = version_key(region, &rec.uid, vid);
        if self.store.get(&vk)?.is_some() {
            let (stored, existing) = self.open_version(region, &rec.uid, vid)?;
            if Self::same_value(&existing, value) {
                return Ok(Attempt::Unchanged((
                    Self::version_ref(&rec, Some(vid)),
                    key_use_of(&stored)?,
                )));
            }
            return Err(CoreError::AlreadyExists(format!(
                "version {vid} of secret {} already exists with a different value; use a new client request token",
                rec.name
            )));
        }
        let version = self.seal_version(region, &rec, vid, value)?;
        let key = key_use_of(&version)?;
        for l in labels {
            if l == AWSCURRENT {
                if let Some(old) = rec.stages.get(AWSCURRENT).cloned() {
                    rec.stages.insert(AWSPREVIOUS.to_string(), old);
                }
            }
            rec.stages.insert(l.clone(), vid.to_string());
        }
        rec.version_count += 1;
        rec.last_changed = self.now();
        let mut b = Batch::default();
        b.expect_absent(&vk).put(&vk, &encode(&version)?);
        self.prune_versions(region, &mut rec, vid, &mut b)?;
        let sk = secret_key(region, &rec.name);
        b.expect(&sk, &raw).put(&sk, &encode(&rec)?);
        match self.store.apply(&b) {
            Ok(()) => Ok(Attempt::Written((Self::version_ref(&rec, Some(vid)), key))),
            Err(StoreError::Conflict) => Ok(Attempt::Conflict),
            Err(e) => Err(e.into()),
        }
    }

    /// Deletes the oldest unlabeled versions past the cap (never `keep`).
    pub(crate) fn prune_versions(
        &self,
        region: &str,
        rec: &mut SecretRecord,
        keep: &str,
        b: &mut Batch,
    ) -> Result<()> {
        if rec.version_count <= self.config.max_versions {
            return Ok(());
        }
        let rows = self
            .store
            .scan(&version_prefix(region, &rec.uid), None, usize::MAX)?;
        let mut unlabeled: Vec<VersionRecord> = Vec::new();
        for (_, raw) in &rows {
            let v: VersionRecord = decode("version", raw)?;
            if v.version_id != keep && !rec.stages.values().any(|x| *x == v.version_id) {
                unlabeled.push(v);
            }
        }
        unlabeled.sort_by_key(|v| v.created_precise());
        // rows does not include `keep` yet, so the total is rows + 1.
        let total = rows.len() + 1;
        let excess = total.saturating_sub(self.config.max_versions);
        for v in unlabeled.iter().take(excess) {
            b.delete(&version_key(region, &rec.uid, &v.version_id));
        }
        rec.version_count = total - excess.min(unlabeled.len());
        Ok(())
    }

    /// Read-modify-write of one secret record, with retries; durable on return.
    pub(crate) async fn update_secret_record<F>(
        &self,
        region: &str,
        id: &str,
        mut f: F,
    ) -> Result<SecretRecord>
    where
        F: FnMut(&mut SecretRecord, &mut Batch) -> Result<()>,
    {
        for _ in 0..MAX_ATTEMPTS {
            let attempt = {
                let _guard = self.write_lock(region, id);
                let (mut rec, raw) = self.load_secret(region, id)?;
                let mut b = Batch::default();
                f(&mut rec, &mut b)?;
                let sk = secret_key(region, &rec.name);
                b.expect(&sk, &raw).put(&sk, &encode(&rec)?);
                match self.store.apply(&b) {
                    Ok(()) => Attempt::Written(rec),
                    Err(StoreError::Conflict) => Attempt::Conflict,
                    Err(e) => return Err(e.into()),
                }
            };
            match attempt {
                Attempt::Written(rec) | Attempt::Unchanged(rec) => {
                    self.durable().await?;
                    return Ok(rec);
                }
                Attempt::Conflict => continue,
            }
        }
        Err(CoreError::Contention(format!("secret {id}")))
    }

    /// UpdateSecret (description, KMS key for future versions).
    pub async fn update_secret(
        &self,
        region: &str,
        id: &str,
        req: &UpdateSecretRequest,
    ) -> Result<SecretDescription> {
        if let Some(d) = &req.description {
            validate_description(d)?;
        }
        let kms = match &req.kms_key_id {
            Some(k) => {
                let key = self.load_key(region, k)?;
                Self::ensure_usable_for_new_secret(&key)?;
                Some(key.key_id)
            }
            None => None,
        };
        let now = self.now();
        let rec = self
            .update_secret_record(region, id, |rec, _| {
                Self::ensure_not_deleted(rec)?;
                if let Some(d) = &req.description {
                    rec.description = Some(d.clone());
                }
                if let Some(k) = &kms {
                    rec.kms_key_id = Some(k.clone());
                }
                rec.last_changed = now;
                Ok(())
            })
            .await?;
        Ok(self.describe(region, &rec))
    }

    /// DescribeSecret (also works on secrets scheduled for deletion).
    pub fn describe_secret(&self, region: &str, id: &str) -> Result<SecretDescription> {
        let (rec, _) = self.load_secret(region, id)?;
        Ok(self.describe(region, &rec))
    }

    /// ListSecrets, sorted by name.
    pub fn list_secrets(&self, region: &str, q: &ListSecretsQuery) -> Result<ListSecretsResponse> {
        self.list_secrets_filtered(region, q, |_| true)
    }

    /// ListSecrets with an extra filter (the server passes "may the caller describe it").
    pub fn list_secrets_filtered(
        &self,
        region: &str,
        q: &ListSecretsQuery,
        mut visible: impl FnMut(&SecretDescription) -> bool,
    ) -> Result<ListSecretsResponse> {
        self.check_region(region)?;
        let limit = q.max_results.unwrap_or(100);
        if !(1..=100).contains(&limit) {
            return Err(CoreError::InvalidParameter(
                "max_results must be 1–100".into(),
            ));
        }
        let prefix = secret_prefix(region);
        let mut start = prefix.clone();
        if let Some(p) = &q.name_prefix {
            start.extend_from_slice(p.as_bytes());
        }
        let mut after = q.next_token.as_ref().map(|t| secret_key(region, t));
        let now = self.now();
        let desc = q.description.as_ref().map(|d| d.to_lowercase());
        let mut out = Vec::new();
        let mut next_token = None;
        'scan: loop {
            let rows = self.store.scan(&start, after.as_deref(), 256)?;
            if rows.is_empty() {
                break;
            }
            after = rows.last().map(|(k, _)| k.clone());
            for (_, raw) in rows {
                let rec: SecretRecord = decode("secret", &raw)?;
                if let Some(d) = &rec.deletion {
                    if !q.include_deleted || d.purge_at <= now {
                        continue;
                    }
                }
                if let Some(d) = &desc {
                    if !rec
                        .description
                        .as_deref()
                        .unwrap_or("")
                        .to_lowercase()
                        .contains(d)
                    {
                        continue;
                    }
                }
                if let Some(k) = &q.tag_key {
                    if !rec.tags.contains_key(k) {
                        continue;
                    }
                }
                if let Some(v) = &q.tag_value {
                    if !rec.tags.values().any(|x| x == v) {
                        continue;
                    }
                }
                let d = self.describe(region, &rec);
                if !visible(&d) {
                    continue;
                }
                if out.len() == limit {
                    next_token = out.last().map(|d: &SecretDescription| d.name.clone());
                    break 'scan;
                }
                out.push(d);
            }
        }
        Ok(ListSecretsResponse {
            secrets: out,
            next_token,
        })
    }

    /// ListSecretVersionIds, newest first; `include_deprecated` adds unlabeled versions.
    pub fn list_secret_versions(
        &self,
        region: &str,
        id: &str,
        include_deprecated: bool,
    ) -> Result<ListVersionsResponse> {
        let (rec, _) = self.load_secret(region, id)?;
        let rows = self
            .store
            .scan(&version_prefix(region, &rec.uid), None, usize::MAX)?;
        let mut versions = Vec::new();
        for (_, raw) in rows {
            let v: VersionRecord = decode("version", &raw)?;
            let stages = rec.stages_of(&v.version_id);
            if stages.is_empty() && !include_deprecated {
                continue;
            }
            versions.push((
                v.created_precise(),
                VersionInfo {
                    version_id: v.version_id,
                    version_stages: stages,
                    created_date: fmt_time(v.created),
                    kms_key_id: v.kms_key_id,
                },
            ));
        }
        versions.sort_by_key(|v| std::cmp::Reverse(v.0));
        Ok(ListVersionsResponse {
            arn: rec.arn,
            name: rec.name,
            versions: versions.into_iter().map(|(_, v)| v).collect(),
            next_token: None,
        })
    }

    /// UpdateSecretVersionStage: move or remove one staging label.
    pub async fn update_secret_version_stage(
        &self,
        region: &str,
        id: &str,
        req: &UpdateStageRequest,
    ) -> Result<SecretDescription> {
        validate_stage(&req.version_stage)?;
        let label = req.version_stage.as_str();
        let now = self.now();
        let rec = self
            .update_secret_record(region, id, |rec, b| {
                Self::ensure_not_deleted(rec)?;
                let holder = rec.stages.get(label).cloned();
                if let Some(from) = &req.remove_from_version_id {
                    if holder.as_deref() != Some(from.as_str()) {
                        return Err(CoreError::InvalidParameter(format!(
                            "label {label} is not attached to version {from}"
                        )));
                    }
                }
                match &req.move_to_version_id {
                    Some(to) => {
                        let vk = version_key(region, &rec.uid, to);
                        let raw = self.store.get(&vk)?.ok_or_else(|| {
                            CoreError::NotFound(format!("secret {} has no version {to}", rec.name))
                        })?;
                        b.expect(&vk, &raw);
                        if let Some(h) = &holder {
                            if h != to && req.remove_from_version_id.is_none() {
                                return Err(CoreError::InvalidParameter(format!(
                                    "label {label} is attached to version {h}; pass remove_from_version_id={h} to move it"
                                )));
                            }
                            if label == AWSCURRENT && h != to {
                                rec.stages.insert(AWSPREVIOUS.to_string(), h.clone());
                            }
                        }
                        rec.stages.insert(label.to_string(), to.clone());
                    }
                    None => {
                        if req.remove_from_version_id.is_none() {
                            return Err(CoreError::InvalidParameter(
                                "give move_to_version_id, remove_from_version_id, or both".into(),
                            ));
                        }
                        if label == AWSCURRENT {
                            return Err(CoreError::InvalidParameter(
                                "AWSCURRENT cannot be removed, only moved to another version".into(),
                            ));
                        }
                        rec.stages.remove(label);
                    }
                }
                rec.last_changed = now;
                Ok(())
            })
            .await?;
        Ok(self.describe(region, &rec))
    }

    /// DeleteSecret with a recovery window of 7–30 days (default 30), or immediately.
    pub async fn delete_secret(
        &self,
        region: &str,
        id: &str,
        recovery_window_days: Option<u32>,
        force: bool,
    ) -> Result<DeleteSecretResponse> {
        if force && recovery_window_days.is_some() {
            return Err(CoreError::InvalidParameter(
                "give recovery_window_days or force, not both".into(),
            ));
        }
        let now = self.now();
        if force {
            for _ in 0..MAX_ATTEMPTS {
                let (rec, raw) = self.load_secret(region, id)?;
                let mut b = Batch::default();
                self.purge_batch(region, &rec, &raw, &mut b)?;
                match self.store.apply(&b) {
                    Ok(()) => {
                        self.durable().await?;
                        return Ok(DeleteSecretResponse {
                            arn: rec.arn,
                            name: rec.name,
                            deletion_date: fmt_time(now),
                        });
                    }
                    Err(StoreError::Conflict) => continue,
                    Err(e) => return Err(e.into()),
                }
            }
            return Err(CoreError::Contention(format!("secret {id}")));
        }
        let days = recovery_window_days.unwrap_or(30);
        if !(7..=30).contains(&days) {
            return Err(CoreError::InvalidParameter(
                "recovery_window_days must be 7–30".into(),
            ));
        }
        let purge_at = now + Duration::days(i64::from(days));
        let rec = self
            .update_secret_record(region, id, |rec, _| {
                if rec.deletion.is_some() {
                    return Err(CoreError::InvalidState(format!(
                        "secret {} is already scheduled for deletion",
                        rec.name
                    )));
                }
                rec.deletion = Some(Deletion {
                    deleted_at: now,
                    purge_at,
                });
                Ok(())
            })
            .await?;
        Ok(DeleteSecretResponse {
            arn: rec.arn,
            name: rec.name,
            deletion_date: fmt_time(purge_at),
        })
    }

    fn purge_batch(
        &self,
        region: &str,
        rec: &SecretRecord,
        raw: &[u8],
        b: &mut Batch,
    ) -> Result<()> {
        let sk = secret_key(region, &rec.name);
        b.expect(&sk, raw).delete(&sk);
        for (k, _) in self
            .store
            .scan(&version_prefix(region, &rec.uid), None, usize::MAX)?
        {
            b.delete(&k);
        }
        Ok(())
    }

    /// RestoreSecret: cancels a scheduled deletion.
    pub async fn restore_secret(&self, region: &str, id: &str) -> Result<SecretDescription> {
        let rec = self
            .update_secret_record(region, id, |rec, _| {
                rec.deletion = None;
                Ok(())
            })
            .await?;
        Ok(self.describe(region, &rec))
    }

    /// TagResource on a secret.
    pub async fn tag_secret(
        &self,
        region: &str,
        id: &str,
        tags: &Tags,
    ) -> Result<SecretDescription> {
        let rec = self
            .update_secret_record(region, id, |rec, _| {
                let mut merged = rec.tags.clone();
                merged.extend(tags.clone());
                validate_tags(&merged)?;
                rec.tags = merged;
                Ok(())
            })
            .await?;
        Ok(self.describe(region, &rec))
    }

    /// UntagResource on a secret.
    pub async fn untag_secret(
        &self,
        region: &str,
        id: &str,
        keys: &[String],
    ) -> Result<SecretDescription> {
        for k in keys {
            validate_tag_key(k)?;
        }
        let rec = self
            .update_secret_record(region, id, |rec, _| {
                for k in keys {
                    rec.tags.remove(k);
                }
                Ok(())
            })
            .await?;
        Ok(self.describe(region, &rec))
    }

    /// Purges secrets whose recovery window has passed.
    pub(crate) fn purge_expired_secrets(&self, region: &str) -> Result<usize> {
        let now = self.now();
        let mut n = 0;
        let mut after: Option<Vec<u8>> = None;
        loop {
            let rows = self
                .store
                .scan(&secret_prefix(region), after.as_deref(), 256)?;
            if rows.is_empty() {
                break;
            }
            after = rows.last().map(|(k, _)| k.clone());
            for (_, raw) in rows {
                let rec: SecretRecord = decode("secret", &raw)?;
                if rec.deletion.as_ref().is_some_and(|d| d.purge_at <= now) {
                    let mut b = Batch::default();
                    self.purge_batch(region, &rec, &raw, &mut b)?;
                    match self.store.apply(&b) {
                        Ok(()) => n += 1,
                        Err(StoreError::Conflict) => {}
                        Err(e) => return Err(e.into()),
                    }
                }
            }
        }
        Ok(n)
    }
}

/// A secret's record as stored, with what its id said.
struct StoredSecret {
    /// Store key.
    key: Vec<u8>,
    raw: Vec<u8>,
    /// The name the id gives.
    name: String,
    /// The ARN, if the id was one.
    arn: Option<String>,
}

fn secret_not_found(region: &str, id: &str) -> CoreError {
    CoreError::NotFound(format!("secret {id} not found in region {region}"))
}
