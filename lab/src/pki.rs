//! A throwaway certificate authority for tests: the production [`Authority`] with its files in a
//! temporary directory, issuing certificates for 127.0.0.1 and localhost.

use std::path::PathBuf;

use ironlb::api::client::Credentials;
use ironlb::auth::pki::{Authority, LEAF_VALIDITY};
use ironlb::auth::{MemberSeat, Principal, Role};
use ironlb::raft::network::TlsConfig;

/// A CA and the PEM files it issued, in a temporary directory.
pub struct Pki {
    dir: tempfile::TempDir,
    /// The CA.
    pub authority: Authority,
}

impl Pki {
    /// A new CA named `name`.
    pub fn new(name: &str) -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let authority = Authority::generate(name).unwrap();
        authority.save(dir.path()).unwrap();
        Pki { dir, authority }
    }

    /// The CA certificate's PEM file.
    pub fn ca_path(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// The CA certificate, DER.
    pub fn ca_der(&self) -> rustls::pki_types::CertificateDer<'static> {
        rustls_pemfile::certs(&mut self.authority.cert_pem().as_bytes())
            .next()
            .unwrap()
            .unwrap()
    }

    /// A certificate for `who` (valid for 127.0.0.1 and localhost); returns (cert, key).
    pub fn issue(&self, who: &Principal) -> (PathBuf, PathBuf) {
        self.issue_for(who, &["127.0.0.1".into(), "localhost".into()])
    }

    /// A certificate for `who` valid for `hosts`; returns (cert, key).
    pub fn issue_for(&self, who: &Principal, hosts: &[String]) -> (PathBuf, PathBuf) {
        let stem = who.to_string().replace('/', "-");
        self.authority
            .issue(who, hosts, LEAF_VALIDITY)
            .unwrap()
            .write(self.dir.path(), &stem)
            .unwrap()
    }

    /// The TLS configuration of `who`.
    pub fn tls_for(&self, who: &Principal) -> TlsConfig {
        let (cert, key) = self.issue(who);
        TlsConfig {
            ca: self.ca_path(),
            cert,
            key,
        }
    }

    /// The TLS configuration of the member of seat `id`.
    pub fn member(&self, id: u64) -> TlsConfig {
        self.tls_for(&Principal::Member(MemberSeat::new(id).unwrap()))
    }

    /// The TLS configuration of the speaker of `node`.
    pub fn node(&self, node: &str) -> TlsConfig {
        self.tls_for(&Principal::Node(node.parse().unwrap()))
    }

    /// Admin API credentials of the client `name` in `role`, by certificate.
    #[allow(dead_code)] // Unused where raft::network's unit tests compile this file.
    pub fn client(&self, name: &str, role: Role) -> Credentials {
        let (cert, key) = self.issue(&Principal::Client {
            name: name.into(),
            role,
        });
        Credentials {
            ca: Some(self.ca_path()),
            cert: Some((cert, key)),
            token: None,
        }
    }
}
