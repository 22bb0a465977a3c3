//! `ironlb ctl`: the admin API from a shell, human tables by default and `-o json`; and
//! `ctl bfd`, which asks one speaker instead.

mod bfd;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use ironlb::api::client::{AdminClient, Body, ClientError, Credentials};
use ironlb::api::views::{
    AllocateResult, ConfigApplied, ConfigView, Members, OwnerView, Reservation, ServiceView, Status,
};
use ironlb::controller::announced::Announcements;
use ironlb::ipam::PoolStats;
use ironlb::names::{PoolName, ServiceKey};
use reqwest::Method;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::table::print_table;
use super::Output;

/// Options of every `ctl` call.
#[derive(Args)]
pub struct CtlArgs {
    /// Admin API addresses of controller members (`host:port`, comma-separated); any member
    /// will do, the others are tried when it does not answer.
    #[arg(
        long,
        short = 's',
        env = "IRONLB_SERVERS",
        value_delimiter = ',',
        default_value = "127.0.0.1:7480"
    )]
    pub servers: Vec<String>,
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value_t = Output::Table, global = true)]
    pub output: Output,
    /// Read this member's state without checking it is current (works without quorum).
    #[arg(long, global = true)]
    pub stale: bool,
    /// How long to wait for an answer, in seconds.
    #[arg(long, default_value_t = 10)]
    pub timeout: u64,
    /// The controllers' CA certificate (PEM): talk HTTPS and trust only it.
    #[arg(long, env = "IRONLB_CA")]
    pub ca: Option<PathBuf>,
    /// A client certificate (PEM) naming spiffe://ironlb/<role>/<name>; with --key.
    #[arg(long, env = "IRONLB_CERT", requires = "key")]
    pub cert: Option<PathBuf>,
    /// The client certificate's key (PEM).
    #[arg(long, env = "IRONLB_KEY", requires = "cert")]
    pub key: Option<PathBuf>,
    /// A bearer token (a token file's, or a Kubernetes ServiceAccount token).
    #[arg(long, env = "IRONLB_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// A credentials file (YAML: servers, ca, cert, key, token or tokenFile); flags and the
    /// environment override it. Default: ~/.config/ironlb/credentials.yaml when it exists.
    #[arg(long, env = "IRONLB_CREDENTIALS")]
    pub credentials: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: CtlCommand,
}

/// The calls.
#[derive(Subcommand)]
pub enum CtlCommand {
    /// Role, term, leader and log indexes of the member answering.
    Status,
    /// List, add or remove members.
    Members {
        /// add or remove; none lists.
        #[command(subcommand)]
        change: Option<MemberChange>,
    },
    /// Addresses per pool and family: total, in use, available.
    Pools,
    /// Every Service's addresses.
    Services,
    /// Which node answers for each address in Layer 2 mode.
    Owners,
    /// What the leader told each node to announce, per Service: Layer 2 (node and interfaces)
    /// and BGP (nodes and peers); what the ServiceL2Status and ServiceBGPStatus objects say.
    Announcements,
    /// One Service's addresses and why it holds them.
    Service {
        /// namespace/name.
        service: ServiceKey,
    },
    /// Allocate for the Service manifests in a file (`-` for standard input).
    Allocate {
        /// A YAML file of v1 Services.
        #[arg(long, short = 'f')]
        file: PathBuf,
    },
    /// Say what allocating for the Service in a file would do, and why, without doing it.
    Explain {
        /// A YAML file of one v1 Service.
        #[arg(long, short = 'f')]
        file: PathBuf,
    },
    /// Free a Service's addresses.
    Release {
        /// namespace/name.
        service: ServiceKey,
    },
    /// List reservations, or reserve an address for a Service.
    Reserve {
        /// The address (with --for); none lists.
        address: Option<IpAddr>,
        /// namespace/name of the Service it is kept for.
        #[arg(long = "for")]
        service: Option<ServiceKey>,
    },
    /// Drop a reservation.
    Unreserve {
        /// The address.
        address: IpAddr,
    },
    /// Show or replace the configuration.
    Config {
        /// get or put.
        #[command(subcommand)]
        action: ConfigAction,
    },
    /// One speaker's BFD sessions: peer, addresses, states, diagnostic, negotiated timers and
    /// failures. Asks the speaker, not the controllers: its metrics listener
    /// (--metrics-listen), which is plain HTTP like its /metrics; --servers and the
    /// credentials are not used.
    Bfd {
        /// The speaker's metrics listener: http://NODE:PORT (port 7472 by default).
        #[arg(long, value_name = "URL")]
        speaker: String,
    },
}

