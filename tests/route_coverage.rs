//! Every `/v1` route authenticates and authorizes. The routes come from
//! `coffer_server::route_docs()`, the same table that builds the router, so a route
//! added later is covered without touching this test.
//!
//! For each route: no token → 401; a token of a user no policy permits anything
//! (`nobody`, in no team) → 403 naming the operation. Path parameters get dummy values;
//! bodies are minimal *valid* bodies, because a body is parsed before the handler runs
//! (422 would come before authorization). Two routes need real data before they can
//! authorize, and get it: `Decrypt` and `ReEncrypt` read the key id out of the
//! ciphertext blob, so they get a real blob (a malformed blob is a 400 first).
//! One route answers differently by design: `BatchGetSecretValue` authorizes each
//! secret separately and reports a denial per secret (200 with `AccessDenied` in
//! `errors` and no values), like AWS.

mod common;

use base64::Engine;
use common::{split, Server};
use serde_json::{json, Value};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// A minimal valid body for an operation (`{}` when every field is optional).
fn body_for(operation: &str, key_id: &str, blob: &str) -> Value {
    match operation {
        "CreateSecret" => json!({"name": "coverage/new", "secret_string": "v"}),
        "BatchGetSecretValue" => json!({"secret_ids": ["coverage/secret"]}),
        "PutSecretValue" => json!({"secret_string": "v"}),
        "UpdateSecretVersionStage" => json!({"version_stage": "AWSCURRENT"}),
        "TagSecret" | "TagKey" => json!({"tags": {"k": "v"}}),
        "UntagSecret" | "UntagKey" => json!({"tag_keys": ["k"]}),
        "UpdateKeyDescription" => json!({"description": "d"}),
        "EnableKeyRotation" | "DisableKeyRotation" => json!({"enabled": true}),
        "Encrypt" => json!({"plaintext": B64.encode("x")}),
        "GenerateDataKey" | "GenerateDataKeyWithoutPlaintext" => json!({"key_spec": "AES_256"}),
        "Decrypt" => json!({"ciphertext_blob": blob}),
        "ReEncrypt" => json!({"ciphertext_blob": blob, "destination_key_id": key_id}),
        "GenerateRandom" => json!({"number_of_bytes": 16}),
        "CreateAlias" => json!({"alias_name": "alias/coverage-new", "target_key_id": key_id}),
        "UpdateAlias" => json!({"target_key_id": key_id}),
        "CreateToken" => json!({"principal": "someone"}),
        _ => json!({}),
    }
}

/// The path with every `{param}` replaced by a dummy (percent-encoded) value.
fn fill(path: &str, key_id: &str) -> String {
    path.split('/')
        .map(|segment| match segment {
            "{id}" => "coverage%2Fsecret".to_owned(),
            "{key}" => key_id.to_owned(),
            "{alias}" => "alias%2Fcoverage".to_owned(),
            s if s.starts_with('{') && s.ends_with('}') => "dummy".to_owned(),
            s => s.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("/")
}

fn send(s: &Server, token: Option<&str>, method: &str, path: &str, body: &Value) -> (u16, Value) {
    let m = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let mut r = s.http.request(m.clone(), s.url(path));
    if let Some(token) = token {
        r = r.bearer_auth(token);
    }
    if m != reqwest::Method::GET && m != reqwest::Method::DELETE {
        r = r.json(body);
    }
    split(r.send().expect("send"))
}

#[test]
fn every_v1_route_needs_a_token_and_a_permit() {
    let s = Server::start();
    // Real data for the routes that must read it before they can authorize.
    let (st, key) = s.call("POST", "/v1/keys", Some(json!({"description": "coverage"})));
    assert_eq!(st, 201, "{key}");
    let key_id = key["key_id"].as_str().expect("key_id").to_string();
    let (st, enc) = s.call(
        "POST",
        &format!("/v1/keys/{key_id}/encrypt"),
        Some(json!({"plaintext": B64.encode("x")})),
    );
    assert_eq!(st, 200, "{enc}");
    let blob = enc["ciphertext_blob"].as_str().expect("blob").to_string();
    let (st, secret) = s.call(
        "POST",
        "/v1/secrets",
        Some(json!({"name": "coverage/secret", "secret_string": "do-not-leak"})),
    );
    assert_eq!(st, 201, "{secret}");

    let (st, made) = s.call("POST", "/v1/tokens", Some(json!({"principal": "nobody"})));
    assert_eq!(st, 201, "{made}");
    let nobody = made["token"].as_str().expect("token").to_string();

    let routes: Vec<_> = coffer_server::route_docs()
        .into_iter()
        .filter(|r| r.path.starts_with("/v1/"))
        .collect();
    assert!(routes.len() >= 40, "only {} /v1 routes", routes.len());

    let mut failures = Vec::new();
    for route in &routes {
        assert!(
            route.auth,
            "{} {} is not marked auth",
            route.method, route.path
        );
        let path = fill(route.path, &key_id);
        let body = body_for(route.operation, &key_id, &blob);
        let what = format!("{} {} ({})", route.method, route.path, route.operation);

        let (st, b) = send(&s, None, route.method, &path, &body);
        if st != 401 {
            failures.push(format!("{what} without a token: {st} {b}"));
        }

        let (st, b) = send(&s, Some(&nobody), route.method, &path, &body);
        if b.to_string().contains("do-not-leak") {
            failures.push(format!("{what} leaked a secret value: {b}"));
        }
        if route.operation == "BatchGetSecretValue" {
            let denied_each = st == 200
                && b["secret_values"].as_array().is_some_and(Vec::is_empty)
                && b["errors"].as_array().is_some_and(|e| {
                    !e.is_empty() && e.iter().all(|e| e["code"] == "AccessDenied")
                });
            if !denied_each {
                failures.push(format!("{what} as nobody: {st} {b}"));
            }
            continue;
        }
        let message = b["error"]["message"].as_str().unwrap_or_default();
        if st != 403
            || b["error"]["code"] != "AccessDenied"
            || !message.contains("nobody is not allowed to")
        {
            failures.push(format!(
                "{what} as nobody: expected 403 AccessDenied, got {st} {b}"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} routes misbehave:\n{}",
        failures.len(),
        routes.len(),
        failures.join("\n")
    );

    // Nothing was changed by the denied calls.
    let (st, value) = s.call("GET", "/v1/secrets/coverage%2Fsecret/value", None);
    assert_eq!(st, 200, "{value}");
    assert_eq!(value["secret_string"], "do-not-leak");
}
