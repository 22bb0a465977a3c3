//! A Service's local health check (annotation `ironlb.io/health-check`): what each speaker
//! probes on its own node, keepalived style, to decide whether the node may answer for the
//! Service's addresses. The type and its text form only; speakers run it.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The annotation naming a Service's health check.
pub const ANNOTATION: &str = "ironlb.io/health-check";

/// A probe of a port on the node itself.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum HealthCheck {
    /// A TCP connection to `127.0.0.1:port` must open.
    Tcp {
        /// The port.
        port: u16,
    },
    /// `GET path` on `127.0.0.1:port` must answer 2xx or 3xx.
    Http {
        /// The port.
        port: u16,
        /// The path, starting with `/`.
        path: String,
    },
}

/// Why a health check's text is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HealthCheckError {
    /// Neither `tcp:` nor `http:`.
    #[error("{0:?} is not a health check: use tcp:PORT or http:PORT/PATH")]
    Form(String),
    /// The port is not 1-65535.
    #[error("{0:?} is not a port number (1-65535)")]
    Port(String),
    /// The path has characters a request line cannot carry.
    #[error("path {0:?} must not contain spaces or control characters")]
    Path(String),
}

impl FromStr for HealthCheck {
    type Err = HealthCheckError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let port = |p: &str| match p.parse::<u16>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(HealthCheckError::Port(p.to_string())),
        };
        if let Some(rest) = s.strip_prefix("tcp:") {
            return Ok(HealthCheck::Tcp { port: port(rest)? });
        }
        if let Some(rest) = s.strip_prefix("http:") {
            let (p, path) = match rest.find('/') {
                Some(i) => (&rest[..i], &rest[i..]),
                None => (rest, "/"),
            };
            if path.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(HealthCheckError::Path(path.to_string()));
            }
            return Ok(HealthCheck::Http {
                port: port(p)?,
                path: path.to_string(),
            });
        }
        Err(HealthCheckError::Form(s.to_string()))
    }
}

impl fmt::Display for HealthCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HealthCheck::Tcp { port } => write!(f, "tcp:{port}"),
            HealthCheck::Http { port, path } => write!(f, "http:{port}{path}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_parse_and_print_back() {
        for (text, check) in [
            ("tcp:8080", HealthCheck::Tcp { port: 8080 }),
            (
                "http:8080/healthz",
                HealthCheck::Http {
                    port: 8080,
                    path: "/healthz".into(),
                },
            ),
        ] {
            assert_eq!(text.parse::<HealthCheck>().unwrap(), check);
            assert_eq!(check.to_string(), text);
        }
        assert_eq!(
            "http:80".parse::<HealthCheck>().unwrap().to_string(),
            "http:80/"
        );
    }

    #[test]
    fn bad_forms_say_what_is_wrong() {
        assert!(matches!(
            "udp:53".parse::<HealthCheck>(),
            Err(HealthCheckError::Form(_))
        ));
        assert!(matches!(
            "tcp:0".parse::<HealthCheck>(),
            Err(HealthCheckError::Port(_))
        ));
        assert!(matches!(
            "tcp:http".parse::<HealthCheck>(),
            Err(HealthCheckError::Port(_))
        ));
        assert!(matches!(
            "http:80/a b".parse::<HealthCheck>(),
            Err(HealthCheckError::Path(_))
        ));
    }
}
