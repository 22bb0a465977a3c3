//! Real `ironlb controller` processes on one host, for tests, benchmarks and the Jepsen suite:
//! start, kill, restart, and talk to them through the admin API.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::pki::Pki;
use ironlb::api::client::{AdminClient, Body, Credentials};
use ironlb::api::views::Status;
use reqwest::Method;

/// A free TCP port on 127.0.0.1 (bound, then released for the process to take). Chosen below
/// the kernel's ephemeral range (32768 and up), so no outgoing connection of a test running
/// alongside can take it before the process binds it.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let seed = std::process::id().wrapping_mul(7919);
    for _ in 0..1000 {
        let n = NEXT.fetch_add(1, Ordering::Relaxed).wrapping_add(seed);
        let port = 20_000 + (n % 12_000) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// One controller process.
pub struct Proc {
    /// Its member id.
    pub id: u64,
    /// Its Raft address.
    pub raft: String,
    /// Its admin API address.
    pub admin: String,
    /// Its data directory.
    pub dir: PathBuf,
    /// The running process, if started.
    pub child: Option<Child>,
    /// Where its stderr goes.
    pub log: PathBuf,
    /// The `ironlb` binary.
    pub bin: PathBuf,
    /// Runs the process inside this network namespace, if set.
    pub netns: Option<String>,
    /// Arguments given at every start (before the start's own).
    pub args: Vec<String>,
    /// Environment given at every start.
    pub env: Vec<(String, String)>,
    /// How its admin API is called.
    pub creds: Credentials,
}

impl Proc {
    /// Starts (or restarts) the process with the given extra arguments.
    pub fn start(&mut self, extra: &[String]) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("log file");
        let mut cmd = match &self.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(&self.bin);
                c
            }
            None => Command::new(&self.bin),
        };
        let child = cmd
            .arg("controller")
            .args(["--id", &self.id.to_string()])
            .args(["--data-dir", &self.dir.display().to_string()])
            .args(["--raft-listen", &self.raft])
            .args(["--admin-listen", &self.admin])
            .args(&self.args)
            .args(extra)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .env("RUST_LOG", "info,openraft=warn")
            .env("RUST_BACKTRACE", "0")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("ironlb controller starts");
        self.child = Some(child);
    }

    /// SIGKILL, no goodbye.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// A client of this member alone.
    pub fn client(&self) -> AdminClient {
        AdminClient::with_credentials(
            vec![self.admin.clone()],
            Duration::from_secs(10),
            &self.creds,
        )
        .expect("the lab's credentials load")
    }

    /// The last lines of its log, for failure messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        // Panics first, wherever they are: they are what a failure is usually about.
        let panics: Vec<&str> = text.lines().filter(|l| l.contains("panicked")).collect();
        let lines: Vec<&str> = panics.into_iter().chain(text.lines()).collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A cluster of controller processes sharing a temporary directory.
pub struct Cluster {
    /// The members, in id order.
    pub procs: Vec<Proc>,
    /// Their data and logs; removed on drop.
    pub dir: tempfile::TempDir,
    /// The `ironlb` binary.
    pub bin: PathBuf,
    /// Arguments every member added from now on is started with.
    pub args: Vec<String>,
    /// Environment every member added from now on is started with.
    pub env: Vec<(String, String)>,
    /// The CA members' certificates come from; without one, members run `--insecure`.
    pub pki: Option<Pki>,
    /// How the lab calls the admin API (an admin's certificate with a CA).
    pub creds: Credentials,
}

impl Cluster {
    /// An empty cluster (no members yet) using `bin`.
    pub fn new(bin: &std::path::Path) -> Cluster {
        let mut dir = tempfile::Builder::new()
            .prefix("ironlb-lab-")
            .tempdir()
            .expect("tempdir");
        // IRONLB_KEEP_LOGS=1 keeps the data and logs for a post-mortem.
        if std::env::var_os("IRONLB_KEEP_LOGS").is_some() {
            dir.disable_cleanup(true);
            eprintln!("keeping the lab's files in {}", dir.path().display());
        }
        Cluster {
            procs: Vec::new(),
            dir,
            bin: bin.to_path_buf(),
            args: Vec::new(),
            env: Vec::new(),
            pki: None,
            creds: Credentials::default(),
        }
    }

    /// The same, with TLS everywhere: each member gets a certificate naming its seat, and the
    /// lab calls the admin API as `lab`, an admin.
    pub fn with_tls(mut self) -> Cluster {
        let pki = Pki::new("lab");
        self.creds = pki.client("lab", ironlb::auth::Role::Admin);
        self.pki = Some(pki);
        self
    }

