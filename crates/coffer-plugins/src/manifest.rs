//! `plugin.toml`: parse and validate a rotator's manifest.
//!
//! ```toml
//! name = "postgres"            # [a-z0-9-], 1..64
//! version = "0.1.0"
//! description = "..."
//! wasm = "postgres.wasm"       # relative to the manifest's directory
//! wit = "0.1.0"                # coffer:rotator version the plugin was built against
//! [capabilities]
//! sql = [ { engine = "postgres", hosts = ["127.0.0.1:5432", "*.db.internal:5432", "db:*"] } ]
//! http = ["https://api.example.com", "http://127.0.0.1:*"]
//! secrets = ["prod/db/*"]
//! [limits]
//! fuel = 2_000_000_000
//! memory_mib = 64
//! step_timeout_secs = 30
//! ```

use std::fmt;
use std::path::{Component as PathComponent, Path, PathBuf};

use serde::Deserialize;

use crate::error::PluginError;

/// File name of a plugin manifest inside its directory.
pub const MANIFEST_FILE: &str = "plugin.toml";
/// Default CPU budget per step.
pub const DEFAULT_FUEL: u64 = 2_000_000_000;
/// Largest accepted CPU budget per step.
pub const MAX_FUEL: u64 = 1_000_000_000_000;
/// Default memory cap.
pub const DEFAULT_MEMORY_MIB: u64 = 64;
/// Largest accepted memory cap.
pub const MAX_MEMORY_MIB: u64 = 1024;
/// Default wall-clock cap per step.
pub const DEFAULT_STEP_TIMEOUT_SECS: u64 = 30;
/// Largest accepted wall-clock cap per step.
pub const MAX_STEP_TIMEOUT_SECS: u64 = 900;
/// `coffer:rotator` versions (major, minor) this host can run.
pub const SUPPORTED_WIT: &[(u64, u64)] = &[(0, 1)];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    name: String,
    version: String,
    #[serde(default)]
    description: String,
    wasm: String,
    wit: String,
    #[serde(default)]
    capabilities: RawCapabilities,
    #[serde(default)]
    limits: RawLimits,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawCapabilities {
    #[serde(default)]
    sql: Vec<RawSqlGrant>,
    #[serde(default)]
    http: Vec<String>,
    #[serde(default)]
    secrets: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSqlGrant {
    engine: String,
    hosts: Vec<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    fuel: Option<u64>,
    memory_mib: Option<u64>,
    step_timeout_secs: Option<u64>,
}

/// A validated manifest.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// Plugin name (`[a-z0-9-]`, 1..64).
    pub name: String,
    /// The plugin's own version.
    pub version: String,
    /// Free text.
    pub description: String,
    /// The `wasm` field as written.
    pub wasm: String,
    /// Absolute (manifest-dir-joined) path of the component.
    pub wasm_path: PathBuf,
    /// The `coffer:rotator` version it was built against.
    pub wit: String,
    /// What the plugin may reach.
    pub capabilities: Capabilities,
    /// Sandbox limits per step.
    pub limits: Limits,
    /// Path of the `plugin.toml` this came from.
    pub path: PathBuf,
}

/// The `[capabilities]` table.
#[derive(Debug, Clone, Default)]
pub struct Capabilities {
    /// Databases per engine.
    pub sql: Vec<SqlGrant>,
    /// HTTP origins.
    pub http: Vec<UrlPattern>,
    /// Secret names readable through `get-secret`.
    pub secrets: Vec<SecretPattern>,
}

/// The `[limits]` table, with defaults applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// CPU budget (wasmtime fuel) per step.
    pub fuel: u64,
    /// Linear memory cap.
    pub memory_mib: u64,
    /// Wall clock per step.
    pub step_timeout_secs: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            fuel: DEFAULT_FUEL,
            memory_mib: DEFAULT_MEMORY_MIB,
            step_timeout_secs: DEFAULT_STEP_TIMEOUT_SECS,
        }
    }
}

/// Database engine of a SQL grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SqlEngine {
    /// PostgreSQL.
    Postgres,
    /// MySQL / MariaDB.
    Mysql,
}

