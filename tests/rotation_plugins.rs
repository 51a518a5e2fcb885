//! Rotation through the server with plugins that are not databases: the http-api-key
//! rotator against a small third-party API played by this test, and misbehaving plugins
//! that must fail their rotation cleanly while the server stays healthy.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{enc, Opts, Server};
use serde_json::{json, Value};

fn plugin_server(plugins: &[&str]) -> (Server, tempfile::TempDir) {
    let dir = coffer_plugins::testing::plugin_fixture_dir(plugins);
    let s = Server::start_with(Opts {
        extra_args: vec!["--plugin-dir".into(), dir.path().display().to_string()],
        env: vec![("COFFER_ROTATION_TICK_MS".into(), "200".into())],
        ..Opts::default()
    });
    (s, dir)
}

fn create_secret(s: &Server, name: &str, value: &str) {
    let (st, body) = s.call(
        "POST",
        "/v1/secrets",
        Some(json!({"name": name, "secret_string": value})),
    );
    assert_eq!(st, 201, "create {name}: {body}");
}

fn current(s: &Server, name: &str) -> (String, String) {
    let (st, body) = s.call("GET", &format!("/v1/secrets/{}/value", enc(name)), None);
    assert_eq!(st, 200, "{body}");
    (
        body["secret_string"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        body["version_id"].as_str().unwrap_or_default().to_string(),
    )
}

fn describe(s: &Server, name: &str) -> Value {
    let (st, body) = s.call("GET", &format!("/v1/secrets/{}", enc(name)), None);
    assert_eq!(st, 200, "{body}");
    body
}

// ------------------------------------------------------------ a fake third-party API

#[derive(Default)]
struct ApiState {
    /// key id → (api key, name)
    keys: BTreeMap<String, (String, String)>,
    next: u32,
}

/// Plays the REST shape documented in plugins/http-api-key/README.md on a loopback port.
struct FakeApi {
    port: u16,
    state: Arc<Mutex<ApiState>>,
}

impl FakeApi {
    fn start(first_key: &str) -> FakeApi {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let state = Arc::new(Mutex::new(ApiState::default()));
        state
            .lock()
            .unwrap()
            .keys
            .insert("k0".into(), (first_key.into(), "initial".into()));
        let st = state.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let st = st.clone();
                std::thread::spawn(move || serve(conn, &st));
            }
        });
        FakeApi { port, state }
    }

    fn key_ids(&self) -> Vec<String> {
        self.state.lock().unwrap().keys.keys().cloned().collect()
    }
}

fn serve(mut conn: TcpStream, state: &Mutex<ApiState>) {
    let mut reader = BufReader::new(conn.try_clone().expect("clone"));
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = line.split_whitespace();
        let (method, target) = (
            parts.next().unwrap_or("").to_string(),
            parts.next().unwrap_or("").to_string(),
        );
        let mut auth = String::new();
        let mut len = 0usize;
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                match k.to_ascii_lowercase().as_str() {
                    "authorization" => auth = v.trim().trim_start_matches("Bearer ").into(),
                    "content-length" => len = v.trim().parse().unwrap_or(0),
                    _ => {}
                }
            }
        }
        let mut body = vec![0; len];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let (status, out) = handle(state, &method, &target, &auth, &body);
        let text = out.map(|v| v.to_string()).unwrap_or_default();
        let resp = format!(
            "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{text}",
            text.len()
        );
        if conn.write_all(resp.as_bytes()).is_err() {
            return;
        }
    }
}

