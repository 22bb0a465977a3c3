//! Which of a process's background loops and actors are still running, for `/healthz`: a loop
//! that ended (returned, panicked, or its actor stopped) makes the process unhealthy, so an
//! orchestrator restarts it instead of leaving it half alive.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// The registry of running loops.
#[derive(Debug, Default)]
pub struct Watchdog {
    loops: Mutex<BTreeMap<u64, (&'static str, Arc<AtomicBool>)>>,
    next: std::sync::atomic::AtomicU64,
}

/// Held by a running loop; dropping it (the loop ended) marks the loop dead.
#[derive(Debug)]
pub struct Guard {
    alive: Arc<AtomicBool>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.alive.store(false, Ordering::SeqCst);
    }
}

impl Watchdog {
    /// A new, shared registry.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Registers a loop named `name`, alive while the guard lives.
    pub fn guard(&self, name: &'static str) -> Guard {
        let alive = Arc::new(AtomicBool::new(true));
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        self.loops
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, (name, alive.clone()));
        Guard { alive }
    }

    /// The loops that have ended.
    pub fn dead(&self) -> Vec<&'static str> {
        self.loops
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .filter(|(_, alive)| !alive.load(Ordering::SeqCst))
            .map(|(name, _)| *name)
            .collect()
    }

    /// The `/healthz` answer: 200 `ok`, or 503 naming what stopped.
    pub fn healthz(&self) -> (axum::http::StatusCode, String) {
        let dead = self.dead();
        if dead.is_empty() {
            (axum::http::StatusCode::OK, "ok\n".into())
        } else {
            (
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                format!("stopped: {}\n", dead.join(", ")),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_loop_that_ends_makes_the_process_unhealthy() {
        let w = Watchdog::new();
        let g = w.guard("view");
        let task = tokio::spawn(async move {
            let _g = g;
            // The loop gives up (a full mailbox taken for a closed one, say).
        });
        let _ = task.await;
        let _alive = w.guard("lease tracker");
        assert_eq!(w.dead(), vec!["view"]);
        assert_eq!(w.healthz().0, axum::http::StatusCode::SERVICE_UNAVAILABLE);
        assert!(w.healthz().1.contains("view"));
        // A panicking loop drops its guard too.
        let g = w.guard("links");
        let _ = tokio::spawn(async move {
            let _g = g;
            panic!("boom");
        })
        .await;
        assert!(w.dead().contains(&"links"));
    }
}
