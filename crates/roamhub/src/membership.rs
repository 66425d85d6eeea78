//! Operator commands that change the Raft group: join (learner, catch up, voter), leave,
//! remove. Each runs at the leader, found through the node the operator names.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};
use roamhub_proto::v1 as pb;

use roamhub_node::Transport;

use crate::client::{Client, connect, status_error};

/// How often a joining node's progress is polled.
const CATCH_UP_POLL: Duration = Duration::from_millis(200);

/// A client of the current leader, found through any node.
pub async fn leader(client: &mut Client, transport: &Transport) -> anyhow::Result<Client> {
    let status = client.node_status(pb::NodeStatusRequest {}).await.map_err(status_error)?;
    let leader_id = status.into_inner().leader_node_id;
    if leader_id == 0 {
        bail!("the federation has no leader now; try again");
    }
    let group = client.raft_members(pb::RaftMembersRequest {}).await.map_err(status_error)?;
    let group = group.into_inner();
    let leader = group.members.iter().find(|m| m.node_id == leader_id);
    let leader = leader.context("the leader is not in the group this node knows")?;
    connect(&leader.api_addr, transport)
}

/// Adds a node as a learner, shows its catch-up, then makes it a voter.
pub async fn join(
    client: &mut Client,
    transport: &Transport,
    learner: pb::AddLearnerRequest,
    timeout: Duration,
) -> anyhow::Result<pb::RaftMembersResponse> {
    let mut leader = leader(client, transport).await?;
    let node_id = learner.node_id;
    leader.add_learner(learner).await.map_err(status_error)?;

    wait_caught_up(&mut leader, node_id, timeout).await?;
    let promote = pb::PromoteVoterRequest { node_id };
    Ok(leader.promote_voter(promote).await.map_err(status_error)?.into_inner())
}

/// Polls the leader until the node's lag is zero, with a progress bar on standard error.
async fn wait_caught_up(
    leader: &mut Client,
    node_id: u64,
    timeout: Duration,
) -> anyhow::Result<()> {
    let bar = ProgressBar::new(0);
    bar.set_style(ProgressStyle::with_template("catching up {bar:40} {pos}/{len} entries")?);
    let deadline = Instant::now() + timeout;
    loop {
        let group = leader.raft_members(pb::RaftMembersRequest {}).await.map_err(status_error)?;
        let group = group.into_inner();
        let member = group.members.iter().find(|m| m.node_id == node_id);
        let member = member.context("the learner is not in the group")?;
        bar.set_length(group.leader_last_log_index);
        bar.set_position(member.matched_index);
        if member.matched_index > 0 && member.lag == 0 {
            bar.finish_and_clear();
            return Ok(());
        }
        if Instant::now() > deadline {
            bar.abandon();
            bail!("node {node_id} did not catch up within {timeout:?}");
        }
        tokio::time::sleep(CATCH_UP_POLL).await;
    }
}

/// Takes a node out of the group, as voter and learner.
pub async fn remove(
    client: &mut Client,
    transport: &Transport,
    node_id: u64,
) -> anyhow::Result<pb::RaftMembersResponse> {
    let mut leader = leader(client, transport).await?;
    let request = pb::RemoveNodeRequest { node_id };
    Ok(leader.remove_node(request).await.map_err(status_error)?.into_inner())
}

/// Takes the node `client` talks to out of the group.
pub async fn leave(
    client: &mut Client,
    transport: &Transport,
) -> anyhow::Result<pb::RaftMembersResponse> {
    let status = client.node_status(pb::NodeStatusRequest {}).await.map_err(status_error)?;
    remove(client, transport, status.into_inner().raft_node_id).await
}

pub fn print_raft_members(group: &pb::RaftMembersResponse) {
    println!(
        "Raft group (leader node {}, last log index {}):",
        group.leader_node_id, group.leader_last_log_index
    );
    for member in &group.members {
        println!(
            "  node {:<3} {:<8} matched {:<8} lag {:<8} api {}",
            member.node_id, member.role, member.matched_index, member.lag, member.api_addr
        );
    }
}
