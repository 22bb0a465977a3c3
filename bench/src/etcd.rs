//! The etcd baseline's cluster: three real etcd processes on loopback, driven through etcd's
//! JSON gateway with the same HTTP client stack the ironlb side uses.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ironlb_lab::cluster::free_port;
use serde_json::{json, Value};

/// A 3-member etcd cluster of child processes; killed, and its directory removed, on drop.
pub struct Etcd {
    /// The member processes, by member.
    pub children: Vec<Child>,
    /// Client URLs (`http://127.0.0.1:port`), by member.
    pub clients: Vec<String>,
    /// Data directories and logs.
    pub dir: tempfile::TempDir,
}

impl Drop for Etcd {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Etcd {
    /// Starts `n` members on free loopback ports.
    pub fn start(bin: &Path, n: usize) -> Result<Etcd> {
        let dir = tempfile::tempdir().context("etcd's temporary directory")?;
        let peers: Vec<String> = (0..n)
            .map(|_| format!("http://127.0.0.1:{}", free_port()))
            .collect();
        let clients: Vec<String> = (0..n)
            .map(|_| format!("http://127.0.0.1:{}", free_port()))
            .collect();
        let initial: Vec<String> = peers
            .iter()
            .enumerate()
            .map(|(i, p)| format!("m{i}={p}"))
            .collect();
        let mut etcd = Etcd {
            children: Vec::new(),
            clients,
            dir,
        };
        for (i, peer) in peers.iter().enumerate() {
            let log = std::fs::File::create(etcd.dir.path().join(format!("m{i}.log")))?;
            let child = Command::new(bin)
                .arg(format!("--name=m{i}"))
                .arg(format!(
                    "--data-dir={}",
                    etcd.dir.path().join(format!("m{i}")).display()
                ))
                .arg(format!("--listen-client-urls={}", etcd.clients[i]))
                .arg(format!("--advertise-client-urls={}", etcd.clients[i]))
                .arg(format!("--listen-peer-urls={peer}"))
                .arg(format!("--initial-advertise-peer-urls={peer}"))
                .arg(format!("--initial-cluster={}", initial.join(",")))
                .arg("--initial-cluster-token=ironlb-bench")
                .arg("--initial-cluster-state=new")
                .args(["--logger=zap", "--log-outputs=stderr", "--log-level=warn"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .with_context(|| format!("starting {}", bin.display()))?;
            etcd.children.push(child);
        }
        Ok(etcd)
    }

    /// Every member's log tail, for failure messages.
    pub fn logs(&self) -> String {
        (0..self.children.len())
            .map(|i| {
                let text = std::fs::read_to_string(self.dir.path().join(format!("m{i}.log")))
                    .unwrap_or_default();
                let lines: Vec<&str> = text.lines().collect();
                format!(
                    "--- etcd m{i} ---\n{}",
                    lines[lines.len().saturating_sub(15)..].join("\n")
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Waits until every member answers and all name the same leader; returns the index of
    /// the leader's member.
    pub async fn wait_leader(&mut self, http: &reqwest::Client) -> Result<usize> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            for (i, c) in self.children.iter_mut().enumerate() {
                if let Some(status) = c.try_wait()? {
                    bail!("etcd m{i} exited ({status}):\n{}", self.logs());
                }
            }
            let mut seen = Vec::new();
            for url in &self.clients {
                let status = post(http, url, "/v3/maintenance/status", &json!({})).await;
                match status {
                    Ok(s) => seen.push((
                        s["header"]["member_id"].as_str().unwrap_or("").to_string(),
                        s["leader"].as_str().unwrap_or("0").to_string(),
                    )),
                    Err(_) => break,
                }
            }
            if seen.len() == self.clients.len() {
                let leader = &seen[0].1;
                if leader != "0" && seen.iter().all(|(_, l)| l == leader) {
                    if let Some(i) = seen.iter().position(|(id, _)| id == leader) {
                        return Ok(i);
                    }
                }
            }
            if Instant::now() > deadline {
                bail!("etcd elected no leader within 30 s:\n{}", self.logs());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// POSTs JSON to etcd's gateway and returns the answer's JSON.
pub async fn post(http: &reqwest::Client, base: &str, path: &str, body: &Value) -> Result<Value> {
    let resp = http.post(format!("{base}{path}")).json(body).send().await?;
    let status = resp.status();
    let bytes = resp.bytes().await?;
    ensure!(
        status.is_success(),
        "{path}: {status}: {}",
        String::from_utf8_lossy(&bytes)
    );
    Ok(serde_json::from_slice(&bytes)?)
}

/// Base64, as etcd's gateway wants keys and values.
pub fn b64(s: &str) -> String {
    B64.encode(s)
}
