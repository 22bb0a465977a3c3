//! The deployment: `deploy/base/crds.yaml` is what `ironlb crds` prints; every manifest passes
//! `kubernetes-validate --strict`; every custom resource in deploy/ and examples/ validates
//! against the generated CRD schemas; the Dockerfile is clean for hadolint; and `ironlb
//! migrate` turns the MetalLB example into a valid ironlb configuration.

use std::path::{Path, PathBuf};
use std::process::Command;

use ironlb_lab::netns;
use serde_json::Value;

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_ironlb"))
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn yaml_docs(text: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(text)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .filter(|v: &Value| !v.is_null())
        .collect()
}

fn files(dir: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(root().join(dir))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    out.sort();
    out
}

#[test]
fn deploy_crds_yaml_is_what_ironlb_crds_prints() {
    let out = Command::new(bin()).arg("crds").output().unwrap();
    assert!(out.status.success());
    let printed = String::from_utf8(out.stdout).unwrap();
    let file = std::fs::read_to_string(root().join("deploy/base/crds.yaml")).unwrap();
    assert!(
        printed == file,
        "deploy/base/crds.yaml is stale: run `cargo run --bin ironlb -- crds > deploy/base/crds.yaml`"
    );
    assert_eq!(yaml_docs(&printed).len(), 9);
}

/// Each way the README installs ironlb builds with kustomize (the cert-manager overlay once
/// included its own parent directory, which kustomize refuses as a cycle).
#[test]
fn every_install_entry_point_builds_with_kustomize() {
    if !netns::require_tools(&["kubectl"]) {
        return;
    }
    for (dir, needle) in [
        ("deploy", "kind: StatefulSet"),
        ("deploy/cert-manager", "kind: Certificate"),
        ("deploy/with-monitoring", "kind: PrometheusRule"),
    ] {
        let out = Command::new("kubectl")
            .args(["kustomize"])
            .arg(root().join(dir))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && text.contains(needle),
            "kubectl kustomize {dir}:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn every_manifest_passes_kubernetes_validate_strict() {
    if !netns::require_tools(&["kubernetes-validate"]) {
        return;
    }
    let manifests: Vec<PathBuf> = files("deploy/base")
        .into_iter()
        .filter(|p| !p.ends_with("kustomization.yaml"))
        .collect();
    assert!(manifests.len() >= 5, "{manifests:?}");
    for f in manifests {
        let out = Command::new("kubernetes-validate")
            .args(["--strict", "-k", "1.33.0"])
            .arg(&f)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{} fails kubernetes-validate:\n{}{}",
            f.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // The kustomization names every manifest.
    let k = std::fs::read_to_string(root().join("deploy/base/kustomization.yaml")).unwrap();
    for name in [
        "namespace.yaml",
        "crds.yaml",
        "rbac.yaml",
        "statefulset.yaml",
        "daemonset.yaml",
    ] {
        assert!(k.contains(name), "kustomization.yaml misses {name}");
    }
}

fn schemas() -> Vec<(String, Value)> {
    ironlb::k8s::crds::all()
        .into_iter()
        .map(|crd| {
            let schema = serde_json::to_value(
                crd.spec.versions[0]
                    .schema
                    .as_ref()
                    .unwrap()
                    .open_api_v3_schema
                    .as_ref()
                    .unwrap(),
            )
            .unwrap();
            (crd.spec.names.kind.clone(), schema)
        })
        .collect()
}

fn validate(schemas: &[(String, Value)], obj: &Value) -> Result<(), String> {
    let kind = obj["kind"].as_str().unwrap_or("");
    let (_, schema) = schemas
        .iter()
        .find(|(k, _)| k == kind)
        .ok_or_else(|| format!("no CRD for {kind}"))?;
    let v = jsonschema::validator_for(schema).map_err(|e| e.to_string())?;
    let errors: Vec<String> = v
        .iter_errors(obj)
        .map(|e| format!("{}: {e}", e.instance_path))
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("; "))
    }
}

