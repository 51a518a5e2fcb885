//! `coffer sys …`: server-wide operations.

use clap::{Args, Subcommand};

use super::output;
use super::{ClientOptions, Context};

/// `coffer sys`.
#[derive(Args, Debug)]
pub struct SysArgs {
    #[command(flatten)]
    pub connection: ClientOptions,
    #[command(subcommand)]
    pub command: SysCommand,
}

/// The system commands.
#[derive(Subcommand, Debug)]
pub enum SysCommand {
    /// Wipe all secrets, keys and tokens (only a server in dev mode accepts this).
    Reset,
}

/// Runs a `coffer sys` command.
pub async fn run(command: SysCommand, ctx: &Context) -> anyhow::Result<()> {
    match command {
        SysCommand::Reset => {
            ctx.client.reset().await?;
            output::done(ctx.output, "Reset all server state")
        }
    }
}
