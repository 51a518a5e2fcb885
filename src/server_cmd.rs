//! `coffer server`: settings from flags, then `COFFER_*` variables, then the TOML file,
//! then defaults; then run the server.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;

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
    coffer_server::serve(cfg).await
}
