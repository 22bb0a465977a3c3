//! `ironlb certs`: a certificate authority for plain hosts, and the certificates of members,
//! speakers and API clients, each naming its identity (`spiffe://ironlb/...`).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use ironlb::auth::pki::{Authority, LEAF_VALIDITY};
use ironlb::auth::{MemberSeat, Principal, Role};
use ironlb::names::NodeName;

/// Options of `ironlb certs`.
#[derive(Args, Debug)]
pub struct CertsArgs {
    /// The directory of the CA (`ca.pem`, `ca-key.pem`) and of the certificates issued.
    #[arg(long, default_value = "ironlb-pki")]
    pub dir: PathBuf,
    /// How long an issued certificate is valid, in days.
    #[arg(long, default_value_t = LEAF_VALIDITY.as_secs() / 86_400)]
    pub valid_days: u64,
    /// What to make.
    #[command(subcommand)]
    pub what: CertsCommand,
}

/// What `ironlb certs` makes.
#[derive(Subcommand, Debug)]
pub enum CertsCommand {
    /// A new CA (refuses to overwrite one).
    Init {
        /// The CA's name.
        #[arg(long, default_value = "ironlb")]
        name: String,
    },
    /// A controller member's certificate (`member-<id>.pem`), for its Raft port and admin API.
    Member {
        /// The member's id as first started (the StatefulSet ordinal plus one).
        #[arg(long)]
        id: u64,
        /// Every host name or IP address peers, speakers and clients reach it by.
        #[arg(long = "host", required = true)]
        hosts: Vec<String>,
    },
    /// A node's speaker certificate (`node-<name>.pem`).
    Speaker {
        /// The node's name, as the speaker's --node-name.
        #[arg(long)]
        node: String,
    },
    /// An admin API client's certificate (`<role>-<name>.pem`).
    Client {
        /// Who (for logs).
        #[arg(long)]
        name: String,
        /// `read` or `admin`.
        #[arg(long, default_value = "read")]
        role: String,
    },
}

/// Runs `ironlb certs`.
pub fn run(args: CertsArgs) -> Result<()> {
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("creating {}", args.dir.display()))?;
    let (who, hosts, stem) = match args.what {
        CertsCommand::Init { name } => {
            if args.dir.join("ca-key.pem").exists() {
                anyhow::bail!(
                    "{} already holds a CA; remove it first to make a new one (every certificate it issued stops being trusted)",
                    args.dir.display()
                );
            }
            Authority::generate(&name)?.save(&args.dir)?;
            println!("{}", args.dir.join("ca.pem").display());
            return Ok(());
        }
        CertsCommand::Member { id, hosts } => {
            let seat = MemberSeat::new(id).context("--id")?;
            (Principal::Member(seat), hosts, format!("member-{id}"))
        }
        CertsCommand::Speaker { node } => {
            let node = NodeName::new(&node).context("--node")?;
            let stem = format!("node-{node}");
            (Principal::Node(node), Vec::new(), stem)
        }
        CertsCommand::Client { name, role } => {
            let role: Role = role.parse().context("--role")?;
            let who = Principal::parse_uri(&format!(
                "{}{}/{name}",
                ironlb::auth::principal::URI_PREFIX,
                role.as_str()
            ))
            .context("--name")?;
            (who, Vec::new(), format!("{}-{name}", role.as_str()))
        }
    };
    let ca = Authority::load(&args.dir).with_context(|| {
        format!(
            "loading the CA from {} (make one with `ironlb certs init`)",
            args.dir.display()
        )
    })?;
    let issued = ca.issue(
        &who,
        &hosts,
        Duration::from_secs(args.valid_days.saturating_mul(86_400)),
    )?;
    let (cert, key) = issued.write(&args.dir, &stem)?;
    println!("{} {}", cert.display(), key.display());
    Ok(())
}
