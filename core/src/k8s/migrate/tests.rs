use std::collections::BTreeMap;

use super::*;
use crate::config::model::Advertisement;

/// Every field of every MetalLB v0.16 kind (`api/v1beta1/*_types.go`,
/// `api/v1beta2/bgppeer_types.go`, and `preferredNodeSelectors` from MetalLB's main branch),
/// the MetalLB Service annotations, and the documents migrate leaves out. Several BGPPeers,
/// since some fields exclude others (peerAddress and interface, password and
/// passwordSecret, peerASN and dynamicASN).
const EVERY_FIELD: &str = r#"
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: public, namespace: metallb-system, uid: abc, labels: {zone: a}}
spec:
  addresses: [198.51.100.10/24, 192.0.2.10-192.0.2.20, "2001:db8::/64"]
  autoAssign: false
  avoidBuggyIPs: true
  serviceAllocation:
    priority: 10
    namespaces: [shop]
    namespaceSelectors: [{matchLabels: {team: a}}]
    serviceSelectors: [{matchLabels: {app: web}}]
status: {assignedIPv4: 1, assignedIPv6: 0, availableIPv4: 2, availableIPv6: 0}
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: {name: l2, namespace: metallb-system}
spec:
  ipAddressPools: [public]
  ipAddressPoolSelectors: [{matchLabels: {zone: a}}]
  nodeSelectors: [{matchLabels: {rack: "1"}}]
  interfaces: [eth0]
  serviceSelectors: [{matchLabels: {app: web}}]
  preferredNodeSelectors: [{weight: 50, preference: {matchLabels: {zone: a}}}]
---
apiVersion: metallb.io/v1beta1
kind: BGPAdvertisement
metadata: {name: bgp, namespace: metallb-system}
spec:
  aggregationLength: 32
  aggregationLengthV6: 128
  localPref: 100
  communities: [no-advertise, "65000:1", "large:1:2:3"]
  ipAddressPools: [public]
  ipAddressPoolSelectors: [{matchLabels: {zone: a}}]
  nodeSelectors: [{matchLabels: {rack: "1"}}]
  peers: [full]
  serviceSelectors: [{matchLabels: {app: web}}]
---
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {name: full, namespace: metallb-system}
spec:
  myASN: 64512
  peerASN: 64513
  localASN: 65410
  peerAddress: 192.0.2.1
  sourceAddress: 192.0.2.2
  peerPort: 0
  holdTime: 90s
  keepaliveTime: 30s
  connectTime: 10s
  routerID: 192.0.2.2
  nodeSelectors: [{matchLabels: {rack: "1"}}]
  password: secret
  bfdProfile: fast
  enableGracefulRestart: true
  ebgpMultiHop: true
  vrf: red
  disableMP: true
  dualStackAddressFamily: true
---
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {name: dynamic, namespace: metallb-system}
spec:
  myASN: 64512
  dynamicASN: external
  peerAddress: 192.0.2.3
  passwordSecret: {name: bgp-auth, namespace: metallb-system}
---
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {name: unnumbered, namespace: metallb-system}
spec: {myASN: 64512, peerASN: 64513, interface: eth1}
---
apiVersion: metallb.io/v1beta1
kind: BGPPeer
metadata: {name: legacy, namespace: metallb-system}
spec:
  myASN: 64512
  peerASN: 0
  peerAddress: 192.0.2.4
  sourceAddress: 192.0.2.2
  peerPort: 1179
  holdTime: 90s
  keepaliveTime: 30s
  routerID: 192.0.2.2
  nodeSelectors: [{matchLabels: {rack: "1"}, matchExpressions: [{key: k, operator: In, values: [v]}]}]
  password: secret
  bfdProfile: fast
  ebgpMultiHop: false
  connectTime: 10s
---
apiVersion: metallb.io/v1beta1
kind: BFDProfile
metadata: {name: fast, namespace: metallb-system}
spec:
  receiveInterval: 300
  transmitInterval: 300
  detectMultiplier: 3
  echoInterval: 50
  echoMode: false
  passiveMode: false
  minimumTtl: 254
