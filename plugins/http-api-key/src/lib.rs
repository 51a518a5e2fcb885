//! API-key rotator for REST services that mint, list and revoke keys. The REST shape it
//! expects is written down in `README.md` next to this crate.
//!
//! Secret value: `{"base_url": "http://127.0.0.1:8080", "key_id": "...", "api_key": "..."}`
//! (other fields are kept). Rotation config:
//! - `base_url`: overrides the secret's `base_url` (then the secret may omit it);
//! - `revoke` = `current` (default: in `finish`, revoke the key being replaced, i.e. the one
//!   that becomes PREVIOUS) | `previous` (revoke the key of the version that is PREVIOUS
//!   now, keeping the replaced key valid for one more rotation as a grace period) | `none`.

use coffer_rotator_sdk::http::{encode_component, Request, Response};
use coffer_rotator_sdk::serde_json::{self, json, Map, Value};
use coffer_rotator_sdk::{self as sdk, log, RotationError, Rotator, StepInput};
use serde::Deserialize;

struct HttpApiKey;

/// The secret's value.
struct ApiKeySecret {
    base_url: Option<String>,
    key_id: String,
    api_key: String,
    extra: Map<String, Value>,
}

impl ApiKeySecret {
    fn parse(label: &str, value: &str) -> Result<Self, RotationError> {
        let invalid = |m: String| RotationError::invalid_secret(format!("{label}: {m}"));
        let parsed: Value = serde_json::from_str(value).map_err(|e| {
            invalid(format!(
                "not valid JSON (line {}, column {})",
                e.line(),
                e.column()
            ))
        })?;
        let Value::Object(mut map) = parsed else {
            return Err(invalid("not a JSON object".into()));
        };
        let mut take = |key: &str, required: bool| -> Result<Option<String>, RotationError> {
            match map.remove(key) {
                Some(Value::String(s)) if !s.is_empty() => Ok(Some(s)),
                None | Some(Value::Null) if !required => Ok(None),
                Some(Value::String(_)) => Err(invalid(format!("field `{key}` is empty"))),
                None | Some(Value::Null) => Err(invalid(format!("no `{key}` field"))),
                Some(_) => Err(invalid(format!("field `{key}` must be a string"))),
            }
        };
        let base_url = take("base_url", false)?;
        let key_id = take("key_id", true)?.unwrap_or_default();
        let api_key = take("api_key", true)?.unwrap_or_default();
        Ok(ApiKeySecret {
            base_url,
            key_id,
            api_key,
            extra: map,
        })
    }

    fn to_json(&self) -> String {
        let mut map = self.extra.clone();
        if let Some(b) = &self.base_url {
            map.insert("base_url".into(), Value::String(b.clone()));
        }
        map.insert("key_id".into(), Value::String(self.key_id.clone()));
        map.insert("api_key".into(), Value::String(self.api_key.clone()));
        Value::Object(map).to_string()
    }
}

/// The service's base URL without a trailing slash: rotation config `base_url`, else the
/// secret's.
fn base_url(input: &StepInput, secret: &ApiKeySecret) -> Result<String, RotationError> {
    let base = input
        .config("base_url")
        .or(secret.base_url.as_deref())
        .ok_or_else(|| {
            RotationError::invalid_secret(
                "no base URL: set `base_url` in the secret or the rotation config",
            )
        })?;
    if !(base.starts_with("https://") || base.starts_with("http://")) {
        return Err(RotationError::invalid_secret(format!(
            "base URL {base:?} is not http(s)://"
        )));
    }
    Ok(base.trim_end_matches('/').to_string())
}

/// Maps an unexpected status: 401/403 → `auth-failed`, 5xx/429 → `unreachable` (transient),
/// anything else → `target-refused`.
fn status_error(what: &str, resp: &Response) -> RotationError {
    let mut body = resp.text();
    body.truncate(200);
    let msg = format!("{what}: HTTP {} {body}", resp.status);
    match resp.status {
        401 | 403 => RotationError::auth_failed(msg),
        429 | 500..=599 => RotationError::unreachable(msg),
        _ => RotationError::target_refused(msg),
    }
}

