//! [`PeerBfd`]: a BGPPeer's `bfdProfile`, and the profile it names once the controller has
//! looked it up for a speaker (speakers do not hold the BFDProfiles), stored so that a peer
//! whose profile is not attached keeps every byte the first release gave it.
//!
//! The first release had `bfd_profile: Option<String>` here. In bincode (Raft RPCs, the speaker
//! channel) an Option is a tag byte, 0 or 1, like the index of an enum's first two variants,
//! so `Name(None)` and `Name(Some)` read the same in old and new members; `Attached` (index 2)
//! is refused by an older member instead of being misread (see `peer_transport`). In JSON
//! (records on disk, the admin API): `null` or the name, as before, or an object once the
//! profile is attached; the configuration as committed never has it attached.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::BfdProfile;
use crate::net::bfd::{BfdSettings, Hop, SessionConfig as BfdSessionConfig};

impl BfdProfile {
    /// The settings of this profile for a peer that is `multihop` away. MetalLB (through
    /// FRR, whose bgpd does the same for eBGP) runs multihop BFD for `ebgpMultiHop` peers and
    /// single hop for the rest. `echoMode` and `echoInterval` are accepted and not used:
    /// ironlb has no Echo function and announces a Required Min Echo RX of zero, which tells
    /// the peer to send none (RFC 5880 section 6.8.3).
    pub fn settings(&self, multihop: bool) -> BfdSettings {
        BfdSettings {
            config: BfdSessionConfig {
                desired_min_tx: self.transmit_interval,
                required_min_rx: self.receive_interval,
                detect_mult: self.detect_multiplier.max(1),
                passive: self.passive_mode,
            },
            hop: if multihop {
                Hop::Multi {
                    minimum_ttl: self.minimum_ttl,
                }
            } else {
                Hop::Single
            },
        }
    }
}

/// `bfdProfile`: the name, and the profile when attached for a speaker.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PeerBfd {
    /// The BFDProfile's name; `None`: no BFD.
    pub name: Option<String>,
    /// The profile, attached by the controller for the speakers.
    pub profile: Option<BfdProfile>,
}

impl PeerBfd {
    /// The name alone.
    pub fn named(name: Option<String>) -> Self {
        PeerBfd {
            name,
            profile: None,
        }
    }

    /// The name, as a `&str`.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }
}

/// The name and the profile it names.
#[derive(Serialize, Deserialize)]
struct Attached {
    name: String,
    profile: BfdProfile,
}

/// The binary form: variants 0 and 1 are the first release's `None` and `Some(name)`.
#[derive(Serialize, Deserialize)]
enum Binary {
    None,
    Name(String),
    Attached(Attached),
}

/// The text form: the first release's optional name, or both by name.
#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum Text {
    Attached(Attached),
    Name(Option<String>),
}

impl Serialize for PeerBfd {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let attached = match (&self.name, &self.profile) {
            (Some(name), Some(profile)) => Some(Attached {
                name: name.clone(),
                profile: profile.clone(),
            }),
            _ => None,
        };
        match (s.is_human_readable(), attached) {
            (true, Some(a)) => Text::Attached(a).serialize(s),
            (true, None) => Text::Name(self.name.clone()).serialize(s),
            (false, Some(a)) => Binary::Attached(a).serialize(s),
            (false, None) => match &self.name {
                None => Binary::None.serialize(s),
                Some(n) => Binary::Name(n.clone()).serialize(s),
            },
        }
    }
}

impl<'de> Deserialize<'de> for PeerBfd {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let attached = |a: Attached| PeerBfd {
            name: Some(a.name),
            profile: Some(a.profile),
        };
        if d.is_human_readable() {
            Ok(match Text::deserialize(d)? {
                Text::Attached(a) => attached(a),
                Text::Name(n) => PeerBfd::named(n),
            })
        } else {
            Ok(match Binary::deserialize(d)? {
                Binary::None => PeerBfd::named(None),
                Binary::Name(n) => PeerBfd::named(Some(n)),
                Binary::Attached(a) => attached(a),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_profile_maps_to_its_timers_and_hop() {
        let profile = BfdProfile {
            receive_interval: Duration::from_millis(150),
            transmit_interval: Duration::from_millis(100),
            detect_multiplier: 5,
            minimum_ttl: 250,
            passive_mode: true,
            echo_mode: true,
            ..BfdProfile::default()
        };
        let single = profile.settings(false);
        assert_eq!(single.hop, Hop::Single);
        assert_eq!(
            single.config,
            BfdSessionConfig {
                desired_min_tx: Duration::from_millis(100),
                required_min_rx: Duration::from_millis(150),
                detect_mult: 5,
                passive: true,
            }
        );
        let multi = profile.settings(true);
        assert_eq!(multi.hop, Hop::Multi { minimum_ttl: 250 });
        assert_eq!(multi.config, single.config);
    }

    #[test]
    fn the_default_profile_is_the_state_machines_default() {
        let s = BfdProfile::default().settings(false);
        assert_eq!(s.config, BfdSessionConfig::default());
    }

    fn bin<T: Serialize>(v: &T) -> Vec<u8> {
        bincode::serde::encode_to_vec(v, bincode::config::standard()).unwrap()
    }

    fn unbin<T: serde::de::DeserializeOwned>(b: &[u8]) -> Result<T, String> {
        bincode::serde::decode_from_slice::<T, _>(b, bincode::config::standard())
            .map(|(v, _)| v)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn without_a_profile_the_bytes_are_the_first_releases_option() {
        for name in [None, Some("fast".to_string())] {
            let b = PeerBfd::named(name.clone());
            assert_eq!(bin(&(b.clone(), 7u8)), bin(&(name.clone(), 7u8)));
            assert_eq!(
                unbin::<(PeerBfd, u8)>(&bin(&(name.clone(), 7u8))),
                Ok((b.clone(), 7))
            );
            let json = serde_json::to_string(&b).unwrap();
            assert_eq!(json, serde_json::to_string(&name).unwrap());
            assert_eq!(serde_json::from_str::<PeerBfd>(&json).unwrap(), b);
        }
    }

    #[test]
    fn an_attached_profile_round_trips_and_an_older_reader_refuses_it() {
        let b = PeerBfd {
            name: Some("fast".into()),
            profile: Some(BfdProfile::default()),
        };
        let bytes = bin(&(b.clone(), 7u8));
        assert_eq!(unbin::<(PeerBfd, u8)>(&bytes), Ok((b.clone(), 7)));
        assert!(unbin::<(Option<String>, u8)>(&bytes).is_err());
        let json = serde_json::to_string(&b).unwrap();
        assert_eq!(serde_json::from_str::<PeerBfd>(&json).unwrap(), b);
    }
}
