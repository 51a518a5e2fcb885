//! The `coffer` CLI against a real server: what scripts rely on.

mod common;

use common::{cli, Server};
use serde_json::Value;

fn ok(s: &Server, args: &[&str]) -> String {
    let (code, out, err) = cli(s, args);
    assert_eq!(code, 0, "coffer {args:?} failed: {err}");
    out
}

#[test]
fn secret_lifecycle_from_the_command_line() {
    let s = Server::start();
    // Not under prod/: the shipped policies forbid deleting prod secrets outside the
    // 02:00-04:00 UTC change window, admin included.
    ok(
        &s,
        &[
            "secret",
            "create",
            "app/database/password",
            "--value",
            "s3cr3t",
        ],
    );
    assert_eq!(
        ok(&s, &["secret", "get", "app/database/password"]),
        "s3cr3t\n"
    );
    ok(
        &s,
        &["secret", "put", "app/database/password", "--value", "n3w"],
    );
    assert_eq!(ok(&s, &["secret", "get", "app/database/password"]), "n3w\n");
    assert_eq!(
        ok(
            &s,
            &[
                "secret",
                "get",
                "app/database/password",
                "--stage",
                "PREVIOUS"
            ]
        ),
        "s3cr3t\n"
    );
    let versions: Value = serde_json::from_str(&ok(
        &s,
        &[
            "secret",
            "versions",
            "app/database/password",
            "--output",
            "json",
        ],
    ))
    .unwrap();
    let versions = versions["versions"].as_array().unwrap();
    assert_eq!(versions.len(), 2);
    let old_id = versions[1]["version_id"].as_str().unwrap();
    assert_eq!(
        ok(
            &s,
            &[
                "secret",
                "get",
                "app/database/password",
                "--version-id",
                old_id
            ]
        ),
        "s3cr3t\n"
    );
    let describe = ok(
        &s,
        &[
            "secret",
            "describe",
            "app/database/password",
            "--output",
            "json",
        ],
    );
    assert!(!describe.contains("s3cr3t") && !describe.contains("n3w"));
    ok(
        &s,
        &["secret", "tag", "app/database/password", "team=payments"],
    );
    let listed: Value = serde_json::from_str(&ok(
        &s,
        &["secret", "list", "--tag-key", "team", "--output", "json"],
    ))
    .unwrap();
    assert_eq!(listed["secrets"][0]["name"], "app/database/password");
    ok(&s, &["secret", "untag", "app/database/password", "team"]);
    ok(
        &s,
        &[
            "secret",
            "delete",
            "app/database/password",
            "--recovery-window-days",
            "7",
        ],
    );
    let (code, _, err) = cli(&s, &["secret", "get", "app/database/password"]);
    assert_ne!(code, 0);
    assert!(err.contains("InvalidState"), "{err}");
    ok(&s, &["secret", "restore", "app/database/password"]);
    assert_eq!(ok(&s, &["secret", "get", "app/database/password"]), "n3w\n");
}

#[test]
fn errors_go_to_stderr_with_a_nonzero_exit() {
    let s = Server::start();
    let (code, out, err) = cli(&s, &["secret", "get", "no/such/secret"]);
    assert_eq!(code, 1);
    assert!(out.is_empty());
    assert!(err.contains("ResourceNotFound"), "{err}");
    let (code, _, err) = cli(&s, &["secret", "create", "bad name", "--value", "x"]);
    assert_eq!(code, 1);
    assert!(err.contains("InvalidParameter"), "{err}");
    // A wrong token.
    let out = std::process::Command::new(common::coffer_bin())
        .args(["secret", "list"])
        .env("COFFER_ADDR", &s.base)
        .env("COFFER_TOKEN", "cft_0000_wrong")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("Unauthenticated"));
}

#[test]
fn key_encrypt_decrypt_and_data_key_from_the_command_line() {
    let s = Server::start();
    let key = ok(&s, &["key", "create", "--description", "app key"])
        .trim()
        .to_string();
    assert_eq!(key.len(), 36, "prints the key id: {key}");
    let blob = ok(
        &s,
        &[
            "key",
            "encrypt",
            &key,
            "--plaintext",
            "hello world",
            "--context",
            "app=billing",
        ],
    )
    .trim()
    .to_string();
    assert_eq!(
        ok(&s, &["key", "decrypt", &blob, "--context", "app=billing"]),
        "hello world"
    );
    let (code, _, err) = cli(&s, &["key", "decrypt", &blob, "--context", "app=other"]);
    assert_eq!(code, 1);
    assert!(err.contains("IntegrityCheckFailed"), "{err}");
    let dk: Value = serde_json::from_str(&ok(&s, &["key", "data-key", &key])).unwrap();
    assert!(dk["plaintext"].is_string() && dk["ciphertext_blob"].is_string());
    ok(&s, &["key", "alias", "create", "alias/app", &key]);
    let blob2 = ok(
        &s,
        &["key", "encrypt", "alias/app", "--plaintext", "via alias"],
    )
    .trim()
    .to_string();
    assert_eq!(ok(&s, &["key", "decrypt", &blob2]), "via alias");
    ok(&s, &["key", "rotate", &key]);
    assert_eq!(ok(&s, &["key", "decrypt", &blob2]), "via alias");
    ok(&s, &["key", "disable", &key]);
    let (code, _, err) = cli(&s, &["key", "decrypt", &blob2]);
    assert_eq!(code, 1);
    assert!(err.contains("InvalidState"), "{err}");
    ok(&s, &["key", "enable", &key]);
    let md: Value =
        serde_json::from_str(&ok(&s, &["key", "describe", &key, "--output", "json"])).unwrap();
    assert_eq!(md["current_key_version"], 2);
}

#[test]
fn tokens_and_random_passwords_from_the_command_line() {
    let s = Server::start();
    let token = ok(&s, &["token", "create", "--principal", "alice"])
        .trim()
        .to_string();
    assert!(token.starts_with("cft_"), "{token}");
    // alice has no permit in the repository's policies.
    let out = std::process::Command::new(common::coffer_bin())
        .args(["secret", "list"])
        .env("COFFER_ADDR", &s.base)
        .env("COFFER_TOKEN", &token)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("AccessDenied"));
    let pw = ok(
        &s,
        &["random-password", "--length", "40", "--exclude-punctuation"],
    );
    let pw = pw.trim_end();
    assert_eq!(pw.chars().count(), 40);
    assert!(pw.chars().all(|c| c.is_ascii_alphanumeric()));
}
