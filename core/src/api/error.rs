//! Errors of the admin API, as HTTP answers with a JSON body.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};

use crate::raft::{Member, MemberId};

/// The JSON body of every error answer.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// What went wrong, in a sentence.
    pub error: String,
    /// Every problem, for errors that have several (an invalid configuration).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<String>,
    /// The leader, when this member is not it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader: Option<LeaderRef>,
}

/// Where the leader is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaderRef {
    /// Its id.
    pub id: MemberId,
    /// Its addresses.
    pub member: Member,
}

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The body.
    pub body: ErrorBody,
}

impl ApiError {
    /// An error with a status and a message.
    pub fn new(status: StatusCode, error: impl Into<String>) -> Self {
        Self {
            status,
            body: ErrorBody {
                error: error.into(),
                ..ErrorBody::default()
            },
        }
    }

    /// The request is malformed.
    pub fn bad_request(error: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, error)
    }

    /// Nothing by that name.
    pub fn not_found(error: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, error)
    }

    /// The cluster cannot answer now (no leader, no quorum, shutting down).
    pub fn unavailable(error: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, error)
    }

    /// The content is well-formed but invalid; every problem listed.
    pub fn invalid(error: impl Into<String>, details: Vec<String>) -> Self {
        let mut e = Self::new(StatusCode::UNPROCESSABLE_ENTITY, error);
        e.body.details = details;
        e
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body)).into_response()
    }
}
