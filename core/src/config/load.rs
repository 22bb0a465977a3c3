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
    let Loaded {
        documents,
        mut errors,
    } = Documents::load(path);
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
        let error = |kind: &str, name: &str, path: &str, message: String| {
            ConfigError::new(Some(origin.clone()), kind, name, path, message)
        };
        let value: serde_yaml::Value = match parse_as(&doc) {
            Ok(v) => v,
            Err(e) => {
                loaded
                    .errors
                    .push(error("", "", "", format!("invalid YAML: {e}")));
                continue;
            }
        };
        let map = match &value {
            serde_yaml::Value::Null => continue,
            serde_yaml::Value::Mapping(map) => map,
            _ => {
                loaded.errors.push(error(
                    "",
                    "",
                    "",
                    "a document must be a mapping with apiVersion, kind, metadata and spec"
                        .to_owned(),
                ));
                continue;
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
                continue;
            }
            (Some(_), None) => {
                let message = "is required (a string)".to_owned();
                loaded.errors.push(error("", name, "kind", message));
                continue;
            }
        };
        let docs = &mut loaded.documents;
        let result = match (api_version, kind) {
            (API_VERSION, IPAddressPoolSpec::KIND) => {
                push_sourced(&doc, &origin, &mut docs.ip_address_pools)
            }
            (API_VERSION, L2AdvertisementSpec::KIND) => {
                push_sourced(&doc, &origin, &mut docs.l2_advertisements)
            }
            (API_VERSION, BGPAdvertisementSpec::KIND) => {
                push_sourced(&doc, &origin, &mut docs.bgp_advertisements)
            }
            (API_VERSION, BGPPeerSpec::KIND) => push_sourced(&doc, &origin, &mut docs.bgp_peers),
            (API_VERSION, CommunitySpec::KIND) => {
                push_sourced(&doc, &origin, &mut docs.communities)
            }
            (API_VERSION, BFDProfileSpec::KIND) => {
                push_sourced(&doc, &origin, &mut docs.bfd_profiles)
            }
            ("v1", "Service") => push_sourced(&doc, &origin, &mut docs.services),
            ("v1", "Namespace") => push_sourced(&doc, &origin, &mut docs.namespaces),
            (_, _) => Err(unsupported(api_version, kind)),
        };
        if let Err(message) = result {
            loaded.errors.push(error(kind, name, "", message));
        }
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
mod tests {
    use super::*;

    const POOL: &str = "apiVersion: ironlb.io/v1beta1\nkind: IPAddressPool\n\
                        metadata: {name: NAME}\nspec: {addresses: [192.0.2.0/24]}\n";

    fn pool(name: &str) -> String {
        POOL.replace("NAME", name)
    }

    fn messages(errors: &[ConfigError]) -> Vec<String> {
        errors.iter().map(|e| e.to_string()).collect()
    }

    #[test]
    fn splits_streams_as_yaml_does() {
        let texts = |t: &str| -> Vec<(usize, String)> {
            split_documents(t)
                .into_iter()
                .map(|d| (d.first_line, d.text))
                .collect()
        };
        assert_eq!(texts(""), []);
        assert_eq!(texts("# only a comment\n"), []);
        assert_eq!(texts("a: 1\n"), [(0, "a: 1\n".to_owned())]);
        assert_eq!(
            texts("a: 1\n---\nb: 2\n"),
            [(0, "a: 1\n".to_owned()), (1, "   \nb: 2\n".to_owned())]
        );
        // serde_yaml numbers these four documents the same way.
        assert_eq!(texts("---\n---\na: 1\n...\n---\nb: 2\n---\n").len(), 4);
        assert_eq!(
            texts("--- {a: 1}\r\n--- # c\r\nb: |\n  ---x\n"),
            [
                (0, "    {a: 1}\r\n".to_owned()),
                (1, "    # c\r\nb: |\n  ---x\n".to_owned())
            ]
        );
        assert_eq!(
            texts("%YAML 1.2\n---\na: 1\n"),
            [(1, "   \na: 1\n".to_owned())]
        );
        assert_eq!(texts("\u{feff}a: 1"), [(0, "a: 1".to_owned())]);
        // Not markers: longer dashes, or dashes not alone.
        assert_eq!(texts("----\n---a\n").len(), 1);
    }

