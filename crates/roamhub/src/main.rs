//! Entry point of the `roamhub` binary; see the library's modules for each subcommand.

use std::process::ExitCode;

use clap::Parser;
use roamhub::cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };

    let outcome = runtime.block_on(async move {
        match cli.command {
            Command::Serve(args) => roamhub::serve::run(args).await,
            Command::Demo(args) => roamhub::demo::run(args).await,
            Command::Client(client) => roamhub::client::run(cli.client, client).await,
        }
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
