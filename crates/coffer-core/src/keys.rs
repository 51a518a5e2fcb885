//! The KMS half: symmetric keys with versions, aliases, rotation, scheduled deletion, and
//! the envelope operations (Encrypt, Decrypt, GenerateDataKey, ReEncrypt, GenerateRandom).

use std::sync::Arc;

use base64::Engine;
use coffer_api::{
    AliasEntry, CreateAliasRequest, CreateKeyRequest, DecryptRequest, DecryptResponse,
    EncryptRequest, EncryptResponse, GenerateDataKeyRequest, GenerateDataKeyResponse,
    GenerateRandomRequest, GenerateRandomResponse, KeyMetadata, KeyRotation,
    KeyRotationPolicyRequest, ListAliasesResponse, ListKeyRotationsResponse, ListKeysResponse,
    ReEncryptRequest, ReEncryptResponse, ScheduleKeyDeletionRequest, Tags,
};
use coffer_crypto::{format, EncryptionContext, KeyMaterial, Plaintext};
use coffer_store::{Batch, StoreError};
use time::Duration;

use crate::names::{validate_alias, validate_description, validate_tag_key, validate_tags};
use crate::records::{
    alias_key, alias_prefix, decode, default_key_key, encode, key_key, key_prefix, AliasRecord,
    KeyRecord, KeyState, KeyVersionRecord,
};
use crate::{fmt_time, Coffer, CoreError, Result, MAX_ATTEMPTS, MAX_ENCRYPT_PLAINTEXT_BYTES};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;
/// Alias of each region's default key for secrets (reserved).
pub const DEFAULT_KEY_ALIAS: &str = "alias/coffer/secretsmanager";

pub(crate) fn decode_b64(field: &str, s: &str) -> Result<Vec<u8>> {
    B64.decode(s.trim())
        .map_err(|_| CoreError::InvalidParameter(format!("{field} is not valid base64")))
}

fn key_arn(region: &str, key_id: &str) -> String {
    format!("arn:coffer:kms:{region}:key/{key_id}")
}

impl Coffer {
    // ------------------------------------------------------------------ lookups

    /// Resolves a key reference (id, key ARN, `alias/name` or alias ARN) to its record.
    pub(crate) fn load_key(&self, region: &str, key_ref: &str) -> Result<KeyRecord> {
        self.load_key_raw(region, key_ref).map(|(k, _)| k)
    }

    fn load_key_raw(&self, region: &str, key_ref: &str) -> Result<(KeyRecord, Vec<u8>)> {
        let (_, raw) = self.fetch_key(region, key_ref)?;
        Ok((decode("key", &raw)?, raw))
    }

    /// [`Self::load_key`] for reading only: the decoded record is shared, and reused while
    /// the stored bytes are unchanged.
    pub(crate) fn read_key(&self, region: &str, key_ref: &str) -> Result<Arc<KeyRecord>> {
        let (key, raw) = self.fetch_key(region, key_ref)?;
        self.decoded.keys.decode("key", &key, raw)
    }

    /// The store key and stored bytes of the key `key_ref` names (an id, an ARN or an
    /// alias), not yet decoded.
    fn fetch_key(&self, region: &str, key_ref: &str) -> Result<(Vec<u8>, Vec<u8>)> {
        self.check_region(region)?;
        let not_found = || key_not_found(region, key_ref);
        let mut r = key_ref.trim();
        if let Some(rest) = r.strip_prefix("arn:coffer:kms:") {
            let (arn_region, tail) = rest.split_once(':').ok_or_else(not_found)?;
            if arn_region != region {
                return Err(not_found());
            }
            r = tail.strip_prefix("key/").unwrap_or(tail);
        }
        let key_id = if r.starts_with("alias/") {
            let raw = self
                .store
                .get(&alias_key(region, r))?
                .ok_or_else(not_found)?;
            decode::<AliasRecord>("alias", &raw)?.target_key_id
        } else {
            r.to_string()
        };
        if key_id.is_empty() || key_id.contains('/') {
            return Err(not_found());
        }
        let key = key_key(region, &key_id);
        let raw = self.store.get(&key)?.ok_or_else(not_found)?;
        Ok((key, raw))
    }

