//! The KMS half of the native REST API, over HTTP against the real binary: key lifecycle,
//! envelope operations, rotation, aliases and regions.

mod common;

use base64::Engine;
use common::{code, enc, split, Opts, Server};
use serde_json::{json, Value};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

// ------------------------------------------------------------------------------ helpers

fn key_path(key: &str, rest: &str) -> String {
    format!("/v1/keys/{}{rest}", enc(key))
}

/// Creates a key with a description; returns its metadata.
fn create_key_with(s: &Server, body: Value) -> Value {
    let (st, b) = s.call("POST", "/v1/keys", Some(body));
    assert_eq!(st, 201, "{b}");
    b
}

/// Creates a key; returns its id.
fn create_key(s: &Server, description: &str) -> String {
    create_key_with(s, json!({"description": description}))["key_id"]
        .as_str()
        .expect("key_id")
        .to_string()
}

fn describe_key(s: &Server, key: &str) -> Value {
    let (st, b) = s.call("GET", &key_path(key, ""), None);
    assert_eq!(st, 200, "{b}");
    b
}

/// POST /v1/keys/{key}/{action} without a body.
fn key_action(s: &Server, key: &str, action: &str) -> (u16, Value) {
    s.call("POST", &key_path(key, &format!("/{action}")), None)
}

fn key_action_ok(s: &Server, key: &str, action: &str) -> Value {
    let (st, b) = key_action(s, key, action);
    assert_eq!(st, 200, "{action}: {b}");
    b
}

fn encrypt(s: &Server, key: &str, plaintext: &[u8], ctx: Option<Value>) -> (u16, Value) {
    let mut body = json!({"plaintext": B64.encode(plaintext)});
    if let Some(c) = ctx {
        body["encryption_context"] = c;
    }
    s.call("POST", &key_path(key, "/encrypt"), Some(body))
}

/// Encrypts; returns (ciphertext_blob, key_id, key_version).
fn encrypt_ok(
    s: &Server,
    key: &str,
    plaintext: &[u8],
    ctx: Option<Value>,
) -> (String, String, u64) {
    let (st, b) = encrypt(s, key, plaintext, ctx);
    assert_eq!(st, 200, "{b}");
    (
        b["ciphertext_blob"].as_str().expect("blob").to_string(),
        b["key_id"].as_str().expect("key_id").to_string(),
        b["key_version"].as_u64().expect("key_version"),
    )
}

fn decrypt(s: &Server, blob: &str, ctx: Option<Value>) -> (u16, Value) {
    let mut body = json!({"ciphertext_blob": blob});
    if let Some(c) = ctx {
        body["encryption_context"] = c;
    }
    s.call("POST", "/v1/kms/decrypt", Some(body))
}

/// Decrypts; returns (plaintext, key_id, key_version).
fn decrypt_ok(s: &Server, blob: &str, ctx: Option<Value>) -> (Vec<u8>, String, u64) {
    let (st, b) = decrypt(s, blob, ctx);
    assert_eq!(st, 200, "{b}");
    (
        B64.decode(b["plaintext"].as_str().expect("plaintext"))
            .expect("base64"),
        b["key_id"].as_str().expect("key_id").to_string(),
        b["key_version"].as_u64().expect("key_version"),
    )
}

fn data_key(s: &Server, key: &str, variant: &str, body: Value) -> (u16, Value) {
    s.call("POST", &key_path(key, &format!("/{variant}")), Some(body))
}

fn create_alias(s: &Server, alias: &str, key: &str) -> (u16, Value) {
    s.call(
        "POST",
        "/v1/aliases",
        Some(json!({"alias_name": alias, "target_key_id": key})),
    )
}

