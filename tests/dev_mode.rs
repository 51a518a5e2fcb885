//! Dev mode: in-memory state, fixed token, reset for test suites, loopback only.

mod common;

use common::{code, Opts, Server};
use serde_json::json;

#[test]
fn dev_reset_wipes_state_and_keeps_the_dev_token() {
    let s = Server::start_dev();
    let (st, _) = s.call(
        "POST",
        "/v1/secrets",
        Some(json!({"name": "dev/x", "secret_string": "v"})),
    );
    assert_eq!(st, 201);
    let (st, _) = s.call("POST", "/v1/sys/reset", None);
    assert_eq!(st, 204);
    let (st, body) = s.call("GET", "/v1/secrets/dev%2Fx/value", None);
    assert_eq!(st, 404, "{body}");
    // The name is free again and the token still works.
    let (st, _) = s.call(
        "POST",
        "/v1/secrets",
        Some(json!({"name": "dev/x", "secret_string": "v2"})),
    );
    assert_eq!(st, 201);
}

#[test]
fn reset_does_not_exist_outside_dev_mode() {
    let s = Server::start();
    let (st, body) = s.call("POST", "/v1/sys/reset", None);
    assert_eq!(st, 404, "{body}");
    assert_eq!(code(&body), "UnknownOperation");
    let (st, _) = s.call(
        "POST",
        "/v1/secrets",
        Some(json!({"name": "still/here", "secret_string": "v"})),
    );
    assert_eq!(st, 201);
}

#[test]
fn reset_requires_a_token() {
    let s = Server::start_dev();
    let r = s.http.post(s.url("/v1/sys/reset")).send().unwrap();
    assert_eq!(r.status().as_u16(), 401);
}

#[test]
fn dev_mode_refuses_a_public_address() {
    let out = std::process::Command::new(common::coffer_bin())
        .args(["server", "--dev", "--listen", "0.0.0.0:0"])
        .env_remove("COFFER_LISTEN")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("loopback"), "{err}");
    let _ = Opts::default();
}
