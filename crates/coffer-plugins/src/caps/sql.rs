//! `coffer:rotator/sql`: connections through tokio-postgres and mysql_async, checked
//! against the manifest before any socket is opened.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::{Digest, Sha256};
use tokio_postgres::types::{to_sql_checked, FromSql, IsNull, ToSql, Type};
use wasmtime::component::Resource;

use crate::bindings::coffer::rotator::sql::{
    ConnectOptions, Engine, Error, Host, HostConnection, RowSet, TlsMode, Value,
};
use crate::egress::{self, EgressError};
use crate::manifest::SqlEngine;
use crate::redact::truncate;
use crate::state::StoreState;

/// Connect timeout (bounded by the step deadline).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Per-statement timeout (bounded by the step deadline).
pub const STATEMENT_TIMEOUT: Duration = Duration::from_secs(30);
/// Open connections per step.
pub const MAX_CONNECTIONS: usize = 8;
/// Rows returned by one `query`.
pub const MAX_ROWS: usize = 10_000;
/// PBKDF2 iterations of the SCRAM verifier (PostgreSQL's default).
pub const SCRAM_ITERATIONS: u32 = 4096;

/// The host object behind a guest's `connection` handle.
pub struct SqlConn {
    engine: SqlEngine,
    dest: String,
    user: String,
    inner: ConnInner,
}

enum ConnInner {
    Pg {
        client: tokio_postgres::Client,
        task: tokio::task::JoinHandle<()>,
    },
    My(Option<mysql_async::Conn>),
}

impl Drop for SqlConn {
    fn drop(&mut self) {
        match &mut self.inner {
            ConnInner::Pg { task, .. } => task.abort(),
            ConnInner::My(conn) => {
                if let Some(c) = conn.take() {
                    if let Ok(h) = tokio::runtime::Handle::try_current() {
                        h.spawn(async move {
                            let _ =
                                tokio::time::timeout(Duration::from_secs(2), c.disconnect()).await;
                        });
                    }
                }
            }
        }
    }
}

fn engine_of(e: Engine) -> SqlEngine {
    match e {
        Engine::Postgres => SqlEngine::Postgres,
        Engine::Mysql => SqlEngine::Mysql,
    }
}

/// `"` doubled (PostgreSQL) or `` ` `` doubled (MySQL), wrapped in the quote.
pub fn quote_ident(engine: SqlEngine, ident: &str) -> String {
    match engine {
        SqlEngine::Postgres => format!("\"{}\"", ident.replace('"', "\"\"")),
        SqlEngine::Mysql => format!("`{}`", ident.replace('`', "``")),
    }
}

/// A MySQL string literal: `'` doubled, `\` escaped.
pub fn mysql_string_literal(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "''"))
}

type HmacSha256 = Hmac<Sha256>;

fn hmac(key: &[u8], msg: &[u8]) -> [u8; 32] {
    // HMAC accepts keys of any length; `new_from_slice` cannot fail for it.
    let mut m = <HmacSha256 as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    m.update(msg);
    m.finalize().into_bytes().into()
}

/// SCRAM keys of RFC 5802: (SaltedPassword, StoredKey, ServerKey).
pub(crate) fn scram_keys(
    password: &str,
    salt: &[u8],
    iterations: u32,
) -> ([u8; 32], [u8; 32], [u8; 32]) {
    let mut salted = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), salt, iterations, &mut salted);
    let client_key = hmac(&salted, b"Client Key");
    let stored_key: [u8; 32] = Sha256::digest(client_key).into();
    let server_key = hmac(&salted, b"Server Key");
    (salted, stored_key, server_key)
}

/// A PostgreSQL SCRAM-SHA-256 verifier
/// (`SCRAM-SHA-256$<iter>:<salt>$<StoredKey>:<ServerKey>`, RFC 5802/7677) with a fresh
/// 16-byte salt. The password is used as UTF-8 without SASLprep, which equals SASLprep
/// for ASCII passwords (what `generate-password` produces).
pub fn scram_sha256_verifier(password: &str) -> String {
    let mut salt = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut salt);
    scram_verifier_with_salt(password, &salt, SCRAM_ITERATIONS)
}

