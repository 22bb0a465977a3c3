//! Identities: a member (by its seat), a node's speaker (by node name) or an API client (by
//! name and role), written in certificates as one URI subject alternative name under
//! `spiffe://ironlb/`.

use std::fmt;
use std::str::FromStr;

use crate::names::NodeName;
use crate::raft::MemberId;

/// The scheme and trust domain every ironlb identity URI starts with.
pub const URI_PREFIX: &str = "spiffe://ironlb/";

/// How far apart the member ids of one seat are: a member that lost its volume rejoins as
/// `id + SEAT_STRIDE`, which its certificate (naming the seat) still covers.
pub const SEAT_STRIDE: u64 = 1 << 16;

/// A member's seat: the id it was first started with (a StatefulSet ordinal plus one). Every
/// Raft id the member ever holds is `seat + k * SEAT_STRIDE`, so a certificate issued for the
/// seat survives the loss of the member's volume without naming a Raft id that is gone.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MemberSeat(u64);

impl MemberSeat {
    /// The seat `n` (1 to `SEAT_STRIDE - 1`).
    pub fn new(n: u64) -> Result<Self, PrincipalError> {
        if n == 0 || n >= SEAT_STRIDE {
            return Err(PrincipalError::Seat(n));
        }
        Ok(MemberSeat(n))
    }

    /// The seat a Raft member id belongs to.
    pub fn of(id: MemberId) -> Option<Self> {
        match id {
            0 => None,
            id => Some(MemberSeat((id - 1) % SEAT_STRIDE + 1)),
        }
    }

    /// Whether `id` is one of this seat's member ids.
    pub fn holds(self, id: MemberId) -> bool {
        MemberSeat::of(id) == Some(self)
    }

    /// The seat's number.
    pub fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for MemberSeat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// What an API client may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// Status, pools, services, owners, explain: everything that changes nothing.
    Read,
    /// Everything `read` may, and configuration, allocation, release, reservations, members.
    Admin,
}

impl Role {
    /// The role's name in URIs, token files and errors.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Read => "read",
            Role::Admin => "admin",
        }
    }
}

impl FromStr for Role {
    type Err = PrincipalError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "read" => Ok(Role::Read),
            "admin" => Ok(Role::Admin),
            other => Err(PrincipalError::Role(other.to_owned())),
        }
    }
}

/// Who a certificate or a token says its holder is.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Principal {
    /// A controller member: may speak Raft (as one of its seat's ids) and use the admin API.
    Member(MemberSeat),
    /// The speaker of one node: may open a speaker session for that node only.
    Node(NodeName),
    /// A person or program using the admin API.
    Client {
        /// Who, for logs and audit.
        name: String,
        /// What they may do.
        role: Role,
    },
}

/// Why an identity could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PrincipalError {
    /// The certificate is not valid DER X.509.
    #[error("the certificate cannot be parsed: {0}")]
    Certificate(String),
    /// The certificate names no ironlb identity.
    #[error("the certificate has no subject alternative name URI starting with {URI_PREFIX}")]
    NoIdentity,
    /// The certificate names several, so which one it acts as would be ambiguous.
    #[error("the certificate names {0} ironlb identities; it must name exactly one")]
    Several(usize),
    /// The URI is not one of the known forms.
    #[error("{0:?} is not an ironlb identity (member/<seat>, node/<name>, admin/<name> or read/<name> under {URI_PREFIX})")]
    Uri(String),
    /// A seat out of range.
    #[error("member seat {0} is out of range (1 to 65535)")]
    Seat(u64),
    /// An unknown role.
    #[error("role {0:?} is neither \"read\" nor \"admin\"")]
    Role(String),
    /// A node or client name that is not a DNS-1123 subdomain.
    #[error("name {0:?}: {1}")]
    Name(String, String),
}

impl Principal {
    /// The identity's URI, as written in its certificate.
    pub fn uri(&self) -> String {
        match self {
            Principal::Member(seat) => format!("{URI_PREFIX}member/{seat}"),
            Principal::Node(node) => format!("{URI_PREFIX}node/{node}"),
            Principal::Client { name, role } => format!("{URI_PREFIX}{}/{name}", role.as_str()),
        }
    }

