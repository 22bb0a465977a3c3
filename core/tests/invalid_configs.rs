//! Invalid configurations, one YAML file each in `fixtures/invalid/`: the file's leading
//! comments name the case (`# <what is wrong>`) and every error it must give, in order
//! (`# error: <as displayed>`); the documents follow. Validation must give exactly those errors,
//! each naming the file (read as `t.yaml`), the document, the object and the field.
//!
//! To add a case, add a file: nothing else lists them.

use std::path::{Path, PathBuf};

use ironlb::config::{validate, ConfigError, Documents};

fn cases() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/invalid");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

/// Every error loading and validating `yaml` gives, as displayed, in the order of the documents.
fn errors(yaml: &str) -> Vec<String> {
    let loaded = Documents::from_str(yaml, "t.yaml");
    let mut errors: Vec<ConfigError> = loaded.errors;
    if let Err(more) = validate(&loaded.documents) {
        errors.extend(more.iter().cloned());
    }
    errors.sort_by(|a, b| a.origin.cmp(&b.origin));
    errors.iter().map(|e| e.to_string()).collect()
}

#[test]
fn every_invalid_configuration_gives_exactly_its_errors() {
    let files = cases();
    assert!(files.len() >= 50, "{} cases", files.len());
    let mut failures = Vec::new();
    for path in &files {
        let text = std::fs::read_to_string(path).unwrap();
        let want: Vec<&str> = text
            .lines()
            .take_while(|l| l.starts_with('#'))
            .filter_map(|l| l.strip_prefix("# error: "))
            .collect();
        let name = path.file_name().unwrap().to_string_lossy();
        if want.is_empty() {
            failures.push(format!("{name}: names no error"));
            continue;
        }
        let got = errors(&text);
        if got != want {
            failures.push(format!(
                "{name}:\n want:\n  {}\n got:\n  {}",
                want.join("\n  "),
                got.join("\n  ")
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        files.len(),
        failures.join("\n")
    );
}