/// Membership changes.
#[derive(Subcommand)]
pub enum MemberChange {
    /// Add a member: it joins as a learner, catches up, then votes.
    Add {
        /// Its id.
        id: u64,
        /// Its Raft address (`host:port`).
        #[arg(long)]
        raft: String,
        /// Its admin API address (`host:port`).
        #[arg(long)]
        admin: String,
        /// Keep it a learner (no vote).
        #[arg(long)]
        learner: bool,
    },
    /// Remove a member.
    Remove {
        /// Its id.
        id: u64,
    },
}

/// Configuration calls.
#[derive(Subcommand)]
pub enum ConfigAction {
    /// Print the configuration in force.
    Get,
    /// Validate and install the configuration in a file or directory; an invalid one is refused
    /// with every error, and the one in force stays.
    Put {
        /// A YAML file or a directory of them.
        #[arg(long, short = 'f')]
        file: PathBuf,
    },
}

fn read_input(path: &std::path::Path) -> Result<String> {
    if path.as_os_str() == "-" {
        return std::io::read_to_string(std::io::stdin()).context("reading standard input");
    }
    if path.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(path)
            .with_context(|| format!("reading {}", path.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.extension()
                    .is_some_and(|x| x == "yaml" || x == "yml" || x == "json")
            })
            .collect();
        files.sort();
        let mut text = String::new();
        for f in files {
            text.push_str("---\n");
            text.push_str(
                &std::fs::read_to_string(&f).with_context(|| format!("reading {}", f.display()))?,
            );
            text.push('\n');
        }
        return Ok(text);
    }
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

/// Splits a YAML stream into its documents (on `---` lines), skipping empty ones.
fn documents(text: &str) -> Vec<String> {
    let mut docs = vec![String::new()];
    for line in text.lines() {
        if line.trim_end() == "---" {
            docs.push(String::new());
        } else if let Some(d) = docs.last_mut() {
            d.push_str(line);
            d.push('\n');
        }
    }
    docs.into_iter()
        .filter(|d| {
            d.lines()
                .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        })
        .collect()
}

fn print<T: Serialize>(output: Output, value: &T, table: impl FnOnce(&T)) -> Result<()> {
    match output {
        Output::Json => println!("{}", serde_json::to_string_pretty(value)?),
        Output::Table => table(value),
    }
    Ok(())
}

fn service_rows(list: &[ServiceView]) -> Vec<Vec<String>> {
    list.iter()
        .map(|s| {
            let addrs: Vec<String> = s.addresses.iter().map(|a| a.to_string()).collect();
            vec![s.service.to_string(), s.pool.to_string(), addrs.join(",")]
        })
        .collect()
}

/// A credentials file, like a kubeconfig for ironlb's admin API.
#[derive(serde::Deserialize, Default, Debug)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct CredentialsFile {
    servers: Option<Vec<String>>,
    ca: Option<PathBuf>,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    token: Option<String>,
    token_file: Option<PathBuf>,
}

/// The servers and credentials from the flags, the environment and the credentials file, in
/// that order of precedence. Paths in the file are relative to the file.
fn credentials(args: &CtlArgs) -> Result<(Vec<String>, Credentials)> {
    let path = args.credentials.clone().or_else(|| {
        let p = PathBuf::from(std::env::var_os("HOME")?).join(".config/ironlb/credentials.yaml");
        p.exists().then_some(p)
    });
    let file: CredentialsFile = match &path {
        Some(p) => serde_yaml::from_str(
            &std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?,
        )
        .with_context(|| format!("credentials file {}", p.display()))?,
        None => CredentialsFile::default(),
    };
    let base = path
        .as_ref()
        .and_then(|p| p.parent())
        .map(PathBuf::from)
        .unwrap_or_default();
    let rel = |p: PathBuf| if p.is_absolute() { p } else { base.join(p) };
    let token = match (&args.token, file.token, file.token_file) {
        (Some(t), _, _) => Some(t.clone()),
        (None, Some(t), _) => Some(t),
        (None, None, Some(f)) => {
            let f = rel(f);
            Some(
                std::fs::read_to_string(&f)
                    .with_context(|| format!("reading tokenFile {}", f.display()))?
                    .trim()
                    .to_owned(),
            )
        }
        (None, None, None) => None,
    };
    let cert = match (&args.cert, &args.key) {
        (Some(c), Some(k)) => Some((c.clone(), k.clone())),
        _ => match (file.cert, file.key) {
            (Some(c), Some(k)) => Some((rel(c), rel(k))),
            (None, None) => None,
            _ => anyhow::bail!("the credentials file needs both cert and key, or neither"),
        },
    };
    // The default server only when neither the flag nor the file names one.
    let explicit = args.servers != ["127.0.0.1:7480"];
    let servers = match file.servers {
        Some(s) if !explicit => s,
        _ => args.servers.clone(),
    };
    Ok((
        servers,
        Credentials {
            ca: args.ca.clone().or(file.ca.map(rel)),
            cert,
            token,
        },
    ))
}