fn alias_names(s: &Server) -> Vec<String> {
    let (st, b) = s.call("GET", "/v1/aliases", None);
    assert_eq!(st, 200, "{b}");
    b["aliases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["alias_name"].as_str().unwrap().to_string())
        .collect()
}

fn random_bytes(n: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(n + 16);
    while out.len() < n {
        out.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
    }
    out.truncate(n);
    out
}

fn assert_error(st: u16, body: &Value, want_status: u16, want_code: &str) {
    assert_eq!(st, want_status, "{body}");
    assert_eq!(code(body), want_code, "{body}");
    assert!(body.get("plaintext").is_none(), "{body}");
}

// ------------------------------------------------------------------------------ keys

#[test]
fn create_describe_list_update_and_tag_a_key() {
    let s = Server::start();
    let k = create_key_with(
        &s,
        json!({"description": "payments", "tags": {"team": "payments"}}),
    );
    let id = k["key_id"].as_str().unwrap().to_string();
    assert!(uuid::Uuid::parse_str(&id).is_ok(), "{id}");
    assert_eq!(k["arn"], format!("arn:coffer:kms:local:key/{id}"));
    assert_eq!(k["region"], "local");
    assert_eq!(k["description"], "payments");
    assert_eq!(k["key_state"], "Enabled");
    assert_eq!(k["key_spec"], "SYMMETRIC_DEFAULT");
    assert_eq!(k["key_usage"], "ENCRYPT_DECRYPT");
    assert_eq!(k["current_key_version"], 1);
    assert_eq!(k["aliases"], json!([]));
    assert_eq!(k["tags"], json!({"team": "payments"}));
    assert_eq!(k["rotation_enabled"], false);
    assert_eq!(k["is_default"], false);
    assert!(k.get("deletion_date").is_none(), "{k}");

    for r in [id.clone(), format!("arn:coffer:kms:local:key/{id}")] {
        assert_eq!(describe_key(&s, &r)["key_id"], id.as_str());
    }
    let (st, b) = s.call(
        "GET",
        &key_path(&uuid::Uuid::new_v4().to_string(), ""),
        None,
    );
    assert_error(st, &b, 404, "ResourceNotFound");
    let (st, b) = s.call(
        "GET",
        &key_path(&format!("arn:coffer:kms:eu:key/{id}"), ""),
        None,
    );
    assert_error(st, &b, 404, "ResourceNotFound");

    let other = create_key(&s, "second");
    let (st, all) = s.call("GET", "/v1/keys", None);
    assert_eq!(st, 200, "{all}");
    let all: Vec<String> = all["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["key_id"].as_str().unwrap().to_string())
        .collect();
    assert!(all.contains(&id) && all.contains(&other), "{all:?}");
    let mut paged = Vec::new();
    let mut query = "?max_results=1".to_string();
    loop {
        let (st, b) = s.call("GET", &format!("/v1/keys{query}"), None);
        assert_eq!(st, 200, "{b}");
        let keys = b["keys"].as_array().unwrap();
        assert_eq!(keys.len(), 1, "{b}");
        paged.push(keys[0]["key_id"].as_str().unwrap().to_string());
        match b["next_token"].as_str() {
            Some(t) => query = format!("?max_results=1&next_token={}", enc(t)),
            None => break,
        }
    }
    assert_eq!(paged, all);

    let (st, b) = s.call(
        "PATCH",
        &key_path(&id, ""),
        Some(json!({"description": "payments v2"})),
    );
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["description"], "payments v2");
    assert_eq!(describe_key(&s, &id)["description"], "payments v2");

    let (st, b) = s.call(
        "POST",
        &key_path(&id, "/tags"),
        Some(json!({"tags": {"env": "prod"}})),
    );
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["tags"], json!({"env": "prod", "team": "payments"}));
    let (st, b) = s.call(
        "POST",
        &key_path(&id, "/untag"),
        Some(json!({"tag_keys": ["team"]})),
    );
    assert_eq!(st, 200, "{b}");
    assert_eq!(describe_key(&s, &id)["tags"], json!({"env": "prod"}));

    let (st, b) = s.call("POST", "/v1/keys", Some(json!({"key_spec": "RSA_2048"})));
    assert_error(st, &b, 400, "InvalidParameter");
    let (st, b) = s.call(
        "POST",
        &key_path(&id, "/tags"),
        Some(json!({"tags": {"coffer:x": "y"}})),
    );
    assert_error(st, &b, 400, "InvalidParameter");
}

