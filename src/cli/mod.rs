//! The `coffer` command line: the top-level argument shape, the connection options every
//! client command shares, and dispatch to one module per command group.
//!
//! Commands are thin: parse, call [`coffer_client`], print through [`output`].

pub mod audit;
pub mod key;
pub mod key_value;
pub mod output;
pub mod plaintext;
pub mod plugin;
pub mod policy;
pub mod secret;
pub mod sys;
pub mod token;

use anyhow::{bail, Context as _};
use clap::{Args, Parser, Subcommand};
use coffer_client::Client;

use crate::server_cmd;
use output::OutputMode;

/// Where the server listens unless told otherwise.
pub const DEFAULT_ADDR: &str = "http://127.0.0.1:8330";

/// Coffer: a self-hosted secrets vault and key manager.
#[derive(Parser, Debug)]
#[command(name = "coffer", version, propagate_version = true)]
pub struct Cli {
    /// Connection and output options, given before the command.
    #[command(flatten)]
    pub global: GlobalOptions,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The top-level commands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the Coffer server.
    Server(server_cmd::ServerArgs),
    /// Store, read and manage secrets.
    Secret(secret::SecretArgs),
    /// Generate a random password on the server and print it.
    RandomPassword(secret::RandomPasswordArgs),
    /// Manage KMS keys and aliases; encrypt, decrypt, make data keys.
    Key(key::KeyArgs),
    /// Issue, list and revoke API tokens.
    Token(token::TokenArgs),
    /// Server-wide operations.
    Sys(sys::SysArgs),
    /// Read and verify the audit log.
    Audit(audit::AuditArgs),
    /// Policy-as-code, offline: validate, fmt, test, explain, diff a policy directory.
    Policy(policy::PolicyArgs),
    /// Rotation plugins, offline: new, build, install, list, run.
    Plugin(plugin::PluginArgs),
}

/// Options accepted before the command (`coffer --output json secret list`), read from the
/// environment when absent.
#[derive(Args, Debug)]
#[command(next_help_heading = "Connection")]
pub struct GlobalOptions {
    /// Server address.
    #[arg(long, env = "COFFER_ADDR", value_name = "URL", default_value = DEFAULT_ADDR)]
    pub addr: String,
    /// API token (bearer).
    #[arg(
        long,
        env = "COFFER_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub token: Option<String>,
    /// Region to work in (the server's default region when absent).
    #[arg(long, env = "COFFER_REGION", value_name = "REGION")]
    pub region: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputMode::Text)]
    pub output: OutputMode,
}

/// The same options, also accepted after a client command (`coffer secret list --output
/// json`). Given here, they win over the ones before the command and the environment.
///
/// They are declared per command group rather than as global options of `coffer` itself
/// so they can never collide with the options of `coffer server`. Their ids differ from
/// the top-level ones so clap keeps the two apart (it propagates values by id).
#[derive(Args, Debug, Default)]
#[command(next_help_heading = "Connection")]
pub struct ClientOptions {
    /// Server address [env: COFFER_ADDR] [default: http://127.0.0.1:8330].
    #[arg(id = "client_addr", long = "addr", global = true, value_name = "URL")]
    pub addr: Option<String>,
    /// API token (bearer) [env: COFFER_TOKEN].
    #[arg(
        id = "client_token",
        long = "token",
        global = true,
        value_name = "TOKEN"
    )]
    pub token: Option<String>,
    /// Region to work in [env: COFFER_REGION].
    #[arg(
        id = "client_region",
        long = "region",
        global = true,
        value_name = "REGION"
    )]
    pub region: Option<String>,
    /// Output format [default: text].
    #[arg(id = "client_output", long = "output", global = true, value_enum)]
    pub output: Option<OutputMode>,
}

/// What a client command needs: a connected client and the output format.
pub struct Context {
    /// The client, with token and region set.
    pub client: Client,
    /// How to print results.
    pub output: OutputMode,
}

impl Context {
    /// Resolves options (after the command, then before it, then environment, then
    /// defaults) and builds the client.
    pub fn new(global: GlobalOptions, local: ClientOptions) -> anyhow::Result<Self> {
        let addr = local.addr.unwrap_or(global.addr);
        let token = local
            .token
            .or(global.token)
            .filter(|t| !t.is_empty())
            .context("no API token: pass --token or set COFFER_TOKEN")?;
        let region = local.region.or(global.region).filter(|r| !r.is_empty());
        let output = local.output.unwrap_or(global.output);
        let mut client = Client::new(&addr, token)?;
        if let Some(region) = region {
            client = client.with_region(region);
        }
        Ok(Self { client, output })
    }
}