    /// `n` members on 127.0.0.1: the first bootstraps, the others join it.
    pub async fn start(bin: &std::path::Path, n: usize, extra: &[&str]) -> Cluster {
        let mut c = Cluster::new(bin);
        for _ in 0..n {
            c.add_proc();
        }
        c.start_all(extra).await;
        c
    }

    /// Starts every member not yet running: the first bootstraps, the others join it; waits
    /// until all are members.
    pub async fn start_all(&mut self, extra: &[&str]) {
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        let first_admin = self.procs[0].admin.clone();
        for (i, p) in self.procs.iter_mut().enumerate() {
            let mut args = extra.clone();
            if i == 0 {
                args.push("--bootstrap".into());
            } else {
                args.push("--join".into());
                args.push(first_admin.clone());
            }
            p.start(&args);
        }
        self.wait_members(self.procs.len()).await;
    }

    /// Adds a member (not started) on 127.0.0.1 with free ports; returns its index.
    pub fn add_proc(&mut self) -> usize {
        let raft = format!("127.0.0.1:{}", free_port());
        let admin = format!("127.0.0.1:{}", free_port());
        self.add_proc_at(raft, admin, None)
    }

    /// Adds a member (not started) with these addresses, inside a network namespace if given;
    /// returns its index.
    pub fn add_proc_at(&mut self, raft: String, admin: String, netns: Option<String>) -> usize {
        let id = self.procs.len() as u64 + 1;
        let dir = self.dir.path().join(format!("m{id}"));
        let log = self.dir.path().join(format!("m{id}.log"));
        let mut args = self.args.clone();
        match &self.pki {
            Some(pki) => {
                let tls = pki.member(id);
                for (flag, path) in [
                    ("--tls-ca", tls.ca),
                    ("--tls-cert", tls.cert),
                    ("--tls-key", tls.key),
                ] {
                    args.push(flag.into());
                    args.push(path.display().to_string());
                }
            }
            None => args.push("--insecure".into()),
        }
        self.procs.push(Proc {
            id,
            raft,
            admin,
            dir,
            child: None,
            log,
            bin: self.bin.clone(),
            netns,
            args,
            env: self.env.clone(),
            creds: self.creds.clone(),
        });
        self.procs.len() - 1
    }

    /// A client that knows every member.
    pub fn client(&self) -> AdminClient {
        AdminClient::with_credentials(
            self.procs.iter().map(|p| p.admin.clone()).collect(),
            Duration::from_secs(10),
            &self.creds,
        )
        .expect("the lab's credentials load")
    }

    /// Waits until every running member reports `n` voting members and a leader.
    pub async fn wait_members(&self, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let mut ok = true;
            for p in self.procs.iter().filter(|p| p.child.is_some()) {
                match p.client().get::<Status>("/v1/status").await {
                    Ok(s) if s.members == n && s.voters == n && s.leader.is_some() => {}
                    _ => ok = false,
                }
            }
            if ok {
                return;
            }
            if Instant::now() > deadline {
                panic!("cluster did not reach {n} members:\n{}", self.logs());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The index of the current leader, as the members see it.
    pub async fn leader(&self) -> usize {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            for (i, p) in self
                .procs
                .iter()
                .enumerate()
                .filter(|(_, p)| p.child.is_some())
            {
                if let Ok(s) = p.client().get::<Status>("/v1/status").await {
                    if s.role == "Leader" {
                        return i;
                    }
                }
            }
            if Instant::now() > deadline {
                panic!("no leader:\n{}", self.logs());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Every member's log tail.
    pub fn logs(&self) -> String {
        self.procs
            .iter()
            .map(|p| format!("--- member {} ---\n{}", p.id, p.log_tail()))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// A pool configuration of `cidr` as YAML.
pub fn pool_yaml(name: &str, cidr: &str) -> String {
    format!("apiVersion: ironlb.io/v1beta1\nkind: IPAddressPool\nmetadata:\n  name: {name}\nspec:\n  addresses: [{cidr}]\n")
}

/// A LoadBalancer Service manifest.
pub fn service_yaml(ns: &str, name: &str) -> String {
    format!("apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\n  namespace: {ns}\nspec:\n  type: LoadBalancer\n  ports:\n  - port: 80\n")
}

/// Installs a configuration through any member.
pub async fn put_config(client: &AdminClient, yaml: &str) {
    let _: serde_json::Value = client
        .call(Method::PUT, "/v1/config", Body::Yaml(yaml.to_string()))
        .await
        .expect("configuration installed");
}
