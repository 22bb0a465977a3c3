//! The workloads: what the clients do while the nemesis does its worst.

pub mod alloc;
pub mod l2;

use serde::{Deserialize, Serialize};

/// A workload.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Workload {
    /// Allocate, release and read Services on small pools; checked for linearizability.
    Alloc,
    /// Services announced in Layer 2, probed with ARP, NDP and ping; checked for dual answers
    /// and outages (and the allocations made meanwhile, as in `alloc`).
    L2,
}

impl Workload {
    /// The name used on the command line and in run directories.
    pub fn name(self) -> &'static str {
        match self {
            Workload::Alloc => "alloc",
            Workload::L2 => "l2",
        }
    }
}
