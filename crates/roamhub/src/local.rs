//! A federation of real `roamhub serve` processes on loopback, each with its own data
//! directory and ports; used by `roamhub demo` and the multi-node tests.
//!
//! The first city bootstraps the federation with every city as a voter. Nodes log to
//! `node-N.log` in the federation's folder. Unless started insecure, the federation has
//! its own certificate authority in `tls/`, a certificate per node, and certificates for
//! operators and services issued as clients ask for them.

use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Context, bail};
use roamhub_index::{CityId, ServiceId};
use roamhub_node::tls::Tls;
use roamhub_node::{Role, TlsFiles, Transport};
use roamhub_proto::v1 as pb;

use crate::certs::{self, CaPaths, Issued, LOOPBACK_HOSTS, Validity};
use crate::client::{Client, connect};

/// One city of a local federation.
#[derive(Debug, Clone)]
pub struct City {
    pub city_id: &'static str,
    pub display_name: &'static str,
}

/// Where a node runs, when not on this host's loopback: the address it listens on (and
/// names in its certificate), and the words that launch it there, such as
/// `ip netns exec NAME`. The launcher must exec the node in place, keeping its process id,
/// so that signals reach the node itself.
#[derive(Debug, Clone)]
pub struct Placement {
    pub host: String,
    pub launcher: Vec<String>,
}

/// Ports of a placed node, which has an address of its own.
const PLACED_API_PORT: u16 = 7000;
const PLACED_RAFT_PORT: u16 = 7001;

/// How often readiness is polled.
const READY_POLL: Duration = Duration::from_millis(100);
/// Validity of the certificates a local federation issues.
const CERTIFICATE_DAYS: u32 = 30;

pub struct LocalNode {
    pub node_id: u64,
    pub city: City,
    pub api_addr: String,
    pub raft_addr: String,
    pub data_dir: PathBuf,
    placement: Option<Placement>,
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
    /// The certificate authority's folder; `None` runs every node `--insecure`.
    tls_dir: Option<PathBuf>,
    /// Client transports by role URI, so that each role's certificate is loaded once.
    transports: Mutex<HashMap<String, Transport>>,
}

/// The id of a city the federation was started with; local cities have valid ids.
fn city_id(city: &str) -> CityId {
    CityId::parse("city_id", city).expect("local cities have valid ids")
}

fn random_key_hex() -> anyhow::Result<String> {
    let mut key = [0u8; 32];
    getrandom::fill(&mut key).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
    Ok(hex::encode(key))
}

/// Ports local nodes listen on: below the kernel's usual ephemeral range (32768 and up), so
/// that no outgoing connection can take a port between its choice and the node's bind.
const NODE_PORTS: std::ops::Range<u16> = 20_000..32_000;
/// How many ports of `NODE_PORTS` this process has tried; each is tried once, so that two
/// federations of one process never share a port.
static PORTS_TRIED: AtomicUsize = AtomicUsize::new(0);

