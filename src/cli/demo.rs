//! `ironlb demo`: the real system in a virtual LAN of network namespaces, with a timed failover.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use ironlb::api::client::Body;
use ironlb::api::views::AllocateResult;
use ironlb::config::Documents;
use ironlb_lab::bgp::{Learned, Neighbor, Router, RouterConfig, RouterKind};
use ironlb_lab::l2::{now_epoch, L2Lab, L2Options, Pinger};
use ironlb_lab::netns;
use reqwest::Method;

/// Options of `ironlb demo`.
#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Configuration and Services to run (a file or a directory).
    #[arg(long, short = 'c', default_value = "examples/standalone")]
    pub config: PathBuf,
}

fn step(n: usize, text: &str) {
    println!("\n[{n}/7] {text}");
}

/// Runs the demo; everything it built is removed when it returns, also on failure.
pub async fn run(args: DemoArgs) -> Result<ExitCode> {
    if let Err(why) = netns::available() {
        bail!("the demo {why}; run it as root on Linux");
    }
    for tool in ["arping", "ndisc6", "ping", "bird"] {
        if !netns::has_tool(tool) {
            bail!("the demo needs `{tool}`: run scripts/install-deps");
        }
    }
    let loaded = Documents::load(&args.config);
    if !loaded.errors.is_empty() {
        for e in &loaded.errors {
            eprintln!("{e}");
        }
        bail!("{} cannot be read", args.config.display());
    }
    let text = read_all(&args.config)?;
    let services: Vec<String> = loaded
        .documents
        .services
        .iter()
        .map(|s| serde_yaml::to_string(&s.object))
        .collect::<Result<_, _>>()?;
    let bin = std::env::current_exe().context("finding the ironlb binary")?;
    // The lab is test equipment and stops at its first failure by panicking; the demo turns that
    // into an error (its namespaces and processes are removed as the panic unwinds).
    match tokio::spawn(show(bin, args.config, text, services)).await {
        Ok(result) => result,
        Err(e) if e.is_panic() => {
            let payload = e.into_panic();
            let why = payload
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| payload.downcast_ref::<&str>().copied())
                .unwrap_or("no reason given");
            bail!("the demo's lab failed: {why}")
        }
        Err(e) => bail!("the demo was cancelled: {e}"),
    }
}

/// The demo's seven steps, on the lab.
async fn show(
    bin: PathBuf,
    config: PathBuf,
    text: String,
    services: Vec<String>,
) -> Result<ExitCode> {
    println!(
        "ironlb demo: the real controller and speakers in a virtual LAN of network namespaces."
    );
    step(1, "building a LAN of 3 nodes, a client and a router (BIRD), and starting on each node a controller member and a speaker");
    let (lab, bird) = start_lab(&bin).await?;

    step(
        2,
        &format!("installing the configuration in {}", config.display()),
    );
    lab.configure(&text).await;
    println!("      validated and committed to Raft");

    step(3, "allocating the Services");
    let (addresses, pool_of) = allocate_services(&lab, &services).await;
    if addresses.is_empty() {
        bail!("no Service got an address");
    }

    step(
        4,
        "the client asks who has each address (arping, ndisc6) and pings it",
    );
    let announced = wait_announced(&lab, &addresses).await;
    print_who_answers(&lab, &addresses, &announced).await;

    let leader_node = lab.leader_node().await;
    let target = failover_target(&lab, &announced, leader_node).await?;
    let owner = lab.wait_owner(target, Duration::from_secs(10)).await;

    step(5, "the router learned over BGP (addresses of pools a BGPAdvertisement covers, from every eligible node)");
    print_bgp_routes(&lab, &bird, &pool_of).await?;
    print_router_kernel_table(&bird.netns);

    step(
        6,
        &format!(
            "node{} fails (links down, speaker killed) while the client pings {target} every 10 ms",
            owner + 1
        ),
    );
    let mut lab = lab;
    fail_over(&mut lab, target, owner, leader_node).await?;

    step(7, "removing every namespace and process");
    drop(bird);
    drop(lab);
    println!("      done");
    Ok(ExitCode::SUCCESS)
}

