//! `ironlb ctl bfd`: one speaker's BFD sessions, from its metrics listener (`GET /v1/bfd`).

use std::time::Duration;

use anyhow::{Context, Result};
use ironlb::net::bfd::BfdSessionView;

use super::print;
use crate::cli::table::print_table;
use crate::cli::Output;

/// Fetches and prints the sessions of the speaker at `speaker` (`http://NODE:PORT`, or
/// `NODE:PORT`).
pub async fn run(speaker: &str, out: Output, timeout: Duration) -> Result<()> {
    let base = if speaker.contains("://") {
        speaker.trim_end_matches('/').to_string()
    } else {
        // The listener is plain HTTP, like its /metrics.
        format!("http://{}", speaker.trim_end_matches('/'))
    };
    let url = format!("{base}/v1/bfd");
    let client = reqwest::Client::builder().timeout(timeout).build()?;
    let list: Vec<BfdSessionView> = client
        .get(&url)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .with_context(|| format!("GET {url}"))?
        .json()
        .await
        .with_context(|| format!("GET {url}: not a list of BFD sessions"))?;
    print(out, &list, |l| print_table(&HEADER, &rows(l)))
}

const HEADER: [&str; 10] = [
    "PEER",
    "ADDRESS",
    "LOCAL",
    "HOP",
    "STATE",
    "REMOTE",
    "DIAG",
    "TX_MS",
    "DETECT_MS",
    "FAILURES",
];

/// One row per session; `-` for what is not known yet.
fn rows(list: &[BfdSessionView]) -> Vec<Vec<String>> {
    let opt = |v: Option<u64>| v.map_or("-".to_string(), |v| v.to_string());
    list.iter()
        .map(|s| {
            vec![
                s.peer.to_string(),
                s.address.to_string(),
                s.local.to_string(),
                s.hop.clone(),
                s.state.clone(),
                s.remote_state.clone(),
                s.diag.clone(),
                opt(s.tx_interval_ms),
                opt(s.detection_time_ms),
                s.failures.to_string(),
            ]
        })
        .collect()
}
