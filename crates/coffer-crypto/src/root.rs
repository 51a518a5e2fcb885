//! Root-key providers: where the key that wraps every KMS key version comes from.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine;

use crate::{CryptoError, KeyMaterial, Plaintext, KEY_LEN};

/// A source of the root key. Implementations wrap and unwrap KMS key material; they
/// never hand the root key out. Later providers (passphrase, Shamir shares, PKCS#11 HSM)
/// implement the same trait.
pub trait RootKeyProvider: Send + Sync {
    /// Short name for logs, e.g. `key-file:/path`.
    fn describe(&self) -> String;
    /// Seals `plaintext` under the root key with `aad`.
    fn wrap(&self, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>, CryptoError>;
    /// Opens data sealed by [`RootKeyProvider::wrap`].
    fn unwrap(&self, wrapped: &[u8], aad: &[u8]) -> Result<Plaintext, CryptoError>;
}

const FILE_HEADER: &str = "coffer-root-key v1";

/// The embedded default: a 256-bit key in a file (`<data-dir>/root.key`, mode 0600),
/// generated on first start. Format: the line `coffer-root-key v1`, then the key in
/// base64 on the second line.
pub struct KeyFileProvider {
    path: PathBuf,
    key: KeyMaterial,
}

impl KeyFileProvider {
    /// Opens the key file, or creates it (mode 0600, never overwriting) if it does not
    /// exist. Returns the provider and whether the file was created now.
    pub fn open_or_create(path: &Path) -> Result<(Self, bool), CryptoError> {
        match fs::read_to_string(path) {
            Ok(text) => Ok((Self::parse(path, &text)?, false)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let p = Plaintext::random(KEY_LEN);
                let mut text = zeroize::Zeroizing::new(format!(
                    "{FILE_HEADER}\n{}\n",
                    base64::engine::general_purpose::STANDARD.encode(p.as_bytes())
                ));
                let mut opts = OpenOptions::new();
                opts.write(true).create_new(true);
                #[cfg(unix)]
                {
                    use std::os::unix::fs::OpenOptionsExt;
                    opts.mode(0o600);
                }
                let mut f = opts.open(path).map_err(|e| {
                    CryptoError::RootKey(format!("cannot create {}: {e}", path.display()))
                })?;
                f.write_all(text.as_bytes())
                    .and_then(|_| f.sync_all())
                    .map_err(|e| {
                        CryptoError::RootKey(format!("cannot write {}: {e}", path.display()))
                    })?;
                if let Some(dir) = path.parent() {
                    if let Ok(d) = fs::File::open(dir) {
                        let _ = d.sync_all();
                    }
                }
                let provider = Self::parse(path, &text)?;
                zeroize::Zeroize::zeroize(&mut *text);
                Ok((provider, true))
            }
            Err(e) => Err(CryptoError::RootKey(format!(
                "cannot read {}: {e}",
                path.display()
            ))),
        }
    }

    fn parse(path: &Path, text: &str) -> Result<Self, CryptoError> {
        let mut lines = text.lines();
        if lines.next() != Some(FILE_HEADER) {
            return Err(CryptoError::RootKey(format!(
                "{} is not a Coffer root key file (expected first line `{FILE_HEADER}`)",
                path.display()
            )));
        }
        let b64 = lines.next().unwrap_or("").trim();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|_| {
                CryptoError::RootKey(format!("{}: key line is not base64", path.display()))
            })?;
        let p = Plaintext::new(bytes);
        if p.len() != KEY_LEN {
            return Err(CryptoError::RootKey(format!(
                "{}: key must be {KEY_LEN} bytes",
                path.display()
            )));
        }
        Ok(KeyFileProvider {
            path: path.to_path_buf(),
            key: KeyMaterial::from_plaintext(&p)?,
        })
    }
}

impl RootKeyProvider for KeyFileProvider {
    fn describe(&self) -> String {
        format!("key-file:{}", self.path.display())
    }
    fn wrap(&self, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>, CryptoError> {
        self.key.seal(plaintext, aad)
    }
    fn unwrap(&self, wrapped: &[u8], aad: &[u8]) -> Result<Plaintext, CryptoError> {
        self.key.open(wrapped, aad)
    }
}

/// A root key that lives only in memory (dev mode, tests): lost on exit, by design.
pub struct MemoryRootKey {
    key: KeyMaterial,
}

impl MemoryRootKey {
    /// A fresh random in-memory root key.
    pub fn generate() -> Self {
        MemoryRootKey {
            key: KeyMaterial::generate(),
        }
    }
}

impl RootKeyProvider for MemoryRootKey {
    fn describe(&self) -> String {
        "memory (dev mode)".to_string()
    }
    fn wrap(&self, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>, CryptoError> {
        self.key.seal(plaintext, aad)
    }
    fn unwrap(&self, wrapped: &[u8], aad: &[u8]) -> Result<Plaintext, CryptoError> {
        self.key.open(wrapped, aad)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_file_is_created_0600_and_reopens_to_the_same_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("root.key");
        let (p1, created) = KeyFileProvider::open_or_create(&path).unwrap();
        assert!(created);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        let wrapped = p1.wrap(b"material", b"aad").unwrap();
        let (p2, created) = KeyFileProvider::open_or_create(&path).unwrap();
        assert!(!created);
        assert_eq!(p2.unwrap(&wrapped, b"aad").unwrap().as_bytes(), b"material");
        assert!(p2.unwrap(&wrapped, b"other").is_err());
    }

    #[test]
    fn garbage_key_file_is_refused_with_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("root.key");
        fs::write(&path, "hello\n").unwrap();
        let err = KeyFileProvider::open_or_create(&path).err().unwrap();
        assert!(err.to_string().contains("not a Coffer root key file"));
    }
}
