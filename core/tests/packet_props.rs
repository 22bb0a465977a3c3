//! Malformed and truncated frames never crash the parsers: random bytes, and valid frames cut
//! short or with bytes flipped, into the ARP and NDP parsers and the speaker session decoder.

use ironlb::announce::proto::{ToController, ToSpeaker};
use ironlb::net::{arp, ndp};
use ironlb::raft::network::wire;
use pnet_base::MacAddr;
use proptest::prelude::*;

const CLIENT: MacAddr = MacAddr(0x02, 0, 0, 0, 0, 0x99);
const ME: MacAddr = MacAddr(0x02, 0, 0, 0, 0, 0x01);

fn valid_ns() -> Vec<u8> {
    ndp::solicit_frame(
        CLIENT,
        "2001:db8::99".parse().unwrap(),
        "2001:db8::10".parse().unwrap(),
    )
}

fn valid_arp() -> Vec<u8> {
    // A gratuitous request turned into a question by changing the target address.
    let [mut req, _] = arp::gratuitous(CLIENT, "192.0.2.99".parse().unwrap());
    req[38..42].copy_from_slice(&[192, 0, 2, 10]);
    req
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn random_bytes_never_crash_the_parsers(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = arp::parse_request(&bytes);
        let _ = ndp::parse_solicit(&bytes);
        let _ = ndp::describe_advert(&bytes);
        let _ = wire::decode::<ToController>("fuzz", &bytes);
        let _ = wire::decode::<ToSpeaker>("fuzz", &bytes);
    }

    #[test]
    fn damaged_solicitations_are_ignored_or_still_valid(
        cut in 0usize..90,
        flips in proptest::collection::vec((0usize..90, any::<u8>()), 0..4),
    ) {
        let mut f = valid_ns();
        for (i, x) in flips {
            if let Some(b) = f.get_mut(i) { *b ^= x; }
        }
        f.truncate(cut.max(1));
        if let Some(s) = ndp::parse_solicit(&f) {
            // Whatever got through must still be answerable without panicking, and the
            // answer must itself be a valid advertisement for the same target.
            let na = ndp::answer(ME, &s);
            let (target, _, mac) = ndp::describe_advert(&na).expect("a valid advertisement");
            prop_assert_eq!(target, s.target);
            prop_assert_eq!(mac, ME);
            prop_assert!(!s.target.is_multicast());
        }
    }

    #[test]
    fn damaged_arp_requests_are_ignored_or_still_valid(
        cut in 0usize..64,
        flips in proptest::collection::vec((0usize..60, any::<u8>()), 0..4),
    ) {
        let mut f = valid_arp();
        for (i, x) in flips {
            if let Some(b) = f.get_mut(i) { *b ^= x; }
        }
        f.truncate(cut);
        if let Some(q) = arp::parse_request(&f) {
            let reply = arp::reply(ME, &q);
            let (op, mac, sip, tip) = arp::describe(&reply).expect("a reply");
            prop_assert_eq!(op, 2);
            prop_assert_eq!(mac, ME);
            prop_assert_eq!(sip, q.target_ip);
            prop_assert_eq!(tip, q.sender_ip);
        }
    }
}

#[test]
fn the_valid_frames_used_above_are_accepted() {
    assert!(ndp::parse_solicit(&valid_ns()).is_some());
    assert!(arp::parse_request(&valid_arp()).is_some());
}

mod bgp {
    use bytes::BytesMut;
    use ipnet::IpNet;
    use ironlb::config::model::Community;
    use ironlb::net::bgp::attrs::RouteAttrs;
    use ironlb::net::bgp::packet::{self, Frames, Outgoing};
    use proptest::prelude::*;
    use std::collections::BTreeSet;
    use std::net::{Ipv4Addr, Ipv6Addr};
    use tokio_util::codec::Decoder;

    fn out(asn4: bool, ibgp: bool) -> Outgoing {
        Outgoing {
            my_asn: if asn4 { 4_200_000_001 } else { 64512 },
            ibgp,
            asn4,
            next_hop_v4: Some(Ipv4Addr::new(198, 51, 100, 1)),
            next_hop_v6: Some("2001:db8:51::1".parse().unwrap()),
            ipv4: true,
            ipv6: true,
        }
    }

