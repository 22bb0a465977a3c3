//! Certificates without extra work in Kubernetes: the controllers keep the cluster CA in a
//! Secret (the first to start creates it), publish its certificate in a ConfigMap for the
//! speakers to trust, issue their own member certificates, and issue speakers short-lived node
//! certificates to whoever proves with a projected ServiceAccount token which node it runs on.
//!
//! The speaker's side asks with a signing request, so its key never leaves the node, and asks
//! again before two thirds of the certificate's life are gone; the TLS ends reload the files.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
use k8s_openapi::ByteString;
use kube::api::{ObjectMeta, PostParams};
use kube::Api;
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use super::token_review::{TokenOwner, TokenReviewer, NODE_NAME_EXTRA, POD_NAME_EXTRA};
use crate::auth::pki::{not_after, Authority, PkiError, SigningRequest};
use crate::auth::Principal;
use crate::names::NodeName;
use crate::raft::network::TlsConfig;

/// The audience speakers' projected tokens are minted for: a token for the API server (or
/// anyone else) is not accepted here, and ours is worthless there.
pub const SPEAKER_AUDIENCE: &str = "ironlb";
/// The Secret's and ConfigMap's key holding the CA certificate.
pub const CA_CERT_KEY: &str = "ca.pem";
/// The Secret's key holding the CA's private key.
pub const CA_KEY_KEY: &str = "ca-key.pem";
/// The admin API path speakers ask for their certificate at.
pub const NODE_CERT_PATH: &str = "/v1/certificates/node";

