//! MetalLB v0.16's fields, kind by kind, and what `migrate` does with each (the sources are
//! MetalLB's `api/v1beta1/*_types.go` and `api/v1beta2/bgppeer_types.go`).

use serde_yaml::{Mapping, Value};

use super::{keys, object_name, str_at, Converted, Fate, FieldNote, Migrated};

/// Where notes go while one object is migrated.
pub(super) struct Ctx<'a> {
    /// `Kind/name` of the object.
    pub object: &'a str,
    /// ironlb's namespace, which the object moves to.
    pub namespace: &'a str,
    /// The migration's notes.
    pub notes: &'a mut Vec<FieldNote>,
}

impl Ctx<'_> {
    fn note(&mut self, field: &str, fate: Fate) {
        self.notes.push(FieldNote {
            object: self.object.to_owned(),
            field: format!("spec.{field}"),
            fate,
        });
    }
}

/// What happens to one field.
#[derive(Clone, Copy)]
enum Rule {
    /// Kept as written.
    Keep,
    /// Rewritten (or judged) by a function of the spec, which says what it did.
    Convert(fn(&mut Ctx<'_>, &mut Mapping) -> Fate),
    /// Removed, with this warning.
    Drop(&'static str),
}

use Rule::{Convert, Drop, Keep};

const IP_ADDRESS_POOL: &[(&str, Rule)] = &[
    ("addresses", Convert(addresses)),
    ("autoAssign", Keep),
    ("avoidBuggyIPs", Keep),
    // priority, namespaces, namespaceSelectors and serviceSelectors, all read as MetalLB does
    // (the README's table lists where the outcome differs).
    ("serviceAllocation", Keep),
];

const L2_ADVERTISEMENT: &[(&str, Rule)] = &[
    ("ipAddressPools", Keep),
    ("ipAddressPoolSelectors", Keep),
    ("nodeSelectors", Keep),
    ("interfaces", Keep),
    ("serviceSelectors", Keep),
    (
        "preferredNodeSelectors",
        Drop(
            "ironlb elects the announcing node among every node nodeSelectors allow, without \
             preferences; MetalLB falls back to any such node when no preferred one is ready, \
             so ironlb's choice is always one MetalLB may make too",
        ),
    ),
];

const BGP_ADVERTISEMENT: &[(&str, Rule)] = &[
    ("aggregationLength", Keep),
    ("aggregationLengthV6", Keep),
    ("localPref", Keep),
    ("communities", Keep),
    ("ipAddressPools", Keep),
    ("ipAddressPoolSelectors", Keep),
    ("nodeSelectors", Keep),
    ("peers", Keep),
    ("serviceSelectors", Keep),
];

const BGP_PEER_V1BETA2: &[(&str, Rule)] = &[
    ("myASN", Keep),
    ("peerASN", Convert(peer_asn)),
    ("localASN", Convert(local_asn)),
    ("dynamicASN", Keep),
    ("peerAddress", Keep),
    ("interface", Convert(interface)),
    ("sourceAddress", Keep),
    ("peerPort", Convert(peer_port)),
    ("holdTime", Keep),
    ("keepaliveTime", Keep),
    ("connectTime", Keep),
    ("routerID", Keep),
    ("nodeSelectors", Keep),
    ("password", Keep),
    ("passwordSecret", Convert(password_secret)),
    ("bfdProfile", Keep),
    ("enableGracefulRestart", Keep),
    ("ebgpMultiHop", Keep),
    ("vrf", Keep),
    ("disableMP", Keep),
    ("dualStackAddressFamily", Keep),
];

/// v1beta1 BGPPeer: its nodeSelectors are MetalLB's own type, with a LabelSelector's shape.
const BGP_PEER_V1BETA1: &[(&str, Rule)] = &[
    ("myASN", Keep),
    ("peerASN", Convert(peer_asn)),
    ("peerAddress", Keep),
    ("sourceAddress", Keep),
    ("peerPort", Convert(peer_port)),
    ("holdTime", Keep),
    ("keepaliveTime", Keep),
    ("routerID", Keep),
    ("nodeSelectors", Keep),
    ("password", Keep),
    ("bfdProfile", Keep),
    ("ebgpMultiHop", Keep),
];

const BFD_PROFILE: &[(&str, Rule)] = &[
    ("receiveInterval", Keep),
    ("transmitInterval", Keep),
    ("detectMultiplier", Keep),
    ("echoInterval", Keep),
    ("echoMode", Keep),
    ("passiveMode", Keep),
    ("minimumTtl", Keep),
];

const COMMUNITY: &[(&str, Rule)] = &[("communities", Keep)];

/// The fields of a kind in a version; empty for a version MetalLB does not have.
fn rules(kind: &str, version: &str) -> &'static [(&'static str, Rule)] {
    match (kind, version) {
        ("IPAddressPool", "v1beta1") => IP_ADDRESS_POOL,
        ("L2Advertisement", "v1beta1") => L2_ADVERTISEMENT,
        ("BGPAdvertisement", "v1beta1") => BGP_ADVERTISEMENT,
        ("BGPPeer", "v1beta1") => BGP_PEER_V1BETA1,
        ("BGPPeer", "v1beta2") => BGP_PEER_V1BETA2,
        ("BFDProfile", "v1beta1") => BFD_PROFILE,
        ("Community", "v1beta1") => COMMUNITY,
        _ => &[],
    }
}

/// Every kind and version MetalLB v0.16 has.
#[cfg(test)]
pub(super) const KINDS_AND_VERSIONS: [(&str, &str); 7] = [
    ("IPAddressPool", "v1beta1"),
    ("L2Advertisement", "v1beta1"),
    ("BGPAdvertisement", "v1beta1"),
    ("BGPPeer", "v1beta1"),
    ("BGPPeer", "v1beta2"),
    ("BFDProfile", "v1beta1"),
    ("Community", "v1beta1"),
];

/// The fields of a kind in a version.
#[cfg(test)]
pub(super) fn field_names(kind: &str, version: &str) -> Vec<&'static str> {
    rules(kind, version).iter().map(|(name, _)| *name).collect()
}

