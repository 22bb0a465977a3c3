//! Who may call the admin API: TLS (a client certificate is optional), then every request but
//! `/metrics`, `/healthz` and `/readyz` authenticated by its certificate's identity or a bearer
//! token, and allowed by the identity's role: `read` for what changes nothing, `admin` for the
//! rest.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::connect_info::{ConnectInfo, Connected};
use axum::extract::{Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::serve::IncomingStream;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use super::error::ApiError;
use crate::auth::{Principal, Role, TokenBook};
use crate::k8s::certs::NODE_CERT_PATH;
use crate::k8s::token_review::{AccountRoles, TokenReviewer};
use crate::raft::network::server::{ConnectionLimits, ConnectionSlot};
use crate::raft::network::tls::peer_principal;
use crate::raft::network::{BoxIo, TlsServer};

/// How long a client has to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The largest request body accepted (a configuration of thousands of pools fits).
pub const MAX_BODY_BYTES: usize = 4 << 20;

/// What the connection told about the client: its address and, with TLS, the identity its
/// certificate names (if it showed one).
#[derive(Clone, Debug)]
pub struct Peer {
    /// The client's address.
    pub addr: SocketAddr,
    /// The identity from its certificate, verified against the CA by the handshake.
    pub cert: Option<Principal>,
}

impl Connected<IncomingStream<'_, AdminListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, AdminListener>) -> Self {
        stream.remote_addr().clone()
    }
}

/// A connection with its slot in the connection limits, given back when it closes.
pub struct Counted {
    io: BoxIo,
    _slot: ConnectionSlot,
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// The admin API's listener: accepts TCP, runs each TLS handshake on a task of its own (so a
/// slow or silent client holds up nobody) within the connection limits, and hands axum the
/// finished connections with what they proved.
pub struct AdminListener {
    ready: mpsc::Receiver<(Counted, Peer)>,
    local: SocketAddr,
}

impl AdminListener {
    /// Starts accepting on `tcp`, with TLS when `tls` is given.
    pub fn spawn(
        tcp: TcpListener,
        tls: Option<TlsServer>,
        limits: ConnectionLimits,
    ) -> std::io::Result<Self> {
        let local = tcp.local_addr()?;
        let (tx, ready) = mpsc::channel(64);
        tokio::spawn(async move {
            loop {
                let (stream, addr) = match tcp.accept().await {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot accept an admin API connection");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                if tx.is_closed() {
                    return;
                }
                let Some(slot) = limits.admit(addr.ip()) else {
                    tracing::warn!(peer = %addr, "refusing an admin API connection: too many open");
                    continue;
                };
                let tls = tls.clone();
                let tx = tx.clone();
                tokio::spawn(async move {
                    let (io, cert): (BoxIo, _) = match tls {
                        None => (Box::new(stream), None),
                        Some(tls) => {
                            match tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.accept(stream)).await
                            {
                                Ok(Ok(s)) => {
                                    let cert = peer_principal(s.get_ref().1).ok();
                                    (Box::new(s), cert)
                                }
                                Ok(Err(e)) => {
                                    tracing::debug!(peer = %addr, error = %e, "admin API TLS handshake failed");
                                    return;
                                }
                                Err(_) => {
                                    tracing::debug!(peer = %addr, "admin API TLS handshake timed out");
                                    return;
                                }
                            }
                        }
                    };
                    let _ = tx
                        .send((Counted { io, _slot: slot }, Peer { addr, cert }))
                        .await;
                });
            }
        });
        Ok(AdminListener { ready, local })
    }
}

impl axum::serve::Listener for AdminListener {
    type Io = Counted;
    type Addr = Peer;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(c) => c,
            // The accepting task only ends when this listener is gone.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(Peer {
            addr: self.local,
            cert: None,
        })
    }
}

/// Kubernetes ServiceAccount tokens as bearer tokens: reviewed by the API server, and given
/// the role their account is bound to.
#[derive(Clone, Debug)]
pub struct KubeTokens {
    /// Asks the API server who holds a token.
    pub reviewer: Arc<TokenReviewer>,
    /// The accounts that may use the API, and their roles.
    pub roles: AccountRoles,
}

/// How requests are authenticated.
#[derive(Clone, Debug)]
pub struct AdminAuth {
    /// Bearer tokens accepted (a token file's).
    pub tokens: TokenBook,
    /// ServiceAccount tokens accepted (Kubernetes mode).
    pub kube: Option<KubeTokens>,
    /// Whether a request must prove an identity; false only in `--insecure` mode without a
    /// token file, where everyone is an admin.
    pub required: bool,
}

