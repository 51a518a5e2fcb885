//! Byte formats, versioned so they can be decoded offline and migrated later.
//!
//! ## KMS ciphertext blob, format 1
//! ```text
//! offset  size  field
//! 0       2     magic "CK"
//! 2       1     format version = 1
//! 3       1     L = length of the key id
//! 4       L     key id (ASCII, a UUID)
//! 4+L     4     key version, u32 big-endian
//! 8+L     12    AES-GCM nonce
//! 20+L    n+16  AES-256-GCM ciphertext and tag
//! ```
//! AAD = `"coffer:kms:v1" || 0x00 || region || 0x00 || header (bytes 0..8+L) || canonical encryption context`
//! (see [`crate::EncryptionContext::canonical_bytes`]). So a blob cannot be decrypted in another region, under
//! another key or version, or with another context.
//!
//! ## Key material (a KMS key version, wrapped by the root key)
//! `nonce || ciphertext || tag` with AAD [`key_material_aad`] = `"coffer:key-material:v1" || 0 || region || 0 || key id || 0 || version (u32 BE)`.
//!
//! ## Secret value, format 1
//! A fresh data key per version. The data key is a KMS blob (above) made by the secret's
//! KMS key with encryption context `{"coffer:region": region, "coffer:secret-id": id, "coffer:version-id": version}`;
//! the value is `nonce || ciphertext || tag` under the data key with AAD [`secret_value_aad`].

use crate::{CryptoError, EncryptionContext, KeyMaterial, Plaintext, NONCE_LEN, TAG_LEN};

const MAGIC: &[u8; 2] = b"CK";
const BLOB_VERSION: u8 = 1;

/// Parsed header of a KMS ciphertext blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobHeader<'a> {
    /// Key id that made the blob.
    pub key_id: &'a str,
    /// Key version that made the blob.
    pub key_version: u32,
    /// Length of the header in bytes (the sealed part follows).
    pub header_len: usize,
}

impl<'a> BlobHeader<'a> {
    /// Parses the header of a blob without decrypting anything.
    pub fn parse(blob: &'a [u8]) -> Result<Self, CryptoError> {
        if blob.len() < 4 || &blob[0..2] != MAGIC {
            return Err(CryptoError::Malformed("not a Coffer ciphertext blob"));
        }
        if blob[2] != BLOB_VERSION {
            return Err(CryptoError::Malformed(
                "unsupported ciphertext blob version",
            ));
        }
        let l = blob[3] as usize;
        let header_len = 4 + l + 4;
        if blob.len() < header_len + NONCE_LEN + TAG_LEN {
            return Err(CryptoError::Malformed("ciphertext blob is truncated"));
        }
        let key_id = std::str::from_utf8(&blob[4..4 + l])
            .map_err(|_| CryptoError::Malformed("key id is not UTF-8"))?;
        let mut v = [0u8; 4];
        v.copy_from_slice(&blob[4 + l..header_len]);
        Ok(BlobHeader {
            key_id,
            key_version: u32::from_be_bytes(v),
            header_len,
        })
    }
}

fn kms_aad(region: &str, header: &[u8], ctx: &EncryptionContext) -> Vec<u8> {
    let mut aad = Vec::with_capacity(32 + region.len() + header.len());
    aad.extend_from_slice(b"coffer:kms:v1\0");
    aad.extend_from_slice(region.as_bytes());
    aad.push(0);
    aad.extend_from_slice(header);
    aad.extend_from_slice(&ctx.canonical_bytes());
    aad
}

/// Encrypts `plaintext` with one KMS key version into a format-1 blob.
pub fn kms_encrypt(
    key: &KeyMaterial,
    region: &str,
    key_id: &str,
    key_version: u32,
    ctx: &EncryptionContext,
    plaintext: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    if key_id.len() > 255 {
        return Err(CryptoError::Invalid("key id longer than 255 bytes"));
    }
    let mut blob = Vec::with_capacity(8 + key_id.len() + NONCE_LEN + plaintext.len() + TAG_LEN);
    blob.extend_from_slice(MAGIC);
    blob.push(BLOB_VERSION);
    blob.push(key_id.len() as u8);
    blob.extend_from_slice(key_id.as_bytes());
    blob.extend_from_slice(&key_version.to_be_bytes());
    let aad = kms_aad(region, &blob, ctx);
    let sealed = key.seal(plaintext, &aad)?;
    blob.extend_from_slice(&sealed);
    Ok(blob)
}

