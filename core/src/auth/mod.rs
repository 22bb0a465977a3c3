//! Who is on the other end of a connection and what they may do: identities read from
//! certificates and bearer tokens ([`principal`]), the token file ([`tokens`]) and the
//! certificate authority that issues every certificate ([`pki`]).
//!
//! Nothing here does I/O on the network: the transports and the admin API call in with the
//! certificate or the token they were shown.

pub mod pki;
pub mod principal;
pub mod tokens;

pub use principal::{MemberSeat, Principal, PrincipalError, Role};
pub use tokens::{TokenBook, TokenError};
