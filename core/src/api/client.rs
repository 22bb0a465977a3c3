//! A client of the admin API, for `ironlb ctl` and tests: it tries each member it knows until
//! one answers, and lets the members forward to the leader.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::raft::network::tls::{Build, Reloading};

use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;

use super::error::ErrorBody;

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No member could be reached at all.
    #[error("no controller member answered (tried {tried}); last error: {last}")]
    NoMember {
        /// The addresses tried.
        tried: String,
        /// The last connection error.
        last: String,
    },
    /// A member answered with an error.
    #[error("{}{}", .body.error, details(&.body.details))]
    Api {
        /// The HTTP status.
        status: u16,
        /// The error body.
        body: ErrorBody,
    },
    /// A member answered with something that is not the expected JSON.
    #[error("unexpected answer from {from}: {reason}")]
    Decode {
        /// The member.
        from: String,
        /// What did not fit.
        reason: String,
    },
}

fn details(d: &[String]) -> String {
    d.iter().map(|l| format!("\n  {l}")).collect()
}

/// The body of a request.
pub enum Body {
    /// None.
    Empty,
    /// JSON.
    Json(serde_json::Value),
    /// YAML text (configurations and Service manifests).
    Yaml(String),
}

/// How a client proves who it is, and which servers it trusts.
#[derive(Clone, Default)]
pub struct Credentials {
    /// The CA that signed the members' certificates; with it the client speaks HTTPS.
    pub ca: Option<PathBuf>,
    /// A client certificate and its key (PEM), naming the client's identity.
    pub cert: Option<(PathBuf, PathBuf)>,
    /// A bearer token, sent when no certificate is.
    pub token: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("ca", &self.ca)
            .field("cert", &self.cert)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// Why the credentials could not be used.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The HTTP client refused the material.
    #[error("{what}: {source}")]
    Tls {
        /// Which material.
        what: String,
        /// reqwest's reason.
        source: reqwest::Error,
    },
}

fn read(path: &Path) -> Result<Vec<u8>, CredentialsError> {
    std::fs::read(path).map_err(|source| CredentialsError::Read {
        path: path.to_owned(),
        source,
    })
}

impl Credentials {
    fn files(&self) -> Vec<PathBuf> {
        let mut out: Vec<PathBuf> = self.ca.iter().cloned().collect();
        if let Some((c, k)) = &self.cert {
            out.extend([c.clone(), k.clone()]);
        }
        out
    }

    /// The URL scheme these credentials talk.
    pub fn scheme(&self) -> &'static str {
        if self.ca.is_some() {
            "https"
        } else {
            "http"
        }
    }

    /// An HTTP client presenting these credentials' certificate and trusting only their CA.
    pub fn http_client(&self, timeout: Duration) -> Result<reqwest::Client, CredentialsError> {
        let mut b = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(1))
            .timeout(timeout);
        if let Some(ca) = &self.ca {
            let cert = reqwest::Certificate::from_pem(&read(ca)?).map_err(|source| {
                CredentialsError::Tls {
                    what: format!("CA {}", ca.display()),
                    source,
                }
            })?;
            b = b
                .use_rustls_tls()
                .tls_built_in_root_certs(false)
                .add_root_certificate(cert);
        }
        if let Some((cert, key)) = &self.cert {
            let mut pem = read(cert)?;
            pem.push(b'\n');
            pem.extend(read(key)?);
            let id = reqwest::Identity::from_pem(&pem).map_err(|source| CredentialsError::Tls {
                what: format!("certificate {}", cert.display()),
                source,
            })?;
            b = b.identity(id);
        }
        b.build().map_err(|source| CredentialsError::Tls {
            what: "HTTP client".into(),
            source,
        })
    }
}

/// An HTTP client presenting credentials whose files may be renewed under it (a member's own
/// certificate): rebuilt when they change and still load.
#[derive(Clone)]
pub struct RenewingClient(Arc<Reloading<reqwest::Client, CredentialsError>>);

impl RenewingClient {
    /// A client for `creds`, failing if they do not load now.
    pub fn new(creds: Credentials, timeout: Duration) -> Result<Self, CredentialsError> {
        let files = creds.files();
        let build: Build<reqwest::Client, CredentialsError> =
            Box::new(move || creds.http_client(timeout));
        Ok(RenewingClient(Arc::new(Reloading::from_files(
            files, build,
        )?)))
    }

