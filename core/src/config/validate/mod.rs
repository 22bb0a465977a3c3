//! Checks a whole set of configuration documents and builds the [`Config`] model from it,
//! reporting every problem found rather than the first.
//!
//! The rules are MetalLB's (see the kinds' documentation), made stricter where MetalLB silently
//! ignores a mistake: references to pools, peers and BFD profiles must exist, and options that
//! ironlb's speaker does not implement are refused rather than ignored.
//!
//! This module holds the walk over every kind ([`Validator`]'s `run`) and what all kinds share
//! (names, labels, numbers, references); each kind's checks live in a module of its own.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::Duration;

use super::error::{ConfigError, ConfigErrors, FieldPath, Origin};
use super::go_duration::{format_go_duration, parse_go_duration};
use super::kinds::{
    BFDProfileSpec, BGPAdvertisementSpec, BGPPeerSpec, CommunitySpec, IPAddressPoolSpec,
    L2AdvertisementSpec, LabelSelector, Object, SecretReferenceSpec, ServiceAllocationSpec, Spec,
};
use super::load::{Documents, Sourced};
use super::model::{
    BfdProfile, BgpAdvertisement, Community, Config, InterfaceName, L2Advertisement, Password,
    Peer, PeerAsn, PeerBfd, PeerTransport, Pool, PoolSelection, SecretRef,
};
use crate::ipam::{AddrRange, Family, PoolSpec, ServiceAllocation};
use crate::labels::{Labels, Selector, SelectorError};
use crate::names::{NameError, Namespace, PeerName, PoolName};

mod bfd;
mod bgp_advertisements;
mod communities;
mod l2;
mod peers;
mod pools;
mod selectors;
#[cfg(test)]
mod tests;

/// The kind string of core/v1 Namespace documents in errors.
const NAMESPACE_KIND: &str = "Namespace";
/// Linux's TCP_MD5SIG_MAXKEYLEN: the longest TCP MD5 key the kernel takes.
const TCP_MD5SIG_MAXKEYLEN: usize = 80;
/// The shortest non-zero BGP hold time (RFC 4271, 4.2).
const MIN_HOLD_TIME: Duration = Duration::from_secs(3);
/// The longest BGP hold time: the OPEN message carries it in 16 bits of seconds.
const MAX_HOLD_TIME: Duration = Duration::from_secs(65535);

/// Checks every document and builds the configuration, or returns every problem found, in
/// document order.
pub fn validate(docs: &Documents) -> Result<Config, ConfigErrors> {
    let mut v = Validator::default();
    let config = v.run(docs);
    if v.errors.is_empty() {
        Ok(config)
    } else {
        // Stable: errors of one document stay in the order they were found.
        v.errors.sort_by(|a, b| a.origin.cmp(&b.origin));
        Err(ConfigErrors(v.errors))
    }
}

/// The object being checked, for error messages.
#[derive(Clone, Copy)]
struct Ctx<'a> {
    origin: &'a Origin,
    kind: &'a str,
    name: &'a str,
}

impl<'a> Ctx<'a> {
    fn of<S: Spec>(object: &'a Sourced<Object<S>>) -> Self {
        Self {
            origin: &object.origin,
            kind: S::KIND,
            name: object.object.metadata.name.as_deref().unwrap_or(""),
        }
    }
}

/// The objects of one kind whose names are usable.
struct Names<'a> {
    /// For each object, in order: whether it owns its name (valid, and the first to use it).
    owns: Vec<bool>,
    /// Every valid name in use: what references may point at.
    all: BTreeSet<&'a str>,
}

/// An address entry of a pool that parsed.
struct Entry<'a> {
    /// The pool document's position in [`Documents::ip_address_pools`].
    doc: usize,
    /// The entry's position in `spec.addresses`.
    index: usize,
    /// The entry as written.
    text: &'a str,
    range: AddrRange,
}

/// The labels and the address entries that parsed of each pool that owns its name.
type PoolEntries<'a> = BTreeMap<PoolName, (&'a Labels, Vec<Entry<'a>>)>;

#[derive(Default)]
struct Validator {
    errors: Vec<ConfigError>,
}

impl Validator {
    fn error(&mut self, ctx: Ctx<'_>, path: impl Into<String>, message: impl Into<String>) {
        self.errors.push(ConfigError::new(
            Some(ctx.origin.clone()),
            ctx.kind,
            ctx.name,
            path,
            message,
        ));
    }

