//! The certificate authority: creates a CA and issues the certificates of members, speakers and
//! API clients, each naming one [`Principal`]. Used by `ironlb certs` and by the tests' labs.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, SanType,
};

use super::principal::Principal;

/// How long a CA is valid by default: ten years.
pub const CA_VALIDITY: Duration = Duration::from_secs(10 * 365 * 86_400);
/// How long `ironlb certs` makes a certificate valid by default: one year.
pub const LEAF_VALIDITY: Duration = Duration::from_secs(365 * 86_400);
/// How far back a certificate's validity starts, for clocks a little behind ours.
const BACKDATE: Duration = Duration::from_secs(300);

/// Why a certificate could not be made or read.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// rcgen refused.
    #[error("certificate generation failed: {0}")]
    Rcgen(#[from] rcgen::Error),
    /// A PEM file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A host name is neither an IP address nor a DNS name.
    #[error("host {0:?} is neither an IP address nor a DNS name")]
    Host(String),
    /// A PEM text holds no certificate, or one that does not parse.
    #[error("not a PEM certificate: {0}")]
    NotACertificate(String),
}

/// A certificate signing request and the key it was made with: the key stays with whoever asks,
/// only the request (its public half, signed) travels.
pub struct SigningRequest {
    /// The request, as PEM.
    pub csr_pem: String,
    /// Its private key (PKCS#8), as PEM.
    pub key_pem: String,
}

impl std::fmt::Debug for SigningRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningRequest { .. }")
    }
}

impl SigningRequest {
    /// A fresh key and a request naming `who` (the signer decides what the certificate says).
    pub fn new(who: &Principal) -> Result<Self, PkiError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params
            .distinguished_name
            .push(DnType::CommonName, who.to_string());
        let csr = params.serialize_request(&key)?;
        Ok(SigningRequest {
            csr_pem: csr.pem()?,
            key_pem: key.serialize_pem(),
        })
    }
}

/// When the first certificate in `cert_pem` stops being valid.
pub fn not_after(cert_pem: &str) -> Result<SystemTime, PkiError> {
    let der = rustls_pemfile::certs(&mut cert_pem.as_bytes())
        .next()
        .ok_or_else(|| PkiError::NotACertificate("no CERTIFICATE block".into()))?
        .map_err(|e| PkiError::NotACertificate(e.to_string()))?;
    let (_, cert) = x509_parser::parse_x509_certificate(&der)
        .map_err(|e| PkiError::NotACertificate(e.to_string()))?;
    let secs = cert.validity().not_after.timestamp();
    Ok(SystemTime::UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).unwrap_or(0)))
}

/// What every leaf certificate says: its principal as common name and URI SAN, its hosts, TLS
/// server and client use, and its validity.
fn leaf_params(
    who: &Principal,
    hosts: &[String],
    valid_for: Duration,
) -> Result<CertificateParams, PkiError> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params
        .distinguished_name
        .push(DnType::CommonName, who.to_string());
    params
        .subject_alt_names
        .push(SanType::URI(who.uri().try_into()?));
    for host in hosts {
        let san = match host.parse::<IpAddr>() {
            Ok(ip) => SanType::IpAddress(ip),
            Err(_) => SanType::DnsName(
                host.clone()
                    .try_into()
                    .map_err(|_| PkiError::Host(host.clone()))?,
            ),
        };
        params.subject_alt_names.push(san);
    }
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    validity(&mut params, valid_for);
    Ok(params)
}

/// A certificate and its private key, as PEM.
#[derive(Clone)]
pub struct Issued {
    /// The certificate.
    pub cert_pem: String,
    /// Its private key (PKCS#8).
    pub key_pem: String,
}

impl std::fmt::Debug for Issued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Issued { .. }")
    }
}

