//! Checks label selectors, as every kind that selects nodes, namespaces or Services uses them.

use super::*;

/// What an advertisement of either kind selects, each part `None` when its fields had errors
/// (already reported).
pub(super) struct Targets {
    /// The pools, by `ipAddressPools` and `ipAddressPoolSelectors`.
    pub pools: Option<PoolSelection>,
    /// `serviceSelectors`.
    pub services: Option<Vec<Selector>>,
    /// `nodeSelectors`.
    pub nodes: Option<Vec<Selector>>,
}

/// The selecting fields both advertisement kinds share.
pub(super) struct TargetFields<'a> {
    /// `spec.ipAddressPools`.
    pub pools: &'a [String],
    /// `spec.ipAddressPoolSelectors`.
    pub pool_selectors: &'a [LabelSelector],
    /// `spec.serviceSelectors`.
    pub service_selectors: &'a [LabelSelector],
    /// `spec.nodeSelectors`.
    pub node_selectors: &'a [LabelSelector],
}

impl Validator {
    /// Checks what an advertisement selects: pools among `pool_names`, Services and nodes.
    pub(super) fn targets(
        &mut self,
        ctx: Ctx<'_>,
        fields: TargetFields<'_>,
        pool_names: &BTreeSet<&str>,
    ) -> Targets {
        let spec = FieldPath::root("spec");
        let pools = self.pool_refs(ctx, fields.pools, pool_names);
        let path = spec.field("ipAddressPoolSelectors");
        let pool_selectors = self.selectors(ctx, fields.pool_selectors, &path);
        let path = spec.field("serviceSelectors");
        let services = self.selectors(ctx, fields.service_selectors, &path);
        let nodes = self.selectors(ctx, fields.node_selectors, &spec.field("nodeSelectors"));
        Targets {
            pools: pools
                .zip(pool_selectors)
                .map(|(p, s)| PoolSelection::new(p, s)),
            services,
            nodes,
        }
    }

    /// Parses a list of label selectors at `path`; `None` if any is wrong (all reported).
    pub(super) fn selectors(
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
    pub(super) fn selector(
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
}
