//! The audit log, end to end: every `/v1` request appears exactly once, in order, with the
//! right decision, status, principal and KMS key; no secret, plaintext, data key or token
//! is ever recorded; editing, deleting or swapping a stored record makes
//! `coffer audit verify --data-dir` fail naming it; an unwritable audit sink fails
//! requests closed.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine;
use common::{cli, coffer_bin, enc, Opts, Server};
use serde_json::{json, Value};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// One request of a scripted session and what its audit record must say.
struct Expect {
    request_id: String,
    action: &'static str,
    decision: &'static str,
    status: u16,
    principal: Option<String>,
    resource: Option<String>,
    /// (key id, key version) expected in `keys`.
    keys: Vec<(String, u64)>,
}

/// Sends a request with `token` (or none); returns (status, JSON body, x-request-id).
fn send(
    s: &Server,
    token: Option<&str>,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value, String) {
    let m = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let mut r = s.http.request(m, s.url(path));
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    if let Some(b) = body {
        r = r.json(&b);
    }
    let resp = r.send().expect("send");
    let id = resp
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .expect("x-request-id on every response")
        .to_string();
    let (status, body) = common::split(resp);
    (status, body, id)
}

/// Every record of the log, oldest first, paging through `GET /v1/audit` — except the
/// records of these paging requests themselves (each is appended as it answers).
fn all_records(s: &Server) -> Vec<Value> {
    let mut out = Vec::new();
    let mut own = Vec::new();
    let mut next: Option<String> = None;
    loop {
        let mut path = "/v1/audit?order=asc&max_results=7".to_string();
        if let Some(t) = &next {
            path.push_str(&format!("&next_token={t}"));
        }
        let (st, body, id) = send(s, Some(&s.token), "GET", &path, None);
        assert_eq!(st, 200, "{body}");
        own.push(id);
        out.extend(body["records"].as_array().expect("records").iter().cloned());
        match body["next_token"].as_str() {
            Some(t) => next = Some(t.to_string()),
            None => break,
        }
    }
    out.retain(|r| !own.iter().any(|id| r["request_id"] == json!(id)));
    out
}

/// Values a session used that must never reach the audit log.
struct Session {
    expected: Vec<Expect>,
    secrets: Vec<String>,
}

