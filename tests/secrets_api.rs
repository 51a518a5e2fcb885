//! The Secrets Manager half of the native REST API, over HTTP against the real binary:
//! values, versions and labels, listing, deletion, idempotency, every error status,
//! authentication, regions and the unauthenticated system routes.

mod common;

use base64::Engine;
use common::{code, enc, split, Opts, Server};
use serde_json::{json, Value};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

// ------------------------------------------------------------------------------ helpers

fn secret_path(id: &str, rest: &str) -> String {
    format!("/v1/secrets/{}{rest}", enc(id))
}

fn create(s: &Server, body: Value) -> Value {
    let (st, b) = s.call("POST", "/v1/secrets", Some(body));
    assert_eq!(st, 201, "{b}");
    b
}

/// Creates a string secret; returns the response (arn, name, version_id, version_stages).
fn create_string(s: &Server, name: &str, value: &str) -> Value {
    create(s, json!({"name": name, "secret_string": value}))
}

fn get_value(s: &Server, id: &str, query: &str) -> (u16, Value) {
    s.call("GET", &secret_path(id, &format!("/value{query}")), None)
}

/// The string value of `id` at `query` (e.g. `?version_stage=AWSPREVIOUS`); must be 200.
fn read_string(s: &Server, id: &str, query: &str) -> String {
    let (st, b) = get_value(s, id, query);
    assert_eq!(st, 200, "{b}");
    b["secret_string"]
        .as_str()
        .expect("secret_string")
        .to_string()
}

fn put_value(s: &Server, id: &str, body: Value) -> (u16, Value) {
    s.call("PUT", &secret_path(id, "/value"), Some(body))
}

/// Puts a string value; returns the new version id.
fn put_string(s: &Server, id: &str, value: &str) -> String {
    let (st, b) = put_value(s, id, json!({"secret_string": value}));
    assert_eq!(st, 200, "{b}");
    b["version_id"].as_str().expect("version_id").to_string()
}

fn describe(s: &Server, id: &str) -> Value {
    let (st, b) = s.call("GET", &secret_path(id, ""), None);
    assert_eq!(st, 200, "{b}");
    b
}

/// Version ids, newest first.
fn version_ids(s: &Server, id: &str, include_deprecated: bool) -> Vec<String> {
    let (st, b) = s.call(
        "GET",
        &secret_path(
            id,
            &format!("/versions?include_deprecated={include_deprecated}"),
        ),
        None,
    );
    assert_eq!(st, 200, "{b}");
    b["versions"]
        .as_array()
        .expect("versions")
        .iter()
        .map(|v| v["version_id"].as_str().unwrap().to_string())
        .collect()
}

fn stage(s: &Server, id: &str, body: Value) -> (u16, Value) {
    s.call("POST", &secret_path(id, "/stages"), Some(body))
}

/// One page of ListSecrets: names and next_token.
fn list_page(s: &Server, query: &str) -> (Vec<String>, Option<String>) {
    let (st, b) = s.call("GET", &format!("/v1/secrets{query}"), None);
    assert_eq!(st, 200, "{b}");
    let names = b["secrets"]
        .as_array()
        .expect("secrets")
        .iter()
        .map(|d| d["name"].as_str().unwrap().to_string())
        .collect();
    (names, b["next_token"].as_str().map(str::to_string))
}

fn list_names(s: &Server, query: &str) -> Vec<String> {
    let (names, next) = list_page(s, query);
    assert_eq!(next, None, "a single page was expected for {query}");
    names
}

fn random_password(s: &Server, body: Value) -> (u16, Value) {
    s.call("POST", "/v1/random-password", Some(body))
}

/// Sends a raw body with the admin token; returns status and the body as text.
fn send_raw(s: &Server, method: &str, path: &str, body: String) -> (u16, String) {
    let r = s
        .req(method, path)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .expect("send");
    (r.status().as_u16(), r.text().unwrap_or_default())
}

/// Sends JSON with the admin token; returns status and the body as text.
fn send_text(s: &Server, method: &str, path: &str, body: &Value) -> (u16, String) {
    send_raw(s, method, path, body.to_string())
}

fn error_code_of(text: &str) -> String {
    let v: Value = serde_json::from_str(text).unwrap_or(Value::Null);
    code(&v).to_string()
}

/// Sends a request in `region` with the admin token.
fn call_in(
    s: &Server,
    region: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut r = s.req(method, path).header("X-Coffer-Region", region);
    if let Some(b) = body {
        r = r.json(&b);
    }
    split(r.send().expect("send"))
}

/// Creates a token for `principal`; returns (token, token_id).
fn create_token(s: &Server, principal: &str) -> (String, String) {
    let (st, b) = s.call("POST", "/v1/tokens", Some(json!({"principal": principal})));
    assert_eq!(st, 201, "{b}");
    (
        b["token"].as_str().expect("token").to_string(),
        b["token_id"].as_str().expect("token_id").to_string(),
    )
}

fn get_value_as(s: &Server, token: &str, id: &str) -> (u16, Value) {
    split(
        s.req_as(token, "GET", &secret_path(id, "/value"))
            .send()
            .expect("send"),
    )
}

fn assert_error(st: u16, body: &Value, want_status: u16, want_code: &str) {
    assert_eq!(st, want_status, "{body}");
    assert_eq!(code(body), want_code, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body}"
    );
}

fn client_request_token() -> String {
    uuid::Uuid::new_v4().to_string()
}

// ------------------------------------------------------------------------------ values