---
apiVersion: metallb.io/v1beta1
kind: Community
metadata: {name: communities, namespace: metallb-system}
spec:
  communities: [{name: no-advertise, value: "65535:65282"}]
---
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: shop
  annotations:
    metallb.io/loadBalancerIPs: 198.51.100.20
    metallb.io/address-pool: public
    metallb.io/allow-shared-ip: web
    metallb.io/ip-allocated-from-pool: public
    metallb.universe.tf/loadBalancerIPs: 198.51.100.20
    metallb.universe.tf/address-pool: public
    metallb.universe.tf/allow-shared-ip: web
    metallb.universe.tf/ip-allocated-from-pool: public
    metallb.universe.tf/no-such: x
spec: {type: LoadBalancer, ports: [{port: 80}]}
status: {loadBalancer: {ingress: [{ip: 198.51.100.20}]}}
---
apiVersion: metallb.io/v1beta1
kind: ServiceL2Status
metadata: {name: x}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: config, namespace: metallb-system}
data:
  config: |
    address-pools:
    - name: default
      protocol: layer2
      addresses: [192.0.2.0/24]
---
apiVersion: frrk8s.metallb.io/v1beta1
kind: FRRConfiguration
metadata: {name: receive}
spec: {}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: nginx}
"#;

/// The fate of every field of [`EVERY_FIELD`]: object, field, fate.
const FATES: &[(&str, &str, &str)] = &[
    ("IPAddressPool/public", "spec.addresses", "converted"),
    ("IPAddressPool/public", "spec.autoAssign", "kept"),
    ("IPAddressPool/public", "spec.avoidBuggyIPs", "kept"),
    ("IPAddressPool/public", "spec.serviceAllocation", "kept"),
    ("L2Advertisement/l2", "spec.ipAddressPools", "kept"),
    ("L2Advertisement/l2", "spec.ipAddressPoolSelectors", "kept"),
    ("L2Advertisement/l2", "spec.nodeSelectors", "kept"),
    ("L2Advertisement/l2", "spec.interfaces", "kept"),
    ("L2Advertisement/l2", "spec.serviceSelectors", "kept"),
    (
        "L2Advertisement/l2",
        "spec.preferredNodeSelectors",
        "dropped",
    ),
    ("BGPAdvertisement/bgp", "spec.aggregationLength", "kept"),
    ("BGPAdvertisement/bgp", "spec.aggregationLengthV6", "kept"),
    ("BGPAdvertisement/bgp", "spec.localPref", "kept"),
    ("BGPAdvertisement/bgp", "spec.communities", "kept"),
    ("BGPAdvertisement/bgp", "spec.ipAddressPools", "kept"),
    (
        "BGPAdvertisement/bgp",
        "spec.ipAddressPoolSelectors",
        "kept",
    ),
    ("BGPAdvertisement/bgp", "spec.nodeSelectors", "kept"),
    ("BGPAdvertisement/bgp", "spec.peers", "kept"),
    ("BGPAdvertisement/bgp", "spec.serviceSelectors", "kept"),
    ("BGPPeer/full", "spec.myASN", "kept"),
    ("BGPPeer/full", "spec.peerASN", "kept"),
    ("BGPPeer/full", "spec.localASN", "converted"),
    ("BGPPeer/full", "spec.peerAddress", "kept"),
    ("BGPPeer/full", "spec.sourceAddress", "kept"),
    ("BGPPeer/full", "spec.peerPort", "converted"),
    ("BGPPeer/full", "spec.holdTime", "kept"),
    ("BGPPeer/full", "spec.keepaliveTime", "kept"),
    ("BGPPeer/full", "spec.connectTime", "kept"),
    ("BGPPeer/full", "spec.routerID", "kept"),
    ("BGPPeer/full", "spec.nodeSelectors", "kept"),
    ("BGPPeer/full", "spec.password", "kept"),
    ("BGPPeer/full", "spec.bfdProfile", "kept"),
    ("BGPPeer/full", "spec.enableGracefulRestart", "kept"),
    ("BGPPeer/full", "spec.ebgpMultiHop", "kept"),
    ("BGPPeer/full", "spec.vrf", "kept"),
    ("BGPPeer/full", "spec.disableMP", "kept"),
    ("BGPPeer/full", "spec.dualStackAddressFamily", "kept"),
    ("BGPPeer/dynamic", "spec.myASN", "kept"),
    ("BGPPeer/dynamic", "spec.dynamicASN", "kept"),
    ("BGPPeer/dynamic", "spec.peerAddress", "kept"),
    ("BGPPeer/dynamic", "spec.passwordSecret", "converted"),
    ("BGPPeer/unnumbered", "spec.myASN", "kept"),
    ("BGPPeer/unnumbered", "spec.peerASN", "kept"),
    ("BGPPeer/unnumbered", "spec.interface", "refused"),
    ("BGPPeer/legacy", "spec.myASN", "kept"),
    ("BGPPeer/legacy", "spec.peerASN", "converted"),
    ("BGPPeer/legacy", "spec.peerAddress", "kept"),
    ("BGPPeer/legacy", "spec.sourceAddress", "kept"),
    ("BGPPeer/legacy", "spec.peerPort", "kept"),
    ("BGPPeer/legacy", "spec.holdTime", "kept"),
    ("BGPPeer/legacy", "spec.keepaliveTime", "kept"),
    ("BGPPeer/legacy", "spec.routerID", "kept"),
    ("BGPPeer/legacy", "spec.nodeSelectors", "kept"),
    ("BGPPeer/legacy", "spec.password", "kept"),
    ("BGPPeer/legacy", "spec.bfdProfile", "kept"),
    ("BGPPeer/legacy", "spec.ebgpMultiHop", "kept"),
    // A v1beta2 field on a v1beta1 object: MetalLB's API server prunes it.
    ("BGPPeer/legacy", "spec.connectTime", "refused"),
    ("BFDProfile/fast", "spec.receiveInterval", "kept"),
    ("BFDProfile/fast", "spec.transmitInterval", "kept"),
    ("BFDProfile/fast", "spec.detectMultiplier", "kept"),
    ("BFDProfile/fast", "spec.echoInterval", "kept"),
    ("BFDProfile/fast", "spec.echoMode", "kept"),
    ("BFDProfile/fast", "spec.passiveMode", "kept"),
    ("BFDProfile/fast", "spec.minimumTtl", "kept"),
    ("Community/communities", "spec.communities", "kept"),
    (
        "Service/shop/web",
        r#"metadata.annotations["metallb.io/loadBalancerIPs"]"#,
        "kept",
    ),
    (
        "Service/shop/web",
        r#"metadata.annotations["metallb.io/address-pool"]"#,
        "kept",
    ),
    (
        "Service/shop/web",
        r#"metadata.annotations["metallb.io/allow-shared-ip"]"#,
        "kept",
    ),
    (
        "Service/shop/web",
        r#"metadata.annotations["metallb.io/ip-allocated-from-pool"]"#,
        "dropped",
    ),
    (
        "Service/shop/web",
        r#"metadata.annotations["metallb.universe.tf/loadBalancerIPs"]"#,
        "kept",
    ),
    (
        "Service/shop/web",
        r#"metadata.annotations["metallb.universe.tf/address-pool"]"#,
        "kept",
    ),
    (
        "Service/shop/web",
        r#"metadata.annotations["metallb.universe.tf/allow-shared-ip"]"#,
        "kept",
    ),
    (
        "Service/shop/web",
        r#"metadata.annotations["metallb.universe.tf/ip-allocated-from-pool"]"#,
        "dropped",
    ),
    (
        "Service/shop/web",
        r#"metadata.annotations["metallb.universe.tf/no-such"]"#,
        "dropped",
    ),
    ("Service/shop/web", "status.loadBalancer.ingress", "kept"),
    ("ConfigMap/config", "data.config", "refused"),
    ("FRRConfiguration/receive", "spec", "dropped"),
];

