//! The `speakers` baseline: the same nodes renewing Kubernetes-style Leases in etcd.

use super::*;

/// The range end of a key prefix (its last byte plus one).
fn prefix_end(prefix: &str) -> String {
    let mut bytes = prefix.as_bytes().to_vec();
    if let Some(last) = bytes.last_mut() {
        *last += 1;
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

fn unb64(v: &Value) -> String {
    B64.decode(v.as_str().unwrap_or(""))
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .unwrap_or_default()
}

fn revision(answer: &Value) -> i64 {
    answer["header"]["revision"]
        .as_str()
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

/// A coordination.k8s.io/v1 Lease as a node's kubelet renews it, about 300 bytes.
fn lease_value(node: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros())
        .unwrap_or(0);
    json!({
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": node, "namespace": "kube-node-lease", "uid": format!("{node:0>36}"),
                     "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": node}]},
        "spec": {"holderIdentity": node, "leaseDurationSeconds": 1, "renewTime": now.to_string()},
    })
    .to_string()
}

/// Calls `on_put(key, value)` for every put under `prefix` from now on, until the stream ends.
async fn watch_prefix(
    http: &reqwest::Client,
    base: &str,
    prefix: &str,
    mut on_put: impl FnMut(String, String),
) -> Result<()> {
    let body =
        json!({"create_request": {"key": b64(prefix), "range_end": b64(&prefix_end(prefix))}});
    let mut resp = http
        .post(format!("{base}/v3/watch"))
        .json(&body)
        .send()
        .await?
        .error_for_status()?;
    let mut buf: Vec<u8> = Vec::new();
    while let Some(chunk) = resp.chunk().await? {
        buf.extend_from_slice(&chunk);
        // The gateway streams one JSON object per message; a chunk may end inside one.
        let mut consumed = 0;
        let mut stream = serde_json::Deserializer::from_slice(&buf).into_iter::<Value>();
        loop {
            match stream.next() {
                Some(Ok(v)) => {
                    consumed = stream.byte_offset();
                    for ev in v["result"]["events"].as_array().into_iter().flatten() {
                        if ev["type"] == "DELETE" {
                            continue;
                        }
                        on_put(unb64(&ev["kv"]["key"]), unb64(&ev["kv"]["value"]));
                    }
                }
                Some(Err(e)) if e.is_eof() => break,
                Some(Err(e)) => return Err(e.into()),
                None => break,
            }
        }
        buf.drain(..consumed);
    }
    Ok(())
}

/// What the renewal tasks report.
#[derive(Default)]
struct BaseStats {
    recording: AtomicBool,
    rtts: Mutex<Vec<Duration>>,
    renewals: AtomicU64,
    failures: AtomicU64,
    late: AtomicU64,
}

