//! Checks BGPPeer objects: addresses, ASNs, timers, passwords.

use std::net::Ipv4Addr;

use super::*;

impl Validator {
    pub(super) fn peers(
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

    pub(super) fn peer(
        &mut self,
        ctx: Ctx<'_>,
        spec: &BGPPeerSpec,
        bfd_names: &BTreeSet<&str>,
    ) -> Option<Peer> {
        let path = FieldPath::root("spec");
        let errors_before = self.errors.len();

        let (my_asn, peer_asn) = self.peer_asns(ctx, spec);
        let (peer_address, source_address) = self.peer_addresses(ctx, spec);
        let peer_port = self.peer_port(ctx, spec);
        let timers = self.timers(ctx, spec);
        let connect_time = self.connect_time(ctx, spec);
        let router_id = self.router_id(ctx, spec);
        let node_selectors =
            self.selectors(ctx, &spec.node_selectors, &path.field("nodeSelectors"));
        let (password, password_secret) = self.passwords(ctx, spec);
        let bfd_profile = self.bfd_profile(ctx, spec, bfd_names);
        self.check_ebgp_multi_hop(ctx, spec, my_asn, peer_asn);
        let vrf = self.vrf(ctx, spec);
        self.check_families(ctx, spec);

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
            bfd_profile: PeerBfd::named(bfd_profile.map(str::to_owned)),
            ebgp_multi_hop: spec.ebgp_multi_hop,
            graceful_restart: spec.enable_graceful_restart,
            transport: PeerTransport {
                disable_mp: spec.disable_mp,
                dual_stack_address_family: spec.dual_stack_address_family,
                vrf,
            },
        })
    }

    /// `vrf`: the name of a VRF device, so an interface name; `None` when unset or wrong.
    /// Whether the device exists is known only on each node, when the session connects.
    fn vrf(&mut self, ctx: Ctx<'_>, spec: &BGPPeerSpec) -> Option<InterfaceName> {
        let text = spec.vrf.as_deref().filter(|s| !s.is_empty())?;
        match InterfaceName::new(text) {
            Ok(name) => Some(name),
            Err(e) => {
                self.error(ctx, FieldPath::root("spec").field("vrf"), e.to_string());
                None
            }
        }
    }

    /// `disableMP` asks for the family of peerAddress alone, `dualStackAddressFamily` for both
    /// families on the session: together they contradict each other. MetalLB (0.15 on) lets
    /// dualStackAddressFamily win silently; a silent choice between two stated wishes hides a
    /// mistake, so ironlb refuses the pair.
    fn check_families(&mut self, ctx: Ctx<'_>, spec: &BGPPeerSpec) {
        if spec.disable_mp && spec.dual_stack_address_family {
            let message = "must not be true together with dualStackAddressFamily (disableMP \
                           carries only the family of peerAddress, dualStackAddressFamily both)";
            self.error(ctx, FieldPath::root("spec").field("disableMP"), message);
        }
    }

    /// Checks an ASN field: 1 to 4294967295.
    fn asn(&mut self, ctx: Ctx<'_>, field: &str, value: i64) -> Option<u32> {
        match u32::try_from(value) {
            Ok(asn) if asn >= 1 => Some(asn),
            _ => {
                let message = format!("{value}: ASN out of range (1-4294967295)");
                self.error(ctx, FieldPath::root("spec").field(field), message);
                None
            }
        }
    }

    /// `myASN` and the peer's ASN, given either as `peerASN` or as `dynamicASN` (not both).
    fn peer_asns(&mut self, ctx: Ctx<'_>, spec: &BGPPeerSpec) -> (Option<u32>, Option<PeerAsn>) {
        let path = FieldPath::root("spec");
        let my_asn = match spec.my_asn {
            None => {
                self.error(ctx, path.field("myASN"), "is required");
                None
            }
            Some(n) => self.asn(ctx, "myASN", n),
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
            .and_then(|n| self.asn(ctx, "peerASN", n))
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
        (my_asn, peer_asn)
    }

    /// The peer's address and the optional source address, which must be of the same family;
    /// `interface` (BGP unnumbered) is refused.
    fn peer_addresses(
        &mut self,
        ctx: Ctx<'_>,
        spec: &BGPPeerSpec,
    ) -> (Option<IpAddr>, Option<IpAddr>) {
        let path = FieldPath::root("spec");
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
        (peer_address, source_address)
    }

    /// `peerPort`, 179 when unset.
    fn peer_port(&mut self, ctx: Ctx<'_>, spec: &BGPPeerSpec) -> Option<u16> {
        match spec.peer_port {
            None => Some(Peer::DEFAULT_PORT),
            Some(n) => match u16::try_from(n) {
                Ok(port) if port >= 1 => Some(port),
                _ => {
                    let message = format!("{n}: must be between 1 and 65535");
                    self.error(ctx, FieldPath::root("spec").field("peerPort"), message);
                    None
                }
            },
        }
    }

    /// `connectTime`: whole seconds from 1s to 65535s, the default when unset.
    fn connect_time(&mut self, ctx: Ctx<'_>, spec: &BGPPeerSpec) -> Option<Duration> {
        let path = FieldPath::root("spec");
        match spec.connect_time.as_deref() {
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
        }
    }

    /// `routerID`, an IPv4 address; `None` when unset or wrong.
    fn router_id(&mut self, ctx: Ctx<'_>, spec: &BGPPeerSpec) -> Option<Ipv4Addr> {
        let router_id = spec.router_id.as_deref().filter(|s| !s.is_empty());
        match router_id.map(|text| (text, text.parse::<IpAddr>())) {
            None => None,
            Some((_, Ok(IpAddr::V4(id)))) => Some(id),
            Some((text, _)) => {
                let message = format!("{text:?}: must be an IPv4 address");
                self.error(ctx, FieldPath::root("spec").field("routerID"), message);
                None
            }
        }
    }

    /// The TCP MD5 password, given inline or as a Secret reference (not both).
    fn passwords<'s>(
        &mut self,
        ctx: Ctx<'_>,
        spec: &'s BGPPeerSpec,
    ) -> (Option<&'s str>, Option<SecretRef>) {
        let path = FieldPath::root("spec");
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
        (password, password_secret)
    }

    /// `bfdProfile`, which must name a BFDProfile.
    fn bfd_profile<'s>(
        &mut self,
        ctx: Ctx<'_>,
        spec: &'s BGPPeerSpec,
        bfd_names: &BTreeSet<&str>,
    ) -> Option<&'s str> {
        let bfd_profile = spec.bfd_profile.as_deref().filter(|s| !s.is_empty());
        if let Some(profile) = bfd_profile {
            if !bfd_names.contains(profile) {
                let message = format!("{profile:?}: no BFDProfile has this name");
                self.error(ctx, FieldPath::root("spec").field("bfdProfile"), message);
            }
        }
        bfd_profile
    }

    /// Refuses `ebgpMultiHop` on a peer known to be iBGP.
    fn check_ebgp_multi_hop(
        &mut self,
        ctx: Ctx<'_>,
        spec: &BGPPeerSpec,
        my_asn: Option<u32>,
        peer_asn: Option<PeerAsn>,
    ) {
        if !spec.ebgp_multi_hop {
            return;
        }
        let why = match (my_asn, peer_asn) {
            (Some(my), Some(PeerAsn::Exact(peer))) if my == peer => Some("peerASN equals myASN"),
            (_, Some(PeerAsn::Internal)) => Some("dynamicASN is internal"),
            _ => None,
        };
        if let Some(why) = why {
            let message = format!("must not be set for an iBGP peer ({why})");
            self.error(ctx, FieldPath::root("spec").field("ebgpMultiHop"), message);
        }
    }

    /// The hold and keepalive times, with MetalLB's defaults: 90s and a third of the hold
    /// time, or three times the keepalive time when only that is given.
    pub(super) fn timers(
        &mut self,
        ctx: Ctx<'_>,
        spec: &BGPPeerSpec,
    ) -> Option<(Duration, Duration)> {
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
    pub(super) fn secret_ref(
        &mut self,
        ctx: Ctx<'_>,
        spec: &SecretReferenceSpec,
    ) -> Option<SecretRef> {
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
}

/// What is wrong with a hold time, if anything: it must be zero (keepalives off) or whole
/// seconds from 3s (RFC 4271) to 65535s (what the OPEN message can carry). Sub-second values,
/// which MetalLB rounds to zero, are refused too: zero is better said as zero.
pub(super) fn hold_time_problem(hold: Duration) -> Option<&'static str> {
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
