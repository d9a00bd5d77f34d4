//! The filter facets of the active offers, as `/filters` serves them.

use sqlx::PgExecutor;

use crate::DbError;

/// One row of the filter facets (see facets.sql).
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct FacetRow {
    /// `model`, `body_type`, `engine_type`, `transmission_type`,
    /// `drive_type`, `seller_type`, `city`, or `total` (the ranges).
    pub facet: String,
    /// For `model` rows: the mark the model belongs to.
    pub mark: Option<String>,
    pub value: Option<String>,
    pub count: i64,
    pub year_min: Option<i32>,
    pub year_max: Option<i32>,
    pub price_min: Option<i64>,
    pub price_max: Option<i64>,
    pub km_age_max: Option<i32>,
}

/// Every facet of the active offers, with counts, in one statement.
pub async fn facets(db: impl PgExecutor<'_>) -> Result<Vec<FacetRow>, DbError> {
    let rows = sqlx::query_as(include_str!("../facets.sql"))
        .fetch_all(db)
        .await?;
    Ok(rows)
}
