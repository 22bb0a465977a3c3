//! Entry points of the fuzz targets (`fuzz/`) and of the corpus replay test
//! (`tests/fuzz_corpus.rs`): each takes bytes anyone on the network or any API client could
//! send, runs the code that would read them, and must return without panicking whatever they
//! are. Results are dropped; only crashes, hangs and memory blow-ups count.

use std::collections::BTreeMap;

use bytes::BytesMut;
use tokio_util::codec::Decoder;

use crate::announce::proto::{ToController, ToSpeaker};
use crate::config::{service::request_from_service, validate, Documents};
use crate::ipam::AllocationRequest;
use crate::labels::Labels;
use crate::net::bgp::packet::{self, Frames};
use crate::net::{arp, ndp};
use crate::raft::network::wire::{self, Envelope, Hello, HelloReply, RaftRequest, RaftResponse};

/// A fuzz target's body.
pub type Target = fn(&[u8]);

/// The fuzz targets, by name: what `cargo fuzz run <name>` and the replay test call.
pub const TARGETS: &[(&str, Target)] = &[
    ("arp_ndp", arp_ndp),
    ("bgp_message", bgp_message),
    ("bgp_session", bgp_session),
    ("wire_frames", wire_frames),
    ("config_yaml", config_yaml),
    ("admin_bodies", admin_bodies),
    ("bfd_packet", crate::net::bfd::fuzz::packet),
];

/// An Ethernet frame as a speaker's packet socket receives it.
pub fn arp_ndp(data: &[u8]) {
    let _ = arp::parse_request(data);
    let _ = arp::describe(data);
    let _ = ndp::parse_solicit(data);
    let _ = ndp::describe_advert(data);
}

/// One BGP message, with either AS number width.
pub fn bgp_message(data: &[u8]) {
    for asn4 in [true, false] {
        if let Ok(msg) = packet::decode(data, &mut packet::strict_context(asn4)) {
            inspect(&msg);
            // What parsed must encode again.
            let _ = packet::encode(&msg);
        }
    }
}

fn inspect(msg: &netgauze_bgp_pkt::BgpMessage) {
    match msg {
        netgauze_bgp_pkt::BgpMessage::Open(o) => {
            let _ = packet::read_open(o);
        }
        netgauze_bgp_pkt::BgpMessage::Notification(n) => {
            let _ = packet::notification_code(n);
        }
        _ => {}
    }
    let _ = packet::prefixes(msg);
    let _ = packet::next_hop(msg);
}

/// A BGP session's byte stream as its codec reads it, in the chunks TCP might deliver: the
/// first byte picks the chunk size and the AS number width.
pub fn bgp_session(data: &[u8]) {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(first % 64) + 1;
    let mut frames = Frames::new();
    frames.set_asn4(first & 0x80 == 0);
    let mut buf = BytesMut::new();
    for piece in rest.chunks(chunk) {
        buf.extend_from_slice(piece);
        loop {
            match frames.decode(&mut buf) {
                Ok(Some(msg)) => inspect(&msg),
                Ok(None) => break,
                Err(e) => {
                    // The session answers with a NOTIFICATION and drops the stream.
                    let _ = e.notification();
                    packet::discard(&mut buf);
                    return;
                }
            }
        }
    }
}

/// Every frame of the Raft port: hellos and their replies, Raft RPCs and answers, and the
/// speaker session's messages both ways.
pub fn wire_frames(data: &[u8]) {
    let _ = Hello::decode(data);
    let _ = HelloReply::decode(data);
    let _ = wire::decode::<Envelope<RaftRequest>>("request", data);
    let _ = wire::decode::<Envelope<RaftResponse>>("response", data);
    let _ = wire::decode::<ToController>("speaker message", data);
    let _ = wire::decode::<ToSpeaker>("speaker message", data);
}

/// A configuration as `ironlb check`, `ironlb standalone` and `PUT /v1/config` read it.
pub fn config_yaml(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let loaded = Documents::from_str(text, "fuzz");
    let _ = validate(&loaded.documents);
}

/// The admin API's request bodies: allocation requests, reservations, members, and Service
/// manifests (YAML or JSON).
pub fn admin_bodies(data: &[u8]) {
    let _ = serde_json::from_slice::<AllocationRequest>(data);
    let _ = serde_json::from_slice::<crate::api::views::Reservation>(data);
    let _ = serde_json::from_slice::<crate::api::views::AddMember>(data);
    let _ = serde_json::from_slice::<crate::api::views::ReserveMember>(data);
    let _ = serde_json::from_slice::<BTreeMap<String, serde_json::Value>>(data);
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(svc) = serde_yaml::from_str::<k8s_openapi::api::core::v1::Service>(text) {
            let _ = request_from_service(&svc, &Labels::new());
        }
    }
}
