//! `coffer token …`: API tokens.

use clap::{Args, Subcommand};
use coffer_client::api::CreateTokenRequest;
use zeroize::Zeroize as _;

use super::output;
use super::{ClientOptions, Context};

/// `coffer token`.
#[derive(Args, Debug)]
pub struct TokenArgs {
    #[command(flatten)]
    pub connection: ClientOptions,
    #[command(subcommand)]
    pub command: TokenCommand,
}

/// The token commands.
#[derive(Subcommand, Debug)]
pub enum TokenCommand {
    /// Issue a token and print it. It is shown only this once.
    Create(CreateTokenArgs),
    /// List tokens: id, principal, created, expires, description.
    List,
    /// Revoke a token; it stops working at once.
    Revoke(RevokeArgs),
}

/// `coffer token create`.
#[derive(Args, Debug)]
pub struct CreateTokenArgs {
    /// Principal (user name) the token authenticates as.
    #[arg(long, value_name = "NAME")]
    pub principal: String,
    /// Note.
    #[arg(long)]
    pub description: Option<String>,
    /// Lifetime in seconds (no expiry when absent).
    #[arg(long, value_name = "N")]
    pub ttl_seconds: Option<u64>,
}

/// `coffer token revoke`.
#[derive(Args, Debug)]
pub struct RevokeArgs {
    /// Token id (from `coffer token list`), not the token itself.
    pub token_id: String,
}

/// Runs a `coffer token` command.
pub async fn run(command: TokenCommand, ctx: &Context) -> anyhow::Result<()> {
    match command {
        TokenCommand::Create(args) => {
            let request = CreateTokenRequest {
                principal: args.principal,
                description: args.description,
                ttl_seconds: args.ttl_seconds,
            };
            let mut created = ctx.client.create_token(&request).await?;
            let printed = output::emit(ctx.output, &created, |out| {
                writeln!(out, "{}", created.token)
            });
            created.token.zeroize();
            printed
        }
        TokenCommand::List => {
            let list = ctx.client.list_tokens().await?;
            output::emit(ctx.output, &list, |out| {
                let rows: Vec<_> = list
                    .tokens
                    .iter()
                    .map(|t| {
                        vec![
                            t.token_id.clone(),
                            t.principal.clone(),
                            t.created_date.clone(),
                            t.expires_date.clone().unwrap_or_else(|| "never".to_owned()),
                            t.description.clone().unwrap_or_default(),
                        ]
                    })
                    .collect();
                output::write_table(out, &rows)
            })
        }
        TokenCommand::Revoke(args) => {
            ctx.client.revoke_token(&args.token_id).await?;
            output::done(ctx.output, &format!("Revoked token {}", args.token_id))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::tests::parse;
    use crate::cli::Command;

    #[test]
    fn create_needs_a_principal() {
        let err = parse(&["token", "create"]).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::MissingRequiredArgument);
        let Command::Token(TokenArgs {
            command: TokenCommand::Create(args),
            ..
        }) = parse(&[
            "token",
            "create",
            "--principal",
            "alice",
            "--ttl-seconds",
            "3600",
        ])
        .unwrap()
        .command
        else {
            panic!("expected token create");
        };
        assert_eq!(args.principal, "alice");
        assert_eq!(args.ttl_seconds, Some(3600));
    }
}