pub(crate) fn scram_verifier_with_salt(password: &str, salt: &[u8], iterations: u32) -> String {
    let (_, stored, server) = scram_keys(password, salt, iterations);
    format!(
        "SCRAM-SHA-256${iterations}:{}${}:{}",
        B64.encode(salt),
        B64.encode(stored),
        B64.encode(server)
    )
}

/// `password-literal`: a quoted SQL literal for `PASSWORD` / `IDENTIFIED BY`.
pub fn password_literal(engine: SqlEngine, password: &str) -> String {
    match engine {
        // base64 and `$:` never need escaping inside a PG string literal.
        SqlEngine::Postgres => format!("'{}'", scram_sha256_verifier(password)),
        SqlEngine::Mysql => mysql_string_literal(password),
    }
}

/// A bind parameter converted to whatever the server inferred for its placeholder.
#[derive(Debug)]
struct PgParam(Value);

impl ToSql for PgParam {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut bytes::BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match &self.0 {
            Value::Null => Ok(IsNull::Yes),
            Value::Boolean(b) => b.to_sql(ty, out),
            Value::Int(i) => match *ty {
                Type::INT2 => i16::try_from(*i)?.to_sql(ty, out),
                Type::INT4 => i32::try_from(*i)?.to_sql(ty, out),
                Type::OID => u32::try_from(*i)?.to_sql(ty, out),
                Type::FLOAT4 => (*i as f32).to_sql(ty, out),
                Type::FLOAT8 => (*i as f64).to_sql(ty, out),
                Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN => {
                    i.to_string().to_sql(ty, out)
                }
                _ => i.to_sql(ty, out),
            },
            Value::Float(f) => match *ty {
                Type::FLOAT4 => (*f as f32).to_sql(ty, out),
                _ => f.to_sql(ty, out),
            },
            Value::Text(s) => s.as_str().to_sql(ty, out),
            Value::Bytes(b) => b.as_slice().to_sql(ty, out),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

/// Any column value, decoded by type; unknown types come back as raw bytes.
struct PgCell(Value);

impl<'a> FromSql<'a> for PgCell {
    fn from_sql(
        ty: &Type,
        raw: &'a [u8],
    ) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(PgCell(match *ty {
            Type::BOOL => Value::Boolean(bool::from_sql(ty, raw)?),
            Type::INT2 => Value::Int(i16::from_sql(ty, raw)?.into()),
            Type::INT4 => Value::Int(i32::from_sql(ty, raw)?.into()),
            Type::INT8 => Value::Int(i64::from_sql(ty, raw)?),
            Type::OID => Value::Int(u32::from_sql(ty, raw)?.into()),
            Type::FLOAT4 => Value::Float(f32::from_sql(ty, raw)?.into()),
            Type::FLOAT8 => Value::Float(f64::from_sql(ty, raw)?),
            Type::BYTEA => Value::Bytes(raw.to_vec()),
            Type::JSONB if raw.first() == Some(&1) => {
                Value::Text(String::from_utf8_lossy(&raw[1..]).into_owned())
            }
            _ if <&str as FromSql>::accepts(ty) || *ty == Type::JSON => {
                Value::Text(String::from_utf8_lossy(raw).into_owned())
            }
            _ => Value::Bytes(raw.to_vec()),
        }))
    }

