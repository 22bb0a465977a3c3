//! How a member finds its place: its identity (bootstrap, join, or a fresh volume under its
//! seat), the cluster it joins, and the leader-only loops it runs.

use super::*;

/// What a member with no Raft state does once it knows who it is.
pub(super) enum Fresh {
    /// It has state: nothing.
    No,
    /// It founds a new cluster.
    Bootstrap,
    /// It asks the cluster to add it.
    Join,
    /// It waits for an operator to add it (and learns the cluster from the first member that
    /// connects).
    WaitToBeAdded,
}

/// How long a member told to bootstrap looks for an existing cluster among its `--join` peers
/// before it founds one.
pub(super) const BOOTSTRAP_LOOK: Duration = Duration::from_secs(3);

/// Who this member is, from its data directory; for a member without Raft state (new, or whose
/// storage was emptied), from the cluster its peers belong to: it never reuses an identity
/// without the log that goes with it.
pub(super) async fn resolve_identity(
    cfg: &MemberConfig,
    base: &AdminClient,
    has_state: bool,
) -> Result<(Identity, Fresh), MemberError> {
    let io = |e: std::io::Error| MemberError::Identity(e.to_string());
    let saved = identity::load(&cfg.data_dir).map_err(io)?;
    if has_state {
        return Ok(match saved {
            Some(i) => {
                if i.member != cfg.id {
                    info!(
                        id = i.member,
                        asked = cfg.id,
                        "this member's id is the one in its data directory"
                    );
                }
                (i, Fresh::No)
            }
            None => {
                // Data from before identities: it keeps the id it was started with.
                let i = Identity {
                    cluster: None,
                    member: cfg.id,
                };
                identity::save(&cfg.data_dir, &i).map_err(io)?;
                (i, Fresh::No)
            }
        });
    }
    if saved.is_some() {
        warn!("an identity but no Raft state in the data directory: the log was lost; joining as a new member");
    }
    // Empty storage: a cluster that already exists is joined, never founded again.
    let deadline = cfg
        .bootstrap
        .then(|| tokio::time::Instant::now() + BOOTSTRAP_LOOK);
    if !cfg.join.is_empty() {
        let mut wait = Duration::from_millis(200);
        loop {
            if find_cluster(base, &cfg.join).await {
                let (cluster, member) = reserve_member_id(base, &cfg.join, cfg.id).await;
                info!(id = member, cluster = ?cluster.as_ref().map(ToString::to_string), "joining the existing cluster");
                let i = Identity { cluster, member };
                identity::save(&cfg.data_dir, &i).map_err(io)?;
                return Ok((i, Fresh::Join));
            }
            if deadline.is_some_and(|d| tokio::time::Instant::now() >= d) {
                break;
            }
            if deadline.is_none() {
                info!(peers = ?cfg.join, "no cluster found among the peers yet; waiting");
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_secs(5));
        }
    }
    if cfg.bootstrap {
        let i = Identity {
            cluster: Some(ClusterId::generate().map_err(io)?),
            member: cfg.id,
        };
        identity::save(&cfg.data_dir, &i).map_err(io)?;
        return Ok((i, Fresh::Bootstrap));
    }
    Ok((
        Identity {
            cluster: None,
            member: cfg.id,
        },
        Fresh::WaitToBeAdded,
    ))
}

/// Who this member is (see [`resolve_identity`]), held where it can be updated; with TLS, its
/// certificate must name that member's seat, or its peers would refuse it.
pub(super) async fn establish_identity(
    cfg: &MemberConfig,
    base: &AdminClient,
    has_state: bool,
) -> Result<(Arc<IdentityCell>, Fresh), MemberError> {
    let (identity, fresh) = resolve_identity(cfg, base, has_state).await?;
    if let Some(t) = &cfg.tls {
        let seat = crate::auth::MemberSeat::of(identity.member)
            .ok_or_else(|| MemberError::Exposed("member id 0 is not valid".into()))?;
        t.expect_principal(&crate::auth::Principal::Member(seat))?;
    }
    Ok((Arc::new(IdentityCell::new(&cfg.data_dir, identity)), fresh))
}

/// Whether one of `peers` belongs to a cluster that exists (has Raft state).
pub(super) async fn find_cluster(base: &AdminClient, peers: &[String]) -> bool {
    for peer in peers {
        let client = base
            .to(vec![peer.clone()])
            .with_timeout(Duration::from_secs(1));
        if let Ok(c) = client.get::<api::views::ClusterView>("/v1/cluster").await {
            if c.initialized {
                return true;
            }
        }
    }
    false
}

