//! `ironlb migrate`: MetalLB's configuration objects (`metallb.io/v1beta1` and `v1beta2`, as of
//! MetalLB v0.16) as ironlb's (`ironlb.io/v1beta1`), moved to ironlb's namespace.
//!
//! The kinds and most fields are the same, so most fields are kept as written; the rest are
//! converted to what gives the same behaviour, dropped with a warning where ironlb does the
//! same without them, or refused where ironlb cannot do what they ask. Every field of every
//! object gets a [`FieldNote`] saying which (the table is in [`fields`]). Services are not
//! rewritten: ironlb reads MetalLB's annotations in place, and each one gets a note too.

mod fields;
#[cfg(test)]
mod tests;

use std::fmt;

use serde_yaml::{Mapping, Value};

/// The kinds that move over.
const KINDS: [&str; 6] = [
    "IPAddressPool",
    "L2Advertisement",
    "BGPAdvertisement",
    "BGPPeer",
    "Community",
    "BFDProfile",
];

/// MetalLB's status kinds: written by its controller and speakers, nothing to migrate.
const STATUS_KINDS: [&str; 3] = ["ServiceL2Status", "ServiceBGPStatus", "ConfigurationState"];

/// Why the input could not be migrated at all.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// The input is not YAML.
    #[error("not valid YAML: {0}")]
    Parse(#[source] serde_yaml::Error),
    /// A converted object could not be written out.
    #[error("cannot write {object} as YAML: {source}")]
    Render {
        /// `Kind/name` of the object.
        object: String,
        /// What went wrong.
        #[source]
        source: serde_yaml::Error,
    },
}

/// What became of one field (or annotation) of MetalLB's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fate {
    /// Carried over as written: ironlb reads it the same way.
    Kept,
    /// Rewritten to what gives MetalLB's behaviour in ironlb; the text says how.
    Converted(String),
    /// Left out, with a warning saying why ironlb behaves acceptably without it.
    Dropped(String),
    /// ironlb cannot do what it asks: the object is not migrated.
    Refused(String),
}

/// The fate of one field of one object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldNote {
    /// `Kind/name` (`Service/namespace/name` for Services).
    pub object: String,
    /// The field (`spec.localASN`, `metadata.annotations["metallb.io/address-pool"]`).
    pub field: String,
    /// What became of it.
    pub fate: Fate,
}

impl fmt::Display for FieldNote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (what, why) = match &self.fate {
            Fate::Kept => ("kept", ""),
            Fate::Converted(why) => ("converted", why.as_str()),
            Fate::Dropped(why) => ("dropped", why.as_str()),
            Fate::Refused(why) => ("refused", why.as_str()),
        };
        write!(f, "{}: {}: {what}", self.object, self.field)?;
        if !why.is_empty() {
            write!(f, ": {why}")?;
        }
        Ok(())
    }
}

/// What became of one input document (a `List`'s items count as documents).
#[derive(Debug, PartialEq)]
pub enum Converted {
    /// An ironlb object.
    Object(Value),
    /// Left out, and why (another kind, a status kind, a Service ironlb reads as it is).
    Skipped(String),
    /// Not migrated: `Kind/name` of an object with a refused field (the notes say which).
    Refused(String),
}

/// The result of a migration: the documents and every field's fate.
#[derive(Debug, Default, PartialEq)]
pub struct Migrated {
    /// The documents, in input order.
    pub documents: Vec<Converted>,
    /// Every field's fate, in input order.
    pub notes: Vec<FieldNote>,
}

impl Migrated {
    /// The ironlb objects.
    pub fn objects(&self) -> impl Iterator<Item = &Value> {
        self.documents.iter().filter_map(|d| match d {
            Converted::Object(v) => Some(v),
            _ => None,
        })
    }

    /// The notes of refused fields: each one keeps its object out.
    pub fn refusals(&self) -> impl Iterator<Item = &FieldNote> {
        self.notes
            .iter()
            .filter(|n| matches!(n.fate, Fate::Refused(_)))
    }

    /// The notes worth a warning: converted and dropped fields.
    pub fn warnings(&self) -> impl Iterator<Item = &FieldNote> {
        self.notes
            .iter()
            .filter(|n| matches!(n.fate, Fate::Converted(_) | Fate::Dropped(_)))
    }

    /// The ironlb objects as one YAML stream.
    pub fn to_yaml(&self) -> Result<String, MigrateError> {
        let mut out = String::new();
        for v in self.objects() {
            let text = serde_yaml::to_string(v).map_err(|source| MigrateError::Render {
                object: object_name(v),
                source,
            })?;
            out.push_str("---\n");
            out.push_str(&text);
        }
        Ok(out)
    }
}

/// Migrates every document of `text`; `namespace` replaces MetalLB's (`metallb-system`).
pub fn migrate(text: &str, namespace: &str) -> Result<Migrated, MigrateError> {
    let mut out = Migrated::default();
    for doc in serde_yaml::Deserializer::from_str(text) {
        let v: Value = serde::Deserialize::deserialize(doc).map_err(MigrateError::Parse)?;
        document(v, namespace, &mut out);
    }
    Ok(out)
}

