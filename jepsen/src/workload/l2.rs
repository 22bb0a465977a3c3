//! The Layer 2 workload: a few dual-stack Services announced in Layer 2 on every speaker's LAN,
//! whose addresses the prober asks for every 10 ms (ARP, NDP) and pings; meanwhile clients
//! allocate and release other Services of the same pool (so owners are planned under load) and
//! read, as in the allocation workload.

use std::net::IpAddr;
use std::time::Duration;

use anyhow::{bail, Result};
use serde_json::json;

use super::alloc::{manifest, PoolDef, NAMESPACE};
use crate::checker::alloc::value;
use crate::client::Api;
use crate::history::{Fun, OpType, Recorder};

fn lan_range(from: u16, to: u16) -> Vec<IpAddr> {
    let mut addresses: Vec<IpAddr> = (from..=to)
        .filter_map(|i| format!("198.51.100.{i}").parse().ok())
        .collect();
    addresses
        .extend((from..=to).filter_map(|i| format!("2001:db8:51::{i}").parse::<IpAddr>().ok()));
    addresses
}

/// The probed Services' pool: on the LAN, both families.
pub fn pool() -> PoolDef {
    PoolDef {
        name: "l2",
        addresses: lan_range(100, 109),
        families: "ipFamilyPolicy: RequireDualStack\n  ipFamilies: [IPv4, IPv6]",
    }
}

/// The pools the clients allocate and release in meanwhile (announced too, so owners are
/// planned under the churn), each small and shared by few clients, so each pool's history is
/// checked on its own.
pub fn churn_pools() -> Vec<PoolDef> {
    vec![
        PoolDef {
            name: "l2a",
            addresses: lan_range(120, 127),
            families: "ipFamilyPolicy: RequireDualStack\n  ipFamilies: [IPv4, IPv6]",
        },
        PoolDef {
            name: "l2b",
            addresses: lan_range(130, 137),
            families: "ipFamilyPolicy: RequireDualStack\n  ipFamilies: [IPv4, IPv6]",
        },
    ]
}

/// The configuration: the pools, announced in Layer 2 on `eth0`.
pub fn config() -> String {
    "apiVersion: ironlb.io/v1beta1
kind: IPAddressPool
metadata: {name: l2}
spec:
  addresses: [198.51.100.100-198.51.100.109, 2001:db8:51::100-2001:db8:51::109]
---
apiVersion: ironlb.io/v1beta1
kind: IPAddressPool
metadata: {name: l2a}
spec:
  addresses: [198.51.100.120-198.51.100.127, 2001:db8:51::120-2001:db8:51::127]
---
apiVersion: ironlb.io/v1beta1
kind: IPAddressPool
metadata: {name: l2b}
spec:
  addresses: [198.51.100.130-198.51.100.137, 2001:db8:51::130-2001:db8:51::137]
---
apiVersion: ironlb.io/v1beta1
kind: L2Advertisement
metadata: {name: l2}
spec:
  ipAddressPools: [l2, l2a, l2b]
  interfaces: [eth0]
"
    .to_string()
}

/// Allocates the probed Services (recorded as process `process`); returns their addresses.
pub async fn setup(
    api: &Api,
    rec: &Recorder,
    process: u64,
    admins: &[String],
    services: usize,
) -> Result<Vec<IpAddr>> {
    let mut out = Vec::new();
    for i in 0..services {
        let name = format!("l2-probe-{i}");
        let m = manifest(
            &name,
            pool().families,
            &[("ironlb.io/address-pool".into(), "l2".into())],
            80,
        );
        let args = json!(value::Allocate {
            service: format!("{NAMESPACE}/{name}").parse()?,
            manifest: m.clone(),
        });
        let mut done = false;
        for attempt in 0..20 {
            let admin = &admins[attempt % admins.len()];
            rec.record(
                process,
                OpType::Invoke,
                Fun::Allocate,
                args.clone(),
                None,
                Some(admin.clone()),
            );
            let a = api
                .call(
                    reqwest::Method::POST,
                    admin,
                    "/v1/services",
                    Some(("application/yaml", m.clone())),
                    &[409],
                )
                .await;
            let ok = a.kind == OpType::Ok && a.status == Some(200);
            let value = if ok {
                json!({"addresses": a.body["addresses"].clone()})
            } else {
                serde_json::Value::Null
            };
            let kind = if a.kind == OpType::Ok && !ok {
                OpType::Ok
            } else {
                a.kind
            };
            let value = if a.kind == OpType::Ok && !ok {
                json!({"refused": a.body["error"].clone()})
            } else {
                value
            };
            rec.record(
                process,
                kind,
                Fun::Allocate,
                value,
                a.error,
                Some(admin.clone()),
            );
            if ok {
                let addrs: Vec<IpAddr> = serde_json::from_value(a.body["addresses"].clone())?;
                out.extend(addrs);
                done = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        if !done {
            bail!("could not allocate {name}");
        }
    }
    Ok(out)
}
