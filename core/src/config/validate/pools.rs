//! Checks IPAddressPool objects: ranges, overlaps, and which Services each serves.

use super::*;

impl Validator {
    /// Checks the pools; gives the valid pools and every address entry that parsed, by pool.
    pub(super) fn pools<'a>(
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
    pub(super) fn overlaps(
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

    pub(super) fn service_allocation(
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
}
