//! A stateful stand-in for the Kubernetes API over real HTTP, for tests: objects of any kind
//! (core and custom) kept in memory, with what clients rely on: list with `resourceVersion`,
//! watch streams from a resource version (newline-delimited JSON events), get, create, replace,
//! merge and server-side-apply patches, delete, the `status` subresource (status writes change
//! only `.status`, other writes never do), label and field selectors, and optimistic
//! concurrency: a write carrying a stale `metadata.resourceVersion` is answered 409 Conflict.
//!
//! Written for ironlb's own tests in place of `../shared/k8s-standin/` (kmock), whose gaps (no
//! 409, every watch replaying everything) would hide exactly the bugs these tests look for.
//! Deleting an object deletes its dependents, as Kubernetes' garbage collector does with
//! background propagation (but at once): every object whose `ownerReferences` all name
//! deleted objects' uids.
//! It is not Kubernetes: no admission, no defaulting, no schema validation, no field ownership
//! (apply merges), no foreground or orphan propagation.

// Handlers answer errors as ready HTTP responses; their size does not matter in test equipment.
#![allow(clippy::result_large_err)]

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};
use tokio::sync::broadcast;

mod store;
use store::*;

/// Which kind of object: the API group and version, and the plural resource name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Resource {
    /// `""` for the core group.
    pub group: String,
    /// `v1`, `v1beta1`...
    pub version: String,
    /// `services`, `ipaddresspools`...
    pub plural: String,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    resource: Resource,
    namespace: Option<String>,
    name: String,
}

#[derive(Clone, Debug)]
struct Change {
    rv: u64,
    kind: &'static str,
    key: Key,
    object: Value,
}

#[derive(Default)]
struct Store {
    rv: u64,
    objects: BTreeMap<Key, Value>,
    log: Vec<Change>,
    /// The uids of every object deleted, for the garbage collector.
    deleted_uids: std::collections::BTreeSet<String>,
}

struct Shared {
    store: Mutex<Store>,
    changed: broadcast::Sender<u64>,
    tokens: Mutex<BTreeMap<String, TokenHolder>>,
}

/// The audience of tokens minted for the API server itself.
pub const API_AUDIENCE: &str = "https://kubernetes.default.svc";

/// Who holds a token the stand-in's TokenReview authenticates.
#[derive(Clone, Debug)]
pub struct TokenHolder {
    /// `system:serviceaccount:<ns>:<name>`.
    pub username: String,
    /// The audiences it was minted for (the API server's own: [`API_AUDIENCE`]).
    pub audiences: Vec<String>,
    /// What it is bound to (`authentication.kubernetes.io/pod-name`, `.../node-name`).
    pub extra: BTreeMap<String, Vec<String>>,
}

/// A TokenReview, answered as the API server does: authenticated when the token is known and
/// minted for one of the audiences asked (the API server's own when none are).
fn token_review(shared: &Shared, review: &Value) -> Response {
    let token = review["spec"]["token"].as_str().unwrap_or_default();
    let asked: Vec<String> = match review["spec"]["audiences"].as_array() {
        Some(a) if !a.is_empty() => a
            .iter()
            .filter_map(|v| v.as_str().map(String::from))
            .collect(),
        _ => vec![API_AUDIENCE.to_owned()],
    };
    let tokens = shared.tokens.lock().unwrap_or_else(|e| e.into_inner());
    let status = match tokens.get(token) {
        Some(h) => {
            let common: Vec<&String> = h.audiences.iter().filter(|a| asked.contains(a)).collect();
            if common.is_empty() {
                json!({"authenticated": false, "error": "token audiences are invalid"})
            } else {
                json!({
                    "authenticated": true,
                    "audiences": common,
                    "user": {"username": h.username, "uid": "standin", "groups": ["system:serviceaccounts"], "extra": h.extra},
                })
            }
        }
        None => json!({"authenticated": false, "error": "invalid bearer token"}),
    };
    let mut out = review.clone();
    out["status"] = status;
    (StatusCode::CREATED, axum::Json(out)).into_response()
}

