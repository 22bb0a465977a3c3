//! The allocation workload: clients allocate, release and read Services on deliberately small
//! pools, so exhaustion, sharing and contention happen. Some ask for a pool, some for specific
//! addresses; some share an address under an `allow-shared-ip` key. Reads are linearizable, and
//! some are `?stale=true` (recorded as such; they promise nothing).
//!
//! Every Service belongs to one pool and one client (its name says which), so each pool's
//! history can be checked on its own, and a Service's operations never overlap. After an
//! operation with an unknown outcome a client leaves that Service alone for a while: the request
//! may still be in flight, and its late arrival is no lost write.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};

use crate::checker::alloc::value;
use crate::client::Api;
use crate::history::{Fun, OpType, Recorder};

/// The namespace of every Service of the suite.
pub const NAMESPACE: &str = "jepsen";

/// A pool of the workload: its name, its addresses, and how its Services ask for families.
#[derive(Clone, Debug)]
pub struct PoolDef {
    /// The IPAddressPool's name.
    pub name: &'static str,
    /// Every address it has.
    pub addresses: Vec<IpAddr>,
    /// `ipFamilyPolicy` and `ipFamilies` of its Services.
    pub families: &'static str,
}

fn range(prefix: &str, from: u32, to: u32) -> Vec<IpAddr> {
    (from..=to)
        .filter_map(|i| {
            if prefix.contains(':') {
                format!("{prefix}{i:x}").parse().ok()
            } else {
                format!("{prefix}{i}").parse().ok()
            }
        })
        .collect()
}

/// The pools: 32 IPv4 addresses, a 64-address IPv6 range, and a small dual-stack pool.
pub fn pools() -> Vec<PoolDef> {
    let mut dual = range("192.0.2.", 64, 79);
    dual.extend(range("2001:db8:b::", 0, 15));
    vec![
        PoolDef {
            name: "v4",
            addresses: range("192.0.2.", 0, 31),
            families: "ipFamilyPolicy: SingleStack\n  ipFamilies: [IPv4]",
        },
        PoolDef {
            name: "v6",
            addresses: range("2001:db8:a::", 0, 63),
            families: "ipFamilyPolicy: SingleStack\n  ipFamilies: [IPv6]",
        },
        PoolDef {
            name: "dual",
            addresses: dual,
            families: "ipFamilyPolicy: RequireDualStack\n  ipFamilies: [IPv4, IPv6]",
        },
    ]
}

/// The configuration the cluster is given (no advertisement: nothing is announced).
pub fn config() -> String {
    "apiVersion: ironlb.io/v1beta1
kind: IPAddressPool
metadata: {name: v4}
spec:
  addresses: [192.0.2.0/27]
---
apiVersion: ironlb.io/v1beta1
kind: IPAddressPool
metadata: {name: v6}
spec:
  addresses: [2001:db8:a::/122]
---
apiVersion: ironlb.io/v1beta1
kind: IPAddressPool
metadata: {name: dual}
spec:
  addresses: [192.0.2.64/28, 2001:db8:b::/124]
"
    .to_string()
}

/// A Service manifest of the workload.
pub fn manifest(name: &str, families: &str, annotations: &[(String, String)], port: u16) -> String {
    let mut meta = String::new();
    if !annotations.is_empty() {
        meta.push_str("  annotations:\n");
        for (k, v) in annotations {
            meta.push_str(&format!("    {k}: {v:?}\n"));
        }
    }
    format!(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\n  namespace: {NAMESPACE}\n{meta}spec:\n  type: LoadBalancer\n  {families}\n  ports:\n  - port: {port}\n"
    )
}

/// Services by name: their addresses, and their pools.
pub type ServicesRead = (BTreeMap<String, Vec<IpAddr>>, BTreeMap<String, String>);

/// Turns an admin API list of Services into name -> addresses (and name -> pool).
pub fn services_of(body: &Value) -> Option<ServicesRead> {
    let list = body.as_array()?;
    let mut addrs = BTreeMap::new();
    let mut pools = BTreeMap::new();
    for s in list {
        let key = s["service"].as_str()?.to_string();
        let a: Vec<IpAddr> = serde_json::from_value(s["addresses"].clone()).ok()?;
        pools.insert(
            key.clone(),
            s["pool"].as_str().unwrap_or_default().to_string(),
        );
        addrs.insert(key, a);
    }
    Some((addrs, pools))
}

