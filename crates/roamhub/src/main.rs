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
            Command::Serve(args) => roamhub::serve::run(args, cli.tls).await,
            Command::Certs(command) => roamhub::certs::run(command),
            Command::Demo(args) => roamhub::demo::run(args).await,
            Command::Client(client) => match cli.tls.client_transport() {
                Ok(transport) => roamhub::client::run(cli.client, transport, client).await,
                Err(error) => Err(error),
            },
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
