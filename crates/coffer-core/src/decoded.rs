//! Decoded records, kept while their stored bytes stay the same.
//!
//! Every GetSecretValue reads three records (the secret, its version, the KMS key that
//! wraps the version's data key) and decoding their JSON was about half of the core's
//! work per read (`cargo bench -p coffer-core --bench read_path`). The store is still
//! read every time: a cached record is used only when the bytes just read are exactly the
//! bytes it was decoded from, so a write by any path, a restore or a tampered store is
//! seen at once, with nothing to invalidate. The records hold ciphertext and metadata
//! only, as the store does.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, MutexGuard};

use serde::de::DeserializeOwned;

use crate::records::decode;
use crate::Result;

/// Shards, so that the workers of a busy server seldom wait for each other.
const SHARDS: usize = 16;

/// A bounded map from a store key to the record decoded from the bytes stored there.
pub(crate) struct DecodedCache<T> {
    shards: Vec<Mutex<HashMap<Vec<u8>, Entry<T>>>>,
    per_shard: usize,
}

struct Entry<T> {
    raw: Vec<u8>,
    value: Arc<T>,
}

impl<T: DeserializeOwned> DecodedCache<T> {
    /// Holds at most about `capacity` records.
    pub(crate) fn new(capacity: usize) -> Self {
        DecodedCache {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            per_shard: capacity.div_ceil(SHARDS).max(1),
        }
    }

    fn shard(&self, key: &[u8]) -> MutexGuard<'_, HashMap<Vec<u8>, Entry<T>>> {
        let mut h = DefaultHasher::new();
        key.hash(&mut h);
        self.shards[(h.finish() as usize) % SHARDS]
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The record stored under `key` as `raw`: the cached one if it was decoded from
    /// exactly these bytes, else `raw` decoded (and kept in place of the old one).
    pub(crate) fn decode(&self, what: &str, key: &[u8], raw: Vec<u8>) -> Result<Arc<T>> {
        if let Some(e) = self.shard(key).get(key) {
            if e.raw == raw {
                return Ok(e.value.clone());
            }
        }
        let value = Arc::new(decode::<T>(what, &raw)?);
        let mut shard = self.shard(key);
        if shard.len() >= self.per_shard && !shard.contains_key(key) {
            // Full: one record goes, whichever the map yields first.
            if let Some(old) = shard.keys().next().cloned() {
                shard.remove(&old);
            }
        }
        shard.insert(
            key.to_vec(),
            Entry {
                raw,
                value: value.clone(),
            },
        );
        Ok(value)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().map(|s| s.len()).unwrap_or(0))
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug, PartialEq)]
    struct Rec {
        n: u32,
    }

    #[test]
    fn the_same_bytes_reuse_the_record_and_new_bytes_are_decoded() {
        let c: DecodedCache<Rec> = DecodedCache::new(8);
        let a = c
            .decode("rec", b"k", br#"{"n":1}"#.to_vec())
            .expect("decodes");
        let again = c
            .decode("rec", b"k", br#"{"n":1}"#.to_vec())
            .expect("decodes");
        assert!(
            Arc::ptr_eq(&a, &again),
            "unchanged bytes reuse the decoded record"
        );
        let changed = c
            .decode("rec", b"k", br#"{"n":2}"#.to_vec())
            .expect("decodes");
        assert_eq!(*changed, Rec { n: 2 }, "changed bytes are decoded anew");
        let back = c
            .decode("rec", b"k", br#"{"n":1}"#.to_vec())
            .expect("decodes");
        assert_eq!(*back, Rec { n: 1 });
        assert!(!Arc::ptr_eq(&a, &back), "the old record was replaced");
    }

    #[test]
    fn corrupt_bytes_are_an_error_and_leave_the_cached_record() {
        let c: DecodedCache<Rec> = DecodedCache::new(8);
        c.decode("rec", b"k", br#"{"n":1}"#.to_vec())
            .expect("decodes");
        let e = c
            .decode("rec", b"k", b"{not json".to_vec())
            .expect_err("corrupt");
        assert!(e.to_string().contains("corrupt rec record"), "{e}");
        let again = c
            .decode("rec", b"k", br#"{"n":1}"#.to_vec())
            .expect("decodes");
        assert_eq!(*again, Rec { n: 1 });
    }

    #[test]
    fn the_cache_stays_within_its_capacity() {
        let c: DecodedCache<Rec> = DecodedCache::new(32);
        for i in 0..1000u32 {
            let key = format!("key/{i}");
            let raw = format!(r#"{{"n":{i}}}"#);
            let r = c
                .decode("rec", key.as_bytes(), raw.into_bytes())
                .expect("decodes");
            assert_eq!(r.n, i);
        }
        assert!(c.len() <= 32, "{} records kept", c.len());
    }
}
