use super::*;
use tokio_util::codec::{Decoder, Encoder};

fn out(ibgp: bool) -> Outgoing {
    Outgoing {
        my_asn: 4_200_000_001,
        ibgp,
        asn4: true,
        next_hop_v4: Some("198.51.100.1".parse().unwrap()),
        next_hop_v6: Some("2001:db8:51::1".parse().unwrap()),
        ipv4: true,
        ipv6: true,
    }
}

fn roundtrip(m: &BgpMessage) -> BgpMessage {
    let bytes = encode(m).unwrap();
    assert!(bytes.len() <= MAX_MESSAGE_LEN, "{} bytes", bytes.len());
    let mut f = Frames::new();
    let mut buf = BytesMut::from(&bytes[..]);
    f.decode(&mut buf).unwrap().unwrap()
}

#[test]
fn the_open_round_trips_with_its_capabilities() {
    let m = open(&OpenParams {
        asn: 4_200_000_001,
        hold_time: 90,
        router_id: "198.51.100.1".parse().unwrap(),
        graceful_restart: Some(120),
        families: Families::BOTH,
    });
    let BgpMessage::Open(o) = roundtrip(&m) else {
        panic!()
    };
    let p = read_open(&o);
    assert_eq!(p.asn, 4_200_000_001);
    assert_eq!(o.my_as(), AS_TRANS);
    assert!(p.four_octet_as && p.ipv4_unicast && p.ipv6_unicast && p.route_refresh);
    assert_eq!(p.graceful_restart, Some(120));
}

#[test]
fn a_one_family_open_offers_that_family_alone_also_for_graceful_restart() {
    for (addr, v4) in [("198.51.100.250", true), ("2001:db8:51::250", false)] {
        let families = Families::of(addr.parse().unwrap());
        let m = open(&OpenParams {
            asn: 64512,
            hold_time: 90,
            router_id: "198.51.100.1".parse().unwrap(),
            graceful_restart: Some(120),
            families,
        });
        let BgpMessage::Open(o) = roundtrip(&m) else {
            panic!()
        };
        let p = read_open(&o);
        assert_eq!((p.ipv4_unicast, p.ipv6_unicast), (v4, !v4), "{addr}");
        let gr: Vec<AddressType> = o
            .capabilities()
            .into_iter()
            .filter_map(|c| match c {
                BgpCapability::GracefulRestartCapability(g) => Some(g),
                _ => None,
            })
            .flat_map(|g| {
                g.address_families()
                    .iter()
                    .map(|f| f.address_type())
                    .collect::<Vec<_>>()
            })
            .collect();
        let want = if v4 {
            AddressType::Ipv4Unicast
        } else {
            AddressType::Ipv6Unicast
        };
        assert_eq!(gr, vec![want], "{addr}");
    }
}

#[test]
fn ten_thousand_prefixes_pack_into_full_messages_of_at_most_4096_bytes() {
    let attrs = RouteAttrs {
        local_pref: None,
        communities: vec![
            Community::Standard(64512, 100),
            Community::Large(64512, 1, 2),
        ],
    };
    let announce: Vec<(IpNet, RouteAttrs)> = (0..10_000u32)
        .map(|i| {
            let a = std::net::Ipv4Addr::from(0xc612_0000 + i); // 198.18.0.0/15
            (
                IpNet::V4(ipnet::Ipv4Net::new(a, 32).unwrap()),
                attrs.clone(),
            )
        })
        .collect();
    let msgs = updates(&out(false), &announce, &[]);
    let mut seen = 0;
    for m in &msgs {
        let back = roundtrip(m);
        assert_eq!(&back, m);
        seen += prefixes(&back).0.len();
    }
    assert_eq!(seen, 10_000);
    // A /32 takes 5 bytes: about 800 to a message.
    assert!(msgs.len() < 15, "{} messages", msgs.len());
}

#[test]
fn ipv6_goes_in_mp_reach_with_the_global_next_hop_and_withdrawals_in_mp_unreach() {
    let p6: IpNet = "2001:db8:51::100/128".parse().unwrap();
    let p4: IpNet = "198.51.100.100/32".parse().unwrap();
    let msgs = updates(&out(true), &[(p6, RouteAttrs::default())], &[p4, p6]);
    let (ann, wd): (Vec<_>, Vec<_>) = msgs.iter().map(|m| prefixes(&roundtrip(m))).unzip();
    assert_eq!(ann.concat(), vec![p6]);
    assert_eq!(wd.concat(), vec![p4, p6]);
    assert_eq!(next_hop(&msgs[2]), Some("2001:db8:51::1".parse().unwrap()));
    // Families the session does not carry are left out.
    let mut v4_only = out(false);
    v4_only.ipv6 = false;
    assert!(updates(&v4_only, &[(p6, RouteAttrs::default())], &[p6]).is_empty());
    assert_eq!(roundtrip(&end_of_rib(true)), end_of_rib(true));
    assert_eq!(roundtrip(&end_of_rib(false)), end_of_rib(false));
}

#[test]
fn bad_lengths_and_garbage_become_notifications() {
    let mut f = Frames::new();
    let mut short = BytesMut::from(&[0xffu8; 16][..]);
    short.extend_from_slice(&[0, 18, 4]);
    let e = f.decode(&mut short).unwrap_err();
    let Some(BgpMessage::Notification(n)) = e.notification() else {
        panic!()
    };
    assert_eq!(notification_code(&n), (1, 2));
    let mut bad_marker = BytesMut::from(&[0u8; 16][..]);
    bad_marker.extend_from_slice(&[0, 19, 4]);
    let e = f.decode(&mut bad_marker).unwrap_err();
    let Some(BgpMessage::Notification(n)) = e.notification() else {
        panic!()
    };
    assert_eq!(notification_code(&n), (1, 1));
    // Writing and reading our own NOTIFICATIONs keeps their codes.
    for (n, code) in [
        (Notify::HoldTimerExpired, (4, 0)),
        (Notify::AdministrativeShutdown, (6, 2)),
        (Notify::BfdDown, (6, 10)),
        (Notify::BadPeerAs, (2, 2)),
        (Notify::UnexpectedMessage(1), (5, 1)),
    ] {
        let BgpMessage::Notification(back) = roundtrip(&notification(n)) else {
            panic!()
        };
        assert_eq!(notification_code(&back), code);
    }
    let mut buf = BytesMut::new();
    f.encode(BgpMessage::KeepAlive, &mut buf).unwrap();
    assert_eq!(buf.len(), HEADER_LEN);
}
