//! The node certificate endpoint: a speaker's signing request, with a ServiceAccount token that proves its node.

use super::*;

/// The largest node certificate request: a node name and a signing request.
pub(super) const MAX_NODE_CERT_REQUEST: usize = 16 << 10;

/// Issues a speaker its node certificate when its projected token proves the node (any member
/// answers: the CA is every member's, and nothing is replicated).
pub(super) async fn issue_node_certificate(
    State(a): State<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    use crate::k8s::certs::{IssueError, NodeCertRequest};
    let Some(issuer) = &a.node_issuer else {
        return ApiError::new(
            StatusCode::NOT_FOUND,
            "this member issues no node certificates (it runs without --issue-certificates)",
        )
        .into_response();
    };
    if body.len() > MAX_NODE_CERT_REQUEST {
        return ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "a node certificate request is at most 16 KiB",
        )
        .into_response();
    }
    let req: NodeCertRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("node certificate request: {e}"),
            )
            .into_response()
        }
    };
    match issuer.issue(auth::bearer(&headers), &req).await {
        Ok(answer) => Json(answer).into_response(),
        Err(e) => {
            let status = match e {
                IssueError::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
                IssueError::Forbidden(_) => StatusCode::FORBIDDEN,
                IssueError::BadRequest(_) => StatusCode::BAD_REQUEST,
                IssueError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            };
            ApiError::new(status, e.to_string()).into_response()
        }
    }
}
