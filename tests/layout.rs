//! The shape of the workspace: a production build carries no test equipment, and no source
//! file is longer than a reader can hold (800 lines).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

/// What only tests, benchmarks and the demo may link.
const TEST_EQUIPMENT: &[&str] = &["ironlb-lab", "tempfile", "proptest", "criterion"];

fn normal_tree(features: &[&str]) -> String {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(cargo)
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")))
        .args([
            "tree",
            "--offline",
            "-e",
            "normal",
            "-p",
            "ironlb",
            "--prefix",
            "none",
        ])
        .args(features)
        .output()
        .expect("running cargo tree");
    assert!(
        out.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn crates(tree: &str) -> Vec<&str> {
    tree.lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect()
}

#[test]
fn the_binary_without_the_demo_feature_links_no_test_equipment() {
    let tree = normal_tree(&["--no-default-features"]);
    let linked = crates(&tree);
    assert!(linked.contains(&"ironlb-core"), "{tree}");
    for name in TEST_EQUIPMENT {
        assert!(!linked.contains(name), "{name} is linked:\n{tree}");
    }
}

#[test]
fn the_demo_feature_is_what_brings_the_lab_in() {
    let linked = normal_tree(&[]);
    assert!(crates(&linked).contains(&"ironlb-lab"), "{linked}");
}

/// Every Rust source file of the workspace (the fuzz crate included), relative to the root.
fn sources(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let path = e.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if path.is_dir() {
            if name != "target" && !name.starts_with('.') {
                sources(&path, out);
            }
        } else if name.ends_with(".rs") {
            out.push(path);
        }
    }
}

#[test]
fn no_source_file_is_longer_than_800_lines() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for dir in ["src", "core", "lab", "bench", "jepsen", "tests", "fuzz"] {
        sources(&root.join(dir), &mut files);
    }
    assert!(files.len() > 100, "{} files", files.len());
    let long: Vec<String> = files
        .iter()
        .filter_map(|f| {
            let lines = std::fs::read_to_string(f).unwrap().lines().count();
            (lines > 800).then(|| format!("{}: {lines}", f.strip_prefix(root).unwrap().display()))
        })
        .collect();
    assert!(long.is_empty(), "split these: {long:?}");
}

/// Every dependency's resolved features when building `packages` together.
fn resolved(packages: &[&str]) -> std::collections::BTreeSet<String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(Path::new(env!("CARGO_MANIFEST_DIR")))
        .args([
            "tree",
            "--offline",
            "-e",
            "features,normal",
            "--prefix",
            "none",
        ])
        .args(["--target", "all", "-f", "{p} [{f}]"]);
    for p in packages {
        cmd.args(["-p", p]);
    }
    let out = cmd.output().expect("running cargo tree");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter(|l| l.contains(" v") && !l.starts_with("ironlb"))
        .map(|l| l.trim_end_matches(" (*)").to_string())
        .collect()
}

/// `cargo run --release -p ironlb-bench` and the binary the benchmark builds beside it
/// (`-p ironlb-bench -p ironlb`) resolve every shared dependency with the same features, so
/// neither build undoes the other.
#[test]
fn the_benchmark_and_the_binary_build_their_dependencies_alike() {
    let alone = resolved(&["ironlb-bench"]);
    let together = resolved(&["ironlb-bench", "ironlb"]);
    let differ: Vec<&String> = alone.symmetric_difference(&together).collect();
    assert!(differ.is_empty(), "features differ: {differ:#?}");
}

