//! ironlb-jepsen: a Jepsen-style suite for ironlb. It drives the real `ironlb` binary (controller
//! members and speakers in network namespaces, a client and an attacker namespace), injects
//! faults from a seeded schedule, records every operation and every Layer 2 answer, and checks
//! the histories: linearizability against ironlb's own allocator as the sequential model,
//! invariants (nothing given twice, nothing acknowledged lost), dual answers and outages in
//! Layer 2, and availability per phase.
//!
//! It is black-box: it talks to the processes only through the admin API, the kernel (ARP, NDP,
//! ping) and packet captures, and links nothing of ironlb but the allocator (the model) and the
//! lab's namespaces.

pub mod check;
pub mod checker;
pub mod client;
pub mod db;
pub mod flood;
pub mod history;
pub mod nemesis;
pub mod netem;
pub mod plot;
pub mod probe;
pub mod rawsock;
pub mod run;
pub mod scenario;
pub mod workload;

/// A binary of the workspace next to this program (or, for a test binary in `deps/`, next to
/// that directory): `ironlb` or `ironlb-jepsen` as the same build made them.
pub fn sibling_binary(name: &str) -> anyhow::Result<std::path::PathBuf> {
    let me = std::env::current_exe()?;
    let mut dir = me
        .parent()
        .map(std::path::Path::to_path_buf)
        .unwrap_or_default();
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir.pop();
    }
    let path = dir.join(name);
    anyhow::ensure!(
        path.exists(),
        "no {name} binary at {} (build the workspace first: cargo build --workspace)",
        path.display()
    );
    Ok(path)
}