// ------------------------------------------------------------------------------ envelope

#[test]
fn encrypt_and_decrypt_4096_bytes_with_an_encryption_context() {
    let s = Server::start();
    let key = create_key(&s, "app");
    let ctx = json!({"tenant": "acme", "purpose": "e2e"});
    let plain = random_bytes(4096);
    let (blob, key_id, version) = encrypt_ok(&s, &key, &plain, Some(ctx.clone()));
    assert_eq!(key_id, key);
    assert_eq!(version, 1);
    assert_ne!(blob, B64.encode(&plain));

    let (back, key_id, version) = decrypt_ok(&s, &blob, Some(ctx.clone()));
    assert_eq!(back, plain);
    assert_eq!((key_id.as_str(), version), (key.as_str(), 1));
    // Context order does not matter.
    let reordered: Value = serde_json::from_str(r#"{"purpose":"e2e","tenant":"acme"}"#).unwrap();
    assert_eq!(decrypt_ok(&s, &blob, Some(reordered)).0, plain);

    let (st, b) = decrypt(&s, &blob, Some(json!({"tenant": "evil", "purpose": "e2e"})));
    assert_error(st, &b, 422, "IntegrityCheckFailed");
    let (st, b) = decrypt(&s, &blob, Some(json!({"tenant": "acme"})));
    assert_error(st, &b, 422, "IntegrityCheckFailed");
    let (st, b) = decrypt(&s, &blob, None);
    assert_error(st, &b, 422, "IntegrityCheckFailed");
    let other = create_key(&s, "other");
    let (st, b) = s.call(
        "POST",
        "/v1/kms/decrypt",
        Some(json!({"ciphertext_blob": blob, "encryption_context": ctx, "key_id": other})),
    );
    assert_error(st, &b, 422, "IntegrityCheckFailed");

    let mut tampered = B64.decode(&blob).unwrap();
    let mid = tampered.len() / 2;
    tampered[mid] ^= 0x01;
    let (st, b) = decrypt(&s, &B64.encode(&tampered), Some(ctx.clone()));
    assert_error(st, &b, 422, "IntegrityCheckFailed");

    let (st, b) = encrypt(&s, &key, &random_bytes(4097), None);
    assert_error(st, &b, 413, "ValueTooLarge");
    let (st, b) = encrypt(&s, &key, b"", None);
    assert_error(st, &b, 400, "InvalidParameter");
    let (st, b) = s.call(
        "POST",
        &key_path(&key, "/encrypt"),
        Some(json!({"plaintext": "%%% not base64 %%%"})),
    );
    assert_error(st, &b, 400, "InvalidParameter");
    let (st, b) = decrypt(&s, "%%% not base64 %%%", None);
    assert_error(st, &b, 400, "InvalidParameter");
    let (st, b) = decrypt(&s, &B64.encode(b"valid base64 but not a coffer blob"), None);
    assert_error(st, &b, 400, "InvalidParameter");
    let (st, b) = encrypt(&s, &uuid::Uuid::new_v4().to_string(), b"x", None);
    assert_error(st, &b, 404, "ResourceNotFound");
}

#[test]
fn disabled_key_refuses_encrypt_and_decrypt_until_enabled() {
    let s = Server::start();
    let key = create_key(&s, "switchable");
    let (blob, _, _) = encrypt_ok(&s, &key, b"before", None);

    assert_eq!(key_action_ok(&s, &key, "disable")["key_state"], "Disabled");
    let (st, b) = encrypt(&s, &key, b"during", None);
    assert_error(st, &b, 409, "InvalidState");
    let (st, b) = decrypt(&s, &blob, None);
    assert_error(st, &b, 409, "InvalidState");
    let (st, b) = data_key(&s, &key, "data-key", json!({}));
    assert_error(st, &b, 409, "InvalidState");
    let (st, b) = key_action(&s, &key, "rotate");
    assert_error(st, &b, 409, "InvalidState");
    assert_eq!(describe_key(&s, &key)["key_state"], "Disabled");

    assert_eq!(key_action_ok(&s, &key, "enable")["key_state"], "Enabled");
    assert_eq!(decrypt_ok(&s, &blob, None).0, b"before");
    let (blob, _, _) = encrypt_ok(&s, &key, b"after", None);
    assert_eq!(decrypt_ok(&s, &blob, None).0, b"after");
}

#[test]
fn secret_under_a_disabled_key_is_unreadable_until_the_key_is_enabled() {
    let s = Server::start();
    let key = create_key(&s, "secrets of team x");
    let (st, b) = s.call(
        "POST",
        "/v1/secrets",
        Some(json!({"name": "teamx/db", "secret_string": "under-own-key", "kms_key_id": key})),
    );
    assert_eq!(st, 201, "{b}");
    let value_path = format!("/v1/secrets/{}/value", enc("teamx/db"));
    let (st, b) = s.call("GET", &value_path, None);
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["secret_string"], "under-own-key");
    let (st, d) = s.call("GET", &format!("/v1/secrets/{}", enc("teamx/db")), None);
    assert_eq!(st, 200, "{d}");
    assert_eq!(d["kms_key_id"], key.as_str());

    key_action_ok(&s, &key, "disable");
    let (st, b) = s.call("GET", &value_path, None);
    assert_error(st, &b, 409, "InvalidState");
    assert!(!b.to_string().contains("under-own-key"), "{b}");
    let (st, b) = s.call("PUT", &value_path, Some(json!({"secret_string": "new"})));
    assert_error(st, &b, 409, "InvalidState");
    let (st, b) = s.call(
        "POST",
        "/v1/secrets",
        Some(json!({"name": "teamx/other", "secret_string": "v", "kms_key_id": key})),
    );
    assert_error(st, &b, 409, "InvalidState");

    key_action_ok(&s, &key, "enable");
    let (st, b) = s.call("GET", &value_path, None);
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["secret_string"], "under-own-key");

    let (st, b) = s.call(
        "POST",
        "/v1/secrets",
        Some(json!({"name": "teamx/nokey", "secret_string": "v", "kms_key_id": uuid::Uuid::new_v4().to_string()})),
    );
    assert_error(st, &b, 404, "ResourceNotFound");
}

