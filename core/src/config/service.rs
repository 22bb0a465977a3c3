//! Turns a core/v1 Service into an [`AllocationRequest`]: the one place that reads Service
//! fields and annotations (ironlb's and MetalLB's), for standalone files and the Kubernetes
//! reconciler alike.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use k8s_openapi::api::core::v1::{Service, ServiceSpec};

use super::error::ConfigError;
use super::load::Documents;
use super::model::Config;
use crate::health_check::{HealthCheck, ANNOTATION as HEALTH_CHECK};
use crate::ipam::{
    AllocationRequest, Families, Family, FamilyPolicy, Port, Protocol, SharingKey, TrafficPolicy,
};
use crate::labels::{LabelSet, Labels};
use crate::names::{PoolName, ServiceKey};

/// The annotation naming the pool, in the order read: ironlb's, then MetalLB's current and
/// deprecated forms.
pub const POOL_ANNOTATIONS: [&str; 3] = [
    "ironlb.io/address-pool",
    "metallb.io/address-pool",
    "metallb.universe.tf/address-pool",
];
/// The annotation listing requested addresses (comma-separated), in the order read.
pub const IPS_ANNOTATIONS: [&str; 3] = [
    "ironlb.io/loadBalancerIPs",
    "metallb.io/loadBalancerIPs",
    "metallb.universe.tf/loadBalancerIPs",
];
/// The annotation carrying the sharing key, in the order read.
pub const SHARING_ANNOTATIONS: [&str; 3] = [
    "ironlb.io/allow-shared-ip",
    "metallb.io/allow-shared-ip",
    "metallb.universe.tf/allow-shared-ip",
];

/// A problem with one field of a Service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// The field path (`spec.ports[1].protocol`, `metadata.annotations["ironlb.io/address-pool"]`).
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl FieldError {
    fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Whether the Service is of type LoadBalancer (the only type that gets addresses).
pub fn is_load_balancer(svc: &Service) -> bool {
    svc.spec
        .as_ref()
        .and_then(|s| s.type_.as_deref())
        .is_some_and(|t| t == "LoadBalancer")
}

/// The Service's key: its namespace (`default` when unset, as kubectl does) and name.
pub fn service_key(svc: &Service) -> Result<ServiceKey, FieldError> {
    let name = svc
        .metadata
        .name
        .as_deref()
        .ok_or_else(|| FieldError::new("metadata.name", "is required"))?;
    let ns = svc.metadata.namespace.as_deref().unwrap_or("default");
    ServiceKey::new(ns, name).map_err(|e| FieldError::new("metadata", e.to_string()))
}

fn annotation_path(name: &str) -> String {
    format!("metadata.annotations[{name:?}]")
}

/// Reads the first of several equivalent annotations that is present; two present with
/// different values is an error, since which one wins would be a guess.
fn annotation<'a>(
    annotations: &'a BTreeMap<String, String>,
    names: &[&str],
    errors: &mut Vec<FieldError>,
) -> Option<(&'a str, String)> {
    let mut found: Option<(&str, &String)> = None;
    for name in names {
        if let Some(value) = annotations.get(*name) {
            match found {
                None => found = Some((name, value)),
                Some((first, v)) if v != value => errors.push(FieldError::new(
                    annotation_path(name),
                    format!("{value:?} disagrees with {first}: {v:?}; keep one of them"),
                )),
                Some(_) => {}
            }
        }
    }
    found.map(|(n, v)| (v.as_str(), annotation_path(n)))
}

