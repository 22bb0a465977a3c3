//! Mutual TLS for the Raft port: every member presents a certificate signed by the cluster CA
//! and accepts only peers that do the same.
//!
//! A member's certificate serves both ends (it dials its peers and is dialled by them), so it
//! needs both the serverAuth and clientAuth extended key usages, and a subject alternative name
//! for the host part of its `raft_addr` (DNS name or IP address).
//!
//! Rotation needs no restart: both ends built from files look at them again before a handshake
//! (at most once a second) and rebuild when one changed, so a renewed certificate, key or CA
//! bundle (cert-manager rewriting a Secret, a speaker renewing its own) is used by the next
//! connection while open ones carry on. A change that does not load keeps the previous material:
//! a half-written or wrong file never replaces a working one.

use std::fs::File;
use std::io::{self, BufReader};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

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

/// How often the files behind a TLS end are looked at again.
pub const RELOAD_CHECK: Duration = Duration::from_secs(1);

/// What identifies a version of some files: their modification times and lengths (`None`:
/// missing).
type Stamp = Vec<Option<(SystemTime, u64)>>;

/// The files' stamp now.
fn stamp(files: &[PathBuf]) -> Stamp {
    files
        .iter()
        .map(|f| {
            // Follows symlinks: a Secret volume swaps a `..data` link, which changes the target.
            std::fs::metadata(f)
                .ok()
                .map(|m| (m.modified().unwrap_or(SystemTime::UNIX_EPOCH), m.len()))
        })
        .collect()
}

/// How a [`Reloading`] value is built from its files.
pub type Build<T, E> = Box<dyn Fn() -> Result<T, E> + Send + Sync>;

/// A value built from files (TLS ends, an HTTP client with a certificate) and rebuilt, at most
/// once per [`RELOAD_CHECK`], when they changed and still load.
pub struct Reloading<T, E = TlsError> {
    files: Vec<PathBuf>,
    build: Option<Build<T, E>>,
    current: Mutex<Current<T>>,
}

struct Current<T> {
    value: T,
    /// The files' stamp last looked at (whether or not it loaded).
    seen: Stamp,
    checked: Instant,
}

impl<T: Clone, E: std::fmt::Display> Reloading<T, E> {
    /// A value that never changes.
    pub fn fixed(value: T) -> Self {
        Reloading {
            files: Vec::new(),
            build: None,
            current: Mutex::new(Current {
                value,
                seen: Vec::new(),
                checked: Instant::now(),
            }),
        }
    }

    /// Builds the value now, failing if the files do not load.
    pub fn from_files(files: Vec<PathBuf>, build: Build<T, E>) -> Result<Self, E> {
        // Stamped before building: a change made while building is seen at the next check.
        let seen = stamp(&files);
        let value = build()?;
        Ok(Reloading {
            files,
            build: Some(build),
            current: Mutex::new(Current {
                value,
                seen,
                checked: Instant::now(),
            }),
        })
    }

    /// The value for the files as they are on disk now.
    pub fn get(&self) -> T {
        // A poisoned lock only means a panic elsewhere mid-update; the value is still whole.
        let mut cur = self.current.lock().unwrap_or_else(|p| p.into_inner());
        let Some(build) = &self.build else {
            return cur.value.clone();
        };
        if cur.checked.elapsed() < RELOAD_CHECK {
            return cur.value.clone();
        }
        cur.checked = Instant::now();
        let now = stamp(&self.files);
        if now == cur.seen {
            return cur.value.clone();
        }
        cur.seen = now;
        match build() {
            Ok(v) => {
                tracing::info!(files = ?self.files, "credentials changed: reloaded");
                cur.value = v;
            }
            Err(e) => {
                tracing::warn!(files = ?self.files, error = %e, "credentials changed but do not load: keeping the previous");
            }
        }
        cur.value.clone()
    }
}

/// The accepting side: requires a client certificate signed by the CA.
#[derive(Clone)]
pub struct TlsServer {
    acceptor: Arc<Reloading<TlsAcceptor>>,
}

/// The dialling side: presents this member's certificate and checks the server's against the CA.
#[derive(Clone)]
pub struct TlsClient {
    connector: Arc<Reloading<TlsConnector>>,
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
    fn files(&self) -> Vec<PathBuf> {
        vec![self.ca.clone(), self.cert.clone(), self.key.clone()]
    }

    fn reloading_server(
        &self,
        build: fn(&TlsConfig) -> Result<ServerConfig, TlsError>,
    ) -> Result<TlsServer, TlsError> {
        let me = self.clone();
        let build: Build<TlsAcceptor, TlsError> =
            Box::new(move || Ok(TlsAcceptor::from(Arc::new(build(&me)?))));
        Ok(TlsServer {
            acceptor: Arc::new(Reloading::from_files(self.files(), build)?),
        })
    }

    /// Build the accepting side from the PEM files (rebuilt when they change).
    pub fn server(&self) -> Result<TlsServer, TlsError> {
        self.reloading_server(Self::server_config)
    }

