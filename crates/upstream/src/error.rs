use thiserror::Error;

/// Why a request to the upstream did not give us a usable answer. Messages
/// name the endpoint and its non-secret parameters, never the URL or the key.
#[derive(Debug, Error)]
pub enum UpstreamError {
    /// 401/403: the key (or access name) is wrong. Final: retrying cannot help.
    #[error("the upstream refused our key on {request} (HTTP {status}): {message}; check CHE168_API_KEY and CHE168_ACCESS_NAME")]
    Unauthorized {
        request: String,
        status: u16,
        message: String,
    },
    /// `/offer` for a listing that is gone.
    #[error("{request}: not found (HTTP 404)")]
    NotFound { request: String },
    /// A 4xx other than 401/403/404/429: our request is wrong; not retried.
    #[error("{request}: the upstream rejected the request (HTTP {status})")]
    Rejected { request: String, status: u16 },
    /// Every attempt the retry policy allows failed.
    #[error("{request}: gave up after {attempts} attempt(s); last error: {last}")]
    GaveUp {
        request: String,
        attempts: u32,
        last: String,
    },
    /// Shutdown was requested while waiting for the upstream.
    #[error("{request}: cancelled by shutdown")]
    Cancelled { request: String },
    /// The client could not be built (bad base URL, missing key, TLS setup).
    #[error("upstream client setup: {0}")]
    Setup(String),
}

impl UpstreamError {
    /// Errors that stop a whole run (as opposed to one page): a wrong key,
    /// and any other 4xx but 404 on `/offer` (our request is wrong, so every
    /// later one would be too), shutdown, setup.
    pub fn is_fatal(&self) -> bool {
        matches!(
            self,
            Self::Unauthorized { .. }
                | Self::Rejected { .. }
                | Self::Cancelled { .. }
                | Self::Setup(_)
        )
    }
}

/// A body that is not the JSON we expect: retried like a network failure.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("unexpected body: {0}")]
pub struct ParseError(pub String);

impl ParseError {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}
