//! `ironlb controller`: a long-running member process (`ironlb standalone` is in standalone.rs).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use ironlb::api::auth::KubeTokens;
use ironlb::auth::pki::Authority;
use ironlb::auth::{MemberSeat, Principal};
use ironlb::controller::files::FileSource;
use ironlb::controller::member::{ControllerMember, MemberConfig, Timing};
use ironlb::controller::LeaseTiming;
use ironlb::k8s::certs::{ensure_authority, publish_bundle, MemberCerts, NodeIssuer};
use ironlb::k8s::reconciler::ReconcilerConfig;
use ironlb::k8s::token_review::{service_account_user, AccountRoles, TokenReviewer};
use ironlb::raft::network::tls::host_of;
use ironlb::raft::network::TlsConfig;
use ironlb::standalone;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::Notify;
use tracing::info;

/// Options of `ironlb controller`.
#[derive(Args, Debug)]
pub struct ControllerArgs {
    /// This member's id. In a StatefulSet, defaults to the pod ordinal plus one (from the
    /// hostname `name-N`).
    #[arg(long, env = "IRONLB_ID")]
    pub id: Option<u64>,
    /// Where the log, snapshots and state live.
    #[arg(long, env = "IRONLB_DATA_DIR", default_value = "/var/lib/ironlb")]
    pub data_dir: PathBuf,
    /// Address for Raft RPCs from peers.
    #[arg(long, default_value = "0.0.0.0:7481")]
    pub raft_listen: SocketAddr,
    /// Raft address peers should use (default: the listening address).
    #[arg(long)]
    pub raft_advertise: Option<String>,
    /// Address for the admin API, /metrics, /healthz and /readyz.
    #[arg(long, default_value = "0.0.0.0:7480")]
    pub admin_listen: SocketAddr,
    /// Admin address peers and clients should use (default: the listening address).
    #[arg(long)]
    pub admin_advertise: Option<String>,
    /// Initialize a new cluster if this member has no state (the first member only). In a
    /// StatefulSet, ordinal 0 bootstraps by itself.
    #[arg(long)]
    pub bootstrap: bool,
    /// Admin addresses of existing members to ask to add this one (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub join: Vec<String>,
    /// CA certificate (PEM) for TLS between members, from speakers and on the admin API; with
    /// --tls-cert and --tls-key (`ironlb certs` makes all three).
    #[arg(long, env = "IRONLB_TLS_CA", requires_all = ["tls_cert", "tls_key"])]
    pub tls_ca: Option<PathBuf>,
    /// This member's certificate (PEM), naming spiffe://ironlb/member/<id>, presented to peers
    /// both ways and to API clients; `{id}` in this path and the key's is replaced by the id.
    #[arg(long, env = "IRONLB_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// This member's private key (PEM).
    #[arg(long, env = "IRONLB_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// Bearer tokens the admin API accepts: a file of `<token> <role> <name>` lines, role
    /// `read` or `admin`.
    #[arg(long, env = "IRONLB_ADMIN_TOKENS")]
    pub admin_tokens: Option<PathBuf>,
    /// Serve without TLS on addresses other than loopback: nobody is authenticated on the Raft
    /// port, and the admin API takes everyone as an admin unless --admin-tokens is given.
    #[arg(long)]
    pub insecure: bool,
    /// Raft heartbeat interval, milliseconds (default: a third of the election timeout, at
    /// most 50).
    #[arg(long)]
    pub heartbeat_ms: Option<u64>,
    /// Shortest election timeout, milliseconds; the longest is half again as much (default:
    /// the longest up to 150 with which a leader change fits in the speakers' lease). A leader
    /// change must fit in a lease: timings for which it cannot are refused.
    #[arg(long)]
    pub election_timeout_ms: Option<u64>,
    /// Snapshot and compact the log after this many log entries or applied commands.
    #[arg(long, default_value_t = 5000)]
    pub snapshot_every: u64,
    #[command(flatten)]
    pub lease: LeaseArgs,
    /// Reconcile the Services and configuration objects of a Kubernetes cluster while leading
    /// (in-cluster credentials, or KUBECONFIG).
    #[arg(long)]
    pub kubernetes: bool,
    /// The namespace of the configuration objects and the ConfigurationState object.
    #[arg(long, env = "IRONLB_NAMESPACE", default_value = "ironlb-system")]
    pub namespace: String,
    /// Only Services with this spec.loadBalancerClass (default: only Services without one).
    #[arg(long)]
    pub lb_class: Option<String>,
    #[command(flatten)]
    pub certs: KubeCertArgs,
    #[command(flatten)]
    pub files: FileArgs,
}

