//! Rotation end to end against the real databases of this machine: the shipped postgres
//! and mysql rotators (WebAssembly components run by the server's wasmtime host) rotate
//! throwaway roles/users, and every claim is checked by logging in to the database with
//! the stored credentials through the database's own password check.

mod common;

use std::time::{Duration, Instant};

use common::db::{maria_login, pg_login, Login, MariaUser, PgRole};
use common::{enc, Opts, Server};
use serde_json::{json, Value};

/// A persistent server that loads the named plugins from a fixture directory and runs
/// its rotation scheduler every 200 ms.
pub fn plugin_server(plugins: &[&str], env: &[(&str, &str)]) -> (Server, tempfile::TempDir) {
    let dir = coffer_plugins::testing::plugin_fixture_dir(plugins);
    let s = Server::start_with(plugin_opts(dir.path(), env));
    (s, dir)
}

pub fn plugin_opts(dir: &std::path::Path, env: &[(&str, &str)]) -> Opts {
    let mut e = vec![("COFFER_ROTATION_TICK_MS".to_string(), "200".to_string())];
    e.extend(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    Opts {
        extra_args: vec!["--plugin-dir".into(), dir.display().to_string()],
        env: e,
        ..Opts::default()
    }
}

fn create_secret(s: &Server, name: &str, value: &Value) {
    let (st, body) = s.call(
        "POST",
        "/v1/secrets",
        Some(json!({"name": name, "secret_string": value.to_string()})),
    );
    assert_eq!(st, 201, "create {name}: {body}");
}

/// Configures rotation and rotates now, waiting for the result.
fn configure(s: &Server, name: &str, body: Value) -> (u16, Value) {
    s.call(
        "POST",
        &format!("/v1/secrets/{}/rotation?wait=true", enc(name)),
        Some(body),
    )
}

/// Rotates now with the stored config, waiting for the result.
fn rotate_now(s: &Server, name: &str) -> (u16, Value) {
    s.call(
        "POST",
        &format!("/v1/secrets/{}/rotate?wait=true", enc(name)),
        None,
    )
}

fn describe(s: &Server, name: &str) -> Value {
    let (st, body) = s.call("GET", &format!("/v1/secrets/{}", enc(name)), None);
    assert_eq!(st, 200, "describe {name}: {body}");
    body
}

/// The JSON value of a stage, and its version id.
fn value_at(s: &Server, name: &str, stage: &str) -> (Value, String) {
    let (st, body) = s.call(
        "GET",
        &format!("/v1/secrets/{}/value?version_stage={stage}", enc(name)),
        None,
    );
    assert_eq!(st, 200, "{stage} of {name}: {body}");
    let v: Value = serde_json::from_str(body["secret_string"].as_str().expect("string secret"))
        .expect("JSON secret value");
    (
        v,
        body["version_id"].as_str().unwrap_or_default().to_string(),
    )
}

fn field<'a>(v: &'a Value, k: &str) -> &'a str {
    v[k].as_str()
        .unwrap_or_else(|| panic!("{k} missing in the secret value"))
}

/// Rotates once (by `rotate`) and checks the single-user contract: CURRENT is new and
/// logs in, the old password no longer does, PREVIOUS holds the old value.
fn check_single_user_rotation(
    s: &Server,
    name: &str,
    login: fn(&str, &str) -> Login,
    rotate: impl FnOnce(),
) {
    let (before, before_vid) = value_at(s, name, "AWSCURRENT");
    rotate();
    let (now, vid) = value_at(s, name, "AWSCURRENT");
    assert_ne!(vid, before_vid, "CURRENT moved to a new version");
    assert_eq!(field(&now, "username"), field(&before, "username"));
    assert_ne!(field(&now, "password"), field(&before, "password"));
    assert_eq!(
        login(field(&now, "username"), field(&now, "password")),
        Login::Ok,
        "the rotated CURRENT password logs in"
    );
    assert_eq!(
        login(field(&before, "username"), field(&before, "password")),
        Login::BadPassword,
        "the old password is refused after a single-user rotation"
    );
    let (prev, prev_vid) = value_at(s, name, "AWSPREVIOUS");
    assert_eq!(prev_vid, before_vid);
    assert_eq!(prev, before, "PREVIOUS holds the prior value");
    let d = describe(s, name);
    assert_eq!(d["rotation_enabled"], true, "{d}");
    assert!(d["last_rotated_date"].is_string(), "{d}");
}