#[test]
fn schedule_and_cancel_key_deletion() {
    let s = Server::start();
    let key = create_key(&s, "to delete");
    let (blob, _, _) = encrypt_ok(&s, &key, b"old data", None);
    let schedule = |days: u32| {
        s.call(
            "POST",
            &key_path(&key, "/schedule-deletion"),
            Some(json!({"pending_window_in_days": days})),
        )
    };
    for days in [6, 31] {
        let (st, b) = schedule(days);
        assert_error(st, &b, 400, "InvalidParameter");
    }
    let (st, b) = key_action(&s, &key, "cancel-deletion");
    assert_error(st, &b, 409, "InvalidState");

    let (st, k) = schedule(7);
    assert_eq!(st, 200, "{k}");
    assert_eq!(k["key_state"], "PendingDeletion");
    assert!(k["deletion_date"].as_str().is_some(), "{k}");
    let (st, b) = encrypt(&s, &key, b"x", None);
    assert_error(st, &b, 409, "InvalidState");
    let (st, b) = decrypt(&s, &blob, None);
    assert_error(st, &b, 409, "InvalidState");
    let (st, b) = schedule(7);
    assert_error(st, &b, 409, "InvalidState");
    let (st, b) = key_action(&s, &key, "enable");
    assert_error(st, &b, 409, "InvalidState");

    let k = key_action_ok(&s, &key, "cancel-deletion");
    assert_eq!(k["key_state"], "Disabled");
    assert!(k.get("deletion_date").is_none(), "{k}");
    let (st, b) = encrypt(&s, &key, b"x", None);
    assert_error(st, &b, 409, "InvalidState");
    key_action_ok(&s, &key, "enable");
    assert_eq!(decrypt_ok(&s, &blob, None).0, b"old data");
}