    /// Parses an identity URI.
    pub fn parse_uri(uri: &str) -> Result<Self, PrincipalError> {
        let bad = || PrincipalError::Uri(uri.to_owned());
        let rest = uri.strip_prefix(URI_PREFIX).ok_or_else(bad)?;
        let (kind, name) = rest.split_once('/').ok_or_else(bad)?;
        if name.is_empty() || name.contains('/') {
            return Err(bad());
        }
        match kind {
            "member" => {
                let n: u64 = name.parse().map_err(|_| bad())?;
                Ok(Principal::Member(MemberSeat::new(n)?))
            }
            "node" => NodeName::new(name)
                .map(Principal::Node)
                .map_err(|e| PrincipalError::Name(name.to_owned(), e.to_string())),
            "admin" | "read" => {
                // Same rule as node names, so a client name is safe in logs and file names.
                NodeName::new(name)
                    .map_err(|e| PrincipalError::Name(name.to_owned(), e.to_string()))?;
                Ok(Principal::Client {
                    name: name.to_owned(),
                    role: kind.parse()?,
                })
            }
            _ => Err(bad()),
        }
    }

    /// The identity a DER certificate names: its one URI SAN under [`URI_PREFIX`]. The
    /// certificate's signature and validity are the TLS layer's business, checked before this.
    pub fn from_certificate(der: &[u8]) -> Result<Self, PrincipalError> {
        let (_, cert) = x509_parser::parse_x509_certificate(der)
            .map_err(|e| PrincipalError::Certificate(e.to_string()))?;
        let san = cert
            .subject_alternative_name()
            .map_err(|e| PrincipalError::Certificate(e.to_string()))?;
        let uris: Vec<&str> = san
            .map(|ext| {
                ext.value
                    .general_names
                    .iter()
                    .filter_map(|n| match n {
                        x509_parser::extensions::GeneralName::URI(u) => Some(*u),
                        _ => None,
                    })
                    .filter(|u| u.starts_with(URI_PREFIX))
                    .collect()
            })
            .unwrap_or_default();
        match uris.as_slice() {
            [] => Err(PrincipalError::NoIdentity),
            [one] => Principal::parse_uri(one),
            many => Err(PrincipalError::Several(many.len())),
        }
    }

    /// What this identity may do on the admin API: members act for clients they forward, so
    /// they count as admins.
    pub fn role(&self) -> Option<Role> {
        match self {
            Principal::Member(_) => Some(Role::Admin),
            Principal::Client { role, .. } => Some(*role),
            Principal::Node(_) => None,
        }
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Principal::Member(seat) => write!(f, "member/{seat}"),
            Principal::Node(node) => write!(f, "node/{node}"),
            Principal::Client { name, role } => write!(f, "{}/{name}", role.as_str()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_round_trip() {
        for uri in [
            "spiffe://ironlb/member/3",
            "spiffe://ironlb/node/worker-1",
            "spiffe://ironlb/admin/alice",
            "spiffe://ironlb/read/grafana",
        ] {
            assert_eq!(Principal::parse_uri(uri).unwrap().uri(), uri);
        }
    }

    #[test]
    fn bad_uris_are_refused() {
        for uri in [
            "spiffe://other/member/3",
            "spiffe://ironlb/member/0",
            "spiffe://ironlb/member/65536",
            "spiffe://ironlb/member/x",
            "spiffe://ironlb/node/",
            "spiffe://ironlb/node/Worker_1",
            "spiffe://ironlb/node/a/b",
            "spiffe://ironlb/root/x",
            "spiffe://ironlb/member",
        ] {
            assert!(Principal::parse_uri(uri).is_err(), "{uri}");
        }
    }

    #[test]
    fn seats_cover_every_id_a_member_holds() {
        let seat = MemberSeat::new(2).unwrap();
        assert!(seat.holds(2));
        assert!(seat.holds(2 + SEAT_STRIDE));
        assert!(!seat.holds(3));
        assert!(!seat.holds(1 + SEAT_STRIDE));
        assert_eq!(MemberSeat::of(0), None);
    }
}
