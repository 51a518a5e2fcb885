//! PostgreSQL password rotator.
//!
//! Secret value: AWS's RDS JSON, `{"engine": "postgres", "host", "port", "username",
//! "password", "dbname"}` (other fields are kept).
//!
//! Rotation config:
//! - `strategy` = `single-user` (default) | `alternating-users`
//! - `master_secret` = name of the superuser secret (alternating users; else the secret's
//!   `masterarn` field). The rotation must also grant it (`--grant-secret`).
//! - `tls` = `verify-full` (default) | `require` | `disable`
//! - `password_length`, `exclude_characters`, `exclude_punctuation`: the password policy.
//!
//! Steps (AWS's templates, made stricter):
//! - create: copy CURRENT, new password; alternating users also flips `app` ↔ `app_clone`.
//! - set: check PENDING's user and server against CURRENT first, then return at once if
//!   PENDING already logs in. Single user: log in as CURRENT (PREVIOUS as a fallback) and
//!   `ALTER ROLE … WITH PASSWORD <SCRAM verifier>`. Alternating: log in as CURRENT (to prove
//!   the caller owns it), then as the superuser create or alter the other role and grant it
//!   CURRENT's role.
//! - test: log in as PENDING and `SELECT now()`.
//! - finish: nothing (the host moves the labels).
//!
//! The password never appears in SQL text: the host turns it into a SCRAM-SHA-256 verifier.

use coffer_rotator_sdk::sql::{self, Connection, Engine, TlsMode, Value};
use coffer_rotator_sdk::{
    self as sdk, alternate_username, log, login_current_or_previous, pending_works, DbSecret,
    RotationError, Rotator, StepInput, Strategy,
};

const ENGINE: Engine = Engine::Postgres;
/// PostgreSQL's NAMEDATALEN - 1.
const NAME_LIMIT: usize = 63;

struct Postgres;

fn parse(label: &str, value: &str) -> Result<DbSecret, RotationError> {
    sdk::parse_db_secret(ENGINE, label, value)
}

fn q(ident: &str) -> String {
    sql::quote_ident(ENGINE, ident)
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
    let stmt = format!(
        "ALTER ROLE {} WITH PASSWORD {}",
        q(user),
        sql::password_literal(ENGINE, user, &pending.password)
    );
    conn.execute(&stmt, &[])
        .map_err(|e| RotationError::from(e).context(format!("ALTER ROLE {}", q(user))))?;
    log::info(format!("set a new password for role {}", q(user)));
    Ok(())
}

/// The superuser secret: rotation config `master_secret`, else CURRENT's `masterarn`.
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

fn is_direct_member(conn: &Connection, member: &str, of: &str) -> Result<bool, RotationError> {
    let rows = conn
        .query(
            "SELECT 1 FROM pg_auth_members m \
             JOIN pg_roles r ON r.oid = m.roleid JOIN pg_roles u ON u.oid = m.member \
             WHERE r.rolname = $1 AND u.rolname = $2",
            &[Value::Text(of.to_string()), Value::Text(member.to_string())],
        )
        .map_err(|e| RotationError::from(e).context("reading role memberships"))?;
    Ok(!rows.is_empty())
}

fn set_alternating(
    input: &StepInput,
    current: &DbSecret,
    pending: &DbSecret,
    tls: TlsMode,
) -> Result<(), RotationError> {
    let expected = alternate_username(&current.username, NAME_LIMIT)?;
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
    match Connection::open(&current.connect_options(ENGINE, tls)) {
        Ok(conn) => drop(conn),
        Err(e) if e.is_auth() => {
            return Err(RotationError::auth_failed(format!(
                "CURRENT cannot log in as {:?}, so the superuser will not act for it: {}",
                current.username,
                e.message()
            )))
        }
        Err(e) => return Err(RotationError::from(e).context("logging in with CURRENT")),
    }
    let master = master_secret(input, current)?;
    let mut opts = master.connect_options(ENGINE, tls);
    if opts.database.is_none() {
        opts.database = current.dbname.clone();
    }
    let conn = Connection::open(&opts)
        .map_err(|e| RotationError::from(e).context("logging in as the superuser"))?;

    let (cur, pend) = (&current.username, &pending.username);
    let literal = sql::password_literal(ENGINE, pend, &pending.password);
    let exists = !conn
        .query(
            "SELECT 1 FROM pg_roles WHERE rolname = $1",
            &[Value::Text(pend.clone())],
        )
        .map_err(|e| RotationError::from(e).context("looking up the role"))?
        .is_empty();
    if exists {
        conn.execute(
            &format!("ALTER ROLE {} WITH PASSWORD {literal}", q(pend)),
            &[],
        )
        .map_err(|e| RotationError::from(e).context(format!("ALTER ROLE {}", q(pend))))?;
        log::info(format!("set a new password for role {}", q(pend)));
    } else {
        conn.execute(
            &format!("CREATE ROLE {} WITH LOGIN PASSWORD {literal}", q(pend)),
            &[],
        )
        .map_err(|e| RotationError::from(e).context(format!("CREATE ROLE {}", q(pend))))?;
        log::info(format!("created role {}", q(pend)));
    }
    // Grant CURRENT's privileges, unless the two roles are already linked (either way round:
    // after the first rotation `app_clone` is a member of `app`, and granting back would be
    // circular). Checked on every call, so a crash between CREATE and GRANT heals on retry.
    if !is_direct_member(&conn, pend, cur)? && !is_direct_member(&conn, cur, pend)? {
        conn.execute(&format!("GRANT {} TO {}", q(cur), q(pend)), &[])
            .map_err(|e| {
                RotationError::from(e).context(format!("GRANT {} TO {}", q(cur), q(pend)))
            })?;
        log::info(format!("granted {} to {}", q(cur), q(pend)));
    }
    Ok(())
}

impl Rotator for Postgres {
    fn create(input: &StepInput) -> Result<String, RotationError> {
        sdk::create_db_pending(ENGINE, input, NAME_LIMIT)
    }

    fn set(input: &StepInput) -> Result<(), RotationError> {
        let s = sdk::prepare_db_set(ENGINE, input)?;
        match s.strategy {
            Strategy::SingleUser => set_single_user(input, &s.current, &s.pending, s.tls),
            Strategy::AlternatingUsers => set_alternating(input, &s.current, &s.pending, s.tls),
        }
    }

    fn test(input: &StepInput) -> Result<(), RotationError> {
        sdk::test_db_pending(ENGINE, input, "SELECT now()")
    }
}

sdk::export_rotator!(Postgres);
