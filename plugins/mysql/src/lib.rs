//! MySQL / MariaDB password rotator.
//!
//! Secret value: AWS's RDS JSON, `{"engine": "mysql"|"mariadb", "host", "port", "username",
//! "password", "dbname"}` (other fields are kept).
//!
//! Rotation config:
//! - `strategy` = `single-user` (default) | `alternating-users`
//! - `master_secret` = name of the superuser secret (alternating users; else the secret's
//!   `masterarn` field). The rotation must also grant it (`--grant-secret`).
//! - `username_limit` = longest user name the server takes (default 80, MariaDB; MySQL 5.7+
//!   takes 32, legacy MySQL 16). Alternating users needs room for `_clone`.
//! - `tls` = `verify-full` (default) | `require` | `disable`
//! - `password_length`, `exclude_characters`, `exclude_punctuation`: the password policy.
//!
//! Steps (AWS's templates, made stricter):
//! - create: copy CURRENT, new password; alternating users also flips `app` ↔ `app_clone`.
//! - set: check PENDING's user and server against CURRENT first, then return at once if
//!   PENDING already logs in. Single user: log in as CURRENT (PREVIOUS as a fallback), find the
//!   account's host part with `SELECT CURRENT_USER()` and `ALTER USER 'u'@'h' IDENTIFIED BY …`;
//!   when that is refused (MariaDB asks for CREATE USER even for one's own account), fall back
//!   to `SET PASSWORD = PASSWORD(…)`.
//!   Alternating: log in as CURRENT (to prove the caller owns it), then as the superuser create
//!   the other user (same host part) or change its password, replay `SHOW GRANTS` of CURRENT
//!   onto it and copy CURRENT's TLS requirement.
//! - test: log in as PENDING and `SELECT 1`.
//! - finish: nothing (the host moves the labels).

use coffer_rotator_sdk::sql::{self, Connection, Engine, TlsMode, Value};
use coffer_rotator_sdk::{
    self as sdk, alternate_username, log, login_current_or_previous, pending_works, DbSecret,
    RotationError, Rotator, StepInput, Strategy,
};

const ENGINE: Engine = Engine::Mysql;
/// MariaDB's user name limit; MySQL 5.7+ has 32, legacy MySQL 16 (rotation config
/// `username_limit`).
const DEFAULT_NAME_LIMIT: usize = 80;

struct Mysql;

fn parse(label: &str, value: &str) -> Result<DbSecret, RotationError> {
    sdk::parse_db_secret(ENGINE, label, value)
}

fn q(ident: &str) -> String {
    sql::quote_ident(ENGINE, ident)
}

/// `` `user`@`host` ``.
fn account(user: &str, host: &str) -> String {
    format!("{}@{}", q(user), q(host))
}

fn name_limit(input: &StepInput) -> Result<usize, RotationError> {
    match input.config("username_limit") {
        None => Ok(DEFAULT_NAME_LIMIT),
        Some(v) => v.trim().parse().ok().filter(|n| *n > 0).ok_or_else(|| {
            RotationError::invalid_secret(format!(
                "rotation config `username_limit` = {v:?} is not a positive number"
            ))
        }),
    }
}

/// The host part of the account this connection is logged in as (`SELECT CURRENT_USER()`
/// returns `user@host`), checked against the expected user name.
fn current_account_host(conn: &Connection, expected_user: &str) -> Result<String, RotationError> {
    let rows = conn
        .query("SELECT CURRENT_USER()", &[])
        .map_err(|e| RotationError::from(e).context("SELECT CURRENT_USER()"))?;
    let text = rows
        .text(0, 0)
        .ok_or_else(|| RotationError::target_refused("SELECT CURRENT_USER() returned no text"))?;
    let (user, host) = text.rsplit_once('@').ok_or_else(|| {
        RotationError::target_refused(format!("CURRENT_USER() = {text:?} is not user@host"))
    })?;
    if user != expected_user {
        return Err(RotationError::target_refused(format!(
            "logged in as {user:?} (an anonymous or proxy account?), expected {expected_user:?}"
        )));
    }
    Ok(host.to_string())
}

fn set_single_user(
    input: &StepInput,
    current: &DbSecret,
    pending: &DbSecret,
    tls: TlsMode,
) -> Result<(), RotationError> {
    if pending.username != current.username {
        return Err(RotationError::invalid_secret(format!(
            "single-user: PENDING's user {:?} is not CURRENT's {:?}",
            pending.username, current.username
        )));
    }
    if pending_works(ENGINE, pending, tls)? {
        log::info("PENDING already logs in; nothing to set");
        return Ok(());
    }
    let conn = login_current_or_previous(ENGINE, input, current, tls)?;
    let user = &current.username;
    let host = current_account_host(&conn, user)?;
    let acct = account(user, &host);
    let literal = sql::password_literal(ENGINE, user, &pending.password);
    match conn.execute(&format!("ALTER USER {acct} IDENTIFIED BY {literal}"), &[]) {
        Ok(_) => {}
        // MariaDB lets an account change its own password with ALTER USER only if it holds
        // CREATE USER (MySQL 5.7+ does not ask for it). SET PASSWORD works for any account.
        Err(sql::Error::Query(m)) if is_access_denied(&m) => {
            conn.execute(&format!("SET PASSWORD = PASSWORD({literal})"), &[])
                .map_err(|e| RotationError::from(e).context(format!("SET PASSWORD for {acct}")))?;
        }
        Err(e) => return Err(RotationError::from(e).context(format!("ALTER USER {acct}"))),
    }
    log::info(format!("set a new password for {acct}"));
    Ok(())
}

