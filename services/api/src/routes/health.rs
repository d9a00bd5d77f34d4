//! `GET /health` (liveness) and `GET /ready` (database reachable, schema
//! current). Neither needs a token. Metrics are on the operator listener
//! (`crate::admin`).

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/health", get(health))
        .route("/api/v1/ready", get(ready))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok`
    pub status: &'static str,
    /// The database schema version, on `/ready`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schema_version: Option<i64>,
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/api/v1/health", tag = "service", operation_id = "getHealth",
    responses((status = 200, description = "Alive", body = Health)))]
pub async fn health() -> Json<Health> {
    Json(Health {
        status: "ok",
        schema_version: None,
    })
}

/// Readiness: the database answers and its schema is what this build needs.
#[utoipa::path(get, path = "/api/v1/ready", tag = "service", operation_id = "getReadiness",
    responses(
        (status = 200, description = "Ready", body = Health),
        (status = 503, description = "Database unreachable or schema too old", body = ErrorBody),
    ))]
pub async fn ready(State(state): State<AppState>) -> Result<Json<Health>, ApiError> {
    let status = state.pool.run(async |conn| db::schema::status(conn).await);
    let status = status.await.map_err(|err| {
        tracing::warn!("Readiness check failed: {err}");
        ApiError::Unavailable("the database is not reachable".into())
    })?;
    if !status.is_current() {
        return Err(ApiError::Unavailable(format!(
            "the database schema is at version {}, this build needs {}",
            status.found, status.needed
        )));
    }
    Ok(Json(Health {
        status: "ok",
        schema_version: Some(status.found),
    }))
}
