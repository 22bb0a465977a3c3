//! Checks BFDProfile objects.

use super::*;

impl Validator {
    pub(super) fn bfd_profiles(
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
}
