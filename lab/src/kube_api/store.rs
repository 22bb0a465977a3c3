//! The stand-in's object store: create, update (with resourceVersion checks), delete (with
//! its dependents), list by label and field selectors, and merge patches.

use super::*;

pub(super) fn labels_match(obj: &Value, selector: Option<&str>) -> bool {
    let Some(sel) = selector.filter(|s| !s.is_empty()) else {
        return true;
    };
    let labels = obj["metadata"]["labels"].as_object();
    let get = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
    sel.split(',').all(|term| {
        if let Some((k, v)) = term.split_once("!=") {
            get(k.trim()) != Some(v.trim())
        } else if let Some((k, v)) = term.split_once('=') {
            get(k.trim()) == Some(v.trim_start_matches('=').trim())
        } else if let Some(k) = term.strip_prefix('!') {
            get(k.trim()).is_none()
        } else {
            get(term.trim()).is_some()
        }
    })
}

pub(super) fn fields_match(obj: &Value, selector: Option<&str>) -> bool {
    let Some(sel) = selector.filter(|s| !s.is_empty()) else {
        return true;
    };
    sel.split(',').all(|term| {
        let (path, want, negate) = match term.split_once("!=") {
            Some((p, v)) => (p, v, true),
            None => match term.split_once('=') {
                Some((p, v)) => (p, v.trim_start_matches('='), false),
                None => return true,
            },
        };
        let mut cur = obj;
        for part in path.trim().split('.') {
            cur = &cur[part];
        }
        let have = cur.as_str().unwrap_or("");
        (have == want.trim()) != negate
    })
}

/// RFC 7386 JSON merge patch.
pub(super) fn merge(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(p) => {
            if !target.is_object() {
                *target = Value::Object(Map::new());
            }
            if let Some(t) = target.as_object_mut() {
                for (k, v) in p {
                    if v.is_null() {
                        t.remove(k);
                    } else {
                        merge(t.entry(k.clone()).or_insert(Value::Null), v);
                    }
                }
            }
        }
        other => *target = other.clone(),
    }
}

impl Store {
    pub(super) fn record(&mut self, kind: &'static str, key: Key, object: Value) {
        self.log.push(Change {
            rv: self.rv,
            kind,
            key,
            object,
        });
    }

    pub(super) fn create(&mut self, key: Key, mut obj: Value) -> Result<Value, Response> {
        if self.objects.contains_key(&key) {
            return Err(status_error(
                StatusCode::CONFLICT,
                "AlreadyExists",
                format!("{} {:?} already exists", key.resource.plural, key.name),
            ));
        }
        self.rv += 1;
        let md = obj["metadata"].as_object_mut().cloned().unwrap_or_default();
        let mut md = md;
        md.insert("name".into(), json!(key.name));
        if let Some(ns) = &key.namespace {
            md.insert("namespace".into(), json!(ns));
        }
        md.insert("uid".into(), json!(format!("uid-{}", self.rv)));
        md.insert(
            "creationTimestamp".into(),
            json!(ironlb::k8s::now_rfc3339()),
        );
        md.insert("resourceVersion".into(), json!(self.rv.to_string()));
        md.insert("generation".into(), json!(1));
        obj["metadata"] = Value::Object(md);
        if obj.get("kind").is_none() {
            obj["kind"] = json!(kind_of(&key.resource.plural));
        }
        self.objects.insert(key.clone(), obj.clone());
        self.record("ADDED", key, obj.clone());
        // Created with owners already gone: Kubernetes would collect it soon after.
        self.collect_garbage();
        Ok(obj)
    }