/// Why the CA or a certificate could not be had.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// The Kubernetes API refused or failed.
    #[error("Kubernetes API: {0}")]
    Api(#[from] kube::Error),
    /// Making, signing or reading a certificate failed.
    #[error(transparent)]
    Pki(#[from] PkiError),
    /// The Secret exists but does not hold a usable CA.
    #[error("Secret {namespace}/{name}: {reason}")]
    BadSecret {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// No controller issued a node certificate.
    #[error("no controller issued a certificate: {0}")]
    NotIssued(String),
}

fn secret_text(secret: &Secret, key: &str) -> Option<String> {
    let bytes = secret.data.as_ref()?.get(key)?;
    String::from_utf8(bytes.0.clone()).ok()
}

/// The cluster CA from Secret `namespace/name` (keys `ca.pem` and `ca-key.pem`, or a TLS
/// Secret's `tls.crt` and `tls.key` as cert-manager writes them), created there if there is
/// none yet unless `create` is false (then it is waited for). Members start in parallel:
/// whoever creates it first wins, the others read theirs.
pub async fn ensure_authority(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    create: bool,
) -> Result<Authority, CertError> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let bad = |reason: String| CertError::BadSecret {
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        reason,
    };
    let mut attempts = 0;
    loop {
        if let Some(secret) = api.get_opt(name).await? {
            let pair =
                |c: &str, k: &str| Some((secret_text(&secret, c)?, secret_text(&secret, k)?));
            let Some((cert, key)) =
                pair(CA_CERT_KEY, CA_KEY_KEY).or_else(|| pair("tls.crt", "tls.key"))
            else {
                return Err(bad(format!(
                    "data.{CA_CERT_KEY} and data.{CA_KEY_KEY} (or data.tls.crt and data.tls.key) are required"
                )));
            };
            return Authority::from_pem(&cert, &key).map_err(|e| bad(e.to_string()));
        }
        if !create {
            if attempts == 0 {
                info!(secret = %format!("{namespace}/{name}"), "waiting for the CA Secret");
            }
            attempts = 1;
            tokio::time::sleep(Duration::from_secs(2)).await;
            continue;
        }
        attempts += 1;
        if attempts > 5 {
            return Err(bad("created and deleted under us repeatedly".into()));
        }
        let ca = Authority::generate("ironlb")?;
        let secret = Secret {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                namespace: Some(namespace.to_owned()),
                labels: Some(BTreeMap::from([(
                    "app.kubernetes.io/name".to_owned(),
                    "ironlb".to_owned(),
                )])),
                ..Default::default()
            },
            type_: Some("Opaque".into()),
            data: Some(BTreeMap::from([
                (
                    CA_CERT_KEY.to_owned(),
                    ByteString(ca.cert_pem().into_bytes()),
                ),
                (CA_KEY_KEY.to_owned(), ByteString(ca.key_pem().into_bytes())),
            ])),
            ..Default::default()
        };
        match api.create(&PostParams::default(), &secret).await {
            Ok(_) => {
                info!(secret = %format!("{namespace}/{name}"), "created the cluster CA");
                return Ok(ca);
            }
            // Another member created it between our read and our write: read theirs.
            Err(kube::Error::Api(e)) if e.code == 409 => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Publishes the CA certificate (public) in ConfigMap `namespace/name` for speakers to trust.
pub async fn publish_bundle(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    ca_pem: &str,
) -> Result<(), CertError> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let data = BTreeMap::from([(CA_CERT_KEY.to_owned(), ca_pem.to_owned())]);
    // Members publish the same text; a conflict is another member's identical write.
    for _ in 0..5 {
        let written = match api.get_opt(name).await? {
            Some(cm) if cm.data.as_ref() == Some(&data) => return Ok(()),
            Some(mut cm) => {
                cm.data = Some(data.clone());
                api.replace(name, &PostParams::default(), &cm)
                    .await
                    .map(|_| ())
            }
            None => {
                let cm = ConfigMap {
                    metadata: ObjectMeta {
                        name: Some(name.to_owned()),
                        namespace: Some(namespace.to_owned()),
                        ..Default::default()
                    },
                    data: Some(data.clone()),
                    ..Default::default()
                };
                api.create(&PostParams::default(), &cm).await.map(|_| ())
            }
        };
        match written {
            Ok(()) => return Ok(()),
            Err(kube::Error::Api(e)) if e.code == 409 => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// When to renew a certificate issued at `issued` that expires at `expires`: after two thirds
/// of its life, so a third of it is left to retry through a controller outage.
pub fn renew_at(issued: SystemTime, expires: SystemTime) -> SystemTime {
    let life = expires.duration_since(issued).unwrap_or_default();
    issued + life * 2 / 3
}

fn until(at: SystemTime) -> Duration {
    at.duration_since(SystemTime::now()).unwrap_or_default()
}

/// A member's own certificate, issued by itself from the cluster CA into `dir` and renewed.
pub struct MemberCerts {
    authority: Arc<Authority>,
    who: Principal,
    hosts: Vec<String>,
    dir: PathBuf,
    valid_for: Duration,
}

impl MemberCerts {
    /// Writes `ca.pem`, `member.pem` and `member-key.pem` into `dir` now.
    pub fn issue(
        authority: Arc<Authority>,
        who: Principal,
        hosts: Vec<String>,
        dir: &Path,
        valid_for: Duration,
    ) -> Result<Self, CertError> {
        let me = MemberCerts {
            authority,
            who,
            hosts,
            dir: dir.to_owned(),
            valid_for,
        };
        std::fs::create_dir_all(dir).map_err(|source| PkiError::Io {
            path: dir.to_owned(),
            source,
        })?;
        me.write()?;
        Ok(me)
    }

    fn write(&self) -> Result<(), PkiError> {
        crate::auth::pki::write_file(
            &self.dir.join(CA_CERT_KEY),
            &self.authority.cert_pem(),
            0o644,
        )?;
        self.authority
            .issue(&self.who, &self.hosts, self.valid_for)?
            .write(&self.dir, "member")?;
        Ok(())
    }

    /// Where the files are, as the member's TLS configuration.
    pub fn tls(&self) -> TlsConfig {
        TlsConfig {
            ca: self.dir.join(CA_CERT_KEY),
            cert: self.dir.join("member.pem"),
            key: self.dir.join("member-key.pem"),
        }
    }

    /// Renews the certificate after two thirds of each one's life, forever.
    pub async fn renew_forever(self) {
        loop {
            let issued = SystemTime::now();
            tokio::time::sleep(until(renew_at(issued, issued + self.valid_for))).await;
            match self.write() {
                Ok(()) => info!(principal = %self.who, "renewed the member certificate"),
                Err(e) => {
                    warn!(principal = %self.who, error = %e, "cannot renew the member certificate");
                    tokio::time::sleep(Duration::from_secs(10)).await;
                }
            }
        }
    }
}

/// What a speaker sends to have its node certificate issued.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeCertRequest {
    /// The node it asks to act for.
    pub node: String,
    /// A PEM signing request for its key.
    pub csr: String,
}

/// The issued certificate.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct NodeCertAnswer {
    /// The certificate, PEM.
    pub certificate: String,
    /// The CA certificate, PEM.
    pub ca: String,
}

/// Why a node certificate was refused, with the HTTP status it maps to.
#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    /// No token, or one the API server does not authenticate (401).
    #[error("{0}")]
    Unauthenticated(String),
    /// The token's holder may not act for the node asked (403).
    #[error("{0}")]
    Forbidden(String),
    /// The request does not parse (400).
    #[error("{0}")]
    BadRequest(String),
    /// The API server could not be asked (503).
    #[error("{0}")]
    Unavailable(String),
}

/// Issues node certificates to speakers on the controllers' admin API.
pub struct NodeIssuer {
    authority: Arc<Authority>,
    reviewer: TokenReviewer,
    client: kube::Client,
    speaker_user: String,
    valid_for: Duration,
}

impl std::fmt::Debug for NodeIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeIssuer")
            .field("speaker_user", &self.speaker_user)
            .field("valid_for", &self.valid_for)
            .finish_non_exhaustive()
    }
}

