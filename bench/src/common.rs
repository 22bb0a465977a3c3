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

/// `x` rounded to two decimals (as benchmarks report it).
pub fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// `x` rounded to three decimals.
pub fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// A multi-threaded tokio runtime for a scenario.
pub fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")
}

/// etcd's binary for a baseline, or `None` when the baseline is skipped (`--no-baseline`).
pub fn etcd_binary(skip: bool) -> Result<Option<PathBuf>> {
    if skip {
        return Ok(None);
    }
    which("etcd")
        .context("etcd (Debian package etcd-server) is not installed; or --no-baseline")
        .map(Some)
}

/// The first `name` on `PATH`.
pub fn which(name: &str) -> Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .ok_or_else(|| anyhow!("{name} not found on PATH"))
}

/// What `/proc` says of one process at one instant: CPU time spent so far and memory.
#[derive(Debug, Clone, Copy)]
pub struct ProcStat {
    /// User plus system CPU time, seconds.
    pub cpu_s: f64,
    /// Resident set now, bytes.
    pub rss_bytes: u64,
    /// Peak resident set, bytes.
    pub hwm_bytes: u64,
    /// When it was read.
    pub at: std::time::Instant,
}

/// Clock ticks per second of `/proc/<pid>/stat`'s times: USER_HZ, 100 on every Linux
/// architecture this runs on (the kernel fixes it for user space).
const USER_HZ: f64 = 100.0;

impl ProcStat {
    /// Reads `/proc/<pid>/stat` and `/proc/<pid>/status`.
    pub fn read(pid: u32) -> Result<ProcStat> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .with_context(|| format!("reading /proc/{pid}/stat"))?;
        // The command name may hold spaces and parentheses; the fields after its closing
        // parenthesis are fixed: state is field 3, utime 14, stime 15.
        let rest = stat
            .rsplit_once(')')
            .map(|(_, r)| r)
            .context("no ')' in /proc/<pid>/stat")?;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let tick = |i: usize| -> Result<f64> {
            fields
                .get(i - 3)
                .and_then(|v| v.parse::<f64>().ok())
                .with_context(|| format!("/proc/{pid}/stat field {i}"))
        };
        let cpu_s = (tick(14)? + tick(15)?) / USER_HZ;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .with_context(|| format!("reading /proc/{pid}/status"))?;
        let kb = |key: &str| -> u64 {
            status
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        Ok(ProcStat {
            cpu_s,
            rss_bytes: kb("VmRSS:") * 1024,
            hwm_bytes: kb("VmHWM:") * 1024,
            at: std::time::Instant::now(),
        })
    }

    /// This process's own figures.
    pub fn this() -> Result<ProcStat> {
        ProcStat::read(std::process::id())
    }

    /// The leader's, each follower's and this process's figures, read one after the other.
    pub fn cluster(leader: u32, followers: &[u32]) -> Result<(ProcStat, Vec<ProcStat>, ProcStat)> {
        Ok((
            ProcStat::read(leader)?,
            followers
                .iter()
                .map(|p| ProcStat::read(*p))
                .collect::<Result<Vec<_>>>()?,
            ProcStat::this()?,
        ))
    }

    /// CPU seconds spent between `earlier` and `self`.
    pub fn cpu_since(&self, earlier: &ProcStat) -> f64 {
        self.cpu_s - earlier.cpu_s
    }

    /// Cores used on average between `earlier` and `self`.
    pub fn cores_since(&self, earlier: &ProcStat) -> f64 {
        let wall = self.at.duration_since(earlier.at).as_secs_f64();
        if wall > 0.0 {
            self.cpu_since(earlier) / wall
        } else {
            0.0
        }
    }
}

/// Median, minimum and maximum of a sample, for the `[min-max]` spreads the README reports.
pub fn spread(values: &[f64]) -> Value {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return serde_json::json!(null);
    }
    let median = if v.len() % 2 == 1 {
        v[v.len() / 2]
    } else {
        (v[v.len() / 2 - 1] + v[v.len() / 2]) / 2.0
    };
    serde_json::json!({"median": median, "min": v[0], "max": v[v.len() - 1], "runs": v.len()})
}

/// The `q`-quantile (0..=1) of sorted durations, milliseconds.
pub fn quantile_ms(sorted: &[std::time::Duration], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[i.min(sorted.len() - 1)].as_secs_f64() * 1000.0
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

    #[test]
    fn this_process_uses_cpu_and_memory() {
        let before = ProcStat::this().unwrap();
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        let after = ProcStat::this().unwrap();
        assert!(after.rss_bytes > 0 && after.hwm_bytes >= after.rss_bytes);
        assert!(after.cpu_since(&before) >= 0.0);
    }

    #[test]
    fn spread_and_quantiles() {
        let s = spread(&[3.0, 1.0, 2.0]);
        assert_eq!(s["median"], 2.0);
        assert_eq!(s["min"], 1.0);
        assert_eq!(s["max"], 3.0);
        let d: Vec<_> = (1..=100).map(std::time::Duration::from_millis).collect();
        assert_eq!(quantile_ms(&d, 0.99), 99.0);
        assert_eq!(quantile_ms(&d, 0.0), 1.0);
    }
}
