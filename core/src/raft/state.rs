//! The replicated state and how a command changes it. Pure and deterministic: the Raft state
//! machine wraps this, and every member applying the same commands holds the same bytes.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::command::{Command, Response};
use crate::config::Config;
use crate::ipam::Allocator;
use crate::names::NodeName;

/// The applied state, shared read-only with the admin API and the metrics.
pub type SharedState = Arc<tokio::sync::RwLock<ControllerState>>;

/// Everything the controllers agree on.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControllerState {
    /// The configuration in force, if one was ever set.
    pub config: Option<Config>,
    /// How many configurations were installed (0: none yet).
    pub config_revision: u64,
    /// Pools, allocations and reservations.
    pub allocator: Allocator,
    /// Which node answers for each address in Layer 2 mode.
    pub owners: BTreeMap<IpAddr, NodeName>,
    /// Every member id ever in the membership or handed out: never given out again.
    pub member_ids: std::collections::BTreeSet<crate::raft::MemberId>,
    /// What the applied commands touched since the view was last read: not replicated state,
    /// only a note for the one reader that keeps a view up to date.
    #[serde(skip)]
    pub touched: Journal,
}

/// What changed in the state since its reader last took the list.
#[derive(Debug, Default)]
pub struct Touched {
    /// Everything may have changed (a new state, a new configuration): read it all again.
    pub everything: bool,
    /// Addresses whose holders, pool or labels may have changed.
    pub addresses: std::collections::BTreeSet<IpAddr>,
    /// Services whose allocation may have changed.
    pub services: std::collections::BTreeSet<crate::names::ServiceKey>,
    /// Addresses whose committed owner may have changed.
    pub owners: std::collections::BTreeSet<IpAddr>,
}

/// The changes since the last [`Journal::take`], behind a mutex so the reader needs only the
/// state's read lock. A new or cloned state starts with `everything`: its reader knows nothing
/// of it yet. It never takes part in comparisons: two states with the same contents are equal.
#[derive(Debug)]
pub struct Journal(std::sync::Mutex<Touched>);

impl Default for Journal {
    fn default() -> Self {
        Journal(std::sync::Mutex::new(Touched {
            everything: true,
            ..Touched::default()
        }))
    }
}

impl Clone for Journal {
    fn clone(&self) -> Self {
        Journal::default()
    }
}