    fn run(&mut self, docs: &Documents) -> Config {
        let pool_names = self.names(&docs.ip_address_pools);
        let l2_names = self.names(&docs.l2_advertisements);
        let bgp_names = self.names(&docs.bgp_advertisements);
        let peer_names = self.names(&docs.bgp_peers);
        let community_names = self.names(&docs.communities);
        let bfd_names = self.names(&docs.bfd_profiles);

        let bfd_profiles = self.bfd_profiles(&docs.bfd_profiles, &bfd_names);
        let communities = self.communities(&docs.communities, &community_names);
        let (pools, entries) = self.pools(&docs.ip_address_pools, &pool_names);
        let peers = self.peers(&docs.bgp_peers, &peer_names, &bfd_names);
        let l2_advertisements =
            self.l2_advertisements(&docs.l2_advertisements, &l2_names, &pool_names);
        let bgp_advertisements = self.bgp_advertisements(
            &docs.bgp_advertisements,
            &bgp_names,
            &pool_names,
            &peer_names,
            &entries,
            &communities,
        );
        let namespaces = self.namespaces(docs);
        Config {
            pools,
            l2_advertisements,
            bgp_advertisements,
            peers,
            communities: communities
                .into_iter()
                .filter_map(|(name, c)| Some((name.to_owned(), c?)))
                .collect(),
            bfd_profiles,
            namespaces,
        }
    }

    /// Checks the names and labels of the objects of one kind.
    fn names<'a, S: Spec>(&mut self, objects: &'a [Sourced<Object<S>>]) -> Names<'a> {
        let mut first: BTreeMap<&str, &Origin> = BTreeMap::new();
        let mut owns = Vec::with_capacity(objects.len());
        for object in objects {
            let ctx = Ctx::of(object);
            let meta = &object.object.metadata;
            self.labels(ctx, &meta.labels);
            owns.push(self.claim_name(ctx, meta.name.as_deref(), &object.origin, &mut first));
        }
        Names {
            owns,
            all: first.into_keys().collect(),
        }
    }

    /// Checks one object's name; true if it is valid and no earlier object has it.
    fn claim_name<'a>(
        &mut self,
        ctx: Ctx<'_>,
        name: Option<&'a str>,
        origin: &'a Origin,
        first: &mut BTreeMap<&'a str, &'a Origin>,
    ) -> bool {
        let Some(name) = name else {
            self.error(ctx, "metadata.name", "is required");
            return false;
        };
        if let Err(e) = check_object_name(name) {
            self.error(ctx, "metadata.name", e.to_string());
            return false;
        }
        if let Some(earlier) = first.get(name) {
            let message = format!("duplicate name, first used in {earlier}");
            self.error(ctx, "metadata.name", message);
            return false;
        }
        first.insert(name, origin);
        true
    }

    /// Checks the syntax of an object's labels.
    fn labels(&mut self, ctx: Ctx<'_>, labels: &Labels) {
        let path = FieldPath::root("metadata").field("labels");
        for (key, value) in labels {
            if let Err(e) = check_label_key(key) {
                self.error(ctx, path.key(key), e);
            } else if let Err(e) = check_label_value(value) {
                self.error(ctx, path.key(key), e);
            }
        }
    }

    /// Checks an optional number of `spec.<field>` against `min..=max`. `None` if it is out of
    /// range (reported), else the value if given, converted to `T` (which holds `min..=max`).
    fn in_range<T: TryFrom<i64>>(
        &mut self,
        ctx: Ctx<'_>,
        field: &str,
        value: Option<i64>,
        min: i64,
        max: i64,
        unit: &str,
    ) -> Option<Option<T>> {
        let Some(value) = value else {
            return Some(None);
        };
        match T::try_from(value) {
            Ok(t) if (min..=max).contains(&value) => Some(Some(t)),
            _ => {
                let path = FieldPath::root("spec").field(field);
                let message = format!("{value}: must be between {min} and {max}{unit}");
                self.error(ctx, path, message);
                None
            }
        }
    }

    /// Checks a list of pool names that must exist; `None` if any is wrong.
    fn pool_refs(
        &mut self,
        ctx: Ctx<'_>,
        list: &[String],
        existing: &BTreeSet<&str>,
    ) -> Option<BTreeSet<PoolName>> {
        let path = FieldPath::root("spec").field("ipAddressPools");
        self.refs(
            ctx,
            list,
            &path,
            existing,
            IPAddressPoolSpec::KIND,
            PoolName::new,
        )
    }

    /// Checks a list of names of objects that must exist (`kind` objects named in `existing`).
    fn refs<N: Ord>(
        &mut self,
        ctx: Ctx<'_>,
        list: &[String],
        path: &FieldPath,
        existing: &BTreeSet<&str>,
        kind: &str,
        parse: impl Fn(String) -> Result<N, NameError>,
    ) -> Option<BTreeSet<N>> {
        let mut out = BTreeSet::new();
        let mut first = BTreeMap::new();
        let mut ok = true;
        for (i, name) in list.iter().enumerate() {
            if let Some(f) = first.get(name.as_str()) {
                let message = format!("{name:?}: duplicate of {}", path.index(*f));
                self.error(ctx, path.index(i), message);
                ok = false;
                continue;
            }
            first.insert(name.as_str(), i);
            match parse(name.clone()) {
                Err(e) => {
                    self.error(ctx, path.index(i), e.to_string());
                    ok = false;
                }
                Ok(_) if !existing.contains(name.as_str()) => {
                    self.error(
                        ctx,
                        path.index(i),
                        format!("{name:?}: no {kind} has this name"),
                    );
                    ok = false;
                }
                Ok(n) => {
                    out.insert(n);
                }
            }
        }
        ok.then_some(out)
    }

    /// Parses `spec.<field>` as an address.
    fn ip(&mut self, ctx: Ctx<'_>, field: &str, text: &str) -> Option<IpAddr> {
        match text.parse() {
            Ok(addr) => Some(addr),
            Err(_) => {
                let path = FieldPath::root("spec").field(field);
                self.error(ctx, path, format!("{text:?}: not an IP address"));
                None
            }
        }
    }

    /// Parses `spec.<field>` as a Go duration.
    fn duration(&mut self, ctx: Ctx<'_>, field: &str, text: &str) -> Option<Duration> {
        match parse_go_duration(text) {
            Ok(d) => Some(d),
            Err(e) => {
                self.error(ctx, FieldPath::root("spec").field(field), e.to_string());
                None
            }
        }
    }

    /// Collects the labels of the Namespace documents.
    fn namespaces(&mut self, docs: &Documents) -> BTreeMap<Namespace, Labels> {
        let mut out = BTreeMap::new();
        let mut first: BTreeMap<&str, &Origin> = BTreeMap::new();
        for sourced in &docs.namespaces {
            let meta = &sourced.object.metadata;
            let ctx = Ctx {
                origin: &sourced.origin,
                kind: NAMESPACE_KIND,
                name: meta.name.as_deref().unwrap_or(""),
            };
            let labels = meta.labels.clone().unwrap_or_default();
            self.labels(ctx, &labels);
            let name = meta.name.as_deref();
            if self.claim_name(ctx, name, &sourced.origin, &mut first) {
                match Namespace::new(ctx.name) {
                    Ok(ns) => {
                        out.insert(ns, labels);
                    }
                    Err(e) => self.error(ctx, "metadata.name", e.to_string()),
                }
            }
        }
        out
    }
}

