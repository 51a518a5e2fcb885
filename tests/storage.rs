//! What the store promises: acknowledged writes survive `kill -9`, no plaintext at rest,
//! ciphertext bound to its secret and version.

mod common;

use std::collections::HashSet;
use std::path::Path;

use coffer_store::{Batch, SledStore, Store};
use common::{code, enc, Server};
use serde_json::{json, Value};

fn random_value(i: usize) -> String {
    format!("v{i:04}-{}", uuid::Uuid::new_v4().simple())
}

fn create(s: &Server, name: &str, value: &str) {
    let (st, body) = s.call(
        "POST",
        "/v1/secrets",
        Some(json!({"name": name, "secret_string": value})),
    );
    assert_eq!(st, 201, "{body}");
}

fn get_value(s: &Server, name: &str) -> (u16, Value) {
    s.call("GET", &format!("/v1/secrets/{}/value", enc(name)), None)
}

fn kill9(child: &mut std::process::Child) {
    let _ = child.kill(); // SIGKILL
}

#[test]
fn acknowledged_writes_survive_kill_9_and_restart() {
    let s = Server::start();
    let mut expected = Vec::new();
    for i in 0..40 {
        let name = format!("durable/{i}");
        let v = random_value(i);
        create(&s, &name, &v);
        expected.push((name, v));
    }
    // New versions too: CURRENT moved must survive.
    for (name, v) in expected.iter_mut().take(10) {
        let nv = format!("{v}-2");
        let (st, b) = s.call(
            "PUT",
            &format!("/v1/secrets/{}/value", enc(name)),
            Some(json!({"secret_string": nv})),
        );
        assert_eq!(st, 200, "{b}");
        *v = nv;
    }
    let (st, key) = s.call("POST", "/v1/keys", Some(json!({"description": "k"})));
    assert_eq!(st, 201);
    let key_id = key["key_id"].as_str().unwrap().to_string();

    let s = s.restart_after(kill9);
    for (name, v) in &expected {
        let (st, b) = get_value(&s, name);
        assert_eq!(st, 200, "{name}: {b}");
        assert_eq!(b["secret_string"], json!(v), "{name}");
    }
    let (st, _) = s.call("GET", &format!("/v1/keys/{key_id}"), None);
    assert_eq!(st, 200);
}

