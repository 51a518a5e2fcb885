//! The shipped example policies (`policies/`), over real HTTP: a user of each team (and
//! one in no team) tries each action on a dev and a prod secret, the payments key
//! (tag `purpose=payments`) and an ordinary key. The table below reads like the policy
//! guide in `policies/README.md`; every cell must be exactly 2xx or exactly 403.

mod common;

use std::collections::BTreeSet;

use base64::Engine;
use common::{code, enc, split, Server};
use serde_json::{json, Value};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// A user of each team, as in `policies/entities.json`, and one in no team.
const DEV: &str = "dana";
const OPS: &str = "olga";
const SECURITY: &str = "sasha";
const NO_TEAM: &str = "nobody";

/// What a cell of the matrix acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    DevSecret,
    ProdSecret,
    PaymentsKey,
    OrdinaryKey,
    /// The region (collection operations).
    Region,
}
use Target::*;

const ALLOW: bool = true;
const DENY: bool = false;

/// (user, action, target, allowed?) — the example policies, cell by cell.
const MATRIX: &[(&str, &str, Target, bool)] = &[
    // ---- dev: reads and writes dev/ secrets only (dev-read-write-dev)
    (DEV, "GetSecretValue", DevSecret, ALLOW),
    (DEV, "GetSecretValue", ProdSecret, DENY),
    (DEV, "DescribeSecret", DevSecret, ALLOW),
    (DEV, "DescribeSecret", ProdSecret, DENY),
    (DEV, "PutSecretValue", DevSecret, ALLOW),
    (DEV, "PutSecretValue", ProdSecret, DENY),
    (DEV, "CreateSecret", DevSecret, ALLOW),
    (DEV, "CreateSecret", ProdSecret, DENY),
    (DEV, "DeleteSecret", DevSecret, ALLOW),
    (DEV, "DeleteSecret", ProdSecret, DENY),
    (DEV, "ListSecrets", Region, ALLOW),
    // keys: every team uses and describes keys (teams-use-keys, teams-describe-keys),
    // but only security decrypts with the payments key (payments-decrypt-security-only)
    (DEV, "Encrypt", PaymentsKey, ALLOW),
    (DEV, "Encrypt", OrdinaryKey, ALLOW),
    (DEV, "Decrypt", PaymentsKey, DENY),
    (DEV, "Decrypt", OrdinaryKey, ALLOW),
    (DEV, "GenerateDataKey", PaymentsKey, ALLOW),
    (DEV, "GenerateDataKey", OrdinaryKey, ALLOW),
    (DEV, "DescribeKey", PaymentsKey, ALLOW),
    (DEV, "DescribeKey", OrdinaryKey, ALLOW),
    (DEV, "ListKeys", Region, ALLOW),
    // ---- ops: reads prod and dev (ops-read-prod-and-dev), rotates prod, writes nothing
    (OPS, "GetSecretValue", DevSecret, ALLOW),
    (OPS, "GetSecretValue", ProdSecret, ALLOW),
    (OPS, "DescribeSecret", DevSecret, ALLOW),
    (OPS, "DescribeSecret", ProdSecret, ALLOW),
    (OPS, "PutSecretValue", DevSecret, DENY),
    (OPS, "PutSecretValue", ProdSecret, DENY),
    (OPS, "CreateSecret", DevSecret, DENY),
    (OPS, "CreateSecret", ProdSecret, DENY),
    (OPS, "DeleteSecret", DevSecret, DENY),
    (OPS, "DeleteSecret", ProdSecret, DENY),
    (OPS, "ListSecrets", Region, ALLOW),
    (OPS, "Encrypt", PaymentsKey, ALLOW),
    (OPS, "Encrypt", OrdinaryKey, ALLOW),
    (OPS, "Decrypt", PaymentsKey, DENY),
    (OPS, "Decrypt", OrdinaryKey, ALLOW),
    (OPS, "GenerateDataKey", PaymentsKey, ALLOW),
    (OPS, "GenerateDataKey", OrdinaryKey, ALLOW),
    (OPS, "DescribeKey", PaymentsKey, ALLOW),
    (OPS, "DescribeKey", OrdinaryKey, ALLOW),
    (OPS, "ListKeys", Region, ALLOW),
    // ---- security: no secrets; the only team that decrypts with the payments key
    (SECURITY, "GetSecretValue", DevSecret, DENY),
    (SECURITY, "GetSecretValue", ProdSecret, DENY),
    (SECURITY, "DescribeSecret", DevSecret, DENY),
    (SECURITY, "DescribeSecret", ProdSecret, DENY),
    (SECURITY, "PutSecretValue", DevSecret, DENY),
    (SECURITY, "PutSecretValue", ProdSecret, DENY),
    (SECURITY, "CreateSecret", DevSecret, DENY),
    (SECURITY, "CreateSecret", ProdSecret, DENY),
    (SECURITY, "DeleteSecret", DevSecret, DENY),
    (SECURITY, "DeleteSecret", ProdSecret, DENY),
    (SECURITY, "ListSecrets", Region, ALLOW),
    (SECURITY, "Encrypt", PaymentsKey, ALLOW),
    (SECURITY, "Encrypt", OrdinaryKey, ALLOW),
    (SECURITY, "Decrypt", PaymentsKey, ALLOW),
    (SECURITY, "Decrypt", OrdinaryKey, ALLOW),
    (SECURITY, "GenerateDataKey", PaymentsKey, ALLOW),
    (SECURITY, "GenerateDataKey", OrdinaryKey, ALLOW),
    (SECURITY, "DescribeKey", PaymentsKey, ALLOW),
    (SECURITY, "DescribeKey", OrdinaryKey, ALLOW),
    (SECURITY, "ListKeys", Region, ALLOW),
    // ---- a user in no team: default deny, everywhere
    (NO_TEAM, "GetSecretValue", DevSecret, DENY),
    (NO_TEAM, "DescribeSecret", ProdSecret, DENY),
    (NO_TEAM, "PutSecretValue", DevSecret, DENY),
    (NO_TEAM, "CreateSecret", DevSecret, DENY),
    (NO_TEAM, "DeleteSecret", DevSecret, DENY),
    (NO_TEAM, "ListSecrets", Region, DENY),
    (NO_TEAM, "Encrypt", OrdinaryKey, DENY),
    (NO_TEAM, "Decrypt", OrdinaryKey, DENY),
    (NO_TEAM, "GenerateDataKey", OrdinaryKey, DENY),
    (NO_TEAM, "DescribeKey", PaymentsKey, DENY),
    (NO_TEAM, "ListKeys", Region, DENY),
    // ---- admin (admin-all) is bound by the payments forbid too
    ("admin", "Decrypt", PaymentsKey, DENY),
    ("admin", "Decrypt", OrdinaryKey, ALLOW),
    ("admin", "Encrypt", PaymentsKey, ALLOW),
    ("admin", "DeleteSecret", DevSecret, ALLOW),
];