#[test]
fn store_and_read_string_and_binary_secrets_by_name_and_arn() {
    let s = Server::start();
    let value = "s3cr3t-p@ss/w0rd \u{1F511} \"quoted\"";
    let made = create(
        &s,
        json!({
            "name": "prod/database/password",
            "secret_string": value,
            "description": "primary database",
            "tags": {"team": "payments"},
        }),
    );
    let arn = made["arn"].as_str().unwrap().to_string();
    assert!(
        arn.starts_with("arn:coffer:secretsmanager:local:secret:prod/database/password-"),
        "{arn}"
    );
    assert_eq!(made["name"], "prod/database/password");
    assert_eq!(made["version_stages"], json!(["AWSCURRENT"]));
    let vid = made["version_id"].as_str().unwrap().to_string();

    for id in ["prod/database/password", arn.as_str()] {
        let (st, got) = get_value(&s, id, "");
        assert_eq!(st, 200, "{got}");
        assert_eq!(got["secret_string"], value);
        assert!(got.get("secret_binary").is_none(), "{got}");
        assert_eq!(got["arn"], arn.as_str());
        assert_eq!(got["version_id"], vid.as_str());
        assert_eq!(got["version_stages"], json!(["AWSCURRENT"]));
    }

    let bytes: Vec<u8> = (0..=255u8).chain([0, 0, 255]).collect();
    let b64 = B64.encode(&bytes);
    create(
        &s,
        json!({"name": "prod/tls/key.der", "secret_binary": b64}),
    );
    let (st, got) = get_value(&s, "prod/tls/key.der", "");
    assert_eq!(st, 200, "{got}");
    assert!(got.get("secret_string").is_none(), "{got}");
    let back = B64.decode(got["secret_binary"].as_str().unwrap()).unwrap();
    assert_eq!(back, bytes);

    for id in ["prod/database/password", arn.as_str()] {
        let d = describe(&s, id);
        assert_eq!(d["name"], "prod/database/password");
        assert_eq!(d["arn"], arn.as_str());
        assert_eq!(d["region"], "local");
        assert_eq!(d["description"], "primary database");
        assert_eq!(d["tags"], json!({"team": "payments"}));
        assert_eq!(
            d["version_ids_to_stages"],
            json!({ vid.clone(): ["AWSCURRENT"] })
        );
        assert!(d.get("deleted_date").is_none(), "{d}");
        let text = d.to_string();
        assert!(!text.contains("s3cr3t"), "describe leaks the value: {text}");
        assert!(
            !text.contains("secret_string") && !text.contains("secret_binary"),
            "{text}"
        );
    }
    let text = describe(&s, "prod/tls/key.der").to_string();
    assert!(
        !text.contains(&b64[..40]),
        "describe leaks the binary value: {text}"
    );
}

#[test]
fn list_secrets_sorted_paginated_and_filtered() {
    let s = Server::start();
    for (name, tags, description) in [
        ("app/c", json!({}), "cache"),
        ("app/a", json!({"env": "prod"}), "Rotated monthly"),
        ("db/x", json!({"env": "prod", "team": "data"}), "warehouse"),
        ("app/b", json!({"env": "dev"}), "rotated weekly"),
        ("app/d", json!({}), "queue"),
    ] {
        create(
            &s,
            json!({"name": name, "secret_string": "v", "tags": tags, "description": description}),
        );
    }
    let all = ["app/a", "app/b", "app/c", "app/d", "db/x"];
    assert_eq!(list_names(&s, ""), all);

    let mut pages = Vec::new();
    let mut query = "?max_results=2".to_string();
    loop {
        let (names, next) = list_page(&s, &query);
        pages.push(names);
        match next {
            Some(t) => query = format!("?max_results=2&next_token={}", enc(&t)),
            None => break,
        }
    }
    assert_eq!(
        pages,
        vec![vec!["app/a", "app/b"], vec!["app/c", "app/d"], vec!["db/x"]]
    );

    assert_eq!(
        list_names(&s, &format!("?name_prefix={}", enc("app/"))),
        ["app/a", "app/b", "app/c", "app/d"]
    );
    assert_eq!(list_names(&s, "?tag_key=env"), ["app/a", "app/b", "db/x"]);
    assert_eq!(
        list_names(&s, "?tag_key=env&tag_value=prod"),
        ["app/a", "db/x"]
    );
    assert_eq!(list_names(&s, "?tag_key=team"), ["db/x"]);
    assert_eq!(list_names(&s, "?description=ROTATED"), ["app/a", "app/b"]);
    assert_eq!(
        list_names(&s, &format!("?name_prefix={}", enc("zzz/"))),
        Vec::<String>::new()
    );

    let (st, b) = s.call("GET", "/v1/secrets?max_results=0", None);
    assert_error(st, &b, 400, "InvalidParameter");
    let (st, b) = s.call("GET", "/v1/secrets?max_results=101", None);
    assert_error(st, &b, 400, "InvalidParameter");
    let (st, b) = s.call("GET", "/v1/secrets?colour=blue", None);
    assert_error(st, &b, 400, "InvalidParameter");
}

