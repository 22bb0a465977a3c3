//! `ironlb migrate`: MetalLB's configuration objects (`metallb.io/v1beta1` and `v1beta2`) as
//! ironlb's (`ironlb.io/v1beta1`): the same kinds and fields under another group, moved to
//! ironlb's namespace. Service annotations need nothing: ironlb reads MetalLB's forms.

use serde_yaml::Value;

/// The kinds that move over.
const KINDS: [&str; 6] = [
    "IPAddressPool",
    "L2Advertisement",
    "BGPAdvertisement",
    "BGPPeer",
    "Community",
    "BFDProfile",
];

/// What became of one input document.
#[derive(Debug, PartialEq)]
pub enum Converted {
    /// An ironlb object.
    Object(Value),
    /// Left out, and why (another kind, or nothing ironlb reads).
    Skipped(String),
}

/// Converts every document of `text`; `namespace` replaces MetalLB's (`metallb-system`).
pub fn convert(text: &str, namespace: &str) -> Result<Vec<Converted>, serde_yaml::Error> {
    let mut out = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(text) {
        let mut v: Value = serde::Deserialize::deserialize(doc)?;
        if v.is_null() {
            continue;
        }
        let api = v
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let kind = v
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let name = v
            .get("metadata")
            .and_then(|m| m.get("name"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if !api.starts_with("metallb.io/") {
            out.push(Converted::Skipped(format!(
                "{kind}/{name}: {api:?} is not a MetalLB object"
            )));
            continue;
        }
        if !KINDS.contains(&kind.as_str()) {
            out.push(Converted::Skipped(format!(
                "{kind}/{name}: ironlb has no {kind} (MetalLB's own status and legacy kinds are not configuration)"
            )));
            continue;
        }
        v["apiVersion"] = Value::from(crate::config::kinds::API_VERSION);
        if let Some(m) = v.get_mut("metadata").and_then(Value::as_mapping_mut) {
            m.insert("namespace".into(), namespace.into());
            // Server-owned fields of an exported object mean nothing to a new one.
            for f in [
                "uid",
                "resourceVersion",
                "creationTimestamp",
                "generation",
                "managedFields",
            ] {
                m.remove(f);
            }
            if let Some(a) = m.get_mut("annotations").and_then(Value::as_mapping_mut) {
                a.remove("kubectl.kubernetes.io/last-applied-configuration");
            }
        }
        if let Some(m) = v.as_mapping_mut() {
            m.remove("status");
        }
        out.push(Converted::Object(v));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metallb_objects_change_group_and_namespace_and_nothing_else() {
        let text = "apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata:
  name: public
  namespace: metallb-system
  uid: abc
spec:
  addresses: [192.0.2.0/24]
  avoidBuggyIPs: true
---
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {name: tor, namespace: metallb-system}
spec: {myASN: 64512, peerASN: 64513, peerAddress: 198.51.100.1}
---
apiVersion: metallb.io/v1beta1
kind: ServiceL2Status
metadata: {name: x}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: config}
";
        let out = convert(text, "ironlb-system").unwrap();
        assert_eq!(out.len(), 4);
        let Converted::Object(pool) = &out[0] else {
            panic!("{:?}", out[0])
        };
        assert_eq!(pool["apiVersion"], Value::from("ironlb.io/v1beta1"));
        assert_eq!(pool["metadata"]["namespace"], Value::from("ironlb-system"));
        assert!(pool["metadata"].get("uid").is_none());
        assert_eq!(pool["spec"]["avoidBuggyIPs"], Value::from(true));
        assert!(matches!(&out[1], Converted::Object(p) if p["kind"] == "BGPPeer"));
        assert!(matches!(&out[2], Converted::Skipped(w) if w.contains("ServiceL2Status")));
        assert!(matches!(&out[3], Converted::Skipped(w) if w.contains("not a MetalLB object")));
    }

    #[test]
    fn service_selectors_of_both_advertisements_carry_over_and_validate() {
        let text = "apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: public, namespace: metallb-system}
spec: {addresses: [192.0.2.0/24]}
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: {name: web, namespace: metallb-system}
spec:
  ipAddressPools: [public]
  serviceSelectors:
  - matchLabels: {app: web}
---
apiVersion: metallb.io/v1beta1
kind: BGPAdvertisement
metadata: {name: api, namespace: metallb-system}
spec:
  ipAddressPools: [public]
  aggregationLength: 32
  serviceSelectors:
  - matchExpressions: [{key: tier, operator: In, values: [api, edge]}]
";
        let mut yaml = String::new();
        for c in convert(text, "ironlb-system").unwrap() {
            let Converted::Object(v) = c else {
                panic!("{c:?}")
            };
            // Carried over as written: one selector on each advertisement.
            let kind = v["kind"].as_str().unwrap_or("").to_owned();
            let selectors = v["spec"]
                .get("serviceSelectors")
                .and_then(Value::as_sequence)
                .map(Vec::len);
            assert_eq!(selectors, (kind != "IPAddressPool").then_some(1), "{kind}");
            yaml.push_str("---\n");
            yaml.push_str(&serde_yaml::to_string(&v).unwrap());
        }
        let docs = crate::config::Documents::from_str(&yaml, "migrated")
            .into_result()
            .unwrap();
        let config = crate::config::validate(&docs).unwrap();
        let labels =
            |k: &str, v: &str| -> crate::labels::Labels { [(k.to_owned(), v.to_owned())].into() };
        let l2 = &config.l2_advertisements[0];
        assert!(l2.selects_service(&labels("app", "web")));
        assert!(!l2.selects_service(&labels("app", "db")));
        let bgp = &config.bgp_advertisements[0];
        assert!(bgp.selects_service(&labels("tier", "edge")));
        assert!(!bgp.selects_service(&labels("app", "web")));
    }
}
