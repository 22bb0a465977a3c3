//! Checks Community objects: aliases for BGP communities.

use super::*;

impl Validator {
    /// Checks the Community objects; gives every alias defined, with its value if valid.
    pub(super) fn communities<'a>(
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
}