    #[test]
    fn loads_every_document_of_a_file() {
        let text = format!(
            "{}---\n# nothing here\n---\n{}---\n\
             apiVersion: ironlb.io/v1beta1\nkind: L2Advertisement\nmetadata: {{name: l2}}\n\
             ---\napiVersion: ironlb.io/v1beta1\nkind: BGPPeer\nmetadata: {{name: r1}}\n\
             spec: {{myASN: 64500, peerASN: 64501, peerAddress: 192.0.2.1}}\n\
             ---\napiVersion: ironlb.io/v1beta1\nkind: BGPAdvertisement\nmetadata: {{name: b}}\n\
             ---\napiVersion: ironlb.io/v1beta1\nkind: Community\nmetadata: {{name: c}}\n\
             spec: {{communities: [{{name: gold, value: '64500:1'}}]}}\n\
             ---\napiVersion: ironlb.io/v1beta1\nkind: BFDProfile\nmetadata: {{name: fast}}\n\
             spec: {{receiveInterval: 100}}\n",
            pool("a"),
            pool("b")
        );
        let loaded = Documents::from_str(&text, "all.yaml");
        assert_eq!(messages(&loaded.errors), Vec::<String>::new());
        let docs = loaded.documents;
        let pools: Vec<_> = docs
            .ip_address_pools
            .iter()
            .map(|p| (p.object.metadata.name.clone().unwrap(), p.origin.document))
            .collect();
        assert_eq!(pools, [("a".to_owned(), 1), ("b".to_owned(), 3)]);
        assert_eq!(docs.l2_advertisements[0].origin, Origin::new("all.yaml", 4));
        assert_eq!(docs.bgp_peers[0].object.spec.my_asn, Some(64500));
        assert_eq!(docs.bgp_advertisements.len(), 1);
        assert_eq!(docs.communities[0].object.spec.communities[0].name, "gold");
        assert_eq!(docs.bfd_profiles[0].object.spec.receive_interval, Some(100));
        assert_eq!(docs.bfd_profiles[0].origin.document, 8);
    }

    #[test]
    fn a_bad_document_does_not_hide_the_others() {
        let text = format!(
            "{}---\nkind: [unclosed\n---\n{}---\n\
             apiVersion: ironlb.io/v1beta1\nkind: IPAddressPool\nmetadata: {{name: c}}\n\
             spec:\n  addresses: 192.0.2.0/24\n---\n{}",
            pool("a"),
            pool("b"),
            pool("d")
        );
        let loaded = Documents::from_str(&text, "pools.yaml");
        let names: Vec<_> = loaded
            .documents
            .ip_address_pools
            .iter()
            .map(|p| p.object.metadata.name.clone().unwrap())
            .collect();
        assert_eq!(names, ["a", "b", "d"]);
        assert_eq!(
            messages(&loaded.errors),
            [
                "pools.yaml (document 2): invalid YAML: did not find expected ',' or ']' \
                 at line 7 column 1, while parsing a flow sequence at line 6 column 7",
                "pools.yaml (document 4): IPAddressPool/c: spec.addresses: invalid type: \
                 string \"192.0.2.0/24\", expected a sequence at line 17 column 14",
            ]
        );
    }

    #[test]
    fn type_mismatches_name_the_field() {
        let text = "apiVersion: ironlb.io/v1beta1\nkind: BGPPeer\nmetadata:\n  name: r1\n\
                    spec:\n  myASN: [1]\n";
        let loaded = Documents::from_str(text, "peers.yaml");
        assert_eq!(
            messages(&loaded.errors),
            [
                "peers.yaml (document 1): BGPPeer/r1: spec.myASN: invalid type: sequence, \
              expected i64 at line 6 column 10"
            ]
        );
        assert!(loaded.documents.is_empty());
    }

