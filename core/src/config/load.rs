//! Reading configuration documents from files: a file or a directory of files, each holding
//! any number of YAML (or JSON) documents of the ironlb kinds, Services and Namespaces.
//!
//! Loading never stops at a bad document: every document that parses is kept, and every one
//! that does not gives an error naming its file and position.

use std::fs;
use std::path::Path;

use k8s_openapi::api::core::v1::{Namespace as NamespaceObject, Service};
use serde::de::DeserializeOwned;

use super::error::{ConfigError, ConfigErrors, Origin};
use super::kinds::{
    BFDProfileSpec, BGPAdvertisementSpec, BGPPeerSpec, CommunitySpec, IPAddressPoolSpec,
    L2AdvertisementSpec, Object, Spec, API_VERSION, GROUP,
};
use super::model::Config;
use super::validate::validate;

/// A loaded object and where it came from.
#[derive(Clone, Debug, PartialEq)]
pub struct Sourced<T> {
    /// The file and document it was read from.
    pub origin: Origin,
    /// The object.
    pub object: T,
}

/// Every object loaded, by kind, in the order read.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Documents {
    /// IPAddressPool objects.
    pub ip_address_pools: Vec<Sourced<Object<IPAddressPoolSpec>>>,
    /// L2Advertisement objects.
    pub l2_advertisements: Vec<Sourced<Object<L2AdvertisementSpec>>>,
    /// BGPAdvertisement objects.
    pub bgp_advertisements: Vec<Sourced<Object<BGPAdvertisementSpec>>>,
    /// BGPPeer objects.
    pub bgp_peers: Vec<Sourced<Object<BGPPeerSpec>>>,
    /// Community objects.
    pub communities: Vec<Sourced<Object<CommunitySpec>>>,
    /// BFDProfile objects.
    pub bfd_profiles: Vec<Sourced<Object<BFDProfileSpec>>>,
    /// core/v1 Services (standalone mode).
    pub services: Vec<Sourced<Service>>,
    /// core/v1 Namespaces (standalone mode: their labels feed namespaceSelectors).
    pub namespaces: Vec<Sourced<NamespaceObject>>,
}

/// The outcome of loading: the documents that parsed and an error for each that did not.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Loaded {
    /// The documents that parsed.
    pub documents: Documents,
    /// What could not be read or parsed.
    pub errors: Vec<ConfigError>,
}

impl Loaded {
    /// The documents if everything parsed, else every error.
    pub fn into_result(self) -> Result<Documents, ConfigErrors> {
        if self.errors.is_empty() {
            Ok(self.documents)
        } else {
            Err(ConfigErrors(self.errors))
        }
    }
}

/// The file name extensions read from a directory.
const EXTENSIONS: [&str; 3] = ["yaml", "yml", "json"];

impl Documents {
    /// Loads a file, or every `*.yaml`, `*.yml` and `*.json` file of a directory (not its
    /// subdirectories) in file name order.
    pub fn load(path: &Path) -> Loaded {
        let mut loaded = Loaded::default();
        let metadata = match fs::metadata(path) {
            Ok(m) => m,
            Err(e) => {
                loaded.errors.push(file_error(path, &e.to_string()));
                return loaded;
            }
        };
        if !metadata.is_dir() {
            load_file(path, &mut loaded);
            return loaded;
        }
        let entries = match fs::read_dir(path) {
            Ok(entries) => entries,
            Err(e) => {
                loaded.errors.push(file_error(path, &e.to_string()));
                return loaded;
            }
        };
        let mut files = Vec::new();
        for entry in entries {
            let entry = match entry {
                Ok(entry) => entry,
                Err(e) => {
                    loaded.errors.push(file_error(path, &e.to_string()));
                    continue;
                }
            };
            let name = entry.file_name();
            let name_str = name.to_string_lossy();
            // Hidden files are editor leftovers (`.#pools.yaml` locks) or, in a mounted
            // ConfigMap, the `..data` machinery whose files also appear under their own names.
            if name_str.starts_with('.') {
                continue;
            }
            let wanted = Path::new(&name)
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| EXTENSIONS.iter().any(|x| x.eq_ignore_ascii_case(e)));
            // fs::metadata follows symlinks: ConfigMap files are symlinks to regular files.
            let entry_path = entry.path();
            if wanted && fs::metadata(&entry_path).is_ok_and(|m| m.is_file()) {
                files.push((name, entry_path));
            }
        }
        files.sort();
        for (_, file) in files {
            load_file(&file, &mut loaded);
        }
        loaded
    }

    /// Parses the documents of one text; `origin_name` stands for the file name in origins
    /// and errors.
    pub fn from_str(text: &str, origin_name: &str) -> Loaded {
        let mut loaded = Loaded::default();
        parse_text(text, origin_name, &mut loaded);
        loaded
    }

    /// Adds the documents of `other` after these.
    pub fn extend(&mut self, other: Documents) {
        self.ip_address_pools.extend(other.ip_address_pools);
        self.l2_advertisements.extend(other.l2_advertisements);
        self.bgp_advertisements.extend(other.bgp_advertisements);
        self.bgp_peers.extend(other.bgp_peers);
        self.communities.extend(other.communities);
        self.bfd_profiles.extend(other.bfd_profiles);
        self.services.extend(other.services);
        self.namespaces.extend(other.namespaces);
    }

    /// Whether no document was loaded.
    pub fn is_empty(&self) -> bool {
        self.ip_address_pools.is_empty()
            && self.l2_advertisements.is_empty()
            && self.bgp_advertisements.is_empty()
            && self.bgp_peers.is_empty()
            && self.communities.is_empty()
            && self.bfd_profiles.is_empty()
            && self.services.is_empty()
            && self.namespaces.is_empty()
    }
}

