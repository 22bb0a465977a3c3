//! `ironlb check` end to end: the real binary on real files.

use std::process::Command;

fn check(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ironlb"))
        .arg("check")
        .args(args)
        .output()
        .expect("ironlb runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> String {
    let path = dir.path().join(name);
    std::fs::write(&path, text).expect("write test file");
    path.display().to_string()
}

#[test]
fn the_example_configuration_allocates_every_service() {
    let (code, stdout, stderr) = check(&["--config", "examples/standalone"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stdout.contains("default/legacy-ftp  fixed   198.51.100.15"),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "default/dns-udp     public  192.0.2.2               shared under its sharing key"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains("shop/checkout       gold    203.0.113.0"),
        "{stdout}"
    );
    assert!(stdout.contains("2001:db8:1::,192.0.2.1"), "{stdout}");
}

#[test]
fn json_output_lists_services_and_pool_counts() {
    let (code, stdout, _) = check(&["--config", "examples/standalone", "-o", "json"]);
    assert_eq!(code, 0);
    #[derive(serde::Deserialize)]
    struct Counts {
        total: u128,
        available: u128,
    }
    #[derive(serde::Deserialize)]
    struct Pool {
        ipv4: Counts,
        ipv6: Counts,
    }
    #[derive(serde::Deserialize)]
    struct Report {
        services: Vec<serde_json::Value>,
        pools: std::collections::BTreeMap<String, Pool>,
    }
    let r: Report = serde_json::from_str(&stdout).expect("json");
    assert_eq!(r.services.len(), 6);
    assert_eq!(r.services[0]["service"], "default/legacy-ftp");
    assert_eq!(r.services[0]["addresses"][0], "198.51.100.15");
    assert_eq!(r.pools["public"].ipv4.total, 254);
    // An IPv6 /64 counts exactly, beyond what 64 bits hold.
    assert_eq!(r.pools["public"].ipv6.total, 1u128 << 64);
    assert_eq!(r.pools["public"].ipv6.available, (1u128 << 64) - 1);
}

#[test]
fn an_invalid_configuration_names_file_document_object_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        &dir,
        "pools.yaml",
        "apiVersion: ironlb.io/v1beta1\nkind: IPAddressPool\nmetadata:\n  name: public\nspec:\n  addresses:\n  - 192.0.2.0/28\n  - 192.0.2.10-192.0.2.1\n",
    );
    let (code, stdout, stderr) = check(&["--config", &file]);
    assert_eq!(code, 2, "{stdout}{stderr}");
    assert!(
        stderr.contains("(document 1): IPAddressPool/public: spec.addresses[1]: \"192.0.2.10-192.0.2.1\": range start is after its end"),
        "{stderr}"
    );
    assert!(
        stderr.contains("the configuration is invalid (1 error)"),
        "{stderr}"
    );
}

#[test]
fn a_service_without_an_address_fails_the_check_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    write(
        &dir,
        "a.yaml",
        "apiVersion: ironlb.io/v1beta1\nkind: IPAddressPool\nmetadata:\n  name: tiny\nspec:\n  addresses: [192.0.2.7/32]\n",
    );
    write(
        &dir,
        "b.yaml",
        "apiVersion: v1\nkind: Service\nmetadata: {name: one}\nspec: {type: LoadBalancer}\n---\napiVersion: v1\nkind: Service\nmetadata: {name: two}\nspec: {type: LoadBalancer}\n",
    );
    let (code, stdout, _) = check(&["--config", &dir.path().display().to_string()]);
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.contains("default/one  tiny  192.0.2.7"), "{stdout}");
    assert!(
        stdout.contains("default/two  -     <none>     pool tiny is full (1/1)"),
        "{stdout}"
    );
}

#[test]
fn a_missing_path_is_an_error() {
    let (code, _, stderr) = check(&["--config", "/nonexistent/ironlb"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("/nonexistent/ironlb"), "{stderr}");
}

#[test]
fn service_selectors_of_advertisements_are_checked_like_every_selector() {
    let dir = tempfile::tempdir().unwrap();
    let pool = "apiVersion: ironlb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: public}\nspec: {addresses: [192.0.2.0/24]}\n";
    let good = write(
        &dir,
        "good.yaml",
        &format!(
            "{pool}---\napiVersion: ironlb.io/v1beta1\nkind: L2Advertisement\nmetadata: {{name: web}}\nspec: {{serviceSelectors: [{{matchLabels: {{app: web}}}}]}}\n---\napiVersion: ironlb.io/v1beta1\nkind: BGPAdvertisement\nmetadata: {{name: api}}\nspec: {{serviceSelectors: [{{matchExpressions: [{{key: app, operator: Exists}}]}}]}}\n"
        ),
    );
    let (code, stdout, stderr) = check(&["--config", &good]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let bad = write(
        &dir,
        "bad.yaml",
        &format!(
            "{pool}---\napiVersion: ironlb.io/v1beta1\nkind: BGPAdvertisement\nmetadata: {{name: api}}\nspec: {{aggregationLength: 24, serviceSelectors: [{{matchLabels: {{app: -web}}}}]}}\n"
        ),
    );
    let (code, stdout, stderr) = check(&["--config", &bad]);
    assert_eq!(code, 2, "{stdout}{stderr}");
    assert!(
        stderr.contains("(document 2): BGPAdvertisement/api: spec.aggregationLength: 24: must be 32 (the default) with serviceSelectors"),
        "{stderr}"
    );
    assert!(
        stderr.contains("(document 2): BGPAdvertisement/api: spec.serviceSelectors[0].matchLabels[\"app\"]: \"-web\" is not a valid label value"),
        "{stderr}"
    );
}