/// Configuration and Services from files (outside Kubernetes).
#[derive(Args, Debug)]
pub struct FileArgs {
    /// A YAML file, or a directory of them, with the configuration (ironlb.io/v1beta1 kinds):
    /// every member reads its own and reports problems; the leader applies it. An invalid file
    /// never replaces valid ones. Meant to be identical on every member.
    #[arg(long, env = "IRONLB_CONFIG_FILE", conflicts_with = "kubernetes")]
    pub config_file: Option<PathBuf>,
    /// A YAML file, or a directory of them, with the v1 Services (and Namespaces) to give
    /// addresses, read like --config-file (the two are taken together). A Service removed from
    /// it is released.
    #[arg(long, env = "IRONLB_SERVICES_FILE", conflicts_with = "kubernetes")]
    pub services_file: Option<PathBuf>,
    /// How often the files are read again, milliseconds (0: only at start and on SIGHUP).
    #[arg(long, default_value_t = 1000)]
    pub files_poll_ms: u64,
}

impl FileArgs {
    /// The files to read, if any were given.
    pub fn source(&self) -> Option<FileSource> {
        let paths = standalone::paths(self.config_file.clone(), self.services_file.clone());
        if paths.is_empty() {
            return None;
        }
        let poll = (self.files_poll_ms > 0).then(|| Duration::from_millis(self.files_poll_ms));
        Some(FileSource::new(paths, poll))
    }
}

/// Certificates and tokens in Kubernetes mode.
#[derive(Args, Debug)]
pub struct KubeCertArgs {
    /// Issue certificates from the cluster CA kept in a Secret (created by the first member to
    /// start): this member's own, and speakers' node certificates, to speakers proving their
    /// node with a projected ServiceAccount token (in place of --tls-ca, --tls-cert, --tls-key).
    /// With --tls-ca, --tls-cert and --tls-key (certificates from cert-manager), this member
    /// uses those and issues only speakers' certificates.
    #[arg(long, requires = "kubernetes")]
    pub issue_certificates: bool,
    /// The CA Secret is made by someone else (cert-manager): wait for it, never create it.
    #[arg(long, requires = "issue_certificates")]
    pub external_ca: bool,
    /// The Secret holding the CA (keys ca.pem and ca-key.pem).
    #[arg(long, default_value = "ironlb-ca")]
    pub ca_secret: String,
    /// The ConfigMap the CA certificate is published in (key ca.pem), for speakers to trust.
    #[arg(long, default_value = "ironlb-ca")]
    pub ca_configmap: String,
    /// Where this member's issued certificate, key and the CA certificate are written (a
    /// memory-backed emptyDir); `{id}` is replaced by the member's id.
    #[arg(long, default_value = "/run/ironlb/tls")]
    pub tls_dir: PathBuf,
    /// More names for this member's certificate (DNS names or IP addresses, comma-separated),
    /// besides the advertised hosts, $POD_IP, localhost and 127.0.0.1.
    #[arg(long, value_delimiter = ',')]
    pub tls_san: Vec<String>,
    /// The speakers' ServiceAccount as <namespace>:<name> (default: <namespace>:ironlb-speaker).
    #[arg(long)]
    pub speaker_service_account: Option<String>,
    /// How long a speaker's node certificate is valid, seconds; speakers renew after two thirds.
    #[arg(long, default_value_t = 12 * 3600)]
    pub node_cert_validity_s: u64,
    /// How long a member's own certificate is valid, seconds; renewed after two thirds.
    #[arg(long, default_value_t = 30 * 86_400)]
    pub member_cert_validity_s: u64,
    /// A ServiceAccount whose tokens the admin API accepts, as <namespace>:<name>=<read|admin>
    /// (repeatable; Kubernetes mode, reviewed by the API server).
    #[arg(long, requires = "kubernetes")]
    pub admin_service_account: Vec<String>,
}

/// The speakers' lease clocks, set on the controllers (speakers learn them with each lease).
#[derive(Args, Debug, Clone, Copy)]
pub struct LeaseArgs {
    /// How often speakers send heartbeats, milliseconds.
    #[arg(long, default_value_t = 200)]
    pub speaker_heartbeat_ms: u64,
    /// How long a lease lasts from the sending of the heartbeat it answers, milliseconds.
    /// Failover takes about lease + margin.
    #[arg(long, default_value_t = 1000)]
    pub speaker_lease_ms: u64,
    /// How much longer than a lease the leader waits before moving a silent node's addresses,
    /// milliseconds.
    #[arg(long, default_value_t = 200)]
    pub speaker_lease_margin_ms: u64,
}

