//! The gate every endpoint request passes: request counters, latency, the
//! injected failures of [`Faults`](crate::Faults) and the `api_key` check.
//!
//! Order: count, wait `latency`, then (each drawn independently from the seed
//! and the request's sequence number) connection reset, hang, 502/503, 429,
//! then the key (401), the "fail these exact requests" sets (503), the
//! handler, and last a truncated body.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::{to_bytes, Body};
use axum::extract::{Query, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio_util::sync::CancellationToken;

use crate::rng::Rng;
use crate::server::{message, SimState};

const FAULT_STREAM: u64 = 40;

/// Cancelled to drop the request's TCP connection without an answer.
#[derive(Clone)]
pub(crate) struct ConnectionKill(pub CancellationToken);

const ENDPOINTS: [&str; 6] = [
    "offers",
    "offer",
    "change_id",
    "changes",
    "filters",
    "other",
];

/// Requests seen, per endpoint, per `/offers` page and per `/changes` id.
#[derive(Default)]
pub(crate) struct Counters {
    endpoints: [AtomicU64; 6],
    pages: Mutex<HashMap<u32, u64>>,
    change_ids: Mutex<HashMap<u64, u64>>,
    sequence: AtomicU64,
}

impl Counters {
    pub fn hit(&self, endpoint: &str) {
        let slot = ENDPOINTS
            .iter()
            .position(|e| *e == endpoint)
            .unwrap_or(ENDPOINTS.len() - 1);
        self.endpoints[slot].fetch_add(1, Ordering::Relaxed);
    }

    /// Requests to `endpoint` (`"offers"` or `"/offers"`; `"other"` counts
    /// unknown paths; `"total"` everything).
    pub fn get(&self, endpoint: &str) -> u64 {
        let name = endpoint.trim_start_matches('/');
        if name == "total" {
            return self
                .endpoints
                .iter()
                .map(|c| c.load(Ordering::Relaxed))
                .sum();
        }
        ENDPOINTS
            .iter()
            .position(|e| *e == name)
            .map_or(0, |slot| self.endpoints[slot].load(Ordering::Relaxed))
    }

    pub fn page(&self, page: u32) -> u64 {
        self.pages
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&page)
            .copied()
            .unwrap_or(0)
    }

    pub fn change_id(&self, id: u64) -> u64 {
        self.change_ids
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&id)
            .copied()
            .unwrap_or(0)
    }

    fn hit_page(&self, page: u32) {
        *self
            .pages
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(page)
            .or_default() += 1;
    }

    fn hit_change_id(&self, id: u64) {
        *self
            .change_ids
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(id)
            .or_default() += 1;
    }
}

pub(crate) async fn guard(
    State(state): State<Arc<SimState>>,
    req: Request,
    next: Next,
) -> Response {
    let endpoint = req
        .uri()
        .path()
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_owned();
    let params: HashMap<String, String> = Query::try_from_uri(req.uri())
        .map(|q| q.0)
        .unwrap_or_default();
    let page = params
        .get("page")
        .and_then(|p| p.parse::<u32>().ok())
        .unwrap_or(1);
    let change_id = params.get("change_id").and_then(|c| c.parse::<u64>().ok());
    state.counters.hit(&endpoint);
    match (endpoint.as_str(), change_id) {
        ("offers", _) => state.counters.hit_page(page),
        ("changes", Some(id)) => state.counters.hit_change_id(id),
        _ => {}
    }

    let faults = state.faults();
    let sequence = state.counters.sequence.fetch_add(1, Ordering::Relaxed);
    let mut dice = Rng::new(state.seed, FAULT_STREAM, sequence);
    let [reset, hang, server_error, rate_limit, truncate, which] =
        std::array::from_fn(|_| dice.unit());

    if !faults.latency.is_zero() {
        tokio::time::sleep(faults.latency).await;
    }
    if reset < faults.reset_rate {
        if let Some(kill) = req.extensions().get::<ConnectionKill>() {
            tracing::debug!("Resetting the connection of a /{endpoint} request");
            kill.0.cancel();
            return std::future::pending().await;
        }
    }
    if hang < faults.timeout_rate {
        tracing::debug!("Hanging a /{endpoint} request for {:?}", faults.timeout);
        tokio::time::sleep(faults.timeout).await;
    }
    if server_error < faults.server_error_rate {
        return if which < 0.5 {
            let page = "<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1></center></body></html>";
            (
                StatusCode::BAD_GATEWAY,
                [(header::CONTENT_TYPE, "text/html")],
                page,
            )
                .into_response()
        } else {
            message(
                StatusCode::SERVICE_UNAVAILABLE,
                "Service temporarily unavailable",
            )
        };
    }
    if rate_limit < faults.rate_limit_rate {
        let mut response = message(StatusCode::TOO_MANY_REQUESTS, "Too many requests");
        response.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from(faults.retry_after_secs),
        );
        return response;
    }
    if params.get("api_key") != Some(&state.api_key) {
        return message(StatusCode::UNAUTHORIZED, "Invalid or missing api_key");
    }
    let failing = match (endpoint.as_str(), change_id) {
        ("offers", _) => faults.fail_pages.contains(&page),
        ("changes", Some(id)) => faults.fail_change_ids.contains(&id),
        _ => false,
    };
    if failing {
        return message(
            StatusCode::SERVICE_UNAVAILABLE,
            "Service temporarily unavailable",
        );
    }

    let response = next.run(req).await;
    if truncate < faults.truncated_rate && response.status() == StatusCode::OK {
        let (mut parts, body) = response.into_parts();
        let Ok(bytes) = to_bytes(body, usize::MAX).await else {
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        };
        parts.headers.remove(header::CONTENT_LENGTH);
        return Response::from_parts(parts, Body::from(bytes.slice(..bytes.len() / 2)));
    }
    response
}