/// Builds the allocator's request for a LoadBalancer Service; `namespace_labels` are the
/// labels of its Namespace. Every problem found is reported, not just the first.
pub fn request_from_service(
    svc: &Service,
    namespace_labels: &Labels,
) -> Result<AllocationRequest, Vec<FieldError>> {
    let mut errors = Vec::new();
    let key = service_key(svc).map_err(|e| vec![e])?;
    let spec = svc.spec.clone().unwrap_or_default();
    if !is_load_balancer(svc) {
        let found = spec.type_.as_deref().unwrap_or("ClusterIP");
        errors.push(FieldError::new(
            "spec.type",
            format!("only LoadBalancer Services get addresses, not {found}"),
        ));
    }
    let no_annotations = BTreeMap::new();
    let annotations = svc.metadata.annotations.as_ref().unwrap_or(&no_annotations);

    let ports = ports(&spec, &mut errors);
    let addresses = requested_addresses(&spec, annotations, &mut errors);
    let pool = requested_pool(annotations, &mut errors);
    let sharing_key = annotation(annotations, &SHARING_ANNOTATIONS, &mut errors)
        .and_then(|(v, _)| SharingKey::new(v));
    let families = families(&spec, &addresses, &mut errors);
    let traffic_policy = traffic_policy(&spec, &mut errors);
    let health_check = health_check(annotations, &mut errors);

    match (families, errors.is_empty()) {
        (Some(families), true) => Ok(AllocationRequest {
            service: key,
            ports,
            families,
            addresses,
            pool,
            sharing_key,
            traffic_policy,
            selector: spec
                .selector
                .as_ref()
                .map(LabelSet::from)
                .unwrap_or_default(),
            namespace_labels: LabelSet::interned(namespace_labels),
            service_labels: svc
                .metadata
                .labels
                .as_ref()
                .map(LabelSet::from)
                .unwrap_or_default(),
            health_check: health_check.map(Box::new),
        }),
        _ => Err(errors),
    }
}

/// The Service's ports that are valid (a number from 1 to 65535 and TCP, UDP or SCTP).
fn ports(spec: &ServiceSpec, errors: &mut Vec<FieldError>) -> Vec<Port> {
    let mut ports = Vec::new();
    for (i, p) in spec.ports.iter().flatten().enumerate() {
        let port = match u16::try_from(p.port) {
            Ok(port) if port > 0 => Some(port),
            _ => {
                errors.push(FieldError::new(
                    format!("spec.ports[{i}].port"),
                    format!("{} is not a port number (1-65535)", p.port),
                ));
                None
            }
        };
        let protocol = match p.protocol.as_deref().unwrap_or("TCP") {
            "TCP" => Some(Protocol::Tcp),
            "UDP" => Some(Protocol::Udp),
            "SCTP" => Some(Protocol::Sctp),
            other => {
                errors.push(FieldError::new(
                    format!("spec.ports[{i}].protocol"),
                    format!("{other:?} is not TCP, UDP or SCTP"),
                ));
                None
            }
        };
        if let (Some(port), Some(protocol)) = (port, protocol) {
            ports.push(Port { port, protocol });
        }
    }
    ports
}

/// The addresses asked for, by annotation or by the deprecated `spec.loadBalancerIP` (not
/// both).
fn requested_addresses(
    spec: &ServiceSpec,
    annotations: &BTreeMap<String, String>,
    errors: &mut Vec<FieldError>,
) -> Vec<IpAddr> {
    let mut addresses: Vec<IpAddr> = Vec::new();
    let from_annotation = annotation(annotations, &IPS_ANNOTATIONS, errors);
    let from_spec = spec.load_balancer_ip.as_deref().filter(|s| !s.is_empty());
    match (&from_annotation, from_spec) {
        (Some((_, path)), Some(_)) => errors.push(FieldError::new(
            "spec.loadBalancerIP",
            format!("is set together with {path}; use only the annotation (spec.loadBalancerIP is deprecated)"),
        )),
        (Some((value, path)), None) => {
            for item in value.split(',').map(str::trim) {
                match item.parse() {
                    Ok(a) => addresses.push(a),
                    Err(_) => errors.push(FieldError::new(
                        path.clone(),
                        format!("{item:?} is not an IP address"),
                    )),
                }
            }
        }
        (None, Some(ip)) => match ip.trim().parse() {
            Ok(a) => addresses.push(a),
            Err(_) => errors.push(FieldError::new(
                "spec.loadBalancerIP",
                format!("{ip:?} is not an IP address"),
            )),
        },
        (None, None) => {}
    }
    addresses
}

/// The pool asked for by annotation, if any.
fn requested_pool(
    annotations: &BTreeMap<String, String>,
    errors: &mut Vec<FieldError>,
) -> Option<PoolName> {
    match annotation(annotations, &POOL_ANNOTATIONS, errors) {
        Some((value, path)) => match PoolName::new(value) {
            Ok(p) => Some(p),
            Err(e) => {
                errors.push(FieldError::new(path, format!("{value:?}: {e}")));
                None
            }
        },
        None => None,
    }
}

