//! The `speakers` scenario's own side: a real cluster and simulated speakers.

use super::*;

pub(super) async fn ours(bin: &Path, n: usize, opts: &Options) -> Result<Value> {
    progress!(
        "ours, {n} nodes: starting 3 controller members ({})",
        bin.display()
    );
    let cluster = Cluster::start(bin, 3, &[]).await;
    let config = format!(
        "{}---\napiVersion: ironlb.io/v1beta1\nkind: L2Advertisement\nmetadata:\n  name: bench\nspec:\n  ipAddressPools: [bench]\n",
        pool_yaml("bench", POOL_CIDR)
    );
    put_config(&cluster.client(), &config).await;
    let li = cluster.leader().await;
    let leader_pid = pid_of(&cluster, li)?;
    let followers: Vec<u32> = (0..cluster.procs.len())
        .filter(|i| *i != li)
        .map(|i| pid_of(&cluster, i))
        .collect::<Result<_>>()?;
    let admin = cluster.procs[li].admin.clone();
    let url = format!("http://{admin}/v1/allocate");
    let http = http_client(CLIENTS)?;
    progress!("ours: leader is member {}", cluster.procs[li].id);
    // The leader with no speaker at all: Raft heartbeats and leadership confirmations.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle_window = Duration::from_secs(opts.duration.clamp(1, 10));
    progress!("ours: idle leader for {idle_window:?}");
    let idle0 = ProcStat::read(leader_pid)?;
    tokio::time::sleep(idle_window).await;
    let idle1 = ProcStat::read(leader_pid)?;
    let idle_cores = idle1.cores_since(&idle0);

    let shared = Arc::new(Shared::default());
    let (rtt_tx, mut rtt_rx) = mpsc::unbounded_channel::<Duration>();
    let collector = {
        let shared = shared.clone();
        tokio::spawn(async move {
            while let Some(rtt) = rtt_rx.recv().await {
                shared.renewals.fetch_add(1, Ordering::Relaxed);
                if shared.recording.load(Ordering::Relaxed) {
                    if let Ok(mut v) = shared.rtts.lock() {
                        v.push(rtt);
                    }
                }
            }
        })
    };
    let mut arbiters = Vec::new();
    for _ in 0..ARBITERS {
        arbiters.push(ironlb::actors::on_new_arbiter(actix_rt::Arbiter::current).await);
    }
    let env = Env {
        controllers: cluster.procs.iter().map(|p| p.raft.clone()).collect(),
        arbiters,
        shared: shared.clone(),
        rtt_tx,
    };
    progress!("ours: starting {n} simulated speakers on {ARBITERS} arbiters");
    let started = Instant::now();
    let mut sims = Vec::with_capacity(n);
    for i in 0..n {
        sims.push(env.start_speaker(i).await?);
        // Batches, so the members' accept queues are not flooded all at once.
        if i % 50 == 49 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let settle_limit = Duration::from_secs(60 + n as u64 / 10);
    if let Err(e) = wait_settled(&sims, &shared, 0, settle_limit).await {
        bail!("ours: {e:#}\n{}", cluster.logs());
    }
    let startup = started.elapsed();
    progress!(
        "ours: all {n} nodes leased after {:.2} s; allocating {} Services",
        startup.as_secs_f64(),
        opts.services
    );
    // The Services are allocated only now that every node holds a lease, so their owners
    // spread over all the nodes as in a running cluster. Allocated before (or while the
    // speakers connect), the first node to be leased would own nearly every address and the
    // failover would move all of them. In batches, each held everywhere before the next: every
    // node is told of every Service, and thousands of allocations a second to a thousand
    // speakers on this one machine starve the members and the simulated nodes alike.
    let allocated = Instant::now();
    let mut done = 0;
    while done < opts.services {
        let batch = ALLOC_BATCH.min(opts.services - done);
        let (http, url) = (http.clone(), url.clone());
        drive(batch, CLIENTS, move |_, i| {
            let (http, url) = (http.clone(), url.clone());
            async move { allocate(&http, &url, done + i).await.map(|()| 0) }
        })
        .await
        .map_err(|e| anyhow::anyhow!("allocating: {e:#}\n{}", cluster.logs()))?;
        done += batch;
        if let Err(e) = wait_settled(&sims, &shared, done, settle_limit).await {
            bail!("ours: {e:#}\n{}", cluster.logs());
        }
    }
    let assigned = allocated.elapsed();
    progress!(
        "ours: {} addresses held {:.2} s after the allocations began",
        opts.services,
        assigned.as_secs_f64()
    );
    tokio::time::sleep(Duration::from_secs(2)).await;

    // Steady state.
    progress!("ours: steady state for {} s", opts.duration);
    let window = Duration::from_secs(opts.duration.max(1));
    if let Ok(mut v) = shared.rtts.lock() {
        v.clear();
    }
    let renewals0 = shared.renewals.load(Ordering::SeqCst);
    shared.recording.store(true, Ordering::SeqCst);
    let (l0, f0, b0) = ProcStat::cluster(leader_pid, &followers)?;
    tokio::time::sleep(window).await;
    let (l1, f1, b1) = ProcStat::cluster(leader_pid, &followers)?;
    shared.recording.store(false, Ordering::SeqCst);
    let renewals = shared.renewals.load(Ordering::SeqCst) - renewals0;
    let mut rtts = shared.rtts.lock().map(|v| v.clone()).unwrap_or_default();
    rtts.sort_unstable();
    let wall = l1.at.duration_since(l0.at).as_secs_f64();
    let leader_cores = l1.cores_since(&l0);
    let per_hb_us = l1.cpu_since(&l0) / (renewals.max(1) as f64) * 1e6;
    let per_hb_net_us = (l1.cpu_since(&l0) - idle_cores * wall) / (renewals.max(1) as f64) * 1e6;
    let follower_cores: Vec<f64> = f0
        .iter()
        .zip(&f1)
        .map(|(a, b)| round3(b.cores_since(a)))
        .collect();

    // Cost of one change: one Service allocated.
    tokio::time::sleep(Duration::from_secs(1)).await;
    progress!("ours: one Service allocated");
    let change = ChangeCost::begin(&shared, leader_pid)?;
    let t = Instant::now();
    allocate(&http, &url, opts.services).await?;
    let acked = t.elapsed();
    let mut announced = None;
    while t.elapsed() < CHANGE_WINDOW {
        if announced.is_none() && shared.board.lock().map(|b| b.len()).unwrap_or(0) > opts.services
        {
            announced = Some(t.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let change_alloc = change.end(
        &shared,
        leader_pid,
        leader_cores,
        json!({
            "allocate_ms": round2(acked.as_secs_f64() * 1000.0),
            "announced_ms": announced.map(|d| round2(d.as_secs_f64() * 1000.0)),
        }),
    )?;
    let total = opts.services + 1;

    // Cost of one change: one node's health flips for one Service it answers for, and back.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (flip_node, (flip_addr, flip_services)) = (0..n)
        .find_map(|i| shared.held_by(i).into_iter().next().map(|h| (i, h)))
        .context("no node holds an address")?;
    let flip_service = flip_services
        .first()
        .cloned()
        .context("an address without a Service")?;
    progress!("ours: node-{flip_node} unready for {flip_service}, then ready again");
    let mut change_health = serde_json::Map::new();
    for (label, unready) in [
        ("unready", BTreeSet::from([flip_service.clone()])),
        ("ready_again", BTreeSet::new()),
    ] {
        let change = ChangeCost::begin(&shared, leader_pid)?;
        let t = Instant::now();
        sims[flip_node].session.do_send(Readiness {
            source: ReadinessSource::HealthChecks,
            unready,
        });
        let mut moved = None;
        while t.elapsed() < CHANGE_WINDOW {
            let owner = shared
                .board
                .lock()
                .ok()
                .and_then(|b| b.get(&flip_addr).map(|h| h.node));
            if moved.is_none() && label == "unready" && owner.is_some_and(|o| o != flip_node) {
                moved = Some(t.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        change_health.insert(
            label.into(),
            change.end(
                &shared,
                leader_pid,
                leader_cores,
                json!({"address_moved_ms": moved.map(|d| round2(d.as_secs_f64() * 1000.0))}),
            )?,
        );
    }

    // Failovers: the node holding the most addresses dies.
    let mut failovers = Vec::new();
    let mut failovers_p50 = Vec::new();
    let mut after_verdicts = Vec::new();
    for trial in 0..opts.trials {
        wait_settled(&sims, &shared, total, Duration::from_secs(30)).await?;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let mut counts: BTreeMap<usize, usize> = BTreeMap::new();
        if let Ok(b) = shared.board.lock() {
            for h in b.values() {
                *counts.entry(h.node).or_default() += 1;
            }
        }
        let victim = counts
            .iter()
            .max_by_key(|(_, c)| **c)
            .map(|(n, _)| *n)
            .context("nobody holds anything")?;
        let addrs: Vec<IpAddr> = shared.held_by(victim).into_iter().map(|(a, _)| a).collect();
        tokio::time::sleep(random_phase()).await;
        let remaining = sims[victim].kill();
        let killed = Instant::now();
        // The leader's verdict, counted from the kill: dead_after from the last granted
        // heartbeat, which was sent `LEASE - remaining` before the kill.
        let verdict = DEAD_AFTER.saturating_sub(LEASE.saturating_sub(remaining));
        let deadline = killed + Duration::from_secs(30);
        let arrivals = loop {
            let arrived: Vec<Duration> = {
                let b = shared.board.lock().expect("board lock");
                addrs
                    .iter()
                    .filter_map(|a| b.get(a))
                    .filter(|h| h.node != victim && h.at > killed)
                    .map(|h| h.at.duration_since(killed))
                    .collect()
            };
            if arrived.len() == addrs.len() {
                break arrived;
            }
            ensure!(
                Instant::now() < deadline,
                "failover: {}/{} addresses of node-{victim} moved after 30 s",
                arrived.len(),
                addrs.len()
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        };
        let mut arrivals = arrivals;
        arrivals.sort_unstable();
        let max = arrivals.last().copied().unwrap_or_default().as_secs_f64();
        let p50 = quantile_ms(&arrivals, 0.5) / 1000.0;
        progress!(
            "ours: failover {}: node-{victim}'s {} addresses moved in {max:.3} s",
            trial + 1,
            addrs.len()
        );
        failovers.push(max);
        failovers_p50.push(p50);
        after_verdicts.push(max - verdict.as_secs_f64());
        // The node comes back, so the next trial starts from the same cluster.
        sims[victim] = env.start_speaker(victim).await?;
    }
    let leader_rss = ProcStat::read(leader_pid)?;
    let follower_rss: Vec<f64> = followers
        .iter()
        .map(|p| ProcStat::read(*p).map(|s| mb(s.rss_bytes)))
        .collect::<Result<_>>()?;
    for s in &sims {
        let _ = s.kill();
    }
    collector.abort();
    drop(cluster);

    let failover = spread(&failovers);
    let failover_s = failover["median"].as_f64();
    Ok(json!({
        "name": "ironlb",
        "tls": false,
        "scheme": format!(
            "3 controller members (release build, default LeaseTiming: 200 ms heartbeat, 1 s lease, 0.2 s margin); {n} in-process speakers, each the real ControllerSession and link over TCP to all 3 members, on {ARBITERS} actix arbiters; a recording applier instead of the node agent"
        ),
        "startup_s": round3(startup.as_secs_f64()),
        "assigned_s": round3(assigned.as_secs_f64()),
        "leader_cpu_cores": round3(leader_cores),
        "leader_idle_cpu_cores": round3(idle_cores),
        "leader_cpu_us_per_heartbeat": round2(per_hb_us),
        "leader_cpu_us_per_heartbeat_net": round2(per_hb_net_us),
        "follower_cpu_cores": follower_cores,
        "bench_cpu_cores": round3(b1.cores_since(&b0)),
        "renewals_per_s": (renewals as f64 / wall).round(),
        "expected_renewals_per_s": (n as f64 / HEARTBEAT.as_secs_f64()).round(),
        "renewal_samples": rtts.len(),
        "renewal_p50_ms": round3(quantile_ms(&rtts, 0.5)),
        "renewal_p99_ms": round3(quantile_ms(&rtts, 0.99)),
        "renewal_max_ms": round3(quantile_ms(&rtts, 1.0)),
        "leader_rss_mb": mb(leader_rss.rss_bytes),
        // Before any speaker and any Service: the per-node figure includes the Services' state.
        "leader_rss_idle_mb": mb(idle1.rss_bytes),
        "leader_hwm_mb": mb(leader_rss.hwm_bytes),
        "leader_bytes_per_node": ((l1.rss_bytes as f64 - idle1.rss_bytes as f64) / n as f64).round(),
        "follower_rss_mb": follower_rss,
        "failover_s": failover_s.map(round3),
        "failover": failover,
        "failover_address_p50_s": spread(&failovers_p50)["median"],
        // From the leader's verdict (dead_after after the victim's last granted heartbeat, as
        // the victim's lease shows it) to the last address arriving.
        "failover_after_verdict_s": spread(&after_verdicts)["median"].as_f64().map(round3),
        "change_alloc": change_alloc,
        "change_health": change_health,
    }))
}
