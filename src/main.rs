//! `coffer`: the one binary. `coffer server` runs the server; every other command is a
//! thin client of its REST API (see `cli`).
#![forbid(unsafe_code)]

mod cli;
mod server_cmd;

use std::process::ExitCode;

use clap::Parser as _;

#[tokio::main]
async fn main() -> ExitCode {
    // Usage errors print clap's message and exit with code 2.
    let cli = cli::Cli::parse();
    match cli::run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) if cli::output::is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