impl SqlEngine {
    /// `postgres` or `mysql`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Postgres => "postgres",
            Self::Mysql => "mysql",
        }
    }
}

impl fmt::Display for SqlEngine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `[[capabilities.sql]]`: an engine and the `host:port` patterns it may reach.
#[derive(Debug, Clone)]
pub struct SqlGrant {
    /// Engine.
    pub engine: SqlEngine,
    /// Allowed destinations.
    pub hosts: Vec<HostPattern>,
}

/// A host name pattern: exact, `*.suffix`, or `*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostMatch {
    /// Any host.
    Any,
    /// Any subdomain of this suffix (stored with its leading dot, lower case).
    Suffix(String),
    /// Exactly this host (lower case; IPv6 without brackets).
    Exact(String),
}

impl HostMatch {
    fn parse(host: &str) -> Result<Self, String> {
        if host == "*" {
            return Ok(Self::Any);
        }
        if let Some(rest) = host.strip_prefix("*.") {
            validate_host_name(rest)?;
            return Ok(Self::Suffix(format!(".{}", rest.to_ascii_lowercase())));
        }
        if host.contains('*') {
            return Err(format!(
                "host `{host}`: `*` is only allowed as the whole host or as a leading `*.`"
            ));
        }
        if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
            v6.parse::<std::net::Ipv6Addr>()
                .map_err(|_| format!("host `{host}` is not a valid IPv6 address"))?;
            return Ok(Self::Exact(v6.to_ascii_lowercase()));
        }
        validate_host_name(host)?;
        Ok(Self::Exact(host.to_ascii_lowercase()))
    }

    /// Whether `host` (no brackets) matches.
    pub fn matches(&self, host: &str) -> bool {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let host = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
        match self {
            Self::Any => true,
            Self::Suffix(s) => host.len() > s.len() && host.ends_with(s.as_str()),
            Self::Exact(h) => *h == host,
        }
    }

    /// Whether this is exactly the IP literal `ip` (not a name, not a wildcard).
    pub fn is_ip_literal(&self, ip: std::net::IpAddr) -> bool {
        matches!(self, Self::Exact(h) if h.parse::<std::net::IpAddr>() == Ok(ip))
    }
}

impl fmt::Display for HostMatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Any => f.write_str("*"),
            Self::Suffix(s) => write!(f, "*{s}"),
            Self::Exact(h) if h.contains(':') => write!(f, "[{h}]"),
            Self::Exact(h) => f.write_str(h),
        }
    }
}

fn validate_host_name(host: &str) -> Result<(), String> {
    let ok = !host.is_empty()
        && host.len() <= 253
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_')
        && !host.starts_with('.')
        && !host.contains("..");
    if ok {
        Ok(())
    } else {
        Err(format!("`{host}` is not a valid host name or IP address"))
    }
}

fn parse_port(port: &str, whole: &str) -> Result<Option<u16>, String> {
    if port == "*" {
        return Ok(None);
    }
    match port.parse::<u16>() {
        Ok(p) if p != 0 => Ok(Some(p)),
        _ => Err(format!("`{whole}`: port `{port}` must be 1-65535 or `*`")),
    }
}

/// `host:port` with wildcards (`*.db.internal:5432`, `db:*`, `[::1]:5432`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPattern {
    /// Host part.
    pub host: HostMatch,
    /// `None` = any port.
    pub port: Option<u16>,
}

impl HostPattern {
    /// Parses `host:port`.
    pub fn parse(s: &str) -> Result<Self, String> {
        if s == "*" {
            return Err(
                "a bare `*` is not allowed; write `*:*` to allow any host and port \
                 (and think twice)"
                    .into(),
            );
        }
        let (host, port) = s
            .rsplit_once(':')
            .filter(|(h, _)| !h.is_empty() && (!h.contains(':') || h.starts_with('[')))
            .ok_or_else(|| format!("`{s}` must be `host:port` (use `host:*` for any port)"))?;
        Ok(Self {
            host: HostMatch::parse(host).map_err(|e| format!("`{s}`: {e}"))?,
            port: parse_port(port, s)?,
        })
    }