/// The running stand-in.
pub struct KubeApi {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
    dir: tempfile::TempDir,
}

impl Drop for KubeApi {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn kind_of(plural: &str) -> String {
    match plural {
        "services" => "Service".into(),
        "namespaces" => "Namespace".into(),
        "nodes" => "Node".into(),
        "endpointslices" => "EndpointSlice".into(),
        "events" => "Event".into(),
        "ipaddresspools" => "IPAddressPool".into(),
        "l2advertisements" => "L2Advertisement".into(),
        "bgpadvertisements" => "BGPAdvertisement".into(),
        "bgppeers" => "BGPPeer".into(),
        "communities" => "Community".into(),
        "bfdprofiles" => "BFDProfile".into(),
        "configurationstates" => "ConfigurationState".into(),
        "servicel2statuses" => "ServiceL2Status".into(),
        "servicebgpstatuses" => "ServiceBGPStatus".into(),
        other => {
            let mut k = other.trim_end_matches('s').to_string();
            if let Some(first) = k.get_mut(0..1) {
                first.make_ascii_uppercase();
            }
            k
        }
    }
}

fn status_error(code: StatusCode, reason: &str, message: String) -> Response {
    let body = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {},
        "status": "Failure", "message": message, "reason": reason, "code": code.as_u16(),
    });
    (code, axum::Json(body)).into_response()
}

/// What a request addresses.
struct Target {
    resource: Resource,
    namespace: Option<String>,
    name: Option<String>,
    subresource: Option<String>,
}

fn parse_path(path: &str) -> Option<Target> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, rest) = match segs.as_slice() {
        ["api", v, rest @ ..] => (String::new(), v.to_string(), rest),
        ["apis", g, v, rest @ ..] => (g.to_string(), v.to_string(), rest),
        _ => return None,
    };
    let res = |plural: &str| Resource {
        group: group.clone(),
        version: version.clone(),
        plural: plural.to_string(),
    };
    let s = |x: &&str| Some(x.to_string());
    Some(match rest {
        [plural] => Target {
            resource: res(plural),
            namespace: None,
            name: None,
            subresource: None,
        },
        ["namespaces", name] => Target {
            resource: res("namespaces"),
            namespace: None,
            name: s(name),
            subresource: None,
        },
        ["namespaces", name, sub @ ("status" | "finalize")] => Target {
            resource: res("namespaces"),
            namespace: None,
            name: s(name),
            subresource: s(sub),
        },
        ["namespaces", ns, plural] => Target {
            resource: res(plural),
            namespace: s(ns),
            name: None,
            subresource: None,
        },
        ["namespaces", ns, plural, name] => Target {
            resource: res(plural),
            namespace: s(ns),
            name: s(name),
            subresource: None,
        },
        ["namespaces", ns, plural, name, sub] => Target {
            resource: res(plural),
            namespace: s(ns),
            name: s(name),
            subresource: s(sub),
        },
        [plural, name] => Target {
            resource: res(plural),
            namespace: None,
            name: s(name),
            subresource: None,
        },
        [plural, name, sub] => Target {
            resource: res(plural),
            namespace: None,
            name: s(name),
            subresource: s(sub),
        },
        _ => return None,
    })
}

impl Target {
    /// The object this request names `name`, of its kind and namespace.
    fn key(self, name: String) -> Key {
        Key {
            resource: self.resource,
            namespace: self.namespace,
            name,
        }
    }

    /// Whether the request is to the `status` subresource, whose writes change only `.status`.
    fn status_only(&self) -> bool {
        self.subresource.as_deref() == Some("status")
    }
}