impl PartialEq for Journal {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for Journal {}

impl Journal {
    /// The changes so far; the journal starts over empty.
    pub fn take(&self) -> Touched {
        std::mem::take(&mut *self.lock())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Touched> {
        // A panic while holding this lock leaves a list of keys, never a broken invariant:
        // keep using it.
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn service(&self, state: &Allocator, service: &crate::names::ServiceKey) {
        let addresses = state.allocation(service).map(|a| a.addresses.clone());
        let mut t = self.lock();
        if t.everything {
            return;
        }
        t.services.insert(service.clone());
        t.addresses.extend(addresses.into_iter().flatten());
    }

    fn address(&self, addr: IpAddr) {
        let mut t = self.lock();
        if !t.everything {
            t.addresses.insert(addr);
        }
    }

    fn owner(&self, addr: IpAddr) {
        let mut t = self.lock();
        if !t.everything {
            t.owners.insert(addr);
        }
    }

    fn everything(&self) {
        *self.lock() = Touched {
            everything: true,
            ..Touched::default()
        };
    }
}

impl ControllerState {
    /// Records the ids of a membership entry as used.
    pub fn note_members(&mut self, ids: impl IntoIterator<Item = crate::raft::MemberId>) {
        self.member_ids.extend(ids);
    }

    /// Applies one command.
    pub fn apply(&mut self, command: Command) -> Response {
        match command {
            Command::SetConfig { config } => match self.allocator.set_pools(config.pool_specs()) {
                Ok(recheck) => {
                    self.touched.everything();
                    self.config = Some(*config);
                    self.config_revision += 1;
                    Response::Config {
                        revision: self.config_revision,
                        recheck,
                    }
                }
                Err(e) => Response::ConfigRefused(e.to_string()),
            },
            Command::Allocate { request } => {
                let service = request.service.clone();
                // Before and after: the addresses it gave up change too.
                self.touched.service(&self.allocator, &service);
                let r = Response::Allocated(self.allocator.allocate_explained(request));
                self.touched.service(&self.allocator, &service);
                r
            }
            Command::Release { service } => {
                self.touched.service(&self.allocator, &service);
                let released = self.allocator.release(&service);
                // An address nobody holds any more has no owner to answer for it.
                for addr in released.iter().flat_map(|a| &a.addresses) {
                    if self.allocator.holders(*addr).next().is_none() {
                        self.owners.remove(addr);
                        self.touched.owner(*addr);
                    }
                }
                Response::Released(released)
            }
            Command::Reserve { address, service } => {
                self.touched.address(address);
                Response::Reserved(self.allocator.reserve(address, service))
            }
            Command::Unreserve { address } => {
                self.touched.address(address);
                Response::Unreserved(self.allocator.unreserve(address))
            }
            Command::Adopt { request, addresses } => {
                let service = request.service.clone();
                self.touched.service(&self.allocator, &service);
                let r = Response::Adopted(self.allocator.adopt(request, &addresses).cloned());
                self.touched.service(&self.allocator, &service);
                r
            }
            Command::AssignOwners { moves } => {
                let mut changed = 0;
                for (addr, owner) in moves {
                    self.touched.owner(addr);
                    let before = match owner {
                        Some(node) => self.owners.insert(addr, node.clone()) != Some(node),
                        None => self.owners.remove(&addr).is_some(),
                    };
                    changed += usize::from(before);
                }
                Response::OwnersAssigned(changed)
            }
            Command::Batch { commands } => {
                Response::Batch(commands.into_iter().map(|c| self.apply(c)).collect())
            }
            Command::ReserveMemberId { requested } => {
                // A member that lost its volume asks for its old id and gets the next one of its
                // seat, which the certificate naming the seat still covers.
                let id = match requested {
                    Some(r) if r > 0 && !self.member_ids.contains(&r) => r,
                    Some(r) if r > 0 => (1..)
                        .filter_map(|k: u64| k.checked_mul(crate::auth::principal::SEAT_STRIDE))
                        .filter_map(|step| r.checked_add(step))
                        .find(|id| !self.member_ids.contains(id))
                        .unwrap_or_else(|| self.member_ids.iter().next_back().map_or(1, |m| m + 1)),
                    _ => self.member_ids.iter().next_back().map_or(1, |m| m + 1),
                };
                self.member_ids.insert(id);
                Response::MemberId(id)
            }
        }
    }
}

#[cfg(test)]
mod member_id_tests {
    use super::*;

    #[test]
    fn member_ids_are_never_handed_out_twice() {
        let mut s = ControllerState::default();
        s.note_members([1, 2, 3]);
        let reserve =
            |s: &mut ControllerState, r| match s.apply(Command::ReserveMemberId { requested: r }) {
                Response::MemberId(id) => id,
                other => panic!("{other:?}"),
            };
        let stride = crate::auth::principal::SEAT_STRIDE;
        // Member 1 lost its disk and asks for its old id: it gets a new one of its seat.
        assert_eq!(reserve(&mut s, Some(1)), 1 + stride);
        assert_eq!(reserve(&mut s, Some(1)), 1 + 2 * stride);
        // A new member's own choice is kept while unused...
        assert_eq!(reserve(&mut s, Some(9)), 9);
        // ...and never again.
        assert_eq!(reserve(&mut s, Some(9)), 9 + stride);
        assert_eq!(reserve(&mut s, None), 1 + 2 * stride + 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Documents;
    use crate::ipam::AllocationRequest;

    fn config(yaml: &str) -> Box<Config> {
        let docs = Documents::from_str(yaml, "t.yaml").into_result().unwrap();
        Box::new(crate::config::validate(&docs).unwrap())
    }

    const POOL: &str = "apiVersion: ironlb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: public}\nspec: {addresses: [192.0.2.0/30]}\n";

    #[test]
    fn commands_apply_deterministically_and_encode() {
        let commands = vec![
            Command::SetConfig {
                config: config(POOL),
            },
            Command::Allocate {
                request: AllocationRequest::new("default/a".parse().unwrap(), vec![]),
            },
            Command::AssignOwners {
                moves: vec![(
                    "192.0.2.0".parse().unwrap(),
                    Some(NodeName::new("node-1").unwrap()),
                )],
            },
            Command::Release {
                service: "default/a".parse().unwrap(),
            },
        ];
        let mut a = ControllerState::default();
        let mut b = ControllerState::default();
        for c in &commands {
            // Through the log encoding, as a follower would receive it.
            let bytes = bincode::serde::encode_to_vec(c, bincode::config::standard()).unwrap();
            let (decoded, _): (Command, usize) =
                bincode::serde::decode_from_slice(&bytes, bincode::config::standard()).unwrap();
            assert_eq!(&decoded, c);
            assert_eq!(a.apply(c.clone()), b.apply(decoded));
        }
        assert_eq!(a, b);
        assert_eq!(a.config_revision, 1);
        // Released, so nobody owns the address any more.
        assert!(a.owners.is_empty());
        assert_eq!(a.allocator.allocation_count(), 0);
    }

    #[test]
    fn an_overlapping_config_is_refused_and_the_old_one_stays() {
        let mut s = ControllerState::default();
        s.apply(Command::SetConfig {
            config: config(POOL),
        });
        let mut bad = (*config(POOL)).clone();
        let mut other = bad.pools.values().next().unwrap().clone();
        other.spec.name = "other".parse().unwrap();
        bad.pools.insert(other.spec.name.clone(), other);
        let r = s.apply(Command::SetConfig {
            config: Box::new(bad),
        });
        assert!(matches!(r, Response::ConfigRefused(_)), "{r:?}");
        assert_eq!(s.config_revision, 1);
        assert_eq!(s.config.as_ref().unwrap().pools.len(), 1);
    }
}
