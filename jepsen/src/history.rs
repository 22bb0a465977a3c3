//! The history of a run: every operation as an invocation and then its completion (`ok`, `fail`
//! or `info`), with the time on the monotonic clock, the process that ran it, its arguments and
//! its result, one JSON object per line (`history.jsonl`), as Jepsen records them.
//!
//! `ok` means the operation took effect with the result shown (an allocation the cluster refused
//! is `ok` too: the refusal is an answer the model must agree with); `fail` means it certainly did
//! not take effect; `info` means nobody knows (a timeout, a broken connection), so the checkers
//! must allow both.

use std::collections::BTreeMap;
use std::io::{BufRead, BufWriter, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Nanoseconds on `CLOCK_MONOTONIC`, the clock every process of a run (runner, prober, netem)
/// stamps its records with, so their records line up.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec into the struct we own; CLOCK_MONOTONIC exists on
    // every Linux.
    unsafe {
        libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts);
    }
    (ts.tv_sec as u64) * 1_000_000_000 + ts.tv_nsec as u64
}

/// Where an operation is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OpType {
    /// Sent.
    Invoke,
    /// Took effect, with this result.
    Ok,
    /// Certainly did not take effect.
    Fail,
    /// Unknown: it may or may not have taken effect.
    Info,
}

/// What an operation does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Fun {
    /// Allocate addresses for a Service (`POST /v1/services`).
    Allocate,
    /// Release a Service (`DELETE /v1/services/{ns}/{name}`).
    Release,
    /// Read every Service's addresses (`GET /v1/services`), linearizable or `?stale=true`.
    Read,
}

/// One record of the history.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Op {
    /// Its position in the history.
    pub index: u64,
    /// Nanoseconds since the run started.
    pub time: u64,
    /// The logical process: operations of one process never overlap.
    pub process: u64,
    /// Invocation or completion.
    #[serde(rename = "type")]
    pub kind: OpType,
    /// What it does.
    pub f: Fun,
    /// The arguments (invocation) or the result (completion).
    pub value: Value,
    /// Why it failed or is unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The member the request went to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
}

/// An invocation and its completion (none if the run ended first, which counts as `info`).
#[derive(Clone, Debug, PartialEq)]
pub struct Pair<'a> {
    /// The invocation.
    pub invoke: &'a Op,
    /// The completion.
    pub complete: Option<&'a Op>,
}

impl Pair<'_> {
    /// The completion's type (`info` when there is none).
    pub fn outcome(&self) -> OpType {
        self.complete.map_or(OpType::Info, |c| c.kind)
    }

    /// The latency of a completed operation, in nanoseconds.
    pub fn latency(&self) -> Option<u64> {
        self.complete
            .map(|c| c.time.saturating_sub(self.invoke.time))
    }
}

/// Why a history cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    /// The file could not be read or written.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// A line is not an operation.
    #[error("line {line}: {source}")]
    Parse {
        /// The line number (from 1).
        line: usize,
        /// Why.
        source: serde_json::Error,
    },
    /// A process completed an operation it never invoked, or invoked two at once.
    #[error("op {index}: {why}")]
    Malformed {
        /// The operation.
        index: u64,
        /// What is wrong.
        why: String,
    },
}

/// A whole history, in order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct History {
    /// The operations, by index.
    pub ops: Vec<Op>,
}

impl History {
    /// Reads `history.jsonl`.
    pub fn load(path: &Path) -> Result<Self, HistoryError> {
        let file = std::fs::File::open(path)?;
        let mut ops = Vec::new();
        for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
            let line = line?;
            if line.trim().is_empty() {
                continue;
            }
            let op: Op = serde_json::from_str(&line).map_err(|source| HistoryError::Parse {
                line: i + 1,
                source,
            })?;
            ops.push(op);
        }
        Ok(Self { ops })
    }

    /// Writes it as `history.jsonl`.
    pub fn save(&self, path: &Path) -> Result<(), HistoryError> {
        let mut out = BufWriter::new(std::fs::File::create(path)?);
        for op in &self.ops {
            serde_json::to_writer(&mut out, op).map_err(std::io::Error::other)?;
            out.write_all(b"\n")?;
        }
        out.flush()?;
        Ok(())
    }

    /// Every invocation with its completion, in invocation order. A process may have only one
    /// operation outstanding; a completion without an invocation is an error.
    pub fn pairs(&self) -> Result<Vec<Pair<'_>>, HistoryError> {
        let mut open: BTreeMap<u64, usize> = BTreeMap::new();
        let mut pairs: Vec<Pair<'_>> = Vec::new();
        for op in &self.ops {
            match op.kind {
                OpType::Invoke => {
                    if open.contains_key(&op.process) {
                        return Err(HistoryError::Malformed {
                            index: op.index,
                            why: format!(
                                "process {} invoked while another of its operations is open",
                                op.process
                            ),
                        });
                    }
                    open.insert(op.process, pairs.len());
                    pairs.push(Pair {
                        invoke: op,
                        complete: None,
                    });
                }
                _ => {
                    let Some(at) = open.remove(&op.process) else {
                        return Err(HistoryError::Malformed {
                            index: op.index,
                            why: format!("process {} completed nothing it invoked", op.process),
                        });
                    };
                    if pairs[at].invoke.f != op.f {
                        return Err(HistoryError::Malformed {
                            index: op.index,
                            why: format!(
                                "completes {:?} but process {} invoked {:?}",
                                op.f, op.process, pairs[at].invoke.f
                            ),
                        });
                    }
                    pairs[at].complete = Some(op);
                }
            }
        }
        Ok(pairs)
    }

    /// The time of the last record.
    pub fn end(&self) -> u64 {
        self.ops.last().map_or(0, |o| o.time)
    }
}

