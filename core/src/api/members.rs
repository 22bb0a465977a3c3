//! Membership handlers: reserving a member id, listing, adding and removing members.

use super::*;

/// `POST /v1/members/reserve`: a member id never used in this cluster, for a member joining
/// with an empty data directory; committed, so two joiners never get the same.
pub(super) async fn reserve_member_id(State(a): State<Shared>, req: Request) -> Response {
    leader_or_forward(a, req, |a, body| async move {
        let ask: views::ReserveMember = serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request(format!("member id request: {e}")))?;
        let id = proposed(a.proposer.reserve_member_id(ask.requested).await)?;
        Ok(json(&views::ReservedMember {
            id,
            cluster: a.identity.as_ref().and_then(|i| i.cluster()),
        }))
    })
    .await
}

pub(super) async fn members(State(a): State<Shared>) -> Response {
    let m = a.raft.metrics().borrow().clone();
    json(&views::Members::new(&m))
}

/// Membership changes must start on a member that is leader now: a removed leader still
/// believes it leads for a moment, and openraft must not be asked to change membership there.
pub(super) fn check_leads(a: &Admin) -> Result<(), Failure> {
    let m = a.raft.metrics().borrow().clone();
    let voter = m
        .membership_config
        .membership()
        .voter_ids()
        .any(|v| v == a.id);
    if m.state == openraft::ServerState::Leader && voter {
        return Ok(());
    }
    match m.current_leader.filter(|l| *l != a.id) {
        Some(id) => {
            let member = m
                .membership_config
                .membership()
                .get_node(&id)
                .cloned();
            Err(Failure::NotLeader(member.map(|member| LeaderRef { id, member })))
        }
        None => Err(ApiError::unavailable(format!(
            "member {} does not lead (it may have been removed from the cluster); ask another member",
            a.id
        ))
        .into()),
    }
}

pub(super) async fn add_member(State(a): State<Shared>, req: Request) -> Response {
    leader_or_forward(a, req, |a, body| async move {
        check_leads(&a)?;
        let add: views::AddMember = serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request(format!("member: {e}")))?;
        let member = Member {
            raft_addr: add.raft_addr.clone(),
            admin_addr: add.admin_addr.clone(),
        };
        // A learner first, so it catches up (through a snapshot if it must) before it votes.
        match a.raft.add_learner(add.id, member, true).await {
            Ok(_) => {}
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                return Err(Failure::NotLeader(leader_ref(f.leader_id, f.leader_node)))
            }
            Err(e) => return Err(ApiError::unavailable(format!("adding learner: {e}")).into()),
        }
        if add.voter {
            // A relative change, so that members joining together cannot undo each other (a
            // whole voter set computed before another join landed would drop that member);
            // one waits for the other's change to finish rather than failing.
            let change = openraft::ChangeMembers::AddVoterIds([add.id].into());
            change_membership_retrying(&a, change, "making member a voter").await?;
            // A member at the same Raft address under another id is the one this replaces (it
            // lost its data and came back as a new member): it leaves once the new one votes.
            let replaced: std::collections::BTreeSet<MemberId> = a
                .raft
                .metrics()
                .borrow()
                .membership_config
                .membership()
                .nodes()
                .filter(|(id, n)| **id != add.id && n.raft_addr == add.raft_addr)
                .map(|(id, _)| *id)
                .collect();
            if !replaced.is_empty() {
                tracing::info!(new = add.id, old = ?replaced, addr = %add.raft_addr, "a member came back with empty storage: replacing its old id");
                let change = openraft::ChangeMembers::RemoveVoters(replaced);
                change_membership_retrying(&a, change, "removing the replaced member").await?;
            }
        }
        let m = a.raft.metrics().borrow().clone();
        Ok(json(&views::Members::new(&m)))
    })
    .await
}

/// Changes membership (without keeping removed voters as learners), waiting out a change already
/// in progress for up to the write timeout.
pub(super) async fn change_membership_retrying(
    a: &Admin,
    change: openraft::ChangeMembers<MemberId, Member>,
    what: &str,
) -> Result<(), Failure> {
    let deadline = Instant::now() + a.write_timeout;
    loop {
        match a.raft.change_membership(change.clone(), false).await {
            Ok(_) => return Ok(()),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                return Err(Failure::NotLeader(leader_ref(f.leader_id, f.leader_node)))
            }
            Err(RaftError::APIError(ClientWriteError::ChangeMembershipError(
                openraft::error::ChangeMembershipError::InProgress(_),
            ))) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => return Err(ApiError::unavailable(format!("{what}: {e}")).into()),
        }
    }
}

pub(super) async fn remove_member(
    State(a): State<Shared>,
    Path(id): Path<MemberId>,
    req: Request,
) -> Response {
    leader_or_forward(a, req, |a, _| async move {
        check_leads(&a)?;
        let membership = a.raft.metrics().borrow().membership_config.clone();
        if membership.nodes().all(|(n, _)| *n != id) {
            return Err(ApiError::not_found(format!("member {id} is not in the cluster")).into());
        }
        if membership.membership().voter_ids().all(|v| v == id) {
            return Err(ApiError::bad_request("cannot remove the last voter").into());
        }
        let change = openraft::ChangeMembers::RemoveVoters([id].into());
        change_membership_retrying(&a, change, "removing member").await?;
        let m = a.raft.metrics().borrow().clone();
        Ok(json(&views::Members::new(&m)))
    })
    .await
}