const DEV_SECRET: &str = "dev/app/db-password";
const PROD_SECRET: &str = "prod/app/db-password";
const SECRET_VALUE: &str = "hunter2-do-not-leak";

struct World {
    s: Server,
    /// user -> token
    tokens: Vec<(String, String)>,
    payments_key: String,
    ordinary_key: String,
    /// key id -> a ciphertext made with it (by admin)
    payments_blob: String,
    ordinary_blob: String,
}

fn ok(st: u16, body: &Value) {
    assert!((200..300).contains(&st), "setup failed: {st} {body}");
}

fn world() -> World {
    let s = Server::start();
    for name in [DEV_SECRET, PROD_SECRET] {
        let (st, b) = s.call(
            "POST",
            "/v1/secrets",
            Some(json!({"name": name, "secret_string": SECRET_VALUE})),
        );
        ok(st, &b);
    }
    let key = |tags: Value| {
        let (st, b) = s.call(
            "POST",
            "/v1/keys",
            Some(json!({"description": "matrix", "tags": tags})),
        );
        ok(st, &b);
        b["key_id"].as_str().expect("key_id").to_string()
    };
    let payments_key = key(json!({"purpose": "payments"}));
    let ordinary_key = key(json!({"purpose": "general"}));
    let blob = |key_id: &str| {
        let (st, b) = s.call(
            "POST",
            &format!("/v1/keys/{}/encrypt", enc(key_id)),
            Some(json!({"plaintext": B64.encode("card 4111")})),
        );
        ok(st, &b);
        b["ciphertext_blob"].as_str().expect("blob").to_string()
    };
    let payments_blob = blob(&payments_key);
    let ordinary_blob = blob(&ordinary_key);
    let mut tokens = vec![("admin".to_string(), s.token.clone())];
    for user in [DEV, OPS, SECURITY, NO_TEAM] {
        let (st, b) = s.call("POST", "/v1/tokens", Some(json!({"principal": user})));
        ok(st, &b);
        tokens.push((
            user.to_string(),
            b["token"].as_str().expect("token").to_string(),
        ));
    }
    World {
        s,
        tokens,
        payments_key,
        ordinary_key,
        payments_blob,
        ordinary_blob,
    }
}

