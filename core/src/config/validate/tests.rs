//! The validator's table tests: a YAML stream per case and what it must give.

use std::net::Ipv4Addr;

use super::peers::hold_time_problem;
use super::*;

/// One table case: a YAML stream, and what validating it must give.
struct Case {
    name: &'static str,
    yaml: String,
    expect: Expect,
}

enum Expect {
    /// Valid; the function checks the result.
    Valid(fn(&Config)),
    /// These errors (load and validation), in this order, as displayed.
    Errors(Vec<&'static str>),
}

fn valid(name: &'static str, yaml: String, check: fn(&Config)) -> Case {
    Case {
        name,
        yaml,
        expect: Expect::Valid(check),
    }
}

fn errors(name: &'static str, yaml: String, errors: &[&'static str]) -> Case {
    Case {
        name,
        yaml,
        expect: Expect::Errors(errors.to_vec()),
    }
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
                assert_eq!(r1.bfd_profile.as_deref(), Some("fast"));
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
            assert!(!r1.ebgp_multi_hop && !r1.graceful_restart && !r1.disable_mp);
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
                assert!(r6.graceful_restart && r6.disable_mp);
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
        valid("nothing at all", String::new(), |c| {
            assert_eq!(*c, Config::default())
        }),
    ]
}

fn error_cases() -> Vec<Case> {
    vec![
        // Names.
        errors(
            "missing name",
            "apiVersion: ironlb.io/v1beta1\nkind: IPAddressPool\nmetadata: {}\n\
                 spec: {addresses: [192.0.2.0/24]}\n"
                .to_owned(),
            &["t.yaml (document 1): IPAddressPool: metadata.name: is required"],
        ),
        errors(
            "invalid name",
            pool("Public", "{addresses: [192.0.2.0/24]}"),
            &[
                "t.yaml (document 1): IPAddressPool/Public: metadata.name: \"Public\" is not \
                   a valid name: use lower-case letters, digits, '-' and '.', starting and \
                   ending with a letter or digit",
            ],
        ),
        errors(
            "duplicate pool name, without overlap noise",
            stream(&[public(), public()]),
            &[
                "t.yaml (document 2): IPAddressPool/public: metadata.name: duplicate name, \
                   first used in t.yaml (document 1)",
            ],
        ),
        errors(
            "duplicate names of other kinds",
            stream(&[
                peer_with("r1", ""),
                peer_with("r1", ""),
                l2("a", "{}"),
                l2("a", "{}"),
                bfd("f", "{}"),
                bfd("f", "{}"),
            ]),
            &[
                "t.yaml (document 2): BGPPeer/r1: metadata.name: duplicate name, first used \
                     in t.yaml (document 1)",
                "t.yaml (document 4): L2Advertisement/a: metadata.name: duplicate name, \
                     first used in t.yaml (document 3)",
                "t.yaml (document 6): BFDProfile/f: metadata.name: duplicate name, first \
                     used in t.yaml (document 5)",
            ],
        ),
        errors(
            "bad metadata labels",
            "apiVersion: ironlb.io/v1beta1\nkind: IPAddressPool\nmetadata:\n  name: p\n  \
                 labels: {'-x': a, ok: 'b c'}\nspec: {addresses: [192.0.2.0/24]}\n"
                .to_owned(),
            &[
                "t.yaml (document 1): IPAddressPool/p: metadata.labels[\"-x\"]: \"-x\" is \
                     not a valid label key: expected an optional DNS subdomain prefix and '/', \
                     then at most 63 letters, digits, '-', '_' or '.', starting and ending with \
                     a letter or digit",
                "t.yaml (document 1): IPAddressPool/p: metadata.labels[\"ok\"]: \"b c\" is \
                     not a valid label value: expected at most 63 letters, digits, '-', '_' or \
                     '.', starting and ending with a letter or digit",
            ],
        ),
        // IPAddressPool.
        errors(
            "no addresses",
            pool("p", "{addresses: []}"),
            &[
                "t.yaml (document 1): IPAddressPool/p: spec.addresses: must list at least one \
                   address range",
            ],
        ),
        errors(
            "no spec at all",
            "apiVersion: ironlb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: p}\n".to_owned(),
            &[
                "t.yaml (document 1): IPAddressPool/p: spec.addresses: must list at least one \
                   address range",
            ],
        ),
        errors(
            "reversed range",
            stream(&[
                pool("other", "{addresses: [203.0.113.0/24]}"),
                pool(
                    "public",
                    "{addresses: [198.51.100.0/24, 192.0.2.10-192.0.2.1]}",
                ),
            ]),
            &[
                "t.yaml (document 2): IPAddressPool/public: spec.addresses[1]: \
                   \"192.0.2.10-192.0.2.1\": range start is after its end",
            ],
        ),
        errors(
            "CIDR with host bits",
            pool("p", "{addresses: [192.0.2.1/24]}"),
            &[
                "t.yaml (document 1): IPAddressPool/p: spec.addresses[0]: \"192.0.2.1/24\": \
                   CIDR has host bits set; did you mean 192.0.2.0/24?",
            ],
        ),
        errors(
            "not an address",
            pool("p", "{addresses: [banana]}"),
            &[
                "t.yaml (document 1): IPAddressPool/p: spec.addresses[0]: \"banana\": not a \
                   CIDR (192.0.2.0/24) or a range (192.0.2.10-192.0.2.20): \"banana\"",
            ],
        ),
        errors(
            "range of two families",
            pool("p", "{addresses: ['192.0.2.1-2001:db8::1']}"),
            &["t.yaml (document 1): IPAddressPool/p: spec.addresses[0]: \
                   \"192.0.2.1-2001:db8::1\": range mixes IPv4 and IPv6"],
        ),
        errors(
            "prefix too long",
            pool("p", "{addresses: [192.0.2.0/33]}"),
            &[
                "t.yaml (document 1): IPAddressPool/p: spec.addresses[0]: \"192.0.2.0/33\": \
                   not a CIDR (192.0.2.0/24) or a range (192.0.2.10-192.0.2.20): invalid IP \
                   address syntax",
            ],
        ),
        errors(
            "overlap within a pool",
            pool(
                "p",
                "{addresses: [192.0.2.0/24, 198.51.100.0/24, 192.0.2.0/25]}",
            ),
            &[
                "t.yaml (document 1): IPAddressPool/p: spec.addresses[2]: \"192.0.2.0/25\" \
                   overlaps \"192.0.2.0/24\" at spec.addresses[0]",
            ],
        ),
        errors(
            "the same entry twice",
            pool("p", "{addresses: [192.0.2.7, 192.0.2.7]}"),
            &[
                "t.yaml (document 1): IPAddressPool/p: spec.addresses[1]: \"192.0.2.7\" \
                   overlaps \"192.0.2.7\" at spec.addresses[0]",
            ],
        ),
        errors(
            "overlap across pools",
            stream(&[
                public(),
                pool("b", "{addresses: [198.51.100.0/24, 192.0.2.128/25]}"),
            ]),
            &[
                "t.yaml (document 2): IPAddressPool/b: spec.addresses[1]: \"192.0.2.128/25\" \
                   overlaps \"192.0.2.0/24\" of pool public (spec.addresses[0])",
            ],
        ),
        errors(
            "overlap of ranges sharing one address",
            stream(&[
                pool("a", "{addresses: [192.0.2.10-192.0.2.20]}"),
                pool("b", "{addresses: [192.0.2.20-192.0.2.30]}"),
            ]),
            &["t.yaml (document 2): IPAddressPool/b: spec.addresses[0]: \
                   \"192.0.2.20-192.0.2.30\" overlaps \"192.0.2.10-192.0.2.20\" of pool a \
                   (spec.addresses[0])"],
        ),
        errors(
            "IPv6 overlap, reported on the later document whatever the address order",
            stream(&[
                pool("a", "{addresses: ['2001:db8::/120']}"),
                pool("b", "{addresses: ['2001:db8::/64']}"),
                pool("c", "{addresses: ['2001:db8::ff']}"),
            ]),
            &[
                "t.yaml (document 2): IPAddressPool/b: spec.addresses[0]: \"2001:db8::/64\" \
                     overlaps \"2001:db8::/120\" of pool a (spec.addresses[0])",
                "t.yaml (document 3): IPAddressPool/c: spec.addresses[0]: \"2001:db8::ff\" \
                     overlaps \"2001:db8::/120\" of pool a (spec.addresses[0])",
                "t.yaml (document 3): IPAddressPool/c: spec.addresses[0]: \"2001:db8::ff\" \
                     overlaps \"2001:db8::/64\" of pool b (spec.addresses[0])",
            ],
        ),
        errors(
            "negative priority",
            pool(
                "p",
                "{addresses: [192.0.2.0/24], serviceAllocation: {priority: -1}}",
            ),
            &[
                "t.yaml (document 1): IPAddressPool/p: spec.serviceAllocation.priority: -1: \
                   must not be negative",
            ],
        ),
        errors(
            "bad and repeated namespaces",
            pool(
                "p",
                "{addresses: [192.0.2.0/24], serviceAllocation: {namespaces: [web, Web_1, \
                     '', web]}}",
            ),
            &[
                "t.yaml (document 1): IPAddressPool/p: spec.serviceAllocation.namespaces[1]: \
                     \"Web_1\" is not a valid name: use lower-case letters, digits, '-' and '.', \
                     starting and ending with a letter or digit",
                "t.yaml (document 1): IPAddressPool/p: spec.serviceAllocation.namespaces[2]: \
                     must not be empty",
                "t.yaml (document 1): IPAddressPool/p: spec.serviceAllocation.namespaces[3]: \
                     \"web\": duplicate of spec.serviceAllocation.namespaces[0]",
            ],
        ),
        errors(
            "unknown selector operator",
            pool(
                "p",
                "{addresses: [192.0.2.0/24], serviceAllocation: {namespaceSelectors: \
                     [{matchExpressions: [{key: a, operator: Exists}, {key: b, operator: In, \
                     values: [x]}, {key: c, operator: Has}]}]}}",
            ),
            &["t.yaml (document 1): IPAddressPool/p: \
                   spec.serviceAllocation.namespaceSelectors[0].matchExpressions[2].operator: \
                   unknown operator \"Has\": expected In, NotIn, Exists or DoesNotExist"],
        ),
        errors(
            "In without values",
            pool(
                "p",
                "{addresses: [192.0.2.0/24], serviceAllocation: {serviceSelectors: \
                     [{matchExpressions: [{key: a, operator: In}]}]}}",
            ),
            &["t.yaml (document 1): IPAddressPool/p: \
                   spec.serviceAllocation.serviceSelectors[0].matchExpressions[0].values: \
                   operator \"In\" needs at least one value"],
        ),
        errors(
            "Exists with values",
            pool(
                "p",
                "{addresses: [192.0.2.0/24], serviceAllocation: {serviceSelectors: [{}, \
                     {matchExpressions: [{key: a, operator: Exists, values: [x]}]}]}}",
            ),
            &["t.yaml (document 1): IPAddressPool/p: \
                   spec.serviceAllocation.serviceSelectors[1].matchExpressions[0].values: \
                   operator \"Exists\" takes no values"],
        ),
        errors(
            "selectors that say the same thing",
            pool(
                "p",
                "{addresses: [192.0.2.0/24], serviceAllocation: {serviceSelectors: \
                     [{matchLabels: {app: web}}, {matchExpressions: [{key: app, operator: In, \
                     values: [web]}]}]}}",
            ),
            &["t.yaml (document 1): IPAddressPool/p: \
                   spec.serviceAllocation.serviceSelectors[1]: duplicate of \
                   spec.serviceAllocation.serviceSelectors[0]"],
        ),
        errors(
            "repeated values and expressions in a selector",
            stream(&[
                public(),
                l2(
                    "a",
                    "{nodeSelectors: [{matchExpressions: [{key: z, operator: NotIn, values: \
                         [x, y, x]}, {key: z, operator: In, values: [p, q]}, {key: z, operator: \
                         In, values: [q, p]}]}]}",
                ),
            ]),
            &[
                "t.yaml (document 2): L2Advertisement/a: \
                     spec.nodeSelectors[0].matchExpressions[0].values[2]: \"x\": duplicate value",
                "t.yaml (document 2): L2Advertisement/a: \
                     spec.nodeSelectors[0].matchExpressions[2]: duplicate of \
                     spec.nodeSelectors[0].matchExpressions[1]",
            ],
        ),
        errors(
            "bad label keys and values in selectors",
            stream(&[
                public(),
                l2(
                    "a",
                    "{nodeSelectors: [{matchLabels: {'bad key': x, 'Example.com/ok': x}, \
                         matchExpressions: [{key: '', operator: Exists}, {key: k, operator: In, \
                         values: ['-v']}]}]}",
                ),
            ]),
            &[
                "t.yaml (document 2): L2Advertisement/a: \
                     spec.nodeSelectors[0].matchLabels[\"Example.com/ok\"]: \"Example.com/ok\" \
                     is not a valid label key: expected an optional DNS subdomain prefix and \
                     '/', then at most 63 letters, digits, '-', '_' or '.', starting and ending \
                     with a letter or digit",
                "t.yaml (document 2): L2Advertisement/a: \
                     spec.nodeSelectors[0].matchLabels[\"bad key\"]: \"bad key\" is not a valid \
                     label key: expected an optional DNS subdomain prefix and '/', then at most \
                     63 letters, digits, '-', '_' or '.', starting and ending with a letter or \
                     digit",
                "t.yaml (document 2): L2Advertisement/a: \
                     spec.nodeSelectors[0].matchExpressions[0].key: label key must not be empty",
                "t.yaml (document 2): L2Advertisement/a: \
                     spec.nodeSelectors[0].matchExpressions[1].values[0]: \"-v\" is not a valid \
                     label value: expected at most 63 letters, digits, '-', '_' or '.', \
                     starting and ending with a letter or digit",
            ],
        ),
        // L2Advertisement.
        errors(
            "unknown and repeated pools",
            stream(&[
                public(),
                l2("a", "{ipAddressPools: [public, nope, public, Bad]}"),
            ]),
            &[
                "t.yaml (document 2): L2Advertisement/a: spec.ipAddressPools[1]: \"nope\": \
                     no IPAddressPool has this name",
                "t.yaml (document 2): L2Advertisement/a: spec.ipAddressPools[2]: \
                     \"public\": duplicate of spec.ipAddressPools[0]",
                "t.yaml (document 2): L2Advertisement/a: spec.ipAddressPools[3]: \"Bad\" is \
                     not a valid name: use lower-case letters, digits, '-' and '.', starting \
                     and ending with a letter or digit",
            ],
        ),
        errors(
            "a reference to a broken pool is not also unknown",
            stream(&[
                pool("broken", "{addresses: [nonsense]}"),
                l2("a", "{ipAddressPools: [broken]}"),
            ]),
            &[
                "t.yaml (document 1): IPAddressPool/broken: spec.addresses[0]: \"nonsense\": \
                   not a CIDR (192.0.2.0/24) or a range (192.0.2.10-192.0.2.20): \"nonsense\"",
            ],
        ),
        errors(
            "bad interfaces",
            stream(&[
                public(),
                l2(
                    "a",
                    "{interfaces: [eth0, averyveryverylongname, 'eth0:1', 'eth/0', \
                         'eth 0', '', eth0]}",
                ),
            ]),
            &[
                "t.yaml (document 2): L2Advertisement/a: spec.interfaces[1]: \
                     \"averyveryverylongname\" is longer than 15 bytes",
                "t.yaml (document 2): L2Advertisement/a: spec.interfaces[2]: \"eth0:1\" is \
                     not an interface name: it must not contain '/', ':' or whitespace",
                "t.yaml (document 2): L2Advertisement/a: spec.interfaces[3]: \"eth/0\" is \
                     not an interface name: it must not contain '/', ':' or whitespace",
                "t.yaml (document 2): L2Advertisement/a: spec.interfaces[4]: \"eth 0\" is \
                     not an interface name: it must not contain '/', ':' or whitespace",
                "t.yaml (document 2): L2Advertisement/a: spec.interfaces[5]: must not be \
                     empty",
                "t.yaml (document 2): L2Advertisement/a: spec.interfaces[6]: \"eth0\": \
                     duplicate of spec.interfaces[0]",
            ],
        ),
        errors(
            "bad pool selector",
            stream(&[
                public(),
                l2(
                    "a",
                    "{ipAddressPoolSelectors: [{matchExpressions: [{key: t, operator: in, \
                         values: [x]}]}]}",
                ),
            ]),
            &["t.yaml (document 2): L2Advertisement/a: \
                   spec.ipAddressPoolSelectors[0].matchExpressions[0].operator: unknown \
                   operator \"in\": expected In, NotIn, Exists or DoesNotExist"],
        ),
        // BGPAdvertisement.
        errors(
            "aggregation lengths out of range",
            stream(&[
                public(),
                bgp("a", "{aggregationLength: 33, aggregationLengthV6: 129}"),
                bgp("b", "{aggregationLength: 0, aggregationLengthV6: -1}"),
            ]),
            &[
                "t.yaml (document 2): BGPAdvertisement/a: spec.aggregationLength: 33: must \
                     be between 1 and 32",
                "t.yaml (document 2): BGPAdvertisement/a: spec.aggregationLengthV6: 129: \
                     must be between 1 and 128",
                "t.yaml (document 3): BGPAdvertisement/b: spec.aggregationLength: 0: must \
                     be between 1 and 32",
                "t.yaml (document 3): BGPAdvertisement/b: spec.aggregationLengthV6: -1: \
                     must be between 1 and 128",
            ],
        ),
        errors(
            "aggregation shorter than a pool's prefix",
            stream(&[
                public(),
                bgp("adv", "{aggregationLength: 16, ipAddressPools: [public]}"),
            ]),
            &[
                "t.yaml (document 2): BGPAdvertisement/adv: spec.aggregationLength: \
                   aggregationLength 16 is shorter than the /24 of pool public's 192.0.2.0/24",
            ],
        ),
        errors(
            "aggregation against every pool when none is named",
            stream(&[
                public(),
                pool("v6", "{addresses: ['2001:db8::/64']}"),
                bgp("adv", "{aggregationLength: 24, aggregationLengthV6: 48}"),
            ]),
            &[
                "t.yaml (document 3): BGPAdvertisement/adv: spec.aggregationLengthV6: \
                   aggregationLengthV6 48 is shorter than the /64 of pool v6's 2001:db8::/64",
            ],
        ),
        errors(
            "aggregation against the pools a selector picks",
            stream(&[
                "apiVersion: ironlb.io/v1beta1\nkind: IPAddressPool\nmetadata:\n  name: \
                     picked\n  labels: {bgp: 'yes'}\nspec: {addresses: [198.51.100.0/28]}\n"
                    .to_owned(),
                public(),
                bgp(
                    "adv",
                    "{aggregationLength: 24, ipAddressPoolSelectors: [{matchLabels: {bgp: \
                         'yes'}}]}",
                ),
            ]),
            &[
                "t.yaml (document 3): BGPAdvertisement/adv: spec.aggregationLength: \
                   aggregationLength 24 is shorter than the /28 of pool picked's \
                   198.51.100.0/28",
            ],
        ),
        errors(
            "aggregation against a range's widest block",
            stream(&[
                pool("p", "{addresses: [192.0.2.64-192.0.2.200]}"),
                bgp("adv", "{aggregationLength: 25}"),
            ]),
            &[
                "t.yaml (document 2): BGPAdvertisement/adv: spec.aggregationLength: \
                   aggregationLength 25 is shorter than the /26 of pool p's \
                   192.0.2.64-192.0.2.200",
            ],
        ),
        errors(
            "unknown and repeated peers",
            stream(&[
                public(),
                peer_with("r1", ""),
                bgp("adv", "{peers: [r1, r2, r1]}"),
            ]),
            &[
                "t.yaml (document 3): BGPAdvertisement/adv: spec.peers[1]: \"r2\": no \
                     BGPPeer has this name",
                "t.yaml (document 3): BGPAdvertisement/adv: spec.peers[2]: \"r1\": \
                     duplicate of spec.peers[0]",
            ],
        ),
        errors(
            "unknown pools of a BGP advertisement",
            stream(&[public(), bgp("adv", "{ipAddressPools: [other]}")]),
            &[
                "t.yaml (document 2): BGPAdvertisement/adv: spec.ipAddressPools[0]: \
                   \"other\": no IPAddressPool has this name",
            ],
        ),
        errors(
            "bad communities",
            stream(&[
                public(),
                bgp(
                    "adv",
                    "{communities: [gold, '65536:1', '1:2:3', 'big:1:2:3', \
                         'large:1:2:4294967296', '64500:1', '64500:1', ':1']}",
                ),
            ]),
            &[
                "t.yaml (document 2): BGPAdvertisement/adv: spec.communities[0]: \"gold\": \
                     no Community object defines this alias, and it is not a community value \
                     (a:b, large:a:b:c, or a well-known name such as no-export)",
                "t.yaml (document 2): BGPAdvertisement/adv: spec.communities[1]: \"65536:1\" \
                     is not a community value: \"65536\" is not a 16-bit number",
                "t.yaml (document 2): BGPAdvertisement/adv: spec.communities[2]: \"1:2:3\" \
                     is not a community value: expected a:b (16-bit numbers) or large:a:b:c \
                     (32-bit numbers)",
                "t.yaml (document 2): BGPAdvertisement/adv: spec.communities[3]: \
                     \"big:1:2:3\" is not a community value: a four-part community must start \
                     with \"large:\"",
                "t.yaml (document 2): BGPAdvertisement/adv: spec.communities[4]: \
                     \"large:1:2:4294967296\" is not a community value: \"4294967296\" is not a \
                     32-bit number",
                "t.yaml (document 2): BGPAdvertisement/adv: spec.communities[6]: \
                     \"64500:1\": duplicate of spec.communities[5]",
                "t.yaml (document 2): BGPAdvertisement/adv: spec.communities[7]: \":1\" is \
                     not a community value: \"\" is not a 16-bit number",
            ],
        ),
        errors(
            "an alias with a bad value is reported once, on its Community",
            stream(&[
                public(),
                community("c", "{communities: [{name: gold, value: '64500:99999'}]}"),
                bgp("adv", "{communities: [gold]}"),
            ]),
            &[
                "t.yaml (document 2): Community/c: spec.communities[0].value: \
                   \"64500:99999\" is not a community value: \"99999\" is not a 16-bit number",
            ],
        ),
        errors(
            "bad selectors of a BGP advertisement",
            stream(&[
                public(),
                bgp(
                    "adv",
                    "{nodeSelectors: [{matchLabels: {a: b}}, {matchLabels: {a: b}}], \
                         ipAddressPoolSelectors: [{matchExpressions: [{key: t, operator: \
                         DoesNotExist, values: [x]}]}]}",
                ),
            ]),
            &[
                "t.yaml (document 2): BGPAdvertisement/adv: \
                     spec.ipAddressPoolSelectors[0].matchExpressions[0].values: operator \
                     \"DoesNotExist\" takes no values",
                "t.yaml (document 2): BGPAdvertisement/adv: spec.nodeSelectors[1]: \
                     duplicate of spec.nodeSelectors[0]",
            ],
        ),
        // BGPPeer.
        errors(
            "missing local ASN",
            peer("r1", "{peerASN: 64501, peerAddress: 192.0.2.1}"),
            &["t.yaml (document 1): BGPPeer/r1: spec.myASN: is required"],
        ),
        errors(
            "ASNs out of range",
            stream(&[
                peer(
                    "r1",
                    "{myASN: 0, peerASN: 4294967296, peerAddress: 192.0.2.1}",
                ),
                peer("r2", "{myASN: -5, peerASN: 64501, peerAddress: 192.0.2.1}"),
            ]),
            &[
                "t.yaml (document 1): BGPPeer/r1: spec.myASN: 0: ASN out of range \
                     (1-4294967295)",
                "t.yaml (document 1): BGPPeer/r1: spec.peerASN: 4294967296: ASN out of \
                     range (1-4294967295)",
                "t.yaml (document 2): BGPPeer/r2: spec.myASN: -5: ASN out of range \
                     (1-4294967295)",
            ],
        ),
        errors(
            "peerASN and dynamicASN together",
            peer(
                "r1",
                "{myASN: 64500, peerASN: 64501, dynamicASN: external, peerAddress: \
                     192.0.2.1}",
            ),
            &[
                "t.yaml (document 1): BGPPeer/r1: spec.dynamicASN: must not be set together \
                   with peerASN",
            ],
        ),
        errors(
            "neither peerASN nor dynamicASN",
            peer("r1", "{myASN: 64500, peerAddress: 192.0.2.1}"),
            &[
                "t.yaml (document 1): BGPPeer/r1: spec.peerASN: is required (or set \
                   dynamicASN to internal or external)",
            ],
        ),
        errors(
            "unknown dynamicASN mode",
            peer(
                "r1",
                "{myASN: 64500, dynamicASN: Internal, peerAddress: 192.0.2.1}",
            ),
            &[
                "t.yaml (document 1): BGPPeer/r1: spec.dynamicASN: \"Internal\": must be \
                   internal or external",
            ],
        ),
        errors(
            "missing and bad peer addresses",
            stream(&[
                peer("r1", "{myASN: 64500, peerASN: 64501}"),
                peer(
                    "r2",
                    "{myASN: 64500, peerASN: 64501, peerAddress: 192.0.2.300}",
                ),
                peer(
                    "r3",
                    "{myASN: 64500, peerASN: 64501, peerAddress: 'fe80::1%eth0'}",
                ),
            ]),
            &[
                "t.yaml (document 1): BGPPeer/r1: spec.peerAddress: is required",
                "t.yaml (document 2): BGPPeer/r2: spec.peerAddress: \"192.0.2.300\": not an \
                     IP address",
                "t.yaml (document 3): BGPPeer/r3: spec.peerAddress: \"fe80::1%eth0\": not \
                     an IP address",
            ],
        ),
        errors(
            "BGP unnumbered",
            stream(&[
                peer("r1", "{myASN: 64500, peerASN: 64501, interface: eth1}"),
                peer_with("r2", "interface: eth1"),
            ]),
            &[
                "t.yaml (document 1): BGPPeer/r1: spec.interface: \"eth1\": BGP unnumbered \
                     is not supported by ironlb's speaker; set peerAddress to the peer's \
                     address instead",
                "t.yaml (document 2): BGPPeer/r2: spec.interface: \"eth1\": BGP unnumbered \
                     is not supported by ironlb's speaker; set peerAddress to the peer's \
                     address instead",
            ],
        ),
        errors(
            "source addresses",
            stream(&[
                peer_with("r1", "sourceAddress: '2001:db8::1'"),
                peer_with("r2", "sourceAddress: me"),
            ]),
            &[
                "t.yaml (document 1): BGPPeer/r1: spec.sourceAddress: \"2001:db8::1\" is \
                     IPv6 but peerAddress is IPv4",
                "t.yaml (document 2): BGPPeer/r2: spec.sourceAddress: \"me\": not an IP \
                     address",
            ],
        ),
        errors(
            "peer ports",
            stream(&[
                peer_with("r1", "peerPort: 0"),
                peer_with("r2", "peerPort: 65536"),
            ]),
            &[
                "t.yaml (document 1): BGPPeer/r1: spec.peerPort: 0: must be between 1 and \
                     65535",
                "t.yaml (document 2): BGPPeer/r2: spec.peerPort: 65536: must be between 1 \
                     and 65535",
            ],
        ),
        errors(
            "hold times",
            stream(&[
                peer_with("r1", "holdTime: 2s"),
                peer_with("r2", "holdTime: 500ms"),
                peer_with("r3", "holdTime: 3500ms"),
                peer_with("r4", "holdTime: 20h"),
            ]),
            &[
                "t.yaml (document 1): BGPPeer/r1: spec.holdTime: \"2s\": must be 0 or at \
                     least 3s",
                "t.yaml (document 2): BGPPeer/r2: spec.holdTime: \"500ms\": must be 0 or at \
                     least 3s",
                "t.yaml (document 3): BGPPeer/r3: spec.holdTime: \"3500ms\": must be a whole \
                     number of seconds",
                "t.yaml (document 4): BGPPeer/r4: spec.holdTime: \"20h\": must be at most \
                     65535s",
            ],
        ),
        errors(
            "duration syntax",
            stream(&[
                peer_with("r1", "holdTime: abc"),
                peer_with("r2", "holdTime: '90'"),
                peer_with("r3", "keepaliveTime: -5s"),
                peer_with("r4", "connectTime: 2d"),
            ]),
            &[
                "t.yaml (document 1): BGPPeer/r1: spec.holdTime: \"abc\" is not a duration: \
                     expected a number and a unit (h, m, s, ms, us, ns), such as 90s or 1m30s",
                "t.yaml (document 2): BGPPeer/r2: spec.holdTime: \"90\" is not a duration: \
                     a unit (h, m, s, ms, us, ns) must follow each number",
                "t.yaml (document 3): BGPPeer/r3: spec.keepaliveTime: \"-5s\": must not be \
                     negative",
                "t.yaml (document 4): BGPPeer/r4: spec.connectTime: \"2d\" is not a \
                     duration: unknown unit \"d\" (use h, m, s, ms, us or ns)",
            ],
        ),
        errors(
            "keepalive times",
            stream(&[
                peer_with("r1", "holdTime: 90s, keepaliveTime: 100s"),
                peer_with("r2", "holdTime: '0', keepaliveTime: 10s"),
                peer_with("r3", "keepaliveTime: 500ms"),
                peer_with("r4", "keepaliveTime: 1500ms"),
            ]),
            &[
                "t.yaml (document 1): BGPPeer/r1: spec.keepaliveTime: \"100s\": must not be \
                     longer than holdTime \"90s\"",
                "t.yaml (document 2): BGPPeer/r2: spec.keepaliveTime: \"10s\": must be 0 \
                     when holdTime is 0",
                "t.yaml (document 3): BGPPeer/r3: spec.keepaliveTime: \"500ms\": the \
                     holdTime it implies (3 × keepaliveTime = 1.5s) must be 0 or at least 3s; \
                     set holdTime",
                "t.yaml (document 4): BGPPeer/r4: spec.keepaliveTime: \"1500ms\": the \
                     holdTime it implies (3 × keepaliveTime = 4.5s) must be a whole number of \
                     seconds; set holdTime",
            ],
        ),
        errors(
            "connect times",
            stream(&[
                peer_with("r1", "connectTime: 0s"),
                peer_with("r2", "connectTime: 1500ms"),
                peer_with("r3", "connectTime: 65536s"),
            ]),
            &[
                "t.yaml (document 1): BGPPeer/r1: spec.connectTime: \"0s\": must be between \
                     1s and 65535s",
                "t.yaml (document 2): BGPPeer/r2: spec.connectTime: \"1500ms\": must be a \
                     whole number of seconds",
                "t.yaml (document 3): BGPPeer/r3: spec.connectTime: \"65536s\": must be \
                     between 1s and 65535s",
            ],
        ),
        errors(
            "router IDs",
            stream(&[
                peer_with("r1", "routerID: '2001:db8::1'"),
                peer_with("r2", "routerID: router-1"),
            ]),
            &[
                "t.yaml (document 1): BGPPeer/r1: spec.routerID: \"2001:db8::1\": must be an \
                     IPv4 address",
                "t.yaml (document 2): BGPPeer/r2: spec.routerID: \"router-1\": must be an \
                     IPv4 address",
            ],
        ),
        errors(
            "passwords",
            stream(&[
                peer_with("r1", "password: \"a\\nb\""),
                peer_with("r2", &format!("password: {}", "x".repeat(81))),
                peer_with("r3", "password: s3cret, passwordSecret: {name: bgp-auth}"),
            ]),
            &[
                "t.yaml (document 1): BGPPeer/r1: spec.password: must not contain CR or LF",
                "t.yaml (document 2): BGPPeer/r2: spec.password: is 81 bytes long; at most \
                     80 are allowed (TCP_MD5SIG_MAXKEYLEN)",
                "t.yaml (document 3): BGPPeer/r3: spec.passwordSecret: must not be set \
                     together with password",
            ],
        ),
        errors(
            "password secret references",
            stream(&[
                peer_with("r1", "passwordSecret: {namespace: ironlb}"),
                peer_with("r2", "passwordSecret: {name: Secret, namespace: Bad_NS}"),
            ]),
            &[
                "t.yaml (document 1): BGPPeer/r1: spec.passwordSecret.name: is required",
                "t.yaml (document 2): BGPPeer/r2: spec.passwordSecret.namespace: \"Bad_NS\" \
                     is not a valid name: use lower-case letters, digits, '-' and '.', starting \
                     and ending with a letter or digit",
                "t.yaml (document 2): BGPPeer/r2: spec.passwordSecret.name: \"Secret\" is \
                     not a valid name: use lower-case letters, digits, '-' and '.', starting \
                     and ending with a letter or digit",
            ],
        ),
        errors(
            "unknown BFD profile",
            stream(&[bfd("slow", "{}"), peer_with("r1", "bfdProfile: fast")]),
            &[
                "t.yaml (document 2): BGPPeer/r1: spec.bfdProfile: \"fast\": no BFDProfile \
                   has this name",
            ],
        ),
        errors(
            "a reference to a broken BFD profile is not also unknown",
            stream(&[
                bfd("fast", "{detectMultiplier: 1}"),
                peer_with("r1", "bfdProfile: fast"),
            ]),
            &[
                "t.yaml (document 1): BFDProfile/fast: spec.detectMultiplier: 1: must be \
                   between 2 and 255",
            ],
        ),
        errors(
            "eBGP multi-hop on iBGP sessions",
            stream(&[
                peer(
                    "r1",
                    "{myASN: 64500, peerASN: 64500, peerAddress: 192.0.2.1, ebgpMultiHop: \
                         true}",
                ),
                peer(
                    "r2",
                    "{myASN: 64500, dynamicASN: internal, peerAddress: 192.0.2.1, \
                         ebgpMultiHop: true}",
                ),
            ]),
            &[
                "t.yaml (document 1): BGPPeer/r1: spec.ebgpMultiHop: must not be set for an \
                     iBGP peer (peerASN equals myASN)",
                "t.yaml (document 2): BGPPeer/r2: spec.ebgpMultiHop: must not be set for an \
                     iBGP peer (dynamicASN is internal)",
            ],
        ),
        errors(
            "VRFs",
            peer_with("r1", "vrf: red"),
            &[
                "t.yaml (document 1): BGPPeer/r1: spec.vrf: \"red\": VRFs are not supported \
                   by ironlb",
            ],
        ),
        errors(
            "peer node selectors",
            peer_with(
                "r1",
                "nodeSelectors: [{matchExpressions: [{key: zone, operator: Gt, values: \
                     ['1']}]}]",
            ),
            &["t.yaml (document 1): BGPPeer/r1: \
                   spec.nodeSelectors[0].matchExpressions[0].operator: unknown operator \"Gt\": \
                   expected In, NotIn, Exists or DoesNotExist"],
        ),
        // Community.
        errors(
            "alias names",
            community(
                "c",
                "{communities: [{name: '', value: '1:1'}, {name: gold, value: '1:2'}, \
                     {name: gold, value: '1:3'}]}",
            ),
            &[
                "t.yaml (document 1): Community/c: spec.communities[0].name: must not be \
                     empty",
                "t.yaml (document 1): Community/c: spec.communities[2].name: \"gold\": \
                     duplicate of spec.communities[1]",
            ],
        ),
        errors(
            "an alias defined by two objects",
            stream(&[
                community(
                    "a",
                    "{communities: [{name: x, value: '1:1'}, {name: gold, value: '1:2'}]}",
                ),
                community("b", "{communities: [{name: gold, value: '1:2'}]}"),
            ]),
            &[
                "t.yaml (document 2): Community/b: spec.communities[0].name: \"gold\": already \
                   defined by Community/a (spec.communities[1].name)",
            ],
        ),
        errors(
            "alias values",
            community(
                "c",
                "{communities: [{name: a}, {name: b, value: 'large:1:2'}, {name: c, value: \
                     'large:1:2:3:4'}]}",
            ),
            &[
                "t.yaml (document 1): Community/c: spec.communities[0].value: is required",
                "t.yaml (document 1): Community/c: spec.communities[1].value: \"large:1:2\" \
                     is not a community value: expected a:b (16-bit numbers) or large:a:b:c \
                     (32-bit numbers)",
                "t.yaml (document 1): Community/c: spec.communities[2].value: \
                     \"large:1:2:3:4\" is not a community value: expected a:b (16-bit numbers) \
                     or large:a:b:c (32-bit numbers)",
            ],
        ),
        // BFDProfile.
        errors(
            "BFD intervals",
            bfd(
                "f",
                "{receiveInterval: 9, transmitInterval: 60001, echoInterval: -10}",
            ),
            &[
                "t.yaml (document 1): BFDProfile/f: spec.receiveInterval: 9: must be \
                     between 10 and 60000 (milliseconds)",
                "t.yaml (document 1): BFDProfile/f: spec.transmitInterval: 60001: must be \
                     between 10 and 60000 (milliseconds)",
                "t.yaml (document 1): BFDProfile/f: spec.echoInterval: -10: must be between \
                     10 and 60000 (milliseconds)",
            ],
        ),
        errors(
            "BFD multiplier and TTL",
            stream(&[
                bfd("a", "{detectMultiplier: 256, minimumTtl: 0}"),
                bfd("b", "{minimumTtl: 255}"),
            ]),
            &[
                "t.yaml (document 1): BFDProfile/a: spec.detectMultiplier: 256: must be \
                     between 2 and 255",
                "t.yaml (document 1): BFDProfile/a: spec.minimumTtl: 0: must be between 1 \
                     and 254",
                "t.yaml (document 2): BFDProfile/b: spec.minimumTtl: 255: must be between 1 \
                     and 254",
            ],
        ),
        // Namespaces.
        errors(
            "namespace documents",
            stream(&[
                "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n".to_owned(),
                "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n".to_owned(),
                "apiVersion: v1\nkind: Namespace\nmetadata: {labels: {a: b}}\n".to_owned(),
            ]),
            &[
                "t.yaml (document 2): Namespace/shop: metadata.name: duplicate name, first \
                     used in t.yaml (document 1)",
                "t.yaml (document 3): Namespace: metadata.name: is required",
            ],
        ),
        // Values the parser refuses are load errors, reported with the others.
        errors(
            "type mismatches",
            stream(&[
                public(),
                bgp("adv", "{localPref: -1}"),
                peer(
                    "r1",
                    "{myASN: '64500', peerASN: 64501, peerAddress: 192.0.2.1}",
                ),
                pool("p", "{addresses: [198.51.100.0/24], avoidBuggyIPs: maybe}"),
            ]),
            &[
                "t.yaml (document 2): BGPAdvertisement/adv: spec.localPref: invalid type: \
                     integer `-1`, expected u32 at line 9 column 19",
                "t.yaml (document 3): BGPPeer/r1: spec.myASN: invalid type: string \
                     \"64500\", expected i64 at line 14 column 15",
                "t.yaml (document 4): IPAddressPool/p: spec.avoidBuggyIPs: invalid type: \
                     string \"maybe\", expected a boolean at line 19 column 53",
            ],
        ),
        // Everything is reported at once.
        errors(
            "many errors across kinds",
            stream(&[
                pool("a", "{addresses: [192.0.2.0/24, 192.0.2.300]}"),
                pool(
                    "b",
                    "{addresses: [192.0.2.0/26], serviceAllocation: {priority: -3}}",
                ),
                l2("l2", "{ipAddressPools: [c], interfaces: ['bad if']}"),
                bgp(
                    "adv",
                    "{aggregationLength: 8, communities: [nope], peers: [r9]}",
                ),
                peer("r1", "{myASN: 0, peerAddress: x, holdTime: 1s, vrf: blue}"),
                community("c", "{communities: [{name: n, value: v}]}"),
                bfd("f", "{echoInterval: 5}"),
            ]),
            &[
                "t.yaml (document 1): IPAddressPool/a: spec.addresses[1]: \"192.0.2.300\": \
                     not a CIDR (192.0.2.0/24) or a range (192.0.2.10-192.0.2.20): \
                     \"192.0.2.300\"",
                "t.yaml (document 2): IPAddressPool/b: spec.serviceAllocation.priority: -3: \
                     must not be negative",
                "t.yaml (document 2): IPAddressPool/b: spec.addresses[0]: \"192.0.2.0/26\" \
                     overlaps \"192.0.2.0/24\" of pool a (spec.addresses[0])",
                "t.yaml (document 3): L2Advertisement/l2: spec.ipAddressPools[0]: \"c\": no \
                     IPAddressPool has this name",
                "t.yaml (document 3): L2Advertisement/l2: spec.interfaces[0]: \"bad if\" is \
                     not an interface name: it must not contain '/', ':' or whitespace",
                "t.yaml (document 4): BGPAdvertisement/adv: spec.peers[0]: \"r9\": no \
                     BGPPeer has this name",
                "t.yaml (document 4): BGPAdvertisement/adv: spec.communities[0]: \"nope\": \
                     no Community object defines this alias, and it is not a community value \
                     (a:b, large:a:b:c, or a well-known name such as no-export)",
                "t.yaml (document 4): BGPAdvertisement/adv: spec.aggregationLength: \
                     aggregationLength 8 is shorter than the /24 of pool a's 192.0.2.0/24",
                "t.yaml (document 4): BGPAdvertisement/adv: spec.aggregationLength: \
                     aggregationLength 8 is shorter than the /26 of pool b's 192.0.2.0/26",
                "t.yaml (document 5): BGPPeer/r1: spec.myASN: 0: ASN out of range \
                     (1-4294967295)",
                "t.yaml (document 5): BGPPeer/r1: spec.peerASN: is required (or set \
                     dynamicASN to internal or external)",
                "t.yaml (document 5): BGPPeer/r1: spec.peerAddress: \"x\": not an IP \
                     address",
                "t.yaml (document 5): BGPPeer/r1: spec.holdTime: \"1s\": must be 0 or at \
                     least 3s",
                "t.yaml (document 5): BGPPeer/r1: spec.vrf: \"blue\": VRFs are not \
                     supported by ironlb",
                "t.yaml (document 6): Community/c: spec.communities[0].value: \"v\" is not \
                     a community value: expected a:b (16-bit numbers) or large:a:b:c (32-bit \
                     numbers)",
                "t.yaml (document 7): BFDProfile/f: spec.echoInterval: 5: must be between \
                     10 and 60000 (milliseconds)",
            ],
        ),
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
    let cases: Vec<Case> = valid_cases().into_iter().chain(error_cases()).collect();
    assert!(cases.len() >= 70, "{} cases", cases.len());
    let mut failures = Vec::new();
    for case in &cases {
        match (&case.expect, outcome(&case.yaml)) {
            (Expect::Valid(check), Ok(config)) => {
                let checked = std::panic::catch_unwind(|| check(&config));
                if checked.is_err() {
                    failures.push(format!("{}: the checks failed", case.name));
                }
            }
            (Expect::Valid(_), Err(got)) => {
                failures.push(format!(
                    "{}: expected valid, got:\n  {}",
                    case.name,
                    got.join("\n  ")
                ));
            }
            (Expect::Errors(want), Ok(_)) => {
                failures.push(format!(
                    "{}: expected {} errors, got none",
                    case.name,
                    want.len()
                ));
            }
            (Expect::Errors(want), Err(got)) => {
                if *want != got {
                    failures.push(format!(
                        "{}:\n want:\n  {}\n got:\n  {}",
                        case.name,
                        want.join("\n  "),
                        got.join("\n  ")
                    ));
                }
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
        bgp("b", "{communities: ['64500:1']}"),
        peer_with("r1", "password: s3cret"),
        bfd("f", "{}"),
    ]);
    let config = outcome(&yaml).unwrap();
    let json = serde_json::to_string(&config).unwrap();
    assert_eq!(serde_json::from_str::<Config>(&json).unwrap(), config);
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