/// One client's part of the workload.
pub struct Client {
    /// Its process number in the history.
    pub process: u64,
    /// The member it talks to.
    pub admin: String,
    /// Its pool.
    pub pool: PoolDef,
    /// Its Services' names.
    pub services: Vec<String>,
    /// The mean pause between its operations, milliseconds (each drawn from half to one and a
    /// half times it).
    pub pause_ms: u64,
    rng: ChaCha8Rng,
    quarantine: BTreeMap<String, tokio::time::Instant>,
    quarantine_for: Duration,
}

impl Client {
    /// Client `process` of a workload seeded with `seed`.
    pub fn new(
        process: u64,
        admin: String,
        pool: PoolDef,
        per_client: usize,
        seed: u64,
        quarantine_for: Duration,
    ) -> Self {
        let services = (0..per_client)
            .map(|i| format!("{}-c{process}-s{i}", pool.name))
            .collect();
        Self {
            process,
            admin,
            pool,
            services,
            pause_ms: 15,
            rng: ChaCha8Rng::seed_from_u64(seed ^ (process.wrapping_mul(0x9e37_79b9_7f4a_7c15))),
            quarantine: BTreeMap::new(),
            quarantine_for,
        }
    }

    fn pick_service(&mut self) -> Option<String> {
        let now = tokio::time::Instant::now();
        self.quarantine.retain(|_, until| *until > now);
        let free: Vec<&String> = self
            .services
            .iter()
            .filter(|s| !self.quarantine.contains_key(*s))
            .collect();
        free.choose(&mut self.rng).map(|s| (*s).clone())
    }

    fn allocate_manifest(&mut self, name: &str) -> String {
        let index: usize = name
            .rsplit('s')
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        let mut annotations = Vec::new();
        // A quarter share addresses under one of two keys, each on a port of its own.
        let sharer = index.is_multiple_of(4);
        if sharer {
            annotations.push((
                "ironlb.io/allow-shared-ip".to_string(),
                format!("{}-k{}", self.pool.name, index % 8 / 4),
            ));
        }
        if self.rng.random_bool(0.35) {
            let v4: Vec<&IpAddr> = self.pool.addresses.iter().filter(|a| a.is_ipv4()).collect();
            let v6: Vec<&IpAddr> = self.pool.addresses.iter().filter(|a| a.is_ipv6()).collect();
            let mut want = Vec::new();
            if let Some(a) = v4.choose(&mut self.rng) {
                want.push(a.to_string());
            }
            if let Some(a) = v6.choose(&mut self.rng) {
                want.push(a.to_string());
            }
            annotations.push(("ironlb.io/loadBalancerIPs".to_string(), want.join(",")));
        } else {
            annotations.push((
                "ironlb.io/address-pool".to_string(),
                self.pool.name.to_string(),
            ));
        }
        let port = if sharer { 1000 + index as u16 } else { 80 };
        manifest(name, self.pool.families, &annotations, port)
    }

    /// Runs operations until `deadline`.
    pub async fn run(mut self, api: Api, rec: Recorder, deadline: tokio::time::Instant) {
        while tokio::time::Instant::now() < deadline {
            let roll: f64 = self.rng.random();
            if roll < 0.40 {
                if let Some(name) = self.pick_service() {
                    let m = self.allocate_manifest(&name);
                    self.allocate(&api, &rec, &name, m).await;
                }
            } else if roll < 0.65 {
                if let Some(name) = self.pick_service() {
                    self.release(&api, &rec, &name).await;
                }
            } else {
                let stale = roll > 0.95;
                read(&api, &rec, self.process, &self.admin, stale).await;
            }
            // A think time, so the clients keep to their rate and a fault's effect on latency
            // is visible.
            let mean = self.pause_ms.max(2);
            let pause = self.rng.random_range(mean / 2..=mean * 3 / 2);
            tokio::time::sleep(Duration::from_millis(pause)).await;
        }
    }