/// The request's `content-type`, empty when there is none.
fn content_type(headers: &HeaderMap) -> &str {
    headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// The request's body, YAML or JSON as its content type says; a 400 answer when it is neither.
fn parse_body(headers: &HeaderMap, body: &Bytes) -> Result<Value, Response> {
    let parsed = if content_type(headers).contains("yaml") {
        serde_yaml::from_slice::<Value>(body).map_err(|e| e.to_string())
    } else {
        serde_json::from_slice::<Value>(body).map_err(|e| e.to_string())
    };
    parsed.map_err(|e| status_error(StatusCode::BAD_REQUEST, "BadRequest", e))
}

/// Wakes the watches up after a write, once the store is released for them to read.
fn notify(shared: &Shared, store: MutexGuard<'_, Store>) {
    let rv = store.rv;
    drop(store);
    let _ = shared.changed.send(rv);
}

/// A write's answer: the object as stored, with `code`, or the error.
fn written(r: Result<Value, Response>, code: StatusCode) -> Response {
    match r {
        Ok(v) => (code, axum::Json(v)).into_response(),
        Err(e) => e,
    }
}

/// Serves every request: TokenReviews, then one function per verb, on a collection or on
/// one object.
async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    Query(q): Query<BTreeMap<String, String>>,
    body: Bytes,
) -> Response {
    let Some(t) = parse_path(uri.path()) else {
        return status_error(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("no route {}", uri.path()),
        );
    };
    if method == Method::POST
        && t.resource.group == "authentication.k8s.io"
        && t.resource.plural == "tokenreviews"
    {
        return match parse_body(&headers, &body) {
            Ok(review) => token_review(&shared, &review),
            Err(resp) => resp,
        };
    }
    match (method, t.name.clone()) {
        (Method::GET, None) if q.get("watch").is_some_and(|w| w == "true" || w == "1") => {
            watch(shared, t, q).await
        }
        (Method::GET, None) => list(&shared, &t, &q),
        (Method::GET, Some(name)) => get(&shared, t.key(name)),
        (Method::POST, None) => match parse_body(&headers, &body) {
            Ok(obj) => create(&shared, t, obj),
            Err(r) => r,
        },
        (Method::PUT, Some(name)) => match parse_body(&headers, &body) {
            Ok(obj) => replace(&shared, t, name, obj),
            Err(r) => r,
        },
        (Method::PATCH, Some(name)) => match parse_body(&headers, &body) {
            Ok(p) => patch(&shared, t, name, content_type(&headers), p),
            Err(r) => r,
        },
        (Method::DELETE, Some(name)) => delete(&shared, t.key(name)),
        (m, _) => status_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            format!("{m} not supported here"),
        ),
    }
}

/// GET on a collection: the objects matching the label and field selectors, as a `<Kind>List`
/// at the store's resource version.
fn list(shared: &Shared, t: &Target, q: &BTreeMap<String, String>) -> Response {
    let labels = q.get("labelSelector").map(String::as_str);
    let fields = q.get("fieldSelector").map(String::as_str);
    let store = shared.store.lock().unwrap_or_else(|e| e.into_inner());
    let items: Vec<Value> = store
        .matching(&t.resource, t.namespace.as_deref(), labels, fields)
        .map(|(_, v)| v.clone())
        .collect();
    let gv = if t.resource.group.is_empty() {
        t.resource.version.clone()
    } else {
        format!("{}/{}", t.resource.group, t.resource.version)
    };
    axum::Json(json!({
        "apiVersion": gv,
        "kind": format!("{}List", kind_of(&t.resource.plural)),
        "metadata": {"resourceVersion": store.rv.to_string()},
        "items": items,
    }))
    .into_response()
}

/// GET on one object.
fn get(shared: &Shared, key: Key) -> Response {
    let store = shared.store.lock().unwrap_or_else(|e| e.into_inner());
    match store.objects.get(&key) {
        Some(v) => axum::Json(v.clone()).into_response(),
        None => status_error(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("{} {:?} not found", key.resource.plural, key.name),
        ),
    }
}