/// Loads and validates a file or directory, reporting every load and validation error at once
/// (documents that failed to load are missing from validation, which may add errors about
/// references to them).
pub fn load_config(path: &Path) -> Result<(Documents, Config), ConfigErrors> {
    load_configs(&[path])
}

/// [`load_config`] of several files or directories taken as one (a configuration file and a
/// Services file, say): their documents together, validated together.
pub fn load_configs<P: AsRef<Path>>(paths: &[P]) -> Result<(Documents, Config), ConfigErrors> {
    let mut documents = Documents::default();
    let mut errors = Vec::new();
    for path in paths {
        let loaded = Documents::load(path.as_ref());
        documents.extend(loaded.documents);
        errors.extend(loaded.errors);
    }
    match validate(&documents) {
        Ok(config) if errors.is_empty() => Ok((documents, config)),
        Ok(_) => Err(ConfigErrors(errors)),
        Err(more) => {
            errors.extend(more.0);
            // Stable: errors of one document keep the order in which they were found.
            errors.sort_by(|a, b| a.origin.cmp(&b.origin));
            Err(ConfigErrors(errors))
        }
    }
}

/// An error about a whole file or directory.
fn file_error(path: &Path, message: &str) -> ConfigError {
    ConfigError::new(
        None,
        "",
        "",
        "",
        format!("cannot read {}: {message}", path.display()),
    )
}

fn load_file(path: &Path, loaded: &mut Loaded) {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) => {
            loaded.errors.push(file_error(path, &e.to_string()));
            return;
        }
    };
    match String::from_utf8(bytes) {
        Ok(text) => parse_text(&text, &path.display().to_string(), loaded),
        Err(_) => loaded
            .errors
            .push(file_error(path, "the file is not UTF-8 text")),
    }
}

/// One document of a stream.
struct RawDocument {
    /// The 0-based line of the file its text starts on.
    first_line: usize,
    /// Its text, markers blanked out so columns stay as in the file.
    text: String,
}

/// Whether a line (without its line break) is the marker `marker` (`---` or `...`), alone or
/// followed by a space or tab.
fn is_marker(line: &str, marker: &str) -> bool {
    line.strip_prefix(marker)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', '\t']))
}

/// Whether a line carries YAML content (not blank, not only a comment).
fn has_content(line: &str) -> bool {
    let t = line.trim_start();
    !t.is_empty() && !t.starts_with('#')
}

