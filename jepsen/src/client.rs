//! The suite's only way into the controllers: their admin API, over HTTP, as any client sees it.
//! Answers are read as plain JSON, so the suite keeps working when ironlb's internals change.

use std::time::Duration;

use serde_json::Value;

use crate::history::OpType;

/// An HTTP answer, or why there was none, classified for the history: `ok` (an answer that says
/// what happened), `fail` (certainly not applied) or `info` (unknown).
#[derive(Clone, Debug)]
pub struct Answer {
    /// The HTTP status, if one came back.
    pub status: Option<u16>,
    /// The body, as JSON (or a string).
    pub body: Value,
    /// What the history records.
    pub kind: OpType,
    /// Why it is not `ok`.
    pub error: Option<String>,
}

/// A client of the admin API.
#[derive(Clone, Debug)]
pub struct Api {
    http: reqwest::Client,
}

impl Api {
    /// A client whose requests give up after `timeout` (an unknown outcome).
    pub fn new(timeout: Duration) -> Self {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_millis(500))
            .timeout(timeout)
            .pool_max_idle_per_host(4)
            .build()
            .unwrap_or_default();
        Self { http }
    }

    /// Sends a request to member `admin` (host:port) and classifies the answer. `definite`
    /// lists the statuses besides 2xx that are answers of the state machine (409 for a refused
    /// allocation, 404 for a release of nothing).
    pub async fn call(
        &self,
        method: reqwest::Method,
        admin: &str,
        path: &str,
        body: Option<(&str, String)>,
        definite: &[u16],
    ) -> Answer {
        let mut req = self.http.request(method, format!("http://{admin}{path}"));
        if let Some((content_type, text)) = body {
            req = req
                .header(reqwest::header::CONTENT_TYPE, content_type)
                .body(text);
        }
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) => {
                // Refused before anything was sent: certainly not applied.
                let kind = if e.is_connect() {
                    OpType::Fail
                } else {
                    OpType::Info
                };
                return Answer {
                    status: None,
                    body: Value::Null,
                    kind,
                    error: Some(describe(&e)),
                };
            }
        };
        let status = resp.status().as_u16();
        let not_applied = resp
            .headers()
            .get("x-ironlb-outcome")
            .is_some_and(|v| v.as_bytes() == b"not-applied");
        let text = match resp.text().await {
            Ok(t) => t,
            Err(e) => {
                return Answer {
                    status: Some(status),
                    body: Value::Null,
                    kind: OpType::Info,
                    error: Some(describe(&e)),
                }
            }
        };
        let body: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        let message = body
            .get("error")
            .and_then(Value::as_str)
            .map(str::to_string);
        let kind = if (200..300).contains(&status) || definite.contains(&status) {
            OpType::Ok
        } else if not_applied || status == 400 || status == 421 || status == 422 {
            // Refused before anything was proposed: the request is wrong, or never reached a
            // leader (the cluster says so in x-ironlb-outcome).
            OpType::Fail
        } else {
            OpType::Info
        };
        let error = (kind != OpType::Ok).then(|| {
            format!(
                "HTTP {status}: {}",
                message.unwrap_or_else(|| body.to_string())
            )
        });
        Answer {
            status: Some(status),
            body,
            kind,
            error,
        }
    }

    /// `GET` a JSON document; `None` if there is no good answer.
    pub async fn get(&self, admin: &str, path: &str) -> Option<Value> {
        let a = self
            .call(reqwest::Method::GET, admin, path, None, &[])
            .await;
        (a.kind == OpType::Ok).then_some(a.body)
    }
}

fn describe(e: &reqwest::Error) -> String {
    let mut s = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(inner) = source {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        source = inner.source();
    }
    if e.is_timeout() {
        format!("timed out: {s}")
    } else {
        s
    }
}
