//! The AWS RDS secret shape, shared by the database rotators.

use serde_json::{Map, Value};

use crate::log;
use crate::sql::{ConnectOptions, Connection, Engine, TlsMode};
use crate::{RotationError, StepInput};

/// A database credential in AWS's RDS JSON shape:
/// `{"engine", "host", "port", "username", "password", "dbname", "masterarn"}`.
///
/// Fields the rotator does not know are kept in [`DbSecret::extra`] and written back by
/// [`DbSecret::to_json`], so `create` can copy CURRENT and change only the password (and, for
/// alternating users, the username). Parse errors name the offending field but never echo a
/// value.
#[derive(Clone, PartialEq)]
pub struct DbSecret {
    /// `postgres`, `mysql`, `mariadb`, `aurora-postgresql`, … (optional).
    pub engine: Option<String>,
    /// Host name or IP address of the database.
    pub host: String,
    /// Port; when absent the engine's default is used. A string such as `"5432"` is accepted.
    pub port: Option<u16>,
    /// The login (role) name.
    pub username: String,
    /// The password.
    pub password: String,
    /// Database to connect to (optional).
    pub dbname: Option<String>,
    /// Name of the secret holding the superuser credential (alternating users). Coffer prefers
    /// the rotation config key `master_secret`; the field is kept for AWS compatibility.
    pub masterarn: Option<String>,
    /// Every other field, preserved as is.
    pub extra: Map<String, Value>,
}

impl std::fmt::Debug for DbSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DbSecret")
            .field("engine", &self.engine)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("dbname", &self.dbname)
            .field("masterarn", &self.masterarn)
            .field("extra_fields", &self.extra.keys().collect::<Vec<_>>())
            .finish()
    }
}

fn invalid(msg: impl Into<String>) -> RotationError {
    RotationError::invalid_secret(msg)
}

fn take_string(map: &mut Map<String, Value>, key: &str) -> Result<Option<String>, RotationError> {
    match map.remove(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(invalid(format!("secret field `{key}` must be a string"))),
    }
}

fn require(value: Option<String>, key: &str) -> Result<String, RotationError> {
    match value {
        Some(s) if !s.is_empty() => Ok(s),
        Some(_) => Err(invalid(format!("secret field `{key}` is empty"))),
        None => Err(invalid(format!("secret value has no `{key}` field"))),
    }
}

impl DbSecret {
    /// Parses a secret value. `host`, `username` and `password` are required.
    pub fn parse(value: &str) -> Result<Self, RotationError> {
        let parsed: Value = serde_json::from_str(value).map_err(|e| {
            invalid(format!(
                "secret value is not valid JSON (line {}, column {})",
                e.line(),
                e.column()
            ))
        })?;
        let Value::Object(mut map) = parsed else {
            return Err(invalid("secret value is not a JSON object"));
        };
        let engine = take_string(&mut map, "engine")?;
        let host = require(take_string(&mut map, "host")?, "host")?;
        let port = match map.remove("port") {
            None | Some(Value::Null) => None,
            Some(Value::Number(n)) => Some(
                n.as_u64()
                    .and_then(|p| u16::try_from(p).ok())
                    .filter(|p| *p != 0)
                    .ok_or_else(|| invalid("secret field `port` is not a port number"))?,
            ),
            Some(Value::String(s)) => Some(
                s.trim()
                    .parse::<u16>()
                    .ok()
                    .filter(|p| *p != 0)
                    .ok_or_else(|| invalid("secret field `port` is not a port number"))?,
            ),
            Some(_) => return Err(invalid("secret field `port` must be a number")),
        };
        let username = require(take_string(&mut map, "username")?, "username")?;
        let password = require(take_string(&mut map, "password")?, "password")?;
        let dbname = take_string(&mut map, "dbname")?.filter(|s| !s.is_empty());
        let masterarn = take_string(&mut map, "masterarn")?.filter(|s| !s.is_empty());
        Ok(DbSecret {
            engine,
            host,
            port,
            username,
            password,
            dbname,
            masterarn,
            extra: map,
        })
    }

    /// Serialises back to JSON, with every unknown field preserved.
    pub fn to_json(&self) -> String {
        let mut map = self.extra.clone();
        if let Some(e) = &self.engine {
            map.insert("engine".into(), Value::String(e.clone()));
        }
        map.insert("host".into(), Value::String(self.host.clone()));
        if let Some(p) = self.port {
            map.insert("port".into(), Value::from(p));
        }
        map.insert("username".into(), Value::String(self.username.clone()));
        map.insert("password".into(), Value::String(self.password.clone()));
        if let Some(d) = &self.dbname {
            map.insert("dbname".into(), Value::String(d.clone()));
        }
        if let Some(m) = &self.masterarn {
            map.insert("masterarn".into(), Value::String(m.clone()));
        }
        Value::Object(map).to_string()
    }

