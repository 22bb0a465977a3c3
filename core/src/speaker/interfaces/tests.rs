//! The exclusion list decided name by name, the pattern syntax, the discovery filter and the
//! rescan's diff.

use super::*;

#[test]
fn the_default_exclusions_are_metallbs() {
    let d = ExcludeList::default();
    for name in [
        "veth0",
        "veth1a2b3c",
        "cali123",
        "calico-x",
        "cni0",
        "docker0",
        "docker_gwbridge",
        "flannel.1",
        "flannel-wg",
        "kube-ipvs0",
        "lo",
        "cbr0",
        "dummy0",
        "virbr0",
        "lxcbr0",
        "lxc12ab",
        "tunl0",
        "nodelocaldns",
    ] {
        assert!(!eligible(name, &d), "{name} should be excluded");
    }
    // MetalLB answers on these: physical NICs, bonds, VLANs and plain bridges, and the
    // CNI devices its list does not name.
    for name in [
        "eth0",
        "eth0.100",
        "ens3",
        "enp0s31f6",
        "eno1",
        "bond0",
        "vlan100",
        "br0",
        "lo0",
        "loc",
        "myveth",
        "cilium_host",
        "vxlan.calico",
        "weave",
    ] {
        assert!(eligible(name, &d), "{name} should be eligible");
    }
}

#[test]
fn metallbs_regex_form_matches_like_the_globs() {
    let regexes = ExcludeList::parse(
        "^docker.*,^cbr.*,^dummy.*,^virbr.*,^lxcbr.*,^veth.*,^lo$,^cali.*,^tunl.*,^flannel.*,^kube-ipvs.*,^cni.*,^nodelocaldns.*,^lxc.*",
    )
    .unwrap();
    for name in [
        "veth0",
        "lo",
        "lo0",
        "cni0",
        "eth0",
        "flannel.1",
        "br0",
        "xveth",
    ] {
        assert_eq!(
            eligible(name, &regexes),
            eligible(name, &ExcludeList::default()),
            "{name}"
        );
    }
}

#[test]
fn patterns_parse_as_globs_or_anchored_regexes() {
    let p = |s: &str| NamePattern::parse(s).unwrap();
    assert!(p("eth?").matches("eth1") && !p("eth?").matches("eth10"));
    assert!(p("flannel.1").matches("flannel.1") && !p("flannel.1").matches("flannelx1"));
    assert!(p("^flannel\\.1$").matches("flannel.1"));
    assert!(!p("^flannel\\.1$").matches("flannelx1"));
    assert!(p("^flannel.1$").matches("flannelx1"));
    // Unanchored at one end: a regex matches anywhere there.
    assert!(p("calico$").matches("vxlan.calico"));
    assert!(p("^eth").matches("eth0.100"));
    assert!(p("*ipvs*").matches("kube-ipvs0"));
    assert!(p("a*b*c").matches("axxbyyc") && !p("a*b*c").matches("axxbyy"));
    for bad in ["^(veth|cali)", "^eth[0-9]", "^eth+", "eth[0]", "^x\\d"] {
        assert!(NamePattern::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn the_list_can_be_replaced_extended_or_turned_off() {
    let none = ExcludeList::parse("none").unwrap();
    assert!(eligible("veth0", &none) && eligible("docker0", &none));
    assert_eq!(ExcludeList::parse("").unwrap(), none);
    assert_eq!(
        ExcludeList::parse("none,veth*"),
        Err(PatternError::NoneWithOthers)
    );
    let own = ExcludeList::parse("veth*, storage?").unwrap();
    assert!(!eligible("veth0", &own) && !eligible("storage1", &own));
    assert!(eligible("docker0", &own));
    let more = ExcludeList::parse("default,cilium_*").unwrap();
    assert!(!eligible("cilium_host", &more) && !eligible("docker0", &more));
    assert_eq!(more.patterns().len(), DEFAULT_EXCLUDED.len() + 1);
    assert_eq!(
        ExcludeList::parse("default").unwrap(),
        ExcludeList::default()
    );
}

#[test]
fn discovery_takes_ethernet_interfaces_that_are_not_ports_or_noarp() {
    let d = ExcludeList::default();
    let ether = LinkFacts {
        kind: 1,
        flags: 0x1003,
        master: None,
    };
    assert_eq!(discoverable("eth0", &ether, &d), Ok(()));
    assert_eq!(
        discoverable("veth9", &ether, &d),
        Err(Skip::Excluded("veth*".into()))
    );
    let lo = LinkFacts {
        kind: 772,
        ..ether.clone()
    };
    assert_eq!(
        discoverable("lo", &lo, &ExcludeList::none()),
        Err(Skip::NotEthernet)
    );
    let wg = LinkFacts {
        kind: 65534,
        ..ether.clone()
    };
    assert_eq!(discoverable("wg0", &wg, &d), Err(Skip::NotEthernet));
    let port = LinkFacts {
        master: Some("br0".into()),
        ..ether.clone()
    };
    assert_eq!(
        discoverable("eth1", &port, &d),
        Err(Skip::Enslaved("br0".into()))
    );
    let noarp = LinkFacts {
        flags: 0x1083,
        ..ether
    };
    assert_eq!(discoverable("eth2", &noarp, &d), Err(Skip::NoArp));
}

fn link(index: u32, last: u8) -> Link {
    Link {
        index,
        mac: MacAddr::new(2, 0, 0, 0, 0, last),
    }
}

#[test]
fn the_rescan_opens_new_closes_vanished_and_reopens_changed_interfaces() {
    let open: BTreeMap<String, Link> = [
        ("eth0".to_string(), link(2, 1)),
        ("eth1".to_string(), link(3, 2)),
        ("vlan7".to_string(), link(9, 1)),
        ("bond0".to_string(), link(4, 4)),
    ]
    .into();
    let found: BTreeMap<String, Link> = [
        ("eth0".to_string(), link(2, 1)),
        // Recreated under the same name: a new index.
        ("vlan7".to_string(), link(12, 1)),
        // A new MAC.
        ("bond0".to_string(), link(4, 5)),
        ("eth2".to_string(), link(13, 3)),
    ]
    .into();
    let c = diff(&open, &found);
    assert_eq!(c.close, ["bond0", "eth1", "vlan7"].map(String::from).into());
    assert_eq!(
        c.open,
        [
            ("bond0".to_string(), link(4, 5)),
            ("eth2".to_string(), link(13, 3)),
            ("vlan7".to_string(), link(12, 1)),
        ]
        .into()
    );
    assert!(diff(&found, &found).is_empty());
    assert_eq!(diff(&found, &BTreeMap::new()).close.len(), 4);
}

#[test]
fn a_named_interface_that_does_not_exist_is_passed_over_not_fatal() {
    let s = scan(&Selection::Named(vec!["ironlb-nosuch0".into()])).unwrap();
    assert!(s.links.is_empty());
    assert!(matches!(
        s.skipped.get("ironlb-nosuch0"),
        Some(Skip::Unreadable(_))
    ));
}

#[test]
fn discovery_never_lists_the_loopback() {
    let s = scan(&Selection::Discover(ExcludeList::none())).unwrap();
    assert!(!s.links.contains_key("lo"));
    assert_eq!(s.skipped.get("lo"), Some(&Skip::NotEthernet));
}
