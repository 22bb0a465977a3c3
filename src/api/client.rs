//! A client of the admin API, for `ironlb ctl` and tests: it tries each member it knows until
//! one answers, and lets the members forward to the leader.

use std::time::Duration;

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

/// A client of several members.
#[derive(Clone)]
pub struct AdminClient {
    endpoints: Vec<String>,
    http: reqwest::Client,
}

impl AdminClient {
    /// A client of these `host:port` admin addresses, tried in order.
    pub fn new(endpoints: Vec<String>, timeout: Duration) -> Self {
        Self {
            endpoints,
            http: reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(1))
                .timeout(timeout)
                .build()
                .unwrap_or_default(),
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
            let url = format!("http://{ep}{path}");
            let mut req = self.http.request(method.clone(), &url);
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
