//! `rejected_items`: upstream items the loader could not store, with their
//! reason and text, written in the same transaction as the rest of their
//! page (so a page's rejections are recorded exactly when it is stored).

use domain::change::RejectedItem;
use sqlx::PgConnection;

use crate::DbError;

/// Where rejected items came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// An `/offers` page.
    OffersPage(i32),
    /// A `/changes` request starting at this change id.
    Changes(i64),
}

/// Records `items` (one statement; nothing when empty).
pub async fn record(
    conn: &mut PgConnection,
    origin: Origin,
    items: &[RejectedItem],
) -> Result<u64, DbError> {
    if items.is_empty() {
        return Ok(0);
    }
    let (endpoint, page, change_id) = match origin {
        Origin::OffersPage(page) => ("/offers", Some(page), None),
        Origin::Changes(id) => ("/changes", None, Some(id)),
    };
    let ids: Vec<Option<&str>> = items.iter().map(|i| i.inner_id.as_deref()).collect();
    let reasons: Vec<&str> = items.iter().map(|i| i.reason.as_str()).collect();
    let raws: Vec<&str> = items.iter().map(|i| i.raw.as_str()).collect();
    let done = sqlx::query(
        "INSERT INTO rejected_items (endpoint, page, change_id, inner_id, reason, raw)
         SELECT $1, $2, $3, i, r, t FROM UNNEST($4::text[], $5::text[], $6::text[]) AS u(i, r, t)",
    )
    .bind(endpoint)
    .bind(page)
    .bind(change_id)
    .bind(ids)
    .bind(reasons)
    .bind(raws)
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// How many items were rejected in all (for `/stats` and tests).
pub async fn count(conn: &mut PgConnection) -> Result<i64, DbError> {
    Ok(sqlx::query_scalar("SELECT count(*) FROM rejected_items")
        .fetch_one(conn)
        .await?)
}