    fn from_sql_null(_: &Type) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(PgCell(Value::Null))
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

fn pg_error(e: &tokio_postgres::Error, connecting: bool) -> Error {
    use tokio_postgres::error::SqlState;
    let msg = match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => {
            let mut m = e.to_string();
            let mut src = std::error::Error::source(e);
            while let Some(s) = src {
                m.push_str(&format!(": {s}"));
                src = s.source();
            }
            m
        }
    };
    match e.code() {
        Some(c)
            if *c == SqlState::INVALID_PASSWORD
                || *c == SqlState::INVALID_AUTHORIZATION_SPECIFICATION =>
        {
            Error::Auth(msg)
        }
        _ if connecting => Error::Connect(msg),
        _ => Error::Query(msg),
    }
}

fn my_error(e: &mysql_async::Error, connecting: bool) -> Error {
    match e {
        // 1045: wrong password; 1698: no such account / no password accepted for it.
        mysql_async::Error::Server(s) if s.code == 1045 || s.code == 1698 => {
            Error::Auth(format!("{} ({})", s.message, s.code))
        }
        mysql_async::Error::Server(s) if !connecting => {
            Error::Query(format!("{} ({})", s.message, s.code))
        }
        other if connecting => Error::Connect(other.to_string()),
        other => Error::Query(other.to_string()),
    }
}

fn my_value(v: &Value) -> mysql_async::Value {
    match v {
        Value::Null => mysql_async::Value::NULL,
        Value::Boolean(b) => mysql_async::Value::Int(i64::from(*b)),
        Value::Int(i) => mysql_async::Value::Int(*i),
        Value::Float(f) => mysql_async::Value::Double(*f),
        Value::Text(s) => mysql_async::Value::Bytes(s.clone().into_bytes()),
        Value::Bytes(b) => mysql_async::Value::Bytes(b.clone()),
    }
}

fn from_my_value(v: mysql_async::Value) -> Value {
    use mysql_async::Value as M;
    match v {
        M::NULL => Value::Null,
        M::Int(i) => Value::Int(i),
        M::UInt(u) => i64::try_from(u).map_or_else(|_| Value::Text(u.to_string()), Value::Int),
        M::Float(f) => Value::Float(f.into()),
        M::Double(f) => Value::Float(f),
        M::Bytes(b) => match String::from_utf8(b) {
            Ok(s) => Value::Text(s),
            Err(e) => Value::Bytes(e.into_bytes()),
        },
        other @ (M::Date(..) | M::Time(..)) => {
            Value::Text(other.as_sql(true).trim_matches('\'').to_string())
        }
    }
}

fn redact_err(st: &StoreState, e: Error) -> Error {
    let r = |s: String| truncate(&st.step.redactor.redact(&s), 2048);
    match e {
        Error::Denied(s) => Error::Denied(r(s)),
        Error::Connect(s) => Error::Connect(r(s)),
        Error::Auth(s) => Error::Auth(r(s)),
        Error::Query(s) => Error::Query(r(s)),
        Error::Timeout => Error::Timeout,
    }
}

fn error_word(e: &Error) -> &'static str {
    match e {
        Error::Denied(_) => "denied",
        Error::Connect(_) => "connect error",
        Error::Auth(_) => "auth error",
        Error::Query(_) => "query error",
        Error::Timeout => "timeout",
    }
}

