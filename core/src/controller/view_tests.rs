//! The view patched change by change is the view read whole.

use super::L2View;
use crate::config::{Config, Documents};
use crate::ipam::AllocationRequest;
use crate::names::NodeName;
use crate::raft::{Command, ControllerState};

const CONFIG: &str = "\
apiVersion: ironlb.io/v1beta1
kind: IPAddressPool
metadata: {name: lan}
spec: {addresses: [192.0.2.0/28]}
---
apiVersion: ironlb.io/v1beta1
kind: IPAddressPool
metadata: {name: wan}
spec: {addresses: [198.51.100.0/28]}
---
apiVersion: ironlb.io/v1beta1
kind: L2Advertisement
metadata: {name: lan}
spec:
  ipAddressPools: [lan]
  serviceSelectors: [{matchLabels: {announce: 'yes'}}]
";

fn config(yaml: &str) -> Box<Config> {
    let docs = Documents::from_str(yaml, "t.yaml").into_result().unwrap();
    Box::new(crate::config::validate(&docs).unwrap())
}

/// The parts of a view that must agree, in a comparable form.
fn parts(v: &L2View) -> impl PartialEq + std::fmt::Debug {
    (
        v.targets
            .iter()
            .map(|(a, t)| (*a, t.clone()))
            .collect::<Vec<_>>(),
        v.owners
            .iter()
            .map(|(a, n)| (*a, n.clone()))
            .collect::<Vec<_>>(),
        v.services.values().cloned().collect::<Vec<_>>(),
        (*v.config).clone(),
    )
}

/// A small deterministic generator, so a failure replays.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn command(rng: &mut Rng) -> Command {
    let svc = format!("ns/s{}", rng.below(24)).parse().unwrap();
    match rng.below(7) {
        0..=2 => {
            let mut req = AllocationRequest::new(svc, vec![]);
            if rng.below(2) == 0 {
                req.service_labels = [("announce".to_string(), "yes".to_string())]
                    .into_iter()
                    .collect();
            }
            if rng.below(3) == 0 {
                req.pool = Some(
                    if rng.below(2) == 0 { "lan" } else { "wan" }
                        .parse()
                        .unwrap(),
                );
            }
            if rng.below(3) == 0 {
                // Judged by each node, so in the view's Services (the others are not).
                req.traffic_policy = crate::ipam::TrafficPolicy::Local;
            }
            if rng.below(4) == 0 {
                // Shares an address with any Service asking for the same one and key.
                req.addresses = vec![format!("192.0.2.{}", rng.below(4) + 1).parse().unwrap()];
                req.sharing_key = crate::ipam::SharingKey::new("k");
            }
            Command::Allocate { request: req }
        }
        3 => Command::Release { service: svc },
        4 => Command::AssignOwners {
            moves: vec![(
                format!("192.0.2.{}", rng.below(8)).parse().unwrap(),
                (rng.below(3) > 0).then(|| NodeName::new(format!("n{}", rng.below(3))).unwrap()),
            )],
        },
        5 => Command::Reserve {
            address: format!("198.51.100.{}", rng.below(8)).parse().unwrap(),
            service: svc,
        },
        _ => Command::Unreserve {
            address: format!("198.51.100.{}", rng.below(8)).parse().unwrap(),
        },
    }
}

#[test]
fn a_view_patched_after_every_batch_equals_the_view_read_whole() {
    let (mut saw_services, mut saw_owners, mut saw_shared) = (false, false, false);
    for seed in 1..40u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let mut state = ControllerState::default();
        let mut view = L2View::default();
        state.apply(Command::SetConfig {
            config: config(CONFIG),
        });
        for round in 0..60 {
            let n = rng.below(5) + 1;
            let commands = (0..n).map(|_| command(&mut rng)).collect();
            state.apply(Command::Batch { commands });
            if round == 30 {
                // A new configuration: the view is read again whole.
                state.apply(Command::SetConfig {
                    config: config(CONFIG),
                });
            }
            view.refresh(&state);
            let whole = L2View::read(&state.clone());
            assert_eq!(parts(&view), parts(&whole), "seed {seed}, round {round}");
            saw_services |= !view.services.is_empty();
            saw_owners |= !view.owners.is_empty();
            saw_shared |= view.targets.values().any(|t| t.holders.len() > 1);
        }
    }
    assert!(saw_services && saw_owners && saw_shared);
}

#[test]
fn a_refresh_after_nothing_changed_keeps_the_same_maps() {
    let mut state = ControllerState::default();
    state.apply(Command::SetConfig {
        config: config(CONFIG),
    });
    state.apply(Command::Allocate {
        request: AllocationRequest::new("ns/a".parse().unwrap(), vec![]),
    });
    let mut view = L2View::default();
    view.refresh(&state);
    let before = view.clone();
    view.refresh(&state);
    assert!(view.targets.ptr_eq(&before.targets));
    assert!(view.services.ptr_eq(&before.services));
    assert!(view.owners.ptr_eq(&before.owners));
}