/// Splits a YAML stream into its documents.
///
/// serde_yaml's own multi-document iterator stops at the first syntax error (and then yields
/// that error forever), so a broken document would hide every one after it. The YAML spec
/// forbids `---` and `...` at the start of a line inside any scalar, so splitting on those
/// lines finds the same documents and lets each be parsed, or fail, alone.
fn split_documents(text: &str) -> Vec<RawDocument> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut docs = Vec::new();
    let mut current = RawDocument {
        first_line: 0,
        text: String::new(),
    };
    // A document opened by `---` counts even when empty; text before any marker, or after
    // `...`, counts only if it holds content (as for serde_yaml, whose numbering this keeps).
    let mut explicit = false;
    let mut content = false;
    let finish = |docs: &mut Vec<RawDocument>, doc: RawDocument, explicit: bool, content| {
        if explicit || content {
            docs.push(doc);
        }
    };
    for (n, line) in text.split_inclusive('\n').enumerate() {
        let bare = line.trim_end_matches(['\n', '\r']);
        if is_marker(bare, "---") {
            let done = std::mem::replace(
                &mut current,
                RawDocument {
                    first_line: n,
                    text: format!("   {}", &line[3..]),
                },
            );
            finish(&mut docs, done, explicit, content);
            explicit = true;
            content = has_content(&line[3..]);
        } else if is_marker(bare, "...") {
            let done = std::mem::replace(
                &mut current,
                RawDocument {
                    first_line: n + 1,
                    text: String::new(),
                },
            );
            finish(&mut docs, done, explicit, content);
            explicit = false;
            content = false;
        } else if !explicit && !content && bare.starts_with('%') {
            // A directive (`%YAML 1.2`) before a document: not content, and dropped since
            // serde_yaml needs none; a blank line keeps the line numbers.
            current.text.push('\n');
        } else {
            content |= has_content(line);
            current.text.push_str(line);
        }
    }
    finish(&mut docs, current, explicit, content);
    docs
}

/// Parses one document as `T`, giving serde_yaml's message (field path, problem, line and
/// column in the file) on failure.
fn parse_as<T: DeserializeOwned>(doc: &RawDocument) -> Result<T, String> {
    serde_yaml::from_str(&doc.text).map_err(|_| {
        // Parse again with the document's preceding lines blanked so that the line numbers in
        // the message are the file's; only on failure, as this costs a pass over them.
        let padded = format!("{}{}", "\n".repeat(doc.first_line), doc.text);
        match serde_yaml::from_str::<T>(&padded) {
            Err(e) => e.to_string(),
            Ok(_) => "the document could not be parsed".to_owned(),
        }
    })
}

fn parse_text(text: &str, file: &str, loaded: &mut Loaded) {
    for (i, doc) in split_documents(text).into_iter().enumerate() {
        let origin = Origin::new(file, i + 1);
        match parse_as::<serde_yaml::Value>(&doc) {
            Ok(value) => parse_object(&doc, &value, &origin, loaded),
            Err(e) => loaded.errors.push(ConfigError::new(
                Some(origin),
                "",
                "",
                "",
                format!("invalid YAML: {e}"),
            )),
        }
    }
}

/// Takes one parsed document (or one item of a `v1` `List`, as `kubectl get -o yaml` prints)
/// into `loaded`, or says why not.
fn parse_object(
    doc: &RawDocument,
    value: &serde_yaml::Value,
    origin: &Origin,
    loaded: &mut Loaded,
) {
    let error = |kind: &str, name: &str, path: &str, message: String| {
        ConfigError::new(Some(origin.clone()), kind, name, path, message)
    };
    let map = match value {
        serde_yaml::Value::Null => return,
        serde_yaml::Value::Mapping(map) => map,
        _ => {
            loaded.errors.push(error(
                "",
                "",
                "",
                "a document must be a mapping with apiVersion, kind, metadata and spec".to_owned(),
            ));
            return;
        }
    };
    let api_version = map.get("apiVersion").and_then(|v| v.as_str());
    let kind = map.get("kind").and_then(|v| v.as_str());
    let name = map
        .get("metadata")
        .and_then(|m| m.get("name"))
        .and_then(|n| n.as_str())
        .unwrap_or("");
    let (api_version, kind) = match (api_version, kind) {
        (Some(a), Some(k)) => (a, k),
        (None, k) => {
            let message = "is required (a string)".to_owned();
            loaded
                .errors
                .push(error(k.unwrap_or(""), name, "apiVersion", message));
            return;
        }
        (Some(_), None) => {
            let message = "is required (a string)".to_owned();
            loaded.errors.push(error("", name, "kind", message));
            return;
        }
    };
    if (api_version, kind) == ("v1", "List") {
        parse_list(doc, map.get("items"), origin, loaded);
        return;
    }
    let docs = &mut loaded.documents;
    let result = match (api_version, kind) {
        (API_VERSION, IPAddressPoolSpec::KIND) => {
            push_sourced(doc, origin, &mut docs.ip_address_pools)
        }
        (API_VERSION, L2AdvertisementSpec::KIND) => {
            push_sourced(doc, origin, &mut docs.l2_advertisements)
        }
        (API_VERSION, BGPAdvertisementSpec::KIND) => {
            push_sourced(doc, origin, &mut docs.bgp_advertisements)
        }
        (API_VERSION, BGPPeerSpec::KIND) => push_sourced(doc, origin, &mut docs.bgp_peers),
        (API_VERSION, CommunitySpec::KIND) => push_sourced(doc, origin, &mut docs.communities),
        (API_VERSION, BFDProfileSpec::KIND) => push_sourced(doc, origin, &mut docs.bfd_profiles),
        ("v1", "Service") => push_sourced(doc, origin, &mut docs.services),
        ("v1", "Namespace") => push_sourced(doc, origin, &mut docs.namespaces),
        (_, _) => Err(unsupported(api_version, kind)),
    };
    if let Err(message) = result {
        loaded.errors.push(error(kind, name, "", message));
    }
}