#[test]
fn put_new_values_moves_current_and_previous_labels() {
    let s = Server::start();
    let v1 = create_string(&s, "app/api-key", "one")["version_id"]
        .as_str()
        .unwrap()
        .to_string();
    let v2 = put_string(&s, "app/api-key", "two");
    assert_ne!(v1, v2);
    assert_eq!(read_string(&s, "app/api-key", ""), "two");
    let (st, prev) = get_value(&s, "app/api-key", "?version_stage=AWSPREVIOUS");
    assert_eq!(st, 200, "{prev}");
    assert_eq!(prev["secret_string"], "one");
    assert_eq!(prev["version_id"], v1.as_str());
    assert_eq!(prev["version_stages"], json!(["AWSPREVIOUS"]));
    assert_eq!(
        read_string(&s, "app/api-key", &format!("?version_id={v1}")),
        "one"
    );

    let v3 = put_string(&s, "app/api-key", "three");
    assert_eq!(read_string(&s, "app/api-key", ""), "three");
    assert_eq!(
        read_string(&s, "app/api-key", "?version_stage=AWSPREVIOUS"),
        "two"
    );
    // The first version lost its labels but is still readable by id.
    let (st, old) = get_value(&s, "app/api-key", &format!("?version_id={v1}"));
    assert_eq!(st, 200, "{old}");
    assert_eq!(old["secret_string"], "one");
    assert_eq!(old["version_stages"], json!([]));
    // Version id and label together must agree.
    let (st, b) = get_value(
        &s,
        "app/api-key",
        &format!("?version_id={v1}&version_stage=AWSCURRENT"),
    );
    assert_error(st, &b, 404, "ResourceNotFound");

    assert_eq!(
        version_ids(&s, "app/api-key", false),
        [v3.clone(), v2.clone()]
    );
    assert_eq!(
        version_ids(&s, "app/api-key", true),
        [v3.clone(), v2.clone(), v1.clone()]
    );
    assert_eq!(
        describe(&s, "app/api-key")["version_ids_to_stages"],
        json!({ v3: ["AWSCURRENT"], v2: ["AWSPREVIOUS"] })
    );

    // A version with a custom label only does not become current.
    let (st, b) = put_value(
        &s,
        "app/api-key",
        json!({"secret_string": "four", "version_stages": ["AWSPENDING"]}),
    );
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["version_stages"], json!(["AWSPENDING"]));
    assert_eq!(read_string(&s, "app/api-key", ""), "three");
    assert_eq!(
        read_string(&s, "app/api-key", "?version_stage=AWSPENDING"),
        "four"
    );

    let (st, b) = put_value(&s, "app/api-key", json!({}));
    assert_error(st, &b, 400, "InvalidParameter");
    let (st, b) = put_value(
        &s,
        "app/api-key",
        json!({"secret_string": "x", "secret_binary": B64.encode("x")}),
    );
    assert_error(st, &b, 400, "InvalidParameter");
    let (st, b) = put_value(&s, "app/api-key", json!({"secret_binary": "***"}));
    assert_error(st, &b, 400, "InvalidParameter");
}

#[test]
fn move_staging_labels_between_versions() {
    let s = Server::start();
    let name = "app/rotating";
    let v1 = create_string(&s, name, "v1")["version_id"]
        .as_str()
        .unwrap()
        .to_string();
    let v2 = put_string(&s, name, "v2");

    // AWSCURRENT is on v2: moving it needs remove_from_version_id naming v2.
    let (st, b) = stage(
        &s,
        name,
        json!({"version_stage": "AWSCURRENT", "move_to_version_id": v1}),
    );
    assert_error(st, &b, 400, "InvalidParameter");
    let (st, b) = stage(
        &s,
        name,
        json!({"version_stage": "AWSCURRENT", "move_to_version_id": v1, "remove_from_version_id": v1}),
    );
    assert_error(st, &b, 400, "InvalidParameter");
    let (st, b) = stage(
        &s,
        name,
        json!({"version_stage": "AWSCURRENT", "move_to_version_id": client_request_token(), "remove_from_version_id": v2}),
    );
    assert_error(st, &b, 404, "ResourceNotFound");
    let (st, b) = stage(
        &s,
        name,
        json!({"version_stage": "AWSCURRENT", "remove_from_version_id": v2}),
    );
    assert_error(st, &b, 400, "InvalidParameter");
    let (st, b) = stage(&s, name, json!({"version_stage": "AWSCURRENT"}));
    assert_error(st, &b, 400, "InvalidParameter");
    assert_eq!(
        read_string(&s, name, ""),
        "v2",
        "failed moves must change nothing"
    );

    // Roll back: AWSCURRENT to v1, and v2 becomes AWSPREVIOUS.
    let (st, d) = stage(
        &s,
        name,
        json!({"version_stage": "AWSCURRENT", "move_to_version_id": v1, "remove_from_version_id": v2}),
    );
    assert_eq!(st, 200, "{d}");
    assert_eq!(
        d["version_ids_to_stages"],
        json!({ v1.clone(): ["AWSCURRENT"], v2.clone(): ["AWSPREVIOUS"] })
    );
    assert_eq!(read_string(&s, name, ""), "v1");
    assert_eq!(read_string(&s, name, "?version_stage=AWSPREVIOUS"), "v2");

    // A custom label: attach, read through it, remove.
    let (st, d) = stage(
        &s,
        name,
        json!({"version_stage": "BLUE", "move_to_version_id": v2}),
    );
    assert_eq!(st, 200, "{d}");
    assert_eq!(
        d["version_ids_to_stages"][&v2],
        json!(["AWSPREVIOUS", "BLUE"])
    );
    assert_eq!(read_string(&s, name, "?version_stage=BLUE"), "v2");
    let (st, d) = stage(
        &s,
        name,
        json!({"version_stage": "BLUE", "remove_from_version_id": v2}),
    );
    assert_eq!(st, 200, "{d}");
    let (st, b) = get_value(&s, name, "?version_stage=BLUE");
    assert_error(st, &b, 404, "ResourceNotFound");
}

