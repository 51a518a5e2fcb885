//! Invalid policy sets are refused whole, with `file:line: message`: at startup the
//! server exits non-zero; on reload (`POST /v1/sys/policies/reload` or `SIGHUP`) the
//! old set stays active and `/metrics` counts the failure. A fixed set then reloads
//! and its hash becomes visible at `GET /v1/sys/policies`.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{enc, repo_policies, split, Opts, Server};
use serde_json::{json, Value};

/// A broken policy, appended to `secrets.cedar`: the error is on its third line.
const SYNTAX_ERROR: &str =
    "\n@id(\"broken\")\npermit (principal, action, resource)\nwhen { resource.name == };\n";
/// A policy that parses but fails validation (an attribute the schema lacks), on its
/// third line.
const SCHEMA_VIOLATION: &str = "\n@id(\"typo\")\npermit (principal, action == Coffer::Action::\"GetSecretValue\", resource)\nwhen { resource.nmae == \"x\" };\n";

/// Copies the repository's policy directory (files only).
fn copy_policies(to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(repo_policies()).expect("policies dir") {
        let entry = entry.expect("entry");
        if entry.file_type().expect("type").is_file() {
            std::fs::copy(entry.path(), to.join(entry.file_name())).expect("copy");
        }
    }
}

/// Appends `text` to `file` in `dir`; returns the 1-based line of `text`'s third line
/// (where both broken snippets put the error).
fn append(dir: &Path, file: &str, text: &str) -> usize {
    let path = dir.join(file);
    let before = std::fs::read_to_string(&path).expect("read");
    let first_new_line = before.lines().count() + 1;
    let mut after = before.clone();
    if !after.ends_with('\n') {
        after.push('\n');
    }
    after.push_str(text);
    std::fs::write(&path, after).expect("write");
    // text starts with "\n": its lines are "", "@id", "permit", "when …".
    first_new_line + 3
}

/// Starts `coffer server` on `dir` and expects it to exit non-zero; returns stderr.
fn start_fails(dir: &Path) -> String {
    let data = tempfile::tempdir().expect("tempdir");
    let mut child = Command::new(common::coffer_bin())
        .args(["server", "--listen", "127.0.0.1:0", "--policy-dir"])
        .arg(dir)
        .arg("--data-dir")
        .arg(data.path().join("data"))
        .env("COFFER_LOG_LEVEL", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("server started on an invalid policy set");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    use std::io::Read as _;
    if let Some(mut pipe) = child.stderr.take() {
        let _ = pipe.read_to_string(&mut stderr);
    }
    assert!(!status.success(), "exit status {status}; stderr:\n{stderr}");
    stderr
}

#[test]
fn startup_refuses_a_syntax_error_naming_file_and_line() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("policies");
    copy_policies(&dir);
    let line = append(&dir, "secrets.cedar", SYNTAX_ERROR);
    let stderr = start_fails(&dir);
    assert!(
        stderr.contains(&format!("secrets.cedar:{line}:")),
        "line {line}:\n{stderr}"
    );
    assert!(stderr.contains("invalid policies"), "{stderr}");
}

#[test]
fn startup_refuses_a_schema_violation_naming_file_and_line() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("policies");
    copy_policies(&dir);
    let line = append(&dir, "keys.cedar", SCHEMA_VIOLATION);
    let stderr = start_fails(&dir);
    assert!(
        stderr.contains(&format!("keys.cedar:{line}:")),
        "line {line}:\n{stderr}"
    );
    assert!(stderr.contains("nmae"), "{stderr}");
}

fn info(s: &Server) -> Value {
    let (st, b) = s.call("GET", "/v1/sys/policies", None);
    assert_eq!(st, 200, "{b}");
    b
}

/// The value of an unlabelled counter in `/metrics`.
fn counter(s: &Server, name: &str) -> u64 {
    let text = s
        .http
        .get(s.url("/metrics"))
        .send()
        .expect("metrics")
        .text()
        .expect("text");
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} not in /metrics:\n{text}"))
}

fn sighup(s: &Server) {
    let status = Command::new("kill")
        .arg("-HUP")
        .arg(s.child.id().to_string())
        .status()
        .expect("kill -HUP");
    assert!(status.success());
}

/// Polls `check` for up to 20 s.
fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if check() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("timed out waiting for {what}");
}