impl World {
    fn token(&self, user: &str) -> &str {
        &self
            .tokens
            .iter()
            .find(|(u, _)| u == user)
            .expect("user has a token")
            .1
    }

    fn send(&self, user: &str, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut r = self.s.req_as(self.token(user), method, path);
        if let Some(b) = body {
            r = r.json(&b);
        }
        split(r.send().expect("send"))
    }

    /// Performs `action` on `target` as `user`; `n` makes created names unique.
    fn perform(&self, user: &str, action: &str, target: Target, n: usize) -> (u16, Value) {
        let secret = match target {
            DevSecret => DEV_SECRET,
            ProdSecret => PROD_SECRET,
            _ => "",
        };
        let env = if target == ProdSecret { "prod" } else { "dev" };
        let key = if target == PaymentsKey {
            &self.payments_key
        } else {
            &self.ordinary_key
        };
        let blob = if target == PaymentsKey {
            &self.payments_blob
        } else {
            &self.ordinary_blob
        };
        let secret_path = |rest: &str| format!("/v1/secrets/{}{rest}", enc(secret));
        match action {
            "GetSecretValue" => self.send(user, "GET", &secret_path("/value"), None),
            "DescribeSecret" => self.send(user, "GET", &secret_path(""), None),
            "PutSecretValue" => self.send(
                user,
                "PUT",
                &secret_path("/value"),
                Some(json!({"secret_string": format!("v{n}")})),
            ),
            "CreateSecret" => self.send(
                user,
                "POST",
                "/v1/secrets",
                Some(json!({"name": format!("{env}/matrix/{user}-{n}"), "secret_string": "x"})),
            ),
            "DeleteSecret" => {
                // Each delete gets a secret of its own, made by admin, so the shared
                // secrets stay usable for the other cells.
                let name = format!("{env}/victim/{user}-{n}");
                let (st, b) = self.s.call(
                    "POST",
                    "/v1/secrets",
                    Some(json!({"name": name, "secret_string": "x"})),
                );
                ok(st, &b);
                self.send(
                    user,
                    "DELETE",
                    &format!("/v1/secrets/{}?recovery_window_days=7", enc(&name)),
                    None,
                )
            }
            "ListSecrets" => self.send(user, "GET", "/v1/secrets", None),
            "ListKeys" => self.send(user, "GET", "/v1/keys", None),
            "Encrypt" => self.send(
                user,
                "POST",
                &format!("/v1/keys/{}/encrypt", enc(key)),
                Some(json!({"plaintext": B64.encode("hello")})),
            ),
            "Decrypt" => self.send(
                user,
                "POST",
                "/v1/kms/decrypt",
                Some(json!({"ciphertext_blob": blob})),
            ),
            "GenerateDataKey" => self.send(
                user,
                "POST",
                &format!("/v1/keys/{}/data-key", enc(key)),
                Some(json!({"key_spec": "AES_256"})),
            ),
            "DescribeKey" => self.send(user, "GET", &format!("/v1/keys/{}", enc(key)), None),
            other => panic!("no request for action {other}"),
        }
    }
}

