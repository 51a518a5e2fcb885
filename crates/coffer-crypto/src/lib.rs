//! Coffer's cryptography: root-key providers, KMS key material, the versioned ciphertext
//! formats and zeroizing plaintext buffers.
//!
//! The envelope ("double lock") is built from three layers, all AES-256-GCM with a random
//! 96-bit nonce:
//!
//! 1. a **root key** from a [`RootKeyProvider`] (a key file by default) wraps
//! 2. each **KMS key version** ([`KeyMaterial`]), which wraps
//! 3. a fresh **data key** per secret version, which seals the value.
//!
//! Nothing above this crate ever sees key bytes: [`KeyMaterial`] exposes seal/open, never
//! its bytes, and plaintext travels in [`Plaintext`], which zeroizes on drop and never
//! prints its contents. The byte formats are described in [`format`] so a blob can be
//! decoded offline.
//!
//! This crate knows nothing of storage, HTTP or policy.
//!
//! ```
//! use coffer_crypto::{EncryptionContext, KeyMaterial, Plaintext, format};
//! let key = KeyMaterial::generate();
//! let ctx = EncryptionContext::default();
//! let blob = format::kms_encrypt(&key, "local", "k1", 1, &ctx, b"hello").unwrap();
//! let header = format::BlobHeader::parse(&blob).unwrap();
//! assert_eq!(header.key_id, "k1");
//! let plain: Plaintext = format::kms_decrypt(&key, "local", &blob, &ctx).unwrap();
//! assert_eq!(plain.as_bytes(), b"hello");
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod format;
mod root;

use std::collections::BTreeMap;
use std::fmt;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use rand::RngCore;
use zeroize::{Zeroize, Zeroizing};

pub use root::{KeyFileProvider, MemoryRootKey, RootKeyProvider};

/// Length of AES-GCM nonces.
pub const NONCE_LEN: usize = 12;
/// Length of AES-GCM tags.
pub const TAG_LEN: usize = 16;
/// Length of AES-256 keys.
pub const KEY_LEN: usize = 32;

/// Errors of this crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CryptoError {
    /// Authentication failed: the ciphertext, its AAD (ids, encryption context) or the key
    /// does not match. Deliberately says nothing more.
    #[error("integrity check failed: the ciphertext was altered, moved, or the key or encryption context does not match")]
    Integrity,
    /// The blob is not in a format this version understands.
    #[error("malformed ciphertext: {0}")]
    Malformed(&'static str),
    /// The root key could not be loaded or created.
    #[error("root key: {0}")]
    RootKey(String),
    /// A length or parameter is out of range.
    #[error("invalid parameter: {0}")]
    Invalid(&'static str),
}

/// Plaintext bytes (secret values, data keys, decrypted payloads). Zeroized on drop;
/// `Debug` shows only the length.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Plaintext(Zeroizing<Vec<u8>>);

impl Plaintext {
    /// Takes ownership of the bytes (they will be zeroized when this value drops).
    pub fn new(bytes: Vec<u8>) -> Self {
        Plaintext(Zeroizing::new(bytes))
    }
    /// Copies bytes into a new zeroizing buffer.
    pub fn from_slice(bytes: &[u8]) -> Self {
        Plaintext(Zeroizing::new(bytes.to_vec()))
    }
    /// `n` bytes from the operating system's CSPRNG.
    pub fn random(n: usize) -> Self {
        let mut v = Zeroizing::new(vec![0u8; n]);
        rand::rngs::OsRng.fill_bytes(&mut v);
        Plaintext(v)
    }
    /// The bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }
    /// Whether empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Plaintext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Plaintext(<redacted, {} bytes>)", self.0.len())
    }
}

/// A 256-bit AES-GCM key (a KMS key version, or a data key). The key schedule is kept
/// expanded for speed and zeroized on drop; the raw bytes are never exposed.
pub struct KeyMaterial {
    cipher: Aes256Gcm,
}

impl KeyMaterial {
    /// Fresh random key.
    pub fn generate() -> Self {
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        rand::rngs::OsRng.fill_bytes(&mut bytes[..]);
        Self::from_bytes(&bytes)
    }

    fn from_bytes(bytes: &[u8; KEY_LEN]) -> Self {
        KeyMaterial {
            cipher: Aes256Gcm::new(bytes.into()),
        }
    }

    /// Builds a key from a 32-byte plaintext (e.g. an unwrapped data key).
    pub fn from_plaintext(p: &Plaintext) -> Result<Self, CryptoError> {
        let bytes: &[u8; KEY_LEN] = p
            .as_bytes()
            .try_into()
            .map_err(|_| CryptoError::Invalid("key must be 32 bytes"))?;
        Ok(Self::from_bytes(bytes))
    }