/// The IP family policy and the families in order of preference; `addresses` decide the
/// order when `spec.ipFamilies` does not.
fn families(
    spec: &ServiceSpec,
    addresses: &[IpAddr],
    errors: &mut Vec<FieldError>,
) -> Option<Families> {
    let policy = match spec.ip_family_policy.as_deref() {
        None | Some("SingleStack") => Some(FamilyPolicy::SingleStack),
        Some("PreferDualStack") => Some(FamilyPolicy::PreferDualStack),
        Some("RequireDualStack") => Some(FamilyPolicy::RequireDualStack),
        Some(other) => {
            errors.push(FieldError::new(
                "spec.ipFamilyPolicy",
                format!("{other:?} is not SingleStack, PreferDualStack or RequireDualStack"),
            ));
            None
        }
    };
    let mut order = Vec::new();
    for (i, f) in spec.ip_families.iter().flatten().enumerate() {
        match f.as_str() {
            "IPv4" => order.push(Family::V4),
            "IPv6" => order.push(Family::V6),
            other => errors.push(FieldError::new(
                format!("spec.ipFamilies[{i}]"),
                format!("{other:?} is not IPv4 or IPv6"),
            )),
        }
    }
    let listed = spec.ip_families.as_ref().is_some_and(|f| !f.is_empty());
    if listed && order.is_empty() {
        // Every entry was wrong, and each is reported already.
        return None;
    }
    if !listed {
        // Kubernetes fills ipFamilies in; a hand-written manifest may not. Follow the
        // requested addresses, else default to IPv4 as single-stack clusters do; a dual-stack
        // policy then wants the other family too.
        let mut from_addresses: Vec<Family> = Vec::new();
        for f in addresses.iter().map(|a| Family::of(*a)) {
            if !from_addresses.contains(&f) {
                from_addresses.push(f);
            }
        }
        if let (Some(p), [] | [_]) = (policy, from_addresses.as_slice()) {
            let primary = from_addresses.first().copied().unwrap_or(Family::V4);
            return Some(Families::with_primary(p, primary));
        }
        order = from_addresses;
    }
    // ipFamilies as Kubernetes filled it (the cluster IPs' families) is taken as it is.
    policy.and_then(|p| match Families::new(p, &order) {
        Ok(f) => Some(f),
        Err(e) => {
            errors.push(FieldError::new("spec.ipFamilies", e.to_string()));
            None
        }
    })
}

/// `spec.externalTrafficPolicy`, Cluster when unset (or wrong, with an error).
fn traffic_policy(spec: &ServiceSpec, errors: &mut Vec<FieldError>) -> TrafficPolicy {
    match spec.external_traffic_policy.as_deref() {
        None | Some("Cluster") => TrafficPolicy::Cluster,
        Some("Local") => TrafficPolicy::Local,
        Some(other) => {
            errors.push(FieldError::new(
                "spec.externalTrafficPolicy",
                format!("{other:?} is not Cluster or Local"),
            ));
            TrafficPolicy::Cluster
        }
    }
}

/// The health check asked for by annotation, if any.
fn health_check(
    annotations: &BTreeMap<String, String>,
    errors: &mut Vec<FieldError>,
) -> Option<HealthCheck> {
    annotations.get(HEALTH_CHECK).and_then(|text| {
        text.parse::<HealthCheck>()
            .map_err(|e| {
                errors.push(FieldError::new(
                    annotation_path(HEALTH_CHECK),
                    e.to_string(),
                ))
            })
            .ok()
    })
}

