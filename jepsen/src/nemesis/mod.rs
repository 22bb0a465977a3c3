//! Faults: what they are, when they happen (a schedule drawn from the seed), and the log of what
//! happened (`nemesis.jsonl`, every fault's start and end).
//!
//! The schedule is fixed before the run starts: which fault, when, for how long, and its random
//! choices (which member, which speaker, how much delay). Targets named by role ("the leader",
//! "the owner of an address") are resolved when the fault starts.

pub mod exec;
pub mod plan;

use std::io::{BufRead, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

pub use plan::{schedule, Fault, Kind, Scheduled};

/// One line of `nemesis.jsonl`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Nanoseconds since the run started.
    pub t: u64,
    /// `start` or `end`.
    pub event: String,
    /// The fault's name.
    pub name: String,
    /// What exactly it did (targets, parameters).
    #[serde(default)]
    pub detail: serde_json::Value,
}

/// A fault from its start to its end (none if the run ended first).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Window {
    /// The fault's name.
    pub name: String,
    /// When it started.
    pub start: u64,
    /// When it was healed.
    pub end: Option<u64>,
    /// What it did.
    pub detail: serde_json::Value,
}

/// Pairs starts with ends, in order of start.
pub fn windows(events: &[Event]) -> Vec<Window> {
    let mut out: Vec<Window> = Vec::new();
    for e in events {
        match e.event.as_str() {
            "start" => out.push(Window {
                name: e.name.clone(),
                start: e.t,
                end: None,
                detail: e.detail.clone(),
            }),
            _ => {
                if let Some(w) = out
                    .iter_mut()
                    .rev()
                    .find(|w| w.name == e.name && w.end.is_none())
                {
                    w.end = Some(e.t);
                    if !e.detail.is_null() {
                        w.detail = serde_json::json!({"start": w.detail, "end": e.detail});
                    }
                }
            }
        }
    }
    out
}

/// Reads `nemesis.jsonl`.
pub fn load(path: &Path) -> std::io::Result<Vec<Event>> {
    let file = std::fs::File::open(path)?;
    let mut out = Vec::new();
    for line in std::io::BufReader::new(file).lines() {
        let line = line?;
        if !line.trim().is_empty() {
            out.push(serde_json::from_str(&line).map_err(std::io::Error::other)?);
        }
    }
    Ok(out)
}

/// Appends nemesis events to memory and to `nemesis.jsonl`.
#[derive(Clone)]
pub struct Log {
    inner: Arc<Mutex<(Vec<Event>, Option<std::fs::File>)>>,
    start: u64,
}

impl Log {
    /// A log counting time from `start` (monotonic nanoseconds), written to `path` if given.
    pub fn new(start: u64, path: Option<&Path>) -> std::io::Result<Self> {
        let file = match path {
            Some(p) => Some(std::fs::File::create(p)?),
            None => None,
        };
        Ok(Self {
            inner: Arc::new(Mutex::new((Vec::new(), file))),
            start,
        })
    }

    /// Records an event now.
    pub fn record(&self, event: &str, name: &str, detail: serde_json::Value) {
        let e = Event {
            t: crate::history::monotonic_ns().saturating_sub(self.start),
            event: event.into(),
            name: name.into(),
            detail,
        };
        tracing_line(&e);
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(f) = inner.1.as_mut() {
            if let Ok(line) = serde_json::to_string(&e) {
                let _ = writeln!(f, "{line}");
            }
        }
        inner.0.push(e);
    }

    /// Everything recorded.
    pub fn events(&self) -> Vec<Event> {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .0
            .clone()
    }
}

fn tracing_line(e: &Event) {
    eprintln!(
        "[{:>8.3}s] nemesis {} {} {}",
        e.t as f64 / 1e9,
        e.event,
        e.name,
        if e.detail.is_null() {
            String::new()
        } else {
            e.detail.to_string()
        }
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_pair_with_their_ends() {
        let ev = |t, event: &str, name: &str| Event {
            t,
            event: event.into(),
            name: name.into(),
            detail: serde_json::Value::Null,
        };
        let w = windows(&[
            ev(1, "start", "a"),
            ev(2, "start", "b"),
            ev(3, "end", "a"),
            ev(5, "start", "a"),
        ]);
        assert_eq!(w.len(), 3);
        assert_eq!((w[0].start, w[0].end), (1, Some(3)));
        assert_eq!(w[1].end, None);
        assert_eq!((w[2].start, w[2].end), (5, None));
    }
}