/// A mixed session: creates, reads, writes, a 404, a 401 with a bad token, a 403 by a
/// principal without permits, KMS calls. Returns what each record must say and every
/// sensitive string used or returned.
fn scripted_session(s: &Server) -> Session {
    let admin = s.token.clone();
    let admin_p = Some("admin".to_string());
    let mut ex = Vec::new();
    let mut secrets = vec![admin.clone()];
    let v1 = format!("first-secret-value-{}", uuid::Uuid::new_v4().simple());
    let v2 = format!("second-secret-value-{}", uuid::Uuid::new_v4().simple());
    let plain = format!("kms-plaintext-{}", uuid::Uuid::new_v4().simple());
    secrets.extend([v1.clone(), v2.clone(), plain.clone(), B64.encode(&plain)]);
    let res = |name: &str| Some(format!("secret:local/{name}"));

    // Create a secret (its data key is wrapped by the region's default key, created now).
    let (st, b, id) = send(
        s,
        Some(&admin),
        "POST",
        "/v1/secrets",
        Some(json!({"name": "app/audit/db", "secret_string": v1})),
    );
    assert_eq!(st, 201, "{b}");
    let created = ex.len();
    ex.push(Expect {
        request_id: id,
        action: "CreateSecret",
        decision: "allow",
        status: 201,
        principal: admin_p.clone(),
        resource: res("app/audit/db"),
        keys: vec![],
    });

    // Read it.
    let (st, b, id) = send(
        s,
        Some(&admin),
        "GET",
        &format!("/v1/secrets/{}/value", enc("app/audit/db")),
        None,
    );
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["secret_string"], json!(v1));
    let read1 = ex.len();
    ex.push(Expect {
        request_id: id,
        action: "GetSecretValue",
        decision: "allow",
        status: 200,
        principal: admin_p.clone(),
        resource: res("app/audit/db"),
        keys: vec![],
    });

    // A new version.
    let (st, b, id) = send(
        s,
        Some(&admin),
        "PUT",
        &format!("/v1/secrets/{}/value", enc("app/audit/db")),
        Some(json!({"secret_string": v2})),
    );
    assert_eq!(st, 200, "{b}");
    let put = ex.len();
    ex.push(Expect {
        request_id: id,
        action: "PutSecretValue",
        decision: "allow",
        status: 200,
        principal: admin_p.clone(),
        resource: res("app/audit/db"),
        keys: vec![],
    });

    // A secret that does not exist: allowed by policy, then 404.
    let (st, b, id) = send(
        s,
        Some(&admin),
        "GET",
        &format!("/v1/secrets/{}/value", enc("app/audit/missing")),
        None,
    );
    assert_eq!(st, 404, "{b}");
    ex.push(Expect {
        request_id: id,
        action: "GetSecretValue",
        decision: "allow",
        status: 404,
        principal: admin_p.clone(),
        resource: res("app/audit/missing"),
        keys: vec![],
    });

    // A bad token: 401, no principal.
    let bad = "cft_0123456789abcdef_not-a-real-secret-part";
    secrets.push(bad.to_string());
    let (st, b, id) = send(
        s,
        Some(bad),
        "GET",
        &format!("/v1/secrets/{}/value", enc("app/audit/db")),
        None,
    );
    assert_eq!(st, 401, "{b}");
    ex.push(Expect {
        request_id: id,
        action: "GetSecretValue",
        decision: "unauthenticated",
        status: 401,
        principal: None,
        resource: None,
        keys: vec![],
    });

    // No token at all.
    let (st, b, id) = send(s, None, "GET", "/v1/keys", None);
    assert_eq!(st, 401, "{b}");
    ex.push(Expect {
        request_id: id,
        action: "ListKeys",
        decision: "unauthenticated",
        status: 401,
        principal: None,
        resource: None,
        keys: vec![],
    });

    // A token for a principal no policy permits anything.
    let (st, b, id) = send(
        s,
        Some(&admin),
        "POST",
        "/v1/tokens",
        Some(json!({"principal": "nobody"})),
    );
    assert_eq!(st, 201, "{b}");
    let nobody = b["token"].as_str().expect("token").to_string();
    secrets.push(nobody.clone());
    ex.push(Expect {
        request_id: id,
        action: "CreateToken",
        decision: "allow",
        status: 201,
        principal: admin_p.clone(),
        resource: Some("account:local".into()),
        keys: vec![],
    });
    let (st, b, id) = send(
        s,
        Some(&nobody),
        "GET",
        &format!("/v1/secrets/{}/value", enc("app/audit/db")),
        None,
    );
    assert_eq!(st, 403, "{b}");
    assert!(!b.to_string().contains(&v2));
    ex.push(Expect {
        request_id: id,
        action: "GetSecretValue",
        decision: "deny",
        status: 403,
        principal: Some("nobody".into()),
        resource: res("app/audit/db"),
        keys: vec![],
    });

    // KMS: a key, Encrypt, Decrypt, a data key.
    let (st, b, id) = send(
        s,
        Some(&admin),
        "POST",
        "/v1/keys",
        Some(json!({"description": "audit test key"})),
    );
    assert_eq!(st, 201, "{b}");
    let key = b["key_id"].as_str().expect("key id").to_string();
    ex.push(Expect {
        request_id: id,
        action: "CreateKey",
        decision: "allow",
        status: 201,
        principal: admin_p.clone(),
        resource: Some("account:local".into()),
        keys: vec![],
    });
    let key_res = Some(format!("key:local/{key}"));
    let (st, b, id) = send(
        s,
        Some(&admin),
        "POST",
        &format!("/v1/keys/{key}/encrypt"),
        Some(json!({"plaintext": B64.encode(&plain), "encryption_context": {"app": "audit"}})),
    );
    assert_eq!(st, 200, "{b}");
    let blob = b["ciphertext_blob"].as_str().expect("blob").to_string();
    secrets.push(blob.clone());
    ex.push(Expect {
        request_id: id,
        action: "Encrypt",
        decision: "allow",
        status: 200,
        principal: admin_p.clone(),
        resource: key_res.clone(),
        keys: vec![(key.clone(), 1)],
    });
    let (st, b, id) = send(
        s,
        Some(&admin),
        "POST",
        "/v1/kms/decrypt",
        Some(json!({"ciphertext_blob": blob, "encryption_context": {"app": "audit"}})),
    );
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["plaintext"], json!(B64.encode(&plain)));
    ex.push(Expect {
        request_id: id,
        action: "Decrypt",
        decision: "allow",
        status: 200,
        principal: admin_p.clone(),
        resource: key_res.clone(),
        keys: vec![(key.clone(), 1)],
    });
    let (st, b, id) = send(
        s,
        Some(&admin),
        "POST",
        &format!("/v1/keys/{key}/data-key"),
        Some(json!({})),
    );
    assert_eq!(st, 200, "{b}");
    secrets.push(b["plaintext"].as_str().expect("data key").to_string());
    secrets.push(b["ciphertext_blob"].as_str().expect("wrapped").to_string());
    ex.push(Expect {
        request_id: id,
        action: "GenerateDataKey",
        decision: "allow",
        status: 200,
        principal: admin_p.clone(),
        resource: key_res.clone(),
        keys: vec![(key.clone(), 1)],
    });

    // Rotating the key makes the next Encrypt use version 2.
    let (st, b, id) = send(
        s,
        Some(&admin),
        "POST",
        &format!("/v1/keys/{key}/rotate"),
        None,
    );
    assert_eq!(st, 200, "{b}");
    ex.push(Expect {
        request_id: id,
        action: "RotateKeyOnDemand",
        decision: "allow",
        status: 200,
        principal: admin_p.clone(),
        resource: key_res.clone(),
        keys: vec![],
    });
    let (st, b, id) = send(
        s,
        Some(&admin),
        "POST",
        &format!("/v1/keys/{key}/encrypt"),
        Some(json!({"plaintext": B64.encode(&plain)})),
    );
    assert_eq!(st, 200, "{b}");
    secrets.push(b["ciphertext_blob"].as_str().expect("blob").to_string());
    ex.push(Expect {
        request_id: id,
        action: "Encrypt",
        decision: "allow",
        status: 200,
        principal: admin_p.clone(),
        resource: key_res.clone(),
        keys: vec![(key.clone(), 2)],
    });

    // Which key wraps the secrets' data keys: the region's default key.
    let (st, b, id) = send(
        s,
        Some(&admin),
        "GET",
        &format!("/v1/keys/{}", enc("alias/coffer/secretsmanager")),
        None,
    );
    assert_eq!(st, 200, "{b}");
    let default_key = b["key_id"].as_str().expect("default key").to_string();
    ex.push(Expect {
        request_id: id,
        action: "DescribeKey",
        decision: "allow",
        status: 200,
        principal: admin_p.clone(),
        resource: Some(format!("key:local/{default_key}")),
        keys: vec![],
    });
    for i in [created, read1, put] {
        ex[i].keys = vec![(default_key.clone(), 1)];
    }
    Session {
        expected: ex,
        secrets,
    }
}