    async fn allocate(&mut self, api: &Api, rec: &Recorder, name: &str, manifest: String) {
        let service = format!("{NAMESPACE}/{name}");
        let args = json!(value::Allocate {
            service: service.parse().expect("the workload's names are valid"),
            manifest: manifest.clone(),
        });
        rec.record(
            self.process,
            OpType::Invoke,
            Fun::Allocate,
            args,
            None,
            Some(self.admin.clone()),
        );
        let a = api
            .call(
                reqwest::Method::POST,
                &self.admin,
                "/v1/services",
                Some(("application/yaml", manifest)),
                &[409],
            )
            .await;
        let value = match (a.kind, a.status) {
            (OpType::Ok, Some(409)) => {
                json!({"refused": a.body["error"].as_str().unwrap_or("refused")})
            }
            (OpType::Ok, _) => json!({"addresses": a.body["addresses"].clone()}),
            _ => Value::Null,
        };
        rec.record(
            self.process,
            a.kind,
            Fun::Allocate,
            value,
            a.error,
            Some(self.admin.clone()),
        );
        self.after(a.kind, name).await;
    }

    async fn release(&mut self, api: &Api, rec: &Recorder, name: &str) {
        let service = format!("{NAMESPACE}/{name}");
        rec.record(
            self.process,
            OpType::Invoke,
            Fun::Release,
            json!({"service": service}),
            None,
            Some(self.admin.clone()),
        );
        let a = api
            .call(
                reqwest::Method::DELETE,
                &self.admin,
                &format!("/v1/services/{NAMESPACE}/{name}"),
                None,
                &[404],
            )
            .await;
        let value = match (a.kind, a.status) {
            (OpType::Ok, Some(404)) => json!({"released": null}),
            (OpType::Ok, _) => json!({"released": a.body["addresses"].clone()}),
            _ => Value::Null,
        };
        rec.record(
            self.process,
            a.kind,
            Fun::Release,
            value,
            a.error,
            Some(self.admin.clone()),
        );
        self.after(a.kind, name).await;
    }

    /// After an unknown outcome: leave the Service alone for the quarantine, and back off a
    /// moment, as a real client would before trying again.
    async fn after(&mut self, kind: OpType, name: &str) {
        if kind == OpType::Info {
            self.quarantine.insert(
                name.to_string(),
                tokio::time::Instant::now() + self.quarantine_for,
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

/// A read of every Service, linearizable or stale, recorded.
pub async fn read(api: &Api, rec: &Recorder, process: u64, admin: &str, stale: bool) {
    rec.record(
        process,
        OpType::Invoke,
        Fun::Read,
        json!({"stale": stale}),
        None,
        Some(admin.to_string()),
    );
    let path = if stale {
        "/v1/services?stale=true"
    } else {
        "/v1/services"
    };
    let a = api.call(reqwest::Method::GET, admin, path, None, &[]).await;
    let (kind, value, error) = match (a.kind, services_of(&a.body)) {
        (OpType::Ok, Some((services, _))) => (OpType::Ok, json!({"services": services}), None),
        (OpType::Ok, None) => (
            OpType::Fail,
            Value::Null,
            Some(format!("unreadable answer: {}", a.body)),
        ),
        // A read changes nothing: whatever went wrong, it certainly did not take effect.
        (_, _) => (OpType::Fail, Value::Null, a.error),
    };
    rec.record(
        process,
        kind,
        Fun::Read,
        value,
        error,
        Some(admin.to_string()),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checker::model::AllocModel;

    #[test]
    fn every_manifest_the_workload_sends_is_one_the_model_reads_into_its_pool() {
        let model = AllocModel::new(&config()).unwrap();
        for (i, pool) in pools().into_iter().enumerate() {
            assert_eq!(pool.addresses.len(), [32, 64, 32][i]);
            let mut c = Client::new(
                i as u64,
                "x".into(),
                pool.clone(),
                8,
                1,
                Duration::from_secs(1),
            );
            for name in c.services.clone() {
                for _ in 0..20 {
                    let m = c.allocate_manifest(&name);
                    let req = model.request(&name, &m).unwrap();
                    assert_eq!(model.home_pool(&req).unwrap().as_str(), pool.name, "{m}");
                }
            }
        }
    }
}
