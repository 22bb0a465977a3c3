//! A node's session to the leader replaced or its assignments lost: the node still ends up
//! holding what it owns. Seen with 300 simulated speakers (`ironlb-bench speakers`), where
//! links reconnect under load and dozens of addresses never reached their owners.

use super::test_support::{addr, fixture, view, TIMING};
use super::*;
use crate::announce::assignment::{Accept, AddressDelta, Receiver};
use crate::announce::proto::Heartbeat;
use std::time::Duration;

/// The node's end: a receiver following leadership (1, 1) with a lease.
pub(super) fn node() -> Receiver {
    let mut rx = Receiver::default();
    rx.follow((1, 1));
    rx.unfence();
    rx
}

/// Hands the node every assignment waiting on `queue` (`deliver`), or loses them; returns
/// how many there were and how many the node applied.
pub(super) fn drain(
    queue: &mut mpsc::Receiver<ToSpeaker>,
    rx: &mut Receiver,
    deliver: bool,
) -> (usize, usize) {
    let (mut seen, mut applied) = (0, 0);
    while let Ok(msg) = queue.try_recv() {
        let ToSpeaker::Assignment(a) = msg else {
            continue;
        };
        seen += 1;
        let delta = AddressDelta {
            id: a.id,
            base: a.base,
            upsert: a.upsert,
            remove: a.remove,
        };
        if deliver && matches!(rx.accept(&delta), Accept::Apply(_)) {
            applied += 1;
        }
    }
    (seen, applied)
}

pub(super) fn report(
    node: &NodeName,
    conn: u64,
    tx: &mpsc::Sender<ToSpeaker>,
    seq: u64,
    rx: &Receiver,
) -> Report {
    Report {
        node: node.clone(),
        conn,
        heartbeat: Heartbeat {
            seq,
            interfaces: vec![crate::config::InterfaceName::new("eth0").unwrap()],
            applied: rx.applied(),
            want_full: rx.want_full(),
            fenced: rx.fenced(),
            ..Heartbeat::default()
        },
        tx: tx.clone(),
    }
}

/// A publisher leading in term 1.
fn start() -> (
    Arc<crate::config::Config>,
    actix::Addr<AssignmentPublisher>,
    Arc<crate::watchdog::Watchdog>,
) {
    let (config, publisher, _commits, watchdog) = fixture(None);
    publisher.do_send(Leadership { term: Some(1) });
    (config, publisher, watchdog)
}

/// The node reconnects: its new session's whole set must be applied (not ignored as older
/// than what the old session sent), and a report of the old session read late must not
/// take the node's state back to that session.
#[actix_rt::test]
async fn a_node_that_reconnects_is_served_on_its_new_session() {
    let (config, publisher, _watchdog) = start();
    let n1 = NodeName::new("n1").unwrap();
    publisher.do_send(ViewChanged(view(&config, &n1, &["default/a"])));
    let mut rx = node();
    let (tx1, mut q1) = mpsc::channel(64);
    publisher.do_send(report(&n1, 1, &tx1, 1, &rx));
    tokio::time::sleep(Duration::from_millis(30)).await;
    assert_eq!(
        drain(&mut q1, &mut rx, true),
        (1, 1),
        "the first session's whole set"
    );
    // A few Service changes on the first session, each applied and acknowledged.
    let mut seq = 1;
    for services in [&["default/a", "default/b"][..], &["default/a"][..]] {
        publisher.do_send(ViewChanged(view(&config, &n1, services)));
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert_eq!(
            drain(&mut q1, &mut rx, true),
            (1, 1),
            "a change on the first session"
        );
        seq += 1;
        publisher.do_send(report(&n1, 1, &tx1, seq, &rx));
    }
    let old_applied = rx.applied();

    // The link reconnects: session 2. Then a report of session 1, queued before, is read.
    let (tx2, mut q2) = mpsc::channel(64);
    publisher.do_send(report(&n1, 2, &tx2, seq + 1, &rx));
    let mut stale = report(&n1, 1, &tx1, seq + 2, &rx);
    stale.heartbeat.want_full = true;
    publisher.do_send(stale);
    tokio::time::sleep(Duration::from_millis(30)).await;
    assert_eq!(
        drain(&mut q2, &mut rx, true),
        (1, 1),
        "the new session's whole set was not applied"
    );
    assert_ne!(rx.applied(), old_applied);
    assert!(rx.held().contains_key(&addr()));
    assert_eq!(
        drain(&mut q1, &mut rx, false).0,
        0,
        "the old session was served again"
    );
    // The node acknowledges on the new session and stays served there.
    publisher.do_send(report(&n1, 2, &tx2, seq + 3, &rx));
    publisher.do_send(ViewChanged(view(&config, &n1, &["default/c"])));
    tokio::time::sleep(Duration::from_millis(30)).await;
    assert_eq!(
        drain(&mut q2, &mut rx, true),
        (1, 1),
        "a change on the new session"
    );
    assert_eq!(
        rx.held()[&addr()].services,
        vec!["default/c".parse().unwrap()]
    );
}

/// A change lost on its way (the node keeps acknowledging the assignment before it, and
/// nothing else changes) is followed by a whole set once it has gone unacknowledged for a
/// lease.
#[actix_rt::test]
async fn a_lost_change_is_followed_by_a_whole_set_while_nothing_else_changes() {
    let (config, publisher, _watchdog) = start();
    let n1 = NodeName::new("n1").unwrap();
    publisher.do_send(ViewChanged(view(&config, &n1, &["default/a"])));
    let mut rx = node();
    let (tx, mut q) = mpsc::channel(64);
    publisher.do_send(report(&n1, 1, &tx, 1, &rx));
    tokio::time::sleep(Duration::from_millis(30)).await;
    assert_eq!(drain(&mut q, &mut rx, true), (1, 1));
    publisher.do_send(report(&n1, 1, &tx, 2, &rx));
    publisher.do_send(ViewChanged(view(&config, &n1, &["default/b"])));
    tokio::time::sleep(Duration::from_millis(30)).await;
    assert_eq!(drain(&mut q, &mut rx, false), (1, 0), "the change is lost");
    // Heartbeats go on, naming the first assignment; nothing changes in the view.
    let mut seq = 3;
    let mut resent = 0;
    while seq < 20 && resent == 0 {
        publisher.do_send(report(&n1, 1, &tx, seq, &rx));
        tokio::time::sleep(TIMING.heartbeat).await;
        resent = drain(&mut q, &mut rx, true).1;
        seq += 1;
    }
    assert_eq!(resent, 1, "the lost change was never made up for");
    assert_eq!(
        rx.held()[&addr()].services,
        vec!["default/b".parse().unwrap()]
    );
}
