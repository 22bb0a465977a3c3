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