/// Appends operations as they happen, stamping each with its index and time: to
/// `history.jsonl` when given a path (so a long run costs no memory, and a run that dies leaves
/// what it did), else to memory.
#[derive(Clone)]
pub struct Recorder {
    inner: Arc<Mutex<RecorderInner>>,
    start: u64,
}

struct RecorderInner {
    next: u64,
    /// Kept only without a file.
    ops: Vec<Op>,
    out: Option<(BufWriter<std::fs::File>, std::path::PathBuf)>,
}

impl Recorder {
    /// A recorder whose times count from `start` (monotonic nanoseconds), writing to `path` if
    /// given.
    pub fn new(start: u64, path: Option<&Path>) -> std::io::Result<Self> {
        let out = match path {
            Some(p) => Some((BufWriter::new(std::fs::File::create(p)?), p.to_path_buf())),
            None => None,
        };
        Ok(Self {
            inner: Arc::new(Mutex::new(RecorderInner {
                next: 0,
                ops: Vec::new(),
                out,
            })),
            start,
        })
    }

    /// Nanoseconds since the run started.
    pub fn now(&self) -> u64 {
        monotonic_ns().saturating_sub(self.start)
    }

    /// Records an operation now; returns it as recorded.
    pub fn record(
        &self,
        process: u64,
        kind: OpType,
        f: Fun,
        value: Value,
        error: Option<String>,
        node: Option<String>,
    ) -> Op {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        // The time is taken under the lock, so indexes and times agree in order.
        let op = Op {
            index: inner.next,
            time: self.now(),
            process,
            kind,
            f,
            value,
            error,
            node,
        };
        inner.next += 1;
        match inner.out.as_mut() {
            Some((out, _)) => {
                // A line that cannot be written is reported once the run is checked: the file
                // is the history.
                let _ = serde_json::to_writer(&mut *out, &op);
                let _ = out.write_all(b"\n");
            }
            None => inner.ops.push(op.clone()),
        }
        op
    }

    /// Writes out what is buffered.
    pub fn flush(&self) -> std::io::Result<()> {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        match inner.out.as_mut() {
            Some((out, _)) => out.flush(),
            None => Ok(()),
        }
    }

    /// The history so far (read back from the file, if there is one).
    pub fn history(&self) -> Result<History, HistoryError> {
        self.flush()?;
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        match &inner.out {
            Some((_, path)) => History::load(path),
            None => Ok(History {
                ops: inner.ops.clone(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn op(index: u64, process: u64, kind: OpType, f: Fun) -> Op {
        Op {
            index,
            time: index * 10,
            process,
            kind,
            f,
            value: json!({}),
            error: None,
            node: None,
        }
    }

    #[test]
    fn invocations_pair_with_their_completions_by_process() {
        let h = History {
            ops: vec![
                op(0, 1, OpType::Invoke, Fun::Allocate),
                op(1, 2, OpType::Invoke, Fun::Read),
                op(2, 2, OpType::Ok, Fun::Read),
                op(3, 1, OpType::Info, Fun::Allocate),
                op(4, 3, OpType::Invoke, Fun::Release),
            ],
        };
        let pairs = h.pairs().unwrap();
        assert_eq!(pairs.len(), 3);
        assert_eq!(pairs[0].outcome(), OpType::Info);
        assert_eq!(pairs[1].latency(), Some(10));
        // Never completed: unknown.
        assert_eq!(pairs[2].complete, None);
        assert_eq!(pairs[2].outcome(), OpType::Info);
    }

    #[test]
    fn overlapping_operations_of_one_process_are_refused() {
        let h = History {
            ops: vec![
                op(0, 1, OpType::Invoke, Fun::Allocate),
                op(1, 1, OpType::Invoke, Fun::Read),
            ],
        };
        assert!(matches!(
            h.pairs(),
            Err(HistoryError::Malformed { index: 1, .. })
        ));
        let h = History {
            ops: vec![op(0, 1, OpType::Ok, Fun::Read)],
        };
        assert!(h.pairs().is_err());
    }

    #[test]
    fn a_history_survives_the_file_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.jsonl");
        let rec = Recorder::new(monotonic_ns(), Some(&path)).unwrap();
        rec.record(
            0,
            OpType::Invoke,
            Fun::Read,
            json!({"stale": false}),
            None,
            None,
        );
        rec.record(
            0,
            OpType::Ok,
            Fun::Read,
            json!({"services": {}}),
            None,
            Some("n1".into()),
        );
        let h = rec.history().unwrap();
        assert_eq!(h.ops.len(), 2);
        assert_eq!(History::load(&path).unwrap(), h);
        assert!(h.ops[1].time >= h.ops[0].time);
    }
}
