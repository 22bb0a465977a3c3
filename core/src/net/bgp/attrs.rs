//! The path attributes ironlb sets on its routes: communities (RFC 1997, RFC 8092) and
//! LOCAL_PREF. The BGP code owns them; the configuration and the announcement plan use them.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A BGP community value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Community {
    /// A standard community (RFC 1997), `a:b`.
    Standard(u16, u16),
    /// A large community (RFC 8092), `large:a:b:c`.
    Large(u32, u32, u32),
}

/// Why a string is not a community value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CommunityError {
    /// Neither two nor four `:`-separated parts.
    #[error("{0:?} is not a community value: expected a:b (16-bit numbers) or large:a:b:c (32-bit numbers)")]
    Format(String),
    /// Four parts, but the first is not `large`.
    #[error("{0:?} is not a community value: a four-part community must start with \"large:\"")]
    Marker(String),
    /// A part is not a number of the right width.
    #[error("{community:?} is not a community value: {part:?} is not a {bits}-bit number")]
    Number {
        /// The whole value.
        community: String,
        /// The part at fault.
        part: String,
        /// 16 or 32.
        bits: u8,
    },
}

impl Community {
    /// The well-known communities by their names (RFC 1997, 7999, 8326, 3765).
    pub fn well_known(name: &str) -> Option<Community> {
        let low = match name {
            "graceful-shutdown" => 0,
            "blackhole" => 666,
            "no-export" => 0xff01,
            "no-advertise" => 0xff02,
            "no-export-subconfed" | "local-as" => 0xff03,
            "no-peer" => 0xff04,
            _ => return None,
        };
        Some(Community::Standard(0xffff, low))
    }
}

impl FromStr for Community {
    type Err = CommunityError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        // Decimal digits only: Rust's integer parsing would also take a leading '+'.
        fn number<T: FromStr>(s: &str, part: &str, bits: u8) -> Result<T, CommunityError> {
            let bad = || CommunityError::Number {
                community: s.to_owned(),
                part: part.to_owned(),
                bits,
            };
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            part.parse().map_err(|_| bad())
        }
        let parts: Vec<&str> = s.split(':').collect();
        match parts.as_slice() {
            [a, b] => Ok(Community::Standard(number(s, a, 16)?, number(s, b, 16)?)),
            ["large", a, b, c] => Ok(Community::Large(
                number(s, a, 32)?,
                number(s, b, 32)?,
                number(s, c, 32)?,
            )),
            [_, _, _, _] => Err(CommunityError::Marker(s.to_owned())),
            _ => Err(CommunityError::Format(s.to_owned())),
        }
    }
}

impl fmt::Display for Community {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Community::Standard(a, b) => write!(f, "{a}:{b}"),
            Community::Large(a, b, c) => write!(f, "large:{a}:{b}:{c}"),
        }
    }
}

impl TryFrom<String> for Community {
    type Error = CommunityError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Community> for String {
    fn from(c: Community) -> String {
        c.to_string()
    }
}

/// The attributes of one route to one peer.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RouteAttrs {
    /// LOCAL_PREF (sent to iBGP peers only).
    pub local_pref: Option<u32>,
    /// Standard and large communities, sorted, without repeats.
    pub communities: Vec<Community>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn communities_parse_and_print() {
        let c: Community = "65000:100".parse().unwrap();
        assert_eq!(c, Community::Standard(65000, 100));
        assert_eq!(c.to_string(), "65000:100");
        let c: Community = "large:4200000000:1:0".parse().unwrap();
        assert_eq!(c, Community::Large(4_200_000_000, 1, 0));
        assert_eq!(c.to_string(), "large:4200000000:1:0");
        assert_eq!(
            "65536:1".parse::<Community>().unwrap_err().to_string(),
            "\"65536:1\" is not a community value: \"65536\" is not a 16-bit number"
        );
        assert_eq!(
            "+1:1".parse::<Community>(),
            Err(CommunityError::Number {
                community: "+1:1".into(),
                part: "+1".into(),
                bits: 16
            })
        );
        assert!(matches!(
            "1:2:3".parse::<Community>(),
            Err(CommunityError::Format(_))
        ));
        assert!(matches!(
            "big:1:2:3".parse::<Community>(),
            Err(CommunityError::Marker(_))
        ));
        assert!(matches!(
            "large:1:2:4294967296".parse::<Community>(),
            Err(CommunityError::Number { bits: 32, .. })
        ));
        assert!(matches!(
            "".parse::<Community>(),
            Err(CommunityError::Format(_))
        ));
        let json = serde_json::to_string(&Community::Standard(1, 2)).unwrap();
        assert_eq!(json, "\"1:2\"");
    }
}