    /// The unwrapped material of one key version, cached.
    fn material(&self, region: &str, key: &KeyRecord, version: u32) -> Result<Arc<KeyMaterial>> {
        let cache_key = (region.to_string(), key.key_id.clone(), version);
        if let Ok(c) = self.key_cache.read() {
            if let Some(m) = c.get(&cache_key) {
                return Ok(m.clone());
            }
        }
        let v = key
            .versions
            .iter()
            .find(|v| v.version == version)
            .ok_or_else(|| {
                CoreError::Integrity(format!(
                    "key {} has no version {version}; the ciphertext was not made by this key",
                    key.key_id
                ))
            })?;
        let aad = format::key_material_aad(region, &key.key_id, version);
        let m = Arc::new(
            KeyMaterial::unwrap_from(self.root.as_ref(), &v.wrapped, &aad).map_err(|_| {
                CoreError::Internal(format!(
                    "key {} version {version} cannot be unwrapped by the root key (wrong root key?)",
                    key.key_id
                ))
            })?,
        );
        if let Ok(mut c) = self.key_cache.write() {
            c.insert(cache_key, m.clone());
        }
        Ok(m)
    }

    fn ensure_usable(key: &KeyRecord) -> Result<()> {
        match key.state {
            KeyState::Enabled => Ok(()),
            KeyState::Disabled => Err(CoreError::InvalidState(format!(
                "key {} is disabled; enable it to encrypt or decrypt",
                key.key_id
            ))),
            KeyState::PendingDeletion => Err(CoreError::InvalidState(format!(
                "key {} is pending deletion; cancel the deletion to use it",
                key.key_id
            ))),
        }
    }

    /// Encrypts with the newest version of `key` (which must be enabled).
    pub(crate) fn encrypt_with(
        &self,
        region: &str,
        key: &KeyRecord,
        ctx: &EncryptionContext,
        plaintext: &[u8],
    ) -> Result<(Vec<u8>, u32)> {
        Self::ensure_usable(key)?;
        let version = key.current_version();
        let m = self.material(region, key, version)?;
        Ok((
            format::kms_encrypt(&m, region, &key.key_id, version, ctx, plaintext)?,
            version,
        ))
    }

    /// Decrypts a KMS blob in `region`; the key comes from the blob's header.
    pub(crate) fn decrypt_blob(
        &self,
        region: &str,
        blob: &[u8],
        ctx: &EncryptionContext,
    ) -> Result<(Plaintext, Arc<KeyRecord>, u32)> {
        let header = format::BlobHeader::parse(blob)?;
        let key = match self.read_key(region, header.key_id) {
            Ok(k) => k,
            Err(CoreError::NotFound(_)) => {
                return Err(CoreError::Integrity(
                    "the ciphertext was made by a key that does not exist in this region".into(),
                ))
            }
            Err(e) => return Err(e),
        };
        Self::ensure_usable(&key)?;
        let version = header.key_version;
        let m = self.material(region, &key, version)?;
        let p = format::kms_decrypt(&m, region, blob, ctx)?;
        Ok((p, key, version))
    }

