//! `raw_data`: every listing as the upstream sent it, one row per inner_id.
//! The daily update's side: every write is one statement per page (UNNEST
//! arrays), never one per row, and a write that would change nothing writes
//! no tuple. The initial load writes through `initial_pages`.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use domain::change::RowState;
use domain::listing::{ActiveStatus, ChangeType, Source};
use serde_json::Value;
use sqlx::{PgConnection, PgExecutor, Row};

use crate::DbError;

/// The stored state of the listings named, locked until the caller's
/// transaction ends (the daily update folds its page over them).
pub async fn lock_states(
    db: &mut PgConnection,
    inner_ids: &[&str],
) -> Result<HashMap<String, RowState>, DbError> {
    let rows = sqlx::query(
        "SELECT inner_id, upstream_id, change_type, created_at, data, active_status
           FROM raw_data WHERE inner_id = ANY($1)
          ORDER BY inner_id
            FOR UPDATE",
    )
    .bind(inner_ids)
    .fetch_all(db)
    .await?;
    let mut states = HashMap::with_capacity(rows.len());
    for row in rows {
        let kind: String = row.try_get("change_type")?;
        let data: Value = row.try_get("data")?;
        let active: i32 = row.try_get("active_status")?;
        states.insert(
            row.try_get("inner_id")?,
            RowState {
                upstream_id: row.try_get("upstream_id")?,
                change_type: kind.parse().unwrap_or(ChangeType::Changed),
                created_at: row.try_get::<Option<DateTime<Utc>>, _>("created_at")?,
                data: match data {
                    Value::Object(map) => map,
                    _ => serde_json::Map::new(),
                },
                active_status: if active == 0 {
                    ActiveStatus::Active
                } else {
                    ActiveStatus::Inactive
                },
            },
        );
    }
    Ok(states)
}

/// Which of `inner_ids` are stored (no lock: the daily update asks before
/// its transaction, to know which listings to fetch with `/offer`).
pub async fn stored_ids(
    db: impl PgExecutor<'_>,
    inner_ids: &[&str],
) -> Result<Vec<String>, DbError> {
    Ok(
        sqlx::query_scalar("SELECT inner_id FROM raw_data WHERE inner_id = ANY($1)")
            .bind(inner_ids)
            .fetch_all(db)
            .await?,
    )
}

/// What one upsert did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Written {
    pub inserted: u64,
    pub updated: u64,
    /// Rows whose stored state already equalled the new one: no tuple written.
    pub unchanged: u64,
}

/// Daily update: writes the final state of every listing a page touched, in
/// one statement. New listings are inserted (`source = 'daily_update'`);
/// stored ones are rewritten only when something differs, and a rewrite
/// marks the row for the normaliser (`is_processed = false`, error cleared).
pub async fn upsert_states(
    db: impl PgExecutor<'_>,
    rows: &[(String, RowState)],
) -> Result<Written, DbError> {
    if rows.is_empty() {
        return Ok(Written::default());
    }
    let mut inner_ids = Vec::with_capacity(rows.len());
    let mut upstream_ids = Vec::with_capacity(rows.len());
    let mut kinds = Vec::with_capacity(rows.len());
    let mut created = Vec::with_capacity(rows.len());
    let mut data = Vec::with_capacity(rows.len());
    let mut active = Vec::with_capacity(rows.len());
    for (inner_id, row) in rows {
        inner_ids.push(inner_id.as_str());
        upstream_ids.push(row.upstream_id);
        kinds.push(row.change_type.as_str());
        created.push(row.created_at);
        data.push(Value::Object(row.data.clone()));
        active.push(row.active_status.code());
    }
    let inserted_flags: Vec<bool> = sqlx::query_scalar(include_str!("raw_upsert_states.sql"))
        .bind(inner_ids)
        .bind(upstream_ids)
        .bind(kinds)
        .bind(created)
        .bind(data)
        .bind(active)
        .bind(Source::DailyUpdate.as_str())
        .fetch_all(db)
        .await?;
    let inserted = inserted_flags.iter().filter(|f| **f).count() as u64;
    let updated = inserted_flags.len() as u64 - inserted;
    Ok(Written {
        inserted,
        updated,
        unchanged: rows.len() as u64 - inserted - updated,
    })
}

/// Tells listeners (the normaliser) that raw rows changed. A hint only:
/// listeners must also poll.
pub async fn notify_changed(db: impl PgExecutor<'_>, payload: &str) -> Result<(), DbError> {
    sqlx::query("SELECT pg_notify('raw_data_changed', $1)")
        .bind(payload)
        .execute(db)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::change::ChangeEvent;
    use serde_json::json;
    use sqlx::PgPool;

    fn event(id: i64, inner: &str, kind: ChangeType, data: Option<Value>) -> ChangeEvent {
        ChangeEvent {
            id,
            inner_id: inner.into(),
            change_type: kind,
            created_at: None,
            data: data.and_then(|d| d.as_object().cloned()),
        }
    }

    async fn xmins(pool: &PgPool) -> Vec<(String, String)> {
        sqlx::query_as("SELECT inner_id, xmin::text FROM raw_data ORDER BY inner_id")
            .fetch_all(pool)
            .await
            .unwrap()
    }

    #[sqlx::test(migrator = "crate::MIGRATOR")]
    async fn upserting_unchanged_states_writes_no_tuples_and_changed_ones_reset_processing(
        pool: PgPool,
    ) {
        sqlx::query(
            "INSERT INTO raw_data (inner_id, upstream_id, change_type, data, source)
             VALUES ('a', 1, 'added', '{\"price\": 1}', 'initial_load')",
        )
        .execute(&pool)
        .await
        .unwrap();
        sqlx::query("UPDATE raw_data SET is_processed = true, normalize_error = 'bad'")
            .execute(&pool)
            .await
            .unwrap();
        let mut conn = pool.acquire().await.unwrap();
        assert_eq!(stored_ids(&pool, &["a", "z"]).await.unwrap(), vec!["a"]);
        let stored = lock_states(&mut conn, &["a", "z"]).await.unwrap();
        assert_eq!(stored.len(), 1);
        let same: Vec<_> = stored.clone().into_iter().collect();
        let before = xmins(&pool).await;
        let written = upsert_states(&pool, &same).await.unwrap();
        assert_eq!(
            written,
            Written {
                inserted: 0,
                updated: 0,
                unchanged: 1
            }
        );
        assert_eq!(xmins(&pool).await, before);

        let mut changed = stored["a"].clone();
        changed.data.insert("price".into(), json!(2));
        let new = domain::change::apply(None, &event(9, "z", ChangeType::Removed, None));
        let written = upsert_states(&pool, &[("a".into(), changed), ("z".into(), new)])
            .await
            .unwrap();
        assert_eq!(
            written,
            Written {
                inserted: 1,
                updated: 1,
                unchanged: 0
            }
        );
        let row: (bool, Option<String>, Value, i32) = sqlx::query_as(
            "SELECT is_processed, normalize_error, data, active_status FROM raw_data WHERE inner_id = 'a'",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        assert_eq!(row, (false, None, json!({"price": 2}), 0));
        let z: (i32, String) =
            sqlx::query_as("SELECT active_status, source FROM raw_data WHERE inner_id = 'z'")
                .fetch_one(&pool)
                .await
                .unwrap();
        assert_eq!(z, (1, "daily_update".to_owned()));
    }
}
