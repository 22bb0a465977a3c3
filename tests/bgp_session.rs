//! The speaker's BGP session against a hostile peer: a raw TCP listener on the lab's host leg
//! that the speaker connects to, sending malformed, truncated and out-of-order messages. Every
//! error gets its NOTIFICATION, and the speaker connects again without crashing. Needs root
//! (CI runs it with IRONLB_REQUIRE_LAB=1, where anything missing fails).
//!
//! The byte strings below are hand-made on purpose: they are what a broken peer sends, which
//! no encoder would produce.

use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Duration;

use ironlb::net::bgp::packet::{self, OpenParams};
use ironlb_lab::l2::{self, L2Lab, L2Options};
use ironlb_lab::netns::{self, Lan};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_ironlb"))
}

const MARKER: [u8; 16] = [0xff; 16];

/// One message as it is on the wire: its type and body.
async fn read_msg(s: &mut TcpStream) -> Option<(u8, Vec<u8>)> {
    let mut head = [0u8; 19];
    tokio::time::timeout(Duration::from_secs(15), s.read_exact(&mut head))
        .await
        .ok()?
        .ok()?;
    let len = usize::from(u16::from_be_bytes([head[16], head[17]]));
    let mut body = vec![0u8; len.saturating_sub(19)];
    s.read_exact(&mut body).await.ok()?;
    Some((head[18], body))
}

/// Reads until a NOTIFICATION comes; its code and subcode.
async fn notification(s: &mut TcpStream) -> (u8, u8) {
    loop {
        match read_msg(s).await {
            Some((3, body)) => return (body[0], body[1]),
            Some(_) => continue,
            None => panic!("the speaker closed without a NOTIFICATION"),
        }
    }
}

fn message(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut m = MARKER.to_vec();
    m.extend_from_slice(&((19 + body.len()) as u16).to_be_bytes());
    m.push(kind);
    m.extend_from_slice(body);
    m
}

fn open(asn: u32, hold: u16) -> Vec<u8> {
    packet::encode(&packet::open(&OpenParams {
        asn,
        hold_time: hold,
        router_id: Ipv4Addr::new(198, 51, 100, 254),
        graceful_restart: None,
        families: packet::Families::BOTH,
    }))
    .expect("an OPEN encodes")
}

/// The next connection from the speaker, after its OPEN.
async fn next_session(l: &TcpListener) -> TcpStream {
    let (mut s, _) = tokio::time::timeout(Duration::from_secs(20), l.accept())
        .await
        .expect("the speaker connects again")
        .expect("accept");
    let (kind, _) = read_msg(&mut s).await.expect("the speaker's OPEN");
    assert_eq!(kind, 1, "the speaker starts with an OPEN");
    s
}

