//! Runs real `ironlb controller` processes on 127.0.0.1 for tests: start, kill, restart, and
//! talk to them through the admin API.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ironlb::api::client::{AdminClient, Body};
use ironlb::api::views::Status;
use reqwest::Method;

/// A free TCP port on 127.0.0.1 (bound, then released for the process to take).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// One controller process.
pub struct Proc {
    pub id: u64,
    pub raft: String,
    pub admin: String,
    pub dir: PathBuf,
    pub child: Option<Child>,
    pub log: PathBuf,
}

impl Proc {
    /// Starts (or restarts) the process with the given extra arguments.
    pub fn start(&mut self, extra: &[String]) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_ironlb"))
            .arg("controller")
            .args(["--id", &self.id.to_string()])
            .args(["--data-dir", &self.dir.display().to_string()])
            .args(["--raft-listen", &self.raft])
            .args(["--admin-listen", &self.admin])
            .args(extra)
            .env("RUST_LOG", "info,openraft=warn")
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
        AdminClient::new(vec![self.admin.clone()], Duration::from_secs(10))
    }

    /// The last lines of its log, for failure messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
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
    pub procs: Vec<Proc>,
    pub dir: tempfile::TempDir,
}

impl Cluster {
    /// `n` members: the first bootstraps, the others join it.
    pub async fn start(n: usize, extra: &[&str]) -> Cluster {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut c = Cluster {
            procs: Vec::new(),
            dir,
        };
        for _ in 0..n {
            c.add_proc();
        }
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        let first_admin = c.procs[0].admin.clone();
        for (i, p) in c.procs.iter_mut().enumerate() {
            let mut args = extra.clone();
            if i == 0 {
                args.push("--bootstrap".into());
            } else {
                args.push("--join".into());
                args.push(first_admin.clone());
            }
            p.start(&args);
        }
        c.wait_members(n).await;
        c
    }

    /// Adds a process (not started) and returns its index.
    pub fn add_proc(&mut self) -> usize {
        let id = self.procs.len() as u64 + 1;
        let dir = self.dir.path().join(format!("m{id}"));
        let log = self.dir.path().join(format!("m{id}.log"));
        self.procs.push(Proc {
            id,
            raft: format!("127.0.0.1:{}", free_port()),
            admin: format!("127.0.0.1:{}", free_port()),
            dir,
            child: None,
            log,
        });
        self.procs.len() - 1
    }

    /// A client that knows every member.
    pub fn client(&self) -> AdminClient {
        AdminClient::new(
            self.procs.iter().map(|p| p.admin.clone()).collect(),
            Duration::from_secs(10),
        )
    }

    /// Waits until every running member reports `n` members and a leader.
    pub async fn wait_members(&self, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let mut ok = true;
            for p in self.procs.iter().filter(|p| p.child.is_some()) {
                match p.client().get::<Status>("/v1/status").await {
                    Ok(s) if s.members == n && s.leader.is_some() => {}
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
            for p in self.procs.iter().filter(|p| p.child.is_some()) {
                if let Ok(s) = p.client().get::<Status>("/v1/status").await {
                    if s.role == "Leader" {
                        return self.procs.iter().position(|q| q.id == s.id).expect("known id");
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