#[test]
fn update_description_and_tags() {
    let s = Server::start();
    let name = "billing/stripe";
    create(
        &s,
        json!({"name": name, "secret_string": "sk_live", "tags": {"team": "payments"}}),
    );

    let (st, d) = s.call(
        "PATCH",
        &secret_path(name, ""),
        Some(json!({"description": "rotated monthly"})),
    );
    assert_eq!(st, 200, "{d}");
    assert_eq!(d["description"], "rotated monthly");
    assert_eq!(describe(&s, name)["description"], "rotated monthly");

    let (st, d) = s.call(
        "POST",
        &secret_path(name, "/tags"),
        Some(json!({"tags": {"env": "prod", "team": "billing"}})),
    );
    assert_eq!(st, 200, "{d}");
    assert_eq!(d["tags"], json!({"env": "prod", "team": "billing"}));
    let (st, d) = s.call(
        "POST",
        &secret_path(name, "/untag"),
        Some(json!({"tag_keys": ["team"]})),
    );
    assert_eq!(st, 200, "{d}");
    assert_eq!(d["tags"], json!({"env": "prod"}));
    assert_eq!(describe(&s, name)["tags"], json!({"env": "prod"}));
    assert_eq!(list_names(&s, "?tag_key=team"), Vec::<String>::new());
    assert_eq!(
        read_string(&s, name, ""),
        "sk_live",
        "metadata changes keep the value"
    );

    let (st, b) = s.call(
        "POST",
        &secret_path(name, "/tags"),
        Some(json!({"tags": {"aws:owner": "x"}})),
    );
    assert_error(st, &b, 400, "InvalidParameter");
    let (st, b) = s.call(
        "PATCH",
        &secret_path(name, ""),
        Some(json!({"description": "d".repeat(2049)})),
    );
    assert_error(st, &b, 400, "InvalidParameter");
}

#[test]
fn delete_with_a_recovery_window_then_restore() {
    let s = Server::start();
    let name = "old/service-token";
    create_string(&s, name, "keep-me");

    let (st, b) = s.call(
        "DELETE",
        &secret_path(name, "?recovery_window_days=6"),
        None,
    );
    assert_error(st, &b, 400, "InvalidParameter");
    let (st, del) = s.call(
        "DELETE",
        &secret_path(name, "?recovery_window_days=7"),
        None,
    );
    assert_eq!(st, 200, "{del}");
    let deletion_date = del["deletion_date"]
        .as_str()
        .expect("deletion_date")
        .to_string();

    let (st, b) = get_value(&s, name, "");
    assert_error(st, &b, 409, "InvalidState");
    let (st, b) = put_value(&s, name, json!({"secret_string": "new"}));
    assert_error(st, &b, 409, "InvalidState");
    let (st, b) = s.call(
        "DELETE",
        &secret_path(name, "?recovery_window_days=7"),
        None,
    );
    assert_error(st, &b, 409, "InvalidState");
    let (st, b) = s.call(
        "POST",
        "/v1/secrets",
        Some(json!({"name": name, "secret_string": "x"})),
    );
    assert_error(st, &b, 409, "InvalidState");
    assert_eq!(describe(&s, name)["deleted_date"], deletion_date.as_str());
    assert_eq!(list_names(&s, ""), Vec::<String>::new());
    assert_eq!(list_names(&s, "?include_deleted=true"), [name]);

    let (st, d) = s.call("POST", &secret_path(name, "/restore"), None);
    assert_eq!(st, 200, "{d}");
    assert!(d.get("deleted_date").is_none(), "{d}");
    assert_eq!(read_string(&s, name, ""), "keep-me");
    assert_eq!(list_names(&s, ""), [name]);
}

#[test]
fn force_delete_removes_a_secret_at_once() {
    let s = Server::start();
    let name = "tmp/scratch";
    create_string(&s, name, "gone-soon");
    let (st, b) = s.call(
        "DELETE",
        &secret_path(name, "?force=true&recovery_window_days=7"),
        None,
    );
    assert_error(st, &b, 400, "InvalidParameter");
    let (st, b) = s.call("DELETE", &secret_path(name, "?force=true"), None);
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["name"], name);

    let (st, b) = get_value(&s, name, "");
    assert_error(st, &b, 404, "ResourceNotFound");
    let (st, b) = s.call("GET", &secret_path(name, ""), None);
    assert_error(st, &b, 404, "ResourceNotFound");
    let (st, b) = s.call("POST", &secret_path(name, "/restore"), None);
    assert_error(st, &b, 404, "ResourceNotFound");
    assert_eq!(
        list_names(&s, "?include_deleted=true"),
        Vec::<String>::new()
    );
    // The name is free again.
    create_string(&s, name, "again");
    assert_eq!(read_string(&s, name, ""), "again");
}

#[test]
fn generate_random_passwords_with_exclusions() {
    let s = Server::start();
    let (st, b) = random_password(&s, json!({}));
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["random_password"].as_str().unwrap().chars().count(), 32);

    let excluded = "aeiouAEIOU01";
    let (st, b) = random_password(
        &s,
        json!({"password_length": 200, "exclude_punctuation": true, "exclude_characters": excluded}),
    );
    assert_eq!(st, 200, "{b}");
    let p = b["random_password"].as_str().unwrap();
    assert_eq!(p.chars().count(), 200);
    assert!(p.chars().all(|c| c.is_ascii_alphanumeric()), "{p}");
    assert!(!p.chars().any(|c| excluded.contains(c)), "{p}");
    assert!(
        p.chars().any(|c| c.is_ascii_digit()),
        "each included class is required: {p}"
    );

    let (st, b) = random_password(
        &s,
        json!({"password_length": 50, "exclude_lowercase": true, "exclude_uppercase": true, "exclude_punctuation": true}),
    );
    assert_eq!(st, 200, "{b}");
    assert!(
        b["random_password"]
            .as_str()
            .unwrap()
            .chars()
            .all(|c| c.is_ascii_digit()),
        "{b}"
    );

    for bad in [
        json!({"password_length": 0}),
        json!({"password_length": 4097}),
        json!({"exclude_lowercase": true, "exclude_uppercase": true, "exclude_numbers": true, "exclude_punctuation": true}),
    ] {
        let (st, b) = random_password(&s, bad.clone());
        assert_error(st, &b, 400, "InvalidParameter");
    }
}

