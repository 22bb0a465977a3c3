//! MetalLB's documented examples (`fixtures/metallb-examples/`: the YAML of MetalLB's website
//! configuration pages and its `configsamples/`) go through `ironlb migrate` and then through
//! what `ironlb check` runs (validation, then [`ironlb::check::check`]).
//!
//! Each fixture starts with a header: `# Source:` names the file in MetalLB's repository,
//! `# expect: ok` or `# expect: refused: TEXT` says the outcome (a refusal's reason is in the
//! header), and one `# expect-warning: TEXT` per warning migrate gives (every warning must be
//! listed, and every listed one given). Documents after a `# Context, not part of MetalLB's
//! example:` comment are what the example refers to (a pool defined earlier on the page).

use std::path::{Path, PathBuf};

use ironlb::config::{validate, Documents};
use ironlb::k8s::migrate::migrate;
use serde_yaml::Value;

const DIR: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/metallb-examples"
);

/// The YAML blocks of the four configuration pages (10 + 15 + 5 + 10) and the 18 configsamples.
const EXAMPLES: usize = 58;

struct Header {
    source: String,
    refused: Option<String>,
    warnings: Vec<String>,
}

fn header(path: &Path, text: &str) -> Header {
    let mut source = None;
    let mut expect = None;
    let mut warnings = Vec::new();
    for line in text.lines().take_while(|l| l.starts_with('#')) {
        if let Some(s) = line.strip_prefix("# Source: ") {
            source = Some(s.to_owned());
        } else if let Some(e) = line.strip_prefix("# expect: ") {
            expect = Some(e.to_owned());
        } else if let Some(w) = line.strip_prefix("# expect-warning: ") {
            warnings.push(w.to_owned());
        }
    }
    let source = source.unwrap_or_else(|| panic!("{}: no `# Source:` line", path.display()));
    assert!(
        source.starts_with("metallb/metallb@"),
        "{}: {source}",
        path.display()
    );
    let expect = expect.unwrap_or_else(|| panic!("{}: no `# expect:` line", path.display()));
    let refused = match expect.as_str() {
        "ok" => None,
        e => Some(
            e.strip_prefix("refused: ")
                .unwrap_or_else(|| panic!("{}: bad expect {e:?}", path.display()))
                .to_owned(),
        ),
    };
    Header {
        source,
        refused,
        warnings,
    }
}

/// The Services and Namespaces of the fixture, as `ironlb check` reads them (migrate leaves
/// them as they are).
fn services_and_namespaces(text: &str) -> String {
    let mut out = String::new();
    for doc in serde_yaml::Deserializer::from_str(text) {
        let v: Value = serde::Deserialize::deserialize(doc).expect("fixture parses");
        let kind = v.get("kind").and_then(Value::as_str).unwrap_or("");
        if v.get("apiVersion").and_then(Value::as_str) == Some("v1")
            && (kind == "Service" || kind == "Namespace")
        {
            out.push_str("---\n");
            out.push_str(&serde_yaml::to_string(&v).expect("renders"));
        }
    }
    out
}

/// Migrates a fixture and checks it; returns every problem and every warning.
fn migrate_and_check(path: &Path, text: &str) -> (Vec<String>, Vec<String>) {
    let m = migrate(text, "ironlb-system").expect("fixture is YAML");
    let mut problems: Vec<String> = m.refusals().map(ToString::to_string).collect();
    let warnings: Vec<String> = m.warnings().map(ToString::to_string).collect();
    let mut yaml = m.to_yaml().expect("renders");
    yaml.push_str(&services_and_namespaces(text));
    let name = path
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let loaded = Documents::from_str(&yaml, &name);
    problems.extend(loaded.errors.iter().map(ToString::to_string));
    match validate(&loaded.documents) {
        Err(errors) => problems.extend(errors.iter().map(ToString::to_string)),
        Ok(config) => {
            let report = ironlb::check::check(&loaded.documents, &config).expect("pools install");
            problems.extend(report.errors.iter().map(ToString::to_string));
            problems.extend(
                report
                    .held
                    .iter()
                    .filter(|h| h.outcome.is_err())
                    .map(ToString::to_string),
            );
            problems.extend(
                report
                    .results
                    .iter()
                    .filter(|e| e.outcome.is_err())
                    .map(ToString::to_string),
            );
        }
    }
    (problems, warnings)
}

fn fixtures() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(DIR)
        .expect("fixture directory")
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

#[test]
fn metallbs_documented_examples_migrate_and_pass_check() {
    let files = fixtures();
    assert_eq!(files.len(), EXAMPLES, "one fixture per documented example");
    let mut failures = Vec::new();
    let (mut ok, mut refused, mut warned) = (0, 0, 0);
    for path in &files {
        let text = std::fs::read_to_string(path).expect("fixture reads");
        let h = header(path, &text);
        let (problems, warnings) = migrate_and_check(path, &text);
        let name = path.display();
        match &h.refused {
            None if problems.is_empty() => ok += 1,
            None => failures.push(format!("{name} ({}): {problems:#?}", h.source)),
            Some(why) if problems.iter().any(|p| p.contains(why.as_str())) => refused += 1,
            Some(why) => failures.push(format!(
                "{name}: expected a refusal containing {why:?}, got {problems:#?}"
            )),
        }
        for w in &warnings {
            if !h.warnings.iter().any(|e| w.contains(e.as_str())) {
                failures.push(format!("{name}: warning not in the header: {w}"));
            }
        }
        for e in &h.warnings {
            if !warnings.iter().any(|w| w.contains(e.as_str())) {
                failures.push(format!("{name}: expected warning {e:?}, got {warnings:#?}"));
            }
        }
        warned += usize::from(!warnings.is_empty());
    }
    println!(
        "{} examples: {ok} pass, {refused} refused as their headers say, {warned} with warnings",
        files.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
