//! `coffer server`: settings from flags, then `COFFER_*` variables, then the TOML file,
//! then defaults; then run the server.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Args;
use coffer_core::rotation_api::{PluginSecretReader, RotationRunner};
use coffer_plugins::{PluginHost, PluginHostConfig};

/// Flags of `coffer server`. Each also reads its `COFFER_*` environment variable; any
/// other setting goes in the TOML file given with `--config` (see README).
#[derive(Debug, Args)]
pub struct ServerArgs {
    /// Address to listen on [default: 127.0.0.1:8330].
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// Data directory (sled store, root key file, admin token) [default: ./coffer-data].
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// TOML configuration file.
    #[arg(long, env = "COFFER_CONFIG")]
    pub config: Option<PathBuf>,
    /// Cedar policy directory [default: ./policies when present, else the built-in set].
    #[arg(long)]
    pub policy_dir: Option<PathBuf>,
    /// Dev mode: in-memory state, fixed printed admin token, loopback only.
    #[arg(long)]
    pub dev: bool,
    /// Log format: text or json.
    #[arg(long)]
    pub log_format: Option<String>,
    /// A directory of rotation plugins (`<dir>/<name>/plugin.toml` + the .wasm), loaded
    /// besides `<data-dir>/plugins`; repeatable.
    #[arg(long = "plugin-dir", value_name = "DIR")]
    pub plugin_dirs: Vec<PathBuf>,
}

/// Runs the server.
pub async fn run(args: ServerArgs) -> anyhow::Result<()> {
    let mut cfg = coffer_server::Config::load(args.config.as_deref(), std::env::vars())?;
    if let Some(l) = args.listen {
        cfg.listen = l;
    }
    if let Some(d) = args.data_dir {
        cfg.data_dir = d;
    }
    if let Some(p) = args.policy_dir {
        cfg.policy_dir = Some(p);
    }
    if args.dev {
        cfg.dev = true;
    }
    if let Some(f) = args.log_format {
        cfg.log_format = f;
    }
    cfg.plugin_dirs.extend(args.plugin_dirs);
    let host_config = plugin_host_config(&cfg);
    if !cfg.dev {
        // The place `coffer plugin install` writes to; an empty one is normal.
        let dir = cfg.data_dir.join("plugins");
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    coffer_server::serve_with_rotation(
        cfg,
        Box::new(move |reader: Arc<dyn PluginSecretReader>| {
            // Compiling plugins is CPU work (cached across restarts as .cwasm files).
            let host = tokio::task::block_in_place(|| PluginHost::new(host_config, reader))
                .context("starting the plugin host")?;
            for p in host.list() {
                match &p.error {
                    None => tracing::info!(plugin = %p.name, version = %p.version, dir = %p.dir.display(), capabilities = %p.capabilities, "rotation plugin loaded"),
                    Some(e) => tracing::error!(plugin = %p.name, dir = %p.dir.display(), error = %e, "rotation plugin NOT loaded"),
                }
            }
            Ok(Arc::new(host) as Arc<dyn RotationRunner>)
        }),
    )
    .await
}

/// Plugins come from `<data-dir>/plugins` (where `coffer plugin install` puts them) and
/// every `--plugin-dir`; compiled code is cached in `<data-dir>/plugin-cache` (a private
/// temporary directory in dev mode, which keeps nothing on disk).
fn plugin_host_config(cfg: &coffer_server::Config) -> PluginHostConfig {
    let mut dirs = Vec::new();
    let cache_dir = if cfg.dev {
        std::env::temp_dir().join(format!("coffer-dev-plugin-cache-{}", std::process::id()))
    } else {
        dirs.push(cfg.data_dir.join("plugins"));
        cfg.data_dir.join("plugin-cache")
    };
    dirs.extend(cfg.plugin_dirs.iter().cloned());
    PluginHostConfig { dirs, cache_dir }
}