#[test]
fn batch_get_returns_values_and_an_error_per_missing_secret() {
    let s = Server::start();
    create_string(&s, "svc/a", "value-a");
    let (st, b) = s.call(
        "POST",
        "/v1/secrets/batch-get",
        Some(json!({"secret_ids": ["svc/a", "svc/missing"]})),
    );
    assert_eq!(st, 200, "{b}");
    let values = b["secret_values"].as_array().unwrap();
    assert_eq!(values.len(), 1, "{b}");
    assert_eq!(values[0]["name"], "svc/a");
    assert_eq!(values[0]["secret_string"], "value-a");
    let errors = b["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{b}");
    assert_eq!(errors[0]["secret_id"], "svc/missing");
    assert_eq!(errors[0]["code"], "ResourceNotFound");

    let (st, b) = s.call(
        "POST",
        "/v1/secrets/batch-get",
        Some(json!({"secret_ids": []})),
    );
    assert_error(st, &b, 400, "InvalidParameter");
    let ids: Vec<String> = (0..21).map(|i| format!("svc/{i}")).collect();
    let (st, b) = s.call(
        "POST",
        "/v1/secrets/batch-get",
        Some(json!({"secret_ids": ids})),
    );
    assert_error(st, &b, 400, "InvalidParameter");
}

// ------------------------------------------------------------------------------ idempotency

#[test]
fn retrying_a_put_with_the_same_token_stores_one_version() {
    let s = Server::start();
    let name = "idem/retry";
    create_string(&s, name, "first");
    let token = client_request_token();
    let body = json!({"secret_string": "second", "client_request_token": token});
    let (st, a) = put_value(&s, name, body.clone());
    assert_eq!(st, 200, "{a}");
    assert_eq!(a["version_id"], token.as_str());
    let count = version_ids(&s, name, true).len();
    assert_eq!(count, 2);

    let (st, b) = put_value(&s, name, body);
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["version_id"], token.as_str());
    assert_eq!(version_ids(&s, name, true).len(), count);
    assert_eq!(read_string(&s, name, ""), "second");
    assert_eq!(read_string(&s, name, "?version_stage=AWSPREVIOUS"), "first");

    // The same holds for create.
    let token = client_request_token();
    let body = json!({"name": "idem/create", "secret_string": "v", "client_request_token": token});
    let (st, a) = s.call("POST", "/v1/secrets", Some(body.clone()));
    assert_eq!(st, 201, "{a}");
    let (st, b) = s.call("POST", "/v1/secrets", Some(body));
    assert_eq!(st, 201, "{b}");
    assert_eq!(b["version_id"], token.as_str());
    assert_eq!(version_ids(&s, "idem/create", true), [token]);

    let (st, b) = put_value(
        &s,
        name,
        json!({"secret_string": "x", "client_request_token": "short"}),
    );
    assert_error(st, &b, 400, "InvalidParameter");
}

#[test]
fn reusing_a_token_for_another_value_conflicts_without_echoing_it() {
    let s = Server::start();
    let name = "idem/conflict";
    create_string(&s, name, "first");
    let token = client_request_token();
    let (st, b) = put_value(
        &s,
        name,
        json!({"secret_string": "original-value", "client_request_token": token}),
    );
    assert_eq!(st, 200, "{b}");

    let leaked = "conflicting-Value-7c1e";
    let (st, text) = send_text(
        &s,
        "PUT",
        &secret_path(name, "/value"),
        &json!({"secret_string": leaked, "client_request_token": token}),
    );
    assert_eq!(st, 409, "{text}");
    assert_eq!(error_code_of(&text), "ResourceExists", "{text}");
    assert!(
        !text.contains(leaked),
        "error body echoes the value: {text}"
    );
    assert!(
        !text.contains("original-value"),
        "error body leaks the stored value: {text}"
    );
    assert_eq!(read_string(&s, name, ""), "original-value");
    assert_eq!(version_ids(&s, name, true).len(), 2);
}

// ------------------------------------------------------------------------------ errors

#[test]
fn reading_an_unknown_secret_version_or_label_is_not_found() {
    let s = Server::start();
    let (st, b) = get_value(&s, "no/such/secret", "");
    assert_error(st, &b, 404, "ResourceNotFound");
    let (st, b) = s.call("GET", &secret_path("no/such/secret", ""), None);
    assert_error(st, &b, 404, "ResourceNotFound");
    let (st, b) = put_value(&s, "no/such/secret", json!({"secret_string": "v"}));
    assert_error(st, &b, 404, "ResourceNotFound");

    let arn = create_string(&s, "app/known", "v")["arn"]
        .as_str()
        .unwrap()
        .to_string();
    let (st, b) = get_value(&s, "app/known", "?version_stage=NOPE");
    assert_error(st, &b, 404, "ResourceNotFound");
    let (st, b) = get_value(
        &s,
        "app/known",
        &format!("?version_id={}", client_request_token()),
    );
    assert_error(st, &b, 404, "ResourceNotFound");
    // An ARN with the right name but the wrong suffix names another (deleted) secret.
    let wrong = format!("{}XYZ123", &arn[..arn.len() - 6]);
    let (st, b) = get_value(&s, &wrong, "");
    assert_error(st, &b, 404, "ResourceNotFound");

    // A secret created without a value has no AWSCURRENT version until the first put.
    let made = create(&s, json!({"name": "app/empty"}));
    assert!(made.get("version_id").is_none(), "{made}");
    assert_eq!(made["version_stages"], json!([]));
    let (st, b) = get_value(&s, "app/empty", "");
    assert_error(st, &b, 404, "ResourceNotFound");
    assert_eq!(
        describe(&s, "app/empty")["version_ids_to_stages"],
        json!({})
    );
    put_string(&s, "app/empty", "now-set");
    assert_eq!(read_string(&s, "app/empty", ""), "now-set");
}