/// Migrates the fields of a spec in place, noting each one's fate.
pub(super) fn spec(kind: &str, version: &str, spec: &mut Mapping, ctx: &mut Ctx<'_>) {
    let table = rules(kind, version);
    for field in keys(spec) {
        let rule = table.iter().find(|(name, _)| *name == field).map(|r| r.1);
        let fate = match rule {
            Some(Keep) => Fate::Kept,
            Some(Convert(f)) => f(ctx, spec),
            Some(Drop(why)) => {
                spec.remove(field.as_str());
                Fate::Dropped(why.to_owned())
            }
            None if table.is_empty() => {
                Fate::Refused(format!("MetalLB v0.16 has no metallb.io/{version} {kind}"))
            }
            None => Fate::Refused(format!(
                "not a field of MetalLB v0.16's metallb.io/{version} {kind}"
            )),
        };
        ctx.note(&field, fate);
    }
}

/// `addresses`: a CIDR with host bits set (`198.51.100.10/24`) is masked, as Go's
/// `net.ParseCIDR` does in MetalLB's `internal/config/config.go` (`ParseCIDR`), since ironlb
/// refuses host bits rather than widen a typo silently.
fn addresses(_: &mut Ctx<'_>, spec: &mut Mapping) -> Fate {
    let Some(list) = spec.get_mut("addresses").and_then(Value::as_sequence_mut) else {
        return Fate::Kept;
    };
    let mut masked = Vec::new();
    for item in list.iter_mut() {
        let Some(text) = item.as_str() else { continue };
        if text.contains('-') {
            continue;
        }
        let Ok(net) = text.trim().parse::<ipnet::IpNet>() else {
            continue;
        };
        if net.trunc() != net {
            masked.push(format!("{text} becomes {}", net.trunc()));
            *item = Value::from(net.trunc().to_string());
        }
    }
    if masked.is_empty() {
        return Fate::Kept;
    }
    Fate::Converted(format!(
        "{}: MetalLB masks host bits away (Go's net.ParseCIDR) and uses the whole network",
        masked.join(", ")
    ))
}

/// `peerASN`: 0 is MetalLB's "unset" (omitempty; v1beta1 writes it out).
fn peer_asn(_: &mut Ctx<'_>, spec: &mut Mapping) -> Fate {
    if spec.get("peerASN").and_then(Value::as_u64) == Some(0) {
        spec.remove("peerASN");
        return Fate::Converted("0 means unset in MetalLB: left out".into());
    }
    Fate::Kept
}

/// `peerPort`: 0 is MetalLB's "unset", the default port 179.
fn peer_port(_: &mut Ctx<'_>, spec: &mut Mapping) -> Fate {
    if spec.get("peerPort").and_then(Value::as_u64) == Some(0) {
        spec.remove("peerPort");
        return Fate::Converted("0 means the default port in MetalLB: left out (179)".into());
    }
    Fate::Kept
}

/// `localASN`: MetalLB's FRR configures `local-as N no-prepend replace-as`, so the peer sees N
/// in the OPEN and as the only AS of the path. ironlb's speaker opens every session with its
/// peer's own myASN, so N becomes this peer's myASN, which sends the peer the same.
fn local_asn(_: &mut Ctx<'_>, spec: &mut Mapping) -> Fate {
    let Some(local) = spec.remove("localASN") else {
        return Fate::Kept;
    };
    if local.as_u64() == Some(0) {
        return Fate::Converted("0 means unset in MetalLB: left out".into());
    }
    let old = spec
        .get("myASN")
        .map_or_else(|| "unset".to_owned(), yaml_scalar);
    let new = yaml_scalar(&local);
    let ibgp = spec
        .get("myASN")
        .is_some_and(|my| spec.get("peerASN") == Some(my))
        || str_of(spec, "dynamicASN") == "internal";
    if ibgp {
        // FRR refuses local-as on an iBGP session, so MetalLB's configuration fails too;
        // making it this peer's myASN would turn the session into eBGP instead.
        spec.insert("localASN".into(), local);
        return Fate::Refused(format!(
            "{new}: local-as applies to eBGP sessions only (FRR refuses it here), and this \
             session is iBGP"
        ));
    }
    spec.insert("myASN".into(), local);
    Fate::Converted(format!(
        "myASN {old} becomes {new} for this peer: ironlb opens each session with the peer's \
         own myASN, which sends the peer what MetalLB's `local-as {new} no-prepend replace-as` \
         sends ({new} in the OPEN and as the only AS of the path)"
    ))
}

