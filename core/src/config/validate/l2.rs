//! Checks L2Advertisement objects and their interfaces.

use super::selectors::TargetFields;
use super::*;

impl Validator {
    pub(super) fn l2_advertisements(
        &mut self,
        objects: &[Sourced<Object<L2AdvertisementSpec>>],
        names: &Names<'_>,
        pool_names: &Names<'_>,
    ) -> Vec<L2Advertisement> {
        let mut out = BTreeMap::new();
        for (object, owns) in objects.iter().zip(&names.owns) {
            let ctx = Ctx::of(object);
            let spec = &object.object.spec;
            let fields = TargetFields {
                pools: &spec.ip_address_pools,
                pool_selectors: &spec.ip_address_pool_selectors,
                service_selectors: &spec.service_selectors,
                node_selectors: &spec.node_selectors,
            };
            let targets = self.targets(ctx, fields, &pool_names.all);
            let interfaces = self.interfaces(ctx, &spec.interfaces);
            if let (
                true,
                Some(pools),
                Some(service_selectors),
                Some(node_selectors),
                Some(interfaces),
            ) = (
                *owns,
                targets.pools,
                targets.services,
                targets.nodes,
                interfaces,
            ) {
                out.insert(
                    ctx.name.to_owned(),
                    L2Advertisement {
                        name: ctx.name.to_owned(),
                        pools,
                        service_selectors,
                        node_selectors,
                        interfaces,
                    },
                );
            }
        }
        out.into_values().collect()
    }

    pub(super) fn interfaces(
        &mut self,
        ctx: Ctx<'_>,
        list: &[String],
    ) -> Option<Vec<InterfaceName>> {
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
}
