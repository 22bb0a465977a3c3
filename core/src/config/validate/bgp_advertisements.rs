//! Checks BGPAdvertisement objects: aggregation lengths and communities.

use super::selectors::TargetFields;
use super::*;

impl Validator {
    pub(super) fn bgp_advertisements(
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
            // Checked even when it does not own its name (a duplicate or a wrong one): its other
            // errors are reported too.
            let advertisement =
                self.bgp_advertisement(object, pool_names, peer_names, entries, aliases);
            if let (true, Some(advertisement)) = (*owns, advertisement) {
                out.insert(advertisement.name.clone(), advertisement);
            }
        }
        out.into_values().collect()
    }

    /// Checks one BGPAdvertisement; `None` when it has errors.
    fn bgp_advertisement(
        &mut self,
        object: &Sourced<Object<BGPAdvertisementSpec>>,
        pool_names: &Names<'_>,
        peer_names: &Names<'_>,
        entries: &PoolEntries<'_>,
        aliases: &BTreeMap<&str, Option<Community>>,
    ) -> Option<BgpAdvertisement> {
        let ctx = Ctx::of(object);
        let spec = &object.object.spec;
        let spec_path = FieldPath::root("spec");
        let length_v4 =
            self.aggregation_length(ctx, "aggregationLength", spec.aggregation_length, 32);
        let length_v6 =
            self.aggregation_length(ctx, "aggregationLengthV6", spec.aggregation_length_v6, 128);
        let fields = TargetFields {
            pools: &spec.ip_address_pools,
            pool_selectors: &spec.ip_address_pool_selectors,
            service_selectors: &spec.service_selectors,
            node_selectors: &spec.node_selectors,
        };
        let targets = self.targets(ctx, fields, &pool_names.all);
        let peers = self.refs(
            ctx,
            &spec.peers,
            &spec_path.field("peers"),
            &peer_names.all,
            BGPPeerSpec::KIND,
            PeerName::new,
        );
        let communities = self.advertised_communities(ctx, &spec.communities, aliases);
        let lengths_ok =
            spec.service_selectors.is_empty() || self.host_routes_only(ctx, length_v4, length_v6);
        let selection = targets.pools?;
        let aggregation_ok = self.aggregation(ctx, &selection, entries, length_v4, length_v6);
        if !aggregation_ok || !lengths_ok {
            return None;
        }
        Some(BgpAdvertisement {
            name: ctx.name.to_owned(),
            pools: selection,
            service_selectors: targets.services?,
            aggregation_length: length_v4?,
            aggregation_length_v6: length_v6?,
            local_pref: spec.local_pref,
            communities: communities?,
            node_selectors: targets.nodes?,
            peers: peers?,
        })
    }

    /// An aggregation length field: from 1 to the family's bit count, which is also the default.
    fn aggregation_length(
        &mut self,
        ctx: Ctx<'_>,
        field: &str,
        value: Option<i32>,
        max: u8,
    ) -> Option<u8> {
        match value {
            None => Some(max),
            Some(n) => match u8::try_from(n) {
                Ok(n) if (1..=max).contains(&n) => Some(n),
                _ => {
                    let message = format!("{n}: must be between 1 and {max}");
                    self.error(ctx, FieldPath::root("spec").field(field), message);
                    None
                }
            },
        }
    }

    /// With serviceSelectors, the aggregation lengths must be the defaults (32 and 128), as in
    /// MetalLB: a route that aggregates addresses cannot follow the Services holding them.
    /// Lengths out of range (`None`) are reported already.
    fn host_routes_only(
        &mut self,
        ctx: Ctx<'_>,
        length_v4: Option<u8>,
        length_v6: Option<u8>,
    ) -> bool {
        let mut ok = true;
        for (field, length, max) in [
            ("aggregationLength", length_v4, 32),
            ("aggregationLengthV6", length_v6, 128),
        ] {
            if let Some(n) = length.filter(|&n| n != max) {
                let message = format!(
                    "{n}: must be {max} (the default) with serviceSelectors: a route aggregating \
                     addresses cannot follow the Services holding them"
                );
                self.error(ctx, FieldPath::root("spec").field(field), message);
                ok = false;
            }
        }
        ok
    }

    /// Checks that the aggregation lengths cover no address outside the pools announced: each
    /// must be at least the prefix length of the widest CIDR of every entry of its family.
    pub(super) fn aggregation(
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
    pub(super) fn advertised_communities(
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
}