/// Decrypts a format-1 blob with the key version named in its header (the caller looks
/// the key up from [`BlobHeader::parse`]).
pub fn kms_decrypt(
    key: &KeyMaterial,
    region: &str,
    blob: &[u8],
    ctx: &EncryptionContext,
) -> Result<Plaintext, CryptoError> {
    let h = BlobHeader::parse(blob)?;
    let aad = kms_aad(region, &blob[..h.header_len], ctx);
    key.open(&blob[h.header_len..], &aad)
}

/// AAD binding wrapped key material to its region, key id and version.
pub fn key_material_aad(region: &str, key_id: &str, version: u32) -> Vec<u8> {
    let mut aad = b"coffer:key-material:v1\0".to_vec();
    aad.extend_from_slice(region.as_bytes());
    aad.push(0);
    aad.extend_from_slice(key_id.as_bytes());
    aad.push(0);
    aad.extend_from_slice(&version.to_be_bytes());
    aad
}

/// AAD binding a secret value to its region, secret id and version id.
pub fn secret_value_aad(region: &str, secret_id: &str, version_id: &str) -> Vec<u8> {
    let mut aad = b"coffer:secret-value:v1\0".to_vec();
    aad.extend_from_slice(region.as_bytes());
    aad.push(0);
    aad.extend_from_slice(secret_id.as_bytes());
    aad.push(0);
    aad.extend_from_slice(version_id.as_bytes());
    aad
}

/// Encryption context under which a secret version's data key is wrapped.
pub fn secret_data_key_context(
    region: &str,
    secret_id: &str,
    version_id: &str,
) -> EncryptionContext {
    let mut m = std::collections::BTreeMap::new();
    m.insert("coffer:region".to_string(), region.to_string());
    m.insert("coffer:secret-id".to_string(), secret_id.to_string());
    m.insert("coffer:version-id".to_string(), version_id.to_string());
    EncryptionContext(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn ctx(pairs: &[(&str, &str)]) -> EncryptionContext {
        EncryptionContext(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>(),
        )
    }

    #[test]
    fn blob_roundtrip_and_header() {
        let k = KeyMaterial::generate();
        let c = ctx(&[("app", "billing")]);
        let blob = kms_encrypt(&k, "eu", "1234", 7, &c, b"payload").unwrap();
        let h = BlobHeader::parse(&blob).unwrap();
        assert_eq!((h.key_id, h.key_version), ("1234", 7));
        assert_eq!(
            kms_decrypt(&k, "eu", &blob, &c).unwrap().as_bytes(),
            b"payload"
        );
    }

    #[test]
    fn blob_is_bound_to_context_region_and_header() {
        let k = KeyMaterial::generate();
        let c = ctx(&[("app", "billing")]);
        let blob = kms_encrypt(&k, "eu", "1234", 7, &c, b"payload").unwrap();
        assert!(matches!(
            kms_decrypt(&k, "eu", &blob, &ctx(&[("app", "other")])),
            Err(CryptoError::Integrity)
        ));
        assert!(kms_decrypt(&k, "eu", &blob, &EncryptionContext::default()).is_err());
        assert!(kms_decrypt(&k, "us", &blob, &c).is_err());
        // Rewriting the key version in the header breaks authentication.
        let mut forged = blob.clone();
        forged[4 + 4 + 3] ^= 1;
        assert!(kms_decrypt(&k, "eu", &forged, &c).is_err());
    }

    #[test]
    fn malformed_blobs_are_rejected_without_panicking() {
        let k = KeyMaterial::generate();
        for bad in [
            &b""[..],
            b"CK",
            b"XX\x01\x00",
            b"CK\x02\x00aaaa",
            b"CK\x01\xff",
        ] {
            assert!(BlobHeader::parse(bad).is_err());
            assert!(kms_decrypt(&k, "r", bad, &EncryptionContext::default()).is_err());
        }
    }
}