/// MySQL error 1227 (ER_SPECIFIC_ACCESS_DENIED_ERROR) and its friends.
fn is_access_denied(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("1227") || m.contains("access denied") || m.contains("create user privilege")
}

fn master_secret(input: &StepInput, current: &DbSecret) -> Result<DbSecret, RotationError> {
    let name = input
        .config("master_secret")
        .map(str::to_string)
        .or_else(|| current.masterarn.clone())
        .ok_or_else(|| {
            RotationError::invalid_secret(
                "alternating-users needs a superuser secret: set rotation config `master_secret` \
                 (and grant it) or a `masterarn` field in the secret",
            )
        })?;
    let master = parse(
        &format!("superuser secret {name:?}"),
        &sdk::get_secret(&name)?,
    )?;
    if !master.same_server(current, ENGINE) {
        return Err(RotationError::invalid_secret(format!(
            "superuser secret {name:?} is for another server than CURRENT"
        )));
    }
    Ok(master)
}

/// Rewrites one `SHOW GRANTS FOR <current>` row so it grants to `target` instead.
/// `Ok(None)` for rows that need no replay (`GRANT USAGE ON *.*`, which `CREATE USER`
/// implies). Clauses after the grantee other than `WITH GRANT|ADMIN OPTION` are dropped, in
/// particular MariaDB's `IDENTIFIED BY PASSWORD '<hash>'`, which would copy CURRENT's
/// password.
fn retarget_grant(
    row: &str,
    user: &str,
    host: &str,
    target: &str,
) -> Result<Option<String>, RotationError> {
    let candidates = [
        account(user, host),
        format!(
            "'{}'@'{}'",
            user.replace('\'', "''"),
            host.replace('\'', "''")
        ),
        format!("{user}@{host}"),
    ];
    let found = candidates.iter().find_map(|c| {
        row.rfind(&format!(" TO {c}"))
            .map(|pos| (pos, pos + 4 + c.len()))
    });
    let Some((start, end)) = found else {
        return Err(RotationError::target_refused(format!(
            "cannot find the grantee in a SHOW GRANTS row: {row:?}"
        )));
    };
    let prefix = &row[..start];
    if prefix.trim().eq_ignore_ascii_case("GRANT USAGE ON *.*") {
        return Ok(None);
    }
    let rest = row[end..].to_ascii_uppercase();
    let mut suffix = String::new();
    if rest.contains("WITH GRANT OPTION") {
        suffix.push_str(" WITH GRANT OPTION");
    } else if rest.contains("WITH ADMIN OPTION") {
        suffix.push_str(" WITH ADMIN OPTION");
    }
    Ok(Some(format!("{prefix} TO {target}{suffix}")))
}

/// A string literal for `REQUIRE CIPHER/ISSUER/SUBJECT`. `None` for values with a backslash,
/// whose quoting depends on `NO_BACKSLASH_ESCAPES`.
fn string_literal(s: &str) -> Option<String> {
    (!s.contains('\\')).then(|| format!("'{}'", s.replace('\'', "''")))
}

/// Copies CURRENT's TLS requirement (`REQUIRE NONE | SSL | X509 | CIPHER … AND ISSUER … AND
/// SUBJECT …`) to the other user. Best effort: a failure is logged and the rotation goes on.
fn copy_tls_requirement(conn: &Connection, user: &str, host: &str, target: &str) {
    let rows = match conn.query(
        "SELECT ssl_type, ssl_cipher, x509_issuer, x509_subject FROM mysql.user WHERE User = ? AND Host = ?",
        &[Value::Text(user.to_string()), Value::Text(host.to_string())],
    ) {
        Ok(rows) => rows,
        Err(e) => {
            log::warn(format!("not copying the TLS requirement: {}", e.message()));
            return;
        }
    };
    let col = |i: usize| rows.text(0, i).unwrap_or("").to_string();
    if rows.is_empty() {
        log::warn("not copying the TLS requirement: CURRENT's account is not in mysql.user");
        return;
    }
    let clause = match col(0).to_ascii_uppercase().as_str() {
        "" | "NONE" => Some("NONE".to_string()),
        "ANY" => Some("SSL".to_string()),
        "X509" => Some("X509".to_string()),
        "SPECIFIED" => {
            let mut parts = Vec::new();
            let mut ok = true;
            for (kw, v) in [("CIPHER", col(1)), ("ISSUER", col(2)), ("SUBJECT", col(3))] {
                if v.is_empty() {
                    continue;
                }
                match string_literal(&v) {
                    Some(lit) => parts.push(format!("{kw} {lit}")),
                    None => ok = false,
                }
            }
            (ok && !parts.is_empty()).then(|| parts.join(" AND "))
        }
        _ => None,
    };
    let Some(clause) = clause else {
        log::warn("not copying the TLS requirement: cannot express it safely");
        return;
    };
    if let Err(e) = conn.execute(&format!("ALTER USER {target} REQUIRE {clause}"), &[]) {
        log::warn(format!("not copying the TLS requirement: {}", e.message()));
    }
}

