//! `ironlb migrate`: MetalLB configuration in, ironlb configuration out, validated.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use ironlb::config::Documents;
use ironlb::k8s::migrate::{migrate, Converted};

/// Converts the files, prints the objects, and validates them as a whole. Converted and
/// dropped fields are warned about on stderr; exits 2 if a field is refused or the objects do
/// not form a valid configuration (every error is printed, naming object and field).
pub fn run(files: &[PathBuf], namespace: &str) -> Result<ExitCode> {
    let mut out = String::new();
    let mut errors: Vec<String> = Vec::new();
    for f in files {
        let text = if f.as_os_str() == "-" {
            let mut s = String::new();
            std::io::stdin().read_to_string(&mut s)?;
            s
        } else {
            std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?
        };
        let migrated =
            migrate(&text, namespace).with_context(|| format!("migrating {}", f.display()))?;
        for d in &migrated.documents {
            if let Converted::Skipped(why) = d {
                eprintln!("{}: skipped {why}", f.display());
            }
        }
        for note in migrated.warnings() {
            eprintln!("{}: warning: {note}", f.display());
        }
        errors.extend(migrated.refusals().map(|n| format!("{}: {n}", f.display())));
        out.push_str(&migrated.to_yaml()?);
    }
    print!("{out}");
    let loaded = Documents::from_str(&out, "migrated");
    errors.extend(loaded.errors.iter().map(|e| e.to_string()));
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