    /// Whether `host:port` matches.
    pub fn matches(&self, host: &str, port: u16) -> bool {
        self.port.is_none_or(|p| p == port) && self.host.matches(host)
    }

    /// Whether the pattern names the IP literal `ip` as its host and matches `port`.
    pub fn names_ip(&self, ip: std::net::IpAddr, port: u16) -> bool {
        self.port.is_none_or(|p| p == port) && self.host.is_ip_literal(ip)
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.port {
            Some(p) => write!(f, "{}:{p}", self.host),
            None => write!(f, "{}:*", self.host),
        }
    }
}

/// `scheme://host[:port]` with wildcards (Spin's `allowed_outbound_hosts` syntax).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlPattern {
    /// `http`, `https`, or `None` for `*`.
    pub scheme: Option<String>,
    /// Host and port; a missing port means the scheme's default port.
    pub host: HostPattern,
}

impl UrlPattern {
    /// Parses `scheme://host[:port]`.
    pub fn parse(s: &str) -> Result<Self, String> {
        if s == "*" {
            return Err(
                "a bare `*` is not allowed; write `*://*:*` to allow any origin (and think twice)"
                    .into(),
            );
        }
        let (scheme, rest) = s
            .split_once("://")
            .ok_or_else(|| format!("`{s}` must look like `https://host[:port]`"))?;
        let scheme = match scheme {
            "*" => None,
            "http" | "https" => Some(scheme.to_string()),
            other => {
                return Err(format!(
                    "`{s}`: scheme `{other}` is not supported (use http, https or *)"
                ))
            }
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains('/') || rest.contains('?') || rest.contains('#') || rest.contains('@') {
            return Err(format!(
                "`{s}`: only `scheme://host[:port]` is allowed, without path, query or user"
            ));
        }
        let has_port = match rest.rfind(':') {
            Some(i) => {
                !rest[..i].ends_with(':') && (!rest.starts_with('[') || rest[..i].ends_with(']'))
            }
            None => false,
        };
        let host = if has_port {
            HostPattern::parse(rest)?
        } else {
            let port = match scheme.as_deref() {
                Some("https") => 443,
                Some(_) => 80,
                None => {
                    return Err(format!(
                        "`{s}`: with the `*` scheme give a port (`:*` for any port)"
                    ))
                }
            };
            HostPattern {
                host: HostMatch::parse(rest).map_err(|e| format!("`{s}`: {e}"))?,
                port: Some(port),
            }
        };
        Ok(Self { scheme, host })
    }

    /// Whether a destination matches.
    pub fn matches(&self, scheme: &str, host: &str, port: u16) -> bool {
        self.scheme.as_deref().is_none_or(|s| s == scheme) && self.host.matches(host, port)
    }

    /// Whether the pattern names the IP literal `ip` as its host and matches the rest.
    pub fn names_ip(&self, scheme: &str, ip: std::net::IpAddr, port: u16) -> bool {
        self.scheme.as_deref().is_none_or(|s| s == scheme) && self.host.names_ip(ip, port)
    }
}

impl fmt::Display for UrlPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}://{}",
            self.scheme.as_deref().unwrap_or("*"),
            self.host
        )
    }
}

/// A secret name, exact or with a trailing `*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretPattern {
    /// As written.
    pub pattern: String,
}

impl SecretPattern {
    fn parse(s: &str) -> Result<Self, String> {
        let body = s.strip_suffix('*').unwrap_or(s);
        if s.is_empty() || s == "*" {
            return Err(
                "secret patterns must name a secret or a prefix (`prod/db/*`); a bare `*` is not allowed"
                    .into(),
            );
        }
        if body.contains('*') {
            return Err(format!(
                "secret pattern `{s}`: `*` is only allowed at the end"
            ));
        }
        if s.len() > 512 || s.chars().any(|c| c.is_control()) {
            return Err(format!("secret pattern `{s}` is not a valid secret name"));
        }
        Ok(Self {
            pattern: s.to_string(),
        })
    }