fn fate_word(f: &Fate) -> &'static str {
    match f {
        Fate::Kept => "kept",
        Fate::Converted(_) => "converted",
        Fate::Dropped(_) => "dropped",
        Fate::Refused(_) => "refused",
    }
}

fn object<'a>(m: &'a Migrated, name: &str) -> &'a Value {
    m.objects()
        .find(|v| object_name(v) == name)
        .unwrap_or_else(|| panic!("{name} is not among the objects"))
}

#[test]
fn every_metallb_field_has_the_fate_in_the_table() {
    let m = migrate(EVERY_FIELD, "ironlb-system").unwrap();
    let got: BTreeMap<(String, String), &str> = m
        .notes
        .iter()
        .map(|n| ((n.object.clone(), n.field.clone()), fate_word(&n.fate)))
        .collect();
    let want: BTreeMap<(String, String), &str> = FATES
        .iter()
        .map(|(o, f, fate)| ((o.to_string(), f.to_string()), *fate))
        .collect();
    for (key, fate) in &want {
        assert_eq!(got.get(key), Some(fate), "{key:?}");
    }
    for key in got.keys() {
        assert!(want.contains_key(key), "{key:?} has a fate the table lacks");
    }
    // Every field of every table is exercised.
    for (kind, version) in fields::KINDS_AND_VERSIONS {
        for field in fields::field_names(kind, version) {
            let seen = FATES.iter().any(|(o, f, _)| {
                o.starts_with(&format!("{kind}/")) && *f == format!("spec.{field}")
            });
            assert!(seen, "{version} {kind}.{field} is not in the test");
        }
    }
    // Refused fields name object and field, and keep the object out.
    let refused: Vec<String> = m.refusals().map(ToString::to_string).collect();
    assert!(
        refused[0].starts_with("BGPPeer/unnumbered: spec.interface: refused: BGP unnumbered"),
        "{refused:?}"
    );
    assert!(
        refused[1].starts_with(
            "BGPPeer/legacy: spec.connectTime: refused: not a field of MetalLB v0.16's \
             metallb.io/v1beta1 BGPPeer"
        ),
        "{refused:?}"
    );
    for name in ["BGPPeer/unnumbered", "BGPPeer/legacy", "ConfigMap/config"] {
        assert!(
            m.documents.contains(&Converted::Refused(name.into())),
            "{name}"
        );
        assert!(m.objects().all(|v| object_name(v) != name), "{name}");
    }
}