/// `interface` (BGP unnumbered) is something ironlb's speaker cannot do.
fn interface(_: &mut Ctx<'_>, spec: &mut Mapping) -> Fate {
    if str_of(spec, "interface").is_empty() {
        spec.remove("interface");
        return Fate::Kept;
    }
    Fate::Refused(
        "BGP unnumbered (peering over an interface's IPv6 link-local address) is not \
         supported by ironlb's speaker: set peerAddress to the peer's address instead"
            .into(),
    )
}

/// `passwordSecret`: MetalLB reads the Secret from its own namespace whatever
/// `passwordSecret.namespace` says (`getSecrets` in `internal/k8s/controllers/
/// config_controller.go` lists that namespace's Secrets, `passwordFromSecretForPeer` in
/// `internal/config/config.go` looks the name up among them); ironlb reads it from its own.
fn password_secret(ctx: &mut Ctx<'_>, spec: &mut Mapping) -> Fate {
    let Some(secret) = spec
        .get_mut("passwordSecret")
        .and_then(Value::as_mapping_mut)
    else {
        return Fate::Kept;
    };
    secret.remove("namespace");
    let name = str_of(secret, "name").to_owned();
    Fate::Converted(format!(
        "ironlb reads Secret {name:?} from its own namespace {}: copy it there from MetalLB's \
         namespace (type kubernetes.io/basic-auth, key password)",
        ctx.namespace
    ))
}

fn str_of<'a>(m: &'a Mapping, key: &str) -> &'a str {
    m.get(key).and_then(Value::as_str).unwrap_or("")
}

/// A scalar as written (`64512`), for messages.
fn yaml_scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => serde_yaml::to_string(other)
            .map(|s| s.trim_end().to_owned())
            .unwrap_or_default(),
    }
}

/// The suffixes of MetalLB's Service annotations (after `metallb.io/` or the deprecated
/// `metallb.universe.tf/`) that ironlb reads as MetalLB does.
const READ_ANNOTATIONS: [&str; 3] = ["address-pool", "loadBalancerIPs", "allow-shared-ip"];

/// A Service: left as it is (ironlb reads it in place), each MetalLB annotation noted.
pub(super) fn service(v: &Value, out: &mut Migrated) {
    let object = object_name(v);
    let annotations = v
        .get("metadata")
        .and_then(|m| m.get("annotations"))
        .and_then(Value::as_mapping);
    for name in annotations.map(keys).unwrap_or_default() {
        let Some(suffix) = name
            .strip_prefix("metallb.io/")
            .or_else(|| name.strip_prefix("metallb.universe.tf/"))
        else {
            continue;
        };
        let fate = if READ_ANNOTATIONS.contains(&suffix) {
            Fate::Kept
        } else if suffix == "ip-allocated-from-pool" {
            Fate::Dropped(
                "MetalLB's controller's record of the pool; ironlb ignores it and writes \
                 ironlb.io/ip-allocated-from-pool"
                    .into(),
            )
        } else {
            Fate::Dropped("not an annotation MetalLB v0.16 reads; ironlb ignores it".into())
        };
        out.notes.push(FieldNote {
            object: object.clone(),
            field: format!("metadata.annotations[{name:?}]"),
            fate,
        });
    }
    let holds = v
        .get("status")
        .and_then(|s| s.get("loadBalancer"))
        .and_then(|l| l.get("ingress"))
        .and_then(Value::as_sequence)
        .is_some_and(|s| !s.is_empty());
    if holds {
        out.notes.push(FieldNote {
            object: object.clone(),
            field: "status.loadBalancer.ingress".into(),
            fate: Fate::Kept,
        });
    }
    out.documents.push(Converted::Skipped(format!(
        "{object}: left as it is; ironlb reads its MetalLB annotations in place{}",
        if holds {
            " and keeps the addresses its status shows"
        } else {
            ""
        }
    )));
}

/// Whether a ConfigMap is MetalLB's configuration from before v0.13 (`data.config` with
/// `address-pools` or `peers`).
pub(super) fn is_legacy_config(v: &Value) -> bool {
    let config = str_at(v, &["data", "config"]);
    config.contains("address-pools") || config.contains("peers:")
}
