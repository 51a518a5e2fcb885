//! Server settings: defaults, overridden by a TOML file, overridden by `COFFER_*`
//! environment variables, overridden by command-line flags (applied by the CLI).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Everything the server can be told. Every field is also an environment variable:
/// `COFFER_` + the field name in upper case (`COFFER_LISTEN`, `COFFER_DATA_DIR`, …;
/// lists are comma-separated).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address to listen on (default `127.0.0.1:8330`).
    pub listen: SocketAddr,
    /// Data directory: sled store, root key file, admin token (default `./coffer-data`).
    pub data_dir: PathBuf,
    /// Root key file (default `<data_dir>/root.key`).
    pub root_key_file: Option<PathBuf>,
    /// Cedar policy directory (default `./policies` when present, else the built-in set).
    pub policy_dir: Option<PathBuf>,
    /// Regions; the first is the default for requests without `X-Coffer-Region`.
    pub regions: Vec<String>,
    /// Dev mode: in-memory state, fixed printed admin token, loopback only.
    pub dev: bool,
    /// Log format: `text` or `json`.
    pub log_format: String,
    /// Log filter (tracing `EnvFilter` syntax), e.g. `info` or `coffer_server=debug`.
    pub log_level: String,
    /// Largest accepted request body in bytes (default 262,144).
    pub max_body_bytes: usize,
    /// Most versions kept per secret (default 100).
    pub max_versions: usize,
    /// sled page cache in MiB (default 16: holds 100,000 secrets under 100 MiB RSS).
    pub store_cache_mb: u64,
    /// Seconds between housekeeping runs (purges, key rotation), default 60.
    pub housekeeping_interval_secs: u64,
    /// Seconds to wait for in-flight requests on shutdown (default 30).
    pub shutdown_grace_secs: u64,
    /// Also append every audit record to this JSON-lines file (created 0600). The store
    /// holds the authoritative, hash-chained log; when this file cannot be written,
    /// requests fail closed (503) like when the store cannot.
    pub audit_file: Option<PathBuf>,
    /// Days audit records are kept in the store (default 0: forever). Once a day's worth
    /// of a segment file is past it, the whole segment is removed; the chain stays
    /// verifiable from the oldest record kept, and the removal is itself audited.
    pub audit_retention_days: u32,
    /// Milliseconds between runs of the rotation scheduler (default 30,000).
    pub rotation_tick_ms: u64,
    /// More directories of rotation plugins (`<dir>/<name>/plugin.toml`), besides
    /// `<data_dir>/plugins`.
    pub plugin_dirs: Vec<PathBuf>,
    /// TEST ONLY, from `COFFER_TEST_CRASH_AFTER_STEP` (never from the file): abort the
    /// process right after this rotation step's progress is stored (`create`, `set`,
    /// `test` or `finish`), to test crash recovery.
    #[serde(skip)]
    pub test_crash_after_step: Option<String>,
    /// `COFFER_*` variables that name no setting (logged as a warning at start, since
    /// they are usually typos).
    #[serde(skip)]
    pub unknown_env: Vec<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8330)),
            data_dir: PathBuf::from("coffer-data"),
            root_key_file: None,
            policy_dir: None,
            regions: vec!["local".to_string()],
            dev: false,
            log_format: "text".to_string(),
            log_level: "info".to_string(),
            max_body_bytes: 256 * 1024,
            max_versions: 100,
            store_cache_mb: 16,
            housekeeping_interval_secs: 60,
            shutdown_grace_secs: 30,
            audit_file: None,
            audit_retention_days: 0,
            rotation_tick_ms: 30_000,
            plugin_dirs: Vec::new(),
            test_crash_after_step: None,
            unknown_env: Vec::new(),
        }
    }
}

/// A configuration problem, named precisely.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// File.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this config.
    #[error("config file {path}: {message}")]
    Parse {
        /// File.
        path: PathBuf,
        /// Parser message (with line and column).
        message: String,
    },
    /// An environment variable has a bad value.
    #[error("environment variable {var}: {message}")]
    Env {
        /// Variable.
        var: String,
        /// What is wrong.
        message: String,
    },
    /// The combination of settings is not allowed.
    #[error("{0}")]
    Invalid(String),
}