/// POST on a collection: creates `obj`, named by `metadata.name` or else generated from
/// `metadata.generateName`.
fn create(shared: &Shared, t: Target, obj: Value) -> Response {
    let name = obj["metadata"]["name"]
        .as_str()
        .map(str::to_string)
        .or_else(|| {
            obj["metadata"]["generateName"]
                .as_str()
                .map(|p| format!("{p}{:x}", rand_suffix()))
        });
    let Some(name) = name else {
        return status_error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Invalid",
            "metadata.name: Required value".into(),
        );
    };
    let mut store = shared.store.lock().unwrap_or_else(|e| e.into_inner());
    let r = store.create(t.key(name), obj);
    notify(shared, store);
    written(r, StatusCode::CREATED)
}

/// PUT on one object (or its status): replaces it.
fn replace(shared: &Shared, t: Target, name: String, obj: Value) -> Response {
    let status_only = t.status_only();
    let key = t.key(name);
    let mut store = shared.store.lock().unwrap_or_else(|e| e.into_inner());
    let r = store.update(&key, obj, status_only);
    notify(shared, store);
    written(r, StatusCode::OK)
}

/// PATCH on one object (or its status): a merge patch, or a server-side apply, which creates
/// the object when it does not exist. JSON patches are refused.
fn patch(shared: &Shared, t: Target, name: String, ct: &str, patch: Value) -> Response {
    if ct.contains("json-patch") {
        return status_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UnsupportedMediaType",
            "JSON patches are not supported by this stand-in".into(),
        );
    }
    let apply = ct.contains("apply-patch");
    let status_only = t.status_only();
    let key = t.key(name);
    let mut store = shared.store.lock().unwrap_or_else(|e| e.into_inner());
    let r = match store.objects.get(&key).cloned() {
        None if apply && !status_only => store.create(key, patch),
        None => Err(status_error(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("{} {:?} not found", key.resource.plural, key.name),
        )),
        Some(cur) => store.update(&key, patched(cur, &patch), status_only),
    };
    notify(shared, store);
    written(r, StatusCode::OK)
}

/// `cur` with `patch` merged in, carrying the patch's resource version (or none).
fn patched(mut cur: Value, patch: &Value) -> Value {
    // Optimistic concurrency applies to patches that carry a resourceVersion.
    let sent = patch["metadata"]["resourceVersion"]
        .as_str()
        .map(str::to_string);
    merge(&mut cur, patch);
    if let Some(s) = sent {
        cur["metadata"]["resourceVersion"] = json!(s);
    } else if let Some(o) = cur["metadata"].as_object_mut() {
        o.remove("resourceVersion");
    }
    cur
}

/// DELETE on one object: answers it as it was, at the deletion's resource version.
fn delete(shared: &Shared, key: Key) -> Response {
    let mut store = shared.store.lock().unwrap_or_else(|e| e.into_inner());
    let r = store.delete(&key);
    notify(shared, store);
    written(r, StatusCode::OK)
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0x1000);
    N.fetch_add(1, Ordering::Relaxed)
}