/// Checks a metadata.name (an RFC 1123 subdomain, whatever the kind).
fn check_object_name(name: &str) -> Result<(), NameError> {
    // Every object name follows the subdomain rule that PoolName enforces.
    PoolName::new(name).map(|_| ())
}

/// The `matchLabels` of a selector as `Selector::new` takes them.
fn labels_of(selector: &LabelSelector) -> impl Iterator<Item = (&str, &str)> {
    selector
        .match_labels
        .iter()
        .flatten()
        .map(|(k, v)| (k.as_str(), v.as_str()))
}

/// The `matchExpressions` of a selector as `Selector::new` takes them.
fn expressions_of(selector: &LabelSelector) -> impl Iterator<Item = (&str, &str, Vec<String>)> {
    selector.match_expressions.iter().flatten().map(|e| {
        (
            e.key.as_str(),
            e.operator.as_str(),
            e.values.clone().unwrap_or_default(),
        )
    })
}

/// Whether a string is a label name or value: at most 63 letters, digits, `-`, `_` and `.`,
/// starting and ending with a letter or digit.
fn is_label_name(s: &str) -> bool {
    let alnum = |c: char| c.is_ascii_alphanumeric();
    s.len() <= 63
        && s.chars().all(|c| alnum(c) || matches!(c, '-' | '_' | '.'))
        && s.starts_with(alnum)
        && s.ends_with(alnum)
}

/// Checks a label key: an optional DNS subdomain prefix and `/`, then a label name.
fn check_label_key(key: &str) -> Result<(), String> {
    if key.is_empty() {
        return Err("label key must not be empty".to_owned());
    }
    let (prefix, name) = match key.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    let prefix_ok = prefix.is_none_or(|p| check_object_name(p).is_ok());
    if !prefix_ok || name.is_empty() || !is_label_name(name) {
        return Err(format!(
            "{key:?} is not a valid label key: expected an optional DNS subdomain prefix and \
             '/', then at most 63 letters, digits, '-', '_' or '.', starting and ending with a \
             letter or digit"
        ));
    }
    Ok(())
}

/// Checks a label value: empty, or a label name.
fn check_label_value(value: &str) -> Result<(), String> {
    if value.is_empty() || is_label_name(value) {
        return Ok(());
    }
    Err(format!(
        "{value:?} is not a valid label value: expected at most 63 letters, digits, '-', '_' \
         or '.', starting and ending with a letter or digit"
    ))
}
