//! The rotation routes, the scheduler and the plugin secret reader, in process, with a
//! fake runner (no wasmtime here).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use coffer_core::rotation_api::{
    PluginSecretReader, RotationRunner, RotationStep, StepErrorKind, StepFailure, StepOutcome,
    StepRequest, TrailEntry,
};
use coffer_core::{Coffer, CoreConfig};
use coffer_policy::PolicyEngine;
use coffer_server::{AppState, AuditLog, DEV_ROOT_TOKEN};
use serde_json::{json, Value};
use tower::ServiceExt;
use zeroize::Zeroizing;

const PLUGIN: &str = "postgres";

#[derive(Default)]
struct Fake {
    fail: Mutex<HashMap<RotationStep, StepErrorKind>>,
    n: AtomicU32,
    /// Read during create, through the server's reader (`get-secret`).
    read: Mutex<Option<String>>,
    reader: OnceLock<Arc<dyn PluginSecretReader>>,
    read_result: Mutex<Option<Result<String, String>>>,
}

#[async_trait::async_trait]
impl RotationRunner for Fake {
    fn has_plugin(&self, name: &str) -> bool {
        name == PLUGIN
    }
    async fn run_step(&self, req: StepRequest) -> Result<StepOutcome, StepFailure> {
        let mut trail = Vec::new();
        if req.step == RotationStep::Create {
            let target = self.read.lock().unwrap().clone();
            if let (Some(name), Some(reader)) = (target, self.reader.get()) {
                let r = reader
                    .read_for_plugin(&req.plugin, &req.region, &name)
                    .await;
                trail.push(TrailEntry {
                    kind: "secret".into(),
                    detail: format!("read {name}"),
                });
                *self.read_result.lock().unwrap() = Some(r.map(|v| v.to_string()));
            }
        }
        if let Some(kind) = self.fail.lock().unwrap().get(&req.step) {
            return Err(StepFailure {
                kind: *kind,
                message: format!("{} failed on purpose", req.step),
                trail,
            });
        }
        let value = (req.step == RotationStep::Create)
            .then(|| Zeroizing::new(format!("rotated-{}", self.n.fetch_add(1, Ordering::SeqCst))));
        Ok(StepOutcome { value, trail })
    }
}

struct Server {
    app: axum::Router,
    state: Arc<AppState>,
    fake: Arc<Fake>,
}

async fn server(with_runner: bool) -> Server {
    let store = Arc::new(coffer_store::SledStore::temporary().unwrap());
    let core = Arc::new(
        Coffer::new(
            store,
            Arc::new(coffer_crypto::MemoryRootKey::generate()),
            CoreConfig {
                rotation_backoff_base: Duration::from_millis(100),
                ..CoreConfig::default()
            },
        )
        .unwrap(),
    );
    core.install_fixed_token(DEV_ROOT_TOKEN, "admin")
        .await
        .unwrap();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../policies");
    let policy = PolicyEngine::load_dir(&dir).unwrap();
    let state = Arc::new(AppState::new(
        core.clone(),
        policy,
        None,
        coffer_server::openapi_json(),
    ));
    let fake = Arc::new(Fake::default());
    if with_runner {
        let _ = fake.reader.set(coffer_server::plugin_secret_reader(&state));
        state.set_rotation_runner(fake.clone()).unwrap();
    }
    let audit = AuditLog::start(core, None, None).unwrap();
    let app = coffer_server::app(state.clone(), 1 << 20, audit);
    Server { app, state, fake }
}

impl Server {
    async fn call(&self, method: &str, uri: &str, body: Option<Value>) -> (StatusCode, Value) {
        let req = Request::builder()
            .method(method)
            .uri(uri)
            .header("authorization", format!("Bearer {DEV_ROOT_TOKEN}"))
            .header("content-type", "application/json")
            .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
            .unwrap();
        let resp = self.app.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        let v = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).to_string()));
        (status, v)
    }
    async fn create(&self, name: &str, value: &str) {
        let (st, _) = self
            .call(
                "POST",
                "/v1/secrets",
                Some(json!({"name": name, "secret_string": value})),
            )
            .await;
        assert_eq!(st, StatusCode::CREATED);
    }
    async fn value(&self, id: &str) -> String {
        let (st, v) = self
            .call("GET", &format!("/v1/secrets/{id}/value"), None)
            .await;
        assert_eq!(st, StatusCode::OK, "{v}");
        v["secret_string"].as_str().unwrap().to_string()
    }
}

