//! `roamhub serve`: run one node until SIGINT or SIGTERM.
//!
//! Settings come from flags, `ROAMHUB_*` variables and an optional TOML file. A flag or
//! variable (clap reads both) beats the file; the file beats the defaults.

use std::path::PathBuf;

use anyhow::{Context, bail};
use roamhub_node::identity::IdentifierKey;
use roamhub_node::{BootstrapMember, Node, NodeConfig, RaftTiming};
use serde::Deserialize;
use tracing::{error, info};

use crate::cli::{ServeArgs, TlsOptions};

/// The TOML file's shape: every setting optional, unknown keys refused.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    node_id: Option<u64>,
    city_id: Option<String>,
    display_name: Option<String>,
    data_dir: Option<PathBuf>,
    raft_addr: Option<String>,
    api_addr: Option<String>,
    #[serde(default)]
    bootstrap_members: Vec<String>,
    identifier_key: Option<String>,
    ca: Option<PathBuf>,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    crl: Option<PathBuf>,
    insecure: Option<bool>,
    #[serde(default)]
    raft: Option<RaftTiming>,
}

/// Logs go to standard error, coloured only on a terminal; `ROAMHUB_LOG` (or `RUST_LOG`)
/// sets the filter.
pub fn init_logging() {
    use std::io::IsTerminal;
    let filter = std::env::var("ROAMHUB_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "info,openraft=warn".to_owned());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

pub async fn run(args: ServeArgs, tls: TlsOptions) -> anyhow::Result<()> {
    init_logging();
    let config = node_config(args, tls)?;
    // A node whose storage goes bad while it runs is started again, which recovers it.
    loop {
        let mut running = tokio::select! {
            started = Node::start(config.clone()) => started?,
            stopped = wait_for_stop_signal() => return stopped,
        };
        info!("node serving; stop with SIGINT or SIGTERM");

        tokio::select! {
            stopped = wait_for_stop_signal() => {
                stopped?;
                info!("stopping");
                running.shutdown().await;
                return Ok(());
            }
            reason = running.storage_failed() => {
                error!(%reason, "storage corrupt: restarting the node into recovery");
                running.shutdown().await;
            }
        }
    }
}

async fn wait_for_stop_signal() -> anyhow::Result<()> {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        interrupted = tokio::signal::ctrl_c() => interrupted?,
        _ = terminate.recv() => {}
    }
    Ok(())
}

/// Merges flags and variables over the file over the defaults.
fn node_config(args: ServeArgs, tls: TlsOptions) -> anyhow::Result<NodeConfig> {
    let file = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading config file {}", path.display()))?;
            toml::from_str::<FileConfig>(&text)
                .with_context(|| format!("parsing config file {}", path.display()))?
        }
        None => FileConfig::default(),
    };

    let Some(node_id) = args.node_id.or(file.node_id) else {
        bail!("--node-id (or ROAMHUB_NODE_ID, or node_id in the config file) is required");
    };
    let Some(city_id) = args.city_id.or(file.city_id) else {
        bail!("--city-id (or ROAMHUB_CITY_ID, or city_id in the config file) is required");
    };
    let bootstrap_specs = match args.bootstrap_members.is_empty() {
        true => file.bootstrap_members,
        false => args.bootstrap_members,
    };
    let bootstrap = bootstrap_specs
        .iter()
        .map(|spec| BootstrapMember::parse(spec).map_err(anyhow::Error::msg))
        .collect::<anyhow::Result<Vec<_>>>()?;

    let Some(identifier_key) = args.identifier_key.or(file.identifier_key) else {
        bail!(concat!(
            "--identifier-key (or ROAMHUB_IDENTIFIER_KEY, or identifier_key in the config ",
            "file) is required: 64 hex digits, the same on every node of the federation"
        ));
    };
    let identifier_key = IdentifierKey::from_hex(&identifier_key).map_err(anyhow::Error::msg)?;

    let tls = TlsOptions {
        ca: tls.ca.or(file.ca),
        cert: tls.cert.or(file.cert),
        key: tls.key.or(file.key),
        crl: tls.crl.or(file.crl),
        insecure: tls.insecure || file.insecure.unwrap_or(false),
    };

    let mut timing = file.raft.unwrap_or_default();
    let overrides = [
        (args.heartbeat_interval_ms, &mut timing.heartbeat_interval_ms),
        (args.election_timeout_min_ms, &mut timing.election_timeout_min_ms),
        (args.election_timeout_max_ms, &mut timing.election_timeout_max_ms),
        (args.snapshot_every_entries, &mut timing.snapshot_every_entries),
        (args.entries_kept_after_snapshot, &mut timing.entries_kept_after_snapshot),
    ];
    for (flag, setting) in overrides {
        if let Some(value) = flag {
            *setting = value;
        }
    }

    Ok(NodeConfig {
        node_id,
        display_name: args.display_name.or(file.display_name).unwrap_or_else(|| city_id.clone()),
        data_dir: args
            .data_dir
            .or(file.data_dir)
            .unwrap_or_else(|| PathBuf::from(format!("roamhub-data/{city_id}"))),
        city_id,
        raft_addr: args.raft_addr.or(file.raft_addr).unwrap_or_else(|| "127.0.0.1:7201".to_owned()),
        api_addr: args.api_addr.or(file.api_addr).unwrap_or_else(|| "127.0.0.1:7101".to_owned()),
        bootstrap,
        timing,
        tls: tls.files()?,
        identifier_key,
    })
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command};

    fn serve_args(args: &[&str]) -> (ServeArgs, TlsOptions) {
        let argv = ["roamhub", "serve"].iter().chain(args);
        let cli = Cli::parse_from(argv);
        match cli.command {
            Command::Serve(args) => (args, cli.tls),
            other => panic!("parsed as {other:?}"),
        }
    }

    /// The example file in `deploy/` parses, and a flag overrides the file.
    #[test]
    fn example_config_parses_and_flags_win() {
        let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/roamhub.example.toml");
        let (args, tls) = serve_args(&["--config", example, "--node-id", "7"]);
        let config = node_config(args, tls).unwrap();
        assert_eq!(config.node_id, 7);
        assert_eq!(config.city_id, "nl-eindhoven");
        assert_eq!(config.bootstrap.len(), 3);
        assert_eq!(config.timing.election_timeout_min_ms, 2000);
    }

    #[test]
    fn a_missing_city_is_a_clear_error() {
        let key = "ab".repeat(32);
        let (args, tls) = serve_args(&["--node-id", "1", "--identifier-key", &key]);
        let error = node_config(args, tls).unwrap_err();
        assert!(error.to_string().contains("--city-id"), "{error}");
    }

    #[test]
    fn a_node_without_certificates_needs_insecure() {
        let key = "ab".repeat(32);
        let base = ["--node-id", "1", "--city-id", "nl-eindhoven", "--identifier-key", &key];
        let (args, tls) = serve_args(&base);
        let error = node_config(args, tls).unwrap_err();
        assert!(error.to_string().contains("--insecure"), "{error}");

        let (args, tls) = serve_args(&[&base[..], &["--insecure"]].concat());
        assert_eq!(node_config(args, tls).unwrap().tls, None);
    }
}
