//! Mutual TLS for the Raft port: every member presents a certificate signed by the cluster CA
//! and accepts only peers that do the same.
//!
//! A member's certificate serves both ends (it dials its peers and is dialled by them), so it
//! needs both the serverAuth and clientAuth extended key usages, and a subject alternative name
//! for the host part of its `raft_addr` (DNS name or IP address).

use std::fs::File;
use std::io::{self, BufReader};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use tokio::net::TcpStream;
use tokio_rustls::{TlsAcceptor, TlsConnector};

use crate::auth::{Principal, PrincipalError};

/// Where a member's TLS material lives, as PEM files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsConfig {
    /// The CA that signs every member's certificate.
    pub ca: PathBuf,
    /// This member's certificate (chain), leaf first.
    pub cert: PathBuf,
    /// This member's private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file could not be read or parsed.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O or PEM error.
        source: io::Error,
    },
    /// A certificate file holds no certificate.
    #[error("{0} holds no PEM certificate")]
    NoCertificate(PathBuf),
    /// A key file holds no private key.
    #[error("{0} holds no PEM private key")]
    NoPrivateKey(PathBuf),
    /// A CA certificate was refused as a trust anchor.
    #[error("CA certificate in {path} is unusable: {source}")]
    BadCa {
        /// The CA file.
        path: PathBuf,
        /// rustls' reason.
        source: rustls::Error,
    },
    /// The client certificate verifier could not be built.
    #[error("cannot build the client certificate verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
    /// rustls refused the configuration (e.g. the key does not match the certificate).
    #[error("TLS configuration refused: {0}")]
    Rustls(#[from] rustls::Error),
    /// The certificate does not name the identity its holder acts as.
    #[error("certificate {path}: {reason}")]
    Identity {
        /// The certificate file.
        path: PathBuf,
        /// What it names, and what was expected.
        reason: String,
    },
    /// A peer address has no host part usable as a TLS server name.
    #[error("no TLS server name in address {addr:?}: {reason}")]
    ServerName {
        /// The address.
        addr: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// The accepting side: requires a client certificate signed by the CA.
#[derive(Clone)]
pub struct TlsServer {
    acceptor: TlsAcceptor,
}

/// The dialling side: presents this member's certificate and checks the server's against the CA.
#[derive(Clone)]
pub struct TlsClient {
    connector: TlsConnector,
}

impl std::fmt::Debug for TlsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsServer")
    }
}

impl std::fmt::Debug for TlsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsClient")
    }
}

/// The server-side stream after the handshake.
pub type ServerStream = tokio_rustls::server::TlsStream<TcpStream>;
/// The client-side stream after the handshake.
pub type ClientStream = tokio_rustls::client::TlsStream<TcpStream>;

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    // Explicit, so no process-wide default has to be installed and reqwest/kube's choice of
    // provider cannot change ours.
    Arc::new(rustls::crypto::ring::default_provider())
}

fn open(path: &Path) -> Result<BufReader<File>, TlsError> {
    File::open(path)
        .map(BufReader::new)
        .map_err(|source| TlsError::Read {
            path: path.to_owned(),
            source,
        })
}

fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = rustls_pemfile::certs(&mut open(path)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TlsError::Read {
            path: path.to_owned(),
            source,
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate(path.to_owned()));
    }
    Ok(certs)
}

fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    rustls_pemfile::private_key(&mut open(path)?)
        .map_err(|source| TlsError::Read {
            path: path.to_owned(),
            source,
        })?
        .ok_or_else(|| TlsError::NoPrivateKey(path.to_owned()))
}

fn load_roots(path: &Path) -> Result<Arc<RootCertStore>, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in load_certs(path)? {
        roots.add(cert).map_err(|source| TlsError::BadCa {
            path: path.to_owned(),
            source,
        })?;
    }
    Ok(Arc::new(roots))
}

impl TlsConfig {
    /// Build the accepting side from the PEM files.
    pub fn server(&self) -> Result<TlsServer, TlsError> {
        let roots = load_roots(&self.ca)?;
        let provider = provider();
        let verifier =
            WebPkiClientVerifier::builder_with_provider(roots, provider.clone()).build()?;
        let config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_client_cert_verifier(verifier)
            .with_single_cert(load_certs(&self.cert)?, load_key(&self.key)?)?;
        Ok(TlsServer::from_config(Arc::new(config)))
    }

    /// The same with `{name}` in the certificate's and key's paths replaced by `value`: one
    /// Secret can hold every member's files (`member-{id}.pem`) and each pod picks its own.
    pub fn expand(&self, name: &str, value: &str) -> TlsConfig {
        let sub =
            |p: &Path| PathBuf::from(p.to_string_lossy().replace(&format!("{{{name}}}"), value));
        TlsConfig {
            ca: self.ca.clone(),
            cert: sub(&self.cert),
            key: sub(&self.key),
        }
    }

