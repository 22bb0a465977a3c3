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

/// A pool and Services; `services` are Service documents (with their status).
fn held_config(dir: &tempfile::TempDir, services: &str) -> String {
    write(
        dir,
        "config.yaml",
        &format!(
            "apiVersion: ironlb.io/v1beta1\nkind: IPAddressPool\nmetadata: {{name: public}}\nspec: {{addresses: [192.0.2.0/24]}}\n{services}"
        ),
    )
}

/// A LoadBalancer Service named `name` on TCP `port`, holding `held` in its status;
/// `annotations` is a YAML flow mapping.
fn held_service(name: &str, port: u16, held: &str, annotations: &str) -> String {
    let status = if held.is_empty() {
        String::new()
    } else {
        format!("status: {{loadBalancer: {{ingress: [{{ip: {held}}}]}}}}\n")
    };
    format!(
        "---\napiVersion: v1\nkind: Service\nmetadata: {{name: {name}, annotations: {annotations}}}\nspec: {{type: LoadBalancer, ports: [{{port: {port}}}]}}\n{status}"
    )
}

#[test]
fn a_service_holding_an_address_keeps_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = held_config(
        &dir,
        &(held_service("web", 80, "192.0.2.77", "{}") + &held_service("api", 80, "", "{}")),
    );
    let (code, stdout, stderr) = check(&["--config", &file]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    // Kept, not the pool's first address; the new Service gets the first.
    assert!(
        stdout.contains("default/web  public  192.0.2.77  already held"),
        "{stdout}"
    );
    assert!(
        stdout.contains("default/api  public  192.0.2.0"),
        "{stdout}"
    );
    let (code, stdout, _) = check(&["--config", &file, "-o", "json"]);
    assert_eq!(code, 0, "{stdout}");
    let report: serde_json::Value = serde_json::from_str(&stdout).expect("json");
    assert_eq!(report["held"][0]["service"], "default/web");
    assert_eq!(report["held"][0]["addresses"][0], "192.0.2.77");
    assert_eq!(report["held"][0]["kept"], true);
}

#[test]
fn a_new_service_asking_for_a_held_address_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    // "a-new" sorts first, but the held address stays with the Service holding it.
    let file = held_config(
        &dir,
        &(held_service("z-old", 80, "192.0.2.77", "{}")
            + &held_service("a-new", 80, "", "{metallb.io/loadBalancerIPs: 192.0.2.77}")),
    );
    let (code, stdout, stderr) = check(&["--config", &file]);
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(
        stdout.contains("default/z-old  public  192.0.2.77  already held"),
        "{stdout}"
    );
    let line = stdout
        .lines()
        .find(|l| l.starts_with("default/a-new"))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(
        line.contains("<none>") && line.contains("192.0.2.77") && line.contains("default/z-old"),
        "{line}"
    );
}

#[test]
fn a_held_address_outside_every_pool_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let file = held_config(&dir, &held_service("web", 80, "203.0.113.9", "{}"));
    let (code, stdout, stderr) = check(&["--config", &file]);
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(
        stdout.contains(
            "default/web: status.loadBalancer.ingress: holds 203.0.113.9, which ironlb cannot keep: 203.0.113.9"
        ),
        "{stdout}"
    );
    assert!(stdout.contains("is not in any pool"), "{stdout}");
    // It would move to a pool address, as the reconciler would move it.
    assert!(
        stdout.contains("default/web  public  192.0.2.0"),
        "{stdout}"
    );
}

#[test]
fn a_changed_sharing_key_or_a_port_clash_moves_one_sharer() {
    let dir = tempfile::tempdir().unwrap();
    let shared = "{metallb.io/allow-shared-ip: k}";
    // Both held 192.0.2.77 under key k; dns now has another key.
    let file = held_config(
        &dir,
        &(held_service(
            "dns",
            53,
            "192.0.2.77",
            "{metallb.io/allow-shared-ip: other}",
        ) + &held_service("web", 80, "192.0.2.77", shared)),
    );
    let (code, stdout, stderr) = check(&["--config", &file]);
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(
        stdout.contains("default/dns  public  192.0.2.77  already held"),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "default/web: status.loadBalancer.ingress: holds 192.0.2.77, which ironlb cannot keep"
        ),
        "{stdout}"
    );
    // Same key, but both on port 80 now.
    let file = held_config(
        &dir,
        &(held_service("dns", 80, "192.0.2.77", shared)
            + &held_service("web", 80, "192.0.2.77", shared)),
    );
    let (code, stdout, _) = check(&["--config", &file]);
    assert_eq!(code, 1, "{stdout}");
    assert!(
        stdout.contains("default/web: status.loadBalancer.ingress: holds 192.0.2.77"),
        "{stdout}"
    );
    // Same key, different ports: both keep it.
    let file = held_config(
        &dir,
        &(held_service("dns", 53, "192.0.2.77", shared)
            + &held_service("web", 80, "192.0.2.77", shared)),
    );
    let (code, stdout, _) = check(&["--config", &file]);
    assert_eq!(code, 0, "{stdout}");
}

#[test]
fn a_status_entry_that_is_not_an_address_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let file = held_config(&dir, &held_service("web", 80, "banana", "{}"));
    let (code, stdout, stderr) = check(&["--config", &file]);
    assert_eq!(code, 2, "{stdout}{stderr}");
    assert!(
        stderr.contains(
            "Service/default/web: status.loadBalancer.ingress[0].ip: \"banana\" is not an IP address"
        ),
        "{stderr}"
    );
}