#[tokio::test]
async fn without_a_runner_rotation_is_refused_clearly() {
    let s = server(false).await;
    s.create("app/db", "old").await;
    let (st, v) = s
        .call(
            "POST",
            "/v1/secrets/app%2Fdb/rotation",
            Some(json!({"plugin": PLUGIN})),
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no rotator plugins"),
        "{v}"
    );
}

#[tokio::test]
async fn configure_rotate_fail_resume_cancel_over_rest() {
    let s = server(true).await;
    s.create("app/db", "old").await;
    // Unknown plugin.
    let (st, v) = s
        .call(
            "POST",
            "/v1/secrets/app%2Fdb/rotation?wait=true",
            Some(json!({"plugin": "nope"})),
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    // Configure and rotate now, waiting.
    let (st, v) = s
        .call(
            "POST",
            "/v1/secrets/app%2Fdb/rotation?wait=true",
            Some(
                json!({"plugin": PLUGIN, "schedule": "rate(30 days)", "window": "2h",
                        "config": {"strategy": "single-user"}}),
            ),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["rotation_status"], "succeeded", "{v}");
    let token = v["rotation_token"].as_str().unwrap().to_string();
    let d = &v;
    assert_eq!(d["rotation_enabled"], true);
    assert_eq!(d["rotation_plugin"], PLUGIN);
    assert_eq!(d["rotation_rules"]["automatically_after_days"], 30);
    assert_eq!(d["rotation_rules"]["schedule_expression"], "rate(30 days)");
    assert_eq!(d["rotation_rules"]["duration"], "2h");
    assert!(d["last_rotated_date"].is_string() && d["next_rotation_date"].is_string());
    assert_eq!(d["version_ids_to_stages"][&token][0], "AWSCURRENT");
    assert_eq!(s.value("app%2Fdb").await, "rotated-0");

    // A failure keeps CURRENT and reports the step; rotate resumes it.
    s.fake
        .fail
        .lock()
        .unwrap()
        .insert(RotationStep::Test, StepErrorKind::TargetRefused);
    let (st, v) = s
        .call("POST", "/v1/secrets/app%2Fdb/rotate?wait=true", None)
        .await;
    assert_eq!(st, StatusCode::BAD_GATEWAY, "{v}");
    assert_eq!(v["error"]["code"], "RotationFailed", "{v}");
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("step test (target-refused)") && msg.contains("AWSCURRENT is unchanged"),
        "{msg}"
    );
    let (_, d) = s.call("GET", "/v1/secrets/app%2Fdb", None).await;
    let token2 = d["rotation"]["in_progress"]["token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(d["rotation"]["in_progress"]["next_step"], "test");
    assert_eq!(d["last_rotation_error"]["kind"], "target-refused");
    assert_eq!(d["last_rotation_error"]["step"], "test");
    assert_eq!(s.value("app%2Fdb").await, "rotated-0");
    s.fake.fail.lock().unwrap().clear();
    let (st, v) = s
        .call("POST", "/v1/secrets/app%2Fdb/rotate?wait=true", None)
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(
        (
            v["rotation_status"].as_str(),
            v["rotation_resumed"].as_bool()
        ),
        (Some("succeeded"), Some(true))
    );
    assert_eq!(v["rotation_token"], token2.as_str());
    assert!(v["last_rotation_error"].is_null(), "{v}");
    assert_eq!(s.value("app%2Fdb").await, "rotated-1");

    // Cancel.
    let (st, v) = s
        .call("DELETE", "/v1/secrets/app%2Fdb/rotation", None)
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["rotation_enabled"], false);

    // Rotation steps are in the audit log with the plugin as principal.
    let (st, v) = s
        .call("GET", "/v1/audit?action=RotateSecret&max_results=100", None)
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let records = v["records"].as_array().unwrap();
    assert!(records
        .iter()
        .any(|r| r["principal"] == "Plugin::\"postgres\"" && r["error_code"] == "target-refused"));
    assert!(records.iter().any(|r| r["principal"] == "admin"));
    let (_, v) = s
        .call("GET", "/v1/audit?action=CancelRotateSecret", None)
        .await;
    assert_eq!(v["records"].as_array().unwrap().len(), 1);
    let (_, v) = s.call("POST", "/v1/audit/verify", None).await;
    assert_eq!(v["ok"], true, "{v}");

    // Metrics.
    let (_, m) = s.call("GET", "/metrics", None).await;
    let m = m.as_str().unwrap();
    assert!(
        m.contains("coffer_rotations_succeeded_total{plugin=\"postgres\"} 2"),
        "{m}"
    );
    assert!(m.contains("coffer_rotation_step_failures_total{kind=\"target-refused\",plugin=\"postgres\",step=\"test\"} 1"), "{m}");
}