impl AdminAuth {
    /// Everyone may do everything: a lab, or a member on loopback only.
    pub fn open() -> Self {
        AdminAuth {
            tokens: TokenBook::default(),
            kube: None,
            required: false,
        }
    }

    /// Who holds a bearer token: the token file's entry, else the ServiceAccount the API server
    /// names (with its bound role; an account without one is named but may do nothing).
    pub async fn token_holder(&self, token: &str) -> Result<Principal, (StatusCode, String)> {
        if let Some(p) = self.tokens.lookup(token) {
            return Ok(p.clone());
        }
        let Some(kube) = &self.kube else {
            return Err((StatusCode::UNAUTHORIZED, "unknown bearer token".into()));
        };
        let owner = kube
            .reviewer
            .review(token)
            .await
            .map_err(|e| (StatusCode::UNAUTHORIZED, e.to_string()))?;
        match kube.roles.role_of(&owner.username) {
            Some(role) => Ok(Principal::Client {
                name: owner.username,
                role,
            }),
            None => Err((
                StatusCode::FORBIDDEN,
                format!(
                    "{} has no ironlb role (--admin-service-account)",
                    owner.username
                ),
            )),
        }
    }
}

/// The role a request needs, or `None` for the open endpoints.
pub fn required_role(method: &Method, path: &str) -> Option<Role> {
    match path {
        "/metrics" | "/healthz" | "/readyz" => None,
        // Speakers without a certificate yet; the issuer checks their token itself.
        NODE_CERT_PATH => None,
        // Explain answers a what-if without changing anything.
        "/v1/explain" => Some(Role::Read),
        _ if method == Method::GET || method == Method::HEAD => Some(Role::Read),
        _ => Some(Role::Admin),
    }
}

/// The bearer token of a request's `Authorization` header, if it has one.
pub fn bearer(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

/// The middleware: authenticates, checks the role, and logs every write with who made it.
pub async fn authorize(
    State(auth): State<Arc<AdminAuth>>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    req: Request,
    next: Next,
) -> Response {
    let Some(needed) = required_role(req.method(), req.uri().path()) else {
        return next.run(req).await;
    };
    if !auth.required {
        return next.run(req).await;
    }
    let who = match (&peer.cert, bearer(req.headers())) {
        (Some(p), _) => Ok(p.clone()),
        (None, Some(token)) => auth.token_holder(token).await,
        (None, None) => Err((
            StatusCode::UNAUTHORIZED,
            "authentication required: a client certificate signed by the cluster CA, or a bearer token"
                .into(),
        )),
    };
    let who = match who {
        Ok(who) => who,
        Err((status, why)) => {
            tracing::debug!(peer = %peer.addr, reason = %why, "admin API request refused");
            let mut resp = ApiError::new(status, why).into_response();
            if status == StatusCode::UNAUTHORIZED {
                resp.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    header::HeaderValue::from_static("Bearer realm=\"ironlb\""),
                );
            }
            return super::not_applied(resp);
        }
    };
    match who.role() {
        Some(role) if role >= needed => {
            if needed == Role::Admin {
                tracing::info!(principal = %who, peer = %peer.addr, method = %req.method(), path = %req.uri().path(), "admin API write");
            }
            next.run(req).await
        }
        _ => super::not_applied(
            ApiError::new(
                StatusCode::FORBIDDEN,
                format!(
                    "{who} may not {} {}: it needs the {} role",
                    req.method(),
                    req.uri().path(),
                    needed.as_str()
                ),
            )
            .into_response(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_need_read_and_writes_admin() {
        assert_eq!(required_role(&Method::GET, "/metrics"), None);
        assert_eq!(required_role(&Method::GET, "/healthz"), None);
        assert_eq!(
            required_role(&Method::GET, "/v1/services"),
            Some(Role::Read)
        );
        assert_eq!(
            required_role(&Method::POST, "/v1/explain"),
            Some(Role::Read)
        );
        assert_eq!(
            required_role(&Method::POST, "/v1/allocate"),
            Some(Role::Admin)
        );
        assert_eq!(required_role(&Method::PUT, "/v1/config"), Some(Role::Admin));
        assert_eq!(
            required_role(&Method::POST, "/v1/snapshot"),
            Some(Role::Admin)
        );
        assert_eq!(
            required_role(&Method::DELETE, "/v1/members/3"),
            Some(Role::Admin)
        );
        // A GET of the configuration is a read: the answer's passwords are redacted.
        assert_eq!(required_role(&Method::GET, "/v1/config"), Some(Role::Read));
    }
}