    /// Fails with `invalid-secret` when `engine` is set and names another engine family.
    pub fn check_engine(&self, expected: Engine) -> Result<(), RotationError> {
        match &self.engine {
            None => Ok(()),
            Some(e) => match Engine::from_secret_engine(e) {
                Some(found) if found == expected => Ok(()),
                _ => Err(invalid(format!(
                    "secret engine {e:?} is not handled by the {} rotator",
                    expected.as_str()
                ))),
            },
        }
    }

    /// The port, or the engine's default port.
    pub fn port_or_default(&self, engine: Engine) -> u16 {
        self.port.unwrap_or(engine.default_port())
    }

    /// True when both point at the same server (host compared case-insensitively, ports with
    /// the engine default filled in).
    pub fn same_server(&self, other: &DbSecret, engine: Engine) -> bool {
        self.host.eq_ignore_ascii_case(&other.host)
            && self.port_or_default(engine) == other.port_or_default(engine)
    }

    /// Connection options to log in as this secret's user.
    pub fn connect_options(&self, engine: Engine, tls: TlsMode) -> ConnectOptions {
        ConnectOptions {
            engine,
            host: self.host.clone(),
            port: self.port_or_default(engine),
            database: self.dbname.clone(),
            user: self.username.clone(),
            password: self.password.clone(),
            tls,
        }
    }
}

/// How a database rotator changes credentials (rotation config key `strategy`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Strategy {
    /// `single-user` (default): change the password of the one user in the secret. Clients
    /// holding the old password fail between `set` and the label move.
    SingleUser,
    /// `alternating-users`: two users (`name` and `name_clone`) take turns; the PREVIOUS one
    /// keeps working, so rotation causes no downtime. Needs a superuser secret.
    AlternatingUsers,
}

impl Strategy {
    /// Reads the rotation config key `strategy`: `single-user` (default) or
    /// `alternating-users` (`single`/`alternating` accepted too).
    pub fn from_config(input: &crate::StepInput) -> Result<Self, RotationError> {
        match input
            .config("strategy")
            .map(|s| s.trim().to_ascii_lowercase())
        {
            None => Ok(Strategy::SingleUser),
            Some(s) => match s.replace('_', "-").as_str() {
                "single-user" | "single" => Ok(Strategy::SingleUser),
                "alternating-users" | "alternating" | "multi-user" => {
                    Ok(Strategy::AlternatingUsers)
                }
                _ => Err(invalid(format!(
                    "rotation config `strategy` = {s:?} is not single-user or alternating-users"
                ))),
            },
        }
    }
}

/// The suffix that alternating users toggle.
pub const CLONE_SUFFIX: &str = "_clone";

/// The other user of an alternating pair: `app` ↔ `app_clone` (AWS's `get_alt_username`).
/// Fails with `invalid-secret` when `app_clone` would be longer than `limit` characters.
pub fn alternate_username(username: &str, limit: usize) -> Result<String, RotationError> {
    if let Some(base) = username.strip_suffix(CLONE_SUFFIX) {
        if base.is_empty() {
            return Err(invalid(
                "username `_clone` has no base name to alternate with",
            ));
        }
        return Ok(base.to_string());
    }
    let alt = format!("{username}{CLONE_SUFFIX}");
    if alt.chars().count() > limit {
        return Err(invalid(format!(
            "cannot alternate users: {username:?} + {CLONE_SUFFIX:?} is longer than {limit} characters"
        )));
    }
    Ok(alt)
}

/// Does PENDING already log in? `Ok(true)`: yes; `Ok(false)`: the server refused the
/// credentials; `Err`: anything else (unreachable, denied).
pub fn pending_works(
    engine: Engine,
    pending: &DbSecret,
    tls: TlsMode,
) -> Result<bool, RotationError> {
    match Connection::open(&pending.connect_options(engine, tls)) {
        Ok(conn) => {
            conn.query("SELECT 1", &[]).map_err(|e| {
                RotationError::from(e).context("PENDING logged in but SELECT 1 failed")
            })?;
            Ok(true)
        }
        Err(e) if e.is_auth() => Ok(false),
        Err(e) => Err(RotationError::from(e).context("logging in with PENDING")),
    }
}

