//! Local health checks (keepalived style): each speaker probes the Services' ports on its own
//! node and reports the ones failing, so the leader moves their addresses elsewhere.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use actix::Addr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

use super::session::{ControllerSession, Readiness, ReadinessSource};
use crate::announce::proto::ServiceAnnounce;
use crate::health_check::HealthCheck;
use crate::names::ServiceKey;

/// Consecutive results it takes to change a Service's state, so one lost probe does not move
/// an address and one lucky probe does not bring it back.
const FALL: u32 = 2;
const RISE: u32 = 2;

/// How long one probe may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// Runs one probe; `Ok` when the Service answers as it should.
pub async fn probe(check: &HealthCheck) -> Result<(), String> {
    let run = async {
        match check {
            HealthCheck::Tcp { port } => TcpStream::connect(("127.0.0.1", *port))
                .await
                .map(drop)
                .map_err(|e| e.to_string()),
            HealthCheck::Http { port, path } => {
                let mut s = TcpStream::connect(("127.0.0.1", *port))
                    .await
                    .map_err(|e| e.to_string())?;
                let req = format!(
                    "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: ironlb-health-check\r\nConnection: close\r\n\r\n"
                );
                s.write_all(req.as_bytes())
                    .await
                    .map_err(|e| e.to_string())?;
                let mut head = Vec::new();
                let mut buf = [0u8; 512];
                while !head.windows(2).any(|w| w == b"\r\n") && head.len() < 4096 {
                    let n = s.read(&mut buf).await.map_err(|e| e.to_string())?;
                    if n == 0 {
                        break;
                    }
                    head.extend_from_slice(&buf[..n]);
                }
                let line = String::from_utf8_lossy(&head);
                let status = line
                    .split_whitespace()
                    .nth(1)
                    .and_then(|c| c.parse::<u16>().ok())
                    .ok_or_else(|| "no HTTP status line".to_string())?;
                if (200..400).contains(&status) {
                    Ok(())
                } else {
                    Err(format!("HTTP {status}"))
                }
            }
        }
    };
    match tokio::time::timeout(PROBE_TIMEOUT, run).await {
        Ok(r) => r,
        Err(_) => Err(format!("no answer within {PROBE_TIMEOUT:?}")),
    }
}

#[derive(Default)]
struct Streak {
    failing: bool,
    run: u32,
}

/// Probes every check each `interval` and reports the failing Services whenever that set
/// changes. Ends when the session goes away.
pub async fn run(
    mut services: watch::Receiver<Vec<ServiceAnnounce>>,
    session: Addr<ControllerSession>,
    interval: Duration,
) {
    let mut streaks: BTreeMap<ServiceKey, Streak> = BTreeMap::new();
    let mut reported: Option<BTreeSet<ServiceKey>> = None;
    loop {
        let list: Vec<(ServiceKey, HealthCheck)> = services
            .borrow_and_update()
            .iter()
            .filter_map(|s| Some((s.service.clone(), s.health_check.clone()?)))
            .collect();
        let results =
            futures::future::join_all(list.iter().map(|(k, c)| async move { (k, probe(c).await) }))
                .await;
        streaks.retain(|k, _| list.iter().any(|(l, _)| l == k));
        for (key, result) in results {
            let s = streaks.entry(key.clone()).or_default();
            let failed = result.is_err();
            if failed == s.failing {
                s.run = 0;
                continue;
            }
            s.run += 1;
            if s.run >= if failed { FALL } else { RISE } {
                s.failing = failed;
                s.run = 0;
                match &result {
                    Err(why) => tracing::warn!(service = %key, %why, "health check failing"),
                    Ok(()) => tracing::info!(service = %key, "health check passing"),
                }
            }
        }
        let unready: BTreeSet<ServiceKey> = streaks
            .iter()
            .filter(|(_, s)| s.failing)
            .map(|(k, _)| k.clone())
            .collect();
        if reported.as_ref() != Some(&unready) {
            let report = Readiness {
                source: ReadinessSource::HealthChecks,
                unready: unready.clone(),
            };
            if session.try_send(report).is_err() {
                return;
            }
            reported = Some(unready);
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            changed = services.changed() => if changed.is_err() { return },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn tcp_and_http_probes_tell_a_listening_port_from_a_closed_one() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 1024];
                    let n = s.read(&mut buf).await.unwrap_or(0);
                    let req = String::from_utf8_lossy(&buf[..n]).to_string();
                    let status = if req.starts_with("GET /ok ") {
                        "200 OK"
                    } else {
                        "503 Unavailable"
                    };
                    let _ = s
                        .write_all(
                            format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n").as_bytes(),
                        )
                        .await;
                });
            }
        });
        assert_eq!(probe(&HealthCheck::Tcp { port }).await, Ok(()));
        assert_eq!(
            probe(&HealthCheck::Http {
                port,
                path: "/ok".into()
            })
            .await,
            Ok(())
        );
        assert_eq!(
            probe(&HealthCheck::Http {
                port,
                path: "/sick".into()
            })
            .await,
            Err("HTTP 503".into())
        );
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        assert!(probe(&HealthCheck::Tcp { port: closed }).await.is_err());
    }
}
