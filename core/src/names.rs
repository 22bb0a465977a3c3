//! Names that carry meaning: a Service's key, a pool's name, a node's name.
//!
//! Each is parsed once at the edge (config files, the Kubernetes API, the admin API) and is
//! valid from then on, so the rest of the code never re-checks a bare string.
//!
//! A name is held in a shared string: the allocator's indexes and the leader's views copy a
//! Service's key or a pool's name once per address, and a copy then costs a reference count, not
//! a heap block. Object names (a namespace, a pool, a node, a peer) are also interned: a member
//! keeps a Service key per allocation, and its namespace is the same in thousands of them.

use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, LazyLock};

use serde::{Deserialize, Serialize};

use crate::intern::Interner;

/// Why a string is not a valid name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// The string is empty.
    #[error("must not be empty")]
    Empty,
    /// The string is longer than Kubernetes allows.
    #[error("must be at most {max} characters, not {len}")]
    TooLong {
        /// The limit.
        max: usize,
        /// The length found.
        len: usize,
    },
    /// The string has a character Kubernetes object names may not hold.
    #[error("{0:?} is not a valid name: use lower-case letters, digits, '-' and '.', starting and ending with a letter or digit")]
    Invalid(String),
    /// A service key lacks its `namespace/` part.
    #[error("{0:?} is not a service key: expected namespace/name")]
    NotAKey(String),
}

/// Checks a Kubernetes object name (RFC 1123 subdomain: what metadata.name accepts).
fn check_subdomain(s: &str) -> Result<(), NameError> {
    const MAX: usize = 253;
    if s.is_empty() {
        return Err(NameError::Empty);
    }
    if s.len() > MAX {
        return Err(NameError::TooLong {
            max: MAX,
            len: s.len(),
        });
    }
    let ok_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.';
    let alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    let first_last_ok = s.starts_with(alnum) && s.ends_with(alnum);
    if !s.chars().all(ok_char) || !first_last_ok {
        return Err(NameError::Invalid(s.to_owned()));
    }
    Ok(())
}

/// The object names in use in this process, each held once.
static NAMES: LazyLock<Interner<str>> = LazyLock::new(Interner::new);

macro_rules! object_name {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(Arc<str>);

        impl $name {
            /// Parses a name, refusing what Kubernetes would refuse as metadata.name.
            pub fn new(s: impl Into<String>) -> Result<Self, NameError> {
                let s = s.into();
                check_subdomain(&s)?;
                Ok(Self(NAMES.intern(Arc::from(s))))
            }

            /// The name as a string.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl FromStr for $name {
            type Err = NameError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::new(s)
            }
        }

        impl TryFrom<String> for $name {
            type Error = NameError;
            fn try_from(s: String) -> Result<Self, Self::Error> {
                Self::new(s)
            }
        }

        impl From<$name> for String {
            fn from(n: $name) -> String {
                n.0.to_string()
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

object_name!(
    /// The name of an IPAddressPool.
    PoolName
);
object_name!(
    /// The name of a Kubernetes Node (or a standalone host).
    NodeName
);
object_name!(
    /// The name of a BGPPeer.
    PeerName
);
object_name!(
    /// The name of a Kubernetes Namespace.
    Namespace
);

/// The namespace and name of a Service: what an allocation belongs to.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ServiceKey {
    namespace: Namespace,
    name: Arc<str>,
}

impl ServiceKey {
    /// A key from a namespace and a Service name (an RFC 1035 label in Kubernetes; checked loosely
    /// here as a subdomain, since the API server has already enforced the strict form).
    pub fn new(namespace: &str, name: &str) -> Result<Self, NameError> {
        let namespace = Namespace::new(namespace)?;
        check_subdomain(name)?;
        Ok(Self {
            namespace,
            name: Arc::from(name),
        })
    }

    /// The Service's namespace.
    pub fn namespace(&self) -> &Namespace {
        &self.namespace
    }

    /// The Service's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

impl FromStr for ServiceKey {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (ns, name) = s
            .split_once('/')
            .ok_or_else(|| NameError::NotAKey(s.to_owned()))?;
        Self::new(ns, name)
    }
}

impl TryFrom<String> for ServiceKey {
    type Error = NameError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<ServiceKey> for String {
    fn from(k: ServiceKey) -> String {
        k.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_names_follow_kubernetes_rules() {
        assert!(PoolName::new("public-v4").is_ok());
        assert!(PoolName::new("a.b").is_ok());
        assert_eq!(PoolName::new(""), Err(NameError::Empty));
        assert!(matches!(
            PoolName::new("Public"),
            Err(NameError::Invalid(_))
        ));
        assert!(matches!(PoolName::new("-a"), Err(NameError::Invalid(_))));
        assert!(matches!(PoolName::new("a_b"), Err(NameError::Invalid(_))));
        assert!(matches!(
            PoolName::new("x".repeat(254)),
            Err(NameError::TooLong { .. })
        ));
    }

    #[test]
    fn service_keys_round_trip_through_strings() {
        let k: ServiceKey = "default/web".parse().unwrap();
        assert_eq!(k.namespace().as_str(), "default");
        assert_eq!(k.name(), "web");
        assert_eq!(k.to_string(), "default/web");
        let json = serde_json::to_string(&k).unwrap();
        assert_eq!(json, "\"default/web\"");
        assert_eq!(serde_json::from_str::<ServiceKey>(&json).unwrap(), k);
        assert!(matches!(
            "web".parse::<ServiceKey>(),
            Err(NameError::NotAKey(_))
        ));
        assert!("default/".parse::<ServiceKey>().is_err());
    }
}