fn set_alternating(
    input: &StepInput,
    current: &DbSecret,
    pending: &DbSecret,
    tls: TlsMode,
) -> Result<(), RotationError> {
    let expected = alternate_username(&current.username, name_limit(input)?)?;
    if pending.username != expected {
        return Err(RotationError::invalid_secret(format!(
            "alternating-users: PENDING's user {:?} is not {:?}",
            pending.username, expected
        )));
    }
    if pending_works(ENGINE, pending, tls)? {
        log::info("PENDING already logs in; nothing to set");
        return Ok(());
    }
    // Confused-deputy check: only act as the superuser for a caller whose CURRENT works.
    let cur_host = match Connection::open(&current.connect_options(ENGINE, tls)) {
        Ok(conn) => current_account_host(&conn, &current.username)?,
        Err(e) if e.is_auth() => {
            return Err(RotationError::auth_failed(format!(
                "CURRENT cannot log in as {:?}, so the superuser will not act for it: {}",
                current.username,
                e.message()
            )))
        }
        Err(e) => return Err(RotationError::from(e).context("logging in with CURRENT")),
    };
    let master = master_secret(input, current)?;
    let conn = Connection::open(&master.connect_options(ENGINE, tls))
        .map_err(|e| RotationError::from(e).context("logging in as the superuser"))?;

    let (cur, pend) = (&current.username, &pending.username);
    let literal = sql::password_literal(ENGINE, pend, &pending.password);
    let hosts = conn
        .query(
            "SELECT User, Host FROM mysql.user WHERE User = ?",
            &[Value::Text(pend.clone())],
        )
        .map_err(|e| RotationError::from(e).context("looking up the user"))?;
    let existing: Vec<String> = (0..hosts.rows.len())
        .filter_map(|r| hosts.text(r, 1).map(str::to_string))
        .collect();
    let pend_acct = if existing.is_empty() {
        let acct = account(pend, &cur_host);
        conn.execute(&format!("CREATE USER {acct} IDENTIFIED BY {literal}"), &[])
            .map_err(|e| RotationError::from(e).context(format!("CREATE USER {acct}")))?;
        log::info(format!("created {acct}"));
        acct
    } else {
        let host = if existing.contains(&cur_host) {
            cur_host.clone()
        } else {
            existing[0].clone()
        };
        let acct = account(pend, &host);
        conn.execute(&format!("ALTER USER {acct} IDENTIFIED BY {literal}"), &[])
            .map_err(|e| RotationError::from(e).context(format!("ALTER USER {acct}")))?;
        log::info(format!("set a new password for {acct}"));
        acct
    };

    // Replay CURRENT's grants (every time: GRANT is idempotent, and a crash half-way heals).
    let cur_acct = account(cur, &cur_host);
    let grants = conn
        .query(&format!("SHOW GRANTS FOR {cur_acct}"), &[])
        .map_err(|e| RotationError::from(e).context(format!("SHOW GRANTS FOR {cur_acct}")))?;
    let mut replayed = 0;
    for r in 0..grants.rows.len() {
        let Some(row) = grants.text(r, 0) else {
            continue;
        };
        if let Some(stmt) = retarget_grant(row, cur, &cur_host, &pend_acct)? {
            conn.execute(&stmt, &[]).map_err(|e| {
                RotationError::from(e).context(format!("replaying a grant onto {pend_acct}"))
            })?;
            replayed += 1;
        }
    }
    log::info(format!(
        "replayed {replayed} grant(s) of {cur_acct} onto {pend_acct}"
    ));
    copy_tls_requirement(&conn, cur, &cur_host, &pend_acct);
    Ok(())
}

impl Rotator for Mysql {
    fn create(input: &StepInput) -> Result<String, RotationError> {
        sdk::create_db_pending(ENGINE, input, name_limit(input)?)
    }

    fn set(input: &StepInput) -> Result<(), RotationError> {
        let s = sdk::prepare_db_set(ENGINE, input)?;
        match s.strategy {
            Strategy::SingleUser => set_single_user(input, &s.current, &s.pending, s.tls),
            Strategy::AlternatingUsers => set_alternating(input, &s.current, &s.pending, s.tls),
        }
    }

    fn test(input: &StepInput) -> Result<(), RotationError> {
        sdk::test_db_pending(ENGINE, input, "SELECT 1")
    }
}

sdk::export_rotator!(Mysql);