#[test]
fn invalid_secret_names_are_rejected() {
    let s = Server::start();
    for bad in ["bad name!", "semi;colon", ""] {
        let (st, b) = s.call(
            "POST",
            "/v1/secrets",
            Some(json!({"name": bad, "secret_string": "v"})),
        );
        assert_error(st, &b, 400, "InvalidParameter");
    }
    let (st, b) = s.call(
        "POST",
        "/v1/secrets",
        Some(json!({"name": "a".repeat(513), "secret_string": "v"})),
    );
    assert_error(st, &b, 400, "InvalidParameter");
    let (st, b) = get_value(&s, "bad name!", "");
    assert_error(st, &b, 400, "InvalidParameter");
    let (st, b) = s.call(
        "POST",
        "/v1/secrets",
        Some(json!({"name": "empty/value", "secret_string": ""})),
    );
    assert_error(st, &b, 400, "InvalidParameter");
}

#[test]
fn creating_an_existing_secret_conflicts() {
    let s = Server::start();
    create_string(&s, "dup/name", "first");
    let (st, b) = s.call(
        "POST",
        "/v1/secrets",
        Some(json!({"name": "dup/name", "secret_string": "second"})),
    );
    assert_error(st, &b, 409, "ResourceExists");
    assert_eq!(read_string(&s, "dup/name", ""), "first");
}

#[test]
fn oversized_values_are_rejected_without_echoing_them() {
    let s = Server::start();
    let pattern = "oversized-secret-";
    let big: String = pattern.chars().cycle().take(65_537).collect();
    let (st, text) = send_text(
        &s,
        "POST",
        "/v1/secrets",
        &json!({"name": "big/one", "secret_string": big}),
    );
    assert_eq!(st, 413, "{text}");
    assert_eq!(error_code_of(&text), "ValueTooLarge", "{text}");
    assert!(!text.contains(pattern), "413 body echoes the value: {text}");
    let (st, b) = s.call("GET", &secret_path("big/one", ""), None);
    assert_error(st, &b, 404, "ResourceNotFound");

    let binary = B64.encode(vec![7u8; 65_537]);
    let (st, b) = s.call(
        "POST",
        "/v1/secrets",
        Some(json!({"name": "big/bin", "secret_binary": binary})),
    );
    assert_error(st, &b, 413, "ValueTooLarge");

    // Exactly at the limit is fine, for create and put.
    let max: String = pattern.chars().cycle().take(65_536).collect();
    create_string(&s, "big/max", &max);
    assert_eq!(read_string(&s, "big/max", ""), max);
    let (st, text) = send_text(
        &s,
        "PUT",
        &secret_path("big/max", "/value"),
        &json!({"secret_string": big}),
    );
    assert_eq!(st, 413, "{text}");
    assert!(!text.contains(pattern), "{text}");
}

#[test]
fn request_body_over_the_server_limit_is_rejected() {
    let s = Server::start();
    let pattern = "huge-body-value-";
    let huge: String = pattern.chars().cycle().take(300 * 1024).collect();
    let (st, text) = send_text(
        &s,
        "POST",
        "/v1/secrets",
        &json!({"name": "big/body", "secret_string": huge}),
    );
    assert_eq!(st, 413, "{text}");
    assert_eq!(error_code_of(&text), "PayloadTooLarge", "{text}");
    assert!(!text.contains(pattern), "{text}");
    let (st, b) = s.call("GET", &secret_path("big/body", ""), None);
    assert_error(st, &b, 404, "ResourceNotFound");
}

#[test]
fn malformed_json_and_unknown_fields_are_rejected() {
    let s = Server::start();
    let (st, text) = send_raw(
        &s,
        "POST",
        "/v1/secrets",
        r#"{"name": "x", "secret_string": "#.into(),
    );
    assert_eq!(st, 400, "{text}");
    assert_eq!(error_code_of(&text), "MalformedJson", "{text}");
    let (st, text) = send_raw(&s, "POST", "/v1/secrets", r#"{"name": "x"} {"#.into());
    assert_eq!(st, 400, "{text}");
    assert_eq!(error_code_of(&text), "MalformedJson", "{text}");

    let (st, b) = s.call(
        "POST",
        "/v1/secrets",
        Some(json!({"name": "x", "secret_string": "v", "colour": "blue"})),
    );
    assert_error(st, &b, 422, "InvalidRequestBody");
    assert!(
        b["error"]["message"].as_str().unwrap().contains("colour"),
        "{b}"
    );
    let (st, b) = s.call("POST", "/v1/secrets", Some(json!({"secret_string": "v"})));
    assert_error(st, &b, 422, "InvalidRequestBody");
    let (st, text) = send_text(
        &s,
        "POST",
        "/v1/secrets",
        &json!({"name": 12, "secret_string": "wrong-type-secret"}),
    );
    assert_eq!(st, 422, "{text}");
    let (st, text) = send_text(
        &s,
        "POST",
        "/v1/secrets",
        &json!({"name": "typed", "secret_string": 42, "description": ["wrong-type-secret"]}),
    );
    assert_eq!(st, 422, "{text}");
    assert!(!text.contains("wrong-type-secret"), "{text}");
    let (st, b) = s.call("GET", &secret_path("x", ""), None);
    assert_error(st, &b, 404, "ResourceNotFound");
}

#[test]
fn requests_without_a_valid_token_are_unauthenticated() {
    let s = Server::start();
    create_string(&s, "auth/x", "v");
    let r = s
        .http
        .get(s.url(&secret_path("auth/x", "/value")))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    assert_eq!(
        r.headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok()),
        Some("Bearer")
    );
    let (_, b) = split(r);
    assert_eq!(code(&b), "Unauthenticated", "{b}");

    for token in ["cft_0123456789abcdef_wrongsecret", "not-a-coffer-token", ""] {
        let (st, b) = get_value_as(&s, token, "auth/x");
        assert_error(st, &b, 401, "Unauthenticated");
    }
    let r = s
        .http
        .get(s.url(&secret_path("auth/x", "/value")))
        .basic_auth("admin", Some(&s.token))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    assert!(r.headers().contains_key("www-authenticate"));
}