#[test]
fn each_team_gets_exactly_what_the_example_policies_grant() {
    let w = world();
    let mut failures = Vec::new();
    for (n, &(user, action, target, allowed)) in MATRIX.iter().enumerate() {
        let (st, body) = w.perform(user, action, target, n);
        let ok = if allowed {
            (200..300).contains(&st)
        } else {
            st == 403
        };
        if !ok {
            failures.push(format!(
                "{user} {action} {target:?}: expected {}, got {st} {body}",
                if allowed { "2xx" } else { "403" }
            ));
            continue;
        }
        if !allowed {
            // 403 names the action and the resource, and never a secret's contents.
            assert_eq!(code(&body), "AccessDenied", "{body}");
            let message = body["error"]["message"].as_str().unwrap_or_default();
            assert!(message.contains(action), "{user} {action}: {message}");
            let named = match target {
                DevSecret | ProdSecret => message.contains("secret "),
                PaymentsKey => message.contains(&w.payments_key),
                OrdinaryKey => message.contains(&w.ordinary_key),
                Region => message.contains("region "),
            };
            assert!(named, "{user} {action} {target:?}: {message}");
            assert!(!body.to_string().contains(SECRET_VALUE), "{body}");
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cells differ from the policies:\n{}",
        failures.len(),
        MATRIX.len(),
        failures.join("\n")
    );
}

fn names(body: &Value, list: &str, field: &str) -> BTreeSet<String> {
    body[list]
        .as_array()
        .expect("list")
        .iter()
        .map(|item| item[field].as_str().expect("field").to_string())
        .collect()
}

#[test]
fn listings_show_only_what_each_team_may_describe() {
    let w = world();
    let (st, body) = w.send(DEV, "GET", "/v1/secrets", None);
    assert_eq!(st, 200, "{body}");
    assert_eq!(
        names(&body, "secrets", "name"),
        BTreeSet::from([DEV_SECRET.to_string()])
    );
    let (st, body) = w.send(OPS, "GET", "/v1/secrets", None);
    assert_eq!(st, 200, "{body}");
    assert_eq!(
        names(&body, "secrets", "name"),
        BTreeSet::from([DEV_SECRET.to_string(), PROD_SECRET.to_string()])
    );
    let (st, body) = w.send(SECURITY, "GET", "/v1/secrets", None);
    assert_eq!(st, 200, "{body}");
    assert!(names(&body, "secrets", "name").is_empty(), "{body}");
    assert!(!body.to_string().contains(SECRET_VALUE));

    // Every team describes every key, so every team lists both.
    for user in [DEV, OPS, SECURITY] {
        let (st, body) = w.send(user, "GET", "/v1/keys", None);
        assert_eq!(st, 200, "{body}");
        let keys = names(&body, "keys", "key_id");
        assert!(keys.contains(&w.payments_key), "{user}: {body}");
        assert!(keys.contains(&w.ordinary_key), "{user}: {body}");
    }
}

#[test]
fn only_security_reads_payments_plaintext() {
    let w = world();
    let (st, body) = w.send(
        SECURITY,
        "POST",
        "/v1/kms/decrypt",
        Some(json!({"ciphertext_blob": w.payments_blob})),
    );
    assert_eq!(st, 200, "{body}");
    assert_eq!(
        B64.decode(body["plaintext"].as_str().expect("plaintext"))
            .expect("base64"),
        b"card 4111"
    );
    // Re-encrypting under a key the caller may decrypt with is a decrypt too.
    let (st, body) = w.send(
        DEV,
        "POST",
        "/v1/kms/re-encrypt",
        Some(json!({"ciphertext_blob": w.payments_blob, "destination_key_id": w.ordinary_key})),
    );
    assert_eq!(st, 403, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("ReEncryptFrom")),
        "{body}"
    );
    // Nor can admin lift the guard by retagging the key.
    let (st, body) = w.s.call(
        "POST",
        &format!("/v1/keys/{}/untag", enc(&w.payments_key)),
        Some(json!({"tag_keys": ["purpose"]})),
    );
    assert_eq!(st, 403, "{body}");
}

#[test]
fn prod_secrets_are_deleted_only_in_the_change_window() {
    let w = world();
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
        % 86_400;
    // Too close to a window edge to know which side the server's clock is on.
    if [7_200u64, 14_400]
        .iter()
        .any(|edge| secs.abs_diff(*edge) < 60)
    {
        eprintln!("skipped: within a minute of the change window's edge");
        return;
    }
    let in_window = (7_200..14_400).contains(&secs);
    let (st, body) = w.s.call(
        "DELETE",
        &format!("/v1/secrets/{}?recovery_window_days=7", enc(PROD_SECRET)),
        None,
    );
    if in_window {
        assert_eq!(st, 200, "{body}");
    } else {
        assert_eq!(st, 403, "{body}");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains("no-prod-delete-outside-window"),
            "{message}"
        );
    }
}