impl LeaseArgs {
    /// The timing, checked for sense.
    pub fn timing(&self) -> Result<LeaseTiming> {
        let t = LeaseTiming {
            heartbeat: Duration::from_millis(self.speaker_heartbeat_ms),
            lease: Duration::from_millis(self.speaker_lease_ms),
            margin: Duration::from_millis(self.speaker_lease_margin_ms),
        };
        if t.heartbeat.is_zero() || t.heartbeat * 2 > t.lease {
            anyhow::bail!(
                "--speaker-heartbeat-ms ({}) must be at most half of --speaker-lease-ms ({}): a lease must survive a lost heartbeat",
                self.speaker_heartbeat_ms,
                self.speaker_lease_ms
            );
        }
        if t.margin < Duration::from_millis(20) {
            anyhow::bail!("--speaker-lease-margin-ms must be at least 20");
        }
        Ok(t)
    }
}

/// The StatefulSet ordinal in a hostname like `ironlb-controller-2`.
fn ordinal_from_hostname() -> Option<u64> {
    let host = std::env::var("HOSTNAME").ok()?;
    host.rsplit_once('-')?.1.parse().ok()
}

impl ControllerArgs {
    fn node_config(&self) -> Result<MemberConfig> {
        let ordinal = ordinal_from_hostname();
        let id = match (self.id, ordinal) {
            (Some(id), _) => id,
            (None, Some(ord)) => ord + 1,
            (None, None) => anyhow::bail!("--id is required outside a StatefulSet"),
        };
        if id == 0 {
            anyhow::bail!("--id must be at least 1");
        }
        let mut cfg = MemberConfig::new(
            id,
            self.data_dir.clone(),
            self.raft_listen,
            self.admin_listen,
        );
        cfg.raft_advertise = self.raft_advertise.clone();
        cfg.admin_advertise = self.admin_advertise.clone();
        cfg.bootstrap = self.bootstrap || (self.id.is_none() && ordinal == Some(0));
        cfg.join = self.join.clone();
        cfg.tls = match (&self.tls_ca, &self.tls_cert, &self.tls_key) {
            (Some(ca), Some(cert), Some(key)) => Some(
                TlsConfig {
                    ca: ca.clone(),
                    cert: cert.clone(),
                    key: key.clone(),
                }
                .expand("id", &id.to_string()),
            ),
            _ => None,
        };
        cfg.admin_tokens = self.admin_tokens.clone();
        cfg.insecure = self.insecure;
        cfg.lease = self.lease.timing()?;
        let derived = Timing::for_lease(&cfg.lease);
        let election = self
            .election_timeout_ms
            .map_or(derived.election_min, Duration::from_millis);
        let heartbeat = match (self.heartbeat_ms, self.election_timeout_ms) {
            (Some(h), _) => Duration::from_millis(h),
            (None, Some(_)) => {
                (election / 3).clamp(Duration::from_millis(3), Duration::from_millis(50))
            }
            (None, None) => derived.heartbeat,
        };
        cfg.timing = Timing::with_election(election, heartbeat);
        cfg.timing.check(&cfg.lease)?;
        cfg.snapshot_every = self.snapshot_every;
        cfg.files = self.files.source();
        if self.kubernetes {
            cfg.kubernetes = Some(ReconcilerConfig {
                namespace: self.namespace.clone(),
                lb_class: self.lb_class.clone(),
                instance: std::env::var("HOSTNAME").unwrap_or_else(|_| format!("member-{id}")),
                resync: Duration::from_secs(300),
            });
        }
        Ok(cfg)
    }
}