/// Runs a `ctl` call; errors are printed, and the exit code is 1.
pub async fn run(args: CtlArgs) -> Result<ExitCode> {
    let timeout = Duration::from_secs(args.timeout);
    let result = match &args.command {
        // A speaker's own listener, not the admin API: no members, no credentials.
        CtlCommand::Bfd { speaker } => bfd::run(speaker, args.output, timeout)
            .await
            .map(|()| ExitCode::SUCCESS),
        _ => {
            let (servers, creds) = credentials(&args)?;
            let client = AdminClient::with_credentials(servers, timeout, &creds)?;
            call(&client, &args).await
        }
    };
    match result {
        Ok(code) => Ok(code),
        Err(e) => {
            match e.downcast_ref::<ClientError>() {
                Some(ClientError::NoMember { .. }) => eprintln!("error: {e}"),
                Some(ClientError::Api { .. }) => eprintln!("error: {e}"),
                _ => eprintln!("error: {e:#}"),
            }
            Ok(ExitCode::from(1))
        }
    }
}

/// A GET of `path`, decoded.
async fn get<T: DeserializeOwned>(c: &AdminClient, path: String) -> Result<T> {
    Ok(c.get(&path).await?)
}

async fn call(client: &AdminClient, args: &CtlArgs) -> Result<ExitCode> {
    let q = if args.stale { "?stale=true" } else { "" };
    let out = args.output;
    match &args.command {
        CtlCommand::Status => {
            let s: Status = get(client, "/v1/status".into()).await?;
            print(out, &s, print_status)?;
        }
        CtlCommand::Members { change } => {
            let members = members(client, change).await?;
            print(out, &members, print_members)?;
        }
        CtlCommand::Pools => {
            let pools: BTreeMap<PoolName, PoolStats> = get(client, format!("/v1/pools{q}")).await?;
            print(out, &pools, print_pools)?;
        }
        CtlCommand::Owners => {
            let list: Vec<OwnerView> = get(client, format!("/v1/owners{q}")).await?;
            print(out, &list, |l| print_owners(l))?;
        }
        CtlCommand::Announcements => {
            let summary: Announcements = get(client, "/v1/announcements".to_string()).await?;
            print(out, &summary, print_announcements)?;
        }
        CtlCommand::Services => {
            let list: Vec<ServiceView> = get(client, format!("/v1/services{q}")).await?;
            print(out, &list, |l| {
                print_table(&["SERVICE", "POOL", "ADDRESSES"], &service_rows(l))
            })?;
        }
        CtlCommand::Service { service } => {
            let path = format!("/v1/services/{}/{}{q}", service.namespace(), service.name());
            let s: ServiceView = get(client, path).await?;
            print(out, &s, |s| {
                print_table(
                    &["SERVICE", "POOL", "ADDRESSES"],
                    &service_rows(std::slice::from_ref(s)),
                );
                if let Some(e) = &s.explain {
                    println!("\n{e}");
                }
            })?;
        }
        CtlCommand::Allocate { file } | CtlCommand::Explain { file } => {
            return allocate(client, args, file, q).await;
        }
        CtlCommand::Release { service } => {
            let path = format!("/v1/services/{}/{}", service.namespace(), service.name());
            let s: ServiceView = client.call(Method::DELETE, &path, Body::Empty).await?;
            print(out, &s, |s| {
                let addrs: Vec<String> = s.addresses.iter().map(|a| a.to_string()).collect();
                println!(
                    "released {} from {}: {}",
                    s.service,
                    s.pool,
                    addrs.join(", ")
                );
            })?;
        }
        CtlCommand::Reserve { address, service } => {
            reserve(client, out, *address, service, q).await?
        }
        CtlCommand::Unreserve { address } => {
            let r: Reservation = client
                .call(
                    Method::DELETE,
                    &format!("/v1/reservations/{address}"),
                    Body::Empty,
                )
                .await?;
            print(out, &r, |r| {
                println!("{} is no longer reserved for {}", r.address, r.service)
            })?;
        }
        CtlCommand::Config { action } => config(client, out, action, q).await?,
        CtlCommand::Bfd { .. } => anyhow::bail!("ctl bfd asks a speaker, not the admin API"),
    }
    Ok(ExitCode::SUCCESS)
}

