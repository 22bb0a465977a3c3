//! Why the allocator refused a request, or passed over a pool, in words an operator can act on.

use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::pool::NotAdmitted;
use super::range::Family;
use super::request::{FamilyPolicy, Port, SharingKey};
use crate::names::{Namespace, PoolName, ServiceKey};

/// Why a Service may not hold an address that others already hold or that is reserved.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Conflict {
    /// The address is reserved for another Service.
    Reserved {
        /// The Service it is reserved for.
        for_service: ServiceKey,
    },
    /// The holder does not allow sharing.
    HolderDoesNotShare {
        /// The holder.
        holder: ServiceKey,
    },
    /// The holder allows sharing but this Service does not.
    RequesterDoesNotShare {
        /// The holder.
        holder: ServiceKey,
    },
    /// Both allow sharing, under different keys.
    KeyMismatch {
        /// The holder.
        holder: ServiceKey,
        /// The holder's key.
        theirs: SharingKey,
        /// This Service's key.
        ours: SharingKey,
    },
    /// With externalTrafficPolicy Local, sharers must select the same pods.
    BackendMismatch {
        /// The holder.
        holder: ServiceKey,
    },
    /// Both use the same port and protocol.
    PortInUse {
        /// The holder.
        holder: ServiceKey,
        /// The port both use.
        port: Port,
    },
}

impl Conflict {
    /// Says the conflict about one address.
    pub fn describe(&self, addr: IpAddr) -> String {
        match self {
            Conflict::Reserved { for_service } => {
                format!("{addr} is reserved for {for_service}")
            }
            Conflict::HolderDoesNotShare { holder } => {
                format!("{addr} is used by {holder}, which does not allow sharing")
            }
            Conflict::RequesterDoesNotShare { holder } => format!(
                "{addr} is used by {holder}, and sharing it needs the same allow-shared-ip key on both"
            ),
            Conflict::KeyMismatch {
                holder,
                theirs,
                ours,
            } => format!(
                "{addr} is used by {holder} with sharing key {theirs}, not {ours}"
            ),
            Conflict::BackendMismatch { holder } => format!(
                "{addr} is used by {holder}, and Services sharing an address with externalTrafficPolicy Local must both be Local and select the same pods"
            ),
            Conflict::PortInUse { holder, port } => {
                format!("{addr} is used by {holder} on {port}")
            }
        }
    }
}

/// Why one pool could not serve a request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PoolRejection {
    /// Its serviceAllocation does not admit the Service.
    NotAdmitted(NotAdmitted),
    /// It is not auto-assigned and the Service did not ask for it.
    NotAutoAssigned,
    /// It has no addresses of a family the Service needs.
    MissingFamily(Family),
    /// Every address of a family is in use.
    Full {
        /// The family.
        family: Family,
        /// Addresses in use.
        in_use: u128,
        /// Addresses in all.
        total: u128,
        /// Whether the pool has addresses of the other family too (then the message names the
        /// family).
        dual: bool,
    },
}

impl fmt::Display for PoolRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PoolRejection::NotAdmitted(why) => write!(f, "{why}"),
            PoolRejection::NotAutoAssigned => {
                f.write_str("is not auto-assigned (autoAssign: false) and was not asked for")
            }
            PoolRejection::MissingFamily(family) => write!(f, "has no {family} addresses"),
            PoolRejection::Full {
                family,
                in_use,
                total,
                dual,
            } => {
                if *dual {
                    write!(f, "is full for {family} ({in_use}/{total})")
                } else {
                    write!(f, "is full ({in_use}/{total})")
                }
            }
        }
    }
}

/// What is wrong with a request before any pool is looked at.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum RequestError {
    /// The same address is asked for twice.
    #[error("{0} is requested twice")]
    DuplicateAddress(IpAddr),
    /// Two addresses of one family are asked for.
    #[error("{0} and {1} are both {fam}; ask for at most one address per family", fam = Family::of(*.0))]
    SameFamily(IpAddr, IpAddr),
    /// An address of a family the Service does not have.
    #[error("requested address {addr} is {family}, but the Service's ipFamilies are {families}")]
    WrongFamily {
        /// The address.
        addr: IpAddr,
        /// Its family.
        family: Family,
        /// The Service's families, as text.
        families: String,
    },
    /// SingleStack with two addresses, or RequireDualStack with one.
    #[error("ipFamilyPolicy {policy} does not fit {count} requested address(es)")]
    PolicyCount {
        /// The policy.
        policy: FamilyPolicy,
        /// How many addresses were asked for.
        count: usize,
    },
}