impl ControllerArgs {
    /// Kubernetes mode's credentials: ServiceAccount tokens on the admin API, and the
    /// certificates issued from the CA in a Secret.
    async fn kube_credentials(&self, cfg: &mut MemberConfig) -> Result<Vec<MemberCerts>> {
        let c = &self.certs;
        if c.admin_service_account.is_empty() && !c.issue_certificates {
            return Ok(Vec::new());
        }
        let client = kube::Client::try_default()
            .await
            .context("reaching the Kubernetes API (in-cluster credentials or KUBECONFIG)")?;
        if !c.admin_service_account.is_empty() {
            let roles =
                AccountRoles::parse(&c.admin_service_account).map_err(anyhow::Error::msg)?;
            cfg.kube_tokens = Some(KubeTokens {
                reviewer: Arc::new(TokenReviewer::new(client.clone(), Vec::new())),
                roles,
            });
        }
        if !c.issue_certificates {
            return Ok(Vec::new());
        }
        let ca = Arc::new(
            ensure_authority(&client, &self.namespace, &c.ca_secret, !c.external_ca)
                .await
                .with_context(|| format!("the cluster CA in Secret {}", c.ca_secret))?,
        );
        publish_bundle(&client, &self.namespace, &c.ca_configmap, &ca.cert_pem())
            .await
            .with_context(|| format!("publishing the CA in ConfigMap {}", c.ca_configmap))?;
        let mut renewing = Vec::new();
        if cfg.tls.is_none() {
            renewing.push(self.member_certs(cfg, ca.clone())?);
        }
        let speakers = c
            .speaker_service_account
            .clone()
            .unwrap_or_else(|| format!("{}:ironlb-speaker", self.namespace));
        let Some((ns, name)) = speakers.split_once(':') else {
            anyhow::bail!("--speaker-service-account {speakers:?}: expected <namespace>:<name>");
        };
        cfg.node_issuer = Some(Arc::new(NodeIssuer::new(
            ca,
            client,
            service_account_user(ns, name),
            Duration::from_secs(c.node_cert_validity_s),
        )));
        Ok(renewing)
    }

    /// This member's own certificate, issued from the CA into --tls-dir.
    fn member_certs(&self, cfg: &mut MemberConfig, ca: Arc<Authority>) -> Result<MemberCerts> {
        let c = &self.certs;
        let mut hosts: Vec<String> = vec!["localhost".into(), "127.0.0.1".into()];
        for addr in [&cfg.raft_advertise, &cfg.admin_advertise]
            .into_iter()
            .flatten()
        {
            hosts.push(host_of(addr).to_owned());
        }
        hosts.extend(std::env::var("POD_IP").ok().filter(|ip| !ip.is_empty()));
        hosts.extend(c.tls_san.iter().cloned());
        hosts.sort();
        hosts.dedup();
        let seat = MemberSeat::new(cfg.id).map_err(|e| anyhow::anyhow!("--id: {e}"))?;
        // `{id}` in the directory: members sharing a host keep their files apart.
        let dir = PathBuf::from(
            c.tls_dir
                .to_string_lossy()
                .replace("{id}", &cfg.id.to_string()),
        );
        let mine = MemberCerts::issue(
            ca.clone(),
            Principal::Member(seat),
            hosts,
            &dir,
            Duration::from_secs(c.member_cert_validity_s),
        )
        .context("issuing this member's certificate")?;
        cfg.tls = Some(mine.tls());
        Ok(mine)
    }
}

/// Runs a controller member until SIGTERM or SIGINT.
pub async fn controller(args: ControllerArgs) -> Result<ExitCode> {
    let mut cfg = args.node_config()?;
    for certs in args.kube_credentials(&mut cfg).await? {
        tokio::spawn(certs.renew_forever());
    }
    let reload = cfg.files.as_ref().map(|f| f.reload.clone());
    let node = ControllerMember::start(cfg).await?;
    until_stopped(reload.as_deref()).await?;
    node.shutdown().await;
    Ok(ExitCode::SUCCESS)
}

/// Waits for SIGTERM or SIGINT; with files, SIGHUP has them read again at once.
pub async fn until_stopped(reload: Option<&Notify>) -> Result<()> {
    let mut term = signal(SignalKind::terminate())?;
    // Without files SIGHUP keeps its default (the process ends), as before.
    let mut hup = reload.map(|_| signal(SignalKind::hangup())).transpose()?;
    loop {
        tokio::select! {
            _ = term.recv() => {
                info!("SIGTERM: shutting down");
                return Ok(());
            }
            _ = tokio::signal::ctrl_c() => {
                info!("SIGINT: shutting down");
                return Ok(());
            }
            Some(()) = hangup(&mut hup) => {
                info!("SIGHUP: re-reading the files");
                if let Some(r) = reload {
                    r.notify_one();
                }
            }
        }
    }
}

/// The next SIGHUP, if they are listened to (else never).
async fn hangup(hup: &mut Option<tokio::signal::unix::Signal>) -> Option<()> {
    match hup {
        Some(h) => h.recv().await,
        None => std::future::pending().await,
    }
}
