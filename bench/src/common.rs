//! What the scenarios share: building the binary under test and finding the baselines.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{anyhow, bail, ensure, Context, Result};
use serde_json::Value;

/// Builds the release `ironlb` binary with the cargo that runs this benchmark and returns its
/// path (taken from cargo's own report, so a custom target directory is honoured); or returns
/// `IRONLB_BENCH_BINARY`, when set, as it is: a binary built earlier, so a long run measures a
/// fixed build while the tree changes.
pub fn build_release_binary() -> Result<PathBuf> {
    if let Some(bin) = std::env::var_os("IRONLB_BENCH_BINARY") {
        let bin = PathBuf::from(bin);
        ensure!(
            bin.is_file(),
            "IRONLB_BENCH_BINARY={} is no file",
            bin.display()
        );
        eprintln!("[bench] using {} (IRONLB_BENCH_BINARY)", bin.display());
        return Ok(bin);
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| env!("CARGO").into());
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("the bench crate lives inside the workspace")?;
    eprintln!("[bench] building the release ironlb binary");
    let mut build = Command::new(cargo);
    // `cargo run` hands this process the variables it sets for a run (CARGO_PKG_NAME,
    // CARGO_MANIFEST_DIR, ...). Build scripts such as ring's declare them with
    // rerun-if-env-changed, so passing them on made this build re-run those scripts and rebuild
    // everything above them, and the next plain `cargo build` rebuild it all back.
    for (name, _) in std::env::vars_os() {
        if name.to_str().is_some_and(set_by_cargo_for_a_run) {
            build.env_remove(&name);
        }
    }
    let out = build
        .current_dir(root)
        // Selecting the bench crate too unifies features as `cargo run -p ironlb-bench` does,
        // so this build does not undo that one (and the next run rebuild everything again).
        .args([
            "build",
            "--release",
            "-p",
            "ironlb-bench",
            "-p",
            "ironlb",
            "--bin",
            "ironlb",
        ])
        .arg("--message-format=json-render-diagnostics")
        .stderr(Stdio::inherit())
        .output()
        .context("running cargo build")?;
    ensure!(
        out.status.success(),
        "cargo build --release -p ironlb failed ({})",
        out.status
    );
    let text = String::from_utf8_lossy(&out.stdout);
    for line in text.lines() {
        let Ok(msg) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let is_bin = msg["reason"] == "compiler-artifact"
            && msg["target"]["name"] == "ironlb"
            && msg["target"]["kind"]
                .as_array()
                .is_some_and(|k| k.iter().any(|k| k == "bin"));
        if let (true, Some(exe)) = (is_bin, msg["executable"].as_str()) {
            return Ok(PathBuf::from(exe));
        }
    }
    bail!("cargo build did not report the ironlb executable")
}

/// Whether `name` is a variable cargo sets for the program it runs, rather than one of the
/// user's settings (CARGO_HOME, CARGO_TARGET_DIR, CARGO_BUILD_*, CARGO_PROFILE_*, ...).
fn set_by_cargo_for_a_run(name: &str) -> bool {
    const USER: [&str; 12] = [
        "CARGO_HOME",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_",
        "CARGO_PROFILE_",
        "CARGO_INCREMENTAL",
        "CARGO_NET_",
        "CARGO_HTTP_",
        "CARGO_REGISTRIES_",
        "CARGO_REGISTRY_",
        "CARGO_TERM_",
        "CARGO_ALIAS_",
        "CARGO_LOG",
    ];
    name == "OUT_DIR" || name.starts_with("CARGO_") && !USER.iter().any(|u| name.starts_with(u))
}

/// The first `name` on `PATH`.
pub fn which(name: &str) -> Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .ok_or_else(|| anyhow!("{name} not found on PATH"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_cargo_sets_for_a_run_is_dropped_and_the_users_settings_kept() {
        for run in [
            "CARGO_PKG_NAME",
            "CARGO_MANIFEST_DIR",
            "CARGO_CRATE_NAME",
            "CARGO_PRIMARY_PACKAGE",
            "OUT_DIR",
        ] {
            assert!(set_by_cargo_for_a_run(run), "{run}");
        }
        for user in [
            "CARGO_HOME",
            "CARGO_TARGET_DIR",
            "CARGO_BUILD_JOBS",
            "CARGO_PROFILE_RELEASE_DEBUG",
            "PATH",
            "RUST_LOG",
        ] {
            assert!(!set_by_cargo_for_a_run(user), "{user}");
        }
    }
}