#[test]
fn principal_without_a_permit_is_denied_naming_the_action() {
    let s = Server::start();
    create_string(&s, "team/secret", "not-for-nobody");
    let (token, _) = create_token(&s, "nobody");
    assert!(token.starts_with("cft_"), "{token}");

    let (st, b) = get_value_as(&s, &token, "team/secret");
    assert_error(st, &b, 403, "AccessDenied");
    let msg = b["error"]["message"].as_str().unwrap();
    assert!(msg.contains("GetSecretValue"), "{msg}");
    assert!(!b.to_string().contains("not-for-nobody"), "{b}");
    // Missing secrets are denied the same way, so existence does not leak.
    let (st, b) = get_value_as(&s, &token, "team/absent");
    assert_error(st, &b, 403, "AccessDenied");

    let (st, b) = split(
        s.req_as(&token, "POST", "/v1/secrets")
            .json(&json!({"name": "team/new", "secret_string": "v"}))
            .send()
            .unwrap(),
    );
    assert_error(st, &b, 403, "AccessDenied");
    assert!(
        b["error"]["message"]
            .as_str()
            .unwrap()
            .contains("CreateSecret"),
        "{b}"
    );
    let (st, b) = split(s.req_as(&token, "GET", "/v1/secrets").send().unwrap());
    assert_error(st, &b, 403, "AccessDenied");
    assert!(
        b["error"]["message"]
            .as_str()
            .unwrap()
            .contains("ListSecrets"),
        "{b}"
    );
    let (st, b) = split(
        s.req_as(&token, "POST", "/v1/tokens")
            .json(&json!({"principal": "admin"}))
            .send()
            .unwrap(),
    );
    assert_error(st, &b, 403, "AccessDenied");
}

#[test]
fn revoked_token_is_rejected() {
    let s = Server::start();
    create_string(&s, "ops/x", "v");
    let (token, token_id) = create_token(&s, "admin");
    let (st, b) = get_value_as(&s, &token, "ops/x");
    assert_eq!(st, 200, "{b}");

    let (st, b) = s.call("GET", "/v1/tokens", None);
    assert_eq!(st, 200, "{b}");
    assert!(
        !b.to_string().contains(&token),
        "token list shows the token: {b}"
    );
    assert!(b["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["token_id"] == token_id.as_str()));

    let (st, b) = s.call("DELETE", &format!("/v1/tokens/{token_id}"), None);
    assert_eq!(st, 204, "{b}");
    let (st, b) = get_value_as(&s, &token, "ops/x");
    assert_error(st, &b, 401, "Unauthenticated");
    // The admin token still works.
    assert_eq!(read_string(&s, "ops/x", ""), "v");
}

#[test]
fn unknown_route_answers_json_404() {
    let s = Server::start();
    let (st, b) = s.call("GET", "/v1/nothing-here", None);
    assert_error(st, &b, 404, "UnknownOperation");
    let (st, b) = split(s.http.get(s.url("/no/such/path")).send().unwrap());
    assert_error(st, &b, 404, "UnknownOperation");
    let (st, b) = s.call("DELETE", "/v1/random-password", None);
    assert_error(st, &b, 405, "MethodNotAllowed");
}

#[test]
fn every_response_carries_a_request_id() {
    let s = Server::start();
    let requests = [
        s.req("POST", "/v1/secrets")
            .json(&json!({"name": "rid/x", "secret_string": "v"})),
        s.req("GET", &secret_path("rid/x", "/value")),
        s.req("GET", &secret_path("rid/missing", "/value")),
        s.req("POST", "/v1/secrets").body("{"),
        s.http.get(s.url("/v1/secrets")),
        s.req("GET", "/v1/unknown"),
        s.http.get(s.url("/healthz")),
        s.http.get(s.url("/metrics")),
        s.req("DELETE", "/v1/random-password"),
        s.req("POST", "/v1/random-password")
            .json(&json!({"password_length": 0})),
        s.req("POST", "/v1/secrets")
            .json(&json!({"name": "rid/big", "secret_string": "x".repeat(65_537)})),
    ];
    let mut seen = std::collections::HashSet::new();
    for r in requests {
        let resp = r.send().unwrap();
        let id = resp
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_else(|| panic!("no x-request-id on {} {}", resp.status(), resp.url()))
            .to_string();
        assert!(!id.is_empty());
        assert!(seen.insert(id.clone()), "request id {id} repeated");
    }
    // A request id sent by the client comes back.
    let resp = s
        .http
        .get(s.url("/healthz"))
        .header("x-request-id", "trace-me-42")
        .send()
        .unwrap();
    assert_eq!(
        resp.headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok()),
        Some("trace-me-42")
    );
}

// ------------------------------------------------------------------------------ regions

#[test]
fn secrets_are_isolated_per_region() {
    let s = Server::start_with(Opts {
        env: vec![("COFFER_REGIONS".into(), "local,eu".into())],
        ..Opts::default()
    });
    let (st, b) = call_in(
        &s,
        "eu",
        "POST",
        "/v1/secrets",
        Some(json!({"name": "shared/name", "secret_string": "in-eu"})),
    );
    assert_eq!(st, 201, "{b}");
    let eu_arn = b["arn"].as_str().unwrap().to_string();
    assert!(
        eu_arn.starts_with("arn:coffer:secretsmanager:eu:secret:shared/name-"),
        "{eu_arn}"
    );

    let (st, b) = get_value(&s, "shared/name", "");
    assert_error(st, &b, 404, "ResourceNotFound");
    let (st, b) = get_value(&s, &eu_arn, "");
    assert_error(st, &b, 404, "ResourceNotFound");
    let (st, b) = call_in(&s, "eu", "GET", &secret_path("shared/name", "/value"), None);
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["secret_string"], "in-eu");
    let (st, b) = call_in(&s, "eu", "GET", &secret_path(&eu_arn, "/value"), None);
    assert_eq!(st, 200, "{b}");
    let (st, b) = call_in(&s, "eu", "GET", "/v1/secrets", None);
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["secrets"][0]["region"], "eu");

    // The same name is free in the default region.
    create_string(&s, "shared/name", "in-local");
    assert_eq!(read_string(&s, "shared/name", ""), "in-local");
    let (st, b) = call_in(
        &s,
        "local",
        "GET",
        &secret_path("shared/name", "/value"),
        None,
    );
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["secret_string"], "in-local");
    assert_eq!(list_names(&s, ""), ["shared/name"]);

    let (st, b) = call_in(
        &s,
        "mars",
        "GET",
        &secret_path("shared/name", "/value"),
        None,
    );
    assert_error(st, &b, 400, "InvalidParameter");
    let (st, b) = call_in(&s, "Not A Region", "GET", "/v1/secrets", None);
    assert_error(st, &b, 400, "InvalidParameter");
}