/// Migrates one document; a `List` (what `kubectl get -o yaml` prints) item by item.
fn document(mut v: Value, namespace: &str, out: &mut Migrated) {
    if v.is_null() {
        return;
    }
    let kind = str_at(&v, &["kind"]).to_owned();
    let api = str_at(&v, &["apiVersion"]).to_owned();
    if kind == "List" || (kind.ends_with("List") && v.get("items").is_some()) {
        let items = match v.get_mut("items").map(std::mem::take) {
            Some(Value::Sequence(items)) => items,
            _ => Vec::new(),
        };
        for item in items {
            document(item, namespace, out);
        }
        return;
    }
    let object = object_name(&v);
    match (api.as_str(), kind.as_str()) {
        (a, k) if a.starts_with("metallb.io/") && KINDS.contains(&k) => {
            metallb_object(v, namespace, out)
        }
        (a, k) if a.starts_with("metallb.io/") && STATUS_KINDS.contains(&k) => {
            out.documents.push(Converted::Skipped(format!(
                "{object}: MetalLB's status, written by its controller; ironlb writes its own"
            )));
        }
        ("v1", "Service") => fields::service(&v, out),
        ("v1", "ConfigMap") if fields::is_legacy_config(&v) => {
            out.notes.push(FieldNote {
                object: object.clone(),
                field: "data.config".into(),
                fate: Fate::Refused(
                    "MetalLB's ConfigMap configuration (before v0.13) is not read: convert it \
                     to MetalLB's custom resources first (MetalLB's configmaptocrs), then \
                     migrate those"
                        .into(),
                ),
            });
            out.documents.push(Converted::Refused(object));
        }
        (a, _) if a.starts_with("frrk8s.metallb.io/") => {
            out.notes.push(FieldNote {
                object: object.clone(),
                field: "spec".into(),
                fate: Fate::Dropped(
                    "FRR-K8s configuration: ironlb's speaker has no FRR and installs no routes \
                     it receives; the sessions themselves come from the BGPPeers"
                        .into(),
                ),
            });
            out.documents
                .push(Converted::Skipped(format!("{object}: not migrated")));
        }
        (a, k) if a.starts_with("metallb.io/") => out.documents.push(Converted::Skipped(format!(
            "{object}: ironlb has no {k} (not a MetalLB v0.16 configuration kind)"
        ))),
        (a, _) => out.documents.push(Converted::Skipped(format!(
            "{object}: {a:?} is not a MetalLB object"
        ))),
    }
}

/// Migrates one object of a MetalLB configuration kind.
fn metallb_object(mut v: Value, namespace: &str, out: &mut Migrated) {
    let object = object_name(&v);
    let version = str_at(&v, &["apiVersion"])
        .trim_start_matches("metallb.io/")
        .to_owned();
    let kind = str_at(&v, &["kind"]).to_owned();
    v["apiVersion"] = Value::from(crate::config::kinds::API_VERSION);
    metadata(&mut v, namespace);
    if let Some(m) = v.as_mapping_mut() {
        // Written by MetalLB's controller (pool counts); ironlb's controller writes its own.
        m.remove("status");
    }
    let first = out.notes.len();
    if let Some(spec) = v.get_mut("spec").and_then(Value::as_mapping_mut) {
        let mut ctx = fields::Ctx {
            object: &object,
            namespace,
            notes: &mut out.notes,
        };
        fields::spec(&kind, &version, spec, &mut ctx);
    }
    if out.notes[first..]
        .iter()
        .any(|n| matches!(n.fate, Fate::Refused(_)))
    {
        out.documents.push(Converted::Refused(object));
    } else {
        out.documents.push(Converted::Object(v));
    }
}

/// Moves the object to `namespace` and removes what the API server owns.
fn metadata(v: &mut Value, namespace: &str) {
    let Some(m) = v.get_mut("metadata").and_then(Value::as_mapping_mut) else {
        return;
    };
    m.insert("namespace".into(), namespace.into());
    // Server-owned fields of an exported object mean nothing to a new one.
    for f in [
        "uid",
        "resourceVersion",
        "creationTimestamp",
        "generation",
        "managedFields",
        "selfLink",
    ] {
        m.remove(f);
    }
    if let Some(a) = m.get_mut("annotations").and_then(Value::as_mapping_mut) {
        a.remove("kubectl.kubernetes.io/last-applied-configuration");
    }
}

/// The string at a path of mapping keys, or "".
fn str_at<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    let mut at = v;
    for key in path {
        match at.get(*key) {
            Some(next) => at = next,
            None => return "",
        }
    }
    at.as_str().unwrap_or("")
}

/// `Kind/name`, or `Kind/namespace/name` for Services (whose namespace matters).
fn object_name(v: &Value) -> String {
    let kind = str_at(v, &["kind"]);
    let name = str_at(v, &["metadata", "name"]);
    if kind == "Service" {
        let ns = match str_at(v, &["metadata", "namespace"]) {
            "" => "default",
            ns => ns,
        };
        return format!("{kind}/{ns}/{name}");
    }
    format!("{kind}/{name}")
}

/// A mapping's string keys, in order (MetalLB's fields are all strings).
fn keys(m: &Mapping) -> Vec<String> {
    m.keys()
        .map(|k| k.as_str().map_or_else(|| format!("{k:?}"), str::to_owned))
        .collect()
}