    /// The identity this configuration's own certificate names.
    pub fn principal(&self) -> Result<Principal, TlsError> {
        let certs = load_certs(&self.cert)?;
        // load_certs refuses a file without certificates, so there is a first.
        let leaf = certs
            .first()
            .ok_or_else(|| TlsError::NoCertificate(self.cert.clone()))?;
        Principal::from_certificate(leaf).map_err(|e| TlsError::Identity {
            path: self.cert.clone(),
            reason: e.to_string(),
        })
    }

    /// Fails unless this configuration's certificate names `expected`.
    pub fn expect_principal(&self, expected: &Principal) -> Result<(), TlsError> {
        match self.principal()? {
            p if &p == expected => Ok(()),
            p => Err(TlsError::Identity {
                path: self.cert.clone(),
                reason: format!("it names {p}, but this process is {expected}"),
            }),
        }
    }

    /// Build the admin API's accepting side: a client certificate is verified when shown but
    /// not required, since API clients may prove themselves with a bearer token instead.
    pub fn admin_server(&self) -> Result<TlsServer, TlsError> {
        let roots = load_roots(&self.ca)?;
        let provider = provider();
        let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider.clone())
            .allow_unauthenticated()
            .build()?;
        let config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_client_cert_verifier(verifier)
            .with_single_cert(load_certs(&self.cert)?, load_key(&self.key)?)?;
        Ok(TlsServer::from_config(Arc::new(config)))
    }

    /// Build the dialling side from the PEM files.
    pub fn client(&self) -> Result<TlsClient, TlsError> {
        let roots = load_roots(&self.ca)?;
        let config = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_client_auth_cert(load_certs(&self.cert)?, load_key(&self.key)?)?;
        Ok(TlsClient::from_config(Arc::new(config)))
    }
}

impl TlsServer {
    /// Wrap a rustls server configuration built elsewhere.
    pub fn from_config(config: Arc<ServerConfig>) -> Self {
        TlsServer {
            acceptor: TlsAcceptor::from(config),
        }
    }

    /// Run the server side of the handshake (unbounded: the caller sets the timeout).
    pub async fn accept(&self, stream: TcpStream) -> io::Result<ServerStream> {
        self.acceptor.accept(stream).await
    }
}

impl TlsClient {
    /// Wrap a rustls client configuration built elsewhere.
    pub fn from_config(config: Arc<ClientConfig>) -> Self {
        TlsClient {
            connector: TlsConnector::from(config),
        }
    }

    /// Run the client side of the handshake with a server expected to be `name` (unbounded: the
    /// caller sets the timeout).
    pub async fn connect(
        &self,
        name: ServerName<'static>,
        stream: TcpStream,
    ) -> io::Result<ClientStream> {
        self.connector.connect(name, stream).await
    }
}

/// The identity the peer's certificate names (its leaf's ironlb URI SAN).
pub fn peer_principal(conn: &rustls::CommonState) -> Result<Principal, PrincipalError> {
    let leaf = conn
        .peer_certificates()
        .and_then(|c| c.first())
        .ok_or(PrincipalError::NoIdentity)?;
    Principal::from_certificate(leaf)
}

/// The host part of a `host:port` address, without IPv6 brackets.
pub fn host_of(addr: &str) -> &str {
    let host = match addr.rsplit_once(':') {
        // A bare IPv6 address has colons but no port; only strip a suffix that is a port.
        Some((host, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => {
            if host.contains(':') && !host.starts_with('[') {
                addr
            } else {
                host
            }
        }
        _ => addr,
    };
    host.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
}

/// The name a peer at `addr` must prove in its certificate: its IP address when the host is
/// one, its DNS name otherwise.
pub fn server_name(addr: &str) -> Result<ServerName<'static>, TlsError> {
    let host = host_of(addr);
    if let Ok(ip) = host.parse::<std::net::IpAddr>() {
        return Ok(ServerName::IpAddress(ip.into()));
    }
    ServerName::try_from(host.to_owned()).map_err(|e| TlsError::ServerName {
        addr: addr.to_owned(),
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_part_of_addresses() {
        assert_eq!(host_of("10.0.0.1:7001"), "10.0.0.1");
        assert_eq!(host_of("[2001:db8::1]:7001"), "2001:db8::1");
        assert_eq!(host_of("2001:db8::1"), "2001:db8::1");
        assert_eq!(host_of("ctl-0.ctl.ns.svc:7001"), "ctl-0.ctl.ns.svc");
        assert_eq!(host_of("localhost"), "localhost");
    }

    #[test]
    fn server_names() {
        assert!(matches!(
            server_name("127.0.0.1:1").unwrap(),
            ServerName::IpAddress(_)
        ));
        assert!(matches!(
            server_name("[::1]:1").unwrap(),
            ServerName::IpAddress(_)
        ));
        assert!(matches!(
            server_name("ctl-0.ctl:1").unwrap(),
            ServerName::DnsName(_)
        ));
        assert!(server_name("bad name!:1").is_err());
    }
}
