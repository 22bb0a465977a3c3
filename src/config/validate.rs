//! Checks a whole set of configuration documents and builds the [`Config`] model from it,
//! reporting every problem found rather than the first.
//!
//! The rules are MetalLB's (see the kinds' documentation), made stricter where MetalLB silently
//! ignores a mistake: references to pools, peers and BFD profiles must exist, and options that
//! ironlb's speaker does not implement are refused rather than ignored.

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
    Peer, PeerAsn, Pool, PoolSelection, SecretRef,
};
use crate::ipam::{AddrRange, Family, PoolSpec, ServiceAllocation};
use crate::labels::{Labels, Selector, SelectorError};
use crate::names::{NameError, Namespace, PeerName, PoolName};

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

    fn bfd_profiles(
        &mut self,
        objects: &[Sourced<Object<BFDProfileSpec>>],
        names: &Names<'_>,
    ) -> BTreeMap<String, BfdProfile> {
        let mut profiles = BTreeMap::new();
        for (object, owns) in objects.iter().zip(&names.owns) {
            let ctx = Ctx::of(object);
            let spec = &object.object.spec;
            let defaults = BfdProfile::default();
            let mut ok = true;
            let mut interval = |v: &mut Self, field: &str, value: Option<i64>, default| {
                let ms = v.in_range(ctx, field, value, 10, 60000, " (milliseconds)");
                ok &= ms.is_some();
                ms.flatten().map_or(default, Duration::from_millis)
            };
            let receive_interval = interval(
                self,
                "receiveInterval",
                spec.receive_interval,
                defaults.receive_interval,
            );
            let transmit_interval = interval(
                self,
                "transmitInterval",
                spec.transmit_interval,
                defaults.transmit_interval,
            );
            let echo_interval = interval(
                self,
                "echoInterval",
                spec.echo_interval,
                defaults.echo_interval,
            );
            let detect_multiplier =
                self.in_range(ctx, "detectMultiplier", spec.detect_multiplier, 2, 255, "");
            let minimum_ttl = self.in_range(ctx, "minimumTtl", spec.minimum_ttl, 1, 254, "");
            let (Some(detect_multiplier), Some(minimum_ttl)) = (detect_multiplier, minimum_ttl)
            else {
                continue;
            };
            if !ok || !owns {
                continue;
            }
            let profile = BfdProfile {
                receive_interval,
                transmit_interval,
                echo_interval,
                detect_multiplier: detect_multiplier.unwrap_or(defaults.detect_multiplier),
                minimum_ttl: minimum_ttl.unwrap_or(defaults.minimum_ttl),
                echo_mode: spec.echo_mode.unwrap_or(defaults.echo_mode),
                passive_mode: spec.passive_mode.unwrap_or(defaults.passive_mode),
            };
            profiles.insert(ctx.name.to_owned(), profile);
        }
        profiles
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

    /// Checks the Community objects; gives every alias defined, with its value if valid.
    fn communities<'a>(
        &mut self,
        objects: &'a [Sourced<Object<CommunitySpec>>],
        names: &Names<'_>,
    ) -> BTreeMap<&'a str, Option<Community>> {
        let mut aliases = BTreeMap::new();
        // Alias name -> (object index, entry index) of its first definition.
        let mut first: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
        for (o, (object, owns)) in objects.iter().zip(&names.owns).enumerate() {
            let ctx = Ctx::of(object);
            let repeated = !owns && names.all.contains(ctx.name);
            let list = FieldPath::root("spec").field("communities");
            for (i, alias) in object.object.spec.communities.iter().enumerate() {
                let path = list.index(i);
                let value = if alias.value.is_empty() {
                    self.error(ctx, path.field("value"), "is required");
                    None
                } else {
                    match alias.value.parse::<Community>() {
                        Ok(c) => Some(c),
                        Err(e) => {
                            self.error(ctx, path.field("value"), e.to_string());
                            None
                        }
                    }
                };
                let name = alias.name.as_str();
                if name.is_empty() {
                    self.error(ctx, path.field("name"), "must not be empty");
                    continue;
                }
                match first.get(name) {
                    // An object that repeats another's name is reported as such; reporting
                    // its aliases as repeats too would only say that again.
                    Some(_) if repeated => {}
                    Some(&(fo, fi)) if fo == o => {
                        let message = format!("{name:?}: duplicate of {}", list.index(fi));
                        self.error(ctx, path.field("name"), message);
                    }
                    Some(&(fo, fi)) => {
                        let other = Ctx::of(&objects[fo]);
                        let message = format!(
                            "{name:?}: already defined by {}/{} ({}.name)",
                            other.kind,
                            other.name,
                            list.index(fi)
                        );
                        self.error(ctx, path.field("name"), message);
                    }
                    None => {
                        first.insert(name, (o, i));
                        aliases.insert(name, value);
                    }
                }
            }
        }
        aliases
    }

    /// Checks the pools; gives the valid pools and every address entry that parsed, by pool.
    fn pools<'a>(
        &mut self,
        objects: &'a [Sourced<Object<IPAddressPoolSpec>>],
        names: &Names<'_>,
    ) -> (BTreeMap<PoolName, Pool>, PoolEntries<'a>) {
        let mut pools = BTreeMap::new();
        let mut by_pool = BTreeMap::new();
        let mut all_entries = Vec::new();
        // The pool name each document owns, if any.
        let mut doc_names = Vec::with_capacity(objects.len());
        for (d, (object, &owns)) in objects.iter().zip(&names.owns).enumerate() {
            let ctx = Ctx::of(object);
            let spec = &object.object.spec;
            let list = FieldPath::root("spec").field("addresses");
            let mut ok = true;
            if spec.addresses.is_empty() {
                self.error(ctx, list.clone(), "must list at least one address range");
                ok = false;
            }
            let mut entries = Vec::new();
            for (i, text) in spec.addresses.iter().enumerate() {
                match AddrRange::parse(text) {
                    Ok(range) => entries.push(Entry {
                        doc: d,
                        index: i,
                        text,
                        range,
                    }),
                    Err(e) => {
                        self.error(ctx, list.index(i), format!("{text:?}: {e}"));
                        ok = false;
                    }
                }
            }
            let service_allocation = match &spec.service_allocation {
                None => Some(None),
                Some(sa) => self.service_allocation(ctx, sa).map(Some),
            };
            let ranges: Vec<AddrRange> = entries.iter().map(|e| e.range).collect();
            // A pool whose name another pool already has takes no part in checks across
            // pools: its repetition is reported already.
            let repeated = !owns && names.all.contains(ctx.name);
            let name = owns.then(|| PoolName::new(ctx.name).ok()).flatten();
            if let Some(name) = &name {
                let labels = &object.object.metadata.labels;
                by_pool.insert(name.clone(), (labels, Vec::new()));
            }
            doc_names.push(name.clone());
            for entry in entries {
                all_entries.push((entry, repeated));
            }
            if let (true, Some(name), Some(service_allocation)) = (ok, name, service_allocation) {
                let spec = PoolSpec {
                    name: name.clone(),
                    ranges,
                    auto_assign: spec.auto_assign.unwrap_or(true),
                    avoid_buggy_ips: spec.avoid_buggy_ips,
                    service_allocation,
                };
                let labels = object.object.metadata.labels.clone();
                pools.insert(name, Pool { spec, labels });
            }
        }
        self.overlaps(objects, &all_entries);
        for (entry, _) in all_entries {
            let pool = doc_names[entry.doc].as_ref();
            if let Some((_, entries)) = pool.and_then(|name| by_pool.get_mut(name)) {
                entries.push(entry);
            }
        }
        (pools, by_pool)
    }

    /// Reports every pair of overlapping address entries, within a pool or across pools, on the
    /// later of the two.
    fn overlaps(
        &mut self,
        objects: &[Sourced<Object<IPAddressPoolSpec>>],
        entries: &[(Entry<'_>, bool)],
    ) {
        let mut order: Vec<usize> = (0..entries.len()).collect();
        // IpAddr orders every IPv4 address before every IPv6 one, so a sweep in start order
        // only ever compares ranges of one family.
        order.sort_by_key(|&i| (entries[i].0.range.start(), entries[i].0.range.end()));
        let mut pairs = Vec::new();
        for (n, &i) in order.iter().enumerate() {
            let a = &entries[i].0;
            for &j in &order[n + 1..] {
                let b = &entries[j].0;
                if b.range.start() > a.range.end() {
                    break;
                }
                if a.range.overlaps(&b.range) {
                    let (earlier, later) = if (a.doc, a.index) < (b.doc, b.index) {
                        (i, j)
                    } else {
                        (j, i)
                    };
                    pairs.push((earlier, later));
                }
            }
        }
        // Report in document order whatever the address order.
        pairs.sort_by_key(|&(e, l)| (entries[l].0.doc, entries[l].0.index, e));
        let list = FieldPath::root("spec").field("addresses");
        for (e, l) in pairs {
            let ((earlier, e_repeated), (later, l_repeated)) = (&entries[e], &entries[l]);
            let ctx = Ctx::of(&objects[later.doc]);
            let message = if earlier.doc == later.doc {
                format!(
                    "{:?} overlaps {:?} at {}",
                    later.text,
                    earlier.text,
                    list.index(earlier.index)
                )
            } else if *e_repeated || *l_repeated {
                continue;
            } else {
                let other = Ctx::of(&objects[earlier.doc]).name;
                format!(
                    "{:?} overlaps {:?} of pool {other} ({})",
                    later.text,
                    earlier.text,
                    list.index(earlier.index)
                )
            };
            self.error(ctx, list.index(later.index), message);
        }
    }

    fn service_allocation(
        &mut self,
        ctx: Ctx<'_>,
        spec: &ServiceAllocationSpec,
    ) -> Option<ServiceAllocation> {
        let path = FieldPath::root("spec").field("serviceAllocation");
        let mut ok = true;
        let priority = match spec.priority {
            None => 0,
            Some(p) => u32::try_from(p).unwrap_or_else(|_| {
                self.error(
                    ctx,
                    path.field("priority"),
                    format!("{p}: must not be negative"),
                );
                ok = false;
                0
            }),
        };
        let mut namespaces = BTreeSet::new();
        let mut first = BTreeMap::new();
        let list = path.field("namespaces");
        for (i, ns) in spec.namespaces.iter().enumerate() {
            match Namespace::new(ns.as_str()) {
                Err(e) => {
                    self.error(ctx, list.index(i), e.to_string());
                    ok = false;
                }
                Ok(namespace) => {
                    if let Some(f) = first.get(ns) {
                        let message = format!("{ns:?}: duplicate of {}", list.index(*f));
                        self.error(ctx, list.index(i), message);
                        ok = false;
                    } else {
                        first.insert(ns, i);
                        namespaces.insert(namespace);
                    }
                }
            }
        }
        let namespace_selectors = self.selectors(
            ctx,
            &spec.namespace_selectors,
            &path.field("namespaceSelectors"),
        );
        let service_selectors = self.selectors(
            ctx,
            &spec.service_selectors,
            &path.field("serviceSelectors"),
        );
        match (ok, namespace_selectors, service_selectors) {
            (true, Some(namespace_selectors), Some(service_selectors)) => Some(ServiceAllocation {
                priority,
                namespaces,
                namespace_selectors,
                service_selectors,
            }),
            _ => None,
        }
    }

    /// Parses a list of label selectors at `path`; `None` if any is wrong (all reported).
    fn selectors(
        &mut self,
        ctx: Ctx<'_>,
        list: &[LabelSelector],
        path: &FieldPath,
    ) -> Option<Vec<Selector>> {
        let mut out: Vec<Selector> = Vec::with_capacity(list.len());
        let mut ok = true;
        for (i, selector) in list.iter().enumerate() {
            let Some(parsed) = self.selector(ctx, selector, &path.index(i)) else {
                ok = false;
                continue;
            };
            // Two selectors that say the same thing (after sorting) are a copy-paste mistake.
            if let Some(f) = list[..i].iter().position(|s| {
                let earlier = Selector::new(labels_of(s), expressions_of(s));
                earlier.as_ref() == Ok(&parsed)
            }) {
                self.error(
                    ctx,
                    path.index(i),
                    format!("duplicate of {}", path.index(f)),
                );
                ok = false;
                continue;
            }
            out.push(parsed);
        }
        ok.then_some(out)
    }

    /// Parses one label selector at `path`; `None` if it is wrong (every problem reported).
    fn selector(
        &mut self,
        ctx: Ctx<'_>,
        selector: &LabelSelector,
        path: &FieldPath,
    ) -> Option<Selector> {
        let mut ok = true;
        if let Some(labels) = &selector.match_labels {
            let labels_path = path.field("matchLabels");
            for (key, value) in labels {
                if let Err(e) = check_label_key(key).and_then(|()| check_label_value(value)) {
                    self.error(ctx, labels_path.key(key), e);
                    ok = false;
                }
            }
        }
        let expressions = selector.match_expressions.as_deref().unwrap_or_default();
        let list = path.field("matchExpressions");
        let mut seen: Vec<(&str, &str, BTreeSet<&str>)> = Vec::new();
        for (i, expr) in expressions.iter().enumerate() {
            let p = list.index(i);
            if let Err(e) = check_label_key(&expr.key) {
                self.error(ctx, p.field("key"), e);
                ok = false;
            }
            let values: &[String] = expr.values.as_deref().unwrap_or_default();
            // The key was judged above; a stand-in lets the operator and values be judged even
            // when it is empty.
            let key = if expr.key.is_empty() { "k" } else { &expr.key };
            match Selector::new([], [(key, expr.operator.as_str(), values.to_vec())]) {
                Ok(_) => {}
                Err(e @ SelectorError::UnknownOperator(_)) => {
                    self.error(ctx, p.field("operator"), e.to_string());
                    ok = false;
                }
                Err(e) => {
                    self.error(ctx, p.field("values"), e.to_string());
                    ok = false;
                }
            }
            let mut value_set = BTreeSet::new();
            for (j, value) in values.iter().enumerate() {
                let vp = p.field("values").index(j);
                if let Err(e) = check_label_value(value) {
                    self.error(ctx, vp, e);
                    ok = false;
                } else if !value_set.insert(value.as_str()) {
                    self.error(ctx, vp, format!("{value:?}: duplicate value"));
                    ok = false;
                }
            }
            let this = (expr.key.as_str(), expr.operator.as_str(), value_set);
            if let Some(f) = seen.iter().position(|s| *s == this) {
                self.error(ctx, p, format!("duplicate of {}", list.index(f)));
                ok = false;
            }
            seen.push(this);
        }
        if !ok {
            return None;
        }
        match Selector::new(labels_of(selector), expressions_of(selector)) {
            Ok(s) => Some(s),
            Err(e) => {
                // Every part was judged on its own above, so this is not expected; reported
                // rather than assumed.
                self.error(ctx, path.clone(), e.to_string());
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

    fn l2_advertisements(
        &mut self,
        objects: &[Sourced<Object<L2AdvertisementSpec>>],
        names: &Names<'_>,
        pool_names: &Names<'_>,
    ) -> Vec<L2Advertisement> {
        let mut out = BTreeMap::new();
        for (object, owns) in objects.iter().zip(&names.owns) {
            let ctx = Ctx::of(object);
            let spec = &object.object.spec;
            let spec_path = FieldPath::root("spec");
            let pools = self.pool_refs(ctx, &spec.ip_address_pools, &pool_names.all);
            let pool_selectors = self.selectors(
                ctx,
                &spec.ip_address_pool_selectors,
                &spec_path.field("ipAddressPoolSelectors"),
            );
            let node_selectors =
                self.selectors(ctx, &spec.node_selectors, &spec_path.field("nodeSelectors"));
            let interfaces = self.interfaces(ctx, &spec.interfaces);
            if let (
                true,
                Some(pools),
                Some(pool_selectors),
                Some(node_selectors),
                Some(interfaces),
            ) = (*owns, pools, pool_selectors, node_selectors, interfaces)
            {
                out.insert(
                    ctx.name.to_owned(),
                    L2Advertisement {
                        name: ctx.name.to_owned(),
                        pools: PoolSelection::new(pools, pool_selectors),
                        node_selectors,
                        interfaces,
                    },
                );
            }
        }
        out.into_values().collect()
    }

    fn interfaces(&mut self, ctx: Ctx<'_>, list: &[String]) -> Option<Vec<InterfaceName>> {
        let path = FieldPath::root("spec").field("interfaces");
        let mut out: Vec<InterfaceName> = Vec::new();
        let mut ok = true;
        for (i, name) in list.iter().enumerate() {
            match InterfaceName::new(name.as_str()) {
                Err(e) => {
                    self.error(ctx, path.index(i), e.to_string());
                    ok = false;
                }
                Ok(n) => {
                    if let Some(f) = out.iter().position(|o| *o == n) {
                        let message = format!("{name:?}: duplicate of {}", path.index(f));
                        self.error(ctx, path.index(i), message);
                        ok = false;
                    }
                    out.push(n);
                }
            }
        }
        ok.then_some(out)
    }

    fn bgp_advertisements(
        &mut self,
        objects: &[Sourced<Object<BGPAdvertisementSpec>>],
        names: &Names<'_>,
        pool_names: &Names<'_>,
        peer_names: &Names<'_>,
        entries: &PoolEntries<'_>,
        aliases: &BTreeMap<&str, Option<Community>>,
    ) -> Vec<BgpAdvertisement> {
        let mut out = BTreeMap::new();
        for (object, owns) in objects.iter().zip(&names.owns) {
            let ctx = Ctx::of(object);
            let spec = &object.object.spec;
            let spec_path = FieldPath::root("spec");
            let length = |v: &mut Self, field: &str, value: Option<i32>, max: u8| match value {
                None => Some(max),
                Some(n) => match u8::try_from(n) {
                    Ok(n) if (1..=max).contains(&n) => Some(n),
                    _ => {
                        let message = format!("{n}: must be between 1 and {max}");
                        v.error(ctx, spec_path.field(field), message);
                        None
                    }
                },
            };
            let length_v4 = length(self, "aggregationLength", spec.aggregation_length, 32);
            let length_v6 = length(self, "aggregationLengthV6", spec.aggregation_length_v6, 128);
            let pools = self.pool_refs(ctx, &spec.ip_address_pools, &pool_names.all);
            let pool_selectors = self.selectors(
                ctx,
                &spec.ip_address_pool_selectors,
                &spec_path.field("ipAddressPoolSelectors"),
            );
            let node_selectors =
                self.selectors(ctx, &spec.node_selectors, &spec_path.field("nodeSelectors"));
            let peers = self.refs(
                ctx,
                &spec.peers,
                &spec_path.field("peers"),
                &peer_names.all,
                BGPPeerSpec::KIND,
                PeerName::new,
            );
            let communities = self.advertised_communities(ctx, &spec.communities, aliases);
            let (Some(pools), Some(pool_selectors)) = (pools, pool_selectors) else {
                continue;
            };
            let selection = PoolSelection::new(pools, pool_selectors);
            let aggregation_ok = self.aggregation(ctx, &selection, entries, length_v4, length_v6);
            if let (
                true,
                true,
                Some(aggregation_length),
                Some(aggregation_length_v6),
                Some(node_selectors),
                Some(peers),
                Some(communities),
            ) = (
                *owns,
                aggregation_ok,
                length_v4,
                length_v6,
                node_selectors,
                peers,
                communities,
            ) {
                out.insert(
                    ctx.name.to_owned(),
                    BgpAdvertisement {
                        name: ctx.name.to_owned(),
                        pools: selection,
                        aggregation_length,
                        aggregation_length_v6,
                        local_pref: spec.local_pref,
                        communities,
                        node_selectors,
                        peers,
                    },
                );
            }
        }
        out.into_values().collect()
    }

    /// Checks that the aggregation lengths cover no address outside the pools announced: each
    /// must be at least the prefix length of the widest CIDR of every entry of its family.
    fn aggregation(
        &mut self,
        ctx: Ctx<'_>,
        selection: &PoolSelection,
        entries: &PoolEntries<'_>,
        length_v4: Option<u8>,
        length_v6: Option<u8>,
    ) -> bool {
        let mut ok = true;
        for (pool, (labels, pool_entries)) in entries {
            if !selection.includes(pool, labels) {
                continue;
            }
            for entry in pool_entries {
                let (field, length) = match entry.range.family() {
                    Family::V4 => ("aggregationLength", length_v4),
                    Family::V6 => ("aggregationLengthV6", length_v6),
                };
                let Some(length) = length else { continue };
                let widest = entry.range.cidrs().iter().map(|c| c.prefix_len()).min();
                if let Some(widest) = widest.filter(|&w| length < w) {
                    let message = format!(
                        "{field} {length} is shorter than the /{widest} of pool {pool}'s {}",
                        entry.text.trim()
                    );
                    self.error(ctx, FieldPath::root("spec").field(field), message);
                    ok = false;
                }
            }
        }
        ok
    }

    /// Resolves `spec.communities` of a BGPAdvertisement: aliases first, then literals.
    fn advertised_communities(
        &mut self,
        ctx: Ctx<'_>,
        list: &[String],
        aliases: &BTreeMap<&str, Option<Community>>,
    ) -> Option<Vec<Community>> {
        let path = FieldPath::root("spec").field("communities");
        let mut out = BTreeSet::new();
        let mut first = BTreeMap::new();
        let mut ok = true;
        for (i, text) in list.iter().enumerate() {
            if let Some(f) = first.get(text.as_str()) {
                let message = format!("{text:?}: duplicate of {}", path.index(*f));
                self.error(ctx, path.index(i), message);
                ok = false;
                continue;
            }
            first.insert(text.as_str(), i);
            // Aliases win over literals, as in MetalLB.
            if let Some(value) = aliases.get(text.as_str()) {
                match value {
                    Some(c) => {
                        out.insert(*c);
                    }
                    // The alias's own value is wrong, which is reported on its Community.
                    None => ok = false,
                }
                continue;
            }
            if let Some(c) = Community::well_known(text) {
                out.insert(c);
                continue;
            }
            if !text.contains(':') {
                let message = format!(
                    "{text:?}: no Community object defines this alias, and it is not a \
                     community value (a:b, large:a:b:c, or a well-known name such as no-export)"
                );
                self.error(ctx, path.index(i), message);
                ok = false;
                continue;
            }
            match text.parse::<Community>() {
                Ok(c) => {
                    out.insert(c);
                }
                Err(e) => {
                    self.error(ctx, path.index(i), e.to_string());
                    ok = false;
                }
            }
        }
        ok.then(|| out.into_iter().collect())
    }

    fn peers(
        &mut self,
        objects: &[Sourced<Object<BGPPeerSpec>>],
        names: &Names<'_>,
        bfd_names: &Names<'_>,
    ) -> BTreeMap<PeerName, Peer> {
        let mut peers = BTreeMap::new();
        for (object, owns) in objects.iter().zip(&names.owns) {
            let ctx = Ctx::of(object);
            let peer = self.peer(ctx, &object.object.spec, &bfd_names.all);
            let name = owns.then(|| PeerName::new(ctx.name).ok()).flatten();
            if let (Some(name), Some(peer)) = (name, peer) {
                peers.insert(name, peer);
            }
        }
        peers
    }

    fn peer(
        &mut self,
        ctx: Ctx<'_>,
        spec: &BGPPeerSpec,
        bfd_names: &BTreeSet<&str>,
    ) -> Option<Peer> {
        let path = FieldPath::root("spec");
        let errors_before = self.errors.len();

        let asn = |v: &mut Self, field: &str, value: i64| match u32::try_from(value) {
            Ok(asn) if asn >= 1 => Some(asn),
            _ => {
                let message = format!("{value}: ASN out of range (1-4294967295)");
                v.error(ctx, path.field(field), message);
                None
            }
        };
        let my_asn = match spec.my_asn {
            None => {
                self.error(ctx, path.field("myASN"), "is required");
                None
            }
            Some(n) => asn(self, "myASN", n),
        };
        let dynamic_asn = spec.dynamic_asn.as_deref().filter(|s| !s.is_empty());
        let dynamic = dynamic_asn.and_then(|mode| match mode {
            "internal" => Some(PeerAsn::Internal),
            "external" => Some(PeerAsn::External),
            other => {
                let message = format!("{other:?}: must be internal or external");
                self.error(ctx, path.field("dynamicASN"), message);
                None
            }
        });
        let exact = spec
            .peer_asn
            .and_then(|n| asn(self, "peerASN", n))
            .map(PeerAsn::Exact);
        let peer_asn = match (spec.peer_asn, dynamic_asn) {
            (Some(_), Some(_)) => {
                let message = "must not be set together with peerASN";
                self.error(ctx, path.field("dynamicASN"), message);
                None
            }
            (None, None) => {
                let message = "is required (or set dynamicASN to internal or external)";
                self.error(ctx, path.field("peerASN"), message);
                None
            }
            (Some(_), None) => exact,
            (None, Some(_)) => dynamic,
        };

        let interface = spec.interface.as_deref().filter(|s| !s.is_empty());
        if let Some(interface) = interface {
            let message = format!(
                "{interface:?}: BGP unnumbered is not supported by ironlb's speaker; set \
                 peerAddress to the peer's address instead"
            );
            self.error(ctx, path.field("interface"), message);
        }
        let peer_address = match spec.peer_address.as_deref().filter(|s| !s.is_empty()) {
            None if interface.is_some() => None,
            None => {
                self.error(ctx, path.field("peerAddress"), "is required");
                None
            }
            Some(text) => self.ip(ctx, "peerAddress", text),
        };
        let source_address = spec
            .source_address
            .as_deref()
            .filter(|s| !s.is_empty())
            .and_then(|text| {
                let addr = self.ip(ctx, "sourceAddress", text)?;
                match peer_address {
                    Some(peer) if Family::of(peer) != Family::of(addr) => {
                        let message = format!(
                            "{text:?} is {} but peerAddress is {}",
                            Family::of(addr),
                            Family::of(peer)
                        );
                        self.error(ctx, path.field("sourceAddress"), message);
                        None
                    }
                    _ => Some(addr),
                }
            });

        let peer_port = match spec.peer_port {
            None => Some(Peer::DEFAULT_PORT),
            Some(n) => match u16::try_from(n) {
                Ok(port) if port >= 1 => Some(port),
                _ => {
                    let message = format!("{n}: must be between 1 and 65535");
                    self.error(ctx, path.field("peerPort"), message);
                    None
                }
            },
        };

        let timers = self.timers(ctx, spec);
        let connect_time = match spec.connect_time.as_deref() {
            None => Some(Peer::DEFAULT_CONNECT_TIME),
            Some(text) => self.duration(ctx, "connectTime", text).and_then(|d| {
                let problem = if d.subsec_nanos() != 0 {
                    "must be a whole number of seconds"
                } else if !(1..=65535).contains(&d.as_secs()) {
                    "must be between 1s and 65535s"
                } else {
                    return Some(d);
                };
                self.error(
                    ctx,
                    path.field("connectTime"),
                    format!("{text:?}: {problem}"),
                );
                None
            }),
        };

        let router_id = spec.router_id.as_deref().filter(|s| !s.is_empty());
        let router_id = match router_id.map(|text| (text, text.parse::<IpAddr>())) {
            None => None,
            Some((_, Ok(IpAddr::V4(id)))) => Some(id),
            Some((text, _)) => {
                let message = format!("{text:?}: must be an IPv4 address");
                self.error(ctx, path.field("routerID"), message);
                None
            }
        };

        let node_selectors =
            self.selectors(ctx, &spec.node_selectors, &path.field("nodeSelectors"));

        let password = spec.password.as_deref().filter(|s| !s.is_empty());
        if let Some(p) = password {
            // The password itself is never echoed: error messages end up in logs.
            if p.contains(['\r', '\n']) {
                self.error(ctx, path.field("password"), "must not contain CR or LF");
            } else if p.len() > TCP_MD5SIG_MAXKEYLEN {
                let message = format!(
                    "is {} bytes long; at most {TCP_MD5SIG_MAXKEYLEN} are allowed \
                     (TCP_MD5SIG_MAXKEYLEN)",
                    p.len()
                );
                self.error(ctx, path.field("password"), message);
            }
        }
        let password_secret = spec
            .password_secret
            .as_ref()
            .and_then(|s| self.secret_ref(ctx, s));
        if password.is_some() && password_secret.is_some() {
            let message = "must not be set together with password";
            self.error(ctx, path.field("passwordSecret"), message);
        }

        let bfd_profile = spec.bfd_profile.as_deref().filter(|s| !s.is_empty());
        if let Some(profile) = bfd_profile {
            if !bfd_names.contains(profile) {
                let message = format!("{profile:?}: no BFDProfile has this name");
                self.error(ctx, path.field("bfdProfile"), message);
            }
        }

        if spec.ebgp_multi_hop {
            let why = match (my_asn, peer_asn) {
                (Some(my), Some(PeerAsn::Exact(peer))) if my == peer => {
                    Some("peerASN equals myASN")
                }
                (_, Some(PeerAsn::Internal)) => Some("dynamicASN is internal"),
                _ => None,
            };
            if let Some(why) = why {
                let message = format!("must not be set for an iBGP peer ({why})");
                self.error(ctx, path.field("ebgpMultiHop"), message);
            }
        }

        if let Some(vrf) = spec.vrf.as_deref().filter(|s| !s.is_empty()) {
            let message = format!("{vrf:?}: VRFs are not supported by ironlb");
            self.error(ctx, path.field("vrf"), message);
        }

        if self.errors.len() != errors_before {
            return None;
        }
        let (hold_time, keepalive_time) = timers?;
        Some(Peer {
            my_asn: my_asn?,
            peer_asn: peer_asn?,
            peer_address: peer_address?,
            source_address,
            peer_port: peer_port?,
            hold_time,
            keepalive_time,
            connect_time: connect_time?,
            router_id,
            node_selectors: node_selectors?,
            password: password.map(|p| Password::new(p.to_owned())),
            password_secret,
            bfd_profile: bfd_profile.map(str::to_owned),
            ebgp_multi_hop: spec.ebgp_multi_hop,
            graceful_restart: spec.enable_graceful_restart,
            disable_mp: spec.disable_mp,
        })
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

    /// The hold and keepalive times, with MetalLB's defaults: 90s and a third of the hold
    /// time, or three times the keepalive time when only that is given.
    fn timers(&mut self, ctx: Ctx<'_>, spec: &BGPPeerSpec) -> Option<(Duration, Duration)> {
        let path = FieldPath::root("spec");
        let hold_text = spec.hold_time.as_deref();
        let keepalive_text = spec.keepalive_time.as_deref();
        let hold = hold_text.map(|t| self.duration(ctx, "holdTime", t));
        let keepalive = keepalive_text.map(|t| self.duration(ctx, "keepaliveTime", t));
        match (hold, keepalive) {
            (None, None) => Some((Peer::DEFAULT_HOLD_TIME, Peer::DEFAULT_HOLD_TIME / 3)),
            (Some(hold), None) => {
                let hold = hold?;
                if let Some(problem) = hold_time_problem(hold) {
                    let text = hold_text.unwrap_or_default();
                    self.error(ctx, path.field("holdTime"), format!("{text:?}: {problem}"));
                    return None;
                }
                Some((hold, hold / 3))
            }
            (None, Some(keepalive)) => {
                let keepalive = keepalive?;
                let hold = keepalive.checked_mul(3).unwrap_or(Duration::MAX);
                if let Some(problem) = hold_time_problem(hold) {
                    let message = format!(
                        "{:?}: the holdTime it implies (3 × keepaliveTime = {}) {problem}; set \
                         holdTime",
                        keepalive_text.unwrap_or_default(),
                        format_go_duration(hold)
                    );
                    self.error(ctx, path.field("keepaliveTime"), message);
                    return None;
                }
                Some((hold, keepalive))
            }
            (Some(hold), Some(keepalive)) => {
                let hold_problem = hold.and_then(hold_time_problem);
                if let Some(problem) = hold_problem {
                    let text = hold_text.unwrap_or_default();
                    self.error(ctx, path.field("holdTime"), format!("{text:?}: {problem}"));
                }
                let (hold, keepalive) = (hold?, keepalive?);
                if hold_problem.is_some() {
                    return None;
                }
                let text = keepalive_text.unwrap_or_default();
                let problem = if hold.is_zero() && !keepalive.is_zero() {
                    "must be 0 when holdTime is 0".to_owned()
                } else if keepalive > hold {
                    format!(
                        "must not be longer than holdTime {:?}",
                        hold_text.unwrap_or_default()
                    )
                } else {
                    return Some((hold, keepalive));
                };
                self.error(
                    ctx,
                    path.field("keepaliveTime"),
                    format!("{text:?}: {problem}"),
                );
                None
            }
        }
    }

    /// Checks `spec.passwordSecret`; `None` when it is unset (`{}` counts as unset, as in
    /// MetalLB) or wrong.
    fn secret_ref(&mut self, ctx: Ctx<'_>, spec: &SecretReferenceSpec) -> Option<SecretRef> {
        let path = FieldPath::root("spec").field("passwordSecret");
        let name = spec.name.as_deref().filter(|s| !s.is_empty());
        let namespace = spec.namespace.as_deref().filter(|s| !s.is_empty());
        if name.is_none() && namespace.is_none() {
            return None;
        }
        let namespace = match namespace.map(Namespace::new) {
            None => Some(None),
            Some(Ok(ns)) => Some(Some(ns)),
            Some(Err(e)) => {
                self.error(ctx, path.field("namespace"), e.to_string());
                None
            }
        };
        let name = match name {
            None => {
                self.error(ctx, path.field("name"), "is required");
                None
            }
            Some(name) => match check_object_name(name) {
                Ok(()) => Some(name.to_owned()),
                Err(e) => {
                    self.error(ctx, path.field("name"), e.to_string());
                    None
                }
            },
        };
        Some(SecretRef {
            name: name?,
            namespace: namespace?,
        })
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

/// What is wrong with a hold time, if anything: it must be zero (keepalives off) or whole
/// seconds from 3s (RFC 4271) to 65535s (what the OPEN message can carry). Sub-second values,
/// which MetalLB rounds to zero, are refused too: zero is better said as zero.
fn hold_time_problem(hold: Duration) -> Option<&'static str> {
    if hold.is_zero() {
        None
    } else if hold < MIN_HOLD_TIME {
        Some("must be 0 or at least 3s")
    } else if hold.subsec_nanos() != 0 {
        Some("must be a whole number of seconds")
    } else if hold > MAX_HOLD_TIME {
        Some("must be at most 65535s")
    } else {
        None
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

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    /// One table case: a YAML stream, and what validating it must give.
    struct Case {
        name: &'static str,
        yaml: String,
        expect: Expect,
    }

    enum Expect {
        /// Valid; the function checks the result.
        Valid(fn(&Config)),
        /// These errors (load and validation), in this order, as displayed.
        Errors(Vec<&'static str>),
    }

    fn valid(name: &'static str, yaml: String, check: fn(&Config)) -> Case {
        Case {
            name,
            yaml,
            expect: Expect::Valid(check),
        }
    }

    fn errors(name: &'static str, yaml: String, errors: &[&'static str]) -> Case {
        Case {
            name,
            yaml,
            expect: Expect::Errors(errors.to_vec()),
        }
    }

    fn doc(kind: &str, name: &str, spec: &str) -> String {
        format!(
            "apiVersion: ironlb.io/v1beta1\nkind: {kind}\nmetadata: {{name: {name}}}\n\
             spec: {spec}\n"
        )
    }

    fn pool(name: &str, spec: &str) -> String {
        doc("IPAddressPool", name, spec)
    }

    fn l2(name: &str, spec: &str) -> String {
        doc("L2Advertisement", name, spec)
    }

    fn bgp(name: &str, spec: &str) -> String {
        doc("BGPAdvertisement", name, spec)
    }

    fn peer(name: &str, spec: &str) -> String {
        doc("BGPPeer", name, spec)
    }

    fn community(name: &str, spec: &str) -> String {
        doc("Community", name, spec)
    }

    fn bfd(name: &str, spec: &str) -> String {
        doc("BFDProfile", name, spec)
    }

    /// A peer with myASN 64500, peerASN 64501 and peerAddress 192.0.2.1, plus `extra` fields.
    fn peer_with(name: &str, extra: &str) -> String {
        let base = "myASN: 64500, peerASN: 64501, peerAddress: 192.0.2.1";
        if extra.is_empty() {
            peer(name, &format!("{{{base}}}"))
        } else {
            peer(name, &format!("{{{base}, {extra}}}"))
        }
    }

    /// The pool most cases lean on.
    fn public() -> String {
        pool("public", "{addresses: [192.0.2.0/24]}")
    }

    fn stream(docs: &[String]) -> String {
        docs.join("---\n")
    }

    fn pool_name(s: &str) -> PoolName {
        PoolName::new(s).unwrap()
    }

    fn peer_name(s: &str) -> PeerName {
        PeerName::new(s).unwrap()
    }

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    fn valid_cases() -> Vec<Case> {
        vec![
            valid("minimal pool", public(), |c| {
                let p = &c.pools[&pool_name("public")];
                assert_eq!(p.spec.ranges, [AddrRange::parse("192.0.2.0/24").unwrap()]);
                assert!(p.spec.auto_assign && !p.spec.avoid_buggy_ips);
                assert_eq!(p.spec.service_allocation, None);
                assert_eq!(c.pool_specs(), std::slice::from_ref(&p.spec));
                assert!(c.l2_advertisements.is_empty() && c.peers.is_empty());
            }),
            valid(
                "pool entries of every form",
                pool(
                    "mixed",
                    "{addresses: ['192.0.2.10 - 192.0.2.20', 198.51.100.7, '2001:db8::/64', \
                     '2001:db8:1::1-2001:db8:1::ff']}",
                ),
                |c| {
                    let p = &c.pools[&pool_name("mixed")];
                    let lens: Vec<u128> = p.spec.ranges.iter().map(|r| r.len()).collect();
                    assert_eq!(lens, [11, 1, 1 << 64, 255]);
                },
            ),
            valid(
                "pool options and service allocation",
                pool(
                    "p",
                    "{addresses: [192.0.2.0/24], autoAssign: false, avoidBuggyIPs: true, \
                     serviceAllocation: {priority: 5, namespaces: [web, shop], \
                     namespaceSelectors: [{matchLabels: {team: web}}], serviceSelectors: \
                     [{matchExpressions: [{key: tier, operator: In, values: [fe]}]}]}}",
                ),
                |c| {
                    let p = &c.pools[&pool_name("p")].spec;
                    assert!(!p.auto_assign && p.avoid_buggy_ips);
                    let sa = p.service_allocation.as_ref().unwrap();
                    assert_eq!(sa.priority, 5);
                    let ns: Vec<&str> = sa.namespaces.iter().map(|n| n.as_str()).collect();
                    assert_eq!(ns, ["shop", "web"]);
                    assert_eq!(sa.namespace_selectors[0].to_string(), "team=web");
                    assert_eq!(sa.service_selectors[0].to_string(), "tier=fe");
                },
            ),
            valid(
                "priority-only service allocation",
                pool(
                    "p",
                    "{addresses: [192.0.2.0/24], serviceAllocation: {priority: 0}}",
                ),
                |c| {
                    let sa = c.pools[&pool_name("p")].spec.service_allocation.clone();
                    assert_eq!(sa, Some(ServiceAllocation::default()));
                },
            ),
            valid(
                "adjacent pools do not overlap",
                stream(&[
                    pool("a", "{addresses: [192.0.2.0/25]}"),
                    pool(
                        "b",
                        "{addresses: [192.0.2.128-192.0.2.255, '2001:db8::/64']}",
                    ),
                    pool("c", "{addresses: ['2001:db8:0:1::/64']}"),
                ]),
                |c| assert_eq!(c.pools.len(), 3),
            ),
            valid(
                "a full configuration",
                stream(&[
                    "apiVersion: ironlb.io/v1beta1\nkind: IPAddressPool\nmetadata:\n  \
                     name: public\n  labels: {tier: public}\nspec:\n  addresses: \
                     [192.0.2.0/24, '2001:db8::/64']\n"
                        .to_owned(),
                    pool(
                        "private",
                        "{addresses: [198.51.100.0/24], autoAssign: false}",
                    ),
                    l2(
                        "l2",
                        "{ipAddressPools: [public], nodeSelectors: [{matchLabels: {role: edge}}], \
                         interfaces: [eth0, bond0.100]}",
                    ),
                    bgp(
                        "bgp",
                        "{aggregationLength: 24, aggregationLengthV6: 64, localPref: 100, \
                         communities: [gold, '64500:2', 'large:64500:1:2'], \
                         ipAddressPoolSelectors: [{matchLabels: {tier: public}}], peers: [r1], \
                         nodeSelectors: [{matchExpressions: [{key: role, operator: In, \
                         values: [edge, core]}]}]}",
                    ),
                    peer_with(
                        "r1",
                        "holdTime: 30s, bfdProfile: fast, routerID: 192.0.2.254, password: s3cret",
                    ),
                    community("aliases", "{communities: [{name: gold, value: '64500:1'}]}"),
                    bfd(
                        "fast",
                        "{receiveInterval: 100, transmitInterval: 100, detectMultiplier: 5, \
                         echoMode: true}",
                    ),
                ]),
                |c| {
                    assert_eq!(c.pools.len(), 2);
                    assert!(!c.pools[&pool_name("private")].spec.auto_assign);
                    assert_eq!(c.pools[&pool_name("public")].labels["tier"], "public");
                    let l2 = &c.l2_advertisements[0];
                    assert_eq!(l2.name, "l2");
                    assert_eq!(l2.pools, PoolSelection::Named([pool_name("public")].into()));
                    let ifs: Vec<&str> = l2.interfaces.iter().map(|i| i.as_str()).collect();
                    assert_eq!(ifs, ["eth0", "bond0.100"]);
                    let edge: Labels = [("role".to_owned(), "edge".to_owned())].into();
                    assert!(l2.selects_node(&edge) && !l2.selects_node(&Labels::new()));
                    let b = &c.bgp_advertisements[0];
                    assert_eq!((b.aggregation_length, b.aggregation_length_v6), (24, 64));
                    assert_eq!(b.local_pref, Some(100));
                    assert_eq!(
                        b.communities,
                        [
                            Community::Standard(64500, 1),
                            Community::Standard(64500, 2),
                            Community::Large(64500, 1, 2)
                        ]
                    );
                    let selected: Vec<&str> =
                        b.pools.pools(&c.pools).map(|(n, _)| n.as_str()).collect();
                    assert_eq!(selected, ["public"]);
                    assert!(b.selects_peer(&peer_name("r1")) && !b.selects_peer(&peer_name("r2")));
                    assert!(b.selects_node(&edge));
                    let r1 = &c.peers[&peer_name("r1")];
                    assert_eq!((r1.hold_time, r1.keepalive_time), (secs(30), secs(10)));
                    assert_eq!(r1.bfd_profile.as_deref(), Some("fast"));
                    assert_eq!(r1.router_id, Some(Ipv4Addr::new(192, 0, 2, 254)));
                    assert_eq!(r1.password.as_ref().map(|p| p.expose()), Some("s3cret"));
                    assert!(!r1.is_internal());
                    assert_eq!(c.communities["gold"], Community::Standard(64500, 1));
                    let fast = &c.bfd_profiles["fast"];
                    assert_eq!(fast.receive_interval, Duration::from_millis(100));
                    assert_eq!(fast.transmit_interval, Duration::from_millis(100));
                    assert_eq!(fast.echo_interval, Duration::from_millis(50));
                    assert_eq!((fast.detect_multiplier, fast.minimum_ttl), (5, 254));
                    assert!(fast.echo_mode && !fast.passive_mode);
                },
            ),
            valid(
                "L2 with an empty spec announces every pool everywhere",
                stream(&[
                    public(),
                    "apiVersion: ironlb.io/v1beta1\nkind: L2Advertisement\n\
                                     metadata: {name: all}\n"
                        .to_owned(),
                ]),
                |c| {
                    let l2 = &c.l2_advertisements[0];
                    assert_eq!(l2.pools, PoolSelection::All);
                    assert!(l2.interfaces.is_empty() && l2.node_selectors.is_empty());
                    assert!(l2.selects_node(&Labels::new()));
                },
            ),
            valid(
                "L2 pool selection by names and selectors",
                stream(&[
                    public(),
                    l2("b", "{ipAddressPoolSelectors: [{matchLabels: {tier: x}}]}"),
                    l2(
                        "a",
                        "{ipAddressPools: [public], ipAddressPoolSelectors: \
                         [{matchExpressions: [{key: tier, operator: Exists}]}]}",
                    ),
                ]),
                |c| {
                    // Sorted by name, whatever the document order.
                    let names: Vec<&str> = c
                        .l2_advertisements
                        .iter()
                        .map(|a| a.name.as_str())
                        .collect();
                    assert_eq!(names, ["a", "b"]);
                    assert!(matches!(
                        c.l2_advertisements[0].pools,
                        PoolSelection::NamedOrSelected { .. }
                    ));
                    assert!(matches!(
                        c.l2_advertisements[1].pools,
                        PoolSelection::Selected(_)
                    ));
                    // A selector that matches no pool selects none.
                    assert_eq!(c.l2_advertisements[1].pools.pools(&c.pools).count(), 0);
                },
            ),
            valid(
                "BGP advertisement defaults",
                stream(&[public(), bgp("b", "{}")]),
                |c| {
                    let b = &c.bgp_advertisements[0];
                    assert_eq!((b.aggregation_length, b.aggregation_length_v6), (32, 128));
                    assert_eq!(b.local_pref, None);
                    assert!(b.peers.is_empty() && b.communities.is_empty());
                    assert_eq!(b.pools, PoolSelection::All);
                    assert!(b.selects_peer(&peer_name("any")));
                },
            ),
            valid(
                "aggregation length equal to the pool prefix",
                stream(&[
                    pool("p", "{addresses: [192.0.2.0/24, '2001:db8::/64']}"),
                    bgp("b", "{aggregationLength: 24, aggregationLengthV6: 64}"),
                ]),
                |c| assert_eq!(c.bgp_advertisements[0].aggregation_length, 24),
            ),
            valid(
                "aggregation length against a range's widest block",
                stream(&[
                    pool("p", "{addresses: [192.0.2.64-192.0.2.200]}"),
                    bgp("b", "{aggregationLength: 26}"),
                ]),
                |c| assert_eq!(c.bgp_advertisements[0].aggregation_length, 26),
            ),
            valid(
                "aggregation length is checked only against the pools announced",
                stream(&[
                    public(),
                    pool("single", "{addresses: [198.51.100.7]}"),
                    bgp("b", "{aggregationLength: 24, ipAddressPools: [public]}"),
                ]),
                |c| assert_eq!(c.bgp_advertisements.len(), 1),
            ),
            valid(
                "an alias shadows the literal it looks like",
                stream(&[
                    public(),
                    community("c", "{communities: [{name: '65000:1', value: '65000:2'}]}"),
                    bgp("b", "{communities: ['65000:1']}"),
                ]),
                |c| {
                    let b = &c.bgp_advertisements[0];
                    assert_eq!(b.communities, [Community::Standard(65000, 2)]);
                },
            ),
            valid(
                "aliases of several Community objects",
                stream(&[
                    public(),
                    community("c1", "{communities: [{name: gold, value: '64500:1'}]}"),
                    community(
                        "c2",
                        "{communities: [{name: silver, value: 'large:64500:0:2'}]}",
                    ),
                    bgp("b", "{communities: [silver, gold]}"),
                ]),
                |c| {
                    assert_eq!(c.communities.len(), 2);
                    assert_eq!(
                        c.bgp_advertisements[0].communities,
                        [Community::Standard(64500, 1), Community::Large(64500, 0, 2)]
                    );
                },
            ),
            valid("peer defaults", peer_with("r1", ""), |c| {
                let r1 = &c.peers[&peer_name("r1")];
                assert_eq!(r1.my_asn, 64500);
                assert_eq!(r1.peer_asn, PeerAsn::Exact(64501));
                assert_eq!(r1.peer_address, "192.0.2.1".parse::<IpAddr>().unwrap());
                assert_eq!(r1.peer_port, 179);
                assert_eq!((r1.hold_time, r1.keepalive_time), (secs(90), secs(30)));
                assert_eq!(r1.connect_time, secs(120));
                assert_eq!((r1.router_id, r1.source_address), (None, None));
                assert!(r1.password.is_none() && r1.password_secret.is_none());
                assert!(!r1.ebgp_multi_hop && !r1.graceful_restart && !r1.disable_mp);
                assert!(r1.selects_node(&Labels::new()));
            }),
            valid(
                "keepalive defaults to a third of the hold time",
                peer_with("r1", "holdTime: 9s"),
                |c| {
                    let r1 = &c.peers[&peer_name("r1")];
                    assert_eq!((r1.hold_time, r1.keepalive_time), (secs(9), secs(3)));
                },
            ),
            valid(
                "hold time defaults to three keepalives",
                peer_with("r1", "keepaliveTime: 10s"),
                |c| {
                    let r1 = &c.peers[&peer_name("r1")];
                    assert_eq!((r1.hold_time, r1.keepalive_time), (secs(30), secs(10)));
                },
            ),
            valid(
                "hold time zero turns keepalives off",
                peer_with("r1", "holdTime: 0s"),
                |c| {
                    let r1 = &c.peers[&peer_name("r1")];
                    assert_eq!((r1.hold_time, r1.keepalive_time), (secs(0), secs(0)));
                },
            ),
            valid(
                "timers in Go syntax",
                peer_with(
                    "r1",
                    "holdTime: 1m30s, keepaliveTime: 30s, connectTime: 5s, peerPort: 1179",
                ),
                |c| {
                    let r1 = &c.peers[&peer_name("r1")];
                    assert_eq!((r1.hold_time, r1.keepalive_time), (secs(90), secs(30)));
                    assert_eq!((r1.connect_time, r1.peer_port), (secs(5), 1179));
                },
            ),
            valid(
                "dynamic ASNs",
                stream(&[
                    peer(
                        "int",
                        "{myASN: 64500, dynamicASN: internal, peerAddress: 192.0.2.1}",
                    ),
                    peer(
                        "ext",
                        "{myASN: 64500, dynamicASN: external, peerAddress: 192.0.2.2, \
                         ebgpMultiHop: true}",
                    ),
                ]),
                |c| {
                    let int = &c.peers[&peer_name("int")];
                    assert_eq!(int.peer_asn, PeerAsn::Internal);
                    assert!(int.is_internal());
                    let ext = &c.peers[&peer_name("ext")];
                    assert_eq!(ext.peer_asn, PeerAsn::External);
                    assert!(ext.ebgp_multi_hop && !ext.is_internal());
                },
            ),
            valid(
                "an IPv6 session with a source address",
                peer(
                    "r6",
                    "{myASN: 4200000000, peerASN: 4294967295, peerAddress: '2001:db8::1', \
                     sourceAddress: '2001:db8::2', enableGracefulRestart: true, disableMP: true}",
                ),
                |c| {
                    let r6 = &c.peers[&peer_name("r6")];
                    assert_eq!(r6.my_asn, 4_200_000_000);
                    assert_eq!(r6.peer_asn, PeerAsn::Exact(u32::MAX));
                    assert_eq!(
                        r6.source_address,
                        Some("2001:db8::2".parse::<IpAddr>().unwrap())
                    );
                    assert!(r6.graceful_restart && r6.disable_mp);
                },
            ),
            valid(
                "a password secret, and an empty one",
                stream(&[
                    peer_with("r1", "passwordSecret: {name: bgp-auth, namespace: ironlb}"),
                    peer_with("r2", "passwordSecret: {}, vrf: ''"),
                ]),
                |c| {
                    let r1 = &c.peers[&peer_name("r1")];
                    let secret = r1.password_secret.as_ref().unwrap();
                    assert_eq!(secret.name, "bgp-auth");
                    assert_eq!(secret.namespace.as_ref().unwrap().as_str(), "ironlb");
                    assert!(c.peers[&peer_name("r2")].password_secret.is_none());
                },
            ),
            valid(
                "a password of 80 bytes",
                peer_with("r1", &format!("password: {}", "x".repeat(80))),
                |c| {
                    assert_eq!(
                        c.peers[&peer_name("r1")]
                            .password
                            .as_ref()
                            .unwrap()
                            .expose()
                            .len(),
                        80
                    )
                },
            ),
            valid("BFD profile defaults", bfd("plain", "{}"), |c| {
                assert_eq!(c.bfd_profiles["plain"], BfdProfile::default())
            }),
            valid(
                "BFD profile at its limits",
                bfd(
                    "edge",
                    "{receiveInterval: 10, transmitInterval: 60000, echoInterval: 10, \
                     detectMultiplier: 255, minimumTtl: 1, passiveMode: true}",
                ),
                |c| {
                    let p = &c.bfd_profiles["edge"];
                    assert_eq!(p.transmit_interval, secs(60));
                    assert_eq!((p.detect_multiplier, p.minimum_ttl), (255, 1));
                    assert!(p.passive_mode);
                },
            ),
            valid(
                "namespaces and services are taken in",
                stream(&[
                    "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n  labels: \
                     {team: web}\n"
                        .to_owned(),
                    "apiVersion: v1\nkind: Namespace\nmetadata: {name: empty}\n".to_owned(),
                    "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: shop}\n\
                     spec: {type: LoadBalancer}\n"
                        .to_owned(),
                ]),
                |c| {
                    let shop = Namespace::new("shop").unwrap();
                    assert_eq!(c.namespaces[&shop]["team"], "web");
                    assert!(c.namespaces[&Namespace::new("empty").unwrap()].is_empty());
                },
            ),
            valid("nothing at all", String::new(), |c| {
                assert_eq!(*c, Config::default())
            }),
        ]
    }

    fn error_cases() -> Vec<Case> {
        vec![
            // Names.
            errors(
                "missing name",
                "apiVersion: ironlb.io/v1beta1\nkind: IPAddressPool\nmetadata: {}\n\
                 spec: {addresses: [192.0.2.0/24]}\n"
                    .to_owned(),
                &["t.yaml (document 1): IPAddressPool: metadata.name: is required"],
            ),
            errors(
                "invalid name",
                pool("Public", "{addresses: [192.0.2.0/24]}"),
                &["t.yaml (document 1): IPAddressPool/Public: metadata.name: \"Public\" is not \
                   a valid name: use lower-case letters, digits, '-' and '.', starting and \
                   ending with a letter or digit"],
            ),
            errors(
                "duplicate pool name, without overlap noise",
                stream(&[public(), public()]),
                &["t.yaml (document 2): IPAddressPool/public: metadata.name: duplicate name, \
                   first used in t.yaml (document 1)"],
            ),
            errors(
                "duplicate names of other kinds",
                stream(&[
                    peer_with("r1", ""),
                    peer_with("r1", ""),
                    l2("a", "{}"),
                    l2("a", "{}"),
                    bfd("f", "{}"),
                    bfd("f", "{}"),
                ]),
                &[
                    "t.yaml (document 2): BGPPeer/r1: metadata.name: duplicate name, first used \
                     in t.yaml (document 1)",
                    "t.yaml (document 4): L2Advertisement/a: metadata.name: duplicate name, \
                     first used in t.yaml (document 3)",
                    "t.yaml (document 6): BFDProfile/f: metadata.name: duplicate name, first \
                     used in t.yaml (document 5)",
                ],
            ),
            errors(
                "bad metadata labels",
                "apiVersion: ironlb.io/v1beta1\nkind: IPAddressPool\nmetadata:\n  name: p\n  \
                 labels: {'-x': a, ok: 'b c'}\nspec: {addresses: [192.0.2.0/24]}\n"
                    .to_owned(),
                &[
                    "t.yaml (document 1): IPAddressPool/p: metadata.labels[\"-x\"]: \"-x\" is \
                     not a valid label key: expected an optional DNS subdomain prefix and '/', \
                     then at most 63 letters, digits, '-', '_' or '.', starting and ending with \
                     a letter or digit",
                    "t.yaml (document 1): IPAddressPool/p: metadata.labels[\"ok\"]: \"b c\" is \
                     not a valid label value: expected at most 63 letters, digits, '-', '_' or \
                     '.', starting and ending with a letter or digit",
                ],
            ),
            // IPAddressPool.
            errors(
                "no addresses",
                pool("p", "{addresses: []}"),
                &["t.yaml (document 1): IPAddressPool/p: spec.addresses: must list at least one \
                   address range"],
            ),
            errors(
                "no spec at all",
                "apiVersion: ironlb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: p}\n"
                    .to_owned(),
                &["t.yaml (document 1): IPAddressPool/p: spec.addresses: must list at least one \
                   address range"],
            ),
            errors(
                "reversed range",
                stream(&[
                    pool("other", "{addresses: [203.0.113.0/24]}"),
                    pool("public", "{addresses: [198.51.100.0/24, 192.0.2.10-192.0.2.1]}"),
                ]),
                &["t.yaml (document 2): IPAddressPool/public: spec.addresses[1]: \
                   \"192.0.2.10-192.0.2.1\": range start is after its end"],
            ),
            errors(
                "CIDR with host bits",
                pool("p", "{addresses: [192.0.2.1/24]}"),
                &["t.yaml (document 1): IPAddressPool/p: spec.addresses[0]: \"192.0.2.1/24\": \
                   CIDR has host bits set; did you mean 192.0.2.0/24?"],
            ),
            errors(
                "not an address",
                pool("p", "{addresses: [banana]}"),
                &["t.yaml (document 1): IPAddressPool/p: spec.addresses[0]: \"banana\": not a \
                   CIDR (192.0.2.0/24) or a range (192.0.2.10-192.0.2.20): \"banana\""],
            ),
            errors(
                "range of two families",
                pool("p", "{addresses: ['192.0.2.1-2001:db8::1']}"),
                &["t.yaml (document 1): IPAddressPool/p: spec.addresses[0]: \
                   \"192.0.2.1-2001:db8::1\": range mixes IPv4 and IPv6"],
            ),
            errors(
                "prefix too long",
                pool("p", "{addresses: [192.0.2.0/33]}"),
                &["t.yaml (document 1): IPAddressPool/p: spec.addresses[0]: \"192.0.2.0/33\": \
                   not a CIDR (192.0.2.0/24) or a range (192.0.2.10-192.0.2.20): invalid IP \
                   address syntax"],
            ),
            errors(
                "overlap within a pool",
                pool("p", "{addresses: [192.0.2.0/24, 198.51.100.0/24, 192.0.2.0/25]}"),
                &["t.yaml (document 1): IPAddressPool/p: spec.addresses[2]: \"192.0.2.0/25\" \
                   overlaps \"192.0.2.0/24\" at spec.addresses[0]"],
            ),
            errors(
                "the same entry twice",
                pool("p", "{addresses: [192.0.2.7, 192.0.2.7]}"),
                &["t.yaml (document 1): IPAddressPool/p: spec.addresses[1]: \"192.0.2.7\" \
                   overlaps \"192.0.2.7\" at spec.addresses[0]"],
            ),
            errors(
                "overlap across pools",
                stream(&[
                    public(),
                    pool("b", "{addresses: [198.51.100.0/24, 192.0.2.128/25]}"),
                ]),
                &["t.yaml (document 2): IPAddressPool/b: spec.addresses[1]: \"192.0.2.128/25\" \
                   overlaps \"192.0.2.0/24\" of pool public (spec.addresses[0])"],
            ),
            errors(
                "overlap of ranges sharing one address",
                stream(&[
                    pool("a", "{addresses: [192.0.2.10-192.0.2.20]}"),
                    pool("b", "{addresses: [192.0.2.20-192.0.2.30]}"),
                ]),
                &["t.yaml (document 2): IPAddressPool/b: spec.addresses[0]: \
                   \"192.0.2.20-192.0.2.30\" overlaps \"192.0.2.10-192.0.2.20\" of pool a \
                   (spec.addresses[0])"],
            ),
            errors(
                "IPv6 overlap, reported on the later document whatever the address order",
                stream(&[
                    pool("a", "{addresses: ['2001:db8::/120']}"),
                    pool("b", "{addresses: ['2001:db8::/64']}"),
                    pool("c", "{addresses: ['2001:db8::ff']}"),
                ]),
                &[
                    "t.yaml (document 2): IPAddressPool/b: spec.addresses[0]: \"2001:db8::/64\" \
                     overlaps \"2001:db8::/120\" of pool a (spec.addresses[0])",
                    "t.yaml (document 3): IPAddressPool/c: spec.addresses[0]: \"2001:db8::ff\" \
                     overlaps \"2001:db8::/120\" of pool a (spec.addresses[0])",
                    "t.yaml (document 3): IPAddressPool/c: spec.addresses[0]: \"2001:db8::ff\" \
                     overlaps \"2001:db8::/64\" of pool b (spec.addresses[0])",
                ],
            ),
            errors(
                "negative priority",
                pool("p", "{addresses: [192.0.2.0/24], serviceAllocation: {priority: -1}}"),
                &["t.yaml (document 1): IPAddressPool/p: spec.serviceAllocation.priority: -1: \
                   must not be negative"],
            ),
            errors(
                "bad and repeated namespaces",
                pool(
                    "p",
                    "{addresses: [192.0.2.0/24], serviceAllocation: {namespaces: [web, Web_1, \
                     '', web]}}",
                ),
                &[
                    "t.yaml (document 1): IPAddressPool/p: spec.serviceAllocation.namespaces[1]: \
                     \"Web_1\" is not a valid name: use lower-case letters, digits, '-' and '.', \
                     starting and ending with a letter or digit",
                    "t.yaml (document 1): IPAddressPool/p: spec.serviceAllocation.namespaces[2]: \
                     must not be empty",
                    "t.yaml (document 1): IPAddressPool/p: spec.serviceAllocation.namespaces[3]: \
                     \"web\": duplicate of spec.serviceAllocation.namespaces[0]",
                ],
            ),
            errors(
                "unknown selector operator",
                pool(
                    "p",
                    "{addresses: [192.0.2.0/24], serviceAllocation: {namespaceSelectors: \
                     [{matchExpressions: [{key: a, operator: Exists}, {key: b, operator: In, \
                     values: [x]}, {key: c, operator: Has}]}]}}",
                ),
                &["t.yaml (document 1): IPAddressPool/p: \
                   spec.serviceAllocation.namespaceSelectors[0].matchExpressions[2].operator: \
                   unknown operator \"Has\": expected In, NotIn, Exists or DoesNotExist"],
            ),
            errors(
                "In without values",
                pool(
                    "p",
                    "{addresses: [192.0.2.0/24], serviceAllocation: {serviceSelectors: \
                     [{matchExpressions: [{key: a, operator: In}]}]}}",
                ),
                &["t.yaml (document 1): IPAddressPool/p: \
                   spec.serviceAllocation.serviceSelectors[0].matchExpressions[0].values: \
                   operator \"In\" needs at least one value"],
            ),
            errors(
                "Exists with values",
                pool(
                    "p",
                    "{addresses: [192.0.2.0/24], serviceAllocation: {serviceSelectors: [{}, \
                     {matchExpressions: [{key: a, operator: Exists, values: [x]}]}]}}",
                ),
                &["t.yaml (document 1): IPAddressPool/p: \
                   spec.serviceAllocation.serviceSelectors[1].matchExpressions[0].values: \
                   operator \"Exists\" takes no values"],
            ),
            errors(
                "selectors that say the same thing",
                pool(
                    "p",
                    "{addresses: [192.0.2.0/24], serviceAllocation: {serviceSelectors: \
                     [{matchLabels: {app: web}}, {matchExpressions: [{key: app, operator: In, \
                     values: [web]}]}]}}",
                ),
                &["t.yaml (document 1): IPAddressPool/p: \
                   spec.serviceAllocation.serviceSelectors[1]: duplicate of \
                   spec.serviceAllocation.serviceSelectors[0]"],
            ),
            errors(
                "repeated values and expressions in a selector",
                stream(&[
                    public(),
                    l2(
                        "a",
                        "{nodeSelectors: [{matchExpressions: [{key: z, operator: NotIn, values: \
                         [x, y, x]}, {key: z, operator: In, values: [p, q]}, {key: z, operator: \
                         In, values: [q, p]}]}]}",
                    ),
                ]),
                &[
                    "t.yaml (document 2): L2Advertisement/a: \
                     spec.nodeSelectors[0].matchExpressions[0].values[2]: \"x\": duplicate value",
                    "t.yaml (document 2): L2Advertisement/a: \
                     spec.nodeSelectors[0].matchExpressions[2]: duplicate of \
                     spec.nodeSelectors[0].matchExpressions[1]",
                ],
            ),
            errors(
                "bad label keys and values in selectors",
                stream(&[
                    public(),
                    l2(
                        "a",
                        "{nodeSelectors: [{matchLabels: {'bad key': x, 'Example.com/ok': x}, \
                         matchExpressions: [{key: '', operator: Exists}, {key: k, operator: In, \
                         values: ['-v']}]}]}",
                    ),
                ]),
                &[
                    "t.yaml (document 2): L2Advertisement/a: \
                     spec.nodeSelectors[0].matchLabels[\"Example.com/ok\"]: \"Example.com/ok\" \
                     is not a valid label key: expected an optional DNS subdomain prefix and \
                     '/', then at most 63 letters, digits, '-', '_' or '.', starting and ending \
                     with a letter or digit",
                    "t.yaml (document 2): L2Advertisement/a: \
                     spec.nodeSelectors[0].matchLabels[\"bad key\"]: \"bad key\" is not a valid \
                     label key: expected an optional DNS subdomain prefix and '/', then at most \
                     63 letters, digits, '-', '_' or '.', starting and ending with a letter or \
                     digit",
                    "t.yaml (document 2): L2Advertisement/a: \
                     spec.nodeSelectors[0].matchExpressions[0].key: label key must not be empty",
                    "t.yaml (document 2): L2Advertisement/a: \
                     spec.nodeSelectors[0].matchExpressions[1].values[0]: \"-v\" is not a valid \
                     label value: expected at most 63 letters, digits, '-', '_' or '.', \
                     starting and ending with a letter or digit",
                ],
            ),
            // L2Advertisement.
            errors(
                "unknown and repeated pools",
                stream(&[public(), l2("a", "{ipAddressPools: [public, nope, public, Bad]}")]),
                &[
                    "t.yaml (document 2): L2Advertisement/a: spec.ipAddressPools[1]: \"nope\": \
                     no IPAddressPool has this name",
                    "t.yaml (document 2): L2Advertisement/a: spec.ipAddressPools[2]: \
                     \"public\": duplicate of spec.ipAddressPools[0]",
                    "t.yaml (document 2): L2Advertisement/a: spec.ipAddressPools[3]: \"Bad\" is \
                     not a valid name: use lower-case letters, digits, '-' and '.', starting \
                     and ending with a letter or digit",
                ],
            ),
            errors(
                "a reference to a broken pool is not also unknown",
                stream(&[
                    pool("broken", "{addresses: [nonsense]}"),
                    l2("a", "{ipAddressPools: [broken]}"),
                ]),
                &["t.yaml (document 1): IPAddressPool/broken: spec.addresses[0]: \"nonsense\": \
                   not a CIDR (192.0.2.0/24) or a range (192.0.2.10-192.0.2.20): \"nonsense\""],
            ),
            errors(
                "bad interfaces",
                stream(&[
                    public(),
                    l2(
                        "a",
                        "{interfaces: [eth0, averyveryverylongname, 'eth0:1', 'eth/0', \
                         'eth 0', '', eth0]}",
                    ),
                ]),
                &[
                    "t.yaml (document 2): L2Advertisement/a: spec.interfaces[1]: \
                     \"averyveryverylongname\" is longer than 15 bytes",
                    "t.yaml (document 2): L2Advertisement/a: spec.interfaces[2]: \"eth0:1\" is \
                     not an interface name: it must not contain '/', ':' or whitespace",
                    "t.yaml (document 2): L2Advertisement/a: spec.interfaces[3]: \"eth/0\" is \
                     not an interface name: it must not contain '/', ':' or whitespace",
                    "t.yaml (document 2): L2Advertisement/a: spec.interfaces[4]: \"eth 0\" is \
                     not an interface name: it must not contain '/', ':' or whitespace",
                    "t.yaml (document 2): L2Advertisement/a: spec.interfaces[5]: must not be \
                     empty",
                    "t.yaml (document 2): L2Advertisement/a: spec.interfaces[6]: \"eth0\": \
                     duplicate of spec.interfaces[0]",
                ],
            ),
            errors(
                "bad pool selector",
                stream(&[
                    public(),
                    l2(
                        "a",
                        "{ipAddressPoolSelectors: [{matchExpressions: [{key: t, operator: in, \
                         values: [x]}]}]}",
                    ),
                ]),
                &["t.yaml (document 2): L2Advertisement/a: \
                   spec.ipAddressPoolSelectors[0].matchExpressions[0].operator: unknown \
                   operator \"in\": expected In, NotIn, Exists or DoesNotExist"],
            ),
            // BGPAdvertisement.
            errors(
                "aggregation lengths out of range",
                stream(&[
                    public(),
                    bgp("a", "{aggregationLength: 33, aggregationLengthV6: 129}"),
                    bgp("b", "{aggregationLength: 0, aggregationLengthV6: -1}"),
                ]),
                &[
                    "t.yaml (document 2): BGPAdvertisement/a: spec.aggregationLength: 33: must \
                     be between 1 and 32",
                    "t.yaml (document 2): BGPAdvertisement/a: spec.aggregationLengthV6: 129: \
                     must be between 1 and 128",
                    "t.yaml (document 3): BGPAdvertisement/b: spec.aggregationLength: 0: must \
                     be between 1 and 32",
                    "t.yaml (document 3): BGPAdvertisement/b: spec.aggregationLengthV6: -1: \
                     must be between 1 and 128",
                ],
            ),
            errors(
                "aggregation shorter than a pool's prefix",
                stream(&[
                    public(),
                    bgp("adv", "{aggregationLength: 16, ipAddressPools: [public]}"),
                ]),
                &["t.yaml (document 2): BGPAdvertisement/adv: spec.aggregationLength: \
                   aggregationLength 16 is shorter than the /24 of pool public's 192.0.2.0/24"],
            ),
            errors(
                "aggregation against every pool when none is named",
                stream(&[
                    public(),
                    pool("v6", "{addresses: ['2001:db8::/64']}"),
                    bgp("adv", "{aggregationLength: 24, aggregationLengthV6: 48}"),
                ]),
                &["t.yaml (document 3): BGPAdvertisement/adv: spec.aggregationLengthV6: \
                   aggregationLengthV6 48 is shorter than the /64 of pool v6's 2001:db8::/64"],
            ),
            errors(
                "aggregation against the pools a selector picks",
                stream(&[
                    "apiVersion: ironlb.io/v1beta1\nkind: IPAddressPool\nmetadata:\n  name: \
                     picked\n  labels: {bgp: 'yes'}\nspec: {addresses: [198.51.100.0/28]}\n"
                        .to_owned(),
                    public(),
                    bgp(
                        "adv",
                        "{aggregationLength: 24, ipAddressPoolSelectors: [{matchLabels: {bgp: \
                         'yes'}}]}",
                    ),
                ]),
                &["t.yaml (document 3): BGPAdvertisement/adv: spec.aggregationLength: \
                   aggregationLength 24 is shorter than the /28 of pool picked's \
                   198.51.100.0/28"],
            ),
            errors(
                "aggregation against a range's widest block",
                stream(&[
                    pool("p", "{addresses: [192.0.2.64-192.0.2.200]}"),
                    bgp("adv", "{aggregationLength: 25}"),
                ]),
                &["t.yaml (document 2): BGPAdvertisement/adv: spec.aggregationLength: \
                   aggregationLength 25 is shorter than the /26 of pool p's \
                   192.0.2.64-192.0.2.200"],
            ),
            errors(
                "unknown and repeated peers",
                stream(&[
                    public(),
                    peer_with("r1", ""),
                    bgp("adv", "{peers: [r1, r2, r1]}"),
                ]),
                &[
                    "t.yaml (document 3): BGPAdvertisement/adv: spec.peers[1]: \"r2\": no \
                     BGPPeer has this name",
                    "t.yaml (document 3): BGPAdvertisement/adv: spec.peers[2]: \"r1\": \
                     duplicate of spec.peers[0]",
                ],
            ),
            errors(
                "unknown pools of a BGP advertisement",
                stream(&[public(), bgp("adv", "{ipAddressPools: [other]}")]),
                &["t.yaml (document 2): BGPAdvertisement/adv: spec.ipAddressPools[0]: \
                   \"other\": no IPAddressPool has this name"],
            ),
            errors(
                "bad communities",
                stream(&[
                    public(),
                    bgp(
                        "adv",
                        "{communities: [gold, '65536:1', '1:2:3', 'big:1:2:3', \
                         'large:1:2:4294967296', '64500:1', '64500:1', ':1']}",
                    ),
                ]),
                &[
                    "t.yaml (document 2): BGPAdvertisement/adv: spec.communities[0]: \"gold\": \
                     no Community object defines this alias, and it is not a community value \
                     (a:b, large:a:b:c, or a well-known name such as no-export)",
                    "t.yaml (document 2): BGPAdvertisement/adv: spec.communities[1]: \"65536:1\" \
                     is not a community value: \"65536\" is not a 16-bit number",
                    "t.yaml (document 2): BGPAdvertisement/adv: spec.communities[2]: \"1:2:3\" \
                     is not a community value: expected a:b (16-bit numbers) or large:a:b:c \
                     (32-bit numbers)",
                    "t.yaml (document 2): BGPAdvertisement/adv: spec.communities[3]: \
                     \"big:1:2:3\" is not a community value: a four-part community must start \
                     with \"large:\"",
                    "t.yaml (document 2): BGPAdvertisement/adv: spec.communities[4]: \
                     \"large:1:2:4294967296\" is not a community value: \"4294967296\" is not a \
                     32-bit number",
                    "t.yaml (document 2): BGPAdvertisement/adv: spec.communities[6]: \
                     \"64500:1\": duplicate of spec.communities[5]",
                    "t.yaml (document 2): BGPAdvertisement/adv: spec.communities[7]: \":1\" is \
                     not a community value: \"\" is not a 16-bit number",
                ],
            ),
            errors(
                "an alias with a bad value is reported once, on its Community",
                stream(&[
                    public(),
                    community("c", "{communities: [{name: gold, value: '64500:99999'}]}"),
                    bgp("adv", "{communities: [gold]}"),
                ]),
                &["t.yaml (document 2): Community/c: spec.communities[0].value: \
                   \"64500:99999\" is not a community value: \"99999\" is not a 16-bit number"],
            ),
            errors(
                "bad selectors of a BGP advertisement",
                stream(&[
                    public(),
                    bgp(
                        "adv",
                        "{nodeSelectors: [{matchLabels: {a: b}}, {matchLabels: {a: b}}], \
                         ipAddressPoolSelectors: [{matchExpressions: [{key: t, operator: \
                         DoesNotExist, values: [x]}]}]}",
                    ),
                ]),
                &[
                    "t.yaml (document 2): BGPAdvertisement/adv: \
                     spec.ipAddressPoolSelectors[0].matchExpressions[0].values: operator \
                     \"DoesNotExist\" takes no values",
                    "t.yaml (document 2): BGPAdvertisement/adv: spec.nodeSelectors[1]: \
                     duplicate of spec.nodeSelectors[0]",
                ],
            ),
            // BGPPeer.
            errors(
                "missing local ASN",
                peer("r1", "{peerASN: 64501, peerAddress: 192.0.2.1}"),
                &["t.yaml (document 1): BGPPeer/r1: spec.myASN: is required"],
            ),
            errors(
                "ASNs out of range",
                stream(&[
                    peer("r1", "{myASN: 0, peerASN: 4294967296, peerAddress: 192.0.2.1}"),
                    peer("r2", "{myASN: -5, peerASN: 64501, peerAddress: 192.0.2.1}"),
                ]),
                &[
                    "t.yaml (document 1): BGPPeer/r1: spec.myASN: 0: ASN out of range \
                     (1-4294967295)",
                    "t.yaml (document 1): BGPPeer/r1: spec.peerASN: 4294967296: ASN out of \
                     range (1-4294967295)",
                    "t.yaml (document 2): BGPPeer/r2: spec.myASN: -5: ASN out of range \
                     (1-4294967295)",
                ],
            ),
            errors(
                "peerASN and dynamicASN together",
                peer(
                    "r1",
                    "{myASN: 64500, peerASN: 64501, dynamicASN: external, peerAddress: \
                     192.0.2.1}",
                ),
                &["t.yaml (document 1): BGPPeer/r1: spec.dynamicASN: must not be set together \
                   with peerASN"],
            ),
            errors(
                "neither peerASN nor dynamicASN",
                peer("r1", "{myASN: 64500, peerAddress: 192.0.2.1}"),
                &["t.yaml (document 1): BGPPeer/r1: spec.peerASN: is required (or set \
                   dynamicASN to internal or external)"],
            ),
            errors(
                "unknown dynamicASN mode",
                peer("r1", "{myASN: 64500, dynamicASN: Internal, peerAddress: 192.0.2.1}"),
                &["t.yaml (document 1): BGPPeer/r1: spec.dynamicASN: \"Internal\": must be \
                   internal or external"],
            ),
            errors(
                "missing and bad peer addresses",
                stream(&[
                    peer("r1", "{myASN: 64500, peerASN: 64501}"),
                    peer("r2", "{myASN: 64500, peerASN: 64501, peerAddress: 192.0.2.300}"),
                    peer("r3", "{myASN: 64500, peerASN: 64501, peerAddress: 'fe80::1%eth0'}"),
                ]),
                &[
                    "t.yaml (document 1): BGPPeer/r1: spec.peerAddress: is required",
                    "t.yaml (document 2): BGPPeer/r2: spec.peerAddress: \"192.0.2.300\": not an \
                     IP address",
                    "t.yaml (document 3): BGPPeer/r3: spec.peerAddress: \"fe80::1%eth0\": not \
                     an IP address",
                ],
            ),
            errors(
                "BGP unnumbered",
                stream(&[
                    peer("r1", "{myASN: 64500, peerASN: 64501, interface: eth1}"),
                    peer_with("r2", "interface: eth1"),
                ]),
                &[
                    "t.yaml (document 1): BGPPeer/r1: spec.interface: \"eth1\": BGP unnumbered \
                     is not supported by ironlb's speaker; set peerAddress to the peer's \
                     address instead",
                    "t.yaml (document 2): BGPPeer/r2: spec.interface: \"eth1\": BGP unnumbered \
                     is not supported by ironlb's speaker; set peerAddress to the peer's \
                     address instead",
                ],
            ),
            errors(
                "source addresses",
                stream(&[
                    peer_with("r1", "sourceAddress: '2001:db8::1'"),
                    peer_with("r2", "sourceAddress: me"),
                ]),
                &[
                    "t.yaml (document 1): BGPPeer/r1: spec.sourceAddress: \"2001:db8::1\" is \
                     IPv6 but peerAddress is IPv4",
                    "t.yaml (document 2): BGPPeer/r2: spec.sourceAddress: \"me\": not an IP \
                     address",
                ],
            ),
            errors(
                "peer ports",
                stream(&[
                    peer_with("r1", "peerPort: 0"),
                    peer_with("r2", "peerPort: 65536"),
                ]),
                &[
                    "t.yaml (document 1): BGPPeer/r1: spec.peerPort: 0: must be between 1 and \
                     65535",
                    "t.yaml (document 2): BGPPeer/r2: spec.peerPort: 65536: must be between 1 \
                     and 65535",
                ],
            ),
            errors(
                "hold times",
                stream(&[
                    peer_with("r1", "holdTime: 2s"),
                    peer_with("r2", "holdTime: 500ms"),
                    peer_with("r3", "holdTime: 3500ms"),
                    peer_with("r4", "holdTime: 20h"),
                ]),
                &[
                    "t.yaml (document 1): BGPPeer/r1: spec.holdTime: \"2s\": must be 0 or at \
                     least 3s",
                    "t.yaml (document 2): BGPPeer/r2: spec.holdTime: \"500ms\": must be 0 or at \
                     least 3s",
                    "t.yaml (document 3): BGPPeer/r3: spec.holdTime: \"3500ms\": must be a whole \
                     number of seconds",
                    "t.yaml (document 4): BGPPeer/r4: spec.holdTime: \"20h\": must be at most \
                     65535s",
                ],
            ),
            errors(
                "duration syntax",
                stream(&[
                    peer_with("r1", "holdTime: abc"),
                    peer_with("r2", "holdTime: '90'"),
                    peer_with("r3", "keepaliveTime: -5s"),
                    peer_with("r4", "connectTime: 2d"),
                ]),
                &[
                    "t.yaml (document 1): BGPPeer/r1: spec.holdTime: \"abc\" is not a duration: \
                     expected a number and a unit (h, m, s, ms, us, ns), such as 90s or 1m30s",
                    "t.yaml (document 2): BGPPeer/r2: spec.holdTime: \"90\" is not a duration: \
                     a unit (h, m, s, ms, us, ns) must follow each number",
                    "t.yaml (document 3): BGPPeer/r3: spec.keepaliveTime: \"-5s\": must not be \
                     negative",
                    "t.yaml (document 4): BGPPeer/r4: spec.connectTime: \"2d\" is not a \
                     duration: unknown unit \"d\" (use h, m, s, ms, us or ns)",
                ],
            ),
            errors(
                "keepalive times",
                stream(&[
                    peer_with("r1", "holdTime: 90s, keepaliveTime: 100s"),
                    peer_with("r2", "holdTime: '0', keepaliveTime: 10s"),
                    peer_with("r3", "keepaliveTime: 500ms"),
                    peer_with("r4", "keepaliveTime: 1500ms"),
                ]),
                &[
                    "t.yaml (document 1): BGPPeer/r1: spec.keepaliveTime: \"100s\": must not be \
                     longer than holdTime \"90s\"",
                    "t.yaml (document 2): BGPPeer/r2: spec.keepaliveTime: \"10s\": must be 0 \
                     when holdTime is 0",
                    "t.yaml (document 3): BGPPeer/r3: spec.keepaliveTime: \"500ms\": the \
                     holdTime it implies (3 × keepaliveTime = 1.5s) must be 0 or at least 3s; \
                     set holdTime",
                    "t.yaml (document 4): BGPPeer/r4: spec.keepaliveTime: \"1500ms\": the \
                     holdTime it implies (3 × keepaliveTime = 4.5s) must be a whole number of \
                     seconds; set holdTime",
                ],
            ),
            errors(
                "connect times",
                stream(&[
                    peer_with("r1", "connectTime: 0s"),
                    peer_with("r2", "connectTime: 1500ms"),
                    peer_with("r3", "connectTime: 65536s"),
                ]),
                &[
                    "t.yaml (document 1): BGPPeer/r1: spec.connectTime: \"0s\": must be between \
                     1s and 65535s",
                    "t.yaml (document 2): BGPPeer/r2: spec.connectTime: \"1500ms\": must be a \
                     whole number of seconds",
                    "t.yaml (document 3): BGPPeer/r3: spec.connectTime: \"65536s\": must be \
                     between 1s and 65535s",
                ],
            ),
            errors(
                "router IDs",
                stream(&[
                    peer_with("r1", "routerID: '2001:db8::1'"),
                    peer_with("r2", "routerID: router-1"),
                ]),
                &[
                    "t.yaml (document 1): BGPPeer/r1: spec.routerID: \"2001:db8::1\": must be an \
                     IPv4 address",
                    "t.yaml (document 2): BGPPeer/r2: spec.routerID: \"router-1\": must be an \
                     IPv4 address",
                ],
            ),
            errors(
                "passwords",
                stream(&[
                    peer_with("r1", "password: \"a\\nb\""),
                    peer_with("r2", &format!("password: {}", "x".repeat(81))),
                    peer_with("r3", "password: s3cret, passwordSecret: {name: bgp-auth}"),
                ]),
                &[
                    "t.yaml (document 1): BGPPeer/r1: spec.password: must not contain CR or LF",
                    "t.yaml (document 2): BGPPeer/r2: spec.password: is 81 bytes long; at most \
                     80 are allowed (TCP_MD5SIG_MAXKEYLEN)",
                    "t.yaml (document 3): BGPPeer/r3: spec.passwordSecret: must not be set \
                     together with password",
                ],
            ),
            errors(
                "password secret references",
                stream(&[
                    peer_with("r1", "passwordSecret: {namespace: ironlb}"),
                    peer_with("r2", "passwordSecret: {name: Secret, namespace: Bad_NS}"),
                ]),
                &[
                    "t.yaml (document 1): BGPPeer/r1: spec.passwordSecret.name: is required",
                    "t.yaml (document 2): BGPPeer/r2: spec.passwordSecret.namespace: \"Bad_NS\" \
                     is not a valid name: use lower-case letters, digits, '-' and '.', starting \
                     and ending with a letter or digit",
                    "t.yaml (document 2): BGPPeer/r2: spec.passwordSecret.name: \"Secret\" is \
                     not a valid name: use lower-case letters, digits, '-' and '.', starting \
                     and ending with a letter or digit",
                ],
            ),
            errors(
                "unknown BFD profile",
                stream(&[bfd("slow", "{}"), peer_with("r1", "bfdProfile: fast")]),
                &["t.yaml (document 2): BGPPeer/r1: spec.bfdProfile: \"fast\": no BFDProfile \
                   has this name"],
            ),
            errors(
                "a reference to a broken BFD profile is not also unknown",
                stream(&[
                    bfd("fast", "{detectMultiplier: 1}"),
                    peer_with("r1", "bfdProfile: fast"),
                ]),
                &["t.yaml (document 1): BFDProfile/fast: spec.detectMultiplier: 1: must be \
                   between 2 and 255"],
            ),
            errors(
                "eBGP multi-hop on iBGP sessions",
                stream(&[
                    peer(
                        "r1",
                        "{myASN: 64500, peerASN: 64500, peerAddress: 192.0.2.1, ebgpMultiHop: \
                         true}",
                    ),
                    peer(
                        "r2",
                        "{myASN: 64500, dynamicASN: internal, peerAddress: 192.0.2.1, \
                         ebgpMultiHop: true}",
                    ),
                ]),
                &[
                    "t.yaml (document 1): BGPPeer/r1: spec.ebgpMultiHop: must not be set for an \
                     iBGP peer (peerASN equals myASN)",
                    "t.yaml (document 2): BGPPeer/r2: spec.ebgpMultiHop: must not be set for an \
                     iBGP peer (dynamicASN is internal)",
                ],
            ),
            errors(
                "VRFs",
                peer_with("r1", "vrf: red"),
                &["t.yaml (document 1): BGPPeer/r1: spec.vrf: \"red\": VRFs are not supported \
                   by ironlb"],
            ),
            errors(
                "peer node selectors",
                peer_with(
                    "r1",
                    "nodeSelectors: [{matchExpressions: [{key: zone, operator: Gt, values: \
                     ['1']}]}]",
                ),
                &["t.yaml (document 1): BGPPeer/r1: \
                   spec.nodeSelectors[0].matchExpressions[0].operator: unknown operator \"Gt\": \
                   expected In, NotIn, Exists or DoesNotExist"],
            ),
            // Community.
            errors(
                "alias names",
                community(
                    "c",
                    "{communities: [{name: '', value: '1:1'}, {name: gold, value: '1:2'}, \
                     {name: gold, value: '1:3'}]}",
                ),
                &[
                    "t.yaml (document 1): Community/c: spec.communities[0].name: must not be \
                     empty",
                    "t.yaml (document 1): Community/c: spec.communities[2].name: \"gold\": \
                     duplicate of spec.communities[1]",
                ],
            ),
            errors(
                "an alias defined by two objects",
                stream(&[
                    community("a", "{communities: [{name: x, value: '1:1'}, {name: gold, value: '1:2'}]}"),
                    community("b", "{communities: [{name: gold, value: '1:2'}]}"),
                ]),
                &["t.yaml (document 2): Community/b: spec.communities[0].name: \"gold\": already \
                   defined by Community/a (spec.communities[1].name)"],
            ),
            errors(
                "alias values",
                community(
                    "c",
                    "{communities: [{name: a}, {name: b, value: 'large:1:2'}, {name: c, value: \
                     'large:1:2:3:4'}]}",
                ),
                &[
                    "t.yaml (document 1): Community/c: spec.communities[0].value: is required",
                    "t.yaml (document 1): Community/c: spec.communities[1].value: \"large:1:2\" \
                     is not a community value: expected a:b (16-bit numbers) or large:a:b:c \
                     (32-bit numbers)",
                    "t.yaml (document 1): Community/c: spec.communities[2].value: \
                     \"large:1:2:3:4\" is not a community value: expected a:b (16-bit numbers) \
                     or large:a:b:c (32-bit numbers)",
                ],
            ),
            // BFDProfile.
            errors(
                "BFD intervals",
                bfd(
                    "f",
                    "{receiveInterval: 9, transmitInterval: 60001, echoInterval: -10}",
                ),
                &[
                    "t.yaml (document 1): BFDProfile/f: spec.receiveInterval: 9: must be \
                     between 10 and 60000 (milliseconds)",
                    "t.yaml (document 1): BFDProfile/f: spec.transmitInterval: 60001: must be \
                     between 10 and 60000 (milliseconds)",
                    "t.yaml (document 1): BFDProfile/f: spec.echoInterval: -10: must be between \
                     10 and 60000 (milliseconds)",
                ],
            ),
            errors(
                "BFD multiplier and TTL",
                stream(&[
                    bfd("a", "{detectMultiplier: 256, minimumTtl: 0}"),
                    bfd("b", "{minimumTtl: 255}"),
                ]),
                &[
                    "t.yaml (document 1): BFDProfile/a: spec.detectMultiplier: 256: must be \
                     between 2 and 255",
                    "t.yaml (document 1): BFDProfile/a: spec.minimumTtl: 0: must be between 1 \
                     and 254",
                    "t.yaml (document 2): BFDProfile/b: spec.minimumTtl: 255: must be between 1 \
                     and 254",
                ],
            ),
            // Namespaces.
            errors(
                "namespace documents",
                stream(&[
                    "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n".to_owned(),
                    "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n".to_owned(),
                    "apiVersion: v1\nkind: Namespace\nmetadata: {labels: {a: b}}\n".to_owned(),
                ]),
                &[
                    "t.yaml (document 2): Namespace/shop: metadata.name: duplicate name, first \
                     used in t.yaml (document 1)",
                    "t.yaml (document 3): Namespace: metadata.name: is required",
                ],
            ),
            // Values the parser refuses are load errors, reported with the others.
            errors(
                "type mismatches",
                stream(&[
                    public(),
                    bgp("adv", "{localPref: -1}"),
                    peer("r1", "{myASN: '64500', peerASN: 64501, peerAddress: 192.0.2.1}"),
                    pool("p", "{addresses: [198.51.100.0/24], avoidBuggyIPs: maybe}"),
                ]),
                &[
                    "t.yaml (document 2): BGPAdvertisement/adv: spec.localPref: invalid type: \
                     integer `-1`, expected u32 at line 9 column 19",
                    "t.yaml (document 3): BGPPeer/r1: spec.myASN: invalid type: string \
                     \"64500\", expected i64 at line 14 column 15",
                    "t.yaml (document 4): IPAddressPool/p: spec.avoidBuggyIPs: invalid type: \
                     string \"maybe\", expected a boolean at line 19 column 53",
                ],
            ),
            // Everything is reported at once.
            errors(
                "many errors across kinds",
                stream(&[
                    pool("a", "{addresses: [192.0.2.0/24, 192.0.2.300]}"),
                    pool("b", "{addresses: [192.0.2.0/26], serviceAllocation: {priority: -3}}"),
                    l2("l2", "{ipAddressPools: [c], interfaces: ['bad if']}"),
                    bgp("adv", "{aggregationLength: 8, communities: [nope], peers: [r9]}"),
                    peer("r1", "{myASN: 0, peerAddress: x, holdTime: 1s, vrf: blue}"),
                    community("c", "{communities: [{name: n, value: v}]}"),
                    bfd("f", "{echoInterval: 5}"),
                ]),
                &[
                    "t.yaml (document 1): IPAddressPool/a: spec.addresses[1]: \"192.0.2.300\": \
                     not a CIDR (192.0.2.0/24) or a range (192.0.2.10-192.0.2.20): \
                     \"192.0.2.300\"",
                    "t.yaml (document 2): IPAddressPool/b: spec.serviceAllocation.priority: -3: \
                     must not be negative",
                    "t.yaml (document 2): IPAddressPool/b: spec.addresses[0]: \"192.0.2.0/26\" \
                     overlaps \"192.0.2.0/24\" of pool a (spec.addresses[0])",
                    "t.yaml (document 3): L2Advertisement/l2: spec.ipAddressPools[0]: \"c\": no \
                     IPAddressPool has this name",
                    "t.yaml (document 3): L2Advertisement/l2: spec.interfaces[0]: \"bad if\" is \
                     not an interface name: it must not contain '/', ':' or whitespace",
                    "t.yaml (document 4): BGPAdvertisement/adv: spec.peers[0]: \"r9\": no \
                     BGPPeer has this name",
                    "t.yaml (document 4): BGPAdvertisement/adv: spec.communities[0]: \"nope\": \
                     no Community object defines this alias, and it is not a community value \
                     (a:b, large:a:b:c, or a well-known name such as no-export)",
                    "t.yaml (document 4): BGPAdvertisement/adv: spec.aggregationLength: \
                     aggregationLength 8 is shorter than the /24 of pool a's 192.0.2.0/24",
                    "t.yaml (document 4): BGPAdvertisement/adv: spec.aggregationLength: \
                     aggregationLength 8 is shorter than the /26 of pool b's 192.0.2.0/26",
                    "t.yaml (document 5): BGPPeer/r1: spec.myASN: 0: ASN out of range \
                     (1-4294967295)",
                    "t.yaml (document 5): BGPPeer/r1: spec.peerASN: is required (or set \
                     dynamicASN to internal or external)",
                    "t.yaml (document 5): BGPPeer/r1: spec.peerAddress: \"x\": not an IP \
                     address",
                    "t.yaml (document 5): BGPPeer/r1: spec.holdTime: \"1s\": must be 0 or at \
                     least 3s",
                    "t.yaml (document 5): BGPPeer/r1: spec.vrf: \"blue\": VRFs are not \
                     supported by ironlb",
                    "t.yaml (document 6): Community/c: spec.communities[0].value: \"v\" is not \
                     a community value: expected a:b (16-bit numbers) or large:a:b:c (32-bit \
                     numbers)",
                    "t.yaml (document 7): BFDProfile/f: spec.echoInterval: 5: must be between \
                     10 and 60000 (milliseconds)",
                ],
            ),
        ]
    }

    /// Loads and validates a case's text, giving every error as displayed.
    fn outcome(yaml: &str) -> Result<Config, Vec<String>> {
        let loaded = Documents::from_str(yaml, "t.yaml");
        let mut errors: Vec<ConfigError> = loaded.errors;
        let result = validate(&loaded.documents);
        if let Err(more) = &result {
            errors.extend(more.iter().cloned());
        }
        errors.sort_by(|a, b| a.origin.cmp(&b.origin));
        if errors.is_empty() {
            result.map_err(|_| Vec::new())
        } else {
            Err(errors.iter().map(|e| e.to_string()).collect())
        }
    }

    #[test]
    fn validation_table() {
        let cases: Vec<Case> = valid_cases().into_iter().chain(error_cases()).collect();
        assert!(cases.len() >= 70, "{} cases", cases.len());
        let mut failures = Vec::new();
        for case in &cases {
            match (&case.expect, outcome(&case.yaml)) {
                (Expect::Valid(check), Ok(config)) => {
                    let checked = std::panic::catch_unwind(|| check(&config));
                    if checked.is_err() {
                        failures.push(format!("{}: the checks failed", case.name));
                    }
                }
                (Expect::Valid(_), Err(got)) => {
                    failures.push(format!(
                        "{}: expected valid, got:\n  {}",
                        case.name,
                        got.join("\n  ")
                    ));
                }
                (Expect::Errors(want), Ok(_)) => {
                    failures.push(format!(
                        "{}: expected {} errors, got none",
                        case.name,
                        want.len()
                    ));
                }
                (Expect::Errors(want), Err(got)) => {
                    if *want != got {
                        failures.push(format!(
                            "{}:\n want:\n  {}\n got:\n  {}",
                            case.name,
                            want.join("\n  "),
                            got.join("\n  ")
                        ));
                    }
                }
            }
        }
        assert!(
            failures.is_empty(),
            "{} of {} cases failed:\n{}",
            failures.len(),
            cases.len(),
            failures.join("\n")
        );
    }

    #[test]
    fn validated_pool_specs_feed_the_allocator_in_name_order() {
        let yaml = stream(&[
            pool("zeta", "{addresses: [203.0.113.0/24]}"),
            pool(
                "alpha",
                "{addresses: [198.51.100.0/24], serviceAllocation: {priority: 1}}",
            ),
        ]);
        let config = outcome(&yaml).unwrap();
        let names: Vec<String> = config
            .pool_specs()
            .iter()
            .map(|p| p.name.to_string())
            .collect();
        assert_eq!(names, ["alpha", "zeta"]);
    }

    #[test]
    fn configs_survive_serialization() {
        let yaml = stream(&[
            public(),
            l2("l2", "{interfaces: [eth0]}"),
            bgp("b", "{communities: ['64500:1']}"),
            peer_with("r1", "password: s3cret"),
            bfd("f", "{}"),
        ]);
        let config = outcome(&yaml).unwrap();
        let json = serde_json::to_string(&config).unwrap();
        assert_eq!(serde_json::from_str::<Config>(&json).unwrap(), config);
    }

    #[test]
    fn hold_time_rules() {
        assert_eq!(hold_time_problem(Duration::ZERO), None);
        assert_eq!(hold_time_problem(secs(3)), None);
        assert_eq!(hold_time_problem(secs(65535)), None);
        assert!(hold_time_problem(Duration::from_millis(2999)).is_some());
        assert!(hold_time_problem(Duration::from_millis(1)).is_some());
        assert!(hold_time_problem(secs(65536)).is_some());
        assert!(hold_time_problem(Duration::from_millis(3001)).is_some());
    }

    #[test]
    fn label_syntax() {
        for key in ["app", "kubernetes.io/hostname", "a_b.c-d", "x/Y"] {
            assert_eq!(check_label_key(key), Ok(()), "{key}");
        }
        for key in ["", "/a", "a/", "A.com/x", "-a", "a b", &"k".repeat(64)] {
            assert!(check_label_key(key).is_err(), "{key}");
        }
        for value in ["", "v", "V_1.x-2", &"v".repeat(63)] {
            assert_eq!(check_label_value(value), Ok(()), "{value}");
        }
        for value in ["-v", "v-", "a b", &"v".repeat(64)] {
            assert!(check_label_value(value).is_err(), "{value}");
        }
    }
}
