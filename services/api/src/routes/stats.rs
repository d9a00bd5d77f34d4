//! `GET /stats`: how far the pipeline has got, and the last run of each job.

use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::{ApiError, ErrorBody};
use crate::routes::offers::json;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/stats", get(stats))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Stats {
    pub listings: Listings,
    /// The newest `operations_log` row of each kind (`data_fetch`,
    /// `normalization`, ...), by kind.
    pub last_operations: Vec<Operation>,
    /// Rows in the worker fleet's tables (`tasks`, `proxies`, `workers`,
    /// `results`), for those that exist.
    pub fleet: std::collections::BTreeMap<String, i64>,
    /// The initial load, once it started: whether it is finished and which
    /// pages it is missing.
    pub initial_load: Option<InitialLoad>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct InitialLoad {
    /// No failed page remains, or the rounds of fetching them again ran out
    /// (`loader.failed_page_rounds`).
    pub finished: bool,
    /// Pages that failed every attempt and are not stored yet; every loader
    /// run fetches them again.
    pub missing_pages: Vec<i32>,
    /// Upstream items the loader could not store (table `rejected_items`).
    pub rejected_items: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Listings {
    /// Listings loaded from the upstream (rows of raw_data).
    pub loaded: i64,
    /// Loaded listings already normalised.
    pub processed: i64,
    /// Loaded listings waiting for the normaliser.
    pub waiting: i64,
    /// Loaded listings the normaliser could not normalise.
    pub failed: i64,
    /// Normalised offers, active or not.
    pub normalized: i64,
    /// Active offers: what `/offers` serves.
    pub active: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Operation {
    pub operation_type: String,
    pub started_at: DateTime<Utc>,
    /// Seconds.
    pub duration: f64,
    /// `OK` or `ERROR`.
    pub status: String,
    pub details: String,
}

/// Pipeline counts and the last operation of each kind.
#[utoipa::path(
    get,
    path = "/api/v1/stats",
    tag = "service",
    operation_id = "getStats",
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "Counts and last operations", body = Stats),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 429, description = "Over the rate limit, or the token has too many requests in flight; see Retry-After", body = ErrorBody),
        (status = 503, description = "The database did not answer in time; try again", body = ErrorBody),
    )
)]
pub async fn stats(State(state): State<AppState>) -> Result<Response, ApiError> {
    let ttl = state.config.api.stats_cache_ttl;
    let body = state
        .stats
        .get_or_refresh(ttl, || async {
            let (counts, operations, fleet, initial_load) = state
                .pool
                .run(async |conn| {
                    Ok((
                        db::stats::pipeline_counts(&mut *conn).await?,
                        db::operations::latest_per_type(&mut *conn).await?,
                        db::stats::fleet_counts(&mut *conn).await?,
                        db::stats::initial_load(&mut *conn).await?,
                    ))
                })
                .await?;
            let stats = Stats {
                listings: Listings {
                    loaded: counts.loaded,
                    processed: counts.processed,
                    waiting: counts.waiting,
                    failed: counts.failed,
                    normalized: counts.normalized,
                    active: counts.active,
                },
                last_operations: operations
                    .into_iter()
                    .map(|o| Operation {
                        operation_type: o.operation_type,
                        started_at: o.started_at,
                        duration: o.duration,
                        status: o.status,
                        details: o.details,
                    })
                    .collect(),
                fleet: fleet.into_iter().map(|(t, n)| (t.to_owned(), n)).collect(),
                initial_load: initial_load.map(|l| InitialLoad {
                    finished: l.finished,
                    missing_pages: l.missing_pages,
                    rejected_items: l.rejected_items,
                }),
            };
            let body = serde_json::to_vec(&stats).map_err(anyhow::Error::from)?;
            Ok(body.into())
        })
        .await?;
    Ok(json(body))
}