    /// Stores `new` in place of the object at `key`, which must exist, keeping what clients
    /// may not change.
    pub(super) fn update(
        &mut self,
        key: &Key,
        mut new: Value,
        status_only: bool,
    ) -> Result<Value, Response> {
        let Some(old) = self.objects.get(key).cloned() else {
            return Err(status_error(
                StatusCode::NOT_FOUND,
                "NotFound",
                format!("{} {:?} not found", key.resource.plural, key.name),
            ));
        };
        let current = old["metadata"]["resourceVersion"]
            .as_str()
            .unwrap_or("")
            .to_string();
        if let Some(sent) = new["metadata"]["resourceVersion"].as_str() {
            if !sent.is_empty() && sent != current {
                return Err(status_error(
                    StatusCode::CONFLICT,
                    "Conflict",
                    format!(
                        "Operation cannot be fulfilled on {} {:?}: the object has been modified; please apply your changes to the latest version and try again (sent resourceVersion {sent}, current {current})",
                        key.resource.plural, key.name
                    ),
                ));
            }
        }
        let merged = if status_only {
            let mut o = old.clone();
            o["status"] = new.get("status").cloned().unwrap_or(Value::Null);
            o
        } else {
            // The status subresource is the only way to change status.
            match old.get("status") {
                Some(s) => new["status"] = s.clone(),
                None => {
                    if let Some(o) = new.as_object_mut() {
                        o.remove("status");
                    }
                }
            }
            for f in ["uid", "creationTimestamp", "name", "namespace"] {
                new["metadata"][f] = old["metadata"][f].clone();
            }
            let gen = old["metadata"]["generation"].as_i64().unwrap_or(1);
            let spec_changed = new.get("spec") != old.get("spec");
            new["metadata"]["generation"] = json!(if spec_changed { gen + 1 } else { gen });
            if new.get("kind").is_none() {
                new["kind"] = old["kind"].clone();
            }
            if new.get("apiVersion").is_none() {
                new["apiVersion"] = old["apiVersion"].clone();
            }
            new
        };
        if merged == old {
            return Ok(old);
        }
        let mut merged = merged;
        self.rv += 1;
        merged["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        self.objects.insert(key.clone(), merged.clone());
        self.record("MODIFIED", key.clone(), merged.clone());
        Ok(merged)
    }

    /// Deletes the object at `key`, then its dependents.
    pub(super) fn delete(&mut self, key: &Key) -> Result<Value, Response> {
        let r = self.remove(key);
        self.collect_garbage();
        r
    }

    /// Deletes every object whose owner references all name deleted objects, until none is
    /// left (dependents of dependents too), as background propagation does.
    pub(super) fn collect_garbage(&mut self) {
        loop {
            let orphans: Vec<Key> = self
                .objects
                .iter()
                .filter(|(_, v)| {
                    let owners = v["metadata"]["ownerReferences"].as_array();
                    owners.is_some_and(|o| {
                        !o.is_empty()
                            && o.iter().all(|r| {
                                r["uid"]
                                    .as_str()
                                    .is_some_and(|u| self.deleted_uids.contains(u))
                            })
                    })
                })
                .map(|(k, _)| k.clone())
                .collect();
            if orphans.is_empty() {
                return;
            }
            for k in orphans {
                let _ = self.remove(&k);
            }
        }
    }

    fn remove(&mut self, key: &Key) -> Result<Value, Response> {
        let Some(mut old) = self.objects.remove(key) else {
            return Err(status_error(
                StatusCode::NOT_FOUND,
                "NotFound",
                format!("{} {:?} not found", key.resource.plural, key.name),
            ));
        };
        if let Some(uid) = old["metadata"]["uid"].as_str() {
            self.deleted_uids.insert(uid.to_owned());
        }
        self.rv += 1;
        old["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        self.record("DELETED", key.clone(), old.clone());
        Ok(old)
    }

    pub(super) fn matching<'a>(
        &'a self,
        resource: &'a Resource,
        namespace: Option<&'a str>,
        labels: Option<&'a str>,
        fields: Option<&'a str>,
    ) -> impl Iterator<Item = (&'a Key, &'a Value)> + 'a {
        self.objects.iter().filter(move |(k, v)| {
            &k.resource == resource
                && namespace.is_none_or(|ns| k.namespace.as_deref() == Some(ns))
                && labels_match(v, labels)
                && fields_match(v, fields)
        })
    }
}
