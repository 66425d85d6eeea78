//! The faults a run injects into real node processes, and how each is healed.

use std::fmt;
use std::process::Command;

use roamhub::local::LocalFederation;

/// One fault per run, on one node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fault {
    /// SIGKILL of the leader; it is started again from its data directory at healing.
    KillLeader,
    /// SIGKILL of a follower, started again at healing.
    KillFollower,
    /// SIGSTOP of the leader for the fault's length, then SIGCONT: it wakes up deposed.
    PauseLeader,
    /// SIGSTOP of a follower, then SIGCONT.
    PauseFollower,
    /// A clean stop (SIGTERM) of the leader and a start again.
    RestartLeader,
}

impl Fault {
    pub const ALL: [Fault; 5] = [
        Fault::KillLeader,
        Fault::KillFollower,
        Fault::PauseLeader,
        Fault::PauseFollower,
        Fault::RestartLeader,
    ];

    fn hits_leader(self) -> bool {
        matches!(self, Fault::KillLeader | Fault::PauseLeader | Fault::RestartLeader)
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Fault::KillLeader => "kill leader",
            Fault::KillFollower => "kill follower",
            Fault::PauseLeader => "pause leader",
            Fault::PauseFollower => "pause follower",
            Fault::RestartLeader => "restart leader",
        })
    }
}

/// A fault in force, to be healed.
#[derive(Debug)]
pub struct Injected {
    pub fault: Fault,
    pub position: usize,
}

fn signal(pid: u32, name: &str) -> anyhow::Result<()> {
    let status = Command::new("kill").args([&format!("-{name}"), &pid.to_string()]).status()?;
    anyhow::ensure!(status.success(), "kill -{name} {pid} failed");
    Ok(())
}

/// Injects `fault` on the leader or on the follower `pick` chooses.
pub async fn inject(
    federation: &mut LocalFederation,
    fault: Fault,
    pick: usize,
) -> anyhow::Result<Injected> {
    let leader = federation.leader().await.ok_or_else(|| anyhow::anyhow!("no leader to fault"))?;
    let nodes = federation.nodes.len();
    let position = match fault.hits_leader() {
        true => leader,
        false => (leader + 1 + pick % (nodes - 1)) % nodes,
    };
    let pid = federation.pid(position).ok_or_else(|| anyhow::anyhow!("node is not running"))?;
    match fault {
        Fault::KillLeader | Fault::KillFollower => federation.kill(position),
        Fault::PauseLeader | Fault::PauseFollower => signal(pid, "STOP")?,
        Fault::RestartLeader => federation.terminate(position),
    }
    Ok(Injected { fault, position })
}

/// Ends the fault: the node is started again or woken up.
pub fn heal(federation: &mut LocalFederation, injected: &Injected) -> anyhow::Result<()> {
    match injected.fault {
        Fault::KillLeader | Fault::KillFollower | Fault::RestartLeader => {
            federation.restart(injected.position)
        }
        Fault::PauseLeader | Fault::PauseFollower => {
            let pid = federation.pid(injected.position).ok_or_else(|| anyhow::anyhow!("gone"))?;
            signal(pid, "CONT")
        }
    }
}