/// Connects to `addrs`, the addresses [`egress::resolve_checked`] approved for `o.host`;
/// the drivers do not resolve `o.host` again, it only names the server for TLS.
async fn connect(
    o: &ConnectOptions,
    addrs: &[SocketAddr],
    limit: Duration,
) -> Result<ConnInner, Error> {
    if limit.is_zero() {
        return Err(Error::Timeout);
    }
    match o.engine {
        Engine::Postgres => {
            use tokio_postgres::config::SslMode;
            let mut cfg = tokio_postgres::Config::new();
            // One `host` per `hostaddr`: tokio-postgres connects to `hostaddr` and uses
            // `host` only as the TLS server name (verify-full checks the certificate
            // against the name, not the address).
            for a in addrs {
                cfg.host(&o.host).hostaddr(a.ip());
            }
            cfg.port(o.port)
                .user(&o.user)
                .password(o.password.as_bytes())
                .application_name("coffer-rotator")
                .connect_timeout(limit);
            if let Some(db) = &o.database {
                cfg.dbname(db);
            }
            let fut = async {
                match o.tls {
                    TlsMode::Disable => {
                        cfg.ssl_mode(SslMode::Disable);
                        let (client, conn) = cfg.connect(tokio_postgres::NoTls).await?;
                        let task = tokio::spawn(async move {
                            let _ = conn.await;
                        });
                        Ok::<_, tokio_postgres::Error>(ConnInner::Pg { client, task })
                    }
                    mode => {
                        cfg.ssl_mode(SslMode::Require);
                        let tls = tokio_postgres_rustls::MakeRustlsConnect::new(
                            tls::client_config(mode == TlsMode::VerifyFull),
                        );
                        let (client, conn) = cfg.connect(tls).await?;
                        let task = tokio::spawn(async move {
                            let _ = conn.await;
                        });
                        Ok(ConnInner::Pg { client, task })
                    }
                }
            };
            match tokio::time::timeout(limit, fut).await {
                Err(_) => Err(Error::Timeout),
                Ok(Err(e)) => Err(pg_error(&e, true)),
                Ok(Ok(c)) => Ok(c),
            }
        }
        Engine::Mysql => {
            let ssl = match o.tls {
                TlsMode::Disable => None,
                TlsMode::VerifyFull => Some(mysql_async::SslOpts::default()),
                TlsMode::Require => Some(
                    mysql_async::SslOpts::default()
                        .with_danger_accept_invalid_certs(true)
                        .with_danger_skip_domain_validation(true),
                ),
            };
            // `resolved_ips`: mysql_async connects to these without resolving the name
            // again and verifies the certificate against `ip_or_hostname` (or the TLS
            // hostname override, unset here), so TLS still checks the name.
            let ips: Vec<std::net::IpAddr> = addrs.iter().map(SocketAddr::ip).collect();
            let opts = mysql_async::OptsBuilder::default()
                .ip_or_hostname(o.host.clone())
                .resolved_ips(Some(ips))
                .tcp_port(o.port)
                .user(Some(o.user.clone()))
                .pass(Some(o.password.clone()))
                .db_name(o.database.clone())
                .prefer_socket(false)
                .ssl_opts(ssl);
            match tokio::time::timeout(limit, mysql_async::Conn::new(opts)).await {
                Err(_) => Err(Error::Timeout),
                Ok(Err(e)) => Err(my_error(&e, true)),
                Ok(Ok(c)) => Ok(ConnInner::My(Some(c))),
            }
        }
    }
}

/// Runs a statement; `Ok((columns, rows, affected))`.
async fn run(
    inner: &mut ConnInner,
    statement: &str,
    params: &[Value],
    want_rows: bool,
) -> Result<(Vec<String>, Vec<Vec<Value>>, u64), Error> {
    match inner {
        ConnInner::Pg { client, .. } => {
            let stmt = client
                .prepare(statement)
                .await
                .map_err(|e| pg_error(&e, false))?;
            if stmt.params().len() != params.len() {
                return Err(Error::Query(format!(
                    "the statement has {} parameters but {} were given",
                    stmt.params().len(),
                    params.len()
                )));
            }
            let owned: Vec<PgParam> = params.iter().cloned().map(PgParam).collect();
            let refs: Vec<&(dyn ToSql + Sync)> =
                owned.iter().map(|p| p as &(dyn ToSql + Sync)).collect();
            if want_rows {
                let rows = client
                    .query(&stmt, &refs)
                    .await
                    .map_err(|e| pg_error(&e, false))?;
                if rows.len() > MAX_ROWS {
                    return Err(Error::Query(format!("more than {MAX_ROWS} rows")));
                }
                let columns = stmt
                    .columns()
                    .iter()
                    .map(|c| c.name().to_string())
                    .collect();
                let mut out = Vec::with_capacity(rows.len());
                for row in &rows {
                    let mut vals = Vec::with_capacity(row.len());
                    for i in 0..row.len() {
                        let cell: PgCell = row.try_get(i).map_err(|e| pg_error(&e, false))?;
                        vals.push(cell.0);
                    }
                    out.push(vals);
                }
                Ok((columns, out, 0))
            } else {
                let n = client
                    .execute(&stmt, &refs)
                    .await
                    .map_err(|e| pg_error(&e, false))?;
                Ok((Vec::new(), Vec::new(), n))
            }
        }
        ConnInner::My(conn) => {
            use mysql_async::prelude::Queryable;
            let conn = conn
                .as_mut()
                .ok_or_else(|| Error::Query("connection is closed".into()))?;
            let map = |e: mysql_async::Error| my_error(&e, false);
            let (columns, rows, affected) = if params.is_empty() {
                let mut res = conn.query_iter(statement).await.map_err(map)?;
                let columns: Vec<String> = res
                    .columns_ref()
                    .iter()
                    .map(|c| c.name_str().into_owned())
                    .collect();
                let rows: Vec<mysql_async::Row> = res.collect().await.map_err(map)?;
                let affected = res.affected_rows();
                res.drop_result().await.map_err(map)?;
                (columns, rows, affected)
            } else {
                let p = mysql_async::Params::Positional(params.iter().map(my_value).collect());
                let mut res = conn.exec_iter(statement, p).await.map_err(map)?;
                let columns: Vec<String> = res
                    .columns_ref()
                    .iter()
                    .map(|c| c.name_str().into_owned())
                    .collect();
                let rows: Vec<mysql_async::Row> = res.collect().await.map_err(map)?;
                let affected = res.affected_rows();
                res.drop_result().await.map_err(map)?;
                (columns, rows, affected)
            };
            if rows.len() > MAX_ROWS {
                return Err(Error::Query(format!("more than {MAX_ROWS} rows")));
            }
            let rows = rows
                .into_iter()
                .map(|r| r.unwrap().into_iter().map(from_my_value).collect())
                .collect();
            Ok((columns, rows, affected))
        }
    }
}

