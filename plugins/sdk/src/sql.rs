//! SQL to the databases the plugin's manifest allows (`capabilities.sql`).
//!
//! The statements run through real drivers in the host (tokio-postgres, mysql_async). The host
//! checks the destination against the manifest before it connects, so a refused destination
//! is an [`Error::Denied`] and no packet is sent.

use crate::bindings::coffer::rotator::sql as raw;
use crate::{RotationError, StepInput};

pub use raw::{ConnectOptions, Engine, Error, RowSet, TlsMode, Value};

/// An open connection. It is closed when dropped (and in any case when the step ends).
#[derive(Debug)]
pub struct Connection {
    inner: raw::Connection,
}

impl Connection {
    /// Connects and logs in. `Error::Auth` means the server refused the credentials,
    /// `Error::Connect`/`Error::Timeout` that it could not be reached, `Error::Denied` that the
    /// manifest does not allow the destination.
    pub fn open(options: &ConnectOptions) -> Result<Self, Error> {
        raw::Connection::open(options).map(|inner| Connection { inner })
    }

    /// Runs a statement that returns rows. Parameters are `$1, $2…` (PostgreSQL) or `?`
    /// (MySQL).
    pub fn query(&self, statement: &str, params: &[Value]) -> Result<RowSet, Error> {
        self.inner.query(statement, params)
    }

    /// Runs a statement and returns the number of rows affected.
    pub fn execute(&self, statement: &str, params: &[Value]) -> Result<u64, Error> {
        self.inner.execute(statement, params)
    }
}

/// Quotes an identifier (role or user name) for the engine: `"name"` for PostgreSQL,
/// `` `name` `` for MySQL.
pub fn quote_ident(engine: Engine, ident: &str) -> String {
    raw::quote_ident(engine, ident)
}

/// The literal to put after `PASSWORD` / `IDENTIFIED BY`, for statements that take no bind
/// parameters. For PostgreSQL it is a SCRAM-SHA-256 verifier computed in the host, so the
/// plaintext never reaches the database's statement log; for MySQL a quoted string.
pub fn password_literal(engine: Engine, user: &str, password: &str) -> String {
    raw::password_literal(engine, user, password)
}

/// The TLS mode from the rotation config key `tls` (`verify-full`, `require` or `disable`).
/// Defaults to `verify-full`; there is never a silent fallback to plaintext.
pub fn tls_mode(input: &StepInput) -> Result<TlsMode, RotationError> {
    match input.config("tls") {
        None => Ok(TlsMode::VerifyFull),
        Some(v) => TlsMode::parse(v).ok_or_else(|| {
            RotationError::invalid_secret(format!(
                "rotation config `tls` = {v:?} is not one of verify-full, require, disable"
            ))
        }),
    }
}

impl TlsMode {
    /// Parses `verify-full`, `require` or `disable` (case-insensitive, `_` accepted for `-`).
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().replace('_', "-").as_str() {
            "verify-full" => Some(TlsMode::VerifyFull),
            "require" => Some(TlsMode::Require),
            "disable" => Some(TlsMode::Disable),
            _ => None,
        }
    }

    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            TlsMode::VerifyFull => "verify-full",
            TlsMode::Require => "require",
            TlsMode::Disable => "disable",
        }
    }
}

impl Engine {
    /// The engine of an AWS-style `engine` field: `postgres`, `postgresql`,
    /// `aurora-postgresql` → PostgreSQL; `mysql`, `mariadb`, `aurora`, `aurora-mysql` → MySQL.
    pub fn from_secret_engine(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "postgres" | "postgresql" | "aurora-postgresql" => Some(Engine::Postgres),
            "mysql" | "mariadb" | "aurora" | "aurora-mysql" => Some(Engine::Mysql),
            _ => None,
        }
    }

    /// 5432 or 3306.
    pub fn default_port(self) -> u16 {
        match self {
            Engine::Postgres => 5432,
            Engine::Mysql => 3306,
        }
    }

    /// `postgres` or `mysql`.
    pub fn as_str(self) -> &'static str {
        match self {
            Engine::Postgres => "postgres",
            Engine::Mysql => "mysql",
        }
    }
}

impl Error {
    /// True when the server refused the credentials.
    pub fn is_auth(&self) -> bool {
        matches!(self, Error::Auth(_))
    }

    /// The message without the variant name.
    pub fn message(&self) -> &str {
        match self {
            Error::Denied(m) | Error::Connect(m) | Error::Auth(m) | Error::Query(m) => m,
            Error::Timeout => "timed out",
        }
    }
}

/// `denied` → `denied`, `connect`/`timeout` → `unreachable`, `auth` → `auth-failed`,
/// `query` → `target-refused`.
impl From<Error> for RotationError {
    fn from(e: Error) -> Self {
        match e {
            Error::Denied(m) => RotationError::Denied(m),
            Error::Connect(m) => RotationError::Unreachable(m),
            Error::Timeout => RotationError::Unreachable("database timed out".into()),
            Error::Auth(m) => RotationError::AuthFailed(m),
            Error::Query(m) => RotationError::TargetRefused(m),
        }
    }
}

impl Value {
    /// The text of a `text` value, or of a `bytes` value that is UTF-8 (MySQL returns many
    /// strings as bytes).
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Value::Text(s) => Some(s),
            Value::Bytes(b) => std::str::from_utf8(b).ok(),
            _ => None,
        }
    }

    /// The integer of an `int` value.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// True for `null`.
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }
}

impl RowSet {
    /// True when the statement returned no rows.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The value at `row`, `col`.
    pub fn get(&self, row: usize, col: usize) -> Option<&Value> {
        self.rows.get(row).and_then(|r| r.get(col))
    }

    /// The text at `row`, `col` (see [`Value::as_text`]).
    pub fn text(&self, row: usize, col: usize) -> Option<&str> {
        self.get(row, col).and_then(Value::as_text)
    }
}
