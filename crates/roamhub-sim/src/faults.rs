//! The fault schedule: which faults a seed injects into the cluster, and when it heals.
//!
//! At each step the schedule may heal what is broken (a partition or slow link, or a
//! crashed node it restarts) and may inject one new fault: a majority/minority partition, a
//! one-way cut, an isolated leader, a slow link, or a crash of a node (the leader or any
//! other). At most a minority of
//! the nodes is down at once, and one partition or slow link holds at a time.

use std::collections::BTreeMap;
use std::fmt;

use crate::cluster::Cluster;
use crate::limits::{FAULT_PER_MILLE, HEAL_PER_MILLE};
use crate::network::SimNetwork;
use crate::rng::SimRng;
use crate::trace::Trace;

/// Every kind of fault, and the heals, as the summary counts them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum FaultKind {
    /// A minority of the nodes cut off from the majority, both ways.
    Partition,
    /// One node no longer hears another; the other way still works.
    OneWayCut,
    /// The leader cut off from every other node, both ways.
    IsolatedLeader,
    /// Messages between two nodes, both ways, take up to hundreds of milliseconds, so that
    /// they arrive far out of order and after their senders gave up on them.
    SlowLink,
    Crash,
    Restart,
    /// Every cut link restored.
    Heal,
}

impl FaultKind {
    pub const ALL: [FaultKind; 7] = [
        FaultKind::Partition,
        FaultKind::OneWayCut,
        FaultKind::IsolatedLeader,
        FaultKind::SlowLink,
        FaultKind::Crash,
        FaultKind::Restart,
        FaultKind::Heal,
    ];
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            FaultKind::Partition => "partition",
            FaultKind::OneWayCut => "one-way",
            FaultKind::IsolatedLeader => "isolate-leader",
            FaultKind::SlowLink => "slow-link",
            FaultKind::Crash => "crash",
            FaultKind::Restart => "restart",
            FaultKind::Heal => "heal",
        };
        f.write_str(name)
    }
}

pub struct FaultSchedule {
    rng: SimRng,
    trace: Trace,
    /// Faults injected and healed so far, by kind.
    pub counts: BTreeMap<FaultKind, u32>,
}

impl FaultSchedule {
    pub fn new(rng: SimRng, trace: Trace) -> FaultSchedule {
        FaultSchedule { rng, trace, counts: BTreeMap::new() }
    }

    /// One step of the schedule: maybe heal, maybe inject.
    pub async fn step(
        &mut self,
        cluster: &mut Cluster,
        network: &SimNetwork,
    ) -> Result<(), String> {
        self.maybe_heal(cluster, network).await?;
        if self.rng.chance(FAULT_PER_MILLE) {
            self.inject(cluster, network).await;
        }
        Ok(())
    }

    async fn maybe_heal(
        &mut self,
        cluster: &mut Cluster,
        network: &SimNetwork,
    ) -> Result<(), String> {
        if network.is_degraded() && self.rng.chance(HEAL_PER_MILLE) {
            self.heal_links(network);
        }
        let down = cluster.down_ids();
        if !down.is_empty() && self.rng.chance(HEAL_PER_MILLE) {
            let node_id = down[self.rng.index(down.len())];
            self.count(FaultKind::Restart);
            cluster.restart(node_id).await?;
        }
        Ok(())
    }

    pub fn heal_links(&mut self, network: &SimNetwork) {
        self.count(FaultKind::Heal);
        network.heal_all();
        self.trace.record("fault: heal every link");
    }

    async fn inject(&mut self, cluster: &mut Cluster, network: &SimNetwork) {
        let nodes = cluster.node_ids();
        let kinds = [
            FaultKind::Partition,
            FaultKind::OneWayCut,
            FaultKind::IsolatedLeader,
            FaultKind::SlowLink,
            FaultKind::Crash,
        ];
        let kind = kinds[self.rng.index(kinds.len())];
        if kind == FaultKind::Crash {
            self.crash(cluster).await;
            return;
        }

        // One degradation of the network at a time: a new one replaces the old.
        network.heal_all();
        let links = match kind {
            FaultKind::Partition => self.partition(&nodes),
            FaultKind::OneWayCut => self.one_way(&nodes),
            FaultKind::SlowLink => self.slow_link(&nodes),
            _ => self.isolate(cluster.leader(), &nodes),
        };
        for &(from, to) in &links {
            match kind {
                FaultKind::SlowLink => network.slow_down(from, to),
                _ => network.cut(from, to),
            }
        }
        self.count(kind);
        self.trace.record(format_args!("fault: {kind}, links {links:?}"));
    }

    /// A random minority against the rest, both ways.
    fn partition(&mut self, nodes: &[u64]) -> Vec<(u64, u64)> {
        let mut shuffled = nodes.to_vec();
        for i in (1..shuffled.len()).rev() {
            shuffled.swap(i, self.rng.index(i + 1));
        }
        let minority_len = 1 + self.rng.index((nodes.len() - 1) / 2);
        let (minority, majority) = shuffled.split_at(minority_len);
        both_ways(minority, majority)
    }

    fn one_way(&mut self, nodes: &[u64]) -> Vec<(u64, u64)> {
        let from = nodes[self.rng.index(nodes.len())];
        let others: Vec<u64> = nodes.iter().copied().filter(|&n| n != from).collect();
        vec![(from, others[self.rng.index(others.len())])]
    }

    /// Both ways between two random nodes.
    fn slow_link(&mut self, nodes: &[u64]) -> Vec<(u64, u64)> {
        let (from, to) = self.one_way(nodes)[0];
        vec![(from, to), (to, from)]
    }

    fn isolate(&mut self, leader: Option<u64>, nodes: &[u64]) -> Vec<(u64, u64)> {
        let isolated = leader.unwrap_or_else(|| nodes[self.rng.index(nodes.len())]);
        let others: Vec<u64> = nodes.iter().copied().filter(|&n| n != isolated).collect();
        both_ways(&[isolated], &others)
    }

    /// Crashes the leader or a random node, unless a minority is already down.
    async fn crash(&mut self, cluster: &mut Cluster) {
        let up = cluster.up_ids();
        let down_max = (cluster.node_ids().len() - 1) / 2;
        if cluster.down_ids().len() >= down_max {
            return;
        }
        let leader = cluster.leader().filter(|_| self.rng.chance(500));
        let node_id = leader.unwrap_or_else(|| up[self.rng.index(up.len())]);
        self.count(FaultKind::Crash);
        cluster.crash(node_id).await;
    }

    fn count(&mut self, kind: FaultKind) {
        *self.counts.entry(kind).or_default() += 1;
    }
}

fn both_ways(group: &[u64], rest: &[u64]) -> Vec<(u64, u64)> {
    let mut cuts = Vec::new();
    for &a in group {
        for &b in rest {
            cuts.push((a, b));
            cuts.push((b, a));
        }
    }
    cuts
}