#[test]
fn generate_data_keys_for_envelope_encryption() {
    let s = Server::start();
    let key = create_key(&s, "data keys");
    let ctx = json!({"file": "backup-2024.tar"});

    let (st, dk) = data_key(&s, &key, "data-key", json!({"encryption_context": ctx}));
    assert_eq!(st, 200, "{dk}");
    let plain = B64.decode(dk["plaintext"].as_str().unwrap()).unwrap();
    assert_eq!(plain.len(), 32);
    assert_eq!(dk["key_id"], key.as_str());
    let (back, key_id, _) = decrypt_ok(
        &s,
        dk["ciphertext_blob"].as_str().unwrap(),
        Some(ctx.clone()),
    );
    assert_eq!(back, plain);
    assert_eq!(key_id, key);
    let (st, b) = decrypt(&s, dk["ciphertext_blob"].as_str().unwrap(), None);
    assert_error(st, &b, 422, "IntegrityCheckFailed");

    for (body, len) in [
        (json!({"key_spec": "AES_128"}), 16),
        (json!({"key_spec": "AES_256"}), 32),
        (json!({"number_of_bytes": 64}), 64),
        (json!({"number_of_bytes": 1024}), 1024),
    ] {
        let (st, dk) = data_key(&s, &key, "data-key", body);
        assert_eq!(st, 200, "{dk}");
        assert_eq!(
            B64.decode(dk["plaintext"].as_str().unwrap()).unwrap().len(),
            len
        );
    }

    let (st, wrapped) = data_key(&s, &key, "data-key-without-plaintext", json!({}));
    assert_eq!(st, 200, "{wrapped}");
    assert!(wrapped.get("plaintext").is_none(), "{wrapped}");
    let (back, _, _) = decrypt_ok(&s, wrapped["ciphertext_blob"].as_str().unwrap(), None);
    assert_eq!(back.len(), 32);

    for bad in [
        json!({"number_of_bytes": 2000}),
        json!({"number_of_bytes": 0}),
        json!({"key_spec": "AES_512"}),
        json!({"key_spec": "AES_256", "number_of_bytes": 32}),
    ] {
        for variant in ["data-key", "data-key-without-plaintext"] {
            let (st, b) = data_key(&s, &key, variant, bad.clone());
            assert_error(st, &b, 400, "InvalidParameter");
        }
    }
}