fn handle(
    state: &Mutex<ApiState>,
    method: &str,
    target: &str,
    auth: &str,
    body: &[u8],
) -> (u16, Option<Value>) {
    let mut st = state.lock().unwrap();
    let Some(caller) = st
        .keys
        .iter()
        .find(|(_, (k, _))| k == auth)
        .map(|(id, _)| id.clone())
    else {
        return (401, Some(json!({"error": "bad key"})));
    };
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    match (method, path) {
        ("GET", "/v1/whoami") => (200, Some(json!({"id": caller}))),
        ("GET", "/v1/keys") => {
            let want = query.strip_prefix("name=").unwrap_or("");
            let keys: Vec<Value> = st
                .keys
                .iter()
                .filter(|(_, (_, n))| want.is_empty() || n == want)
                .map(|(id, (_, n))| json!({"id": id, "name": n}))
                .collect();
            (200, Some(json!({ "keys": keys })))
        }
        ("POST", "/v1/keys") => {
            let req: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
            st.next += 1;
            let id = format!("k{}", st.next);
            let key = format!("sk_{}", uuid::Uuid::new_v4().simple());
            let name = req["name"].as_str().unwrap_or("").to_string();
            st.keys.insert(id.clone(), (key.clone(), name));
            (201, Some(json!({"id": id, "key": key})))
        }
        ("DELETE", p) if p.starts_with("/v1/keys/") => {
            let id = &p["/v1/keys/".len()..];
            if st.keys.remove(id).is_some() {
                (204, None)
            } else {
                (404, None)
            }
        }
        _ => (404, None),
    }
}

#[test]
fn http_api_key_rotation_mints_tests_and_revokes_keys() {
    let api = FakeApi::start("sk_initial");
    let (s, _plugins) = plugin_server(&["http-api-key"]);
    let name = "test/api/acme";
    let value = json!({"base_url": format!("http://127.0.0.1:{}", api.port),
                       "key_id": "k0", "api_key": "sk_initial", "owner": "team-a"});
    create_secret(&s, name, &value.to_string());

    let mut old_id = "k0".to_string();
    for round in 0..2 {
        let (st, body) = if round == 0 {
            s.call(
                "POST",
                &format!("/v1/secrets/{}/rotation?wait=true", enc(name)),
                Some(json!({"plugin": "http-api-key", "schedule": "rate(7 days)"})),
            )
        } else {
            s.call(
                "POST",
                &format!("/v1/secrets/{}/rotate?wait=true", enc(name)),
                None,
            )
        };
        assert_eq!(st, 200, "round {round}: {body}");
        let (cur, _) = current(&s, name);
        let cur: Value = serde_json::from_str(&cur).unwrap();
        let new_id = cur["key_id"].as_str().unwrap().to_string();
        assert_ne!(new_id, old_id);
        assert_eq!(cur["owner"], "team-a", "other fields are carried over");
        // Finish revoked the replaced key: only the new one is left at the service.
        assert_eq!(api.key_ids(), vec![new_id.clone()], "round {round}");
        old_id = new_id;
    }
    // The audit log names the HTTP calls the plugin made, never a key.
    let (_, audit) = s.call("GET", "/v1/audit?max_results=1000", None);
    let text = audit.to_string();
    assert!(
        text.contains("/v1/whoami"),
        "HTTP calls are in the audit trail"
    );
    assert!(!text.contains("sk_"), "no API key in the audit log");
}

// ------------------------------------------------------------------ broken plugins

