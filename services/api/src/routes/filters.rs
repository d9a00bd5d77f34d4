//! `GET /filters`: everything the frontend needs to build its filter UI, with
//! counts of active offers, from one grouped scan cached for
//! `filters_cache_ttl`. Keys are the `/offers` parameter names.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use db::commit::Mode;
use db::offers::FacetRow;
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::{ApiError, ErrorBody};
use crate::routes::offers::json;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/filters", get(filters))
}

#[derive(Debug, Serialize, ToSchema, PartialEq)]
pub struct Filters {
    /// Active offers in all.
    pub total: i64,
    /// Marks A-Z, each with its models A-Z (`mark`, `model` parameters).
    pub mark: Vec<MarkFacet>,
    /// Values by count, most offers first; each key is the `/offers` parameter.
    pub body_type: Vec<Facet>,
    /// Fuel / engine types.
    pub engine_type: Vec<Facet>,
    pub transmission_type: Vec<Facet>,
    pub drive_type: Vec<Facet>,
    pub seller_type: Vec<Facet>,
    pub city: Vec<Facet>,
    /// Model years (`year_from`, `year_to`).
    pub year: Range,
    /// Prices, CNY (`price_from`, `price_to`).
    pub price: Range,
    /// Mileage, km (`km_age_to`).
    pub km_age: Range,
}

#[derive(Debug, Serialize, ToSchema, PartialEq)]
pub struct MarkFacet {
    pub value: String,
    pub count: i64,
    pub models: Vec<Facet>,
}

#[derive(Debug, Serialize, ToSchema, PartialEq)]
pub struct Facet {
    pub value: String,
    pub count: i64,
}

#[derive(Debug, Serialize, ToSchema, PartialEq, Default)]
pub struct Range {
    pub min: Option<i64>,
    pub max: Option<i64>,
}

/// Filter values with counts of active offers.
#[utoipa::path(
    get,
    path = "/api/v1/filters",
    tag = "offers",
    operation_id = "getFilters",
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "Filter values and ranges with counts", body = Filters),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 429, description = "Over the rate limit, or the token has too many requests in flight; see Retry-After", body = ErrorBody),
        (status = 503, description = "The database did not answer in time; try again", body = ErrorBody),
    )
)]
pub async fn filters(State(state): State<AppState>) -> Result<Response, ApiError> {
    let ttl = state.config.api.filters_cache_ttl;
    let body = state
        .filters
        .get_or_refresh(ttl, || async {
            // One scan of every active offer (seconds at 1,000,000 rows),
            // cached: it may run up to the request timeout, not the
            // statement timeout meant for the per-request queries.
            let mode = Mode::new().statement_timeout(state.config.api.request_timeout);
            let rows = state
                .pool
                .run(async |conn| {
                    let mut tx = mode.begin(&mut *conn).await?;
                    let rows = db::offers::facets(&mut *tx).await?;
                    tx.commit().await?;
                    Ok(rows)
                })
                .await?;
            let body = serde_json::to_vec(&assemble(rows)).map_err(anyhow::Error::from)?;
            Ok(body.into())
        })
        .await?;
    Ok(json(body))
}

pub fn assemble(rows: Vec<FacetRow>) -> Filters {
    let mut marks: BTreeMap<String, (i64, Vec<Facet>)> = BTreeMap::new();
    let mut facets: BTreeMap<String, Vec<Facet>> = BTreeMap::new();
    let mut filters = Filters {
        total: 0,
        mark: Vec::new(),
        body_type: Vec::new(),
        engine_type: Vec::new(),
        transmission_type: Vec::new(),
        drive_type: Vec::new(),
        seller_type: Vec::new(),
        city: Vec::new(),
        year: Range::default(),
        price: Range::default(),
        km_age: Range::default(),
    };
    for row in rows {
        match row.facet.as_str() {
            "total" => {
                filters.total = row.count;
                filters.year = Range {
                    min: row.year_min.map(i64::from),
                    max: row.year_max.map(i64::from),
                };
                filters.price = Range {
                    min: row.price_min,
                    max: row.price_max,
                };
                filters.km_age = Range {
                    min: Some(0).filter(|_| row.km_age_max.is_some()),
                    max: row.km_age_max.map(i64::from),
                };
            }
            "model" => {
                let Some(mark) = row.mark else { continue };
                let entry = marks.entry(mark).or_default();
                entry.0 += row.count;
                if let Some(model) = row.value {
                    entry.1.push(Facet {
                        value: model,
                        count: row.count,
                    });
                }
            }
            facet => {
                if let Some(value) = row.value {
                    facets.entry(facet.to_owned()).or_default().push(Facet {
                        value,
                        count: row.count,
                    });
                }
            }
        }
    }
    filters.mark = marks
        .into_iter()
        .map(|(value, (count, mut models))| {
            models.sort_by(|a, b| a.value.cmp(&b.value));
            MarkFacet {
                value,
                count,
                models,
            }
        })
        .collect();
    for (name, mut values) in facets {
        values.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.value.cmp(&b.value)));
        let slot = match name.as_str() {
            "body_type" => &mut filters.body_type,
            "engine_type" => &mut filters.engine_type,
            "transmission_type" => &mut filters.transmission_type,
            "drive_type" => &mut filters.drive_type,
            "seller_type" => &mut filters.seller_type,
            "city" => &mut filters.city,
            _ => continue,
        };
        *slot = values;
    }
    filters
}