/// The requests of every Service document (each Namespace's labels taken from the Namespace
/// documents), with every problem as a [`ConfigError`] naming the document; a Service with a
/// problem, or a second Service of the same key, gets no request.
pub fn requests_from_documents(
    docs: &Documents,
    config: &Config,
) -> (Vec<AllocationRequest>, Vec<ConfigError>) {
    let mut requests: BTreeMap<ServiceKey, AllocationRequest> = BTreeMap::new();
    let mut first_seen: BTreeMap<ServiceKey, String> = BTreeMap::new();
    let mut errors = Vec::new();
    let no_labels = Labels::new();
    for doc in &docs.services {
        let origin = Some(doc.origin.clone());
        let svc = &doc.object;
        let key = match service_key(svc) {
            Ok(k) => k,
            Err(e) => {
                let name = svc.metadata.name.clone().unwrap_or_default();
                errors.push(ConfigError::new(origin, "Service", name, e.path, e.message));
                continue;
            }
        };
        if let Some(first) = first_seen.get(&key) {
            errors.push(ConfigError::new(
                origin,
                "Service",
                key.to_string(),
                "metadata.name",
                format!("is defined twice; first at {first}"),
            ));
            requests.remove(&key);
            continue;
        }
        first_seen.insert(key.clone(), doc.origin.to_string());
        let ns_labels = config.namespaces.get(key.namespace()).unwrap_or(&no_labels);
        match request_from_service(svc, ns_labels) {
            Ok(r) => {
                requests.insert(key, r);
            }
            Err(errs) => errors.extend(errs.into_iter().map(|e| {
                ConfigError::new(
                    origin.clone(),
                    "Service",
                    key.to_string(),
                    e.path,
                    e.message,
                )
            })),
        }
    }
    (requests.into_values().collect(), errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<AllocationRequest, Vec<String>> {
        let svc: Service = serde_yaml::from_str(yaml).expect("test manifest parses");
        request_from_service(&svc, &Labels::new())
            .map_err(|errs| errs.iter().map(|e| e.to_string()).collect())
    }

    fn manifest(extra_meta: &str, extra_spec: &str) -> String {
        format!(
            "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n  namespace: shop\n{extra_meta}spec:\n  type: LoadBalancer\n  ports:\n  - port: 80\n{extra_spec}"
        )
    }

    #[test]
    fn a_plain_service() {
        let r = parse(&manifest("", "  selector:\n    app: web\n")).unwrap();
        assert_eq!(r.service.to_string(), "shop/web");
        assert_eq!(r.ports, vec![Port::tcp(80)]);
        assert_eq!(r.families, Families::ipv4());
        assert!(r.addresses.is_empty() && r.pool.is_none() && r.sharing_key.is_none());
        assert_eq!(r.traffic_policy, TrafficPolicy::Cluster);
        assert_eq!(r.selector.get("app"), Some("web"));
    }

    #[test]
    fn a_health_check_annotation_is_parsed_and_a_bad_one_named() {
        let meta = "  annotations:\n    ironlb.io/health-check: http:8080/healthz\n";
        let r = parse(&manifest(meta, "")).unwrap();
        assert_eq!(
            r.health_check.as_deref(),
            Some(&crate::health_check::HealthCheck::Http {
                port: 8080,
                path: "/healthz".into()
            })
        );
        let meta = "  annotations:\n    ironlb.io/health-check: icmp\n";
        let errs = parse(&manifest(meta, "")).unwrap_err();
        assert_eq!(
            errs,
            vec!["metadata.annotations[\"ironlb.io/health-check\"]: \"icmp\" is not a health check: use tcp:PORT or http:PORT/PATH".to_string()]
        );
    }

    #[test]
    fn annotations_in_every_form() {
        for prefix in ["ironlb.io", "metallb.io", "metallb.universe.tf"] {
            let meta = format!(
                "  annotations:\n    {prefix}/address-pool: gold\n    {prefix}/loadBalancerIPs: \"192.0.2.7, 2001:db8::7\"\n    {prefix}/allow-shared-ip: team-a\n"
            );
            let r = parse(&manifest(
                &meta,
                "  ipFamilyPolicy: RequireDualStack\n  ipFamilies: [IPv4, IPv6]\n",
            ))
            .unwrap();
            assert_eq!(
                r.pool.as_ref().map(|p| p.as_str()),
                Some("gold"),
                "{prefix}"
            );
            assert_eq!(r.addresses.len(), 2, "{prefix}");
            assert_eq!(r.sharing_key, SharingKey::new("team-a"), "{prefix}");
            assert_eq!(r.families.order(), &[Family::V4, Family::V6]);
        }
    }

    #[test]
    fn spec_load_balancer_ip_and_the_annotation_together_is_an_error() {
        let meta = "  annotations:\n    metallb.io/loadBalancerIPs: 192.0.2.7\n";
        let errs = parse(&manifest(meta, "  loadBalancerIP: 192.0.2.8\n")).unwrap_err();
        assert_eq!(errs, vec![
            "spec.loadBalancerIP: is set together with metadata.annotations[\"metallb.io/loadBalancerIPs\"]; use only the annotation (spec.loadBalancerIP is deprecated)".to_string()
        ]);
    }

    #[test]
    fn spec_load_balancer_ip_alone() {
        let r = parse(&manifest("", "  loadBalancerIP: 192.0.2.8\n")).unwrap();
        assert_eq!(r.addresses, vec!["192.0.2.8".parse::<IpAddr>().unwrap()]);
    }

    #[test]
    fn the_address_family_follows_requested_addresses_when_unset() {
        let meta = "  annotations:\n    ironlb.io/loadBalancerIPs: 2001:db8::9\n";
        let r = parse(&manifest(meta, "")).unwrap();
        assert_eq!(r.families, Families::ipv6());
    }

    #[test]
    fn disagreeing_annotation_forms_are_an_error() {
        let meta = "  annotations:\n    ironlb.io/address-pool: gold\n    metallb.io/address-pool: silver\n";
        let errs = parse(&manifest(meta, "")).unwrap_err();
        assert_eq!(errs, vec![
            "metadata.annotations[\"metallb.io/address-pool\"]: \"silver\" disagrees with ironlb.io/address-pool: \"gold\"; keep one of them".to_string()
        ]);
    }

    #[test]
    fn every_bad_field_is_reported() {
        let meta = "  annotations:\n    ironlb.io/loadBalancerIPs: \"192.0.2.1,banana\"\n    ironlb.io/address-pool: Gold\n";
        let spec = "  - port: 70000\n    protocol: ICMP\n  externalTrafficPolicy: Sometimes\n  ipFamilyPolicy: Maybe\n";
        let errs = parse(&manifest(meta, spec)).unwrap_err();
        assert_eq!(errs, vec![
            "spec.ports[1].port: 70000 is not a port number (1-65535)".to_string(),
            "spec.ports[1].protocol: \"ICMP\" is not TCP, UDP or SCTP".to_string(),
            "metadata.annotations[\"ironlb.io/loadBalancerIPs\"]: \"banana\" is not an IP address".to_string(),
            "metadata.annotations[\"ironlb.io/address-pool\"]: \"Gold\": \"Gold\" is not a valid name: use lower-case letters, digits, '-' and '.', starting and ending with a letter or digit".to_string(),
            "spec.ipFamilyPolicy: \"Maybe\" is not SingleStack, PreferDualStack or RequireDualStack".to_string(),
            "spec.externalTrafficPolicy: \"Sometimes\" is not Cluster or Local".to_string(),
        ]);
    }

    #[test]
    fn only_load_balancers() {
        let yaml = "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  ports:\n  - port: 80\n";
        assert_eq!(
            parse(yaml).unwrap_err(),
            vec!["spec.type: only LoadBalancer Services get addresses, not ClusterIP".to_string()]
        );
    }

    #[test]
    fn local_policy_udp_and_labels() {
        let meta = "  labels:\n    tier: edge\n";
        let spec = "    protocol: UDP\n  externalTrafficPolicy: Local\n  selector:\n    app: dns\n";
        let r = parse(&manifest(meta, spec)).unwrap();
        assert_eq!(r.traffic_policy, TrafficPolicy::Local);
        assert_eq!(r.ports, vec![Port::udp(80)]);
        assert_eq!(r.service_labels.get("tier"), Some("edge"));
        assert!(r.backend().is_some());
    }

    #[test]
    fn two_families_for_single_stack_is_an_error() {
        let errs = parse(&manifest("", "  ipFamilies: [IPv4, IPv6]\n")).unwrap_err();
        assert_eq!(
            errs,
            vec!["spec.ipFamilies: ipFamilyPolicy SingleStack allows one entry in ipFamilies, not two".to_string()]
        );
    }

    #[test]
    fn documents_become_requests_with_namespace_labels_and_located_errors() {
        let text = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n  labels:\n    env: prod\n---\n".to_string()
            + &manifest("", "")
            + "---\n"
            + &manifest("", "")
            + "---\napiVersion: v1\nkind: Service\nmetadata:\n  name: bad\nspec:\n  type: LoadBalancer\n  loadBalancerIP: nope\n---\napiVersion: v1\nkind: Service\nmetadata:\n  name: ok\nspec:\n  type: LoadBalancer\n";
        let docs = crate::config::Documents::from_str(&text, "svc.yaml")
            .into_result()
            .unwrap();
        let config = crate::config::validate(&docs).unwrap();
        let (reqs, errs) = requests_from_documents(&docs, &config);
        let keys: Vec<String> = reqs.iter().map(|r| r.service.to_string()).collect();
        assert_eq!(keys, ["default/ok"]);
        let errs: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
        assert_eq!(errs, [
            "svc.yaml (document 3): Service/shop/web: metadata.name: is defined twice; first at svc.yaml (document 2)",
            "svc.yaml (document 4): Service/default/bad: spec.loadBalancerIP: \"nope\" is not an IP address",
        ]);
        let (reqs, _) = requests_from_documents(
            &crate::config::Documents::from_str(&manifest("", ""), "one.yaml")
                .into_result()
                .unwrap(),
            &config,
        );
        assert_eq!(reqs[0].namespace_labels.get("env"), Some("prod"));
    }

    #[test]
    fn listed_ip_families_are_taken_as_kubernetes_filled_them() {
        // One entry under a dual-stack policy: a single-stack cluster.
        let prefer = parse(&manifest(
            "",
            "  ipFamilyPolicy: PreferDualStack\n  ipFamilies: [IPv6]\n",
        ))
        .unwrap();
        assert_eq!(prefer.families.policy(), FamilyPolicy::PreferDualStack);
        assert_eq!(prefer.families.order(), [Family::V6]);
        let errs = parse(&manifest(
            "",
            "  ipFamilyPolicy: RequireDualStack\n  ipFamilies: [IPv4]\n",
        ))
        .unwrap_err();
        assert_eq!(errs, vec!["spec.ipFamilies: ipFamilyPolicy RequireDualStack needs both families, but ipFamilies lists only IPv4 (the Service has cluster IPs of one family: a single-stack cluster)".to_string()]);
        let both = parse(&manifest(
            "",
            "  ipFamilyPolicy: RequireDualStack\n  ipFamilies: [IPv6, IPv4]\n",
        ))
        .unwrap();
        assert_eq!(both.families.order(), [Family::V6, Family::V4]);
        // A wrong entry is reported once, not also as an empty list.
        let errs = parse(&manifest("", "  ipFamilies: [IPv5]\n")).unwrap_err();
        assert_eq!(
            errs,
            vec!["spec.ipFamilies[0]: \"IPv5\" is not IPv4 or IPv6".to_string()]
        );
    }

    #[test]
    fn unlisted_ip_families_follow_the_policy_and_addresses() {
        // A hand-written manifest (standalone mode): a dual-stack policy wants both families.
        let r = parse(&manifest("", "  ipFamilyPolicy: RequireDualStack\n")).unwrap();
        assert_eq!(r.families.order(), [Family::V4, Family::V6]);
        let meta = "  annotations:\n    ironlb.io/loadBalancerIPs: 2001:db8::9\n";
        let r = parse(&manifest(meta, "  ipFamilyPolicy: PreferDualStack\n")).unwrap();
        assert_eq!(r.families.order(), [Family::V6, Family::V4]);
        let meta = "  annotations:\n    ironlb.io/loadBalancerIPs: 2001:db8::9,192.0.2.9\n";
        let r = parse(&manifest(meta, "  ipFamilyPolicy: RequireDualStack\n")).unwrap();
        assert_eq!(r.families.order(), [Family::V6, Family::V4]);
    }

    #[test]
    fn the_default_namespace() {
        let yaml =
            "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  type: LoadBalancer\n";
        assert_eq!(parse(yaml).unwrap().service.to_string(), "default/web");
    }
}
