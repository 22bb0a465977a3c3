//! Builders shared by the allocator tests: pools and requests in a line each.
#![allow(dead_code)]

use std::net::IpAddr;

use ironlb::ipam::{
    AddrRange, AllocationRequest, Families, Family, FamilyPolicy, PoolSpec, Port, Protocol,
    ServiceAllocation, SharingKey, TrafficPolicy,
};
use ironlb::labels::{Labels, Selector};
use ironlb::names::{Namespace, PoolName, ServiceKey};

pub fn ip(s: &str) -> IpAddr {
    s.parse().expect("test address")
}

pub fn key(s: &str) -> ServiceKey {
    s.parse().expect("test service key")
}

pub fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A pool named `name` over `ranges`, auto-assigned.
pub fn pool(name: &str, ranges: &[&str]) -> PoolSpec {
    PoolSpec::new(
        PoolName::new(name).expect("test pool name"),
        ranges
            .iter()
            .map(|r| AddrRange::parse(r).expect("test range"))
            .collect(),
    )
}

pub trait PoolExt {
    fn manual(self) -> Self;
    fn avoid_buggy(self) -> Self;
    fn priority(self, p: u32) -> Self;
    fn namespaces(self, ns: &[&str]) -> Self;
    fn namespace_selector(self, l: &[(&str, &str)]) -> Self;
    fn service_selector(self, l: &[(&str, &str)]) -> Self;
}

fn sa(p: &mut PoolSpec) -> &mut ServiceAllocation {
    p.service_allocation
        .get_or_insert_with(ServiceAllocation::default)
}

fn selector(l: &[(&str, &str)]) -> Selector {
    Selector::new(l.iter().copied(), []).expect("test selector")
}

impl PoolExt for PoolSpec {
    fn manual(mut self) -> Self {
        self.auto_assign = false;
        self
    }
    fn avoid_buggy(mut self) -> Self {
        self.avoid_buggy_ips = true;
        self
    }
    fn priority(mut self, p: u32) -> Self {
        sa(&mut self).priority = p;
        self
    }
    fn namespaces(mut self, ns: &[&str]) -> Self {
        sa(&mut self).namespaces.extend(
            ns.iter()
                .map(|n| Namespace::new(*n).expect("test namespace")),
        );
        self
    }
    fn namespace_selector(mut self, l: &[(&str, &str)]) -> Self {
        sa(&mut self).namespace_selectors.push(selector(l));
        self
    }
    fn service_selector(mut self, l: &[(&str, &str)]) -> Self {
        sa(&mut self).service_selectors.push(selector(l));
        self
    }
}

/// A request for `ns/name` with no ports, IPv4 single-stack.
pub fn svc(k: &str) -> AllocationRequest {
    AllocationRequest::new(key(k), Vec::new())
}

pub trait ReqExt {
    fn tcp(self, port: u16) -> Self;
    fn udp(self, port: u16) -> Self;
    fn v6(self) -> Self;
    fn families(self, policy: FamilyPolicy, order: &[Family]) -> Self;
    fn ips(self, ips: &[&str]) -> Self;
    fn in_pool(self, p: &str) -> Self;
    fn share(self, k: &str) -> Self;
    fn local(self, selector: &[(&str, &str)]) -> Self;
    fn selector(self, selector: &[(&str, &str)]) -> Self;
    fn ns_labels(self, l: &[(&str, &str)]) -> Self;
    fn labels(self, l: &[(&str, &str)]) -> Self;
}

impl ReqExt for AllocationRequest {
    fn tcp(mut self, port: u16) -> Self {
        self.ports.push(Port::tcp(port));
        self
    }
    fn udp(mut self, port: u16) -> Self {
        self.ports.push(Port {
            port,
            protocol: Protocol::Udp,
        });
        self
    }
    fn v6(mut self) -> Self {
        self.families = Families::ipv6();
        self
    }
    fn families(mut self, policy: FamilyPolicy, order: &[Family]) -> Self {
        self.families = Families::new(policy, order).expect("test families");
        self
    }
    fn ips(mut self, ips: &[&str]) -> Self {
        self.addresses = ips.iter().map(|s| ip(s)).collect();
        self
    }
    fn in_pool(mut self, p: &str) -> Self {
        self.pool = Some(PoolName::new(p).expect("test pool name"));
        self
    }
    fn share(mut self, k: &str) -> Self {
        self.sharing_key = SharingKey::new(k);
        self
    }
    fn local(mut self, sel: &[(&str, &str)]) -> Self {
        self.traffic_policy = TrafficPolicy::Local;
        self.selector = labels(sel).into();
        self
    }
    fn selector(mut self, sel: &[(&str, &str)]) -> Self {
        self.selector = labels(sel).into();
        self
    }
    fn ns_labels(mut self, l: &[(&str, &str)]) -> Self {
        self.namespace_labels = labels(l).into();
        self
    }
    fn labels(mut self, l: &[(&str, &str)]) -> Self {
        self.service_labels = labels(l).into();
        self
    }
}