#[test]
fn converted_fields_hold_what_gives_metallbs_behaviour() {
    let m = migrate(EVERY_FIELD, "ironlb-system").unwrap();
    let pool = object(&m, "IPAddressPool/public");
    assert_eq!(pool["apiVersion"], Value::from("ironlb.io/v1beta1"));
    assert_eq!(pool["metadata"]["namespace"], Value::from("ironlb-system"));
    assert!(pool["metadata"].get("uid").is_none() && pool.get("status").is_none());
    assert_eq!(pool["metadata"]["labels"]["zone"], Value::from("a"));
    assert_eq!(pool["spec"]["addresses"][0], Value::from("198.51.100.0/24"));
    assert_eq!(
        pool["spec"]["addresses"][1],
        Value::from("192.0.2.10-192.0.2.20")
    );
    assert_eq!(
        pool["spec"]["serviceAllocation"]["namespaceSelectors"][0]["matchLabels"]["team"],
        Value::from("a")
    );
    let l2 = object(&m, "L2Advertisement/l2");
    assert!(l2["spec"].get("preferredNodeSelectors").is_none());
    assert_eq!(l2["spec"]["interfaces"][0], Value::from("eth0"));
    let full = object(&m, "BGPPeer/full");
    assert_eq!(full["spec"]["myASN"], Value::from(65410));
    assert!(full["spec"].get("localASN").is_none() && full["spec"].get("peerPort").is_none());
    assert_eq!(full["spec"]["vrf"], Value::from("red"));
    let dynamic = object(&m, "BGPPeer/dynamic");
    assert!(dynamic["spec"]["passwordSecret"].get("namespace").is_none());
    assert_eq!(
        dynamic["spec"]["passwordSecret"]["name"],
        Value::from("bgp-auth")
    );
    let warnings: Vec<String> = m.warnings().map(ToString::to_string).collect();
    assert!(
        warnings.iter().any(|w| w.starts_with(
            "BGPPeer/full: spec.localASN: converted: myASN 64512 becomes 65410 for this peer"
        )),
        "{warnings:?}"
    );
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("198.51.100.10/24 becomes 198.51.100.0/24")),
        "{warnings:?}"
    );
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("Secret \"bgp-auth\" from its own namespace ironlb-system")),
        "{warnings:?}"
    );
    // Services, status kinds and other kinds are left out, each with a reason.
    let skipped: Vec<&str> = m
        .documents
        .iter()
        .filter_map(|d| match d {
            Converted::Skipped(why) => Some(why.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(skipped.len(), 4, "{skipped:?}");
    assert!(skipped[0].starts_with("Service/shop/web: left as it is"));
    assert!(skipped[1].contains("ServiceL2Status"));
    assert!(skipped[2].starts_with("FRRConfiguration/receive"));
    assert!(skipped[3].contains("not a MetalLB object"));
}

#[test]
fn a_kubectl_list_is_migrated_item_by_item() {
    let text = "apiVersion: v1
kind: List
items:
- apiVersion: metallb.io/v1beta1
  kind: IPAddressPool
  metadata: {name: public, namespace: metallb-system}
  spec: {addresses: [192.0.2.0/24]}
- apiVersion: metallb.io/v1beta1
  kind: L2Advertisement
  metadata: {name: l2, namespace: metallb-system}
metadata: {resourceVersion: \"\"}
";
    let m = migrate(text, "ironlb-system").unwrap();
    let kinds: Vec<&str> = m.objects().map(|v| str_at(v, &["kind"])).collect();
    assert_eq!(kinds, ["IPAddressPool", "L2Advertisement"]);
    let docs = crate::config::Documents::from_str(&m.to_yaml().unwrap(), "migrated")
        .into_result()
        .unwrap();
    crate::config::validate(&docs).unwrap();
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
    let m = migrate(text, "ironlb-system").unwrap();
    assert!(
        m.notes.iter().all(|n| n.fate == Fate::Kept),
        "{:?}",
        m.notes
    );
    let docs = crate::config::Documents::from_str(&m.to_yaml().unwrap(), "migrated")
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

#[test]
fn local_asn_on_an_ibgp_session_is_refused() {
    let text = "apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {name: p}
spec: {myASN: 64512, peerASN: 64512, localASN: 65410, peerAddress: 192.0.2.1}
---
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {name: q}
spec: {myASN: 64512, dynamicASN: internal, localASN: 65410, peerAddress: 192.0.2.2}
";
    let m = migrate(text, "ironlb-system").unwrap();
    let refused: Vec<String> = m.refusals().map(ToString::to_string).collect();
    assert_eq!(refused.len(), 2, "{refused:?}");
    assert!(
        refused[0].starts_with(
            "BGPPeer/p: spec.localASN: refused: 65410: local-as applies to eBGP sessions only"
        ),
        "{refused:?}"
    );
    assert_eq!(m.objects().count(), 0);
}

#[test]
fn a_kind_in_a_version_metallb_lacks_is_refused_by_name() {
    let text = "apiVersion: metallb.io/v1beta2
kind: IPAddressPool
metadata: {name: p}
spec: {addresses: [192.0.2.0/24]}
";
    let m = migrate(text, "ironlb-system").unwrap();
    assert_eq!(
        m.refusals().map(ToString::to_string).collect::<Vec<_>>(),
        ["IPAddressPool/p: spec.addresses: refused: MetalLB v0.16 has no metallb.io/v1beta2 IPAddressPool"]
    );
}
