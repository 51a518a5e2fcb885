//! Bearer tokens: `cft_<id>_<secret>`. Only a SHA-256 of the secret part is stored; it is
//! compared in constant time. The id names the token in lists and audit records.

use base64::Engine;
use coffer_api::{CreateTokenRequest, CreateTokenResponse, ListTokensResponse, TokenInfo};
use coffer_store::Batch;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use time::Duration;
use zeroize::Zeroizing;

use crate::records::{decode, encode, token_key, TokenRecord};
use crate::{fmt_time, Coffer, CoreError, Result};

const BOOTSTRAP_KEY: &[u8] = b"meta/bootstrap-admin-token";

/// Who a request is, after its token was checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authenticated {
    /// Principal (user name).
    pub principal: String,
    /// Token id (never the token).
    pub token_id: String,
}

/// The two parts of a token string.
pub struct TokenParts<'a> {
    /// Public id.
    pub id: &'a str,
    /// Secret part.
    pub secret: &'a str,
}

impl<'a> TokenParts<'a> {
    /// Splits `cft_<id>_<secret>`; `None` if the shape is wrong.
    pub fn parse(token: &'a str) -> Option<Self> {
        let rest = token.strip_prefix("cft_")?;
        let (id, secret) = rest.split_once('_')?;
        if id.is_empty()
            || id.len() > 64
            || !id.chars().all(|c| c.is_ascii_alphanumeric())
            || secret.is_empty()
        {
            return None;
        }
        Some(TokenParts { id, secret })
    }
}

fn hash(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

fn validate_principal(p: &str) -> Result<()> {
    if p.is_empty()
        || p.len() > 128
        || !p
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.@-".contains(c))
    {
        return Err(CoreError::InvalidParameter(
            "principal must be 1–128 characters of A-Z a-z 0-9 _ . @ -".into(),
        ));
    }
    Ok(())
}

impl Coffer {
    fn token_info(r: &TokenRecord) -> TokenInfo {
        TokenInfo {
            token_id: r.token_id.clone(),
            principal: r.principal.clone(),
            description: r.description.clone(),
            created_date: fmt_time(r.created),
            expires_date: r.expires.map(fmt_time),
        }
    }

    /// Creates a token; the response holds the token string, shown only this once.
    pub async fn create_token(&self, req: &CreateTokenRequest) -> Result<CreateTokenResponse> {
        validate_principal(&req.principal)?;
        if let Some(d) = &req.description {
            crate::names::validate_description(d)?;
        }
        let mut id_bytes = [0u8; 8];
        rand::rngs::OsRng.fill_bytes(&mut id_bytes);
        let id = hex::encode(id_bytes);
        let mut secret_bytes = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(&mut secret_bytes[..]);
        let secret = Zeroizing::new(
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&secret_bytes[..]),
        );
        let now = self.now();
        let expires = match req.ttl_seconds {
            Some(0) => {
                return Err(CoreError::InvalidParameter(
                    "ttl_seconds must be > 0".into(),
                ))
            }
            Some(s) => Some(
                i64::try_from(s)
                    .ok()
                    .and_then(|s| now.checked_add(Duration::seconds(s)))
                    .ok_or_else(|| {
                        CoreError::InvalidParameter("ttl_seconds is too large".into())
                    })?,
            ),
            None => None,
        };
        let rec = TokenRecord {
            token_id: id.clone(),
            principal: req.principal.clone(),
            description: req.description.clone(),
            created: now,
            expires,
            hash: hash(&secret),
        };
        let mut b = Batch::default();
        b.expect_absent(&token_key(&id))
            .put(&token_key(&id), &encode(&rec)?);
        self.store.apply(&b)?;
        self.durable().await?;
        Ok(CreateTokenResponse {
            info: Self::token_info(&rec),
            token: format!("cft_{id}_{}", secret.as_str()),
        })
    }

    /// Stores a token whose string is fixed (dev mode's printed root token).
    pub async fn install_fixed_token(&self, token: &str, principal: &str) -> Result<()> {
        validate_principal(principal)?;
        let parts = TokenParts::parse(token)
            .ok_or_else(|| CoreError::InvalidParameter("malformed fixed token".into()))?;
        let rec = TokenRecord {
            token_id: parts.id.to_string(),
            principal: principal.to_string(),
            description: Some("dev-mode root token".into()),
            created: self.now(),
            expires: None,
            hash: hash(parts.secret),
        };
        let mut b = Batch::default();
        b.put(&token_key(parts.id), &encode(&rec)?);
        self.store.apply(&b)?;
        self.durable().await
    }

    /// On first start, creates the admin token and returns it (to be written to a file
    /// once); later starts return `None`.
    pub async fn bootstrap_admin_token(&self) -> Result<Option<String>> {
        if self.store.get(BOOTSTRAP_KEY)?.is_some() {
            return Ok(None);
        }
        let t = self
            .create_token(&CreateTokenRequest {
                principal: "admin".into(),
                description: Some("initial admin token".into()),
                ttl_seconds: None,
            })
            .await?;
        let mut b = Batch::default();
        b.expect_absent(BOOTSTRAP_KEY)
            .put(BOOTSTRAP_KEY, t.info.token_id.as_bytes());
        self.store.apply(&b)?;
        self.durable().await?;
        Ok(Some(t.token.clone()))
    }

    /// Lists tokens (metadata only).
    pub fn list_tokens(&self) -> Result<ListTokensResponse> {
        let rows = self.store.scan(b"tok/", None, usize::MAX)?;
        let mut tokens = Vec::with_capacity(rows.len());
        for (_, raw) in rows {
            tokens.push(Self::token_info(&decode::<TokenRecord>("token", &raw)?));
        }
        Ok(ListTokensResponse { tokens })
    }

    /// Revokes a token by id.
    pub async fn revoke_token(&self, token_id: &str) -> Result<()> {
        let k = token_key(token_id);
        let raw = self
            .store
            .get(&k)?
            .ok_or_else(|| CoreError::NotFound(format!("token {token_id} not found")))?;
        let mut b = Batch::default();
        b.expect(&k, &raw).delete(&k);
        self.store.apply(&b)?;
        self.durable().await
    }

    /// Checks a bearer token; `None` when it is malformed, unknown, revoked or expired.
    pub fn authenticate(&self, token: &str) -> Result<Option<Authenticated>> {
        let Some(parts) = TokenParts::parse(token) else {
            return Ok(None);
        };
        let key = token_key(parts.id);
        let Some(raw) = self.store.get(&key)? else {
            // Spend the same hashing work as a real check.
            let _ = hash(parts.secret);
            return Ok(None);
        };
        let rec = self.decoded.tokens.decode("token", &key, raw)?;
        let ok: bool = hash(parts.secret).ct_eq(&rec.hash).into();
        if !ok || rec.expires.is_some_and(|e| e <= self.now()) {
            return Ok(None);
        }
        Ok(Some(Authenticated {
            principal: rec.principal.clone(),
            token_id: rec.token_id.clone(),
        }))
    }
}