impl Config {
    /// Defaults, then `file` (if any), then `COFFER_*` variables from `env`.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let mut cfg = match file {
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|source| ConfigError::Read {
                    path: p.to_path_buf(),
                    source,
                })?;
                toml::from_str(&text).map_err(|e| ConfigError::Parse {
                    path: p.to_path_buf(),
                    message: e.to_string(),
                })?
            }
            None => Config::default(),
        };
        for (k, v) in env {
            let Some(field) = k.strip_prefix("COFFER_") else {
                continue;
            };
            let bad = |m: &str| ConfigError::Env {
                var: k.clone(),
                message: m.to_string(),
            };
            match field {
                "LISTEN" => cfg.listen = v.parse().map_err(|_| bad("expected HOST:PORT"))?,
                "DATA_DIR" => cfg.data_dir = PathBuf::from(&v),
                "ROOT_KEY_FILE" => cfg.root_key_file = Some(PathBuf::from(&v)),
                "POLICY_DIR" => cfg.policy_dir = Some(PathBuf::from(&v)),
                "REGIONS" => {
                    cfg.regions = v
                        .split(',')
                        .map(|s| s.trim().to_string())
                        .filter(|s| !s.is_empty())
                        .collect()
                }
                "DEV" => cfg.dev = parse_bool(&v).ok_or_else(|| bad("expected true or false"))?,
                "LOG_FORMAT" => cfg.log_format = v.clone(),
                "LOG_LEVEL" => cfg.log_level = v.clone(),
                "MAX_BODY_BYTES" => {
                    cfg.max_body_bytes = v.parse().map_err(|_| bad("expected a number"))?
                }
                "MAX_VERSIONS" => {
                    cfg.max_versions = v.parse().map_err(|_| bad("expected a number"))?
                }
                "STORE_CACHE_MB" => {
                    cfg.store_cache_mb = v.parse().map_err(|_| bad("expected a number"))?
                }
                "HOUSEKEEPING_INTERVAL_SECS" => {
                    cfg.housekeeping_interval_secs =
                        v.parse().map_err(|_| bad("expected a number"))?
                }
                "AUDIT_FILE" => cfg.audit_file = Some(PathBuf::from(&v)).filter(|_| !v.is_empty()),
                "AUDIT_RETENTION_DAYS" => {
                    cfg.audit_retention_days =
                        v.parse().map_err(|_| bad("expected a number of days"))?
                }
                "PLUGIN_DIRS" => {
                    cfg.plugin_dirs = v
                        .split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(PathBuf::from)
                        .collect()
                }
                "ROTATION_TICK_MS" => {
                    cfg.rotation_tick_ms = v.parse().map_err(|_| bad("expected a number"))?
                }
                "TEST_CRASH_AFTER_STEP" => {
                    if coffer_core::rotation_api::RotationStep::parse(&v).is_none() {
                        return Err(bad("expected create, set, test or finish"));
                    }
                    cfg.test_crash_after_step = Some(v.clone())
                }
                "SHUTDOWN_GRACE_SECS" => {
                    cfg.shutdown_grace_secs = v.parse().map_err(|_| bad("expected a number"))?
                }
                // Client-side variables share the prefix; they are not server settings.
                "ADDR" | "TOKEN" | "REGION" | "OUTPUT" | "CONFIG" => {}
                _ => cfg.unknown_env.push(k.clone()),
            }
        }
        Ok(cfg)
    }

    /// Checks combinations that cannot work.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.dev && !self.listen.ip().is_loopback() {
            return Err(ConfigError::Invalid(format!(
                "dev mode refuses to listen on {}: it has a fixed, public admin token; use a loopback address such as 127.0.0.1",
                self.listen
            )));
        }
        if !matches!(self.log_format.as_str(), "text" | "json") {
            return Err(ConfigError::Invalid(format!(
                "log_format must be text or json, not {:?}",
                self.log_format
            )));
        }
        if self.regions.is_empty() {
            return Err(ConfigError::Invalid(
                "regions must name at least one region".into(),
            ));
        }
        if self.max_body_bytes < 1024 {
            return Err(ConfigError::Invalid(
                "max_body_bytes must be at least 1024".into(),
            ));
        }
        if self.max_versions < 2 {
            return Err(ConfigError::Invalid(
                "max_versions must be at least 2".into(),
            ));
        }
        Ok(())
    }
}

fn parse_bool(s: &str) -> Option<bool> {
    match s.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Some(true),
        "0" | "false" | "no" | "off" | "" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_then_env_override_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.toml");
        std::fs::write(
            &f,
            "listen = \"127.0.0.1:9000\"\nregions = [\"eu\", \"us\"]\n",
        )
        .unwrap();
        let cfg = Config::load(
            Some(&f),
            vec![("COFFER_DATA_DIR".to_string(), "/tmp/x".to_string())],
        )
        .unwrap();
        assert_eq!(cfg.listen.port(), 9000);
        assert_eq!(cfg.regions, vec!["eu", "us"]);
        assert_eq!(cfg.data_dir, PathBuf::from("/tmp/x"));
    }

    #[test]
    fn bad_input_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.toml");
        std::fs::write(&f, "lisen = 1\n").unwrap();
        let e = Config::load(Some(&f), Vec::new()).unwrap_err().to_string();
        assert!(e.contains("c.toml") && e.contains("lisen"), "{e}");
        let e = Config::load(None, vec![("COFFER_LISTEN".into(), "nope".into())])
            .unwrap_err()
            .to_string();
        assert!(e.contains("COFFER_LISTEN"), "{e}");
        let cfg = Config::load(None, vec![("COFFER_BOGUS".into(), "1".into())]).unwrap();
        assert_eq!(cfg.unknown_env, vec!["COFFER_BOGUS"]);
    }

    #[test]
    fn dev_mode_refuses_public_addresses() {
        let cfg = Config {
            dev: true,
            listen: "0.0.0.0:8330".parse().unwrap(),
            ..Config::default()
        };
        assert!(cfg.validate().is_err());
        let cfg = Config {
            dev: true,
            ..Config::default()
        };
        assert!(cfg.validate().is_ok());
    }
}
