//! The shape of the workspace: a production build carries no test equipment.

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
