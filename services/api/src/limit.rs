//! Rate limiting (SPEC 5.3) with tower-governor: one quota for every token,
//! keyed by the token, or by client address for requests without a valid
//! token. Over the quota: 429 with `Retry-After` and `x-ratelimit-*` headers.
//!
//! Two guards around it: token lookups in the database are limited per
//! client address *before* the lookup ([`LookupLimiter`]), so a flood of
//! random tokens never reaches Postgres; and each token may have at most
//! `max_in_flight_per_token` requests in flight ([`InFlight`]).

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::response::Response;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};

use axum::http::{HeaderValue, Request};
use governor::middleware::StateInformationMiddleware;
use tower_governor::governor::{GovernorConfig, GovernorConfigBuilder};
use tower_governor::key_extractor::KeyExtractor;
use tower_governor::{GovernorError, GovernorLayer};

use settings::RateLimit;

use crate::auth::{Caller, Identity};
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
    let period = Duration::from_nanos(1_000_000_000 / u64::from(limit.per_second.get()));
    let config = GovernorConfigBuilder::default()
        .period(period)
        .burst_size(limit.burst.get())
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

/// A 429 saying to retry after `wait` seconds (at least 1: governor rounds
/// down, and a client must not retry at once).
fn refused(wait: u64, message: &str) -> Response {
    let wait = wait.max(1);
    let mut response = error_response(
        axum::http::StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        format!("{message}; retry after {wait} s"),
        None,
    );
    let headers = response.headers_mut();
    headers.insert("retry-after", HeaderValue::from(wait));
    headers.insert("x-ratelimit-after", HeaderValue::from(wait));
    response
}

fn too_many_requests(error: GovernorError) -> axum::response::Response {
    match error {
        GovernorError::TooManyRequests { wait_time, headers } => {
            let mut response = refused(wait_time, "too many requests");
            if let Some(headers) = headers {
                // Keeps the retry-after of `refused` (governor's may be 0).
                for (name, value) in &headers {
                    if !response.headers().contains_key(name) {
                        response.headers_mut().insert(name, value.clone());
                    }
                }
            }
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

/// Token lookups per client address (keyed by IP).
pub type LookupLimiter = Arc<DefaultKeyedRateLimiter<IpAddr>>;

pub fn lookup_limiter(limit: RateLimit) -> LookupLimiter {
    Arc::new(DefaultKeyedRateLimiter::keyed(
        Quota::per_second(limit.per_second).allow_burst(limit.burst),
    ))
}

/// None when `address` may have one more token looked up, else the 429.
pub fn check_lookup(limiter: &LookupLimiter, address: IpAddr) -> Option<Response> {
    limiter.check_key(&address).err().map(|not_until| {
        let wait = not_until.wait_time_from(DefaultClock::default().now());
        refused(
            wait.as_secs_f64().ceil() as u64,
            "too many token lookups from this address",
        )
    })
}

/// Requests in flight per token.
#[derive(Debug, Default)]
pub struct InFlight(Mutex<HashMap<i64, u32>>);

impl InFlight {
    /// Counts one more request of `token`, or None when it already has
    /// `cap` in flight. The count drops when the guard does.
    pub fn enter(self: &Arc<Self>, token: i64, cap: NonZeroU32) -> Option<InFlightGuard> {
        let mut counts = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let count = counts.entry(token).or_default();
        if *count >= cap.get() {
            return None;
        }
        *count += 1;
        Some(InFlightGuard {
            counts: self.clone(),
            token,
        })
    }
}

/// The 429 of a token over its cap of requests in flight.
pub fn too_many_in_flight(cap: NonZeroU32) -> Response {
    refused(
        1,
        &format!("this token already has {cap} requests in flight"),
    )
}

pub struct InFlightGuard {
    counts: Arc<InFlight>,
    token: i64,
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        let mut counts = self.counts.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = counts.get_mut(&self.token) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.token);
            }
        }
    }
}