/// Node `i` renewing its Lease every heartbeat with a compare-and-swap on its mod_revision.
async fn renew_forever(
    http: reqwest::Client,
    url: String,
    i: usize,
    n: usize,
    stats: Arc<BaseStats>,
) {
    let node = format!("node-{i}");
    let key = b64(&format!("/leases/{node}"));
    // Spread over the heartbeat, as real nodes are.
    tokio::time::sleep(HEARTBEAT * i as u32 / n as u32).await;
    let mut tick = tokio::time::interval(HEARTBEAT);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut last: i64 = -1;
    loop {
        tick.tick().await;
        if last < 0 {
            // Learn the current mod_revision (at start, or after losing track).
            match post(&http, &url, "/v3/kv/range", &json!({"key": key})).await {
                Ok(r) => {
                    last = r["kvs"][0]["mod_revision"]
                        .as_str()
                        .and_then(|s| s.parse().ok())
                        .unwrap_or(0);
                }
                Err(_) => {
                    stats.failures.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
            }
        }
        let txn = json!({
            "compare": [{"key": key, "target": "MOD", "result": "EQUAL", "mod_revision": last.to_string()}],
            "success": [{"request_put": {"key": key, "value": b64(&lease_value(&node))}}],
        });
        let t = Instant::now();
        match post(&http, &url, "/v3/kv/txn", &txn).await {
            Ok(a) if a["succeeded"].as_bool() == Some(true) => {
                let rtt = t.elapsed();
                last = revision(&a);
                stats.renewals.fetch_add(1, Ordering::Relaxed);
                if rtt > HEARTBEAT {
                    stats.late.fetch_add(1, Ordering::Relaxed);
                }
                if stats.recording.load(Ordering::Relaxed) {
                    if let Ok(mut v) = stats.rtts.lock() {
                        v.push(rtt);
                    }
                }
            }
            _ => {
                stats.failures.fetch_add(1, Ordering::Relaxed);
                last = -1;
            }
        }
    }
}

/// Address `k`'s initial owner.
fn initial_owner(k: usize, n: usize) -> usize {
    k % n
}

/// The controller: watches the Leases, declares a node dead `DEAD_AFTER` after its last
/// renewal, and CAS-writes new owners for its addresses (one txn per 100 addresses).
async fn lease_controller(
    http: reqwest::Client,
    watch_http: reqwest::Client,
    url: String,
    n: usize,
    addresses: usize,
    mut owner_rev: HashMap<usize, i64>,
    declared_dead: Arc<AtomicU64>,
) -> Result<()> {
    let last_seen = Arc::new(Mutex::new(vec![Instant::now(); n]));
    let watcher = {
        let (last_seen, url) = (last_seen.clone(), url.clone());
        tokio::spawn(async move {
            let _ = watch_prefix(&watch_http, &url, "/leases/", |key, _| {
                if let Some(i) = key
                    .strip_prefix("/leases/node-")
                    .and_then(|i| i.parse::<usize>().ok())
                {
                    if let Ok(mut s) = last_seen.lock() {
                        if let Some(t) = s.get_mut(i) {
                            *t = Instant::now();
                        }
                    }
                }
            })
            .await;
        })
    };
    let mut owner: Vec<usize> = (0..addresses).map(|k| initial_owner(k, n)).collect();
    let mut dead = vec![false; n];
    let mut sweep = tokio::time::interval(Duration::from_millis(5));
    loop {
        sweep.tick().await;
        let now = Instant::now();
        let newly_dead: Vec<usize> = {
            let seen = last_seen.lock().expect("last_seen lock");
            for (i, d) in dead.iter_mut().enumerate() {
                if *d && now.duration_since(seen[i]) < DEAD_AFTER {
                    // Renewing again.
                    *d = false;
                }
            }
            (0..n)
                .filter(|i| !dead[*i] && now.duration_since(seen[*i]) >= DEAD_AFTER)
                .collect()
        };
        for d in newly_dead {
            dead[d] = true;
            declared_dead.fetch_add(1, Ordering::Relaxed);
            let alive: Vec<usize> = (0..n).filter(|i| !dead[*i]).collect();
            if alive.is_empty() {
                continue;
            }
            let moved: Vec<usize> = (0..addresses).filter(|k| owner[*k] == d).collect();
            for (j, chunk) in moved.chunks(100).enumerate() {
                let mut compare = Vec::new();
                let mut success = Vec::new();
                for (m, k) in chunk.iter().enumerate() {
                    let to = alive[(j * 100 + m) % alive.len()];
                    owner[*k] = to;
                    let key = b64(&format!("/owners/addr-{k}"));
                    compare.push(json!({"key": key, "target": "MOD", "result": "EQUAL",
                                        "mod_revision": owner_rev.get(k).copied().unwrap_or(0).to_string()}));
                    success.push(
                        json!({"request_put": {"key": key, "value": b64(&format!("node-{to}"))}}),
                    );
                }
                let a = post(
                    &http,
                    &url,
                    "/v3/kv/txn",
                    &json!({"compare": compare, "success": success}),
                )
                .await?;
                ensure!(
                    a["succeeded"].as_bool() == Some(true),
                    "an owner CAS failed"
                );
                let rev = revision(&a);
                for k in chunk {
                    owner_rev.insert(*k, rev);
                }
            }
        }
        if watcher.is_finished() {
            bail!("the /leases/ watch ended");
        }
    }
}

pub(super) async fn baseline(etcd_bin: &Path, n: usize, opts: &Options) -> Result<Value> {
    progress!(
        "baseline, {n} nodes: starting 3 etcd members ({})",
        etcd_bin.display()
    );
    let mut etcd = Etcd::start(etcd_bin, 3)?;
    let http = http_client(n + CLIENTS)?;
    // Watches stream for as long as the run lasts: no overall timeout.
    let watch_http = reqwest::Client::builder().tcp_nodelay(true).build()?;
    let li = etcd.wait_leader(&http).await?;
    let url = etcd.clients[li].clone();
    let leader_pid = etcd.children[li].id();
    let followers: Vec<u32> = (0..etcd.children.len())
        .filter(|i| *i != li)
        .map(|i| etcd.children[i].id())
        .collect();

    // The Leases and the owners, written once.
    progress!("baseline: writing {n} Leases and {} owners", opts.services);
    for chunk in (0..n).collect::<Vec<_>>().chunks(100) {
        let ops: Vec<Value> = chunk
            .iter()
            .map(|i| json!({"request_put": {"key": b64(&format!("/leases/node-{i}")), "value": b64(&lease_value(&format!("node-{i}")))}}))
            .collect();
        post(&http, &url, "/v3/kv/txn", &json!({"success": ops})).await?;
    }
    let mut owner_rev = HashMap::new();
    for chunk in (0..opts.services).collect::<Vec<_>>().chunks(100) {
        let ops: Vec<Value> = chunk
            .iter()
            .map(|k| json!({"request_put": {"key": b64(&format!("/owners/addr-{k}")), "value": b64(&format!("node-{}", initial_owner(*k, n)))}}))
            .collect();
        let a = post(&http, &url, "/v3/kv/txn", &json!({"success": ops})).await?;
        for k in chunk {
            owner_rev.insert(*k, revision(&a));
        }
    }
    // etcd with no node renewing: its own heartbeats and housekeeping.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle0 = ProcStat::read(leader_pid)?;
    tokio::time::sleep(Duration::from_secs(opts.duration.clamp(1, 10))).await;
    let idle_cores = ProcStat::read(leader_pid)?.cores_since(&idle0);

    // The speakers' view of the owners: address → (owner, when the event arrived).
    let arrivals: Arc<Mutex<HashMap<usize, (usize, Instant)>>> = Arc::default();
    let speakers_watch = {
        let (arrivals, watch_http, url) = (arrivals.clone(), watch_http.clone(), url.clone());
        tokio::spawn(async move {
            let _ = watch_prefix(&watch_http, &url, "/owners/", |key, value| {
                let k = key
                    .strip_prefix("/owners/addr-")
                    .and_then(|k| k.parse().ok());
                let o = value.strip_prefix("node-").and_then(|o| o.parse().ok());
                if let (Some(k), Some(o), Ok(mut a)) = (k, o, arrivals.lock()) {
                    a.insert(k, (o, Instant::now()));
                }
            })
            .await;
        })
    };
    let stats = Arc::new(BaseStats::default());
    progress!("baseline: {n} nodes renewing every {HEARTBEAT:?}");
    let mut tasks: Vec<JoinHandle<()>> = (0..n)
        .map(|i| {
            tokio::spawn(renew_forever(
                http.clone(),
                url.clone(),
                i,
                n,
                stats.clone(),
            ))
        })
        .collect();
    let declared_dead = Arc::new(AtomicU64::new(0));
    let controller = tokio::spawn(lease_controller(
        http.clone(),
        watch_http.clone(),
        url.clone(),
        n,
        opts.services,
        owner_rev,
        declared_dead.clone(),
    ));
    tokio::time::sleep(Duration::from_secs(3)).await;

    progress!("baseline: steady state for {} s", opts.duration);
    let window = Duration::from_secs(opts.duration.max(1));
    stats.recording.store(true, Ordering::SeqCst);
    let (r0, fail0, late0) = (
        stats.renewals.load(Ordering::SeqCst),
        stats.failures.load(Ordering::SeqCst),
        stats.late.load(Ordering::SeqCst),
    );
    let (l0, f0, b0) = ProcStat::cluster(leader_pid, &followers)?;
    tokio::time::sleep(window).await;
    let (l1, f1, b1) = ProcStat::cluster(leader_pid, &followers)?;
    stats.recording.store(false, Ordering::SeqCst);
    let wall = l1.at.duration_since(l0.at).as_secs_f64();
    let renewals = stats.renewals.load(Ordering::SeqCst) - r0;
    let failures = stats.failures.load(Ordering::SeqCst) - fail0;
    let late = stats.late.load(Ordering::SeqCst) - late0;
    let mut rtts = stats.rtts.lock().map(|v| v.clone()).unwrap_or_default();
    rtts.sort_unstable();
    let leader_cores = l1.cores_since(&l0);

    // Failovers.
    let mut failovers = Vec::new();
    // A failover that never completes is a result (etcd overloaded), not a crash of the
    // bench: it is reported, and the trials stop there.
    let mut failover_incomplete: Option<String> = None;
    for trial in 0..opts.trials {
        ensure!(!controller.is_finished(), "the lease controller stopped");
        let victim = {
            let a = arrivals.lock().expect("arrivals lock");
            let mut counts: BTreeMap<usize, usize> = BTreeMap::new();
            for k in 0..opts.services {
                let o = a.get(&k).map(|(o, _)| *o).unwrap_or(initial_owner(k, n));
                *counts.entry(o).or_default() += 1;
            }
            counts
                .iter()
                .max_by_key(|(_, c)| **c)
                .map(|(o, _)| *o)
                .unwrap_or(0)
        };
        let addrs: Vec<usize> = {
            let a = arrivals.lock().expect("arrivals lock");
            (0..opts.services)
                .filter(|k| a.get(k).map(|(o, _)| *o).unwrap_or(initial_owner(*k, n)) == victim)
                .collect()
        };
        tokio::time::sleep(random_phase()).await;
        tasks[victim].abort();
        let killed = Instant::now();
        let deadline = killed + Duration::from_secs(30);
        let last = loop {
            let done: Vec<Duration> = {
                let a = arrivals.lock().expect("arrivals lock");
                addrs
                    .iter()
                    .filter_map(|k| a.get(k))
                    .filter(|(o, at)| *o != victim && *at > killed)
                    .map(|(_, at)| at.duration_since(killed))
                    .collect()
            };
            if done.len() == addrs.len() {
                break Some(done.into_iter().max().unwrap_or_default());
            }
            if Instant::now() >= deadline {
                let why = format!(
                    "{}/{} addresses of node-{victim} moved after 30 s",
                    done.len(),
                    addrs.len()
                );
                progress!("baseline: failover {}: {why}", trial + 1);
                failover_incomplete = Some(why);
                break None;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        };
        let Some(last) = last else {
            break;
        };
        progress!(
            "baseline: failover {}: node-{victim}'s {} addresses moved in {:.3} s",
            trial + 1,
            addrs.len(),
            last.as_secs_f64()
        );
        failovers.push(last.as_secs_f64());
        tasks[victim] = tokio::spawn(renew_forever(
            http.clone(),
            url.clone(),
            victim,
            n,
            stats.clone(),
        ));
        // Seen renewing again before the next trial.
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let leader_stat = ProcStat::read(leader_pid)?;
    let follower_rss: Vec<f64> = followers
        .iter()
        .map(|p| ProcStat::read(*p).map(|s| mb(s.rss_bytes)))
        .collect::<Result<_>>()?;
    for t in &tasks {
        t.abort();
    }
    controller.abort();
    speakers_watch.abort();
    drop(etcd);
    let failover = spread(&failovers);
    Ok(json!({
        "name": "etcd",
        "scheme": format!(
            "3 etcd 3.4 members; {n} nodes each renewing /leases/node-i (a ~300 B Lease) every 200 ms with one CAS txn (compare mod_revision) through the JSON gateway, all sent to the leader; a controller task watches /leases/, declares a node dead 1.2 s after its last renewal and CAS-writes /owners/<addr> (100 per txn); one watch on /owners/ stands for the speakers' watches. The gateway's JSON work counts against etcd, so this is slightly pessimistic for etcd"
        ),
        "leader_cpu_cores": round3(leader_cores),
        "leader_idle_cpu_cores": round3(idle_cores),
        "leader_cpu_us_per_renewal": round2(l1.cpu_since(&l0) / (renewals.max(1) as f64) * 1e6),
        "follower_cpu_cores": f0.iter().zip(&f1).map(|(a, b)| round3(b.cores_since(a))).collect::<Vec<_>>(),
        "bench_cpu_cores": round3(b1.cores_since(&b0)),
        "renewals_per_s": (renewals as f64 / wall).round(),
        "attempted_renewals_per_s": (n as f64 / HEARTBEAT.as_secs_f64()).round(),
        "failed_renewals": failures,
        // Every trial kills one node; more verdicts mean live nodes whose renewals came too late.
        "nodes_declared_dead": declared_dead.load(Ordering::SeqCst),
        "nodes_killed": opts.trials,
        "late_renewals": late,
        "renewal_samples": rtts.len(),
        "renewal_p50_ms": round3(quantile_ms(&rtts, 0.5)),
        "renewal_p99_ms": round3(quantile_ms(&rtts, 0.99)),
        "renewal_max_ms": round3(quantile_ms(&rtts, 1.0)),
        "leader_rss_mb": mb(leader_stat.rss_bytes),
        "leader_hwm_mb": mb(leader_stat.hwm_bytes),
        "follower_rss_mb": follower_rss,
        "failover_s": if failover_incomplete.is_some() { None } else { failover["median"].as_f64().map(round3) },
        "failover": failover,
        "failover_incomplete": failover_incomplete,
    }))
}