/// Every file under the data directory, concatenated.
fn all_bytes(dir: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.extend(std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

#[test]
fn no_secret_value_is_stored_in_plaintext() {
    let mut s = Server::start();
    let mut values = Vec::new();
    for i in 0..1000 {
        let v = random_value(i);
        create(&s, &format!("at-rest/{i}"), &v);
        values.push(v);
    }
    // Binary values too.
    use base64::Engine;
    let bin = format!("binary-marker-{}", uuid::Uuid::new_v4().simple());
    let (st, _) = s.call(
        "POST",
        "/v1/secrets",
        Some(json!({"name": "at-rest/binary",
            "secret_binary": base64::engine::general_purpose::STANDARD.encode(&bin)})),
    );
    assert_eq!(st, 201);
    values.push(bin);
    assert!(s.terminate(), "server did not stop cleanly");

    let bytes = all_bytes(&s.data_dir);
    assert!(bytes.len() > 10_000, "the data directory holds data");
    // Every value starts with a distinct 12-byte prefix; slide a 12-byte window.
    let prefixes: HashSet<&[u8]> = values.iter().map(|v| &v.as_bytes()[..12]).collect();
    assert_eq!(prefixes.len(), values.len());
    let mut hits = Vec::new();
    for w in bytes.windows(12) {
        if prefixes.contains(w) {
            hits.push(String::from_utf8_lossy(w).to_string());
        }
    }
    assert!(hits.is_empty(), "plaintext found at rest: {hits:?}");
    // The scan can find things: the secret names are stored (metadata, not secret).
    assert!(bytes.windows(9).any(|w| w == b"at-rest/1"));
}

/// (uid, current version id) of a secret, read from the store.
fn uid_and_current(store: &SledStore, name: &str) -> (String, String) {
    let raw = store
        .get(format!("r/local/secret/{name}").as_bytes())
        .unwrap()
        .expect("secret record");
    let rec: Value = serde_json::from_slice(&raw).unwrap();
    (
        rec["uid"].as_str().unwrap().to_string(),
        rec["stages"]["AWSCURRENT"].as_str().unwrap().to_string(),
    )
}

#[test]
fn ciphertext_moved_to_another_secret_or_version_fails_integrity() {
    let mut s = Server::start();
    create(&s, "bind/a", "value-of-secret-a");
    create(&s, "bind/b", "value-of-secret-b");
    let (st, _) = s.call(
        "PUT",
        "/v1/secrets/bind%2Fb/value",
        Some(json!({"secret_string": "second-version-of-b"})),
    );
    assert_eq!(st, 200);
    assert!(s.terminate());

    {
        let store = SledStore::open(&s.data_dir).unwrap();
        let (uid_a, cur_a) = uid_and_current(&store, "bind/a");
        let (uid_b, cur_b) = uid_and_current(&store, "bind/b");
        let ka = format!("r/local/version/{uid_a}/{cur_a}");
        let kb = format!("r/local/version/{uid_b}/{cur_b}");
        let a = store.get(ka.as_bytes()).unwrap().unwrap();
        // B's current version now holds A's ciphertext (data key, nonce, value).
        let mut batch = Batch::default();
        batch.put(kb.as_bytes(), &a);
        // B's previous version gets B's current ciphertext: same secret, other version.
        let rec: Value =
            serde_json::from_slice(&store.get(b"r/local/secret/bind/b").unwrap().unwrap()).unwrap();
        let prev_b = rec["stages"]["AWSPREVIOUS"].as_str().unwrap();
        let b_cur = store.get(kb.as_bytes()).unwrap().unwrap();
        batch.put(
            format!("r/local/version/{uid_b}/{prev_b}").as_bytes(),
            &b_cur,
        );
        store.apply(&batch).unwrap();
        futures_lite_block_on(store.sync()).unwrap();
    }

    let s = s.restart_after(|_| {});
    let (st, body) = get_value(&s, "bind/b");
    assert_eq!(st, 422, "{body}");
    assert_eq!(code(&body), "IntegrityCheckFailed");
    assert!(!body.to_string().contains("value-of-secret-a"));
    let (st, body) = s.call(
        "GET",
        "/v1/secrets/bind%2Fb/value?version_stage=AWSPREVIOUS",
        None,
    );
    assert_eq!(st, 422, "{body}");
    assert!(!body.to_string().contains("second-version-of-b"));
    // The untouched secret still reads.
    let (st, body) = get_value(&s, "bind/a");
    assert_eq!(st, 200);
    assert_eq!(body["secret_string"], "value-of-secret-a");
}

/// Minimal executor for the store's sync future (no tokio runtime in this test).
fn futures_lite_block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

#[test]
fn sigterm_stops_cleanly_and_keeps_data() {
    let mut s = Server::start();
    create(&s, "shutdown/x", "kept");
    assert!(s.terminate(), "exit status after SIGTERM");
    let s = s.restart_after(|_| {});
    let (st, b) = get_value(&s, "shutdown/x");
    assert_eq!(st, 200);
    assert_eq!(b["secret_string"], "kept");
}

#[test]
fn first_start_writes_root_key_and_admin_token_private() {
    use std::os::unix::fs::PermissionsExt;
    let s = Server::start();
    for f in ["root.key", "admin-token"] {
        let mode = std::fs::metadata(s.data_dir.join(f))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600, "{f}");
    }
    let fmt = std::fs::read_to_string(s.data_dir.join("FORMAT")).unwrap();
    assert_eq!(fmt.trim(), "coffer-data-format 2");
}
