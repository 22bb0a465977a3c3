//! The validator's table tests for valid configurations: a YAML stream per case and the checks
//! its result must pass. Invalid configurations are YAML files, each naming its errors
//! (`core/tests/fixtures/invalid/`, read by `core/tests/invalid_configs.rs`).

use std::net::Ipv4Addr;

use super::peers::hold_time_problem;
use super::*;
use crate::config::model::{Advertisement, Families};

/// One table case: a valid YAML stream, and the checks its result must pass.
struct Case {
    name: &'static str,
    yaml: String,
    check: fn(&Config),
}

fn valid(name: &'static str, yaml: String, check: fn(&Config)) -> Case {
    Case { name, yaml, check }
}

fn doc(kind: &str, name: &str, spec: &str) -> String {
    format!(
        "apiVersion: ironlb.io/v1beta1\nkind: {kind}\nmetadata: {{name: {name}}}\n\
             spec: {spec}\n"
    )
}

fn pool(name: &str, spec: &str) -> String {
    doc("IPAddressPool", name, spec)
}

fn l2(name: &str, spec: &str) -> String {
    doc("L2Advertisement", name, spec)
}

fn bgp(name: &str, spec: &str) -> String {
    doc("BGPAdvertisement", name, spec)
}

fn peer(name: &str, spec: &str) -> String {
    doc("BGPPeer", name, spec)
}

fn community(name: &str, spec: &str) -> String {
    doc("Community", name, spec)
}

fn bfd(name: &str, spec: &str) -> String {
    doc("BFDProfile", name, spec)
}

/// A peer with myASN 64500, peerASN 64501 and peerAddress 192.0.2.1, plus `extra` fields.
fn peer_with(name: &str, extra: &str) -> String {
    let base = "myASN: 64500, peerASN: 64501, peerAddress: 192.0.2.1";
    if extra.is_empty() {
        peer(name, &format!("{{{base}}}"))
    } else {
        peer(name, &format!("{{{base}, {extra}}}"))
    }
}

/// The pool most cases lean on.
fn public() -> String {
    pool("public", "{addresses: [192.0.2.0/24]}")
}

fn stream(docs: &[String]) -> String {
    docs.join("---\n")
}

fn pool_name(s: &str) -> PoolName {
    PoolName::new(s).unwrap()
}