/// Configures rotation with `plugin`, waits, and checks the rotation failed cleanly:
/// CURRENT unchanged, the error in describe. Returns the describe body.
fn expect_failed_rotation(s: &Server, name: &str, plugin: &str, body: Value) -> Value {
    create_secret(s, name, r#"{"username":"u","password":"p"}"#);
    let (before, before_vid) = current(s, name);
    let mut req = body;
    req["plugin"] = json!(plugin);
    let (st, resp) = s.call(
        "POST",
        &format!("/v1/secrets/{}/rotation?wait=true", enc(name)),
        Some(req),
    );
    assert!(
        st >= 400,
        "{plugin}: a failed rotation is an error ({st} {resp})"
    );
    let (after, after_vid) = current(s, name);
    assert_eq!(after_vid, before_vid, "{plugin}: CURRENT unchanged");
    assert_eq!(after, before);
    let d = describe(s, name);
    assert!(
        d["last_rotation_error"].is_object(),
        "{plugin}: the error is visible in describe: {d}"
    );
    d
}

fn error_text(d: &Value) -> String {
    d["last_rotation_error"].to_string()
}

#[test]
fn misbehaving_plugins_fail_their_rotation_and_the_server_stays_healthy() {
    let (s, _plugins) = plugin_server(&[
        "looping",
        "memory-hog",
        "panicker",
        "garbage",
        "secret-escape",
        "sql-escape",
        "http-escape",
        "env-probe",
    ]);
    create_secret(&s, "test/other", "still readable");

    // A plugin that loops forever is stopped at its CPU limit; meanwhile other requests
    // are served.
    let s = Arc::new(s);
    let s2 = s.clone();
    let looping = std::thread::spawn(move || {
        expect_failed_rotation(
            &s2,
            "test/loop",
            "looping",
            json!({"schedule": "rate(1 days)"}),
        )
    });
    let started = Instant::now();
    let mut served = 0;
    while !looping.is_finished() && started.elapsed() < Duration::from_secs(60) {
        let (v, _) = current(&s, "test/other");
        assert_eq!(v, "still readable");
        served += 1;
        std::thread::sleep(Duration::from_millis(20));
    }
    let d = looping.join().expect("looping test thread");
    assert!(
        served > 3,
        "requests were served while the plugin looped ({served})"
    );
    let e = error_text(&d);
    assert!(e.contains("fuel") || e.contains("wall-clock"), "{e}");

    let d = expect_failed_rotation(&s, "test/hog", "memory-hog", json!({}));
    assert!(error_text(&d).contains("memory"), "{d}");

    let d = expect_failed_rotation(&s, "test/panic", "panicker", json!({}));
    assert!(error_text(&d).contains("plugin-crashed"), "{d}");

    let d = expect_failed_rotation(&s, "test/garbage", "garbage", json!({}));
    assert!(error_text(&d).contains("plugin-crashed"), "{d}");

    // Capabilities not in the manifest are refused before any connection.
    let d = expect_failed_rotation(&s, "test/sql-escape", "sql-escape", json!({}));
    assert!(error_text(&d).contains("denied"), "{d}");
    let d = expect_failed_rotation(&s, "test/http-escape", "http-escape", json!({}));
    assert!(error_text(&d).contains("denied"), "{d}");
    // A secret neither granted nor in the manifest cannot be read.
    create_secret(&s, "prod/not-granted", "top secret");
    let d = expect_failed_rotation(&s, "test/secret-escape", "secret-escape", json!({}));
    assert!(error_text(&d).contains("denied"), "{d}");
    assert!(!error_text(&d).contains("top secret"));

    // The environment is empty inside the sandbox: env-probe's new value says so.
    create_secret(&s, "test/env", "{}");
    let (st, body) = s.call(
        "POST",
        &format!("/v1/secrets/{}/rotation?wait=true", enc("test/env")),
        Some(json!({"plugin": "env-probe"})),
    );
    assert_eq!(st, 200, "{body}");
    let (v, _) = current(&s, "test/env");
    let v: Value = serde_json::from_str(&v).unwrap();
    assert_eq!(v["env_vars"], 0, "{v}");

    let (st, _) = s.call("GET", "/healthz", None);
    assert_eq!(st, 200, "the server is healthy after all of them");
}

#[test]
fn plugins_importing_filesystem_or_sockets_are_refused_at_install() {
    for plugin in ["fs-escape", "socket-escape"] {
        let src = coffer_plugins::testing::plugin_fixture_dir(&[plugin]);
        let data = tempfile::tempdir().unwrap();
        let out = std::process::Command::new(common::coffer_bin())
            .args(["plugin", "install", "--no-build", "--data-dir"])
            .arg(data.path())
            .arg(src.path().join(plugin))
            .output()
            .expect("run coffer plugin install");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{plugin} must be refused");
        let iface = if plugin == "fs-escape" {
            "wasi:filesystem"
        } else {
            "wasi:sockets"
        };
        assert!(err.contains(iface), "{plugin}: {err}");
        assert!(
            !data.path().join("plugins").join(plugin).exists(),
            "nothing installed"
        );
    }
}

// ------------------------------------------------------------------------------ CLI

#[test]
fn cli_configures_rotates_describes_and_cancels_rotation() {
    let (s, plugins) = plugin_server(&["echo"]);
    create_secret(&s, "test/cli/rot", "v1");
    let (code, out, err) = common::cli(
        &s,
        &[
            "secret",
            "rotate",
            "test/cli/rot",
            "--plugin",
            "echo",
            "--schedule",
            "rate(10 days)",
            "--window",
            "2h",
            "--config",
            "mode=fast",
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    let (v1, _) = current(&s, "test/cli/rot");
    assert!(v1.starts_with("v1-rotated-"), "{v1}");

    // Rotate again with the stored config.
    let (code, out, err) = common::cli(&s, &["secret", "rotate", "test/cli/rot"]);
    assert_eq!(code, 0, "{out}{err}");
    let (v2, _) = current(&s, "test/cli/rot");
    assert_ne!(v2, v1);

    let (code, out, err) = common::cli(
        &s,
        &["secret", "describe", "test/cli/rot", "--output", "json"],
    );
    assert_eq!(code, 0, "{err}");
    let d: Value = serde_json::from_str(&out).expect("describe JSON");
    assert_eq!(d["rotation_enabled"], true, "{d}");
    assert_eq!(d["rotation_plugin"], "echo", "{d}");
    assert_eq!(
        d["rotation_rules"]["schedule_expression"], "rate(10 days)",
        "{d}"
    );
    assert_eq!(d["rotation_rules"]["duration"], "2h", "{d}");
    assert!(d["next_rotation_date"].is_string(), "{d}");

    let (code, out, err) = common::cli(&s, &["secret", "rotate", "test/cli/rot", "--cancel"]);
    assert_eq!(code, 0, "{out}{err}");
    let d = describe(&s, "test/cli/rot");
    assert_eq!(d["rotation_enabled"], false, "{d}");

    // An unknown plugin is a clear error, not a half-configured secret.
    let (code, _, err) = common::cli(
        &s,
        &[
            "secret",
            "rotate",
            "test/cli/rot",
            "--plugin",
            "no-such-plugin",
        ],
    );
    assert_ne!(code, 0);
    assert!(err.contains("no-such-plugin"), "{err}");
    assert_eq!(describe(&s, "test/cli/rot")["rotation_enabled"], false);

    // `coffer plugin list` loads the same directory offline.
    let data = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(common::coffer_bin())
        .args(["plugin", "list", "--output", "json", "--data-dir"])
        .arg(data.path())
        .arg("--plugin-dir")
        .arg(plugins.path())
        .output()
        .expect("coffer plugin list");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let list: Value = serde_json::from_slice(&out.stdout).expect("list JSON");
    assert_eq!(list[0]["name"], "echo", "{list}");
    assert_eq!(list[0]["loaded"], true, "{list}");
}

/// From zero to an installed rotator: scaffold, build for wasm32-wasip2, install, run.
#[test]
fn cli_scaffolds_builds_installs_and_runs_a_new_plugin() {
    coffer_plugins::testing::build_plugins(); // makes sure the wasm target is installed
    let work = tempfile::tempdir().unwrap();
    let coffer = |args: &[&str]| {
        let out = std::process::Command::new(common::coffer_bin())
            .args(args)
            .current_dir(work.path())
            // Share compiled dependencies (wit-bindgen, serde) with the plugins workspace.
            .env(
                "CARGO_TARGET_DIR",
                coffer_plugins::testing::repo_root().join("plugins/target"),
            )
            .output()
            .expect("run coffer");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let (ok, out, err) = coffer(&["plugin", "new", "acme-db"]);
    assert!(ok, "{out}{err}");
    let (ok, out, err) = coffer(&["plugin", "build", "acme-db"]);
    assert!(ok, "build: {out}{err}");
    assert!(work
        .path()
        .join("acme-db/coffer_rotator_acme_db.wasm")
        .is_file());
    let (ok, out, err) = coffer(&[
        "plugin",
        "install",
        "acme-db",
        "--no-build",
        "--data-dir",
        "data",
    ]);
    assert!(ok, "install: {out}{err}");
    assert!(work
        .path()
        .join("data/plugins/acme-db/plugin.toml")
        .is_file());

    std::fs::write(
        work.path().join("current.json"),
        r#"{"username":"app","password":"old"}"#,
    )
    .unwrap();
    let (ok, out, err) = coffer(&[
        "plugin",
        "run",
        "create",
        "--plugin",
        "data/plugins/acme-db",
        "--secret-json",
        "current.json",
    ]);
    assert!(ok, "run: {out}{err}");
    let v: Value = serde_json::from_str(out.trim()).expect("the new value is JSON");
    assert_eq!(v["username"], "app");
    let pw = v["password"].as_str().unwrap();
    assert_eq!(pw.len(), 32, "the template's default password policy");
    assert_ne!(pw, "old");
}
