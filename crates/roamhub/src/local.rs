//! A federation of real `roamhub serve` processes on loopback, each with its own data
//! directory and ports; used by `roamhub demo` and the multi-node tests.
//!
//! The first city bootstraps the federation with every city as a voter. Nodes log to
//! `node-N.log` in the federation's folder.

use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use roamhub_proto::v1 as pb;

use crate::client::{Client, connect};

/// One city of a local federation.
#[derive(Debug, Clone)]
pub struct City {
    pub city_id: &'static str,
    pub display_name: &'static str,
}

/// How often readiness is polled.
const READY_POLL: Duration = Duration::from_millis(100);

pub struct LocalNode {
    pub node_id: u64,
    pub city: City,
    pub api_addr: String,
    pub raft_addr: String,
    pub data_dir: PathBuf,
    process: Option<Child>,
}

pub struct LocalFederation {
    pub nodes: Vec<LocalNode>,
    root: PathBuf,
    exe: PathBuf,
    /// Extra flags given to every node (timing, snapshot policy).
    extra_args: Vec<String>,
    /// The federation's identifier key, drawn fresh for each local federation.
    identifier_key_hex: String,
}

fn random_key_hex() -> anyhow::Result<String> {
    let mut key = [0u8; 32];
    getrandom::fill(&mut key).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
    Ok(hex::encode(key))
}

/// A loopback port free at the moment of asking.
fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl LocalFederation {
    /// Starts one node process per city under `root`, with `exe` as the roamhub binary.
    pub fn start(
        exe: &Path,
        root: &Path,
        cities: &[City],
        extra_args: &[&str],
    ) -> anyhow::Result<LocalFederation> {
        std::fs::create_dir_all(root).with_context(|| format!("creating {}", root.display()))?;
        let mut nodes = Vec::new();
        for (position, city) in cities.iter().enumerate() {
            let node_id = position as u64 + 1;
            nodes.push(LocalNode {
                node_id,
                city: city.clone(),
                api_addr: format!("127.0.0.1:{}", free_port()?),
                raft_addr: format!("127.0.0.1:{}", free_port()?),
                data_dir: root.join(city.city_id),
                process: None,
            });
        }
        let mut federation = LocalFederation {
            nodes,
            root: root.to_owned(),
            exe: exe.to_owned(),
            extra_args: extra_args.iter().map(|a| a.to_string()).collect(),
            identifier_key_hex: random_key_hex()?,
        };
        for position in 0..federation.nodes.len() {
            federation.spawn(position)?;
        }
        Ok(federation)
    }

    /// Starts one more city's node, not in the Raft group until an operator lets it join.
    pub fn add_city(&mut self, city: City) -> anyhow::Result<usize> {
        let position = self.nodes.len();
        self.nodes.push(LocalNode {
            node_id: position as u64 + 1,
            data_dir: self.root.join(city.city_id),
            city,
            api_addr: format!("127.0.0.1:{}", free_port()?),
            raft_addr: format!("127.0.0.1:{}", free_port()?),
            process: None,
        });
        self.spawn(position)?;
        Ok(position)
    }

    /// The folder holding every node's data and log.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn spawn(&mut self, position: usize) -> anyhow::Result<()> {
        let bootstrap: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("{}@{}@{}", n.node_id, n.raft_addr, n.api_addr))
            .collect();
        let node = &self.nodes[position];
        let log_path = self.root.join(format!("node-{}.log", node.node_id));
        let log = File::options().create(true).append(true).open(&log_path)?;

        let mut command = Command::new(&self.exe);
        command
            .arg("serve")
            .args(["--node-id", &node.node_id.to_string()])
            .args(["--city-id", node.city.city_id, "--display-name", node.city.display_name])
            .args(["--raft-addr", &node.raft_addr, "--api-addr", &node.api_addr])
            .arg("--data-dir")
            .arg(&node.data_dir)
            .args(&self.extra_args)
            .env_remove("ROAMHUB_CONFIG")
            .env("ROAMHUB_IDENTIFIER_KEY", &self.identifier_key_hex)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        if position == 0 {
            command.args(["--bootstrap-member", &bootstrap.join(",")]);
        }
        let child = command.spawn().with_context(|| format!("starting {}", self.exe.display()))?;
        self.nodes[position].process = Some(child);
        Ok(())
    }

    /// Kills a node's process with SIGKILL: no flush, no goodbye.
    pub fn kill(&mut self, position: usize) {
        if let Some(mut child) = self.nodes[position].process.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts a killed node again from its data directory.
    pub fn restart(&mut self, position: usize) -> anyhow::Result<()> {
        self.kill(position);
        self.spawn(position)
    }

    /// The operating-system process id of a running node.
    pub fn pid(&self, position: usize) -> Option<u32> {
        self.nodes[position].process.as_ref().map(Child::id)
    }

    pub fn is_running(&self, position: usize) -> bool {
        self.nodes[position].process.is_some()
    }

    pub async fn client(&self, position: usize) -> anyhow::Result<Client> {
        connect(&self.nodes[position].api_addr).await
    }

    /// Waits until every running node sees the same leader and every city is a member.
    pub async fn wait_ready(&self, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.ready().await {
                Ok(true) => return Ok(()),
                Ok(false) | Err(_) if Instant::now() < deadline => {
                    tokio::time::sleep(READY_POLL).await
                }
                Ok(false) => bail!("the federation was not ready within {timeout:?}"),
                Err(error) => return Err(error.context("the federation did not become ready")),
            }
        }
    }

    async fn ready(&self) -> anyhow::Result<bool> {
        let mut leaders = Vec::new();
        for position in (0..self.nodes.len()).filter(|p| self.is_running(*p)) {
            let mut client = self.client(position).await?;
            let status = client.node_status(pb::NodeStatusRequest {}).await?.into_inner();
            leaders.push(status.leader_node_id);
        }
        let agreed = leaders.first().is_some_and(|l| *l != 0 && leaders.iter().all(|x| x == l));
        if !agreed {
            return Ok(false);
        }
        let position = (0..self.nodes.len()).find(|p| self.is_running(*p)).unwrap_or_default();
        let members = self.client(position).await?.list_members(pb::ListMembersRequest {}).await?;
        Ok(members.into_inner().members.len() == self.nodes.len())
    }

    /// The position of the node that leads now, as its own status says.
    pub async fn leader(&self) -> Option<usize> {
        for position in (0..self.nodes.len()).filter(|p| self.is_running(*p)) {
            let Ok(mut client) = self.client(position).await else { continue };
            let Ok(status) = client.node_status(pb::NodeStatusRequest {}).await else { continue };
            if status.get_ref().role == "leader" {
                return Some(position);
            }
        }
        None
    }

    /// Stops every node with SIGTERM, waiting for each to exit.
    pub fn stop(&mut self) {
        for node in &mut self.nodes {
            if let Some(mut child) = node.process.take() {
                let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
                let _ = child.wait();
            }
        }
    }

    /// Lets the node processes run on after this value is dropped.
    pub fn detach(mut self) {
        for node in &mut self.nodes {
            node.process = None;
        }
    }
}

impl Drop for LocalFederation {
    fn drop(&mut self) {
        for position in 0..self.nodes.len() {
            self.kill(position);
        }
    }
}