fn peer_name(s: &str) -> PeerName {
    PeerName::new(s).unwrap()
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn valid_cases() -> Vec<Case> {
    vec![
        valid("minimal pool", public(), |c| {
            let p = &c.pools[&pool_name("public")];
            assert_eq!(p.spec.ranges, [AddrRange::parse("192.0.2.0/24").unwrap()]);
            assert!(p.spec.auto_assign && !p.spec.avoid_buggy_ips);
            assert_eq!(p.spec.service_allocation, None);
            assert_eq!(c.pool_specs(), std::slice::from_ref(&p.spec));
            assert!(c.l2_advertisements.is_empty() && c.peers.is_empty());
        }),
        valid(
            "pool entries of every form",
            pool(
                "mixed",
                "{addresses: ['192.0.2.10 - 192.0.2.20', 198.51.100.7, '2001:db8::/64', \
                     '2001:db8:1::1-2001:db8:1::ff']}",
            ),
            |c| {
                let p = &c.pools[&pool_name("mixed")];
                let lens: Vec<u128> = p.spec.ranges.iter().map(|r| r.len()).collect();
                assert_eq!(lens, [11, 1, 1 << 64, 255]);
            },
        ),
        valid(
            "pool options and service allocation",
            pool(
                "p",
                "{addresses: [192.0.2.0/24], autoAssign: false, avoidBuggyIPs: true, \
                     serviceAllocation: {priority: 5, namespaces: [web, shop], \
                     namespaceSelectors: [{matchLabels: {team: web}}], serviceSelectors: \
                     [{matchExpressions: [{key: tier, operator: In, values: [fe]}]}]}}",
            ),
            |c| {
                let p = &c.pools[&pool_name("p")].spec;
                assert!(!p.auto_assign && p.avoid_buggy_ips);
                let sa = p.service_allocation.as_ref().unwrap();
                assert_eq!(sa.priority, 5);
                let ns: Vec<&str> = sa.namespaces.iter().map(|n| n.as_str()).collect();
                assert_eq!(ns, ["shop", "web"]);
                assert_eq!(sa.namespace_selectors[0].to_string(), "team=web");
                assert_eq!(sa.service_selectors[0].to_string(), "tier=fe");
            },
        ),
        valid(
            "priority-only service allocation",
            pool(
                "p",
                "{addresses: [192.0.2.0/24], serviceAllocation: {priority: 0}}",
            ),
            |c| {
                let sa = c.pools[&pool_name("p")].spec.service_allocation.clone();
                assert_eq!(sa, Some(ServiceAllocation::default()));
            },
        ),
        valid(
            "adjacent pools do not overlap",
            stream(&[
                pool("a", "{addresses: [192.0.2.0/25]}"),
                pool(
                    "b",
                    "{addresses: [192.0.2.128-192.0.2.255, '2001:db8::/64']}",
                ),
                pool("c", "{addresses: ['2001:db8:0:1::/64']}"),
            ]),
            |c| assert_eq!(c.pools.len(), 3),
        ),
        valid(
            "a full configuration",
            stream(&[
                "apiVersion: ironlb.io/v1beta1\nkind: IPAddressPool\nmetadata:\n  \
                     name: public\n  labels: {tier: public}\nspec:\n  addresses: \
                     [192.0.2.0/24, '2001:db8::/64']\n"
                    .to_owned(),
                pool(
                    "private",
                    "{addresses: [198.51.100.0/24], autoAssign: false}",
                ),
                l2(
                    "l2",
                    "{ipAddressPools: [public], nodeSelectors: [{matchLabels: {role: edge}}], \
                         interfaces: [eth0, bond0.100]}",
                ),
                bgp(
                    "bgp",
                    "{aggregationLength: 24, aggregationLengthV6: 64, localPref: 100, \
                         communities: [gold, '64500:2', 'large:64500:1:2'], \
                         ipAddressPoolSelectors: [{matchLabels: {tier: public}}], peers: [r1], \
                         nodeSelectors: [{matchExpressions: [{key: role, operator: In, \
                         values: [edge, core]}]}]}",
                ),
                peer_with(
                    "r1",
                    "holdTime: 30s, bfdProfile: fast, routerID: 192.0.2.254, password: s3cret",
                ),
                community("aliases", "{communities: [{name: gold, value: '64500:1'}]}"),
                bfd(
                    "fast",
                    "{receiveInterval: 100, transmitInterval: 100, detectMultiplier: 5, \
                         echoMode: true}",
                ),
            ]),
            |c| {
                assert_eq!(c.pools.len(), 2);
                assert!(!c.pools[&pool_name("private")].spec.auto_assign);
                assert_eq!(c.pools[&pool_name("public")].labels["tier"], "public");
                let l2 = &c.l2_advertisements[0];
                assert_eq!(l2.name, "l2");
                assert_eq!(l2.pools, PoolSelection::Named([pool_name("public")].into()));
                let ifs: Vec<&str> = l2.interfaces.iter().map(|i| i.as_str()).collect();
                assert_eq!(ifs, ["eth0", "bond0.100"]);
                let edge: Labels = [("role".to_owned(), "edge".to_owned())].into();
                assert!(l2.selects_node(&edge) && !l2.selects_node(&Labels::new()));
                let b = &c.bgp_advertisements[0];
                assert_eq!((b.aggregation_length, b.aggregation_length_v6), (24, 64));
                assert_eq!(b.local_pref, Some(100));
                assert_eq!(
                    b.communities,
                    [
                        Community::Standard(64500, 1),
                        Community::Standard(64500, 2),
                        Community::Large(64500, 1, 2)
                    ]
                );
                let selected: Vec<&str> =
                    b.pools.pools(&c.pools).map(|(n, _)| n.as_str()).collect();
                assert_eq!(selected, ["public"]);
                assert!(b.selects_peer(&peer_name("r1")) && !b.selects_peer(&peer_name("r2")));
                assert!(b.selects_node(&edge));
                let r1 = &c.peers[&peer_name("r1")];
                assert_eq!((r1.hold_time, r1.keepalive_time), (secs(30), secs(10)));
                assert_eq!(r1.bfd_profile.name(), Some("fast"));
                assert_eq!(r1.router_id, Some(Ipv4Addr::new(192, 0, 2, 254)));
                assert_eq!(r1.password.as_ref().map(|p| p.expose()), Some("s3cret"));
                assert!(!r1.is_internal());
                assert_eq!(c.communities["gold"], Community::Standard(64500, 1));
                let fast = &c.bfd_profiles["fast"];
                assert_eq!(fast.receive_interval, Duration::from_millis(100));
                assert_eq!(fast.transmit_interval, Duration::from_millis(100));
                assert_eq!(fast.echo_interval, Duration::from_millis(50));
                assert_eq!((fast.detect_multiplier, fast.minimum_ttl), (5, 254));
                assert!(fast.echo_mode && !fast.passive_mode);
            },
        ),
        valid(
            "L2 with an empty spec announces every pool everywhere",
            stream(&[
                public(),
                "apiVersion: ironlb.io/v1beta1\nkind: L2Advertisement\n\
                                     metadata: {name: all}\n"
                    .to_owned(),
            ]),
            |c| {
                let l2 = &c.l2_advertisements[0];
                assert_eq!(l2.pools, PoolSelection::All);
                assert!(l2.interfaces.is_empty() && l2.node_selectors.is_empty());
                assert!(l2.selects_node(&Labels::new()));
            },
        ),
        valid(
            "L2 pool selection by names and selectors",
            stream(&[
                public(),
                l2("b", "{ipAddressPoolSelectors: [{matchLabels: {tier: x}}]}"),
                l2(
                    "a",
                    "{ipAddressPools: [public], ipAddressPoolSelectors: \
                         [{matchExpressions: [{key: tier, operator: Exists}]}]}",
                ),
            ]),
            |c| {
                // Sorted by name, whatever the document order.
                let names: Vec<&str> = c
                    .l2_advertisements
                    .iter()
                    .map(|a| a.name.as_str())
                    .collect();
                assert_eq!(names, ["a", "b"]);
                assert!(matches!(
                    c.l2_advertisements[0].pools,
                    PoolSelection::NamedOrSelected { .. }
                ));
                assert!(matches!(
                    c.l2_advertisements[1].pools,
                    PoolSelection::Selected(_)
                ));
                // A selector that matches no pool selects none.
                assert_eq!(c.l2_advertisements[1].pools.pools(&c.pools).count(), 0);
            },
        ),
        valid(
            "BGP advertisement defaults",
            stream(&[public(), bgp("b", "{}")]),
            |c| {
                let b = &c.bgp_advertisements[0];
                assert_eq!((b.aggregation_length, b.aggregation_length_v6), (32, 128));
                assert_eq!(b.local_pref, None);
                assert!(b.peers.is_empty() && b.communities.is_empty());
                assert_eq!(b.pools, PoolSelection::All);
                assert!(b.selects_peer(&peer_name("any")));
            },
        ),
        valid(
            "aggregation length equal to the pool prefix",
            stream(&[
                pool("p", "{addresses: [192.0.2.0/24, '2001:db8::/64']}"),
                bgp("b", "{aggregationLength: 24, aggregationLengthV6: 64}"),
            ]),
            |c| assert_eq!(c.bgp_advertisements[0].aggregation_length, 24),
        ),
        valid(
            "aggregation length against a range's widest block",
            stream(&[
                pool("p", "{addresses: [192.0.2.64-192.0.2.200]}"),
                bgp("b", "{aggregationLength: 26}"),
            ]),
            |c| assert_eq!(c.bgp_advertisements[0].aggregation_length, 26),
        ),
        valid(
            "aggregation length is checked only against the pools announced",
            stream(&[
                public(),
                pool("single", "{addresses: [198.51.100.7]}"),
                bgp("b", "{aggregationLength: 24, ipAddressPools: [public]}"),
            ]),
            |c| assert_eq!(c.bgp_advertisements.len(), 1),
        ),
        valid(
            "an alias shadows the literal it looks like",
            stream(&[
                public(),
                community("c", "{communities: [{name: '65000:1', value: '65000:2'}]}"),
                bgp("b", "{communities: ['65000:1']}"),
            ]),
            |c| {
                let b = &c.bgp_advertisements[0];
                assert_eq!(b.communities, [Community::Standard(65000, 2)]);
            },
        ),
        valid(
            "aliases of several Community objects",
            stream(&[
                public(),
                community("c1", "{communities: [{name: gold, value: '64500:1'}]}"),
                community(
                    "c2",
                    "{communities: [{name: silver, value: 'large:64500:0:2'}]}",
                ),
                bgp("b", "{communities: [silver, gold]}"),
            ]),
            |c| {
                assert_eq!(c.communities.len(), 2);
                assert_eq!(
                    c.bgp_advertisements[0].communities,
                    [Community::Standard(64500, 1), Community::Large(64500, 0, 2)]
                );
            },
        ),
        valid("peer defaults", peer_with("r1", ""), |c| {
            let r1 = &c.peers[&peer_name("r1")];
            assert_eq!(r1.my_asn, 64500);
            assert_eq!(r1.peer_asn, PeerAsn::Exact(64501));
            assert_eq!(r1.peer_address, "192.0.2.1".parse::<IpAddr>().unwrap());
            assert_eq!(r1.peer_port, 179);
            assert_eq!((r1.hold_time, r1.keepalive_time), (secs(90), secs(30)));
            assert_eq!(r1.connect_time, secs(120));
            assert_eq!((r1.router_id, r1.source_address), (None, None));
            assert!(r1.password.is_none() && r1.password_secret.is_none());
            assert!(!r1.ebgp_multi_hop && !r1.graceful_restart);
            assert_eq!(r1.transport, PeerTransport::default());
            // One family, the peer address's, unless asked for both.
            assert_eq!(r1.families(), Families::of(r1.peer_address));
            assert!(r1.selects_node(&Labels::new()));
        }),
        valid(
            "keepalive defaults to a third of the hold time",
            peer_with("r1", "holdTime: 9s"),
            |c| {
                let r1 = &c.peers[&peer_name("r1")];
                assert_eq!((r1.hold_time, r1.keepalive_time), (secs(9), secs(3)));
            },
        ),
        valid(
            "hold time defaults to three keepalives",
            peer_with("r1", "keepaliveTime: 10s"),
            |c| {
                let r1 = &c.peers[&peer_name("r1")];
                assert_eq!((r1.hold_time, r1.keepalive_time), (secs(30), secs(10)));
            },
        ),
        valid(
            "hold time zero turns keepalives off",
            peer_with("r1", "holdTime: 0s"),
            |c| {
                let r1 = &c.peers[&peer_name("r1")];
                assert_eq!((r1.hold_time, r1.keepalive_time), (secs(0), secs(0)));
            },
        ),
        valid(
            "timers in Go syntax",
            peer_with(
                "r1",
                "holdTime: 1m30s, keepaliveTime: 30s, connectTime: 5s, peerPort: 1179",
            ),
            |c| {
                let r1 = &c.peers[&peer_name("r1")];
                assert_eq!((r1.hold_time, r1.keepalive_time), (secs(90), secs(30)));
                assert_eq!((r1.connect_time, r1.peer_port), (secs(5), 1179));
            },
        ),
        valid(
            "dynamic ASNs",
            stream(&[
                peer(
                    "int",
                    "{myASN: 64500, dynamicASN: internal, peerAddress: 192.0.2.1}",
                ),
                peer(
                    "ext",
                    "{myASN: 64500, dynamicASN: external, peerAddress: 192.0.2.2, \
                         ebgpMultiHop: true}",
                ),
            ]),
            |c| {
                let int = &c.peers[&peer_name("int")];
                assert_eq!(int.peer_asn, PeerAsn::Internal);
                assert!(int.is_internal());
                let ext = &c.peers[&peer_name("ext")];
                assert_eq!(ext.peer_asn, PeerAsn::External);
                assert!(ext.ebgp_multi_hop && !ext.is_internal());
            },
        ),
        valid(
            "an IPv6 session with a source address",
            peer(
                "r6",
                "{myASN: 4200000000, peerASN: 4294967295, peerAddress: '2001:db8::1', \
                     sourceAddress: '2001:db8::2', enableGracefulRestart: true, disableMP: true}",
            ),
            |c| {
                let r6 = &c.peers[&peer_name("r6")];
                assert_eq!(r6.my_asn, 4_200_000_000);
                assert_eq!(r6.peer_asn, PeerAsn::Exact(u32::MAX));
                assert_eq!(
                    r6.source_address,
                    Some("2001:db8::2".parse::<IpAddr>().unwrap())
                );
                assert!(r6.graceful_restart && r6.transport.disable_mp);
                assert_eq!(r6.families(), Families::of(r6.peer_address));
            },
        ),
        valid(
            "a VRF and both families on one session",
            peer_with("r1", "vrf: vrf-blue, dualStackAddressFamily: true"),
            |c| {
                let r1 = &c.peers[&peer_name("r1")];
                let vrf = r1.transport.vrf.as_ref().map(InterfaceName::as_str);
                assert_eq!(vrf, Some("vrf-blue"));
                assert_eq!(r1.families(), Families::BOTH);
                assert_eq!(r1.session().vrf.as_deref(), Some("vrf-blue"));
            },
        ),
        valid(
            "a password secret, and an empty one",
            stream(&[
                peer_with("r1", "passwordSecret: {name: bgp-auth, namespace: ironlb}"),
                peer_with("r2", "passwordSecret: {}, vrf: ''"),
            ]),
            |c| {
                let r1 = &c.peers[&peer_name("r1")];
                let secret = r1.password_secret.as_ref().unwrap();
                assert_eq!(secret.name, "bgp-auth");
                assert_eq!(secret.namespace.as_ref().unwrap().as_str(), "ironlb");
                assert!(c.peers[&peer_name("r2")].password_secret.is_none());
            },
        ),
        valid(
            "a password of 80 bytes",
            peer_with("r1", &format!("password: {}", "x".repeat(80))),
            |c| {
                assert_eq!(
                    c.peers[&peer_name("r1")]
                        .password
                        .as_ref()
                        .unwrap()
                        .expose()
                        .len(),
                    80
                )
            },
        ),
        valid("BFD profile defaults", bfd("plain", "{}"), |c| {
            assert_eq!(c.bfd_profiles["plain"], BfdProfile::default())
        }),
        valid(
            "BFD profile at its limits",
            bfd(
                "edge",
                "{receiveInterval: 10, transmitInterval: 60000, echoInterval: 10, \
                     detectMultiplier: 255, minimumTtl: 1, passiveMode: true}",
            ),
            |c| {
                let p = &c.bfd_profiles["edge"];
                assert_eq!(p.transmit_interval, secs(60));
                assert_eq!((p.detect_multiplier, p.minimum_ttl), (255, 1));
                assert!(p.passive_mode);
            },
        ),
        valid(
            "namespaces and services are taken in",
            stream(&[
                "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n  labels: \
                     {team: web}\n"
                    .to_owned(),
                "apiVersion: v1\nkind: Namespace\nmetadata: {name: empty}\n".to_owned(),
                "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: shop}\n\
                     spec: {type: LoadBalancer}\n"
                    .to_owned(),
            ]),
            |c| {
                let shop = Namespace::new("shop").unwrap();
                assert_eq!(c.namespaces[&shop]["team"], "web");
                assert!(c.namespaces[&Namespace::new("empty").unwrap()].is_empty());
            },
        ),
        valid(
            "service selectors on both advertisements",
            stream(&[
                public(),
                l2(
                    "l2",
                    "{serviceSelectors: [{matchLabels: {app: web}}, \
                         {matchExpressions: [{key: tier, operator: In, values: [front]}]}]}",
                ),
                bgp(
                    "b",
                    "{aggregationLength: 32, aggregationLengthV6: 128, \
                         serviceSelectors: [{matchExpressions: [{key: app, operator: Exists}]}]}",
                ),
            ]),
            |c| {
                let labels = |k: &str, v: &str| -> Labels { [(k.to_owned(), v.to_owned())].into() };
                let l2 = &c.l2_advertisements[0];
                assert_eq!(l2.pools, PoolSelection::All);
                assert_eq!(l2.service_selectors.len(), 2);
                assert!(l2.selects_service(&labels("app", "web")));
                assert!(l2.selects_service(&labels("tier", "front")));
                assert!(!l2.selects_service(&labels("app", "db")));
                assert!(!l2.selects_service(&Labels::new()));
                let b = &c.bgp_advertisements[0];
                assert_eq!((b.aggregation_length, b.aggregation_length_v6), (32, 128));
                assert!(b.selects_service(&labels("app", "db")));
                assert!(!b.selects_service(&labels("tier", "front")));
                let none: [&Labels; 0] = [];
                assert!(!b.selects_any_service(none));
            },
        ),
        valid(
            "no service selectors select every Service",
            stream(&[public(), l2("l2", "{}"), bgp("b", "{serviceSelectors: []}")]),
            |c| {
                let none: [&Labels; 0] = [];
                assert!(c.l2_advertisements[0].service_selectors.is_empty());
                assert!(c.l2_advertisements[0].selects_service(&Labels::new()));
                assert!(c.bgp_advertisements[0].selects_any_service(none));
            },
        ),
        valid("nothing at all", String::new(), |c| {
            assert_eq!(*c, Config::default())
        }),
    ]
}

/// Loads and validates a case's text, giving every error as displayed.
fn outcome(yaml: &str) -> Result<Config, Vec<String>> {
    let loaded = Documents::from_str(yaml, "t.yaml");
    let mut errors: Vec<ConfigError> = loaded.errors;
    let result = validate(&loaded.documents);
    if let Err(more) = &result {
        errors.extend(more.iter().cloned());
    }
    errors.sort_by(|a, b| a.origin.cmp(&b.origin));
    if errors.is_empty() {
        result.map_err(|_| Vec::new())
    } else {
        Err(errors.iter().map(|e| e.to_string()).collect())
    }
}

#[test]
fn validation_table() {
    // The invalid ones are YAML files: core/tests/invalid_configs.rs.
    let cases: Vec<Case> = valid_cases();
    assert!(cases.len() >= 20, "{} cases", cases.len());
    let mut failures = Vec::new();
    for case in &cases {
        match outcome(&case.yaml) {
            Ok(config) => {
                let check = case.check;
                if std::panic::catch_unwind(|| check(&config)).is_err() {
                    failures.push(format!("{}: the checks failed", case.name));
                }
            }
            Err(got) => {
                failures.push(format!(
                    "{}: expected valid, got:\n  {}",
                    case.name,
                    got.join("\n  ")
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn validated_pool_specs_feed_the_allocator_in_name_order() {
    let yaml = stream(&[
        pool("zeta", "{addresses: [203.0.113.0/24]}"),
        pool(
            "alpha",
            "{addresses: [198.51.100.0/24], serviceAllocation: {priority: 1}}",
        ),
    ]);
    let config = outcome(&yaml).unwrap();
    let names: Vec<String> = config
        .pool_specs()
        .iter()
        .map(|p| p.name.to_string())
        .collect();
    assert_eq!(names, ["alpha", "zeta"]);
}

#[test]
fn configs_survive_serialization() {
    let yaml = stream(&[
        public(),
        l2("l2", "{interfaces: [eth0]}"),
        l2(
            "web",
            "{ipAddressPools: [public], serviceSelectors: [{matchLabels: {app: web}}]}",
        ),
        bgp("b", "{communities: ['64500:1']}"),
        bgp("s", "{serviceSelectors: [{matchLabels: {app: web}}]}"),
        peer_with("r1", "password: s3cret"),
        bfd("f", "{}"),
    ]);
    let config = outcome(&yaml).unwrap();
    let json = serde_json::to_string(&config).unwrap();
    assert_eq!(serde_json::from_str::<Config>(&json).unwrap(), config);
    // The Raft port and format 1 of the disk are bincode, field by field.
    let bytes = bincode::serde::encode_to_vec(&config, bincode::config::standard()).unwrap();
    let (back, _): (Config, usize) =
        bincode::serde::decode_from_slice(&bytes, bincode::config::standard()).unwrap();
    assert_eq!(back, config);
}

/// The advertisements' stored form: the fields of the first release, so that one without
/// serviceSelectors keeps its bytes; the selectors ride in a variant of the pool selection.
#[test]
fn service_selectors_leave_the_stored_form_of_other_advertisements_alone() {
    let yaml = stream(&[
        public(),
        l2("plain", "{ipAddressPools: [public]}"),
        l2("web", "{serviceSelectors: [{matchLabels: {app: web}}]}"),
    ]);
    let config = outcome(&yaml).unwrap();
    let json = serde_json::to_value(&config.l2_advertisements).unwrap();
    assert_eq!(
        json[0],
        serde_json::json!({"name": "plain", "pools": {"Named": ["public"]},
                           "node_selectors": [], "interfaces": []})
    );
    let web = &json[1]["pools"]["ForServices"];
    assert_eq!(web["pools"], "All");
    assert_eq!(web["services"].as_array().map(Vec::len), Some(1));
    assert!(json[1].get("service_selectors").is_none());
}

#[test]
fn hold_time_rules() {
    assert_eq!(hold_time_problem(Duration::ZERO), None);
    assert_eq!(hold_time_problem(secs(3)), None);
    assert_eq!(hold_time_problem(secs(65535)), None);
    assert!(hold_time_problem(Duration::from_millis(2999)).is_some());
    assert!(hold_time_problem(Duration::from_millis(1)).is_some());
    assert!(hold_time_problem(secs(65536)).is_some());
    assert!(hold_time_problem(Duration::from_millis(3001)).is_some());
}

#[test]
fn label_syntax() {
    for key in ["app", "kubernetes.io/hostname", "a_b.c-d", "x/Y"] {
        assert_eq!(check_label_key(key), Ok(()), "{key}");
    }
    for key in ["", "/a", "a/", "A.com/x", "-a", "a b", &"k".repeat(64)] {
        assert!(check_label_key(key).is_err(), "{key}");
    }
    for value in ["", "v", "V_1.x-2", &"v".repeat(63)] {
        assert_eq!(check_label_value(value), Ok(()), "{value}");
    }
    for value in ["-v", "v-", "a b", &"v".repeat(64)] {
        assert!(check_label_value(value).is_err(), "{value}");
    }
}