/// Why a request got no addresses.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Refusal {
    /// The request contradicts itself.
    Request(RequestError),
    /// No pools are configured.
    NoPools,
    /// The requested pool does not exist.
    UnknownPool(PoolName),
    /// A requested address lies in no pool.
    NotInAnyPool(IpAddr),
    /// A requested address is a .0/.255 its pool skips.
    AvoidedAddress {
        /// The address.
        addr: IpAddr,
        /// The pool that avoids it.
        pool: PoolName,
    },
    /// Requested addresses lie in two pools; a Service's addresses come from one pool.
    SplitAcrossPools {
        /// One address and its pool.
        first: (IpAddr, PoolName),
        /// Another address and its other pool.
        second: (IpAddr, PoolName),
    },
    /// A requested address is not in the requested pool.
    NotInRequestedPool {
        /// The address.
        addr: IpAddr,
        /// The pool asked for.
        requested: PoolName,
        /// The pool the address is in.
        actual: PoolName,
    },
    /// A pool the request is bound to (by name or by address) cannot serve it.
    Pool(PoolName, PoolRejection),
    /// An address the request is bound to is taken.
    Conflict(IpAddr, Conflict),
    /// No pool may serve this Service at all.
    NoPoolAdmits {
        /// The Service's namespace.
        namespace: Namespace,
        /// Every pool and why it is out.
        pools: Vec<(PoolName, PoolRejection)>,
    },
    /// Every pool that may serve the Service is out of room or conflicts.
    Exhausted(Vec<(PoolName, PoolRejection)>),
    /// Adoption of addresses a Service holds when it already holds others.
    AlreadyHolds {
        /// What it holds.
        held: Vec<IpAddr>,
    },
    /// The Service asks for specific addresses and holds others.
    NotTheRequestedAddresses {
        /// What it holds.
        held: Vec<IpAddr>,
    },
}

fn list(pools: &[(PoolName, PoolRejection)]) -> String {
    pools
        .iter()
        .map(|(p, why)| format!("pool {p} {why}"))
        .collect::<Vec<_>>()
        .join("; ")
}

fn addrs(a: &[IpAddr]) -> String {
    a.iter()
        .map(|a| a.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Request(e) => write!(f, "{e}"),
            Refusal::NoPools => f.write_str("no address pools are configured"),
            Refusal::UnknownPool(p) => write!(f, "pool {p} does not exist"),
            Refusal::NotInAnyPool(a) => write!(f, "{a} is not in any pool"),
            Refusal::AvoidedAddress { addr, pool } => write!(
                f,
                "{addr} ends in .0 or .255, which pool {pool} avoids (avoidBuggyIPs)"
            ),
            Refusal::SplitAcrossPools { first, second } => write!(
                f,
                "{} is in pool {} but {} is in pool {}; a Service's addresses come from one pool",
                first.0, first.1, second.0, second.1
            ),
            Refusal::NotInRequestedPool {
                addr,
                requested,
                actual,
            } => write!(
                f,
                "{addr} is in pool {actual}, not in the requested pool {requested}"
            ),
            Refusal::Pool(p, why) => write!(f, "pool {p} {why}"),
            Refusal::Conflict(addr, c) => f.write_str(&c.describe(*addr)),
            Refusal::NoPoolAdmits { namespace, pools } => {
                let is = |pred: fn(&PoolRejection) -> bool| pools.iter().any(|(_, w)| pred(w));
                let by_namespace =
                    is(|w| matches!(w, PoolRejection::NotAdmitted(NotAdmitted::Namespace(_))));
                let by_labels =
                    is(|w| matches!(w, PoolRejection::NotAdmitted(NotAdmitted::ServiceLabels)));
                if by_namespace && !by_labels {
                    write!(f, "no pool admits namespace {namespace} ({})", list(pools))
                } else if by_namespace || by_labels {
                    write!(f, "no pool admits this Service ({})", list(pools))
                } else {
                    write!(
                        f,
                        "no pool is auto-assigned; name one with the address-pool annotation ({})",
                        list(pools)
                    )
                }
            }
            Refusal::Exhausted(pools) => match pools.as_slice() {
                [(p, why)] => write!(f, "pool {p} {why}"),
                _ => write!(f, "no pool has room: {}", list(pools)),
            },
            Refusal::AlreadyHolds { held } => {
                write!(f, "the Service already holds {}", addrs(held))
            }
            Refusal::NotTheRequestedAddresses { held } => write!(
                f,
                "the Service holds {} but asks for other addresses",
                addrs(held)
            ),
        }
    }
}

impl std::error::Error for Refusal {}
