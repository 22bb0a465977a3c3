//! `ironlb speaker`: the per-node agent.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Args;
use ironlb::k8s::certs::NodeCertBootstrap;
use ironlb::labels::Labels;
use ironlb::names::NodeName;
use ironlb::raft::network::TlsConfig;
use ironlb::speaker::interfaces::ExcludeList;
use ironlb::speaker::process::{Speaker, SpeakerConfig};
use ironlb::speaker::session::OnControlPlaneLoss;
use tokio::signal::unix::{signal, SignalKind};
use tracing::info;

/// Options of `ironlb speaker`.
#[derive(Args, Debug)]
pub struct SpeakerArgs {
    /// The node this speaker answers for (default: the host name).
    #[arg(long, env = "NODE_NAME")]
    pub node_name: Option<String>,
    /// Raft addresses of the controller members (comma-separated); the speaker finds the
    /// leader among them.
    #[arg(
        long,
        env = "IRONLB_CONTROLLERS",
        value_delimiter = ',',
        required = true
    )]
    pub controllers: Vec<String>,
    /// Interfaces to announce on (comma-separated), used as given even if
    /// --exclude-interfaces matches them. Default: every Ethernet interface but the loopback,
    /// bridge and bond ports, NOARP ones and those --exclude-interfaces matches. L2Advertisement
    /// `interfaces` narrow this further per pool.
    #[arg(long, value_delimiter = ',')]
    pub interfaces: Vec<String>,
    /// Interface names never announced on without --interfaces (comma-separated): globs
    /// (`veth*`, `eth?`) or MetalLB's anchored regexes (`^veth.*`, `^lo$`; literals, `.`, `.*`,
    /// `\` escapes only). `default` stands for MetalLB's list, so `default,cilium_*` extends
    /// it; `none` excludes nothing. Default: docker*, cbr*, dummy*, virbr*, lxcbr*, veth*, lo,
    /// cali*, tunl*, flannel*, kube-ipvs*, cni*, nodelocaldns*, lxc*.
    #[arg(long, env = "IRONLB_EXCLUDE_INTERFACES", default_value = "default")]
    pub exclude_interfaces: String,
    /// How often the interfaces are listed again, milliseconds: responders open on interfaces
    /// that appeared and close on those that vanished, and the heartbeat reports the change.
    /// 0: only at start.
    #[arg(long, default_value_t = 5000)]
    pub interface_rescan_ms: u64,
    /// The node's labels as `key=value` (comma-separated), matched by advertisement node
    /// selectors.
    #[arg(long, value_delimiter = ',')]
    pub node_labels: Vec<String>,
    /// Also bind the answered addresses to `lo` (and set strict ARP on every interface, so the
    /// kernel does not answer for them itself) so this host accepts their traffic: for hosts
    /// without kube-proxy.
    #[arg(long)]
    pub bind_addresses: bool,
    /// What to do when no controller can renew the lease.
    #[arg(long, value_enum, default_value_t = OnControlPlaneLoss::Fence)]
    pub on_control_plane_loss: OnControlPlaneLoss,
    /// Where to serve /metrics, /healthz, /readyz and /v1/bfd (plain HTTP).
    #[arg(long, default_value = "0.0.0.0:7472")]
    pub metrics_listen: SocketAddr,
    /// How often local health checks (`ironlb.io/health-check`) run, milliseconds.
    #[arg(long, default_value_t = 500)]
    pub health_interval_ms: u64,
    /// CA certificate (PEM) of the controllers' TLS; with --tls-cert and --tls-key, or with
    /// --tls-bootstrap.
    #[arg(long)]
    pub tls_ca: Option<PathBuf>,
    /// This speaker's client certificate (PEM), naming spiffe://ironlb/node/<node>; `{node}` in
    /// this path and the key's is replaced by the node's name.
    #[arg(long)]
    pub tls_cert: Option<PathBuf>,
    /// Its private key (PEM).
    #[arg(long)]
    pub tls_key: Option<PathBuf>,
    /// Have the controllers issue this speaker's node certificate (and renew it): their admin
    /// API addresses, comma-separated. The speaker proves its node with --tls-bootstrap-token.
    #[arg(long, value_delimiter = ',', requires = "tls_ca", conflicts_with_all = ["tls_cert", "tls_key"])]
    pub tls_bootstrap: Vec<String>,
    /// A projected ServiceAccount token with audience `ironlb` (re-read at every renewal).
    #[arg(long, default_value = "/var/run/secrets/ironlb/token")]
    pub tls_bootstrap_token: PathBuf,
    /// Where the issued certificate and its key are written (a memory-backed emptyDir).
    #[arg(long, default_value = "/run/ironlb/tls")]
    pub tls_dir: PathBuf,
    /// Kubernetes mode: take the node's labels from its Node object (and stop answering when it
    /// is excluded from load balancers or its network is unavailable), and judge readiness from
    /// the Services' EndpointSlices.
    #[arg(long)]
    pub kubernetes: bool,
    /// How long SIGTERM waits for the leader to move the addresses, milliseconds.
    #[arg(long, default_value_t = 2000)]
    pub drain_timeout_ms: u64,
}

fn labels(pairs: &[String]) -> Result<Labels> {
    let mut out = Labels::new();
    for p in pairs {
        let Some((k, v)) = p.split_once('=') else {
            bail!("--node-labels: {p:?} is not key=value");
        };
        out.insert(k.trim().to_string(), v.trim().to_string());
    }
    Ok(out)
}