/// Status as a table.
fn print_status(s: &Status) {
    let leader = s.leader.map_or("none".to_string(), |l| l.to_string());
    print_table(
        &[
            "ID",
            "ROLE",
            "TERM",
            "LEADER",
            "LAST LOG",
            "COMMITTED",
            "APPLIED",
            "SNAPSHOT",
            "MEMBERS",
            "CONFIG REV",
            "ALLOCATIONS",
        ],
        &[vec![
            s.id.to_string(),
            s.role.clone(),
            s.term.to_string(),
            leader,
            s.last_log_index.to_string(),
            s.commit_index.to_string(),
            s.applied_index.to_string(),
            s.snapshot_index.map_or("-".into(), |i| i.to_string()),
            s.members.to_string(),
            s.config_revision.to_string(),
            s.allocations.to_string(),
        ]],
    );
    if let Some(f) = &s.files {
        print_files(f);
    }
}

/// A member's files: whether they are valid, their fingerprint, whether they agree with the
/// leader's, and every problem.
fn print_files(f: &ironlb::api::views::FilesView) {
    let agree = match f.differs_from_leader {
        Some(true) => "no: they differ",
        Some(false) => "yes",
        None => "-",
    };
    println!(
        "\nfiles {}: {}, digest {}, same as the leader's: {agree}",
        f.paths.join(", "),
        if f.valid { "valid" } else { "INVALID" },
        f.digest.as_deref().unwrap_or("-"),
    );
    for e in &f.errors {
        println!("  {e}");
    }
}

/// The members as a table.
fn print_members(m: &Members) {
    let rows: Vec<Vec<String>> = m
        .members
        .iter()
        .map(|m| {
            let role = match (m.leader, m.voter) {
                (true, _) => "leader",
                (false, true) => "voter",
                (false, false) => "learner",
            };
            vec![
                m.id.to_string(),
                role.to_string(),
                m.raft_addr.clone(),
                m.admin_addr.clone(),
            ]
        })
        .collect();
    print_table(&["ID", "ROLE", "RAFT", "ADMIN"], &rows)
}

/// Pool usage per family as a table.
fn print_pools(pools: &BTreeMap<PoolName, PoolStats>) {
    let rows = super::check::pool_rows(pools);
    print_table(&["POOL", "FAMILY", "TOTAL", "IN USE", "AVAILABLE"], &rows)
}

/// The announcements as a table, one row per Service, protocol and node.
fn print_announcements(a: &Announcements) {
    let join = |v: Vec<String>| {
        if v.is_empty() {
            "-".to_string()
        } else {
            v.join(",")
        }
    };
    let mut rows = Vec::new();
    for (service, list) in &a.l2 {
        for l in list {
            rows.push(vec![
                service.to_string(),
                "layer2".into(),
                l.node.to_string(),
                join(l.addresses.iter().map(ToString::to_string).collect()),
                join(
                    l.interfaces
                        .iter()
                        .map(|i| i.as_str().to_string())
                        .collect(),
                ),
            ]);
        }
    }
    for (service, list) in &a.bgp {
        for b in list {
            rows.push(vec![
                service.to_string(),
                "bgp".into(),
                b.node.to_string(),
                join(b.addresses.iter().map(ToString::to_string).collect()),
                join(b.peers.iter().map(ToString::to_string).collect()),
            ]);
        }
    }
    rows.sort();
    print_table(&["SERVICE", "PROTOCOL", "NODE", "ADDRESSES", "VIA"], &rows);
    if !a.l2_unowned.is_empty() {
        println!(
            "\nanswered by no node: {}",
            join(a.l2_unowned.iter().map(ToString::to_string).collect())
        );
    }
    println!(
        "speakers: {} connected, {} fenced",
        a.speakers_connected, a.speakers_fenced
    );
}

/// The Layer 2 owners as a table.
fn print_owners(l: &[OwnerView]) {
    let rows: Vec<Vec<String>> = l
        .iter()
        .map(|o| {
            vec![
                o.address.to_string(),
                o.node.as_ref().map_or("-".into(), |n| n.to_string()),
                o.services
                    .iter()
                    .map(|s| s.to_string())
                    .collect::<Vec<_>>()
                    .join(","),
            ]
        })
        .collect();
    print_table(&["ADDRESS", "NODE", "SERVICES"], &rows)
}

