//! The one error shape of the api, and the middleware that gives it to
//! responses made outside the handlers (405, 408, 413, 429, ...).
//!
//! ```json
//! {"error": {"status": 400, "code": "invalid_parameter",
//!            "message": "year_from must be a whole number", "parameter": "year_from",
//!            "request_id": "5f0c..."}}
//! ```
//!
//! `request_id` is the request's `X-Request-Id` (nginx's, or one the api
//! made), also on every log line of the request: [`uniform_errors`] adds it.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

/// The request id's header: nginx sets it, else the api makes one.
pub const REQUEST_ID: &str = "x-request-id";

/// Every error response's body.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// The HTTP status, repeated for clients that only see the body.
    #[schema(minimum = 400, maximum = 599, example = 400)]
    pub status: u16,
    /// Stable machine-readable code: `invalid_parameter`, `unauthorized`,
    /// `not_found`, `rate_limited`, `method_not_allowed`,
    /// `payload_too_large`, `unavailable`, `internal`.
    pub code: &'static str,
    /// What went wrong, in English, safe to show a developer.
    pub message: String,
    /// The query parameter at fault, for `invalid_parameter`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parameter: Option<String>,
    /// The request's id (`X-Request-Id`): quote it when reporting a problem.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{message}")]
    InvalidParameter { parameter: String, message: String },
    #[error("{0}")]
    Unauthorized(&'static str),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Unavailable(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    pub fn parameter(parameter: &str, message: impl Into<String>) -> Self {
        Self::InvalidParameter {
            parameter: parameter.to_owned(),
            message: message.into(),
        }
    }
}

impl From<db::DbError> for ApiError {
    fn from(err: db::DbError) -> Self {
        if err.is_unavailable() {
            // Busy or unreachable, not broken: the client may try again.
            tracing::warn!("Database unavailable: {:#}", anyhow::Error::new(err));
            return Self::Unavailable("the database did not answer in time; try again".into());
        }
        Self::Internal(anyhow::Error::new(err))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, parameter) = match &self {
            Self::InvalidParameter { parameter, .. } => (
                StatusCode::BAD_REQUEST,
                "invalid_parameter",
                Some(parameter.clone()),
            ),
            Self::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized", None),
            Self::NotFound(_) => (StatusCode::NOT_FOUND, "not_found", None),
            Self::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable", None),
            Self::Internal(err) => {
                tracing::error!(error = ?err, "Request failed: {err:#}");
                (StatusCode::INTERNAL_SERVER_ERROR, "internal", None)
            }
        };
        let message = match &self {
            Self::Internal(_) => "internal error; it has been logged".to_owned(),
            other => other.to_string(),
        };
        let mut response = error_response(status, code, message, parameter);
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

pub fn error_response(
    status: StatusCode,
    code: &'static str,
    message: String,
    parameter: Option<String>,
) -> Response {
    let body = ErrorBody {
        error: ErrorDetail {
            status: status.as_u16(),
            code,
            message,
            parameter,
            request_id: None,
        },
    };
    let json = serde_json::to_vec(&body).unwrap_or_default();
    let mut response = (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        json,
    )
        .into_response();
    // Kept so that `uniform_errors` can render it again with the request id.
    response.extensions_mut().insert(body);
    response
}

/// Gives error responses that layers or axum made (plain text or empty
/// bodies) the api's JSON shape, keeping their status and headers, and puts
/// the request id into every error body.
pub async fn uniform_errors(request: Request, next: Next) -> Response {
    let request_id = request
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let mut response = next.run(request).await;
    let status = response.status();
    if let Some(mut body) = response.extensions_mut().remove::<ErrorBody>() {
        body.error.request_id = request_id;
        let (mut parts, _) = response.into_parts();
        parts.headers.remove(header::CONTENT_LENGTH);
        let json = serde_json::to_vec(&body).unwrap_or_default();
        return Response::from_parts(parts, Body::from(json));
    }
    if !(status.is_client_error() || status.is_server_error()) || is_json(&response) {
        return response;
    }
    let (code, message) = match status {
        StatusCode::NOT_FOUND => ("not_found", "no such endpoint; see /api/v1/docs".to_owned()),
        StatusCode::METHOD_NOT_ALLOWED => (
            "method_not_allowed",
            "this endpoint only answers GET".to_owned(),
        ),
        StatusCode::REQUEST_TIMEOUT | StatusCode::SERVICE_UNAVAILABLE => (
            "unavailable",
            "the request took too long; try again".to_owned(),
        ),
        StatusCode::PAYLOAD_TOO_LARGE => (
            "payload_too_large",
            "the request body is too large".to_owned(),
        ),
        StatusCode::TOO_MANY_REQUESTS => {
            let wait = response
                .headers()
                .get(header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("1");
            (
                "rate_limited",
                format!("too many requests; retry after {wait} s"),
            )
        }
        s if s.is_server_error() => ("internal", "internal error".to_owned()),
        _ => ("bad_request", "the request was refused".to_owned()),
    };
    let (mut parts, _) = response.into_parts();
    let mut fresh = error_response(status, code, message, None);
    if let Some(mut body) = fresh.extensions_mut().remove::<ErrorBody>() {
        body.error.request_id = request_id;
        fresh = Response::new(Body::from(serde_json::to_vec(&body).unwrap_or_default()));
    }
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    let (_, body) = fresh.into_parts();
    Response::from_parts(parts, Body::new(body))
}

fn is_json(response: &Response) -> bool {
    response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"))
}