// ------------------------------------------------------------------------------ system routes

#[test]
fn health_and_readiness_answer_without_a_token() {
    let s = Server::start();
    for (path, status) in [("/healthz", "ok"), ("/readyz", "ready")] {
        let (st, b) = split(s.http.get(s.url(path)).send().unwrap());
        assert_eq!(st, 200, "{path}: {b}");
        assert_eq!(b["status"], status, "{b}");
        assert!(b["version"].as_str().is_some_and(|v| !v.is_empty()), "{b}");
    }
}

#[test]
fn metrics_count_requests_by_route_template() {
    let s = Server::start();
    create_string(&s, "metrics/probe-name", "v");
    read_string(&s, "metrics/probe-name", "");
    let r = s.http.get(s.url("/metrics")).send().unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let text = r.text().unwrap();
    let line = text
        .lines()
        .find(|l| {
            l.starts_with("coffer_http_requests_total{")
                && l.contains(r#"route="/v1/secrets/{id}/value""#)
                && l.contains(r#"method="GET""#)
                && l.contains(r#"status="200""#)
        })
        .unwrap_or_else(|| panic!("no request counter for GET /v1/secrets/{{id}}/value:\n{text}"));
    assert!(line.ends_with(" 1"), "{line}");
    assert!(text.contains(r#"route="/v1/secrets""#), "{text}");
    assert!(
        !text.contains("probe-name"),
        "metrics expose a secret name:\n{text}"
    );
}

/// (method, path) of every route in docs/rest-routes.md.
fn documented_routes() -> Vec<(String, String)> {
    let doc = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/rest-routes.md"),
    )
    .expect("docs/rest-routes.md");
    let mut out = Vec::new();
    for line in doc.lines() {
        let cols: Vec<&str> = line.split('|').map(str::trim).collect();
        if cols.len() < 3 || !["GET", "POST", "PUT", "PATCH", "DELETE"].contains(&cols[1]) {
            continue;
        }
        for p in cols[2].split(", ") {
            let p = p.split(['?', ' ']).next().unwrap_or(p);
            out.push((cols[1].to_lowercase(), p.to_string()));
        }
    }
    out
}

#[test]
fn openapi_document_lists_every_documented_route() {
    let s = Server::start();
    let r = s.http.get(s.url("/openapi.json")).send().unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let api: Value = serde_json::from_str(&r.text().unwrap()).expect("openapi.json is JSON");
    assert!(
        api["openapi"].as_str().is_some_and(|v| v.starts_with("3.")),
        "{}",
        api["openapi"]
    );
    let routes = documented_routes();
    assert!(
        routes.len() >= 40,
        "parsed only {} routes from the docs",
        routes.len()
    );
    assert!(routes.contains(&("get".into(), "/v1/secrets/{id}/value".into())));
    assert!(routes.contains(&("post".into(), "/v1/kms/decrypt".into())));
    assert!(routes.contains(&("get".into(), "/readyz".into())));
    for (method, path) in routes {
        assert!(
            api["paths"][&path][&method].is_object(),
            "openapi.json lacks {method} {path}"
        );
    }
}
