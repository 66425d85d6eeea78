//! A network of its own for each node, so that links can be cut or slowed one by one.
//!
//! The runner lives in a private network namespace (see [`enter_private_namespace`]); in it,
//! a bridge joins one namespace per node through a veth pair. Nodes talk to each other and
//! to the runner's clients over the bridge, each at an address of its own. Faults are
//! firewall rules and queueing disciplines inside a node's namespace:
//!
//! - a partition drops every packet between the two sides (clients still reach every node,
//!   as clients on either side of a real partition would);
//! - a one-way cut drops what a node sends to the others' listening ports, so it can no
//!   longer use the connections it opened, while the others still reach it;
//! - a slow link is narrow and lossy: a token bucket (tbf) caps what a node sends, queueing
//!   packets up to a latency bound and dropping the rest, and a firewall rule drops a share
//!   of them at random. (Kernels without the netem discipline, like this project's machines,
//!   cannot add fixed delays; a narrow link delays by queueing instead.)
//!
//! Healing flushes the rules and removes the queueing discipline. Everything is made with
//! `ip`, `iptables` and `tc`, and needs root.

use std::process::Command;

use roamhub::local::Placement;

/// The first three bytes of every address on the bridge; a node at position `p` is
/// `SUBNET.(p + 1)` and the runner is `SUBNET.RUNNER_HOST`.
const SUBNET: &str = "10.213.0";
const RUNNER_HOST: u8 = 254;
const PREFIX_LENGTH: u8 = 24;
const BRIDGE: &str = "rhbridge";
/// Ports a placed node listens on (public API and Raft); a one-way cut drops traffic to them.
const NODE_PORTS: [u16; 2] = [7000, 7001];
/// Set in the environment of the runner once it runs in its private namespace.
const IN_NAMESPACE_ENV: &str = "ROAMHUB_FAULTS_NAMESPACED";

/// A slow link: what it carries, how long a packet may wait in its queue, how many it loses.
#[derive(Debug, Clone, Copy)]
pub struct Slowness {
    pub rate_kbit: u32,
    pub queue_ms: u32,
    pub loss_percent: u32,
}

/// Bytes a slowed link may send at once before its rate applies.
const SLOW_BURST_KBIT: u32 = 32;

/// Whether this machine lets the runner make namespaces: root and the `ip` tools.
pub fn available() -> bool {
    let root = run_quiet(&["id", "-u"]).is_ok_and(|uid| uid.trim() == "0");
    root && ["ip", "iptables", "tc", "unshare"]
        .iter()
        .all(|tool| Command::new(tool).arg("-V").output().is_ok())
}

/// Runs this same program again inside a new, private network namespace and answers its
/// exit code; `None` when already inside one.
pub fn enter_private_namespace() -> anyhow::Result<Option<i32>> {
    if std::env::var_os(IN_NAMESPACE_ENV).is_some() {
        return Ok(None);
    }
    let exe = std::env::current_exe()?;
    let status = Command::new("unshare")
        .arg("--net")
        .arg("--")
        .arg(exe)
        .args(std::env::args_os().skip(1))
        .env(IN_NAMESPACE_ENV, "1")
        .status()?;
    Ok(Some(status.code().unwrap_or(2)))
}

/// The namespaces and links of a federation's nodes; removed when dropped.
#[derive(Debug)]
pub struct Network {
    namespaces: Vec<String>,
}

impl Network {
    /// Makes the bridge and one namespace per node. Must run inside the runner's private
    /// namespace, so that the bridge and its addresses are seen by nobody else.
    pub fn create(nodes: usize) -> anyhow::Result<Network> {
        anyhow::ensure!(
            std::env::var_os(IN_NAMESPACE_ENV).is_some(),
            "the node network is made only inside the runner's private namespace"
        );
        ip(&["link", "set", "lo", "up"])?;
        ip(&["link", "add", BRIDGE, "type", "bridge"])?;
        ip(&["addr", "add", &format!("{SUBNET}.{RUNNER_HOST}/{PREFIX_LENGTH}"), "dev", BRIDGE])?;
        ip(&["link", "set", BRIDGE, "up"])?;
        let mut network = Network { namespaces: Vec::new() };
        for position in 0..nodes {
            // Named by this process too, so that two runners never share a namespace.
            let name = format!("roamhub-faults-{}-{position}", std::process::id());
            ip(&["netns", "add", &name])?;
            network.namespaces.push(name.clone());
            let outside = format!("rhveth{position}");
            ip(&["link", "add", &outside, "type", "veth", "peer", "name", "eth0", "netns", &name])?;
            ip(&["link", "set", &outside, "master", BRIDGE])?;
            ip(&["link", "set", &outside, "up"])?;
            let address = format!("{}/{PREFIX_LENGTH}", host(position));
            in_namespace(&name, &["ip", "addr", "add", &address, "dev", "eth0"])?;
            in_namespace(&name, &["ip", "link", "set", "eth0", "up"])?;
            in_namespace(&name, &["ip", "link", "set", "lo", "up"])?;
        }
        Ok(network)
    }