/// A watch: every change after `resourceVersion` (all current objects as ADDED when it is
/// empty or 0), then changes as they happen, until `timeoutSeconds`.
async fn watch(shared: Arc<Shared>, t: Target, q: BTreeMap<String, String>) -> Response {
    let from: u64 = q
        .get("resourceVersion")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let timeout = Duration::from_secs(
        q.get("timeoutSeconds")
            .and_then(|v| v.parse().ok())
            .unwrap_or(300),
    );
    let labels = q.get("labelSelector").cloned();
    let fields = q.get("fieldSelector").cloned();
    let mut rx = shared.changed.subscribe();
    let (tx, body_rx) = tokio::sync::mpsc::channel::<Result<Bytes, Infallible>>(256);
    tokio::spawn(async move {
        let deadline = tokio::time::Instant::now() + timeout;
        let matches = |key: &Key, obj: &Value| {
            key.resource == t.resource
                && t.namespace
                    .as_ref()
                    .is_none_or(|ns| key.namespace.as_ref() == Some(ns))
                && labels_match(obj, labels.as_deref())
                && fields_match(obj, fields.as_deref())
        };
        let mut sent_up_to = from;
        let initial: Vec<Value> = {
            let store = shared.store.lock().unwrap_or_else(|e| e.into_inner());
            if from == 0 {
                sent_up_to = store.rv;
                store
                    .objects
                    .iter()
                    .filter(|(k, v)| matches(k, v))
                    .map(|(_, v)| json!({"type": "ADDED", "object": v}))
                    .collect()
            } else {
                Vec::new()
            }
        };
        for ev in initial {
            if tx.send(Ok(Bytes::from(format!("{ev}\n")))).await.is_err() {
                return;
            }
        }
        loop {
            let batch: Vec<Value> = {
                let store = shared.store.lock().unwrap_or_else(|e| e.into_inner());
                let out = store
                    .log
                    .iter()
                    .filter(|c| c.rv > sent_up_to && matches(&c.key, &c.object))
                    .map(|c| json!({"type": c.kind, "object": c.object}))
                    .collect();
                sent_up_to = store.rv;
                out
            };
            for ev in batch {
                if tx.send(Ok(Bytes::from(format!("{ev}\n")))).await.is_err() {
                    return;
                }
            }
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => return,
                r = rx.recv() => if matches!(r, Err(broadcast::error::RecvError::Closed)) { return },
            }
        }
    });
    let stream = tokio_stream_from(body_rx);
    Response::builder()
        .header("content-type", "application/json")
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

fn tokio_stream_from(
    mut rx: tokio::sync::mpsc::Receiver<Result<Bytes, Infallible>>,
) -> impl futures::Stream<Item = Result<Bytes, Infallible>> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

impl KubeApi {
    /// Starts the stand-in on a free port of 127.0.0.1.
    pub async fn start() -> KubeApi {
        KubeApi::start_at("127.0.0.1".parse().expect("an address")).await
    }

