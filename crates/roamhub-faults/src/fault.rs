//! The faults a run injects into real node processes and their network, and how each is
//! healed.

use std::fmt;
use std::process::Command;

use roamhub::local::LocalFederation;

use crate::net::{Network, Slowness};

/// One fault per run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fault {
    /// SIGKILL of the leader; it is started again from its data directory at healing.
    KillLeader,
    /// SIGKILL of a follower, started again at healing.
    KillFollower,
    /// SIGKILL of every node at once, all started again at healing.
    KillAll,
    /// SIGSTOP of the leader for the fault's length, then SIGCONT: it wakes up deposed.
    PauseLeader,
    /// SIGSTOP of a follower, then SIGCONT.
    PauseFollower,
    /// A clean stop (SIGTERM) of the leader and a start again.
    RestartLeader,
    /// The leader cut off from every other node; clients still reach it.
    IsolateLeader,
    /// The leader and fewer than half the nodes on one side, the majority on the other
    /// (with three nodes this is the leader alone, so it runs only with five or more).
    PartitionLeaderMinority,
    /// As many followers as can be without the rest losing their majority, cut off.
    PartitionFollowerMinority,
    /// The leader can reach no other node, while they still reach it.
    OneWayLeader,
    /// Every packet the leader sends is late and some are lost.
    SlowLeader,
    /// Every packet a follower sends is late and some are lost.
    SlowFollower,
}

/// How slow a slowed link is: a hundredth of what the load needs, queueing up to a fifth of
/// a second, losing one packet in fifty.
const SLOW_LINK: Slowness = Slowness { rate_kbit: 512, queue_ms: 200, loss_percent: 2 };

impl Fault {
    const ALL: [Fault; 12] = [
        Fault::KillLeader,
        Fault::KillFollower,
        Fault::KillAll,
        Fault::PauseLeader,
        Fault::PauseFollower,
        Fault::RestartLeader,
        Fault::IsolateLeader,
        Fault::PartitionLeaderMinority,
        Fault::PartitionFollowerMinority,
        Fault::OneWayLeader,
        Fault::SlowLeader,
        Fault::SlowFollower,
    ];

    /// The faults that differ from each other on `nodes` nodes, leaving out those that need
    /// a network of their own when there is none.
    pub fn menu(nodes: usize, network: bool) -> Vec<Fault> {
        Fault::ALL
            .into_iter()
            .filter(|fault| network || !fault.needs_network())
            .filter(|fault| nodes >= 5 || *fault != Fault::PartitionLeaderMinority)
            .collect()
    }

    pub fn needs_network(self) -> bool {
        matches!(
            self,
            Fault::IsolateLeader
                | Fault::PartitionLeaderMinority
                | Fault::PartitionFollowerMinority
                | Fault::OneWayLeader
                | Fault::SlowLeader
                | Fault::SlowFollower
        )
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Fault::KillLeader => "kill leader",
            Fault::KillFollower => "kill follower",
            Fault::KillAll => "kill all",
            Fault::PauseLeader => "pause leader",
            Fault::PauseFollower => "pause follower",
            Fault::RestartLeader => "restart leader",
            Fault::IsolateLeader => "isolate leader",
            Fault::PartitionLeaderMinority => "leader minority",
            Fault::PartitionFollowerMinority => "follower minority",
            Fault::OneWayLeader => "one-way leader",
            Fault::SlowLeader => "slow leader",
            Fault::SlowFollower => "slow follower",
        })
    }
}

/// A fault in force, to be healed.
#[derive(Debug)]
pub struct Injected {
    pub fault: Fault,
    /// The nodes it hit.
    pub positions: Vec<usize>,
}

fn signal(pid: u32, name: &str) -> anyhow::Result<()> {
    let status = Command::new("kill").args([&format!("-{name}"), &pid.to_string()]).status()?;
    anyhow::ensure!(status.success(), "kill -{name} {pid} failed");
    Ok(())
}

/// Injects `fault` on the leader, on every node, or on the followers `pick` chooses.
pub async fn inject(
    federation: &mut LocalFederation,
    network: Option<&Network>,
    fault: Fault,
    pick: usize,
) -> anyhow::Result<Injected> {
    let leader = federation.leader().await.ok_or_else(|| anyhow::anyhow!("no leader to fault"))?;
    let nodes = federation.nodes.len();
    // Followers in an order `pick` chooses, so that runs spread over them.
    let followers: Vec<usize> =
        (0..nodes - 1).map(|i| (leader + 1 + (pick + i) % (nodes - 1)) % nodes).collect();
    let minority = (nodes - 1) / 2;
    let positions = match fault {
        Fault::KillAll => (0..nodes).collect(),
        Fault::KillFollower | Fault::PauseFollower | Fault::SlowFollower => vec![followers[0]],
        Fault::PartitionFollowerMinority => followers[..minority].to_vec(),
        Fault::PartitionLeaderMinority => [&[leader][..], &followers[..minority - 1]].concat(),
        Fault::KillLeader
        | Fault::PauseLeader
        | Fault::RestartLeader
        | Fault::IsolateLeader
        | Fault::OneWayLeader
        | Fault::SlowLeader => vec![leader],
    };
    let network = || network.ok_or_else(|| anyhow::anyhow!("{fault} needs a node network"));
    match fault {
        Fault::KillLeader | Fault::KillFollower | Fault::KillAll => {
            positions.iter().for_each(|p| federation.kill(*p))
        }
        Fault::PauseLeader | Fault::PauseFollower => {
            let pid = federation.pid(positions[0]).ok_or_else(|| anyhow::anyhow!("not running"))?;
            signal(pid, "STOP")?
        }
        Fault::RestartLeader => federation.terminate(leader),
        Fault::IsolateLeader
        | Fault::PartitionLeaderMinority
        | Fault::PartitionFollowerMinority => network()?.partition(&positions)?,
        Fault::OneWayLeader => network()?.cut_one_way(leader)?,
        Fault::SlowLeader | Fault::SlowFollower => network()?.slow(positions[0], SLOW_LINK)?,
    }
    Ok(Injected { fault, positions })
}

/// Ends the fault: nodes are started again or woken up, links mended.
pub fn heal(
    federation: &mut LocalFederation,
    network: Option<&Network>,
    injected: &Injected,
) -> anyhow::Result<()> {
    match injected.fault {
        Fault::KillLeader | Fault::KillFollower | Fault::KillAll | Fault::RestartLeader => {
            for position in &injected.positions {
                federation.restart(*position)?;
            }
        }
        Fault::PauseLeader | Fault::PauseFollower => {
            let position = injected.positions[0];
            let pid = federation.pid(position).ok_or_else(|| anyhow::anyhow!("gone"))?;
            signal(pid, "CONT")?;
        }
        Fault::IsolateLeader
        | Fault::PartitionLeaderMinority
        | Fault::PartitionFollowerMinority
        | Fault::OneWayLeader
        | Fault::SlowLeader
        | Fault::SlowFollower => {
            if let Some(network) = network {
                network.heal()?;
            }
        }
    }
    Ok(())
}