/// Past the OPEN exchange into Established.
async fn establish(l: &TcpListener, hold: u16) -> TcpStream {
    let mut s = next_session(l).await;
    s.write_all(&open(64513, hold)).await.expect("write");
    s.write_all(&message(4, &[])).await.expect("write");
    let (kind, _) = read_msg(&mut s).await.expect("the speaker's KEEPALIVE");
    assert_eq!(kind, 4);
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_peer_gets_notifications_and_the_speaker_keeps_reconnecting() {
    if !netns::require() {
        return;
    }
    let lab = L2Lab::start(
        bin(),
        L2Options {
            nodes: 1,
            controllers: 1,
            ..L2Options::default()
        },
    )
    .await;
    let listener = TcpListener::bind((Lan::HOST, 0)).await.expect("listen");
    let port = listener.local_addr().expect("address").port();
    lab.configure(&format!(
        "apiVersion: ironlb.io/v1beta1
kind: IPAddressPool
metadata: {{name: bgp}}
spec: {{addresses: [203.0.113.0/24]}}
---
apiVersion: ironlb.io/v1beta1
kind: BGPPeer
metadata: {{name: raw}}
spec: {{myASN: 64512, peerASN: 64513, peerAddress: {}, peerPort: {port}, holdTime: 3s, connectTime: 1s}}
---
apiVersion: ironlb.io/v1beta1
kind: BGPAdvertisement
metadata: {{name: bgp}}
spec: {{ipAddressPools: [bgp]}}
",
        Lan::HOST
    ))
    .await;
    lab.allocate(&l2::service("web", "shop", "")).await;

    // A header whose marker is not all ones: Connection Not Synchronized.
    let mut s = next_session(&listener).await;
    let mut bad = message(4, &[]);
    bad[0] = 0;
    s.write_all(&bad).await.expect("write");
    assert_eq!(notification(&mut s).await, (1, 1), "bad marker");

    // A length beyond 4096: Bad Message Length.
    let mut s = next_session(&listener).await;
    let mut long = MARKER.to_vec();
    long.extend_from_slice(&5000u16.to_be_bytes());
    long.push(2);
    s.write_all(&long).await.expect("write");
    assert_eq!(notification(&mut s).await, (1, 2), "bad length");

    // An unknown message type: Bad Message Type.
    let mut s = next_session(&listener).await;
    s.write_all(&message(9, &[])).await.expect("write");
    assert_eq!(notification(&mut s).await, (1, 3), "bad type");

    // A KEEPALIVE before any OPEN: Finite State Machine Error, unexpected in OpenSent.
    let mut s = next_session(&listener).await;
    s.write_all(&message(4, &[])).await.expect("write");
    assert_eq!(notification(&mut s).await, (5, 1), "out of order");

    // Half an OPEN, then the connection closes: nothing to answer, the speaker tries again.
    let mut s = next_session(&listener).await;
    let o = open(64513, 9);
    s.write_all(&o[..o.len() / 2]).await.expect("write");
    drop(s);

    // An OPEN from the wrong AS: Bad Peer AS.
    let mut s = next_session(&listener).await;
    s.write_all(&open(64999, 9)).await.expect("write");
    assert_eq!(notification(&mut s).await, (2, 2), "bad peer AS");

    // A hold time of 1 s: Unacceptable Hold Time.
    let mut s = next_session(&listener).await;
    s.write_all(&open(64513, 1)).await.expect("write");
    assert_eq!(notification(&mut s).await, (2, 6), "hold time 1");

    // Established, then an UPDATE whose ORIGIN is 5: an UPDATE Message Error.
    let mut s = establish(&listener, 9).await;
    // No withdrawn routes; 4 octets of attributes: ORIGIN (well-known, transitive) = 5.
    let update = message(2, &[0, 0, 0, 4, 0x40, 1, 1, 5]);
    s.write_all(&update).await.expect("write");
    let (code, _) = notification(&mut s).await;
    assert_eq!(code, 3, "a malformed UPDATE");

    // Established, then silence: the speaker's own hold timer (3 s) expires.
    let mut s = establish(&listener, 3).await;
    assert_eq!(notification(&mut s).await, (4, 0), "hold timer");

    // An OPEN in Established: Finite State Machine Error, unexpected in Established.
    let mut s = establish(&listener, 9).await;
    s.write_all(&open(64513, 9)).await.expect("write");
    assert_eq!(notification(&mut s).await, (5, 3), "OPEN when established");

    // Still there, and a good session still works: the routes arrive.
    let mut s = establish(&listener, 9).await;
    let mut saw_update = false;
    for _ in 0..4 {
        if let Some((2, body)) = read_msg(&mut s).await {
            // An UPDATE with attributes (not just an End-of-RIB) carries the Service's route.
            if body.len() > 4 {
                saw_update = true;
                break;
            }
        }
    }
    assert!(saw_update, "no route announced:\n{}", lab.logs());
    assert!(lab.speakers[0].running());
    let sent = lab
        .speaker_metric(
            0,
            "ironlb_bgp_notifications_total{peer=\"raw\",direction=\"sent\",code=\"4/0\"}",
        )
        .await;
    assert_eq!(sent, Some(1.0), "{}", lab.logs());
}
