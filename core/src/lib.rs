//! ironlb: a load balancer for bare-metal Kubernetes.
//!
//! This crate holds the configuration model ([`config`]), the pure address allocator
//! ([`ipam`]) and the names and label selectors they share.

// Lets the lab's files compiled into unit tests (raft::network's TLS tests) name this crate as
// every other user of it does.
#[cfg(test)]
extern crate self as ironlb;

pub mod actors;
pub mod announce;
pub mod api;
pub mod auth;
pub mod check;
pub mod codec;
pub mod config;
pub mod controller;
pub mod fuzz;
pub mod health_check;
pub mod intern;
pub mod ipam;
pub mod k8s;
pub mod labels;
pub mod memory;
pub mod metrics;
pub mod names;
pub mod net;
pub mod raft;
pub mod service_sync;
pub mod speaker;
pub mod standalone;
pub mod watchdog;