/// Asks the cluster (through any of `peers`) for a member id, `requested` if it was never used;
/// retries until one answers.
pub(super) async fn reserve_member_id(
    base: &AdminClient,
    peers: &[String],
    requested: MemberId,
) -> (Option<ClusterId>, MemberId) {
    let client = base
        .to(peers.to_vec())
        .with_timeout(Duration::from_secs(10));
    let body = serde_json::json!({ "requested": requested });
    let mut wait = Duration::from_millis(200);
    loop {
        match client
            .call::<api::views::ReservedMember>(
                reqwest::Method::POST,
                "/v1/members/reserve",
                Body::Json(body.clone()),
            )
            .await
        {
            Ok(r) => return (r.cluster, r.id),
            Err(e) => warn!(error = %e, "reserving a member id; will retry"),
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(Duration::from_secs(5));
    }
}

/// Runs the Kubernetes reconciler whenever this member leads, and stops it the moment it does
/// not: only the leader writes to the cluster. `board` is the leader's summary of what each
/// node announces, which the reconciler turns into status objects.
pub(super) async fn reconcile_while_leading(
    raft: Raft,
    proposer: Proposer,
    state: SharedState,
    metrics: Arc<Metrics>,
    board: crate::controller::announced::Board,
    serving: Arc<crate::k8s::endpoints::Serving>,
    cfg: ReconcilerConfig,
) {
    let mut m = raft.metrics();
    loop {
        let leading = m.borrow_and_update().state == openraft::ServerState::Leader;
        if leading {
            let client = match kube::Client::try_default().await {
                Ok(c) => c,
                Err(e) => {
                    warn!(error = %e, "cannot reach the Kubernetes API; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            info!(namespace = %cfg.namespace, "leading: reconciling Kubernetes");
            // The Services with a serving endpoint anywhere: the leader's to judge (see
            // `k8s::endpoints`); unknown again once this member stops leading.
            let endpoints = crate::k8s::endpoints::watch_serving(client.clone(), &serving);
            let run = Reconciler::run(
                client,
                cfg.clone(),
                proposer.clone(),
                state.clone(),
                metrics.clone(),
                board.subscribe(),
            );
            // The watch ends with the reconciler (a failed reconciler restarts both).
            let run = async move {
                tokio::pin!(run);
                tokio::select! {
                    r = &mut run => r,
                    () = endpoints => run.await,
                }
            };
            tokio::pin!(run);
            let stopped_leading = async {
                let _ = m
                    .wait_for(|m| m.state != openraft::ServerState::Leader)
                    .await;
            };
            tokio::select! {
                r = &mut run => {
                    if let Err(e) = r {
                        warn!(error = %e, "reconciler stopped; restarting");
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                () = stopped_leading => info!("no longer leading: reconciler stopped"),
            }
            serving.send_replace(None);
            continue;
        }
        if m.changed().await.is_err() {
            return;
        }
    }
}

/// Asks the given members to add this one until one of them does (the leader adds it as a
/// learner, waits until it has caught up, then makes it a voter).
pub(super) async fn join(
    base: AdminClient,
    id: MemberId,
    me: Member,
    peers: Vec<String>,
    raft: Raft,
    mut stopped: watch::Receiver<bool>,
) {
    let client = base.to(peers.clone()).with_timeout(Duration::from_secs(60));
    let body =
        serde_json::json!({"id": id, "raft_addr": me.raft_addr, "admin_addr": me.admin_addr});
    let mut wait = Duration::from_millis(200);
    loop {
        if raft
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .voter_ids()
            .any(|v| v == id)
        {
            info!(id, "joined the cluster");
            return;
        }
        match client
            .call::<serde_json::Value>(
                reqwest::Method::POST,
                "/v1/members",
                Body::Json(body.clone()),
            )
            .await
        {
            Ok(_) => {
                info!(id, "joined the cluster");
                return;
            }
            Err(e) => warn!(id, peers = ?peers, error = %e, "joining; will retry"),
        }
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stopped.wait_for(|s| *s) => return,
        }
        wait = (wait * 2).min(Duration::from_secs(5));
    }
}

impl Core {
    /// Founds the cluster or asks to join it, as `fresh` says; a join goes on as a task.
    pub(super) async fn found_or_join(
        &self,
        fresh: Fresh,
        cfg: &MemberConfig,
        base: &AdminClient,
        me: &Member,
        stopped: &watch::Receiver<bool>,
    ) -> Option<JoinHandle<()>> {
        let id = self.id;
        match fresh {
            Fresh::Bootstrap => {
                info!(id, cluster = ?self.identity.cluster().map(|c| c.to_string()), "initializing a new cluster");
                let members = BTreeMap::from([(id, me.clone())]);
                if let Err(e) = self.raft.initialize(members).await {
                    // Another start raced us, or state appeared: not fatal, Raft knows better.
                    warn!(error = %e, "initialize");
                }
                None
            }
            Fresh::Join => Some(tokio::spawn(join(
                base.clone(),
                id,
                me.clone(),
                cfg.join.clone(),
                self.raft.clone(),
                stopped.clone(),
            ))),
            Fresh::WaitToBeAdded => {
                info!(
                    id,
                    "no state, no --bootstrap and no --join: waiting to be added"
                );
                None
            }
            Fresh::No => None,
        }
    }
}