    /// The region's default key for secrets, created on first use.
    pub(crate) fn default_key(&self, region: &str) -> Result<KeyRecord> {
        for _ in 0..MAX_ATTEMPTS {
            if let Some(id) = self.store.get(&default_key_key(region))? {
                let id = String::from_utf8_lossy(&id).to_string();
                return self.load_key(region, &id);
            }
            let key = self.new_key_record(
                region,
                "Default key for secrets in this region",
                Tags::new(),
                true,
            )?;
            let mut b = Batch::default();
            b.expect_absent(&default_key_key(region))
                .put(&default_key_key(region), key.key_id.as_bytes())
                .put(&key_key(region, &key.key_id), &encode(&key)?)
                .put(
                    &alias_key(region, DEFAULT_KEY_ALIAS),
                    &encode(&AliasRecord {
                        target_key_id: key.key_id.clone(),
                    })?,
                );
            match self.store.apply(&b) {
                Ok(()) => return Ok(key),
                Err(StoreError::Conflict) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(CoreError::Contention("the default key".into()))
    }

    fn new_key_record(
        &self,
        region: &str,
        description: &str,
        tags: Tags,
        is_default: bool,
    ) -> Result<KeyRecord> {
        let key_id = uuid::Uuid::new_v4().to_string();
        let now = self.now();
        let aad = format::key_material_aad(region, &key_id, 1);
        let (_m, wrapped) = KeyMaterial::generate_wrapped(self.root.as_ref(), &aad)?;
        Ok(KeyRecord {
            key_id,
            description: description.to_string(),
            state: KeyState::Enabled,
            created: now,
            deletion_date: None,
            versions: vec![KeyVersionRecord {
                version: 1,
                created: now,
                origin: "CREATED".into(),
                wrapped,
            }],
            tags,
            aliases: if is_default {
                vec![DEFAULT_KEY_ALIAS.to_string()]
            } else {
                vec![]
            },
            rotation_period_days: None,
            next_rotation: None,
            is_default,
        })
    }

    pub(crate) fn key_metadata(&self, region: &str, k: &KeyRecord) -> KeyMetadata {
        KeyMetadata {
            key_id: k.key_id.clone(),
            arn: key_arn(region, &k.key_id),
            region: region.to_string(),
            description: k.description.clone(),
            key_state: k.state.as_str().to_string(),
            key_spec: "SYMMETRIC_DEFAULT".into(),
            key_usage: "ENCRYPT_DECRYPT".into(),
            creation_date: fmt_time(k.created),
            deletion_date: k.deletion_date.map(fmt_time),
            current_key_version: k.current_version(),
            aliases: k.aliases.clone(),
            tags: k.tags.clone(),
            rotation_enabled: k.rotation_period_days.is_some(),
            rotation_period_days: k.rotation_period_days,
            next_rotation_date: k.next_rotation.map(fmt_time),
            is_default: k.is_default,
        }
    }

    /// Read-modify-write of one key record with optimistic retries; `f` may also add
    /// writes to the batch. Durable on return.
    async fn update_key<F>(&self, region: &str, key_ref: &str, mut f: F) -> Result<KeyRecord>
    where
        F: FnMut(&mut KeyRecord, &mut Batch) -> Result<()>,
    {
        for _ in 0..MAX_ATTEMPTS {
            let (mut k, raw) = self.load_key_raw(region, key_ref)?;
            let mut b = Batch::default();
            f(&mut k, &mut b)?;
            let kk = key_key(region, &k.key_id);
            b.expect(&kk, &raw).put(&kk, &encode(&k)?);
            match self.store.apply(&b) {
                Ok(()) => {
                    self.durable().await?;
                    return Ok(k);
                }
                Err(StoreError::Conflict) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(CoreError::Contention(format!("key {key_ref}")))
    }

    // ------------------------------------------------------------------ key management

    /// CreateKey.
    pub async fn create_key(&self, region: &str, req: &CreateKeyRequest) -> Result<KeyMetadata> {
        self.check_region(region)?;
        if let Some(spec) = &req.key_spec {
            if spec != "SYMMETRIC_DEFAULT" {
                return Err(CoreError::InvalidParameter(format!(
                    "key_spec {spec:?} is not supported; only SYMMETRIC_DEFAULT (AES-256-GCM)"
                )));
            }
        }
        let description = req.description.clone().unwrap_or_default();
        validate_description(&description)?;
        let tags = req.tags.clone().unwrap_or_default();
        validate_tags(&tags)?;
        let key = self.new_key_record(region, &description, tags, false)?;
        let mut b = Batch::default();
        b.expect_absent(&key_key(region, &key.key_id))
            .put(&key_key(region, &key.key_id), &encode(&key)?);
        self.store.apply(&b)?;
        self.durable().await?;
        Ok(self.key_metadata(region, &key))
    }

    /// DescribeKey.
    pub fn describe_key(&self, region: &str, key_ref: &str) -> Result<KeyMetadata> {
        let k = self.load_key(region, key_ref)?;
        Ok(self.key_metadata(region, &k))
    }

    /// ListKeys, ordered by key id; `next_token` is the last key id of the previous page.
    pub fn list_keys(
        &self,
        region: &str,
        max_results: Option<usize>,
        next_token: Option<&str>,
    ) -> Result<ListKeysResponse> {
        self.check_region(region)?;
        let limit = max_results.unwrap_or(100);
        if !(1..=1000).contains(&limit) {
            return Err(CoreError::InvalidParameter(
                "max_results must be 1–1000".into(),
            ));
        }
        let prefix = key_prefix(region);
        let after = next_token.map(|t| key_key(region, t));
        let rows = self.store.scan(&prefix, after.as_deref(), limit + 1)?;
        let mut keys = Vec::new();
        for (_, v) in rows.iter().take(limit) {
            keys.push(self.key_metadata(region, &decode::<KeyRecord>("key", v)?));
        }
        let next_token = if rows.len() > limit {
            keys.last().map(|k| k.key_id.clone())
        } else {
            None
        };
        Ok(ListKeysResponse { keys, next_token })
    }

    /// UpdateKeyDescription.
    pub async fn update_key_description(
        &self,
        region: &str,
        key_ref: &str,
        description: &str,
    ) -> Result<KeyMetadata> {
        validate_description(description)?;
        let k = self
            .update_key(region, key_ref, |k, _| {
                k.description = description.to_string();
                Ok(())
            })
            .await?;
        Ok(self.key_metadata(region, &k))
    }

    /// EnableKey / DisableKey.
    pub async fn set_key_enabled(
        &self,
        region: &str,
        key_ref: &str,
        enabled: bool,
    ) -> Result<KeyMetadata> {
        let k = self
            .update_key(region, key_ref, |k, _| {
                if k.state == KeyState::PendingDeletion {
                    return Err(CoreError::InvalidState(format!(
                        "key {} is pending deletion; cancel the deletion first",
                        k.key_id
                    )));
                }
                k.state = if enabled {
                    KeyState::Enabled
                } else {
                    KeyState::Disabled
                };
                Ok(())
            })
            .await?;
        Ok(self.key_metadata(region, &k))
    }

    fn add_key_version(&self, region: &str, k: &mut KeyRecord, origin: &str) -> Result<()> {
        let version = k.current_version() + 1;
        let aad = format::key_material_aad(region, &k.key_id, version);
        let (_m, wrapped) = KeyMaterial::generate_wrapped(self.root.as_ref(), &aad)?;
        k.versions.push(KeyVersionRecord {
            version,
            created: self.now(),
            origin: origin.to_string(),
            wrapped,
        });
        Ok(())
    }

    /// RotateKeyOnDemand: a new key version encrypts from now on; old versions still decrypt.
    pub async fn rotate_key(&self, region: &str, key_ref: &str) -> Result<KeyMetadata> {
        let k = self
            .update_key(region, key_ref, |k, _| {
                Self::ensure_usable(k)?;
                self.add_key_version(region, k, "ON_DEMAND")
            })
            .await?;
        Ok(self.key_metadata(region, &k))
    }

    /// ListKeyRotations.
    pub fn list_key_rotations(
        &self,
        region: &str,
        key_ref: &str,
    ) -> Result<ListKeyRotationsResponse> {
        let k = self.load_key(region, key_ref)?;
        Ok(ListKeyRotationsResponse {
            key_id: k.key_id.clone(),
            rotations: k
                .versions
                .iter()
                .filter(|v| v.version > 1)
                .map(|v| KeyRotation {
                    key_version: v.version,
                    rotation_date: fmt_time(v.created),
                    rotation_type: v.origin.clone(),
                })
                .collect(),
        })
    }

    /// EnableKeyRotation / DisableKeyRotation (period 1–2560 days, default 365).
    pub async fn set_key_rotation(
        &self,
        region: &str,
        key_ref: &str,
        req: &KeyRotationPolicyRequest,
    ) -> Result<KeyMetadata> {
        let period = req.rotation_period_days.unwrap_or(365);
        if req.enabled && !(1..=2560).contains(&period) {
            return Err(CoreError::InvalidParameter(
                "rotation_period_days must be 1–2560".into(),
            ));
        }
        let now = self.now();
        let k = self
            .update_key(region, key_ref, |k, _| {
                if k.state == KeyState::PendingDeletion {
                    return Err(CoreError::InvalidState(format!(
                        "key {} is pending deletion",
                        k.key_id
                    )));
                }
                if req.enabled {
                    k.rotation_period_days = Some(period);
                    k.next_rotation = Some(now + Duration::days(i64::from(period)));
                } else {
                    k.rotation_period_days = None;
                    k.next_rotation = None;
                }
                Ok(())
            })
            .await?;
        Ok(self.key_metadata(region, &k))
    }

    /// ScheduleKeyDeletion (7–30 days, default 30).
    pub async fn schedule_key_deletion(
        &self,
        region: &str,
        key_ref: &str,
        req: &ScheduleKeyDeletionRequest,
    ) -> Result<KeyMetadata> {
        let days = req.pending_window_in_days.unwrap_or(30);
        if !(7..=30).contains(&days) {
            return Err(CoreError::InvalidParameter(
                "pending_window_in_days must be 7–30".into(),
            ));
        }
        let when = self.now() + Duration::days(i64::from(days));
        let k = self
            .update_key(region, key_ref, |k, _| {
                if k.is_default {
                    return Err(CoreError::InvalidState(
                        "the region's default key for secrets cannot be deleted".into(),
                    ));
                }
                if k.state == KeyState::PendingDeletion {
                    return Err(CoreError::InvalidState(format!(
                        "key {} is already pending deletion",
                        k.key_id
                    )));
                }
                k.state = KeyState::PendingDeletion;
                k.deletion_date = Some(when);
                Ok(())
            })
            .await?;
        Ok(self.key_metadata(region, &k))
    }

    /// CancelKeyDeletion: the key returns as Disabled, as in AWS KMS.
    pub async fn cancel_key_deletion(&self, region: &str, key_ref: &str) -> Result<KeyMetadata> {
        let k = self
            .update_key(region, key_ref, |k, _| {
                if k.state != KeyState::PendingDeletion {
                    return Err(CoreError::InvalidState(format!(
                        "key {} is not pending deletion",
                        k.key_id
                    )));
                }
                k.state = KeyState::Disabled;
                k.deletion_date = None;
                Ok(())
            })
            .await?;
        Ok(self.key_metadata(region, &k))
    }

    /// TagResource on a key.
    pub async fn tag_key(&self, region: &str, key_ref: &str, tags: &Tags) -> Result<KeyMetadata> {
        let k = self
            .update_key(region, key_ref, |k, _| {
                let mut merged = k.tags.clone();
                merged.extend(tags.clone());
                validate_tags(&merged)?;
                k.tags = merged;
                Ok(())
            })
            .await?;
        Ok(self.key_metadata(region, &k))
    }

    /// UntagResource on a key.
    pub async fn untag_key(
        &self,
        region: &str,
        key_ref: &str,
        keys: &[String],
    ) -> Result<KeyMetadata> {
        for t in keys {
            validate_tag_key(t)?;
        }
        let k = self
            .update_key(region, key_ref, |k, _| {
                for t in keys {
                    k.tags.remove(t);
                }
                Ok(())
            })
            .await?;
        Ok(self.key_metadata(region, &k))
    }

    /// Deletes keys past their deletion date and rotates keys whose rotation is due.
    pub(crate) fn run_key_schedules(&self, region: &str) -> Result<usize> {
        let now = self.now();
        let mut changed = 0;
        let mut after: Option<Vec<u8>> = None;
        loop {
            let rows = self
                .store
                .scan(&key_prefix(region), after.as_deref(), 256)?;
            if rows.is_empty() {
                break;
            }
            after = rows.last().map(|(k, _)| k.clone());
            for (kk, raw) in rows {
                let mut k: KeyRecord = decode("key", &raw)?;
                let mut b = Batch::default();
                b.expect(&kk, &raw);
                if k.state == KeyState::PendingDeletion && k.deletion_date.is_some_and(|d| d <= now)
                {
                    b.delete(&kk);
                    for a in &k.aliases {
                        b.delete(&alias_key(region, a));
                    }
                } else if k.state == KeyState::Enabled && k.next_rotation.is_some_and(|d| d <= now)
                {
                    self.add_key_version(region, &mut k, "AUTOMATIC")?;
                    let period = i64::from(k.rotation_period_days.unwrap_or(365));
                    k.next_rotation = Some(now + Duration::days(period));
                    b.put(&kk, &encode(&k)?);
                } else {
                    continue;
                }
                match self.store.apply(&b) {
                    Ok(()) => changed += 1,
                    Err(StoreError::Conflict) => {} // changed concurrently; next round
                    Err(e) => return Err(e.into()),
                }
            }
        }
        if changed > 0 {
            if let Ok(mut c) = self.key_cache.write() {
                c.retain(|(r, id, _), _| {
                    r != region
                        || self
                            .store
                            .get(&key_key(region, id))
                            .ok()
                            .flatten()
                            .is_some()
                });
            }
        }
        Ok(changed)
    }

    // ------------------------------------------------------------------ aliases

    /// CreateAlias.
    pub async fn create_alias(&self, region: &str, req: &CreateAliasRequest) -> Result<AliasEntry> {
        validate_alias(&req.alias_name)?;
        if req.alias_name.starts_with("alias/aws/") || req.alias_name.starts_with("alias/coffer/") {
            return Err(CoreError::InvalidParameter(
                "alias names under alias/aws/ and alias/coffer/ are reserved".into(),
            ));
        }
        let ak = alias_key(region, &req.alias_name);
        let target = self.load_key(region, &req.target_key_id)?;
        if target.state == KeyState::PendingDeletion {
            return Err(CoreError::InvalidState(format!(
                "key {} is pending deletion",
                target.key_id
            )));
        }
        let record = encode(&AliasRecord {
            target_key_id: target.key_id.clone(),
        })?;
        let alias = req.alias_name.clone();
        self.update_key(region, &target.key_id, |k, b| {
            if self.store.get(&ak)?.is_some() {
                return Err(CoreError::AlreadyExists(format!(
                    "alias {alias} already exists"
                )));
            }
            b.expect_absent(&ak).put(&ak, &record);
            if !k.aliases.contains(&alias) {
                k.aliases.push(alias.clone());
                k.aliases.sort();
            }
            Ok(())
        })
        .await?;
        Ok(AliasEntry {
            alias_name: req.alias_name.clone(),
            target_key_id: target.key_id,
        })
    }

    /// UpdateAlias: points an alias at another key.
    pub async fn update_alias(
        &self,
        region: &str,
        alias: &str,
        target_ref: &str,
    ) -> Result<AliasEntry> {
        validate_alias(alias)?;
        if alias.starts_with("alias/aws/") || alias.starts_with("alias/coffer/") {
            return Err(CoreError::InvalidParameter(
                "reserved aliases cannot be changed".into(),
            ));
        }
        for _ in 0..MAX_ATTEMPTS {
            let ak = alias_key(region, alias);
            let raw = self
                .store
                .get(&ak)?
                .ok_or_else(|| CoreError::NotFound(format!("alias {alias} not found")))?;
            let old_id = decode::<AliasRecord>("alias", &raw)?.target_key_id;
            let (mut new_key, new_raw) = self.load_key_raw(region, target_ref)?;
            if new_key.state == KeyState::PendingDeletion {
                return Err(CoreError::InvalidState(format!(
                    "key {} is pending deletion",
                    new_key.key_id
                )));
            }
            let mut b = Batch::default();
            b.expect(&ak, &raw).put(
                &ak,
                &encode(&AliasRecord {
                    target_key_id: new_key.key_id.clone(),
                })?,
            );
            if old_id != new_key.key_id {
                if let Some(old_raw) = self.store.get(&key_key(region, &old_id))? {
                    let mut old: KeyRecord = decode("key", &old_raw)?;
                    old.aliases.retain(|a| a != alias);
                    b.expect(&key_key(region, &old_id), &old_raw)
                        .put(&key_key(region, &old_id), &encode(&old)?);
                }
                new_key.aliases.push(alias.to_string());
                new_key.aliases.sort();
                b.expect(&key_key(region, &new_key.key_id), &new_raw)
                    .put(&key_key(region, &new_key.key_id), &encode(&new_key)?);
            }
            match self.store.apply(&b) {
                Ok(()) => {
                    self.durable().await?;
                    return Ok(AliasEntry {
                        alias_name: alias.to_string(),
                        target_key_id: new_key.key_id,
                    });
                }
                Err(StoreError::Conflict) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(CoreError::Contention(format!("alias {alias}")))
    }

    /// DeleteAlias.
    pub async fn delete_alias(&self, region: &str, alias: &str) -> Result<()> {
        validate_alias(alias)?;
        if alias.starts_with("alias/coffer/") {
            return Err(CoreError::InvalidParameter(
                "reserved aliases cannot be deleted".into(),
            ));
        }
        let ak = alias_key(region, alias);
        self.update_key(region, alias, |k, b| {
            k.aliases.retain(|a| a != alias);
            b.delete(&ak);
            Ok(())
        })
        .await?;
        Ok(())
    }

    /// ListAliases, sorted by name.
    pub fn list_aliases(&self, region: &str) -> Result<ListAliasesResponse> {
        self.check_region(region)?;
        let prefix = alias_prefix(region);
        let rows = self.store.scan(&prefix, None, 10_000)?;
        let mut aliases = Vec::with_capacity(rows.len());
        for (k, v) in rows {
            let name = String::from_utf8_lossy(&k[prefix.len()..]).to_string();
            aliases.push(AliasEntry {
                alias_name: name,
                target_key_id: decode::<AliasRecord>("alias", &v)?.target_key_id,
            });
        }
        Ok(ListAliasesResponse { aliases })
    }

    // ------------------------------------------------------------------ envelope operations

    /// Encrypt (plaintext 1–4,096 bytes).
    pub fn encrypt(
        &self,
        region: &str,
        key_ref: &str,
        req: &EncryptRequest,
    ) -> Result<EncryptResponse> {
        let plain = Plaintext::new(decode_b64("plaintext", &req.plaintext)?);
        if plain.is_empty() {
            return Err(CoreError::InvalidParameter(
                "plaintext must not be empty".into(),
            ));
        }
        if plain.len() > MAX_ENCRYPT_PLAINTEXT_BYTES {
            return Err(CoreError::TooLarge(format!(
                "plaintext is {} bytes; Encrypt takes at most {MAX_ENCRYPT_PLAINTEXT_BYTES} (use a data key for more)",
                plain.len()
            )));
        }
        let key = self.load_key(region, key_ref)?;
        let ctx = EncryptionContext(req.encryption_context.clone().unwrap_or_default());
        let (blob, version) = self.encrypt_with(region, &key, &ctx, plain.as_bytes())?;
        Ok(EncryptResponse {
            ciphertext_blob: B64.encode(blob),
            key_id: key.key_id,
            key_version: version,
        })
    }

    /// Decrypt; the key is named by the blob (and must match `key_id` when given).
    pub fn decrypt(&self, region: &str, req: &DecryptRequest) -> Result<DecryptResponse> {
        self.check_region(region)?;
        let blob = decode_b64("ciphertext_blob", &req.ciphertext_blob)?;
        let header = format::BlobHeader::parse(&blob)?;
        if let Some(want) = &req.key_id {
            let want = self.load_key(region, want)?;
            if want.key_id != header.key_id {
                return Err(CoreError::Integrity(format!(
                    "the ciphertext was not made by key {}",
                    want.key_id
                )));
            }
        }
        let ctx = EncryptionContext(req.encryption_context.clone().unwrap_or_default());
        let (p, key, version) = self.decrypt_blob(region, &blob, &ctx)?;
        Ok(DecryptResponse {
            plaintext: B64.encode(p.as_bytes()),
            key_id: key.key_id.clone(),
            key_version: version,
        })
    }

    /// GenerateDataKey / GenerateDataKeyWithoutPlaintext.
    pub fn generate_data_key(
        &self,
        region: &str,
        key_ref: &str,
        req: &GenerateDataKeyRequest,
        with_plaintext: bool,
    ) -> Result<GenerateDataKeyResponse> {
        let n = match (&req.key_spec, req.number_of_bytes) {
            (Some(_), Some(_)) => {
                return Err(CoreError::InvalidParameter(
                    "give key_spec or number_of_bytes, not both".into(),
                ))
            }
            (Some(s), None) if s == "AES_256" => 32,
            (Some(s), None) if s == "AES_128" => 16,
            (Some(s), None) => {
                return Err(CoreError::InvalidParameter(format!(
                    "key_spec {s:?} is not supported; use AES_256 or AES_128"
                )))
            }
            (None, Some(n)) if (1..=1024).contains(&n) => n as usize,
            (None, Some(_)) => {
                return Err(CoreError::InvalidParameter(
                    "number_of_bytes must be 1–1024".into(),
                ))
            }
            (None, None) => 32,
        };
        let key = self.load_key(region, key_ref)?;
        let ctx = EncryptionContext(req.encryption_context.clone().unwrap_or_default());
        let dk = Plaintext::random(n);
        let (blob, version) = self.encrypt_with(region, &key, &ctx, dk.as_bytes())?;
        Ok(GenerateDataKeyResponse {
            plaintext: with_plaintext.then(|| B64.encode(dk.as_bytes())),
            ciphertext_blob: B64.encode(blob),
            key_id: key.key_id,
            key_version: version,
        })
    }

    /// ReEncrypt: decrypts and encrypts again inside the server; the plaintext never leaves.
    pub fn re_encrypt(&self, region: &str, req: &ReEncryptRequest) -> Result<ReEncryptResponse> {
        self.check_region(region)?;
        let blob = decode_b64("ciphertext_blob", &req.ciphertext_blob)?;
        let src_ctx = EncryptionContext(req.source_encryption_context.clone().unwrap_or_default());
        let (p, src_key, src_version) = self.decrypt_blob(region, &blob, &src_ctx)?;
        let dst_key = match &req.destination_key_id {
            Some(r) => self.read_key(region, r)?,
            None => src_key.clone(),
        };
        let dst_ctx = match &req.destination_encryption_context {
            Some(c) => EncryptionContext(c.clone()),
            None => src_ctx,
        };
        let (new_blob, version) = self.encrypt_with(region, &dst_key, &dst_ctx, p.as_bytes())?;
        Ok(ReEncryptResponse {
            ciphertext_blob: B64.encode(new_blob),
            source_key_id: src_key.key_id.clone(),
            source_key_version: src_version,
            key_id: dst_key.key_id.clone(),
            key_version: version,
        })
    }

    /// GenerateRandom (1–1,024 bytes).
    pub fn generate_random(&self, req: &GenerateRandomRequest) -> Result<GenerateRandomResponse> {
        if !(1..=1024).contains(&req.number_of_bytes) {
            return Err(CoreError::InvalidParameter(
                "number_of_bytes must be 1–1024".into(),
            ));
        }
        let p = Plaintext::random(req.number_of_bytes as usize);
        Ok(GenerateRandomResponse {
            plaintext: B64.encode(p.as_bytes()),
        })
    }

    /// The id a blob names in its header (for authorization before decrypting).
    pub fn blob_key_id(&self, ciphertext_b64: &str) -> Result<String> {
        let blob = decode_b64("ciphertext_blob", ciphertext_b64)?;
        Ok(format::BlobHeader::parse(&blob)?.key_id.to_string())
    }
}

fn key_not_found(region: &str, key_ref: &str) -> CoreError {
    CoreError::NotFound(format!("key {key_ref} not found in region {region}"))
}