fn wait_rotated_by_schedule(s: &Server, name: &str, before_vid: &str, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let (_, vid) = value_at(s, name, "AWSCURRENT");
        if vid != before_vid {
            let d = describe(s, name);
            if d.get("rotation_in_progress").is_none_or(Value::is_null) {
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the scheduler did not rotate {name}: {}",
            describe(s, name)
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn single_user_flow(engine_plugin: &str, secret: Value, login: fn(&str, &str) -> Login) {
    let (s, _plugins) = plugin_server(&[engine_plugin], &[]);
    let name = format!("test/{engine_plugin}/{}", field(&secret, "username"));
    create_secret(&s, &name, &secret);

    // Configure + rotate immediately, then twice more on demand.
    check_single_user_rotation(&s, &name, login, || {
        let (st, body) = configure(
            &s,
            &name,
            json!({"plugin": engine_plugin, "schedule": "rate(30 days)",
                   "config": {"tls": "disable"}}),
        );
        assert_eq!(st, 200, "configure rotation: {body}");
    });
    for _ in 0..2 {
        check_single_user_rotation(&s, &name, login, || {
            let (st, body) = rotate_now(&s, &name);
            assert_eq!(st, 200, "rotate: {body}");
        });
    }

    // By a schedule: every minute (the shortest cron step), without rotating now.
    let (_, before_vid) = value_at(&s, &name, "AWSCURRENT");
    check_single_user_rotation(&s, &name, login, || {
        let (st, body) = s.call(
            "POST",
            &format!("/v1/secrets/{}/rotation", enc(&name)),
            Some(
                json!({"plugin": engine_plugin, "schedule": "cron(* * * * ? *)",
                        "config": {"tls": "disable"}, "rotate_immediately": false}),
            ),
        );
        assert_eq!(st, 200, "configure schedule: {body}");
        assert!(body["next_rotation_date"].is_string(), "{body}");
        wait_rotated_by_schedule(&s, &name, &before_vid, Duration::from_secs(100));
    });
}

#[test]
fn postgres_single_user_rotates_on_demand_and_on_schedule() {
    let role = PgRole::create();
    single_user_flow("postgres", role.secret_json(), pg_login);
}

#[test]
fn mariadb_single_user_rotates_on_demand_and_on_schedule() {
    let user = MariaUser::create();
    single_user_flow("mysql", user.secret_json(), maria_login);
}

/// Alternating users: each rotation switches between `user` and `user_clone`, created and
/// updated by the master secret; PREVIOUS keeps working (zero downtime).
fn alternating_flow(
    engine_plugin: &str,
    user: Value,
    master: Value,
    login: fn(&str, &str) -> Login,
) {
    let (s, _plugins) = plugin_server(&[engine_plugin], &[]);
    let base_user = field(&user, "username").to_string();
    let master_name = format!("test/{engine_plugin}-master/{base_user}");
    let name = format!("test/{engine_plugin}/{base_user}");
    create_secret(&s, &master_name, &master);
    let mut value = user.clone();
    value["masterarn"] = json!(master_name);
    create_secret(&s, &name, &value);

    let mut expected_user = format!("{base_user}_clone");
    for round in 0..3 {
        let (before, _) = value_at(&s, &name, "AWSCURRENT");
        let (st, body) = if round == 0 {
            configure(
                &s,
                &name,
                json!({"plugin": engine_plugin, "schedule": "rate(30 days)",
                       "config": {"tls": "disable", "strategy": "alternating-users"},
                       "granted_secrets": [master_name]}),
            )
        } else {
            rotate_now(&s, &name)
        };
        assert_eq!(st, 200, "rotation {round}: {body}");
        let (now, _) = value_at(&s, &name, "AWSCURRENT");
        assert_eq!(field(&now, "username"), expected_user, "round {round}");
        assert_eq!(login(&expected_user, field(&now, "password")), Login::Ok);
        assert_eq!(
            login(field(&before, "username"), field(&before, "password")),
            Login::Ok,
            "alternating users keep PREVIOUS working"
        );
        let (prev, _) = value_at(&s, &name, "AWSPREVIOUS");
        assert_eq!(prev, before);
        expected_user = if expected_user == base_user {
            format!("{base_user}_clone")
        } else {
            base_user.clone()
        };
    }
    // A plugin may read only what the rotation grants: the master's value never shows up
    // in the audit trail.
    let (_, audit) = s.call("GET", "/v1/audit?max_results=1000", None);
    let text = audit.to_string();
    assert!(!text.contains(field(&master, "password")));
}

#[test]
fn postgres_alternating_users_switch_roles_and_keep_previous_working() {
    let user = PgRole::create();
    let master = PgRole::create_master();
    alternating_flow(
        "postgres",
        user.secret_json(),
        master.secret_json(),
        pg_login,
    );
}

#[test]
fn mariadb_alternating_users_switch_users_and_keep_previous_working() {
    let user = MariaUser::create();
    let master = MariaUser::create_master();
    alternating_flow(
        "mysql",
        user.secret_json(),
        master.secret_json(),
        maria_login,
    );
}

/// kill -9 right after each of the four steps (the test-only fault switch aborts the
/// process once the step's progress is durable), restart, and the rotation completes:
/// CURRENT logs in, the old password does not, PREVIOUS holds the old value.
#[test]
fn postgres_rotation_survives_a_crash_after_each_step() {
    for step in ["create", "set", "test", "finish"] {
        let role = PgRole::create();
        let dir = coffer_plugins::testing::plugin_fixture_dir(&["postgres"]);
        let s = Server::start_with(plugin_opts(
            dir.path(),
            &[("COFFER_TEST_CRASH_AFTER_STEP", step)],
        ));
        let name = format!("test/crash-{step}/{}", role.name);
        create_secret(&s, &name, &role.secret_json());
        let (_, before_vid) = value_at(&s, &name, "AWSCURRENT");
        let mut s = s;
        // The request dies with the server; its outcome does not matter.
        let _ = s
            .req(
                "POST",
                &format!("/v1/secrets/{}/rotation?wait=true", enc(&name)),
            )
            .json(&json!({"plugin": "postgres", "schedule": "rate(30 days)",
                          "config": {"tls": "disable"}}))
            .send();
        let deadline = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Ok(Some(st)) = s.child.try_wait() {
                break st;
            }
            assert!(
                Instant::now() < deadline,
                "server did not crash after {step}"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(
            !status.success(),
            "the fault switch aborts the process ({step})"
        );

        let s = s.restart_with(|_| {}, plugin_opts(dir.path(), &[]));
        wait_rotated_by_schedule(&s, &name, &before_vid, Duration::from_secs(90));
        let (now, _) = value_at(&s, &name, "AWSCURRENT");
        let (prev, prev_vid) = value_at(&s, &name, "AWSPREVIOUS");
        assert_eq!(prev_vid, before_vid, "after a crash at {step}");
        assert_eq!(
            pg_login(field(&now, "username"), field(&now, "password")),
            Login::Ok,
            "CURRENT logs in after a crash at {step}"
        );
        assert_eq!(
            pg_login(field(&prev, "username"), field(&prev, "password")),
            Login::BadPassword,
            "the old password is gone after a crash at {step}"
        );
        let d = describe(&s, &name);
        assert!(d["last_rotated_date"].is_string(), "{d}");
    }
}