/// Every function longer than 80 lines, as `path:name` with its length: from its signature's
/// line to the closing brace at the signature's indentation.
fn long_functions(root: &Path, files: &[std::path::PathBuf]) -> BTreeMap<String, usize> {
    let mut long = BTreeMap::new();
    for file in files {
        let text = std::fs::read_to_string(file).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let rel = file.strip_prefix(root).unwrap().display().to_string();
        for (i, line) in lines.iter().enumerate() {
            let body = line.trim_start();
            let indent = &line[..line.len() - body.len()];
            let mut rest = body;
            for vis in ["pub(crate) ", "pub(super) ", "pub "] {
                if let Some(r) = rest.strip_prefix(vis) {
                    rest = r;
                    break;
                }
            }
            for qualifier in ["const ", "async ", "unsafe "] {
                rest = rest.strip_prefix(qualifier).unwrap_or(rest);
            }
            let Some(rest) = rest.strip_prefix("fn ") else {
                continue;
            };
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            // The signature ends where the body opens; a `;` means there is no body.
            let Some(open) = (i..lines.len()).find(|j| {
                let t = lines[*j].trim_end();
                t.ends_with('{') || t.ends_with(';') || (*j == i && t.ends_with('}'))
            }) else {
                continue;
            };
            if !lines[open].trim_end().ends_with('{') {
                continue;
            }
            let close = format!("{indent}}}");
            if let Some(end) = (open + 1..lines.len()).find(|j| lines[*j] == close) {
                let n = end - i + 1;
                if n > 80 {
                    long.insert(format!("{rel}:{name}"), n);
                }
            }
        }
    }
    long
}

/// No function is longer than 80 lines unless `tests/long_functions.txt` lists it with why; a
/// listed function that got shorter must come off the list.
#[test]
fn every_long_function_is_listed_with_why() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for dir in ["src", "core", "lab", "bench", "jepsen", "tests", "fuzz"] {
        sources(&root.join(dir), &mut files);
    }
    let long = long_functions(root, &files);
    let list = std::fs::read_to_string(root.join("tests/long_functions.txt")).unwrap();
    let listed: BTreeMap<&str, &str> = list
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| l.split_once("  ").unwrap_or((l, "")))
        .collect();
    let unlisted: Vec<String> = long
        .iter()
        .filter(|(k, _)| !listed.contains_key(k.as_str()))
        .map(|(k, n)| format!("{k} ({n} lines)"))
        .collect();
    let stale: Vec<&&str> = listed.keys().filter(|k| !long.contains_key(**k)).collect();
    let no_reason: Vec<&&str> = listed
        .iter()
        .filter(|(_, why)| why.trim().is_empty())
        .map(|(k, _)| k)
        .collect();
    assert!(
        unlisted.is_empty() && stale.is_empty() && no_reason.is_empty(),
        "over 80 lines and not listed (split them): {unlisted:#?}\n\
         listed but no longer long (take them off): {stale:#?}\nlisted without why: {no_reason:#?}"
    );
}

/// The layers, from the bottom: a module may use those below it, never those above. `ipam` is
/// pure logic (no I/O, no runtime); the packet and session code in `net` knows nothing of the
/// configuration or of who runs it; the protocol cores in `announce` know no process.
#[test]
fn lower_layers_do_not_reach_up() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("core/src");
    let rules: [(&str, &[&str]); 3] = [
        (
            "ipam",
            &[
                "tokio::",
                "std::fs",
                "std::net::Tcp",
                "std::net::Udp",
                "crate::raft",
                "crate::net",
                "crate::k8s",
                "crate::api",
                "crate::speaker",
                "crate::controller",
                "crate::announce",
                "crate::actors",
            ],
        ),
        (
            "net",
            &[
                "crate::config",
                "crate::announce",
                "crate::ipam",
                "crate::raft",
                "crate::k8s",
                "crate::api",
                "crate::speaker",
                "crate::controller",
                "crate::actors",
            ],
        ),
        (
            "announce",
            &[
                "crate::k8s",
                "crate::api",
                "crate::speaker",
                "crate::controller",
                "crate::actors",
            ],
        ),
    ];
    let mut found = Vec::new();
    for (module, forbidden) in rules {
        let mut files = Vec::new();
        sources(&root.join(module), &mut files);
        assert!(!files.is_empty(), "{module}");
        for f in files {
            let text = std::fs::read_to_string(&f).unwrap();
            for (n, line) in text.lines().enumerate() {
                let code = line.split("//").next().unwrap_or("");
                for word in forbidden {
                    // `tokio::time::Instant` is a clock value passed in, not I/O.
                    if code.contains(word) && !code.contains("tokio::time::Instant") {
                        found.push(format!("{}:{}: {word}", f.display(), n + 1));
                    }
                }
            }
        }
    }
    assert!(found.is_empty(), "layering broken: {found:#?}");
}