impl NodeIssuer {
    /// Issues for tokens of `speaker_user` (`system:serviceaccount:<ns>:<name>`) minted for
    /// [`SPEAKER_AUDIENCE`], certificates valid for `valid_for`.
    pub fn new(
        authority: Arc<Authority>,
        client: kube::Client,
        speaker_user: String,
        valid_for: Duration,
    ) -> Self {
        NodeIssuer {
            authority,
            reviewer: TokenReviewer::new(client.clone(), vec![SPEAKER_AUDIENCE.into()]),
            client,
            speaker_user,
            valid_for,
        }
    }

    /// The node a reviewed token is bound to: named in the token (Kubernetes 1.30 and later),
    /// or the node its pod runs on.
    async fn node_of(&self, owner: &TokenOwner) -> Result<String, IssueError> {
        if let Some(node) = owner.extra_one(NODE_NAME_EXTRA) {
            return Ok(node.to_owned());
        }
        let Some(pod) = owner.extra_one(POD_NAME_EXTRA) else {
            return Err(IssueError::Forbidden(
                "the token is bound to no pod: mount a projected ServiceAccount token".into(),
            ));
        };
        // The username is system:serviceaccount:<namespace>:<name>, checked by the caller.
        let ns = owner.username.split(':').nth(2).unwrap_or_default();
        let api: Api<Pod> = Api::namespaced(self.client.clone(), ns);
        let pod = api
            .get_opt(pod)
            .await
            .map_err(|e| IssueError::Unavailable(format!("reading pod {ns}/{pod}: {e}")))?
            .ok_or_else(|| IssueError::Forbidden(format!("the token's pod {ns}/{pod} is gone")))?;
        pod.spec
            .and_then(|s| s.node_name)
            .ok_or_else(|| IssueError::Forbidden("the token's pod runs on no node yet".into()))
    }

    /// Checks `token` and issues a certificate for the node it proves, if that is the node
    /// asked for.
    pub async fn issue(
        &self,
        token: Option<&str>,
        req: &NodeCertRequest,
    ) -> Result<NodeCertAnswer, IssueError> {
        let node =
            NodeName::new(&req.node).map_err(|e| IssueError::BadRequest(format!("node: {e}")))?;
        let token = token.ok_or_else(|| {
            IssueError::Unauthenticated(
                "a bearer token is required: the speaker's projected ServiceAccount token".into(),
            )
        })?;
        let owner = self.reviewer.review(token).await.map_err(|e| match e {
            super::token_review::ReviewError::Unauthenticated(why) => {
                IssueError::Unauthenticated(why)
            }
            other => IssueError::Unavailable(other.to_string()),
        })?;
        if owner.username != self.speaker_user {
            return Err(IssueError::Forbidden(format!(
                "{} is not the speakers' ServiceAccount ({})",
                owner.username, self.speaker_user
            )));
        }
        let proven = self.node_of(&owner).await?;
        if proven != node.as_str() {
            warn!(asked = %node, proven = %proven, "refused a node certificate for another node");
            return Err(IssueError::Forbidden(format!(
                "the token proves node {proven}, not {node}"
            )));
        }
        let certificate = self
            .authority
            .sign(
                &req.csr,
                &Principal::Node(node.clone()),
                &[],
                self.valid_for,
            )
            .map_err(|e| IssueError::BadRequest(format!("csr: {e}")))?;
        info!(node = %node, valid_s = self.valid_for.as_secs(), "issued a node certificate");
        Ok(NodeCertAnswer {
            certificate,
            ca: self.authority.cert_pem(),
        })
    }
}