#[test]
fn bad_reloads_keep_the_old_set_and_a_fixed_set_reloads() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("policies");
    copy_policies(&dir);
    let s = Server::start_with(Opts {
        policy_dir: Some(dir.clone()),
        ..Opts::default()
    });

    // The starting set, and a dev user reading a dev secret under it.
    let first = info(&s);
    assert_eq!(first["source"], dir.display().to_string());
    let first_hash = first["hash"].as_str().expect("hash").to_string();
    assert_eq!(first_hash.len(), 64);
    let policies = first["policies"].as_u64().expect("policies");
    assert!(
        first["loaded_at"].as_str().is_some_and(|t| t.contains('T')),
        "{first}"
    );
    let (st, b) = s.call(
        "POST",
        "/v1/secrets",
        Some(json!({"name": "dev/app/token", "secret_string": "v1"})),
    );
    assert_eq!(st, 201, "{b}");
    let (st, b) = s.call("POST", "/v1/tokens", Some(json!({"principal": "dana"})));
    assert_eq!(st, 201, "{b}");
    let dana = b["token"].as_str().expect("token").to_string();
    let dana_reads = || {
        split(
            s.req_as(
                &dana,
                "GET",
                &format!("/v1/secrets/{}/value", enc("dev/app/token")),
            )
            .send()
            .expect("send"),
        )
    };
    assert_eq!(dana_reads().0, 200);
    assert_eq!(counter(&s, "coffer_policy_reload_failures_total"), 0);
    assert_eq!(counter(&s, "coffer_policy_reloads_total"), 0);

    // A syntax error: 422 naming file and line; the old set stays.
    let original = std::fs::read_to_string(dir.join("secrets.cedar")).expect("read");
    let line = append(&dir, "secrets.cedar", SYNTAX_ERROR);
    let (st, b) = s.call("POST", "/v1/sys/policies/reload", None);
    assert_eq!(st, 422, "{b}");
    assert_eq!(b["error"]["code"], "InvalidPolicies", "{b}");
    let message = b["error"]["message"].as_str().expect("message");
    assert!(
        message.contains(&format!("secrets.cedar:{line}:")),
        "line {line}: {message}"
    );
    assert!(message.contains("previous set stays active"), "{message}");
    assert_eq!(info(&s)["hash"], first_hash.as_str());
    assert_eq!(dana_reads().0, 200);
    assert_eq!(counter(&s, "coffer_policy_reload_failures_total"), 1);

    // The same through SIGHUP: counted, old set still active.
    sighup(&s);
    eventually("the SIGHUP reload failure to be counted", || {
        counter(&s, "coffer_policy_reload_failures_total") == 2
    });
    assert_eq!(info(&s)["hash"], first_hash.as_str());
    assert_eq!(dana_reads().0, 200);

    // A schema violation: 422 naming file and line.
    std::fs::write(dir.join("secrets.cedar"), &original).expect("restore");
    let line = append(&dir, "teams.cedar", SCHEMA_VIOLATION);
    let (st, b) = s.call("POST", "/v1/sys/policies/reload", None);
    assert_eq!(st, 422, "{b}");
    let message = b["error"]["message"].as_str().expect("message");
    assert!(
        message.contains(&format!("teams.cedar:{line}:")),
        "line {line}: {message}"
    );
    assert_eq!(info(&s)["hash"], first_hash.as_str());
    assert_eq!(counter(&s, "coffer_policy_reload_failures_total"), 3);
    assert_eq!(counter(&s, "coffer_policy_reloads_total"), 0);

    // Fixed, with one policy more: the new set is active at once.
    copy_policies(&dir);
    std::fs::write(
        dir.join("extra.cedar"),
        "@id(\"dana-frozen\")\n@description(\"dana may do nothing\")\nforbid (principal == Coffer::User::\"dana\", action, resource);\n",
    )
    .expect("write");
    let (st, b) = s.call("POST", "/v1/sys/policies/reload", None);
    assert_eq!(st, 200, "{b}");
    let second_hash = b["hash"].as_str().expect("hash").to_string();
    assert_ne!(second_hash, first_hash);
    assert_eq!(b["policies"].as_u64(), Some(policies + 1));
    assert_eq!(info(&s)["hash"], second_hash.as_str());
    let (st, b) = dana_reads();
    assert_eq!(st, 403, "{b}");
    assert!(b.to_string().contains("dana-frozen"), "{b}");
    assert_eq!(counter(&s, "coffer_policy_reloads_total"), 1);

    // Back to the original files through SIGHUP: the original hash again.
    std::fs::remove_file(dir.join("extra.cedar")).expect("rm");
    sighup(&s);
    eventually("the SIGHUP reload to swap the set", || {
        info(&s)["hash"] == first_hash.as_str()
    });
    assert_eq!(dana_reads().0, 200);
    assert_eq!(counter(&s, "coffer_policy_reloads_total"), 2);
    assert_eq!(counter(&s, "coffer_policy_reload_failures_total"), 3);
}