    /// Generates a fresh key and returns it together with its plaintext bytes (for data
    /// keys that are handed to a caller or wrapped by another key).
    pub fn generate_with_plaintext() -> (Self, Plaintext) {
        let p = Plaintext::random(KEY_LEN);
        // Infallible: the length is KEY_LEN.
        let bytes: [u8; KEY_LEN] = {
            let mut b = [0u8; KEY_LEN];
            b.copy_from_slice(p.as_bytes());
            b
        };
        let mut bytes = Zeroizing::new(bytes);
        let k = Self::from_bytes(&bytes);
        bytes.zeroize();
        (k, p)
    }

    /// Seals `plaintext` with `aad`: returns `nonce || ciphertext || tag`.
    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let ct = self
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad,
                },
            )
            .map_err(|_| CryptoError::Invalid("plaintext too long"))?;
        let mut out = Vec::with_capacity(NONCE_LEN + ct.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        Ok(out)
    }

    /// Opens `nonce || ciphertext || tag` sealed with the same `aad`.
    pub fn open(&self, sealed: &[u8], aad: &[u8]) -> Result<Plaintext, CryptoError> {
        if sealed.len() < NONCE_LEN + TAG_LEN {
            return Err(CryptoError::Malformed(
                "sealed data shorter than nonce and tag",
            ));
        }
        let (nonce, ct) = sealed.split_at(NONCE_LEN);
        self.cipher
            .decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad })
            .map(Plaintext::new)
            .map_err(|_| CryptoError::Integrity)
    }

    /// Wraps this key's bytes under the root key. `aad` binds it to its identity
    /// (see [`format::key_material_aad`]).
    pub fn generate_wrapped(
        root: &dyn RootKeyProvider,
        aad: &[u8],
    ) -> Result<(Self, Vec<u8>), CryptoError> {
        let (k, p) = Self::generate_with_plaintext();
        let wrapped = root.wrap(p.as_bytes(), aad)?;
        Ok((k, wrapped))
    }

    /// Unwraps key bytes wrapped by [`KeyMaterial::generate_wrapped`].
    pub fn unwrap_from(
        root: &dyn RootKeyProvider,
        wrapped: &[u8],
        aad: &[u8],
    ) -> Result<Self, CryptoError> {
        let p = root.unwrap(wrapped, aad)?;
        Self::from_plaintext(&p)
    }
}

impl fmt::Debug for KeyMaterial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyMaterial(<redacted>)")
    }
}

/// A KMS encryption context: string pairs bound to a ciphertext as additional
/// authenticated data. Decrypting needs the exact same pairs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EncryptionContext(pub BTreeMap<String, String>);

impl EncryptionContext {
    /// Canonical bytes: pairs sorted by key, each as `u32 BE len || key || u32 BE len || value`.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for (k, v) in &self.0 {
            out.extend_from_slice(&(k.len() as u32).to_be_bytes());
            out.extend_from_slice(k.as_bytes());
            out.extend_from_slice(&(v.len() as u32).to_be_bytes());
            out.extend_from_slice(v.as_bytes());
        }
        out
    }
}

impl From<BTreeMap<String, String>> for EncryptionContext {
    fn from(m: BTreeMap<String, String>) -> Self {
        EncryptionContext(m)
    }
}

/// Fills a buffer with CSPRNG bytes.
pub fn random_bytes(n: usize) -> Plaintext {
    Plaintext::random(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_roundtrip_and_aad_binding() {
        let k = KeyMaterial::generate();
        let sealed = k.seal(b"value", b"aad-1").unwrap();
        assert_eq!(k.open(&sealed, b"aad-1").unwrap().as_bytes(), b"value");
        assert!(matches!(
            k.open(&sealed, b"aad-2"),
            Err(CryptoError::Integrity)
        ));
        let other = KeyMaterial::generate();
        assert!(matches!(
            other.open(&sealed, b"aad-1"),
            Err(CryptoError::Integrity)
        ));
        let mut tampered = sealed.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert!(k.open(&tampered, b"aad-1").is_err());
    }

    #[test]
    fn nonces_are_fresh() {
        let k = KeyMaterial::generate();
        let a = k.seal(b"x", b"").unwrap();
        let b = k.seal(b"x", b"").unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn plaintext_debug_is_redacted() {
        let p = Plaintext::from_slice(b"hunter2");
        let s = format!("{p:?}");
        assert!(!s.contains("hunter2"));
        assert!(s.contains("7 bytes"));
    }

    #[test]
    fn context_canonical_is_order_independent_and_unambiguous() {
        let mut a = BTreeMap::new();
        a.insert("b".to_string(), "2".to_string());
        a.insert("a".to_string(), "1".to_string());
        let mut b = BTreeMap::new();
        b.insert("a".to_string(), "1".to_string());
        b.insert("b".to_string(), "2".to_string());
        assert_eq!(
            EncryptionContext(a).canonical_bytes(),
            EncryptionContext(b).canonical_bytes()
        );
        let mut c = BTreeMap::new();
        c.insert("ab".to_string(), "".to_string());
        let mut d = BTreeMap::new();
        d.insert("a".to_string(), "b".to_string());
        assert_ne!(
            EncryptionContext(c).canonical_bytes(),
            EncryptionContext(d).canonical_bytes()
        );
    }
}