/// A speaker's side: asks the controllers for its node certificate with its projected token,
/// writes it beside its key, and renews it.
#[derive(Clone, Debug)]
pub struct NodeCertBootstrap {
    /// The controllers' admin API addresses (`host:port`).
    pub controllers: Vec<String>,
    /// The projected ServiceAccount token (re-read at every request: the kubelet rotates it).
    pub token_file: PathBuf,
    /// The CA certificate that signed the controllers' certificates.
    pub ca: PathBuf,
    /// Where `node.pem` and `node-key.pem` are written.
    pub dir: PathBuf,
    /// The node.
    pub node: NodeName,
}

impl NodeCertBootstrap {
    /// Where the files are, as the speaker's TLS configuration.
    pub fn tls(&self) -> TlsConfig {
        TlsConfig {
            ca: self.ca.clone(),
            cert: self.dir.join("node.pem"),
            key: self.dir.join("node-key.pem"),
        }
    }

    /// Asks each controller in turn once; returns the new certificate's expiry.
    pub async fn obtain(&self) -> Result<SystemTime, CertError> {
        let failed = |why: String| CertError::NotIssued(why);
        let token = std::fs::read_to_string(&self.token_file)
            .map_err(|e| failed(format!("reading {}: {e}", self.token_file.display())))?;
        let creds = crate::api::client::Credentials {
            ca: Some(self.ca.clone()),
            cert: None,
            token: None,
        };
        let http = creds
            .http_client(Duration::from_secs(10))
            .map_err(|e| failed(e.to_string()))?;
        let req = SigningRequest::new(&Principal::Node(self.node.clone()))?;
        let body = NodeCertRequest {
            node: self.node.to_string(),
            csr: req.csr_pem.clone(),
        };
        let mut why = Vec::new();
        for c in &self.controllers {
            let url = format!("https://{c}{NODE_CERT_PATH}");
            let resp = http
                .post(&url)
                .bearer_auth(token.trim())
                .json(&body)
                .send()
                .await;
            let answer = match resp {
                Ok(r) if r.status().is_success() => r.json::<NodeCertAnswer>().await,
                Ok(r) => {
                    let status = r.status();
                    why.push(format!(
                        "{c}: {status} {}",
                        r.text().await.unwrap_or_default()
                    ));
                    continue;
                }
                Err(e) => Err(e),
            };
            match answer {
                Ok(a) => {
                    let expires = not_after(&a.certificate)?;
                    crate::auth::pki::Issued {
                        cert_pem: a.certificate,
                        key_pem: req.key_pem,
                    }
                    .write(&self.dir, "node")?;
                    return Ok(expires);
                }
                Err(e) => why.push(format!("{c}: {e}")),
            }
        }
        Err(failed(why.join("; ")))
    }

    /// Obtains the first certificate, retrying until a controller issues one.
    pub async fn first(&self) -> SystemTime {
        let mut wait = Duration::from_millis(200);
        loop {
            match self.obtain().await {
                Ok(expires) => {
                    info!(node = %self.node, "obtained the node certificate");
                    return expires;
                }
                Err(e) => warn!(node = %self.node, error = %e, "no node certificate yet; retrying"),
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_secs(10));
        }
    }

    /// Renews the certificate after two thirds of each one's life, forever.
    pub async fn renew_forever(self, mut expires: SystemTime) {
        let mut next = renew_at(SystemTime::now(), expires);
        loop {
            tokio::time::sleep(until(next)).await;
            match self.obtain().await {
                Ok(e) => {
                    info!(node = %self.node, "renewed the node certificate");
                    expires = e;
                    next = renew_at(SystemTime::now(), expires);
                }
                Err(e) => {
                    warn!(node = %self.node, error = %e, "cannot renew the node certificate; retrying");
                    // Retry well before it runs out: after a tenth of what is left, at least a
                    // second.
                    next = SystemTime::now() + (until(expires) / 10).max(Duration::from_secs(1));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewal_comes_after_two_thirds_of_the_life() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
        assert_eq!(
            renew_at(t0, t0 + Duration::from_secs(3600)),
            t0 + Duration::from_secs(2400)
        );
        // Already expired: now.
        assert_eq!(renew_at(t0, t0 - Duration::from_secs(1)), t0);
    }
}
