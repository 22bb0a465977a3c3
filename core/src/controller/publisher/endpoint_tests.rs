//! The leader judges `Cluster` Services by a serving endpoint anywhere (`k8s::endpoints`): an
//! address whose Service has none is announced by no node, and comes back with an endpoint.

use super::session_tests::{drain, node, report};
use super::test_support::{addr, confirm, fixture, view, TIMING};
use super::*;
use crate::raft::Command;
use std::time::Duration;

/// The next owner change proposed.
async fn proposed(commits: &mut mpsc::Receiver<crate::raft::propose::Pending>) -> Command {
    tokio::time::timeout(Duration::from_secs(2), commits.recv())
        .await
        .expect("an owner change is proposed")
        .expect("the publisher is running")
        .command
}

#[actix_rt::test]
async fn a_cluster_service_without_a_serving_endpoint_is_announced_by_no_node() {
    let (serving, serving_rx) = tokio::sync::watch::channel(None);
    let (config, publisher, mut commits, _watchdog) = fixture(Some(serving_rx));
    publisher.do_send(Leadership { term: Some(1) });
    let confirming = confirm(&publisher, 1);
    let n1 = NodeName::new("n1").unwrap();
    let mut rx = node();
    let (tx, mut q) = mpsc::channel(64);
    // Endpoints not known yet: nothing is judged down, the owner answers.
    publisher.do_send(ViewChanged(view(&config, &n1, &["default/a"])));
    publisher.do_send(report(&n1, 1, &tx, 1, &rx));
    tokio::time::sleep(Duration::from_millis(30)).await;
    drain(&mut q, &mut rx, true);
    assert!(rx.held().contains_key(&addr()));
    publisher.do_send(report(&n1, 1, &tx, 2, &rx));

    // The watch has listed every slice, and default/a has no serving endpoint: released.
    serving.send_replace(Some(Arc::new(BTreeSet::new())));
    assert_eq!(
        proposed(&mut commits).await,
        Command::AssignOwners {
            moves: vec![(addr(), None)]
        }
    );
    // Committed: nobody owns it, and with no endpoint nobody is given it.
    let mut unowned = view(&config, &n1, &["default/a"]);
    unowned.owners.clear();
    publisher.do_send(ViewChanged(unowned.clone()));
    tokio::time::sleep(TIMING.dead_after() + Duration::from_millis(50)).await;
    drain(&mut q, &mut rx, true);
    assert!(!rx.held().contains_key(&addr()));
    publisher.do_send(report(&n1, 1, &tx, 3, &rx));
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        commits.try_recv().is_err(),
        "an owner was chosen without an endpoint"
    );

    // An endpoint appears: the address gets an owner again.
    serving.send_replace(Some(Arc::new(["default/a".parse().unwrap()].into())));
    assert_eq!(
        proposed(&mut commits).await,
        Command::AssignOwners {
            moves: vec![(addr(), Some(n1.clone()))]
        }
    );
    confirming.abort();
}
