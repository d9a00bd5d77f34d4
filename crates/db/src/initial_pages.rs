//! The initial load's statements on `raw_data` (SPEC 3.1). The caller owns
//! the transaction: it writes a run of pages' listings with one of these and
//! moves the cursor (`load_state::advance`) in the same transaction, so a
//! killed load resumes at the first page not stored and never stores a page
//! twice. The write pipeline that keeps several such transactions in flight
//! lives in the loader.

use domain::change::OfferItem;
use domain::listing::{ActiveStatus, Source};
use sqlx::PgConnection;

use crate::copy::BinaryCopyWriter;
use crate::DbError;

const RAW_COPY: &str = "COPY raw_data (inner_id, upstream_id, change_type, created_at, data, \
                        source, active_status, is_processed) FROM STDIN (FORMAT binary)";

/// Inserts `rows` (no `inner_id` twice) by binary COPY, Postgres' cheapest
/// way in: no per-row statement, no conflict arbitration, no lookup first.
/// Any listing already stored makes the unique index refuse the whole COPY
/// (`DbError::Conflict`), and a refused value fails it too; the caller then
/// rolls back and writes the rows with [`insert_on_conflict`]. Returns how
/// many rows went in.
pub async fn copy(conn: &mut PgConnection, rows: &[&OfferItem]) -> Result<u64, DbError> {
    if rows.is_empty() {
        return Ok(0);
    }
    let mut writer = BinaryCopyWriter::new();
    for item in rows {
        writer
            .begin_row(8)
            .text(&item.inner_id)
            .int8(item.id)
            .text(item.change_type.as_str());
        match item.created_at {
            Some(at) => writer.timestamptz(at),
            None => writer.null(),
        };
        writer
            .jsonb(item.data_json())
            .text(Source::InitialLoad.as_str())
            .int4(ActiveStatus::Active.code())
            .bool(false);
    }
    let mut copy = conn.copy_in_raw(RAW_COPY).await?;
    copy.send(writer.finish()).await?;
    Ok(copy.finish().await?)
}

/// Inserts `rows` with one `INSERT ... ON CONFLICT DO NOTHING`: a listing
/// already stored keeps its row and writes nothing. Returns how many rows
/// were new.
pub async fn insert_on_conflict(
    conn: &mut PgConnection,
    rows: &[&OfferItem],
) -> Result<u64, DbError> {
    if rows.is_empty() {
        return Ok(0);
    }
    let mut inner_ids = Vec::with_capacity(rows.len());
    let mut upstream_ids = Vec::with_capacity(rows.len());
    let mut kinds = Vec::with_capacity(rows.len());
    let mut created = Vec::with_capacity(rows.len());
    let mut data = Vec::with_capacity(rows.len());
    for item in rows {
        inner_ids.push(item.inner_id.as_str());
        upstream_ids.push(item.id);
        kinds.push(item.change_type.as_str());
        created.push(item.created_at);
        data.push(item.data_json());
    }
    let done = sqlx::query(include_str!("initial_pages_insert.sql"))
        .bind(inner_ids)
        .bind(upstream_ids)
        .bind(kinds)
        .bind(created)
        .bind(data)
        .bind(Source::InitialLoad.as_str())
        .execute(conn)
        .await?;
    Ok(done.rows_affected())
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::listing::ChangeType;
    use serde_json::{json, Value};
    use sqlx::{Connection, PgPool};

    fn offer(id: i64, inner: &str, data: Option<Value>) -> OfferItem {
        OfferItem {
            id,
            inner_id: inner.into(),
            change_type: ChangeType::Added,
            created_at: None,
            data: data.map(|d| serde_json::value::to_raw_value(&d).unwrap()),
        }
    }

    #[sqlx::test(migrator = "crate::MIGRATOR")]
    async fn copy_stores_the_listings_as_sent_and_refuses_one_already_stored(pool: PgPool) {
        let mut conn = pool.acquire().await.unwrap();
        let a = offer(1, "a", Some(json!({"price": 1})));
        let b = offer(2, "b", None);
        let c = offer(3, "c", Some(json!({"price": "3", "城市": "北京"})));
        assert_eq!(copy(&mut conn, &[&a, &b, &c]).await.unwrap(), 3);
        let rows: Vec<(String, i64, Value, String, i32, bool)> = sqlx::query_as(
            "SELECT inner_id, upstream_id, data, source, active_status, is_processed
               FROM raw_data ORDER BY inner_id",
        )
        .fetch_all(&pool)
        .await
        .unwrap();
        let initial = |id: &str, n: i64, data: Value| {
            (id.to_owned(), n, data, "initial_load".to_owned(), 0, false)
        };
        assert_eq!(
            rows,
            vec![
                initial("a", 1, json!({"price": 1})),
                initial("b", 2, json!({})),
                initial("c", 3, json!({"price": "3", "城市": "北京"})),
            ]
        );
        let mut tx = conn.begin().await.unwrap();
        let again = copy(&mut tx, &[&offer(4, "a", None)]).await.unwrap_err();
        assert!(matches!(again, DbError::Conflict { .. }), "{again:?}");
    }

    #[sqlx::test(migrator = "crate::MIGRATOR")]
    async fn insert_on_conflict_keeps_the_stored_row_and_counts_only_new_ones(pool: PgPool) {
        let mut conn = pool.acquire().await.unwrap();
        copy(&mut conn, &[&offer(1, "a", Some(json!({"price": 1})))])
            .await
            .unwrap();
        let a = offer(5, "a", Some(json!({"price": 5})));
        let b = offer(6, "b", Some(json!({"price": 6})));
        assert_eq!(insert_on_conflict(&mut conn, &[&a, &b]).await.unwrap(), 1);
        let prices: Vec<(String, Value)> =
            sqlx::query_as("SELECT inner_id, data->'price' FROM raw_data ORDER BY inner_id")
                .fetch_all(&pool)
                .await
                .unwrap();
        assert_eq!(prices, vec![("a".into(), json!(1)), ("b".into(), json!(6))]);
    }
}
