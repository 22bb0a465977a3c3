//! Every metric family ironlb exports, named `ironlb_*` with their unit in the name: the
//! controller's ([`controller`]: allocations, Raft, speakers, the Kubernetes reconciler) and the
//! speaker's ([`speaker`]: Layer 2 answers, the lease, BGP).

pub mod controller;
pub mod speaker;
