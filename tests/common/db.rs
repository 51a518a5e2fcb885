//! Throwaway PostgreSQL roles and MariaDB users for the rotation tests, and login checks
//! that go through the databases' own password verification (`psql` / `mariadb`
//! clients over TCP; see scripts/test-databases.sh for why PostgreSQL needs a rule).
#![allow(dead_code)]

use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

/// Runs scripts/test-databases.sh once per test binary.
pub fn prepare() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/test-databases.sh");
        let out = Command::new("bash")
            .arg(&script)
            .output()
            .expect("run scripts/test-databases.sh");
        assert!(
            out.status.success(),
            "scripts/test-databases.sh failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    });
}

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

/// Runs SQL as the PostgreSQL superuser; panics with the error on failure.
pub fn pg_admin(sql: &str) -> String {
    let out = Command::new("psql")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            "5432",
            "-U",
            "postgres",
            "-d",
            "postgres",
        ])
        .args(["-v", "ON_ERROR_STOP=1", "-Atq", "-c", sql])
        .output()
        .expect("run psql");
    assert!(
        out.status.success(),
        "psql failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Outcome of a login attempt.
#[derive(Debug, PartialEq, Eq)]
pub enum Login {
    Ok,
    /// The server refused the password.
    BadPassword,
    /// Anything else (message).
    Other(String),
}

/// Logs in to PostgreSQL over TCP with a password and runs `SELECT 1`.
pub fn pg_login(user: &str, password: &str) -> Login {
    let out = Command::new("psql")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            "5432",
            "-U",
            user,
            "-d",
            "postgres",
        ])
        .args(["-w", "-Atq", "-c", "SELECT 1"])
        .env("PGPASSWORD", password)
        .output()
        .expect("run psql");
    let err = String::from_utf8_lossy(&out.stderr);
    if out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == "1" {
        Login::Ok
    } else if err.contains("password authentication failed") {
        Login::BadPassword
    } else {
        Login::Other(err.into_owned())
    }
}

/// A PostgreSQL login role that must use its password; dropped (with its `_clone`) on drop.
pub struct PgRole {
    pub name: String,
    pub password: String,
}

impl PgRole {
    pub fn create() -> PgRole {
        prepare();
        let name = unique("coffer_t_");
        let password = unique("Initial-Pw-");
        pg_admin(&format!(
            "CREATE ROLE {name} LOGIN PASSWORD '{password}' IN ROLE coffer_rotation_test"
        ));
        assert_eq!(pg_login(&name, &password), Login::Ok, "fresh role logs in");
        assert_eq!(
            pg_login(&name, "not-the-password"),
            Login::BadPassword,
            "the scram rule makes PostgreSQL check test-role passwords"
        );
        PgRole { name, password }
    }

    /// A superuser-ish master role for the alternating-users strategy (CREATEROLE).
    pub fn create_master() -> PgRole {
        prepare();
        let name = unique("coffer_tm_");
        let password = unique("Master-Pw-");
        pg_admin(&format!(
            "CREATE ROLE {name} LOGIN CREATEROLE PASSWORD '{password}' IN ROLE coffer_rotation_test"
        ));
        PgRole { name, password }
    }

    /// The secret value in AWS's RDS shape.
    pub fn secret_json(&self) -> serde_json::Value {
        serde_json::json!({
            "engine": "postgres", "host": "127.0.0.1", "port": 5432,
            "username": self.name, "password": self.password, "dbname": "postgres"
        })
    }
}

impl Drop for PgRole {
    fn drop(&mut self) {
        let n = &self.name;
        let _ = Command::new("psql")
            .args([
                "-h",
                "127.0.0.1",
                "-U",
                "postgres",
                "-d",
                "postgres",
                "-Atq",
                "-c",
            ])
            .arg(format!(
                "DROP ROLE IF EXISTS {n}_clone; DROP ROLE IF EXISTS {n};"
            ))
            .output();
    }
}

/// Runs SQL as MariaDB root; panics on failure.
pub fn maria_admin(sql: &str) -> String {
    let out = Command::new("mariadb")
        .args([
            "-h",
            "127.0.0.1",
            "-P",
            "3306",
            "-u",
            "root",
            "-N",
            "-B",
            "-e",
            sql,
        ])
        .output()
        .expect("run mariadb");
    assert!(
        out.status.success(),
        "mariadb failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Logs in to MariaDB over TCP with a password and runs `SELECT 1`.
pub fn maria_login(user: &str, password: &str) -> Login {
    let out = Command::new("mariadb")
        .args([
            "-h",
            "127.0.0.1",
            "-P",
            "3306",
            "-u",
            user,
            "-N",
            "-B",
            "-e",
            "SELECT 1",
        ])
        .env("MYSQL_PWD", password)
        .output()
        .expect("run mariadb");
    let err = String::from_utf8_lossy(&out.stderr);
    if out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == "1" {
        Login::Ok
    } else if err.contains("ERROR 1045") {
        Login::BadPassword
    } else {
        Login::Other(err.into_owned())
    }
}

/// A MariaDB user `name'@'%` with a password; dropped (with its `_clone`) on drop.
pub struct MariaUser {
    pub name: String,
    pub password: String,
}

impl MariaUser {
    pub fn create() -> MariaUser {
        prepare();
        let name = unique("coffer_t_");
        let password = unique("Initial-Pw-");
        maria_admin(&format!(
            "CREATE USER '{name}'@'%' IDENTIFIED BY '{password}'; GRANT SELECT ON test.* TO '{name}'@'%'"
        ));
        assert_eq!(
            maria_login(&name, &password),
            Login::Ok,
            "fresh user logs in"
        );
        assert_eq!(maria_login(&name, "not-the-password"), Login::BadPassword);
        MariaUser { name, password }
    }

    /// A master user that may create users and grant (alternating-users strategy).
    pub fn create_master() -> MariaUser {
        prepare();
        let name = unique("coffer_tm_");
        let password = unique("Master-Pw-");
        maria_admin(&format!(
            "CREATE USER '{name}'@'%' IDENTIFIED BY '{password}'; \
             GRANT ALL PRIVILEGES ON *.* TO '{name}'@'%' WITH GRANT OPTION"
        ));
        MariaUser { name, password }
    }

    pub fn secret_json(&self) -> serde_json::Value {
        serde_json::json!({
            "engine": "mysql", "host": "127.0.0.1", "port": 3306,
            "username": self.name, "password": self.password, "dbname": "test"
        })
    }
}

impl Drop for MariaUser {
    fn drop(&mut self) {
        let n = &self.name;
        let _ = Command::new("mariadb")
            .args(["-h", "127.0.0.1", "-u", "root", "-e"])
            .arg(format!(
                "DROP USER IF EXISTS '{n}_clone'@'%'; DROP USER IF EXISTS '{n}'@'%';"
            ))
            .output();
    }
}