    #[test]
    fn unknown_kinds_and_metallb_documents_are_refused() {
        let text = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\n---\n\
                    apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: p}\n\
                    spec: {addresses: [192.0.2.0/24]}\n---\n\
                    apiVersion: metallb.io/v1beta2\nkind: BGPPeer\nmetadata: {name: r}\n---\n\
                    apiVersion: metallb.io/v1beta1\nkind: ServiceL2Status\nmetadata: {name: s}\n\
                    ---\napiVersion: ironlb.io/v1beta1\nkind: AddressPool\nmetadata: {name: x}\n\
                    ---\napiVersion: ironlb.io/v1\nkind: IPAddressPool\nmetadata: {name: y}\n\
                    ---\nkind: IPAddressPool\nmetadata: {name: z}\n---\napiVersion: v1\n\
                    ---\n- a list\n";
        let loaded = Documents::from_str(text, "mixed.yaml");
        assert!(loaded.documents.is_empty());
        assert_eq!(
            messages(&loaded.errors),
            [
                "mixed.yaml (document 1): Deployment/web: unsupported apiVersion and kind \
                 apps/v1 Deployment: expected ironlb.io/v1beta1 IPAddressPool, L2Advertisement, \
                 BGPAdvertisement, BGPPeer, Community, BFDProfile, or v1 Service or Namespace",
                "mixed.yaml (document 2): IPAddressPool/p: apiVersion metallb.io/v1beta1 is \
                 MetalLB's: change it to ironlb.io/v1beta1",
                "mixed.yaml (document 3): BGPPeer/r: apiVersion metallb.io/v1beta2 is \
                 MetalLB's: change it to ironlb.io/v1beta1",
                "mixed.yaml (document 4): ServiceL2Status/s: MetalLB's ServiceL2Status \
                 (apiVersion metallb.io/v1beta1) has no ironlb equivalent",
                "mixed.yaml (document 5): AddressPool/x: unknown kind \"AddressPool\" in \
                 ironlb.io/v1beta1: expected one of IPAddressPool, L2Advertisement, \
                 BGPAdvertisement, BGPPeer, Community, BFDProfile",
                "mixed.yaml (document 6): IPAddressPool/y: apiVersion ironlb.io/v1 is not \
                 supported: use ironlb.io/v1beta1",
                "mixed.yaml (document 7): IPAddressPool/z: apiVersion: is required (a string)",
                "mixed.yaml (document 8): kind: is required (a string)",
                "mixed.yaml (document 9): a document must be a mapping with apiVersion, kind, \
                 metadata and spec",
            ]
        );
    }

    #[test]
    fn services_and_namespaces_are_loaded() {
        let text = "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: shop}\n\
                    spec:\n  type: LoadBalancer\n  ports: [{port: 80, protocol: TCP}]\n---\n\
                    apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n  labels: \
                    {team: web}\n---\napiVersion: v1\nkind: Service\nmetadata: {name: bad}\n\
                    spec: {ports: [{port: x}]}\n";
        let loaded = Documents::from_str(text, "svc.yaml");
        let docs = &loaded.documents;
        assert_eq!(docs.services.len(), 1);
        let svc = &docs.services[0].object;
        assert_eq!(svc.metadata.namespace.as_deref(), Some("shop"));
        let spec = svc.spec.as_ref().unwrap();
        assert_eq!(spec.type_.as_deref(), Some("LoadBalancer"));
        assert_eq!(spec.ports.as_ref().unwrap()[0].port, 80);
        assert_eq!(docs.namespaces.len(), 1);
        let labels = docs.namespaces[0].object.metadata.labels.as_ref().unwrap();
        assert_eq!(labels["team"], "web");
        assert_eq!(docs.namespaces[0].origin.document, 2);
        assert_eq!(loaded.errors.len(), 1);
        let message = loaded.errors[0].to_string();
        assert!(
            message.starts_with("svc.yaml (document 3): Service/bad: spec.ports[0].port: "),
            "{message}"
        );
    }

    #[test]
    fn directories_load_in_file_name_order() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| fs::write(dir.path().join(name), text).unwrap();
        write("20-b.yaml", &pool("b"));
        write("10-a.yml", &format!("{}---\n{}", pool("a1"), pool("a2")));
        write(
            "30-c.json",
            &serde_json::to_string(&serde_yaml::from_str::<serde_json::Value>(&pool("c")).unwrap())
                .unwrap(),
        );
        write("40-ignored.txt", &pool("x"));
        write(".hidden.yaml", &pool("y"));
        fs::create_dir(dir.path().join("50-sub.yaml")).unwrap();
        fs::write(dir.path().join("50-sub.yaml").join("p.yaml"), pool("z")).unwrap();
        write("60-broken.yaml", "apiVersion: [\n");
        let loaded = Documents::load(dir.path());
        let got: Vec<_> = loaded
            .documents
            .ip_address_pools
            .iter()
            .map(|p| {
                let file = Path::new(&p.origin.file).file_name().unwrap().to_owned();
                (
                    p.object.metadata.name.clone().unwrap(),
                    file.to_string_lossy().into_owned(),
                    p.origin.document,
                )
            })
            .collect();
        let want = [
            ("a1", "10-a.yml", 1),
            ("a2", "10-a.yml", 2),
            ("b", "20-b.yaml", 1),
            ("c", "30-c.json", 1),
        ];
        let want: Vec<_> = want
            .iter()
            .map(|(n, f, d)| (n.to_string(), f.to_string(), *d))
            .collect();
        assert_eq!(got, want);
        assert_eq!(loaded.errors.len(), 1);
        let broken = dir.path().join("60-broken.yaml");
        assert!(loaded.errors[0].to_string().starts_with(&format!(
            "{} (document 1): invalid YAML: ",
            broken.display()
        )));
    }

    #[test]
    fn missing_paths_and_non_utf8_files_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.yaml");
        let loaded = Documents::load(&missing);
        assert_eq!(loaded.errors.len(), 1);
        assert!(loaded.errors[0]
            .to_string()
            .starts_with(&format!("cannot read {}: ", missing.display())));
        let latin1 = dir.path().join("latin1.yaml");
        fs::write(&latin1, b"name: caf\xe9\n").unwrap();
        let loaded = Documents::load(&latin1);
        assert_eq!(
            messages(&loaded.errors),
            [format!(
                "cannot read {}: the file is not UTF-8 text",
                latin1.display()
            )]
        );
        let empty = tempfile::tempdir().unwrap();
        assert_eq!(
            Documents::load(empty.path()).into_result(),
            Ok(Documents::default())
        );
    }

    #[test]
    fn load_config_reports_load_and_validation_errors_together() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config.yaml");
        let text = format!(
            "{}---\napiVersion: ironlb.io/v1beta1\nkind: IPAddressPool\nmetadata: {{name: b}}\n\
             spec: {{addresses: [192.0.2.128/25]}}\n---\nspec: [\n",
            pool("a")
        );
        fs::write(&file, text).unwrap();
        let errors = load_config(&file).unwrap_err();
        let file = file.display();
        assert_eq!(
            errors.to_string(),
            format!(
                "{file} (document 2): IPAddressPool/b: spec.addresses[0]: \"192.0.2.128/25\" \
                 overlaps \"192.0.2.0/24\" of pool a (spec.addresses[0])\n\
                 {file} (document 3): invalid YAML: did not find expected node content at line \
                 12 column 1, while parsing a flow node"
            )
        );
        fs::write(dir.path().join("config.yaml"), pool("a")).unwrap();
        let (docs, config) = load_config(dir.path()).unwrap();
        assert_eq!(docs.ip_address_pools.len(), 1);
        assert_eq!(config.pools.len(), 1);
    }

    #[test]
    fn the_standalone_example_loads_and_validates() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/standalone");
        let (docs, config) = match load_config(&dir) {
            Ok(loaded) => loaded,
            Err(errors) => panic!("{errors}"),
        };
        assert!(!docs.services.is_empty() && !docs.namespaces.is_empty());
        assert_eq!(config.pools.len(), 3);
        assert_eq!(config.bgp_advertisements[0].communities.len(), 2);
    }
}
