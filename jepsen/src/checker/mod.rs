//! The checkers: each reads what a run recorded and gives a verdict with its figures.
//!
//! - [`alloc`]: linearizability of the allocation history against ironlb's own allocator as the
//!   sequential model, and invariants over the whole history (no address given twice, no
//!   acknowledged allocation lost, members agree, the pool accounting adds up).
//! - [`l2`]: Layer 2 answers: windows where two MACs answered for one address (must be none),
//!   and the outage each fault caused.
//! - [`availability`]: per phase (no fault, fault, after healing), the share of operations that
//!   succeeded and their latency.

pub mod alloc;
pub mod availability;
pub mod l2;
pub mod linear;
pub mod model;

use serde::{Deserialize, Serialize};

/// A checker's answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Validity {
    /// Every rule held.
    Valid,
    /// A rule was broken: see the problems.
    Invalid,
    /// The checker could not decide (a search over budget); never counts as valid.
    Unknown,
}

impl Validity {
    /// The worse of two answers: invalid over unknown over valid.
    pub fn and(self, other: Validity) -> Validity {
        use Validity::*;
        match (self, other) {
            (Invalid, _) | (_, Invalid) => Invalid,
            (Unknown, _) | (_, Unknown) => Unknown,
            _ => Valid,
        }
    }
}

/// One checker's verdict.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    /// Which checker.
    pub checker: String,
    /// Its answer.
    pub valid: Validity,
    /// What it measured.
    pub figures: serde_json::Value,
    /// Every violation, in words (at most a few hundred).
    pub problems: Vec<String>,
}

/// The most problems a verdict lists; the count of all is in its figures.
pub const MAX_PROBLEMS: usize = 200;

impl Verdict {
    /// A verdict from problems found (none: valid) and figures.
    pub fn from_problems(
        checker: &str,
        mut problems: Vec<String>,
        figures: serde_json::Value,
    ) -> Self {
        let valid = if problems.is_empty() {
            Validity::Valid
        } else {
            Validity::Invalid
        };
        problems.truncate(MAX_PROBLEMS);
        Self {
            checker: checker.to_string(),
            valid,
            figures,
            problems,
        }
    }
}

/// The nanosecond times of a run in seconds, for reports.
pub fn secs(ns: u64) -> f64 {
    ns as f64 / 1e9
}

/// The `p`-th percentile (0 to 100) of sorted values, nearest rank.
pub fn percentile(sorted: &[u64], p: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_worse_answer_wins_and_percentiles_are_nearest_rank() {
        assert_eq!(Validity::Valid.and(Validity::Unknown), Validity::Unknown);
        assert_eq!(Validity::Unknown.and(Validity::Invalid), Validity::Invalid);
        assert_eq!(Validity::Valid.and(Validity::Valid), Validity::Valid);
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), Some(50));
        assert_eq!(percentile(&v, 99.0), Some(99));
        assert_eq!(percentile(&v, 100.0), Some(100));
        assert_eq!(percentile(&[], 50.0), None);
    }
}
