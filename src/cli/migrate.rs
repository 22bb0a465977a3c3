//! `ironlb migrate`: MetalLB configuration in, ironlb configuration out, validated.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use ironlb::config::Documents;
use ironlb::k8s::migrate::{convert, Converted};

/// Converts the files, prints the objects, and validates them as a whole; exits 2 if they do
/// not form a valid configuration (every error is printed, naming object and field).
pub fn run(files: &[PathBuf], namespace: &str) -> Result<ExitCode> {
    let mut out = String::new();
    for f in files {
        let text = if f.as_os_str() == "-" {
            let mut s = String::new();
            std::io::stdin().read_to_string(&mut s)?;
            s
        } else {
            std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?
        };
        for c in convert(&text, namespace).with_context(|| format!("parsing {}", f.display()))? {
            match c {
                Converted::Object(v) => {
                    out.push_str("---\n");
                    out.push_str(&serde_yaml::to_string(&v)?);
                }
                Converted::Skipped(why) => eprintln!("{}: skipped {why}", f.display()),
            }
        }
    }
    print!("{out}");
    let loaded = Documents::from_str(&out, "migrated");
    let mut errors: Vec<String> = loaded.errors.iter().map(|e| e.to_string()).collect();
    if let Err(more) = ironlb::config::validate(&loaded.documents) {
        errors.extend(more.iter().map(|e| e.to_string()));
    }
    if errors.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    eprintln!("the migrated configuration is not valid for ironlb:");
    for e in errors {
        eprintln!("  {e}");
    }
    Ok(ExitCode::from(2))
}
