//! The operator listener (`api.admin_bind`, never behind nginx): the status
//! page `GET /status`, the same figures as `GET /status.json`, and
//! Prometheus' `GET /metrics`. No token: compose publishes it on the host's
//! loopback only.
//!
//! Every figure is read from Postgres in one read-only snapshot
//! (`db::status`) under the api's `statement_timeout`, and kept for
//! `status.cache_ttl`, so a page open in many browsers and a Prometheus
//! scraping every 15 s cost one computation per ttl.

pub mod hour;
pub mod model;
mod page;
mod prom;
pub mod rules;

use std::sync::Arc;
use std::time::Instant;

use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::error::{ApiError, ErrorBody};
use crate::routes::offers::json;
use crate::state::AppState;
use model::Status;

/// The last computed [`Status`]; a refresh holds the lock, so requests
/// after expiry wait for one computation instead of each running it.
#[derive(Debug, Default)]
pub struct StatusCache(tokio::sync::Mutex<Option<(Instant, Arc<Status>)>>);

#[derive(Clone)]
pub struct Admin {
    app: AppState,
    cache: Arc<StatusCache>,
}

/// The operator listener's whole router.
pub fn app(state: AppState) -> Router {
    let admin = Admin {
        app: state,
        cache: Arc::default(),
    };
    Router::new()
        .route(
            "/",
            get(|| async { axum::response::Redirect::to("/status") }),
        )
        .route("/status", get(page))
        .route("/status.json", get(status_json))
        .route("/metrics", get(metrics))
        .fallback(|| async { ApiError::NotFound("no such page; see /status".into()) })
        .layer(axum::middleware::from_fn(crate::error::uniform_errors))
        .with_state(admin)
}

/// Computes the status now, bypassing the cache (the bench measures this).
pub async fn compute(state: &AppState) -> Result<Status, ApiError> {
    let rules = &state.config.status;
    let (rejected_window, dead_window) = (rules.rejected_window, rules.dead_worker_window);
    let snapshot = state
        .pool
        .run(async |conn| db::status::snapshot(conn, rejected_window, dead_window).await)
        .await?;
    Ok(rules::evaluate(
        snapshot,
        state.metrics.last_hour.totals(),
        rules,
    ))
}

async fn current(admin: &Admin) -> Result<Arc<Status>, ApiError> {
    let mut slot = admin.cache.0.lock().await;
    if let Some((at, status)) = slot.as_ref() {
        if at.elapsed() < admin.app.config.status.cache_ttl {
            return Ok(status.clone());
        }
    }
    let status = Arc::new(compute(&admin.app).await?);
    *slot = Some((Instant::now(), status.clone()));
    Ok(status)
}

async fn page(State(admin): State<Admin>) -> Result<Response, ApiError> {
    let status = current(&admin).await?;
    Ok((
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8")),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            // Belt and braces: the page needs nothing from anywhere.
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"),
            ),
        ],
        page::render(&status),
    )
        .into_response())
}

/// The operator's view of the pipeline: one object per section, each with
/// its state (ok, warn, fail) and the figures behind it. Served on the
/// operator listener (`api.admin_bind`, e.g. `http://127.0.0.1:9090`), not
/// under the public base URL.
#[utoipa::path(get, path = "/status.json", tag = "operator", operation_id = "getStatus",
    responses(
        (status = 200, description = "Every section's state and figures", body = Status),
        (status = 503, description = "The database did not answer in time; try again", body = ErrorBody),
    ))]
pub async fn status_json(State(admin): State<Admin>) -> Result<Response, ApiError> {
    let status = current(&admin).await?;
    let body = serde_json::to_vec(&*status).map_err(anyhow::Error::from)?;
    Ok(json(body))
}

async fn metrics(State(admin): State<Admin>) -> Result<Response, ApiError> {
    let status = current(&admin).await?;
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4"),
        )],
        prom::render(&status, &admin.app.metrics.render()),
    )
        .into_response())
}