/// Step 1: builds the LAN, starts BIRD on its router and the controllers and speakers on its
/// nodes, and says where everything is.
async fn start_lab(bin: &Path) -> Result<(L2Lab, Router)> {
    let t = Instant::now();
    let opts = L2Options {
        router: true,
        ..L2Options::default()
    };
    let lan = L2Lab::lan(&opts);
    let r = lan.router.clone().context("a router namespace")?;
    let bird = Router::start(
        &r.netns,
        &std::env::temp_dir().join(format!("{}-bird", lan.prefix())),
        &RouterConfig {
            kind: RouterKind::Bird,
            asn: 64513,
            router_id: r.addr,
            neighbors: lan
                .nodes
                .iter()
                .map(|n| Neighbor {
                    addr: IpAddr::V4(n.addr),
                    asn: 64512,
                    password: None,
                })
                .collect(),
            kernel: true,
            graceful_restart: true,
        },
    );
    let lab = L2Lab::start_on(lan, bin, opts).await;
    let leader = lab.cluster.leader().await;
    println!(
        "      namespaces {}-*; Raft leader: node{} ({:.1} s)",
        lab.lan.prefix(),
        lab.cluster.procs[leader].id,
        t.elapsed().as_secs_f64()
    );
    for (i, n) in lab.lan.nodes.iter().enumerate() {
        println!("      node{}  {}  {}  {}", i + 1, n.addr, n.addr6, n.mac);
    }
    let client = lab.lan.client();
    println!(
        "      client {}  {}  {}",
        client.addr, client.addr6, client.mac
    );
    println!("      router {}  {}  (BIRD, AS 64513)", r.addr, r.addr6);
    Ok((lab, bird))
}

/// Step 3: asks the controller for each Service's addresses; returns the Services of each
/// address and the pool each address came from.
async fn allocate_services(
    lab: &L2Lab,
    services: &[String],
) -> (
    BTreeMap<IpAddr, Vec<String>>,
    BTreeMap<IpAddr, ironlb::names::PoolName>,
) {
    let mut addresses: BTreeMap<IpAddr, Vec<String>> = BTreeMap::new();
    let mut pool_of: BTreeMap<IpAddr, ironlb::names::PoolName> = BTreeMap::new();
    for manifest in services {
        let r: Result<AllocateResult, _> = lab
            .cluster
            .client()
            .call(Method::POST, "/v1/services", Body::Yaml(manifest.clone()))
            .await;
        match r {
            Ok(r) if r.error.is_none() => {
                let list: Vec<String> = r.addresses.iter().map(|a| a.to_string()).collect();
                println!("      {:<24} {}", r.service.to_string(), list.join(", "));
                for a in r.addresses {
                    addresses.entry(a).or_default().push(r.service.to_string());
                    if let Some(pool) = &r.pool {
                        pool_of.insert(a, pool.clone());
                    }
                }
            }
            Ok(r) => println!(
                "      {:<24} no address: {}",
                r.service.to_string(),
                r.explain
            ),
            Err(e) => println!("      refused: {e}"),
        }
    }
    (addresses, pool_of)
}