/// `allocate` and `explain`: every Service in `file`, each on its own (a refused or bad one does
/// not stop the others); exits 1 if any got no address.
async fn allocate(
    client: &AdminClient,
    args: &CtlArgs,
    file: &std::path::Path,
    q: &str,
) -> Result<ExitCode> {
    let out = args.output;
    let explain_only = matches!(args.command, CtlCommand::Explain { .. });
    let text = read_input(file)?;
    let mut results = Vec::new();
    let mut failed = false;
    for doc in documents(&text) {
        // Files may hold Namespaces and configuration beside Services.
        let kind = serde_yaml::from_str::<serde_yaml::Value>(&doc)
            .ok()
            .and_then(|v| v.get("kind").and_then(|k| k.as_str()).map(str::to_owned));
        if kind.as_deref() != Some("Service") {
            continue;
        }
        let path = if explain_only {
            format!("/v1/explain{q}")
        } else {
            "/v1/services".to_string()
        };
        match client
            .call::<AllocateResult>(Method::POST, &path, Body::Yaml(doc))
            .await
        {
            Ok(r) => {
                failed |= r.error.is_some();
                results.push(r);
            }
            // A refused allocation answers 409 with the explanation.
            Err(ClientError::Api { status: 409, body }) => {
                failed = true;
                eprintln!("{}", body.error);
            }
            // A bad manifest does not stop the others.
            Err(e @ ClientError::Api { .. }) => {
                failed = true;
                eprintln!("error: {e}");
            }
            Err(e) => return Err(e.into()),
        }
    }
    print(out, &results, |rs| {
        for r in rs {
            println!("{}", r.explain);
        }
    })?;
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// `reserve`: an address for a Service, or (with neither) the list.
async fn reserve(
    client: &AdminClient,
    out: Output,
    address: Option<IpAddr>,
    service: &Option<ServiceKey>,
    q: &str,
) -> Result<()> {
    match (address, service) {
        (None, None) => {
            let list: Vec<Reservation> = get(client, format!("/v1/reservations{q}")).await?;
            print(out, &list, |l| {
                let rows: Vec<Vec<String>> = l
                    .iter()
                    .map(|r| vec![r.address.to_string(), r.service.to_string()])
                    .collect();
                print_table(&["ADDRESS", "RESERVED FOR"], &rows)
            })?;
        }
        (Some(address), Some(service)) => {
            let body = serde_json::json!({"address": address, "service": service});
            let r: Reservation = client
                .call(Method::POST, "/v1/reservations", Body::Json(body))
                .await?;
            print(out, &r, |r| {
                println!("{} is reserved for {}", r.address, r.service)
            })?;
        }
        _ => anyhow::bail!("reserve takes an address and --for namespace/name, or neither to list"),
    }
    Ok(())
}

/// `config get` and `config put`.
async fn config(client: &AdminClient, out: Output, action: &ConfigAction, q: &str) -> Result<()> {
    match action {
        ConfigAction::Get => {
            let c: ConfigView = get(client, format!("/v1/config{q}")).await?;
            match out {
                Output::Json => println!("{}", serde_json::to_string_pretty(&c)?),
                Output::Table => {
                    println!("revision {}", c.revision);
                    println!("{}", serde_yaml::to_string(&c.config)?);
                }
            }
        }
        ConfigAction::Put { file } => {
            let text = read_input(file)?;
            let r: ConfigApplied = client
                .call(Method::PUT, "/v1/config", Body::Yaml(text))
                .await?;
            print(out, &r, |r| {
                println!(
                "configuration revision {} installed: {} allocations kept, {} re-homed, {} forbidden",
                r.revision,
                r.kept,
                r.rehomed.len(),
                r.forbidden.len()
            );
                for (k, why) in &r.forbidden {
                    println!("  {k}: {why}");
                }
            })?;
        }
    }
    Ok(())
}

/// `members`: the list, or the list after adding or removing one.
async fn members(client: &AdminClient, change: &Option<MemberChange>) -> Result<Members> {
    Ok(match change {
        None => get(client, "/v1/members".into()).await?,
        Some(MemberChange::Add {
            id,
            raft,
            admin,
            learner,
        }) => {
            let body = serde_json::json!({"id": id, "raft_addr": raft, "admin_addr": admin, "voter": !learner});
            client
                .call(Method::POST, "/v1/members", Body::Json(body))
                .await?
        }
        Some(MemberChange::Remove { id }) => {
            client
                .call(Method::DELETE, &format!("/v1/members/{id}"), Body::Empty)
                .await?
        }
    })
}