impl StoreState {
    async fn statement(
        &mut self,
        handle: &Resource<SqlConn>,
        statement: String,
        params: Vec<Value>,
        want_rows: bool,
    ) -> wasmtime::Result<Result<(Vec<String>, Vec<Vec<Value>>, u64), Error>> {
        let limit = self.step.bounded(STATEMENT_TIMEOUT);
        let conn = self.table.get_mut(handle)?;
        let (engine, dest, user) = (conn.engine, conn.dest.clone(), conn.user.clone());
        let res = if limit.is_zero() {
            Err(Error::Timeout)
        } else {
            match tokio::time::timeout(limit, run(&mut conn.inner, &statement, &params, want_rows))
                .await
            {
                Err(_) => Err(Error::Timeout),
                Ok(r) => r,
            }
        };
        let shown = truncate(&statement, 1024);
        let outcome = match &res {
            Ok((_, rows, n)) if want_rows => format!("{} rows", rows.len()),
            Ok((_, _, n)) => format!("{n} rows affected"),
            Err(e) => error_word(e).to_string(),
        };
        self.step.record(
            "sql",
            format!("{engine} {dest} user={user}: {shown} -> {outcome}"),
        );
        Ok(res.map_err(|e| redact_err(self, e)))
    }
}

impl HostConnection for StoreState {
    async fn open(
        &mut self,
        options: ConnectOptions,
    ) -> wasmtime::Result<Result<Resource<SqlConn>, Error>> {
        let engine = engine_of(options.engine);
        let dest = if options.host.contains(':') {
            format!("[{}]:{}", options.host, options.port)
        } else {
            format!("{}:{}", options.host, options.port)
        };
        let user = truncate(&options.user, 128);
        self.step.redactor.add(&options.password);
        if !self
            .step
            .manifest
            .allows_sql(engine, &options.host, options.port)
        {
            let msg = format!(
                "capability `sql` ({engine}) does not allow {dest}: add it to capabilities.sql in {}",
                self.step.manifest_path()
            );
            self.step.record(
                "sql",
                format!("{engine} {dest} user={user}: denied, not in the manifest"),
            );
            return Ok(Err(Error::Denied(msg)));
        }
        if self.step.open_connections >= MAX_CONNECTIONS {
            self.step.record(
                "sql",
                format!("{engine} {dest} user={user}: too many connections"),
            );
            return Ok(Err(Error::Connect(format!(
                "a step may hold at most {MAX_CONNECTIONS} open connections"
            ))));
        }
        let limit = self.step.bounded(CONNECT_TIMEOUT);
        let started = Instant::now();
        let manifest = self.step.manifest.clone();
        let port = options.port;
        let checked = match egress::resolve_checked_within(&options.host, port, limit, |ip| {
            manifest.names_sql_ip(engine, ip, port)
        })
        .await
        {
            Ok(addrs) => Ok(addrs),
            Err(EgressError::Timeout) => Err(Error::Timeout),
            Err(EgressError::Lookup(m)) => Err(Error::Connect(m)),
            Err(EgressError::Blocked(m)) => {
                self.step
                    .record("sql", format!("{engine} {dest} user={user}: denied, {m}"));
                return Ok(Err(Error::Denied(format!(
                    "capability `sql` ({engine}) refuses {dest}: {m} (capabilities.sql in {})",
                    self.step.manifest_path()
                ))));
            }
        };
        let res = match checked {
            Ok(addrs) => connect(&options, &addrs, limit.saturating_sub(started.elapsed())).await,
            Err(e) => Err(e),
        };
        match res {
            Ok(inner) => {
                self.step.open_connections += 1;
                let tls = match options.tls {
                    TlsMode::VerifyFull => "verify-full",
                    TlsMode::Require => "require",
                    TlsMode::Disable => "disable",
                };
                self.step.record(
                    "sql",
                    format!("{engine} {dest} user={user}: connected (tls {tls})"),
                );
                let conn = SqlConn {
                    engine,
                    dest,
                    user,
                    inner,
                };
                Ok(Ok(self.table.push(conn)?))
            }
            Err(e) => {
                self.step.record(
                    "sql",
                    format!("{engine} {dest} user={user}: {}", error_word(&e)),
                );
                Ok(Err(redact_err(self, e)))
            }
        }
    }