#[test]
fn re_encrypt_under_a_second_key_without_exposing_plaintext() {
    let s = Server::start();
    let first = create_key(&s, "first");
    let second = create_key(&s, "second");
    let msg = b"re-encrypt me, never show me";
    let src_ctx = json!({"app": "billing"});
    let (blob, _, _) = encrypt_ok(&s, &first, msg, Some(src_ctx.clone()));

    let r = s
        .req("POST", "/v1/kms/re-encrypt")
        .json(&json!({"ciphertext_blob": blob, "source_encryption_context": src_ctx, "destination_key_id": second}))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let text = r.text().unwrap();
    assert!(!text.contains(&B64.encode(msg)), "{text}");
    let b: Value = serde_json::from_str(&text).unwrap();
    assert!(b.get("plaintext").is_none(), "{b}");
    assert_eq!(b["source_key_id"], first.as_str());
    assert_eq!(b["source_key_version"], 1);
    assert_eq!(b["key_id"], second.as_str());
    assert_eq!(b["key_version"], 1);
    let new_blob = b["ciphertext_blob"].as_str().unwrap();
    assert_ne!(new_blob, blob);
    let (back, key_id, _) = decrypt_ok(&s, new_blob, Some(src_ctx.clone()));
    assert_eq!(back, msg);
    assert_eq!(key_id, second);

    // A new context for the new blob.
    let dst_ctx = json!({"app": "archive"});
    let (st, b) = s.call(
        "POST",
        "/v1/kms/re-encrypt",
        Some(json!({"ciphertext_blob": blob, "source_encryption_context": src_ctx, "destination_key_id": second, "destination_encryption_context": dst_ctx})),
    );
    assert_eq!(st, 200, "{b}");
    let new_blob = b["ciphertext_blob"].as_str().unwrap();
    assert_eq!(decrypt_ok(&s, new_blob, Some(dst_ctx)).0, msg);
    let (st, e) = decrypt(&s, new_blob, Some(src_ctx.clone()));
    assert_error(st, &e, 422, "IntegrityCheckFailed");

    let (st, b) = s.call(
        "POST",
        "/v1/kms/re-encrypt",
        Some(json!({"ciphertext_blob": blob, "source_encryption_context": {"app": "wrong"}, "destination_key_id": second})),
    );
    assert_error(st, &b, 422, "IntegrityCheckFailed");
}

#[test]
fn rotating_a_key_keeps_every_old_ciphertext_decryptable() {
    let s = Server::start();
    let key = create_key(&s, "rotating");
    let mut sealed = Vec::new();
    let message = |i: u64| format!("message {i} {}", uuid::Uuid::new_v4()).into_bytes();
    let m = message(0);
    let (blob, _, v) = encrypt_ok(&s, &key, &m, None);
    assert_eq!(v, 1);
    sealed.push((m, blob, v));
    for i in 1..=5u64 {
        let k = key_action_ok(&s, &key, "rotate");
        assert_eq!(k["current_key_version"], i + 1, "{k}");
        let m = message(i);
        let (blob, _, v) = encrypt_ok(&s, &key, &m, None);
        assert_eq!(v, i + 1);
        sealed.push((m, blob, v));
    }
    assert_eq!(sealed.last().unwrap().2, 6);
    for (m, blob, v) in &sealed {
        let (back, key_id, version) = decrypt_ok(&s, blob, None);
        assert_eq!(&back, m);
        assert_eq!(key_id, key);
        assert_eq!(version, *v);
    }

    let (st, r) = s.call("GET", &key_path(&key, "/rotations"), None);
    assert_eq!(st, 200, "{r}");
    assert_eq!(r["key_id"], key.as_str());
    let rotations = r["rotations"].as_array().unwrap();
    assert_eq!(rotations.len(), 5, "{r}");
    let versions: Vec<u64> = rotations
        .iter()
        .map(|x| x["key_version"].as_u64().unwrap())
        .collect();
    assert_eq!(versions, [2, 3, 4, 5, 6]);
    assert!(
        rotations.iter().all(|x| x["rotation_type"] == "ON_DEMAND"),
        "{r}"
    );
    assert_eq!(describe_key(&s, &key)["current_key_version"], 6);

    // Re-encrypting an old blob without a destination moves it to the newest version.
    let (st, b) = s.call(
        "POST",
        "/v1/kms/re-encrypt",
        Some(json!({"ciphertext_blob": sealed[0].1})),
    );
    assert_eq!(st, 200, "{b}");
    assert_eq!(
        (b["source_key_version"].as_u64(), b["key_version"].as_u64()),
        (Some(1), Some(6))
    );
    assert_eq!(
        decrypt_ok(&s, b["ciphertext_blob"].as_str().unwrap(), None).0,
        sealed[0].0
    );
}

