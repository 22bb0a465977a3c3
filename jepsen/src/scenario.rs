//! A Layer 2 setup for targeted scenarios, as the regression tests use it: members, speakers,
//! the Layer 2 configuration, a few probed Services and the prober, with the same checker as a
//! full run.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Result;

use crate::checker::l2::{self, Reply};
use crate::checker::Verdict;
use crate::db::{Db, DbOptions};
use crate::history::{monotonic_ns, Recorder};
use crate::nemesis::{self, Log};
use crate::run::{put_config, start_probing, Helpers, Timing};
use crate::workload;

/// A running Layer 2 scenario.
pub struct L2Scenario {
    /// The system under test.
    pub db: Db,
    /// Where its logs, probes and captures go.
    pub dir: PathBuf,
    /// The probed addresses.
    pub addresses: Vec<IpAddr>,
    /// Faults, logged as a run logs them (so the checker can name them).
    pub log: Log,
    start_ns: u64,
    helpers: Helpers,
}

impl L2Scenario {
    /// Builds it in `dir`: `members` controllers, `speakers` speakers, `services` dual-stack
    /// Services probed every 10 ms.
    pub async fn start(
        dir: &Path,
        timing: Timing,
        members: usize,
        speakers: usize,
        services: usize,
    ) -> Result<Self> {
        std::fs::create_dir_all(dir)?;
        let mut db = Db::build(
            DbOptions {
                members,
                speakers,
                bin: crate::sibling_binary("ironlb")?,
                controller_args: timing.args(),
                speaker_args: Vec::new(),
                log_filter: "info,openraft=warn".into(),
            },
            dir,
        )?;
        db.start_cluster().await?;
        let admins = db.active_admins();
        put_config(&db, &admins, &workload::l2::config()).await?;
        for i in 0..speakers {
            db.start_speaker(i)?;
        }
        let start_ns = monotonic_ns();
        let rec = Recorder::new(start_ns, None)?;
        let addresses = workload::l2::setup(&db.api, &rec, 0, &admins, services).await?;
        // Every owner answers before the probing starts.
        for a in &addresses {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
            while db.owner_of(*a).await.is_none() {
                anyhow::ensure!(tokio::time::Instant::now() < deadline, "{a} got no owner");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        let helpers = Helpers(start_probing(&db, dir, &addresses, start_ns)?);
        let log = Log::new(start_ns, Some(&dir.join("nemesis.jsonl")))?;
        Ok(Self {
            db,
            dir: dir.to_path_buf(),
            addresses,
            log,
            start_ns,
            helpers,
        })
    }

    /// A speaker's metric, from its `/metrics`.
    pub async fn metric(&self, speaker: usize, name: &str) -> Option<f64> {
        let url = format!("http://{}:7472/metrics", self.db.speakers[speaker].addr);
        let text = reqwest::get(&url).await.ok()?.text().await.ok()?;
        text.lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
    }

    /// How many times each speaker fenced (`None` for one that does not answer).
    pub async fn fences(&self) -> Vec<Option<f64>> {
        let mut out = Vec::new();
        for i in 0..self.db.speakers.len() {
            out.push(self.metric(i, "ironlb_speaker_fences_total").await);
        }
        out
    }

    /// Stops probing and every process; returns the Layer 2 verdict over the whole scenario
    /// and the replies it saw.
    pub fn finish(mut self) -> Result<(Verdict, Vec<Reply>)> {
        drop(std::mem::take(&mut self.helpers));
        self.db.stop_all();
        let replies = l2::load(&self.dir.join("probes.jsonl"))?;
        let windows = nemesis::windows(&self.log.events());
        let end = monotonic_ns().saturating_sub(self.start_ns);
        let verdict = l2::check(
            &replies,
            &windows,
            &self.addresses,
            end,
            l2::Rules::default(),
        );
        Ok((verdict, replies))
    }
}

/// For tests that need root and the lab's tools: true if they can run; fails the test when
/// `IRONLB_REQUIRE_LAB=1` (CI) and they cannot.
pub fn lab_available() -> bool {
    ironlb_lab::netns::require_with(&["tshark", "iptables"])
}