/// Logs in as CURRENT; when CURRENT's password is refused, tries PREVIOUS's password for the
/// same user (a rotation that was interrupted after `set`).
pub fn login_current_or_previous(
    engine: Engine,
    input: &StepInput,
    current: &DbSecret,
    tls: TlsMode,
) -> Result<Connection, RotationError> {
    let current_err = match Connection::open(&current.connect_options(engine, tls)) {
        Ok(conn) => return Ok(conn),
        Err(e) if e.is_auth() => e,
        Err(e) => return Err(RotationError::from(e).context("logging in with CURRENT")),
    };
    if let Some(prev) = &input.previous {
        match DbSecret::parse(&prev.value) {
            Ok(prev) if prev.username == current.username && prev.same_server(current, engine) => {
                let mut opts = current.connect_options(engine, tls);
                opts.password = prev.password;
                match Connection::open(&opts) {
                    Ok(conn) => {
                        log::warn("CURRENT's password was refused; logged in with PREVIOUS's");
                        return Ok(conn);
                    }
                    Err(e) if e.is_auth() => {}
                    Err(e) => {
                        return Err(RotationError::from(e).context("logging in with PREVIOUS"))
                    }
                }
            }
            Ok(_) => log::warn("PREVIOUS is for another user or server; not trying it"),
            Err(e) => log::warn(format!("PREVIOUS is unusable: {}", e.message())),
        }
    }
    Err(RotationError::auth_failed(format!(
        "neither CURRENT nor PREVIOUS can log in as {:?}: {}",
        current.username,
        current_err.message()
    )))
}

/// Parses a version's value as a [`DbSecret`] for `engine`; errors name the version
/// (`label`, e.g. "CURRENT").
pub fn parse_db_secret(
    engine: Engine,
    label: &str,
    value: &str,
) -> Result<DbSecret, RotationError> {
    let s = DbSecret::parse(value).map_err(|e| e.context(label))?;
    s.check_engine(engine).map_err(|e| e.context(label))?;
    Ok(s)
}

/// The `create` step of a database rotator: CURRENT with a new password from the rotation
/// config's password policy, and for alternating users the other user name (at most
/// `name_limit` characters).
pub fn create_db_pending(
    engine: Engine,
    input: &StepInput,
    name_limit: usize,
) -> Result<String, RotationError> {
    let strategy = Strategy::from_config(input)?;
    crate::sql::tls_mode(input)?;
    let mut secret = parse_db_secret(engine, "CURRENT", &input.current.value)?;
    if strategy == Strategy::AlternatingUsers {
        secret.username = alternate_username(&secret.username, name_limit)?;
    }
    secret.password = crate::generate_password(&crate::PasswordPolicy::from_config(input)?)?;
    Ok(secret.to_json())
}

/// The `test` step of a database rotator: log in with PENDING and run `probe`.
pub fn test_db_pending(
    engine: Engine,
    input: &StepInput,
    probe: &str,
) -> Result<(), RotationError> {
    let tls = crate::sql::tls_mode(input)?;
    let pending = parse_db_secret(engine, "PENDING", &input.pending()?.value)?;
    let conn = Connection::open(&pending.connect_options(engine, tls)).map_err(|e| match e {
        crate::sql::Error::Auth(m) => RotationError::verification_failed(format!(
            "PENDING cannot log in as {:?}: {m}",
            pending.username
        )),
        e => RotationError::from(e).context("logging in with PENDING"),
    })?;
    conn.query(probe, &[]).map_err(|e| {
        RotationError::verification_failed(format!(
            "PENDING logged in but {probe} failed: {}",
            e.message()
        ))
    })?;
    log::info(format!("PENDING logs in as {:?}", pending.username));
    Ok(())
}

/// What the `set` step of a database rotator starts from: the strategy and TLS mode of the
/// rotation config, CURRENT and PENDING (checked to point at the same server).
pub struct DbSetInput {
    /// From config `strategy`.
    pub strategy: Strategy,
    /// From config `tls`.
    pub tls: TlsMode,
    /// The CURRENT credentials.
    pub current: DbSecret,
    /// The PENDING credentials.
    pub pending: DbSecret,
}

/// Parses and checks the input of a database rotator's `set` step.
pub fn prepare_db_set(engine: Engine, input: &StepInput) -> Result<DbSetInput, RotationError> {
    let strategy = Strategy::from_config(input)?;
    let tls = crate::sql::tls_mode(input)?;
    let current = parse_db_secret(engine, "CURRENT", &input.current.value)?;
    let pending = parse_db_secret(engine, "PENDING", &input.pending()?.value)?;
    if !pending.same_server(&current, engine) {
        return Err(RotationError::invalid_secret(
            "PENDING points at another server than CURRENT",
        ));
    }
    Ok(DbSetInput {
        strategy,
        tls,
        current,
        pending,
    })
}