#[test]
fn custom_resources_in_deploy_and_examples_validate_against_the_crd_schemas() {
    let schemas = schemas();
    let mut checked = 0;
    for dir in ["deploy/base", "examples/kubernetes", "examples/standalone"] {
        for f in files(dir) {
            if f.ends_with("crds.yaml") {
                continue;
            }
            let text = std::fs::read_to_string(&f).unwrap();
            for obj in yaml_docs(&text) {
                if obj["apiVersion"] != "ironlb.io/v1beta1" {
                    continue;
                }
                if let Err(e) = validate(&schemas, &obj) {
                    panic!(
                        "{}: {}/{}: {e}",
                        f.display(),
                        obj["kind"],
                        obj["metadata"]["name"]
                    );
                }
                checked += 1;
            }
        }
    }
    assert!(checked >= 10, "only {checked} custom resources checked");
    // The check can fail: a wrong type and a missing required field are caught.
    let bad: Value = serde_json::json!({
        "apiVersion": "ironlb.io/v1beta1", "kind": "IPAddressPool",
        "metadata": {"name": "x"}, "spec": {"addresses": ["192.0.2.0/24"], "autoAssign": "yes"}
    });
    assert!(validate(&schemas, &bad).is_err());
    let bad: Value = serde_json::json!({
        "apiVersion": "ironlb.io/v1beta1", "kind": "BFDProfile",
        "metadata": {"name": "x"}, "spec": {"detectMultiplier": "three"}
    });
    assert!(validate(&schemas, &bad).is_err());
}

#[test]
fn the_dockerfile_is_clean_for_hadolint() {
    if !netns::require_tools(&["hadolint"]) {
        return;
    }
    let out = Command::new("hadolint")
        .arg(root().join("Dockerfile"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "hadolint:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn migrate_turns_a_metallb_configuration_into_a_valid_ironlb_one() {
    let out = Command::new(bin())
        .arg("migrate")
        .arg(root().join("examples/metallb/metallb-config.yaml"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("skipped ServiceL2Status"), "{stderr}");
    let docs = yaml_docs(&String::from_utf8(out.stdout).unwrap());
    assert_eq!(docs.len(), 3);
    for d in &docs {
        assert_eq!(d["apiVersion"], "ironlb.io/v1beta1");
        assert_eq!(d["metadata"]["namespace"], "ironlb-system");
        assert!(d["metadata"].get("uid").is_none());
        validate(&schemas(), d).unwrap();
    }
    // An invalid MetalLB configuration is converted but reported, with the field.
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: p, namespace: metallb-system}\nspec:\n  addresses: [\"192.0.2.9-192.0.2.1\"]\n").unwrap();
    let out = Command::new(bin())
        .arg("migrate")
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("IPAddressPool/p: spec.addresses[0]"));
}

#[test]
fn the_cert_manager_overlay_names_every_member_seat_and_mounts_each_certificate() {
    use ironlb::auth::{MemberSeat, Principal};
    let docs: Vec<Value> = files("deploy/cert-manager")
        .iter()
        .flat_map(|f| yaml_docs(&std::fs::read_to_string(f).unwrap()))
        .collect();
    let patch = docs
        .iter()
        .find(|d| d["kind"] == "StatefulSet")
        .expect("a StatefulSet patch");
    let mounted: Vec<&str> = patch["spec"]["template"]["spec"]["volumes"][0]["projected"]
        ["sources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["secret"]["name"].as_str().unwrap())
        .collect();
    let args: Vec<&str> = patch["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert!(args.contains(&"--external-ca") && args.contains(&"--issue-certificates"));
    let members: Vec<&Value> = docs
        .iter()
        .filter(|d| d["kind"] == "Certificate" && d["spec"]["isCA"] != true)
        .collect();
    assert_eq!(members.len(), 3);
    for (i, cert) in members.iter().enumerate() {
        let seat = i as u64 + 1;
        let uri = cert["spec"]["uris"][0].as_str().unwrap();
        assert_eq!(
            Principal::parse_uri(uri).ok(),
            Some(Principal::Member(MemberSeat::new(seat).unwrap())),
            "{uri}"
        );
        let secret = cert["spec"]["secretName"].as_str().unwrap();
        assert!(mounted.contains(&secret), "{secret} is not mounted");
        // The name the other members dial (ordinal = seat - 1).
        let dns: Vec<&str> = cert["spec"]["dnsNames"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_str().unwrap())
            .collect();
        assert!(dns.contains(
            &format!(
                "ironlb-controller-{}.ironlb-controller.ironlb-system.svc",
                seat - 1
            )
            .as_str()
        ));
    }
    assert!(mounted.contains(&"ironlb-ca"));
}
