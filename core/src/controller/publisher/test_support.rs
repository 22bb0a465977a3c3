//! What the publisher's tests share: one address in one pool, a short lease, a started
//! publisher of member 1 whose proposals arrive on a channel, and a quorum that keeps
//! confirming its leadership.

use super::*;
use crate::announce::owners::Target;
use crate::config::{self, Documents};
use std::time::Duration;

pub(super) const CONFIG: &str = "apiVersion: ironlb.io/v1beta1
kind: IPAddressPool
metadata: {name: lan}
spec:
  addresses: [192.0.2.10/32]
---
apiVersion: ironlb.io/v1beta1
kind: L2Advertisement
metadata: {name: lan}
spec:
  ipAddressPools: [lan]
";

pub(super) const TIMING: LeaseTiming = LeaseTiming {
    heartbeat: Duration::from_millis(20),
    lease: Duration::from_millis(100),
    margin: Duration::from_millis(40),
};

/// The pool's one address.
pub(super) fn addr() -> IpAddr {
    "192.0.2.10".parse().unwrap()
}

/// The view: the one address, owned by `owner`, for the given plain Services (which no node
/// judges, so the view's own Services stay empty, as in a member).
pub(super) fn view(config: &Arc<config::Config>, owner: &NodeName, services: &[&str]) -> L2View {
    L2View {
        config: config.clone(),
        targets: [(
            addr(),
            Arc::new(Target::new(
                addr(),
                "lan".parse().unwrap(),
                services
                    .iter()
                    .map(|s| (s.parse().unwrap(), Default::default())),
            )),
        )]
        .into_iter()
        .collect(),
        owners: [(addr(), owner.clone())].into_iter().collect(),
        services: Default::default(),
        applied_term: 1,
    }
}

/// The configuration and a started publisher of member 1 (taking the endpoint verdict from
/// `serving`, if given) whose proposals arrive on the receiver; the watchdog must live as long
/// as the publisher.
pub(super) fn fixture(
    serving: Option<tokio::sync::watch::Receiver<Option<Arc<BTreeSet<ServiceKey>>>>>,
) -> (
    Arc<config::Config>,
    actix::Addr<AssignmentPublisher>,
    mpsc::Receiver<crate::raft::propose::Pending>,
    Arc<crate::watchdog::Watchdog>,
) {
    let docs = Documents::from_str(CONFIG, "test");
    let config = Arc::new(config::validate(&docs.documents).unwrap());
    let (proposer, commits) = Proposer::for_tests();
    let watchdog = crate::watchdog::Watchdog::new();
    let mut publisher = AssignmentPublisher::new(
        1,
        proposer,
        TIMING,
        Arc::new(Metrics::new()),
        crate::controller::announced::board(),
        &watchdog,
    );
    if let Some(serving) = serving {
        publisher = publisher.with_serving(serving);
    }
    (config, publisher.start(), commits, watchdog)
}

/// A quorum confirming `publisher`'s leadership in `term` every few milliseconds, until the
/// task is aborted.
pub(super) fn confirm(
    publisher: &actix::Addr<AssignmentPublisher>,
    term: u64,
) -> tokio::task::JoinHandle<()> {
    let p = publisher.clone();
    actix_rt::spawn(async move {
        loop {
            p.do_send(Confirmed {
                at: Instant::now(),
                term,
            });
            tokio::time::sleep(Duration::from_millis(3)).await;
        }
    })
}