    /// Feeds `bytes` through the session decoder in whatever pieces `cuts` says, until it
    /// errs or runs dry.
    fn feed(bytes: &[u8], cut: usize) {
        let mut codec = Frames::new();
        let mut buf = BytesMut::new();
        for piece in bytes.chunks(cut.max(1)) {
            buf.extend_from_slice(piece);
            loop {
                match codec.decode(&mut buf) {
                    Ok(Some(_)) => continue,
                    Ok(None) => break,
                    // An error ends the session; its NOTIFICATION must exist or be an I/O one.
                    Err(e) => {
                        let _ = e.notification();
                        return;
                    }
                }
            }
        }
    }

    fn prefix() -> impl Strategy<Value = IpNet> {
        prop_oneof![
            // Unicast only: no pool holds multicast addresses, and NLRI cannot carry them.
            (0u32..0xe000_0000, 8u8..=32).prop_map(|(a, l)| IpNet::new(
                Ipv4Addr::from(a).into(),
                l
            )
            .unwrap()
            .trunc()),
            (0u128..(0xff << 120), 16u8..=128).prop_map(|(a, l)| IpNet::new(
                Ipv6Addr::from(a).into(),
                l
            )
            .unwrap()
            .trunc()),
        ]
    }

    fn attrs() -> impl Strategy<Value = RouteAttrs> {
        (
            proptest::option::of(any::<u32>()),
            proptest::collection::btree_set(
                prop_oneof![
                    (any::<u16>(), any::<u16>()).prop_map(|(a, b)| Community::Standard(a, b)),
                    (any::<u32>(), any::<u32>(), any::<u32>())
                        .prop_map(|(a, b, c)| Community::Large(a, b, c)),
                ],
                0..6,
            ),
        )
            .prop_map(|(local_pref, c)| RouteAttrs {
                local_pref,
                communities: c.into_iter().collect(),
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn random_bytes_never_crash_the_bgp_decoder(
            bytes in proptest::collection::vec(any::<u8>(), 0..600),
            cut in 1usize..64,
        ) {
            feed(&bytes, cut);
            // The same bytes behind a valid marker and length reach the message parsers.
            let mut framed = vec![0xffu8; 16];
            framed.extend_from_slice(&((19 + bytes.len().min(4000)) as u16).to_be_bytes());
            framed.extend_from_slice(&bytes[..bytes.len().min(4001)]);
            feed(&framed, cut);
        }

        #[test]
        fn damaged_updates_never_crash_the_bgp_decoder(
            p in prefix(), a in attrs(), at in any::<prop::sample::Index>(), flip in 1u8..=255,
            cut in any::<prop::sample::Index>(),
        ) {
            let msgs = packet::updates(&out(true, true), &[(p, a)], &[]);
            for m in msgs {
                let mut bytes = packet::encode(&m).unwrap();
                let i = 19 + at.index(bytes.len() - 19);
                bytes[i] ^= flip;
                feed(&bytes, 7);
                let short = cut.index(bytes.len());
                feed(&bytes[..short], 3);
            }
        }
    }

    proptest! {
        // Each case packs hundreds of routes: fewer cases, each worth more.
        #![proptest_config(ProptestConfig::with_cases(200))]

        #[test]
        fn updates_decode_to_what_was_announced_and_withdrawn(
            routes in proptest::collection::btree_map(prefix(), attrs(), 0..300),
            gone in proptest::collection::btree_set(prefix(), 0..300),
            asn4 in any::<bool>(), ibgp in any::<bool>(),
        ) {
            let announce: Vec<(IpNet, RouteAttrs)> = routes.into_iter().collect();
            let withdraw: Vec<IpNet> = gone.into_iter().collect();
            let o = out(asn4, ibgp);
            let mut seen_ann = BTreeSet::new();
            let mut seen_wd = BTreeSet::new();
            let mut codec = Frames::new();
            codec.set_asn4(asn4);
            for m in packet::updates(&o, &announce, &withdraw) {
                let bytes = packet::encode(&m).unwrap();
                prop_assert!(bytes.len() <= 4096, "an UPDATE of {} bytes", bytes.len());
                let mut buf = BytesMut::from(&bytes[..]);
                let back = codec.decode(&mut buf).unwrap().unwrap();
                let (a, w) = packet::prefixes(&back);
                seen_ann.extend(a);
                seen_wd.extend(w);
            }
            let want_ann: BTreeSet<IpNet> = announce.iter().map(|(p, _)| *p).collect();
            let want_wd: BTreeSet<IpNet> = withdraw.iter().copied().collect();
            prop_assert_eq!(seen_ann, want_ann);
            prop_assert_eq!(seen_wd, want_wd);
        }
    }
}
