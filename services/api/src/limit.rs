//! Rate limiting (SPEC 5.3) with tower-governor: one quota for every token,
//! keyed by the token, or by client address for requests without a valid
//! token. Over the quota: 429 with `Retry-After` and `x-ratelimit-*` headers.

use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderValue, Request};
use governor::middleware::StateInformationMiddleware;
use tower_governor::governor::{GovernorConfig, GovernorConfigBuilder};
use tower_governor::key_extractor::KeyExtractor;
use tower_governor::{GovernorError, GovernorLayer};

use crate::auth::{Caller, Identity};
use crate::config::RateLimit;
use crate::error::error_response;

/// Reads the [`Identity`] that `auth::identify` left on the request.
#[derive(Debug, Clone, Copy)]
pub struct CallerKey;

impl KeyExtractor for CallerKey {
    type Key = Caller;

    fn extract<T>(&self, request: &Request<T>) -> Result<Caller, GovernorError> {
        request
            .extensions()
            .get::<Identity>()
            .map(|identity| identity.caller.clone())
            .ok_or(GovernorError::UnableToExtractKey)
    }
}

pub type Limiter = Arc<GovernorConfig<CallerKey, StateInformationMiddleware>>;

/// The limiter's configuration: `per_second` tokens refilled evenly, up to `burst`.
pub fn limiter(limit: RateLimit) -> Limiter {
    let period = Duration::from_nanos(1_000_000_000 / u64::from(limit.per_second.max(1)));
    let config = GovernorConfigBuilder::default()
        .period(period)
        .burst_size(limit.burst.max(1))
        .key_extractor(CallerKey)
        .error_handler(too_many_requests)
        .use_headers()
        .finish()
        .expect("period and burst are positive");
    Arc::new(config)
}

pub fn layer(limiter: &Limiter) -> GovernorLayer<CallerKey, StateInformationMiddleware> {
    GovernorLayer {
        config: limiter.clone(),
    }
}

fn too_many_requests(error: GovernorError) -> axum::response::Response {
    match error {
        GovernorError::TooManyRequests { wait_time, headers } => {
            // governor rounds the wait down; a client must not retry at once.
            let wait = wait_time.max(1);
            let mut response = error_response(
                axum::http::StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!("too many requests; retry after {wait} s"),
                None,
            );
            if let Some(headers) = headers {
                response.headers_mut().extend(headers);
            }
            response
                .headers_mut()
                .insert("retry-after", HeaderValue::from(wait));
            response
                .headers_mut()
                .insert("x-ratelimit-after", HeaderValue::from(wait));
            response
        }
        other => {
            tracing::error!("Rate limiter failed: {other}");
            error_response(
                axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "internal error; it has been logged".into(),
                None,
            )
        }
    }
}