/// The items of a `List`: each is taken as a document of its own. A parse error in an item
/// gives line numbers within that item, as serde_yaml prints it again.
fn parse_list(
    doc: &RawDocument,
    items: Option<&serde_yaml::Value>,
    origin: &Origin,
    loaded: &mut Loaded,
) {
    let items = match items {
        None | Some(serde_yaml::Value::Null) => return,
        Some(serde_yaml::Value::Sequence(items)) => items,
        Some(_) => {
            let message = "must be a list of objects".to_owned();
            let e = ConfigError::new(Some(origin.clone()), "List", "", "items", message);
            loaded.errors.push(e);
            return;
        }
    };
    for item in items {
        let text = match serde_yaml::to_string(item) {
            Ok(text) => text,
            // A value serde_yaml just parsed always prints; should it not, the item is
            // reported rather than dropped.
            Err(e) => {
                let message = format!("could not be read again: {e}");
                let e = ConfigError::new(Some(origin.clone()), "List", "", "items", message);
                loaded.errors.push(e);
                continue;
            }
        };
        let item_doc = RawDocument {
            first_line: doc.first_line,
            text,
        };
        parse_object(&item_doc, item, origin, loaded);
    }
}

/// The kinds of the ironlb API group.
const KINDS: [&str; 6] = [
    IPAddressPoolSpec::KIND,
    L2AdvertisementSpec::KIND,
    BGPAdvertisementSpec::KIND,
    BGPPeerSpec::KIND,
    CommunitySpec::KIND,
    BFDProfileSpec::KIND,
];

/// Why a document of this apiVersion and kind is not taken.
fn unsupported(api_version: &str, kind: &str) -> String {
    let known = KINDS.contains(&kind);
    if let Some(version) = api_version.strip_prefix("metallb.io/") {
        return if known {
            format!("apiVersion metallb.io/{version} is MetalLB's: change it to {API_VERSION}")
        } else {
            format!("MetalLB's {kind} (apiVersion metallb.io/{version}) has no ironlb equivalent")
        };
    }
    if api_version
        .strip_prefix(GROUP)
        .is_some_and(|r| r.starts_with('/'))
    {
        return if known {
            format!("apiVersion {api_version} is not supported: use {API_VERSION}")
        } else {
            format!(
                "unknown kind {kind:?} in {api_version}: expected one of {}",
                KINDS.join(", ")
            )
        };
    }
    format!(
        "unsupported apiVersion and kind {api_version} {kind}: expected {API_VERSION} {}, \
         or v1 Service or Namespace",
        KINDS.join(", ")
    )
}

fn push_sourced<T: DeserializeOwned>(
    doc: &RawDocument,
    origin: &Origin,
    into: &mut Vec<Sourced<T>>,
) -> Result<(), String> {
    let object = parse_as(doc)?;
    into.push(Sourced {
        origin: origin.clone(),
        object,
    });
    Ok(())
}

#[cfg(test)]
mod tests;