/// The allocated addresses that have an owner, once all have one or after 5 s.
async fn wait_announced(lab: &L2Lab, addresses: &BTreeMap<IpAddr, Vec<String>>) -> Vec<IpAddr> {
    // Owners follow allocations by a commit or two; addresses of pools no L2Advertisement
    // covers never get one.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let owners = lab.owners().await;
        let owned: Vec<IpAddr> = addresses
            .keys()
            .copied()
            .filter(|a| owners.get(a).is_some_and(Option::is_some))
            .collect();
        if owned.len() == addresses.len() || Instant::now() > deadline {
            break owned;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Step 4: which node answers the client for each announced address, and whether it pings.
async fn print_who_answers(
    lab: &L2Lab,
    addresses: &BTreeMap<IpAddr, Vec<String>>,
    announced: &[IpAddr],
) {
    for a in addresses.keys() {
        lab.route_on_link(*a);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    for a in announced {
        let macs = lab.resolve(*a, "eth0");
        let who: Vec<String> = macs
            .iter()
            .map(|m| match lab.node_of_mac(m) {
                Some(n) => format!("{m} (node{})", n + 1),
                None => m.clone(),
            })
            .collect();
        let ping = if lab.ping(*a) {
            "ping ok"
        } else {
            "no ping reply"
        };
        println!(
            "      {:<18} {:<24} -> {}  {ping}",
            a.to_string(),
            addresses[a].join(","),
            if who.is_empty() {
                "no answer".to_string()
            } else {
                who.join(", ")
            }
        );
    }
}

/// The address whose owner the demo fails.
async fn failover_target(
    lab: &L2Lab,
    announced: &[IpAddr],
    leader_node: Option<usize>,
) -> Result<IpAddr> {
    // Prefer an address whose owner does not also host the Raft leader: losing both at once
    // adds an election to the failover (shown, but not the common case).
    let owners = lab.owners().await;
    let owner_of = |a: &IpAddr| owners.get(a).cloned().flatten().map(|n| lab.node_index(&n));
    let Some(&target) = announced
        .iter()
        .filter(|a| a.is_ipv4())
        .find(|a| owner_of(a) != leader_node)
        .or(announced.first())
    else {
        bail!("no address is announced: check the L2Advertisements");
    };
    Ok(target)
}

/// Step 5: the routes the router learned, once it has every node's path to every address BGP
/// announces or after 15 s.
async fn print_bgp_routes(
    lab: &L2Lab,
    bird: &Router,
    pool_of: &BTreeMap<IpAddr, ironlb::names::PoolName>,
) -> Result<()> {
    // The configuration in force says which pools BGP announces.
    let in_force: ironlb::api::views::ConfigView = lab
        .cluster
        .client()
        .get("/v1/config")
        .await
        .context("reading the configuration in force")?;
    let config = in_force.config.unwrap_or_default();
    let bgp_wanted: Vec<IpAddr> = pool_of
        .iter()
        .filter(|(_, pool)| ironlb::announce::bgp::announced_in_bgp(&config, pool))
        .map(|(a, _)| *a)
        .collect();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let routes = bird.routes();
        let all = bgp_wanted.iter().all(|a| {
            routes
                .get(&ipnet::IpNet::from(*a))
                .is_some_and(|p| p.len() == lab.lan.nodes.len())
        });
        if all || Instant::now() > deadline {
            print_routes(lab, &routes);
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Prints each prefix with its next hops (named by node) and the first path's attributes.
fn print_routes(lab: &L2Lab, routes: &BTreeMap<ipnet::IpNet, Vec<Learned>>) {
    for (prefix, paths) in routes {
        let hops: Vec<String> = paths
            .iter()
            .map(|p| {
                let node = lab
                    .lan
                    .nodes
                    .iter()
                    .position(|n| {
                        IpAddr::V4(n.addr) == p.next_hop || IpAddr::V6(n.addr6) == p.next_hop
                    })
                    .map_or(String::new(), |i| format!(" (node{})", i + 1));
                format!("{}{node}", p.next_hop)
            })
            .collect();
        let attrs = paths.first().map_or(String::new(), |p| {
            format!(
                "AS path {:?}, communities {:?} {:?}",
                p.as_path, p.communities, p.large_communities
            )
        });
        println!("      {prefix:<18} via {}  {attrs}", hops.join(", "));
    }
    if routes.is_empty() {
        println!("      nothing (no BGPAdvertisement covers an allocated address)");
    }
}

/// Prints the routes BIRD installed in the router's kernel, if any.
fn print_router_kernel_table(netns: &str) {
    let kernel = netns::Lan::try_exec_in(netns, &["ip", "route", "show", "proto", "bird"]);
    let kernel = String::from_utf8_lossy(&kernel.stdout);
    if !kernel.trim().is_empty() {
        println!("      the router's kernel table (ECMP over the nodes):");
        for line in kernel.lines() {
            println!("        {line}");
        }
    }
}

/// Step 6: fails node `owner` while the client pings `target`, and reports how long the pings
/// stopped.
async fn fail_over(
    lab: &mut L2Lab,
    target: IpAddr,
    owner: usize,
    leader_node: Option<usize>,
) -> Result<()> {
    let pinger = Pinger::start(lab, target, "demo");
    if !pinger
        .wait_reply_after(now_epoch(), Duration::from_secs(3))
        .await
    {
        bail!("the client gets no ping replies from {target}");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let killed_at = now_epoch();
    lab.fail_node(owner);
    let gone = lab.speakers[owner].name.clone();
    let new_owner = lab
        .wait_committed_owner(target, Some(&gone), Duration::from_secs(10))
        .await;
    if !pinger
        .wait_reply_after(now_epoch(), Duration::from_secs(5))
        .await
    {
        bail!("the client never got a reply again from {target}");
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let outage = pinger.longest_gap_after(killed_at);
    println!("      {new_owner} took over {target}; the client's pings stopped for {outage:.3} s");
    println!(
        "      (the lease, 1 s, and the margin, 0.2 s, ran out; then one Raft commit and a gratuitous ARP{})",
        if leader_node == Some(owner) { ", after electing a new Raft leader" } else { "" }
    );
    drop(pinger);
    Ok(())
}

fn read_all(path: &Path) -> Result<String> {
    if path.is_dir() {
        let mut names: Vec<PathBuf> = std::fs::read_dir(path)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
            .collect();
        names.sort();
        let mut out = String::new();
        for n in names {
            out.push_str(&std::fs::read_to_string(&n)?);
            out.push_str("\n---\n");
        }
        Ok(out)
    } else {
        Ok(std::fs::read_to_string(path)?)
    }
}