    /// Whether `name` matches.
    pub fn matches(&self, name: &str) -> bool {
        match self.pattern.strip_suffix('*') {
            Some(prefix) => name.starts_with(prefix),
            None => self.pattern == name,
        }
    }
}

impl fmt::Display for SecretPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.pattern)
    }
}

/// Parses the `wit` field and checks this host supports it.
fn check_wit(wit: &str) -> Result<(), String> {
    let mut parts = wit.split('.');
    let nums: Vec<Option<u64>> = parts.by_ref().take(3).map(|p| p.parse().ok()).collect();
    let (major, minor) = match (nums.as_slice(), parts.next()) {
        ([Some(a), Some(b), Some(_)], None) | ([Some(a), Some(b)], None) => (*a, *b),
        _ => {
            return Err(format!(
                "wit = \"{wit}\" must be the coffer:rotator version the plugin was built against, e.g. \"0.1.0\""
            ))
        }
    };
    if SUPPORTED_WIT.contains(&(major, minor)) {
        Ok(())
    } else {
        let supported: Vec<String> = SUPPORTED_WIT
            .iter()
            .map(|(a, b)| format!("{a}.{b}.x"))
            .collect();
        Err(format!(
            "the plugin was built against coffer:rotator@{wit}, but this Coffer supports only {}; \
             rebuild the plugin against a supported SDK or upgrade Coffer",
            supported.join(", ")
        ))
    }
}

impl Manifest {
    /// Reads and validates `path` (a `plugin.toml`).
    pub fn load(path: &Path) -> Result<Self, PluginError> {
        let text = std::fs::read_to_string(path).map_err(|e| PluginError::Manifest {
            path: path.to_path_buf(),
            message: format!("cannot read it: {e}"),
        })?;
        Self::parse(&text, path)
    }

    /// Validates manifest text; `path` locates the wasm file and names the manifest in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self, PluginError> {
        let err = |message: String| PluginError::Manifest {
            path: path.to_path_buf(),
            message,
        };
        let raw: RawManifest = toml::from_str(text).map_err(|e| err(e.to_string()))?;