    async fn query(
        &mut self,
        self_: Resource<SqlConn>,
        statement: String,
        params: Vec<Value>,
    ) -> wasmtime::Result<Result<RowSet, Error>> {
        Ok(self
            .statement(&self_, statement, params, true)
            .await?
            .map(|(columns, rows, _)| RowSet { columns, rows }))
    }

    async fn execute(
        &mut self,
        self_: Resource<SqlConn>,
        statement: String,
        params: Vec<Value>,
    ) -> wasmtime::Result<Result<u64, Error>> {
        Ok(self
            .statement(&self_, statement, params, false)
            .await?
            .map(|(_, _, n)| n))
    }

    async fn drop(&mut self, rep: Resource<SqlConn>) -> wasmtime::Result<()> {
        let mut conn = self.table.delete(rep)?;
        self.step.open_connections = self.step.open_connections.saturating_sub(1);
        if let ConnInner::My(c) = &mut conn.inner {
            if let Some(c) = c.take() {
                let _ = tokio::time::timeout(Duration::from_secs(2), c.disconnect()).await;
            }
        }
        Ok(())
    }
}

impl Host for StoreState {
    async fn quote_ident(&mut self, engine: Engine, ident: String) -> wasmtime::Result<String> {
        Ok(quote_ident(engine_of(engine), &ident))
    }

    async fn password_literal(
        &mut self,
        engine: Engine,
        _user: String,
        password: String,
    ) -> wasmtime::Result<String> {
        self.step.redactor.add(&password);
        let lit = password_literal(engine_of(engine), &password);
        // A SCRAM verifier is not the password, but it is what an offline guessing attack
        // needs: keep it out of the trail and the logs like the password itself.
        self.step.redactor.add(&lit);
        Ok(lit)
    }
}

mod tls {
    //! rustls client configs: `verify-full` (webpki roots) and `require` (encrypted, no
    //! certificate check, like libpq's `sslmode=require`).

    use std::sync::Arc;

    use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
    use rustls::crypto::CryptoProvider;
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
    use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