impl Issued {
    /// Writes `<stem>.pem` and `<stem>-key.pem` (the key readable by its owner only) into `dir`;
    /// returns both paths.
    pub fn write(&self, dir: &Path, stem: &str) -> Result<(PathBuf, PathBuf), PkiError> {
        let cert = dir.join(format!("{stem}.pem"));
        let key = dir.join(format!("{stem}-key.pem"));
        write_file(&cert, &self.cert_pem, 0o644)?;
        write_file(&key, &self.key_pem, 0o600)?;
        Ok((cert, key))
    }
}

/// Writes `text` to `path` with `mode`, atomically (beside, then renamed).
pub fn write_file(path: &Path, text: &str, mode: u32) -> Result<(), PkiError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let io = |source| PkiError::Io {
        path: path.to_owned(),
        source,
    };
    // Written beside and renamed, so a reader never sees half a key.
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .map_err(io)?;
    f.write_all(text.as_bytes()).map_err(io)?;
    f.sync_all().map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

fn read(path: &Path) -> Result<String, PkiError> {
    std::fs::read_to_string(path).map_err(|source| PkiError::Io {
        path: path.to_owned(),
        source,
    })
}

fn validity(params: &mut CertificateParams, valid_for: Duration) {
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - BACKDATE;
    params.not_after = now + valid_for;
}

/// A CA that can sign.
pub struct Authority {
    cert: rcgen::Certificate,
    key: KeyPair,
    /// The certificate as first made: what every party trusts. `cert` is rcgen's signing handle
    /// and, for a loaded CA, a re-signed twin whose PEM differs.
    cert_pem: String,
}

impl std::fmt::Debug for Authority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Authority { .. }")
    }
}

