//! [`PeerTransport`]: the BGPPeer options added after the first release (the families a
//! session carries, its VRF), stored so that a peer which does not use them keeps every byte
//! it had.
//!
//! A [`super::Peer`] travels as positional bincode (Raft RPCs, the speaker channel) and as JSON
//! by field name (records on disk, the admin API). The first release ended a peer with
//! `disable_mp: bool`; this type takes its place:
//! - bincode: a bool is one byte, 0 or 1, and so is the index of an enum's first two variants,
//!   so `Off` and `On` read the same in old and new members; `Options` (index 2) is refused by
//!   an older member ("invalid boolean value") instead of being misread, as appended variants
//!   are elsewhere (`announce::proto`).
//! - JSON: `false` or `true` as before, an object by field name once a newer option is set.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::InterfaceName;

/// How a BGP session's transport is set up and which address families it carries.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PeerTransport {
    /// `disableMP`: only the family of the peer's address, which is the default anyway
    /// (MetalLB 0.15 deprecated it); kept to show the configuration as written.
    pub disable_mp: bool,
    /// `dualStackAddressFamily`: IPv4 and IPv6 routes on this one session.
    pub dual_stack_address_family: bool,
    /// The VRF device the session's socket is bound to.
    pub vrf: Option<InterfaceName>,
}

/// Every option by name: the form once a newer one is set.
#[derive(Serialize, Deserialize)]
struct Options {
    #[serde(default)]
    disable_mp: bool,
    #[serde(default)]
    dual_stack_address_family: bool,
    #[serde(default)]
    vrf: Option<InterfaceName>,
}

/// The binary form: variants 0 and 1 are the first release's `false` and `true`.
#[derive(Serialize, Deserialize)]
enum Binary {
    Off,
    On,
    Options(Options),
}

/// The text form: the first release's bool, or the options by name.
#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum Text {
    Flag(bool),
    Options(Options),
}

impl PeerTransport {
    /// `disableMP` alone, when no newer option is set: what the first release could say.
    fn as_flag(&self) -> Option<bool> {
        (!self.dual_stack_address_family && self.vrf.is_none()).then_some(self.disable_mp)
    }

    fn options(&self) -> Options {
        Options {
            disable_mp: self.disable_mp,
            dual_stack_address_family: self.dual_stack_address_family,
            vrf: self.vrf.clone(),
        }
    }

    fn from_flag(disable_mp: bool) -> Self {
        PeerTransport {
            disable_mp,
            ..PeerTransport::default()
        }
    }
}

impl From<Options> for PeerTransport {
    fn from(o: Options) -> Self {
        PeerTransport {
            disable_mp: o.disable_mp,
            dual_stack_address_family: o.dual_stack_address_family,
            vrf: o.vrf,
        }
    }
}

impl Serialize for PeerTransport {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match (s.is_human_readable(), self.as_flag()) {
            (true, Some(flag)) => Text::Flag(flag).serialize(s),
            (true, None) => Text::Options(self.options()).serialize(s),
            (false, Some(false)) => Binary::Off.serialize(s),
            (false, Some(true)) => Binary::On.serialize(s),
            (false, None) => Binary::Options(self.options()).serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for PeerTransport {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if d.is_human_readable() {
            Ok(match Text::deserialize(d)? {
                Text::Flag(flag) => PeerTransport::from_flag(flag),
                Text::Options(o) => o.into(),
            })
        } else {
            Ok(match Binary::deserialize(d)? {
                Binary::Off => PeerTransport::from_flag(false),
                Binary::On => PeerTransport::from_flag(true),
                Binary::Options(o) => o.into(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bin<T: Serialize>(v: &T) -> Vec<u8> {
        bincode::serde::encode_to_vec(v, bincode::config::standard()).unwrap()
    }

    fn unbin<T: serde::de::DeserializeOwned>(b: &[u8]) -> Result<T, String> {
        bincode::serde::decode_from_slice::<T, _>(b, bincode::config::standard())
            .map(|(v, _)| v)
            .map_err(|e| e.to_string())
    }

    fn with_options() -> PeerTransport {
        PeerTransport {
            disable_mp: false,
            dual_stack_address_family: true,
            vrf: Some(InterfaceName::new("vrf-blue").unwrap()),
        }
    }

    #[test]
    fn without_newer_options_the_bytes_are_the_first_releases_bool() {
        for flag in [false, true] {
            let t = PeerTransport::from_flag(flag);
            // Followed by another field, as in a peer inside a message.
            assert_eq!(bin(&(t.clone(), 7u8)), bin(&(flag, 7u8)));
            assert_eq!(
                unbin::<(PeerTransport, u8)>(&bin(&(flag, 7u8))),
                Ok((t.clone(), 7))
            );
            assert_eq!(serde_json::to_string(&t).unwrap(), flag.to_string());
            assert_eq!(
                serde_json::from_str::<PeerTransport>(&flag.to_string()).unwrap(),
                t
            );
        }
    }

    #[test]
    fn newer_options_round_trip_and_an_older_reader_refuses_them() {
        let t = with_options();
        let bytes = bin(&(t.clone(), 7u8));
        assert_eq!(unbin::<(PeerTransport, u8)>(&bytes), Ok((t.clone(), 7)));
        let old = unbin::<(bool, u8)>(&bytes).unwrap_err();
        assert!(old.contains("2"), "{old}");
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(
            json,
            r#"{"disable_mp":false,"dual_stack_address_family":true,"vrf":"vrf-blue"}"#
        );
        assert_eq!(serde_json::from_str::<PeerTransport>(&json).unwrap(), t);
        assert!(serde_json::from_str::<bool>(&json).is_err());
    }
}