    // ring, like the rest of the workspace (reqwest); rustls 0.23.48 deprecates it only
    // because it lacks post-quantum key exchange.
    #[allow(deprecated)]
    fn provider() -> Arc<CryptoProvider> {
        Arc::new(rustls::crypto::ring::default_provider())
    }

    pub fn client_config(verify: bool) -> ClientConfig {
        let provider = provider();
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap_or_else(|_| unreachable!("ring supports the default protocol versions"));
        if verify {
            let roots = RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            };
            builder.with_root_certificates(roots).with_no_client_auth()
        } else {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(NoVerify(provider)))
                .with_no_client_auth()
        }
    }

    #[derive(Debug)]
    struct NoVerify(Arc<CryptoProvider>);

    impl ServerCertVerifier for NoVerify {
        fn verify_server_cert(
            &self,
            _end_entity: &CertificateDer<'_>,
            _intermediates: &[CertificateDer<'_>],
            _server_name: &ServerName<'_>,
            _ocsp_response: &[u8],
            _now: UnixTime,
        ) -> Result<ServerCertVerified, rustls::Error> {
            Ok(ServerCertVerified::assertion())
        }

        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls12_signature(
                message,
                cert,
                dss,
                &self.0.signature_verification_algorithms,
            )
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(
                message,
                cert,
                dss,
                &self.0.signature_verification_algorithms,
            )
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.0.signature_verification_algorithms.supported_schemes()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(quote_ident(SqlEngine::Postgres, r#"a"b"#), r#""a""b""#);
        assert_eq!(quote_ident(SqlEngine::Mysql, "a`b"), "`a``b`");
        assert_eq!(mysql_string_literal(r"it's \x"), r"'it''s \\x'");
        let lit = password_literal(SqlEngine::Postgres, "pencil");
        assert!(
            lit.starts_with("'SCRAM-SHA-256$4096:") && lit.ends_with('\''),
            "{lit}"
        );
        assert!(!lit.contains("pencil"));
    }

    /// RFC 7677 §3 example: user "user", password "pencil".
    #[test]
    fn scram_matches_rfc7677_vector() {
        let salt = B64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let (salted, stored_key, server_key) = scram_keys("pencil", &salt, 4096);
        let auth_message = "n=user,r=rOprNGfwEbeRWgbNEkqO,\
            r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,\
            c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
        let client_key = hmac(&salted, b"Client Key");
        let client_signature = hmac(&stored_key, auth_message.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(client_signature.iter())
            .map(|(a, b)| a ^ b)
            .collect();
        assert_eq!(
            B64.encode(&proof),
            "dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        );
        let server_signature = hmac(&server_key, auth_message.as_bytes());
        assert_eq!(
            B64.encode(server_signature),
            "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
        );

        // The verifier text carries exactly these keys, in PostgreSQL's layout.
        let v = scram_verifier_with_salt("pencil", &salt, 4096);
        let (head, keys) = v
            .split_once('$')
            .and_then(|(a, b)| Some((a, b.split_once('$')?)))
            .map(|(a, (s, k))| (format!("{a}${s}"), k.to_string()))
            .unwrap();
        assert_eq!(head, "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==");
        let (sk, svk) = keys.split_once(':').unwrap();
        assert_eq!(B64.decode(sk).unwrap(), stored_key);
        assert_eq!(B64.decode(svk).unwrap(), server_key);

        // As the server would: recover ClientKey from the proof and check H(ClientKey).
        let recovered: Vec<u8> = proof
            .iter()
            .zip(client_signature.iter())
            .map(|(a, b)| a ^ b)
            .collect();
        assert_eq!(
            Sha256::digest(&recovered).as_slice(),
            B64.decode(sk).unwrap().as_slice()
        );
    }

    #[test]
    fn fresh_verifiers_use_fresh_salts() {
        let a = scram_sha256_verifier("x");
        let b = scram_sha256_verifier("x");
        assert_ne!(a, b);
        let salt = a.split(['$', ':']).nth(2).unwrap();
        assert_eq!(B64.decode(salt).unwrap().len(), 16);
    }
}