impl Authority {
    /// A new CA named `name` (its common name is `<name> CA`).
    pub fn generate(name: &str) -> Result<Self, PkiError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params
            .distinguished_name
            .push(DnType::CommonName, format!("{name} CA"));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        validity(&mut params, CA_VALIDITY);
        let cert = params.self_signed(&key)?;
        let cert_pem = cert.pem();
        Ok(Authority {
            cert,
            key,
            cert_pem,
        })
    }

    /// A CA from its certificate and key, as PEM.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Self, PkiError> {
        let key = KeyPair::from_pem(key_pem)?;
        // rcgen signs with a certificate object; re-signing the same name and key gives an
        // issuer identical for verification to the one on disk.
        let params = CertificateParams::from_ca_cert_pem(cert_pem)?;
        let cert = params.self_signed(&key)?;
        Ok(Authority {
            cert,
            key,
            cert_pem: cert_pem.to_owned(),
        })
    }

    /// Reads `ca.pem` and `ca-key.pem` from `dir`.
    pub fn load(dir: &Path) -> Result<Self, PkiError> {
        Self::from_pem(&read(&dir.join("ca.pem"))?, &read(&dir.join("ca-key.pem"))?)
    }

    /// Writes `ca.pem` and `ca-key.pem` into `dir`.
    pub fn save(&self, dir: &Path) -> Result<(), PkiError> {
        Issued {
            cert_pem: self.cert_pem.clone(),
            key_pem: self.key.serialize_pem(),
        }
        .write(dir, "ca")
        .map(|_| ())
    }

    /// The CA's private key as PEM, for keeping it where other members find it.
    pub fn key_pem(&self) -> String {
        self.key.serialize_pem()
    }

    /// The CA certificate as PEM, for the trust stores of every party.
    pub fn cert_pem(&self) -> String {
        self.cert_pem.clone()
    }

    /// A certificate for `who`, valid as TLS server and client for `hosts` (IP addresses or DNS
    /// names; members list where they listen), for `valid_for`.
    pub fn issue(
        &self,
        who: &Principal,
        hosts: &[String],
        valid_for: Duration,
    ) -> Result<Issued, PkiError> {
        let key = KeyPair::generate()?;
        let cert = leaf_params(who, hosts, valid_for)?.signed_by(&key, &self.cert, &self.key)?;
        Ok(Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// A certificate for the key of a signing request (whose signature proves the requester
    /// holds it), naming `who`: what the request itself asks for (names, uses, validity) is
    /// ignored, the caller has decided who the requester is.
    pub fn sign(
        &self,
        csr_pem: &str,
        who: &Principal,
        hosts: &[String],
        valid_for: Duration,
    ) -> Result<String, PkiError> {
        let mut csr = CertificateSigningRequestParams::from_pem(csr_pem)?;
        csr.params = leaf_params(who, hosts, valid_for)?;
        Ok(csr.signed_by(&self.cert, &self.key)?.pem())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{MemberSeat, Role};

    fn der(pem: &str) -> Vec<u8> {
        rustls_pemfile::certs(&mut pem.as_bytes())
            .next()
            .unwrap()
            .unwrap()
            .to_vec()
    }

    #[test]
    fn issued_certificates_name_their_principal() {
        let ca = Authority::generate("test").unwrap();
        for who in [
            Principal::Member(MemberSeat::new(1).unwrap()),
            Principal::Node("worker-1".parse().unwrap()),
            Principal::Client {
                name: "alice".into(),
                role: Role::Admin,
            },
        ] {
            let issued = ca
                .issue(
                    &who,
                    &["127.0.0.1".into(), "ctl-0.ctl".into()],
                    LEAF_VALIDITY,
                )
                .unwrap();
            assert_eq!(Principal::from_certificate(&der(&issued.cert_pem)), Ok(who));
        }
    }

    #[test]
    fn a_signed_request_names_whom_the_signer_says_and_fits_the_requesters_key() {
        let ca = Authority::generate("test").unwrap();
        let asked = Principal::Member(MemberSeat::new(1).unwrap());
        let node = Principal::Node("n1".parse().unwrap());
        let req = SigningRequest::new(&asked).unwrap();
        let cert = ca
            .sign(&req.csr_pem, &node, &[], Duration::from_secs(600))
            .unwrap();
        assert_eq!(Principal::from_certificate(&der(&cert)), Ok(node));
        let left = not_after(&cert)
            .unwrap()
            .duration_since(SystemTime::now())
            .unwrap();
        assert!(left > Duration::from_secs(590) && left <= Duration::from_secs(600));
        // The key in the certificate is the request's: rustls pairs them.
        let key = rustls_pemfile::private_key(&mut req.key_pem.as_bytes())
            .unwrap()
            .unwrap();
        let provider = rustls::crypto::ring::default_provider();
        let signing = provider.key_provider.load_private_key(key).unwrap();
        rustls::sign::CertifiedKey::new(vec![der(&cert).into()], signing)
            .keys_match()
            .unwrap();
        // A request whose signature does not hold is refused.
        let mut forged = req.csr_pem.clone().into_bytes();
        let mid = forged.len() / 2;
        forged[mid] = if forged[mid] == b'A' { b'B' } else { b'A' };
        assert!(ca
            .sign(
                std::str::from_utf8(&forged).unwrap(),
                &Principal::Node("n1".parse().unwrap()),
                &[],
                Duration::from_secs(600)
            )
            .is_err());
        assert!(not_after("garbage").is_err());
    }

    #[test]
    fn a_saved_authority_signs_again_after_loading() {
        let dir = tempfile::tempdir().unwrap();
        let ca = Authority::generate("test").unwrap();
        ca.save(dir.path()).unwrap();
        let again = Authority::load(dir.path()).unwrap();
        assert_eq!(
            again.cert_pem(),
            ca.cert_pem(),
            "the same certificate, byte for byte"
        );
        let issued = again
            .issue(&Principal::Node("n1".parse().unwrap()), &[], LEAF_VALIDITY)
            .unwrap();
        // The reloaded CA's certificate verifies what it issues under the original's.
        let roots = {
            let mut r = rustls::RootCertStore::empty();
            r.add(der(&ca.cert_pem()).into()).unwrap();
            std::sync::Arc::new(r)
        };
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            roots,
            std::sync::Arc::new(rustls::crypto::ring::default_provider()),
        )
        .build()
        .unwrap();
        verifier
            .verify_client_cert(
                &der(&issued.cert_pem).into(),
                &[],
                rustls::pki_types::UnixTime::now(),
            )
            .unwrap();
    }
}