#[derive(Deserialize)]
struct KeyInfo {
    id: String,
    #[serde(default)]
    name: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum KeyList {
    Wrapped { keys: Vec<KeyInfo> },
    Bare(Vec<KeyInfo>),
}

#[derive(Deserialize)]
struct MintedKey {
    id: String,
    key: String,
}

#[derive(Deserialize)]
struct WhoAmI {
    id: String,
}

/// `DELETE {base}/v1/keys/{id}`; 404 means already gone.
fn revoke(base: &str, id: &str, auth: &str) -> Result<(), RotationError> {
    let resp = Request::delete(format!("{base}/v1/keys/{}", encode_component(id)))
        .bearer(auth)
        .send()?;
    match resp.status {
        200..=299 => {
            log::info(format!("revoked key {id}"));
            Ok(())
        }
        404 => {
            log::info(format!("key {id} was already gone"));
            Ok(())
        }
        _ => Err(status_error(&format!("revoking key {id}"), &resp)),
    }
}

impl Rotator for HttpApiKey {
    fn create(input: &StepInput) -> Result<String, RotationError> {
        let current = ApiKeySecret::parse("CURRENT", &input.current.value)?;
        let base = base_url(input, &current)?;
        let token = &input.token;

        // A crash after the service minted a key but before the host stored PENDING leaves an
        // orphan named after this rotation's token. Its secret cannot be read back, so delete
        // it and mint a fresh one.
        let resp = Request::get(format!("{base}/v1/keys?name={}", encode_component(token)))
            .bearer(&current.api_key)
            .send()?;
        match resp.status {
            200 => {
                let keys = match resp.json::<KeyList>()? {
                    KeyList::Wrapped { keys } | KeyList::Bare(keys) => keys,
                };
                for k in keys {
                    let named_token = k.name.as_deref().is_none_or(|n| n == token.as_str());
                    if named_token && k.id != current.key_id {
                        log::warn(format!(
                            "deleting orphaned key {} from an interrupted create",
                            k.id
                        ));
                        revoke(&base, &k.id, &current.api_key)?;
                    }
                }
            }
            404 | 405 => log::warn("the service cannot list keys by name; orphan cleanup skipped"),
            _ => return Err(status_error("listing keys", &resp)),
        }

        let resp = Request::post(format!("{base}/v1/keys"))
            .bearer(&current.api_key)
            .json(&json!({ "name": token }))
            .send()?;
        if !matches!(resp.status, 200 | 201) {
            return Err(status_error("minting a key", &resp));
        }
        let minted: MintedKey = resp.json()?;
        if minted.id.is_empty() || minted.key.is_empty() {
            return Err(RotationError::target_refused(
                "minted key has an empty id or key",
            ));
        }
        log::info(format!("minted key {}", minted.id));
        let next = ApiKeySecret {
            base_url: current.base_url.clone(),
            key_id: minted.id,
            api_key: minted.key,
            extra: current.extra.clone(),
        };
        Ok(next.to_json())
    }

    fn test(input: &StepInput) -> Result<(), RotationError> {
        let pending = ApiKeySecret::parse("PENDING", &input.pending()?.value)?;
        let base = base_url(input, &pending)?;
        let resp = Request::get(format!("{base}/v1/whoami"))
            .bearer(&pending.api_key)
            .send()?;
        match resp.status {
            200 => {}
            401 | 403 => {
                return Err(RotationError::verification_failed(format!(
                    "the service refused PENDING's key {} (HTTP {})",
                    pending.key_id, resp.status
                )))
            }
            _ => return Err(status_error("GET /v1/whoami", &resp)),
        }
        let who: WhoAmI = resp
            .json()
            .map_err(|e| RotationError::verification_failed(e.message()))?;
        if who.id != pending.key_id {
            return Err(RotationError::verification_failed(format!(
                "whoami says key {:?}, PENDING is {:?}",
                who.id, pending.key_id
            )));
        }
        log::info(format!("PENDING key {} works", pending.key_id));
        Ok(())
    }

    fn finish(input: &StepInput) -> Result<(), RotationError> {
        let pending = ApiKeySecret::parse("PENDING", &input.pending()?.value)?;
        let base = base_url(input, &pending)?;
        let mode =
            sdk::config_choice(input, "revoke", &["current", "previous", "none"], "current")?;
        let old = match mode {
            "none" => return Ok(()),
            "previous" => match &input.previous {
                Some(v) => v,
                None => return Ok(()),
            },
            _ => &input.current,
        };
        let old = ApiKeySecret::parse("old version", &old.value)?;
        if old.key_id == pending.key_id {
            return Ok(()); // labels already moved: nothing left to revoke
        }
        if mode == "previous" {
            let current = ApiKeySecret::parse("CURRENT", &input.current.value)?;
            if old.key_id == current.key_id {
                return Ok(());
            }
        }
        revoke(&base, &old.key_id, &pending.api_key)
    }
}

sdk::export_rotator!(HttpApiKey);