/// A loopback port free at the moment of asking, never handed out before by this process.
fn free_port() -> anyhow::Result<u16> {
    let span = NODE_PORTS.len();
    // Processes start at different places, so that two running at once rarely meet.
    let start = std::process::id() as usize * 7_919;
    loop {
        let tried = PORTS_TRIED.fetch_add(1, Ordering::Relaxed);
        anyhow::ensure!(tried < span, "every port from {NODE_PORTS:?} was handed out");
        let port = NODE_PORTS.start + ((start + tried) % span) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
}

impl LocalNode {
    fn new(
        position: usize,
        city: City,
        root: &Path,
        placement: Option<Placement>,
    ) -> anyhow::Result<LocalNode> {
        let (api_addr, raft_addr) = match &placement {
            Some(Placement { host, .. }) => {
                (format!("{host}:{PLACED_API_PORT}"), format!("{host}:{PLACED_RAFT_PORT}"))
            }
            None => (format!("127.0.0.1:{}", free_port()?), format!("127.0.0.1:{}", free_port()?)),
        };
        Ok(LocalNode {
            node_id: position as u64 + 1,
            data_dir: root.join(city.city_id),
            city,
            api_addr,
            raft_addr,
            placement,
            process: None,
        })
    }
}

impl LocalFederation {
    /// Starts one node process per city under `root`, with `exe` as the roamhub binary,
    /// under mutual TLS with a certificate authority of its own.
    pub fn start(
        exe: &Path,
        root: &Path,
        cities: &[City],
        extra_args: &[&str],
    ) -> anyhow::Result<LocalFederation> {
        LocalFederation::start_secured(exe, root, cities, extra_args, true, Vec::new())
    }

    /// Like [`LocalFederation::start`], with node `i` placed as `placements[i]` says.
    pub fn start_placed(
        exe: &Path,
        root: &Path,
        cities: &[City],
        extra_args: &[&str],
        placements: Vec<Placement>,
    ) -> anyhow::Result<LocalFederation> {
        anyhow::ensure!(placements.len() == cities.len(), "one placement per city");
        LocalFederation::start_secured(exe, root, cities, extra_args, true, placements)
    }

    /// Like [`LocalFederation::start`], with plaintext and nobody authenticated.
    pub fn start_insecure(
        exe: &Path,
        root: &Path,
        cities: &[City],
        extra_args: &[&str],
    ) -> anyhow::Result<LocalFederation> {
        LocalFederation::start_secured(exe, root, cities, extra_args, false, Vec::new())
    }

    fn start_secured(
        exe: &Path,
        root: &Path,
        cities: &[City],
        extra_args: &[&str],
        tls: bool,
        placements: Vec<Placement>,
    ) -> anyhow::Result<LocalFederation> {
        std::fs::create_dir_all(root).with_context(|| format!("creating {}", root.display()))?;
        let tls_dir = match tls {
            true => {
                let dir = root.join("tls");
                certs::create_ca(&dir, "roamhub local federation CA", CERTIFICATE_DAYS)?;
                Some(dir)
            }
            false => None,
        };
        let mut nodes = Vec::new();
        let mut placements = placements.into_iter();
        for (position, city) in cities.iter().enumerate() {
            nodes.push(LocalNode::new(position, city.clone(), root, placements.next())?);
        }
        let mut federation = LocalFederation {
            nodes,
            root: root.to_owned(),
            exe: exe.to_owned(),
            extra_args: extra_args.iter().map(|a| a.to_string()).collect(),
            identifier_key_hex: random_key_hex()?,
            tls_dir,
            transports: Mutex::new(HashMap::new()),
        };
        for position in 0..federation.nodes.len() {
            federation.spawn(position)?;
        }
        Ok(federation)
    }

    /// Starts one more city's node, not in the Raft group until an operator lets it join.
    pub fn add_city(&mut self, city: City) -> anyhow::Result<usize> {
        let position = self.nodes.len();
        self.nodes.push(LocalNode::new(position, city, &self.root, None)?);
        self.spawn(position)?;
        Ok(position)
    }

    /// The folder holding every node's data and log.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The certificate authority's folder, unless the federation runs insecure.
    pub fn tls_dir(&self) -> Option<&Path> {
        self.tls_dir.as_deref()
    }

    /// The certificate and key of `role`, issued by the federation's authority on first
    /// use; `None` when the federation runs insecure.
    pub fn certificate(&self, role: &Role) -> anyhow::Result<Option<Issued>> {
        self.certificate_for_hosts(role, &[])
    }

    /// Like [`LocalFederation::certificate`]; a node's certificate names `hosts` besides
    /// loopback.
    fn certificate_for_hosts(&self, role: &Role, hosts: &[&str]) -> anyhow::Result<Option<Issued>> {
        let Some(dir) = &self.tls_dir else { return Ok(None) };
        let name = certs::file_name(role);
        let existing =
            Issued { cert: dir.join(format!("{name}.pem")), key: dir.join(format!("{name}.key")) };
        if existing.cert.exists() && existing.key.exists() {
            return Ok(Some(existing));
        }
        let hosts: Vec<String> =
            LOOPBACK_HOSTS.iter().chain(hosts).map(|h| h.to_string()).collect();
        Ok(Some(certs::issue(dir, role, &hosts, Validity::days(CERTIFICATE_DAYS), dir)?))
    }

    /// The files a client of `role` proves itself with, or `None` when insecure.
    pub fn tls_files(&self, role: &Role) -> anyhow::Result<Option<TlsFiles>> {
        self.tls_files_for_hosts(role, &[])
    }

    fn tls_files_for_hosts(&self, role: &Role, hosts: &[&str]) -> anyhow::Result<Option<TlsFiles>> {
        let Some(dir) = &self.tls_dir else { return Ok(None) };
        let issued = self.certificate_for_hosts(role, hosts)?.context("no certificate")?;
        let ca = CaPaths::in_dir(dir);
        Ok(Some(TlsFiles { ca: ca.cert, cert: issued.cert, key: issued.key, crl: Some(ca.crl) }))
    }

    /// How a client of `role` reaches the nodes.
    pub fn transport(&self, role: &Role) -> anyhow::Result<Transport> {
        let mut transports = self.transports.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(transport) = transports.get(&role.uri()) {
            return Ok(transport.clone());
        }
        let transport = match self.tls_files(role)? {
            Some(files) => Transport::Tls(Tls::load(files)?),
            None => Transport::Insecure,
        };
        transports.insert(role.uri(), transport.clone());
        Ok(transport)
    }

    /// The operator role of the city a node serves.
    pub fn operator(&self, position: usize) -> Role {
        Role::Operator { city_id: city_id(self.nodes[position].city.city_id) }
    }

    /// The flags that make the `roamhub` command a client of `role`.
    pub fn client_flags(&self, role: &Role) -> anyhow::Result<Vec<String>> {
        Ok(match self.tls_files(role)? {
            Some(files) => [("--ca", files.ca), ("--cert", files.cert), ("--key", files.key)]
                .into_iter()
                .flat_map(|(flag, path)| [flag.to_owned(), path.display().to_string()])
                .collect(),
            None => vec!["--insecure".to_owned()],
        })
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

        let role = Role::Node { city_id: city_id(node.city.city_id), node_id: node.node_id };
        let hosts: Vec<&str> = node.placement.iter().map(|p| p.host.as_str()).collect();
        let tls_flags = match self.tls_files_for_hosts(&role, &hosts)? {
            Some(files) => {
                let crl = files.crl.unwrap_or_default();
                [("--ca", files.ca), ("--cert", files.cert), ("--key", files.key), ("--crl", crl)]
                    .into_iter()
                    .flat_map(|(flag, path)| [flag.to_owned(), path.display().to_string()])
                    .collect()
            }
            None => vec!["--insecure".to_owned()],
        };
        let mut command = match &node.placement {
            Some(Placement { launcher, .. }) if !launcher.is_empty() => {
                let mut command = Command::new(&launcher[0]);
                command.args(&launcher[1..]).arg(&self.exe);
                command
            }
            _ => Command::new(&self.exe),
        };
        command
            .arg("serve")
            .args(tls_flags)
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

    /// Starts a node again from its data directory, killing it first if it runs.
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

    /// A client of a node, as the operator of that node's city.
    pub async fn client(&self, position: usize) -> anyhow::Result<Client> {
        self.client_as(position, &self.operator(position))
    }

    /// A client of a node, as `service_id`.
    pub async fn service_client(
        &self,
        position: usize,
        service_id: &str,
    ) -> anyhow::Result<Client> {
        let service_id = ServiceId::parse("service_id", service_id).map_err(anyhow::Error::msg)?;
        self.client_as(position, &Role::Service { service_id })
    }

    /// A client of a node, as `role`.
    pub fn client_as(&self, position: usize, role: &Role) -> anyhow::Result<Client> {
        connect(&self.nodes[position].api_addr, &self.transport(role)?)
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

    /// Stops a node with SIGTERM, as an operator would, and waits for it to exit.
    pub fn terminate(&mut self, position: usize) {
        if let Some(mut child) = self.nodes[position].process.take() {
            let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
            let _ = child.wait();
        }
    }

    /// Stops every node with SIGTERM, waiting for each to exit.
    pub fn stop(&mut self) {
        for position in 0..self.nodes.len() {
            self.terminate(position);
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
