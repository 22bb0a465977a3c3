//! Allocate and release 100 000 Services in an IPv4 /12 pool and in an IPv6 /64 pool. The cost
//! per operation must not depend on the pool's size (free space is a set of ranges), so the
//! /64 must stay within a small factor of the /12.

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ironlb::ipam::{AddrRange, AllocationRequest, Allocator, Families, PoolSpec, Port};
use ironlb::names::{PoolName, ServiceKey};

const N: usize = 100_000;

fn setup(cidr: &str) -> (Allocator, Vec<AllocationRequest>) {
    let spec = PoolSpec::new(
        PoolName::new("bench").expect("valid name"),
        vec![AddrRange::parse(cidr).expect("valid cidr")],
    );
    let allocator = Allocator::with_pools(vec![spec]).expect("one pool");
    let v6 = cidr.contains(':');
    let requests = (0..N)
        .map(|i| {
            let key = ServiceKey::new("bench", &format!("svc-{i}")).expect("valid key");
            let mut r = AllocationRequest::new(key, vec![Port::tcp(80)]);
            if v6 {
                r.families = Families::ipv6();
            }
            r
        })
        .collect();
    (allocator, requests)
}

/// Releases in a scattered order so the free space fragments into many ranges.
fn scattered(i: usize) -> usize {
    (i * 7919) % N
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("allocator");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(8));
    group.throughput(Throughput::Elements(N as u64));
    for (label, cidr) in [
        ("ipv4_slash12", "10.0.0.0/12"),
        ("ipv6_slash64", "2001:db8::/64"),
    ] {
        group.bench_function(BenchmarkId::new("allocate_100k", label), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let (mut a, reqs) = setup(cidr);
                    let start = Instant::now();
                    for r in reqs {
                        a.allocate(r).expect("pool has room");
                    }
                    total += start.elapsed();
                }
                total
            })
        });
        group.bench_function(BenchmarkId::new("release_100k", label), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let (mut a, reqs) = setup(cidr);
                    let keys: Vec<ServiceKey> = reqs.iter().map(|r| r.service.clone()).collect();
                    for r in reqs {
                        a.allocate(r).expect("pool has room");
                    }
                    let start = Instant::now();
                    for i in 0..N {
                        a.release(&keys[scattered(i)]);
                    }
                    total += start.elapsed();
                }
                total
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