#[test]
fn turn_automatic_key_rotation_on_and_off() {
    let s = Server::start();
    let key = create_key(&s, "auto");
    let policy = |body: Value| s.call("PUT", &key_path(&key, "/rotation"), Some(body));
    let (st, k) = policy(json!({"enabled": true, "rotation_period_days": 180}));
    assert_eq!(st, 200, "{k}");
    assert_eq!(k["rotation_enabled"], true);
    assert_eq!(k["rotation_period_days"], 180);
    assert!(k["next_rotation_date"].as_str().is_some(), "{k}");
    assert_eq!(
        k["current_key_version"], 1,
        "enabling does not rotate at once"
    );
    let (st, k) = policy(json!({"enabled": true}));
    assert_eq!(st, 200, "{k}");
    assert_eq!(k["rotation_period_days"], 365);
    for bad in [0, 2561] {
        let (st, b) = policy(json!({"enabled": true, "rotation_period_days": bad}));
        assert_error(st, &b, 400, "InvalidParameter");
    }
    let (st, k) = policy(json!({"enabled": false}));
    assert_eq!(st, 200, "{k}");
    assert_eq!(k["rotation_enabled"], false);
    assert!(k.get("next_rotation_date").is_none(), "{k}");
    assert_eq!(describe_key(&s, &key)["rotation_enabled"], false);
}

#[test]
fn use_keys_through_aliases() {
    let s = Server::start();
    let first = create_key(&s, "first");
    let second = create_key(&s, "second");
    let alias = "alias/app-key";

    let (st, a) = create_alias(&s, alias, &first);
    assert_eq!(st, 201, "{a}");
    assert_eq!(a, json!({"alias_name": alias, "target_key_id": first}));
    let (st, b) = create_alias(&s, alias, &second);
    assert_error(st, &b, 409, "ResourceExists");
    let (blob, key_id, _) = encrypt_ok(&s, alias, b"via alias", None);
    assert_eq!(key_id, first);
    assert_eq!(describe_key(&s, alias)["key_id"], first.as_str());
    assert_eq!(describe_key(&s, &first)["aliases"], json!([alias]));

    // The default key and its alias appear once a secret exists.
    let (st, b) = s.call(
        "POST",
        "/v1/secrets",
        Some(json!({"name": "uses/default", "secret_string": "v"})),
    );
    assert_eq!(st, 201, "{b}");
    assert_eq!(alias_names(&s), [alias, "alias/coffer/secretsmanager"]);
    let default_key = describe_key(&s, "alias/coffer/secretsmanager");
    assert_eq!(default_key["is_default"], true);

    let (st, a) = s.call(
        "PUT",
        &format!("/v1/aliases/{}", enc(alias)),
        Some(json!({"target_key_id": second})),
    );
    assert_eq!(st, 200, "{a}");
    assert_eq!(a["target_key_id"], second.as_str());
    assert_eq!(encrypt_ok(&s, alias, b"x", None).1, second);
    assert_eq!(describe_key(&s, &first)["aliases"], json!([]));
    assert_eq!(describe_key(&s, &second)["aliases"], json!([alias]));

    let (st, b) = s.call("DELETE", &format!("/v1/aliases/{}", enc(alias)), None);
    assert_eq!(st, 204, "{b}");
    let (st, b) = encrypt(&s, alias, b"x", None);
    assert_error(st, &b, 404, "ResourceNotFound");
    let (st, b) = s.call("GET", &key_path(alias, ""), None);
    assert_error(st, &b, 404, "ResourceNotFound");
    let (st, b) = s.call("DELETE", &format!("/v1/aliases/{}", enc(alias)), None);
    assert_error(st, &b, 404, "ResourceNotFound");
    assert_eq!(describe_key(&s, &second)["aliases"], json!([]));
    assert_eq!(alias_names(&s), ["alias/coffer/secretsmanager"]);
    // Blobs name the key, not the alias: they still decrypt.
    assert_eq!(decrypt_ok(&s, &blob, None).0, b"via alias");

    for bad in [
        "alias/coffer/x",
        "alias/aws/x",
        "no-prefix",
        "alias/",
        "alias/bad name",
    ] {
        let (st, b) = create_alias(&s, bad, &first);
        assert_error(st, &b, 400, "InvalidParameter");
    }
    let (st, b) = s.call(
        "PUT",
        &format!("/v1/aliases/{}", enc("alias/coffer/secretsmanager")),
        Some(json!({"target_key_id": first})),
    );
    assert_error(st, &b, 400, "InvalidParameter");
    let (st, b) = s.call(
        "DELETE",
        &format!("/v1/aliases/{}", enc("alias/coffer/secretsmanager")),
        None,
    );
    assert_error(st, &b, 400, "InvalidParameter");
    let (st, b) = create_alias(&s, "alias/orphan", &uuid::Uuid::new_v4().to_string());
    assert_error(st, &b, 404, "ResourceNotFound");
}