    fn server_config(&self) -> Result<ServerConfig, TlsError> {
        let roots = load_roots(&self.ca)?;
        let provider = provider();
        let verifier =
            WebPkiClientVerifier::builder_with_provider(roots, provider.clone()).build()?;
        let config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_client_cert_verifier(verifier)
            .with_single_cert(load_certs(&self.cert)?, load_key(&self.key)?)?;
        Ok(config)
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
        self.reloading_server(Self::admin_server_config)
    }

    fn admin_server_config(&self) -> Result<ServerConfig, TlsError> {
        let roots = load_roots(&self.ca)?;
        let provider = provider();
        let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider.clone())
            .allow_unauthenticated()
            .build()?;
        let config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_client_cert_verifier(verifier)
            .with_single_cert(load_certs(&self.cert)?, load_key(&self.key)?)?;
        Ok(config)
    }

    /// Build the dialling side from the PEM files (rebuilt when they change).
    pub fn client(&self) -> Result<TlsClient, TlsError> {
        let me = self.clone();
        let build: Build<TlsConnector, TlsError> = Box::new(move || {
            let roots = load_roots(&me.ca)?;
            let config = ClientConfig::builder_with_provider(provider())
                .with_safe_default_protocol_versions()?
                .with_root_certificates(roots)
                .with_client_auth_cert(load_certs(&me.cert)?, load_key(&me.key)?)?;
            Ok(TlsConnector::from(Arc::new(config)))
        });
        Ok(TlsClient {
            connector: Arc::new(Reloading::from_files(self.files(), build)?),
        })
    }
}

impl TlsServer {
    /// Wrap a rustls server configuration built elsewhere.
    pub fn from_config(config: Arc<ServerConfig>) -> Self {
        TlsServer {
            acceptor: Arc::new(Reloading::fixed(TlsAcceptor::from(config))),
        }
    }

    /// Run the server side of the handshake (unbounded: the caller sets the timeout).
    pub async fn accept(&self, stream: TcpStream) -> io::Result<ServerStream> {
        self.acceptor.get().accept(stream).await
    }
}

impl TlsClient {
    /// Wrap a rustls client configuration built elsewhere.
    pub fn from_config(config: Arc<ClientConfig>) -> Self {
        TlsClient {
            connector: Arc::new(Reloading::fixed(TlsConnector::from(config))),
        }
    }

    /// Run the client side of the handshake with a server expected to be `name` (unbounded: the
    /// caller sets the timeout).
    pub async fn connect(
        &self,
        name: ServerName<'static>,
        stream: TcpStream,
    ) -> io::Result<ClientStream> {
        self.connector.get().connect(name, stream).await
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

    /// The certificate the server showed in a handshake made now.
    async fn served_cert(server: &TlsServer, client: &TlsClient) -> Vec<u8> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = server.clone();
        let accept = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            server.accept(tcp).await.unwrap()
        });
        let tcp = TcpStream::connect(addr).await.unwrap();
        let s = client
            .connect(server_name("127.0.0.1:1").unwrap(), tcp)
            .await
            .unwrap();
        accept.await.unwrap();
        s.get_ref().1.peer_certificates().unwrap()[0].to_vec()
    }

    #[tokio::test]
    async fn renewed_files_are_used_by_the_next_handshake_and_broken_ones_never() {
        use crate::auth::pki::Authority;
        use crate::auth::{MemberSeat, Principal};
        let dir = tempfile::tempdir().unwrap();
        let ca = Authority::generate("test").unwrap();
        ca.save(dir.path()).unwrap();
        let me = Principal::Member(MemberSeat::new(1).unwrap());
        let issue = |secs| {
            ca.issue(&me, &["127.0.0.1".into()], Duration::from_secs(secs))
                .unwrap()
                .write(dir.path(), "member")
                .unwrap();
        };
        issue(3600);
        let cfg = TlsConfig {
            ca: dir.path().join("ca.pem"),
            cert: dir.path().join("member.pem"),
            key: dir.path().join("member-key.pem"),
        };
        let (server, client) = (cfg.server().unwrap(), cfg.client().unwrap());
        let first = served_cert(&server, &client).await;
        assert_eq!(served_cert(&server, &client).await, first);

        issue(7200);
        tokio::time::sleep(RELOAD_CHECK + Duration::from_millis(100)).await;
        let renewed = served_cert(&server, &client).await;
        assert_ne!(renewed, first, "the renewed certificate is served");
        assert_eq!(
            renewed,
            load_certs(&cfg.cert).unwrap()[0].to_vec(),
            "exactly the one on disk"
        );

        // A certificate file cut short, and one that does not match the key: both kept out.
        let whole = std::fs::read_to_string(&cfg.cert).unwrap();
        std::fs::write(&cfg.cert, &whole[..whole.len() / 2]).unwrap();
        tokio::time::sleep(RELOAD_CHECK + Duration::from_millis(100)).await;
        assert_eq!(served_cert(&server, &client).await, renewed);
        let other = ca
            .issue(&me, &["127.0.0.1".into()], Duration::from_secs(60))
            .unwrap();
        std::fs::write(&cfg.cert, other.cert_pem).unwrap();
        tokio::time::sleep(RELOAD_CHECK + Duration::from_millis(100)).await;
        assert_eq!(served_cert(&server, &client).await, renewed);
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