        if raw.name.is_empty()
            || raw.name.len() > 64
            || !raw
                .name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        {
            return Err(err(format!(
                "name = \"{}\": use 1 to 64 characters from a-z, 0-9 and `-`",
                raw.name
            )));
        }
        if raw.version.is_empty()
            || raw.version.len() > 64
            || !raw
                .version
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '+'))
        {
            return Err(err(format!(
                "version = \"{}\": use a version such as \"0.1.0\"",
                raw.version
            )));
        }
        if raw.description.len() > 1024 {
            return Err(err("description is longer than 1024 characters".into()));
        }
        let wasm_rel = Path::new(&raw.wasm);
        let wasm_ok = raw.wasm.ends_with(".wasm")
            && wasm_rel
                .components()
                .all(|c| matches!(c, PathComponent::Normal(_) | PathComponent::CurDir));
        if !wasm_ok {
            return Err(err(format!(
                "wasm = \"{}\": give the .wasm file's path relative to the manifest's directory \
                 (no absolute paths, no `..`)",
                raw.wasm
            )));
        }
        check_wit(&raw.wit).map_err(err)?;

        let mut sql = Vec::new();
        for (i, g) in raw.capabilities.sql.iter().enumerate() {
            let engine = match g.engine.as_str() {
                "postgres" => SqlEngine::Postgres,
                "mysql" => SqlEngine::Mysql,
                other => {
                    return Err(err(format!(
                        "capabilities.sql[{i}].engine = \"{other}\": use \"postgres\" or \"mysql\""
                    )))
                }
            };
            if g.hosts.is_empty() {
                return Err(err(format!(
                    "capabilities.sql[{i}].hosts is empty: list the `host:port` the plugin may connect to"
                )));
            }
            let hosts = g
                .hosts
                .iter()
                .map(|h| HostPattern::parse(h))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| err(format!("capabilities.sql[{i}].hosts: {e}")))?;
            sql.push(SqlGrant { engine, hosts });
        }
        let http = raw
            .capabilities
            .http
            .iter()
            .map(|u| UrlPattern::parse(u))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| err(format!("capabilities.http: {e}")))?;
        let secrets = raw
            .capabilities
            .secrets
            .iter()
            .map(|s| SecretPattern::parse(s))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| err(format!("capabilities.secrets: {e}")))?;

        let fuel = raw.limits.fuel.unwrap_or(DEFAULT_FUEL);
        if fuel == 0 || fuel > MAX_FUEL {
            return Err(err(format!(
                "limits.fuel = {fuel}: use 1 to {MAX_FUEL} (default {DEFAULT_FUEL})"
            )));
        }
        let memory_mib = raw.limits.memory_mib.unwrap_or(DEFAULT_MEMORY_MIB);
        if !(1..=MAX_MEMORY_MIB).contains(&memory_mib) {
            return Err(err(format!(
                "limits.memory_mib = {memory_mib}: use 1 to {MAX_MEMORY_MIB} (default {DEFAULT_MEMORY_MIB})"
            )));
        }
        let step_timeout_secs = raw
            .limits
            .step_timeout_secs
            .unwrap_or(DEFAULT_STEP_TIMEOUT_SECS);
        if !(1..=MAX_STEP_TIMEOUT_SECS).contains(&step_timeout_secs) {
            return Err(err(format!(
                "limits.step_timeout_secs = {step_timeout_secs}: use 1 to {MAX_STEP_TIMEOUT_SECS} \
                 (default {DEFAULT_STEP_TIMEOUT_SECS})"
            )));
        }

        let dir = path.parent().unwrap_or(Path::new("."));
        Ok(Self {
            wasm_path: dir.join(wasm_rel),
            name: raw.name,
            version: raw.version,
            description: raw.description,
            wasm: raw.wasm,
            wit: raw.wit,
            capabilities: Capabilities { sql, http, secrets },
            limits: Limits {
                fuel,
                memory_mib,
                step_timeout_secs,
            },
            path: path.to_path_buf(),
        })
    }

    /// The directory holding the manifest.
    pub fn dir(&self) -> &Path {
        self.path.parent().unwrap_or(Path::new("."))
    }

    /// One-line summary of the capabilities, for listings.
    pub fn capabilities_summary(&self) -> String {
        let mut parts = Vec::new();
        for g in &self.capabilities.sql {
            let hosts: Vec<String> = g.hosts.iter().map(ToString::to_string).collect();
            parts.push(format!("sql {} {}", g.engine, hosts.join(",")));
        }
        if !self.capabilities.http.is_empty() {
            let urls: Vec<String> = self
                .capabilities
                .http
                .iter()
                .map(ToString::to_string)
                .collect();
            parts.push(format!("http {}", urls.join(",")));
        }
        if !self.capabilities.secrets.is_empty() {
            let s: Vec<String> = self
                .capabilities
                .secrets
                .iter()
                .map(ToString::to_string)
                .collect();
            parts.push(format!("secrets {}", s.join(",")));
        }
        if parts.is_empty() {
            "none".into()
        } else {
            parts.join("; ")
        }
    }

    /// Whether the manifest lets the plugin reach `engine` at `host:port`.
    pub fn allows_sql(&self, engine: SqlEngine, host: &str, port: u16) -> bool {
        self.capabilities
            .sql
            .iter()
            .filter(|g| g.engine == engine)
            .any(|g| g.hosts.iter().any(|h| h.matches(host, port)))
    }

    /// Whether the manifest lets the plugin send HTTP to this origin.
    pub fn allows_http(&self, scheme: &str, host: &str, port: u16) -> bool {
        self.capabilities
            .http
            .iter()
            .any(|u| u.matches(scheme, host, port))
    }

    /// Whether a `sql` grant of `engine` names the IP literal `ip` (with `port`) as a host:
    /// the operator's explicit opt-in to an address the egress block-list refuses.
    pub fn names_sql_ip(&self, engine: SqlEngine, ip: std::net::IpAddr, port: u16) -> bool {
        self.capabilities
            .sql
            .iter()
            .filter(|g| g.engine == engine)
            .any(|g| g.hosts.iter().any(|h| h.names_ip(ip, port)))
    }

    /// Whether an `http` origin names the IP literal `ip` (with `scheme` and `port`).
    pub fn names_http_ip(&self, scheme: &str, ip: std::net::IpAddr, port: u16) -> bool {
        self.capabilities
            .http
            .iter()
            .any(|u| u.names_ip(scheme, ip, port))
    }

    /// Whether the manifest lets the plugin read secret `name`.
    pub fn allows_secret(&self, name: &str) -> bool {
        self.capabilities.secrets.iter().any(|p| p.matches(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
name = "postgres"
version = "0.1.0"
description = "rotates PostgreSQL passwords"
wasm = "postgres.wasm"
wit = "0.1.0"
[capabilities]
sql = [ { engine = "postgres", hosts = ["127.0.0.1:5432", "*.db.internal:5432", "db:*"] } ]
http = ["https://api.example.com", "http://127.0.0.1:*"]
secrets = ["prod/db/*", "master"]
[limits]
fuel = 1_000_000
memory_mib = 32
step_timeout_secs = 5
"#;

    fn parse(text: &str) -> Result<Manifest, String> {
        Manifest::parse(text, Path::new("/plugins/pg/plugin.toml")).map_err(|e| e.to_string())
    }

    fn with(replace: &str, by: &str) -> String {
        assert!(GOOD.contains(replace), "{replace}");
        GOOD.replacen(replace, by, 1)
    }

    #[test]
    fn good_manifest_parses() {
        let m = parse(GOOD).unwrap();
        assert_eq!(m.name, "postgres");
        assert_eq!(m.wasm_path, Path::new("/plugins/pg/postgres.wasm"));
        assert_eq!(m.limits.fuel, 1_000_000);
        assert_eq!(m.limits.memory_mib, 32);
        assert!(m.allows_sql(SqlEngine::Postgres, "127.0.0.1", 5432));
        assert!(m.allows_sql(SqlEngine::Postgres, "a.db.internal", 5432));
        assert!(m.allows_sql(SqlEngine::Postgres, "x.y.DB.internal", 5432));
        assert!(!m.allows_sql(SqlEngine::Postgres, "db.internal", 5432));
        assert!(!m.allows_sql(SqlEngine::Postgres, "a.db.internal", 5433));
        assert!(m.allows_sql(SqlEngine::Postgres, "db", 1));
        assert!(!m.allows_sql(SqlEngine::Mysql, "127.0.0.1", 5432));
        assert!(!m.allows_sql(SqlEngine::Postgres, "169.254.169.254", 5432));
        assert!(m.allows_http("https", "api.example.com", 443));
        assert!(!m.allows_http("http", "api.example.com", 80));
        assert!(!m.allows_http("https", "api.example.com", 8443));
        assert!(m.allows_http("http", "127.0.0.1", 8080));
        assert!(!m.allows_http("https", "evil.example.com", 443));
        assert!(m.allows_secret("prod/db/master"));
        assert!(m.allows_secret("master"));
        assert!(!m.allows_secret("master2"));
        assert!(!m.allows_secret("prod/web/x"));
        assert!(m.capabilities_summary().contains("sql postgres"));
    }

    #[test]
    fn defaults_apply() {
        let m =
            parse("name = \"x\"\nversion = \"1\"\nwasm = \"x.wasm\"\nwit = \"0.1.0\"\n").unwrap();
        assert_eq!(m.limits, Limits::default());
        assert!(!m.allows_secret("anything"));
        assert_eq!(m.capabilities_summary(), "none");
    }

    #[test]
    fn invalid_manifests_are_refused_with_a_useful_message() {
        let cases: Vec<(String, &str)> = vec![
            (
                with("name = \"postgres\"", "name = \"Postgres\""),
                "a-z, 0-9",
            ),
            (with("name = \"postgres\"", "name = \"\""), "1 to 64"),
            (
                with("wit = \"0.1.0\"", "wit = \"0.2.0\""),
                "supports only 0.1.x",
            ),
            (
                with("wit = \"0.1.0\"", "wit = \"1.1.0\""),
                "supports only 0.1.x",
            ),
            (with("wit = \"0.1.0\"", "wit = \"latest\""), "built against"),
            (
                with("wasm = \"postgres.wasm\"", "wasm = \"../x.wasm\""),
                "relative",
            ),
            (
                with("wasm = \"postgres.wasm\"", "wasm = \"/etc/x.wasm\""),
                "relative",
            ),
            (
                with("memory_mib = 32", "memory_mib = 4096"),
                "limits.memory_mib",
            ),
            (
                with("step_timeout_secs = 5", "step_timeout_secs = 901"),
                "step_timeout_secs",
            ),
            (with("fuel = 1_000_000", "fuel = 0"), "limits.fuel"),
            (with("http = [", "http = [\"*\", "), "bare `*`"),
            (with("http = [", "http = [\"ftp://x\", "), "scheme `ftp`"),
            (
                with("http = [", "http = [\"https://x/path\", "),
                "without path",
            ),
            (with("\"db:*\"", "\"db\""), "host:port"),
            (with("\"db:*\"", "\"*\""), "bare `*`"),
            (with("\"db:*\"", "\"d*b:1\""), "leading `*.`"),
            (
                with("engine = \"postgres\"", "engine = \"oracle\""),
                "\"postgres\" or \"mysql\"",
            ),
            (with("secrets = [", "secrets = [\"*\", "), "bare `*`"),
            (
                with("secrets = [", "secrets = [\"a*b\", "),
                "only allowed at the end",
            ),
            (with("[limits]", "[limits]\ncpu = 1"), "unknown field `cpu`"),
            (
                with(
                    "version = \"0.1.0\"",
                    "version = \"0.1.0\"\nauthor = \"me\"",
                ),
                "unknown field `author`",
            ),
            ("name = \"x\"".to_string(), "missing field"),
        ];
        for (text, want) in cases {
            let e = parse(&text).expect_err(&text);
            assert!(e.contains("/plugins/pg/plugin.toml"), "{e}");
            assert!(e.contains(want), "expected `{want}` in: {e}");
        }
    }

    #[test]
    fn url_and_host_patterns() {
        let p = UrlPattern::parse("*://*.example.com:*").unwrap();
        assert!(p.matches("http", "a.example.com", 1234));
        assert!(!p.matches("http", "example.com", 1234));
        let p = UrlPattern::parse("https://[::1]:8443").unwrap();
        assert!(p.matches("https", "[::1]", 8443));
        assert!(p.matches("https", "::1", 8443));
        assert_eq!(p.to_string(), "https://[::1]:8443");
        let h = HostPattern::parse("[::1]:*").unwrap();
        assert!(h.matches("::1", 5));
        assert!(UrlPattern::parse("*://x").is_err());
        assert!(HostPattern::parse("::1:5432").is_err());
    }

    #[test]
    fn ip_literals_are_named_only_exactly() {
        let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
        let meta = ip("169.254.169.254");
        let m = parse(&with(
            "http = [\"https://api.example.com\", \"http://127.0.0.1:*\"]",
            "http = [\"http://169.254.169.254\", \"*://*:*\", \"https://[FE80::1]:8443\"]",
        ))
        .unwrap();
        assert!(m.names_http_ip("http", meta, 80));
        assert!(!m.names_http_ip("https", meta, 80));
        assert!(!m.names_http_ip("http", meta, 8080));
        assert!(!m.names_http_ip("http", ip("169.254.1.1"), 80));
        assert!(m.names_http_ip("https", ip("fe80::1"), 8443));
        // `*` allows the name but does not name the address.
        assert!(m.allows_http("http", "169.254.1.1", 80));
        assert!(!m.names_http_ip("http", ip("169.254.1.1"), 80));

        let m = parse(&with("\"db:*\"", "\"169.254.10.10:*\"")).unwrap();
        assert!(m.names_sql_ip(SqlEngine::Postgres, ip("169.254.10.10"), 5432));
        assert!(!m.names_sql_ip(SqlEngine::Mysql, ip("169.254.10.10"), 5432));
        assert!(!m.names_sql_ip(SqlEngine::Postgres, ip("169.254.10.11"), 5432));
    }
}