#[tokio::test]
async fn the_scheduler_retries_transient_failures_in_the_background() {
    let s = server(true).await;
    s.create("app/db", "old").await;
    let sched = coffer_server::start_rotation_scheduler(s.state.clone(), Duration::from_millis(50));
    s.fake
        .fail
        .lock()
        .unwrap()
        .insert(RotationStep::Set, StepErrorKind::Unreachable);
    let (st, v) = s
        .call(
            "POST",
            "/v1/secrets/app%2Fdb/rotation",
            Some(json!({"plugin": PLUGIN})),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["rotation_status"], "started");
    assert!(
        v["rotation_token"].is_string() && v["arn"].is_string(),
        "{v}"
    );
    // Wait for the background run to fail once, then heal the target.
    let mut failed = false;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let (_, d) = s.call("GET", "/v1/secrets/app%2Fdb", None).await;
        if d["last_rotation_error"]["kind"] == "unreachable" {
            failed = true;
            break;
        }
    }
    assert!(failed, "the background rotation should have failed once");
    s.fake.fail.lock().unwrap().clear();
    let mut done = false;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let (_, d) = s.call("GET", "/v1/secrets/app%2Fdb", None).await;
        if d["rotation"]["in_progress"].is_null() && d["last_rotated_date"].is_string() {
            done = true;
            break;
        }
    }
    sched.abort();
    assert!(
        done,
        "the scheduler should have retried and finished the rotation"
    );
    assert_eq!(s.value("app%2Fdb").await, "rotated-0");
}

#[tokio::test]
async fn plugins_read_other_secrets_only_as_the_policy_allows() {
    let s = server(true).await;
    s.create("prod/orders-db/master", "master-pw").await;
    s.create("prod/orders-db/other", "nope").await;
    s.create("prod/orders-db/app", "old").await;
    *s.fake.read.lock().unwrap() = Some("prod/orders-db/master".into());
    let (st, v) = s
        .call(
            "POST",
            "/v1/secrets/prod%2Forders-db%2Fapp/rotation?wait=true",
            Some(json!({"plugin": PLUGIN, "granted_secrets": ["prod/orders-db/master"]})),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(
        s.fake.read_result.lock().unwrap().clone(),
        Some(Ok("master-pw".to_string()))
    );
    let reader = coffer_server::plugin_secret_reader(&s.state);
    let denied = reader
        .read_for_plugin(PLUGIN, "local", "prod/orders-db/other")
        .await
        .unwrap_err();
    assert!(
        denied.contains("may not read") && !denied.contains("nope"),
        "{denied}"
    );
    let denied = reader
        .read_for_plugin("http-api-key", "local", "prod/orders-db/master")
        .await
        .unwrap_err();
    assert!(denied.contains("may not read"), "{denied}");
    // The reads are audited under the plugin's name.
    let (_, v) = s
        .call(
            "GET",
            "/v1/audit?action=GetSecretValue&principal=Plugin::%22postgres%22",
            None,
        )
        .await;
    let decisions: Vec<&str> = v["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["decision"].as_str().unwrap())
        .collect();
    assert!(
        decisions.contains(&"allow") && decisions.contains(&"deny"),
        "{v}"
    );
}

#[test]
fn the_rotation_routes_are_documented() {
    let docs = coffer_server::route_docs();
    for (m, p, op) in [
        ("POST", "/v1/secrets/{id}/rotation", "RotateSecret"),
        ("POST", "/v1/secrets/{id}/rotate", "RotateSecret"),
        ("DELETE", "/v1/secrets/{id}/rotation", "CancelRotateSecret"),
    ] {
        assert!(
            docs.iter()
                .any(|d| d.method == m && d.path == p && d.operation == op),
            "{m} {p}"
        );
    }
    let api = coffer_server::openapi_json();
    assert!(api.contains("RotateSecretRequest") && api.contains("RotationResponse"));
}