    /// A client without credentials (plain HTTP between members without TLS).
    pub fn plain(timeout: Duration) -> Self {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(1))
            .timeout(timeout)
            .build()
            .unwrap_or_default();
        RenewingClient(Arc::new(Reloading::fixed(client)))
    }

    /// The client for the credentials as they are on disk now.
    pub fn get(&self) -> reqwest::Client {
        self.0.get()
    }
}

/// A client of several members.
#[derive(Clone)]
pub struct AdminClient {
    endpoints: Vec<String>,
    http: reqwest::Client,
    scheme: &'static str,
    token: Option<String>,
    timeout: Option<Duration>,
}

impl AdminClient {
    /// A client of these `host:port` admin addresses, tried in order, without credentials
    /// (plain HTTP).
    pub fn new(endpoints: Vec<String>, timeout: Duration) -> Self {
        Self {
            endpoints,
            http: reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(1))
                .timeout(timeout)
                .build()
                .unwrap_or_default(),
            scheme: "http",
            token: None,
            timeout: None,
        }
    }

    /// A client of these admin addresses that proves itself with `creds`.
    pub fn with_credentials(
        endpoints: Vec<String>,
        timeout: Duration,
        creds: &Credentials,
    ) -> Result<Self, CredentialsError> {
        Ok(Self {
            endpoints,
            http: creds.http_client(timeout)?,
            scheme: creds.scheme(),
            token: creds.token.clone(),
            timeout: None,
        })
    }

    /// The same credentials, talking to `endpoints`.
    pub fn to(&self, endpoints: Vec<String>) -> Self {
        Self {
            endpoints,
            ..self.clone()
        }
    }

    /// The same, giving each request at most `timeout`.
    pub fn with_timeout(self, timeout: Duration) -> Self {
        Self {
            timeout: Some(timeout),
            ..self
        }
    }

    /// `GET path`.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.call(Method::GET, path, Body::Empty).await
    }

    /// Calls `method path` on the first member that answers. A member that cannot serve
    /// (503: no quorum on its side of a partition, say) makes the client try the next.
    pub async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Body,
    ) -> Result<T, ClientError> {
        let mut last: Option<ClientError> = None;
        let mut last_conn = String::from("no addresses given");
        for ep in &self.endpoints {
            let url = format!("{}://{ep}{path}", self.scheme);
            let mut req = self.http.request(method.clone(), &url);
            if let Some(t) = &self.token {
                req = req.bearer_auth(t);
            }
            if let Some(t) = self.timeout {
                req = req.timeout(t);
            }
            req = match &body {
                Body::Empty => req,
                Body::Json(v) => req.json(v),
                Body::Yaml(t) => req
                    .header(reqwest::header::CONTENT_TYPE, "application/yaml")
                    .body(t.clone()),
            };
            let resp = match req.send().await {
                Ok(r) => r,
                Err(e) => {
                    last_conn = format!("{ep}: {e}");
                    continue;
                }
            };
            let status = resp.status();
            let bytes = match resp.bytes().await {
                Ok(b) => b,
                Err(e) => {
                    last_conn = format!("{ep}: {e}");
                    continue;
                }
            };
            if status.is_success() {
                return serde_json::from_slice(&bytes).map_err(|e| ClientError::Decode {
                    from: ep.clone(),
                    reason: e.to_string(),
                });
            }
            let body: ErrorBody = serde_json::from_slice(&bytes).unwrap_or_else(|_| ErrorBody {
                error: format!("{status}: {}", String::from_utf8_lossy(&bytes).trim()),
                ..ErrorBody::default()
            });
            let err = ClientError::Api {
                status: status.as_u16(),
                body,
            };
            if status == StatusCode::SERVICE_UNAVAILABLE
                || status == StatusCode::MISDIRECTED_REQUEST
            {
                last = Some(err);
                continue;
            }
            return Err(err);
        }
        Err(last.unwrap_or(ClientError::NoMember {
            tried: self.endpoints.join(", "),
            last: last_conn,
        }))
    }
}