fn check_record(r: &Value, e: &Expect) {
    let ctx = format!("record {r}");
    assert_eq!(r["action"], json!(e.action), "{ctx}");
    assert_eq!(r["decision"], json!(e.decision), "{ctx}");
    assert_eq!(r["status"], json!(e.status), "{ctx}");
    assert_eq!(r["principal"].as_str(), e.principal.as_deref(), "{ctx}");
    assert_eq!(r["resource"].as_str(), e.resource.as_deref(), "{ctx}");
    assert_eq!(
        r["region"].as_str().is_some(),
        e.principal.is_some(),
        "{ctx}"
    );
    assert_eq!(r["source_ip"], json!("127.0.0.1"), "{ctx}");
    let keys: Vec<(String, u64)> = r["keys"]
        .as_array()
        .map(|ks| {
            ks.iter()
                .map(|k| {
                    (
                        k["key_id"].as_str().unwrap_or_default().to_string(),
                        k["key_version"].as_u64().unwrap_or_default(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(keys, e.keys, "{ctx}");
    match e.decision {
        "allow" => assert_eq!(r["policies"], json!(["admin-all"]), "{ctx}"),
        "deny" | "unauthenticated" => {
            assert!(r["reason"].as_str().is_some_and(|s| !s.is_empty()), "{ctx}")
        }
        _ => {}
    }
    if e.principal.is_some() {
        assert!(r["token_id"].as_str().is_some(), "{ctx}");
    } else {
        assert!(r.get("token_id").is_none(), "{ctx}");
    }
    if e.status >= 400 {
        assert!(r["error_code"].as_str().is_some(), "{ctx}");
    } else {
        assert!(r.get("error_code").is_none(), "{ctx}");
    }
}

#[test]
fn every_request_of_a_session_is_audited_exactly_once_in_order() {
    let s = Server::start();
    let session = scripted_session(&s);
    let records = all_records(&s);
    // Nothing but the session's requests: /readyz polls are not audited.
    let ids: Vec<&str> = records
        .iter()
        .map(|r| r["request_id"].as_str().unwrap_or_default())
        .collect();
    let want: Vec<&str> = session
        .expected
        .iter()
        .map(|e| e.request_id.as_str())
        .collect();
    assert_eq!(ids, want, "the log holds each request once, in order");
    for (i, (r, e)) in records.iter().zip(&session.expected).enumerate() {
        assert_eq!(r["seq"], json!(i + 1));
        check_record(r, e);
    }
    // The denial names the principal's token by id, never the token.
    let denied = &records[7];
    let token_id = denied["token_id"].as_str().unwrap_or_default();
    assert!(!token_id.is_empty() && !token_id.starts_with("cft_"));

    // The paging requests above are recorded too, after the session.
    let (st, body) = s.call("GET", "/v1/audit?max_results=1", None);
    assert_eq!(st, 200);
    assert_eq!(body["records"][0]["action"], "GetAuditLog");
    assert!(body["records"][0]["seq"].as_u64().unwrap() > records.len() as u64);

    // Filters, through the CLI.
    let (code, out, err) = cli(
        &s,
        &[
            "audit",
            "query",
            "--principal",
            "nobody",
            "--decision",
            "deny",
            "--output",
            "json",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let found: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(found.as_array().map(Vec::len), Some(1), "{out}");
    assert_eq!(
        found[0]["request_id"],
        json!(session.expected[7].request_id)
    );
    let (code, out, err) = cli(&s, &["audit", "query", "--action", "Encrypt"]);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(lines[0].contains("#2") && lines[1].contains("#1"), "{out}");
    let (code, out, err) = cli(&s, &["audit", "tail", "-n", "3"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.lines().count(), 3, "{out}");
    let (code, out, err) = cli(&s, &["audit", "verify"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("OK:"), "{out}");
}

#[test]
fn audit_records_never_hold_secrets_tokens_or_plaintext() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let file = tmp.path().join("audit.jsonl");
    let s = Server::start_with(Opts {
        env: vec![("COFFER_AUDIT_FILE".into(), file.display().to_string())],
        ..Opts::default()
    });
    let session = scripted_session(&s);
    let records = all_records(&s);
    assert!(records.len() >= session.expected.len());
    let api_text = serde_json::to_string(&records).expect("json");
    let file_text = std::fs::read_to_string(&file).expect("audit file");
    for secret in &session.secrets {
        assert!(
            !api_text.contains(secret.as_str()),
            "GET /v1/audit leaks {secret:?}"
        );
        assert!(
            !file_text.contains(secret.as_str()),
            "the audit file leaks {secret:?}"
        );
    }
    // The mirror holds the same records, one JSON object per line.
    let lines: Vec<Value> = file_text
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON record per line"))
        .collect();
    assert!(lines.len() >= records.len());
    for (l, r) in lines.iter().zip(&records) {
        assert_eq!(l["seq"], r["seq"]);
        assert_eq!(l["hash"], r["hash"]);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
}

/// Runs `coffer audit verify --data-dir DIR`; returns (exit code, stdout, stderr).
fn verify_offline(dir: &Path) -> (i32, String, String) {
    let out = Command::new(coffer_bin())
        .args(["audit", "verify", "--data-dir"])
        .arg(dir)
        .env_remove("COFFER_TOKEN")
        .env_remove("COFFER_ADDR")
        .output()
        .expect("run coffer");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

/// The stopped server's audit segment (a dozen records fit in the first one).
fn segment(dir: &Path) -> PathBuf {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir.join("audit"))
        .expect("audit directory")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .collect();
    files.sort();
    assert_eq!(files.len(), 1, "one segment: {files:?}");
    files.remove(0)
}

/// The records of the stopped server's log, as stored (one JSON record per line).
fn stored_lines(dir: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(segment(dir)).expect("read segment");
    // A server that exits leaves the zeros it wrote ahead of the lines; they end the log.
    text.split('\0')
        .next()
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// Rewrites the stopped server's log with `change` applied to its lines.
fn tamper(dir: &Path, change: impl FnOnce(&mut Vec<String>)) {
    let mut lines = stored_lines(dir);
    change(&mut lines);
    let mut text = lines.join("\n");
    text.push('\n');
    std::fs::write(segment(dir), text).expect("write segment");
}

fn assert_verify_fails_at(dir: &Path, seq: u64, kind: &str) {
    let (code, out, err) = verify_offline(dir);
    assert_ne!(code, 0, "verification must fail\n{out}\n{err}");
    assert!(
        err.contains(&format!("record {seq} ({kind})")),
        "should name record {seq} as {kind}: {err}"
    );
}

#[test]
fn editing_deleting_or_swapping_a_stored_record_fails_verify_naming_it() {
    let mut s = Server::start();
    for i in 0..6 {
        let (st, _) = s.call(
            "POST",
            "/v1/secrets",
            Some(json!({"name": format!("app/tamper/{i}"), "secret_string": "v"})),
        );
        assert_eq!(st, 201);
        let (st, _) = s.call(
            "GET",
            &format!("/v1/secrets/{}/value", enc(&format!("app/tamper/{i}"))),
            None,
        );
        assert_eq!(st, 200);
    }
    assert!(s.terminate(), "server did not stop cleanly");
    let dir: PathBuf = s.data_dir.clone();

    let (code, out, err) = verify_offline(&dir);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("OK: 12 records"), "{out}");

    let original = stored_lines(&dir);
    let restore = |dir: &Path| {
        tamper(dir, |l| l.clone_from(&original));
        assert_eq!(verify_offline(dir).0, 0, "restored log verifies");
    };

    // (a) One field of record 4 edited: its status.
    tamper(&dir, |l| {
        let mut v: Value = serde_json::from_str(&l[3]).expect("json");
        v["status"] = json!(403);
        l[3] = v.to_string();
    });
    assert_verify_fails_at(&dir, 4, "altered");
    restore(&dir);

    // (b) Record 6 deleted.
    tamper(&dir, |l| {
        l.remove(5);
    });
    assert_verify_fails_at(&dir, 6, "removed");
    restore(&dir);

    // (c) The newest two records cut off: the checkpoint written at shutdown names them.
    tamper(&dir, |l| l.truncate(10));
    assert_verify_fails_at(&dir, 11, "removed");
    restore(&dir);

    // (d) Records 3 and 9 swapped.
    tamper(&dir, |l| l.swap(2, 8));
    assert_verify_fails_at(&dir, 3, "reordered");
    // JSON output names it too.
    let out = Command::new(coffer_bin())
        .args(["audit", "verify", "--output", "json", "--data-dir"])
        .arg(&dir)
        .output()
        .expect("run coffer");
    assert!(!out.status.success());
    let report: Value = serde_json::from_slice(&out.stdout).expect("json report");
    assert_eq!(report["ok"], json!(false));
    assert_eq!(report["first_bad_seq"], json!(3));
    restore(&dir);

    // Restored and restarted: the log continues the same chain.
    let s = s.restart_after(|_| {});
    let (st, _) = s.call("GET", "/v1/secrets/app%2Ftamper%2F0/value", None);
    assert_eq!(st, 200);
    let (st, body) = s.call("POST", "/v1/audit/verify", None);
    assert_eq!(st, 200);
    assert_eq!(body["ok"], json!(true), "{body}");
    assert_eq!(body["records_checked"], json!(13), "{body}");
}

#[test]
fn an_unwritable_audit_sink_fails_requests_closed() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let file = tmp.path().join("audit.jsonl");
    let s = Server::start_with(Opts {
        env: vec![("COFFER_AUDIT_FILE".into(), file.display().to_string())],
        ..Opts::default()
    });
    let value = format!("fail-closed-value-{}", uuid::Uuid::new_v4().simple());
    let (st, _) = s.call(
        "POST",
        "/v1/secrets",
        Some(json!({"name": "app/closed", "secret_string": value})),
    );
    assert_eq!(st, 201);
    let path = "/v1/secrets/app%2Fclosed/value";
    let (st, body) = s.call("GET", path, None);
    assert_eq!(
        (st, body["secret_string"].as_str()),
        (200, Some(value.as_str()))
    );

    // Tests run as root, so permissions would not stop the writer: replace the file by a
    // directory instead.
    std::fs::remove_file(&file).expect("remove audit file");
    std::fs::create_dir(&file).expect("directory in its place");
    for _ in 0..3 {
        let resp = s.req("GET", path).send().expect("send");
        assert_eq!(resp.status().as_u16(), 503);
        let text = resp.text().expect("body");
        assert!(!text.contains(&value), "a secret leaked: {text}");
        let body: Value = serde_json::from_str(&text).expect("json error");
        assert_eq!(body["error"]["code"], "AuditUnavailable", "{body}");
    }
    // Denials and failed logins are not answered either.
    let (st, body) = common::split(s.req_as("cft_0123_bad", "GET", path).send().expect("send"));
    assert_eq!((st, common::code(&body)), (503, "AuditUnavailable"));
    // Health checks are not audited and keep answering.
    let st = s.http.get(s.url("/healthz")).send().expect("send").status();
    assert_eq!(st.as_u16(), 200);

    // Writable again: requests succeed, and the store's chain is intact.
    std::fs::remove_dir(&file).expect("remove directory");
    let (st, body) = s.call("GET", path, None);
    assert_eq!(
        (st, body["secret_string"].as_str()),
        (200, Some(value.as_str()))
    );
    let (st, body) = s.call("POST", "/v1/audit/verify", None);
    assert_eq!(st, 200);
    assert_eq!(body["ok"], json!(true), "{body}");
    assert!(file.is_file(), "the audit file is recreated");
}