/// The node's name as given, or else the host name; as text and as a node name.
pub fn node_name(given: Option<&str>) -> Result<(String, NodeName)> {
    let name = match given {
        Some(n) => n.to_string(),
        None => std::fs::read_to_string("/proc/sys/kernel/hostname")
            .context("reading the host name (or give --node-name)")?
            .trim()
            .to_string(),
    };
    let node = NodeName::new(&name).with_context(|| format!("--node-name {name:?}"))?;
    Ok((name, node))
}

impl SpeakerArgs {
    /// The speaker's configuration.
    pub fn config(&self) -> Result<SpeakerConfig> {
        let (name, node) = node_name(self.node_name.as_deref())?;
        let mut cfg = SpeakerConfig::new(node, self.controllers.clone());
        cfg.interfaces = self.interfaces.clone();
        cfg.exclude = ExcludeList::parse(&self.exclude_interfaces)
            .with_context(|| format!("--exclude-interfaces {:?}", self.exclude_interfaces))?;
        cfg.rescan = (self.interface_rescan_ms > 0)
            .then(|| Duration::from_millis(self.interface_rescan_ms.max(100)));
        cfg.labels = labels(&self.node_labels)?;
        // As the kubelet does: selectors can name a node by its hostname label.
        cfg.labels
            .entry("kubernetes.io/hostname".to_string())
            .or_insert_with(|| name.clone());
        cfg.bind_local = self.bind_addresses;
        cfg.on_loss = self.on_control_plane_loss;
        cfg.metrics_listen = Some(self.metrics_listen);
        cfg.health_interval = Duration::from_millis(self.health_interval_ms.max(10));
        cfg.kubernetes = self.kubernetes;
        cfg.tls = match (&self.tls_ca, &self.tls_cert, &self.tls_key) {
            (Some(ca), Some(cert), Some(key)) => Some(
                TlsConfig {
                    ca: ca.clone(),
                    cert: cert.clone(),
                    key: key.clone(),
                }
                .expand("node", &name),
            ),
            (Some(_), _, _) if !self.tls_bootstrap.is_empty() => {
                Some(self.bootstrap(&cfg.node)?.tls())
            }
            (None, None, None) => None,
            _ => bail!("--tls-ca needs --tls-cert and --tls-key, or --tls-bootstrap"),
        };
        Ok(cfg)
    }
}

impl SpeakerArgs {
    fn bootstrap(&self, node: &NodeName) -> Result<NodeCertBootstrap> {
        let ca = self
            .tls_ca
            .clone()
            .context("--tls-bootstrap needs --tls-ca")?;
        std::fs::create_dir_all(&self.tls_dir)
            .with_context(|| format!("--tls-dir {}", self.tls_dir.display()))?;
        Ok(NodeCertBootstrap {
            controllers: self.tls_bootstrap.clone(),
            token_file: self.tls_bootstrap_token.clone(),
            ca,
            dir: self.tls_dir.clone(),
            node: node.clone(),
        })
    }
}

/// Waits for a file to appear (a ConfigMap volume is filled in after the pod starts).
async fn wait_for_file(path: &std::path::Path) {
    let mut said = false;
    while !path.exists() {
        if !said {
            info!(file = %path.display(), "waiting for the file to appear");
            said = true;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Runs a speaker until SIGTERM (which hands its addresses over first) or SIGINT.
pub async fn run(args: SpeakerArgs) -> Result<ExitCode> {
    let cfg = args.config()?;
    if !args.tls_bootstrap.is_empty() {
        let boot = args.bootstrap(&cfg.node)?;
        wait_for_file(&boot.ca).await;
        let expires = boot.first().await;
        tokio::spawn(boot.renew_forever(expires));
    }
    let speaker = Speaker::start(cfg).await?;
    let mut term = signal(SignalKind::terminate())?;
    tokio::select! {
        _ = term.recv() => {
            info!("SIGTERM: handing the addresses over");
            let done = speaker.drain(Duration::from_millis(args.drain_timeout_ms)).await;
            info!(confirmed = done, "drained");
        }
        _ = tokio::signal::ctrl_c() => info!("SIGINT: stopping"),
    }
    speaker.stop();
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{Args, Command};

    fn parse(args: &[&str]) -> SpeakerArgs {
        let cmd = SpeakerArgs::augment_args(Command::new("speaker"));
        let m = cmd.try_get_matches_from(args).expect("the arguments parse");
        <SpeakerArgs as clap::FromArgMatches>::from_arg_matches(&m).expect("speaker arguments")
    }

    #[test]
    fn the_help_lists_metallbs_default_exclusions() {
        let help = SpeakerArgs::augment_args(Command::new("speaker"))
            .render_long_help()
            .to_string();
        for p in ironlb::speaker::interfaces::DEFAULT_EXCLUDED {
            assert!(help.contains(p), "{p} missing from --help");
        }
    }

    #[test]
    fn exclusions_and_the_rescan_come_from_the_flags() {
        let base = ["speaker", "--node-name", "n1", "--controllers", "c:7481"];
        let cfg = parse(&base).config().unwrap();
        assert_eq!(cfg.exclude, ExcludeList::default());
        assert_eq!(cfg.rescan, Some(Duration::from_secs(5)));
        let mut args = base.to_vec();
        args.extend(["--exclude-interfaces", "none", "--interface-rescan-ms", "0"]);
        let cfg = parse(&args).config().unwrap();
        assert_eq!(cfg.exclude, ExcludeList::none());
        assert_eq!(cfg.rescan, None);
        let mut bad = base.to_vec();
        bad.extend(["--exclude-interfaces", "^(veth|cali)"]);
        assert!(parse(&bad).config().is_err());
    }
}