#[test]
fn generate_random_bytes() {
    let s = Server::start();
    let random = |n: u32| {
        s.call(
            "POST",
            "/v1/kms/random",
            Some(json!({"number_of_bytes": n})),
        )
    };
    let (st, a) = random(32);
    assert_eq!(st, 200, "{a}");
    let a = B64.decode(a["plaintext"].as_str().unwrap()).unwrap();
    assert_eq!(a.len(), 32);
    let (_, b) = random(32);
    assert_ne!(B64.decode(b["plaintext"].as_str().unwrap()).unwrap(), a);
    let (st, b) = random(1024);
    assert_eq!(st, 200, "{b}");
    assert_eq!(
        B64.decode(b["plaintext"].as_str().unwrap()).unwrap().len(),
        1024
    );
    for n in [0, 1025] {
        let (st, b) = random(n);
        assert_error(st, &b, 400, "InvalidParameter");
    }
}

// ------------------------------------------------------------------------------ regions

#[test]
fn ciphertext_from_one_region_does_not_decrypt_in_another() {
    let s = Server::start_with(Opts {
        env: vec![("COFFER_REGIONS".into(), "local,eu".into())],
        ..Opts::default()
    });
    let in_eu = |method: &str, path: &str, body: Value| {
        split(
            s.req(method, path)
                .header("X-Coffer-Region", "eu")
                .json(&body)
                .send()
                .unwrap(),
        )
    };
    let key = create_key(&s, "local only");
    let (blob, _, _) = encrypt_ok(&s, &key, b"stays in local", None);

    let (st, b) = in_eu("POST", "/v1/kms/decrypt", json!({"ciphertext_blob": blob}));
    assert_error(st, &b, 422, "IntegrityCheckFailed");
    assert!(
        !b.to_string().contains(&B64.encode(b"stays in local")),
        "{b}"
    );
    let (st, b) = in_eu(
        "POST",
        &key_path(&key, "/encrypt"),
        json!({"plaintext": B64.encode(b"x")}),
    );
    assert_error(st, &b, 404, "ResourceNotFound");
    let (st, b) = in_eu(
        "POST",
        "/v1/kms/re-encrypt",
        json!({"ciphertext_blob": blob}),
    );
    assert_error(st, &b, 422, "IntegrityCheckFailed");

    // A key of eu cannot open local blobs either, even when named explicitly.
    let (st, eu_key) = in_eu("POST", "/v1/keys", json!({"description": "eu"}));
    assert_eq!(st, 201, "{eu_key}");
    assert_eq!(eu_key["region"], "eu");
    let (st, b) = in_eu(
        "POST",
        "/v1/kms/decrypt",
        json!({"ciphertext_blob": blob, "key_id": eu_key["key_id"]}),
    );
    assert_error(st, &b, 422, "IntegrityCheckFailed");
    let (st, b) = s.call(
        "GET",
        &key_path(eu_key["key_id"].as_str().unwrap(), ""),
        None,
    );
    assert_error(st, &b, 404, "ResourceNotFound");

    assert_eq!(decrypt_ok(&s, &blob, None).0, b"stays in local");
}