    /// Starts the stand-in on a free port of `ip` (the lab's host leg, for processes in
    /// network namespaces).
    pub async fn start_at(ip: std::net::IpAddr) -> KubeApi {
        let (changed, _) = broadcast::channel(1024);
        let shared = Arc::new(Shared {
            store: Mutex::new(Store::default()),
            changed,
            tokens: Mutex::new(BTreeMap::new()),
        });
        let listener = tokio::net::TcpListener::bind((ip, 0))
            .await
            .expect("a port for the stand-in");
        let addr = listener.local_addr().expect("its address");
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(shared.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let dir = tempfile::tempdir().expect("a directory for the kubeconfig");
        let api = KubeApi {
            addr,
            shared,
            task,
            dir,
        };
        std::fs::write(api.kubeconfig(), api.kubeconfig_yaml()).expect("kubeconfig written");
        api
    }

    /// Makes `token` one the stand-in's TokenReview authenticates as `holder`.
    pub fn add_token(&self, token: &str, holder: TokenHolder) {
        self.shared
            .tokens
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(token.to_owned(), holder);
    }

    /// Forgets `token` (it expired, or its pod was deleted).
    pub fn revoke_token(&self, token: &str) {
        self.shared
            .tokens
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(token);
    }

    /// `http://127.0.0.1:port`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A kubeconfig file pointing at the stand-in (for processes: `KUBECONFIG=...`).
    pub fn kubeconfig(&self) -> std::path::PathBuf {
        self.dir.path().join("kubeconfig")
    }

    fn kubeconfig_yaml(&self) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: standin\n  cluster:\n    server: {}\ncontexts:\n- name: standin\n  context:\n    cluster: standin\n    user: nobody\n    namespace: default\ncurrent-context: standin\nusers:\n- name: nobody\n  user: {{}}\n",
            self.url()
        )
    }

    fn resource_of(obj: &Value) -> Resource {
        let api_version = obj["apiVersion"].as_str().unwrap_or("v1");
        let (group, version) = match api_version.split_once('/') {
            Some((g, v)) => (g.to_string(), v.to_string()),
            None => (String::new(), api_version.to_string()),
        };
        let kind = obj["kind"].as_str().unwrap_or("");
        let mut plural = kind.to_ascii_lowercase();
        plural = match plural.as_str() {
            "community" => "communities".into(),
            _ if plural.ends_with('s') => format!("{plural}es"),
            _ => format!("{plural}s"),
        };
        Resource {
            group,
            version,
            plural,
        }
    }

    fn key_of(obj: &Value) -> Key {
        let resource = Self::resource_of(obj);
        let cluster_scoped = matches!(resource.plural.as_str(), "namespaces" | "nodes");
        Key {
            resource,
            namespace: if cluster_scoped {
                None
            } else {
                Some(
                    obj["metadata"]["namespace"]
                        .as_str()
                        .unwrap_or("default")
                        .to_string(),
                )
            },
            name: obj["metadata"]["name"].as_str().unwrap_or("").to_string(),
        }
    }

    /// Creates or replaces objects from YAML documents (as `kubectl apply` would), status
    /// included; returns them as stored.
    pub fn apply(&self, yaml: &str) -> Vec<Value> {
        let mut out = Vec::new();
        for doc in serde_yaml::Deserializer::from_str(yaml) {
            let v: Value = serde::Deserialize::deserialize(doc).expect("YAML document");
            if v.is_null() {
                continue;
            }
            let key = Self::key_of(&v);
            let mut store = self.shared.store.lock().unwrap_or_else(|e| e.into_inner());
            let stored = if store.objects.contains_key(&key) {
                let mut new = v.clone();
                if let Some(o) = new["metadata"].as_object_mut() {
                    o.remove("resourceVersion");
                }
                let status = new.get("status").cloned();
                let mut r = store.update(&key, new, false).expect("replace");
                if let Some(s) = status {
                    let mut with = r.clone();
                    with["status"] = s;
                    if let Some(o) = with["metadata"].as_object_mut() {
                        o.remove("resourceVersion");
                    }
                    r = store.update(&key, with, true).expect("status");
                }
                r
            } else {
                store.create(key, v).expect("create")
            };
            let rv = store.rv;
            drop(store);
            let _ = self.shared.changed.send(rv);
            out.push(stored);
        }
        out
    }

    /// Deletes an object; true if it existed.
    pub fn delete(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> bool {
        let probe = json!({"apiVersion": api_version, "kind": kind, "metadata": {"name": name, "namespace": namespace.unwrap_or("default")}});
        let key = Self::key_of(&probe);
        let mut store = self.shared.store.lock().unwrap_or_else(|e| e.into_inner());
        let ok = store.delete(&key).is_ok();
        let rv = store.rv;
        drop(store);
        let _ = self.shared.changed.send(rv);
        ok
    }

    /// An object as stored now.
    pub fn get(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Option<Value> {
        let probe = json!({"apiVersion": api_version, "kind": kind, "metadata": {"name": name, "namespace": namespace.unwrap_or("default")}});
        let key = Self::key_of(&probe);
        let store = self.shared.store.lock().unwrap_or_else(|e| e.into_inner());
        store.objects.get(&key).cloned()
    }

    /// Every object of a kind (`apiVersion`, `kind`), in any namespace.
    pub fn list(&self, api_version: &str, kind: &str) -> Vec<Value> {
        let probe = json!({"apiVersion": api_version, "kind": kind, "metadata": {"name": ""}});
        let resource = Self::resource_of(&probe);
        let store = self.shared.store.lock().unwrap_or_else(|e| e.into_inner());
        store
            .objects
            .iter()
            .filter(|(k, _)| k.resource == resource)
            .map(|(_, v)| v.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests;