/// Runs the parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Server(args) => server_cmd::run(args).await,
        Command::Secret(args) => {
            let ctx = Context::new(cli.global, args.connection)?;
            secret::run(args.command, &ctx).await
        }
        Command::RandomPassword(args) => {
            let ctx = Context::new(cli.global, args.connection)?;
            secret::random_password(args.options, &ctx).await
        }
        Command::Key(args) => {
            let ctx = Context::new(cli.global, args.connection)?;
            key::run(args.command, &ctx).await
        }
        Command::Token(args) => {
            let ctx = Context::new(cli.global, args.connection)?;
            token::run(args.command, &ctx).await
        }
        Command::Sys(args) => {
            let ctx = Context::new(cli.global, args.connection)?;
            sys::run(args.command, &ctx).await
        }
        Command::Audit(args) => audit::run(args, cli.global).await,
        Command::Policy(args) => policy::run(args, cli.global.output).await,
        Command::Plugin(args) => plugin::run(args, cli.global.output).await,
    }
}

/// Refuses a `next_token` the server already gave, so `--all` cannot loop forever.
pub fn check_progress(previous: Option<&str>, next: &str) -> anyhow::Result<()> {
    if previous == Some(next) {
        bail!("the server returned the same next_token twice; stopping instead of looping");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    pub(crate) fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("coffer").chain(args.iter().copied()))
    }

    fn secret_options(cli: Cli) -> (GlobalOptions, ClientOptions) {
        match cli.command {
            Command::Secret(args) => (cli.global, args.connection),
            other => panic!("expected a secret command, got {other:?}"),
        }
    }

    #[test]
    fn command_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn connection_options_work_before_and_after_the_command() {
        let cli = parse(&["--output", "json", "--addr", "http://a:1", "secret", "list"]).unwrap();
        let (global, local) = secret_options(cli);
        assert_eq!(global.output, OutputMode::Json);
        assert_eq!(global.addr, "http://a:1");
        assert_eq!(local.output, None);

        let cli = parse(&["secret", "list", "--output", "json", "--addr", "http://b:2"]).unwrap();
        let (_, local) = secret_options(cli);
        assert_eq!(local.output, Some(OutputMode::Json));
        assert_eq!(local.addr.as_deref(), Some("http://b:2"));

        let cli = parse(&["key", "alias", "list", "--region", "eu-1"]).unwrap();
        let Command::Key(args) = cli.command else {
            panic!("expected key");
        };
        assert_eq!(args.connection.region.as_deref(), Some("eu-1"));
    }

    #[test]
    fn options_after_the_command_win() {
        let cli = parse(&[
            "--addr",
            "http://before:1",
            "--token",
            "t1",
            "secret",
            "list",
            "--addr",
            "http://after:2",
            "--token",
            "t2",
            "--region",
            "eu-1",
        ])
        .unwrap();
        let (global, local) = secret_options(cli);
        let ctx = Context::new(global, local).unwrap();
        assert_eq!(ctx.client.addr(), "http://after:2/");
        assert_eq!(ctx.client.region(), Some("eu-1"));
        assert_eq!(ctx.output, OutputMode::Text);
    }

    #[test]
    fn missing_token_is_an_actionable_error() {
        let global = GlobalOptions {
            addr: DEFAULT_ADDR.into(),
            token: None,
            region: None,
            output: OutputMode::Text,
        };
        let err = Context::new(global, ClientOptions::default())
            .err()
            .expect("a missing token must be refused");
        assert!(err.to_string().contains("COFFER_TOKEN"), "{err}");
    }

    #[test]
    fn unknown_output_format_is_a_usage_error() {
        let err = parse(&["secret", "list", "--output", "yaml"]).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::InvalidValue);
        assert_eq!(err.exit_code(), 2);
    }

    #[test]
    fn repeated_next_token_stops_paging() {
        assert!(check_progress(None, "a").is_ok());
        assert!(check_progress(Some("a"), "b").is_ok());
        assert!(check_progress(Some("a"), "a").is_err());
    }
}