    /// Where each node runs: its address, launched inside its namespace.
    pub fn placements(&self) -> Vec<Placement> {
        self.namespaces
            .iter()
            .enumerate()
            .map(|(position, name)| Placement {
                host: host(position),
                launcher: ["ip", "netns", "exec", name].map(String::from).to_vec(),
            })
            .collect()
    }

    /// Drops every packet between a node of `side` and a node outside it.
    pub fn partition(&self, side: &[usize]) -> anyhow::Result<()> {
        for &inside in side {
            for outside in (0..self.namespaces.len()).filter(|p| !side.contains(p)) {
                let peer = host(outside);
                self.iptables(inside, &["-A", "INPUT", "-s", &peer, "-j", "DROP"])?;
                self.iptables(inside, &["-A", "OUTPUT", "-d", &peer, "-j", "DROP"])?;
            }
        }
        Ok(())
    }

    /// Drops what `position` sends to the other nodes' listening ports: it can reach none of
    /// them, while they still reach it.
    pub fn cut_one_way(&self, position: usize) -> anyhow::Result<()> {
        for other in (0..self.namespaces.len()).filter(|p| *p != position) {
            let peer = host(other);
            for port in NODE_PORTS {
                let port = port.to_string();
                let rule = ["-A", "OUTPUT", "-d", &peer, "-p", "tcp", "--dport", &port];
                self.iptables(position, &[&rule[..], &["-j", "DROP"]].concat())?;
            }
        }
        Ok(())
    }

    /// Narrows what `position` sends to a slow, lossy link.
    pub fn slow(&self, position: usize, slowness: Slowness) -> anyhow::Result<()> {
        let Slowness { rate_kbit, queue_ms, loss_percent } = slowness;
        let (rate, burst, latency) =
            (format!("{rate_kbit}kbit"), format!("{SLOW_BURST_KBIT}kbit"), format!("{queue_ms}ms"));
        let bucket = ["tc", "qdisc", "add", "dev", "eth0", "root", "tbf", "rate", &rate];
        let shape = [&bucket[..], &["burst", &burst, "latency", &latency]].concat();
        in_namespace(&self.namespaces[position], &shape)?;
        let share = format!("{:.2}", f64::from(loss_percent) / 100.0);
        let lose = ["-A", "OUTPUT", "-m", "statistic", "--mode", "random", "--probability"];
        self.iptables(position, &[&lose[..], &[&share, "-j", "DROP"]].concat())
    }

    /// Removes every rule and every slow link.
    pub fn heal(&self) -> anyhow::Result<()> {
        for (position, name) in self.namespaces.iter().enumerate() {
            self.iptables(position, &["-F"])?;
            // Fails harmlessly when the link was not slowed.
            let _ = in_namespace(name, &["tc", "qdisc", "del", "dev", "eth0", "root"]);
        }
        Ok(())
    }

    fn iptables(&self, position: usize, rule: &[&str]) -> anyhow::Result<()> {
        in_namespace(&self.namespaces[position], &[&["iptables", "-w"], rule].concat())
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        for name in &self.namespaces {
            let _ = ip(&["netns", "del", name]);
        }
    }
}

/// The address of the node at `position`.
fn host(position: usize) -> String {
    format!("{SUBNET}.{}", position + 1)
}

fn ip(args: &[&str]) -> anyhow::Result<()> {
    run_quiet(&[&["ip"], args].concat()).map(drop)
}

fn in_namespace(name: &str, command: &[&str]) -> anyhow::Result<()> {
    run_quiet(&[&["ip", "netns", "exec", name], command].concat()).map(drop)
}

/// Runs a command, answering its output, or an error naming it and what it said.
fn run_quiet(command: &[&str]) -> anyhow::Result<String> {
    let output = Command::new(command[0]).args(&command[1..]).output()?;
    anyhow::ensure!(
        output.status.success(),
        "`{}` failed: {}",
        command.join(" "),
        String::from_utf8_lossy(&output.stderr).trim()
    );
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}
