//! `ironlb standalone`: one host, no Kubernetes, no cluster. A single controller member on
//! files (read like every member's: at start, on SIGHUP and every poll interval) and, with
//! `--announce`, the speaker in the same process, so one command gives the host its virtual
//! addresses.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use ironlb::controller::files::FileSource;
use ironlb::controller::member::{ControllerMember, MemberConfig};
use ironlb::speaker::interfaces::ExcludeList;
use ironlb::speaker::process::{Speaker, SpeakerConfig};
use ironlb::speaker::session::OnControlPlaneLoss;
use ironlb::standalone;
use tracing::info;

/// Options of `ironlb standalone`.
#[derive(Args, Debug)]
pub struct StandaloneArgs {
    /// A YAML file or a directory of them: configuration and Services. Re-read on SIGHUP and
    /// every --files-poll-ms; an invalid one never replaces the one in force.
    #[arg(long, short = 'c', visible_alias = "config-file")]
    pub config: PathBuf,
    /// A YAML file or a directory of them with more Services, taken together with --config.
    #[arg(long)]
    pub services_file: Option<PathBuf>,
    /// How often the files are read again, milliseconds (0: only at start and on SIGHUP).
    #[arg(long, default_value_t = 1000)]
    pub files_poll_ms: u64,
    /// Where the state lives.
    #[arg(long, default_value = "/var/lib/ironlb")]
    pub data_dir: PathBuf,
    /// Address for the admin API, /metrics, /healthz and /readyz.
    #[arg(long, default_value = "127.0.0.1:7480")]
    pub admin_listen: SocketAddr,
    /// Address for Raft and the speaker's session.
    #[arg(long, default_value = "127.0.0.1:7481")]
    pub raft_listen: SocketAddr,
    #[command(flatten)]
    pub announce: AnnounceArgs,
}

/// The speaker in the same process (`--announce`).
#[derive(Args, Debug)]
pub struct AnnounceArgs {
    /// Also answer ARP and NDP for the addresses (and speak BGP to the BGPPeers configured), as
    /// `ironlb speaker` does on a node, binding them to `lo` so this host accepts their traffic.
    #[arg(long)]
    pub announce: bool,
    /// The node name the addresses are announced as (default: the host name); advertisement
    /// node selectors match it as `kubernetes.io/hostname`.
    #[arg(long, requires = "announce")]
    pub node_name: Option<String>,
    /// Interfaces to announce on (comma-separated). Default: every Ethernet interface but the
    /// loopback, bridge and bond ports, NOARP ones and MetalLB's default exclusions.
    #[arg(long, value_delimiter = ',', requires = "announce")]
    pub interfaces: Vec<String>,
    /// Answer without binding the addresses to `lo` (something else makes this host accept
    /// their traffic).
    #[arg(long, requires = "announce")]
    pub no_bind_addresses: bool,
    /// Where the speaker serves its /metrics, /healthz, /readyz and /v1/bfd (plain HTTP).
    #[arg(long, default_value = "127.0.0.1:7472")]
    pub speaker_metrics_listen: SocketAddr,
    /// How often local health checks (`ironlb.io/health-check`) run, milliseconds.
    #[arg(long, default_value_t = 500)]
    pub health_interval_ms: u64,
}

impl AnnounceArgs {
    /// The speaker's configuration, talking to the member at `raft`.
    fn config(&self, raft: SocketAddr) -> Result<SpeakerConfig> {
        let (name, node) = super::speaker::node_name(self.node_name.as_deref())?;
        // A member listening on every address is reached on the loopback.
        let raft = if raft.ip().is_unspecified() {
            SocketAddr::from(([127, 0, 0, 1], raft.port()))
        } else {
            raft
        };
        let mut cfg = SpeakerConfig::new(node, vec![raft.to_string()]);
        cfg.interfaces = self.interfaces.clone();
        cfg.exclude = ExcludeList::default();
        cfg.labels
            .insert("kubernetes.io/hostname".to_string(), name.clone());
        cfg.bind_local = !self.no_bind_addresses;
        // The controller is in this very process: it cannot be lost without the speaker.
        cfg.on_loss = OnControlPlaneLoss::Fence;
        cfg.metrics_listen = Some(self.speaker_metrics_listen);
        cfg.health_interval = Duration::from_millis(self.health_interval_ms.max(10));
        Ok(cfg)
    }
}

/// Runs a single-member controller on the files (and, with `--announce`, the speaker) until
/// SIGTERM or SIGINT; SIGHUP re-reads the files.
pub async fn run(args: StandaloneArgs) -> Result<ExitCode> {
    let mut cfg = MemberConfig::new(
        1,
        args.data_dir.clone(),
        args.raft_listen,
        args.admin_listen,
    );
    cfg.bootstrap = true;
    let poll = (args.files_poll_ms > 0).then(|| Duration::from_millis(args.files_poll_ms));
    let paths = standalone::paths(Some(args.config.clone()), args.services_file.clone());
    let source = FileSource::new(paths, poll);
    let reload = source.reload.clone();
    cfg.files = Some(source);
    let node = ControllerMember::start(cfg).await?;
    node.wait_for_leader(Duration::from_secs(10))
        .await
        .context("the single member did not become leader")?;
    let speaker = if args.announce.announce {
        Some(Speaker::start(args.announce.config(node.raft_addr)?).await?)
    } else {
        None
    };
    super::serve::until_stopped(Some(&reload)).await?;
    if let Some(s) = speaker {
        // No other node takes the addresses over, but draining has the speaker let go of
        // them (and unbind them from `lo`) before it stops.
        let drained = s.drain(Duration::from_secs(1)).await;
        info!(confirmed = drained, "speaker drained");
        s.stop();
    }
    info!("shutting down");
    node.shutdown().await;
    Ok(ExitCode::SUCCESS)
}
